/**
 * Networks as a user types them (berth and the real docker CLI on one berthd): the
 * seed notes' three-tier app (host -> frontend by published port -> backend by name
 * -> db by alias), the network commands and their errors, connect/disconnect of a
 * running container, isolation, --internal, published ports (all -p forms, -P, port,
 * ps) and their serving across kill -9 of berthd, the embedded DNS with forwarding,
 * and that nothing is left on the host afterwards.
 *
 * Network rule: traffic only to 127.0.0.0/8 and to this daemon's container addresses;
 * subnets are picked where no host route is; the DNS upstream is a fake server on
 * 127.0.0.0/8 run by this test, never the host's resolver.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { busyboxDaemonForFile, networkObjectsOf, ok, waitFor } from '../helpers/daemon';
import { cidr6String, hostRoutes6, pickUlaSubnet } from '../../src/network/ipam6';

/** A 127.0.0.0/8 address for the fake upstream DNS server (port 53, as the daemon forwards there). */
const upstreamIp = `127.88.${Math.floor(Math.random() * 250) + 1}.1`;
/** A second fake server, named only by one container's `--dns`. */
const ownUpstreamIp = upstreamIp.replace(/\.1$/, '.2');
const d = busyboxDaemonForFile({ config: { dns: [upstreamIp] } });
const berth = (...args: string[]) => d.cli(args);
const docker = (...args: string[]) => d.docker(args);

/** A fake upstream DNS server on ip:53 that knows one name. */
async function fakeUpstream(ip: string, name: string, address: string): Promise<dgram.Socket> {
  const sock = dgram.createSocket('udp4');
  sock.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    const answers = q.questions?.[0]?.name === name && q.questions[0].type === 'A'
      ? [{ type: 'A' as const, name, ttl: 60, data: address }] : [];
    const known = q.questions?.[0]?.name === name;
    // NXDOMAIN (rcode 3) for names it does not know, as a real server answers.
    sock.send(dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_AVAILABLE | (known ? 0 : 3), questions: q.questions, answers }), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(53, ip, r));
  return sock;
}

const upstreams: dgram.Socket[] = [];
before(async () => {
  upstreams.push(await fakeUpstream(upstreamIp, 'upstream.example', '10.9.9.9'));
  upstreams.push(await fakeUpstream(ownUpstreamIp, 'own.example', '10.8.8.8'));
});
after(() => { for (const u of upstreams) u.close(); });

/** IPv4 routes of the host, to pick test subnets no route uses. */
function routes(): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const line of fs.readFileSync('/proc/net/route', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const le = (h: string) => Buffer.from(h, 'hex').readUInt32LE(0);
    out.push([le(f[1]!), le(f[7]!)]);
  }
  return out;
}

const usedSubnets = new Set<string>();
/** A free 10.x.y.0/24 (random, checked against the host's routes). */
function freeSubnet(): { subnet: string; prefix: string } {
  for (let i = 0; i < 1000; i++) {
    const a = 200 + Math.floor(Math.random() * 50);
    const b = Math.floor(Math.random() * 256);
    const base = ((10 << 24) | (a << 16) | (b << 8)) >>> 0;
    if (usedSubnets.has(`${a}.${b}`)) continue;
    if (routes().some(([dest, mask]) => mask !== 0 && ((base & mask) >>> 0) === dest)) continue;
    usedSubnets.add(`${a}.${b}`);
    return { subnet: `10.${a}.${b}.0/24`, prefix: `10.${a}.${b}` };
  }
  throw new Error('no free test subnet');
}

/** A TCP port nothing listens on right now (the kernel's choice). */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // insecureHTTPParser: busybox httpd passes CGI headers on with bare LFs.
    const req = http.get(url, { timeout: 5000, insecureHTTPParser: true }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on('error', reject);
  });
}

/** Waits until the published port answers (the server in the container starts after `run -d` returns). */
const served = (url: string) => waitFor(`${url} to answer`, () => httpGet(url).then((r) => (r.status === 200 ? r : null), () => null))
  .then((r) => r!);

/** A shell line that writes a CGI script printing `body` (evaluated per request) under /w/cgi-bin. */
const cgi = (file: string, body: string) =>
  `mkdir -p /w/cgi-bin && { echo '#!/bin/sh'; echo 'echo Content-Type: text/plain'; echo 'echo'; echo '${body}'; } > /w/cgi-bin/${file} && chmod +x /w/cgi-bin/${file}`;

