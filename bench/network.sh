#!/usr/bin/env bash
# Networking, side by side in one run: berthd on its default bridge against a dockerd started by
# the benchmark on a bridge of its own (`--bridge <ours> --iptables=false --ip-forward=false`, so
# neither docker0 nor the host's firewall is touched; its published ports go through docker-proxy).
#   1. `run --rm busybox true` on the default bridge (hyperfine)
#   2. TCP throughput host -> container through a port published on 127.0.0.1
#   3. DNS lookups of a container name per second from inside a container on a user network
#   4. engine memory per idle container on the default bridge (PSS of the engine's own processes)
# Results go to docs/benchmarks.md. Needs: npm run build done, root, hyperfine, docker.io.
set -euo pipefail
RUNS=${RUNS:-20}
MB=${MB:-1000}
LOOKUPS=${LOOKUPS:-500}
N=${N:-10}

# A /24 no host route uses, for dockerd's bridge and the two user networks.
free_subnets() { # count -> "10.a.b" prefixes
  node -e '
    const fs = require("node:fs");
    const routes = fs.readFileSync("/proc/net/route", "utf8").split("\n").slice(1).map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 8).map((f) => [Buffer.from(f[1], "hex").readUInt32LE(0), Buffer.from(f[7], "hex").readUInt32LE(0)]);
    const out = new Set();
    while (out.size < Number(process.argv[1])) {
      const a = 240 + Math.floor(Math.random() * 15), b = Math.floor(Math.random() * 256);
      const base = ((10 << 24) | (a << 16) | (b << 8)) >>> 0;
      if (!routes.some(([d, m]) => m !== 0 && ((base & m) >>> 0) === d)) out.add(`10.${a}.${b}`);
    }
    console.log([...out].join(" "));' "$1"
}
read -r DNET BNET1 BNET2 <<<"$(free_subnets 3)"
DOCKERD_BRIDGE=bbd$$
DOCKERD_BRIDGE=${DOCKERD_BRIDGE:0:15}
BERTHD_ARGS=(--ip-forward=false)
source "$(dirname "$0")/lib.sh"
ip link add "$DOCKERD_BRIDGE" type bridge
ip addr add "$DNET.1/24" dev "$DOCKERD_BRIDGE"
ip link set "$DOCKERD_BRIDGE" up
network_cleanup() {
  set +e
  for s in "$DOCKERD_SOCK"; do
    DOCKER_HOST=unix://$s "$DOCKER_CLI" rm -f $(DOCKER_HOST=unix://$s "$DOCKER_CLI" ps -aq 2>/dev/null) >/dev/null 2>&1
    DOCKER_HOST=unix://$s "$DOCKER_CLI" network rm benchnet >/dev/null 2>&1
  done
  bench_cleanup
  ip link del "$DOCKERD_BRIDGE" 2>/dev/null
}
trap network_cleanup EXIT
start_engines_with_busybox
B=(env DOCKER_HOST=unix://$BERTH_SOCK "$DOCKER_CLI")
D=(env DOCKER_HOST=unix://$DOCKERD_SOCK "$DOCKER_CLI")
"${B[@]}" run --rm busybox true
"${D[@]}" run --rm busybox true

echo "==> run --rm on the default bridge"
hyperfine -N --runs "$RUNS" --warmup 3 --style basic --export-json "$BENCH_BASE/net-run.json" \
  -n "docker CLI → berthd (bridge)" "env DOCKER_HOST=unix://$BERTH_SOCK $DOCKER_CLI run --rm busybox true" \
  -n "docker CLI → dockerd (bridge)" "env DOCKER_HOST=unix://$DOCKERD_SOCK $DOCKER_CLI run --rm busybox true"

echo "==> TCP throughput through a published port ($MB MB, best of 3)"
throughput() { # engine-cmd... -> MB/s
  # One sink container per run: busybox nc ends when the sender closes; its stdin is a pipe that stays open
  # (with /dev/null as stdin nc would close the connection at once). tcp-send fails (and is run again) while
  # nothing listens yet: refused by berthd's DNAT, or reset by docker-proxy when it cannot reach the container.
  local port best=0 v
  port=$(node -e 'const s=require("node:net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
  for _ in 1 2 3; do
    "$@" run -d --name sink -p "127.0.0.1:$port:5000" busybox sh -c 'sleep 100000 | nc -l -p 5000 >/dev/null' >/dev/null
    v=0
    for _ in $(seq 1 100); do v=$(node "$REPO/bench/tcp-send.js" "$port" "$MB" 2>/dev/null) && break; v=0; sleep 0.1; done
    best=$(node -e 'console.log(Math.max(Number(process.argv[1]), Number(process.argv[2])))' "$best" "$v")
    "$@" rm -f sink >/dev/null
  done
  echo "$best"
}
TP_B=$(throughput "${B[@]}")
TP_D=$(throughput "${D[@]}")
echo "berthd $TP_B MB/s, dockerd $TP_D MB/s"

echo "==> DNS lookups of a container name ($LOOKUPS from inside a container)"
lookups() { # subnet engine-cmd... -> lookups/s
  local net=$1; shift
  "$@" network create --subnet "$net.0/24" benchnet >/dev/null
  "$@" run -d --name target --network benchnet busybox sleep 3600 >/dev/null
  "$@" run --rm --network benchnet busybox sh -c "
    a=\$(cut -d' ' -f1 /proc/uptime); i=0
    while [ \$i -lt $LOOKUPS ]; do nslookup target >/dev/null || exit 1; i=\$((i+1)); done
    b=\$(cut -d' ' -f1 /proc/uptime); echo \"\$a \$b\"" | awk -v n="$LOOKUPS" '{ printf "%.0f\n", n / ($2 - $1) }'
  "$@" rm -f target >/dev/null
  "$@" network rm benchnet >/dev/null
}
DNS_B=$(lookups "$BNET1" "${B[@]}")
DNS_D=$(lookups "$BNET2" "${D[@]}")
echo "berthd $DNS_B lookups/s, dockerd $DNS_D lookups/s"

echo "==> memory per idle container on the default bridge ($N containers)"
engine_pss() { # subdir daemon-pid -> PSS kB of the daemon and every process naming the engine's roots
  sleep 2
  local total=0 v pid
  for pid in $( { echo "$2"; echo "$BENCH_BASE/$1/" | grep -l -a -F -f - /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 | grep -vx "$$"; } | sort -u); do
    v=$(awk '$1 == "Pss:" { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
per_container() { # subdir pid engine-cmd... -> kB per container
  local sub=$1 pid=$2; shift 2
  local before after
  before=$(engine_pss "$sub" "$pid")
  for _ in $(seq 1 "$N"); do "$@" run -d busybox sleep 3600 >/dev/null; done
  after=$(engine_pss "$sub" "$pid")
  "$@" rm -f $("$@" ps -aq) >/dev/null
  echo $(( (after - before) / N ))
}
MEM_B=$(per_container berth "$BERTHD_PID" "${B[@]}")
MEM_D=$(per_container dockerd "$DOCKERD_PID" "${D[@]}")
echo "berthd $MEM_B kB, dockerd $MEM_D kB per container"

REPO="$REPO" node - "$BENCH_BASE/net-run.json" "$TP_B" "$TP_D" "$DNS_B" "$DNS_D" "$MEM_B" "$MEM_D" "$MB" "$LOOKUPS" "$N" "$RUNS" "$REPO/docs/benchmarks.md" <<'JS'
const fs = require('node:fs');
const os = require('node:os');
const { writeSection } = require(process.env.REPO + '/bench/md-section');
const [json, tpB, tpD, dnsB, dnsD, memB, memD, mb, lookups, n, runs, md] = process.argv.slice(2);
const results = JSON.parse(fs.readFileSync(json, 'utf8')).results;
const med = (p) => results.find((r) => r.command.startsWith(p)).median;
const rb = med('docker CLI → berthd'), rd = med('docker CLI → dockerd');
const goal = (ok, text) => (ok ? `met (${text})` : `**not met** (goal ${text})`);
const r = (a, b) => Number(a) / Number(b);
const lines = [
  `Measured ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} on ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'cpu'}).`,
  '',
  '| measurement | berthd | dockerd | ratio | goal |',
  '|---|---|---|---|---|',
  `| \`run --rm busybox true\` on the default bridge, median of ${runs} | ${(rb * 1000).toFixed(1)} ms | ${(rd * 1000).toFixed(1)} ms | ${(rb / rd).toFixed(2)}× | ${goal(rb / rd <= 0.35, '≤ 0.35×')} |`,
  `| TCP host → container via \`-p 127.0.0.1:P:5000\`, ${mb} MB, best of 3 | ${tpB} MB/s | ${tpD} MB/s (docker-proxy) | ${r(tpB, tpD).toFixed(2)}× | ${goal(r(tpB, tpD) >= 1.5, '≥ 1.5×')} |`,
  `| DNS lookups of a container name from a container (${lookups} × busybox nslookup) | ${dnsB}/s | ${dnsD}/s | ${r(dnsB, dnsD).toFixed(2)}× | ${goal(r(dnsB, dnsD) >= 1.0, '≥ 1.0×')} |`,
  `| engine memory per idle container on the default bridge (PSS, ${n} containers) | ${memB} kB | ${memD} kB | ${r(memB, memD).toFixed(2)}× | ${goal(r(memB, memD) <= 0.2, '≤ 0.2×')} |`,
];
writeSection(md, 'network', lines);
JS
