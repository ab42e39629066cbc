/**
 * A TaskRuntime that runs nothing: tasks are records in memory, a signal ends a
 * task the way the kernel would (exit code 128+signal), and exits are reported
 * through the same exit-record path as conmon's exit files. For unit tests of the
 * container lifecycle (src/container/service.ts) without runc, conmon or mounts.
 */
import type { DirectExec, ExecSession, PendingTask, TaskCreateOptions, TaskExecOptions, TaskRuntime } from '../../src/runtime/task';
import { TaskStartError } from '../../src/runtime/task';
import type { RootfsMounts } from '../../src/container/mounts';

export interface FakeTask {
  id: string;
  pid: number;
  monitorPid: number;
  status: 'created' | 'running' | 'paused' | 'stopped';
  opts: TaskCreateOptions;
  signals: number[];
  updates: object[];
}

export class FakeRuntime implements TaskRuntime {
  readonly tasks = new Map<string, FakeTask>();
  readonly exits = new Map<string, number>();
  /** Every call, in order (`create <id>`, `start <id>`, `kill <id> 15`, ...). */
  readonly calls: string[] = [];
  /** Signals a task ignores (it keeps running), e.g. 15 to test stop's escalation to 9. */
  readonly ignored = new Set<number>();
  /** When set, create fails with this runtime message (e.g. an executable not found). */
  createFailure: string | undefined;
  private onExit: (id: string) => void = () => undefined;
  private nextPid = 1000;
  private liveMonitors = new Set<number>();

  async init(onExit: (id: string) => void): Promise<void> { this.onExit = onExit; }
  close(): void { this.onExit = () => undefined; }

  create(opts: TaskCreateOptions): PendingTask {
    this.calls.push(`create ${opts.id}`);
    return {
      go: async () => {
        if (this.createFailure) throw new TaskStartError(this.createFailure);
        const pid = this.nextPid++;
        const monitorPid = this.nextPid++;
        this.liveMonitors.add(monitorPid);
        this.tasks.set(opts.id, { id: opts.id, pid, monitorPid, status: 'created', opts, signals: [], updates: [] });
        return { pid, monitorPid };
      },
      cancel: () => { this.calls.push(`cancel ${opts.id}`); },
    };
  }

  private task(id: string): FakeTask {
    const t = this.tasks.get(id);
    if (!t || t.status === 'stopped') throw new Error(`container ${id} does not exist`);
    return t;
  }

  async start(id: string): Promise<void> {
    this.calls.push(`start ${id}`);
    const t = this.task(id);
    if (t.status !== 'created') throw new TaskStartError(`cannot start a container that has ${t.status}`);
    t.status = 'running';
  }

  /** The task's process ends by itself with `code` (as conmon would record it). */
  exit(id: string, code: number): void {
    const t = this.tasks.get(id);
    if (!t || t.status === 'stopped') throw new Error(`fake: ${id} is not running`);
    t.status = 'stopped';
    this.exits.set(id, code);
    // conmon writes the exit file after the process is reaped: asynchronously.
    setImmediate(() => this.onExit(id));
  }

  async kill(id: string, signal: number, all = false): Promise<void> {
    this.calls.push(`kill ${id} ${signal}${all ? ' all' : ''}`);
    const t = this.tasks.get(id);
    if (!t || t.status === 'stopped') return; // already ended: not an error
    t.signals.push(signal);
    if (t.status === 'paused' || this.ignored.has(signal)) return; // frozen, or handled by the process
    this.exit(id, 128 + signal);
  }

  async pause(id: string): Promise<void> { this.calls.push(`pause ${id}`); this.task(id).status = 'paused'; }

  async resume(id: string): Promise<void> {
    this.calls.push(`resume ${id}`);
    const t = this.task(id);
    t.status = 'running';
    // A signal that arrived while frozen acts now.
    const pending = t.signals.filter((s) => !this.ignored.has(s));
    if (pending.length) this.exit(id, 128 + pending[pending.length - 1]);
  }

  async update(id: string, _bundle: string, resources: object): Promise<void> {
    this.calls.push(`update ${id}`);
    this.task(id).updates.push(resources);
  }

  async ps(id: string): Promise<number[]> { return [this.task(id).pid]; }

  async delete(id: string, force = false): Promise<void> {
    this.calls.push(`delete ${id}${force ? ' force' : ''}`);
    const t = this.tasks.get(id);
    if (t) {
      this.liveMonitors.delete(t.monitorPid);
      if (t.status !== 'stopped' && force) this.exit(id, 137);
      this.tasks.delete(id);
    }
  }

  async resize(): Promise<void> { /* no terminal */ }

  exec(_o: TaskExecOptions): ExecSession { throw new Error('fake runtime: exec is not modelled'); }
  execDirect(): DirectExec { throw new Error('fake runtime: exec is not modelled'); }
  async reopenLog(): Promise<void> { /* no log */ }

  async exitedIds(): Promise<string[]> { return [...this.exits.keys()]; }
  async readExit(id: string): Promise<number | null | undefined> { return this.exits.get(id); }
  async clearExit(id: string): Promise<void> { this.exits.delete(id); }
  monitorAlive(pid: number): boolean { return this.liveMonitors.has(pid); }
}

/** Mounts nothing: the rootfs stays the empty directory the lifecycle made. */
export class FakeMounts implements RootfsMounts {
  readonly mounted = new Set<string>();
  async mount(_m: unknown, target: string): Promise<void> { this.mounted.add(target); }
  async unmount(target: string): Promise<void> { this.mounted.delete(target); }
}
