// Formatting helpers that reproduce the docker CLI's output (go-units, stringid,
// text/tabwriter, encoding/json Indent) so `berth` output matches `docker` byte for byte.

export { humanDuration } from '../common/duration';

/** Go's %.<p>g formatting (trailing zeros removed, Go-style exponent). */
export function formatG(n: number, precision: number): string {
  if (n === 0) return '0';
  let s = n.toPrecision(precision);
  const ePos = s.indexOf('e');
  let mant = ePos >= 0 ? s.slice(0, ePos) : s;
  if (mant.includes('.')) mant = mant.replace(/0+$/, '').replace(/\.$/, '');
  if (ePos < 0) return mant;
  const exp = Number(s.slice(ePos + 1));
  // Go uses %e form when exp < -4 || exp >= precision, with at least 2 exponent digits.
  const sign = exp < 0 ? '-' : '+';
  const abs = Math.abs(exp);
  s = `${mant}e${sign}${abs < 10 ? '0' + abs : abs}`;
  return s;
}

const decimapAbbrs = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/** go-units HumanSizeWithPrecision (decimal units). */
export function humanSize(size: number, precision = 3): string {
  let i = 0;
  while (size >= 1000 && i < decimapAbbrs.length - 1) {
    size /= 1000;
    i++;
  }
  return `${formatG(size, precision)}${decimapAbbrs[i]}`;
}

/** go-units BytesSize (binary units, 4 significant digits), used by `info`. */
export function bytesSize(size: number): string {
  const abbrs = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];
  let i = 0;
  while (size >= 1024 && i < abbrs.length - 1) {
    size /= 1024;
    i++;
  }
  return `${formatG(size, 4)}${abbrs[i]}`;
}

/** go-units RAMInBytes: binary multipliers, e.g. 512m, 1g, 100kb. Throws `invalid size: '12x'`. */
export function ramInBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(s);
  if (!m) throw new Error(`invalid size: '${s}'`);
  const n = Number(m[1]);
  if (!Number.isFinite(n)) throw new Error(`invalid size: '${s}'`);
  const mult: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };
  const unit = m[2] ? mult[m[2].toLowerCase()] : 1;
  return Math.floor(n * unit);
}

/** go-units FromHumanSize: decimal multipliers (used by --shm-size? no: docker uses RAMInBytes there too). */
export function fromHumanSize(s: string): number {
  const m = /^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[bB]?$/.exec(s);
  if (!m) throw new Error(`invalid size: '${s}'`);
  const mult: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 };
  return Math.floor(Number(m[1]) * (m[2] ? mult[m[2].toLowerCase()] : 1));
}

/** stringid.TruncateID: drop the algorithm prefix, keep 12 characters. */
export function truncateId(id: string): string {
  const i = id.indexOf(':');
  if (i >= 0) id = id.slice(i + 1);
  return id.length > 12 ? id.slice(0, 12) : id;
}

/** formatter.Ellipsis: cut to maxWidth display characters, the last being '…'. */
export function ellipsis(s: string, maxWidth: number): string {
  const chars = Array.from(s);
  if (chars.length <= maxWidth) return s;
  if (maxWidth <= 0) return '';
  return chars.slice(0, maxWidth - 1).join('') + '…';
}

/** Go strconv.Quote for the printable-text cases the CLI meets. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f) out += '\\x' + c.toString(16).padStart(2, '0');
    else out += ch;
  }
  return out + '"';
}

/**
 * text/tabwriter as configured by the docker CLI (minwidth 10, tabwidth 1, padding 3, ' ').
 * Cells are tab-terminated; the trailing text of a line is not part of any column.
 */
