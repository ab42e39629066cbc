/**
 * `berth registry serve`: the OCI distribution API (and Docker's Registry HTTP API v2) over
 * node:http/https. Its own process; it imports nothing of the daemon (only common/ helpers).
 * Where distribution 2.8 departs from the spec the spec is followed: tags sorted (Go's
 * sort.Strings) and paginated with Link headers, an out-of-order chunk answered 416, an
 * invalid repository name answered 400 NAME_INVALID, tags deletable.
 * Just over 500 lines: one dispatcher for every endpoint of the API, sharing the auth check and
 * the error bodies; storage (storage.ts) and auth (auth.ts) live beside it.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { mallocTrim, sendFileToSocket } from '../../common/linux';
import { RegistryStorage, DIGEST_RE, TAG_RE, validName, byteOrder } from './storage';
import { Htpasswd, TokenIssuer, TokenVerifier, basicCredentials, parseScopes, allows, requiredActions, type Access } from './auth';

export interface RegistryOptions {
  root: string;
  /** host:port; port 0 picks a free one. */
  addr: string;
  htpasswd?: string;
  tlsCert?: string;
  tlsKey?: string;
  /** Token auth: the realm clients fetch tokens from (this server's /token, e.g. http://127.0.0.1:5000/token, unless tokenRootCertBundle). */
  tokenRealm?: string;
  tokenService?: string;
  /** The `iss` of the tokens (issued, or required of an outside token server's). */
  tokenIssuer?: string;
  /** PEM certificates vouching for an outside token server's signing keys: the server only verifies tokens. */
  tokenRootCertBundle?: string;
  log?: (line: string) => void;
  /** Also log every request (method, path, status, milliseconds). */
  logRequests?: boolean;
}

const MANIFEST_TYPES = new Set([
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
]);
const INDEX_TYPES = new Set(['application/vnd.docker.distribution.manifest.list.v2+json', 'application/vnd.oci.image.index.v1+json']);
const MAX_MANIFEST = 4 << 20;
/**
 * How often the C heap is handed back to the kernel after uploads: their body chunks are freed by
 * V8 in bursts and glibc keeps the freed pages mapped (tens of MiB after one large blob).
 */
const TRIM_INTERVAL_MS = 2000;
const TRIM_ROUNDS = 5;

const MESSAGES: Record<string, [number, string]> = {
  BLOB_UNKNOWN: [404, 'blob unknown to registry'],
  BLOB_UPLOAD_INVALID: [400, 'blob upload invalid'],
  BLOB_UPLOAD_UNKNOWN: [404, 'blob upload unknown to registry'],
  DIGEST_INVALID: [400, 'provided digest did not match uploaded content'],
  MANIFEST_BLOB_UNKNOWN: [400, 'blob unknown to registry'],
  MANIFEST_INVALID: [400, 'manifest invalid'],
  MANIFEST_UNKNOWN: [404, 'manifest unknown'],
  NAME_INVALID: [400, 'invalid repository name'],
  NAME_UNKNOWN: [404, 'repository name not known to registry'],
  SIZE_INVALID: [400, 'provided length did not match content length'],
  TAG_INVALID: [400, 'manifest tag did not match URI'],
  UNAUTHORIZED: [401, 'authentication required'],
  DENIED: [403, 'requested access to the resource is denied'],
  UNSUPPORTED: [405, 'The operation is unsupported.'],
  RANGE_INVALID: [416, 'invalid content range'],
  PAGINATION_NUMBER_INVALID: [400, 'invalid number of results requested'],
};

class RegistryError extends Error {
  constructor(readonly code: string, readonly detail?: unknown, message?: string) { super(message ?? MESSAGES[code][1]); }
}

type Req = http.IncomingMessage;
type Res = http.ServerResponse;

export class RegistryServer {
  readonly storage: RegistryStorage;
  private server: http.Server | undefined;
  private readonly htpasswd: Htpasswd | undefined;
  private readonly tokens: TokenIssuer | TokenVerifier | undefined;
  private readonly log: (line: string) => void;
  private trimTimer: NodeJS.Timeout | undefined;
  /** Trims still due: the upload's chunks are freed whenever V8 next collects, not at once. */
  private trimRounds = 0;

