/**
 * The embedded DNS server of user-defined networks, as Docker's 127.0.0.11 — without
 * a process per container: berthd opens a UDP and a TCP socket on 127.0.0.11:53
 * inside each container's namespace (kernel.netnsSocket) and answers them on its
 * own event loop. Names of containers on a shared network (name, short id, aliases)
 * are answered from a map prepared per namespace (rebuilt only when a container joins or
 * leaves a network), straight from the query's bytes; anything else is forwarded from the
 * host's namespace to the container's own `--dns` servers, else daemon.json `dns`, else
 * the host's resolv.conf servers, else refused.
 * While berthd is down the sockets are gone; start-up opens them again.
 */
import * as dgram from 'node:dgram';
import * as net from 'node:net';
import * as fs from 'node:fs';
import * as dnsPacket from 'dns-packet';
import type { DaemonConfig } from '../engine/config';
import { netnsSocket } from './kernel';
import type { SandboxRecord } from './store';

interface Served { udp: dgram.Socket; tcp: net.Server; upstream: string[] }

/** What a name resolves to inside one namespace: its addresses as they go on the wire. */
export interface DnsRecord { v4?: Buffer; v6?: Buffer }

const TTL = 600;
const FORWARD_TIMEOUT_MS = 4000;
const TYPE_A = 1;
const TYPE_AAAA = 28;
const CLASS_IN = 1;

export class EmbeddedDns {
  private readonly served = new Map<string, Served>();
  /** Prepared answers per namespace; dropped whenever membership changes (changed()). */
  private readonly views = new Map<string, Map<string, DnsRecord>>();
  private hostUpstream: string[] | undefined;

  constructor(private readonly config: DaemonConfig, private readonly names: (netns: string) => Map<string, DnsRecord>) {}

