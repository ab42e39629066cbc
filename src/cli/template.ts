// A subset of Go's text/template, as used by docker's --format flags: fields and
// method-like fields with arguments, variables, pipelines, if/else/range/with/end,
// the Go builtins and docker's extra functions (json, join, split, lower, upper, title,
// pad, truncate). Values print the way Go's fmt %v prints them.
// One file (~580 lines): lexer, parser and evaluator of one small language share its node
// types and are only ever used together.

export class TemplateError extends Error {}

type Node =
  | { t: 'text'; s: string }
  | { t: 'action'; pipe: Pipe }
  | { t: 'if' | 'with'; pipe: Pipe; list: Node[]; elseList: Node[] | null }
  | { t: 'range'; pipe: Pipe; list: Node[]; elseList: Node[] | null };

interface Pipe {
  decl: string[];
  cmds: Arg[][];
}

type Arg =
  | { t: 'field'; base: 'dot' | 'var' | 'pipe'; name?: string; pipe?: Pipe; chain: string[] }
  | { t: 'lit'; v: unknown }
  | { t: 'ident'; name: string };

interface Tok {
  k: 'field' | 'var' | 'ident' | 'str' | 'num' | 'bool' | 'nil' | '|' | '(' | ')' | ':=' | '=' | ',' | 'dot';
  v: string;
}

