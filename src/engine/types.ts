/**
 * The contracts between the daemon's areas. Each area owns one service:
 *   images      -> src/image + src/store   (ImageService)
 *   containers  -> src/container + src/runtime (ContainerService)
 *   api         -> src/api (HTTP only; calls the services)
 * Shapes follow the Engine API swagger (../shared/specs/engine-api/swagger.yaml),
 * so the API layer mostly serialises what the services return.
 */
import type { Duplex, Readable, Writable } from 'node:stream';

/** OCI image config (application/vnd.oci.image.config.v1+json), as stored. */
export interface OciImageConfig {
  architecture: string;
  os: string;
  created?: string;
  author?: string;
  config?: ImageRunConfig;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: Array<{ created?: string; created_by?: string; author?: string; comment?: string; empty_layer?: boolean }>;
  [k: string]: unknown;
}

/** The `config` part of an image config (what `docker inspect` shows as Config). */
export interface ImageRunConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  OnBuild?: string[] | null;
  Healthcheck?: unknown;
  ArgsEscaped?: boolean;
  Shell?: string[];
}

/** One image as the image store knows it. `id` is `sha256:<config digest>`. */
export interface ImageRecord {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  config: OciImageConfig;
  /** Unpacked size in bytes (sum of layer sizes), as Docker reports it. */
  size: number;
  /** Parent image id for locally built/committed images, '' otherwise. */
  parent: string;
  created: string;
}

/** A mount in containerd's sense: what to mount, never mounted by the producer. */
export interface MountSpec {
  type: string;      // filesystem type: 'overlay'
  source: string;
  options: string[]; // e.g. ['lowerdir=a:b', 'upperdir=u', 'workdir=w']
}

export interface PreparedRootfs {
  mount: MountSpec;
  persisted: Promise<void>;
}

export interface ImageService {
  /** Resolves a reference, full/short id or id prefix. Throws not-found: `No such image: <ref>`. */
  resolve(ref: string): Promise<ImageRecord>;
  list(): Promise<ImageRecord[]>;
  /**
   * Creates the writable rootfs of a container: a snapshot whose parent is
   * the image's top layer. Resolves with the mount to use (it does not mount) as soon
   * as the directories exist; `persisted` settles once the snapshot is durably recorded,
   * which the caller awaits before recording anything that refers to it.
   */
  prepareContainerRootfs(containerId: string, imageId: string): Promise<PreparedRootfs>;
  /** Returns the mount of an existing container snapshot. */
  containerRootfsMount(containerId: string): Promise<MountSpec>;
  /** Directory holding the container's writable layer (overlay upperdir). */
  containerUpperDir(containerId: string): string;
  /**
   * Removes the container's writable layer. Idempotent. With `after`, the removal is
   * registered at once (image removal waits for it) and done once `after` settles.
   */
  removeContainerRootfs(containerId: string, after?: Promise<unknown>): Promise<void>;
  /** Images in use by containers can not be removed without force; the container service tells which. */
  setUsageProbe(probe: (imageId: string) => Promise<string[]>): void;
}

/** Options of attach, as the API query carries them. */
export interface AttachOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  stream: boolean;
  logs: boolean;
  detachKeys?: string;
}

export interface LogsOptions {
  follow: boolean;
  stdout: boolean;
  stderr: boolean;
  timestamps: boolean;
  tail: number | 'all';
  since?: number; // unix seconds (fractional)
  until?: number;
}

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

/**
 * Container lifecycle. Bodies and results use the Engine API shapes
 * (ContainerCreateRequest, ContainerInspectResponse, ContainerSummary, ...),
 * typed loosely here because the swagger is the source of truth.
 */
export interface ContainerService {
  create(name: string | undefined, body: any): Promise<{ Id: string; Warnings: string[] }>;
  list(opts: { all: boolean; limit?: number; size: boolean; filters: Record<string, string[]> }): Promise<any[]>;
  inspect(idOrName: string, size?: boolean): Promise<any>;
  start(idOrName: string): Promise<void>;
  stop(idOrName: string, opts: { signal?: string; timeout?: number }): Promise<void>;
  restart(idOrName: string, opts: { signal?: string; timeout?: number }): Promise<void>;
  kill(idOrName: string, signal?: string): Promise<void>;
  pause(idOrName: string): Promise<void>;
  unpause(idOrName: string): Promise<void>;
  rename(idOrName: string, newName: string): Promise<void>;
  /** New cgroup limits and/or restart policy (POST /containers/{id}/update). */
  update(idOrName: string, body: any): Promise<{ Warnings: string[] }>;
  remove(idOrName: string, opts: { force: boolean; volumes: boolean }): Promise<void>;
  /** Resolves when the condition is met; rejects if `abort` fires first. */
  wait(idOrName: string, condition: WaitCondition, abort: AbortSignal): Promise<{ StatusCode: number; Error: { Message: string } | null }>;
  resize(idOrName: string, height: number, width: number): Promise<void>;
  top(idOrName: string, psArgs?: string): Promise<{ Titles: string[]; Processes: string[][] }>;
  /**
   * Bridges a hijacked client socket to the container's stdio, with stdcopy
   * framing unless the container has a TTY. Resolves when the session ends.
   */
  attach(idOrName: string, opts: AttachOptions, socket: Duplex): Promise<void>;
  /** Writes the log stream (stdcopy-framed unless TTY) to `out`; ends it unless following stops by abort. */
  logs(idOrName: string, opts: LogsOptions, out: Writable, abort: AbortSignal): Promise<void>;

  execCreate(idOrName: string, body: any): Promise<{ Id: string }>;
  /** Runs the exec; output goes to `socket` (hijacked) or nowhere when detached. */
  execStart(execId: string, body: { Detach?: boolean; Tty?: boolean }, socket: Duplex | undefined): Promise<void>;
  execInspect(execId: string): Promise<any>;
  execResize(execId: string, height: number, width: number): Promise<void>;

  /** Image ids used by containers (for rmi conflicts and prune). */
  containersUsingImage(imageId: string): Promise<string[]>;
  /**
   * Runs fn with the container's root filesystem visible at a host path
   * (the live mount when running, a temporary mount otherwise). Used by
   * cp (archive), commit and export.
   */
  withRootfs<T>(idOrName: string, fn: (rootfsPath: string, container: any) => Promise<T>): Promise<T>;
  /** Re-attaches to containers that kept running while berthd was down. */
  restore(): Promise<void>;
  /** Stops watchers; running containers keep running (conmon owns them). */
  shutdown(): Promise<void>;
}

export type { Readable };
