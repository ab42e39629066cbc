/**
 * Spawns conmon (Debian's 2.1.6) for a container or an exec session and
 * speaks its caller protocol (see shared/specs/conmon/OPTIONS-summary.md):
 * fd 3 = _OCI_SYNCPIPE (conmon -> us: `{"data": N, "message"?: "..."}`),
 * fd 4 = _OCI_STARTPIPE (us -> conmon: "go"), fd 5 = _OCI_ATTACHPIPE (exec attach);
 * and the control FIFO `ctl` in the bundle (terminal resize).
 * conmon daemonises, so the container outlives berthd.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { Socket } from 'node:net';
import { conflict } from '../common/errors';
import { spawnChild, unreadBytes, type SpawnedChild, type StdioSlot } from '../common/linux';
import { KeyedMutex } from '../common/mutex';
import { TaskStartError, type ExecSession } from './task';

export interface ConmonCommon {
  conmon: string;
  runc: string;
  runcRoot: string;
  /** Container id (runc id; exit file name). */
  cid: string;
  /** Bundle dir: attach socket, ctl FIFO live here. */
  bundle: string;
  pidFile: string;
  conmonPidFile: string;
  terminal: boolean;
  stdin: boolean;
  /** Keep the container's stdin open when attach clients leave (OpenStdin without StdinOnce). */
  leaveStdinOpen?: boolean;
  logPath?: string;
}

export interface ContainerConmonOptions extends ConmonCommon {
  name: string;
  exitDir: string;
  persistDir: string;
}

export interface ExecConmonOptions extends ConmonCommon {
  execId: string;
  processSpec: string;
}

export interface SyncMessage { data: number; message?: string }

/** Reads newline-delimited JSON messages from conmon's sync pipe. */
class SyncReader {
  private buf = '';
  private queue: SyncMessage[] = [];
  private waiters: Array<{ resolve: (m: SyncMessage) => void; reject: (e: Error) => void }> = [];
  private ended: Error | undefined;

  constructor(sock: Socket, private readonly describe: () => string) {
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (!line) continue;
        try { this.deliver(JSON.parse(line)); } catch { /* not JSON: ignore */ }
      }
    });
    const end = () => {
      const rest = this.buf.trim();
      this.buf = '';
      if (rest) { try { this.deliver(JSON.parse(rest)); } catch { /* ignore */ } }
      this.ended = new Error(`conmon closed its sync pipe without reporting${this.describe()}`);
      for (const w of this.waiters.splice(0)) w.reject(this.ended);
    };
    sock.on('end', end);
    sock.on('close', end);
    sock.on('error', () => { /* close follows */ });
  }

  private deliver(m: SyncMessage): void {
    const w = this.waiters.shift();
    if (w) w.resolve(m); else this.queue.push(m);
  }

  next(): Promise<SyncMessage> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.ended) return Promise.reject(this.ended);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }
}

function baseArgs(o: ConmonCommon, cuuid: string): string[] {
  const args = [
    '--api-version', '1',
    '-c', o.cid, '-u', cuuid,
    '-r', o.runc,
    '--runtime-arg', '--root', '--runtime-arg', o.runcRoot,
    '-b', o.bundle,
    '-p', o.pidFile,
    '-P', o.conmonPidFile,
    '--full-attach',
    '--log-level', 'error',
    '-l', o.logPath ? `k8s-file:${o.logPath}` : 'none',
  ];
  if (o.terminal) args.push('-t');
  if (o.stdin) args.push('-i');
  if (o.stdin && o.leaveStdinOpen) args.push('--leave-stdin-open');
  return args;
}

function spawnWithPipes(conmon: string, args: string[], attachPipe: boolean): { child: SpawnedChild; stderr: () => string } {
  const stdio: StdioSlot[] = ['null', 'null', 'out', 'out', 'in'];
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', _OCI_SYNCPIPE: '3', _OCI_STARTPIPE: '4', TMPDIR: process.env.TMPDIR,
  };
  if (attachPipe) { stdio.push('out'); env._OCI_ATTACHPIPE = '5'; }
  const child = spawnChild(conmon, args, { env, stdio, newSession: true });
  let err = '';
  const stderr = child.stdio[2]!;
  stderr.setEncoding('utf8');
  stderr.on('data', (d: string) => { if (err.length < 8192) err += d; });
  return { child, stderr: () => err.trim() };
}

function pipe(child: SpawnedChild, fd: number): Socket {
  return child.stdio[fd]!;
}

