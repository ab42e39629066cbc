#!/usr/bin/env bash
# Networking, side by side in one run: berthd on its default bridge against a dockerd started by
# the benchmark on a bridge of its own (`--bridge <ours> --iptables=false --ip-forward=false`, so
# neither docker0 nor the host's firewall is touched; its published ports go through docker-proxy).
#   1. `run --rm busybox true` on the default bridge (hyperfine)
#   2. TCP throughput host -> container through a port published on 127.0.0.1 (bulk bytes: a static C
#      sender on the host, a static C sink in the container — the same binary, bench/netbench.c, for both)
#   3. DNS lookups of a container name per second from inside a container on a user network (the same
#      static C client for both: sequential UDP queries to the resolv.conf nameserver, no process per lookup)
#   4. engine memory per idle container on the default bridge (PSS of the engine's own processes)
# Results go to docs/benchmarks.md (and a summary at the end of the output).
# Needs: npm run build done, root, hyperfine, docker.io, gcc with the static libc (libc6-dev).
# Knobs: RUNS (hyperfine runs), MB (per transfer), TRIES (transfers per engine, best and median kept),
# LOOKUPS (per round), N (idle containers for memory).
set -euo pipefail
RUNS=${RUNS:-20}
MB=${MB:-1000}
TRIES=${TRIES:-5}
LOOKUPS=${LOOKUPS:-5000}
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
NETBENCH=$BENCH_BASE/netbench
gcc -O2 -static -o "$NETBENCH" "$REPO/bench/netbench.c"
B=(env DOCKER_HOST=unix://$BERTH_SOCK "$DOCKER_CLI")
D=(env DOCKER_HOST=unix://$DOCKERD_SOCK "$DOCKER_CLI")
"${B[@]}" run --rm busybox true
"${D[@]}" run --rm busybox true

echo "==> run --rm on the default bridge"
hyperfine -N --runs "$RUNS" --warmup 3 --style basic --export-json "$BENCH_BASE/net-run.json" \
  -n "docker CLI → berthd (bridge)" "env DOCKER_HOST=unix://$BERTH_SOCK $DOCKER_CLI run --rm busybox true" \
  -n "docker CLI → dockerd (bridge)" "env DOCKER_HOST=unix://$DOCKERD_SOCK $DOCKER_CLI run --rm busybox true"

echo "==> TCP throughput through a published port ($MB MiB per transfer, $TRIES transfers per engine)"
stats() { # values... -> "best median"
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%s %s\n", v[NR], m }'
}
throughput() { # engine-cmd... -> "best median" MB/s
  # One sink container (it reads each connection to EOF, then takes the next); the sender waits for it to listen.
  local port v all=()
  port=$(node -e 'const s=require("node:net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();})')
  "$@" run -d --name sink -p "127.0.0.1:$port:5000" -v "$NETBENCH:/netbench:ro" busybox /netbench sink 5000 >/dev/null
  for _ in $(seq 1 "$TRIES"); do
    v=$("$NETBENCH" send 127.0.0.1 "$port" "$MB") || { echo "bench: transfer through 127.0.0.1:$port failed" >&2; exit 1; }
    all+=("$v")
  done
  "$@" rm -f sink >/dev/null
  echo "  ${all[*]} MB/s" >&2
  stats "${all[@]}"
}
read -r TP_B TP_BM <<<"$(throughput "${B[@]}")"
read -r TP_D TP_DM <<<"$(throughput "${D[@]}")"
echo "berthd best $TP_B MB/s (median $TP_BM), dockerd best $TP_D MB/s (median $TP_DM)"

echo "==> DNS lookups of a container name ($LOOKUPS sequential queries from inside a container, 3 rounds)"
lookups() { # subnet engine-cmd... -> "best median" lookups/s
  local net=$1 v all=(); shift
  "$@" network create --subnet "$net.0/24" benchnet >/dev/null
  "$@" run -d --name target --network benchnet busybox sleep 3600 >/dev/null
  for _ in 1 2 3; do
    v=$("$@" run --rm --network benchnet -v "$NETBENCH:/netbench:ro" busybox /netbench dns target "$LOOKUPS") \
      || { echo "bench: DNS lookups failed" >&2; exit 1; }
    all+=("$v")
  done
  "$@" rm -f target >/dev/null
  "$@" network rm benchnet >/dev/null
  echo "  ${all[*]} lookups/s" >&2
  stats "${all[@]}"
}
read -r DNS_B DNS_BM <<<"$(lookups "$BNET1" "${B[@]}")"
read -r DNS_D DNS_DM <<<"$(lookups "$BNET2" "${D[@]}")"
echo "berthd best $DNS_B lookups/s (median $DNS_BM), dockerd best $DNS_D lookups/s (median $DNS_DM)"

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

REPO="$REPO" node - "$BENCH_BASE/net-run.json" "$TP_B" "$TP_D" "$DNS_B" "$DNS_D" "$MEM_B" "$MEM_D" "$MB" "$LOOKUPS" "$N" "$RUNS" "$REPO/docs/benchmarks.md" \
  "$TP_BM" "$TP_DM" "$DNS_BM" "$DNS_DM" "$TRIES" <<'JS'
const fs = require('node:fs');
const os = require('node:os');
const { writeSection } = require(process.env.REPO + '/bench/md-section');
const [json, tpB, tpD, dnsB, dnsD, memB, memD, mb, lookups, n, runs, md, tpBm, tpDm, dnsBm, dnsDm, tries] = process.argv.slice(2);
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
  `| TCP host → container via \`-p 127.0.0.1:P:5000\`, ${mb} MiB, best of ${tries} (median) | ${tpB} MB/s (${tpBm}) | ${tpD} MB/s (${tpDm}) (docker-proxy) | ${r(tpB, tpD).toFixed(2)}× (${r(tpBm, tpDm).toFixed(2)}×) | ${goal(r(tpB, tpD) >= 1.5, '≥ 1.5×')} |`,
  `| DNS lookups of a container name from a container (${lookups} sequential UDP queries, best of 3 (median)) | ${dnsB}/s (${dnsBm}) | ${dnsD}/s (${dnsDm}) | ${r(dnsB, dnsD).toFixed(2)}× (${r(dnsBm, dnsDm).toFixed(2)}×) | ${goal(r(dnsB, dnsD) >= 1.0, '≥ 1.0×')} |`,
  `| engine memory per idle container on the default bridge (PSS, ${n} containers) | ${memB} kB | ${memD} kB | ${r(memB, memD).toFixed(2)}× | ${goal(r(memB, memD) <= 0.2, '≤ 0.2×')} |`,
];
writeSection(md, 'network', lines);
console.log(['', ...lines.slice(2)].join('\n'));
JS
