/**
 * The container's /etc/hostname, /etc/hosts and /etc/resolv.conf, built as
 * Docker (libnetwork etchosts/resolvconf) builds them. The content builders
 * are pure; writeEtcFiles puts them in the container's directory, and the
 * OCI spec bind-mounts them (see runtime/spec.ts etcFiles).
 *
 * Usage:
 *   const files = await writeEtcFiles(containerDir, buildEtcFiles({
 *     hostname: config.Hostname, domainname: config.Domainname,
 *     networkMode: hostConfig.NetworkMode, extraHosts: hostConfig.ExtraHosts,
 *     dns: hostConfig.Dns, dnsSearch: hostConfig.DnsSearch, dnsOptions: hostConfig.DnsOptions,
 *   }));
 *   // files = { hostname: '<dir>/hostname', hosts: '<dir>/hosts', resolvConf: '<dir>/resolv.conf' }
 *
 * Nothing here queries DNS: the 8.8.8.8 fallback only ends up in the file.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { writeFileAtomic } from '../common/atomic';
import { invalidArgument } from '../common/errors';

export const DEFAULT_HOSTS_ENTRIES: ReadonlyArray<[string, string]> = [
  ['127.0.0.1', 'localhost'],
  ['::1', 'localhost ip6-localhost ip6-loopback'],
  ['fe00::0', 'ip6-localnet'],
  ['ff00::0', 'ip6-mcastprefix'],
  ['ff02::1', 'ip6-allnodes'],
  ['ff02::2', 'ip6-allrouters'],
];

export const DEFAULT_DNS_FALLBACK = ['8.8.8.8', '8.8.4.4'];

export function hostnameFileContent(hostname: string): string {
  return `${hostname}\n`;
}

/**
 * Parses `--add-host` values (`name:ip`, `name:::1`, `name:host-gateway`)
 * into [ip, name] pairs. `host-gateway` needs the daemon's gateway address.
 */
export function parseExtraHosts(extraHosts: readonly string[] | null | undefined, hostGatewayIp?: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const eh of extraHosts ?? []) {
    const i = eh.indexOf(':');
    // Docker also accepts `name=ip` (CLI 25+ sends either form).
    const j = i < 0 ? eh.indexOf('=') : i;
    if (j <= 0) throw invalidArgument(`bad format for add-host: ${JSON.stringify(eh)}`);
    const name = eh.slice(0, j);
    let ip = eh.slice(j + 1);
    if (ip.startsWith('[') && ip.endsWith(']')) ip = ip.slice(1, -1);
    if (ip === 'host-gateway') {
      if (!hostGatewayIp) throw invalidArgument('unable to derive the IP value for host-gateway');
      ip = hostGatewayIp;
    }
    if (net.isIP(ip) === 0) throw invalidArgument(`invalid IP address in add-host: ${JSON.stringify(ip)}`);
    out.push([ip, name]);
  }
  return out;
}

export interface HostsOptions {
  hostname: string;
  domainname?: string;
  /** The container's address on its network (bridge); none for `none`/`host`. */
  ip?: string;
  /** Its IPv6 address there, on a network with IPv6 (a second line, as Docker writes). */
  ip6?: string;
  extraHosts?: readonly string[] | null;
  hostGatewayIp?: string;
  networkMode?: string;
  /** The host's /etc/hosts text, used for --network host (default: read /etc/hosts). */
  hostHostsText?: string;
}

