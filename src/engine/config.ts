/** Daemon settings (DaemonConfig): what berthd's flags and daemon.json say, and the defaults. */
import * as path from 'node:path';

/**
 * Daemon settings: flags of berthd and keys of daemon.json (default /etc/berth/daemon.json),
 * parsed and validated by src/daemon/daemon-config.ts. Field names follow dockerd's Go config
 * struct (daemon/config), the daemon.json key is given on each field.
 *
 * SIGHUP reloads some fields IN PLACE on this one object (marked "reloadable"): read them
 * where they are used, do not copy them at start-up.
 */
export interface DaemonConfig {
  /** `data-root` (old name `graph`): persistent state: content, snapshots, metadata, containers, volumes. */
  dataRoot: string;
  /** `exec-root`: re-creatable runtime state: socket, bundles, runc root, conmon sockets. */
  execRoot: string;
  /** `hosts`: API endpoints, Docker style: `unix:///path` or `tcp://host:port`. */
  hosts: string[];
  /**
   * `group`: group owning the unix sockets (mode 0660). The default `berth` group is used when it
   * exists (root:root otherwise, as dockerd with its default `docker`); a group named explicitly
   * must exist. `''` = root only.
   */
  group: string;
  /** Path of the runc binary. */
  runtime: string;
  /** Path of the conmon binary. */
  conmon: string;
  /** Default network mode for containers that name none: `bridge`, as Docker. */
  defaultNetwork: string;
  /** `cgroup-parent`: parent cgroup of every container that names none; tests use their own. */
  cgroupParent: string;
  /**
   * Cgroup namespace of containers that ask for none (dockerd's --default-cgroupns-mode).
   * `private`, as Docker on cgroup v2 hosts: the container sees its own cgroup as the root,
   * and on this cgroup v1 host it also spares runc a dozen bind mounts per start.
   */
  defaultCgroupnsMode: 'private' | 'host';
  /** `debug` (reloadable): debug logging, info's Debug Mode. Implies log level `debug`. */
  debug: boolean;
  /** `log-level` (reloadable): the daemon's own log level. */
  logLevel: LogLevel;
  /** `labels` (reloadable): `key=value` labels of this engine, shown by info. */
  labels: string[];
  /** `storage-driver`: only `overlay2` exists in Berth. */
  storageDriver: 'overlay2';
  /** `dns`: resolvers given to containers (and used by the embedded DNS for outside names); IP addresses. */
  dns: string[];
  /** `dns-search`: search domains given to containers. */
  dnsSearch: string[];
  /** `dns-opts`: resolv.conf options given to containers. */
  dnsOptions: string[];
  /** `default-address-pools`: where networks without a subnet take theirs (empty = Berth's built-in pools). */
  defaultAddressPools: AddressPool[];
  /** `bip`: address/prefix of the default bridge (`''` = chosen by Berth). */
  bip: string;
  /** `log-driver` + `log-opts`: default logging driver of containers (`LogConfig` in dockerd). */
  logConfig: { type: string; config: Record<string, string> };
  /** `insecure-registries` (reloadable): as given (hostnames[:port] and CIDRs); 127.0.0.0/8 is always insecure. */
  insecureRegistries: string[];
  /** `registry-mirrors` (reloadable): mirrors of docker.io, normalised URLs with a trailing `/`. */
  registryMirrors: string[];
  /** `max-concurrent-downloads` (reloadable): layers fetched at once per pull (default 3). */
  maxConcurrentDownloads: number;
  /** `max-concurrent-uploads` (reloadable): layers pushed at once per push (default 5). */
  maxConcurrentUploads: number;
  /** `experimental`: info's Experimental; Berth has no experimental-only API. */
  experimental: boolean;
  /** `default-ulimits`: rlimits of containers that do not set that ulimit themselves (Docker API shape). */
  defaultUlimits: Ulimit[];
  /** `live-restore`: accepted; Berth always keeps containers running across daemon restarts (conmon). */
  liveRestore: boolean;
  /**
   * `proxies` (`http-proxy`, `https-proxy`, `no-proxy`), else the daemon's HTTP_PROXY/HTTPS_PROXY/NO_PROXY
   * environment (either case). Used for registry traffic and remote build contexts (see proxyForUrl in engine/proxy.ts),
   * shown by info, never given to containers.
   */
  proxies: Proxies;
  /** dockerd's --ip-forward / `ip-forward`: set net.ipv4.ip_forward when a bridge with outbound NAT is made. */
  ipForward: boolean;
  /** What one client may hold (daemon.json `"api-limits"`; see parseApiLimits). */
  limits: ApiLimits;
}

