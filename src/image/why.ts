/**
 * `berth image why`: bytes an image carries that a later layer of it deletes
 * or overwrites (Docker's `dd` then `rm` in two RUNs): every file added by a
 * layer and hidden by a later one (whiteout, opaque directory, replacement),
 * largest first, with the history steps that added and removed it.
 */
import * as tar from 'tar-stream';
import type { ImageService } from '../engine/types';

export interface WastedFile {
  path: string;
  size: number;
  addedBy: string;
  removedBy: string;
  /** 'deleted' (whiteout or opaque directory) or 'overwritten' (written again later). */
  how: 'deleted' | 'overwritten';
}

export async function wastedSpace(images: ImageService, ref: string): Promise<{ id: string; total: number; files: WastedFile[] }> {
  const img = await images.resolve(ref);
  const diffIDs = img.config.rootfs?.diff_ids ?? [];
  const history = (img.config.history ?? []).filter((h) => !h.empty_layer).map((h) => h.created_by ?? '');
  const step = (i: number) => (history[i] ?? `layer ${i + 1}`).replace(/^\/bin\/sh -c #\(nop\)\s+/, '').replace(/^\/bin\/sh -c /, 'RUN ');
  // live: path -> (size, layer) of files still visible after the layers read so far
  const live = new Map<string, { size: number; layer: number }>();
  const files: WastedFile[] = [];
  const drop = (pred: (p: string) => boolean, layer: number, how: WastedFile['how']) => {
    for (const [p, f] of live) {
      if (!pred(p)) continue;
      live.delete(p);
      if (f.layer < layer && f.size > 0) files.push({ path: '/' + p, size: f.size, addedBy: step(f.layer), removedBy: step(layer), how });
    }
  };
  for (let i = 0; i < diffIDs.length; i++) {
    const extract = tar.extract();
    const done = new Promise<void>((resolve, reject) => {
      extract.on('entry', (hdr, stream, next) => {
        const name = hdr.name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
        const base = name.split('/').pop() ?? '';
        const dir = name.includes('/') ? name.slice(0, name.lastIndexOf('/')) : '';
        if (base === '.wh..wh..opq') drop((p) => dir === '' || p.startsWith(dir + '/'), i, 'deleted');
        else if (base.startsWith('.wh.')) {
          const gone = (dir ? dir + '/' : '') + base.slice(4);
          drop((p) => p === gone || p.startsWith(gone + '/'), i, 'deleted');
        } else {
          if (live.has(name)) drop((p) => p === name, i, 'overwritten');
          if (hdr.type === 'file' || hdr.type === 'contiguous-file') live.set(name, { size: hdr.size ?? 0, layer: i });
        }
        stream.on('end', () => next());
        stream.resume();
      });
      extract.on('finish', resolve);
      extract.on('error', reject);
    });
    const src = await images.openLayerTar(diffIDs[i]);
    src.on('error', (e) => extract.destroy(e));
    src.pipe(extract);
    await done;
  }
  files.sort((a, b) => b.size - a.size || (a.path < b.path ? -1 : 1));
  return { id: img.id, total: files.reduce((n, f) => n + f.size, 0), files };
}
