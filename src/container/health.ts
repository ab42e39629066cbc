/**
 * HEALTHCHECK as dockerd runs it (moby daemon/health.go): a probe is an exec of the
 * healthcheck command inside the container on berthd's timer; State.Health keeps the
 * status (starting -> healthy / unhealthy), the failing streak and the last 5 results.
 * Probes run only for running, unpaused containers whose healthcheck is CMD or CMD-SHELL,
 * so a container without one costs nothing. The state is saved with the container record
 * after every probe and the monitors resume in restore(), so a berthd crash (kill -9)
 * interrupts them only while berthd is down.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { invalidArgument } from '../common/errors';
import { runcMessage } from '../runtime/runc';
import type { DirectExec, DirectExecOptions } from '../runtime/task';
import { nowRfc3339 } from './format';
import type { ContainerRecord } from './store';

const MS = 1_000_000; // nanoseconds per millisecond
const DEFAULT_INTERVAL = 30_000 * MS;
const DEFAULT_TIMEOUT = 30_000 * MS;
const DEFAULT_START_INTERVAL = 5_000 * MS;
const DEFAULT_RETRIES = 3;
const MAX_LOG_ENTRIES = 5;
const MAX_OUTPUT = 4096;
/** How long starting the probe's exec may take before the probe counts as failed (dockerd's 30 s). */
const EXEC_START_LIMIT_MS = 30_000;

import type { HealthConfig, HealthResult, HealthState } from '../engine/types';
export type { HealthConfig, HealthResult, HealthState };

const DURATIONS = ['Interval', 'Timeout', 'StartPeriod', 'StartInterval'] as const;

/**
 * Checks a create body's Healthcheck with dockerd's words (a JSON type error as Go's decoder
 * reports it, then validateHealthCheck's limits). Nothing is created when it throws.
 */
export function validateHealthcheck(hc: unknown): void {
  if (hc === undefined || hc === null) return;
  const field = (name: string, type: string, v: unknown) =>
    invalidArgument(`json: cannot unmarshal ${goType(v)} into Go struct field HealthConfig.Healthcheck.${name} of type ${type}`);
  if (typeof hc !== 'object' || Array.isArray(hc)) throw invalidArgument(`json: cannot unmarshal ${goType(hc)} into Go struct field Config.Healthcheck of type container.HealthConfig`);
  const h = hc as Record<string, unknown>;
  if (h.Test !== undefined && h.Test !== null && (!Array.isArray(h.Test) || h.Test.some((t) => typeof t !== 'string'))) {
    throw field('Test', '[]string', Array.isArray(h.Test) ? h.Test.find((t) => typeof t !== 'string') : h.Test);
  }
  for (const k of DURATIONS) {
    const v = h[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'number' || !Number.isInteger(v)) throw field(k, 'time.Duration', v);
    if (v !== 0 && v < MS) throw invalidArgument(`${k} in Healthcheck cannot be less than 1ms`);
  }
  if (h.Retries !== undefined && h.Retries !== null) {
    if (typeof h.Retries !== 'number' || !Number.isInteger(h.Retries)) throw field('Retries', 'int', h.Retries);
    if (h.Retries < 0) throw invalidArgument('Retries in Healthcheck cannot be negative');
  }
}

function goType(v: unknown): string {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number') return 'number';
  if (typeof v === 'boolean') return 'bool';
  if (Array.isArray(v)) return 'array';
  return 'object';
}

/**
 * Docker's merge of the user's healthcheck with the image's: each unset field comes from the
 * image. Zero fields are left out, as Go's `omitempty` does in what dockerd stores and shows.
 */
