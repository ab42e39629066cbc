/**
 * Volumes of the `local` driver: a directory `<data-root>/volumes/<name>/_data`
 * that containers bind-mount, plus `volume.json` beside it (name, labels, time).
 *
 * Crash safety: the metadata file is written atomically after `_data` exists and
 * is what makes a volume exist; a directory without it (a create cut short) is
 * removed at start-up. Removal deletes the metadata first, so a removal cut short
 * leaves an orphan directory that start-up removes, never a half volume.
 *
 * Which containers use a volume is the container service's knowledge; it tells
 * this service through `setUsageProbe` (as it does for images).
 */
import { KeyedMutex } from '../common/mutex';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { readJsonIfExists, writeJsonAtomic, fsyncDir } from '../common/atomic';
import { directorySize } from '../common/du';
import { BerthError, conflict, invalidArgument, notFound } from '../common/errors';
import type { DaemonConfig } from '../engine/config';
import type { EventBus } from '../engine/events';
import type { VolumeCreateRequest, VolumeService, VolumeView } from '../engine/types';
import { labelMatches } from '../common/labels';

/** The label Docker (23+) puts on volumes it creates for a container, which `volume prune` removes by default. */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const META = 'volume.json';

interface VolumeMeta { Name: string; CreatedAt: string; Labels: Record<string, string> | null }


const LIST_FILTERS = new Set(['dangling', 'driver', 'label', 'name']);
const PRUNE_FILTERS = new Set(['label', 'label!', 'all']);

function boolFilter(values: string[], name: string): boolean {
  const v = values[values.length - 1]!;
  if (['true', '1'].includes(v)) return true;
  if (['false', '0'].includes(v)) return false;
  throw invalidArgument(`invalid filter '${name}=${v}'`);
}

export class LocalVolumes implements VolumeService {
  private readonly root: string;
  private readonly volumes = new Map<string, VolumeMeta>();
  /** Names being created or removed right now: a second create/remove of the same name waits its turn. */
  private readonly busy = new KeyedMutex();
  private usedBy: (name: string) => string[] = () => [];

  constructor(config: DaemonConfig, private readonly events: EventBus) {
    this.root = path.join(config.dataRoot, 'volumes');
  }

  /** Loads existing volumes; removes directories that never got (or already lost) their metadata. */
  async open(): Promise<void> {
    await fsp.mkdir(this.root, { recursive: true, mode: 0o701 });
    for (const name of await fsp.readdir(this.root)) {
      const meta = await readJsonIfExists<VolumeMeta>(path.join(this.root, name, META)).catch(() => undefined);
      if (meta && meta.Name === name) this.volumes.set(name, meta);
      else await fsp.rm(path.join(this.root, name), { recursive: true, force: true });
    }
  }

  /** The container service answers "which containers refer to this volume". */
  setUsageProbe(probe: (name: string) => string[]): void {
    this.usedBy = probe;
  }

  mountpoint(name: string): string {
    return path.join(this.root, name, '_data');
  }

  private view(m: VolumeMeta): VolumeView {
    return { CreatedAt: m.CreatedAt, Driver: 'local', Labels: m.Labels, Mountpoint: this.mountpoint(m.Name), Name: m.Name, Options: null, Scope: 'local' };
  }

