/**
 * System routes: /_ping, /version, /info, /events.
 * Everything /info and /version report is read from the host or the
 * services; nothing is made up (fields Berth has no notion of are empty).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { API_VERSION, MIN_API_VERSION, SERVER_HEADER, addRoutes, commonHeaders, type Ctx, type RouteEntry, type Router } from '../router';
import { invalidArgument } from '../../common/errors';
import { writeFileAtomicSync } from '../../common/atomic';
import type { Services } from '../../engine/services';
import type { EngineEvent } from '../../engine/events';
import type { DaemonConfig } from '../../engine/config';
import { maskCredentials } from '../../engine/proxy';
import { labelMatches } from '../../common/labels';
import { logDrivers } from '../../container/logdriver';

export const ENGINE_VERSION = /Berth\/(\S+)/.exec(SERVER_HEADER)?.[1] ?? '0.0.0';

/** Go's GOARCH names, which `docker version` prints. */
function goArch(): string {
  return ({ x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ?? process.arch;
}

import { parseApiTimestamp } from '../../common/timestamp';

export { parseApiTimestamp };

// ---------------------------------------------------------------- events

const EVENT_FILTERS = new Set(['config', 'container', 'daemon', 'event', 'image', 'label', 'network', 'node', 'plugin', 'scope', 'secret', 'service', 'type', 'volume']);

/** filters.ExactMatch: true when the key is absent or one value equals `source`. */
function exact(f: Record<string, string[]>, key: string, source: string): boolean {
  const vals = f[key];
  return !vals || vals.length === 0 || vals.includes(source);
}

/** filters.FuzzyMatch: true when absent, equal, or a value is a prefix of `source`. */
function fuzzy(f: Record<string, string[]>, key: string, source: string | undefined): boolean {
  const vals = f[key];
  if (!vals || vals.length === 0) return true;
  if (source === undefined) return false;
  return vals.some((v) => source === v || source.startsWith(v));
}

function stripTag(ref: string): string {
  const at = ref.indexOf('@');
  if (at >= 0) return ref.slice(0, at);
  const slash = ref.lastIndexOf('/');
  const colon = ref.lastIndexOf(':');
  return colon > slash ? ref.slice(0, colon) : ref;
}

/** The event filter of dockerd (daemon/events/filter.go), key for key. */
export function eventMatches(ev: EngineEvent, f: Record<string, string[]>): boolean {
  const attrs = ev.Actor.Attributes ?? {};
  const byName = (key: string) => fuzzy(f, key, ev.Actor.ID) || fuzzy(f, key, attrs.name);
  const fuzzyEvent = (f.event ?? []).some((v) => v === 'health_status' || v === 'exec_create' || v === 'exec_start');
  const eventOk = fuzzyEvent ? fuzzy(f, 'event', ev.Action) : exact(f, 'event', ev.Action);
  const imageName = attrs[ev.Type === 'image' ? 'name' : 'image'] ?? '';
  const imageOk = !f.image || f.image.length === 0
    || exact(f, 'image', ev.Actor.ID) || exact(f, 'image', imageName)
    || exact(f, 'image', stripTag(ev.Actor.ID)) || exact(f, 'image', stripTag(imageName));
  const labelOk = (f.label ?? []).every((kv) => labelMatches(attrs, kv));
  return eventOk
    && exact(f, 'type', ev.Type)
    && exact(f, 'scope', ev.scope)
    && byName('daemon') && byName('container') && byName('plugin') && byName('volume') && byName('network')
    && imageOk && labelOk;
}

/** JSON of one event in dockerd's field order (legacy fields first). */
export function serializeEvent(ev: EngineEvent): string {
  const o: Record<string, unknown> = {};
  if (ev.status !== undefined) o.status = ev.status;
  if (ev.id !== undefined) o.id = ev.id;
  if (ev.from !== undefined) o.from = ev.from;
  o.Type = ev.Type;
  o.Action = ev.Action;
  o.Actor = ev.Actor;
  o.scope = ev.scope;
  o.time = ev.time;
  o.timeNano = ev.timeNano;
  return JSON.stringify(o);
}

// ---------------------------------------------------------------- host facts

function readText(file: string): string | undefined {
  try { return fs.readFileSync(file, 'utf8'); } catch { return undefined; }
}

function osRelease(): { pretty: string; version: string } {
  const text = readText('/etc/os-release') ?? readText('/usr/lib/os-release') ?? '';
  const kv: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) kv[m[1]] = m[2].replace(/^"(.*)"$/, '$1');
  }
  return { pretty: kv.PRETTY_NAME ?? 'Linux', version: kv.VERSION_ID ?? '' };
}

