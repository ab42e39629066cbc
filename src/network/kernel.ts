/**
 * Host network objects: network namespaces, bridges, veth pairs, sysctls.
 * All synchronous calls into native/berth-net.c (no ip(8) spawns on a container start).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { loadNativeAddon, MNT_DETACH, umount2 } from '../common/linux';

interface BerthNet {
  netnsCreate(path: string): void;
  bridgeCreate(name: string, addr: string, prefixLen: number): void;
  vethCreate(hostName: string, peerName: string, netnsPath: string, bridge: string): void;
  netnsConfigure(netnsPath: string, ifName: string, mac: string | null, addr: string, prefixLen: number, gateway: string | null): void;
  linkDelete(name: string, netnsPath?: string | null): boolean;
  netnsSocket(netnsPath: string, stream: boolean, addr: string, port: number): number;
  addr6Add(netnsPath: string | null, ifName: string, addr: string, prefixLen: number, gateway: string | null): void;
}

let addon: BerthNet | undefined;
function sys(): BerthNet {
  addon ??= loadNativeAddon<BerthNet>('berth-net');
  return addon;
}

/** A new network namespace (loopback up) bind-mounted on `file`. */
export function createNetns(file: string): void {
  fs.writeFileSync(file, '', { mode: 0o444 });
  try {
    sys().netnsCreate(file);
  } catch (err) {
    fs.rmSync(file, { force: true });
    throw err;
  }
}

/** Unmounts and removes a namespace file; the namespace goes with its last process. */
export async function removeNetns(file: string): Promise<void> {
  await umount2(file, MNT_DETACH).catch(() => undefined);
  await fsp.rm(file, { force: true });
}

export function createBridge(name: string, gateway: string, prefixLen: number): void {
  sys().bridgeCreate(name, gateway, prefixLen);
  // Published ports reached on 127.0.0.1 are DNATed out of this bridge with a loopback source.
  writeSysctl(`/proc/sys/net/ipv4/conf/${name}/route_localnet`, '1');
}

/** Creates the pair, host end on the bridge and up, peer `ifName` inside the namespace, configured. */
export function plugVeth(o: { hostVeth: string; ifName: string; netns: string; bridge: string; mac: string; ip: string; prefixLen: number; gateway: string | null }): void {
  const s = sys();
  try {
    s.vethCreate(o.hostVeth, o.ifName, o.netns, o.bridge);
  } catch (err) {
    // A pair left by a crash (its namespace gone) has the same name: remove it and try once more.
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    s.linkDelete(o.hostVeth);
    s.vethCreate(o.hostVeth, o.ifName, o.netns, o.bridge);
  }
  try {
    s.netnsConfigure(o.netns, o.ifName, o.mac, o.ip, o.prefixLen, o.gateway);
  } catch (err) {
    s.linkDelete(o.hostVeth);
    throw err;
  }
}

/**
 * Lets the bridge send a frame back out of the port it came in on: a container reaching its own
 * published port through the host is DNATed to itself, and with br_netfilter that is bridged at L2.
 */
export function setHairpin(hostVeth: string): void {
  writeSysctl(`/sys/class/net/${hostVeth}/brport/hairpin_mode`, '1');
}

/** An IPv6 address on a link (inside `netns`, or the host's when null), usable at once (no DAD); a default route through `gateway`. */
export function addAddress6(netns: string | null, ifName: string, addr: string, prefixLen: number, gateway: string | null): void {
  sys().addr6Add(netns, ifName, addr, prefixLen, gateway);
}

/** Removes a link by name; false when there was none. */
export function deleteLink(name: string): boolean {
  return sys().linkDelete(name);
}

/** Names of the host's links (from /sys/class/net). */
export function hostLinks(): string[] {
  try { return fs.readdirSync('/sys/class/net'); } catch { return []; }
}

/** A non-blocking socket bound inside the namespace (for the embedded DNS server). */
export function netnsSocket(netns: string, stream: boolean, addr: string, port: number): number {
  return sys().netnsSocket(netns, stream, addr, port);
}

export function writeSysctl(file: string, value: string): void {
  try {
    if (fs.readFileSync(file, 'utf8').trim() === value) return;
  } catch { /* absent: the write below reports it */ }
  fs.writeFileSync(file, value);
}
