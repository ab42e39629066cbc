/**
 * Every byte through every stream (issue 11, items 1-4): binary stdin of 1 MB and
 * 20 MB reaches the container whole (compared by digest) through `berth`, the docker
 * CLI and the raw API, for run -i, exec -i, start -ai, attach and the API's
 * attach-before-start and exec start; TTY output arrives byte for byte from the
 * first byte for run -t, start -a, exec -t; a resize sent before the exec process
 * exists is applied once it runs.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import * as net from 'node:net';
import { busyboxDaemonForFile, defaultDockerCli, ok, type RunResult } from '../helpers/daemon';
import { decodeAll } from '../../src/common/stdcopy';

const d = busyboxDaemonForFile();

/**
 * Random bytes plus the sequences that once cut stdin short: the default detach keys
 * (ctrl-p ctrl-q, which are data without a TTY) and a ctrl-p at the very end.
 */
function payload(size: number): Buffer {
  const b = randomBytes(size);
  for (const at of [0, 8191, 8192, 32767, 65535, Math.floor(size / 2)]) b.set([0x10, 0x11], at);
  b[size - 1] = 0x10;
  return b;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** What busybox sha256sum prints for stdin. */
const sumLine = (b: Buffer) => `${sha256(b)}  -\n`;

type Cli = { name: string; run: (args: string[], input?: Buffer) => Promise<RunResult> };
const clis: Cli[] = [
  { name: 'berth', run: (args, input) => d.cli(args, { input, timeoutMs: 120_000 }) },
  { name: 'docker', run: (args, input) => d.docker(args, { input, bin: defaultDockerCli(), timeoutMs: 120_000 }) },
];

interface Hijacked {
  /** Everything the daemon sent after the response headers, once it closed the stream. */
  output: Promise<Buffer>;
  /** Response status line and headers. */
  head: Promise<string>;
  sock: net.Socket;
  /** Resolves once the output so far (after the headers) contains `text`. */
  until(text: string): Promise<void>;
}

/** A hijacked API request (attach, exec start): the caller writes stdin to `sock`. */
function hijack(urlPath: string, body = ''): Hijacked {
  const sock = net.connect(d.socket);
  let resolveHead!: (h: string) => void;
  const head = new Promise<string>((r) => { resolveHead = r; });
  const chunks: Buffer[] = [];
  const waiters: Array<{ text: string; resolve: () => void }> = [];
  const check = () => {
    const so = Buffer.concat(chunks).toString('latin1');
    for (const w of waiters.splice(0)) if (so.includes(w.text)) w.resolve(); else waiters.push(w);
  };
  const output = new Promise<Buffer>((resolve, reject) => {
    let pending: Buffer | undefined = Buffer.alloc(0);
    sock.on('data', (b: Buffer) => {
      if (!pending) { chunks.push(b); check(); return; }
      pending = Buffer.concat([pending, b]);
      const i = pending.indexOf('\r\n\r\n');
      if (i < 0) return;
      resolveHead(pending.subarray(0, i).toString());
      chunks.push(pending.subarray(i + 4));
      pending = undefined;
      check();
    });
    sock.on('error', reject);
    sock.on('close', () => {
      if (pending) resolveHead(`(closed before the headers) ${pending.toString()}`);
      resolve(Buffer.concat(chunks));
    });
  });
  sock.write(`POST ${urlPath} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  const until = (text: string) => new Promise<void>((resolve) => { waiters.push({ text, resolve }); check(); });
  return { output, head, sock, until };
}

async function create(body: Record<string, unknown>): Promise<string> {
  const r = await d.api('POST', '/containers/create', { Image: 'busybox', ...body });
  assert.equal(r.status, 201, r.raw.toString());
  return r.body.Id;
}

async function start(id: string): Promise<void> {
  const r = await d.api('POST', `/containers/${id}/start`);
  assert.equal(r.status, 204, r.raw.toString());
}

async function execCreate(id: string, body: Record<string, unknown>): Promise<string> {
  const r = await d.api('POST', `/containers/${id}/exec`, body);
  assert.equal(r.status, 201, r.raw.toString());
  return r.body.Id;
}

/** stdout of a multiplexed stream, every frame checked to be stdout. */
function stdoutOf(raw: Buffer): string {
  const frames = decodeAll(raw);
  for (const f of frames) assert.equal(f.stream, 1, `unexpected stream ${f.stream}: ${f.data.toString()}`);
  return Buffer.concat(frames.map((f) => f.data)).toString();
}

/** A running container to exec into (removed at the end of the file with the daemon). */
let target: Promise<string> | undefined;
function execTarget(): Promise<string> {
  target ??= (async () => {
    const id = await create({ Cmd: ['sleep', '3600'] });
    await start(id);
    return id;
  })();
  return target;
}

for (const size of [1 << 20, 20 << 20]) {
  const label = size === 1 << 20 ? '1 MB' : '20 MB';
  describe(`binary stdin of ${label} reaches the container whole`, () => {
    const data = payload(size);
    const want = sumLine(data);

    for (const cli of clis) {
      test(`${cli.name} run -i, exec -i, create -i + start -ai, attach`, async () => {
        const run = ok(await cli.run(['run', '--rm', '-i', 'busybox', 'sha256sum'], data), 'run -i');
        assert.equal(run.stdout, want, 'run -i');

        const exec = ok(await cli.run(['exec', '-i', await execTarget(), 'sha256sum'], data), 'exec -i');
        assert.equal(exec.stdout, want, 'exec -i');

        const created = ok(await cli.run(['create', '-i', 'busybox', 'sha256sum'])).stdout.trim();
        const startAi = ok(await cli.run(['start', '-ai', created], data), 'start -ai');
        assert.equal(startAi.stdout, want, 'start -ai');
        ok(await cli.run(['rm', created]));

        // attach to a running container: its stdin is open (-i) and closes with the attach's EOF (StdinOnce).
        const running = ok(await cli.run(['create', '-i', 'busybox', 'sha256sum'])).stdout.trim();
        ok(await cli.run(['start', running]));
        const attach = ok(await cli.run(['attach', running], data), 'attach');
        assert.equal(attach.stdout, want, 'attach');
        ok(await cli.run(['rm', running]));
      });
    }

    test('raw API: attach before start, half-closed at once; exec start', async () => {
      const id = await create({ Cmd: ['sha256sum'], OpenStdin: true, StdinOnce: true, AttachStdin: true });
      const a = hijack(`/containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1`);
      assert.match(await a.head, /^HTTP\/1\.1 101/);
      // All of stdin and the half-close before the process even exists.
      a.sock.end(data);
      await start(id);
      assert.equal(stdoutOf(await a.output), want);
      const w = await d.api('POST', `/containers/${id}/wait`);
      assert.equal(w.body.StatusCode, 0);
      await d.api('DELETE', `/containers/${id}`);

      const exec = await execCreate(await execTarget(), { Cmd: ['sha256sum'], AttachStdin: true, AttachStdout: true, AttachStderr: true });
      const e = hijack(`/exec/${exec}/start`, JSON.stringify({ Detach: false, Tty: false }));
      e.sock.end(data);
      assert.equal(stdoutOf(await e.output), want);
      const info = await d.api('GET', `/exec/${exec}/json`);
      assert.equal(info.body.ExitCode, 0);
    });
  });
}

describe('TTY output arrives byte for byte from the first byte', () => {
  // The first bytes come at once: any output lost before the stream is wired shows.
  const script = 'printf "first\\nsecond"; seq 1 300';
  const want = `first\r\nsecond${Array.from({ length: 300 }, (_, i) => `${i + 1}\r\n`).join('')}`;

  for (const cli of clis) {
    test(`${cli.name} run -t, create -t + start -a, exec -t`, async () => {
      const run = ok(await cli.run(['run', '--rm', '-t', 'busybox', 'sh', '-c', script]));
      assert.equal(run.stdout, want, 'run -t');
      const created = ok(await cli.run(['create', '-t', 'busybox', 'sh', '-c', script])).stdout.trim();
      const startA = ok(await cli.run(['start', '-a', created]));
      assert.equal(startA.stdout, want, 'start -a');
      ok(await cli.run(['rm', created]));
      const exec = ok(await cli.run(['exec', '-t', await execTarget(), 'sh', '-c', script]));
      assert.equal(exec.stdout, want, 'exec -t');
    });
  }

  test('raw API: attach before start; exec start raw, and framed when started with Tty=false (docker-py)', async () => {
    const id = await create({ Cmd: ['sh', '-c', script], Tty: true });
    const a = hijack(`/containers/${id}/attach?stream=1&stdout=1&stderr=1`);
    assert.match(await a.head, /^HTTP\/1\.1 101/);
    a.sock.end();
    await start(id);
    assert.equal((await a.output).toString(), want);
    await d.api('DELETE', `/containers/${id}?force=1`);

    const execBody = { Cmd: ['sh', '-c', script], Tty: true, AttachStdout: true, AttachStderr: true };
    const raw = hijack(`/exec/${await execCreate(await execTarget(), execBody)}/start`, JSON.stringify({ Tty: true }));
    assert.match(await raw.head, /Content-Type: application\/vnd\.docker\.raw-stream/);
    raw.sock.end();
    assert.equal((await raw.output).toString(), want);

    // dockerd frames by the start request's Tty: a TTY exec started with Tty=false comes as stdout frames.
    const framed = hijack(`/exec/${await execCreate(await execTarget(), execBody)}/start`, JSON.stringify({ Tty: false }));
    assert.match(await framed.head, /Content-Type: application\/vnd\.docker\.multiplexed-stream/);
    framed.sock.end();
    assert.equal(stdoutOf(await framed.output), want);
  });
});

describe('exec resize', () => {
  test('a resize sent before the exec process exists is applied once it runs', async () => {
    const exec = await execCreate(await execTarget(), {
      Cmd: ['sh', '-c', 'read line; stty size'], Tty: true, AttachStdin: true, AttachStdout: true,
    });
    // As the docker CLI does: the resize goes out while the start is still on its way.
    const resized = d.api('POST', `/exec/${exec}/resize?h=33&w=77`);
    const s = hijack(`/exec/${exec}/start`, JSON.stringify({ Tty: true }));
    assert.match(await s.head, /^HTTP\/1\.1 101/);
    const r = await resized;
    assert.equal(r.status, 200, r.raw.toString());
    // Only now does the shell ask for the size (not half-closed: on a TTY that would end the session, as in dockerd).
    s.sock.write('go\n');
    assert.match((await s.output).toString(), /33 77\r\n$/);
  });

  test('resize of an unknown exec is a 404', async () => {
    const r = await d.api('POST', `/exec/${'0'.repeat(64)}/resize?h=10&w=10`);
    assert.equal(r.status, 404);
  });
});

describe('exec detach keys (TTY only)', () => {
  test('the keys end the session, the process runs on; without a TTY they are data', async () => {
    const target = await execTarget();
    const tty = await execCreate(target, {
      Cmd: ['sh', '-c', 'echo ready; exec cat'], Tty: true, AttachStdin: true, AttachStdout: true, DetachKeys: 'ctrl-x',
    });
    const s = hijack(`/exec/${tty}/start`, JSON.stringify({ Tty: true }));
    await s.until('ready');
    s.sock.write('\x18');
    await s.output; // the daemon closed the session
    const info = await d.api('GET', `/exec/${tty}/json`);
    assert.equal(info.body.Running, true);
    assert.ok(info.body.Pid > 0);
    process.kill(info.body.Pid, 'SIGKILL'); // a host PID, as dockerd reports it

    const plain = await execCreate(target, { Cmd: ['cat'], AttachStdin: true, AttachStdout: true, DetachKeys: 'ctrl-x' });
    const p = hijack(`/exec/${plain}/start`, JSON.stringify({ Tty: false }));
    p.sock.end('a\x18b\x10\x11c');
    assert.equal(stdoutOf(await p.output), 'a\x18b\x10\x11c');
  });

  test('bad detach keys are refused at create', async () => {
    const r = await d.api('POST', `/containers/${await execTarget()}/exec`, { Cmd: ['true'], detachKeys: 'ctrl-' });
    assert.equal(r.status, 400, r.raw.toString());
  });
});
