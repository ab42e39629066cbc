// Container commands other than run/create: lifecycle, ps, logs, exec, attach, wait, top,
// rename, port, diff, commit, cp.
// Long (~800 lines): one small command function per docker container subcommand,
// each with its flags; splitting by command would only add files that import each other.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiClient, ApiError, CliError, filtersParam, timestampParam } from '../client';
import { forEachObject, type CommandDef, type Ctx } from '../context';
import type { CommandSpec, FlagSpec, Parsed } from '../flags';
import { renderRows } from '../format';
import { ellipsis, goQuote, goTimeString, humanDuration, humanSize, tabwrite, truncateId } from '../units';
import { finishSession, flushStdio, pump, terminalSize, writeTarOutput } from '../streams';
import { monitorTty, parseRestart, proxySignals, resizeContainer, resourceFlags, waitExit } from './run';
import { StdcopyDecoder, STDERR } from '../../common/stdcopy';
import { inspectCmd } from './system';

const spec = (path: string, usage: string, description: string, flags: FlagSpec[], extra: Partial<CommandSpec> = {}): CommandSpec => ({ path, usage, description, flags, ...extra });

/** Discards a response body we do not need (keeps the keep-alive connection usable). */
async function drain(r: { res: NodeJS.ReadableStream & { resume(): void } }): Promise<void> {
  r.res.resume();
}

// ---------------------------------------------------------------- lifecycle

const startCmd: CommandDef = {
  spec: spec('start', 'start [OPTIONS] CONTAINER [CONTAINER...]', 'Start one or more stopped containers', [
    { long: 'attach', short: 'a', kind: 'bool', usage: 'Attach STDOUT/STDERR and forward signals' },
    { long: 'detach-keys', kind: 'string', usage: 'Override the key sequence for detaching a container' },
    { long: 'interactive', short: 'i', kind: 'bool', usage: "Attach container's STDIN" },
  ], { minArgs: 1 }),
  async run(ctx, p) {
    const api = await ctx.api();
    const o = p.opts;
    if (o.attach || o.interactive) {
      if (p.args.length > 1) throw new CliError('you cannot start and attach multiple containers at once', 1);
      const name = p.args[0];
      const c = await api.get(`/containers/${name}/json`);
      const tty = Boolean(c.Config.Tty);
      const stdin = Boolean(o.interactive && c.Config.OpenStdin);
      const q: Record<string, unknown> = { stream: 1, stdout: 1, stderr: 1 };
      if (stdin) q.stdin = 1;
      if (o['detach-keys']) q.detachKeys = o['detach-keys'];
      const h = await api.hijack(`/containers/${c.Id}/attach`, q as Record<string, number>);
      const exitP = waitExit(api, c.Id, 'next-exit');
      exitP.catch(() => undefined);
      const pumpP = pump(h, { tty, stdin, detachKeys: o['detach-keys'] });
      pumpP.catch(() => undefined);
      const stopSig = tty ? () => undefined : proxySignals(api, c.Id);
      const r = await api.request('POST', `/containers/${c.Id}/start`, { allowError: true });
      if (r.status >= 400) {
        stopSig();
        h.socket.destroy();
        throw await ApiClient.errorOf(r);
      }
      await drain(r);
      const stopResize = tty && process.stdout.isTTY ? monitorTty((hh, w) => resizeContainer(api, c.Id, hh, w)) : () => undefined;
      return finishSession(pumpP, [stopResize, stopSig], (s) => ctx.err(s), () => exitP);
    }
    let failed = false;
    for (const n of p.args) {
      try {
        const r = await api.request('POST', `/containers/${n}/start`);
        await drain(r);
        ctx.out(`${n}\n`);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        ctx.err(`Error response from daemon: ${e.message}\n`);
        failed = true;
      }
    }
    if (failed) {
      ctx.err(`Error: failed to start containers: ${p.args.join(', ')}\n`);
      return 1;
    }
    return 0;
  },
};

const timeFlags: FlagSpec[] = [
  { long: 'signal', short: 's', kind: 'string', usage: 'Signal to send to the container' },
  { long: 'time', short: 't', kind: 'int', def: undefined, usage: 'Seconds to wait before killing the container' },
];

function stopQuery(p: Parsed): Record<string, string | number> {
  const q: Record<string, string | number> = {};
  if (p.opts.signal) q.signal = p.opts.signal;
  if (p.changed.has('time')) q.t = p.opts.time;
  return q;
}

const stopCmd: CommandDef = {
  spec: spec('stop', 'stop [OPTIONS] CONTAINER [CONTAINER...]', 'Stop one or more running containers', timeFlags, { minArgs: 1 }),
  async run(ctx, p) {
    const api = await ctx.api();
    return forEachObject(ctx, p.args, async (n) => drain(await api.request('POST', `/containers/${n}/stop`, { query: stopQuery(p) })));
  },
};

