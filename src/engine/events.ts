/** The daemon's event bus: engine events as /events streams them, the last 1000 kept for `since` replays. */
import { EventEmitter } from 'node:events';

/** A Docker event as `/events` sends it (see swagger EventMessage). */
export interface EngineEvent {
  Type: 'container' | 'image' | 'volume' | 'network' | 'daemon';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
  // legacy fields, containers only
  status?: string;
  id?: string;
  from?: string;
}

/**
 * In-memory event bus with a bounded history so `/events?since=` can replay.
 */
export class EventBus extends EventEmitter {
  private history: EngineEvent[] = [];
  private static readonly KEEP = 1000;

  emitEvent(type: EngineEvent['Type'], action: string, id: string, attributes: Record<string, string> = {}): EngineEvent {
    const nowNs = BigInt(Date.now()) * 1_000_000n + BigInt(process.hrtime.bigint() % 1_000_000n);
    const ev: EngineEvent = {
      Type: type,
      Action: action,
      Actor: { ID: id, Attributes: attributes },
      scope: 'local',
      time: Number(nowNs / 1_000_000_000n),
      timeNano: Number(nowNs),
    };
    if (type === 'container') {
      ev.status = action;
      ev.id = id;
      if (attributes.image) ev.from = attributes.image;
    }
    this.history.push(ev);
    if (this.history.length > EventBus.KEEP) this.history.splice(0, this.history.length - EventBus.KEEP);
    this.emit('event', ev);
    return ev;
  }

  since(timeNano: number): EngineEvent[] {
    return this.history.filter((e) => e.timeNano >= timeNano);
  }
}
