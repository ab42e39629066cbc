/**
 * Container filesystem endpoints: cp (HEAD/GET/PUT /containers/{id}/archive),
 * export and changes. The work (path resolution inside the rootfs, tar
 * writing and extraction) is container/archive.ts; these handlers read the
 * query and write the HTTP answer.
 */
import { addRoutes, commonHeaders, type Ctx, type RouteEntry, type Router } from '../router';
import type { Services } from '../../engine/services';
import { invalidArgument } from '../../common/errors';
import {
  archiveContainerPath, containerChangesOf, exportContainerFs, extractToContainer, statContainerPath, type PathStat,
} from '../../container/archive';
import { detachedBody } from '../jsonstream';
import { stallGuard } from '../../common/tarout';

function pathParam(ctx: Ctx): string {
  const p = ctx.query.get('path');
  if (!p) throw invalidArgument('path is required');
  return p;
}

/** The X-Docker-Container-Path-Stat header: the stat as base64 JSON. */
function statHeader(s: PathStat): string {
  return Buffer.from(JSON.stringify(s)).toString('base64');
}

/** HEAD /containers/{id}/archive?path= */
async function headArchive(ctx: Ctx, services: Services): Promise<void> {
  const stat = await statContainerPath(services, ctx.params[0], pathParam(ctx));
  ctx.send(200, undefined, { 'X-Docker-Container-Path-Stat': statHeader(stat), 'Content-Type': 'application/json' });
}

/** GET /containers/{id}/archive?path= */
async function getArchive(ctx: Ctx, services: Services): Promise<void> {
  let unguard = () => undefined as void;
  await archiveContainerPath(services, ctx.params[0], pathParam(ctx), (stat) => {
    const res = ctx.res!;
    res.writeHead(200, { ...commonHeaders(), 'Content-Type': 'application/x-tar', 'X-Docker-Container-Path-Stat': statHeader(stat) });
    // A client that stops reading must not hold the container's lock and mount for long.
    unguard = stallGuard(res, ctx.limits.streamStallSec * 1000);
    return res;
  }).finally(() => unguard());
}

/** PUT /containers/{id}/archive?path= */
async function putArchive(ctx: Ctx, services: Services): Promise<void> {
  const p = pathParam(ctx);
  await extractToContainer(services, ctx.params[0], p, () => detachedBody(ctx.req), {
    noOverwriteDirNonDir: ctx.bool('noOverwriteDirNonDir', false),
    copyUIDGID: ctx.bool('copyUIDGID', false),
  });
  ctx.send(200);
}

/** GET /containers/{id}/export */
async function exportContainer(ctx: Ctx, services: Services): Promise<void> {
  let unguard = () => undefined as void;
  await exportContainerFs(services, ctx.params[0], () => {
    const res = ctx.res!;
    res.writeHead(200, { ...commonHeaders(), 'Content-Type': 'application/x-tar' });
    unguard = stallGuard(res, ctx.limits.streamStallSec * 1000);
    return res;
  }).finally(() => unguard());
}

/** GET /containers/{id}/changes */
async function changes(ctx: Ctx, services: Services): Promise<void> {
  ctx.send(200, await containerChangesOf(services, ctx.params[0]));
}

/** The container filesystem endpoints. */
const CONTAINER_ARCHIVE_ROUTES: ReadonlyArray<RouteEntry<Services>> = [
  ['GET', /^\/containers\/([^/]+)\/changes$/, changes],
  ['HEAD', /^\/containers\/([^/]+)\/archive$/, headArchive],
  ['GET', /^\/containers\/([^/]+)\/archive$/, getArchive],
  ['GET', /^\/containers\/([^/]+)\/export$/, exportContainer],
  ['PUT', /^\/containers\/([^/]+)\/archive$/, putArchive],
];

export function registerContainerArchiveRoutes(router: Router, services: Services): void {
  addRoutes(router, services, CONTAINER_ARCHIVE_ROUTES);
}
