/**
 * `berth registry serve --token-rootcertbundle`: tokens of an outside token server are verified as
 * distribution's `auth: token:` verifies them. The token server is written here (127.0.0.1; keys and
 * a root CA -> intermediate -> leaf chain made with the openssl CLI). Each token variant goes to
 * Berth's server and to distribution 2.8 configured alike, and both must answer the same status,
 * error code and challenge; then berthd (berth CLI and docker CLI) and skopeo log in, push and
 * pull through Berth's server with tokens fetched from that token server.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { constants, createHash, createHmac, createPrivateKey, createPublicKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { startDaemon, bootstrapBusybox, ok, run, BERTH_BIN, type Daemon } from '../helpers/daemon';
import { startRegistry, type RegistryKind, type TestRegistry } from '../helpers/registry';

const SERVICE = 'berth-test-registry';
const ISSUER = 'test-token-server';
const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

// ---- keys and certificates (openssl CLI) ----

interface Signer { key: KeyObject; cert: X509Certificate; keyFile: string; certFile: string }

let work = '';
const openssl = (args: string[]) => {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
};
function genKey(name: string, algo: string[]): string {
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
function selfSignedCa(name: string, algo: string[], cn = name): Signer {
  const keyFile = genKey(name, algo);
  const certFile = path.join(work, `${name}.crt`);
  openssl(['req', '-x509', '-new', '-key', keyFile, '-subj', `/CN=${cn}`, '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', certFile]);
  return loadSigner(keyFile, certFile);
}
function issuedBy(ca: Signer, name: string, algo: string[], isCa: boolean, cn = name): Signer {
  const keyFile = genKey(name, algo);
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
function libtrustKid(key: KeyObject): string {
  const sum = createHash('sha256').update(createPublicKey(key).export({ type: 'spki', format: 'der' })).digest().subarray(0, 30);
  let bits = '';
  for (const b of sum) bits += b.toString(2).padStart(8, '0');
  const b32 = bits.match(/.{5}/g)!.map((x) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[parseInt(x, 2)]).join('');
  return b32.match(/.{4}/g)!.join(':');
}
/** RFC 7638 thumbprint of an RSA key (distribution 3.x's `kid`). */
function thumbprintKid(key: KeyObject): string {
  const j = createPublicKey(key).export({ format: 'jwk' });
  return createHash('sha256').update(JSON.stringify({ e: j.e, kty: j.kty, n: j.n })).digest('base64url');
}
const publicJwk = (key: KeyObject) => createPublicKey(key).export({ format: 'jwk' });
const der = (s: Signer) => s.cert.raw.toString('base64');

// ---- tokens ----

type Alg = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'ES256' | 'ES384' | 'EdDSA';
function signature(alg: Alg, key: KeyObject, data: Buffer): Buffer {
  switch (alg) {
    case 'ES256': return sign('sha256', data, { key, dsaEncoding: 'ieee-p1363' });
    case 'ES384': return sign('sha384', data, { key, dsaEncoding: 'ieee-p1363' });
    case 'PS256': return sign('sha256', data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 });
    case 'EdDSA': return sign(null, data, key);
    default: return sign(`sha${alg.slice(2)}`, data, key);
  }
}
interface Grant { type: string; name: string; actions: string[] }
function claims(access: Grant[], over: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return { iss: ISSUER, sub: 'alice', aud: SERVICE, exp: now + 300, nbf: now - 5, iat: now, jti: randomBytes(8).toString('hex'), access, ...over };
}
function jwt(header: Record<string, unknown>, body: Record<string, unknown>, key: KeyObject): string {
  const data = `${b64url(JSON.stringify({ typ: 'JWT', ...header }))}.${b64url(JSON.stringify(body))}`;
  return `${data}.${b64url(signature(header.alg as Alg, key, Buffer.from(data)))}`;
}

// ---- the token server ----

