/**
 * The native system-call layer (native/berth-sys.c via src/common/linux.ts) and
 * the runtime shortcuts built on it: posix_spawn children with pipes, mount(2)
 * and umount2(2), a sealed runc copy, and starting a created runc container
 * through its exec FIFO. Real processes, real mounts, real runc; each case
 * removes what it made even when it fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { mount, runChild, sealedCopy, spawnChild } from '../../src/common/linux';
import { unmount } from '../../src/store/mount';
import { Runc, runtimeExecPath } from '../../src/runtime/runc';
import { buildOciSpec, writeOciConfig } from '../../src/runtime/spec';
import { busyboxRootfsDir } from '../helpers/rootfs';

const PATH_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };

function readAll(s: Socket | null): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    s!.setEncoding('utf8');
    s!.on('data', (d: string) => { text += d; });
    s!.on('close', () => resolve(text));
  });
}

function isMounted(target: string): boolean {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === target);
}

test('spawnChild: pipes in both directions, exit status, only the given environment', async () => {
  const child = spawnChild('/bin/sh', ['-c', 'read x; echo "got $x:$FOO:$HOME"; echo oops >&2; exit 3'], {
    env: { ...PATH_ENV, FOO: 'bar' }, stdio: ['in', 'out', 'out'],
  });
  const out = readAll(child.stdio[1]);
  const err = readAll(child.stdio[2]);
  child.stdio[0]!.end('hello\n');
  assert.deepEqual(await child.exited, { code: 3, signal: 0 });
  assert.equal(await out, 'got hello:bar:\n');
  assert.equal(await err, 'oops\n');
});

test('spawnChild: descriptors beyond 2 land where asked; a new session on request', async () => {
  const child = spawnChild('/bin/sh', ['-c', 'read x <&4; echo "$x" >&3; cut -d" " -f6 /proc/$$/stat >&3; echo $$ >&3'], {
    env: PATH_ENV, stdio: ['null', 'null', 'null', 'out', 'in'], newSession: true,
  });
  const out = readAll(child.stdio[3]);
  child.stdio[4]!.end('via fd 4\n');
  assert.equal((await child.exited).code, 0);
  const [echoed, sid, pid] = (await out).trim().split('\n');
  assert.equal(echoed, 'via fd 4');
  assert.equal(sid, pid, 'the child leads its own session');
  assert.equal(Number(pid), child.pid);
});

test('spawnChild: kill reports the signal; a missing program throws ENOENT', async () => {
  const child = spawnChild('/bin/sleep', ['30'], { env: PATH_ENV, stdio: ['null', 'null', 'null'] });
  child.kill('SIGTERM');
  assert.deepEqual(await child.exited, { code: -1, signal: 15 });
  child.kill('SIGKILL'); // reaped: a no-op, never a signal to a recycled PID
  assert.throws(() => spawnChild('/nonexistent/prog', [], { env: PATH_ENV, stdio: [] }), { code: 'ENOENT' });
  const r = await runChild('/bin/sh', ['-c', 'echo out; echo err >&2; exit 7'], PATH_ENV, 10_000);
  assert.deepEqual(r, { code: 7, signal: 0, stdout: 'out\n', stderr: 'err\n' });
});

test('mount(2) and umount2(2): a tmpfs comes and goes; unmounting a plain directory is fine', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-native-'));
  try {
    await mount('tmpfs', dir, 'tmpfs', 0, 'size=1m,mode=0700');
    assert.ok(isMounted(dir));
    fs.writeFileSync(path.join(dir, 'f'), 'x');
    await unmount(dir);
    assert.ok(!isMounted(dir));
    assert.ok(!fs.existsSync(path.join(dir, 'f')), 'the file lived on the tmpfs');
    await unmount(dir); // not a mount point any more
    await assert.rejects(mount('none', path.join(dir, 'missing'), 'tmpfs', 0, null), { code: 'ENOENT', syscall: 'mount' });
  } finally {
    if (isMounted(dir)) spawnSync('umount', ['-l', dir]);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('sealedCopy: an executable copy that nobody can write to', () => {
  const copy = sealedCopy('/bin/busybox', 'busybox');
  try {
    const r = spawnSync(copy.path, ['echo', 'from memfd'], { encoding: 'utf8', argv0: 'busybox' });
    assert.equal(r.stdout, 'from memfd\n');
    const rw = fs.openSync(copy.path, 'r+');
    try {
      assert.throws(() => fs.writeSync(rw, 'x'), { code: 'EPERM' });
      assert.throws(() => fs.ftruncateSync(rw, 0), { code: 'EPERM' });
    } finally {
      fs.closeSync(rw);
    }
    assert.match(fs.readlinkSync(copy.path), /^\/memfd:busybox/);
    // A path that surely does not exist: /nonexistent is nobody's and _apt's home in Debian's
    // passwd, and tools running as them create it (a directory there gave sendfile's EINVAL).
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-sealed-'));
    try {
      assert.throws(() => sealedCopy(path.join(scratch, 'absent'), 'x'), { code: 'ENOENT', syscall: 'open' });
      assert.throws(() => sealedCopy(scratch, 'x'), { code: 'EISDIR' });
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  } finally {
    fs.closeSync(copy.fd);
  }
});

/** A busybox bundle created (not started) with runc; returns the init PID. */
async function createdContainer(t: { after(fn: () => void): void }, args: string[]): Promise<{ runc: Runc; id: string; pid: number; dir: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-native-'));
  const id = `bt-native-${randomBytes(6).toString('hex')}`;
  const root = path.join(dir, 'runc');
  const runc = new Runc({ binary: runtimeExecPath(spawnSync('sh', ['-c', 'command -v runc'], { encoding: 'utf8' }).stdout.trim()), root });
  t.after(() => {
    spawnSync('runc', ['--root', root, 'delete', '-f', id], { stdio: 'ignore' });
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const rootfs = busyboxRootfsDir(path.join(dir, 'rootfs'));
  const spec = buildOciSpec({
    containerId: id, rootfsPath: rootfs, args, env: ['PATH=/bin'], user: { uid: 0, gid: 0 },
    terminal: false, hostname: 'native', hostConfig: { NetworkMode: 'none' }, cgroupsPath: `/${id}`,
  });
  await writeOciConfig(dir, spec);
  const r = spawnSync('runc', ['--root', root, 'create', '--bundle', dir, id], { stdio: 'ignore', timeout: 60_000 });
  assert.equal(r.status, 0, 'runc create');
  const state = await runc.state(id);
  assert.equal(state?.status, 'created');
  return { runc, id, pid: state!.pid, dir };
}

test('Runc.start through the exec FIFO: the process runs and runc sees it started', async (t) => {
  const { runc, id, pid, dir } = await createdContainer(t, ['sh', '-c', 'echo ran > /ran; sleep 5']);
  await runc.start(id, pid);
  assert.ok(!fs.existsSync(path.join(dir, 'runc', id, 'exec.fifo')), 'runc start removes the FIFO, and so do we');
  assert.equal((await runc.state(id))?.status, 'running');
  for (let i = 0; i < 100 && !fs.existsSync(path.join(dir, 'rootfs', 'ran')); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(fs.readFileSync(path.join(dir, 'rootfs', 'ran'), 'utf8'), 'ran\n');
  await assert.rejects(runc.start(id, pid), /already running|cannot start/i, 'a second start is refused by runc');
});

test('Runc.start: an init that died before start is reported, not waited for', async (t) => {
  const { runc, id, pid } = await createdContainer(t, ['true']);
  process.kill(pid, 'SIGKILL');
  const started = Date.now();
  await assert.rejects(runc.start(id, pid), /container process is already dead/);
  assert.ok(Date.now() - started < 5_000);
});
