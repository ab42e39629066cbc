/**
 * Docker's `-v` syntax and the mount points HostConfig names (binds and
 * `--mount` binds/tmpfs; volumes are resolved by mountpoints.ts).
 */
import { invalidArgument } from '../common/errors';
import { cleanPath } from '../common/paths';
import type { MountPoint } from '../engine/types';
import { PROPAGATIONS, type DockerHostConfig } from '../runtime/spec';

export interface ParsedBind {
  /** Host path, or the volume's name (empty for an anonymous volume). */
  source: string;
  destination: string;
  /** A named (or anonymous) volume rather than a host path. */
  volume: boolean;
  readonly: boolean;
  propagation: string;
  /** The mode part as written (`ro`, `ro,z`...), which Docker reports as the mount's Mode. */
  mode: string;
  nocopy: boolean;
  raw: string;
}

/** Parses one `-v` entry: `/host:/ctr[:opts]`, `volume:/ctr[:opts]`, or `/ctr` (anonymous volume). */
export function parseBind(raw: string): ParsedBind {
  const parts = raw.split(':');
  const spec = () => invalidArgument(`invalid volume specification: '${raw}'`);
  if (parts.length < 1 || parts.length > 3 || parts.some((p, i) => p === '' && i < 2)) throw spec();
  if (parts.length === 1) {
    if (!raw.startsWith('/')) throw invalidArgument(`invalid volume specification: '${raw}': invalid mount config for type "volume": invalid mount path: '${raw}' mount path must be absolute`);
    if (cleanPath(raw) === '/') throw invalidArgument(`invalid specification: destination can't be '/' in '${raw}'`);
    return { source: '', destination: cleanPath(raw), volume: true, readonly: false, propagation: '', mode: '', nocopy: false, raw };
  }
  const [source, destination, mode = ''] = parts as [string, string, string?];
  const volume = !source.startsWith('/');
  if (!destination.startsWith('/')) {
    throw invalidArgument(`invalid volume specification: '${raw}': invalid mount config for type "${volume ? 'volume' : 'bind'}": invalid mount path: '${destination}' mount path must be absolute`);
  }
  if (cleanPath(destination) === '/') throw invalidArgument(`invalid specification: destination can't be '/' in '${raw}'`);
  let readonly = false;
  let propagation = volume ? '' : 'rprivate';
  let nocopy = false;
  const seen = { rw: false, label: false, prop: false, copy: false, consistency: false };
  if (mode !== '') {
    for (const m of mode.split(',')) {
      const bad = () => invalidArgument(`invalid mode: ${mode}`);
      if (m === 'ro' || m === 'rw') { if (seen.rw) throw bad(); seen.rw = true; readonly = m === 'ro'; }
      else if (m === 'z' || m === 'Z') { if (seen.label) throw bad(); seen.label = true; } // no SELinux here: nothing to relabel
      else if (PROPAGATIONS.includes(m) && !volume) { if (seen.prop) throw bad(); seen.prop = true; propagation = m; }
      else if (m === 'nocopy' && volume) { if (seen.copy) throw bad(); seen.copy = true; nocopy = true; }
      else if (['consistent', 'cached', 'delegated'].includes(m)) { if (seen.consistency) throw bad(); seen.consistency = true; }
      else throw bad();
    }
  }
  return { source: volume ? source : cleanPath(source), destination: cleanPath(destination), volume, readonly, propagation, mode, nocopy, raw };
}

/**
 * The host-path and tmpfs mount points HostConfig asks for (volumes are left out:
 * the container service resolves them). Used when a spec is built without the
 * container's resolved Mounts: the create-time validation, and older records.
 */
export function hostConfigMountPoints(hc: DockerHostConfig): MountPoint[] {
  const out: MountPoint[] = [];
  for (const b of (hc.Binds ?? []).map(parseBind)) {
    if (!b.volume) out.push({ Type: 'bind', Source: b.source, Destination: b.destination, Mode: b.mode, RW: !b.readonly, Propagation: b.propagation });
  }
  for (const m of (hc.Mounts ?? []) as Array<{ Type?: string; Source?: string; Target?: string; ReadOnly?: boolean; BindOptions?: { Propagation?: string } | null }>) {
    if (!m.Target || !m.Target.startsWith('/')) throw invalidArgument(`invalid mount config for type "${m.Type ?? ''}": invalid mount path: '${m.Target ?? ''}' mount path must be absolute`);
    const dest = cleanPath(m.Target);
    if (m.Type === 'bind' && m.Source) out.push({ Type: 'bind', Source: m.Source, Destination: dest, Mode: '', RW: !m.ReadOnly, Propagation: m.BindOptions?.Propagation || 'rprivate' });
    else if (m.Type === 'tmpfs') out.push({ Type: 'tmpfs', Source: '', Destination: dest, Mode: '', RW: !m.ReadOnly, Propagation: '' });
  }
  return out;
}
