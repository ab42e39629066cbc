/**
 * Remote build contexts (the Engine API's `remote` parameter): a git
 * repository cloned with the system git (`URL#ref:subdir`, as Docker reads
 * it), or an http(s) URL whose body is a context tar (plain or compressed)
 * or else a bare Dockerfile.
 */
import { execFile } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { invalidArgument } from '../common/errors';
import { detectCompression } from '../common/compression';

const run = promisify(execFile);

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
export async function cloneGitContext(remote: string, dir: string): Promise<string> {
  const hash = remote.indexOf('#');
  const url = hash >= 0 ? remote.slice(0, hash) : remote;
  const fragment = hash >= 0 ? remote.slice(hash + 1) : '';
  const colon = fragment.indexOf(':');
  const ref = (colon >= 0 ? fragment.slice(0, colon) : fragment) || 'HEAD';
  const subdir = colon >= 0 ? fragment.slice(colon + 1) : '';
  if (ref.startsWith('-')) throw invalidArgument(`invalid git reference ${ref}`);
  // No prompts, no system/user config, and only the transports a context URL names.
  const env = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_CONFIG_NOSYSTEM: '1', HOME: dir, GIT_PROTOCOL_FROM_USER: '0', GIT_ALLOW_PROTOCOL: 'git:http:https:ssh' };
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
export async function fetchHttpContext(url: string, maxDockerfileBytes = 16 << 20): Promise<{ tar: Readable } | { dockerfile: Buffer }> {
  const res = await fetch(url, { redirect: 'follow' }).catch((err: Error) => {
    throw invalidArgument(`unable to prepare context: unable to download remote context ${url}: ${(err.cause as Error)?.message ?? err.message}`);
  });
  if (!res.ok || !res.body) throw invalidArgument(`unable to prepare context: unable to download remote context ${url}: ${res.status} ${res.statusText}`);
  const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
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
