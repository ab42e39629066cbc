/** Mounting a container rootfs (one `mount` spawn) and undoing it. */
import { execFile } from 'node:child_process';
import { internal } from '../common/errors';
import type { MountSpec } from '../engine/types';
import { resolveBinary } from '../engine/binaries';

// Resolved once: execFile would otherwise probe every PATH entry on each container start.
let mountBin: string | undefined;
let umountBin: string | undefined;
const mountPath = () => (mountBin ??= resolveBinary('mount'));
const umountPath = () => (umountBin ??= resolveBinary('umount'));

function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 30_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(String(stderr).trim() || err.message)); else resolve();
    });
  });
}

export async function mountSpec(m: MountSpec, target: string): Promise<void> {
  try {
    if (m.type === 'bind') {
      await run(mountPath(), ['--bind', ...(m.options.length ? ['-o', m.options.join(',')] : []), m.source, target]);
    } else {
      await run(mountPath(), ['-t', m.type, m.source, '-o', m.options.join(','), target]);
    }
  } catch (err) {
    throw internal(`error mounting container rootfs at ${target}: ${(err as Error).message}`, err);
  }
}

/** Unmounts; falls back to a lazy unmount when busy. Not mounted is fine. */
export async function unmount(target: string): Promise<void> {
  try {
    await run(umountPath(), [target]);
  } catch (err) {
    const msg = (err as Error).message;
    if (/not mounted|no mount point|No such file|not found/i.test(msg)) return;
    await run(umountPath(), ['-l', target]);
  }
}