test('the three-tier app through the docker CLI: host -> frontend (published) -> backend (name) -> db (alias)', async () => {
  const { subnet } = freeSubnet();
  ok(await docker('network', 'create', '--subnet', subnet, 'leafy-network'));
  ok(await docker('run', '-d', '--name', 'leafy-db', '--network', 'leafy-network', '--network-alias', 'leafy-postgres', 'busybox',
    'sh', '-c', 'mkdir -p /w && echo db-ok > /w/index.html && exec httpd -f -p 5432 -h /w'));
  ok(await docker('run', '-d', '--name', 'backend', '--network', 'leafy-network', '-e', 'DB_URL=leafy-postgres', 'busybox',
    'sh', '-c', `${cgi('q', 'echo backend-saw:$(wget -qO- http://leafy-postgres:5432/)')} && exec httpd -f -p 8080 -h /w`));
  const port = await freePort();
  ok(await docker('run', '-d', '--name', 'frontend', '--network', 'leafy-network', '-p', `127.0.0.1:${port}:80`, 'busybox',
    'sh', '-c', `${cgi('f', 'echo frontend-saw:$(wget -qO- http://backend:8080/cgi-bin/q)')} && exec httpd -f -p 80 -h /w`));
  const r = await served(`http://127.0.0.1:${port}/cgi-bin/f`);
  assert.equal(r.body.trim(), 'frontend-saw:backend-saw:db-ok');

  // What docker shows about it.
  assert.equal(ok(await docker('port', 'frontend')).stdout, `80/tcp -> 127.0.0.1:${port}\n`);
  assert.match(ok(await docker('ps', '--filter', 'name=frontend', '--format', '{{.Ports}}')).stdout, new RegExp(`^127\\.0\\.0\\.1:${port}->80/tcp\n$`));
  const ins = JSON.parse(ok(await docker('inspect', 'backend')).stdout)[0];
  assert.equal(ins.HostConfig.NetworkMode, 'leafy-network');
  const ep = ins.NetworkSettings.Networks['leafy-network'];
  assert.ok(ep.IPAddress.startsWith(subnet.slice(0, subnet.lastIndexOf('.'))), ep.IPAddress);
  assert.equal(ep.Gateway, subnet.replace(/0\/24$/, '1'));
  assert.equal(ep.IPPrefixLen, 24);
  assert.match(ep.MacAddress, /^02:42:0a:/);
  assert.deepEqual(ep.DNSNames, ['backend', ins.Id.slice(0, 12)]);
  assert.equal(ins.NetworkSettings.IPAddress, '', 'top-level address fields are the default bridge\'s only');
  const n = JSON.parse(ok(await docker('network', 'inspect', 'leafy-network')).stdout)[0];
  const ids = ok(await docker('inspect', '-f', '{{.Id}}', 'leafy-db', 'backend', 'frontend')).stdout.split('\n').filter(Boolean);
  assert.deepEqual(Object.keys(n.Containers).sort(), ids.sort());
  assert.equal(n.Containers[ins.Id].IPv4Address, `${ep.IPAddress}/24`);

  // The embedded DNS: names, aliases and short ids of this network; others forwarded to daemon.json `dns`.
  const look = ok(await docker('run', '--rm', '--network', 'leafy-network', 'busybox', 'sh', '-c',
    `cat /etc/resolv.conf; nslookup leafy-postgres; nslookup ${ins.Id.slice(0, 12)}; nslookup upstream.example`)).stdout;
  assert.match(look, /^nameserver 127\.0\.0\.11$/m);
  assert.match(look, new RegExp(`Name:\\s+${ins.Id.slice(0, 12)}\\nAddress: ${ep.IPAddress.replace(/\./g, '\\.')}`));
  assert.match(look, /Name:\s+upstream\.example\nAddress: 10\.9\.9\.9/);

  const busy = await docker('network', 'rm', 'leafy-network');
  assert.equal(busy.code, 1);
  assert.match(busy.stderr, /error while removing network: network leafy-network id [0-9a-f]{64} has active endpoints/);
  ok(await docker('rm', '-f', 'frontend', 'backend', 'leafy-db'));
  ok(await docker('network', 'rm', 'leafy-network'));
  await assert.rejects(httpGet(`http://127.0.0.1:${port}/`), 'the port is not published any more');
});

