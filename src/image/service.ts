/**
 * The image service: the one implementation of ImageService (src/engine/types.ts,
 * which lists what other areas and the API may ask of images). Its stores
 * (content, image metadata, snapshots) stay inside the image area.
 * Errors are BerthErrors worded as Docker words them.
 *
 * Over 500 lines: Docker's rmi/prune rules (conflicts, untag-before-delete, dangling
 * parents) and the inspect/history/summary shapes all read the same image store
 * entries; save/load live in save-load.ts, archive formats in archive.ts.
 */
import type { Readable, Writable } from 'node:stream';
import type { DaemonConfig } from '../engine/config';
import type { UploadLimits } from '../common/upload';
import type { EventBus } from '../engine/events';
import type {
  CreateImageOptions, DeleteItem, ImageDiskUsage, ImageRecord, ImageService, MountSpec, OciImageConfig, PreparedRootfs, ProgressSink,
} from '../engine/types';
import { BerthError, conflict, invalidArgument, notFound } from '../common/errors';
import {
  familiarString, isFullIdentifier, normalizeName, parseReference, referenceString, withDefaultTag, familiarName,
} from '../common/reference';
import { ContentStore, type Ingest } from '../store/content';
import { ImageStore, type ImageEntry } from '../store/imagestore';
import { SnapshotStore, chainIDs, type PreparedUnpack } from '../store/snapshots';
import { decompressed } from '../common/compression';
import { TarSplitter, assembleTar } from '../store/tarsplit';
import * as path from 'node:path';
import { labelMatches } from '../common/labels';
import { loadImages, removeStaleSpools, saveImages } from './save-load';

export type { CreateImageOptions, DeleteItem, LayerInput } from '../engine/types';

const shortId = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

/**
 * Builds the image service. The concrete type is returned for the image area's own
 * code and tests (its stores); every other area sees it as ImageService.
 */
export async function createImageService(config: DaemonConfig, events: EventBus): Promise<ImageServiceImpl> {
  const content = new ContentStore(path.join(config.dataRoot, 'content'));
  await content.open();
  const snapshots = new SnapshotStore(config.dataRoot);
  await snapshots.open();
  const store = new ImageStore(config.dataRoot, content);
  await store.open();
  const spoolRoot = path.join(config.dataRoot, 'tmp');
  removeStaleSpools(spoolRoot);
  return new ImageServiceImpl(store, content, snapshots, events, spoolRoot,
    { maxBytes: config.limits.uploadBodyBytes, minFreeBytes: config.limits.minFreeDiskBytes });
}

export class ImageServiceImpl implements ImageService {
  private usageProbe: (imageId: string) => Promise<string[]> = async () => [];
  /** Container snapshot removals waiting for their unmount (see removeContainerRootfs). */
  private readonly rootfsRemovals = new Set<Promise<void>>();

  constructor(
    private store: ImageStore, readonly content: ContentStore, readonly snapshots: SnapshotStore, private events: EventBus,
    /** Where load spools an upload (<data-root>/tmp). */
    private spoolRoot: string,
    /** Bounds on what a load may write to disk (daemon.json "api-limits"). */
    private uploadLimits?: UploadLimits,
  ) {}

  // ---- resolution ----

  /** Docker's GetImage: id, reference, then unique id prefix. */
  private lookup(ref: string): ImageEntry {
    const raw = ref.trim();
    if (/^sha256:[a-f0-9]{64}$/.test(raw)) {
      const e = this.store.get(raw);
      if (e) return e;
      throw notFound(`No such image: ${raw}`);
    }
    if (isFullIdentifier(raw)) {
      const e = this.store.get('sha256:' + raw);
      if (e) return e;
      throw notFound(`No such image: ${raw}`);
    }
    let notFoundName = raw;
    try {
      const parsed = withDefaultTag(parseReference(raw));
      notFoundName = familiarString(parsed);
      if (parsed.digest === undefined) {
        const id = this.store.tagTarget(referenceString(parsed));
        if (id) return this.store.get(id)!;
      } else {
        const id = this.store.byRepoDigest(referenceString({ domain: parsed.domain, path: parsed.path, digest: parsed.digest }));
        if (id) return this.store.get(id)!;
      }
    } catch (err) {
      if (!(err instanceof BerthError)) throw err;
      // Not a valid reference: may still be an id prefix (e.g. with uppercase? no) - fall through.
    }
    const hex = raw.startsWith('sha256:') ? raw.slice(7) : raw;
    if (/^[a-f0-9]+$/.test(hex) && hex.length > 0) {
      const ids = this.store.searchPrefix(hex);
      if (ids.length === 1) return this.store.get(ids[0])!;
      if (ids.length > 1) throw invalidArgument(`ambiguous image id prefix: ${raw}`);
    }
    throw notFound(`No such image: ${notFoundName}`);
  }

