/**
 * Layer tar <-> directory.
 *
 * applyLayer() unpacks one layer (a tar, optionally gzip/xz/zstd) into a NEW,
 * EMPTY directory: Berth keeps one directory per layer and stacks them with
 * overlayfs, so whiteouts are stored the overlay way (char device 0:0 for
 * `.wh.<name>`, xattr trusted.overlay.opaque=y for `.wh..wh..opq`).
 *
 * Security: every entry path is cleaned; `..` components are refused. Parent
 * components are resolved entry by entry against what this layer created
 * (the directory starts empty, so that map is the whole truth); a symlink in
 * a parent position is followed only inside the layer root, and one whose
 * resolution would leave the root is refused. Hardlink targets must be
 * regular files of this layer. The final component is never followed.
 *
 * Speed: file data is written by a bounded pool of async fs operations while
 * the tar keeps streaming; small files go in batches, each one native job on the
 * thread pool (open, write, owner, mode, times, close per file); the diffID
 * (sha256 of the uncompressed tar) is computed on the way in, on the thread pool
 * too, and the same bytes can be teed into the content store. Device nodes,
 * fifos, whiteouts and opaque markers (Node has no mknod/setxattr) are created
 * by ONE `sh` process at the end of the layer.
 * Just over 500 lines: the unpacker and the layer tar writer (createLayerTar) share the entry
 * rules above (names, whiteouts, hardlinks), so they stay in one file.
 */
import { decompressed } from '../common/compression';
import { mknodOperands } from '../common/devnodes';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { Readable, type Writable } from 'node:stream';
import * as tar from 'tar-stream';

type Headers = Partial<tar.Header> & { name: string };
import { invalidArgument, BerthError } from '../common/errors';
import type { TarSplitter } from './tarsplit';
import { PoolSha256, writeFiles } from '../common/linux';

export interface ApplyResult {
  /** `sha256:` digest of the uncompressed tar stream. */
  diffID: string;
  /** Unpacked size: regular file sizes + symlink target lengths (hardlinks once). */
  size: number;
  /** Length of the uncompressed tar. */
  tarSize: number;
}

export interface ApplyOptions {
  /** Receives the uncompressed tar bytes as they stream (e.g. a content-store ingest). Not ended by applyLayer. */
  tee?: Writable;
  /** Records the tar's non-file bytes so the tar can be rebuilt from the layer directory (see tarsplit.ts). */
  split?: TarSplitter;
  /**
   * The files are already in `root` (a container's upper dir adopted as the layer): only the
   * diffID, sizes and tar-split record are computed; nothing is written.
   */
  recordOnly?: boolean;
}

const SMALL_FILE = 1 << 20;      // files up to this size are buffered and written by the pool
const MAX_PENDING = 64;          // concurrent fs operations
const BATCH_FILES = 256;         // small files per writeFiles job
const BATCH_BYTES = 1 << 20;     // ... or this much data
// One writeFiles job at a time (the next batch fills meanwhile): four at once, creating files in one
// directory from several threads (contending for its lock), measured more kernel time, not less.
const MAX_BATCHES = 1;
const HASH_BACKLOG = 8 << 20;    // bytes the tar may run ahead of its diffID hashing
const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_OPAQUE = '.wh..wh..opq';

type NodeKind = 'dir' | 'file' | 'symlink' | 'other';
interface NodeInfo { kind: NodeKind; target?: string }

function layerError(msg: string): BerthError {
  return invalidArgument(`invalid layer: ${msg}`);
}

