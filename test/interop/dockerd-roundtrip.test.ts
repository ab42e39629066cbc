/**
 * Image tarballs move between Berth and a real Docker in both directions:
 * docker save -> berth load -> berth run, and berth save -> docker load ->
 * docker run, keeping image IDs, tags and layer diff IDs. The test starts its
 * own dockerd (own data root, exec root, socket; no bridge, no iptables).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startDaemon, bootstrapBusybox, ok, run, type Daemon, type RunResult } from '../helpers/daemon';
import { startDockerd, type Dockerd } from '../helpers/dockerd';
import { busyboxRootfsTar } from '../helpers/rootfs';

let d: Daemon;
let dk: Dockerd | undefined;
let work = '';
before(async () => {
  d = await startDaemon();
  await bootstrapBusybox(d);
  work = fs.mkdtempSync(path.join(d.base, 'rt-'));
  dk = await startDockerd();
});
after(async () => {
  await dk?.stop();
  await d?.stop();
});

const berth = (...args: string[]) => d.cli(args);
const inspectWith = async (f: (a: string[]) => Promise<RunResult>, ref: string) =>
  JSON.parse(ok(await f(['image', 'inspect', ref])).stdout)[0];

test('docker save (two layers) -> berth load -> berth run keeps ids, tags and diff ids', async () => {
  const tar = busyboxRootfsTar(work);
  ok(await dk!.docker(['import', '-c', 'CMD ["sh"]', tar, 'dk/bbx:1']));
  ok(await dk!.docker(['run', '--name', 'mk', '--network', 'none', 'dk/bbx:1', 'sh', '-c', 'echo from-docker > /hello; rm /etc/group']));
  ok(await dk!.docker(['commit', '-c', 'CMD ["cat", "/hello"]', 'mk', 'dk/bbx:2']));
  ok(await dk!.docker(['rm', 'mk']));
  const dimg = await inspectWith((a) => dk!.docker(a), 'dk/bbx:2');
  assert.equal(dimg.RootFS.Layers.length, 2);

  const file = path.join(work, 'from-docker.tar');
  ok(await dk!.docker(['save', '-o', file, 'dk/bbx:2']));
  const load = ok(await berth('load', '-i', file));
  assert.match(load.stdout, /Loaded image: dk\/bbx:2/);
  const bimg = await inspectWith((a) => d.cli(a), 'dk/bbx:2');
  assert.equal(bimg.Id, dimg.Id);
  assert.deepEqual(bimg.RootFS.Layers, dimg.RootFS.Layers);
  assert.deepEqual(bimg.RepoTags, ['dk/bbx:2']);
  assert.equal(ok(await berth('run', '--rm', 'dk/bbx:2')).stdout, 'from-docker\n');
  assert.notEqual((await berth('run', '--rm', 'dk/bbx:2', 'ls', '/etc/group')).code, 0, 'docker whiteout honoured');

  // loading again stores nothing twice and says so
  const again = ok(await berth('load', '-i', file));
  assert.match(again.stdout, /Loaded image: dk\/bbx:2/);
});

test('berth load reads gzip, xz and zstd compressed docker save output', async () => {
  const file = path.join(work, 'from-docker.tar');
  const dimg = await inspectWith((a) => dk!.docker(a), 'dk/bbx:2');
  for (const [tool, ext] of [['gzip', 'gz'], ['xz', 'xz'], ['zstd', 'zst']]) {
    ok(await berth('rmi', 'dk/bbx:2'));
    const comp = `${file}.${ext}`;
    ok(await run('sh', ['-c', `${tool} -c < ${file} > ${comp}`]));
    const l = ok(await d.cli(['load'], { input: fs.readFileSync(comp) }), `load ${ext}`);
    assert.match(l.stdout, /Loaded image: dk\/bbx:2/);
    assert.equal((await inspectWith((a) => d.cli(a), 'dk/bbx:2')).Id, dimg.Id);
  }
});

test('berth save -> docker load -> docker run keeps ids and diff ids', async () => {
  const bimg = await inspectWith((a) => d.cli(a), 'busybox');
  const file = path.join(work, 'from-berth.tar');
  ok(await berth('save', '-o', file, 'busybox'));
  const entries = spawnSync('tar', ['-tf', file], { encoding: 'utf8' }).stdout.split('\n');
  for (const e of ['manifest.json', 'repositories', 'index.json', 'oci-layout']) assert.ok(entries.includes(e), `${e} in save output`);
  const load = ok(await dk!.docker(['load', '-i', file]));
  assert.match(load.stdout, /Loaded image: busybox:latest/);
  const dimg = await inspectWith((a) => dk!.docker(a), 'busybox');
  assert.equal(dimg.Id, bimg.Id);
  assert.deepEqual(dimg.RootFS.Layers, bimg.RootFS.Layers);
  assert.equal(ok(await dk!.docker(['run', '--rm', '--network', 'none', 'busybox', 'echo', 'in-docker'])).stdout, 'in-docker\n');
});

test('a committed berth image round-trips through docker and back', async () => {
  ok(await berth('run', '--name', 'edit', 'busybox', 'sh', '-c', 'mkdir -p /srv && echo page > /srv/index.html'));
  ok(await berth('commit', '-c', 'CMD ["cat", "/srv/index.html"]', 'edit', 'rt/web:1'));
  const bimg = await inspectWith((a) => d.cli(a), 'rt/web:1');
  const file = path.join(work, 'web.tar');
  ok(await berth('save', '-o', file, 'rt/web:1'));
  ok(await dk!.docker(['load', '-i', file]));
  assert.equal(ok(await dk!.docker(['run', '--rm', '--network', 'none', 'rt/web:1'])).stdout, 'page\n');
  const back = path.join(work, 'back.tar');
  ok(await dk!.docker(['save', '-o', back, 'rt/web:1']));
  ok(await berth('rm', 'edit'));
  ok(await berth('rmi', 'rt/web:1'));
  ok(await berth('load', '-i', back));
  const again = await inspectWith((a) => d.cli(a), 'rt/web:1');
  assert.equal(again.Id, bimg.Id);
  assert.deepEqual(again.RootFS.Layers, bimg.RootFS.Layers);
});
