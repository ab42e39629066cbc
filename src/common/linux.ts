/**
 * The Linux system calls Node lacks (native/berth-sys.c): mount(2), umount2(2)
 * on the thread pool, sealed memfd copies, posix_spawn-based child processes, sendfile(2)
 * into sockets and malloc_trim(3).
 * Loaded on first use from native/berth-sys.node, which `npm run build` compiles.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';

interface BerthSys {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): Promise<void>;
  umount2(target: string, flags: number): Promise<void>;
  sealedCopy(file: string, name: string): number;
  pipe(): [number, number];
  spawn(file: string, argv: string[], envp: string[], fds: number[], newSession: boolean): number;
  reap(pid: number): { code: number; signal: number } | null;
  unreadBytes(fd: number): number;
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number;
  readlinkat(dirfd: number, path: string): string;
  sendfileToSocket(socketFd: number, file: string, offset: number, length: number, done: (err: NodeJS.ErrnoException | null, sent: number) => void): number;
  sendfileCancel(id: number): void;
  mallocTrim(): boolean;
  writeFiles(paths: string[], buffers: Buffer[], meta: Float64Array): Promise<void>;
  sha256New(): object;
  sha256Update(handle: object, data: Buffer | Buffer[]): Promise<void>;
  sha256Digest(handle: object): string;
}

export const MNT_DETACH = 2;

let addon: BerthSys | undefined;

/** Addons sit in <repo>/native whether this file runs bundled (bin/) or compiled (dist/src/common/). */
export function loadNativeAddon<T>(name: string): T {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const file = path.join(dir, 'native', `${name}.node`);
    if (fs.existsSync(file)) {
      // eslint-disable-next-line @typescript-eslint/no-var-requires
      return require(file) as T;
    }
    if (path.dirname(dir) === dir) throw new Error(`native/${name}.node not found: run \`npm run build\``);
  }
}

function load(): BerthSys {
  addon ??= loadNativeAddon<BerthSys>('berth-sys');
  return addon;
}

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): Promise<void> {
  return load().mount(source, target, fstype, flags, data);
}

export function umount2(target: string, flags: number): Promise<void> {
  return load().umount2(target, flags);
}

/**
 * A sealed, executable in-memory copy of a file, open in this process (close-on-exec).
 * Its path for exec is /proc/<this pid>/fd/<fd>, valid while this process lives.
 */
export function sealedCopy(file: string, name: string): { fd: number; path: string } {
  const fd = load().sealedCopy(file, name);
  return { fd, path: `/proc/${process.pid}/fd/${fd}` };
}

/** Bytes in a pipe or FIFO (either end's descriptor) that its reader has not read yet. */
export function unreadBytes(fd: number): number {
  return load().unreadBytes(fd);
}

/**
 * New files, each created exclusively (O_EXCL: never through an existing name), written,
 * chowned when uid >= 0, chmodded when asked (after the chown, which clears set-id bits), its
 * times set, closed: one job on the thread pool for the whole batch. `meta` holds five numbers
 * per file: mode, uid (-1 for none), gid, mtime in ms, chmod (1/0). Rejects at the first failure with an
 * Error (`code`, `syscall`) naming that file; the files before it are written.
 */
export function writeFiles(paths: string[], buffers: Buffer[], meta: Float64Array): Promise<void> {
  return load().writeFiles(paths, buffers, meta);
}

/**
 * SHA-256 whose work runs on the thread pool, so hashing overlaps whatever the event loop does
 * next. update() queues a buffer (which must not change afterwards) and returns at once;
 * updates run one at a time, in order. settled(limit) waits until at most `limit` bytes are
 * still queued (backpressure for a stream feeding it); digest() waits for all of them.
 */
export class PoolSha256 {
  private readonly handle = load().sha256New();
  private queue: Buffer[] = [];
  private queuedBytes = 0;
  private running = false;
  private failure: Error | undefined;
  private waiters: Array<() => void> = [];

  update(data: Buffer): void {
    if (!data.length) return;
    this.queue.push(data);
    this.queuedBytes += data.length;
    this.pump();
  }

