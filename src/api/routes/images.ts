/**
 * Image routes: list, inspect, history, tag, remove, prune, create (pulls go to the
 * registry routes' handler, imports to the archive routes'), and the Berth extension POST /berth/bootstrap.
 */
import { addRoutes, type Ctx, type RouteEntry, type Router } from '../router';
import type { Services } from '../../engine/services';
import { invalidArgument } from '../../common/errors';
import { familiarString, parseReference, withDefaultTag, referenceString, isValidTag } from '../../common/reference';
import { bootstrapImage } from '../../image/bootstrap';
import { handleFromImage } from './distribution';
import { imageImport } from './image-archive';

/** Writes one JSON-lines progress message (`\r\n` separated, as dockerd does for pull/load). */
export function writeProgress(res: NodeJS.WritableStream, msg: unknown): void {
  res.write(JSON.stringify(msg) + '\r\n');
}

async function imageList(ctx: Ctx, services: Services): Promise<void> {
  const list = await services.images.summaries({
    all: ctx.bool('all'),
    filters: ctx.filters(),
    digests: ctx.bool('digests'),
    apiVersion: ctx.version,
  });
  ctx.send(200, list);
}

async function imageInspect(ctx: Ctx, services: Services): Promise<void> {
  ctx.send(200, await services.images.inspect(ctx.params[0], ctx.version));
}

async function imageHistory(ctx: Ctx, services: Services): Promise<void> {
  ctx.send(200, await services.images.history(ctx.params[0]));
}

async function imageTag(ctx: Ctx, services: Services): Promise<void> {
  const repo = ctx.query.get('repo') ?? '';
  const tag = ctx.query.get('tag') ?? '';
  if (!repo) throw invalidArgument('repository name must have at least one component');
  const ref = parseReference(repo);
  if (tag) {
    if (!isValidTag(tag)) throw invalidArgument('invalid tag format');
    if (ref.tag !== undefined || ref.digest !== undefined) throw invalidArgument('invalid reference format');
    ref.tag = tag;
  }
  await services.images.tag(ctx.params[0], referenceString(withDefaultTag(ref)));
  ctx.send(201);
}

async function imagePrune(ctx: Ctx, services: Services): Promise<void> {
  const filters = ctx.filters();
  for (const k of Object.keys(filters)) {
    if (!['dangling', 'label', 'label!', 'until'].includes(k)) throw invalidArgument(`invalid filter '${k}'`);
  }
  ctx.send(200, await services.images.prune({ filters }));
}

async function imageCreate(ctx: Ctx, services: Services): Promise<void> {
  if (ctx.query.has('fromSrc')) {
    await imageImport(ctx, services);
    return;
  }
  if (!ctx.query.get('fromImage')) throw invalidArgument('fromImage or fromSrc is required');
  await handleFromImage(ctx, services);
}

async function imageRemove(ctx: Ctx, services: Services): Promise<void> {
  const items = await services.images.remove(ctx.params[0], { force: ctx.bool('force'), noprune: ctx.bool('noprune') });
  ctx.send(200, items);
}

/** Berth extension: build a base image from the host (busybox, debian:<suite>). */
async function imageBootstrap(ctx: Ctx, services: Services): Promise<void> {
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
    const { image, tag } = await bootstrapImage(services.images, services.config.dataRoot, name, (status) => {
      if (!res.writableEnded) writeProgress(res, { status });
    });
    writeProgress(res, { status: `Bootstrapped ${tag}`, aux: { ID: image.id } });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    writeProgress(res, { errorDetail: { message }, error: message });
  }
  res.end();
}

/** The image endpoints (pull and import dispatch from /images/create). */
const IMAGE_ROUTES: ReadonlyArray<RouteEntry<Services>> = [
  ['GET', '/images/json', imageList],
  ['GET', '/images/(.+)/json', imageInspect],
  ['GET', '/images/(.+)/history', imageHistory],
  ['POST', '/images/(.+)/tag', imageTag],
  ['POST', '/images/prune', imagePrune],
  ['POST', '/images/create', imageCreate],
  ['DELETE', '/images/(.+)', imageRemove],
  ['POST', '/berth/bootstrap', imageBootstrap],
];

export function registerImageRoutes(router: Router, services: Services): void {
  addRoutes(router, services, IMAGE_ROUTES);
}