/**
 * Limits that keep one client from pinning the daemon's memory, disk,
 * descriptors or a container's lock. daemon.json block `"api-limits"`, e.g.
 * `{"api-limits": {"header-timeout": 10, "json-body-bytes": 4194304}}`.
 */
export interface ApiLimits {
  /** Seconds a client may take to send a request's line and headers (`header-timeout`; 0: no limit). */
  headerTimeoutSec: number;
  /** Largest JSON request body, in bytes (`json-body-bytes`). */
  jsonBodyBytes: number;
  /** Largest upload spooled to disk: cp archives, image loads and imports (`upload-body-bytes`; 0: no limit but the disk reserve). */
  uploadBodyBytes: number;
  /** Free space an upload must leave on the data root's filesystem (`min-free-disk-bytes`). */
  minFreeDiskBytes: number;
  /** Seconds a streamed archive (cp, export, save) waits for a client that reads nothing before it is cut (`stream-stall-timeout`; 0: never). */
  streamStallSec: number;
}

export function defaultApiLimits(): ApiLimits {
  return {
    headerTimeoutSec: 30,
    jsonBodyBytes: 4 << 20,
    uploadBodyBytes: 0,
    minFreeDiskBytes: 256 << 20,
    streamStallSec: 60,
  };
}

const LIMIT_KEYS: Record<string, keyof ApiLimits> = {
  'header-timeout': 'headerTimeoutSec',
  'json-body-bytes': 'jsonBodyBytes',
  'upload-body-bytes': 'uploadBodyBytes',
  'min-free-disk-bytes': 'minFreeDiskBytes',
  'stream-stall-timeout': 'streamStallSec',
};

/** The daemon.json `"api-limits"` block over the defaults; unknown keys and bad values are refused. */
export function parseApiLimits(block: unknown): ApiLimits {
  const out = defaultApiLimits();
  if (block === undefined) return out;
  if (block === null || typeof block !== 'object' || Array.isArray(block)) throw new Error('"api-limits" must be an object');
  for (const [k, v] of Object.entries(block as Record<string, unknown>)) {
    const field = LIMIT_KEYS[k];
    if (!field) throw new Error(`"api-limits": unknown key ${JSON.stringify(k)} (known: ${Object.keys(LIMIT_KEYS).join(', ')})`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new Error(`"api-limits"."${k}" must be a number >= 0`);
    out[field] = v;
  }
  return out;
}

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'panic';
export const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'panic'];

/** An entry of `default-address-pools`: networks of prefix length `size` are cut from `base`. */
export interface AddressPool {
  base: string;
  size: number;
}

/** A container rlimit as the Engine API writes it (HostConfig.Ulimits). */
export interface Ulimit {
  Name: string;
  Soft: number;
  Hard: number;
}

export interface Proxies {
  httpProxy: string;
  httpsProxy: string;
  noProxy: string;
}

/** Logging drivers a container can name (log-driver is checked against these at start-up). */
export const LOG_DRIVERS: readonly string[] = ['json-file', 'local', 'none'];

export const DEFAULT_SOCKET = '/run/berth/berth.sock';
export const DEFAULT_CONFIG_FILE = '/etc/berth/daemon.json';
/** The group whose members may use the socket (created by scripts/setup.sh), as Docker's `docker`. */
export const DEFAULT_SOCKET_GROUP = 'berth';

export function defaultConfig(): DaemonConfig {
  return {
    dataRoot: '/var/lib/berth',
    execRoot: '/run/berth',
    hosts: [],
    group: DEFAULT_SOCKET_GROUP,
    runtime: 'runc',
    conmon: 'conmon',
    defaultNetwork: 'bridge',
    cgroupParent: '/berth',
    defaultCgroupnsMode: 'private',
    debug: false,
    logLevel: 'info',
    labels: [],
    storageDriver: 'overlay2',
    dns: [],
    dnsSearch: [],
    dnsOptions: [],
    defaultAddressPools: [],
    bip: '',
    logConfig: { type: 'json-file', config: {} },
    insecureRegistries: [],
    registryMirrors: [],
    maxConcurrentDownloads: 3,
    maxConcurrentUploads: 5,
    experimental: false,
    defaultUlimits: [],
    liveRestore: false,
    proxies: { httpProxy: '', httpsProxy: '', noProxy: '' },
    limits: defaultApiLimits(),
    ipForward: true,
  };
}

export function socketPathOf(cfg: DaemonConfig): string {
  const unix = cfg.hosts.find((h) => h.startsWith('unix://'));
  if (unix) return unix.slice('unix://'.length);
  return path.join(cfg.execRoot, 'berth.sock');
}
