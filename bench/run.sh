#!/usr/bin/env bash
# `run --rm busybox true`, side by side in one run (hyperfine):
#   the docker CLI against berthd, the same CLI against a real dockerd, podman,
#   and the berth CLI against berthd. Results go to docs/benchmarks.md.
# Needs: npm run build done, root, hyperfine, docker.io, podman.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
[ -x "$REPO/bin/berth" ] || { echo "bench: run npm run build first" >&2; exit 1; }

echo "==> starting berthd, dockerd; preparing busybox in each engine"
start_berthd
start_dockerd
node "$REPO/bin/berth" -H "unix://$BERTH_SOCK" bootstrap busybox >/dev/null
busybox_rootfs_tar "$BENCH_BASE/busybox.tar"
DOCKER_HOST=unix://$DOCKERD_SOCK "$DOCKER_CLI" import -c 'CMD ["sh"]' "$BENCH_BASE/busybox.tar" busybox:latest >/dev/null
"${PODMAN[@]}" import -q -c 'CMD ["sh"]' "$BENCH_BASE/busybox.tar" localhost/busybox:latest >/dev/null
# one run each, to fail fast
DOCKER_HOST=unix://$BERTH_SOCK "$DOCKER_CLI" run --rm busybox true
DOCKER_HOST=unix://$DOCKERD_SOCK "$DOCKER_CLI" run --rm --network none busybox true
"${PODMAN[@]}" run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/busybox true

RSS_BEFORE=$(rss_kb "$BERTHD_PID")
# podman: this host's hard rlimits are below podman's defaults, hence --ulimit.
hyperfine --runs "$RUNS" --warmup "$WARMUP" --style basic --export-json "$BENCH_BASE/run.json" \
  -n "docker CLI → berthd" "DOCKER_HOST=unix://$BERTH_SOCK $DOCKER_CLI run --rm busybox true" \
  -n "docker CLI → dockerd" "DOCKER_HOST=unix://$DOCKERD_SOCK $DOCKER_CLI run --rm --network none busybox true" \
  -n "podman" "${PODMAN[*]} run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/busybox true" \
  -n "berth CLI → berthd" "node $REPO/bin/berth -H unix://$BERTH_SOCK run --rm busybox true"
RSS_AFTER=$(rss_kb "$BERTHD_PID")

node "$REPO/bench/report.js" run-rm "$BENCH_BASE/run.json" "$RSS_BEFORE" "$RSS_AFTER" "$RUNS" "$REPO/docs/benchmarks.md"
