/**
 * save/load/import through a real berthd: round trips keep image IDs and
 * diff IDs; every docker-save layout and compression loads; crafted bad
 * archives (truncated, not a tar, missing layer, digest mismatch, path
 * escapes, bad tag) are refused and leave the store exactly as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import * as zlib from 'node:zlib';
import * as tar from 'tar-stream';
import { busyboxDaemonForFile } from '../helpers/daemon';

const d = busyboxDaemonForFile();

type Entry = { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; linkname?: string; data?: string | Buffer };

async function makeTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => { for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c); })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null) => (err ? reject(err) : resolve());
      if (!e.type || e.type === 'file') pack.entry({ name: e.name, type: 'file', mode: 0o644 }, Buffer.from(e.data ?? ''), cb);
      else pack.entry({ name: e.name, type: e.type, linkname: e.linkname, mode: 0o755 }, cb);
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

/** A one-layer image archive in the pre-25 docker save layout. */
async function legacyArchive(layer: Buffer, opts: { tags?: string[]; diffID?: string; omitLayer?: boolean; cmd?: string[] } = {}) {
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', created: '2024-01-01T00:00:00Z',
    config: { Cmd: opts.cmd ?? ['sh'] },
    rootfs: { type: 'layers', diff_ids: [opts.diffID ?? 'sha256:' + sha(layer)] },
  }));
  const id = sha(config);
  const v1 = sha('v1' + id);
  const entries: Entry[] = [
    { name: `${id}.json`, data: config },
    { name: `${v1}/`, type: 'directory' },
    { name: `${v1}/VERSION`, data: '1.0' },
    { name: `${v1}/json`, data: JSON.stringify({ id: v1 }) },
  ];
  if (!opts.omitLayer) entries.push({ name: `${v1}/layer.tar`, data: layer });
  entries.push({ name: 'manifest.json', data: JSON.stringify([{ Config: `${id}.json`, RepoTags: opts.tags ?? ['crafted:1'], Layers: [`${v1}/layer.tar`] }]) });
  return { tar: await makeTar(entries), id: 'sha256:' + id };
}

/** Everything the store holds: names under the data root (layer contents excluded) and metadata bytes. */
function storeState(): string[] {
  const out: string[] = [];
  const walk = (dir: string, rel: string, depth: number) => {
    for (const n of fs.readdirSync(dir).sort()) {
      const p = path.join(dir, n);
      const r = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(p);
      if (st.isDirectory()) {
        out.push(r + '/');
        if (depth < 3 && !/^snapshots\/\d+$/.test(r)) walk(p, r, depth + 1);
      } else if (r.startsWith('metadata/')) out.push(`${r} ${sha(fs.readFileSync(p))}`);
      else out.push(r);
    }
  };
  walk(d.dataRoot, '', 0);
  return out.filter((p) => !p.startsWith('containers') && !p.startsWith('tmp/'));
}

async function load(body: Buffer, quiet = true) {
  return d.api('POST', `/images/load?quiet=${quiet ? 1 : 0}`, body, { 'Content-Type': 'application/x-tar' });
}

function messages(raw: Buffer): any[] {
  return raw.toString('utf8').split('\r\n').filter(Boolean).map((l) => JSON.parse(l));
}

