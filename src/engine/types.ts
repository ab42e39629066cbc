/**
 * The contracts between the daemon's areas. Each area owns one service, and
 * other areas and the API reach it only through the interface here:
 *   images      -> src/image + src/store       (ImageService)
 *   containers  -> src/container + src/runtime (ContainerService)
 *   volumes     -> src/volume                  (VolumeService)
 *   api         -> src/api (HTTP: reads requests, calls the services, writes answers)
 * Shapes follow the Engine API swagger (../shared/specs/engine-api/swagger.yaml),
 * so the API layer mostly serialises what the services return.
 *
 * Over 500 lines on purpose: every contract between areas in one place, so a new
 * area (networks, distribution) reads one file to know what it may ask of the others.
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

/**
 * One message of a progress stream (Docker's JSONMessage shape: pull, load, import,
 * bootstrap, build). Domain code hands these to a plain callback; the API writes them.
 */
export interface ProgressMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  progress?: string;
  /** Free text (build output, `Loaded image: ...`). */
  stream?: string;
  aux?: Record<string, unknown>;
}
export type ProgressSink = (msg: ProgressMessage) => void;

/** One layer given to createImageFromLayers. */
export interface LayerInput {
  /**
   * Opens the layer tar (plain, gzip, xz or zstd). Only called when the layer
   * must be unpacked; may be called a second time (rarely: a tar that
   * overwrites its own entries is then stored whole), so it must reopen.
   */
  open: () => Promise<Readable>;
  /** Expected diffID when known (load): lets existing layers be skipped without reading them. */
  diffID?: string;
  /**
   * The tar is this stopped container's upper dir (as a layer, nothing else in the dir): the
   * dir becomes the layer's snapshot in place instead of being unpacked again (build steps).
   */
  adoptContainer?: string;
  /** Bytes `open` will read (a pull's blob size): with concurrency, the biggest layers start first. */
  size?: number;
}

export interface CreateImageOptions {
  layers: LayerInput[];
  /**
   * Either exact config bytes (kept byte for byte, so the image ID is
   * preserved: load), or a config object whose rootfs is filled in from the
   * computed diffIDs (import/commit/bootstrap).
   */
  config: Buffer | Omit<OciImageConfig, 'rootfs'> & { rootfs?: OciImageConfig['rootfs'] };
  /** Familiar or full references to point at the new image. */
  tags?: string[];
  parent?: string;
  /** Progress lines: `"<short diffID>: Already exists"`, `"Loading layer ..."`. */
  onProgress?: (msg: { id?: string; status: string }) => void;
  /** Event action for the image (`load`, `import`, `commit`); tag events are emitted per tag. */
  eventAction?: string;
  /** Layers unpacked at once (default 1); pull streams its downloads straight into them. */
  concurrency?: number;
}

export interface DeleteItem { Untagged?: string; Deleted?: string }

/** Engine API shapes the image area answers with (swagger: ImageSummary, ImageInspect, HistoryResponseItem). */
export type ImageSummary = Record<string, unknown> & { Id: string };
export type ImageInspect = Record<string, unknown> & { Id: string };
export type ImageHistoryItem = Record<string, unknown>;

/** `system df`'s image part: every layer counted once in layersSize; images carry SharedSize and Containers. */
export interface ImageDiskUsage { layersSize: number; images: ImageSummary[] }

