/**
 * berthd: the composition root. Parses flags/daemon.json, builds the
 * services, registers routes and serves the Engine API.
 */
import * as fs from 'node:fs';
import { Command } from 'commander';
import { resolveBinary } from '../engine/binaries';
import { defaultConfig, socketPathOf, type DaemonConfig } from '../engine/config';
import { EventBus } from '../engine/events';
import { Router } from '../api/router';
import { ApiServer } from '../api/server';
import { createImageService } from '../image/service';
import { createContainerService } from '../container/service';
import { createVolumeService } from '../volume/service';
import { registerSystemRoutes } from '../api/routes/system';
import { registerContainerRoutes } from '../api/routes/containers';
import { registerImageRoutes } from '../api/routes/images';
import { registerImageArchiveRoutes } from '../api/routes/image-archive';
import { registerVolumeRoutes } from '../api/routes/volumes';
import type { Services } from '../engine/services';

function cgroupnsMode(v: unknown): 'private' | 'host' {
  if (v === 'private' || v === 'host') return v;
  throw new Error(`invalid default cgroup namespace mode: ${String(v)} (use private or host)`);
}

function parseArgs(argv: string[]): DaemonConfig {
  const program = new Command('berthd')
    .description('Berth daemon: serves the Docker Engine API')
    .option('--data-root <dir>', 'root of persistent state', undefined)
    .option('--exec-root <dir>', 'root of runtime state', undefined)
    .option('-H, --host <addr...>', 'daemon socket(s) to listen on (unix:///path or tcp://host:port)')
    .option('--config-file <file>', 'daemon configuration file (daemon.json)', '/etc/berth/daemon.json')
    .option('--runtime <path>', 'OCI runtime binary')
    .option('--conmon <path>', 'conmon binary')
    .option('--cgroup-parent <path>', 'parent cgroup for all containers (default /berth)')
    .option('--default-cgroupns-mode <mode>', 'cgroup namespace of containers that name none: private (default) or host')
    .option('-D, --debug', 'debug logging')
    .allowExcessArguments(false);
  program.parse(argv);
  const o = program.opts();
  const cfg = defaultConfig();
  if (o.configFile && fs.existsSync(o.configFile)) {
    let file: Record<string, unknown>;
    try {
      file = JSON.parse(fs.readFileSync(o.configFile, 'utf8'));
    } catch (err) {
      throw new Error(`unable to configure the daemon with file ${o.configFile}: ${(err as Error).message}`);
    }
    if (typeof file['data-root'] === 'string') cfg.dataRoot = file['data-root'];
    if (typeof file['exec-root'] === 'string') cfg.execRoot = file['exec-root'];
    if (Array.isArray(file.hosts)) cfg.hosts = file.hosts.map(String);
    if (typeof file.debug === 'boolean') cfg.debug = file.debug;
    if (typeof file['cgroup-parent'] === 'string') cfg.cgroupParent = file['cgroup-parent'];
    if (file['default-cgroupns-mode'] !== undefined) cfg.defaultCgroupnsMode = cgroupnsMode(file['default-cgroupns-mode']);
  }
  if (o.dataRoot) cfg.dataRoot = o.dataRoot;
  if (o.execRoot) cfg.execRoot = o.execRoot;
  if (o.host) cfg.hosts = o.host;
  if (o.runtime) cfg.runtime = o.runtime;
  if (o.conmon) cfg.conmon = o.conmon;
  if (o.defaultCgroupnsMode) cfg.defaultCgroupnsMode = cgroupnsMode(o.defaultCgroupnsMode);
  if (o.cgroupParent) cfg.cgroupParent = o.cgroupParent.startsWith('/') ? o.cgroupParent : `/${o.cgroupParent}`;
  if (o.debug) cfg.debug = true;
  cfg.runtime = resolveBinary(cfg.runtime);
  cfg.conmon = resolveBinary(cfg.conmon);
  if (cfg.hosts.length === 0) cfg.hosts = [`unix://${socketPathOf(cfg)}`];
  return cfg;
}

export async function main(argv: string[]): Promise<void> {
  // Layer unpack and load are fs-bound: more libuv threads keep the disk busy.
  process.env.UV_THREADPOOL_SIZE ??= '16';
  const config = parseArgs(argv);
  const log = (msg: string) => process.stderr.write(`${new Date().toISOString()} ${msg}\n`);
  fs.mkdirSync(config.dataRoot, { recursive: true, mode: 0o711 });
  fs.mkdirSync(config.execRoot, { recursive: true, mode: 0o711 });

  const events = new EventBus();
  const images = await createImageService(config, events);
  const volumes = await createVolumeService(config, events);
  const containers = await createContainerService(config, images, events, volumes);
  images.setUsageProbe((id) => containers.containersUsingImage(id));
  volumes.setUsageProbe((name) => containers.containersUsingVolume(name));
  const services: Services = { config, events, images, containers, volumes, startedAt: new Date() };

  const router = new Router();
  registerSystemRoutes(router, services);
  registerContainerRoutes(router, services);
  registerImageRoutes(router, services);
  registerImageArchiveRoutes(router, services);
  registerVolumeRoutes(router, services);

  await containers.restore();

  const servers: ApiServer[] = [];
  for (const host of config.hosts) {
    const server = new ApiServer(router, log);
    if (host.startsWith('unix://')) await server.listenUnix(host.slice(7));
    else if (host.startsWith('tcp://')) {
      const u = new URL(host.replace(/^tcp:/, 'http:'));
      await server.listenTcp(u.hostname, Number(u.port || 2375));
    } else throw new Error(`unsupported host: ${host}`);
    servers.push(server);
  }
  log(`berthd listening on ${config.hosts.join(', ')} (data root ${config.dataRoot})`);

  const stop = async (sig: string) => {
    log(`received ${sig}, shutting down (containers keep running)`);
    await Promise.all(servers.map((s) => s.close()));
    await containers.shutdown();
    for (const h of config.hosts) if (h.startsWith('unix://')) fs.rmSync(h.slice(7), { force: true });
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
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

if (require.main === module) {
  main(process.argv).catch((err) => {
    process.stderr.write(`berthd: ${err?.message ?? err}\n`);
    process.exit(1);
  });
}