function lexAction(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '|' || c === '(' || c === ')' || c === ',' || c === '=') {
      toks.push({ k: c, v: c });
      i++;
      continue;
    }
    if (c === ':' && src[i + 1] === '=') {
      toks.push({ k: ':=', v: ':=' });
      i += 2;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      if (j >= src.length) throw new TemplateError('unterminated quoted string');
      toks.push({ k: 'str', v: JSON.parse(src.slice(i, j + 1).replace(/\\x([0-9a-fA-F]{2})/g, '\\u00$1').replace(/\\'/g, "'")) });
      i = j + 1;
      continue;
    }
    if (c === '`') {
      const j = src.indexOf('`', i + 1);
      if (j < 0) throw new TemplateError('unterminated raw quoted string');
      toks.push({ k: 'str', v: src.slice(i + 1, j) });
      i = j + 1;
      continue;
    }
    if (c === '.' || c === '$') {
      const m = /^[.$][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*/.exec(src.slice(i))!;
      const s = m[0];
      if (c === '.' && s === '.') toks.push({ k: 'dot', v: '.' });
      else if (c === '.') toks.push({ k: 'field', v: s });
      else toks.push({ k: 'var', v: s });
      i += s.length;
      continue;
    }
    const num = /^[-+]?(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)/.exec(src.slice(i));
    if (num && /[-+\d]/.test(c)) {
      toks.push({ k: 'num', v: num[0] });
      i += num[0].length;
      continue;
    }
    const id = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
    if (id) {
      const w = id[0];
      if (w === 'true' || w === 'false') toks.push({ k: 'bool', v: w });
      else if (w === 'nil') toks.push({ k: 'nil', v: w });
      else toks.push({ k: 'ident', v: w });
      i += w.length;
      // A field chain right after a parenthesis/identifier is not supported beyond this.
      continue;
    }
    throw new TemplateError(`unexpected "${c}" in command`);
  }
  return toks;
}

class ActionParser {
  private p = 0;
  constructor(private readonly toks: Tok[]) {}
  done(): boolean {
    return this.p >= this.toks.length;
  }
  peek(): Tok | undefined {
    return this.toks[this.p];
  }
  pipeline(): Pipe {
    const decl: string[] = [];
    // $x := ... or $i, $e := ...
    const save = this.p;
    if (this.peek()?.k === 'var') {
      const names = [this.toks[this.p].v];
      let q = this.p + 1;
      if (this.toks[q]?.k === ',' && this.toks[q + 1]?.k === 'var') {
        names.push(this.toks[q + 1].v);
        q += 2;
      }
      if (this.toks[q]?.k === ':=' || this.toks[q]?.k === '=') {
        decl.push(...names);
        this.p = q + 1;
      } else this.p = save;
    }
    const cmds: Arg[][] = [];
    for (;;) {
      const cmd: Arg[] = [];
      while (!this.done() && this.peek()!.k !== '|' && this.peek()!.k !== ')') cmd.push(this.operand());
      if (cmd.length === 0) throw new TemplateError('missing value for command');
      cmds.push(cmd);
      if (this.peek()?.k === '|') {
        this.p++;
        continue;
      }
      break;
    }
    return { decl, cmds };
  }
  operand(): Arg {
    const t = this.toks[this.p++];
    switch (t.k) {
      case 'dot':
        return { t: 'field', base: 'dot', chain: [] };
      case 'field':
        return { t: 'field', base: 'dot', chain: t.v.slice(1).split('.') };
      case 'var': {
        const [name, ...chain] = t.v.split('.');
        return { t: 'field', base: 'var', name, chain };
      }
      case 'str':
        return { t: 'lit', v: t.v };
      case 'num':
        return { t: 'lit', v: Number(t.v) };
      case 'bool':
        return { t: 'lit', v: t.v === 'true' };
      case 'nil':
        return { t: 'lit', v: null };
      case 'ident':
        return { t: 'ident', name: t.v };
      case '(': {
        const pipe = this.pipeline();
        if (this.toks[this.p++]?.k !== ')') throw new TemplateError('unclosed left paren');
        // (pipe).Field chains
        const next = this.peek();
        if (next?.k === 'field') {
          this.p++;
          return { t: 'field', base: 'pipe', pipe, chain: next.v.slice(1).split('.') };
        }
        return { t: 'field', base: 'pipe', pipe, chain: [] };
      }
      default:
        throw new TemplateError(`unexpected "${t.v}" in operand`);
    }
  }
}

export function parseTemplate(src: string): Node[] {
  // Split into text and actions, honouring {{- and -}} trimming and comments.
  type Raw = { text: string } | { action: string };
  const raws: Raw[] = [];
  let i = 0;
  let trimNext = false;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    let text = open < 0 ? src.slice(i) : src.slice(i, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open < 0) {
      if (text) raws.push({ text });
      break;
    }
    let start = open + 2;
    if (src[start] === '-' && /\s/.test(src[start + 1] ?? '')) {
      text = text.replace(/\s+$/, '');
      start += 1;
    }
    if (text) raws.push({ text });
    let close = -1;
    // find the matching }} outside quotes
    let q: string | null = null;
    for (let j = start; j < src.length - 1; j++) {
      const c = src[j];
      if (q) {
        if (c === '\\' && q === '"') j++;
        else if (c === q) q = null;
      } else if (c === '"' || c === '`') q = c;
      else if (c === '}' && src[j + 1] === '}') {
        close = j;
        break;
      }
    }
    if (close < 0) throw new TemplateError('template: :1: unclosed action');
    let body = src.slice(start, close);
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1);
      trimNext = true;
    }
    raws.push({ action: body.trim() });
    i = close + 2;
  }
  let k = 0;
  const pipeOf = (s: string): Pipe => {
    const toks = lexAction(s);
    const ap = new ActionParser(toks);
    const pipe = ap.pipeline();
    if (!ap.done()) throw new TemplateError(`template: :1: unexpected "${ap.peek()!.v}" in command`);
    return pipe;
  };
  return parseListElseIf([]).list;

  function parseListElseIf(terminators: string[]): { list: Node[]; end: string } {
    const list: Node[] = [];
    while (k < raws.length) {
      const r = raws[k++];
      if ('text' in r) {
        list.push({ t: 'text', s: r.text });
        continue;
      }
      const a = r.action;
      if (a.startsWith('/*')) continue;
      const word = /^[a-z]+/.exec(a)?.[0] ?? '';
      if (word === 'end' || word === 'else') {
        if (!terminators.includes(word)) throw new TemplateError(`template: :1: unexpected {{${word}}}`);
        if (word === 'else') return { list, end: a };
        return { list, end: 'end' };
      }
      if (word === 'if' || word === 'range' || word === 'with') {
        list.push(parseControl(word, a.slice(word.length)));
        continue;
      }
      if (word === 'define' || word === 'template' || word === 'block') throw new TemplateError(`template: :1: {{${word}}} is not supported`);
      list.push({ t: 'action', pipe: pipeOf(a) });
    }
    if (terminators.length) throw new TemplateError('template: :1: unexpected EOF');
    return { list, end: '' };
  }
  function parseControl(word: 'if' | 'range' | 'with', pipeSrc: string): Node {
    const pipe = pipeOf(pipeSrc);
    const body = parseListElseIf(['end', 'else']);
    let elseList: Node[] | null = null;
    if (body.end !== 'end') {
      const after = body.end.slice(4).trim();
      if (after.startsWith('if ') || after.startsWith('with ')) {
        const w2 = after.startsWith('if ') ? 'if' : 'with';
        // {{else if x}} ... {{end}}: a nested control sharing the outer {{end}}.
        elseList = [parseControl(w2, after.slice(w2.length))];
      } else {
        elseList = parseListElseIf(['end']).list;
      }
    }
    return { t: word, pipe, list: body.list, elseList } as Node;
  }
}

