/**
 * A hostile or broken client over the unix socket: malformed request lines
 * and paths, clients that stall or vanish on every streaming route, cp
 * through symlinks planted in volumes and bind mounts, hostile tars,
 * oversized bodies, Upgrade on plain routes. After each: the daemon answers
 * a ping; at the end no mount, spool file or descriptor is left behind and
 * no host file was read or written.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type * as tar from 'tar-stream';
import { startDaemon, bootstrapBusybox, mountsUnder, type Daemon, type ApiResult } from '../helpers/daemon';
import { tarOf } from '../helpers/tar';

let d: Daemon;
let hostDir = '';
let bindDir = '';
let ctr = '';        // stopped container with a volume at /data and a bind mount at /mnt/b, symlinks planted
const SECRET = 'host secret that no client may read\n';

before(async () => {
  d = await startDaemon({ config: { 'api-limits': { 'header-timeout': 2, 'json-body-bytes': 1 << 20, 'upload-body-bytes': 4 << 20, 'stream-stall-timeout': 3 } } });
  await bootstrapBusybox(d);
  hostDir = path.join(d.base, 'host-only');
  bindDir = path.join(d.base, 'bind');
  fs.mkdirSync(hostDir);
  fs.mkdirSync(bindDir);
  fs.writeFileSync(path.join(hostDir, 'secret'), SECRET);
  // What a container's own processes can do to the volume and the bind mount it was given.
  const c = await d.api('POST', '/containers/create', {
    Image: 'busybox',
    Cmd: ['sh', '-c', `ln -s / /data/vroot && ln -s ${hostDir} /data/vhost && ln -s / /mnt/b/broot && ln -s ${hostDir} /mnt/b/bhost && echo in-volume > /data/own && dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null`],
    HostConfig: { Binds: ['hostilevol:/data', `${bindDir}:/mnt/b`] },
  });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  ctr = c.body.Id;
  assert.equal((await d.api('POST', `/containers/${ctr}/start`)).status, 204);
  const w = await d.api('POST', `/containers/${ctr}/wait`);
  assert.equal(w.body.StatusCode, 0, d.log());
});
after(async () => { await d?.stop(); });

/**
 * Sends raw bytes on a fresh connection; resolves with what came back once a
 * whole response is in (Content-Length), the peer closes, or `ms` pass.
 */
function raw(bytes: string | Buffer, ms = 3000): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(d.socket);
    let out = '';
    const done = () => { clearTimeout(t); s.destroy(); resolve(out); };
    const t = setTimeout(done, ms);
    s.on('data', (b) => {
      out += b.toString('latin1');
      const end = out.indexOf('\r\n\r\n');
      const len = /\r\ncontent-length: *(\d+)/i.exec(out.slice(0, end));
      if (end !== -1 && len && out.length >= end + 4 + Number(len[1])) done();
    });
    s.on('error', done);
    s.on('close', done);
    s.write(bytes);
  });
}

async function alive(what: string): Promise<void> {
  const r = await d.api('GET', '/_ping');
  assert.equal(r.status, 200, `daemon not answering after ${what}\n${d.log().split('\n').slice(-20).join('\n')}`);
}

function statusOf(resp: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(resp)?.[1] ?? 0);
}

function jsonMessage(resp: string): string {
  const body = resp.slice(resp.indexOf('\r\n\r\n') + 4);
  return JSON.parse(body).message;
}

/** A 4xx with a JSON message, then the daemon still answers. */
async function refused(r: ApiResult, what: string, status?: number): Promise<void> {
  assert.ok(r.status >= 400 && r.status < 500, `${what}: HTTP ${r.status} ${r.raw.toString()}`);
  if (status) assert.equal(r.status, status, `${what}: ${r.raw.toString()}`);
  assert.equal(typeof r.body?.message, 'string', `${what}: no JSON message: ${r.raw.toString()}`);
  await alive(what);
}

