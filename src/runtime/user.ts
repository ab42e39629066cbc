/**
 * Docker's `--user` resolution against the container's own /etc/passwd and
 * /etc/group (the same rules as moby/sys/user GetExecUser); the files are read
 * through the scoped resolver (common/scopedpath.ts), never following a symlink out.
 *
 * Usage:
 *   const u = resolveUser(rootfsPath, config.User ?? '', hostConfig.GroupAdd);
 *   // -> { uid, gid, additionalGids, home, name }
 */
import { invalidArgument } from '../common/errors';
import { readFileInRoot } from '../common/scopedpath';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups: from /etc/group membership (implicit form only) plus --group-add. */
  additionalGids: number[];
  home: string;
  /** Passwd name when the user matched an entry, '' otherwise. */
  name: string;
}

export interface PasswdEntry { name: string; uid: number; gid: number; home: string; shell: string }
export interface GroupEntry { name: string; gid: number; members: string[] }

const MAX_ID = 2147483647;

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (l === '' || l.startsWith('#')) continue;
    const f = l.split(':');
    const uid = Number.parseInt(f[2] ?? '', 10);
    const gid = Number.parseInt(f[3] ?? '', 10);
    out.push({ name: f[0] ?? '', uid: Number.isNaN(uid) ? 0 : uid, gid: Number.isNaN(gid) ? 0 : gid, home: f[5] ?? '', shell: f[6] ?? '' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (l === '' || l.startsWith('#')) continue;
    const f = l.split(':');
    const gid = Number.parseInt(f[2] ?? '', 10);
    out.push({ name: f[0] ?? '', gid: Number.isNaN(gid) ? 0 : gid, members: (f[3] ?? '').split(',').filter((m) => m !== '') });
  }
  return out;
}

function parseId(s: string): number | undefined {
  if (!/^[0-9]+$/.test(s)) return undefined;
  const n = Number(s);
  if (n > MAX_ID) throw invalidArgument(`uids and gids must be in range 0-${MAX_ID}`);
  return n;
}

/**
 * Resolves Docker's `-u` value (`name`, `uid`, `uid:gid`, `name:group`,
 * `uid:groupname`; '' means root) with the container's passwd/group files
 * given as text (undefined = file absent). Pure; see resolveUser.
 */
export function resolveUserFrom(spec: string, passwdText: string | undefined, groupText: string | undefined, groupAdd: readonly string[] = []): ResolvedUser {
  const [userArg0, groupArg = ''] = spec.split(/:(.*)/s, 2) as [string, string?];
  const userArg = userArg0 === '' ? '0' : userArg0; // '' and ':grp' mean root, as in moby
  const passwd = passwdText !== undefined ? parsePasswd(passwdText) : [];
  const groups = groupText !== undefined ? parseGroup(groupText) : [];

  const uidArg = parseId(userArg);
  const user: ResolvedUser = { uid: 0, gid: 0, additionalGids: [], home: '/', name: '' };
  const match = passwd.find((u) => u.name === userArg || (uidArg !== undefined && u.uid === uidArg));
  if (match) {
    Object.assign(user, { uid: match.uid, gid: match.gid, home: match.home || '/', name: match.name });
  } else if (uidArg !== undefined) {
    // Numeric and unknown: allowed, as with Docker (gid stays 0).
    user.uid = uidArg;
  } else {
    throw invalidArgument(`unable to find user ${userArg}: no matching entries in passwd file`);
  }

  if (groupArg !== '') {
    const gidArg = parseId(groupArg);
    const g = groups.find((e) => e.name === groupArg || (gidArg !== undefined && e.gid === gidArg));
    if (g) user.gid = g.gid;
    else if (gidArg !== undefined) user.gid = gidArg;
    else throw invalidArgument(`unable to find group ${groupArg}: no matching entries in group file`);
  } else if (user.name !== '') {
    // Supplementary groups only come with the implicit form (no explicit group).
    for (const g of groups) if (g.members.includes(user.name) && !user.additionalGids.includes(g.gid)) user.additionalGids.push(g.gid);
  }

  for (const ag of groupAdd) {
    const n = parseId(ag);
    const g = groups.find((e) => e.name === ag || (n !== undefined && e.gid === n));
    const gid = g ? g.gid : n;
    if (gid === undefined) throw invalidArgument(`Unable to find group ${ag}: no matching entries in group file`);
    if (!user.additionalGids.includes(gid)) user.additionalGids.push(gid);
  }
  return user;
}

/** resolveUserFrom with /etc/passwd and /etc/group read safely from the rootfs. */
export function resolveUser(rootfsPath: string, spec: string, groupAdd: readonly string[] = []): ResolvedUser {
  return resolveUserFrom(spec, readFileInRoot(rootfsPath, '/etc/passwd'), readFileInRoot(rootfsPath, '/etc/group'), groupAdd);
}
