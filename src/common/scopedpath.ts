/**
 * The one symlink-safe path resolver: maps a path as a container (or an image
 * being built) sees it to the host path that holds it, never leaving the
 * container's view. Used by `cp` in both directions, `export`, user and
 * working-directory lookups, volume copy-up, and meant for the builder's COPY.
 *
 * The view is a root directory plus mounts (volumes, bind mounts, the /etc
 * files): a directory of the host that the container sees at a destination.
 * Every component is resolved in that view, as runc's securejoin and Docker's
 * FollowSymlinkInScope do: a symlink's absolute target restarts at the
 * container's `/` (not the host's, not the mount's), `..` never climbs above
 * `/`, and a symlink found inside a volume or a bind mount is resolved in the
 * container's view like any other, so `ln -s / /data/x` in a volume leads to
 * the container's root, never to the host's.
 *
 * Two forms of the same rules:
 *  - resolveInScope / resolveInRoot answer a host path (lstat/readlink on host
 *    paths). Exact only while nothing runs in the scope: for a container's
 *    configuration (cwd, mount destinations) and a build step's rootfs.
 *  - ScopeWalker answers descriptors (openat2(2), one component at a time with
 *    RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or in one call with RESOLVE_IN_ROOT
 *    when no mount is involved). Whatever a running container swaps meanwhile,
 *    each step opens a name inside a directory already held, so nothing is
 *    ever followed out of the scope. Callers then act on names inside a held
 *    directory (fdPath(dir, name), looked up once, never followed by the
 *    *-nofollow calls) or on the held object itself (fdPath(fd)). This is
 *    what `cp` in both directions and `export` use.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArgument } from './errors';
import { AT_FDCWD, O_PATH, openat2, readlinkat, RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS } from './linux';

/** A host directory (or file) the container sees at `dest`. */
export interface ScopeMount {
  /** Absolute path inside the container. */
  dest: string;
  /** Host path of what is mounted there. */
  source: string;
}

/** A container's view of the filesystem: its root and what is mounted on it. */
export interface FsScope {
  root: string;
  /** Longest destination first (see scopeOf). */
  mounts: readonly ScopeMount[];
}

export interface ScopedPath {
  /** The host path. */
  host: string;
  /** The same place as an absolute container path, every symlink expanded. */
  path: string;
}

/** Linux's limit (MAXSYMLINKS is 40); Docker's FollowSymlinkInScope allows 255. */
const MAX_LINKS = 255;

/**
 * A scope for `root` with `mounts`. A destination is itself resolved in the
 * root first (runc mounts `/var/run/x` at `/run/x` when `/var/run` links to
 * `/run`); nested mounts win over their parents.
 */
export function scopeOf(root: string, mounts: readonly ScopeMount[] = []): FsScope {
  const rootAbs = path.resolve(root);
  const bare: FsScope = { root: rootAbs, mounts: [] };
  const resolved = mounts
    .filter((m) => m.dest && m.source)
    .map((m) => ({ dest: resolveInScope(bare, m.dest).path, source: m.source }))
    .filter((m) => m.dest !== '/');
  // Longest first so that nested mounts win; later entries for the same dest replace earlier ones.
  const byDest = new Map<string, ScopeMount>();
  for (const m of resolved) byDest.set(m.dest, m);
  return { root: rootAbs, mounts: [...byDest.values()].sort((a, b) => b.dest.length - a.dest.length) };
}

/** Host path of an already resolved container path. */
function hostOf(scope: FsScope, ctrPath: string): string {
  for (const m of scope.mounts) {
    if (ctrPath === m.dest) return m.source;
    if (ctrPath.startsWith(m.dest + '/')) return path.join(m.source, ctrPath.slice(m.dest.length + 1));
  }
  return ctrPath === '/' ? scope.root : path.join(scope.root, ctrPath);
}

function isMountPoint(scope: FsScope, ctrPath: string): boolean {
  return scope.mounts.some((m) => m.dest === ctrPath);
}

/**
 * Resolves `p` (absolute or relative to `/`) in the scope. With
 * `followFinal: false` the last component is kept as it is when it is a
 * symlink (lstat semantics). Components that do not exist are kept
 * literally. Throws a 400 (BerthError) on a symlink loop.
 */
