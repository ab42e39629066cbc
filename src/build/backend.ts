/**
 * The BuildBackend over the engine's image and container services: RUN steps
 * are real containers (runc, on the build's network: default bridge, host, none or a user network); COPY writes
 * into a fresh overlay snapshot mounted on the host; a step's layer is its
 * overlay upper dir, captured as commit captures one. The cache index is a
 * small JSON file under <data-root>/builder (survives restarts).
 */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import * as tar from 'tar-stream';
import { readJsonIfExists, writeJsonAtomic } from '../common/atomic';
import { BerthError, isKind } from '../common/errors';
import { parseReference } from '../common/reference';
import { StdcopyDecoder } from '../common/stdcopy';
import type { DaemonConfig } from '../engine/config';
import type {
  BuildBackend, BuildCacheEntry, BuildStepLayer, ContainerService, DistributionService, ImageRecord, ImageService, LayerInput, OciImageConfig,
  ProgressSink, RegistryAuth, RunStepOptions,
} from '../engine/types';
import { mountSpec, unmount } from '../store/mount';
import { CONTAINER_MOUNTPOINTS, mountpointOnlyDirs, scanUpperDir, upperDirToLayerTar } from '../store/changes';

interface StepLayer extends BuildStepLayer {
  /** A container of the container service (RUN), or a bare snapshot (COPY). */
  kind: 'container' | 'snapshot';
  /** Mount targets of the step (runc may create them in the upper dir): not the step's changes. */
  stubs?: string[];
  /** A private host directory holding the step's secret files, removed with the layer. */
  secretDir?: string;
  /** Its in-flight note (builder/inflight/<name>). */
  name: string;
}