/** Backing filesystem of the data root, named the way dockerd's overlay2 driver does. */
function backingFs(dir: string): string {
  try {
    const t = fs.statfsSync(dir).type;
    const names: Record<number, string> = {
      0xef53: 'extfs', 0x58465342: 'xfs', 0x01021994: 'tmpfs', 0x9123683e: 'btrfs', 0x794c7630: 'overlayfs',
      0x2fc12fc1: 'zfs', 0x6969: 'nfs', 0xf2f52010: 'f2fs', 0x65735546: 'fuse',
    };
    return names[t] ?? `<unknown>(0x${t.toString(16)})`;
  } catch {
    return '<unknown>';
  }
}

const exists = (p: string) => fs.existsSync(p);

/** Cgroup v1 controllers present on the host, as dockerd's sysinfo reads them. */
function cgroupFeatures() {
  const cg = '/sys/fs/cgroup';
  const v2 = exists(path.join(cg, 'cgroup.controllers'));
  if (v2) {
    const ctrls = (readText(path.join(cg, 'cgroup.controllers')) ?? '').split(/\s+/);
    const has = (c: string) => ctrls.includes(c);
    return {
      version: '2', MemoryLimit: has('memory'), SwapLimit: has('memory'), KernelMemory: false, KernelMemoryTCP: false,
      CpuCfsPeriod: has('cpu'), CpuCfsQuota: has('cpu'), CPUShares: has('cpu'), CPUSet: has('cpuset'), PidsLimit: has('pids'),
      OomKillDisable: false,
    };
  }
  return {
    version: '1',
    MemoryLimit: exists(`${cg}/memory/memory.limit_in_bytes`),
    SwapLimit: exists(`${cg}/memory/memory.memsw.limit_in_bytes`),
    KernelMemory: exists(`${cg}/memory/memory.kmem.limit_in_bytes`),
    KernelMemoryTCP: exists(`${cg}/memory/memory.kmem.tcp.limit_in_bytes`),
    CpuCfsPeriod: exists(`${cg}/cpu/cpu.cfs_period_us`),
    CpuCfsQuota: exists(`${cg}/cpu/cpu.cfs_quota_us`),
    CPUShares: exists(`${cg}/cpu/cpu.shares`),
    CPUSet: exists(`${cg}/cpuset/cpuset.cpus`),
    PidsLimit: exists(`${cg}/pids/pids.max`) || exists(`${cg}/pids`),
    OomKillDisable: exists(`${cg}/memory/memory.oom_control`),
  };
}

function procFlag(file: string): boolean {
  return (readText(file) ?? '').trim() === '1';
}

interface ToolVersion { version: string; commit: string }

/** Asks a helper binary for its version once (not a hot path: /version and /info only). */
function toolVersion(bin: string): Promise<ToolVersion> {
  return new Promise((resolve) => {
    execFile(bin, ['--version'], { timeout: 5000 }, (err, stdout) => {
      if (err) { resolve({ version: '', commit: '' }); return; }
      const version = /version\s+(\S+)/.exec(stdout)?.[1] ?? '';
      const commit = /commit:\s*(\S+)/.exec(stdout)?.[1] ?? '';
      resolve({ version, commit });
    });
  });
}

/** Git commit of the Berth checkout this daemon runs from, when there is one. */
function gitCommit(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const head = readText(path.join(dir, '.git', 'HEAD'));
    if (head !== undefined) {
      const ref = /^ref: (.+)$/m.exec(head)?.[1];
      const sha = ref ? (readText(path.join(dir, '.git', ref)) ?? packedRef(dir, ref)) : head;
      return (sha ?? '').trim().slice(0, 7);
    }
    dir = path.dirname(dir);
  }
  return '';
}

