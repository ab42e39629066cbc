/**
 * The real docker CLIs (Debian's 20.10 at /usr/bin/docker and 28.x at
 * /usr/local/bin/docker) against a real berthd with its own temp roots.
 * `version`, `info` and `ps` need no image; the container round trip
 * bootstraps busybox from the host's busybox-static (no registry).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as os from 'node:os';
import { startDaemon, bootstrapBusybox, dockerClis, ok, waitFor, type Daemon } from '../helpers/daemon';

const clis = dockerClis();
const skip = clis.length === 0 ? 'no docker CLI binary found (apt-get install docker.io)' : false;

let d: Daemon;
before(async () => {
  if (skip) return;
  d = await startDaemon();
});
after(async () => {
  await d?.stop();
});

for (const bin of clis.length ? clis : ['docker']) {
  const docker = (args: string[], opts: { input?: string; timeoutMs?: number } = {}) => d.docker(args, { ...opts, bin });

  test(`${bin} version shows Berth's server block`, { skip }, async () => {
    const r = ok(await docker(['version']), 'docker version');
    assert.match(r.stdout, /Server:/);
    assert.match(r.stdout, /Engine:\n\s+Version:\s+0\.1\.0/);
    assert.match(r.stdout, /API version:\s+1\.4\d \(minimum version 1\.24\)/);
    assert.match(r.stdout, /Go version:\s+node\d+/);
    assert.match(r.stdout, /OS\/Arch:\s+linux\//);
    assert.ok(r.stdout.includes(os.release()) || true); // kernel is not printed by every CLI
    const f = ok(await docker(['version', '--format', '{{.Server.Version}} {{.Server.APIVersion}} {{.Server.KernelVersion}}']));
    assert.equal(f.stdout.trim(), `0.1.0 1.47 ${os.release()}`);
  });

  test(`${bin} info prints the server section without template errors`, { skip }, async () => {
    const r = ok(await docker(['info']), 'docker info');
    assert.doesNotMatch(r.stdout + r.stderr, /template|panic|error/i);
    assert.match(r.stdout, /Containers: \d+/);
    assert.match(r.stdout, /Storage Driver: overlay2/);
    assert.match(r.stdout, /Cgroup Driver: cgroupfs/);
    assert.match(r.stdout, /Default Runtime: runc/);
    assert.match(r.stdout, new RegExp(`Docker Root Dir: ${d.dataRoot.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(r.stdout, new RegExp(`CPUs: ${os.cpus().length}`));
    assert.match(r.stdout, new RegExp(`Name: ${os.hostname()}`));
    const f = ok(await docker(['info', '--format', '{{.OSType}} {{.Architecture}} {{.Swarm.LocalNodeState}}']));
    assert.equal(f.stdout.trim(), `linux ${os.machine()} inactive`);
  });

  test(`${bin} ps -a lists containers (empty daemon: header only)`, { skip }, async () => {
    const r = ok(await docker(['ps', '-a']), 'docker ps -a');
    assert.match(r.stdout, /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES\n/);
    const bad = await docker(['ps', '--filter', 'bogus=1']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /invalid filter 'bogus'/);
  });
}

/** One CLI (the newer if present) through a whole container lifecycle. */
const lifecycleBin = clis.at(-1) ?? 'docker';
test(`${lifecycleBin}: run, logs, exec, inspect, top, pause, rename, stop, wait, kill, rm`, { skip, timeout: 240_000 }, async () => {
  const docker = (args: string[], opts: { input?: string; timeoutMs?: number } = {}) => d.docker(args, { ...opts, bin: lifecycleBin });
  await bootstrapBusybox(d);

  const hi = ok(await docker(['run', '--rm', 'busybox', 'echo', 'hi']), 'run --rm');
  assert.equal(hi.stdout, 'hi\n');
  const code = await docker(['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
  assert.equal(code.code, 3);
  assert.equal(code.stdout, 'out\n');
  assert.equal(code.stderr, 'err\n');
  const piped = ok(await docker(['run', '-i', '--rm', 'busybox', 'sh', '-c', 'cat; echo done >&2'], { input: 'line1\nline2\n' }));
  assert.equal(piped.stdout, 'line1\nline2\n');
  assert.equal(piped.stderr, 'done\n');

  const id = ok(await docker(['run', '-d', '--name', 'web', 'busybox', 'sh', '-c', 'echo started; exec sleep 300'])).stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  await waitFor('log line', async () => (await docker(['logs', 'web'])).stdout === 'started\n');

  const ex = ok(await docker(['exec', 'web', 'sh', '-c', 'echo in-exec; exit 0']));
  assert.equal(ex.stdout, 'in-exec\n');
  const exCode = await docker(['exec', 'web', 'sh', '-c', 'exit 7']);
  assert.equal(exCode.code, 7);
  const exIn = ok(await docker(['exec', '-i', 'web', 'cat'], { input: 'a\nb\n' }));
  assert.equal(exIn.stdout, 'a\nb\n');

  const state = ok(await docker(['inspect', '--format', '{{.State.Status}} {{.Name}} {{.Config.Tty}}', 'web']));
  assert.equal(state.stdout.trim(), 'running /web false');
  const top = ok(await docker(['top', 'web']));
  assert.match(top.stdout, /PID/);
  assert.match(top.stdout, /sleep 300/);

  const stats = ok(await docker(['stats', '--no-stream', '--format', '{{.Name}} {{.PIDs}} {{.MemUsage}}', 'web']));
  assert.match(stats.stdout, /^web 1 \d+(\.\d+)?[KMG]iB \/ /);

  ok(await docker(['pause', 'web']));
  assert.equal(ok(await docker(['inspect', '--format', '{{.State.Status}}', 'web'])).stdout.trim(), 'paused');
  ok(await docker(['unpause', 'web']));
  ok(await docker(['rename', 'web', 'web2']));
  assert.match(ok(await docker(['ps', '--format', '{{.Names}} {{.Status}}'])).stdout, /^web2 Up /m);

  const again = ok(await docker(['start', 'web2'])); // already running: 304, still success
  assert.equal(again.stdout.trim(), 'web2');

  ok(await docker(['stop', '-t', '1', 'web2']));
  assert.equal(ok(await docker(['wait', 'web2'])).stdout.trim(), '137');
  const stoppedAgain = ok(await docker(['stop', 'web2'])); // 304
  assert.equal(stoppedAgain.stdout.trim(), 'web2');
  const killStopped = await docker(['kill', 'web2']);
  assert.equal(killStopped.code, 1);
  assert.match(killStopped.stderr, /Cannot kill container: web2: Container [0-9a-f]{64} is not running/);

  ok(await docker(['start', 'web2']));
  ok(await docker(['kill', 'web2']));
  assert.equal(ok(await docker(['wait', 'web2'])).stdout.trim(), '137');
  ok(await docker(['rm', '-f', 'web2']));
  const gone = await docker(['inspect', 'web2']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /No such object: web2/);

  const noImage = await docker(['run', '--rm', '--pull', 'never', 'nope-img:latest']);
  assert.equal(noImage.code, 125);
  assert.match(noImage.stderr, /No such image: nope-img:latest/);
});
