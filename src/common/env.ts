/** Environment lists (`K=v` entries) as Docker merges them. */

/** Docker's ReplaceOrAppendEnvValues: later `K=v` replace earlier `K=...`; a bare `K` removes K. */
export function replaceOrAppendEnv(base: string[], overrides: string[]): string[] {
  const out = [...base];
  const key = (e: string) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e);
  for (const e of overrides) {
    const k = key(e);
    const i = out.findIndex((x) => key(x) === k);
    if (!e.includes('=')) {
      if (i >= 0) out.splice(i, 1);
      continue;
    }
    if (i >= 0) out[i] = e; else out.push(e);
  }
  return out;
}
