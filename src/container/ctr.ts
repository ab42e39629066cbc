/**
 * The per-container state the lifecycle modules share (service.ts owns it; exits.ts,
 * rootfs.ts and restore.ts act on it for the service), and where a container's files are.
 */
import * as path from 'node:path';
import { Mutex } from '../common/mutex';
import type { AttachBridge } from './attach';
import type { ContainerRecord, ContainerStore } from './store';

export interface Ctr {
  rec: ContainerRecord;
  /** Serialises lifecycle operations (start/stop/remove/...). */
  lock: Mutex;
  /** Attach sessions waiting for the next start. */
  pending: AttachBridge[];
  exitWaiters: Array<() => void>;
  removedWaiters: Array<() => void>;
  /** Set while start is between conmon and the running state (exit handling waits for it). */
  starting?: Promise<void>;
  /** Set while exit cleanup (runc delete, unmount) runs. */
  exiting?: Promise<void>;
  /**
   * The runtime made ahead of start (mount, bundle, conmon + runc create) right
   * after create answered: the docker CLI's attach/wait/start round trips then
   * overlap with runc create. Dropped again if start does not come soon.
   */
  prestart?: { created: Promise<PreparedRuntime>; timer: NodeJS.Timeout };
  /** An --rm exit left runc state and the rootfs mount for destroy() to clean up. */
  runtimeLeft?: boolean;
  exitHandled: boolean;
  removed: boolean;
  removing: boolean;
  restartTimer?: NodeJS.Timeout;
}

/** A container whose process exists (runc created, conmon watching) but has not been started. */
export interface PreparedRuntime { pid: number; conmonPid: number; networkSettings: any }

export function newCtr(rec: ContainerRecord): Ctr {
  return { rec, lock: new Mutex(), pending: [], exitWaiters: [], removedWaiters: [], exitHandled: false, removed: false, removing: false };
}

/** Where a container's files are: bundle and rootfs mount in the exec root, its directory in the data root. */
export class ContainerPaths {
  constructor(private readonly execRoot: string, private readonly store: ContainerStore) {}
  bundleDir(id: string): string { return path.join(this.execRoot, 'b', id.slice(0, 12)); }
  rootfsDir(id: string): string { return path.join(this.bundleDir(id), 'rootfs'); }
  attachSocket(id: string): string { return path.join(this.bundleDir(id), 'attach'); }
  ctrDir(id: string): string { return this.store.dir(id); }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref?.());
}
