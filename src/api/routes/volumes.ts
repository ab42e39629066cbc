/**
 * Volume routes: create, list, inspect, remove, prune (the `local` driver;
 * see volume/service.ts). Shapes as in the swagger and wire captures 41–44.
 */
import type { Router } from '../router';
import type { Services } from '../../engine/services';
import { invalidArgument } from '../../common/errors';
import type { VolumeCreateRequest } from '../../engine/types';

export function registerVolumeRoutes(router: Router, services: Services): void {
  const volumes = services.volumes;

  router.post('/volumes/create', async (ctx) => {
    const body = await ctx.json<VolumeCreateRequest>({});
    if (!body || typeof body !== 'object') throw invalidArgument('invalid volume create request');
    ctx.send(201, await volumes.create(body));
  }, { body: 'VolumeCreate' });

  router.get('/volumes', async (ctx) => {
    ctx.send(200, { Volumes: volumes.list(ctx.filters()), Warnings: null });
  });

  router.post('/volumes/prune', async (ctx) => {
    ctx.send(200, await volumes.prune(ctx.filters()));
  });

  router.get('/volumes/([^/]+)', async (ctx) => {
    ctx.send(200, volumes.inspect(ctx.params[0]!));
  });

  router.delete('/volumes/([^/]+)', async (ctx) => {
    await volumes.remove(ctx.params[0]!, ctx.bool('force'));
    ctx.send(204);
  });
}
