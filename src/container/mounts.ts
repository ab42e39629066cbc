/** Mounting a container rootfs (one mount(2) on the thread pool) and undoing it. */
import { internal } from '../common/errors';
import { MNT_DETACH, mount, umount2 } from '../common/linux';
import type { MountSpec } from '../engine/types';

/** Mounts a filesystem described by a MountSpec (an overlay: its options are the mount data). */
export async function mountSpec(m: MountSpec, target: string): Promise<void> {
  try {
    await mount(m.source, target, m.type, 0, m.options.join(','));
  } catch (err) {
    throw internal(`error mounting container rootfs at ${target}: ${(err as Error).message}`, err);
  }
}

/** Unmounts; falls back to a lazy unmount when busy. Not mounted (or gone) is fine. */
export async function unmount(target: string): Promise<void> {
  try {
    await umount2(target, 0);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EINVAL' || code === 'ENOENT') return;
    if (code !== 'EBUSY') throw err;
    await umount2(target, MNT_DETACH);
  }
}

/** How the lifecycle mounts a container's rootfs: on the host, or not at all in unit tests. */
export interface RootfsMounts {
  mount(m: MountSpec, target: string): Promise<void>;
  unmount(target: string): Promise<void>;
}

export const hostMounts: RootfsMounts = { mount: mountSpec, unmount };
