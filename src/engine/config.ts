import * as path from 'node:path';

/** Daemon settings: flags of berthd, or keys of daemon.json (`--config-file`). */
export interface DaemonConfig {
  /** Persistent state: content, snapshots, metadata, containers, volumes. */
  dataRoot: string;
  /** Re-creatable runtime state: socket, bundles, runc root, conmon sockets. */
  execRoot: string;
  /** API endpoints, Docker style: `unix:///path` or `tcp://host:port`. */
  hosts: string[];
  /** Path of the runc binary. */
  runtime: string;
  /** Path of the conmon binary. */
  conmon: string;
  /** Default network mode for containers that name none (`none` until bridges land). */
  defaultNetwork: string;
  /** Parent cgroup of every container (dockerd's --cgroup-parent); tests use their own. */
  cgroupParent: string;
  /**
   * Cgroup namespace of containers that ask for none (dockerd's --default-cgroupns-mode).
   * `private`, as Docker on cgroup v2 hosts: the container sees its own cgroup as the root,
   * and on this cgroup v1 host it also spares runc a dozen bind mounts per start.
   */
  defaultCgroupnsMode: 'private' | 'host';
  debug: boolean;
}

export const DEFAULT_SOCKET = '/run/berth/berth.sock';

export function defaultConfig(): DaemonConfig {
  return {
    dataRoot: '/var/lib/berth',
    execRoot: '/run/berth',
    hosts: [],
    runtime: 'runc',
    conmon: 'conmon',
    defaultNetwork: 'none',
    cgroupParent: '/berth',
    defaultCgroupnsMode: 'private',
    debug: false,
  };
}

export function socketPathOf(cfg: DaemonConfig): string {
  const unix = cfg.hosts.find((h) => h.startsWith('unix://'));
  if (unix) return unix.slice('unix://'.length);
  return path.join(cfg.execRoot, 'berth.sock');
}
