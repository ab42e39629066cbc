/**
 * A minimal busybox root filesystem tar built from the host's static busybox,
 * for `import` tests and for seeding a real dockerd without any registry.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';

/** A busybox root filesystem directory (every applet, passwd/group) at `root`. */
export function busyboxRootfsDir(root: string, extraFiles: Record<string, string> = {}): string {
  for (const dir of ['bin', 'etc', 'tmp', 'root', 'proc', 'sys', 'dev']) fs.mkdirSync(path.join(root, dir), { recursive: true });
  fs.chmodSync(path.join(root, 'tmp'), 0o1777);
  fs.copyFileSync('/bin/busybox', path.join(root, 'bin/busybox'));
  fs.chmodSync(path.join(root, 'bin/busybox'), 0o755);
  const list = spawnSync('/bin/busybox', ['--list'], { encoding: 'utf8' });
  for (const applet of list.stdout.split('\n').filter(Boolean)) {
    if (applet === 'busybox') continue;
    fs.symlinkSync('busybox', path.join(root, 'bin', applet));
  }
  fs.writeFileSync(path.join(root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n');
  fs.writeFileSync(path.join(root, 'etc/group'), 'root:x:0:\nnogroup:x:65534:nobody\n');
  for (const [rel, content] of Object.entries(extraFiles)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), content);
  }
  return root;
}

export function busyboxRootfsTar(workDir: string, extraFiles: Record<string, string> = {}): string {
  const root = busyboxRootfsDir(fs.mkdtempSync(path.join(workDir, 'rootfs-')), extraFiles);
  const tar = `${root}.tar`;
  const r = spawnSync('tar', ['-C', root, '--numeric-owner', '-cf', tar, '.']);
  if (r.status !== 0) throw new Error(`tar: ${r.stderr}`);
  fs.rmSync(root, { recursive: true, force: true });
  return tar;
}
