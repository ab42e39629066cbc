import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { applyLayer, createLayerTar } from '../../src/store/layer';

type E = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo'; body?: string; linkname?: string; mode?: number; uid?: number; gid?: number; devmajor?: number; devminor?: number };

async function makeTar(entries: E[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => { for await (const c of pack) chunks.push(c as Buffer); })();
  for (const e of entries) {
    await new Promise<void>((res, rej) => pack.entry(
      { name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644), uid: e.uid ?? 0, gid: e.gid ?? 0, mtime: new Date('2020-01-02T03:04:05Z'), devmajor: e.devmajor, devminor: e.devminor },
      Buffer.from(e.body ?? ''), (err) => (err ? rej(err) : res())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'bt-unit-layer-'));
}

test('files, dirs, symlinks, hardlinks, modes, owners, devices, diffID', async () => {
  const dir = tmp();
  try {
    const root = path.join(dir, 'root');
    fs.mkdirSync(root);
    const t = await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hello', body: 'hi\n', uid: 1000, gid: 1001 },
      { name: 'bin/tool', body: '#!/bin/sh\n', mode: 0o4755 },
      { name: 'bin/tool2', type: 'link', linkname: 'bin/tool' },
      { name: 'bin/sh', type: 'symlink', linkname: '/bin/tool' },
      { name: 'tmp/', type: 'directory', mode: 0o1777 },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'run/fifo', type: 'fifo', mode: 0o600 },
    ]);
    const r = await applyLayer(Readable.from([t]), root);
    assert.equal(r.diffID, 'sha256:' + createHash('sha256').update(t).digest('hex'));
    assert.equal(r.tarSize, t.length);
    assert.equal(fs.readFileSync(path.join(root, 'etc/hello'), 'utf8'), 'hi\n');
    const st = fs.statSync(path.join(root, 'etc/hello'));
    assert.equal(st.uid, 1000);
    assert.equal(st.gid, 1001);
    assert.equal(st.mtime.toISOString(), '2020-01-02T03:04:05.000Z');
    assert.equal(fs.statSync(path.join(root, 'bin/tool')).mode & 0o7777, 0o4755);
    assert.equal(fs.statSync(path.join(root, 'bin/tool')).ino, fs.statSync(path.join(root, 'bin/tool2')).ino);
    assert.equal(fs.readlinkSync(path.join(root, 'bin/sh')), '/bin/tool');
    assert.equal(fs.statSync(path.join(root, 'tmp')).mode & 0o7777, 0o1777);
    assert.equal(fs.statSync(path.join(root, 'etc')).mtime.toISOString(), '2020-01-02T03:04:05.000Z');
    const dev = fs.lstatSync(path.join(root, 'dev/null'));
    assert.ok(dev.isCharacterDevice());
    assert.equal(dev.rdev, (1 << 8) | 3);
    assert.ok(fs.lstatSync(path.join(root, 'run/fifo')).isFIFO());
    // size: two file bodies (hardlink counted once) + symlink target
    assert.equal(r.size, 3 + 10 + '/bin/tool'.length);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('gzip input is detected; the diffID is of the uncompressed tar', async () => {
  const dir = tmp();
  try {
    const t = await makeTar([{ name: 'a.txt', body: 'a' }]);
    const r = await applyLayer(Readable.from([zlib.gzipSync(t)]), dir);
    assert.equal(r.diffID, 'sha256:' + createHash('sha256').update(t).digest('hex'));
    assert.equal(fs.readFileSync(path.join(dir, 'a.txt'), 'utf8'), 'a');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('whiteouts become overlay whiteouts, opaque markers set the xattr', async () => {
  const dir = tmp();
  try {
    const t = await makeTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/.wh.removed', body: '' },
      { name: 'var/', type: 'directory' },
      { name: 'var/.wh..wh..opq', body: '' },
      { name: 'var/new', body: 'n' },
    ]);
    await applyLayer(Readable.from([t]), dir);
    const wh = fs.lstatSync(path.join(dir, 'etc/removed'));
    assert.ok(wh.isCharacterDevice());
    assert.equal(wh.rdev, 0);
    assert.ok(!fs.existsSync(path.join(dir, 'etc/.wh.removed')));
    assert.ok(!fs.existsSync(path.join(dir, 'var/.wh..wh..opq')));
    const x = execFileSync('getfattr', ['--only-values', '-n', 'trusted.overlay.opaque', path.join(dir, 'var')]).toString();
    assert.equal(x, 'y');
    assert.equal(fs.readFileSync(path.join(dir, 'var/new'), 'utf8'), 'n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('malicious layers are refused and write nothing outside the root', async () => {
  const cases: Array<[string, E[], RegExp]> = [
    ['.. path', [{ name: '../escaped', body: 'x' }], /\.\." component/],
    ['nested .. path', [{ name: 'a/../../escaped', body: 'x' }], /\.\." component/],
    ['symlink escape then write through it', [
      { name: 'evil', type: 'symlink', linkname: '../../../../..' },
      { name: 'evil/escaped', body: 'x' },
    ], /points outside the layer root/],
    ['relative symlink escape', [
      { name: 'd/', type: 'directory' },
      { name: 'd/up', type: 'symlink', linkname: '../..' },
      { name: 'd/up/escaped', body: 'x' },
    ], /points outside the layer root/],
    ['hardlink to a host file', [{ name: 'passwd', type: 'link', linkname: '/etc/passwd' }], /not a file of this layer/],
    ['hardlink with ..', [{ name: 'passwd', type: 'link', linkname: '../../../../etc/passwd' }], /\.\." component/],
    ['hardlink through escaping symlink', [
      { name: 'evil', type: 'symlink', linkname: '/../..' },
      { name: 'passwd', type: 'link', linkname: 'evil/etc/passwd' },
    ], /outside the layer root|not a file of this layer/],
  ];
  for (const [what, entries, re] of cases) {
    const dir = tmp();
    try {
      const root = path.join(dir, 'a', 'b', 'root');
      fs.mkdirSync(root, { recursive: true });
      const t = await makeTar(entries);
      await assert.rejects(applyLayer(Readable.from([t]), root), re, what);
      const outside = (function walk(d: string): string[] {
        return fs.readdirSync(d).flatMap((n) => {
          const p = path.join(d, n);
          if (p === root) return [];
          return fs.lstatSync(p).isDirectory() ? [p, ...walk(p)] : [p];
        });
      })(dir);
      assert.deepEqual(outside, [path.join(dir, 'a'), path.join(dir, 'a', 'b')], `${what}: wrote outside the root`);
      assert.ok(!fs.existsSync('/escaped') && !fs.existsSync(path.join(os.tmpdir(), 'escaped')), what);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('absolute entry names stay inside the root; symlinks inside the root are followed', async () => {
  const dir = tmp();
  try {
    const t = await makeTar([
      { name: '/etc/abs', body: 'x' },
      { name: 'usr/lib/', type: 'directory' },
      { name: 'lib', type: 'symlink', linkname: '/usr/lib' },
      { name: 'lib/libx.so', body: 'elf' },
    ]);
    await applyLayer(Readable.from([t]), dir);
    assert.equal(fs.readFileSync(path.join(dir, 'etc/abs'), 'utf8'), 'x');
    assert.equal(fs.readFileSync(path.join(dir, 'usr/lib/libx.so'), 'utf8'), 'elf');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('createLayerTar round-trips through applyLayer with a stable diffID', async () => {
  const dir = tmp();
  try {
    const src = path.join(dir, 'src');
    fs.mkdirSync(path.join(src, 'bin'), { recursive: true });
    fs.writeFileSync(path.join(src, 'bin/a'), 'AAAA');
    fs.linkSync(path.join(src, 'bin/a'), path.join(src, 'bin/b'));
    fs.symlinkSync('a', path.join(src, 'bin/c'));
    const mtime = new Date('2000-01-01T00:00:00Z');
    const out1 = path.join(dir, 'o1');
    const out2 = path.join(dir, 'o2');
    fs.mkdirSync(out1);
    fs.mkdirSync(out2);
    const r1 = await applyLayer(createLayerTar(src, { mtime }), out1);
    const r2 = await applyLayer(createLayerTar(src, { mtime }), out2);
    assert.equal(r1.diffID, r2.diffID);
    assert.equal(fs.readFileSync(path.join(out1, 'bin/b'), 'utf8'), 'AAAA');
    assert.equal(fs.statSync(path.join(out1, 'bin/a')).ino, fs.statSync(path.join(out1, 'bin/b')).ino);
    assert.equal(fs.readlinkSync(path.join(out1, 'bin/c')), 'a');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('thousands of small files go through the batched writer intact (content, mode, owner, times, rewrites, hardlinks)', async () => {
  const dir = tmp();
  try {
    const root = path.join(dir, 'root');
    fs.mkdirSync(root);
    const entries: E[] = [{ name: 'many/', type: 'directory' }];
    for (let i = 0; i < 1200; i++) {
      // sizes span empty files, a few bytes, and 300 KB files that fill a batch by bytes before by count
      const body = i % 97 === 0 ? 'x'.repeat(300_000 + i) : i % 10 === 0 ? '' : `file ${i}\n`.repeat(i % 50);
      entries.push({ name: `many/f${i}`, body, mode: i % 3 === 0 ? 0o600 : i % 3 === 1 ? 0o755 : 0o4711, uid: i % 5 === 0 ? 1000 + i : 0, gid: i % 7 === 0 ? 2000 : 0 });
    }
    // A later entry replaces one still waiting in a batch; a hardlink names one just written.
    entries.push({ name: 'many/f5', body: 'replaced\n', mode: 0o640 });
    entries.push({ name: 'many/link-to-f1199', type: 'link', linkname: 'many/f1199' });
    const t = await makeTar(entries);
    const r = await applyLayer(Readable.from([t]), root);
    assert.equal(r.diffID, 'sha256:' + createHash('sha256').update(t).digest('hex'));
    for (let i = 0; i < 1200; i++) {
      const e = entries[i + 1];
      const p = path.join(root, e.name);
      const st = fs.statSync(p);
      if (i === 5) {
        assert.equal(fs.readFileSync(p, 'utf8'), 'replaced\n');
        assert.equal(st.mode & 0o7777, 0o640);
        continue;
      }
      assert.equal(fs.readFileSync(p, 'utf8'), e.body, e.name);
      assert.equal(st.mode & 0o7777, e.mode, e.name);
      if (process.getuid?.() === 0) {
        assert.equal(st.uid, e.uid, e.name);
        assert.equal(st.gid, e.gid, e.name);
      }
      assert.equal(st.mtime.toISOString(), '2020-01-02T03:04:05.000Z', e.name);
    }
    assert.equal(fs.statSync(path.join(root, 'many/link-to-f1199')).ino, fs.statSync(path.join(root, 'many/f1199')).ino);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a small file the kernel refuses fails the layer with an error naming it', async () => {
  const dir = tmp();
  try {
    const root = path.join(dir, 'root');
    fs.mkdirSync(root);
    const long = 'n'.repeat(300); // longer than NAME_MAX: open(2) answers ENAMETOOLONG
    const t = await makeTar([{ name: 'ok', body: 'fine\n' }, { name: `d/${long}`, body: 'never\n' }]);
    await assert.rejects(applyLayer(Readable.from([t]), root), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ENAMETOOLONG');
      assert.match(err.message, new RegExp(`open: .* ${root}/d/${long}$`));
      return true;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
