/** Engine API routing: version negotiation, the request context (Ctx) handlers see, hijacking, error answers. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { BerthError, httpStatusOf, invalidArgument } from '../common/errors';
import { defaultApiLimits, type ApiLimits } from '../engine/config';
import { checkJsonDepth, foldFieldNames, hasBodyValidator, validateBody } from './validate';

/** API version Berth speaks; the docker CLI negotiates min(its max, this). */
export const API_VERSION = '1.47';
export const MIN_API_VERSION = '1.24';
export const SERVER_HEADER = 'Berth/0.1.0 (linux)';

/** Compares API versions numerically ("1.9" < "1.41"). */
export function compareApi(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Headers every normal response carries, as dockerd sends them. */
export function commonHeaders(): Record<string, string> {
  return {
    'Api-Version': API_VERSION,
    'Docker-Experimental': 'false',
    'Ostype': 'linux',
    'Server': SERVER_HEADER,
  };
}

/**
 * Per-request context handed to route handlers. `res` is absent for
 * hijacked (Upgrade) requests; those use `hijack()` to get the raw socket.
 */
export class Ctx {
  readonly query: URLSearchParams;
  readonly params: string[];
  /** API version of the request path (`/v1.41/...`), or API_VERSION when unversioned. */
  readonly version: string;
  private hijacked = false;
  private gone?: AbortController;
  /** The daemon's limits (set by the server). */
  limits: ApiLimits = defaultApiLimits();
  /** Set when a body was refused unread: the answer closes the connection instead of draining it. */
  private bodyRefused = false;
  /** The route's swagger operation: JSON bodies are validated against its schema (set by the server). */
  bodyOperation?: string;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse | undefined,
    readonly socket: Duplex | undefined,
    public head: Buffer | undefined,
    query: URLSearchParams,
    params: string[],
    version: string,
  ) {
    this.query = query;
    this.params = params;
    this.version = version;
  }

  /** Query boolean: Docker clients send 1/0 and sometimes true/false. */
  bool(name: string, dflt = false): boolean {
    const v = this.query.get(name);
    if (v === null || v === '') return dflt;
    return v === '1' || v.toLowerCase() === 'true';
  }

  int(name: string, dflt?: number): number | undefined {
    const v = this.query.get(name);
    if (v === null || v === '') return dflt;
    const n = Number(v);
    if (!Number.isFinite(n)) throw invalidArgument(`invalid value for ${name}: ${JSON.stringify(v)}`);
    return n;
  }

  /** The `filters` query parameter: `{"name":{"x":true}}` or legacy `{"name":["x"]}`; anything else is a 400. */
  filters(): Record<string, string[]> {
    const raw = this.query.get('filters');
    if (!raw) return {};
    let parsed: unknown;
    try {
      checkJsonDepth(raw, 4);
      parsed = JSON.parse(raw);
    } catch { throw invalidArgument(`invalid filter: ${raw}`); }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalidArgument(`invalid filter: ${raw}`);
    const out: Record<string, string[]> = {};
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) out[k] = v;
      else if (v && typeof v === 'object' && !Array.isArray(v) && Object.values(v).every((on) => typeof on === 'boolean')) {
        out[k] = Object.entries(v).filter(([, on]) => on).map(([x]) => x);
      } else throw invalidArgument(`invalid filter '${k}': ${JSON.stringify(v)}`);
    }
    return out;
  }

  /** The whole (small, JSON) body; over `limits.jsonBodyBytes` it is refused with a 413 before more is read. */
  async bodyBuffer(): Promise<Buffer> {
    const max = this.limits.jsonBodyBytes;
    const declared = Number(this.req.headers['content-length'] ?? 0);
    if (max > 0 && declared > max) throw this.tooLarge(max);
    if (this.socket) return this.upgradeBody();
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const c of this.req) {
      total += (c as Buffer).length;
      if (max > 0 && total > max) throw this.tooLarge(max);
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks);
  }

  private tooLarge(max: number): BerthError {
    this.bodyRefused = true;
    return new BerthError('too-large', `request body is larger than ${max} bytes (daemon.json "api-limits"."json-body-bytes")`);
  }

  /**
   * On an Upgrade request Node never parses the body: it sits in `head` and
   * the socket (exec start sends its JSON that way). Read Content-Length
   * bytes from there; whatever follows is stream data and stays in `head`.
   */
  private upgradeBody(): Promise<Buffer> {
    const want = Number(this.req.headers['content-length'] ?? 0);
    let have = this.head ?? Buffer.alloc(0);
    if (!Number.isFinite(want) || want <= 0) return Promise.resolve(Buffer.alloc(0));
    const sock = this.socket!;
    return new Promise<Buffer>((resolve, reject) => {
      // 'readable' + read() rather than 'data': removing the listener leaves
      // the stream neither flowing nor paused, so the hijack consumer can
      // use it like a fresh socket.
      const cleanup = () => { sock.off('readable', onReadable); sock.off('end', onEnd); sock.off('error', onErr); };
      const onReadable = () => {
        let c: Buffer | null;
        while (have.length < want && (c = sock.read() as Buffer | null) !== null) have = Buffer.concat([have, c]);
        if (have.length >= want) {
          cleanup();
          this.head = have.subarray(want);
          resolve(have.subarray(0, want));
        }
      };
      const onEnd = () => { cleanup(); reject(invalidArgument('request body ended early')); };
      const onErr = (e: Error) => { cleanup(); reject(e); };
      if (have.length >= want) { this.head = have.subarray(want); resolve(have.subarray(0, want)); return; }
      sock.on('readable', onReadable); sock.once('end', onEnd); sock.once('error', onErr);
    });
  }

  /**
   * An AbortSignal that fires when the client goes away (full close, or the
   * read-EOF Node treats as "client gone" on a normal request). Streaming
   * handlers (wait, logs -f, events) hand it to the services.
   */
  clientGone(): AbortSignal {
    if (this.gone) return this.gone.signal;
    const ac = new AbortController();
    this.gone = ac;
    const fire = () => { if (!ac.signal.aborted) ac.abort(new Error('context canceled')); };
    if (this.res) {
      const res = this.res;
      res.once('close', () => { if (!res.writableFinished) fire(); });
    }
    const sock = this.socket ?? this.req.socket;
    if (sock.destroyed) fire();
    else sock.once('close', fire);
    return ac.signal;
  }

  /** Parses a JSON body; an empty body yields `dflt`. */
  async json<T>(dflt?: T): Promise<T> {
    const buf = await this.bodyBuffer();
    if (buf.length === 0) {
      if (dflt !== undefined) return dflt;
      throw invalidArgument('request body is empty');
    }
    return this.parseJson(buf) as T;
  }

  /**
   * Parses JSON text of a body: nesting depth first, then the text, then the
   * route's body schema (all 400s, before any handler acts on the value).
   */
  parseJson(buf: Buffer): unknown {
    const text = buf.toString('utf8');
    checkJsonDepth(text);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw invalidArgument(`invalid JSON body: ${(err as Error).message}`);
    }
    if (!this.bodyOperation) return value;
    const folded = foldFieldNames(this.bodyOperation, value);
    validateBody(this.bodyOperation, folded);
    return folded;
  }

  send(status: number, body?: unknown, headers: Record<string, string> = {}): void {
    const res = this.mustRes();
    if (body === undefined || status === 204 || status === 304) {
      res.writeHead(status, { ...commonHeaders(), ...headers });
      res.end();
      return;
    }
    const text = JSON.stringify(body) + '\n';
    res.writeHead(status, {
      ...commonHeaders(),
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(text),
      ...(this.bodyRefused ? { Connection: 'close' } : {}),
      ...headers,
    });
    res.end(text);
  }

  /** Starts a chunked JSON-lines stream (pull/load/build progress use `\r\n`, events `\n`). */
  startStream(contentType = 'application/json'): ServerResponse {
    const res = this.mustRes();
    const headers: Record<string, string> = { ...commonHeaders() };
    if (contentType) headers['Content-Type'] = contentType;
    res.writeHead(200, headers);
    res.flushHeaders();
    return res;
  }

  /**
   * Answers `101 UPGRADED` and returns the raw socket. Works both for
   * requests that came with `Upgrade: tcp` (Node's 'upgrade' event) and for
   * plain requests (dockerd hijacks those too).
   */
  hijack(contentType = 'application/vnd.docker.raw-stream', withCommonHeaders = false): Duplex {
    if (this.hijacked) throw new Error('already hijacked');
    this.hijacked = true;
    const sock = this.socket ?? this.req.socket;
    if (this.res) {
      // Take the socket away from the HTTP server so it never writes a response.
      this.res.detachSocket(sock as any);
      (this.res as any)._header = 'hijacked';
      detachHttpParser(sock);
    }
    const extra = withCommonHeaders
      ? Object.entries(commonHeaders()).map(([k, v]) => `${k}: ${v}\r\n`).join('')
      : '';
    const upgrade = this.req.headers.upgrade ? 'Connection: Upgrade\r\nUpgrade: tcp\r\n' : '';
    sock.write(`HTTP/1.1 ${upgrade ? '101 UPGRADED' : '200 OK'}\r\nContent-Type: ${contentType}\r\n${upgrade}${extra}\r\n`);
    if (this.head && this.head.length) sock.unshift(this.head);
    return sock;
  }

  get isHijacked(): boolean { return this.hijacked; }

  private mustRes(): ServerResponse {
    if (!this.res) throw new Error('this request was hijacked; there is no response object');
    return this.res;
  }
}

