/**
 * berthd: the composition root. Parses flags/daemon.json, builds the
 * services, registers routes and serves the Engine API.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { resolveBinary } from '../engine/binaries';
import type { DaemonConfig } from '../engine/config';
import { ConfigError, applyReload, loadConfig, lookupGroup, needsRestart, parseFlags, reloadableDiff, type ConfigSource } from './daemon-config';
import { createLogger } from './logger';
import { fdsForHost, takeActivatedFds } from './socket-activation';
import { EventBus } from '../engine/events';
import { Router } from '../api/router';
import { ApiServer } from '../api/server';
import { createImageService } from '../image/service';
import { createContainerService } from '../container/service';
import { createVolumeService } from '../volume/service';
import { createNetworkService } from '../network/service';
import { registerNetworkRoutes } from '../api/routes/networks';
import { registerSystemRoutes } from '../api/routes/system';
import { registerContainerRoutes } from '../api/routes/containers';
import { registerImageRoutes } from '../api/routes/images';
import { registerDistributionRoutes } from '../api/routes/distribution';
import { createDistributionService } from '../registry/client/service';
import { registerImageArchiveRoutes } from '../api/routes/image-archive';
import { registerVolumeRoutes } from '../api/routes/volumes';
import { registerBuildRoutes } from '../api/routes/build';
import { registerImageWhyRoutes } from '../api/routes/image-why';
import { createBuildService } from '../build/service';
import type { Services } from '../engine/services';
import { removeStaleUploads } from '../common/upload';

export async function main(argv: string[]): Promise<void> {
  // Layer unpack and load are fs-bound: more libuv threads keep the disk busy.
  process.env.UV_THREADPOOL_SIZE ??= '16';
  const source = parseFlags(argv);
  const config = loadConfig(source);
  // Sockets from systemd (fd:// hosts) are checked before anything is touched, like the rest of the config.
  const activated = takeActivatedFds();
  const fdsOfHost = new Map(config.hosts.filter((h) => h.startsWith('fd://')).map((h) => [h, fdsForHost(h, activated)]));
  if (source.validate) {
    process.stdout.write('configuration OK\n');
    return;
  }
  config.runtime = resolveBinary(config.runtime);
  config.conmon = resolveBinary(config.conmon);
  const logger = createLogger(config);
  const log = logger.info;
  fs.mkdirSync(config.dataRoot, { recursive: true, mode: 0o711 });
  fs.mkdirSync(config.execRoot, { recursive: true, mode: 0o711 });

  const events = new EventBus();
  const images = await createImageService(config, events);
  const volumes = await createVolumeService(config, events);
  const network = await createNetworkService(config, events);
  const containers = await createContainerService(config, images, events, volumes, network, logger.warn);
  removeStaleUploads(path.join(config.dataRoot, 'tmp')); // cp uploads cut short by a crash
  images.setUsageProbe((id) => containers.containersUsingImage(id));
  volumes.setUsageProbe((name) => containers.containersUsingVolume(name));
  const distribution = await createDistributionService(config, images);
  const builder = createBuildService(config, images, containers, distribution);
  const services: Services = { config, events, images, containers, volumes, builder, distribution, network, startedAt: new Date() };

  const router = new Router();
  registerSystemRoutes(router, services);
  registerContainerRoutes(router, services);
  registerImageRoutes(router, services);
  registerDistributionRoutes(router, services);
  registerImageArchiveRoutes(router, services);
  registerVolumeRoutes(router, services);
  registerBuildRoutes(router, services);
  registerImageWhyRoutes(router, services);
  registerNetworkRoutes(router, services);

  await containers.restore();
  await builder.recover(); // after restore: step containers a crash left are known by then

  const servers: ApiServer[] = [];
  const newServer = () => new ApiServer(router, logger.error, (method, url) => logger.debug(`Calling ${method} ${url}`), config.limits);
  for (const host of config.hosts) {
    if (host.startsWith('fd://')) {
      for (const fd of fdsOfHost.get(host)!) {
        const server = newServer();
        await server.listenFd(fd);
        servers.push(server);
      }
      continue;
    }
    const server = newServer();
    if (host.startsWith('unix://')) {
      await server.listenUnix(host.slice(7));
      // root:GROUP 0660, as dockerd's socket with its docker group: members use the API without sudo.
      const gid = config.group ? lookupGroup(config.group) : undefined;
      if (gid !== undefined) fs.chownSync(host.slice(7), 0, gid);
    } else if (host.startsWith('tcp://')) {
      const u = new URL(host.replace(/^tcp:/, 'http:'));
      await server.listenTcp(u.hostname, Number(u.port || 2375));
    } else throw new Error(`unsupported host: ${host}`);
    servers.push(server);
  }
  // As dockerd's /var/run/docker.pid: `kill -HUP $(cat /run/berth/berthd.pid)` reloads the configuration.
  const pidFile = path.join(config.execRoot, 'berthd.pid');
  fs.writeFileSync(pidFile, `${process.pid}\n`);
  log(`berthd listening on ${config.hosts.join(', ')} (data root ${config.dataRoot})`);

  const stop = async (sig: string) => {
    log(`received ${sig}, shutting down (containers keep running)`);
    await Promise.all(servers.map((s) => s.close()));
    await containers.shutdown();
    await network.shutdown();
    for (const h of config.hosts) if (h.startsWith('unix://')) fs.rmSync(h.slice(7), { force: true });
    fs.rmSync(pidFile, { force: true });
    process.exit(0);
  };
  // A client vanishing mid-stream (reset, broken pipe, an fd already closed
  // by the peer) must never take the daemon down with it; anything else is
  // a bug, and crashing is safe because conmon keeps the containers alive.
  const peerGone = new Set(['ECONNRESET', 'EPIPE', 'EBADF', 'ENOTSOCK', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);
  process.on('uncaughtException', (err: NodeJS.ErrnoException) => {
    log(`uncaught: ${err?.stack ?? err}`);
    if (!peerGone.has(err?.code ?? '') && !/Bad file|non-socket|EPIPE|ECONNRESET/.test(String(err?.message))) process.exit(70);
  });
  process.on('SIGHUP', () => reload(source, config, logger, services));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

/**
 * SIGHUP: reads daemon.json again and applies the keys dockerd reloads, logging what changed;
 * a file berthd would refuse at start is refused here too and nothing changes.
 */
