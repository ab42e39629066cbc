// Engine API client over a unix socket (or tcp). The CLI is a pure API client: it never
// touches the daemon's data root. Mirrors the docker client: /_ping negotiation, versioned
// paths, JSON errors, and the hijacked (Upgrade: tcp) protocol for attach/exec.
import * as http from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { getTimestamp } from './units';

export const DEFAULT_HOST = 'unix:///run/berth/berth.sock';
/** Highest API version this client speaks (the swagger we follow). */
export const CLIENT_MAX_API = '1.47';

export class CliError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class ConnectError extends CliError {
  constructor(host: string, denied = false) {
    // EACCES: not root and not in the socket's group (berth); the docker CLI's wording.
    super(denied
      ? `permission denied while trying to connect to the Berth daemon socket at ${host}: connect: permission denied`
      : `Cannot connect to the Berth daemon at ${host}. Is the berth daemon running?`, 1);
  }
}

export interface HostAddr {
  display: string;
  socketPath?: string;
  hostname?: string;
  port?: number;
}

export function parseHost(h: string): HostAddr {
  if (h.startsWith('unix://')) return { display: h, socketPath: h.slice('unix://'.length) };
  if (h.startsWith('/')) return { display: `unix://${h}`, socketPath: h };
  const m = /^(?:tcp|http):\/\/([^:/]+)(?::(\d+))?\/?$/.exec(h);
  if (m) return { display: h, hostname: m[1], port: m[2] ? Number(m[2]) : 2375 };
  throw new CliError(`unable to parse docker host \`${h}\``);
}

export type Query = Record<string, string | number | boolean | string[] | undefined | null>;

export interface RequestOptions {
  query?: Query;
  /** JSON-serialisable value, a Buffer, or a stream (sent chunked). */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  /** Do not throw on >= 400; the caller inspects status. */
  allowError?: boolean;
  /** Use the unversioned path (/_ping). */
  unversioned?: boolean;
}

export class Response {
  constructor(readonly res: http.IncomingMessage) {}
  get status(): number {
    return this.res.statusCode ?? 0;
  }
  header(name: string): string | undefined {
    const v = this.res.headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  }
  /**
   * Reads the body to its end and drops it: the connection then goes back to the agent, and the
   * next request reuses it instead of connecting again (as the docker CLI does after its ping).
   */
  drain(): Promise<void> {
    return new Promise((resolve) => {
      if (this.res.readableEnded || this.res.destroyed) {
        resolve();
        return;
      }
      this.res.once('end', resolve);
      this.res.once('close', resolve);
      this.res.resume();
    });
  }
  async buffer(): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.res) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }
  async text(): Promise<string> {
    return (await this.buffer()).toString('utf8');
  }
  async json(): Promise<any> {
    const t = await this.text();
    return t.trim() === '' ? null : JSON.parse(t);
  }
}

export interface Hijacked {
  socket: Duplex & { end(): void; destroy(): void };
  head: Buffer;
  contentType: string;
}

