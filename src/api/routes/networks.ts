/**
 * Network routes: list, inspect, create, remove, prune, connect, disconnect
 * (network/service.ts). Shapes as in the swagger and wire captures 37–40.
 */
import { addRoutes, type Ctx, type RouteEntry, type Router } from '../router';
import type { Services } from '../../engine/services';
import { BerthError, invalidArgument } from '../../common/errors';

async function networkList(ctx: Ctx, services: Services): Promise<void> {
  ctx.send(200, await services.network.list(ctx.filters()));
}

async function networkCreate(ctx: Ctx, services: Services): Promise<void> {
  const body = await ctx.json<any>({});
  if (!body || typeof body !== 'object') throw invalidArgument('invalid network create request');
  ctx.send(201, await services.network.create(body));
}

async function networkPrune(ctx: Ctx, services: Services): Promise<void> {
  ctx.send(200, await services.network.prune(ctx.filters()));
}

async function networkConnect(ctx: Ctx, services: Services): Promise<void> {
  const body = await ctx.json<any>({});
  if (!body?.Container) throw invalidArgument('no container specified');
  await services.containers.connectNetwork(String(body.Container), ctx.params[0]!, body.EndpointConfig ?? {});
  ctx.send(200);
}

async function networkDisconnect(ctx: Ctx, services: Services): Promise<void> {
  const body = await ctx.json<any>({});
  if (!body?.Container) throw invalidArgument('no container specified');
  await services.containers.disconnectNetwork(String(body.Container), ctx.params[0]!, !!body.Force);
  ctx.send(200);
}

async function networkInspect(ctx: Ctx, services: Services): Promise<void> {
  ctx.send(200, await services.network.inspect(ctx.params[0]!, { verbose: ctx.bool('verbose'), scope: ctx.query.get('scope') ?? undefined }));
}

/** No swarm mode: dockerd answers 503 on a node outside a swarm, which SDKs treat as "nothing to leave". */
async function swarmLeave(): Promise<void> {
  throw new BerthError('unavailable', 'This node is not part of a swarm');
}

async function networkRemove(ctx: Ctx, services: Services): Promise<void> {
  await services.network.remove(ctx.params[0]!);
  ctx.send(204);
}

/** The network endpoints (and swarm leave). */
const NETWORK_ROUTES: ReadonlyArray<RouteEntry<Services>> = [
  ['GET', '/networks', networkList],
  ['POST', '/networks/create', networkCreate, { body: 'NetworkCreate' }],
  ['POST', '/networks/prune', networkPrune],
  ['POST', '/networks/([^/]+)/connect', networkConnect, { body: 'NetworkConnect' }],
  ['POST', '/networks/([^/]+)/disconnect', networkDisconnect, { body: 'NetworkDisconnect' }],
  ['GET', '/networks/([^/]+)', networkInspect],
  ['POST', '/swarm/leave', swarmLeave],
  ['DELETE', '/networks/([^/]+)', networkRemove],
];

export function registerNetworkRoutes(router: Router, services: Services): void {
  addRoutes(router, services, NETWORK_ROUTES);
}
