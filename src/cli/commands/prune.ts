// The prune commands: container prune, image prune, volume prune, system prune. Each asks for
// confirmation unless -f, calls the daemon's prune endpoints and prints what the
// docker CLI prints: a "Deleted ...:" block per kind and the total reclaimed.
import { filtersParam } from '../client';
import type { ApiClient } from '../client';
import type { CommandDef, Ctx } from '../context';
import type { CommandSpec, FlagSpec } from '../flags';
import { humanSize } from '../units';

const spec = (path: string, usage: string, description: string, flags: FlagSpec[], extra: Partial<CommandSpec> = {}): CommandSpec => ({ path, usage, description, flags, ...extra });

const filterFlag: FlagSpec = { long: 'filter', kind: 'list', valueName: 'filter', usage: 'Provide filter values (e.g. "until=<timestamp>")' };
const forceFlag: FlagSpec = { long: 'force', short: 'f', kind: 'bool', usage: 'Do not prompt for confirmation' };

/** What one prune call removed: the bytes freed and the block docker prints ("" when nothing). */
interface Pruned { reclaimed: number; output: string }

/** A "Deleted <what>:" block listing `lines`, or "" when there are none. */
function deletedBlock(what: string, lines: string[]): string {
  return lines.length ? `Deleted ${what}:\n${lines.map((l) => `${l}\n`).join('')}` : '';
}

async function pruneContainers(api: ApiClient, filters: string[]): Promise<Pruned> {
  const r = await api.json('POST', '/containers/prune', { query: { filters: filtersParam(filters) } });
  return { reclaimed: Number(r?.SpaceReclaimed ?? 0), output: deletedBlock('Containers', (r?.ContainersDeleted ?? []) as string[]) };
}

async function pruneNetworks(api: ApiClient, filters: string[]): Promise<Pruned> {
  const r = await api.json('POST', '/networks/prune', { query: { filters: filtersParam(filters) } });
  return { reclaimed: 0, output: deletedBlock('Networks', (r?.NetworksDeleted ?? []) as string[]) };
}

async function pruneVolumes(api: ApiClient, filters: string[]): Promise<Pruned> {
  const r = await api.json('POST', '/volumes/prune', { query: { filters: filtersParam(filters) } });
  return { reclaimed: Number(r?.SpaceReclaimed ?? 0), output: deletedBlock('Volumes', (r?.VolumesDeleted ?? []) as string[]) };
}

async function pruneImages(api: ApiClient, all: boolean, filters: string[]): Promise<Pruned> {
  const r = await api.json('POST', '/images/prune', { query: { filters: filtersParam([...filters, `dangling=${all ? 'false' : 'true'}`]) } });
  const lines: string[] = [];
  for (const d of (r?.ImagesDeleted ?? []) as Array<Record<string, string>>) {
    if (d.Untagged) lines.push(`untagged: ${d.Untagged}`);
    if (d.Deleted) lines.push(`deleted: ${d.Deleted}`);
  }
  return { reclaimed: Number(r?.SpaceReclaimed ?? 0), output: deletedBlock('Images', lines) };
}

async function pruneBuildCache(api: ApiClient, all: boolean, filters: string[]): Promise<Pruned> {
  const r = await api.json('POST', '/build/prune', { query: { all: all ? 1 : undefined, filters: filtersParam(filters) } });
  return { reclaimed: Number(r?.SpaceReclaimed ?? 0), output: deletedBlock('build cache objects', (r?.CachesDeleted ?? []) as string[]) };
}

/** Prints the prompt and reads one line from stdin; true only for y/yes. */
async function confirmed(ctx: Ctx, warning: string): Promise<boolean> {
  ctx.out(`${warning}\nAre you sure you want to continue? [y/N] `);
  const answer = await readLine();
  return /^y(es)?$/i.test(answer.trim());
}

function readLine(): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    const onData = (d: Buffer): void => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        process.stdin.removeListener('data', onData);
        process.stdin.pause();
        resolve(buf.slice(0, nl));
      }
    };
    process.stdin.on('data', onData);
    process.stdin.once('end', () => resolve(buf));
    process.stdin.resume();
  });
}

/** Prints the blocks (each followed by a blank line, as docker's Fprintln does) and the total. */
function report(ctx: Ctx, results: Pruned[]): number {
  let total = 0;
  for (const r of results) {
    if (r.output) ctx.out(`${r.output}\n`);
    total += r.reclaimed;
  }
  ctx.out(`Total reclaimed space: ${humanSize(total, 4)}\n`);
  return 0;
}

