/**
 * `berth run` / `create` as a Docker user types them: real containers,
 * real output, isolation and limits read back from inside the container.
 * Needs root, runc, conmon and the host's busybox-static.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxDaemonForFile, ok, parsePs, waitFor } from '../helpers/daemon';

const d = busyboxDaemonForFile();

const berth = (...args: string[]) => d.cli(args);
const inspect = async (name: string) => JSON.parse(ok(await berth('inspect', name)).stdout)[0];

/** Docker's default capability set (CapEff of a default container). */
const DOCKER_DEFAULT_CAPS = 0x00000000a80425fbn;
const capsOf = (statusText: string, field = 'CapEff') => {
  const m = statusText.match(new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm'));
  assert.ok(m, `no ${field} in:\n${statusText}`);
  return BigInt('0x' + m[1]);
};

test('run --rm busybox echo hello prints hello and leaves no container', async () => {
  const r = ok(await berth('run', '--rm', 'busybox', 'echo', 'hello'));
  assert.equal(r.stdout, 'hello\n');
  const ps = ok(await berth('ps', '-aq'));
  assert.equal(ps.stdout.trim(), '');
});

test('the exit code of the command is the exit code of run', async () => {
  const r = await berth('run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3');
  assert.equal(r.code, 3);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
});

test('own pid namespace: PID 1 is the command and only its processes are visible', async () => {
  const r = ok(await berth('run', '--rm', 'busybox', 'ps'));
  const rows = parsePs(r.stdout);
  assert.equal(rows.length, 1, r.stdout);
  assert.equal(rows[0].pid, 1);
  assert.match(rows[0].command, /^ps\b/);
});

test('CMD, ENTRYPOINT and args combine as in Docker', async () => {
  // busybox's CMD is ["sh"]: with no args and no stdin, sh reads EOF and exits 0.
  const def = await berth('run', '--rm', 'busybox');
  assert.equal(def.code, 0, def.stderr);
  const ep = ok(await berth('run', '--rm', '--entrypoint', 'echo', 'busybox', 'a', 'b'));
  assert.equal(ep.stdout, 'a b\n');
  const epOnly = ok(await berth('run', '--rm', '--entrypoint', 'pwd', 'busybox'));
  assert.equal(epOnly.stdout, '/\n'); // an --entrypoint resets the image's CMD
  const cmd = await inspect('busybox');
  assert.deepEqual(cmd.Config.Cmd, ['sh']);
});

test('-e, --env-file, -w, -u, --hostname', async () => {
  const envFile = path.join(d.base, 'env.list');
  fs.writeFileSync(envFile, '# comment\nFROM_FILE=yes\nSPACED=a b\n');
  const r = ok(await berth('run', '--rm', '-e', 'A=1', '--env-file', envFile, '-w', '/tmp', '-u', '1000:1000',
    '--hostname', 'box1', 'busybox', 'sh', '-c', 'env; pwd; id -u; id -g; hostname'));
  const lines = r.stdout.split('\n');
  assert.ok(lines.includes('A=1'), r.stdout);
  assert.ok(lines.includes('FROM_FILE=yes'), r.stdout);
  assert.ok(lines.includes('SPACED=a b'), r.stdout);
  assert.ok(lines.includes('HOSTNAME=box1'), r.stdout);
  assert.ok(lines.some((l) => l.startsWith('PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')), r.stdout);
  assert.deepEqual(lines.slice(-5), ['/tmp', '1000', '1000', 'box1', '']);
});

test('a -w directory that does not exist is created', async () => {
  const r = ok(await berth('run', '--rm', '-w', '/new/work', 'busybox', 'pwd'));
  assert.equal(r.stdout, '/new/work\n');
});

test('the default hostname is the short container id; names and ids are Docker-shaped', async () => {
  const id = ok(await berth('run', '-d', 'busybox', 'hostname')).stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  await waitFor('container to exit', async () => (await inspect(id)).State.Status === 'exited');
  const c = await inspect(id.slice(0, 7)); // unique prefix
  assert.equal(c.Id, id);
  assert.match(c.Name, /^\/[a-z]+_[a-z]+[0-9]*$/);
  assert.equal(c.Config.Hostname, id.slice(0, 12));
  assert.equal(ok(await berth('logs', id)).stdout, `${id.slice(0, 12)}\n`);
  ok(await berth('rm', id));
});

test('-v HOST:CTR binds read-write, :ro read-only', async () => {
  const dir = path.join(d.base, 'vol');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'in.txt'), 'from host\n');
  const r = ok(await berth('run', '--rm', '-v', `${dir}:/data`, 'busybox', 'sh', '-c', 'cat /data/in.txt; echo from ctr > /data/out.txt'));
  assert.equal(r.stdout, 'from host\n');
  assert.equal(fs.readFileSync(path.join(dir, 'out.txt'), 'utf8'), 'from ctr\n');
  const ro = await berth('run', '--rm', '-v', `${dir}:/data:ro`, 'busybox', 'touch', '/data/x');
  assert.notEqual(ro.code, 0);
  assert.match(ro.stderr, /Read-only file system/);
  assert.equal(fs.existsSync(path.join(dir, 'x')), false);
});

