/**
 * Docker image references, parsed and normalised the way
 * github.com/distribution/reference does it (ParseNormalizedNamed,
 * FamiliarString, TagNameOnly), including its error wording.
 *
 *   busybox                      -> docker.io/library/busybox:latest
 *   localhost:5000/team/tools:1  -> localhost:5000/team/tools:1
 *   name@sha256:<hex>            -> docker.io/library/name@sha256:<hex>
 */
import { invalidArgument } from './errors';

export interface Reference {
  /** Registry host (with port), e.g. `docker.io`, `localhost:5000`. */
  domain: string;
  /** Repository path below the domain, e.g. `library/busybox`. */
  path: string;
  tag?: string;
  digest?: string;
}

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
const OFFICIAL_REPO_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';
const NAME_TOTAL_LENGTH_MAX = 255;

// The grammar of distribution/reference/regexp.go.
const alphanumeric = '[a-z0-9]+';
const separator = '(?:[._]|__|[-]+)';
const pathComponent = `${alphanumeric}(?:${separator}${alphanumeric})*`;
const domainNameComponent = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const ipv6address = '\\[(?:[a-fA-F0-9:]+)\\]';
const domainName = `${domainNameComponent}(?:\\.${domainNameComponent})*`;
const host = `(?:${domainName}|${ipv6address})`;
const domainAndPort = `${host}(?::[0-9]+)?`;
const tagPat = '[\\w][\\w.-]{0,127}';
const digestPat = '[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}';
const remoteName = `${pathComponent}(?:/${pathComponent})*`;
const namePat = `(?:${domainAndPort}/)?${remoteName}`;
const REFERENCE_RE = new RegExp(`^(${namePat})(?::(${tagPat}))?(?:@(${digestPat}))?$`);
const ANCHORED_NAME_RE = new RegExp(`^(?:(${domainAndPort})/)?(${remoteName})$`);
const TAG_RE = new RegExp(`^${tagPat}$`);
const DIGEST_RE = new RegExp(`^${digestPat}$`);
const IDENTIFIER_RE = /^[a-f0-9]{64}$/;

/** Error with the wording of distribution/reference. */
function refError(msg: string) {
  return invalidArgument(msg);
}

/** `[\w][\w.-]{0,127}` */
export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function isValidDigest(d: string): boolean {
  return DIGEST_RE.test(d);
}

/** 64 lowercase hex characters: a full image id without `sha256:`. */
export function isFullIdentifier(s: string): boolean {
  return IDENTIFIER_RE.test(s);
}

/** splitDockerDomain of distribution/reference/normalize.go. */
function splitDockerDomain(name: string): [string, string] {
  const i = name.indexOf('/');
  let domain: string;
  let remainder: string;
  if (i === -1 || (!/[.:]/.test(name.slice(0, i)) && name.slice(0, i) !== 'localhost' && name.slice(0, i).toLowerCase() === name.slice(0, i))) {
    domain = DEFAULT_DOMAIN;
    remainder = name;
  } else {
    domain = name.slice(0, i);
    remainder = name.slice(i + 1);
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return [domain, remainder];
}

/** reference.Parse: a full (already normalised) reference string. */
function parseStrict(s: string): Reference {
  const m = REFERENCE_RE.exec(s);
  if (!m) {
    if (s === '') throw refError('invalid reference format: repository name must have at least one component');
    if (REFERENCE_RE.test(s.toLowerCase())) throw refError('invalid reference format: repository name must be lowercase');
    throw refError('invalid reference format');
  }
  const name = m[1];
  if (name.length > NAME_TOTAL_LENGTH_MAX) throw refError('invalid reference format: repository name must not be more than 255 characters');
  const nm = ANCHORED_NAME_RE.exec(name);
  if (!nm) throw refError('invalid reference format');
  const ref: Reference = { domain: nm[1] ?? '', path: nm[2] };
  if (m[2] !== undefined) ref.tag = m[2];
  if (m[3] !== undefined) {
    const [alg, hex] = m[3].split(':');
    if (alg === 'sha256' && hex.length !== 64) throw refError('invalid reference format');
    ref.digest = m[3];
  }
  return ref;
}

/**
 * ParseNormalizedNamed: accepts the familiar form (`busybox`, `user/app:1`)
 * and returns the fully qualified reference. Does not add `latest`.
 */
export function parseReference(s: string): Reference {
  if (IDENTIFIER_RE.test(s)) {
    throw refError(`invalid repository name (${s}), cannot specify 64-byte hexadecimal strings`);
  }
  const [domain, remainder] = splitDockerDomain(s);
  const tagSep = remainder.indexOf(':');
  const remote = tagSep > -1 ? remainder.slice(0, tagSep) : remainder;
  if (remote.toLowerCase() !== remote) {
    throw refError(`invalid reference format: repository name (${remote}) must be lowercase`);
  }
  return parseStrict(`${domain}/${remainder}`);
}

/** TagNameOnly: adds `latest` when there is neither tag nor digest. */
export function withDefaultTag(ref: Reference): Reference {
  if (ref.tag === undefined && ref.digest === undefined) return { ...ref, tag: DEFAULT_TAG };
  return ref;
}

/** `domain/path` */
export function repositoryName(ref: Reference): string {
  return `${ref.domain}/${ref.path}`;
}

export function referenceString(ref: Reference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** Full normalised string with `:latest` added when untagged: `docker.io/library/busybox:latest`. */
export function normalizeName(s: string): string {
  return referenceString(withDefaultTag(parseReference(s)));
}

/** Familiar repository name: `busybox`, `user/app`, `localhost:5000/team/tools`. */
export function familiarName(ref: Reference): string {
  if (ref.domain === DEFAULT_DOMAIN) {
    if (ref.path.startsWith(OFFICIAL_REPO_PREFIX) && ref.path.indexOf('/', OFFICIAL_REPO_PREFIX.length) === -1) {
      return ref.path.slice(OFFICIAL_REPO_PREFIX.length);
    }
    return ref.path;
  }
  return repositoryName(ref);
}

/** FamiliarString of a reference (string or parsed): `busybox:latest`, `localhost:5000/team/tools:1.0`. */
export function familiarString(full: string | Reference): string {
  const ref = typeof full === 'string' ? parseReference(full) : full;
  let s = familiarName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/**
 * Parses `repo` + optional `tag` as the API's tag/commit/import endpoints
 * receive them (`?repo=x&tag=y`), validating the tag with Docker's wording.
 */
export function parseRepoAndTag(repo: string, tag?: string): Reference {
  const ref = parseReference(repo);
  if (tag) {
    if (ref.tag !== undefined || ref.digest !== undefined) throw refError('invalid reference format');
    if (!isValidTag(tag)) throw refError(`invalid tag format`);
    ref.tag = tag;
  }
  return withDefaultTag(ref);
}
