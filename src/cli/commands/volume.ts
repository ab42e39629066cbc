// Volume commands: volume create, ls, inspect, rm (volume prune is in prune.ts).
import { ApiClient, CliError, filtersParam } from '../client';
import { forEachObject, type CommandDef } from '../context';
import { keyValueMap, type CommandSpec, type FlagSpec } from '../flags';
import { renderRows } from '../format';
import { inspectCmd } from './system';

const spec = (path: string, usage: string, description: string, flags: FlagSpec[], extra: Partial<CommandSpec> = {}): CommandSpec => ({ path, usage, description, flags, ...extra });

const create: CommandDef = {
  spec: spec('volume create', 'volume create [OPTIONS] [VOLUME]', 'Create a volume', [
    { long: 'driver', short: 'd', kind: 'string', def: 'local', usage: 'Specify volume driver name' },
    { long: 'label', kind: 'list', usage: 'Set metadata for a volume' },
    { long: 'name', kind: 'string', usage: 'Specify volume name' },
    { long: 'opt', short: 'o', kind: 'list', usage: 'Set driver specific options' },
  ], { maxArgs: 1 }),
  async run(ctx, p) {
    const o = p.opts;
    if (p.args[0] && o.name && p.args[0] !== o.name) {
      throw new CliError(`conflicting options: cannot specify a volume-name through both --name and as a positional arg`, 1);
    }
    const api = await ctx.api();
    const v = await api.json('POST', '/volumes/create', {
      body: { Name: p.args[0] ?? o.name ?? '', Driver: o.driver, DriverOpts: keyValueMap(o.opt), Labels: keyValueMap(o.label) },
    });
    ctx.out(`${v.Name}\n`);
    return 0;
  },
};

/** One `volume ls` row (formatter.volumeContext); keys in the order `{{json .}}` prints them. */
function volumeRow(v: Record<string, any>): Record<string, unknown> {
  const labels: Record<string, string> = v.Labels ?? {};
  const row: Record<string, unknown> = {
    Availability: 'N/A',
    Driver: String(v.Driver ?? ''),
    Group: 'N/A',
    Labels: Object.keys(labels).map((k) => `${k}=${labels[k]}`).join(','),
    Links: v.UsageData ? String(v.UsageData.RefCount) : 'N/A',
    Mountpoint: String(v.Mountpoint ?? ''),
    Name: String(v.Name ?? ''),
    Scope: String(v.Scope ?? ''),
    Size: 'N/A',
    Status: 'N/A',
  };
  Object.defineProperty(row, 'Label', { enumerable: false, value: (k: string) => labels[k] ?? '' });
  return row;
}

const volumeHeaders: Record<string, string> = {
  Name: 'VOLUME NAME', Driver: 'DRIVER', Scope: 'SCOPE', Mountpoint: 'MOUNTPOINT', Labels: 'LABELS', Label: 'LABEL',
  Links: 'LINKS', Size: 'SIZE', Availability: 'AVAILABILITY', Group: 'GROUP', Status: 'STATUS',
};

const ls: CommandDef = {
  spec: spec('volume ls', 'volume ls [OPTIONS]', 'List volumes', [
    { long: 'filter', short: 'f', kind: 'list', valueName: 'filter', usage: "Provide filter values (e.g. 'dangling=true')" },
    { long: 'format', kind: 'string', usage: 'Format output using a custom template' },
    { long: 'quiet', short: 'q', kind: 'bool', usage: 'Only display volume names' },
  ], { maxArgs: 0, aliases: ['berth volume ls', 'berth volume list'] }),
  async run(ctx, p) {
    const o = p.opts;
    const api = await ctx.api();
    const r = await api.get('/volumes', { filters: filtersParam(o.filter) });
    const vols = ((r?.Volumes ?? []) as Array<Record<string, any>>).sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0));
    let format: string = o.format;
    if (o.quiet && !format) format = '{{.Name}}';
    if (!format || format === 'table') format = 'table {{.Driver}}\t{{.Name}}';
    ctx.out(renderRows(format, vols.map(volumeRow), volumeHeaders));
    return 0;
  },
};

const inspect: CommandDef = {
  spec: spec('volume inspect', 'volume inspect [OPTIONS] VOLUME [VOLUME...]', 'Display detailed information on one or more volumes', [
    { long: 'format', short: 'f', kind: 'string', usage: 'Format output using a custom template' },
  ], { minArgs: 1 }),
  run: (ctx, p) => inspectCmd(ctx, p.args, p.opts.format, false, 'volume'),
};

const rm: CommandDef = {
  spec: spec('volume rm', 'volume rm [OPTIONS] VOLUME [VOLUME...]', 'Remove one or more volumes', [
    { long: 'force', short: 'f', kind: 'bool', usage: 'Force the removal of one or more volumes' },
  ], { minArgs: 1, aliases: ['berth volume rm', 'berth volume remove'] }),
  async run(ctx, p) {
    const api = await ctx.api();
    return forEachObject(ctx, p.args, async (name) => {
      const r = await api.request('DELETE', `/volumes/${encodeURIComponent(name)}`, { query: { force: p.opts.force ? 1 : undefined }, allowError: true });
      if (r.status >= 400) throw await ApiClient.errorOf(r);
      r.res.resume();
    });
  },
};

export const defs: Record<string, CommandDef> = { create, ls, inspect, rm };
