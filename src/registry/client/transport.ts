/**
 * HTTP to registries: which scheme a registry speaks, the undici agents (the daemon's
 * HTTP(S)_PROXY/NO_PROXY honoured), and authorisation as the Docker client does it: a request
 * answered 401 is retried once with Basic credentials or a Bearer token fetched from the
 * challenge's realm for its service and scope. Tokens are cached per registry and scope until
 * shortly before they expire; a token refused later is dropped and fetched again.
 */
import { Agent, ProxyAgent, errors as undiciErrors, type Dispatcher } from 'undici';
import type { Readable } from 'node:stream';
import { BerthError } from '../../common/errors';
import type { RegistryAuth } from '../../engine/types';
import type { Proxies } from '../../engine/config';
import { proxyForUrl } from '../../engine/proxy';

/** Read on every request, so a SIGHUP reload of daemon.json applies (the daemon passes its live config). */
export interface TransportOptions {
  insecureRegistries: string[];
  proxies: Proxies;
}

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable & { text(): Promise<string>; arrayBuffer(): Promise<ArrayBuffer>; dump(): Promise<void> };
}

interface Challenge { scheme: string; params: Record<string, string> }

/** Docker's default insecure range plus what daemon.json lists (host:port, host or CIDR). */
export function isInsecure(host: string, list: string[]): boolean {
  const hostname = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (hostname === 'localhost' || hostname === '::1' || /^127\./.test(hostname)) return true;
  for (const entry of list) {
    if (entry === host || entry === hostname) return true;
    const m = /^(\d+\.\d+\.\d+\.\d+)\/(\d+)$/.exec(entry);
    if (m && /^\d+\.\d+\.\d+\.\d+$/.test(hostname)) {
      const bits = Number(m[2]);
      const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
      if ((ipv4(hostname) & mask) >>> 0 === (ipv4(m[1]) & mask) >>> 0) return true;
    }
  }
  return false;
}

function ipv4(s: string): number {
  return s.split('.').reduce((a, b) => ((a << 8) | Number(b)) >>> 0, 0);
}

export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const h = Array.isArray(header) ? header[0] : header;
  if (!h) return undefined;
  const m = /^(\w+)\s*(.*)$/.exec(h.trim());
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)="((?:[^"\\]|\\.)*)"/g;
  let p: RegExpExecArray | null;
  while ((p = re.exec(m[2]))) params[p[1].toLowerCase()] = p[2];
  return { scheme: m[1].toLowerCase(), params };
}

/** The host Docker uses for Docker Hub's API. */
export function apiHost(domain: string): string {
  return domain === 'docker.io' || domain === 'index.docker.io' ? 'registry-1.docker.io' : domain;
}

export class RegistryTransport {
  /** One keep-alive dispatcher per (proxy, TLS verification) combination. */
  private readonly dispatchers = new Map<string, Dispatcher>();
  /** Scheme that answered for a host ('https://' or 'http://'). */
  private readonly schemes = new Map<string, string>();
  private readonly tokens = new Map<string, { token: string; expires: number }>();
  /** What a registry asked for last (so later requests authorise before the first 401). */
  private readonly challenges = new Map<string, Challenge>();

  constructor(private readonly opts: TransportOptions) {}

  /** The dispatcher for a URL: through the daemon's proxy when Go's rules say so (engine/proxy.ts). */
  private dispatcherFor(url: URL): Dispatcher {
    const verify = !(url.protocol === 'https:' && this.insecure(url.host));
    const proxy = proxyForUrl(this.opts.proxies, url);
    const key = `${proxy?.href ?? ''} ${verify}`;
    let d = this.dispatchers.get(key);
    if (!d) {
      const tls = { rejectUnauthorized: verify };
      d = proxy
        ? new ProxyAgent({ uri: proxy.href, requestTls: tls, connections: 16, keepAliveTimeout: 30_000 })
        : new Agent({ connect: tls, connections: 16, keepAliveTimeout: 30_000 });
      this.dispatchers.set(key, d);
    }
    return d;
  }

  insecure(host: string): boolean { return isInsecure(host, this.opts.insecureRegistries); }

  /** The base URL of a registry: https, or for an insecure one https without verification, else http (as Docker tries them). */
  async base(host: string): Promise<string> {
    const known = this.schemes.get(host);
    if (known) return known + host;
    const schemes = this.insecure(host) ? ['https://', 'http://'] : ['https://'];
    let last: unknown;
    for (const s of schemes) {
      try {
        const r = await this.raw('GET', `${s}${host}/v2/`, {});
        await r.body.dump();
        this.schemes.set(host, s);
        const ch = parseChallenge(r.headers['www-authenticate']);
        if (r.status === 401 && ch) this.challenges.set(host, ch);
        return s + host;
      } catch (err) {
        last = err;
      }
    }
    throw dialError(`${schemes[schemes.length - 1]}${host}/v2/`, last);
  }

  private async raw(method: string, url: string, headers: Record<string, string>, body?: Readable | Buffer | string, signal?: AbortSignal): Promise<Response> {
    const u = new URL(url);
    const r = await this.dispatcherFor(u).request({
      origin: u.origin, path: u.pathname + u.search, method: method as Dispatcher.HttpMethod,
      headers: { 'User-Agent': 'berth/0.1 (registry client)', ...headers }, body, signal,
      headersTimeout: 60_000, bodyTimeout: 120_000,
    });
    return { status: r.statusCode, headers: r.headers, body: r.body as unknown as Response['body'] };
  }

