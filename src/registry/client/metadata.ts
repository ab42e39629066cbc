/**
 * What Berth remembers of registries (moby's v2metadata, reduced): for each layer diffID, the
 * compressed blobs it was pulled or pushed as, with the registry and repository holding them.
 * A second push of a layer is then a HEAD (or a cross-repository mount), not a recompress.
 * One JSON file written atomically; losing it only costs a recompress.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { readJsonIfExists, writeFileAtomic } from '../../common/atomic';

export interface BlobLocation { digest: string; size: number; mediaType: string; registry: string; repository: string }

export class DistributionMetadata {
  private byDiff: Record<string, BlobLocation[]> = {};
  private writing: Promise<void> = Promise.resolve();
  private readonly file: string;

  constructor(dataRoot: string) {
    this.file = path.join(dataRoot, 'metadata', 'distribution.json');
  }

  async open(): Promise<void> {
    await fsp.mkdir(path.dirname(this.file), { recursive: true });
    this.byDiff = (await readJsonIfExists<Record<string, BlobLocation[]>>(this.file).catch(() => undefined)) ?? {};
  }

  /** Known blobs of a layer in one registry, the given repository first. */
  locations(diffID: string, registry: string, repository: string): BlobLocation[] {
    const all = (this.byDiff[diffID] ?? []).filter((l) => l.registry === registry);
    return [...all.filter((l) => l.repository === repository), ...all.filter((l) => l.repository !== repository)];
  }

  async remember(diffID: string, loc: BlobLocation): Promise<void> {
    const list = (this.byDiff[diffID] ??= []);
    if (list.some((l) => l.digest === loc.digest && l.registry === loc.registry && l.repository === loc.repository)) return;
    list.push(loc);
    // Bounded: the newest locations win.
    if (list.length > 50) list.splice(0, list.length - 50);
    const snapshot = JSON.stringify(this.byDiff);
    this.writing = this.writing.then(() => writeFileAtomic(this.file, snapshot, 0o644, { durable: false })).catch(() => undefined);
    await this.writing;
  }
}
