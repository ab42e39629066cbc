import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadConfig, parseConfigText, parseFlags, type ConfigSource } from '../../src/daemon/daemon-config';
import { proxyForUrl, proxiesFromEnv, maskCredentials } from '../../src/engine/proxy';
import { clientProxyVars, withClientProxies } from '../../src/cli/proxyenv';

/** Loads `file` (object or raw text) with the given berthd flags; returns the config or the refusal text. */
function load(file: unknown, flags: string[] = [], env: NodeJS.ProcessEnv = {}): ReturnType<typeof loadConfig> | string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-unitcfg-'));
  try {
    const configFile = path.join(dir, 'daemon.json');
    fs.writeFileSync(configFile, typeof file === 'string' ? file : JSON.stringify(file));
    const src: ConfigSource = parseFlags(['node', 'berthd', '--config-file', configFile, '--data-root', path.join(dir, 'd'), ...flags], env);
    try {
      return loadConfig(src);
    } catch (err) {
      if (err instanceof ConfigError) return err.message.replace(`unable to configure the daemon with file ${configFile}: `, 'FILE: ');
      throw err;
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function cfgOf(file: unknown, flags: string[] = [], env: NodeJS.ProcessEnv = {}) {
  const r = load(file, flags, env);
  if (typeof r === 'string') assert.fail(`refused: ${r}`);
  return r;
}

test('every key of the issue lands in its typed field, with dockerd names', () => {
  const c = cfgOf({
    'exec-root': '/tmp/bt-unit-x', hosts: ['unix:///tmp/bt-unit.sock'], debug: true, 'log-level': 'WARN',
    labels: ['a=1', 'b=2', 'a=1'], 'storage-driver': 'overlay2', dns: ['10.0.0.2', '2001:db8::1'],
    'dns-search': ['example.test', '.'], 'dns-opts': ['ndots:2'],
    'default-address-pools': [{ base: '10.123.0.0/16', size: 24 }], bip: '10.124.0.1/24',
    'log-driver': 'local', 'log-opts': { 'max-size': '10m' },
    'insecure-registries': ['http://reg.test:5000', '10.9.0.0/16'], 'registry-mirrors': ['https://mirror.test'],
    'max-concurrent-downloads': 7, 'max-concurrent-uploads': 2, experimental: true, 'cgroup-parent': 'mine',
    'default-ulimits': { nofile: { Name: 'nofile', Soft: 1000, Hard: 2000 } }, 'live-restore': true,
    proxies: { 'http-proxy': 'http://p.test:3128', 'https-proxy': 'p.test:3129', 'no-proxy': '.internal' },
  });
  assert.equal(c.execRoot, '/tmp/bt-unit-x');
  assert.deepEqual(c.hosts, ['unix:///tmp/bt-unit.sock']);
  assert.equal(c.debug, true);
  assert.equal(c.logLevel, 'warn');
  assert.deepEqual(c.labels, ['a=1', 'b=2']);
  assert.deepEqual(c.dns, ['10.0.0.2', '2001:db8::1']);
  assert.deepEqual(c.dnsSearch, ['example.test', '.']);
  assert.deepEqual(c.dnsOptions, ['ndots:2']);
  assert.deepEqual(c.defaultAddressPools, [{ base: '10.123.0.0/16', size: 24 }]);
  assert.equal(c.bip, '10.124.0.1/24');
  assert.deepEqual(c.logConfig, { type: 'local', config: { 'max-size': '10m' } });
  assert.deepEqual(c.insecureRegistries, ['reg.test:5000', '10.9.0.0/16']);
  assert.deepEqual(c.registryMirrors, ['https://mirror.test/']);
  assert.equal(c.maxConcurrentDownloads, 7);
  assert.equal(c.maxConcurrentUploads, 2);
  assert.equal(c.experimental, true);
  assert.equal(c.cgroupParent, '/mine');
  assert.deepEqual(c.defaultUlimits, [{ Name: 'nofile', Soft: 1000, Hard: 2000 }]);
  assert.equal(c.liveRestore, true);
  assert.deepEqual(c.proxies, { httpProxy: 'http://p.test:3128', httpsProxy: 'p.test:3129', noProxy: '.internal' });
});

test('flags have dockerd names and the same effect as keys', () => {
  const c = cfgOf({}, ['-D', '--label', 'x=y', '--dns', '10.0.0.3', '--default-ulimit', 'nproc=10:20',
    '--default-address-pool', 'base=10.200.0.0/16,size=26', '--log-opt', 'max-file=3', '--registry-mirror', 'http://m.test:5000',
    '--max-concurrent-downloads', '9', '--http-proxy', 'http://f.test:1']);
  assert.equal(c.debug, true);
  assert.deepEqual(c.labels, ['x=y']);
  assert.deepEqual(c.dns, ['10.0.0.3']);
  assert.deepEqual(c.defaultUlimits, [{ Name: 'nproc', Soft: 10, Hard: 20 }]);
  assert.deepEqual(c.defaultAddressPools, [{ base: '10.200.0.0/16', size: 26 }]);
  assert.deepEqual(c.logConfig.config, { 'max-file': '3' });
  assert.deepEqual(c.registryMirrors, ['http://m.test:5000/']);
  assert.equal(c.maxConcurrentDownloads, 9);
  assert.equal(c.proxies.httpProxy, 'http://f.test:1');
});

test('unknown keys are refused with dockerd\'s sentence; keys dockerd has and Berth lacks are named', () => {
  assert.equal(load({ debug: true, 'no-such-key': 1, 'another-one': 'x' }),
    "FILE: the following directives don't match any configuration option: no-such-key, another-one");
  assert.equal(load({ proxies: { 'ftp-proxy': 'x' } }), "FILE: the following directives don't match any configuration option: ftp-proxy");
  assert.equal(load({ iptables: false }), 'FILE: the following directives are not supported by berthd: iptables');
});

test('a key given as a flag and in the file is refused, as dockerd does', () => {
  assert.equal(load({ debug: false, labels: ['a=b'] }, ['-D', '--label', 'c=d']),
    'FILE: the following directives are specified both as a flag and in the configuration file: debug: (from flag: true, from file: false), labels: (from flag: [c=d], from file: [a=b])');
  assert.equal(load({ proxies: { 'http-proxy': 'http://u:secret@p.test:1' } }, ['--http-proxy', 'http://p.test:2']),
    'FILE: the following directives are specified both as a flag and in the configuration file: http-proxy: (from flag: http://p.test:2, from file: http://xxxxx:xxxxx@p.test:1)');
  // graph is data-root: the harness-style --data-root flag conflicts with a graph key
  assert.match(String(load({ graph: '/srv/berth' })), /^FILE: the following directives are specified both as a flag and in the configuration file: graph: \(from flag: /);
});

test('graph is the old name of data-root', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-unitcfg-'));
  try {
    const configFile = path.join(dir, 'daemon.json');
    fs.writeFileSync(configFile, JSON.stringify({ graph: path.join(dir, 'ssd') }));
    const c = loadConfig(parseFlags(['node', 'berthd', '--config-file', configFile], {}));
    assert.equal(c.dataRoot, path.join(dir, 'ssd'));
    fs.writeFileSync(configFile, JSON.stringify({ graph: '/a', 'data-root': '/b' }));
    assert.throws(() => loadConfig(parseFlags(['node', 'berthd', '--config-file', configFile], {})), /"graph" is the old name of "data-root"/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed JSON names line and column', () => {
  assert.equal(load('{\n  "debug": true,\n  "labels": ["a=b",]\n}'), 'FILE: invalid JSON at line 3, column 20: expected a value, found "]"');
  assert.equal(load('{\n  "debug": true\n  "labels": []\n}'), 'FILE: invalid JSON at line 3, column 3: expected "," or "}", found "\\""');
  assert.equal(load('{"debug": true'), 'FILE: invalid JSON at line 1, column 15: expected "," or "}", found the end of the file');
  assert.equal(load('["debug"]'), 'FILE: the configuration must be a JSON object, got an array');
  assert.deepEqual(parseConfigText('  \n'), {}); // an empty file is an empty configuration, as for dockerd
});

test('wrong types and bad values are refused with one clear line', () => {
  const cases: Array<[unknown, string | RegExp]> = [
    [{ debug: 'yes' }, 'FILE: invalid type for "debug": expected a boolean, got a string ("yes")'],
    [{ labels: 'a=b' }, 'FILE: invalid type for "labels": expected an array of strings, got a string ("a=b")'],
    [{ 'max-concurrent-downloads': '3' }, 'FILE: invalid type for "max-concurrent-downloads": expected an integer, got a string ("3")'],
    [{ 'max-concurrent-uploads': 0 }, 'FILE: invalid max concurrent uploads: 0'],
    [{ 'log-level': 'chatty' }, 'FILE: invalid logging level: chatty'],
    [{ labels: ['novalue'] }, 'FILE: bad attribute format: novalue'],
    [{ labels: ['a=1', 'a=2'] }, 'FILE: conflict labels for a=2 and a=1'],
    [{ dns: ['8.8.8'] }, 'FILE: IP address is not correctly formatted: 8.8.8'],
    [{ 'dns-search': ['-bad-.test'] }, 'FILE: -bad-.test is not a valid domain'],
    [{ 'storage-driver': 'aufs' }, 'FILE: storage-driver "aufs" is not supported: Berth stores images and containers with overlay2 only'],
    [{ 'registry-mirrors': ['ftp://m.test'] }, 'FILE: invalid mirror: unsupported scheme "ftp" in "ftp://m.test"'],
    [{ 'registry-mirrors': ['https://m.test/v2/'] }, 'FILE: invalid mirror: path, query, or fragment at end of the URI "https://m.test/v2/"'],
    [{ 'log-driver': 'fluentd-x' }, "FILE: logger: no log driver named 'fluentd-x' is registered"],
    [{ 'default-address-pools': [{ base: '10.0.0.0/33', size: 24 }] }, /invalid default-address-pools: 10.0.0.0\/33 is not a valid CIDR/],
    [{ 'default-address-pools': [{ base: '10.0.0.0/16', size: 8 }] }, /size 8 must be between/],
    [{ bip: 'fd00::1/64' }, 'FILE: invalid bip: fd00::1/64 is not an IPv4 address/prefix-length'],
    [{ 'default-ulimits': { nofile: { Name: 'nofile', Soft: 10, Hard: 5 } } }, 'FILE: ulimit soft limit must be less than or equal to hard limit: 10 > 5'],
    [{ 'default-ulimits': { bogus: { Name: 'bogus', Soft: 1, Hard: 1 } } }, 'FILE: invalid ulimit type: bogus'],
    [{ hosts: ['ssh://x'] }, /^FILE: invalid bind address \(ssh:\/\/x\)/],
    [{ proxies: { 'http-proxy': 'http://' } }, 'FILE: invalid http-proxy: http:// is not a proxy URL'],
    [{ group: 'bt-no-such-group-xyz' }, /^can't create unix socket .*berth\.sock: group bt-no-such-group-xyz not found$/],
  ];
  for (const [file, want] of cases) {
    const got = load(file);
    assert.equal(typeof got, 'string', `accepted: ${JSON.stringify(file)}`);
    if (typeof want === 'string') assert.equal(got, want);
    else assert.match(got as string, want);
    assert.ok(!(got as string).includes('\n'), 'one line');
  }
});

test('proxies: the file wins over the environment key by key; the default group is optional', () => {
  const env = { HTTP_PROXY: 'http://env.test:1', https_proxy: 'http://env.test:2', NO_PROXY: 'a.test' };
  const c = cfgOf({ proxies: { 'https-proxy': 'http://file.test:3' } }, [], env);
  assert.deepEqual(c.proxies, { httpProxy: 'http://env.test:1', httpsProxy: 'http://file.test:3', noProxy: 'a.test' });
  assert.deepEqual(proxiesFromEnv({ http_proxy: 'x:1' }), { httpProxy: 'x:1', httpsProxy: '', noProxy: '' });
});

test('proxy selection for registry traffic follows Go\'s rules (dockerd\'s)', () => {
  const p = { httpProxy: 'http://proxy.test:3128', httpsProxy: 'proxy.test:3129', noProxy: 'internal.test,.corp.test,10.0.0.0/8,skip.test:5000' };
  assert.equal(proxyForUrl(p, 'http://registry.example.test/v2/')?.href, 'http://proxy.test:3128/');
  assert.equal(proxyForUrl(p, 'https://registry.example.test/v2/')?.href, 'http://proxy.test:3129/');
  assert.equal(proxyForUrl(p, 'https://localhost:5000/v2/'), undefined);
  assert.equal(proxyForUrl(p, 'http://127.0.0.1:5000/v2/'), undefined);
  assert.equal(proxyForUrl(p, 'http://[::1]:5000/v2/'), undefined);
  assert.equal(proxyForUrl(p, 'https://internal.test/v2/'), undefined);
  assert.equal(proxyForUrl(p, 'https://reg.internal.test/v2/'), undefined);
  assert.equal(proxyForUrl(p, 'https://corp.test/v2/')?.host, 'proxy.test:3129'); // ".corp.test": subdomains only
  assert.equal(proxyForUrl(p, 'https://a.corp.test/v2/'), undefined);
  assert.equal(proxyForUrl(p, 'http://10.1.2.3:5000/v2/'), undefined);
  assert.equal(proxyForUrl(p, 'http://skip.test:5000/v2/'), undefined);
  assert.equal(proxyForUrl(p, 'http://skip.test:5001/v2/')?.host, 'proxy.test:3128');
  assert.equal(proxyForUrl({ ...p, noProxy: '*' }, 'http://anything.test/'), undefined);
  assert.equal(proxyForUrl({ ...p, httpsProxy: '' }, 'https://registry.example.test/'), undefined); // no fall-back to httpProxy
  assert.equal(maskCredentials('http://user:pw@proxy.test:3128'), 'http://xxxxx:xxxxx@proxy.test:3128');
});

test('client-side proxies of config.json become env unless already set (docker CLI ParseProxyConfig)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-unitcfg-'));
  try {
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
      proxies: {
        default: { httpProxy: 'http://d.test:1', noProxy: 'n.test' },
        'tcp://other:2375': { httpsProxy: 'http://o.test:2' },
      },
    }));
    const env = { DOCKER_CONFIG: dir };
    assert.deepEqual(clientProxyVars('unix:///run/berth/berth.sock', env),
      { HTTP_PROXY: 'http://d.test:1', http_proxy: 'http://d.test:1', NO_PROXY: 'n.test', no_proxy: 'n.test' });
    assert.deepEqual(clientProxyVars('tcp://other:2375', env), { HTTPS_PROXY: 'http://o.test:2', https_proxy: 'http://o.test:2' });
    assert.deepEqual(withClientProxies(['A=1', 'HTTP_PROXY=mine', 'no_proxy'], 'unix:///x.sock', env),
      ['A=1', 'HTTP_PROXY=mine', 'no_proxy', 'http_proxy=http://d.test:1', 'NO_PROXY=n.test']);
    assert.deepEqual(clientProxyVars('unix:///x.sock', { DOCKER_CONFIG: path.join(dir, 'absent') }), {});
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('registry traffic to a proxied host reaches the proxy on 127.0.0.1 (the selection the registry client uses)', async () => {
  // A proxy that answers as the registry would: it sees the absolute-form request of a proxied client.
  const seen: string[] = [];
  const proxy = http.createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(200, { 'Content-Type': 'application/json', 'Docker-Distribution-Api-Version': 'registry/2.0' });
    res.end('{}');
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  try {
    const port = (proxy.address() as AddressInfo).port;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-unitcfg-'));
    let cfg;
    try {
      const configFile = path.join(dir, 'daemon.json');
      fs.writeFileSync(configFile, JSON.stringify({ proxies: { 'http-proxy': `http://127.0.0.1:${port}`, 'no-proxy': 'direct.example.test' } }));
      cfg = loadConfig(parseFlags(['node', 'berthd', '--config-file', configFile, '--data-root', path.join(dir, 'd')], {}));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
    const target = new URL('http://registry.example.test:5000/v2/');
    const via = proxyForUrl(cfg.proxies, target);
    assert.equal(via?.host, `127.0.0.1:${port}`);
    assert.equal(proxyForUrl(cfg.proxies, 'http://direct.example.test:5000/v2/'), undefined);
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: via!.hostname, port: Number(via!.port), path: target.href, headers: { Host: target.host } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 200);
    assert.deepEqual(seen, ['GET http://registry.example.test:5000/v2/']);
  } finally {
    proxy.close();
  }
});
