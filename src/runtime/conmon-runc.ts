/**
 * ConmonRunc, the TaskRuntime of berthd: runc as the OCI runtime under one
 * conmon per container (conmon.ts speaks conmon's caller protocol, runc.ts
 * runs runc's verbs). Exit codes come from conmon's exit files in
 * <exec-root>/exits, watched with inotify plus a periodic scan.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { conmonExec, conmonSpawn, writeCtl, writeCtlReopenLog } from './conmon';
import { spawnChild } from '../common/linux';
import { Runc, RuncError, runtimeExecPath } from './runc';
import { TaskStartError, type DirectExec, type DirectExecOptions, type ExecSession, type PendingTask, type TaskCreateOptions, type TaskExecOptions, type TaskRuntime } from './task';

export interface ConmonRuncOptions {
  conmon: string;
  /** runc binary. */
  runc: string;
  /** The engine's exec root: runc state in runc/, exit files in exits/. */
  execRoot: string;
}

/** runc under one conmon per container. */
export class ConmonRunc implements TaskRuntime {
  readonly exitDir: string;
  readonly runcRoot: string;
  /** What berthd and conmon execute as the OCI runtime (see runtimeExecPath). */
  private runtimePath: string;
  private runc: Runc;
  private watcher: fs.FSWatcher | undefined;
  private scanTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: ConmonRuncOptions) {
    this.exitDir = path.join(opts.execRoot, 'exits');
    this.runcRoot = path.join(opts.execRoot, 'runc');
    this.runtimePath = opts.runc;
    this.runc = new Runc({ binary: this.runtimePath, root: this.runcRoot });
  }

  async init(onExit: (id: string) => void): Promise<void> {
    this.runtimePath = runtimeExecPath(this.opts.runc);
    this.runc = new Runc({ binary: this.runtimePath, root: this.runcRoot });
    for (const d of [this.exitDir, this.runcRoot]) await fsp.mkdir(d, { recursive: true, mode: 0o711 });
    this.watcher = fs.watch(this.exitDir, (_ev, file) => { if (file) onExit(String(file)); });
    this.watcher.on('error', () => { /* the periodic scan covers us */ });
    // Safety net for missed inotify events (e.g. queue overflow).
    this.scanTimer = setInterval(() => {
      void this.exitedIds().then((ids) => { for (const id of ids) onExit(id); });
    }, 2000);
    this.scanTimer.unref();
  }

  close(): void {
    this.watcher?.close();
    if (this.scanTimer) clearInterval(this.scanTimer);
  }

  create(o: TaskCreateOptions): PendingTask {
    // conmon starts now and waits on its start pipe while the caller makes the bundle.
    const conmon = conmonSpawn({
      conmon: this.opts.conmon, runc: this.runtimePath, runcRoot: this.runcRoot, cid: o.id,
      bundle: o.bundle, pidFile: path.join(o.bundle, 'pidfile'), conmonPidFile: path.join(o.bundle, 'conmon.pid'),
      terminal: o.terminal, stdin: o.stdin, leaveStdinOpen: o.leaveStdinOpen,
      logPath: o.logPath, name: o.name, exitDir: this.exitDir, persistDir: o.persistDir,
    });
    return {
      go: async () => {
        const { pid } = await conmon.go();
        const monitorPid = Number((await fsp.readFile(path.join(o.bundle, 'conmon.pid'), 'utf8').catch(() => '0')).trim()) || 0;
        return { pid, monitorPid };
      },
      cancel: () => conmon.cancel(),
    };
  }

  async start(id: string, initPid: number): Promise<void> {
    try {
      await this.runc.start(id, initPid);
    } catch (err) {
      throw err instanceof RuncError ? new TaskStartError(err.message) : err;
    }
  }

  async kill(id: string, signal: number, all = false): Promise<void> {
    try {
      await this.runc.kill(id, signal, all);
    } catch (err) {
      if (!(err instanceof RuncError) || !/not running|does not exist|process already finished/i.test(err.message)) throw err;
    }
  }

  async pause(id: string): Promise<void> { await this.runc.pause(id); }
  async resume(id: string): Promise<void> { await this.runc.resume(id); }

  async update(id: string, bundle: string, resources: object): Promise<void> {
    const file = path.join(bundle, 'update.json');
    await fsp.writeFile(file, JSON.stringify(resources));
    try {
      await this.runc.update(id, file);
    } finally {
      await fsp.rm(file, { force: true });
    }
  }

  ps(id: string): Promise<number[]> { return this.runc.ps(id); }
  delete(id: string, force = false): Promise<void> { return this.runc.delete(id, force); }
  resize(dir: string, height: number, width: number): Promise<void> { return writeCtl(path.join(dir, 'ctl'), height, width); }

  reopenLog(dir: string): Promise<void> { return writeCtlReopenLog(path.join(dir, 'ctl')); }

  /** `runc exec` (not detached): runc waits for the process and exits with its status. */
  execDirect(o: DirectExecOptions): DirectExec {
    const child = spawnChild(this.runtimePath, ['--root', this.runcRoot, 'exec', '--process', o.processSpec, '--pid-file', o.pidFile, o.id], {
      env: { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' }, stdio: ['null', 'out', 'out'],
    });
    return {
      output: [child.stdio[1]!, child.stdio[2]!],
      exited: child.exited,
      kill: (signal) => child.kill(signal),
    };
  }

  exec(o: TaskExecOptions): ExecSession {
    return conmonExec({
      conmon: this.opts.conmon, runc: this.runtimePath, runcRoot: this.runcRoot,
      cid: o.id, execId: o.execId, bundle: o.dir, pidFile: path.join(o.dir, 'pidfile'), conmonPidFile: path.join(o.dir, 'conmon.pid'),
      terminal: o.terminal, stdin: o.stdin, processSpec: o.processSpec,
    });
  }

  async exitedIds(): Promise<string[]> {
    try { return await fsp.readdir(this.exitDir); } catch { return []; }
  }

  async readExit(id: string): Promise<number | null | undefined> {
    let text: string;
    try { text = (await fsp.readFile(path.join(this.exitDir, id), 'utf8')).trim(); } catch { return undefined; }
    return text === '' ? null : Number.parseInt(text, 10);
  }

  async clearExit(id: string): Promise<void> {
    await fsp.rm(path.join(this.exitDir, id), { force: true }).catch(() => undefined);
  }

  monitorAlive(pid: number): boolean {
    if (!pid) return false;
    try {
      return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'conmon';
    } catch {
      return false;
    }
  }
}
