/**
 * On-disk container records: <dataRoot>/containers/<id>/config.v2.json holds
 * the Docker inspect shape plus berthd's private `Berth` section. Written
 * atomically; a directory without a record is a half-made container.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { readJsonIfExists, writeJsonAtomic, type AtomicWriteOptions } from '../common/atomic';
import { KeyedMutex } from '../common/mutex';
import type { ContainerInspect } from '../engine/types';

/** berthd's private per-container state (never shown by inspect). */
export interface BerthPrivate {
  /** Image id (sha256:...) the rootfs snapshot was made from. */
  imageId: string;
  conmonPid: number;
  /** Set by stop/kill by the user: the restart policy must not restart. */
  manuallyStopped: boolean;
  hasBeenStarted: boolean;
  /** Volume mount destinations still to receive the image's content (Docker's copy-up, once). */
  volumeCopyUp?: string[];
}

/** The record is the inspect shape (one definition, in engine/types.ts) plus berthd's private section. */
export interface ContainerRecord extends ContainerInspect {
  Berth: BerthPrivate;
}

export class ContainerStore {
  readonly root: string;
  constructor(dataRoot: string) {
    this.root = path.join(dataRoot, 'containers');
  }

  dir(id: string): string { return path.join(this.root, id); }
  file(id: string): string { return path.join(this.root, id, 'config.v2.json'); }

  /** Writes of one record, one at a time: two overlapping writes could otherwise be renamed out of order. */
  private readonly writes = new KeyedMutex();

  /**
   * Saves the record as it is when its turn comes (not when asked), so the file always ends
   * with the newest state however the fsyncs of overlapping saves are timed.
   */
  async save(rec: ContainerRecord, opts: AtomicWriteOptions = {}): Promise<void> {
    await this.writes.run(rec.Id, () => writeJsonAtomic(this.file(rec.Id), rec, opts));
  }

  /** Every record, plus the ids of directories without one (half-created). */
  async loadAll(): Promise<{ records: ContainerRecord[]; orphans: string[] }> {
    await fsp.mkdir(this.root, { recursive: true });
    const records: ContainerRecord[] = [];
    const orphans: string[] = [];
    for (const id of await fsp.readdir(this.root)) {
      if (!/^[0-9a-f]{64}$/.test(id)) continue;
      let rec: ContainerRecord | undefined;
      try { rec = await readJsonIfExists<ContainerRecord>(this.file(id)); } catch { rec = undefined; }
      if (rec) records.push(rec); else orphans.push(id);
    }
    return { records, orphans };
  }
}
