/**
 * Docker container configuration -> OCI runtime config.json (runtime-spec
 * 1.0.2, as runc 1.1.5 reads it), with Docker's defaults: namespaces,
 * capabilities, mounts, masked/readonly paths, device allow-list, cgroup
 * resources, rlimits (clamped to what this host allows), init, sysctls.
 *
 * Usage (container service, at start):
 *
 *   import { buildOciSpec, writeOciConfig, resolveArgs, defaultHostname } from '../runtime/spec';
 *   import { resolveUser } from '../runtime/user';
 *   const args = resolveArgs(config);                         // Cmd/Entrypoint already merged with the image at create
 *   const user = resolveUser(rootfs, config.User ?? '', hostConfig.GroupAdd ?? []);
 *   const spec = buildOciSpec({
 *     containerId: id, rootfsPath: rootfs, args, env: config.Env ?? [],
 *     cwd: config.WorkingDir || '/', user, terminal: !!config.Tty,
 *     hostname: config.Hostname, domainname: config.Domainname,
 *     hostConfig, etcFiles: { hostname, hosts, resolvConf },    // see container/etcfiles.ts
 *     cgroupsPath: `/berth/${id}`,
 *   });
 *   await writeOciConfig(bundleDir, spec);                    // bigint-safe, atomic
 *
 * buildOciSpec throws BerthError('invalid-argument') with Docker's wording for
 * bad HostConfig values; call it (with prepareHostPaths: false) at create
 * time too if you want errors there. With prepareHostPaths (the default) it
 * creates missing bind-mount source directories and the working directory
 * inside the rootfs, as Docker does at start.
 */
import type { MountPoint } from '../engine/types';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError, internal, invalidArgument } from '../common/errors';
import { writeFileAtomic } from '../common/atomic';
import { containerCapabilities, hostBoundingCapabilities } from './caps';
import { resolveInRoot } from '../common/scopedpath';
import { defaultSeccompProfile, type OciSeccomp } from './seccomp';

// ---------------------------------------------------------------------------
// Types

/** The parts of the Engine API HostConfig this module reads (swagger: HostConfig). */
export interface DockerHostConfig {
  Binds?: string[] | null;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  Privileged?: boolean;
  Memory?: number;
  MemorySwap?: number;
  MemoryReservation?: number;
  MemorySwappiness?: number | null;
  NanoCpus?: number;
  CpuShares?: number;
  CpuQuota?: number;
  CpuPeriod?: number;
  CpusetCpus?: string;
  CpusetMems?: string;
  BlkioWeight?: number;
  PidsLimit?: number | null;
  Ulimits?: Array<{ Name: string; Soft: number; Hard: number }> | null;
  NetworkMode?: string;
  Init?: boolean | null;
  ReadonlyRootfs?: boolean;
  Sysctls?: Record<string, string> | null;
  ShmSize?: number;
  Devices?: Array<{ PathOnHost: string; PathInContainer?: string; CgroupPermissions?: string }> | null;
  DeviceCgroupRules?: string[] | null;
  SecurityOpt?: string[] | null;
  OomKillDisable?: boolean | null;
  OomScoreAdj?: number;
  IpcMode?: string;
  PidMode?: string;
  UTSMode?: string;
  /** 'private' | 'host' (the daemon fills it in at create). */
  CgroupnsMode?: string;
  Tmpfs?: Record<string, string> | null;
  GroupAdd?: string[] | null;
  [k: string]: unknown;
}

export interface SpecInput {
  containerId: string;
  /** Host path of the container's root filesystem (already mounted). */
  rootfsPath: string;
  /** Overrides hostConfig.ReadonlyRootfs when given. */
  readonlyRootfs?: boolean;
  /** Final argv (see resolveArgs); Init is applied here, not by the caller. */
  args: string[];
  /** Config.Env (image env already merged at create). PATH/HOSTNAME/TERM defaults are added here. */
  env: string[];
  /** Working directory; '' or undefined means '/'. */
  cwd?: string;
  user: { uid: number; gid: number; additionalGids?: number[] };
  terminal: boolean;
  consoleSize?: { height: number; width: number };
  /** Config.Hostname (see defaultHostname). Ignored without a private UTS namespace. */
  hostname: string;
  domainname?: string;
  hostConfig: DockerHostConfig;
  /** Host files bind-mounted at /etc/hostname, /etc/hosts, /etc/resolv.conf. */
  etcFiles?: { hostname?: string; hosts?: string; resolvConf?: string };
  /** runc cgroupsPath, e.g. `/berth/<id>` (cgroupfs driver). */
  cgroupsPath: string;
  /** Host path of the init binary for HostConfig.Init (default: findInitBinary()). */
  initPath?: string;
  /** Join an existing network namespace (bridge networking, `container:<x>` mode). */
  netnsPath?: string;
  /** Namespace paths for `container:<x>` IpcMode/PidMode/UTSMode (e.g. /proc/<pid>/ns/ipc). */
  namespacePaths?: { ipc?: string; pid?: string; uts?: string };
  /** The container's resolved Mounts (binds, volumes, --mount tmpfs); default: the host paths HostConfig names. */
  mountPoints?: MountPoint[];
  /** Create missing bind sources and the working directory (default true). */
  prepareHostPaths?: boolean;
  /** Host facts, overridable for tests. */
  host?: Partial<HostFacts>;
}

export interface HostFacts {
  /** Number of CPUs (os.cpus().length). */
  cpus: number;
  /** Hard/soft rlimits of this process, by OCI type (RLIMIT_NOFILE...). */
  rlimits: Map<string, { soft: bigint; hard: bigint }>;
  /** Capabilities of the host bounding set. */
  boundingCapabilities: string[];
  /** Whether memory.memsw.* exists (swap accounting). */
  swapAccounting: boolean;
  /** Online CPUs and memory nodes as index sets. */
  onlineCpus: Set<number>;
  onlineMems: Set<number>;
}

