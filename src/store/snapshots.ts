/**
 * Snapshots: one unpacked directory per layer chain ID, plus one writable
 * snapshot per container.
 *
 *   <dataRoot>/snapshots/<n>/fs          layer contents (overlay lowerdir)
 *   <dataRoot>/snapshots/<n>/{fs,work}   container upperdir + workdir
 *   <dataRoot>/snapshots/empty/fs        lower dir for images without layers
 *   <dataRoot>/snapshots/tmp-*           unpacks in progress
 *   <dataRoot>/metadata/snapshots.json   chainID/container -> n, parent, size
 *
 * Short numeric directory names keep overlay's lowerdir option short.
 * A layer is unpacked into tmp-*, renamed to <n> when complete, then the
 * metadata is written atomically; open() removes tmp-* and any numbered
 * directory the metadata does not know (a crash between rename and write).
 */
import { Mutex } from '../common/mutex';
import { execFile } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import type { MountSpec, PreparedRootfs } from '../engine/types';
import { readJsonIfExists, writeJsonAtomic } from '../common/atomic';
import { notFound, conflict } from '../common/errors';
import { applyLayer, type ApplyResult, type ApplyOptions } from './layer';

export interface LayerSnapshot {
  /** Directory number under snapshots/. */
  n: number;
  chainID: string;
  diffID: string;
  /** Chain ID of the layer below, '' for a base layer. */
  parent: string;
  /** Unpacked size of this layer alone. */
  size: number;
  /** Length of the uncompressed layer tar. */
  tarSize: number;
  created: string;
}

export interface ContainerSnapshot {
  n: number;
  containerId: string;
  imageId: string;
  /** Chain ID of the image's top layer ('' for an image without layers). */
  parent: string;
}

/** A layer unpacked into a temp directory, not yet published (prepareLayer). */
export interface PreparedUnpack { tmp: string; apply: ApplyResult }

interface SnapshotMeta {
  next: number;
  layers: Record<string, LayerSnapshot>;
  containers: Record<string, ContainerSnapshot>;
}

/** OCI chain ID: chain(L0)=diffID0; chain(Ln)=sha256(chain(Ln-1) + " " + diffIDn). */
export function chainIDs(diffIDs: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIDs) {
    if (out.length === 0) out.push(d);
    else out.push('sha256:' + createHash('sha256').update(`${out[out.length - 1]} ${d}`).digest('hex'));
  }
  return out;
}

/**
 * ext4's "top of a directory hierarchy" flag (chattr +T): each layer directory made under it is
 * placed in a block group of its own choosing (Orlov) instead of next to its siblings. On an
 * ext4 without a journal, creating a file in a group scans past every inode freed there in the
 * last minutes (recently_deleted()), so unpacking a layer next to the one an rmi just removed
 * cost seconds of kernel time for 5 000 files. Best effort: other filesystems refuse it.
 */
function markTopDir(dir: string): Promise<void> {
  return new Promise((resolve) => {
    execFile('chattr', ['+T', dir], { timeout: 5000 }, () => resolve());
  });
}

export class SnapshotStore {
  readonly dir: string;
  private metaFile: string;
  private meta: SnapshotMeta = { next: 1, layers: {}, containers: {} };
  /** Serialises metadata updates. */
  private readonly lock = new Mutex();
  /** Unpacks in flight, so two loads of the same chain unpack once. */
  private inflight = new Map<string, Promise<LayerSnapshot>>();

  constructor(dataRoot: string) {
    this.dir = path.join(dataRoot, 'snapshots');
    this.metaFile = path.join(dataRoot, 'metadata', 'snapshots.json');
  }

