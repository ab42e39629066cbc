/**
 * berthd configured as dockerd: daemon.json keys seen through info/inspect/behaviour, graph moving
 * the store, refusals before anything is touched, SIGHUP reload, the socket group.
 */
import { test, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import {
  BERTH_BIN, BERTHD_BIN, TEMP_PREFIX, bootstrapBusybox, cgroupParentOf, ok, run, startDaemon, waitFor, type Daemon,
} from '../helpers/daemon';
import { startRegistry } from '../helpers/registry';

/** The first /events message with this type and action, from now on. */
function nextEvent(d: Daemon, type: string, action: string): { ready: Promise<void>; event: Promise<any> } {
  let ready!: () => void;
  const readyP = new Promise<void>((r) => { ready = r; });
  const event = new Promise<any>((resolve, reject) => {
    const filters = encodeURIComponent(JSON.stringify({ type: [type] }));
    const req = http.request({ socketPath: d.socket, path: `/events?filters=${filters}`, timeout: 30_000 }, (res) => {
      ready();
      let buf = '';
      res.on('data', (c: Buffer) => {
        buf += c.toString('utf8');
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const ev = JSON.parse(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          if (ev.Action === action) {
            req.destroy();
            resolve(ev);
          }
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`no ${type} ${action} event within 30 s`)));
    req.on('error', (e) => { ready(); reject(e); });
    req.end();
  });
  return { ready: readyP, event };
}

test('daemon.json keys are in force: info (API, berth, docker CLI), container ulimits, cgroup parent, debug log, no proxy leak', async () => {
  const d = await startDaemon({
    inFile: { cgroupParent: true },
    env: { HTTP_PROXY: 'http://env-proxy.test:3128', http_proxy: '', HTTPS_PROXY: '', https_proxy: '', NO_PROXY: '', no_proxy: '' },
    config: {
      debug: true, labels: ['tier=test', 'site=lab'], experimental: true, 'storage-driver': 'overlay2',
      'log-driver': 'json-file', 'log-opts': { 'max-size': '10m' }, 'live-restore': true,
      'registry-mirrors': ['https://mirror.example.test'], 'insecure-registries': ['registry.example.test:5000', '10.66.0.0/16'],
      'max-concurrent-downloads': 4, 'max-concurrent-uploads': 2, dns: ['10.66.0.53'], 'dns-search': ['lab.test'],
      'default-ulimits': { nofile: { Name: 'nofile', Soft: 1234, Hard: 2345 } },
      proxies: { 'https-proxy': 'http://user:secret@file-proxy.test:3129', 'no-proxy': 'localhost,.lab.test' },
    },
  });
  after(() => d.stop());
  const info = (await d.api('GET', '/info')).body;
  assert.equal(info.Driver, 'overlay2');
  assert.equal(info.LoggingDriver, 'json-file');
  assert.equal(info.Debug, true);
  assert.equal(info.ExperimentalBuild, true);
  assert.equal(info.LiveRestoreEnabled, true);
  assert.deepEqual(info.Labels, ['tier=test', 'site=lab']);
  assert.equal(info.HttpProxy, 'http://env-proxy.test:3128'); // from the environment
  assert.equal(info.HttpsProxy, 'http://xxxxx:xxxxx@file-proxy.test:3129'); // from the file, password masked
  assert.equal(info.NoProxy, 'localhost,.lab.test');
  assert.deepEqual(info.RegistryConfig.Mirrors, ['https://mirror.example.test/']);
  assert.deepEqual(info.RegistryConfig.InsecureRegistryCIDRs, ['127.0.0.0/8', '10.66.0.0/16']);
  assert.equal(info.RegistryConfig.IndexConfigs['registry.example.test:5000'].Secure, false);
  assert.deepEqual(info.RegistryConfig.IndexConfigs['docker.io'].Mirrors, ['https://mirror.example.test/']);
  assert.equal(info.DockerRootDir, d.dataRoot);
  const version = (await d.api('GET', '/version')).body;
  assert.equal(version.Components[0].Details.Experimental, 'true');
  // debug: every API call is logged, as dockerd's "Calling GET /v1.xx/info"
  assert.match(d.log(), /level=debug Calling GET \/info/);

  const expectText = [
    ' Storage Driver: overlay2', ' Logging Driver: json-file', ` Docker Root Dir: ${d.dataRoot}`, ' Debug Mode: true',
    ' HTTP Proxy: http://env-proxy.test:3128', ' HTTPS Proxy: http://xxxxx:xxxxx@file-proxy.test:3129', ' No Proxy: localhost,.lab.test',
    ' Labels:\n  tier=test\n  site=lab', ' Experimental: true',
    ' Insecure Registries:\n  registry.example.test:5000\n  127.0.0.0/8\n  10.66.0.0/16',
    ' Registry Mirrors:\n  https://mirror.example.test/', ' Live Restore Enabled: true',
  ];
  const berthInfo = ok(await d.cli(['info']), 'berth info').stdout;
  for (const t of [...expectText, ' DNS: 10.66.0.53']) assert.ok(berthInfo.includes(t), `berth info lacks ${JSON.stringify(t)}:\n${berthInfo}`);
  const dockerInfo = ok(await d.docker(['info']), 'docker info').stdout;
  for (const t of expectText) assert.ok(dockerInfo.includes(t), `docker info lacks ${JSON.stringify(t)}:\n${dockerInfo}`);

  await bootstrapBusybox(d);
  // default-ulimits reach the container (and inspect), a container's own --ulimit wins; proxies stay out of containers.
  const out = ok(await d.cli(['run', '--name', 'limits', 'busybox', 'sh', '-c', 'ulimit -n; ulimit -Hn; env']), 'run').stdout;
  const [soft, hard] = out.split('\n');
  assert.equal(soft, '1234');
  assert.equal(hard, '2345');
  assert.doesNotMatch(out, /proxy/i);
  const inspect = JSON.parse(ok(await d.cli(['inspect', 'limits'])).stdout)[0];
  assert.deepEqual(inspect.HostConfig.Ulimits, [{ Name: 'nofile', Soft: 1234, Hard: 2345 }]);
  const own = ok(await d.cli(['run', '--rm', '--ulimit', 'nofile=100:200', 'busybox', 'sh', '-c', 'ulimit -n']), 'run --ulimit').stdout;
  assert.equal(own.trim(), '100');

  // cgroup-parent from daemon.json: the running container's cgroup is under it.
  const id = ok(await d.cli(['run', '-d', 'busybox', 'sleep', '60'])).stdout.trim();
  const parentDir = `/sys/fs/cgroup/pids${cgroupParentOf(d.base)}`;
  assert.ok(fs.readdirSync(parentDir).some((e) => e.includes(id) || e.includes(id.slice(0, 12))), `no cgroup of ${id} under ${parentDir}`);
  ok(await d.cli(['rm', '-f', id]));

  // Client-side proxies (~/.docker/config.json) are injected by the CLI, as the docker CLI does; -e wins.
  fs.writeFileSync(path.join(d.env.DOCKER_CONFIG, 'config.json'),
    JSON.stringify({ proxies: { default: { httpProxy: 'http://client-proxy.test:3128', noProxy: 'lab.test' } } }));
  try {
    const env = ok(await d.cli(['run', '--rm', 'busybox', 'env'])).stdout;
    assert.match(env, /^HTTP_PROXY=http:\/\/client-proxy\.test:3128$/m);
    assert.match(env, /^http_proxy=http:\/\/client-proxy\.test:3128$/m);
    assert.match(env, /^no_proxy=lab\.test$/m);
    const dockerEnv = ok(await d.docker(['run', '--rm', 'busybox', 'env'])).stdout;
    assert.match(dockerEnv, /^HTTP_PROXY=http:\/\/client-proxy\.test:3128$/m, 'the docker CLI does the same');
    const mine = ok(await d.cli(['run', '--rm', '-e', 'HTTP_PROXY=mine', 'busybox', 'env'])).stdout;
    assert.match(mine, /^HTTP_PROXY=mine$/m);
    // ... and build args of `build` (HTTP_PROXY is one of Docker's predefined args); --build-arg wins.
    const ctxDir = fs.mkdtempSync(path.join(d.base, 'proxyctx-'));
    fs.writeFileSync(path.join(ctxDir, 'Dockerfile'), 'FROM busybox\nRUN echo "p=$HTTP_PROXY" > /p\n');
    ok(await d.cli(['build', '-q', '-t', 'proxied', ctxDir]));
    assert.equal(ok(await d.cli(['run', '--rm', 'proxied', 'cat', '/p'])).stdout, 'p=http://client-proxy.test:3128\n');
    // (--no-cache: predefined proxy args are left out of the cache key, as dockerd leaves them)
    ok(await d.cli(['build', '-q', '--no-cache', '--build-arg', 'HTTP_PROXY=mine', '-t', 'proxied', ctxDir]));
    assert.equal(ok(await d.cli(['run', '--rm', 'proxied', 'cat', '/p'])).stdout, 'p=mine\n');
  } finally {
    fs.rmSync(path.join(d.env.DOCKER_CONFIG, 'config.json'), { force: true });
  }
});

test('graph (old name of data-root) puts the store there; moving it and pointing graph at the new place keeps everything', async () => {
  const d = await startDaemon({ inFile: { dataRootKey: 'graph' } });
  after(() => d.stop());
  assert.equal((await d.api('GET', '/info')).body.DockerRootDir, d.dataRoot);
  assert.equal((await d.api('POST', '/volumes/create', { Name: 'kept' })).status, 201);
  assert.ok(fs.existsSync(path.join(d.dataRoot, 'volumes', 'kept')));
  // The notes' recipe: stop, mv the store, set "graph", start.
  await d.kill9();
  const moved = path.join(d.base, 'ssd');
  fs.renameSync(d.dataRoot, moved);
  fs.writeFileSync(d.configFile, JSON.stringify({ graph: moved }));
  await d.restart();
  assert.equal((await d.api('GET', '/info')).body.DockerRootDir, moved);
  const vol = (await d.api('GET', '/volumes/kept')).body;
  assert.equal(vol.Name, 'kept');
  assert.ok(String(vol.Mountpoint).startsWith(`${moved}/`), vol.Mountpoint);
  assert.ok(!fs.existsSync(d.dataRoot), 'nothing re-created at the old place');
});

test('bad configurations: one line, exit 1, nothing touched', async () => {
  const base = fs.mkdtempSync(TEMP_PREFIX);
  const ovl = path.join(base, 'ovl');
  try {
    for (const p of ['lower', 'upper', 'work', 'ovl']) fs.mkdirSync(path.join(base, p));
    const mount = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o',
      `lowerdir=${base}/lower,upperdir=${base}/upper,workdir=${base}/work`, ovl], { encoding: 'utf8' });
    assert.equal(mount.status, 0, mount.stderr);
    const cases: Array<{ file: string; flags?: string[]; want: RegExp }> = [
      { file: '{"debug": true, "bogus-key": 1}', want: /the following directives don't match any configuration option: bogus-key$/ },
      { file: '{"debug": true}', flags: ['--debug'], want: /the following directives are specified both as a flag and in the configuration file: debug: \(from flag: true, from file: true\)$/ },
      { file: '{\n  "debug": true,\n  "labels": ["a=b",]\n}', want: /invalid JSON at line 3, column 20: expected a value, found "\]"$/ },
      { file: '{"max-concurrent-downloads": "3"}', want: /invalid type for "max-concurrent-downloads": expected an integer, got a string \("3"\)$/ },
      { file: '{"storage-driver": "devicemapper"}', want: /storage-driver "devicemapper" is not supported/ },
      { file: '{"group": "bt-no-such-group"}', want: /group bt-no-such-group not found$/ },
      { file: '{}', flags: ['-H', 'fd://'], want: /no sockets found via socket activation: make sure the service was started by systemd$/ },
      { file: JSON.stringify({ 'data-root': `${ovl}/store` }), flags: ['--no-data-root'], want: /data-root .* is on overlayfs, which overlay2 cannot use/ },
    ];
    for (const c of cases) {
      const dir = fs.mkdtempSync(path.join(base, 'case-'));
      fs.writeFileSync(path.join(dir, 'daemon.json'), c.file);
      const flags = (c.flags ?? []).filter((f) => f !== '--no-data-root');
      const dataRootFlag = c.flags?.includes('--no-data-root') ? [] : ['--data-root', path.join(dir, 'd')];
      const r = await run(process.execPath, [BERTHD_BIN, '--config-file', path.join(dir, 'daemon.json'), ...dataRootFlag,
        '--exec-root', path.join(dir, 'x'), '-H', `unix://${dir}/x/berth.sock`, '--cgroup-parent', cgroupParentOf(dir), ...flags]);
      assert.equal(r.code, 1, `${c.file}: exit ${r.code}\n${r.stderr}`);
      assert.equal(r.stdout, '');
      const lines = r.stderr.split('\n').filter(Boolean);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /^berthd: /);
      assert.match(lines[0], c.want);
      assert.deepEqual(fs.readdirSync(dir), ['daemon.json'], `${c.file}: berthd left files`);
    }
    assert.deepEqual(fs.readdirSync(ovl), [], 'nothing made on the overlayfs');
    // dockerd --validate: the check alone
    const good = fs.mkdtempSync(path.join(base, 'good-'));
    fs.writeFileSync(path.join(good, 'daemon.json'), '{"labels": ["a=b"], "dns": ["10.66.0.53"]}');
    const v = await run(process.execPath, [BERTHD_BIN, '--validate', '--config-file', path.join(good, 'daemon.json'),
      '--data-root', path.join(good, 'd'), '--exec-root', path.join(good, 'x')]);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout, 'configuration OK\n');
    assert.deepEqual(fs.readdirSync(good), ['daemon.json']);
  } finally {
    spawnSync('umount', [ovl]);
    spawnSync('rm', ['-rf', '--one-file-system', base]);
  }
});

