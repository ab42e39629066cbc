/**
 * The Dockerfile line grammar, as the reference parser (BuildKit's
 * frontend/dockerfile/parser) reads it: parser directives (`# escape=`,
 * `# syntax=` noted and otherwise ignored), comments, line continuations,
 * JSON (exec) vs shell form, flags (`--from=x`), heredocs. It yields a tree
 * of nodes; variable expansion happens later, per instruction (shell.ts).
 */
import { BerthError } from '../../common/errors';
import { expandWords, isSpace } from './shell';

export interface Heredoc {
  name: string;
  content: string;
  /** Unquoted terminator word: the content is expanded. */
  expand: boolean;
  /** `<<-`: leading tabs are stripped. */
  chomp: boolean;
  fileDescriptor: number;
}

/** One instruction: `value` is the lower-cased name; `next` its arguments. */
export interface Node {
  value: string;
  next: string[];
  /** Nested instruction (ONBUILD's trigger); HEALTHCHECK's command is in `next`. */
  child?: Node;
  flags: string[];
  /** JSON (exec) form. */
  json: boolean;
  /** The line as written (continuations joined). */
  original: string;
  startLine: number;
  endLine: number;
  heredocs: Heredoc[];
}

export interface ParseResult {
  children: Node[];
  escape: string;
  /** `# syntax=` value, if any (noted only). */
  syntax?: string;
  warnings: string[];
}

/** A parse error carrying the (1-based) Dockerfile line it is about. */
export class DockerfileError extends BerthError {
  constructor(message: string, readonly line?: number) { super('invalid-argument', message); }
}

const NOT_STRING_ARRAY = 'when using JSON array syntax, arrays must be comprised of strings only';
const reWhitespace = /[\t\v\f\r ]+/;
const reDirective = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const VALID_DIRECTIVES = new Set(['escape', 'syntax', 'check']);

class Directives {
  escape = '\\';
  syntax?: string;
  private line = 0;
  private done = false;
  private seen = new Set<string>();
  private continuation = continuationRegex('\\');

  get continuationRe(): RegExp { return this.continuation; }

  possibleDirective(line: string): void {
    this.line++;
    if (this.done) return;
    if (this.line === 1 && line.startsWith('#!')) return;
    const m = reDirective.exec(line);
    if (!m) { this.done = true; return; }
    const k = m[1].toLowerCase();
    if (!VALID_DIRECTIVES.has(k)) { this.done = true; return; }
    if (this.seen.has(k)) throw new DockerfileError(`only one ${k} parser directive can be used`);
    this.seen.add(k);
    if (k === 'escape') {
      if (m[2] !== '`' && m[2] !== '\\') throw new DockerfileError(`invalid escape token '${m[2]}' does not match \` or \\`);
      this.escape = m[2];
      this.continuation = continuationRegex(m[2]);
    } else if (k === 'syntax') this.syntax = m[2];
  }
}

function continuationRegex(esc: string): RegExp {
  const e = esc === '\\' ? '\\\\' : esc;
  return new RegExp(`([^${e}])${e}[ \\t]*$|^${e}[ \\t]*$`);
}

const trimLeadingWhitespace = (s: string) => s.replace(/^[ \t]+/, '');
const isComment = (s: string) => trimLeadingWhitespace(s).startsWith('#');

function trimContinuation(line: string, d: Directives): [string, boolean] {
  if (d.continuationRe.test(line)) return [line.replace(d.continuationRe, '$1'), false];
  return [line, true];
}

/** Splits the source into lines the way Go's bufio scanner with scanLines does (keeps nothing of \n / \r\n). */
function splitLines(src: string): string[] {
  if (src === '') return [];
  const lines = src.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return lines.map((l) => l.replace(/\r$/, ''));
}

export function parse(source: string | Buffer): ParseResult {
  let src = typeof source === 'string' ? source : source.toString('utf8');
  if (src.charCodeAt(0) === 0xfeff) src = src.slice(1);
  const d = new Directives();
  const lines = splitLines(src);
  const children: Node[] = [];
  const warnings: string[] = [];
  let i = 0;
  let currentLine = 0;
  const processLine = (raw: string, stripLeft: boolean): string => {
    let token = raw;
    if (stripLeft) token = trimLeadingWhitespace(token);
    try {
      d.possibleDirective(token);
    } catch (err) {
      throw new DockerfileError((err as Error).message, currentLine + 1);
    }
    return isComment(token) ? '' : token;
  };
  while (i < lines.length) {
    const first = processLine(lines[i++], true);
    currentLine++;
    const startLine = currentLine;
    let [line, isEnd] = trimContinuation(first, d);
    if (isEnd && line === '') continue;
    let buf = line;
    let emptyContinuation = false;
    while (!isEnd && i < lines.length) {
      const raw = lines[i++];
      const cont = processLine(raw, false);
      currentLine++;
      if (isComment(raw)) continue;
      if (trimLeadingWhitespace(cont) === '') { emptyContinuation = true; continue; }
      let piece: string;
      [piece, isEnd] = trimContinuation(cont, d);
      buf += piece;
    }
    if (emptyContinuation) warnings.push(`Empty continuation line found in: ${buf}`);
    let child: Node;
    try {
      child = nodeFromLine(buf, d);
    } catch (err) {
      throw new DockerfileError((err as Error).message, startLine);
    }
    child.startLine = startLine;
    if (canContainHeredoc(child) && line.includes('<<')) {
      for (const h of heredocsFromLine(line)) {
        let terminated = false;
        while (i < lines.length) {
          const raw = lines[i++];
          currentLine++;
          const candidate = h.chomp ? raw.replace(/^\t+/, '') : raw;
          if (candidate === h.name) { terminated = true; break; }
          h.content += raw + '\n';
        }
        if (!terminated) throw new DockerfileError('unterminated heredoc', startLine);
        child.heredocs.push(h);
      }
    }
    child.endLine = currentLine;
    children.push(child);
  }
  if (children.length === 0) throw new DockerfileError('file with no instructions', currentLine || undefined);
  return { children, escape: d.escape, syntax: d.syntax, warnings };
}