/** A compiled template. */
export class Template {
  private readonly nodes: Node[];
  constructor(readonly src: string) {
    try {
      this.nodes = parseTemplate(src);
    } catch (e) {
      const m = (e as Error).message;
      throw new TemplateError(m.startsWith('template:') ? m : `template: :1: ${m}`);
    }
  }
  execute(data: unknown): string {
    const scope: Array<Map<string, unknown>> = [new Map([['$', data]])];
    let out = '';
    const emit = (s: string): void => {
      out += s;
    };
    walk(this.nodes, data, scope, emit);
    return out;
  }
}

type Emit = (s: string) => void;

function lookupVar(scope: Array<Map<string, unknown>>, name: string): unknown {
  for (let i = scope.length - 1; i >= 0; i--) if (scope[i].has(name)) return scope[i].get(name);
  throw new TemplateError(`template: :1: undefined variable: ${name}`);
}

function walk(nodes: Node[], dot: unknown, scope: Array<Map<string, unknown>>, emit: Emit): void {
  for (const n of nodes) {
    switch (n.t) {
      case 'text':
        emit(n.s);
        break;
      case 'action': {
        const v = evalPipe(n.pipe, dot, scope);
        if (n.pipe.decl.length === 0) emit(printValue(v));
        break;
      }
      case 'if':
      case 'with': {
        scope.push(new Map());
        const v = evalPipe(n.pipe, dot, scope);
        if (truth(v)) walk(n.list, n.t === 'with' ? v : dot, scope, emit);
        else if (n.elseList) walk(n.elseList, dot, scope, emit);
        scope.pop();
        break;
      }
      case 'range': {
        scope.push(new Map());
        const decl = n.pipe.decl;
        const v = evalPipe({ decl: [], cmds: n.pipe.cmds }, dot, scope);
        const items: Array<[unknown, unknown]> = [];
        if (Array.isArray(v)) v.forEach((e, i) => items.push([i, e]));
        else if (v && typeof v === 'object') for (const key of Object.keys(v).sort()) items.push([key, (v as Record<string, unknown>)[key]]);
        else if (typeof v === 'number') for (let i = 0; i < v; i++) items.push([i, i]);
        else if (v !== null && v !== undefined) throw new TemplateError(`template: :1: range can't iterate over ${printValue(v)}`);
        if (items.length === 0) {
          if (n.elseList) walk(n.elseList, dot, scope, emit);
        } else
          for (const [key, e] of items) {
            if (decl.length === 1) scope[scope.length - 1].set(decl[0], e);
            else if (decl.length === 2) {
              scope[scope.length - 1].set(decl[0], key);
              scope[scope.length - 1].set(decl[1], e);
            }
            walk(n.list, e, scope, emit);
          }
        scope.pop();
        break;
      }
    }
  }
}

function evalPipe(p: Pipe, dot: unknown, scope: Array<Map<string, unknown>>): unknown {
  let val: unknown;
  let first = true;
  for (const cmd of p.cmds) {
    val = evalCmd(cmd, dot, scope, first ? undefined : { v: val });
    first = false;
  }
  if (p.decl.length) scope[scope.length - 1].set(p.decl[0], val);
  return val;
}

function evalArg(a: Arg, dot: unknown, scope: Array<Map<string, unknown>>): unknown {
  switch (a.t) {
    case 'lit':
      return a.v;
    case 'ident':
      if (!(a.name in funcs)) throw new TemplateError(`template: :1: function "${a.name}" not defined`);
      return callFunc(a.name, []);
    case 'field': {
      let base: unknown = a.base === 'dot' ? dot : a.base === 'var' ? lookupVar(scope, a.name!) : evalPipe(a.pipe!, dot, scope);
      for (const f of a.chain) base = field(base, f, []);
      return base;
    }
  }
}

