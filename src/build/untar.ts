/**
 * Unpacks a tar stream (already decompressed) into a directory tree whose
 * host paths the caller chooses (`place`), so the same code serves the build
 * context and ADD's auto-extraction inside a rootfs. `..` is refused; links
 * are created, never followed while unpacking.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { invalidArgument } from '../common/errors';
import { SMALL_FILE_BYTES } from '../common/smallfile';

export interface UntarOptions {
  /** Host path for an entry's clean path components (parent directories made by `mkdirs`). */
  place: (parts: string[]) => string;
  /** Creates the parent directories of an entry; defaults to mkdir -p of the host parent. */
  mkdirs?: (parts: string[]) => Promise<void>;
  /** Keep the tar's uid/gid (ADD); otherwise files belong to the daemon (the context). */
  keepOwner: boolean;
  /** Resolves a hard link's target components to a host path. */
  linkTarget?: (parts: string[]) => string;
}

/** Returns the number of entries unpacked. */
export async function untar(plain: Readable, opts: UntarOptions): Promise<number> {
  let count = 0;
  const dirTimes: Array<[string, Date]> = [];
  const extract = tar.extract();
  extract.on('entry', (hdr, stream, next) => {
    count++;
    void (async () => {
      const parts = hdr.name.split('/').filter((p) => p !== '' && p !== '.');
      if (parts.includes('..')) throw invalidArgument(`refusing archive entry "${hdr.name}": it leaves the destination`);
      if (parts.length === 0) { stream.resume(); return; }
      if (opts.mkdirs) await opts.mkdirs(parts.slice(0, -1));
      const target = opts.place(parts);
      if (!opts.mkdirs) await fsp.mkdir(path.dirname(target), { recursive: true });
      const mode = (hdr.mode ?? 0o644) & 0o7777;
      const own = async () => { if (opts.keepOwner) await fsp.lchown(target, hdr.uid ?? 0, hdr.gid ?? 0); };
      switch (hdr.type) {
        case 'directory': {
          const st = await fsp.lstat(target).catch(() => undefined);
          if (st && !st.isDirectory()) await fsp.rm(target, { force: true, recursive: true });
          await fsp.mkdir(target, { recursive: true });
          await fsp.chmod(target, mode);
          await own();
          if (hdr.mtime) dirTimes.push([target, hdr.mtime]);
          stream.resume();
          return;
        }
        case 'symlink':
          await fsp.rm(target, { force: true, recursive: true });
          await fsp.symlink(hdr.linkname ?? '', target);
          await own();
          stream.resume();
          return;
        case 'link': {
          const lparts = (hdr.linkname ?? '').split('/').filter((p) => p !== '' && p !== '.');
          if (lparts.includes('..')) throw invalidArgument(`refusing archive entry "${hdr.name}": its link leaves the destination`);
          await fsp.rm(target, { force: true });
          await fsp.link((opts.linkTarget ?? opts.place)(lparts), target);
          stream.resume();
          return;
        }
        case 'file': case 'contiguous-file': case null: case undefined: {
          await fsp.rm(target, { force: true, recursive: true });
          if ((hdr.size ?? 0) <= SMALL_FILE_BYTES) {
            // Small files (most of a context) are written with direct calls once their bytes are in:
            // a few microseconds each, where the thread-pool round trips of a write stream cost ~1 ms.
            const chunks: Buffer[] = [];
            for await (const c of stream) chunks.push(c as Buffer);
            fs.writeFileSync(target, Buffer.concat(chunks), { mode, flag: 'wx' });
            fs.chmodSync(target, mode);
            if (opts.keepOwner) fs.lchownSync(target, hdr.uid ?? 0, hdr.gid ?? 0);
            if (hdr.mtime) fs.utimesSync(target, hdr.mtime, hdr.mtime);
            return;
          }
          await pipeline(stream, fs.createWriteStream(target, { mode }));
          await fsp.chmod(target, mode);
          await own();
          if (hdr.mtime) await fsp.utimes(target, hdr.mtime, hdr.mtime);
          return;
        }
        default:
          stream.resume(); // devices and fifos are not unpacked
      }
    })().then(() => next(), (err) => next(err));
  });
  await pipeline(plain, extract);
  for (const [d, t] of dirTimes.reverse()) await fsp.utimes(d, t, t).catch(() => undefined);
  return count;
}
