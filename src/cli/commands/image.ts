// Image commands: images, inspect, history, tag, rmi, import, save, load (image prune is in prune.ts).
import * as fs from 'node:fs';
import { ApiError, CliError, filtersParam } from '../client';
import type { CommandDef } from '../context';
import type { CommandSpec, FlagSpec } from '../flags';
import { renderRows } from '../format';
import { goTimeString, humanDuration, humanSize, truncateId } from '../units';
import { writeTarOutput } from '../streams';
import { printProgress } from './run';
import { inspectCmd } from './system';
import { familiarName, parseReference } from '../../common/reference';

const spec = (path: string, usage: string, description: string, flags: FlagSpec[], extra: Partial<CommandSpec> = {}): CommandSpec => ({ path, usage, description, flags, ...extra });

export function imageRows(img: Record<string, any>, trunc: boolean, digest: boolean, now: number): Array<Record<string, unknown>> {
  const created = Number(img.Created ?? 0);
  const base = {
    ID: trunc ? truncateId(String(img.Id)) : String(img.Id),
    CreatedSince: created ? `${humanDuration(now - created * 1000)} ago` : 'N/A',
    CreatedAt: goTimeString(new Date(created * 1000)),
    Size: humanSize(Number(img.Size ?? 0)),
    Containers: img.Containers === -1 || img.Containers === undefined ? 'N/A' : String(img.Containers),
    // docker prints these three with go-units' default precision (4), unlike Size (3)
    VirtualSize: humanSize(Number(img.VirtualSize ?? img.Size ?? 0), 4),
    SharedSize: img.SharedSize === -1 || img.SharedSize === undefined ? 'N/A' : humanSize(Number(img.SharedSize), 4),
    UniqueSize: img.SharedSize === -1 || img.SharedSize === undefined ? 'N/A' : humanSize(Number(img.Size) - Number(img.SharedSize), 4),
  };
  const row = (Repository: string, Tag: string, Digest: string): Record<string, unknown> => ({ ...base, Repository, Tag, Digest });
  const tags: string[] = img.RepoTags ?? [];
  const digests: string[] = img.RepoDigests ?? [];
  const dangling = (tags.length === 0 && digests.length === 0) || (tags.length === 1 && tags[0] === '<none>:<none>' && digests.length === 1 && digests[0] === '<none>@<none>');
  if (dangling) return [row('<none>', '<none>', '<none>')];
  const repoTags = new Map<string, string[]>();
  const repoDigests = new Map<string, string[]>();
  for (const t of tags) {
    try {
      const ref = parseReference(t);
      if (ref.tag !== undefined) {
        const n = familiarName(ref);
        repoTags.set(n, [...(repoTags.get(n) ?? []), ref.tag]);
      }
    } catch {
      /* unparsable references are skipped, as docker does */
    }
  }
  for (const d of digests) {
    try {
      const ref = parseReference(d);
      if (ref.digest !== undefined) {
        const n = familiarName(ref);
        repoDigests.set(n, [...(repoDigests.get(n) ?? []), ref.digest]);
      }
    } catch {
      /* skipped */
    }
  }
  const out: Array<Record<string, unknown>> = [];
  for (const [repo, ts] of repoTags) {
    let ds = repoDigests.get(repo) ?? [];
    repoDigests.delete(repo);
    if (!digest) ds = [];
    for (const t of ts) {
      if (ds.length === 0) out.push(row(repo, t, '<none>'));
      else for (const d of ds) out.push(row(repo, t, d));
    }
  }
  for (const [repo, ds] of repoDigests) {
    if (digest) for (const d of ds) out.push(row(repo, '<none>', d));
    else out.push(row(repo, '<none>', ''));
  }
  return out;
}

export const imageHeaders: Record<string, string> = {
  ID: 'IMAGE ID',
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  Digest: 'DIGEST',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  Size: 'SIZE',
  Containers: 'CONTAINERS',
  VirtualSize: 'VIRTUAL SIZE',
  SharedSize: 'SHARED SIZE',
  UniqueSize: 'UNIQUE SIZE',
};

