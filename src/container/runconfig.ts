/**
 * Docker's rules for a container's process: argv from Entrypoint and Cmd,
 * the image config merged under the create request's, the default hostname.
 */
import * as os from 'node:os';
import { replaceOrAppendEnv } from '../common/env';
import { invalidArgument } from '../common/errors';

/**
 * The container's argv from its (create-time merged) Config, as Docker's
 * getEntrypointAndArgs does: Entrypoint + Cmd. `Entrypoint: [""]` means
 * "no entrypoint" (what `--entrypoint ""` sends).
 */
export function resolveArgs(config: { Entrypoint?: string[] | null; Cmd?: string[] | null }): string[] {
  let entrypoint = config.Entrypoint ?? [];
  if (entrypoint.length === 1 && entrypoint[0] === '') entrypoint = [];
  const args = [...entrypoint, ...(config.Cmd ?? [])];
  if (args.length === 0) throw invalidArgument('No command specified');
  return args;
}

export interface RunConfigLike { Env?: string[] | null; Cmd?: string[] | null; Entrypoint?: string[] | null; WorkingDir?: string; User?: string }

/**
 * Merges a create request's Config with the image's config like Docker's
 * merge(): image Env first (overridden by the user's), image Cmd only when
 * the user gives neither Entrypoint nor Cmd, image Entrypoint unless the
 * user set one (an explicit `[""]` clears it).
 */
export function mergeImageConfig<T extends RunConfigLike>(
  user: T, image: { Env?: string[]; Cmd?: string[] | null; Entrypoint?: string[] | null; WorkingDir?: string; User?: string } | undefined,
): T & RunConfigLike {
  const out: T & RunConfigLike = { ...user };
  if (!image) return out;
  out.Env = replaceOrAppendEnv(image.Env ?? [], user.Env ?? []);
  const userEntry = user.Entrypoint ?? [];
  if (userEntry.length === 0) {
    if ((user.Cmd ?? []).length === 0) out.Cmd = image.Cmd ?? null;
    if (user.Entrypoint == null) out.Entrypoint = image.Entrypoint ?? null;
  }
  if (!user.WorkingDir) out.WorkingDir = image.WorkingDir ?? '';
  if (!user.User) out.User = image.User ?? '';
  return out;
}

/** Docker's default Config.Hostname: the short id, or the host's name with --network host. */
export function defaultHostname(containerId: string, networkMode: string | undefined): string {
  return networkMode === 'host' ? os.hostname() : containerId.slice(0, 12);
}
