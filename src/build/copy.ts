/**
 * COPY and ADD into a mounted step rootfs: source selection (context paths
 * after .dockerignore, wildcards, another stage's or image's rootfs, heredocs,
 * ADD's URLs and local archives), Docker's destination rules, --chown/--chmod.
 * Every destination path is resolved inside the rootfs (symlinks in the
 * image can never lead a write outside it).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { decompressed } from '../common/compression';
import { resolveUserFrom } from '../runtime/user';
import { readFileInRoot, resolveInRoot } from '../common/scopedpath';
import { stepError as lineError } from './dockerfile/instructions';
import { untar } from './untar';

export interface CopySpec {
  instruction: string;
  line: number;
  /** Sources as written (expanded); `<<NAME` names a heredoc. */
  sources: string[];
  /** Absolute destination inside the image. */
  dest: string;
  /** The destination names a directory (ends with `/`, or is `.`). */
  destIsDir: boolean;
  chown: string;
  chmod?: number;
  add: boolean;
  /** Heredoc name -> content (already expanded when the heredoc allows it). */
  heredocs: Map<string, string>;
  user: string;
}

export interface SourceRoot {
  root: string;
  /** Another image's rootfs: source paths are resolved in scope (symlinks followed inside it). */
  scoped: boolean;
  /** Context paths not excluded by .dockerignore (context only). */
  visible?: Set<string>;
}

const isUrl = (s: string) => /^https?:\/\//i.test(s);
const hasWildcard = (s: string) => /[*?[]/.test(s);

function globRegExp(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) { re += '\\['; continue; }
      let cls = pattern.slice(i + 1, end);
      if (cls.startsWith('^') || cls.startsWith('!')) cls = '^' + cls.slice(1);
      re += `[${cls}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) re += pattern[++i].replace(/[.+^${}()|[\]\\*?]/g, '\\$&');
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

function cleanContextPath(spec: CopySpec, src: string): string {
  const clean = path.posix.normalize('/' + src).slice(1).replace(/\/+$/, '') || '.';
  const rel = path.posix.normalize(src.replace(/^\/+/, '')) || '.';
  if (rel === '..' || rel.startsWith('../')) throw lineError(`forbidden path outside the build context: ${src} ()`, spec.line);
  return clean;
}

/**
 * Context-relative paths a COPY/ADD takes (for the cache key and the copy);
 * heredocs stay `<<NAME`, URLs stay as written. Throws Docker's errors for
 * missing sources.
 */
export function resolveContextSources(spec: CopySpec, ctxDir: string, visible: Set<string>): string[] {
  const out: string[] = [];
  for (const src of spec.sources) {
    if (src.startsWith('<<') && spec.heredocs.has(src.replace(/^<<-?/, '').replace(/^["']|["']$/g, ''))) { out.push(src); continue; }
    if (isUrl(src)) {
      if (!spec.add) throw lineError(`source can't be a URL for ${spec.instruction}`, spec.line);
      out.push(src);
      continue;
    }
    const rel = cleanContextPath(spec, src);
    if (hasWildcard(rel)) {
      const re = globRegExp(rel);
      const matches = [...visible].filter((p) => re.test(p));
      out.push(...matches);
      continue;
    }
    if (rel === '.' || visible.has(rel)) { out.push(rel); continue; }
    throw lineError(`${spec.instruction} failed: file not found in build context or excluded by .dockerignore: stat ${src}: file does not exist`, spec.line);
  }
  if (out.length === 0) throw lineError(`${spec.instruction} failed: no source files were specified`, spec.line);
  void ctxDir;
  return out;
}

/** Sources in another image's rootfs: host paths (wildcards expanded component by component). */
function resolveScopedSources(spec: CopySpec, root: string): Array<{ host: string; name: string }> {
  const out: Array<{ host: string; name: string }> = [];
  for (const src of spec.sources) {
    const inner = path.posix.normalize('/' + src);
    if (!hasWildcard(inner)) {
      const host = resolveInRoot(root, inner);
      if (!fs.existsSync(host)) throw lineError(`${spec.instruction} failed: stat ${inner}: file does not exist`, spec.line);
      out.push({ host, name: path.posix.basename(inner) });
      continue;
    }
    let current = [{ inner: '/', host: root }];
    for (const comp of inner.split('/').filter(Boolean)) {
      const next: typeof current = [];
      for (const c of current) {
        const names = hasWildcard(comp) ? (fs.existsSync(c.host) && fs.statSync(c.host).isDirectory() ? fs.readdirSync(c.host).filter((n) => globRegExp(comp).test(n)).sort() : []) : [comp];
        for (const n of names) {
          const childInner = path.posix.join(c.inner, n);
          const host = resolveInRoot(root, childInner);
          if (fs.existsSync(host)) next.push({ inner: childInner, host });
        }
      }
      current = next;
    }
    out.push(...current.map((c) => ({ host: c.host, name: path.posix.basename(c.inner) })));
  }
  if (out.length === 0) throw lineError(`${spec.instruction} failed: no source files were specified`, spec.line);
  return out;
}

