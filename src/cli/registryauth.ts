// Registry credentials as the docker CLI keeps them: $DOCKER_CONFIG/config.json (default ~/.docker),
// `auths` entries (base64 user:password), or a credential helper (`credsStore`, `credHelpers`).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CliError } from './client';

export interface AuthConfig { username?: string; password?: string; serveraddress?: string; identitytoken?: string }

const HUB = 'https://index.docker.io/v1/';

export function configDir(): string {
  return process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
}

function configFile(): string { return path.join(configDir(), 'config.json'); }

function readConfig(): Record<string, any> {
  try { return JSON.parse(fs.readFileSync(configFile(), 'utf8')); } catch { return {}; }
}

function writeConfig(cfg: Record<string, any>): void {
  fs.mkdirSync(configDir(), { recursive: true, mode: 0o700 });
  const tmp = `${configFile()}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(cfg, null, '\t') + '\n', { mode: 0o600 });
  fs.renameSync(tmp, configFile());
}

/** The key docker uses for a registry: Docker Hub's legacy URL, else `host[:port]`. */
export function serverKey(domain: string): string {
  return domain === 'docker.io' || domain === 'index.docker.io' || domain === 'registry-1.docker.io' ? HUB : domain;
}

function helperFor(cfg: Record<string, any>, key: string): string | undefined {
  return cfg.credHelpers?.[key] ?? cfg.credsStore;
}

function runHelper(helper: string, action: 'get' | 'store' | 'erase', input: string): string {
  const r = spawnSync(`docker-credential-${helper}`, [action], { input, encoding: 'utf8' });
  if (r.error) throw new CliError(`error getting credentials - err: ${r.error.message}`, 1);
  if (r.status !== 0) {
    const out = (r.stdout || r.stderr || '').trim();
    if (action === 'get' && /credentials not found/i.test(out)) return '';
    throw new CliError(`error ${action === 'get' ? 'getting' : action === 'store' ? 'storing' : 'erasing'} credentials - err: exit status ${r.status}, out: \`${out}\``, 1);
  }
  return r.stdout;
}

export function credentialsFor(domain: string): AuthConfig {
  const key = serverKey(domain);
  const cfg = readConfig();
  const helper = helperFor(cfg, key);
  if (helper) {
    const out = runHelper(helper, 'get', key);
    if (!out.trim()) return {};
    const j = JSON.parse(out);
    if (j.Username === '<token>') return { identitytoken: j.Secret, serveraddress: key };
    return { username: j.Username, password: j.Secret, serveraddress: key };
  }
  const entry = cfg.auths?.[key] ?? cfg.auths?.[`https://${key}`] ?? cfg.auths?.[`http://${key}`];
  if (!entry) return {};
  if (entry.identitytoken) return { identitytoken: entry.identitytoken, serveraddress: key };
  if (!entry.auth) return {};
  const s = Buffer.from(entry.auth, 'base64').toString('utf8');
  const i = s.indexOf(':');
  return { username: s.slice(0, i), password: s.slice(i + 1), serveraddress: key };
}

/** X-Registry-Auth value: base64url JSON, `e30=` (`{}`) without credentials, as the docker CLI sends it. */
export function registryAuthHeader(domain: string): string {
  return Buffer.from(JSON.stringify(credentialsFor(domain))).toString('base64url') || 'e30=';
}

/** Stores credentials; returns the file written to when they are kept unencrypted, else ''. */
export function storeCredentials(domain: string, username: string, password: string): string {
  const key = serverKey(domain);
  const cfg = readConfig();
  const helper = helperFor(cfg, key);
  if (helper) {
    runHelper(helper, 'store', JSON.stringify({ ServerURL: key, Username: username, Secret: password }));
    cfg.auths = { ...(cfg.auths ?? {}), [key]: {} };
    writeConfig(cfg);
    return '';
  }
  cfg.auths = { ...(cfg.auths ?? {}), [key]: { auth: Buffer.from(`${username}:${password}`).toString('base64') } };
  writeConfig(cfg);
  return configFile();
}

/** Removes credentials; false when there were none. */
export function eraseCredentials(domain: string): boolean {
  const key = serverKey(domain);
  const cfg = readConfig();
  const had = !!cfg.auths?.[key];
  const helper = helperFor(cfg, key);
  if (helper) runHelper(helper, 'erase', key);
  if (had) { delete cfg.auths[key]; writeConfig(cfg); }
  return had || !!helper;
}
