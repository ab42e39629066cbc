/**
 * berthd's configuration as dockerd's: flags plus daemon.json (default /etc/berth/daemon.json),
 * with dockerd's key names, its refusals (unknown keys, a key both as a flag and in the file)
 * and the checks it makes before touching anything. Every problem is one ConfigError line.
 *
 * Over 500 lines on purpose: one typed parser per dockerd key, the flag table and the reload
 * rules read the same key list, and keeping them together is what makes a key impossible to
 * add in one place and forget in another.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Command, Option } from 'commander';
import {
  DEFAULT_CONFIG_FILE, DEFAULT_SOCKET_GROUP, LOG_DRIVERS, LOG_LEVELS, defaultConfig, parseApiLimits, socketPathOf,
  type AddressPool, type DaemonConfig, type LogLevel, type Ulimit,
} from '../engine/config';
import { jsonErrorOffset } from './json-position';
import { proxiesFromEnv, validProxyUrl, maskCredentials } from '../engine/proxy';

/** A configuration berthd refuses: the message is the whole story, printed on one line. */
export class ConfigError extends Error {}

/** The JSON value of one setting, from the file or converted from its flag. */
type Raw = unknown;

/** Everything a start (or a SIGHUP reload) needs to build a DaemonConfig again. */
export interface ConfigSource {
  configFile: string;
  /** --config-file was given: a missing file is then an error, as with dockerd. */
  configFileExplicit: boolean;
  /** Settings given as flags, by daemon.json key, already in JSON shape. */
  flags: Map<string, Raw>;
  /** berthd-only flags without a daemon.json key. */
  runtime?: string;
  conmon?: string;
  env: NodeJS.ProcessEnv;
  /** --validate: check the configuration and exit (dockerd's flag). */
  validate?: boolean;
}

/** Keys dockerd knows that Berth does not implement: refused by name rather than silently ignored. */
const DOCKERD_ONLY_KEYS = new Set([
  'allow-direct-routing', 'allow-nondistributable-artifacts', 'api-cors-header', 'authorization-plugins', 'bridge',
  'bridge-accept-fwmark', 'builder', 'cdi-spec-dirs', 'cluster-advertise', 'cluster-store', 'cluster-store-opts',
  'containerd', 'containerd-namespace', 'containerd-plugin-namespace', 'cpu-rt-period', 'cpu-rt-runtime', 'cri-containerd',
  'default-gateway', 'default-gateway-v6', 'default-ipc-mode', 'default-network-opts', 'default-runtime', 'default-shm-size',
  'exec-opts', 'features', 'firewall-backend', 'fixed-cidr', 'fixed-cidr-v6', 'host-gateway-ip', 'host-gateway-ips', 'icc',
  'init', 'init-path', 'ip', 'ip-forward-no-drop', 'ip-masq', 'ip6tables', 'iptables', 'ipv6', 'log-format',
  'max-download-attempts', 'metrics-addr', 'mtu', 'network-control-plane-mtu', 'network-diagnostic-port',
  'no-new-privileges', 'node-generic-resources', 'oom-score-adjust', 'pidfile', 'raw-logs', 'rootless', 'runtimes',
  'seccomp-profile', 'selinux-enabled', 'shutdown-timeout', 'storage-opts', 'swarm-default-advertise-addr',
  'swarm-raft-election-tick', 'swarm-raft-heartbeat-tick', 'tls', 'tlscacert', 'tlscert', 'tlskey', 'tlsverify',
  'userland-proxy', 'userland-proxy-path', 'userns-remap',
]);

/** daemon.json maps that are values, not groups of keys (dockerd's flatOptions). */
const FLAT_OBJECTS = new Set(['api-limits', 'log-opts', 'default-ulimits', 'features', 'builder', 'runtimes', 'default-network-opts', 'cluster-store-opts']);