test('SIGHUP reloads what dockerd reloads, logs the changes, and keeps the old settings on a bad file', async () => {
  const d = await startDaemon({ launcher: true, config: { 'log-level': 'warn', labels: ['stage=one'], 'max-concurrent-downloads': 3 } });
  after(() => d.stop());
  assert.doesNotMatch(d.log(), /level=info/, 'log-level warn hides info lines');
  fs.writeFileSync(d.configFile, JSON.stringify({
    debug: true, labels: ['stage=two'], 'registry-mirrors': ['https://mirror.example.test'],
    'insecure-registries': ['registry.example.test:5000'], 'max-concurrent-downloads': 6, dns: ['10.66.0.53'],
  }));
  const reload = nextEvent(d, 'daemon', 'reload');
  await reload.ready;
  const pid = Number(fs.readFileSync(path.join(d.execRoot, 'berthd.pid'), 'utf8'));
  assert.equal(pid, d.pid);
  // As the notes do it: `kill -HUP $(pidof berthd)` — the launcher names the process berthd. Other
  // berthds may run on this host, so only ours is signalled, but it must be among pidof's answers.
  const pidof = spawnSync('pidof', ['berthd'], { encoding: 'utf8' });
  assert.ok(pidof.stdout.trim().split(/\s+/).map(Number).includes(pid), `pidof berthd (${pidof.stdout.trim()}) lists ${pid}`);
  assert.equal(spawnSync('kill', ['-HUP', String(pid)]).status, 0);
  const ev = await reload.event;
  assert.equal(ev.Actor.Attributes.debug, 'true');
  const info = (await d.api('GET', '/info')).body;
  assert.equal(info.Debug, true);
  assert.deepEqual(info.Labels, ['stage=two']);
  assert.deepEqual(info.RegistryConfig.Mirrors, ['https://mirror.example.test/']);
  assert.equal(info.RegistryConfig.IndexConfigs['registry.example.test:5000'].Secure, false);
  const log = d.log();
  assert.match(log, /Reloaded configuration: debug: false -> true, .*labels: \[stage=one\] -> \[stage=two\], .*max-concurrent-downloads: 3 -> 6/);
  assert.match(log, /level=warn configuration changes that need a restart of berthd were not applied: dns/);

  fs.writeFileSync(d.configFile, '{"debug": false, "labels": ["stage=three"],}');
  process.kill(d.pid, 'SIGHUP');
  await waitFor('the reload refusal in the log', () => /Error reloading configuration/.test(d.log()));
  assert.match(d.log(), /level=error Error reloading configuration \(nothing changed\): unable to configure the daemon with file .*: invalid JSON at line 1, column 44/);
  const after2 = (await d.api('GET', '/info')).body;
  assert.equal(after2.Debug, true);
  assert.deepEqual(after2.Labels, ['stage=two']);
});

