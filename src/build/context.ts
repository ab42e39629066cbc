/**
 * The build context: the request body (a tar, optionally gzip/xz/zstd
 * compressed) unpacked into a private directory, plus the `.dockerignore`
 * rules that decide what COPY/ADD may see. The context is trusted as data
 * only: entries are confined to the directory (no `..`, links are never
 * followed while unpacking).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { invalidArgument } from '../common/errors';
import { decompressed } from '../common/compression';
import { IgnoreMatcher, readDockerignore } from './dockerignore';
import { untar } from './untar';
import { SMALL_FILE_BYTES } from '../common/smallfile';

export class BuildContext {
  private constructor(readonly dir: string, readonly ignore: IgnoreMatcher) {}

  /** Unpacks `body` into `dir` (which must not exist). Counts bytes for progress. */
  static async unpack(body: Readable, dir: string, onBytes: (n: number) => void): Promise<BuildContext> {
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    const { stream: plain } = await decompressed(body);
    plain.on('data', (b: Buffer) => onBytes(b.length));
    let count: number;
    try {
      count = await untar(plain, { place: (parts) => path.join(dir, ...parts), keepOwner: false });
    } catch (err) {
      throw invalidArgument(`failed to read the build context (it must be a tar archive): ${(err as Error).message}`);
    }
    if (count === 0) throw invalidArgument('the build context is empty: send a tar archive holding at least the Dockerfile');
    return BuildContext.adopt(dir);
  }

  /** A context that is already a directory (a cloned repository, a fetched Dockerfile); removed with the context. */
  static async adopt(dir: string): Promise<BuildContext> {
    const ignoreText = await fsp.readFile(path.join(dir, '.dockerignore'), 'utf8').catch(() => '');
    return new BuildContext(dir, new IgnoreMatcher(readDockerignore(ignoreText)));
  }

  /** Reads the Dockerfile named by the request (relative to the context root). */
  async dockerfile(name: string): Promise<Buffer> {
    const rel = name.replace(/^\.?\//, '') || 'Dockerfile';
    const p = path.resolve(this.dir, rel);
    if (!p.startsWith(this.dir + path.sep)) throw invalidArgument(`Cannot locate specified Dockerfile: ${name}`);
    try {
      return await fsp.readFile(p);
    } catch {
      // Docker also tries the lower-case name for the default
      if (rel === 'Dockerfile') {
        const alt = await fsp.readFile(path.join(this.dir, 'dockerfile')).catch(() => undefined);
        if (alt) return alt;
      }
      throw invalidArgument(`Cannot locate specified Dockerfile: ${name}`);
    }
  }

  /** All context-relative paths (files, links and directories) visible to COPY, sorted. */
  async visiblePaths(): Promise<string[]> {
    const out: string[] = [];
    let seen = 0;
    const walk = async (rel: string) => {
      const abs = rel ? path.join(this.dir, rel) : this.dir;
      const names = fs.readdirSync(abs).sort();
      for (const n of names) {
        const r = rel ? `${rel}/${n}` : n;
        const st = fs.lstatSync(path.join(this.dir, r));
        if (++seen % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
        const excluded = this.ignore.excluded(r);
        if (!excluded) out.push(r);
        if (st.isDirectory() && (!excluded || this.ignore.mayReinclude(r))) await walk(r);
      }
    };
    await walk('');
    return out;
  }

  /**
   * A hash of the content and metadata (mode, owner, link target; not the
   * times) of the given context paths and everything visible below them:
   * the cache key part of a COPY/ADD.
   */
  async hashSources(rels: string[], visible: Set<string>): Promise<string> {
    const h = createHash('sha256');
    // Direct calls for metadata and small files: a cached build is mostly this walk, and each
    // thread-pool round trip costs far more than the call itself. Big files stream; the loop
    // yields every few hundred entries so a large context does not hold the event loop.
    let seen = 0;
    const add = async (r: string) => {
      const abs = path.join(this.dir, r);
      const st = fs.lstatSync(abs);
      h.update(`${r}\0${st.mode}\0${st.uid}\0${st.gid}\0`);
      if (st.isSymbolicLink()) h.update(fs.readlinkSync(abs));
      else if (st.isFile()) {
        if (st.size <= SMALL_FILE_BYTES) h.update(fs.readFileSync(abs));
        else await pipeline(fs.createReadStream(abs), async function* (src) { for await (const c of src) h.update(c as Buffer); });
      } else if (st.isDirectory()) {
        for (const n of fs.readdirSync(abs).sort()) {
          const child = r === '.' ? n : `${r}/${n}`;
          if (visible.has(child) || fs.lstatSync(path.join(this.dir, child)).isDirectory()) await add(child);
        }
      }
      h.update('\0');
      if (++seen % 256 === 0) await new Promise((resolve) => setImmediate(resolve));
    };
    for (const r of rels) await add(r);
    return h.digest('hex');
  }

  async remove(): Promise<void> {
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}