  private record(e: ImageEntry): ImageRecord {
    return {
      id: e.id,
      repoTags: this.repoTags(e.id),
      repoDigests: this.repoDigests(e.id),
      config: e.config,
      size: e.layerSizes.reduce((a, b) => a + b, 0),
      parent: e.parent,
      created: e.config.created ?? e.added,
    };
  }

  private repoDigests(id: string): string[] {
    return (this.store.get(id)?.repoDigests ?? []).map((r) => familiarString(r));
  }

  async addRepoDigest(id: string, fullRepoDigest: string): Promise<void> {
    await this.store.addRepoDigest(id, fullRepoDigest);
  }

  async hasLayers(diffIDs: string[]): Promise<boolean> {
    const chain = chainIDs(diffIDs);
    if (!chain.length) return true;
    return !!this.snapshots.getLayer(chain[chain.length - 1]) && (await this.hasLayerTar(diffIDs[diffIDs.length - 1]));
  }

  private repoTags(id: string): string[] {
    return this.store.refsOf(id).map((r) => familiarString(r));
  }

  async resolve(ref: string): Promise<ImageRecord> {
    return this.record(this.lookup(ref));
  }

  async list(): Promise<ImageRecord[]> {
    return this.store.all().map((e) => this.record(e));
  }

  // ---- container rootfs ----

  /** Unpacked directory of a layer (for the image area's tests and tools). */
  layerPath(chainID: string): string {
    return this.snapshots.layerPath(chainID);
  }

  private topChain(e: ImageEntry): string {
    const chain = chainIDs(e.config.rootfs?.diff_ids ?? []);
    return chain.length ? chain[chain.length - 1] : '';
  }

  async unpackRecordingSplit<T>(unpack: (split: TarSplitter) => Promise<T>): Promise<{ result: T; ingest: Ingest; split: TarSplitter }> {
    const ingest = this.content.newIngest();
    const split = new TarSplitter(ingest.stream);
    try {
      const result = await unpack(split);
      await new Promise<void>((resolve, reject) => {
        ingest.stream.once('error', reject);
        ingest.stream.end(() => resolve());
      });
      return { result, ingest, split };
    } catch (err) {
      await ingest.abort();
      throw err;
    }
  }

  async prepareContainerRootfs(containerId: string, imageId: string): Promise<PreparedRootfs> {
    if (!imageId) return this.snapshots.prepareContainer(containerId, '', ''); // FROM scratch: no lower layers
    const e = this.lookup(imageId);
    return this.snapshots.prepareContainer(containerId, e.id, this.topChain(e));
  }

  async containerRootfsMount(containerId: string): Promise<MountSpec> {
    return this.snapshots.containerMount(containerId);
  }

  containerUpperDir(containerId: string): string {
    return this.snapshots.containerUpperDir(containerId);
  }

  async removeContainerRootfs(containerId: string, after?: Promise<unknown>): Promise<void> {
    if (!after) return this.snapshots.removeContainer(containerId);
    // Registered now, done once the caller's unmount finished: image removal waits for it.
    const done = after.catch(() => undefined).then(() => this.snapshots.removeContainer(containerId));
    this.rootfsRemovals.add(done);
    try { await done; } finally { this.rootfsRemovals.delete(done); }
  }

  setUsageProbe(probe: (imageId: string) => Promise<string[]>): void {
    this.usageProbe = probe;
  }

  /** Containers using an image: the container service's answer plus our own container snapshots. */
  private async usersOf(id: string): Promise<string[]> {
    await Promise.allSettled([...this.rootfsRemovals]);
    const fromProbe = await this.usageProbe(id).catch(() => [] as string[]);
    const fromSnapshots = this.snapshots.containers().filter((c) => c.imageId === id).map((c) => c.containerId);
    return [...new Set([...fromProbe, ...fromSnapshots])];
  }

