/**
 * The registry server's storage (distribution's filesystem driver, reduced):
 *   <root>/blobs/sha256/<hex>                          verified blob data (layers, configs, manifests)
 *   <root>/uploads/<uuid>/data                          an upload in progress (renamed into blobs/ once verified)
 *   <root>/repositories/<name>/_layers/<hex>            link: the blob belongs to the repository
 *   <root>/repositories/<name>/_manifests/revisions/<hex>  {"mediaType"}: a manifest of the repository
 *   <root>/repositories/<name>/_manifests/tags/<tag>    the tag's manifest digest
 * Every publish is write-temp + fsync + rename, so a kill -9 at any point leaves
 * only whole blobs and links; an upload cut short stays under uploads/ and is
 * never served. Two uploads of the same blob race harmlessly: both rename
 * identical bytes onto the same name.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createHash, randomUUID, type Hash } from 'node:crypto';
import { promisify } from 'node:util';
import type { Readable } from 'node:stream';
import { writeFileAtomic, fsyncDir } from '../../common/atomic';

export const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
/** Repository name grammar of the distribution spec (path components of lowercase alphanumerics and separators). */
export const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
export const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export function validName(name: string): boolean {
  return name.length <= 255 && NAME_RE.test(name);
}

const hexOf = (digest: string) => digest.slice('sha256:'.length);
/**
 * fs.readFile (callbacks) for the small files every manifest GET reads: about half the CPU of
 * fs/promises' readFile, which goes through a FileHandle and more round trips.
 */
const readSmallFile = promisify(fs.readFile);

/** An upload's running state: the hash is kept in memory while the server lives. */
interface UploadState { hash: Hash | undefined; size: number; busy: boolean }

export class RegistryStorage {
  private readonly uploads = new Map<string, UploadState>();
  /**
   * Manifest bytes by digest: content-addressed, so never stale (whether a repository has the
   * manifest, and under which tag, is still read from disk on every GET).
   */
  private readonly manifestBodies = new BoundedCache(MANIFEST_CACHE_BYTES);

  constructor(readonly root: string) {}

  async open(): Promise<void> {
    for (const d of ['blobs/sha256', 'uploads', 'repositories']) await fsp.mkdir(path.join(this.root, d), { recursive: true, mode: 0o755 });
  }

  blobPath(digest: string): string { return path.join(this.root, 'blobs', 'sha256', hexOf(digest)); }
  private repoDir(name: string): string { return path.join(this.root, 'repositories', name); }
  private layerLink(name: string, digest: string): string { return path.join(this.repoDir(name), '_layers', hexOf(digest)); }
  private revisionPath(name: string, digest: string): string { return path.join(this.repoDir(name), '_manifests', 'revisions', hexOf(digest)); }
  private tagPath(name: string, tag: string): string { return path.join(this.repoDir(name), '_manifests', 'tags', tag); }
  private uploadDir(uuid: string): string { return path.join(this.root, 'uploads', uuid); }

  // ---- blobs ----

  /** Size of a blob visible in `name` (linked to it), or undefined. */
  async blobSize(name: string, digest: string): Promise<number | undefined> {
    if (!(await exists(this.layerLink(name, digest))) && !(await exists(this.revisionPath(name, digest)))) return undefined;
    try { return (await fsp.stat(this.blobPath(digest))).size; } catch { return undefined; }
  }

  async blobExists(digest: string): Promise<boolean> { return exists(this.blobPath(digest)); }

  async linkBlob(name: string, digest: string): Promise<void> {
    const link = this.layerLink(name, digest);
    if (await exists(link)) return;
    await fsp.mkdir(path.dirname(link), { recursive: true });
    await writeFileAtomic(link, digest);
  }

  async unlinkBlob(name: string, digest: string): Promise<boolean> {
    const link = this.layerLink(name, digest);
    if (!(await exists(link))) return false;
    await fsp.rm(link, { force: true });
    return true;
  }

  // ---- uploads ----

  async startUpload(name: string): Promise<string> {
    const uuid = randomUUID();
    const dir = this.uploadDir(uuid);
    await fsp.mkdir(dir, { recursive: true });
    await fsp.writeFile(path.join(dir, 'repo'), name);
    await fsp.writeFile(path.join(dir, 'data'), '');
    this.uploads.set(uuid, { hash: createHash('sha256'), size: 0, busy: false });
    return uuid;
  }

