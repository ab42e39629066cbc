/**
 * Transport-level behaviour of the container/system routes, against a real
 * ApiServer on a temp unix socket. The ContainerService here is a test
 * double: these tests check only HTTP shape (headers flushed before a wait
 * ends, 304 without body, hijack bytes as in the wire captures, filters),
 * never container behaviour.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Duplex, Writable } from 'node:stream';
import { Router } from '../../src/api/router';
import { ApiServer } from '../../src/api/server';
import { registerSystemRoutes, parseApiTimestamp, eventMatches } from '../../src/api/routes/system';
import { registerContainerRoutes } from '../../src/api/routes/containers';
import { EventBus } from '../../src/engine/events';
import { BerthError } from '../../src/common/errors';
import type { Services } from '../../src/engine/services';
import { defaultConfig } from '../../src/engine/config';

// ------------------------------------------------------------------ double

interface Calls { [k: string]: any[] }
const calls: Calls = {};
const record = (k: string, v: any) => { (calls[k] ??= []).push(v); };

let waitControl: { resolve: (v: any) => void; signal: AbortSignal } | undefined;
let logsControl: { out: Writable; signal: AbortSignal; done: () => void } | undefined;

const C1 = 'a'.repeat(64);
const TTY1 = 'b'.repeat(64);

function notFoundC(ref: string): BerthError {
  return new BerthError('not-found', `No such container: ${ref}`);
}

const containers: any = {
  async create(name: string | undefined, body: any) {
    record('create', { name, body });
    if (body.Image === 'busybox') throw new BerthError('not-found', 'No such image: busybox:latest');
    return { Id: C1, Warnings: [] };
  },
  async list(opts: any) { record('list', opts); return [{ Id: C1, Names: ['/web'], State: 'running', Created: 1, Labels: {} }]; },
  stateCounts() { return { total: 1, running: 1, paused: 0, stopped: 0 }; },
  async inspect(ref: string) {
    if (ref === C1 || ref === 'web') return { Id: C1, Name: '/web', Config: { Tty: false } };
    if (ref === TTY1 || ref === 'tty') return { Id: TTY1, Name: '/tty', Config: { Tty: true } };
    throw notFoundC(ref);
  },
  async start(ref: string) {
    await containers.inspect(ref);
    record('start', ref);
    if (ref === 'web') throw new BerthError('not-modified', 'container already started');
  },
  async stop(ref: string, opts: any) { record('stop', { ref, opts }); },
  async kill(ref: string, signal?: string) {
    record('kill', { ref, signal });
    if (ref === 'ks') throw notFoundC(ref);
    if (ref === 'yy2') throw new BerthError('conflict', `Container ${C1} is not running`);
  },
  async wait(ref: string, cond: string, signal: AbortSignal) {
    record('wait', { ref, cond });
    return new Promise((resolve, reject) => {
      waitControl = { resolve, signal };
      signal.addEventListener('abort', () => { record('wait-aborted', ref); reject(new Error('aborted')); });
    });
  },
  async resize(ref: string, h: number, w: number) { record('resize', { ref, h, w }); },
  async logs(ref: string, opts: any, out: Writable, signal: AbortSignal) {
    record('logs', { ref, opts });
    return new Promise<void>((resolve) => {
      logsControl = { out, signal, done: resolve };
      signal.addEventListener('abort', () => { record('logs-aborted', ref); resolve(); });
    });
  },
  async attach(ref: string, opts: any, sock: Duplex) {
    record('attach', { ref, opts });
    // Echo stdin back as a stdout frame after the client half-closes, then end.
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve) => {
      sock.on('data', (d: Buffer) => chunks.push(d));
      sock.on('end', () => resolve());
    });
    const data = Buffer.concat([Buffer.from('hi\n'), ...chunks]);
    const hdr = Buffer.alloc(8); hdr[0] = 1; hdr.writeUInt32BE(data.length, 4);
    sock.end(Buffer.concat([hdr, data]));
  },
  async execCreate(ref: string, body: any) { record('execCreate', { ref, body }); return { Id: 'e'.repeat(64) }; },
  async execInspect(id: string) {
    if (id !== 'e'.repeat(64)) throw new BerthError('not-found', `No such exec instance: ${id}`);
    return { ID: id, Running: false, ExitCode: 0, ProcessConfig: { tty: false } };
  },
  async execStart(id: string, body: any, sock: Duplex | undefined) {
    record('execStart', { id, body, hijacked: Boolean(sock) });
    if (!sock) return;
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve) => {
      sock.on('data', (d: Buffer) => chunks.push(d));
      sock.on('end', () => resolve());
    });
    const data = Buffer.concat(chunks);
    const hdr = Buffer.alloc(8); hdr[0] = 1; hdr.writeUInt32BE(data.length, 4);
    sock.end(Buffer.concat([hdr, data]));
  },
};

// ------------------------------------------------------------------ server

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-api-unit-'));
const sock = path.join(dir, 'api.sock');
const events = new EventBus();
let server: ApiServer;

before(async () => {
  const services = {
    config: { ...defaultConfig(), dataRoot: path.join(dir, 'data'), execRoot: dir, hosts: [], runtime: '/nonexistent/runc', conmon: '/nonexistent/conmon', defaultNetwork: 'none', debug: false },
    events,
    images: { list: async () => [] } as any,
    containers,
    startedAt: new Date(),
  } as unknown as Services;
  const router = new Router();
  registerSystemRoutes(router, services);
  registerContainerRoutes(router, services);
  server = new ApiServer(router);
  await server.listenUnix(sock);
});

after(async () => {
  await server.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

// ------------------------------------------------------------------ raw client

/** A raw connection that records everything the server sends. */
class Raw {
  readonly s: net.Socket;
  buf = Buffer.alloc(0);
  ended = false;
  private waiters: Array<() => void> = [];
  constructor() {
    this.s = net.connect(sock);
    this.s.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.kick(); });
    this.s.on('end', () => { this.ended = true; this.kick(); });
    this.s.on('close', () => { this.ended = true; this.kick(); });
    this.s.on('error', () => undefined);
  }
  private kick() { const w = this.waiters; this.waiters = []; w.forEach((f) => f()); }
  write(s: string | Buffer) { this.s.write(s); }
  text() { return this.buf.toString('latin1'); }
  async until(pred: () => boolean, ms = 3000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out; got so far: ${JSON.stringify(this.text())}`);
      await new Promise<void>((r) => { this.waiters.push(r); setTimeout(r, 50); });
    }
  }
  close() { this.s.destroy(); }
}

function req(method: string, p: string, headers: Record<string, string> = {}, body = ''): string {
  const h: Record<string, string> = { Host: 'api.moby.localhost', 'User-Agent': 'Docker-Client/28.2.2 (linux)', ...headers };
  if (body || method === 'POST') h['Content-Length'] = String(Buffer.byteLength(body));
  return `${method} ${p} HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`;
}

/** Splits one HTTP response off the front of `text` (Content-Length bodies only). */
function header(text: string, name: string): string | undefined {
  const head = text.split('\r\n\r\n')[0];
  const m = new RegExp(`^${name}: (.*)$`, 'mi').exec(head);
  return m?.[1];
}

async function simple(method: string, p: string, headers: Record<string, string> = {}, body = ''): Promise<{ status: number; head: string; body: string }> {
  const c = new Raw();
  c.write(req(method, p, { Connection: 'close', ...headers }, body));
  await c.until(() => c.ended);
  const t = c.text();
  const i = t.indexOf('\r\n\r\n');
  return { status: Number(t.slice(9, 12)), head: t.slice(0, i), body: t.slice(i + 4) };
}

// ------------------------------------------------------------------ tests

test('HEAD /_ping: headers as dockerd sends them, empty body; GET /_ping: OK', async () => {
  const c = new Raw();
  c.write(req('HEAD', '/_ping'));
  await c.until(() => c.text().includes('\r\n\r\n'));
  const t = c.text();
  assert.match(t, /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(header(t, 'Api-Version'), '1.47');
  assert.equal(header(t, 'Ostype'), 'linux');
  assert.equal(header(t, 'Docker-Experimental'), 'false');
  assert.equal(header(t, 'Cache-Control'), 'no-cache, no-store, must-revalidate');
  assert.equal(header(t, 'Pragma'), 'no-cache');
  assert.equal(header(t, 'Content-Length'), '0');
  assert.equal(header(t, 'Content-Type'), 'text/plain; charset=utf-8');
  // Same connection: keep-alive serves the next request.
  const n = c.buf.length;
  c.write(req('GET', '/_ping'));
  await c.until(() => c.buf.length > n && c.text().slice(n).endsWith('OK'));
  assert.match(c.text().slice(n), /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Length: 2\r\n[\s\S]*\r\n\r\nOK$/);
  c.close();
});

test('version prefix: accepted, and too-new/too-old versions are 400 with dockerd words', async () => {
  const ok = await simple('GET', '/v1.41/version');
  assert.equal(ok.status, 200);
  const v = JSON.parse(ok.body);
  assert.equal(v.ApiVersion, '1.47');
  assert.equal(v.Os, 'linux');
  assert.equal(v.Components[0].Name, 'Engine');
  assert.match(v.GoVersion, /^node\d+/);
  const hi = await simple('GET', '/v1.99/version');
  assert.equal(hi.status, 400);
  assert.equal(JSON.parse(hi.body).message, 'client version 1.99 is too new. Maximum supported API version is 1.47');
  const lo = await simple('GET', '/v1.12/version');
  assert.equal(lo.status, 400);
  assert.match(JSON.parse(lo.body).message, /^client version 1\.12 is too old\./);
});

test('/info fills the fields docker info reads', async () => {
  const r = await simple('GET', '/v1.41/info');
  assert.equal(r.status, 200);
  const info = JSON.parse(r.body);
  assert.equal(info.Containers, 1);
  assert.equal(info.ContainersRunning, 1);
  assert.equal(info.Driver, 'overlay2');
  assert.equal(info.OSType, 'linux');
  assert.equal(info.NCPU, os.cpus().length);
  assert.equal(info.MemTotal, os.totalmem());
  assert.equal(info.Swarm.LocalNodeState, 'inactive');
  assert.equal(info.DefaultRuntime, 'runc');
  assert.ok(info.Runtimes.runc.path);
  assert.equal(info.DockerRootDir, path.join(dir, 'data'));
  assert.match(info.ID, /^[0-9a-f-]{36}$/);
  // The ID is stable across calls (kept in the data root).
  assert.equal(JSON.parse((await simple('GET', '/info')).body).ID, info.ID);
});

test('create: 201 {Id,Warnings}; missing image is the 404 the CLI answers with a pull', async () => {
  const ok = await simple('POST', '/v1.41/containers/create?name=web', { 'Content-Type': 'application/json' }, JSON.stringify({ Image: 'busybox:local', Cmd: ['true'] }) + '\n');
  assert.equal(ok.status, 201);
  assert.equal(ok.body, JSON.stringify({ Id: C1, Warnings: [] }) + '\n');
  assert.equal(calls.create.at(-1).name, 'web');
  const miss = await simple('POST', '/v1.41/containers/create', { 'Content-Type': 'application/json' }, JSON.stringify({ Image: 'busybox' }));
  assert.equal(miss.status, 404);
  assert.equal(miss.body, '{"message":"No such image: busybox:latest"}\n');
  const empty = await simple('POST', '/v1.41/containers/create', { 'Content-Type': 'application/json' });
  assert.equal(empty.status, 400);
  const wrongType = await simple('POST', '/v1.41/containers/create', { 'Content-Type': 'text/plain' }, '{}');
  assert.equal(wrongType.status, 400);
});

test('create: struct keys match fields case-insensitively as Go decodes them; map keys stay as sent', async () => {
  const body = {
    image: 'busybox:local', CMD: ['true'], Labels: { MixedCase: 'kept' }, ExposedPorts: { '80/TCP': {} },
    hostconfig: { CPURealtimePeriod: 1000, CpuRealtimeRuntime: 400, cpurealtimeruntime: 500, logconfig: { TYPE: 'none', Config: { 'Max-Size': '1m' } } },
    NetworkingConfig: { endpointsconfig: { MyNet: { aliases: ['a'], ipamconfig: { ipv4address: '10.0.0.2' } } } },
    Unknown: 1,
  };
  const r = await simple('POST', '/v1.41/containers/create', { 'Content-Type': 'application/json' }, JSON.stringify(body));
  assert.equal(r.status, 201, r.body);
  assert.deepEqual(calls.create.at(-1).body, {
    Image: 'busybox:local', Cmd: ['true'], Labels: { MixedCase: 'kept' }, ExposedPorts: { '80/TCP': {} },
    HostConfig: { CpuRealtimePeriod: 1000, CpuRealtimeRuntime: 500, LogConfig: { Type: 'none', Config: { 'Max-Size': '1m' } } },
    NetworkingConfig: { EndpointsConfig: { MyNet: { Aliases: ['a'], IPAMConfig: { IPv4Address: '10.0.0.2' } } } },
    Unknown: 1,
  });
  // A wrong type under a folded key is named by the field's own spelling.
  const bad = await simple('POST', '/v1.41/containers/create', { 'Content-Type': 'application/json' }, JSON.stringify({ Image: 'busybox:local', hostconfig: { cpushares: 'lots' } }));
  assert.equal(bad.status, 400);
  assert.match(bad.body, /Go struct field ContainerConfig\.HostConfig\.CpuShares of type int64/);
});

test('start of a running container: 304 with no body and no Content-Type', async () => {
  const r = await simple('POST', '/v1.41/containers/web/start');
  assert.equal(r.status, 304);
  assert.equal(r.body, '');
  assert.equal(header(r.head, 'Content-Type'), undefined);
  const ok = await simple('POST', `/v1.41/containers/${C1}/start`);
  assert.equal(ok.status, 204);
  assert.equal(ok.body, '');
  const missing = await simple('POST', '/v1.41/containers/nope/start');
  assert.equal(missing.status, 404);
  assert.equal(missing.body, '{"message":"No such container: nope"}\n');
});

test('names with a leading slash reach the service without it', async () => {
  const r = await simple('GET', '/v1.41/containers//web/json');
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).Id, C1);
});

test('kill: signal passed verbatim, errors wrapped like dockerd', async () => {
  assert.equal((await simple('POST', '/v1.41/containers/web/kill?signal=SIGUSR1')).status, 204);
  assert.deepEqual(calls.kill.at(-1), { ref: 'web', signal: 'SIGUSR1' });
  assert.equal((await simple('POST', '/v1.41/containers/web/kill')).status, 204);
  assert.equal(calls.kill.at(-1).signal, undefined);
  const nf = await simple('POST', '/v1.41/containers/ks/kill?signal=SIGUSR1');
  assert.equal(nf.status, 404);
  assert.equal(JSON.parse(nf.body).message, 'Cannot kill container: ks: No such container: ks');
  const cf = await simple('POST', '/v1.41/containers/yy2/kill');
  assert.equal(cf.status, 409);
  assert.equal(JSON.parse(cf.body).message, `Cannot kill container: yy2: Container ${C1} is not running`);
});

test('stop: t and signal reach the service', async () => {
  assert.equal((await simple('POST', '/v1.41/containers/web/stop?signal=SIGINT&t=3')).status, 204);
  assert.deepEqual(calls.stop.at(-1), { ref: 'web', opts: { signal: 'SIGINT', timeout: 3 } });
  assert.equal((await simple('POST', '/v1.41/containers/web/stop?t=x')).status, 400);
});

test('wait: 200 + chunked headers go out before the condition is met; body is one chunk', async () => {
  const c = new Raw();
  c.write(req('POST', `/v1.41/containers/${C1}/wait?condition=next-exit`));
  await c.until(() => c.text().includes('\r\n\r\n'));
  const t = c.text();
  assert.match(t, /^HTTP\/1\.1 200 OK\r\n/);
  assert.equal(header(t, 'Content-Type'), 'application/json');
  assert.equal(header(t, 'Transfer-Encoding'), 'chunked');
  assert.ok(t.endsWith('\r\n\r\n'), 'nothing after the headers yet');
  assert.equal(calls.wait.at(-1).cond, 'next-exit');
  waitControl!.resolve({ StatusCode: 137, Error: null });
  const body = '{"Error":null,"StatusCode":137}\n';
  await c.until(() => c.text().includes('0\r\n\r\n'));
  assert.ok(c.text().endsWith(`${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`), JSON.stringify(c.text()));
  c.close();
});

test('wait: a client that goes away aborts the service wait; unknown container is a plain 404', async () => {
  const c = new Raw();
  c.write(req('POST', `/v1.41/containers/${C1}/wait`));
  await c.until(() => c.text().includes('\r\n\r\n'));
  assert.equal(calls.wait.at(-1).cond, 'not-running');
  const signal = waitControl!.signal;
  c.close();
  await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve())));
  assert.ok(signal.aborted);
  const nf = await simple('POST', '/v1.41/containers/nope/wait');
  assert.equal(nf.status, 404);
  assert.equal((await simple('POST', '/v1.41/containers/web/wait?condition=bogus')).status, 400);
});

test('resize: 200 with Content-Length 0 and no Content-Type', async () => {
  const r = await simple('POST', '/v1.41/containers/web/resize?h=24&w=80');
  assert.equal(r.status, 200);
  assert.equal(header(r.head, 'Content-Length'), '0');
  assert.equal(header(r.head, 'Content-Type'), undefined);
  assert.deepEqual(calls.resize.at(-1), { ref: 'web', h: 24, w: 80 });
  assert.equal((await simple('POST', '/v1.41/containers/web/resize?h=x&w=80')).status, 400);
});

test('logs: no Content-Type, chunked, frames flushed as written, abort on client close', async () => {
  const c = new Raw();
  c.write(req('GET', `/v1.41/containers/${C1}/logs?follow=1&stderr=1&stdout=1&tail=1`));
  await c.until(() => c.text().includes('\r\n\r\n'));
  const t = c.text();
  assert.equal(header(t, 'Content-Type'), undefined);
  assert.equal(header(t, 'Transfer-Encoding'), 'chunked');
  assert.deepEqual(calls.logs.at(-1).opts, { follow: true, stdout: true, stderr: true, timestamps: false, tail: 1 });
  const frame = Buffer.from([1, 0, 0, 0, 0, 0, 0, 3, 0x68, 0x69, 0x0a]);
  logsControl!.out.write(frame);
  await c.until(() => c.buf.includes(frame));
  const signal = logsControl!.signal;
  c.close();
  await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve())));
  const bad = await simple('GET', '/v1.41/containers/web/logs');
  assert.equal(bad.status, 400);
  assert.equal(JSON.parse(bad.body).message, 'Bad parameters: you must choose at least one stream');
});

test('attach: bare 101 exactly as wire 07 at API 1.41; half-close keeps the stream going', async () => {
  const c = new Raw();
  c.write(req('POST', `/v1.41/containers/${C1}/attach?stderr=1&stdout=1&stream=1`, { Connection: 'Upgrade', 'Content-Type': 'text/plain', Upgrade: 'tcp' }));
  const head = 'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n';
  await c.until(() => c.buf.length >= head.length);
  assert.equal(c.text().slice(0, head.length), head);
  c.s.end('in'); // half-close, like the CLI after the 101
  await c.until(() => c.ended);
  const rest = c.buf.subarray(head.length);
  assert.deepEqual(rest, Buffer.concat([Buffer.from([1, 0, 0, 0, 0, 0, 0, 5]), Buffer.from('hi\nin')]));
  assert.deepEqual(calls.attach.at(-1).opts, { stdin: false, stdout: true, stderr: true, stream: true, logs: false, detachKeys: undefined });
});

test('attach: API >= 1.42 labels a non-TTY stream multiplexed, a TTY one raw; 404 before upgrading', async () => {
  for (const [ref, type] of [[C1, 'multiplexed-stream'], ['tty', 'raw-stream']]) {
    const c = new Raw();
    c.write(req('POST', `/v1.47/containers/${ref}/attach?stdout=1&stream=1`, { Connection: 'Upgrade', Upgrade: 'tcp' }));
    await c.until(() => c.text().includes('\r\n\r\n'));
    assert.equal(header(c.text(), 'Content-Type'), `application/vnd.docker.${type}`);
    c.close();
  }
  const nf = new Raw();
  nf.write(req('POST', '/v1.41/containers/nope/attach?stdout=1&stream=1', { Connection: 'Upgrade', Upgrade: 'tcp' }));
  await nf.until(() => nf.ended);
  assert.match(nf.text(), /^HTTP\/1\.1 404 Not Found\r\n[\s\S]*\{"message":"No such container: nope"\}\n$/);
});

test('exec start: body read from the upgraded socket, 101 with common headers as wire 12, stdin after', async () => {
  const id = 'e'.repeat(64);
  const c = new Raw();
  const body = '{"Detach":false,"Tty":false}\n';
  // The stdin bytes travel in the same write as the request, as a fast client may do.
  c.write(req('POST', `/v1.41/exec/${id}/start`, { Connection: 'Upgrade', 'Content-Type': 'application/json', Upgrade: 'tcp' }, body) + 'stdin-bytes');
  const head = 'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n'
    + 'Api-Version: 1.47\r\nDocker-Experimental: false\r\nOstype: linux\r\nServer: Berth/0.1.0 (linux)\r\n\r\n';
  await c.until(() => c.buf.length >= head.length);
  assert.equal(c.text().slice(0, head.length), head);
  c.s.end();
  await c.until(() => c.ended);
  assert.deepEqual(c.buf.subarray(head.length), Buffer.concat([Buffer.from([1, 0, 0, 0, 0, 0, 0, 11]), Buffer.from('stdin-bytes')]));
  assert.deepEqual(calls.execStart.at(-1), { id, body: { Detach: false, Tty: false }, hijacked: true });
});

test('exec start without Upgrade: 200 raw stream, and later bytes are not parsed as HTTP', async () => {
  const id = 'e'.repeat(64);
  const c = new Raw();
  c.write(req('POST', `/v1.41/exec/${id}/start`, { 'Content-Type': 'application/json' }, '{"Detach":false,"Tty":false}'));
  await c.until(() => c.text().includes('\r\n\r\n'));
  assert.match(c.text(), /^HTTP\/1\.1 200 OK\r\nContent-Type: application\/vnd\.docker\.raw-stream\r\n/);
  const n = c.buf.length;
  c.s.end('GET /_ping HTTP/1.1\r\n\r\n');
  await c.until(() => c.ended);
  const rest = c.buf.subarray(n);
  assert.equal(rest.subarray(8).toString(), 'GET /_ping HTTP/1.1\r\n\r\n');
});

test('exec: create 201, detached start 200 without hijack, unknown exec 404, resize 200', async () => {
  const created = await simple('POST', '/v1.41/containers/web/exec', { 'Content-Type': 'application/json' }, JSON.stringify({ Cmd: ['echo', 'hi'], AttachStdout: true }));
  assert.equal(created.status, 201);
  assert.equal(JSON.parse(created.body).Id, 'e'.repeat(64));
  const det = await simple('POST', `/v1.41/exec/${'e'.repeat(64)}/start`, { 'Content-Type': 'application/json' }, '{"Detach":true,"Tty":false}');
  assert.equal(det.status, 200);
  assert.equal(calls.execStart.at(-1).hijacked, false);
  const nf = await simple('POST', '/v1.41/exec/nope/start', { 'Content-Type': 'application/json', Connection: 'Upgrade', Upgrade: 'tcp' }, '{"Detach":false,"Tty":false}');
  assert.equal(nf.status, 404);
  assert.equal(nf.body, '{"message":"No such exec instance: nope"}\n');
});

test('containers/json: filters decoded from both encodings and unknown keys rejected', async () => {
  const f = encodeURIComponent('{"name":{"chat":true},"status":{"running":true}}');
  const r = await simple('GET', `/v1.41/containers/json?all=1&filters=${f}`);
  assert.equal(r.status, 200);
  assert.deepEqual(calls.list.at(-1), { all: true, limit: undefined, size: false, filters: { name: ['chat'], status: ['running'] } });
  const legacy = encodeURIComponent('{"label":["a=b"]}');
  await simple('GET', `/v1.41/containers/json?filters=${legacy}&limit=2`);
  assert.deepEqual(calls.list.at(-1), { all: false, limit: 2, size: false, filters: { label: ['a=b'] } });
  const bad = await simple('GET', `/v1.41/containers/json?filters=${encodeURIComponent('{"bogus":{"x":true}}')}`);
  assert.equal(bad.status, 400);
  assert.equal(JSON.parse(bad.body).message, "invalid filter 'bogus'");
});

test('events: since/until replay ends the body; live events flushed one per line; filters', async () => {
  const t0 = Date.now() / 1000;
  events.emitEvent('container', 'create', C1, { image: 'busybox:local', name: 'evc' });
  events.emitEvent('container', 'create', TTY1, { image: 'busybox:local', name: 'other' });
  events.emitEvent('image', 'tag', 'sha256:x', { name: 'busybox:local' });
  const f = encodeURIComponent('{"container":{"evc":true}}');
  const past = await simple('GET', `/v1.41/events?filters=${f}&since=${Math.floor(t0 - 1)}&until=${(Date.now() / 1000 + 0.3).toFixed(9)}`); // ends by itself after 0.3 s
  assert.equal(past.status, 200);
  assert.equal(header(past.head, 'Content-Type'), 'application/json');
  const lines = dechunk(past.body).split('\n').filter(Boolean).map((l) => JSON.parse(l));
  assert.equal(lines.length, 1);
  assert.equal(lines[0].Actor.Attributes.name, 'evc');
  assert.equal(lines[0].status, 'create');
  assert.deepEqual(Object.keys(lines[0]), ['status', 'id', 'from', 'Type', 'Action', 'Actor', 'scope', 'time', 'timeNano']);

  const c = new Raw();
  c.write(req('GET', `/v1.41/events?filters=${encodeURIComponent('{"type":{"container":true}}')}`));
  await c.until(() => c.text().includes('\r\n\r\n'));
  events.emitEvent('image', 'pull', 'busybox:latest', {});
  events.emitEvent('container', 'start', C1, { image: 'busybox:local', name: 'evc' });
  await c.until(() => c.text().includes('"Action":"start"'));
  assert.ok(!c.text().includes('"pull"'));
  assert.ok(c.text().includes('"Action":"start"'));
  const info = JSON.parse((await simple('GET', '/info')).body);
  assert.equal(info.NEventsListener, 1);
  c.close();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(JSON.parse((await simple('GET', '/info')).body).NEventsListener, 0);
});

test('parseApiTimestamp: unix, fractional, RFC 3339, Go durations', () => {
  assert.equal(parseApiTimestamp('1795405804'), 1795405804);
  assert.equal(parseApiTimestamp('1795405804.5'), 1795405804.5);
  assert.equal(parseApiTimestamp('2026-11-23T03:50:05Z'), Date.parse('2026-11-23T03:50:05Z') / 1000);
  assert.ok(Math.abs(parseApiTimestamp('2026-11-23T03:50:05.25Z') - (Date.parse('2026-11-23T03:50:05Z') / 1000 + 0.25)) < 1e-6);
  assert.equal(parseApiTimestamp('1h30m', 10000), 10000 - 5400);
  assert.throws(() => parseApiTimestamp('yesterday'), /failed to parse/);
});

test('eventMatches: dockerd semantics for container prefix, label and event filters', () => {
  const ev = events.emitEvent('container', 'exec_start: sh -c true', C1, { name: 'web', image: 'busybox:local', 'com.x': 'y' });
  assert.ok(eventMatches(ev, { container: ['aaaa'] }));
  assert.ok(eventMatches(ev, { container: ['web'] }));
  assert.ok(!eventMatches(ev, { container: ['other'] }));
  assert.ok(eventMatches(ev, { event: ['exec_start'] }));
  assert.ok(eventMatches(ev, { label: ['com.x=y'] }));
  assert.ok(!eventMatches(ev, { label: ['com.x=z'] }));
  assert.ok(eventMatches(ev, { image: ['busybox'] }));
});

function dechunk(s: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const nl = s.indexOf('\r\n', i);
    if (nl < 0) break;
    const n = parseInt(s.slice(i, nl), 16);
    if (!n) break;
    out += s.slice(nl + 2, nl + 2 + n);
    i = nl + 2 + n + 2;
  }
  return out;
}