export interface OciMount { destination: string; type?: string; source?: string; options?: string[] }
export interface OciRlimit { type: string; hard: number | bigint; soft: number | bigint }
export interface OciDevice { path: string; type: 'c' | 'b' | 'u' | 'p'; major: number; minor: number; fileMode?: number; uid?: number; gid?: number }
export interface OciDeviceCgroup { allow: boolean; type?: 'a' | 'c' | 'b'; major?: number; minor?: number; access?: string }
export interface OciNamespace { type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup'; path?: string }

export interface OciResources {
  devices?: OciDeviceCgroup[];
  memory?: { limit?: number; reservation?: number; swap?: number; swappiness?: number; disableOOMKiller?: boolean };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  pids?: { limit: number };
  blockIO?: { weight?: number };
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    consoleSize?: { height: number; width: number };
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[]; inheritable: string[]; ambient?: string[] };
    rlimits: OciRlimit[];
    noNewPrivileges: boolean;
    oomScoreAdj: number;
    apparmorProfile?: string;
  };
  root: { path: string; readonly: boolean };
  hostname?: string;
  domainname?: string;
  mounts: OciMount[];
  linux: {
    namespaces: OciNamespace[];
    resources: OciResources;
    cgroupsPath: string;
    devices: OciDevice[];
    maskedPaths: string[];
    readonlyPaths: string[];
    sysctl?: Record<string, string>;
    seccomp?: OciSeccomp;
  };
  annotations?: Record<string, string>;
}

// ---------------------------------------------------------------------------
// Docker's constants

export const OCI_VERSION = '1.0.2-dev';
export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;
/** Docker's floor for --memory (linuxMinMemory). */
export const MIN_MEMORY = 6 * 1024 * 1024;
export const INIT_PATH_IN_CONTAINER = '/sbin/docker-init';
/** Docker's nofile default (dockerd's LimitNOFILE); clamped to the host hard limit. */
export const DEFAULT_NOFILE = 1048576;

export const MASKED_PATHS: readonly string[] = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi',
  '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const READONLY_PATHS: readonly string[] = [
  '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger',
];

/**
 * Docker's default device cgroup rules (moby oci/defaults.go). runc itself
 * appends the allow rules for null/zero/full/random/urandom/tty/ptmx/pts/tun
 * and creates the default device nodes.
 */
function defaultDeviceRules(): OciDeviceCgroup[] {
  const c = (major: number, minor: number, allow = true): OciDeviceCgroup => ({ allow, type: 'c', major, minor, access: 'rwm' });
  return [
    { allow: false, access: 'rwm' },
    c(1, 5), c(1, 3), c(1, 9), c(1, 8), c(5, 0), c(5, 1),
    c(10, 229, false), // fuse
  ];
}

/** Ulimit names Docker accepts (go-units), mapped to OCI rlimit types. */
const ULIMIT_NAMES = new Set(['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack']);

const PROC_LIMIT_NAMES: Record<string, string> = {
  'Max cpu time': 'RLIMIT_CPU', 'Max file size': 'RLIMIT_FSIZE', 'Max data size': 'RLIMIT_DATA',
  'Max stack size': 'RLIMIT_STACK', 'Max core file size': 'RLIMIT_CORE', 'Max resident set': 'RLIMIT_RSS',
  'Max processes': 'RLIMIT_NPROC', 'Max open files': 'RLIMIT_NOFILE', 'Max locked memory': 'RLIMIT_MEMLOCK',
  'Max address space': 'RLIMIT_AS', 'Max file locks': 'RLIMIT_LOCKS', 'Max pending signals': 'RLIMIT_SIGPENDING',
  'Max msgqueue size': 'RLIMIT_MSGQUEUE', 'Max nice priority': 'RLIMIT_NICE', 'Max realtime priority': 'RLIMIT_RTPRIO',
  'Max realtime timeout': 'RLIMIT_RTTIME',
};

export const RLIM_INFINITY = 2n ** 64n - 1n;

// ---------------------------------------------------------------------------
// Host facts (read once, no process spawns)

/** Parses /proc/<pid>/limits text. `unlimited` -> RLIM_INFINITY. */
export function parseProcLimits(text: string): Map<string, { soft: bigint; hard: bigint }> {
  const out = new Map<string, { soft: bigint; hard: bigint }>();
  for (const line of text.split('\n').slice(1)) {
    for (const [label, type] of Object.entries(PROC_LIMIT_NAMES)) {
      if (!line.startsWith(label + ' ')) continue;
      const [soft, hard] = line.slice(label.length).trim().split(/\s+/);
      const v = (s: string | undefined) => (s === 'unlimited' || s === undefined ? RLIM_INFINITY : BigInt(s));
      out.set(type, { soft: v(soft), hard: v(hard) });
    }
  }
  return out;
}

function parseIndexList(s: string): Set<number> | undefined {
  const out = new Set<number>();
  const t = s.trim();
  if (t === '') return out;
  for (const part of t.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return undefined;
    const a = Number(m[1]);
    const b = m[2] !== undefined ? Number(m[2]) : a;
    if (b < a) return undefined;
    for (let i = a; i <= b; i++) out.add(i);
  }
  return out;
}

function readOr(file: string, fallback: string): string {
  try { return fs.readFileSync(file, 'utf8'); } catch { return fallback; }
}

let cachedHost: HostFacts | undefined;

/** What this host allows; read once per process. */
export function hostFacts(): HostFacts {
  if (!cachedHost) {
    const cpus = os.cpus().length || 1;
    cachedHost = {
      cpus,
      rlimits: parseProcLimits(fs.readFileSync('/proc/self/limits', 'utf8')),
      boundingCapabilities: hostBoundingCapabilities(),
      swapAccounting: fs.existsSync('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes'),
      onlineCpus: parseIndexList(readOr('/sys/devices/system/cpu/online', `0-${cpus - 1}`)) ?? new Set([...Array(cpus).keys()]),
      onlineMems: parseIndexList(readOr('/sys/devices/system/node/online', '0')) ?? new Set([0]),
    };
  }
  return cachedHost;
}

