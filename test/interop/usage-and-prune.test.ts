/**
 * What the engine uses and how to reclaim it: `system df`, `stats`, `container prune`,
 * `system prune`, driven by `berth` and by the real docker CLI against one berthd.
 * Where both CLIs print the same thing, their outputs are compared byte for byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { busyboxDaemonForFile, dockerClis, ok, BERTH_BIN, type RunResult } from '../helpers/daemon';

const d = busyboxDaemonForFile();
const berth = (...args: string[]) => d.cli(args);
const docker = (...args: string[]) => d.docker(args);

/** Berth follows the current docker CLI (28.x; older ones lack `--format json` and round df -v sizes differently). */
const newestCli = dockerClis()
  .map((bin) => ({ bin, major: Number(/version (\d+)/.exec(spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? 0) }))
  .sort((a, b) => b.major - a.major)[0];
const modernCli = newestCli && newestCli.major >= 23 ? newestCli.bin : undefined;
const needsModernCli = modernCli ? {} : { skip: 'needs a docker CLI >= 23 to compare with' };

/**
 * Runs the same command with both CLIs until their outputs agree (at most 5 tries): columns such
 * as "3 seconds ago" may tick over between the two runs, everything else must match exactly.
 */
async function sameOutput(args: string[]): Promise<string> {
  let last: [RunResult, RunResult] | undefined;
  for (let i = 0; i < 5; i++) {
    const b = ok(await berth(...args), `berth ${args.join(' ')}`);
    const k = ok(await d.docker(args, { bin: modernCli }), `docker ${args.join(' ')}`);
    if (b.stdout === k.stdout) return b.stdout;
    last = [b, k];
  }
  assert.equal(last![0].stdout, last![1].stdout, `berth and docker differ for: ${args.join(' ')}`);
  return '';
}

const ids = async (...args: string[]) => ok(await berth('ps', '-aq', '--no-trunc', ...args)).stdout.split('\n').filter(Boolean);

test('system df: totals, active counts and reclaimable space, as docker prints them', needsModernCli, async () => {
  const running = ok(await berth('run', '-d', 'busybox', 'sleep', '300')).stdout.trim();
  // a stopped container that wrote 100 kB: its whole writable layer is reclaimable
  ok(await berth('run', '--name', 'writer', 'busybox', 'dd', 'if=/dev/zero', 'of=/blob', 'bs=1000', 'count=100'));
  try {
    const rows = ok(await berth('system', 'df', '--format', '{{json .}}')).stdout.trim().split('\n').map((l) => JSON.parse(l));
    const byType = Object.fromEntries(rows.map((r) => [r.Type, r]));
    assert.deepEqual(Object.keys(byType), ['Images', 'Containers', 'Local Volumes', 'Build Cache']);
    assert.equal(byType.Images.TotalCount, '1');
    assert.equal(byType.Images.Active, '1');
    assert.equal(byType.Containers.TotalCount, '2');
    assert.equal(byType.Containers.Active, '1');
    assert.equal(byType.Containers.Size, '100kB');
    assert.equal(byType.Containers.Reclaimable, '100kB (100%)');
    assert.deepEqual([byType['Local Volumes'].TotalCount, byType['Build Cache'].TotalCount], ['0', '0']);

    const table = await sameOutput(['system', 'df']);
    assert.match(table, /^TYPE {12}TOTAL {5}ACTIVE {4}SIZE {6}RECLAIMABLE\n/);
    const verbose = await sameOutput(['system', 'df', '-v']);
    assert.match(verbose, /Images space usage:\n\nREPOSITORY +TAG +IMAGE ID +CREATED +SIZE +SHARED SIZE +UNIQUE SIZE +CONTAINERS\nbusybox +latest /);
    assert.match(verbose, /writer\n/);
    await sameOutput(['system', 'df', '--format', 'json']);
    await sameOutput(['system', 'df', '--format', 'table {{.Type}}\t{{.Reclaimable}}']);
  } finally {
    ok(await berth('rm', '-f', running, 'writer'));
  }
});

test('stats --no-stream: CPU of a busy container, memory limit, pids; same table shape as docker', needsModernCli, async () => {
  // bounded busy loop: ~10 s of CPU at most, removed at the end anyway
  const busy = ok(await berth('run', '-d', '--name', 'busy', '-m', '64m', 'busybox', 'sh', '-c', 'i=0; while [ $i -lt 20000000 ]; do i=$((i+1)); done')).stdout.trim();
  const idle = ok(await berth('run', '-d', '--name', 'idle', '--pids-limit', '50', 'busybox', 'sh', '-c', 'sleep 300 & sleep 300 & wait')).stdout.trim();
  try {
    const r = ok(await berth('stats', '--no-stream', '--format', '{{json .}}', 'busy', 'idle'));
    const [b, i] = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(Object.keys(b), ['BlockIO', 'CPUPerc', 'Container', 'ID', 'MemPerc', 'MemUsage', 'Name', 'NetIO', 'PIDs']);
    assert.equal(b.Container, 'busy');
    assert.equal(b.ID, busy.slice(0, 12));
    assert.equal(b.Name, 'busy');
    // thresholds far from both ends: the host may be loaded (two cores shared with other work)
    assert.ok(Number.parseFloat(b.CPUPerc) > 2, `a busy loop uses CPU: ${b.CPUPerc}`);
    assert.match(b.MemUsage, /^\d+(\.\d+)?[KM]iB \/ 64MiB$/);
    assert.equal(i.PIDs, '3');
    assert.ok(Number.parseFloat(i.CPUPerc) < 2, i.CPUPerc);
    // the default bridge: eth0's counters (the kernel's own IPv6 solicitations count too)
    assert.match(i.NetIO, /^\d+(\.\d+)?[kMG]?B \/ \d+(\.\d+)?[kMG]?B$/, i.NetIO);

    const table = ok(await berth('stats', '--no-stream')).stdout.split('\n');
    assert.match(table[0], /^CONTAINER ID {3}NAME {6}CPU % {5}MEM USAGE \/ LIMIT +MEM % {5}NET I\/O +BLOCK I\/O {3}PIDS$/, table.join('\n'));
    assert.equal(table.filter((l) => l.startsWith(busy.slice(0, 12)) || l.startsWith(idle.slice(0, 12))).length, 2);
    const full = ok(await berth('stats', '--no-stream', '--no-trunc', '--format', '{{.ID}} {{.Name}} {{.PIDs}}', 'idle')).stdout;
    assert.equal(full, `${idle} idle 3\n`);
    // the columns that do not move between two samples agree with docker's (NET I/O does on a bridge)
    await sameOutput(['stats', '--no-stream', '--format', 'table {{.Container}}\t{{.ID}}\t{{.Name}}\t{{.PIDs}}', 'idle']);

    const missing = await berth('stats', '--no-stream', 'no-such-ctr');
    assert.equal(missing.code, 1);
    assert.equal(missing.stderr, 'Error response from daemon: No such container: no-such-ctr\n');
  } finally {
    ok(await berth('rm', '-f', busy, idle));
  }
});

test('stats (streaming): redraws in place and picks up a container that starts meanwhile', async () => {
  const first = ok(await berth('run', '-d', '--name', 'first', 'busybox', 'sleep', '300')).stdout.trim();
  let second = '';
  const child = spawn(process.execPath, [BERTH_BIN, 'stats'], { env: { ...process.env, ...d.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 20_000); // bound, whatever happens
  try {
    const until = async (what: string, fn: () => boolean): Promise<void> => {
      for (let i = 0; i < 100 && !fn(); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(fn(), `${what}; output so far:\n${out}`);
    };
    await until('the first frame names the running container', () => out.includes('first'));
    assert.ok(out.startsWith('\x1b[2J\x1b[H'), 'clears the screen, then draws from the top');
    second = ok(await berth('run', '-d', '--name', 'second', 'busybox', 'sleep', '300')).stdout.trim();
    await until('a container started later shows up', () => out.slice(out.lastIndexOf('\x1b[H')).includes('second'));
    assert.match(out, /\x1b\[K\n/);
  } finally {
    clearTimeout(killer);
    child.kill('SIGTERM');
    ok(await berth('rm', '-f', first, ...(second ? [second] : [])));
  }
});

test('container prune: stopped containers go, running ones and filtered-out ones stay; the prompt guards it', async () => {
  const up = ok(await berth('run', '-d', 'busybox', 'sleep', '300')).stdout.trim();
  const done = ok(await berth('create', 'busybox', 'true')).stdout.trim();
  const kept = ok(await berth('create', '--label', 'keep=1', 'busybox', 'true')).stdout.trim();
  try {
    const no = await d.cli(['container', 'prune'], { input: 'n\n' });
    assert.equal(no.code, 0);
    assert.equal(no.stdout, 'WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ');
    assert.equal((await ids()).length, 3, 'answering no removes nothing');

    const yes = ok(await d.cli(['container', 'prune', '--filter', 'label!=keep'], { input: 'y\n' }));
    assert.equal(yes.stdout, `WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] Deleted Containers:\n${done}\n\nTotal reclaimed space: 0B\n`);
    assert.deepEqual((await ids()).sort(), [up, kept].sort());

    const bad = await berth('container', 'prune', '-f', '--filter', 'colour=red');
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr, "Error response from daemon: invalid filter 'colour'\n");
  } finally {
    ok(await berth('rm', '-f', up, kept));
  }
});

test('system prune: stopped containers and dangling images; -a also unused tagged images; docker system prune works too', async () => {
  const up = ok(await berth('run', '-d', '--name', 'up', 'busybox', 'sleep', '300')).stdout.trim();
  try {
    // a dangling image (commit without a tag), a tagged unused one, and a stopped container
    ok(await berth('run', '--name', 'scratchpad', 'busybox', 'sh', '-c', 'echo data > /data'));
    const dangling = ok(await berth('commit', 'scratchpad')).stdout.trim();
    ok(await berth('commit', 'scratchpad', 'spare:1'));
    const stopped = (await ids('--filter', 'status=exited'));
    assert.equal(stopped.length, 1);

    const warn = await d.cli(['system', 'prune', '--filter', 'until=1h'], { input: 'n\n' });
    assert.equal(warn.code, 0);
    assert.equal(warn.stdout, [
      'WARNING! This will remove:',
      '  - all stopped containers',
      '  - all networks not used by at least one container',
      '  - all dangling images',
      '  - unused build cache',
      '',
      '  Items to be pruned will be filtered with:',
      '  - until=1h',
      '',
      'Are you sure you want to continue? [y/N] ',
    ].join('\n'));

    const r = ok(await berth('system', 'prune', '-f'));
    assert.match(r.stdout, new RegExp(`^Deleted Containers:\\n${stopped[0]}\\n\\nDeleted Images:\\n(deleted: sha256:[0-9a-f]{64}\\n)+\\nTotal reclaimed space: \\d+(\\.\\d+)?k?B\\n$`));
    assert.ok(r.stdout.includes(`deleted: ${dangling}\n`), r.stdout);
    const tags = () => berth('images', '--format', '{{.Repository}}:{{.Tag}}').then((x) => ok(x).stdout.split('\n').filter(Boolean).sort());
    assert.deepEqual(await tags(), ['busybox:latest', 'spare:1']);
    assert.deepEqual(await ids(), [up], 'the running container stays');

    const all = ok(await berth('system', 'prune', '-a', '-f', '--volumes'));
    assert.match(all.stdout, /^Deleted Images:\nuntagged: spare:1\ndeleted: sha256:/);
    assert.deepEqual(await tags(), ['busybox:latest'], 'busybox is used by a running container');

    // the real docker CLIs also call the network, volume and build-cache prunes
    for (const bin of dockerClis()) {
      const made = ok(await berth('create', 'busybox', 'true')).stdout.trim();
      const k = ok(await d.docker(['system', 'prune', '-f', '--volumes'], { bin }), bin);
      assert.equal(k.stdout, `Deleted Containers:\n${made}\n\nTotal reclaimed space: 0B\n`, bin);
      assert.deepEqual(await ids(), [up]);
    }
  } finally {
    ok(await berth('rm', '-f', up));
  }
});

test('--format json is one JSON object per line as docker writes it; inspect --format json is one line', needsModernCli, async () => {
  const c = ok(await berth('create', '--name', 'fmt', '--label', 'tag=<b>&', 'busybox', 'true')).stdout.trim();
  try {
    const ps = await sameOutput(['ps', '-a', '--format', 'json']);
    assert.match(ps, /"Labels":"tag=\\u003cb\\u003e\\u0026"/, 'HTML characters escaped as Go does');
    await sameOutput(['images', '--format', 'json']);
    await sameOutput(['images', '--format', '{{json .}}']);
    const one = await sameOutput(['inspect', '--format', 'json', c, 'busybox']);
    assert.equal(one.split('\n').length, 2);
    assert.equal(JSON.parse(one).length, 2);
  } finally {
    ok(await berth('rm', c));
  }
});

test('group help lists each command with its description', async () => {
  const sys = ok(await berth('system', '--help')).stdout;
  assert.match(sys, /\n {2}df {10}Show Berth disk usage\n {2}events {6}Get real time events from the server\n {2}info {8}Display system-wide information\n {2}prune {7}Remove unused data\n/);
  const ctr = ok(await berth('container', '--help')).stdout;
  assert.match(ctr, /\n {2}prune {7}Remove all stopped containers\n/);
  assert.match(ctr, /\n {2}stats {7}Display a live stream of container\(s\) resource usage statistics\n/);
  assert.doesNotMatch(ctr, /\n {2}(list|remove) /);
});
