/**
 * Network routes: list, inspect, create, remove, prune, connect, disconnect
 * (network/service.ts). Shapes as in the swagger and wire captures 37–40.
 */
import type { Router } from '../router';
import type { Services } from '../../engine/services';
import { BerthError, invalidArgument } from '../../common/errors';

export function registerNetworkRoutes(router: Router, services: Services): void {
  const networks = services.network;

  router.get('/networks', async (ctx) => {
    ctx.send(200, await networks.list(ctx.filters()));
  });

  router.post('/networks/create', async (ctx) => {
    const body = await ctx.json<any>({});
    if (!body || typeof body !== 'object') throw invalidArgument('invalid network create request');
    ctx.send(201, await networks.create(body));
  }, { body: 'NetworkCreate' });

  router.post('/networks/prune', async (ctx) => {
    ctx.send(200, await networks.prune(ctx.filters()));
  });

  router.post('/networks/([^/]+)/connect', async (ctx) => {
    const body = await ctx.json<any>({});
    if (!body?.Container) throw invalidArgument('no container specified');
    await services.containers.connectNetwork(String(body.Container), ctx.params[0]!, body.EndpointConfig ?? {});
    ctx.send(200);
  }, { body: 'NetworkConnect' });

  router.post('/networks/([^/]+)/disconnect', async (ctx) => {
    const body = await ctx.json<any>({});
    if (!body?.Container) throw invalidArgument('no container specified');
    await services.containers.disconnectNetwork(String(body.Container), ctx.params[0]!, !!body.Force);
    ctx.send(200);
  }, { body: 'NetworkDisconnect' });

  router.get('/networks/([^/]+)', async (ctx) => {
    ctx.send(200, await networks.inspect(ctx.params[0]!, { verbose: ctx.bool('verbose'), scope: ctx.query.get('scope') ?? undefined }));
  });

  // No swarm mode: dockerd answers 503 on a node outside a swarm, which SDKs treat as "nothing to leave".
  router.post('/swarm/leave', async () => {
    throw new BerthError('unavailable', 'This node is not part of a swarm');
  });

  router.delete('/networks/([^/]+)', async (ctx) => {
    await networks.remove(ctx.params[0]!);
    ctx.send(204);
  });
}