/** Keys a SIGHUP applies (those dockerd reloads that Berth has), with their DaemonConfig field. */
const RELOADABLE: ReadonlyArray<[string, keyof DaemonConfig]> = [
  ['debug', 'debug'], ['log-level', 'logLevel'], ['labels', 'labels'], ['insecure-registries', 'insecureRegistries'],
  ['registry-mirrors', 'registryMirrors'], ['max-concurrent-downloads', 'maxConcurrentDownloads'],
  ['max-concurrent-uploads', 'maxConcurrentUploads'], ['live-restore', 'liveRestore'],
];

type Setter = (cfg: DaemonConfig, value: Raw, key: string) => void;

const ULIMIT_NAMES = new Set(['as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc',
  'rss', 'rtprio', 'rttime', 'sigpending', 'stack']);

// --- type checks -------------------------------------------------------------------------

function typeName(v: Raw): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'number') return `a number (${v})`;
  if (typeof v === 'string') return `a string (${JSON.stringify(v)})`;
  return `${typeof v === 'boolean' ? 'a boolean' : typeof v} (${String(v)})`;
}

function wrongType(key: string, want: string, v: Raw): ConfigError {
  return new ConfigError(`invalid type for "${key}": expected ${want}, got ${typeName(v)}`);
}

function bool(key: string, v: Raw): boolean {
  if (typeof v !== 'boolean') throw wrongType(key, 'a boolean', v);
  return v;
}

function str(key: string, v: Raw): string {
  if (typeof v !== 'string') throw wrongType(key, 'a string', v);
  return v;
}

function strList(key: string, v: Raw): string[] {
  if (!Array.isArray(v) || v.some((e) => typeof e !== 'string')) throw wrongType(key, 'an array of strings', v);
  return v as string[];
}

function int(key: string, v: Raw): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw wrongType(key, 'an integer', v);
  return v;
}

function object(key: string, v: Raw): Record<string, Raw> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw wrongType(key, 'an object', v);
  return v as Record<string, Raw>;
}

function absPath(key: string, v: Raw): string {
  const p = str(key, v);
  if (!p) throw new ConfigError(`"${key}" must not be empty`);
  return path.resolve(p);
}

// --- value checks (dockerd's wording where it has one) ---------------------------------------

export function validateLabel(label: string): string {
  const eq = label.indexOf('=');
  if (eq <= 0) throw new ConfigError(`bad attribute format: ${label}`);
  if (/\s/.test(label.slice(0, eq))) throw new ConfigError(`label '${label}' contains whitespaces`);
  return label;
}

/** Labels with one value per key (dockerd's GetConflictFreeLabels). */
function conflictFreeLabels(labels: string[]): string[] {
  const seen = new Map<string, string>();
  for (const l of labels) {
    const key = l.slice(0, l.indexOf('='));
    const val = l.slice(l.indexOf('=') + 1);
    const prev = seen.get(key);
    if (prev !== undefined && prev !== val) throw new ConfigError(`conflict labels for ${key}=${val} and ${key}=${prev}`);
    seen.set(key, val);
  }
  return [...seen].map(([k, v]) => `${k}=${v}`);
}

function validateIp(ip: string): string {
  if (!net.isIP(ip)) throw new ConfigError(`IP address is not correctly formatted: ${ip}`);
  return ip;
}

function validateDnsSearch(domain: string): string {
  if (domain === '.') return domain;
  const d = domain.replace(/\.$/, '');
  if (d.length > 255 || !/^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/.test(d)) {
    throw new ConfigError(`${domain} is not a valid domain`);
  }
  return domain;
}

/** `a.b.c.d/n` or an IPv6 prefix; returns [address, prefix length, family]. */
function parseCidr(key: string, value: string): [string, number, 4 | 6] {
  const [addr, bits, extra] = value.split('/');
  const family = net.isIP(addr ?? '');
  const n = Number(bits);
  if (extra !== undefined || !family || !/^\d+$/.test(bits ?? '') || n > (family === 4 ? 32 : 128)) {
    throw new ConfigError(`invalid ${key}: ${value} is not a valid CIDR (address/prefix-length)`);
  }
  return [addr, n, family as 4 | 6];
}

