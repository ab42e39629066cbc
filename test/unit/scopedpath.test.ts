/**
 * The one symlink-safe resolver (common/scopedpath.ts): hostile symlinks to
 * `/`, to `..` and to absolute host paths, in the rootfs, in a volume and in
 * a bind mount, all stay inside the container's view.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readFileInRoot, resolveInRoot, resolveInScope, scopeOf } from '../../src/common/scopedpath';

function tree(): { base: string; root: string; vol: string; bind: string; host: string } {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'scoped-'));
  const root = path.join(base, 'rootfs');
  const vol = path.join(base, 'volume');
  const bind = path.join(base, 'bind');
  const host = path.join(base, 'host-secret');
  for (const d of [root, vol, bind, host, path.join(root, 'etc'), path.join(root, 'data'), path.join(root, 'mnt')]) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(root, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  fs.writeFileSync(path.join(host, 'shadow'), 'host secret\n');
  return { base, root, vol, bind, host };
}

test('symlinks in the rootfs resolve inside it, never above it', () => {
  const { base, root, host } = tree();
  try {
    fs.symlinkSync('/etc', path.join(root, 'abs'));
    fs.symlinkSync('../../../../etc', path.join(root, 'etc', 'up'));
    fs.symlinkSync('/', path.join(root, 'slash'));
    fs.symlinkSync(host, path.join(root, 'hostpath'));
    fs.symlinkSync('..', path.join(root, 'dotdot'));
    assert.equal(resolveInRoot(root, '/abs/passwd'), path.join(root, 'etc/passwd'));
    assert.equal(resolveInRoot(root, '/etc/up/shadow'), path.join(root, 'etc/shadow'));
    assert.equal(resolveInRoot(root, '/../../../etc'), path.join(root, 'etc'));
    assert.equal(resolveInRoot(root, '/slash/../..'), root);
    assert.equal(resolveInRoot(root, '/abs', { followFinal: false }), path.join(root, 'abs'));
    assert.equal(resolveInRoot(root, '/hostpath/shadow'), path.join(root, host, 'shadow'));
    assert.equal(resolveInRoot(root, '/dotdot/dotdot/etc/passwd'), path.join(root, 'etc/passwd'));
    assert.equal(readFileInRoot(root, '/hostpath/shadow'), undefined);
    assert.match(readFileInRoot(root, '/slash/etc/passwd') ?? '', /^root:/);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('a symlink loop is a 400, not a hang', () => {
  const { base, root } = tree();
  try {
    fs.symlinkSync('/b', path.join(root, 'a'));
    fs.symlinkSync('/a', path.join(root, 'b'));
    assert.throws(() => resolveInRoot(root, '/a/x'), (e: any) => e.kind === 'invalid-argument' && /too many levels/.test(e.message));
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('symlinks inside a volume and a bind mount resolve in the container, not on the host', () => {
  const { base, root, vol, bind, host } = tree();
  try {
    // What a container process can do in its own volume and bind mount.
    fs.symlinkSync('/', path.join(vol, 'vroot'));
    fs.symlinkSync('../../..', path.join(vol, 'vup'));
    fs.symlinkSync(host, path.join(vol, 'vhost'));
    fs.symlinkSync('/', path.join(bind, 'broot'));
    fs.symlinkSync('/data', path.join(bind, 'todata'));
    fs.writeFileSync(path.join(vol, 'inside'), 'volume file\n');
    const scope = scopeOf(root, [{ dest: '/data', source: vol }, { dest: '/mnt/b', source: bind }]);
    const r = (p: string, followFinal = true) => resolveInScope(scope, p, { followFinal });
    assert.deepEqual(r('/data/vroot/etc/shadow'), { host: path.join(root, 'etc/shadow'), path: '/etc/shadow' });
    assert.deepEqual(r('/data/vup/etc/passwd'), { host: path.join(root, 'etc/passwd'), path: '/etc/passwd' });
    assert.deepEqual(r('/data/vhost/shadow'), { host: path.join(root, host, 'shadow'), path: path.join(host, 'shadow') });
    assert.deepEqual(r('/mnt/b/broot/etc'), { host: path.join(root, 'etc'), path: '/etc' });
    assert.deepEqual(r('/mnt/b/todata/inside'), { host: path.join(vol, 'inside'), path: '/data/inside' });
    assert.deepEqual(r('/data/vroot', false), { host: path.join(vol, 'vroot'), path: '/data/vroot' });
    assert.deepEqual(r('/data/..'), { host: root, path: '/' });
    assert.deepEqual(r('/data'), { host: vol, path: '/data' });
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('a mount destination is resolved in the rootfs first, as runc mounts it', () => {
  const { base, root, vol } = tree();
  try {
    fs.mkdirSync(path.join(root, 'run'));
    fs.mkdirSync(path.join(root, 'var'));
    fs.symlinkSync('/run', path.join(root, 'var', 'run'));
    fs.writeFileSync(path.join(vol, 'sock'), '');
    const scope = scopeOf(root, [{ dest: '/var/run/x', source: vol }]);
    assert.equal(resolveInScope(scope, '/run/x/sock').host, path.join(vol, 'sock'));
    assert.equal(resolveInScope(scope, '/var/run/x/sock').host, path.join(vol, 'sock'));
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});
