/**
 * OCI runtime-spec types (1.0.2, as runc 1.1.5 reads config.json) and the part
 * of the Engine API HostConfig the spec builder reads.
 */
import type { OciSeccomp } from './seccomp';

/** The parts of the Engine API HostConfig this module reads (swagger: HostConfig). */
export interface DockerHostConfig {
  Binds?: string[] | null;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  Privileged?: boolean;
  Memory?: number;
  MemorySwap?: number;
  MemoryReservation?: number;
  MemorySwappiness?: number | null;
  NanoCpus?: number;
  CpuShares?: number;
  CpuQuota?: number;
  CpuPeriod?: number;
  CpusetCpus?: string;
  CpusetMems?: string;
  BlkioWeight?: number;
  PidsLimit?: number | null;
  Ulimits?: Array<{ Name: string; Soft: number; Hard: number }> | null;
  NetworkMode?: string;
  Init?: boolean | null;
  ReadonlyRootfs?: boolean;
  Sysctls?: Record<string, string> | null;
  ShmSize?: number;
  Devices?: Array<{ PathOnHost: string; PathInContainer?: string; CgroupPermissions?: string }> | null;
  DeviceCgroupRules?: string[] | null;
  SecurityOpt?: string[] | null;
  OomKillDisable?: boolean | null;
  OomScoreAdj?: number;
  IpcMode?: string;
  PidMode?: string;
  UTSMode?: string;
  /** 'private' | 'host' (the daemon fills it in at create). */
  CgroupnsMode?: string;
  Tmpfs?: Record<string, string> | null;
  GroupAdd?: string[] | null;
  [k: string]: unknown;
}

export interface OciMount { destination: string; type?: string; source?: string; options?: string[] }

export interface OciRlimit { type: string; hard: number | bigint; soft: number | bigint }

export interface OciDevice { path: string; type: 'c' | 'b' | 'u' | 'p'; major: number; minor: number; fileMode?: number; uid?: number; gid?: number }

export interface OciDeviceCgroup { allow: boolean; type?: 'a' | 'c' | 'b'; major?: number; minor?: number; access?: string }

export interface OciNamespace { type: 'pid' | 'network' | 'mount' | 'ipc' | 'uts' | 'user' | 'cgroup'; path?: string }

export interface OciResources {
  devices?: OciDeviceCgroup[];
  memory?: { limit?: number; reservation?: number; swap?: number; swappiness?: number; disableOOMKiller?: boolean };
  cpu?: { shares?: number; quota?: number; period?: number; cpus?: string; mems?: string };
  pids?: { limit: number };
  blockIO?: { weight?: number };
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    consoleSize?: { height: number; width: number };
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[]; inheritable: string[]; ambient?: string[] };
    rlimits: OciRlimit[];
    noNewPrivileges: boolean;
    oomScoreAdj: number;
    apparmorProfile?: string;
  };
  root: { path: string; readonly: boolean };
  hostname?: string;
  domainname?: string;
  mounts: OciMount[];
  linux: {
    namespaces: OciNamespace[];
    resources: OciResources;
    cgroupsPath: string;
    devices: OciDevice[];
    maskedPaths: string[];
    readonlyPaths: string[];
    sysctl?: Record<string, string>;
    seccomp?: OciSeccomp;
  };
  annotations?: Record<string, string>;
}
