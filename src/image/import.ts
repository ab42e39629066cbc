/**
 * `docker import`: a rootfs tarball (plain or compressed) becomes a
 * one-layer image. Also home of the parser for
 * `--change` instructions (CMD, ENV, ...), which commit uses too.
 */
import { Transform, type Readable } from 'node:stream';
import { invalidArgument } from '../common/errors';
import { familiarString, parseRepoAndTag, referenceString } from '../common/reference';
import type { ImageRecord, ImageRunConfig, ImageService, ProgressSink } from '../engine/types';

/* ------------------------------------------------------- --change parser */

const ALLOWED = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR']);
const KNOWN = new Set([...ALLOWED, 'ADD', 'ARG', 'COPY', 'FROM', 'HEALTHCHECK', 'MAINTAINER', 'RUN', 'SHELL']);

/**
 * Applies Dockerfile-style change lines to a copy of `base`, as Docker's
 * BuildFromConfig does for import and commit. Each element of `changes` is
 * one line; errors name the line as Docker does.
 */
export function applyChanges(base: ImageRunConfig, changes: string[]): ImageRunConfig {
  const cfg: ImageRunConfig = structuredClone(base ?? {});
  // Docker joins the changes with newlines and parses that as a Dockerfile.
  const lines = changes.join('\n').split('\n');
  const state = { cmdSet: false };
  lines.forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(line)!;
    const instr = m[1].toUpperCase();
    const rest = (m[2] ?? '').trim();
    if (!KNOWN.has(instr)) throw invalidArgument(`dockerfile parse error on line ${i + 1}: unknown instruction: ${m[1]}`);
    if (!ALLOWED.has(instr)) throw invalidArgument(`${instr.toLowerCase()} is not a valid change command`);
    applyOne(cfg, instr, rest, i + 1, state);
  });
  return cfg;
}

