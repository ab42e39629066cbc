/**
 * Restore after a berthd restart: records are read back, half-made containers undone,
 * exits that happened while berthd was down applied (through exits.ts), and running
 * containers watched again. Its own module because it runs once at start-up and touches
 * every piece of the lifecycle; the service hands it what it needs (RestoreHost).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { AtomicWriteOptions } from '../common/atomic';
import type { ImageService, NetworkService } from '../engine/types';
import type { TaskRuntime } from '../runtime/task';
import { newCtr, type ContainerPaths, type Ctr } from './ctr';
import type { ExitHandler } from './exits';
import type { HealthMonitors } from './health';
import type { RuntimePreparer } from './rootfs';
import type { ContainerStore } from './store';

/** What restore needs of the container service. */
export interface RestoreHost {
  readonly store: ContainerStore;
  readonly paths: ContainerPaths;
  readonly runtime: TaskRuntime;
  readonly images: ImageService;
  readonly network: NetworkService;
  readonly health: HealthMonitors;
  readonly rootfs: RuntimePreparer;
  readonly exits: ExitHandler;
  /** Registers a container read back (id and name). */
  add(c: Ctr): void;
  all(): Iterable<Ctr>;
  save(c: Ctr, opts?: AtomicWriteOptions): Promise<void>;
  /** Log rotation of a running container. */
  watchLog(c: Ctr): void;
}

export async function restoreContainers(host: RestoreHost): Promise<void> {
  const { records, orphans } = await host.store.loadAll();
  for (const id of orphans) {
    // Half-created (crash during create or remove): undo, host state first.
    if (fs.existsSync(host.paths.bundleDir(id))) await host.rootfs.cleanup(id);
    await host.runtime.clearExit(id);
    await host.images.removeContainerRootfs(id).catch(() => undefined);
    await fsp.rm(host.paths.ctrDir(id), { recursive: true, force: true }).catch(() => undefined);
  }
  for (const rec of records) {
    const c = newCtr(rec);
    host.add(c);
  }
  for (const c of host.all()) {
    const st = c.rec.State;
    if (!st.Running && !st.Restarting) {
      // A crash mid-start can leave a mount/bundle/runc state behind for a stopped container.
      if (fs.existsSync(host.paths.bundleDir(c.rec.Id))) await host.rootfs.cleanup(c.rec.Id);
      continue;
    }
    const exitCode = await host.runtime.readExit(c.rec.Id);
    if (exitCode !== undefined && exitCode !== null) {
      st.Running = true;
      c.exitHandled = true;
      await host.exits.handle(c, exitCode);
      continue;
    }
    if (st.Running && host.runtime.monitorAlive(c.rec.Berth.conmonPid)) {
      // Still running: keep watching, and the probes and log rotation go on where they were.
      if (!st.Paused) host.health.resume(c.rec);
      host.watchLog(c);
      continue;
    }
    if (st.Restarting && !st.Running) {
      // Daemon died between exit and restart: apply the policy again.
      st.Restarting = false;
      st.Status = 'exited';
      await host.save(c).catch(() => undefined);
      continue;
    }
    // conmon vanished without an exit file (e.g. reboot): use the persisted code.
    const persisted = await fsp.readFile(path.join(host.paths.ctrDir(c.rec.Id), 'persist', 'exit'), 'utf8').catch(() => '');
    c.exitHandled = true;
    await host.exits.handle(c, persisted.trim() ? Number.parseInt(persisted.trim(), 10) : 255);
  }
  await host.exits.scan();
  await host.network.restore(new Set([...host.all()].filter((c) => c.rec.State.Running).map((c) => c.rec.Id)));
}