const images: CommandDef = {
  spec: spec('images', 'images [OPTIONS] [REPOSITORY[:TAG]]', 'List images', [
    { long: 'all', short: 'a', kind: 'bool', usage: 'Show all images (default hides intermediate images)' },
    { long: 'digests', kind: 'bool', usage: 'Show digests' },
    { long: 'filter', short: 'f', kind: 'list', valueName: 'filter', usage: 'Filter output based on conditions provided' },
    { long: 'format', kind: 'string', usage: 'Format output using a custom template' },
    { long: 'no-trunc', kind: 'bool', usage: "Don't truncate output" },
    { long: 'quiet', short: 'q', kind: 'bool', usage: 'Only show image IDs' },
  ], { maxArgs: 1, aliases: ['berth image ls', 'berth image list', 'berth images'] }),
  async run(ctx, p) {
    const o = p.opts;
    const filters = [...(o.filter as string[])];
    if (p.args[0]) filters.push(`reference=${p.args[0]}`);
    let format: string = o.format;
    if (o.quiet && !format) format = '{{.ID}}';
    if (!format || format === 'table') format = o.digests ? 'table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}' : 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
    const api = await ctx.api();
    const list = (await api.get('/images/json', { all: o.all ? 1 : undefined, filters: filtersParam(filters) })) as Array<Record<string, any>>;
    const now = Date.now();
    const wantDigest = o.digests || /\.Digest\b/.test(format);
    const rows = list.flatMap((img) => imageRows(img, !o['no-trunc'], wantDigest, now));
    ctx.out(renderRows(format, rows, imageHeaders));
    return 0;
  },
};

const imageInspect: CommandDef = {
  spec: spec('image inspect', 'image inspect [OPTIONS] IMAGE [IMAGE...]', 'Display detailed information on one or more images', [
    { long: 'format', short: 'f', kind: 'string', usage: 'Format output using a custom template' },
  ], { minArgs: 1 }),
  run: (ctx, p) => inspectCmd(ctx, p.args, p.opts.format, false, 'image'),
};

