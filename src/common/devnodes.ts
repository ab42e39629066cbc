/**
 * Device nodes and FIFOs from tar entries (layer unpacking, `docker cp` into a
 * container): one rule for the mknod(1) operands. Node has no mknod(2); the
 * layer code batches these into one shell per layer, cp runs mknod per entry.
 */
import { spawn } from 'node:child_process';

export interface SpecialEntry { type?: string | null; devmajor?: number; devminor?: number }

/** mknod(1) operands after the path: `p`, `c MAJOR MINOR` or `b MAJOR MINOR`. */
export function mknodOperands(h: SpecialEntry): string[] {
  if (h.type === 'fifo') return ['p'];
  return [h.type === 'block-device' ? 'b' : 'c', String(h.devmajor ?? 0), String(h.devminor ?? 0)];
}

/** Creates one device node or FIFO at `target`. */
export function makeSpecialFile(target: string, h: SpecialEntry): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('mknod', ['--', target, ...mknodOperands(h)], { stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`mknod ${target} failed (exit ${code})`))));
  });
}