  private pump(): void {
    if (this.running || this.failure) return;
    if (!this.queue.length) return;
    // Everything queued goes in one job (up to 64 buffers): each job is a thread-pool round trip.
    const parts = this.queue.splice(0, 64);
    const bytes = parts.reduce((n, b) => n + b.length, 0);
    let update: Promise<void>;
    try {
      update = load().sha256Update(this.handle, parts);
    } catch (err) {
      this.failure = err as Error;
      this.wake();
      return;
    }
    this.running = true;
    update.then(
      () => { this.running = false; this.queuedBytes -= bytes; this.pump(); this.wake(); },
      (err: Error) => { this.running = false; this.failure = err; this.wake(); },
    );
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  async settled(limit = 0): Promise<void> {
    while (this.queuedBytes > limit && !this.failure) await new Promise<void>((res) => this.waiters.push(res));
    if (this.failure) throw this.failure;
  }

  /** `sha256:<hex>` of everything updated. */
  async digest(): Promise<string> {
    await this.settled(0);
    return 'sha256:' + load().sha256Digest(this.handle);
  }
}

/** openat2(2)'s `resolve` flags (linux/openat2.h). */
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;
/** O_PATH (not in Node's fs.constants). */
export const O_PATH = 0o10000000;
/** dirfd meaning the current directory. */
export const AT_FDCWD = -100;

/** openat2(2), synchronous (close-on-exec always); throws an Error with `code` such as "ENOENT". */
export function openat2(dirfd: number, file: string, flags: number, mode: number, resolve: number): number {
  return load().openat2(dirfd, file, flags, mode, resolve);
}

/** readlinkat(2); `file` "" reads the symlink an O_PATH descriptor refers to. */
export function readlinkat(dirfd: number, file: string): string {
  return load().readlinkat(dirfd, file);
}

/** A transfer started by sendFileToSocket. */
export interface SocketFileTransfer {
  /** Bytes sent; rejects (code EPIPE, ECONNRESET, ECANCELED, ...) when the transfer ends early. */
  done: Promise<number>;
  /** Ends the transfer (done rejects with ECANCELED); nothing once it has ended. */
  cancel(): void;
}

/**
 * sendfile(2) of `length` bytes of `file` from `offset` into a connected, non-blocking socket, off
 * the event loop (native/berth-sys.c). Nothing else may write to the socket until `done` settles.
 */
export function sendFileToSocket(socketFd: number, file: string, offset: number, length: number): SocketFileTransfer {
  const sys = load();
  let id = 0;
  const done = new Promise<number>((resolve, reject) => {
    id = sys.sendfileToSocket(socketFd, file, offset, length, (err, sent) => (err ? reject(err) : resolve(sent)));
  });
  return { done, cancel: () => sys.sendfileCancel(id) };
}

/** malloc_trim(3): hands the C heap's free pages back to the kernel (glibc keeps them otherwise). */
export function mallocTrim(): boolean {
  return load().mallocTrim();
}

/** A child's descriptor: /dev/null, a pipe it reads ('in') or one it writes ('out'). */
export type StdioSlot = 'null' | 'in' | 'out';

export interface ChildExit {
  /** Exit status, or -1 when killed by a signal. */
  code: number;
  /** Terminating signal number, 0 when it exited. */
  signal: number;
}

export interface SpawnedChild {
  pid: number;
  /** Our end of each pipe slot: writable for 'in', readable for 'out'; null for 'null'. */
  stdio: Array<net.Socket | null>;
  /** Resolves once the child has ended and been reaped. */
  exited: Promise<ChildExit>;
  /** Signals the child unless it has already been reaped (its PID may then be someone else's). */
  kill(signal?: NodeJS.Signals | number): void;
}

export interface SpawnOptions {
  env: Record<string, string | undefined>;
  stdio: StdioSlot[];
  /** setsid(2) in the child: no signal from our terminal or process group reaches it. */
  newSession?: boolean;
}

const running = new Map<number, (exit: ChildExit) => void>();
let devNull: number | undefined;
/**
 * Signal listeners do not keep Node's event loop alive; this timer does while a child runs
 * (so awaiting `exited` never ends the process early) and doubles as a safety net.
 */
let keepAlive: NodeJS.Timeout | undefined;

/** libuv reaps only its own children; SIGCHLD tells us to look at ours. */
function reapOurs(): void {
  for (const [pid, done] of running) {
    let exit: ChildExit | null;
    try { exit = load().reap(pid); } catch { exit = { code: -1, signal: 0 }; } // ECHILD: gone already
    if (exit) { running.delete(pid); done(exit); }
  }
  if (running.size === 0 && keepAlive) { clearInterval(keepAlive); keepAlive = undefined; }
}

/**
 * Starts a program with posix_spawn: no fork of this (large) process, so the event loop
 * is not blocked for milliseconds per child as with child_process. `file` must be a path.
 */
export function spawnChild(file: string, args: string[], opts: SpawnOptions): SpawnedChild {
  const sys = load();
  if (running.size === 0 && process.listenerCount('SIGCHLD') === 0) process.on('SIGCHLD', reapOurs);
  devNull ??= fs.openSync('/dev/null', 'r+');
  const childFds: number[] = [];
  const ours: Array<number | null> = [];
  const close: number[] = [];
  try {
    for (const slot of opts.stdio) {
      if (slot === 'null') { childFds.push(devNull); ours.push(null); continue; }
      const [r, w] = sys.pipe();
      close.push(slot === 'in' ? r : w);
      childFds.push(slot === 'in' ? r : w);
      ours.push(slot === 'in' ? w : r);
    }
    const envp = Object.entries(opts.env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
    const pid = sys.spawn(file, [file, ...args], envp, childFds, !!opts.newSession);
    const exited = new Promise<ChildExit>((resolve) => running.set(pid, resolve));
    keepAlive ??= setInterval(reapOurs, 1000);
    let reaped = false;
    void exited.then(() => { reaped = true; });
    const stdio = ours.map((fd, i) => {
      if (fd === null) return null;
      const sock = new net.Socket({ fd, readable: opts.stdio[i] === 'out', writable: opts.stdio[i] === 'in' });
      sock.on('error', () => undefined); // EPIPE/ECONNRESET when the child goes: not our error
      return sock;
    });
    ours.length = 0;
    return {
      pid, stdio, exited,
      kill(signal = 'SIGTERM') { if (!reaped) { try { process.kill(pid, signal); } catch { /* gone */ } } },
    };
  } finally {
    for (const fd of [...close, ...ours]) if (fd !== null) fs.closeSync(fd);
  }
}

/** Runs a program to completion; resolves with its exit and everything it wrote (stdout, stderr). */
export async function runChild(file: string, args: string[], env: Record<string, string | undefined>, timeoutMs: number): Promise<ChildExit & { stdout: string; stderr: string }> {
  const child = spawnChild(file, args, { env, stdio: ['null', 'out', 'out'] });
  const collect = (s: net.Socket | null) => new Promise<string>((resolve) => {
    let text = '';
    s!.setEncoding('utf8');
    s!.on('data', (d: string) => { text += d; });
    s!.on('close', () => resolve(text));
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  try {
    const [exit, stdout, stderr] = await Promise.all([child.exited, collect(child.stdio[1]), collect(child.stdio[2])]);
    return { ...exit, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** Whether a process exists and has not exited (a zombie has). */
export function isLive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
