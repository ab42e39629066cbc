/** `GET /containers/json`: the ContainerSummary view and Docker's filters. */
import { invalidArgument } from '../common/errors';
import { statusText } from './format';
import type { ContainerRecord } from './store';
import { labelMatches } from '../common/labels';

const FILTERS = new Set(['id', 'name', 'status', 'label', 'ancestor', 'exited', 'before', 'since', 'network', 'health', 'isolation', 'is-task', 'volume', 'publish', 'expose']);
const HEALTH = ['starting', 'healthy', 'unhealthy', 'none'];
const STATUSES = ['created', 'restarting', 'running', 'removing', 'paused', 'exited', 'dead'];

export function summary(rec: ContainerRecord): any {
  return {
    Id: rec.Id,
    Names: [rec.Name],
    Image: rec.Config.Image,
    ImageID: rec.Image,
    Command: [rec.Path, ...rec.Args].map(quoteArg).join(' '),
    Created: Math.floor(Date.parse(rec.Created) / 1000),
    Ports: portSummary(rec.NetworkSettings?.Ports),
    Labels: rec.Config.Labels ?? {},
    State: rec.State.Status,
    Status: statusText(rec.State),
    HostConfig: { NetworkMode: rec.HostConfig.NetworkMode },
    NetworkSettings: { Networks: rec.NetworkSettings.Networks },
    Mounts: rec.Mounts ?? [],
  };
}

/** NetworkSettings.Ports as ContainerSummary.Ports: one entry per binding, exposed-only ports without host side. */
function portSummary(ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null> | null | undefined): any[] {
  const out: any[] = [];
  for (const [key, bindings] of Object.entries(ports ?? {})) {
    const [port, type = 'tcp'] = key.split('/');
    if (!bindings?.length) { out.push({ PrivatePort: Number(port), Type: type }); continue; }
    for (const b of bindings) out.push({ IP: b.HostIp, PrivatePort: Number(port), PublicPort: Number(b.HostPort), Type: type });
  }
  return out;
}

/** /info's counts, by the State a summary shows. */
export function countStates(recs: ContainerRecord[]): { total: number; running: number; paused: number; stopped: number } {
  let running = 0, paused = 0, stopped = 0;
  for (const r of recs) {
    const state = r.State.Status;
    if (state === 'paused') paused++;
    else if (state === 'running' || state === 'restarting') running++;
    else stopped++;
  }
  return { total: recs.length, running, paused, stopped };
}

// Docker joins path and args with spaces, quoting none; keep that.
function quoteArg(a: string): string { return a; }

export async function listContainers(
  all: ContainerRecord[],
  opts: { all: boolean; limit?: number; filters: Record<string, string[]> },
  imageIdOf: (ref: string) => Promise<string | undefined>,
): Promise<any[]> {
  const f = opts.filters ?? {};
  for (const k of Object.keys(f)) if (!FILTERS.has(k)) throw invalidArgument(`invalid filter '${k}'`);
  for (const s of f.status ?? []) {
    if (!STATUSES.includes(s)) throw invalidArgument(`invalid filter 'status=${s}'`);
  }
  for (const h of f.health ?? []) {
    if (!HEALTH.includes(h)) throw invalidArgument(`Unrecognised filter value for health: ${h}`);
  }
  const byRef = (ref: string) => all.find((r) => r.Id === ref || r.Name === `/${ref}` || r.Name === ref || r.Id.startsWith(ref));
  let sorted = [...all].sort((a, b) => Date.parse(b.Created) - Date.parse(a.Created) || (a.Id < b.Id ? 1 : -1));
  const before = f.before?.length ? byRef(f.before[0]) : undefined;
  const since = f.since?.length ? byRef(f.since[0]) : undefined;
  if (f.before?.length && !before) throw invalidArgument(`No such container: ${f.before[0]}`);
  if (f.since?.length && !since) throw invalidArgument(`No such container: ${f.since[0]}`);
  const ancestorIds = new Set<string>();
  for (const a of f.ancestor ?? []) {
    const id = await imageIdOf(a);
    if (id) ancestorIds.add(id);
  }
  // Explicit status/exited filters show stopped containers even without all.
  const showAll = opts.all || !!f.status?.length || !!f.exited?.length || (opts.limit ?? 0) > 0 || !!before || !!since;
  sorted = sorted.filter((r) => {
    if (!showAll && !r.State.Running) return false;
    if (f.id?.length && !f.id.some((x) => r.Id.startsWith(x))) return false;
    if (f.name?.length && !f.name.some((x) => nameMatch(r.Name, x))) return false;
    if (f.status?.length && !f.status.includes(r.State.Status)) return false;
    if (f.label?.length && !f.label.every((x) => labelMatches(r.Config.Labels, x))) return false;
    if (f.exited?.length && (r.State.Status !== 'exited' || !f.exited.some((x) => Number(x) === r.State.ExitCode))) return false;
    if (f.ancestor?.length && !ancestorIds.has(r.Image) && !f.ancestor.includes(r.Config.Image)) return false;
    if (f.network?.length && !f.network.some((x) => r.HostConfig.NetworkMode === x
      || Object.entries(r.NetworkSettings?.Networks ?? {}).some(([name, ep]: [string, any]) => name === x || (!!ep?.NetworkID && ep.NetworkID.startsWith(x))))) return false;
    if (f.health?.length && !f.health.includes(r.State.Health ? (r.State.Health.Status || 'unhealthy') : 'none')) return false;
    // a volume name, or a mount's source or destination path (Docker's `volume` filter)
    if (f.volume?.length && !f.volume.some((v) => (r.Mounts ?? []).some((m: any) => m.Name === v || m.Source === v || m.Destination === v))) return false;
    if (before && Date.parse(r.Created) >= Date.parse(before.Created)) return false;
    if (since && Date.parse(r.Created) <= Date.parse(since.Created)) return false;
    return true;
  });
  if (opts.limit && opts.limit > 0) sorted = sorted.slice(0, opts.limit);
  // Legacy links give the linked container a second name, `/<linking container>/<alias>`, as Docker lists it.
  const linkNames = new Map<string, string[]>();
  for (const r of all) {
    for (const l of (r.HostConfig.Links ?? []) as string[]) {
      const [target, name] = l.split(':');
      if (target && name) linkNames.set(target, [...(linkNames.get(target) ?? []), name]);
    }
  }
  return sorted.map((r) => {
    const row = summary(r);
    row.Names.push(...(linkNames.get(r.Name) ?? []));
    return row;
  });
}

function nameMatch(name: string, pattern: string): boolean {
  const n = name.slice(1);
  try {
    return new RegExp(pattern).test(n) || new RegExp(pattern).test(name);
  } catch {
    return n.includes(pattern);
  }
}
