// inspect (any object), version, info, events, bootstrap.
import { ApiError, CLIENT_MAX_API, CliError, compareVersions, filtersParam, timestampParam } from '../client';
import { forEachLine } from '../jsonlines';
import type { CommandDef, Ctx } from '../context';
import type { CommandSpec, FlagSpec } from '../flags';
import { compile, execute } from '../format';
import { prepareFormat } from '../template';
import { bytesSize, jsonIndent } from '../units';
import { printProgress } from './run';

const spec = (path: string, usage: string, description: string, flags: FlagSpec[], extra: Partial<CommandSpec> = {}): CommandSpec => ({ path, usage, description, flags, ...extra });

type Kind = 'container' | 'image' | 'volume' | 'network';

/**
 * docker inspect: raw JSON objects re-indented (4 spaces) in one array, or a template per
 * object. Objects not found are reported after the output, exit 1.
 */
export async function inspectCmd(ctx: Ctx, names: string[], format: string, size: boolean, type?: string): Promise<number> {
  const api = await ctx.api();
  const kinds: Kind[] = type === 'container' || type === 'image' || type === 'volume' || type === 'network' ? [type] : ['container', 'image', 'volume', 'network'];
  if (type && !kinds.includes(type as Kind)) throw new CliError(`"${type}" is not a valid value for --type`, 1);
  const raws: string[] = [];
  const errors: string[] = [];
  for (const name of names) {
    let found: string | null = null;
    let lastErr: ApiError | null = null;
    for (const k of kinds) {
      const path = k === 'container' ? `/containers/${name}/json` : k === 'image' ? `/images/${name}/json`
        : k === 'network' ? `/networks/${encodeURIComponent(name)}` : `/volumes/${encodeURIComponent(name)}`;
      const r = await api.request('GET', path, { query: k === 'container' && size ? { size: 1 } : undefined, allowError: true });
      const text = await r.text();
      if (r.status === 200) {
        found = text.trim();
        break;
      }
      // `volume inspect` reports the daemon's words ("get x: no such volume"), as docker does.
      if (r.status !== 404 || type === 'volume' || type === 'network') {
        let msg = text;
        try {
          msg = JSON.parse(text).message;
        } catch {
          /* plain text */
        }
        lastErr = new ApiError(r.status, msg);
        break;
      }
    }
    if (found !== null) raws.push(found);
    else if (lastErr) errors.push(`Error response from daemon: ${lastErr.message}`);
    else if (type === 'container') errors.push(`Error: No such container: ${name}`);
    else if (type === 'image') errors.push(`Error: No such image: ${name}`);
    else errors.push(`Error: No such object: ${name}`);
  }
  if (format.trim() === 'json') {
    // docker's JSON inspector: the same array, on one line
    ctx.out(`[${raws.join(',')}]\n`);
  } else if (format) {
    const { body } = prepareFormat(format);
    const t = compile(body);
    for (const raw of raws) ctx.out(execute(t, JSON.parse(raw)) + '\n');
  } else {
    ctx.out((raws.length ? jsonIndent(`[${raws.join(',')}]`) : '[]') + '\n');
  }
  for (const e of errors) ctx.err(e + '\n');
  return errors.length ? 1 : 0;
}

const inspect: CommandDef = {
  spec: spec('inspect', 'inspect [OPTIONS] NAME|ID [NAME|ID...]', 'Return low-level information on Berth objects', [
    { long: 'format', short: 'f', kind: 'string', usage: 'Format output using a custom template' },
    { long: 'size', short: 's', kind: 'bool', usage: 'Display total file sizes if the type is container' },
    { long: 'type', kind: 'string', usage: 'Return JSON for specified type' },
  ], { minArgs: 1 }),
  run: (ctx, p) => inspectCmd(ctx, p.args, p.opts.format, p.opts.size, p.opts.type || undefined),
};

const CLIENT_VERSION = '0.1.0';