test('--read-only makes the root filesystem read-only', async () => {
  const r = await berth('run', '--rm', '--read-only', 'busybox', 'touch', '/x');
  assert.equal(r.code, 1);
  assert.match(r.stderr, /Read-only file system/);
  const rw = ok(await berth('run', '--rm', 'busybox', 'sh', '-c', 'touch /x && echo ok'));
  assert.equal(rw.stdout, 'ok\n');
});

test("Docker's default capabilities; --cap-add, --cap-drop", async () => {
  const def = ok(await berth('run', '--rm', 'busybox', 'cat', '/proc/self/status')).stdout;
  assert.equal(capsOf(def), DOCKER_DEFAULT_CAPS);
  assert.equal(capsOf(def, 'CapBnd'), DOCKER_DEFAULT_CAPS);
  const add = ok(await berth('run', '--rm', '--cap-add', 'NET_ADMIN', 'busybox', 'cat', '/proc/self/status')).stdout;
  assert.equal(capsOf(add), DOCKER_DEFAULT_CAPS | (1n << 12n));
  const drop = ok(await berth('run', '--rm', '--cap-drop', 'ALL', 'busybox', 'cat', '/proc/self/status')).stdout;
  assert.equal(capsOf(drop), 0n);
  const dropOne = ok(await berth('run', '--rm', '--cap-drop', 'CHOWN', 'busybox', 'cat', '/proc/self/status')).stdout;
  assert.equal(capsOf(dropOne), DOCKER_DEFAULT_CAPS & ~1n);
});

test('--privileged: every capability of the host bounding set, host devices, no masked paths', async () => {
  const hostBnd = capsOf(fs.readFileSync('/proc/self/status', 'utf8'), 'CapBnd');
  const r = ok(await berth('run', '--rm', '--privileged', 'busybox', 'sh', '-c', 'cat /proc/self/status; echo ===; cat /proc/self/mountinfo; echo ===; ls /dev'));
  const [status, mountinfo, devs] = r.stdout.split('===\n');
  assert.equal(capsOf(status), hostBnd);
  assert.doesNotMatch(mountinfo, / \/proc\/(kcore|keys|timer_list) /);
  assert.doesNotMatch(mountinfo, / \/sys\/firmware /);
  const hostDevs = fs.readdirSync('/dev').filter((n) => /^(loop\d+|kmsg|mem)$/.test(n));
  for (const dev of hostDevs) assert.ok(devs.split('\n').includes(dev), `host device /dev/${dev} missing:\n${devs}`);
});

test('masked and read-only /proc and /sys paths', async () => {
  const r = ok(await berth('run', '--rm', 'busybox', 'sh', '-c',
    'wc -c < /proc/timer_list; ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo writable || echo ro; cat /proc/self/mountinfo'));
  const lines = r.stdout.split('\n');
  assert.equal(lines[0].trim(), '0', 'masked /proc/timer_list reads empty');
  assert.equal(lines[1].trim(), '0', '/sys/firmware is masked');
  assert.equal(lines[2], 'ro', '/proc/sys is read-only');
  const mountinfo = lines.slice(3).join('\n');
  // only paths that exist on this host are masked (runc skips the others)
  for (const p of ['/proc/kcore', '/proc/keys', '/proc/timer_list', '/sys/firmware'].filter((x) => fs.existsSync(x))) {
    assert.match(mountinfo, new RegExp(` ${p.replace(/\//g, '\\/')} `), `${p} is not masked`);
  }
  assert.match(mountinfo, / \/proc\/sys ro,/);
  assert.match(mountinfo, / \/sys ro,/);
});