test('save -> rmi -> load keeps image ID, tags and diff IDs; existing layers are not stored twice', async () => {
  const before = (await d.api('GET', '/images/busybox/json')).body;
  const saved = await d.api('GET', '/images/get?names=busybox');
  assert.equal(saved.status, 200);
  assert.equal(saved.headers['content-type'], 'application/x-tar');
  const names: string[] = [];
  const ex = tar.extract();
  ex.on('entry', (h, s, next) => { names.push(h.name); s.resume(); s.on('end', next); });
  await new Promise<void>((res, rej) => { ex.on('finish', res); ex.on('error', rej); ex.end(saved.raw); });
  const hex = before.Id.slice(7);
  for (const n of ['manifest.json', 'repositories', 'oci-layout', 'index.json', `blobs/sha256/${hex}`, ...before.RootFS.Layers.map((l: string) => `blobs/sha256/${l.slice(7)}`)]) {
    assert.ok(names.includes(n), `${n} in saved archive (${names.join(', ')})`);
  }

  // Loading while the image exists: nothing new, layers reported as present.
  const again = await load(saved.raw, false);
  assert.equal(again.status, 200);
  const msgs = messages(again.raw);
  assert.ok(msgs.some((m) => m.status === 'Layer already exists'), JSON.stringify(msgs));
  assert.deepEqual(msgs.at(-1), { stream: 'Loaded image: busybox:latest\n' });

  // Tag a second name, remove both, load: same ID and layers back.
  assert.equal((await d.api('POST', '/images/busybox/tag?repo=saved&tag=x')).status, 201);
  const both = await d.api('GET', '/images/get?names=busybox&names=saved:x');
  assert.equal((await d.api('DELETE', '/images/saved:x')).status, 200);
  const r = await load(zlib.gzipSync(both.raw));
  assert.equal(r.status, 200, r.raw.toString());
  assert.deepEqual(messages(r.raw).map((m) => m.stream), ['Loaded image: busybox:latest\n', 'Loaded image: saved:x\n']);
  const after = (await d.api('GET', '/images/saved:x/json')).body;
  assert.equal(after.Id, before.Id);
  assert.deepEqual(after.RootFS.Layers, before.RootFS.Layers);
});

test('loads the pre-25 layout, xz/zstd-compressed archives, compressed layers and bare OCI layouts', async () => {
  const layer = await makeTar([{ name: 'hello.txt', data: 'hi' }, { name: 'bin', type: 'symlink', linkname: '/usr/bin' }]);
  const a = await legacyArchive(layer, { tags: ['legacy:1'] });
  let r = await load(a.tar);
  assert.equal(r.status, 200, r.raw.toString());
  assert.equal((await d.api('GET', '/images/legacy:1/json')).body.Id, a.id);

  for (const tool of ['xz', 'zstd']) {
    const b = await legacyArchive(layer, { tags: [`comp-${tool}:1`] });
    const c = spawnSync(tool, ['-c'], { input: b.tar });
    assert.equal(c.status, 0);
    r = await load(c.stdout);
    assert.equal(r.status, 200, r.raw.toString());
    assert.equal((await d.api('GET', `/images/comp-${tool}:1/json`)).status, 200);
  }

  // gzip-compressed layer member: diff ID is of the uncompressed tar.
  const layer2 = await makeTar([{ name: 'gz.txt', data: 'gz' }]);
  const g = await legacyArchive(layer2, { tags: ['gzlayer:1'], diffID: 'sha256:' + sha(layer2) });
  const gzArchive = await (async () => {
    const entries: Entry[] = [];
    const ex = tar.extract();
    ex.on('entry', (h, s, next) => {
      const parts: Buffer[] = [];
      s.on('data', (c: unknown) => { parts.push(c as Buffer); });
      s.on('end', () => {
        const data = Buffer.concat(parts);
        entries.push(h.type === 'directory' ? { name: h.name, type: 'directory' } : { name: h.name, data: h.name.endsWith('layer.tar') ? zlib.gzipSync(data) : data });
        next();
      });
    });
    await new Promise<void>((res, rej) => { ex.on('finish', res); ex.on('error', rej); ex.end(g.tar); });
    return makeTar(entries);
  })();
  r = await load(gzArchive);
  assert.equal(r.status, 200, r.raw.toString());
  assert.equal((await d.api('GET', '/images/gzlayer:1/json')).body.RootFS.Layers[0], 'sha256:' + sha(layer2));

  // Bare OCI layout (index.json only), untagged -> "Loaded image ID".
  const layer3 = await makeTar([{ name: 'oci.txt', data: 'oci' }]);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['sha256:' + sha(layer3)] } }));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:' + sha(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: 'sha256:' + sha(layer3), size: layer3.length }] }));
  const oci = await makeTar([
    { name: 'oci-layout', data: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', data: JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:' + sha(manifest), size: manifest.length }] }) },
    { name: `blobs/sha256/${sha(config)}`, data: config },
    { name: `blobs/sha256/${sha(manifest)}`, data: manifest },
    { name: `blobs/sha256/${sha(layer3)}`, data: layer3 },
  ]);
  r = await load(oci);
  assert.equal(r.status, 200, r.raw.toString());
  assert.deepEqual(messages(r.raw), [{ stream: `Loaded image ID: sha256:${sha(config)}\n` }]);
});

