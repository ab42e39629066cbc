import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import * as tar from 'tar-stream';
import { SnapshotStore, chainIDs } from '../../src/store/snapshots';
import { createImageService } from '../../src/image/service';
import { bootstrapImage } from '../../src/image/bootstrap';
import { EventBus } from '../../src/engine/events';
import { defaultConfig } from '../../src/engine/config';

async function makeTar(files: Record<string, string>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = (async () => { for await (const c of pack) chunks.push(c as Buffer); })();
  for (const [name, body] of Object.entries(files)) {
    await new Promise<void>((res, rej) => pack.entry({ name, mode: 0o644, mtime: new Date(0) }, Buffer.from(body), (e) => (e ? rej(e) : res())));
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'bt-unit-snap-'));
}

test('chain IDs follow the OCI definition', () => {
  const a = 'sha256:' + 'a'.repeat(64);
  const b = 'sha256:' + 'b'.repeat(64);
  const [c0, c1] = chainIDs([a, b]);
  assert.equal(c0, a);
  assert.match(c1, /^sha256:[a-f0-9]{64}$/);
  assert.notEqual(c1, b);
});

test('layers are unpacked once per chain ID and shared; container snapshots stack them', async () => {
  const dir = tmp();
  try {
    const cfg = { ...defaultConfig(), dataRoot: dir };
    const events = new EventBus();
    const seen: string[] = [];
    events.on('event', (e) => seen.push(`${e.Action}`));
    const svc = await createImageService(cfg, events);
    const base = await makeTar({ 'base.txt': 'base' });
    const top1 = await makeTar({ 'top.txt': 'one' });
    const top2 = await makeTar({ 'top.txt': 'two' });
    const progress: string[] = [];
    const img1 = await svc.createImageFromLayers({
      layers: [{ open: async () => Readable.from([base]) }, { open: async () => Readable.from([top1]) }],
      config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] } },
      tags: ['app:1'],
    });
    const baseDiff = img1.config.rootfs.diff_ids[0];
    let opened = false;
    const img2 = await svc.createImageFromLayers({
      layers: [
        { diffID: baseDiff, open: async () => { opened = true; return Readable.from([base]); } },
        { open: async () => Readable.from([top2]) },
      ],
      config: { architecture: 'amd64', os: 'linux' },
      tags: ['app:2'],
      onProgress: (p) => progress.push(p.status),
    });
    assert.equal(opened, false, 'an existing chain must not be read again');
    assert.equal(progress[0], 'Already exists');
    assert.equal(svc.snapshots.layers().length, 3);
    assert.deepEqual(seen.filter((a) => a === 'tag').length, 2);

    const { mount, persisted } = await svc.prepareContainerRootfs('c1', 'app:2');
    assert.ok(fs.statSync(svc.containerUpperDir('c1')).isDirectory(), 'the directories exist when it resolves');
    await persisted;
    const meta = fs.readFileSync(path.join(dir, 'metadata', 'snapshots.json'), 'utf8');
    assert.match(meta, /"c1"/, 'persisted: the snapshot is on disk');
    await assert.rejects(svc.prepareContainerRootfs('c1', 'app:2'), /container snapshot c1 already exists/);
    assert.equal(mount.type, 'overlay');
    const lower = mount.options.find((o) => o.startsWith('lowerdir='))!.slice('lowerdir='.length).split(':');
    assert.equal(lower.length, 2);
    assert.equal(fs.readFileSync(path.join(lower[0], 'top.txt'), 'utf8'), 'two', 'topmost layer first');
    assert.equal(fs.readFileSync(path.join(lower[1], 'base.txt'), 'utf8'), 'base');
    assert.ok(mount.options.some((o) => o === `upperdir=${svc.containerUpperDir('c1')}`));

    // rmi of app:2 is refused while c1 uses it
    await assert.rejects(svc.remove('app:2'), /unable to remove repository reference "app:2" \(must force\) - container c1 is using its referenced image/);
    // removing app:1 keeps the shared base layer
    const del1 = await svc.remove('app:1');
    assert.deepEqual(del1.map((d) => Object.keys(d)[0]), ['Untagged', 'Deleted', 'Deleted']);
    assert.ok(fs.existsSync(path.join(lower[1], 'base.txt')));
    await svc.removeContainerRootfs('c1');
    await svc.removeContainerRootfs('c1'); // idempotent
    const del2 = await svc.remove(img2.id);
    assert.deepEqual(del2, [{ Untagged: 'app:2' }, { Deleted: img2.id }, ...chainIDs(img2.config.rootfs.diff_ids).reverse().map((c) => ({ Deleted: c }))].map((x) => x));
    assert.equal(svc.snapshots.layers().length, 0);
    assert.deepEqual(await svc.content.list(), []);
    await assert.rejects(svc.resolve('app:2'), { message: 'No such image: app:2' });
    await assert.rejects(svc.resolve('busybox'), { message: 'No such image: busybox:latest' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('an image without layers gets an empty lower dir', async () => {
  const dir = tmp();
  try {
    const svc = await createImageService({ ...defaultConfig(), dataRoot: dir }, new EventBus());
    const img = await svc.createImageFromLayers({ layers: [], config: { architecture: 'amd64', os: 'linux' }, tags: ['scratchy'] });
    const { mount: m, persisted } = await svc.prepareContainerRootfs('c0', img.id);
    await persisted;
    const lower = m.options[0].slice('lowerdir='.length);
    assert.deepEqual(fs.readdirSync(lower), []);
    await svc.removeContainerRootfs('c0');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('restart drops unpack leftovers and keeps images', async () => {
  const dir = tmp();
  try {
    const cfg = { ...defaultConfig(), dataRoot: dir };
    const svc = await createImageService(cfg, new EventBus());
    const img = await svc.createImageFromLayers({ layers: [{ open: async () => Readable.from([await makeTar({ f: 'x' })]) }], config: { architecture: 'amd64', os: 'linux' }, tags: ['keep'] });
    fs.mkdirSync(path.join(dir, 'snapshots', 'tmp-crashed', 'fs'), { recursive: true });
    fs.mkdirSync(path.join(dir, 'snapshots', '999', 'fs'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'content', 'ingest', 'partial'), 'x');
    const again = await createImageService(cfg, new EventBus());
    assert.equal((await again.resolve('keep')).id, img.id);
    assert.ok(!fs.existsSync(path.join(dir, 'snapshots', 'tmp-crashed')));
    assert.ok(!fs.existsSync(path.join(dir, 'snapshots', '999')));
    assert.deepEqual(fs.readdirSync(path.join(dir, 'content', 'ingest')), []);
    // prefix resolution
    assert.equal((await again.resolve(img.id.slice(7, 12))).id, img.id);
    assert.equal((await again.resolve(img.id.slice(7))).id, img.id);
    const snaps = new SnapshotStore(dir);
    await snaps.open();
    assert.equal(snaps.layers().length, 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bootstrap busybox: /bin/sh and /bin/ls exist, same diffID twice', { skip: !fs.existsSync('/bin/busybox') && 'no /bin/busybox' }, async () => {
  const dir = tmp();
  try {
    const svc = await createImageService({ ...defaultConfig(), dataRoot: dir }, new EventBus());
    const status: string[] = [];
    const { image, tag } = await bootstrapImage(svc, dir, 'busybox', (s) => status.push(s));
    assert.equal(tag, 'busybox:latest');
    assert.deepEqual(image.config.config?.Cmd, ['sh']);
    const top = chainIDs(image.config.rootfs.diff_ids).pop()!;
    const root = svc.layerPath(top);
    for (const f of ['bin/sh', 'bin/ls', 'bin/busybox', 'etc/passwd', 'etc/group']) assert.ok(fs.existsSync(path.join(root, f)), f);
    assert.equal(fs.statSync(path.join(root, 'tmp')).mode & 0o7777, 0o1777);
    assert.match(fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8'), /^root:x:0:0:/);
    assert.ok(image.size > 500_000);
    const again = await bootstrapImage(svc, dir, 'busybox:again', () => undefined);
    assert.deepEqual(again.image.config.rootfs.diff_ids, image.config.rootfs.diff_ids);
    assert.deepEqual(fs.readdirSync(path.join(dir, 'tmp')), []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('layer tars are rebuilt byte for byte from tar-split records', async () => {
  const dir = tmp();
  try {
    const svc = await createImageService({ ...defaultConfig(), dataRoot: dir }, new EventBus());
    const t = await makeTar({ 'a.txt': 'alpha', 'dir/b.bin': 'x'.repeat(70000), 'empty': '' });
    const img = await svc.createImageFromLayers({ layers: [{ open: async () => Readable.from([t]) }], config: { architecture: 'amd64', os: 'linux' } });
    const diff = img.config.rootfs.diff_ids[0];
    assert.equal(await svc.content.exists(diff), false, 'no second copy of the tar');
    const back: Buffer[] = [];
    for await (const c of await svc.openLayerTar(diff)) back.push(c as Buffer);
    assert.ok(Buffer.concat(back).equals(t));
    // A tar that overwrites its own entry is kept whole.
    const dup = Buffer.concat([(await makeTar({ same: 'one' })).subarray(0, 1024), await makeTar({ same: 'two!' })]);
    const img2 = await svc.createImageFromLayers({ layers: [{ open: async () => Readable.from([dup]) }], config: { architecture: 'amd64', os: 'linux' } });
    const back2: Buffer[] = [];
    for await (const c of await svc.openLayerTar(img2.config.rootfs.diff_ids[0])) back2.push(c as Buffer);
    assert.ok(Buffer.concat(back2).equals(dup));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
