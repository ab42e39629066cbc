/** GET /berth/images/{name}/why (a Berth extension): space an image's later layers delete. */
import type { Services } from '../../engine/services';
import type { ImageService } from '../../engine/types';
import { wastedSpace } from '../../image/why';
import { addRoutes, type Ctx, type Router } from '../router';

async function imageWhy(ctx: Ctx, images: ImageService): Promise<void> {
  ctx.send(200, await wastedSpace(images, decodeURIComponent(ctx.params[0]!)));
}

export function registerImageWhyRoutes(router: Router, services: Services): void {
  addRoutes(router, services.images, [['GET', '/berth/images/(.+)/why', imageWhy]]);
}
