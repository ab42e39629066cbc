import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../../src/common/errors';
import {
  containerCapabilities, capabilityMask, DEFAULT_CAPABILITIES, hostBoundingCapabilities, normalizeCapabilities, parseCapLine,
} from '../../src/runtime/caps';
import {
  buildOciSpec, mergeTmpfsOptions, parseSecurityOpts, serializeOciSpec, containerEnv, SpecInput, MASKED_PATHS, READONLY_PATHS,
} from '../../src/runtime/spec';
import { devMajor, devMinor, hostFacts, parseProcLimits, RLIM_INFINITY } from '../../src/runtime/host';
import { buildRlimits } from '../../src/runtime/resources';
import { hostConfigMountPoints, parseBind } from '../../src/container/binds';
import { mergeImageConfig, resolveArgs } from '../../src/container/runconfig';
import { defaultSeccompProfile } from '../../src/runtime/seccomp';

function invalid(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof BerthError, `expected BerthError, got ${err}`);
    assert.equal(err.kind, 'invalid-argument');
    if (typeof message === 'string') assert.equal(err.message, message); else assert.match(err.message, message);
    return true;
  });
}

/** A spec input; the mount points are the ones HostConfig names, as the container area passes them. */
function input(over: Partial<SpecInput> = {}): SpecInput {
  const base: SpecInput = {
    containerId: 'c0ffee'.padEnd(64, '0'), rootfsPath: '/nonexistent-rootfs', args: ['sh'], env: [], user: { uid: 0, gid: 0 },
    terminal: false, hostname: 'c0ffee000000', hostConfig: {}, cgroupsPath: '/berth/x', prepareHostPaths: false,
    host: { cpus: 2 }, ...over,
  };
  return { mountPoints: hostConfigMountPoints(base.hostConfig), ...base };
}

test('default capability set is Docker\'s (mask a80425fb)', () => {
  assert.equal(capabilityMask(DEFAULT_CAPABILITIES), 0xa80425fbn);
  assert.deepEqual(containerCapabilities({ allCapabilities: ['CAP_CHOWN'] }), [...DEFAULT_CAPABILITIES]);
});

test('cap-add / cap-drop: prefixes, case, ALL, unknown', () => {
  assert.deepEqual(normalizeCapabilities(['net_admin', 'CAP_sys_time', 'all', 'NET_ADMIN']), ['CAP_NET_ADMIN', 'CAP_SYS_TIME', 'ALL']);
  const all = ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_ADMIN'];
  const caps = containerCapabilities({ capAdd: ['net_admin'], capDrop: ['CAP_MKNOD', 'kill'], allCapabilities: all });
  assert.ok(caps.includes('CAP_NET_ADMIN'));
  assert.ok(!caps.includes('CAP_MKNOD') && !caps.includes('CAP_KILL'));
  assert.deepEqual(containerCapabilities({ capAdd: ['ALL'], capDrop: ['kill'], allCapabilities: all }), ['CAP_CHOWN', 'CAP_NET_ADMIN']);
  assert.deepEqual(containerCapabilities({ capAdd: ['chown'], capDrop: ['all'], allCapabilities: all }), ['CAP_CHOWN']);
  assert.deepEqual(containerCapabilities({ privileged: true, allCapabilities: all }), all);
  invalid(() => containerCapabilities({ capAdd: ['foo'] }), 'unknown capability: "CAP_FOO"');
  invalid(() => buildOciSpec(input({ hostConfig: { CapDrop: ['CAP_FOO'] } })), 'unknown capability: "CAP_FOO"');
});

