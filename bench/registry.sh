#!/usr/bin/env bash
# Registries, side by side in one run:
#  1. pull and push of a 5-layer ~200 MB image (text, random data, 5 000 small files) against
#     distribution 2.8: berth (CLI -> berthd) vs docker (CLI -> a real dockerd); both engines hold
#     the same image (docker save -> berth load), the registry is emptied before every push.
#  2. Berth's registry server vs distribution 2.8 with wrk on 127.0.0.1: GET of a 50 MiB blob with
#     8 connections (throughput), manifest GET (server CPU per request), RSS; ROUNDS alternating
#     rounds of WRK_SECONDS per run and server.
# SERVERS_ONLY=1 runs part 2 alone (no berthd, no dockerd): the manifest served is then a
# 5-layer schema 2 manifest put with curl, and the report keeps the section's pull/push tables.
# PULL_ONLY=1: only the pulls (docker pushes the image once, untimed); the report is printed, not
# written to docs/benchmarks.md.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-3}
WRK_SECONDS=${WRK_SECONDS:-5}
ROUNDS=${ROUNDS:-3}
SERVERS_ONLY=${SERVERS_ONLY:-0}
PULL_ONLY=${PULL_ONLY:-}
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

if [ "$SERVERS_ONLY" != 1 ]; then
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
fi