/** What other areas and the API may ask of the image area (src/image + src/store). */
export interface ImageService {
  /** Resolves a reference, full/short id or id prefix. Throws not-found: `No such image: <ref>`. */
  resolve(ref: string): Promise<ImageRecord>;
  list(): Promise<ImageRecord[]>;
  /**
   * Creates the writable rootfs of a container: a snapshot whose parent is
   * the image's top layer. Resolves with the mount to use (it does not mount) as soon
   * as the directories exist; `persisted` settles once the snapshot is durably recorded,
   * which the caller awaits before recording anything that refers to it.
   * An empty `imageId` is an empty rootfs (a build stage `FROM scratch`).
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

  /** Stores and unpacks layers, writes config/manifest, tags. Used by load, import, commit, bootstrap (and build, pull). */
  createImageFromLayers(opts: CreateImageOptions): Promise<ImageRecord>;
  /** Records that the image is `repository@digest` in a registry (pull, push); RepoDigests shows it. */
  addRepoDigest(id: string, fullRepoDigest: string): Promise<void>;
  /** Whether the layer chain of these diffIDs (base first) is unpacked and its top tar retrievable (pull's "Already exists"). */
  hasLayers(diffIDs: string[]): Promise<boolean>;
  tag(ref: string, newRef: string): Promise<void>;
  untag(ref: string): Promise<boolean>;
  /** Docker's rmi; returns [{Untagged}|{Deleted}]. */
  remove(ref: string, opts?: { force?: boolean; noprune?: boolean }): Promise<DeleteItem[]>;
  prune(opts: { all?: boolean; filters?: Record<string, string[]> }): Promise<{ ImagesDeleted: DeleteItem[] | null; SpaceReclaimed: number }>;
  inspect(ref: string, apiVersion?: string): Promise<ImageInspect>;
  history(ref: string): Promise<ImageHistoryItem[]>;
  summaries(opts: { all?: boolean; filters?: Record<string, string[]>; digests?: boolean; apiVersion?: string }): Promise<ImageSummary[]>;
  /** Exact config JSON bytes (save, commit, push). */
  configBytes(id: string): Promise<Buffer>;
  /** The stored uncompressed layer tar (save, commit, push). */
  openLayerTar(diffID: string): Promise<Readable>;
  /** Byte length of the tar openLayerTar streams. */
  layerTarSize(diffID: string): Promise<number>;
  /**
   * `docker save`: resolves `names` (throws before anything is written), then asks
   * `open` for the sink and writes a Docker archive to it.
   */
  save(names: string[], open: () => Writable): Promise<void>;
  /**
   * `docker load`: reads an archive (Docker or OCI layout, compressed or not) from
   * `body`; nothing is published unless the whole archive checks out.
   */
  load(body: Readable, opts: { quiet: boolean }, progress: ProgressSink): Promise<void>;
  /** `system df`: `containers` are the containers there are (each counts for its ImageID). */
  diskUsage(containers: ReadonlyArray<{ ImageID: string }>, apiVersion?: string): Promise<ImageDiskUsage>;
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

/* ------------------------------------------------------------ containers */

/**
 * Engine API container shapes (swagger: ContainerConfig, HostConfig, ContainerState,
 * ContainerInspectResponse, ContainerSummary), typed as far as Berth's code reads
 * them; other fields pass through untouched (the swagger is the source of truth).
 */
export interface ContainerConfig {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  ExposedPorts?: Record<string, object> | null;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  Env?: string[] | null;
  Cmd?: string[] | null;
  Healthcheck?: HealthConfig | null;
  Image?: string;
  Volumes?: Record<string, object> | null;
  WorkingDir?: string;
  Entrypoint?: string[] | null;
  OnBuild?: string[] | null;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  StopTimeout?: number;
  Shell?: string[] | null;
  [k: string]: unknown;
}

export interface RestartPolicy { Name?: string; MaximumRetryCount?: number }

/** Config.Healthcheck (durations in nanoseconds). */
export interface HealthConfig {
  Test?: string[];
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

export interface HealthResult { Start: string; End: string; ExitCode: number; Output: string }
export interface HealthState { Status: 'starting' | 'healthy' | 'unhealthy'; FailingStreak: number; Log: HealthResult[] }

/** HostConfig.LogConfig (the driver and its options). */
export interface LogConfig { Type: string; Config: Record<string, string> }

/** One host side of a published port (HostConfig.PortBindings, NetworkSettings.Ports). */
export interface PortBinding { HostIp?: string; HostPort?: string }

/** HostConfig as create/update/inspect carry it. */
export interface HostConfig {
  Binds?: string[] | null;
  NetworkMode?: string;
  RestartPolicy?: RestartPolicy;
  AutoRemove?: boolean;
  VolumesFrom?: string[] | null;
  Mounts?: unknown[] | null;
  Privileged?: boolean;
  Init?: boolean | null;
  ExtraHosts?: string[] | null;
  Dns?: string[] | null;
  DnsSearch?: string[] | null;
  DnsOptions?: string[] | null;
  GroupAdd?: string[] | null;
  ConsoleSize?: number[] | null;
  LogConfig?: LogConfig;
  PortBindings?: Record<string, PortBinding[] | null> | null;
  PublishAllPorts?: boolean;
  Memory?: number;
  MemorySwap?: number;
  [k: string]: unknown;
}

export interface ContainerCreateRequest extends ContainerConfig {
  HostConfig?: HostConfig;
  NetworkingConfig?: unknown;
}

/** POST /containers/{id}/update: cgroup resources and the restart policy. */
export interface ContainerUpdateRequest {
  RestartPolicy?: RestartPolicy;
  [k: string]: unknown;
}

export interface ContainerState {
  Status: string;
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
  Health?: HealthState;
  [k: string]: unknown;
}

/** One entry of a container's `Mounts` (Docker's MountPoint, as inspect and ps show it). */
export interface MountPoint {
  Type: 'bind' | 'volume' | 'tmpfs';
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

export interface ContainerInspect {
  Id: string;
  Created: string;
  Path: string;
  Args: string[];
  State: ContainerState;
  /** Image id (sha256:...). */
  Image: string;
  ResolvConfPath: string;
  HostnamePath: string;
  HostsPath: string;
  LogPath: string;
  Name: string;
  RestartCount: number;
  Driver: string;
  Platform: string;
  MountLabel: string;
  ProcessLabel: string;
  AppArmorProfile: string;
  ExecIDs: string[] | null;
  /** Create always sets the network mode. */
  HostConfig: HostConfig & { NetworkMode: string };
  GraphDriver: { Name: string; Data: Record<string, string> | null };
  Mounts: MountPoint[];
  /** Inspect always shows these Config fields (create fills them in). */
  Config: ContainerConfig & { Hostname: string; Domainname: string; Image: string };
  NetworkSettings: {
    Networks?: Record<string, { IPAddress?: string; [k: string]: unknown }>;
    Ports?: Record<string, Array<{ HostIp: string; HostPort: string }> | null> | null;
    [k: string]: unknown;
  };
  SizeRw?: number;
  SizeRootFs?: number;
  [k: string]: unknown;
}

export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  Command: string;
  Created: number;
  Labels: Record<string, string>;
  State: string;
  Status: string;
  Mounts: MountPoint[];
  SizeRw?: number;
  SizeRootFs?: number;
  [k: string]: unknown;
}

export interface ExecCreateRequest {
  Cmd?: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
  Tty?: boolean;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Privileged?: boolean;
  DetachKeys?: string;
  [k: string]: unknown;
}

/** GET /exec/{id}/json (swagger ExecInspectResponse). */
export interface ExecInspect {
  ID: string;
  Running: boolean;
  ExitCode: number | null;
  ContainerID: string;
  Pid: number;
  [k: string]: unknown;
}

/** GET /containers/{id}/stats: the stats document (cgroup v1 field set). */
export type ContainerStats = Record<string, unknown>;
export interface StatsOptions { stream: boolean; oneShot: boolean }
export interface ContainerPruneReport { ContainersDeleted: string[] | null; SpaceReclaimed: number }

/** What other areas and the API may ask of the container area (src/container on src/runtime). */
export interface ContainerService {
  create(name: string | undefined, body: ContainerCreateRequest): Promise<{ Id: string; Warnings: string[] }>;
  list(opts: { all: boolean; limit?: number; size: boolean; filters: Record<string, string[]> }): Promise<ContainerSummary[]>;
  inspect(idOrName: string, size?: boolean): Promise<ContainerInspect>;
  start(idOrName: string): Promise<void>;
  stop(idOrName: string, opts: { signal?: string; timeout?: number }): Promise<void>;
  restart(idOrName: string, opts: { signal?: string; timeout?: number }): Promise<void>;
  kill(idOrName: string, signal?: string): Promise<void>;
  pause(idOrName: string): Promise<void>;
  unpause(idOrName: string): Promise<void>;
  rename(idOrName: string, newName: string): Promise<void>;
  /** New cgroup limits and/or restart policy (POST /containers/{id}/update). */
  update(idOrName: string, body: ContainerUpdateRequest): Promise<{ Warnings: string[] }>;
  remove(idOrName: string, opts: { force: boolean; volumes: boolean }): Promise<void>;
  /** Removes stopped containers matching `filters` (until, label, label!; checked by the caller). */
  prune(filters: Record<string, string[]>): Promise<ContainerPruneReport>;
  /** Resolves when the condition is met; rejects if `abort` fires first. */
  wait(idOrName: string, condition: WaitCondition, abort: AbortSignal): Promise<{ StatusCode: number; Error: { Message: string } | null }>;
  /** Resolves once a stopped container's host resources (runtime state, rootfs mount) are gone. */
  released(idOrName: string): Promise<void>;
  resize(idOrName: string, height: number, width: number): Promise<void>;
  top(idOrName: string, psArgs?: string): Promise<{ Titles: string[]; Processes: string[][] }>;
  /**
   * Stats documents to `emit`: with `stream` one a second until the container stops
   * or `abort` fires; without, one. Throws not-found before emitting anything.
   */
  stats(idOrName: string, opts: StatsOptions, emit: (doc: ContainerStats) => void, abort: AbortSignal): Promise<void>;
  /**
   * Bridges a hijacked client socket to the container's stdio, with stdcopy
   * framing unless the container has a TTY. Resolves when the session ends.
   */
  attach(idOrName: string, opts: AttachOptions, socket: Duplex): Promise<void>;
  /** Writes the log stream (stdcopy-framed unless TTY) to `out`; ends it unless following stops by abort. */
  logs(idOrName: string, opts: LogsOptions, out: Writable, abort: AbortSignal): Promise<void>;

