/**
 * `docker stats`: samples a running container's cgroup (v1) counters and
 * network interfaces and shapes them as the Engine API's stats document.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import type { ContainerService, ContainerStats, StatsOptions } from '../engine/types';

const CLK_TCK = 100; // USER_HZ on Linux
const ZERO_TIME = '0001-01-01T00:00:00Z';

interface Sample {
  running: boolean;
  read: string;
  cpuTotal: number;
  percpu: number[];
  cpuUser: number;
  cpuSystem: number;
  systemCpu: number;
  throttling: { periods: number; throttled_periods: number; throttled_time: number };
  memory?: { usage: number; max_usage: number; failcnt: number; limit: number; stats: Record<string, number> };
  pids?: number;
  pidsLimit?: number;
  blkio: { io_service_bytes_recursive: BlkioEntry[]; io_serviced_recursive: BlkioEntry[] };
  networks?: Record<string, Record<string, number>>;
}

interface BlkioEntry { major: number; minor: number; op: string; value: number }

function readNum(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch { return undefined; }
}

function readKv(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const [k, v] = line.trim().split(/\s+/);
      if (k && v !== undefined && Number.isFinite(Number(v))) out[k] = Number(v);
    }
  } catch { /* controller absent */ }
  return out;
}

/** Controller -> cgroup path of a process, from /proc/<pid>/cgroup (v1 hierarchies). */
function cgroupPaths(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
      const m = /^\d+:([^:]*):(.*)$/.exec(line);
      if (!m) continue;
      for (const ctrl of m[1].split(',')) if (ctrl) out[ctrl] = m[2];
    }
  } catch { /* process gone */ }
  return out;
}

function systemCpuNs(): number {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('cpu '));
    if (!line) return 0;
    const ticks = line.trim().split(/\s+/).slice(1, 8).map(Number).reduce((a, b) => a + b, 0);
    return (ticks * 1e9) / CLK_TCK;
  } catch { return 0; }
}

function readBlkio(file: string): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const m = /^(\d+):(\d+) (\w+) (\d+)$/.exec(line.trim());
      if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3], value: Number(m[4]) });
    }
  } catch { /* absent */ }
  return out;
}

/** Interface counters of the container's network namespace (lo left out, as dockerd does). */
function readNetDev(pid: number): Record<string, Record<string, number>> | undefined {
  let text: string;
  try { text = fs.readFileSync(`/proc/${pid}/net/dev`, 'utf8'); } catch { return undefined; }
  const out: Record<string, Record<string, number>> = {};
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    out[m[1]] = {
      rx_bytes: f[0], rx_packets: f[1], rx_errors: f[2], rx_dropped: f[3],
      tx_bytes: f[8], tx_packets: f[9], tx_errors: f[10], tx_dropped: f[11],
    };
  }
  return Object.keys(out).length ? out : undefined;
}

function readSample(pid: number): Sample {
  const empty: Sample = {
    running: false, read: ZERO_TIME, cpuTotal: 0, percpu: [], cpuUser: 0, cpuSystem: 0, systemCpu: 0,
    throttling: { periods: 0, throttled_periods: 0, throttled_time: 0 },
    blkio: { io_service_bytes_recursive: [], io_serviced_recursive: [] },
  };
  if (!pid) return empty;
  const cg = cgroupPaths(pid);
  if (Object.keys(cg).length === 0) return empty;
  const dir = (ctrl: string) => `/sys/fs/cgroup/${ctrl}${cg[ctrl] ?? ''}`;
  const acct = dir('cpuacct');
  const stat = readKv(`${acct}/cpuacct.stat`);
  let percpu: number[] = [];
  try { percpu = fs.readFileSync(`${acct}/cpuacct.usage_percpu`, 'utf8').trim().split(/\s+/).map(Number); } catch { /* absent */ }
  const cpuStat = readKv(`${dir('cpu')}/cpu.stat`);
  const mem = dir('memory');
  const memStats = readKv(`${mem}/memory.stat`);
  const usage = readNum(`${mem}/memory.usage_in_bytes`);
  const limit = readNum(`${mem}/memory.limit_in_bytes`);
  const pidsCur = readNum(`${dir('pids')}/pids.current`);
  const pidsMax = readNum(`${dir('pids')}/pids.max`);
  const blk = dir('blkio');
  return {
    running: true,
    read: new Date().toISOString(),
    cpuTotal: readNum(`${acct}/cpuacct.usage`) ?? 0,
    percpu,
    cpuUser: ((stat.user ?? 0) * 1e9) / CLK_TCK,
    cpuSystem: ((stat.system ?? 0) * 1e9) / CLK_TCK,
    systemCpu: systemCpuNs(),
    throttling: { periods: cpuStat.nr_periods ?? 0, throttled_periods: cpuStat.nr_throttled ?? 0, throttled_time: cpuStat.throttled_time ?? 0 },
    memory: usage === undefined ? undefined : {
      usage,
      max_usage: readNum(`${mem}/memory.max_usage_in_bytes`) ?? 0,
      failcnt: readNum(`${mem}/memory.failcnt`) ?? 0,
      // An unlimited cgroup reports a huge number; dockerd caps the limit at the host's memory.
      limit: Math.min(limit ?? Infinity, os.totalmem()),
      stats: memStats,
    },
    pids: pidsCur,
    pidsLimit: pidsMax,
    blkio: {
      io_service_bytes_recursive: readBlkio(`${blk}/blkio.throttle.io_service_bytes_recursive`),
      io_serviced_recursive: readBlkio(`${blk}/blkio.throttle.io_serviced_recursive`),
    },
    networks: readNetDev(pid),
  };
}

