/**
 * `cp` against a running container that races it: the container's own loop
 * keeps swapping a directory for a symlink to `/` (in its rootfs and in a
 * volume) while the client copies in and out through that name again and
 * again. Whatever the interleaving, no host file is read, written, chmod'ed
 * or touched: everything is resolved and acted on by descriptor
 * (common/scopedpath.ts ScopeWalker). The host side is a sentinel directory
 * in the test's own temp dir, never a real system file.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startDaemon, bootstrapBusybox, type Daemon } from '../helpers/daemon';
import { tarOf } from '../helpers/tar';

let d: Daemon;
let hostDir = '';
let ctr = '';
const SECRET = 'host sentinel: never to be read through a container\n';
const ROUNDS = 40;         // cp round trips per swapped name
const SWAPS = 200_000;     // bounded loop in the container; the test stops it once the copies are done

before(async () => {
  d = await startDaemon();
  await bootstrapBusybox(d);
  hostDir = path.join(d.base, 'race-host');
  fs.mkdirSync(hostDir, { mode: 0o750 });
  fs.writeFileSync(path.join(hostDir, 'sentinel'), SECRET, { mode: 0o640 });
  fs.utimesSync(hostDir, new Date(1e12), new Date(1e12));
  // Each named place alternates: a real directory, absent, a symlink to `/`.
  const swap = (dir: string) => `(i=0; mkdir ${dir}/real; ln -s / ${dir}/link; while [ $i -lt ${SWAPS} ]; do mv ${dir}/real ${dir}/d; mv ${dir}/d ${dir}/real; mv ${dir}/link ${dir}/d; mv ${dir}/d ${dir}/link; i=$((i+1)); done)`;
  const c = await d.api('POST', '/containers/create', {
    Image: 'busybox',
    Cmd: ['sh', '-c', `mkdir -p /w && ${swap('/w')} & ${swap('/v')} & wait`],
    HostConfig: { Binds: ['racevol:/v'] },
  });
  assert.equal(c.status, 201, JSON.stringify(c.body));
  ctr = c.body.Id;
  assert.equal((await d.api('POST', `/containers/${ctr}/start`)).status, 204, d.log());
});
after(async () => { await d?.stop(); });

test('cp in and out through a name the running container swaps for a symlink to / never reaches the host', async () => {
  const before = { mode: fs.statSync(hostDir).mode, mtime: fs.statSync(hostDir).mtimeMs, sentinel: fs.statSync(path.join(hostDir, 'sentinel')) };
  // Each member, followed on the host through the swapped symlink, would land in (or chmod/utime) the sentinel directory.
  const upload = await tarOf([
    { header: { name: `d${hostDir}/`, type: 'directory', mode: 0o777, mtime: new Date(0) } },
    { header: { name: `d${hostDir}/planted`, mode: 0o666, mtime: new Date(0) }, body: 'from the client\n' },
    { header: { name: `d${hostDir}/sentinel`, mode: 0o666, mtime: new Date(0) }, body: 'overwritten\n' },
    { header: { name: `d${hostDir}/lnk`, type: 'symlink', linkname: '/' } },
  ]);
  // A request that fails outright (not an HTTP status) says which one it was, with the daemon's last words.
  const failed = (what: string, err: unknown) => new Error(`${what}: ${(err as Error).message}\n${d.log().split('\n').slice(-20).join('\n')}`);
  const call = async (what: string, ...args: Parameters<Daemon['api']>) => {
    try {
      return await d.api(...args);
    } catch (err) {
      throw failed(what, err);
    }
  };
  // A tar stream whose source the container changes mid-walk may end in a closed connection once its
  // 200 and part of the tar are out (issue 10: "a response or a closed connection"; dockerd does the
  // same). Only the streaming reads may end so, and the daemon must answer right after.
  const read = async (what: string, p: string) => {
    try {
      return await d.api('GET', p);
    } catch (err) {
      if (!['ECONNRESET', 'EPIPE'].includes((err as NodeJS.ErrnoException).code ?? '') && !/aborted|socket hang up/.test((err as Error).message)) {
        throw failed(what, err);
      }
      assert.equal((await call('ping after a closed stream', 'GET', '/_ping')).status, 200);
      return { status: -1, raw: Buffer.alloc(0) };
    }
  };
  const statuses = new Map<string, number>();
  const count = (k: string) => statuses.set(k, (statuses.get(k) ?? 0) + 1);
  const deadline = Date.now() + 40_000; // bounded in time as well as in count
  for (let i = 0; i < ROUNDS && Date.now() < deadline; i++) {
    for (const dir of ['/w', '/v']) {
      const get = await read('GET', `/containers/${ctr}/archive?path=${encodeURIComponent(`${dir}/d${hostDir}`)}`);
      assert.ok(!get.raw.includes(Buffer.from(SECRET)), `GET through ${dir}/d returned the host's sentinel`);
      count(`GET ${get.status}`);
      const head = await call('HEAD', 'HEAD', `/containers/${ctr}/archive?path=${encodeURIComponent(`${dir}/d${hostDir}/sentinel`)}`);
      count(`HEAD ${head.status}`);
      const put = await call('PUT', 'PUT', `/containers/${ctr}/archive?path=${dir}`, upload, { 'Content-Type': 'application/x-tar' });
      assert.ok(put.status === 200 || (put.status >= 400 && put.status < 500), `PUT into ${dir}: ${put.status} ${put.raw}`);
      count(`PUT ${put.status}`);
      const putThrough = await call('PUT-d', 'PUT', `/containers/${ctr}/archive?path=${encodeURIComponent(`${dir}/d`)}`, upload, { 'Content-Type': 'application/x-tar' });
      assert.ok(putThrough.status === 200 || (putThrough.status >= 400 && putThrough.status < 500), `PUT into ${dir}/d: ${putThrough.status} ${putThrough.raw}`);
      count(`PUT-d ${putThrough.status}`);
    }
    if (i % 10 === 0) {
      const exp = await read('export', `/containers/${ctr}/export`);
      assert.ok(exp.status === 200 || exp.status === -1, `export: ${exp.status}`);
      assert.ok(!exp.raw.includes(Buffer.from(SECRET)), 'export returned the host sentinel');
    }
  }
  const running = await d.api('GET', `/containers/${ctr}/json`);
  assert.equal(running.body.State.Running, true, 'the swapping loop ended before the copies did: the race was not exercised');
  assert.equal((await d.api('POST', `/containers/${ctr}/stop?t=0`)).status, 204);
  assert.deepEqual(fs.readdirSync(hostDir), ['sentinel'], `written into the host directory (${JSON.stringify([...statuses])})`);
  assert.equal(fs.readFileSync(path.join(hostDir, 'sentinel'), 'utf8'), SECRET);
  const after = { mode: fs.statSync(hostDir).mode, mtime: fs.statSync(hostDir).mtimeMs, sentinel: fs.statSync(path.join(hostDir, 'sentinel')) };
  assert.equal(after.mode, before.mode, 'the host directory was chmod\'ed');
  assert.equal(after.mtime, before.mtime, 'the host directory\'s times were changed');
  assert.equal(after.sentinel.mode, before.sentinel.mode, 'the host file was chmod\'ed');
  assert.equal(after.sentinel.mtimeMs, before.sentinel.mtimeMs, 'the host file was touched');
  assert.equal(after.sentinel.nlink, 1);
  // Both outcomes of the race were met: through the directory (200) and through the symlink or a gap.
  assert.ok((statuses.get('PUT 200') ?? 0) > 0, JSON.stringify([...statuses]));
  console.log('cp-race outcomes:', JSON.stringify([...statuses]));
  const r = await d.api('GET', '/_ping');
  assert.equal(r.status, 200);
});
