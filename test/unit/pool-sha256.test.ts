import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PoolSha256 } from '../../src/common/linux';

test('PoolSha256 hashes its updates in order, as createHash does', async () => {
  const pool = new PoolSha256();
  const ref = createHash('sha256');
  for (let i = 0; i < 200; i++) {
    const b = i % 17 === 0 ? Buffer.alloc(0) : randomBytes((i * 7919) % 300_000);
    pool.update(b);
    ref.update(b);
    if (i % 13 === 0) await pool.settled(1 << 20);
  }
  assert.equal(await pool.digest(), 'sha256:' + ref.digest('hex'));
});

test('PoolSha256 of nothing is the empty digest; a spent hash refuses more', async () => {
  const pool = new PoolSha256();
  assert.equal(await pool.digest(), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  await assert.rejects(pool.digest(), /twice/);
  pool.update(Buffer.from('late'));
  await assert.rejects(pool.settled(), /after the digest/);
});
