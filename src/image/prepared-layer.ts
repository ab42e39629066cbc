/**
 * Speculative layer unpacking for `load`: while the upload is spooled, a
 * member that looks like a plain layer tar is also unpacked (with its
 * tar-split record) into an unpublished snapshot temp dir, so the layer is
 * not read, hashed and parsed a second time after the upload. Nothing is
 * published until the whole archive has been validated; then commit() only
 * renames. Any failure (bad tar, a tar that overwrites its own entries, a
 * diffID used at two chain positions) makes commit() answer false and the
 * caller falls back to unpacking the spooled member the ordinary way, with
 * its ordinary errors.
 */
import type { Readable } from 'node:stream';
import type { ContentStore, Ingest } from '../store/content';
import type { SnapshotStore } from '../store/snapshots';
import type { TarSplitter } from '../store/tarsplit';

/** The image area's stores, as the image service hands them to its own load code. */
export interface LayerStores {
  content: ContentStore;
  snapshots: SnapshotStore;
  /** See ImageServiceImpl.unpackRecordingSplit. */
  unpackRecordingSplit<T>(unpack: (split: TarSplitter) => Promise<T>): Promise<{ result: T; ingest: Ingest; split: TarSplitter }>;
}

export interface PreparedLayer {
  diffID: string;
  /** Publishes the layer on top of `parentChain`; false when this copy can not be used. */
  commit(parentChain: string): Promise<boolean>;
  discard(): Promise<void>;
}

export async function prepareLayer(images: LayerStores, src: Readable): Promise<PreparedLayer> {
  const { result: prep, ingest, split } = await images.unpackRecordingSplit((rec) => images.snapshots.prepareLayer(src, { split: rec }));
  let used = false;
  const discard = async () => {
    used = true;
    await ingest.abort();
    await images.snapshots.discardPrepared(prep);
  };
  return {
    diffID: prep.apply.diffID,
    discard,
    async commit(parentChain: string): Promise<boolean> {
      if (used || split.broken) return false;
      used = true;
      const diffID = prep.apply.diffID;
      const { existed } = await images.snapshots.commitPrepared(parentChain, prep);
      const haveTar = (await images.content.exists(diffID)) || (await images.content.hasSplit(diffID));
      if (existed || haveTar) await ingest.abort();
      else await ingest.commitAs(images.content.splitPath(diffID));
      await images.snapshots.discardPrepared(prep);
      return !existed;
    },
  };
}
