/**
 * The container lifecycle (src/container/service.ts) against a fake runtime:
 * create, start, stop with escalation, kill, pause, restart policies, --rm,
 * update, start failures and restore after a daemon restart. No runc, conmon or
 * mounts: test/helpers/fake-runtime.ts stands in for them.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Containers } from '../../src/container/service';
import { defaultConfig, type DaemonConfig } from '../../src/engine/config';
import { EventBus } from '../../src/engine/events';
import type { ImageRecord, ImageService, MountSpec, NetworkService, VolumeService } from '../../src/engine/types';
import { FakeMounts, FakeRuntime } from '../helpers/fake-runtime';

const IMAGE: ImageRecord = {
  id: 'sha256:' + 'ab'.repeat(32),
  repoTags: ['busybox:latest'],
  repoDigests: [],
  config: { architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'], Env: ['PATH=/bin'] }, rootfs: { type: 'layers', diff_ids: [] } },
  size: 0,
  parent: '',
  created: '2026-01-01T00:00:00Z',
};

/** The image area as far as the lifecycle uses it: one image, container snapshots as plain directories. */
function fakeImages(root: string): ImageService {
  const upper = (id: string) => path.join(root, 'snap', id);
  const mount = (id: string): MountSpec => ({ type: 'overlay', source: 'overlay', options: [`lowerdir=${root}/lower`, `upperdir=${upper(id)}`, `workdir=${root}/work`] });
  const unused = () => { throw new Error('not used by the lifecycle'); };
  return {
    resolve: async (ref) => {
      if (ref === 'busybox' || ref === IMAGE.id) return IMAGE;
      throw Object.assign(new Error(`No such image: ${ref}`), { kind: 'not-found' });
    },
    list: async () => [IMAGE],
    prepareContainerRootfs: async (id) => {
      fs.mkdirSync(upper(id), { recursive: true });
      return { mount: mount(id), persisted: Promise.resolve() };
    },
    containerRootfsMount: async (id) => mount(id),
    containerUpperDir: upper,
    removeContainerRootfs: async (id, after) => { await after; fs.rmSync(upper(id), { recursive: true, force: true }); },
    setUsageProbe: () => undefined,
    createImageFromLayers: unused, tag: unused, untag: unused, remove: unused, prune: unused, inspect: unused, history: unused,
    summaries: unused, configBytes: unused, openLayerTar: unused, layerTarSize: unused, save: unused, load: unused, diskUsage: unused,
    addRepoDigest: unused, hasLayers: unused,
  };
}

function noVolumes(): VolumeService {
  const unused = () => { throw new Error('no volumes in these tests'); };
  return {
    setUsageProbe: () => undefined, mountpoint: unused, create: unused, createAnonymous: unused, isAnonymous: () => false,
    has: () => false, inspect: unused, list: () => [], usage: async () => [], remove: unused, prune: unused,
  };
}

/** Containers without networking (NetworkMode none): the network area is not what these tests are about. */
function noNetwork(): NetworkService {
  const unused = () => { throw new Error('no networks in these tests'); };
  return {
    list: async () => [], inspect: unused, create: unused, remove: unused, prune: async () => ({ NetworksDeleted: null }),
    prepare: () => ({ mode: 'none', networks: { none: {} } }), staticEndpointFor: unused,
    attach: async () => ({ settings: { Networks: {} }, etc: {} }), detach: async () => undefined,
    connect: unused, disconnect: unused, emitMembership: () => undefined, resolve: unused,
    restore: async () => undefined, shutdown: async () => undefined,
  };
}

interface Harness { svc: Containers; runtime: FakeRuntime; mounts: FakeMounts; events: string[]; bus: EventBus; config: DaemonConfig; images: ImageService; dir: string }

async function harness(dir = fs.mkdtempSync(path.join(os.tmpdir(), 'berth-lc-')), runtime = new FakeRuntime()): Promise<Harness> {
  const config: DaemonConfig = { ...defaultConfig(), dataRoot: path.join(dir, 'data'), execRoot: path.join(dir, 'exec'), cgroupParent: '/berth-unit' };
  const bus = new EventBus();
  const events: string[] = [];
  bus.on('event', (e: { Action: string }) => events.push(e.Action));
  const mounts = new FakeMounts();
  const images = fakeImages(dir);
  const svc = new Containers(config, images, bus, noVolumes(), { runtime, mounts, network: noNetwork() });
  await svc.init();
  return { svc, runtime, mounts, events, bus, config, images, dir };
}

