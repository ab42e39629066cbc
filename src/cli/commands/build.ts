// `berth build` (classic protocol) and `berth builder prune`: the context goes up as a tar
// (.dockerignore applied here, as the docker CLI does), the daemon's JSON stream comes back.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { CliError } from '../client';
import { ContextTar, tarOf } from '../contexttar';
import type { CommandDef } from '../context';
import { keyValueMap, type CommandSpec, type FlagSpec } from '../flags';
import { forEachLine } from '../jsonlines';
import { humanSize } from '../units';
import { IgnoreMatcher, readDockerignore } from '../../build/dockerignore';
import { clientProxyVars } from '../proxyenv';

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}

function readOrEmpty(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

const spec = (p: string, usage: string, description: string, flags: FlagSpec[], extra: Partial<CommandSpec> = {}): CommandSpec => ({ path: p, usage, description, flags, ...extra });

function isArchiveHead(b: Buffer): boolean {
  if (b[0] === 0x1f && b[1] === 0x8b) return true; // gzip
  if (b.subarray(0, 3).toString('latin1') === 'BZh') return true;
  if (b.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return true;
  return b.length >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';
}

/** Everything on stdin: a context tar as is, or a Dockerfile wrapped in one (`berth build - < Dockerfile`). */
async function stdinContext(): Promise<{ body: Buffer; dockerfile?: string }> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const data = Buffer.concat(chunks);
  if (isArchiveHead(data)) return { body: data };
  return { body: tarOf([{ member: { name: 'Dockerfile', type: 'file', mode: 0o644, mtime: new Date() }, body: data }]), dockerfile: 'Dockerfile' };
}

/** `--secret id=x[,src=FILE|,env=VAR]` (BuildKit's syntax) as the X-Berth-Build-Secrets header. */
async function secretsHeader(specs: string[]): Promise<Record<string, string>> {
  if (!specs.length) return {};
  const secrets: Record<string, string> = {};
  for (const s of specs) {
    const kv = new Map(s.split(',').map((p) => { const i = p.indexOf('='); return [i >= 0 ? p.slice(0, i) : p, i >= 0 ? p.slice(i + 1) : ''] as [string, string]; }));
    const id = kv.get('id');
    if (!id) throw new CliError(`invalid secret ${s}: id is required (id=mysecret,src=/local/secret)`, 1);
    if (kv.has('type') && !['file', 'env'].includes(kv.get('type')!)) throw new CliError(`invalid secret ${s}: unsupported type ${kv.get('type')}`, 1);
    const env = kv.get('env') ?? (kv.get('type') === 'env' || (!kv.has('src') && !kv.has('source')) ? id : undefined);
    const src = kv.get('src') ?? kv.get('source');
    let data: Buffer;
    if (src) {
      data = await fsp.readFile(src).catch((e: Error) => { throw new CliError(`failed to read secret ${id} from ${src}: ${e.message}`, 1); });
    } else if (env !== undefined && process.env[env] !== undefined) {
      data = Buffer.from(process.env[env]!);
    } else {
      throw new CliError(`invalid secret ${s}: give src=FILE or env=VAR`, 1);
    }
    secrets[id] = data.toString('base64');
  }
  const header = Buffer.from(JSON.stringify(secrets)).toString('base64');
  // Headers are bounded (16 KiB in Node's HTTP server): secrets are small by nature.
  if (header.length > 12 * 1024) throw new CliError('secrets too large: together they must stay under about 6 KiB', 1);
  return { 'X-Berth-Build-Secrets': header };
}

const build: CommandDef = {
  spec: spec('build', 'build [OPTIONS] PATH | -', 'Build an image from a Dockerfile', [
    { long: 'add-host', kind: 'list', usage: 'Add a custom host-to-IP mapping (host:ip)' },
    { long: 'build-arg', kind: 'list', usage: 'Set build-time variables' },
    { long: 'cache-from', kind: 'list', usage: 'Images to consider as cache sources' },
    { long: 'file', short: 'f', kind: 'string', usage: "Name of the Dockerfile (Default is 'PATH/Dockerfile')" },
    { long: 'force-rm', kind: 'bool', usage: 'Always remove intermediate containers' },
    { long: 'iidfile', kind: 'string', usage: 'Write the image ID to the file' },
    { long: 'label', kind: 'list', usage: 'Set metadata for an image' },
    { long: 'network', kind: 'string', def: 'default', usage: 'Set the networking mode for the RUN instructions during build' },
    { long: 'no-cache', kind: 'bool', usage: 'Do not use cache when building the image' },
    { long: 'platform', kind: 'string', usage: 'Set platform if server is multi-platform capable' },
    { long: 'pull', kind: 'bool', usage: 'Always attempt to pull a newer version of the image' },
    { long: 'quiet', short: 'q', kind: 'bool', usage: 'Suppress the build output and print image ID on success' },
    { long: 'secret', kind: 'list', usage: 'Secret to expose to the build (id=mysecret[,src=/local/secret] or id=x,env=VAR)' },
    { long: 'rm', kind: 'bool', def: true, usage: 'Remove intermediate containers after a successful build' },
    { long: 'squash', kind: 'bool', usage: 'Squash newly built layers into a single new layer' },
    { long: 'tag', short: 't', kind: 'list', usage: "Name and optionally a tag in the 'name:tag' format" },
    { long: 'target', kind: 'string', usage: 'Set the target build stage to build.' },
  ], { minArgs: 1, maxArgs: 1, aliases: ['berth image build', 'berth build', 'berth builder build'] }),
  async run(ctx, p) {
    const o = p.opts;
    const contextArg = p.args[0];
    let body: Readable;
    /** Bytes of context sent (printed once the daemon answers, when it has read all of it). */
    let sent = () => 0;
    let dockerfile: string | undefined = o.file || undefined;
    let remote: string | undefined;
    if (/^(https?:\/\/|git:\/\/|git@|github\.com\/)/i.test(contextArg)) {
      // The daemon fetches a remote context (the API's `remote`), as with `docker build URL` on the classic builder's API.
      remote = contextArg;
      body = Readable.from([]);
    } else if (contextArg === '-') {
      const s = await stdinContext();
      body = Readable.from([s.body]);
      sent = () => s.body.length;
      dockerfile = s.dockerfile ?? dockerfile;
    } else {
      const dir = path.resolve(contextArg);
      // Direct calls: the CLI has nothing else to do meanwhile, and a thread-pool round trip costs more.
      const st = statOrUndefined(dir);
      if (!st?.isDirectory()) throw new CliError(`unable to prepare context: path "${contextArg}" not found`, 1);
      const ignore = new IgnoreMatcher(readDockerignore(readOrEmpty(path.join(dir, '.dockerignore'))));
      let extra: { name: string; data: Buffer } | undefined;
      let dfRel = 'Dockerfile';
      if (o.file) {
        const abs = path.resolve(o.file === '-' ? '-' : o.file);
        const rel = path.relative(dir, abs);
        if (o.file === '-') {
          const chunks: Buffer[] = [];
          for await (const c of process.stdin) chunks.push(c as Buffer);
          extra = { name: `.dockerfile.${Math.random().toString(16).slice(2, 14)}`, data: Buffer.concat(chunks) };
          dfRel = extra.name;
        } else if (rel.startsWith('..') || path.isAbsolute(rel)) {
          // A Dockerfile outside the context travels inside it under a private name (as the docker CLI does).
          extra = { name: `.dockerfile.${Math.random().toString(16).slice(2, 14)}`, data: await fsp.readFile(abs).catch(() => { throw new CliError(`unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat ${abs}: no such file or directory`, 1); }) };
          dfRel = extra.name;
        } else {
          dfRel = rel.split(path.sep).join('/');
        }
      }
      dockerfile = dfRel;
      const tarStream = new ContextTar(dir, ignore, new Set([dfRel, '.dockerignore']), extra);
      body = tarStream;
      sent = () => tarStream.bytes;
    }

    const buildArgs: Record<string, string | null> = {};
    for (const a of (o['build-arg'] ?? []) as string[]) {
      const i = a.indexOf('=');
      if (i >= 0) buildArgs[a.slice(0, i)] = a.slice(i + 1);
      else buildArgs[a] = process.env[a] ?? null; // `--build-arg NAME` takes the value from the environment
    }
    const api = await ctx.api();
    // The client config's proxies become build args the user did not set (as the docker CLI).
    for (const [k, v] of Object.entries(clientProxyVars(api.host))) if (!(k in buildArgs)) buildArgs[k] = v;
    const quiet = Boolean(o.quiet);
    const r = await api.request('POST', '/build', {
      query: {
        t: o.tag?.length ? o.tag : undefined,
        dockerfile,
        buildargs: Object.keys(buildArgs).length ? JSON.stringify(buildArgs) : undefined,
        target: o.target || undefined,
        nocache: o['no-cache'] ? 1 : undefined,
        q: quiet ? 1 : undefined,
        labels: o.label?.length ? JSON.stringify(keyValueMap(o.label)) : undefined,
        squash: o.squash ? 1 : undefined,
        pull: o.pull ? 1 : undefined,
        rm: o.rm === false ? 0 : 1,
        forcerm: o['force-rm'] ? 1 : undefined,
        networkmode: o.network,
        platform: o.platform || undefined,
        extrahosts: o['add-host']?.length ? o['add-host'] : undefined,
        cachefrom: o['cache-from']?.length ? JSON.stringify(o['cache-from']) : undefined,
        remote,
      },
      body,
      contentType: 'application/x-tar',
      headers: { 'X-Registry-Config': Buffer.from('{}').toString('base64'), ...(await secretsHeader((o.secret ?? []) as string[])) },
    });
    if (!quiet && !remote) ctx.out(`Sending build context to Berth daemon  ${humanSize(sent(), 4)}\n`);
    let imageId = '';
    let failure: { message: string; code: number } | undefined;
    let stepStart = 0;
    await forEachLine(r.res, (line) => {
      if (!line.trim()) return;
      const m = JSON.parse(line);
      if (m.errorDetail || m.error) { failure = { message: m.errorDetail?.message ?? m.error, code: m.errorDetail?.code || 1 }; return; }
      if (m.aux?.ID) { imageId = m.aux.ID; return; }
      if (typeof m.stream !== 'string' || quiet) return;
      let text: string = m.stream;
      if (text.startsWith('Step ')) stepStart = Date.now();
      // berth adds the elapsed time of each step to the line that ends it (` ---> <id>`).
      if (stepStart && /^ ---> [0-9a-f]{0,12}\n$/.test(text)) {
        text = `${text.slice(0, -1)} (${((Date.now() - stepStart) / 1000).toFixed(2)}s)\n`;
        stepStart = 0;
      }
      ctx.out(text);
    });
    if (failure) {
      ctx.err(`${failure.message}\n`);
      return failure.code;
    }
    if (quiet) ctx.out(`${imageId}\n`);
    if (o.iidfile) await fsp.writeFile(o.iidfile, imageId);
    return 0;
  },
};

const imageWhy: CommandDef = {
  spec: spec('image why', 'image why IMAGE', 'Show space that later layers of an image delete or overwrite, largest first', [
    { long: 'no-trunc', kind: 'bool', usage: "Don't truncate output" },
  ], { minArgs: 1, maxArgs: 1 }),
  async run(ctx, p) {
    const api = await ctx.api();
    const r = await api.json('GET', `/berth/images/${encodeURIComponent(p.args[0])}/why`);
    const files: Array<{ path: string; size: number; addedBy: string; removedBy: string; how: string }> = r.files ?? [];
    if (files.length === 0) {
      ctx.out(`No layer of ${p.args[0]} deletes or overwrites what an earlier one added.\n`);
      return 0;
    }
    const cut = (s: string) => (p.opts['no-trunc'] || s.length <= 45 ? s : `${s.slice(0, 44)}…`);
    const rows = files.map((f) => [humanSize(f.size), f.how, f.path, cut(f.addedBy), cut(f.removedBy)]);
    const head = ['SIZE', 'HOW', 'PATH', 'ADDED BY', 'REMOVED BY'];
    const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
    for (const row of [head, ...rows]) ctx.out(row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] + 3))).join('') + '\n');
    ctx.out(`\nTotal: ${humanSize(Number(r.total))} added by one layer and removed by a later one (one RUN, or --squash, would not keep it)\n`);
    return 0;
  },
};

export const defs: Record<string, CommandDef> = { build, 'image why': imageWhy };
