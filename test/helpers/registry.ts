/**
 * Registries on 127.0.0.1 for tests: Berth's own (`berth registry serve`) or Debian's
 * distribution 2.8 (`docker-registry`), each on a free port with its own root under /tmp.
 * stop() ends the process and removes the root; kill9() ends it the hard way and keeps the root.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { BERTH_BIN, sleep } from './daemon';

export type RegistryKind = 'berth' | 'distribution';

export interface TestRegistry {
  kind: RegistryKind;
  /** 127.0.0.1:port */
  addr: string;
  root: string;
  base: string;
  pid: number;
  log(): string;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

export interface RegistryStartOptions {
  /** user -> password; an htpasswd file (bcrypt) is made for them. */
  users?: Record<string, string>;
  /** Berth only: token auth (the server's own /token realm). */
  token?: boolean;
  /** Token auth by an outside token server: the registry only verifies its tokens (distribution's `auth: token:`). */
  tokenServer?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Berth only: serve HTTPS with a self-signed certificate for 127.0.0.1. */
  tls?: boolean;
  /** Reuse a root (after kill9). */
  root?: string;
}

export const DISTRIBUTION_BIN = '/usr/bin/docker-registry';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export function writeHtpasswd(file: string, users: Record<string, string>): void {
  const lines: string[] = [];
  for (const [u, p] of Object.entries(users)) {
    const r = spawnSync('htpasswd', ['-nbB', '-C', '5', u, p], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`htpasswd: ${r.stderr}`);
    lines.push(r.stdout.trim());
  }
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
  return { cert, key };
}

export async function startRegistry(kind: RegistryKind, opts: RegistryStartOptions = {}): Promise<TestRegistry> {
  const base = fs.mkdtempSync('/tmp/bt-reg-');
  const root = opts.root ?? path.join(base, 'root');
  fs.mkdirSync(root, { recursive: true });
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  let htpasswd: string | undefined;
  if (opts.users) {
    htpasswd = path.join(base, 'htpasswd');
    writeHtpasswd(htpasswd, opts.users);
  }
  let child: ChildProcess;
  if (kind === 'berth') {
    const args = ['registry', 'serve', '--addr', addr, '--root', root];
    if (htpasswd) args.push('--htpasswd', htpasswd);
    if (opts.token) args.push('--token-realm', `${opts.tls ? 'https' : 'http'}://${addr}/token`, '--token-service', 'test-registry');
    const ts = opts.tokenServer;
    if (ts) args.push('--token-realm', ts.realm, '--token-service', ts.service, '--token-issuer', ts.issuer, '--token-rootcertbundle', ts.rootCertBundle);
    if (opts.tls) {
      const c = selfSignedCert(base);
      args.push('--tls-cert', c.cert, '--tls-key', c.key);
    }
    child = spawn(process.execPath, [BERTH_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  } else {
    const cfg = path.join(base, 'config.yml');
    fs.writeFileSync(cfg, [
      'version: 0.1',
      'log: {level: error}',
      'storage:',
      `  filesystem: {rootdirectory: ${root}}`,
      '  delete: {enabled: true}',
      `http: {addr: "${addr}"}`,
      ...(htpasswd ? ['auth:', `  htpasswd: {realm: test, path: ${htpasswd}}`] : []),
      ...(opts.tokenServer ? ['auth:', '  token:', ...Object.entries({ realm: opts.tokenServer.realm, service: opts.tokenServer.service,
        issuer: opts.tokenServer.issuer, rootcertbundle: opts.tokenServer.rootCertBundle }).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`)] : []),
    ].join('\n') + '\n');
    child = spawn(DISTRIBUTION_BIN, ['serve', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
  let log = '';
  child.stdout!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-32 * 1024)));
  child.stderr!.on('data', (b: Buffer) => (log = (log + b.toString()).slice(-32 * 1024)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const end = async (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(sig);
      await Promise.race([exited, sleep(10_000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    }
  };
  const reg: TestRegistry = {
    kind, addr, root, base, pid: child.pid!, log: () => log,
    stop: async () => { await end('SIGTERM'); fs.rmSync(base, { recursive: true, force: true }); if (opts.root) fs.rmSync(opts.root, { recursive: true, force: true }); },
    kill9: () => end('SIGKILL'),
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) { await reg.stop(); throw new Error(`${kind} registry exited during start-up:\n${log}`); }
    if (await canConnect(port)) return reg;
    if (Date.now() > deadline) { await reg.stop(); throw new Error(`${kind} registry did not start:\n${log}`); }
    await sleep(50);
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}