function evalCmd(cmd: Arg[], dot: unknown, scope: Array<Map<string, unknown>>, piped?: { v: unknown }): unknown {
  const head = cmd[0];
  const args = cmd.slice(1).map((a) => evalArg(a, dot, scope));
  if (piped) args.push(piped.v);
  if (head.t === 'ident') {
    if (!(head.name in funcs)) throw new TemplateError(`template: :1: function "${head.name}" not defined`);
    return callFunc(head.name, args);
  }
  if (head.t === 'field' && head.chain.length > 0 && args.length > 0) {
    // Method call with arguments: .Label "key"
    let base: unknown = head.base === 'dot' ? dot : head.base === 'var' ? lookupVar(scope, head.name!) : evalPipe(head.pipe!, dot, scope);
    for (const f of head.chain.slice(0, -1)) base = field(base, f, []);
    return field(base, head.chain[head.chain.length - 1], args);
  }
  if (args.length > 0) throw new TemplateError(`template: :1: can't give argument to non-function ${printValue(evalArg(head, dot, scope))}`);
  return evalArg(head, dot, scope);
}

function field(base: unknown, name: string, args: unknown[]): unknown {
  if (base === null || base === undefined) {
    if (base === undefined) return undefined;
    throw new TemplateError(`template: :1: nil pointer evaluating interface {}.${name}`);
  }
  if (typeof base !== 'object') throw new TemplateError(`template: :1: can't evaluate field ${name} in type ${goType(base)}`);
  const v = (base as Record<string, unknown>)[name];
  if (typeof v === 'function') return (v as (...a: unknown[]) => unknown).apply(base, args);
  if (args.length) throw new TemplateError(`template: :1: ${name} has arguments but cannot be invoked as function`);
  if (Array.isArray(base)) throw new TemplateError(`template: :1: can't evaluate field ${name} in type []interface {}`);
  return Object.prototype.hasOwnProperty.call(base, name) ? v : undefined;
}

function goType(v: unknown): string {
  if (typeof v === 'string') return 'string';
  if (typeof v === 'number') return Number.isInteger(v) ? 'int' : 'float64';
  if (typeof v === 'boolean') return 'bool';
  return 'interface {}';
}

export function truth(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

/** Go's fmt %v rendering of a decoded-JSON value. */
export function printValue(v: unknown, nested = false): string {
  if (v === undefined) return '<no value>';
  if (v === null) return nested ? '<nil>' : '[]';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'boolean') return String(v);
  if (typeof v === 'function') return printValue((v as () => unknown)());
  if (Array.isArray(v)) return '[' + v.map((e) => printValue(e, true)).join(' ') + ']';
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return 'map[' + Object.keys(o).sort().map((k) => `${k}:${printValue(o[k], true)}`).join(' ') + ']';
  }
  return String(v);
}

function formatNumber(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  // Go %v for float64 is %g with the shortest representation.
  const s = String(n);
  const m = /^(-?[\d.]+)e([-+])(\d+)$/.exec(s);
  if (m) return `${m[1]}e${m[2]}${m[3].padStart(2, '0')}`;
  return s;
}

function cmpArgs(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  throw new TemplateError('template: :1: incompatible types for comparison');
}

