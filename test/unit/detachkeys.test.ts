import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DetachKeyMatcher, parseDetachKeys, DEFAULT_DETACH_KEYS } from '../../src/container/detachkeys';

test('detach keys parse like docker', () => {
  assert.deepEqual(parseDetachKeys(undefined), DEFAULT_DETACH_KEYS);
  assert.deepEqual(parseDetachKeys('ctrl-p,ctrl-q'), [0x10, 0x11]);
  assert.deepEqual(parseDetachKeys('ctrl-a,x'), [1, 0x78]);
  assert.deepEqual(parseDetachKeys('ctrl-@,ctrl-[,ctrl-_'), [0, 27, 31]);
  assert.throws(() => parseDetachKeys('ctrl-1'), /Invalid detach keys \(ctrl-1\) provided/);
  assert.throws(() => parseDetachKeys('foo'), /Invalid detach keys/);
});

test('matcher forwards ordinary bytes and stops at the sequence, across chunks', () => {
  const m = new DetachKeyMatcher([0x10, 0x11]);
  assert.deepEqual(m.feed(Buffer.from('ab')), { forward: Buffer.from('ab'), detached: false });
  // a lone ctrl-p is held back, then released when the next byte is not ctrl-q
  assert.deepEqual(m.feed(Buffer.from([0x10])), { forward: Buffer.alloc(0), detached: false });
  assert.deepEqual(m.feed(Buffer.from('c')), { forward: Buffer.from([0x10, 0x63]), detached: false });
  const r = m.feed(Buffer.from([0x64, 0x10, 0x11, 0x65]));
  assert.deepEqual(r, { forward: Buffer.from('d'), detached: true });
});
