/**
 * The registry client (DistributionService): pull, push, login and search for berthd.
 * Nothing here opens a connection until one of them is called.
 */
import * as path from 'node:path';
import * as fsp from 'node:fs/promises';
import { BerthError, invalidArgument, notFound } from '../../common/errors';
import { familiarName, familiarString, parseReference, referenceString, type Reference } from '../../common/reference';
import type { DaemonConfig } from '../../engine/config';
import type { DistributionService, ImageService, ProgressSink, PullOptions, PushOptions, RegistryAuth } from '../../engine/types';
import { DistributionMetadata } from './metadata';
import { RegistryTransport, registryMessage } from './transport';
import { fetchManifest, pullImage, type PullContext } from './pull';
import { pushImage } from './push';

export async function createDistributionService(config: DaemonConfig, images: ImageService): Promise<DistributionService> {
  const metadata = new DistributionMetadata(config.dataRoot);
  await metadata.open();
  // Temp files of the pulls of older versions (layers now stream straight into the unpacker).
  await fsp.rm(path.join(config.dataRoot, 'tmp', 'pull'), { recursive: true, force: true });
  const transport = new RegistryTransport(config);
  return new Distribution(config, images, metadata, transport);
}

/** Registry host of an auth request's serveraddress (`https://index.docker.io/v1/` for Docker Hub). */
function loginHost(serveraddress: string | undefined): string {
  const s = (serveraddress ?? '').trim();
  if (!s || /(^|\/\/)(index\.)?docker\.io(\/|$)/.test(s)) return 'registry-1.docker.io';
  return s.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
}

class Distribution implements DistributionService {
  constructor(private config: DaemonConfig, private images: ImageService, private metadata: DistributionMetadata,
    private transport: RegistryTransport) {}

  private pullContext(): PullContext {
    return { transport: this.transport, images: this.images, metadata: this.metadata, maxConcurrent: Math.max(this.config.maxConcurrentDownloads, 1) };
  }

  async pull(refStr: string, opts: PullOptions, progress: ProgressSink): Promise<void> {
    const ref = parseReference(refStr);
    if (!opts.allTags) {
      await this.pullWithMirrors({ ...ref, tag: ref.digest ? ref.tag : ref.tag ?? 'latest' }, opts, progress);
      return;
    }
    if (ref.tag !== undefined || ref.digest !== undefined) throw invalidArgument('tag can\'t be used with --all-tags/-a');
    const host = ref.domain === 'docker.io' ? 'registry-1.docker.io' : ref.domain;
    const r = await this.transport.request(host, 'GET', `/v2/${ref.path}/tags/list`, { auth: opts.auth, scope: `repository:${ref.path}:pull` });
    const text = await r.body.text();
    if (r.status !== 200) {
      if (r.status === 404) throw notFound(`repository ${familiarName(ref)} not found: ${registryMessage(text) || 'name unknown'}`);
      throw new BerthError(r.status === 401 ? 'unauthorized' : 'internal', `listing the tags of ${familiarName(ref)}: ${registryMessage(text) || `status ${r.status}`}`);
    }
    const tags: string[] = JSON.parse(text).tags ?? [];
    for (const tag of tags) await pullImage(this.pullContext(), { ...ref, tag }, opts.auth, opts.platform, progress, opts.signal);
  }

  /** Docker Hub images go to the configured mirrors first; a mirror that fails is skipped. */
  private async pullWithMirrors(ref: Reference, opts: PullOptions, progress: ProgressSink): Promise<void> {
    if (ref.domain === 'docker.io') {
      for (const m of this.config.registryMirrors) {
        const host = m.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
        let started = false;
        try {
          await pullImage({ ...this.pullContext() }, { ...ref, domain: host }, undefined, opts.platform, (msg) => { started = true; progress(msg); }, opts.signal);
          return;
        } catch (err) {
          if (started) throw err;
        }
      }
    }
    await pullImage(this.pullContext(), ref, opts.auth, opts.platform, progress, opts.signal);
  }

  async push(refStr: string, opts: PushOptions, progress: ProgressSink): Promise<void> {
    const ref = parseReference(refStr);
    if (ref.digest !== undefined) throw invalidArgument('cannot push a digest reference');
    const repoName = referenceString({ domain: ref.domain, path: ref.path });
    let targets: Array<{ tag: string; id: string }>;
    if (ref.tag !== undefined) {
      let img;
      try { img = await this.images.resolve(referenceString(ref)); } catch { img = undefined; }
      if (!img) throw notFound(`An image does not exist locally with the tag: ${familiarString(ref)}`);
      targets = [{ tag: ref.tag, id: img.id }];
    } else {
      targets = [];
      for (const img of await this.images.list()) {
        for (const t of img.repoTags) {
          const r = parseReference(t);
          if (referenceString({ domain: r.domain, path: r.path }) === repoName && r.tag) targets.push({ tag: r.tag, id: img.id });
        }
      }
      if (!targets.length) throw notFound(`An image does not exist locally with the tag: ${familiarName(ref)}`);
      targets.sort((a, b) => (a.tag < b.tag ? -1 : 1));
    }
    progress({ status: `The push refers to repository [${repoName}]` });
    const ctx = { transport: this.transport, images: this.images, metadata: this.metadata, maxConcurrent: Math.max(this.config.maxConcurrentUploads, 1) };
    for (const t of targets) {
      const img = await this.images.resolve(t.id);
      await pushImage(ctx, { ...ref, tag: t.tag }, img, opts.auth, progress);
    }
  }

  async login(auth: RegistryAuth): Promise<{ Status: string; IdentityToken: string }> {
    await this.transport.login(loginHost(auth.serveraddress), auth);
    return { Status: 'Login Succeeded', IdentityToken: '' };
  }

  async search(term: string, limit: number, auth: RegistryAuth | undefined): Promise<Array<{ name: string; description: string; star_count: number; is_official: boolean; is_automated: boolean }>> {
    // `registry/term` searches that registry; a bare term would go to Docker Hub.
    const slash = term.indexOf('/');
    const first = slash > 0 ? term.slice(0, slash) : '';
    const isHost = first.includes('.') || first.includes(':') || first === 'localhost';
    const host = isHost ? first : 'index.docker.io';
    const q = isHost ? term.slice(slash + 1) : term;
    const base = await this.transport.base(host);
    const r = await this.transport.request(host, 'GET', `${base}/v1/search?q=${encodeURIComponent(q)}&n=${limit || 25}`, { auth, scope: '' });
    const text = await r.body.text();
    if (r.status !== 200) throw new BerthError(r.status === 401 ? 'unauthorized' : 'internal', `Unexpected status code ${r.status}`);
    return (JSON.parse(text).results ?? []).map((x: any) => ({
      name: String(x.name ?? ''), description: String(x.description ?? ''), star_count: Number(x.star_count ?? 0),
      is_official: !!x.is_official, is_automated: !!x.is_automated,
    }));
  }
}

