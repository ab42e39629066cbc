/**
 * The `label` filter of the Engine API, shared by every list, prune and event
 * filter: `key` matches when the label is set (any value), `key=value` when it
 * has exactly that value.
 */
export function labelMatches(labels: Record<string, string> | null | undefined, expr: string): boolean {
  const l = labels ?? {};
  const eq = expr.indexOf('=');
  if (eq < 0) return expr in l;
  const key = expr.slice(0, eq);
  return key in l && l[key] === expr.slice(eq + 1);
}
