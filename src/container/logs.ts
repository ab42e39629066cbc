/**
 * Reads conmon's k8s-file container log and turns it into Docker's logs
 * stream: `<RFC3339Nano local ts> stdout|stderr F|P <content>` per record;
 * P is a partial line (the newline is conmon's, not the container's).
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Writable } from 'node:stream';
import { encodeFrame } from '../common/stdcopy';
import { logFiles } from './logdriver';

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

/** One log file being read: its handle, inode, how far it was read and its unfinished line. */
interface OpenLog { fd: fsp.FileHandle; ino: number; offset: number; rest: Buffer }

/** The complete records appended to a file since the last read. */
async function readNew(f: OpenLog): Promise<LogRecord[]> {
  const chunks: Buffer[] = [f.rest];
  for (;;) {
    const buf = Buffer.alloc(1 << 16);
    const { bytesRead } = await f.fd.read(buf, 0, buf.length, f.offset);
    if (bytesRead === 0) break;
    f.offset += bytesRead;
    chunks.push(buf.subarray(0, bytesRead));
  }
  const parsed = parseChunk(Buffer.concat(chunks));
  f.rest = parsed.rest;
  return parsed.records;
}

/** The inodes of a log's files, oldest first, as seen twice alike (a rotation may run meanwhile). */
async function snapshot(logPath: string): Promise<Array<{ file: string; ino: number }>> {
  const once = async () => {
    const out: Array<{ file: string; ino: number }> = [];
    for (const file of await logFiles(logPath)) {
      const st = await fsp.stat(file).catch(() => undefined);
      if (st) out.push({ file, ino: st.ino });
    }
    return out;
  };
  let last = await once();
  for (let i = 0; i < 100; i++) {
    const again = await once();
    if (again.length === last.length && again.every((e, j) => e.ino === last[j].ino)) return again;
    last = again;
  }
  return last;
}

/**
 * Reads a log whose files rotate under it (`<log>.N` … `<log>.1`, `<log>`, see logdriver.ts).
 * Files are known by inode and kept open: a rotation renames them (a file keeps its inode and
 * its content), and conmon writes to a file only until the next one exists. So each pass
 * reads, oldest first, what every file has gained since the last pass: nothing is read twice
 * or skipped, however many rotations happened in between.
 */
class RotatingLogReader {
  private readonly known = new Map<number, OpenLog>();
  constructor(private readonly logPath: string) {}

  async readNew(): Promise<LogRecord[]> {
    const records: LogRecord[] = [];
    // A file renamed between the snapshot and its open: what was read stays read, a new snapshot goes on.
    for (let attempt = 0; attempt < 100; attempt++) {
      const files = await snapshot(this.logPath);
      const present = new Set(files.map((f) => f.ino));
      // Files removed (beyond max-file) since the last pass are older than every file left.
      for (const [ino, f] of [...this.known]) {
        if (present.has(ino)) continue;
        records.push(...await readNew(f));
        await f.fd.close().catch(() => undefined);
        this.known.delete(ino);
      }
      let moved = false;
      for (const { file, ino } of files) {
        let f = this.known.get(ino);
        if (!f) {
          const fd = await fsp.open(file, 'r').catch(() => undefined);
          if (!fd || (await fd.stat()).ino !== ino) { await fd?.close(); moved = true; break; }
          f = { fd, ino, offset: 0, rest: Buffer.alloc(0) };
          this.known.set(ino, f);
        }
        records.push(...await readNew(f));
      }
      if (!moved) break;
    }
    return records;
  }

  async close(): Promise<void> {
    for (const f of this.known.values()) await f.fd.close().catch(() => undefined);
    this.known.clear();
  }
}

/** Writes the log to `out` (and, with follow, new lines until exit or abort), across rotated files. */
export async function streamLogs(logPath: string, out: Writable, o: StreamLogsOptions): Promise<void> {
  const reader = new RotatingLogReader(logPath);
  const send = async (rs: LogRecord[]) => {
    for (const r of rs) {
      const b = formatRecord(r, o);
      if (b) await writeOut(out, b);
    }
  };
  try {
    await send(tailRecords(await reader.readNew(), o.tail));
    if (!o.follow || o.abort.aborted) return;
    // Follow: wake on changes in the log's directory (the file itself is replaced by a rotation),
    // on exit, or on abort; poll as a safety net.
    let wake: (() => void) | undefined;
    const kick = () => { const w = wake; wake = undefined; w?.(); };
    let watcher: fs.FSWatcher | undefined;
    try { watcher = fs.watch(path.dirname(logPath), kick); watcher.on('error', () => {}); } catch { /* directory gone */ }
    const timer = setInterval(kick, 250);
    o.abort.addEventListener('abort', kick);
    let exited = !o.isRunning();
    void o.exited().then(() => { exited = true; kick(); });
    try {
      for (;;) {
        const wasExited = exited;
        await send(await reader.readNew());
        if (o.abort.aborted || out.destroyed || wasExited) break;
        await new Promise<void>((resolve) => { wake = resolve; });
      }
    } finally {
      watcher?.close();
      clearInterval(timer);
      o.abort.removeEventListener('abort', kick);
    }
  } finally {
    await reader.close();
  }
}
