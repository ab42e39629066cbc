// The build context as a tar, written directly: the bytes tar-stream's pack would produce (ustar
// headers, PAX for names it cannot hold), without a stream object and a callback per member. The
// CLI's cached rebuild is mostly start-up and this walk, so both are kept to plain calls: metadata
// and files are read with direct (synchronous) calls, and the tar goes out in batches of about
// BATCH_BYTES when the request asks for more (backpressure through Readable's _read).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { CliError } from './client';

export type TarMemberType = 'file' | 'directory' | 'symlink';

export interface TarMember {
  name: string;
  type: TarMemberType;
  mode: number;
  mtime: Date;
  size?: number;
  linkname?: string;
}

const TYPEFLAG: Record<TarMemberType | 'pax-header', number> = { file: 0x30, symlink: 0x32, directory: 0x35, 'pax-header': 0x78 };
const ZERO_BLOCKS = Buffer.alloc(1024);
/** What one push to the request carries, about: fewer, bigger writes to the socket. */
const BATCH_BYTES = 256 * 1024;
/** Big files are read in pieces of this size, so that one never sits whole in memory. */
const READ_PIECE_BYTES = 1024 * 1024;

function octal(buf: Buffer, value: number, digits: number, offset: number): void {
  const s = value.toString(8);
  // A value too big for its field: all sevens, as tar-stream writes it.
  const field = s.length > digits ? '7'.repeat(digits) : s.padStart(digits, '0');
  buf.write(`${field} `, offset, 'latin1');
}

function ustarHeader(m: TarMember, name: string, prefix: string, type: number, size: number, linkname: string | undefined): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, 'utf8');
  octal(b, m.mode & 0o7777, 6, 100);
  octal(b, 0, 6, 108); // uid
  octal(b, 0, 6, 116); // gid
  if (size.toString(8).length > 11) {
    // base-256 for sizes of 8 GiB and more
    b[124] = 0x80;
    for (let i = 11, n = size; i > 0; i--, n = Math.floor(n / 0x100)) b[124 + i] = n & 0xff;
  } else octal(b, size, 11, 124);
  octal(b, (m.mtime.getTime() / 1000) | 0, 11, 136);
  b[156] = type;
  if (linkname) b.write(linkname, 157, 'utf8');
  b.write('ustar\x0000', 257, 'latin1');
  octal(b, 0, 6, 329); // devmajor
  octal(b, 0, 6, 337); // devminor
  if (prefix) b.write(prefix, 345, 'utf8');
  let sum = 8 * 32; // the checksum field counts as spaces
  for (let i = 0; i < 148; i++) sum += b[i];
  for (let i = 156; i < 512; i++) sum += b[i];
  octal(b, sum, 6, 148);
  return b;
}

/** name and prefix of a ustar header, or null when the name needs a PAX record (tar-stream's rule). */
function ustarName(full: string): [string, string] | null {
  if (Buffer.byteLength(full) !== full.length) return null; // not ASCII
  let name = full;
  let prefix = '';
  while (name.length > 100) {
    const i = name.indexOf('/');
    if (i === -1) return null;
    prefix += prefix ? `/${name.slice(0, i)}` : name.slice(0, i);
    name = name.slice(i + 1);
  }
  if (prefix.length > 155) return null;
  return [name, prefix];
}

function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const len = Buffer.byteLength(body);
  let digits = String(len).length;
  if (len + digits >= 10 ** digits) digits++;
  return `${len + digits}${body}`;
}

function padding(size: number): Buffer | null {
  const rest = size & 511;
  return rest ? ZERO_BLOCKS.subarray(0, 512 - rest) : null;
}

/** The header block(s) of a member: one ustar header, or a PAX header, its records and a ustar header. */
export function memberHeader(m: TarMember): Buffer[] {
  const size = m.type === 'file' ? m.size ?? 0 : 0;
  // tar-stream's defaults for a mode of 0
  const member = m.mode ? m : { ...m, mode: m.type === 'directory' ? 0o755 : 0o644 };
  const split = ustarName(member.name);
  if (split && !(member.linkname && Buffer.byteLength(member.linkname) > 100)) {
    return [ustarHeader(member, split[0], split[1], TYPEFLAG[m.type], size, member.linkname)];
  }
  const records = Buffer.from(paxRecord('path', member.name) + (member.linkname ? paxRecord('linkpath', member.linkname) : ''));
  const link = member.linkname ? 'PaxHeader' : undefined;
  const out = [ustarHeader(member, 'PaxHeader', '', TYPEFLAG['pax-header'], records.length, link), records];
  const pad = padding(records.length);
  if (pad) out.push(pad);
  out.push(ustarHeader(member, 'PaxHeader', '', TYPEFLAG[m.type], size, link));
  return out;
}