test('-m, --cpus, --pids-limit: cgroup limits the container can read back', async () => {
  const r = ok(await berth('run', '--rm', '-m', '64m', '--cpus', '0.5', '--pids-limit', '50', 'busybox', 'sh', '-c',
    // cgroup v1: runc mounts each hierarchy under its name (on this host cpu and cpuacct are separate)
    'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us /sys/fs/cgroup/pids/pids.max'));
  assert.deepEqual(r.stdout.trim().split('\n'), [String(64 * 1024 * 1024), '50000', '100000', '50']);
  const c = await (async () => {
    const id = ok(await berth('create', '-m', '64m', '--cpus', '0.5', '--pids-limit', '50', 'busybox', 'true')).stdout.trim();
    const info = await inspect(id);
    ok(await berth('rm', id));
    return info;
  })();
  assert.equal(c.HostConfig.Memory, 64 * 1024 * 1024);
  assert.equal(c.HostConfig.NanoCpus, 500_000_000);
  assert.equal(c.HostConfig.PidsLimit, 50);
});

test('--cgroupns: private by default (own cgroup as root), host on request; inspect shows the mode', async () => {
  const own = ok(await berth('run', '--rm', 'busybox', 'sh', '-c', 'grep :memory: /proc/self/cgroup | cut -d: -f3')).stdout.trim();
  assert.equal(own, '/');
  const host = ok(await berth('run', '--rm', '--cgroupns', 'host', 'busybox', 'sh', '-c', 'grep :memory: /proc/self/cgroup | cut -d: -f3')).stdout.trim();
  assert.match(host, /^\/berth-bt-[^/]+\/[0-9a-f]{64}$/);
  const id = ok(await berth('create', 'busybox', 'true')).stdout.trim();
  assert.equal((await inspect(id)).HostConfig.CgroupnsMode, 'private');
  ok(await berth('rm', id));
  const bad = await berth('run', '--rm', '--cgroupns', 'shared', 'busybox', 'true');
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /invalid cgroup namespace mode: shared/);
});