const version: CommandDef = {
  spec: spec('version', 'version [OPTIONS]', 'Show the Berth version information', [{ long: 'format', short: 'f', kind: 'string', usage: 'Format output using a custom template' }], { maxArgs: 0 }),
  async run(ctx, p) {
    const api = await ctx.api();
    const v = api.apiVersion;
    const client = {
      Version: CLIENT_VERSION,
      ApiVersion: v,
      DefaultAPIVersion: CLIENT_MAX_API,
      NodeVersion: process.version,
      Os: 'linux',
      Arch: process.arch === 'x64' ? 'amd64' : process.arch,
      Context: 'default',
    };
    let server: Record<string, any> | null = null;
    let serverErr: Error | null = null;
    try {
      server = await api.get('/version');
    } catch (e) {
      serverErr = e as Error;
    }
    if (p.opts.format) {
      const t = compile(prepareFormat(p.opts.format).body);
      ctx.out(execute(t, { Client: client, Server: server }) + '\n');
      if (serverErr) throw serverErr;
      return 0;
    }
    const downgraded = compareVersions(v, CLIENT_MAX_API) < 0 ? ` (downgraded from ${CLIENT_MAX_API})` : '';
    const pad = (k: string, w: number): string => (k + ':').padEnd(w);
    let out = 'Client:\n';
    out += ` ${pad('Version', 19)}${client.Version}\n`;
    out += ` ${pad('API version', 19)}${v}${downgraded}\n`;
    out += ` ${pad('Node version', 19)}${client.NodeVersion}\n`;
    out += ` ${pad('OS/Arch', 19)}${client.Os}/${client.Arch}\n`;
    out += ` ${pad('Context', 19)}${client.Context}\n`;
    if (server) {
      out += '\nServer:\n';
      const comps: Array<Record<string, any>> = server.Components ?? [{ Name: 'Engine', Version: server.Version, Details: {} }];
      for (const c of comps) {
        out += ` ${c.Name}:\n`;
        if (c.Name === 'Engine') {
          out += `  ${pad('Version', 18)}${server.Version}\n`;
          out += `  ${pad('API version', 18)}${server.ApiVersion} (minimum version ${server.MinAPIVersion})\n`;
          if (server.GoVersion) out += `  ${pad('Go version', 18)}${server.GoVersion}\n`;
          out += `  ${pad('Git commit', 18)}${server.GitCommit ?? ''}\n`;
          out += `  ${pad('Built', 18)}${ansiC(server.BuildTime)}\n`;
          out += `  ${pad('OS/Arch', 18)}${server.Os}/${server.Arch}\n`;
          out += `  ${pad('Experimental', 18)}${Boolean(server.Experimental)}\n`;
        } else {
          out += `  ${pad('Version', 18)}${c.Version}\n`;
          for (const [k, val] of Object.entries(c.Details ?? {})) out += `  ${pad(k, 18)}${String(val)}\n`;
        }
      }
    }
    ctx.out(out);
    if (serverErr) throw serverErr;
    return 0;
  },
};

