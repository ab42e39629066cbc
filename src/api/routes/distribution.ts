/**
 * Registry routes: pull (`POST /images/create?fromImage=`), push, `POST /auth` and
 * `GET /images/search`. Credentials come as X-Registry-Auth (base64url JSON) or the /auth body;
 * progress goes out as Docker's JSON message stream (errors before the first message are
 * ordinary HTTP errors, as dockerd answers a pull of an unknown tag with 404).
 */
import { addRoutes, type Ctx, type RouteEntry, type Router } from '../router';
import type { Services } from '../../engine/services';
import type { DistributionService, RegistryAuth } from '../../engine/types';
import { invalidArgument } from '../../common/errors';
import { isValidTag, parseReference, referenceString } from '../../common/reference';
import { JsonStream } from '../jsonstream';

/** X-Registry-Auth: base64url(JSON); `e30=` (`{}`) and garbage both mean no credentials. */
export function registryAuthOf(ctx: Ctx): RegistryAuth | undefined {
  const h = ctx.req.headers['x-registry-auth'];
  if (typeof h !== 'string' || !h) return undefined;
  try {
    const v = JSON.parse(Buffer.from(h.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8'));
    if (v && typeof v === 'object' && (v.username || v.identitytoken || v.registrytoken)) return v as RegistryAuth;
  } catch { /* ignored, as dockerd does */ }
  return undefined;
}

/** `fromImage` + `tag` (a tag or a digest) as one reference. */
function pullReference(fromImage: string, tag: string, allTags: boolean): string {
  const ref = parseReference(fromImage);
  if (tag && ref.tag === undefined && ref.digest === undefined) {
    if (/^[A-Za-z][A-Za-z0-9]*:[0-9a-fA-F]{32,}$/.test(tag)) ref.digest = tag;
    else if (!isValidTag(tag)) throw invalidArgument('invalid tag format');
    else ref.tag = tag;
  }
  if (!allTags && ref.tag === undefined && ref.digest === undefined) ref.tag = 'latest';
  return referenceString(ref);
}

export async function handleFromImage(ctx: Ctx, services: Services): Promise<void> {
  const fromImage = ctx.query.get('fromImage') ?? '';
  const tag = ctx.query.get('tag') ?? '';
  // The docker CLI's --all-tags sends no tag parameter at all (and a plain pull always sends one).
  const allTags = !ctx.query.has('tag') && !/[:@][^/]*$/.test(fromImage);
  const ref = pullReference(fromImage, tag, allTags);
  const platform = ctx.query.get('platform') || undefined;
  const abort = new AbortController();
  const onClose = () => abort.abort();
  ctx.req.socket.once('close', onClose);
  const stream = new JsonStream(ctx);
  try {
    await stream.run((progress) => services.distribution.pull(ref, { auth: registryAuthOf(ctx), platform, allTags, signal: abort.signal }, progress));
  } finally {
    ctx.req.socket.off('close', onClose);
  }
}

async function imagePush(ctx: Ctx, distribution: DistributionService): Promise<void> {
  const name = ctx.params[0];
  const tag = ctx.query.get('tag') ?? '';
  const ref = parseReference(name);
  if (tag) {
    if (!isValidTag(tag)) throw invalidArgument('invalid tag format');
    ref.tag = tag;
  }
  const stream = new JsonStream(ctx);
  await stream.run((progress) => distribution.push(referenceString(ref), { auth: registryAuthOf(ctx) }, progress));
}

async function registryLogin(ctx: Ctx, distribution: DistributionService): Promise<void> {
  const body = (await ctx.json()) as RegistryAuth | undefined;
  ctx.send(200, await distribution.login(body ?? {}));
}

async function imageSearch(ctx: Ctx, distribution: DistributionService): Promise<void> {
  const term = ctx.query.get('term') ?? '';
  if (!term) throw invalidArgument('term is required');
  const limit = ctx.int('limit') ?? 25;
  const results = await distribution.search(term, limit, registryAuthOf(ctx));
  ctx.send(200, results);
}

/** The registry endpoints (pull is dispatched from /images/create: handleFromImage). */
const DISTRIBUTION_ROUTES: ReadonlyArray<RouteEntry<DistributionService>> = [
  ['POST', '/images/(.+)/push', imagePush],
  ['POST', '/auth', registryLogin],
  ['GET', '/images/search', imageSearch],
];

export function registerDistributionRoutes(router: Router, services: Services): void {
  addRoutes(router, services.distribution, DISTRIBUTION_ROUTES);
}