test('privileged gets exactly the host bounding set', () => {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  assert.equal(capabilityMask(hostBoundingCapabilities()), parseCapLine(status, 'CapBnd') & ((1n << 41n) - 1n));
  const spec = buildOciSpec(input({ hostConfig: { Privileged: true } }));
  assert.deepEqual(spec.process.capabilities.bounding, hostBoundingCapabilities());
  assert.deepEqual(spec.process.capabilities.effective, hostBoundingCapabilities());
  assert.deepEqual(spec.linux.maskedPaths, []);
  assert.deepEqual(spec.linux.readonlyPaths, []);
  assert.deepEqual(spec.linux.resources.devices, [{ allow: true, access: 'rwm' }]);
  assert.ok(spec.mounts.find((m) => m.destination === '/sys')!.options!.includes('rw'));
  const nullDev = spec.linux.devices.find((d) => d.path === '/dev/null');
  assert.deepEqual(nullDev && { type: nullDev.type, major: nullDev.major, minor: nullDev.minor }, { type: 'c', major: 1, minor: 3 });
  assert.ok(!spec.linux.devices.some((d) => d.path.startsWith('/dev/pts/') || d.path === '/dev/console'));
});

test('default spec: namespaces, mounts, masked/readonly paths, device rules, env', () => {
  const spec = buildOciSpec(input({ env: ['FOO=bar', 'PATH=/custom'], terminal: true }));
  assert.deepEqual(spec.linux.namespaces.map((n) => n.type), ['mount', 'network', 'uts', 'pid', 'ipc']);
  assert.deepEqual(spec.mounts.map((m) => m.destination), ['/proc', '/dev', '/dev/pts', '/sys', '/sys/fs/cgroup', '/dev/mqueue', '/dev/shm']);
  assert.deepEqual(spec.mounts.find((m) => m.destination === '/dev/shm')!.options, ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=67108864']);
  assert.deepEqual(spec.linux.maskedPaths, [...MASKED_PATHS]);
  assert.deepEqual(spec.linux.readonlyPaths, [...READONLY_PATHS]);
  assert.deepEqual(spec.linux.resources.devices![0], { allow: false, access: 'rwm' });
  assert.deepEqual(spec.process.env, ['PATH=/custom', 'HOSTNAME=c0ffee000000', 'TERM=xterm', 'FOO=bar']);
  assert.equal(spec.hostname, 'c0ffee000000');
  assert.equal(spec.process.cwd, '/');
  assert.equal(spec.process.noNewPrivileges, false);
  assert.equal(spec.process.oomScoreAdj, 0);
  assert.deepEqual(spec.process.capabilities.inheritable, []);
  assert.equal(spec.root.readonly, false);
  assert.deepEqual(containerEnv([], 'h', false), ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOSTNAME=h']);
});

test('network/uts/pid/ipc modes', () => {
  const host = buildOciSpec(input({ hostConfig: { NetworkMode: 'host' } }));
  assert.ok(!host.linux.namespaces.some((n) => n.type === 'network'));
  invalid(() => buildOciSpec(input({ hostConfig: { NetworkMode: 'host', Sysctls: { 'net.ipv4.ip_forward': '1' } } })), /not allowed in host network namespace/);
  const none = buildOciSpec(input({ hostConfig: { NetworkMode: 'none' } }));
  assert.ok(none.linux.namespaces.some((n) => n.type === 'network' && !n.path));
  const joined = buildOciSpec(input({ netnsPath: '/run/netns/x' }));
  assert.deepEqual(joined.linux.namespaces.find((n) => n.type === 'network'), { type: 'network', path: '/run/netns/x' });
  const hostUts = buildOciSpec(input({ hostConfig: { UTSMode: 'host', PidMode: 'host', IpcMode: 'host' } }));
  assert.deepEqual(hostUts.linux.namespaces.map((n) => n.type), ['mount', 'network']);
  assert.equal(hostUts.hostname, undefined);
  assert.equal(hostUts.mounts.find((m) => m.destination === '/dev/shm')!.type, 'bind');
  const noIpc = buildOciSpec(input({ hostConfig: { IpcMode: 'none' } }));
  assert.ok(!noIpc.mounts.some((m) => m.destination === '/dev/shm'));
  invalid(() => buildOciSpec(input({ hostConfig: { PidMode: 'bogus' } })), 'invalid PID mode: bogus');
  const cgPrivate = buildOciSpec(input({ hostConfig: { CgroupnsMode: 'private' } }));
  assert.deepEqual(cgPrivate.linux.namespaces.map((n) => n.type), ['mount', 'network', 'uts', 'pid', 'ipc', 'cgroup']);
  const cgHost = buildOciSpec(input({ hostConfig: { CgroupnsMode: 'host' } }));
  assert.ok(!cgHost.linux.namespaces.some((n) => n.type === 'cgroup'));
  invalid(() => buildOciSpec(input({ hostConfig: { CgroupnsMode: 'bogus' } })), 'invalid cgroup namespace mode: bogus');
});

test('resources and Docker\'s validation messages', () => {
  const spec = buildOciSpec(input({ hostConfig: { Memory: 64 << 20, NanoCpus: 1.5e9, CpuShares: 512, PidsLimit: 100, CpusetCpus: '0-1', OomKillDisable: true }, host: { cpus: 2, swapAccounting: true, onlineCpus: new Set([0, 1]) } }));
  assert.deepEqual(spec.linux.resources.memory, { limit: 64 << 20, swap: 128 << 20, disableOOMKiller: true });
  assert.deepEqual(spec.linux.resources.cpu, { period: 100000, quota: 150000, shares: 512, cpus: '0-1' });
  assert.deepEqual(spec.linux.resources.pids, { limit: 100 });
  const unl = buildOciSpec(input({ hostConfig: { Memory: 64 << 20, MemorySwap: -1 }, host: { cpus: 2, swapAccounting: true } }));
  assert.equal(unl.linux.resources.memory!.swap, -1);
  invalid(() => buildOciSpec(input({ hostConfig: { Memory: 1 << 20 } })), 'Minimum memory limit allowed is 6MB');
  invalid(() => buildOciSpec(input({ hostConfig: { NanoCpus: 3e9 }, host: { cpus: 2 } })), 'Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available');
  invalid(() => buildOciSpec(input({ hostConfig: { Memory: 64 << 20, MemorySwap: 32 << 20 } })), 'Minimum memoryswap limit should be larger than memory limit, see usage');
  invalid(() => buildOciSpec(input({ hostConfig: { MemorySwap: 32 << 20 } })), 'You should always set the Memory limit when using Memoryswap limit, see usage');
  invalid(() => buildOciSpec(input({ hostConfig: { NanoCpus: 1e9, CpuQuota: 50000 } })), 'Conflicting options: Nano CPUs and CPU Quota cannot both be set');
  invalid(() => buildOciSpec(input({ hostConfig: { CpuPeriod: 10 } })), /CPU cfs period can not be less than 1ms/);
  invalid(() => buildOciSpec(input({ hostConfig: { CpusetCpus: '0-7' }, host: { cpus: 2, onlineCpus: new Set([0, 1]) } })), 'Requested CPUs are not available - requested 0-7, available: 0-1');
  invalid(() => buildOciSpec(input({ hostConfig: { CpusetCpus: 'x' } })), 'Invalid value x for cpuset cpus');
  invalid(() => buildOciSpec(input({ hostConfig: { ShmSize: -1 } })), 'SHM size can not be less than 0');
  invalid(() => buildOciSpec(input({ hostConfig: { OomScoreAdj: 2000 } })), 'Invalid value 2000, range for oom score adj is [-1000, 1000]');
  invalid(() => buildOciSpec(input({ hostConfig: { Sysctls: { 'kernel.hostname': 'x' } } })), "sysctl 'kernel.hostname' is not whitelisted");
});

test('rlimits are clamped to the host hard limit; soft <= hard', () => {
  const limits = parseProcLimits('Limit Soft Limit Hard Limit Units\nMax open files            20000                20000                files     \nMax processes             unlimited            unlimited            processes \nMax core file size        0                    unlimited            bytes     \n');
  assert.deepEqual(limits.get('RLIMIT_NOFILE'), { soft: 20000n, hard: 20000n });
  assert.deepEqual(limits.get('RLIMIT_NPROC'), { soft: RLIM_INFINITY, hard: RLIM_INFINITY });
  assert.deepEqual(buildRlimits([], limits), [{ type: 'RLIMIT_NOFILE', soft: 20000, hard: 20000 }]);
  assert.deepEqual(buildRlimits([{ Name: 'nofile', Soft: 1024, Hard: 2048 }], limits), [{ type: 'RLIMIT_NOFILE', soft: 1024, hard: 2048 }]);
  assert.deepEqual(buildRlimits([{ Name: 'nofile', Soft: 30000, Hard: 40000 }], limits), [{ type: 'RLIMIT_NOFILE', soft: 20000, hard: 20000 }]);
  const core = buildRlimits([{ Name: 'core', Soft: -1, Hard: -1 }], limits).find((r) => r.type === 'RLIMIT_CORE')!;
  assert.equal(core.hard, RLIM_INFINITY);
  invalid(() => buildRlimits([{ Name: 'bogus', Soft: 1, Hard: 1 }], limits), 'invalid ulimit type: bogus');
  invalid(() => buildRlimits([{ Name: 'nofile', Soft: 5, Hard: 1 }], limits), 'ulimit soft limit must be less than or equal to hard limit: 5 > 1');
  // This host: never above what /proc/self/limits allows.
  const real = hostFacts().rlimits.get('RLIMIT_NOFILE')!.hard;
  const spec = buildOciSpec(input());
  const nofile = spec.process.rlimits.find((r) => r.type === 'RLIMIT_NOFILE')!;
  assert.ok(BigInt(nofile.hard) <= real && BigInt(nofile.soft) <= BigInt(nofile.hard));
  // Unlimited values serialise as exact uint64.
  spec.process.rlimits.push({ type: 'RLIMIT_CORE', soft: RLIM_INFINITY, hard: RLIM_INFINITY });
  assert.match(serializeOciSpec(spec), /"hard": 18446744073709551615/);
});

test('binds, tmpfs, init, readonly rootfs, etc files', () => {
  assert.deepEqual(parseBind('/a:/b:ro,z'), { source: '/a', destination: '/b', volume: false, readonly: true, propagation: 'rprivate', mode: 'ro,z', nocopy: false, raw: '/a:/b:ro,z' });
  assert.deepEqual(parseBind('vol:/b:nocopy'), { source: 'vol', destination: '/b', volume: true, readonly: false, propagation: '', mode: 'nocopy', nocopy: true, raw: 'vol:/b:nocopy' });
  assert.deepEqual(parseBind('/anon/'), { source: '', destination: '/anon', volume: true, readonly: false, propagation: '', mode: '', nocopy: false, raw: '/anon/' });
  invalid(() => parseBind('vol:/b:rshared'), 'invalid mode: rshared');
  invalid(() => parseBind('/a:/b:nocopy'), 'invalid mode: nocopy');
  invalid(() => parseBind('anon'), /mount path must be absolute/);
  invalid(() => parseBind('/a:b'), /mount path must be absolute/);
  invalid(() => parseBind('/a:/b:xx'), 'invalid mode: xx');
  invalid(() => parseBind('/a:/'), /destination can't be '\/'/);
  assert.deepEqual(mergeTmpfsOptions(['noexec', 'nosuid', 'nodev', 'rprivate', 'size=1m', 'exec', 'size=2m']), ['nosuid', 'nodev', 'rprivate', 'exec', 'size=2m']);
  const spec = buildOciSpec(input({
    readonlyRootfs: true, initPath: '/usr/bin/tini-static', args: ['top', '-b'],
    etcFiles: { hostname: '/x/hostname', hosts: '/x/hosts', resolvConf: '/x/resolv.conf' },
    hostConfig: { Init: true, Binds: ['/srv/data/sub:/data/sub:ro', '/srv/data:/data'], Tmpfs: { '/run': 'size=1m' } },
  }));
  assert.deepEqual(spec.process.args, ['/sbin/docker-init', '--', 'top', '-b']);
  assert.equal(spec.root.readonly, true);
  const dests = spec.mounts.map((m) => m.destination);
  assert.ok(dests.indexOf('/data') < dests.indexOf('/data/sub'), 'parents mount first');
  assert.deepEqual(spec.mounts.find((m) => m.destination === '/etc/hosts'), { destination: '/etc/hosts', type: 'bind', source: '/x/hosts', options: ['rbind', 'rprivate', 'ro'] });
  assert.deepEqual(spec.mounts.find((m) => m.destination === '/sbin/docker-init'), { destination: '/sbin/docker-init', type: 'bind', source: '/usr/bin/tini-static', options: ['bind', 'ro'] });
  assert.deepEqual(spec.mounts.find((m) => m.destination === '/data/sub')!.options, ['rbind', 'rprivate', 'ro']);
  assert.deepEqual(spec.mounts.find((m) => m.destination === '/run')!.options, ['noexec', 'nosuid', 'nodev', 'rprivate', 'size=1m']);
  invalid(() => buildOciSpec(input({ hostConfig: { Binds: ['/a:/data', '/b:/data'] } })), 'Duplicate mount point: /data');
  // A user mount replaces the default one.
  const shm = buildOciSpec(input({ hostConfig: { Binds: ['/tmp:/dev/shm'] } }));
  assert.equal(shm.mounts.filter((m) => m.destination === '/dev/shm').length, 1);
  assert.equal(shm.mounts.find((m) => m.destination === '/dev/shm')!.type, 'bind');
});

test('bind sources and working dir are created when preparing host paths', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'h3a-spec-'));
  try {
    const rootfs = path.join(tmp, 'rootfs');
    fs.mkdirSync(path.join(rootfs, 'etc'), { recursive: true });
    fs.symlinkSync('/../../..', path.join(rootfs, 'escape'));
    buildOciSpec(input({ rootfsPath: rootfs, prepareHostPaths: true, cwd: '/escape/work', hostConfig: { Binds: [`${tmp}/new/dir:/data`] } }));
    assert.ok(fs.statSync(path.join(tmp, 'new/dir')).isDirectory());
    assert.ok(fs.statSync(path.join(rootfs, 'work')).isDirectory(), 'symlinks resolve inside the rootfs');
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('devices and security options', () => {
  const spec = buildOciSpec(input({ hostConfig: { Devices: [{ PathOnHost: '/dev/null', PathInContainer: '/dev/mynull', CgroupPermissions: 'rw' }], DeviceCgroupRules: ['c 42:* rmw'] } }));
  assert.deepEqual(spec.linux.devices.map((d) => [d.path, d.type, d.major, d.minor]), [['/dev/mynull', 'c', 1, 3]]);
  assert.deepEqual(spec.linux.resources.devices!.slice(-2), [{ allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }, { allow: true, type: 'c', major: 42, access: 'rmw' }]);
  invalid(() => buildOciSpec(input({ hostConfig: { Devices: [{ PathOnHost: '/dev/nope' }] } })), 'error gathering device information while adding custom device "/dev/nope": no such file or directory');
  assert.equal(devMajor(fs.statSync('/dev/null').rdev), 1);
  assert.equal(devMinor(fs.statSync('/dev/null').rdev), 3);
  assert.deepEqual(parseSecurityOpts(['no-new-privileges']), { noNewPrivileges: true, unconfinedSystemPaths: false, unconfinedSeccomp: false });
  assert.deepEqual(parseSecurityOpts(['no-new-privileges:false', 'systempaths=unconfined', 'seccomp=unconfined', 'label=disable']), { noNewPrivileges: false, unconfinedSystemPaths: true, unconfinedSeccomp: true });
  assert.equal(parseSecurityOpts(['seccomp=builtin']).unconfinedSeccomp, false);
  invalid(() => parseSecurityOpts(['bogus']), 'invalid --security-opt 1: "bogus"');
  invalid(() => parseSecurityOpts(['seccomp={"defaultAction":"SCMP_ACT_ALLOW"}']), /custom seccomp profiles are not supported/);
  assert.equal(buildOciSpec(input({ hostConfig: { SecurityOpt: ['no-new-privileges=true'] } })).process.noNewPrivileges, true);
});

test('command resolution and image config merge', () => {
  assert.deepEqual(resolveArgs({ Entrypoint: ['/entry'], Cmd: ['a', 'b'] }), ['/entry', 'a', 'b']);
  assert.deepEqual(resolveArgs({ Entrypoint: [''], Cmd: ['sh'] }), ['sh']);
  invalid(() => resolveArgs({ Entrypoint: null, Cmd: [] }), 'No command specified');
  const image = { Env: ['PATH=/img', 'A=1'], Cmd: ['img-cmd'], Entrypoint: ['/img-entry'], WorkingDir: '/w', User: 'nobody' };
  const m1 = mergeImageConfig({ Env: ['A=2', 'B=3'] }, image);
  assert.deepEqual(m1.Env, ['PATH=/img', 'A=2', 'B=3']);
  assert.deepEqual([m1.Entrypoint, m1.Cmd, m1.WorkingDir, m1.User], [['/img-entry'], ['img-cmd'], '/w', 'nobody']);
  const m2 = mergeImageConfig({ Cmd: ['ls'] }, image);
  assert.deepEqual([m2.Entrypoint, m2.Cmd], [['/img-entry'], ['ls']]);
  const m3 = mergeImageConfig({ Entrypoint: ['/mine'] }, image);
  assert.deepEqual([m3.Entrypoint, m3.Cmd], [['/mine'], undefined]);
});

test('default seccomp filter: deny-list by capability, clone of a user namespace, clone3 falls back', () => {
  const dflt = defaultSeccompProfile(DEFAULT_CAPABILITIES, 'x64');
  assert.equal(dflt.defaultAction, 'SCMP_ACT_ALLOW');
  assert.deepEqual(dflt.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  const denied = dflt.syscalls[0]!.names;
  for (const name of ['mount', 'unshare', 'setns', 'keyctl', 'bpf', 'init_module', 'reboot', 'clock_settime', 'io_uring_setup', 'userfaultfd']) {
    assert.ok(denied.includes(name), name);
  }
  for (const name of ['chroot', 'read', 'clone', 'ptrace']) assert.ok(!denied.includes(name), `${name} stays allowed`);
  assert.deepEqual(dflt.syscalls[1], { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
  assert.deepEqual(dflt.syscalls[2], { names: ['clone'], action: 'SCMP_ACT_ERRNO', errnoRet: 1, args: [{ index: 0, value: 0x10000000, valueTwo: 0x10000000, op: 'SCMP_CMP_MASKED_EQ' }] });
  assert.equal(dflt.syscalls.length, 3);

  const admin = defaultSeccompProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN', 'CAP_SYS_TIME'], 'x64');
  assert.ok(!admin.syscalls[0]!.names.includes('mount') && !admin.syscalls[0]!.names.includes('clock_settime'));
  assert.ok(admin.syscalls[0]!.names.includes('keyctl'), 'never allowed');
  assert.equal(admin.syscalls.length, 1, 'namespaces allowed with CAP_SYS_ADMIN');

  assert.ok(buildOciSpec(input()).linux.seccomp, 'every container gets it');
  assert.equal(buildOciSpec(input({ hostConfig: { Privileged: true } })).linux.seccomp, undefined);
  assert.equal(buildOciSpec(input({ hostConfig: { SecurityOpt: ['seccomp=unconfined'] } })).linux.seccomp, undefined);
});
