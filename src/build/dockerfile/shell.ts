/**
 * Dockerfile word expansion: `$VAR`, `${VAR}`, `${VAR:-x}`, `${VAR:+x}`,
 * `${VAR?msg}`/`${VAR:?msg}`, quotes and the escape character, as BuildKit's
 * shell lexer (frontend/dockerfile/shell/lex.go) applies them. No command
 * substitution or globbing: a Dockerfile is not a shell script.
 */

export type EnvLookup = (name: string) => string | undefined;

export interface LexOptions {
  /** Keep quote characters in the result (heredoc detection). */
  rawQuotes?: boolean;
  /** Keep escape characters in the result. */
  rawEscapes?: boolean;
  /** Leave `$UNSET` as written instead of expanding it to ''. */
  skipUnsetEnv?: boolean;
}

export class ExpansionError extends Error {}

const EOF = -1;

/** Go's unicode.IsSpace for the characters a Dockerfile can contain. */
export function isSpace(ch: string): boolean {
  return /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u.test(ch);
}

const isDigit = (ch: string) => /^\p{Nd}$/u.test(ch);
const isLetter = (ch: string) => /^\p{L}$/u.test(ch);
const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);

class Words {
  word = '';
  words: string[] = [];
  inWord = false;
  addChar(ch: string): void {
    if (isSpace(ch) && this.inWord) {
      if (this.word.length !== 0) {
        this.words.push(this.word);
        this.word = '';
        this.inWord = false;
      }
    } else if (!isSpace(ch)) this.addRawChar(ch);
  }
  addRawChar(ch: string): void { this.word += ch; this.inWord = true; }
  addString(s: string): void { for (const ch of s) this.addChar(ch); }
  addRawString(s: string): void { this.word += s; this.inWord = true; }
  get(): string[] {
    if (this.word.length > 0) { this.words.push(this.word); this.word = ''; this.inWord = false; }
    return this.words;
  }
}

class ShellWord {
  private chars: string[];
  private pos = 0;
  private readonly rawEscapes: boolean;

  constructor(src: string, private env: EnvLookup, private escape: string, private opts: LexOptions) {
    this.chars = [...src];
    this.rawEscapes = !!opts.rawEscapes;
  }

  private peek(): string | typeof EOF { return this.pos < this.chars.length ? this.chars[this.pos] : EOF; }
  private next(): string | typeof EOF { return this.pos < this.chars.length ? this.chars[this.pos++] : EOF; }

  process(stop: string | typeof EOF = EOF): { word: string; words: string[] } {
    let result = '';
    const words = new Words();
    {
      while (this.peek() !== EOF) {
        const ch = this.peek() as string;
        if (stop !== EOF && ch === stop) {
          this.next();
          return { word: result, words: words.get() };
        }
        if (ch === '$' || ch === '\'' || ch === '"') {
          const tmp = ch === '$' ? this.dollar() : ch === '\'' ? this.singleQuote() : this.doubleQuote();
          result += tmp;
          if (ch === '$') words.addString(tmp); else words.addRawString(tmp);
          continue;
        }
        let c = this.next() as string;
        if (c === this.escape) {
          if (this.rawEscapes) { words.addRawChar(c); result += c; }
          const n = this.next();
          if (n === EOF) break;
          c = n;
          words.addRawChar(c);
        } else {
          words.addChar(c);
        }
        result += c;
      }
      if (stop !== EOF) throw new ExpansionError(`unexpected end of statement while looking for matching ${stop}`);
      return { word: result, words: words.get() };
    }
  }

  private singleQuote(): string {
    let result = '';
    const open = this.next() as string;
    if (this.opts.rawQuotes) result += open;
    for (;;) {
      const ch = this.next();
      if (ch === EOF) throw new ExpansionError('unexpected end of statement while looking for matching single-quote');
      if (ch === '\'') {
        if (this.opts.rawQuotes) result += ch;
        return result;
      }
      result += ch;
    }
  }

