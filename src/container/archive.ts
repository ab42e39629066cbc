/**
 * `docker cp`, `docker export` and `docker diff` on a container's filesystem,
 * as domain operations taking streams (api/routes/container-archive.ts
 * translates HTTP):
 *   statContainerPath     stat of a path (HEAD .../archive)
 *   archiveContainerPath  tar of the path, top entry = basename (GET .../archive)
 *   exportContainerFs     the whole filesystem as a tar (GET .../export)
 *   extractToContainer    a tar extracted into a directory (PUT .../archive)
 *   extractInScope        the same into any scope (a root plus mounts), for the builder's COPY
 *   containerChangesOf    A/C/D list (GET .../changes)
 * Paths are resolved in the container's view (common/scopedpath.ts): the
 * rootfs plus what is mounted on it (/etc/hostname, /etc/hosts,
 * /etc/resolv.conf, volumes, binds), every symlink — in the rootfs or in a
 * mount — followed relative to the container's `/`, never the host's.
 * Uploads are spooled to disk before the container is locked; a reader that
 * goes away stops the tar being written (common/tarout.ts).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { invalidArgument, notFound, BerthError } from '../common/errors';
import { fdPath, openFileAt, openNameAt, readFileInRoot, removeAt, scopeOf, ScopeWalker, type FsScope, type ScopedFd, type ScopeMount } from '../common/scopedpath';
import { readlinkat } from '../common/linux';
import { spoolUpload } from '../common/upload';
import { addEntry, addStreamEntry, writeTar } from '../common/tarout';
import type { Services } from '../engine/services';
import { decompressed } from '../common/compression';
import { makeSpecialFile } from '../common/devnodes';
import { checkEntryPath } from '../image/tarcheck';
import { containerChanges, lowerDirsOf, type Change } from '../store/changes';

/* -------------------------------------------------- path resolution */

/** What the container sees mounted over its rootfs: the /etc files, volumes and binds. */
function scopeOfContainer(root: string, ctr: any): FsScope {
  const mounts: ScopeMount[] = [];
  if (ctr?.HostnamePath) mounts.push({ dest: '/etc/hostname', source: ctr.HostnamePath });
  if (ctr?.HostsPath) mounts.push({ dest: '/etc/hosts', source: ctr.HostsPath });
  if (ctr?.ResolvConfPath) mounts.push({ dest: '/etc/resolv.conf', source: ctr.ResolvConfPath });
  for (const m of ctr?.Mounts ?? []) if (m?.Destination && m?.Source) mounts.push({ dest: m.Destination, source: m.Source });
  return scopeOf(root, mounts);
}

/** Docker's ResolvePath: the path as asked (trailing `/` or `/.` kept) and the same without them. */
interface Asked { absPath: string; trimmed: string }

function askedPath(p: string): Asked {
  const absPath = preserveTrailing(path.posix.join('/', p), p);
  return { absPath, trimmed: absPath.replace(/\/+$/, '') || '/' };
}

/** Runs `fn` with a walker over the container's view, closed afterwards. */
async function withWalker<T>(scope: FsScope, fn: (w: ScopeWalker) => Promise<T>): Promise<T> {
  const w = new ScopeWalker(scope);
  try { return await fn(w); } finally { w.close(); }
}

const isMissing = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');

/** The asked path's object, its final symlink kept (Docker resolves the directory part only). */
function openAsked(w: ScopeWalker, a: Asked, ctrName: string): ScopedFd {
  try {
    return w.open(a.trimmed, { followFinal: false });
  } catch (err) {
    if (isMissing(err)) throw notFound(`Could not find the file ${a.absPath} in container ${ctrName}`);
    throw err;
  }
}

function preserveTrailing(cleaned: string, original: string): string {
  if (original.endsWith('/.') && !cleaned.endsWith('/.')) return (cleaned === '/' ? '' : cleaned) + '/.';
  if (original.endsWith('/') && !cleaned.endsWith('/')) return cleaned + '/';
  return cleaned;
}