export interface ContainerCreateResult { pid: number }

/** A conmon that has started and waits on its start pipe; it reads the bundle only after go(). */
export interface PendingConmon {
  /** Lets conmon run `runc create`; resolves with the container's PID or throws TaskStartError. */
  go(): Promise<ContainerCreateResult>;
  /** Kills the waiting conmon (the bundle could not be made). */
  cancel(): void;
}

/**
 * Spawns conmon for a container without letting it go yet, so its start-up
 * overlaps the caller's bundle work (mount, config.json). conmon blocks on the
 * start pipe before it forks or touches the bundle (the caller's cgroup hook).
 */
export function conmonSpawn(o: ContainerConmonOptions): PendingConmon {
  // --no-sync-log: no fsync of the log before the exit file is written (dockerd's json-file
  // does not fsync either); it sat on the critical path of every `run --rm`.
  const args = [...baseArgs(o, o.cid), '-n', o.name, '--exit-dir', o.exitDir, '--persist-dir', o.persistDir, '--no-sync-log'];
  const { child, stderr } = spawnWithPipes(o.conmon, args, false);
  const sync = new SyncReader(pipe(child, 3), () => (stderr() ? `: ${stderr()}` : ''));
  const start = pipe(child, 4);
  const release = (): void => {
    pipe(child, 3).destroy();
    start.destroy();
  };
  return {
    async go() {
      try {
        start.end('0');
        const msg = await sync.next();
        if (msg.data < 0) throw new TaskStartError(msg.message ?? 'container create failed');
        return { pid: msg.data };
      } finally {
        release();
      }
    },
    cancel() {
      // Still our direct child: it has not forked yet.
      child.kill('SIGKILL');
      release();
    },
  };
}

export function conmonExec(o: ExecConmonOptions): ExecSession {
  const args = [...baseArgs(o, o.execId), '--exec', '--exec-attach', '--exec-process-spec', o.processSpec];
  const { child, stderr } = spawnWithPipes(o.conmon, args, true);
  const describe = () => (stderr() ? `: ${stderr()}` : '');
  const sync = new SyncReader(pipe(child, 3), describe);
  const attach = new SyncReader(pipe(child, 5), describe);
  const start = pipe(child, 4);
  start.write('0');
  const attachReady = attach.next().then(() => undefined);
  let pidP: Promise<number> | undefined;
  const cleanup = () => {
    for (const fd of [3, 4, 5]) pipe(child, fd).destroy();
  };
  return {
    attachReady,
    go() {
      if (!pidP) {
        start.end('1');
        pidP = sync.next().then((m) => {
          if (m.data < 0) { cleanup(); throw new TaskStartError(m.message ?? 'exec failed'); }
          return m.data;
        });
      }
      return pidP;
    },
    async exited() {
      await this.go();
      try {
        const m = await sync.next();
        return m.data;
      } finally {
        cleanup();
      }
    },
  };
}

/**
 * Control-FIFO writes, one at a time per FIFO, each waiting until conmon has read it:
 * conmon 2.1 parses the first message of a read for every line in that read, so two
 * messages read together apply the first twice (a resize burst could end at its
 * half-way size) and a reopen-log could be taken for a resize.
 */
const ctlQueues = new KeyedMutex();

/** How long a ctl write waits for conmon to read it before the next may follow. */
const CTL_READ_WAIT_MS = 2000;

/** Writes a resize message to conmon's ctl FIFO (non-blocking: no reader -> error). */
export function writeCtl(fifo: string, height: number, width: number): Promise<void> {
  return ctlQueues.run(fifo, () => writeCtlMessage(fifo, `1 ${Math.max(0, Math.floor(height))} ${Math.max(0, Math.floor(width))}\n`, 'resize'));
}

/** Asks conmon to reopen its log (ctl message 2: it makes a fresh file at the log path). */
export function writeCtlReopenLog(fifo: string): Promise<void> {
  return ctlQueues.run(fifo, () => writeCtlMessage(fifo, '2 0 0\n', 'reopen the log'));
}

async function writeCtlMessage(fifo: string, message: string, what: string): Promise<void> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    throw conflict(`cannot ${what}: ${(err as Error).message}`);
  }
  try {
    await fh.write(message);
    // Bounded: a conmon that hangs delays the next message, never blocks it for good.
    for (const deadline = Date.now() + CTL_READ_WAIT_MS; unreadBytes(fh.fd) > 0 && Date.now() < deadline;) {
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    await fh.close();
  }
}