  execCreate(idOrName: string, body: ExecCreateRequest): Promise<{ Id: string }>;
  /** Runs the exec; output goes to `socket` (hijacked) or nowhere when detached. */
  execStart(execId: string, body: { Detach?: boolean; Tty?: boolean }, socket: Duplex | undefined): Promise<void>;
  execInspect(execId: string): Promise<ExecInspect>;
  execResize(execId: string, height: number, width: number): Promise<void>;

  /** /info's counts: all containers, and how many run (restarting counts as running), are paused or stopped. */
  stateCounts(): { total: number; running: number; paused: number; stopped: number };
  /** Image ids used by containers (for rmi conflicts and prune). */
  containersUsingImage(imageId: string): Promise<string[]>;
  /** Containers (running or not) whose Mounts name the volume. */
  containersUsingVolume(name: string): string[];
  /**
   * Runs fn with the container's root filesystem visible at a host path
   * (the live mount when running, a temporary mount otherwise). Used by
   * cp (archive) and export; commit reads the upper dir instead (image/commit.ts).
   */
  withRootfs<T>(idOrName: string, fn: (rootfsPath: string, container: ContainerInspect) => Promise<T>): Promise<T>;
  /** POST /networks/{id}/connect and /disconnect: live for a running container, recorded otherwise. */
  connectNetwork(idOrName: string, netRef: string, endpointConfig: any): Promise<void>;
  disconnectNetwork(idOrName: string, netRef: string, force: boolean): Promise<void>;
  /** Removes a legacy link `<parent>/<alias>` (DELETE /containers/{name}?link=1). */
  removeLink(linkName: string): Promise<void>;
  /** Re-attaches to containers that kept running while berthd was down. */
  restore(): Promise<void>;
  /** Stops watchers; running containers keep running (conmon owns them). */
  shutdown(): Promise<void>;
}

/* --------------------------------------------------------------- volumes */

/** The Engine API's Volume object. */
export interface VolumeView {
  CreatedAt: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string> | null;
  Scope: 'local';
  UsageData?: { Size: number; RefCount: number };
}

export interface VolumeCreateRequest { Name?: string; Driver?: string; DriverOpts?: Record<string, string> | null; Labels?: Record<string, string> | null }

/** What other areas and the API may ask of the volume area (src/volume). */
export interface VolumeService {
  /** Which containers use a volume is the container service's knowledge; it tells this service here. */
  setUsageProbe(probe: (name: string) => string[]): void;
  /** Host directory of a volume's data. */
  mountpoint(name: string): string;
  create(req: VolumeCreateRequest): Promise<VolumeView>;
  /** A new volume with a random name and the anonymous label (what `-v /path` makes). */
  createAnonymous(): Promise<VolumeView>;
  isAnonymous(name: string): boolean;
  has(name: string): boolean;
  inspect(name: string): VolumeView;
  list(filters: Record<string, string[]>): VolumeView[];
  /** Every volume with its UsageData (system df). */
  usage(): Promise<VolumeView[]>;
  remove(name: string, force?: boolean): Promise<void>;
  prune(filters: Record<string, string[]>): Promise<{ VolumesDeleted: string[] | null; SpaceReclaimed: number }>;
}

/** Registry credentials as the docker CLI sends them (X-Registry-Auth, POST /auth). */
export interface RegistryAuth {
  username?: string;
  password?: string;
  serveraddress?: string;
  identitytoken?: string;
  registrytoken?: string;
}

export interface PullOptions {
  auth?: RegistryAuth;
  /** `os/arch[/variant]`; default: the host's. */
  platform?: string;
  /** Every tag of the repository (docker pull --all-tags). */
  allTags?: boolean;
  signal?: AbortSignal;
}

export interface PushOptions {
  auth?: RegistryAuth;
  signal?: AbortSignal;
}

/**
 * The registry client (src/registry/client). Pull and push report progress through the sink
 * and throw BerthErrors; an error thrown before the first message is an ordinary API error.
 */
export interface DistributionService {
  /** Pulls `ref` (`name[:tag]`, `name@digest`, or a repository with allTags) into the image store. */
  pull(ref: string, opts: PullOptions, progress: ProgressSink): Promise<void>;
  /** Pushes the local image `ref` (every tag of the repository when `ref` has none). */
  push(ref: string, opts: PushOptions, progress: ProgressSink): Promise<void>;
  /** Checks credentials against a registry, as `docker login` does. */
  login(auth: RegistryAuth): Promise<{ Status: string; IdentityToken: string }>;
  /** `docker search` against a registry's /v1/search. */
  search(term: string, limit: number, auth: RegistryAuth | undefined): Promise<Array<{ name: string; description: string; star_count: number; is_official: boolean; is_automated: boolean }>>;
}

/* --------------------------------------------------------------- networks */

/** What a starting container asks of the network area. */
export interface NetworkAttachRequest {
  containerId: string;
  /** Container name without the leading slash. */
  name: string;
  /** HostConfig.NetworkMode as stored: bridge, none, host, container:<id>, or a network name/id. */
  mode: string;
  /** NetworkSettings.Networks of the record (endpoint configs: aliases, IPAMConfig, MacAddress). */
  networks: Record<string, any>;
  portBindings: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null | undefined;
  exposedPorts: Record<string, unknown> | null | undefined;
  publishAll: boolean;
  /** HostConfig.Dns: on user networks, where the embedded DNS forwards names it does not know. */
  dns?: string[] | null;
}

export interface NetworkAttachment {
  /** Namespace the container joins (bridge and user networks); absent: runc makes one, or none for host. */
  netnsPath?: string;
  /** NetworkSettings for inspect. */
  settings: any;
  /** What /etc/hosts and /etc/resolv.conf need. */
  etc: {
    ip?: string; ip6?: string; hostGatewayIp?: string; nameservers?: string[];
    /** daemon.json `dns`, `dns-search`, `dns-opts`: what a container that names none gets. */
    defaults?: { dns: string[]; dnsSearch: string[]; dnsOptions: string[] };
  };
}

/** A container's validated network choice at create. */
export interface NetworkUse { mode: string; networks: Record<string, any> }

/** Networks (GET/POST/DELETE /networks) and the network side of containers. */
export interface NetworkService {
  list(filters: Record<string, string[]>): Promise<any[]>;
  inspect(ref: string, opts?: { verbose?: boolean; scope?: string }): Promise<any>;
  create(body: any): Promise<{ Id: string; Warning: string }>;
  remove(ref: string): Promise<void>;
  prune(filters: Record<string, string[]>): Promise<{ NetworksDeleted: string[] | null }>;
  /** Validates a container's NetworkMode/EndpointsConfig at create. */
  prepare(mode: string, endpointsConfig: Record<string, any> | null | undefined): NetworkUse;
  /** An EndpointSettings without addresses for a network (stopped containers). */
  staticEndpointFor(ref: string, cfg: any): { name: string; endpoint: any };
  attach(req: NetworkAttachRequest): Promise<NetworkAttachment>;
  detach(containerId: string): Promise<void>;
  /** Live connect/disconnect of a running container; connect returns the new EndpointSettings. */
  connect(containerId: string, netRef: string, cfg: any, req: NetworkAttachRequest): Promise<any>;
  disconnect(containerId: string, netRef: string): Promise<void>;
  emitMembership(action: 'connect' | 'disconnect', netRef: string, containerId: string): void;
  resolve(ref: string): { Id: string; Name: string; Driver: string; Internal: boolean };
  /** Keeps the sandboxes of running containers, removes everything else left on the host. */
  restore(running: Set<string>): Promise<void>;
  shutdown(): Promise<void>;
}

export type { Readable };

/* ------------------------------------------------------------------ build */

/** A step's writable root filesystem (a RUN container's or a COPY's), held until captured or dropped. */
export interface BuildStepLayer { readonly id: string }

export interface RunStepOptions {
  imageId: string;
  /** Full argv (shell form already wrapped in the stage's SHELL). */
  cmd: string[];
  env: string[];
  user: string;
  workdir: string;
  /** Host directories to bind into the step (RUN --mount=type=cache|bind); never part of the layer. */
  binds: Array<{ source: string; target: string; readonly: boolean }>;
  /** RUN --mount=type=tmpfs: a fresh tmpfs at each target (size in bytes, 0: the kernel's default). */
  tmpfs: Array<{ target: string; size: number }>;
  /** RUN --mount=type=secret: files only the step sees (read-only, never in the layer, not in the cache key). */
  secrets: Array<{ data: Buffer; target: string; mode: number; uid: number; gid: number }>;
  extraHosts: string[];
  /** The step container's HostConfig.NetworkMode: `default` (the default bridge, as the classic builder), host, none or a network. */
  network: string;
  onStart: (containerId: string) => void;
  onOutput: (data: Buffer, stream: 'stdout' | 'stderr') => void;
  /** The build was abandoned (its client went): the step's container is killed. */
  signal?: AbortSignal;
}

/** One build-cache entry: a step's result, keyed by what the step depended on. */
export interface BuildCacheEntry {
  key: string;
  imageId: string;
  /** Bytes of the layer the step added (0 for config-only steps). */
  size: number;
  description: string;
  created: string;
  lastUsed: string;
}

/**
 * What the Dockerfile builder (src/build) needs of the engine: resolve a base image,
 * run a step, copy into a layer, capture a layer as an image, probe the cache.
 */
export interface BuildBackend {
  /** A local image. Throws not-found. */
  resolveImage(ref: string): Promise<ImageRecord>;
  /**
   * A base image: local, else pulled (always with `pull`), as the classic builder does;
   * pull progress goes to `progress`. Throws not-found when it is nowhere.
   */
  baseImage(ref: string, opts: { pull: boolean; auth: Record<string, RegistryAuth> }, progress: ProgressSink): Promise<ImageRecord>;
  /** Removes the step containers/snapshots of builds a crash cut short (noted before each was made). */
  recover(): Promise<void>;
  /** Runs a RUN step as a container on `imageId`; its writable layer is kept for capture. */
  runStep(opts: RunStepOptions): Promise<{ layer: BuildStepLayer; exitCode: number }>;
  /** A fresh writable layer on `imageId` (or empty for ''), mounted while `fill` writes into it. */
  copyIntoLayer(imageId: string, fill: (rootfs: string) => Promise<void>): Promise<BuildStepLayer>;
  /** Runs `fn` with the image's root filesystem mounted at a host path (read: COPY --from, RUN --mount from=). */
  withImageRootfs<T>(imageId: string, fn: (rootfs: string) => Promise<T>): Promise<T>;
  /**
   * A new image: the parent's layers plus the step's writable layer (none, or no changes: a
   * config-only step, `empty_layer` in history). `clampMtime` caps file times (SOURCE_DATE_EPOCH).
   */
  captureLayer(parentId: string, layer: BuildStepLayer | undefined, config: Omit<OciImageConfig, 'rootfs'>,
    history: NonNullable<OciImageConfig['history']>[number], clampMtime?: Date): Promise<{ image: ImageRecord; layerSize: number }>;
  /** A new image: `baseId`'s layers plus the given layers merged into one (squash). */
  squashLayers(baseId: string, diffIDs: string[], config: Omit<OciImageConfig, 'rootfs'>): Promise<ImageRecord>;
  /** Removes a step's writable layer (and its container). Idempotent. */
  dropLayer(layer: BuildStepLayer): Promise<void>;
  probeCache(key: string): Promise<string | undefined>;
  recordCache(entry: BuildCacheEntry): Promise<void>;
  /** Entries whose images still exist. */
  cacheEntries(): Promise<BuildCacheEntry[]>;
  /** Forgets every entry; removes step images nothing else holds and the cache mounts. */
  clearCache(): Promise<{ removed: string[]; reclaimed: number }>;
  /** Persistent directory of a RUN --mount=type=cache id. */
  cacheMountDir(id: string): Promise<string>;
  tag(imageId: string, ref: string): Promise<void>;
}

/** The classic build request (POST /build query), parsed. */
export interface BuildRequest {
  tags: string[];
  dockerfile: string;
  buildArgs: Record<string, string | null>;
  target: string;
  noCache: boolean;
  quiet: boolean;
  labels: Record<string, string>;
  squash: boolean;
  /** `networkmode`: the RUN steps' network ('' / default: the default bridge; host, none, a user network). Intermediate containers are always removed (rm/forcerm). */
  networkMode: string;
  platform: string;
  /** `host:ip` entries for the RUN steps' /etc/hosts. */
  extraHosts: string[];
  /** `pull`: pull base images even when they are local. */
  pull: boolean;
  /** X-Registry-Config: credentials per registry host for pulling base images. */
  registryAuth: Record<string, RegistryAuth>;
  /** `cachefrom`: when given, only these images (and their parents) are cache sources, as with Docker's classic builder. */
  cacheFrom: string[];
  /** Secrets for RUN --mount=type=secret, by id (Berth's X-Berth-Build-Secrets header; the classic protocol has none). */
  secrets: Record<string, Buffer>;
  /**
   * `remote`: the context is fetched by the daemon instead of read from the body — a git repository
   * (`git://…`, `….git#ref:subdir`, `git@…`) or an http(s) URL of a tar or of a bare Dockerfile.
   */
  remote: string;
}

/** The build area (src/build), as routes see it. */
export interface BuildService {
  /** Builds from a context tar (or a bare Dockerfile); output as classic `stream` / `aux` messages. */
  build(req: BuildRequest, context: Readable, progress: ProgressSink, signal?: AbortSignal): Promise<{ imageId: string }>;
  /** Empties the build cache (builder prune, system prune). */
  prune(opts: { all: boolean; filters: Record<string, string[]> }): Promise<{ CachesDeleted: string[]; SpaceReclaimed: number }>;
  /** `system df` BuildCache rows. */
  diskUsage(): Promise<Array<Record<string, unknown>>>;
  /** At start-up: removes the step containers and snapshots a crash in the middle of a build left. */
  recover(): Promise<void>;
}
