import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { ContextTar, tarOf } from '../../src/cli/contexttar';
import { IgnoreMatcher, readDockerignore } from '../../src/build/dockerignore';

async function collect(r: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of r) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** The context tar as the CLI wrote it with tar-stream before (the reference the direct writer must match). */
async function referenceTar(dir: string, ignore: IgnoreMatcher, keep: Set<string>, extra?: { name: string; data: Buffer; mtime: Date }): Promise<Buffer> {
  const pack = tar.pack();
  const add = (hdr: Partial<tar.Header> & { name: string }, body?: Buffer) => new Promise<void>((resolve, reject) => {
    if (body) pack.entry(hdr, body, (e) => (e ? reject(e) : resolve()));
    else pack.entry(hdr, (e) => (e ? reject(e) : resolve()));
  });
  const walk = async (rel: string): Promise<void> => {
    for (const name of fs.readdirSync(rel ? path.join(dir, rel) : dir).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const abs = path.join(dir, r);
      const st = fs.lstatSync(abs);
      const excluded = !keep.has(r) && ignore.excluded(r);
      const common = { name: r, mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0 };
      if (st.isDirectory()) {
        if (!excluded) await add({ ...common, name: r + '/', type: 'directory' });
        if (!excluded || ignore.mayReinclude(r)) await walk(r);
      } else if (excluded) {
        continue;
      } else if (st.isSymbolicLink()) {
        await add({ ...common, type: 'symlink', linkname: fs.readlinkSync(abs) });
      } else if (st.isFile()) {
        await add({ ...common, type: 'file', size: st.size }, fs.readFileSync(abs));
      }
    }
  };
  const out = collect(Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false }));
  await walk('');
  if (extra) await add({ name: extra.name, mode: 0o644, type: 'file', mtime: extra.mtime }, extra.data);
  pack.finalize();
  return out;
}

function makeContext(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctxtar-'));
  fs.writeFileSync(path.join(dir, 'Dockerfile'), 'FROM busybox\nCOPY . /x\n');
  fs.writeFileSync(path.join(dir, '.dockerignore'), 'ignored\n*.log\n!keep.log\n');
  fs.writeFileSync(path.join(dir, 'ignored'), 'no');
  fs.writeFileSync(path.join(dir, 'a.log'), 'no');
  fs.writeFileSync(path.join(dir, 'keep.log'), 'yes');
  fs.writeFileSync(path.join(dir, 'empty'), '');
  fs.writeFileSync(path.join(dir, 'exact512'), Buffer.alloc(512, 7));
  fs.writeFileSync(path.join(dir, 'mode0'), 'x', { mode: 0 });
  fs.chmodSync(path.join(dir, 'mode0'), 0);
  fs.mkdirSync(path.join(dir, 'sub/deeper'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'sub/deeper/f.bin'), Buffer.alloc(1000, 1));
  fs.chmodSync(path.join(dir, 'sub/deeper/f.bin'), 0o4755);
  // bigger than one read piece and one batch: read in pieces
  const big = Buffer.alloc(2 * 1024 * 1024 + 123);
  for (let i = 0; i < big.length; i += 4096) big[i] = i & 0xff;
  fs.writeFileSync(path.join(dir, 'sub/big'), big);
  // a name longer than 100 bytes (ustar prefix), one too long for ustar (PAX), a non-ASCII name (PAX)
  const longDir = `${'d'.repeat(60)}/${'e'.repeat(60)}`;
  fs.mkdirSync(path.join(dir, longDir), { recursive: true });
  fs.writeFileSync(path.join(dir, longDir, 'f'.repeat(90)), 'long');
  fs.writeFileSync(path.join(dir, 'g'.repeat(120)), 'pax');
  fs.writeFileSync(path.join(dir, 'héllo wörld'), 'utf8');
  fs.symlinkSync('sub/deeper/f.bin', path.join(dir, 'link'));
  fs.symlinkSync('ü'.repeat(10), path.join(dir, 'link-utf8'));
  fs.symlinkSync('t'.repeat(150), path.join(dir, 'link-long'));
  return dir;
}

test('the context tar is the one tar-stream wrote, byte for byte (ustar, prefix, PAX, modes, big files)', async () => {
  const dir = makeContext();
  try {
    const ignore = new IgnoreMatcher(readDockerignore(fs.readFileSync(path.join(dir, '.dockerignore'), 'utf8')));
    const keep = new Set(['Dockerfile', '.dockerignore']);
    const mine = new ContextTar(dir, ignore, keep);
    const got = await collect(mine);
    const want = await referenceTar(dir, ignore, keep);
    assert.equal(got.length, want.length);
    assert.ok(got.equals(want));
    assert.equal(mine.bytes, got.length);
    // what an extractor sees: ignored files left out, the rest in sorted order
    const names: string[] = [];
    const ex = tar.extract();
    ex.on('entry', (h, s, next) => { names.push(h.name); s.resume(); s.on('end', next); });
    await new Promise<void>((resolve, reject) => { ex.on('finish', resolve); ex.on('error', reject); ex.end(got); });
    assert.ok(!names.includes('ignored') && !names.includes('a.log'));
    assert.ok(names.includes('keep.log') && names.includes('héllo wörld') && names.includes('g'.repeat(120)));
    assert.deepEqual(names.slice(0, 2), ['.dockerignore', 'Dockerfile']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an extra Dockerfile member goes last; tarOf wraps in-memory members', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctxtar-'));
  try {
    fs.writeFileSync(path.join(dir, 'x'), 'x');
    const ignore = new IgnoreMatcher([]);
    const extra = { name: '.dockerfile.0123456789ab', data: Buffer.from('FROM scratch\n') };
    const got = await collect(new ContextTar(dir, ignore, new Set(), extra));
    // the extra member's mtime is "now": compare with the reference made with the same mtime
    // (its header follows x's header and padded body)
    const mtime = new Date(parseInt(got.toString('latin1', 1024 + 136, 1024 + 147), 8) * 1000);
    assert.ok(got.equals(await referenceTar(dir, ignore, new Set(), { ...extra, mtime })));

    const when = new Date(1_700_000_000_000);
    const one = tarOf([{ member: { name: 'Dockerfile', type: 'file', mode: 0o644, mtime: when }, body: Buffer.from('FROM busybox\n') }]);
    const pack = tar.pack();
    pack.entry({ name: 'Dockerfile', mode: 0o644, mtime: when }, Buffer.from('FROM busybox\n'));
    pack.finalize();
    assert.ok(one.equals(await collect(Readable.from(pack as AsyncIterable<Buffer>, { objectMode: false }))));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a file that grows or shrinks while the context is read is an error, and its file is closed', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ctxtar-'));
  try {
    // bigger than a batch, so the header goes out before the body is read to the end
    const file = path.join(dir, 'grows');
    fs.writeFileSync(file, Buffer.alloc(3 * 1024 * 1024));
    const t = new ContextTar(dir, new IgnoreMatcher([]), new Set());
    // paused mode: nothing more is read than the first batch until asked
    await new Promise((resolve) => t.once('readable', resolve));
    const first = t.read() as Buffer;
    assert.ok(first.length > 0 && first.length < 3 * 1024 * 1024);
    fs.appendFileSync(file, 'more');
    await assert.rejects(collect(t), /grows changed while the context was read/);
    const fds = fs.readdirSync('/proc/self/fd').map((fd) => { try { return fs.readlinkSync(`/proc/self/fd/${fd}`); } catch { return ''; } });
    assert.ok(!fds.includes(file), 'file left open');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
