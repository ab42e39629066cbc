/**
 * Writing a tar to a client (cp out, export, save) so that the client may
 * stall or vanish at any moment: the pipeline's errors are all caught, the
 * producer learns that the reader went and stops, every file it opened is
 * closed, and the caller regains control only once nothing is read any more
 * (so it may unmount or unlock right after).
 */
import type { Readable, Writable } from 'node:stream';
import { Readable as NodeReadable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';

/** A tar member's header as tar-stream takes it. */
export type TarHeader = Partial<tar.Header> & { name: string };

/**
 * Streams the tar `produce` writes into `pack` to `out`. Resolves true when
 * the whole tar went out, false when the reader went away (not an error: it
 * sees a truncated tar). A failure of `produce` while the reader is still
 * there cuts `out` and rejects.
 */
export async function writeTar(out: Writable, produce: (pack: tar.Pack, stopped: () => boolean) => Promise<void>): Promise<boolean> {
  const pack = tar.pack();
  let gone = false;
  pack.on('error', () => { gone = true; }); // seen through the pipeline or produce
  const source = NodeReadable.from(pack as AsyncIterable<Buffer>, { objectMode: false });
  const sending = pipeline(source, out).then(() => true, () => { gone = true; pack.destroy(); return false; });
  try {
    await produce(pack, () => gone);
    if (!gone) pack.finalize();
  } catch (err) {
    if (!gone) {
      out.destroy();
      await sending;
      throw err;
    }
  }
  return sending;
}

/**
 * Settles with `work`, or rejects once `pack` is closed (a destroyed pack
 * never calls back its pending entries, so without this a producer whose
 * reader went away would wait forever).
 */
function untilClosed<T>(pack: tar.Pack, work: Promise<T>): Promise<T> {
  if (pack.destroyed) return Promise.reject(new Error('tar stream closed'));
  let onClose: (() => void) | undefined;
  const closed = new Promise<never>((_, reject) => {
    onClose = () => reject(new Error('tar stream closed'));
    pack.once('close', onClose);
  });
  return Promise.race([work, closed]).finally(() => pack.off('close', onClose!));
}

/** Adds an entry with an in-memory body (or none). */
export function addEntry(pack: tar.Pack, header: TarHeader, body?: Buffer | string): Promise<void> {
  return untilClosed(pack, new Promise<void>((resolve, reject) => {
    const cb = (err?: Error | null) => (err ? reject(err) : resolve());
    if (body === undefined) pack.entry(header, cb);
    else pack.entry(header, body, cb);
  }));
}

/** Adds an entry whose body is streamed from `src`; `src` is destroyed (its file closed) on any failure. */
export async function addStreamEntry(pack: tar.Pack, header: TarHeader, src: Readable): Promise<void> {
  try {
    const sink = pack.entry(header);
    await untilClosed(pack, pipeline(src, sink as unknown as Writable));
  } finally {
    if (!src.destroyed) src.destroy();
  }
}

/**
 * Cuts `out` when its reader has taken nothing for `ms` while the writer
 * waits on it (backpressure), so that a client that stalls cannot hold a
 * container's lock, a mount or open layer files for longer than that.
 * Returns the function that removes the guard. `ms` 0: no guard.
 */
export function stallGuard(out: Writable, ms: number): () => void {
  if (!ms) return () => undefined;
  let timer: NodeJS.Timeout | undefined;
  const disarm = () => { if (timer) { clearTimeout(timer); timer = undefined; } };
  const poll = setInterval(() => {
    if (timer || !out.writableNeedDrain) return;
    timer = setTimeout(() => out.destroy(new Error('client stalled')), ms);
  }, Math.min(ms, 1000));
  out.on('drain', disarm);
  return () => { clearInterval(poll); disarm(); out.off('drain', disarm); };
}
