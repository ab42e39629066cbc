/** Disk usage of a directory tree (container SizeRw, volume sizes). */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

/**
 * Apparent size of the regular files under `dir` (hard links counted once),
 * as Docker reports a container's SizeRw. A missing dir counts as 0.
 */
export async function directorySize(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (d: string): Promise<void> => {
    let entries: import('node:fs').Dirent[];
    try { entries = await fsp.readdir(d, { withFileTypes: true }); } catch { return; }
    await Promise.all(entries.map(async (e) => {
      const p = path.join(d, e.name);
      if (e.isDirectory()) return walk(p);
      if (!e.isFile()) return;
      try {
        const st = await fsp.lstat(p);
        const key = `${st.dev}:${st.ino}`;
        if (st.nlink > 1) { if (seen.has(key)) return; seen.add(key); }
        total += st.size;
      } catch { /* vanished */ }
    }));
  };
  await walk(dir);
  return total;
}
