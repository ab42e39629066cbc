/**
 * `docker cp`, `docker export` and `docker diff` on a container's filesystem,
 * as domain operations taking streams (api/routes/container-archive.ts
 * translates HTTP):
 *   statContainerPath     stat of a path (HEAD .../archive)
 *   archiveContainerPath  tar of the path, top entry = basename (GET .../archive)
 *   exportContainerFs     the whole filesystem as a tar (GET .../export)
 *   extractToContainer    a tar extracted into a directory (PUT .../archive)
 *   containerChangesOf    A/C/D list (GET .../changes)
 * Paths are resolved inside the rootfs: symlinks (absolute or relative) are
 * followed relative to the rootfs root and `..` never climbs above it, the
 * way Docker's FollowSymlinkInScope does. Files the container sees through
 * bind mounts (/etc/hostname, /etc/hosts, /etc/resolv.conf, volumes) are
 * read and written at their host source.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { invalidArgument, notFound, BerthError } from '../common/errors';
import type { Services } from '../engine/services';
import { decompressed } from '../common/compression';
import { makeSpecialFile } from '../common/devnodes';
import { checkEntryPath } from '../image/tarcheck';
import { containerChanges, lowerDirsOf, type Change } from '../store/changes';

/* -------------------------------------------------- path resolution */

/**
 * Resolves `p` (a path inside the container) to a host path under `root`.
 * With followFinal=false the last component is not resolved (lstat
 * semantics). Missing components are appended literally.
 */
export function resolveInRoot(root: string, p: string, followFinal: boolean): string {
  const queue = p.split('/').filter((s) => s !== '' && s !== '.');
  const stack: string[] = [];
  let links = 0;
  while (queue.length) {
    const part = queue.shift()!;
    if (part === '.') continue;
    if (part === '..') { stack.pop(); continue; }
    if (queue.length === 0 && !followFinal) { stack.push(part); break; }
    const candidate = path.join(root, ...stack, part);
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(candidate); } catch { st = undefined; }
    if (st?.isSymbolicLink()) {
      if (++links > 255) throw invalidArgument(`too many levels of symbolic links: ${p}`);
      const target = fs.readlinkSync(candidate);
      if (target.startsWith('/')) stack.length = 0;
      queue.unshift(...target.split('/').filter((s) => s !== '' && s !== '.'));
      continue;
    }
    stack.push(part);
  }
  return path.join(root, ...stack);
}

/** Container path of a host path under root (`/` + relative). */
function inContainer(root: string, host: string): string {
  const rel = path.relative(root, host);
  return '/' + (rel === '' ? '' : rel);
}

interface MountRedirect { dest: string; source: string }

/** Bind-mounted paths of a container: their content lives at the host source. */
function redirectsOf(ctr: any): MountRedirect[] {
  const out: MountRedirect[] = [];
  if (ctr?.HostnamePath) out.push({ dest: '/etc/hostname', source: ctr.HostnamePath });
  if (ctr?.HostsPath) out.push({ dest: '/etc/hosts', source: ctr.HostsPath });
  if (ctr?.ResolvConfPath) out.push({ dest: '/etc/resolv.conf', source: ctr.ResolvConfPath });
  for (const m of ctr?.Mounts ?? []) if (m?.Destination && m?.Source) out.push({ dest: m.Destination, source: m.Source });
  // Longest destination first so nested mounts win.
  return out.sort((a, b) => b.dest.length - a.dest.length);
}

function redirect(root: string, host: string, mounts: MountRedirect[]): string {
  const cpath = inContainer(root, host);
  for (const m of mounts) {
    if (cpath === m.dest) return m.source;
    if (cpath.startsWith(m.dest + '/')) return path.join(m.source, cpath.slice(m.dest.length + 1));
  }
  return host;
}

interface Resolved { host: string; absPath: string }

