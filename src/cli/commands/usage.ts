// What the engine's objects use: `system df` (disk) and `stats` (CPU, memory,
// I/O, pids of running containers). Figures are computed as the docker CLI's
// formatters compute them, so both CLIs print the same table for one daemon.
import { ApiClient, ApiError, CliError } from '../client';
import type { CommandDef, Ctx } from '../context';
import type { CommandSpec, FlagSpec } from '../flags';
import { compile, execute, renderRows } from '../format';
import { forEachLine } from '../jsonlines';
import { prepareFormat } from '../template';
import { bytesSize, humanDuration, humanSize, truncateId } from '../units';
import { psHeaders, psRow } from './container';
import { imageHeaders, imageRows } from './image';

const spec = (path: string, usage: string, description: string, flags: FlagSpec[], extra: Partial<CommandSpec> = {}): CommandSpec => ({ path, usage, description, flags, ...extra });

// ---------------------------------------------------------------- system df

/** "<size> (<pct>%)" with Go's integer percentage, or just the size when the total is 0. */
function reclaimable(bytes: number, total: number): string {
  return total > 0 ? `${humanSize(bytes, 4)} (${Math.floor((bytes * 100) / total)}%)` : humanSize(bytes, 4);
}

type Row = Record<string, unknown>;
const dfRow = (Type: string, TotalCount: number, Active: number, Size: string, Reclaimable: string): Row => (
  { Active: String(Active), Reclaimable, Size, TotalCount: String(TotalCount), Type }
);

/** The four summary rows of `system df` (formatter.DiskUsageContext). */
function dfSummary(du: Record<string, any>): Row[] {
  const images: Array<Record<string, any>> = du.Images ?? [];
  const containers: Array<Record<string, any>> = du.Containers ?? [];
  const volumes: Array<Record<string, any>> = du.Volumes ?? [];
  const cache: Array<Record<string, any>> = du.BuildCache ?? [];

  const layers = Number(du.LayersSize ?? 0);
  let imagesUsed = 0;
  for (const i of images) if (i.Containers > 0 && i.Size !== -1 && i.SharedSize !== -1) imagesUsed += i.Size - i.SharedSize;

  const active = (c: Record<string, any>): boolean => /running|paused|restarting/.test(String(c.State));
  const rw = (c: Record<string, any>): number => Number(c.SizeRw ?? 0);
  const ctrTotal = containers.reduce((n, c) => n + rw(c), 0);
  const ctrIdle = containers.filter((c) => !active(c)).reduce((n, c) => n + rw(c), 0);

  const sized = volumes.filter((v) => Number(v.UsageData?.Size ?? -1) !== -1);
  const volTotal = sized.reduce((n, v) => n + Number(v.UsageData.Size), 0);
  const volIdle = sized.filter((v) => Number(v.UsageData.RefCount ?? 0) === 0).reduce((n, v) => n + Number(v.UsageData.Size), 0);

  const ownCache = cache.filter((b) => !b.Shared);
  const cacheTotal = ownCache.reduce((n, b) => n + Number(b.Size ?? 0), 0);
  const cacheInUse = ownCache.filter((b) => b.InUse).reduce((n, b) => n + Number(b.Size ?? 0), 0);

  return [
    dfRow('Images', images.length, images.filter((i) => i.Containers > 0).length, humanSize(layers, 4), reclaimable(layers - imagesUsed, layers)),
    dfRow('Containers', containers.length, containers.filter(active).length, humanSize(ctrTotal, 4), reclaimable(ctrIdle, ctrTotal)),
    dfRow('Local Volumes', volumes.length, volumes.filter((v) => Number(v.UsageData?.RefCount ?? 0) > 0).length, humanSize(volTotal, 4), reclaimable(volIdle, volTotal)),
    dfRow('Build Cache', cache.length, cache.filter((b) => b.InUse).length, humanSize(cacheTotal, 4), humanSize(cacheTotal - cacheInUse, 4)),
  ];
}

const dfHeaders = { Type: 'TYPE', TotalCount: 'TOTAL', Active: 'ACTIVE', Size: 'SIZE', Reclaimable: 'RECLAIMABLE' };
const volumeHeaders = { Name: 'VOLUME NAME', Links: 'LINKS', Size: 'SIZE' };
const cacheHeaders = { ID: 'CACHE ID', CacheType: 'CACHE TYPE', Size: 'SIZE', CreatedSince: 'CREATED', LastUsedSince: 'LAST USED', UsageCount: 'USAGE', Shared: 'SHARED' };

