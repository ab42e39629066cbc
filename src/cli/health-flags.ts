// The docker CLI's healthcheck flags of run/create, and the Config.Healthcheck they make.
import type { FlagSpec } from './flags';
import { parseGoDuration } from './units';

/** A Go duration flag value in nanoseconds, with time.ParseDuration's error words. */
function durationNs(v: string): number {
  const ms = parseGoDuration(v);
  if (ms === null) {
    throw new Error(/^[-+]?(\d+\.?\d*|\.\d+)$/.test(v) ? `time: missing unit in duration ${JSON.stringify(v)}` : `time: invalid duration ${JSON.stringify(v)}`);
  }
  return Math.round(ms * 1e6);
}

export const healthFlags: FlagSpec[] = [
  { long: 'health-cmd', kind: 'string', usage: 'Command to run to check health' },
  { long: 'health-interval', kind: 'string', valueName: 'duration', def: 0, usage: 'Time between running the check (ms|s|m|h) (default 0s)', convert: durationNs },
  { long: 'health-retries', kind: 'int', usage: 'Consecutive failures needed to report unhealthy' },
  { long: 'health-start-interval', kind: 'string', valueName: 'duration', def: 0, usage: 'Time between running the check during the start period (ms|s|m|h) (default 0s)', convert: durationNs },
  { long: 'health-start-period', kind: 'string', valueName: 'duration', def: 0, usage: 'Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)', convert: durationNs },
  { long: 'health-timeout', kind: 'string', valueName: 'duration', def: 0, usage: 'Maximum time to allow one check to run (ms|s|m|h) (default 0s)', convert: durationNs },
];

/** Config.Healthcheck from the flags, as the docker CLI builds it (undefined: the image's applies). */
export function healthcheckFromFlags(o: Record<string, any>): Record<string, unknown> | undefined {
  const num = (k: string): number => Number(o[k] ?? 0) || 0;
  const cmd = String(o['health-cmd'] ?? '');
  const have = cmd !== '' || ['health-interval', 'health-timeout', 'health-start-period', 'health-retries', 'health-start-interval'].some((k) => num(k) !== 0);
  if (o['no-healthcheck']) {
    if (have) throw new Error('--no-healthcheck conflicts with --health-* options');
    return { Test: ['NONE'] };
  }
  if (!have) return undefined;
  for (const k of ['health-interval', 'health-timeout', 'health-retries', 'health-start-period', 'health-start-interval']) {
    if (num(k) < 0) throw new Error(`--${k} cannot be negative`);
  }
  return {
    Test: cmd ? ['CMD-SHELL', cmd] : null,
    Interval: num('health-interval'),
    Timeout: num('health-timeout'),
    StartPeriod: num('health-start-period'),
    StartInterval: num('health-start-interval'),
    Retries: num('health-retries'),
  };
}
