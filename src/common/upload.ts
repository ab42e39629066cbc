/**
 * Uploads a client sends (cp archives, image loads and imports) are written
 * to disk before anything is locked or unpacked, so that a client that
 * stalls holds no lock, and bounded: by a size limit and by the free space
 * they must leave on the filesystem. A spool file is removed when its
 * request ends, however it ends; an aborted upload never leaves an open,
 * deleted file holding disk.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError } from './errors';

export interface UploadLimits {
  /** Largest upload in bytes (0: no limit but the disk reserve). */
  maxBytes: number;
  /** Free bytes the upload must leave on the spool's filesystem. */
  minFreeBytes: number;
}

/** How often (in bytes written) free space is looked at again. */
const CHECK_EVERY = 64 << 20;

async function freeBytes(dir: string): Promise<number> {
  const st = await fsp.statfs(dir);
  return Number(st.bavail) * Number(st.bsize);
}

/**
 * A Transform that passes bytes through and fails the pipeline once the
 * stream passes `maxBytes`, or once the filesystem holding `dir` would
 * keep less than `minFreeBytes` free.
 */
export function uploadGuard(dir: string, limits: UploadLimits, what: string): Transform {
  let total = 0;
  let sinceCheck = CHECK_EVERY; // the first chunk checks at once
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      total += chunk.length;
      sinceCheck += chunk.length;
      if (limits.maxBytes > 0 && total > limits.maxBytes) {
        cb(new BerthError('too-large', `${what} is larger than ${limits.maxBytes} bytes (daemon.json "api-limits"."upload-body-bytes")`));
        return;
      }
      if (sinceCheck < CHECK_EVERY) { cb(null, chunk); return; }
      sinceCheck = 0;
      freeBytes(dir).then((free) => {
        if (free - CHECK_EVERY < limits.minFreeBytes) {
          cb(new BerthError('too-large', `not enough disk space for ${what}: ${free} bytes free, ${limits.minFreeBytes} must stay free (daemon.json "api-limits"."min-free-disk-bytes")`));
        } else cb(null, chunk);
      }, (err) => cb(err as Error));
    },
  });
}

/** A file on disk holding a whole upload; `remove()` is idempotent. */
export interface SpooledUpload {
  path: string;
  size: number;
  remove(): Promise<void>;
}

/**
 * Writes `body` to a new file under `dir` within `limits`. On any failure
 * (limit, disk, client gone) the partial file is removed before this rejects.
 */
export async function spoolUpload(body: Readable, dir: string, limits: UploadLimits, what: string): Promise<SpooledUpload> {
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, `upload-${randomBytes(8).toString('hex')}`);
  const remove = () => fsp.rm(file, { force: true });
  try {
    await pipeline(body, uploadGuard(dir, limits, what), fs.createWriteStream(file, { flags: 'wx', mode: 0o600 }));
  } catch (err) {
    await remove();
    throw err;
  }
  const size = (await fsp.stat(file)).size;
  return { path: file, size, remove };
}

/** Removes spool files left by a daemon that died mid-upload (call at start-up). */
export function removeStaleUploads(dir: string): void {
  let names: string[] = [];
  try { names = fs.readdirSync(dir); } catch { return; }
  for (const n of names) if (n.startsWith('upload-')) fs.rmSync(path.join(dir, n), { force: true });
}