/* ----------------------------------------------------------- stat */

/** Go's os.FileMode bits from a POSIX st_mode. */
export function goFileMode(mode: number): number {
  let m = mode & 0o777;
  const fmt = mode & 0o170000;
  if (fmt === 0o040000) m |= 2 ** 31;                 // ModeDir
  else if (fmt === 0o120000) m |= 2 ** 27;            // ModeSymlink
  else if (fmt === 0o060000) m |= 2 ** 26;            // ModeDevice
  else if (fmt === 0o020000) m |= 2 ** 26 + 2 ** 21;  // ModeDevice|ModeCharDevice
  else if (fmt === 0o010000) m |= 2 ** 25;            // ModeNamedPipe
  else if (fmt === 0o140000) m |= 2 ** 24;            // ModeSocket
  if (mode & 0o4000) m += 2 ** 23;                    // ModeSetuid
  if (mode & 0o2000) m += 2 ** 22;                    // ModeSetgid
  if (mode & 0o1000) m += 2 ** 20;                    // ModeSticky
  return m >>> 0;
}

/** RFC 3339 with nanoseconds, trailing zeros trimmed, as Go marshals time.Time. */
function goTime(ns: bigint): string {
  const secs = ns / 1_000_000_000n;
  const frac = ns % 1_000_000_000n;
  const base = new Date(Number(secs) * 1000).toISOString().replace(/\.\d{3}Z$/, '');
  const f = frac === 0n ? '' : '.' + frac.toString().padStart(9, '0').replace(/0+$/, '');
  return `${base}${f}Z`;
}

export interface PathStat { name: string; size: number; mode: number; mtime: string; linkTarget: string }

function statOf(w: ScopeWalker, a: Asked, obj: ScopedFd): PathStat {
  const lst = fs.fstatSync(obj.fd, { bigint: true });
  let linkTarget = '';
  if (lst.isSymbolicLink()) {
    const t = w.open(a.trimmed, { allowMissing: true });
    if (t.fd >= 0) fs.closeSync(t.fd);
    linkTarget = t.path;
  }
  const name = path.posix.basename(a.absPath.replace(/\/+$/, '')) || '/';
  return { name: a.absPath.endsWith('/.') ? '.' : name, size: Number(lst.size), mode: goFileMode(Number(lst.mode)), mtime: goTime(lst.mtimeNs), linkTarget };
}

/* ---------------------------------------------------- operations */

/** Stat of `p` inside the container (HEAD /containers/{id}/archive). */
export async function statContainerPath(services: Services, idOrName: string, p: string): Promise<PathStat> {
  return services.containers.withRootfs(idOrName, async (root, ctr) => withWalker(scopeOfContainer(root, ctr), async (w) => {
    const a = askedPath(p);
    const obj = openAsked(w, a, idOrName);
    try { return statOf(w, a, obj); } finally { fs.closeSync(obj.fd); }
  }));
}

/**
 * Tar of `p` inside the container. Once the path is found, `open` is given its
 * stat and returns the sink the tar is written to. A sink that closes early
 * (the client went) ends the work quietly; this returns only once no file
 * of the container is read any more.
 */
export async function archiveContainerPath(services: Services, idOrName: string, p: string, open: (stat: PathStat) => Writable): Promise<void> {
  await services.containers.withRootfs(idOrName, async (root, ctr) => withWalker(scopeOfContainer(root, ctr), async (w) => {
    const a = askedPath(p);
    const obj = openAsked(w, a, idOrName);
    try {
      const stat = statOf(w, a, obj);
      const topName = a.absPath.endsWith('/.') ? '.' : (path.posix.basename(a.trimmed) || '.');
      const out = open(stat);
      await writeTar(out, async (pack, stopped) => {
        await packTree(pack, obj.fd, topName, fs.fstatSync(obj.fd), new Map(), stopped);
      });
    } finally {
      fs.closeSync(obj.fd);
    }
  }));
}

