/**
 * Docker's stdcopy multiplexing: every frame is an 8-byte header
 * [stream, 0, 0, 0, size (big-endian uint32)] followed by `size` bytes.
 * Streams: 0 = stdin, 1 = stdout, 2 = stderr, 3 = systemerr.
 */
export const STDIN = 0;
export const STDOUT = 1;
export const STDERR = 2;
export const SYSTEMERR = 3;

export type StreamId = 0 | 1 | 2 | 3;

/** Frames one payload. Empty payloads yield an empty buffer (Docker never sends empty frames). */
export function encodeFrame(stream: StreamId, data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  if (body.length === 0) return Buffer.alloc(0);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

/**
 * Streaming decoder: feed it arbitrary chunks, it calls `onFrame` once per
 * complete frame. Holds partial frames across chunks.
 */
export class StdcopyDecoder {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly onFrame: (stream: StreamId, data: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (this.pending.length >= 8) {
      const stream = this.pending[0];
      if (stream > 3) throw new Error(`stdcopy: unknown stream id ${stream} in header`);
      const size = this.pending.readUInt32BE(4);
      if (this.pending.length < 8 + size) break;
      const data = this.pending.subarray(8, 8 + size);
      this.pending = this.pending.subarray(8 + size);
      this.onFrame(stream as StreamId, data);
    }
  }

  /** Bytes of an incomplete frame still held (non-zero at stream end means truncation). */
  get buffered(): number {
    return this.pending.length;
  }
}

/** Decodes a complete buffer into its frames. */
export function decodeAll(buf: Buffer): Array<{ stream: StreamId; data: Buffer }> {
  const out: Array<{ stream: StreamId; data: Buffer }> = [];
  const dec = new StdcopyDecoder((stream, data) => out.push({ stream, data }));
  dec.push(buf);
  if (dec.buffered) throw new Error(`stdcopy: ${dec.buffered} trailing bytes of an incomplete frame`);
  return out;
}
