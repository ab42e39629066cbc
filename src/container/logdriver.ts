/**
 * Logging drivers as Docker names them: `json-file` (the default), `local` and `none`.
 * conmon writes every container's log (k8s-file lines, so a berthd crash loses no line);
 * the driver decides whether there is a log at all and how it is rotated. Rotation is
 * done by berthd: when the file reaches max-size it is renamed to `<log>.1` (older ones
 * shift up to max-file - 1) and conmon is told through its ctl FIFO to reopen its log,
 * which it does by creating a fresh file at the path. Lines written between the rename
 * and the reopen land in `<log>.1`, so none is lost, and `logs` reads the files oldest first.
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { invalidArgument } from '../common/errors';

import type { LogConfig } from '../engine/types';
export type { LogConfig };

export const DEFAULT_LOG_DRIVER = 'json-file';
const DRIVERS = new Set(['json-file', 'local', 'none']);
const JSON_FILE_OPTS = new Set(['max-file', 'max-size', 'compress', 'labels', 'labels-regex', 'env', 'env-regex', 'tag']);
const LOCAL_OPTS = new Set(['max-file', 'max-size', 'compress']);
/** Options every driver takes (Docker's builtInLogOpts). */
const BUILT_IN_OPTS = new Set(['mode', 'max-buffer-size']);

/** The drivers `info` lists under Plugins.Log. */
export function logDrivers(): string[] { return [...DRIVERS].sort(); }

/** go-units FromHumanSize: decimal units (k = 1000), as json-file's max-size. */
function fromHumanSize(v: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgGtTpP]?)[bB]?$/.exec(v.trim());
  if (!m) throw invalidArgument(`invalid size: '${v}'`);
  const pow = ' kmgtp'.indexOf(m[2].toLowerCase() || ' ');
  return Math.floor(Number(m[1]) * 1000 ** pow);
}

function atoi(v: string): number {
  if (!/^[+-]?\d+$/.test(v)) throw invalidArgument(`strconv.Atoi: parsing ${JSON.stringify(v)}: invalid syntax`);
  return Number(v);
}

function parseBool(v: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw invalidArgument(`strconv.ParseBool: parsing ${JSON.stringify(v)}: invalid syntax`);
}

/** How a log is rotated: undefined when it only grows. */
export interface Rotation { maxSize: number; maxFiles: number }

/** Checks a driver's options with Docker's words; returns the rotation they ask for. */
function checkOptions(type: string, cfg: Record<string, string>): Rotation | undefined {
  if (type === 'none') return undefined;
  const mode = cfg.mode ?? '';
  if (mode !== '' && mode !== 'blocking' && mode !== 'non-blocking') throw invalidArgument(`logger: logging mode not supported: ${mode}`);
  if (cfg['max-buffer-size'] !== undefined && mode !== 'non-blocking') {
    throw invalidArgument(`logger: max-buffer-size option is only supported with 'mode=non-blocking'`);
  }
  if (!DRIVERS.has(type)) throw invalidArgument(`logger: no log driver named '${type}' is registered`);
  const allowed = type === 'local' ? LOCAL_OPTS : JSON_FILE_OPTS;
  for (const k of Object.keys(cfg)) {
    if (BUILT_IN_OPTS.has(k) || allowed.has(k)) continue;
    throw invalidArgument(type === 'local' ? `unknown log opt '${k}' for log driver local` : `unknown log opt '${k}' for json-file log driver`);
  }
  if (type === 'local') {
    // Docker's local driver: 20 MB files, 5 of them, unless told otherwise.
    const maxSize = cfg['max-size'] !== undefined ? fromHumanSize(cfg['max-size']) : 20 * 1024 * 1024;
    if (maxSize < 0) throw invalidArgument('max size should be a positive number');
    const maxFiles = cfg['max-file'] !== undefined ? atoi(cfg['max-file']) : 5;
    if (maxFiles < 0) throw invalidArgument('max file count cannot be less than 0');
    const compress = cfg.compress !== undefined ? parseBool(cfg.compress) : true;
    if (compress && cfg['max-file'] !== undefined && maxFiles <= 1) throw invalidArgument('compression cannot be enabled when max file count is 1');
    return maxSize > 0 ? { maxSize, maxFiles: Math.max(1, maxFiles) } : undefined;
  }
  let maxSize = -1;
  if (cfg['max-size'] !== undefined) {
    maxSize = fromHumanSize(cfg['max-size']);
    if (maxSize <= 0) throw invalidArgument('max-size must be a positive number');
  }
  let maxFiles = 1;
  if (cfg['max-file'] !== undefined) {
    maxFiles = atoi(cfg['max-file']);
    if (maxFiles < 1) throw invalidArgument('max-file cannot be less than 1');
  }
  if (cfg.compress !== undefined && parseBool(cfg.compress) && (maxFiles === 1 || maxSize === -1)) {
    throw invalidArgument('compress cannot be true when max-file is less than 2 or max-size is not set');
  }
  return maxSize > 0 ? { maxSize, maxFiles } : undefined;
}

/**
 * HostConfig.LogConfig at create, as dockerd's mergeAndVerifyLogConfig: an empty type is the
 * daemon's default, whose default options fill in what the container did not set.
 */
