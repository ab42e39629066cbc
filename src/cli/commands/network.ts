// Network commands: network create, ls, inspect, rm, connect, disconnect (network prune is in prune.ts).
import * as net from 'node:net';
import { ApiClient, CliError, filtersParam } from '../client';
import { forEachObject, type CommandDef } from '../context';
import { keyValueMap, type CommandSpec, type FlagSpec } from '../flags';
import { renderRows } from '../format';
import { inspectCmd } from './system';

const spec = (path: string, usage: string, description: string, flags: FlagSpec[], extra: Partial<CommandSpec> = {}): CommandSpec => ({ path, usage, description, flags, ...extra });

const create: CommandDef = {
  spec: spec('network create', 'network create [OPTIONS] NETWORK', 'Create a network', [
    { long: 'attachable', kind: 'bool', usage: 'Enable manual container attachment' },
    { long: 'aux-address', kind: 'list', usage: 'Auxiliary IPv4 or IPv6 addresses used by Network driver' },
    { long: 'driver', short: 'd', kind: 'string', def: 'bridge', usage: 'Driver to manage the Network' },
    { long: 'gateway', kind: 'list', usage: 'IPv4 or IPv6 Gateway for the master subnet' },
    { long: 'internal', kind: 'bool', usage: 'Restrict external access to the network' },
    { long: 'ip-range', kind: 'list', usage: 'Allocate container ip from a sub-range' },
    { long: 'ipam-driver', kind: 'string', def: 'default', usage: 'IP Address Management Driver' },
    { long: 'ipam-opt', kind: 'list', usage: 'Set IPAM driver specific options' },
    { long: 'ipv6', kind: 'bool', usage: 'Enable IPv6 networking' },
    { long: 'label', kind: 'list', usage: 'Set metadata on a network' },
    { long: 'opt', short: 'o', kind: 'list', usage: 'Set driver specific options' },
    { long: 'subnet', kind: 'list', usage: 'Subnet in CIDR format that represents a network segment' },
  ], { minArgs: 1, maxArgs: 1 }),
  async run(ctx, p) {
    const o = p.opts;
    const subnets = o.subnet as string[];
    const gateways = o.gateway as string[];
    const ranges = o['ip-range'] as string[];
    if (gateways.length > subnets.length || ranges.length > subnets.length) {
      throw new CliError('Error: every ip-range or gateway must have a corresponding subnet', 1);
    }
    // As the docker CLI: each gateway and ip-range goes with the subnet that contains it (IPv4 and IPv6 mixed).
    const config: Array<{ Subnet: string; IPRange?: string; Gateway?: string }> = subnets.map((s) => ({ Subnet: s }));
    const owner = (addr: string, what: string) => {
      const i = subnets.findIndex((s) => subnetContains(s, addr));
      if (i < 0) throw new CliError(`Error: no matching subnet for ${what} ${addr}`, 1);
      return config[i]!;
    };
    for (const r of ranges) {
      const c = owner(r.split('/')[0]!, 'range');
      if (c.IPRange) throw new CliError(`Error: cannot configure multiple ranges (${r}, ${c.IPRange}) on the same subnet (${c.Subnet})`, 1);
      c.IPRange = r;
    }
    for (const g of gateways) {
      const c = owner(g, 'gateway');
      if (c.Gateway) throw new CliError(`Error: cannot configure multiple gateways (${g}, ${c.Gateway}) for the same subnet (${c.Subnet})`, 1);
      c.Gateway = g;
    }
    const api = await ctx.api();
    const r = await api.json('POST', '/networks/create', {
      body: {
        Name: p.args[0], Driver: o.driver, Internal: !!o.internal, Attachable: !!o.attachable, EnableIPv6: !!o.ipv6,
        IPAM: { Driver: o['ipam-driver'], Options: keyValueMap(o['ipam-opt']), Config: config },
        Options: keyValueMap(o.opt), Labels: keyValueMap(o.label), CheckDuplicate: true,
      },
    });
    ctx.out(`${r.Id}\n`);
    return 0;
  },
};

/** One `network ls` row (formatter.networkContext). */
function networkRow(n: Record<string, any>, trunc: boolean): Record<string, unknown> {
  const labels: Record<string, string> = n.Labels ?? {};
  const row: Record<string, unknown> = {
    CreatedAt: String(n.Created ?? ''),
    Driver: String(n.Driver ?? ''),
    ID: trunc ? String(n.Id).slice(0, 12) : String(n.Id),
    IPv6: String(!!n.EnableIPv6),
    Internal: String(!!n.Internal),
    Labels: Object.keys(labels).map((k) => `${k}=${labels[k]}`).join(','),
    Name: String(n.Name ?? ''),
    Scope: String(n.Scope ?? ''),
  };
  Object.defineProperty(row, 'Label', { enumerable: false, value: (k: string) => labels[k] ?? '' });
  return row;
}

const networkHeaders: Record<string, string> = {
  ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE', IPv6: 'IPV6', Internal: 'INTERNAL', Labels: 'LABELS', Label: 'LABEL', CreatedAt: 'CREATED AT',
};