export class EngineBuildBackend implements BuildBackend {
  private readonly dir: string;
  private readonly indexFile: string;
  /** One file per step container/snapshot in flight (its name): what a crash mid-step leaves, recover() removes. */
  private readonly inflightDir: string;
  private index: Map<string, BuildCacheEntry> | undefined;
  /** Index writes one at a time, in order. */
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly config: DaemonConfig, private readonly images: ImageService, private readonly containers: ContainerService,
    private readonly distribution: DistributionService) {
    this.dir = path.join(config.dataRoot, 'builder');
    this.indexFile = path.join(this.dir, 'cache.json');
    this.inflightDir = path.join(this.dir, 'inflight');
  }

  /** Noted before the object exists, so a crash at any point leaves it findable. */
  private async markInflight(name: string, kind: StepLayer['kind']): Promise<void> {
    await fsp.mkdir(this.inflightDir, { recursive: true, mode: 0o700 });
    await fsp.writeFile(path.join(this.inflightDir, name), kind);
  }

  private async unmarkInflight(name: string): Promise<void> {
    await fsp.rm(path.join(this.inflightDir, name), { force: true });
  }

  async recover(): Promise<void> {
    for (const name of await fsp.readdir(this.inflightDir).catch(() => [] as string[])) {
      const kind = await fsp.readFile(path.join(this.inflightDir, name), 'utf8').catch(() => '');
      if (kind === 'container') {
        await this.containers.remove(name, { force: true, volumes: true }).catch((err) => { if (!isKind(err, 'not-found')) throw err; });
      } else {
        const target = this.snapshotMountPoint(name);
        await unmount(target).catch(() => undefined);
        await fsp.rm(target, { recursive: true, force: true }).catch(() => undefined);
        await this.images.removeContainerRootfs(name);
      }
      await this.unmarkInflight(name);
    }
    // Secret files of steps cut short (the exec root may survive a daemon crash).
    const work = path.join(this.config.execRoot, 'build');
    for (const d of await fsp.readdir(work).catch(() => [] as string[])) {
      if (d.startsWith('secrets-')) await fsp.rm(path.join(work, d), { recursive: true, force: true });
    }
  }

  private snapshotMountPoint(id: string): string {
    return path.join(this.config.execRoot, 'build', id.slice(0, 18));
  }

  async resolveImage(ref: string): Promise<ImageRecord> {
    return this.images.resolve(ref);
  }

  async baseImage(ref: string, opts: { pull: boolean; auth: Record<string, RegistryAuth> }, progress: ProgressSink): Promise<ImageRecord> {
    if (!opts.pull) {
      try {
        return await this.images.resolve(ref);
      } catch (err) {
        if (!isKind(err, 'not-found') || /^[0-9a-f]{12,64}$/.test(ref) || ref.startsWith('sha256:')) throw err;
      }
    }
    const named = parseReference(ref);
    const full = named.digest || named.tag ? ref : `${ref}:latest`;
    await this.distribution.pull(full, { auth: opts.auth[named.domain] ?? opts.auth[`https://${named.domain}`] ?? (named.domain === 'docker.io' ? opts.auth['https://index.docker.io/v1/'] : undefined) }, progress);
    return this.images.resolve(full);
  }

  async runStep(opts: RunStepOptions): Promise<{ layer: BuildStepLayer; exitCode: number }> {
    const binds = [...opts.binds];
    let secretDir: string | undefined;
    if (opts.secrets.length) {
      // On the exec root (a tmpfs on most hosts): a secret never reaches the data root's disk.
      secretDir = path.join(this.config.execRoot, 'build', `secrets-${randomBytes(8).toString('hex')}`);
      await fsp.mkdir(secretDir, { recursive: true, mode: 0o700 });
      try {
        for (const [i, s] of opts.secrets.entries()) {
          const file = path.join(secretDir, String(i));
          await fsp.writeFile(file, s.data, { mode: 0o600 });
          await fsp.chown(file, s.uid, s.gid);
          await fsp.chmod(file, s.mode);
          binds.push({ source: file, target: s.target, readonly: true });
        }
      } catch (err) {
        await fsp.rm(secretDir, { recursive: true, force: true });
        throw err;
      }
    }
    let Id: string;
    // Named, so that the in-flight note can be written before the container exists.
    const name = `berth-build-step-${randomBytes(8).toString('hex')}`;
    try {
      await this.markInflight(name, 'container');
      ({ Id } = await this.containers.create(name, {
        Image: opts.imageId,
        Cmd: opts.cmd,
        Entrypoint: [],
        Env: opts.env,
        User: opts.user,
        WorkingDir: opts.workdir,
        AttachStdout: true,
        AttachStderr: true,
        Labels: {},
        HostConfig: {
          NetworkMode: opts.network,
          Binds: binds.map((b) => `${b.source}:${b.target}${b.readonly ? ':ro' : ''}`),
          // BuildKit's tmpfs mounts allow exec (build tools run from them).
          Tmpfs: Object.fromEntries(opts.tmpfs.map((t) => [t.target, ['exec', ...(t.size ? [`size=${t.size}`] : [])].join(',')])),
          ExtraHosts: opts.extraHosts,
        },
      }));
    } catch (err) {
      if (secretDir) await fsp.rm(secretDir, { recursive: true, force: true });
      await this.unmarkInflight(name);
      throw err;
    }
    const layer: StepLayer = { id: Id, name, kind: 'container', stubs: [...binds.map((b) => b.target), ...opts.tmpfs.map((t) => t.target)], secretDir };
    const kill = () => { this.containers.kill(Id, 'SIGKILL').catch(() => undefined); };
    try {
      opts.onStart(Id);
      if (opts.signal?.aborted) throw new BerthError('invalid-argument', 'context canceled: the client went away');
      await this.containers.start(Id);
      // The client went: the step's process is killed, the wait below ends, the builder drops the layer.
      opts.signal?.addEventListener('abort', kill, { once: true });
      if (opts.signal?.aborted) kill();
      const decoder = new StdcopyDecoder((stream, data) => opts.onOutput(data, stream === 2 ? 'stderr' : 'stdout'));
      const sink = new Writable({ write(chunk: Buffer, _enc, cb) { decoder.push(chunk); cb(); } });
      const ac = new AbortController();
      await this.containers.logs(Id, { follow: true, stdout: true, stderr: true, timestamps: false, tail: 'all' }, sink, ac.signal);
      const res = await this.containers.wait(Id, 'not-running', ac.signal);
      return { layer, exitCode: res.StatusCode };
    } catch (err) {
      await this.dropLayer(layer);
      throw err;
    } finally {
      opts.signal?.removeEventListener('abort', kill);
    }
  }

  async copyIntoLayer(imageId: string, fill: (rootfs: string) => Promise<void>): Promise<BuildStepLayer> {
    const id = `build-${randomBytes(16).toString('hex')}`;
    const layer: StepLayer = { id, name: id, kind: 'snapshot' };
    const target = this.snapshotMountPoint(id);
    await this.markInflight(id, 'snapshot');
    const prepared = await this.images.prepareContainerRootfs(id, imageId).catch(async (err) => {
      await this.unmarkInflight(id);
      throw err;
    });
    try {
      await prepared.persisted;
      await fsp.mkdir(target, { recursive: true });
      await mountSpec(prepared.mount, target);
      try {
        await fill(target);
      } finally {
        await unmount(target);
        await fsp.rmdir(target).catch(() => undefined);
      }
      return layer;
    } catch (err) {
      await this.dropLayer(layer);
      throw err;
    }
  }

  async withImageRootfs<T>(imageId: string, fn: (rootfs: string) => Promise<T>): Promise<T> {
    let result: T | undefined;
    const layer = await this.copyIntoLayer(imageId, async (root) => { result = await fn(root); });
    await this.dropLayer(layer);
    return result as T;
  }

  async captureLayer(parentId: string, layer: BuildStepLayer | undefined, config: Omit<OciImageConfig, 'rootfs'>,
    history: NonNullable<OciImageConfig['history']>[number], clampMtime?: Date): Promise<{ image: ImageRecord; layerSize: number }> {
    const parentDiffs = parentId ? (await this.images.resolve(parentId)).config.rootfs?.diff_ids ?? [] : [];
    const layers: LayerInput[] = parentDiffs.map((d) => ({ diffID: d, open: () => this.images.openLayerTar(d) }));
    let size = 0;
    if (layer) {
      const step = layer as StepLayer;
      if (step.kind === 'container') await this.containers.released(step.id); // the upper dir is no longer mounted
      const upper = this.images.containerUpperDir(layer.id);
      // The runtime's mount points (/etc/hosts, /dev, ...) and the step's own mount targets are not the step's changes.
      const skip = [...CONTAINER_MOUNTPOINTS, ...(step.stubs ?? []).map((t) => path.posix.normalize(t))];
      const scanned = await scanUpperDir(upper, skip);
      const quiet = step.kind === 'container' ? await mountpointOnlyDirs(upper, scanned, skip) : new Set<string>();
      const entries = scanned.filter((e) => !quiet.has('/' + e.rel) || e.opaque);
      if (entries.length) {
        if (step.kind === 'container') {
          await pruneToEntries(upper, skip, quiet, entries);
          // The files themselves carry the capped times too, as they would unpacked from the layer tar.
          if (clampMtime) {
            for (const e of entries) {
              const t = e.stat.mtime > clampMtime ? clampMtime : e.stat.mtime;
              await fsp.lutimes(path.join(upper, e.rel), t, t);
            }
          }
        }
        // The step's upper dir becomes the layer in place (no second copy); a COPY snapshot is unpacked as before.
        layers.push({ open: async () => upperDirToLayerTar(upper, entries, quiet, { clampMtime }), adoptContainer: step.kind === 'container' ? step.id : undefined });
        for (const e of entries) if (e.stat.isFile()) size += e.stat.size;
      }
    }
    const empty = layers.length === parentDiffs.length;
    const prior: NonNullable<OciImageConfig['history']> = Array.isArray(config.history) ? config.history : [];
    const full = { ...config, history: [...prior, empty ? { ...history, empty_layer: true } : history] };
    const image = await this.images.createImageFromLayers({ layers, config: full, parent: parentId });
    return { image, layerSize: size };
  }

  async squashLayers(baseId: string, diffIDs: string[], config: Omit<OciImageConfig, 'rootfs'>): Promise<ImageRecord> {
    const baseDiffs = baseId ? (await this.images.resolve(baseId)).config.rootfs?.diff_ids ?? [] : [];
    const layers: LayerInput[] = baseDiffs.map((d) => ({ diffID: d, open: () => this.images.openLayerTar(d) }));
    if (diffIDs.length) layers.push({ open: async () => concatLayerTars(diffIDs.map((d) => () => this.images.openLayerTar(d))) });
    return this.images.createImageFromLayers({ layers, config, parent: '' });
  }

  async dropLayer(layer: BuildStepLayer): Promise<void> {
    const step = layer as StepLayer;
    if (step.kind === 'container') {
      try {
        await this.containers.remove(layer.id, { force: true, volumes: true }).catch((err) => {
          if (!isKind(err, 'not-found')) throw err;
        });
      } finally {
        if (step.secretDir) await fsp.rm(step.secretDir, { recursive: true, force: true });
      }
    } else {
      await this.images.removeContainerRootfs(layer.id);
    }
    await this.unmarkInflight(step.name);
  }

  private async loadIndex(): Promise<Map<string, BuildCacheEntry>> {
    if (!this.index) {
      const list = (await readJsonIfExists<BuildCacheEntry[]>(this.indexFile)) ?? [];
      this.index = new Map(list.map((e) => [e.key, e]));
    }
    return this.index;
  }

  private async saveIndex(): Promise<void> {
    const run = this.writing.then(async () => {
      await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeJsonAtomic(this.indexFile, [...(await this.loadIndex()).values()]);
    });
    this.writing = run.catch(() => undefined);
    return run;
  }

  async probeCache(key: string): Promise<string | undefined> {
    const idx = await this.loadIndex();
    const e = idx.get(key);
    if (!e) return undefined;
    try {
      const img = await this.images.resolve(e.imageId);
      e.lastUsed = new Date().toISOString();
      return img.id;
    } catch (err) {
      if (!isKind(err, 'not-found')) throw err;
      idx.delete(key); // the image was removed: the entry is stale
      await this.saveIndex();
      return undefined;
    }
  }

  async recordCache(entry: BuildCacheEntry): Promise<void> {
    (await this.loadIndex()).set(entry.key, entry);
    await this.saveIndex();
  }

  async cacheEntries(): Promise<BuildCacheEntry[]> {
    const out: BuildCacheEntry[] = [];
    for (const e of (await this.loadIndex()).values()) {
      if (await this.images.resolve(e.imageId).then(() => true, () => false)) out.push(e);
    }
    return out;
  }

  async clearCache(): Promise<{ removed: string[]; reclaimed: number }> {
    const idx = await this.loadIndex();
    const list = [...idx.values()].sort((a, b) => (a.created < b.created ? 1 : -1));
    idx.clear();
    await this.saveIndex();
    const removed: string[] = [];
    let reclaimed = 0;
    for (const e of list) {
      try {
        const img = await this.images.resolve(e.imageId);
        if (img.repoTags.length) continue;
        await this.images.remove(img.id, { force: false, noprune: true });
        removed.push(e.key);
        reclaimed += e.size;
      } catch (err) {
        if (!isKind(err, 'not-found') && !isKind(err, 'conflict')) throw err;
      }
    }
    const mounts = path.join(this.dir, 'mounts');
    for (const d of await fsp.readdir(mounts).catch(() => [] as string[])) {
      await fsp.rm(path.join(mounts, d), { recursive: true, force: true });
      removed.push(`cache-mount:${d}`);
    }
    return { removed, reclaimed };
  }

  async cacheMountDir(id: string): Promise<string> {
    const dir = path.join(this.dir, 'mounts', Buffer.from(id).toString('hex').slice(0, 200));
    await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
    return dir;
  }

  async tag(imageId: string, ref: string): Promise<void> {
    await this.images.tag(imageId, ref);
  }
}

