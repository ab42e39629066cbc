/**
 * Docker's detach keys (`--detach-keys`, default ctrl-p,ctrl-q), shared by the
 * daemon (attach stdin) and the CLI (TTY sessions), as term.ToBytes reads them:
 * comma-separated keys, each a single character or `ctrl-<x>` with x in a-z,
 * @, [, \, ], ^, _.
 */

export const DEFAULT_DETACH_KEYS = [0x10, 0x11];

/** Throws `Unknown character: '<key>'` (the docker CLI's wording) for a bad key. */
export function detachKeyBytes(spec: string): number[] {
  const keys: number[] = [];
  for (const raw of spec.split(',')) {
    const part = raw.trim();
    if (part.length === 1) { keys.push(part.charCodeAt(0)); continue; }
    const m = /^ctrl-(.)$/i.exec(part);
    const c = m?.[1].toLowerCase();
    if (c && c >= 'a' && c <= 'z') { keys.push(c.charCodeAt(0) - 96); continue; }
    const idx = c === undefined ? -1 : '@[\\]^_'.indexOf(c);
    if (idx < 0) throw new Error(`Unknown character: '${part}'`);
    keys.push(idx === 0 ? 0 : 27 + idx - 1);
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
    if (this.keys.length === 0) return { forward: chunk, detached: false };
    const out: number[] = [];
    for (const b of chunk) {
      if (b === this.keys[this.held.length]) {
        this.held.push(b);
        if (this.held.length === this.keys.length) {
          this.held = [];
          return { forward: Buffer.from(out), detached: true };
        }
        continue;
      }
      out.push(...this.held);
      this.held = [];
      if (b === this.keys[0]) this.held.push(b); else out.push(b);
    }
    return { forward: Buffer.from(out), detached: false };
  }
}
