/**
 * Logging drivers as Docker offers them (json-file by default, local, none; daemon.json
 * log-driver/log-opts as defaults), rotation that keeps `logs` complete across the files
 * and a kill -9 of berthd, and the smaller API details clients rely on (Env without `=`,
 * HostConfig.Runtime, commit of a running container, load errors in band, stats keys).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxDaemonForFile, ok, waitFor } from '../helpers/daemon';

// The daemon's default log options: every json-file container without its own gets them.
const d = busyboxDaemonForFile({ config: { 'log-opts': { 'max-file': '50' } } });

const berth = (...args: string[]) => d.cli(args);
const docker = (...args: string[]) => d.docker(args);
const inspect = async (name: string) => (await d.api('GET', `/containers/${name}/json`)).body;
const lines = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `line-${from + i}-${'x'.repeat(40)}`);

test('json-file is the default driver; daemon.json log-opts fill in; local and none are offered', async () => {
  ok(await docker('create', '--name', 'dflt', 'busybox', 'true'));
  assert.deepEqual((await inspect('dflt')).HostConfig.LogConfig, { Type: 'json-file', Config: { 'max-file': '50' } });
  // the container's own options win; the default's others are added (dockerd's merge)
  ok(await berth('create', '--name', 'own', '--log-opt', 'max-file=2', '--log-opt', 'max-size=1m', 'busybox', 'true'));
  assert.deepEqual((await inspect('own')).HostConfig.LogConfig, { Type: 'json-file', Config: { 'max-file': '2', 'max-size': '1m' } });
  ok(await docker('run', '-d', '--name', 'loc', '--log-driver', 'local', 'busybox', 'sh', '-c', 'echo kept locally; exec sleep 1000'));
  assert.deepEqual((await inspect('loc')).HostConfig.LogConfig, { Type: 'local', Config: {} });
  await waitFor('the local log', async () => ok(await docker('logs', 'loc')).stdout === 'kept locally\n', 15_000, 50);
  const info = JSON.parse(ok(await docker('info', '--format', '{{json .}}')).stdout);
  assert.equal(info.LoggingDriver, 'json-file');
  assert.deepEqual(info.Plugins.Log, ['json-file', 'local', 'none']);
  ok(await docker('rm', '-f', 'dflt', 'own', 'loc'));
});

test('none keeps nothing: run still shows the output, logs refuses as dockerd does (both CLIs)', async () => {
  const r = ok(await docker('run', '--name', 'quiet', '--log-driver', 'none', 'busybox', 'echo', 'shown once'));
  assert.equal(r.stdout, 'shown once\n');
  const c = await inspect('quiet');
  assert.deepEqual(c.HostConfig.LogConfig, { Type: 'none', Config: {} });
  assert.equal(c.LogPath, '');
  assert.ok(!fs.readdirSync(path.join(d.dataRoot, 'containers', c.Id)).some((f) => f.startsWith('ctr.log')));
  const api = await d.api('GET', '/containers/quiet/logs?stdout=1');
  assert.equal(api.status, 501);
  assert.equal(api.body.message, 'configured logging driver does not support reading');
  for (const cli of [docker, berth]) {
    const l = await cli('logs', 'quiet');
    assert.equal(l.code, 1);
    assert.match(l.stderr, /Error response from daemon: configured logging driver does not support reading/);
  }
  ok(await docker('rm', 'quiet'));
});

test('unknown drivers and options: 400 with dockerd\'s words, nothing created', async () => {
  const before = (await d.api('GET', '/containers/json?all=1')).body.length;
  const cases: Array<[unknown, string]> = [
    [{ Type: 'asdf', Config: {} }, "logger: no log driver named 'asdf' is registered"],
    [{ Type: 'json-file', Config: { foo: '1' } }, "unknown log opt 'foo' for json-file log driver"],
    [{ Type: 'local', Config: { tag: 'x' } }, "unknown log opt 'tag' for log driver local"],
    [{ Type: 'json-file', Config: { 'max-size': 'lots' } }, "invalid size: 'lots'"],
    [{ Type: 'json-file', Config: { 'max-file': '0' } }, 'max-file cannot be less than 1'],
    [{ Type: 'json-file', Config: { mode: 'sometimes' } }, 'logger: logging mode not supported: sometimes'],
  ];
  for (const [lc, msg] of cases) {
    const r = await d.api('POST', '/containers/create', { Image: 'busybox', Cmd: ['true'], HostConfig: { LogConfig: lc } });
    assert.equal(r.status, 400, JSON.stringify(lc));
    assert.equal(r.body.message, msg);
  }
  for (const cli of [docker, berth]) {
    const r = await cli('run', '--log-driver', 'foo', 'busybox', 'true');
    assert.equal(r.code, 125);
    assert.match(r.stderr, /logger: no log driver named 'foo' is registered/);
  }
  assert.equal((await d.api('GET', '/containers/json?all=1')).body.length, before);
});

test('rotation at max-size keeps logs complete across the files, following, and kill -9 of berthd', async () => {
  const batch = (from: number) => lines(300, from);
  const loop = (from: number, stderrEvery = 0) => `for i in $(seq ${from} ${from + 299}); do echo line-$i-${'x'.repeat(40)};` +
    (stderrEvery ? ` [ $((i % ${stderrEvery})) = 0 ] && echo err-$i >&2;` : '') + ' usleep 1000; done';
  // Three bursts; between them the container waits for a line on its stdin.
  ok(await berth('run', '-d', '-i', '--name', 'rot', '--log-opt', 'max-size=4k', 'busybox', 'sh', '-c',
    `${loop(0)}; read a; ${loop(300, 100)}; read b; ${loop(600)}`));
  const c = await inspect('rot');
  assert.deepEqual(c.HostConfig.LogConfig.Config, { 'max-size': '4k', 'max-file': '50' });
  const dir = path.dirname(c.LogPath);
  const rotated = () => fs.readdirSync(dir).filter((f) => /^ctr\.log\.\d+$/.test(f)).length;
  const stdin = (text: string) => fs.writeFileSync(`/proc/${c.State.Pid}/fd/0`, text); // the container's stdin pipe
  const logged = () => fs.readdirSync(dir).filter((f) => f.startsWith('ctr.log')).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('');

  await waitFor('the first burst, rotated', async () => rotated() >= 2 && logged().includes('line-299-'), 30_000, 50);
  assert.equal(ok(await berth('logs', 'rot')).stdout, batch(0).join('\n') + '\n');
  assert.equal(ok(await docker('logs', '--tail', '3', 'rot')).stdout, batch(0).slice(-3).join('\n') + '\n');

  // While berthd is dead the container writes on (conmon keeps the log); berthd rotates again once back.
  const before = rotated();
  await d.kill9();
  stdin('go\n');
  await waitFor('the second burst', () => logged().includes('line-599-'), 30_000, 50);
  await d.restart();
  await waitFor('a rotation after the restart', () => rotated() > before, 30_000, 50);

  // A follower started now sees everything, however many rotations happen while it reads.
  const follow = d.docker(['logs', '-f', 'rot'], { timeoutMs: 60_000 });
  stdin('go\n');
  ok(await docker('wait', 'rot'));
  const expected = [...batch(0), ...batch(300), ...batch(600)].join('\n') + '\n';
  const followed = ok(await follow);
  assert.equal(followed.stdout, expected);
  assert.ok(rotated() > 5, String(rotated()));
  const all = ok(await docker('logs', 'rot'));
  assert.equal(all.stdout, expected);
  assert.equal(all.stderr, [300, 400, 500].map((i) => `err-${i}`).join('\n') + '\n');
  const stamped = ok(await berth('logs', '-t', '--since', '1970-01-02T00:00:00Z', 'rot')).stdout.trim().split('\n');
  assert.equal(stamped.length, 900);
  for (const l of stamped) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z line-/);
  ok(await berth('rm', 'rot'));
});