/** The per-object tables of `system df -v`. */
function dfVerbose(du: Record<string, any>, now: number): { images: Row[]; containers: Row[]; volumes: Row[]; cache: Row[]; cacheSize: number } {
  // One row per image, named by its first tag only (as docker's verbose view).
  const images = (du.Images ?? []).map((i: Record<string, any>) => imageRows({ ...i, RepoTags: (i.RepoTags ?? []).slice(0, 1), RepoDigests: [] }, true, false, now)[0]);
  // The virtual size is not shown here.
  const containers = (du.Containers ?? []).map((c: Record<string, any>) => psRow({ ...c, SizeRootFs: 0 }, true, now));
  const volumes = (du.Volumes ?? []).map((v: Record<string, any>) => ({
    Links: String(v.UsageData?.RefCount ?? 'N/A'),
    Name: String(v.Name ?? ''),
    Size: Number(v.UsageData?.Size ?? -1) === -1 ? 'N/A' : humanSize(Number(v.UsageData.Size), 4),
  }));
  const since = (t: string | undefined): string => (t ? `${humanDuration(now - Date.parse(t))} ago` : '');
  const cache = (du.BuildCache ?? []).map((b: Record<string, any>) => ({
    CacheType: String(b.Type ?? ''),
    CreatedSince: since(b.CreatedAt),
    ID: String(b.ID ?? '').slice(0, 12),
    LastUsedSince: since(b.LastUsedAt),
    Shared: String(Boolean(b.Shared)),
    Size: humanSize(Number(b.Size ?? 0), 4),
    UsageCount: String(b.UsageCount ?? 0),
  }));
  const cacheSize = (du.BuildCache ?? []).filter((b: Record<string, any>) => !b.Shared).reduce((n: number, b: Record<string, any>) => n + Number(b.Size ?? 0), 0);
  return { images, containers, volumes, cache, cacheSize };
}

const df: CommandDef = {
  spec: spec('system df', 'system df [OPTIONS]', 'Show Berth disk usage', [
    { long: 'format', kind: 'string', usage: 'Format output using a custom template' },
    { long: 'verbose', short: 'v', kind: 'bool', usage: 'Show detailed information on space usage' },
  ], { maxArgs: 0 }),
  async run(ctx, p) {
    const api = await ctx.api();
    const du = await api.get('/system/df');
    const format: string = p.opts.format;
    if (!p.opts.verbose) {
      ctx.out(renderRows(format || 'table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}', dfSummary(du), dfHeaders));
      return 0;
    }
    const v = dfVerbose(du, Date.now());
    if (format) {
      const t = compile(prepareFormat(format).body);
      ctx.out(execute(t, { Images: v.images, Containers: v.containers, Volumes: v.volumes, BuildCache: v.cache }) + '\n');
      return 0;
    }
    const imgT = renderRows('table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}', v.images, imageHeaders);
    const ctrT = renderRows('table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}', v.containers, psHeaders);
    const volT = renderRows('table {{.Name}}\t{{.Links}}\t{{.Size}}', v.volumes, volumeHeaders);
    const cacheT = renderRows('table {{.ID}}\t{{.CacheType}}\t{{.Size}}\t{{.CreatedSince}}\t{{.LastUsedSince}}\t{{.UsageCount}}\t{{.Shared}}', v.cache, cacheHeaders);
    ctx.out(
      `Images space usage:\n\n${imgT}\nContainers space usage:\n\n${ctrT}\nLocal Volumes space usage:\n\n${volT}\n` +
        `Build cache usage: ${humanSize(v.cacheSize, 4)}\n\n${cacheT}`,
    );
    return 0;
  },
};

// ---------------------------------------------------------------- stats

/** One stats document of the Engine API, reduced to what the table shows. */
export interface StatsFigures { cpuPercent: number; mem: number; memLimit: number; memPercent: number; netRx: number; netTx: number; blkRead: number; blkWrite: number; pids: number }

