import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  parseReference, normalizeName, familiarString, isValidTag, withDefaultTag,
} from '../../src/common/reference';

test('short names normalise to docker.io/library with latest', () => {
  assert.equal(normalizeName('busybox'), 'docker.io/library/busybox:latest');
  assert.equal(normalizeName('busybox:1.36'), 'docker.io/library/busybox:1.36');
  assert.equal(normalizeName('user/app'), 'docker.io/user/app:latest');
  assert.equal(normalizeName('index.docker.io/library/busybox'), 'docker.io/library/busybox:latest');
  assert.deepEqual(parseReference('busybox'), { domain: 'docker.io', path: 'library/busybox' });
});

test('registries with ports and localhost', () => {
  assert.deepEqual(parseReference('localhost:5000/team/tools:1.0'), { domain: 'localhost:5000', path: 'team/tools', tag: '1.0' });
  assert.deepEqual(parseReference('localhost/app'), { domain: 'localhost', path: 'app' });
  assert.deepEqual(parseReference('127.0.0.1:5000/t1'), { domain: '127.0.0.1:5000', path: 't1' });
  assert.equal(familiarString('localhost:5000/team/tools:1.0'), 'localhost:5000/team/tools:1.0');
  assert.equal(familiarString('docker.io/library/busybox:latest'), 'busybox:latest');
  assert.equal(familiarString('docker.io/user/app:2'), 'user/app:2');
});

test('digests', () => {
  const d = 'sha256:' + 'a'.repeat(64);
  const r = parseReference(`busybox@${d}`);
  assert.equal(r.digest, d);
  assert.equal(r.tag, undefined);
  assert.equal(normalizeName(`busybox@${d}`), `docker.io/library/busybox@${d}`);
  assert.equal(familiarString(withDefaultTag(r)), `busybox@${d}`);
  assert.throws(() => parseReference('busybox@sha256:abc'), /invalid reference format/);
});

test('errors use Docker wording', () => {
  assert.throws(() => parseReference('Busybox'), { message: 'invalid reference format: repository name (library/Busybox) must be lowercase' });
  assert.throws(() => parseReference('busybox:bad tag'), { message: 'invalid reference format' });
  assert.throws(() => parseReference(''), /invalid reference format/);
  assert.throws(() => parseReference('a'.repeat(64)), /cannot specify 64-byte hexadecimal strings/);
  assert.throws(() => parseReference('-x'), { message: 'invalid reference format' });
  assert.throws(() => parseReference(`busybox:${'t'.repeat(129)}`), { message: 'invalid reference format' });
  try { parseReference('x'); } catch { assert.fail('x is valid'); }
});

test('tag validation', () => {
  assert.ok(isValidTag('latest'));
  assert.ok(isValidTag('1.0_rc-2'));
  assert.ok(isValidTag('t'.repeat(128)));
  assert.ok(!isValidTag('t'.repeat(129)));
  assert.ok(!isValidTag('.hidden'));
  assert.ok(!isValidTag('-x'));
  assert.ok(!isValidTag('a/b'));
});
