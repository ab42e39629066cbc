/**
 * The Dockerfile builder (classic protocol): parses the Dockerfile, picks the
 * stages the target needs, and dispatches each instruction, one image per
 * step as Docker's classic builder does, with its output
 * (`Step i/N : ...`, ` ---> <id>`, ` ---> Using cache`). It reaches the engine
 * only through the BuildBackend (engine/types.ts).
 *
 * Over 500 lines: the per-instruction dispatch shares one step state (the image config
 * being built, the cache key chain, build args in scope, the step counter and output),
 * so the instructions stay together; the parser and expansion (dockerfile/), the context,
 * .dockerignore, COPY, remote contexts and the engine side (backend.ts) have files of their own.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { BerthError, invalidArgument, isKind } from '../common/errors';
import { familiarString, normalizeName } from '../common/reference';
import type {
  BuildBackend, BuildRequest, BuildService, BuildStepLayer, ImageRunConfig, OciImageConfig, ProgressMessage, ProgressSink, RunStepOptions,
} from '../engine/types';
import type { Proxies } from '../engine/config';
import { BuildContext } from './context';
import { cloneGitContext, fetchHttpContext, isGitUrl, isHttpUrl } from './remote';
import { copySources, resolveContextSources, type CopySpec } from './copy';
import { resolveInRoot } from '../common/scopedpath';
import { flagsOf, lineError, parseDockerfile, parseLine, stepError, type Dockerfile, type Stage } from './dockerfile/instructions';
import type { Node } from './dockerfile/parser';
import { applyConfigNode, commandOf, expandOrThrow, type ConfigState } from './dockerfile/runconfig';
import { envLookup, expandWord, type EnvLookup } from './dockerfile/shell';

/** Args Docker passes to RUN without an ARG line (and keeps out of history and the cache key). */
const PROXY_ARGS = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);

const goArch = (a: string) => ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[a] ?? a;
const HOST_PLATFORM = `linux/${goArch(process.arch)}`;
const HOST_PLATFORMS = new Set(['linux', HOST_PLATFORM, `${HOST_PLATFORM}/v8`]);
/** BuildKit's automatic platform args, usable in FROM (`FROM --platform=$BUILDPLATFORM ...`). */
const PLATFORM_ARGS: Record<string, string> = {
  BUILDPLATFORM: HOST_PLATFORM, TARGETPLATFORM: HOST_PLATFORM, BUILDOS: 'linux', TARGETOS: 'linux',
  BUILDARCH: goArch(process.arch), TARGETARCH: goArch(process.arch),
};
const short = (id: string) => id.replace(/^sha256:/, '').slice(0, 12);

/** What a RUN step's --mount flags give it. */
type StepMounts = Pick<RunStepOptions, 'binds' | 'tmpfs' | 'secrets'>;

