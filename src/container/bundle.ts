/**
 * Writes a container's OCI bundle at start: /etc files, the user, and
 * config.json from the OCI spec builder (runtime/spec.ts). The bundle lives in the exec root
 * (re-creatable), so config.json is written without fsync.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { buildOciSpec, checkSpecInput, serializeOciSpec, type OciResources } from '../runtime/spec';
import { hostConfigMountPoints } from './binds';
import { resolveArgs } from './runconfig';
import { resolveUser } from '../runtime/user';
import { buildEtcFiles } from './etcfiles';
import type { ContainerRecord } from './store';
import type { NetworkAttachment } from '../engine/types';

/** The container's cgroup below the daemon's cgroup parent (`--cgroup-parent`, default /berth). */
function cgroupsPath(parent: string, id: string): string { return `${parent.replace(/\/+$/, '')}/${id}`; }

/**
 * The spec builder's checks at create time (and update), so bad HostConfig values fail
 * with 400 there, without building a spec; returns the cgroup resources they give.
 */
export function validateSpec(id: string, config: any, hostConfig: any, cgroupParent: string): OciResources {
  return checkSpecInput({
    containerId: id, rootfsPath: '/nonexistent', args: resolveArgs(config), env: config.Env ?? [],
    cwd: config.WorkingDir || '/', user: { uid: 0, gid: 0 }, terminal: !!config.Tty,
    hostname: config.Hostname, domainname: config.Domainname, hostConfig,
    cgroupsPath: cgroupsPath(cgroupParent, id), prepareHostPaths: false, mountPoints: hostConfigMountPoints(hostConfig),
    // The namespace of a container:<x> network mode is only known at start.
    netnsPath: String(hostConfig.NetworkMode ?? '').startsWith('container:') ? '/proc/self/ns/net' : undefined,
  }).resources;
}

/** The /etc files the spec bind-mounts; needs no rootfs, so start writes them while mounting. */
export async function writeEtcFiles(rec: ContainerRecord, net: NetworkAttachment['etc'] = {}, extraHosts: string[] = []): Promise<void> {
  const cfg = rec.Config;
  const hc = rec.HostConfig;
  const etc = buildEtcFiles({
    hostname: cfg.Hostname, domainname: cfg.Domainname, networkMode: hc.NetworkMode,
    extraHosts: [...(hc.ExtraHosts ?? []), ...extraHosts],
    // The daemon's dns/dns-search/dns-opts stand in for what the container does not name, as dockerd's.
    dns: hc.Dns?.length ? hc.Dns : net.defaults?.dns, dnsSearch: hc.DnsSearch?.length ? hc.DnsSearch : net.defaults?.dnsSearch,
    dnsOptions: hc.DnsOptions?.length ? hc.DnsOptions : net.defaults?.dnsOptions,
    ip: net.ip, ip6: net.ip6, hostGatewayIp: net.hostGatewayIp, embeddedDns: net.nameservers,
  });
  // Regenerated at every start and not yet mounted anywhere: plain writes (no fsync) keep start fast.
  await Promise.all([
    fsp.writeFile(rec.HostnamePath, etc.hostname),
    fsp.writeFile(rec.HostsPath, etc.hosts),
    fsp.writeFile(rec.ResolvConfPath, etc.resolvConf),
  ]);
}

/** config.json; the user is resolved from the mounted rootfs. */
export async function writeSpec(rec: ContainerRecord, bundle: string, rootfs: string, cgroupParent: string, netnsPath?: string, linkEnv: string[] = []): Promise<void> {
  const cfg = rec.Config;
  const hc = rec.HostConfig;
  const user = resolveUser(rootfs, cfg.User ?? '', hc.GroupAdd ?? []);
  const spec = buildOciSpec({
    containerId: rec.Id, rootfsPath: rootfs, args: [rec.Path, ...rec.Args], env: [...linkEnv, ...(cfg.Env ?? [])],
    cwd: cfg.WorkingDir || '/', user, terminal: !!cfg.Tty,
    consoleSize: Array.isArray(hc.ConsoleSize) && hc.ConsoleSize[0] > 0 ? { height: hc.ConsoleSize[0], width: hc.ConsoleSize[1] } : undefined,
    hostname: cfg.Hostname, domainname: cfg.Domainname, hostConfig: hc,
    etcFiles: { hostname: rec.HostnamePath, hosts: rec.HostsPath, resolvConf: rec.ResolvConfPath },
    cgroupsPath: cgroupsPath(cgroupParent, rec.Id),
    // Records made before Mounts were recorded have [] here and fall back to HostConfig.Binds.
    mountPoints: rec.Mounts?.length ? rec.Mounts : hostConfigMountPoints(hc),
    netnsPath,
  });
  await fsp.writeFile(path.join(bundle, 'config.json'), serializeOciSpec(spec), { mode: 0o600 });
}
