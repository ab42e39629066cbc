import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { KeyedMutex, Mutex } from '../../src/common/mutex';

test('Mutex runs holders one at a time, in order, and a failure does not block the next', async () => {
  const m = new Mutex();
  const log: string[] = [];
  let release!: () => void;
  const first = m.run(async () => { log.push('a start'); await new Promise<void>((r) => { release = r; }); log.push('a end'); return 1; });
  const second = m.run(async () => { log.push('b'); throw new Error('b failed'); });
  const third = m.run(async () => { log.push('c'); return 3; });
  await Promise.resolve();
  assert.deepEqual(log, ['a start'], 'b and c wait for a');
  release();
  assert.equal(await first, 1);
  await assert.rejects(second, /b failed/);
  assert.equal(await third, 3);
  assert.deepEqual(log, ['a start', 'a end', 'b', 'c']);
});

test('KeyedMutex serialises per key only', async () => {
  const m = new KeyedMutex();
  const log: string[] = [];
  let release!: () => void;
  const x1 = m.run('x', async () => { await new Promise<void>((r) => { release = r; }); log.push('x1'); });
  const y = m.run('y', async () => { log.push('y'); });
  const x2 = m.run('x', async () => { log.push('x2'); });
  await y;
  assert.deepEqual(log, ['y'], 'another key does not wait');
  release();
  await Promise.all([x1, x2]);
  assert.deepEqual(log, ['y', 'x1', 'x2']);
});