export function resolveInScope(scope: FsScope, p: string, opts: { followFinal?: boolean } = {}): ScopedPath {
  const followFinal = opts.followFinal ?? true;
  const todo = p.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const comp = todo.shift()!;
    if (comp === '..') { done.pop(); continue; }
    if (comp.includes('\0')) throw invalidArgument(`invalid path ${JSON.stringify(p)}: NUL in name`);
    done.push(comp);
    if (todo.length === 0 && !followFinal) break;
    const ctrPath = '/' + done.join('/');
    // What is mounted at a destination is what the container sees there, never a symlink of the rootfs.
    if (isMountPoint(scope, ctrPath)) continue;
    const host = hostOf(scope, ctrPath);
    let isLink = false;
    try { isLink = fs.lstatSync(host).isSymbolicLink(); } catch { /* absent: kept literally */ }
    if (!isLink) continue;
    if (++links > MAX_LINKS) throw invalidArgument(`too many levels of symbolic links: ${p}`);
    const target = fs.readlinkSync(host);
    done.pop();
    if (target.startsWith('/')) done.length = 0;
    todo.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
  }
  const ctrPath = '/' + done.join('/');
  return { host: hostOf(scope, ctrPath), path: ctrPath };
}

/** resolveInScope over a bare root (an image rootfs, a build context): the host path. */
export function resolveInRoot(root: string, p: string, opts: { followFinal?: boolean } = {}): string {
  return resolveInScope({ root: path.resolve(root), mounts: [] }, p, opts).host;
}