  // ---- creation ----

  async createImageFromLayers(opts: CreateImageOptions): Promise<ImageRecord> {
    const layers = await this.unpackLayers(opts.layers, Math.max(1, opts.concurrency ?? 1), opts.onProgress ?? (() => undefined));
    const diffIDs = layers.map((l) => l.diffID);
    let configBytes: Buffer;
    if (Buffer.isBuffer(opts.config)) {
      configBytes = opts.config;
      let cfg: OciImageConfig;
      try { cfg = JSON.parse(configBytes.toString('utf8')); } catch { throw invalidArgument('invalid image config: not JSON'); }
      const want = cfg.rootfs?.diff_ids ?? [];
      if (want.length !== diffIDs.length || want.some((d, i) => d !== diffIDs[i])) {
        throw invalidArgument(`image config rootfs.diff_ids do not match the layers (${want.join(',')} vs ${diffIDs.join(',')})`);
      }
    } else {
      const cfg = { ...opts.config, rootfs: { type: 'layers' as const, diff_ids: diffIDs } };
      configBytes = Buffer.from(JSON.stringify(cfg));
    }
    const entry = await this.store.add(configBytes, layers, opts.parent ?? '');
    if (opts.eventAction) this.events.emitEvent('image', opts.eventAction, entry.id, { name: entry.id });
    for (const t of opts.tags ?? []) await this.tag(entry.id, t);
    return this.record(this.store.get(entry.id)!);
  }

  // ---- tags ----

  async tag(ref: string, newRef: string): Promise<void> {
    const e = this.lookup(ref);
    const full = normalizeName(newRef);
    if (parseReference(newRef).digest !== undefined) throw invalidArgument('refusing to create a tag with a digest reference');
    await this.store.setTag(full, e.id);
    this.events.emitEvent('image', 'tag', e.id, { name: familiarString(full) });
  }

  async untag(ref: string): Promise<boolean> {
    const full = normalizeName(ref);
    const id = this.store.tagTarget(full);
    const removed = await this.store.removeTag(full);
    if (removed && id) this.events.emitEvent('image', 'untag', id, { name: id });
    return removed;
  }

  // ---- removal ----

  async remove(ref: string, opts: { force?: boolean; noprune?: boolean } = {}): Promise<DeleteItem[]> {
    const force = !!opts.force;
    const prune = !opts.noprune;
    const img = this.lookup(ref);
    const id = img.id;
    const records: DeleteItem[] = [];
    const isIdRef = isIdPrefixOf(id, ref);
    let repoRefs = this.store.refsOf(id);
    let quiet = false;
    if (!isIdRef) {
      if (!force && repoRefs.length <= 1) {
        const users = await this.usersOf(id);
        if (users.length) {
          throw conflict(`conflict: unable to remove repository reference "${ref}" (must force) - container ${shortId(users[0])} is using its referenced image ${shortId(id)}`);
        }
      }
      const full = normalizeName(ref);
      await this.store.removeTag(full);
      records.push({ Untagged: familiarString(full) });
      this.events.emitEvent('image', 'untag', id, { name: id });
      repoRefs = this.store.refsOf(id);
      if (repoRefs.length > 0) return records;
      quiet = true;
    } else if (isSingleRepository(repoRefs)) {
      const c = await this.deleteConflict(id, force ? 'hard' : 'hard+soft-nonref');
      if (c) throw c.err;
      for (const r of repoRefs) {
        await this.store.removeTag(r);
        records.push({ Untagged: familiarString(r) });
        this.events.emitEvent('image', 'untag', id, { name: id });
      }
    }
    await this.deleteHelper(id, records, force, prune, quiet);
    return records;
  }

