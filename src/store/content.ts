/**
 * Content-addressed blob store (containerd's content store, reduced):
 *   <dataRoot>/content/blobs/sha256/<hex>   immutable, verified blobs
 *   <dataRoot>/content/ingest/<random>      partial writes
 * A write streams into ingest/ while hashing; only when the stream ends and
 * the digest (and size, when given) match is the file fsynced and renamed
 * into blobs/. A crash leaves at most garbage in ingest/, which open()
 * deletes. Nothing is ever buffered whole.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, invalidArgument, notFound } from '../common/errors';
import { fsyncDir } from '../common/atomic';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;

export function isSha256Digest(d: string): boolean {
  return DIGEST_RE.test(d);
}

export function sha256Digest(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/**
 * One in-progress write. Feed it with write()/the `stream` Writable, then
 * commit() (verifies and publishes) or abort() (removes the partial file).
 */
export class Ingest {
  private hash: Hash = createHash('sha256');
  private bytes = 0;
  private done = false;
  /** Writable side; backpressure comes from the file stream. */
  readonly stream: Writable;
  private file: fs.WriteStream;

  constructor(private store: ContentStore, readonly tmpPath: string) {
    this.file = fs.createWriteStream(tmpPath, { flags: 'wx', mode: 0o644, highWaterMark: 1 << 20 });
    const file = this.file;
    const self = this;
    this.stream = new Writable({
      highWaterMark: 1 << 20,
      write(chunk: Buffer, _enc, cb) {
        self.hash.update(chunk);
        self.bytes += chunk.length;
        if (file.write(chunk)) cb();
        else file.once('drain', () => cb());
      },
      final(cb) {
        file.end(() => cb());
      },
    });
    // Surface file errors through the writable so pipelines fail.
    file.on('error', (err) => this.stream.destroy(err));
  }

  get size(): number { return this.bytes; }

  /**
   * Verifies and publishes the blob. The writable must have finished
   * (pipeline resolved). Returns the digest and size of what was written.
   */
  async commit(expected?: { digest?: string; size?: number }): Promise<{ digest: string; size: number }> {
    if (this.done) throw new Error('ingest already finished');
    this.done = true;
    try {
      await this.closed();
      const digest = 'sha256:' + this.hash.digest('hex');
      if (expected?.digest && expected.digest !== digest) {
        throw invalidArgument(`failed to verify blob: digest mismatch: expected ${expected.digest}, got ${digest}`);
      }
      if (expected?.size !== undefined && expected.size !== this.bytes) {
        throw invalidArgument(`failed to verify blob ${digest}: size mismatch: expected ${expected.size}, got ${this.bytes}`);
      }
      await this.publish(this.store.blobPath(digest));
      return { digest, size: this.bytes };
    } catch (err) {
      await fsp.rm(this.tmpPath, { force: true });
      throw err;
    }
  }

  /** Publishes the written file at `target` without digest checks (tar-split records). */
  async commitAs(target: string): Promise<void> {
    if (this.done) throw new Error('ingest already finished');
    this.done = true;
    try {
      await this.closed();
      await this.publish(target);
    } catch (err) {
      await fsp.rm(this.tmpPath, { force: true });
      throw err;
    }
  }

  /** Resolves once the written file is closed (the writable has flushed it). */
  private async closed(): Promise<void> {
    if (this.file.closed) return;
    await new Promise<void>((resolve, reject) => {
      this.file.once('close', resolve);
      this.file.once('error', reject);
    });
  }

  /** Makes the written file durable and renames it to `target`, durably. */
  private async publish(target: string): Promise<void> {
    const fh = await fsp.open(this.tmpPath, 'r');
    try { await fh.sync(); } finally { await fh.close(); }
    await fsp.rename(this.tmpPath, target);
    await fsyncDir(path.dirname(target));
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.file.destroy();
    await fsp.rm(this.tmpPath, { force: true });
  }
}

