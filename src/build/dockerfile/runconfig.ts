/**
 * Instructions that only change the image config (CMD, ENTRYPOINT, ENV,
 * LABEL, EXPOSE, VOLUME, WORKDIR, USER, STOPSIGNAL, ONBUILD, HEALTHCHECK,
 * SHELL, MAINTAINER), applied with Docker's expansion rules. Used by the
 * builder and by `commit`/`import` `--change` (applyChanges).
 */
import type { ImageRunConfig } from '../../engine/types';
import { DockerfileError, type Node } from './parser';
import { checkNode, flagsOf, lineError, parseLine } from './instructions';
import { envLookup, expandWord, expandWords, ExpansionError, type EnvLookup } from './shell';

/** Per-stage facts a config instruction needs beyond the config itself. */
export interface ConfigState {
  /** CMD was set in this stage (a later ENTRYPOINT then keeps it). */
  cmdSet: boolean;
  /** MAINTAINER sets the image author. */
  author?: string;
}

export function expandOrThrow(fn: () => string | string[], line: number): any {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ExpansionError) throw lineError(err.message, line);
    throw err;
  }
}

/** Exec form kept; shell form wrapped in the stage's SHELL (default /bin/sh -c). */
export function commandOf(n: Node, shell: string[] | undefined): string[] {
  if (n.json) return [...n.next];
  return [...(shell && shell.length ? shell : ['/bin/sh', '-c']), n.next.join(' ')];
}

/** Go's time.ParseDuration for the forms HEALTHCHECK takes; returns nanoseconds. */
export function parseGoDuration(s: string): number {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  if (s === '0') return 0;
  let total = 0;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(s))) { total += Number(m[1]) * unit[m[2]]; pos = re.lastIndex; }
  if (pos !== s.length || s === '') throw new Error(`time: invalid duration "${s}"`);
  return Math.round(total);
}

function normalizeAbs(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (!seg || seg === '.') continue;
    if (seg === '..') parts.pop(); else parts.push(seg);
  }
  return '/' + parts.join('/');
}

function keyValuePairs(n: Node, env: EnvLookup, escape: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < n.next.length; i += 3) {
    const k = expandOrThrow(() => expandWord(n.next[i], env, escape), n.startLine) as string;
    const v = expandOrThrow(() => expandWord(n.next[i + 1], env, escape), n.startLine) as string;
    if (k === '') throw lineError(`${n.value.toUpperCase()} names can not be blank`, n.startLine);
    out.push([k, v]);
  }
  return out;
}

export function parsePorts(words: string[], line: number): string[] {
  const out: string[] = [];
  for (const w of words) {
    const m = /^(?:(?:[^:]*:)?)(\d+)(?:-(\d+))?(?:\/([A-Za-z]+))?$/.exec(w);
    if (!m) throw lineError(`invalid containerPort: ${w}`, line);
    const proto = (m[3] ?? 'tcp').toLowerCase();
    if (!['tcp', 'udp', 'sctp'].includes(proto)) throw lineError(`invalid proto: ${proto}`, line);
    const lo = Number(m[1]);
    const hi = m[2] ? Number(m[2]) : lo;
    if (hi < lo || hi > 65535) throw lineError(`invalid range specified for container port: ${w}`, line);
    for (let p = lo; p <= hi; p++) out.push(`${p}/${proto}`);
  }
  return out;
}

/**
 * Applies one config-only instruction to `cfg` (in place). `env` is what
 * expansion sees (the config's Env plus build args in scope).
 */
