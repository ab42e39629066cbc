import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { ContentStore, sha256Digest } from '../../src/store/content';

async function withStore(fn: (s: ContentStore, dir: string) => Promise<void>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-unit-content-'));
  try {
    const s = new ContentStore(path.join(dir, 'content'));
    await s.open();
    await fn(s, dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('streams a blob in, verifies it, reads it back', async () => {
  await withStore(async (s) => {
    const data = Buffer.alloc(3 << 20, 7);
    const want = sha256Digest(data);
    const chunks = [data.subarray(0, 1 << 20), data.subarray(1 << 20)];
    const r = await s.writeStream(Readable.from(chunks), { digest: want, size: data.length });
    assert.equal(r.digest, want);
    assert.equal(r.size, data.length);
    assert.ok(await s.exists(want));
    assert.equal(await s.size(want), data.length);
    const back: Buffer[] = [];
    for await (const c of await s.readStream(want)) back.push(c as Buffer);
    assert.ok(Buffer.concat(back).equals(data));
    assert.deepEqual(fs.readdirSync(s.ingestDir), []);
    await s.delete(want);
    assert.equal(await s.exists(want), false);
  });
});

test('digest mismatch is rejected and leaves nothing behind', async () => {
  await withStore(async (s) => {
    const wrong = 'sha256:' + '0'.repeat(64);
    await assert.rejects(s.writeStream(Readable.from([Buffer.from('hello')]), { digest: wrong }), /digest mismatch/);
    assert.deepEqual(fs.readdirSync(s.ingestDir), []);
    assert.deepEqual(fs.readdirSync(s.blobsDir), []);
    await assert.rejects(s.writeStream(Readable.from([Buffer.from('hello')]), { size: 3 }), /size mismatch/);
    assert.deepEqual(fs.readdirSync(s.blobsDir), []);
    await assert.rejects(s.readStream(wrong), /not found/);
  });
});

test('a failing source aborts the write', async () => {
  await withStore(async (s) => {
    async function* bad() { yield Buffer.from('part'); throw new Error('source broke'); }
    await assert.rejects(s.writeStream(Readable.from(bad())), /source broke/);
    assert.deepEqual(fs.readdirSync(s.ingestDir), []);
    assert.deepEqual(fs.readdirSync(s.blobsDir), []);
  });
});

test('open() clears partial writes left by a crash', async () => {
  await withStore(async (s) => {
    fs.writeFileSync(path.join(s.ingestDir, 'leftover'), 'x');
    await new ContentStore(s.root).open();
    assert.deepEqual(fs.readdirSync(s.ingestDir), []);
  });
});