/**
 * Adds the object `fd` holds as `name` and, for a directory, everything below
 * it (sorted). Each child is opened by name inside the directory already held,
 * never following a symlink, so a container swapping names meanwhile cannot
 * lead the walk out of its filesystem.
 */
async function packTree(pack: tar.Pack, fd: number, name: string, st: fs.Stats, links: Map<string, string>, stopped: () => boolean): Promise<void> {
  if (stopped()) return;
  await packEntry(pack, fd, name, st, links);
  if (!st.isDirectory()) return;
  await packChildren(pack, fd, `${name}/`, links, stopped);
}

async function packChildren(pack: tar.Pack, dirFd: number, prefix: string, links: Map<string, string>, stopped: () => boolean): Promise<void> {
  for (const n of (await fsp.readdir(fdPath(dirFd))).sort()) {
    if (stopped()) return;
    let child: number;
    try { child = openNameAt(dirFd, n); } catch (err) { if (isMissing(err)) continue; throw err; } // removed meanwhile
    try {
      await packTree(pack, child, prefix + n, fs.fstatSync(child), links, stopped);
    } finally {
      fs.closeSync(child);
    }
  }
}

/**
 * `docker export`: the container's whole filesystem (image layers plus its
 * changes, without volumes and binds) as one tar, entries named relative to `/`,
 * written to the sink `open` returns once the container's rootfs is at hand.
 */
export async function exportContainerFs(services: Services, idOrName: string, open: () => Writable): Promise<void> {
  await services.containers.withRootfs(idOrName, async (root) => withWalker(scopeOf(root), async (w) => {
    const out = open();
    await writeTar(out, async (pack, stopped) => {
      await packChildren(pack, w.root, '', new Map(), stopped);
    });
  }));
}

/** Adds the object `fd` (O_PATH) holds to a tar, hard links within the archive kept. */
async function packEntry(pack: tar.Pack, fd: number, name: string, st: fs.Stats, links: Map<string, string>): Promise<void> {
  const h = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
  if (st.isDirectory()) return addEntry(pack, { ...h, name: name + '/', type: 'directory' });
  if (st.isSymbolicLink()) return addEntry(pack, { ...h, type: 'symlink', linkname: readlinkat(fd, '') });
  if (st.isFile()) {
    const key = `${st.dev}:${st.ino}`;
    if (st.nlink > 1 && links.has(key)) return addEntry(pack, { ...h, type: 'link', linkname: links.get(key), size: 0 });
    if (st.nlink > 1) links.set(key, name);
    // Reopened through the descriptor: the very file just stat'ed, whatever its name is now.
    const fh = await fsp.open(fdPath(fd), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      if (st.size <= 1 << 20) return await addEntry(pack, { ...h, type: 'file', size: st.size }, await readExactly(fh, st.size));
      await addStreamEntry(pack, { ...h, type: 'file', size: st.size }, fh.createReadStream({ autoClose: false, end: st.size - 1 }));
    } finally {
      await fh.close();
    }
    return;
  }
  if (st.isCharacterDevice() || st.isBlockDevice()) {
    return addEntry(pack, { ...h, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: (st.rdev >> 8) & 0xfff, devminor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00) });
  }
  if (st.isFIFO()) return addEntry(pack, { ...h, type: 'fifo' });
  // sockets: skipped, as Docker's archiver does
}

/** `size` bytes of the file (zero-padded if the container shrank it meanwhile: the header already said `size`). */
async function readExactly(fh: fsp.FileHandle, size: number): Promise<Buffer> {
  const buf = Buffer.alloc(size);
  let off = 0;
  while (off < size) {
    const { bytesRead } = await fh.read(buf, off, size - off, off);
    if (bytesRead === 0) break;
    off += bytesRead;
  }
  return buf;
}

/* ------------------------------------------------ extracting a tar in */