function applyOne(cfg: ImageRunConfig, instr: string, rest: string, lineNo: number, state: { cmdSet: boolean }): void {
  const need = (ok: boolean, what = instr) => {
    if (!ok) throw invalidArgument(`dockerfile parse error on line ${lineNo}: ${what} requires at least one argument`);
  };
  const env = envMap(cfg.Env ?? []);
  switch (instr) {
    case 'CMD': {
      need(rest !== '');
      cfg.Cmd = execOrShell(rest, cfg.Shell);
      state.cmdSet = true;
      break;
    }
    case 'ENTRYPOINT': {
      need(rest !== '');
      cfg.Entrypoint = execOrShell(rest, cfg.Shell);
      // As in a Dockerfile: a new ENTRYPOINT drops the inherited CMD unless CMD was set too.
      if (!state.cmdSet) cfg.Cmd = null;
      break;
    }
    case 'ENV': {
      need(rest !== '', 'ENV');
      const pairs = keyValues(rest, 'ENV', lineNo);
      const list = [...(cfg.Env ?? [])];
      for (const [k, v] of pairs) {
        const val = expand(v, envMap(list));
        const idx = list.findIndex((e) => e.split('=')[0] === k);
        if (idx >= 0) list[idx] = `${k}=${val}`; else list.push(`${k}=${val}`);
      }
      cfg.Env = list;
      break;
    }
    case 'LABEL': {
      need(rest !== '', 'LABEL');
      const labels = { ...(cfg.Labels ?? {}) };
      for (const [k, v] of keyValues(rest, 'LABEL', lineNo, true)) labels[k] = expand(v, env);
      cfg.Labels = labels;
      break;
    }
    case 'EXPOSE': {
      need(rest !== '', 'EXPOSE');
      const ports = { ...(cfg.ExposedPorts ?? {}) };
      for (const w of words(expand(rest, env))) {
        const mm = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(w);
        if (!mm) throw invalidArgument(`invalid containerPort: ${w}`);
        const lo = Number(mm[1]);
        const hi = mm[2] ? Number(mm[2]) : lo;
        if (hi < lo || hi > 65535) throw invalidArgument(`invalid range specified for container port: ${w}`);
        for (let p = lo; p <= hi; p++) ports[`${p}/${(mm[3] ?? 'tcp').toLowerCase()}`] = {};
      }
      cfg.ExposedPorts = ports;
      break;
    }
    case 'VOLUME': {
      need(rest !== '', 'VOLUME');
      const vols = { ...(cfg.Volumes ?? {}) };
      const list = isJsonArray(rest) ? parseJsonArray(rest) : words(rest);
      for (const v of list) {
        const p = expand(v, env).trim();
        if (!p) throw invalidArgument('VOLUME specified can not be an empty string');
        vols[p] = {};
      }
      cfg.Volumes = vols;
      break;
    }
    case 'WORKDIR': {
      need(rest !== '', 'WORKDIR');
      const dir = expand(rest, env);
      const base = cfg.WorkingDir || '/';
      cfg.WorkingDir = dir.startsWith('/') ? normalizePosix(dir) : normalizePosix(`${base}/${dir}`);
      break;
    }
    case 'USER': {
      need(rest !== '', 'USER');
      cfg.User = expand(rest, env);
      break;
    }
    case 'STOPSIGNAL': {
      need(rest !== '', 'STOPSIGNAL');
      cfg.StopSignal = expand(rest, env);
      break;
    }
    case 'ONBUILD': {
      need(rest !== '', 'ONBUILD');
      const sub = /^(\S+)([\s\S]*)$/.exec(rest)!;
      const subInstr = sub[1].toUpperCase();
      if (subInstr === 'ONBUILD') throw invalidArgument('Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
      if (subInstr === 'FROM' || subInstr === 'MAINTAINER') throw invalidArgument(`${subInstr} isn't allowed as an ONBUILD trigger`);
      cfg.OnBuild = [...(cfg.OnBuild ?? []), `${subInstr}${sub[2]}`];
      break;
    }
  }
}

function isJsonArray(s: string): boolean {
  if (!s.startsWith('[')) return false;
  try { const v = JSON.parse(s); return Array.isArray(v) && v.every((x) => typeof x === 'string'); } catch { return false; }
}

function parseJsonArray(s: string): string[] {
  return JSON.parse(s) as string[];
}

/** JSON (exec) form is kept; shell form runs through the shell, as Dockerfile does. */
function execOrShell(rest: string, shell?: string[]): string[] {
  if (isJsonArray(rest)) return parseJsonArray(rest);
  return [...(shell && shell.length ? shell : ['/bin/sh', '-c']), rest];
}

function envMap(env: string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const e of env) {
    const i = e.indexOf('=');
    if (i > 0) m.set(e.slice(0, i), e.slice(i + 1));
  }
  return m;
}

/** `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}`, `\$` (Dockerfile word expansion, reduced). */
function expand(s: string, env: Map<string, string>): string {
  return unquote(s).replace(/\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (all, name, op, arg, bare) => {
    if (all === '\\$') return '$';
    const key = name ?? bare;
    const v = env.get(key);
    if (op === '-') return v ? v : arg;
    if (op === '+') return v ? arg : '';
    return v ?? '';
  });
}

/** Removes one level of surrounding double or single quotes. */
function unquote(s: string): string {
  if (s.length >= 2 && ((s[0] === '"' && s.endsWith('"')) || (s[0] === '\'' && s.endsWith('\'')))) return s.slice(1, -1);
  return s;
}

/** Splits on whitespace outside quotes, removing the quotes. */
function words(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote = '';
  let has = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) { quote = ''; continue; }
      if (c === '\\' && quote === '"' && i + 1 < s.length) { cur += s[++i]; continue; }
      cur += c;
    } else if (c === '"' || c === '\'') { quote = c; has = true; }
    else if (c === '\\' && i + 1 < s.length) { cur += s[++i]; has = true; }
    else if (/\s/.test(c)) { if (cur || has) out.push(cur); cur = ''; has = false; }
    else { cur += c; has = true; }
  }
  if (quote) throw invalidArgument(`unexpected end of statement while looking for matching ${quote}`);
  if (cur || has) out.push(cur);
  return out;
}