const restartCmd: CommandDef = {
  spec: spec('restart', 'restart [OPTIONS] CONTAINER [CONTAINER...]', 'Restart one or more containers', timeFlags, { minArgs: 1 }),
  async run(ctx, p) {
    const api = await ctx.api();
    return forEachObject(ctx, p.args, async (n) => drain(await api.request('POST', `/containers/${n}/restart`, { query: stopQuery(p) })));
  },
};

const killCmd: CommandDef = {
  spec: spec('kill', 'kill [OPTIONS] CONTAINER [CONTAINER...]', 'Kill one or more running containers', [{ long: 'signal', short: 's', kind: 'string', usage: 'Signal to send to the container' }], { minArgs: 1 }),
  async run(ctx, p) {
    const api = await ctx.api();
    return forEachObject(ctx, p.args, async (n) => drain(await api.request('POST', `/containers/${n}/kill`, { query: { signal: p.opts.signal || undefined } })));
  },
};

const rmCmd: CommandDef = {
  spec: spec('rm', 'rm [OPTIONS] CONTAINER [CONTAINER...]', 'Remove one or more containers', [
    { long: 'force', short: 'f', kind: 'bool', usage: 'Force the removal of a running container (uses SIGKILL)' },
    { long: 'link', short: 'l', kind: 'bool', usage: 'Remove the specified link' },
    { long: 'volumes', short: 'v', kind: 'bool', usage: 'Remove anonymous volumes associated with the container' },
  ], { minArgs: 1, aliases: ['berth container rm', 'berth container remove', 'berth rm'] }),
  async run(ctx, p) {
    const api = await ctx.api();
    const q = { v: p.opts.volumes ? 1 : undefined, force: p.opts.force ? 1 : undefined, link: p.opts.link ? 1 : undefined };
    return forEachObject(ctx, p.args, async (n) => drain(await api.request('DELETE', `/containers/${n}`, { query: q })));
  },
};

const simple = (name: string, verb: string, description: string): CommandDef => ({
  spec: spec(name, `${name} CONTAINER [CONTAINER...]`, description, [], { minArgs: 1 }),
  async run(ctx, p) {
    const api = await ctx.api();
    return forEachObject(ctx, p.args, async (n) => drain(await api.request('POST', `/containers/${n}/${verb}`)));
  },
});

const waitCmd: CommandDef = {
  spec: spec('wait', 'wait CONTAINER [CONTAINER...]', 'Block until one or more containers stop, then print their exit codes', [], { minArgs: 1 }),
  async run(ctx, p) {
    const api = await ctx.api();
    return forEachObject(ctx, p.args, async (n) => ctx.out(`${await waitExit(api, n, '')}\n`), false);
  },
};

const renameCmd: CommandDef = {
  spec: spec('rename', 'rename CONTAINER NEW_NAME', 'Rename a container', [], { minArgs: 2, maxArgs: 2 }),
  async run(ctx, p) {
    const api = await ctx.api();
    const newName = p.args[1].trim();
    if (!newName) throw new CliError('Error: Neither old nor new names may be empty', 1);
    try {
      await drain(await api.request('POST', `/containers/${p.args[0]}/rename`, { query: { name: newName } }));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      ctx.err(`Error response from daemon: ${e.message}\n`);
      throw new CliError(`Error: failed to rename container named ${p.args[0]}`, 1);
    }
    return 0;
  },
};

// ---------------------------------------------------------------- ps

function displayPorts(ports: Array<Record<string, any>> | null): string {
  if (!ports) return '';
  const sorted = [...ports].sort((a, b) => (a.PrivatePort - b.PrivatePort) || String(a.Type).localeCompare(String(b.Type)));
  const out: string[] = [];
  for (const pt of sorted) {
    if (pt.PublicPort) {
      const ip = String(pt.IP ?? '');
      const host = ip.includes(':') ? `[${ip}]` : ip;
      out.push(`${host}:${pt.PublicPort}->${pt.PrivatePort}/${pt.Type}`);
    } else out.push(`${pt.PrivatePort}/${pt.Type}`);
  }
  return [...new Set(out)].join(', ');
}

function labelsString(l: Record<string, string> | null | undefined): string {
  if (!l) return '';
  return Object.keys(l)
    .map((k) => `${k}=${l[k]}`)
    .join(',');
}