export class ContentStore {
  readonly blobsDir: string;
  readonly ingestDir: string;
  /** Tar-split records of layers kept as directories only (see tarsplit.ts). */
  readonly splitDir: string;

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'blobs', 'sha256');
    this.splitDir = path.join(root, 'tarsplit', 'sha256');
    this.ingestDir = path.join(root, 'ingest');
  }

  /** Creates the directories and removes partial writes left by a crash. */
  async open(): Promise<void> {
    await fsp.mkdir(this.blobsDir, { recursive: true, mode: 0o700 });
    await fsp.mkdir(this.splitDir, { recursive: true, mode: 0o700 });
    await fsp.rm(this.ingestDir, { recursive: true, force: true });
    await fsp.mkdir(this.ingestDir, { recursive: true, mode: 0o700 });
  }

  blobPath(digest: string): string {
    if (!DIGEST_RE.test(digest)) throw invalidArgument(`invalid digest: ${digest}`);
    return path.join(this.blobsDir, digest.slice('sha256:'.length));
  }

  splitPath(diffID: string): string {
    if (!DIGEST_RE.test(diffID)) throw invalidArgument(`invalid digest: ${diffID}`);
    return path.join(this.splitDir, diffID.slice('sha256:'.length));
  }

  async hasSplit(diffID: string): Promise<boolean> {
    try { await fsp.access(this.splitPath(diffID)); return true; } catch { return false; }
  }

  async deleteSplit(diffID: string): Promise<void> {
    await fsp.rm(this.splitPath(diffID), { force: true });
  }

  /** Starts a write; see Ingest. */
  newIngest(): Ingest {
    return new Ingest(this, path.join(this.ingestDir, randomBytes(12).toString('hex')));
  }

  /** Streams `src` into the store, verifying `expected` when given. */
  async writeStream(src: Readable, expected?: { digest?: string; size?: number }): Promise<{ digest: string; size: number }> {
    if (expected?.digest && (await this.exists(expected.digest))) {
      // Already stored: drain the source so the caller's pipeline completes.
      src.resume();
      await new Promise<void>((resolve, reject) => { src.once('end', resolve); src.once('error', reject); });
      return { digest: expected.digest, size: await this.size(expected.digest) };
    }
    const ing = this.newIngest();
    try {
      await pipeline(src, ing.stream);
    } catch (err) {
      await ing.abort();
      throw err;
    }
    return ing.commit(expected);
  }

  /** Stores a small blob held in memory (configs, manifests). */
  async writeBuffer(data: Buffer | string, expectedDigest?: string): Promise<{ digest: string; size: number }> {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    const digest = sha256Digest(buf);
    if (expectedDigest && expectedDigest !== digest) {
      throw invalidArgument(`failed to verify blob: digest mismatch: expected ${expectedDigest}, got ${digest}`);
    }
    if (await this.exists(digest)) return { digest, size: buf.length };
    const ing = this.newIngest();
    try {
      await new Promise<void>((resolve, reject) => {
        ing.stream.once('error', reject);
        ing.stream.end(buf, () => resolve());
      });
    } catch (err) {
      await ing.abort();
      throw err;
    }
    return ing.commit({ digest });
  }

  async exists(digest: string): Promise<boolean> {
    try {
      await fsp.access(this.blobPath(digest));
      return true;
    } catch {
      return false;
    }
  }

  async size(digest: string): Promise<number> {
    try {
      return (await fsp.stat(this.blobPath(digest))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`content ${digest}: not found`);
      throw err;
    }
  }

  /** Opens a read stream; throws not-found before returning when the blob is absent. */
  async readStream(digest: string): Promise<Readable> {
    const p = this.blobPath(digest);
    const fh = await fsp.open(p, 'r').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') throw notFound(`content ${digest}: not found`);
      throw err;
    });
    return fh.createReadStream({ highWaterMark: 1 << 20 });
  }

  async readBuffer(digest: string): Promise<Buffer> {
    try {
      return await fsp.readFile(this.blobPath(digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`content ${digest}: not found`);
      throw err;
    }
  }

  async delete(digest: string): Promise<void> {
    await fsp.rm(this.blobPath(digest), { force: true });
  }

  async list(): Promise<string[]> {
    const names = await fsp.readdir(this.blobsDir);
    return names.filter((n) => /^[a-f0-9]{64}$/.test(n)).map((n) => 'sha256:' + n);
  }
}

export { BerthError };
