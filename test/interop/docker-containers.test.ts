/**
 * The real docker CLI (Debian's /usr/bin/docker and, if installed,
 * /usr/local/bin/docker) drives berthd through every container command of
 * the engine-core issue, unchanged, with DOCKER_HOST pointing at berthd.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { busyboxDaemonForFile, dockerClis, ok, parsePs, waitFor } from '../helpers/daemon';
import { startPty } from '../helpers/pty';

const d = busyboxDaemonForFile();

const clis = dockerClis();
test('a docker CLI is installed', () => {
  assert.ok(clis.length > 0, 'apt-get install docker.io');
});

for (const cli of clis) {
  const tag = path.basename(path.dirname(cli)) === 'local' ? 'new' : 'deb'; // names unique per CLI
  describe(`docker CLI ${cli}`, () => {
    const docker = (...args: string[]) => d.docker(args, { bin: cli });
    const inspect = async (name: string) => JSON.parse(ok(await docker('inspect', name)).stdout)[0];
    const web = `web-${tag}`;
    let webId = '';

    test('version and info talk to berthd', async () => {
      const v = ok(await docker('version', '--format', '{{.Server.APIVersion}}'));
      assert.match(v.stdout.trim(), /^1\.\d+$/);
      ok(await docker('info'));
    });

    test('run --rm busybox echo hello', async () => {
      const r = ok(await docker('run', '--rm', 'busybox', 'echo', 'hello'));
      assert.equal(r.stdout, 'hello\n');
      const code = await docker('run', '--rm', 'busybox', 'sh', '-c', 'echo e >&2; exit 3');
      assert.equal(code.code, 3);
      assert.equal(code.stderr, 'e\n');
      const stdin = ok(await d.docker(['run', '--rm', '-i', 'busybox', 'cat'], { bin: cli, input: 'via stdin\n' }));
      assert.equal(stdin.stdout, 'via stdin\n');
    });

    test('run -d, ps, ps -a, ps -q, ps --filter', async () => {
      webId = ok(await docker('run', '-d', '--name', web, 'busybox', 'httpd', '-f', '-p', '8080')).stdout.trim();
      assert.match(webId, /^[0-9a-f]{64}$/);
      const ps = ok(await docker('ps', '--filter', `name=${web}`));
      const lines = ps.stdout.trimEnd().split('\n');
      assert.match(lines[0], /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
      assert.match(lines[1], new RegExp(`^${webId.slice(0, 12)}\\s+busybox\\s+"httpd -f -p 8080"\\s+.*\\s+Up .*\\s+${web}$`));
      assert.ok(ok(await docker('ps', '-q')).stdout.split('\n').includes(webId.slice(0, 12)));
      const ex = ok(await docker('run', '-d', '--name', `gone-${tag}`, 'busybox', 'true')).stdout.trim();
      await waitFor('exit', async () => (await inspect(ex)).State.Status === 'exited');
      const exited = ok(await docker('ps', '-a', '--filter', 'status=exited', '--format', '{{.Names}}'));
      assert.ok(exited.stdout.split('\n').includes(`gone-${tag}`), exited.stdout);
      assert.ok(!ok(await docker('ps', '--format', '{{.Names}}')).stdout.split('\n').includes(`gone-${tag}`));
      ok(await docker('rm', `gone-${tag}`));
    });

    test('logs, logs --tail, logs -t, logs -f', async () => {
      const name = `talk-${tag}`;
      ok(await docker('run', '-d', '--name', name, 'busybox', 'sh', '-c', 'for i in 1 2 3 4 5 6; do echo l$i; done; echo err >&2'));
      await waitFor('exit', async () => (await inspect(name)).State.Status === 'exited');
      const r = ok(await docker('logs', name));
      assert.equal(r.stdout, 'l1\nl2\nl3\nl4\nl5\nl6\n');
      assert.equal(r.stderr, 'err\n');
      const tail = ok(await docker('logs', '--tail', '2', name));
      assert.equal(tail.stdout, 'l6\n');
      assert.equal(tail.stderr, 'err\n');
      assert.match(ok(await docker('logs', '-t', '--tail', '1', name)).stderr, /^\d{4}-\d\d-\d\dT[\d:.]+Z err\n$/);
      const f = ok(await docker('logs', '-f', name));
      assert.equal(f.stdout, 'l1\nl2\nl3\nl4\nl5\nl6\n');
      ok(await docker('rm', name));
    });

    test('exec, exec with -e -u -w, exec exit code', async () => {
      const rows = parsePs(ok(await docker('exec', web, 'ps')).stdout);
      assert.equal(rows[0].pid, 1);
      assert.match(rows[0].command, /^httpd/);
      const env = ok(await docker('exec', '-e', 'A=1', '-u', '1000', '-w', '/tmp', web, 'sh', '-c', 'echo $A; id -u; pwd'));
      assert.equal(env.stdout, '1\n1000\n/tmp\n');
      assert.equal((await docker('exec', web, 'sh', '-c', 'exit 5')).code, 5);
    });

    test('exec -it through a pty', async () => {
      const s = startPty(`${cli} exec -it ${web} sh`, { env: d.env, rows: 25, cols: 81, workDir: d.base });
      try {
        await s.expect(/# /);
        s.send('stty size\r');
        await s.expect(/25 81\r?\n/);
        s.send('exit 2\r');
        assert.equal(await s.exited(), 2);
      } finally {
        s.kill();
      }
    });

    test('run -it through a pty; Ctrl-D ends it', async () => {
      const s = startPty(`${cli} run -it --rm busybox sh`, { env: d.env, workDir: d.base });
      try {
        await s.expect(/# /);
        s.send('echo $((2+3))\r');
        await s.expect(/5\r?\n/);
        s.send('\x04');
        assert.equal(await s.exited(), 0);
      } finally {
        s.kill();
      }
    });

    test('attach', async () => {
      const name = `att-${tag}`;
      // The container speaks only once the session is attached (its attach event), however slow the host.
      const since = Math.floor(Date.now() / 1000) - 1;
      ok(await docker('run', '-d', '--name', name, 'busybox', 'sh', '-c', 'until [ -e /go ]; do sleep 0.05; done; echo attached-out; exit 3'));
      const attached = docker('attach', name);
      const filters = encodeURIComponent(JSON.stringify({ container: [name], event: ['attach'] }));
      await waitFor('the attach event', async () => {
        const ev = await d.api('GET', `/events?since=${since}&until=${Math.ceil(Date.now() / 1000)}&filters=${filters}`);
        return String(ev.raw).includes('"attach"') || undefined;
      }, 60_000);
      ok(await docker('exec', name, 'touch', '/go'));
      const r = await attached;
      assert.equal(r.stdout, 'attached-out\n');
      assert.equal(r.code, 3);
      ok(await docker('rm', name));
    });

    test('top', async () => {
      const r = ok(await docker('top', web));
      assert.match(r.stdout.split('\n')[0], /PID/);
      assert.match(r.stdout, /httpd -f -p 8080/);
    });

    test('stop, start, restart', async () => {
      ok(await docker('stop', '-t', '1', web));
      let c = await inspect(web);
      assert.equal(c.State.Status, 'exited');
      assert.equal(c.State.ExitCode, 137);
      ok(await docker('start', web));
      c = await inspect(web);
      assert.equal(c.State.Status, 'running');
      const pid = c.State.Pid;
      ok(await docker('restart', '-t', '1', web));
      c = await inspect(web);
      assert.equal(c.State.Status, 'running');
      assert.notEqual(c.State.Pid, pid);
    });

    test('kill -s USR1 and kill', async () => {
      const name = `sig-${tag}`;
      ok(await docker('run', '-d', '--name', name, 'busybox', 'sh', '-c', 'trap "echo usr1" USR1; echo ready; while true; do sleep 0.1; done'));
      await waitFor('ready', async () => ok(await docker('logs', name)).stdout.includes('ready'));
      ok(await docker('kill', '-s', 'USR1', name));
      await waitFor('USR1 handled', async () => ok(await docker('logs', name)).stdout.includes('usr1'));
      ok(await docker('kill', name));
      await waitFor('killed', async () => (await inspect(name)).State.Status === 'exited');
      assert.equal((await inspect(name)).State.ExitCode, 137);
      const again = await docker('kill', name);
      assert.equal(again.code, 1);
      assert.match(again.stderr, /is not running/);
      ok(await docker('rm', name));
    });

    test('wait', async () => {
      const name = `wait-${tag}`;
      ok(await docker('run', '-d', '--name', name, 'busybox', 'sh', '-c', 'sleep 1; exit 7'));
      assert.equal(ok(await docker('wait', name)).stdout, '7\n');
      ok(await docker('rm', name));
    });

    test('pause and unpause', async () => {
      ok(await docker('pause', web));
      assert.equal((await inspect(web)).State.Status, 'paused');
      ok(await docker('unpause', web));
      assert.equal((await inspect(web)).State.Status, 'running');
    });

    test('rename and inspect', async () => {
      ok(await docker('rename', web, `${web}2`));
      const c = await inspect(`${web}2`);
      assert.equal(c.Id, webId);
      assert.equal(c.Name, `/${web}2`);
      assert.equal(ok(await docker('inspect', '--format', '{{.State.Status}} {{.Config.Image}}', `${web}2`)).stdout, 'running busybox\n');
      const missing = await docker('inspect', web);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, new RegExp(`No such object: ${web}`));
    });

    test('rm -f', async () => {
      const r = ok(await docker('rm', '-f', `${web}2`));
      assert.equal(r.stdout, `${web}2\n`);
      const gone = await docker('inspect', webId);
      assert.equal(gone.code, 1);
    });

    test('errors as docker prints them', async () => {
      const name = `busy-${tag}`;
      const id = ok(await docker('run', '-d', '--name', name, 'busybox', 'sleep', '100')).stdout.trim();
      const conflict = await docker('run', '-d', '--name', name, 'busybox', 'true');
      assert.equal(conflict.code, 125);
      assert.match(conflict.stderr, new RegExp(`Conflict\\. The container name "/${name}" is already in use by container "${id}"`));
      const rm = await docker('rm', name);
      assert.equal(rm.code, 1);
      assert.match(rm.stderr, /You cannot remove a running container/);
      ok(await docker('rm', '-f', name));
      const nf = await docker('run', '--rm', 'busybox', '/nonexistent-binary');
      assert.equal(nf.code, 127);
      const nx = await docker('run', '--rm', 'busybox', '/etc/passwd');
      assert.equal(nx.code, 126);
      const img = await docker('run', '--rm', '--pull', 'never', 'nope-img');
      assert.equal(img.code, 125);
      assert.match(img.stderr, /No such image: nope-img:latest/);
      const nc = await docker('logs', 'nosuch');
      assert.equal(nc.code, 1);
      assert.match(nc.stderr, /No such container: nosuch/);
    });
  });
}
