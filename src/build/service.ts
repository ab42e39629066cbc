/** The build area's composition: the Dockerfile builder over the engine backend. */
import * as path from 'node:path';
import type { DaemonConfig } from '../engine/config';
import type { BuildService, ContainerService, DistributionService, ImageService } from '../engine/types';
import { EngineBuildBackend } from './backend';
import { Builder } from './builder';

export function createBuildService(config: DaemonConfig, images: ImageService, containers: ContainerService, distribution: DistributionService): BuildService {
  return new Builder(new EngineBuildBackend(config, images, containers, distribution), path.join(config.dataRoot, 'builder', 'tmp'), config.proxies);
}