export function psRow(c: Record<string, any>, trunc: boolean, now = Date.now()): Record<string, unknown> {
  let names: string[] = (c.Names ?? []).map((n: string) => n.replace(/^\//, ''));
  if (trunc) names = names.filter((n) => !n.includes('/')).slice(0, 1).concat(names.filter((n) => !n.includes('/')).slice(1));
  let image = String(c.Image ?? '');
  if (trunc && /^sha256:[0-9a-f]{64}$/.test(image)) image = truncateId(image);
  else if (trunc && /^[0-9a-f]{64}$/.test(image)) image = truncateId(image);
  const cmd = trunc ? ellipsis(String(c.Command ?? ''), 20) : String(c.Command ?? '');
  const created = new Date(Number(c.Created) * 1000);
  // formatter.ContainerContext.Size: always the rw size, plus the virtual size when known.
  let size = humanSize(Number(c.SizeRw ?? 0));
  if (Number(c.SizeRootFs ?? 0) > 0) size += ` (virtual ${humanSize(Number(c.SizeRootFs))})`;
  const mounts = (c.Mounts ?? []).map((m: Record<string, string>) => {
    const n = m.Name || m.Source || '';
    return trunc ? ellipsis(n, 15) : n;
  });
  const row: Record<string, unknown> = {
    Command: goQuote(cmd),
    CreatedAt: goTimeString(created),
    ID: trunc ? truncateId(String(c.Id)) : String(c.Id),
    Image: image,
    Labels: labelsString(c.Labels),
    LocalVolumes: String((c.Mounts ?? []).filter((m: Record<string, string>) => m.Driver === 'local').length),
    Mounts: mounts.join(','),
    Names: names.join(','),
    Networks: Object.keys(c.NetworkSettings?.Networks ?? {}).sort().join(','),
    // docker 28 derives it from ImageManifestDescriptor, which Berth does not report
    Platform: null,
    Ports: displayPorts(c.Ports),
    RunningFor: `${humanDuration(now - created.getTime())} ago`,
    Size: size,
    State: String(c.State ?? ''),
    Status: String(c.Status ?? ''),
  };
  Object.defineProperty(row, 'Label', { enumerable: false, value: (k: string) => (c.Labels ?? {})[k] ?? '' });
  return row;
}

export const psHeaders: Record<string, string> = {
  ID: 'CONTAINER ID',
  Image: 'IMAGE',
  Command: 'COMMAND',
  CreatedAt: 'CREATED AT',
  RunningFor: 'CREATED',
  Ports: 'PORTS',
  State: 'STATE',
  Status: 'STATUS',
  Size: 'SIZE',
  Names: 'NAMES',
  Labels: 'LABELS',
  Label: 'LABEL',
  LocalVolumes: 'LOCAL VOLUMES',
  Mounts: 'MOUNTS',
  Networks: 'NETWORKS',
};

const psCmd: CommandDef = {
  spec: spec('ps', 'ps [OPTIONS]', 'List containers', [
    { long: 'all', short: 'a', kind: 'bool', usage: 'Show all containers (default shows just running)' },
    { long: 'filter', short: 'f', kind: 'list', valueName: 'filter', usage: 'Filter output based on conditions provided' },
    { long: 'format', kind: 'string', usage: 'Format output using a custom template' },
    { long: 'last', short: 'n', kind: 'int', def: -1, usage: 'Show n last created containers (includes all states)' },
    { long: 'latest', short: 'l', kind: 'bool', usage: 'Show the latest created container (includes all states)' },
    { long: 'no-trunc', kind: 'bool', usage: "Don't truncate output" },
    { long: 'quiet', short: 'q', kind: 'bool', usage: 'Only display container IDs' },
    { long: 'size', short: 's', kind: 'bool', usage: 'Display total file sizes' },
  ], { maxArgs: 0, aliases: ['berth container ls', 'berth container list', 'berth container ps', 'berth ps'] }),
  async run(ctx, p) {
    const o = p.opts;
    let format: string = o.format;
    if (o.quiet && !format) format = '{{.ID}}';
    if (!format) format = 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}' + (o.size ? '\t{{.Size}}' : '');
    else if (format === 'table') format = 'table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}';
    const wantSize = o.size || /\.Size\b/.test(format) || /json\s+\.\s*(\}\}|\|)/.test(format);
    let limit: number = o.last;
    if (o.latest && limit === -1) limit = 1;
    const api = await ctx.api();
    const list = (await api.get('/containers/json', {
      all: o.all ? 1 : undefined,
      limit: limit > 0 ? limit : undefined,
      size: wantSize ? 1 : undefined,
      filters: filtersParam(o.filter),
    })) as Array<Record<string, any>>;
    const now = Date.now();
    ctx.out(renderRows(format, list.map((c) => psRow(c, !o['no-trunc'], now)), psHeaders));
    return 0;
  },
};

// ---------------------------------------------------------------- logs

async function copyOutput(res: NodeJS.ReadableStream, tty: boolean): Promise<void> {
  const dec = tty ? null : new StdcopyDecoder((s, d) => (s === STDERR ? process.stderr.write(d) : process.stdout.write(d)));
  for await (const chunk of res) {
    if (dec) dec.push(chunk as Buffer);
    else process.stdout.write(chunk as Buffer);
  }
  await flushStdio();
}

