import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { BerthError } from '../../src/common/errors';
import { randomName, validateName, NAME_ADJECTIVES, NAME_SURNAMES } from '../../src/container/names';

test('random names look like Docker\'s and avoid taken ones', () => {
  assert.ok(NAME_ADJECTIVES.length >= 100 && NAME_SURNAMES.length >= 150);
  for (let i = 0; i < 2000; i++) {
    const n = randomName();
    assert.match(n, /^[a-z]+_[a-z]+$/);
    assert.notEqual(n, 'boring_wozniak');
    validateName(n);
  }
  const taken = new Set<string>();
  for (let i = 0; i < 50; i++) taken.add(randomName((n) => taken.has(n)));
  assert.equal(taken.size, 50);
  // Everything plain taken: a digit is appended.
  assert.match(randomName((n) => !/\d$/.test(n)), /^[a-z]+_[a-z]+\d$/);
});

test('validateName follows Docker\'s regex and message', () => {
  assert.equal(validateName('/web'), 'web');
  assert.equal(validateName('my.app-1_x'), 'my.app-1_x');
  assert.equal(validateName(''), undefined);
  assert.equal(validateName(undefined), undefined);
  for (const bad of ['a', '-web', 'we b', 'x/y', '_x', 'é']) {
    assert.throws(() => validateName(bad), (e: unknown) => e instanceof BerthError && e.kind === 'invalid-argument'
      && e.message === `Invalid container name (${bad}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  }
});