/** File system errors an archive's content causes: the client's to fix, so a 400, not a 500. */
const ARCHIVE_CAUSED = new Set(['EEXIST', 'ENOENT', 'ENOTDIR', 'EISDIR', 'EXDEV', 'ELOOP', 'EPERM', 'EMLINK', 'ENAMETOOLONG', 'ENOTEMPTY', 'EINVAL']);

export interface ExtractOptions {
  /** Refuse to replace a directory with a non-directory or the reverse. */
  noOverwriteDirNonDir: boolean;
  /** Owner of extracted entries: the container's user (else root). */
  copyUIDGID: boolean;
}

/**
 * Extracts the tar (plain or compressed) read from `openInput()` into the
 * directory `p` inside the container. The input is spooled to disk first
 * (within the daemon's upload limits), so the container is locked only for
 * the extraction, never while a client sends; the spool is gone when this
 * settles. Entries never land outside the container's view.
 */
export async function extractToContainer(services: Services, idOrName: string, p: string, openInput: () => Readable, opts: ExtractOptions): Promise<void> {
  await services.containers.inspect(idOrName); // 404 before the upload is read
  const { dataRoot, limits } = services.config;
  const spool = await spoolUpload(openInput(), path.join(dataRoot, 'tmp'),
    { maxBytes: limits.uploadBodyBytes, minFreeBytes: limits.minFreeDiskBytes }, 'the archive');
  try {
    await services.containers.withRootfs(idOrName, async (root, ctr) => {
      const scope = scopeOfContainer(root, ctr);
      const absDest = path.posix.join('/', p);
      const owner = opts.copyUIDGID ? await containerUser(root, ctr?.Config?.User ?? '') : { uid: 0, gid: 0 };
      try {
        await extractInScope(fs.createReadStream(spool.path), scope, absDest, { noOverwriteDirNonDir: opts.noOverwriteDirNonDir, owner },
          () => notFound(`Could not find the file ${absDest} in container ${idOrName}`));
      } catch (err) {
        if (err instanceof BerthError) throw err;
        const e = err as NodeJS.ErrnoException;
        if (/Invalid tar header|Unexpected end of data/.test(e.message)) throw invalidArgument(`invalid tar archive: ${e.message}`);
        if (e.code && ARCHIVE_CAUSED.has(e.code)) throw invalidArgument(`cannot extract archive: ${e.code}: ${e.message.split(root).join('').replace(/\/proc\/self\/fd\/\d+\/?/g, '')}`);
        throw err;
      }
    });
  } finally {
    await spool.remove();
  }
}

export interface ScopedExtractOptions {
  noOverwriteDirNonDir: boolean;
  owner: { uid: number; gid: number };
}

/**
 * Extracts a (possibly compressed) tar into the directory `destPath` of a
 * container's view. Every member's parent, and every hard link's target, is
 * resolved in the scope to a descriptor (common/scopedpath.ts ScopeWalker) and
 * the member is made by name inside that directory without following it, its
 * owner, mode and times set on the object itself: no symlink — in the archive,
 * already in the container, its volumes or its bind mounts, or swapped in by
 * the container's processes during the copy — leads outside what the container
 * sees. Device nodes are refused. `missingDest` is thrown when `destPath` is
 * not there.
 */
export async function extractInScope(input: Readable, scope: FsScope, destPath: string, opts: ScopedExtractOptions, missingDest?: () => Error): Promise<void> {
  // The input is closed however this ends (a refused destination never reads it; its descriptor must not stay open).
  await withWalker(scope, async (w) => {
    let dest: ScopedFd;
    try { dest = w.open(destPath); } catch (err) {
      if (isMissing(err)) throw missingDest?.() ?? notFound(`Could not find the file ${destPath}`);
      throw err;
    }
    try {
      if (!fs.fstatSync(dest.fd).isDirectory()) throw invalidArgument('extraction point is not a directory');
    } finally {
      fs.closeSync(dest.fd);
    }
    await extractWith(w, input, dest.path, opts);
  }).finally(() => input.destroy());
}

