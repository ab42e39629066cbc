/**
 * The docker CLI's client-side proxies: `proxies` in ~/.docker/config.json (or $DOCKER_CONFIG)
 * become environment variables of containers made by `run`/`create` and build args of `build`,
 * unless the user set that variable already (docker/cli's ConfigFile.ParseProxyConfig).
 *
 *   { "proxies": { "default": { "httpProxy": "http://proxy:3128", "noProxy": "localhost" },
 *                  "unix:///run/berth/berth.sock": { ... } } }      <- per daemon host, else "default"
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** config.json field -> the variables it sets (both cases, as the docker CLI). */
const PROXY_VARS: Array<[string, string[]]> = [
  ['httpProxy', ['HTTP_PROXY', 'http_proxy']],
  ['httpsProxy', ['HTTPS_PROXY', 'https_proxy']],
  ['noProxy', ['NO_PROXY', 'no_proxy']],
  ['ftpProxy', ['FTP_PROXY', 'ftp_proxy']],
  ['allProxy', ['ALL_PROXY', 'all_proxy']],
];

/** The client configuration directory: $DOCKER_CONFIG, else ~/.docker. */
export function dockerConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DOCKER_CONFIG || path.join(env.HOME || os.homedir(), '.docker');
}

/** Proxy variables the client config gives containers talking to `daemonHost` (empty when none). */
export function clientProxyVars(daemonHost: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  let cfg: any;
  try {
    cfg = JSON.parse(fs.readFileSync(path.join(dockerConfigDir(env), 'config.json'), 'utf8'));
  } catch {
    return {}; // no (readable) config: no proxies, as the docker CLI
  }
  const proxies = cfg?.proxies;
  if (!proxies || typeof proxies !== 'object') return {};
  const chosen = proxies[daemonHost] ?? proxies.default;
  const out: Record<string, string> = {};
  if (!chosen || typeof chosen !== 'object') return out;
  for (const [field, names] of PROXY_VARS) {
    const v = chosen[field];
    if (typeof v === 'string' && v !== '') for (const n of names) out[n] = v;
  }
  return out;
}

/**
 * `KEY=VALUE` (or bare `KEY`) list with the client's proxy variables added for every name the
 * list does not already have. For `run`/`create` env and for `build --build-arg`.
 */
export function withClientProxies(list: string[], daemonHost: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const vars = clientProxyVars(daemonHost, env);
  const have = new Set(list.map((kv) => kv.split('=')[0]));
  const out = [...list];
  for (const [k, v] of Object.entries(vars)) if (!have.has(k)) out.push(`${k}=${v}`);
  return out;
}
