/**
 * Archive endpoints: image save/load/import, commit, container changes and
 * the container archive (cp, export). Thin handlers: the work is done by the
 * image service (save/load), image/import.ts, image/commit.ts and
 * container/archive.ts; this file reads the request and writes the answer.
 * Import (POST /images/create?fromSrc=) is dispatched to imageImport by the images routes.
 */
import { addRoutes, type Ctx, type RouteEntry, type Router } from '../router';
import type { Services } from '../../engine/services';
import { invalidArgument } from '../../common/errors';
import { commitContainer } from '../../image/commit';
import { importImage } from '../../image/import';
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

/** Streams a save as a tar: GET /images/get?names=... and GET /images/{name}/get */
async function saveImages(ctx: Ctx, services: Services, names: string[]): Promise<void> {
  if (names.length === 0) throw invalidArgument('no image names given');
  let res: ReturnType<Ctx['startStream']> | undefined;
  let unguard = () => undefined as void;
  try {
    await services.images.save(names, () => {
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
}

/** GET /images/get?names=... */
function imageSaveMany(ctx: Ctx, services: Services): Promise<void> {
  return saveImages(ctx, services, ctx.query.getAll('names'));
}

/** GET /images/{name}/get */
function imageSaveOne(ctx: Ctx, services: Services): Promise<void> {
  return saveImages(ctx, services, [ctx.params[0]]);
}

/** POST /images/load */
function imageLoad(ctx: Ctx, services: Services): Promise<void> {
  return new JsonStream(ctx).run((progress) =>
    services.images.load(detachedBody(ctx.req), { quiet: ctx.bool('quiet', false) }, progress),
  // dockerd answers a load 200 whatever happens and reports a bad archive in the stream (docker-py's ImageLoadError).
  { errorsInBand: true });
}

/** POST /images/create?fromSrc=- (routed here by the images routes): answers `{"status":"sha256:<id>"}` last. */
export async function imageImport(ctx: Ctx, services: Services): Promise<void> {
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
    const record = await importImage(services.images, opts, () => guardedUpload(detachedBody(ctx.req), services), progress);
    progress({ status: record.id });
  });
}

/** POST /commit */
async function containerCommit(ctx: Ctx, services: Services): Promise<void> {
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
}

/** The image archive endpoints and commit. */
const IMAGE_ARCHIVE_ROUTES: ReadonlyArray<RouteEntry<Services>> = [
  ['GET', '/images/get', imageSaveMany],
  ['GET', /^\/images\/(.+)\/get$/, imageSaveOne],
  ['POST', '/images/load', imageLoad],
  ['POST', '/commit', containerCommit, { body: 'ImageCommit' }],
];

export function registerImageArchiveRoutes(router: Router, services: Services): void {
  addRoutes(router, services, IMAGE_ARCHIVE_ROUTES);
  registerContainerArchiveRoutes(router, services);
}
