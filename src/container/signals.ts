/** Signal names and numbers as Docker accepts them (stop/kill/StopSignal). */
import * as os from 'node:os';
import { invalidArgument } from '../common/errors';

/** Parses Docker signal spellings: `KILL`, `SIGKILL`, `9`, `sigusr1`. */
export function parseSignal(sig: string | number | undefined, dflt: number): number {
  if (sig === undefined || sig === '') return dflt;
  const s = String(sig).trim();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n < 1 || n > 64) throw invalidArgument(`Invalid signal: ${s}`);
    return n;
  }
  const name = s.toUpperCase().replace(/^SIG/, '');
  const rt = /^RTMIN(?:\+(\d+))?$/.exec(name);
  if (rt) return 34 + Number(rt[1] ?? 0);
  const n = (os.constants.signals as Record<string, number>)[`SIG${name}`];
  if (n === undefined) throw invalidArgument(`Invalid signal: ${s}`);
  return n;
}
