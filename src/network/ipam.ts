/**
 * IPv4 address management: CIDR parsing, the subnet pool new networks draw from
 * (skipping every route on the host and Docker's own 172.17.0.0/16), and address
 * allocation inside a network.
 */
import * as fs from 'node:fs';
import { invalidArgument } from '../common/errors';

export interface Cidr { base: number; prefix: number }

export function ipToInt(ip: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) throw invalidArgument(`invalid IP address: ${ip}`);
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) throw invalidArgument(`invalid IP address: ${ip}`);
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
}

export function intToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
}

/** Parses `a.b.c.d/n`; the host bits are cleared, as Docker stores subnets. */
export function parseCidr(s: string, what = 'subnet'): Cidr {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(String(s ?? '').trim());
  if (!m || Number(m[2]) > 32) throw invalidArgument(`invalid CIDR address: ${s}`);
  let base: number;
  try { base = ipToInt(m[1]!); } catch { throw invalidArgument(`invalid ${what}: ${s}`); }
  const prefix = Number(m[2]);
  return { base: (base & mask(prefix)) >>> 0, prefix };
}

export function cidrString(c: Cidr): string {
  return `${intToIp(c.base)}/${c.prefix}`;
}

export function contains(c: Cidr, ip: number): boolean {
  return ((ip & mask(c.prefix)) >>> 0) === c.base;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.prefix);
}

/** IPv4 routes of the host's main table (/proc/net/route, or its text), read without spawning ip(8). */
export function hostRoutes(procText?: string): Cidr[] {
  let text = procText ?? '';
  if (procText === undefined) {
    try { text = fs.readFileSync('/proc/net/route', 'utf8'); } catch { return []; }
  }
  const out: Cidr[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const dest = leHex(f[1]!);
    const m = leHex(f[7]!);
    if (dest === 0 && m === 0) continue; // the default route overlaps everything
    let prefix = 0;
    while (prefix < 32 && (m & (2 ** (31 - prefix))) !== 0) prefix++;
    out.push({ base: dest, prefix });
  }
  return out;
}

function leHex(h: string): number {
  const n = Number.parseInt(h, 16) >>> 0;
  return (((n & 255) << 24) | (((n >>> 8) & 255) << 16) | (((n >>> 16) & 255) << 8) | (n >>> 24)) >>> 0;
}

/** Docker's own default bridge subnet: never used, so a dockerd on the same host keeps it. */
export const DOCKER0 = parseCidr('172.17.0.0/16');

/**
 * Candidate subnets for networks made without --subnet, Docker's default pools minus
 * 172.17.0.0/16: 172.18-31.0.0/16, then 192.168.0.0/16 in /20s. `start` rotates the
 * order so that daemons with different data roots try different subnets first.
 */
export function poolCandidates(start: number, pools?: Array<{ base: string; size: number }>): Cidr[] {
  const list: Cidr[] = [];
  const from = pools?.length ? pools : [{ base: '172.18.0.0/15', size: 16 }, { base: '172.20.0.0/14', size: 16 }, { base: '172.24.0.0/13', size: 16 }, { base: '192.168.0.0/16', size: 20 }];
  for (const p of from) {
    const c = parseCidr(p.base);
    if (p.size < c.prefix || p.size > 30) continue;
    const step = 2 ** (32 - p.size);
    for (let b = c.base; b < c.base + size(c); b += step) list.push({ base: b >>> 0, prefix: p.size });
  }
  const n = list.length;
  return n ? list.map((_, i) => list[(i + start) % n]!) : [];
}

/** The first candidate that overlaps no host route, no existing network and not docker0. */
export function pickSubnet(candidates: Cidr[], taken: Cidr[], routes: Cidr[] = hostRoutes()): Cidr | undefined {
  const busy = [...taken, ...routes, DOCKER0];
  return candidates.find((c) => !busy.some((t) => overlaps(c, t)));
}

/** Addresses handed out in one network (gateway included), for allocation. */
export class AddressPool {
  private readonly used = new Set<number>();
  private next: number;
  constructor(readonly subnet: Cidr, readonly range: Cidr = subnet) {
    this.next = range.base;
  }

  reserve(ip: string): void { this.used.add(ipToInt(ip)); }
  release(ip: string): void { this.used.delete(ipToInt(ip)); }
  has(ip: string): boolean { return this.used.has(ipToInt(ip)); }

  /** The next free address of the range (network and broadcast addresses excluded), round robin. */
  allocate(): string | undefined {
    const first = this.range.base;
    const count = size(this.range);
    for (let i = 0; i < count; i++) {
      const cand = first + ((this.next - first + i) % count);
      if (cand === this.subnet.base || cand === this.subnet.base + size(this.subnet) - 1) continue;
      if (this.used.has(cand)) continue;
      this.used.add(cand);
      this.next = cand + 1;
      return intToIp(cand);
    }
    return undefined;
  }
}

/** Docker's MAC for an IPv4 address: 02:42 followed by the address. */
export function macForIp(ip: string): string {
  const n = ipToInt(ip);
  return ['02', '42', ...[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