/** `64m`, `1g`, `1024` (bytes), as BuildKit reads a tmpfs size; undefined when unreadable. */
function parseByteSize(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?$/i.exec(s.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(Number(m[1]) * mult);
}

/** State of the stage being built. */
interface StageState {
  stage: Stage;
  imageId: string;
  /** The image config without rootfs (architecture, os, history, config). */
  image: Omit<OciImageConfig, 'rootfs'>;
  config: ImageRunConfig;
  /** ARGs declared in this stage: name -> value (undefined: declared without a value). */
  args: Map<string, string | undefined>;
  cfgState: ConfigState;
  /** A cache miss happened in this stage: later steps are not probed. */
  missed: boolean;
  /** Image the stage started from (squash keeps its layers). */
  baseId: string;
  baseLayers: number;
}

interface Run {
  req: BuildRequest;
  ctx: BuildContext;
  df: Dockerfile;
  out: ProgressSink;
  backend: BuildBackend;
  metaArgs: Map<string, string | undefined>;
  usedArgs: Set<string>;
  /** Result image of each built stage, by index. */
  results: Map<number, string>;
  step: number;
  total: number;
  epoch?: Date;
  visible?: Promise<Set<string>>;
  /** With cachefrom: the images a cache hit may be (the given images and their parents). */
  cacheSources?: Promise<Set<string>>;
  /** Aborted when the client went: no further step starts, a running step is killed. */
  signal?: AbortSignal;
}

/** Docker's words when the client of a build goes away: the build stops, nothing is tagged. */
function throwIfAbandoned(run: Run): void {
  if (run.signal?.aborted) throw new BerthError('invalid-argument', 'context canceled: the client went away');
}

/** Messages of concurrently built stages, passed on in stage order: the head stage live, later ones once it is done. */
class OrderedOutput {
  private head = 0;
  private readonly buffers: ProgressMessage[][];
  private readonly finished: boolean[];
  constructor(private readonly out: ProgressSink, private readonly n: number) {
    this.buffers = Array.from({ length: n }, () => []);
    this.finished = new Array<boolean>(n).fill(false);
  }
  sink(k: number): ProgressSink {
    return (m) => { if (k === this.head) this.out(m); else this.buffers[k].push(m); };
  }
  finish(k: number): void {
    this.finished[k] = true;
    while (this.head < this.n && this.finished[this.head]) {
      this.head++;
      if (this.head < this.n) for (const m of this.buffers[this.head].splice(0)) this.out(m);
    }
  }
}

export class Builder implements BuildService {
  constructor(
    private readonly backend: BuildBackend, private readonly tmpRoot: string,
    /** The daemon's proxies: remote contexts are fetched through them. */
    private readonly proxies: Proxies = { httpProxy: '', httpsProxy: '', noProxy: '' },
  ) {}

  async build(req: BuildRequest, body: Readable, out: ProgressSink, signal?: AbortSignal): Promise<{ imageId: string }> {
    const tags = req.tags.map((t) => normalizeName(t)); // refused before any work when invalid
    if (req.platform && !HOST_PLATFORMS.has(req.platform)) {
      throw invalidArgument(`"${req.platform}": unsupported platform: Berth builds for the host platform (${HOST_PLATFORM}) only`);
    }
    await fsp.mkdir(this.tmpRoot, { recursive: true, mode: 0o700 });
    const ctx = await this.context(req, body);
    try {
      const df = parseDockerfile(await ctx.dockerfile(req.dockerfile));
      const epochArg = req.buildArgs.SOURCE_DATE_EPOCH ?? undefined;
      const run: Run = {
        req, ctx, df, out, backend: this.backend, metaArgs: new Map(), usedArgs: new Set(), results: new Map(), step: 0, total: 0, signal,
        epoch: epochArg !== undefined && epochArg !== null && /^\d+$/.test(epochArg) ? new Date(Number(epochArg) * 1000) : undefined,
      };
      if (epochArg !== undefined) run.usedArgs.add('SOURCE_DATE_EPOCH');
      this.declareMetaArgs(run);
      const target = this.targetStage(run);
      const needed = this.neededStages(run, target);
      run.total = df.metaArgs.length + df.stages.filter((s) => needed.has(s.index)).reduce((n, s) => n + 1 + s.commands.length, 0);
      for (const n of df.metaArgs) this.stepHeader(run, n.original);
      // Independent stages build concurrently; their output is replayed in stage order.
      const order = df.stages.filter((s) => needed.has(s.index));
      const ordered = new OrderedOutput(out, order.length);
      const done = new Map<number, Promise<string>>();
      let base = run.step;
      order.forEach((stage, k) => {
        const stageRun: Run = { ...run, out: ordered.sink(k), step: base };
        base += 1 + stage.commands.length;
        done.set(stage.index, (async () => {
          try {
            await Promise.all(this.dependencies(run, stage).map((dep) => done.get(dep.index)));
            return await this.buildStage(stageRun, stage, stage.index === target.index);
          } finally {
            ordered.finish(k);
          }
        })());
      });
      const settled = await Promise.allSettled([...done.values()]);
      const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
      const finalId = await done.get(target.index)!;
      throwIfAbandoned(run);
      const unused = Object.keys(req.buildArgs).filter((k) => !run.usedArgs.has(k) && !PROXY_ARGS.has(k)).sort();
      if (unused.length) out({ stream: `[Warning] One or more build-args [${unused.join(' ')}] were not consumed\n` });
      out({ aux: { ID: finalId } });
      if (req.quiet) out({ stream: `${finalId}\n` });
      else out({ stream: `Successfully built ${short(finalId)}\n` });
      for (const t of tags) {
        await this.backend.tag(finalId, t);
        if (!req.quiet) out({ stream: `Successfully tagged ${familiarString(t)}\n` });
      }
      return { imageId: finalId };
    } finally {
      await ctx.remove();
    }
  }

  /** The request's context: the body's tar, or what `remote` names (a git repository, a tar or Dockerfile URL). */
  private async context(req: BuildRequest, body: Readable): Promise<BuildContext> {
    const dir = path.join(this.tmpRoot, randomBytes(8).toString('hex'));
    if (!req.remote) {
      return BuildContext.unpack(body, dir, () => undefined).catch(async (err) => {
        await fsp.rm(dir, { recursive: true, force: true }); // a body that is not a tar leaves nothing
        throw err;
      });
    }
    body.resume(); // Docker ignores the body when remote is given
    try {
      if (isGitUrl(req.remote)) {
        const root = await cloneGitContext(req.remote, dir, this.proxies);
        if (root === dir) return BuildContext.adopt(dir);
        // The subdirectory is the context: it takes the clone's place.
        const sub = `${dir}.sub`;
        await fsp.rename(root, sub);
        await fsp.rm(dir, { recursive: true, force: true });
        await fsp.rename(sub, dir);
        return BuildContext.adopt(dir);
      }
      if (!isHttpUrl(req.remote)) throw invalidArgument(`unable to prepare context: remote ${req.remote} is neither a git repository nor an http(s) URL`);
      const got = await fetchHttpContext(req.remote, this.proxies);
      if ('tar' in got) return await BuildContext.unpack(got.tar, dir, () => undefined);
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
      const name = req.dockerfile.replace(/^\.?\/+/, '') || 'Dockerfile';
      if (name.split('/').includes('..')) throw invalidArgument(`Cannot locate specified Dockerfile: ${req.dockerfile}`);
      await fsp.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
      await fsp.writeFile(path.join(dir, name), got.dockerfile);
      return BuildContext.adopt(dir);
    } catch (err) {
      await fsp.rm(dir, { recursive: true, force: true });
      await fsp.rm(`${dir}.sub`, { recursive: true, force: true });
      throw err;
    }
  }

  async recover(): Promise<void> {
    await fsp.rm(this.tmpRoot, { recursive: true, force: true }); // contexts of builds a crash cut short
    await this.backend.recover();
  }

  async prune(_opts: { all: boolean; filters: Record<string, string[]> }): Promise<{ CachesDeleted: string[]; SpaceReclaimed: number }> {
    const r = await this.backend.clearCache();
    return { CachesDeleted: r.removed, SpaceReclaimed: r.reclaimed };
  }

  async diskUsage(): Promise<Array<Record<string, unknown>>> {
    return (await this.backend.cacheEntries()).map((e) => ({
      ID: e.key.slice(0, 25), Parent: '', Type: 'regular', Description: e.description, InUse: false, Shared: false,
      Size: e.size, CreatedAt: e.created, LastUsedAt: e.lastUsed, UsageCount: 1,
    }));
  }

  // ---- stages ---------------------------------------------------------------

  private declareMetaArgs(run: Run): void {
    const env = envLookup(new Map([...run.metaArgs].filter((e): e is [string, string] => e[1] !== undefined)));
    for (const n of run.df.metaArgs) {
      for (const w of n.next) {
        const [name, value] = this.argValue(run, w, env, n.startLine);
        run.metaArgs.set(name, value);
      }
    }
  }

  /** `NAME[=default]` of an ARG: the build arg wins over the default. */
  private argValue(run: Run, word: string, env: EnvLookup, line: number): [string, string | undefined] {
    const eq = word.indexOf('=');
    const name = eq >= 0 ? word.slice(0, eq) : word;
    if (!name) throw lineError('ARG names can not be blank', line);
    let value = eq >= 0 ? (expandOrThrow(() => expandWord(word.slice(eq + 1), env, run.df.escape), line) as string) : undefined;
    if (Object.prototype.hasOwnProperty.call(run.req.buildArgs, name)) {
      run.usedArgs.add(name);
      const given = run.req.buildArgs[name];
      if (given !== null && given !== undefined) value = given;
    }
    return [name, value];
  }

  private targetStage(run: Run): Stage {
    const stages = run.df.stages;
    if (!run.req.target) return stages[stages.length - 1];
    const t = stages.find((s) => s.name === run.req.target.toLowerCase());
    if (!t) throw invalidArgument(`failed to reach build target ${run.req.target} in Dockerfile`);
    return t;
  }

  /** Stage referred to by FROM, COPY --from or RUN --mount from= (a name or an index), if any. */
  private stageRef(run: Run, ref: string, before: number): Stage | undefined {
    const byName = run.df.stages.find((s) => s.name !== '' && s.name === ref.toLowerCase() && s.index < before);
    if (byName) return byName;
    if (/^\d+$/.test(ref)) {
      const i = Number(ref);
      if (i >= before) throw invalidArgument(`invalid stage index ${ref}: only earlier stages can be referred to`);
      return run.df.stages[i];
    }
    return undefined;
  }

  private dependencies(run: Run, s: Stage): Stage[] {
    const deps: Stage[] = [];
    const base = this.expandMeta(run, s.base, s.line);
    const b = this.stageRef(run, base, s.index);
    if (b && !/^\d+$/.test(base)) deps.push(b);
    for (const n of s.commands) {
      const fl = n.value === 'copy' || n.value === 'run' ? flagsOf(n) : new Map();
      const from = fl.get('from');
      if (typeof from === 'string') {
        const d = this.stageRef(run, from, s.index);
        if (d) deps.push(d);
      }
      const mount = fl.get('mount');
      if (typeof mount === 'string') {
        for (const m of mount.split('\n')) {
          const f = /(?:^|,)from=([^,]+)/.exec(m);
          const d = f ? this.stageRef(run, f[1], s.index) : undefined;
          if (d) deps.push(d);
        }
      }
    }
    return deps;
  }

  private neededStages(run: Run, target: Stage): Set<number> {
    const need = new Set<number>();
    const visit = (s: Stage) => {
      if (need.has(s.index)) return;
      need.add(s.index);
      for (const d of this.dependencies(run, s)) visit(d);
    };
    visit(target);
    return need;
  }

  private expandMeta(run: Run, word: string, line: number): string {
    const meta = envLookup(new Map([...run.metaArgs].filter((e): e is [string, string] => e[1] !== undefined)));
    const env: EnvLookup = (k) => meta(k) ?? PLATFORM_ARGS[k];
    return expandOrThrow(() => expandWord(word, env, run.df.escape), line) as string;
  }

  private stepHeader(run: Run, original: string): void {
    throwIfAbandoned(run);
    run.step++;
    if (run.req.quiet) return;
    run.out({ stream: `Step ${run.step}/${run.total} : ${original.trim()}` });
    run.out({ stream: '\n' });
  }

  private say(run: Run, text: string): void {
    if (!run.req.quiet) run.out({ stream: text });
  }

  private async buildStage(run: Run, stage: Stage, isTarget: boolean): Promise<string> {
    this.stepHeader(run, stage.original);
    const base = this.expandMeta(run, stage.base, stage.line);
    if (stage.platform) {
      const p = this.expandMeta(run, stage.platform, stage.line);
      if (!HOST_PLATFORMS.has(p)) {
        throw lineError(`platform ${p} is not the host's (${HOST_PLATFORM}): Berth builds for the host platform only`, stage.line);
      }
    }
    let imageId = '';
    let image: Omit<OciImageConfig, 'rootfs'> = { architecture: goArch(process.arch), os: 'linux', config: {}, history: [] };
    if (base.toLowerCase() !== 'scratch') {
      const ref = this.stageRef(run, base, stage.index);
      const id = ref && !/^\d+$/.test(base) ? run.results.get(ref.index) : undefined;
      let rec;
      try {
        rec = id ? await run.backend.resolveImage(id) : await run.backend.baseImage(base, { pull: run.req.pull, auth: run.req.registryAuth }, run.out);
      } catch (err) {
        if (isKind(err, 'not-found')) {
          throw stepError(`pull access denied for ${base}, repository does not exist or may require 'docker login': ${(err as Error).message}`, stage.line);
        }
        if (err instanceof BerthError) throw stepError(err.message, stage.line);
        throw err;
      }
      imageId = rec.id;
      const { rootfs: _r, ...rest } = rec.config;
      image = structuredClone(rest);
    }
    this.say(run, ` ---> ${imageId ? short(imageId) : ''}\n`);
    const st: StageState = {
      stage, imageId, image, config: structuredClone(image.config ?? {}), args: new Map(), cfgState: { cmdSet: false },
      missed: run.req.noCache, baseId: imageId, baseLayers: Array.isArray(image.history) ? image.history.length : 0,
    };
    // ONBUILD triggers of the base run right after FROM, then are dropped from the new image.
    const triggers = st.config.OnBuild ?? [];
    if (triggers.length) {
      st.config.OnBuild = null;
      for (const t of triggers) {
        const nodes = parseLine(t, run.df.escape);
        this.say(run, `# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}\n`);
        for (const n of nodes) { n.startLine = stage.line; await this.dispatch(run, st, n); }
      }
    }
    for (const n of stage.commands) {
      this.stepHeader(run, n.original);
      await this.dispatch(run, st, n);
    }
    if (isTarget && Object.keys(run.req.labels).length) {
      st.config.Labels = { ...(st.config.Labels ?? {}), ...run.req.labels };
      await this.commitConfig(run, st, `LABEL ${Object.entries(run.req.labels).map(([k, v]) => `${k}=${v}`).join(' ')}`, false);
    }
    if (!st.imageId) throw invalidArgument('No image was generated. Is your Dockerfile empty?');
    if (isTarget && run.req.squash) await this.squash(run, st);
    run.results.set(stage.index, st.imageId);
    return st.imageId;
  }

  // ---- dispatch ------------------------------------------------------------

  /** What `$VAR` sees in this stage: the config's Env over the stage's ARGs. */
  private env(st: StageState): EnvLookup {
    const cfgEnv = envLookup(st.config.Env ?? []);
    return (k) => cfgEnv(k) ?? st.args.get(k);
  }

  /** `K=V` of the stage's ARGs with values that ENV does not shadow (RUN sees them; the cache key includes them). */
  private argEnv(st: StageState): string[] {
    const envKeys = new Set((st.config.Env ?? []).map((e) => e.split('=')[0]));
    return [...st.args].filter(([k, v]) => v !== undefined && !envKeys.has(k)).map(([k, v]) => `${k}=${v}`);
  }

  private async dispatch(run: Run, st: StageState, n: Node): Promise<void> {
    switch (n.value) {
      case 'run': return this.runStep(run, st, n);
      case 'copy': case 'add': return this.copyStep(run, st, n);
      case 'workdir': return this.workdirStep(run, st, n);
      case 'arg': {
        for (const w of n.next) {
          const [name, value0] = this.argValue(run, w, this.env(st), n.startLine);
          let value = value0;
          // `ARG X` in a stage takes the global default of X.
          if (value === undefined && !w.includes('=') && run.metaArgs.get(name) !== undefined) value = run.metaArgs.get(name);
          st.args.set(name, value);
        }
        return this.commitConfig(run, st, `ARG ${n.next.join(' ')}`, true);
      }
      case 'from': throw lineError('FROM inside a stage', n.startLine);
      default: {
        applyConfigNode(st.config, n, this.env(st), run.df.escape, st.cfgState);
        if (st.cfgState.author !== undefined) st.image.author = st.cfgState.author;
        return this.commitConfig(run, st, this.normalized(n, st), true);
      }
    }
  }

  /** The instruction as Docker records it in history (`ENV A=1`, `CMD ["sh"]`). */
  private normalized(n: Node, st: StageState): string {
    const name = n.value.toUpperCase();
    switch (n.value) {
      case 'cmd': return `CMD ${JSON.stringify(st.config.Cmd ?? [])}`;
      case 'entrypoint': return `ENTRYPOINT ${JSON.stringify(st.config.Entrypoint ?? [])}`;
      case 'shell': return `SHELL ${JSON.stringify(st.config.Shell ?? [])}`;
      case 'workdir': return `WORKDIR ${st.config.WorkingDir}`;
      case 'env': case 'label': {
        const pairs: string[] = [];
        for (let i = 0; i + 1 < n.next.length; i += 3) {
          const k = expandWord(n.next[i], this.env(st), '\\');
          pairs.push(n.value === 'env' ? `${k}=${(st.config.Env ?? []).find((e) => e.startsWith(k + '='))?.slice(k.length + 1) ?? ''}` : `${JSON.stringify(k)}=${JSON.stringify(st.config.Labels?.[k] ?? '')}`);
        }
        return `${name} ${pairs.join(' ')}`;
      }
      default: return `${name} ${n.flags.length ? n.flags.join(' ') + ' ' : ''}${n.next.join(' ')}`.trim();
    }
  }

  private cacheKey(st: StageState, parts: unknown[]): string {
    return createHash('sha256').update(JSON.stringify([st.imageId, ...parts])).digest('hex');
  }

  private created(run: Run): string {
    return (run.epoch ?? new Date()).toISOString();
  }

  private snapshotImage(st: StageState): Omit<OciImageConfig, 'rootfs'> {
    return { ...st.image, created: undefined, config: structuredClone(st.config) };
  }

  /** A step that only changes the config: an image with the same layers. */
  private async commitConfig(run: Run, st: StageState, instruction: string, probe: boolean): Promise<void> {
    const key = this.cacheKey(st, ['config', instruction, st.config, st.image.author ?? '', run.epoch?.getTime() ?? null]);
    if (probe && await this.hit(run, st, key)) return;
    const created = this.created(run);
    const { image } = await run.backend.captureLayer(st.imageId, undefined, { ...this.snapshotImage(st), created }, {
      created, created_by: `/bin/sh -c #(nop)  ${instruction}`,
    });
    await this.advance(run, st, image.id, key, instruction, 0);
  }

  private async hit(run: Run, st: StageState, key: string): Promise<boolean> {
    if (st.missed) return false;
    let id = await run.backend.probeCache(key);
    if (id && run.req.cacheFrom.length) {
      run.cacheSources ??= this.cacheSources(run);
      if (!(await run.cacheSources).has(id)) id = undefined;
    }
    if (!id) { st.missed = true; return false; }
    this.say(run, ' ---> Using cache\n');
    await this.moveTo(run, st, id);
    this.say(run, ` ---> ${short(id)}\n`);
    return true;
  }

  private async cacheSources(run: Run): Promise<Set<string>> {
    const out = new Set<string>();
    for (const ref of run.req.cacheFrom) {
      let id: string | undefined = await run.backend.resolveImage(ref).then((r) => r.id, () => undefined);
      while (id && !out.has(id)) {
        out.add(id);
        id = await run.backend.resolveImage(id).then((r) => r.parent || undefined, () => undefined);
      }
    }
    return out;
  }

  /** Continues from an image found in the cache: its config is the stage's from now on. */
  private async moveTo(run: Run, st: StageState, id: string): Promise<void> {
    const rec = await run.backend.resolveImage(id);
    const { rootfs: _r, ...rest } = rec.config;
    st.imageId = rec.id;
    st.image = structuredClone(rest);
    st.config = structuredClone(rest.config ?? {});
  }

  private async advance(run: Run, st: StageState, id: string, key: string, description: string, size: number): Promise<void> {
    const now = new Date().toISOString();
    await run.backend.recordCache({ key, imageId: id, size, description, created: now, lastUsed: now });
    await this.moveTo(run, st, id);
    this.say(run, ` ---> ${short(id)}\n`);
  }

  private async runStep(run: Run, st: StageState, n: Node): Promise<void> {
    const flags = flagsOf(n);
    const network = flags.get('network');
    if (network !== undefined && network !== 'none' && network !== 'default') {
      throw lineError(`RUN --network=${String(network)} is not supported: RUN steps use the build's network (--network) or none`, n.startLine);
    }
    let cmd: string[];
    if (n.heredocs.length && !n.json) {
      const line = n.next.join(' ');
      const h = n.heredocs[0];
      const shell = st.config.Shell?.length ? st.config.Shell : ['/bin/sh', '-c'];
      // `RUN <<EOF` alone runs the document as the script; otherwise the shell reads it as a here-document.
      cmd = n.heredocs.length === 1 && /^\d*<<-?\S+$/.test(line.trim())
        ? [...shell, h.content]
        : [...shell, `${line}\n${n.heredocs.map((d) => d.content + d.name).join('\n')}`];
    } else {
      cmd = commandOf(n, st.config.Shell);
    }
    const argEnv = this.argEnv(st);
    const mounts = typeof flags.get('mount') === 'string' ? (flags.get('mount') as string).split('\n') : [];
    const key = this.cacheKey(st, ['run', cmd, argEnv.sort(), mounts, flags.get('network') ?? '', run.epoch?.getTime() ?? null]);
    if (await this.hit(run, st, key)) return;
    const proxies = Object.entries(run.req.buildArgs).filter(([k, v]) => PROXY_ARGS.has(k) && v !== null).map(([k, v]) => `${k}=${v}`);
    const env = [...(st.config.Env ?? []), ...argEnv, ...proxies];
    const createdBy = (argEnv.length ? `|${argEnv.length} ${argEnv.join(' ')} ` : '') + cmd.join(' ');

    const go = async (m: StepMounts) => {
      let containerId = '';
      const { layer, exitCode } = await run.backend.runStep({
        imageId: st.imageId, cmd, env, user: st.config.User ?? '', workdir: st.config.WorkingDir ?? '', ...m, extraHosts: run.req.extraHosts, signal: run.signal,
        network: network === 'none' ? 'none' : run.req.networkMode || 'default',
        onStart: (id) => { containerId = id; this.say(run, ` ---> Running in ${short(id)}\n`); },
        onOutput: (data, stream) => {
          if (run.req.quiet) return;
          const text = data.toString('utf8');
          run.out({ stream: stream === 'stderr' ? `\u001b[91m${text}\u001b[0m` : text });
        },
      });
      try {
        throwIfAbandoned(run);
        if (exitCode !== 0) {
          throw new BerthError('invalid-argument', `The command '${cmd.join(' ')}' returned a non-zero code: ${exitCode}`, { exitCode });
        }
        const created = this.created(run);
        const { image, layerSize } = await run.backend.captureLayer(st.imageId, layer, { ...this.snapshotImage(st), created },
          { created, created_by: createdBy }, run.epoch);
        this.say(run, `Removing intermediate container ${short(containerId)}\n`);
        await this.advance(run, st, image.id, key, `RUN ${cmd.join(' ')}`, layerSize);
      } finally {
        await run.backend.dropLayer(layer);
      }
    };
    await this.withRunMounts(run, st, n, mounts, { binds: [], tmpfs: [], secrets: [] }, go);
  }

  /** Sets up RUN --mount entries one by one (bind from a stage needs its rootfs mounted meanwhile), then runs. */
  private async withRunMounts(run: Run, st: StageState, n: Node, specs: string[], m: StepMounts, go: (m: StepMounts) => Promise<void>): Promise<void> {
    if (specs.length === 0) return go(m);
    const [spec, ...rest] = specs;
    const opts = new Map<string, string>();
    for (const kv of spec.split(',')) {
      const i = kv.indexOf('=');
      opts.set((i >= 0 ? kv.slice(0, i) : kv).trim().toLowerCase(), i >= 0 ? kv.slice(i + 1) : 'true');
    }
    const type = opts.get('type') ?? 'bind';
    const next = (add: Partial<StepMounts>) => this.withRunMounts(run, st, n, rest, {
      binds: [...m.binds, ...(add.binds ?? [])], tmpfs: [...m.tmpfs, ...(add.tmpfs ?? [])], secrets: [...m.secrets, ...(add.secrets ?? [])],
    }, go);
    if (type === 'ssh') {
      throw lineError('mount type ssh is not supported: Berth\'s builder cannot forward an SSH agent (use a secret mount, or clone in the build context)', n.startLine);
    }
    const absOf = (t: string) => (t.startsWith('/') ? t : path.posix.join(st.config.WorkingDir || '/', t));
    if (type === 'secret') {
      const id = opts.get('id') ?? path.posix.basename(opts.get('target') ?? opts.get('dst') ?? opts.get('destination') ?? '');
      if (!id) throw lineError(`mount ${spec}: secret id or target is required`, n.startLine);
      const target = absOf(opts.get('target') ?? opts.get('dst') ?? opts.get('destination') ?? `/run/secrets/${id}`);
      const data = run.req.secrets[id];
      if (!data) {
        // As BuildKit: a secret that was not given is skipped unless it is required.
        if (opts.get('required') === 'true') throw stepError(`secret ${id}: not found (pass it with --secret id=${id},src=FILE)`, n.startLine);
        return next({});
      }
      const num = (k: string, def: number, base = 10) => {
        const v = opts.get(k);
        if (v === undefined) return def;
        const x = parseInt(v, base);
        if (!Number.isInteger(x) || x < 0) throw lineError(`mount ${spec}: invalid ${k} ${v}`, n.startLine);
        return x;
      };
      return next({ secrets: [{ data, target, mode: num('mode', 0o400, 8), uid: num('uid', 0), gid: num('gid', 0) }] });
    }
    const target = opts.get('target') ?? opts.get('dst') ?? opts.get('destination');
    if (!target) throw lineError(`mount ${spec}: target is required`, n.startLine);
    const abs = absOf(target);
    if (type === 'tmpfs') {
      const raw = opts.get('size');
      const size = raw === undefined ? 0 : parseByteSize(raw);
      if (size === undefined) throw lineError(`mount ${spec}: invalid size ${raw}`, n.startLine);
      return next({ tmpfs: [{ target: abs, size }] });
    }
    const rw = opts.has('rw') || opts.get('readonly') === 'false' || opts.get('ro') === 'false';
    if (type === 'cache') {
      const dir = await run.backend.cacheMountDir(opts.get('id') ?? abs);
      return next({ binds: [{ source: dir, target: abs, readonly: opts.get('ro') === 'true' || opts.get('readonly') === 'true' }] });
    }
    if (type === 'bind') {
      const source = (opts.get('source') ?? opts.get('src') ?? '.').replace(/^\/+/, '') || '.';
      const from = opts.get('from');
      if (!from) {
        const host = path.resolve(run.ctx.dir, source);
        if (host !== run.ctx.dir && !host.startsWith(run.ctx.dir + path.sep)) throw lineError(`mount source ${source} is outside the build context`, n.startLine);
        return next({ binds: [{ source: host, target: abs, readonly: !rw }] });
      }
      const imageId = await this.fromImage(run, st, from, n.startLine);
      return run.backend.withImageRootfs(imageId, async (root) => {
        await next({ binds: [{ source: resolveInRoot(root, '/' + source), target: abs, readonly: !rw }] });
      });
    }
    throw lineError(`mount type ${type} is not supported (use bind, cache, tmpfs or secret)`, n.startLine);
  }

  /** Image of `--from=`: an earlier stage (name or index) or an image reference. */
  private async fromImage(run: Run, st: StageState, from: string, line: number): Promise<string> {
    const ref = this.stageRef(run, from, st.stage.index);
    if (ref) {
      const id = run.results.get(ref.index);
      if (!id) throw stepError(`stage ${from} was not built`, line);
      return id;
    }
    try {
      return (await run.backend.baseImage(from, { pull: false, auth: run.req.registryAuth }, run.out)).id;
    } catch (err) {
      if (!(err instanceof BerthError)) throw err;
      throw stepError(`invalid from flag value ${from}: ${err.message} (and no stage of that name)`, line);
    }
  }

  private async workdirStep(run: Run, st: StageState, n: Node): Promise<void> {
    applyConfigNode(st.config, n, this.env(st), run.df.escape, st.cfgState);
    const dir = st.config.WorkingDir ?? '/';
    const key = this.cacheKey(st, ['workdir', dir, st.config, run.epoch?.getTime() ?? null]);
    if (await this.hit(run, st, key)) return;
    const layer = await run.backend.copyIntoLayer(st.imageId, async (root) => {
      await fsp.mkdir(resolveInRoot(root, dir), { recursive: true, mode: 0o755 });
    });
    await this.captureStep(run, st, layer, key, `WORKDIR ${dir}`, `/bin/sh -c #(nop) WORKDIR ${dir}`);
  }

  private async captureStep(run: Run, st: StageState, layer: BuildStepLayer, key: string, description: string, createdBy: string): Promise<void> {
    try {
      const created = this.created(run);
      const { image, layerSize } = await run.backend.captureLayer(st.imageId, layer, { ...this.snapshotImage(st), created },
        { created, created_by: createdBy }, run.epoch);
      await this.advance(run, st, image.id, key, description, layerSize);
    } finally {
      await run.backend.dropLayer(layer);
    }
  }

  private async copyStep(run: Run, st: StageState, n: Node): Promise<void> {
    const flags = flagsOf(n);
    const isAdd = n.value === 'add';
    const name = n.value.toUpperCase();
    const env = this.env(st);
    const word = (w: string) => expandOrThrow(() => expandWord(w, env, run.df.escape), n.startLine) as string;
    const args = n.next.map(word);
    if (args.length < 2 && !(n.heredocs.length && args.length >= 1)) {
      throw lineError(`${name} requires at least two arguments, but only one was provided. Destination could not be determined`, n.startLine);
    }
    const destArg = args[args.length - 1];
    const heredocs = new Map(n.heredocs.map((h) => [h.name, h]));
    const sources = args.slice(0, -1);
    const from = typeof flags.get('from') === 'string' ? word(flags.get('from') as string) : undefined;
    if (from !== undefined && isAdd) throw lineError('ADD does not take --from (use COPY)', n.startLine);
    const chown = typeof flags.get('chown') === 'string' ? word(flags.get('chown') as string) : '';
    const chmodText = typeof flags.get('chmod') === 'string' ? (flags.get('chmod') as string) : '';
    if (chmodText && !/^[0-7]{3,4}$/.test(chmodText)) throw lineError(`invalid chmod parameter ${chmodText}: use an octal mode such as 0755`, n.startLine);
    const dest = destArg.startsWith('/') ? destArg : path.posix.join(st.config.WorkingDir || '/', destArg) + (destArg.endsWith('/') || destArg === '.' ? '/' : '');
    const spec: CopySpec = {
      instruction: name, line: n.startLine, sources, dest, destIsDir: destArg.endsWith('/') || destArg === '.' || destArg === '..',
      chown, chmod: chmodText ? parseInt(chmodText, 8) : undefined, add: isAdd,
      heredocs: new Map([...heredocs].map(([k, h]) => [k, h.expand ? (expandOrThrow(() => expandWord(h.content, env, run.df.escape, { skipUnsetEnv: false }), n.startLine) as string) : h.content])),
      user: st.config.User ?? '',
    };
    let sourceKey: string;
    let fromImage: string | undefined;
    if (from !== undefined) {
      fromImage = await this.fromImage(run, st, from, n.startLine);
      sourceKey = fromImage;
    } else {
      run.visible ??= run.ctx.visiblePaths().then((v) => new Set(v));
      sourceKey = await this.contextHash(run, spec, await run.visible);
    }
    const key = this.cacheKey(st, [n.value, sources, dest, chown, chmodText, sourceKey, run.epoch?.getTime() ?? null]);
    if (await this.hit(run, st, key)) return;
    const kind = sources.length === 1 && !/[*?[]/.test(sources[0]) ? 'file' : 'multi';
    const layer = await run.backend.copyIntoLayer(st.imageId, async (root) => {
      if (fromImage) {
        await run.backend.withImageRootfs(fromImage, (srcRoot) => copySources(spec, { root: srcRoot, scoped: true }, root));
      } else {
        await copySources(spec, { root: run.ctx.dir, scoped: false, visible: await run.visible! }, root);
      }
    });
    const createdBy = `/bin/sh -c #(nop) ${name} ${from !== undefined ? `--from=${from} ` : ''}${kind}:${sourceKey.slice(0, 64)} in ${dest} `;
    await this.captureStep(run, st, layer, key, `${name} ${sources.join(' ')} ${dest}`, createdBy);
  }

  /** Hash of what a COPY/ADD takes from the context (content and metadata, never times). */
  private async contextHash(run: Run, spec: CopySpec, visible: Set<string>): Promise<string> {
    const rels = resolveContextSources(spec, run.ctx.dir, visible);
    const h = createHash('sha256').update(await run.ctx.hashSources(rels.filter((r) => !r.startsWith('<<') && !/^https?:\/\//.test(r)), visible));
    for (const r of rels) if (r.startsWith('<<') || /^https?:\/\//.test(r)) h.update(r);
    for (const [k, v] of spec.heredocs) h.update(`${k}\0${v}`);
    return h.digest('hex');
  }

  private async squash(run: Run, st: StageState): Promise<void> {
    const rec = await run.backend.resolveImage(st.imageId);
    const base = st.baseId ? await run.backend.resolveImage(st.baseId) : undefined;
    const baseDiffs = base?.config.rootfs.diff_ids ?? [];
    const own = rec.config.rootfs.diff_ids.slice(baseDiffs.length);
    const { rootfs: _r, ...cfg } = rec.config;
    const history = (Array.isArray(cfg.history) ? cfg.history : []).slice(0, st.baseLayers);
    const created = this.created(run);
    history.push({ created, created_by: 'merge ' + own.join(' ') + ' to ' + (st.baseId || 'scratch'), ...(own.length ? {} : { empty_layer: true }) });
    const squashed = await run.backend.squashLayers(st.baseId, own, { ...cfg, created, history });
    st.imageId = squashed.id;
  }
}
