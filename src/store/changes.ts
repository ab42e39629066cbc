/**
 * A container's change set, read from its overlay upperdir:
 *  - as Docker's diff list (`GET /containers/{id}/changes`: A/C/D), and
 *  - as an OCI layer tar (commit), where overlay whiteouts (char device 0:0)
 *    become `.wh.<name>` entries and opaque directories (xattr
 *    trusted.overlay.opaque=y) get a `.wh..wh..opq` entry.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { SMALL_FILE_BYTES } from '../common/smallfile';

type TarHeader = Partial<tar.Header> & { name: string };

export const enum ChangeKind { Modified = 0, Added = 1, Deleted = 2 }
export interface Change { Path: string; Kind: ChangeKind }

/** One object found in the upperdir. `rel` is relative, without leading slash. */
export interface UpperEntry {
  rel: string;
  stat: fs.Stats;
  /** Overlay whiteout: the path was deleted. */
  whiteout: boolean;
  /** Directory that hides everything below it in the lower layers. */
  opaque: boolean;
}

/**
 * Paths the runtime creates as mount points in the rootfs (Docker keeps
 * these in a separate "init" layer, so they never show in diff/commit).
 */
export const CONTAINER_MOUNTPOINTS = ['/etc/hostname', '/etc/hosts', '/etc/resolv.conf', '/.dockerenv', '/dev', '/proc', '/sys'];

function isSkipped(abs: string, skip: string[]): boolean {
  return skip.some((s) => abs === s || abs.startsWith(s + '/'));
}

/**
 * Walks the upperdir in Go's filepath.Walk order (pre-order, names sorted
 * bytewise), which is the order Docker lists changes and writes layers.
 */
export async function scanUpperDir(upper: string, skip: string[] = CONTAINER_MOUNTPOINTS): Promise<UpperEntry[]> {
  const opaque = await readOpaqueDirs(upper);
  const out: UpperEntry[] = [];
  const walk = async (relDir: string): Promise<void> => {
    // Direct calls: an lstat is microseconds, its thread-pool round trip far more (many-file layers).
    const names = fs.readdirSync(path.join(upper, relDir)).sort(byteOrder);
    const stats = names.map((n) => fs.lstatSync(path.join(upper, relDir, n)));
    if (names.length > 256) await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < names.length; i++) {
      const rel = relDir ? `${relDir}/${names[i]}` : names[i];
      if (isSkipped('/' + rel, skip)) continue;
      const st = stats[i];
      const whiteout = st.isCharacterDevice() && st.rdev === 0;
      out.push({ rel, stat: st, whiteout, opaque: st.isDirectory() && opaque.has(rel) });
      if (st.isDirectory()) await walk(rel);
    }
  };
  await walk('');
  return out;
}

function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Directories marked opaque, relative to `upper`. Node has no xattr API, so
 * one `getfattr -R` call reads the attribute for the whole tree.
 */
export async function readOpaqueDirs(upper: string): Promise<Set<string>> {
  const root = path.resolve(upper);
  const text = await new Promise<string>((resolve, reject) => {
    const child = spawn('getfattr', ['-R', '-n', 'trusted.overlay.opaque', '--absolute-names', '--', root], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => { buf += d; });
    child.on('error', (err) => reject(new Error(`cannot read overlay xattrs (is getfattr installed?): ${err.message}`)));
    // getfattr exits 1 when some files lack the attribute: that is the normal case.
    child.on('close', () => resolve(buf));
  });
  const out = new Set<string>();
  let file: string | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) file = unescapeGetfattr(line.slice(8));
    else if (file !== undefined && /^trusted\.overlay\.opaque="y"$/.test(line)) {
      const rel = path.relative(root, file);
      if (rel && !rel.startsWith('..')) out.add(rel);
    }
  }
  return out;
}

/** getfattr prints unusual bytes in names as backslash-octal escapes. */
function unescapeGetfattr(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else if (s[i] === '\\' && s[i + 1] === '\\') {
      bytes.push(0x5c);
      i += 1;
    } else {
      bytes.push(...Buffer.from(s[i]));
    }
  }
  return Buffer.from(bytes).toString();
}