/** /etc/hosts: Docker's default entries, --add-host lines, then the container's own address. */
export function hostsFileContent(o: HostsOptions): string {
  const extra = parseExtraHosts(o.extraHosts, o.hostGatewayIp);
  const lines: string[] = [];
  if (o.networkMode === 'host') {
    // Docker shares the host's hosts file with --network host.
    let text = o.hostHostsText ?? readOr('/etc/hosts', DEFAULT_HOSTS_ENTRIES.map(([a, b]) => `${a}\t${b}`).join('\n') + '\n');
    if (text !== '' && !text.endsWith('\n')) text += '\n';
    return text + extra.map(([ip, name]) => `${ip}\t${name}\n`).join('');
  }
  for (const [ip, names] of DEFAULT_HOSTS_ENTRIES) lines.push(`${ip}\t${names}`);
  for (const [ip, name] of extra) lines.push(`${ip}\t${name}`);
  if (o.ip) {
    const fqdn = o.domainname ? `${o.hostname}.${o.domainname}` : o.hostname;
    const short = fqdn.includes('.') ? ` ${fqdn.slice(0, fqdn.indexOf('.'))}` : '';
    lines.push(`${o.ip}\t${fqdn}${short}`);
    if (o.ip6) lines.push(`${o.ip6}\t${fqdn}${short}`);
  }
  return lines.join('\n') + '\n';
}

export interface ResolvConfOptions {
  dns?: readonly string[] | null;
  dnsSearch?: readonly string[] | null;
  dnsOptions?: readonly string[] | null;
  networkMode?: string;
  /** User-defined networks: the embedded DNS server's address(es) (127.0.0.11), which replace every nameserver. */
  embeddedDns?: readonly string[];
  /** The host's resolv.conf text (default: read it, preferring systemd-resolved's upstream file). */
  hostResolvConfText?: string;
}

const LOCALHOST_NS = /^\s*nameserver\s*((127\.\d{1,3}\.\d{1,3}\.\d{1,3})|(::1))\s*$\n?/gm;
const IPV6_NS = /^\s*nameserver\s*[0-9a-fA-F]*:[0-9a-fA-F:.%a-zA-Z]*\s*$\n?/gm;