  /** Docker's checkImageDeleteConflict; `used` tells a conflict caused by a container. */
  private async deleteConflict(id: string, mode: 'hard' | 'hard+soft' | 'hard+soft-nonref'): Promise<{ err: BerthError; used: boolean } | undefined> {
    const short = shortId(id);
    if (this.store.children(id).length) {
      return { err: conflict(`conflict: unable to delete ${short} (cannot be forced) - image has dependent child images`), used: false };
    }
    if (mode === 'hard') return undefined;
    if (mode === 'hard+soft' && this.store.refsOf(id).length > 0) {
      return { err: conflict(`conflict: unable to delete ${short} (must be forced) - image is referenced in multiple repositories`), used: false };
    }
    const users = await this.usersOf(id);
    if (users.length) {
      return { err: conflict(`conflict: unable to delete ${short} (must be forced) - image is being used by stopped container ${shortId(users[0])}`), used: true };
    }
    return undefined;
  }

  private async deleteHelper(id: string, records: DeleteItem[], force: boolean, prune: boolean, quiet: boolean): Promise<void> {
    const c = await this.deleteConflict(id, force ? 'hard' : 'hard+soft');
    if (c) {
      // Docker stays quiet unless the image is dangling and unused.
      if (quiet && (this.store.refsOf(id).length > 0 || c.used)) return;
      throw c.err;
    }
    const img = this.store.get(id)!;
    const parent = img.parent;
    for (const r of this.store.refsOf(id)) {
      await this.store.removeTag(r);
      records.push({ Untagged: familiarString(r) });
      this.events.emitEvent('image', 'untag', id, { name: id });
    }
    await this.store.delete(id);
    this.events.emitEvent('image', 'delete', id, { name: id });
    records.push({ Deleted: id });
    const removed = await this.collectGarbage();
    for (const l of removed) records.push({ Deleted: l });
    if (!prune || !parent || !this.store.get(parent)) return;
    await this.deleteHelper(parent, records, false, true, true);
  }

  /** Removes layer snapshots and layer blobs no image or container uses. Returns removed chain IDs. */
  private async collectGarbage(): Promise<string[]> {
    const images = this.store.all();
    const tops = images.map((e) => this.topChain(e)).filter(Boolean);
    const removed = await this.snapshots.gc(tops);
    const usedDiffs = new Set(images.flatMap((e) => e.config.rootfs?.diff_ids ?? []));
    for (const l of this.snapshots.layers()) usedDiffs.add(l.diffID);
    for (const l of removed) {
      if (usedDiffs.has(l.diffID)) continue;
      await this.content.delete(l.diffID);
      await this.content.deleteSplit(l.diffID);
    }
    return removed.map((l) => l.chainID);
  }