const ls: CommandDef = {
  spec: spec('network ls', 'network ls [OPTIONS]', 'List networks', [
    { long: 'filter', short: 'f', kind: 'list', valueName: 'filter', usage: "Provide filter values (e.g. 'driver=bridge')" },
    { long: 'format', kind: 'string', usage: 'Format output using a custom template' },
    { long: 'no-trunc', kind: 'bool', usage: 'Do not truncate the output' },
    { long: 'quiet', short: 'q', kind: 'bool', usage: 'Only display network IDs' },
  ], { maxArgs: 0, aliases: ['berth network ls', 'berth network list'] }),
  async run(ctx, p) {
    const o = p.opts;
    const api = await ctx.api();
    const nets = ((await api.get('/networks', { filters: filtersParam(o.filter) })) ?? []) as Array<Record<string, any>>;
    nets.sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
    let format: string = o.format;
    if (o.quiet && !format) format = '{{.ID}}';
    if (!format || format === 'table') format = 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}';
    ctx.out(renderRows(format, nets.map((n) => networkRow(n, !o['no-trunc'])), networkHeaders));
    return 0;
  },
};

const inspect: CommandDef = {
  spec: spec('network inspect', 'network inspect [OPTIONS] NETWORK [NETWORK...]', 'Display detailed information on one or more networks', [
    { long: 'format', short: 'f', kind: 'string', usage: 'Format output using a custom template' },
    { long: 'verbose', short: 'v', kind: 'bool', usage: 'Verbose output for diagnostics' },
  ], { minArgs: 1 }),
  run: (ctx, p) => inspectCmd(ctx, p.args, p.opts.format, false, 'network'),
};

const rm: CommandDef = {
  spec: spec('network rm', 'network rm NETWORK [NETWORK...]', 'Remove one or more networks', [
    { long: 'force', short: 'f', kind: 'bool', usage: 'Do not error if the network does not exist' },
  ], { minArgs: 1, aliases: ['berth network rm', 'berth network remove'] }),
  async run(ctx, p) {
    const api = await ctx.api();
    return forEachObject(ctx, p.args, async (name) => {
      const r = await api.request('DELETE', `/networks/${encodeURIComponent(name)}`, { allowError: true });
      if (r.status === 404 && p.opts.force) { r.res.resume(); return false; }
      if (r.status >= 400) throw await ApiClient.errorOf(r);
      r.res.resume();
    });
  },
};

const connect: CommandDef = {
  spec: spec('network connect', 'network connect [OPTIONS] NETWORK CONTAINER', 'Connect a container to a network', [
    { long: 'alias', kind: 'list', usage: 'Add network-scoped alias for the container' },
    { long: 'driver-opt', kind: 'list', usage: 'driver options for the network' },
    { long: 'ip', kind: 'string', usage: 'IPv4 address (e.g., "172.30.100.104")' },
    { long: 'ip6', kind: 'string', usage: 'IPv6 address (e.g., "2001:db8::33")' },
    { long: 'link', kind: 'list', usage: 'Add link to another container' },
  ], { minArgs: 2, maxArgs: 2 }),
  async run(ctx, p) {
    const o = p.opts;
    const api = await ctx.api();
    await api.json('POST', `/networks/${encodeURIComponent(p.args[0]!)}/connect`, {
      body: {
        Container: p.args[1],
        EndpointConfig: {
          ...(o.ip || o.ip6 ? { IPAMConfig: { ...(o.ip ? { IPv4Address: o.ip } : {}), ...(o.ip6 ? { IPv6Address: o.ip6 } : {}) } } : {}),
          Aliases: (o.alias as string[]).length ? o.alias : null,
          Links: (o.link as string[]).length ? o.link : null,
          DriverOpts: keyValueMap(o['driver-opt']),
        },
      },
    });
    return 0;
  },
};

const disconnect: CommandDef = {
  spec: spec('network disconnect', 'network disconnect [OPTIONS] NETWORK CONTAINER', 'Disconnect a container from a network', [
    { long: 'force', short: 'f', kind: 'bool', usage: 'Force the container to disconnect from a network' },
  ], { minArgs: 2, maxArgs: 2 }),
  async run(ctx, p) {
    const api = await ctx.api();
    await api.json('POST', `/networks/${encodeURIComponent(p.args[0]!)}/disconnect`, { body: { Container: p.args[1], Force: !!p.opts.force } });
    return 0;
  },
};

export const defs: Record<string, CommandDef> = { create, ls, inspect, rm, connect, disconnect };

/** Whether `addr` lies in `cidr` (either family); false for text that is not an address or a CIDR. */
function subnetContains(cidr: string, addr: string): boolean {
  const [base, bits] = cidr.split('/');
  const family = net.isIP(base ?? '');
  if (!family || family !== net.isIP(addr) || !/^\d+$/.test(bits ?? '')) return false;
  const list = new net.BlockList();
  const type = family === 4 ? 'ipv4' : 'ipv6';
  try { list.addSubnet(base!, Number(bits), type); } catch { return false; }
  return list.check(addr, type);
}
