import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeFrame, decodeAll, StdcopyDecoder } from '../../src/common/stdcopy';
import { parseChunk, formatRecord, tailRecords, toUtc } from '../../src/container/logs';
import { statusText } from '../../src/container/format';
import { humanDuration } from '../../src/common/duration';
import { mergeConfig, validateHostConfig } from '../../src/container/createconfig';
import { parseSignal } from '../../src/container/signals';
import { runcMessage } from '../../src/runtime/runc';
import { startFailure } from '../../src/container/rootfs';

test('stdcopy: encode and decode across chunk boundaries', () => {
  const f = encodeFrame(1, 'hi\n');
  assert.deepEqual([...f], [1, 0, 0, 0, 0, 0, 0, 3, 0x68, 0x69, 0x0a]);
  const all = Buffer.concat([f, encodeFrame(2, 'err')]);
  const got: string[] = [];
  const dec = new StdcopyDecoder((s, d) => got.push(`${s}:${d}`));
  for (const b of all) dec.push(Buffer.from([b]));
  assert.deepEqual(got, ['1:hi\n', '2:err']);
  assert.throws(() => decodeAll(all.subarray(0, 5)));
  assert.equal(encodeFrame(1, '').length, 0);
});

test('k8s-file log parsing, partial lines, tail, timestamps', () => {
  const text = '2026-05-01T12:34:56.123456789+02:00 stdout F hello\n' +
    '2026-05-01T12:34:57.000000000+02:00 stderr P par\n' +
    '2026-05-01T12:34:57.100000000+02:00 stderr F tial\n' +
    '2026-05-01T12:34:58+02:00 stdout F \n' +
    '2026-05-01T12:34:59.5+02:00 stdout F incompl';
  const { records, rest } = parseChunk(Buffer.from(text));
  assert.equal(records.length, 4);
  assert.equal(rest.toString(), '2026-05-01T12:34:59.5+02:00 stdout F incompl');
  assert.equal(records[0].time, '2026-05-01T10:34:56.123456789Z');
  assert.equal(records[1].partial, true);
  const fmt = { tty: false, stdout: true, stderr: true, timestamps: false };
  assert.deepEqual(decodeAll(Buffer.concat(records.map((r) => formatRecord(r, fmt)!))).map((f) => `${f.stream}:${f.data}`),
    ['1:hello\n', '2:par', '2:tial\n', '1:\n']);
  assert.equal(formatRecord(records[0], { ...fmt, tty: true, timestamps: true })!.toString(), '2026-05-01T10:34:56.123456789Z hello\n');
  assert.equal(formatRecord(records[0], { ...fmt, stdout: false }), undefined);
  assert.deepEqual(tailRecords(records, 2).map((r) => r.content.toString()), ['par', 'tial', '']);
  assert.equal(tailRecords(records, 0).length, 0);
  assert.equal(toUtc('2026-05-01T00:00:00.000000000Z')!.time, '2026-05-01T00:00:00Z');
});

test('humanised durations and status text', () => {
  assert.equal(humanDuration(500), 'Less than a second');
  assert.equal(humanDuration(1000), '1 second');
  assert.equal(humanDuration(3000), '3 seconds');
  assert.equal(humanDuration(61_000), 'About a minute');
  assert.equal(humanDuration(5 * 60_000), '5 minutes');
  assert.equal(humanDuration(3600_000), 'About an hour');
  assert.equal(humanDuration(5 * 3600_000), '5 hours');
  assert.equal(humanDuration(3 * 86400_000), '3 days');
  assert.equal(humanDuration(20 * 86400_000), '2 weeks');
  assert.equal(humanDuration(90 * 86400_000), '3 months');
  assert.equal(humanDuration(800 * 86400_000), '2 years');
  const now = Date.parse('2026-01-01T00:00:10Z');
  assert.equal(statusText({ Running: true, Paused: false, StartedAt: '2026-01-01T00:00:07Z' }, now), 'Up 3 seconds');
  assert.equal(statusText({ Running: true, Paused: true, StartedAt: '2026-01-01T00:00:08Z' }, now), 'Up 2 seconds (Paused)');
  assert.equal(statusText({ Running: false, ExitCode: 0, FinishedAt: '2026-01-01T00:00:05Z' }, now), 'Exited (0) 5 seconds ago');
  assert.equal(statusText({ Running: false, ExitCode: 0, FinishedAt: '0001-01-01T00:00:00Z' }, now), 'Created');
});