test('network commands: ls shows the predefined networks; create/inspect/rm/prune with Docker\'s errors', async () => {
  const ls = ok(await berth('network', 'ls')).stdout.split('\n');
  assert.match(ls[0]!, /^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$/);
  for (const [name, driver] of [['bridge', 'bridge'], ['host', 'host'], ['none', 'null']]) {
    assert.ok(ls.some((l) => new RegExp(`^[0-9a-f]{12}\\s+${name}\\s+${driver}\\s+local$`).test(l)), `${name} in:\n${ls.join('\n')}`);
  }
  const { subnet, prefix } = freeSubnet();
  const id = ok(await berth('network', 'create', '--subnet', subnet, '--gateway', `${prefix}.254`, '--ip-range', `${prefix}.128/25`,
    '--label', 'team=a', '--internal', 'backend-net')).stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const n = JSON.parse(ok(await berth('network', 'inspect', 'backend-net')).stdout)[0];
  assert.deepEqual(n.IPAM.Config, [{ Subnet: subnet, Gateway: `${prefix}.254`, IPRange: `${prefix}.128/25` }]);
  assert.equal(n.Internal, true);
  assert.deepEqual(n.Labels, { team: 'a' });
  assert.equal(n.Driver, 'bridge');

  // a container on it: address from the range, no default route (internal)
  const out = ok(await berth('run', '--rm', '--network', 'backend-net', 'busybox', 'sh', '-c', 'ip -4 addr show eth0; ip route')).stdout;
  const addr = /inet (\d+\.\d+\.\d+\.(\d+))\/24/.exec(out);
  assert.ok(addr && Number(addr[2]) >= 128, out);
  assert.doesNotMatch(out, /default/);
  // --ip, --mac-address
  const fixed = ok(await berth('run', '--rm', '--network', 'backend-net', '--ip', `${prefix}.200`, '--mac-address', '02:42:aa:bb:cc:dd',
    'busybox', 'ip', 'addr', 'show', 'eth0')).stdout;
  assert.match(fixed, new RegExp(`inet ${prefix.replace(/\./g, '\\.')}\\.200/24`));
  assert.match(fixed, /link\/ether 02:42:aa:bb:cc:dd/);
  const outside = await berth('run', '--rm', '--network', 'backend-net', '--ip', '10.1.2.3', 'busybox', 'true');
  assert.equal(outside.code, 125);
  assert.match(outside.stderr, /no configured subnet or ip-range contain the IP address 10\.1\.2\.3/);

  const dup = await berth('network', 'create', 'backend-net');
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /network with name backend-net already exists/);
  const overlap = await berth('network', 'create', '--subnet', subnet, 'other');
  assert.match(overlap.stderr, /Pool overlaps with other one on this address space/);
  const badGw = await berth('network', 'create', '--subnet', freeSubnet().subnet, '--gateway', '10.1.1.1', 'bad');
  assert.match(badGw.stderr, /no matching subnet for gateway 10\.1\.1\.1/);
  const badSubnet = await berth('network', 'create', '--subnet', '10.1.2/33', 'bad');
  assert.match(badSubnet.stderr, /invalid CIDR address: 10\.1\.2\/33/);
  const pre = await berth('network', 'rm', 'bridge');
  assert.match(pre.stderr, /bridge is a pre-defined network and cannot be removed/);
  const unknown = await berth('run', '--rm', '--network', 'nosuchnet', 'busybox', 'true');
  assert.equal(unknown.code, 125);
  assert.match(unknown.stderr, /network nosuchnet not found/);
  assert.equal((await d.api('GET', '/networks/nosuchnet')).status, 404);

  const filtered = ok(await berth('network', 'ls', '--filter', 'label=team=a', '--format', '{{.Name}}')).stdout;
  assert.equal(filtered, 'backend-net\n');
  ok(await berth('network', 'create', 'spare'));
  const pruned = ok(await berth('network', 'prune', '-f', '--filter', 'label=team=a')).stdout;
  assert.equal(pruned, 'Deleted Networks:\nbackend-net\n');
  assert.equal(ok(await berth('network', 'rm', 'spare')).stdout, 'spare\n');
});

