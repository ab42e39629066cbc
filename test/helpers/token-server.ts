/**
 * An outside token server for registry tests (Docker's token flow, distribution's JWT format), on
 * 127.0.0.1: keys and certificates made with the openssl CLI (a root CA -> intermediate -> P-256
 * leaf chain; more leaves, a key whose certificate is itself in the bundle, and a rogue CA with the
 * same names for negative tests). GET <realm>?service=&scope= authenticates Basic credentials
 * (alice may pull, push and list the catalog; bob may only pull; anonymous gets nothing) and signs
 * the intersection of the asked and the granted access, ES256 with x5c (leaf, intermediate).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { constants, createHash, createPrivateKey, createPublicKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';

export const SERVICE = 'berth-test-registry';
export const ISSUER = 'test-token-server';
export const PASSWORDS = { alice: 'wonderland', bob: 'builder' };
const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

// ---- keys and certificates (openssl CLI) ----

export interface Signer { key: KeyObject; cert: X509Certificate; keyFile: string; certFile: string }

const openssl = (args: string[]) => {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
};
function genKey(work: string, name: string, algo: string[]): string {
  const file = path.join(work, `${name}.key`);
  openssl(['genpkey', ...algo, '-out', file]);
  return file;
}
const RSA = ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'];
const P256 = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'];
const P384 = ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'];
const ED25519 = ['-algorithm', 'ed25519'];

function loadSigner(keyFile: string, certFile: string): Signer {
  return { key: createPrivateKey(fs.readFileSync(keyFile)), cert: new X509Certificate(fs.readFileSync(certFile)), keyFile, certFile };
}
function selfSignedCa(work: string, name: string, algo: string[], cn = name): Signer {
  const keyFile = genKey(work, name, algo);
  const certFile = path.join(work, `${name}.crt`);
  openssl(['req', '-x509', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', certFile]);
  return loadSigner(keyFile, certFile);
}
function issuedBy(work: string, ca: Signer, name: string, algo: string[], isCa: boolean, cn = name): Signer {
  const keyFile = genKey(work, name, algo);
  const csr = path.join(work, `${name}.csr`);
  const ext = path.join(work, `${name}.ext`);
  const certFile = path.join(work, `${name}.crt`);
  openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-out', csr]);
  fs.writeFileSync(ext, [isCa ? 'basicConstraints=critical,CA:TRUE' : 'basicConstraints=critical,CA:FALSE',
    isCa ? 'keyUsage=critical,keyCertSign' : 'keyUsage=critical,digitalSignature', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'].join('\n') + '\n');
  openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '2', '-extfile', ext, '-out', certFile]);
  return loadSigner(keyFile, certFile);
}

/** libtrust's key ID (distribution 2.x's `kid`), computed here apart from the server's code. */
export function libtrustKid(key: KeyObject): string {
  const sum = createHash('sha256').update(createPublicKey(key).export({ type: 'spki', format: 'der' })).digest().subarray(0, 30);
  let bits = '';
  for (const b of sum) bits += b.toString(2).padStart(8, '0');
  const b32 = bits.match(/.{5}/g)!.map((x) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[parseInt(x, 2)]).join('');
  return b32.match(/.{4}/g)!.join(':');
}
/** RFC 7638 thumbprint of an RSA key (distribution 3.x's `kid`). */
export function thumbprintKid(key: KeyObject): string {
  const j = createPublicKey(key).export({ format: 'jwk' });
  return createHash('sha256').update(JSON.stringify({ e: j.e, kty: j.kty, n: j.n })).digest('base64url');
}
export const publicJwk = (key: KeyObject) => createPublicKey(key).export({ format: 'jwk' });
export const der = (s: Signer) => s.cert.raw.toString('base64');

// ---- tokens ----

export type Alg = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA';
function signature(alg: Alg, key: KeyObject, data: Buffer): Buffer {
  switch (alg) {
    case 'ES256': return sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
    case 'ES384': return sign('sha384', data, { key, dsaEncoding: 'ieee-p1363' });
    case 'PS256': return sign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    case 'EdDSA': return sign(null, data, key);
    default: return sign(`sha${alg.slice(2)}`, data, key);
  }
}
export interface Grant { type: string; name: string; actions: string[] }
export function claims(access: Grant[], over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: ISSUER, sub: 'alice', aud: SERVICE, exp: now + 300, nbf: now - 5, iat: now, jti: randomBytes(8).toString('hex'), access, ...over };
}
export function jwt(header: Record<string, unknown>, body: Record<string, unknown>, key: KeyObject): string {
  const data = `${b64url(JSON.stringify({ typ: 'JWT', ...header }))}.${b64url(JSON.stringify(body))}`;
  return `${data}.${b64url(signature(header.alg as Alg, key, Buffer.from(data)))}`;
}