function fdCount(): number {
  return fs.readdirSync(`/proc/${d.pid}/fd`).length;
}

function spoolFiles(): string[] {
  try { return fs.readdirSync(path.join(d.dataRoot, 'tmp')); } catch { return []; }
}

/** Open descriptors of the daemon on files that were deleted (a spool held open). */
function deletedOpenFiles(): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync(`/proc/${d.pid}/fd`)) {
    try {
      const t = fs.readlinkSync(`/proc/${d.pid}/fd/${fd}`);
      if (t.endsWith(' (deleted)') && t.startsWith(d.base)) out.push(t);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

/** Resolves once the daemon's state below has settled (streams torn down after a client vanished). */
async function settled(check: () => boolean, what: string): Promise<void> {
  // Bounded: the daemon's cleanup after a vanished client is event-driven and quick.
  for (let i = 0; i < 100; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what} did not settle`);
}

test('malformed request lines and paths are answered, never end the daemon', async () => {
  const lines = [
    'GET // HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET //containers/json HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /containers/%ZZ/json HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /exec/%E0%A4%A/json HTTP/1.1\r\nHost: x\r\n\r\n',
    'POST /images/%/tag?repo=x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n',
    'GET /v1.47/containers/%C0%AF/json HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /volumes/%00 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET * HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET http://evil/containers/json HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /v9.99/_ping HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /v1.47/../../_ping?% HTTP/1.1\r\nHost: x\r\n\r\n',
    'BREW /coffee HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /_ping HTTP/9.9\r\n\r\n',
    '\r\n\r\n\r\n',
    'GET\r\n\r\n',
    'GET /containers/json HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
    'GET /containers/json HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
    'POST /containers/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"Ima\r\n0\r\n\r\n',
    `GET /${'a'.repeat(70000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
    `GET /_ping HTTP/1.1\r\n${'X-A: b\r\n'.repeat(3000)}\r\n`,
    'GET /containers/json?filters=%7B%22 HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET /containers/json?all=%ZZ&limit=%%% HTTP/1.1\r\nHost: x\r\n\r\n',
  ];
  for (const line of lines) {
    const resp = await raw(line);
    const what = JSON.stringify(line.slice(0, 60));
    const status = statusOf(resp);
    // Either a 4xx (with a JSON message when it came from a route) or a 200 for the harmless ones.
    assert.ok(status === 0 || status < 500, `${what}: ${resp.slice(0, 300)}`);
    if (status >= 400 && /application\/json/.test(resp)) assert.equal(typeof jsonMessage(resp), 'string', what);
    await alive(what);
  }
  const esc = await raw('GET /containers/%ZZ/json HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.equal(statusOf(esc), 400);
  assert.match(jsonMessage(esc), /invalid URL escape/);
});

test('a half-sent request is closed after the header timeout', async () => {
  // The daemon (header-timeout 2 s) must close it; the test gives up only after 30 s.
  const s = net.connect(d.socket);
  let out = '';
  s.on('data', (b) => { out += b.toString('latin1'); });
  s.on('error', () => undefined);
  s.write('GET /_ping HTTP/1.1\r\nHo');
  const closedByDaemon = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => { s.destroy(); resolve(false); }, 30_000);
    s.on('close', () => { clearTimeout(t); resolve(true); });
  });
  assert.ok(closedByDaemon, 'a half-sent request kept its connection open');
  assert.ok(out === '' || statusOf(out) === 408, out);
  await alive('half-sent request');
});

