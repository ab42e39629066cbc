/**
 * `.dockerignore` as Docker reads it (moby/patternmatcher): one pattern per
 * line, `#` comments, `!` re-includes, `**` any number of directories; the
 * last matching pattern decides, and a pattern that matches a directory
 * matches everything below it. Used by the CLI (what goes in the context tar)
 * and by the daemon (what COPY/ADD may see).
 */
import * as path from 'node:path';

interface Pattern { re: RegExp; exclusion: boolean; raw: string }

export function readDockerignore(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (line.startsWith('#')) continue;
    let p = line.trim();
    if (!p) continue;
    let neg = false;
    if (p.startsWith('!')) { neg = true; p = p.slice(1).trim(); }
    if (p) {
      p = path.posix.normalize(p);
      if (p.startsWith('/')) p = p.slice(1) || '.';
    }
    if (p.endsWith('/') && p.length > 1) p = p.slice(0, -1);
    out.push((neg ? '!' : '') + p);
  }
  return out;
}

function toRegExp(pattern: string): RegExp {
  let re = '^';
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (ch === '*') {
      if (chars[i + 1] === '*') {
        i++;
        // `**/` at a boundary also matches no directory at all
        if (chars[i + 1] === '/') { i++; re += '(?:.*/)?'; }
        else re += '.*';
      } else re += '[^/]*';
    } else if (ch === '?') re += '[^/]';
    else if (ch === '[') {
      const end = chars.indexOf(']', i + 1);
      if (end < 0) { re += '\\['; continue; }
      let cls = chars.slice(i + 1, end).join('');
      if (cls.startsWith('^') || cls.startsWith('!')) cls = '^' + cls.slice(1);
      re += `[${cls.replace(/\\/g, '\\\\')}]`;
      i = end;
    } else if (ch === '\\' && i + 1 < chars.length) {
      re += chars[++i].replace(/[.+^${}()|[\]\\*?]/g, '\\$&');
    } else re += ch.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$');
}

export class IgnoreMatcher {
  private readonly patterns: Pattern[];
  constructor(lines: string[]) {
    this.patterns = lines.filter((l) => l !== '' && l !== '!').map((l) => {
      const exclusion = l.startsWith('!');
      const raw = exclusion ? l.slice(1) : l;
      return { re: toRegExp(raw), exclusion, raw };
    });
  }

  get empty(): boolean { return this.patterns.length === 0; }

  /** True when `rel` (context-relative, `/`-separated) is excluded. */
  excluded(rel: string): boolean {
    const file = path.posix.normalize(rel).replace(/^\.\//, '');
    const parents: string[] = [];
    const parts = file.split('/');
    for (let i = 1; i < parts.length; i++) parents.push(parts.slice(0, i).join('/'));
    let matched = false;
    for (const p of this.patterns) {
      if (p.exclusion !== matched) continue; // only a pattern of the other kind can change the answer
      if (p.re.test(file) || parents.some((d) => p.re.test(d))) matched = !p.exclusion;
    }
    return matched;
  }

  /**
   * Whether a directory must still be walked although it is excluded: some
   * `!` pattern may re-include something below it.
   */
  mayReinclude(dir: string): boolean {
    return this.patterns.some((p) => p.exclusion && (p.raw.startsWith(dir + '/') || p.raw.includes('*')));
  }
}
