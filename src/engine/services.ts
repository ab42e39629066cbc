import type { DaemonConfig } from './config';
import type { EventBus } from './events';
import type { ContainerService, ImageService } from './types';
import type { VolumeService } from '../volume/service';

/** Everything a route module may use. Built once by the composition root (daemon/main.ts). */
export interface Services {
  config: DaemonConfig;
  events: EventBus;
  images: ImageService;
  containers: ContainerService;
  volumes: VolumeService;
  /** Wall-clock start of the daemon, for /info. */
  startedAt: Date;
}
