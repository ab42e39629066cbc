/** Docker's progress text (jsonmessage.JSONProgress.String) for pull/push messages. */
import type { ProgressMessage } from '../../engine/types';

/** go-units HumanSize: four significant digits, decimal units (`41.98kB`, `1.982MB`). */
export function goHumanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${Number(v.toPrecision(4))}${units[i]}`;
}

export function progressBar(current: number, total: number): string {
  if (total <= 0) return goHumanSize(current).padStart(8);
  const pct = Math.min(Math.floor((current / total) * 100 / 2), 50);
  const bar = `[${'='.repeat(pct)}>${' '.repeat(Math.max(50 - pct, 0))}] `;
  const numbers = current > total ? goHumanSize(current).padStart(8) : `${goHumanSize(current).padStart(8)}/${goHumanSize(total)}`;
  return bar + numbers;
}

export const shortId = (digest: string) => digest.replace(/^sha256:/, '').slice(0, 12);

export function progressMessage(id: string, status: string, current: number, total: number): ProgressMessage {
  return { status, progressDetail: { current, total }, progress: progressBar(current, total), id };
}

/** Sends byte progress at most every `everyBytes` bytes (and at the end), as dockerd throttles it. */
export function throttled(send: (current: number) => void, everyBytes = 512 * 1024): (current: number, final?: boolean) => void {
  let last = -1;
  return (current, final = false) => {
    if (final || last < 0 || current - last >= everyBytes) { last = current; send(current); }
  };
}