function addressPools(key: string, v: Raw): AddressPool[] {
  if (!Array.isArray(v)) throw wrongType(key, 'an array of {"base": CIDR, "size": prefix length}', v);
  return v.map((entry) => {
    const o = object(key, entry);
    for (const k of Object.keys(o)) {
      if (k !== 'base' && k !== 'size') throw new ConfigError(`invalid field key: ${k} in "${key}" (use base and size)`);
    }
    const base = str(`${key}.base`, o.base);
    const size = int(`${key}.size`, o.size);
    const [, bits, family] = parseCidr(key, base);
    if (size < bits || size > (family === 4 ? 32 : 128)) {
      throw new ConfigError(`invalid ${key}: size ${size} must be between the prefix length of ${base} and ${family === 4 ? 32 : 128}`);
    }
    return { base, size };
  });
}

/** A registry mirror as dockerd's ValidateMirror accepts and normalises it. */
export function validateMirror(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new ConfigError(`invalid mirror: "${value}" is not a valid URI`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`invalid mirror: unsupported scheme "${u.protocol.slice(0, -1)}" in "${value}"`);
  if (u.username || u.password) throw new ConfigError(`invalid mirror: username/password not allowed in URI "${value}"`);
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) {
    throw new ConfigError(`invalid mirror: path, query, or fragment at end of the URI "${value}"`);
  }
  return `${u.protocol}//${u.host}/`;
}

