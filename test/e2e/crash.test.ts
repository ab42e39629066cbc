/**
 * kill -9 of berthd: conmon keeps containers running; after a restart the
 * daemon knows them again, and a container that exited meanwhile has the
 * right logs and exit code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { busyboxDaemonForFile, ok, alive, waitFor } from '../helpers/daemon';

const d = busyboxDaemonForFile();

const berth = (...args: string[]) => d.cli(args);
const inspect = async (name: string) => JSON.parse(ok(await berth('inspect', name)).stdout)[0];

test('containers survive kill -9 of berthd; exits during the outage are recorded', async () => {
  ok(await berth('run', '-d', '--name', 'sleeper', 'busybox', 'sleep', '1000'));
  ok(await berth('run', '-d', '--name', 'short', 'busybox', 'sh', '-c', 'echo before; sleep 2; echo during-outage; echo to-stderr >&2; exit 4'));
  const sleeperPid = (await inspect('sleeper')).State.Pid;
  assert.ok(sleeperPid > 0);
  const shortPid = (await inspect('short')).State.Pid;

  const oldPid = d.pid;
  await d.kill9();
  assert.equal(alive(oldPid), false);
  // `short` exits while no daemon is running (however long its sleep takes on a busy host).
  await waitFor('short to exit while berthd is down', () => !alive(shortPid), 60_000);
  assert.equal(alive(sleeperPid), true, 'the container process outlives the daemon');

  await d.restart();
  assert.notEqual(d.pid, oldPid);

  const s = await inspect('sleeper');
  assert.equal(s.State.Status, 'running');
  assert.equal(s.State.Pid, sleeperPid);
  assert.equal(ok(await berth('exec', 'sleeper', 'echo', 'alive')).stdout, 'alive\n');

  const short = await inspect('short');
  assert.equal(short.State.Status, 'exited');
  assert.equal(short.State.ExitCode, 4);
  assert.notEqual(short.State.FinishedAt, '0001-01-01T00:00:00Z');
  const logs = ok(await berth('logs', 'short'));
  assert.equal(logs.stdout, 'before\nduring-outage\n');
  assert.equal(logs.stderr, 'to-stderr\n');
  assert.equal(ok(await berth('wait', 'short')).stdout, '4\n');

  const ps = ok(await berth('ps', '--format', '{{.Names}}'));
  assert.equal(ps.stdout, 'sleeper\n');

  // the re-attached container can still be driven: stop, logs of a new start, rm
  ok(await berth('stop', '-t', '1', 'sleeper'));
  assert.equal((await inspect('sleeper')).State.ExitCode, 137);
  ok(await berth('rm', 'sleeper', 'short'));
});

test('a graceful daemon restart keeps a running container and its log stream', async () => {
  ok(await berth('run', '-d', '--name', 'counter', 'busybox', 'sh', '-c', 'i=0; while true; do i=$((i+1)); echo n$i; sleep 0.2; done'));
  const lines = async () => ok(await berth('logs', 'counter')).stdout.trim().split('\n');
  await waitFor('lines before the restart', async () => (await lines()).length >= 2, 60_000);
  await d.restart();
  await waitFor('lines after the restart', async () => (await lines()).length >= 5, 60_000);
  const logs = await lines();
  // lines written while the daemon was restarting are all there, in order, without gaps
  assert.ok(logs.length >= 5, logs.join(','));
  logs.forEach((l, i) => assert.equal(l, `n${i + 1}`));
  ok(await berth('rm', '-f', 'counter'));
});
