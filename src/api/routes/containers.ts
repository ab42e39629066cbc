/**
 * Container and exec routes. HTTP shape only: parse and validate the
 * request, call the ContainerService, serialise the answer the way dockerd
 * does (see shared/specs/docker-cli-wire). No container logic lives here.
 */
import * as fs from 'node:fs';
import { parseDetachKeys } from '../../container/detachkeys';
import * as os from 'node:os';
import type { Duplex } from 'node:stream';
import { commonHeaders, compareApi, type Ctx, type Router } from '../router';
import { BerthError, invalidArgument, isKind } from '../../common/errors';
import type { Services } from '../../engine/services';
import type { LogsOptions, WaitCondition } from '../../engine/types';
import { parseApiTimestamp } from './system';
import { labelMatches } from '../../common/labels';

const RAW_STREAM = 'application/vnd.docker.raw-stream';
const MULTIPLEXED_STREAM = 'application/vnd.docker.multiplexed-stream';

/** Container reference in a path: an id, id prefix or name, with or without the leading '/'. */
const REF = '(/?[^/]+)';

const LIST_FILTERS = new Set(['ancestor', 'before', 'expose', 'exited', 'health', 'id', 'isolation', 'is-task', 'label', 'name', 'network', 'publish', 'since', 'status', 'volume']);
const PRUNE_FILTERS = new Set(['until', 'label', 'label!']);

function ref(ctx: Ctx, i = 0): string {
  const r = ctx.params[i] ?? '';
  return r.startsWith('/') ? r.slice(1) : r;
}

/** 200 with `Content-Length: 0` and no Content-Type (resize, detached exec start). */
function sendEmpty(ctx: Ctx, status = 200): void {
  const res = ctx.res!;
  res.writeHead(status, { ...commonHeaders(), 'Content-Length': '0' });
  res.end();
}

/** dockerd's checkForJSON: a body, if any, must be labelled application/json. */
function requireJson(ctx: Ctx): void {
  const ct = ctx.req.headers['content-type'];
  const len = Number(ctx.req.headers['content-length'] ?? 0);
  const chunked = /chunked/i.test(String(ctx.req.headers['transfer-encoding'] ?? ''));
  if (!ct) {
    if (len === 0 && !chunked) return;
    throw invalidArgument(`unsupported Content-Type header (): must be 'application/json'`);
  }
  const media = ct.split(';')[0].trim().toLowerCase();
  if (media !== 'application/json') throw invalidArgument(`unsupported Content-Type header (${ct}): must be 'application/json'`);
}

/** Query integer in Go's strconv.Atoi style (the error text dockerd passes on). */
function atoi(ctx: Ctx, name: string): number {
  const v = ctx.query.get(name) ?? '';
  if (!/^[+-]?\d+$/.test(v)) throw invalidArgument(`strconv.Atoi: parsing ${JSON.stringify(v)}: invalid syntax`);
  return Number(v);
}

function optionalInt(ctx: Ctx, name: string): number | undefined {
  const v = ctx.query.get(name);
  if (v === null || v === '') return undefined;
  if (!/^[+-]?\d+$/.test(v)) throw invalidArgument(`strconv.Atoi: parsing ${JSON.stringify(v)}: invalid syntax`);
  return Number(v);
}

/** One stdcopy frame (stream 1 stdout, 2 stderr, 3 systemerr). */
export function stdcopyFrame(stream: number, payload: Buffer | string): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const hdr = Buffer.alloc(8);
  hdr[0] = stream;
  hdr.writeUInt32BE(body.length, 4);
  return Buffer.concat([hdr, body]);
}

/** Hijacked stream media type: dockerd labels the multiplexed case only from API 1.42 on. */
function streamType(ctx: Ctx, tty: boolean): string {
  return !tty && compareApi(ctx.version, '1.42') >= 0 ? MULTIPLEXED_STREAM : RAW_STREAM;
}

function endSocket(sock: Duplex): void {
  if (!sock.destroyed && !sock.writableEnded) sock.end();
}

function stopOpts(ctx: Ctx): { signal?: string; timeout?: number } {
  const opts: { signal?: string; timeout?: number } = {};
  const signal = ctx.query.get('signal');
  if (signal) opts.signal = signal;
  // `t` is the classic name; API 1.42 documents `timeout` too... accept both.
  const t = optionalInt(ctx, 't') ?? optionalInt(ctx, 'timeout');
  if (t !== undefined) opts.timeout = t;
  return opts;
}