  async prune(opts: { all?: boolean; filters?: Record<string, string[]> }): Promise<{ ImagesDeleted: DeleteItem[] | null; SpaceReclaimed: number }> {
    const filters = opts.filters ?? {};
    let all = !!opts.all;
    if (filters.dangling?.length) all = !filters.dangling.some((v) => v === 'true' || v === '1');
    const until = filters.until?.[0] ? parseUntil(filters.until[0]) : undefined;
    const deleted: DeleteItem[] = [];
    let reclaimed = 0;
    const layersBefore = new Map(this.snapshots.layers().map((l) => [l.chainID, l.size]));
    for (const img of this.store.all()) {
      if (!this.store.get(img.id)) continue; // removed as someone's parent meanwhile
      const refs = this.store.refsOf(img.id);
      if (!all && refs.length > 0) continue;
      if (this.store.children(img.id).length) continue;
      if ((await this.usersOf(img.id)).length) continue;
      if (until !== undefined && Date.parse(img.config.created ?? img.added) / 1000 >= until) continue;
      if (!matchLabels(img.config.config?.Labels ?? {}, filters.label ?? [], filters['label!'] ?? [])) continue;
      try {
        const items = await this.remove(img.id, { force: false, noprune: false });
        deleted.push(...items);
      } catch (err) {
        if (err instanceof BerthError && err.kind === 'conflict') continue;
        throw err;
      }
    }
    for (const [chain, size] of layersBefore) if (!this.snapshots.hasLayer(chain)) reclaimed += size;
    if (deleted.length) this.events.emitEvent('image', 'prune', '', { reclaimed: String(reclaimed) });
    return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  // ---- API shapes ----

  async inspect(ref: string, apiVersion = '1.47'): Promise<any> {
    const e = this.lookup(ref);
    const cfg = e.config;
    const size = e.layerSizes.reduce((a, b) => a + b, 0);
    const chain = chainIDs(cfg.rootfs?.diff_ids ?? []);
    const dirs = chain.map((c) => (this.snapshots.hasLayer(c) ? this.snapshots.layerPath(c) : '')).reverse();
    const graphData: Record<string, string> = {};
    if (dirs.length) {
      graphData.MergedDir = '';
      graphData.UpperDir = dirs[0];
      graphData.WorkDir = path.join(path.dirname(dirs[0]), 'work');
      if (dirs.length > 1) graphData.LowerDir = dirs.slice(1).join(':');
      delete graphData.MergedDir;
    }
    const out: any = {
      Id: e.id,
      RepoTags: this.repoTags(e.id),
      RepoDigests: this.repoDigests(e.id),
      Parent: e.parent,
      Comment: (cfg as any).comment ?? '',
      Created: cfg.created ?? e.added,
      DockerVersion: (cfg as any).docker_version ?? '',
      Author: cfg.author ?? '',
      Config: containerConfigOf(cfg),
      Architecture: cfg.architecture,
      ...((cfg as any).variant ? { Variant: (cfg as any).variant } : {}),
      Os: cfg.os,
      ...((cfg as any)['os.version'] ? { OsVersion: (cfg as any)['os.version'] } : {}),
      Size: size,
      GraphDriver: { Data: graphData, Name: 'overlay2' },
      RootFS: { Type: 'layers', Layers: cfg.rootfs?.diff_ids ?? [] },
      Metadata: { LastTagTime: e.lastTagTime || '0001-01-01T00:00:00Z' },
    };
    if (versionLess(apiVersion, '1.44')) out.VirtualSize = size;
    return out;
  }

  async history(ref: string): Promise<any[]> {
    const e = this.lookup(ref);
    const cfg = e.config;
    const diffIDs = cfg.rootfs?.diff_ids ?? [];
    const hist: NonNullable<OciImageConfig['history']> = cfg.history && cfg.history.length ? cfg.history : diffIDs.map(() => ({ created: cfg.created }));
    const out: any[] = [];
    let layerIndex = 0;
    for (const h of hist) {
      let size = 0;
      if (!h.empty_layer) {
        size = e.layerSizes[layerIndex] ?? 0;
        layerIndex++;
      }
      out.unshift({
        Comment: h.comment ?? '',
        Created: h.created ? Math.floor(Date.parse(h.created) / 1000) : 0,
        CreatedBy: h.created_by ?? '',
        Id: '<missing>',
        Size: size,
        Tags: null,
      });
    }
    if (out.length) {
      out[0].Id = e.id;
      const tags = this.repoTags(e.id);
      out[0].Tags = tags.length ? tags : null;
    }
    return out;
  }

  async summaries(opts: { all?: boolean; filters?: Record<string, string[]>; digests?: boolean; apiVersion?: string }): Promise<any[]> {
    const f = opts.filters ?? {};
    for (const k of Object.keys(f)) {
      if (!['dangling', 'label', 'label!', 'before', 'since', 'reference', 'until'].includes(k)) throw invalidArgument(`invalid filter '${k}'`);
    }
    let images = this.store.all();
    if (f.dangling?.length) {
      const v = f.dangling[0];
      if (!['true', 'false', '1', '0'].includes(v)) throw invalidArgument(`invalid filter 'dangling=${v}'`);
      const want = v === 'true' || v === '1';
      images = images.filter((i) => (this.store.refsOf(i.id).length === 0) === want);
    }
    const createdOf = (i: ImageEntry) => Date.parse(i.config.created ?? i.added);
    if (f.before?.length) {
      const t = createdOf(this.lookup(f.before[0]));
      images = images.filter((i) => createdOf(i) < t);
    }
    if (f.since?.length) {
      const t = createdOf(this.lookup(f.since[0]));
      images = images.filter((i) => createdOf(i) > t);
    }
    if (f.until?.length) {
      const t = parseUntil(f.until[0]) * 1000;
      images = images.filter((i) => createdOf(i) < t);
    }
    if (f.label?.length || f['label!']?.length) {
      images = images.filter((i) => matchLabels(i.config.config?.Labels ?? {}, f.label ?? [], f['label!'] ?? []));
    }
    const out: any[] = [];
    for (const i of images) {
      let refs = this.store.refsOf(i.id);
      // Without --all, hide untagged intermediate images that have children (Docker's rule).
      if (!opts.all && refs.length === 0 && this.store.children(i.id).length > 0) continue;
      if (f.reference?.length) {
        refs = refs.filter((r) => f.reference.some((pat) => matchReference(r, pat)));
        if (refs.length === 0) continue;
      }
      const size = i.layerSizes.reduce((a, b) => a + b, 0);
      const s: any = {
        Containers: -1,
        Created: Math.floor(createdOf(i) / 1000),
        Id: i.id,
        Labels: i.config.config?.Labels ?? null,
        ParentId: i.parent,
        RepoDigests: this.repoDigests(i.id),
        RepoTags: refs.map((r) => familiarString(r)),
        SharedSize: -1,
        Size: size,
      };
      if (versionLess(opts.apiVersion ?? '1.47', '1.44')) s.VirtualSize = size;
      if (versionLess(opts.apiVersion ?? '1.47', '1.43') && refs.length === 0) {
        s.RepoTags = ['<none>:<none>'];
        s.RepoDigests = ['<none>@<none>'];
      }
      out.push(s);
    }
    out.sort((a, b) => b.Created - a.Created || (a.Id < b.Id ? -1 : 1));
    return out;
  }

  async configBytes(id: string): Promise<Buffer> {
    return this.content.readBuffer(this.lookup(id).id);
  }

  /** The stored tar of a layer: a blob, or rebuilt from its tar-split record and files. */
  /** Byte length of a layer's tar as save streams it: rebuilt from the snapshot (tar-split) or stored whole. */
  async layerTarSize(diffID: string): Promise<number> {
    const snap = this.snapshots.layers().find((l) => l.diffID === diffID);
    if (snap && typeof snap.tarSize === 'number') return snap.tarSize;
    return this.content.size(diffID);
  }

  async openLayerTar(diffID: string): Promise<Readable> {
    if (await this.content.exists(diffID)) return this.content.readStream(diffID);
    const layer = this.snapshots.layers().find((l) => l.diffID === diffID);
    if (layer && (await this.content.hasSplit(diffID))) {
      return assembleTar(this.content.splitPath(diffID), this.snapshots.layerPath(layer.chainID), diffID);
    }
    throw notFound(`layer ${diffID} not found`);
  }

  // ---- archives and disk usage ----

  save(names: string[], open: () => Writable): Promise<void> {
    return saveImages(this, names, open);
  }

  load(body: Readable, opts: { quiet: boolean }, progress: ProgressSink): Promise<void> {
    return loadImages({ service: this, content: this.content, snapshots: this.snapshots, unpackRecordingSplit: (u) => this.unpackRecordingSplit(u), limits: this.uploadLimits }, this.spoolRoot, body, opts, progress);
  }

  /**
   * Image part of /system/df: every layer counted once in layersSize, and per
   * image the size of the layers it shares with other images.
   */
  async diskUsage(containerList: ReadonlyArray<{ ImageID: string }>, apiVersion?: string): Promise<ImageDiskUsage> {
    const containers = new Map<string, number>();
    for (const c of containerList) containers.set(c.ImageID, (containers.get(c.ImageID) ?? 0) + 1);
    const summaries = await this.summaries({ all: true, apiVersion });
    const layerSize = new Map<string, number>();
    const users = new Map<string, number>();
    const chains = new Map<string, string[]>();
    for (const s of summaries) {
      const e = this.store.get(s.Id);
      const chain = e ? chainIDs(e.config.rootfs?.diff_ids ?? []) : [];
      const sizes = e?.layerSizes ?? [];
      chains.set(s.Id, chain);
      chain.forEach((c, i) => { layerSize.set(c, sizes[i] ?? 0); users.set(c, (users.get(c) ?? 0) + 1); });
    }
    let layersSize = 0;
    for (const v of layerSize.values()) layersSize += v;
    const images = summaries.map((s) => {
      const shared = (chains.get(s.Id) ?? []).reduce((a, c) => a + ((users.get(c) ?? 0) > 1 ? layerSize.get(c) ?? 0 : 0), 0);
      return { ...s, Containers: containers.get(s.Id) ?? 0, SharedSize: shared };
    });
    return { layersSize, images };
  }

  /**
   * Unpacks what is missing of a layer list: layers whose chain is already there are skipped
   * unread; the others are unpacked into unpublished snapshots, up to `concurrency` at once (a
   * layer directory does not depend on its parent, only its chain ID does). Nothing is published
   * until every one unpacked and checked out: then all go in with one metadata write, so a
   * failure (a bad tar, a stream that errors, a diffID mismatch) leaves no layer behind.
   */
  private async unpackLayers(inputs: CreateImageOptions['layers'], concurrency: number, progress: NonNullable<CreateImageOptions['onProgress']>): Promise<Array<{ diffID: string; tarSize: number; size: number }>> {
    type Unpacked = { prep: PreparedUnpack; ingest: Ingest; split: TarSplitter };
    // Chains computable before unpacking: every diffID up to there is known.
    const known: Array<string | undefined> = [];
    for (const input of inputs) {
      const below = known.length ? known[known.length - 1] : '';
      known.push(input.diffID && below !== undefined ? (below ? chainIDs([below, input.diffID])[1] : input.diffID) : undefined);
    }
    const skip = await Promise.all(inputs.map(async (input, i) => !!input.diffID && !!known[i] && this.snapshots.hasLayer(known[i]!) && (await this.hasLayerTar(input.diffID))));
    const done: Array<Unpacked | undefined> = [];
    const opened = new Set<Readable>();
    // Biggest first (when sizes are known): the longest unpack starts at once instead of last.
    const todo = inputs.map((_, i) => i).filter((i) => !skip[i]).sort((a, b) => (inputs[b].size ?? 0) - (inputs[a].size ?? 0));
    let next = 0;
    let failure: { err: unknown } | undefined;
    const worker = async () => {
      while (next < todo.length && !failure) {
        const i = todo[next++];
        let src: Readable | undefined;
        try {
          src = await inputs[i].open();
          opened.add(src);
          const s = src;
          const adopt = inputs[i].adoptContainer;
          const { result: prep, ingest, split } = await this.unpackRecordingSplit((rec) => (adopt
            ? this.snapshots.prepareAdopted(adopt, s, { split: rec }) // a build step's upper dir: no second copy
            : this.snapshots.prepareLayer(s, { split: rec })));
          done[i] = { prep, ingest, split };
        } catch (err) {
          // The first failure stops the others (their streams are destroyed): the image will not be made.
          if (!failure) { failure = { err }; for (const o of opened) o.destroy(); }
        } finally {
          if (src) opened.delete(src);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, todo.length) }, worker));
    const discardAll = async () => {
      for (const u of done) if (u) { await u.ingest.abort(); await this.snapshots.discardPrepared(u.prep); }
    };
    if (failure) { await discardAll(); throw failure.err; }

    const out: Array<{ diffID: string; tarSize: number; size: number }> = [];
    try {
      inputs.forEach((input, i) => {
        const u = done[i];
        if (!u) { out.push({ diffID: input.diffID!, tarSize: this.snapshots.getLayer(known[i]!)!.tarSize, size: this.snapshots.getLayer(known[i]!)!.size }); return; }
        const diffID = u.prep.apply.diffID;
        if (input.diffID && input.diffID !== diffID) throw invalidArgument(`layer diffID mismatch: expected ${input.diffID}, got ${diffID}`);
        out.push({ diffID, tarSize: u.prep.apply.tarSize, size: u.prep.apply.size });
      });
    } catch (err) {
      await discardAll();
      throw err;
    }
    let committed;
    try {
      committed = await this.snapshots.commitPreparedChain(out.map((l, i) => ({ diffID: l.diffID, prep: done[i]?.prep })));
    } catch (err) {
      await discardAll();
      throw err;
    }
    // The layer tar is not kept twice: a tar-split record plus the unpacked files rebuild it (tarsplit.ts).
    await Promise.all(inputs.map(async (input, i) => {
      const u = done[i];
      if (!u) return;
      const diffID = out[i].diffID;
      if (await this.hasLayerTar(diffID)) {
        await u.ingest.abort();
      } else if (!u.split.broken) {
        await u.ingest.commitAs(this.content.splitPath(diffID));
      } else {
        // Rare: the tar overwrites its own entries, so the files can not give it back; keep the tar itself.
        await u.ingest.abort();
        await this.content.writeStream((await decompressed(await input.open())).stream, { digest: diffID });
      }
      await this.snapshots.discardPrepared(u.prep);
    }));
    inputs.forEach((_, i) => {
      out[i].size = committed[i].layer.size;
      progress({ id: shortId(out[i].diffID), status: done[i] && !committed[i].existed ? 'Loading layer' : 'Already exists' });
    });
    return out;
  }

