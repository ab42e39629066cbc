// Moves bytes between the terminal and a hijacked attach/exec connection:
// stdcopy demultiplexing (unless TTY), raw mode, detach keys, stdin half-close.
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import type { Hijacked } from './client';
import { CliError } from './client';
import { StdcopyDecoder, STDERR } from '../common/stdcopy';
import { DetachKeyMatcher, detachKeyBytes as commonDetachKeyBytes } from '../common/detachkeys';

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/** term.ToBytes: `ctrl-p,ctrl-q` -> [0x10, 0x11]. */
export function detachKeyBytes(spec: string): number[] {
  try {
    return commonDetachKeyBytes(spec);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
}

/** Filters the detach sequence out of the input; calls onDetach when it is complete. */
export class EscapeFilter {
  private readonly matcher: DetachKeyMatcher;
  constructor(keys: number[], private readonly onDetach: () => void) {
    this.matcher = new DetachKeyMatcher(keys);
  }
  push(chunk: Buffer): Buffer {
    const { forward, detached } = this.matcher.feed(chunk);
    if (detached) this.onDetach();
    return forward;
  }
}

export interface PumpOptions {
  tty: boolean;
  /** Forward process.stdin to the container. */
  stdin: boolean;
  detachKeys?: string;
  /** Called once the streams are live (e.g. to send the first resize). */
  onStart?: () => void;
}

export type PumpResult = 'eof' | 'detached';

/** Pumps until the daemon closes the stream (or the user types the detach keys). */
export function pump(h: Hijacked, o: PumpOptions): Promise<PumpResult> {
  return new Promise((resolve, reject) => {
    const sock = h.socket;
    const stdin = process.stdin;
    let rawSet = false;
    let finished = false;
    const writeOut = (stream: number, data: Buffer): void => {
      if (stream === STDERR) process.stderr.write(data);
      else process.stdout.write(data);
    };
    const dec = o.tty ? null : new StdcopyDecoder((s, d) => writeOut(s, d));
    const onData = (d: Buffer): void => {
      try {
        if (dec) dec.push(d);
        else process.stdout.write(d);
      } catch (e) {
        finish(null, e as Error);
      }
    };
    const cleanup = (): void => {
      if (o.stdin) {
        stdin.removeListener('data', onIn);
        stdin.removeListener('end', onInEnd);
        stdin.pause();
        if (rawSet && stdin.isTTY) stdin.setRawMode(false);
      }
    };
    const finish = (res: PumpResult | null, err?: Error): void => {
      if (finished) return;
      finished = true;
      cleanup();
      // Detach drops our end once the bytes typed before the detach keys are sent.
      if (res === 'detached') sock.write('', () => sock.destroy());
      if (err) reject(err);
      else resolve(res ?? 'eof');
    };
    let detachTyped = false;
    // As the docker CLI: detach keys exist only with a TTY; piped stdin is data, every byte of it.
    const escape = new EscapeFilter(o.stdin && o.tty ? detachKeyBytes(o.detachKeys || DEFAULT_DETACH_KEYS) : [], () => (detachTyped = true));
    const onIn = (d: Buffer): void => {
      const out = escape.push(d);
      if (!finished && out.length && !sock.write(out)) {
        // The daemon reads slower than stdin arrives (a big file): wait instead of buffering it all.
        stdin.pause();
        sock.once('drain', () => { if (!finished) stdin.resume(); });
      }
      if (detachTyped) finish('detached');
    };
    const onInEnd = (): void => {
      if (!finished) sock.end(); // half-close: the container sees EOF on stdin, output keeps flowing
    };
    if (h.head.length) onData(h.head);
    sock.on('data', onData);
    sock.on('end', () => finish('eof'));
    sock.on('close', () => finish('eof'));
    sock.on('error', (e) => finish(null, e));
    if (o.stdin) {
      if (o.tty && stdin.isTTY) {
        makeRaw(stdin);
        rawSet = true;
      }
      stdin.on('data', onIn);
      stdin.on('end', onInEnd);
      stdin.resume();
    } else {
      sock.end();
    }
    o.onStart?.();
  });
}

/**
 * Raw mode as the docker CLI's term.MakeRaw: libuv's raw mode keeps output
 * post-processing (OPOST/ONLCR), which would turn the container's `\r\n` into
 * `\r\r\n` on our terminal, so output processing is switched off too.
 * setRawMode(false) later restores the termios libuv saved before this
 * (and Node restores the startup termios on exit or a fatal signal).
 */
function makeRaw(stdin: NodeJS.ReadStream & { fd: number }): void {
  stdin.setRawMode(true);
  spawnSync('stty', ['-opost'], { stdio: [stdin.fd, 'ignore', 'ignore'] });
}

/** Resolves once everything written to stdout/stderr has been handed to the OS. */
export function flushStdio(): Promise<void> {
  return new Promise((r) => process.stdout.write('', () => process.stderr.write('', () => r())));
}

export function terminalSize(): { h: number; w: number } | null {
  if (!process.stdout.isTTY) return null;
  return { h: process.stdout.rows, w: process.stdout.columns };
}

/**
 * Ends an interactive session the way the docker CLI does: waits for the
 * stream, stops the watchers, flushes stdout/stderr, and on the detach keys
 * prints `read escape sequence` and exits 0; otherwise `exitCode()` decides.
 */
export async function finishSession(
  session: Promise<PumpResult>, stops: Array<() => void>, err: (s: string) => void, exitCode: () => Promise<number>,
): Promise<number> {
  const res = await session;
  for (const stop of stops) stop();
  await flushStdio();
  if (res === 'detached') {
    err('read escape sequence\n');
    return 0;
  }
  return exitCode();
}

/**
 * Writes a tar the daemon streams (save, export) to `outFile` — through a temp file
 * renamed at the end, so a failure never leaves half a file — or to stdout, which
 * must not be a terminal (docker's "cowardly refusing" rule, checked by the caller first).
 */
export async function writeTarOutput(res: NodeJS.ReadableStream, outFile: string | undefined, failure: string): Promise<void> {
  if (!outFile) {
    for await (const c of res) process.stdout.write(c as Buffer);
    await flushStdio();
    return;
  }
  const tmp = `${outFile}.berth-tmp-${process.pid}`;
  const ws = fs.createWriteStream(tmp);
  try {
    await new Promise<void>((resolve, reject) => {
      res.pipe(ws);
      ws.on('finish', resolve);
      ws.on('error', reject);
      res.on('error', reject);
    });
    fs.renameSync(tmp, outFile);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new CliError(`${failure}: ${(e as Error).message}`, 1);
  }
}
