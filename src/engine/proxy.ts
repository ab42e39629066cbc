/**
 * Which proxy an outgoing request of the daemon (registry traffic) goes through, with the rules
 * of Go's net/http ProxyFromEnvironment that dockerd uses, so one HTTP_PROXY/NO_PROXY setting
 * means the same on Berth and Docker:
 *   - https URLs use httpsProxy, http URLs httpProxy (no fall-back between them);
 *   - `localhost` and loopback addresses are never proxied;
 *   - noProxy is a comma list of `*`, IPs, CIDRs, `domain` (it and its subdomains),
 *     `.domain` (subdomains only), each optionally with `:port`.
 */
import * as net from 'node:net';
import type { Proxies } from './config';

/** The proxy settings of the daemon's environment (upper case wins, as in Go). */
export function proxiesFromEnv(env: NodeJS.ProcessEnv): Proxies {
  return {
    httpProxy: env.HTTP_PROXY || env.http_proxy || '',
    httpsProxy: env.HTTPS_PROXY || env.https_proxy || '',
    noProxy: env.NO_PROXY || env.no_proxy || '',
  };
}

/** The proxy URL to use for `target`, or undefined to connect directly. */
export function proxyForUrl(proxies: Proxies, target: string | URL): URL | undefined {
  const url = typeof target === 'string' ? new URL(target) : target;
  const raw = url.protocol === 'https:' ? proxies.httpsProxy : url.protocol === 'http:' ? proxies.httpProxy : '';
  if (!raw) return undefined;
  const host = unbracket(url.hostname).toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  if (host === 'localhost' || isLoopback(host)) return undefined;
  if (noProxyMatches(proxies.noProxy, host, port)) return undefined;
  return parseProxyUrl(raw);
}

/** A proxy setting as a URL; `host:port` without a scheme means http, as in Go. */
export function parseProxyUrl(raw: string): URL {
  let u: URL | undefined;
  try {
    u = new URL(raw);
  } catch {
    u = undefined;
  }
  if (u && u.host) return u;
  if (raw.includes('://')) throw new Error(`invalid proxy URL: ${raw}`);
  return new URL(`http://${raw}`);
}

/** Whether `value` is a usable proxy URL (daemon.json `http-proxy`/`https-proxy`). */
export function validProxyUrl(value: string): boolean {
  try {
    const u = parseProxyUrl(value);
    return !!u.hostname && /^(https?|socks5h?):$/.test(u.protocol);
  } catch {
    return false;
  }
}

/** The URL with its password replaced, for info and logs (dockerd's MaskCredentials). */
export function maskCredentials(value: string): string {
  try {
    const u = new URL(value);
    if (!u.username && !u.password) return value;
    u.username = 'xxxxx';
    u.password = 'xxxxx';
    return u.toString().replace(/\/$/, value.endsWith('/') ? '/' : '');
  } catch {
    return value;
  }
}

function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function isLoopback(host: string): boolean {
  if (net.isIPv4(host)) return host.startsWith('127.');
  if (net.isIPv6(host)) return host === '::1' || /^::ffff:127\./i.test(host);
  return false;
}

function noProxyMatches(noProxy: string, host: string, port: string): boolean {
  for (let entry of noProxy.split(',')) {
    entry = entry.trim().toLowerCase();
    if (!entry) continue;
    if (entry === '*') return true;
    if (entry.includes('/')) {
      if (net.isIP(host) && inCidr(host, entry)) return true;
      continue;
    }
    let entryPort = '';
    const m = /^(\[[^\]]+\]|[^:]+|[0-9a-f:]+)(?::(\d+))?$/.exec(entry);
    if (m && !net.isIPv6(entry)) {
      entry = unbracket(m[1]);
      entryPort = m[2] ?? '';
    } else entry = unbracket(entry);
    if (entryPort && entryPort !== port) continue;
    if (net.isIP(entry)) {
      if (entry === host) return true;
      continue;
    }
    if (entry.startsWith('*.')) entry = entry.slice(1);
    if (entry.startsWith('.')) {
      if (host.endsWith(entry)) return true;
      continue;
    }
    if (host === entry || host.endsWith(`.${entry}`)) return true;
  }
  return false;
}

/** Whether IP `addr` lies in `cidr` (IPv4 or IPv6). */
export function inCidr(addr: string, cidr: string): boolean {
  const [base, bitsText] = cidr.split('/');
  const family = net.isIP(base);
  if (!family || net.isIP(addr) !== family) return false;
  const bits = Number(bitsText);
  const list = new net.BlockList();
  try {
    list.addSubnet(base, bits, family === 4 ? 'ipv4' : 'ipv6');
  } catch {
    return false;
  }
  return list.check(addr, family === 4 ? 'ipv4' : 'ipv6');
}