function canContainHeredoc(n: Node): boolean {
  return (n.value === 'run' || n.value === 'copy' || n.value === 'add') && !n.json;
}

const reHeredoc = /^(\d*)<<(-?)([^<]*)$/;

function heredocsFromLine(line: string): Heredoc[] {
  let words: string[];
  try {
    words = expandWords(line, () => undefined, '\\', { rawQuotes: true, rawEscapes: true });
  } catch {
    return [];
  }
  const out: Heredoc[] = [];
  for (const w of words) {
    const m = reHeredoc.exec(w);
    if (!m || m[3] === '') continue;
    const rest = m[3];
    const plain = expandWords(rest, () => undefined, '\\', { skipUnsetEnv: true });
    if (plain.length !== 1) continue;
    const raw = expandWords(rest, () => undefined, '\\', { skipUnsetEnv: true, rawQuotes: true });
    const count = (s: string) => (s.match(/['"]/g) ?? []).length;
    out.push({
      name: plain[0], content: '', expand: count(plain[0]) === count(raw[0]),
      chomp: m[2] === '-', fileDescriptor: m[1] ? Number(m[1]) : 0,
    });
  }
  return out;
}

function emptyNode(value: string, original: string): Node {
  return { value, next: [], flags: [], json: false, original, startLine: 0, endLine: 0, heredocs: [] };
}

function nodeFromLine(line: string, d: Directives): Node {
  const [cmd, flags, args] = splitCommand(line);
  const node = emptyNode(cmd.toLowerCase(), line);
  node.flags = flags;
  const fill = (r: { next: string[]; json?: boolean; child?: Node }) => {
    node.next = r.next;
    node.json = !!r.json;
    if (r.child) node.child = r.child;
  };
  switch (node.value) {
    case 'add': case 'copy': case 'volume': fill(maybeJsonToList(args)); break;
    case 'arg': fill({ next: parseWords(args, d) }); break;
    case 'cmd': case 'entrypoint': case 'run': case 'shell': fill(maybeJson(args)); break;
    case 'env': fill({ next: nameVal(args, 'ENV', d) }); break;
    case 'label': fill({ next: nameVal(args, 'LABEL', d) }); break;
    case 'expose': case 'from': fill({ next: whitespaceDelimited(args) }); break;
    case 'healthcheck': fill(healthConfig(args)); break;
    case 'maintainer': case 'stopsignal': case 'user': case 'workdir': fill({ next: args === '' ? [] : [args] }); break;
    case 'onbuild': if (args !== '') fill({ next: [], child: nodeFromLine(args, d) }); break;
    default: break; // unknown instructions are reported when dispatched, with their line
  }
  return node;
}

function splitCommand(line: string): [string, string[], string] {
  const parts = line.trim().split(reWhitespace);
  const cmd = parts[0];
  if (parts.length < 2) return [cmd, [], ''];
  const restStart = line.trim().slice(cmd.length).replace(reWhitespace_leading, '');
  const [args, flags] = extractBuilderFlags(restStart);
  return [cmd, flags, args.trim()];
}
const reWhitespace_leading = /^[\t\v\f\r ]+/;

/** Leading `--name=value` words; `--` ends them. */
function extractBuilderFlags(line: string): [string, string[]] {
  const words: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= line.length; pos++) {
    let ch = pos < line.length ? line[pos] : '';
    if (phase === 'spaces') {
      if (pos === line.length) break;
      if (isSpace(ch)) continue;
      if (ch !== '-' || pos + 1 === line.length || line[pos + 1] !== '-') return [line.slice(pos), words];
      phase = 'word';
    }
    if (pos === line.length) {
      if (word !== '--' && (blankOK || word.length > 0)) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (word === '--') return [line.slice(pos), words];
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === '\'' || ch === '"') { quote = ch; blankOK = true; phase = 'quote'; continue; }
      if (ch === '\\') {
        if (pos + 1 === line.length) continue;
        ch = line[++pos];
      }
      word += ch;
      continue;
    }
    // in quote
    if (ch === quote) { phase = 'word'; continue; }
    if (ch === '\\') {
      if (pos + 1 === line.length) { phase = 'word'; continue; }
      ch = line[++pos];
    }
    word += ch;
  }
  return ['', words];
}

function parseJson(rest: string): string[] | 'not-json' | 'not-strings' {
  const s = rest.replace(/^\s+/, '');
  if (!s.startsWith('[')) return 'not-json';
  let v: unknown;
  try { v = JSON.parse(s); } catch { return 'not-json'; }
  if (!Array.isArray(v)) return 'not-json';
  if (!v.every((x) => typeof x === 'string')) return 'not-strings';
  return v as string[];
}

function maybeJson(rest: string): { next: string[]; json?: boolean } {
  if (rest === '') return { next: [] };
  const j = parseJson(rest);
  if (j === 'not-strings') throw new DockerfileError(NOT_STRING_ARRAY);
  if (j !== 'not-json') return { next: j, json: true };
  return { next: [rest] };
}

function maybeJsonToList(rest: string): { next: string[]; json?: boolean } {
  const j = parseJson(rest);
  if (j === 'not-strings') throw new DockerfileError(NOT_STRING_ARRAY);
  if (j !== 'not-json') return { next: j, json: true };
  return { next: whitespaceDelimited(rest) };
}

function whitespaceDelimited(rest: string): string[] {
  if (rest === '') return [];
  return rest.split(reWhitespace);
}

function healthConfig(rest: string): { next: string[]; json?: boolean } {
  let sep = 0;
  while (sep < rest.length && !isSpace(rest[sep])) sep++;
  let next = sep;
  while (next < rest.length && isSpace(rest[next])) next++;
  if (sep === 0) return { next: [] };
  const cmd = maybeJson(rest.slice(next));
  return { next: [rest.slice(0, sep), ...cmd.next], json: cmd.json };
}

/**
 * `KEY=VALUE ...` or the legacy `KEY VALUE`: returns triples key, value,
 * separator ('=' or '') as the reference parser's node chain.
 */
function nameVal(rest: string, key: string, d: Directives): string[] {
  const words = parseWords(rest, d);
  if (words.length === 0) return [];
  if (!words[0].includes('=')) {
    const parts = splitN(rest, 2);
    if (parts.length < 2) throw new DockerfileError(`${key} must have two arguments`);
    return [parts[0], parts[1], ''];
  }
  const out: string[] = [];
  for (const w of words) {
    if (!w.includes('=')) throw new DockerfileError(`Syntax error - can't find = in "${w}". Must be of the form: name=value`);
    const i = w.indexOf('=');
    out.push(w.slice(0, i), w.slice(i + 1), '=');
  }
  return out;
}

function splitN(s: string, n: number): string[] {
  const out: string[] = [];
  let rest = s;
  while (out.length < n - 1) {
    const m = reWhitespace.exec(rest);
    if (!m) break;
    out.push(rest.slice(0, m.index));
    rest = rest.slice(m.index + m[0].length);
  }
  out.push(rest);
  return out;
}

/** Words separated by whitespace outside quotes; quotes and escapes are kept (expanded later). */
export function parseWords(rest: string, d: { escape: string }): string[] {
  const chars = [...rest];
  const words: string[] = [];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= chars.length; pos++) {
    let ch = pos < chars.length ? chars[pos] : '';
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (isSpace(ch)) continue;
      phase = 'word';
    }
    if (pos === chars.length) {
      if (blankOK || word.length > 0) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (isSpace(ch)) {
        phase = 'spaces';
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === '\'' || ch === '"') { quote = ch; blankOK = true; phase = 'quote'; }
      if (ch === d.escape) {
        if (pos + 1 === chars.length) continue;
        word += ch;
        ch = chars[++pos];
      }
      word += ch;
      continue;
    }
    if (ch === quote) phase = 'word';
    if (ch === d.escape && quote !== '\'') {
      if (pos + 1 === chars.length) { phase = 'word'; continue; }
      word += ch;
      ch = chars[++pos];
    }
    word += ch;
  }
  return words;
}

/** Go's strconv.Quote for the dump format of the reference tests. */
function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (c === 7) out += '\\a';
    else if (c === 8) out += '\\b';
    else if (c === 12) out += '\\f';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c === 9) out += '\\t';
    else if (c === 11) out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + '"';
}

/** The reference parser's Node.Dump of one instruction (used by the conformance tests). */
export function dumpNode(n: Node): string {
  let s = n.value;
  if (n.flags.length) s += ' [' + n.flags.map(goQuote).join(' ') + ']';
  if (n.child) s += ' (' + dumpNode(n.child) + ')';
  for (const a of n.next) s += ' ' + goQuote(a);
  return s.trim();
}
