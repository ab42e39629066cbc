/** The detach-keys query parameter of attach and exec, checked with dockerd's words. */
import { invalidArgument } from '../common/errors';
import { DEFAULT_DETACH_KEYS, detachKeyBytes } from '../common/detachkeys';

export { DetachKeyMatcher, DEFAULT_DETACH_KEYS } from '../common/detachkeys';

/** The attach `detachKeys` parameter; a bad sequence is dockerd's 400. */
export function parseDetachKeys(spec: string | undefined): number[] {
  if (!spec) return DEFAULT_DETACH_KEYS;
  try {
    return detachKeyBytes(spec);
  } catch {
    throw invalidArgument(`Invalid detach keys (${spec}) provided`);
  }
}