test('a big layer unpacked while the upload streams is stored and saved back byte for byte', async () => {
  const files: Entry[] = [{ name: 'd/', type: 'directory' }];
  for (let i = 0; i < 40; i++) files.push({ name: `d/f${i}`, data: Buffer.alloc(40000 + i, i) });
  files.push({ name: 'd/link', type: 'symlink', linkname: 'f1' }, { name: 'd/hard', type: 'link', linkname: 'd/f2' });
  const layer = await makeTar(files);
  assert.ok(layer.length >= 1 << 20);
  const { tar: body, id } = await legacyArchive(layer, { tags: ['bigstream:1'] });
  const r = await load(body, false);
  assert.equal(r.status, 200, r.raw.toString());
  assert.ok(messages(r.raw).some((m) => m.status === 'Loading layer'), r.raw.toString());
  assert.equal((await d.api('GET', `/images/${id}/json`)).body.Id, id);
  const saved = (await d.api('GET', '/images/bigstream:1/get')).raw;
  const blobs = new Map<string, Buffer>();
  const ex = tar.extract();
  ex.on('entry', (h, st, next) => { const c: Buffer[] = []; st.on('data', (b) => { c.push(b as Buffer); }); st.on('end', () => { blobs.set(h.name, Buffer.concat(c)); next(); }); });
  await new Promise<void>((res, rej) => { ex.on('finish', res); ex.on('error', rej); ex.end(saved); });
  assert.ok(blobs.get(`blobs/sha256/${sha(layer)}`)?.equals(layer), 'layer tar rebuilt byte for byte');
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'snapshots')).filter((n) => n.startsWith('tmp-')), []);
  assert.equal((await d.api('DELETE', '/images/bigstream:1')).status, 200);
});

test('bad archives are refused and the store is left exactly as before', async () => {
  const good = await makeTar([{ name: 'ok.txt', data: 'ok' }]);
  const saved = (await d.api('GET', '/images/get?names=busybox')).raw;
  const cases: Array<[string, Buffer, RegExp]> = [
    ['truncated tar', saved.subarray(0, Math.floor(saved.length / 2)), /truncated|unexpected EOF|invalid/i],
    ['truncated gzip', zlib.gzipSync(saved).subarray(0, 5000), /invalid|unexpected end/i],
    ['not a tar', Buffer.from('this is not a tarball at all\n'.repeat(100)), /not a tar|invalid archive/i],
    ['missing layer', (await legacyArchive(good, { omitLayer: true })).tar, /missing/],
    ['digest mismatch', (await legacyArchive(good, { diffID: 'sha256:' + 'ab'.repeat(32) })).tar, /invalid diffID/],
    ['.. in layer', (await legacyArchive(await makeTar([{ name: '../evil', data: 'x' }]))).tar, /escapes/],
    ['absolute path in layer', (await legacyArchive(await makeTar([{ name: '/etc/evil', data: 'x' }]))).tar, /absolute/],
    ['escaping symlink', (await legacyArchive(await makeTar([{ name: 'a/l', type: 'symlink', linkname: '../../../etc' }]))).tar, /outside/],
    ['escaping hardlink', (await legacyArchive(await makeTar([{ name: 'h', type: 'link', linkname: '../../etc/passwd' }]))).tar, /outside/],
    ['bad tag', (await legacyArchive(good, { tags: ['UPPER:1'] })).tar, /must be lowercase/],
    ['.. in archive', await makeTar([{ name: '../manifest.json', data: '[]' }]), /escapes/],
    // Layers of 1 MiB and more are unpacked while the upload streams (prepared-layer.ts): same refusals, nothing left behind.
    ['.. in a big layer', (await legacyArchive(await makeTar([{ name: 'big.bin', data: Buffer.alloc(3 << 20, 7) }, { name: '../evil', data: 'x' }]))).tar, /escapes/],
    ['escaping symlink in a big layer', (await legacyArchive(await makeTar([{ name: 'big.bin', data: Buffer.alloc(3 << 20, 7) }, { name: 'a/l', type: 'symlink', linkname: '../../../etc' }]))).tar, /outside/],
    ['big layer, digest mismatch', (await legacyArchive(await makeTar([{ name: 'big.bin', data: Buffer.alloc(3 << 20, 7) }]), { diffID: 'sha256:' + 'cd'.repeat(32) })).tar, /invalid diffID/],
    ['big layer truncated', (await legacyArchive(await makeTar([{ name: 'big.bin', data: Buffer.alloc(3 << 20, 7) }]))).tar.subarray(0, 2 << 20), /truncated|unexpected EOF|invalid/i],
  ];
  // An archive whose second image is bad: the first must not be loaded either.
  {
    const ok = await legacyArchive(good, { tags: ['first:1'] });
    const badLayer = await makeTar([{ name: '../x', data: 'x' }]);
    const okConfig = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['sha256:' + sha(good)] } }));
    const badConfig = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: ['sha256:' + sha(badLayer)] } }));
    void ok;
    cases.push(['second image bad', await makeTar([
      { name: 'c1.json', data: okConfig }, { name: 'l1.tar', data: good },
      { name: 'c2.json', data: badConfig }, { name: 'l2.tar', data: badLayer },
      { name: 'manifest.json', data: JSON.stringify([
        { Config: 'c1.json', RepoTags: ['first:1'], Layers: ['l1.tar'] },
        { Config: 'c2.json', RepoTags: ['second:1'], Layers: ['l2.tar'] }]) },
    ]), /escapes/]);
  }
  const before = storeState();
  const imagesBefore = (await d.api('GET', '/images/json?all=1')).body;
  for (const [what, body, re] of cases) {
    const r = await load(body).catch((err) => { throw new Error(`${what}: ${err.message}`); });
    const text = r.raw.toString('utf8');
    // As dockerd: 200, and the error as the stream's last message (docker-py raises ImageLoadError on it).
    assert.equal(r.status, 200, `${what}: ${text}`);
    const last = messages(r.raw).at(-1);
    assert.ok(last?.errorDetail, `${what}: expected an in-band error, got ${text}`);
    assert.match(last.errorDetail.message, re, what);
    assert.deepEqual(storeState(), before, `${what}: store changed`);
  }
  assert.deepEqual((await d.api('GET', '/images/json?all=1')).body, imagesBefore);
  assert.equal((await d.api('GET', '/images/first:1/json')).status, 404);
  assert.deepEqual(fs.readdirSync(path.join(d.dataRoot, 'tmp')), [], 'spool dirs removed');
});

