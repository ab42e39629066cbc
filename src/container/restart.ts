/** Docker's restart policies: whether an exit restarts the container, and after how long. */
import type { ContainerRecord } from './store';

/** `no`, `always`, `unless-stopped`, `on-failure[:max]`; a stop or kill by the user ends any policy. */
export function shouldRestart(rec: ContainerRecord): boolean {
  const rp = rec.HostConfig.RestartPolicy ?? { Name: 'no' };
  if (rec.Berth.manuallyStopped) return false;
  switch (rp.Name) {
    case 'always': case 'unless-stopped': return true;
    case 'on-failure':
      return rec.State.ExitCode !== 0 && (!rp.MaximumRetryCount || rec.RestartCount < rp.MaximumRetryCount);
    default: return false;
  }
}

/** Back-off before the n-th restart (n >= 1): 100 ms doubling, at most a minute, as dockerd. */
export function restartDelayMs(restartCount: number): number {
  return Math.min(100 * 2 ** Math.min(restartCount - 1, 10), 60_000);
}
