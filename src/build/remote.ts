/**
 * Remote build contexts (the Engine API's `remote` parameter): a git
 * repository cloned with the system git (`URL#ref:subdir`, as Docker reads
 * it), or an http(s) URL whose body is a context tar (plain or compressed)
 * or else a bare Dockerfile. Both go through the daemon's proxies by the
 * rules registry traffic follows (engine/proxy.ts), as dockerd's do.
 */
import { execFile } from 'node:child_process';
import { STATUS_CODES } from 'node:http';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { Agent, ProxyAgent, type Dispatcher } from 'undici';
import type { Proxies } from '../engine/config';
import { proxyForUrl } from '../engine/proxy';
import { invalidArgument } from '../common/errors';
import { detectCompression } from '../common/compression';

const run = promisify(execFile);

/** Redirects an http context download follows (Go's http.Client stops after 10). */
const MAX_REDIRECTS = 10;

/** Proxy variables of the daemon's own environment: git must see only what the daemon decided. */
const PROXY_ENV = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy', 'NO_PROXY', 'no_proxy'];

/** One keep-alive dispatcher per proxy ('' = direct), shared by context downloads. */
const dispatchers = new Map<string, Dispatcher>();

function dispatcherFor(proxies: Proxies, url: URL): Dispatcher {
  const proxy = proxyForUrl(proxies, url)?.href ?? '';
  let d = dispatchers.get(proxy);
  if (!d) {
    // No CONNECT tunnel for http targets: Go's net/http (dockerd) sends them to the proxy in absolute form.
    d = proxy ? new ProxyAgent({ uri: proxy, proxyTunnel: false, keepAliveTimeout: 10_000 }) : new Agent({ keepAliveTimeout: 10_000 });
    dispatchers.set(proxy, d);
  }
  return d;
}

/** The environment git runs with: the proxy the daemon's rules pick for `url`, and no other. */
function gitProxyEnv(url: string, proxies: Proxies): Record<string, string> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return {}; // git@host:path (ssh): no http proxy applies
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') return {};
  const proxy = proxyForUrl(proxies, target);
  if (!proxy) return {};
  // curl (git's http transport) reads only the lower-case http_proxy.
  return target.protocol === 'https:' ? { https_proxy: proxy.href, HTTPS_PROXY: proxy.href } : { http_proxy: proxy.href };
}

/** Docker's urlutil.IsGitURL: git://, git@, github.com/, or an http(s) URL of a `.git` path. */
export function isGitUrl(s: string): boolean {
  if (/^(git:\/\/|git@|github\.com\/)/.test(s)) return true;
  return /^https?:\/\/[^#]*\.git(#.*)?$/i.test(s);
}

export const isHttpUrl = (s: string) => /^https?:\/\//i.test(s);

/**
 * Clones `remote` (`URL[#ref[:subdir]]`) into `dir` (which must not exist) and
 * returns the directory that is the context (the subdir when one is given).
 */
export async function cloneGitContext(remote: string, dir: string, proxies: Proxies): Promise<string> {
  const hash = remote.indexOf('#');
  const url = hash >= 0 ? remote.slice(0, hash) : remote;
  const fragment = hash >= 0 ? remote.slice(hash + 1) : '';
  const colon = fragment.indexOf(':');
  const ref = (colon >= 0 ? fragment.slice(0, colon) : fragment) || 'HEAD';
  const subdir = colon >= 0 ? fragment.slice(colon + 1) : '';
  if (ref.startsWith('-')) throw invalidArgument(`invalid git reference ${ref}`);
  // No prompts, no system/user config, and only the transports a context URL names.
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !PROXY_ENV.includes(k)));
  const env = {
    ...inherited, ...gitProxyEnv(url, proxies),
    GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: dir, GIT_PROTOCOL_FROM_USER: '0', GIT_ALLOW_PROTOCOL: 'git:http:https:ssh',
  };
  const git = async (...args: string[]) => {
    try {
      await run('git', args, { cwd: dir, env, timeout: 600_000, maxBuffer: 16 << 20 });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw invalidArgument(`unable to prepare context: unable to 'git ${args.slice(0, 2).join(' ')}' ${url}: ${(e.stderr || e.message).trim()}`);
    }
  };
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await git('init', '-q');
  await git('remote', 'add', 'origin', '--', url);
  // A shallow fetch first; dumb http servers cannot serve one, so then the whole history.
  try {
    await git('fetch', '-q', '--depth', '1', 'origin', '--', ref);
  } catch {
    await git('fetch', '-q', 'origin', '--', ref);
  }
  await git('checkout', '-q', 'FETCH_HEAD');
  await fsp.rm(path.join(dir, '.git'), { recursive: true, force: true });
  if (!subdir) return dir;
  const sub = path.resolve(dir, subdir);
  const real = await fsp.realpath(sub).catch(() => { throw invalidArgument(`unable to prepare context: subdirectory ${subdir} of ${url} not found`); });
  if (real !== dir && !real.startsWith(dir + path.sep)) throw invalidArgument(`unable to prepare context: subdirectory ${subdir} is outside the repository`);
  if (!(await fsp.stat(real)).isDirectory()) throw invalidArgument(`unable to prepare context: ${subdir} of ${url} is not a directory`);
  return real;
}