/**
 * Without `Upgrade:` Node's HTTP parser keeps reading the socket, so stdin
 * bytes would be parsed as a next request. Unhook the parser and the
 * server's socket listeners the way Node itself does for upgrades.
 */
function detachHttpParser(sock: Duplex): void {
  const s = sock as any;
  for (const ev of ['data', 'end', 'close', 'drain', 'error', 'timeout']) {
    for (const f of s.listeners(ev)) if (/^(bound )?socketOn/.test(f.name)) s.removeListener(ev, f);
  }
  for (const ev of ['pause', 'resume']) {
    for (const f of s.listeners(ev)) if (/^(bound )?onSocket/.test(f.name)) s.removeListener(ev, f);
  }
  const parser = s.parser;
  if (parser) {
    if (parser._consumed) { parser.unconsume(); parser._consumed = false; }
    s.parser = null;
  }
  s._httpMessage = null;
  s.on('error', () => { /* the session sees the close */ });
}

export type Handler = (ctx: Ctx) => Promise<void> | void;

/** What a route allows beyond a plain request/response. */
export interface RouteOptions {
  /** The handler takes the raw connection (`Connection: Upgrade` is honoured only on such routes). */
  hijack?: boolean;
  /** Swagger operationId whose body schema every JSON body of this route must match (see api/validate.ts). */
  body?: string;
}

