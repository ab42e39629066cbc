/** The set of area services the composition root builds and hands to the API (one interface per area). */
import type { DaemonConfig } from './config';
import type { EventBus } from './events';
import type { BuildService, ContainerService, DistributionService, ImageService, NetworkService, VolumeService } from './types';

/** Everything a route module may use. Built once by the composition root (daemon/main.ts). */
export interface Services {
  config: DaemonConfig;
  events: EventBus;
  images: ImageService;
  containers: ContainerService;
  volumes: VolumeService;
  builder: BuildService;
  /** The registry client: pull, push, login, search. */
  distribution: DistributionService;
  network: NetworkService;
  /** Wall-clock start of the daemon, for /info. */
  startedAt: Date;
}
