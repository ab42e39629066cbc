/**
 * Cgroup resources, rlimits and device rules of a container from its
 * HostConfig, validated with Docker's messages and clamped to this host.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArgument } from '../common/errors';
import { deviceOf, parseIndexList, RLIM_INFINITY, walkDevices, type HostFacts } from './host';
import type { DockerHostConfig, OciDevice, OciDeviceCgroup, OciResources, OciRlimit } from './oci';

/** Docker's floor for --memory (linuxMinMemory). */
export const MIN_MEMORY = 6 * 1024 * 1024;

/** Docker's nofile default (dockerd's LimitNOFILE); clamped to the host hard limit. */
export const DEFAULT_NOFILE = 1048576;

/**
 * Docker's default device cgroup rules (moby oci/defaults.go). runc itself
 * appends the allow rules for null/zero/full/random/urandom/tty/ptmx/pts/tun
 * and creates the default device nodes.
 */
export function defaultDeviceRules(): OciDeviceCgroup[] {
  const c = (major: number, minor: number, allow = true): OciDeviceCgroup => ({ allow, type: 'c', major, minor, access: 'rwm' });
  return [
    { allow: false, access: 'rwm' },
    c(1, 5), c(1, 3), c(1, 9), c(1, 8), c(5, 0), c(5, 1),
    c(10, 229, false), // fuse
  ];
}

/** Ulimit names Docker accepts (go-units), mapped to OCI rlimit types. */
const ULIMIT_NAMES = new Set(['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack']);

function validPermissions(p: string): boolean {
  return /^[rwm]{1,3}$/.test(p) && new Set(p).size === p.length;
}

export function userDevices(devs: NonNullable<DockerHostConfig['Devices']>): { devices: OciDevice[]; rules: OciDeviceCgroup[] } {
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
