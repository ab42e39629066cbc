/**
 * The runtime seam: what the container lifecycle (src/container) asks of the
 * thing that runs processes. One implementation, ConmonRunc: runc as the OCI
 * runtime under one conmon per container (conmon holds stdio and writes the exit
 * code, so containers outlive berthd). Unit tests of the lifecycle use a fake.
 *
 * A task is one container's init process; its id is the container id. Exits are
 * learnt from exit records (conmon's exit files) that the runtime watches.
 */

/** A container's process as the runtime is asked to create it from an OCI bundle. */
export interface TaskCreateOptions {
  id: string;
  /** Bundle dir (config.json, rootfs; the attach socket and ctl FIFO appear here). */
  bundle: string;
  /** Container name, for the monitor's logs. */
  name: string;
  logPath: string;
  /** Where the monitor keeps what must survive it (exit code, oom marker). */
  persistDir: string;
  terminal: boolean;
  stdin: boolean;
  /** Keep stdin open when attach clients leave (OpenStdin without StdinOnce). */
  leaveStdinOpen: boolean;
}

/** A task whose monitor runs but waits: the caller makes the bundle meanwhile, then lets it go. */
export interface PendingTask {
  /** Creates the process (not started yet); throws TaskStartError with the runtime's message. */
  go(): Promise<{ pid: number; monitorPid: number }>;
  /** Gives up before go() (the bundle could not be made). */
  cancel(): void;
}

/** One more process in a running task (docker exec). */
export interface TaskExecOptions {
  id: string;
  execId: string;
  /** The exec's own dir (process.json, attach socket, ctl FIFO). */
  dir: string;
  processSpec: string;
  terminal: boolean;
  stdin: boolean;
}

/** A running exec session. */
export interface ExecSession {
  /** Resolves once the attach socket exists (call before `go()`). */
  attachReady: Promise<void>;
  /** Lets the process run; resolves with its PID or throws TaskStartError. */
  go(): Promise<number>;
  /** Resolves with the exit code once the process ended. */
  exited(): Promise<number>;
}

/** A process run in a task without a monitor (healthcheck probes): the caller reads its output. */
export interface DirectExecOptions {
  id: string;
  processSpec: string;
  /** Written by the runtime once the process exists (its host PID). */
  pidFile: string;
}

export interface DirectExec {
  /** stdout and stderr of the process (through the runtime). */
  output: Array<NodeJS.ReadableStream & { destroy(): void }>;
  exited: Promise<{ code: number; signal: number }>;
  /** Signals the runtime process itself (the exec's process has its PID in pidFile). */
  kill(signal: NodeJS.Signals): void;
}

/** The runtime refused to create or start a process; `runtimeMessage` is its own words. */
export class TaskStartError extends Error {
  constructor(readonly runtimeMessage: string) {
    super(runtimeMessage);
    this.name = 'TaskStartError';
  }
}

export interface TaskRuntime {
  /** Makes the runtime's directories and starts watching for exits; once, before anything else. */
  init(onExit: (id: string) => void): Promise<void>;
  /** Stops watching for exits; tasks keep running. */
  close(): void;

  create(opts: TaskCreateOptions): PendingTask;
  start(id: string, initPid: number): Promise<void>;
  /** Signals the task's init (every process with `all`); a task that already ended is not an error. */
  kill(id: string, signal: number, all?: boolean): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  /** New cgroup limits (OCI LinuxResources) for a running task; `bundle` holds the request meanwhile. */
  update(id: string, bundle: string, resources: object): Promise<void>;
  /** Host PIDs of every process in the task. */
  ps(id: string): Promise<number[]>;
  /** Removes the runtime's state of the task (`force` kills it first); an unknown id is not an error. */
  delete(id: string, force?: boolean): Promise<void>;
  /** Terminal size of a task or exec whose monitor has its control FIFO in `dir`. */
  resize(dir: string, height: number, width: number): Promise<void>;
  exec(opts: TaskExecOptions): ExecSession;
  /** Runs a process in the task and waits for it, without a monitor; its output is piped to the caller. */
  execDirect(opts: DirectExecOptions): DirectExec;
  /** Asks the monitor whose control FIFO is in `dir` to reopen the task's log (after it was renamed aside). */
  reopenLog(dir: string): Promise<void>;

  /** Ids with an exit record. */
  exitedIds(): Promise<string[]>;
  /** The recorded exit code: undefined without a record, null while it is being written. */
  readExit(id: string): Promise<number | null | undefined>;
  clearExit(id: string): Promise<void>;
  /** Whether the task's monitor process still runs (after a daemon restart). */
  monitorAlive(monitorPid: number): boolean;
}