  /** Current size of an upload of `name`, or undefined when there is none. */
  async uploadSize(name: string, uuid: string): Promise<number | undefined> {
    if (!/^[0-9a-f-]{36}$/.test(uuid)) return undefined;
    const dir = this.uploadDir(uuid);
    const repo = await fsp.readFile(path.join(dir, 'repo'), 'utf8').catch(() => undefined);
    if (repo !== name) return undefined;
    const st = this.uploads.get(uuid);
    if (st) return st.size;
    // Left by an earlier server process: the size is the file's; the hash is recomputed at the end.
    const size = (await fsp.stat(path.join(dir, 'data')).catch(() => undefined))?.size;
    if (size === undefined) return undefined;
    this.uploads.set(uuid, { hash: undefined, size, busy: false });
    return size;
  }

  /** Appends a chunk; resolves with the new size. One writer per upload at a time. */
  async appendUpload(uuid: string, body: Readable): Promise<number> {
    const st = this.uploads.get(uuid)!;
    if (st.busy) throw new Error('upload busy');
    st.busy = true;
    try {
      const file = fs.createWriteStream(path.join(this.uploadDir(uuid), 'data'), { flags: 'a', highWaterMark: 1 << 20 });
      await new Promise<void>((resolve, reject) => {
        body.on('data', (chunk: Buffer) => {
          st.hash?.update(chunk);
          st.size += chunk.length;
          if (!file.write(chunk)) { body.pause(); file.once('drain', () => body.resume()); }
        });
        body.once('end', () => file.end());
        body.once('error', (e) => { file.destroy(); reject(e); });
        body.once('aborted', () => { file.destroy(); reject(new Error('client went away')); });
        file.once('close', () => resolve());
        file.once('error', reject);
      });
    } catch (err) {
      // A chunk cut short leaves the upload where it was known to be good: forget the in-memory hash.
      st.hash = undefined;
      st.size = (await fsp.stat(path.join(this.uploadDir(uuid), 'data')).catch(() => ({ size: 0 }))).size;
      throw err;
    } finally {
      st.busy = false;
    }
    return st.size;
  }

  /**
   * Verifies the upload against `digest` and publishes it as a blob linked to `name`.
   * Returns false (and removes the upload) on a digest mismatch.
   */
  async commitUpload(name: string, uuid: string, digest: string): Promise<boolean> {
    const st = this.uploads.get(uuid);
    const data = path.join(this.uploadDir(uuid), 'data');
    const actual = st?.hash ? 'sha256:' + st.hash.copy().digest('hex') : await hashFile(data);
    if (actual !== digest) {
      await this.cancelUpload(uuid);
      return false;
    }
    const target = this.blobPath(digest);
    if (!(await exists(target))) {
      const fh = await fsp.open(data, 'r');
      try { await fh.sync(); } finally { await fh.close(); }
      await fsp.rename(data, target);
      await fsyncDir(path.dirname(target));
    }
    await this.cancelUpload(uuid);
    await this.linkBlob(name, digest);
    return true;
  }

  async cancelUpload(uuid: string): Promise<void> {
    this.uploads.delete(uuid);
    await fsp.rm(this.uploadDir(uuid), { recursive: true, force: true });
  }

  // ---- manifests ----

  async putManifest(name: string, digest: string, mediaType: string, body: Buffer, tag?: string): Promise<void> {
    const target = this.blobPath(digest);
    if (!(await exists(target))) await writeFileAtomic(target, body);
    const rev = this.revisionPath(name, digest);
    await fsp.mkdir(path.dirname(rev), { recursive: true });
    await writeFileAtomic(rev, JSON.stringify({ mediaType }));
    if (tag !== undefined) {
      const t = this.tagPath(name, tag);
      await fsp.mkdir(path.dirname(t), { recursive: true });
      await writeFileAtomic(t, digest);
    }
  }

  async resolveTag(name: string, tag: string): Promise<string | undefined> {
    const d = await readSmallFile(this.tagPath(name, tag), 'utf8').catch(() => undefined);
    return d && DIGEST_RE.test(d) ? d : undefined;
  }