  async open(): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fsp.mkdir(path.dirname(this.metaFile), { recursive: true, mode: 0o700 });
    this.meta = (await readJsonIfExists<SnapshotMeta>(this.metaFile)) ?? { next: 1, layers: {}, containers: {} };
    const known = new Set<string>([
      ...Object.values(this.meta.layers).map((l) => String(l.n)),
      ...Object.values(this.meta.containers).map((c) => String(c.n)),
      'empty',
    ]);
    for (const name of await fsp.readdir(this.dir)) {
      if (!known.has(name)) await fsp.rm(path.join(this.dir, name), { recursive: true, force: true });
    }
    await fsp.mkdir(this.emptyDir(), { recursive: true, mode: 0o755 });
    await markTopDir(this.dir);
  }

  private emptyDir(): string {
    return path.join(this.dir, 'empty', 'fs');
  }

  private withLock<T>(fn: () => Promise<T>): Promise<T> {
    return this.lock.run(fn);
  }

  private async save(): Promise<void> {
    await writeJsonAtomic(this.metaFile, this.meta);
  }

  fsPath(n: number): string {
    return path.join(this.dir, String(n), 'fs');
  }

  getLayer(chainID: string): LayerSnapshot | undefined {
    return this.meta.layers[chainID];
  }

  hasLayer(chainID: string): boolean {
    return chainID in this.meta.layers;
  }

  layers(): LayerSnapshot[] {
    return Object.values(this.meta.layers);
  }

  /** Directory holding the unpacked layer with this chain ID. */
  layerPath(chainID: string): string {
    const l = this.meta.layers[chainID];
    if (!l) throw notFound(`snapshot ${chainID} not found`);
    return this.fsPath(l.n);
  }

  /**
   * Unpacks a layer tar whose chain ID is not known in advance (the diffID is
   * computed while streaming). If the resulting chain already exists the
   * fresh copy is discarded and `existed` is true.
   */
  async unpackLayer(parentChainID: string, tarStream: Readable, applyOpts: ApplyOptions = {}): Promise<{ layer: LayerSnapshot; existed: boolean; apply: ApplyResult }> {
    if (parentChainID && !this.hasLayer(parentChainID)) throw notFound(`parent snapshot ${parentChainID} not found`);
    const prep = await this.prepareLayer(tarStream, applyOpts);
    try {
      return { ...(await this.commitPrepared(parentChainID, prep)), apply: prep.apply };
    } finally {
      await this.discardPrepared(prep);
    }
  }

  /**
   * Unpacks a layer into a temp directory without publishing it (a layer
   * directory does not depend on its parent; only its chain ID does).
   */
  async prepareLayer(tarStream: Readable, applyOpts: ApplyOptions = {}): Promise<PreparedUnpack> {
    const tmp = path.join(this.dir, `tmp-${randomBytes(8).toString('hex')}`);
    await fsp.mkdir(path.join(tmp, 'fs'), { recursive: true, mode: 0o700 });
    try {
      await fsp.chmod(path.join(tmp, 'fs'), 0o755);
      return { tmp, apply: await applyLayer(tarStream, path.join(tmp, 'fs'), applyOpts) };
    } catch (err) {
      await fsp.rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /** Publishes a prepared layer on top of `parentChainID`; if that chain exists already the copy is left for discardPrepared. */
  async commitPrepared(parentChainID: string, prep: PreparedUnpack): Promise<{ layer: LayerSnapshot; existed: boolean }> {
    if (parentChainID && !this.hasLayer(parentChainID)) throw notFound(`parent snapshot ${parentChainID} not found`);
    const { apply, tmp } = prep;
    const chainID = parentChainID ? chainIDs([parentChainID, apply.diffID])[1] : apply.diffID;
    return this.withLock(async () => {
      const existing = this.meta.layers[chainID];
      if (existing) return { layer: existing, existed: true };
      const n = this.meta.next++;
      await fsp.rename(tmp, path.join(this.dir, String(n)));
      const layer: LayerSnapshot = { n, chainID, diffID: apply.diffID, parent: parentChainID, size: apply.size, tarSize: apply.tarSize, created: new Date().toISOString() };
      this.meta.layers[chainID] = layer;
      await this.save();
      return { layer, existed: false };
    });
  }

  /**
   * Publishes a chain of layers at once (base first): those with a prepared copy go in unless
   * their chain exists already (that copy is left for discardPrepared), the others must exist.
   * One metadata write for all.
   */
  async commitPreparedChain(items: Array<{ diffID: string; prep?: PreparedUnpack }>): Promise<Array<{ layer: LayerSnapshot; existed: boolean }>> {
    const chains = chainIDs(items.map((x) => x.diffID));
    return this.withLock(async () => {
      const out: Array<{ layer: LayerSnapshot; existed: boolean }> = [];
      let added = false;
      try {
        for (let i = 0; i < items.length; i++) {
          const chainID = chains[i];
          const existing = this.meta.layers[chainID];
          const prep = items[i].prep;
          if (existing || !prep) {
            if (!existing) throw notFound(`snapshot ${chainID} not found`);
            out.push({ layer: existing, existed: true });
            continue;
          }
          const n = this.meta.next++;
          await fsp.rename(prep.tmp, path.join(this.dir, String(n)));
          const { apply } = prep;
          const layer: LayerSnapshot = { n, chainID, diffID: apply.diffID, parent: i ? chains[i - 1] : '', size: apply.size, tarSize: apply.tarSize, created: new Date().toISOString() };
          this.meta.layers[chainID] = layer;
          added = true;
          out.push({ layer, existed: false });
        }
      } finally {
        // Renamed directories are recorded even when a later one failed (open() would delete them otherwise).
        if (added) await this.save();
      }
      return out;
    });
  }

  /**
   * A stopped container's upper dir as a prepared layer, in place (no copy): `tarStream` is that
   * dir as a layer tar (its diffID and tar-split record are computed from it, nothing is
   * written). The container's snapshot is forgotten first, then its dir becomes a tmp-* one,
   * so a crash at any point leaves a dir open() deletes, never one owned twice.
   */
  async prepareAdopted(containerId: string, tarStream: Readable, applyOpts: ApplyOptions = {}): Promise<PreparedUnpack> {
    const c = this.meta.containers[containerId];
    if (!c) throw notFound(`container snapshot ${containerId} not found`);
    const apply = await applyLayer(tarStream, this.fsPath(c.n), { ...applyOpts, recordOnly: true });
    const tmp = path.join(this.dir, `tmp-${randomBytes(8).toString('hex')}`);
    await this.withLock(async () => {
      if (this.meta.containers[containerId] !== c) throw notFound(`container snapshot ${containerId} not found`);
      delete this.meta.containers[containerId];
      await this.save();
      await fsp.rename(path.join(this.dir, String(c.n)), tmp);
    });
    await fsp.rm(path.join(tmp, 'work'), { recursive: true, force: true });
    return { tmp, apply };
  }

  /** Removes a prepared layer's temp directory (a no-op once committed). */
  async discardPrepared(prep: PreparedUnpack): Promise<void> {
    await fsp.rm(prep.tmp, { recursive: true, force: true });
  }

  /**
   * Unpacks a layer whose diffID is known (load/import with a manifest):
   * skipped when the chain exists, deduplicated when already in flight.
   * `open` is only called when an unpack is needed.
   */
  async ensureLayer(parentChainID: string, diffID: string, open: () => Promise<Readable>, tee?: () => Writable | undefined): Promise<{ layer: LayerSnapshot; existed: boolean }> {
    const chainID = parentChainID ? chainIDs([parentChainID, diffID])[1] : diffID;
    const have = this.meta.layers[chainID];
    if (have) return { layer: have, existed: true };
    let p = this.inflight.get(chainID);
    if (p) return { layer: await p, existed: true };
    p = (async () => {
      const t = tee?.();
      const r = await this.unpackLayer(parentChainID, await open(), t ? { tee: t } : {});
      if (r.layer.diffID !== diffID) {
        if (!r.existed) await this.removeLayer(r.layer.chainID).catch(() => undefined);
        throw conflict(`layer digest mismatch: expected diffID ${diffID}, got ${r.apply.diffID}`);
      }
      return r.layer;
    })();
    this.inflight.set(chainID, p);
    try {
      return { layer: await p, existed: false };
    } finally {
      this.inflight.delete(chainID);
    }
  }

  /** Lower directories for a chain, topmost first (overlay's lowerdir order). */
  lowerDirs(topChainID: string): string[] {
    if (!topChainID) return [this.emptyDir()];
    const out: string[] = [];
    let cur = topChainID;
    while (cur) {
      const l = this.meta.layers[cur];
      if (!l) throw notFound(`snapshot ${cur} not found`);
      out.push(this.fsPath(l.n));
      cur = l.parent;
    }
    return out;
  }

  /** Chain IDs of a chain, base first. */
  chain(topChainID: string): string[] {
    const out: string[] = [];
    let cur = topChainID;
    while (cur) {
      const l = this.meta.layers[cur];
      if (!l) break;
      out.unshift(cur);
      cur = l.parent;
    }
    return out;
  }

  /**
   * Makes a container snapshot. Resolves once its directories exist, so the rootfs can be
   * mounted while the metadata is written; `persisted` settles when that write is durable.
   * If the write fails the snapshot stays known in memory: the caller removes it
   * (removeContainer) as part of undoing the create.
   */
  async prepareContainer(containerId: string, imageId: string, topChainID: string): Promise<PreparedRootfs> {
    if (topChainID) this.lowerDirs(topChainID); // throws when a layer is missing
    let dirsReady!: () => void;
    const ready = new Promise<void>((resolve) => { dirsReady = resolve; });
    const persisted = this.withLock(async () => {
      if (this.meta.containers[containerId]) throw conflict(`container snapshot ${containerId} already exists`);
      const n = this.meta.next++;
      const d = path.join(this.dir, String(n));
      try {
        await Promise.all([
          fsp.mkdir(path.join(d, 'fs'), { recursive: true, mode: 0o755 }),
          fsp.mkdir(path.join(d, 'work'), { recursive: true, mode: 0o700 }),
        ]);
      } catch (err) {
        await fsp.rm(d, { recursive: true, force: true });
        throw err;
      }
      this.meta.containers[containerId] = { n, containerId, imageId, parent: topChainID };
      dirsReady();
      await this.save();
    });
    // Before the directories exist, a failure is the caller's answer; after, `persisted` carries it.
    await Promise.race([ready, persisted]);
    persisted.catch(() => undefined);
    return { mount: this.containerMount(containerId), persisted };
  }

  containerMount(containerId: string): MountSpec {
    const c = this.meta.containers[containerId];
    if (!c) throw notFound(`no rootfs for container ${containerId}`);
    const d = path.join(this.dir, String(c.n));
    return {
      type: 'overlay',
      source: 'overlay',
      options: [
        `lowerdir=${this.lowerDirs(c.parent).join(':')}`,
        `upperdir=${path.join(d, 'fs')}`,
        `workdir=${path.join(d, 'work')}`,
      ],
    };
  }

  getContainer(containerId: string): ContainerSnapshot | undefined {
    return this.meta.containers[containerId];
  }

  containers(): ContainerSnapshot[] {
    return Object.values(this.meta.containers);
  }

  /** Upper dir path; stable even before the snapshot exists is not promised. */
  containerUpperDir(containerId: string): string {
    const c = this.meta.containers[containerId];
    if (!c) throw notFound(`no rootfs for container ${containerId}`);
    return path.join(this.dir, String(c.n), 'fs');
  }

  async removeContainer(containerId: string): Promise<void> {
    await this.withLock(async () => {
      const c = this.meta.containers[containerId];
      if (!c) return;
      delete this.meta.containers[containerId];
      await this.save();
      // Metadata first: a crash after it leaves an unknown dir that open() deletes.
      await fsp.rm(path.join(this.dir, String(c.n)), { recursive: true, force: true });
    });
  }

  /** Removes one layer snapshot; refuses when a child layer or container still stands on it. */
  async removeLayer(chainID: string): Promise<void> {
    await this.withLock(async () => {
      const l = this.meta.layers[chainID];
      if (!l) return;
      if (Object.values(this.meta.layers).some((x) => x.parent === chainID)) throw conflict(`snapshot ${chainID} has children`);
      if (Object.values(this.meta.containers).some((c) => c.parent && this.chain(c.parent).includes(chainID))) throw conflict(`snapshot ${chainID} is in use by a container`);
      delete this.meta.layers[chainID];
      await this.save();
      await fsp.rm(path.join(this.dir, String(l.n)), { recursive: true, force: true });
    });
  }

  /**
   * Removes every layer snapshot not reachable from `keepTops` (the top chain
   * IDs of all images) nor from any container snapshot. Returns removed chain IDs.
   */
  async gc(keepTops: string[]): Promise<LayerSnapshot[]> {
    return this.withLock(async () => {
      const keep = new Set<string>();
      const mark = (top: string) => { for (const c of this.chain(top)) keep.add(c); };
      keepTops.forEach(mark);
      for (const c of Object.values(this.meta.containers)) if (c.parent) mark(c.parent);
      // Top layers first, as Docker lists them.
      const removed = Object.values(this.meta.layers).filter((l) => !keep.has(l.chainID))
        .sort((a, b) => this.chain(b.chainID).length - this.chain(a.chainID).length);
      if (removed.length === 0) return [];
      for (const l of removed) delete this.meta.layers[l.chainID];
      await this.save();
      for (const l of removed) await fsp.rm(path.join(this.dir, String(l.n)), { recursive: true, force: true });
      return removed;
    });
  }
}