function packedRef(dir: string, ref: string): string | undefined {
  const packed = readText(path.join(dir, '.git', 'packed-refs')) ?? '';
  for (const line of packed.split('\n')) {
    const [sha, name] = line.split(' ');
    if (name === ref) return sha;
  }
  return undefined;
}

/** When this build of the daemon was made: the mtime of the running script. */
function buildTime(): string {
  try {
    return fs.statSync(process.argv[1] ?? __filename).mtime.toISOString();
  } catch {
    return '';
  }
}

/** RegistryConfig of /info: 127.0.0.0/8 and the configured CIDRs insecure, named insecure registries and docker.io's mirrors as index configs. */
function registryConfig(config: DaemonConfig): Record<string, unknown> {
  const cidrs = ['127.0.0.0/8', ...config.insecureRegistries.filter((r) => r.includes('/') && r !== '127.0.0.0/8')];
  const indexConfigs: Record<string, unknown> = {};
  for (const name of config.insecureRegistries.filter((r) => !r.includes('/'))) {
    indexConfigs[name] = { Name: name, Mirrors: [], Secure: false, Official: false };
  }
  indexConfigs['docker.io'] = { Name: 'docker.io', Mirrors: config.registryMirrors, Secure: true, Official: true };
  return {
    AllowNondistributableArtifactsCIDRs: [],
    AllowNondistributableArtifactsHostnames: [],
    InsecureRegistryCIDRs: cidrs,
    IndexConfigs: indexConfigs,
    Mirrors: config.registryMirrors,
  };
}

/** Stable engine ID, created once per data root (dockerd keeps one in its root too). */
function engineId(dataRoot: string): string {
  const file = path.join(dataRoot, 'engine-id');
  const cur = readText(file)?.trim();
  if (cur) return cur;
  const id = randomUUID();
  try {
    fs.mkdirSync(dataRoot, { recursive: true });
    writeFileAtomicSync(file, id + '\n');
  } catch { /* read-only root: the ID is per process then */ }
  return id;
}

// ---------------------------------------------------------------- routes

/**
 * What the system handlers share: the services, and facts read once per daemon
 * (tool versions, commit, build time, engine ID) or kept for /info (event listeners).
 */
class SystemFacts {
  eventListeners = 0;
  private tools?: Promise<{ runc: ToolVersion; conmon: ToolVersion }>;
  private gitCommit?: string;
  private built?: string;
  private id?: string;

  constructor(readonly services: Services) {}

  toolVersions(): Promise<{ runc: ToolVersion; conmon: ToolVersion }> {
    const { config } = this.services;
    return (this.tools ??= Promise.all([toolVersion(config.runtime), toolVersion(config.conmon)])
      .then(([runc, conmon]) => ({ runc, conmon })));
  }

  commit(): string { return (this.gitCommit ??= gitCommit()); }
  buildTime(): string { return (this.built ??= buildTime()); }
  engineId(): string { return (this.id ??= engineId(this.services.config.dataRoot)); }
}

/** HEAD and GET /_ping */
function ping(ctx: Ctx): void {
  const res = ctx.res!;
  const body = ctx.req.method === 'HEAD' ? '' : 'OK';
  res.writeHead(200, {
    ...commonHeaders(),
    'Cache-Control': 'no-cache, no-store, must-revalidate',
    'Pragma': 'no-cache',
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': String(body.length),
  });
  res.end(body);
}

/** GET /version */
async function version(ctx: Ctx, facts: SystemFacts): Promise<void> {
  const { runc, conmon } = await facts.toolVersions();
  const commit = facts.commit();
  const built = facts.buildTime();
  const details = {
    ApiVersion: API_VERSION,
    Arch: goArch(),
    BuildTime: built,
    Experimental: String(facts.services.config.experimental),
    GitCommit: commit,
    GoVersion: `node${process.versions.node}`,
    KernelVersion: os.release(),
    MinAPIVersion: MIN_API_VERSION,
    Os: 'linux',
  };
  const components: Array<{ Name: string; Version: string; Details: Record<string, string> }> = [
    { Name: 'Engine', Version: ENGINE_VERSION, Details: details },
  ];
  if (runc.version) components.push({ Name: 'runc', Version: runc.version, Details: { GitCommit: runc.commit } });
  if (conmon.version) components.push({ Name: 'conmon', Version: conmon.version, Details: { GitCommit: conmon.commit } });
  ctx.send(200, {
    Platform: { Name: 'Berth' },
    Components: components,
    Version: ENGINE_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: commit,
    GoVersion: details.GoVersion,
    Os: 'linux',
    Arch: details.Arch,
    KernelVersion: details.KernelVersion,
    BuildTime: built,
  });
}

