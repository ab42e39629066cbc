/**
 * A background container's life through `berth`: run -d, ps, logs, exec,
 * attach, stop/start/restart/kill/wait, pause/unpause, top, rename, inspect, rm.
 * Tests run in order and share the `web` container.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { busyboxDaemonForFile, ok, parsePs, waitFor, sleep, BERTH_BIN } from '../helpers/daemon';

const d = busyboxDaemonForFile();
let webId = '';

const berth = (...args: string[]) => d.cli(args);
const inspect = async (name: string) => JSON.parse(ok(await berth('inspect', name)).stdout)[0];

test('run -d --name web busybox httpd -f -p 8080 prints the id and keeps running', async () => {
  const r = ok(await berth('run', '-d', '--name', 'web', 'busybox', 'httpd', '-f', '-p', '8080'));
  webId = r.stdout.trim();
  assert.match(webId, /^[0-9a-f]{64}$/);
  const c = await inspect('web');
  assert.equal(c.Id, webId);
  assert.equal(c.State.Status, 'running');
  assert.equal(c.State.Running, true);
  assert.ok(c.State.Pid > 0);
  assert.deepEqual(c.Path, 'httpd');
  assert.deepEqual(c.Args, ['-f', '-p', '8080']);
});

test('ps, ps -q, ps -a, ps --filter status=exited, ps --format', async () => {
  const exitedId = ok(await berth('run', '-d', '--name', 'done1', 'busybox', 'true')).stdout.trim();
  await waitFor('done1 to exit', async () => (await inspect('done1')).State.Status === 'exited');

  const ps = ok(await berth('ps'));
  const lines = ps.stdout.trimEnd().split('\n');
  assert.match(lines[0], /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
  assert.equal(lines.length, 2, ps.stdout);
  assert.match(lines[1], new RegExp(`^${webId.slice(0, 12)}\\s+busybox\\s+"httpd -f -p 8080"\\s+.*ago\\s+Up .*\\s+web$`));

  assert.equal(ok(await berth('ps', '-q')).stdout, `${webId.slice(0, 12)}\n`);
  const all = ok(await berth('ps', '-aq')).stdout.trim().split('\n').sort();
  assert.deepEqual(all, [webId.slice(0, 12), exitedId.slice(0, 12)].sort());
  const exited = ok(await berth('ps', '-a', '--filter', 'status=exited', '--format', '{{.Names}} {{.Status}}'));
  assert.match(exited.stdout, /^done1 Exited \(0\) .* ago\n$/);
  const byName = ok(await berth('ps', '-a', '--filter', 'name=web', '--format', '{{.ID}}'));
  assert.equal(byName.stdout, `${webId.slice(0, 12)}\n`);
  const json = ok(await berth('ps', '--format', '{{json .}}'));
  const row = JSON.parse(json.stdout.trim());
  assert.equal(row.Names, 'web');
  assert.equal(row.State, 'running');
  ok(await berth('rm', 'done1'));
});

test('logs, logs --tail, logs -t, logs -f', async () => {
  ok(await berth('run', '-d', '--name', 'talker', 'busybox', 'sh', '-c', 'for i in 1 2 3 4 5 6 7 8; do echo line $i; done; echo oops >&2'));
  await waitFor('talker to exit', async () => (await inspect('talker')).State.Status === 'exited');
  const logs = ok(await berth('logs', 'talker'));
  assert.equal(logs.stdout, [1, 2, 3, 4, 5, 6, 7, 8].map((i) => `line ${i}\n`).join(''));
  assert.equal(logs.stderr, 'oops\n');
  const tail = ok(await berth('logs', '--tail', '5', 'talker'));
  assert.equal(tail.stdout + tail.stderr, 'line 5\nline 6\nline 7\nline 8\noops\n');
  const ts = ok(await berth('logs', '-t', '--tail', '2', 'talker'));
  assert.match(ts.stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line 8\n$/);

  // -f follows new output until the container exits
  ok(await berth('run', '-d', '--name', 'ticker', 'busybox', 'sh', '-c', 'for i in 1 2 3; do echo tick $i; sleep 0.5; done'));
  const f = ok(await berth('logs', '-f', 'ticker'), 'logs -f');
  assert.equal(f.stdout, 'tick 1\ntick 2\ntick 3\n');
  ok(await berth('rm', 'talker', 'ticker'));
});

test('logs -f prints lines as they are written', async () => {
  ok(await berth('run', '-d', '--name', 'live', 'busybox', 'sh', '-c', 'echo first; sleep 2; echo second; sleep 30'));
  const child = spawn(process.execPath, [BERTH_BIN, 'logs', '-f', 'live'], { env: { ...process.env, ...d.env } });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  try {
    await waitFor('first line', () => out.includes('first\n'), 10_000, 50);
    assert.equal(out.includes('second'), false);
    await waitFor('second line while following', () => out.includes('second\n'), 10_000, 50);
  } finally {
    child.kill('SIGKILL');
  }
  ok(await berth('rm', '-f', 'live'));
});

test('exec web ps: the exec joins the container; PID 1 is httpd', async () => {
  const r = ok(await berth('exec', 'web', 'ps'));
  const rows = parsePs(r.stdout);
  assert.equal(rows[0].pid, 1);
  assert.match(rows[0].command, /^httpd -f -p 8080/);
  assert.equal(rows.length, 2, r.stdout);
  assert.match(rows[1].command, /^ps\b/);
});

test('exec -e A=1 -u 1000 -w /tmp web env', async () => {
  const r = ok(await berth('exec', '-e', 'A=1', '-u', '1000', '-w', '/tmp', 'web', 'sh', '-c', 'env; id -u; pwd'));
  const lines = r.stdout.trim().split('\n');
  assert.ok(lines.includes('A=1'), r.stdout);
  assert.deepEqual(lines.slice(-2), ['1000', '/tmp']);
  const code = await berth('exec', 'web', 'sh', '-c', 'exit 6');
  assert.equal(code.code, 6);
  const stdin = ok(await d.cli(['exec', '-i', 'web', 'cat'], { input: 'piped\n' }));
  assert.equal(stdin.stdout, 'piped\n');
});

test('top web lists the container processes', async () => {
  const r = ok(await berth('top', 'web'));
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0], /PID/);
  assert.match(lines[0], /CMD|COMMAND/);
  assert.ok(lines.slice(1).some((l) => l.includes('httpd -f -p 8080')), r.stdout);
});

test('stop web: SIGTERM is ignored by PID 1 without a handler, so SIGKILL after -t', async () => {
  const t0 = Date.now();
  ok(await berth('stop', '-t', '1', 'web'));
  const took = Date.now() - t0;
  assert.ok(took >= 900 && took < 8000, `stop took ${took} ms`);
  const c = await inspect('web');
  assert.equal(c.State.Status, 'exited');
  assert.equal(c.State.Running, false);
  assert.equal(c.State.ExitCode, 137);
});

test('start web runs it again with the same id', async () => {
  ok(await berth('start', 'web'));
  const c = await inspect('web');
  assert.equal(c.Id, webId);
  assert.equal(c.State.Status, 'running');
  assert.equal(ok(await berth('exec', 'web', 'echo', 'back')).stdout, 'back\n');
});

test('restart web gives it a new process', async () => {
  const before = (await inspect('web')).State;
  ok(await berth('restart', '-t', '1', 'web'));
  const after = (await inspect('web')).State;
  assert.equal(after.Status, 'running');
  assert.notEqual(after.Pid, before.Pid);
  assert.notEqual(after.StartedAt, before.StartedAt);
});

test('kill -s USR1 delivers the signal; kill stops with 137', async () => {
  ok(await berth('run', '-d', '--name', 'trap', 'busybox', 'sh', '-c', 'trap "echo got usr1" USR1; echo ready; while true; do sleep 0.1; done'));
  await waitFor('trap ready', async () => ok(await berth('logs', 'trap')).stdout.includes('ready'));
  ok(await berth('kill', '-s', 'USR1', 'trap'));
  await waitFor('USR1 handled', async () => ok(await berth('logs', 'trap')).stdout.includes('got usr1'), 10_000);
  assert.equal((await inspect('trap')).State.Status, 'running');
  ok(await berth('kill', 'trap'));
  await waitFor('trap killed', async () => (await inspect('trap')).State.Status === 'exited');
  assert.equal((await inspect('trap')).State.ExitCode, 137);
  ok(await berth('rm', 'trap'));
});

test('wait prints the exit code once the container stops', async () => {
  ok(await berth('run', '-d', '--name', 'waiter', 'busybox', 'sh', '-c', 'sleep 1; exit 7'));
  const r = ok(await berth('wait', 'waiter'));
  assert.equal(r.stdout, '7\n');
  ok(await berth('rm', 'waiter'));
});

test('attach streams the output and returns the exit code', async () => {
  // The container speaks only once the session is attached (its attach event), however slow the host.
  const since = Math.floor(Date.now() / 1000) - 1;
  ok(await berth('run', '-d', '--name', 'att', 'busybox', 'sh', '-c', 'until [ -e /go ]; do sleep 0.05; done; echo from-attach; exit 5'));
  const attached = berth('attach', 'att');
  const filters = encodeURIComponent(JSON.stringify({ container: ['att'], event: ['attach'] }));
  await waitFor('the attach event', async () => {
    const r = await d.api('GET', `/events?since=${since}&until=${Math.ceil(Date.now() / 1000)}&filters=${filters}`);
    return String(r.raw).includes('"attach"') || undefined;
  }, 60_000);
  ok(await berth('exec', 'att', 'touch', '/go'));
  const r = await attached;
  assert.equal(r.code, 5, r.stderr);
  assert.equal(r.stdout, 'from-attach\n');
  ok(await berth('rm', 'att'));
});

test('attach -i / run -di: stdin reaches the container', async () => {
  // `run -di` sets OpenStdin but not StdinOnce, so (as with the real dockerd and
  // docker CLI) an attach's EOF does not close cat's stdin: it ends the session,
  // and the CLI, like docker's, then waits for the container to exit. Without a
  // TTY there are no detach keys (they are data), so each attach here is left
  // with Ctrl-C under --sig-proxy=false; cat keeps running and every attach can write to it.
  ok(await berth('run', '-di', '--name', 'catter', 'busybox', 'cat'));
  for (const line of ['hello attach', 'second attach']) {
    const cli = spawn(process.execPath, [BERTH_BIN, 'attach', '--sig-proxy=false', 'catter'], { env: { ...process.env, ...d.env }, stdio: ['pipe', 'ignore', 'ignore'] });
    const exited = new Promise((r) => cli.once('exit', r));
    cli.stdin.end(`${line}\n`);
    await waitFor(`cat echoes ${line}`, async () => ok(await berth('logs', 'catter')).stdout.includes(`${line}\n`));
    cli.kill('SIGINT');
    await exited;
  }
  assert.equal(ok(await berth('logs', 'catter')).stdout, 'hello attach\nsecond attach\n');
  assert.equal((await inspect('catter')).State.Status, 'running');
  ok(await berth('rm', '-f', 'catter'));
});

test('pause freezes and unpause thaws web', async () => {
  ok(await berth('pause', 'web'));
  const p = await inspect('web');
  assert.equal(p.State.Status, 'paused');
  assert.equal(p.State.Paused, true);
  const ps = ok(await berth('ps', '--format', '{{.Status}}'));
  assert.match(ps.stdout, /\(Paused\)/);
  ok(await berth('unpause', 'web'));
  const u = await inspect('web');
  assert.equal(u.State.Status, 'running');
  assert.equal(u.State.Paused, false);
  assert.equal(ok(await berth('exec', 'web', 'echo', 'thawed')).stdout, 'thawed\n');
});

test('rename web web2; inspect web2 (with --format)', async () => {
  ok(await berth('rename', 'web', 'web2'));
  const c = await inspect('web2');
  assert.equal(c.Name, '/web2');
  assert.equal(c.Id, webId);
  const gone = await berth('inspect', 'web');
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /No such (object|container): web/);
  const fmt = ok(await berth('inspect', '--format', '{{.State.Status}}', 'web2'));
  assert.equal(fmt.stdout, 'running\n');
  const byPrefix = ok(await berth('inspect', '--format', '{{.Name}}', webId.slice(0, 6)));
  assert.equal(byPrefix.stdout, '/web2\n');
});

test('rm -f web2 removes a running container, its processes and its mounts', async () => {
  const pid = (await inspect('web2')).State.Pid;
  const r = ok(await berth('rm', '-f', 'web2'));
  assert.equal(r.stdout, 'web2\n');
  assert.ok(!ok(await berth('ps', '-aq', '--no-trunc')).stdout.includes(webId));
  await waitFor('container process gone', () => {
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  });
  const { mountsUnder } = await import('../helpers/daemon');
  await sleep(100);
  assert.deepEqual(mountsUnder(d.base).filter((m) => m.includes(webId)), [], 'no mount of the removed container');
});

test('update: new limits reach a running container at once and a stopped one at its next start; bad updates change nothing', async () => {
  const cg = async (c: string) => ok(await berth('exec', c, 'sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
  const id = ok(await berth('run', '-d', '--name', 'limited', '-m', '64m', '--pids-limit', '50', 'busybox', 'sleep', '300')).stdout.trim();
  try {
    assert.equal((await cg(id)).stdout, `${64 * 1024 * 1024}\n50\n-1\n`);
    assert.equal(ok(await berth('update', '-m', '128m', '--pids-limit', '80', '--cpus', '0.5', '--restart', 'on-failure:3', 'limited')).stdout, 'limited\n');
    assert.equal((await cg(id)).stdout, `${128 * 1024 * 1024}\n80\n50000\n`, 'applied to the running container');
    const hc = (await inspect(id)).HostConfig;
    assert.deepEqual([hc.Memory, hc.PidsLimit, hc.NanoCpus, hc.RestartPolicy], [128 * 1024 * 1024, 80, 5e8, { Name: 'on-failure', MaximumRetryCount: 3 }]);

    // the docker CLI too; -1 lifts the pids limit
    ok(await d.docker(['update', '--pids-limit', '-1', id]));
    assert.equal((await cg(id)).stdout.split('\n')[1], 'max');

    for (const [args, message] of [
      [[], 'you must provide one or more flags when using this command'],
      [['--cpu-quota', '50000'], `Error response from daemon: Cannot update container ${id}: Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set`],
      [['-m', '1k'], 'Error response from daemon: Minimum memory limit allowed is 6MB'],
      [['--restart', 'sometimes'], "Error response from daemon: invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"],
    ] as Array<[string[], string]>) {
      const r = await berth('update', ...args, 'limited');
      assert.equal(r.code, 1, args.join(' '));
      assert.equal(r.stderr.trim(), message);
    }
    assert.equal((await inspect(id)).HostConfig.Memory, 128 * 1024 * 1024, 'nothing changed by the failed updates');

    // stopped: recorded, applied at the next start
    ok(await berth('stop', '-t', '0', 'limited'));
    ok(await berth('update', '-m', '96m', 'limited'));
    ok(await berth('start', 'limited'));
    assert.equal((await cg(id)).stdout.split('\n')[0], String(96 * 1024 * 1024));
  } finally {
    ok(await berth('rm', '-f', 'limited'));
  }
  const missing = await berth('update', '-m', '64m', 'no-such');
  assert.equal(missing.stderr, 'Error response from daemon: No such container: no-such\n');
});
