/** Locating the helper programs berthd runs (runc, conmon, ...) once, at start-up. */
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Resolves a program name to an absolute path the way a shell would.
 * conmon insists on an absolute runtime path, and resolving once at daemon
 * start keeps PATH lookups out of the container-start hot path.
 */
export function resolveBinary(name: string, extraDirs: string[] = ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/sbin', '/usr/local/bin']): string {
  if (name.includes('/')) return path.resolve(name);
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), ...extraDirs];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch { /* keep looking */ }
  }
  throw new Error(`${name} not found in PATH; install it (apt-get install -y ${name})`);
}
