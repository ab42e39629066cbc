// A pflag-compatible option parser. The docker CLI is built on cobra/pflag; matching its
// syntax (-it, -n5, --name=x, repeated list flags) and its error texts matters more here
// than what a generic parser offers.

export type FlagKind = 'bool' | 'string' | 'list' | 'int';

export interface FlagSpec {
  long: string;
  short?: string;
  kind: FlagKind;
  def?: unknown;
  usage?: string;
  /** The value name shown in help (docker's `--memory bytes`). */
  valueName?: string;
  /** Converts/validates a value; throw Error(msg) for `invalid argument "v" for "-m, --memory" flag: msg`. */
  convert?: (v: string) => unknown;
  hidden?: boolean;
}

export interface CommandSpec {
  /** Full command path without the program name, e.g. 'run' or 'image ls'. */
  path: string;
  usage: string;
  description: string;
  flags: FlagSpec[];
  /** false: options end at the first positional argument (run, exec, create). */
  interspersed?: boolean;
  minArgs?: number;
  maxArgs?: number;
  aliases?: string[];
}

export class UsageError extends Error {
  constructor(message: string, readonly spec: CommandSpec, readonly code = 125, readonly withUsage = false) {
    super(message);
  }
}

export interface Parsed {
  opts: Record<string, any>;
  args: string[];
  /** Flags the user actually gave (long names). */
  changed: Set<string>;
  help: boolean;
}

export function flagDisplay(f: FlagSpec): string {
  return f.short ? `-${f.short}, --${f.long}` : `--${f.long}`;
}

export function parseFlags(spec: CommandSpec, argv: string[]): Parsed {
  const opts: Record<string, any> = {};
  const changed = new Set<string>();
  for (const f of spec.flags) {
    opts[f.long] = f.kind === 'list' ? [] : f.def !== undefined ? f.def : f.kind === 'bool' ? false : f.kind === 'int' ? 0 : '';
  }
  const byLong = new Map(spec.flags.map((f) => [f.long, f]));
  const byShort = new Map(spec.flags.filter((f) => f.short).map((f) => [f.short!, f]));
  const args: string[] = [];
  let help = false;
  const interspersed = spec.interspersed !== false;

  const set = (f: FlagSpec, raw: string): void => {
    let v: unknown = raw;
    if (f.kind === 'bool') {
      const b = parseBool(raw);
      if (b === undefined) throw new UsageError(`invalid argument "${raw}" for "${flagDisplay(f)}" flag: strconv.ParseBool: parsing "${raw}": invalid syntax`, spec);
      v = b;
    } else if (f.kind === 'int') {
      if (!/^[-+]?\d+$/.test(raw)) throw new UsageError(`invalid argument "${raw}" for "${flagDisplay(f)}" flag: strconv.ParseInt: parsing "${raw}": invalid syntax`, spec);
      v = Number(raw);
    }
    if (f.convert) {
      try {
        v = f.convert(raw);
      } catch (e) {
        throw new UsageError(`invalid argument "${raw}" for "${flagDisplay(f)}" flag: ${(e as Error).message}`, spec);
      }
    }
    if (f.kind === 'list') opts[f.long].push(v);
    else opts[f.long] = v;
    changed.add(f.long);
  };

  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith('--') && a.length > 2) {
      const eq = a.indexOf('=');
      const name = eq >= 0 ? a.slice(2, eq) : a.slice(2);
      if (name === 'help') {
        help = true;
        continue;
      }
      const f = byLong.get(name);
      if (!f) throw new UsageError(`unknown flag: --${name}`, spec);
      if (eq >= 0) set(f, a.slice(eq + 1));
      else if (f.kind === 'bool') set(f, 'true');
      else {
        if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: --${name}`, spec);
        set(f, argv[++i]);
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      // A run of short flags: -it, -n5, -e=X, -e X
      for (let j = 1; j < a.length; j++) {
        const c = a[j];
        if (c === 'h' && !byShort.has('h')) {
          help = true;
          continue;
        }
        const f = byShort.get(c);
        if (!f) throw new UsageError(`unknown shorthand flag: '${c}' in ${a}`, spec);
        if (f.kind === 'bool') {
          if (a[j + 1] === '=') {
            set(f, a.slice(j + 2));
            break;
          }
          set(f, 'true');
          continue;
        }
        let rest = a.slice(j + 1);
        if (rest.startsWith('=')) rest = rest.slice(1);
        if (rest.length > 0 || a[j + 1] === '=') set(f, rest);
        else {
          if (i + 1 >= argv.length) throw new UsageError(`flag needs an argument: '${c}' in -${c}`, spec);
          set(f, argv[++i]);
        }
        break;
      }
      continue;
    }
    args.push(a);
    if (!interspersed) {
      args.push(...argv.slice(i + 1));
      break;
    }
  }
  return { opts, args, changed, help };
}

export function parseBool(s: string): boolean | undefined {
  if (['1', 't', 'T', 'true', 'TRUE', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'false', 'FALSE', 'False'].includes(s)) return false;
  return undefined;
}

/** Cobra-style argument count check; returns an error message or null. */
export function checkArgs(spec: CommandSpec, args: string[], prog: string): string | null {
  const cmd = `${prog} ${spec.path}`;
  const plural = (n: number): string => (n === 1 ? 'argument' : 'arguments');
  if (spec.minArgs !== undefined && spec.maxArgs !== undefined && spec.minArgs === spec.maxArgs && args.length !== spec.minArgs) {
    return `"${cmd}" requires exactly ${spec.minArgs} ${plural(spec.minArgs)}.`;
  }
  if (spec.minArgs !== undefined && args.length < spec.minArgs) {
    return `"${cmd}" requires at least ${spec.minArgs} ${plural(spec.minArgs)}.`;
  }
  if (spec.maxArgs !== undefined && args.length > spec.maxArgs) {
    if (spec.maxArgs === 0) return `"${cmd}" accepts no arguments.`;
    return `"${cmd}" requires at most ${spec.maxArgs} ${plural(spec.maxArgs)}.`;
  }
  return null;
}

export function helpText(spec: CommandSpec, prog: string): string {
  let out = `\nUsage:  ${prog} ${spec.usage}\n\n${spec.description}\n`;
  if (spec.aliases && spec.aliases.length) out += `\nAliases:\n  ${spec.aliases.join(', ')}\n`;
  const visible = spec.flags.filter((f) => !f.hidden);
  if (visible.length) {
    out += '\nOptions:\n';
    const left = visible.map((f) => {
      const vn = f.kind === 'bool' ? '' : ` ${f.valueName ?? (f.kind === 'list' ? 'list' : f.kind === 'int' ? 'int' : 'string')}`;
      return (f.short ? `  -${f.short}, ` : '      ') + `--${f.long}${vn}`;
    });
    const w = Math.max(...left.map((l) => l.length)) + 3;
    visible.forEach((f, i) => {
      let u = f.usage ?? '';
      if (f.kind !== 'bool' && f.def !== undefined && f.def !== '' && f.def !== 0) u += ` (default ${typeof f.def === 'string' ? `"${f.def}"` : String(f.def)})`;
      else if (f.kind === 'bool' && f.def === true) u += ' (default true)';
      out += left[i].padEnd(w) + u + '\n';
    });
  }
  return out;
}

/** KEY=VALUE flag values (--label, --opt) as a map; a bare KEY maps to "" and a later KEY wins. */
export function keyValueMap(lines: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf('=');
    if (i < 0) out[l] = '';
    else out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}