// ---- the token server ----

const USERS: Record<string, { password: string; grants: (type: string, name: string) => string[] }> = {
  alice: { password: PASSWORDS.alice, grants: (type, name) => type === 'repository' ? ['pull', 'push', 'delete'] : type === 'registry' && name === 'catalog' ? ['*'] : [] },
  bob: { password: PASSWORDS.bob, grants: (type) => type === 'repository' ? ['pull'] : [] },
};

export interface TokenServer {
  /** The URL clients get tokens from. */
  realm: string;
  /** PEM: the root CA and the certificate of `signers.kidRsa`. */
  bundle: string;
  signers: Record<'root' | 'intermediate' | 'leafEc' | 'leafEd' | 'leafP384' | 'kidRsa' | 'rogueRoot' | 'rogueLeaf', Signer>;
  /** A token as the server signs them: ES256 by the P-256 leaf, x5c (leaf, intermediate). */
  issue(access: Grant[], over?: Record<string, unknown>): string;
  /** Token requests answered so far. */
  requests(): number;
  /** What startRegistry needs to verify this server's tokens. */
  registry: { realm: string; service: string; issuer: string; rootCertBundle: string };
  stop(): Promise<void>;
}

export async function startTokenServer(): Promise<TokenServer> {
  const work = fs.mkdtempSync('/tmp/bt-regtok-');
  const root = selfSignedCa(work, 'token-root', RSA);
  const intermediate = issuedBy(work, root, 'token-intermediate', P384, true);
  const leafEc = issuedBy(work, intermediate, 'token-signer', P256, false);
  const leafEd = issuedBy(work, root, 'token-signer-ed25519', ED25519, false);
  const leafP384 = issuedBy(work, root, 'token-signer-p384', P384, false);
  const kidRsa = selfSignedCa(work, 'token-kid-key', RSA);
  // Same names as the real root and leaf, other keys.
  const rogueRoot = selfSignedCa(work, 'rogue-root', RSA, 'token-root');
  const rogueLeaf = issuedBy(work, rogueRoot, 'rogue-signer', P256, false, 'token-signer');
  const bundle = path.join(work, 'bundle.pem');
  fs.writeFileSync(bundle, fs.readFileSync(root.certFile, 'utf8') + fs.readFileSync(kidRsa.certFile, 'utf8'));
  const issue = (access: Grant[], over: Record<string, unknown> = {}) => jwt({ alg: 'ES256', x5c: [der(leafEc), der(intermediate)] }, claims(access, over), leafEc.key);
  let requests = 0;
  const server = http.createServer((req, res) => {
    requests++;
    const url = new URL(req.url ?? '/', 'http://x');
    const reply = (status: number, body: unknown) => { res.writeHead(status, { 'Content-Type': 'application/json' }); res.end(JSON.stringify(body)); };
    if (url.pathname !== '/auth') return reply(404, {});
    let subject = '';
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
    if (basic) {
      const [user, password] = Buffer.from(basic[1], 'base64').toString().split(/:(.*)/s);
      if (USERS[user]?.password !== password) return reply(401, { details: 'incorrect username or password' });
      subject = user;
    }
    if (url.searchParams.get('service') !== SERVICE) return reply(400, { details: 'unknown service' });
    // The intersection of what is asked and what the subject has (anonymous: nothing).
    const access: Grant[] = [];
    for (const scope of url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean)) {
      const first = scope.indexOf(':');
      const last = scope.lastIndexOf(':');
      const type = scope.slice(0, first);
      const name = scope.slice(first + 1, last);
      const granted = subject ? USERS[subject].grants(type, name) : [];
      const actions = scope.slice(last + 1).split(',').filter((a) => granted.includes(a));
      if (actions.length) access.push({ type, name, actions });
    }
    const token = issue(access, { sub: subject });
    reply(200, { token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const realm = `http://127.0.0.1:${(server.address() as AddressInfo).port}/auth`;
  return {
    realm, bundle, issue, requests: () => requests,
    signers: { root, intermediate, leafEc, leafEd, leafP384, kidRsa, rogueRoot, rogueLeaf },
    registry: { realm, service: SERVICE, issuer: ISSUER, rootCertBundle: bundle },
    stop: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      fs.rmSync(work, { recursive: true, force: true });
    },
  };
}