const logsCmd: CommandDef = {
  spec: spec('logs', 'logs [OPTIONS] CONTAINER', 'Fetch the logs of a container', [
    { long: 'details', kind: 'bool', usage: 'Show extra details provided to logs' },
    { long: 'follow', short: 'f', kind: 'bool', usage: 'Follow log output' },
    { long: 'since', kind: 'string', usage: 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
    { long: 'tail', short: 'n', kind: 'string', def: 'all', usage: 'Number of lines to show from the end of the logs' },
    { long: 'timestamps', short: 't', kind: 'bool', usage: 'Show timestamps' },
    { long: 'until', kind: 'string', usage: 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
  ], { minArgs: 1, maxArgs: 1 }),
  async run(ctx, p) {
    const o = p.opts;
    const api = await ctx.api();
    const c = await api.get(`/containers/${p.args[0]}/json`);
    const r = await api.request('GET', `/containers/${c.Id}/logs`, {
      query: {
        stdout: 1,
        stderr: 1,
        since: timestampParam(o.since),
        until: timestampParam(o.until),
        timestamps: o.timestamps ? 1 : undefined,
        follow: o.follow ? 1 : undefined,
        tail: o.tail,
        details: o.details ? 1 : undefined,
      },
    });
    await copyOutput(r.res, Boolean(c.Config?.Tty));
    return 0;
  },
};

// ---------------------------------------------------------------- exec

const execCmd: CommandDef = {
  spec: spec('exec', 'exec [OPTIONS] CONTAINER COMMAND [ARG...]', 'Execute a command in a running container', [
    { long: 'detach', short: 'd', kind: 'bool', usage: 'Detached mode: run command in the background' },
    { long: 'detach-keys', kind: 'string', usage: 'Override the key sequence for detaching a container' },
    { long: 'env', short: 'e', kind: 'list', usage: 'Set environment variables' },
    { long: 'env-file', kind: 'list', usage: 'Read in a file of environment variables' },
    { long: 'interactive', short: 'i', kind: 'bool', usage: 'Keep STDIN open even if not attached' },
    { long: 'privileged', kind: 'bool', usage: 'Give extended privileges to the command' },
    { long: 'tty', short: 't', kind: 'bool', usage: 'Allocate a pseudo-TTY' },
    { long: 'user', short: 'u', kind: 'string', usage: 'Username or UID (format: "<name|uid>[:<group|gid>]")' },
    { long: 'workdir', short: 'w', kind: 'string', usage: 'Working directory inside the container' },
  ], { minArgs: 2, interspersed: false, aliases: ['berth container exec', 'berth exec'] }),
  async run(ctx, p) {
    const o = p.opts;
    const api = await ctx.api();
    const name = p.args[0];
    await api.get(`/containers/${name}/json`);
    const env: string[] = [];
    for (const f of o['env-file'] as string[]) {
      for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
        const l = line.trim();
        if (!l || l.startsWith('#')) continue;
        if (l.includes('=')) env.push(l);
        else if (process.env[l] !== undefined) env.push(`${l}=${process.env[l]}`);
      }
    }
    for (const e of o.env as string[]) {
      if (e.includes('=')) env.push(e);
      else if (process.env[e] !== undefined) env.push(`${e}=${process.env[e]}`);
    }
    const tty: boolean = o.tty;
    const detach: boolean = o.detach;
    if (tty && o.interactive && !detach && !process.stdin.isTTY) throw new CliError('the input device is not a TTY', 1);
    const size = tty && !detach ? terminalSize() : null;
    const body: Record<string, unknown> = {
      User: o.user,
      Privileged: o.privileged,
      Tty: tty,
    };
    if (size) body.ConsoleSize = [size.h, size.w];
    Object.assign(body, {
      AttachStdin: o.interactive && !detach,
      AttachStderr: !detach,
      AttachStdout: !detach,
      Detach: detach,
      DetachKeys: o['detach-keys'],
      Env: env.length ? env : null,
      WorkingDir: o.workdir,
      Cmd: p.args.slice(1),
    });
    const created = await api.json('POST', `/containers/${name}/exec`, { body });
    const execId: string = created.Id;
    if (detach) {
      await drain(await api.request('POST', `/exec/${execId}/start`, { body: { Detach: true, Tty: tty } }));
      return 0;
    }
    const h = await api.hijack(`/exec/${execId}/start`, undefined, { Detach: false, Tty: tty });
    const pumpP = pump(h, { tty, stdin: Boolean(o.interactive), detachKeys: o['detach-keys'] });
    const stopResize = tty && process.stdout.isTTY ? monitorTty(async (hh, w) => drain(await api.request('POST', `/exec/${execId}/resize`, { query: { h: hh, w }, allowError: true }))) : () => undefined;
    return finishSession(pumpP, [stopResize], (s) => ctx.err(s), async () => Number((await api.get(`/exec/${execId}/json`))?.ExitCode ?? 0));
  },
};

// ---------------------------------------------------------------- attach

const attachCmd: CommandDef = {
  spec: spec('attach', 'attach [OPTIONS] CONTAINER', 'Attach local standard input, output, and error streams to a running container', [
    { long: 'detach-keys', kind: 'string', usage: 'Override the key sequence for detaching a container' },
    { long: 'no-stdin', kind: 'bool', usage: 'Do not attach STDIN' },
    { long: 'sig-proxy', kind: 'bool', def: true, usage: 'Proxy all received signals to the process' },
  ], { minArgs: 1, maxArgs: 1 }),
  async run(ctx, p) {
    const o = p.opts;
    const api = await ctx.api();
    const name = p.args[0];
    const c = await api.get(`/containers/${name}/json`);
    if (!c.State?.Running) throw new CliError('You cannot attach to a stopped container, start it first', 1);
    if (c.State?.Paused) throw new CliError('You cannot attach to a paused container, unpause it first', 1);
    if (c.State?.Restarting) throw new CliError('You cannot attach to a restarting container, wait until it is running', 1);
    const tty = Boolean(c.Config?.Tty);
    const stdin = Boolean(c.Config?.OpenStdin) && !o['no-stdin'];
    if (stdin && tty && !process.stdin.isTTY) throw new CliError('the input device is not a TTY', 1);
    const exitP = waitExit(api, c.Id, '');
    exitP.catch(() => undefined);
    const q: Record<string, unknown> = { stream: 1, stdout: 1, stderr: 1 };
    if (stdin) q.stdin = 1;
    if (o['detach-keys']) q.detachKeys = o['detach-keys'];
    const h = await api.hijack(`/containers/${c.Id}/attach`, q as Record<string, number>);
    const pumpP = pump(h, { tty, stdin, detachKeys: o['detach-keys'] });
    const stopSig = !tty && o['sig-proxy'] ? proxySignals(api, c.Id) : () => undefined;
    let stopResize = (): void => undefined;
    if (tty && process.stdout.isTTY) {
      // Resize to a different size first so the process gets SIGWINCH and redraws.
      const s = terminalSize();
      if (s) await resizeContainer(api, c.Id, s.h + 1, s.w + 1).catch(() => undefined);
      stopResize = monitorTty((hh, w) => resizeContainer(api, c.Id, hh, w));
    }
    return finishSession(pumpP, [stopResize, stopSig], (s) => ctx.err(s), () => exitP);
  },
};

// ---------------------------------------------------------------- top, port, diff, commit

const topCmd: CommandDef = {
  spec: spec('top', 'top CONTAINER [ps OPTIONS]', 'Display the running processes of a container', [], { minArgs: 1, interspersed: false }),
  async run(ctx, p) {
    const api = await ctx.api();
    const psArgs = p.args.slice(1).join(' ');
    const t = await api.get(`/containers/${p.args[0]}/top`, { ps_args: psArgs || undefined });
    let out = (t.Titles as string[]).join('\t') + '\n';
    for (const row of t.Processes as string[][]) out += row.join('\t') + '\n';
    ctx.out(tabwrite(out, 20, 3));
    return 0;
  },
};

const portCmd: CommandDef = {
  spec: spec('port', 'port CONTAINER [PRIVATE_PORT[/PROTO]]', 'List port mappings or a specific mapping for the container', [], { minArgs: 1, maxArgs: 2 }),
  async run(ctx, p) {
    const api = await ctx.api();
    const c = await api.get(`/containers/${p.args[0]}/json`);
    const ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null> = c.NetworkSettings?.Ports ?? {};
    const fmt = (b: { HostIp: string; HostPort: string }): string => `${b.HostIp.includes(':') ? `[${b.HostIp}]` : b.HostIp}:${b.HostPort}`;
    if (p.args[1]) {
      let want = p.args[1];
      if (!want.includes('/')) want += '/tcp';
      const b = ports[want];
      if (!b || b.length === 0) throw new CliError(`Error: No public port '${want}' published for ${p.args[0]}`, 1);
      for (const x of b) ctx.out(fmt(x) + '\n');
      return 0;
    }
    const keys = Object.keys(ports).sort((a, b) => parseInt(a) - parseInt(b) || a.localeCompare(b));
    for (const k of keys) for (const b of ports[k] ?? []) ctx.out(`${k} -> ${fmt(b)}\n`);
    return 0;
  },
};

const diffCmd: CommandDef = {
  spec: spec('diff', 'diff CONTAINER', "Inspect changes to files or directories on a container's filesystem", [], { minArgs: 1, maxArgs: 1 }),
  async run(ctx, p) {
    const api = await ctx.api();
    const changes = ((await api.get(`/containers/${p.args[0]}/changes`)) ?? []) as Array<{ Kind: number; Path: string }>;
    const kinds = ['C', 'A', 'D'];
    for (const c of changes) ctx.out(`${kinds[c.Kind] ?? '?'} ${c.Path}\n`);
    return 0;
  },
};

const commitCmd: CommandDef = {
  spec: spec('commit', 'commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]', "Create a new image from a container's changes", [
    { long: 'author', short: 'a', kind: 'string', usage: 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")' },
    { long: 'change', short: 'c', kind: 'list', usage: 'Apply Dockerfile instruction to the created image' },
    { long: 'message', short: 'm', kind: 'string', usage: 'Commit message' },
    { long: 'pause', short: 'p', kind: 'bool', def: true, usage: 'Pause container during commit' },
  ], { minArgs: 1, maxArgs: 2 }),
  async run(ctx, p) {
    const { parseReference } = await import('../../common/reference');
    const o = p.opts;
    let repo: string | undefined;
    let tag: string | undefined;
    if (p.args[1]) {
      let ref;
      try {
        ref = parseReference(p.args[1]);
      } catch (e) {
        throw new CliError(`Error parsing reference: "${p.args[1]}" is not a valid repository/tag: ${(e as Error).message}`, 1);
      }
      if (ref.digest) throw new CliError('refusing to create a tag with a digest reference', 1);
      repo = `${ref.domain}/${ref.path}`;
      tag = ref.tag ?? '';
    }
    const api = await ctx.api();
    const query: Record<string, string | number | string[] | undefined> = {
      container: p.args[0],
      repo,
      tag,
      comment: o.message,
      author: o.author,
      pause: o.pause ? undefined : 0,
    };
    const changes = o.change as string[];
    if (changes.length) query.changes = changes;
    const r = await api.request('POST', '/commit', { query });
    const j = await r.json();
    ctx.out(`${j.Id}\n`);
    return 0;
  },
};

// ---------------------------------------------------------------- cp

interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

function splitCpArg(a: string): { container: string | null; path: string } {
  if (a === '-' || a.startsWith('/') || a.startsWith('.')) return { container: null, path: a };
  const i = a.indexOf(':');
  if (i <= 0) return { container: null, path: a };
  return { container: a.slice(0, i), path: a.slice(i + 1) };
}

function decodeStat(h: string | undefined): PathStat | null {
  if (!h) return null;
  try {
    return JSON.parse(Buffer.from(h, 'base64').toString('utf8'));
  } catch {
    return null;
  }
}

const S_IFDIR = 0x80000000; // Go's os.ModeDir bit as sent in the stat header
const S_IFLNK = 0x08000000; // os.ModeSymlink

async function cpFrom(ctx: Ctx, api: ApiClient, container: string, src: string, dest: string, o: Record<string, any>): Promise<number> {
  let srcPath = src;
  if (o['follow-link']) {
    const h = await api.request('HEAD', `/containers/${container}/archive`, { query: { path: srcPath } });
    h.res.resume();
    const st = decodeStat(h.header('x-docker-container-path-stat'));
    if (st && st.mode & S_IFLNK && st.linkTarget) srcPath = st.linkTarget.startsWith('/') ? st.linkTarget : path.posix.join(path.posix.dirname(srcPath), st.linkTarget);
  }
  const r = await api.request('GET', `/containers/${container}/archive`, { query: { path: srcPath } });
  if (dest === '-') {
    for await (const c of r.res) process.stdout.write(c as Buffer);
    await flushStdio();
    return 0;
  }
  const st = decodeStat(r.header('x-docker-container-path-stat'));
  const srcIsDir = Boolean(st && st.mode & S_IFDIR);
  let destStat: fs.Stats | null = null;
  try {
    destStat = fs.statSync(dest);
  } catch {
    /* absent: the copy takes its name */
  }
  if (destStat && !destStat.isDirectory() && srcIsDir) throw new CliError('cannot copy a directory to a file', 1);
  if (!destStat && dest.endsWith('/')) throw new CliError(`destination directory "${dest}" must exist`, 1);
  if (!destStat && !fs.existsSync(path.dirname(path.resolve(dest)))) throw new CliError(`no such directory: ${path.dirname(dest)}`, 1);
  const base = st?.name ?? path.posix.basename(srcPath);
  // Entries are named after the source base name; rename that first component when copying to a new name.
  const rootTarget = destStat && destStat.isDirectory() ? path.join(dest, base) : dest;
  const tar = await import('tar-stream');
  const ex = tar.extract();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (hdr, stream, next) => {
      const name = hdr.name.replace(/^\.?\/+/, '').replace(/\/+$/, '');
      const rel = name === base ? '' : name.startsWith(base + '/') ? name.slice(base.length + 1) : name;
      const target = rel ? path.join(rootTarget, rel) : rootTarget;
      const finish = (err?: Error | null): void => {
        if (err) reject(err);
        else next();
      };
      try {
        if (hdr.type === 'directory') {
          fs.mkdirSync(target, { recursive: true, mode: hdr.mode });
          stream.resume();
          stream.on('end', () => finish());
        } else if (hdr.type === 'symlink') {
          try {
            fs.unlinkSync(target);
          } catch {
            /* nothing to replace */
          }
          fs.symlinkSync(hdr.linkname ?? '', target);
          stream.resume();
          stream.on('end', () => finish());
        } else if (hdr.type === 'file' || hdr.type === 'contiguous-file') {
          const ws = fs.createWriteStream(target, { mode: hdr.mode });
          stream.pipe(ws);
          ws.on('finish', () => {
            try {
              if (hdr.mode !== undefined) fs.chmodSync(target, hdr.mode & 0o7777);
              if (o.archive && hdr.uid !== undefined) fs.chownSync(target, hdr.uid, hdr.gid ?? 0);
              if (hdr.mtime) fs.utimesSync(target, hdr.mtime, hdr.mtime);
            } catch {
              /* metadata is best effort, as docker's */
            }
            finish();
          });
          ws.on('error', finish);
        } else if (hdr.type === 'link') {
          const rl = (hdr.linkname ?? '').replace(/^\.?\/+/, '');
          const relL = rl === base ? '' : rl.startsWith(base + '/') ? rl.slice(base.length + 1) : rl;
          fs.linkSync(relL ? path.join(rootTarget, relL) : rootTarget, target);
          stream.resume();
          stream.on('end', () => finish());
        } else {
          stream.resume();
          stream.on('end', () => finish());
        }
      } catch (e) {
        reject(e);
      }
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  r.res.pipe(ex);
  await done;
  return 0;
}

async function packLocal(src: string, name: string, followLink: boolean): Promise<NodeJS.ReadableStream> {
  const tar = await import('tar-stream');
  const pack = tar.pack();
  const walk = async (abs: string, entry: string, top: boolean): Promise<void> => {
    const st = top && followLink ? fs.statSync(abs) : fs.lstatSync(abs);
    const common = { name: entry, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
    if (st.isDirectory()) {
      pack.entry({ ...common, type: 'directory' });
      for (const child of fs.readdirSync(abs).sort()) await walk(path.join(abs, child), `${entry}/${child}`, false);
    } else if (st.isSymbolicLink()) {
      pack.entry({ ...common, type: 'symlink', linkname: fs.readlinkSync(abs) });
    } else if (st.isFile()) {
      await new Promise<void>((resolve, reject) => {
        const ws = pack.entry({ ...common, type: 'file', size: st.size }, (err) => (err ? reject(err) : resolve()));
        fs.createReadStream(abs).on('error', reject).pipe(ws);
      });
    }
  };
  walk(src, name, true).then(
    () => pack.finalize(),
    (e) => pack.destroy(e),
  );
  return pack as unknown as NodeJS.ReadableStream;
}

async function cpTo(ctx: Ctx, api: ApiClient, src: string, container: string, dest: string, o: Record<string, any>): Promise<number> {
  const query: Record<string, string | number | undefined> = { noOverwriteDirNonDir: 'true', copyUIDGID: o.archive ? 1 : undefined };
  if (src === '-') {
    const r = await api.request('PUT', `/containers/${container}/archive`, { query: { ...query, path: dest }, body: process.stdin, contentType: 'text/plain' });
    r.res.resume();
    return 0;
  }
  let lst: fs.Stats;
  try {
    lst = o['follow-link'] ? fs.statSync(src) : fs.lstatSync(src);
  } catch {
    throw new CliError(`lstat ${path.resolve(src)}: no such file or directory`, 1);
  }
  // Stat the destination: an existing directory receives the source under its own name.
  const h = await api.request('HEAD', `/containers/${container}/archive`, { query: { path: dest }, allowError: true });
  h.res.resume();
  let destDir: string;
  let name: string;
  const st = h.status === 200 ? decodeStat(h.header('x-docker-container-path-stat')) : null;
  if (h.status >= 400 && h.status !== 404) throw new ApiError(h.status, h.status === 409 ? `Container ${container} is not running` : `Could not stat ${dest}`);
  if (h.status === 404 && !(await containerExists(api, container))) throw new ApiError(404, `No such container: ${container}`);
  if (st && st.mode & S_IFDIR) {
    destDir = dest;
    name = path.basename(path.resolve(src));
  } else {
    if (st && lst.isDirectory()) throw new CliError('cannot copy a directory to a file', 1);
    if (!st && dest.endsWith('/')) throw new CliError(`destination directory "${dest}" must exist`, 1);
    destDir = path.posix.dirname(dest) || '/';
    name = path.posix.basename(dest);
  }
  const body = await packLocal(src, name, Boolean(o['follow-link']));
  const r = await api.request('PUT', `/containers/${container}/archive`, { query: { ...query, path: destDir }, body, contentType: 'text/plain' });
  r.res.resume();
  return 0;
}

async function containerExists(api: ApiClient, name: string): Promise<boolean> {
  const r = await api.request('GET', `/containers/${name}/json`, { allowError: true });
  r.res.resume();
  return r.status === 200;
}

const cpCmd: CommandDef = {
  spec: spec('cp', 'cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH', 'Copy files/folders between a container and the local filesystem', [
    { long: 'archive', short: 'a', kind: 'bool', usage: 'Archive mode (copy all uid/gid information)' },
    { long: 'follow-link', short: 'L', kind: 'bool', usage: 'Always follow symbol link in SRC_PATH' },
    { long: 'quiet', short: 'q', kind: 'bool', usage: 'Suppress progress output during copy' },
  ], { minArgs: 2, maxArgs: 2 }),
  async run(ctx, p) {
    const a = splitCpArg(p.args[0]);
    const b = splitCpArg(p.args[1]);
    if (a.container && b.container) throw new CliError('copying between containers is not supported', 1);
    if (!a.container && !b.container) throw new CliError('must specify at least one container source', 1);
    const api = await ctx.api();
    if (a.container) {
      if (!a.path) throw new CliError('error: path cannot be empty', 1);
      return cpFrom(ctx, api, a.container, a.path, b.path, p.opts);
    }
    if (!b.path) throw new CliError('error: path cannot be empty', 1);
    return cpTo(ctx, api, a.path, b.container!, b.path, p.opts);
  },
};

const updateCmd: CommandDef = {
  spec: spec('update', 'update [OPTIONS] CONTAINER [CONTAINER...]', 'Update configuration of one or more containers', ([
    { long: 'blkio-weight', kind: 'int', usage: 'Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)' },
    { long: 'cpu-rt-period', kind: 'int', usage: 'Limit the CPU real-time period in microseconds' },
    { long: 'cpu-rt-runtime', kind: 'int', usage: 'Limit the CPU real-time runtime in microseconds' },
    { long: 'restart', kind: 'string', usage: 'Restart policy to apply when a container exits' },
  ] as FlagSpec[]).concat(resourceFlags()).sort((a, b) => a.long.localeCompare(b.long)), { minArgs: 1, aliases: ['berth container update', 'berth update'] }),
  async run(ctx, p) {
    const o = p.opts;
    if (p.changed.size === 0) throw new CliError('you must provide one or more flags when using this command', 1);
    const set = (flag: string) => p.changed.has(flag);
    const body: Record<string, unknown> = {
      BlkioWeight: set('blkio-weight') ? o['blkio-weight'] : 0,
      CpuPeriod: set('cpu-period') ? o['cpu-period'] : 0,
      CpuQuota: set('cpu-quota') ? o['cpu-quota'] : 0,
      CpuRealtimePeriod: set('cpu-rt-period') ? o['cpu-rt-period'] : 0,
      CpuRealtimeRuntime: set('cpu-rt-runtime') ? o['cpu-rt-runtime'] : 0,
      CpuShares: set('cpu-shares') ? o['cpu-shares'] : 0,
      NanoCpus: set('cpus') ? o.cpus : 0,
      CpusetCpus: set('cpuset-cpus') ? o['cpuset-cpus'] : '',
      CpusetMems: set('cpuset-mems') ? o['cpuset-mems'] : '',
      Memory: set('memory') ? o.memory : 0,
      MemoryReservation: set('memory-reservation') ? o['memory-reservation'] : 0,
      MemorySwap: set('memory-swap') ? o['memory-swap'] : 0,
      ...(set('pids-limit') ? { PidsLimit: o['pids-limit'] } : {}),
      RestartPolicy: set('restart') ? parseRestart(o.restart) : { Name: '', MaximumRetryCount: 0 },
    };
    const api = await ctx.api();
    return forEachObject(ctx, p.args, async (name) => {
      await api.json('POST', `/containers/${encodeURIComponent(name)}/update`, { body });
    });
  },
};

const exportCmd: CommandDef = {
  spec: spec('export', 'export [OPTIONS] CONTAINER', "Export a container's filesystem as a tar archive", [
    { long: 'output', short: 'o', kind: 'string', usage: 'Write to a file, instead of STDOUT' },
  ], { minArgs: 1, maxArgs: 1, aliases: ['berth container export', 'berth export'] }),
  async run(ctx, p) {
    const out: string = p.opts.output;
    if (!out && process.stdout.isTTY) throw new CliError('cowardly refusing to save to a terminal. Use the -o flag or redirect', 1);
    const api = await ctx.api();
    const r = await api.request('GET', `/containers/${encodeURIComponent(p.args[0]!)}/export`, { allowError: true });
    if (r.status >= 400) throw await ApiClient.errorOf(r);
    await writeTarOutput(r.res, out || undefined, 'failed to export container');
    return 0;
  },
};

const containerInspect: CommandDef = {
  spec: spec('container inspect', 'container inspect [OPTIONS] CONTAINER [CONTAINER...]', 'Display detailed information on one or more containers', [
    { long: 'format', short: 'f', kind: 'string', usage: 'Format output using a custom template' },
    { long: 'size', short: 's', kind: 'bool', usage: 'Display total file sizes' },
  ], { minArgs: 1 }),
  run: (ctx, p) => inspectCmd(ctx, p.args, p.opts.format, Boolean(p.opts.size), 'container'),
};

export const defs: Record<string, CommandDef> = {
  start: startCmd,
  stop: stopCmd,
  restart: restartCmd,
  kill: killCmd,
  rm: rmCmd,
  ps: psCmd,
  logs: logsCmd,
  exec: execCmd,
  attach: attachCmd,
  wait: waitCmd,
  pause: simple('pause', 'pause', 'Pause all processes within one or more containers'),
  unpause: simple('unpause', 'unpause', 'Unpause all processes within one or more containers'),
  top: topCmd,
  rename: renameCmd,
  port: portCmd,
  diff: diffCmd,
  commit: commitCmd,
  cp: cpCmd,
  export: exportCmd,
  update: updateCmd,
  inspect: containerInspect,
};
