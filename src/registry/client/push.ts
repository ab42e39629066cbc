/**
 * Push: for each layer (in parallel, bounded) a blob the registry already has is found with
 * a HEAD ("Layer already exists") or mounted from another repository of the same registry
 * ("Mounted from team/base"), both from what was remembered at earlier pulls and pushes;
 * otherwise the stored tar is gzip-compressed while it streams into a chunked upload, hashed
 * on the way, and committed with the digest. Then the config and a Docker v2 schema 2 manifest.
 */
import { fastGzip } from '../../common/compression';
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { BerthError } from '../../common/errors';
import { familiarString, referenceString, type Reference } from '../../common/reference';
import type { ImageRecord, ImageService, ProgressSink, RegistryAuth } from '../../engine/types';
import { progressMessage, shortId, throttled } from './progress';
import { registryMessage, type RegistryTransport } from './transport';
import type { DistributionMetadata } from './metadata';
import { MT } from './pull';

export interface PushContext {
  transport: RegistryTransport;
  images: ImageService;
  metadata: DistributionMetadata;
  maxConcurrent: number;
}

interface Pushed { digest: string; size: number }

const sha256 = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

export async function pushImage(ctx: PushContext, ref: Reference, img: ImageRecord, auth: RegistryAuth | undefined, progress: ProgressSink): Promise<void> {
  const host = ref.domain === 'docker.io' ? 'registry-1.docker.io' : ref.domain;
  const repo = ref.path;
  const tag = ref.tag ?? 'latest';
  const scope = `repository:${repo}:pull,push`;
  const diffIDs = img.config.rootfs?.diff_ids ?? [];
  for (const d of [...diffIDs].reverse()) progress({ status: 'Preparing', progressDetail: {}, id: shortId(d) });

  let running = 0;
  const waiters: Array<() => void> = [];
  const slot = async () => { while (running >= ctx.maxConcurrent) await new Promise<void>((r) => waiters.push(r)); running++; };
  const release = () => { running--; waiters.shift()?.(); };
  const pushed = await Promise.all(diffIDs.map(async (diffID) => {
    await slot();
    try { return await pushLayer(ctx, host, repo, diffID, auth, scope, progress); } finally { release(); }
  }));

  const configBytes = await ctx.images.configBytes(img.id);
  const configDigest = sha256(configBytes);
  if (!(await blobExists(ctx, host, repo, configDigest, auth, scope))) {
    await uploadMonolithic(ctx, host, repo, configBytes, configDigest, auth, scope);
  }
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MT.dockerManifest,
    config: { mediaType: MT.dockerConfig, size: configBytes.length, digest: configDigest },
    layers: pushed.map((p) => ({ mediaType: MT.dockerLayer, size: p.size, digest: p.digest })),
  }, null, 3));
  const r = await ctx.transport.request(host, 'PUT', `/v2/${repo}/manifests/${tag}`, { auth, scope, headers: { 'Content-Type': MT.dockerManifest }, body: manifest });
  const text = await r.body.text();
  if (r.status !== 201 && r.status !== 200) throw pushError(r.status, text, `failed to push the manifest of ${familiarString(ref)}`);
  const digest = sha256(manifest);
  await ctx.images.addRepoDigest(img.id, referenceString({ domain: ref.domain, path: ref.path, digest }));
  progress({ status: `${tag}: digest: ${digest} size: ${manifest.length}` });
  progress({ progressDetail: {}, aux: { Tag: tag, Digest: digest, Size: manifest.length } });
}

function pushError(status: number, text: string, what: string): BerthError {
  const why = registryMessage(text);
  if (status === 401 || status === 403) return new BerthError('unauthorized', why ? why.replace(/^[^:]*: /, '') === 'requested access to the resource is denied' ? 'denied: requested access to the resource is denied' : why : 'unauthorized: authentication required');
  return new BerthError('internal', `${what}: ${why || `status ${status}`}`);
}

async function blobExists(ctx: PushContext, host: string, repo: string, digest: string, auth: RegistryAuth | undefined, scope: string): Promise<number | undefined> {
  const r = await ctx.transport.request(host, 'HEAD', `/v2/${repo}/blobs/${digest}`, { auth, scope });
  await r.body.dump();
  if (r.status === 200) return Number(r.headers['content-length'] ?? 0);
  if (r.status === 404) return undefined;
  throw pushError(r.status, '', `checking blob ${digest}`);
}

