/**
 * Exec sessions: each runs under its own conmon (`--exec --exec-attach`),
 * which gives TTY execs a pty (runc's console socket needs SCM_RIGHTS, which
 * Node cannot receive) and lets us attach before the process starts.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { conflict, internal, notFound } from '../common/errors';
import { encodeFrame } from '../common/stdcopy';
import { runcMessage } from '../runtime/runc';
import { TaskStartError, type TaskRuntime } from '../runtime/task';
import { hostBoundingCapabilities } from '../runtime/caps';
import { resolveUser } from '../runtime/user';
import { AttachBridge } from './attach';
import { mergeEnv } from './createconfig';
import { parseDetachKeys } from './detachkeys';
import type { ContainerRecord } from './store';

/** What exec needs of the container service (narrow, so exec.ts does not import service.ts). */
export interface ExecHost {
  readonly runtime: TaskRuntime;
  readonly config: { execRoot: string };
  /** The live record of a container. */
  get(idOrName: string): ContainerRecord;
  bundleDir(id: string): string;
  emit(rec: ContainerRecord, action: string, extra?: Record<string, string>): void;
  /** The daemon's log (an attach session that could not carry the output). */
  warn(msg: string): void;
}

interface ExecRec {
  ID: string;
  ContainerID: string;
  Running: boolean;
  ExitCode: number | null;
  Pid: number;
  OpenStdin: boolean;
  OpenStdout: boolean;
  OpenStderr: boolean;
  CanRemove: boolean;
  DetachKeys: string;
  ProcessConfig: { entrypoint: string; arguments: string[]; tty: boolean; user: string; privileged: boolean };
  body: any;
  started: boolean;
  dir?: string;
  /** Resolves once the process runs, or its start failed (a resize waits for it, as dockerd's does). */
  running: Promise<void>;
  markRunning: () => void;
}

/** ExecConfig's fields, as dockerd decodes them. */
const EXEC_CONFIG_FIELDS = ['User', 'Privileged', 'Tty', 'ConsoleSize', 'AttachStdin', 'AttachStderr', 'AttachStdout',
  'DetachKeys', 'Env', 'WorkingDir', 'Cmd'];

/**
 * A JSON body with its keys named as Go's decoder matches them: an exact name, else one
 * that differs only in case (docker-py sends `detachKeys`).
 */
function goFieldNames(body: Record<string, unknown>, fields: string[]): Record<string, any> {
  const out: Record<string, unknown> = {};
  const byLower = new Map(fields.map((f) => [f.toLowerCase(), f]));
  for (const [k, v] of Object.entries(body ?? {})) {
    const name = fields.includes(k) ? k : byLower.get(k.toLowerCase()) ?? k;
    if (!(name in out) || name === k) out[name] = v;
  }
  return out;
}

/** How long a resize waits for its exec to start (dockerd's figure). */
const RESIZE_WAIT_MS = 10_000;

export class ExecManager {
  private readonly execs = new Map<string, ExecRec>();

  constructor(private readonly svc: ExecHost) {}

  async create(rec: ContainerRecord, given: any): Promise<{ Id: string }> {
    const body = goFieldNames(given, EXEC_CONFIG_FIELDS);
    if (!rec.State.Running) throw conflict(`Container ${rec.Id} is not running`);
    if (rec.State.Paused) throw conflict(`Container ${rec.Id} is paused, unpause the container before exec`);
    const cmd: string[] = Array.isArray(body?.Cmd) ? body.Cmd.map(String) : typeof body?.Cmd === 'string' ? [body.Cmd] : [];
    if (cmd.length === 0) throw conflict('No exec command specified');
    // Checked now, as dockerd does, so that a bad sequence is a 400 at create.
    if (body.DetachKeys) parseDetachKeys(String(body.DetachKeys));
    const id = randomBytes(32).toString('hex');
    let markRunning!: () => void;
    const running = new Promise<void>((r) => { markRunning = r; });
    this.execs.set(id, {
      ID: id,
      ContainerID: rec.Id,
      Running: false,
      ExitCode: null,
      Pid: 0,
      OpenStdin: !!body.AttachStdin,
      OpenStdout: !!body.AttachStdout,
      OpenStderr: !!body.AttachStderr,
      CanRemove: false,
      DetachKeys: body.DetachKeys ?? '',
      ProcessConfig: { entrypoint: cmd[0], arguments: cmd.slice(1), tty: !!body.Tty, user: body.User ?? '', privileged: !!body.Privileged },
      body,
      started: false,
      running,
      markRunning,
    });
    this.svc.emit(rec, `exec_create: ${cmd.join(' ')}`, { execID: id });
    return { Id: id };
  }

  private find(id: string): ExecRec {
    const e = this.execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    return e;
  }

  async inspect(id: string): Promise<any> {
    const e = this.find(id);
    const { body: _b, started: _s, dir: _d, running: _r, markRunning: _m, ...pub } = e;
    return { ...pub, ProcessConfig: { ...e.ProcessConfig, arguments: [...e.ProcessConfig.arguments] } };
  }

