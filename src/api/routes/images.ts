/**
 * Image routes: list, inspect, history, tag, remove, prune, create (pulls go to the
 * registry routes' handler), and the Berth extension POST /berth/bootstrap.
 */
import type { Router, Ctx } from '../router';
import type { Services } from '../../engine/services';
import { BerthError, invalidArgument, notFound } from '../../common/errors';
import { familiarString, parseReference, withDefaultTag, referenceString, isValidTag } from '../../common/reference';
import { bootstrapImage } from '../../image/bootstrap';
import { handleFromImage } from './distribution';

/** Handler for `POST /images/create?fromSrc=...` (import), provided by the archive area. */
export type FromSrcHandler = (ctx: Ctx, services: Services) => Promise<void>;
let fromSrcHandler: FromSrcHandler | undefined;

/** The import code registers itself here; /images/create dispatches fromSrc requests to it. */
export function setFromSrcHandler(h: FromSrcHandler): void {
  fromSrcHandler = h;
}

/** Writes one JSON-lines progress message (`\r\n` separated, as dockerd does for pull/load). */
export function writeProgress(res: NodeJS.WritableStream, msg: unknown): void {
  res.write(JSON.stringify(msg) + '\r\n');
}

export function registerImageRoutes(router: Router, services: Services): void {
  const { images } = services;

  router.get('/images/json', async (ctx) => {
    const list = await images.summaries({
      all: ctx.bool('all'),
      filters: ctx.filters(),
      digests: ctx.bool('digests'),
      apiVersion: ctx.version,
    });
    ctx.send(200, list);
  });

  router.get('/images/(.+)/json', async (ctx) => {
    ctx.send(200, await images.inspect(ctx.params[0], ctx.version));
  });

  router.get('/images/(.+)/history', async (ctx) => {
    ctx.send(200, await images.history(ctx.params[0]));
  });

  router.post('/images/(.+)/tag', async (ctx) => {
    const repo = ctx.query.get('repo') ?? '';
    const tag = ctx.query.get('tag') ?? '';
    if (!repo) throw invalidArgument('repository name must have at least one component');
    const ref = parseReference(repo);
    if (tag) {
      if (!isValidTag(tag)) throw invalidArgument('invalid tag format');
      if (ref.tag !== undefined || ref.digest !== undefined) throw invalidArgument('invalid reference format');
      ref.tag = tag;
    }
    await images.tag(ctx.params[0], referenceString(withDefaultTag(ref)));
    ctx.send(201);
  });

  router.post('/images/prune', async (ctx) => {
    const filters = ctx.filters();
    for (const k of Object.keys(filters)) {
      if (!['dangling', 'label', 'label!', 'until'].includes(k)) throw invalidArgument(`invalid filter '${k}'`);
    }
    ctx.send(200, await images.prune({ filters }));
  });

  router.post('/images/create', async (ctx) => {
    if (ctx.query.has('fromSrc')) {
      if (!fromSrcHandler) throw new BerthError('not-implemented', 'image import (fromSrc) is not available in this build');
      await fromSrcHandler(ctx, services);
      return;
    }
    if (!ctx.query.get('fromImage')) throw invalidArgument('fromImage or fromSrc is required');
    await handleFromImage(ctx, services);
  });

  router.delete('/images/(.+)', async (ctx) => {
    const items = await images.remove(ctx.params[0], { force: ctx.bool('force'), noprune: ctx.bool('noprune') });
    ctx.send(200, items);
  });

  // Berth extension: build a base image from the host (busybox, debian:<suite>).
  router.post('/berth/bootstrap', async (ctx) => {
    const name = ctx.query.get('image') ?? ctx.query.get('fromImage') ?? '';
    if (!name) throw invalidArgument('image name is required (busybox or debian:<suite>)');
    // Validate before the stream starts so bad names get a real HTTP error.
    const ref = withDefaultTag(parseReference(name));
    const repo = familiarString({ ...ref, tag: undefined, digest: undefined });
    if (repo !== 'busybox' && repo !== 'debian') {
      throw invalidArgument(`cannot bootstrap ${name}: only busybox and debian:<suite> can be bootstrapped`);
    }
    if (repo === 'debian' && (ref.tag === undefined || ref.tag === 'latest')) {
      throw invalidArgument('specify a Debian suite, e.g. debian:bookworm');
    }
    const res = ctx.startStream('application/json');
    const abort = new AbortController();
    res.on('close', () => abort.abort());
    try {
      const { image, tag } = await bootstrapImage(images, services.config.dataRoot, name, (status) => {
        if (!res.writableEnded) writeProgress(res, { status });
      });
      writeProgress(res, { status: `Bootstrapped ${tag}`, aux: { ID: image.id } });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      writeProgress(res, { errorDetail: { message }, error: message });
    }
    res.end();
  });
}