interface Route { method: string; re: RegExp; handler: Handler; hijack: boolean; body?: string }

/**
 * A named route handler: reads the request, calls an area's interface (`deps`, what the route
 * module hands every handler of its table), writes the answer.
 */
export type RouteHandler<D> = (ctx: Ctx, deps: D) => Promise<void> | void;

/** One endpoint: method, path pattern (see Router), its named handler and options. */
export type RouteEntry<D> = readonly [method: string, pattern: RegExp | string, handler: RouteHandler<D>, opts?: RouteOptions];

/** A route module's endpoints, registered in one place. */
export function addRoutes<D>(router: Router, deps: D, table: ReadonlyArray<RouteEntry<D>>): void {
  for (const [method, pattern, handler, opts] of table) router.add(method, pattern, (ctx) => handler(ctx, deps), opts);
}

/** decodeURIComponent that answers a malformed escape with a 400, not a URIError. */
export function decodePathParam(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw invalidArgument(`invalid URL escape in path: ${JSON.stringify(s)}`);
  }
}

/**
 * Route table. Patterns are regular expressions over the path without the
 * `/vX.Y` prefix; capture groups become `ctx.params`. Image names contain
 * slashes and colons unescaped, so image routes use greedy `(.+)` groups.
 */
export class Router {
  private routes: Route[] = [];

  add(method: string, pattern: RegExp | string, handler: Handler, opts: RouteOptions = {}): void {
    const re = typeof pattern === 'string' ? new RegExp(`^${pattern}$`) : pattern;
    if (opts.body !== undefined && !hasBodyValidator(opts.body)) throw new Error(`route ${pattern}: no body validator for ${opts.body}`);
    this.routes.push({ method: method.toUpperCase(), re, handler, hijack: opts.hijack === true, body: opts.body });
  }
  get(p: RegExp | string, h: Handler, o?: RouteOptions) { this.add('GET', p, h, o); }
  post(p: RegExp | string, h: Handler, o?: RouteOptions) { this.add('POST', p, h, o); }
  put(p: RegExp | string, h: Handler, o?: RouteOptions) { this.add('PUT', p, h, o); }
  head(p: RegExp | string, h: Handler, o?: RouteOptions) { this.add('HEAD', p, h, o); }
  delete(p: RegExp | string, h: Handler, o?: RouteOptions) { this.add('DELETE', p, h, o); }

  /**
   * Finds the handler; also returns whether the path exists under another method (405 vs 404).
   * Throws a 400 for a malformed percent-escape in a path parameter.
   */
  match(method: string, path: string): { handler?: Handler; params: string[]; pathKnown: boolean; hijack: boolean; body?: string } {
    let pathKnown = false;
    for (const r of this.routes) {
      const m = r.re.exec(path);
      if (!m) continue;
      pathKnown = true;
      if (r.method === method || (method === 'HEAD' && r.method === 'GET' && !this.hasExact('HEAD', path))) {
        return { handler: r.handler, params: m.slice(1).map((s) => (s === undefined ? s : decodePathParam(s))), pathKnown, hijack: r.hijack, body: r.body };
      }
    }
    return { params: [], pathKnown, hijack: false };
  }

  private hasExact(method: string, path: string): boolean {
    return this.routes.some((r) => r.method === method && r.re.test(path));
  }
}

/** Writes an error the way dockerd does: status + `{"message": ...}`. */
export function sendError(ctx: Ctx, err: unknown): void {
  const status = httpStatusOf(err);
  const message = err instanceof Error ? err.message : String(err);
  if (ctx.isHijacked || !ctx.res) {
    // Socket already taken: best effort, the client sees the connection end.
    const sock = ctx.socket ?? ctx.req.socket;
    if (!ctx.isHijacked) {
      const text = JSON.stringify({ message }) + '\n';
      sock.end(`HTTP/1.1 ${status} ${statusText(status)}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
    } else {
      sock.destroy();
    }
    return;
  }
  if (ctx.res.headersSent) {
    ctx.res.destroy(err instanceof Error ? err : undefined);
    return;
  }
  if (status === 304) { ctx.send(304); return; }
  ctx.send(status, { message });
}

function statusText(code: number): string {
  return ({
    304: 'Not Modified', 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 413: 'Payload Too Large',
    500: 'Internal Server Error', 501: 'Not Implemented', 503: 'Service Unavailable',
  } as Record<number, string>)[code] ?? 'Error';
}

export { BerthError };