export function registerContainerRoutes(router: Router, services: Services): void {
  const svc = services.containers;

  // ------------------------------------------------------------ collection

  router.post('/containers/create', async (ctx) => {
    requireJson(ctx);
    const name = ctx.query.get('name') || undefined;
    const buf = await ctx.bodyBuffer();
    if (buf.length === 0) throw invalidArgument('config cannot be empty in order to create a container');
    let body: any;
    try { body = JSON.parse(buf.toString('utf8')); } catch (err) { throw invalidArgument(`invalid JSON body: ${(err as Error).message}`); }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw invalidArgument('config cannot be empty in order to create a container');
    }
    const r = await svc.create(name, body);
    ctx.send(201, { Id: r.Id, Warnings: r.Warnings ?? [] });
  });

  router.get('/containers/json', async (ctx) => {
    const filters = ctx.filters();
    for (const k of Object.keys(filters)) if (!LIST_FILTERS.has(k)) throw invalidArgument(`invalid filter '${k}'`);
    // Pre-1.?? clients send before/since as their own parameters.
    for (const k of ['before', 'since'] as const) {
      const v = ctx.query.get(k);
      if (v) filters[k] = [...(filters[k] ?? []), v];
    }
    const limit = optionalInt(ctx, 'limit');
    const list = await svc.list({
      all: ctx.bool('all'),
      limit: limit !== undefined && limit > 0 ? limit : undefined,
      size: ctx.bool('size'),
      filters,
    });
    ctx.send(200, list);
  });

  router.post('/containers/prune', async (ctx) => {
    const filters = ctx.filters();
    for (const k of Object.keys(filters)) if (!PRUNE_FILTERS.has(k)) throw invalidArgument(`invalid filter '${k}'`);
    const now = Date.now() / 1000;
    const until = (filters.until ?? []).map((u) => parseApiTimestamp(u, now));
    const labels = filters.label ?? [];
    const notLabels = filters['label!'] ?? [];
    const candidates = await svc.list({ all: true, size: true, filters: labels.length ? { label: labels } : {} });
    const deleted: string[] = [];
    let reclaimed = 0;
    for (const c of candidates) {
      // Only containers that are not running (a paused one counts as running).
      if (c.State === 'running' || c.State === 'paused' || c.State === 'restarting' || c.State === 'removing') continue;
      if (until.length && !until.every((u) => Number(c.Created) < u)) continue;
      if (notLabels.some((kv) => labelMatches(c.Labels ?? {}, kv))) continue;
      try {
        await svc.remove(c.Id, { force: false, volumes: false });
      } catch (err) {
        if (isKind(err, 'not-found') || isKind(err, 'conflict')) continue; // removed or restarted meanwhile
        throw err;
      }
      deleted.push(c.Id);
      reclaimed += Number(c.SizeRw ?? 0);
    }
    services.events.emitEvent('container', 'prune', '', { reclaimed: String(reclaimed) });
    ctx.send(200, { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed });
  });

  // ------------------------------------------------------------ one container

  router.get(`/containers/${REF}/json`, async (ctx) => {
    ctx.send(200, await svc.inspect(ref(ctx), ctx.bool('size')));
  });

  router.post(`/containers/${REF}/start`, async (ctx) => {
    const body = (await ctx.bodyBuffer()).toString('utf8').trim();
    if (body !== '' && body !== '{}' && body !== 'null') {
      throw invalidArgument('starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24');
    }
    await svc.start(ref(ctx));
    ctx.send(204);
  });

  router.post(`/containers/${REF}/stop`, async (ctx) => {
    await svc.stop(ref(ctx), stopOpts(ctx));
    ctx.send(204);
  });

  router.post(`/containers/${REF}/restart`, async (ctx) => {
    await svc.restart(ref(ctx), stopOpts(ctx));
    ctx.send(204);
  });

  router.post(`/containers/${REF}/kill`, async (ctx) => {
    const name = ref(ctx);
    try {
      await svc.kill(name, ctx.query.get('signal') || undefined);
    } catch (err) {
      // dockerd's route wraps every kill error this way (75/81 in the wire captures).
      if (err instanceof BerthError && !err.message.startsWith('Cannot kill container')) {
        throw new BerthError(err.kind, `Cannot kill container: ${name}: ${err.message}`, { cause: err, exitCode: err.exitCode });
      }
      throw err;
    }
    ctx.send(204);
  });

  router.post(`/containers/${REF}/pause`, async (ctx) => {
    await svc.pause(ref(ctx));
    ctx.send(204);
  });

  router.post(`/containers/${REF}/unpause`, async (ctx) => {
    await svc.unpause(ref(ctx));
    ctx.send(204);
  });

  router.post(`/containers/${REF}/update`, async (ctx) => {
    ctx.send(200, await svc.update(ref(ctx), await ctx.json<any>({})));
  });

  router.post(`/containers/${REF}/rename`, async (ctx) => {
    const newName = ctx.query.get('name') ?? '';
    if (!newName) throw invalidArgument('Neither old nor new names may be empty');
    await svc.rename(ref(ctx), newName);
    ctx.send(204);
  });

  router.delete(`/containers/${REF}`, async (ctx) => {
    const name = ref(ctx);
    if (ctx.bool('link')) {
      // Berth has no legacy links, so there is never a link to remove; same words as dockerd's rmLink.
      const full = name.startsWith('/') ? name : `/${name}`;
      const parent = full.slice(0, full.lastIndexOf('/'));
      if (parent === '') throw new BerthError('conflict', 'Conflict, cannot remove the default link name of the container');
      throw new BerthError('not-found', `Cannot get parent ${parent} for link name ${full}`);
    }
    await svc.remove(name, { force: ctx.bool('force'), volumes: ctx.bool('v') });
    ctx.send(204);
  });

  router.post(`/containers/${REF}/wait`, async (ctx) => {
    const name = ref(ctx);
    const cond = ctx.query.get('condition') || 'not-running';
    if (cond !== 'not-running' && cond !== 'next-exit' && cond !== 'removed') {
      throw invalidArgument(`invalid condition: ${JSON.stringify(cond)}`);
    }
    await svc.inspect(name); // a missing container is an HTTP 404, before any header goes out
    const abort = ctx.clientGone();
    const waiting = svc.wait(name, cond as WaitCondition, abort);
    // Let the service register the waiter before the client may send `start`.
    const early = await Promise.race([
      waiting.then((r) => ({ r }), (e) => ({ e })),
      new Promise<undefined>((resolve) => setImmediate(() => resolve(undefined))),
    ]);
    if (early && 'e' in early && early.e instanceof BerthError) throw early.e;
    const res = ctx.res!;
    res.on('error', () => { /* client gone */ });
    res.writeHead(200, { ...commonHeaders(), 'Content-Type': 'application/json' });
    res.flushHeaders();
    let body: { Error: { Message: string } | null; StatusCode: number };
    try {
      const r = early && 'r' in early ? early.r : await waiting;
      body = { Error: r.Error ? { Message: r.Error.Message } : null, StatusCode: r.StatusCode };
    } catch (err) {
      const msg = abort.aborted ? 'context canceled' : (err as Error)?.message ?? String(err);
      body = { Error: { Message: msg }, StatusCode: -1 };
    }
    if (!res.writableEnded && !res.destroyed) res.end(JSON.stringify(body) + '\n');
  });

  router.post(`/containers/${REF}/resize`, async (ctx) => {
    const h = atoi(ctx, 'h');
    const w = atoi(ctx, 'w');
    await svc.resize(ref(ctx), h, w);
    sendEmpty(ctx);
  });

  router.get(`/containers/${REF}/top`, async (ctx) => {
    ctx.send(200, await svc.top(ref(ctx), ctx.query.get('ps_args') || undefined));
  });

  router.get(`/containers/${REF}/logs`, async (ctx) => {
    const name = ref(ctx);
    const opts: LogsOptions = {
      follow: ctx.bool('follow'),
      stdout: ctx.bool('stdout'),
      stderr: ctx.bool('stderr'),
      timestamps: ctx.bool('timestamps'),
      tail: parseTail(ctx.query.get('tail')),
    };
    if (!opts.stdout && !opts.stderr) throw invalidArgument('Bad parameters: you must choose at least one stream');
    const now = Date.now() / 1000;
    const since = ctx.query.get('since');
    const until = ctx.query.get('until');
    if (since) opts.since = parseApiTimestamp(since, now);
    if (until) opts.until = parseApiTimestamp(until, now);
    await svc.inspect(name); // 404 as a normal HTTP error
    const abort = ctx.clientGone();
    // No Content-Type, chunked, headers flushed at once (wire 10, 11, 64).
    const res = ctx.startStream('');
    res.on('error', () => { /* client gone */ });
    try {
      await svc.logs(name, opts, res, abort);
    } catch (err) {
      if (!abort.aborted) { res.destroy(err as Error); return; }
    }
    if (!res.writableEnded && !res.destroyed) res.end();
  });

  const attach = async (ctx: Ctx) => {
    const name = ref(ctx);
    const info = await svc.inspect(name); // 404 before the upgrade
    const tty = Boolean(info?.Config?.Tty);
    const opts = {
      stdin: ctx.bool('stdin'),
      stdout: ctx.bool('stdout'),
      stderr: ctx.bool('stderr'),
      stream: ctx.bool('stream'),
      logs: ctx.bool('logs'),
      detachKeys: ctx.query.get('detachKeys') || undefined,
    };
    parseDetachKeys(opts.detachKeys); // a bad sequence is a 400, before the upgrade
    await ctx.bodyBuffer();
    const sock = ctx.hijack(streamType(ctx, tty), false);
    sock.on('error', () => { /* the session notices through its own handlers */ });
    try {
      await svc.attach(name, opts, sock);
    } catch (err) {
      // Headers are gone; tell the client in-band, as a systemerr frame the Go client reports.
      const msg = `Error attaching: ${(err as Error)?.message ?? err}\n`;
      if (!sock.destroyed && !sock.writableEnded) sock.write(tty ? msg : stdcopyFrame(3, msg));
    }
    endSocket(sock);
  };
  router.post(`/containers/${REF}/attach`, attach);
  router.get(`/containers/${REF}/attach`, attach);

  router.get(`/containers/${REF}/stats`, async (ctx) => {
    const name = ref(ctx);
    const stream = ctx.bool('stream', true);
    const oneShot = ctx.bool('one-shot');
    if (oneShot && stream) throw invalidArgument('cannot have stream=true and one-shot=true');
    const info = await svc.inspect(name);
    const sample = async (): Promise<Sample> => {
      const cur = await svc.inspect(info.Id).catch(() => undefined);
      const pid = cur?.State?.Running ? Number(cur.State.Pid) : 0;
      return readSample(pid);
    };
    const doc = (s: Sample, pre: Sample | undefined) => statsDocument(info, s, pre);
    if (!stream) {
      // Like dockerd: a second sample a second later so that the CLI can compute CPU %.
      const first = await sample();
      if (oneShot || !first.running) { ctx.send(200, doc(first, undefined)); return; }
      await new Promise((r) => setTimeout(r, 1000));
      ctx.send(200, doc(await sample(), first));
      return;
    }
    const abort = ctx.clientGone();
    const res = ctx.startStream(''); // stats?stream=1 carries no Content-Type (wire 53)
    res.on('error', () => { /* client gone */ });
    let pre: Sample | undefined;
    while (!abort.aborted && !res.destroyed) {
      const s = await sample();
      if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify(doc(s, pre)) + '\n');
      if (!s.running) break;
      pre = s;
      await new Promise<void>((r) => {
        const t = setTimeout(r, 1000);
        abort.addEventListener('abort', () => { clearTimeout(t); r(); }, { once: true });
      });
    }
    if (!res.writableEnded && !res.destroyed) res.end();
  });

  // ------------------------------------------------------------ exec

  router.post(`/containers/${REF}/exec`, async (ctx) => {
    requireJson(ctx);
    const body = await ctx.json<any>({});
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidArgument('invalid exec config');
    const r = await svc.execCreate(ref(ctx), body);
    ctx.send(201, { Id: r.Id });
  });

  router.post('/exec/([^/]+)/start', async (ctx) => {
    const id = ctx.params[0];
    const body = await ctx.json<{ Detach?: boolean; Tty?: boolean; ConsoleSize?: number[] }>({});
    if (body === null || typeof body !== 'object') throw invalidArgument('invalid exec start body');
    await svc.execInspect(id); // `No such exec instance` as a plain 404
    if (body.Detach) {
      await svc.execStart(id, body, undefined);
      sendEmpty(ctx);
      return;
    }
    const tty = Boolean(body.Tty);
    const sock = ctx.hijack(streamType(ctx, tty), true);
    sock.on('error', () => { /* see attach */ });
    try {
      await svc.execStart(id, body, sock);
    } catch (err) {
      // dockerd writes a failed start to the exec's stdout (wire 87).
      const msg = `${(err as Error)?.message ?? err}\r\n`;
      if (!sock.destroyed && !sock.writableEnded) sock.write(tty ? msg : stdcopyFrame(1, msg));
    }
    endSocket(sock);
  });

  router.post('/exec/([^/]+)/resize', async (ctx) => {
    const h = atoi(ctx, 'h');
    const w = atoi(ctx, 'w');
    await svc.execResize(ctx.params[0], h, w);
    sendEmpty(ctx);
  });

  router.get('/exec/([^/]+)/json', async (ctx) => {
    ctx.send(200, await svc.execInspect(ctx.params[0]));
  });
}

