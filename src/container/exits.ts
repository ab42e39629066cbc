/**
 * Exit handling: conmon's exit files become state, events and answers to waiters first (a
 * fast `docker run`), then the host cleanup, the restart policy and --rm. Its own module so
 * that what happens after an exit has one owner; the lifecycle verbs (service.ts) and
 * restore (restore.ts) hand exits to it.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { AtomicWriteOptions } from '../common/atomic';
import type { NetworkService } from '../engine/types';
import type { TaskRuntime } from '../runtime/task';
import { networkSettings } from './createconfig';
import type { ContainerPaths, Ctr } from './ctr';
import { nowRfc3339 } from './format';
import type { HealthMonitors } from './health';
import type { LogRotator } from './logdriver';
import { restartDelayMs, shouldRestart } from './restart';
import type { RuntimePreparer } from './rootfs';

/** What exit handling needs of the container service. */
export interface ExitHost {
  readonly runtime: TaskRuntime;
  readonly network: NetworkService;
  readonly health: HealthMonitors;
  readonly logRotation: LogRotator;
  readonly paths: ContainerPaths;
  readonly rootfs: RuntimePreparer;
  get(id: string): Ctr | undefined;
  save(c: Ctr, opts?: AtomicWriteOptions): Promise<void>;
  emit(c: Ctr, action: string, extra?: Record<string, string>): void;
  /** Ends the container's exec sessions. */
  execStopped(id: string): void;
  withLock<T>(c: Ctr, fn: () => Promise<T>): Promise<T>;
  destroy(c: Ctr, removeVolumes: boolean): Promise<void>;
  doStart(c: Ctr): Promise<void>;
}

export class ExitHandler {
  /** Host cleanups of removed containers and exits being applied (shutdown waits for them). */
  readonly cleanups = new Set<Promise<unknown>>();

  constructor(private readonly host: ExitHost) {}

  async scan(): Promise<void> {
    for (const id of await this.host.runtime.exitedIds()) await this.onExitFile(id);
  }

  async onExitFile(file: string): Promise<void> {
    const c = this.host.get(file);
    if (!c || c.removed) return;
    if (c.starting) await c.starting;
    if (!c.rec.State.Running && !c.starting && !c.prestart && !c.exiting) {
      // Left by a runtime that was torn down before it ran (dropped pre-start, crash mid-start).
      await this.host.runtime.clearExit(file);
      return;
    }
    if (c.exitHandled || !c.rec.State.Running) return;
    const code = await this.host.runtime.readExit(file);
    if (code === undefined) return;
    if (code === null) return; // not written yet: the next event brings it
    if (c.exitHandled) return;
    c.exitHandled = true;
    await this.track(this.handle(c, code));
  }

  /** Applies an exit: state, events, waiters first (fast `docker run`), then cleanup, restart policy, auto-remove. */
  async handle(c: Ctr, code: number): Promise<void> {
    const id = c.rec.Id;
    const st = c.rec.State;
    // Off its networks at once (names, ports, endpoints); the host objects go with the runtime cleanup.
    void this.host.network.detach(id).catch(() => undefined);
    this.host.health.stopped(c.rec);
    this.host.logRotation.unwatch(id);
    Object.assign(st, {
      Status: 'exited', Running: false, Paused: false, Restarting: false, OOMKilled: false,
      Pid: 0, ExitCode: Number.isFinite(code) && code >= 0 ? code : 255, FinishedAt: nowRfc3339(),
    });
    c.rec.ExecIDs = null;
    c.rec.NetworkSettings = networkSettings(c.rec.NetworkSettings?.Networks ?? {});
    if (c.rec.HostConfig.AutoRemove && !c.removing && !c.removed && !shouldRestart(c.rec)) {
      // --rm: the record is deleted right away, so no 'exited' record is written, and the host
      // cleanup (runc delete, unmount) runs after the waiters are answered (destroy() does it).
      // A crash before the record is gone finds it 'running' with an exit code: restore() redoes this.
      c.runtimeLeft = true;
      this.host.emit(c, 'die', { exitCode: String(st.ExitCode), execDuration: '0' });
      for (const w of c.exitWaiters.splice(0)) w();
      this.host.execStopped(id);
      await this.host.withLock(c, () => this.host.destroy(c, true)).catch(() => undefined);
      return;
    }
    // Anything that needs the host resources gone (start, remove, withRootfs) awaits this.
    c.exiting = (async () => {
      st.OOMKilled = await fsp.stat(path.join(this.host.paths.ctrDir(id), 'persist', 'oom')).then(() => true, () => false);
      await this.host.rootfs.cleanup(id);
      await this.host.runtime.clearExit(id);
    })().finally(() => { c.exiting = undefined; });
    await this.host.save(c).catch(() => undefined);
    this.host.emit(c, 'die', { exitCode: String(st.ExitCode), execDuration: '0' });
    for (const w of c.exitWaiters.splice(0)) w();
    this.host.execStopped(id);
    if (c.removing || c.removed) return;
    if (shouldRestart(c.rec)) {
      c.rec.RestartCount++;
      st.Restarting = true;
      st.Status = 'restarting';
      await this.host.save(c).catch(() => undefined);
      const delay = restartDelayMs(c.rec.RestartCount);
      c.restartTimer = setTimeout(() => {
        c.restartTimer = undefined;
        void this.host.withLock(c, async () => {
          if (c.removed || c.removing || !st.Restarting || st.Running) return;
          // Restarting stays set until doStart reports running (or fails), so observers never see a gap.
          try { await this.host.doStart(c); } catch {
            st.Restarting = false;
            st.Status = 'exited';
            await this.host.save(c).catch(() => undefined);
          }
        });
      }, delay);
      return;
    }
    if (c.rec.HostConfig.AutoRemove) {
      await this.host.withLock(c, () => this.host.destroy(c, true)).catch(() => undefined);
    } else {
      await c.exiting;
      await this.host.save(c).catch(() => undefined); // OOMKilled
    }
  }

  /** Registers work that shutdown waits for. */
  track<T>(work: Promise<T>): Promise<T> {
    this.cleanups.add(work);
    void work.catch(() => undefined).finally(() => this.cleanups.delete(work));
    return work;
  }
}
