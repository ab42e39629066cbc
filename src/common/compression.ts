/**
 * Compression sniffing for uploaded tarballs and layer blobs: `docker load`,
 * `docker import`, `docker cp` and layer unpacking accept plain, gzip, xz and
 * zstd input without saying which. gzip is decompressed in-process (zlib); xz and zstd by the system
 * tools (`xz -dc`, `zstd -dc`), which are faster than any JS port.
 */
import { spawn } from 'node:child_process';
import { PassThrough, Readable } from 'node:stream';
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
      const gunzip = zlib.createGunzip({ chunkSize: 1 << 18 });
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
