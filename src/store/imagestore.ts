/**
 * Image metadata (moby's image store + reference store, reduced):
 *   content store: config blob (image ID = sha256 of its bytes), OCI manifest
 *                  blob, one uncompressed tar blob per layer (digest = diffID)
 *   <dataRoot>/metadata/images/<hex>.json   per-image local facts
 *   <dataRoot>/metadata/repositories.json   full reference -> image ID
 * Every file is written atomically. An image becomes visible only when its
 * JSON is written, after all its blobs are committed.
 */
import { Mutex } from '../common/mutex';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { OciImageConfig } from '../engine/types';
import { readJsonIfExists, writeJsonAtomic } from '../common/atomic';
import { internal } from '../common/errors';
import type { ContentStore } from './content';

import { MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER, MEDIA_TYPE_MANIFEST } from '../common/mediatypes';

/** What Berth records locally for an image, beyond its config. */
export interface StoredImage {
  id: string;
  manifestDigest: string;
  /** Parent image id for committed images, '' otherwise. */
  parent: string;
  /** When the image arrived in this store. */
  added: string;
  /** Last time a tag was pointed at it (Metadata.LastTagTime), '' when never. */
  lastTagTime: string;
  /** Unpacked size per layer, same order as rootfs.diff_ids. */
  layerSizes: number[];
  /** `repository@digest` of manifests this image was pulled or pushed as (full repository names). */
  repoDigests?: string[];
}

export interface ImageEntry extends StoredImage {
  config: OciImageConfig;
  configSize: number;
}

interface Repositories { tags: Record<string, string> }

export class ImageStore {
  private dir: string;
  private repoFile: string;
  private images = new Map<string, ImageEntry>();
  private tags: Record<string, string> = {};
  private readonly lock = new Mutex();

  constructor(dataRoot: string, private content: ContentStore) {
    this.dir = path.join(dataRoot, 'metadata', 'images');
    this.repoFile = path.join(dataRoot, 'metadata', 'repositories.json');
  }

  async open(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    for (const name of await fsp.readdir(this.dir)) {
      const p = path.join(this.dir, name);
      if (!/^[a-f0-9]{64}\.json$/.test(name)) {
        // Temp files of an interrupted atomic write.
        if (name.startsWith('.tmp-')) await fsp.rm(p, { force: true });
        continue;
      }
      try {
        const rec = (await readJsonIfExists<StoredImage>(p))!;
        const buf = await this.content.readBuffer(rec.id);
        this.images.set(rec.id, { ...rec, config: JSON.parse(buf.toString('utf8')), configSize: buf.length });
      } catch {
        // Unreadable record or missing config blob: not a usable image.
        await fsp.rm(p, { force: true });
      }
    }
    for (const name of await fsp.readdir(path.dirname(this.repoFile))) {
      if (name.startsWith('.tmp-')) await fsp.rm(path.join(path.dirname(this.repoFile), name), { force: true });
    }
    const repos = await readJsonIfExists<Repositories>(this.repoFile);
    this.tags = {};
    for (const [ref, id] of Object.entries(repos?.tags ?? {})) if (this.images.has(id)) this.tags[ref] = id;
  }

