/**
 * Published ports: which host ports a container asks for (HostConfig.PortBindings,
 * -P for its exposed ports), and holding them. Traffic is forwarded by DNAT rules
 * (firewall.ts); berthd also binds each host port, as dockerd does without its
 * userland proxy, so no other program (or container) takes it meanwhile and a port
 * already in use is refused at start with Docker's message.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { BerthError, invalidArgument } from '../common/errors';
import type { PortRecord } from './store';

export interface PortRequest { proto: PortRecord['proto']; containerPort: number; hostIp: string; hostPort: number /* 0: any */ }

/** PortBindings (+ ExposedPorts with PublishAllPorts) as a list of requests. */
export function portRequests(bindings: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null> | null | undefined,
  exposed: Record<string, unknown> | null | undefined, publishAll: boolean): PortRequest[] {
  const out: PortRequest[] = [];
  const seen = new Set<string>();
  const key = (p: string) => {
    const m = /^(\d+)(?:\/(tcp|udp|sctp))?$/i.exec(p);
    if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) throw invalidArgument(`invalid port specification: "${p}"`);
    return { containerPort: Number(m[1]), proto: (m[2] ?? 'tcp').toLowerCase() as PortRecord['proto'] };
  };
  for (const [p, list] of Object.entries(bindings ?? {})) {
    const { containerPort, proto } = key(p);
    for (const b of list?.length ? list : [{}]) {
      const hostIp = String(b.HostIp ?? '');
      if (hostIp && net.isIPv4(hostIp) === false) {
        if (net.isIPv6(hostIp)) continue; // no IPv6 networking: as dockerd without ipv6, skipped
        throw invalidArgument(`invalid host IP address: ${hostIp}`);
      }
      const hp = String(b.HostPort ?? '');
      const m = /^(\d*)(?:-(\d+))?$/.exec(hp);
      if (!m) throw invalidArgument(`invalid port specification: "${hp}"`);
      const hostPort = m[1] ? Number(m[1]) : 0;
      if (hostPort > 65535) throw invalidArgument(`invalid port specification: "${hp}"`);
      out.push({ proto, containerPort, hostIp, hostPort });
      seen.add(`${containerPort}/${proto}`);
    }
  }
  if (publishAll) {
    for (const p of Object.keys(exposed ?? {})) {
      const { containerPort, proto } = key(p);
      if (!seen.has(`${containerPort}/${proto}`)) out.push({ proto, containerPort, hostIp: '', hostPort: 0 });
    }
  }
  return out;
}

/** NetworkSettings.Ports: every exposed or published port, with its host bindings (null when unpublished). */
export function portsView(ports: PortRecord[], exposed: Record<string, unknown> | null | undefined): Record<string, Array<{ HostIp: string; HostPort: string }> | null> {
  const view: Record<string, Array<{ HostIp: string; HostPort: string }> | null> = {};
  for (const p of Object.keys(exposed ?? {})) view[p.includes('/') ? p : `${p}/tcp`] = null;
  for (const p of ports) {
    const k = `${p.containerPort}/${p.proto}`;
    (view[k] ??= []).push({ HostIp: p.hostIp || '0.0.0.0', HostPort: String(p.hostPort) });
  }
  return view;
}

type Holder = net.Server | dgram.Socket;

/** Host ports held by this daemon, per container. */
export class PortHolder {
  private readonly byContainer = new Map<string, Holder[]>();
  private readonly taken = new Map<string, string>(); // proto/ip/port -> container id

  private static key(proto: string, ip: string, port: number): string { return `${proto}/${ip || '0.0.0.0'}/${port}`; }

  private clash(proto: string, ip: string, port: number): boolean {
    for (const k of this.taken.keys()) {
      const [p, i, n] = k.split('/');
      if (p !== proto || Number(n) !== port) continue;
      if (i === '0.0.0.0' || !ip || ip === '0.0.0.0' || i === ip) return true;
    }
    return false;
  }

  /**
   * Binds every requested host port (0: one the kernel picks from its ephemeral
   * range) and returns what was bound. On any failure nothing stays bound.
   */
  async hold(containerId: string, endpointName: string, endpointId: string, reqs: PortRequest[]): Promise<PortRecord[]> {
    const got: PortRecord[] = [];
    const holders: Holder[] = [];
    try {
      for (const r of reqs) {
        const ip = r.hostIp || '0.0.0.0';
        if (r.hostPort && this.clash(r.proto, ip, r.hostPort)) {
          throw new BerthError('internal', `driver failed programming external connectivity on endpoint ${endpointName} (${endpointId}): Bind for ${ip}:${r.hostPort} failed: port is already allocated`);
        }
        let port: number;
        try {
          const b = await bind(r.proto, ip, r.hostPort);
          holders.push(b.holder);
          port = b.port;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          const why = code === 'EADDRINUSE' ? 'bind: address already in use' : code === 'EADDRNOTAVAIL' ? 'bind: cannot assign requested address' : (err as Error).message;
          throw new BerthError('internal', `driver failed programming external connectivity on endpoint ${endpointName} (${endpointId}): Error starting userland proxy: listen ${r.proto}4 ${ip}:${r.hostPort}: ${why}`);
        }
        got.push({ proto: r.proto, hostIp: r.hostIp === '0.0.0.0' ? '' : r.hostIp, hostPort: port, containerPort: r.containerPort });
        this.taken.set(PortHolder.key(r.proto, ip, port), containerId);
      }
    } catch (err) {
      for (const h of holders) close(h);
      for (const p of got) this.taken.delete(PortHolder.key(p.proto, p.hostIp, p.hostPort));
      throw err;
    }
    this.byContainer.set(containerId, [...(this.byContainer.get(containerId) ?? []), ...holders]);
    return got;
  }

  /** Holds ports recorded before a daemon restart (best effort: the DNAT rules serve them anyway). */
  async rehold(containerId: string, ports: PortRecord[]): Promise<void> {
    const holders: Holder[] = [];
    for (const p of ports) {
      this.taken.set(PortHolder.key(p.proto, p.hostIp, p.hostPort), containerId);
      try { holders.push((await bind(p.proto, p.hostIp || '0.0.0.0', p.hostPort)).holder); } catch { /* held elsewhere: keep serving by DNAT */ }
    }
    this.byContainer.set(containerId, holders);
  }

  release(containerId: string): void {
    for (const h of this.byContainer.get(containerId) ?? []) close(h);
    this.byContainer.delete(containerId);
    for (const [k, id] of this.taken) if (id === containerId) this.taken.delete(k);
  }

  releaseAll(): void {
    for (const id of [...this.byContainer.keys()]) this.release(id);
  }
}

function close(h: Holder): void {
  try { h.close(); } catch { /* already closed */ }
}

function bind(proto: string, ip: string, port: number): Promise<{ holder: Holder; port: number }> {
  return new Promise((resolve, reject) => {
    if (proto === 'udp') {
      const s = dgram.createSocket({ type: 'udp4' });
      s.once('error', reject);
      s.bind({ port, address: ip, exclusive: true }, () => {
        s.removeListener('error', reject);
        s.on('error', () => undefined);
        s.unref();
        resolve({ holder: s, port: s.address().port });
      });
      return;
    }
    // tcp (and sctp, whose port number is reserved through TCP's space here)
    const srv = net.createServer((c) => c.destroy());
    srv.once('error', reject);
    srv.listen({ port, host: ip, exclusive: true, backlog: 1 }, () => {
      srv.removeListener('error', reject);
      srv.on('error', () => undefined);
      srv.unref();
      resolve({ holder: srv, port: (srv.address() as net.AddressInfo).port });
    });
  });
}
