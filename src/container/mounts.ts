/** How the container lifecycle mounts a rootfs: on the host (store/mount.ts), or not at all in unit tests. */
import type { MountSpec } from '../engine/types';
import { mountSpec, unmount } from '../store/mount';

export interface RootfsMounts {
  mount(m: MountSpec, target: string): Promise<void>;
  unmount(target: string): Promise<void>;
}

export const hostMounts: RootfsMounts = { mount: mountSpec, unmount };