async function extractWith(w: ScopeWalker, input: Readable, destPath: string, opts: ScopedExtractOptions): Promise<void> {
  const { stream } = await decompressed(input);
  const extract = tar.extract();
  const dirTimes: Array<{ p: string; mtime: Date }> = [];
  const { owner } = opts;
  extract.on('entry', (header, entry, next) => {
    entry.on('error', () => undefined); // the extract's own error is reported
    extractEntry(header, entry as unknown as Readable).then(() => next(), (err) => { entry.resume(); next(err); });
  });
  const extractEntry = async (h: tar.Header, body: Readable) => {
    const rel = checkEntryPath(h.name, 'archive');
    if (!rel) { body.resume(); return; } // the destination itself
    if (h.type === 'character-device' || h.type === 'block-device') {
      throw invalidArgument(`invalid archive entry ${JSON.stringify(h.name)}: device nodes cannot be copied into a container`);
    }
    // Parent resolved in scope to a held directory: a symlink can never lead outside the container's view.
    const { dir, name } = w.openParent(path.posix.join(destPath, rel), { createDirs: true });
    try {
      await extractMember(h, body, dir, name);
    } finally {
      fs.closeSync(dir.fd);
    }
  };
  const extractMember = async (h: tar.Header, body: Readable, dir: ScopedFd, name: string) => {
    const at = fdPath(dir.fd, name); // `name` inside the held directory, looked up once per call
    const shown = path.posix.join(dir.path, name);
    let existing: fs.Stats | undefined;
    try { existing = await fsp.lstat(at); } catch { existing = undefined; }
    const isDir = h.type === 'directory';
    if (existing && opts.noOverwriteDirNonDir) {
      if (existing.isDirectory() && !isDir) throw invalidArgument(`cannot overwrite directory "${shown}" with non-directory "${h.name}"`);
      if (!existing.isDirectory() && isDir) throw invalidArgument(`cannot overwrite non-directory "${shown}" with directory "${h.name}"`);
    }
    if (existing && !(existing.isDirectory() && isDir)) removeAt(dir.fd, name);
    const mode = h.mode & 0o7777;
    const mtime = h.mtime ?? new Date();
    switch (h.type) {
      case 'directory':
        if (!existing || !existing.isDirectory()) await fsp.mkdir(at);
        setAttrs(dir.fd, name, owner, mode);
        dirTimes.push({ p: shown, mtime });
        body.resume();
        return;
      case 'file':
      case 'contiguous-file': {
        // O_CREAT|O_EXCL|O_NOFOLLOW in the held directory; owner, mode and times set through the open file.
        const fd = openFileAt(dir.fd, name, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, mode);
        try {
          await pipeline(body, fs.createWriteStream('', { fd, autoClose: false }));
          fs.fchownSync(fd, owner.uid, owner.gid);
          fs.fchmodSync(fd, mode); // after chown, which clears set-id bits
          fs.futimesSync(fd, mtime, mtime);
        } finally {
          fs.closeSync(fd);
        }
        return;
      }
      case 'symlink':
        body.resume();
        await fsp.symlink(h.linkname ?? '', at);
        await fsp.lchown(at, owner.uid, owner.gid);
        await fsp.lutimes(at, mtime, mtime).catch(() => undefined);
        return;
      case 'link': {
        body.resume();
        const linkRel = checkEntryPath(h.linkname ?? '', 'archive');
        // The link's own target is resolved in scope too (a member symlink to `/` then a hard link through it stays inside).
        let src: { dir: ScopedFd; name: string };
        try { src = w.openParent(path.posix.join(destPath, linkRel)); } catch (err) {
          if (isMissing(err)) throw invalidArgument(`invalid archive entry ${JSON.stringify(h.name)}: hard link target ${JSON.stringify(h.linkname)} does not exist`);
          throw err;
        }
        try {
          const srcSt = await fsp.lstat(fdPath(src.dir.fd, src.name)).catch(() => undefined);
          if (!srcSt) throw invalidArgument(`invalid archive entry ${JSON.stringify(h.name)}: hard link target ${JSON.stringify(h.linkname)} does not exist`);
          if (srcSt.isDirectory()) throw invalidArgument(`invalid archive entry ${JSON.stringify(h.name)}: hard link to a directory`);
          await fsp.link(fdPath(src.dir.fd, src.name), at); // link(2) never follows the source's final symlink
        } finally {
          fs.closeSync(src.dir.fd);
        }
        setAttrs(dir.fd, name, owner, undefined, mtime);
        return;
      }
      case 'fifo':
        body.resume();
        await makeSpecialFile(at, h);
        setAttrs(dir.fd, name, owner, mode, mtime);
        return;
      default:
        body.resume();
        return;
    }
  };
  await pipeline(stream, extract as unknown as Writable);
  // Directory times last: creating entries inside changed them. Each is found again in scope.
  for (const d of dirTimes.reverse()) {
    let obj: ScopedFd;
    try { obj = w.open(d.p, { followFinal: false }); } catch { continue; }
    try { setAttrs(obj.fd, undefined, undefined, undefined, d.mtime); } finally { fs.closeSync(obj.fd); }
  }
}