// ---------------------------------------------------------------------------
// Command, env, hostname

/**
 * The container's argv from its (create-time merged) Config, as Docker's
 * getEntrypointAndArgs does: Entrypoint + Cmd. `Entrypoint: [""]` means
 * "no entrypoint" (what `--entrypoint ""` sends).
 */
export function resolveArgs(config: { Entrypoint?: string[] | null; Cmd?: string[] | null }): string[] {
  let entrypoint = config.Entrypoint ?? [];
  if (entrypoint.length === 1 && entrypoint[0] === '') entrypoint = [];
  const args = [...entrypoint, ...(config.Cmd ?? [])];
  if (args.length === 0) throw invalidArgument('No command specified');
  return args;
}

/**
 * Merges a create request's Config with the image's config like Docker's
 * merge(): image Env first (overridden by the user's), image Cmd only when
 * the user gives neither Entrypoint nor Cmd, image Entrypoint unless the
 * user set one (an explicit `[""]` clears it).
 */
export interface RunConfigLike { Env?: string[] | null; Cmd?: string[] | null; Entrypoint?: string[] | null; WorkingDir?: string; User?: string }
export function mergeImageConfig<T extends RunConfigLike>(
  user: T, image: { Env?: string[]; Cmd?: string[] | null; Entrypoint?: string[] | null; WorkingDir?: string; User?: string } | undefined,
): T & RunConfigLike {
  const out: T & RunConfigLike = { ...user };
  if (!image) return out;
  out.Env = replaceOrAppendEnv(image.Env ?? [], user.Env ?? []);
  const userEntry = user.Entrypoint ?? [];
  if (userEntry.length === 0) {
    if ((user.Cmd ?? []).length === 0) out.Cmd = image.Cmd ?? null;
    if (user.Entrypoint == null) out.Entrypoint = image.Entrypoint ?? null;
  }
  if (!user.WorkingDir) out.WorkingDir = image.WorkingDir ?? '';
  if (!user.User) out.User = image.User ?? '';
  return out;
}

/** Docker's ReplaceOrAppendEnvValues: later `K=v` replace earlier `K=...`; a bare `K` removes K. */
export function replaceOrAppendEnv(base: string[], overrides: string[]): string[] {
  const out = [...base];
  const key = (e: string) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e);
  for (const e of overrides) {
    const k = key(e);
    const i = out.findIndex((x) => key(x) === k);
    if (!e.includes('=')) {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    if (i >= 0) out[i] = e; else out.push(e);
  }
  return out;
}

/** Process env as Docker builds it: PATH, HOSTNAME, TERM=xterm (tty) as defaults, then the container's Env. */
export function containerEnv(env: string[], hostname: string, terminal: boolean): string[] {
  const base = [DEFAULT_PATH_ENV, `HOSTNAME=${hostname}`];
  if (terminal) base.push('TERM=xterm');
  return replaceOrAppendEnv(base, env);
}

/** Docker's default Config.Hostname: the short id, or the host's name with --network host. */
export function defaultHostname(containerId: string, networkMode: string | undefined): string {
  return networkMode === 'host' ? os.hostname() : containerId.slice(0, 12);
}

/** Host path of the init for `--init`: Debian's tini (`apt-get install tini`), else docker-init. */
export function findInitBinary(): string {
  for (const p of ['/usr/bin/tini-static', '/usr/bin/docker-init', '/usr/libexec/docker/docker-init', '/usr/bin/tini']) {
    try { if (fs.statSync(p).isFile()) return p; } catch { /* next */ }
  }
  throw new BerthError('invalid-argument', 'exec: "docker-init": executable file not found in $PATH (install Debian\'s tini package for --init)');
}

// ---------------------------------------------------------------------------
// Mounts