/** A whole member with an in-memory body. */
export function memberBlocks(m: TarMember, body?: Buffer): Buffer[] {
  const out = memberHeader(body ? { ...m, size: body.length } : m);
  if (body && body.length) {
    out.push(body);
    const pad = padding(body.length);
    if (pad) out.push(pad);
  }
  return out;
}

/** A tar of in-memory members (a Dockerfile from stdin). */
export function tarOf(members: Array<{ member: TarMember; body?: Buffer }>): Buffer {
  return Buffer.concat([...members.flatMap((e) => memberBlocks(e.member, e.body)), ZERO_BLOCKS]);
}

export interface IgnoreRules {
  excluded(rel: string): boolean;
  mayReinclude(rel: string): boolean;
}

/** The pieces of the context tar in order (sorted names; the ignore rules applied except to `keep`). */
function* contextPieces(dir: string, ignore: IgnoreRules, keep: Set<string>, extra?: { name: string; data: Buffer }): Generator<Buffer> {
  function* walk(rel: string): Generator<Buffer> {
    for (const name of fs.readdirSync(rel ? path.join(dir, rel) : dir).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, r);
      const st = fs.lstatSync(abs);
      const excluded = !keep.has(r) && ignore.excluded(r);
      const mode = st.mode & 0o7777;
      if (st.isDirectory()) {
        if (!excluded) yield* memberHeader({ name: `${r}/`, type: 'directory', mode, mtime: st.mtime });
        if (!excluded || ignore.mayReinclude(r)) yield* walk(r);
      } else if (excluded) {
        continue;
      } else if (st.isSymbolicLink()) {
        yield* memberHeader({ name: r, type: 'symlink', mode, mtime: st.mtime, linkname: fs.readlinkSync(abs) });
      } else if (st.isFile()) {
        yield* memberHeader({ name: r, type: 'file', mode, mtime: st.mtime, size: st.size });
        yield* fileBody(abs, st.size);
        const pad = padding(st.size);
        if (pad) yield pad;
      }
    }
  }
  yield* walk('');
  if (extra) yield* memberBlocks({ name: extra.name, type: 'file', mode: 0o644, mtime: new Date() }, extra.data);
  yield ZERO_BLOCKS;
}

/** Exactly `size` bytes of a file (the size its header announced), in pieces; a file that changed size is an error. */
function* fileBody(abs: string, size: number): Generator<Buffer> {
  const changed = () => new CliError(`${abs} changed while the context was read`);
  const fd = fs.openSync(abs, 'r');
  try {
    let done = 0;
    while (done < size) {
      const piece = Buffer.allocUnsafe(Math.min(READ_PIECE_BYTES, size - done));
      let got = 0;
      while (got < piece.length) {
        const n = fs.readSync(fd, piece, got, piece.length - got, null);
        if (n === 0) throw changed();
        got += n;
      }
      done += got;
      yield piece;
    }
    if (fs.readSync(fd, Buffer.alloc(1), 0, 1, null) !== 0) throw changed();
  } finally {
    fs.closeSync(fd);
  }
}

/** The context directory as a tar stream; `bytes` counts what was read from it so far. */
export class ContextTar extends Readable {
  bytes = 0;
  private readonly pieces: Generator<Buffer>;

  constructor(dir: string, ignore: IgnoreRules, keep: Set<string>, extra?: { name: string; data: Buffer }) {
    super({ highWaterMark: BATCH_BYTES });
    this.pieces = contextPieces(dir, ignore, keep, extra);
  }

  override _read(): void {
    const batch: Buffer[] = [];
    let size = 0;
    let ended = false;
    try {
      while (size < BATCH_BYTES) {
        const next = this.pieces.next();
        if (next.done) {
          ended = true;
          break;
        }
        batch.push(next.value);
        size += next.value.length;
      }
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    if (size) {
      this.bytes += size;
      this.push(batch.length === 1 ? batch[0] : Buffer.concat(batch, size));
    }
    if (ended) this.push(null);
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    // closes a big file left open mid-read
    this.pieces.return(undefined);
    cb(err);
  }
}
