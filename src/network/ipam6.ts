/**
 * IPv6 address management for networks made with EnableIPv6 (`network create --ipv6`):
 * 128-bit CIDR arithmetic on bigints, a ULA /64 for a network given no IPv6 subnet
 * (fd00::/8, skipping every IPv6 route on the host), and address allocation inside it.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { randomBytes } from 'node:crypto';
import { invalidArgument } from '../common/errors';

export interface Cidr6 { base: bigint; prefix: number }

const ALL = (1n << 128n) - 1n;

export function ip6ToBig(ip: string): bigint {
  if (!net.isIPv6(ip) || ip.includes('%')) throw invalidArgument(`invalid IP address: ${ip}`);
  let text = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined ? (tail ? tail.split(':') : []) : [];
  const groups = tail !== undefined ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g, 16)), 0n);
}

/** The canonical text form (RFC 5952: lowercase, longest run of zero groups as `::`). */
export function bigToIp6(n: bigint): string {
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((n >> BigInt(i * 16)) & 0xffffn));
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

function mask6(prefix: number): bigint {
  return prefix === 0 ? 0n : (ALL << BigInt(128 - prefix)) & ALL;
}

/** Parses `addr/n`; the host bits are cleared, as Docker stores subnets. */
export function parseCidr6(s: string, what = 'subnet'): Cidr6 {
  const m = /^([0-9a-fA-F:.]+)\/(\d{1,3})$/.exec(String(s ?? '').trim());
  if (!m || Number(m[2]) > 128) throw invalidArgument(`invalid CIDR address: ${s}`);
  let base: bigint;
  try { base = ip6ToBig(m[1]!); } catch { throw invalidArgument(`invalid ${what}: ${s}`); }
  const prefix = Number(m[2]);
  return { base: base & mask6(prefix), prefix };
}

export function cidr6String(c: Cidr6): string {
  return `${bigToIp6(c.base)}/${c.prefix}`;
}

export function contains6(c: Cidr6, ip: bigint): boolean {
  return (ip & mask6(c.prefix)) === c.base;
}

export function overlaps6(a: Cidr6, b: Cidr6): boolean {
  const m = mask6(Math.min(a.prefix, b.prefix));
  return (a.base & m) === (b.base & m);
}

/** The host's IPv6 routes (/proc/net/ipv6_route) that could clash: not the default, link-local or multicast ones. */
export function hostRoutes6(text?: string): Cidr6[] {
  let t = text;
  if (t === undefined) {
    try { t = fs.readFileSync('/proc/net/ipv6_route', 'utf8'); } catch { return []; }
  }
  const out: Cidr6[] = [];
  for (const line of t.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 2 || !/^[0-9a-f]{32}$/.test(f[0]!)) continue;
    const c = { base: BigInt(`0x${f[0]}`), prefix: Number.parseInt(f[1]!, 16) };
    if (c.prefix === 0) continue;
    if (overlaps6(c, parseCidr6('fe80::/10')) || overlaps6(c, parseCidr6('ff00::/8'))) continue;
    out.push(c);
  }
  return out;
}

/**
 * A /64 of a random ULA prefix (fd00::/8 with 40 random bits, RFC 4193) that overlaps no
 * host route and no taken subnet. `random` is for tests.
 */
export function pickUlaSubnet(taken: Cidr6[], routes: Cidr6[] = hostRoutes6(), random: () => Buffer = () => randomBytes(7)): Cidr6 | undefined {
  for (let i = 0; i < 64; i++) {
    const r = random();
    let base = 0xfdn;
    for (let k = 0; k < 7; k++) base = (base << 8n) | BigInt(r[k]!);
    const c = { base: base << 64n, prefix: 64 };
    if (![...taken, ...routes].some((t) => overlaps6(t, c))) return c;
  }
  return undefined;
}

/** IPv6 addresses handed out in one network (gateway included). */
export class AddressPool6 {
  private readonly used = new Set<bigint>();
  private next: bigint;
  constructor(readonly subnet: Cidr6, readonly range: Cidr6 = subnet) {
    this.next = range.base + 1n;
  }

  reserve(ip: string): void { this.used.add(ip6ToBig(ip)); }
  release(ip: string): void { this.used.delete(ip6ToBig(ip)); }
  has(ip: string): boolean { return this.used.has(ip6ToBig(ip)); }

  /** The next free address of the range (the subnet-router anycast address excluded), round robin. */
  allocate(): string | undefined {
    const first = this.range.base;
    const count = 1n << BigInt(128 - this.range.prefix);
    const tries = count < 65_536n ? Number(count) : 65_536;
    for (let i = 0; i < tries; i++) {
      const cand = first + ((this.next - first + BigInt(i)) % count);
      if (cand === this.subnet.base || this.used.has(cand)) continue;
      this.used.add(cand);
      this.next = cand + 1n;
      return bigToIp6(cand);
    }
    return undefined;
  }
}
