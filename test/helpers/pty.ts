/**
 * A pseudo-terminal session for TTY tests: `script` (util-linux) gives the
 * command a real pty; we type into it through a pipe and read what the
 * terminal shows, expect-style.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';

export interface PtySession {
  /** Everything the terminal has shown so far. */
  output(): string;
  /** Waits until the output (after `from`) matches. */
  expect(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  send(text: string): void;
  /** Changes the pty's window size (the kernel sends SIGWINCH to the foreground program). */
  resize(rows: number, cols: number): void;
  /** Resolves with the exit code of the command (script -e passes it through). */
  exited(timeoutMs?: number): Promise<number>;
  kill(): void;
}

/**
 * Starts `command` (a shell command line) in a pty of `rows` x `cols`.
 * `pidDir` receives the pid of the command so resize() can find its terminal.
 */
export function startPty(command: string, opts: { env?: Record<string, string>; rows?: number; cols?: number; workDir: string }): PtySession {
  const pidFile = path.join(opts.workDir, `pty-${process.pid}-${Date.now()}.pid`);
  const rows = opts.rows ?? 24;
  const cols = opts.cols ?? 80;
  const line = `stty rows ${rows} cols ${cols}; echo $$ > ${pidFile}; exec ${command}`;
  const child: ChildProcessWithoutNullStreams = spawn('script', ['-qec', line, '/dev/null'], {
    env: { ...process.env, TERM: 'xterm', ...opts.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  const waiters: Array<() => void> = [];
  const onData = (b: Buffer) => {
    out += b.toString('utf8');
    for (const w of waiters.splice(0)) w();
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  child.stdin.on('error', () => undefined);
  let exitCode: number | null = null;
  const exitP = new Promise<number>((resolve) => {
    child.on('close', (code, signal) => {
      exitCode = code ?? (signal ? 128 : 1);
      resolve(exitCode);
      for (const w of waiters.splice(0)) w();
    });
  });
  let cursor = 0;

  const session: PtySession = {
    output: () => out,
    async expect(re, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = out.slice(cursor).match(re);
        if (m) {
          cursor += (m.index ?? 0) + m[0].length;
          return m;
        }
        if (exitCode !== null) throw new Error(`pty command exited (${exitCode}) before ${re} appeared; output:\n${out}`);
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${re}; output:\n${out}`);
        await new Promise<void>((r) => {
          const t = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(t);
            r();
          });
        });
      }
    },
    send(text) {
      child.stdin.write(text);
    },
    resize(r, c) {
      const pid = fs.readFileSync(pidFile, 'utf8').trim();
      const tty = fs.readlinkSync(`/proc/${pid}/fd/0`);
      const res = spawnSync('stty', ['-F', tty, 'rows', String(r), 'cols', String(c)]);
      if (res.status !== 0) throw new Error(`stty -F ${tty}: ${res.stderr}`);
    },
    exited(timeoutMs = 30_000) {
      return Promise.race([
        exitP,
        new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`pty command did not exit; output:\n${out}`)), timeoutMs).unref()),
      ]);
    },
    kill() {
      if (exitCode === null) child.kill('SIGKILL');
      fs.rmSync(pidFile, { force: true });
    },
  };
  return session;
}
