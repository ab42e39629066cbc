/**
 * Pure parts of the archive area: tar safety scanner, compression sniffing,
 * --change parser, Go FileMode bits, in-root path resolution, and the
 * upperdir -> changes / layer tar conversion on a crafted upperdir (mknod
 * whiteouts and opaque xattrs need root; skipped otherwise).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Readable } from 'node:stream';
import * as zlib from 'node:zlib';
import * as tar from 'tar-stream';
import { TarHeaderScanner, checkEntryPath, checkLinkTarget } from '../../src/image/tarcheck';
import { decompressed, detectCompression } from '../../src/common/compression';
import { applyChanges } from '../../src/image/import';
import { goFileMode } from '../../src/container/archive';
import { computeChanges, scanUpperDir, upperDirToLayerTar } from '../../src/store/changes';

type Entry = { name: string; type?: any; linkname?: string; data?: string | Buffer; mode?: number };

export async function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => { for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c); })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const body = e.type === undefined || e.type === 'file' ? Buffer.from(e.data ?? '') : undefined;
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (body) pack.entry({ name: e.name, type: 'file', mode: e.mode ?? 0o644 }, body, cb);
      else pack.entry({ name: e.name, type: e.type, linkname: e.linkname, mode: e.mode ?? 0o755 }, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

function scan(buf: Buffer, chunk = 700): void {
  const s = new TarHeaderScanner('layer');
  for (let i = 0; i < buf.length; i += chunk) s.push(buf.subarray(i, i + chunk));
  s.end();
}

test('tar scanner accepts a normal layer, including long names and safe links', async () => {
  const long = 'd/' + 'x'.repeat(150) + '/file';
  const buf = await makeTar([
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', data: 'ELF' },
    { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox' },
    { name: 'bin/ls', type: 'symlink', linkname: 'busybox' },
    { name: 'bin/cat', type: 'link', linkname: 'bin/busybox' },
    { name: long, data: 'deep' },
  ]);
  scan(buf);
  scan(buf, 1);
});

test('tar scanner refuses escapes, truncation and non-tar input', async () => {
  const bad: Array<[string, Entry[]]> = [
    ['..', [{ name: '../evil', data: 'x' }]],
    ['nested ..', [{ name: 'a/../../evil', data: 'x' }]],
    ['absolute', [{ name: '/etc/passwd', data: 'x' }]],
    ['symlink up', [{ name: 'a/link', type: 'symlink', linkname: '../../etc' }]],
    ['hardlink up', [{ name: 'h', type: 'link', linkname: '../outside' }]],
    ['hardlink absolute', [{ name: 'h', type: 'link', linkname: '/etc/shadow' }]],
  ];
  for (const [what, entries] of bad) {
    const buf = await makeTar(entries);
    assert.throws(() => scan(buf), /invalid layer entry/, what);
  }
  const good = await makeTar([{ name: 'f', data: 'x'.repeat(3000) }]);
  assert.throws(() => scan(good.subarray(0, 1536)), /truncated/);
  assert.throws(() => scan(Buffer.from('{"not":"a tar"}'.padEnd(1024, ' '))), /not a tar/);
  assert.throws(() => scan(Buffer.alloc(0)), /empty or not a tar/);
});

test('entry path and link checks follow Docker breakout rules', () => {
  assert.equal(checkEntryPath('./a/b/'), 'a/b');
  assert.throws(() => checkEntryPath('/abs'));
  checkLinkTarget('a/b/c', 'symlink', '../../x');
  assert.throws(() => checkLinkTarget('a/b/c', 'symlink', '../../../x'));
  checkLinkTarget('a', 'symlink', '/anything/absolute');
});

test('compression sniffing and transparent decompression', async () => {
  assert.equal(detectCompression(Buffer.from([0x1f, 0x8b, 8])), 'gzip');
  assert.equal(detectCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), 'xz');
  assert.equal(detectCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'zstd');
  assert.equal(detectCompression(Buffer.from('ustar')), 'none');
  const data = Buffer.from('hello world '.repeat(1000));
  const read = async (buf: Buffer) => {
    const { stream, compression } = await decompressed(Readable.from([buf.subarray(0, 3), buf.subarray(3)]));
    const parts: Buffer[] = [];
    for await (const c of stream) parts.push(c as Buffer);
    return { out: Buffer.concat(parts), compression };
  };
  assert.deepEqual(await read(data), { out: data, compression: 'none' });
  assert.deepEqual(await read(zlib.gzipSync(data)), { out: data, compression: 'gzip' });
  for (const [tool, kind] of [['xz', 'xz'], ['zstd', 'zstd']] as const) {
    const r = spawnSync(tool, ['-c'], { input: data });
    if (r.status !== 0) continue;
    assert.deepEqual(await read(r.stdout), { out: data, compression: kind });
  }
  const corrupt = zlib.gzipSync(data).subarray(0, 40);
  await assert.rejects(read(corrupt));
});

test('--change parser: Dockerfile instructions allowed in import/commit', () => {
  const cfg = applyChanges({ Env: ['PATH=/bin'] }, [
    'CMD ["sh"]', 'ENV A=1 B="two words"', 'ENV C 3 4', 'ENV PATH=$PATH:/x', 'WORKDIR /app', 'WORKDIR sub',
    'USER nobody', 'EXPOSE 80/tcp 53/udp 8080', 'LABEL k=v "x y"=z', 'VOLUME ["/data"]', 'VOLUME /a /b',
    'STOPSIGNAL SIGTERM', 'ONBUILD run echo hi',
  ]);
  assert.deepEqual(cfg.Cmd, ['sh']);
  assert.deepEqual(cfg.Env, ['PATH=/bin:/x', 'A=1', 'B=two words', 'C=3 4']);
  assert.equal(cfg.WorkingDir, '/app/sub');
  assert.equal(cfg.User, 'nobody');
  assert.deepEqual(cfg.ExposedPorts, { '80/tcp': {}, '53/udp': {}, '8080/tcp': {} });
  assert.deepEqual(cfg.Labels, { k: 'v', 'x y': 'z' });
  assert.deepEqual(cfg.Volumes, { '/data': {}, '/a': {}, '/b': {} });
  assert.equal(cfg.StopSignal, 'SIGTERM');
  assert.deepEqual(cfg.OnBuild, ['RUN echo hi']);
  assert.deepEqual(applyChanges({}, ['CMD echo hi']).Cmd, ['/bin/sh', '-c', 'echo hi']);
  assert.equal(applyChanges({ Cmd: ['x'] }, ['ENTRYPOINT ["/e"]']).Cmd, null);
  assert.throws(() => applyChanges({}, ['FOO bar']), /^BerthError: dockerfile parse error on line 1: unknown instruction: FOO$/);
  assert.throws(() => applyChanges({}, ['CMD ["a"]', 'BAR x']), /line 2: unknown instruction: BAR/);
  assert.throws(() => applyChanges({}, ['RUN echo']), /run is not a valid change command/);
});

test('Go FileMode bits for the cp stat header', () => {
  assert.equal(goFileMode(0o100644), 420);
  assert.equal(goFileMode(0o040755), 2147484141);
  assert.equal(goFileMode(0o120777), 134218239);
  assert.equal(goFileMode(0o041777), 2147484159 + 2 ** 20 - 0o1000 + 0o1000);
});

const isRoot = process.getuid?.() === 0 && spawnSync('getfattr', ['--version']).status === 0;

test('upperdir -> Docker change list and OCI layer tar (whiteouts, opaque dirs)', { skip: !isRoot && 'needs root and getfattr (mknod, trusted.* xattrs)' }, async () => {
  const base = fs.mkdtempSync('/var/tmp/h2-upper-');
  try {
    const lower = path.join(base, 'lower');
    const upper = path.join(base, 'upper');
    for (const d of ['etc', 'tmp', 'opq', 'same']) fs.mkdirSync(path.join(lower, d), { recursive: true });
    fs.writeFileSync(path.join(lower, 'etc/passwd'), 'root');
    fs.writeFileSync(path.join(lower, 'etc/group'), 'root');
    fs.writeFileSync(path.join(lower, 'opq/old'), 'old');
    fs.mkdirSync(upper);
    fs.mkdirSync(path.join(upper, 'etc'));
    fs.writeFileSync(path.join(upper, 'etc/group'), 'changed');
    assert.equal(spawnSync('mknod', [path.join(upper, 'etc/passwd'), 'c', '0', '0']).status, 0);
    fs.mkdirSync(path.join(upper, 'tmp'));
    fs.writeFileSync(path.join(upper, 'tmp/new'), 'new');
    fs.mkdirSync(path.join(upper, 'opq'));
    fs.writeFileSync(path.join(upper, 'opq/fresh'), 'f');
    assert.equal(spawnSync('setfattr', ['-n', 'trusted.overlay.opaque', '-v', 'y', path.join(upper, 'opq')]).status, 0);
    // A directory copied up unchanged (same mtime/mode) is not a change.
    fs.mkdirSync(path.join(upper, 'same'));
    const st = fs.statSync(path.join(lower, 'same'));
    fs.chmodSync(path.join(upper, 'same'), st.mode & 0o7777);
    fs.utimesSync(path.join(lower, 'same'), new Date(5000), new Date(5000));
    fs.utimesSync(path.join(upper, 'same'), new Date(5000), new Date(5000));
    fs.utimesSync(path.join(upper, 'tmp'), new Date(1000), new Date(1000));
    fs.mkdirSync(path.join(upper, 'proc')); // runtime mount point: never listed

    const entries = await scanUpperDir(upper);
    const changes = computeChanges(entries, [lower]);
    assert.deepEqual(changes.map((c) => `${'CAD'[c.Kind]} ${c.Path}`), [
      'C /etc', 'C /etc/group', 'D /etc/passwd', 'C /opq', 'A /opq/fresh', 'C /tmp', 'A /tmp/new',
    ]);

    const names: string[] = [];
    const extract = tar.extract();
    extract.on('entry', (h, s, next) => { names.push(`${h.type}:${h.name}`); s.resume(); s.on('end', next); });
    await new Promise<void>((resolve, reject) => {
      upperDirToLayerTar(upper, entries).pipe(extract as any);
      extract.on('finish', resolve);
      extract.on('error', reject);
    });
    assert.deepEqual(names, [
      'directory:etc/', 'file:etc/group', 'file:etc/.wh.passwd', 'directory:opq/', 'file:opq/.wh..wh..opq',
      'file:opq/fresh', 'directory:same/', 'directory:tmp/', 'file:tmp/new',
    ]);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});
