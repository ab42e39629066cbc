/**
 * Container and exec routes. HTTP shape only: parse and validate the
 * request, call the ContainerService, serialise the answer the way dockerd
 * does (see shared/specs/docker-cli-wire). No container logic lives here.
 */
import { parseDetachKeys } from '../../container/detachkeys';
import type { Duplex } from 'node:stream';
import { addRoutes, commonHeaders, compareApi, type Ctx, type RouteEntry, type Router } from '../router';
import { BerthError, invalidArgument } from '../../common/errors';
import type { Services } from '../../engine/services';
import type { ContainerCreateRequest, ContainerService, ContainerStats, LogsOptions, WaitCondition } from '../../engine/types';
import type { ServerResponse } from 'node:http';
import { parseApiTimestamp } from '../../common/timestamp';
import { encodeFrame, STDOUT, SYSTEMERR } from '../../common/stdcopy';
import { keepsLog, READ_NOT_SUPPORTED } from '../../container/logdriver';

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

/** A terminal dimension: dockerd parses it as a uint16-sized unsigned number. */
function ttySize(ctx: Ctx, name: string): number {
  const n = atoi(ctx, name);
  if (n < 0 || n > 65535) throw invalidArgument(`invalid resize ${name === 'h' ? 'height' : 'width'} ${JSON.stringify(ctx.query.get(name))}: out of range`);
  return n;
}

function optionalInt(ctx: Ctx, name: string): number | undefined {
  const v = ctx.query.get(name);
  if (v === null || v === '') return undefined;
  if (!/^[+-]?\d+$/.test(v)) throw invalidArgument(`strconv.Atoi: parsing ${JSON.stringify(v)}: invalid syntax`);
  return Number(v);
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

// ------------------------------------------------------------ handlers

async function containerCreate(ctx: Ctx, svc: ContainerService): Promise<void> {
  requireJson(ctx);
  const name = ctx.query.get('name') || undefined;
  const buf = await ctx.bodyBuffer();
  if (buf.length === 0) throw invalidArgument('config cannot be empty in order to create a container');
  const body = ctx.parseJson(buf); // depth, syntax and the swagger's types, before anything is created
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw invalidArgument('config cannot be empty in order to create a container');
  }
  // StartInterval came with API 1.44: older clients' bodies do not set it (dockerd drops it too).
  const hc = (body as { Healthcheck?: unknown }).Healthcheck;
  if (compareApi(ctx.version, '1.44') < 0 && hc && typeof hc === 'object') delete (hc as { StartInterval?: unknown }).StartInterval;
  const r = await svc.create(name, body as ContainerCreateRequest);
  ctx.send(201, { Id: r.Id, Warnings: r.Warnings ?? [] });
}

async function containerList(ctx: Ctx, svc: ContainerService): Promise<void> {
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
}

async function containerPrune(ctx: Ctx, svc: ContainerService): Promise<void> {
  const filters = ctx.filters();
  for (const k of Object.keys(filters)) if (!PRUNE_FILTERS.has(k)) throw invalidArgument(`invalid filter '${k}'`);
  ctx.send(200, await svc.prune(filters));
}

async function containerInspect(ctx: Ctx, svc: ContainerService): Promise<void> {
  ctx.send(200, await svc.inspect(ref(ctx), ctx.bool('size')));
}

async function containerStart(ctx: Ctx, svc: ContainerService): Promise<void> {
  const body = (await ctx.bodyBuffer()).toString('utf8').trim();
  if (body !== '' && body !== '{}' && body !== 'null') {
    throw invalidArgument('starting container with non-empty request body was deprecated since API v1.22 and removed in v1.24');
  }
  await svc.start(ref(ctx));
  ctx.send(204);
}

async function containerStop(ctx: Ctx, svc: ContainerService): Promise<void> {
  await svc.stop(ref(ctx), stopOpts(ctx));
  ctx.send(204);
}

async function containerRestart(ctx: Ctx, svc: ContainerService): Promise<void> {
  await svc.restart(ref(ctx), stopOpts(ctx));
  ctx.send(204);
}

async function containerKill(ctx: Ctx, svc: ContainerService): Promise<void> {
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
}

async function containerPause(ctx: Ctx, svc: ContainerService): Promise<void> {
  await svc.pause(ref(ctx));
  ctx.send(204);
}

async function containerUnpause(ctx: Ctx, svc: ContainerService): Promise<void> {
  await svc.unpause(ref(ctx));
  ctx.send(204);
}

async function containerUpdate(ctx: Ctx, svc: ContainerService): Promise<void> {
  ctx.send(200, await svc.update(ref(ctx), await ctx.json<any>({})));
}

async function containerRename(ctx: Ctx, svc: ContainerService): Promise<void> {
  const newName = ctx.query.get('name') ?? '';
  if (!newName) throw invalidArgument('Neither old nor new names may be empty');
  await svc.rename(ref(ctx), newName);
  ctx.send(204);
}

async function containerRemove(ctx: Ctx, svc: ContainerService): Promise<void> {
  const name = ref(ctx);
  if (ctx.bool('link')) {
    await svc.removeLink(name);
    ctx.send(204);
    return;
  }
  await svc.remove(name, { force: ctx.bool('force'), volumes: ctx.bool('v') });
  ctx.send(204);
}

async function containerLinkRemove(ctx: Ctx, svc: ContainerService): Promise<void> {
  if (!ctx.bool('link')) throw new BerthError('not-found', 'page not found');
  await svc.removeLink(`${ctx.params[0]}/${ctx.params[1]}`);
  ctx.send(204);
}

