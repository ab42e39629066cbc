/**
 * HEALTHCHECK as Docker runs it: probes are execs inside the container on berthd's timer;
 * State.Health goes starting -> healthy -> unhealthy and back, keeps the last 5 results,
 * survives kill -9 of berthd; ps shows and filters it; events report changes; a hanging
 * probe is killed at its timeout; an exited container has no more probes; bad durations
 * create nothing. Through berth, the docker CLI and the raw API.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { busyboxDaemonForFile, ok, waitFor } from '../helpers/daemon';

const d = busyboxDaemonForFile();

const berth = (...args: string[]) => d.cli(args);
const docker = (...args: string[]) => d.docker(args);
const health = async (name: string) => (await d.api('GET', `/containers/${name}/json`)).body.State.Health;
const untilStatus = (name: string, status: string) =>
  waitFor(`${name} ${status}`, async () => (await health(name))?.Status === status, 30_000, 50);

test('starting -> healthy -> unhealthy -> healthy, through kill -9 of berthd (berth CLI)', async () => {
  // A long start period: failures do not count while the container has never been healthy.
  ok(await berth('run', '-d', '--name', 'hc', '--health-cmd', 'test -f /ok && echo fine', '--health-interval', '200ms',
    '--health-retries', '2', '--health-start-period', '1h', '--health-start-interval', '100ms', '--health-timeout', '5s', 'busybox', 'sleep', '1000'));
  const inspected = JSON.parse(ok(await berth('inspect', 'hc')).stdout)[0];
  assert.deepEqual(inspected.Config.Healthcheck, {
    Test: ['CMD-SHELL', 'test -f /ok && echo fine'], Interval: 200_000_000, Timeout: 5_000_000_000, StartPeriod: 3_600_000_000_000, StartInterval: 100_000_000, Retries: 2,
  });
  await waitFor('3 failed probes', async () => (await health('hc')).Log.length >= 3, 30_000, 50);
  let h = await health('hc');
  assert.equal(h.Status, 'starting');
  assert.equal(h.FailingStreak, 0);
  assert.equal(h.Log.at(-1).ExitCode, 1);
  assert.match(ok(await berth('ps', '--format', '{{.Status}}', '--filter', 'name=hc')).stdout, /^Up .* \(health: starting\)\n$/);

  ok(await berth('exec', 'hc', 'touch', '/ok'));
  await untilStatus('hc', 'healthy');
  h = await health('hc');
  assert.equal(h.FailingStreak, 0);
  assert.equal(h.Log.at(-1).Output, 'fine\n');
  assert.ok(h.Log.length <= 5);
  for (const r of h.Log) assert.ok(Date.parse(r.End) >= Date.parse(r.Start), JSON.stringify(r));
  assert.match(ok(await berth('ps', '--format', '{{.Status}}', '--filter', 'health=healthy')).stdout, /^Up .* \(healthy\)\n$/);
  assert.equal(ok(await berth('ps', '-q', '--filter', 'health=starting')).stdout, '');
  // once healthy, failures count (start period or not)
  ok(await berth('exec', 'hc', 'rm', '/ok'));
  await untilStatus('hc', 'unhealthy');
  assert.ok((await health('hc')).FailingStreak >= 2);
  ok(await berth('exec', 'hc', 'touch', '/ok'));
  await untilStatus('hc', 'healthy');

  // kill -9: the state was saved, and probes resume after the restart.
  await d.kill9();
  await d.restart();
  assert.equal((await health('hc')).Status, 'healthy');
  ok(await berth('exec', 'hc', 'rm', '/ok'));
  await untilStatus('hc', 'unhealthy');
  ok(await berth('exec', 'hc', 'touch', '/ok'));
  await untilStatus('hc', 'healthy');
  ok(await berth('rm', '-f', 'hc'));
});

test('docker CLI: events, a hanging probe killed at its timeout, an exited container probes no more', async () => {
  const since = Math.floor(Date.now() / 1000) - 1;
  ok(await docker('run', '-d', '--name', 'hang', '--health-cmd', 'echo begun; sleep 60', '--health-interval', '100ms',
    '--health-timeout', '300ms', '--health-retries', '1', 'busybox', 'sleep', '1000'));
  await untilStatus('hang', 'unhealthy');
  const last = (await health('hang')).Log.at(-1);
  assert.equal(last.ExitCode, -1);
  assert.equal(last.Output, 'Health check exceeded timeout (300ms): begun\n');
  assert.match(ok(await docker('ps', '--filter', 'health=unhealthy', '--filter', 'name=hang', '--format', '{{.Names}} {{.Status}}')).stdout, /^hang Up .* \(unhealthy\)\n$/);

  // A clock of probes: `ticker` stays healthy and counts its probes in its own Log.
  ok(await docker('run', '-d', '--name', 'ticker', '--health-cmd', 'true', '--health-interval', '100ms', 'busybox', 'sleep', '1000'));
  ok(await docker('run', '-d', '--name', 'short', '--health-cmd', 'true', '--health-interval', '100ms', 'busybox', 'sleep', '1'));
  await untilStatus('ticker', 'healthy');
  ok(await docker('wait', 'short'));
  const after = await health('short');
  assert.equal(after.Status, 'unhealthy'); // as dockerd: a stopped monitor leaves "unhealthy"
  // 5 more probes of ticker (its Log is full, so compare the newest Start) while short runs none.
  for (let i = 0; i < 5; i++) {
    const newest = (await health('ticker')).Log.at(-1).Start;
    await waitFor('a ticker probe', async () => (await health('ticker')).Log.at(-1).Start !== newest, 30_000, 50);
  }
  assert.deepEqual((await health('short')).Log, after.Log);

  const events = ok(await docker('events', '--since', String(since), '--until', String(Math.floor(Date.now() / 1000) + 1),
    '--filter', 'container=ticker', '--format', '{{.Action}}')).stdout.split('\n');
  assert.ok(events.includes('health_status: healthy'), events.join('|'));
  assert.ok(events.some((e) => e.startsWith('exec_create: /bin/sh -c true')), events.join('|'));
  ok(await docker('rm', '-f', 'hang', 'ticker', 'short'));
});

test('image healthchecks: commit --change HEALTHCHECK, inherited, --no-healthcheck, NONE', async () => {
  ok(await docker('create', '--name', 'base', 'busybox', 'true'));
  ok(await docker('commit', '--change', 'HEALTHCHECK --interval=150ms --retries=1 CMD ["true"]', 'base', 'hcimg:1'));
  const img = JSON.parse(ok(await docker('image', 'inspect', 'hcimg:1')).stdout)[0];
  assert.deepEqual(img.Config.Healthcheck, { Test: ['CMD', 'true'], Interval: 150_000_000, Retries: 1 });
  ok(await docker('run', '-d', '--name', 'inherit', 'hcimg:1', 'sleep', '1000'));
  await untilStatus('inherit', 'healthy');
  // the user's fields override, the rest comes from the image
  ok(await docker('run', '-d', '--name', 'mixed', '--health-timeout', '2s', 'hcimg:1', 'sleep', '1000'));
  const mixed = (await d.api('GET', '/containers/mixed/json')).body;
  assert.deepEqual(mixed.Config.Healthcheck.Test, ['CMD', 'true']);
  assert.equal(mixed.Config.Healthcheck.Timeout, 2_000_000_000);
  assert.equal(mixed.Config.Healthcheck.Interval, 150_000_000);
  ok(await berth('run', '-d', '--name', 'off', '--no-healthcheck', 'hcimg:1', 'sleep', '1000'));
  const off = (await d.api('GET', '/containers/off/json')).body;
  // as dockerd's merge: NONE, and the image's other fields kept beside it
  assert.deepEqual(off.Config.Healthcheck, { Test: ['NONE'], Interval: 150_000_000, Retries: 1 });
  assert.equal(off.State.Health, undefined);
  assert.match(ok(await berth('ps', '--filter', 'health=none', '--format', '{{.Names}}')).stdout, /^off$/m);
  ok(await docker('commit', '--change', 'HEALTHCHECK NONE', 'base', 'hcimg:none'));
  assert.deepEqual(JSON.parse(ok(await docker('image', 'inspect', 'hcimg:none')).stdout)[0].Config.Healthcheck, { Test: ['NONE'] });
  const bad = await docker('commit', '--change', 'HEALTHCHECK --interval=1x CMD true', 'base', 'hcimg:bad');
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /time: invalid duration "1x"/);
  ok(await docker('rm', '-f', 'base', 'inherit', 'mixed', 'off'));
  ok(await docker('rmi', 'hcimg:1', 'hcimg:none'));
});

test('malformed healthchecks: 400 with dockerd\'s words and nothing created (API and both CLIs)', async () => {
  const before = (await d.api('GET', '/containers/json?all=1')).body.length;
  const create = (hc: unknown) => d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], Healthcheck: hc });
  const cases: Array<[unknown, string | RegExp]> = [
    [{ Test: ['CMD', 'true'], Interval: '1s' }, /^json: cannot unmarshal string into Go struct field \w+\.Healthcheck\.Interval of type /],
    [{ Test: ['CMD', 'true'], Interval: 999 }, 'Interval in Healthcheck cannot be less than 1ms'],
    [{ Test: ['CMD', 'true'], Timeout: -5 }, 'Timeout in Healthcheck cannot be less than 1ms'],
    [{ Test: ['CMD', 'true'], StartPeriod: 10 }, 'StartPeriod in Healthcheck cannot be less than 1ms'],
    [{ Test: ['CMD', 'true'], Retries: -1 }, 'Retries in Healthcheck cannot be negative'],
    [{ Test: 'true' }, /^json: cannot unmarshal string into Go struct field \w+\.Healthcheck\.Test of type /],
  ];
  for (const [hc, msg] of cases) {
    const r = await create(hc);
    assert.equal(r.status, 400, JSON.stringify(hc));
    if (typeof msg === 'string') assert.equal(r.body.message, msg); else assert.match(r.body.message, msg);
  }
  const viaDocker = await docker('run', '--health-interval', '1x', 'busybox', 'true');
  assert.equal(viaDocker.code, 125);
  assert.match(viaDocker.stderr, /invalid argument "1x" for "--health-interval" flag: time: /);
  for (const cli of [docker, berth]) {
    const neg = await cli('create', '--health-interval', '-1s', 'busybox', 'true');
    assert.equal(neg.code, 125);
    assert.match(neg.stderr, /--health-interval cannot be negative/);
    const both = await cli('create', '--no-healthcheck', '--health-cmd', 'true', 'busybox', 'true');
    assert.equal(both.code, 125);
    assert.match(both.stderr, /--no-healthcheck conflicts with --health-\* options/);
  }
  const viaBerth = await berth('create', '--health-timeout', 'soon', 'busybox', 'true');
  assert.equal(viaBerth.code, 125);
  assert.match(viaBerth.stderr, /invalid argument "soon" for "--health-timeout" flag: time: invalid duration "soon"/);
  assert.equal((await d.api('GET', '/containers/json?all=1')).body.length, before);
});