/** Go's time.ANSIC layout (`Thu May  7 21:09:36 2026`), as `docker version` shows build times. */
function ansiC(t: unknown): string {
  const d = new Date(String(t ?? ''));
  if (Number.isNaN(d.getTime())) return String(t ?? '');
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${days[d.getUTCDay()]} ${months[d.getUTCMonth()]} ${String(d.getUTCDate()).padStart(2, ' ')} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} ${d.getUTCFullYear()}`;
}

const info: CommandDef = {
  spec: spec('info', 'info [OPTIONS]', 'Display system-wide information', [{ long: 'format', short: 'f', kind: 'string', usage: 'Format output using a custom template' }], { maxArgs: 0 }),
  async run(ctx, p) {
    const api = await ctx.api();
    const i = await api.get('/info');
    if (p.opts.format) {
      const t = compile(prepareFormat(p.opts.format).body);
      ctx.out(execute(t, i) + '\n');
      return 0;
    }
    const lines: string[] = ['Client:', ` Version:    ${CLIENT_VERSION}`, ' Context:    default', ' Debug Mode: false', '', 'Server:'];
    const add = (indent: number, k: string, v: unknown): void => {
      if (v === undefined || v === null) return;
      lines.push(`${' '.repeat(indent)}${k}: ${String(v)}`);
    };
    add(1, 'Containers', i.Containers);
    add(2, 'Running', i.ContainersRunning);
    add(2, 'Paused', i.ContainersPaused);
    add(2, 'Stopped', i.ContainersStopped);
    add(1, 'Images', i.Images);
    add(1, 'Server Version', i.ServerVersion);
    add(1, 'Storage Driver', i.Driver);
    for (const [k, v] of (i.DriverStatus ?? []) as string[][]) add(2, k, v);
    add(1, 'Logging Driver', i.LoggingDriver);
    add(1, 'Cgroup Driver', i.CgroupDriver);
    add(1, 'Cgroup Version', i.CgroupVersion);
    if (i.Plugins) {
      lines.push(' Plugins:');
      for (const k of ['Volume', 'Network', 'Authorization', 'Log']) if (i.Plugins[k]?.length) add(2, k, i.Plugins[k].join(' '));
    }
    if (i.Swarm) add(1, 'Swarm', i.Swarm.LocalNodeState);
    if (i.Runtimes) add(1, 'Runtimes', Object.keys(i.Runtimes).sort().join(' '));
    add(1, 'Default Runtime', i.DefaultRuntime);
    add(1, 'Init Binary', i.InitBinary);
    if (i.ContainerdCommit) add(1, 'containerd version', i.ContainerdCommit.ID);
    if (i.RuncCommit) add(1, 'runc version', i.RuncCommit.ID);
    if (i.InitCommit) add(1, 'init version', i.InitCommit.ID);
    if (i.SecurityOptions?.length) {
      lines.push(' Security Options:');
      for (const so of i.SecurityOptions as string[]) {
        const parts = so.split(',');
        lines.push(`  ${parts[0].replace(/^name=/, '')}`);
        for (const kv of parts.slice(1)) {
          const [k, v] = kv.split('=');
          lines.push(`   ${k[0].toUpperCase()}${k.slice(1)}: ${v}`);
        }
      }
    }
    add(1, 'Kernel Version', i.KernelVersion);
    add(1, 'Operating System', i.OperatingSystem);
    add(1, 'OSType', i.OSType);
    add(1, 'Architecture', i.Architecture);
    add(1, 'CPUs', i.NCPU);
    if (i.MemTotal !== undefined) add(1, 'Total Memory', bytesSize(Number(i.MemTotal)));
    add(1, 'Name', i.Name);
    add(1, 'ID', i.ID);
    add(1, 'Docker Root Dir', i.DockerRootDir);
    add(1, 'Debug Mode', Boolean(i.Debug));
    // Same order and conditions as the docker CLI's info.
    if (i.HttpProxy) add(1, 'HTTP Proxy', i.HttpProxy);
    if (i.HttpsProxy) add(1, 'HTTPS Proxy', i.HttpsProxy);
    if (i.NoProxy) add(1, 'No Proxy', i.NoProxy);
    if (i.Dns?.length) add(1, 'DNS', (i.Dns as string[]).join(', '));
    if (i.Labels?.length) {
      lines.push(' Labels:');
      for (const l of i.Labels as string[]) lines.push(`  ${l}`);
    }
    add(1, 'Experimental', Boolean(i.ExperimentalBuild));
    const reg = i.RegistryConfig;
    if (reg && (reg.InsecureRegistryCIDRs?.length || Object.keys(reg.IndexConfigs ?? {}).length)) {
      lines.push(' Insecure Registries:');
      for (const ic of Object.values(reg.IndexConfigs ?? {}) as Array<{ Name: string; Secure: boolean }>) if (!ic.Secure) lines.push(`  ${ic.Name}`);
      for (const c of (reg.InsecureRegistryCIDRs ?? []) as string[]) lines.push(`  ${c}`);
    }
    if (reg?.Mirrors?.length) {
      lines.push(' Registry Mirrors:');
      for (const m of reg.Mirrors as string[]) lines.push(`  ${m}`);
    }
    add(1, 'Live Restore Enabled', Boolean(i.LiveRestoreEnabled));
    ctx.out(lines.join('\n') + '\n\n');
    for (const w of (i.Warnings ?? []) as string[]) ctx.err(`${w}\n`);
    return 0;
  },
};

/** RFC3339NanoFixed in local time, as jsonmessage prints event times. */
function eventTime(timeNano: number | bigint | undefined, time: number): string {
  const ns = timeNano !== undefined ? BigInt(timeNano) : BigInt(time) * 1000000000n;
  const ms = Number(ns / 1000000n);
  const frac = String(ns % 1000000000n).padStart(9, '0');
  const d = new Date(ms);
  const off = -d.getTimezoneOffset();
  const local = new Date(ms + off * 60000);
  const p = (n: number): string => String(n).padStart(2, '0');
  const tz = off === 0 ? 'Z' : `${off > 0 ? '+' : '-'}${p(Math.floor(Math.abs(off) / 60))}:${p(Math.abs(off) % 60)}`;
  return `${local.getUTCFullYear()}-${p(local.getUTCMonth() + 1)}-${p(local.getUTCDate())}T${p(local.getUTCHours())}:${p(local.getUTCMinutes())}:${p(local.getUTCSeconds())}.${frac}${tz}`;
}

const events: CommandDef = {
  spec: spec('events', 'events [OPTIONS]', 'Get real time events from the server', [
    { long: 'filter', short: 'f', kind: 'list', valueName: 'filter', usage: 'Filter output based on conditions provided' },
    { long: 'format', kind: 'string', usage: 'Format output using a custom template' },
    { long: 'since', kind: 'string', usage: 'Show all events created since timestamp' },
    { long: 'until', kind: 'string', usage: 'Stream events until this timestamp' },
  ], { maxArgs: 0 }),
  async run(ctx, p) {
    const o = p.opts;
    const t = o.format ? compile(prepareFormat(o.format).body) : null;
    const api = await ctx.api();
    const r = await api.request('GET', '/events', { query: { since: timestampParam(o.since), until: timestampParam(o.until), filters: filtersParam(o.filter) } });
    const handle = (line: string): void => {
      // Keep timeNano exact: it exceeds double precision.
      const ev = JSON.parse(line);
      const nano = /"timeNano":(\d+)/.exec(line)?.[1];
      if (t) {
        ctx.out(execute(t, ev) + '\n');
        return;
      }
      const attrs = ev.Actor?.Attributes ?? {};
      const keys = Object.keys(attrs).sort();
      const a = keys.length ? ` (${keys.map((k) => `${k}=${attrs[k]}`).join(', ')})` : '';
      ctx.out(`${eventTime(nano !== undefined ? BigInt(nano) : undefined, ev.time)} ${ev.Type} ${ev.Action} ${ev.Actor?.ID ?? ev.id ?? ''}${a}\n`);
    };
    await forEachLine(r.res, handle);
    return 0;
  },
};

const bootstrap: CommandDef = {
  spec: spec('bootstrap', 'bootstrap [OPTIONS] NAME', 'Build a base image with debootstrap inside the daemon', [], { minArgs: 1, maxArgs: 1 }),
  async run(ctx, p) {
    const api = await ctx.api();
    const r = await api.request('POST', '/berth/bootstrap', { query: { image: p.args[0] } });
    await printProgress(r, ctx.out);
    return 0;
  },
};

export const defs: Record<string, CommandDef> = { inspect, version, info, events, bootstrap };
