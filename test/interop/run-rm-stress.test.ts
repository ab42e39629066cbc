/**
 * Short-lived containers under parallel load (issue 11, item 8): 500 × `run --rm`,
 * half through `berth` and half through the docker CLI, 8 at a time. Every run is a
 * success with its own output and exit code (a process that exits before start
 * returns once was "container process is already dead", exit 125), and afterwards
 * nothing is left: no container, record, mount, bundle, runc state, exit file,
 * conmon or cgroup.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { busyboxDaemonForFile, cgroupParentOf, defaultDockerCli, waitFor } from '../helpers/daemon';

const d = busyboxDaemonForFile();

const RUNS = 500;
const PARALLEL = 8;

/** What of the daemon's containers is still on the host (empty when all is clean). */
function leftovers(): string[] {
  const found: string[] = [];
  const entries = (dir: string) => { try { return fs.readdirSync(dir); } catch { return []; } };
  for (const [what, dir] of [
    ['container record', path.join(d.dataRoot, 'containers')],
    ['bundle', path.join(d.execRoot, 'b')],
    ['runc state', path.join(d.execRoot, 'runc')],
    ['exit file', path.join(d.execRoot, 'exits')],
  ]) for (const e of entries(dir)) found.push(`${what} ${e}`);
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mp = line.split(' ')[4];
    if (mp?.startsWith(`${d.base}/`)) found.push(`mount ${mp}`);
  }
  for (const pid of entries('/proc').filter((p) => /^\d+$/.test(p))) {
    let cmd = '';
    try { cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'); } catch { continue; }
    if (cmd.startsWith('/usr/bin/conmon') && cmd.includes(d.base)) found.push(`conmon ${pid}`);
  }
  const parent = cgroupParentOf(d.base);
  for (const ctl of entries('/sys/fs/cgroup')) {
    for (const child of entries(path.join('/sys/fs/cgroup', ctl, parent))) {
      if (fs.statSync(path.join('/sys/fs/cgroup', ctl, parent, child)).isDirectory()) found.push(`cgroup ${ctl}${parent}/${child}`);
    }
  }
  return found;
}

test(`${RUNS} × run --rm, ${PARALLEL} in parallel, berth and docker CLIs: 0 failures, 0 leftovers`, { timeout: 600_000 }, async () => {
  const docker = defaultDockerCli();
  const failures: string[] = [];
  let next = 0;
  const worker = async () => {
    for (let n = next++; n < RUNS; n = next++) {
      const args = ['run', '--rm', 'busybox', 'sh', '-c', `echo ${n}; exit ${n % 4}`];
      const r = n % 2 === 0 ? await d.cli(args) : await d.docker(args, { bin: docker });
      if (r.stdout !== `${n}\n` || r.code !== n % 4 || r.stderr !== '') {
        failures.push(`${n % 2 === 0 ? 'berth' : 'docker'} run #${n}: exit ${r.code}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  // The daemon's last log lines say what its side saw (a session that ended early, a start that failed).
  assert.deepEqual(failures, [], `${failures.length} of ${RUNS} runs failed; berthd's last log lines:\n${d.log().split('\n').slice(-40).join('\n')}`);

  const list = await d.api('GET', '/containers/json?all=1');
  assert.deepEqual(list.body, []);
  // `--rm` answers once the record is gone; unmount, runc delete and conmon's exit follow
  // in the background (by design), so the host is checked once that work has drained.
  const left = await waitFor('the host cleanup of the removed containers', () => leftovers().length === 0, 60_000)
    .then(() => [], () => leftovers());
  assert.deepEqual(left, []);
});
