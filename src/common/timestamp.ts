/** Points in time as API query parameters carry them (since/until of events, logs, prune filters). */
import { invalidArgument } from './errors';

const GO_DURATION = /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/;
const UNIT_SECONDS: Record<string, number> = { ns: 1e-9, us: 1e-6, 'µs': 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/**
 * A point in time as the API accepts it (timetypes.GetTimestamp): unix
 * seconds with optional fraction, RFC 3339 / date strings, or a Go duration
 * meaning "that long before now". Returns unix seconds (fractional).
 */
export function parseApiTimestamp(value: string, nowSeconds = Date.now() / 1000): number {
  const v = value.trim();
  if (/^-?\d+(\.\d+)?$/.test(v)) return Number(v);
  if (GO_DURATION.test(v)) {
    let secs = 0;
    for (const m of v.matchAll(/(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g)) secs += Number(m[1]) * UNIT_SECONDS[m[2]];
    return nowSeconds - secs;
  }
  const t = Date.parse(v);
  if (!Number.isNaN(t)) {
    // Keep sub-millisecond digits that Date.parse drops.
    const frac = /\.(\d+)/.exec(v);
    const ms = Math.floor(t / 1000) * 1000;
    return frac ? ms / 1000 + Number(`0.${frac[1]}`) : t / 1000;
  }
  throw invalidArgument(`failed to parse value as time or duration: "${value}"`);
}