  constructor(private readonly opts: RegistryOptions) {
    this.storage = new RegistryStorage(opts.root);
    this.htpasswd = opts.htpasswd ? new Htpasswd(opts.htpasswd) : undefined;
    const service = opts.tokenService ?? 'berth-registry';
    if (opts.tokenRootCertBundle && !(opts.tokenRealm && opts.tokenIssuer)) throw new Error('token verification needs the realm and the issuer of the token server');
    this.tokens = opts.tokenRootCertBundle ? new TokenVerifier(opts.tokenRealm!, service, opts.tokenIssuer!, opts.tokenRootCertBundle)
      : opts.tokenRealm ? new TokenIssuer(opts.tokenRealm, service, path.join(opts.root, '.token-key'), opts.tokenIssuer)
        : undefined;
    this.log = opts.log ?? (() => undefined);
  }

  /** Listens; resolves with the bound address (`host:port`). */
  async start(): Promise<string> {
    await this.storage.open();
    const handler = (req: Req, res: Res) => { void this.handle(req, res); };
    this.server = this.opts.tlsCert
      ? https.createServer({ cert: fs.readFileSync(this.opts.tlsCert), key: fs.readFileSync(this.opts.tlsKey ?? this.opts.tlsCert) }, handler)
      : http.createServer(handler);
    this.server.keepAliveTimeout = 60_000;
    const i = this.opts.addr.lastIndexOf(':');
    const host = i > 0 ? this.opts.addr.slice(0, i) : '0.0.0.0';
    const port = Number(i >= 0 ? this.opts.addr.slice(i + 1) : this.opts.addr);
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host.replace(/^\[|\]$/g, ''), () => resolve());
    });
    const a = this.server.address() as AddressInfo;
    this.trimTimer = setInterval(() => {
      if (this.trimRounds === 0) return;
      this.trimRounds--;
      mallocTrim();
    }, TRIM_INTERVAL_MS).unref();
    return `${host}:${a.port}`;
  }

  async close(): Promise<void> {
    if (!this.server) return;
    clearInterval(this.trimTimer);
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server!.close(() => r()));
  }

  private async handle(req: Req, res: Res): Promise<void> {
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const url = new URL(req.url ?? '/', 'http://registry');
    const started = this.opts.logRequests ? Date.now() : 0;
    try {
      await this.route(req, res, url);
    } catch (err) {
      if (!(err instanceof RegistryError)) this.log(`${req.method} ${url.pathname}: ${(err as Error)?.stack ?? err}`);
      if (res.headersSent) { res.destroy(); return; }
      const e = err instanceof RegistryError ? err : new RegistryError('UNSUPPORTED', undefined, 'internal error');
      const status = err instanceof RegistryError ? MESSAGES[e.code][0] : 500;
      const body = JSON.stringify({ errors: [{ code: e.code, message: e.message, detail: e.detail ?? null }] });
      res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body) });
      res.end(req.method === 'HEAD' ? undefined : body);
      drain(req);
    } finally {
      if (this.opts.logRequests) this.log(`${req.method} ${url.pathname}${url.search} ${res.statusCode} ${Date.now() - started}ms`);
    }
  }

  // ---- auth ----

  /** Throws 401 (with the challenge) unless the request may do `action` on repository `name` ('' = the catalog). */
  private async authorize(req: Req, res: Res, scopes: Array<{ name: string; action: string }>): Promise<void> {
    if (this.tokens) {
      const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
      const granted = m ? this.tokens.verify(m[1]) : undefined;
      const wanted = scopes.map((s) => s.name === '' ? { type: 'registry', name: 'catalog', actions: ['*'] } : { type: 'repository', name: s.name, actions: requiredActions(s.action) });
      if (granted && wanted.every((w) => w.actions.every((a) => allows(granted, w.type, w.name, a)))) return;
      const scope = wanted.map((w) => `${w.type}:${w.name}:${w.actions.join(',')}`).join(' ');
      res.setHeader('WWW-Authenticate', this.tokens.challenge(scope || undefined, granted ? 'insufficient_scope' : m ? 'invalid_token' : undefined));
      throw new RegistryError(granted ? this.tokens.insufficientScope : 'UNAUTHORIZED', wanted.flatMap((w) => w.actions.map((a) => ({ Type: w.type, Name: w.name, Action: a }))));
    }
    if (this.htpasswd) {
      const c = basicCredentials(req.headers.authorization);
      if (c && (await this.htpasswd.check(c.user, c.password))) return;
      res.setHeader('WWW-Authenticate', 'Basic realm="Registry Realm"');
      throw new RegistryError('UNAUTHORIZED');
    }
  }

  /** GET /token: Docker's token endpoint, for the token flow this server asks clients to follow. */
  private async issueToken(req: Req, res: Res, url: URL): Promise<void> {
    const tokens = this.tokens as TokenIssuer;
    let subject = '';
    const c = basicCredentials(req.headers.authorization);
    if (this.htpasswd) {
      if (!c || !(await this.htpasswd.check(c.user, c.password))) {
        res.setHeader('WWW-Authenticate', 'Basic realm="Registry Realm"');
        throw new RegistryError('UNAUTHORIZED', undefined, 'authentication required');
      }
      subject = c.user;
    }
    const wanted = parseScopes(url.searchParams.getAll('scope'));
    // Anyone who authenticated (or everyone, without htpasswd) gets what they asked for on repositories.
    const access: Access[] = wanted.filter((a) => (a.type === 'repository' && validName(a.name)) || (a.type === 'registry' && a.name === 'catalog'));
    const t = tokens.issue(subject, access);
    sendJson(res, 200, { token: t.token, access_token: t.token, expires_in: t.expires_in, issued_at: t.issued_at });
  }

  // ---- routing ----

  private async route(req: Req, res: Res, url: URL): Promise<void> {
    const p = url.pathname;
    const method = req.method ?? 'GET';
    if (p === '/token' && this.tokens instanceof TokenIssuer) return this.issueToken(req, res, url);
    if (p === '/v2/' || p === '/v2') {
      await this.authorize(req, res, []);
      return sendJson(res, 200, {}, method === 'HEAD');
    }
    if (p === '/v2/_catalog') {
      await this.authorize(req, res, [{ name: '', action: '*' }]);
      return this.catalog(res, url);
    }
    if (p === '/v1/search') {
      await this.authorize(req, res, [{ name: '', action: '*' }]);
      return this.search(res, url);
    }
    let m: RegExpExecArray | null;
    if ((m = /^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/.exec(p))) {
      const name = checkName(m[1]);
      await this.authorize(req, res, [{ name, action: 'push' }]);
      return this.uploads(req, res, url, name, m[2], method);
    }
    if ((m = /^\/v2\/(.+)\/blobs\/([^/]+)$/.exec(p))) {
      const name = checkName(m[1]);
      await this.authorize(req, res, [{ name, action: method === 'DELETE' ? 'delete' : 'pull' }]);
      const digest = decodeURIComponent(m[2]);
      if (!DIGEST_RE.test(digest)) throw new RegistryError('DIGEST_INVALID', { digest }, 'invalid digest');
      if (method === 'GET' || method === 'HEAD') return this.getBlob(req, res, name, digest, method === 'HEAD');
      if (method === 'DELETE') {
        if (!(await this.storage.unlinkBlob(name, digest))) throw new RegistryError('BLOB_UNKNOWN', { digest });
        res.writeHead(202, { 'Content-Length': '0', 'Docker-Content-Digest': digest });
        return void res.end();
      }
      throw new RegistryError('UNSUPPORTED');
    }
    if ((m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(p))) {
      const name = checkName(m[1]);
      const ref = decodeURIComponent(m[2]);
      if (method === 'GET' || method === 'HEAD') {
        await this.authorize(req, res, [{ name, action: 'pull' }]);
        return this.getManifest(res, name, ref, method === 'HEAD');
      }
      if (method === 'PUT') {
        await this.authorize(req, res, [{ name, action: 'push' }]);
        return this.putManifest(req, res, name, ref);
      }
      if (method === 'DELETE') {
        await this.authorize(req, res, [{ name, action: 'delete' }]);
        const done = DIGEST_RE.test(ref) ? await this.storage.deleteManifest(name, ref) : await this.storage.deleteTag(name, ref);
        if (!done) throw new RegistryError('MANIFEST_UNKNOWN', { name, ref });
        res.writeHead(202, { 'Content-Length': '0' });
        return void res.end();
      }
      throw new RegistryError('UNSUPPORTED');
    }
    if ((m = /^\/v2\/(.+)\/tags\/list$/.exec(p))) {
      const name = checkName(m[1]);
      await this.authorize(req, res, [{ name, action: 'pull' }]);
      if (!(await this.storage.repositoryExists(name))) throw new RegistryError('NAME_UNKNOWN', { name });
      const tags = await this.storage.tags(name);
      const page = paginate(tags, url);
      if (page.next) res.setHeader('Link', `</v2/${name}/tags/list?n=${page.n}&last=${encodeURIComponent(page.next)}>; rel="next"`);
      return sendJson(res, 200, { name, tags: page.items }, method === 'HEAD');
    }
    sendJson(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'not found', detail: null }] });
  }

  private async catalog(res: Res, url: URL): Promise<void> {
    const repos = await this.storage.repositories();
    const page = paginate(repos, url);
    if (page.next) res.setHeader('Link', `</v2/_catalog?n=${page.n}&last=${encodeURIComponent(page.next)}>; rel="next"`);
    sendJson(res, 200, { repositories: page.items });
  }

  /** Docker's v1 search over the catalog: what `docker search <registry>/<term>` asks. */
  private async search(res: Res, url: URL): Promise<void> {
    const q = (url.searchParams.get('q') ?? '').toLowerCase();
    const n = Math.min(Math.max(Number(url.searchParams.get('n') ?? 25) || 25, 1), 100);
    const page = Math.max(Number(url.searchParams.get('page') ?? 1) || 1, 1);
    const all = (await this.storage.repositories()).filter((r) => r.includes(q));
    const results = all.slice((page - 1) * n, page * n).map((name) => ({ name, description: '', star_count: 0, is_official: false, is_automated: false, is_trusted: false }));
    sendJson(res, 200, { query: q, num_results: all.length, num_pages: Math.ceil(all.length / n), page, page_size: n, results });
  }

  // ---- blobs ----

  private async getBlob(req: Req, res: Res, name: string, digest: string, head: boolean): Promise<void> {
    const size = await this.storage.blobSize(name, digest);
    if (size === undefined) throw new RegistryError('BLOB_UNKNOWN', { digest });
    const headers: http.OutgoingHttpHeaders = {
      'Content-Type': 'application/octet-stream', 'Docker-Content-Digest': digest, 'Accept-Ranges': 'bytes',
      Etag: `"${digest}"`, 'Cache-Control': 'max-age=31536000',
    };
    let start = 0;
    let end = size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const r = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      if (!r || (r[1] === '' && r[2] === '')) throw new RegistryError('RANGE_INVALID');
      if (r[1] === '') { start = Math.max(size - Number(r[2]), 0); } else { start = Number(r[1]); if (r[2] !== '') end = Math.min(Number(r[2]), size - 1); }
      if (start > end || start >= size) {
        res.setHeader('Content-Range', `bytes */${size}`);
        throw new RegistryError('RANGE_INVALID');
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = String(end - start + 1);
    res.writeHead(status, headers);
    if (head || size === 0) return void res.end();
    const fd = this.opts.tlsCert ? undefined : socketFd(res);
    if (fd !== undefined) return sendFileBody(res, fd, this.storage.blobPath(digest), start, end - start + 1);
    // TLS (the kernel cannot encrypt what sendfile sends) or no socket of our own yet: through JS.
    this.trimRounds = TRIM_ROUNDS;
    const stream = fs.createReadStream(this.storage.blobPath(digest), { start, end, highWaterMark: 256 << 10 });
    stream.pipe(res);
    await new Promise<void>((resolve) => {
      const done = () => { stream.destroy(); resolve(); };
      res.once('close', done);
      stream.once('error', () => { res.destroy(); resolve(); });
    });
  }

  private async uploads(req: Req, res: Res, url: URL, name: string, uuid: string, method: string): Promise<void> {
    this.trimRounds = TRIM_ROUNDS;
    if (uuid === '') {
      if (method !== 'POST') throw new RegistryError('UNSUPPORTED');
      const mount = url.searchParams.get('mount');
      const from = url.searchParams.get('from');
      if (mount && from && DIGEST_RE.test(mount) && validName(from)) {
        // Cross-repository mount: allowed when the caller may pull the source.
        let mayPull = true;
        try { await this.authorize(req, res, [{ name: from, action: 'pull' }]); } catch { mayPull = false; res.removeHeader('WWW-Authenticate'); }
        if (mayPull && (await this.storage.blobSize(from, mount)) !== undefined) {
          await this.storage.linkBlob(name, mount);
          drain(req);
          res.writeHead(201, { Location: `/v2/${name}/blobs/${mount}`, 'Docker-Content-Digest': mount, 'Content-Length': '0' });
          return void res.end();
        }
      }
      const id = await this.storage.startUpload(name);
      const digest = url.searchParams.get('digest');
      if (digest) return this.finishUpload(req, res, name, id, digest);
      drain(req);
      return this.uploadStatus(res, name, id, 0, 202);
    }
    const size = await this.storage.uploadSize(name, uuid);
    if (size === undefined) throw new RegistryError('BLOB_UPLOAD_UNKNOWN', { uuid });
    if (method === 'GET') return this.uploadStatus(res, name, uuid, size, 204);
    if (method === 'DELETE') {
      await this.storage.cancelUpload(uuid);
      res.writeHead(204);
      return void res.end();
    }
    if (method === 'PATCH') {
      const cr = req.headers['content-range'];
      if (cr) {
        const r = /^(?:bytes )?(\d+)-(\d+)$/.exec(String(cr));
        if (!r || Number(r[1]) !== size) {
          drain(req);
          res.setHeader('Range', size > 0 ? `0-${size - 1}` : '0-0');
          throw new RegistryError('RANGE_INVALID', { expected: size, got: String(cr) });
        }
      }
      const newSize = await this.storage.appendUpload(uuid, req);
      return this.uploadStatus(res, name, uuid, newSize, 202);
    }
    if (method === 'PUT') {
      const digest = url.searchParams.get('digest') ?? '';
      return this.finishUpload(req, res, name, uuid, digest);
    }
    throw new RegistryError('UNSUPPORTED');
  }

  private async finishUpload(req: Req, res: Res, name: string, uuid: string, digest: string): Promise<void> {
    if (!DIGEST_RE.test(digest)) {
      drain(req);
      throw new RegistryError('DIGEST_INVALID', { digest }, 'invalid digest');
    }
    await this.storage.appendUpload(uuid, req);
    if (!(await this.storage.commitUpload(name, uuid, digest))) throw new RegistryError('DIGEST_INVALID', { digest });
    res.writeHead(201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest, 'Content-Length': '0' });
    res.end();
  }

  private uploadStatus(res: Res, name: string, uuid: string, size: number, status: number): void {
    res.writeHead(status, {
      Location: `/v2/${name}/blobs/uploads/${uuid}`, 'Docker-Upload-UUID': uuid,
      Range: size > 0 ? `0-${size - 1}` : '0-0', 'Content-Length': '0',
    });
    res.end();
  }

  // ---- manifests ----

  private async getManifest(res: Res, name: string, ref: string, head: boolean): Promise<void> {
    let digest = ref;
    if (!DIGEST_RE.test(ref)) {
      if (!TAG_RE.test(ref)) throw new RegistryError('MANIFEST_UNKNOWN', { name, tag: ref });
      const d = await this.storage.resolveTag(name, ref);
      if (!d) throw new RegistryError('MANIFEST_UNKNOWN', { name, tag: ref });
      digest = d;
    }
    const m = await this.storage.getManifest(name, digest);
    if (!m) throw new RegistryError('MANIFEST_UNKNOWN', { name, digest });
    res.writeHead(200, { 'Content-Type': m.mediaType, 'Content-Length': String(m.body.length), 'Docker-Content-Digest': digest, Etag: `"${digest}"` });
    res.end(head ? undefined : m.body);
  }

  private async putManifest(req: Req, res: Res, name: string, ref: string): Promise<void> {
    const isDigest = DIGEST_RE.test(ref);
    if (!isDigest && !TAG_RE.test(ref)) { drain(req); throw new RegistryError('TAG_INVALID', { tag: ref }, 'invalid tag'); }
    const body = await readBody(req, MAX_MANIFEST);
    if (!body) throw new RegistryError('MANIFEST_INVALID', undefined, 'manifest too big');
    const digest = 'sha256:' + createHash('sha256').update(body).digest('hex');
    if (isDigest && ref !== digest) throw new RegistryError('DIGEST_INVALID', { expected: ref, got: digest });
    let doc: any;
    try { doc = JSON.parse(body.toString('utf8')); } catch { throw new RegistryError('MANIFEST_INVALID', undefined, 'manifest invalid: not JSON'); }
    const ctype = String(req.headers['content-type'] ?? '').split(';')[0].trim();
    const mediaType = typeof doc?.mediaType === 'string' ? doc.mediaType : ctype;
    if (!MANIFEST_TYPES.has(mediaType)) {
      throw new RegistryError('MANIFEST_INVALID', { mediaType }, `manifest invalid: unsupported manifest media type ${JSON.stringify(mediaType || ctype)}`);
    }
    if (doc.schemaVersion !== 2) throw new RegistryError('MANIFEST_INVALID', undefined, 'manifest invalid: schemaVersion must be 2');
    const missing: string[] = [];
    if (INDEX_TYPES.has(mediaType)) {
      if (!Array.isArray(doc.manifests)) throw new RegistryError('MANIFEST_INVALID', undefined, 'manifest invalid: no manifests');
      for (const d of doc.manifests) {
        if (!DIGEST_RE.test(d?.digest ?? '')) throw new RegistryError('MANIFEST_INVALID', undefined, 'manifest invalid: bad digest');
        if (!(await this.storage.hasManifest(name, d.digest))) missing.push(d.digest);
      }
    } else {
      const refs = [doc.config, ...(Array.isArray(doc.layers) ? doc.layers : [])];
      if (!doc.config || !Array.isArray(doc.layers)) throw new RegistryError('MANIFEST_INVALID', undefined, 'manifest invalid: config and layers required');
      for (const d of refs) {
        if (!DIGEST_RE.test(d?.digest ?? '')) throw new RegistryError('MANIFEST_INVALID', undefined, 'manifest invalid: bad digest');
        // Foreign (non-distributable) layers may live elsewhere.
        if (Array.isArray(d.urls) && d.urls.length) continue;
        const size = await this.storage.blobSize(name, d.digest);
        if (size === undefined) missing.push(d.digest);
        else if (typeof d.size === 'number' && d.size !== size) throw new RegistryError('MANIFEST_INVALID', { digest: d.digest }, `manifest invalid: size of ${d.digest} is ${size}, not ${d.size}`);
      }
    }
    if (missing.length) throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { digest: missing[0] }, `blob unknown to registry: ${missing[0]}`);
    await this.storage.putManifest(name, digest, mediaType, body, isDigest ? undefined : ref);
    res.writeHead(201, { Location: `/v2/${name}/manifests/${digest}`, 'Docker-Content-Digest': digest, 'Content-Length': '0' });
    res.end();
  }
}

