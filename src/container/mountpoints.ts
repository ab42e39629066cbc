/**
 * A container's mount points, resolved once at create from everything that asks
 * for one — `--volumes-from`, `-v` (HostConfig.Binds), `--mount` (HostConfig.Mounts),
 * then the anonymous volumes of Config.Volumes (`-v /path` and the image's VOLUMEs)
 * for the paths nothing else covers — in Docker's order of precedence.
 *
 * The result is the container's `Mounts` (inspect, ps) and what the spec builder
 * bind-mounts at every start; volumes are created here (named ones on first use).
 */
import * as fs from 'node:fs';
import { BerthError, internal, invalidArgument } from '../common/errors';
import { runChild } from '../common/linux';
import { cleanPath } from '../common/paths';
import type { MountPoint } from '../engine/types';
import { parseBind } from './binds';
import { resolveInRoot } from '../common/scopedpath';
import type { VolumeService } from '../engine/types';
import { isEmptyDir } from '../volume/service';

/** HostConfig.Mounts entry (the `--mount` flag), as the Engine API carries it. */
export interface ApiMount {
  Type?: string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  BindOptions?: { Propagation?: string } | null;
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string> | null; DriverConfig?: { Name?: string; Options?: Record<string, string> | null } | null } | null;
  TmpfsOptions?: { SizeBytes?: number; Mode?: number } | null;
}

export interface ResolvedMounts {
  points: MountPoint[];
  /** Destinations of volumes to fill with the image's content at the first start (unless nocopy). */
  copyUp: string[];
  /** Anonymous volumes made for this container (removed again if create fails). */
  anonymous: string[];
}

/** A container as `--volumes-from` needs it. */
export interface VolumesFromSource { id: string; mounts: MountPoint[] }

const absolute = (type: string, p: string) => {
  if (!p.startsWith('/')) throw invalidArgument(`invalid mount config for type "${type}": invalid mount path: '${p}' mount path must be absolute`);
  if (cleanPath(p) === '/') throw invalidArgument(`invalid mount config for type "${type}": invalid specification: destination can't be '/'`);
  return cleanPath(p);
};

