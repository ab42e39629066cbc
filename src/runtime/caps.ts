/**
 * Linux capabilities as Docker handles them: the default set, --cap-add /
 * --cap-drop normalisation, and the host's bounding set (what --privileged
 * and `--cap-add ALL` really get: runc fails on a capability the host does
 * not hold, and this machine lacks CAP_SYS_RESOURCE).
 */
import * as fs from 'node:fs';
import { invalidArgument } from '../common/errors';

/** Capability names by number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE (40). */
export const CAPABILITY_NAMES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID',
  'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK',
  'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG',
  'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** Docker's default capability set (moby oci/caps/defaults.go), in Docker's order. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** Bit mask of a capability list, as /proc/<pid>/status prints it (CapEff etc.). */
export function capabilityMask(caps: readonly string[]): bigint {
  let mask = 0n;
  for (const c of caps) {
    const i = CAPABILITY_NAMES.indexOf(c);
    if (i < 0) throw invalidArgument(`unknown capability: ${JSON.stringify(c)}`);
    mask |= 1n << BigInt(i);
  }
  return mask;
}

/** Capability names of a mask (bits this table does not name are skipped: runc would not know them either). */
export function capabilitiesOfMask(mask: bigint): string[] {
  const out: string[] = [];
  CAPABILITY_NAMES.forEach((name, i) => { if (mask & (1n << BigInt(i))) out.push(name); });
  return out;
}

/** Parses a `CapXxx:` line of a /proc/<pid>/status text. */
export function parseCapLine(statusText: string, field: 'CapInh' | 'CapPrm' | 'CapEff' | 'CapBnd' | 'CapAmb'): bigint {
  const m = new RegExp(`^${field}:\\s*([0-9a-fA-F]+)\\s*$`, 'm').exec(statusText);
  if (!m) throw new Error(`no ${field} line in /proc status`);
  return BigInt('0x' + m[1]);
}

let hostBounding: string[] | undefined;

/**
 * The daemon's own bounding set (CapBnd of /proc/self/status): the most a
 * container can get. Read once; the bounding set of a process never grows.
 */
export function hostBoundingCapabilities(): string[] {
  if (!hostBounding) {
    hostBounding = capabilitiesOfMask(parseCapLine(fs.readFileSync('/proc/self/status', 'utf8'), 'CapBnd'));
  }
  return [...hostBounding];
}

/**
 * `chown`, `CAP_chown`, `all` -> `CAP_CHOWN` / `ALL`; dedupes; rejects names
 * Docker does not know with Docker's message.
 */
export function normalizeCapabilities(caps: readonly string[] | null | undefined): string[] {
  const out: string[] = [];
  for (const raw of caps ?? []) {
    let c = String(raw).trim().toUpperCase();
    if (c !== 'ALL' && !c.startsWith('CAP_')) c = 'CAP_' + c;
    if (c !== 'ALL' && !CAPABILITY_NAMES.includes(c)) throw invalidArgument(`unknown capability: ${JSON.stringify(c)}`);
    if (!out.includes(c)) out.push(c);
  }
  return out;
}

/**
 * The container's capability list, following Docker's TweakCapabilities:
 * privileged -> everything; `--cap-add ALL` -> everything but the drops;
 * `--cap-drop ALL` -> only the adds; otherwise defaults - drops + adds.
 * "Everything" is the host's bounding set (see hostBoundingCapabilities).
 */
export function containerCapabilities(opts: {
  capAdd?: readonly string[] | null;
  capDrop?: readonly string[] | null;
  privileged?: boolean;
  /** Overrides the host bounding set (tests). */
  allCapabilities?: readonly string[];
}): string[] {
  const all = opts.allCapabilities ? [...opts.allCapabilities] : hostBoundingCapabilities();
  // Validate even when privileged, so a typo is reported either way.
  const adds = normalizeCapabilities(opts.capAdd);
  const drops = normalizeCapabilities(opts.capDrop);
  if (opts.privileged) return all;
  if (adds.length === 0 && drops.length === 0) return [...DEFAULT_CAPABILITIES];
  if (adds.includes('ALL')) return all.filter((c) => !drops.includes(c));
  if (drops.includes('ALL')) return adds.filter((c) => c !== 'ALL');
  const caps = DEFAULT_CAPABILITIES.filter((c) => !drops.includes(c));
  for (const c of adds) if (!caps.includes(c)) caps.push(c);
  return caps;
}
