/**
 * `docker save` and `docker load` as image-area operations: names resolved and
 * archives written to a sink (save); an archive read from a stream, spooled,
 * verified and only then published (load). Progress goes to a plain callback;
 * the API turns it into Docker's JSON message stream.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import { familiarName, familiarString, parseReference, referenceString, withDefaultTag } from '../common/reference';
import type { ImageService, ProgressSink } from '../engine/types';
import { chainIDs, type SnapshotStore } from '../store/snapshots';
import type { UploadLimits } from '../common/upload';
import { openSpooledLayer, readSpooledImages, spoolArchive, writeDockerArchive, type SaveImage } from './archive';
import { humanSize } from './import';
import { prepareLayer, type LayerStores } from './prepared-layer';

/** Removes spools of loads that a crash interrupted (called once at start-up). */
export function removeStaleSpools(spoolRoot: string): void {
  try {
    for (const n of fs.readdirSync(spoolRoot)) if (n.startsWith('load-')) fs.rmSync(path.join(spoolRoot, n), { recursive: true, force: true });
  } catch { /* no tmp dir yet */ }
}

export async function saveImages(images: ImageService, names: string[], open: () => Writable): Promise<void> {
  const list = await imagesToSave(images, names);
  await writeDockerArchive(list, {
    size: (d) => images.layerTarSize(d),
    open: (d) => images.openLayerTar(d),
  }, open());
}

/**
 * Docker's save name rules: a repository name alone means all its tags;
 * `name:tag` that tag; an id (or prefix) the image without tags. The same
 * image named twice is written once, with every tag asked for.
 */
async function imagesToSave(images: ImageService, names: string[]): Promise<SaveImage[]> {
  const byId = new Map<string, Set<string>>();
  const order: string[] = [];
  const add = (id: string, tag?: string) => {
    if (!byId.has(id)) { byId.set(id, new Set()); order.push(id); }
    if (tag) byId.get(id)!.add(tag);
  };
  for (const name of names) {
    let ref;
    try { ref = parseReference(name); } catch { ref = undefined; }
    if (ref && ref.tag === undefined && ref.digest === undefined) {
      const repo = familiarName(ref);
      const all = await images.list();
      const hits = all.flatMap((r) => r.repoTags.filter((t) => familiarName(parseReference(t)) === repo).map((t) => [r.id, t] as const));
      if (hits.length) { for (const [id, t] of hits) add(id, t); continue; }
    }
    const rec = await images.resolve(name);
    if (ref && ref.tag !== undefined && ref.digest === undefined) add(rec.id, familiarString(withDefaultTag(ref)));
    else add(rec.id);
  }
  const out: SaveImage[] = [];
  for (const id of order) {
    const rec = await images.resolve(id);
    out.push({
      id,
      repoTags: [...byId.get(id)!].map((t) => familiarString(referenceString(withDefaultTag(parseReference(t))))),
      configBytes: await images.configBytes(id),
      diffIDs: rec.config.rootfs?.diff_ids ?? [],
    });
  }
  return out;
}

/** What load needs of the image service beyond its interface: the stores speculative unpacking writes to. */
export interface LoadTarget extends LayerStores {
  service: ImageService;
  snapshots: SnapshotStore;
  /** Bounds on the bytes a load writes (size, free-disk reserve). */
  limits?: UploadLimits;
}

/**
 * Loads every image of the archive in `body`. The spool under `spoolRoot` is
 * gone before this settles, whether it succeeds or throws.
 */
export async function loadImages(target: LoadTarget, spoolRoot: string, body: Readable, opts: { quiet: boolean }, progress: ProgressSink): Promise<void> {
  const images = target.service;
  await fsp.mkdir(spoolRoot, { recursive: true, mode: 0o700 });
  const spoolDir = path.join(spoolRoot, `load-${randomBytes(8).toString('hex')}`);
  let spool;
  try {
    spool = await spoolArchive(body, spoolDir, { prepare: (src) => prepareLayer(target, src), limits: target.limits });
    const loaded = await readSpooledImages(spool);
    for (const img of loaded) {
      // Layers unpacked while the upload streamed are published now that the whole archive checked out;
      // createImageFromLayers then finds them in place (the rest it unpacks from the spool).
      const fresh = new Set<string>();
      let parent = '';
      for (const l of img.layers) {
        const chain = parent ? chainIDs([parent, l.diffID])[1] : l.diffID;
        const p = target.snapshots.hasLayer(chain) ? undefined : await l.prepared;
        if (p && p.diffID === l.diffID && (await p.commit(parent))) fresh.add(l.diffID.slice(7, 19));
        parent = chain;
      }
      const moved: string[] = [];
      for (const t of img.tags) {
        const old = await images.resolve(t).catch(() => undefined);
        if (old && old.id !== img.id) moved.push(`The image ${familiarString(t)} already exists, renaming the old one with ID ${old.id} to empty string`);
      }
      await images.createImageFromLayers({
        layers: img.layers.map((l) => ({ diffID: l.diffID, open: async () => openSpooledLayer(l) })),
        config: img.configBytes,
        tags: img.tags,
        eventAction: 'load',
        onProgress: (p) => {
          if (opts.quiet) return;
          if (p.status === 'Already exists' && p.id && fresh.has(p.id)) p = { ...p, status: 'Loading layer' };
          const layer = img.layers.find((l) => l.diffID.slice(7, 19) === p.id);
          if (p.status === 'Loading layer' && layer) {
            progress({
              status: 'Loading layer',
              progressDetail: { current: layer.size, total: layer.size },
              progress: `[${'='.repeat(49)}>]  ${humanSize(layer.size)}/${humanSize(layer.size)}`,
              id: p.id,
            });
          } else {
            progress({ status: p.status === 'Already exists' ? 'Layer already exists' : p.status, progressDetail: {}, id: p.id });
          }
        },
      });
      for (const m of moved) progress({ stream: m + '\n' });
      if (img.tags.length === 0) progress({ stream: `Loaded image ID: ${img.id}\n` });
      for (const t of img.tags) progress({ stream: `Loaded image: ${familiarString(t)}\n` });
    }
  } finally {
    // The spool goes before the answer ends, so a client never sees it linger.
    if (spool) await spool.discardPrepared().catch(() => undefined);
    await fsp.rm(spoolDir, { recursive: true, force: true });
  }
}
