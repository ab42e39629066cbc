/**
 * From parsed nodes to build stages: checks each instruction (known name,
 * allowed flags, argument count) and groups them under their FROM, as
 * BuildKit's instructions.Parse does. Errors carry the Dockerfile line and
 * Docker's wording (`dockerfile parse error on line N: ...`).
 */
import { DockerfileError, parse, type Node, type ParseResult } from './parser';

export const INSTRUCTIONS = new Set([
  'add', 'arg', 'cmd', 'copy', 'entrypoint', 'env', 'expose', 'from', 'healthcheck', 'label',
  'maintainer', 'onbuild', 'run', 'shell', 'stopsignal', 'user', 'volume', 'workdir',
]);

/** Flags each instruction accepts (others are refused, as Docker does). */
const FLAGS: Record<string, string[]> = {
  from: ['platform'],
  // --link only changes how BuildKit stores the layer; the result is the same, so it is accepted.
  copy: ['from', 'chown', 'chmod', 'link'],
  add: ['chown', 'chmod', 'link'],
  run: ['mount', 'network'],
  healthcheck: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};

export interface Stage {
  index: number;
  /** `AS name` (lower-cased), or ''. */
  name: string;
  /** The base as written (expanded later with the meta ARGs). */
  base: string;
  platform: string;
  line: number;
  commands: Node[];
  original: string;
}

export interface Dockerfile {
  stages: Stage[];
  /** ARGs before the first FROM. */
  metaArgs: Node[];
  escape: string;
  syntax?: string;
}

export function lineError(msg: string, line: number | undefined): DockerfileError {
  return new DockerfileError(line ? `dockerfile parse error on line ${line}: ${msg}` : msg, line);
}

/** An error of a step while building (not a parse error): Docker's words, then where it happened. */
export function stepError(msg: string, line: number | undefined): DockerfileError {
  return new DockerfileError(line ? `${msg} (Dockerfile line ${line})` : msg, line);
}

/** `--name=value` flags of a node; `--name` alone is `true`. Unknown flags are refused. */
export function flagsOf(n: Node): Map<string, string | true> {
  const out = new Map<string, string | true>();
  const allowed = FLAGS[n.value] ?? [];
  for (const f of n.flags) {
    const m = /^--([^=]+)(?:=([\s\S]*))?$/.exec(f);
    if (!m) throw lineError(`invalid flag format: ${f}`, n.startLine);
    if (!allowed.includes(m[1])) throw lineError(`unknown flag: ${m[1]}`, n.startLine);
    if (m[1] === 'mount' && out.has('mount')) out.set('mount', `${out.get('mount')}\n${m[2] ?? ''}`);
    else out.set(m[1], m[2] ?? true);
  }
  return out;
}

/** Checks one node: a known instruction with the arguments it needs. */
export function checkNode(n: Node, inOnbuild = false): void {
  const name = n.value.toUpperCase();
  if (!INSTRUCTIONS.has(n.value)) throw lineError(`unknown instruction: ${n.original.trim().split(/\s+/)[0]}`, n.startLine);
  flagsOf(n);
  const need = (ok: boolean, what = `${name} requires at least one argument`) => { if (!ok) throw lineError(what, n.startLine); };
  switch (n.value) {
    case 'from': need(n.next.length >= 1, 'FROM requires either one or three arguments');
      if (!(n.next.length === 1 || (n.next.length === 3 && n.next[1].toLowerCase() === 'as'))) throw lineError('FROM requires either one or three arguments', n.startLine);
      break;
    case 'add': case 'copy': need(n.next.length + n.heredocs.length >= 2 || (n.heredocs.length > 0 && n.next.length >= 1), `${name} requires at least two arguments, but only one was provided. Destination could not be determined`); break;
    case 'onbuild': {
      need(!!n.child, 'ONBUILD requires at least one argument');
      const sub = n.child!.value;
      if (sub === 'onbuild') throw lineError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed", n.startLine);
      if (sub === 'from' || sub === 'maintainer') throw lineError(`${sub.toUpperCase()} isn't allowed as an ONBUILD trigger`, n.startLine);
      checkNode({ ...n.child!, startLine: n.startLine }, true);
      break;
    }
    case 'healthcheck': {
      need(n.next.length >= 1, 'HEALTHCHECK requires an argument');
      const typ = n.next[0].toUpperCase();
      if (typ === 'NONE') { if (n.next.length > 1) throw lineError('HEALTHCHECK NONE takes no arguments', n.startLine); }
      else if (typ === 'CMD') need(n.next.length >= 2, 'Missing command after HEALTHCHECK CMD');
      else throw lineError(`Unknown type "${typ}" in HEALTHCHECK (try CMD)`, n.startLine);
      break;
    }
    case 'shell': if (!n.json) throw lineError('SHELL requires the arguments to be in JSON form', n.startLine); need(n.next.length >= 1); break;
    case 'arg': need(n.next.length >= 1, 'ARG requires at least one argument'); break;
    case 'env': case 'label': need(n.next.length >= 3, `${name} requires at least one argument`); break;
    case 'cmd': case 'entrypoint': break;
    case 'run': need(n.next.length >= 1 || n.heredocs.length > 0); break;
    default: need(n.next.length >= 1);
  }
  void inOnbuild;
}

/** Parses a Dockerfile into stages. Throws DockerfileError with Docker's wording. */
export function parseDockerfile(src: string | Buffer): Dockerfile {
  let res: ParseResult;
  try {
    res = parse(src);
  } catch (err) {
    if (err instanceof DockerfileError && err.message === 'file with no instructions') {
      throw new DockerfileError('the Dockerfile cannot be empty');
    }
    if (err instanceof DockerfileError) throw lineError(err.message, err.line);
    throw err;
  }
  const stages: Stage[] = [];
  const metaArgs: Node[] = [];
  for (const n of res.children) {
    checkNode(n);
    if (n.value === 'from') {
      const fl = flagsOf(n);
      stages.push({
        index: stages.length,
        name: n.next.length === 3 ? n.next[2].toLowerCase() : '',
        base: n.next[0],
        platform: typeof fl.get('platform') === 'string' ? (fl.get('platform') as string) : '',
        line: n.startLine,
        commands: [],
        original: n.original,
      });
      continue;
    }
    if (stages.length === 0) {
      if (n.value === 'arg') { metaArgs.push(n); continue; }
      throw lineError('no build stage in current context', n.startLine);
    }
    stages[stages.length - 1].commands.push(n);
  }
  if (stages.length === 0) throw new DockerfileError('No image was generated. Is your Dockerfile empty?');
  const names = new Set<string>();
  for (const s of stages) {
    if (!s.name) continue;
    if (!/^[a-z][a-z0-9-_.]*$/.test(s.name)) throw lineError(`invalid name for build stage: "${s.name}", name can't start with a number or contain symbols`, s.line);
    if (names.has(s.name)) throw lineError(`duplicate name ${s.name}`, s.line);
    names.add(s.name);
  }
  return { stages, metaArgs, escape: res.escape, syntax: res.syntax };
}

/** Builds a one-instruction node from a line (ONBUILD triggers, `--change` values). */
export function parseLine(line: string, escape = '\\'): Node[] {
  const prefix = escape === '`' ? '# escape=`\n' : '';
  return parse(prefix + line).children;
}