function parseTail(v: string | null): number | 'all' {
  if (v === null || v === '' || v === 'all') return 'all';
  if (!/^\d+$/.test(v)) return 'all'; // dockerd treats a bad or negative tail as "all"
  return Number(v);
}

// ---------------------------------------------------------------- stats (cgroup v1)

const CLK_TCK = 100; // USER_HZ on Linux
const ZERO_TIME = '0001-01-01T00:00:00Z';

interface Sample {
  running: boolean;
  read: string;
  cpuTotal: number;
  percpu: number[];
  cpuUser: number;
  cpuSystem: number;
  systemCpu: number;
  throttling: { periods: number; throttled_periods: number; throttled_time: number };
  memory?: { usage: number; max_usage: number; failcnt: number; limit: number; stats: Record<string, number> };
  pids?: number;
  pidsLimit?: number;
  blkio: { io_service_bytes_recursive: BlkioEntry[]; io_serviced_recursive: BlkioEntry[] };
  networks?: Record<string, Record<string, number>>;
}

interface BlkioEntry { major: number; minor: number; op: string; value: number }

function readNum(file: string): number | undefined {
  try {
    const n = Number(fs.readFileSync(file, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch { return undefined; }
}

function readKv(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const [k, v] = line.trim().split(/\s+/);
      if (k && v !== undefined && Number.isFinite(Number(v))) out[k] = Number(v);
    }
  } catch { /* controller absent */ }
  return out;
}

/** Controller -> cgroup path of a process, from /proc/<pid>/cgroup (v1 hierarchies). */
function cgroupPaths(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
      const m = /^\d+:([^:]*):(.*)$/.exec(line);
      if (!m) continue;
      for (const ctrl of m[1].split(',')) if (ctrl) out[ctrl] = m[2];
    }
  } catch { /* process gone */ }
  return out;
}