test('connect and disconnect a running container: interfaces appear and go; networks are isolated', async () => {
  const a = freeSubnet();
  const b = freeSubnet();
  ok(await berth('network', 'create', '--subnet', a.subnet, 'net-a'));
  ok(await berth('network', 'create', '--subnet', b.subnet, 'net-b'));
  ok(await berth('run', '-d', '--name', 'on-b', '--network', 'net-b', 'busybox', 'sh', '-c', 'mkdir /w && echo on-b > /w/index.html && exec httpd -f -p 80 -h /w'));
  ok(await berth('run', '-d', '--name', 'mover', '--network', 'net-a', 'busybox', 'sleep', '300'));
  const ipB = ok(await berth('inspect', '-f', '{{(index .NetworkSettings.Networks "net-b").IPAddress}}', 'on-b')).stdout.trim();

  // not connected: no route to net-b, no name
  const isolated = await berth('exec', 'mover', 'wget', '-T', '2', '-qO-', `http://${ipB}/`);
  assert.notEqual(isolated.code, 0);

  ok(await berth('network', 'connect', '--alias', 'moved', 'net-b', 'mover'));
  const addrs = ok(await berth('exec', 'mover', 'ip', '-4', 'addr')).stdout;
  assert.match(addrs, new RegExp(`eth1.*\\n.*inet ${b.prefix.replace(/\./g, '\\.')}\\.\\d+/24`));
  assert.equal(ok(await berth('exec', 'mover', 'wget', '-qO-', 'http://on-b/')).stdout, 'on-b\n');
  const nets = JSON.parse(ok(await berth('inspect', '-f', '{{json .NetworkSettings.Networks}}', 'mover')).stdout);
  assert.deepEqual(Object.keys(nets).sort(), ['net-a', 'net-b']);
  assert.deepEqual(nets['net-b'].Aliases, ['moved']);
  assert.match(ok(await berth('exec', 'on-b', 'nslookup', 'moved')).stdout, /Name:\s+moved/);

  ok(await berth('network', 'disconnect', 'net-b', 'mover'));
  assert.doesNotMatch(ok(await berth('exec', 'mover', 'ip', '-4', 'addr')).stdout, /eth1/);
  const again = await berth('network', 'disconnect', 'net-b', 'mover');
  assert.match(again.stderr, /is not connected to network net-b/);

  // a stopped container: connected for its next start
  ok(await berth('create', '--name', 'later', '--network', 'net-a', 'busybox', 'ip', '-4', 'addr'));
  ok(await berth('network', 'connect', 'net-b', 'later'));
  const started = ok(await berth('start', '-a', 'later')).stdout;
  assert.match(started, /eth0[\s\S]*eth1/);

  ok(await berth('rm', '-f', 'mover', 'on-b', 'later'));
  ok(await berth('network', 'rm', 'net-a', 'net-b'));
});

