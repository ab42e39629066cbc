/**
 * The daemon's nftables table: outbound NAT of its bridges, isolation between
 * them, and published ports as DNAT rules (forwarding happens in the kernel, so
 * ports keep answering while berthd is down).
 *
 * One table per data root (`ip berth-<tag>`): nothing of another daemon, of Docker
 * or of the host's own rules is touched. The whole table is rendered from the
 * daemon's state and replaced in one `nft -f` transaction, so a crash never leaves
 * half a rule set, and start-up simply renders it again.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { resolveBinary } from '../engine/binaries';
import { runChild } from '../common/linux';
import { internal } from '../common/errors';

export interface BridgeRules {
  bridge: string;
  subnet: string;
  /** IPv6 subnet of a network with EnableIPv6. */
  subnet6?: string;
  internal: boolean;
}

export interface PortRule {
  proto: 'tcp' | 'udp' | 'sctp';
  /** '' or 0.0.0.0: every local address. */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

export class Firewall {
  private nft: string | undefined;
  private last = '';
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly table: string, readonly bridgePrefix: string, private readonly scratchDir: string) {}

  render(bridges: BridgeRules[], ports: PortRule[]): string {
    const t = this.table;
    const lines = [
      `table ip ${t} {}`,
      `delete table ip ${t}`,
      `table ip ${t} {`,
      '  chain ports {',
      ...ports.map((p) => `    ${p.hostIp && p.hostIp !== '0.0.0.0' ? `ip daddr ${p.hostIp} ` : ''}${p.proto} dport ${p.hostPort} dnat to ${p.containerIp}:${p.containerPort}`),
      '  }',
      '  chain prerouting {',
      '    type nat hook prerouting priority dstnat; policy accept;',
      '    fib daddr type local jump ports',
      '  }',
      '  chain output {',
      '    type nat hook output priority -100; policy accept;',
      '    fib daddr type local jump ports',
      '  }',
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      // Published ports reached from the host's loopback: the container can not answer 127.0.0.1.
      ...bridges.map((b) => `    oifname "${b.bridge}" ip saddr 127.0.0.0/8 masquerade`),
      // Hairpin: a container reaching a published port of its own network through the host's address or the
      // gateway is DNATed back out of the same bridge (bridged at L2 when br_netfilter is loaded, hence no
      // iifname here); the reply must come back through the host, as Docker's.
      ...bridges.map((b) => `    oifname "${b.bridge}" ip saddr ${b.subnet} ct status dnat masquerade`),
      ...bridges.filter((b) => !b.internal).map((b) => `    ip saddr ${b.subnet} oifname != "${b.bridge}" masquerade`),
      '  }',
      ...this.forwardChain(bridges),
      '}',
      ...this.render6(bridges),
    ];
    return lines.join('\n') + '\n';
  }

  /**
   * The IPv6 table (`ip6 berth-<tag>`), present only while a network has IPv6: outbound NAT of its
   * subnets and the same isolation as IPv4. Published ports stay IPv4.
   */
  private render6(bridges: BridgeRules[]): string[] {
    const t = this.table;
    const v6 = bridges.filter((b) => b.subnet6);
    const lines = [`table ip6 ${t} {}`, `delete table ip6 ${t}`];
    if (!v6.length) return lines;
    return [
      ...lines,
      `table ip6 ${t} {`,
      '  chain postrouting {',
      '    type nat hook postrouting priority srcnat; policy accept;',
      ...v6.filter((b) => !b.internal).map((b) => `    ip6 saddr ${b.subnet6} oifname != "${b.bridge}" masquerade`),
      '  }',
      ...this.forwardChain(v6),
      '}',
    ];
  }

  /** No traffic between two of our bridges; internal bridges reach nothing outside (the same for both families). */
  private forwardChain(bridges: BridgeRules[]): string[] {
    const wild = `"${this.bridgePrefix}*"`;
    return [
      '  chain forward {',
      '    type filter hook forward priority filter; policy accept;',
      ...bridges.map((b) => `    iifname "${b.bridge}" oifname ${wild} oifname != "${b.bridge}" drop`),
      ...bridges.filter((b) => b.internal).flatMap((b) => [
        `    iifname "${b.bridge}" oifname != "${b.bridge}" drop`,
        `    oifname "${b.bridge}" iifname != "${b.bridge}" drop`,
      ]),
      '  }',
    ];
  }

  /** Replaces the table (serialised; skipped when nothing changed). */
  apply(bridges: BridgeRules[], ports: PortRule[]): Promise<void> {
    const text = this.render(bridges, ports);
    const run = this.queue.then(async () => {
      if (text === this.last) return;
      await this.load(text);
      this.last = text;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Removes the table (the last network went, or cleanup). */
  async remove(): Promise<void> {
    const run = this.queue.then(async () => {
      await this.load(`table ip ${this.table} {}\ndelete table ip ${this.table}\ntable ip6 ${this.table} {}\ndelete table ip6 ${this.table}\n`);
      this.last = '';
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async load(text: string): Promise<void> {
    this.nft ??= resolveBinary('nft');
    const file = path.join(this.scratchDir, `nft-${process.pid}.rules`);
    await fsp.writeFile(file, text);
    try {
      const r = await runChild(this.nft, ['-f', file], { PATH: process.env.PATH }, 15_000);
      if (r.code !== 0) throw internal(`nft: ${(r.stderr || r.stdout).trim()}`);
    } finally {
      await fsp.rm(file, { force: true });
    }
  }
}