function systemCpuNs(): number {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('cpu '));
    if (!line) return 0;
    const ticks = line.trim().split(/\s+/).slice(1, 8).map(Number).reduce((a, b) => a + b, 0);
    return (ticks * 1e9) / CLK_TCK;
  } catch { return 0; }
}

function readBlkio(file: string): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  try {
    for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
      const m = /^(\d+):(\d+) (\w+) (\d+)$/.exec(line.trim());
      if (m) out.push({ major: Number(m[1]), minor: Number(m[2]), op: m[3], value: Number(m[4]) });
    }
  } catch { /* absent */ }
  return out;
}

/** Interface counters of the container's network namespace (lo left out, as dockerd does). */
function readNetDev(pid: number): Record<string, Record<string, number>> | undefined {
  let text: string;
  try { text = fs.readFileSync(`/proc/${pid}/net/dev`, 'utf8'); } catch { return undefined; }
  const out: Record<string, Record<string, number>> = {};
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    out[m[1]] = {
      rx_bytes: f[0], rx_packets: f[1], rx_errors: f[2], rx_dropped: f[3],
      tx_bytes: f[8], tx_packets: f[9], tx_errors: f[10], tx_dropped: f[11],
    };
  }
  return Object.keys(out).length ? out : undefined;
}

function readSample(pid: number): Sample {
  const empty: Sample = {
    running: false, read: ZERO_TIME, cpuTotal: 0, percpu: [], cpuUser: 0, cpuSystem: 0, systemCpu: 0,
    throttling: { periods: 0, throttled_periods: 0, throttled_time: 0 },
    blkio: { io_service_bytes_recursive: [], io_serviced_recursive: [] },
  };
  if (!pid) return empty;
  const cg = cgroupPaths(pid);
  if (Object.keys(cg).length === 0) return empty;
  const dir = (ctrl: string) => `/sys/fs/cgroup/${ctrl}${cg[ctrl] ?? ''}`;
  const acct = dir('cpuacct');
  const stat = readKv(`${acct}/cpuacct.stat`);
  let percpu: number[] = [];
  try { percpu = fs.readFileSync(`${acct}/cpuacct.usage_percpu`, 'utf8').trim().split(/\s+/).map(Number); } catch { /* absent */ }
  const cpuStat = readKv(`${dir('cpu')}/cpu.stat`);
  const mem = dir('memory');
  const memStats = readKv(`${mem}/memory.stat`);
  const usage = readNum(`${mem}/memory.usage_in_bytes`);
  const limit = readNum(`${mem}/memory.limit_in_bytes`);
  const pidsCur = readNum(`${dir('pids')}/pids.current`);
  const pidsMax = readNum(`${dir('pids')}/pids.max`);
  const blk = dir('blkio');
  return {
    running: true,
    read: new Date().toISOString(),
    cpuTotal: readNum(`${acct}/cpuacct.usage`) ?? 0,
    percpu,
    cpuUser: ((stat.user ?? 0) * 1e9) / CLK_TCK,
    cpuSystem: ((stat.system ?? 0) * 1e9) / CLK_TCK,
    systemCpu: systemCpuNs(),
    throttling: { periods: cpuStat.nr_periods ?? 0, throttled_periods: cpuStat.nr_throttled ?? 0, throttled_time: cpuStat.throttled_time ?? 0 },
    memory: usage === undefined ? undefined : {
      usage,
      max_usage: readNum(`${mem}/memory.max_usage_in_bytes`) ?? 0,
      failcnt: readNum(`${mem}/memory.failcnt`) ?? 0,
      // An unlimited cgroup reports a huge number; dockerd caps the limit at the host's memory.
      limit: Math.min(limit ?? Infinity, os.totalmem()),
      stats: memStats,
    },
    pids: pidsCur,
    pidsLimit: pidsMax,
    blkio: {
      io_service_bytes_recursive: readBlkio(`${blk}/blkio.throttle.io_service_bytes_recursive`),
      io_serviced_recursive: readBlkio(`${blk}/blkio.throttle.io_serviced_recursive`),
    },
    networks: readNetDev(pid),
  };
}

