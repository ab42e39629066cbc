/**
 * Base images without a registry (`POST /berth/bootstrap?image=NAME`):
 *   busybox[:tag]   rootfs from the host's static /bin/busybox, one hardlink per applet
 *   debian:<suite>  `debootstrap --variant=minbase <suite>` from the host's apt mirror
 * Each becomes a one-layer image through the image service.
 */
import * as fsp from 'node:fs/promises';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { invalidArgument, BerthError } from '../common/errors';
import { familiarString, parseReference, withDefaultTag, referenceString } from '../common/reference';
import type { ImageRecord, ImageService, OciImageConfig } from '../engine/types';
import { createLayerTar } from '../store/layer';

const execFileP = promisify(execFile);

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Fixed mtime so that re-bootstrapping the same busybox gives the same diffID. */
const FIXED_MTIME = new Date('2000-01-01T00:00:00Z');
const HOST_BUSYBOX = '/bin/busybox';

export type StatusFn = (status: string) => void;

function goArch(): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[process.arch] ?? process.arch;
}

const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`;

const GROUP = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`;

/** Builds the busybox rootfs in `root` (an empty directory). */
export async function buildBusyboxRootfs(root: string, status: StatusFn): Promise<void> {
  try {
    await fsp.access(HOST_BUSYBOX, fs.constants.X_OK);
  } catch {
    throw new BerthError('unavailable', `${HOST_BUSYBOX} not found: install the busybox-static package`);
  }
  const { stdout } = await execFileP(HOST_BUSYBOX, ['--list-full'], { maxBuffer: 1 << 20 });
  const applets = stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  status(`Creating rootfs from ${HOST_BUSYBOX} (${applets.length} applets)`);
  for (const d of ['bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'etc', 'root', 'home', 'var', 'var/spool', 'var/spool/mail', 'var/www', 'proc', 'sys', 'dev', 'tmp']) {
    await fsp.mkdir(path.join(root, d), { mode: 0o755 });
  }
  await fsp.chmod(path.join(root, 'tmp'), 0o1777);
  await fsp.chmod(path.join(root, 'root'), 0o700);
  const bb = path.join(root, 'bin', 'busybox');
  await fsp.copyFile(HOST_BUSYBOX, bb);
  await fsp.chmod(bb, 0o755);
  for (const a of applets) {
    const rel = path.posix.normalize(a);
    if (rel.startsWith('..') || path.isAbsolute(rel) || rel === 'bin/busybox') continue;
    const p = path.join(root, rel);
    await fsp.mkdir(path.dirname(p), { recursive: true, mode: 0o755 });
    await fsp.rm(p, { force: true });
    await fsp.link(bb, p);
  }
  // /bin/sh must exist even if the host's busybox lists it elsewhere.
  for (const must of ['bin/sh', 'bin/ls']) {
    if (!fs.existsSync(path.join(root, must))) await fsp.link(bb, path.join(root, must));
  }
  await fsp.writeFile(path.join(root, 'etc', 'passwd'), PASSWD, { mode: 0o644 });
  await fsp.writeFile(path.join(root, 'etc', 'group'), GROUP, { mode: 0o644 });
  await fsp.writeFile(path.join(root, 'etc', 'shadow'), 'root:*:10933:0:99999:7:::\nnobody:*:10933:0:99999:7:::\n', { mode: 0o640 });
}

/** apt mirror of the host: first `deb` URI of /etc/apt/sources.list(.d) that is not a security mirror. */
export async function hostDebianMirror(): Promise<string> {
  const candidates: string[] = [];
  const readIf = async (f: string) => fsp.readFile(f, 'utf8').catch(() => '');
  const oneLine = (text: string) => {
    for (const line of text.split('\n')) {
      const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
      if (m) candidates.push(`${m[1]} ${m[2]}`);
    }
  };
  const deb822 = (text: string) => {
    for (const para of text.split(/\n\s*\n/)) {
      const fields: Record<string, string> = {};
      for (const line of para.split('\n')) {
        if (line.startsWith('#')) continue;
        const m = /^([A-Za-z-]+):\s*(.*)$/.exec(line);
        if (m) fields[m[1].toLowerCase()] = m[2].trim();
      }
      if (fields.enabled === 'no') continue;
      if (!(fields.types ?? '').split(/\s+/).includes('deb')) continue;
      for (const uri of (fields.uris ?? '').split(/\s+/).filter(Boolean)) {
        for (const suite of (fields.suites ?? '').split(/\s+/).filter(Boolean)) candidates.push(`${uri} ${suite}`);
      }
    }
  };
  oneLine(await readIf('/etc/apt/sources.list'));
  const dir = '/etc/apt/sources.list.d';
  const names = (await fsp.readdir(dir).catch(() => [] as string[])).sort();
  for (const n of names) {
    if (n.endsWith('.list')) oneLine(await readIf(path.join(dir, n)));
    else if (n.endsWith('.sources')) deb822(await readIf(path.join(dir, n)));
  }
  for (const c of candidates) {
    const [uri, suite] = c.split(' ');
    if (/security/.test(uri) || /-(security|updates|backports)$/.test(suite)) continue;
    if (!/\/debian\/?$/.test(uri) && !/debian/.test(uri)) continue;
    return uri;
  }
  throw new BerthError('unavailable', 'no Debian mirror found in /etc/apt/sources.list or /etc/apt/sources.list.d');
}

/** Runs debootstrap, streaming its output lines as status. */
async function runDebootstrap(suite: string, root: string, mirror: string, status: StatusFn): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn('debootstrap', ['--variant=minbase', suite, root, mirror], { stdio: ['ignore', 'pipe', 'pipe'] });
    let tail: string[] = [];
    const onData = (buf: Buffer) => {
      for (const line of buf.toString('utf8').split('\n')) {
        const l = line.trim();
        if (!l) continue;
        tail.push(l);
        if (tail.length > 20) tail = tail.slice(-20);
        status(l);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (err) => reject(new BerthError('unavailable', `debootstrap: ${err.message}`)));
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new BerthError('internal', `debootstrap ${suite} failed (exit ${code}): ${tail.slice(-3).join(' | ')}`));
    });
  });
}