  private withLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.run(fn);
  }

  /**
   * Records an image whose layers are already stored as blobs. `configBytes`
   * are stored as-is (the image ID is their digest). Idempotent.
   */
  async add(configBytes: Buffer, layers: Array<{ diffID: string; tarSize: number; size: number }>, parent = ''): Promise<ImageEntry> {
    const config = JSON.parse(configBytes.toString('utf8')) as OciImageConfig;
    const { digest: id, size: configSize } = await this.content.writeBuffer(configBytes);
    const existing = this.images.get(id);
    if (existing) return existing;
    const manifest = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPE_MANIFEST,
      config: { mediaType: MEDIA_TYPE_CONFIG, digest: id, size: configSize },
      layers: layers.map((l) => ({ mediaType: MEDIA_TYPE_LAYER, digest: l.diffID, size: l.tarSize })),
    };
    const { digest: manifestDigest } = await this.content.writeBuffer(JSON.stringify(manifest));
    const rec: StoredImage = {
      id,
      manifestDigest,
      parent,
      added: new Date().toISOString(),
      lastTagTime: '',
      layerSizes: layers.map((l) => l.size),
    };
    await this.withLock(() => writeJsonAtomic(this.recordPath(id), rec));
    const entry: ImageEntry = { ...rec, config, configSize };
    this.images.set(id, entry);
    return entry;
  }

  private recordPath(id: string): string {
    return path.join(this.dir, id.slice('sha256:'.length) + '.json');
  }

  get(id: string): ImageEntry | undefined {
    return this.images.get(id);
  }

  all(): ImageEntry[] {
    return [...this.images.values()];
  }

  /** Image IDs matching a hex prefix (with or without `sha256:`). */
  searchPrefix(prefix: string): string[] {
    const p = prefix.startsWith('sha256:') ? prefix : 'sha256:' + prefix;
    return [...this.images.keys()].filter((id) => id.startsWith(p));
  }

  tagTarget(fullRef: string): string | undefined {
    return this.tags[fullRef];
  }

  /** Full references pointing at `id`, sorted. */
  refsOf(id: string): string[] {
    return Object.entries(this.tags).filter(([, v]) => v === id).map(([k]) => k).sort();
  }

  allTags(): Record<string, string> {
    return { ...this.tags };
  }

  /** Points `fullRef` at `id`; returns the image it pointed to before ('' if none). */
  async setTag(fullRef: string, id: string): Promise<string> {
    if (!this.images.has(id)) throw internal(`image ${id} not in store`);
    return this.withLock(async () => {
      const before = this.tags[fullRef] ?? '';
      this.tags[fullRef] = id;
      const img = this.images.get(id)!;
      img.lastTagTime = new Date().toISOString();
      await writeJsonAtomic(this.repoFile, { tags: this.tags });
      await writeJsonAtomic(this.recordPath(id), this.stored(img));
      return before;
    });
  }

  async removeTag(fullRef: string): Promise<boolean> {
    return this.withLock(async () => {
      if (!(fullRef in this.tags)) return false;
      delete this.tags[fullRef];
      await writeJsonAtomic(this.repoFile, { tags: this.tags });
      return true;
    });
  }

  private stored(e: ImageEntry): StoredImage {
    const { id, manifestDigest, parent, added, lastTagTime, layerSizes, repoDigests } = e;
    return { id, manifestDigest, parent, added, lastTagTime, layerSizes, ...(repoDigests?.length ? { repoDigests } : {}) };
  }

  /** Records `repo@digest` for an image (idempotent). */
  async addRepoDigest(id: string, repoDigest: string): Promise<void> {
    const img = this.images.get(id);
    if (!img) throw internal(`image ${id} not in store`);
    if (img.repoDigests?.includes(repoDigest)) return;
    await this.withLock(async () => {
      img.repoDigests = [...(img.repoDigests ?? []), repoDigest];
      await writeJsonAtomic(this.recordPath(id), this.stored(img));
    });
  }

  /** The image a `repo@digest` names, if any. */
  byRepoDigest(repoDigest: string): string | undefined {
    for (const img of this.images.values()) if (img.repoDigests?.includes(repoDigest)) return img.id;
    return undefined;
  }

  /** Images whose parent is `id` (committed children). */
  children(id: string): string[] {
    return this.all().filter((i) => i.parent === id).map((i) => i.id);
  }

  /**
   * Forgets an image: tags, record, config and manifest blobs. Layer blobs
   * are left to the caller, which knows which ones other images still use.
   */
  async delete(id: string): Promise<void> {
    const img = this.images.get(id);
    if (!img) return;
    await this.withLock(async () => {
      let tagsChanged = false;
      for (const [k, v] of Object.entries(this.tags)) if (v === id) { delete this.tags[k]; tagsChanged = true; }
      if (tagsChanged) await writeJsonAtomic(this.repoFile, { tags: this.tags });
      await fsp.rm(this.recordPath(id), { force: true });
      this.images.delete(id);
    });
    const stillUsed = (digest: string) => this.all().some((i) => i.id === digest || i.manifestDigest === digest);
    if (!stillUsed(img.manifestDigest)) await this.content.delete(img.manifestDigest);
    if (!stillUsed(id)) await this.content.delete(id);
  }
}