/** The docker CLI's arithmetic (stats_helpers.go) over one stats document. */
export function statsFigures(s: Record<string, any>): StatsFigures {
  const cpu = s.cpu_stats ?? {};
  const pre = s.precpu_stats ?? {};
  const cpuDelta = Number(cpu.cpu_usage?.total_usage ?? 0) - Number(pre.cpu_usage?.total_usage ?? 0);
  const sysDelta = Number(cpu.system_cpu_usage ?? 0) - Number(pre.system_cpu_usage ?? 0);
  const online = Number(cpu.online_cpus ?? 0) || (cpu.cpu_usage?.percpu_usage ?? []).length;
  const cpuPercent = sysDelta > 0 && cpuDelta > 0 ? (cpuDelta / sysDelta) * online * 100 : 0;

  // Memory without the page cache that can be dropped (cgroup v1, then v2 field).
  const m = s.memory_stats ?? {};
  const usage = Number(m.usage ?? 0);
  const st = m.stats ?? {};
  let mem = usage;
  if (st.total_inactive_file !== undefined && st.total_inactive_file < usage) mem = usage - st.total_inactive_file;
  else if (st.inactive_file !== undefined && st.inactive_file < usage) mem = usage - st.inactive_file;
  const memLimit = Number(m.limit ?? 0);

  let netRx = 0;
  let netTx = 0;
  for (const n of Object.values((s.networks ?? {}) as Record<string, any>)) {
    netRx += Number(n.rx_bytes ?? 0);
    netTx += Number(n.tx_bytes ?? 0);
  }
  let blkRead = 0;
  let blkWrite = 0;
  for (const e of (s.blkio_stats?.io_service_bytes_recursive ?? []) as Array<{ op?: string; value?: number }>) {
    const op = (e.op ?? '')[0];
    if (op === 'r' || op === 'R') blkRead += Number(e.value ?? 0);
    else if (op === 'w' || op === 'W') blkWrite += Number(e.value ?? 0);
  }
  return { cpuPercent, mem, memLimit, memPercent: memLimit ? (mem / memLimit) * 100 : 0, netRx, netTx, blkRead, blkWrite, pids: Number(s.pids_stats?.current ?? 0) };
}

/** One container's line in the stats table. */
interface StatsEntry { container: string; id: string; name: string; figures?: StatsFigures; invalid?: boolean }

