/**
 * Interactive TTY sessions through a real pseudo-terminal (`script`):
 * run -it and exec -it, raw mode, window size and resize, Ctrl-D, exit codes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { busyboxDaemonForFile, ok, BERTH_BIN } from '../helpers/daemon';
import { startPty, type PtySession } from '../helpers/pty';

const d = busyboxDaemonForFile();

const berthCmd = (args: string) => `${process.execPath} ${BERTH_BIN} ${args}`;
const PROMPT = /\/ # $|\/ # /;

/**
 * Asks the container's shell for its terminal size until it reports rows x cols
 * (a resize travels CLI → daemon → conmon asynchronously; a slow host may need a moment).
 */
async function expectSize(s: PtySession, rows: number, cols: number): Promise<void> {
  let last = '';
  for (let i = 0; i < 25; i++) {
    s.send('stty size\r');
    const m = await s.expect(/(\d+) (\d+)\r?\n/);
    last = `${m[1]} ${m[2]}`;
    if (last === `${rows} ${cols}`) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`terminal size stayed ${last}, expected ${rows} ${cols}`);
}

test('run -it --rm busybox sh: a real TTY, window size, resize, exit code', async () => {
  const s = startPty(berthCmd('run -it --rm busybox sh'), { env: d.env, rows: 24, cols: 80, workDir: d.base });
  try {
    await s.expect(PROMPT);
    s.send('tty; stty size\r');
    await s.expect(/\/dev\/pts\/0\r?\n/);
    await s.expect(/24 80\r?\n/);
    // a burst of resizes (each stty call is two SIGWINCHes): the last size wins
    s.resize(30, 90);
    s.resize(35, 95);
    s.resize(40, 100);
    await expectSize(s, 40, 100);
    // raw mode: the container's terminal, not ours, echoes and edits the line
    s.send('echo $((6*7))\r');
    await s.expect(/42\r?\n/);
    s.send('exit 3\r');
    assert.equal(await s.exited(), 3);
  } finally {
    s.kill();
  }
  assert.equal(ok(await d.cli(['ps', '-aq'])).stdout, '', '--rm removed the container');
});

test('run -it: Ctrl-D ends the shell with exit code 0', async () => {
  const s = startPty(berthCmd('run -it --rm busybox sh'), { env: d.env, workDir: d.base });
  try {
    await s.expect(PROMPT);
    s.send('\x04');
    assert.equal(await s.exited(), 0);
  } finally {
    s.kill();
  }
});

test('run -it: Ctrl-C reaches the container, not the client', async () => {
  const s = startPty(berthCmd('run -it --rm busybox sh'), { env: d.env, workDir: d.base });
  try {
    await s.expect(PROMPT);
    s.send('sleep 30\r');
    await new Promise((r) => setTimeout(r, 500));
    s.send('\x03');
    await s.expect(PROMPT);
    s.send('echo still-here\r');
    await s.expect(/still-here\r?\n/);
    s.send('exit\r');
    assert.equal(await s.exited(), 0);
  } finally {
    s.kill();
  }
});

test('exec -it into a running container', async () => {
  const id = ok(await d.cli(['run', '-d', 'busybox', 'sleep', '1000'])).stdout.trim();
  const s = startPty(berthCmd(`exec -it ${id.slice(0, 12)} sh`), { env: d.env, rows: 30, cols: 90, workDir: d.base });
  try {
    await s.expect(PROMPT);
    s.send('stty size; ps\r');
    await s.expect(/30 90\r?\n/);
    await s.expect(/1 root\s+(\S+\s+)?sleep 1000/);
    s.resize(33, 120);
    await expectSize(s, 33, 120);
    s.send('exit 4\r');
    assert.equal(await s.exited(), 4);
  } finally {
    s.kill();
  }
  ok(await d.cli(['rm', '-f', id]));
});

test('run -t without -i: TTY output, CRLF line endings, exit code', async () => {
  const s = startPty(berthCmd('run -t --rm busybox sh -c "test -t 1 && echo is-a-tty; exit 2"'), { env: d.env, workDir: d.base });
  try {
    // Without -i the docker CLI leaves our terminal cooked (checked with the real
    // docker CLI + dockerd): the container's CRLF passes our ONLCR as `\r\r\n`.
    await s.expect(/is-a-tty\r\r?\n/);
    assert.equal(await s.exited(), 2);
  } finally {
    s.kill();
  }
});
