/**
 * Compression sniffing for uploaded tarballs and layer blobs: `docker load`,
 * `docker import`, `docker cp` and layer unpacking accept plain, gzip, xz and
 * zstd input without saying which. gzip is decompressed in-process (zlib); xz and zstd by the system
 * tools (`xz -dc`, `zstd -dc`), which are faster than any JS port.
 */
import { spawn } from 'node:child_process';
import { PassThrough, Readable, Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import { invalidArgument } from './errors';

export type Compression = 'none' | 'gzip' | 'xz' | 'zstd';

const MAGIC: Array<[Compression, number[]]> = [
  ['gzip', [0x1f, 0x8b]],
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
];

/** Which compression the first bytes announce ('none' for anything else, e.g. a tar). */
export function detectCompression(head: Uint8Array): Compression {
  for (const [kind, magic] of MAGIC) {
    if (head.length >= magic.length && magic.every((b, i) => head[i] === b)) return kind;
  }
  return 'none';
}

/**
 * Reads up to `n` bytes from the start of `input` without consuming them:
 * the bytes are pushed back with unshift, so the stream reads as before.
 */
export async function peek(input: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let have = 0;
  while (have < n) {
    const chunk: Buffer | null = input.read();
    if (chunk === null) {
      if (input.readableEnded || (input as any).destroyed) break;
      const more = await new Promise<boolean>((resolve, reject) => {
        const cleanup = () => {
          input.off('readable', onReadable);
          input.off('end', onEnd);
          input.off('error', onError);
          input.off('close', onEnd);
        };
        const onReadable = () => { cleanup(); resolve(true); };
        const onEnd = () => { cleanup(); resolve(false); };
        const onError = (err: Error) => { cleanup(); reject(err); };
        input.once('readable', onReadable);
        input.once('end', onEnd);
        input.once('close', onEnd);
        input.once('error', onError);
      });
      if (!more) break;
      continue;
    }
    chunks.push(chunk);
    have += chunk.length;
  }
  const head = Buffer.concat(chunks);
  if (head.length) input.unshift(head);
  return head.subarray(0, n);
}

/**
 * Returns the decompressed form of `input` (or `input` itself when it is
 * not compressed). Errors of the decompressor surface as errors of the
 * returned stream, with a message naming the format.
 */
export async function decompressed(input: Readable): Promise<{ stream: Readable; compression: Compression }> {
  const head = await peek(input, 6);
  const compression = detectCompression(head);
  return { stream: decompressStream(input, compression), compression };
}

export function decompressStream(input: Readable, compression: Compression): Readable {
  switch (compression) {
    case 'none':
      return input;
    case 'gzip': {
      // 1 MiB output chunks: every chunk is a thread-pool round trip (for gunzip and for whatever
      // hashes or writes it next), and a text layer inflates 1 MiB of input to several MiB.
      const gunzip = zlib.createGunzip({ chunkSize: 1 << 20 });
      input.on('error', (err) => gunzip.destroy(err));
      gunzip.on('error', () => input.destroy());
      return input.pipe(gunzip);
    }
    case 'xz':
      return spawnDecompressor('xz', ['-dc'], input);
    case 'zstd':
      return spawnDecompressor('zstd', ['-dcq'], input);
  }
}

/**
 * Pipes `input` through an external decompressor. A non-zero exit (corrupt
 * data, truncated input) destroys the output with the tool's stderr text.
 */
function spawnDecompressor(cmd: string, args: string[], input: Readable): Readable {
  const out = new PassThrough();
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  let failed = false;
  const fail = (err: Error) => {
    if (failed) return;
    failed = true;
    child.kill('SIGKILL');
    input.destroy();
    out.destroy(err);
  };
  child.on('error', (err) => fail(invalidArgument(`cannot decompress ${cmd} input: ${err.message}`)));
  child.stderr.on('data', (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
  child.stdin.on('error', () => { /* EPIPE when the tool exits early; its exit status tells */ });
  input.on('error', (err) => fail(err));
  input.pipe(child.stdin);
  child.stdout.pipe(out, { end: false });
  // 'close' fires after stdout has been fully read, so every byte reaches `out` first.
  child.on('close', (code, signal) => {
    if (failed) return;
    if (code === 0) { out.end(); return; }
    fail(invalidArgument(`invalid ${cmd} data: ${stderr.trim() || `exit ${code ?? signal}`}`));
  });
  // A consumer that gives up must not leave the tool running.
  out.on('close', () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  return out;
}

/**
 * Shannon entropy in bits per byte of a sample of `buf` (every `step`-th 256-byte run).
 * Compressed or encrypted data is close to 8; text is about 4-5.
 */
export function sampledEntropy(buf: Buffer, step = 4096): number {
  const counts = new Uint32Array(256);
  let n = 0;
  for (let off = 0; off < buf.length; off += step) {
    const end = Math.min(off + 256, buf.length);
    for (let i = off; i < end; i++) counts[buf[i]]++;
    n += end - off;
  }
  if (n === 0) return 0;
  let h = 0;
  for (const c of counts) if (c) { const p = c / n; h -= p * Math.log2(p); }
  return h;
}

const STORE_ABOVE_BITS = 7.95;
const BATCH = 1 << 20;

/**
 * A gzip compressor for speed (push): input is taken in 1 MiB batches and each batch that looks
 * incompressible (sampled entropy near 8 bits per byte: already compressed or random data) is
 * stored (level 0) instead of run through deflate, which at any level spends most of a push's CPU
 * on such data for nothing; the rest is deflated at level 1. One gzip member: a raw deflate
 * stream (whose level can change between blocks: deflateParams; Node applies params() to
 * deflate streams only) framed with the gzip header and the CRC-32/size trailer.
 */
export function fastGzip(): Transform {
  const deflate = zlib.createDeflateRaw({ level: 1, chunkSize: 256 * 1024 });
  let level = 1;
  let crc = 0;
  let size = 0;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const out = new Transform({
    highWaterMark: BATCH,
    transform(chunk: Buffer, _enc, cb) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes < BATCH) { cb(); return; }
      feed().then(() => cb(), cb);
    },
    flush(cb) {
      feed().then(() => {
        deflate.once('end', () => {
          const trailer = Buffer.alloc(8);
          trailer.writeUInt32LE(crc >>> 0, 0);
          trailer.writeUInt32LE(size % 0x100000000, 4);
          cb(null, trailer);
        });
        deflate.end();
      }, cb);
    },
  });
  // Header as Go's compress/gzip writes it (no name, no mtime, OS unknown).
  out.push(Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]));
  deflate.on('data', (d: Buffer) => { out.push(d); });
  deflate.on('error', (err) => out.destroy(err));
  const feed = async () => {
    if (!pendingBytes) return;
    const batch = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    crc = zlib.crc32(batch, crc);
    size += batch.length;
    const want = sampledEntropy(batch) > STORE_ABOVE_BITS ? 0 : 1;
    if (want !== level) {
      level = want;
      await new Promise<void>((resolve) => deflate.params(want, zlib.constants.Z_DEFAULT_STRATEGY, () => resolve()));
    }
    if (!deflate.write(batch)) await new Promise<void>((resolve) => deflate.once('drain', resolve));
  };
  return out;
}