test('import: rootfs tar (plain and gzip) with --change, message and tag', async () => {
  const rootfs = await makeTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/motd', data: 'hello' }]);
  const q = new URLSearchParams({ fromSrc: '-', repo: 'imported', tag: 'v1', message: 'from test' });
  q.append('changes', 'CMD ["sh"]');
  q.append('changes', 'ENV A=1');
  let r = await d.api('POST', `/images/create?${q}`, zlib.gzipSync(rootfs), { 'Content-Type': 'application/x-tar' });
  assert.equal(r.status, 200, r.raw.toString());
  const last = messages(r.raw).at(-1);
  assert.match(last.status, /^sha256:[a-f0-9]{64}$/);
  const img = (await d.api('GET', '/images/imported:v1/json')).body;
  assert.equal(img.Id, last.status);
  assert.deepEqual(img.Config.Cmd, ['sh']);
  assert.deepEqual(img.Config.Env, ['A=1']);
  assert.equal(img.Comment, 'from test');
  assert.deepEqual(img.RootFS.Layers, ['sha256:' + sha(rootfs)]);

  const before = storeState();
  r = await d.api('POST', '/images/create?fromSrc=-&repo=x&changes=FOO%20bar', rootfs);
  assert.equal(r.status, 400);
  assert.equal(r.body.message, 'dockerfile parse error on line 1: unknown instruction: FOO');
  r = await d.api('POST', '/images/create?fromSrc=http%3A%2F%2F127.0.0.1%3A1%2Fx.tar&repo=x', Buffer.alloc(0));
  assert.equal(r.status, 400);
  r = await d.api('POST', '/images/create?fromSrc=-&repo=x', Buffer.from('not a tar'.repeat(100)));
  assert.ok(r.status !== 200 || /error/.test(r.raw.toString()), r.raw.toString());
  assert.equal((await d.api('GET', '/images/x/json')).status, 404);
  // A failed import may leave only what prune cleans: no image, no tag.
  assert.deepEqual(storeState().filter((l) => l.startsWith('metadata/images') || l.startsWith('metadata/repositories')),
    before.filter((l) => l.startsWith('metadata/images') || l.startsWith('metadata/repositories')));
});