async function containerWait(ctx: Ctx, svc: ContainerService): Promise<void> {
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
}

async function containerResize(ctx: Ctx, svc: ContainerService): Promise<void> {
  const h = ttySize(ctx, 'h');
  const w = ttySize(ctx, 'w');
  await svc.resize(ref(ctx), h, w);
  sendEmpty(ctx);
}

async function containerTop(ctx: Ctx, svc: ContainerService): Promise<void> {
  ctx.send(200, await svc.top(ref(ctx), ctx.query.get('ps_args') || undefined));
}

async function containerLogs(ctx: Ctx, svc: ContainerService): Promise<void> {
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
  const info = await svc.inspect(name); // 404 as a normal HTTP error
  if (!keepsLog(info.HostConfig?.LogConfig)) throw new BerthError('not-implemented', READ_NOT_SUPPORTED);
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
}

async function containerAttach(ctx: Ctx, svc: ContainerService): Promise<void> {
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
    if (!sock.destroyed && !sock.writableEnded) sock.write(tty ? msg : encodeFrame(SYSTEMERR, msg));
  }
  endSocket(sock);
}

async function containerStats(ctx: Ctx, svc: ContainerService): Promise<void> {
  const stream = ctx.bool('stream', true);
  const oneShot = ctx.bool('one-shot');
  if (oneShot && stream) throw invalidArgument('cannot have stream=true and one-shot=true');
  if (!stream) {
    let doc: ContainerStats | undefined;
    await svc.stats(ref(ctx), { stream, oneShot }, (d) => { doc = d; }, ctx.clientGone());
    ctx.send(200, doc);
    return;
  }
  const abort = ctx.clientGone();
  let res: ServerResponse | undefined;
  await svc.stats(ref(ctx), { stream, oneShot }, (d) => {
    if (!res) {
      res = ctx.startStream(''); // stats?stream=1 carries no Content-Type (wire 53)
      res.on('error', () => { /* client gone */ });
    }
    if (!res.writableEnded && !res.destroyed) res.write(JSON.stringify(d) + '\n');
  }, abort);
  if (res && !res.writableEnded && !res.destroyed) res.end();
}

async function execCreate(ctx: Ctx, svc: ContainerService): Promise<void> {
  requireJson(ctx);
  const body = await ctx.json<any>({});
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidArgument('invalid exec config');
  const r = await svc.execCreate(ref(ctx), body);
  ctx.send(201, { Id: r.Id });
}

async function execStart(ctx: Ctx, svc: ContainerService): Promise<void> {
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
    if (!sock.destroyed && !sock.writableEnded) sock.write(tty ? msg : encodeFrame(STDOUT, msg));
  }
  endSocket(sock);
}

async function execResize(ctx: Ctx, svc: ContainerService): Promise<void> {
  const h = ttySize(ctx, 'h');
  const w = ttySize(ctx, 'w');
  await svc.execResize(ctx.params[0], h, w);
  sendEmpty(ctx);
}

async function execInspect(ctx: Ctx, svc: ContainerService): Promise<void> {
  ctx.send(200, await svc.execInspect(ctx.params[0]));
}

/** The container and exec endpoints. */
const CONTAINER_ROUTES: ReadonlyArray<RouteEntry<ContainerService>> = [
  ['POST', '/containers/create', containerCreate, { body: 'ContainerCreate' }],
  ['GET', '/containers/json', containerList],
  ['POST', '/containers/prune', containerPrune],
  // one container
  ['GET', `/containers/${REF}/json`, containerInspect],
  ['POST', `/containers/${REF}/start`, containerStart],
  ['POST', `/containers/${REF}/stop`, containerStop],
  ['POST', `/containers/${REF}/restart`, containerRestart],
  ['POST', `/containers/${REF}/kill`, containerKill],
  ['POST', `/containers/${REF}/pause`, containerPause],
  ['POST', `/containers/${REF}/unpause`, containerUnpause],
  ['POST', `/containers/${REF}/update`, containerUpdate, { body: 'ContainerUpdate' }],
  ['POST', `/containers/${REF}/rename`, containerRename],
  ['DELETE', `/containers/${REF}`, containerRemove],
  // a legacy link's name is `<parent>/<alias>`
  ['DELETE', '/containers/([^/]+)/([^/]+)', containerLinkRemove],
  ['POST', `/containers/${REF}/wait`, containerWait],
  ['POST', `/containers/${REF}/resize`, containerResize],
  ['GET', `/containers/${REF}/top`, containerTop],
  ['GET', `/containers/${REF}/logs`, containerLogs],
  ['POST', `/containers/${REF}/attach`, containerAttach, { hijack: true }],
  ['GET', `/containers/${REF}/attach`, containerAttach, { hijack: true }],
  ['GET', `/containers/${REF}/stats`, containerStats],
  // exec
  ['POST', `/containers/${REF}/exec`, execCreate, { body: 'ContainerExec' }],
  ['POST', '/exec/([^/]+)/start', execStart, { hijack: true, body: 'ExecStart' }],
  ['POST', '/exec/([^/]+)/resize', execResize],
  ['GET', '/exec/([^/]+)/json', execInspect],
];

export function registerContainerRoutes(router: Router, services: Services): void {
  addRoutes(router, services.containers, CONTAINER_ROUTES);
}

function parseTail(v: string | null): number | 'all' {
  if (v === null || v === '' || v === 'all') return 'all';
  if (!/^\d+$/.test(v)) return 'all'; // dockerd treats a bad or negative tail as "all"
  return Number(v);
}