/** Splits an archive path into clean components; refuses `..`. Leading `/` and `./` are dropped. */
export function cleanArchivePath(name: string): string[] {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw layerError(`refusing entry "${name}": path contains a ".." component`);
  return parts;
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Applies a layer to `root` (which must exist and be empty). */
export async function applyLayer(input: Readable, root: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const { stream: source } = await decompressed(input);
  // The diffID is hashed on the thread pool while the event loop parses the tar.
  const hash = new PoolSha256();
  let tarSize = 0;
  let size = 0;
  const isRoot = process.getuid?.() === 0;
  const umask = process.umask();

  const nodes = new Map<string, NodeInfo>([['', { kind: 'dir' }]]);
  const dirMeta = new Map<string, Headers>();
  const specials: string[] = [];                               // shell lines for mknod/setfattr
  const specialMeta: Array<{ abs: string; h: Headers }> = [];
  const inodes = new Set<string>();                            // hardlinked targets already counted

  // Bounded pool of async fs operations.
  const pending = new Set<Promise<void>>();
  let failure: unknown;
  const dispatch = (fn: () => Promise<void>) => {
    const p: Promise<void> = fn().catch((e) => { failure ??= e; }).finally(() => { pending.delete(p); });
    pending.add(p);
  };
  const throttle = async () => {
    while (pending.size >= MAX_PENDING) await Promise.race(pending);
    if (failure) throw failure;
  };
  // Synchronous fs work gives the event loop a turn every few milliseconds.
  let lastYield = performance.now();
  const yieldSoon = async () => {
    if (performance.now() - lastYield < 5) return;
    await new Promise<void>((res) => setImmediate(res));
    lastYield = performance.now();
  };
  // Small files are written on the thread pool in batches (one native job creates, writes and
  // closes a batch: thousands of 2 KiB files cost the event loop a few calls instead of four or
  // five system calls each, and the writing overlaps the tar parsing and hashing here).
  let batch: { paths: string[]; buffers: Buffer[]; meta: number[]; bytes: number } | undefined;
  let batchesInFlight = 0;
  const flushBatch = () => {
    const b = batch;
    if (!b) return;
    batch = undefined;
    batchesInFlight++;
    dispatch(() => writeFiles(b.paths, b.buffers, Float64Array.from(b.meta)).finally(() => { batchesInFlight--; }));
  };
  const queueSmallFile = async (target: string, data: Buffer, mode: number, uid: number, gid: number, mtimeMs: number, chmod: boolean) => {
    batch ??= { paths: [], buffers: [], meta: [], bytes: 0 };
    batch.paths.push(target);
    batch.buffers.push(data);
    batch.meta.push(mode, uid, gid, mtimeMs, chmod ? 1 : 0);
    batch.bytes += data.length + 512;
    if (batch.paths.length < BATCH_FILES && batch.bytes < BATCH_BYTES) return;
    while (batchesInFlight >= MAX_BATCHES || pending.size >= MAX_PENDING) await Promise.race(pending);
    if (failure) throw failure;
    flushBatch();
  };
  const drain = async () => {
    flushBatch();
    while (pending.size) await Promise.all([...pending]);
    if (failure) throw failure;
  };

  const abs = (rel: string[]) => path.join(root, ...rel);
  const key = (rel: string[]) => rel.join('/');

  /** Resolves a symlink found at parent position `at`, staying inside the root. */
  const followLink = (at: string[], target: string, name: string, depth: number): string[] => {
    if (depth > 40) throw layerError(`refusing entry "${name}": too many levels of symbolic links`);
    let cur = target.startsWith('/') ? [] : at.slice(0, -1);
    for (const comp of target.split('/')) {
      if (comp === '' || comp === '.') continue;
      if (comp === '..') {
        if (cur.length === 0) throw layerError(`refusing entry "${name}": symlink ${key(at)} -> ${target} points outside the layer root`);
        cur = cur.slice(0, -1);
        continue;
      }
      const next = [...cur, comp];
      const n = nodes.get(key(next));
      if (n?.kind === 'symlink') cur = followLink(next, n.target!, name, depth + 1);
      else cur = next;
    }
    return cur;
  };

  /** Resolves the parent directories of `parts`, creating missing ones. Returns the resolved full path. */
  const resolveParent = async (parts: string[], name: string): Promise<string[]> => {
    let cur: string[] = [];
    for (let i = 0; i < parts.length - 1; i++) {
      let next = [...cur, parts[i]];
      let n = nodes.get(key(next));
      if (n?.kind === 'symlink') {
        next = followLink(next, n.target!, name, 0);
        n = nodes.get(key(next));
      }
      if (!n) {
        fs.mkdirSync(abs(next), { mode: 0o755 });
        nodes.set(key(next), { kind: 'dir' });
      } else if (n.kind !== 'dir') {
        throw layerError(`refusing entry "${name}": ${key(next)} is not a directory`);
      }
      cur = next;
    }
    return [...cur, parts[parts.length - 1]];
  };

  /** Removes an earlier entry at the same path (later entries win, as in tar). */
  const replaceExisting = async (rel: string[], newKind: NodeKind) => {
    const n = nodes.get(key(rel));
    if (!n || (n.kind === 'dir' && newKind === 'dir')) return;
    // Earlier file contents are gone: the tar can no longer be rebuilt from the directory.
    if (opts.split) opts.split.broken = true;
    await drain();
    await fsp.rm(abs(rel), { recursive: true, force: true });
    const prefix = key(rel) + '/';
    for (const k of [...nodes.keys()]) if (k === key(rel) || k.startsWith(prefix)) nodes.delete(k);
  };

  const applyOwnerModeTimes = async (p: string, h: Headers, kind: 'file' | 'other') => {
    if (isRoot) await fsp.lchown(p, h.uid ?? 0, h.gid ?? 0);
    if (kind !== 'other' || h.type !== 'symlink') await fsp.chmod(p, (h.mode ?? 0o644) & 0o7777);
    const t = h.mtime ?? new Date(0);
    await fsp.lutimes(p, t, t);
  };

  const handleEntry = async (h: Headers, stream: Readable) => {
    const offset = (stream as unknown as { offset: number }).offset;
    const isFile = h.type === 'file' || h.type === 'contiguous-file' || h.type == null;
    const parts = cleanArchivePath(h.name);
    if (!isFile || parts.length === 0) opts.split?.entry(offset, h.size ?? 0);
    if (parts.length === 0) {
      // The root itself ("./"): keep its metadata for the end.
      if (h.type === 'directory') dirMeta.set('', h);
      stream.resume();
      return;
    }
    const base = parts[parts.length - 1];
    if (opts.recordOnly) {
      stream.resume();
      if (isFile) {
        const stored = base !== WHITEOUT_OPAQUE && !base.startsWith(WHITEOUT_PREFIX);
        opts.split?.entry(offset, h.size ?? 0, stored ? key(parts) : undefined);
        if (stored) size += h.size ?? 0;
      } else if (h.type === 'symlink') {
        size += Buffer.byteLength(h.linkname ?? '');
      }
      return;
    }
    const rel = await resolveParent(parts, h.name);
    const target = abs(rel);

    if (isFile) {
      // Whiteout markers are not written as files: their (normally empty) data stays in the record.
      const stored = base !== WHITEOUT_OPAQUE && !base.startsWith(WHITEOUT_PREFIX);
      opts.split?.entry(offset, h.size ?? 0, stored ? key(rel) : undefined);
    }
    if (base === WHITEOUT_OPAQUE) {
      stream.resume();
      specials.push(`setfattr -n trusted.overlay.opaque -v y -- ${shQuote(abs(rel.slice(0, -1)))}`);
      return;
    }
    if (base.startsWith(WHITEOUT_PREFIX)) {
      stream.resume();
      const hidden = [...rel.slice(0, -1), base.slice(WHITEOUT_PREFIX.length)];
      await replaceExisting(hidden, 'other');
      nodes.set(key(hidden), { kind: 'other' });
      specials.push(`mknod -m 0 -- ${shQuote(abs(hidden))} c 0 0`);
      return;
    }

    switch (h.type) {
      case 'directory': {
        stream.resume();
        await replaceExisting(rel, 'dir');
        if (!nodes.has(key(rel))) {
          fs.mkdirSync(target, { mode: 0o755 });
          nodes.set(key(rel), { kind: 'dir' });
        }
        dirMeta.set(key(rel), h);
        return;
      }
      case 'file':
      case 'contiguous-file':
      case null:
      case undefined: {
        await replaceExisting(rel, 'file');
        nodes.set(key(rel), { kind: 'file' });
        const fileSize = h.size ?? 0;
        size += fileSize;
        const mode = (h.mode ?? 0o644) & 0o7777;
        const needChmod = (mode & ~umask & 0o777) !== mode;
        const needChown = isRoot && ((h.uid ?? 0) !== 0 || (h.gid ?? 0) !== 0);
        const t = h.mtime ?? new Date(0);
        const finish = async (fh: fsp.FileHandle) => {
          if (needChown) await fh.chown(h.uid ?? 0, h.gid ?? 0);
          if (needChmod || needChown) await fh.chmod(mode);
          await fh.utimes(t, t);
        };
        if (fileSize <= SMALL_FILE) {
          const chunks: Buffer[] = [];
          for await (const c of stream) chunks.push(c as Buffer);
          await queueSmallFile(target, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks), mode,
            needChown ? (h.uid ?? 0) : -1, h.gid ?? 0, t.getTime(), needChmod || needChown);
        } else {
          const fh = await fsp.open(target, 'wx', mode);
          try {
            for await (const c of stream) {
              let off = 0;
              const b = c as Buffer;
              while (off < b.length) off += (await fh.write(b, off, b.length - off)).bytesWritten;
            }
            await finish(fh);
          } finally { await fh.close(); }
        }
        return;
      }
      case 'symlink': {
        stream.resume();
        await replaceExisting(rel, 'symlink');
        const linkTarget = h.linkname ?? '';
        nodes.set(key(rel), { kind: 'symlink', target: linkTarget });
        size += Buffer.byteLength(linkTarget);
        fs.symlinkSync(linkTarget, target);
        if (isRoot) fs.lchownSync(target, h.uid ?? 0, h.gid ?? 0);
        const t = h.mtime ?? new Date(0);
        fs.lutimesSync(target, t, t);
        await yieldSoon();
        return;
      }
      case 'link': {
        stream.resume();
        const lparts = cleanArchivePath(h.linkname ?? '');
        if (lparts.length === 0) throw layerError(`refusing hardlink "${h.name}": empty target`);
        // The target's parents may be symlinks of this layer; its last component is the file itself.
        let tparent: string[] = [];
        for (let i = 0; i < lparts.length - 1; i++) {
          let next = [...tparent, lparts[i]];
          const n = nodes.get(key(next));
          if (n?.kind === 'symlink') next = followLink(next, n.target!, h.name, 0);
          tparent = next;
        }
        const trel = [...tparent, lparts[lparts.length - 1]];
        const tn = nodes.get(key(trel));
        if (!tn || tn.kind === 'dir' || tn.kind === 'symlink') {
          throw layerError(`refusing hardlink "${h.name}" -> "${h.linkname}": target is not a file of this layer`);
        }
        await replaceExisting(rel, 'file');
        await drain(); // the target may still be being written
        await fsp.link(abs(trel), target);
        nodes.set(key(rel), { kind: 'file' });
        return;
      }
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        stream.resume();
        await replaceExisting(rel, 'other');
        nodes.set(key(rel), { kind: 'other' });
        specials.push(`mknod -- ${shQuote(target)} ${mknodOperands(h).join(' ')}`);
        specialMeta.push({ abs: target, h });
        return;
      }
      default:
        // pax/gnu headers are consumed by tar-stream; anything else carries nothing to unpack.
        stream.resume();
        return;
    }
  };

  const extract = tar.extract();
  // Producer: uncompressed bytes -> hash (+tee) -> extract, with backpressure.
  const produce = (async () => {
    try {
      for await (const chunk of source) {
        const b = chunk as Buffer;
        hash.update(b);
        await hash.settled(HASH_BACKLOG);
        if (opts.split) await opts.split.push(b, tarSize);
        tarSize += b.length;
        if (opts.tee && !opts.tee.write(b)) await new Promise<void>((res, rej) => {
          const tee = opts.tee!;
          const onErr = (e: Error) => { tee.off('drain', onDrain); rej(e); };
          const onDrain = () => { tee.off('error', onErr); res(); };
          tee.once('drain', onDrain);
          tee.once('error', onErr);
        });
        if (extract.destroyed) throw new Error('layer extraction aborted');
        if (!extract.write(b)) {
          await new Promise<void>((res) => {
            const done = () => { extract.off('drain', done); extract.off('close', done); res(); };
            extract.on('drain', done);
            extract.on('close', done);
          });
        }
      }
      (extract as unknown as { end(): void }).end();
    } catch (err) {
      extract.destroy(err as Error);
      throw err;
    }
  })();
  produce.catch(() => { /* reported below */ });

  try {
    for await (const entry of extract) {
      await handleEntry(entry.header, entry as unknown as Readable);
    }
    await produce;
    await drain();
    await opts.split?.end();
  } catch (err) {
    extract.destroy();
    source.destroy();
    await Promise.allSettled([...pending]);
    await produce.catch(() => undefined);
    if (err instanceof BerthError) throw err;
    if ((err as Error)?.message?.includes('Invalid tar header') || (err as Error)?.message?.includes('Unexpected end')) {
      throw layerError((err as Error).message);
    }
    throw err;
  }

  if (specials.length) await runShell(specials.join('\n') + '\n');
  for (const { abs: p, h } of specialMeta) await applyOwnerModeTimes(p, h, 'other');

  // Directory metadata last (creating entries changes mtimes), deepest first.
  const dirs = [...dirMeta.entries()].sort((a, b) => b[0].split('/').length - a[0].split('/').length);
  for (const [k, h] of dirs) {
    const p = k === '' ? root : path.join(root, k);
    await throttle();
    dispatch(() => applyOwnerModeTimes(p, h, 'file'));
  }
  await drain();

  void inodes;
  return { diffID: await hash.digest(), size, tarSize };
}

