/**
 * Thin wrapper over the runc CLI for the operations berthd runs itself
 * (conmon runs `create` and `exec`). Every call uses the engine's own
 * `--root` so berthd never sees or touches other runc users' containers.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { isLive, runChild, sealedCopy } from '../common/linux';

export interface RuncOptions {
  /** runc binary. */
  binary: string;
  /** runc state root (`--root`), under the exec root. */
  root: string;
}

/**
 * The runc to execute: a sealed in-memory copy of the binary when possible. runc init
 * makes exactly such a copy of itself on every container start and exec (CVE-2019-5736)
 * unless it already runs from one (runc's own documented shortcut), ~3 ms each time.
 * The copy is reachable through this process's /proc entry, so it serves berthd and the
 * conmons berthd starts; conmon only runs the runtime while berthd waits on it.
 */
export function runtimeExecPath(binary: string): string {
  try {
    return sealedCopy(binary, path.basename(binary)).path;
  } catch {
    return binary; // no memfd support: runc copies itself as usual
  }
}

export class RuncError extends Error {
  constructor(message: string, readonly stderr: string, readonly code: number | null) {
    super(message);
    this.name = 'RuncError';
  }
}

/**
 * Extracts the human message from runc's logrus output
 * (`time="..." level=error msg="..."`), or returns the text trimmed.
 */
export function runcMessage(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const msgs: string[] = [];
  for (const line of lines) {
    const m = /(?:^|\s)msg="((?:[^"\\]|\\.)*)"/.exec(line);
    if (m) msgs.push(m[1].replace(/\\(.)/g, '$1'));
    else if (!/^time="/.test(line)) msgs.push(line);
  }
  return (msgs.length ? msgs[msgs.length - 1] : stderr.trim()) || 'unknown runc error';
}

export class Runc {
  constructor(private readonly opts: RuncOptions) {}

  private async run(args: string[], timeoutMs = 30_000): Promise<string> {
    const r = await runChild(this.opts.binary, ['--root', this.opts.root, ...args], process.env, timeoutMs);
    if (r.code !== 0) {
      const what = r.signal ? `runc ${args[0]} killed by signal ${r.signal}` : `runc ${args[0]} exited with ${r.code}`;
      throw new RuncError(runcMessage(r.stderr || what), r.stderr, r.signal ? null : r.code);
    }
    return r.stdout;
  }

  /**
   * Starts a created container. `runc start` only opens the container's exec FIFO
   * (runc init blocks writing to it), reads the byte init writes, and removes the
   * FIFO (its absence is what makes runc report "running"). Doing exactly that here
   * spares a runc process (~8 ms, mostly Go start-up and a fork of this daemon) on
   * every start. Without the FIFO (not created, or another runtime) `runc start`
   * runs and reports the state as runc sees it.
   */
  async start(id: string, initPid: number): Promise<void> {
    const fifo = path.join(this.opts.root, id, 'exec.fifo');
    let handle: fsp.FileHandle;
    try {
      // Non-blocking: a blocking open would hang a pool thread if init died before opening its end.
      handle = await fsp.open(fifo, fsc.O_RDONLY | fsc.O_NONBLOCK);
    } catch {
      await this.run(['start', id]);
      return;
    }
    try {
      await readExecFifo(handle, initPid, id);
    } finally {
      await handle.close();
    }
    await fsp.rm(fifo, { force: true });
  }

  /** `runc update --resources FILE`: new cgroup limits (an OCI LinuxResources JSON) for a running container. */
  update(id: string, resourcesFile: string): Promise<string> { return this.run(['update', '--resources', resourcesFile, id]); }

  pause(id: string): Promise<string> { return this.run(['pause', id]); }
  resume(id: string): Promise<string> { return this.run(['resume', id]); }

  kill(id: string, signal: number, all = false): Promise<string> {
    return this.run(all ? ['kill', '--all', id, String(signal)] : ['kill', id, String(signal)]);
  }

  /** Deletes the runc state (and cgroup); `force` kills a still running container first. Missing ids are not an error. */
  async delete(id: string, force = false): Promise<void> {
    try {
      await this.run(force ? ['delete', '--force', id] : ['delete', id]);
    } catch (err) {
      if (err instanceof RuncError && /does not exist|not found/i.test(err.message + err.stderr)) return;
      throw err;
    }
  }

  /** `runc state`: undefined when runc does not know the container. */
  async state(id: string): Promise<{ status: string; pid: number } | undefined> {
    try {
      return JSON.parse(await this.run(['state', id]));
    } catch (err) {
      if (err instanceof RuncError && /does not exist|not found/i.test(err.message + err.stderr)) return undefined;
      throw err;
    }
  }

  /** PIDs (host namespace) of every process in the container. */
  async ps(id: string): Promise<number[]> {
    const out = (await this.run(['ps', '--format', 'json', id])).trim();
    const v = out ? JSON.parse(out) : [];
    return Array.isArray(v) ? v.map(Number) : [];
  }
}

const EXEC_FIFO_DEADLINE_MS = 10_000;

/**
 * Waits for runc init's byte on the exec FIFO. Reads return EAGAIN while init holds the
 * write end without having written, and 0 while it has not opened it yet (right after
 * `runc create` returns) or after it died: only a dead init makes that final.
 */
async function readExecFifo(handle: fsp.FileHandle, initPid: number, id: string): Promise<void> {
  const buf = Buffer.alloc(16);
  const deadline = Date.now() + EXEC_FIFO_DEADLINE_MS;
  const readByte = async (): Promise<boolean> => {
    try {
      return (await handle.read(buf, 0, buf.length, null)).bytesRead > 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      return false;
    }
  };
  for (let spins = 0; ; spins++) {
    if (await readByte()) return;
    // Init may have opened the FIFO, written its byte, run a short command and exited between
    // the read above and this check: the byte it left decides, not the dead process.
    if (!isLive(initPid)) {
      if (await readByte()) return;
      throw new RuncError(`cannot start container ${id}: container process is already dead`, '', null);
    }
    if (Date.now() > deadline) throw new RuncError(`cannot start container ${id}: timed out waiting for the container process`, '', null);
    // Init is between its last sync with runc and opening the FIFO: microseconds, so spin briefly first.
    await new Promise((r) => (spins < 50 ? setImmediate(r) : setTimeout(r, 1)));
  }
}