function encodeQuery(q: Query | undefined): string {
  if (!q) return '';
  const keys = Object.keys(q).filter((k) => q[k] !== undefined && q[k] !== null).sort();
  if (keys.length === 0) return '';
  const sp = new URLSearchParams();
  for (const k of keys) {
    const v = q[k];
    if (Array.isArray(v)) for (const e of v) sp.append(k, e);
    else sp.append(k, typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  return '?' + sp.toString();
}

function errorMessage(status: number, body: string): string {
  try {
    const j = JSON.parse(body);
    if (j && typeof j.message === 'string') return j.message;
  } catch {
    /* not JSON */
  }
  const t = body.trim();
  if (t) return t;
  return `${status} ${http.STATUS_CODES[status] ?? ''}`.trim();
}

export class ApiClient {
  private readonly addr: HostAddr;
  private readonly agent: http.Agent;
  private version: string | null = null;
  private negotiating: Promise<void> | null = null;
  pingHeaders: Record<string, string> = {};
  serverApiVersion: string | null = null;

  constructor(host: string) {
    this.addr = parseHost(host);
    this.agent = new http.Agent({ keepAlive: true });
    const pinned = process.env.BERTH_API_VERSION || process.env.DOCKER_API_VERSION;
    if (pinned) this.version = pinned.replace(/^v/, '');
  }

  get host(): string {
    return this.addr.display;
  }

  get apiVersion(): string {
    return this.version ?? CLIENT_MAX_API;
  }

  /** HEAD /_ping (GET when HEAD is not understood) and pick min(client max, server). */
  async negotiate(): Promise<void> {
    if (this.version && this.negotiating === null) {
      this.negotiating = Promise.resolve();
      return;
    }
    if (!this.negotiating) {
      this.negotiating = (async () => {
        let r = await this.raw('HEAD', '/_ping', {});
        await r.drain();
        if (r.status !== 200 && r.status !== 500) {
          r = await this.raw('GET', '/_ping', {});
          await r.drain();
        }
        for (const [k, v] of Object.entries(r.res.headers)) if (typeof v === 'string') this.pingHeaders[k] = v;
        const sv = r.header('api-version');
        this.serverApiVersion = sv ?? null;
        if (!this.version) {
          const server = sv || '1.24';
          this.version = compareVersions(server, CLIENT_MAX_API) < 0 ? server : CLIENT_MAX_API;
        }
      })();
    }
    return this.negotiating;
  }

  private reqOptions(method: string, path: string, headers: Record<string, string>, agent: http.Agent | false): http.RequestOptions {
    const o: http.RequestOptions = { method, path, headers: { Host: 'api.moby.localhost', 'User-Agent': 'Berth-Client/0.1.0 (linux)', ...headers }, agent };
    // No TLS: an empty servername spares the agent its net.isIP() check, whose first call compiles a large regex (~7 ms).
    (o as { servername?: string }).servername = '';
    if (this.addr.socketPath) o.socketPath = this.addr.socketPath;
    else {
      o.hostname = this.addr.hostname;
      o.port = this.addr.port;
    }
    return o;
  }

  private raw(method: string, path: string, opts: RequestOptions): Promise<Response> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      let payload: Buffer | null = null;
      let stream: Readable | null = null;
      const b = opts.body;
      if (b !== undefined) {
        if (Buffer.isBuffer(b)) {
          payload = b;
          headers['Content-Type'] = opts.contentType ?? 'application/octet-stream';
        } else if (b && typeof (b as Readable).pipe === 'function') {
          stream = b as Readable;
          headers['Content-Type'] = opts.contentType ?? 'application/x-tar';
          headers['Transfer-Encoding'] = 'chunked';
        } else {
          payload = Buffer.from(JSON.stringify(b) + '\n');
          headers['Content-Type'] = opts.contentType ?? 'application/json';
        }
      }
      if (payload) headers['Content-Length'] = String(payload.length);
      else if (!stream && method === 'POST') headers['Content-Length'] = '0';
      const req = http.request(this.reqOptions(method, path, headers, this.agent), (res) => resolve(new Response(res)));
      req.on('error', (e: NodeJS.ErrnoException) => reject(this.connError(e)));
      if (stream) {
        stream.on('error', (e) => req.destroy(e));
        stream.pipe(req);
      } else req.end(payload ?? undefined);
    });
  }

  private connError(e: NodeJS.ErrnoException): Error {
    if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'ENOTSOCK' || e.code === 'EHOSTUNREACH')
      return new ConnectError(this.addr.display, e.code === 'EACCES');
    return e;
  }

  path(p: string, q?: Query): string {
    return `/v${this.apiVersion}${p}${encodeQuery(q)}`;
  }

  async request(method: string, p: string, opts: RequestOptions = {}): Promise<Response> {
    await this.negotiate();
    const full = opts.unversioned ? p + encodeQuery(opts.query) : this.path(p, opts.query);
    const r = await this.raw(method, full, opts);
    if (r.status >= 400 && !opts.allowError) {
      const body = method === 'HEAD' ? '' : await r.text();
      throw new ApiError(r.status, errorMessage(r.status, body));
    }
    return r;
  }

  async json(method: string, p: string, opts: RequestOptions = {}): Promise<any> {
    const r = await this.request(method, p, opts);
    return r.json();
  }

  async get(p: string, query?: Query): Promise<any> {
    return this.json('GET', p, { query });
  }

  async post(p: string, query?: Query, body?: unknown): Promise<Response> {
    const r = await this.request('POST', p, { query, body });
    return r;
  }

  /** Reads an error body of a response the caller allowed to fail. */
  static async errorOf(r: Response): Promise<ApiError> {
    return new ApiError(r.status, errorMessage(r.status, await r.text()));
  }

  /** POST with `Connection: Upgrade`/`Upgrade: tcp`; resolves with the raw socket after 101. */
  async hijack(p: string, query: Query | undefined, body?: unknown): Promise<Hijacked> {
    await this.negotiate();
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { Connection: 'Upgrade', Upgrade: 'tcp' };
      let payload: Buffer;
      if (body !== undefined) {
        payload = Buffer.from(JSON.stringify(body) + '\n');
        headers['Content-Type'] = 'application/json';
      } else {
        payload = Buffer.alloc(0);
        headers['Content-Type'] = 'text/plain';
      }
      headers['Content-Length'] = String(payload.length);
      const req = http.request(this.reqOptions('POST', this.path(p, query), headers, false));
      req.on('upgrade', (res, socket, head) => {
        resolve({ socket: socket as Hijacked['socket'], head, contentType: String(res.headers['content-type'] ?? '') });
      });
      req.on('response', (res) => {
        const r = new Response(res);
        if (r.status >= 400) {
          ApiClient.errorOf(r).then(reject, reject);
          return;
        }
        // A daemon that answers 200 instead of 101: the body is the stream.
        resolve({ socket: res.socket as Hijacked['socket'], head: Buffer.alloc(0), contentType: String(res.headers['content-type'] ?? '') });
      });
      req.on('error', (e: NodeJS.ErrnoException) => reject(this.connError(e)));
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** Docker's `filters` query value: {"key":{"value":true}}. */
export function filtersParam(filters: string[]): string | undefined {
  if (!filters.length) return undefined;
  const out: Record<string, Record<string, boolean>> = {};
  for (const f of filters) {
    const i = f.indexOf('=');
    if (i < 0) throw new CliError(`bad format of filter (expected name=value)`);
    const k = f.slice(0, i).trim().toLowerCase();
    const v = f.slice(i + 1);
    (out[k] ??= {})[v] = true;
  }
  return JSON.stringify(out);
}

/** A --since/--until value as the API's `seconds.nanoseconds` (undefined when empty); bad values exit 1 as docker's. */
export function timestampParam(value: string): string | undefined {
  if (!value) return undefined;
  try {
    return getTimestamp(value);
  } catch (e) {
    throw new CliError((e as Error).message, 1);
  }
}
