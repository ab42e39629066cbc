/**
 * diff, commit and cp on a real running container, driven by the real
 * docker CLI against berthd.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startDaemon, bootstrapBusybox, ok, type Daemon } from '../helpers/daemon';

let d: Daemon;
let work = '';
before(async () => {
  d = await startDaemon();
  await bootstrapBusybox(d);
  work = fs.mkdtempSync(path.join(d.base, 'cp-'));
});
after(async () => { await d?.stop(); });

const docker = (...args: string[]) => d.docker(args, { cwd: work });

test('diff lists A/C/D like Docker; commit adds one layer and runs with the new CMD', async () => {
  ok(await docker('run', '-d', '--name', 'web', 'busybox', 'sh', '-c',
    'echo hi > /tmp/in.txt; rm /etc/passwd; mkdir /root/x; sleep 300'), 'run');
  let diff = '';
  for (let i = 0; i < 50 && !diff.includes('/root/x'); i++) {
    diff = ok(await docker('diff', 'web'), 'diff').stdout;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(diff, 'C /etc\nD /etc/passwd\nC /root\nA /root/x\nC /tmp\nA /tmp/in.txt\n');

  const before = JSON.parse(ok(await docker('image', 'inspect', 'busybox')).stdout)[0];
  const id = ok(await docker('commit', '-m', 'edited', '-a', 'me', '-c', 'CMD ["cat","/tmp/in.txt"]', '-c', 'ENV X=1', 'web', 'myweb:1'), 'commit').stdout.trim();
  assert.match(id, /^sha256:[a-f0-9]{64}$/);
  const img = JSON.parse(ok(await docker('image', 'inspect', 'myweb:1')).stdout)[0];
  assert.equal(img.Id, id);
  assert.equal(img.RootFS.Layers.length, before.RootFS.Layers.length + 1);
  assert.deepEqual(img.RootFS.Layers.slice(0, -1), before.RootFS.Layers);
  assert.deepEqual(img.Config.Cmd, ['cat', '/tmp/in.txt']);
  assert.ok(img.Config.Env.includes('X=1'));
  assert.equal(img.Author, 'me');
  assert.equal(img.Comment, 'edited');
  assert.equal(img.Parent, before.Id);
  // The container was paused for the commit and runs again afterwards.
  const state = JSON.parse(ok(await docker('inspect', 'web')).stdout)[0].State;
  assert.equal(state.Running, true);
  assert.equal(state.Paused, false);
  assert.equal(ok(await docker('run', '--rm', 'myweb:1'), 'run committed').stdout, 'hi\n');
  const gone = await docker('run', '--rm', 'myweb:1', 'ls', '/etc/passwd');
  assert.notEqual(gone.code, 0, 'deleted file stays deleted in the committed image');
  const hist = ok(await docker('history', '--no-trunc', 'myweb:1')).stdout;
  assert.match(hist, /edited/);

  const bad = await docker('commit', '-c', 'FOO bar', 'web', 'x:1');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /dockerfile parse error on line 1: unknown instruction: FOO/);
});

test('cp in and out: files, directories, symlinks, ownership, stat errors', async () => {
  fs.writeFileSync(path.join(work, 'f.txt'), 'hello\n');
  fs.chownSync(path.join(work, 'f.txt'), 1234, 1234);
  fs.mkdirSync(path.join(work, 'dir/sub'), { recursive: true });
  fs.writeFileSync(path.join(work, 'dir/sub/a'), 'A');
  fs.symlinkSync('sub/a', path.join(work, 'dir/link'));
  ok(await docker('cp', 'f.txt', 'web:/tmp/'), 'cp file in');
  ok(await docker('cp', 'dir', 'web:/tmp/'), 'cp dir in');
  const ls = ok(await docker('exec', 'web', 'ls', '-ln', '/tmp/f.txt')).stdout;
  assert.match(ls, /^-rw-r--r--\s+1 0\s+0\s+6 /, 'owned by root like Docker');
  assert.equal(ok(await docker('exec', 'web', 'readlink', '/tmp/dir/link')).stdout, 'sub/a\n');
  assert.equal(ok(await docker('exec', 'web', 'cat', '/tmp/dir/sub/a')).stdout, 'A');

  ok(await docker('cp', 'web:/tmp/dir', 'out'), 'cp dir out');
  assert.equal(fs.readFileSync(path.join(work, 'out/sub/a'), 'utf8'), 'A');
  assert.equal(fs.readlinkSync(path.join(work, 'out/link')), 'sub/a');
  ok(await docker('cp', 'web:/etc/hostname', 'hostname'), 'cp hostname out');
  const cid = JSON.parse(ok(await docker('inspect', 'web')).stdout)[0].Id as string;
  assert.equal(fs.readFileSync(path.join(work, 'hostname'), 'utf8').trim(), cid.slice(0, 12));

  // The stat header of HEAD: Go FileMode bits.
  const head = await d.api('HEAD', `/containers/web/archive?path=${encodeURIComponent('/tmp/f.txt')}`);
  assert.equal(head.status, 200);
  const stat = JSON.parse(Buffer.from(String(head.headers['x-docker-container-path-stat']), 'base64').toString());
  assert.equal(stat.name, 'f.txt');
  assert.equal(stat.size, 6);
  assert.equal(stat.mode, 0o644);
  assert.equal(stat.linkTarget, '');
  const dirStat = await d.api('HEAD', '/containers/web/archive?path=/tmp/dir');
  assert.equal(JSON.parse(Buffer.from(String(dirStat.headers['x-docker-container-path-stat']), 'base64').toString()).mode, 2 ** 31 + 0o755);

  const missing = await docker('cp', 'web:/nope', 'x');
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /No such container:path: web:\/nope/); // the CLI's words for a 404 stat
  const get404 = await d.api('GET', '/containers/web/archive?path=/nope');
  assert.equal(get404.status, 404);
  assert.equal(get404.body.message, 'Could not find the file /nope in container web');
  // A symlink pointing out of the rootfs resolves inside it.
  ok(await docker('exec', 'web', 'ln', '-s', '../../../../etc', '/tmp/esc'));
  ok(await docker('cp', 'f.txt', 'web:/tmp/esc/'), 'cp through escaping symlink');
  assert.equal(ok(await docker('exec', 'web', 'cat', '/etc/f.txt')).stdout, 'hello\n');
  assert.ok(!fs.existsSync('/etc/f.txt') || fs.readFileSync('/etc/f.txt', 'utf8') !== 'hello\n');
  ok(await docker('rm', '-f', 'web'));
});

test('commit?pause=true of a container whose process has just ended commits it (nothing to pause), as dockerd', async () => {
  // The exit can land between the state check and the pause: that must not be a 500.
  for (let i = 0; i < 8; i++) {
    const id = ok(await docker('run', '-d', 'busybox', 'touch', '/made')).stdout.trim();
    const r = await d.api('POST', `/commit?container=${id}&pause=true`);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const img = (await d.api('GET', `/images/${r.body.Id}/json`)).body;
    assert.equal(img.Parent, JSON.parse(ok(await docker('image', 'inspect', 'busybox')).stdout)[0].Id);
    await d.api('DELETE', `/containers/${id}?force=1`);
    await d.api('DELETE', `/images/${r.body.Id}`);
  }
});