export function mergeHealthcheck(user: HealthConfig | null | undefined, image: HealthConfig | null | undefined): HealthConfig | undefined {
  if (!user && !image) return undefined;
  const out: HealthConfig = { ...(user ?? image) };
  if (user && image) {
    if (!out.Test?.length) out.Test = image.Test;
    for (const k of [...DURATIONS, 'Retries'] as const) if (!out[k]) out[k] = image[k];
  }
  const shown: HealthConfig = {};
  if (out.Test?.length) shown.Test = out.Test;
  for (const k of [...DURATIONS, 'Retries'] as const) if (out[k]) shown[k] = out[k];
  return shown;
}

/** Whether a healthcheck runs probes (CMD or CMD-SHELL; NONE or an unknown type does not). */
export function hasProbe(hc: HealthConfig | null | undefined): boolean {
  return !!hc?.Test?.length && (hc.Test[0] === 'CMD' || hc.Test[0] === 'CMD-SHELL');
}

/** Go's time.Duration String() for whole nanoseconds: 1s, 500ms, 1m30s, 1.5s. */
export function goDuration(ns: number): string {
  if (ns === 0) return '0s';
  if (ns < 1000) return `${ns}ns`;
  if (ns < MS) return `${trim(ns / 1000)}µs`;
  if (ns < 1e9) return `${trim(ns / MS)}ms`;
  let s = ns / 1e9;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${trim(s)}s`;
}

function trim(n: number): string {
  return String(Number(n.toFixed(9)));
}

/** What the monitor needs of the container service. */
export interface HealthHost {
  /** Runs the probe in the container (the runtime's execDirect). */
  exec(opts: DirectExecOptions): DirectExec;
  bundleDir(id: string): string;
  /** Saves the record (after every probe; not fsynced: a berthd crash keeps it). */
  save(rec: ContainerRecord): Promise<void>;
  emit(rec: ContainerRecord, action: string, extra?: Record<string, string>): void;
}

interface Monitor {
  rec: ContainerRecord;
  timer?: NodeJS.Timeout;
  /** Ends the probe in flight (the monitor stopped). */
  cancel?: () => void;
  stopped: boolean;
}

/** The health monitors of the running containers that have a healthcheck. */
export class HealthMonitors {
  private readonly monitors = new Map<string, Monitor>();

  constructor(private readonly host: HealthHost) {}

  /** A (re)started container: status back to starting, streak to 0 (the log is kept), probes begin. */
  started(rec: ContainerRecord): void {
    const hc = rec.Config.Healthcheck as HealthConfig | undefined;
    if (!hasProbe(hc)) return;
    this.stop(rec.Id);
    const prev = rec.State.Health as HealthState | undefined;
    rec.State.Health = { Status: 'starting', FailingStreak: 0, Log: prev?.Log ?? [] };
    this.open(rec);
  }

  /** Probes go on where they were (restore after a berthd restart, unpause); status kept. */
  resume(rec: ContainerRecord): void {
    if (!hasProbe(rec.Config.Healthcheck) || this.monitors.has(rec.Id)) return;
    if (!rec.State.Health) rec.State.Health = { Status: 'starting', FailingStreak: 0, Log: [] };
    this.open(rec);
  }

  /** The container stopped or paused: probes end and, as in dockerd, the status becomes unhealthy. */
  stopped(rec: ContainerRecord): void {
    this.stop(rec.Id);
    if (rec.State.Health) rec.State.Health.Status = 'unhealthy';
  }

  /** The container is gone. */
  forget(id: string): void { this.stop(id); }

  /** berthd shuts down: probes end, the recorded state stays as it is for restore(). */
  close(): void { for (const id of [...this.monitors.keys()]) this.stop(id); }

  private stop(id: string): boolean {
    const m = this.monitors.get(id);
    if (!m) return false;
    m.stopped = true;
    if (m.timer) clearTimeout(m.timer);
    m.cancel?.();
    this.monitors.delete(id);
    return true;
  }

  private open(rec: ContainerRecord): void {
    const m: Monitor = { rec, stopped: false };
    this.monitors.set(rec.Id, m);
    this.schedule(m);
  }

  /** dockerd's getInterval: the start interval while starting within the start period, never past its end. */
  private nextDelayMs(m: Monitor): number {
    const hc = m.rec.Config.Healthcheck as HealthConfig;
    const interval = hc.Interval || DEFAULT_INTERVAL;
    const startInterval = hc.StartInterval || DEFAULT_START_INTERVAL;
    const startPeriod = hc.StartPeriod || 0;
    const elapsed = (Date.now() - Date.parse(m.rec.State.StartedAt)) * MS;
    if (!(elapsed < startPeriod)) return interval / MS;
    const remaining = startPeriod - elapsed;
    if (remaining < interval) return remaining / MS;
    return ((m.rec.State.Health as HealthState).Status === 'starting' ? startInterval : interval) / MS;
  }

  private schedule(m: Monitor): void {
    if (m.stopped) return;
    m.timer = setTimeout(() => {
      m.timer = undefined;
      void this.probe(m).then((result) => this.apply(m, result)).finally(() => this.schedule(m));
    }, Math.max(0, this.nextDelayMs(m)));
  }

  /** dockerd's handleProbeResult. */
  private async apply(m: Monitor, result: HealthResult | undefined): Promise<void> {
    if (m.stopped || !result) return;
    const rec = m.rec;
    const hc = rec.Config.Healthcheck as HealthConfig;
    const h = rec.State.Health as HealthState;
    const old = h.Status;
    h.Log = [...h.Log, result].slice(-MAX_LOG_ENTRIES);
    if (result.ExitCode === 0) {
      h.FailingStreak = 0;
      h.Status = 'healthy';
    } else {
      // Failures within the start period do not count while the container has never been healthy.
      const inStartPeriod = h.Status === 'starting' && (Date.parse(result.Start) - Date.parse(rec.State.StartedAt)) * MS < (hc.StartPeriod || 0);
      if (!inStartPeriod) {
        h.FailingStreak++;
        if (h.FailingStreak >= (hc.Retries && hc.Retries > 0 ? hc.Retries : DEFAULT_RETRIES)) h.Status = 'unhealthy';
      }
    }
    await this.host.save(rec).catch(() => undefined);
    if (h.Status !== old && !m.stopped) this.host.emit(rec, `health_status: ${h.Status}`);
  }

  /** One probe: the healthcheck command run by `runc exec` with the container's process settings. */
  private async probe(m: Monitor): Promise<HealthResult | undefined> {
    const rec = m.rec;
    const hc = rec.Config.Healthcheck as HealthConfig;
    const test = hc.Test ?? [];
    const shell = rec.Config.Shell?.length ? rec.Config.Shell : ['/bin/sh', '-c'];
    const cmd: string[] = test[0] === 'CMD-SHELL' ? [...shell, ...test.slice(1)] : test.slice(1);
    const start = nowRfc3339();
    const failed = (output: string): HealthResult => ({ Start: start, End: nowRfc3339(), ExitCode: -1, Output: output });
    if (cmd.length === 0) return failed('no healthcheck command');
    const execId = randomBytes(32).toString('hex');
    const dir = path.join(this.host.bundleDir(rec.Id), `health-${execId.slice(0, 12)}`);
    try {
      const spec = JSON.parse(await fsp.readFile(path.join(this.host.bundleDir(rec.Id), 'config.json'), 'utf8'));
      await fsp.mkdir(dir);
      const processFile = path.join(dir, 'process.json');
      await fsp.writeFile(processFile, JSON.stringify({ ...spec.process, terminal: false, args: cmd, consoleSize: undefined }));
      if (m.stopped) return undefined;
      this.host.emit(rec, `exec_create: ${cmd.join(' ')}`, { execID: execId });
      return await this.runExec(m, rec, execId, dir, processFile, cmd, start, hc.Timeout || DEFAULT_TIMEOUT);
    } catch (err) {
      return failed((err as Error).message);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  private runExec(m: Monitor, rec: ContainerRecord, execId: string, dir: string, processFile: string, cmd: string[],
    start: string, timeoutNs: number): Promise<HealthResult | undefined> {
    const pidFile = path.join(dir, 'pid');
    const child = this.host.exec({ id: rec.Id, processSpec: processFile, pidFile });
    // stdout and stderr into one buffer, as dockerd's limitedBuffer.
    let out = Buffer.alloc(0);
    let truncated = false;
    for (const s of child.output) {
      s.on('data', (d: Buffer) => {
        const room = MAX_OUTPUT - out.length;
        if (room > 0) out = Buffer.concat([out, d.subarray(0, room)]);
        if (d.length > room) truncated = true;
      });
    }
    const output = () => out.toString('utf8') + (truncated ? '...' : '');
    let exited = false;
    let timedOut = false;
    let startTimer: NodeJS.Timeout | undefined;
    let probeTimer: NodeJS.Timeout | undefined;
    let watcher: fs.FSWatcher | undefined;
    const killProbe = () => {
      // The probe's own process (runc forwards no SIGKILL); runc then reports its exit.
      const pid = Number(fs.readFileSync(pidFile, { encoding: 'utf8', flag: 'r' }).trim());
      if (pid > 0 && !exited) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    };
    let escalate: NodeJS.Timeout | undefined;
    const kill = () => {
      try { killProbe(); } catch { child.kill('SIGKILL'); }
      // runc itself waits for the probe's output; if an orphan of the probe holds it, runc goes too.
      escalate ??= setTimeout(() => child.kill('SIGKILL'), 2000);
    };
    m.cancel = kill;
    let began = false;
    const begin = () => {
      // The timeout counts from the start of the probe's process, not of runc (as dockerd).
      if (began || exited || !fs.existsSync(pidFile)) return;
      began = true;
      if (startTimer) clearTimeout(startTimer);
      this.host.emit(rec, `exec_start: ${cmd.join(' ')}`, { execID: execId });
      probeTimer = setTimeout(() => { timedOut = true; kill(); }, timeoutNs / MS);
    };
    try {
      watcher = fs.watch(dir, begin);
      watcher.on('error', () => undefined);
    } catch { /* the exit tells */ }
    startTimer = setTimeout(() => child.kill('SIGKILL'), EXEC_START_LIMIT_MS);
    begin();
    const eof = (sock: NodeJS.ReadableStream | null) => new Promise<void>((r) => {
      if (!sock) { r(); return; }
      sock.once('end', () => r());
      sock.once('close', () => r());
    });
    const drained = Promise.all(child.output.map(eof));
    return child.exited.then(async (exit) => {
      exited = true;
      began = began || fs.existsSync(pidFile);
      for (const t of [startTimer, probeTimer, escalate]) if (t) clearTimeout(t);
      watcher?.close();
      m.cancel = undefined;
      // What runc wrote before it exited is still in the pipes; an orphan could hold them open, so not forever.
      let cap: NodeJS.Timeout | undefined;
      await Promise.race([drained, new Promise<void>((r) => { cap = setTimeout(r, 1000); })]);
      if (cap) clearTimeout(cap);
      for (const sock of child.output) sock.destroy();
      if (m.stopped) return undefined;
      const end = nowRfc3339();
      if (!began) {
        return { Start: start, End: end, ExitCode: -1, Output: `OCI runtime exec failed: ${runcMessage(output())}: unknown` };
      }
      const code = exit.signal ? 128 + exit.signal : exit.code;
      this.host.emit(rec, 'exec_die', { execID: execId, exitCode: String(code) });
      if (timedOut) {
        const text = output();
        const limit = goDuration(timeoutNs);
        return { Start: start, End: end, ExitCode: -1, Output: text ? `Health check exceeded timeout (${limit}): ${text}` : `Health check exceeded timeout (${limit})` };
      }
      return { Start: start, End: end, ExitCode: code, Output: output() };
    });
  }
}
