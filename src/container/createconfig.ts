/**
 * Docker's create-time rules: merge the user's Config with the image's,
 * validate HostConfig, so bad values fail at create (400) not at start.
 */
import * as os from 'node:os';
import { invalidArgument } from '../common/errors';
import type { ImageRecord } from '../engine/types';
import { LOG_DRIVERS, type Ulimit } from '../engine/config';
import { replaceOrAppendEnv } from '../common/env';
import { defaultHostname } from './runconfig';
import { parseSignal } from './signals';
import { mergeHealthcheck, validateHealthcheck } from './health';
import { resolveLogConfig } from './logdriver';

/** Image env first, then user env overriding by key (Docker's ReplaceOrAppendEnvValues): a process's env. */
export function mergeEnv(image: string[] | undefined, user: string[] | undefined | null): string[] {
  return replaceOrAppendEnv(image ?? [], user ?? []);
}

/**
 * A container's Config.Env as Docker's create merges it: the user's entries as given (a bare
 * `KEY` too: it unsets KEY in the process), then the image's entries whose key the user did not name.
 */
export function mergeConfigEnv(image: string[] | undefined, user: string[] | undefined | null): string[] {
  if (!user?.length) return [...(image ?? [])];
  const key = (e: string) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e);
  const named = new Set(user.map(key));
  return [...user, ...(image ?? []).filter((e) => !named.has(key(e)))];
}

function isCleared(ep: unknown): boolean {
  return Array.isArray(ep) && (ep.length === 0 || (ep.length === 1 && ep[0] === ''));
}

export interface MergedConfig {
  config: any;
  path: string;
  args: string[];
}

/** Builds the container's Config (inspect shape) from the create body and the image. */
export function mergeConfig(id: string, body: any, image: ImageRecord, networkMode: string): MergedConfig {
  const ic = image.config.config ?? {};
  let entrypoint: string[] | null;
  let cmd: string[] | null;
  const userEp = body.Entrypoint;
  const userCmd: string[] | null = Array.isArray(body.Cmd) ? body.Cmd : typeof body.Cmd === 'string' ? [body.Cmd] : null;
  const userEpArr: string[] | null = Array.isArray(userEp) ? userEp : typeof userEp === 'string' ? [userEp] : null;
  if (userEpArr && !isCleared(userEpArr)) {
    entrypoint = userEpArr;
    cmd = userCmd && userCmd.length ? userCmd : null;
  } else {
    entrypoint = userEpArr ? null : (ic.Entrypoint && ic.Entrypoint.length ? ic.Entrypoint : null);
    cmd = userCmd && userCmd.length ? userCmd : (ic.Cmd && ic.Cmd.length ? ic.Cmd : null);
  }
  const full = [...(entrypoint ?? []), ...(cmd ?? [])];
  if (full.length === 0) throw invalidArgument('No command specified');
  validateHealthcheck(body.Healthcheck);
  const healthcheck = mergeHealthcheck(body.Healthcheck, ic.Healthcheck as any);
  const labels = { ...(ic.Labels ?? {}), ...(body.Labels ?? {}) };
  const config = {
    Hostname: body.Hostname || defaultHostname(id, networkMode),
    Domainname: body.Domainname ?? '',
    User: body.User || ic.User || '',
    AttachStdin: !!body.AttachStdin,
    AttachStdout: !!body.AttachStdout,
    AttachStderr: !!body.AttachStderr,
    ...(body.ExposedPorts || ic.ExposedPorts ? { ExposedPorts: { ...(ic.ExposedPorts ?? {}), ...(body.ExposedPorts ?? {}) } } : {}),
    Tty: !!body.Tty,
    OpenStdin: !!body.OpenStdin,
    StdinOnce: !!body.StdinOnce,
    Env: mergeConfigEnv(ic.Env, body.Env),
    Cmd: cmd,
    ...(healthcheck ? { Healthcheck: healthcheck } : {}),
    Image: String(body.Image),
    Volumes: body.Volumes || ic.Volumes ? { ...(ic.Volumes ?? {}), ...(body.Volumes ?? {}) } : null,
    WorkingDir: body.WorkingDir || ic.WorkingDir || '',
    Entrypoint: entrypoint,
    OnBuild: ic.OnBuild ?? null,
    Labels: labels,
    ...(body.StopSignal || ic.StopSignal ? { StopSignal: body.StopSignal || ic.StopSignal } : {}),
    ...(typeof body.StopTimeout === 'number' ? { StopTimeout: body.StopTimeout } : {}),
  };
  return { config, path: full[0], args: full.slice(1) };
}

