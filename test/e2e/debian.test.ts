/**
 * Debian base image: debootstrap (minbase) from the machine's configured
 * mirror. Slow (minutes), so it runs only with BERTH_TEST_DEBIAN=1.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDaemon, ok, BERTH_BIN, type Daemon } from '../helpers/daemon';
import { startPty } from '../helpers/pty';

const enabled = process.env.BERTH_TEST_DEBIAN === '1';
let d: Daemon | undefined;
before(async () => {
  if (enabled) d = await startDaemon();
});
after(async () => {
  await d?.stop();
});

test('bootstrap debian:bookworm, then run -it --rm debian:bookworm bash', { skip: !enabled && 'set BERTH_TEST_DEBIAN=1 to run (debootstrap takes minutes)' }, async () => {
  const b = ok(await d!.cli(['bootstrap', 'debian:bookworm'], { timeoutMs: 30 * 60_000 }));
  assert.notEqual(b.stdout + b.stderr, '');
  const img = JSON.parse(ok(await d!.cli(['image', 'inspect', 'debian:bookworm'])).stdout)[0];
  assert.deepEqual(img.RepoTags, ['debian:bookworm']);
  const rel = ok(await d!.cli(['run', '--rm', 'debian:bookworm', 'cat', '/etc/debian_version']));
  assert.match(rel.stdout, /^12\./);
  const s = startPty(`${process.execPath} ${BERTH_BIN} run -it --rm debian:bookworm bash`, { env: d!.env, workDir: d!.base });
  try {
    await s.expect(/root@[0-9a-f]{12}:\/# /);
    s.send('echo $BASH_VERSION; exit 3\r');
    await s.expect(/\d+\.\d+/);
    assert.equal(await s.exited(), 3);
  } finally {
    s.kill();
  }
});