const USERS: Record<string, { password: string; grants: (type: string, name: string) => string[] }> = {
  alice: { password: 'wonderland', grants: (type, name) => type === 'repository' ? ['pull', 'push', 'delete'] : type === 'registry' && name === 'catalog' ? ['*'] : [] },
  bob: { password: 'builder', grants: (type) => type === 'repository' ? ['pull'] : [] },
};

let root: Signer;
let intermediate: Signer;
let leafEc: Signer;
let leafEd: Signer;
let leafP384: Signer;
let kidRsa: Signer;
let rogueRoot: Signer;
let rogueLeaf: Signer;
let bundle = '';
let tokenServer: http.Server;
let realm = '';
let tokenRequests = 0;

/** What the token server signs with: the P-256 leaf, its chain (leaf, intermediate) in x5c. */
const issue = (access: Grant[], over: Record<string, unknown> = {}) => jwt({ alg: 'ES256', x5c: [der(leafEc), der(intermediate)] }, claims(access, over), leafEc.key);

function serveToken(req: http.IncomingMessage, res: http.ServerResponse): void {
  tokenRequests++;
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
}

before(async () => {
  work = fs.mkdtempSync('/tmp/bt-regtok-');
  root = selfSignedCa('token-root', RSA);
  intermediate = issuedBy(root, 'token-intermediate', P384, true);
  leafEc = issuedBy(intermediate, 'token-signer', P256, false);
  leafEd = issuedBy(root, 'token-signer-ed25519', ED25519, false);
  leafP384 = issuedBy(root, 'token-signer-p384', P384, false);
  kidRsa = selfSignedCa('token-kid-key', RSA);
  // Same names as the real root and leaf, other keys.
  rogueRoot = selfSignedCa('rogue-root', RSA, 'token-root');
  rogueLeaf = issuedBy(rogueRoot, 'rogue-signer', P256, false, 'token-signer');
  bundle = path.join(work, 'bundle.pem');
  fs.writeFileSync(bundle, fs.readFileSync(root.certFile, 'utf8') + fs.readFileSync(kidRsa.certFile, 'utf8'));
  tokenServer = http.createServer(serveToken);
  await new Promise<void>((r) => tokenServer.listen(0, '127.0.0.1', () => r()));
  realm = `http://127.0.0.1:${(tokenServer.address() as AddressInfo).port}/auth`;
});
after(async () => {
  if (tokenServer) { tokenServer.closeAllConnections(); await new Promise((r) => tokenServer.close(r)); }
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const startWithTokens = (kind: RegistryKind) => startRegistry(kind, { tokenServer: { realm, service: SERVICE, issuer: ISSUER, rootCertBundle: bundle } });

test('tokens of an outside issuer: Berth and distribution 2.8 answer each variant alike', async () => {
  const now = Math.floor(Date.now() / 1000);
  const pull: Grant[] = [{ type: 'repository', name: 'team/app', actions: ['pull'] }];
  const pullPush: Grant[] = [{ type: 'repository', name: 'team/app', actions: ['pull', 'push'] }];
  const tampered = (() => {
    const [h, , s] = issue(pull).split('.');
    return `${h}.${b64url(JSON.stringify(claims(pullPush)))}.${s}`;
  })();
  const noneData = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'none' }))}.${b64url(JSON.stringify(claims(pull)))}`;
  const hsData = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'HS256', kid: libtrustKid(kidRsa.key) }))}.${b64url(JSON.stringify(claims(pull)))}`;
  const hsForged = `${hsData}.${b64url(createHmac('sha256', fs.readFileSync(kidRsa.certFile)).update(hsData).digest())}`;
  const { exp: _omitted, ...noExp } = claims(pull);

  type Kind = 'pull' | 'push' | 'catalog' | 'base';
  // challenge: no token, so the 401 only says where to get one (no error parameter).
  type Want = 'ok' | 'challenge' | 'invalid_token' | 'insufficient_scope';
  const cases: Array<{ what: string; token?: string; kind: Kind; want: Want; berthOnly?: boolean }> = [
    { what: 'no token', kind: 'base', want: 'challenge' },
    { what: 'no token, pull', kind: 'pull', want: 'challenge' },
    { what: 'no token, push', kind: 'push', want: 'challenge' },
    { what: 'no token, catalog', kind: 'catalog', want: 'challenge' },
    { what: 'x5c chain (leaf, intermediate) to the bundle root, ES256', token: issue(pull), kind: 'pull', want: 'ok' },
    { what: 'x5c of one certificate issued by the root, ES384', token: jwt({ alg: 'ES384', x5c: [der(leafP384)] }, claims(pull), leafP384.key), kind: 'pull', want: 'ok' },
    { what: 'kid: libtrust key ID of a bundle key, RS256', token: jwt({ alg: 'RS256', kid: libtrustKid(kidRsa.key) }, claims(pull), kidRsa.key), kind: 'pull', want: 'ok' },
    { what: 'jwk: a bundle key, RS512', token: jwt({ alg: 'RS512', jwk: { ...publicJwk(kidRsa.key), kid: libtrustKid(kidRsa.key) } }, claims(pull), kidRsa.key), kind: 'pull', want: 'ok' },
    { what: 'jwk with its own x5c chain, ES256', token: jwt({ alg: 'ES256', jwk: { ...publicJwk(leafEc.key), kid: libtrustKid(leafEc.key), x5c: [der(leafEc), der(intermediate)] } }, claims(pull), leafEc.key), kind: 'pull', want: 'ok' },
    { what: 'expired 20 s ago (within the leeway)', token: issue(pull, { exp: now - 20 }), kind: 'pull', want: 'ok' },
    { what: 'base endpoint, empty access', token: issue([]), kind: 'base', want: 'ok' },
    { what: 'catalog with registry:catalog:*', token: issue([{ type: 'registry', name: 'catalog', actions: ['*'] }]), kind: 'catalog', want: 'ok' },
    { what: 'push with pull,push', token: issue(pullPush), kind: 'push', want: 'ok' },
    { what: 'x5c of an Ed25519 leaf, EdDSA', token: jwt({ alg: 'EdDSA', x5c: [der(leafEd)] }, claims(pull), leafEd.key), kind: 'pull', want: 'ok', berthOnly: true },
    { what: 'kid: RFC 7638 thumbprint (distribution 3), RS384', token: jwt({ alg: 'RS384', kid: thumbprintKid(kidRsa.key) }, claims(pull), kidRsa.key), kind: 'pull', want: 'ok', berthOnly: true },
    { what: 'PS256', token: jwt({ alg: 'PS256', kid: libtrustKid(kidRsa.key) }, claims(pull), kidRsa.key), kind: 'pull', want: 'ok', berthOnly: true },
    { what: 'aud as a list naming the service', token: issue(pull, { aud: ['other', SERVICE] }), kind: 'pull', want: 'ok', berthOnly: true },

    { what: 'not a JWT', token: 'not-a-jwt', kind: 'pull', want: 'invalid_token' },
    { what: 'chain to another root (same names, other keys)', token: jwt({ alg: 'ES256', x5c: [der(rogueLeaf), der(rogueRoot)] }, claims(pull), rogueLeaf.key), kind: 'pull', want: 'invalid_token' },
    { what: 'kid of a key not in the bundle', token: jwt({ alg: 'ES256', kid: libtrustKid(rogueLeaf.key) }, claims(pull), rogueLeaf.key), kind: 'pull', want: 'invalid_token' },
    { what: 'the real chain, signed by another key', token: jwt({ alg: 'ES256', x5c: [der(leafEc), der(intermediate)] }, claims(pull), rogueLeaf.key), kind: 'pull', want: 'invalid_token' },
    { what: 'leaf without the intermediate it needs', token: jwt({ alg: 'ES256', x5c: [der(leafEc)] }, claims(pull), leafEc.key), kind: 'pull', want: 'invalid_token' },
    { what: 'jwk of a key not in the bundle', token: jwt({ alg: 'ES256', jwk: { ...publicJwk(rogueLeaf.key), kid: libtrustKid(rogueLeaf.key) } }, claims(pull), rogueLeaf.key), kind: 'pull', want: 'invalid_token' },
    { what: 'claims changed after signing', token: tampered, kind: 'push', want: 'invalid_token' },
    { what: 'expired 2 minutes ago', token: issue(pull, { exp: now - 120 }), kind: 'pull', want: 'invalid_token' },
    { what: 'no exp', token: jwt({ alg: 'ES256', x5c: [der(leafEc), der(intermediate)] }, noExp, leafEc.key), kind: 'pull', want: 'invalid_token' },
    { what: 'not before 5 minutes from now', token: issue(pull, { nbf: now + 300 }), kind: 'pull', want: 'invalid_token' },
    { what: 'another audience', token: issue(pull, { aud: 'other-registry' }), kind: 'pull', want: 'invalid_token' },
    { what: 'another issuer', token: issue(pull, { iss: 'someone-else' }), kind: 'pull', want: 'invalid_token' },
    { what: 'alg none, no signature', token: `${noneData}.`, kind: 'pull', want: 'invalid_token' },
    { what: 'HS256 keyed with the public certificate', token: hsForged, kind: 'pull', want: 'invalid_token' },
    { what: 'invalid token on the base endpoint', token: 'not-a-jwt', kind: 'base', want: 'invalid_token' },

    { what: 'pull-only token pushing', token: issue(pull), kind: 'push', want: 'insufficient_scope' },
    { what: 'push-only token pushing (distribution wants pull too)', token: issue([{ type: 'repository', name: 'team/app', actions: ['push'] }]), kind: 'push', want: 'insufficient_scope' },
    { what: 'token for another repository', token: issue([{ type: 'repository', name: 'team/other', actions: ['pull', 'push'] }]), kind: 'pull', want: 'insufficient_scope' },
    { what: 'repository token on the catalog', token: issue(pullPush), kind: 'catalog', want: 'insufficient_scope' },
  ];
  const SCOPES: Record<Kind, string | undefined> = { pull: 'repository:team/app:pull', push: 'repository:team/app:pull,push', catalog: 'registry:catalog:*', base: undefined };
  // pull: authorized; the repository is unknown (404) until the accepted push made it (200, no tags). push: a POST
  // with the blob and its digest, which Berth completes at once (201) and distribution 2.8 takes as an upload's start (202).
  const OK_STATUS: Record<Kind, number[]> = { pull: [404, 200], push: [201, 202], catalog: [200], base: [200] };

  for (const kind of ['berth', 'distribution'] as RegistryKind[]) {
    const reg: TestRegistry = await startWithTokens(kind);
    const rejectedBlobs: string[] = [];
    try {
      for (const c of cases) {
        if (c.berthOnly && kind !== 'berth') continue;
        const label = `${kind}: ${c.what}`;
        const headers: Record<string, string> = c.token === undefined ? {} : { Authorization: `Bearer ${c.token}` };
        const blob = randomBytes(64);
        const target = { pull: '/v2/team/app/tags/list', push: `/v2/team/app/blobs/uploads/?digest=${sha(blob)}`, catalog: '/v2/_catalog', base: '/v2/' }[c.kind];
        const r = await fetch(`http://${reg.addr}${target}`, { method: c.kind === 'push' ? 'POST' : 'GET', headers, body: c.kind === 'push' ? blob : undefined });
        const body: any = await r.json().catch(() => undefined);
        if (c.want === 'ok') {
          assert.ok(OK_STATUS[c.kind].includes(r.status), `${label}: ${r.status} ${JSON.stringify(body)}`);
          continue;
        }
        if (c.kind === 'push') rejectedBlobs.push(sha(blob));
        assert.equal(r.status, 401, `${label}: ${JSON.stringify(body)}`);
        assert.equal(body?.errors?.[0]?.code, 'UNAUTHORIZED', label);
        const error = c.want === 'challenge' ? '' : `,error="${c.want}"`;
        const scope = SCOPES[c.kind] ? `,scope="${SCOPES[c.kind]}"` : '';
        assert.equal(r.headers.get('www-authenticate'), `Bearer realm="${realm}",service="${SERVICE}"${scope}${error}`, label);
      }
      // Nothing a rejected request sent was stored; the accepted push was.
      const blobFile = (digest: string) => kind === 'berth' ? path.join(reg.root, 'blobs/sha256', digest.slice(7))
        : path.join(reg.root, 'docker/registry/v2/blobs/sha256', digest.slice(7, 9), digest.slice(7), 'data');
      assert.ok(rejectedBlobs.length >= 4);
      for (const d of rejectedBlobs) assert.equal(fs.existsSync(blobFile(d)), false, `${kind}: ${d} was stored`);
      if (kind === 'berth') {
        assert.equal(fs.readdirSync(path.join(reg.root, 'blobs/sha256')).length, 1, 'only the accepted push');
        assert.deepEqual(fs.readdirSync(path.join(reg.root, 'uploads')), []);
        const own = await fetch(`http://${reg.addr}/token?service=${SERVICE}&scope=repository:team/app:pull`);
        assert.equal(own.status, 404, 'the registry issues no tokens of its own');
      }
    } finally {
      await reg.stop();
    }
  }
  assert.equal(tokenRequests, 0, 'the registries never called the token server');
});

