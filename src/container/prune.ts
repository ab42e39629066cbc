/** `docker container prune`: removes stopped containers matching the filters. */
import { isKind } from '../common/errors';
import { labelMatches } from '../common/labels';
import { parseApiTimestamp } from '../common/timestamp';
import type { EventBus } from '../engine/events';
import type { ContainerPruneReport, ContainerService } from '../engine/types';

/** `filters` are checked by the caller (until, label, label!). */
export async function pruneContainers(svc: ContainerService, events: EventBus, filters: Record<string, string[]>): Promise<ContainerPruneReport> {
  const now = Date.now() / 1000;
  const until = (filters.until ?? []).map((u) => parseApiTimestamp(u, now));
  const labels = filters.label ?? [];
  const notLabels = filters['label!'] ?? [];
  const candidates = await svc.list({ all: true, size: true, filters: labels.length ? { label: labels } : {} });
  const deleted: string[] = [];
  let reclaimed = 0;
  for (const c of candidates) {
    // Only containers that are not running (a paused one counts as running).
    if (c.State === 'running' || c.State === 'paused' || c.State === 'restarting' || c.State === 'removing') continue;
    if (until.length && !until.every((u) => Number(c.Created) < u)) continue;
    if (notLabels.some((kv) => labelMatches(c.Labels ?? {}, kv))) continue;
    try {
      await svc.remove(c.Id, { force: false, volumes: false });
    } catch (err) {
      if (isKind(err, 'not-found') || isKind(err, 'conflict')) continue; // removed or restarted meanwhile
      throw err;
    }
    deleted.push(c.Id);
    reclaimed += Number(c.SizeRw ?? 0);
  }
  events.emitEvent('container', 'prune', '', { reclaimed: String(reclaimed) });
  return { ContainersDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
}