export function applyConfigNode(cfg: ImageRunConfig, n: Node, env: EnvLookup, escape: string, state: ConfigState): void {
  const line = n.startLine;
  const word = (s: string) => expandOrThrow(() => expandWord(s, env, escape), line) as string;
  switch (n.value) {
    case 'cmd':
      cfg.Cmd = commandOf(n, cfg.Shell);
      state.cmdSet = true;
      break;
    case 'entrypoint':
      cfg.Entrypoint = n.json && n.next.length === 0 ? null : commandOf(n, cfg.Shell);
      if (!state.cmdSet) cfg.Cmd = null;
      break;
    case 'env': {
      const list = [...(cfg.Env ?? [])];
      for (const [k, v] of keyValuePairs(n, env, escape)) {
        const idx = list.findIndex((e) => e.split('=')[0] === k);
        if (idx >= 0) list[idx] = `${k}=${v}`; else list.push(`${k}=${v}`);
      }
      cfg.Env = list;
      break;
    }
    case 'label': {
      const labels = { ...(cfg.Labels ?? {}) };
      for (const [k, v] of keyValuePairs(n, env, escape)) labels[k] = v;
      cfg.Labels = labels;
      break;
    }
    case 'expose': {
      const words = n.next.flatMap((w) => expandOrThrow(() => expandWords(w, env, escape), line) as string[]);
      const ports = { ...(cfg.ExposedPorts ?? {}) };
      for (const p of parsePorts(words, line)) ports[p] = {};
      cfg.ExposedPorts = ports;
      break;
    }
    case 'volume': {
      const vols = { ...(cfg.Volumes ?? {}) };
      for (const v of n.next) {
        const p = word(v).trim();
        if (!p) throw lineError('VOLUME specified can not be an empty string', line);
        vols[p] = {};
      }
      cfg.Volumes = vols;
      break;
    }
    case 'workdir': {
      const dir = word(n.next[0]);
      cfg.WorkingDir = dir.startsWith('/') ? normalizeAbs(dir) : normalizeAbs(`${cfg.WorkingDir || '/'}/${dir}`);
      break;
    }
    case 'user': cfg.User = word(n.next[0]); break;
    case 'stopsignal': cfg.StopSignal = word(n.next[0]); break;
    case 'maintainer': state.author = n.next[0]; break;
    case 'shell': cfg.Shell = [...n.next]; break;
    case 'onbuild': {
      // Docker keeps the trigger as written, its instruction upper-cased.
      const trigger = n.original.trim().replace(/^\S+\s+/, '').replace(/^\S+/, (w) => w.toUpperCase());
      cfg.OnBuild = [...(cfg.OnBuild ?? []), trigger];
      break;
    }
    case 'healthcheck': {
      const typ = n.next[0].toUpperCase();
      if (typ === 'NONE') { cfg.Healthcheck = { Test: ['NONE'] }; break; }
      const fl = flagsOf(n);
      const hc: Record<string, unknown> = { Test: n.json ? ['CMD', ...n.next.slice(1)] : ['CMD-SHELL', n.next.slice(1).join(' ')] };
      const dur = (name: string, key: string) => {
        const v = fl.get(name);
        if (typeof v !== 'string') return;
        let ns: number;
        try { ns = parseGoDuration(v); } catch (err) { throw lineError((err as Error).message, line); }
        if (ns !== 0 && ns < 1e6) throw lineError(`Interval "${name}" cannot be less than 1ms`, line);
        if (ns) hc[key] = ns;
      };
      dur('interval', 'Interval'); dur('timeout', 'Timeout'); dur('start-period', 'StartPeriod'); dur('start-interval', 'StartInterval');
      const r = fl.get('retries');
      if (typeof r === 'string') {
        const nr = Number(r);
        if (!Number.isInteger(nr)) throw lineError(`strconv.ParseInt: parsing "${r}": invalid syntax`, line);
        if (nr < 0) throw lineError('--retries cannot be negative', line);
        if (nr) hc.Retries = nr;
      }
      cfg.Healthcheck = hc;
      break;
    }
    default:
      throw lineError(`${n.value.toUpperCase()} does not change only the image config`, line);
  }
}

const CHANGE_ALLOWED = new Set(['cmd', 'entrypoint', 'env', 'expose', 'healthcheck', 'label', 'onbuild', 'stopsignal', 'user', 'volume', 'workdir']);

/**
 * `--change` lines of commit/import, as Docker's BuildFromConfig applies them
 * to a copy of `base`. Errors name the line as Docker does.
 */
export function applyChanges(base: ImageRunConfig, changes: string[]): ImageRunConfig {
  const cfg: ImageRunConfig = structuredClone(base ?? {});
  const text = changes.join('\n');
  if (!text.trim()) return cfg;
  let nodes: Node[];
  try {
    nodes = parseLine(text);
  } catch (err) {
    if (err instanceof DockerfileError && err.message === 'file with no instructions') return cfg;
    if (err instanceof DockerfileError) throw lineError(err.message, err.line);
    throw err;
  }
  const state: ConfigState = { cmdSet: false };
  for (const n of nodes) {
    checkNode(n);
    if (!CHANGE_ALLOWED.has(n.value)) throw new DockerfileError(`${n.value} is not a valid change command`);
    applyConfigNode(cfg, n, envLookup(cfg.Env ?? []), '\\', state);
  }
  return cfg;
}
