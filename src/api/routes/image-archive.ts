/**
 * Archive endpoints: image save/load/import, commit, container changes and
 * the container archive (cp, export). Thin handlers: the work is done by the
 * image service (save/load), image/import.ts, image/commit.ts and
 * container/archive.ts; this file reads the request and writes the answer.
 * Import (POST /images/create?fromSrc=) is routed here by the images routes.
 */
import type { Router, Ctx } from '../router';
import type { Services } from '../../engine/services';
import { invalidArgument } from '../../common/errors';
import { commitContainer } from '../../image/commit';
import { importImage } from '../../image/import';
import { setFromSrcHandler } from './images';
import { JsonStream, detachedBody } from '../jsonstream';
import { stallGuard } from '../../common/tarout';
import { uploadGuard } from '../../common/upload';
import type { Readable } from 'node:stream';
import { registerContainerArchiveRoutes } from './container-archive';

/** An upload bounded by the daemon's size limit and free-disk reserve (daemon.json "api-limits"). */
function guardedUpload(body: Readable, services: Services): Readable {
  const { dataRoot, limits } = services.config;
  const guard = uploadGuard(dataRoot, { maxBytes: limits.uploadBodyBytes, minFreeBytes: limits.minFreeDiskBytes }, 'the import');
  body.on('error', (err) => guard.destroy(err));
  guard.on('error', () => body.destroy());
  return body.pipe(guard);
}

/** `changes` query values: repeated parameters, each one instruction. */
function changesFromQuery(q: URLSearchParams): string[] {
  return q.getAll('changes').filter((c) => c.trim() !== '');
}

export function registerImageArchiveRoutes(router: Router, services: Services): void {
  const { images } = services;

  /** GET /images/get?names=... and GET /images/{name}/get */
  const save = async (ctx: Ctx, names: string[]) => {
    if (names.length === 0) throw invalidArgument('no image names given');
    let res: ReturnType<Ctx['startStream']> | undefined;
    let unguard = () => undefined as void;
    try {
      await images.save(names, () => {
        res = ctx.startStream('application/x-tar');
        unguard = stallGuard(res, ctx.limits.streamStallSec * 1000);
        return res;
      });
    } catch (err) {
      // Headers out: all we can do is cut the stream so the client sees a truncated tar.
      if (!res) throw err;
      res.destroy(err as Error);
    } finally {
      unguard();
    }
  };
  router.get('/images/get', (ctx) => save(ctx, ctx.query.getAll('names')));
  router.get(/^\/images\/(.+)\/get$/, (ctx) => save(ctx, [ctx.params[0]]));

  /** POST /images/load */
  const load = (ctx: Ctx) => new JsonStream(ctx).run((progress) =>
    images.load(detachedBody(ctx.req), { quiet: ctx.bool('quiet', false) }, progress),
  // dockerd answers a load 200 whatever happens and reports a bad archive in the stream (docker-py's ImageLoadError).
  { errorsInBand: true });
  router.post('/images/load', load);

  /** POST /images/create?fromSrc=- (routed here by the images routes): answers `{"status":"sha256:<id>"}` last. */
  setFromSrcHandler(async (ctx) => {
    const src = ctx.query.get('fromSrc') ?? '';
    if (src !== '-') {
      throw invalidArgument(`importing from a URL (${src}) is not supported: Berth works offline; send the tarball in the request body (fromSrc=-)`);
    }
    const opts = {
      repo: ctx.query.get('repo') ?? '',
      tag: ctx.query.get('tag') ?? '',
      changes: changesFromQuery(ctx.query),
      message: ctx.query.get('message') ?? '',
      platform: ctx.query.get('platform') ?? '',
    };
    const out = new JsonStream(ctx);
    await out.run(async (progress) => {
      const record = await importImage(images, opts, () => guardedUpload(detachedBody(ctx.req), services), progress);
      progress({ status: record.id });
    });
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
  }, { body: 'ImageCommit' });

  registerContainerArchiveRoutes(router, services);
}