test('half-sent JSON bodies hold no lock and create nothing', async () => {
  // Headers complete, body cut short, client silent: the container stays usable meanwhile.
  const before = (await d.api('GET', '/containers/json?all=1')).body.length;
  const open: net.Socket[] = [];
  for (const [p, body] of [[`/containers/${ctr}/update`, '{"Memory":'], [`/containers/${ctr}/exec`, '{"Cmd":["tr'],
    ['/containers/create?name=halfsent', '{"Image":"busy'], ['/volumes/create', '{"Name":"half'], ['/networks/create', '{"Name":"half']]) {
    const s = net.connect(d.socket);
    s.on('error', () => undefined);
    s.write(`POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n${body}`);
    open.push(s);
  }
  assert.equal((await d.api('POST', `/containers/${ctr}/start`)).status, 204, 'start blocked by a half-sent body');
  assert.equal((await d.api('POST', `/containers/${ctr}/wait`)).status, 200);
  for (const s of open) s.destroy();
  await alive('half-sent bodies');
  assert.equal((await d.api('GET', '/containers/json?all=1')).body.length, before, 'a container was created');
  assert.equal((await d.api('GET', '/volumes/half')).status, 404);
  assert.equal((await d.api('GET', '/networks/half')).status, 404);
});

test('Connection: Upgrade on a plain route is refused before anything happens', async () => {
  const body = JSON.stringify({ Image: 'busybox', Cmd: ['true'] });
  const resp = await raw(`POST /containers/create?name=upgraded HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  assert.equal(statusOf(resp), 400, resp);
  assert.match(jsonMessage(resp), /Upgrade/);
  assert.equal((await d.api('GET', '/containers/upgraded/json')).status, 404, 'the container was created anyway');
  const vol = await raw('POST /volumes/create HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{"Name":"upvo"}');
  assert.equal(statusOf(vol), 400, vol);
  assert.equal((await d.api('GET', '/volumes/upvo')).status, 404);
  await alive('upgrade');
});

test('oversized bodies are refused with a 413 and the daemon stays small', async () => {
  const big = Buffer.alloc(3 << 20, 0x20);
  big.write('{"Image":"busybox","Labels":{"a":"', 0);
  for (const [method, p] of [['POST', '/containers/create?name=huge'], ['POST', `/containers/${ctr}/start`], ['POST', `/containers/${ctr}/update`],
    ['POST', '/volumes/create'], ['POST', `/containers/${ctr}/exec`], ['POST', `/commit?container=${ctr}`],
    ['POST', '/networks/create'], ['POST', '/networks/bridge/connect']] as const) {
    const r = await d.api(method, p, big, { 'Content-Type': 'application/json' }).catch((e) => ({ status: 0, body: undefined, raw: Buffer.from(String(e)), headers: {} }) as ApiResult);
    // The daemon may close before the client finished sending; then the client sees a reset.
    if (r.status !== 0) await refused(r, `${method} ${p} with 3 MB`, 413);
    else await alive(`${method} ${p} with 3 MB`);
  }
  assert.equal((await d.api('GET', '/containers/huge/json')).status, 404);
});

test('cp never reads or writes host files through symlinks in volumes and bind mounts', async () => {
  for (const p of ['/data/vroot/etc/passwd', '/data/vhost/secret', '/mnt/b/bhost/secret', '/mnt/b/broot/etc/passwd', `/data/vroot${hostDir}/secret`]) {
    const r = await d.api('GET', `/containers/${ctr}/archive?path=${encodeURIComponent(p)}`);
    assert.ok(!r.raw.includes(Buffer.from(SECRET)), `GET ${p} returned the host's file`);
    const h = await d.api('HEAD', `/containers/${ctr}/archive?path=${encodeURIComponent(p)}`);
    assert.ok(h.status === 200 || h.status === 404, `HEAD ${p}: ${h.status}`);
  }
  // The container's own /etc/passwd comes back through the volume's symlink to `/`.
  const own = await d.api('GET', `/containers/${ctr}/archive?path=/data/vroot/etc/passwd`);
  assert.equal(own.status, 200);
  assert.ok(own.raw.includes(Buffer.from('root:x:0:0')));
  assert.ok(!own.raw.includes(Buffer.from(fs.readFileSync('/etc/passwd', 'utf8').split('\n')[1] ?? 'never')) || fs.readFileSync('/etc/passwd', 'utf8').includes('root:x:0:0:root:/root:/bin/sh'));
  const inVol = await d.api('GET', `/containers/${ctr}/archive?path=/data/own`);
  assert.equal(inVol.status, 200);
  assert.ok(inVol.raw.includes(Buffer.from('in-volume')));

  const file = await tarOf([{ header: { name: 'planted', mode: 0o644 }, body: 'from the client\n' }]);
  for (const dest of ['/data/vhost', '/mnt/b/bhost', `/data/vroot${hostDir}`, '/mnt/b/broot/tmp']) {
    const r = await d.api('PUT', `/containers/${ctr}/archive?path=${encodeURIComponent(dest)}`, file, { 'Content-Type': 'application/x-tar' });
    assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), `PUT ${dest}: ${r.status} ${r.raw}`);
    await alive(`PUT ${dest}`);
  }
  assert.deepEqual(fs.readdirSync(hostDir), ['secret'], 'a file was written into the host directory');
  assert.deepEqual(fs.readdirSync(bindDir).sort(), ['bhost', 'broot'], 'the bind mount was written outside its symlink targets');
});

