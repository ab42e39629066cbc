/**
 * `docker import`: a rootfs tarball (plain or compressed) becomes a
 * one-layer image. `--change` lines go through the Dockerfile builder's
 * config instructions (build/dockerfile/runconfig.ts), as commit's do.
 */
import { Transform, type Readable } from 'node:stream';
import { familiarString, parseRepoAndTag, referenceString } from '../common/reference';
import type { ImageRecord, ImageService, ProgressSink } from '../engine/types';
import { applyChanges } from '../build/dockerfile/runconfig';
export { applyChanges };

/* ------------------------------------------------------------- import */

export interface ImportOptions {
  /** Repository (and tag) to name the image; '' for none. */
  repo: string;
  tag: string;
  /** `--change` lines. */
  changes: string[];
  message: string;
  /** `os/arch`; '' for the host's. */
  platform: string;
}

/**
 * `docker import`: validates everything, then opens the rootfs tar (plain or
 * compressed) with `openBody` and makes it a one-layer image. Progress
 * (`Importing` with bytes received) goes to `progress`.
 */
export async function importImage(images: ImageService, opts: ImportOptions, openBody: () => Readable, progress: ProgressSink): Promise<ImageRecord> {
  // Validate everything before reading the body.
  const tags = opts.repo ? [referenceString(parseRepoAndTag(opts.repo, opts.tag || undefined))] : [];
  const runConfig = applyChanges({}, opts.changes);
  const message = opts.message;
  const [os, architecture] = opts.platform ? opts.platform.split('/') : ['linux', nodeArchToGo(process.arch)];

  const created = new Date().toISOString();
  let received = 0;
  let lastReport = 0;
  // Counts bytes for progress without taking the body out of paused mode.
  const source = openBody();
  const body: Readable = source.pipe(new Transform({
    transform(chunk: Buffer, _enc, cb) {
      received += chunk.length;
      if (received - lastReport >= 8 << 20) {
        lastReport = received;
        progress({ status: 'Importing', progressDetail: { current: received }, progress: humanSize(received) });
      }
      cb(null, chunk);
    },
  }));
  // pipe() does not pass errors on: a refused upload (size limit, client gone) must fail the import, not leave it waiting.
  source.on('error', (err) => body.destroy(err));
  return images.createImageFromLayers({
    layers: [{ open: async () => body }],
    config: {
      architecture: architecture || nodeArchToGo(process.arch),
      os: os || 'linux',
      created,
      ...(Object.keys(runConfig).length ? { config: runConfig } : {}),
      comment: message || 'Imported from -',
      history: [{ created, comment: message || 'Imported from -' }],
    },
    tags,
    eventAction: 'import',
  });
}

export function nodeArchToGo(a: string): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[a] ?? a;
}

export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return i === 0 ? `${v}B` : `${v.toFixed(3).replace(/\.?0+$/, '')}${units[i]}`;
}

export { familiarString };