test('socket activation as berth.socket does it: -H fd:// serves the socket berthd was given, and the CLIs use it', async () => {
  const d = await startDaemon({ socketActivation: true });
  after(() => d.stop());
  assert.match(d.log(), /berthd listening on fd:\/\//);
  assert.equal((await d.api('GET', '/_ping')).status, 200);
  const v = ok(await d.docker(['version', '--format', '{{.Server.Version}}']), 'docker version');
  assert.notEqual(v.stdout.trim(), '');
  ok(await run(process.execPath, [BERTH_BIN, 'ps'], { env: { ...process.env, ...d.env } }), 'berth ps');
  // The socket is systemd's: berthd neither replaced nor chmod-ed it.
  assert.equal(fs.statSync(d.socket).mode & 0o777, 0o660);
});

test('the socket belongs to the configured group: a member uses it without root, a non-member is refused', async () => {
  const suffix = `${process.pid % 10000}${Math.floor(Math.random() * 1000)}`;
  const group = `btg${suffix}`;
  const member = `btm${suffix}`;
  const stranger = `btn${suffix}`;
  let d: Daemon | undefined;
  try {
    ok(await run('groupadd', [group]), 'groupadd');
    ok(await run('useradd', ['-M', '-N', '-s', '/bin/sh', '-G', group, member]), 'useradd member');
    ok(await run('useradd', ['-M', '-N', '-s', '/bin/sh', stranger]), 'useradd stranger');
    d = await startDaemon({ config: { group } });
    fs.chmodSync(d.base, 0o711); // the temp root is 0700; the socket's own mode is what is tested
    const gid = Number(spawnSync('getent', ['group', group], { encoding: 'utf8' }).stdout.split(':')[2]);
    const st = fs.statSync(d.socket);
    assert.equal(st.uid, 0);
    assert.equal(st.gid, gid);
    assert.equal(st.mode & 0o777, 0o660);
    const as = (user: string, args: string[]) =>
      run('runuser', ['-u', user, '--', 'env', `BERTH_HOST=${d!.host}`, `DOCKER_HOST=${d!.host}`, 'HOME=/tmp', ...args]);
    const ps = await as(member, [process.execPath, BERTH_BIN, 'ps']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, /^CONTAINER ID/);
    const dockerPs = await as(member, ['docker', '--config', path.join(d.base, 'nocfg'), 'ps']);
    assert.equal(dockerPs.code, 0, dockerPs.stderr);
    const refused = await as(stranger, [process.execPath, BERTH_BIN, 'ps']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /^permission denied while trying to connect to the Berth daemon socket at unix:\/\/.*: connect: permission denied$/m);
  } finally {
    await d?.stop();
    spawnSync('userdel', [member]);
    spawnSync('userdel', [stranger]);
    spawnSync('groupdel', [group]);
  }
});

test('daemon proxies carry registry traffic: a pull from a named registry goes through the proxy on 127.0.0.1, loopback registries do not', async () => {
  const reg = await startRegistry('berth');
  // A CONNECT proxy that reaches "registry.example.test:5000" at the test registry (no name resolution, no network).
  const tunnels: string[] = [];
  const open = new Set<net.Socket>();
  const proxy = http.createServer((req, res) => {
    tunnels.push(`plain ${req.method} ${req.url}`);
    res.writeHead(502).end();
  });
  proxy.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    tunnels.push(String(req.url));
    const [host, port] = reg.addr.split(':');
    const upstream = net.connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => { open.delete(s); client.destroy(); upstream.destroy(); });
    }
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const proxyUrl = `http://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
  let d: Daemon | undefined;
  try {
    d = await startDaemon({ config: { proxies: { 'http-proxy': proxyUrl, 'https-proxy': proxyUrl }, 'insecure-registries': ['registry.example.test:5000'] } });
    await bootstrapBusybox(d);
    ok(await d.cli(['tag', 'busybox', `${reg.addr}/proxied/busybox:1`]));
    ok(await d.cli(['push', `${reg.addr}/proxied/busybox:1`]), 'push to 127.0.0.1');
    assert.deepEqual(tunnels, [], 'loopback registries are reached directly');
    ok(await d.cli(['pull', 'registry.example.test:5000/proxied/busybox:1']), 'pull through the proxy');
    assert.ok(tunnels.length > 0 && tunnels.every((t) => t === 'registry.example.test:5000'), tunnels.join(', '));
    const img = JSON.parse(ok(await d.cli(['image', 'inspect', 'registry.example.test:5000/proxied/busybox:1'])).stdout)[0];
    assert.ok(img.RepoDigests.some((r: string) => r.startsWith('registry.example.test:5000/proxied/busybox@sha256:')), JSON.stringify(img.RepoDigests));
  } finally {
    await d?.stop();
    for (const s of open) s.destroy();
    proxy.close();
    await reg.stop();
  }
});
