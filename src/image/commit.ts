/**
 * `docker commit`: the container's writable layer (overlay upperdir) becomes
 * exactly one new layer on top of its image's layers. The container is
 * paused meanwhile (unless pause=false) so the layer is consistent.
 */
import { invalidArgument, isKind } from '../common/errors';
import { parseRepoAndTag, referenceString } from '../common/reference';
import type { Services } from '../engine/services';
import type { ImageRunConfig, OciImageConfig } from '../engine/types';
import { mountpointOnlyDirs, scanUpperDir, upperDirToLayerTar } from '../store/changes';
import { applyChanges } from './import';

export interface CommitOptions {
  container: string;
  repo: string;
  tag: string;
  comment: string;
  author: string;
  pause: boolean;
  changes: string[];
  /** Container config overrides from the request body (ContainerConfig shape). */
  config?: Record<string, unknown>;
}

/** Fields of a container Config that belong in an image config. */
const RUN_CONFIG_KEYS = ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal', 'OnBuild', 'Healthcheck', 'ArgsEscaped', 'Shell'] as const;

function runConfigOf(c: Record<string, any> | undefined): ImageRunConfig {
  const out: Record<string, unknown> = {};
  for (const k of RUN_CONFIG_KEYS) {
    const v = c?.[k];
    if (v === undefined || v === null || v === '' || (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0)) continue;
    out[k] = v;
  }
  return out as ImageRunConfig;
}

/**
 * Docker's merge(userConf, imageConf): fields the user left empty come from
 * the container's config; env, labels, ports and volumes are unions.
 */
function merge(user: ImageRunConfig, base: ImageRunConfig): ImageRunConfig {
  const out: ImageRunConfig = { ...user };
  if (!out.User) out.User = base.User;
  if (base.ExposedPorts) out.ExposedPorts = { ...base.ExposedPorts, ...(out.ExposedPorts ?? {}) };
  if (base.Env) {
    const keys = new Set((out.Env ?? []).map((e) => e.split('=')[0]));
    out.Env = [...(out.Env ?? []), ...base.Env.filter((e) => !keys.has(e.split('=')[0]))];
  }
  if (base.Labels) out.Labels = { ...base.Labels, ...(out.Labels ?? {}) };
  if (!out.Cmd?.length && !out.Entrypoint?.length) {
    out.Cmd = base.Cmd;
    out.Entrypoint = base.Entrypoint;
  }
  if (!out.WorkingDir) out.WorkingDir = base.WorkingDir;
  if (base.Volumes) out.Volumes = { ...base.Volumes, ...(out.Volumes ?? {}) };
  if (!out.StopSignal) out.StopSignal = base.StopSignal;
  if (!out.OnBuild?.length) out.OnBuild = base.OnBuild;
  if (out.Healthcheck === undefined) out.Healthcheck = base.Healthcheck;
  if (!out.Shell?.length) out.Shell = base.Shell;
  return runConfigOf(out as Record<string, unknown>);
}

/** Returns the new image id (`sha256:...`). */
export async function commitContainer(services: Services, opts: CommitOptions): Promise<string> {
  const { images } = services;
  const containers = services.containers;
  const ctr = await containers.inspect(opts.container);
  const id: string = ctr.Id;
  const tags = opts.repo ? [referenceString(parseRepoAndTag(opts.repo, opts.tag || undefined))] : [];
  if (!opts.repo && opts.tag) throw invalidArgument('tag is not allowed without a repository');

  const containerConfig = runConfigOf(ctr.Config);
  const userConfig = opts.config ? runConfigOf(opts.config) : containerConfig;
  const newRunConfig = merge(applyChanges(userConfig, opts.changes), containerConfig);

  const parent = await images.resolve(ctr.Image);
  const parentBytes = await images.configBytes(parent.id);
  const parentConfig = JSON.parse(parentBytes.toString('utf8')) as OciImageConfig;
  const parentDiffs = parentConfig.rootfs?.diff_ids ?? [];

  const mustPause = opts.pause && ctr.State?.Running && !ctr.State?.Paused;
  // The container may exit between inspect and pause (pause then says it is not running): nothing to pause.
  const paused = mustPause && await containers.pause(id).then(() => true, (err) => {
    if (isKind(err, 'conflict')) return false;
    throw err;
  });
  try {
    const upper = images.containerUpperDir(id);
    const entries = await scanUpperDir(upper);
    const quiet = await mountpointOnlyDirs(upper, entries);
    const created = new Date().toISOString();
    const cmd: string[] = ctr.Config?.Cmd ?? [];
    const history = [
      ...(parentConfig.history ?? []),
      {
        created,
        ...(opts.author ? { author: opts.author } : {}),
        created_by: cmd.join(' '),
        ...(opts.comment ? { comment: opts.comment } : {}),
      },
    ];
    const { rootfs: _rootfs, ...inherited } = parentConfig;
    const config = {
      ...inherited,
      architecture: parentConfig.architecture,
      os: parentConfig.os,
      created,
      ...(opts.author ? { author: opts.author } : { author: undefined }),
      ...(opts.comment ? { comment: opts.comment } : { comment: undefined }),
      container: id,
      config: newRunConfig,
      history,
    };
    const record = await images.createImageFromLayers({
      layers: [
        ...parentDiffs.map((d) => ({ diffID: d, open: () => images.openLayerTar(d) })),
        { open: async () => upperDirToLayerTar(upper, entries, quiet) },
      ],
      config: JSON.parse(JSON.stringify(config)),
      tags,
      parent: parent.id,
      eventAction: 'commit',
    });
    return record.id;
  } finally {
    if (paused) await containers.unpause(id).catch(() => undefined);
  }
}