function cpuDoc(s: Sample | undefined, online: number): Record<string, unknown> {
  if (!s || !s.running) {
    return { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
  }
  return {
    cpu_usage: { total_usage: s.cpuTotal, percpu_usage: s.percpu, usage_in_kernelmode: s.cpuSystem, usage_in_usermode: s.cpuUser },
    system_cpu_usage: s.systemCpu,
    online_cpus: online,
    throttling_data: s.throttling,
  };
}

/** The stats document of the Engine API (cgroup v1 field set, wire 52). */
function statsDocument(info: any, s: Sample, pre: Sample | undefined): Record<string, unknown> {
  const online = os.cpus().length;
  const doc: Record<string, unknown> = {
    read: s.read,
    preread: pre?.read ?? ZERO_TIME,
    pids_stats: s.pids !== undefined ? { current: s.pids, ...(s.pidsLimit !== undefined ? { limit: s.pidsLimit } : {}) } : {},
    blkio_stats: s.running
      ? {
        io_service_bytes_recursive: s.blkio.io_service_bytes_recursive, io_serviced_recursive: s.blkio.io_serviced_recursive,
        io_queue_recursive: [], io_service_time_recursive: [], io_wait_time_recursive: [], io_merged_recursive: [],
        io_time_recursive: [], sectors_recursive: [],
      }
      : {
        io_service_bytes_recursive: null, io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null,
        io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null,
      },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuDoc(s, online),
    precpu_stats: cpuDoc(pre, online),
    memory_stats: s.memory ?? {},
    name: info.Name,
    id: info.Id,
  };
  if (s.networks) doc.networks = s.networks;
  return doc;
}
