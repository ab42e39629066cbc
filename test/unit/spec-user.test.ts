import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BerthError } from '../../src/common/errors';
import { resolveUser, resolveUserFrom } from '../../src/runtime/user';
import { resolveInRoot } from '../../src/common/scopedpath';

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\nbin:x:1:1:bin:/bin:/sbin/nologin\nwww:x:33:33:www:/var/www:/bin/sh\n# comment\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
const GROUP = 'root:x:0:root\nbin:x:1:root,bin\nwww-data:x:33:\nstaff:x:50:www,bin\naudio:x:29:www\nnogroup:x:65534:\n';

function invalid(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => err instanceof BerthError && err.kind === 'invalid-argument' && err.message === message);
}

test('every -u form', () => {
  assert.deepEqual(resolveUserFrom('', PASSWD, GROUP), { uid: 0, gid: 0, additionalGids: [0, 1], home: '/root', name: 'root' });
  assert.deepEqual(resolveUserFrom('www', PASSWD, GROUP), { uid: 33, gid: 33, additionalGids: [50, 29], home: '/var/www', name: 'www' });
  assert.deepEqual(resolveUserFrom('33', PASSWD, GROUP), { uid: 33, gid: 33, additionalGids: [50, 29], home: '/var/www', name: 'www' });
  assert.deepEqual(resolveUserFrom('1000', PASSWD, GROUP), { uid: 1000, gid: 0, additionalGids: [], home: '/', name: '' });
  assert.deepEqual(resolveUserFrom('1000:1001', PASSWD, GROUP), { uid: 1000, gid: 1001, additionalGids: [], home: '/', name: '' });
  assert.deepEqual(resolveUserFrom('www:staff', PASSWD, GROUP), { uid: 33, gid: 50, additionalGids: [], home: '/var/www', name: 'www' });
  assert.deepEqual(resolveUserFrom('1000:nogroup', PASSWD, GROUP).gid, 65534);
  assert.deepEqual(resolveUserFrom('nobody', PASSWD, GROUP, ['audio', '4242']).additionalGids, [29, 4242]);
  // No passwd file at all: numeric works, names do not.
  assert.deepEqual(resolveUserFrom('5:6', undefined, undefined), { uid: 5, gid: 6, additionalGids: [], home: '/', name: '' });
  invalid(() => resolveUserFrom('foo', PASSWD, GROUP), 'unable to find user foo: no matching entries in passwd file');
  invalid(() => resolveUserFrom('foo', undefined, undefined), 'unable to find user foo: no matching entries in passwd file');
  invalid(() => resolveUserFrom('www:nope', PASSWD, GROUP), 'unable to find group nope: no matching entries in group file');
  invalid(() => resolveUserFrom('root', PASSWD, GROUP, ['nope']), 'Unable to find group nope: no matching entries in group file');
});

test('passwd is read inside the rootfs, never through a symlink out of it', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'h3a-user-'));
  try {
    const root = path.join(tmp, 'rootfs');
    fs.mkdirSync(path.join(root, 'etc'), { recursive: true });
    fs.mkdirSync(path.join(root, 'real'), { recursive: true });
    fs.writeFileSync(path.join(root, 'real/passwd'), 'app:x:4000:4001::/home/app:/bin/sh\n');
    // An absolute link is taken relative to the rootfs (as inside the container).
    fs.symlinkSync('/real/passwd', path.join(root, 'etc/passwd'));
    fs.symlinkSync('../../../../../../etc/shadow', path.join(root, 'etc/group'));
    assert.deepEqual(resolveUser(root, 'app'), { uid: 4000, gid: 4001, additionalGids: [], home: '/home/app', name: 'app' });
    assert.equal(resolveInRoot(root, '/etc/group'), path.join(root, 'etc/shadow'));
    assert.equal(resolveInRoot(root, '/../../x'), path.join(root, 'x'));
    // The host's root user must not leak in through the escaping link.
    assert.throws(() => resolveUser(root, 'app:shadow'), /unable to find group shadow/);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
