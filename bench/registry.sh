#!/usr/bin/env bash
# Registries, side by side in one run:
#  1. pull and push of a 5-layer ~200 MB image (text, random data, 5 000 small files) against
#     distribution 2.8: berth (CLI -> berthd) vs docker (CLI -> a real dockerd); both engines hold
#     the same image (docker save -> berth load), the registry is emptied before every push.
#  2. Berth's registry server vs distribution 2.8 with wrk on 127.0.0.1: GET of a 50 MiB blob with
#     8 connections (throughput), manifest GET (server CPU per request), RSS.
# PULL_ONLY=1: only the pulls (docker pushes the image once, untimed); the report is printed, not
# written to docs/benchmarks.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
PULL_ONLY=${PULL_ONLY:-}
WRK_SECONDS=${WRK_SECONDS:-10}
[ -x "$REPO/bin/berth" ] || { echo "bench: run npm run build first" >&2; exit 1; }
command -v wrk >/dev/null && command -v docker-registry >/dev/null || { echo "bench: needs wrk and docker-registry (scripts/deps.sh)" >&2; exit 1; }
BERTH=(node "$REPO/bin/berth" -H "unix://$BERTH_SOCK")
DK=(env DOCKER_HOST="unix://$DOCKERD_SOCK" "$DOCKER_CLI")

free_port() { node -e 's=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }

# distribution 2.8 on $1 with root $2; sets REG_PID
start_distribution() {
  mkdir -p "$2"
  cat > "$BENCH_BASE/dist-$1.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $2}
  delete: {enabled: true}
http: {addr: "127.0.0.1:$1"}
EOF
  docker-registry serve "$BENCH_BASE/dist-$1.yml" >"$BENCH_BASE/dist-$1.log" 2>&1 &
  REG_PID=$!; BENCH_PIDS+=("$REG_PID")
  wait_http "127.0.0.1:$1"
}

start_berth_registry() { # port root
  node "$REPO/bin/berth" registry serve --addr "127.0.0.1:$1" --root "$2" >"$BENCH_BASE/berthreg-$1.log" 2>&1 &
  REG_PID=$!; BENCH_PIDS+=("$REG_PID")
  wait_http "127.0.0.1:$1"
}

wait_http() {
  for _ in $(seq 1 200); do curl -sf -o /dev/null "http://$1/v2/" && return 0; sleep 0.05; done
  echo "bench: registry at $1 did not start" >&2; return 1
}

start_berthd
start_dockerd

echo "==> building the 5-layer image in dockerd"
ctx=$BENCH_BASE/ctx
mkdir -p "$ctx/text1" "$ctx/random" "$ctx/small" "$ctx/text2"
busybox_rootfs_tar "$ctx/base.tar"
"${DK[@]}" import "$ctx/base.tar" bench-base:1 >/dev/null
set +o pipefail # head closes the pipes early on purpose
seq 1 6000000 | sed 's/$/ lorem ipsum dolor sit amet/' | head -c 60000000 > "$ctx/text1/words.txt"
head -c 100000000 /dev/urandom > "$ctx/random/blob.bin"
head -c $((5000 * 2048)) /dev/urandom | split -a 4 -d -b 2048 - "$ctx/small/f"
seq 1 3000000 | awk '{ print "line", $1, $1 * 7 }' | head -c 30000000 > "$ctx/text2/numbers.txt"
set -o pipefail
rm "$ctx/base.tar"
cat > "$ctx/Dockerfile" <<'EOF'
FROM bench-base:1
COPY text1 /text1
COPY random /random
COPY small /small
COPY text2 /text2
CMD ["sh"]
EOF
DOCKER_BUILDKIT=0 "${DK[@]}" build -q -t big:1 "$ctx" >/dev/null
rm -rf "$ctx"
"${DK[@]}" save -o "$BENCH_BASE/big.tar" big:1
"${BERTH[@]}" load -i "$BENCH_BASE/big.tar" >/dev/null
rm "$BENCH_BASE/big.tar"
SIZE=$("${DK[@]}" image inspect -f '{{.Size}}' big:1)
LAYERS=$("${DK[@]}" image inspect -f '{{len .RootFS.Layers}}' big:1)
echo "    $LAYERS layers, $((SIZE / 1000000)) MB"

PORT=$(free_port)
REG=127.0.0.1:$PORT
ROOT=$BENCH_BASE/dist-root
start_distribution "$PORT" "$ROOT"
DIST_PID=$REG_PID
"${DK[@]}" tag big:1 "$REG/bench/big:1"
"${BERTH[@]}" tag big:1 "$REG/bench/big:1"
"${DK[@]}" rmi big:1 bench-base:1 >/dev/null
"${BERTH[@]}" rmi big:1 >/dev/null

# Emptying the registry between pushes: a new, empty storage root for the same server.
cat > "$BENCH_BASE/reset.sh" <<EOF
#!/bin/sh
kill -TERM \$(cat $BENCH_BASE/dist.pid) 2>/dev/null
while kill -0 \$(cat $BENCH_BASE/dist.pid) 2>/dev/null; do sleep 0.05; done
rm -rf $ROOT; mkdir -p $ROOT
docker-registry serve $BENCH_BASE/dist-$PORT.yml >>$BENCH_BASE/dist-$PORT.log 2>&1 &
echo \$! > $BENCH_BASE/dist.pid
until curl -sf -o /dev/null http://$REG/v2/; do sleep 0.05; done
EOF
chmod +x "$BENCH_BASE/reset.sh"
echo "$DIST_PID" > "$BENCH_BASE/dist.pid"

if [ -n "$PULL_ONLY" ]; then
  "${DK[@]}" push "$REG/bench/big:1" >/dev/null
else
echo "==> push (registry emptied before each run)"
hyperfine --runs "$RUNS" --style basic --export-json "$BENCH_BASE/push.json" \
  -n "berth push" --prepare "$BENCH_BASE/reset.sh" "${BERTH[*]} push $REG/bench/big:1" \
  -n "docker push (dockerd)" --prepare "$BENCH_BASE/reset.sh" "${DK[*]} push $REG/bench/big:1"
fi

echo "==> pull (the image docker pushed; each engine removes its copy first)"
hyperfine --runs "$RUNS" --style basic --export-json "$BENCH_BASE/pull.json" \
  -n "berth pull" --prepare "${BERTH[*]} rmi $REG/bench/big:1 >/dev/null 2>&1; true" "${BERTH[*]} pull $REG/bench/big:1" \
  -n "docker pull (dockerd)" --prepare "${DK[*]} rmi $REG/bench/big:1 >/dev/null 2>&1; true" "${DK[*]} pull $REG/bench/big:1"
DIST_PID=$(cat "$BENCH_BASE/dist.pid"); BENCH_PIDS+=("$DIST_PID")
if [ -n "$PULL_ONLY" ]; then
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).results;
    const m = (n) => r.find((x) => x.command === n);
    for (const x of r) console.log(`${x.command}: median ${x.median.toFixed(2)} s, mean ${x.mean.toFixed(2)} ± ${(x.stddev ?? 0).toFixed(2)} s, min ${x.min.toFixed(2)} s, max ${x.max.toFixed(2)} s`);
    console.log(`pull: berth / docker (dockerd) ${(m("berth pull").median / m("docker pull (dockerd)").median).toFixed(2)}× (goal ≤ 0.5×)`);
  ' "$BENCH_BASE/pull.json"
  exit 0