/** Owner of what COPY/ADD writes: root, or --chown's user[:group] read from the destination's passwd/group. */
function owner(spec: CopySpec, destRoot: string): { uid: number; gid: number } {
  if (!spec.chown) return { uid: 0, gid: 0 };
  const [u, g] = spec.chown.split(':', 2);
  const grp = g ?? u;
  try {
    const r = resolveUserFrom(`${u}:${grp}`, readFileInRoot(destRoot, '/etc/passwd'), readFileInRoot(destRoot, '/etc/group'));
    return { uid: r.uid, gid: r.gid };
  } catch (err) {
    throw lineError(`unable to convert uid/gid chown string to host mapping: ${(err as Error).message}`, spec.line);
  }
}

class DestWriter {
  constructor(private readonly root: string, private readonly own: { uid: number; gid: number }) {}

  /** Host path of an inner path whose parent directory exists (the last component is not followed). */
  host(inner: string): string {
    return resolveInRoot(this.root, inner, { followFinal: false });
  }

  /** mkdir -p inside the rootfs; new directories belong to the COPY's owner. */
  async mkdirs(inner: string): Promise<string> {
    let cur = '/';
    for (const comp of inner.split('/').filter(Boolean)) {
      cur = path.posix.join(cur, comp);
      const host = resolveInRoot(this.root, cur);
      const st = await fsp.stat(host).catch(() => undefined);
      if (st?.isDirectory()) continue;
      if (st) await fsp.rm(host, { force: true });
      await fsp.mkdir(host, { mode: 0o755 });
      await fsp.chmod(host, 0o755);
      await fsp.lchown(host, this.own.uid, this.own.gid);
    }
    return resolveInRoot(this.root, inner);
  }

  async isDir(inner: string): Promise<boolean> {
    return (await fsp.stat(resolveInRoot(this.root, inner)).catch(() => undefined))?.isDirectory() ?? false;
  }

  async clear(host: string): Promise<void> {
    const st = await fsp.lstat(host).catch(() => undefined);
    if (st && !st.isDirectory()) await fsp.rm(host, { force: true });
  }
}

interface CopyCtx { spec: CopySpec; dest: DestWriter; own: { uid: number; gid: number }; filter?: (rel: string) => boolean }

/** Copies one file/link/dir from the host into the rootfs at `inner` (a directory's content goes below it). */
async function copyEntry(c: CopyCtx, srcHost: string, inner: string, rel: string | undefined, dirTimes: Array<[string, Date]>): Promise<void> {
  const st = await fsp.lstat(srcHost);
  if (st.isDirectory()) {
    const host = await c.dest.mkdirs(inner);
    if (rel !== undefined) {
      await fsp.chmod(host, c.spec.chmod ?? st.mode & 0o7777);
      await fsp.lchown(host, c.own.uid, c.own.gid);
      dirTimes.push([host, st.mtime]);
    }
    for (const name of (await fsp.readdir(srcHost)).sort()) {
      const childRel = rel === undefined || rel === '.' ? name : `${rel}/${name}`;
      if (c.filter && !c.filter(childRel)) {
        // An excluded directory may still hold re-included paths.
        if ((await fsp.lstat(path.join(srcHost, name))).isDirectory()) await copyFiltered(c, path.join(srcHost, name), path.posix.join(inner, name), childRel, dirTimes);
        continue;
      }
      await copyEntry(c, path.join(srcHost, name), path.posix.join(inner, name), childRel, dirTimes);
    }
    return;
  }
  await c.dest.mkdirs(path.posix.dirname(inner));
  const host = c.dest.host(inner);
  await c.dest.clear(host);
  if (st.isSymbolicLink()) {
    await fsp.symlink(await fsp.readlink(srcHost), host);
  } else if (st.isFile()) {
    await fsp.copyFile(srcHost, host);
    await fsp.chmod(host, c.spec.chmod ?? st.mode & 0o7777);
    await fsp.utimes(host, st.atime, st.mtime);
  } else {
    return; // sockets, fifos, devices are not copied
  }
  await fsp.lchown(host, c.own.uid, c.own.gid);
}

/** Walks an excluded directory for paths a `!` pattern re-includes. */
async function copyFiltered(c: CopyCtx, srcHost: string, inner: string, rel: string, dirTimes: Array<[string, Date]>): Promise<void> {
  for (const name of (await fsp.readdir(srcHost)).sort()) {
    const childRel = `${rel}/${name}`;
    const childHost = path.join(srcHost, name);
    if (c.filter!(childRel)) await copyEntry(c, childHost, path.posix.join(inner, name), childRel, dirTimes);
    else if ((await fsp.lstat(childHost)).isDirectory()) await copyFiltered(c, childHost, path.posix.join(inner, name), childRel, dirTimes);
  }
}