/** Reads a file inside a root safely (openat2 RESOLVE_IN_ROOT); undefined when absent or not a regular file. */
export function readFileInRoot(root: string, p: string): string | undefined {
  let rootFd = -1;
  let fd = -1;
  try {
    rootFd = openat2(AT_FDCWD, root, O_PATH | fs.constants.O_DIRECTORY, 0, 0);
    // O_NONBLOCK: a FIFO put at the path must not block the daemon.
    fd = openat2(rootFd, p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    if (!fs.fstatSync(fd).isFile()) return undefined;
    return fs.readFileSync(fd, 'utf8');
  } catch {
    return undefined;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
    if (rootFd >= 0) fs.closeSync(rootFd);
  }
}

/* --------------------------------------------- descriptor-based walking */

/** One name inside a held directory: no `/`, no `..`, no symlink followed, no magic link. */
const ONE_NAME = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
const NOFOLLOW = fs.constants.O_NOFOLLOW;

/**
 * `/proc/self/fd/N` (the object descriptor N holds, whatever its name is now)
 * or `/proc/self/fd/N/name` (`name` looked up once in that directory).
 */
export function fdPath(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

/** An O_PATH descriptor of `name` in the directory `dirFd`, never following it. */
export function openNameAt(dirFd: number, name: string): number {
  return openat2(dirFd, name, O_PATH | NOFOLLOW, 0, ONE_NAME);
}

/** `name` in the directory `dirFd` opened with `flags` (O_NOFOLLOW added), nothing followed. */
export function openFileAt(dirFd: number, name: string, flags: number, mode = 0): number {
  return openat2(dirFd, name, flags | NOFOLLOW, mode, ONE_NAME);
}

/** A resolved object: an O_PATH descriptor (the caller closes it) and its path in the container. */
export interface ScopedFd { fd: number; path: string }

interface Frame { name: string; fd: number }

/**
 * Resolves paths of one scope to descriptors. Holds a descriptor of the root
 * until close(); every descriptor it hands out is the caller's to close.
 */
export class ScopeWalker {
  private readonly rootFd: number;
  private rootReal: string;

  constructor(private readonly scope: FsScope) {
    this.rootFd = openat2(AT_FDCWD, scope.root, O_PATH | fs.constants.O_DIRECTORY, 0, 0);
    this.rootReal = fs.readlinkSync(fdPath(this.rootFd));
  }

  /** The root's descriptor (owned by the walker). */
  get root(): number { return this.rootFd; }

  close(): void { fs.closeSync(this.rootFd); }

  /**
   * `p` resolved in the scope. `followFinal: false` keeps a final symlink.
   * `createDirs` makes missing components as directories (0755) on the way.
   * A missing component throws ENOENT (code on the Error), unless
   * `allowMissing`, which answers fd -1 and the path kept literally.
   */
  open(p: string, opts: { followFinal?: boolean; createDirs?: boolean; allowMissing?: boolean } = {}): ScopedFd {
    const followFinal = opts.followFinal ?? true;
    const comps = splitPath(p);
    if (this.scope.mounts.length === 0 && !opts.createDirs && !opts.allowMissing) {
      const fast = this.openInRoot(comps.join('/') || '.', followFinal);
      if (fast) return fast;
    }
    return this.walk(comps, followFinal, !!opts.createDirs, !!opts.allowMissing);
  }

  /** The directory holding `p` (resolved, created when `createDirs`) and p's last name; name '' for `/`. */
  openParent(p: string, opts: { createDirs?: boolean } = {}): { dir: ScopedFd; name: string } {
    const comps = splitPath(path.posix.normalize('/' + p));
    const name = comps.pop() ?? '';
    const dir = this.walk(comps, true, !!opts.createDirs, false);
    return { dir, name };
  }

  /** One openat2 with RESOLVE_IN_ROOT (no mount can be crossed); undefined when its path cannot be told. */
  private openInRoot(rel: string, followFinal: boolean): ScopedFd | undefined {
    const fd = openat2(this.rootFd, rel, O_PATH | (followFinal ? 0 : NOFOLLOW), 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    const host = fs.readlinkSync(fdPath(fd));
    if (host === this.rootReal) return { fd, path: '/' };
    if (host.startsWith(this.rootReal + '/') || this.rootReal === '/') return { fd, path: this.rootReal === '/' ? host : host.slice(this.rootReal.length) };
    fs.closeSync(fd);
    return undefined;
  }

  private walk(comps: string[], followFinal: boolean, createDirs: boolean, allowMissing: boolean): ScopedFd {
    const stack: Frame[] = [{ name: '', fd: this.rootFd }];
    const pop = () => { const f = stack.pop()!; if (f.fd !== this.rootFd) fs.closeSync(f.fd); };
    const ctrPath = () => '/' + stack.slice(1).map((f) => f.name).join('/');
    const todo = [...comps];
    let links = 0;
    try {
      while (todo.length > 0) {
        const comp = todo.shift()!;
        if (comp === '..') { if (stack.length > 1) pop(); continue; }
        const last = todo.length === 0;
        const here = path.posix.join(ctrPath(), comp);
        const mount = this.scope.mounts.find((m) => m.dest === here);
        let fd: number;
        try {
          // What is mounted at a destination is what the container sees there (the source is the daemon's own path).
          fd = mount ? openat2(AT_FDCWD, mount.source, O_PATH, 0, 0) : this.openOrMake(stack[stack.length - 1].fd, comp, createDirs);
        } catch (err) {
          if (allowMissing && (err as NodeJS.ErrnoException).code === 'ENOENT') {
            const rest = path.posix.normalize(path.posix.join(here, ...todo));
            return { fd: -1, path: rest };
          }
          throw err;
        }
        if (!mount && (!last || followFinal) && fs.fstatSync(fd).isSymbolicLink()) {
          const target = readlinkat(fd, '');
          fs.closeSync(fd);
          if (++links > MAX_LINKS) throw invalidArgument(`too many levels of symbolic links: ${'/' + comps.join('/')}`);
          if (target.startsWith('/')) while (stack.length > 1) pop();
          todo.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
          continue;
        }
        stack.push({ name: comp, fd });
      }
      const top = stack[stack.length - 1];
      const result = { fd: top.fd === this.rootFd ? openat2(this.rootFd, '.', O_PATH, 0, ONE_NAME) : top.fd, path: ctrPath() };
      stack.pop();
      return result;
    } finally {
      while (stack.length > 0) pop();
    }
  }

  private openOrMake(dirFd: number, name: string, createDirs: boolean): number {
    try {
      return openNameAt(dirFd, name);
    } catch (err) {
      if (!createDirs || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      try { fs.mkdirSync(fdPath(dirFd, name), 0o755); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; }
      return openNameAt(dirFd, name);
    }
  }
}

function splitPath(p: string): string[] {
  if (p.includes('\0')) throw invalidArgument(`invalid path ${JSON.stringify(p)}: NUL in name`);
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

/** Removes `name` in the directory `dirFd` and, for a directory, everything below it; no symlink followed. */
export function removeAt(dirFd: number, name: string): void {
  let fd: number;
  try { fd = openNameAt(dirFd, name); } catch (err) { if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; throw err; }
  try {
    if (fs.fstatSync(fd).isDirectory()) {
      for (const child of fs.readdirSync(fdPath(fd))) removeAt(fd, child);
      fs.rmdirSync(fdPath(dirFd, name));
      return;
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.unlinkSync(fdPath(dirFd, name));
}
