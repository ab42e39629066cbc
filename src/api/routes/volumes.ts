/**
 * Volume routes: create, list, inspect, remove, prune (the `local` driver;
 * see volume/service.ts). Shapes as in the swagger and wire captures 41–44.
 */
import { addRoutes, type Ctx, type RouteEntry, type Router } from '../router';
import type { Services } from '../../engine/services';
import { invalidArgument } from '../../common/errors';
import type { VolumeCreateRequest, VolumeService } from '../../engine/types';

async function volumeCreate(ctx: Ctx, volumes: VolumeService): Promise<void> {
  const body = await ctx.json<VolumeCreateRequest>({});
  if (!body || typeof body !== 'object') throw invalidArgument('invalid volume create request');
  ctx.send(201, await volumes.create(body));
}

async function volumeList(ctx: Ctx, volumes: VolumeService): Promise<void> {
  ctx.send(200, { Volumes: volumes.list(ctx.filters()), Warnings: null });
}

async function volumePrune(ctx: Ctx, volumes: VolumeService): Promise<void> {
  ctx.send(200, await volumes.prune(ctx.filters()));
}

async function volumeInspect(ctx: Ctx, volumes: VolumeService): Promise<void> {
  ctx.send(200, volumes.inspect(ctx.params[0]!));
}

async function volumeRemove(ctx: Ctx, volumes: VolumeService): Promise<void> {
  await volumes.remove(ctx.params[0]!, ctx.bool('force'));
  ctx.send(204);
}

/** The volume endpoints. */
const VOLUME_ROUTES: ReadonlyArray<RouteEntry<VolumeService>> = [
  ['POST', '/volumes/create', volumeCreate, { body: 'VolumeCreate' }],
  ['GET', '/volumes', volumeList],
  ['POST', '/volumes/prune', volumePrune],
  ['GET', '/volumes/([^/]+)', volumeInspect],
  ['DELETE', '/volumes/([^/]+)', volumeRemove],
];

export function registerVolumeRoutes(router: Router, services: Services): void {
  addRoutes(router, services.volumes, VOLUME_ROUTES);
}