  private async hasLayerTar(diffID: string): Promise<boolean> {
    return (await this.content.exists(diffID)) || (await this.content.hasSplit(diffID));
  }
}

/** isImageIDPrefix of moby: the reference given is (a prefix of) the image id. */
function isIdPrefixOf(id: string, ref: string): boolean {
  const hex = id.slice('sha256:'.length);
  const r = ref.startsWith('sha256:') ? ref.slice(7) : ref;
  return r.length > 0 && hex.startsWith(r) && (ref.startsWith('sha256:') || /^[a-f0-9]+$/.test(r));
}

/** All references are in one repository (isSingleReference of moby). */
function isSingleRepository(refs: string[]): boolean {
  const repos = new Set(refs.map((r) => familiarName(parseReference(r))));
  return repos.size <= 1;
}

/** The Config of inspect: the container-config shape Docker shows, filled from the image config. */
function containerConfigOf(cfg: OciImageConfig): Record<string, unknown> {
  const c = (cfg.config ?? {}) as Record<string, unknown>;
  return {
    Hostname: '',
    Domainname: '',
    User: c.User ?? '',
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    ...(c.ExposedPorts ? { ExposedPorts: c.ExposedPorts } : {}),
    Tty: false,
    OpenStdin: false,
    StdinOnce: false,
    Env: c.Env ?? null,
    Cmd: c.Cmd ?? null,
    ...(c.Healthcheck ? { Healthcheck: c.Healthcheck } : {}),
    ...(c.ArgsEscaped ? { ArgsEscaped: c.ArgsEscaped } : {}),
    Image: '',
    Volumes: c.Volumes ?? null,
    WorkingDir: c.WorkingDir ?? '',
    Entrypoint: c.Entrypoint ?? null,
    OnBuild: c.OnBuild ?? null,
    Labels: c.Labels ?? null,
    ...(c.StopSignal ? { StopSignal: c.StopSignal } : {}),
    ...(c.Shell ? { Shell: c.Shell } : {}),
  };
}