/** Docker's ResolvePath: the directory part is resolved in scope, the base name is kept. */
function resolvePath(root: string, p: string, mounts: MountRedirect[]): Resolved {
  const absPath = preserveTrailing(path.posix.join('/', p), p);
  const trimmed = absPath.replace(/\/+$/, '') || '/';
  const dir = path.posix.dirname(trimmed);
  const base = path.posix.basename(trimmed);
  const hostDir = resolveInRoot(root, dir, true);
  const host = trimmed === '/' ? root : path.join(hostDir, base);
  return { host: redirect(root, host, mounts), absPath };
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

async function statPath(root: string, r: Resolved, ctrName: string): Promise<{ stat: PathStat; lst: fs.BigIntStats }> {
  let lst: fs.BigIntStats;
  try {
    lst = await fsp.lstat(r.host, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw notFound(`Could not find the file ${r.absPath} in container ${ctrName}`);
    }
    throw err;
  }
  let linkTarget = '';
  if (lst.isSymbolicLink()) linkTarget = inContainer(root, resolveInRoot(root, r.absPath, true));
  const name = path.posix.basename(r.absPath.replace(/\/+$/, '')) || '/';
  return {
    stat: { name: r.absPath.endsWith('/.') ? '.' : name, size: Number(lst.size), mode: goFileMode(Number(lst.mode)), mtime: goTime(lst.mtimeNs), linkTarget },
    lst,
  };
}

/* ---------------------------------------------------- operations */

/** Stat of `p` inside the container (HEAD /containers/{id}/archive). */
export async function statContainerPath(services: Services, idOrName: string, p: string): Promise<PathStat> {
  return services.containers.withRootfs(idOrName, async (root, ctr) => {
    const { stat } = await statPath(root, resolvePath(root, p, redirectsOf(ctr)), idOrName);
    return stat;
  });
}

/**
 * Tar of `p` inside the container. Once the path is found, `open` is given its
 * stat and returns the sink the tar is written to.
 */
export async function archiveContainerPath(services: Services, idOrName: string, p: string, open: (stat: PathStat) => Writable): Promise<void> {
  await services.containers.withRootfs(idOrName, async (root, ctr) => {
    const mounts = redirectsOf(ctr);
    const r = resolvePath(root, p, mounts);
    const { stat, lst } = await statPath(root, r, idOrName);
    const topName = r.absPath.endsWith('/.') ? '.' : (path.posix.basename(r.absPath.replace(/\/+$/, '')) || '.');
    const res = open(stat);
    const pack = tar.pack();
    const done = pipeline(Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false }), res);
    const produce = async () => {
      void lst;
      await packTree(pack, r.host, topName, await fsp.lstat(r.host), new Map());
      pack.finalize();
    };
    await Promise.all([produce().catch((err) => { pack.destroy(err); throw err; }), done]);
  });
}

/** Adds `host` as `name` and, for a directory, everything below it (sorted, never across symlinks). */
async function packTree(pack: tar.Pack, host: string, name: string, st: fs.Stats, links: Map<string, string>): Promise<void> {
  await packEntry(pack, host, name, st, links);
  if (!st.isDirectory()) return;
  for (const n of (await fsp.readdir(host)).sort()) {
    const child = path.join(host, n);
    await packTree(pack, child, `${name}/${n}`, await fsp.lstat(child), links);
  }
}

/**
 * `docker export`: the container's whole filesystem (image layers plus its
 * changes, without volumes and binds) as one tar, entries named relative to `/`,
 * written to the sink `open` returns once the container's rootfs is at hand.
 */
export async function exportContainerFs(services: Services, idOrName: string, open: () => Writable): Promise<void> {
  await services.containers.withRootfs(idOrName, async (root) => {
    const res = open();
    const pack = tar.pack();
    const done = pipeline(Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false }), res);
    const produce = async () => {
      const links = new Map<string, string>();
      for (const n of (await fsp.readdir(root)).sort()) {
        const child = path.join(root, n);
        await packTree(pack, child, n, await fsp.lstat(child), links);
      }
      pack.finalize();
    };
    await Promise.all([produce().catch((err) => { pack.destroy(err); throw err; }), done]);
  });
}