/** Runs a generated shell script (mknod/setfattr lines); one process per layer. */
function runShell(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-e', '-s'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new BerthError('internal', `creating device nodes/whiteouts failed: ${stderr.trim() || `exit ${code}`}`));
    });
    child.stdin.end(script);
  });
}

export interface CreateTarOptions {
  /** Relative paths (no leading /) whose contents are left out; the directory itself stays. */
  excludeContents?: string[];
  /** When set, every entry gets this mtime (reproducible layers). */
  mtime?: Date;
}

/**
 * Packs a directory into a layer tar (sorted, so the same tree gives the
 * same bytes). Hardlinks become `link` entries; devices and fifos are kept.
 * Overlay whiteouts are NOT translated here (that is the upperdir->layer
 * conversion's job).
 */
export function createLayerTar(dir: string, opts: CreateTarOptions = {}): Readable {
  const pack = tar.pack();
  const exclude = new Set(opts.excludeContents ?? []);
  const seen = new Map<string, string>(); // dev:ino -> first name

  const addEntry = (h: Headers, body?: Readable | Buffer): Promise<void> =>
    new Promise((resolve, reject) => {
      if (body === undefined || Buffer.isBuffer(body)) {
        pack.entry(h, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
        return;
      }
      const w = pack.entry(h, (err) => (err ? reject(err) : resolve()));
      body.on('error', reject);
      body.pipe(w as unknown as Writable);
    });

  const walk = async (rel: string): Promise<void> => {
    const names = (await fsp.readdir(path.join(dir, rel))).sort();
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(dir, r);
      const st = await fsp.lstat(p);
      const base: Headers = {
        name: r,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: opts.mtime ?? st.mtime,
      };
      if (st.isDirectory()) {
        await addEntry({ ...base, name: r + '/', type: 'directory' });
        if (!exclude.has(r)) await walk(r);
      } else if (st.isSymbolicLink()) {
        await addEntry({ ...base, type: 'symlink', linkname: await fsp.readlink(p) });
      } else if (st.isFile()) {
        const ino = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seen.get(ino) : undefined;
        if (first !== undefined) {
          await addEntry({ ...base, type: 'link', linkname: first });
        } else {
          if (st.nlink > 1) seen.set(ino, r);
          await addEntry({ ...base, type: 'file', size: st.size }, st.size ? fs.createReadStream(p) : undefined);
        }
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const major = Math.floor(st.rdev / 256) & 0xfff;
        const minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
        await addEntry({ ...base, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major, devminor: minor });
      } else if (st.isFIFO()) {
        await addEntry({ ...base, type: 'fifo' });
      }
      // sockets are not archived (as Docker)
    }
  };

  walk('').then(() => pack.finalize(), (err) => pack.destroy(err));
  return Readable.from(pack as unknown as AsyncIterable<Buffer>, { objectMode: false, highWaterMark: 1 << 20 });
}