  /**
   * Starts answering inside the sandbox's namespace (no-op when it already does). Other names
   * go to the container's own servers (`--dns`, sb.dns) when it names any.
   */
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
    const netns = sb.netns;
    // Replies go to the literal address a query came from: no resolver step (dgram would defer each
    // send a tick through dns.lookup), which is most of a local answer's cost in the event loop.
    const udp = dgram.createSocket({ type: 'udp4', lookup: literalAddress });
    udp.on('error', () => undefined);
    udp.on('message', (msg, rinfo) => {
      const local = this.answerLocal(netns, msg);
      if (local) {
        try { udp.send(local, rinfo.port, rinfo.address); } catch { /* closed */ }
        return;
      }
      void this.answer(netns, msg).then((reply) => {
        if (!reply || !this.served.has(netns)) return; // the container went meanwhile: its socket is closed
        try { udp.send(reply, rinfo.port, rinfo.address); } catch { /* closed */ }
      });
    });
    udp.bind({ fd: udpFd });
    udp.unref();
    const tcp = net.createServer((c) => this.tcpSession(netns, c));
    tcp.on('error', () => undefined);
    tcp.listen({ fd: tcpFd });
    tcp.unref();
    const own = (sb.dns ?? []).filter((s) => net.isIP(s) !== 0);
    this.served.set(netns, { udp, tcp, upstream: own });
  }

  forget(sb: SandboxRecord): void {
    this.views.delete(sb.netns);
    const s = this.served.get(sb.netns);
    if (!s) return;
    this.served.delete(sb.netns);
    try { s.udp.close(); } catch { /* closed */ }
    s.tcp.close();
  }

  /** Names or memberships changed: every namespace's answers are prepared again on their next query. */
  changed(): void {
    this.views.clear();
  }

  close(): void {
    for (const netns of [...this.served.keys()]) this.forget({ netns } as SandboxRecord);
  }

  private view(netns: string): Map<string, DnsRecord> {
    let v = this.views.get(netns);
    if (!v) {
      v = this.names(netns);
      this.views.set(netns, v);
    }
    return v;
  }

  private tcpSession(netns: string, c: net.Socket): void {
    let buf: Buffer = Buffer.alloc(0);
    c.on('error', () => undefined);
    c.setTimeout(10_000, () => c.destroy());
    c.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        const write = (reply: Buffer | undefined) => {
          if (!reply || c.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(reply.length);
          c.write(Buffer.concat([len, reply]));
        };
        const local = this.answerLocal(netns, msg);
        if (local) write(local);
        else void this.answer(netns, msg).then(write);
      }
    });
  }

  /**
   * The fast path: a standard query for one name this namespace knows, answered from the
   * query's own bytes (header and question copied, the answer pointing back at the question's
   * name). undefined: anything else (forwarded, or malformed), left to answer().
   */
  answerLocal(netns: string, msg: Buffer): Buffer | undefined {
    if (msg.length < 17 || (msg[2]! & 0xf8) !== 0 || msg.readUInt16BE(4) !== 1) return undefined; // QR=0, opcode QUERY, one question
    let at = 12;
    let name = '';
    for (;;) {
      const len = msg[at];
      if (len === undefined || len > 63) return undefined; // compression pointers do not belong in a question
      at++;
      if (len === 0) break;
      if (at + len > msg.length) return undefined;
      name += (name ? '.' : '') + msg.toString('latin1', at, at + len);
      at += len;
    }
    if (at + 4 > msg.length) return undefined;
    const type = msg.readUInt16BE(at);
    const cls = msg.readUInt16BE(at + 2);
    const end = at + 4;
    if (cls !== CLASS_IN) return undefined;
    const rec = this.view(netns).get(name.toLowerCase());
    if (!rec) return undefined;
    // The name exists: its address of the asked family, or no records of that type (as Docker answers AAAA without IPv6).
    const data = type === TYPE_A ? rec.v4 : type === TYPE_AAAA ? rec.v6 : undefined;
    const reply = Buffer.allocUnsafe(end + (data ? 12 + data.length : 0));
    msg.copy(reply, 0, 0, end);
    reply[2] = 0x80 | (msg[2]! & 0x01); // QR, opcode 0, RD as asked
    reply[3] = 0x80; // RA, NOERROR
    reply.writeUInt16BE(data ? 1 : 0, 6);
    reply.writeUInt32BE(0, 8); // no authority, no additional (EDNS dropped)
    if (data) {
      let o = end;
      o = reply.writeUInt16BE(0xc00c, o); // the question's name
      o = reply.writeUInt16BE(type, o);
      o = reply.writeUInt16BE(CLASS_IN, o);
      o = reply.writeUInt32BE(TTL, o);
      o = reply.writeUInt16BE(data.length, o);
      data.copy(reply, o);
    }
    return reply;
  }

  /** The reply to one query (undefined: not even a header to answer to). */
  async answer(netns: string, msg: Buffer): Promise<Buffer | undefined> {
    const local = this.answerLocal(netns, msg);
    if (local) return local;
    let q: dnsPacket.Packet;
    try { q = dnsPacket.decode(msg); } catch { return undefined; }
    const reply = (rcode: string) => dnsPacket.encode({
      id: q.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcodeBits(rcode),
      questions: q.questions, answers: [],
    } as dnsPacket.Packet);
    if (q.questions?.length !== 1) return reply('FORMERR');
    const upstream = this.upstreams(netns);
    if (!upstream.length) return reply('REFUSED');
    return (await this.forward(msg, upstream)) ?? reply('SERVFAIL');
  }

  /** The container's own servers, else daemon.json `dns`, else the host's resolv.conf servers. */
  private upstreams(netns: string): string[] {
    const own = this.served.get(netns)?.upstream;
    if (own?.length) return own;
    if (this.hostUpstream) return this.hostUpstream;
    let list = (this.config.dns ?? []).filter((s) => net.isIP(s) !== 0);
    if (!list.length) {
      let text = '';
      try { text = fs.readFileSync('/etc/resolv.conf', 'utf8'); } catch { /* none */ }
      list = text.split('\n').map((l) => /^\s*nameserver\s+(\S+)/.exec(l)?.[1]).filter((s): s is string => !!s && net.isIP(s) !== 0);
    }
    this.hostUpstream = list;
    return list;
  }

  /** Asks the upstream servers in turn, from the host's namespace; undefined when none answered. */
  private async forward(msg: Buffer, servers: string[]): Promise<Buffer | undefined> {
    for (const server of servers) {
      const got = await new Promise<Buffer | undefined>((resolve) => {
        const s = dgram.createSocket(net.isIPv6(server) ? 'udp6' : 'udp4');
        const done = (b?: Buffer) => { clearTimeout(timer); try { s.close(); } catch { /* closed */ } resolve(b); };
        const timer = setTimeout(() => done(), FORWARD_TIMEOUT_MS);
        s.on('error', () => done());
        s.on('message', (b) => done(b));
        try { s.send(msg, 53, server, (err) => { if (err) done(); }); } catch { done(); }
      });
      if (got) return got;
    }
    return undefined;
  }
}

/** dgram's lookup for addresses that are already literal IPs (a query's source). */
function literalAddress(address: string, family: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  callback(null, address, net.isIPv6(address) ? 6 : 4);
}

/** An address as the bytes of an A or AAAA record. */
export function addressBytes(ip: string): Buffer {
  if (net.isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  const out = Buffer.alloc(16);
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  h.forEach((g, i) => out.writeUInt16BE(Number.parseInt(g, 16), i * 2));
  t.forEach((g, i) => out.writeUInt16BE(Number.parseInt(g, 16), 16 - (t.length - i) * 2));
  return out;
}

function rcodeBits(rcode: string): number {
  return ({ NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as Record<string, number>)[rcode] ?? 2;
}
