/**
 * POST /build (the classic builder protocol: a context tar in the body, options
 * in the query, a JSON message stream back) and POST /build/prune.
 */
import { invalidArgument } from '../../common/errors';
import type { BuildRequest, BuildService, RegistryAuth } from '../../engine/types';
import type { Services } from '../../engine/services';
import { JsonStream, detachedBody } from '../jsonstream';
import { addRoutes, type Ctx, type RouteEntry, type Router } from '../router';

function jsonMap(ctx: Ctx, name: string): Record<string, string | null> {
  const raw = ctx.query.get(name);
  if (!raw) return {};
  let v: unknown;
  try { v = JSON.parse(raw); } catch { throw invalidArgument(`invalid ${name} value: ${raw}`); }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalidArgument(`invalid ${name} value: ${raw}`);
  return v as Record<string, string | null>;
}

/** X-Registry-Config: base64url(JSON) of registry host -> credentials; anything unreadable means none. */
function registryConfigOf(ctx: Ctx): Record<string, RegistryAuth> {
  const raw = ctx.req.headers['x-registry-config'];
  if (typeof raw !== 'string' || !raw) return {};
  try {
    const v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
    return v && typeof v === 'object' && !Array.isArray(v) ? v as Record<string, RegistryAuth> : {};
  } catch {
    return {};
  }
}

function jsonList(ctx: Ctx, name: string): string[] {
  const raw = ctx.query.get(name);
  if (!raw) return [];
  let v: unknown;
  try { v = JSON.parse(raw); } catch { throw invalidArgument(`invalid ${name} value: ${raw}`); }
  if (!Array.isArray(v)) throw invalidArgument(`invalid ${name} value: ${raw}`);
  return v.map(String);
}

/** X-Berth-Build-Secrets: base64(JSON) of secret id -> base64 content (Berth's; the classic protocol has no secrets). */
function buildSecretsOf(ctx: Ctx): Record<string, Buffer> {
  const raw = ctx.req.headers['x-berth-build-secrets'];
  if (typeof raw !== 'string' || !raw) return {};
  let v: unknown;
  try { v = JSON.parse(Buffer.from(raw, 'base64').toString('utf8')); } catch { throw invalidArgument('invalid X-Berth-Build-Secrets header: not base64 JSON'); }
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw invalidArgument('invalid X-Berth-Build-Secrets header: not an object of id to base64 content');
  const out: Record<string, Buffer> = {};
  for (const [id, data] of Object.entries(v)) {
    if (typeof data !== 'string' || !id) throw invalidArgument(`invalid X-Berth-Build-Secrets header: secret ${id} is not a base64 string`);
    out[id] = Buffer.from(data, 'base64');
  }
  return out;
}

export function buildRequestOf(ctx: Ctx): BuildRequest {
  const labels = jsonMap(ctx, 'labels');
  return {
    tags: ctx.query.getAll('t').filter(Boolean),
    dockerfile: ctx.query.get('dockerfile') || 'Dockerfile',
    buildArgs: jsonMap(ctx, 'buildargs'),
    target: ctx.query.get('target') ?? '',
    noCache: ctx.bool('nocache'),
    quiet: ctx.bool('q'),
    labels: Object.fromEntries(Object.entries(labels).map(([k, v]) => [k, v ?? ''])),
    squash: ctx.bool('squash'),
    networkMode: ctx.query.get('networkmode') ?? '',
    platform: ctx.query.get('platform') ?? '',
    extraHosts: ctx.query.getAll('extrahosts').flatMap((h) => h.split(',')).filter(Boolean),
    cacheFrom: jsonList(ctx, 'cachefrom'),
    pull: ctx.bool('pull'),
    registryAuth: registryConfigOf(ctx),
    secrets: buildSecretsOf(ctx),
    remote: ctx.query.get('remote') ?? '',
  };
}

async function buildImage(ctx: Ctx, builder: BuildService): Promise<void> {
  const req = buildRequestOf(ctx);
  const stream = new JsonStream(ctx);
  await stream.run(async (progress) => {
    await builder.build(req, detachedBody(ctx.req), progress, stream.signal);
  });
}

async function buildPrune(ctx: Ctx, builder: BuildService): Promise<void> {
  const allowed = ['until', 'unused-for', 'unusedsince', 'id', 'parent', 'type', 'description', 'inuse', 'shared', 'private'];
  const filters = ctx.filters();
  for (const k of Object.keys(filters)) if (!allowed.includes(k)) throw invalidArgument(`invalid filter '${k}'`);
  const r = await builder.prune({ all: ctx.bool('all'), filters });
  ctx.send(200, { CachesDeleted: r.CachesDeleted.length ? r.CachesDeleted : null, SpaceReclaimed: r.SpaceReclaimed });
}

/** The builder endpoints. */
const BUILD_ROUTES: ReadonlyArray<RouteEntry<BuildService>> = [
  ['POST', '/build', buildImage],
  ['POST', '/build/prune', buildPrune],
];

export function registerBuildRoutes(router: Router, services: Services): void {
  addRoutes(router, services.builder, BUILD_ROUTES);
}