  /**
   * A request to a registry with authorisation for `scope` (e.g. `repository:team/app:pull`).
   * `url` is a path below the registry (`/v2/...`) or an absolute URL (upload locations).
   * A body that is a stream can not be replayed: callers send those after a request that authorised.
   */
  async request(host: string, method: string, url: string, o: { auth?: RegistryAuth; scope: string; headers?: Record<string, string>; body?: Readable | Buffer | string; signal?: AbortSignal }): Promise<Response> {
    const base = await this.base(host);
    const full = /^https?:/.test(url) ? url : base + url;
    for (let attempt = 0; ; attempt++) {
      const headers = { ...o.headers };
      const authz = await this.authorization(host, o.scope, o.auth);
      if (authz) headers.Authorization = authz;
      let r: Response;
      try {
        r = await this.raw(method, full, headers, o.body, o.signal);
      } catch (err) {
        throw dialError(full, err);
      }
      if (r.status !== 401 || attempt > 0 || (o.body !== undefined && typeof o.body === 'object' && !Buffer.isBuffer(o.body))) return r;
      const ch = parseChallenge(r.headers['www-authenticate']);
      if (!ch) return r;
      await r.body.dump();
      this.challenges.set(host, ch);
      this.tokens.delete(`${host} ${o.scope}`);
    }
  }

  /** Authorization header for a request, fetching a token when the registry wants Bearer. */
  private async authorization(host: string, scope: string, auth: RegistryAuth | undefined): Promise<string | undefined> {
    const ch = this.challenges.get(host);
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      if (!auth?.username) return undefined;
      return 'Basic ' + Buffer.from(`${auth.username}:${auth.password ?? ''}`).toString('base64');
    }
    if (ch.scheme !== 'bearer') return undefined;
    if (auth?.registrytoken) return `Bearer ${auth.registrytoken}`;
    const key = `${host} ${scope}`;
    const cached = this.tokens.get(key);
    if (cached && cached.expires > Date.now()) return `Bearer ${cached.token}`;
    const token = await this.fetchToken(ch, scope, auth);
    this.tokens.set(key, token);
    return `Bearer ${token.token}`;
  }

  private async fetchToken(ch: Challenge, scope: string, auth: RegistryAuth | undefined): Promise<{ token: string; expires: number }> {
    const realm = ch.params.realm;
    if (!realm) throw new BerthError('unauthorized', 'registry asked for a token without naming its realm');
    const u = new URL(realm);
    if (ch.params.service) u.searchParams.set('service', ch.params.service);
    if (scope) u.searchParams.set('scope', scope);
    const headers: Record<string, string> = {};
    if (auth?.username) headers.Authorization = 'Basic ' + Buffer.from(`${auth.username}:${auth.password ?? ''}`).toString('base64');
    let r: Response;
    try {
      r = await this.raw('GET', u.toString(), headers);
    } catch (err) {
      throw dialError(u.toString(), err);
    }
    const text = await r.body.text();
    if (r.status === 401 || r.status === 403) throw new BerthError('unauthorized', `Get "${u.origin}${u.pathname}": unauthorized: ${registryMessage(text) || 'authentication required'}`);
    if (r.status !== 200) throw new BerthError('internal', `token from ${u.origin}${u.pathname}: status ${r.status}`);
    const j = JSON.parse(text);
    const token = j.token ?? j.access_token;
    if (!token) throw new BerthError('internal', `token from ${u.origin}${u.pathname}: no token in the answer`);
    const ttl = Math.max(Number(j.expires_in) || 60, 60);
    return { token, expires: Date.now() + (ttl - 10) * 1000 };
  }

  /** Checks credentials as `docker login` does: /v2/ must answer 200 with them. */
  async login(host: string, auth: RegistryAuth): Promise<void> {
    const base = await this.base(host);
    this.challenges.delete(host);
    this.tokens.clear();
    const r = await this.request(host, 'GET', '/v2/', { auth, scope: '' });
    await r.body.dump();
    if (r.status !== 200) throw new BerthError('unauthorized', `login attempt to ${base}/v2/ failed with status: ${r.status} ${statusText(r.status)}`);
  }
}

export function statusText(s: number): string {
  return ({ 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 416: 'Requested Range Not Satisfiable', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' } as Record<number, string>)[s] ?? '';
}

/** `code: message` of a registry's error body (`{"errors":[...]}`), '' when there is none. */
export function registryMessage(text: string): string {
  try {
    const e = JSON.parse(text).errors?.[0];
    if (e?.message) return `${String(e.code ?? '').toLowerCase().replace(/_/g, ' ')}: ${e.message}`.replace(/^: /, '');
  } catch { /* not JSON */ }
  return '';
}

/** Go's wording for a failed dial, which Docker shows as is. */
function dialError(url: string, err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  const e = err as NodeJS.ErrnoException & { cause?: NodeJS.ErrnoException };
  const code = e?.code ?? e?.cause?.code;
  const u = new URL(url);
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  let why = e?.message ?? String(err);
  if (code === 'ECONNREFUSED') why = `dial tcp ${u.hostname}:${port}: connect: connection refused`;
  else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') why = `dial tcp: lookup ${u.hostname}: no such host`;
  else if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.ConnectTimeoutError) why = `dial tcp ${u.hostname}:${port}: i/o timeout`;
  return new BerthError('internal', `Get "${url}": ${why}`, { cause: err });
}