/**
 * The lifecycle's timers (stop timeouts, restart back-off) are unref'd: in berthd the
 * server keeps the process alive. Here nothing else would, so a test holds it open.
 */
function keepAlive(): () => void {
  const t = setInterval(() => undefined, 60_000);
  return () => clearInterval(t);
}

async function withHarness(fn: (h: Harness) => Promise<void>): Promise<void> {
  const release = keepAlive();
  const h = await harness();
  try {
    await fn(h);
  } finally {
    release();
    await h.svc.shutdown();
    fs.rmSync(h.dir, { recursive: true, force: true });
  }
}

const never = new AbortController().signal;

test('create makes the runtime ahead of start; start runs it; an exit is recorded with its code', async () => {
  await withHarness(async ({ svc, runtime, mounts, events }) => {
    const { Id } = await svc.create('web', { Image: 'busybox', Cmd: ['sleep', '9'] });
    assert.deepEqual(runtime.calls, [`create ${Id}`], 'pre-created right after create');
    const created = await svc.inspect('web');
    assert.equal(created.State.Status, 'created');
    assert.equal(created.Path, 'sleep');

    await svc.start('web');
    const running = await svc.inspect(Id);
    assert.equal(running.State.Status, 'running');
    assert.equal(running.State.Pid, runtime.tasks.get(Id)!.pid);
    assert.ok(mounts.mounted.has(svc.rootfsDir(Id)), 'rootfs mounted for the running container');
    assert.deepEqual(runtime.calls, [`create ${Id}`, `start ${Id}`], 'start used the pre-created task');

    const waited = svc.wait(Id, 'not-running', never);
    runtime.exit(Id, 3);
    assert.deepEqual(await waited, { StatusCode: 3, Error: null });
    const exited = await svc.inspect(Id);
    assert.equal(exited.State.Status, 'exited');
    assert.equal(exited.State.ExitCode, 3);
    await svc.wait(Id, 'not-running', never); // cleanup (runtime delete, unmount) is awaited by anything that needs it
    await svc.withRootfs(Id, async () => undefined);
    assert.ok(!mounts.mounted.has(svc.rootfsDir(Id)), 'unmounted after the exit');
    assert.ok(runtime.calls.includes(`delete ${Id} force`), 'runtime state deleted after the exit');
    assert.deepEqual(events, ['create', 'start', 'die']);
  });
});

test('stop sends the stop signal, then SIGKILL when the timeout passes', async () => {
  await withHarness(async ({ svc, runtime, events }) => {
    const { Id } = await svc.create(undefined, { Image: 'busybox', StopSignal: 'SIGUSR1' });
    await svc.start(Id);
    runtime.ignored.add(10);
    await svc.stop(Id, { timeout: 0 });
    const st = (await svc.inspect(Id)).State;
    assert.equal(st.Running, false);
    assert.equal(st.ExitCode, 137);
    assert.ok(runtime.calls.includes(`kill ${Id} 10`) && runtime.calls.includes(`kill ${Id} 9 all`));
    assert.deepEqual(events.filter((e) => e !== 'create' && e !== 'start'), ['kill', 'kill', 'die', 'stop']);
    await assert.rejects(svc.stop(Id, {}), /container already stopped/);
  });
});

test('kill, pause and unpause go to the runtime; a paused container is thawed to act on a signal', async () => {
  await withHarness(async ({ svc, runtime }) => {
    const { Id } = await svc.create(undefined, { Image: 'busybox' });
    await assert.rejects(svc.kill(Id), /is not running/);
    await svc.start(Id);
    await svc.pause(Id);
    assert.equal((await svc.inspect(Id)).State.Status, 'paused');
    await assert.rejects(svc.start(Id), /cannot start a paused container/);
    await svc.unpause(Id);
    await svc.pause(Id);
    await svc.kill(Id, 'TERM');
    await svc.wait(Id, 'not-running', never);
    assert.equal((await svc.inspect(Id)).State.ExitCode, 143);
    assert.ok(runtime.calls.indexOf(`kill ${Id} 15`) < runtime.calls.lastIndexOf(`resume ${Id}`), 'thawed after the signal');
  });
});

