/**
 * Access control of the registry server:
 *  - htpasswd: HTTP basic auth against bcrypt entries (the only kind distribution accepts).
 *  - token: Docker's token flow. Clients get a 401 with a Bearer challenge naming the realm,
 *    service and scope, fetch a token there and retry. Either the server issues the tokens itself
 *    at /token (TokenIssuer: basic auth against htpasswd when given, anonymous otherwise; HS256
 *    JWTs signed with a key kept in the registry root, with the granted actions as distribution's
 *    `access` claim), or an outside token server does and the registry only verifies them against
 *    a root certificate bundle (TokenVerifier), as distribution's `auth: token:` does.
 * A verified password is remembered (by its SHA-256) so bcrypt runs once per credential, not per request.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { constants, createHash, createHmac, createPublicKey, randomBytes, timingSafeEqual, verify as verifySig, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
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

/** What a token must grant for an action: distribution asks pull and push of every upload and manifest put. */
export function requiredActions(action: string): string[] {
  return action === 'push' ? ['pull', 'push'] : [action];
}

function bearerChallenge(realm: string, service: string, scope: string | undefined, error: string | undefined): string {
  let h = `Bearer realm="${realm}",service="${service}"`;
  if (scope) h += `,scope="${scope}"`;
  if (error) h += `,error="${error}"`;
  return h;
}

export class TokenIssuer {
  private readonly key: Buffer;
  /** A valid token without the access asked for: 403 DENIED (RFC 6750's insufficient_scope status). */
  readonly insufficientScope = 'DENIED';

  constructor(readonly realm: string, readonly service: string, keyFile: string, readonly issuer = 'berth-registry') {
    if (!fs.existsSync(keyFile)) {
      fs.mkdirSync(path.dirname(keyFile), { recursive: true });
      fs.writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    }
    this.key = Buffer.from(fs.readFileSync(keyFile, 'utf8').trim(), 'hex');
  }

  challenge(scope: string | undefined, error?: string): string {
    return bearerChallenge(this.realm, this.service, scope, error);
  }

