/** GET /berth/images/{name}/why (a Berth extension): space an image's later layers delete. */
import type { Services } from '../../engine/services';
import { wastedSpace } from '../../image/why';
import type { Router } from '../router';

export function registerImageWhyRoutes(router: Router, services: Services): void {
  router.get('/berth/images/(.+)/why', async (ctx) => {
    ctx.send(200, await wastedSpace(services.images, decodeURIComponent(ctx.params[0]!)));
  });
}
