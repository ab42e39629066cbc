/**
 * Safety checks for tar archives we are about to trust:
 *  - `checkEntryPath`: a member name must stay inside the extraction root
 *    (no absolute names, no `..` components);
 *  - `checkLinkTarget`: hard links must name a member inside the root, and
 *    relative symlinks must not climb above it (Docker's breakout rule;
 *    absolute symlink targets are fine, they resolve inside the rootfs);
 *  - `TarHeaderScanner`: a streaming header-only parser that applies both
 *    checks to a layer tar while its bytes pass by (for example while load
 *    spools it), without copying file contents. It also notices truncated
 *    and non-tar input.
 */
import * as path from 'node:path';
import { invalidArgument } from '../common/errors';

/** Cleans a member name: strips `./` and trailing `/`. Throws on escapes. */
export function checkEntryPath(name: string, what = 'archive'): string {
  if (name.includes('\0')) throw invalidArgument(`invalid ${what} entry ${JSON.stringify(name)}: NUL in name`);
  if (name.startsWith('/')) throw invalidArgument(`invalid ${what} entry ${JSON.stringify(name)}: absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw invalidArgument(`invalid ${what} entry ${JSON.stringify(name)}: path escapes the archive root`);
  return parts.join('/');
}

export function checkLinkTarget(name: string, type: 'symlink' | 'link', target: string, what = 'archive'): void {
  if (type === 'link') {
    if (target.startsWith('/')) throw invalidArgument(`invalid ${what} entry ${JSON.stringify(name)}: hard link to absolute path ${JSON.stringify(target)}`);
    const t = path.posix.normalize(target);
    if (t === '..' || t.startsWith('../')) throw invalidArgument(`invalid ${what} entry ${JSON.stringify(name)}: hard link ${JSON.stringify(target)} points outside the archive`);
    return;
  }
  if (target.startsWith('/')) return;
  if (escapesRoot(path.posix.dirname(name), target)) {
    throw invalidArgument(`invalid ${what} entry ${JSON.stringify(name)}: symlink ${JSON.stringify(target)} points outside the archive`);
  }
}

function escapesRoot(dir: string, target: string): boolean {
  let depth = dir === '.' || dir === '' ? 0 : dir.split('/').filter((p) => p && p !== '.').length;
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') { depth--; if (depth < 0) return true; } else depth++;
  }
  return false;
}

export interface ScannedHeader { name: string; type: string; linkname: string; size: number }

const BLOCK = 512;

/**
 * Header-only tar parser. Feed it chunks with push(), then end(); it throws
 * (from push/end) on the first bad member. Understands ustar, GNU long
 * names (L/K) and PAX headers (x/g path/linkpath/size).
 */
export class TarHeaderScanner {
  private buf: Buffer = Buffer.alloc(0);
  private skip = 0;            // data bytes (incl. padding) still to skip
  private pending: { kind: 'L' | 'K' | 'x' | 'g'; size: number } | undefined;
  private longName: string | undefined;
  private longLink: string | undefined;
  private pax: Record<string, string> = {};
  private globalPax: Record<string, string> = {};
  private sawEnd = false;
  private sawAny = false;
  readonly headers: ScannedHeader[] = [];

  constructor(private what = 'layer', private keepHeaders = false) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      if (this.sawEnd) return; // trailing zero blocks / padding after the end marker
      if (this.skip > 0 && !this.pending) {
        const n = Math.min(this.skip, chunk.length - off);
        this.skip -= n;
        off += n;
        continue;
      }
      const need = this.pending ? padded(this.pending.size) : BLOCK;
      const take = Math.min(need - this.buf.length, chunk.length - off);
      this.buf = this.buf.length ? Buffer.concat([this.buf, chunk.subarray(off, off + take)]) : Buffer.from(chunk.subarray(off, off + take));
      off += take;
      if (this.buf.length < need) continue;
      const block = this.buf;
      this.buf = Buffer.alloc(0);
      if (this.pending) this.finishExtension(block);
      else this.header(block);
    }
  }

  end(): void {
    if (!this.sawAny) throw invalidArgument(`invalid ${this.what}: empty or not a tar archive`);
    if (this.skip > 0 || this.pending || this.buf.length > 0) throw invalidArgument(`invalid ${this.what}: unexpected EOF (truncated tar archive)`);
  }

  private header(block: Buffer): void {
    if (block.every((b) => b === 0)) {
      // One zero block ends the archive for our purposes (Go's reader is as lenient).
      this.sawEnd = true;
      this.sawAny = true;
      return;
    }
    if (!validChecksum(block)) {
      throw invalidArgument(`invalid ${this.what}: not a tar archive (bad header checksum)`);
    }
    this.sawAny = true;
    const typeflag = String.fromCharCode(block[156] || 0x30);
    let size = parseNumeric(block.subarray(124, 136));
    if (typeflag === 'L' || typeflag === 'K' || typeflag === 'x' || typeflag === 'g') {
      if (size > 1 << 20) throw invalidArgument(`invalid ${this.what}: oversized extended header`);
      this.pending = { kind: typeflag as 'L' | 'K' | 'x' | 'g', size };
      if (size === 0) this.finishExtension(Buffer.alloc(0));
      return;
    }
    let name = cstr(block.subarray(0, 100));
    const magic = block.subarray(257, 263).toString('latin1');
    if (magic === 'ustar\0') {
      const prefix = cstr(block.subarray(345, 500));
      if (prefix) name = `${prefix}/${name}`;
    }
    let linkname = cstr(block.subarray(157, 257));
    const pax = { ...this.globalPax, ...this.pax };
    if (this.longName !== undefined) name = this.longName;
    if (this.longLink !== undefined) linkname = this.longLink;
    if (pax.path !== undefined) name = pax.path;
    if (pax.linkpath !== undefined) linkname = pax.linkpath;
    if (pax.size !== undefined) size = Number(pax.size);
    this.longName = this.longLink = undefined;
    this.pax = {};
    const type = typeName(typeflag);
    this.check(name, type, linkname);
    if (this.keepHeaders) this.headers.push({ name, type, linkname, size });
    // Links, dirs and devices carry no data even if a size is set (Go's reader agrees for links/dirs).
    const hasData = type === 'file' || type === 'contiguous-file' || type === 'other';
    this.skip = hasData ? padded(size) : 0;
  }

  private finishExtension(block: Buffer): void {
    const p = this.pending!;
    this.pending = undefined;
    const data = block.subarray(0, p.size);
    if (p.kind === 'L') this.longName = cstr(data);
    else if (p.kind === 'K') this.longLink = cstr(data);
    else {
      const rec = parsePax(data);
      if (p.kind === 'g') this.globalPax = { ...this.globalPax, ...rec };
      else this.pax = rec;
    }
  }

  private check(name: string, type: string, linkname: string): void {
    const clean = checkEntryPath(name, this.what);
    if (type === 'symlink' || type === 'link') checkLinkTarget(clean || '.', type, linkname, this.what);
  }
}

function padded(n: number): number {
  return Math.ceil(n / BLOCK) * BLOCK;
}

function cstr(b: Buffer): string {
  const z = b.indexOf(0);
  return b.subarray(0, z === -1 ? b.length : z).toString('utf8');
}

function parseNumeric(b: Buffer): number {
  if (b[0] & 0x80) {
    // base-256 (GNU) for sizes >= 8 GiB
    let n = 0;
    for (let i = 1; i < b.length; i++) n = n * 256 + b[i];
    return n;
  }
  const s = cstr(b).trim();
  return s ? parseInt(s, 8) : 0;
}

function validChecksum(block: Buffer): boolean {
  const stored = parseNumeric(block.subarray(148, 156));
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 32 : block[i];
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  return stored === unsigned || stored === signed;
}

function parsePax(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp === -1) break;
    const len = parseInt(data.subarray(off, sp).toString('latin1'), 10);
    if (!len || len <= 0) break;
    const rec = data.subarray(sp + 1, off + len - 1).toString('utf8');
    const eq = rec.indexOf('=');
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    off += len;
  }
  return out;
}

function typeName(flag: string): string {
  switch (flag) {
    case '0': case '\0': case '7': return 'file';
    case '1': return 'link';
    case '2': return 'symlink';
    case '3': return 'character-device';
    case '4': return 'block-device';
    case '5': return 'directory';
    case '6': return 'fifo';
    default: return 'other';
  }
}
