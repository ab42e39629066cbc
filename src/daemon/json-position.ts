/**
 * Where a JSON text first breaks the grammar (RFC 8259), as a character offset. Node 20's
 * JSON.parse does not say where for most errors; daemon.json errors must name line and column.
 * Only called after JSON.parse has failed.
 */
export function jsonErrorOffset(text: string): { offset: number; expected: string } {
  let i = 0;
  const ws = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i])) i++;
  };
  class Stop {
    constructor(readonly expected: string) {}
  }
  const fail = (expected: string): never => {
    throw new Stop(expected);
  };
  const literal = (word: string) => {
    for (const ch of word) {
      if (text[i] !== ch) fail(`"${word}"`);
      i++;
    }
  };
  const string = () => {
    if (text[i] !== '"') fail('a double-quoted string');
    i++;
    for (;;) {
      if (i >= text.length) fail('a closing quote');
      const ch = text[i];
      if (ch === '"') {
        i++;
        return;
      }
      if (ch < ' ') fail('no control character inside a string');
      if (ch === '\\') {
        i++;
        if ('"\\/bfnrt'.includes(text[i] ?? '')) i++;
        else if (text[i] === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) i += 5;
        else fail('a valid escape sequence');
      } else i++;
    }
  };
  const number = () => {
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i));
    if (!m) fail('a value');
    i += m![0].length;
  };
  const value = (): void => {
    ws();
    const ch = text[i];
    if (ch === '{') {
      i++;
      ws();
      if (text[i] === '}') {
        i++;
        return;
      }
      for (;;) {
        ws();
        string();
        ws();
        if (text[i] !== ':') fail('":" after a key');
        i++;
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return;
        }
        fail('"," or "}"');
      }
    }
    if (ch === '[') {
      i++;
      ws();
      if (text[i] === ']') {
        i++;
        return;
      }
      for (;;) {
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return;
        }
        fail('"," or "]"');
      }
    }
    if (ch === '"') return string();
    if (ch === 't') return literal('true');
    if (ch === 'f') return literal('false');
    if (ch === 'n') return literal('null');
    return number();
  };
  try {
    value();
    ws();
    if (i < text.length) fail('the end of the document');
  } catch (err) {
    if (err instanceof Stop) return { offset: i, expected: err.expected };
    throw err;
  }
  return { offset: text.length, expected: 'valid JSON' };
}