test('hostile tars are refused with a 4xx and write nothing outside the container', async () => {
  const cases: Array<[string, Array<{ header: Partial<tar.Header> & { name: string }; body?: string }>]> = [
    ['symlink to a host dir, then a file through it', [
      { header: { name: 'esc', type: 'symlink', linkname: hostDir } },
      { header: { name: 'esc/planted', mode: 0o644 }, body: 'x' }]],
    ['symlink to /, then a hard link to a host path through it', [
      { header: { name: 'sl', type: 'symlink', linkname: '/' } },
      { header: { name: 'hl', type: 'link', linkname: `sl${hostDir}/secret` } }]],
    ['hard link to an absolute host path', [{ header: { name: 'hl2', type: 'link', linkname: `${hostDir}/secret` } }]],
    ['hard link with ..', [{ header: { name: 'hl3', type: 'link', linkname: '../../../../etc/passwd' } }]],
    ['member name with ..', [{ header: { name: '../../../../tmp/escaped', mode: 0o644 }, body: 'x' }]],
    ['absolute member name', [{ header: { name: `${hostDir}/planted`, mode: 0o644 }, body: 'x' }]],
    ['char device', [{ header: { name: 'null2', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 } }]],
    ['block device', [{ header: { name: 'sda2', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 } }]],
    ['volume symlink to /, then a file into the host through the volume', [
      { header: { name: `data/vroot${hostDir}/planted`, mode: 0o644 }, body: 'x' }]],
    ['hard link to a directory', [{ header: { name: 'hd', type: 'link', linkname: 'etc' } }]],
  ];
  for (const [what, entries] of cases) {
    const r = await d.api('PUT', `/containers/${ctr}/archive?path=/`, await tarOf(entries), { 'Content-Type': 'application/x-tar' });
    assert.ok(r.status === 200 || (r.status >= 400 && r.status < 500), `${what}: ${r.status} ${r.raw}`);
    if (r.status !== 200) assert.equal(typeof r.body?.message, 'string', what);
    await alive(what);
  }
  assert.deepEqual(fs.readdirSync(hostDir), ['secret'], 'a hostile tar wrote into the host directory');
  assert.equal(fs.readFileSync(path.join(hostDir, 'secret'), 'utf8'), SECRET);
  assert.equal(fs.statSync(path.join(hostDir, 'secret')).nlink, 1, 'a hard link to the host file was made');
  assert.ok(!fs.existsSync('/tmp/escaped'));
  for (const dev of ['null2', 'sda2']) {
    const h = await d.api('HEAD', `/containers/${ctr}/archive?path=/${dev}`);
    assert.equal(h.status, 404, `device ${dev} was created`);
  }
  const garbage = await d.api('PUT', `/containers/${ctr}/archive?path=/`, Buffer.alloc(2048, 7), { 'Content-Type': 'application/x-tar' });
  await refused(garbage, 'garbage tar', 400);
});