/** GET /info */
async function info(ctx: Ctx, facts: SystemFacts): Promise<void> {
  const { services } = facts;
  const { config } = services;
  const [images, { runc }] = await Promise.all([services.images.list(), facts.toolVersions()]);
  const containers = services.containers.stateCounts();
  const cg = cgroupFeatures();
  const rel = osRelease();
  const warnings: string[] = [];
  if (!cg.SwapLimit) warnings.push('WARNING: No swap limit support');
  if (!cg.KernelMemory && cg.version === '1') warnings.push('WARNING: No kernel memory limit support');
  const ipv4Forwarding = procFlag('/proc/sys/net/ipv4/ip_forward');
  if (!ipv4Forwarding) warnings.push('WARNING: IPv4 forwarding is disabled');
  const bridgeNf = procFlag('/proc/sys/net/bridge/bridge-nf-call-iptables');
  const bridgeNf6 = procFlag('/proc/sys/net/bridge/bridge-nf-call-ip6tables');
  const uniqueImages = new Set(images.map((i) => i.id)).size;
  ctx.send(200, {
    ID: facts.engineId(),
    Containers: containers.total,
    ContainersRunning: containers.running,
    ContainersPaused: containers.paused,
    ContainersStopped: containers.stopped,
    Images: uniqueImages,
    Driver: config.storageDriver,
    DriverStatus: [
      ['Backing Filesystem', backingFs(config.dataRoot)],
      ['Supports d_type', 'true'],
      ['Native Overlay Diff', 'true'],
      ['userxattr', 'false'],
    ],
    Plugins: { Volume: ['local'], Network: ['host', 'null'], Authorization: null, Log: logDrivers() },
    MemoryLimit: cg.MemoryLimit,
    SwapLimit: cg.SwapLimit,
    KernelMemory: cg.KernelMemory,
    KernelMemoryTCP: cg.KernelMemoryTCP,
    CpuCfsPeriod: cg.CpuCfsPeriod,
    CpuCfsQuota: cg.CpuCfsQuota,
    CPUShares: cg.CPUShares,
    CPUSet: cg.CPUSet,
    PidsLimit: cg.PidsLimit,
    IPv4Forwarding: ipv4Forwarding,
    BridgeNfIptables: bridgeNf,
    BridgeNfIp6tables: bridgeNf6,
    Debug: config.debug,
    NFd: countFds(),
    OomKillDisable: cg.OomKillDisable,
    NGoroutines: 0,
    SystemTime: new Date().toISOString(),
    LoggingDriver: config.logConfig.type,
    CgroupDriver: 'cgroupfs',
    CgroupVersion: cg.version,
    NEventsListener: facts.eventListeners,
    KernelVersion: os.release(),
    OperatingSystem: rel.pretty,
    OSVersion: rel.version,
    OSType: 'linux',
    Architecture: os.machine(),
    IndexServerAddress: 'https://index.docker.io/v1/',
    RegistryConfig: registryConfig(config),
    NCPU: os.cpus().length,
    MemTotal: os.totalmem(),
    GenericResources: null,
    DockerRootDir: config.dataRoot,
    HttpProxy: maskCredentials(config.proxies.httpProxy),
    HttpsProxy: maskCredentials(config.proxies.httpsProxy),
    NoProxy: config.proxies.noProxy,
    // Not in dockerd's answer: daemon.json `dns`, which `berth info` shows (the docker CLI ignores it).
    Dns: config.dns,
    Name: os.hostname(),
    Labels: config.labels,
    ExperimentalBuild: config.experimental,
    ServerVersion: ENGINE_VERSION,
    Runtimes: { runc: { path: config.runtime } },
    DefaultRuntime: 'runc',
    Swarm: { NodeID: '', NodeAddr: '', LocalNodeState: 'inactive', ControlAvailable: false, Error: '', RemoteManagers: null },
    LiveRestoreEnabled: true, // conmon keeps containers running without berthd, whatever live-restore says
    Isolation: '',
    InitBinary: '',
    ContainerdCommit: { ID: '', Expected: '' },
    RuncCommit: { ID: runc.commit || runc.version, Expected: runc.commit || runc.version },
    InitCommit: { ID: '', Expected: '' },
    // every container gets the builtin seccomp filter unless --privileged or seccomp=unconfined
    SecurityOptions: ['name=seccomp,profile=builtin', ...(services.config.defaultCgroupnsMode === 'private' ? ['name=cgroupns'] : [])],
    CDISpecDirs: [],
    Warnings: warnings.length ? warnings : null,
  });
}

