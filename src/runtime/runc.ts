/**
 * Thin wrapper over the runc CLI for the operations berthd runs itself
 * (conmon runs `create` and `exec`). Every call uses the engine's own
 * `--root` so berthd never sees or touches other runc users' containers.
 */
import { execFile } from 'node:child_process';

export interface RuncOptions {
  /** runc binary. */
  binary: string;
  /** runc state root (`--root`), under the exec root. */
  root: string;
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

  private run(args: string[], timeoutMs = 30_000): Promise<string> {
    return new Promise((resolve, reject) => {
      execFile(this.opts.binary, ['--root', this.opts.root, ...args], { timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        if (err) {
          const code = typeof (err as any).code === 'number' ? (err as any).code : null;
          reject(new RuncError(runcMessage(String(stderr || err.message)), String(stderr), code));
        } else resolve(String(stdout));
      });
    });
  }

  start(id: string): Promise<string> { return this.run(['start', id]); }
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