const POLICIES = ['', 'no', 'always', 'on-failure', 'unless-stopped'];

/** A container port as Docker writes it: `80`, `80/tcp`, `8000-8010/udp`. */
const PORT_SPEC = /^(\d{1,5})(?:-(\d{1,5}))?(?:\/(tcp|udp|sctp))?$/;

function validPortRange(spec: string, allowZero: boolean): boolean {
  const m = PORT_SPEC.exec(spec);
  if (!m) return false;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  return (allowZero ? lo >= 0 : lo >= 1) && hi <= 65535 && hi >= lo;
}

/**
 * Values that parse but could never work, refused at create (as dockerd
 * does) rather than by runc at start: signal names, log drivers, negative
 * sizes and durations, port specifications.
 */
export function checkCreateValues(body: any, hc: any): void {
  if (body.StopSignal !== undefined && body.StopSignal !== null && body.StopSignal !== '') parseSignal(body.StopSignal, 15);
  if (typeof body.StopTimeout === 'number' && body.StopTimeout < -1) throw invalidArgument(`invalid stop timeout: ${body.StopTimeout}`);
  for (const p of Object.keys(body.ExposedPorts ?? {})) {
    if (!validPortRange(p, false)) throw invalidArgument(`invalid port specification: ${JSON.stringify(p)}`);
  }
  for (const [p, bindings] of Object.entries(hc.PortBindings ?? {})) {
    if (!validPortRange(p, false)) throw invalidArgument(`invalid port specification: ${JSON.stringify(p)}`);
    for (const b of (bindings as Array<{ HostPort?: string }> | null) ?? []) {
      const hp = b?.HostPort ?? '';
      if (hp !== '' && !validPortRange(hp, true)) throw invalidArgument(`invalid hostPort: ${hp}`);
    }
  }
  const driver = hc.LogConfig?.Type;
  if (driver && driver !== 'k8s-file' && !LOG_DRIVERS.includes(driver)) throw invalidArgument(`logger: no log driver named '${driver}' is registered`);
  for (const k of ['ShmSize', 'MemoryReservation', 'KernelMemory', 'KernelMemoryTCP', 'CpuPeriod', 'CpuQuota', 'CpuRealtimePeriod', 'CpuRealtimeRuntime', 'BlkioWeight']) {
    if (typeof hc[k] === 'number' && hc[k] < 0) throw invalidArgument(`invalid ${k}: must not be negative`);
  }
  if (typeof hc.MemorySwappiness === 'number' && (hc.MemorySwappiness < -1 || hc.MemorySwappiness > 100)) {
    throw invalidArgument(`invalid value: ${hc.MemorySwappiness}, valid memory swappiness range is 0-100`);
  }
  // Berth's overlay snapshots have no per-container quota (dockerd's overlay2 needs xfs with pquota for
  // `size`, and knows no other key): a size that would be stored and never enforced is refused.
  for (const key of Object.keys(hc.StorageOpt ?? {})) {
    if (key.toLowerCase() === 'size') throw invalidArgument("--storage-opt is supported only for overlay over xfs with 'pquota' mount option");
    throw invalidArgument(`Unknown option ${key}`);
  }
  const hcheck = body.Healthcheck;
  if (hcheck) {
    for (const k of ['Interval', 'Timeout', 'StartPeriod', 'StartInterval']) {
      if (typeof hcheck[k] === 'number' && hcheck[k] !== 0 && hcheck[k] < 1e6) throw invalidArgument(`${k} in Healthcheck cannot be less than 1ms`);
    }
    if (typeof hcheck.Retries === 'number' && hcheck.Retries < 0) throw invalidArgument('Retries in Healthcheck cannot be negative');
  }
}

/** Validates and normalises HostConfig; returns the stored copy. */
/** OCI runtimes a container may name in HostConfig.Runtime (the daemon's runc). */
const RUNTIMES = new Set(['runc']);

