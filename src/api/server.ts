import * as http from 'node:http';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Duplex } from 'node:stream';
import { API_VERSION, Ctx, MIN_API_VERSION, Router, compareApi, sendError } from './router';
import { notFound, invalidArgument, BerthError } from '../common/errors';

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
    private onRequest: (method: string, url: string) => void = () => {}) {
    this.server = http.createServer({ keepAliveTimeout: 0 } as http.ServerOptions, (req, res) => {
      void this.dispatch(req, res, undefined, undefined);
    });
    // Long-lived streams (logs -f, events, wait) must never be cut by timeouts.
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 0;
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
    this.server.on('clientError', (_err, socket) => {
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
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
    const url = new URL(req.url ?? '/', 'http://berth');
    let p = url.pathname;
    let version = '';
    const m = VERSION_PREFIX.exec(p);
    if (m) { version = m[1]; p = m[2]; }
    const method = (req.method ?? 'GET').toUpperCase();
    this.onRequest(method, url.pathname);
    const { handler, params } = this.router.match(method, p);
    const ctx = new Ctx(req, res, socket, head, url.searchParams, params, version || API_VERSION);
    try {
      if (version) checkVersion(version);
      if (!handler) throw notFound(`page not found`);
      await handler(ctx);
    } catch (err) {
      if (!(err instanceof BerthError)) this.log(`${method} ${req.url}: ${(err as Error)?.stack ?? err}`);
      sendError(ctx, err);
    }
  }
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

