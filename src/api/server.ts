/** The HTTP server of the Engine API (unix socket or TCP). */
import * as http from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import { API_VERSION, Ctx, MIN_API_VERSION, Router, compareApi, sendError } from './router';
import { notFound, invalidArgument, BerthError } from '../common/errors';
import { defaultApiLimits, type ApiLimits } from '../engine/config';

const VERSION_PREFIX = /^\/v(\d+\.\d+)(\/.*)$/;

/**
 * The Engine API HTTP server. It owns transport only: version prefix,
 * dispatch, error mapping, and hijacked (Upgrade: tcp) connections.
 */
export class ApiServer {
  private server: http.Server;
  /** Every accepted connection, hijacked ones included (closeAllConnections skips those). */
  private sockets = new Set<Duplex>();

  constructor(private router: Router, private log: (msg: string) => void = () => {},
    /** Called for every request (berthd logs it at debug level, as dockerd's "Calling GET /..."). */
    private onRequest: (method: string, url: string) => void = () => {},
    private limits: ApiLimits = defaultApiLimits()) {
    // Checked every second so that the header timeout is kept to about a second.
    this.server = http.createServer({ keepAliveTimeout: 0, connectionsCheckingInterval: 1000 } as http.ServerOptions, (req, res) => {
      void this.dispatch(req, res, undefined, undefined);
    });
    // Long-lived streams (logs -f, events, wait) must never be cut by timeouts; only the request
    // line and headers are timed, so a half-sent request does not hold a connection forever.
    this.server.requestTimeout = 0;
    this.server.headersTimeout = limits.headerTimeoutSec * 1000;
    this.server.timeout = 0;
    this.server.on('upgrade', (req, socket, head) => {
      // Node drops its own error handler on upgraded sockets; a client reset must not crash the daemon.
      socket.on('error', () => { /* the session sees the close */ });
      void this.dispatch(req, undefined, socket, head);
    });
    this.server.on('connection', (sock: Duplex) => {
      this.sockets.add(sock);
      sock.once('close', () => this.sockets.delete(sock));
    });
    // Unparseable requests and requests whose headers took too long: answered and closed, never thrown.
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
      if (socket.writable) socket.end(timedOut ? 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n' : 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  async listenUnix(socketPath: string, mode = 0o660): Promise<void> {
    fs.mkdirSync(path.dirname(socketPath), { recursive: true });
    try { fs.unlinkSync(socketPath); } catch { /* absent */ }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(socketPath, () => { this.server.off('error', reject); resolve(); });
    });
    fs.chmodSync(socketPath, mode);
  }

  /** A socket inherited already listening (systemd socket activation). */
  async listenFd(fd: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ fd }, () => { this.server.off('error', reject); resolve(); });
    });
  }

  async listenTcp(host: string, port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => { this.server.off('error', reject); resolve(); });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections?.();
      for (const sock of this.sockets) sock.destroy();
    });
  }

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse | undefined, socket: Duplex | undefined, head: Buffer | undefined): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    // A context exists from the start so that every failure below, however early, is answered.
    const newCtx = (query: URLSearchParams, params: string[], version: string) => {
      const c = new Ctx(req, res, socket, head, query, params, version);
      c.limits = this.limits;
      return c;
    };
    let ctx = newCtx(new URLSearchParams(), [], API_VERSION);
    try {
      const { pathname, query } = splitTarget(req.url ?? '/');
      this.onRequest(method, pathname);
      let p = pathname;
      let version = '';
      const m = VERSION_PREFIX.exec(p);
      if (m) { version = m[1]; p = m[2]; }
      ctx = newCtx(query, [], version || API_VERSION);
      if (version) checkVersion(version);
      const { handler, params, hijack, body } = this.router.match(method, p);
      ctx = newCtx(query, params, version || API_VERSION);
      ctx.bodyOperation = body;
      if (!handler) throw notFound(`page not found`);
      // An Upgrade on a route that does not hijack is refused before the handler runs (nothing happens).
      if (socket && !hijack) throw invalidArgument(`Connection: Upgrade is only accepted on attach, exec start and session requests`);
      await handler(ctx);
    } catch (err) {
      if (!(err instanceof BerthError)) this.log(`${method} ${req.url}: ${(err as Error)?.stack ?? err}`);
      try {
        sendError(ctx, err);
      } catch (sendErr) {
        // The answer itself failed (connection gone or half-written): drop the connection.
        this.log(`${method} ${req.url}: could not answer: ${(sendErr as Error)?.message ?? sendErr}`);
        (socket ?? req.socket).destroy();
      }
    }
  }
}

/**
 * Path and query of a request target. Not `new URL()`: a target such as `//`
 * or `//host/x` would be read as a host name (and throws); the path is
 * taken as the client sent it, dot segments cleaned.
 */
function splitTarget(target: string): { pathname: string; query: URLSearchParams } {
  const q = target.indexOf('?');
  const rawPath = q === -1 ? target : target.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : target.slice(q + 1));
  if (!rawPath.startsWith('/')) throw invalidArgument(`invalid request target: ${JSON.stringify(target.slice(0, 200))}`);
  return { pathname: path.posix.normalize(rawPath), query };
}

/** dockerd's version middleware: same words, status 400. */
function checkVersion(v: string): void {
  if (compareApi(v, MIN_API_VERSION) < 0) {
    throw invalidArgument(`client version ${v} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
  }
  if (compareApi(v, API_VERSION) > 0) {
    throw invalidArgument(`client version ${v} is too new. Maximum supported API version is ${API_VERSION}`);
  }
}

