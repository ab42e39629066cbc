// Registry commands: pull, push, login, logout, search (credentials as the docker CLI keeps them).
import { CliError } from '../client';
import type { CommandDef } from '../context';
import type { CommandSpec, FlagSpec } from '../flags';
import { renderRows } from '../format';
import { familiarName, familiarString, parseReference, withDefaultTag } from '../../common/reference';
import { eraseCredentials, registryAuthHeader, serverKey, storeCredentials } from '../registryauth';
import { printProgress, pullImage } from './run';

const spec = (path: string, usage: string, description: string, flags: FlagSpec[], extra: Partial<CommandSpec> = {}): CommandSpec => ({ path, usage, description, flags, ...extra });

const pull: CommandDef = {
  spec: spec('pull', 'pull [OPTIONS] NAME[:TAG|@DIGEST]', 'Download an image from a registry', [
    { long: 'all-tags', short: 'a', kind: 'bool', usage: 'Download all tagged images in the repository' },
    { long: 'disable-content-trust', kind: 'bool', def: true, usage: 'Skip image verification' },
    { long: 'platform', kind: 'string', usage: 'Set platform if server is multi-platform capable' },
    { long: 'quiet', short: 'q', kind: 'bool', usage: 'Suppress verbose output' },
  ], { minArgs: 1, maxArgs: 1, aliases: ['berth image pull', 'berth pull'] }),
  async run(ctx, p) {
    const name = p.args[0];
    let ref;
    try { ref = parseReference(name); } catch (e) { throw new CliError((e as Error).message, 1); }
    if (p.opts['all-tags'] && (ref.tag !== undefined || ref.digest !== undefined)) throw new CliError('tag can\'t be used with --all-tags/-a', 1);
    const api = await ctx.api();
    if (!p.opts['all-tags'] && ref.tag === undefined && ref.digest === undefined && !p.opts.quiet) ctx.out('Using default tag: latest\n');
    await pullImage(api, name, p.opts.platform, ctx.out, p.opts.quiet, p.opts['all-tags']);
    ctx.out(`${p.opts['all-tags'] ? familiarName(ref) : p.opts.quiet ? familiarString(withDefaultTag(ref)) : withDefaultTagFull(name)}\n`);
    return 0;
  },
};

/** The docker CLI's last line of a pull: the full reference (`docker.io/library/busybox:latest`). */
function withDefaultTagFull(name: string): string {
  const r = withDefaultTag(parseReference(name));
  return `${r.domain}/${r.path}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

const push: CommandDef = {
  spec: spec('push', 'push [OPTIONS] NAME[:TAG]', 'Upload an image to a registry', [
    { long: 'all-tags', short: 'a', kind: 'bool', usage: 'Push all tags of an image to the repository' },
    { long: 'disable-content-trust', kind: 'bool', def: true, usage: 'Skip image signing' },
    { long: 'quiet', short: 'q', kind: 'bool', usage: 'Suppress verbose output' },
  ], { minArgs: 1, maxArgs: 1, aliases: ['berth image push', 'berth push'] }),
  async run(ctx, p) {
    let ref;
    try { ref = parseReference(p.args[0]); } catch (e) { throw new CliError((e as Error).message, 1); }
    if (p.opts['all-tags'] && ref.tag !== undefined) throw new CliError('tag can\'t be used with --all-tags/-a', 1);
    if (!p.opts['all-tags'] && ref.tag === undefined && ref.digest === undefined) {
      ref = withDefaultTag(ref);
      if (!p.opts.quiet) ctx.out('Using default tag: latest\n');
    }
    const api = await ctx.api();
    const r = await api.request('POST', `/images/${familiarName(ref)}/push`, {
      query: ref.tag ? { tag: ref.tag } : {},
      headers: { 'X-Registry-Auth': registryAuthHeader(ref.domain) },
    });
    await printProgress(r, ctx.out, p.opts.quiet);
    if (p.opts.quiet) ctx.out(`${familiarString(ref)}\n`);
    return 0;
  },
};

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const login: CommandDef = {
  spec: spec('login', 'login [OPTIONS] [SERVER]', 'Log in to a registry', [
    { long: 'password', short: 'p', kind: 'string', usage: 'Password' },
    { long: 'password-stdin', kind: 'bool', usage: 'Take the password from stdin' },
    { long: 'username', short: 'u', kind: 'string', usage: 'Username' },
  ], { maxArgs: 1 }),
  async run(ctx, p) {
    const o = p.opts;
    const server = (p.args[0] ?? 'docker.io').replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    let password: string = o.password;
    if (o.password) ctx.err('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
    if (o['password-stdin']) {
      if (o.password) throw new CliError('--password and --password-stdin are mutually exclusive', 1);
      if (!o.username) throw new CliError('Must provide --username with --password-stdin', 1);
      password = (await readStdin()).replace(/\r?\n$/, '');
    }
    if (!o.username || !password) throw new CliError('Error: Cannot perform an interactive login from a non TTY device', 1);
    const api = await ctx.api();
    const res = await api.json('POST', '/auth', { body: { username: o.username, password, serveraddress: serverKey(server) } });
    const file = storeCredentials(server, o.username, password);
    if (file) ctx.err(`WARNING! Your password will be stored unencrypted in ${file}.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/engine/reference/commandline/login/#credential-stores\n\n`);
    ctx.out(`${res.Status ?? 'Login Succeeded'}\n`);
    return 0;
  },
};

const logout: CommandDef = {
  spec: spec('logout', 'logout [SERVER]', 'Log out from a registry', [], { maxArgs: 1 }),
  async run(ctx, p) {
    const server = (p.args[0] ?? 'docker.io').replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    const key = serverKey(server);
    if (!eraseCredentials(server)) {
      ctx.out(`Not logged in to ${key}\n`);
      return 0;
    }
    ctx.out(`Removing login credentials for ${key}\n`);
    return 0;
  },
};

const search: CommandDef = {
  spec: spec('search', 'search [OPTIONS] TERM', 'Search registries for images', [
    { long: 'filter', short: 'f', kind: 'list', usage: 'Filter output based on conditions provided' },
    { long: 'format', kind: 'string', usage: 'Pretty-print search using a Go template' },
    { long: 'limit', kind: 'int', def: 25, usage: 'Max number of search results' },
    { long: 'no-trunc', kind: 'bool', usage: "Don't truncate output" },
  ], { minArgs: 1, maxArgs: 1 }),
  async run(ctx, p) {
    const term = p.args[0];
    const host = term.includes('/') ? term.slice(0, term.indexOf('/')) : 'docker.io';
    const api = await ctx.api();
    const results: any[] = await api.json('GET', '/images/search', { query: { term, limit: p.opts.limit }, headers: { 'X-Registry-Auth': registryAuthHeader(host) } });
    const trunc = (s: string) => (!p.opts['no-trunc'] && s.length > 45 ? s.slice(0, 44) + '…' : s);
    const rows = results.map((r) => ({
      Name: r.name, Description: trunc(String(r.description ?? '').replace(/\s+/g, ' ')), StarCount: String(r.star_count ?? 0),
      IsOfficial: r.is_official ? '[OK]' : '', IsAutomated: r.is_automated ? '[OK]' : '',
    }));
    const format = p.opts.format || 'table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}';
    ctx.out(renderRows(format, rows, { Name: 'NAME', Description: 'DESCRIPTION', StarCount: 'STARS', IsOfficial: 'OFFICIAL', IsAutomated: 'AUTOMATED' }));
    return 0;
  },
};

export const defs: Record<string, CommandDef> = { pull, push, login, logout, search };