/**
 * Leaves in a step's upper dir only what its layer tar holds: the runtime's and the
 * step's mount points (and directories made only for them) go, so the dir can be the layer.
 */
async function pruneToEntries(upper: string, skip: string[], quiet: Set<string>, entries: Array<{ rel: string }>): Promise<void> {
  const kept = new Set(entries.map((e) => '/' + e.rel));
  for (const s of skip) if (!kept.has(s)) await fsp.rm(path.join(upper, s), { recursive: true, force: true });
  // Deepest first: a quiet dir holds nothing but other quiet dirs by now.
  for (const d of [...quiet].sort((a, b) => b.length - a.length)) if (!kept.has(d)) await fsp.rm(path.join(upper, d), { recursive: true, force: true });
}

/**
 * One tar holding what several layer tars leave when stacked: an entry is kept
 * unless a later layer of the squash writes the same path or whiteouts it (or
 * a parent); whiteouts are kept, as they may hide files of the layers below.
 */
function concatLayerTars(opens: Array<() => Promise<Readable>>): Readable {
  const clean = (name: string) => name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  const eachEntry = async (open: () => Promise<Readable>, fn: (hdr: tar.Header, stream: Readable) => Promise<void>) => {
    const extract = tar.extract();
    const done = new Promise<void>((resolve, reject) => {
      extract.on('entry', (hdr, stream, next) => { fn(hdr, stream as unknown as Readable).then(() => next(), next); });
      extract.on('finish', resolve);
      extract.on('error', reject);
    });
    (await open()).pipe(extract);
    await done;
  };
  const pack = tar.pack();
  void (async () => {
    // Pass 1: who writes each path last, and what later layers delete.
    const lastWriter = new Map<string, number>();
    const deletions: Array<{ layer: number; prefix: string; self: boolean }> = [];
    for (let i = 0; i < opens.length; i++) {
      await eachEntry(opens[i], async (hdr, stream) => {
        const name = clean(hdr.name);
        const base = name.split('/').pop()!;
        const dir = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
        if (base === '.wh..wh..opq') deletions.push({ layer: i, prefix: dir, self: false });
        else if (base.startsWith('.wh.')) deletions.push({ layer: i, prefix: (dir ? dir + '/' : '') + base.slice(4), self: true });
        else lastWriter.set(name, i);
        stream.resume();
      });
    }
    const deletedLater = (name: string, layer: number) => deletions.some((d) => d.layer > layer
      && ((d.self && (name === d.prefix || name.startsWith(d.prefix + '/'))) || (!d.self && (d.prefix === '' || name.startsWith(d.prefix + '/')))));
    // Pass 2: the survivors, in order.
    for (let i = 0; i < opens.length; i++) {
      await eachEntry(opens[i], async (hdr, stream) => {
        const name = clean(hdr.name);
        const isWhiteout = name.split('/').pop()!.startsWith('.wh.');
        if (!isWhiteout && (lastWriter.get(name) !== i || deletedLater(name, i))) { stream.resume(); return; }
        await new Promise<void>((resolve, reject) => {
          const sink = pack.entry(hdr, (err) => (err ? reject(err) : resolve()));
          stream.pipe(sink);
        });
      });
    }
    pack.finalize();
  })().catch((err) => pack.destroy(err));
  return Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false });
}
