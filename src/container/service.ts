/**
 * ContainerService: the container lifecycle on top of conmon + runc.
 * One conmon per container owns its stdio, log and exit code, so containers
 * outlive berthd; berthd learns about exits from conmon's exit files
 * (inotify on <execRoot>/exits) and re-attaches on restart (restore()).
 * Processes run through the TaskRuntime (runtime/task.ts; a fake in unit tests).
 *
 * This class is the facade that owns the per-container state (Ctr in ctr.ts: lock,
 * waiters, pre-created runtime, exit flags) and the lifecycle verbs. Over 500 lines
 * because those verbs (create, start, stop, kill, pause, update, rename, remove, wait,
 * attach, networks) each check and change that state under the container's lock.
 * The rest lives beside it, each with its own owner: the host side of a run
 * (rootfs.ts), exits and restart policy (exits.ts, restart.ts), restore after a
 * restart (restore.ts), stats, prune, top, logs, attach, exec, bundle and /etc
 * files, mount points, list.
 */
import { parseDetachKeys } from './detachkeys';
import { directorySize } from '../common/du';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Duplex, Writable } from 'node:stream';
import type { AtomicWriteOptions } from '../common/atomic';
import { BerthError, conflict, internal, invalidArgument, notFound } from '../common/errors';
import { isLive } from '../common/linux';
import type { DaemonConfig } from '../engine/config';
import type { EventBus } from '../engine/events';
import type {
  AttachOptions, ContainerPruneReport, ContainerService, ContainerStats, ImageService, LogsOptions, NetworkAttachRequest, NetworkService, StatsOptions, WaitCondition,
} from '../engine/types';
import { ConmonRunc } from '../runtime/conmon-runc';
import { TaskStartError, type TaskRuntime } from '../runtime/task';
import { AttachBridge } from './attach';
import { ContainerPaths, newCtr, sleep, type Ctr } from './ctr';
import { ExitHandler } from './exits';
import { restoreContainers } from './restore';
import { RuntimePreparer, startFailure } from './rootfs';
import { mergeConfig, networkSettings, validateHostConfig, checkCreateValues, endpointsWithContainerMac } from './createconfig';
import { ExecManager } from './exec';
import { ZERO_TIME, nowRfc3339 } from './format';
import { streamLogs } from './logs';
import { hostMounts, type RootfsMounts } from './mounts';
import { parseSignal } from './signals';
import { ContainerStore, type ContainerRecord } from './store';
import { randomName, validateName } from './names';
import { validateSpec } from './bundle';
import { resolveMountPoints } from './mountpoints';
import type { MountPoint } from '../runtime/spec';
import type { VolumeService } from '../engine/types';
import { pruneContainers } from './prune';
import { containerStats } from './stats';
import { countStates, listContainers } from './list';
import { containerTop } from './top';
import { HealthMonitors } from './health';
import { keepsLog, LogRotator, rotationOf } from './logdriver';

export class Containers implements ContainerService {
  private readonly byId = new Map<string, Ctr>();
  private readonly names = new Map<string, string>(); // '/name' -> id
  private readonly store: ContainerStore;
  private readonly execs: ExecManager;
  /** The daemon's log, for what a client can not be told (an attach session that could not carry output). */
  readonly warn: (msg: string) => void;
  /** Runs the containers' processes (runc under conmon; a fake in unit tests). */
  readonly runtime: TaskRuntime;
  private readonly mounts: RootfsMounts;
  private readonly paths: ContainerPaths;
  /** The host side of a run: rootfs, bundle, conmon + runc create, and undoing them. */
  private readonly rootfs: RuntimePreparer;
  /** What follows an exit: state, waiters, cleanup, restart policy, --rm. */
  private readonly exits: ExitHandler;
  /** Healthcheck probes of running containers that have one. */
  private readonly health: HealthMonitors;
  /** Rotation of logs that have a max-size. */
  private readonly logRotation = new LogRotator();
  /** The network area: a container's namespace, addresses, ports and names (src/network). */
  readonly network: NetworkService;

  constructor(
    readonly config: DaemonConfig, readonly images: ImageService, readonly events: EventBus, readonly volumes: VolumeService,
    deps: { runtime?: TaskRuntime; mounts?: RootfsMounts; network: NetworkService; warn?: (msg: string) => void },
  ) {
    this.warn = deps.warn ?? (() => undefined);
    this.store = new ContainerStore(config.dataRoot);
    this.runtime = deps.runtime ?? new ConmonRunc({ conmon: config.conmon, runc: config.runtime, execRoot: config.execRoot });
    this.mounts = deps.mounts ?? hostMounts;
    this.network = deps.network;
    this.execs = new ExecManager(this);
    this.paths = new ContainerPaths(config.execRoot, this.store);
    this.rootfs = new RuntimePreparer({
      config, images, runtime: this.runtime, mounts: this.mounts, network: this.network, paths: this.paths,
      attachNetwork: (c) => this.attachNetwork(c),
      withLock: (c, fn) => this.withLock(c, fn),
    });
    this.health = new HealthMonitors({
      exec: (opts) => this.runtime.execDirect(opts),
      bundleDir: (id) => this.bundleDir(id),
      save: (rec) => { const c = this.byId.get(rec.Id); return c ? this.save(c, { durable: false }) : Promise.resolve(); },
      emit: (rec, action, extra) => this.emit(rec, action, extra),
    });
    this.exits = new ExitHandler({
      runtime: this.runtime, network: this.network, health: this.health, logRotation: this.logRotation,
      paths: this.paths, rootfs: this.rootfs,
      get: (id) => this.byId.get(id),
      save: (c, opts) => this.save(c, opts),
      emit: (c, action, extra) => this.emit(c, action, extra),
      execStopped: (id) => this.execs.containerStopped(id),
      withLock: (c, fn) => this.withLock(c, fn),
      destroy: (c, removeVolumes) => this.destroy(c, removeVolumes),
      doStart: (c) => this.doStart(c),
    });
  }