echo "==> servers: 50 MiB blob GET (8 connections), manifest GET CPU, RSS"
head -c $((50 << 20)) /dev/urandom > "$BENCH_BASE/blob50"
BLOB=sha256:$(sha256sum "$BENCH_BASE/blob50" | cut -d' ' -f1)
MANIFEST_TYPE=application/vnd.docker.distribution.manifest.v2+json
upload_blob() { # addr repo file digest: POST then PUT (distribution ignores a POST's body)
  local loc
  loc=$(curl -sf -D - -o /dev/null -X POST "http://$1/v2/$2/blobs/uploads/" | awk 'tolower($1) == "location:" { print $2 }' | tr -d '\r')
  case $loc in http*) ;; *) loc="http://$1$loc" ;; esac
  case $loc in *\?*) loc="$loc&digest=$4" ;; *) loc="$loc?digest=$4" ;; esac
  curl -sf -o /dev/null -X PUT --data-binary @"$3" -H 'Content-Type: application/octet-stream' "$loc"
}
# SERVERS_ONLY: bench/big:1 as a config and 5 small layers under a schema 2 manifest (the pushed image's shape).
put_synthetic_manifest() { # addr
  local addr=$1 i f d layers=() config
  for i in 0 1 2 3 4 5; do
    f=$BENCH_BASE/synthetic-$i
    [ -e "$f" ] || head -c $((1000 + i * 997)) /dev/urandom > "$f"
    d=sha256:$(sha256sum "$f" | cut -d' ' -f1)
    upload_blob "$addr" bench/big "$f" "$d"
    if [ "$i" = 0 ]; then config="{\"mediaType\":\"application/vnd.docker.container.image.v1+json\",\"size\":$(stat -c %s "$f"),\"digest\":\"$d\"}"
    else layers+=("{\"mediaType\":\"application/vnd.docker.image.rootfs.diff.tar.gzip\",\"size\":$(stat -c %s "$f"),\"digest\":\"$d\"}"); fi
  done
  local IFS=,
  printf '{"schemaVersion":2,"mediaType":"%s","config":%s,"layers":[%s]}' "$MANIFEST_TYPE" "$config" "${layers[*]}" > "$BENCH_BASE/synthetic-manifest"
  curl -sf -o /dev/null -X PUT -H "Content-Type: $MANIFEST_TYPE" --data-binary @"$BENCH_BASE/synthetic-manifest" "http://$addr/v2/bench/big/manifests/1" ||
    { echo "bench: manifest put to $addr failed" >&2; exit 1; }
}
server_setup() { # name addr: the 50 MiB blob, bench/big:1, a warm-up
  local name=$1 addr=$2
  upload_blob "$addr" bench/blob "$BENCH_BASE/blob50" "$BLOB"
  [ "$(curl -s -o /dev/null -w '%{http_code}' -I "http://$addr/v2/bench/blob/blobs/$BLOB")" = 200 ] || { echo "bench: blob upload to $name failed" >&2; exit 1; }
  if [ "$SERVERS_ONLY" = 1 ]; then
    put_synthetic_manifest "$addr"
  else
    "${BERTH[@]}" tag "$REG/bench/big:1" "$addr/bench/big:1"
    "${BERTH[@]}" push "$addr/bench/big:1" >/dev/null
    "${BERTH[@]}" rmi "$addr/bench/big:1" >/dev/null
  fi
  wrk -t2 -c8 -d2s "http://$addr/v2/bench/blob/blobs/$BLOB" >/dev/null # warm-up
}
server_round() { # tag pid addr round: one blob run and one manifest run (with the server's CPU ticks); RSS after the last
  local tag=$1 pid=$2 addr=$3 r=$4 cpu0 cpu1
  wrk -t8 -c8 -d"${WRK_SECONDS}s" "http://$addr/v2/bench/blob/blobs/$BLOB" > "$BENCH_BASE/$tag-blob-$r.txt"
  cpu0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  wrk -t2 -c8 -d"${WRK_SECONDS}s" -H "Accept: $MANIFEST_TYPE" "http://$addr/v2/bench/big/manifests/1" > "$BENCH_BASE/$tag-man-$r.txt"
  cpu1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  echo "$((cpu1 - cpu0))" > "$BENCH_BASE/$tag-ticks-$r.txt"
  if [ "$r" = "$ROUNDS" ]; then
    echo "$(rss_kb "$pid") $(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")" > "$BENCH_BASE/$tag-rss.txt"
  fi
}
server_result() { # tag name -> appends a JSON line to servers.jsonl (throughput and CPU summed over the rounds)
  node -e '
    const fs = require("node:fs");
    const [base, tag, name, rounds] = process.argv.slice(1);
    const read = (f) => fs.readFileSync(`${base}/${tag}-${f}`, "utf8");
    const num = (re, s) => { const m = re.exec(s); return m ? Number(m[1]) : NaN; };
    const bytes = (s) => { const m = /Transfer\/sec:\s+([\d.]+)(\w+)/.exec(s); const u = { B: 1, KB: 1024, MB: 1 << 20, GB: 1 << 30 }; return m ? Number(m[1]) * u[m[2]] : NaN; };
    let blobBytes = 0, blobReqs = 0, manReqs = 0, ticks = 0, blobSecs = 0, manSecs = 0;
    for (let r = 1; r <= Number(rounds); r++) {
      const blob = read(`blob-${r}.txt`), man = read(`man-${r}.txt`);
      const bs = num(/requests in ([\d.]+)s/, blob), ms = num(/requests in ([\d.]+)s/, man);
      blobBytes += bytes(blob) * bs; blobSecs += bs; blobReqs += num(/(\d+) requests in/, blob);
      manReqs += num(/(\d+) requests in/, man); manSecs += ms; ticks += Number(read(`ticks-${r}.txt`));
    }
    const [rss, hwm] = read("rss.txt").trim().split(" ").map(Number);
    console.log(JSON.stringify({ name, blobBytesPerSec: blobBytes / blobSecs, blobReqPerSec: blobReqs / blobSecs,
      manifestReqPerSec: manReqs / manSecs, manifestRequests: manReqs,
      cpuMsPerManifest: (ticks / 100) * 1000 / manReqs, rssKB: rss, hwmKB: hwm }));
  ' "$BENCH_BASE" "$1" "$2" "$ROUNDS" >> "$BENCH_BASE/servers.jsonl"
}
# Both servers up at once, measured in alternation (ROUNDS rounds of WRK_SECONDS per run): on a shared,
# loaded host a change of load then hits both alike instead of whichever ran second.
P1=$(free_port); start_berth_registry "$P1" "$BENCH_BASE/berth-reg"; BPID=$REG_PID
P2=$(free_port); start_distribution "$P2" "$BENCH_BASE/dist2"; DPID=$REG_PID
server_setup "berth registry serve" "127.0.0.1:$P1"
server_setup "distribution 2.8" "127.0.0.1:$P2"
for r in $(seq 1 "$ROUNDS"); do
  server_round berth "$BPID" "127.0.0.1:$P1" "$r"
  server_round dist "$DPID" "127.0.0.1:$P2" "$r"
done
server_result berth "berth registry serve"
server_result dist "distribution 2.8"
kill -TERM "$BPID" "$DPID"

if [ "$SERVERS_ONLY" = 1 ]; then
  node "$REPO/bench/registry-report.js" - - "$BENCH_BASE/servers.jsonl" - - - "$REPO/docs/benchmarks.md"
else
  node "$REPO/bench/registry-report.js" "$BENCH_BASE/push.json" "$BENCH_BASE/pull.json" "$BENCH_BASE/servers.jsonl" "$RUNS" "$LAYERS" "$SIZE" "$REPO/docs/benchmarks.md"
fi