function versionLess(a: string, b: string): boolean {
  const [a1, a2] = a.split('.').map(Number);
  const [b1, b2] = b.split('.').map(Number);
  return a1 < b1 || (a1 === b1 && a2 < b2);
}

function matchLabels(labels: Record<string, string>, want: string[], notWant: string[]): boolean {
  const has = (spec: string) => labelMatches(labels, spec);
  return want.every(has) && !notWant.some(has);
}

/** `until` filter: unix seconds, RFC 3339 date, or a Go duration ago (`24h`, `10m`). */
function parseUntil(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const dur = /^(\d+(?:\.\d+)?)(h|m|s)$/.exec(v);
  if (dur) return Date.now() / 1000 - Number(dur[1]) * ({ h: 3600, m: 60, s: 1 } as Record<string, number>)[dur[2]];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw invalidArgument(`failed to parse value as time or duration: "${v}"`);
  return t / 1000;
}

/**
 * The `reference` filter: a glob against the familiar name (`busybox`,
 * `busybox:latest`, `busy*`, `*:1.0`), as Docker's reference.FamiliarMatch.
 */
function matchReference(fullRef: string, pattern: string): boolean {
  const fam = familiarString(fullRef);
  const famName = fam.replace(/:[^:/]+$/, '');
  const re = globToRegExp(pattern);
  return re.test(fam) || re.test(famName) || re.test(fullRef);
}

function globToRegExp(glob: string): RegExp {
  let s = '';
  for (const ch of glob) {
    if (ch === '*') s += '[^/]*';
    else if (ch === '?') s += '[^/]';
    else s += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${s}$`);
}
