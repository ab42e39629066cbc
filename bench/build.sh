#!/usr/bin/env bash
# `build` of the reference Dockerfile (issue 13), side by side in one run (hyperfine):
#   cold (--no-cache) and fully cached rebuilds with the berth CLI and the docker CLI
#   (classic builder, DOCKER_BUILDKIT=0) against berthd, the docker CLI against a
#   real dockerd (classic builder) and podman build. Reports berthd's peak RSS.
# Needs: npm run build done, root, hyperfine, docker.io, podman.
# BUILD_BENCH=cached: only the cached rebuilds of the two CLIs and dockerd (no podman needed); the
# report is printed, docs/benchmarks.md is left alone (its table is the full run's).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-10}
WARMUP=${WARMUP:-1}
ONLY_CACHED=0
[ "${BUILD_BENCH:-}" = cached ] && ONLY_CACHED=1
if [ "$ONLY_CACHED" = 1 ]; then
  start_berthd
  start_dockerd
  node "$REPO/bin/berth" -H "unix://$BERTH_SOCK" bootstrap busybox >/dev/null
  busybox_rootfs_tar "$BENCH_BASE/busybox.tar"
  DOCKER_HOST=unix://$DOCKERD_SOCK "$DOCKER_CLI" import -c 'CMD ["sh"]' "$BENCH_BASE/busybox.tar" busybox:latest >/dev/null
else
  start_engines_with_busybox
fi

# The reference context: FROM busybox, COPY a 1 MB directory of 50 files, three RUNs
# (200 appended lines; 20 MB from /dev/urandom; 2 000 small files), ARG, LABEL, EXPOSE, CMD.
# Every engine builds with --network none (dockerd here has no bridge), so RUN steps cost the same setup.
CTX=$BENCH_BASE/ctx
mkdir -p "$CTX/data"
for i in $(seq 1 50); do head -c 20480 /dev/urandom > "$CTX/data/file$i.bin"; done
cat > "$CTX/Dockerfile" <<'EOF'
FROM busybox
ARG VERSION=1
LABEL org.example.bench="build" org.example.version=$VERSION
COPY data/ /data/
RUN for i in $(seq 1 200); do echo "line $i of the log" >> /lines.txt; done
RUN dd if=/dev/urandom of=/random.bin bs=1M count=20 2>/dev/null
RUN mkdir /many && cd /many && for i in $(seq 1 2000); do echo "$i" > "f$i"; done
EXPOSE 8080
CMD ["sh"]
EOF

B=(env -u NODE_EXTRA_CA_CERTS node "$REPO/bin/berth" -H "unix://$BERTH_SOCK")
DB=(env DOCKER_BUILDKIT=0 DOCKER_HOST=unix://$BERTH_SOCK "$DOCKER_CLI")
DD=(env DOCKER_BUILDKIT=0 DOCKER_HOST=unix://$DOCKERD_SOCK "$DOCKER_CLI")
PB=("${PODMAN[@]}" build --network none --runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --layers -q)
# one build each, to fail fast (and to fill each engine's cache for the cached runs)
"${B[@]}" build -q --network none -t bench:b "$CTX" >/dev/null
"${DB[@]}" build -q --network none -t bench:db "$CTX" >/dev/null
"${DD[@]}" build -q --network none -t bench:d "$CTX" >/dev/null
[ "$ONLY_CACHED" = 1 ] || "${PB[@]}" -t bench:p "$CTX" >/dev/null

q() { printf '%q ' "$@"; }
if [ "$ONLY_CACHED" = 1 ]; then
  hyperfine -N --runs "$((RUNS * 3))" --warmup "$WARMUP" --style basic --export-json "$BENCH_BASE/cached.json" \
    -n "cached: berth CLI → berthd" "$(q "${B[@]}" build -q --network none -t bench:b "$CTX")" \
    -n "cached: docker CLI → berthd" "$(q "${DB[@]}" build -q --network none -t bench:db "$CTX")" \
    -n "cached: docker CLI → dockerd (classic)" "$(q "${DD[@]}" build -q --network none -t bench:d "$CTX")"
  node "$REPO/bench/report.js" build "$BENCH_BASE/cached.json" "$(awk '/^VmHWM:/ { print $2 }' "/proc/$BERTHD_PID/status")" \
    "$(rss_kb "$BERTHD_PID")" "$RUNS" "$BENCH_BASE/report.md"
  exit 0
fi
hyperfine -N --runs "$RUNS" --warmup "$WARMUP" --style basic --export-json "$BENCH_BASE/cold.json" \
  -n "cold: berth CLI → berthd" "$(q "${B[@]}" build -q --no-cache --network none -t bench:b "$CTX")" \
  -n "cold: docker CLI → berthd" "$(q "${DB[@]}" build -q --no-cache --network none -t bench:db "$CTX")" \
  -n "cold: docker CLI → dockerd (classic)" "$(q "${DD[@]}" build -q --no-cache --network none -t bench:d "$CTX")" \
  -n "cold: podman build" "$(q "${PB[@]}" --no-cache -t bench:p "$CTX")"
hyperfine -N --runs "$((RUNS * 3))" --warmup "$WARMUP" --style basic --export-json "$BENCH_BASE/cached.json" \
  -n "cached: berth CLI → berthd" "$(q "${B[@]}" build -q --network none -t bench:b "$CTX")" \
  -n "cached: docker CLI → berthd" "$(q "${DB[@]}" build -q --network none -t bench:db "$CTX")" \
  -n "cached: docker CLI → dockerd (classic)" "$(q "${DD[@]}" build -q --network none -t bench:d "$CTX")" \
  -n "cached: podman build" "$(q "${PB[@]}" -t bench:p "$CTX")"
PEAK=$(awk '/^VmHWM:/ { print $2 }' "/proc/$BERTHD_PID/status")
RSS_AFTER=$(rss_kb "$BERTHD_PID")

node "$REPO/bench/report.js" build "$BENCH_BASE/cold.json,$BENCH_BASE/cached.json" "$PEAK" "$RSS_AFTER" "$RUNS" "$REPO/docs/benchmarks.md"