/**
 * Bootstraps `name` and tags it. Status lines go to `status` while it runs.
 * The temp rootfs lives under <dataRoot>/tmp and is removed in all cases.
 */
export async function bootstrapImage(images: ImageService, dataRoot: string, name: string, status: StatusFn): Promise<{ image: ImageRecord; tag: string }> {
  if (!name) throw invalidArgument('image name is required (busybox or debian:<suite>)');
  const ref = withDefaultTag(parseReference(name));
  if (ref.digest) throw invalidArgument('bootstrap does not take a digest');
  const repo = familiarString({ ...ref, tag: undefined });
  const full = referenceString(ref);
  const tag = familiarString(full);
  if (repo !== 'busybox' && repo !== 'debian') {
    throw invalidArgument(`cannot bootstrap ${name}: only busybox and debian:<suite> can be bootstrapped`);
  }
  if (repo === 'debian' && (ref.tag === 'latest' || !ref.tag)) {
    throw invalidArgument('specify a Debian suite, e.g. debian:bookworm');
  }
  const tmpBase = path.join(dataRoot, 'tmp');
  await fsp.mkdir(tmpBase, { recursive: true, mode: 0o700 });
  const work = path.join(tmpBase, `bootstrap-${randomBytes(6).toString('hex')}`);
  const root = path.join(work, 'rootfs');
  await fsp.mkdir(root, { recursive: true, mode: 0o755 });
  try {
    const created = new Date().toISOString();
    let config: Omit<OciImageConfig, 'rootfs'>;
    let excludeContents: string[] = [];
    let mtime: Date | undefined;
    if (repo === 'busybox') {
      await buildBusyboxRootfs(root, status);
      mtime = FIXED_MTIME;
      config = {
        architecture: goArch(),
        os: 'linux',
        created,
        config: { Env: [DEFAULT_PATH], Cmd: ['sh'] },
        history: [{ created, created_by: `berth bootstrap ${tag} (from host ${HOST_BUSYBOX})` }],
      };
    } else {
      const mirror = await hostDebianMirror();
      status(`Running debootstrap --variant=minbase ${ref.tag} from ${mirror}`);
      await runDebootstrap(ref.tag!, root, mirror, status);
      // apt caches and debootstrap leftovers do not belong in an image.
      await fsp.rm(path.join(root, 'var', 'cache', 'apt', 'archives'), { recursive: true, force: true }).catch(() => undefined);
      await fsp.mkdir(path.join(root, 'var', 'cache', 'apt', 'archives', 'partial'), { recursive: true });
      // Package lists are re-fetched by `apt-get update`; Debian's own images ship without them.
      const lists = path.join(root, 'var', 'lib', 'apt', 'lists');
      for (const n of await fsp.readdir(lists).catch(() => [] as string[])) {
        if (n !== 'partial' && n !== 'lock') await fsp.rm(path.join(lists, n), { recursive: true, force: true });
      }
      excludeContents = ['proc', 'sys', 'dev', 'run', 'tmp'];
      config = {
        architecture: goArch(),
        os: 'linux',
        created,
        config: { Env: [DEFAULT_PATH], Cmd: ['bash'] },
        history: [{ created, created_by: `berth bootstrap ${tag} (debootstrap --variant=minbase ${ref.tag} ${mirror})` }],
      };
    }
    status('Creating layer');
    const image = await images.createImageFromLayers({
      layers: [{ open: async () => createLayerTar(root, { mtime, excludeContents }) }],
      config,
      tags: [full],
      eventAction: 'import',
      onProgress: (p) => status(`${p.id ? p.id + ': ' : ''}${p.status}`),
    });
    return { image, tag };
  } finally {
    await removeTree(work);
  }
}

/**
 * rm -rf that first unmounts anything below `dir` (debootstrap mounts /proc
 * and /sys in the target and may leave them mounted when it fails).
 */
export async function removeTree(dir: string): Promise<void> {
  const info = await fsp.readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  const mounts = info.split('\n').map((l) => l.split(' ')[4]).filter((m): m is string => !!m)
    .map((m) => m.replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === dir || m.startsWith(dir + '/'))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) await execFileP('umount', ['-l', m]).catch(() => undefined);
  await fsp.rm(dir, { recursive: true, force: true });
}