test('published ports: every -p form, -P, port and ps; a clash is refused; served across kill -9 of berthd', async () => {
  const p1 = await freePort();
  const p2 = await freePort();
  const web = 'mkdir -p /w && echo hello > /w/index.html && exec httpd -f -p 80 -h /w';
  ok(await berth('run', '-d', '--name', 'web', '-p', `127.0.0.1:${p1}:80`, '-p', `${p2}:80/tcp`, '-p', '127.0.0.1::81', '--expose', '82',
    'busybox', 'sh', '-c', web));
  const ports = JSON.parse(ok(await berth('inspect', '-f', '{{json .NetworkSettings.Ports}}', 'web')).stdout);
  assert.deepEqual(Object.keys(ports).sort(), ['80/tcp', '81/tcp', '82/tcp']);
  assert.equal(ports['82/tcp'], null);
  assert.equal(ports['81/tcp'][0].HostIp, '127.0.0.1');
  assert.ok(Number(ports['81/tcp'][0].HostPort) > 1024);
  assert.equal((await served(`http://127.0.0.1:${p1}/`)).body, 'hello\n');
  assert.equal((await httpGet(`http://127.0.0.1:${p2}/`)).body, 'hello\n', 'a 0.0.0.0 port answers on loopback too');
  const portOut = ok(await berth('port', 'web', '80')).stdout.split('\n').filter(Boolean).sort();
  assert.deepEqual(portOut, [`0.0.0.0:${p2}`, `127.0.0.1:${p1}`].sort());

  // the default bridge: an address, the gateway as host-gateway
  const ins = JSON.parse(ok(await berth('inspect', 'web')).stdout)[0];
  assert.equal(ins.HostConfig.NetworkMode, 'bridge');
  assert.match(ins.NetworkSettings.IPAddress, /^\d+\.\d+\.\d+\.\d+$/);
  assert.equal(ins.NetworkSettings.Networks.bridge.IPAddress, ins.NetworkSettings.IPAddress);
  const hosts = ok(await berth('run', '--rm', '--add-host', 'host.docker.internal:host-gateway', 'busybox', 'sh', '-c',
    'cat /etc/hosts; ping -c1 -W2 host.docker.internal >/dev/null && echo reached')).stdout;
  assert.match(hosts, new RegExp(`^${ins.NetworkSettings.Gateway.replace(/\./g, '\\.')}\\thost\\.docker\\.internal$`, 'm'));
  assert.match(hosts, /^reached$/m);

  // -P publishes the exposed ports
  ok(await berth('run', '-d', '--name', 'webp', '--expose', '80', '-P', 'busybox', 'sh', '-c', web));
  const pp = ok(await berth('port', 'webp', '80/tcp')).stdout.trim();
  assert.match(pp, /^0\.0\.0\.0:\d+$/);
  assert.equal((await served(`http://127.0.0.1:${pp.split(':')[1]}/`)).body, 'hello\n');

  // clash
  const clash = await berth('run', '-d', '--name', 'web2', '-p', `127.0.0.1:${p1}:80`, 'busybox', 'true');
  assert.equal(clash.code, 125);
  assert.match(clash.stderr, new RegExp(`driver failed programming external connectivity on endpoint web2 \\([0-9a-f]+\\): Bind for 127\\.0\\.0\\.1:${p1} failed: port is already allocated`));
  ok(await berth('rm', 'web2'));
  const bad = await berth('run', '--rm', '-p', '80:http', 'busybox', 'true');
  assert.notEqual(bad.code, 0);

  // the kernel forwards: the port answers while berthd is dead and after it restarts
  await d.kill9();
  assert.equal((await httpGet(`http://127.0.0.1:${p1}/`)).body, 'hello\n');
  await d.restart();
  assert.equal((await httpGet(`http://127.0.0.1:${p1}/`)).body, 'hello\n');
  const row = ok(await berth('ps', '--format', '{{.Names}} {{.Ports}}')).stdout.split('\n').find((l) => l.startsWith('web '));
  assert.match(row ?? '', new RegExp(`127\\.0\\.0\\.1:${p1}->80/tcp`));

  ok(await berth('rm', '-f', 'web', 'webp'));
  await assert.rejects(httpGet(`http://127.0.0.1:${p1}/`));
});

test('--dns on a user network: the embedded DNS forwards to the container\'s own servers; --dns-search and --dns-option in resolv.conf', async () => {
  const { subnet } = freeSubnet();
  ok(await berth('network', 'create', '--subnet', subnet, 'dns-net'));
  ok(await berth('run', '-d', '--name', 'dns-peer', '--network', 'dns-net', 'busybox', 'sleep', '300'));
  const conf = ok(await docker('run', '--rm', '--network', 'dns-net', '--dns', ownUpstreamIp, '--dns-search', 'corp.example',
    '--dns-option', 'ndots:3', '--dns-option', 'timeout:2', 'busybox', 'cat', '/etc/resolv.conf')).stdout;
  assert.equal(conf, 'nameserver 127.0.0.11\nsearch corp.example\noptions ndots:3 timeout:2\n',
    'the embedded server (not the --dns one), the search list, and the user\'s ndots kept as Docker keeps it');
  const out = ok(await docker('run', '--rm', '--network', 'dns-net', '--dns', ownUpstreamIp, 'busybox', 'sh', '-c',
    'nslookup own.example; nslookup dns-peer; nslookup upstream.example || echo upstream-not-asked')).stdout;
  assert.match(out, /Name:\s+own\.example\nAddress: 10\.8\.8\.8/);
  assert.match(out, /Name:\s+dns-peer\nAddress: \d+\.\d+\.\d+\.\d+/, 'container names are still answered by the embedded DNS');
  assert.match(out, /upstream-not-asked/, 'daemon.json dns is not asked when the container names its own servers');
  // Without --dns: daemon.json `dns`, and ndots:0 by default.
  const plain = ok(await berth('run', '--rm', '--network', 'dns-net', 'busybox', 'sh', '-c', 'grep options /etc/resolv.conf; nslookup upstream.example')).stdout;
  assert.match(plain, /^options ndots:0$/m);
  assert.match(plain, /Name:\s+upstream\.example\nAddress: 10\.9\.9\.9/);
  ok(await berth('rm', '-f', 'dns-peer'));
  ok(await berth('network', 'rm', 'dns-net'));
});

