/**
 * Docker container configuration -> OCI runtime config.json (runtime-spec
 * 1.0.2, as runc 1.1.5 reads it), with Docker's defaults: namespaces,
 * capabilities, mounts, masked/readonly paths, device allow-list, cgroup
 * resources (resources.ts), rlimits clamped to what this host allows (host.ts),
 * init, sysctls. Docker's rules for what goes in (argv, env merge, `-v`
 * parsing, the default hostname) are the container area's: container/runconfig.ts,
 * container/binds.ts.
 *
 * Usage (container/bundle.ts, at start):
 *
 *   const spec = buildOciSpec({
 *     containerId: id, rootfsPath: rootfs, args, env: config.Env ?? [],
 *     cwd: config.WorkingDir || '/', user, terminal: !!config.Tty,
 *     hostname: config.Hostname, domainname: config.Domainname,
 *     hostConfig, etcFiles: { hostname, hosts, resolvConf },    // see container/etcfiles.ts
 *     mountPoints,                                              // the container's resolved Mounts
 *     cgroupsPath: `/berth/${id}`,
 *   });
 *   await writeOciConfig(bundleDir, spec);                    // bigint-safe, atomic
 *
 * buildOciSpec throws BerthError('invalid-argument') with Docker's wording for
 * bad HostConfig values. With prepareHostPaths (the default) it creates missing
 * bind-mount source directories and the working directory inside the rootfs,
 * as Docker does at start.
 */
import type { MountPoint } from '../engine/types';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { internal, invalidArgument } from '../common/errors';
import { writeFileAtomic } from '../common/atomic';
import { replaceOrAppendEnv } from '../common/env';
import { cleanPath } from '../common/paths';
import { resolveInRoot } from '../common/scopedpath';
import { containerCapabilities } from './caps';
import { findInitBinary, hostDevices, hostFacts, type HostFacts } from './host';
import type { DockerHostConfig, OciDevice, OciDeviceCgroup, OciMount, OciNamespace, OciResources, OciRlimit, OciSpec } from './oci';
import { buildResources, buildRlimits, defaultDeviceRules, parseDeviceCgroupRule, userDevices } from './resources';
import { defaultSeccompProfile } from './seccomp';

export type { DockerHostConfig, OciDevice, OciDeviceCgroup, OciMount, OciNamespace, OciResources, OciRlimit, OciSpec } from './oci';

// ---------------------------------------------------------------------------
// Types

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
  /** The container's resolved Mounts (binds, volumes, --mount tmpfs; container/binds.ts for HostConfig's own). */
  mountPoints?: MountPoint[];
  /** Create missing bind sources and the working directory (default true). */
  prepareHostPaths?: boolean;
  /** Host facts, overridable for tests. */
  host?: Partial<HostFacts>;
}

// ---------------------------------------------------------------------------
// Docker's constants

export const OCI_VERSION = '1.0.2-dev';
export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;
export const INIT_PATH_IN_CONTAINER = '/sbin/docker-init';

export const MASKED_PATHS: readonly string[] = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi',
  '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const READONLY_PATHS: readonly string[] = [
  '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger',
];

// ---------------------------------------------------------------------------
// Process env

/** Process env as Docker builds it: PATH, HOSTNAME, TERM=xterm (tty) as defaults, then the container's Env. */
export function containerEnv(env: string[], hostname: string, terminal: boolean): string[] {
  const base = [DEFAULT_PATH_ENV, `HOSTNAME=${hostname}`];
  if (terminal) base.push('TERM=xterm');
  return replaceOrAppendEnv(base, env);
}

// ---------------------------------------------------------------------------
// Mounts

export type { MountPoint };

export const PROPAGATIONS = ['shared', 'slave', 'private', 'rshared', 'rslave', 'rprivate'];

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
// Sysctls, security options

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

/** What checkSpecInput found valid and computed; buildOciSpec assembles the spec from it. */
export interface CheckedSpecInput {
  hc: DockerHostConfig;
  host: HostFacts;
  privileged: boolean;
  readonlyRootfs: boolean;
  security: SecurityOptions;
  namespaces: OciNamespace[];
  privateUts: boolean;
  ipcKind: string;
  caps: string[];
  shmSize: number;
  /** Mounts the container asks for (etc files, binds, volumes, tmpfs, init), parents first later. */
  user: OciMount[];
  args: string[];
  /** --device nodes (not the host's /dev of --privileged: that is read at build time only). */
  devices: OciDevice[];
  resources: OciResources;
  sysctl: Record<string, string>;
  oomScoreAdj: number;
  cwd: string;
  rlimits: OciRlimit[];
}

/**
 * Every check buildOciSpec makes, with Docker's wording, without building the spec:
 * create runs it to answer 400 early; update takes the resources from it. Reads no
 * rootfs and walks no /dev.
 */
