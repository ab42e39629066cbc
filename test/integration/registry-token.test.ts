/**
 * `berth registry serve --token-rootcertbundle`: tokens of an outside token server are verified as
 * distribution's `auth: token:` verifies them. The token server is the tests' own (helpers/token-server.ts:
 * 127.0.0.1, keys and certificate chains made with the openssl CLI). Each token variant goes to
 * Berth's server and to distribution 2.8 configured alike, and both must answer the same status,
 * error code and challenge; then berthd (berth CLI and docker CLI) and skopeo log in, push and
 * pull through Berth's server with tokens fetched from that token server.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { startDaemon, bootstrapBusybox, ok, run, BERTH_BIN, type Daemon } from '../helpers/daemon';
import { startRegistry, type RegistryKind, type TestRegistry } from '../helpers/registry';
import { startTokenServer, claims, der, jwt, libtrustKid, publicJwk, thumbprintKid, ISSUER, SERVICE, type Grant, type TokenServer } from '../helpers/token-server';

const sha = (b: Buffer) => 'sha256:' + createHash('sha256').update(b).digest('hex');
const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

let ts: TokenServer;
let work = '';
before(async () => {
  ts = await startTokenServer();
  work = fs.mkdtempSync('/tmp/bt-regtok-cli-');
});
after(async () => {
  await ts?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

/** A challenge with each scope's actions sorted: distribution 2.8 lists them in Go's map order, which varies. */
const sortedActions = (challenge: string | null) => challenge?.replace(/scope="([^"]*)"/, (_, scopes: string) => `scope="${scopes.split(' ')
  .map((sc) => { const i = sc.lastIndexOf(':'); return `${sc.slice(0, i)}:${sc.slice(i + 1).split(',').sort().join(',')}`; }).join(' ')}"`);
const startWithTokens = (kind: RegistryKind) => startRegistry(kind, { tokenServer: ts.registry });

test('tokens of an outside issuer: Berth and distribution 2.8 answer each variant alike', async () => {
  const { intermediate, leafEc, leafEd, leafP384, kidRsa, rogueRoot, rogueLeaf } = ts.signers;
  const { issue, realm } = ts;
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
        assert.equal(sortedActions(r.headers.get('www-authenticate')), `Bearer realm="${realm}",service="${SERVICE}"${scope}${error}`, label);
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
  assert.equal(ts.requests(), 0, 'the registries never called the token server');
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

    const before = ts.requests();
    ok(await d.cli(['login', reg.addr, '-u', 'alice', '--password-stdin'], { env, input: 'wonderland\n' }));
    const push = ok(await berth('push', ref));
    assert.match(push.stdout, /Pushed/);
    const digest = /1: digest: (sha256:[a-f0-9]{64}) size: \d+/.exec(push.stdout)![1];
    assert.ok(ts.requests() > before, 'berthd fetched its tokens from the token server');
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
  const { realm, bundle } = ts;
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
