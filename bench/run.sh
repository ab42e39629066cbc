#!/usr/bin/env bash
# `run --rm busybox true`, side by side in one run (hyperfine):
#   the docker CLI against berthd, the same CLI against a real dockerd, podman,
#   and the berth CLI against berthd. Results go to docs/benchmarks.md.
# Needs: npm run build done, root, hyperfine, docker.io, podman.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-30}
WARMUP=${WARMUP:-3}
start_engines_with_busybox
# one run each, to fail fast
DOCKER_HOST=unix://$BERTH_SOCK "$DOCKER_CLI" run --rm busybox true
DOCKER_HOST=unix://$DOCKERD_SOCK "$DOCKER_CLI" run --rm --network none busybox true
"${PODMAN[@]}" run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/busybox true

RSS_BEFORE=$(rss_kb "$BERTHD_PID")
# podman: this host's hard rlimits are below podman's defaults, hence --ulimit.
# -N: no intermediate shell, so every command pays only its own start-up.
# NODE_EXTRA_CA_CERTS: this sandbox sets it for npm's proxy; node then parses the whole CA bundle
# at start-up (~45 ms here) though no berth command uses TLS. The berth CLI is timed without it
# (as on a normal machine) and, for honesty, once more with it.
CA_ENV=()
[ -n "${NODE_EXTRA_CA_CERTS:-}" ] && CA_ENV=(-n "berth CLI → berthd (NODE_EXTRA_CA_CERTS set)" "env NODE_EXTRA_CA_CERTS=$NODE_EXTRA_CA_CERTS node $REPO/bin/berth -H unix://$BERTH_SOCK run --rm busybox true")
hyperfine -N --runs "$RUNS" --warmup "$WARMUP" --style basic --export-json "$BENCH_BASE/run.json" \
  -n "docker CLI → berthd" "env DOCKER_HOST=unix://$BERTH_SOCK $DOCKER_CLI run --rm busybox true" \
  -n "docker CLI → dockerd" "env DOCKER_HOST=unix://$DOCKERD_SOCK $DOCKER_CLI run --rm --network none busybox true" \
  -n "podman" "${PODMAN[*]} run --rm --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/busybox true" \
  -n "berth CLI → berthd" "env -u NODE_EXTRA_CA_CERTS node $REPO/bin/berth -H unix://$BERTH_SOCK run --rm busybox true" \
  "${CA_ENV[@]}"
RSS_AFTER=$(rss_kb "$BERTHD_PID")

node "$REPO/bench/report.js" run-rm "$BENCH_BASE/run.json" "$RSS_BEFORE" "$RSS_AFTER" "$RUNS" "$REPO/docs/benchmarks.md"