function cpuDoc(s: Sample | undefined, online: number): Record<string, unknown> {
  if (!s || !s.running) {
    return { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
  }
  return {
    cpu_usage: { total_usage: s.cpuTotal, percpu_usage: s.percpu, usage_in_kernelmode: s.cpuSystem, usage_in_usermode: s.cpuUser },
    system_cpu_usage: s.systemCpu,
    online_cpus: online,
    throttling_data: s.throttling,
  };
}

/** The stats document of the Engine API (cgroup v1 field set, wire 52). */
function statsDocument(info: { Id: string; Name: string }, s: Sample, pre: Sample | undefined): Record<string, unknown> {
  const online = os.cpus().length;
  const doc: Record<string, unknown> = {
    read: s.read,
    preread: pre?.read ?? ZERO_TIME,
    pids_stats: s.pids !== undefined ? { current: s.pids, ...(s.pidsLimit !== undefined ? { limit: s.pidsLimit } : {}) } : {},
    blkio_stats: s.running
      ? {
        io_service_bytes_recursive: s.blkio.io_service_bytes_recursive, io_serviced_recursive: s.blkio.io_serviced_recursive,
        io_queue_recursive: [], io_service_time_recursive: [], io_wait_time_recursive: [], io_merged_recursive: [],
        io_time_recursive: [], sectors_recursive: [],
      }
      : {
        io_service_bytes_recursive: null, io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null,
        io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null,
      },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuDoc(s, online),
    precpu_stats: cpuDoc(pre, online),
    memory_stats: s.memory ?? {},
    name: info.Name,
    id: info.Id,
  };
  // Clients read `networks` (docker-py, compose): present, if empty, for a container without interfaces.
  if (s.running) doc.networks = s.networks ?? {};
  return doc;
}

/**
 * Emits stats documents of a container: with `stream`, one a second until the
 * container stops or `abort` fires; without, one (two samples a second apart,
 * as dockerd takes, so CPU % can be computed, unless `oneShot`).
 */
export async function containerStats(
  svc: ContainerService, idOrName: string, opts: StatsOptions, emit: (doc: ContainerStats) => void, abort: AbortSignal,
): Promise<void> {
  const info = await svc.inspect(idOrName);
  const sample = async (): Promise<Sample> => {
    const cur = await svc.inspect(info.Id).catch(() => undefined);
    const pid = cur?.State?.Running ? Number(cur.State.Pid) : 0;
    return readSample(pid);
  };
  const doc = (s: Sample, pre: Sample | undefined) => statsDocument(info, s, pre);
  if (!opts.stream) {
    const first = await sample();
    if (opts.oneShot || !first.running) { emit(doc(first, undefined)); return; }
    await new Promise((r) => setTimeout(r, 1000));
    emit(doc(await sample(), first));
    return;
  }
  let pre: Sample | undefined;
  while (!abort.aborted) {
    const s = await sample();
    emit(doc(s, pre));
    if (!s.running) break;
    pre = s;
    await new Promise<void>((r) => {
      const t = setTimeout(r, 1000);
      abort.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
    });
  }
}
