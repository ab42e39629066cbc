// docker's formatter.Context: `table` templates with a header row derived from the
// same template, tabwriter alignment, and `{{.ID}}`-style quiet output.
import { CliError } from './client';
import { FORMATTER_ROW, prepareFormat, Template, TemplateError } from './template';
import { tabwrite } from './units';

export function compile(format: string): Template {
  try {
    return new Template(format);
  } catch (e) {
    if (e instanceof TemplateError) throw new CliError(`Template parsing error: ${e.message}`, 1);
    throw e;
  }
}

export function execute(t: Template, data: unknown): string {
  try {
    return t.execute(data);
  } catch (e) {
    if (e instanceof TemplateError) throw new CliError(`template: ${e.message.replace(/^template: /, '')}`, 1);
    throw e;
  }
}

/**
 * Renders rows with a docker format: `table ...` prints a header (the template run over
 * `headers`, where method-like fields such as `.Label "k"` also yield their header), then
 * aligns columns; any other format prints one line per row.
 */
export function renderRows(format: string, rows: object[], headers: Record<string, string>): string {
  const { table, body } = prepareFormat(format);
  const t = compile(body);
  let out = '';
  if (table) {
    const h: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(headers)) h[k] = v;
    // Methods with arguments (Label "x") render their header text.
    for (const r of rows.slice(0, 1))
      for (const k of Object.keys(r)) if (typeof (r as Record<string, unknown>)[k] === 'function' && !(k in h)) h[k] = k.toUpperCase();
    const hp = new Proxy(h, {
      get: (target, prop: string) => {
        const v = target[prop];
        if (v === undefined) return undefined;
        return () => v;
      },
      has: (target, prop: string) => prop in target,
    });
    out += execute(t, hp) + '\n';
  }
  for (const r of rows) {
    Object.defineProperty(r, FORMATTER_ROW, { value: true });
    out += execute(t, r) + '\n';
  }
  return table ? tabwrite(out) : out;
}