function statsRow(e: StatsEntry, trunc: boolean): Row {
  const f = e.figures;
  const pct = (n: number): string => `${n.toFixed(2)}%`;
  const pair = (a: number, b: number): string => `${humanSize(a)} / ${humanSize(b)}`;
  return {
    BlockIO: e.invalid ? '--' : pair(f?.blkRead ?? 0, f?.blkWrite ?? 0),
    CPUPerc: e.invalid ? '--' : pct(f?.cpuPercent ?? 0),
    Container: e.container,
    ID: trunc ? truncateId(e.id) : e.id,
    MemPerc: e.invalid ? '--' : pct(f?.memPercent ?? 0),
    MemUsage: e.invalid ? '-- / --' : `${bytesSize(f?.mem ?? 0)} / ${bytesSize(f?.memLimit ?? 0)}`,
    Name: e.name.length > 1 ? e.name.replace(/^\//, '') : '--',
    NetIO: e.invalid ? '--' : pair(f?.netRx ?? 0, f?.netTx ?? 0),
    PIDs: e.invalid ? '--' : String(f?.pids ?? 0),
  };
}

const statsHeaders = {
  Container: 'CONTAINER', ID: 'CONTAINER ID', Name: 'NAME', CPUPerc: 'CPU %', MemUsage: 'MEM USAGE / LIMIT',
  MemPerc: 'MEM %', NetIO: 'NET I/O', BlockIO: 'BLOCK I/O', PIDs: 'PIDS',
};
const STATS_DEFAULT_FORMAT = 'table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}';

/** The containers `stats` shows when none are named: running ones, or all with -a. */
async function listForStats(api: ApiClient, all: boolean): Promise<StatsEntry[]> {
  const list = (await api.get('/containers/json', { all: all ? 1 : undefined })) as Array<Record<string, any>>;
  return list.map((c) => ({ container: String(c.Id), id: String(c.Id), name: String((c.Names ?? [])[0] ?? '') }));
}

/** Reads one container's stats until the stream ends; `onDoc` gets every document. */
async function followStats(api: ApiClient, entry: StatsEntry, stream: boolean, onDoc: (doc: Record<string, any>) => void): Promise<void> {
  const r = await api.request('GET', `/containers/${encodeURIComponent(entry.container)}/stats`, { query: { stream: stream ? 1 : 0 }, allowError: true });
  if (r.status >= 400) throw await ApiClient.errorOf(r);
  await forEachLine(r.res, (line) => onDoc(JSON.parse(line)));
}

const stats: CommandDef = {
  spec: spec('stats', 'stats [OPTIONS] [CONTAINER...]', 'Display a live stream of container(s) resource usage statistics', [
    { long: 'all', short: 'a', kind: 'bool', usage: 'Show all containers (default shows just running)' },
    { long: 'format', kind: 'string', usage: 'Format output using a custom template' },
    { long: 'no-stream', kind: 'bool', usage: 'Disable streaming stats and only pull the first result' },
    { long: 'no-trunc', kind: 'bool', usage: "Don't truncate output" },
  ], { aliases: ['berth container stats', 'berth stats'] }),
  async run(ctx, p) {
    const o = p.opts;
    const api = await ctx.api();
    const format: string = !o.format || o.format === 'table' ? STATS_DEFAULT_FORMAT : o.format;
    const named = p.args.length > 0;
    const entries: StatsEntry[] = named ? p.args.map((n) => ({ container: n, id: n, name: '' })) : await listForStats(api, o.all);
    const apply = (e: StatsEntry) => (doc: Record<string, any>): void => {
      e.id = String(doc.id ?? e.id);
      e.name = String(doc.name ?? e.name);
      e.figures = statsFigures(doc);
      e.invalid = false;
    };
    const render = (): string => renderRows(format, entries.map((e) => statsRow(e, !o['no-trunc'])), statsHeaders);

    if (o['no-stream']) {
      const errors: string[] = [];
      await Promise.all(entries.map((e) => followStats(api, e, false, apply(e)).catch((err: unknown) => {
        if (!named) e.invalid = true; // removed while we asked: shown as "--"
        else errors.push(err instanceof ApiError ? `Error response from daemon: ${err.message}` : String((err as Error).message));
      })));
      if (errors.length) throw new CliError(errors.join('\n'), 1);
      ctx.out(render());
      return 0;
    }
    return streamStats(ctx, api, entries, named, Boolean(o.all), apply, render);
  },
};

/**
 * `stats` without --no-stream: one stats stream per container and a redraw every
 * 500 ms from the top of the screen; without names, containers that start are
 * added and (without -a) those that die are dropped, as the docker CLI does.
 */
async function streamStats(
  ctx: Ctx, api: ApiClient, entries: StatsEntry[], named: boolean, all: boolean,
  apply: (e: StatsEntry) => (doc: Record<string, any>) => void, render: () => string,
): Promise<number> {
  const follow = (e: StatsEntry): Promise<void> =>
    followStats(api, e, true, apply(e)).then(
      () => void (e.invalid = true),
      (err: unknown) => {
        e.invalid = true;
        if (named) throw err;
      },
    );
  // A named container that does not exist is an error before anything is drawn.
  const first = entries.map(follow);
  if (named) {
    const failed = await Promise.race([Promise.all(first).then(() => null, (err: unknown) => err), new Promise((r) => setTimeout(r, 300, null))]);
    if (failed) throw failed instanceof ApiError ? new CliError(`Error response from daemon: ${failed.message}`, 1) : failed;
  } else {
    void watchContainers(api, entries, all, follow);
  }
  // Like docker, draw once every container has its first figures (or after 2 s).
  for (let waited = 0; waited < 2000 && !entries.every((e) => e.figures || e.invalid); waited += 20) {
    await new Promise((r) => setTimeout(r, 20));
  }
  ctx.out('\x1b[2J');
  for (;;) {
    // Home, each line cleared to its end, then everything below cleared: no flicker, no leftovers.
    const lines = render().split('\n').slice(0, -1);
    ctx.out(`\x1b[H${lines.map((l) => `${l}\x1b[K\n`).join('')}\x1b[J`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Keeps the unnamed stats list in step with container start/die/destroy events. */
async function watchContainers(api: ApiClient, entries: StatsEntry[], all: boolean, follow: (e: StatsEntry) => Promise<void>): Promise<void> {
  const r = await api.request('GET', '/events', { query: { filters: JSON.stringify({ type: ['container'], event: ['start', 'die', 'destroy'] }) } });
  await forEachLine(r.res, (line) => {
    const ev = JSON.parse(line);
    const id = String(ev.Actor?.ID ?? ev.id ?? '');
    const at = entries.findIndex((e) => e.id === id);
    if (ev.Action === 'start' && at < 0) {
      const e: StatsEntry = { container: id, id, name: `/${ev.Actor?.Attributes?.name ?? ''}` };
      entries.push(e);
      void follow(e);
    } else if (at >= 0 && (ev.Action === 'destroy' || (ev.Action === 'die' && !all))) {
      entries.splice(at, 1);
    }
  });
}

export const defs: Record<string, CommandDef> = { df, stats };
