/**
 * NetworkService: networks (bridge/host/none predefined, user-defined bridges with
 * IPAM) and the network side of containers: a namespace, veth pairs into bridges,
 * addresses, default route, published ports (kernel DNAT) and the embedded DNS.
 *
 * Host objects carry names derived from the data root (`b<tag>…` bridges, `v<tag>…`
 * veths, nftables table `berth-<tag>`), so two daemons never touch each other's.
 * Every object a container gets is named in its sandbox record before it is made
 * (store.ts); teardown, a failed start and start-up after a crash remove exactly those.
 *
 * Over 500 lines: network records, endpoint allocation and the sandbox lifecycle change the
 * same state under one lock, and every change must rewrite the firewall and DNS maps at once;
 * the parts that hold no state live beside it (ipam, ipam6, ports, firewall, dns, kernel).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileAtomicSync } from '../common/atomic';
import { BerthError, conflict, invalidArgument, notFound } from '../common/errors';
import { labelMatches } from '../common/labels';
import type { DaemonConfig } from '../engine/config';
import type { EventBus } from '../engine/events';
import type { NetworkAttachment, NetworkAttachRequest, NetworkService, NetworkUse } from '../engine/types';
import { Firewall, type PortRule } from './firewall';
import {
  AddressPool, cidrString, contains, ipToInt, intToIp, macForIp, overlaps, parseCidr, pickSubnet, poolCandidates, type Cidr,
} from './ipam';
import {
  AddressPool6, bigToIp6, cidr6String, contains6, ip6ToBig, overlaps6, parseCidr6, pickUlaSubnet, type Cidr6,
} from './ipam6';
import { addAddress6, createBridge, createNetns, deleteLink, hostLinks, plugVeth, removeNetns, setHairpin, writeSysctl } from './kernel';
import { PortHolder, portRequests, portsView } from './ports';
import { NetworkStore, type EndpointRecord, type IpamConfig, type NetworkRecord, type SandboxRecord } from './store';
import { addressBytes, EmbeddedDns, type DnsRecord } from './dns';

const PREDEFINED = ['bridge', 'host', 'none'];
const LIST_FILTERS = new Set(['dangling', 'driver', 'id', 'label', 'name', 'scope', 'type']);

interface Net {
  rec: NetworkRecord;
  subnet?: Cidr;
  pool?: AddressPool;
  /** EnableIPv6: the IPv6 subnet (IPAM.Config's entry with a `:`), its gateway and addresses. */
  subnet6?: Cidr6;
  gateway6?: string;
  pool6?: AddressPool6;
}

export class Networks implements NetworkService {
  readonly tag: string;
  private readonly store: NetworkStore;
  private readonly nets = new Map<string, Net>();
  private readonly sandboxes = new Map<string, SandboxRecord>();
  private readonly firewall: Firewall;
  private readonly ports = new PortHolder();
  /** Teardowns in flight, per container. */
  private readonly tearing = new Map<string, Promise<void>>();
  private readonly netnsDir: string;
  readonly dns: EmbeddedDns;
  /** Serialises changes of networks and sandboxes (short, in-memory sections). */
  private lock: Promise<unknown> = Promise.resolve();