export function resolveLogConfig(given: unknown, defaults: { type?: string; opts?: Record<string, string> }): LogConfig {
  const lc = (given && typeof given === 'object' ? given : {}) as { Type?: unknown; Config?: unknown };
  const defType = defaults.type || DEFAULT_LOG_DRIVER;
  const type = typeof lc.Type === 'string' && lc.Type !== '' ? lc.Type : defType;
  const config: Record<string, string> = {};
  if (lc.Config && typeof lc.Config === 'object') {
    for (const [k, v] of Object.entries(lc.Config as Record<string, unknown>)) config[k] = String(v);
  }
  if (type === defType) for (const [k, v] of Object.entries(defaults.opts ?? {})) if (!(k in config)) config[k] = v;
  checkOptions(type, config);
  return { Type: type, Config: config };
}

/** The rotation a (validated) log config asks for. */
export function rotationOf(lc: LogConfig | undefined): Rotation | undefined {
  try { return lc ? checkOptions(lc.Type, lc.Config ?? {}) : undefined; } catch { return undefined; }
}

/** Whether the driver keeps a log that `logs` can read. */
export function keepsLog(lc: unknown): boolean {
  const type = lc && typeof lc === 'object' ? (lc as { Type?: unknown }).Type : undefined;
  return (type || DEFAULT_LOG_DRIVER) !== 'none';
}

export const READ_NOT_SUPPORTED = 'configured logging driver does not support reading';

/** A log's files, oldest first: `<log>.N` … `<log>.1`, `<log>` (those that exist). */
export async function logFiles(logPath: string): Promise<string[]> {
  const rotated: Array<{ n: number; p: string }> = [];
  const dir = logPath.slice(0, logPath.lastIndexOf('/'));
  const base = logPath.slice(logPath.lastIndexOf('/') + 1);
  for (const name of await fsp.readdir(dir).catch(() => [] as string[])) {
    const m = name.startsWith(`${base}.`) ? /^(\d+)$/.exec(name.slice(base.length + 1)) : null;
    if (m) rotated.push({ n: Number(m[1]), p: `${dir}/${name}` });
  }
  rotated.sort((a, b) => b.n - a.n);
  return [...rotated.map((r) => r.p), logPath];
}

/**
 * Renames the full log aside (keeping `maxFiles` files in all) and asks conmon to reopen.
 * `reopen` writes conmon's ctl message; when it fails (conmon gone) the renamed file stays
 * the newest, which readers handle as a missing current file.
 */
export async function rotateLog(logPath: string, maxFiles: number, reopen: () => Promise<void>): Promise<void> {
  if (maxFiles <= 1) {
    // Only the current file is kept: the old one goes once conmon writes to the new one.
    const aside = `${logPath}.1`;
    await fsp.rename(logPath, aside);
    await reopen().catch(() => undefined);
    await fsp.rm(aside, { force: true });
    return;
  }
  await fsp.rm(`${logPath}.${maxFiles - 1}`, { force: true });
  for (let i = maxFiles - 2; i >= 1; i--) await fsp.rename(`${logPath}.${i}`, `${logPath}.${i + 1}`).catch(() => undefined);
  await fsp.rename(logPath, `${logPath}.1`);
  await reopen().catch(() => undefined);
}

/** Removes every rotated file of a log (the current one is the caller's). */
export async function removeRotated(logPath: string): Promise<void> {
  for (const f of (await logFiles(logPath)).slice(0, -1)) await fsp.rm(f, { force: true });
}

/**
 * Watches the logs of running containers that have a max-size and rotates them. Nothing is
 * watched for containers without one, so the default costs nothing.
 */
export class LogRotator {
  private readonly watched = new Map<string, { watcher: fs.FSWatcher; timer: NodeJS.Timeout }>();

  watch(id: string, logPath: string, rotation: Rotation | undefined, reopen: () => Promise<void>): void {
    this.unwatch(id);
    if (!rotation) return;
    let busy = false;
    let again = false;
    const check = async (): Promise<void> => {
      if (busy) { again = true; return; }
      busy = true;
      try {
        do {
          again = false;
          const st = await fsp.stat(logPath).catch(() => undefined);
          if (st && st.size >= rotation.maxSize) await rotateLog(logPath, rotation.maxFiles, reopen).catch(() => undefined);
        } while (again);
      } finally {
        busy = false;
      }
    };
    let watcher: fs.FSWatcher;
    try {
      // The directory, not the file: the file is replaced at every rotation.
      watcher = fs.watch(logPath.slice(0, logPath.lastIndexOf('/')), () => void check());
      watcher.on('error', () => undefined);
    } catch {
      return;
    }
    // inotify can drop events under load; a slow sweep catches up.
    const timer = setInterval(() => void check(), 5000);
    timer.unref();
    this.watched.set(id, { watcher, timer });
    void check();
  }

  unwatch(id: string): void {
    const w = this.watched.get(id);
    if (!w) return;
    w.watcher.close();
    clearInterval(w.timer);
    this.watched.delete(id);
  }

  close(): void { for (const id of [...this.watched.keys()]) this.unwatch(id); }
}