  private serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.busy.run(name, fn);
  }

  /** POST /volumes/create: creating a name that exists returns that volume, as Docker does. */
  create(req: VolumeCreateRequest): Promise<VolumeView> {
    const driver = req.Driver || 'local';
    if (driver !== 'local') throw new BerthError('not-found', `plugin "${driver}" not found`);
    if (req.DriverOpts && Object.keys(req.DriverOpts).length) {
      // The local driver's type/device/o mount a filesystem at the volume; Berth only makes directories.
      const what = req.Name ? `create ${req.Name}` : 'create';
      throw invalidArgument(`${what}: volume options (${Object.keys(req.DriverOpts).join(', ')}) are not supported by berth's local driver yet`);
    }
    const name = req.Name || randomBytes(32).toString('hex');
    if (!NAME_RE.test(name)) {
      throw invalidArgument(`create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
    }
    return this.serial(name, async () => {
      const existing = this.volumes.get(name);
      if (existing) return this.view(existing);
      const dir = path.join(this.root, name);
      const meta: VolumeMeta = { Name: name, CreatedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), Labels: req.Labels && Object.keys(req.Labels).length ? { ...req.Labels } : null };
      try {
        await fsp.mkdir(path.join(dir, '_data'), { recursive: true, mode: 0o755 });
        await fsp.chmod(dir, 0o701);
        await writeJsonAtomic(path.join(dir, META), meta);
        await fsyncDir(this.root);
      } catch (err) {
        await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
        throw err;
      }
      this.volumes.set(name, meta);
      this.events.emitEvent('volume', 'create', name, { driver: 'local' });
      return this.view(meta);
    });
  }

  /** A new anonymous volume for a container (`-v /path`, an image VOLUME, `--mount type=volume` without source). */
  createAnonymous(): Promise<VolumeView> {
    return this.create({ Labels: { [ANONYMOUS_LABEL]: '' } });
  }

  isAnonymous(name: string): boolean {
    const m = this.volumes.get(name);
    return Boolean(m?.Labels && ANONYMOUS_LABEL in m.Labels);
  }

  has(name: string): boolean {
    return this.volumes.has(name);
  }

  inspect(name: string): VolumeView {
    const m = this.volumes.get(name);
    if (!m) throw notFound(`get ${name}: no such volume`);
    return this.view(m);
  }

  list(filters: Record<string, string[]>): VolumeView[] {
    for (const k of Object.keys(filters)) if (!LIST_FILTERS.has(k)) throw invalidArgument(`invalid filter '${k}'`);
    let out = [...this.volumes.values()];
    if (filters.name?.length) out = out.filter((m) => filters.name!.some((n) => m.Name.includes(n)));
    if (filters.driver?.length && !filters.driver.includes('local')) out = [];
    for (const l of filters.label ?? []) out = out.filter((m) => labelMatches(m.Labels, l));
    if (filters.dangling?.length) {
      const dangling = boolFilter(filters.dangling, 'dangling');
      out = out.filter((m) => (this.usedBy(m.Name).length === 0) === dangling);
    }
    return out.sort((a, b) => a.Name.localeCompare(b.Name)).map((m) => this.view(m));
  }

  /** For /system/df: every volume with its size and the number of containers using it. */
  async usage(): Promise<VolumeView[]> {
    return Promise.all([...this.volumes.values()].map(async (m) => ({
      ...this.view(m),
      UsageData: { Size: await directorySize(this.mountpoint(m.Name)).catch(() => -1), RefCount: this.usedBy(m.Name).length },
    })));
  }

  /** DELETE /volumes/{name}: 409 while a container (running or not) refers to it; `force` ignores a missing one. */
  remove(name: string, force = false): Promise<void> {
    return this.serial(name, async () => {
      if (!this.volumes.has(name)) {
        if (force) return;
        throw notFound(`get ${name}: no such volume`);
      }
      const users = this.usedBy(name);
      if (users.length) throw conflict(`remove ${name}: volume is in use - [${users.join(', ')}]`);
      await this.destroy(name);
    });
  }

  private async destroy(name: string): Promise<void> {
    const dir = path.join(this.root, name);
    // Metadata first: from here on a crash leaves an orphan directory that open() removes.
    await fsp.rm(path.join(dir, META), { force: true });
    this.volumes.delete(name);
    await fsp.rm(dir, { recursive: true, force: true });
    this.events.emitEvent('volume', 'destroy', name, { driver: 'local' });
  }

  /** POST /volumes/prune: unused anonymous volumes, or every unused one with the `all` filter. */
  async prune(filters: Record<string, string[]>): Promise<{ VolumesDeleted: string[] | null; SpaceReclaimed: number }> {
    for (const k of Object.keys(filters)) if (!PRUNE_FILTERS.has(k)) throw invalidArgument(`invalid filter '${k}'`);
    const all = filters.all?.length ? boolFilter(filters.all, 'all') : false;
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const m of [...this.volumes.values()]) {
      if (!all && !(m.Labels && ANONYMOUS_LABEL in m.Labels)) continue;
      if (!(filters.label ?? []).every((l) => labelMatches(m.Labels, l))) continue;
      if ((filters['label!'] ?? []).some((l) => labelMatches(m.Labels, l))) continue;
      await this.serial(m.Name, async () => {
        if (!this.volumes.has(m.Name) || this.usedBy(m.Name).length) return;
        const size = await directorySize(this.mountpoint(m.Name)).catch(() => 0);
        await this.destroy(m.Name);
        deleted.push(m.Name);
        reclaimed += size;
      });
    }
    this.events.emitEvent('volume', 'prune', '', { reclaimed: String(reclaimed) });
    return { VolumesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }
}

export async function createVolumeService(config: DaemonConfig, events: EventBus): Promise<VolumeService> {
  const svc = new LocalVolumes(config, events);
  await svc.open();
  return svc;
}

/** True when `dir` has no entries (a volume that may receive the image's content). */
export function isEmptyDir(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length === 0;
  } catch {
    return false;
  }
}

export type { VolumeCreateRequest, VolumeView };