test('the pids limit is enforced', async () => {
  // busybox sh reports the failed fork on stderr and exits 2 (as under dockerd; do not send the
  // loop's stderr to /dev/null, that hides the message).
  const r = await berth('run', '--rm', '--pids-limit', '5', 'busybox', 'sh', '-c',
    'for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; wait; echo done');
  assert.match(r.stderr, /can't fork: Resource temporarily unavailable/);
  assert.equal(r.code, 2);
  assert.doesNotMatch(r.stdout, /done/);
});

test('--ulimit sets rlimits; default rlimits never exceed the host hard limits', async () => {
  const r = ok(await berth('run', '--rm', '--ulimit', 'nofile=512:1024', 'busybox', 'sh', '-c', 'ulimit -n; ulimit -Hn'));
  assert.deepEqual(r.stdout.trim().split('\n'), ['512', '1024']);
  const hostLimits = fs.readFileSync('/proc/self/limits', 'utf8');
  const hostHard = hostLimits.match(/^Max open files\s+\S+\s+(\S+)/m)![1];
  const def = ok(await berth('run', '--rm', 'busybox', 'sh', '-c', 'ulimit -Hn'));
  const ctrHard = def.stdout.trim();
  if (hostHard !== 'unlimited') assert.ok(ctrHard !== 'unlimited' && Number(ctrHard) <= Number(hostHard), `container ${ctrHard} > host ${hostHard}`);
});

test('--init runs an init as PID 1 that reaps and forwards', async () => {
  const r = ok(await berth('run', '--rm', '--init', 'busybox', 'ps'));
  const rows = parsePs(r.stdout);
  assert.equal(rows.length, 2, r.stdout);
  assert.equal(rows[0].pid, 1);
  assert.match(rows[0].command, /init|tini/);
  assert.match(rows[1].command, /^ps\b/);
});

test('--dns and --add-host write resolv.conf and hosts', async () => {
  const r = ok(await berth('run', '--rm', '--dns', '127.0.0.1', '--add-host', 'db.local:127.0.0.2', 'busybox', 'sh', '-c',
    'cat /etc/resolv.conf; echo ===; cat /etc/hosts'));
  const [resolv, hosts] = r.stdout.split('===\n');
  assert.match(resolv, /^nameserver 127\.0\.0\.1$/m);
  assert.doesNotMatch(resolv, /^nameserver (?!127\.0\.0\.1$)/m);
  assert.match(hosts, /^127\.0\.0\.2\s+db\.local$/m);
  assert.match(hosts, /^127\.0\.0\.1\s+localhost/m);
});

test('--network none has only loopback; --network host sees the host interfaces', async () => {
  const none = ok(await berth('run', '--rm', '--network', 'none', 'busybox', 'cat', '/proc/net/dev'));
  const ifaces = (text: string) => text.split('\n').slice(2).map((l) => l.split(':')[0].trim()).filter(Boolean).sort();
  assert.deepEqual(ifaces(none.stdout), ['lo']);
  const host = ok(await berth('run', '--rm', '--network', 'host', 'busybox', 'cat', '/proc/net/dev'));
  assert.deepEqual(ifaces(host.stdout), ifaces(fs.readFileSync('/proc/net/dev', 'utf8')));
  const dflt = ok(await berth('run', '--rm', 'busybox', 'cat', '/proc/net/dev'));
  assert.deepEqual(ifaces(dflt.stdout), ['eth0', 'lo'], 'the default network is the bridge');
});

test('-i passes stdin; -a start; create + start -a returns the exit code', async () => {
  const r = ok(await d.cli(['run', '-i', '--rm', 'busybox', 'sh', '-c', 'cat; echo end'], { input: 'line1\nline2\n' }));
  assert.equal(r.stdout, 'line1\nline2\nend\n');
  const id = ok(await berth('create', '--name', 'created1', 'busybox', 'sh', '-c', 'echo started; exit 9')).stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  assert.equal((await inspect('created1')).State.Status, 'created');
  const s = await berth('start', '-a', 'created1');
  assert.equal(s.code, 9);
  assert.equal(s.stdout, 'started\n');
  ok(await berth('rm', 'created1'));
});

test('--label, --stop-signal, --stop-timeout, --restart and --name are recorded as Docker does', async () => {
  ok(await berth('create', '--name', 'meta1', '--label', 'team=infra', '--stop-signal', 'SIGUSR1', '--stop-timeout', '3',
    '--restart', 'on-failure:3', 'busybox', 'true'));
  const c = await inspect('meta1');
  assert.equal(c.Name, '/meta1');
  assert.equal(c.Config.Labels.team, 'infra');
  assert.equal(c.Config.StopSignal, 'SIGUSR1');
  assert.equal(c.Config.StopTimeout, 3);
  assert.deepEqual(c.HostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
  ok(await berth('rm', 'meta1'));
});

test('--restart on-failure:2 restarts a failing container twice, then leaves it exited', async () => {
  ok(await berth('run', '-d', '--name', 'flaky', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'echo attempt; exit 1'));
  const c = await waitFor('two restarts', async () => {
    const i = await inspect('flaky');
    return i.RestartCount === 2 && i.State.Status === 'exited' ? i : undefined;
  }, 30_000, 250);
  assert.equal(c.State.ExitCode, 1);
  const logs = ok(await berth('logs', 'flaky'));
  assert.equal(logs.stdout, 'attempt\nattempt\nattempt\n');
  ok(await berth('rm', 'flaky'));
});

test('--restart always brings a container back after its command exits', async () => {
  ok(await berth('run', '-d', '--name', 'always1', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 0.3; exit 0'));
  await waitFor('a restart', async () => (await inspect('always1')).RestartCount >= 1, 20_000, 250);
  ok(await berth('rm', '-f', 'always1'));
});

test('--pull never with an unknown image fails without creating anything', async () => {
  const before = ok(await berth('ps', '-aq')).stdout;
  const r = await berth('run', '--pull', 'never', '--rm', 'nope-img', 'true');
  assert.equal(r.code, 125);
  assert.match(r.stderr, /No such image: nope-img:latest/);
  assert.equal(ok(await berth('ps', '-aq')).stdout, before);
});