const history: CommandDef = {
  spec: spec('history', 'history [OPTIONS] IMAGE', 'Show the history of an image', [
    { long: 'format', kind: 'string', usage: 'Format output using a custom template' },
    { long: 'human', short: 'H', kind: 'bool', def: true, usage: 'Print sizes and dates in human readable format' },
    { long: 'no-trunc', kind: 'bool', usage: "Don't truncate output" },
    { long: 'quiet', short: 'q', kind: 'bool', usage: 'Only show image IDs' },
  ], { minArgs: 1, maxArgs: 1, aliases: ['berth image history', 'berth history'] }),
  async run(ctx, p) {
    const o = p.opts;
    const api = await ctx.api();
    const h = (await api.get(`/images/${p.args[0]}/history`)) as Array<Record<string, any>>;
    const trunc = !o['no-trunc'];
    const now = Date.now();
    const rows = h.map((e) => {
      const created = new Date(Number(e.Created) * 1000);
      const createdBy = String(e.CreatedBy ?? '').replace(/\t/g, ' ');
      const iso = created.toISOString().replace(/\.\d{3}Z$/, 'Z');
      return {
        ID: trunc ? (e.Id === '<missing>' ? e.Id : truncateId(String(e.Id))) : String(e.Id),
        CreatedSince: o.human ? `${humanDuration(now - created.getTime())} ago` : iso,
        CreatedAt: iso,
        CreatedBy: trunc ? ellipsis45(createdBy) : createdBy,
        Size: o.human ? humanSize(Number(e.Size ?? 0)) : String(e.Size ?? 0),
        Comment: String(e.Comment ?? ''),
      };
    });
    let format: string = o.format;
    if (o.quiet && !format) format = '{{.ID}}';
    if (!format || format === 'table') format = 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}';
    ctx.out(renderRows(format, rows, { ID: 'IMAGE', CreatedSince: o.human ? 'CREATED' : 'CREATED AT', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' }));
    return 0;
  },
};

function ellipsis45(s: string): string {
  const chars = Array.from(s);
  return chars.length <= 45 ? s : chars.slice(0, 44).join('') + '…';
}

const tag: CommandDef = {
  spec: spec('tag', 'tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]', 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE', [], { minArgs: 2, maxArgs: 2, aliases: ['berth image tag', 'berth tag'] }),
  async run(ctx, p) {
    let ref;
    try {
      ref = parseReference(p.args[1]);
    } catch (e) {
      throw new CliError(`Error parsing reference: "${p.args[1]}" is not a valid repository/tag: ${(e as Error).message}`, 1);
    }
    if (ref.digest) throw new CliError('refusing to create a tag with a digest reference', 1);
    const api = await ctx.api();
    const repo = familiarName(ref);
    const r = await api.request('POST', `/images/${p.args[0]}/tag`, { query: { repo, tag: ref.tag ?? 'latest' } });
    r.res.resume();
    return 0;
  },
};

const rmi: CommandDef = {
  spec: spec('rmi', 'rmi [OPTIONS] IMAGE [IMAGE...]', 'Remove one or more images', [
    { long: 'force', short: 'f', kind: 'bool', usage: 'Force removal of the image' },
    { long: 'no-prune', kind: 'bool', usage: 'Do not delete untagged parents' },
  ], { minArgs: 1, aliases: ['berth image rm', 'berth image remove', 'berth rmi'] }),
  async run(ctx, p) {
    const api = await ctx.api();
    let failed = false;
    for (const name of p.args) {
      try {
        const res = (await api.json('DELETE', `/images/${name}`, { query: { force: p.opts.force ? 1 : undefined, noprune: p.opts['no-prune'] ? 1 : undefined } })) as Array<Record<string, string>>;
        for (const d of res ?? []) {
          if (d.Untagged) ctx.out(`Untagged: ${d.Untagged}\n`);
          if (d.Deleted) ctx.out(`Deleted: ${d.Deleted}\n`);
        }
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
        ctx.err(`Error response from daemon: ${e.message}\n`);
        failed = true;
      }
    }
    return failed ? 1 : 0;
  },
};

const importCmd: CommandDef = {
  spec: spec('import', 'import [OPTIONS] file|URL|- [REPOSITORY[:TAG]]', 'Import the contents from a tarball to create a filesystem image', [
    { long: 'change', short: 'c', kind: 'list', usage: 'Apply Dockerfile instruction to the created image' },
    { long: 'message', short: 'm', kind: 'string', usage: 'Set commit message for imported image' },
    { long: 'platform', kind: 'string', usage: 'Set platform if server is multi-platform capable' },
  ], { minArgs: 1, maxArgs: 2, aliases: ['berth image import', 'berth import'] }),
  async run(ctx, p) {
    const o = p.opts;
    const src = p.args[0];
    let repo: string | undefined;
    let tagName: string | undefined;
    if (p.args[1]) {
      let ref;
      try {
        ref = parseReference(p.args[1]);
      } catch (e) {
        throw new CliError(`Error parsing reference: "${p.args[1]}" is not a valid repository/tag: ${(e as Error).message}`, 1);
      }
      repo = familiarName(ref);
      tagName = ref.tag;
    }
    let body: NodeJS.ReadableStream;
    if (src === '-') body = process.stdin;
    else if (/^https?:\/\//.test(src)) throw new CliError('importing from a URL is not supported by berth', 1);
    else {
      if (!fs.existsSync(src)) throw new CliError(`open ${src}: no such file or directory`, 1);
      body = fs.createReadStream(src);
    }
    const api = await ctx.api();
    const query: Record<string, string | string[] | undefined> = { fromSrc: '-', repo, tag: tagName, message: o.message || undefined, platform: o.platform || undefined };
    if ((o.change as string[]).length) query.changes = o.change;
    const r = await api.request('POST', '/images/create', { query, body, contentType: 'application/x-tar' });
    const msgs = await printProgress(r, () => undefined, true);
    for (const m of msgs) if (typeof m.status === 'string') ctx.out(`${m.status}\n`);
    return 0;
  },
};

const save: CommandDef = {
  spec: spec('save', 'save [OPTIONS] IMAGE [IMAGE...]', 'Save one or more images to a tar archive (streamed to STDOUT by default)', [
    { long: 'output', short: 'o', kind: 'string', usage: 'Write to a file, instead of STDOUT' },
    { long: 'platform', kind: 'list', usage: 'Save only the given platform(s)' },
  ], { minArgs: 1, aliases: ['berth image save', 'berth save'] }),
  async run(ctx, p) {
    const out: string = p.opts.output;
    if (!out && process.stdout.isTTY) throw new CliError('Cowardly refusing to save to a terminal. Use the -o flag or redirect', 1);
    const api = await ctx.api();
    const r = await api.request('GET', '/images/get', { query: { names: p.args } });
    await writeTarOutput(r.res, out || undefined, 'failed to save image');
    return 0;
  },
};

const load: CommandDef = {
  spec: spec('load', 'load [OPTIONS]', 'Load an image from a tar archive or STDIN', [
    { long: 'input', short: 'i', kind: 'string', usage: 'Read from tar archive file, instead of STDIN' },
    { long: 'quiet', short: 'q', kind: 'bool', usage: 'Suppress the load output' },
  ], { maxArgs: 0, aliases: ['berth image load', 'berth load'] }),
  async run(ctx, p) {
    const input: string = p.opts.input;
    let body: NodeJS.ReadableStream;
    if (input) {
      if (!fs.existsSync(input)) throw new CliError(`open ${input}: no such file or directory`, 1);
      body = fs.createReadStream(input);
    } else {
      if (process.stdin.isTTY) throw new CliError('requested load from stdin, but stdin is empty', 1);
      body = process.stdin;
    }
    const api = await ctx.api();
    const quiet = p.opts.quiet || !process.stdout.isTTY;
    const r = await api.request('POST', '/images/load', { query: { quiet: quiet ? 1 : undefined }, body, contentType: 'application/x-tar' });
    await printProgress(r, ctx.out, Boolean(p.opts.quiet));
    return 0;
  },
};

export const defs: Record<string, CommandDef> = {
  images,
  inspect: imageInspect,
  history,
  tag,
  rmi,
  import: importCmd,
  save,
  load,
};
