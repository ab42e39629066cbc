/**
 * Reads conmon's k8s-file container log and turns it into Docker's logs
 * stream: `<RFC3339Nano local ts> stdout|stderr F|P <content>` per record;
 * P is a partial line (the newline is conmon's, not the container's).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { encodeFrame } from '../common/stdcopy';

export interface LogRecord {
  /** RFC3339Nano in UTC, as Docker prints it. */
  time: string;
  /** Unix seconds with fraction, for since/until. */
  unix: number;
  stream: 'stdout' | 'stderr';
  partial: boolean;
  content: Buffer;
}

/** `2024-05-01T12:34:56.123456789+02:00` -> UTC `2024-05-01T10:34:56.123456789Z` and unix seconds. */
export function toUtc(ts: string): { time: string; unix: number } | undefined {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(ts);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (!Number.isFinite(ms)) return undefined;
  const frac = (m[2] ?? '').replace(/0+$/, '');
  const base = new Date(ms).toISOString().slice(0, 19);
  return { time: `${base}${frac ? '.' + frac : ''}Z`, unix: ms / 1000 + (frac ? Number('0.' + frac) : 0) };
}

/** Parses one log line (without its trailing newline). */
export function parseLogLine(line: Buffer): LogRecord | undefined {
  const s1 = line.indexOf(0x20);
  if (s1 < 0) return undefined;
  const s2 = line.indexOf(0x20, s1 + 1);
  if (s2 < 0) return undefined;
  const s3 = line.indexOf(0x20, s2 + 1);
  const tagEnd = s3 < 0 ? line.length : s3;
  const ts = toUtc(line.subarray(0, s1).toString('latin1'));
  const stream = line.subarray(s1 + 1, s2).toString('latin1');
  const tag = line.subarray(s2 + 1, tagEnd).toString('latin1');
  if (!ts || (stream !== 'stdout' && stream !== 'stderr')) return undefined;
  return {
    time: ts.time,
    unix: ts.unix,
    stream,
    partial: tag.startsWith('P'),
    content: s3 < 0 ? Buffer.alloc(0) : line.subarray(s3 + 1),
  };
}

/** Splits complete lines off a buffer; returns the records and the unconsumed tail. */
export function parseChunk(buf: Buffer): { records: LogRecord[]; rest: Buffer } {
  const records: LogRecord[] = [];
  let start = 0;
  let nl: number;
  while ((nl = buf.indexOf(0x0a, start)) >= 0) {
    const r = parseLogLine(buf.subarray(start, nl));
    if (r) records.push(r);
    start = nl + 1;
  }
  return { records, rest: buf.subarray(start) };
}

export interface LogFormat {
  tty: boolean;
  stdout: boolean;
  stderr: boolean;
  timestamps: boolean;
  since?: number;
  until?: number;
}

/** Docker bytes for one record (undefined when filtered out). */
export function formatRecord(r: LogRecord, f: LogFormat): Buffer | undefined {
  if (r.stream === 'stdout' ? !f.stdout : !f.stderr) return undefined;
  if (f.since !== undefined && f.since > 0 && r.unix < f.since) return undefined;
  if (f.until !== undefined && f.until > 0 && r.unix > f.until) return undefined;
  let payload = r.partial ? r.content : Buffer.concat([r.content, Buffer.from('\n')]);
  if (f.timestamps) payload = Buffer.concat([Buffer.from(r.time + ' '), payload]);
  if (f.tty) return payload;
  return encodeFrame(r.stream === 'stdout' ? 1 : 2, payload);
}

/** Records to show for `tail` (counted in lines: a P..F run is one line). */
export function tailRecords(records: LogRecord[], tail: number | 'all'): LogRecord[] {
  if (tail === 'all' || tail < 0) return records;
  if (tail === 0) return [];
  let lines = 0;
  let i = records.length;
  while (i > 0) {
    const r = records[i - 1];
    if (!r.partial) {
      if (lines === tail) break;
      lines++;
    }
    i--;
  }
  return records.slice(i);
}

function writeOut(out: Writable, buf: Buffer): Promise<void> {
  if (out.destroyed || out.writableEnded) return Promise.resolve();
  return new Promise((resolve) => {
    if (out.write(buf)) resolve();
    else {
      const done = () => { out.off('drain', done); out.off('close', done); resolve(); };
      out.once('drain', done);
      out.once('close', done);
    }
  });
}

export interface StreamLogsOptions extends LogFormat {
  tail: number | 'all';
  follow: boolean;
  /** True while the container can still produce output. */
  isRunning: () => boolean;
  /** Resolves when the container exits (only awaited when following). */
  exited: () => Promise<void>;
  abort: AbortSignal;
}

/** Writes the log to `out` (and, with follow, new lines until exit or abort). */
export async function streamLogs(logPath: string, out: Writable, o: StreamLogsOptions): Promise<void> {
  let fd: fsp.FileHandle | undefined;
  try {
    fd = await fsp.open(logPath, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  let offset = 0;
  let rest: Buffer = Buffer.alloc(0);
  const readNew = async (): Promise<LogRecord[]> => {
    if (!fd) {
      try { fd = await fsp.open(logPath, 'r'); } catch { return []; }
    }
    const chunks: Buffer[] = [rest];
    for (;;) {
      const buf = Buffer.alloc(1 << 16);
      const { bytesRead } = await fd.read(buf, 0, buf.length, offset);
      if (bytesRead === 0) break;
      offset += bytesRead;
      chunks.push(buf.subarray(0, bytesRead));
    }
    const parsed = parseChunk(Buffer.concat(chunks));
    rest = parsed.rest;
    return parsed.records;
  };
  try {
    const first = tailRecords(await readNew(), o.tail);
    for (const r of first) {
      const b = formatRecord(r, o);
      if (b) await writeOut(out, b);
    }
    if (!o.follow || o.abort.aborted) return;
    // Follow: wake on file changes, on exit, or on abort; poll as a safety net.
    let wake: (() => void) | undefined;
    const kick = () => { const w = wake; wake = undefined; w?.(); };
    let watcher: fs.FSWatcher | undefined;
    try { watcher = fs.watch(logPath, kick); watcher.on('error', () => {}); } catch { /* log not created yet */ }
    const timer = setInterval(kick, 250);
    o.abort.addEventListener('abort', kick);
    let exited = !o.isRunning();
    void o.exited().then(() => { exited = true; kick(); });
    try {
      for (;;) {
        const wasExited = exited;
        for (const r of await readNew()) {
          const b = formatRecord(r, o);
          if (b) await writeOut(out, b);
        }
        if (o.abort.aborted || out.destroyed || wasExited) break;
        await new Promise<void>((resolve) => { wake = resolve; });
        if (!watcher) { try { watcher = fs.watch(logPath, kick); watcher.on('error', () => {}); } catch { /* still absent */ } }
      }
    } finally {
      watcher?.close();
      clearInterval(timer);
      o.abort.removeEventListener('abort', kick);
    }
  } finally {
    await fd?.close();
  }
}