/** A container path cleaned as Go's path.Clean does: no `.`/`..` parts, no trailing slash. */
export function cleanPath(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

export interface ParsedBind {
  /** Host path, or the volume's name (empty for an anonymous volume). */
  source: string;
  destination: string;
  /** A named (or anonymous) volume rather than a host path. */
  volume: boolean;
  readonly: boolean;
  propagation: string;
  /** The mode part as written (`ro`, `ro,z`...), which Docker reports as the mount's Mode. */
  mode: string;
  nocopy: boolean;
  raw: string;
}

export type { MountPoint };

const PROPAGATIONS = ['shared', 'slave', 'private', 'rshared', 'rslave', 'rprivate'];

/** Parses one `-v` entry: `/host:/ctr[:opts]`, `volume:/ctr[:opts]`, or `/ctr` (anonymous volume). */
export function parseBind(raw: string): ParsedBind {
  const parts = raw.split(':');
  const spec = () => invalidArgument(`invalid volume specification: '${raw}'`);
  if (parts.length < 1 || parts.length > 3 || parts.some((p, i) => p === '' && i < 2)) throw spec();
  if (parts.length === 1) {
    if (!raw.startsWith('/')) throw invalidArgument(`invalid volume specification: '${raw}': invalid mount config for type "volume": invalid mount path: '${raw}' mount path must be absolute`);
    if (cleanPath(raw) === '/') throw invalidArgument(`invalid specification: destination can't be '/' in '${raw}'`);
    return { source: '', destination: cleanPath(raw), volume: true, readonly: false, propagation: '', mode: '', nocopy: false, raw };
  }
  const [source, destination, mode = ''] = parts as [string, string, string?];
  const volume = !source.startsWith('/');
  if (!destination.startsWith('/')) {
    throw invalidArgument(`invalid volume specification: '${raw}': invalid mount config for type "${volume ? 'volume' : 'bind'}": invalid mount path: '${destination}' mount path must be absolute`);
  }
  if (cleanPath(destination) === '/') throw invalidArgument(`invalid specification: destination can't be '/' in '${raw}'`);
  let readonly = false;
  let propagation = volume ? '' : 'rprivate';
  let nocopy = false;
  const seen = { rw: false, label: false, prop: false, copy: false, consistency: false };
  if (mode !== '') {
    for (const m of mode.split(',')) {
      const bad = () => invalidArgument(`invalid mode: ${mode}`);
      if (m === 'ro' || m === 'rw') { if (seen.rw) throw bad(); seen.rw = true; readonly = m === 'ro'; }
      else if (m === 'z' || m === 'Z') { if (seen.label) throw bad(); seen.label = true; } // no SELinux here: nothing to relabel
      else if (PROPAGATIONS.includes(m) && !volume) { if (seen.prop) throw bad(); seen.prop = true; propagation = m; }
      else if (m === 'nocopy' && volume) { if (seen.copy) throw bad(); seen.copy = true; nocopy = true; }
      else if (['consistent', 'cached', 'delegated'].includes(m)) { if (seen.consistency) throw bad(); seen.consistency = true; }
      else throw bad();
    }
  }
  return { source: volume ? source : cleanPath(source), destination: cleanPath(destination), volume, readonly, propagation, mode, nocopy, raw };
}

/**
 * The host-path and tmpfs mount points HostConfig asks for (volumes are left out:
 * the container service resolves them). Used when a spec is built without the
 * container's resolved Mounts: the create-time validation, and older records.
 */
export function hostConfigMountPoints(hc: DockerHostConfig): MountPoint[] {
  const out: MountPoint[] = [];
  for (const b of (hc.Binds ?? []).map(parseBind)) {
    if (!b.volume) out.push({ Type: 'bind', Source: b.source, Destination: b.destination, Mode: b.mode, RW: !b.readonly, Propagation: b.propagation });
  }
  for (const m of (hc.Mounts ?? []) as Array<{ Type?: string; Source?: string; Target?: string; ReadOnly?: boolean; BindOptions?: { Propagation?: string } | null }>) {
    if (!m.Target || !m.Target.startsWith('/')) throw invalidArgument(`invalid mount config for type "${m.Type ?? ''}": invalid mount path: '${m.Target ?? ''}' mount path must be absolute`);
    const dest = cleanPath(m.Target);
    if (m.Type === 'bind' && m.Source) out.push({ Type: 'bind', Source: m.Source, Destination: dest, Mode: '', RW: !m.ReadOnly, Propagation: m.BindOptions?.Propagation || 'rprivate' });
    else if (m.Type === 'tmpfs') out.push({ Type: 'tmpfs', Source: '', Destination: dest, Mode: '', RW: !m.ReadOnly, Propagation: '' });
  }
  return out;
}

/** TmpfsOptions of `--mount type=tmpfs` as tmpfs mount data (Docker's ConvertTmpfsOptions). */
function tmpfsMountData(hc: DockerHostConfig, dest: string): string[] {
  const m = ((hc.Mounts ?? []) as Array<{ Type?: string; Target?: string; TmpfsOptions?: { SizeBytes?: number; Mode?: number } | null }>)
    .find((x) => x.Type === 'tmpfs' && x.Target && cleanPath(x.Target) === dest);
  const out: string[] = [];
  const size = Number(m?.TmpfsOptions?.SizeBytes ?? 0);
  if (size > 0) out.push(`size=${size}`);
  const mode = Number(m?.TmpfsOptions?.Mode ?? 0);
  if (mode > 0) out.push(`mode=${mode.toString(8)}`);
  return out;
}

/** Docker's MergeTmpfsOptions: later flags win over their opposites, key=value options override by key. */
export function mergeTmpfsOptions(options: string[]): string[] {
  const opposite: Record<string, string> = {
    ro: 'rw', rw: 'ro', exec: 'noexec', noexec: 'exec', suid: 'nosuid', nosuid: 'suid', dev: 'nodev', nodev: 'dev',
    atime: 'noatime', noatime: 'atime', diratime: 'nodiratime', nodiratime: 'diratime', sync: 'async', async: 'sync',
  };
  const out: string[] = [];
  for (let i = options.length - 1; i >= 0; i--) {
    const o = options[i]!.trim();
    if (o === '') continue;
    const key = o.includes('=') ? o.slice(0, o.indexOf('=') + 1) : o;
    if (key.endsWith('=')) {
      if (out.some((x) => x.startsWith(key))) continue;
    } else if (out.includes(o) || (opposite[o] && out.includes(opposite[o]!)) || (PROPAGATIONS.includes(o) && out.some((x) => PROPAGATIONS.includes(x)))) {
      continue;
    }
    out.unshift(o);
  }
  return out;
}

function depth(p: string): number {
  return path.posix.normalize(p).split('/').length;
}

// ---------------------------------------------------------------------------
// Devices

/** major/minor of a Linux dev_t as Node reports it (glibc's gnu_dev_major/minor). */
export function devMajor(rdev: number): number {
  const r = BigInt(rdev);
  return Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn));
}
export function devMinor(rdev: number): number {
  const r = BigInt(rdev);
  return Number((r & 0xffn) | ((r >> 12n) & ~0xffn));
}

function deviceOf(hostPath: string, containerPath: string, st: fs.Stats): OciDevice | undefined {
  let type: 'c' | 'b';
  if (st.isCharacterDevice()) type = 'c';
  else if (st.isBlockDevice()) type = 'b';
  else return undefined;
  return { path: containerPath, type, major: devMajor(st.rdev), minor: devMinor(st.rdev), fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
}

/** Directories of /dev that Docker (containerd's HostDevices) does not copy for --privileged. */
const SKIPPED_DEV_DIRS = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);