  issue(subject: string, access: Access[], ttlSeconds = 300): { token: string; expires_in: number; issued_at: string } {
    const now = Math.floor(Date.now() / 1000);
    const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
    const claims = b64url(JSON.stringify({ iss: this.issuer, sub: subject, aud: this.service, iat: now, nbf: now - 1, exp: now + ttlSeconds, jti: randomBytes(8).toString('hex'), access }));
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

/** Clock skew allowed on `exp` and `nbf`: distribution's 60 seconds. */
const LEEWAY_SECONDS = 60;
/** Longest x5c chain followed (leaf + intermediates); real ones have 1 to 3. */
const MAX_CHAIN = 8;
/** Verified tokens remembered (signature and chain checks skipped; the claims are checked every time). */
const VERIFIED_CACHE_SIZE = 1024;

/** JWS algorithms of a public key that Node's crypto verifies (RFC 7518 section 3, and EdDSA of RFC 8037). */
const SIGNATURE_ALGORITHMS: Record<string, { hash: string | null; keyTypes: string[]; curve?: string; pss?: boolean }> = {
  RS256: { hash: 'sha256', keyTypes: ['rsa'] },
  RS384: { hash: 'sha384', keyTypes: ['rsa'] },
  RS512: { hash: 'sha512', keyTypes: ['rsa'] },
  PS256: { hash: 'sha256', keyTypes: ['rsa', 'rsa-pss'], pss: true },
  PS384: { hash: 'sha384', keyTypes: ['rsa', 'rsa-pss'], pss: true },
  PS512: { hash: 'sha512', keyTypes: ['rsa', 'rsa-pss'], pss: true },
  ES256: { hash: 'sha256', keyTypes: ['ec'], curve: 'prime256v1' },
  ES384: { hash: 'sha384', keyTypes: ['ec'], curve: 'secp384r1' },
  ES512: { hash: 'sha512', keyTypes: ['ec'], curve: 'secp521r1' },
  EdDSA: { hash: null, keyTypes: ['ed25519', 'ed448'] },
};

/** Whether `signature` is `alg`'s signature of `data` by `key`; unknown algorithms and mismatched keys are not. */
export function verifyJwsSignature(alg: unknown, key: KeyObject, data: Buffer, signature: Buffer): boolean {
  const a = typeof alg === 'string' && Object.hasOwn(SIGNATURE_ALGORITHMS, alg) ? SIGNATURE_ALGORITHMS[alg] : undefined;
  if (!a || !key.asymmetricKeyType || !a.keyTypes.includes(key.asymmetricKeyType)) return false;
  if (a.curve && key.asymmetricKeyDetails?.namedCurve !== a.curve) return false;
  try {
    if (a.pss) {
      const saltLength = { sha256: 32, sha384: 48, sha512: 64 }[a.hash as 'sha256'];
      return verifySig(a.hash, data, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength }, signature);
    }
    if (a.curve) return verifySig(a.hash, data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    if (a.hash === null) return verifySig(null, data, key, signature);
    return verifySig(a.hash, data, { key, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
}

/**
 * libtrust's key ID (what distribution 2.x matches a token's `kid` against): SHA-256 of the DER
 * SubjectPublicKeyInfo, its first 240 bits in base32 without padding, in 12 groups of 4 joined by ':'.
 */
export function libtrustKeyID(key: KeyObject): string {
  const sum = createHash('sha256').update(key.export({ type: 'spki', format: 'der' })).digest().subarray(0, 30);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const byte of sum) bits += byte.toString(2).padStart(8, '0');
  let b32 = '';
  for (let i = 0; i < bits.length; i += 5) b32 += alphabet[parseInt(bits.slice(i, i + 5), 2)];
  return b32.match(/.{4}/g)!.join(':');
}

/** RFC 7638 JWK thumbprint (SHA-256, base64url): the `kid` distribution 3.x derives for a root certificate's key. */
export function jwkThumbprint(key: KeyObject): string | undefined {
  let j: JsonWebKey;
  try { j = key.export({ format: 'jwk' }); } catch { return undefined; }
  // The required members only, in lexicographic order, no whitespace (RFC 7638 section 3.2).
  const members = j.kty === 'RSA' ? { e: j.e, kty: j.kty, n: j.n }
    : j.kty === 'EC' ? { crv: j.crv, kty: j.kty, x: j.x, y: j.y }
      : j.kty === 'OKP' ? { crv: j.crv, kty: j.kty, x: j.x } : undefined;
  return members && createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

const spki = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });
const sameKey = (a: KeyObject, b: KeyObject) => spki(a).equals(spki(b));
const isObject = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);
const B64URL_RE = /^[A-Za-z0-9_-]*$/;

/**
 * Verifies tokens of an outside token server, as distribution's token access controller does:
 * the signing key is the leaf of the header's `x5c` chain, verified up to a certificate of the root
 * bundle; else the header's `jwk` (with its own `x5c` chain, or one of the bundle's keys); else the
 * bundle key whose ID is the header's `kid` (libtrust's format, as distribution 2.x computes it, or
 * the RFC 7638 thumbprint of distribution 3.x). Then `iss` must be the issuer, `aud` name the
 * service, now lie within `nbf`..`exp` (60 s leeway), and the signature verify. The server never
 * issues tokens in this mode.
 */
export class TokenVerifier {
  /** A valid token without the access asked for: 401 with error="insufficient_scope", as distribution answers. */
  readonly insufficientScope = 'UNAUTHORIZED';
  private readonly roots: X509Certificate[];
  private readonly trustedKeys = new Map<string, KeyObject>();
  private readonly verified = new Map<string, { exp: number; nbf: number; access: Access[] }>();

  constructor(readonly realm: string, readonly service: string, readonly issuer: string, rootCertBundle: string) {
    const pem = fs.readFileSync(rootCertBundle, 'utf8');
    this.roots = (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((block) => {
      try { return new X509Certificate(block); } catch (e) { throw new Error(`token root certificate bundle ${rootCertBundle}: ${(e as Error).message}`); }
    });
    if (!this.roots.length) throw new Error(`token root certificate bundle ${rootCertBundle}: no certificate in it`);
    for (const cert of this.roots) {
      const key = cert.publicKey;
      this.trustedKeys.set(libtrustKeyID(key), key);
      const thumbprint = jwkThumbprint(key);
      if (thumbprint) this.trustedKeys.set(thumbprint, key);
    }
  }

  challenge(scope: string | undefined, error?: string): string {
    return bearerChallenge(this.realm, this.service, scope, error);
  }

  /** The access a valid token grants; undefined when it is malformed, untrusted, expired or not for this service. */
  verify(token: string): Access[] | undefined {
    const cached = this.verified.get(token);
    if (cached) return this.current(cached.exp, cached.nbf) ? cached.access : undefined;
    const parts = token.split('.');
    if (parts.length !== 3 || !parts.every((p) => B64URL_RE.test(p))) return undefined;
    let header: unknown;
    let claims: unknown;
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    } catch {
      return undefined;
    }
    if (!isObject(header) || !isObject(claims)) return undefined;
    if (claims.iss !== this.issuer) return undefined;
    const audience = typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
    if (!audience.includes(this.service)) return undefined;
    // A missing exp is the epoch to distribution (long expired); a missing nbf is the epoch too (no limit).
    const exp = typeof claims.exp === 'number' ? claims.exp : 0;
    const nbf = claims.nbf === undefined ? 0 : typeof claims.nbf === 'number' ? claims.nbf : Infinity;
    if (!this.current(exp, nbf)) return undefined;
    const signature = Buffer.from(parts[2], 'base64url');
    if (!signature.length) return undefined;
    const key = this.signingKey(header);
    if (!key || !verifyJwsSignature(header.alg, key, Buffer.from(`${parts[0]}.${parts[1]}`), signature)) return undefined;
    const access = grantedAccess(claims.access);
    if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value as string);
    this.verified.set(token, { exp, nbf, access });
    return access;
  }

  private current(exp: number, nbf: number): boolean {
    const now = Date.now() / 1000;
    return now <= exp + LEEWAY_SECONDS && now >= nbf - LEEWAY_SECONDS;
  }

  /** The key that signed the token, if the header names one the bundle vouches for. */
  private signingKey(header: Record<string, any>): KeyObject | undefined {
    if (Array.isArray(header.x5c) && header.x5c.length) return this.verifyChain(header.x5c);
    if (header.jwk !== undefined) {
      if (!isObject(header.jwk)) return undefined;
      let key: KeyObject;
      try { key = createPublicKey({ key: header.jwk as JsonWebKey, format: 'jwk' }); } catch { return undefined; }
      if (Array.isArray(header.jwk.x5c)) {
        const leaf = this.verifyChain(header.jwk.x5c);
        return leaf && sameKey(leaf, key) ? key : undefined;
      }
      return [...this.trustedKeys.values()].some((k) => sameKey(k, key)) ? key : undefined;
    }
    if (typeof header.kid === 'string' && header.kid) return this.trustedKeys.get(header.kid);
    return undefined;
  }

  /**
   * The leaf's key when the chain (leaf first, base64 DER as RFC 7515's x5c) leads to a bundle
   * certificate: each link issued and signed by the next (intermediates must be CAs), every
   * certificate within its validity period. A leaf that is itself in the bundle is trusted.
   */
  private verifyChain(x5c: unknown[]): KeyObject | undefined {
    if (x5c.length > MAX_CHAIN || !x5c.every((c) => typeof c === 'string' && c.length > 0)) return undefined;
    let chain: X509Certificate[];
    try { chain = (x5c as string[]).map((c) => new X509Certificate(Buffer.from(c, 'base64'))); } catch { return undefined; }
    const now = Date.now();
    const inValidity = (c: X509Certificate) => Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
    const issued = (child: X509Certificate, parent: X509Certificate) => child.checkIssued(parent) && child.verify(parent.publicKey);
    const [leaf, ...intermediates] = chain;
    let cert = leaf;
    for (let depth = 0; depth <= intermediates.length; depth++) {
      if (!inValidity(cert)) return undefined;
      if (this.roots.some((r) => r.raw.equals(cert.raw))) return leaf.publicKey;
      const root = this.roots.find((r) => issued(cert, r));
      if (root) return inValidity(root) ? leaf.publicKey : undefined;
      const next = intermediates.find((i) => i !== cert && i.ca && issued(cert, i));
      if (!next) return undefined;
      cert = next;
    }
    return undefined;
  }
}

/** The `access` claim, entries of the wrong shape left out. */
function grantedAccess(claim: unknown): Access[] {
  if (!Array.isArray(claim)) return [];
  return claim.filter(isObject).filter((a) => typeof a.type === 'string' && typeof a.name === 'string' && Array.isArray(a.actions))
    .map((a) => ({ type: a.type, name: a.name, actions: a.actions.filter((x: unknown): x is string => typeof x === 'string') }));
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
