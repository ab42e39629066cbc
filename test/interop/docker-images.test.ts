/**
 * The real docker CLI drives berthd through every image command of the
 * image-lifecycle issue: images, image inspect, history, tag, rmi, image
 * prune, import, commit, diff, save, load, cp.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startDaemon, bootstrapBusybox, defaultDockerCli, dockerClis, ok, run, waitFor, type Daemon } from '../helpers/daemon';
import { busyboxRootfsTar } from '../helpers/rootfs';

let d: Daemon;
let work = '';
let rootfsTar = '';
before(async () => {
  d = await startDaemon();
  await bootstrapBusybox(d);
  work = fs.mkdtempSync(path.join(d.base, 'w-'));
  rootfsTar = busyboxRootfsTar(work, { 'etc/motd': 'imported\n' });
});
after(async () => {
  await d?.stop();
});

const docker = (...args: string[]) => d.docker(args);
const imageInspect = async (ref: string) => JSON.parse(ok(await docker('image', 'inspect', ref)).stdout)[0];
const tarList = (file: string) => spawnSync('tar', ['-tf', file], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);

test('images, images -q, images --digests, image ls busybox', async () => {
  const bb = await imageInspect('busybox');
  const r = ok(await docker('images'));
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$/);
  assert.ok(lines.some((l) => new RegExp(`^busybox\\s+latest\\s+${bb.Id.slice(7, 19)}\\s+.+\\s+\\d+(\\.\\d+)?[kMG]?B$`).test(l)), r.stdout);
  assert.ok(ok(await docker('images', '-q')).stdout.split('\n').includes(bb.Id.slice(7, 19)));
  assert.match(ok(await docker('images', '--digests')).stdout.split('\n')[0], /DIGEST/);
  const ls = ok(await docker('image', 'ls', 'busybox', '--format', '{{.Repository}}:{{.Tag}}'));
  assert.equal(ls.stdout, 'busybox:latest\n');
});

test('image inspect busybox: Id, RepoTags, Config, RootFS, Size', async () => {
  const bb = await imageInspect('busybox');
  assert.match(bb.Id, /^sha256:[0-9a-f]{64}$/);
  assert.deepEqual(bb.RepoTags, ['busybox:latest']);
  assert.deepEqual(bb.Config.Cmd, ['sh']);
  assert.ok(Array.isArray(bb.Config.Env));
  assert.equal(bb.RootFS.Type, 'layers');
  assert.ok(bb.RootFS.Layers.length >= 1);
  for (const l of bb.RootFS.Layers) assert.match(l, /^sha256:[0-9a-f]{64}$/);
  assert.ok(bb.Size > 500_000, `size ${bb.Size}`);
  assert.equal(bb.Os, 'linux');
  assert.match(bb.Created, /^\d{4}-\d\d-\d\dT/);
});

test('image history busybox, -q, --no-trunc', async () => {
  const h = ok(await docker('image', 'history', 'busybox'));
  const lines = h.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^IMAGE\s+CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);
  assert.ok(lines.length >= 2);
  const nt = ok(await docker('image', 'history', '--no-trunc', '-q', 'busybox'));
  const bb = await imageInspect('busybox');
  assert.equal(nt.stdout.split('\n')[0], bb.Id);
});

test('tag and rmi of a tag: the image stays while another tag refers to it', async () => {
  const bb = await imageInspect('busybox');
  ok(await docker('tag', 'busybox', 'localhost:5000/team/tools:1.0'));
  const t = await imageInspect('localhost:5000/team/tools:1.0');
  assert.equal(t.Id, bb.Id);
  assert.deepEqual([...t.RepoTags].sort(), ['busybox:latest', 'localhost:5000/team/tools:1.0']);
  const rmi = ok(await docker('rmi', 'localhost:5000/team/tools:1.0'));
  assert.equal(rmi.stdout, 'Untagged: localhost:5000/team/tools:1.0\n');
  assert.equal((await imageInspect('busybox')).Id, bb.Id);
  const bad = await docker('tag', 'busybox', 'Upper/Case:1');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /invalid reference format|must be lowercase/);
});

test('import from a file, from stdin, with -c changes', async () => {
  const a = ok(await docker('import', rootfsTar, 'myimg:1'));
  assert.match(a.stdout, /^sha256:[0-9a-f]{64}\n$/);
  const b = ok(await d.docker(['import', '-', 'myimg:2'], { input: fs.readFileSync(rootfsTar) }));
  assert.match(b.stdout, /^sha256:[0-9a-f]{64}\n$/);
  const c = ok(await docker('import', '-c', 'CMD ["sh", "-c", "echo A=$A"]', '-c', 'ENV A=1', rootfsTar, 'myimg:3'));
  const id3 = c.stdout.trim();
  const i3 = await imageInspect('myimg:3');
  assert.equal(i3.Id, id3);
  assert.deepEqual(i3.Config.Cmd, ['sh', '-c', 'echo A=$A']);
  assert.ok(i3.Config.Env.includes('A=1'));
  assert.equal(i3.RootFS.Layers.length, 1);
  // the same tar is the same layer
  assert.deepEqual((await imageInspect('myimg:1')).RootFS.Layers, i3.RootFS.Layers);
  assert.equal(ok(await docker('run', '--rm', 'myimg:3')).stdout, 'A=1\n');
  assert.equal(ok(await docker('run', '--rm', 'myimg:1', 'cat', '/etc/motd')).stdout, 'imported\n');
});

test('rmi of an image a container uses is a conflict; -f untags', async () => {
  const cid = ok(await docker('create', '--name', 'user1', 'myimg:2', 'true')).stdout.trim();
  const img = await imageInspect('myimg:2');
  const r = await docker('rmi', img.Id);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`conflict: unable to delete ${img.Id.slice(7, 19)} \\(must be forced\\) - image is being used by stopped container ${cid.slice(0, 12)}`));
  const forced = ok(await docker('rmi', '-f', 'myimg:2'));
  assert.match(forced.stdout, /Untagged: myimg:2/);
  ok(await docker('rm', 'user1'));
});

test('commit adds exactly one layer with the change and the new CMD; diff shows A/C/D', async () => {
  ok(await docker('run', '-d', '--name', 'cweb', 'busybox', 'sh', '-c', 'echo edited > /index.html; rm /etc/group; echo x >> /etc/passwd; sleep 1000'));
  await waitFor('changes made', async () => (await docker('exec', 'cweb', 'test', '-f', '/index.html')).code === 0);
  const diff = ok(await docker('diff', 'cweb'));
  const lines = diff.stdout.trim().split('\n').sort();
  assert.deepEqual(lines, ['A /index.html', 'C /etc', 'C /etc/passwd', 'D /etc/group']);

  const c = ok(await docker('commit', '-m', 'edited index.html', '-a', 'me', '-c', 'CMD ["cat", "/index.html"]', 'cweb', 'myweb:1'));
  assert.match(c.stdout, /^sha256:[0-9a-f]{64}\n$/);
  assert.equal((await docker('inspect', '--format', '{{.State.Status}}', 'cweb')).stdout, 'running\n', 'unpaused after commit');
  const bb = await imageInspect('busybox');
  const img = await imageInspect('myweb:1');
  assert.equal(img.Author, 'me');
  assert.equal(img.Comment, 'edited index.html');
  assert.deepEqual(img.Config.Cmd, ['cat', '/index.html']);
  assert.equal(img.RootFS.Layers.length, bb.RootFS.Layers.length + 1);
  assert.deepEqual(img.RootFS.Layers.slice(0, -1), bb.RootFS.Layers);
  const h = ok(await docker('history', '--format', '{{.Comment}}', 'myweb:1'));
  assert.equal(h.stdout.split('\n')[0], 'edited index.html');
  assert.equal(ok(await docker('run', '--rm', 'myweb:1')).stdout, 'edited\n');
  const gone = await docker('run', '--rm', 'myweb:1', 'ls', '/etc/group');
  assert.notEqual(gone.code, 0, 'the whiteout hides /etc/group');
});

test('cp out of and into a container: files, directories, symlinks', async () => {
  const out = path.join(work, 'out');
  fs.mkdirSync(out);
  ok(await docker('cp', 'cweb:/etc/hostname', out));
  const id = (await docker('inspect', '--format', '{{.Id}}', 'cweb')).stdout.trim();
  assert.equal(fs.readFileSync(path.join(out, 'hostname'), 'utf8'), `${id.slice(0, 12)}\n`);

  const src = path.join(work, 'tree');
  fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(src, 'sub', 'f.txt'), 'payload\n');
  fs.symlinkSync('sub/f.txt', path.join(src, 'link'));
  ok(await docker('cp', src, 'cweb:/tmp/'));
  const r = ok(await docker('exec', 'cweb', 'sh', '-c', 'cat /tmp/tree/sub/f.txt; readlink /tmp/tree/link; stat -c %u /tmp/tree/sub/f.txt'));
  assert.equal(r.stdout, 'payload\nsub/f.txt\n0\n');
  ok(await docker('cp', 'cweb:/tmp/tree', path.join(work, 'back')));
  assert.equal(fs.readlinkSync(path.join(work, 'back', 'link')), 'sub/f.txt');
  assert.equal(fs.readFileSync(path.join(work, 'back', 'sub', 'f.txt'), 'utf8'), 'payload\n');
  // berthd answers a missing path like dockerd: 404 (no body on HEAD, the JSON message on GET).
  // What gets printed is each CLI's own choice, checked against a real dockerd: 20.10 stats
  // first (HEAD) and prints its own text; 28.x shows the daemon's message.
  for (const bin of dockerClis()) {
    const missing = await d.docker(['cp', 'cweb:/nope', out], { bin });
    assert.equal(missing.code, 1, bin);
    const major = Number(/version (\d+)\./.exec(spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout)?.[1]);
    assert.equal(missing.stderr, major <= 20
      ? 'Error: No such container:path: cweb:/nope\n'
      : 'Error response from daemon: Could not find the file /nope in container cweb\n', bin);
  }
  const head = await d.api('HEAD', '/containers/cweb/archive?path=/nope');
  assert.equal(head.status, 404);
  const get = await d.api('GET', '/containers/cweb/archive?path=/nope');
  assert.equal(get.status, 404);
  assert.deepEqual(get.body, { message: 'Could not find the file /nope in container cweb' });
});

test('save -o, docker-loadable layout, load -i, save | gzip, load <', async () => {
  const file = path.join(work, 'web.tar');
  ok(await docker('save', '-o', file, 'myweb:1', 'busybox'));
  const entries = tarList(file);
  assert.ok(entries.includes('manifest.json'), entries.join(' '));
  assert.ok(entries.includes('repositories'));
  const manifest = JSON.parse(spawnSync('tar', ['-xOf', file, 'manifest.json'], { encoding: 'utf8' }).stdout);
  assert.deepEqual(manifest.map((m: any) => m.RepoTags).flat().sort(), ['busybox:latest', 'myweb:1']);
  const before = await imageInspect('myweb:1');
  ok(await docker('rm', '-f', 'cweb'));
  ok(await docker('rmi', 'myweb:1'));
  assert.equal((await docker('image', 'inspect', 'myweb:1')).code, 1);
  const load = ok(await docker('load', '-i', file));
  assert.match(load.stdout, /Loaded image: myweb:1/);
  const after = await imageInspect('myweb:1');
  assert.equal(after.Id, before.Id);
  assert.deepEqual(after.RootFS.Layers, before.RootFS.Layers);

  const gz = path.join(work, 'w.tgz');
  const save = await run('sh', ['-c', `"$DOCKER" save myweb:1 | gzip > ${gz}`], { env: { ...d.env, DOCKER: defaultDockerCli() } });
  ok(save);
  ok(await docker('rmi', 'myweb:1'));
  const l2 = ok(await d.docker(['load'], { input: fs.readFileSync(gz) }));
  assert.match(l2.stdout, /Loaded image: myweb:1/);
  assert.equal((await imageInspect('myweb:1')).Id, before.Id);
});

test('load refuses a truncated tarball and leaves the store as it was', async () => {
  const file = path.join(work, 'web.tar');
  const full = fs.readFileSync(file);
  const imagesBefore = ok(await docker('images', '-a', '-q', '--no-trunc')).stdout;
  const r = await d.docker(['load'], { input: full.subarray(0, Math.floor(full.length / 2)) });
  assert.equal(r.code, 1);
  assert.notEqual(r.stderr.trim(), '');
  assert.equal(ok(await docker('images', '-a', '-q', '--no-trunc')).stdout, imagesBefore);
  const junk = await d.docker(['load'], { input: Buffer.from('this is not a tar file\n'.repeat(100)) });
  assert.equal(junk.code, 1);
});

test('image prune removes dangling images; prune -a unused ones; never what is used', async () => {
  // myimg:1 and myimg:3 share the layer; re-tagging makes the old myimg:3 dangling
  const old = await imageInspect('myimg:3');
  ok(await docker('import', '-c', 'CMD ["true"]', rootfsTar, 'myimg:3'));
  const dangling = ok(await docker('images', '--filter', 'dangling=true', '-q', '--no-trunc')).stdout;
  assert.ok(dangling.split('\n').includes(old.Id), dangling);
  const p = ok(await docker('image', 'prune', '-f'));
  assert.match(p.stdout, new RegExp(`deleted: ${old.Id}`));
  assert.match(p.stdout, /Total reclaimed space: /);
  assert.equal((await docker('image', 'inspect', old.Id)).code, 1);
  assert.equal((await docker('run', '--rm', 'myimg:1', 'true')).code, 0, 'the shared layer is still there');

  const keeper = ok(await docker('create', 'myimg:1', 'true')).stdout.trim();
  const pa = ok(await docker('image', 'prune', '-a', '-f'));
  assert.match(pa.stdout, /Total reclaimed space: /);
  const left = ok(await docker('images', '--format', '{{.Repository}}:{{.Tag}}')).stdout.split('\n').filter(Boolean);
  assert.ok(left.includes('myimg:1'), 'used by a container');
  assert.ok(!left.includes('myweb:1'), 'unused images are pruned');
  assert.equal(ok(await docker('start', '-a', keeper)).code, 0);
  ok(await docker('rm', keeper));
});