test('hairpin: a container reaches its own published port through the gateway, as on Docker', async () => {
  const port = await freePort();
  ok(await berth('run', '-d', '--name', 'hairpin', '-p', `${port}:80`, 'busybox', 'sh', '-c',
    'mkdir -p /w && echo hairpin-ok > /w/index.html && exec httpd -f -p 80 -h /w'));
  await served(`http://127.0.0.1:${port}/`);
  const gw = ok(await berth('inspect', '-f', '{{.NetworkSettings.Gateway}}', 'hairpin')).stdout.trim();
  // (busybox wget -T crashes in this busybox: no -T here.)
  assert.equal(ok(await berth('exec', 'hairpin', 'wget', '-qO-', `http://${gw}:${port}/`)).stdout, 'hairpin-ok\n');
  // Another container of the same network, the same way.
  assert.equal(ok(await berth('run', '--rm', 'busybox', 'wget', '-qO-', `http://${gw}:${port}/`)).stdout, 'hairpin-ok\n');
  ok(await berth('rm', '-f', 'hairpin'));
});

test('docker build --network: RUN steps on a user network, on none, and on the default bridge', async () => {
  const build = (...args: string[]) => d.docker(['build', ...args], { env: { DOCKER_BUILDKIT: '0' }, timeoutMs: 120_000 });
  const { subnet } = freeSubnet();
  ok(await berth('network', 'create', '--subnet', subnet, 'build-net'));
  ok(await berth('run', '-d', '--name', 'build-target', 'busybox', 'sleep', '300'));
  ok(await berth('network', 'connect', '--alias', 'pingtarget.docker', 'build-net', 'build-target'));
  const dir = fs.mkdtempSync('/tmp/bt-netbuild-');
  try {
    fs.writeFileSync(`${dir}/Dockerfile`, 'FROM busybox\nRUN ping -c1 -W2 pingtarget.docker\n');
    const onNet = ok(await build('--network', 'build-net', '-t', 'netbuild:1', dir));
    assert.match(onNet.stdout, /1 packets received/);
    const none = await build('--network', 'none', '--no-cache', '-t', 'netbuild:2', dir);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /returned a non-zero code: 1/);
    // The default (bridge, as dockerd's classic builder): an eth0 with the bridge's default route.
    fs.writeFileSync(`${dir}/Dockerfile`, 'FROM busybox\nRUN ip route | grep "^default via"\n');
    assert.match(ok(await build('-t', 'netbuild:3', dir)).stdout, /default via \d+\.\d+\.\d+\.\d+ dev eth0/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  ok(await berth('rm', '-f', 'build-target'));
  ok(await berth('network', 'rm', 'build-net'));
  ok(await berth('rmi', 'netbuild:1', 'netbuild:3'));
});

test('IPv6: network create --ipv6 with a ULA subnet, --ip6, addresses and AAAA names between containers, inspect as Docker', async () => {
  const ula = pickUlaSubnet([], hostRoutes6());
  assert.ok(ula, 'a ULA /64 no host route uses');
  const subnet = cidr6String(ula);
  const prefix = subnet.replace(/::\/64$/, '');
  const { subnet: subnet4 } = freeSubnet();
  ok(await docker('network', 'create', '--ipv6', '--subnet', subnet4, '--subnet', subnet, 'v6-net'));
  const n = JSON.parse(ok(await docker('network', 'inspect', 'v6-net')).stdout)[0];
  assert.equal(n.EnableIPv6, true);
  assert.deepEqual(n.IPAM.Config[1], { Subnet: subnet, Gateway: `${prefix}::1` });
  ok(await docker('run', '-d', '--name', 'v6-a', '--network', 'v6-net', 'busybox', 'sleep', '300'));
  const out = ok(await docker('run', '--rm', '--network', 'v6-net', '--ip6', `${prefix}::f00d`, 'busybox', 'sh', '-c',
    'ip -6 addr show eth0; ip -6 route; ping6 -c1 -W2 v6-a && echo by-name-ok; nslookup -type=AAAA v6-a; cat /etc/hosts')).stdout;
  assert.match(out, new RegExp(`inet6 ${prefix}::f00d/64 scope global`));
  assert.match(out, new RegExp(`default via ${prefix}::1 dev eth0`));
  assert.match(out, /^by-name-ok$/m);
  assert.match(out, new RegExp(`^${prefix}::f00d\t[0-9a-f]{12}$`, 'm'), 'its IPv6 address in /etc/hosts too');
  const ins = JSON.parse(ok(await docker('inspect', 'v6-a')).stdout)[0].NetworkSettings.Networks['v6-net'];
  assert.equal(ins.GlobalIPv6Address, `${prefix}::2`);
  assert.equal(ins.GlobalIPv6PrefixLen, 64);
  assert.equal(ins.IPv6Gateway, `${prefix}::1`);
  assert.match(out, new RegExp(`Name:\\s+v6-a\\nAddress: ${prefix}::2`));
  const members = JSON.parse(ok(await docker('network', 'inspect', '-f', '{{json .Containers}}', 'v6-net')).stdout);
  assert.equal(Object.values<any>(members)[0].IPv6Address, `${prefix}::2/64`);
  // The address asked for is kept in IPAMConfig (docker-py checks it there).
  ok(await berth('create', '--name', 'v6-b', '--network', 'v6-net', '--ip6', `${prefix}::b`, 'busybox', 'true'));
  assert.deepEqual(JSON.parse(ok(await berth('inspect', '-f', '{{json (index .NetworkSettings.Networks "v6-net").IPAMConfig}}', 'v6-b')).stdout),
    { IPv6Address: `${prefix}::b` });

  const outside = await docker('run', '--rm', '--network', 'v6-net', '--ip6', 'fd00:dead::1', 'busybox', 'true');
  assert.equal(outside.code, 125);
  assert.match(outside.stderr, /no configured subnet or ip-range contain the IP address fd00:dead::1/);
  const notEnabled = await berth('network', 'create', '--subnet', 'fd00:beef::/64', 'v6-off');
  assert.match(notEnabled.stderr, /IPv6 is not enabled on the network/);
  const overlap = await berth('network', 'create', '--ipv6', '--subnet', `${prefix}::/80`, 'v6-overlap');
  assert.match(overlap.stderr, /Pool overlaps with other one on this address space/);
  // --ipv6 alone: a ULA /64 chosen by the daemon.
  ok(await berth('network', 'create', '--ipv6', 'v6-auto'));
  const auto = JSON.parse(ok(await berth('network', 'inspect', 'v6-auto')).stdout)[0].IPAM.Config[1].Subnet as string;
  assert.match(auto, /^fd[0-9a-f]{2}:[0-9a-f]{1,4}:[0-9a-f]{1,4}:[0-9a-f]{1,4}::\/64$/);

  ok(await berth('rm', '-f', 'v6-a', 'v6-b'));
  ok(await berth('network', 'rm', 'v6-net', 'v6-auto'));
  assert.equal(networkObjectsOf(d.dataRoot).table6, false, 'the ip6 table goes with the last IPv6 network');
});

test('nothing is left on the host: no veth, namespace or port rule once the containers are gone', async () => {
  ok(await berth('run', '--rm', 'busybox', 'true'));
  // A graceful stop waits for the cleanups that follow removals.
  await d.restart();
  const left = networkObjectsOf(d.dataRoot);
  assert.deepEqual(left.links.filter((l) => l.startsWith('v')), [], 'no veth left');
  assert.deepEqual(fs.readdirSync(`${d.execRoot}/netns`), [], 'no namespace file left');
  assert.deepEqual(fs.readdirSync(`${d.execRoot}/net`).filter((f) => f.endsWith('.json')), [], 'no sandbox record left');
  assert.ok(left.links.some((l) => l.startsWith('b')), 'the bridges stay, as docker0 does');
});