  /** A manifest of `name` by digest: its bytes and media type, or undefined. */
  async getManifest(name: string, digest: string): Promise<{ body: Buffer; mediaType: string } | undefined> {
    const meta = await readSmallFile(this.revisionPath(name, digest), 'utf8').catch(() => undefined);
    if (meta === undefined) return undefined;
    const body = this.manifestBodies.get(digest) ?? await readSmallFile(this.blobPath(digest)).catch(() => undefined);
    if (!body) return undefined;
    this.manifestBodies.set(digest, body);
    return { body, mediaType: JSON.parse(meta).mediaType };
  }

  async hasManifest(name: string, digest: string): Promise<boolean> { return exists(this.revisionPath(name, digest)); }

  /** Deletes a manifest revision and every tag pointing at it. */
  async deleteManifest(name: string, digest: string): Promise<boolean> {
    if (!(await exists(this.revisionPath(name, digest)))) return false;
    for (const tag of await this.tags(name)) {
      if ((await this.resolveTag(name, tag)) === digest) await fsp.rm(this.tagPath(name, tag), { force: true });
    }
    await fsp.rm(this.revisionPath(name, digest), { force: true });
    return true;
  }

  async deleteTag(name: string, tag: string): Promise<boolean> {
    if (!(await exists(this.tagPath(name, tag)))) return false;
    await fsp.rm(this.tagPath(name, tag), { force: true });
    return true;
  }

  /** Tags of a repository in Go's sort.Strings order (byte order), or undefined when the repository is unknown. */
  async tags(name: string): Promise<string[]> {
    const names = await fsp.readdir(path.join(this.repoDir(name), '_manifests', 'tags')).catch(() => [] as string[]);
    return names.filter((t) => TAG_RE.test(t)).sort(byteOrder);
  }

  async repositoryExists(name: string): Promise<boolean> {
    return (await exists(path.join(this.repoDir(name), '_manifests'))) || (await exists(path.join(this.repoDir(name), '_layers')));
  }

  /** Every repository holding a manifest (or, with `_layers`, a blob link), sorted. */
  async repositories(marker: '_manifests' | '_layers' = '_manifests'): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      const entries = await fsp.readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        if (!e.isDirectory()) continue;
        if (e.name === marker) { out.push(prefix); continue; }
        if (e.name.startsWith('_')) continue;
        await walk(path.join(dir, e.name), prefix ? `${prefix}/${e.name}` : e.name);
      }
    };
    await walk(path.join(this.root, 'repositories'), '');
    return out.filter((n) => validName(n)).sort(byteOrder);
  }

  /** Manifest digests recorded in a repository (for gc). */
  async revisions(name: string): Promise<string[]> {
    const names = await fsp.readdir(path.join(this.repoDir(name), '_manifests', 'revisions')).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => 'sha256:' + n);
  }

  async layerLinks(name: string): Promise<string[]> {
    const names = await fsp.readdir(path.join(this.repoDir(name), '_layers')).catch(() => [] as string[]);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => 'sha256:' + n);
  }

  async allBlobs(): Promise<string[]> {
    const names = await fsp.readdir(path.join(this.root, 'blobs', 'sha256'));
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => 'sha256:' + n);
  }

  async removeBlob(digest: string): Promise<void> { await fsp.rm(this.blobPath(digest), { force: true }); }
  async removeLayerLink(name: string, digest: string): Promise<void> { await fsp.rm(this.layerLink(name, digest), { force: true }); }
  async uploadIds(): Promise<string[]> { return fsp.readdir(path.join(this.root, 'uploads')).catch(() => []); }
}

const MANIFEST_CACHE_BYTES = 8 << 20;

/** Buffers by key up to a total size; the least recently used go first. */
class BoundedCache {
  private readonly items = new Map<string, Buffer>();
  private bytes = 0;
  constructor(private readonly maxBytes: number) {}

  get(key: string): Buffer | undefined {
    const v = this.items.get(key);
    if (v) { this.items.delete(key); this.items.set(key, v); }
    return v;
  }

  set(key: string, value: Buffer): void {
    if (this.items.has(key) || value.length > this.maxBytes / 8) return;
    this.items.set(key, value);
    this.bytes += value.length;
    for (const [k, v] of this.items) {
      if (this.bytes <= this.maxBytes) break;
      this.items.delete(k);
      this.bytes -= v.length;
    }
  }
}

/** Go's sort.Strings compares bytes; for UTF-8 that is code point order. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

async function exists(p: string): Promise<boolean> {
  try { await fsp.access(p); return true; } catch { return false; }
}

async function hashFile(p: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of fs.createReadStream(p, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return 'sha256:' + h.digest('hex');
}
