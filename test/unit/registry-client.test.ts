import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isInsecure, parseChallenge } from '../../src/registry/client/transport';
import { selectPlatform, parsePlatform } from '../../src/registry/client/pull';
import { goHumanSize, progressBar } from '../../src/registry/client/progress';
import { validName } from '../../src/registry/server/storage';
import { parseScopes, allows } from '../../src/registry/server/auth';

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