const containerPrune: CommandDef = {
  spec: spec('container prune', 'container prune [OPTIONS]', 'Remove all stopped containers', [filterFlag, forceFlag], { maxArgs: 0 }),
  async run(ctx, p) {
    if (!p.opts.force && !(await confirmed(ctx, 'WARNING! This will remove all stopped containers.'))) return 0;
    const api = await ctx.api();
    return report(ctx, [await pruneContainers(api, p.opts.filter)]);
  },
};

/** `<kind> prune [-a] [-f] [--filter]`: one prune call, after a warning that depends on -a. */
function pruneCommand(
  kind: string, description: string, allUsage: string, warning: { all: string; some: string },
  prune: (api: ApiClient, all: boolean, filters: string[]) => Promise<Pruned>,
): CommandDef {
  return {
    spec: spec(`${kind} prune`, `${kind} prune [OPTIONS]`, description, [{ long: 'all', short: 'a', kind: 'bool', usage: allUsage }, filterFlag, forceFlag], { maxArgs: 0 }),
    async run(ctx, p) {
      const all = Boolean(p.opts.all);
      if (!p.opts.force && !(await confirmed(ctx, all ? warning.all : warning.some))) return 0;
      const api = await ctx.api();
      return report(ctx, [await prune(api, all, p.opts.filter)]);
    },
  };
}

const imagePrune = pruneCommand('image', 'Remove unused images', 'Remove all unused images, not just dangling ones', {
  all: 'WARNING! This will remove all images without at least one container associated to them.',
  some: 'WARNING! This will remove all dangling images.',
}, pruneImages);

const volumePrune = pruneCommand('volume', 'Remove unused local volumes', 'Remove all unused volumes, not just anonymous ones', {
  all: 'WARNING! This will remove all local volumes not used by at least one container.',
  some: 'WARNING! This will remove anonymous local volumes not used by at least one container.',
}, (api, all, filters) => pruneVolumes(api, all ? [...filters, 'all=true'] : filters));

const builderPrune = pruneCommand('builder', 'Remove build cache', 'Remove all unused build cache, not just dangling ones', {
  all: 'WARNING! This will remove all build cache.',
  some: 'WARNING! This will remove all dangling build cache.',
}, pruneBuildCache);

const networkPrune: CommandDef = {
  spec: spec('network prune', 'network prune [OPTIONS]', 'Remove all unused networks', [filterFlag, forceFlag], { maxArgs: 0 }),
  async run(ctx, p) {
    if (!p.opts.force && !(await confirmed(ctx, 'WARNING! This will remove all custom networks not used by at least one container.'))) return 0;
    const api = await ctx.api();
    const r = await pruneNetworks(api, p.opts.filter);
    ctx.out(r.output);
    return 0;
  },
};

const systemPrune: CommandDef = {
  spec: spec('system prune', 'system prune [OPTIONS]', 'Remove unused data', [
    { long: 'all', short: 'a', kind: 'bool', usage: 'Remove all unused images not just dangling ones' },
    { long: 'filter', kind: 'list', valueName: 'filter', usage: 'Provide filter values (e.g. "label=<key>=<value>")' },
    forceFlag,
    { long: 'volumes', kind: 'bool', usage: 'Prune anonymous volumes' },
  ], { maxArgs: 0 }),
  async run(ctx, p) {
    const all = Boolean(p.opts.all);
    const filters = p.opts.filter as string[];
    if (!p.opts.force) {
      const items = [
        'all stopped containers',
        'all networks not used by at least one container',
        ...(p.opts.volumes ? ['all anonymous volumes not used by at least one container'] : []),
        all ? 'all images without at least one container associated to them' : 'all dangling images',
        all ? 'all build cache' : 'unused build cache',
      ];
      let warning = `WARNING! This will remove:\n${items.map((i) => `  - ${i}\n`).join('')}`;
      if (filters.length) warning += `\n  Items to be pruned will be filtered with:\n${filters.map((f) => `  - ${f}\n`).join('')}`;
      if (!(await confirmed(ctx, warning))) return 0;
    }
    const api = await ctx.api();
    // One after the other, in docker's order: containers first frees their images.
    const results = [await pruneContainers(api, filters), await pruneNetworks(api, filters)];
    if (p.opts.volumes) results.push(await pruneVolumes(api, filters));
    results.push(await pruneImages(api, all, filters), await pruneBuildCache(api, all, filters));
    return report(ctx, results);
  },
};

export const defs: Record<string, CommandDef> = { builderPrune, containerPrune, imagePrune, volumePrune, networkPrune, systemPrune };
