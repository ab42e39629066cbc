/** Container paths as Docker (Go's path package) treats them. */
import * as path from 'node:path';

/** A container path cleaned as Go's path.Clean does: no `.`/`..` parts, no trailing slash. */
export function cleanPath(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}
