/**
 * Pull: resolve the manifest (an index or manifest list narrowed to one platform), fetch the
 * config, then stream the missing layers (in parallel, bounded) from the registry through their
 * SHA-256 check and gunzip straight into the image store's unpacker; a connection dropped
 * mid-body is resumed with a Range request. The store publishes the layers only once every one
 * of them and the config checked out, so a failed pull leaves no layer and no image.
 */
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { BerthError, invalidArgument, notFound } from '../../common/errors';
import { PoolSha256 } from '../../common/linux';
import { familiarString, referenceString, type Reference } from '../../common/reference';
import type { ImageService, OciImageConfig, ProgressSink, RegistryAuth } from '../../engine/types';
import { progressMessage, shortId, throttled } from './progress';
import { registryMessage, type RegistryTransport } from './transport';
import type { DistributionMetadata } from './metadata';

export const MT = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
};
const ACCEPT = [MT.ociIndex, MT.dockerList, MT.ociManifest, MT.dockerManifest].join(', ');
const MAX_MANIFEST = 4 << 20;
const RESUMES = 5;
const BATCH = 1 << 20;
/** Bytes a blob stream may run ahead of its hashing. */
const HASH_BACKLOG = 8 << 20;

export interface PullContext {
  transport: RegistryTransport;
  images: ImageService;
  metadata: DistributionMetadata;
  maxConcurrent: number;
}

interface Descriptor { mediaType?: string; digest: string; size: number; platform?: { os?: string; architecture?: string; variant?: string }; urls?: string[] }

/** The host's platform in Go's terms, as Docker picks from an index. */
export function hostPlatform(): { os: string; architecture: string; variant?: string } {
  const arch = ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch] ?? process.arch;
  return { os: 'linux', architecture: arch, ...(arch === 'arm64' ? { variant: 'v8' } : {}) };
}

export function parsePlatform(s: string): { os: string; architecture: string; variant?: string } {
  const [os, architecture, variant] = s.split('/');
  if (!os || !architecture) throw invalidArgument(`invalid platform ${JSON.stringify(s)}: expected os/arch[/variant]`);
  return { os, architecture: architecture === 'x86_64' ? 'amd64' : architecture === 'aarch64' ? 'arm64' : architecture, ...(variant ? { variant } : {}) };
}

/** The manifest of an index for a platform: os and architecture must match; a variant, when asked, too. */
export function selectPlatform(manifests: Descriptor[], want: { os: string; architecture: string; variant?: string }): Descriptor | undefined {
  const candidates = manifests.filter((m) => m.platform?.os === want.os && m.platform?.architecture === want.architecture);
  if (!want.variant) return candidates[0];
  return candidates.find((m) => m.platform?.variant === want.variant) ?? candidates.find((m) => !m.platform?.variant) ?? (want.architecture === 'arm64' ? candidates[0] : undefined);
}