/** Adds one filesystem object to a tar, hard links within the archive kept. */
async function packEntry(pack: tar.Pack, host: string, name: string, st: fs.Stats, links: Map<string, string>): Promise<void> {
  const h = { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
  const entry = (hdr: Record<string, unknown>, body?: Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry(hdr as any, body as any, (err) => (err ? reject(err) : resolve())));
  if (st.isDirectory()) return entry({ ...h, name: name + '/', type: 'directory' });
  if (st.isSymbolicLink()) return entry({ ...h, type: 'symlink', linkname: await fsp.readlink(host) });
  if (st.isFile()) {
    const key = `${st.dev}:${st.ino}`;
    if (st.nlink > 1 && links.has(key)) return entry({ ...h, type: 'link', linkname: links.get(key), size: 0 });
    if (st.nlink > 1) links.set(key, name);
    if (st.size <= 1 << 20) return entry({ ...h, type: 'file', size: st.size }, await fsp.readFile(host));
    await new Promise<void>((resolve, reject) => {
      const sink = pack.entry({ ...h, type: 'file', size: st.size }, (err) => (err ? reject(err) : resolve()));
      const src = fs.createReadStream(host);
      src.on('error', (err) => { sink.destroy(err); reject(err); });
      src.pipe(sink as unknown as Writable);
    });
    return;
  }
  if (st.isCharacterDevice() || st.isBlockDevice()) {
    return entry({ ...h, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: (st.rdev >> 8) & 0xfff, devminor: (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00) });
  }
  if (st.isFIFO()) return entry({ ...h, type: 'fifo' });
  // sockets: skipped, as Docker's archiver does
}

export interface ExtractOptions {
  /** Refuse to replace a directory with a non-directory or the reverse. */
  noOverwriteDirNonDir: boolean;
  /** Owner of extracted entries: the container's user (else root). */
  copyUIDGID: boolean;
}

/**
 * Extracts the tar (plain or compressed) read from `openInput()` (opened once the
 * destination checked out) into the directory
 * `p` inside the container; entries never land outside the container's rootfs.
 */
export async function extractToContainer(services: Services, idOrName: string, p: string, openInput: () => Readable, opts: ExtractOptions): Promise<void> {
  const { noOverwriteDirNonDir, copyUIDGID } = opts;
  await services.containers.withRootfs(idOrName, async (root, ctr) => {
    const mounts = redirectsOf(ctr);
    const absDest = path.posix.join('/', p);
    const destHost = redirect(root, resolveInRoot(root, absDest, true), mounts);
    let st: fs.Stats;
    try { st = await fsp.stat(destHost); } catch {
      throw notFound(`Could not find the file ${absDest} in container ${idOrName}`);
    }
    if (!st.isDirectory()) throw invalidArgument('extraction point is not a directory');
    const destInCtr = destHost.startsWith(root + '/') || destHost === root ? inContainer(root, destHost) : undefined;
    const owner = copyUIDGID ? await containerUser(root, ctr?.Config?.User ?? '') : { uid: 0, gid: 0 };
    const { stream } = await decompressed(openInput());
    const extract = tar.extract();
    const dirTimes: Array<{ p: string; mtime: Date }> = [];
    extract.on('entry', (header, entry, next) => {
      entry.on('error', () => undefined); // the extract's own error is reported
      extractEntry(header, entry as unknown as Readable).then(() => next(), (err) => { entry.resume(); next(err); });
    });
    const extractEntry = async (h: tar.Header, body: Readable) => {
      const rel = checkEntryPath(h.name, 'archive');
      if (!rel) { body.resume(); return; } // the destination itself
      // Parent resolved in scope: a symlink in the container can never lead outside the rootfs.
      const parentHost = destInCtr !== undefined
        ? resolveInRoot(root, path.posix.join(destInCtr, path.posix.dirname(rel)), true)
        : resolveInRoot(destHost, path.posix.dirname(rel), true);
      const target = path.join(parentHost, path.posix.basename(rel));
      await fsp.mkdir(parentHost, { recursive: true });
      let existing: fs.Stats | undefined;
      try { existing = await fsp.lstat(target); } catch { existing = undefined; }
      const isDir = h.type === 'directory';
      if (existing && noOverwriteDirNonDir) {
        if (existing.isDirectory() && !isDir) throw invalidArgument(`cannot overwrite directory "${inContainer(root, target)}" with non-directory "${h.name}"`);
        if (!existing.isDirectory() && isDir) throw invalidArgument(`cannot overwrite non-directory "${inContainer(root, target)}" with directory "${h.name}"`);
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
          const src = destInCtr !== undefined ? resolveInRoot(root, path.posix.join(destInCtr, linkRel), false) : path.join(destHost, linkRel);
          await fsp.link(src, target);
          break;
        }
        case 'character-device':
        case 'block-device':
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
    try {
      await pipeline(stream, extract as unknown as Writable);
    } catch (err) {
      if (err instanceof BerthError) throw err;
      const msg = (err as Error).message;
      if (/Invalid tar header|Unexpected end of data/.test(msg)) throw invalidArgument(`invalid tar archive: ${msg}`);
      throw err;
    }
    // Directory times last: creating entries inside changed them.
    for (const d of dirTimes.reverse()) await fsp.utimes(d.p, d.mtime, d.mtime).catch(() => undefined);
  });
}

/** The container's Config.User as uid/gid, looked up in the container's /etc/passwd and /etc/group. */
async function containerUser(root: string, user: string): Promise<{ uid: number; gid: number }> {
  if (!user) return { uid: 0, gid: 0 };
  const [u, g] = user.split(':');
  const read = async (f: string) => (await fsp.readFile(resolveInRoot(root, f, true), 'utf8').catch(() => '')).split('\n').map((l) => l.split(':'));
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
