/**
 * Preparing and undoing a container's run on the host: rootfs mount, /etc files, network,
 * bundle and conmon + `runc create` (the process then waits for start), the pre-created
 * runtime made right after create, and the cleanup after an exit or a failed start.
 * Its own module so that the host side of a start has one owner, apart from the lifecycle
 * verbs (service.ts) and exit handling (exits.ts) that call it.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { DaemonConfig } from '../engine/config';
import type { ImageService, NetworkAttachment, NetworkService } from '../engine/types';
import { BerthError } from '../common/errors';
import { runcMessage } from '../runtime/runc';
import { TaskStartError, type TaskRuntime } from '../runtime/task';
import { writeEtcFiles, writeSpec } from './bundle';
import { sleep, type ContainerPaths, type Ctr, type PreparedRuntime } from './ctr';
import { copyImageContentIntoVolumes } from './mountpoints';
import type { RootfsMounts } from './mounts';

/** How long a pre-created runtime waits for its start before it is torn down. */
const PRESTART_TTL_MS = 10_000;

/** A failed `runc create`/start in dockerd's words, with the exit code `docker run` reports (127, 126). */
export function startFailure(runtimeMsg: string): BerthError {
  const msg = runcMessage(runtimeMsg);
  const text = `failed to create task for container: failed to create shim task: OCI runtime create failed: ${msg}: unknown`;
  if (/executable file not found|no such file or directory/.test(msg)) return new BerthError('invalid-argument', text, { exitCode: 127 });
  if (/permission denied/.test(msg)) return new BerthError('invalid-argument', text, { exitCode: 126 });
  return new BerthError('internal', text);
}

/** What runtime preparation needs of the container service. */
export interface RuntimeHost {
  readonly config: DaemonConfig;
  readonly images: ImageService;
  readonly runtime: TaskRuntime;
  readonly mounts: RootfsMounts;
  readonly network: NetworkService;
  readonly paths: ContainerPaths;
  /** The container's network at start (container:<x> joins x's namespace). */
  attachNetwork(c: Ctr): Promise<{ netnsPath?: string; settings: any; etc: NetworkAttachment['etc']; links: { hosts: string[]; env: string[] } }>;
  withLock<T>(c: Ctr, fn: () => Promise<T>): Promise<T>;
}

export class RuntimePreparer {
  constructor(private readonly host: RuntimeHost) {}

  /**
   * Mounts the rootfs, writes the bundle and has conmon run `runc create`:
   * the container process exists but waits for `runc start`. On failure
   * everything it made on the host is undone before it throws.
   */
  async create(c: Ctr): Promise<PreparedRuntime> {
    const id = c.rec.Id;
    const bundle = this.host.paths.bundleDir(id);
    const rootfs = this.host.paths.rootfsDir(id);
    let mounted = false;
    let networkSettings: any;
    try {
      await fsp.mkdir(rootfs, { recursive: true });
      const mount = await this.host.images.containerRootfsMount(id);
      let netnsPath: string | undefined;
      let linkEnv: string[] = [];
      const persist = path.join(this.host.paths.ctrDir(id), 'persist');
      const cfg = c.rec.Config;
      // The monitor (conmon) starts now and waits while the bundle is made.
      const task = this.host.runtime.create({
        id, bundle, name: c.rec.Name.slice(1), logPath: c.rec.LogPath, persistDir: persist,
        terminal: !!cfg.Tty, stdin: !!cfg.OpenStdin, leaveStdinOpen: !cfg.StdinOnce,
      });
      try {
        // The mount runs on the thread pool: everything that does not need the rootfs happens meanwhile.
        // allSettled, so a failure elsewhere never leaves a mount the catch below does not know about.
        const prep = await Promise.allSettled([
          this.host.mounts.mount(mount, rootfs).then(() => { mounted = true; }),
          this.host.runtime.clearExit(id),
          this.host.attachNetwork(c).then(async (net) => {
            networkSettings = net.settings;
            netnsPath = net.netnsPath;
            linkEnv = net.links.env;
            await writeEtcFiles(c.rec, net.etc, net.links.hosts);
          }),
          fsp.rm(persist, { recursive: true, force: true }).then(() => fsp.mkdir(persist, { recursive: true })),
        ]);
        for (const r of prep) if (r.status === 'rejected') throw r.reason;
        const copyUp = c.rec.Berth.volumeCopyUp;
        if (copyUp?.length) {
          await copyImageContentIntoVolumes(rootfs, c.rec.Mounts ?? [], copyUp);
          c.rec.Berth.volumeCopyUp = []; // once, as Docker does at create; saved with the next record write
        }
        await writeSpec(c.rec, bundle, rootfs, this.host.config.cgroupParent, netnsPath, linkEnv);
      } catch (err) {
        task.cancel();
        throw err;
      }
      try {
        const { pid, monitorPid } = await task.go();
        return { pid, conmonPid: monitorPid, networkSettings };
      } catch (err) {
        throw err instanceof TaskStartError ? startFailure(err.runtimeMessage) : err;
      }
    } catch (err) {
      await this.host.network.detach(id).catch(() => undefined);
      if (mounted) await this.host.mounts.unmount(rootfs).catch(() => undefined);
      await fsp.rm(bundle, { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
  }

  /** Removes a created-but-unused runtime: runc state (kills the waiting process), exit file, mount, bundle. */
  async undo(id: string): Promise<void> {
    await this.host.runtime.delete(id, true).catch(() => undefined);
    await this.host.network.detach(id).catch(() => undefined);
    await this.host.runtime.clearExit(id);
    await this.host.mounts.unmount(this.host.paths.rootfsDir(id)).catch(() => undefined);
    await fsp.rm(this.host.paths.bundleDir(id), { recursive: true, force: true }).catch(() => undefined);
  }

  /** runc delete (cgroup, state) and unmount rootfs (in parallel), then drop the bundle. */
  async cleanup(id: string): Promise<void> {
    await Promise.all([
      this.host.runtime.delete(id, true).catch(() => undefined),
      this.host.mounts.unmount(this.host.paths.rootfsDir(id)).catch(() => undefined),
    ]);
    await this.host.network.detach(id).catch(() => undefined);
    await fsp.rm(this.host.paths.bundleDir(id), { recursive: true, force: true }).catch(() => undefined);
  }

  /** Starts making the runtime of a just-created container, so that start finds it ready. */
  prestart(c: Ctr): void {
    if (c.prestart || c.rec.State.Running) return;
    const created = this.create(c);
    created.catch(() => undefined); // start retries and reports
    const timer = setTimeout(() => { void this.host.withLock(c, () => this.drop(c)); }, PRESTART_TTL_MS);
    timer.unref?.();
    c.prestart = { created, timer };
  }

  /** Hands the pre-created runtime to start (or undefined when there is none). */
  take(c: Ctr): Promise<PreparedRuntime> | undefined {
    const p = c.prestart;
    if (!p) return undefined;
    clearTimeout(p.timer);
    c.prestart = undefined;
    return p.created;
  }

  /**
   * Tears a pre-created runtime down (start did not come, or the container is
   * removed or its rootfs is needed elsewhere). Waits for conmon to record the
   * killed process's exit, so that no stale exit file outlives it.
   */
  async drop(c: Ctr): Promise<void> {
    const pre = this.take(c);
    if (!pre) return;
    const rt = await pre.catch(() => undefined);
    if (!rt) return;
    await this.host.runtime.delete(c.rec.Id, true).catch(() => undefined);
    for (let i = 0; i < 100 && this.host.runtime.monitorAlive(rt.conmonPid); i++) await sleep(20);
    await this.undo(c.rec.Id);
  }
}