const sha256 = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** GETs a manifest by tag or digest; checks the digest when asked by one. */
export async function fetchManifest(ctx: PullContext, host: string, repo: string, reference: string, auth: RegistryAuth | undefined, shown: string): Promise<{ body: Buffer; mediaType: string; digest: string }> {
  const r = await ctx.transport.request(host, 'GET', `/v2/${repo}/manifests/${reference}`, { auth, scope: `repository:${repo}:pull`, headers: { Accept: ACCEPT } });
  if (r.status !== 200) {
    const text = await r.body.text();
    const why = registryMessage(text);
    if (r.status === 404) throw notFound(`manifest for ${shown} not found: ${why || 'manifest unknown: manifest unknown'}`);
    if (r.status === 401 || r.status === 403) {
      throw new BerthError('unauthorized', `pull access denied for ${shown.replace(/[:@][^/]*$/, '')}, repository does not exist or may require 'docker login': ${why || 'denied: requested access to the resource is denied'}`);
    }
    throw new BerthError('internal', `error fetching manifest for ${shown}: status ${r.status}${why ? `: ${why}` : ''}`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of r.body) {
    n += (c as Buffer).length;
    if (n > MAX_MANIFEST) { r.body.destroy(); throw invalidArgument(`manifest for ${shown} is larger than 4 MiB`); }
    chunks.push(c as Buffer);
  }
  const body = Buffer.concat(chunks);
  const digest = sha256(body);
  if (reference.startsWith('sha256:') && digest !== reference) throw invalidArgument(`manifest verification failed for digest ${reference}`);
  let doc: any;
  try { doc = JSON.parse(body.toString('utf8')); } catch { throw invalidArgument(`manifest for ${shown} is not JSON`); }
  const ctype = String(r.headers['content-type'] ?? '').split(';')[0].trim();
  const mediaType = typeof doc.mediaType === 'string' && doc.mediaType ? doc.mediaType : ctype;
  return { body, mediaType, digest };
}

/** Pulls one image reference (tag or digest). */
export async function pullImage(ctx: PullContext, ref: Reference, auth: RegistryAuth | undefined, platform: string | undefined, progress: ProgressSink, signal?: AbortSignal): Promise<void> {
  const host = ref.domain === 'docker.io' ? 'registry-1.docker.io' : ref.domain;
  const repo = ref.path;
  const shown = familiarString(ref);
  const reference = ref.digest ?? ref.tag ?? 'latest';
  const want = platform ? parsePlatform(platform) : hostPlatform();

  const top = await fetchManifest(ctx, host, repo, reference, auth, shown);
  let manifest = top;
  if (top.mediaType === MT.ociIndex || top.mediaType === MT.dockerList) {
    const list: Descriptor[] = JSON.parse(top.body.toString('utf8')).manifests ?? [];
    const chosen = selectPlatform(list, want);
    if (!chosen) throw notFound(`no matching manifest for ${want.os}/${want.architecture}${want.variant ? '/' + want.variant : ''} in the manifest list entries`);
    manifest = await fetchManifest(ctx, host, repo, chosen.digest, auth, shown);
  }
  if (manifest.mediaType !== MT.ociManifest && manifest.mediaType !== MT.dockerManifest) {
    throw invalidArgument(`unsupported manifest media type ${JSON.stringify(manifest.mediaType)} for ${shown}`);
  }
  const doc = JSON.parse(manifest.body.toString('utf8'));
  const layers: Descriptor[] = doc.layers ?? [];
  const configDesc: Descriptor = doc.config;
  if (!configDesc?.digest) throw invalidArgument(`manifest for ${shown} has no config`);

  progress({ status: `Pulling from ${repo}`, id: reference });

  const scope = `repository:${repo}:pull`;
  const configBytes = await fetchSmallBlob(ctx, host, repo, configDesc.digest, auth, scope);
  const config = JSON.parse(configBytes.toString('utf8')) as OciImageConfig;
  const diffIDs = config.rootfs?.diff_ids ?? [];
  if (diffIDs.length !== layers.length) throw invalidArgument(`image config of ${shown} lists ${diffIDs.length} layers, the manifest ${layers.length}`);
  if (platform && (config.os !== want.os || config.architecture !== want.architecture)) {
    throw notFound(`image with reference ${shown} was found but does not match the specified platform: wanted ${want.os}/${want.architecture}, actual: ${config.os}/${config.architecture}`);
  }

  const imageId = sha256(configBytes);
  const tagRef = ref.digest === undefined ? referenceString({ domain: ref.domain, path: ref.path, tag: ref.tag ?? 'latest' }) : undefined;
  let upToDate = false;
  try {
    const existing = await ctx.images.resolve(imageId);
    upToDate = existing.id === imageId && (!tagRef || (await ctx.images.resolve(tagRef).then((i) => i.id === imageId, () => false)));
  } catch { /* not there */ }

  // Which layers must come over the network.
  const present: boolean[] = [];
  for (let i = 0; i < layers.length; i++) present.push(await ctx.images.hasLayers(diffIDs.slice(0, i + 1)));
  for (let i = 0; i < layers.length; i++) {
    progress({ status: present[i] ? 'Already exists' : 'Pulling fs layer', progressDetail: {}, id: shortId(layers[i].digest) });
  }

  const aborter = new AbortController();
  const onAbort = () => aborter.abort();
  signal?.addEventListener('abort', onAbort);
  const byDiff = new Map(diffIDs.map((d, i) => [shortId(d), i]));
  const unverified = new Set<number>();
  try {
    // Each missing layer streams from the registry through its digest check and gunzip straight
    // into the unpacker (several at once); the store publishes nothing unless all checked out.
    await ctx.images.createImageFromLayers({
      layers: layers.map((l, i) => ({
        diffID: diffIDs[i],
        size: l.size,
        open: async () => {
          unverified.add(i);
          return verifiedBlobStream(ctx, host, repo, l, auth, scope, progress, aborter.signal, () => unverified.delete(i));
        },
      })),
      config: configBytes,
      tags: tagRef ? [tagRef] : [],
      eventAction: 'pull',
      concurrency: ctx.maxConcurrent,
      onProgress: (m) => {
        const i = byDiff.get(m.id ?? '');
        if (i === undefined || present[i] || m.status === 'Already exists') return;
        const id = shortId(layers[i].digest);
        progress(progressMessage(id, 'Extracting', layers[i].size, layers[i].size));
        progress({ status: 'Pull complete', progressDetail: {}, id });
      },
    });
  } catch (err) {
    // A corrupt blob usually breaks the gunzip or the tar before its digest can be checked: say so.
    if (!(err instanceof BerthError) || !/^(filesystem layer verification|error pulling layer|pull cancelled)/.test(err.message)) {
      for (const i of unverified) {
        if (!(await blobMatches(ctx, host, repo, layers[i], auth, scope).catch(() => true))) {
          throw invalidArgument(`filesystem layer verification failed for digest ${layers[i].digest}`);
        }
      }
    }
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    aborter.abort();
  }
  await ctx.images.addRepoDigest(imageId, referenceString({ domain: ref.domain, path: ref.path, digest: top.digest }));
  for (let i = 0; i < layers.length; i++) {
    await ctx.metadata.remember(diffIDs[i], { digest: layers[i].digest, size: layers[i].size, mediaType: layers[i].mediaType ?? MT.dockerLayer, registry: host, repository: repo });
  }
  progress({ status: `Digest: ${top.digest}` });
  progress({ status: upToDate ? `Status: Image is up to date for ${shown}` : `Status: Downloaded newer image for ${shown}` });
}

async function fetchSmallBlob(ctx: PullContext, host: string, repo: string, digest: string, auth: RegistryAuth | undefined, scope: string): Promise<Buffer> {
  const r = await ctx.transport.request(host, 'GET', `/v2/${repo}/blobs/${digest}`, { auth, scope });
  const body = Buffer.from(await r.body.arrayBuffer());
  if (r.status !== 200) throw new BerthError(r.status === 404 ? 'not-found' : 'internal', `error fetching blob ${digest}: ${registryMessage(body.toString()) || `status ${r.status}`}`);
  if (sha256(body) !== digest) throw invalidArgument(`failed to verify blob ${digest}: digest mismatch`);
  return body;
}

/**
 * A blob as a stream that only ends cleanly once its size and SHA-256 checked out: a mismatch
 * errors the stream instead of ending it, so whatever consumes it (the unpacker) never
 * publishes unverified bytes. A connection dropped mid-body is resumed with a Range request
 * from the bytes already passed on (a registry that answers the whole blob again has that
 * prefix skipped). Destroying the stream cancels the request.
 */
function verifiedBlobStream(ctx: PullContext, host: string, repo: string, desc: Descriptor, auth: RegistryAuth | undefined, scope: string, progress: ProgressSink, signal: AbortSignal, verified: () => void): Readable {
  const id = shortId(desc.digest);
  const own = new AbortController();
  const cancel = () => own.abort();
  signal.addEventListener('abort', cancel);
  const report = throttled((cur) => progress(progressMessage(id, 'Downloading', cur, desc.size)));
  let have = 0;
  // Socket reads are small (16-64 KiB); the gunzip and file writes behind cost a thread-pool round
  // trip per chunk, so bytes are handed on in batches.
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = () => {
    const b = pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    report(have);
    return b;
  };
  async function* body(): AsyncGenerator<Buffer> {
    // Hashed on the thread pool, a batch at a time, while the event loop parses the layer.
    const hash = new PoolSha256();
    try {
      for (let attempt = 0; ; attempt++) {
        if (own.signal.aborted) throw new BerthError('internal', 'pull cancelled');
        const headers: Record<string, string> = have > 0 ? { Range: `bytes=${have}-` } : {};
        let r;
        try {
          r = await ctx.transport.request(host, 'GET', `/v2/${repo}/blobs/${desc.digest}`, { auth, scope, headers, signal: own.signal });
        } catch (err) {
          if (attempt < RESUMES && have > 0 && !own.signal.aborted) continue;
          throw err;
        }
        if (r.status !== 200 && r.status !== 206) {
          const text = await r.body.text();
          throw new BerthError(r.status === 404 ? 'not-found' : 'internal', `error pulling layer ${desc.digest}: ${registryMessage(text) || `status ${r.status}`}`);
        }
        // A 200 to a Range request is the whole blob again: skip what was already passed on.
        let skip = r.status === 200 ? have : 0;
        try {
          for await (const chunk of r.body) {
            let c = chunk as Buffer;
            if (skip > 0) {
              const n = Math.min(skip, c.length);
              skip -= n;
              c = c.subarray(n);
              if (!c.length) continue;
            }
            have += c.length;
            if (have > desc.size) throw invalidArgument(`filesystem layer verification failed for digest ${desc.digest}: more data than the manifest's size`);
            pending.push(c);
            pendingBytes += c.length;
            if (pendingBytes >= BATCH) {
              const b = flush();
              hash.update(b);
              yield b;
              await hash.settled(HASH_BACKLOG);
            }
          }
          break;
        } catch (err) {
          if (err instanceof BerthError || own.signal.aborted || attempt >= RESUMES) throw err;
          // Connection dropped mid-body: ask for the rest.
        }
      }
      if (pendingBytes) {
        const b = flush();
        hash.update(b);
        yield b;
      }
      report(have, true);
      if (have !== desc.size || (await hash.digest()) !== desc.digest) {
        throw invalidArgument(`filesystem layer verification failed for digest ${desc.digest}`);
      }
      verified();
      progress({ status: 'Verifying Checksum', progressDetail: {}, id });
      progress({ status: 'Download complete', progressDetail: {}, id });
    } catch (err) {
      if (err instanceof BerthError) throw err;
      if (own.signal.aborted) throw new BerthError('internal', 'pull cancelled', { cause: err });
      throw new BerthError('internal', `error pulling layer ${desc.digest}: the registry closed the connection after ${have} of ${desc.size} bytes (${(err as Error)?.message ?? err})`, { cause: err });
    } finally {
      signal.removeEventListener('abort', cancel);
    }
  }
  const stream = Readable.from(body(), { objectMode: false, highWaterMark: 1 << 20 });
  stream.once('close', cancel);
  return stream;
}

/** Whether a blob as the registry serves it has its digest (only asked after an unpack failed). */
async function blobMatches(ctx: PullContext, host: string, repo: string, desc: Descriptor, auth: RegistryAuth | undefined, scope: string): Promise<boolean> {
  const r = await ctx.transport.request(host, 'GET', `/v2/${repo}/blobs/${desc.digest}`, { auth, scope });
  if (r.status !== 200) { await r.body.dump(); return true; }
  const hash = createHash('sha256');
  for await (const c of r.body) hash.update(c as Buffer);
  return 'sha256:' + hash.digest('hex') === desc.digest;
}