test('restart policy on-failure restarts up to its count; a manual stop ends it', async () => {
  await withHarness(async ({ svc, runtime, bus }) => {
    const { Id } = await svc.create(undefined, { Image: 'busybox', HostConfig: { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 1 } } });
    await svc.start(Id);
    const firstPid = runtime.tasks.get(Id)!.pid;
    const restarted = new Promise<void>((resolve) => {
      const onEvent = (e: { Action: string }) => { if (e.Action === 'start') { bus.off('event', onEvent); resolve(); } };
      bus.on('event', onEvent);
    });
    runtime.exit(Id, 1);
    await restarted;
    let c = await svc.inspect(Id);
    assert.equal(c.State.Status, 'running');
    assert.notEqual(c.State.Pid, firstPid, 'a new process');
    assert.equal(c.RestartCount, 1);
    const stopped = svc.wait(Id, 'next-exit', never);
    runtime.exit(Id, 1);
    await stopped;
    c = await svc.inspect(Id);
    assert.equal(c.State.Status, 'exited', 'the retry count is used up');
    assert.equal(c.RestartCount, 1);
  });
});

test('--rm removes the container once it exits and answers wait?condition=removed', async () => {
  await withHarness(async ({ svc, runtime, mounts, events, dir }) => {
    const { Id } = await svc.create(undefined, { Image: 'busybox', HostConfig: { AutoRemove: true } });
    const removed = svc.wait(Id, 'removed', never);
    await svc.start(Id);
    runtime.exit(Id, 0);
    assert.deepEqual(await removed, { StatusCode: 0, Error: null });
    await assert.rejects(svc.inspect(Id), /No such container/);
    assert.deepEqual(events, ['create', 'start', 'die', 'destroy']);
    await svc.shutdown(); // waits for the host cleanup that follows the answer
    assert.equal(mounts.mounted.size, 0);
    assert.ok(!fs.existsSync(path.join(dir, 'snap', Id)), 'writable layer removed');
    assert.ok(!runtime.tasks.has(Id));
  });
});

test('a start the runtime refuses reports Docker\'s words and exit code, and leaves nothing mounted', async () => {
  await withHarness(async ({ svc, runtime, mounts }) => {
    runtime.createFailure = 'exec: "nope": executable file not found in $PATH';
    const { Id } = await svc.create(undefined, { Image: 'busybox', Cmd: ['nope'] });
    await assert.rejects(svc.start(Id), (err: Error & { exitCode?: number }) => {
      assert.match(err.message, /^failed to create task for container: failed to create shim task: OCI runtime create failed: exec: "nope": executable file not found/);
      assert.equal(err.exitCode, 127);
      return true;
    });
    const st = (await svc.inspect(Id)).State;
    assert.equal(st.Status, 'created');
    assert.equal(st.ExitCode, 127);
    assert.equal(mounts.mounted.size, 0);
  });
});

test('update applies new limits to a running task and keeps them in the record', async () => {
  await withHarness(async ({ svc, runtime }) => {
    const { Id } = await svc.create(undefined, { Image: 'busybox' });
    await svc.start(Id);
    await svc.update(Id, { Memory: 64 << 20, RestartPolicy: { Name: 'always' } });
    const hc = (await svc.inspect(Id)).HostConfig;
    assert.equal(hc.Memory, 64 << 20);
    assert.deepEqual(hc.RestartPolicy, { Name: 'always', MaximumRetryCount: 0 });
    const limits = runtime.tasks.get(Id)!.updates[0] as { memory?: { limit?: number } };
    assert.equal(limits.memory?.limit, 64 << 20);
  });
});

test('restore after a daemon restart: a still running container is kept, one that exited meanwhile is recorded', async () => {
  const runtime = new FakeRuntime();
  const release = keepAlive();
  const first = await harness(undefined, runtime);
  try {
    const a = await first.svc.create('ka', { Image: 'busybox' });
    const b = await first.svc.create('kb', { Image: 'busybox' });
    await first.svc.start(a.Id);
    await first.svc.start(b.Id);
    await first.svc.shutdown();
    // While berthd is down, b's process ends; its monitor records the code.
    runtime.tasks.get(b.Id)!.status = 'stopped';
    runtime.exits.set(b.Id, 7);

    const second = await harness(first.dir, runtime);
    await second.svc.restore();
    assert.equal((await second.svc.inspect('ka')).State.Status, 'running');
    const sb = (await second.svc.inspect('kb')).State;
    assert.equal(sb.Status, 'exited');
    assert.equal(sb.ExitCode, 7);
    await second.svc.shutdown();
  } finally {
    release();
    fs.rmSync(first.dir, { recursive: true, force: true });
  }
});