/** An insecure registry: a CIDR, or host[:port] (a scheme is stripped, as dockerd does). */
export function validateInsecureRegistry(value: string): string {
  const v = value.replace(/^https?:\/\//, '');
  if (v.includes('://')) throw new ConfigError(`insecure registry ${value} should not contain '://'`);
  if (v.includes('/')) {
    parseCidr('insecure-registries', v);
    return v;
  }
  if (!/^(\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?)(:\d{1,5})?$/.test(v)) {
    throw new ConfigError(`invalid insecure registry ${value}: not a hostname[:port] or CIDR`);
  }
  return v;
}

function validateHost(h: string): string {
  if (h.startsWith('unix://')) {
    if (!h.slice(7).startsWith('/')) throw new ConfigError(`invalid bind address (${h}): the unix socket path must be absolute`);
    return h;
  }
  if (h.startsWith('tcp://')) {
    let u: URL;
    try {
      u = new URL(h.replace(/^tcp:/, 'http:'));
    } catch {
      throw new ConfigError(`invalid bind address (${h})`);
    }
    if (u.pathname !== '/' && u.pathname !== '') throw new ConfigError(`invalid bind address (${h}): should not contain a path element`);
    return h;
  }
  // fd:// (every socket systemd passed) or fd://N: socket activation by berth.socket.
  if (/^fd:\/\/(\d+)?$/.test(h)) return h;
  throw new ConfigError(`invalid bind address (${h}): berthd listens on unix:///path, tcp://host:port or fd://`);
}

function ulimitsOf(key: string, v: Raw): Ulimit[] {
  const o = object(key, v);
  return Object.entries(o).map(([name, entry]) => {
    const e = object(`${key}.${name}`, entry);
    const lname = (typeof e.Name === 'string' && e.Name ? e.Name : name).toLowerCase();
    if (!ULIMIT_NAMES.has(lname)) throw new ConfigError(`invalid ulimit type: ${name}`);
    const soft = int(`${key}.${name}.Soft`, e.Soft);
    const hard = int(`${key}.${name}.Hard`, e.Hard);
    if (soft > hard) throw new ConfigError(`ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
    return { Name: lname, Soft: soft, Hard: hard };
  });
}

function concurrency(key: string, v: Raw, what: string): number {
  const n = int(key, v);
  if (n < 1) throw new ConfigError(`invalid max concurrent ${what}: ${n}`);
  return n;
}

/** One setter per daemon.json key Berth has: checks the JSON value and sets the typed field. */
const SETTERS: Record<string, Setter> = {
  'data-root': (c, v, k) => { c.dataRoot = absPath(k, v); },
  graph: (c, v, k) => { c.dataRoot = absPath(k, v); },
  'exec-root': (c, v, k) => { c.execRoot = absPath(k, v); },
  hosts: (c, v, k) => { c.hosts = strList(k, v).map(validateHost); },
  group: (c, v, k) => { c.group = str(k, v); },
  debug: (c, v, k) => { c.debug = bool(k, v); },
  'log-level': (c, v, k) => {
    const level = str(k, v).toLowerCase();
    if (!(LOG_LEVELS as readonly string[]).includes(level)) throw new ConfigError(`invalid logging level: ${String(v)}`);
    c.logLevel = level as LogLevel;
  },
  labels: (c, v, k) => { c.labels = conflictFreeLabels(strList(k, v).map(validateLabel)); },
  'storage-driver': (c, v, k) => {
    const driver = str(k, v);
    if (driver !== 'overlay2') {
      throw new ConfigError(`storage-driver "${driver}" is not supported: Berth stores images and containers with overlay2 only`);
    }
  },
  dns: (c, v, k) => { c.dns = strList(k, v).map(validateIp); },
  'dns-search': (c, v, k) => { c.dnsSearch = strList(k, v).map(validateDnsSearch); },
  'dns-opts': (c, v, k) => { c.dnsOptions = strList(k, v); },
  'default-address-pools': (c, v, k) => { c.defaultAddressPools = addressPools(k, v); },
  bip: (c, v, k) => {
    const bip = str(k, v);
    if (bip) {
      const [, , family] = parseCidr(k, bip);
      if (family !== 4) throw new ConfigError(`invalid bip: ${bip} is not an IPv4 address/prefix-length`);
    }
    c.bip = bip;
  },
  'log-driver': (c, v, k) => {
    const driver = str(k, v);
    if (!LOG_DRIVERS.includes(driver)) throw new ConfigError(`logger: no log driver named '${driver}' is registered`);
    c.logConfig = { ...c.logConfig, type: driver };
  },
  'log-opts': (c, v, k) => {
    const o = object(k, v);
    for (const [name, val] of Object.entries(o)) if (typeof val !== 'string') throw wrongType(`${k}.${name}`, 'a string', val);
    c.logConfig = { ...c.logConfig, config: { ...(o as Record<string, string>) } };
  },
  'insecure-registries': (c, v, k) => { c.insecureRegistries = strList(k, v).map(validateInsecureRegistry); },
  'registry-mirrors': (c, v, k) => { c.registryMirrors = strList(k, v).map(validateMirror); },
  'max-concurrent-downloads': (c, v, k) => { c.maxConcurrentDownloads = concurrency(k, v, 'downloads'); },
  'max-concurrent-uploads': (c, v, k) => { c.maxConcurrentUploads = concurrency(k, v, 'uploads'); },
  experimental: (c, v, k) => { c.experimental = bool(k, v); },
  'ip-forward': (c, v, k) => { c.ipForward = bool(k, v); },
  'cgroup-parent': (c, v, k) => {
    const p = str(k, v);
    if (!p) throw new ConfigError(`"${k}" must not be empty`);
    c.cgroupParent = p.startsWith('/') ? p : `/${p}`;
  },
  'default-cgroupns-mode': (c, v, k) => {
    const mode = str(k, v);
    if (mode !== 'private' && mode !== 'host') throw new ConfigError(`invalid default cgroup namespace (${mode}): use "host" or "private"`);
    c.defaultCgroupnsMode = mode;
  },
  'default-ulimits': (c, v, k) => { c.defaultUlimits = ulimitsOf(k, v); },
  'live-restore': (c, v, k) => { c.liveRestore = bool(k, v); },
  'http-proxy': (c, v, k) => { c.proxies.httpProxy = proxyUrl(k, v); },
  'https-proxy': (c, v, k) => { c.proxies.httpsProxy = proxyUrl(k, v); },
  'no-proxy': (c, v, k) => { c.proxies.noProxy = str(k, v); },
  // Berth's own block (not dockerd's): what one API client may hold; see ApiLimits in engine/config.ts.
  'api-limits': (c, v) => {
    try { c.limits = parseApiLimits(v); } catch (err) { throw new ConfigError((err as Error).message); }
  },
};

function proxyUrl(key: string, v: Raw): string {
  const s = str(key, v);
  if (s && !validProxyUrl(s)) throw new ConfigError(`invalid ${key}: ${maskCredentials(s)} is not a proxy URL`);
  return s;
}

// --- the file ------------------------------------------------------------------------------

/** Line and column (1-based) of a character offset. */
function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return `line ${line}, column ${column}`;
}

/** daemon.json as an object of keys; a syntax error names its line and column. */
export function parseConfigText(text: string): Record<string, Raw> {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim() === '') return {};
  let parsed: Raw;
  try {
    parsed = JSON.parse(body);
  } catch {
    const { offset, expected } = jsonErrorOffset(body);
    const found = offset < body.length ? `found ${JSON.stringify(body[offset])}` : 'found the end of the file';
    throw new ConfigError(`invalid JSON at ${lineColumn(body, offset)}: expected ${expected}, ${found}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`the configuration must be a JSON object, got ${typeName(parsed)}`);
  }
  return parsed as Record<string, Raw>;
}

/** Keys of the file with nested groups (`proxies`) flattened, as dockerd's configValuesSet. */
export function flattenConfig(file: Record<string, Raw>): Map<string, Raw> {
  const out = new Map<string, Raw>();
  for (const [k, v] of Object.entries(file)) {
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && !FLAT_OBJECTS.has(k)) {
      for (const [k2, v2] of Object.entries(v)) out.set(k2, v2);
    } else out.set(k, v);
  }
  return out;
}

function formatValue(v: Raw): string {
  if (Array.isArray(v)) return `[${v.map(formatValue).join(' ')}]`;
  if (typeof v === 'object' && v !== null) return JSON.stringify(v);
  return String(v);
}

/** The refusals dockerd makes before reading values: unknown keys, then flag/file duplicates. */
export function checkDirectives(file: Map<string, Raw>, flags: Map<string, Raw>): void {
  const unknown = [...file.keys()].filter((k) => !(k in SETTERS) && !DOCKERD_ONLY_KEYS.has(k));
  if (unknown.length) throw new ConfigError(`the following directives don't match any configuration option: ${unknown.join(', ')}`);
  const unsupported = [...file.keys()].filter((k) => DOCKERD_ONLY_KEYS.has(k));
  if (unsupported.length) throw new ConfigError(`the following directives are not supported by berthd: ${unsupported.join(', ')}`);
  if (file.has('graph') && file.has('data-root')) {
    throw new ConfigError('"graph" and "data-root" both set: "graph" is the old name of "data-root", keep one');
  }
  const conflicts: string[] = [];
  for (const [key, flagValue] of flags) {
    const fileKey = key === 'data-root' && file.has('graph') ? 'graph' : key;
    if (!file.has(fileKey)) continue;
    let fromFlag = flagValue;
    let fromFile = file.get(fileKey);
    if (key === 'http-proxy' || key === 'https-proxy') {
      fromFlag = maskCredentials(String(fromFlag));
      fromFile = maskCredentials(String(fromFile));
    }
    conflicts.push(`${fileKey}: (from flag: ${formatValue(fromFlag)}, from file: ${formatValue(fromFile)})`);
  }
  if (conflicts.length) {
    throw new ConfigError(`the following directives are specified both as a flag and in the configuration file: ${conflicts.join(', ')}`);
  }
}

function readConfigFile(src: ConfigSource): Map<string, Raw> {
  let text: string;
  try {
    text = fs.readFileSync(src.configFile, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' && !src.configFileExplicit) return new Map();
    throw new ConfigError(`unable to configure the daemon with file ${src.configFile}: open ${src.configFile}: ${e.code === 'ENOENT' ? 'no such file or directory' : e.message}`);
  }
  try {
    const file = flattenConfig(parseConfigText(text));
    checkDirectives(file, src.flags);
    return file;
  } catch (err) {
    if (err instanceof ConfigError) throw new ConfigError(`unable to configure the daemon with file ${src.configFile}: ${err.message}`);
    throw err;
  }
}

/**
 * Builds the configuration from file + flags + environment, checking every value; throws
 * ConfigError. Touches nothing on the host (reads the file, looks the group up).
 */
export function loadConfig(src: ConfigSource): DaemonConfig {
  const file = readConfigFile(src);
  const cfg = defaultConfig();
  const apply = (settings: Map<string, Raw>, where: string) => {
    for (const [key, value] of settings) {
      try {
        SETTERS[key](cfg, value, key);
      } catch (err) {
        if (err instanceof ConfigError) throw new ConfigError(`${where}${err.message}`);
        throw err;
      }
    }
  };
  apply(file, `unable to configure the daemon with file ${src.configFile}: `);
  apply(src.flags, '');
  const env = proxiesFromEnv(src.env);
  // daemon.json and flags win over the environment, key by key, as with dockerd.
  if (!file.has('http-proxy') && !src.flags.has('http-proxy')) cfg.proxies.httpProxy = env.httpProxy;
  if (!file.has('https-proxy') && !src.flags.has('https-proxy')) cfg.proxies.httpsProxy = env.httpsProxy;
  if (!file.has('no-proxy') && !src.flags.has('no-proxy')) cfg.proxies.noProxy = env.noProxy;
  if (src.runtime) cfg.runtime = src.runtime;
  if (src.conmon) cfg.conmon = src.conmon;
  const groupExplicit = file.has('group') || src.flags.has('group');
  if (cfg.group && lookupGroup(cfg.group) === undefined) {
    if (groupExplicit) throw new ConfigError(`can't create unix socket ${socketPathOf(cfg)}: group ${cfg.group} not found`);
    cfg.group = ''; // the default group is optional: root-only socket, as dockerd without a docker group
  }
  checkStorageRoot(cfg.dataRoot);
  if (cfg.hosts.length === 0) cfg.hosts = [`unix://${socketPathOf(cfg)}`];
  return cfg;
}

/** gid of a group name (or numeric gid), through NSS as the C library sees it; undefined when absent. */
export function lookupGroup(name: string): number | undefined {
  if (/^\d+$/.test(name)) return Number(name);
  try {
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const [n, , gid] = line.split(':');
      if (n === name && gid !== undefined) return Number(gid);
    }
  } catch {
    // no /etc/group: ask NSS below
  }
  const r = spawnSync('getent', ['group', name], { encoding: 'utf8' });
  if (r.status === 0) {
    const gid = Number(r.stdout.split(':')[2]);
    if (Number.isInteger(gid)) return gid;
  }
  return undefined;
}

/** Filesystems overlayfs refuses as upper/work dirs (Docker's overlay2 refuses the same set). */
const OVERLAY_UNUSABLE: Record<number, string> = {
  0x794c7630: 'overlayfs', 0x61756673: 'aufs', 0xf15f: 'ecryptfs', 0x6969: 'nfs', 0x2fc12fc1: 'zfs',
};

/** The data root (or, before it exists, the directory it will be made in) must be usable by overlay2. */
export function checkStorageRoot(dataRoot: string): void {
  let p = dataRoot;
  while (!fs.existsSync(p) && path.dirname(p) !== p) p = path.dirname(p);
  let type: number;
  try {
    type = fs.statfsSync(p).type;
  } catch {
    return; // unreadable: mkdir will report it
  }
  const fsName = OVERLAY_UNUSABLE[type];
  if (fsName) {
    throw new ConfigError(`data-root ${dataRoot} is on ${fsName}, which overlay2 cannot use for its layers: choose a data root on ext4, xfs, btrfs or tmpfs`);
  }
}

// --- flags ---------------------------------------------------------------------------------

function collect(value: string, prev: string[]): string[] {
  return [...prev, value];
}

function keyValues(flag: string, list: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new ConfigError(`invalid argument "${kv}" for "--${flag}" flag: expected key=value`);
    out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

function flagInt(flag: string, v: string): number {
  if (!/^-?\d+$/.test(v)) throw new ConfigError(`invalid argument "${v}" for "--${flag}" flag: not an integer`);
  return Number(v);
}

/** `--default-ulimit nofile=1024:2048` -> daemon.json's {"nofile": {Name, Soft, Hard}}. */
function ulimitFlags(list: string[]): Record<string, Ulimit> {
  const out: Record<string, Ulimit> = {};
  for (const u of list) {
    const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(u);
    if (!m) throw new ConfigError(`invalid argument "${u}" for "--default-ulimit" flag: expected name=soft[:hard]`);
    out[m[1]] = { Name: m[1], Soft: Number(m[2]), Hard: Number(m[3] ?? m[2]) };
  }
  return out;
}

/** `--default-address-pool base=10.10.0.0/16,size=24` -> {base, size}. */
function poolFlags(list: string[]): Array<Record<string, Raw>> {
  return list.map((p) => {
    const o: Record<string, Raw> = {};
    for (const part of p.split(',')) {
      const [k, v] = part.split('=');
      o[k] = k === 'size' ? flagInt('default-address-pool', v ?? '') : v;
    }
    return o;
  });
}

/** Parses berthd's command line (dockerd's flag names) into a ConfigSource. */
export function parseFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): ConfigSource {
  const program = new Command('berthd')
    .description('Berth daemon: serves the Docker Engine API')
    .option('--data-root <dir>', 'root of persistent state (default /var/lib/berth)')
    .addOption(new Option('-g, --graph <dir>', 'old name of --data-root').hideHelp())
    .option('--exec-root <dir>', 'root of runtime state (default /run/berth)')
    .option('-H, --host <addr>', 'daemon socket to listen on (unix:///path or tcp://host:port), repeatable', collect, [])
    .option('-G, --group <group>', 'group owning the unix socket (default "berth" when it exists)')
    .option('--config-file <file>', 'daemon configuration file', DEFAULT_CONFIG_FILE)
    .option('--runtime <path>', 'OCI runtime binary')
    .option('--conmon <path>', 'conmon binary')
    .option('--cgroup-parent <path>', 'parent cgroup for all containers (default /berth)')
    .option('--default-cgroupns-mode <mode>', 'cgroup namespace of containers that name none: private (default) or host')
    .option('-D, --debug', 'enable debug mode')
    .option('-l, --log-level <level>', 'logging level (debug, info, warn, error, fatal)')
    .option('--label <key=value>', 'engine label, repeatable', collect, [])
    .option('-s, --storage-driver <driver>', 'storage driver (overlay2)')
    .option('--dns <ip>', 'DNS server for containers, repeatable', collect, [])
    .option('--dns-search <domain>', 'DNS search domain for containers, repeatable', collect, [])
    .option('--dns-opt <option>', 'DNS option for containers, repeatable', collect, [])
    .option('--default-address-pool <base=CIDR,size=N>', 'default address pool for networks, repeatable', collect, [])
    .option('--bip <cidr>', 'address and prefix of the default bridge')
    .option('--log-driver <driver>', 'default logging driver of containers (json-file)')
    .option('--log-opt <key=value>', 'default logging driver option, repeatable', collect, [])
    .option('--insecure-registry <registry>', 'insecure registry (host[:port] or CIDR), repeatable', collect, [])
    .option('--registry-mirror <url>', 'mirror of docker.io, repeatable', collect, [])
    .option('--max-concurrent-downloads <n>', 'layers fetched at once per pull (default 3)')
    .option('--max-concurrent-uploads <n>', 'layers pushed at once per push (default 5)')
    .option('--experimental', 'enable experimental features')
    .option('--ip-forward <bool>', 'set net.ipv4.ip_forward when a bridge with outbound NAT is made (default true)')
    .option('--default-ulimit <name=soft[:hard]>', 'default ulimit of containers, repeatable', collect, [])
    .option('--live-restore', 'keep containers running while the daemon is down (always so in Berth)')
    .option('--http-proxy <url>', 'HTTP proxy for registry traffic')
    .option('--https-proxy <url>', 'HTTPS proxy for registry traffic')
    .option('--no-proxy <hosts>', 'hosts reached without a proxy (comma list)')
    .option('--validate', 'validate the daemon configuration and exit')
    .allowExcessArguments(false);
  program.parse(argv);
  const o = program.opts();
  const given = (name: string) => program.getOptionValueSource(name) === 'cli';
  const flags = new Map<string, Raw>();
  const set = (key: string, opt: string, convert: (v: any) => Raw = (v) => v) => {
    if (given(opt)) flags.set(key, convert(o[opt]));
  };
  set('data-root', 'dataRoot');
  set('graph', 'graph');
  set('exec-root', 'execRoot');
  set('hosts', 'host');
  set('group', 'group');
  set('cgroup-parent', 'cgroupParent');
  set('default-cgroupns-mode', 'defaultCgroupnsMode');
  set('debug', 'debug');
  set('log-level', 'logLevel');
  set('labels', 'label');
  set('storage-driver', 'storageDriver');
  set('dns', 'dns');
  set('dns-search', 'dnsSearch');
  set('dns-opts', 'dnsOpt');
  set('default-address-pools', 'defaultAddressPool', poolFlags);
  set('bip', 'bip');
  set('log-driver', 'logDriver');
  set('log-opts', 'logOpt', (v: string[]) => keyValues('log-opt', v));
  set('insecure-registries', 'insecureRegistry');
  set('registry-mirrors', 'registryMirror');
  set('max-concurrent-downloads', 'maxConcurrentDownloads', (v: string) => flagInt('max-concurrent-downloads', v));
  set('max-concurrent-uploads', 'maxConcurrentUploads', (v: string) => flagInt('max-concurrent-uploads', v));
  set('experimental', 'experimental');
  set('ip-forward', 'ipForward', (v: string) => !['false', '0'].includes(String(v)));
  set('default-ulimits', 'defaultUlimit', ulimitFlags);
  set('live-restore', 'liveRestore');
  set('http-proxy', 'httpProxy');
  set('https-proxy', 'httpsProxy');
  set('no-proxy', 'noProxy');
  if (flags.has('graph')) {
    if (flags.has('data-root')) throw new ConfigError('--graph and --data-root both given: --graph is the old name of --data-root, keep one');
    flags.set('data-root', flags.get('graph'));
    flags.delete('graph');
  }
  return {
    configFile: path.resolve(o.configFile),
    configFileExplicit: given('configFile'),
    flags,
    runtime: o.runtime,
    conmon: o.conmon,
    env,
    validate: Boolean(o.validate),
  };
}

/** What a reload changed: key -> [old, new], for the log line. */
export function reloadableDiff(before: DaemonConfig, after: DaemonConfig): Array<[string, string, string]> {
  const show = (v: unknown) => (Array.isArray(v) ? `[${v.join(' ')}]` : String(v));
  return RELOADABLE.filter(([, f]) => show(before[f]) !== show(after[f])).map(([k, f]) => [k, show(before[f]), show(after[f])]);
}

/** Copies the reloadable fields of `next` onto the live config object (which every service holds). */
export function applyReload(live: DaemonConfig, next: DaemonConfig): void {
  Object.assign(live, Object.fromEntries(RELOADABLE.map(([, f]) => [f, next[f]])));
}

/** Non-reloadable settings whose value in the file differs from the running one (they need a restart). */
export function needsRestart(live: DaemonConfig, next: DaemonConfig): string[] {
  const json = (v: unknown) => JSON.stringify(v);
  const fields: Array<[string, keyof DaemonConfig]> = [
    ['data-root', 'dataRoot'], ['exec-root', 'execRoot'], ['hosts', 'hosts'], ['group', 'group'],
    ['dns', 'dns'], ['dns-search', 'dnsSearch'], ['dns-opts', 'dnsOptions'], ['default-address-pools', 'defaultAddressPools'],
    ['bip', 'bip'], ['log-driver/log-opts', 'logConfig'], ['experimental', 'experimental'], ['cgroup-parent', 'cgroupParent'],
    ['default-cgroupns-mode', 'defaultCgroupnsMode'], ['default-ulimits', 'defaultUlimits'], ['proxies', 'proxies'],
  ];
  return fields.filter(([, f]) => json(live[f]) !== json(next[f])).map(([k]) => k);
}

export { DEFAULT_SOCKET_GROUP };
