/**
 * Mounting a MountSpec (a snapshot's overlay: one mount(2) on the thread pool) and undoing it.
 * It lives in store/ beside the snapshots that describe the mounts, so that both the container
 * area (rootfs at start, cp, export) and the builder (RUN steps) reach it from above.
 */
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