function walkDevices(dir: string, mapTo: (hostPath: string) => string, skipDirs: boolean): OciDevice[] {
  const out: OciDevice[] = [];
  let entries: fs.Dirent[];
  try { entries = fs.readdirSync(dir, { withFileTypes: true }); } catch { return out; }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (skipDirs && SKIPPED_DEV_DIRS.has(e.name)) continue;
      out.push(...walkDevices(p, mapTo, skipDirs));
      continue;
    }
    if (skipDirs && p === '/dev/console') continue; // runc sets up the console itself
    let st: fs.Stats;
    try { st = fs.lstatSync(p); } catch { continue; }
    const d = deviceOf(p, mapTo(p), st);
    if (d) out.push(d);
  }
  return out;
}

/** All char/block devices of the host's /dev, as Docker gives them to --privileged containers. */
export function hostDevices(): OciDevice[] {
  return walkDevices('/dev', (p) => p, true);
}

function validPermissions(p: string): boolean {
  return /^[rwm]{1,3}$/.test(p) && new Set(p).size === p.length;
}

function userDevices(devs: NonNullable<DockerHostConfig['Devices']>): { devices: OciDevice[]; rules: OciDeviceCgroup[] } {
  const devices: OciDevice[] = [];
  const rules: OciDeviceCgroup[] = [];
  for (const d of devs) {
    const hostPath = d.PathOnHost;
    const ctrPath = d.PathInContainer || hostPath;
    const perms = d.CgroupPermissions || 'rwm';
    if (!validPermissions(perms)) throw invalidArgument(`invalid device mode: ${perms}`);
    let st: fs.Stats;
    try { st = fs.statSync(hostPath); } catch (err) {
      throw invalidArgument(`error gathering device information while adding custom device "${hostPath}": ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
    }
    const found: OciDevice[] = [];
    if (st.isDirectory()) {
      found.push(...walkDevices(hostPath, (p) => path.posix.join(ctrPath, path.relative(hostPath, p)), false));
    } else {
      const dev = deviceOf(hostPath, ctrPath, st);
      if (!dev) throw invalidArgument(`error gathering device information while adding custom device "${hostPath}": not a device node`);
      found.push(dev);
    }
    for (const dev of found) {
      devices.push(dev);
      rules.push({ allow: true, type: dev.type as 'c' | 'b', major: dev.major, minor: dev.minor, access: perms });
    }
  }
  return { devices, rules };
}

/** Parses `--device-cgroup-rule` values (`c 1:3 rwm`, `b *:* m`). */
export function parseDeviceCgroupRule(rule: string): OciDeviceCgroup {
  const m = /^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$/.exec(rule.trim());
  if (!m) throw invalidArgument(`invalid device cgroup format '${rule}'`);
  const out: OciDeviceCgroup = { allow: true, type: m[1] as 'a' | 'c' | 'b', access: m[4] };
  if (m[2] !== '*') out.major = Number(m[2]);
  if (m[3] !== '*') out.minor = Number(m[3]);
  return out;
}

// ---------------------------------------------------------------------------
// Resources, rlimits, sysctls, security options

/** Cgroup resources from HostConfig, validated with Docker's messages. */
export function buildResources(hc: DockerHostConfig, host: HostFacts): OciResources {
  const r: OciResources = {};
  const memory: NonNullable<OciResources['memory']> = {};
  const mem = hc.Memory ?? 0;
  const swap = hc.MemorySwap ?? 0;
  if (mem < 0) throw invalidArgument('Minimum memory limit allowed is 6MB');
  if (mem > 0 && mem < MIN_MEMORY) throw invalidArgument('Minimum memory limit allowed is 6MB');
  if (swap > 0 && mem === 0) throw invalidArgument('You should always set the Memory limit when using Memoryswap limit, see usage');
  if (mem > 0 && swap > 0 && swap < mem) throw invalidArgument('Minimum memoryswap limit should be larger than memory limit, see usage');
  if (mem > 0) {
    memory.limit = mem;
    // Docker: no --memory-swap means twice the memory; -1 unlimited. Dropped without swap accounting, as Docker does.
    if (host.swapAccounting) memory.swap = swap === 0 ? mem * 2 : swap;
  }
  const reservation = hc.MemoryReservation ?? 0;
  if (reservation > 0) {
    if (reservation < MIN_MEMORY) throw invalidArgument('Minimum memory reservation allowed is 6MB');
    if (mem > 0 && mem < reservation) throw invalidArgument('Minimum memory limit can not be less than memory reservation limit, see usage');
    memory.reservation = reservation;
  }
  const swappiness = hc.MemorySwappiness;
  if (swappiness != null && swappiness !== -1) {
    if (swappiness < 0 || swappiness > 100) throw invalidArgument(`Invalid value: ${swappiness}, valid memory swappiness range is 0-100`);
    memory.swappiness = swappiness;
  }
  if (hc.OomKillDisable) memory.disableOOMKiller = true;
  if (Object.keys(memory).length > 0) r.memory = memory;

  const cpu: NonNullable<OciResources['cpu']> = {};
  const nano = hc.NanoCpus ?? 0;
  if (nano !== 0) {
    if (hc.CpuPeriod) throw invalidArgument('Conflicting options: Nano CPUs and CPU Period cannot both be set');
    if (hc.CpuQuota) throw invalidArgument('Conflicting options: Nano CPUs and CPU Quota cannot both be set');
    if (nano < 1e7 || nano > host.cpus * 1e9) {
      throw invalidArgument(`Range of CPUs is from 0.01 to ${host.cpus}.00, as there are only ${host.cpus} CPUs available`);
    }
    cpu.period = 100000;
    cpu.quota = Math.round((nano * 100000) / 1e9);
  }
  const period = hc.CpuPeriod ?? 0;
  if (period !== 0) {
    if (period < 1000 || period > 1000000) throw invalidArgument('CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)');
    cpu.period = period;
  }
  const quota = hc.CpuQuota ?? 0;
  if (quota !== 0) {
    if (quota > 0 && quota < 1000) throw invalidArgument('CPU cfs quota can not be less than 1ms (i.e. 1000)');
    if (quota > 0) cpu.quota = quota;
  }
  const shares = hc.CpuShares ?? 0;
  if (shares < 0) throw invalidArgument(`invalid CPU shares (${shares}): value must be a positive integer`);
  if (shares > 0) cpu.shares = shares;
  if (hc.CpusetCpus) {
    const want = parseIndexList(hc.CpusetCpus);
    if (!want) throw invalidArgument(`Invalid value ${hc.CpusetCpus} for cpuset cpus`);
    if ([...want].some((c) => !host.onlineCpus.has(c))) {
      throw invalidArgument(`Requested CPUs are not available - requested ${hc.CpusetCpus}, available: ${formatIndexList(host.onlineCpus)}`);
    }
    cpu.cpus = hc.CpusetCpus;
  }
  if (hc.CpusetMems) {
    const want = parseIndexList(hc.CpusetMems);
    if (!want) throw invalidArgument(`Invalid value ${hc.CpusetMems} for cpuset mems`);
    if ([...want].some((c) => !host.onlineMems.has(c))) {
      throw invalidArgument(`Requested memory nodes are not available - requested ${hc.CpusetMems}, available: ${formatIndexList(host.onlineMems)}`);
    }
    cpu.mems = hc.CpusetMems;
  }
  if (Object.keys(cpu).length > 0) r.cpu = cpu;

  const pids = hc.PidsLimit ?? 0;
  if (pids > 0) r.pids = { limit: pids }; // 0 and -1 mean unlimited

  const weight = hc.BlkioWeight ?? 0;
  if (weight !== 0) {
    if (weight < 10 || weight > 1000) throw invalidArgument('Range of blkio weight is from 10 to 1000');
    r.blockIO = { weight };
  }
  return r;
}

function formatIndexList(s: Set<number>): string {
  const xs = [...s].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < xs.length; i++) {
    let j = i;
    while (j + 1 < xs.length && xs[j + 1] === xs[j]! + 1) j++;
    parts.push(i === j ? `${xs[i]}` : `${xs[i]}-${xs[j]}`);
    i = j;
  }
  return parts.join(',');
}

function toU64(n: number): bigint {
  return n < 0 ? RLIM_INFINITY : BigInt(Math.trunc(n));
}

/**
 * Rlimits: Docker's RLIMIT_NOFILE default overridden by --ulimit, each
 * clamped to this host's hard limit (runc can not raise a hard limit
 * without CAP_SYS_RESOURCE, which this host lacks), soft <= hard.
 */
export function buildRlimits(ulimits: DockerHostConfig['Ulimits'], hostLimits: HostFacts['rlimits']): OciRlimit[] {
  const wanted = new Map<string, { soft: bigint; hard: bigint }>();
  wanted.set('RLIMIT_NOFILE', { soft: BigInt(DEFAULT_NOFILE), hard: BigInt(DEFAULT_NOFILE) });
  for (const u of ulimits ?? []) {
    const name = String(u.Name ?? '').toLowerCase();
    if (!ULIMIT_NAMES.has(name)) throw invalidArgument(`invalid ulimit type: ${u.Name}`);
    const soft = toU64(u.Soft);
    const hard = toU64(u.Hard);
    if (soft > hard) throw invalidArgument(`ulimit soft limit must be less than or equal to hard limit: ${u.Soft} > ${u.Hard}`);
    wanted.set(`RLIMIT_${name.toUpperCase()}`, { soft, hard });
  }
  const out: OciRlimit[] = [];
  for (const [type, w] of wanted) {
    const hostHard = hostLimits.get(type)?.hard ?? RLIM_INFINITY;
    const hard = w.hard < hostHard ? w.hard : hostHard;
    const soft = w.soft < hard ? w.soft : hard;
    out.push({ type, hard: small(hard), soft: small(soft) });
  }
  return out;
}

function small(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

const IPC_SYSCTLS = new Set(['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced']);

/** Namespaced sysctls only, as Docker's whitelist and runc require. */
export function validateSysctls(sysctls: Record<string, string>, opts: { hostNetwork: boolean; hostIpc: boolean }): void {
  for (const k of Object.keys(sysctls)) {
    const ipc = IPC_SYSCTLS.has(k) || k.startsWith('fs.mqueue.');
    const net = k.startsWith('net.');
    if (!ipc && !net) throw invalidArgument(`sysctl '${k}' is not whitelisted`);
    if (net && opts.hostNetwork) throw invalidArgument(`sysctl '${k}' is not allowed in host network namespace`);
    if (ipc && opts.hostIpc) throw invalidArgument(`sysctl '${k}' is not allowed in host IPC namespace`);
  }
}

export interface SecurityOptions { noNewPrivileges: boolean; unconfinedSystemPaths: boolean; unconfinedSeccomp: boolean }

/** Docker's --security-opt parsing; profiles this engine can not apply are refused, never ignored. */
export function parseSecurityOpts(opts: readonly string[] | null | undefined): SecurityOptions {
  const out: SecurityOptions = { noNewPrivileges: false, unconfinedSystemPaths: false, unconfinedSeccomp: false };
  for (const opt of opts ?? []) {
    if (opt === 'no-new-privileges') { out.noNewPrivileges = true; continue; }
    if (opt === 'disable') continue; // label=disable: no SELinux on this engine
    let kv: string[];
    if (opt.includes('=')) kv = [opt.slice(0, opt.indexOf('=')), opt.slice(opt.indexOf('=') + 1)];
    else if (opt.includes(':')) kv = [opt.slice(0, opt.indexOf(':')), opt.slice(opt.indexOf(':') + 1)];
    else throw invalidArgument(`invalid --security-opt 1: ${JSON.stringify(opt)}`);
    const [k, v] = kv as [string, string];
    switch (k) {
      case 'label': break; // SELinux labels: not enabled on this host, ignored as Docker does without SELinux
      case 'apparmor':
        if (v !== 'unconfined') throw invalidArgument(`apparmor profile ${JSON.stringify(v)} is not supported by berth (containers run unconfined)`);
        break;
      case 'seccomp':
        if (v !== 'unconfined' && v !== 'builtin') throw invalidArgument('custom seccomp profiles are not supported by berth yet (only seccomp=unconfined or seccomp=builtin)');
        out.unconfinedSeccomp = v === 'unconfined';
        break;
      case 'systempaths':
        if (v !== 'unconfined') throw invalidArgument(`invalid --security-opt 2: ${JSON.stringify(opt)}`);
        out.unconfinedSystemPaths = true;
        break;
      case 'no-new-privileges':
        if (!['true', 'false', '1', '0', 't', 'f', 'TRUE', 'FALSE', 'True', 'False'].includes(v)) throw invalidArgument(`invalid --security-opt 2: ${JSON.stringify(opt)}`);
        out.noNewPrivileges = ['true', '1', 't', 'TRUE', 'True'].includes(v);
        break;
      default:
        throw invalidArgument(`invalid --security-opt 2: ${JSON.stringify(opt)}`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// The spec

function modeOf(v: string | undefined): { kind: string; ref: string } {
  const s = v ?? '';
  const i = s.indexOf(':');
  return i < 0 ? { kind: s, ref: '' } : { kind: s.slice(0, i), ref: s.slice(i + 1) };
}

/** Builds the OCI runtime spec for a container. See the usage note at the top of this file. */
export function buildOciSpec(input: SpecInput): OciSpec {
  const hc = input.hostConfig ?? {};
  const host: HostFacts = { ...hostFacts(), ...(input.host ?? {}) } as HostFacts;
  const privileged = !!hc.Privileged;
  const readonlyRootfs = input.readonlyRootfs ?? !!hc.ReadonlyRootfs;
  const security = parseSecurityOpts(hc.SecurityOpt);
  const prepare = input.prepareHostPaths !== false;

  // Namespaces (Docker's order).
  const namespaces: OciNamespace[] = [{ type: 'mount' }];
  const net = modeOf(hc.NetworkMode);
  const hostNetwork = net.kind === 'host';
  if (!hostNetwork) {
    if (net.kind === 'container' && !input.netnsPath) throw internal(`network mode ${hc.NetworkMode}: no network namespace path given`);
    namespaces.push(input.netnsPath ? { type: 'network', path: input.netnsPath } : { type: 'network' });
  }
  const uts = modeOf(hc.UTSMode);
  const privateUts = uts.kind !== 'host';
  if (uts.kind !== '' && uts.kind !== 'host') throw invalidArgument(`invalid UTS mode: ${hc.UTSMode}`);
  if (privateUts) namespaces.push({ type: 'uts' });
  const pid = modeOf(hc.PidMode);
  if (pid.kind === 'container') {
    if (!input.namespacePaths?.pid) throw internal(`pid mode ${hc.PidMode}: no pid namespace path given`);
    namespaces.push({ type: 'pid', path: input.namespacePaths.pid });
  } else if (pid.kind === '') namespaces.push({ type: 'pid' });
  else if (pid.kind !== 'host') throw invalidArgument(`invalid PID mode: ${hc.PidMode}`);
  const ipc = modeOf(hc.IpcMode);
  if (!['', 'private', 'shareable', 'host', 'none', 'container'].includes(ipc.kind)) throw invalidArgument(`invalid IPC mode: ${hc.IpcMode}`);
  if (ipc.kind === 'container') {
    if (!input.namespacePaths?.ipc) throw internal(`ipc mode ${hc.IpcMode}: no ipc namespace path given`);
    namespaces.push({ type: 'ipc', path: input.namespacePaths.ipc });
  } else if (ipc.kind !== 'host') namespaces.push({ type: 'ipc' });
  // CgroupnsMode is filled in at create; '' (a spec built without it) means host, as Docker on cgroup v1.
  if (hc.CgroupnsMode === 'private') namespaces.push({ type: 'cgroup' });
  else if (hc.CgroupnsMode && hc.CgroupnsMode !== 'host') throw invalidArgument(`invalid cgroup namespace mode: ${hc.CgroupnsMode}`);

  // Capabilities.
  const caps = containerCapabilities({ capAdd: hc.CapAdd, capDrop: hc.CapDrop, privileged, allCapabilities: host.boundingCapabilities });

  // Mounts: Docker's defaults, minus the ones user mounts replace.
  const shmSize = hc.ShmSize ?? 0;
  if (shmSize < 0) throw invalidArgument('SHM size can not be less than 0');
  const defaults: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: [privileged ? 'rw' : 'ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  ];
  if (ipc.kind === 'host') {
    defaults.push({ destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'rprivate'] });
  } else if (ipc.kind !== 'none') {
    defaults.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shmSize || DEFAULT_SHM_SIZE}`] });
  }

  const user: OciMount[] = [];
  const etcOpts = readonlyRootfs ? ['rbind', 'rprivate', 'ro'] : ['rbind', 'rprivate'];
  const etc = input.etcFiles ?? {};
  if (etc.hostname && privateUts) user.push({ destination: '/etc/hostname', type: 'bind', source: etc.hostname, options: etcOpts });
  if (etc.hosts) user.push({ destination: '/etc/hosts', type: 'bind', source: etc.hosts, options: etcOpts });
  if (etc.resolvConf) user.push({ destination: '/etc/resolv.conf', type: 'bind', source: etc.resolvConf, options: etcOpts });

  for (const m of input.mountPoints ?? hostConfigMountPoints(hc)) {
    if (m.Type === 'tmpfs') {
      const opts = ['noexec', 'nosuid', 'nodev', 'rprivate', ...tmpfsMountData(hc, m.Destination), ...(m.RW ? [] : ['ro'])];
      user.push({ destination: m.Destination, type: 'tmpfs', source: 'tmpfs', options: mergeTmpfsOptions(opts) });
      continue;
    }
    // Docker's -v creates a missing host directory (--mount was checked at create); a volume's always exists.
    if (prepare && m.Type === 'bind' && !fs.existsSync(m.Source)) fs.mkdirSync(m.Source, { recursive: true, mode: 0o755 });
    const options = ['rbind', m.Propagation || 'rprivate'];
    if (!m.RW) options.push('ro');
    user.push({ destination: m.Destination, type: 'bind', source: m.Source, options });
  }
  for (const [dest, data] of Object.entries(hc.Tmpfs ?? {})) {
    if (!dest.startsWith('/')) throw invalidArgument(`invalid mount config for type "tmpfs": invalid mount path: '${dest}' mount path must be absolute`);
    if (path.posix.normalize(dest) === '/') throw invalidArgument(`invalid specification: destination can't be '/'`);
    const opts = ['noexec', 'nosuid', 'nodev', 'rprivate', ...(data ? data.split(',') : [])];
    user.push({ destination: path.posix.normalize(dest), type: 'tmpfs', source: 'tmpfs', options: mergeTmpfsOptions(opts) });
  }

  let args = [...input.args];
  if (args.length === 0) throw invalidArgument('No command specified');
  if (hc.Init) {
    const initPath = input.initPath ?? findInitBinary();
    args = [INIT_PATH_IN_CONTAINER, '--', ...args];
    user.push({ destination: INIT_PATH_IN_CONTAINER, type: 'bind', source: initPath, options: ['bind', 'ro'] });
  }

  const seen = new Set<string>();
  for (const m of user) {
    if (seen.has(m.destination)) throw invalidArgument(`Duplicate mount point: ${m.destination}`);
    seen.add(m.destination);
  }
  const userMountsDev = seen.has('/dev');
  const mounts = [
    ...defaults.filter((m) => !seen.has(m.destination) && !(userMountsDev && m.destination.startsWith('/dev/'))),
    // Parents before children (stable by depth), like Docker's mounts sort.
    ...user.map((m, i) => ({ m, i })).sort((a, b) => depth(a.m.destination) - depth(b.m.destination) || a.i - b.i).map((x) => x.m),
  ];

  // Devices.
  let devices: OciDevice[] = [];
  let deviceRules: OciDeviceCgroup[];
  if (privileged) {
    devices = hostDevices();
    deviceRules = [{ allow: true, access: 'rwm' }];
  } else {
    deviceRules = defaultDeviceRules();
    const ud = userDevices(hc.Devices ?? []);
    devices = ud.devices;
    deviceRules.push(...ud.rules);
    for (const rule of hc.DeviceCgroupRules ?? []) deviceRules.push(parseDeviceCgroupRule(rule));
  }
  const resources = buildResources(hc, host);
  resources.devices = deviceRules;

  const sysctl = { ...(hc.Sysctls ?? {}) };
  validateSysctls(sysctl, { hostNetwork, hostIpc: ipc.kind === 'host' });

  const oomScoreAdj = hc.OomScoreAdj ?? 0;
  if (oomScoreAdj < -1000 || oomScoreAdj > 1000) throw invalidArgument(`Invalid value ${oomScoreAdj}, range for oom score adj is [-1000, 1000]`);

  const cwd = input.cwd || '/';
  if (!cwd.startsWith('/')) throw invalidArgument(`the working directory '${cwd}' is invalid, it needs to be an absolute path`);
  if (prepare) {
    // Docker creates a missing WORKDIR at start, owned by the container user.
    const hostCwd = resolveInRoot(input.rootfsPath, cwd);
    if (!fs.existsSync(hostCwd)) {
      fs.mkdirSync(hostCwd, { recursive: true, mode: 0o755 });
      try { fs.chownSync(hostCwd, input.user.uid, input.user.gid); } catch { /* best effort, as Docker */ }
    }
  }

  const unconfined = privileged || security.unconfinedSystemPaths;
  const spec: OciSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: input.terminal,
      ...(input.consoleSize ? { consoleSize: input.consoleSize } : {}),
      user: { uid: input.user.uid, gid: input.user.gid, ...(input.user.additionalGids?.length ? { additionalGids: [...input.user.additionalGids] } : {}) },
      args,
      env: containerEnv(input.env, input.hostname, input.terminal),
      cwd,
      // Inheritable stays empty since Docker 20.10.14 (CVE-2022-24769).
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps], inheritable: [] },
      rlimits: buildRlimits(hc.Ulimits, host.rlimits),
      noNewPrivileges: security.noNewPrivileges,
      oomScoreAdj,
    },
    root: { path: path.resolve(input.rootfsPath), readonly: readonlyRootfs },
    mounts,
    linux: {
      namespaces,
      resources,
      cgroupsPath: input.cgroupsPath,
      devices,
      maskedPaths: unconfined ? [] : [...MASKED_PATHS],
      readonlyPaths: unconfined ? [] : [...READONLY_PATHS],
      ...(Object.keys(sysctl).length ? { sysctl } : {}),
      // --privileged and seccomp=unconfined run without a filter, as in Docker.
      ...(privileged || security.unconfinedSeccomp ? {} : { seccomp: defaultSeccompProfile(caps) }),
    },
  };
  if (privateUts) {
    spec.hostname = input.hostname;
    if (input.domainname) spec.domainname = input.domainname;
  }
  return spec;
}

/** JSON of a spec; rlimit values beyond 2^53 (unlimited) are written as exact integers. */
export function serializeOciSpec(spec: OciSpec): string {
  const marker = '__berth_u64__';
  const json = JSON.stringify(spec, (_k, v) => (typeof v === 'bigint' ? `${marker}${v.toString()}` : v), 2);
  return json.replace(new RegExp(`"${marker}(\\d+)"`, 'g'), '$1');
}

/** Writes `<bundleDir>/config.json` atomically. */
export async function writeOciConfig(bundleDir: string, spec: OciSpec): Promise<void> {
  await writeFileAtomic(path.join(bundleDir, 'config.json'), serializeOciSpec(spec), 0o600);
}
