/**
 * The embedded DNS server of user-defined networks, as Docker's 127.0.0.11 — without
 * a process per container: berthd opens a UDP and a TCP socket on 127.0.0.11:53
 * inside each container's namespace (kernel.netnsSocket) and answers them on its
 * own event loop. Names of containers on a shared network (name, short id, aliases)
 * are answered from the daemon's state; anything else is forwarded from the host's
 * namespace to daemon.json `dns`, else the host's resolv.conf servers, else refused.
 * While berthd is down the sockets are gone; start-up opens them again.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as dnsPacket from 'dns-packet';
import type { DaemonConfig } from '../engine/config';
import { netnsSocket } from './kernel';
import type { SandboxRecord } from './store';

interface Served { udp: dgram.Socket; tcp: net.Server }

const TTL = 600;
const FORWARD_TIMEOUT_MS = 4000;

export class EmbeddedDns {
  private readonly served = new Map<string, Served>();
  private upstream: string[] | undefined;

  constructor(private readonly config: DaemonConfig, private readonly names: (netns: string) => Map<string, string>) {}

  /** Starts answering inside the sandbox's namespace (no-op when it already does). */
  serve(sb: SandboxRecord): void {
    if (this.served.has(sb.netns)) return;
    const udpFd = netnsSocket(sb.netns, false, '127.0.0.11', 53);
    let tcpFd: number;
    try {
      tcpFd = netnsSocket(sb.netns, true, '127.0.0.11', 53);
    } catch (err) {
      fs.closeSync(udpFd);
      throw err;
    }
    const udp = dgram.createSocket('udp4');
    udp.on('error', () => undefined);
    udp.on('message', (msg, rinfo) => {
      void this.answer(sb.netns, msg).then((reply) => {
        if (!reply || !this.served.has(sb.netns)) return; // the container went meanwhile: its socket is closed
        try { udp.send(reply, rinfo.port, rinfo.address, () => undefined); } catch { /* closed */ }
      });
    });
    udp.bind({ fd: udpFd });
    udp.unref();
    const tcp = net.createServer((c) => this.tcpSession(sb.netns, c));
    tcp.on('error', () => undefined);
    tcp.listen({ fd: tcpFd });
    tcp.unref();
    this.served.set(sb.netns, { udp, tcp });
  }

  forget(sb: SandboxRecord): void {
    const s = this.served.get(sb.netns);
    if (!s) return;
    this.served.delete(sb.netns);
    try { s.udp.close(); } catch { /* closed */ }
    s.tcp.close();
  }

  close(): void {
    for (const netns of [...this.served.keys()]) this.forget({ netns } as SandboxRecord);
  }

  private tcpSession(netns: string, c: net.Socket): void {
    let buf = Buffer.alloc(0);
    c.on('error', () => undefined);
    c.setTimeout(10_000, () => c.destroy());
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        void this.answer(netns, msg).then((reply) => {
          if (!reply || c.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length);
          c.write(Buffer.concat([len, reply]));
        });
      }
    });
  }

  /** The reply to one query (undefined: not even a header to answer to). */
  async answer(netns: string, msg: Buffer): Promise<Buffer | undefined> {
    let q: dnsPacket.Packet;
    try { q = dnsPacket.decode(msg); } catch { return undefined; }
    const question = q.questions?.[0];
    const reply = (rcode: string, answers: dnsPacket.Answer[] = []) => dnsPacket.encode({
      id: q.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (rcode === 'NOERROR' ? 0 : rcodeBits(rcode)),
      questions: q.questions, answers,
    } as dnsPacket.Packet);
    if (!question) return reply('FORMERR');
    const name = question.name.replace(/\.$/, '').toLowerCase();
    const ip = this.names(netns).get(name);
    if (ip !== undefined) {
      if (question.type === 'A') return reply('NOERROR', [{ type: 'A', name: question.name, ttl: TTL, class: 'IN', data: ip }]);
      return reply('NOERROR'); // the name exists, without records of that type (as Docker answers AAAA)
    }
    return (await this.forward(msg)) ?? reply('SERVFAIL');
  }

  private upstreams(): string[] {
    if (this.upstream) return this.upstream;
    let list = this.config.dns ?? [];
    if (!list.length) {
      let text = '';
      try { text = fs.readFileSync('/etc/resolv.conf', 'utf8'); } catch { /* none */ }
      list = text.split('\n').map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((s): s is string => !!s && net.isIPv4(s));
    }
    this.upstream = list;
    return list;
  }

  /** Asks the upstream servers in turn, from the host's namespace; undefined when none answered. */
  private async forward(msg: Buffer): Promise<Buffer | undefined> {
    for (const server of this.upstreams()) {
      const got = await new Promise<Buffer | undefined>((resolve) => {
        const s = dgram.createSocket('udp4');
        const done = (b?: Buffer) => { clearTimeout(timer); try { s.close(); } catch { /* closed */ } resolve(b); };
        const timer = setTimeout(() => done(), FORWARD_TIMEOUT_MS);
        s.on('error', () => done());
        s.on('message', (b) => done(b));
        try { s.send(msg, 53, server, (err) => { if (err) done(); }); } catch { done(); }
      });
      if (got) return got;
    }
    if (this.upstreams().length === 0) {
      try {
        const q = dnsPacket.decode(msg);
        return dnsPacket.encode({ id: q.id, type: 'response', flags: rcodeBits('REFUSED'), questions: q.questions, answers: [] } as dnsPacket.Packet);
      } catch { return undefined; }
    }
    return undefined;
  }
}

function rcodeBits(rcode: string): number {
  return ({ NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as Record<string, number>)[rcode] ?? 2;
}
