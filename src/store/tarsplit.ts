/**
 * Tar-split (the idea of Docker's vbatts/tar-split): instead of keeping a
 * second copy of every layer tar, keep only the bytes of the tar that are
 * not regular-file contents (headers, padding, end blocks) plus, for each
 * file, its path inside the unpacked layer. The exact original tar, and so
 * its diffID, is rebuilt on demand from this record and the (immutable)
 * layer directory. Loading a layer then writes its data once instead of twice.
 *
 * Record format (binary, sequential):
 *   'R' u32le len, <len bytes>                raw tar bytes
 *   'F' u32le pathLen, <path utf8>, f64le size file contents read from <layer>/<path>
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { Readable, type Writable } from 'node:stream';
import { internal } from '../common/errors';

interface Chunk { start: number; buf: Buffer }

/**
 * Splits a tar stream as it passes. The producer feeds every byte with
 * push(); the tar consumer classifies each entry with entry() as soon as it
 * sees its header. Bytes are released only once classified, so memory stays
 * bounded by how far the producer runs ahead of the tar parser.
 */
export class TarSplitter {
  private queue: Chunk[] = [];
  private pos = 0;          // next byte offset not yet written out
  private frontier = 0;     // bytes below this offset are classified
  private skips: Array<{ from: number; to: number; rel: string }> = [];
  private out: Buffer[] = [];
  private outLen = 0;
  /** Set when the layer's files can not give back the tar (entry overwritten in the same layer). */
  broken = false;

  constructor(private sink: Writable) {}

  /** Raw tar bytes, in order. */
  async push(buf: Buffer, start: number): Promise<void> {
    this.queue.push({ start, buf });
    await this.flush(false);
  }

  /**
   * Classifies one entry: header block at `offset`, data of `size` bytes
   * after it. When `rel` is given the data is a file's content stored at
   * that path in the layer and is left out of the record.
   */
  entry(offset: number, size: number, rel?: string): void {
    const dataStart = offset + 512;
    if (rel !== undefined && size > 0) this.skips.push({ from: dataStart, to: dataStart + size, rel });
    this.frontier = Math.max(this.frontier, dataStart + size);
  }

  /** All bytes are in; everything left is raw (end-of-archive blocks). */
  async end(): Promise<void> {
    this.frontier = Infinity;
    await this.flush(true);
  }

  private emitRaw(b: Buffer) {
    const head = Buffer.allocUnsafe(5);
    head.write('R', 0);
    head.writeUInt32LE(b.length, 1);
    this.out.push(head, Buffer.from(b));
    this.outLen += 5 + b.length;
  }

  private emitFile(rel: string, size: number) {
    const p = Buffer.from(rel);
    const head = Buffer.allocUnsafe(5 + p.length + 8);
    head.write('F', 0);
    head.writeUInt32LE(p.length, 1);
    p.copy(head, 5);
    head.writeDoubleLE(size, 5 + p.length);
    this.out.push(head);
    this.outLen += head.length;
  }

  private async flush(final: boolean): Promise<void> {
    while (this.queue.length) {
      const c = this.queue[0];
      const end = c.start + c.buf.length;
      if (this.pos >= end) { this.queue.shift(); continue; }
      const skip = this.skips[0];
      if (skip && this.pos >= skip.from) {
        // Inside a file's contents: drop them.
        const upto = Math.min(skip.to, end);
        this.pos = upto;
        if (upto === skip.to) {
          this.emitFile(skip.rel, skip.to - skip.from);
          this.skips.shift();
        }
        continue;
      }
      const limit = Math.min(end, this.frontier, skip ? skip.from : Infinity);
      if (limit <= this.pos) break; // not classified yet
      this.emitRaw(c.buf.subarray(this.pos - c.start, limit - c.start));
      this.pos = limit;
    }
    if (this.outLen >= (1 << 16) || (final && this.outLen)) {
      const data = Buffer.concat(this.out, this.outLen);
      this.out = [];
      this.outLen = 0;
      if (!this.sink.write(data)) await new Promise<void>((res, rej) => {
        const onErr = (e: Error) => { this.sink.off('drain', onDrain); rej(e); };
        const onDrain = () => { this.sink.off('error', onErr); res(); };
        this.sink.once('drain', onDrain);
        this.sink.once('error', onErr);
      });
    }
  }
}

/**
 * Rebuilds the tar from a split record and the layer directory, checking
 * the result against `diffID` (the stream errors at the end on mismatch).
 */
export function assembleTar(splitFile: string, layerDir: string, diffID: string): Readable {
  // Output is packed into 1 MiB buffers: headers and small files (read with
  // one synchronous read each, no threadpool round trips) go straight into
  // the current buffer, so 10 000 small files are ~200 chunks, not 30 000.
  const OUT = 1 << 20;
  async function* gen(): AsyncGenerator<Buffer> {
    const hash = createHash('sha256');
    let buf = Buffer.allocUnsafe(OUT);
    let used = 0;
    const take = (): Buffer => {
      const b = buf.subarray(0, used);
      hash.update(b);
      buf = Buffer.allocUnsafe(OUT);
      used = 0;
      return b;
    };
    const data = await fsp.readFile(splitFile);
    let i = 0;
    while (i < data.length) {
      const kind = String.fromCharCode(data[i]);
      const len = data.readUInt32LE(i + 1);
      i += 5;
      if (kind === 'R') {
        const b = data.subarray(i, i + len);
        i += len;
        if (used + len > OUT && used) yield take();
        if (len > OUT) { hash.update(b); yield b; continue; }
        b.copy(buf, used);
        used += len;
      } else if (kind === 'F') {
        const rel = data.subarray(i, i + len).toString('utf8');
        i += len;
        const size = data.readDoubleLE(i);
        i += 8;
        const p = path.join(layerDir, rel);
        if (!p.startsWith(layerDir + path.sep)) throw internal(`tar-split: bad path ${rel}`);
        if (size <= OUT) {
          if (used + size > OUT) yield take();
          const fd = fs.openSync(p, 'r');
          try {
            let got = 0;
            while (got < size) {
              const n = fs.readSync(fd, buf, used + got, size - got, got);
              if (n === 0) throw internal(`tar-split: ${rel} is shorter than recorded`);
              got += n;
            }
          } finally { fs.closeSync(fd); }
          used += size;
          continue;
        }
        if (used) yield take();
        const f = await fsp.open(p, 'r');
        try {
          let left = size;
          while (left > 0) {
            const b = Buffer.allocUnsafe(Math.min(left, OUT));
            const { bytesRead } = await f.read(b, 0, b.length, size - left);
            if (bytesRead === 0) throw internal(`tar-split: ${rel} is shorter than recorded`);
            const chunk = b.subarray(0, bytesRead);
            hash.update(chunk);
            left -= bytesRead;
            yield chunk;
          }
        } finally {
          await f.close();
        }
      } else {
        throw internal(`tar-split: corrupt record in ${splitFile}`);
      }
    }
    if (used) yield take();
    const got = 'sha256:' + hash.digest('hex');
    if (got !== diffID) throw internal(`layer ${diffID} could not be rebuilt from its files (got ${got})`);
  }
  return Readable.from(gen(), { objectMode: false, highWaterMark: 1 << 20 });
}
