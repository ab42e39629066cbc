import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../../src/common/errors';
import {
  buildEtcFiles, filterHostResolvConf, hostsFileContent, resolvConfContent, writeEtcFiles, rewriteEtcFileInPlace,
} from '../../src/container/etcfiles';

const DEFAULT_HOSTS = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n';

test('/etc/hosts as Docker writes it', () => {
  assert.equal(hostsFileContent({ hostname: 'abc' }), DEFAULT_HOSTS);
  assert.equal(hostsFileContent({ hostname: 'abc', ip: '172.17.0.2', extraHosts: ['db:10.0.0.5', 'v6:::1'] }),
    DEFAULT_HOSTS + '10.0.0.5\tdb\n::1\tv6\n172.17.0.2\tabc\n');
  assert.equal(hostsFileContent({ hostname: 'web', domainname: 'example.org', ip: '10.1.0.2' }), DEFAULT_HOSTS + '10.1.0.2\tweb.example.org web\n');
  assert.equal(hostsFileContent({ hostname: 'abc', ip: '10.1.0.2', ip6: 'fd12::2' }), DEFAULT_HOSTS + '10.1.0.2\tabc\nfd12::2\tabc\n');
  assert.equal(hostsFileContent({ hostname: 'x', extraHosts: ['gw:host-gateway'], hostGatewayIp: '172.17.0.1' }), DEFAULT_HOSTS + '172.17.0.1\tgw\n');
  assert.equal(hostsFileContent({ hostname: 'x', networkMode: 'host', hostHostsText: '127.0.0.1 localhost vm', extraHosts: ['a:1.2.3.4'] }), '127.0.0.1 localhost vm\n1.2.3.4\ta\n');
  assert.throws(() => hostsFileContent({ hostname: 'x', extraHosts: ['a:notanip'] }), (e: unknown) => e instanceof BerthError && e.kind === 'invalid-argument' && e.message === 'invalid IP address in add-host: "notanip"');
  assert.throws(() => hostsFileContent({ hostname: 'x', extraHosts: ['gw:host-gateway'] }), /host-gateway/);
});

test('/etc/resolv.conf: host file filtered, --dns options', () => {
  const host = '# generated\nsearch corp.example\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver fd00::1\noptions ndots:2\n';
  assert.equal(filterHostResolvConf(host), '# generated\nsearch corp.example\nnameserver 10.0.0.2\noptions ndots:2\n');
  assert.equal(filterHostResolvConf('nameserver 127.0.0.1\n'), 'nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  assert.equal(resolvConfContent({ hostResolvConfText: host }), filterHostResolvConf(host));
  assert.equal(resolvConfContent({ hostResolvConfText: host, networkMode: 'host' }), host);
  assert.equal(resolvConfContent({ hostResolvConfText: host, dns: ['1.1.1.1'] }), 'search corp.example\nnameserver 1.1.1.1\noptions ndots:2\n');
  assert.equal(resolvConfContent({ hostResolvConfText: host, dnsSearch: ['a.test', 'b.test'], dnsOptions: ['rotate'] }), 'search a.test b.test\nnameserver 10.0.0.2\noptions rotate\n');
  assert.equal(resolvConfContent({ hostResolvConfText: host, dns: ['9.9.9.9'], dnsSearch: ['.'] }), 'nameserver 9.9.9.9\noptions ndots:2\n');
  assert.throws(() => resolvConfContent({ dns: ['nope'] }), /nope is not an ip address/);
});

test('files are written atomically and rewritable in place', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'h3a-etc-'));
  try {
    const paths = await writeEtcFiles(dir, buildEtcFiles({ hostname: 'abc', hostResolvConfText: 'nameserver 10.0.0.1\n' }));
    assert.equal(fs.readFileSync(paths.hostname, 'utf8'), 'abc\n');
    assert.equal(fs.readFileSync(paths.hosts, 'utf8'), DEFAULT_HOSTS);
    assert.equal(fs.readFileSync(paths.resolvConf, 'utf8'), 'nameserver 10.0.0.1\n');
    const ino = fs.statSync(paths.hosts).ino;
    await rewriteEtcFileInPlace(paths.hosts, 'x\n');
    assert.equal(fs.statSync(paths.hosts).ino, ino);
    assert.equal(fs.readFileSync(paths.hosts, 'utf8'), 'x\n');
    assert.deepEqual(fs.readdirSync(dir).sort(), ['hostname', 'hosts', 'resolv.conf']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