  private doubleQuote(): string {
    let result = '';
    const open = this.next() as string;
    if (this.opts.rawQuotes) result += open;
    for (;;) {
      const p = this.peek();
      if (p === EOF) throw new ExpansionError('unexpected end of statement while looking for matching double-quote');
      if (p === '"') {
        const ch = this.next() as string;
        if (this.opts.rawQuotes) result += ch;
        return result;
      }
      if (p === '$') { result += this.dollar(); continue; }
      let ch = this.next() as string;
      if (ch === this.escape) {
        if (this.rawEscapes) result += ch;
        const q = this.peek();
        if (q === EOF) continue;
        if (q === '"' || q === '$' || q === this.escape) ch = this.next() as string;
      }
      result += ch;
    }
  }

  private lookup(name: string): string | undefined { return this.env(name); }

  private dollar(): string {
    this.next();
    if (this.peek() !== '{') {
      const name = this.name();
      if (name === '') return '$';
      const v = this.lookup(name);
      if (v === undefined && this.opts.skipUnsetEnv) return '$' + name;
      return v ?? '';
    }
    this.next();
    const p = this.peek();
    if (p === EOF) throw new ExpansionError("syntax error: missing '}'");
    if (p === '{' || p === '}' || p === ':') throw new ExpansionError('syntax error: bad substitution');
    const name = this.name();
    const ch = this.next();
    if (ch === '}') {
      const v = this.lookup(name);
      if (v === undefined && this.opts.skipUnsetEnv) return `\${${name}}`;
      return v ?? '';
    }
    if (ch === '?') {
      const word = this.stopOn('}');
      const v = this.lookup(name);
      if (v === undefined) throw new ExpansionError(`${name}: ${word || 'is not allowed to be unset'}`);
      return v;
    }
    if (ch === ':') {
      const modifier = this.next();
      const word = this.stopOn('}');
      const v = this.lookup(name);
      if (this.opts.skipUnsetEnv && v === undefined) return `\${${name}:${modifier === EOF ? '' : modifier}${word}}`;
      const value = v ?? '';
      switch (modifier) {
        case '+': return value !== '' ? word : '';
        case '-': return value === '' ? word : value;
        case '?':
          if (v === undefined) throw new ExpansionError(`${name}: ${word || 'is not allowed to be unset'}`);
          if (value === '') throw new ExpansionError(`${name}: ${word || 'is not allowed to be empty'}`);
          return value;
        default: throw new ExpansionError(`unsupported modifier (${modifier === EOF ? '' : modifier}) in substitution`);
      }
    }
    throw new ExpansionError("missing ':' in substitution");
  }

  private stopOn(stop: string): string {
    try {
      return this.process(stop).word;
    } catch (err) {
      if (this.peek() === EOF) throw new ExpansionError("syntax error: missing '}'");
      throw err;
    }
  }

  private name(): string {
    let name = '';
    while (this.peek() !== EOF) {
      const ch = this.peek() as string;
      if (name.length === 0 && isDigit(ch)) {
        while (this.peek() !== EOF && isDigit(this.peek() as string)) name += this.next();
        return name;
      }
      if (name.length === 0 && SPECIAL_PARAMS.has(ch)) return this.next() as string;
      if (!isLetter(ch) && !isDigit(ch) && ch !== '_') break;
      name += this.next();
    }
    return name;
  }
}

function run(word: string, env: EnvLookup, escape: string, opts: LexOptions) {
  try {
    return new ShellWord(word, env, escape, opts).process();
  } catch (err) {
    if (err instanceof ExpansionError) throw new ExpansionError(`failed to process "${word}": ${err.message}`);
    throw err;
  }
}

/** Expands one word (quotes removed, no splitting). Throws ExpansionError. */
export function expandWord(word: string, env: EnvLookup, escape = '\\', opts: LexOptions = {}): string {
  return run(word, env, escape, opts).word;
}

/** Expands and splits into words as a shell would (quoted whitespace kept). Throws ExpansionError. */
export function expandWords(word: string, env: EnvLookup, escape = '\\', opts: LexOptions = {}): string[] {
  return run(word, env, escape, opts).words;
}

/** An EnvLookup over `KEY=VALUE` strings (the last one of a key wins). */
export function envLookup(env: string[] | Map<string, string>): EnvLookup {
  if (env instanceof Map) return (k) => env.get(k);
  const m = new Map<string, string>();
  for (const e of env) {
    const i = e.indexOf('=');
    if (i > 0) m.set(e.slice(0, i), e.slice(i + 1)); else if (i < 0) m.set(e, '');
  }
  return (k) => m.get(k);
}
