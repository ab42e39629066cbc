import { invalidArgument } from '../common/errors';

/** Docker's default escape sequence: ctrl-p, ctrl-q. */
export const DEFAULT_DETACH_KEYS = [0x10, 0x11];

/**
 * Parses Docker's `--detach-keys` syntax: comma-separated keys, each a single
 * character or `ctrl-<x>` with x in a-z, @, [, \, ], ^, _.
 */
export function parseDetachKeys(spec: string | undefined): number[] {
  if (!spec) return DEFAULT_DETACH_KEYS;
  const keys: number[] = [];
  for (const part of spec.split(',')) {
    if (part.length === 1) { keys.push(part.charCodeAt(0)); continue; }
    const m = /^ctrl-(.)$/i.exec(part);
    if (!m) throw invalidArgument(`Invalid detach keys (${spec}) provided`);
    const c = m[1].toLowerCase();
    if (c >= 'a' && c <= 'z') keys.push(c.charCodeAt(0) - 96);
    else {
      const idx = '@[\\]^_'.indexOf(c);
      if (idx < 0) throw invalidArgument(`Invalid detach keys (${spec}) provided`);
      keys.push(idx === 0 ? 0 : 27 + idx - 1);
    }
  }
  return keys;
}

/**
 * Watches a stdin byte stream for the escape sequence. Bytes that could be the
 * start of the sequence are held back until it is clear they are not.
 */
export class DetachKeyMatcher {
  private held: number[] = [];
  constructor(private readonly keys: number[]) {}

  /** Returns the bytes to forward and whether the sequence was completed. */
  feed(chunk: Buffer): { forward: Buffer; detached: boolean } {
    const out: number[] = [];
    for (const b of chunk) {
      if (b === this.keys[this.held.length]) {
        this.held.push(b);
        if (this.held.length === this.keys.length) return { forward: Buffer.from(out), detached: true };
        continue;
      }
      out.push(...this.held);
      this.held = [];
      if (b === this.keys[0]) this.held.push(b); else out.push(b);
    }
    return { forward: Buffer.from(out), detached: false };
  }
}