test('clients that stall and vanish on streaming routes leave no mount, lock, spool or descriptor', async () => {
  const fds = fdCount();
  const mountsBefore = mountsUnder(d.execRoot).length;
  const routes = [
    `/containers/${ctr}/archive?path=/`,
    `/containers/${ctr}/export`,
    '/images/busybox/get',
    `/images/get?names=busybox`,
    `/containers/${ctr}/logs?stdout=1&follow=1`,
    '/events',
    `/containers/${ctr}/stats`,
  ];
  for (const route of routes) {
    // Read nothing, then go away.
    await new Promise<void>((resolve) => {
      const s = net.connect(d.socket);
      s.on('error', () => undefined);
      s.write(`GET ${route} HTTP/1.1\r\nHost: x\r\n\r\n`);
      s.pause();
      setTimeout(() => { s.destroy(); resolve(); }, 700);
    });
    await alive(`stall+vanish on ${route}`);
  }
  // Keep the connection open without reading: the stall timeout (3 s) cuts the export, so the
  // container's lock is not held for as long as the client waits.
  const staller = net.connect(d.socket);
  staller.on('error', () => undefined);
  staller.write(`GET /containers/${ctr}/export HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
  staller.pause();
  assert.equal((await d.api('POST', `/containers/${ctr}/start`)).status, 204, 'start waited on a stalled export');
  // A paused socket does not see the close; reading now shows the (cut or complete) response end.
  const closed = new Promise<void>((resolve) => staller.on('close', () => resolve()));
  staller.resume();
  await closed;
  await d.api('POST', `/containers/${ctr}/wait`);
  await settled(() => mountsUnder(path.join(d.execRoot, 'm')).length === 0, 'temporary rootfs mounts');
  assert.ok(mountsUnder(d.execRoot).length <= mountsBefore, `mounts left: ${mountsUnder(d.execRoot).join(', ')}`);
  await settled(() => fdCount() <= fds + 2, `descriptors (${fds} before, ${fdCount()} now)`);
});

test('a stalled upload holds no lock; an aborted one leaves no spool file', async () => {
  // Send half a tar and stall: stop and start of the container must still work meanwhile.
  const half = (await tarOf([{ header: { name: 'big', size: 1 << 20, mode: 0o644 }, body: 'y'.repeat(1 << 20) }])).subarray(0, 600_000);
  const up = net.connect(d.socket);
  up.on('error', () => undefined);
  up.write(`PUT /containers/${ctr}/archive?path=/tmp HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: ${(1 << 20) + 2048}\r\n\r\n`);
  up.write(half);
  await settled(() => spoolFiles().some((f) => f.startsWith('upload-')), 'spool file to appear');
  assert.equal((await d.api('POST', `/containers/${ctr}/start`)).status, 204, 'start blocked by a stalled upload');
  await d.api('POST', `/containers/${ctr}/wait`);
  up.destroy();
  await settled(() => !spoolFiles().some((f) => f.startsWith('upload-')), 'spool file removal');
  await settled(() => deletedOpenFiles().length === 0, 'deleted-but-open spool files');
  await alive('aborted upload');

  // An aborted load of a gzip stream declaring a huge member leaves nothing open either.
  const gz = Buffer.from('1f8b0800000000000003', 'hex');
  const load = net.connect(d.socket);
  load.on('error', () => undefined);
  load.write(`POST /images/load HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nTransfer-Encoding: chunked\r\n\r\n`);
  const hdr = await tarOf([{ header: { name: 'huge.tar', size: 10 * 1024 ** 3, mode: 0o644 } }]);
  const chunk = Buffer.concat([gz, hdr.subarray(0, 512), Buffer.alloc(200_000)]);
  load.write(`${chunk.length.toString(16)}\r\n`);
  load.write(chunk);
  load.write('\r\n');
  await new Promise((r) => setTimeout(r, 300));
  load.destroy();
  await settled(() => deletedOpenFiles().length === 0, 'deleted-but-open load spool');
  await settled(() => spoolFiles().length === 0, `load spool dirs (${spoolFiles().join(', ')})`);
  await alive('aborted load');
});

/** Wrong JSON types, per field, for the bodies with a schema; each must be a 400 naming the field, nothing created. */
const WRONG_TYPES: Record<string, Array<[string, unknown]>> = {
  create: [
    ['Hostname', 5], ['User', []], ['AttachStdin', 'yes'], ['Tty', 1], ['Env', [1, 2]], ['Env', { A: 'b' }], ['Env', 'A=b'],
    ['Cmd', 123], ['Cmd', [1]], ['Entrypoint', { a: 1 }], ['Image', 7], ['Labels', 'abc'], ['Labels', { a: 1 }],
    ['WorkingDir', false], ['StopSignal', 15.5], ['StopTimeout', '10'], ['ExposedPorts', ['80/tcp']], ['Volumes', 'x'],
    ['Healthcheck', 'CMD true'], ['Healthcheck', { Test: 'notarray' }], ['Healthcheck', { Interval: '1s' }],
    ['HostConfig', 'bad'], ['HostConfig', { Binds: '/tmp:/x' }], ['HostConfig', { Binds: [123] }], ['HostConfig', { Binds: [null] }],
    ['HostConfig', { Mounts: [null] }], ['HostConfig', { Mounts: 'x' }], ['HostConfig', { VolumesFrom: [1] }],
    ['HostConfig', { Memory: 'lots' }], ['HostConfig', { CpuShares: '512' }], ['HostConfig', { NanoCpus: '1e9' }],
    ['HostConfig', { PidsLimit: 'many' }], ['HostConfig', { Memory: 1.5 }], ['HostConfig', { Privileged: 'true' }],
    ['HostConfig', { PortBindings: { '80/tcp': [{ HostPort: 80 }] } }], ['HostConfig', { PortBindings: { '80/tcp': 'x' } }],
    ['HostConfig', { RestartPolicy: 'always' }], ['HostConfig', { LogConfig: { Type: 5 } }], ['HostConfig', { Dns: '1.1.1.1' }],
    ['HostConfig', { Ulimits: [{ Name: 'nofile', Soft: '1' }] }], ['HostConfig', { Sysctls: { a: 1 } }], ['HostConfig', { CapAdd: 'ALL' }],
    ['HostConfig', { ShmSize: '64m' }], ['HostConfig', { AutoRemove: 'yes' }], ['HostConfig', { NetworkMode: 1 }],
    ['NetworkingConfig', { EndpointsConfig: 'x' }], ['NetworkingConfig', { EndpointsConfig: { n: { Aliases: 'a' } } }],
  ],
  update: [['Memory', 'lots'], ['CpuShares', '2'], ['PidsLimit', 'x'], ['RestartPolicy', 'always'], ['RestartPolicy', { MaximumRetryCount: '3' }], ['BlkioWeight', '10']],
  commit: [['Cmd', 5], ['Env', 'x'], ['Labels', [1]], ['ExposedPorts', 5]],
  exec: [['Cmd', 'ls'], ['Cmd', [1]], ['Env', { A: 1 }], ['Tty', 'yes'], ['User', 0], ['Privileged', 'no'], ['ConsoleSize', ['a']], ['WorkingDir', 1]],
  volume: [['Name', 5], ['Driver', []], ['DriverOpts', { a: 1 }], ['Labels', 'x']],
  network: [['Name', 5], ['Driver', 1], ['Internal', 'yes'], ['IPAM', 'x'], ['IPAM', { Config: [{ Subnet: 10 }] }], ['Options', { a: 1 }], ['Labels', [1]]],
};

test('wrong JSON types in every body with a schema: 400 naming the field, nothing created', async () => {
  const before = (await d.api('GET', '/containers/json?all=1')).body.length;
  const volsBefore = (await d.api('GET', '/volumes')).body.Volumes.length;
  const execs = [] as string[];
  let n = 0;
  for (const [kind, cases] of Object.entries(WRONG_TYPES)) {
    for (const [field, value] of cases) {
      const base: Record<string, unknown> = kind === 'create' ? { Image: 'busybox', Cmd: ['true'] } : kind === 'exec' ? { Cmd: ['true'], AttachStdout: true }
        : kind === 'network' ? { Name: 'wrongtypenet' } : {};
      const body = { ...base, [field]: value };
      const [method, p] = ({
        create: ['POST', `/containers/create?name=wrongtype${n++}`],
        update: ['POST', `/containers/${ctr}/update`],
        commit: ['POST', `/commit?container=${ctr}&repo=wrongtype`],
        exec: ['POST', `/containers/${ctr}/exec`],
        volume: ['POST', '/volumes/create'],
        network: ['POST', '/networks/create'],
      } as Record<string, [string, string]>)[kind];
      const r = await d.api(method, p, body);
      const what = `${kind} ${field}=${JSON.stringify(value)}`;
      await refused(r, what, 400);
      assert.match(r.body.message, new RegExp(`json: cannot unmarshal \\w+ into Go (struct field \\w+\\.${field}|value)`), `${what}: ${r.body.message}`);
      if (kind === 'exec' && r.status === 201) execs.push(r.body.Id);
    }
  }
  assert.equal((await d.api('GET', '/containers/json?all=1')).body.length, before, 'a container was created');
  assert.equal((await d.api('GET', '/volumes')).body.Volumes.length, volsBefore, 'a volume was created');
  assert.equal((await d.api('GET', '/images/wrongtype/json')).status, 404, 'an image was committed');
  assert.equal((await d.api('GET', '/networks/wrongtypenet')).status, 404, 'a network was created');
  const m = await d.api('POST', '/containers/create', { Image: 'busybox', Env: [1] });
  assert.equal(m.body.message, 'json: cannot unmarshal number into Go struct field ContainerConfig.Env of type string');
});

test('bodies nested 100k deep, null and non-object filters, null bodies', async () => {
  const deep = '{"Image":"busybox","Labels":' + '{"a":'.repeat(100_000) + '"x"' + '}'.repeat(100_000) + '}';
  await refused(await d.api('POST', '/containers/create', deep, { 'Content-Type': 'application/json' }), 'labels nested 100k deep', 400);
  const arr = '['.repeat(100_000) + ']'.repeat(100_000);
  await refused(await d.api('POST', '/volumes/create', arr, { 'Content-Type': 'application/json' }), 'array nested 100k deep', 400);
  for (const route of ['/containers/json', '/images/json', '/volumes', '/events?until=1']) {
    for (const f of ['null', '5', '"x"', '[1]', '{"label":5}', '{"label":[1]}', '{"label":{"a":"yes"}}', '[[[[[[[[[[[[]]]]]]]]]]]]']) {
      await refused(await d.api('GET', `${route}${route.includes('?') ? '&' : '?'}filters=${encodeURIComponent(f)}`), `${route} filters=${f}`, 400);
    }
  }
  for (const route of ['/containers/prune', '/images/prune', '/volumes/prune']) {
    await refused(await d.api('POST', `${route}?filters=null`), `${route} filters=null`, 400);
  }
  await refused(await d.api('POST', '/containers/create', 'null', { 'Content-Type': 'application/json' }), 'create null', 400);
  await refused(await d.api('POST', '/containers/create', '[]', { 'Content-Type': 'application/json' }), 'create []', 400);
  // Nulls are Go's zero values: accepted, as dockerd does.
  const ok = await d.api('POST', '/containers/create?name=nulls', { Image: 'busybox', Cmd: null, Env: null, HostConfig: { Binds: null, Memory: null }, Labels: null });
  assert.equal(ok.status, 201, ok.raw.toString());
  assert.equal((await d.api('DELETE', '/containers/nulls')).status, 204);
});

test('values that parse but cannot work are refused at create, not at start', async () => {
  const before = (await d.api('GET', '/containers/json?all=1')).body.length;
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['unknown stop signal', { StopSignal: 'SIGNOPE' }, /Invalid signal: SIGNOPE/],
    ['unknown log driver', { HostConfig: { LogConfig: { Type: 'nope' } } }, /no log driver named 'nope'/],
    ['exposed port that is no port', { ExposedPorts: { notaport: {} } }, /invalid port specification/],
    ['port 70000', { ExposedPorts: { '70000/tcp': {} } }, /invalid port specification/],
    ['host port that is no number', { HostConfig: { PortBindings: { '80/tcp': [{ HostPort: 'abc' }] } } }, /invalid hostPort: abc/],
    ['negative shm size', { HostConfig: { ShmSize: -1 } }, /ShmSize/],
    ['negative memory', { HostConfig: { Memory: -5 } }, /memory/],
    ['negative healthcheck retries', { Healthcheck: { Test: ['CMD', 'true'], Retries: -1 } }, /Retries/],
    ['healthcheck interval of 1ns', { Healthcheck: { Test: ['CMD', 'true'], Interval: 1 } }, /Interval/],
    ['a storage size no snapshot enforces', { HostConfig: { StorageOpt: { size: '120G' } } }, /supported only for overlay over xfs with 'pquota'/],
    ['an unknown storage option', { HostConfig: { StorageOpt: { nope: '1' } } }, /Unknown option nope/],
  ];
  for (const [what, extra, re] of cases) {
    const r = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], ...extra });
    await refused(r, what, 400);
    assert.match(r.body.message, re, what);
  }
  assert.equal((await d.api('GET', '/containers/json?all=1')).body.length, before, 'a container was created');
  for (const q of ['h=-1&w=80', 'h=24&w=999999999', 'h=x&w=1']) {
    await refused(await d.api('POST', `/containers/${ctr}/resize?${q}`), `resize ${q}`, 400);
  }
});

test('uploads over upload-body-bytes are refused with a 413 and leave no spool', async () => {
  const big = await tarOf([{ header: { name: 'big', size: 5 << 20, mode: 0o644 }, body: 'z'.repeat(5 << 20) }]);
  const routes: Array<[string, string]> = [
    ['PUT', `/containers/${ctr}/archive?path=/tmp`],
    ['POST', '/images/load'],
    ['POST', '/images/create?fromSrc=-&repo=toolarge'],
  ];
  for (const [method, p] of routes) {
    const r = await d.api(method, p, big, { 'Content-Type': 'application/x-tar' }).catch((e) => ({ status: 0, raw: Buffer.from(String(e)), body: undefined, headers: {} }) as ApiResult);
    const text = r.raw.toString();
    // A streamed answer (load, import) may carry the refusal in-band once its headers went out.
    assert.ok(r.status === 413 || /larger than 4194304 bytes/.test(text) || r.status === 0, `${method} ${p}: ${r.status} ${text.slice(0, 300)}`);
    await alive(`${method} ${p} over the upload limit`);
  }
  assert.equal((await d.api('GET', '/images/toolarge/json')).status, 404);
  assert.equal((await d.api('HEAD', `/containers/${ctr}/archive?path=/tmp/big`)).status, 404);
  await settled(() => spoolFiles().length === 0, `spool files (${spoolFiles().join(', ')})`);
  await settled(() => deletedOpenFiles().length === 0, 'deleted-but-open spool files');
});
