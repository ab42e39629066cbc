/**
 * buildOciSpec against the real runc (root): a busybox rootfs in a temp
 * bundle, `runc run` with piped stdio, assertions on what the container
 * sees. Each case uses its own runc root, id and top-level cgroup path;
 * `runc delete -f` and the temp dirs are cleaned up even on failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { buildOciSpec, writeOciConfig, type DockerHostConfig, type SpecInput } from '../../src/runtime/spec';
import { hostFacts } from '../../src/runtime/host';
import { capabilityMask, DEFAULT_CAPABILITIES, parseCapLine } from '../../src/runtime/caps';
import { resolveUser } from '../../src/runtime/user';
import { buildEtcFiles, writeEtcFiles } from '../../src/container/etcfiles';
import { busyboxRootfsDir } from '../helpers/rootfs';

function makeRootfs(dir: string): string {
  return busyboxRootfsDir(path.join(dir, 'rootfs'));
}

interface RunResult { status: number | null; stdout: string; stderr: string }

/** Builds the spec, runs the container to completion, cleans everything up. */
async function runContainer(script: string, hostConfig: DockerHostConfig, extra: Partial<SpecInput> = {}, userSpec = ''): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bt-spec-'));
  const id = `bt-spec-${randomBytes(6).toString('hex')}`;
  const runcRoot = path.join(dir, 'runc');
  try {
    const rootfs = makeRootfs(dir);
    const etcDir = path.join(dir, 'etc');
    fs.mkdirSync(etcDir);
    const etcFiles = await writeEtcFiles(etcDir, buildEtcFiles({ hostname: id.slice(0, 12), networkMode: hostConfig.NetworkMode, extraHosts: ['db.test:10.9.8.7'] }));
    const spec = buildOciSpec({
      containerId: id, rootfsPath: rootfs, args: ['sh', '-c', script], env: [], user: resolveUser(rootfs, userSpec),
      terminal: false, hostname: id.slice(0, 12), hostConfig, etcFiles, cgroupsPath: `/${id}`, ...extra,
    });
    await writeOciConfig(dir, spec);
    const r = spawnSync('runc', ['--root', runcRoot, 'run', '--bundle', dir, id], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    spawnSync('runc', ['--root', runcRoot, 'delete', '-f', id], { stdio: 'ignore' });
    for (const sub of ['memory', 'pids', 'cpu', 'devices']) {
      assert.ok(!fs.existsSync(`/sys/fs/cgroup/${sub}/${id}`), `cgroup ${sub}/${id} left behind`);
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** `key=value` lines the scripts print. */
function kv(out: string): Record<string, string> {
  const m: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) m[line.slice(0, i)] = line.slice(i + 1);
  }
  return m;
}

const hostNofileHard = hostFacts().rlimits.get('RLIMIT_NOFILE')!.hard;

test('default container: PID 1, Docker caps, masked/readonly paths, cgroup limits, rlimits, etc files', async () => {
  const r = await runContainer([
    'echo pid=$$',
    'echo capeff=$(grep CapEff /proc/self/status | cut -f2)',
    'echo capbnd=$(grep CapBnd /proc/self/status | cut -f2)',
    'echo timer_list_bytes=$(cat /proc/timer_list | wc -c)',
    'echo firmware=$(ls /sys/firmware | wc -l)',
    'echo procsys=$(grep " /proc/sys " /proc/self/mountinfo | cut -d" " -f6)',
    'echo sys=$(grep " /sys " /proc/self/mountinfo | cut -d" " -f6)',
    'echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)',
    'echo memsw=$(cat /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes 2>/dev/null)',
    'echo pids=$(cat /sys/fs/cgroup/pids/pids.max)',
    'echo quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)',
    'echo nofile=$(ulimit -n)', 'echo nofile_hard=$(ulimit -Hn)',
    'echo hostname=$(hostname)', 'echo etc_hostname=$(cat /etc/hostname)',
    'echo db=$(grep db.test /etc/hosts | cut -f1)',
    'echo shm=$(grep " /dev/shm " /proc/self/mountinfo | grep -o "size=[0-9a-z]*")',
    'echo env_path=$PATH', 'echo env_hostname=$HOSTNAME',
    'echo nets=$(ls /sys/class/net | tr "\\n" " ")',
    'mknod /tmp/fuse c 10 229 && (cat /tmp/fuse 2>/dev/null; echo fuse_rc=$?)',
    'echo seccomp=$(grep "^Seccomp:" /proc/self/status | cut -f2)',
    'unshare -U true 2>/dev/null; echo userns_rc=$?',
  ].join('; '), { Memory: 64 * 1024 * 1024, PidsLimit: 64, NanoCpus: 5e8 });
  assert.equal(r.status, 0, r.stderr);
  const v = kv(r.stdout);
  assert.equal(v.pid, '1');
  assert.equal(BigInt('0x' + v.capeff), 0xa80425fbn);
  assert.equal(BigInt('0x' + v.capbnd), capabilityMask(DEFAULT_CAPABILITIES));
  assert.equal(v.timer_list_bytes, '0', 'masked file reads empty');
  assert.equal(v.firmware, '0', 'masked dir is empty');
  assert.match(v.procsys!, /^ro\b/);
  assert.match(v.sys!, /^ro\b/);
  assert.equal(v.mem, String(64 * 1024 * 1024));
  if (hostFacts().swapAccounting) assert.equal(v.memsw, String(128 * 1024 * 1024));
  assert.equal(v.pids, '64');
  assert.equal(v.quota, '50000');
  const expectNofile = 1048576n < hostNofileHard ? 1048576n : hostNofileHard;
  assert.equal(v.nofile, String(expectNofile));
  assert.equal(v.nofile_hard, String(expectNofile));
  assert.match(v.hostname!, /^bt-spec-/);
  assert.equal(v.etc_hostname, v.hostname);
  assert.equal(v.db, '10.9.8.7');
  assert.equal(v.shm, 'size=65536k');
  assert.equal(v.env_path, '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  assert.equal(v.env_hostname, v.hostname);
  assert.equal(v.nets!.trim(), 'lo', 'default network: only lo');
  assert.equal(v.fuse_rc, '1', 'fuse is denied by the device cgroup');
  assert.equal(v.seccomp, '2', 'a seccomp filter is installed');
  assert.equal(v.userns_rc, '1', 'no new user namespace (seccomp refuses it without CAP_SYS_ADMIN)');
});

test('a private cgroup namespace: the container\'s cgroup is its root, limits still readable, read-only', async () => {
  const r = await runContainer([
    'echo mem=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)',
    'echo pids=$(cat /sys/fs/cgroup/pids/pids.max)',
    'echo self=$(grep ":memory:" /proc/self/cgroup | cut -d: -f3)',
    'echo cgfs=$(grep " /sys/fs/cgroup/memory " /proc/self/mountinfo | cut -d" " -f6 | cut -d, -f1)',
  ].join('; '), { Memory: 32 * 1024 * 1024, PidsLimit: 32, CgroupnsMode: 'private' });
  assert.equal(r.status, 0, r.stderr);
  const v = kv(r.stdout);
  assert.equal(v.mem, String(32 * 1024 * 1024));
  assert.equal(v.pids, '32');
  assert.equal(v.self, '/');
  assert.equal(v.cgfs, 'ro');
});

test('--privileged gets the host bounding set, host devices, writable /sys', async () => {
  const r = await runContainer([
    'echo capeff=$(grep CapEff /proc/self/status | cut -f2)',
    'echo sys=$(grep " /sys " /proc/self/mountinfo | cut -d" " -f6)',
    'echo devnull=$(stat -c %t:%T /dev/null)',
    'echo masked=$(grep -c " /proc/timer_list " /proc/self/mountinfo)',
    'echo ndev=$(ls /dev | wc -l)',
    'echo seccomp=$(grep "^Seccomp:" /proc/self/status | cut -f2)',
  ].join('; '), { Privileged: true });
  assert.equal(r.status, 0, r.stderr);
  const v = kv(r.stdout);
  const hostBnd = parseCapLine(fs.readFileSync('/proc/self/status', 'utf8'), 'CapBnd');
  assert.equal(BigInt('0x' + v.capeff), hostBnd);
  assert.match(v.sys!, /^rw\b/);
  assert.equal(v.devnull, '1:3');
  assert.equal(v.masked, '0');
  assert.ok(Number(v.ndev) > 15, `host devices visible (${v.ndev})`);
  assert.equal(v.seccomp, '0', 'no seccomp filter');
});

test('seccomp: CAP_SYS_ADMIN lifts the mount and namespace entries; seccomp=unconfined removes the filter', async () => {
  const admin = await runContainer([
    'mkdir -p /m && mount -t tmpfs none /m && echo mount_ok',
    'unshare -n true; echo netns_rc=$?',
    'echo seccomp=$(grep "^Seccomp:" /proc/self/status | cut -f2)',
  ].join('; '), { CapAdd: ['SYS_ADMIN'] });
  assert.equal(admin.status, 0, admin.stderr);
  const a = kv(admin.stdout);
  assert.equal(a.netns_rc, '0');
  assert.equal(a.seccomp, '2', 'still filtered: keyrings and module loading stay refused');
  assert.match(admin.stdout, /mount_ok/);
  const open = await runContainer('echo seccomp=$(grep "^Seccomp:" /proc/self/status | cut -f2)', { SecurityOpt: ['seccomp=unconfined'] });
  assert.equal(kv(open.stdout).seccomp, '0');
});

test('--network none, read-only rootfs, --user, --init, --ulimit, --cap-drop', async () => {
  const r = await runContainer([
    'echo nets=$(ls /sys/class/net | tr "\\n" " ")',
    'touch /x 2>/dev/null; echo touch_rc=$?',
    'touch /scratch/x; echo tmpfs_rc=$?',
    'echo id=$(id -u):$(id -g):$(id -G | tr " " ,)',
    'echo capeff=$(grep CapEff /proc/self/status | cut -f2)',
    'echo pid1=$(tr "\\0" " " < /proc/1/cmdline)',
    'echo nofile=$(ulimit -n)', 'echo nofile_hard=$(ulimit -Hn)',
  ].join('; '), {
    NetworkMode: 'none', ReadonlyRootfs: true, Init: true, Tmpfs: { '/scratch': 'mode=1777' },
    Ulimits: [{ Name: 'nofile', Soft: 1024, Hard: 2048 }], CapDrop: ['ALL'],
  }, {}, 'nobody');
  assert.equal(r.status, 0, r.stderr);
  const v = kv(r.stdout);
  assert.equal(v.nets!.trim(), 'lo');
  assert.equal(v.touch_rc, '1', 'read-only rootfs refuses writes');
  assert.equal(v.tmpfs_rc, '0');
  assert.equal(v.id, '65534:65534:65534');
  assert.equal(BigInt('0x' + v.capeff), 0n);
  assert.match(v.pid1!, /^\/sbin\/docker-init -- sh -c /);
  assert.equal(v.nofile, '1024');
  assert.equal(v.nofile_hard, '2048');
});

test('--network host sees the host interfaces and keeps its own hostname', async () => {
  const r = await runContainer('echo nets=$(ls /sys/class/net | tr "\\n" " "); echo hostname=$(hostname)', { NetworkMode: 'host' });
  assert.equal(r.status, 0, r.stderr);
  const v = kv(r.stdout);
  assert.deepEqual(v.nets!.trim().split(' ').sort(), fs.readdirSync('/sys/class/net').sort());
  assert.match(v.hostname!, /^bt-spec-/);
  assert.equal(os.hostname() === v.hostname, false);
});

test('a failing spec is reported by runc, not hidden', async () => {
  const r = await runContainer('true', {}, { args: ['/no/such/binary'] });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /no such file or directory/);
});