  /**
   * Resizes the exec's TTY. The docker CLI sends its first resize right after the start
   * request, usually before the process exists: like dockerd, wait for it to run (10 s at most).
   */
  async resize(id: string, height: number, width: number): Promise<void> {
    const e = this.find(id);
    let timer: NodeJS.Timeout | undefined;
    const started = await Promise.race([
      e.running.then(() => true),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(false), RESIZE_WAIT_MS); }),
    ]);
    clearTimeout(timer);
    if (!started) throw internal('timeout waiting for exec session ready');
    if (!e.Running || !e.dir) throw conflict(`Exec ${id} is not running`);
    await this.svc.runtime.resize(e.dir, height, width);
  }

  /** The container stopped: its execs are gone with it. */
  containerStopped(containerId: string): void {
    for (const e of this.execs.values()) {
      if (e.ContainerID === containerId && !e.Running) this.execs.delete(e.ID);
    }
  }

  private async processSpec(rec: ContainerRecord, e: ExecRec, bundle: string): Promise<any> {
    const spec = JSON.parse(await fsp.readFile(path.join(bundle, 'config.json'), 'utf8'));
    const base = spec.process ?? {};
    const b = e.body;
    const proc: any = {
      ...base,
      terminal: !!b.Tty,
      args: [e.ProcessConfig.entrypoint, ...e.ProcessConfig.arguments],
      env: mergeEnv(base.env, b.Env),
      cwd: b.WorkingDir || base.cwd || '/',
    };
    if (b.Tty && Array.isArray(b.ConsoleSize) && b.ConsoleSize[0] > 0) {
      proc.consoleSize = { height: b.ConsoleSize[0], width: b.ConsoleSize[1] };
    } else delete proc.consoleSize;
    if (b.User) {
      const u = resolveUser(path.join(bundle, 'rootfs'), String(b.User), rec.HostConfig.GroupAdd ?? undefined);
      proc.user = { uid: u.uid, gid: u.gid, additionalGids: u.additionalGids };
    }
    if (b.Privileged) {
      const all = hostBoundingCapabilities();
      proc.capabilities = { bounding: all, effective: all, permitted: all, inheritable: [], ambient: [] };
    }
    return proc;
  }

  async start(id: string, body: { Detach?: boolean; Tty?: boolean }, socket: Duplex | undefined): Promise<void> {
    const e = this.find(id);
    if (e.started) throw conflict(`Error: Exec command ${id} has already run`);
    const rec = this.svc.get(e.ContainerID);
    if (!rec.State.Running) throw conflict(`Container ${rec.Id} is not running`);
    if (rec.State.Paused) throw conflict(`Container ${rec.Id} is paused, unpause the container before exec`);
    e.started = true;
    try {
      await this.run(e, rec, body, socket);
    } finally {
      e.markRunning();
    }
  }

  private async run(e: ExecRec, rec: ContainerRecord, body: { Detach?: boolean; Tty?: boolean }, socket: Duplex | undefined): Promise<void> {
    const id = e.ID;
    const startSize = (body as { ConsoleSize?: number[] }).ConsoleSize;
    if (Array.isArray(startSize) && startSize[0] > 0) e.body.ConsoleSize = startSize;
    const tty = e.ProcessConfig.tty;
    // The start request's Tty, not the exec's, decides the framing (dockerd's rule): a TTY exec
    // started with Tty=false (docker-py's default) gets its output in stdout frames.
    const raw = !!body.Tty;
    const bundle = this.svc.bundleDir(rec.Id);
    const dir = path.join(this.svc.config.execRoot, 'x', id.slice(0, 12));
    e.dir = dir;
    await fsp.mkdir(dir, { recursive: true });
    const specPath = path.join(dir, 'process.json');
    let exitKnown!: () => void;
    const exitKnownP = new Promise<void>((r) => { exitKnown = r; });
    const bridge = socket && !body.Detach
      ? new AttachBridge(socket, {
        tty: raw, stdin: e.OpenStdin, stdout: e.OpenStdout, stderr: e.OpenStderr, closeStdinOnEof: !tty,
        detachKeys: tty ? parseDetachKeys(e.DetachKeys || undefined) : undefined,
        holdEnd: () => Promise.race([exitKnownP, new Promise((r) => setTimeout(r, 2000))]),
        onTrouble: (what) => this.svc.warn(`exec ${id.slice(0, 12)}: ${what}`),
      })
      : undefined;
    const cleanupDir = () => fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    let session;
    try {
      await fsp.writeFile(specPath, JSON.stringify(await this.processSpec(rec, e, bundle)));
      session = this.svc.runtime.exec({ id: rec.Id, execId: id, dir, processSpec: specPath, terminal: tty, stdin: e.OpenStdin });
      await session.attachReady;
      if (bridge) await bridge.connect(path.join(dir, 'attach'));
      e.Pid = await session.go();
    } catch (err) {
      e.ExitCode = err instanceof TaskStartError && /executable file not found/.test(err.runtimeMessage) ? 127 : 126;
      const text = err instanceof TaskStartError
        ? `OCI runtime exec failed: ${runcMessage(err.runtimeMessage)}: unknown`
        : `exec failed: ${(err as Error).message}`;
      if (bridge) {
        // Docker reports a failed exec start inside the hijacked stream, as stdout.
        bridge.writeRaw(raw ? Buffer.from(text + '\r\n') : encodeFrame(1, text + '\n'));
        exitKnown();
        bridge.finish('the exec did not start');
        await cleanupDir();
        return;
      }
      exitKnown();
      await cleanupDir();
      throw conflict(text);
    }
    e.Running = true;
    e.markRunning();
    this.svc.emit(rec, `exec_start: ${[e.ProcessConfig.entrypoint, ...e.ProcessConfig.arguments].join(' ')}`, { execID: id });
    const finished = session.exited().then(async (code) => {
      e.ExitCode = code;
      e.Running = false;
      e.Pid = 0;
      exitKnown();
      await cleanupDir();
      this.svc.emit(rec, 'exec_die', { execID: id, exitCode: String(code) });
    }, async () => {
      e.Running = false;
      e.ExitCode = e.ExitCode ?? 126;
      exitKnown();
      await cleanupDir();
    });
    if (!bridge) return;
    await bridge.done;
    // The client ended the session (detach keys, end of a TTY's stdin): the process runs on without it.
    if (!bridge.endedByClient) await finished;
  }
}
