/**
 * The network area's pure parts: IPv4/IPv6 address management (subnet pool that avoids the
 * host's routes, allocation and release, --ip-range) and the nftables rule text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AddressPool, DOCKER0, cidrString, hostRoutes, macForIp, overlaps, parseCidr, pickSubnet, poolCandidates,
} from '../../src/network/ipam';
import {
  AddressPool6, bigToIp6, cidr6String, contains6, hostRoutes6, ip6ToBig, overlaps6, parseCidr6, pickUlaSubnet,
} from '../../src/network/ipam6';
import { Firewall } from '../../src/network/firewall';
import { BerthError } from '../../src/common/errors';

const invalid = (re: RegExp) => (e: unknown) => e instanceof BerthError && e.kind === 'invalid-argument' && re.test(e.message);

test('IPv4 CIDRs: parsing clears host bits; bad input is refused with Docker\'s words', () => {
  assert.equal(cidrString(parseCidr('10.1.2.3/24')), '10.1.2.0/24');
  assert.equal(cidrString(parseCidr('0.0.0.0/0')), '0.0.0.0/0');
  assert.throws(() => parseCidr('10.1.2/33'), invalid(/^invalid CIDR address: 10\.1\.2\/33$/));
  assert.throws(() => parseCidr('10.1.2.300/24'), invalid(/^invalid subnet: 10\.1\.2\.300\/24$/));
  assert.ok(overlaps(parseCidr('10.0.0.0/8'), parseCidr('10.200.1.0/24')));
  assert.ok(!overlaps(parseCidr('10.1.0.0/24'), parseCidr('10.1.1.0/24')));
  assert.equal(macForIp('172.18.0.2'), '02:42:ac:12:00:02');
});

test('the subnet pool skips host routes, existing networks and docker0, and rotates by daemon', () => {
  // /proc/net/route: eth0 192.168.0.0/20 (a host route), the default route (ignored), 172.18.0.0/16.
  const proc = [
    'Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
    'eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00F0FFFF\t0\t0\t0',
    'br0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0',
  ].join('\n');
  const routes = hostRoutes(proc);
  assert.deepEqual(routes.map(cidrString), ['192.168.0.0/20', '172.18.0.0/16']);
  const candidates = poolCandidates(0);
  assert.equal(cidrString(candidates[0]!), '172.18.0.0/16');
  assert.ok(!candidates.some((c) => overlaps(c, DOCKER0)), 'docker0\'s 172.17.0.0/16 is never a candidate');
  assert.equal(cidrString(pickSubnet(candidates, [], routes)!), '172.19.0.0/16');
  assert.equal(cidrString(pickSubnet(candidates, [parseCidr('172.19.0.0/16')], routes)!), '172.20.0.0/16');
  // Only 192.168/16 left: its first /20 is a host route.
  const only192 = poolCandidates(0, [{ base: '192.168.0.0/16', size: 20 }]);
  assert.equal(cidrString(pickSubnet(only192, [], routes)!), '192.168.16.0/20');
  // Another daemon (tag) starts elsewhere in the list.
  assert.notEqual(cidrString(poolCandidates(7)[0]!), cidrString(candidates[0]!));
  // Exhausted: nothing.
  assert.equal(pickSubnet([parseCidr('192.168.0.0/20')], [], routes), undefined);
  // A default-address-pools entry larger than its size is skipped.
  assert.deepEqual(poolCandidates(0, [{ base: '10.0.0.0/24', size: 16 }]), []);
});

test('IPv4 allocation: network, gateway and broadcast skipped, round robin, release, --ip-range', () => {
  const subnet = parseCidr('10.5.0.0/29');
  const pool = new AddressPool(subnet);
  pool.reserve('10.5.0.1'); // gateway
  assert.deepEqual([pool.allocate(), pool.allocate(), pool.allocate()], ['10.5.0.2', '10.5.0.3', '10.5.0.4']);
  pool.release('10.5.0.3');
  // Round robin: a released address is handed out again only after the rest of the range.
  assert.deepEqual([pool.allocate(), pool.allocate(), pool.allocate()], ['10.5.0.5', '10.5.0.6', '10.5.0.3']);
  assert.equal(pool.allocate(), undefined, '.7 is the broadcast address, .0 the network: the pool is full');
  assert.ok(pool.has('10.5.0.6'));

  const ranged = new AddressPool(parseCidr('10.6.0.0/24'), parseCidr('10.6.0.128/30'));
  assert.deepEqual([ranged.allocate(), ranged.allocate(), ranged.allocate(), ranged.allocate(), ranged.allocate()],
    ['10.6.0.128', '10.6.0.129', '10.6.0.130', '10.6.0.131', undefined]);
  // A static address (--ip) outside the range but inside the subnet is reserved, not allocated.
  ranged.reserve('10.6.0.9');
  assert.ok(ranged.has('10.6.0.9'));
});

test('IPv6: text forms, CIDRs, host routes, a ULA /64 that avoids them, allocation', () => {
  assert.equal(bigToIp6(ip6ToBig('2001:0389:0000:0000:0000:0000:0000:f00d')), '2001:389::f00d');
  assert.equal(bigToIp6(ip6ToBig('fd00::')), 'fd00::');
  assert.equal(bigToIp6(ip6ToBig('::1')), '::1');
  assert.equal(bigToIp6(ip6ToBig('1:0:0:2:0:0:0:3')), '1:0:0:2::3', 'the longest run of zeros is the one shortened');
  assert.equal(bigToIp6(ip6ToBig('::ffff:10.1.2.3')), '::ffff:a01:203');
  assert.throws(() => ip6ToBig('fd00::g'), invalid(/invalid IP address/));
  assert.equal(cidr6String(parseCidr6('2001:389::1234/64')), '2001:389::/64');
  assert.throws(() => parseCidr6('fd00::/129'), invalid(/^invalid CIDR address/));
  assert.ok(contains6(parseCidr6('2001:389::/64'), ip6ToBig('2001:389::f00d')));
  assert.ok(!contains6(parseCidr6('2001:389::/64'), ip6ToBig('2001:389:0:1::1')));
  assert.ok(overlaps6(parseCidr6('fd00::/8'), parseCidr6('fd12:3456::/64')));

  const proc = [
    'fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
    'fe800000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
    '00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0',
    'ff000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0',
  ].join('\n');
  const routes = hostRoutes6(proc);
  assert.deepEqual(routes.map(cidr6String), ['fd00::/64'], 'default, link-local and multicast routes do not count');
  // The first random prefix is the host's fd00::/64: the next one is taken.
  const draws = [Buffer.from([0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x12, 0x34, 0x56, 0x78, 0x9a, 0, 1])];
  const got = pickUlaSubnet([], routes, () => draws.shift()!);
  assert.equal(cidr6String(got!), 'fd12:3456:789a:1::/64');
  assert.equal(pickUlaSubnet([parseCidr6('fd00::/8')], [], () => Buffer.alloc(7)), undefined, 'every ULA prefix taken');

  const pool = new AddressPool6(parseCidr6('2001:389::/64'), parseCidr6('2001:389::/126'));
  pool.reserve('2001:389::1'); // gateway
  assert.deepEqual([pool.allocate(), pool.allocate(), pool.allocate()], ['2001:389::2', '2001:389::3', undefined],
    'the subnet-router anycast address ::0 is never handed out');
  pool.release('2001:389::2');
  assert.equal(pool.allocate(), '2001:389::2');
  pool.reserve('2001:389::f00d');
  assert.ok(pool.has('2001:0389::F00D'));
});

test('nftables: the table rendered from bridges and published ports', () => {
  const fw = new Firewall('berth-abcde', 'babcde', '/nonexistent');
  const text = fw.render(
    [
      { bridge: 'babcde11111111', subnet: '172.18.0.0/16', internal: false },
      { bridge: 'babcde22222222', subnet: '10.9.0.0/24', subnet6: 'fd12:3456:789a:1::/64', internal: true },
    ],
    [
      { proto: 'tcp', hostIp: '127.0.0.1', hostPort: 8080, containerIp: '172.18.0.2', containerPort: 80 },
      { proto: 'udp', hostIp: '', hostPort: 5353, containerIp: '172.18.0.3', containerPort: 53 },
    ],
  );
  assert.equal(text, [
    'table ip berth-abcde {}',
    'delete table ip berth-abcde',
    'table ip berth-abcde {',
    '  chain ports {',
    '    ip daddr 127.0.0.1 tcp dport 8080 dnat to 172.18.0.2:80',
    '    udp dport 5353 dnat to 172.18.0.3:53',
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
    '    oifname "babcde11111111" ip saddr 127.0.0.0/8 masquerade',
    '    oifname "babcde22222222" ip saddr 127.0.0.0/8 masquerade',
    '    oifname "babcde11111111" ip saddr 172.18.0.0/16 ct status dnat masquerade',
    '    oifname "babcde22222222" ip saddr 10.9.0.0/24 ct status dnat masquerade',
    '    ip saddr 172.18.0.0/16 oifname != "babcde11111111" masquerade',
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    iifname "babcde11111111" oifname "babcde*" oifname != "babcde11111111" drop',
    '    iifname "babcde22222222" oifname "babcde*" oifname != "babcde22222222" drop',
    '    iifname "babcde22222222" oifname != "babcde22222222" drop',
    '    oifname "babcde22222222" iifname != "babcde22222222" drop',
    '  }',
    '}',
    'table ip6 berth-abcde {}',
    'delete table ip6 berth-abcde',
    'table ip6 berth-abcde {',
    '  chain postrouting {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    '    iifname "babcde22222222" oifname "babcde*" oifname != "babcde22222222" drop',
    '    iifname "babcde22222222" oifname != "babcde22222222" drop',
    '    oifname "babcde22222222" iifname != "babcde22222222" drop',
    '  }',
    '}',
    '',
  ].join('\n'));
  // Without IPv6 networks the ip6 table is only removed; no networks at all: empty chains.
  const bare = fw.render([], []);
  assert.ok(bare.endsWith('table ip6 berth-abcde {}\ndelete table ip6 berth-abcde\n'));
  assert.doesNotMatch(bare, /dnat to|masquerade|drop/);
});