function linesWith(text: string, keyword: string): string[][] {
  return text.split('\n')
    .map((l) => l.replace(/[#;].*$/, '').trim().split(/\s+/))
    .filter((f) => f[0] === keyword)
    .map((f) => f.slice(1));
}

export function nameserversOf(text: string): string[] { return linesWith(text, 'nameserver').map((f) => f[0] ?? '').filter(Boolean); }
export function searchDomainsOf(text: string): string[] { const l = linesWith(text, 'search'); return l.length ? l[l.length - 1]! : []; }
export function optionsOf(text: string): string[] { const l = linesWith(text, 'options'); return l.length ? l[l.length - 1]! : []; }

/**
 * Docker's FilterResolvDNS: drops localhost nameservers (unreachable from a
 * container's own network namespace) and IPv6 ones (no IPv6 networking
 * here); if none remain, the 8.8.8.8/8.8.4.4 fallback is written.
 */
export function filterHostResolvConf(text: string): string {
  let out = text.replace(LOCALHOST_NS, '').replace(IPV6_NS, '');
  if (nameserversOf(out).length === 0) {
    if (out !== '' && !out.endsWith('\n')) out += '\n';
    out += DEFAULT_DNS_FALLBACK.map((ip) => `nameserver ${ip}\n`).join('');
  }
  return out;
}

/** Reads the host's resolv.conf; with systemd-resolved's stub (127.0.0.53 only), its upstream list, as Docker does. */
export function readHostResolvConf(): string {
  const text = readOr('/etc/resolv.conf', '');
  const ns = nameserversOf(text);
  if (ns.length > 0 && ns.every((n) => n === '127.0.0.53')) {
    const upstream = readOr('/run/systemd/resolve/resolv.conf', '');
    if (upstream !== '') return upstream;
  }
  return text;
}

/** /etc/resolv.conf for a container, from --dns/--dns-search/--dns-option or the host's file. */
export function resolvConfContent(o: ResolvConfOptions): string {
  for (const d of o.dns ?? []) if (net.isIP(d) === 0) throw invalidArgument(`${d} is not an ip address`);
  const hostText = o.hostResolvConfText ?? (o.networkMode === 'host' ? readOr('/etc/resolv.conf', '') : readHostResolvConf());
  if (o.embeddedDns?.length) {
    // As Docker on user-defined networks: the embedded server, search and options kept.
    const filtered = filterHostResolvConf(hostText);
    const search = o.dnsSearch?.length ? o.dnsSearch : searchDomainsOf(filtered);
    const options = o.dnsOptions?.length ? o.dnsOptions : optionsOf(filtered);
    let out = o.embeddedDns.map((d) => `nameserver ${d}\n`).join('');
    if (search.length > 0 && search.join(' ').trim() !== '.') out += `search ${search.join(' ')}\n`;
    // Docker keeps an ndots the user (or the host's file) set; otherwise ndots:0, so container names resolve first.
    const ndotsSet = options.some((x) => /^ndots:\d+$/.test(x));
    out += `options ${(ndotsSet ? [...options] : [...options, 'ndots:0']).join(' ')}\n`;
    return out;
  }
  const custom = (o.dns?.length ?? 0) + (o.dnsSearch?.length ?? 0) + (o.dnsOptions?.length ?? 0) > 0;
  if (!custom) {
    // --network host shares the host's resolver config unchanged (its localhost servers are reachable).
    if (o.networkMode === 'host') return hostText;
    return filterHostResolvConf(hostText);
  }
  const filtered = o.networkMode === 'host' ? hostText : filterHostResolvConf(hostText);
  const dns = o.dns?.length ? o.dns : nameserversOf(filtered);
  const search = o.dnsSearch?.length ? o.dnsSearch : searchDomainsOf(filtered);
  const options = o.dnsOptions?.length ? o.dnsOptions : optionsOf(filtered);
  let out = '';
  if (search.length > 0 && search.join(' ').trim() !== '.') out += `search ${search.join(' ')}\n`;
  for (const d of dns) out += `nameserver ${d}\n`;
  if (options.length > 0 && options.join(' ').trim() !== '') out += `options ${options.join(' ')}\n`;
  return out;
}

export interface EtcFilesContent { hostname: string; hosts: string; resolvConf: string }

/** All three files' content for a container. */
export function buildEtcFiles(o: HostsOptions & ResolvConfOptions): EtcFilesContent {
  return { hostname: hostnameFileContent(o.hostname), hosts: hostsFileContent(o), resolvConf: resolvConfContent(o) };
}

export interface EtcFilePaths { hostname: string; hosts: string; resolvConf: string }

/** Where writeEtcFiles puts the files (Docker's containers/<id>/{hostname,hosts,resolv.conf}). */
export function etcFilePaths(containerDir: string): EtcFilePaths {
  return { hostname: path.join(containerDir, 'hostname'), hosts: path.join(containerDir, 'hosts'), resolvConf: path.join(containerDir, 'resolv.conf') };
}

/**
 * Writes the files atomically (temp + fsync + rename). Do this before the
 * container starts: a rename replaces the inode, which a running
 * container's bind mount would no longer see (use rewriteEtcFileInPlace then).
 */
export async function writeEtcFiles(containerDir: string, content: EtcFilesContent): Promise<EtcFilePaths> {
  const p = etcFilePaths(containerDir);
  await writeFileAtomic(p.hostname, content.hostname, 0o644);
  await writeFileAtomic(p.hosts, content.hosts, 0o644);
  await writeFileAtomic(p.resolvConf, content.resolvConf, 0o644);
  return p;
}

/** Rewrites a file that is bind-mounted into a running container, keeping its inode. */
export async function rewriteEtcFileInPlace(file: string, content: string): Promise<void> {
  const fh = await fs.promises.open(file, 'r+');
  try {
    await fh.truncate(0);
    await fh.write(content, 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function readOr(file: string, fallback: string): string {
  try { return fs.readFileSync(file, 'utf8'); } catch { return fallback; }
}
