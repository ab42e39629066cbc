import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { parseFlags, checkArgs, UsageError } from '../../src/cli/flags';
import { buildCreate, runSpec } from '../../src/cli/commands/run';
import { filtersParam } from '../../src/cli/client';
import { detachKeyBytes, EscapeFilter } from '../../src/cli/streams';

test('pflag syntax: combined shorts, attached values, = forms, lists', () => {
  const p = parseFlags(runSpec, ['-it', '--name=web', '-eA=1', '-e', 'B=2', '--rm', '-m512m', 'busybox', 'ls', '-l']);
  assert.equal(p.opts.interactive, true);
  assert.equal(p.opts.tty, true);
  assert.equal(p.opts.name, 'web');
  assert.deepEqual(p.opts.env, ['A=1', 'B=2']);
  assert.equal(p.opts.memory, 512 * 1024 * 1024);
  // options stop at the image: -l belongs to ls
  assert.deepEqual(p.args, ['busybox', 'ls', '-l']);
  assert.equal(parseFlags(runSpec, ['--sig-proxy=false', 'x']).opts['sig-proxy'], false);
});

test('flag errors carry docker wording', () => {
  assert.throws(() => parseFlags(runSpec, ['--foo', 'busybox']), (e: unknown) => e instanceof UsageError && e.message === 'unknown flag: --foo' && e.code === 125);
  assert.throws(() => parseFlags(runSpec, ['-m', '12x', 'busybox']), { message: `invalid argument "12x" for "-m, --memory" flag: invalid size: '12x'` });
  assert.throws(() => parseFlags(runSpec, ['-xyz']), { message: "unknown shorthand flag: 'x' in -xyz" });
  assert.throws(() => parseFlags(runSpec, ['--name']), { message: 'flag needs an argument: --name' });
  assert.equal(checkArgs(runSpec, [], 'berth'), '"berth run" requires at least 1 argument.');
});

test('create body matches the docker CLI wire capture (07-run-rm-echo)', () => {
  const p = parseFlags(runSpec, ['--rm', 'busybox:local', 'echo', 'hi']);
  const b = buildCreate(p.opts, p.args, false, p.changed);
  const wire = fs.readFileSync('/work/shared/specs/docker-cli-wire/07-run-rm-echo.md', 'utf8');
  const m = /Request body \(1742 bytes[^]*?```json\n([^]*?)```/.exec(wire);
  if (m) {
    const expected = JSON.parse(m[1]);
    assert.deepEqual(b.body, expected);
    // Same key order too.
    assert.equal(JSON.stringify(b.body), JSON.stringify(expected));
  } else {
    assert.equal((b.body.HostConfig as Record<string, unknown>).AutoRemove, true);
  }
});

test('create body: ports, limits, restart, ulimits, labels, volumes', () => {
  const p = parseFlags(runSpec, [
    '-d', '-p', '127.0.0.1:18080:80', '--memory', '1g', '--cpus', '1.5', '--pids-limit', '50', '--restart', 'on-failure:3',
    '--ulimit', 'nofile=1024:2048', '-l', 'k=v', '-v', '/tmp:/mnt:ro', '--init', '--network', 'none', '--cap-add', 'NET_ADMIN', 'busybox',
  ]);
  const b = buildCreate(p.opts, p.args, true, p.changed);
  const hc = b.body.HostConfig as Record<string, any>;
  assert.deepEqual(b.body.ExposedPorts, { '80/tcp': {} });
  assert.deepEqual(hc.PortBindings, { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '18080' }] });
  assert.equal(hc.Memory, 1024 ** 3);
  assert.equal(hc.NanoCpus, 1.5e9);
  assert.equal(hc.PidsLimit, 50);
  assert.deepEqual(hc.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
  assert.deepEqual(hc.Ulimits, [{ Name: 'nofile', Hard: 2048, Soft: 1024 }]);
  assert.deepEqual(b.body.Labels, { k: 'v' });
  assert.deepEqual(hc.Binds, ['/tmp:/mnt:ro']);
  assert.equal(hc.Init, true);
  assert.equal(hc.NetworkMode, 'none');
  assert.deepEqual(hc.CapAdd, ['NET_ADMIN']);
  assert.equal(b.body.AttachStdout, false);
  // Like the docker CLI: only the "name[:count]" shape is checked here; the policy name is the daemon's to reject.
  const create = (args: string[]) => {
    const q = parseFlags(runSpec, [...args, 'x']);
    return buildCreate(q.opts, q.args, true, q.changed).body.HostConfig as Record<string, any>;
  };
  assert.deepEqual(create(['--restart', 'sometimes']).RestartPolicy, { Name: 'sometimes', MaximumRetryCount: 0 });
  assert.throws(() => create(['--restart', 'on-failure:x']), /^Error: invalid restart policy format: maximum retry count must be an integer$/);
  assert.throws(() => create(['--restart', ':3']), /^Error: invalid restart policy format: no policy provided before colon$/);
  assert.throws(() => create(['--rm', '--restart', 'always']), /^Error: conflicting options: cannot specify both --restart and --rm$/);
  // --cpus parses like Go's big.Rat; the range (0.01..N) is checked by the daemon.
  assert.equal(create(['--cpus', '-1']).NanoCpus, -1e9);
  assert.equal(create(['--cpus', '1/2']).NanoCpus, 5e8);
  assert.throws(() => create(['--cpus', 'abc']), /failed to parse abc as a rational number/);
  assert.throws(() => create(['--cpus', '0.0000000001']), /value is too precise/);
});

test('filters and detach keys', () => {
  assert.equal(filtersParam(['name=chat', 'status=running']), '{"name":{"chat":true},"status":{"running":true}}');
  assert.deepEqual(detachKeyBytes('ctrl-p,ctrl-q'), [0x10, 0x11]);
  let detached = false;
  const f = new EscapeFilter([0x10, 0x11], () => (detached = true));
  assert.deepEqual([...f.push(Buffer.from([0x61, 0x10, 0x62]))], [0x61, 0x10, 0x62]);
  assert.equal(detached, false);
  assert.deepEqual([...f.push(Buffer.from([0x63, 0x10]))], [0x63]);
  f.push(Buffer.from([0x11]));
  assert.equal(detached, true);
});