/**
 * Owner, then mode (chown clears set-id bits), then times of `name` in the
 * directory `dirFd` (or of the object `dirFd` itself when `name` is undefined),
 * set on the object through an O_PATH descriptor: never through a symlink. A
 * symlink itself only gets its owner and times.
 */
function setAttrs(dirFd: number, name: string | undefined, owner?: { uid: number; gid: number }, mode?: number, mtime?: Date): void {
  const fd = name === undefined ? dirFd : openNameAt(dirFd, name);
  try {
    if (fs.fstatSync(fd).isSymbolicLink()) {
      if (name === undefined) return;
      const at = fdPath(dirFd, name);
      if (owner) fs.lchownSync(at, owner.uid, owner.gid);
      if (mtime) fs.lutimesSync(at, mtime, mtime);
      return;
    }
    const obj = fdPath(fd); // the magic link leads to the object the descriptor holds
    if (owner) fs.chownSync(obj, owner.uid, owner.gid);
    if (mode !== undefined) fs.chmodSync(obj, mode);
    if (mtime) fs.utimesSync(obj, mtime, mtime);
  } finally {
    if (fd !== dirFd) fs.closeSync(fd);
  }
}

/** The container's Config.User as uid/gid, looked up in the container's /etc/passwd and /etc/group. */
async function containerUser(root: string, user: string): Promise<{ uid: number; gid: number }> {
  if (!user) return { uid: 0, gid: 0 };
  const [u, g] = user.split(':');
  const read = async (f: string) => (readFileInRoot(root, f) ?? '').split('\n').map((l) => l.split(':'));
  let uid: number | undefined;
  let gid: number | undefined;
  if (/^\d+$/.test(u)) uid = Number(u);
  const passwd = await read('/etc/passwd');
  const pw = passwd.find((f) => (uid !== undefined ? Number(f[2]) === uid : f[0] === u));
  if (uid === undefined) {
    if (!pw) throw invalidArgument(`unable to find user ${u}: no matching entries in passwd file`);
    uid = Number(pw[2]);
  }
  gid = pw ? Number(pw[3]) : 0;
  if (g !== undefined && g !== '') {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const gr = (await read('/etc/group')).find((f) => f[0] === g);
      if (!gr) throw invalidArgument(`unable to find group ${g}: no matching entries in group file`);
      gid = Number(gr[2]);
    }
  }
  return { uid, gid };
}

/** `docker diff`: the container's changes against its image. */
export async function containerChangesOf(services: Services, idOrName: string): Promise<Change[]> {
  const ctr = await services.containers.inspect(idOrName);
  const upper = services.images.containerUpperDir(ctr.Id);
  const mount = await services.images.containerRootfsMount(ctr.Id);
  return containerChanges(upper, lowerDirsOf(mount.options));
}