  private hostConfigDefaults() {
    return {
      network: this.config.defaultNetwork, cgroupnsMode: this.config.defaultCgroupnsMode, ulimits: this.config.defaultUlimits,
      logDriver: this.config.logConfig.type, logOpts: this.config.logConfig.config,
    };
  }

  /** Rotates the running container's log when its driver has a max-size. */
  private watchLog(c: Ctr): void {
    if (!c.rec.LogPath) return;
    this.logRotation.watch(c.rec.Id, c.rec.LogPath, rotationOf(c.rec.HostConfig.LogConfig),
      () => this.runtime.reopenLog(this.bundleDir(c.rec.Id)));
  }

  // ---- paths -------------------------------------------------------------
  bundleDir(id: string): string { return this.paths.bundleDir(id); }
  rootfsDir(id: string): string { return this.paths.rootfsDir(id); }
  attachSocket(id: string): string { return this.paths.attachSocket(id); }
  private ctrDir(id: string): string { return this.paths.ctrDir(id); }

  async init(): Promise<void> {
    for (const d of [path.join(this.config.execRoot, 'b'), this.store.root]) {
      await fsp.mkdir(d, { recursive: true, mode: 0o711 });
    }
    await this.runtime.init((id) => void this.exits.onExitFile(id));
  }

  // ---- lookup ------------------------------------------------------------
  private find(idOrName: string): Ctr {
    const key = String(idOrName ?? '');
    if (!key) throw notFound(`No such container: ${key}`);
    const exact = this.byId.get(key);
    if (exact) return exact;
    const byName = this.names.get(key.startsWith('/') ? key : `/${key}`);
    if (byName) return this.byId.get(byName)!;
    if (/^[0-9a-f]+$/.test(key)) {
      const hits = [...this.byId.keys()].filter((id) => id.startsWith(key));
      if (hits.length === 1) return this.byId.get(hits[0])!;
      if (hits.length > 1) throw invalidArgument(`multiple IDs found with provided prefix: ${key}`);
    }
    throw notFound(`No such container: ${key}`);
  }

  /** For exec and helpers: the live record. */
  get(idOrName: string): ContainerRecord { return this.find(idOrName).rec; }

  private withLock<T>(c: Ctr, fn: () => Promise<T>): Promise<T> {
    return c.lock.run(fn);
  }

  private async save(c: Ctr, opts: AtomicWriteOptions = {}): Promise<void> {
    if (c.removed) return;
    await this.store.save(c.rec, opts);
  }

  private attrs(c: Ctr, extra: Record<string, string> = {}): Record<string, string> {
    return { ...(c.rec.Config.Labels ?? {}), image: c.rec.Config.Image, name: c.rec.Name.slice(1), ...extra };
  }

  emit(c: Ctr | ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    const ctr = 'Berth' in c ? this.byId.get(c.Id) : c;
    if (!ctr) return;
    this.events.emitEvent('container', action, ctr.rec.Id, this.attrs(ctr, extra));
  }

