// What every command gets: the program name, a lazily connected API client, output helpers.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { ApiClient, ApiError, CliError, ConnectError, DEFAULT_HOST, parseHost } from './client';
import type { CommandSpec, Parsed } from './flags';

export const PROG = 'berth';

export interface Ctx {
  prog: string;
  /** The API client; connecting (and auto-starting berthd) happens on first use. */
  api(): Promise<ApiClient>;
  out(s: string): void;
  err(s: string): void;
}

export interface CommandDef {
  spec: CommandSpec;
  run(ctx: Ctx, p: Parsed): Promise<number>;
}

export function makeCtx(hostFlag: string | undefined): Ctx {
  let client: Promise<ApiClient> | null = null;
  return {
    prog: PROG,
    api() {
      client ??= connect(hostFlag);
      return client;
    },
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
  };
}

async function connect(hostFlag: string | undefined): Promise<ApiClient> {
  const explicit = hostFlag || process.env.BERTH_HOST || process.env.DOCKER_HOST;
  const host = explicit || DEFAULT_HOST;
  const c = new ApiClient(host);
  if (!explicit) {
    const sock = parseHost(host).socketPath!;
    const state = await probeSocket(sock);
    // A socket we may not use (not in the berth group) is an error, as docker's; starting a second
    // daemon would not help, and only root can start one.
    if (state === 'denied' || (state === 'absent' && process.getuid?.() !== 0)) throw new ConnectError(host, state === 'denied');
    if (state === 'absent') await startDaemon(sock);
  }
  await c.negotiate();
  return c;
}

type SocketState = 'ok' | 'absent' | 'denied';

function probeSocket(sock: string): Promise<SocketState> {
  return new Promise((resolve) => {
    const s = net.createConnection(sock);
    s.once('connect', () => {
      s.destroy();
      resolve('ok');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'EACCES' || e.code === 'EPERM' ? 'denied' : 'absent'));
  });
}

/** Where berthd lives: next to this script (bin/berth -> bin/berthd, dist/src/cli -> dist/src/daemon). */
function daemonEntry(): string {
  const self = process.argv[1] ? fs.realpathSync(process.argv[1]) : __filename;
  const dir = path.dirname(self);
  const sibling = path.join(dir, 'berthd');
  if (fs.existsSync(sibling)) return sibling;
  const dist = path.join(dir, '..', 'daemon', 'main.js');
  if (fs.existsSync(dist)) return dist;
  throw new CliError(`Cannot connect to the Berth daemon at ${DEFAULT_HOST}. Is the berth daemon running?`);
}

/** No daemon at the default socket and no host given: start berthd detached and wait for it. */
async function startDaemon(sock: string): Promise<void> {
  const { spawn } = await import('node:child_process');
  const entry = daemonEntry();
  const execRoot = path.dirname(sock);
  let logFile = '/var/log/berth.log';
  let fd: number;
  try {
    fd = fs.openSync(logFile, 'a');
  } catch {
    fs.mkdirSync(execRoot, { recursive: true });
    logFile = path.join(execRoot, 'berthd.log');
    fd = fs.openSync(logFile, 'a');
  }
  // argv0 "berthd": `pidof berthd` finds it, as when started from bin/berthd.
  const child = spawn(process.execPath, [entry], { argv0: 'berthd', detached: true, stdio: ['ignore', fd, fd] });
  child.unref();
  fs.closeSync(fd);
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline) {
    if ((await probeSocket(sock)) === 'ok') return;
    if (exited) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  // berthd refuses a bad daemon.json with one line and exit 1: show it rather than only where the log is.
  const lastLine = exited ? fs.readFileSync(logFile, 'utf8').trimEnd().split('\n').pop() : '';
  throw new CliError(`Cannot connect to the Berth daemon at ${DEFAULT_HOST}. Is the berth daemon running? (berthd did not start${lastLine ? `: ${lastLine}` : ''}; see ${logFile})`);
}

/**
 * Runs `fn` for each name (rm, stop, kill ... of several objects), printing each name done and
 * each daemon error as docker does, and failing at the end if one failed. `fn` answers false for a
 * name it skipped (printed neither way).
 */
export async function forEachObject(ctx: Ctx, names: string[], fn: (name: string) => Promise<void | false>, printName = true): Promise<number> {
  let failed = false;
  for (const n of names) {
    try {
      const done = await fn(n);
      if (printName && done !== false) ctx.out(`${n}\n`);
    } catch (e) {
      if (e instanceof ApiError) ctx.err(`Error response from daemon: ${e.message}\n`);
      else if (e instanceof CliError) ctx.err(`${e.message}\n`);
      else throw e;
      failed = true;
    }
  }
  return failed ? 1 : 0;
}
