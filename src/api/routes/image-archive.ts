/**
 * Archive endpoints: image save/load, commit, container changes and the
 * container archive (cp). Import (POST /images/create?fromSrc=) is routed by
 * the images routes to image/import.ts.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Router, Ctx } from '../router';
import type { Services } from '../../engine/services';
import { invalidArgument } from '../../common/errors';
import { familiarName, familiarString, parseReference, referenceString, withDefaultTag } from '../../common/reference';
import { openSpooledLayer, readSpooledImages, spoolArchive, writeDockerArchive, type SaveImage } from '../../image/archive';
import { commitContainer } from '../../image/commit';
import { prepareLayer } from '../../image/prepared-layer';
import { chainIDs } from '../../store/snapshots';
import { changesFromQuery, humanSize, importFromRequest } from '../../image/import';
import { setFromSrcHandler } from './images';
import { JsonStream, detachedBody } from '../../image/progress';
import type { BerthImageService } from '../../image/service';
import { containerChangesOf, exportContainer, getArchive, headArchive, putArchive } from '../../container/archive';

export function registerImageArchiveRoutes(router: Router, services: Services): void {
  const images = services.images as BerthImageService;
  const spoolRoot = path.join(services.config.dataRoot, 'tmp');
  // POST /images/create?fromSrc= is routed by the images routes to import.
  setFromSrcHandler(importFromRequest);
  // Spools of loads interrupted by a crash.
  try {
    for (const n of fs.readdirSync(spoolRoot)) if (n.startsWith('load-')) fs.rmSync(path.join(spoolRoot, n), { recursive: true, force: true });
  } catch { /* no tmp dir yet */ }

  const save = async (ctx: Ctx, names: string[]) => {
    if (names.length === 0) throw invalidArgument('no image names given');
    const list = await imagesToSave(images, names);
    const res = ctx.startStream('application/x-tar');
    try {
      await writeDockerArchive(list, {
        size: (d) => images.layerTarSize(d),
        open: (d) => images.openLayerTar(d),
      }, res);
    } catch (err) {
      // Headers are out: all we can do is cut the stream so the client sees a truncated tar.
      res.destroy(err as Error);
    }
  };
  router.get('/images/get', (ctx) => save(ctx, ctx.query.getAll('names')));
  router.get(/^\/images\/(.+)\/get$/, (ctx) => save(ctx, [ctx.params[0]]));

  router.post('/images/load', async (ctx) => {
    const quiet = ctx.bool('quiet', false);
    await fsp.mkdir(spoolRoot, { recursive: true, mode: 0o700 });
    const spoolDir = path.join(spoolRoot, `load-${randomBytes(8).toString('hex')}`);
    const out = new JsonStream(ctx);
    let spool;
    let failure: unknown;
    try {
      spool = await spoolArchive(detachedBody(ctx.req), spoolDir, { prepare: (src) => prepareLayer(images, src) });
      const loaded = await readSpooledImages(spool);
      for (const img of loaded) {
        // Layers unpacked while the upload streamed are published now that the whole archive checked out;
        // createImageFromLayers then finds them in place (the rest it unpacks from the spool).
        const fresh = new Set<string>();
        let parent = '';
        for (const l of img.layers) {
          const chain = parent ? chainIDs([parent, l.diffID])[1] : l.diffID;
          const p = images.snapshots.hasLayer(chain) ? undefined : await l.prepared;
          if (p && p.diffID === l.diffID && (await p.commit(parent))) fresh.add(l.diffID.slice(7, 19));
          parent = chain;
        }
        const moved: string[] = [];
        for (const t of img.tags) {
          const old = await images.resolve(t).catch(() => undefined);
          if (old && old.id !== img.id) moved.push(`The image ${familiarString(t)} already exists, renaming the old one with ID ${old.id} to empty string`);
        }
        await images.createImageFromLayers({
          layers: img.layers.map((l) => ({ diffID: l.diffID, open: async () => openSpooledLayer(l) })),
          config: img.configBytes,
          tags: img.tags,
          eventAction: 'load',
          onProgress: (p) => {
            if (quiet) return;
            if (p.status === 'Already exists' && p.id && fresh.has(p.id)) p = { ...p, status: 'Loading layer' };
            const layer = img.layers.find((l) => l.diffID.slice(7, 19) === p.id);
            if (p.status === 'Loading layer' && layer) {
              out.send({
                status: 'Loading layer',
                progressDetail: { current: layer.size, total: layer.size },
                progress: `[${'='.repeat(49)}>]  ${humanSize(layer.size)}/${humanSize(layer.size)}`,
                id: p.id,
              });
            } else {
              out.send({ status: p.status === 'Already exists' ? 'Layer already exists' : p.status, progressDetail: {}, id: p.id });
            }
          },
        });
        for (const m of moved) out.send({ stream: m + '\n' });
        if (img.tags.length === 0) out.send({ stream: `Loaded image ID: ${img.id}\n` });
        for (const t of img.tags) out.send({ stream: `Loaded image: ${familiarString(t)}\n` });
      }
    } catch (err) {
      failure = err;
    }
    // The spool goes before the answer ends, so a client never sees it linger.
    if (spool) await spool.discardPrepared().catch(() => undefined);
    await fsp.rm(spoolDir, { recursive: true, force: true });
    if (failure) out.fail(failure); else out.end();
  });

  router.post('/commit', async (ctx) => {
    const container = ctx.query.get('container') ?? '';
    if (!container) throw invalidArgument('No container specified');
    const overrides = await ctx.json<Record<string, unknown> | null>(null as any);
    const id = await commitContainer(services, {
      container,
      repo: ctx.query.get('repo') ?? '',
      tag: ctx.query.get('tag') ?? '',
      comment: ctx.query.get('comment') ?? '',
      author: ctx.query.get('author') ?? '',
      pause: ctx.bool('pause', true),
      changes: changesFromQuery(ctx.query),
      config: overrides ?? undefined,
    });
    ctx.send(201, { Id: id });
  });

  router.get(/^\/containers\/([^/]+)\/changes$/, async (ctx) => {
    ctx.send(200, await containerChangesOf(services, ctx.params[0]));
  });

  router.head(/^\/containers\/([^/]+)\/archive$/, (ctx) => headArchive(ctx, services, ctx.params[0]));
  router.get(/^\/containers\/([^/]+)\/archive$/, (ctx) => getArchive(ctx, services, ctx.params[0]));
  router.get(/^\/containers\/([^/]+)\/export$/, (ctx) => exportContainer(ctx, services, ctx.params[0]));
  router.put(/^\/containers\/([^/]+)\/archive$/, (ctx) => putArchive(ctx, services, ctx.params[0]));
}