fi

echo "==> servers: 50 MiB blob GET (8 connections), manifest GET CPU, RSS"
head -c $((50 << 20)) /dev/urandom > "$BENCH_BASE/blob50"
BLOB=sha256:$(sha256sum "$BENCH_BASE/blob50" | cut -d' ' -f1)
MANIFEST_TYPE=application/vnd.docker.distribution.manifest.v2+json
server_bench() { # name pid addr -> appends a JSON line to servers.jsonl
  local name=$1 pid=$2 addr=$3
  local loc
  loc=$(curl -sf -D - -o /dev/null -X POST "http://$addr/v2/bench/blob/blobs/uploads/" | awk 'tolower($1) == "location:" { print $2 }' | tr -d '\r')
  case $loc in http*) ;; *) loc="http://$addr$loc" ;; esac
  case $loc in *\?*) loc="$loc&digest=$BLOB" ;; *) loc="$loc?digest=$BLOB" ;; esac
  curl -sf -o /dev/null -X PUT --data-binary @"$BENCH_BASE/blob50" -H 'Content-Type: application/octet-stream' "$loc"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -I "http://$addr/v2/bench/blob/blobs/$BLOB")" = 200 ] || { echo "bench: blob upload to $name failed" >&2; exit 1; }
  "${BERTH[@]}" tag "$REG/bench/big:1" "$addr/bench/big:1"
  "${BERTH[@]}" push "$addr/bench/big:1" >/dev/null
  "${BERTH[@]}" rmi "$addr/bench/big:1" >/dev/null
  wrk -t2 -c8 -d2s "http://$addr/v2/bench/blob/blobs/$BLOB" >/dev/null # warm-up
  local blob_out man_out cpu0 cpu1
  blob_out=$(wrk -t8 -c8 -d"${WRK_SECONDS}s" "http://$addr/v2/bench/blob/blobs/$BLOB")
  cpu0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  man_out=$(wrk -t2 -c8 -d"${WRK_SECONDS}s" -H "Accept: $MANIFEST_TYPE" "http://$addr/v2/bench/big/manifests/1")
  cpu1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  node -e '
    const [name, blob, man, ticks, rss, hwm] = process.argv.slice(1);
    const num = (re, s) => { const m = re.exec(s); return m ? m[1] : undefined; };
    const bytes = (s) => { const m = /Transfer\/sec:\s+([\d.]+)(\w+)/.exec(s); const u = { B: 1, KB: 1024, MB: 1 << 20, GB: 1 << 30 }; return m ? Number(m[1]) * u[m[2]] : undefined; };
    const reqs = Number(num(/(\d+) requests in/, man));
    console.log(JSON.stringify({ name, blobBytesPerSec: bytes(blob), blobReqPerSec: Number(num(/Requests\/sec:\s+([\d.]+)/, blob)),
      manifestReqPerSec: Number(num(/Requests\/sec:\s+([\d.]+)/, man)), manifestRequests: reqs,
      cpuMsPerManifest: (Number(ticks) / 100) * 1000 / reqs, rssKB: Number(rss), hwmKB: Number(hwm) }));
  ' "$name" "$blob_out" "$man_out" "$((cpu1 - cpu0))" "$(rss_kb "$pid")" "$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")" >> "$BENCH_BASE/servers.jsonl"
}
P1=$(free_port); start_berth_registry "$P1" "$BENCH_BASE/berth-reg"; BPID=$REG_PID
server_bench "berth registry serve" "$BPID" "127.0.0.1:$P1"
kill -TERM "$BPID"
P2=$(free_port); start_distribution "$P2" "$BENCH_BASE/dist2"; DPID=$REG_PID
server_bench "distribution 2.8" "$DPID" "127.0.0.1:$P2"
kill -TERM "$DPID"

node "$REPO/bench/registry-report.js" "$BENCH_BASE/push.json" "$BENCH_BASE/pull.json" "$BENCH_BASE/servers.jsonl" "$RUNS" "$LAYERS" "$SIZE" "$REPO/docs/benchmarks.md"