export async function resolveMountPoints(
  hc: { Binds?: string[] | null; Mounts?: ApiMount[] | null; VolumesFrom?: string[] | null },
  configVolumes: Record<string, unknown> | null | undefined,
  volumes: VolumeService,
  volumesFrom: (ref: string) => VolumesFromSource,
): Promise<ResolvedMounts> {
  const byDest = new Map<string, MountPoint>();
  const explicit = new Set<string>(); // destinations set by -v/--mount: a second one is a duplicate
  const copyUp = new Set<string>();
  const anonymous: string[] = [];
  const named = new Map<string, Record<string, string> | undefined>(); // name -> labels for a new volume

  try {
    // 1. --volumes-from: every mount point of the other container, read-only on request.
    for (const spec of hc.VolumesFrom ?? []) {
      const [ref, mode = ''] = spec.split(':');
      if (!ref || !['', 'ro', 'rw'].includes(mode)) throw invalidArgument(`invalid mode: ${mode}`);
      for (const m of volumesFrom(ref).mounts) {
        if (m.Type === 'tmpfs') continue;
        const rw = mode === '' ? m.RW : mode === 'rw';
        byDest.set(m.Destination, { ...m, RW: rw, Mode: mode || m.Mode });
      }
    }

    // 2. -v: host paths and named volumes.
    for (const raw of hc.Binds ?? []) {
      const b = parseBind(raw);
      if (explicit.has(b.destination)) throw invalidArgument(`Duplicate mount point: ${b.destination}`);
      explicit.add(b.destination);
      if (b.volume) {
        let name = b.source;
        if (!name) {
          name = (await volumes.createAnonymous()).Name;
          anonymous.push(name);
        } else named.set(name, undefined);
        byDest.set(b.destination, { Type: 'volume', Name: name, Source: '', Destination: b.destination, Driver: 'local', Mode: b.source ? b.mode || 'z' : '', RW: !b.readonly, Propagation: '' });
        if (!b.nocopy) copyUp.add(b.destination);
      } else {
        byDest.set(b.destination, { Type: 'bind', Source: b.source, Destination: b.destination, Mode: b.mode, RW: !b.readonly, Propagation: b.propagation });
      }
    }

    // 3. --mount.
    for (const m of hc.Mounts ?? []) {
      const type = m.Type ?? '';
      if (!m.Target) throw invalidArgument(`invalid mount config for type "${type}": field Target must not be empty`);
      const dest = absolute(type, m.Target);
      if (explicit.has(dest)) throw invalidArgument(`Duplicate mount point: ${dest}`);
      explicit.add(dest);
      const rw = !m.ReadOnly;
      if (type === 'bind') {
        if (!m.Source) throw invalidArgument('invalid mount config for type "bind": field Source must not be empty');
        const src = absolute('bind', m.Source);
        if (!fs.existsSync(src)) throw invalidArgument(`invalid mount config for type "bind": bind source path does not exist: ${src}`);
        const prop = m.BindOptions?.Propagation || 'rprivate';
        if (!['shared', 'slave', 'private', 'rshared', 'rslave', 'rprivate'].includes(prop)) throw invalidArgument(`invalid mount config for type "bind": invalid propagation mode: ${prop}`);
        byDest.set(dest, { Type: 'bind', Source: src, Destination: dest, Mode: '', RW: rw, Propagation: prop });
      } else if (type === 'tmpfs') {
        if (m.Source) throw invalidArgument('invalid mount config for type "tmpfs": field Source must be empty');
        byDest.set(dest, { Type: 'tmpfs', Source: '', Destination: dest, Mode: '', RW: rw, Propagation: '' });
      } else if (type === 'volume') {
        const driver = m.VolumeOptions?.DriverConfig?.Name || 'local';
        if (driver !== 'local') throw new BerthError('not-found', `plugin "${driver}" not found`);
        if (Object.keys(m.VolumeOptions?.DriverConfig?.Options ?? {}).length) {
          throw invalidArgument('invalid mount config for type "volume": volume options (volume-opt) are not supported by berth\'s local driver yet');
        }
        let name = m.Source ?? '';
        if (!name) {
          name = (await volumes.createAnonymous()).Name;
          anonymous.push(name);
        } else {
          named.set(name, m.VolumeOptions?.Labels ?? undefined);
        }
        byDest.set(dest, { Type: 'volume', Name: name, Source: '', Destination: dest, Driver: 'local', Mode: 'z', RW: rw, Propagation: '' });
        if (!m.VolumeOptions?.NoCopy) copyUp.add(dest);
      } else {
        throw invalidArgument(`invalid mount config for type "${type}": mount type unknown`);
      }
    }

    // 4. Anonymous volumes for Config.Volumes paths nothing above mounts.
    for (const p of Object.keys(configVolumes ?? {})) {
      const dest = absolute('volume', p);
      if (byDest.has(dest)) continue;
      const v = await volumes.createAnonymous();
      anonymous.push(v.Name);
      byDest.set(dest, { Type: 'volume', Name: v.Name, Source: '', Destination: dest, Driver: 'local', Mode: '', RW: true, Propagation: '' });
      copyUp.add(dest);
    }

    // Named volumes come into existence on first use.
    for (const [name, labels] of named) await volumes.create({ Name: name, Labels: labels ?? null });
  } catch (err) {
    for (const name of anonymous) await volumes.remove(name, true).catch(() => undefined);
    throw err;
  }

  const points = [...byDest.values()]
    .map((m) => (m.Type === 'volume' ? { ...m, Source: volumes.mountpoint(m.Name!) } : m))
    .sort((a, b) => (a.Destination < b.Destination ? -1 : a.Destination > b.Destination ? 1 : 0));
  return { points, copyUp: [...copyUp].filter((d) => byDest.get(d)?.Type === 'volume'), anonymous };
}

/**
 * Docker's copy-up: a volume that is still empty receives what the image has at
 * its mount path (files, owners, modes, and the directory's own owner and mode),
 * once, when the container's runtime is first made. The path is resolved inside
 * the rootfs, so a symlink in the image can not make it copy from the host.
 */
export async function copyImageContentIntoVolumes(rootfs: string, points: MountPoint[], destinations: string[]): Promise<void> {
  for (const dest of destinations) {
    const m = points.find((p) => p.Type === 'volume' && p.Destination === dest);
    if (!m || !isEmptyDir(m.Source)) continue;
    const from = resolveInRoot(rootfs, dest);
    let st: fs.Stats;
    try { st = fs.statSync(from); } catch { continue; }
    if (!st.isDirectory()) continue;
    const r = await runChild('/bin/cp', ['-a', `${from}/.`, `${m.Source}/`], { PATH: '/usr/bin:/bin' }, 120_000);
    if (r.code !== 0) throw internal(`copying the image's ${dest} into volume ${m.Name}: ${r.stderr.trim() || `cp exited ${r.code}`}`);
  }
}