  // ---- create ------------------------------------------------------------
  async create(name: string | undefined, body: any): Promise<{ Id: string; Warnings: string[] }> {
    if (!body || typeof body !== 'object') throw invalidArgument('config cannot be empty in order to create a container');
    if (!body.Image) throw invalidArgument('no image specified');
    let fullName: string;
    const n = validateName(name);
    if (n) {
      fullName = `/${n}`;
      const holder = this.names.get(fullName);
      if (holder) {
        throw conflict(`Conflict. The container name "${fullName}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`);
      }
    } else {
      fullName = `/${randomName((x) => this.names.has(`/${x}`))}`;
    }
    const hostConfig = validateHostConfig(body.HostConfig, this.hostConfigDefaults());
    checkCreateValues(body, hostConfig);
    const image = await this.images.resolve(String(body.Image));
    let id: string;
    do { id = randomBytes(32).toString('hex'); } while (this.byId.has(id) || /^\d+$/.test(id.slice(0, 12)));
    const netUse = this.network.prepare(hostConfig.NetworkMode, endpointsWithContainerMac(hostConfig.NetworkMode, body.NetworkingConfig?.EndpointsConfig, body.MacAddress));
    hostConfig.NetworkMode = netUse.mode.startsWith('container:') ? `container:${this.find(netUse.mode.slice(10)).rec.Id}` : netUse.mode;
    if (hostConfig.Links?.length && !['bridge', 'host', 'none'].includes(netUse.mode) && !netUse.mode.startsWith('container:')) {
      // On a user-defined network a link is an alias the linking container resolves (as dockerd converts them).
      const primary = netUse.networks[Object.keys(netUse.networks)[0]!];
      if (primary) primary.Links = [...(primary.Links ?? []), ...hostConfig.Links.map(String)];
    }
    hostConfig.Links = this.legacyLinks(hostConfig, fullName);
    const merged = mergeConfig(id, body, image, hostConfig.NetworkMode);
    validateSpec(id, merged.config, hostConfig, this.config.cgroupParent);
    if (this.names.has(fullName)) {
      // Lost a race with another create of the same name.
      throw conflict(`Conflict. The container name "${fullName}" is already in use by container "${this.names.get(fullName)}". You have to remove (or rename) that container to be able to reuse that name.`);
    }
    this.names.set(fullName, id);
    const dir = this.ctrDir(id);
    let snapshotMade = false;
    let anonymousVolumes: string[] = [];
    let made: Ctr | undefined;
    try {
      // Settled both, so the catch below knows exactly what exists.
      const [dirMade, snapshot, mountsMade] = await Promise.allSettled([
        fsp.mkdir(dir, { recursive: true, mode: 0o700 }),
        this.images.prepareContainerRootfs(id, image.id),
        resolveMountPoints(hostConfig, merged.config.Volumes, this.volumes, (ref) => {
          const src = this.find(ref);
          return { id: src.rec.Id, mounts: src.rec.Mounts ?? [] };
        }),
      ]);
      snapshotMade = snapshot.status === 'fulfilled';
      if (mountsMade.status === 'fulfilled') anonymousVolumes = mountsMade.value.anonymous;
      if (dirMade.status === 'rejected') throw dirMade.reason;
      if (snapshot.status === 'rejected') throw snapshot.reason;
      if (mountsMade.status === 'rejected') throw mountsMade.reason;
      const mountPoints = mountsMade.value;
      const prepared = snapshot.value;
      const { mount } = prepared;
      const rec: ContainerRecord = {
        Id: id,
        Created: nowRfc3339(),
        Path: merged.path,
        Args: merged.args,
        State: {
          Status: 'created', Running: false, Paused: false, Restarting: false, OOMKilled: false, Dead: false,
          Pid: 0, ExitCode: 0, Error: '', StartedAt: ZERO_TIME, FinishedAt: ZERO_TIME,
        },
        Image: image.id,
        ResolvConfPath: path.join(dir, 'resolv.conf'),
        HostnamePath: path.join(dir, 'hostname'),
        HostsPath: path.join(dir, 'hosts'),
        LogPath: keepsLog(hostConfig.LogConfig) ? path.join(dir, 'ctr.log') : '',
        Name: fullName,
        RestartCount: 0,
        Driver: 'overlay2',
        Platform: 'linux',
        MountLabel: '',
        ProcessLabel: '',
        AppArmorProfile: '',
        ExecIDs: null,
        HostConfig: hostConfig,
        GraphDriver: { Name: 'overlay2', Data: graphDriverData(mount.options, this.images.containerUpperDir(id)) },
        Mounts: mountPoints.points,
        Config: merged.config,
        NetworkSettings: networkSettings(netUse.networks),
        Berth: { imageId: image.id, conmonPid: 0, manuallyStopped: false, hasBeenStarted: false, volumeCopyUp: mountPoints.copyUp },
      };
      made = newCtr(rec);
      // The runtime is made while the snapshot and the record are written: start then finds it
      // (nearly) ready. The record refers to the snapshot, so it is written once that is durable.
      this.rootfs.prestart(made);
      await prepared.persisted;
      await this.store.save(rec);
      this.byId.set(id, made);
    } catch (err) {
      this.names.delete(fullName);
      if (made) await this.rootfs.drop(made);
      if (snapshotMade) await this.images.removeContainerRootfs(id).catch(() => undefined);
      for (const v of anonymousVolumes) await this.volumes.remove(v, true).catch(() => undefined);
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
    this.emit(made!, 'create');
    return { Id: id, Warnings: [] };
  }

  // ---- inspect / list -----------------------------------------------------
  async inspect(idOrName: string, size = false): Promise<any> {
    const c = this.find(idOrName);
    const out = this.view(c.rec);
    if (size) Object.assign(out, await this.sizes(c.rec));
    return out;
  }

  /** SizeRw (the writable layer) and SizeRootFs (image + writable layer), as Docker computes them. */
  private async sizes(rec: ContainerRecord): Promise<{ SizeRw: number; SizeRootFs: number }> {
    const rw = await directorySize(this.images.containerUpperDir(rec.Id));
    const image = await this.images.resolve(rec.Image).then((i) => i.size, () => 0);
    return { SizeRw: rw, SizeRootFs: image + rw };
  }

  private view(rec: ContainerRecord): any {
    const { Berth: _private, ...pub } = rec;
    return JSON.parse(JSON.stringify(pub));
  }

  async list(opts: { all: boolean; limit?: number; size: boolean; filters: Record<string, string[]> }): Promise<any[]> {
    const all = [...this.byId.values()].filter((c) => !c.removed).map((c) => c.rec);
    const rows = await listContainers(all, opts, (ref) => this.images.resolve(ref).then((i) => i.id, () => undefined));
    if (opts.size) {
      await Promise.all(rows.map(async (row: any) => {
        const c = this.byId.get(row.Id);
        if (c) Object.assign(row, await this.sizes(c.rec));
      }));
    }
    return rows;
  }

  stateCounts(): { total: number; running: number; paused: number; stopped: number } {
    return countStates([...this.byId.values()].filter((c) => !c.removed).map((c) => c.rec));
  }

  prune(filters: Record<string, string[]>): Promise<ContainerPruneReport> {
    return pruneContainers(this, this.events, filters);
  }

  stats(idOrName: string, opts: StatsOptions, emit: (doc: ContainerStats) => void, abort: AbortSignal): Promise<void> {
    return containerStats(this, idOrName, opts, emit, abort);
  }

  async containersUsingImage(imageId: string): Promise<string[]> {
    return [...this.byId.values()].filter((c) => !c.removed && c.rec.Image === imageId).map((c) => c.rec.Id);
  }

  /** Containers (running or not) whose Mounts name the volume: it can not be removed meanwhile. */
  containersUsingVolume(name: string): string[] {
    return [...this.byId.values()]
      .filter((c) => !c.removed && (c.rec.Mounts ?? []).some((m: MountPoint) => m.Type === 'volume' && m.Name === name))
      .map((c) => c.rec.Id);
  }

  // ---- start -------------------------------------------------------------
  async start(idOrName: string): Promise<void> {
    const c = this.find(idOrName);
    await this.withLock(c, async () => {
      if (c.removed || c.removing) throw notFound(`No such container: ${idOrName}`);
      if (c.rec.State.Paused) throw conflict('cannot start a paused container, try unpause instead');
      if (c.rec.State.Running) throw new BerthError('not-modified', 'container already started');
      if (c.restartTimer) { clearTimeout(c.restartTimer); c.restartTimer = undefined; }
      c.rec.Berth.manuallyStopped = false;
      try {
        await this.doStart(c);
      } catch (err) {
        // Like dockerd: an --rm container that fails to start is removed, which
        // also answers the CLI's pending wait?condition=removed.
        if (c.rec.HostConfig.AutoRemove) await this.destroy(c, true).catch(() => undefined);
        throw err;
      }
    });
  }

  private async doStart(c: Ctr): Promise<void> {
    const pre = this.rootfs.take(c);
    if (c.exiting) await c.exiting;
    const id = c.rec.Id;
    let finishStart!: () => void;
    c.starting = new Promise((r) => { finishStart = r; });
    c.exitHandled = false;
    let created = false;
    try {
      // A pre-created runtime that failed is simply made again: a real error (e.g. 127) recurs.
      const rt = pre ? await pre.catch(() => this.rootfs.create(c)) : await this.rootfs.create(c);
      created = true;
      // Connect waiting attach sessions before the process runs, so no output is lost.
      const pending = c.pending.splice(0);
      await Promise.all(pending.map((b) => b.connect(this.attachSocket(id))));
      try {
        await this.runtime.start(id, rt.pid);
      } catch (err) {
        throw err instanceof TaskStartError ? startFailure(err.runtimeMessage) : err;
      }
      const st = c.rec.State;
      Object.assign(st, {
        Status: 'running', Running: true, Paused: false, Restarting: false, OOMKilled: false, Dead: false,
        Pid: rt.pid, ExitCode: 0, Error: '', StartedAt: nowRfc3339(),
      });
      c.rec.Berth.conmonPid = rt.conmonPid;
      c.rec.Berth.hasBeenStarted = true;
      c.rec.NetworkSettings = rt.networkSettings;
      this.health.started(c.rec);
      this.watchLog(c);
      // Not fsynced: it is on every start's critical path, a daemon crash keeps it (page
      // cache), and after a power cut no container runs any more whatever the record says.
      await this.save(c, { durable: false });
      this.emit(c, 'start');
    } catch (err) {
      for (const b of c.pending.splice(0)) b.finish('the container did not start');
      if (created) await this.rootfs.undo(id);
      const st = c.rec.State;
      st.Error = (err as Error).message;
      if (err instanceof BerthError && err.exitCode) st.ExitCode = err.exitCode;
      else st.ExitCode = 128;
      st.Status = c.rec.Berth.hasBeenStarted ? 'exited' : 'created';
      if (c.rec.Berth.hasBeenStarted) st.FinishedAt = nowRfc3339();
      c.exitHandled = true;
      await this.save(c).catch(() => undefined);
      throw err;
    } finally {
      c.starting = undefined;
      finishStart();
    }
  }






  // ---- exits -------------------------------------------------------------





  /** Resolves once the container is not running (now, or after its next exit or removal). */
  private async stopped(c: Ctr): Promise<void> {
    if (c.starting) await c.starting;
    if (!c.rec.State.Running) return;
    await new Promise<void>((r) => { c.exitWaiters.push(r); c.removedWaiters.push(r); });
  }

  /** Resolves after the next exit has been fully applied. */
  private nextExit(c: Ctr): Promise<void> {
    return new Promise((r) => c.exitWaiters.push(r));
  }

  // ---- stop / kill / restart ------------------------------------------------
  async stop(idOrName: string, opts: { signal?: string; timeout?: number }): Promise<void> {
    const c = this.find(idOrName);
    await this.withLock(c, () => this.doStop(c, opts));
  }

  private async doStop(c: Ctr, opts: { signal?: string; timeout?: number }): Promise<void> {
    if (c.restartTimer) {
      clearTimeout(c.restartTimer);
      c.restartTimer = undefined;
      c.rec.State.Restarting = false;
      c.rec.State.Status = 'exited';
      c.rec.Berth.manuallyStopped = true;
      await this.save(c);
      return;
    }
    if (!c.rec.State.Running) throw new BerthError('not-modified', 'container already stopped');
    c.rec.Berth.manuallyStopped = true;
    await this.save(c);
    const sig = parseSignal(opts.signal || c.rec.Config.StopSignal, 15);
    let timeout = opts.timeout ?? c.rec.Config.StopTimeout ?? 10;
    if (timeout < 0) timeout = 1e9; // -1: wait forever
    const exited = this.nextExit(c);
    await this.signal(c, sig);
    const done = await Promise.race([exited.then(() => true), sleep(timeout * 1000).then(() => false)]);
    if (!done && c.rec.State.Running) {
      await this.signal(c, 9, true);
      await Promise.race([exited, sleep(30_000)]);
    }
    this.emit(c, 'stop');
  }

  private async signal(c: Ctr, sig: number, all = false): Promise<void> {
    const id = c.rec.Id;
    await this.runtime.kill(id, sig, all);
    this.emit(c, 'kill', { signal: String(sig) });
    if (c.rec.State.Paused) {
      // A frozen process only acts on the signal once thawed.
      await this.runtime.resume(id).catch(() => undefined);
      c.rec.State.Paused = false;
      c.rec.State.Status = 'running';
    }
  }

  async kill(idOrName: string, signal?: string): Promise<void> {
    const c = this.find(idOrName);
    const sig = parseSignal(signal, 9);
    if (!c.rec.State.Running) {
      if (c.restartTimer && sig === 9) { await this.stop(idOrName, {}).catch(() => undefined); return; }
      throw conflict(`Cannot kill container: ${idOrName}: Container ${c.rec.Id} is not running`);
    }
    const exited = this.nextExit(c);
    if (sig === 9) c.rec.Berth.manuallyStopped = true;
    await this.signal(c, sig, sig === 9);
    if (sig === 9) await Promise.race([exited, sleep(10_000)]);
  }

  async restart(idOrName: string, opts: { signal?: string; timeout?: number }): Promise<void> {
    const c = this.find(idOrName);
    await this.withLock(c, async () => {
      if (c.rec.State.Running || c.restartTimer) {
        await this.doStop(c, opts).catch((err) => { if (!(err instanceof BerthError && err.kind === 'not-modified')) throw err; });
      }
      c.rec.Berth.manuallyStopped = false;
      await this.doStart(c);
      this.emit(c, 'restart');
    });
  }

  // ---- pause ---------------------------------------------------------------
  async pause(idOrName: string): Promise<void> {
    const c = this.find(idOrName);
    await this.withLock(c, async () => {
      if (!c.rec.State.Running) throw conflict(`Container ${c.rec.Id} is not running`);
      if (c.rec.State.Paused) throw conflict(`Container ${c.rec.Id} is already paused`);
      await this.runtime.pause(c.rec.Id).catch((err) => {
        // The process ended before its exit was handled (a short-lived container; freezing a cgroup whose
        // tasks are exiting can fail otherwise than "not running"): not running, as dockerd says.
        if (/not running|stopped/.test((err as Error).message) || !isLive(c.rec.State.Pid)) throw conflict(`Container ${c.rec.Id} is not running`);
        throw internal(`Cannot pause container ${c.rec.Id}: ${(err as Error).message}`);
      });
      c.rec.State.Paused = true;
      c.rec.State.Status = 'paused';
      this.health.stopped(c.rec);
      await this.save(c);
      this.emit(c, 'pause');
    });
  }

  async unpause(idOrName: string): Promise<void> {
    const c = this.find(idOrName);
    await this.withLock(c, async () => {
      if (!c.rec.State.Paused) throw conflict(`Container ${c.rec.Id} is not paused`);
      await this.runtime.resume(c.rec.Id).catch((err) => { throw internal(`Cannot unpause container ${c.rec.Id}: ${(err as Error).message}`); });
      c.rec.State.Paused = false;
      c.rec.State.Status = 'running';
      this.health.resume(c.rec);
      await this.save(c);
      this.emit(c, 'unpause');
    });
  }

  // ---- update ------------------------------------------------------------
  /**
   * POST /containers/{id}/update: new cgroup limits and/or restart policy. Fields
   * left at zero keep their value (Docker's rule); a running container gets the new
   * limits at once through `runc update`, and the record keeps them for later starts.
   */
  async update(idOrName: string, body: any): Promise<{ Warnings: string[] }> {
    const c = this.find(idOrName);
    return this.withLock(c, async () => {
      const id = c.rec.Id;
      const cannot = (msg: string) => invalidArgument(`Cannot update container ${id}: ${msg}`);
      const hc = { ...c.rec.HostConfig };
      const b = body ?? {};
      for (const k of ['BlkioWeight', 'CpuShares', 'CpuPeriod', 'CpuQuota', 'CpuRealtimePeriod', 'CpuRealtimeRuntime', 'MemoryReservation', 'MemorySwap']) {
        if (b[k]) hc[k] = b[k];
      }
      for (const k of ['CpusetCpus', 'CpusetMems']) if (b[k]) hc[k] = b[k];
      if (b.NanoCpus) {
        if (hc.CpuQuota && !b.CpuQuota) throw cannot('Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set');
        if (hc.CpuPeriod && !b.CpuPeriod) throw cannot('Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set');
        hc.NanoCpus = b.NanoCpus;
      } else if ((b.CpuQuota || b.CpuPeriod) && hc.NanoCpus) {
        throw cannot(`Conflicting options: CPU ${b.CpuQuota ? 'Quota' : 'Period'} cannot be updated as NanoCPUs has already been set`);
      }
      if (b.Memory) {
        if (hc.MemorySwap !== undefined && hc.MemorySwap > 0 && b.Memory > hc.MemorySwap && !b.MemorySwap) {
          throw cannot('Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time');
        }
        hc.Memory = b.Memory;
      }
      if (b.PidsLimit != null) hc.PidsLimit = b.PidsLimit;
      const policy = b.RestartPolicy;
      if (policy?.Name) {
        if (policy.Name !== 'no' && hc.AutoRemove) throw cannot('Restart policy cannot be updated because AutoRemove is enabled for the container');
        hc.RestartPolicy = { Name: policy.Name, MaximumRetryCount: Number(policy.MaximumRetryCount ?? 0) };
      }
      // The same checks as create (Docker's wording), on the merged result.
      const checked = validateHostConfig(hc, { ...this.hostConfigDefaults(), ulimits: undefined });
      const resources = validateSpec(id, c.rec.Config, checked, this.config.cgroupParent);
      if (c.rec.State.Running) {
        const { devices: _devices, ...limits } = resources; // device rules are fixed at create
        // "no limit" is absent from a fresh spec; runc update needs it said (-1 writes "max").
        if (b.PidsLimit != null && b.PidsLimit <= 0) limits.pids = { limit: -1 };
        await this.runtime.update(id, this.bundleDir(id), limits);
      }
      c.rec.HostConfig = checked;
      await this.save(c);
      this.emit(c, 'update');
      return { Warnings: [] };
    });
  }

  // ---- rename / remove ---------------------------------------------------
  async rename(idOrName: string, newName: string): Promise<void> {
    const c = this.find(idOrName);
    const n = validateName(newName);
    if (!n) throw invalidArgument('Neither old nor new names may be empty');
    const full = `/${n}`;
    const old = c.rec.Name;
    if (full === old) throw conflict(`Renaming a container with the same name as its current name`);
    const holder = this.names.get(full);
    if (holder) {
      throw conflict(`Conflict. The container name "${full}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`);
    }
    this.names.set(full, c.rec.Id);
    this.names.delete(old);
    c.rec.Name = full;
    try {
      await this.save(c);
    } catch (err) {
      c.rec.Name = old;
      this.names.set(old, c.rec.Id);
      this.names.delete(full);
      throw err;
    }
    this.emit(c, 'rename', { oldName: old });
  }

  async remove(idOrName: string, opts: { force: boolean; volumes: boolean }): Promise<void> {
    const c = this.find(idOrName);
    if ((c.rec.State.Running || c.rec.State.Restarting) && !opts.force) {
      if (c.rec.State.Paused) {
        throw conflict(`You cannot remove a paused container ${c.rec.Id}. Unpause and then stop the container before attempting removal or force remove`);
      }
      throw conflict(`You cannot remove a running container ${c.rec.Id}. Stop the container before attempting removal or force remove`);
    }
    if (c.removing) throw conflict(`removal of container ${c.rec.Id} is already in progress`);
    c.removing = true;
    try {
      if (c.restartTimer) { clearTimeout(c.restartTimer); c.restartTimer = undefined; }
      if (c.rec.State.Running) {
        const exited = this.nextExit(c);
        c.rec.Berth.manuallyStopped = true;
        await this.signal(c, 9, true);
        await Promise.race([exited, sleep(15_000)]);
      }
      await this.withLock(c, () => this.destroy(c, opts.volumes));
    } finally {
      c.removing = false;
    }
  }

  /**
   * Deletes a stopped container. Deleting the record is the commit point:
   * waiters wake right after it; runtime state, mount, snapshot and directory go
   * afterwards (a crash in between leaves an orphan directory that restore() cleans up).
   * With `removeVolumes` (rm -v, --rm) its anonymous volumes go too, as in Docker.
   */
  private async destroy(c: Ctr, removeVolumes = false): Promise<void> {
    if (c.removed) return;
    await this.rootfs.drop(c);
    const id = c.rec.Id;
    if (c.rec.State.Running) await this.rootfs.cleanup(id); // force-removed container whose exit was never seen
    c.removed = true;
    for (const b of c.pending.splice(0)) b.finish('the container was removed');
    await fsp.rm(this.store.file(id), { force: true });
    // Host cleanup runs after the waiters are answered; the image service learns now that
    // the snapshot is going (rmi waits for it), and restore() finishes it after a crash.
    const runtimeGone = (async () => {
      // Spawning runc/umount blocks the event loop for ms: only after the answers went out.
      await new Promise((r) => setImmediate(r));
      if (c.exiting) await c.exiting;
      if (c.runtimeLeft) {
        c.runtimeLeft = false;
        await this.rootfs.cleanup(id);
        await this.runtime.clearExit(id);
      }
    })();
    const rootfsGone = this.images.removeContainerRootfs(id, runtimeGone).catch(() => undefined);
    const cleanup = this.exits.track(rootfsGone.then(() => fsp.rm(this.ctrDir(id), { recursive: true, force: true })).catch(() => undefined));
    this.byId.delete(id);
    this.health.forget(id);
    this.logRotation.unwatch(id);
    if (this.names.get(c.rec.Name) === id) this.names.delete(c.rec.Name);
    this.execs.containerStopped(id);
    this.emit(c, 'destroy');
    // Before the removal is reported: `run --rm -v /x` leaves no volume behind once it returns.
    if (removeVolumes) {
      for (const m of (c.rec.Mounts ?? []) as MountPoint[]) {
        // still used through --volumes-from elsewhere: kept, as Docker does
        if (m.Type === 'volume' && m.Name && this.volumes.isAnonymous(m.Name)) await this.volumes.remove(m.Name).catch(() => undefined);
      }
    }
    for (const w of c.removedWaiters.splice(0)) w();
    for (const w of c.exitWaiters.splice(0)) w();
    await cleanup;
  }

  // ---- wait ----------------------------------------------------------------
  async released(idOrName: string): Promise<void> {
    const c = this.find(idOrName);
    await this.stopped(c);
    if (c.exiting) await c.exiting;
  }

  async wait(idOrName: string, condition: WaitCondition, abort: AbortSignal): Promise<{ StatusCode: number; Error: { Message: string } | null }> {
    const c = this.find(idOrName);
    const result = () => ({ StatusCode: c.rec.State.ExitCode, Error: null });
    if (condition === 'not-running' && !c.rec.State.Running && !c.starting && !c.restartTimer) return result();
    const p = condition === 'removed'
      ? new Promise<void>((r) => { if (c.removed) r(); else c.removedWaiters.push(r); })
      : this.nextExit(c);
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(new BerthError('unavailable', 'wait aborted'));
      if (abort.aborted) return onAbort();
      abort.addEventListener('abort', onAbort, { once: true });
      p.then(() => { abort.removeEventListener('abort', onAbort); resolve(); });
    });
    return result();
  }

  // ---- resize / top ----------------------------------------------------------
  async resize(idOrName: string, height: number, width: number): Promise<void> {
    const c = this.find(idOrName);
    if (!c.rec.State.Running) throw conflict(`Container ${c.rec.Id} is not running`);
    await this.runtime.resize(this.bundleDir(c.rec.Id), height, width);
    this.emit(c, 'resize', { height: String(height), width: String(width) });
  }

  async top(idOrName: string, psArgs?: string): Promise<{ Titles: string[]; Processes: string[][] }> {
    const c = this.find(idOrName);
    if (!c.rec.State.Running) throw conflict(`Container ${c.rec.Id} is not running`);
    const pids = await this.runtime.ps(c.rec.Id);
    return containerTop(pids, psArgs);
  }

  // ---- logs / attach -------------------------------------------------------
  async logs(idOrName: string, opts: LogsOptions, out: Writable, abort: AbortSignal): Promise<void> {
    const c = this.find(idOrName);
    await streamLogs(c.rec.LogPath, out, {
      ...opts,
      tty: !!c.rec.Config.Tty,
      isRunning: () => c.rec.State.Running && !c.removed,
      exited: () => (c.rec.State.Running ? new Promise<void>((r) => { c.exitWaiters.push(r); c.removedWaiters.push(r); }) : Promise.resolve()),
      abort,
    });
    if (!out.writableEnded && !out.destroyed) out.end();
  }

  async attach(idOrName: string, opts: AttachOptions, socket: Duplex): Promise<void> {
    const c = this.find(idOrName);
    const cfg = c.rec.Config;
    const bridge = new AttachBridge(socket, {
      tty: !!cfg.Tty,
      stdin: opts.stdin && !!cfg.OpenStdin,
      stdout: opts.stdout,
      stderr: opts.stderr,
      closeStdinOnEof: !!cfg.StdinOnce && !cfg.Tty,
      // As dockerd: the escape sequence is looked for only on a TTY; piped stdin is data.
      detachKeys: cfg.Tty ? parseDetachKeys(opts.detachKeys) : undefined,
      // As dockerd: a StdinOnce session (the process ends when its stdin does) answers EOF once
      // the container has stopped, so that the client's next inspect sees it exited.
      holdEnd: opts.stream && cfg.StdinOnce && !cfg.Tty ? () => Promise.race([this.stopped(c), sleep(10_000)]) : undefined,
      onTrouble: (what) => this.warn(`container ${c.rec.Id.slice(0, 12)}: ${what}`),
    });
    if (opts.logs) {
      const ac = new AbortController();
      await streamLogs(c.rec.LogPath, { write: (b: Buffer) => { bridge.writeRaw(b); return true; }, destroyed: false, writableEnded: false } as unknown as Writable, {
        follow: false, stdout: opts.stdout, stderr: opts.stderr, timestamps: false, tail: 'all', tty: !!cfg.Tty,
        isRunning: () => false, exited: () => Promise.resolve(), abort: ac.signal,
      });
    }
    if (!opts.stream) {
      this.emit(c, 'attach');
      bridge.finish();
      return bridge.done;
    }
    // The event follows the session's connection to conmon: a client that acts on it (writes, or makes the
    // container print) is then sure the output reaches it, not only the log.
    if (c.rec.State.Running && !c.starting) await bridge.connect(this.attachSocket(c.rec.Id));
    else c.pending.push(bridge);
    this.emit(c, 'attach');
    await bridge.done;
    const i = c.pending.indexOf(bridge);
    if (i >= 0) c.pending.splice(i, 1);
  }

  // ---- exec ------------------------------------------------------------------
  execCreate(idOrName: string, body: any): Promise<{ Id: string }> {
    const c = this.find(idOrName);
    return this.execs.create(c.rec, body).then((r) => {
      c.rec.ExecIDs = [...(c.rec.ExecIDs ?? []), r.Id];
      return r;
    });
  }
  execStart(execId: string, body: { Detach?: boolean; Tty?: boolean }, socket: Duplex | undefined): Promise<void> {
    return this.execs.start(execId, body, socket);
  }
  execInspect(execId: string): Promise<any> { return this.execs.inspect(execId); }
  execResize(execId: string, height: number, width: number): Promise<void> { return this.execs.resize(execId, height, width); }

  // ---- rootfs access -----------------------------------------------------------
  async withRootfs<T>(idOrName: string, fn: (rootfsPath: string, container: any) => Promise<T>): Promise<T> {
    const c = this.find(idOrName);
    return this.withLock(c, async () => {
      if (c.rec.State.Running) return fn(this.rootfsDir(c.rec.Id), this.view(c.rec));
      await this.rootfs.drop(c);
      if (c.exiting) await c.exiting;
      const tmp = path.join(this.config.execRoot, 'm', `${c.rec.Id.slice(0, 12)}-${randomBytes(3).toString('hex')}`);
      await fsp.mkdir(tmp, { recursive: true });
      try {
        await this.mounts.mount(await this.images.containerRootfsMount(c.rec.Id), tmp);
        try {
          return await fn(tmp, this.view(c.rec));
        } finally {
          await this.mounts.unmount(tmp);
        }
      } finally {
        await fsp.rmdir(tmp).catch(() => undefined);
      }
    });
  }

  // ---- networks ------------------------------------------------------------------
  private networkRequest(c: Ctr): NetworkAttachRequest {
    const rec = c.rec;
    return {
      containerId: rec.Id, name: rec.Name.slice(1), mode: rec.HostConfig.NetworkMode, networks: rec.NetworkSettings?.Networks ?? {},
      portBindings: rec.HostConfig.PortBindings, exposedPorts: rec.Config.ExposedPorts, publishAll: !!rec.HostConfig.PublishAllPorts,
      dns: rec.HostConfig.Dns,
    };
  }

  /**
   * HostConfig.Links on the default bridge (legacy links), stored as Docker stores them:
   * `/<target>:/<this container>/<alias>`. On user networks links are endpoint aliases instead.
   */
  private legacyLinks(hc: any, fullName: string): string[] | null {
    const links: string[] = (hc.Links ?? []).map(String);
    if (!links.length) return null;
    return links.map((l) => {
      const [target, alias] = l.replace(/^\//, '').split(':');
      const t = this.byId.get(this.names.get(`/${target}`) ?? '') ?? (() => {
        try { return this.find(target!); } catch { throw notFound(`could not get container for ${target}`); }
      })();
      return `${t.rec.Name}:${fullName}/${(alias ?? target!).replace(/^.*\//, '')}`;
    });
  }

  /** /etc/hosts lines and environment of the legacy links of a container on the default bridge. */
  private linkedEnv(c: Ctr): { hosts: string[]; env: string[] } {
    const hosts: string[] = [];
    const env: string[] = [];
    if (c.rec.HostConfig.NetworkMode !== 'bridge') return { hosts, env };
    for (const l of (c.rec.HostConfig.Links ?? []) as string[]) {
      const [target, name] = l.split(':') as [string, string];
      const alias = name.slice(name.lastIndexOf('/') + 1);
      const t = this.byId.get(this.names.get(target) ?? '');
      const ip = t?.rec.NetworkSettings?.Networks?.bridge?.IPAddress;
      if (!t || !t.rec.State.Running || !ip) throw conflict(`Cannot link to a non running container: ${target} AS ${name}`);
      hosts.push(`${alias}:${ip}`, `${target.slice(1)}:${ip}`);
      const prefix = alias.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
      env.push(`${prefix}_NAME=${name}`);
      const ports = Object.keys(t.rec.Config.ExposedPorts ?? {}).map((p) => (p.includes('/') ? p : `${p}/tcp`)).sort();
      ports.forEach((p, i) => {
        const [port, proto] = p.split('/') as [string, string];
        const key = `${prefix}_PORT_${port}_${proto.toUpperCase()}`;
        if (i === 0) env.push(`${prefix}_PORT=${proto}://${ip}:${port}`);
        env.push(`${key}=${proto}://${ip}:${port}`, `${key}_ADDR=${ip}`, `${key}_PORT=${port}`, `${key}_PROTO=${proto}`);
      });
      for (const e of (t.rec.Config.Env ?? []) as string[]) {
        const eq = e.indexOf('=');
        if (eq <= 0 || e.startsWith('HOME=') || e.startsWith('PATH=')) continue;
        env.push(`${prefix}_ENV_${e.slice(0, eq)}=${e.slice(eq + 1)}`);
      }
    }
    return { hosts, env };
  }

  /** DELETE /containers/{parent}/{alias}?link=1: removes a legacy link of `parent`. */
  async removeLink(linkName: string): Promise<void> {
    const full = linkName.startsWith('/') ? linkName : `/${linkName}`;
    const parent = full.slice(0, full.lastIndexOf('/'));
    if (parent === '') throw conflict('Conflict, cannot remove the default link name of the container');
    const c = this.byId.get(this.names.get(parent) ?? '');
    if (!c) throw notFound(`Cannot get parent ${parent} for link name ${full}`);
    const links = (c.rec.HostConfig.Links ?? []) as string[];
    const kept = links.filter((l) => l.split(':')[1] !== full);
    if (kept.length === links.length) throw notFound(`Could not find container for entity id ${full}`);
    c.rec.HostConfig.Links = kept.length ? kept : null;
    await this.save(c);
  }

  /** The container's network at start; container:<x> joins x's namespace (x must run). */
  private async attachNetwork(c: Ctr): Promise<{ netnsPath?: string; settings: any; etc: any; links: { hosts: string[]; env: string[] } }> {
    const mode = String(c.rec.HostConfig.NetworkMode ?? '');
    const links = this.linkedEnv(c);
    const got = { ...(await this.network.attach(this.networkRequest(c))), links };
    if (!mode.startsWith('container:')) return got;
    const other = this.find(mode.slice('container:'.length));
    if (!other.rec.State.Running || !other.rec.State.Pid) throw conflict(`cannot join network of a non running container: ${other.rec.Id}`);
    return { ...got, netnsPath: `/proc/${other.rec.State.Pid}/ns/net` };
  }

  /** POST /networks/{id}/connect: live for a running container, else recorded for its next start. */
  async connectNetwork(idOrName: string, netRef: string, cfg: any): Promise<void> {
    const c = this.find(idOrName);
    await this.withLock(c, async () => {
      const mode = String(c.rec.HostConfig.NetworkMode ?? '');
      if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) {
        throw new BerthError('forbidden', mode === 'host' ? 'container cannot be disconnected from host network or connected to host network'
          : `container sharing network namespace with another container or host cannot be connected to any other network`);
      }
      const { name, endpoint } = this.network.staticEndpointFor(netRef, cfg ?? {});
      const nets = c.rec.NetworkSettings.Networks ?? {};
      if (nets[name]) throw new BerthError('forbidden', `endpoint with name ${c.rec.Name.slice(1)} already exists in network ${name}`);
      if (c.rec.State.Running) {
        nets[name] = await this.network.connect(c.rec.Id, netRef, cfg ?? {}, { ...this.networkRequest(c), networks: { ...nets, [name]: endpoint } });
      } else {
        await this.rootfs.drop(c); // its namespace was made for the old set of networks
        nets[name] = endpoint;
        this.network.emitMembership('connect', netRef, c.rec.Id);
      }
      c.rec.NetworkSettings.Networks = nets;
      await this.save(c);
    });
  }

  async disconnectNetwork(idOrName: string, netRef: string, _force: boolean): Promise<void> {
    const c = this.find(idOrName);
    await this.withLock(c, async () => {
      const net = this.network.resolve(netRef);
      const nets = c.rec.NetworkSettings.Networks ?? {};
      if (!nets[net.Name]) throw new BerthError('forbidden', `container ${c.rec.Id} is not connected to network ${net.Name}`);
      if (net.Name === 'host' || c.rec.HostConfig.NetworkMode === 'host') throw new BerthError('forbidden', 'container cannot be disconnected from host network or connected to host network');
      if (c.rec.State.Running) await this.network.disconnect(c.rec.Id, net.Id);
      else await this.rootfs.drop(c);
      delete nets[net.Name];
      c.rec.NetworkSettings.Networks = nets;
      await this.save(c);
      this.network.emitMembership('disconnect', net.Id, c.rec.Id);
    });
  }

  // ---- restore / shutdown --------------------------------------------------------

  restore(): Promise<void> {
    return restoreContainers({
      store: this.store, paths: this.paths, runtime: this.runtime, images: this.images, network: this.network,
      health: this.health, rootfs: this.rootfs, exits: this.exits,
      add: (c) => { this.byId.set(c.rec.Id, c); this.names.set(c.rec.Name, c.rec.Id); },
      all: () => this.byId.values(),
      save: (c, opts) => this.save(c, opts),
      watchLog: (c) => this.watchLog(c),
    });
  }

  async shutdown(): Promise<void> {
    // Pre-created runtimes are not containers anyone started: leave nothing of them behind.
    await Promise.allSettled([...this.byId.values()].map((c) => this.rootfs.drop(c)));
    this.runtime.close();
    this.health.close();
    this.logRotation.close();
    for (const c of this.byId.values()) if (c.restartTimer) clearTimeout(c.restartTimer);
    await Promise.race([Promise.allSettled([...this.exits.cleanups]), sleep(10_000)]);
  }
}



function graphDriverData(options: string[], upper: string): Record<string, string> {
  const get = (k: string) => options.find((o) => o.startsWith(`${k}=`))?.slice(k.length + 1) ?? '';
  return { LowerDir: get('lowerdir'), UpperDir: get('upperdir') || upper, WorkDir: get('workdir'), MergedDir: '' };
}


export async function createContainerService(config: DaemonConfig, images: ImageService, events: EventBus, volumes: VolumeService,
  network: NetworkService, warn?: (msg: string) => void): Promise<Containers> {
  const svc = new Containers(config, images, events, volumes, { network, warn });
  await svc.init();
  return svc;
}