export function checkSpecInput(input: SpecInput): CheckedSpecInput {
  const hc = input.hostConfig ?? {};
  const host: HostFacts = { ...hostFacts(), ...(input.host ?? {}) } as HostFacts;
  const privileged = !!hc.Privileged;
  const readonlyRootfs = input.readonlyRootfs ?? !!hc.ReadonlyRootfs;
  const security = parseSecurityOpts(hc.SecurityOpt);

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

  const shmSize = hc.ShmSize ?? 0;
  if (shmSize < 0) throw invalidArgument('SHM size can not be less than 0');

  const user: OciMount[] = [];
  const etcOpts = readonlyRootfs ? ['rbind', 'rprivate', 'ro'] : ['rbind', 'rprivate'];
  const etc = input.etcFiles ?? {};
  if (etc.hostname && privateUts) user.push({ destination: '/etc/hostname', type: 'bind', source: etc.hostname, options: etcOpts });
  if (etc.hosts) user.push({ destination: '/etc/hosts', type: 'bind', source: etc.hosts, options: etcOpts });
  if (etc.resolvConf) user.push({ destination: '/etc/resolv.conf', type: 'bind', source: etc.resolvConf, options: etcOpts });

  for (const m of input.mountPoints ?? []) {
    if (m.Type === 'tmpfs') {
      const opts = ['noexec', 'nosuid', 'nodev', 'rprivate', ...tmpfsMountData(hc, m.Destination), ...(m.RW ? [] : ['ro'])];
      user.push({ destination: m.Destination, type: 'tmpfs', source: 'tmpfs', options: mergeTmpfsOptions(opts) });
      continue;
    }
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

  // Devices.
  let devices: OciDevice[] = [];
  let deviceRules: OciDeviceCgroup[];
  if (privileged) {
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

  const rlimits = buildRlimits(hc.Ulimits, host.rlimits);
  return {
    hc, host, privileged, readonlyRootfs, security, namespaces, privateUts, ipcKind: ipc.kind, caps, shmSize, user, args,
    devices, resources, sysctl, oomScoreAdj, cwd, rlimits,
  };
}

/** Builds the OCI runtime spec for a container. See the usage note at the top of this file. */
export function buildOciSpec(input: SpecInput): OciSpec {
  const c = checkSpecInput(input);
  const { privileged, caps, user } = c;
  const prepare = input.prepareHostPaths !== false;

  // Mounts: Docker's defaults, minus the ones user mounts replace.
  const defaults: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: [privileged ? 'rw' : 'ro', 'nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
  ];
  if (c.ipcKind === 'host') {
    defaults.push({ destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'rprivate'] });
  } else if (c.ipcKind !== 'none') {
    defaults.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${c.shmSize || DEFAULT_SHM_SIZE}`] });
  }
  // Docker's -v creates a missing host directory (--mount was checked at create); a volume's always exists.
  if (prepare) {
    for (const m of input.mountPoints ?? []) {
      if (m.Type === 'bind' && !fs.existsSync(m.Source)) fs.mkdirSync(m.Source, { recursive: true, mode: 0o755 });
    }
  }
  const seen = new Set(user.map((m) => m.destination));
  const userMountsDev = seen.has('/dev');
  const mounts = [
    ...defaults.filter((m) => !seen.has(m.destination) && !(userMountsDev && m.destination.startsWith('/dev/'))),
    // Parents before children (stable by depth), like Docker's mounts sort.
    ...user.map((m, i) => ({ m, i })).sort((a, b) => depth(a.m.destination) - depth(b.m.destination) || a.i - b.i).map((x) => x.m),
  ];

  const devices = privileged ? hostDevices() : c.devices;

  if (prepare) {
    // Docker creates a missing WORKDIR at start, owned by the container user.
    const hostCwd = resolveInRoot(input.rootfsPath, c.cwd);
    if (!fs.existsSync(hostCwd)) {
      fs.mkdirSync(hostCwd, { recursive: true, mode: 0o755 });
      try { fs.chownSync(hostCwd, input.user.uid, input.user.gid); } catch { /* best effort, as Docker */ }
    }
  }

  const unconfined = privileged || c.security.unconfinedSystemPaths;
  const spec: OciSpec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: input.terminal,
      ...(input.consoleSize ? { consoleSize: input.consoleSize } : {}),
      user: { uid: input.user.uid, gid: input.user.gid, ...(input.user.additionalGids?.length ? { additionalGids: [...input.user.additionalGids] } : {}) },
      args: c.args,
      env: containerEnv(input.env, input.hostname, input.terminal),
      cwd: c.cwd,
      // Inheritable stays empty since Docker 20.10.14 (CVE-2022-24769).
      capabilities: { bounding: [...caps], effective: [...caps], permitted: [...caps], inheritable: [] },
      rlimits: c.rlimits,
      noNewPrivileges: c.security.noNewPrivileges,
      oomScoreAdj: c.oomScoreAdj,
    },
    root: { path: path.resolve(input.rootfsPath), readonly: c.readonlyRootfs },
    mounts,
    linux: {
      namespaces: c.namespaces,
      resources: c.resources,
      cgroupsPath: input.cgroupsPath,
      devices,
      maskedPaths: unconfined ? [] : [...MASKED_PATHS],
      readonlyPaths: unconfined ? [] : [...READONLY_PATHS],
      ...(Object.keys(c.sysctl).length ? { sysctl: c.sysctl } : {}),
      // --privileged and seccomp=unconfined run without a filter, as in Docker.
      ...(privileged || c.security.unconfinedSeccomp ? {} : { seccomp: defaultSeccompProfile(caps) }),
    },
  };
  if (c.privateUts) {
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