export function validateHostConfig(hc: any, defaults: { network: string; cgroupnsMode: string; ulimits?: Ulimit[]; logDriver?: string; logOpts?: Record<string, string> }): any {
  const out = { ...(hc ?? {}) };
  const rp = { Name: out.RestartPolicy?.Name ?? '', MaximumRetryCount: Number(out.RestartPolicy?.MaximumRetryCount ?? 0) };
  if (!POLICIES.includes(rp.Name)) {
    throw invalidArgument(`invalid restart policy: unknown policy '${rp.Name}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'`);
  }
  if (rp.MaximumRetryCount < 0) throw invalidArgument('invalid restart policy: maximum retry count must be a positive integer');
  if (rp.MaximumRetryCount > 0 && rp.Name !== 'on-failure') {
    throw invalidArgument(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  }
  if (rp.Name === '') rp.Name = 'no';
  out.RestartPolicy = rp;
  if (out.AutoRemove && rp.Name !== 'no') throw invalidArgument('Conflicting options: --restart and --rm');
  const mem = Number(out.Memory ?? 0);
  if (mem < 0) throw invalidArgument('invalid memory limit: must be a positive value');
  if (mem > 0 && mem < 6 * 1024 * 1024) throw invalidArgument('Minimum memory limit allowed is 6MB');
  const swap = Number(out.MemorySwap ?? 0);
  if (mem > 0 && swap > 0 && swap < mem) {
    throw invalidArgument('Minimum memoryswap limit should be larger than memory limit, see usage');
  }
  const nano = Number(out.NanoCpus ?? 0);
  const ncpu = os.cpus().length;
  if (nano < 0 || (nano > 0 && nano < 1e7) || nano > ncpu * 1e9) {
    throw invalidArgument(`Range of CPUs is from 0.01 to ${ncpu.toFixed(2)}, as there are only ${ncpu} CPUs available`);
  }
  if (nano > 0 && (Number(out.CpuQuota ?? 0) > 0 || Number(out.CpuPeriod ?? 0) > 0)) {
    throw invalidArgument('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  }
  const cpuShares = Number(out.CpuShares ?? 0);
  if (cpuShares < 0) throw invalidArgument('invalid CPU shares: must be a positive value');
  // Filled in at create, as dockerd does, so inspect shows what the container got.
  const cgroupns = String(out.CgroupnsMode ?? '') || defaults.cgroupnsMode;
  if (cgroupns !== 'host' && cgroupns !== 'private') throw invalidArgument(`invalid cgroup namespace mode: ${out.CgroupnsMode}`);
  out.CgroupnsMode = cgroupns;
  // Which networks exist is the network area's knowledge (NetworkService.prepare).
  let nm = String(out.NetworkMode ?? '');
  if (nm === '' || nm === 'default') nm = defaults.network;
  out.NetworkMode = nm;
  // daemon.json default-ulimits: added for the names the container does not set, as dockerd's mergeUlimits (inspect shows them).
  if (defaults.ulimits?.length) {
    const own = new Set(((out.Ulimits ?? []) as Ulimit[]).map((u) => String(u.Name).toLowerCase()));
    out.Ulimits = [...(out.Ulimits ?? []), ...defaults.ulimits.filter((u) => !own.has(u.Name)).map((u) => ({ ...u }))];
  }
  out.LogConfig = resolveLogConfig(out.LogConfig, { type: defaults.logDriver, opts: defaults.logOpts });
  const runtime = String(out.Runtime ?? '') || 'runc';
  if (!RUNTIMES.has(runtime)) throw invalidArgument(`unknown or invalid runtime name: ${runtime}`);
  out.Runtime = runtime;
  return out;
}

/**
 * The endpoint configs a create asks for, with the container-wide `Config.MacAddress` (API < 1.44,
 * deprecated later) given to the endpoint of the primary network unless that endpoint names its own,
 * as dockerd migrates it.
 */
export function endpointsWithContainerMac(networkMode: string, endpoints: Record<string, any> | null | undefined, mac: unknown): Record<string, any> | null | undefined {
  if (typeof mac !== 'string' || mac === '') return endpoints;
  const all = { ...(endpoints ?? {}) };
  const key = [networkMode, 'default'].find((k) => k && all[k]) ?? (networkMode || 'default');
  if (!all[key]?.MacAddress) all[key] = { ...all[key], MacAddress: mac };
  return all;
}

/**
 * NetworkSettings of a container that is not running: its networks without addresses
 * (the network area fills them in at start).
 */
export function networkSettings(networks: Record<string, any>): any {
  const nets: Record<string, any> = {};
  for (const [name, ep] of Object.entries(networks ?? {})) {
    nets[name] = {
      ...ep, EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0,
      DNSNames: null,
    };
  }
  return {
    Bridge: '', SandboxID: '', SandboxKey: '', Ports: {}, HairpinMode: false, LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0,
    SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: '', Gateway: '', GlobalIPv6Address: '',
    GlobalIPv6PrefixLen: 0, IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', MacAddress: '',
    Networks: nets,
  };
}
