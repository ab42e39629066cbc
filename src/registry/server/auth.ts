/**
 * Access control of the registry server:
 *  - htpasswd: HTTP basic auth against bcrypt entries (the only kind distribution accepts).
 *  - token: Docker's token flow. Clients get a 401 with a Bearer challenge naming the realm,
 *    service and scope, fetch a token there and retry. The server issues the tokens itself at
 *    /token (basic auth against htpasswd when given, anonymous otherwise): HS256 JWTs signed with
 *    a key kept in the registry root, with the granted actions as distribution's `access` claim.
 * A verified password is remembered (by its SHA-256) so bcrypt runs once per credential, not per request.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import bcrypt from 'bcryptjs';

export interface Access { type: string; name: string; actions: string[] }

export class Htpasswd {
  private readonly entries = new Map<string, string>();
  private readonly verified = new Set<string>();

  constructor(file: string) {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const t = line.trim();
      if (!t || t.startsWith('#')) continue;
      const i = t.indexOf(':');
      if (i <= 0) continue;
      const hash = t.slice(i + 1);
      if (!/^\$2[aby]\$/.test(hash)) throw new Error(`htpasswd ${file}: entry for ${t.slice(0, i)} is not bcrypt (use htpasswd -B)`);
      this.entries.set(t.slice(0, i), hash);
    }
  }

  async check(user: string, password: string): Promise<boolean> {
    const hash = this.entries.get(user);
    if (!hash) return false;
    const key = createHash('sha256').update(`${user}\0${password}\0${hash}`).digest('hex');
    if (this.verified.has(key)) return true;
    const ok = await bcrypt.compare(password, hash);
    if (ok) this.verified.add(key);
    return ok;
  }
}

/** Basic credentials of an Authorization header, if any. */
export function basicCredentials(header: string | undefined): { user: string; password: string } | undefined {
  const m = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!m) return undefined;
  const s = Buffer.from(m[1], 'base64').toString('utf8');
  const i = s.indexOf(':');
  if (i < 0) return undefined;
  return { user: s.slice(0, i), password: s.slice(i + 1) };
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

export class TokenIssuer {
  private readonly key: Buffer;

  constructor(readonly realm: string, readonly service: string, keyFile: string) {
    if (!fs.existsSync(keyFile)) {
      fs.mkdirSync(path.dirname(keyFile), { recursive: true });
      fs.writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    }
    this.key = Buffer.from(fs.readFileSync(keyFile, 'utf8').trim(), 'hex');
  }

  challenge(scope: string | undefined, error?: string): string {
    let h = `Bearer realm="${this.realm}",service="${this.service}"`;
    if (scope) h += `,scope="${scope}"`;
    if (error) h += `,error="${error}"`;
    return h;
  }

  issue(subject: string, access: Access[], ttlSeconds = 300): { token: string; expires_in: number; issued_at: string } {
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const claims = b64url(JSON.stringify({ iss: 'berth-registry', sub: subject, aud: this.service, iat: now, nbf: now - 1, exp: now + ttlSeconds, jti: randomBytes(8).toString('hex'), access }));
    const sig = b64url(createHmac('sha256', this.key).update(`${header}.${claims}`).digest());
    return { token: `${header}.${claims}.${sig}`, expires_in: ttlSeconds, issued_at: new Date(now * 1000).toISOString() };
  }

  /** The access a valid, unexpired token grants; undefined when it is not one of ours. */
  verify(token: string): Access[] | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const want = createHmac('sha256', this.key).update(`${parts[0]}.${parts[1]}`).digest();
    const got = Buffer.from(parts[2], 'base64url');
    if (got.length !== want.length || !timingSafeEqual(got, want)) return undefined;
    try {
      const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
      const now = Date.now() / 1000;
      if (typeof claims.exp !== 'number' || claims.exp < now || claims.aud !== this.service) return undefined;
      return Array.isArray(claims.access) ? claims.access : [];
    } catch {
      return undefined;
    }
  }
}

/** Parses `repository:team/app:pull,push` scopes (space separated, several allowed). */
export function parseScopes(scopes: string[]): Access[] {
  const out: Access[] = [];
  for (const s of scopes.flatMap((x) => x.split(' ')).filter(Boolean)) {
    const first = s.indexOf(':');
    const last = s.lastIndexOf(':');
    if (first < 0 || last === first) continue;
    out.push({ type: s.slice(0, first), name: s.slice(first + 1, last), actions: s.slice(last + 1).split(',').filter(Boolean) });
  }
  return out;
}

export function allows(granted: Access[], type: string, name: string, action: string): boolean {
  return granted.some((a) => a.type === type && a.name === name && (a.actions.includes(action) || a.actions.includes('*')));
}