/** Lower layer directories of an overlay mount spec, top first. */
export function lowerDirsOf(options: string[]): string[] {
  const opt = options.find((o) => o.startsWith('lowerdir='));
  return opt ? opt.slice('lowerdir='.length).split(':').filter(Boolean) : [];
}

function lstatOrUndefined(p: string): fs.Stats | undefined {
  try { return fs.lstatSync(p); } catch { return undefined; }
}

/**
 * Docker's change list (pkg/archive changes()): whiteouts are D, paths that
 * exist in a lower layer are C, everything else A; a directory identical
 * to its lower copy (size, mode, mtime) is not listed, and the parent of an
 * added or deleted path is listed as C once.
 */
export function computeChanges(entries: UpperEntry[], lowerDirs: string[], skippedDirs: Set<string> = new Set()): Change[] {
  const changes: Change[] = [];
  const changedDirs = new Set<string>();
  for (const e of entries) {
    const abs = '/' + e.rel;
    let kind: ChangeKind;
    let p = abs;
    if (e.whiteout) {
      kind = ChangeKind.Deleted;
    } else {
      kind = ChangeKind.Added;
      for (const layer of lowerDirs) {
        const st = lstatOrUndefined(path.join(layer, e.rel));
        if (!st) continue;
        if (st.isDirectory() && e.stat.isDirectory() && !e.opaque && !skippedDirs.has(abs) &&
            st.size === e.stat.size && st.mode === e.stat.mode && sameFsTime(st.mtimeMs, e.stat.mtimeMs)) {
          kind = -1 as ChangeKind; // unchanged directory
        } else {
          kind = ChangeKind.Modified;
        }
        break;
      }
      if ((kind as number) === -1) continue;
    }
    if (e.stat.isDirectory()) changedDirs.add(p);
    if (kind === ChangeKind.Added || kind === ChangeKind.Deleted) {
      const parent = path.posix.dirname(p);
      if (parent !== '/' && !changedDirs.has(parent)) {
        changes.push({ Path: parent, Kind: ChangeKind.Modified });
        changedDirs.add(parent);
      }
    }
    changes.push({ Path: p, Kind: kind });
  }
  // A parent marked changed only because of a later child lands after its own
  // children in walk order; Docker reports the list sorted by path.
  return changes.sort((a, b) => byteOrder(a.Path, b.Path));
}

/** Docker's sameFsTime: equal, or same second when one side lacks sub-second precision. */
function sameFsTime(a: number, b: number): boolean {
  if (a === b) return true;
  return Math.floor(a / 1000) === Math.floor(b / 1000) && (a % 1000 === 0 || b % 1000 === 0);
}

/**
 * Upper directories that the runtime only touched to create mount points
 * (e.g. /etc after /etc/hostname appeared): they hold skipped entries and
 * nothing else, so they are not a user change.
 */
export async function mountpointOnlyDirs(upper: string, entries: UpperEntry[], skip: string[] = CONTAINER_MOUNTPOINTS): Promise<Set<string>> {
  const out = new Set<string>();
  const present = new Set(entries.map((e) => '/' + e.rel));
  for (const s of skip) {
    if (!lstatOrUndefined(path.join(upper, s))) continue;
    for (let d = path.posix.dirname(s); d !== '/'; d = path.posix.dirname(d)) {
      if (!present.has(d)) continue;
      const hasOther = entries.some((e) => ('/' + e.rel).startsWith(d + '/'));
      if (!hasOther) out.add(d);
    }
  }
  return out;
}

/** The diff list of a container: upperdir against its lower layers. */
export async function containerChanges(upper: string, lowerDirs: string[]): Promise<Change[]> {
  const entries = await scanUpperDir(upper);
  const quiet = await mountpointOnlyDirs(upper, entries);
  return computeChanges(entries.filter((e) => !quiet.has('/' + e.rel) || e.opaque), lowerDirs, quiet);
}

