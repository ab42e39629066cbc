/**
 * Volumes and mounts as a user types them: named volumes that outlive containers,
 * anonymous ones from `-v /path` and image VOLUMEs (filled with the image's content),
 * `--mount` of every type, `--volumes-from`, `rm -v`/`--rm`, prune, and the
 * `volume` commands — with `berth` and with the real docker CLI on one berthd.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { busyboxDaemonForFile, dockerClis, ok } from '../helpers/daemon';

const d = busyboxDaemonForFile();
const berth = (...args: string[]) => d.cli(args);
const volumeNames = async () => ok(await berth('volume', 'ls', '-q')).stdout.split('\n').filter(Boolean).sort();
const mountsOf = async (c: string) => JSON.parse(ok(await berth('inspect', '-f', '{{json .Mounts}}', c)).stdout);

test('a named volume keeps data between containers; ro is enforced; in use it can not be removed', async () => {
  ok(await berth('volume', 'create', '--label', 'team=db', 'data1'));
  ok(await berth('run', '--rm', '-v', 'data1:/data', 'busybox', 'sh', '-c', 'echo kept > /data/file'));
  assert.equal(ok(await berth('run', '--rm', '-v', 'data1:/data:ro', 'busybox', 'cat', '/data/file')).stdout, 'kept\n');
  const ro = await berth('run', '--rm', '-v', 'data1:/data:ro', 'busybox', 'touch', '/data/other');
  assert.equal(ro.code, 1);
  assert.match(ro.stderr, /Read-only file system/);

  const v = JSON.parse(ok(await berth('volume', 'inspect', 'data1')).stdout)[0];
  assert.deepEqual(Object.keys(v), ['CreatedAt', 'Driver', 'Labels', 'Mountpoint', 'Name', 'Options', 'Scope']);
  assert.equal(v.Driver, 'local');
  assert.deepEqual(v.Labels, { team: 'db' });
  assert.equal(v.Mountpoint, path.join(d.dataRoot, 'volumes', 'data1', '_data'));
  assert.equal(fs.readFileSync(path.join(v.Mountpoint, 'file'), 'utf8'), 'kept\n', 'the data is really in the volume directory');

  const c = ok(await berth('create', '-v', 'data1:/data', 'busybox', 'true')).stdout.trim();
  // cp reads and writes the volume, not the container layer under it
  const local = path.join(d.base, 'to-volume.txt');
  fs.writeFileSync(local, 'copied in\n');
  ok(await berth('cp', local, `${c}:/data/in.txt`));
  assert.equal(fs.readFileSync(path.join(v.Mountpoint, 'in.txt'), 'utf8'), 'copied in\n');
  assert.match(ok(await berth('cp', `${c}:/data/file`, '-')).stdout, /kept\n/);
  const busy = await berth('volume', 'rm', 'data1');
  assert.equal(busy.code, 1);
  assert.equal(busy.stderr, `Error response from daemon: remove data1: volume is in use - [${c}]\n`);
  assert.equal(ok(await berth('ps', '-aq', '--no-trunc', '--filter', 'volume=data1')).stdout, `${c}\n`);
  ok(await berth('rm', c));
  assert.equal(ok(await berth('volume', 'rm', 'data1')).stdout, 'data1\n');
  assert.ok(!fs.existsSync(path.join(d.dataRoot, 'volumes', 'data1')));
});

test('anonymous volumes: -v /path and image VOLUMEs get the image content; rm -v and --rm remove them', async () => {
  // an image whose VOLUME path has content
  ok(await berth('run', '--name', 'seed', 'busybox', 'sh', '-c', 'mkdir -p /srv/app && echo from-image > /srv/app/hello && chown 1000:1000 /srv/app'));
  ok(await berth('commit', '-c', 'VOLUME /srv/app', 'seed', 'withvol:1'));
  ok(await berth('rm', 'seed'));
  try {
    const before = await volumeNames();
    const c = ok(await berth('run', '-d', 'withvol:1', 'sleep', '300')).stdout.trim();
    const m = (await mountsOf(c)) as Array<Record<string, any>>;
    assert.equal(m.length, 1);
    assert.equal(m[0].Type, 'volume');
    assert.equal(m[0].Destination, '/srv/app');
    assert.match(m[0].Name, /^[0-9a-f]{64}$/);
    assert.equal(fs.readFileSync(path.join(m[0].Source, 'hello'), 'utf8'), 'from-image\n', 'copy-up of the image content');
    assert.equal(fs.statSync(m[0].Source).uid, 1000, 'the directory keeps its owner');
    assert.deepEqual(JSON.parse(ok(await berth('volume', 'inspect', '-f', '{{json .Labels}}', m[0].Name)).stdout), { 'com.docker.volume.anonymous': '' });
    ok(await berth('rm', '-f', '-v', c));
    assert.deepEqual(await volumeNames(), before, 'rm -v removed the anonymous volume');

    // -v /path, --rm: nothing left once run returns
    assert.equal(ok(await berth('run', '--rm', '-v', '/scratch', 'busybox', 'sh', '-c', 'mount | grep -c " /scratch "')).stdout, '1\n');
    assert.deepEqual(await volumeNames(), before);
    // -v name:/path overrides the image's VOLUME at that path; nocopy leaves it empty
    assert.equal(ok(await berth('run', '--rm', '-v', 'empty1:/srv/app:nocopy', 'withvol:1', 'ls', '-A', '/srv/app')).stdout, '');
    assert.equal(ok(await berth('run', '--rm', '-v', 'full1:/srv/app', 'withvol:1', 'cat', '/srv/app/hello')).stdout, 'from-image\n');
    ok(await berth('volume', 'rm', 'empty1', 'full1'));
  } finally {
    await berth('rmi', '-f', 'withvol:1');
  }
});

test('--mount: bind (must exist), volume with options, tmpfs with size and mode; Mounts as Docker reports them', async () => {
  const host = fs.mkdtempSync(path.join(d.base, 'bind-'));
  fs.writeFileSync(path.join(host, 'f'), 'on the host\n');
  const c = ok(await berth('run', '-d',
    '--mount', `type=bind,source=${host},target=/hostdir,readonly`,
    '--mount', 'type=volume,source=mvol,target=/mv,volume-label=k=v',
    '--mount', 'type=tmpfs,target=/scratch,tmpfs-size=2m,tmpfs-mode=1770',
    '-v', `${host}:/rw`,
    'busybox', 'sleep', '300')).stdout.trim();
  try {
    assert.equal(ok(await berth('exec', c, 'cat', '/hostdir/f')).stdout, 'on the host\n');
    assert.notEqual((await berth('exec', c, 'touch', '/hostdir/g')).code, 0, 'readonly bind');
    ok(await berth('exec', c, 'touch', '/rw/g'));
    assert.ok(fs.existsSync(path.join(host, 'g')), '-v writes through to the host');
    const df = ok(await berth('exec', c, 'sh', '-c', 'df -k /scratch | tail -1; stat -c %a /scratch')).stdout.split('\n');
    assert.match(df[0]!, /^tmpfs\s+2048\s/);
    assert.equal(df[1], '1770');
    assert.deepEqual(await mountsOf(c), [
      { Type: 'bind', Source: host, Destination: '/hostdir', Mode: '', RW: false, Propagation: 'rprivate' },
      { Type: 'volume', Name: 'mvol', Source: path.join(d.dataRoot, 'volumes', 'mvol', '_data'), Destination: '/mv', Driver: 'local', Mode: 'z', RW: true, Propagation: '' },
      { Type: 'bind', Source: host, Destination: '/rw', Mode: '', RW: true, Propagation: 'rprivate' },
      { Type: 'tmpfs', Source: '', Destination: '/scratch', Mode: '', RW: true, Propagation: '' },
    ]);
    assert.deepEqual(JSON.parse(ok(await berth('volume', 'inspect', '-f', '{{json .Labels}}', 'mvol')).stdout), { k: 'v' });

    // --volumes-from takes every mount of the other container (tmpfs excepted), read-only on request
    const r = ok(await berth('run', '--rm', '--volumes-from', `${c}:ro`, 'busybox', 'sh', '-c', 'cat /hostdir/f; ls /mv >/dev/null && echo mv; touch /rw/x 2>/dev/null || echo ro'));
    assert.equal(r.stdout, 'on the host\nmv\nro\n');
  } finally {
    ok(await berth('rm', '-f', c));
    ok(await berth('volume', 'rm', 'mvol'));
  }

  for (const [args, message] of [
    [['--mount', 'type=bind,source=/no/such/dir,target=/x'], 'invalid mount config for type "bind": bind source path does not exist: /no/such/dir'],
    [['--mount', 'type=tmpfs,source=/tmp,target=/x'], 'invalid mount config for type "tmpfs": field Source must be empty'],
    [['--mount', 'type=volume,source=v,target=relative'], `invalid mount config for type "volume": invalid mount path: 'relative' mount path must be absolute`],
    [['-v', 'bad name:/x'], '"bad name" includes invalid characters for a local volume name'],
    [['-v', `${host}:/x`, '--mount', 'type=tmpfs,target=/x'], 'Duplicate mount point: /x'],
    [['--mount', 'type=volume,source=v,target=/x,volume-driver=nfs'], 'plugin "nfs" not found'],
  ] as Array<[string[], string]>) {
    const before = ok(await berth('ps', '-aq')).stdout;
    const bad = await berth('run', '--rm', ...args, 'busybox', 'true');
    assert.equal(bad.code, 125, args.join(' '));
    assert.ok(bad.stderr.includes(message), `${args.join(' ')}: ${bad.stderr}`);
    assert.equal(ok(await berth('ps', '-aq')).stdout, before, 'nothing half-made');
  }
  assert.deepEqual(await volumeNames(), [], 'failed creates leave no volumes');
});

test('volume ls/prune filters; system df counts volumes; volumes survive a daemon restart', async () => {
  ok(await berth('volume', 'create', '--label', 'keep=yes', 'keeper'));
  ok(await berth('volume', 'create', 'loose'));
  const anon = ok(await berth('volume', 'create', '--label', 'com.docker.volume.anonymous=')).stdout.trim();
  const user = ok(await berth('create', '-v', 'loose:/l', 'busybox', 'true')).stdout.trim();
  try {
    assert.deepEqual(ok(await berth('volume', 'ls', '-q', '--filter', 'dangling=false')).stdout.split('\n').filter(Boolean), ['loose']);
    assert.deepEqual(ok(await berth('volume', 'ls', '-q', '--filter', 'label=keep')).stdout.split('\n').filter(Boolean), ['keeper']);
    assert.deepEqual(ok(await berth('volume', 'ls', '-q', '--filter', 'name=kee')).stdout.split('\n').filter(Boolean), ['keeper']);
    const bad = await berth('volume', 'ls', '--filter', 'colour=red');
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, "Error response from daemon: invalid filter 'colour'\n");

    const vols = ok(await berth('system', 'df', '--format', '{{if eq .Type "Local Volumes"}}{{.TotalCount}} {{.Active}}{{end}}')).stdout.trim();
    assert.equal(vols, '3 1');

    // a create cut short by a crash (no metadata) disappears; complete volumes stay
    fs.mkdirSync(path.join(d.dataRoot, 'volumes', 'halfmade', '_data'), { recursive: true });
    await d.kill9();
    await d.restart();
    assert.deepEqual(await volumeNames(), [anon, 'keeper', 'loose'].sort());
    assert.ok(!fs.existsSync(path.join(d.dataRoot, 'volumes', 'halfmade')));

    // prune: anonymous unused ones by default, all unused with -a, never one in use
    const p = ok(await d.cli(['volume', 'prune'], { input: 'y\n' }));
    assert.equal(p.stdout, `WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] Deleted Volumes:\n${anon}\n\nTotal reclaimed space: 0B\n`);
    const pa = ok(await berth('volume', 'prune', '-a', '-f', '--filter', 'label!=keep'));
    assert.equal(pa.stdout, 'Total reclaimed space: 0B\n', 'keeper is filtered out and loose is in use');
    ok(await berth('rm', user));
    assert.match(ok(await berth('volume', 'prune', '-a', '-f')).stdout, /^Deleted Volumes:\n(keeper\nloose|loose\nkeeper)\n\nTotal reclaimed space: 0B\n$/);
    assert.deepEqual(await volumeNames(), []);
  } finally {
    await berth('rm', '-f', user);
    await berth('volume', 'rm', '-f', 'keeper', 'loose', anon);
  }
});

test('the docker CLI drives volumes: create, ls, inspect, rm, run -v, prune — same output as berth', async () => {
  for (const bin of dockerClis()) {
    const docker = (...args: string[]) => d.docker(args, { bin });
    assert.equal(ok(await docker('volume', 'create', 'dv')).stdout, 'dv\n', bin);
    assert.equal(ok(await docker('volume', 'ls')).stdout, ok(await berth('volume', 'ls')).stdout, bin);
    assert.equal(ok(await docker('volume', 'inspect', 'dv')).stdout, ok(await berth('volume', 'inspect', 'dv')).stdout, bin);
    ok(await docker('run', '--rm', '-v', 'dv:/d', 'busybox', 'sh', '-c', 'echo x > /d/x'));
    assert.equal(ok(await docker('run', '--rm', '-v', 'dv:/d', 'busybox', 'cat', '/d/x')).stdout, 'x\n', bin);
    const c = ok(await docker('create', '-v', 'dv:/d', '-v', '/anon', 'busybox', 'true')).stdout.trim();
    const mounts = JSON.parse(ok(await docker('inspect', '-f', '{{json .Mounts}}', c)).stdout);
    assert.deepEqual(mounts.map((m: any) => [m.Type, m.Destination]), [['volume', '/anon'], ['volume', '/d']], bin);
    assert.equal((await docker('volume', 'rm', 'dv')).code, 1, bin);
    ok(await docker('rm', '-v', c));
    assert.equal(ok(await docker('volume', 'rm', 'dv')).stdout, 'dv\n', bin);
    assert.equal(ok(await docker('volume', 'prune', '-f')).stdout, 'Total reclaimed space: 0B\n', bin);
    assert.deepEqual(await volumeNames(), [], bin);
  }
});

test('export: the container filesystem with its changes, without what volumes hold; docker export gives the same bytes', async () => {
  ok(await berth('run', '--name', 'exported', '-v', 'exvol:/data', 'busybox', 'sh', '-c', 'echo mine > /newfile; rm /etc/shadow; echo in-volume > /data/v'));
  const out = path.join(d.base, 'exported.tar');
  try {
    ok(await berth('export', '-o', out, 'exported'));
    const names = spawnSync('tar', ['-tf', out], { encoding: 'utf8' }).stdout.split('\n');
    assert.ok(names.includes('newfile') && names.includes('bin/busybox') && names.includes('data/'), names.slice(0, 5).join(','));
    assert.ok(!names.includes('etc/shadow'), 'deleted files are gone');
    assert.ok(!names.includes('data/v'), 'volume content is not exported');
    assert.ok(!names.some((n) => n.startsWith('./') || n.startsWith('/')), 'names relative to /');
    const bytes = fs.readFileSync(out);
    assert.ok(ok(await d.docker(['export', 'exported'])).stdout === bytes.toString('utf8'), 'docker export: same archive');
    // and back: import the export, run it
    ok(await berth('import', out, 'reimported:1'));
    assert.equal(ok(await berth('run', '--rm', 'reimported:1', 'cat', '/newfile')).stdout, 'mine\n');
    const missing = await berth('export', 'no-such');
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'Error response from daemon: No such container: no-such\n');
  } finally {
    await berth('rm', '-f', 'exported');
    await berth('rmi', 'reimported:1');
    await berth('volume', 'rm', 'exvol');
  }
});
