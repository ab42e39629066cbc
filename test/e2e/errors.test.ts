/**
 * Bad input through `berth`: each case gets Docker's words and exit code,
 * and leaves no stray container, mount or process behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { busyboxDaemonForFile, ok, mountsUnder, pidsMentioning, waitFor, run, BERTH_BIN } from '../helpers/daemon';

const d = busyboxDaemonForFile();

const berth = (...args: string[]) => d.cli(args);
const containerCount = async () => ok(await berth('ps', '-aq')).stdout.split('\n').filter(Boolean).length;
const oneLine = (s: string) => s.trim().split('\n').filter(Boolean);

test('unknown image', async () => {
  const r = await berth('run', '--rm', 'nope-img', 'true');
  assert.equal(r.code, 125);
  assert.match(r.stderr, /nope-img/);
  const never = await berth('run', '--pull', 'never', 'nope-img');
  assert.equal(never.code, 125);
  assert.match(never.stderr, /No such image: nope-img:latest/);
  const create = await berth('create', 'nope-img');
  assert.equal(create.code, 125);
  assert.equal(await containerCount(), 0);
});

test('unknown container', async () => {
  for (const cmd of [['stop', 'nosuch'], ['logs', 'nosuch'], ['kill', 'nosuch'], ['rm', 'nosuch'], ['exec', 'nosuch', 'true'], ['start', 'nosuch']]) {
    const r = await berth(...cmd);
    assert.equal(r.code, 1, `${cmd.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /No such container: nosuch/, cmd.join(' '));
  }
  const i = await berth('inspect', 'nosuch');
  assert.equal(i.code, 1);
  assert.match(i.stderr, /No such (object|container): nosuch/);
});

test('unknown flag', async () => {
  const r = await berth('run', '--bogus', 'busybox', 'true');
  assert.equal(r.code, 125);
  assert.match(r.stderr, /unknown (flag|option):? '?--bogus/);
  assert.equal(oneLine(r.stderr).length <= 3, true, r.stderr);
  const ps = await berth('ps', '--bogus');
  assert.equal(ps.code, 125);
  const cmd = await berth('frobnicate');
  assert.notEqual(cmd.code, 0);
  assert.match(cmd.stderr, /frobnicate/);
  assert.equal(await containerCount(), 0);
});

test('a name already in use', async () => {
  const id = ok(await berth('run', '-d', '--name', 'dup', 'busybox', 'sleep', '100')).stdout.trim();
  const r = await berth('run', '-d', '--name', 'dup', 'busybox', 'true');
  assert.equal(r.code, 125);
  assert.match(r.stderr, new RegExp(`Conflict\\. The container name "/dup" is already in use by container "${id}"\\. You have to remove \\(or rename\\) that container to be able to reuse that name\\.`));
  assert.equal(await containerCount(), 1, 'no half-made container');
  const ren = ok(await berth('create', 'busybox', 'true')).stdout.trim();
  const rr = await berth('rename', ren, 'dup');
  assert.notEqual(rr.code, 0);
  assert.match(rr.stderr, /already in use/);
  ok(await berth('rm', ren));
});

test('rm of a running container without -f', async () => {
  const id = JSON.parse(ok(await berth('inspect', 'dup')).stdout)[0].Id;
  const r = await berth('rm', 'dup');
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`You cannot remove a running container ${id}\\. Stop the container before attempting removal or force remove`));
  assert.equal(JSON.parse(ok(await berth('inspect', 'dup')).stdout)[0].State.Running, true);
});

test('exec in a stopped container', async () => {
  ok(await berth('stop', '-t', '0', 'dup'));
  const id = JSON.parse(ok(await berth('inspect', 'dup')).stdout)[0].Id;
  const r = await berth('exec', 'dup', 'echo', 'hi');
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`Container ${id} is not running`));
  ok(await berth('rm', 'dup'));
});

test('command not found is 127, not executable is 126 (run); exec reports 126', async () => {
  const nf = await berth('run', '--rm', 'busybox', '/nonexistent-binary');
  assert.equal(nf.code, 127);
  assert.match(nf.stderr, /nonexistent-binary.*no such file or directory/i);
  const nx = await berth('run', '--rm', 'busybox', '/etc/passwd');
  assert.equal(nx.code, 126);
  assert.match(nx.stderr, /permission denied/i);
  const notInPath = await berth('run', '--rm', 'busybox', 'nosuchcmd');
  assert.equal(notInPath.code, 127);
  assert.match(notInPath.stderr, /nosuchcmd/);
  // --rm removes the failed containers too
  await waitFor('failed containers removed', async () => (await containerCount()) === 0);

  const id = ok(await berth('run', '-d', 'busybox', 'sleep', '100')).stdout.trim();
  try {
    const ex = await berth('exec', id, '/nonexistent-binary');
    assert.equal(ex.code, 126);
    // dockerd writes the exec start error into the attached stdout stream, so docker (and berth) print it on stdout.
    assert.match(ex.stdout, /OCI runtime exec failed: .*"\/nonexistent-binary": stat \/nonexistent-binary: no such file or directory/);
  } finally {
    ok(await berth('rm', '-f', id));
  }
});

test('invalid memory and cpu values', async () => {
  const bad = await berth('run', '--rm', '-m', 'lots', 'busybox', 'true');
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /invalid/i);
  assert.match(bad.stderr, /lots/);
  const small = await berth('run', '--rm', '-m', '1k', 'busybox', 'true');
  assert.equal(small.code, 125);
  assert.match(small.stderr, /Minimum memory limit allowed is 6MB/);
  const cpus = await berth('run', '--rm', '--cpus', 'abc', 'busybox', 'true');
  assert.equal(cpus.code, 125);
  assert.match(cpus.stderr, /invalid/i);
  const many = await berth('run', '--rm', '--cpus', '99', 'busybox', 'true');
  assert.equal(many.code, 125);
  assert.match(many.stderr, /Range of CPUs is from 0\.01 to \d+\.00, as there are only \d+ CPUs available/);
  const neg = await berth('run', '--rm', '--pids-limit', 'x', 'busybox', 'true');
  assert.equal(neg.code, 125);
  const restart = await berth('run', '--rm', '--restart', 'sometimes', 'busybox', 'true');
  assert.equal(restart.code, 125);
  const left = ok(await berth('ps', '-a', '--format', '{{.Names}} {{.Command}} {{.Status}}')).stdout;
  assert.equal(left, '', 'no container is created for invalid values');
});

test('a daemon that is not running', async () => {
  const sock = `${d.base}/absent.sock`;
  const r = await run(process.execPath, [BERTH_BIN, '-H', `unix://${sock}`, 'ps'], { env: { BERTH_HOST: '', DOCKER_HOST: '' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`Cannot connect to the .*daemon at unix://${sock.replace(/\//g, '\\/')}\\. Is the .*daemon running\\?`));
  assert.equal(oneLine(r.stderr).length, 1, r.stderr);
  const viaEnv = await run(process.execPath, [BERTH_BIN, 'ps'], { env: { BERTH_HOST: `unix://${sock}` } });
  assert.equal(viaEnv.code, 1);
  assert.match(viaEnv.stderr, /Cannot connect to/);
});

test('nothing is left behind by the failures above', async () => {
  assert.equal(await containerCount(), 0);
  assert.deepEqual(mountsUnder(d.base), []);
  const strays = pidsMentioning(d.base).filter((pid) => pid !== d.pid);
  assert.deepEqual(strays, [], 'no conmon/runc processes of removed containers');
});