/**
 * Streams the upperdir as an OCI layer tar (uncompressed). Hard links
 * inside the layer stay hard links; file contents are read as the tar is
 * consumed, never buffered whole.
 */
export function upperDirToLayerTar(upper: string, entries: UpperEntry[], quietDirs: Set<string> = new Set(), opts: { clampMtime?: Date } = {}): Readable {
  const pack = tar.pack();
  const seenInodes = new Map<string, string>();
  const run = async () => {
    for (const e of entries) {
      if (quietDirs.has('/' + e.rel) && !e.opaque) continue;
      const st = e.stat;
      const dir = path.posix.dirname(e.rel);
      const base = path.posix.basename(e.rel);
      // A clamp (SOURCE_DATE_EPOCH) makes a rebuilt layer byte-identical.
      const mtime = opts.clampMtime && st.mtime > opts.clampMtime ? opts.clampMtime : st.mtime;
      const common = { uid: st.uid, gid: st.gid, mtime, mode: st.mode & 0o7777 };
      if (e.whiteout) {
        const name = dir === '.' ? `.wh.${base}` : `${dir}/.wh.${base}`;
        await addEntry(pack, { ...common, name, type: 'file', size: 0, mode: 0o600 });
        continue;
      }
      if (st.isDirectory()) {
        await addEntry(pack, { ...common, name: e.rel + '/', type: 'directory' });
        if (e.opaque) await addEntry(pack, { ...common, name: `${e.rel}/.wh..wh..opq`, type: 'file', size: 0, mode: st.mode & 0o777 });
      } else if (st.isSymbolicLink()) {
        const target = fs.readlinkSync(path.join(upper, e.rel));
        await addEntry(pack, { ...common, name: e.rel, type: 'symlink', linkname: target });
      } else if (st.isFile()) {
        const key = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? seenInodes.get(key) : undefined;
        if (first) {
          await addEntry(pack, { ...common, name: e.rel, type: 'link', linkname: first, size: 0 });
          continue;
        }
        if (st.nlink > 1) seenInodes.set(key, e.rel);
        await addFile(pack, { ...common, name: e.rel, type: 'file', size: st.size }, path.join(upper, e.rel));
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        await addEntry(pack, {
          ...common, name: e.rel, type: st.isCharacterDevice() ? 'character-device' : 'block-device',
          devmajor: Math.floor(st.rdev / 256) & 0xfff, devminor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00),
        });
      } else if (st.isFIFO()) {
        await addEntry(pack, { ...common, name: e.rel, type: 'fifo' });
      }
      // Sockets are not archived (Docker skips them too).
    }
    pack.finalize();
  };
  run().catch((err) => pack.destroy(err));
  // tar-stream packs are streamx streams; callers get a plain Node stream.
  return Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false });
}

function addEntry(pack: tar.Pack, header: TarHeader): Promise<void> {
  return new Promise((resolve, reject) => {
    // Regular-file entries (whiteouts, opaque markers) need a body, even an empty one, to complete.
    if (header.type === 'file') pack.entry(header, Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    else pack.entry(header, (err) => (err ? reject(err) : resolve()));
  });
}

/**
 * Small files are read in one direct call (a many-file layer is mostly these: a thread-pool
 * readFile is four round trips per file); big ones are streamed.
 */
async function addFile(pack: tar.Pack, header: TarHeader, file: string): Promise<void> {
  if ((header.size ?? 0) <= SMALL_FILE_BYTES) {
    const data = fs.readFileSync(file);
    if (data.length !== header.size) throw new Error(`file changed while archiving: ${file}`);
    await new Promise<void>((resolve, reject) => pack.entry(header, data, (err) => (err ? reject(err) : resolve())));
    return;
  }
  await new Promise<void>((resolve, reject) => {
    const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    const src = fs.createReadStream(file);
    src.on('error', (err) => { sink.destroy(err); reject(err); });
    src.pipe(sink);
  });
}