/**
 * Docker's save name rules: a repository name alone means all its tags;
 * `name:tag` that tag; an id (or prefix) the image without tags. The same
 * image named twice is written once, with every tag asked for.
 */
async function imagesToSave(images: BerthImageService, names: string[]): Promise<SaveImage[]> {
  const byId = new Map<string, Set<string>>();
  const order: string[] = [];
  const add = (id: string, tag?: string) => {
    if (!byId.has(id)) { byId.set(id, new Set()); order.push(id); }
    if (tag) byId.get(id)!.add(tag);
  };
  for (const name of names) {
    let ref;
    try { ref = parseReference(name); } catch { ref = undefined; }
    if (ref && ref.tag === undefined && ref.digest === undefined) {
      const repo = familiarName(ref);
      const all = await images.list();
      const hits = all.flatMap((r) => r.repoTags.filter((t) => familiarName(parseReference(t)) === repo).map((t) => [r.id, t] as const));
      if (hits.length) { for (const [id, t] of hits) add(id, t); continue; }
    }
    const rec = await images.resolve(name);
    if (ref && ref.tag !== undefined && ref.digest === undefined) add(rec.id, familiarString(withDefaultTag(ref)));
    else add(rec.id);
  }
  const out: SaveImage[] = [];
  for (const id of order) {
    const rec = await images.resolve(id);
    out.push({
      id,
      repoTags: [...byId.get(id)!].map((t) => familiarString(referenceString(withDefaultTag(parseReference(t))))),
      configBytes: await images.configBytes(id),
      diffIDs: rec.config.rootfs?.diff_ids ?? [],
    });
  }
  return out;
}
