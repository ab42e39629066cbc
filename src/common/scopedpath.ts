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
 * Resolution is done with lstat/readlink on host paths, so it is exact for a
 * stopped container; a running container's processes could still swap a
 * component for a symlink between this resolution and the caller's use of
 * the path (the race Docker closes by chrooting its archiver). Callers create
 * with O_EXCL and never follow a final symlink, which keeps that window to
 * directories the container itself replaces during the copy.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArgument } from './errors';

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

/** Reads a file inside a root safely; undefined when absent or not a regular file. */
export function readFileInRoot(root: string, p: string): string | undefined {
  const host = resolveInRoot(root, p);
  try {
    const st = fs.statSync(host);
    if (!st.isFile()) return undefined;
    return fs.readFileSync(host, 'utf8');
  } catch {
    return undefined;
  }
}