test('berthd (berth and docker CLIs) and skopeo push and pull with tokens from the outside issuer', async () => {
  const d: Daemon = await startDaemon();
  const reg = await startWithTokens('berth');
  const cfg = (name: string) => { const p = path.join(d.base, name); fs.mkdirSync(p, { recursive: true }); return p; };
  const env = { DOCKER_CONFIG: cfg('cfg-berth') };
  const berth = (...a: string[]) => d.cli(a, { env });
  try {
    await bootstrapBusybox(d);
    const busyboxId = JSON.parse(ok(await berth('image', 'inspect', 'busybox')).stdout)[0].Id;
    const ref = `${reg.addr}/team/bb:1`;
    ok(await berth('tag', 'busybox', ref));

    // Anonymous: the token server grants nothing, the push is refused.
    const anon = await berth('push', ref);
    assert.equal(anon.code, 1);
    assert.match(anon.stderr, /unauthorized|authentication required/);
    const bad = await d.cli(['login', reg.addr, '-u', 'alice', '--password-stdin'], { env, input: 'nope\n' });
    assert.equal(bad.code, 1, bad.stdout);

    // bob may only pull: logged in, his push is refused and leaves nothing.
    assert.match(ok(await d.cli(['login', reg.addr, '-u', 'bob', '--password-stdin'], { env, input: 'builder\n' })).stdout, /Login Succeeded/);
    const bobPush = await berth('push', ref);
    assert.equal(bobPush.code, 1);
    assert.match(bobPush.stderr, /unauthorized|authentication required|denied/);
    assert.deepEqual(fs.readdirSync(path.join(reg.root, 'blobs/sha256')), []);
    assert.deepEqual(fs.readdirSync(path.join(reg.root, 'repositories')), []);

    const before = tokenRequests;
    ok(await d.cli(['login', reg.addr, '-u', 'alice', '--password-stdin'], { env, input: 'wonderland\n' }));
    const push = ok(await berth('push', ref));
    assert.match(push.stdout, /Pushed/);
    const digest = /1: digest: (sha256:[a-f0-9]{64}) size: \d+/.exec(push.stdout)![1];
    assert.ok(tokenRequests > before, 'berthd fetched its tokens from the token server');
    assert.match(ok(await berth('push', ref)).stdout, /Layer already exists/);
    ok(await berth('tag', 'busybox', `${reg.addr}/other/bb:1`));
    assert.match(ok(await berth('push', `${reg.addr}/other/bb:1`)).stdout, /Mounted from team\/bb/);

    ok(await berth('rmi', ref, `${reg.addr}/other/bb:1`));
    const pulled = ok(await berth('pull', ref));
    assert.match(pulled.stdout, new RegExp(`Digest: ${digest}`));
    assert.equal(JSON.parse(ok(await berth('image', 'inspect', ref)).stdout)[0].Id, busyboxId);

    // The docker CLI against berthd, logged in as bob (pull only): pull works, push is refused.
    const dockerEnv = { DOCKER_CONFIG: cfg('cfg-docker') };
    ok(await d.docker(['login', reg.addr, '-u', 'bob', '--password-stdin'], { input: 'builder\n', env: dockerEnv }));
    ok(await d.docker(['rmi', ref], { env: dockerEnv }));
    const dpull = ok(await d.docker(['pull', ref], { env: dockerEnv }));
    assert.match(dpull.stdout, new RegExp(`Digest: ${digest}`));
    ok(await d.docker(['tag', ref, `${reg.addr}/team/bob:1`], { env: dockerEnv }));
    const dpush = await d.docker(['push', `${reg.addr}/team/bob:1`], { env: dockerEnv });
    assert.notEqual(dpush.code, 0);
    assert.equal(fs.existsSync(path.join(reg.root, 'repositories/team/bob')), false);

    // skopeo: the same manifest berth printed, and a copy into another repository (a push by skopeo).
    const raw = ok(await run('skopeo', ['inspect', '--tls-verify=false', '--creds', 'bob:builder', `docker://${ref}`])).stdout;
    assert.equal(JSON.parse(raw).Digest, digest);
    ok(await run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--src-creds', 'bob:builder', '--dest-creds', 'alice:wonderland',
      `docker://${ref}`, `docker://${reg.addr}/team/copied:1`]));
    const copied = ok(await run('skopeo', ['inspect', '--raw', '--tls-verify=false', '--creds', 'alice:wonderland', `docker://${reg.addr}/team/copied:1`])).stdout;
    assert.equal(sha(Buffer.from(copied)), digest, 'skopeo copied the manifest byte for byte');
    const bobCopy = await run('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--src-creds', 'bob:builder', '--dest-creds', 'bob:builder',
      `docker://${ref}`, `docker://${reg.addr}/team/bobcopy:1`]);
    assert.notEqual(bobCopy.code, 0);
    assert.equal(fs.existsSync(path.join(reg.root, 'repositories/team/bobcopy')), false);
  } finally {
    await reg.stop();
    await d.stop();
  }
});

test('registry serve refuses incomplete or unusable token verification settings', async () => {
  const serve = (...a: string[]) => run(process.execPath, [BERTH_BIN, 'registry', 'serve', '--addr', '127.0.0.1:0', '--root', path.join(work, 'unused-root'), ...a]);
  const noIssuer = await serve('--token-realm', realm, '--token-rootcertbundle', bundle);
  assert.equal(noIssuer.code, 1);
  assert.match(noIssuer.stderr, /--token-rootcertbundle needs --token-realm and --token-issuer/);
  const empty = path.join(work, 'empty.pem');
  fs.writeFileSync(empty, 'no certificates here\n');
  const noCert = await serve('--token-realm', realm, '--token-issuer', ISSUER, '--token-rootcertbundle', empty);
  assert.equal(noCert.code, 1);
  assert.match(noCert.stderr, /registry: token root certificate bundle .*empty\.pem: no certificate in it/);
  const missing = await serve('--token-realm', realm, '--token-issuer', ISSUER, '--token-rootcertbundle', path.join(work, 'nope.pem'));
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /ENOENT/);
});
