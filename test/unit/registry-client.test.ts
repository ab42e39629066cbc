import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isInsecure, parseChallenge } from '../../src/registry/client/transport';
import { selectPlatform, parsePlatform } from '../../src/registry/client/pull';
import { goHumanSize, progressBar } from '../../src/registry/client/progress';
import { validName } from '../../src/registry/server/storage';
import { parseScopes, allows } from '../../src/registry/server/auth';
import { fastGzip, sampledEntropy } from '../../src/common/compression';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';

test('insecure registries: loopback always, then host:port, host and CIDR entries', () => {
  assert.ok(isInsecure('127.0.0.1:5000', []));
  assert.ok(isInsecure('127.8.9.1', []));
  assert.ok(isInsecure('localhost:5000', []));
  assert.ok(!isInsecure('10.1.2.3:5000', []));
  assert.ok(isInsecure('10.1.2.3:5000', ['10.0.0.0/8']));
  assert.ok(isInsecure('reg.example:5000', ['reg.example:5000']));
  assert.ok(isInsecure('reg.example:5000', ['reg.example']));
  assert.ok(!isInsecure('other.example', ['reg.example']));
});

test('WWW-Authenticate challenges', () => {
  assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'), {
    scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' },
  });
  assert.deepEqual(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', params: { realm: 'Registry Realm' } });
  assert.equal(parseChallenge(undefined), undefined);
});

test('platform selection from an index', () => {
  const m = [
    { digest: 'a', size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { digest: 'b', size: 1, platform: { os: 'linux', architecture: 'amd64' } },
    { digest: 'c', size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
    { digest: 'd', size: 1, platform: { os: 'linux', architecture: 'arm', variant: 'v6' } },
  ];
  assert.equal(selectPlatform(m, parsePlatform('linux/amd64'))?.digest, 'b');
  assert.equal(selectPlatform(m, parsePlatform('linux/arm64'))?.digest, 'a');
  assert.equal(selectPlatform(m, parsePlatform('linux/arm/v6'))?.digest, 'd');
  assert.equal(selectPlatform(m, parsePlatform('linux/s390x')), undefined);
  assert.throws(() => parsePlatform('linux'), /expected os\/arch/);
});

test('progress text as dockerd renders it', () => {
  assert.equal(goHumanSize(41984), '41.98kB');
  assert.equal(goHumanSize(1982426), '1.982MB');
  assert.equal(goHumanSize(125), '125B');
  assert.equal(progressBar(125, 125), `[${'='.repeat(50)}>] ${'125B'.padStart(8)}/125B`);
  assert.equal(progressBar(41984, 1982426), `[=>${' '.repeat(49)}] ${'41.98kB'.padStart(8)}/1.982MB`);
});

test('registry server: repository names and token scopes', () => {
  for (const ok of ['a', 'team/app', 'a.b/c-d/e__f', 'x9/y_1']) assert.ok(validName(ok), ok);
  for (const bad of ['A', 'a..b', '-a', 'a/', 'a//b', 'a-', 'a___b']) assert.ok(!validName(bad), bad);
  const s = parseScopes(['repository:team/app:pull,push repository:base/img:pull', 'registry:catalog:*']);
  assert.deepEqual(s[0], { type: 'repository', name: 'team/app', actions: ['pull', 'push'] });
  assert.ok(allows(s, 'repository', 'base/img', 'pull'));
  assert.ok(!allows(s, 'repository', 'base/img', 'push'));
  assert.ok(allows(s, 'registry', 'catalog', 'anything'));
});

test('push compression: random batches stored, text deflated, one valid gzip member the system gunzip accepts', async () => {
  const text = Buffer.from(Array.from({ length: 200_000 }, (_, i) => `${i} lorem ipsum dolor\n`).join(''));
  const random = randomBytes(3 << 20);
  assert.ok(sampledEntropy(random) > 7.9 && sampledEntropy(text) < 6);
  const input = Buffer.concat([text, random, text, Buffer.alloc(12345, 7), random.subarray(0, 77_777)]);
  const chunks: Buffer[] = [];
  for (let i = 0; i < input.length; i += 65536) chunks.push(input.subarray(i, i + 65536));
  const parts: Buffer[] = [];
  for await (const c of Readable.from(chunks).pipe(fastGzip())) parts.push(c as Buffer);
  const gz = Buffer.concat(parts);
  assert.ok(gunzipSync(gz).equals(input));
  const viaTool = spawnSync('gzip', ['-dc'], { input: gz, maxBuffer: 64 << 20 });
  assert.equal(viaTool.status, 0, viaTool.stderr.toString());
  assert.ok(viaTool.stdout.equals(input));
  // The random part is stored (a few bytes per block), the text compressed.
  assert.ok(gz.length < random.length + 77_777 + text.length / 2);
  assert.ok(gz.length > random.length + 77_777);
  const empty: Buffer[] = [];
  for await (const c of Readable.from([]).pipe(fastGzip())) empty.push(c as Buffer);
  assert.equal(gunzipSync(Buffer.concat(empty)).length, 0);
});