/**
 * Fetches an http(s) context: `{ tar }` when the body is a (compressed) tar,
 * else `{ dockerfile }` with the body as the Dockerfile (Docker's rule).
 */
export async function fetchHttpContext(url: string, proxies: Proxies, maxDockerfileBytes = 16 << 20): Promise<{ tar: Readable } | { dockerfile: Buffer }> {
  const body = await download(url, proxies);
  // The first bytes decide; they are read off the iterator (not peeked: a short body would end the stream under a peek).
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  const chunks: Buffer[] = [];
  let size = 0;
  let ended = false;
  while (size < 262) {
    const r = await it.next();
    if (r.done) { ended = true; break; }
    chunks.push(r.value);
    size += r.value.length;
  }
  const head = Buffer.concat(chunks);
  const isTar = head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar';
  if (detectCompression(head) !== 'none' || isTar) {
    const rest = async function* () {
      yield head;
      if (!ended) for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    };
    return { tar: Readable.from(rest(), { objectMode: false }) };
  }
  if (!ended) {
    for (let r = await it.next(); !r.done; r = await it.next()) {
      size += r.value.length;
      if (size > maxDockerfileBytes) {
        body.destroy();
        throw invalidArgument(`unable to prepare context: the remote Dockerfile ${url} is larger than ${maxDockerfileBytes} bytes`);
      }
      chunks.push(r.value);
    }
  }
  return { dockerfile: Buffer.concat(chunks) };
}

/** GETs `url` through the daemon's proxies, following redirects (each hop picks its own proxy). */
async function download(url: string, proxies: Proxies): Promise<Readable> {
  const failed = (why: string) => invalidArgument(`unable to prepare context: unable to download remote context ${url}: ${why}`);
  let current: URL;
  try {
    current = new URL(url);
  } catch {
    throw failed('invalid URL');
  }
  for (let hop = 0; ; hop++) {
    const res = await dispatcherFor(proxies, current).request({
      origin: current.origin, path: current.pathname + current.search, method: 'GET',
      headers: { 'User-Agent': 'berth/0.1 (build context)' }, headersTimeout: 60_000, bodyTimeout: 120_000,
    }).catch((err: Error) => { throw failed((err.cause as Error)?.message ?? err.message); });
    const location = res.headers.location;
    if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
      await res.body.dump();
      if (hop === MAX_REDIRECTS) throw failed(`stopped after ${MAX_REDIRECTS} redirects`);
      try {
        current = new URL(location, current);
      } catch {
        throw failed(`bad redirect location ${JSON.stringify(location.slice(0, 200))}`);
      }
      if (current.protocol !== 'http:' && current.protocol !== 'https:') throw failed(`redirect to ${current.protocol} URL`);
      continue;
    }
    if (res.statusCode < 200 || res.statusCode >= 300) {
      await res.body.dump();
      throw failed(`${res.statusCode} ${STATUS_CODES[res.statusCode] ?? ''}`.trim());
    }
    return res.body as unknown as Readable;
  }
}

