/**
 * Clients that stall or vanish on the streaming routes that hijack the
 * connection (attach, exec start with and without a TTY) and on POST /build
 * (a context sent slowly then abandoned; output nobody reads). After each the
 * daemon answers a ping, the container's lock is free (stop and start of that
 * container still work) and no mount, spool file, build container or
 * descriptor is left behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { startDaemon, bootstrapBusybox, mountsUnder, type Daemon } from '../helpers/daemon';
import { tarOf } from '../helpers/tar';

let d: Daemon;
let ctr = '';
// Plenty of output, bounded: 64 MB then a long (bounded) sleep.
const CHATTY = ['sh', '-c', 'head -c 67108864 /dev/zero | tr "\\0" x; sleep 300'];

before(async () => {
  d = await startDaemon({ config: { 'api-limits': { 'header-timeout': 2, 'stream-stall-timeout': 3 } } });
  await bootstrapBusybox(d);
  const c = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: CHATTY, OpenStdin: true, AttachStdout: true, AttachStderr: true });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  ctr = c.body.Id;
  assert.equal((await d.api('POST', `/containers/${ctr}/start`)).status, 204, d.log());
});
after(async () => { await d?.stop(); });

async function alive(what: string): Promise<void> {
  const r = await d.api('GET', '/_ping');
  assert.equal(r.status, 200, `daemon not answering after ${what}\n${d.log().split('\n').slice(-20).join('\n')}`);
}

function fdCount(): number {
  return fs.readdirSync(`/proc/${d.pid}/fd`).length;
}

function spoolFiles(): string[] {
  try { return fs.readdirSync(path.join(d.dataRoot, 'tmp')); } catch { return []; }
}

/** Resolves once the daemon's state has settled (teardown after a vanished client is event-driven). */
async function settled(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what} did not settle`);
}

/** Sends `head` (and `body`), reads nothing for `ms`, then goes away without a word. */
function stallThenVanish(head: string, body?: Buffer, ms = 1500): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect(d.socket);
    s.on('error', () => undefined);
    s.write(head);
    if (body) s.write(body);
    s.pause();
    setTimeout(() => { s.destroy(); resolve(); }, ms);
  });
}

/** Stop then start of the container must still work: nobody holds its lock. */
async function lockFree(what: string): Promise<void> {
  await alive(what);
  const stop = await d.api('POST', `/containers/${ctr}/stop?t=0`);
  assert.ok(stop.status === 204 || stop.status === 304, `stop after ${what}: ${stop.status} ${stop.raw}`);
  const start = await d.api('POST', `/containers/${ctr}/start`);
  assert.equal(start.status, 204, `start after ${what}: ${start.raw}`);
}

function hijack(method: string, p: string, body = ''): string {
  return `${method} ${p} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
}

test('attach and exec start: a client that stalls then vanishes holds no lock and leaves no descriptor', async () => {
  const fds = fdCount();
  await stallThenVanish(hijack('POST', `/containers/${ctr}/attach?stream=1&stdout=1&stderr=1&stdin=1`));
  await lockFree('a stalled attach');
  for (const tty of [false, true]) {
    const e = await d.api('POST', `/containers/${ctr}/exec`, { Cmd: CHATTY, AttachStdout: true, AttachStderr: true, AttachStdin: true, Tty: tty });
    assert.equal(e.status, 201, e.raw.toString());
    await stallThenVanish(hijack('POST', `/exec/${e.body.Id}/start`, JSON.stringify({ Detach: false, Tty: tty })));
    await alive(`a stalled exec start (tty ${tty})`);
    // The exec's session ended with its client; its process goes with the container's stop.
    await lockFree(`a stalled exec start (tty ${tty})`);
    await settled(async () => (await d.api('GET', `/exec/${e.body.Id}/json`)).body?.Running !== true, `exec (tty ${tty}) to end`);
  }
  // A client that reads a little then vanishes mid-stream.
  await new Promise<void>((resolve) => {
    const s = net.connect(d.socket);
    s.on('error', () => undefined);
    s.write(hijack('POST', `/containers/${ctr}/attach?stream=1&stdout=1&stderr=1`));
    let got = 0;
    s.on('data', (b) => { got += b.length; if (got > 1 << 20) { s.destroy(); resolve(); } });
    setTimeout(() => { s.destroy(); resolve(); }, 5000);
  });
  await lockFree('an attach that vanished mid-stream');
  await settled(() => fdCount() <= fds + 2, `descriptors (${fds} before, ${fdCount()} now)`);
});

test('build: a context sent slowly then abandoned, and output nobody reads, leave no spool, mount, build container or descriptor', async () => {
  const fds = fdCount();
  const mounts = mountsUnder(d.execRoot).length;
  const images = (await d.api('GET', '/images/json?all=1')).body.length;
  // Output the client will not read, then a step long enough that the client is gone before it ends (bounded: 60 s).
  const ctx = await tarOf([
    { header: { name: 'Dockerfile', mode: 0o644 }, body: 'FROM busybox\nRUN head -c 33554432 /dev/zero | tr "\\0" y; sleep 60\nRUN echo never > /never\n' },
    { header: { name: 'filler', mode: 0o644 }, body: Buffer.alloc(2 << 20, 'f') },
  ]);
  // Half the context, trickled, then gone.
  await new Promise<void>((resolve) => {
    const s = net.connect(d.socket);
    s.on('error', () => undefined);
    s.write(`POST /build?t=abandoned HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: ${ctx.length}\r\n\r\n`);
    let sent = 0;
    const step = setInterval(() => {
      s.write(ctx.subarray(sent, sent + 65536));
      sent += 65536;
      if (sent > ctx.length / 2) { clearInterval(step); s.destroy(); resolve(); }
    }, 20);
  });
  await alive('an abandoned build context');
  await settled(() => spoolFiles().length === 0, `build spool (${spoolFiles().join(', ')})`);
  // The whole context, then the output is never read; the client goes while RUN writes.
  await stallThenVanish(`POST /build?t=unread HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-tar\r\nContent-Length: ${ctx.length}\r\n\r\n`, ctx, 4000);
  await alive('a build whose output nobody read');
  await settled(() => mountsUnder(d.execRoot).length <= mounts, `mounts left: ${mountsUnder(d.execRoot).join(', ')}`);
  await settled(() => spoolFiles().length === 0, `build spool (${spoolFiles().join(', ')})`);
  await settled(async () => (await d.api('GET', '/containers/json?all=1')).body.every((c: { Id: string }) => c.Id === ctr), 'build containers');
  assert.equal((await d.api('GET', '/images/abandoned/json')).status, 404);
  assert.equal((await d.api('GET', '/images/unread/json')).status, 404);
  assert.ok((await d.api('GET', '/images/json?all=1')).body.length <= images + 1, 'build step images piled up');
  await lockFree('abandoned builds');
  await settled(() => fdCount() <= fds + 2, `descriptors (${fds} before, ${fdCount()} now)`);
});