function reload(source: ConfigSource, live: DaemonConfig, logger: ReturnType<typeof createLogger>, services: Services): void {
  let next: DaemonConfig;
  try {
    next = loadConfig(source);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    logger.error(`Error reloading configuration (nothing changed): ${err.message}`);
    return;
  }
  const changed = reloadableDiff(live, next);
  const restart = needsRestart(live, next);
  applyReload(live, next);
  logger.info(changed.length
    ? `Reloaded configuration: ${changed.map(([k, a, b]) => `${k}: ${a} -> ${b}`).join(', ')}`
    : 'Reloaded configuration: nothing changed');
  if (restart.length) logger.warn(`configuration changes that need a restart of berthd were not applied: ${restart.join(', ')}`);
  services.events.emitEvent('daemon', 'reload', '', {
    debug: String(live.debug), 'log-level': live.logLevel, labels: JSON.stringify(live.labels),
    'insecure-registries': JSON.stringify(live.insecureRegistries), 'registry-mirrors': JSON.stringify(live.registryMirrors),
    'max-concurrent-downloads': String(live.maxConcurrentDownloads), 'max-concurrent-uploads': String(live.maxConcurrentUploads),
    'live-restore': String(live.liveRestore),
  });
}

if (require.main === module) {
  main(process.argv).catch((err) => {
    process.stderr.write(`berthd: ${err?.message ?? err}\n`);
    process.exit(1);
  });
}