  constructor(readonly config: DaemonConfig, readonly events: EventBus) {
    this.tag = hostObjectTag(config.dataRoot);
    this.store = new NetworkStore(config.dataRoot, config.execRoot);
    this.netnsDir = path.join(config.execRoot, 'netns');
    this.firewall = new Firewall(`berth-${this.tag}`, `b${this.tag}`, this.store.sandboxDir);
    this.dns = new EmbeddedDns(config, (netns) => this.resolverView(netns));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  bridgeName(networkId: string): string { return `b${this.tag}${networkId.slice(0, 8)}`; }
  private vethName(containerId: string, networkId: string): string {
    return `v${this.tag}${createHash('sha256').update(containerId + networkId).digest('hex').slice(0, 8)}`;
  }

  // ---- start-up --------------------------------------------------------------
  async init(): Promise<void> {
    await this.store.init();
    await fsp.mkdir(this.netnsDir, { recursive: true, mode: 0o711 });
    for (const rec of await this.store.loadNetworks()) this.addNet(rec);
    for (const name of PREDEFINED) {
      if (this.byName(name)) continue;
      const rec = this.newRecord(name, name === 'bridge' ? 'bridge' : name === 'host' ? 'host' : 'null');
      if (name === 'bridge') {
        const subnet = this.chooseSubnet(this.config.bip || undefined);
        rec.IPAM = { Driver: 'default', Options: null, Config: [{ Subnet: cidrString(subnet), Gateway: intToIp(subnet.base + 1) }] };
        rec.bridge = this.bridgeName(rec.Id);
        rec.Options = {
          'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.enable_icc': 'true',
          'com.docker.network.bridge.enable_ip_masquerade': 'true', 'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
          'com.docker.network.bridge.name': rec.bridge, 'com.docker.network.driver.mtu': '1500',
        };
      }
      await this.store.saveNetwork(rec);
      this.addNet(rec);
    }
  }

  /**
   * After a daemon start: keeps the sandboxes of containers still running (their ports
   * held again, DNS served again), removes every other host object of this data root
   * that no record keeps (a crash mid-start or mid-teardown), and renders the rule set.
   */
  async restore(running: Set<string>): Promise<void> {
    for (const sb of await this.store.loadSandboxes()) {
      if (running.has(sb.containerId)) {
        this.sandboxes.set(sb.containerId, sb);
        this.dns.changed();
        for (const ep of sb.endpoints) {
          this.nets.get(ep.networkId)?.pool?.reserve(ep.ip);
          if (ep.ip6) this.nets.get(ep.networkId)?.pool6?.reserve(ep.ip6);
        }
        await this.ports.rehold(sb.containerId, sb.ports);
        this.dns.serve(sb);
      } else {
        await this.teardown(sb);
      }
    }
    const keepVeths = new Set([...this.sandboxes.values()].flatMap((s) => s.endpoints.map((e) => e.hostVeth)));
    const keepBridges = new Set([...this.nets.values()].map((n) => n.rec.bridge).filter(Boolean));
    for (const link of hostLinks()) {
      if (link.startsWith(`v${this.tag}`) && !keepVeths.has(link)) deleteLink(link);
      if (link.startsWith(`b${this.tag}`) && !keepBridges.has(link)) deleteLink(link);
    }
    const keepNs = new Set([...this.sandboxes.values()].map((s) => s.netns));
    for (const f of await fsp.readdir(this.netnsDir).catch(() => [] as string[])) {
      const p = path.join(this.netnsDir, f);
      if (!keepNs.has(p)) await removeNetns(p);
    }
    await this.syncFirewall();
  }

  async shutdown(): Promise<void> {
    this.ports.releaseAll();
    this.dns.close();
  }

  // ---- networks ----------------------------------------------------------------
  private newRecord(name: string, driver: string): NetworkRecord {
    return {
      Name: name, Id: randomBytes(32).toString('hex'), Created: new Date().toISOString(), Scope: 'local', Driver: driver,
      EnableIPv6: false, IPAM: { Driver: 'default', Options: null, Config: [] }, Internal: false, Attachable: false,
      Ingress: false, ConfigFrom: { Network: '' }, ConfigOnly: false, Options: {}, Labels: {}, bridge: '',
    };
  }

  private addNet(rec: NetworkRecord): Net {
    const n: Net = { rec };
    const cfg = rec.IPAM.Config[0];
    const cfg6 = rec.EnableIPv6 ? rec.IPAM.Config.find((c) => c.Subnet.includes(':')) : undefined;
    if (cfg6) {
      n.subnet6 = parseCidr6(cfg6.Subnet);
      n.gateway6 = cfg6.Gateway;
      n.pool6 = new AddressPool6(n.subnet6, cfg6.IPRange ? parseCidr6(cfg6.IPRange) : n.subnet6);
      if (cfg6.Gateway) n.pool6.reserve(cfg6.Gateway);
    }
    if (cfg?.Subnet && !cfg.Subnet.includes(':')) {
      n.subnet = parseCidr(cfg.Subnet);
      n.pool = new AddressPool(n.subnet, cfg.IPRange ? parseCidr(cfg.IPRange) : n.subnet);
      if (cfg.Gateway) n.pool.reserve(cfg.Gateway);
      for (const ip of Object.values(cfg.AuxiliaryAddresses ?? {})) n.pool.reserve(ip);
    }
    this.nets.set(rec.Id, n);
    return n;
  }

  private chooseSubnet(fixed?: string): Cidr {
    if (fixed) return parseCidr(fixed);
    const taken = [...this.nets.values()].map((n) => n.subnet).filter((s): s is Cidr => !!s);
    const start = Number.parseInt(this.tag, 16);
    const got = pickSubnet(poolCandidates(start, this.config.defaultAddressPools), taken);
    if (!got) throw new BerthError('forbidden', 'could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network');
    return got;
  }

  private byName(name: string): Net | undefined {
    for (const n of this.nets.values()) if (n.rec.Name === name) return n;
    return undefined;
  }

  private find(ref: string): Net {
    const key = String(ref ?? '');
    const exact = this.nets.get(key) ?? this.byName(key);
    if (exact) return exact;
    if (/^[0-9a-f]+$/.test(key)) {
      const hits = [...this.nets.values()].filter((n) => n.rec.Id.startsWith(key));
      if (hits.length === 1) return hits[0]!;
      if (hits.length > 1) throw invalidArgument(`network ${key} is ambiguous (${hits.length} matches found based on ID prefix)`);
    }
    throw notFound(`network ${key} not found`);
  }

  private view(n: Net, verbose = false): any {
    const { bridge: _bridge, ...pub } = n.rec;
    const containers: Record<string, unknown> = {};
    for (const sb of this.sandboxes.values()) {
      for (const ep of sb.endpoints) {
        if (ep.networkId !== n.rec.Id) continue;
        containers[sb.containerId] = {
          Name: sb.name, EndpointID: ep.endpointId, MacAddress: ep.mac,
          IPv4Address: `${ep.ip}/${n.subnet?.prefix ?? 0}`, IPv6Address: ep.ip6 ? `${ep.ip6}/${n.subnet6?.prefix ?? 64}` : '',
        };
      }
    }
    void verbose;
    return JSON.parse(JSON.stringify({ ...pub, Containers: containers }));
  }

  private inUse(n: Net): boolean {
    for (const sb of this.sandboxes.values()) if (sb.endpoints.some((e) => e.networkId === n.rec.Id)) return true;
    return false;
  }

  async list(filters: Record<string, string[]> = {}): Promise<any[]> {
    for (const k of Object.keys(filters)) if (!LIST_FILTERS.has(k)) throw invalidArgument(`invalid filter '${k}'`);
    return [...this.nets.values()].filter((n) => this.matches(n, filters)).map((n) => this.view(n));
  }

  private matches(n: Net, f: Record<string, string[]>): boolean {
    const r = n.rec;
    const any = (k: string, test: (v: string) => boolean) => !f[k]?.length || f[k]!.some(test);
    const builtin = PREDEFINED.includes(r.Name);
    return any('name', (v) => r.Name.includes(v))
      && any('id', (v) => r.Id.startsWith(v))
      && any('driver', (v) => r.Driver === v)
      && any('scope', (v) => v === 'local')
      && any('type', (v) => {
        if (v !== 'custom' && v !== 'builtin') throw invalidArgument(`invalid filter: 'type'='${v}'`);
        return (v === 'builtin') === builtin;
      })
      && any('dangling', (v) => {
        if (!['true', 'false', '1', '0'].includes(v)) throw invalidArgument(`invalid filter 'dangling=${v}'`);
        return (v === 'true' || v === '1') === (!builtin && !this.inUse(n));
      })
      && (f.label ?? []).every((l) => labelMatches(r.Labels, l));
  }

  async inspect(ref: string, opts: { verbose?: boolean; scope?: string } = {}): Promise<any> {
    const n = this.find(ref);
    if (opts.scope && opts.scope !== 'local') throw notFound(`network ${ref} not found`);
    return this.view(n, opts.verbose);
  }

  async create(body: any): Promise<{ Id: string; Warning: string }> {
    return this.serial(async () => {
      const name = String(body?.Name ?? '');
      if (!name) throw invalidArgument('network name cannot be empty'); // Docker: 400
      const driver = String(body.Driver || 'bridge');
      if (PREDEFINED.includes(name) || this.byName(name)) {
        if (PREDEFINED.includes(name)) throw new BerthError('forbidden', `operation is not permitted on predefined ${name} network `);
        throw conflict(`network with name ${name} already exists`);
      }
      if (driver === 'host' || driver === 'null') throw new BerthError('forbidden', `only one instance of "${driver}" network is allowed`);
      if (driver !== 'bridge') throw notFound(`could not find plugin ${driver} in v1 plugin registry: plugin not found`);
      const ipamDriver = String(body.IPAM?.Driver || 'default');
      if (ipamDriver !== 'default') throw notFound(`could not find plugin ${ipamDriver} in v1 plugin registry: plugin not found`);
      const rec = this.newRecord(name, 'bridge');
      const configs: any[] = Array.isArray(body.IPAM?.Config) ? body.IPAM.Config : [];
      const v4 = configs.filter((c) => !String(c?.Subnet ?? '').includes(':'));
      if (v4.length > 1) throw invalidArgument('only one IPv4 subnet per network is supported');
      const cfg6 = this.ipv6Config(!!body.EnableIPv6, configs.filter((c) => String(c?.Subnet ?? '').includes(':')));
      const others = [...this.nets.values()].map((x) => x.subnet).filter((s): s is Cidr => !!s);
      let subnet: Cidr;
      const cfg: { Subnet: string; IPRange?: string; Gateway?: string; AuxiliaryAddresses?: Record<string, string> } = { Subnet: '' };
      if (v4[0]?.Subnet) {
        subnet = parseCidr(v4[0].Subnet);
        if (subnet.prefix > 30) throw invalidArgument(`invalid subnet ${v4[0].Subnet}: too small for a network`);
        if (others.some((o) => overlaps(o, subnet))) throw new BerthError('forbidden', 'Pool overlaps with other one on this address space');
      } else {
        if (v4[0]?.IPRange || v4[0]?.Gateway) throw invalidArgument('ip-range and gateway need a subnet');
        subnet = this.chooseSubnet();
      }
      cfg.Subnet = cidrString(subnet);
      if (v4[0]?.IPRange) {
        const range = parseCidr(v4[0].IPRange, 'ip-range');
        if (!contains(subnet, range.base) || range.prefix < subnet.prefix) throw invalidArgument(`invalid ip-range ${v4[0].IPRange}: not within subnet ${cfg.Subnet}`);
        cfg.IPRange = cidrString(range);
      }
      const gw = v4[0]?.Gateway ? String(v4[0].Gateway) : intToIp(subnet.base + 1);
      if (!contains(subnet, ipToInt(gw))) throw invalidArgument(`no matching subnet for gateway ${gw}`);
      cfg.Gateway = gw;
      const aux = v4[0]?.AuxiliaryAddresses ?? v4[0]?.AuxAddress;
      if (aux && Object.keys(aux).length) {
        for (const [k, ip] of Object.entries(aux)) {
          if (!contains(subnet, ipToInt(String(ip)))) throw invalidArgument(`invalid auxiliary address ${k}=${String(ip)}: not in subnet ${cfg.Subnet}`);
        }
        cfg.AuxiliaryAddresses = Object.fromEntries(Object.entries(aux).map(([k, v]) => [k, String(v)]));
      }
      rec.IPAM = { Driver: 'default', Options: body.IPAM?.Options ?? null, Config: cfg6 ? [cfg, cfg6] : [cfg] };
      rec.EnableIPv6 = !!cfg6;
      rec.Internal = !!body.Internal;
      rec.Attachable = !!body.Attachable;
      rec.Options = { ...(body.Options ?? {}) };
      rec.Labels = { ...(body.Labels ?? {}) };
      rec.bridge = this.bridgeName(rec.Id);
      // The record first: a crash after the bridge exists finds it named here (or removes it at start-up).
      await this.store.saveNetwork(rec);
      const n = this.addNet(rec);
      try {
        this.ensureBridge(n);
        await this.syncFirewall();
      } catch (err) {
        this.nets.delete(rec.Id);
        deleteLink(rec.bridge);
        await this.store.deleteNetwork(rec.Id);
        await this.syncFirewall().catch(() => undefined);
        throw err;
      }
      this.events.emitEvent('network', 'create', rec.Id, { name, type: 'bridge' });
      return { Id: rec.Id, Warning: '' };
    });
  }

  /**
   * The IPv6 entry of a new network's IPAM: the given subnet (checked as Docker checks the IPv4
   * one) or, with --ipv6 alone, a ULA /64 no host route and no other network uses.
   */
  private ipv6Config(enabled: boolean, v6: any[]): IpamConfig | undefined {
    if (!enabled) {
      if (v6.length) throw invalidArgument(`IPv6 subnet ${String(v6[0].Subnet)} given, but IPv6 is not enabled on the network (--ipv6)`);
      return undefined;
    }
    if (v6.length > 1) throw invalidArgument('only one IPv6 subnet per network is supported');
    const taken = [...this.nets.values()].map((x) => x.subnet6).filter((s): s is Cidr6 => !!s);
    let subnet: Cidr6;
    if (v6[0]?.Subnet) {
      subnet = parseCidr6(String(v6[0].Subnet));
      if (subnet.prefix > 126) throw invalidArgument(`invalid subnet ${String(v6[0].Subnet)}: too small for a network`);
      if (taken.some((o) => overlaps6(o, subnet))) throw new BerthError('forbidden', 'Pool overlaps with other one on this address space');
    } else {
      const got = pickUlaSubnet(taken);
      if (!got) throw new BerthError('forbidden', 'could not find an available, non-overlapping IPv6 address pool to assign to the network');
      subnet = got;
    }
    const cfg: IpamConfig = { Subnet: cidr6String(subnet) };
    if (v6[0]?.IPRange) {
      const range = parseCidr6(String(v6[0].IPRange), 'ip-range');
      if (!contains6(subnet, range.base) || range.prefix < subnet.prefix) throw invalidArgument(`invalid ip-range ${String(v6[0].IPRange)}: not within subnet ${cfg.Subnet}`);
      cfg.IPRange = cidr6String(range);
    }
    const gw = v6[0]?.Gateway ? String(v6[0].Gateway) : bigToIp6(subnet.base + 1n);
    if (!contains6(subnet, ip6ToBig(gw))) throw invalidArgument(`no matching subnet for gateway ${gw}`);
    cfg.Gateway = gw;
    return cfg;
  }

  async remove(ref: string): Promise<void> {
    return this.serial(async () => {
      const n = this.find(ref);
      if (PREDEFINED.includes(n.rec.Name)) throw new BerthError('forbidden', `${n.rec.Name} is a pre-defined network and cannot be removed`);
      if (this.inUse(n)) throw new BerthError('forbidden', `error while removing network: network ${n.rec.Name} id ${n.rec.Id} has active endpoints`);
      await this.store.deleteNetwork(n.rec.Id);
      this.nets.delete(n.rec.Id);
      if (n.rec.bridge) deleteLink(n.rec.bridge);
      await this.syncFirewall();
      this.events.emitEvent('network', 'destroy', n.rec.Id, { name: n.rec.Name, type: n.rec.Driver });
    });
  }

  async prune(filters: Record<string, string[]> = {}): Promise<{ NetworksDeleted: string[] | null }> {
    for (const k of Object.keys(filters)) if (!['until', 'label', 'label!'].includes(k)) throw invalidArgument(`invalid filter '${k}'`);
    const until = filters.until?.length ? untilTime(filters.until[filters.until.length - 1]!) : undefined;
    const deleted: string[] = [];
    for (const n of [...this.nets.values()]) {
      if (PREDEFINED.includes(n.rec.Name) || this.inUse(n)) continue;
      if (until !== undefined && Date.parse(n.rec.Created) >= until) continue;
      if (!(filters.label ?? []).every((l) => labelMatches(n.rec.Labels, l))) continue;
      if ((filters['label!'] ?? []).some((l) => labelMatches(n.rec.Labels, l))) continue;
      try {
        await this.remove(n.rec.Id);
        deleted.push(n.rec.Name);
      } catch { /* became used meanwhile */ }
    }
    return { NetworksDeleted: deleted.length ? deleted : null }; // dockerd's nil slice
  }

  // ---- containers ---------------------------------------------------------------
  /**
   * Checks a container's network settings at create and returns what the record keeps:
   * the mode ('bridge' for the default) and NetworkSettings.Networks (no addresses yet).
   */
  prepare(mode: string, endpointsConfig: Record<string, any> | null | undefined): NetworkUse {
    const m = mode === '' || mode === 'default' ? this.config.defaultNetwork : mode;
    // The docker CLI names the endpoint of the default network `default`.
    const configs: Record<string, any> = {};
    for (const [k, v] of Object.entries(endpointsConfig ?? {})) configs[k === 'default' || k === mode ? m : k] = v;
    if (m === 'none' || m === 'host' || m.startsWith('container:')) {
      if (m.startsWith('container:') && m.length === 'container:'.length) throw invalidArgument('invalid network mode: container:');
      if (Object.keys(configs).some((k) => k !== m) && m !== 'host') {
        throw invalidArgument(`conflicting options: cannot attach both user-defined and non-user-defined network-modes`);
      }
      const name = m.startsWith('container:') ? '' : m;
      return { mode: m, networks: name ? { [name]: this.staticEndpoint(this.byName(name)!, configs[name]) } : {} };
    }
    const primary = this.find(m);
    const networks: Record<string, any> = { [primary.rec.Name]: this.staticEndpoint(primary, configs[m] ?? configs[primary.rec.Name]) };
    for (const [ref, cfg] of Object.entries(configs)) {
      if (ref === m || ref === primary.rec.Name) continue;
      const n = this.find(ref);
      if (PREDEFINED.includes(n.rec.Name) && n.rec.Name !== 'bridge') throw invalidArgument(`container cannot be disconnected from host network or connected to host network`);
      networks[n.rec.Name] = this.staticEndpoint(n, cfg);
    }
    for (const [name, ep] of Object.entries(networks)) this.checkEndpointConfig(this.byName(name)!, ep);
    return { mode: primary.rec.Name === 'bridge' && m !== primary.rec.Id ? 'bridge' : m, networks };
  }

  private checkEndpointConfig(n: Net, ep: any): void {
    const want = ep.IPAMConfig?.IPv4Address;
    if (want) {
      if (n.rec.Name === 'bridge') throw invalidArgument('user specified IP address is supported on user defined networks only');
      if (!n.subnet || !contains(n.subnet, ipToInt(want))) throw invalidArgument(`no configured subnet or ip-range contain the IP address ${want}`);
    }
    const want6 = ep.IPAMConfig?.IPv6Address;
    if (want6) {
      if (n.rec.Name === 'bridge') throw invalidArgument('user specified IP address is supported on user defined networks only');
      let inside = false;
      try { inside = !!n.subnet6 && contains6(n.subnet6, ip6ToBig(want6)); } catch { /* not an address */ }
      if (!inside) throw invalidArgument(`no configured subnet or ip-range contain the IP address ${want6}`);
    }
    if ((ep.Aliases?.length ?? 0) > 0 && n.rec.Name === 'bridge') throw invalidArgument('network-scoped alias is supported only for containers in user defined networks');
  }

  staticEndpointFor(ref: string, cfg: any): { name: string; endpoint: any } {
    const n = this.find(ref);
    const endpoint = this.staticEndpoint(n, cfg);
    this.checkEndpointConfig(n, endpoint);
    return { name: n.rec.Name, endpoint };
  }

  /** An EndpointSettings without addresses (created or stopped container). */
  private staticEndpoint(n: Net, cfg: any): any {
    return {
      IPAMConfig: cfg?.IPAMConfig && Object.keys(cfg.IPAMConfig).length ? cfg.IPAMConfig : null,
      Links: cfg?.Links?.length ? cfg.Links : null,
      Aliases: cfg?.Aliases?.length ? cfg.Aliases : null,
      MacAddress: cfg?.MacAddress ?? '',
      DriverOpts: cfg?.DriverOpts ?? null,
      NetworkID: n.rec.Id,
      EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0,
      DNSNames: null,
    };
  }

  private ensureBridge(n: Net): void {
    if (!n.rec.bridge || !n.subnet) return;
    const gw = n.rec.IPAM.Config[0]?.Gateway ?? intToIp(n.subnet.base + 1);
    createBridge(n.rec.bridge, gw, n.subnet.prefix);
    if (n.subnet6 && n.gateway6) addAddress6(null, n.rec.bridge, n.gateway6, n.subnet6.prefix, null);
    if (!n.rec.Internal && this.config.ipForward) writeSysctl('/proc/sys/net/ipv4/ip_forward', '1');
  }

  /**
   * Gives a starting container its network: for bridge and user networks a new
   * namespace with one interface per network, its published ports and the DNS.
   * Undoes everything it made when any step fails.
   */
  async attach(req: NetworkAttachRequest): Promise<NetworkAttachment> {
    const mode = req.mode;
    if (mode === 'none' || mode === 'host' || mode.startsWith('container:')) {
      return { settings: settingsOf(undefined, req, [], this), etc: { defaults: this.dnsDefaults() } };
    }
    const sb: SandboxRecord = {
      containerId: req.containerId, name: req.name, netns: path.join(this.netnsDir, req.containerId.slice(0, 12)), endpoints: [], ports: [],
      dns: req.dns?.length ? [...req.dns] : undefined,
    };
    return this.serial(async () => {
      const names = Object.keys(req.networks);
      const nets = names.map((name) => this.find(req.networks[name].NetworkID || name));
      // Addresses and names first, recorded before anything exists on the host.
      let i = 0;
      for (const n of nets) {
        const cfg = req.networks[n.rec.Name] ?? {};
        sb.endpoints.push(this.planEndpoint(n, req, cfg, `eth${i++}`));
      }
      try {
        await this.store.saveSandbox(sb);
        createNetns(sb.netns);
        let gatewaySet = false;
        for (const ep of sb.endpoints) {
          const n = this.nets.get(ep.networkId)!;
          this.ensureBridge(n);
          const gw = !n.rec.Internal && !gatewaySet ? n.rec.IPAM.Config[0]!.Gateway! : null;
          if (gw) gatewaySet = true;
          plugVeth({ hostVeth: ep.hostVeth, ifName: ep.ifName, netns: sb.netns, bridge: n.rec.bridge, mac: ep.mac, ip: ep.ip, prefixLen: n.subnet!.prefix, gateway: gw });
          if (ep.ip6) addAddress6(sb.netns, ep.ifName, ep.ip6, n.subnet6!.prefix, gw ? n.gateway6 ?? null : null);
        }
        const reqs = portRequests(req.portBindings, req.exposedPorts, req.publishAll);
        if (reqs.length) {
          sb.ports = await this.ports.hold(req.containerId, req.name, sb.endpoints[0]!.endpointId, reqs);
          await this.store.saveSandbox(sb);
          if (sb.ports.length) setHairpin(sb.endpoints[0]!.hostVeth);
        }
        this.sandboxes.set(req.containerId, sb);
        this.dns.changed();
        if (sb.ports.length) await this.syncFirewall();
        if (nets.some((n) => n.rec.Name !== 'bridge')) this.dns.serve(sb);
        for (const n of nets) this.events.emitEvent('network', 'connect', n.rec.Id, { container: req.containerId, name: n.rec.Name, type: n.rec.Driver });
      } catch (err) {
        await this.teardown(sb);
        throw err;
      }
      return this.attachment(sb, req);
    });
  }

  private planEndpoint(n: Net, req: { containerId: string; name: string }, cfg: any, ifName: string): EndpointRecord {
    if (!n.pool || !n.rec.bridge) throw invalidArgument(`network ${n.rec.Name} has no address pool`);
    const want = cfg.IPAMConfig?.IPv4Address;
    let ip: string;
    if (want) {
      if (n.pool.has(want)) throw new BerthError('forbidden', `Address already in use`);
      n.pool.reserve(want);
      ip = want;
    } else {
      const got = n.pool.allocate();
      if (!got) throw new BerthError('forbidden', `no available IPv4 addresses on this network's address pools: ${n.rec.Name} (${n.rec.Id})`);
      ip = got;
    }
    let ip6: string | undefined;
    if (n.pool6) {
      const want6 = cfg.IPAMConfig?.IPv6Address;
      if (want6) {
        if (n.pool6.has(want6)) {
          n.pool.release(ip);
          throw new BerthError('forbidden', `Address already in use`);
        }
        n.pool6.reserve(want6);
        ip6 = want6;
      } else {
        ip6 = n.pool6.allocate();
        if (!ip6) {
          n.pool.release(ip);
          throw new BerthError('forbidden', `no available IPv6 addresses on this network's address pools: ${n.rec.Name} (${n.rec.Id})`);
        }
      }
    }
    return {
      networkId: n.rec.Id, endpointId: randomBytes(32).toString('hex'), ifName,
      hostVeth: this.vethName(req.containerId, n.rec.Id), ip, ip6, mac: cfg.MacAddress || macForIp(ip),
      aliases: [...(cfg.Aliases ?? [])], ipamConfig: cfg.IPAMConfig && Object.keys(cfg.IPAMConfig).length ? cfg.IPAMConfig : null,
      links: cfg.Links?.length ? cfg.Links : null,
    };
  }

  private attachment(sb: SandboxRecord, req: NetworkAttachRequest): NetworkAttachment {
    const first = sb.endpoints[0];
    const firstNet = first ? this.nets.get(first.networkId) : undefined;
    const userNet = sb.endpoints.some((e) => this.nets.get(e.networkId)?.rec.Name !== 'bridge');
    return {
      netnsPath: sb.netns,
      settings: settingsOf(sb, req, sb.ports, this),
      etc: {
        ip: first?.ip,
        ip6: first?.ip6,
        hostGatewayIp: firstNet?.rec.IPAM.Config[0]?.Gateway,
        nameservers: userNet ? ['127.0.0.11'] : undefined,
        defaults: this.dnsDefaults(),
      },
    };
  }

  private dnsDefaults(): { dns: string[]; dnsSearch: string[]; dnsOptions: string[] } {
    return { dns: this.config.dns ?? [], dnsSearch: this.config.dnsSearch ?? [], dnsOptions: this.config.dnsOptions ?? [] };
  }

  /**
   * Removes a container's network: ports, veths, namespace, record. Idempotent; a second
   * call gets the teardown in flight. The container leaves the network (endpoints, names,
   * ports) at once, before the first await, so `network rm` right after the container
   * exited never sees it; the host objects go in the background.
   */
  detach(containerId: string): Promise<void> {
    const busy = this.tearing.get(containerId);
    if (busy) return busy;
    const sb = this.sandboxes.get(containerId);
    if (!sb) return Promise.resolve();
    this.sandboxes.delete(containerId);
    this.dns.forget(sb);
    this.dns.changed();
    this.ports.release(containerId);
    for (const ep of sb.endpoints) {
      const n = this.nets.get(ep.networkId);
      if (n) this.events.emitEvent('network', 'disconnect', n.rec.Id, { container: containerId, name: n.rec.Name, type: n.rec.Driver });
    }
    const gone = this.serial(() => this.teardown(sb)).finally(() => this.tearing.delete(containerId));
    this.tearing.set(containerId, gone);
    return gone;
  }

  private async teardown(sb: SandboxRecord): Promise<void> {
    this.sandboxes.delete(sb.containerId);
    this.dns.forget(sb);
    this.dns.changed();
    this.ports.release(sb.containerId);
    for (const ep of sb.endpoints) {
      this.nets.get(ep.networkId)?.pool?.release(ep.ip);
      if (ep.ip6) this.nets.get(ep.networkId)?.pool6?.release(ep.ip6);
    }
    // No RTM_DELLINK here: deleting a veth blocks the caller 10-60 ms (the kernel waits for an RCU grace
    // period) and this runs on the event loop. Once the namespace's last reference (its bind mount; its
    // processes are gone) is dropped, the kernel destroys the veth pair itself, in its own worker.
    await removeNetns(sb.netns);
    if (sb.ports.length) await this.syncFirewall().catch(() => undefined);
    await this.store.deleteSandbox(sb.containerId);
  }

  /** Joins a running container to one more network (a new interface appears at once). */
  async connect(containerId: string, netRef: string, cfg: any, req: NetworkAttachRequest): Promise<any> {
    return this.serial(async () => {
      const sb = this.sandboxes.get(containerId);
      const n = this.find(netRef);
      if (!sb) throw new BerthError('forbidden', `container sharing network namespace with another container or host cannot be connected to any other network`);
      if (sb.endpoints.some((e) => e.networkId === n.rec.Id)) throw new BerthError('forbidden', `endpoint with name ${sb.name} already exists in network ${n.rec.Name}`);
      if (PREDEFINED.includes(n.rec.Name) && n.rec.Name !== 'bridge') throw new BerthError('forbidden', `container cannot be disconnected from host network or connected to host network`);
      this.checkEndpointConfig(n, this.staticEndpoint(n, cfg));
      const used = new Set(sb.endpoints.map((e) => e.ifName));
      let k = 0;
      while (used.has(`eth${k}`)) k++;
      const ep = this.planEndpoint(n, { containerId, name: sb.name }, cfg ?? {}, `eth${k}`);
      sb.endpoints.push(ep);
      try {
        await this.store.saveSandbox(sb);
        this.ensureBridge(n);
        plugVeth({ hostVeth: ep.hostVeth, ifName: ep.ifName, netns: sb.netns, bridge: n.rec.bridge, mac: ep.mac, ip: ep.ip, prefixLen: n.subnet!.prefix, gateway: null });
        if (ep.ip6) addAddress6(sb.netns, ep.ifName, ep.ip6, n.subnet6!.prefix, null);
      } catch (err) {
        sb.endpoints.pop();
        n.pool?.release(ep.ip);
        if (ep.ip6) n.pool6?.release(ep.ip6);
        await this.store.saveSandbox(sb).catch(() => undefined);
        throw err;
      }
      this.dns.changed();
      if (n.rec.Name !== 'bridge') this.dns.serve(sb);
      this.events.emitEvent('network', 'connect', n.rec.Id, { container: containerId, name: n.rec.Name, type: n.rec.Driver });
      return settingsOf(sb, req, sb.ports, this).Networks[n.rec.Name];
    });
  }

  /** Takes a running container off a network (its interface goes at once). */
  async disconnect(containerId: string, netRef: string): Promise<void> {
    return this.serial(async () => {
      const n = this.find(netRef);
      const sb = this.sandboxes.get(containerId);
      const ep = sb?.endpoints.find((e) => e.networkId === n.rec.Id);
      if (!sb || !ep) return;
      deleteLink(ep.hostVeth);
      n.pool?.release(ep.ip);
      if (ep.ip6) n.pool6?.release(ep.ip6);
      sb.endpoints = sb.endpoints.filter((e) => e !== ep);
      this.dns.changed();
      await this.store.saveSandbox(sb);
      this.dns.serve(sb);
    });
  }

  /** Emits a connect/disconnect event (also for stopped containers, as Docker does). */
  emitMembership(action: 'connect' | 'disconnect', netRef: string, containerId: string): void {
    const n = this.find(netRef);
    this.events.emitEvent('network', action, n.rec.Id, { container: containerId, name: n.rec.Name, type: n.rec.Driver });
  }

  /** Resolves a network reference to its record (name, id, driver). */
  resolve(ref: string): { Id: string; Name: string; Driver: string; Internal: boolean } {
    const n = this.find(ref);
    return { Id: n.rec.Id, Name: n.rec.Name, Driver: n.rec.Driver, Internal: n.rec.Internal };
  }

  /** The rx/tx networks map of `stats` is read by the container service from /proc; this names the interfaces. */
  sandboxOf(containerId: string): SandboxRecord | undefined { return this.sandboxes.get(containerId); }

  netName(id: string): string { return this.nets.get(id)?.rec.Name ?? ''; }
  netPrefix(id: string): number { return this.nets.get(id)?.subnet?.prefix ?? 0; }
  netGateway(id: string): string { return this.nets.get(id)?.rec.IPAM.Config[0]?.Gateway ?? ''; }
  netIpv6(id: string): { gateway: string; prefix: number } {
    const n = this.nets.get(id);
    return { gateway: n?.gateway6 ?? '', prefix: n?.subnet6?.prefix ?? 0 };
  }

  /**
   * What the embedded DNS answers inside one namespace: names on the networks it shares
   * (built once per membership change: EmbeddedDns keeps it until changed()).
   */
  private resolverView(netns: string): Map<string, DnsRecord> {
    const names = new Map<string, DnsRecord>();
    let self: SandboxRecord | undefined;
    for (const s of this.sandboxes.values()) if (s.netns === netns) self = s;
    if (!self) return names;
    const mine = new Set(self.endpoints.map((e) => e.networkId).filter((id) => this.nets.get(id)?.rec.Name !== 'bridge'));
    const add = (name: string, ep: EndpointRecord) => {
      const key = name.toLowerCase();
      if (!names.has(key)) names.set(key, { v4: addressBytes(ep.ip), v6: ep.ip6 ? addressBytes(ep.ip6) : undefined });
    };
    // Links on user networks are aliases the linking container alone resolves: `target[:alias]`.
    for (const ep of self.endpoints) {
      if (!mine.has(ep.networkId)) continue;
      for (const link of ep.links ?? []) {
        const [target, alias] = link.replace(/^\//, '').split(':');
        const other = [...this.sandboxes.values()].find((s) => s.name === target || s.containerId.startsWith(target!));
        const oep = other?.endpoints.find((e) => e.networkId === ep.networkId);
        if (!oep) continue;
        add(target!, oep);
        if (alias) add(alias.replace(/^.*\//, ''), oep);
      }
    }
    for (const sb of this.sandboxes.values()) {
      for (const ep of sb.endpoints) {
        if (!mine.has(ep.networkId)) continue;
        for (const name of [sb.name, sb.containerId.slice(0, 12), ...ep.aliases]) add(name, ep);
      }
    }
    return names;
  }

  private async syncFirewall(): Promise<void> {
    const bridges = [...this.nets.values()].filter((n) => n.rec.bridge && n.subnet).map((n) => ({
      bridge: n.rec.bridge, subnet: cidrString(n.subnet!), subnet6: n.subnet6 ? cidr6String(n.subnet6) : undefined, internal: n.rec.Internal,
    }));
    const rules: PortRule[] = [];
    for (const sb of this.sandboxes.values()) {
      const ep = sb.endpoints[0];
      if (!ep) continue;
      for (const p of sb.ports) rules.push({ proto: p.proto, hostIp: p.hostIp, hostPort: p.hostPort, containerIp: ep.ip, containerPort: p.containerPort });
    }
    await this.firewall.apply(bridges, rules);
  }
}

/** NetworkSettings as Docker reports it for a container (addresses only while it runs). */
function settingsOf(sb: SandboxRecord | undefined, req: NetworkAttachRequest, ports: SandboxRecord['ports'], svc: Networks): any {
  const networks: Record<string, any> = {};
  for (const [name, ep] of Object.entries(req.networks)) networks[name] = { ...ep };
  let top: any = { EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, MacAddress: '' };
  for (const ep of sb?.endpoints ?? []) {
    const name = svc.netName(ep.networkId);
    const gw = svc.netGateway(ep.networkId);
    const prefix = svc.netPrefix(ep.networkId);
    const v6 = svc.netIpv6(ep.networkId);
    networks[name] = {
      ...(networks[name] ?? {}),
      IPAMConfig: ep.ipamConfig, Links: ep.links, Aliases: ep.aliases.length ? ep.aliases : null, MacAddress: ep.mac, DriverOpts: networks[name]?.DriverOpts ?? null,
      NetworkID: ep.networkId, EndpointID: ep.endpointId, Gateway: gw, IPAddress: ep.ip, IPPrefixLen: prefix,
      IPv6Gateway: ep.ip6 ? v6.gateway : '', GlobalIPv6Address: ep.ip6 ?? '', GlobalIPv6PrefixLen: ep.ip6 ? v6.prefix : 0,
      DNSNames: name === 'bridge' ? null : [req.name, req.containerId.slice(0, 12), ...ep.aliases],
    };
    if (name === 'bridge') top = { EndpointID: ep.endpointId, Gateway: gw, IPAddress: ep.ip, IPPrefixLen: prefix, MacAddress: ep.mac };
  }
  return {
    Bridge: '', SandboxID: sb ? createHash('sha256').update(sb.netns).digest('hex') : '', SandboxKey: sb?.netns ?? '',
    Ports: sb ? portsView(ports, req.exposedPorts) : {}, HairpinMode: false, LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0,
    SecondaryIPAddresses: null, SecondaryIPv6Addresses: null,
    EndpointID: top.EndpointID, Gateway: top.Gateway, GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0,
    IPAddress: top.IPAddress, IPPrefixLen: top.IPPrefixLen, IPv6Gateway: '', MacAddress: top.MacAddress,
    Networks: networks,
  };
}

function untilTime(v: string): number {
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v) * 1000;
  const m = /^(\d+)(s|m|h)$/.exec(v);
  if (m) return Date.now() - Number(m[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 's' | 'm' | 'h'];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw invalidArgument(`invalid filter 'until=${v}'`);
  return t;
}

export async function createNetworkService(config: DaemonConfig, events: EventBus): Promise<Networks> {
  const svc = new Networks(config, events);
  await svc.init();
  return svc;
}

/**
 * The tag in the names of host objects (bridges, veths, the nftables table): made once from the
 * data root's path and kept inside it, so a data root that is moved (the notes' `graph` recipe)
 * still finds, reuses and cleans up what it made instead of leaving a stale table behind.
 */
function hostObjectTag(dataRoot: string): string {
  const file = path.join(dataRoot, 'networks', 'host-tag');
  try {
    const kept = fs.readFileSync(file, 'utf8').trim();
    if (/^[0-9a-f]{5}$/.test(kept)) return kept;
  } catch { /* first start of this data root */ }
  const tag = createHash('sha256').update(path.resolve(dataRoot)).digest('hex').slice(0, 5);
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  writeFileAtomicSync(file, `${tag}\n`);
  return tag;
}