async function pushLayer(ctx: PushContext, host: string, repo: string, diffID: string, auth: RegistryAuth | undefined, scope: string, progress: ProgressSink): Promise<Pushed> {
  const id = shortId(diffID);
  for (const loc of ctx.metadata.locations(diffID, host, repo)) {
    if (loc.repository === repo) {
      const size = await blobExists(ctx, host, repo, loc.digest, auth, scope);
      if (size !== undefined) {
        progress({ status: 'Layer already exists', progressDetail: {}, id });
        return { digest: loc.digest, size: loc.size };
      }
      continue;
    }
    const mountScope = `${scope} repository:${loc.repository}:pull`;
    const r = await ctx.transport.request(host, 'POST', `/v2/${repo}/blobs/uploads/?mount=${loc.digest}&from=${encodeURIComponent(loc.repository)}`, { auth, scope: mountScope });
    await r.body.dump();
    if (r.status === 201) {
      progress({ status: `Mounted from ${loc.repository}`, progressDetail: {}, id });
      await ctx.metadata.remember(diffID, { ...loc, repository: repo });
      return { digest: loc.digest, size: loc.size };
    }
    if (r.status === 202) await cancelUpload(ctx, host, r.headers.location, auth, scope);
  }

  // Compress and upload: POST, one streamed PATCH, PUT with the digest computed on the way.
  const total = await ctx.images.layerTarSize(diffID);
  const start = await ctx.transport.request(host, 'POST', `/v2/${repo}/blobs/uploads/`, { auth, scope });
  const startText = await start.body.text();
  if (start.status !== 202) throw pushError(start.status, startText, `starting the upload of ${diffID}`);
  const location = String(start.headers.location ?? '');
  const hash = createHash('sha256');
  let compressed = 0;
  let read = 0;
  const report = throttled((cur) => progress(progressMessage(id, 'Pushing', cur, total)));
  const counter = new Transform({
    transform(chunk: Buffer, _e, cb) { read += chunk.length; report(read); cb(null, chunk); },
  });
  const hasher = new Transform({
    transform(chunk: Buffer, _e, cb) { hash.update(chunk); compressed += chunk.length; cb(null, chunk); },
  });
  const tar = await ctx.images.openLayerTar(diffID);
  tar.pipe(counter).pipe(fastGzip()).pipe(hasher);
  tar.on('error', (e) => hasher.destroy(e));
  const patch = await ctx.transport.request(host, 'PATCH', location, { auth, scope, headers: { 'Content-Type': 'application/octet-stream' }, body: hasher });
  const patchText = await patch.body.text();
  if (patch.status !== 202 && patch.status !== 204) {
    await cancelUpload(ctx, host, location, auth, scope);
    throw pushError(patch.status, patchText, `uploading layer ${diffID}`);
  }
  const digest = 'sha256:' + hash.digest('hex');
  const next = String(patch.headers.location ?? location);
  const put = await ctx.transport.request(host, 'PUT', `${next}${next.includes('?') ? '&' : '?'}digest=${digest}`, { auth, scope });
  const putText = await put.body.text();
  if (put.status !== 201) throw pushError(put.status, putText, `committing layer ${diffID}`);
  report(read, true);
  progress({ status: 'Pushed', progressDetail: {}, id });
  await ctx.metadata.remember(diffID, { digest, size: compressed, mediaType: MT.dockerLayer, registry: host, repository: repo });
  return { digest, size: compressed };
}

async function uploadMonolithic(ctx: PushContext, host: string, repo: string, data: Buffer, digest: string, auth: RegistryAuth | undefined, scope: string): Promise<void> {
  const start = await ctx.transport.request(host, 'POST', `/v2/${repo}/blobs/uploads/`, { auth, scope });
  const startText = await start.body.text();
  if (start.status !== 202) throw pushError(start.status, startText, `starting the upload of ${digest}`);
  const location = String(start.headers.location ?? '');
  const put = await ctx.transport.request(host, 'PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`, { auth, scope, headers: { 'Content-Type': 'application/octet-stream' }, body: data });
  const text = await put.body.text();
  if (put.status !== 201) throw pushError(put.status, text, `uploading ${digest}`);
}

async function cancelUpload(ctx: PushContext, host: string, location: unknown, auth: RegistryAuth | undefined, scope: string): Promise<void> {
  if (typeof location !== 'string' || !location) return;
  const r = await ctx.transport.request(host, 'DELETE', location, { auth, scope }).catch(() => undefined);
  await r?.body.dump();
}