async function isArchive(file: string): Promise<boolean> {
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.alloc(512);
    const { bytesRead } = await fh.read(buf, 0, 512, 0);
    const b = buf.subarray(0, bytesRead);
    if (b[0] === 0x1f && b[1] === 0x8b) return true;
    if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return true;
    if (b.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return true;
    return bytesRead >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';
  } finally {
    await fh.close();
  }
}

/** Copies the sources of `spec` into the rootfs mounted at `destRoot`. */
export async function copySources(spec: CopySpec, from: SourceRoot, destRoot: string): Promise<void> {
  const own = owner(spec, destRoot);
  const dest = new DestWriter(destRoot, own);
  const visible = from.visible;
  const c: CopyCtx = { spec, dest, own, filter: visible ? (rel) => visible.has(rel) : undefined };
  const items: Array<{ kind: 'host'; host: string; name: string; rel?: string } | { kind: 'heredoc'; name: string; content: string } | { kind: 'url'; url: string }> = [];
  if (from.scoped) {
    for (const s of resolveScopedSources(spec, from.root)) items.push({ kind: 'host', host: s.host, name: s.name });
  } else {
    for (const r of resolveContextSources(spec, from.root, visible ?? new Set())) {
      if (r.startsWith('<<')) {
        const name = r.replace(/^<<-?/, '').replace(/^["']|["']$/g, '');
        items.push({ kind: 'heredoc', name, content: spec.heredocs.get(name) ?? '' });
      } else if (isUrl(r)) items.push({ kind: 'url', url: r });
      else items.push({ kind: 'host', host: r === '.' ? from.root : path.join(from.root, r), name: path.posix.basename(r), rel: r });
    }
  }
  const destIsDir = spec.destIsDir || (await dest.isDir(spec.dest));
  if (items.length > 1 && !destIsDir) {
    throw lineError(`When using ${spec.instruction} with more than one source file, the destination must be a directory and end with a /`, spec.line);
  }
  const dirTimes: Array<[string, Date]> = [];
  for (const it of items) {
    if (it.kind === 'heredoc') {
      const inner = destIsDir ? path.posix.join(spec.dest, it.name) : spec.dest;
      await dest.mkdirs(path.posix.dirname(inner));
      const host = dest.host(inner);
      await dest.clear(host);
      await fsp.writeFile(host, it.content, { mode: spec.chmod ?? 0o644 });
      await fsp.chmod(host, spec.chmod ?? 0o644);
      await fsp.lchown(host, own.uid, own.gid);
      continue;
    }
    if (it.kind === 'url') {
      const res = await fetch(it.url).catch((err: Error) => { throw lineError(`failed to fetch ${it.url}: ${(err.cause as Error)?.message ?? err.message}`, spec.line); });
      if (!res.ok || !res.body) throw lineError(`failed to GET ${it.url} with status ${res.status} ${res.statusText}`, spec.line);
      const base = path.posix.basename(new URL(it.url).pathname) || 'index.html';
      const inner = destIsDir ? path.posix.join(spec.dest, base) : spec.dest;
      await dest.mkdirs(path.posix.dirname(inner));
      const host = dest.host(inner);
      await dest.clear(host);
      await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), fs.createWriteStream(host, { mode: 0o600 }));
      await fsp.chmod(host, spec.chmod ?? 0o600);
      await fsp.lchown(host, own.uid, own.gid);
      const lm = res.headers.get('last-modified');
      if (lm && !Number.isNaN(Date.parse(lm))) await fsp.utimes(host, new Date(lm), new Date(lm));
      continue;
    }
    const st = await fsp.lstat(it.host);
    if (spec.add && st.isFile() && (await isArchive(it.host))) {
      const dirHost = await dest.mkdirs(spec.dest);
      void dirHost;
      await untar((await decompressed(fs.createReadStream(it.host))).stream, {
        keepOwner: true,
        place: (parts) => dest.host(path.posix.join(spec.dest, ...parts)),
        mkdirs: async (parts) => { await dest.mkdirs(path.posix.join(spec.dest, ...parts)); },
        linkTarget: (parts) => dest.host(path.posix.join(spec.dest, ...parts)),
      });
      continue;
    }
    if (st.isDirectory()) {
      await copyEntry(c, it.host, spec.dest, from.scoped ? undefined : it.rel === '.' ? undefined : it.rel, dirTimes);
      // the destination directory itself is the COPY's, not the source's
      continue;
    }
    const inner = destIsDir ? path.posix.join(spec.dest, it.name) : spec.dest;
    await copyEntry(c, it.host, inner, it.rel, dirTimes);
  }
  for (const [d, t] of dirTimes.reverse()) await fsp.utimes(d, t, t).catch(() => undefined);
}
