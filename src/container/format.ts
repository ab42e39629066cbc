/** Docker's human-readable container status and the list (ps) view. */

import { humanDuration } from '../common/duration';

/** `Up 3 minutes (healthy)`'s suffix: `health: starting`, `healthy` or `unhealthy` (State.Health set). */
function healthText(h: { Status?: string } | undefined): string | undefined {
  if (!h) return undefined;
  const status = h.Status || 'unhealthy';
  return status === 'starting' ? 'health: starting' : status;
}

const ZERO_TIME = '0001-01-01T00:00:00Z';
export { ZERO_TIME };

function since(iso: string, now: number): string {
  return humanDuration(Math.max(0, now - Date.parse(iso)));
}

/** The `Status` column: 'Up 3 seconds', 'Exited (0) 5 seconds ago', 'Created', ... */
export function statusText(state: any, now = Date.now()): string {
  if (state.Status === 'removing') return 'Removal In Progress';
  if (state.Dead || state.Status === 'dead') return 'Dead';
  if (state.Restarting) return `Restarting (${state.ExitCode}) ${since(state.FinishedAt, now)} ago`;
  if (state.Running) {
    if (state.Paused) return `Up ${since(state.StartedAt, now)} (Paused)`;
    const health = healthText(state.Health);
    return `Up ${since(state.StartedAt, now)}${health ? ` (${health})` : ''}`;
  }
  if (state.FinishedAt && state.FinishedAt !== ZERO_TIME) return `Exited (${state.ExitCode}) ${since(state.FinishedAt, now)} ago`;
  return 'Created';
}

/** Docker timestamps: RFC3339Nano in UTC; JS has milliseconds, so keep those. */
export function nowRfc3339(): string {
  const ns = process.hrtime.bigint() % 1_000_000n;
  const iso = new Date().toISOString(); // ...sss Z
  return `${iso.slice(0, 23)}${ns.toString().padStart(6, '0')}Z`.replace(/\.?0+Z$/, 'Z');
}
