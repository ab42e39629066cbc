import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { containerTop, parsePsOutput, validatePsArgs } from '../../src/container/top';

const PS = `UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 05:19 ?        00:00:01 /sbin/init splash
root        4242       1  0 05:20 ?        00:00:00 sh -c sleep 100
root        4243    4242  0 05:20 ?        00:00:00 sleep 100
`;

test('parsePsOutput keeps container rows, command with spaces', () => {
  assert.deepEqual(parsePsOutput(PS, [4242, 4243]), {
    Titles: ['UID', 'PID', 'PPID', 'C', 'STIME', 'TTY', 'TIME', 'CMD'],
    Processes: [
      ['root', '4242', '1', '0', '05:20', '?', '00:00:00', 'sh -c sleep 100'],
      ['root', '4243', '4242', '0', '05:20', '?', '00:00:00', 'sleep 100'],
    ],
  });
  const threads = 'PID TTY STAT TIME COMMAND\n  10 ?  -  0:00 app\n   - -  Sl 0:00 -\n  11 ? - 0:00 other\n   - - S 0:00 -\n';
  assert.deepEqual(parsePsOutput(threads, [10]).Processes, [['10', '?', '-', '0:00', 'app'], ['-', '-', 'Sl', '0:00', '-']]);
  assert.throws(() => parsePsOutput('UID CMD\nroot x\n', [1]), /Couldn't find PID field in ps output/);
  assert.throws(() => validatePsArgs('-o user= PID'), /not allowed/);
});

test('containerTop runs the host ps and finds a real process', async (t) => {
  const child = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.after(() => { child.kill('SIGKILL'); });
  await new Promise((r) => setTimeout(r, 100));
  const top = await containerTop([child.pid!]);
  assert.ok(top.Titles.includes('PID'));
  assert.equal(top.Processes.length, 1);
  assert.equal(top.Processes[0]![top.Titles.indexOf('PID')], String(child.pid));
  assert.equal(top.Processes[0]![top.Titles.length - 1], 'sleep 30');
  const aux = await containerTop([child.pid!], 'aux');
  assert.equal(aux.Processes.length, 1);
  await assert.rejects(containerTop([child.pid!], '-o user'), /Couldn't find PID field in ps output/);
  await assert.rejects(containerTop([child.pid!], '--no-such-option'), /^BerthError: ps: /);
});
