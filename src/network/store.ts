/**
 * What the network area keeps on disk.
 *
 * - Networks (persistent): `<data-root>/networks/<id>.json`, the Engine API's Network
 *   object plus the bridge device name. Written atomically; a network exists once its file does.
 * - Sandboxes (one per container with its own network namespace, this boot only):
 *   `<exec-root>/net/<container id>.json` names every host object made for it (netns
 *   file, veth names, addresses, published ports). It is written BEFORE those objects
 *   are made, so after a crash start-up knows exactly what to remove or keep.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { readJsonIfExists, writeJsonAtomic } from '../common/atomic';

export interface IpamConfig { Subnet: string; IPRange?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> }

export interface NetworkRecord {
  Name: string;
  Id: string;
  Created: string;
  Scope: 'local';
  Driver: string;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: IpamConfig[] };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Options: Record<string, string>;
  Labels: Record<string, string>;
  /** Host bridge device ('' for host/null networks). */
  bridge: string;
}

export interface EndpointRecord {
  networkId: string;
  endpointId: string;
  /** Interface inside the container (eth0, eth1, ...). */
  ifName: string;
  /** Host end of the veth pair. */
  hostVeth: string;
  ip: string;
  /** IPv6 address on a network with EnableIPv6. */
  ip6?: string;
  mac: string;
  aliases: string[];
  /** --ip / --ip-range request as given (IPAMConfig in inspect). */
  ipamConfig: { IPv4Address?: string } | null;
  links: string[] | null;
}

export interface PortRecord {
  proto: 'tcp' | 'udp' | 'sctp';
  hostIp: string;
  hostPort: number;
  containerPort: number;
}

export interface SandboxRecord {
  containerId: string;
  /** Container name without the slash (embedded DNS, error messages). */
  name: string;
  netns: string;
  endpoints: EndpointRecord[];
  ports: PortRecord[];
  /** The container's own `--dns` servers: the embedded DNS forwards its other names there. */
  dns?: string[];
}

export class NetworkStore {
  readonly netDir: string;
  readonly sandboxDir: string;
  constructor(dataRoot: string, execRoot: string) {
    this.netDir = path.join(dataRoot, 'networks');
    this.sandboxDir = path.join(execRoot, 'net');
  }

  async init(): Promise<void> {
    await fsp.mkdir(this.netDir, { recursive: true, mode: 0o700 });
    await fsp.mkdir(this.sandboxDir, { recursive: true, mode: 0o700 });
  }

  async loadNetworks(): Promise<NetworkRecord[]> {
    return this.loadAll<NetworkRecord>(this.netDir);
  }

  saveNetwork(n: NetworkRecord): Promise<void> { return writeJsonAtomic(path.join(this.netDir, `${n.Id}.json`), n); }
  async deleteNetwork(id: string): Promise<void> { await fsp.rm(path.join(this.netDir, `${id}.json`), { force: true }); }

  async loadSandboxes(): Promise<SandboxRecord[]> {
    return this.loadAll<SandboxRecord>(this.sandboxDir);
  }

  /** Not fsynced: the exec root does not outlive a reboot, and a daemon crash keeps the page cache. */
  saveSandbox(s: SandboxRecord): Promise<void> {
    return writeJsonAtomic(path.join(this.sandboxDir, `${s.containerId}.json`), s, { durable: false });
  }

  async deleteSandbox(id: string): Promise<void> { await fsp.rm(path.join(this.sandboxDir, `${id}.json`), { force: true }); }

  private async loadAll<T>(dir: string): Promise<T[]> {
    const out: T[] = [];
    for (const f of await fsp.readdir(dir).catch(() => [] as string[])) {
      if (!f.endsWith('.json')) continue;
      const v = await readJsonIfExists<T>(path.join(dir, f)).catch(() => undefined);
      if (v) out.push(v);
    }
    return out;
  }
}
