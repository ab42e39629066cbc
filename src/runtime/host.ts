/**
 * What this host allows and has, read once and without spawning anything:
 * rlimits, bounding capabilities, swap accounting, online CPUs and memory
 * nodes, device nodes (for --privileged and --device), the init binary.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../common/errors';
import { hostBoundingCapabilities } from './caps';
import type { OciDevice } from './oci';

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

const PROC_LIMIT_NAMES: Record<string, string> = {
  'Max cpu time': 'RLIMIT_CPU', 'Max file size': 'RLIMIT_FSIZE', 'Max data size': 'RLIMIT_DATA',
  'Max stack size': 'RLIMIT_STACK', 'Max core file size': 'RLIMIT_CORE', 'Max resident set': 'RLIMIT_RSS',
  'Max processes': 'RLIMIT_NPROC', 'Max open files': 'RLIMIT_NOFILE', 'Max locked memory': 'RLIMIT_MEMLOCK',
  'Max address space': 'RLIMIT_AS', 'Max file locks': 'RLIMIT_LOCKS', 'Max pending signals': 'RLIMIT_SIGPENDING',
  'Max msgqueue size': 'RLIMIT_MSGQUEUE', 'Max nice priority': 'RLIMIT_NICE', 'Max realtime priority': 'RLIMIT_RTPRIO',
  'Max realtime timeout': 'RLIMIT_RTTIME',
};

export const RLIM_INFINITY = 2n ** 64n - 1n;

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

export function parseIndexList(s: string): Set<number> | undefined {
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

/** Host path of the init for `--init`: Debian's tini (`apt-get install tini`), else docker-init. */
export function findInitBinary(): string {
  for (const p of ['/usr/bin/tini-static', '/usr/bin/docker-init', '/usr/libexec/docker/docker-init', '/usr/bin/tini']) {
    try { if (fs.statSync(p).isFile()) return p; } catch { /* next */ }
  }
  throw new BerthError('invalid-argument', 'exec: "docker-init": executable file not found in $PATH (install Debian\'s tini package for --init)');
}

/** major/minor of a Linux dev_t as Node reports it (glibc's gnu_dev_major/minor). */
export function devMajor(rdev: number): number {
  const r = BigInt(rdev);
  return Number(((r >> 8n) & 0xfffn) | ((r >> 32n) & ~0xfffn));
}

export function devMinor(rdev: number): number {
  const r = BigInt(rdev);
  return Number((r & 0xffn) | ((r >> 12n) & ~0xffn));
}

export function deviceOf(hostPath: string, containerPath: string, st: fs.Stats): OciDevice | undefined {
  let type: 'c' | 'b';
  if (st.isCharacterDevice()) type = 'c';
  else if (st.isBlockDevice()) type = 'b';
  else return undefined;
  return { path: containerPath, type, major: devMajor(st.rdev), minor: devMinor(st.rdev), fileMode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
}

/** Directories of /dev that Docker (containerd's HostDevices) does not copy for --privileged. */
const SKIPPED_DEV_DIRS = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);

export function walkDevices(dir: string, mapTo: (hostPath: string) => string, skipDirs: boolean): OciDevice[] {
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