export function tabwrite(text: string, minWidth = 10, padding = 3): string {
  const endsNl = text.endsWith('\n');
  const lines = (endsNl ? text.slice(0, -1) : text).split('\n');
  const rows = lines.map((l) => l.split('\t'));
  const out: string[] = [];
  // Go's tabwriter forms column blocks from consecutive lines that have a cell in that column.
  const widthsFor = (start: number, col: number): { end: number; width: number } => {
    let end = start;
    let width = 0;
    while (end < rows.length && rows[end].length - 1 > col) {
      width = Math.max(width, displayWidth(rows[end][col]) + padding);
      end++;
    }
    return { end, width: Math.max(width, minWidth) };
  };
  const widths: number[][] = rows.map((r) => new Array(Math.max(r.length - 1, 0)).fill(0));
  const fill = (start: number, end: number, col: number): void => {
    let i = start;
    while (i < end) {
      if (rows[i].length - 1 > col) {
        const b = widthsFor(i, col);
        for (let j = i; j < b.end; j++) widths[j][col] = b.width;
        fill(i, b.end, col + 1);
        i = b.end;
      } else i++;
    }
  };
  fill(0, rows.length, 0);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    let line = '';
    for (let c = 0; c < r.length - 1; c++) {
      line += r[c] + ' '.repeat(Math.max(widths[i][c] - displayWidth(r[c]), 0));
    }
    line += r[r.length - 1];
    out.push(line);
  }
  return out.join('\n') + (endsNl ? '\n' : '');
}

function displayWidth(s: string): number {
  return Array.from(s).length;
}

/** encoding/json Indent: re-indent raw JSON text without re-encoding its strings. */
export function jsonIndent(raw: string, indent = '    '): string {
  let out = '';
  let depth = 0;
  let inStr = false;
  let needIndent = false; // just opened a container; newline is emitted lazily so [] and {} stay compact
  const nl = (): string => '\n' + indent.repeat(depth);
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i];
    if (inStr) {
      out += ch;
      if (ch === '\\') {
        out += raw[++i];
      } else if (ch === '"') inStr = false;
      continue;
    }
    if (ch === ' ' || ch === '\n' || ch === '\t' || ch === '\r') continue;
    if (needIndent && ch !== ']' && ch !== '}') {
      needIndent = false;
      depth++;
      out += nl();
    }
    switch (ch) {
      case '"':
        inStr = true;
        out += ch;
        break;
      case '[':
      case '{':
        out += ch;
        needIndent = true;
        break;
      case ']':
      case '}':
        if (needIndent) {
          needIndent = false;
        } else {
          depth--;
          out += nl();
        }
        out += ch;
        break;
      case ',':
        out += ',' + nl();
        break;
      case ':':
        out += ': ';
        break;
      default:
        out += ch;
    }
  }
  return out;
}

/** Go's time.Time.String() for a UTC instant: 2006-01-02 15:04:05 +0000 UTC */
export function goTimeString(d: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000 UTC`;
}

/** Go duration syntax (300ms, 1.5h, 2h45m) in milliseconds; null if not a duration. */
export function parseGoDuration(s: string): number | null {
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)/y;
  const mult: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60000, h: 3600000 };
  let sign = 1;
  let i = 0;
  if (s[0] === '-' || s[0] === '+') {
    sign = s[0] === '-' ? -1 : 1;
    i = 1;
  }
  if (i >= s.length) return null;
  let total = 0;
  re.lastIndex = i;
  while (re.lastIndex < s.length) {
    const m = re.exec(s);
    if (!m) return null;
    total += Number(m[1]) * mult[m[2]];
  }
  return sign * total;
}

/**
 * docker's timetypes.GetTimestamp: a Go duration means "that long before now", otherwise an
 * RFC 3339 / date value or a unix timestamp. Returns the `seconds.nanoseconds` string the API takes.
 */
export function getTimestamp(value: string, now = Date.now()): string {
  const d = parseGoDuration(value);
  if (d !== null && value !== '0') {
    const t = now - d;
    return formatUnix(t);
  }
  if (/^\d+(\.\d+)?$/.test(value)) return value;
  let v = value;
  if (/^\d{4}-\d{2}-\d{2}$/.test(v)) v += 'T00:00:00Z';
  else if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(v)) v += 'Z';
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new Error(`failed to parse value as time or duration: "${value}"`);
  return formatUnix(t);
}

function formatUnix(ms: number): string {
  const sec = Math.floor(ms / 1000);
  const nanos = Math.round((ms - sec * 1000) * 1e6);
  return `${sec}.${String(nanos).padStart(9, '0')}`;
}