function printfImpl(fmt: string, args: unknown[]): string {
  let ai = 0;
  return fmt.replace(/%([-+ 0#]*)(\d+)?(?:\.(\d+))?([%svdqtxXf])/g, (_m, flags: string, width: string | undefined, prec: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    const a = args[ai++];
    let s: string;
    switch (verb) {
      case 'q':
        s = JSON.stringify(printValue(a));
        break;
      case 'd':
        s = String(Math.trunc(Number(a)));
        break;
      case 'x':
      case 'X':
        s = typeof a === 'number' ? a.toString(16) : Buffer.from(String(a)).toString('hex');
        if (verb === 'X') s = s.toUpperCase();
        break;
      case 'f':
        s = Number(a).toFixed(prec ? Number(prec) : 6);
        break;
      default:
        s = printValue(a);
        if (prec && verb === 's') s = s.slice(0, Number(prec));
    }
    if (width) {
      const w = Number(width);
      s = flags.includes('-') ? s.padEnd(w) : s.padStart(w, flags.includes('0') && verb !== 's' ? '0' : ' ');
    }
    return s;
  });
}

function goLen(v: unknown): number {
  if (typeof v === 'string') return Buffer.byteLength(v);
  if (Array.isArray(v)) return v.length;
  if (v && typeof v === 'object') return Object.keys(v).length;
  throw new TemplateError(`template: :1: error calling len: len of type ${goType(v)}`);
}

/**
 * Marks a row of a docker formatter context (ps, images, stats, system df...).
 * docker marshals such a row as a Go map: keys in byte order and <, >, & escaped
 * (json.Marshal's HTML escaping), unlike `{{json .State}}` of inspect data.
 */
export const FORMATTER_ROW = Symbol('formatter row');

function goMarshalRow(row: Record<string, unknown>): string {
  const sorted: Record<string, unknown> = {};
  for (const k of Object.keys(row).sort()) sorted[k] = row[k];
  // Inside JSON text these characters only occur in strings, where the escapes are equivalent.
  return JSON.stringify(sorted).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const funcs: Record<string, (...a: any[]) => unknown> = {
  json: (v: unknown) => {
    if (v === undefined) return 'null';
    if (v && typeof v === 'object' && (v as Record<symbol, unknown>)[FORMATTER_ROW]) return goMarshalRow(v as Record<string, unknown>);
    return JSON.stringify(v);
  },
  split: (s: string, sep: string) => String(s).split(sep),
  join: (arr: unknown, sep: string) => (Array.isArray(arr) ? arr.map((e) => printValue(e, true)).join(sep) : ''),
  title: (s: string) => String(s).replace(/(^|[^A-Za-z0-9_'])([a-z])/g, (_m, p: string, c: string) => p + c.toUpperCase()),
  lower: (s: string) => String(s).toLowerCase(),
  upper: (s: string) => String(s).toUpperCase(),
  pad: (s: string, l: number, r: number) => ' '.repeat(l) + String(s) + ' '.repeat(r),
  truncate: (s: string, n: number) => Array.from(String(s)).slice(0, n).join(''),
  print: (...a: unknown[]) => goSprint(a),
  println: (...a: unknown[]) => a.map((x) => printValue(x, true)).join(' ') + '\n',
  printf: (fmt: string, ...a: unknown[]) => printfImpl(fmt, a),
  len: goLen,
  index: (v: unknown, ...keys: unknown[]) => {
    let cur = v;
    for (const k of keys) {
      if (cur === null || cur === undefined) return undefined;
      if (Array.isArray(cur)) {
        if (typeof k !== 'number' || k < 0 || k >= cur.length) throw new TemplateError(`template: :1: error calling index: index out of range: ${String(k)}`);
        cur = cur[k];
      } else if (typeof cur === 'object') {
        const o = cur as Record<string, unknown>;
        cur = Object.prototype.hasOwnProperty.call(o, String(k)) ? o[String(k)] : undefined;
        if (cur === undefined) return undefined;
      } else throw new TemplateError(`template: :1: error calling index: can't index item of type ${goType(cur)}`);
    }
    return cur;
  },
  slice: (v: unknown, i?: number, j?: number) => {
    if (typeof v === 'string' || Array.isArray(v)) return v.slice(i ?? 0, j);
    throw new TemplateError('template: :1: error calling slice: can\'t slice item');
  },
  eq: (a: unknown, ...bs: unknown[]) => bs.some((b) => a === b),
  ne: (a: unknown, b: unknown) => a !== b,
  lt: (a: unknown, b: unknown) => cmpArgs(a, b) < 0,
  le: (a: unknown, b: unknown) => cmpArgs(a, b) <= 0,
  gt: (a: unknown, b: unknown) => cmpArgs(a, b) > 0,
  ge: (a: unknown, b: unknown) => cmpArgs(a, b) >= 0,
  not: (a: unknown) => !truth(a),
  and: (...a: unknown[]) => {
    for (const x of a) if (!truth(x)) return x;
    return a[a.length - 1];
  },
  or: (...a: unknown[]) => {
    for (const x of a) if (truth(x)) return x;
    return a[a.length - 1];
  },
  html: (s: unknown) => printValue(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&#34;').replace(/'/g, '&#39;'),
  urlquery: (s: unknown) => encodeURIComponent(printValue(s)),
  js: (s: unknown) => printValue(s).replace(/[\\'"<>&=]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0').toUpperCase()),
};

/** fmt.Sprint: spaces only between operands when neither is a string. */
function goSprint(a: unknown[]): string {
  let out = '';
  a.forEach((x, i) => {
    if (i > 0 && typeof x !== 'string' && typeof a[i - 1] !== 'string') out += ' ';
    out += printValue(x, true);
  });
  return out;
}

function callFunc(name: string, args: unknown[]): unknown {
  return funcs[name](...args);
}

/** docker's formatter pre-processing: `table ` prefix, and `\t` / `\n` escapes. */
export function prepareFormat(format: string): { table: boolean; body: string } {
  // `--format json` is docker's shorthand for one JSON object per line.
  if (format.trim() === 'json') return { table: false, body: '{{json .}}' };
  let body = format;
  let table = false;
  if (body.startsWith('table')) {
    table = true;
    body = body.slice(5);
  }
  body = body.trim().replace(/\\t/g, '\t').replace(/\\n/g, '\n');
  return { table, body };
}