/** The descriptor of the plain TCP socket the response is on, when it has one. */
function socketFd(res: Res): number | undefined {
  const socket = res.socket as (Res['socket'] & { encrypted?: boolean; _handle?: { fd?: number } }) | null;
  const fd = socket?._handle?.fd;
  return socket && !socket.encrypted && typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

const NOTHING = Buffer.alloc(0);

/**
 * A body straight from the page cache into the socket with sendfile(2) (native/berth-sys.c): no
 * copy through JS buffers, which cost the CPU and the memory of streaming blobs. The headers go
 * first through Node; a zero-length write after them calls back once everything Node queued has
 * reached the kernel, and only then may sendfile write to the descriptor.
 */
async function sendFileBody(res: Res, fd: number, file: string, offset: number, length: number): Promise<void> {
  const socket = res.socket!;
  res.flushHeaders();
  await new Promise<void>((resolve) => socket.write(NOTHING, () => resolve()));
  if (socket.destroyed) return;
  const transfer = sendFileToSocket(fd, file, offset, length);
  // The client went away or the server closes: stop at once (our dup of the descriptor would keep the connection).
  const cancel = () => transfer.cancel();
  res.once('close', cancel);
  try {
    await transfer.done;
    res.end();
  } catch {
    // EPIPE/ECONNRESET (the client left) or a blob cut short: the response cannot be completed.
    res.destroy();
  } finally {
    res.off('close', cancel);
  }
}

function checkName(raw: string): string {
  const name = decodeURIComponent(raw);
  if (!validName(name)) throw new RegistryError('NAME_INVALID', { name });
  return name;
}

/** `n`/`last` pagination over a sorted list. */
function paginate(items: string[], url: URL): { items: string[]; n: number; next?: string } {
  const nRaw = url.searchParams.get('n');
  const last = url.searchParams.get('last');
  let rest = last ? items.filter((t) => byteOrder(t, last) > 0) : items;
  if (nRaw === null || nRaw === '') return { items: rest, n: rest.length };
  if (!/^\d+$/.test(nRaw)) throw new RegistryError('PAGINATION_NUMBER_INVALID', { n: nRaw });
  const n = Number(nRaw);
  const page = rest.slice(0, n);
  rest = rest.slice(n);
  return { items: page, n, next: rest.length && page.length ? page[page.length - 1] : undefined };
}

function sendJson(res: Res, status: number, body: unknown, head = false): void {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(s) });
  res.end(head ? undefined : s);
}

function drain(req: Req): void {
  if (!req.readableEnded) req.resume();
}

async function readBody(req: Req, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req) {
    n += (c as Buffer).length;
    if (n > limit) { drain(req); return undefined; }
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks);
}