const image: any = { id: 'sha256:x', config: { config: { Env: ['PATH=/bin', 'A=1'], Cmd: ['sh'], Entrypoint: null, Labels: { l: '1' } } } };

test('create config merge (Docker rules)', () => {
  const id = 'a'.repeat(64);
  let m = mergeConfig(id, { Image: 'busybox', Cmd: ['echo', 'hi'], Env: ['A=2', 'B=3'] }, image, 'none');
  assert.equal(m.path, 'echo');
  assert.deepEqual(m.args, ['hi']);
  assert.deepEqual(m.config.Env, ['A=2', 'B=3', 'PATH=/bin']);
  // a bare KEY is kept as given (it unsets KEY in the process)
  assert.deepEqual(mergeConfig(id, { Image: 'busybox', Env: ['Foo', 'A='] }, image, 'none').config.Env, ['Foo', 'A=', 'PATH=/bin']);
  assert.equal(m.config.Hostname, 'aaaaaaaaaaaa');
  m = mergeConfig(id, { Image: 'busybox' }, image, 'none');
  assert.equal(m.path, 'sh');
  m = mergeConfig(id, { Image: 'busybox', Entrypoint: ['top'] }, image, 'none');
  assert.equal(m.path, 'top');
  assert.deepEqual(m.args, []);
  const noCmd: any = { id: 'x', config: { config: {} } };
  assert.throws(() => mergeConfig(id, { Image: 'x' }, noCmd, 'none'), /No command specified/);
});

test('host config validation', () => {
  const defaults = { network: 'none', cgroupnsMode: 'private' };
  assert.equal(validateHostConfig({ NetworkMode: 'default' }, defaults).NetworkMode, 'none');
  // Which networks exist is the network area's question (NetworkService.prepare): the mode is kept as given.
  assert.equal(validateHostConfig({ NetworkMode: 'bridge2' }, defaults).NetworkMode, 'bridge2');
  assert.throws(() => validateHostConfig({ RestartPolicy: { Name: 'x' } }, defaults), /invalid restart policy/);
  assert.throws(() => validateHostConfig({ AutoRemove: true, RestartPolicy: { Name: 'always' } }, defaults), /Conflicting options: --restart and --rm/);
  assert.throws(() => validateHostConfig({ Memory: 1024 }, defaults), /Minimum memory limit/);
  assert.equal(validateHostConfig({}, defaults).RestartPolicy.Name, 'no');
  // The cgroup namespace mode is filled in from the daemon's default, as dockerd does.
  assert.equal(validateHostConfig({}, defaults).CgroupnsMode, 'private');
  assert.equal(validateHostConfig({ CgroupnsMode: '' }, { ...defaults, cgroupnsMode: 'host' }).CgroupnsMode, 'host');
  assert.equal(validateHostConfig({ CgroupnsMode: 'host' }, defaults).CgroupnsMode, 'host');
  assert.throws(() => validateHostConfig({ CgroupnsMode: 'shared' }, defaults), /invalid cgroup namespace mode: shared/);
});

test('signals and runtime error mapping', () => {
  assert.equal(parseSignal('KILL', 15), 9);
  assert.equal(parseSignal('SIGUSR1', 15), 10);
  assert.equal(parseSignal('usr1', 15), 10);
  assert.equal(parseSignal('15', 9), 15);
  assert.equal(parseSignal(undefined, 9), 9);
  assert.throws(() => parseSignal('NOPE', 9), /Invalid signal/);
  const stderr = 'time="2026-01-01T00:00:00Z" level=error msg="runc create failed: unable to start container process: exec: \\"nope\\": executable file not found in $PATH"\n';
  assert.equal(runcMessage(stderr), 'runc create failed: unable to start container process: exec: "nope": executable file not found in $PATH');
  const e = startFailure(stderr);
  assert.equal(e.kind, 'invalid-argument');
  assert.equal(e.exitCode, 127);
  assert.equal(e.message, 'failed to create task for container: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "nope": executable file not found in $PATH: unknown');
});