/** `K=V K2="v 2"` or the legacy one-pair form `K V with spaces`. */
function keyValues(rest: string, instr: string, lineNo: number, requireEq = false): Array<[string, string]> {
  const first = /^(\S+)/.exec(rest)![1];
  if (!first.includes('=')) {
    if (requireEq && instr === 'LABEL') {
      const sp = /^(\S+)\s+([\s\S]+)$/.exec(rest);
      if (!sp) throw invalidArgument(`dockerfile parse error on line ${lineNo}: ${instr} must have two arguments`);
      return [[unquote(sp[1]), sp[2]]];
    }
    const sp = /^(\S+)\s+([\s\S]+)$/.exec(rest);
    if (!sp) throw invalidArgument(`dockerfile parse error on line ${lineNo}: ${instr} must have two arguments`);
    return [[sp[1], sp[2]]];
  }
  const out: Array<[string, string]> = [];
  for (const w of splitKeepingQuotes(rest)) {
    const eq = w.indexOf('=');
    if (eq <= 0) throw invalidArgument(`dockerfile parse error on line ${lineNo}: ${instr} names can not be blank`);
    out.push([unquote(w.slice(0, eq)), w.slice(eq + 1)]);
  }
  return out;
}

/** Whitespace split that keeps quotes in the words (expand() strips them per value). */
function splitKeepingQuotes(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) { cur += c; if (c === quote) quote = ''; else if (c === '\\' && i + 1 < s.length) cur += s[++i]; continue; }
    if (c === '"' || c === '\'') { quote = c; cur += c; continue; }
    if (/\s/.test(c)) { if (cur) out.push(cur); cur = ''; continue; }
    cur += c;
  }
  if (quote) throw invalidArgument(`unexpected end of statement while looking for matching ${quote}`);
  if (cur) out.push(cur);
  // Values like A="x y" keep their quotes only around the value part.
  return out.map((w) => {
    const eq = w.indexOf('=');
    if (eq <= 0) return w;
    const v = w.slice(eq + 1);
    const m = /^(["'])([\s\S]*)\1$/.exec(v);
    return m ? `${w.slice(0, eq)}=${m[1] === '"' ? m[2].replace(/\\(.)/g, '$1') : m[2]}` : w;
  });
}

function normalizePosix(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split('/')) {
    if (!seg || seg === '.') continue;
    if (seg === '..') parts.pop(); else parts.push(seg);
  }
  return '/' + parts.join('/');
}

/* ------------------------------------------------------------- import */

export interface ImportOptions {
  /** Repository (and tag) to name the image; '' for none. */
  repo: string;
  tag: string;
  /** `--change` lines. */
  changes: string[];
  message: string;
  /** `os/arch`; '' for the host's. */
  platform: string;
}

/**
 * `docker import`: validates everything, then opens the rootfs tar (plain or
 * compressed) with `openBody` and makes it a one-layer image. Progress
 * (`Importing` with bytes received) goes to `progress`.
 */
export async function importImage(images: ImageService, opts: ImportOptions, openBody: () => Readable, progress: ProgressSink): Promise<ImageRecord> {
  // Validate everything before reading the body.
  const tags = opts.repo ? [referenceString(parseRepoAndTag(opts.repo, opts.tag || undefined))] : [];
  const runConfig = applyChanges({}, opts.changes);
  const message = opts.message;
  const [os, architecture] = opts.platform ? opts.platform.split('/') : ['linux', nodeArchToGo(process.arch)];

  const created = new Date().toISOString();
  let received = 0;
  let lastReport = 0;
  // Counts bytes for progress without taking the body out of paused mode.
  const body: Readable = openBody().pipe(new Transform({
    transform(chunk: Buffer, _enc, cb) {
      received += chunk.length;
      if (received - lastReport >= 8 << 20) {
        lastReport = received;
        progress({ status: 'Importing', progressDetail: { current: received }, progress: humanSize(received) });
      }
      cb(null, chunk);
    },
  }));
  return images.createImageFromLayers({
    layers: [{ open: async () => body }],
    config: {
      architecture: architecture || nodeArchToGo(process.arch),
      os: os || 'linux',
      created,
      ...(Object.keys(runConfig).length ? { config: runConfig } : {}),
      comment: message || 'Imported from -',
      history: [{ created, comment: message || 'Imported from -' }],
    },
    tags,
    eventAction: 'import',
  });
}

export function nodeArchToGo(a: string): string {
  return ({ x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x' } as Record<string, string>)[a] ?? a;
}

export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return i === 0 ? `${v}B` : `${v.toFixed(3).replace(/\.?0+$/, '')}${units[i]}`;
}

export { familiarString };
