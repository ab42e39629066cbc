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
import { readFileInRoot, resolveInScope, scopeOf, type FsScope, type ScopeMount } from '../common/scopedpath';
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

interface Resolved { host: string; absPath: string }

/** Docker's ResolvePath: the directory part is resolved in scope, the base name is kept. */
function resolvePath(scope: FsScope, p: string): Resolved {
  const absPath = preserveTrailing(path.posix.join('/', p), p);
  const trimmed = absPath.replace(/\/+$/, '') || '/';
  if (trimmed === '/') return { host: scope.root, absPath };
  return { host: resolveInScope(scope, trimmed, { followFinal: false }).host, absPath };
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

async function statPath(scope: FsScope, r: Resolved, ctrName: string): Promise<PathStat> {
  let lst: fs.BigIntStats;
  try {
    lst = await fsp.lstat(r.host, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw notFound(`Could not find the file ${r.absPath} in container ${ctrName}`);
    }
    throw err;
  }
  const linkTarget = lst.isSymbolicLink() ? resolveInScope(scope, r.absPath).path : '';
  const name = path.posix.basename(r.absPath.replace(/\/+$/, '')) || '/';
  return { name: r.absPath.endsWith('/.') ? '.' : name, size: Number(lst.size), mode: goFileMode(Number(lst.mode)), mtime: goTime(lst.mtimeNs), linkTarget };
}

/* ---------------------------------------------------- operations */

/** Stat of `p` inside the container (HEAD /containers/{id}/archive). */
export async function statContainerPath(services: Services, idOrName: string, p: string): Promise<PathStat> {
  return services.containers.withRootfs(idOrName, async (root, ctr) => {
    const scope = scopeOfContainer(root, ctr);
    return statPath(scope, resolvePath(scope, p), idOrName);
  });
}

/**
 * Tar of `p` inside the container. Once the path is found, `open` is given its
 * stat and returns the sink the tar is written to. A sink that closes early
 * (the client went) ends the work quietly; this returns only once no file
 * of the container is read any more.
 */
export async function archiveContainerPath(services: Services, idOrName: string, p: string, open: (stat: PathStat) => Writable): Promise<void> {
  await services.containers.withRootfs(idOrName, async (root, ctr) => {
    const scope = scopeOfContainer(root, ctr);
    const r = resolvePath(scope, p);
    const stat = await statPath(scope, r, idOrName);
    const topName = r.absPath.endsWith('/.') ? '.' : (path.posix.basename(r.absPath.replace(/\/+$/, '')) || '.');
    const out = open(stat);
    await writeTar(out, async (pack, stopped) => {
      await packTree(pack, r.host, topName, await fsp.lstat(r.host), new Map(), stopped);
    });
  });
}

/** Adds `host` as `name` and, for a directory, everything below it (sorted, never across symlinks). */
async function packTree(pack: tar.Pack, host: string, name: string, st: fs.Stats, links: Map<string, string>, stopped: () => boolean): Promise<void> {
  if (stopped()) return;
  await packEntry(pack, host, name, st, links);
  if (!st.isDirectory()) return;
  for (const n of (await fsp.readdir(host)).sort()) {
    if (stopped()) return;
    const child = path.join(host, n);
    await packTree(pack, child, `${name}/${n}`, await fsp.lstat(child), links, stopped);
  }
}

/**
 * `docker export`: the container's whole filesystem (image layers plus its
 * changes, without volumes and binds) as one tar, entries named relative to `/`,
 * written to the sink `open` returns once the container's rootfs is at hand.
 */
export async function exportContainerFs(services: Services, idOrName: string, open: () => Writable): Promise<void> {
  await services.containers.withRootfs(idOrName, async (root) => {
    const out = open();
    await writeTar(out, async (pack, stopped) => {
      const links = new Map<string, string>();
      for (const n of (await fsp.readdir(root)).sort()) {
        if (stopped()) return;
        const child = path.join(root, n);
        await packTree(pack, child, n, await fsp.lstat(child), links, stopped);
      }
    });
  });
}

/** Adds one filesystem object to a tar, hard links within the archive kept. */
async function packEntry(pack: tar.Pack, host: string, name: string, st: fs.Stats, links: Map<string, string>): Promise<void> {
  const h = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
  if (st.isDirectory()) return addEntry(pack, { ...h, name: name + '/', type: 'directory' });
  if (st.isSymbolicLink()) return addEntry(pack, { ...h, type: 'symlink', linkname: await fsp.readlink(host) });
  if (st.isFile()) {
    const key = `${st.dev}:${st.ino}`;
    if (st.nlink > 1 && links.has(key)) return addEntry(pack, { ...h, type: 'link', linkname: links.get(key), size: 0 });
    if (st.nlink > 1) links.set(key, name);
    // O_NOFOLLOW: a file swapped for a symlink since the lstat is not followed.
    const fh = await fsp.open(host, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    try {
      if (st.size <= 1 << 20) return await addEntry(pack, { ...h, type: 'file', size: st.size }, await fh.readFile());
      await addStreamEntry(pack, { ...h, type: 'file', size: st.size }, fh.createReadStream({ autoClose: false }));
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
      const dest = resolveInScope(scope, absDest);
      let st: fs.Stats;
      try { st = await fsp.stat(dest.host); } catch {
        throw notFound(`Could not find the file ${absDest} in container ${idOrName}`);
      }
      if (!st.isDirectory()) throw invalidArgument('extraction point is not a directory');
      const owner = opts.copyUIDGID ? await containerUser(root, ctr?.Config?.User ?? '') : { uid: 0, gid: 0 };
      try {
        await extractInScope(fs.createReadStream(spool.path), scope, dest.path, { noOverwriteDirNonDir: opts.noOverwriteDirNonDir, owner });
      } catch (err) {
        if (err instanceof BerthError) throw err;
        const e = err as NodeJS.ErrnoException;
        if (/Invalid tar header|Unexpected end of data/.test(e.message)) throw invalidArgument(`invalid tar archive: ${e.message}`);
        if (e.code && ARCHIVE_CAUSED.has(e.code)) throw invalidArgument(`cannot extract archive: ${e.code}: ${e.message.split(root).join('')}`);
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
 * resolved in the scope, so no symlink — in the archive or already in the
 * container, its volumes or its bind mounts — leads outside what the
 * container sees. Device nodes are refused.
 */
export async function extractInScope(input: Readable, scope: FsScope, destPath: string, opts: ScopedExtractOptions): Promise<void> {
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
    // Parent resolved in scope: a symlink can never lead outside the container's view.
    const parent = resolveInScope(scope, path.posix.join(destPath, path.posix.dirname(rel)));
    const target = path.join(parent.host, path.posix.basename(rel));
    const shown = path.posix.join(parent.path, path.posix.basename(rel));
    await fsp.mkdir(parent.host, { recursive: true });
    let existing: fs.Stats | undefined;
    try { existing = await fsp.lstat(target); } catch { existing = undefined; }
    const isDir = h.type === 'directory';
    if (existing && opts.noOverwriteDirNonDir) {
      if (existing.isDirectory() && !isDir) throw invalidArgument(`cannot overwrite directory "${shown}" with non-directory "${h.name}"`);
      if (!existing.isDirectory() && isDir) throw invalidArgument(`cannot overwrite non-directory "${shown}" with directory "${h.name}"`);
    }
    if (existing && !(existing.isDirectory() && isDir)) await fsp.rm(target, { recursive: true, force: true });
    const mode = h.mode & 0o7777;
    switch (h.type) {
      case 'directory':
        if (!existing || !existing.isDirectory()) await fsp.mkdir(target);
        await fsp.chmod(target, mode);
        await fsp.lchown(target, owner.uid, owner.gid);
        dirTimes.push({ p: target, mtime: h.mtime ?? new Date() });
        body.resume();
        return;
      case 'file':
      case 'contiguous-file': {
        // wx = O_CREAT|O_EXCL: never follows a symlink put there meanwhile.
        await pipeline(body, fs.createWriteStream(target, { flags: 'wx', mode }));
        await fsp.chmod(target, mode);
        break;
      }
      case 'symlink':
        body.resume();
        await fsp.symlink(h.linkname ?? '', target);
        break;
      case 'link': {
        body.resume();
        const linkRel = checkEntryPath(h.linkname ?? '', 'archive');
        // The link's own target is resolved in scope too (a member symlink to `/` then a hard link through it stays inside).
        const src = resolveInScope(scope, path.posix.join(destPath, linkRel), { followFinal: false });
        const srcSt = await fsp.lstat(src.host).catch(() => undefined);
        if (!srcSt) throw invalidArgument(`invalid archive entry ${JSON.stringify(h.name)}: hard link target ${JSON.stringify(h.linkname)} does not exist`);
        if (srcSt.isDirectory()) throw invalidArgument(`invalid archive entry ${JSON.stringify(h.name)}: hard link to a directory`);
        await fsp.link(src.host, target);
        break;
      }
      case 'fifo':
        body.resume();
        await makeSpecialFile(target, h);
        await fsp.chmod(target, mode);
        break;
      default:
        body.resume();
        return;
    }
    await fsp.lchown(target, owner.uid, owner.gid);
    if (h.type !== 'symlink') await fsp.utimes(target, h.mtime ?? new Date(), h.mtime ?? new Date());
    else await fsp.lutimes(target, h.mtime ?? new Date(), h.mtime ?? new Date()).catch(() => undefined);
  };
  await pipeline(stream, extract as unknown as Writable);
  // Directory times last: creating entries inside changed them.
  for (const d of dirTimes.reverse()) await fsp.utimes(d.p, d.mtime, d.mtime).catch(() => undefined);
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