/** GET /system/df */
async function systemDf(ctx: Ctx, facts: SystemFacts): Promise<void> {
  const { services } = facts;
  const types = ctx.query.getAll('type');
  const want = (t: string) => types.length === 0 || types.includes(t);
  for (const t of types) {
    if (!['container', 'image', 'volume', 'build-cache'].includes(t)) throw invalidArgument(`unknown object type: ${t}`);
  }
  const needContainers = want('container') || want('image');
  const containers = needContainers ? await services.containers.list({ all: true, size: want('container'), filters: {} }) : [];
  const out: Record<string, unknown> = {};
  if (want('image')) {
    const { layersSize, images } = await services.images.diskUsage(containers, ctx.version);
    out.LayersSize = layersSize;
    out.Images = images;
  }
  if (want('container')) out.Containers = containers;
  if (want('volume')) out.Volumes = await services.volumes.usage();
  if (want('build-cache')) out.BuildCache = await services.builder.diskUsage();
  ctx.send(200, out);
}

/** GET /events: the replay since `since`, then live events until `until` or the client goes. */
function events(ctx: Ctx, facts: SystemFacts): void {
  const { services } = facts;
  const filters = ctx.filters();
  for (const k of Object.keys(filters)) if (!EVENT_FILTERS.has(k)) throw invalidArgument(`invalid filter '${k}'`);
  const nowSec = Date.now() / 1000;
  const sinceQ = ctx.query.get('since');
  const untilQ = ctx.query.get('until');
  const since = sinceQ ? parseApiTimestamp(sinceQ, nowSec) : undefined;
  const until = untilQ ? parseApiTimestamp(untilQ, nowSec) : undefined;
  if (since !== undefined && until !== undefined && since > until) {
    throw invalidArgument(`\`since\` time (${sinceQ}) cannot be after \`until\` time (${untilQ})`);
  }
  const untilNs = until !== undefined ? until * 1e9 : Infinity;
  const res = ctx.startStream('application/json');
  res.on('error', () => { /* client gone; cleanup runs on close */ });
  const send = (ev: EngineEvent) => {
    if (ev.timeNano > untilNs || !eventMatches(ev, filters)) return;
    if (!res.writableEnded && !res.destroyed) res.write(serializeEvent(ev) + '\n');
  };
  // Replay and subscribe in the same tick: no event can fall between them.
  if (since !== undefined) for (const ev of services.events.since(Math.floor(since * 1e9))) send(ev);
  if (until !== undefined && until <= nowSec) { res.end(); return; }
  facts.eventListeners++;
  services.events.on('event', send);
  let timer: NodeJS.Timeout | undefined;
  const stop = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (services.events.listeners('event').includes(send)) {
      services.events.off('event', send);
      facts.eventListeners--;
    }
    if (!res.writableEnded) res.end();
  };
  if (until !== undefined) timer = setTimeout(stop, Math.max(0, (until - nowSec) * 1000));
  ctx.clientGone().addEventListener('abort', stop, { once: true });
}

/** The system endpoints. */
const SYSTEM_ROUTES: ReadonlyArray<RouteEntry<SystemFacts>> = [
  ['HEAD', '/_ping', ping],
  ['GET', '/_ping', ping],
  ['GET', '/version', version],
  ['GET', '/info', info],
  ['GET', '/system/df', systemDf],
  ['GET', '/events', events],
];

export function registerSystemRoutes(router: Router, services: Services): void {
  services.events.setMaxListeners(0);
  addRoutes(router, new SystemFacts(services), SYSTEM_ROUTES);
}

function countFds(): number {
  try { return fs.readdirSync('/proc/self/fd').length; } catch { return 0; }
}
