#!/usr/bin/env bash
# `load` and `save` of an image with a 200 MB, 10 000-file layer:
# berth (CLI → berthd) vs docker (CLI → a real dockerd), side by side in one run.
# The tarball is written by `docker save`, so both engines load the same bytes.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
RUNS=${RUNS:-5}
FILES=${FILES:-10000}
FILE_KB=${FILE_KB:-20}
[ -x "$REPO/bin/berth" ] || { echo "bench: run npm run build first" >&2; exit 1; }
BERTH=(node "$REPO/bin/berth" -H "unix://$BERTH_SOCK")
DK="DOCKER_HOST=unix://$DOCKERD_SOCK $DOCKER_CLI"

start_berthd
start_dockerd

echo "==> making a ${FILES}-file layer of $((FILES * FILE_KB / 1024)) MB"
busybox_rootfs_tar "$BENCH_BASE/base.tar"
big=$BENCH_BASE/big
mkdir -p "$big/root"
tar -C "$big/root" -xf "$BENCH_BASE/base.tar"
mkdir -p "$big/root/data"
head -c "$((FILE_KB * 1024 * FILES))" /dev/urandom | split -a 5 -d -b "$((FILE_KB * 1024))" - "$big/root/data/f"
tar -C "$big/root" --numeric-owner -cf "$big/rootfs.tar" .
rm -rf "$big/root"
env DOCKER_HOST="unix://$DOCKERD_SOCK" "$DOCKER_CLI" import -c 'CMD ["sh"]' "$big/rootfs.tar" big:1 >/dev/null
env DOCKER_HOST="unix://$DOCKERD_SOCK" "$DOCKER_CLI" save -o "$big/image.tar" big:1
"${BERTH[@]}" load -i "$big/image.tar" >/dev/null
ls -l "$big/image.tar"

RSS_BEFORE=$(rss_kb "$BERTHD_PID")
hyperfine --runs "$RUNS" --style basic --export-json "$BENCH_BASE/load.json" \
  -n "berth load" --prepare "${BERTH[*]} rmi big:1 >/dev/null 2>&1; ${BERTH[*]} image prune -f >/dev/null 2>&1; true" \
     "${BERTH[*]} load -i $big/image.tar" \
  -n "docker load" --prepare "$DK rmi big:1 >/dev/null 2>&1; true" \
     "$DK load -i $big/image.tar"
hyperfine --runs "$RUNS" --style basic --export-json "$BENCH_BASE/save.json" \
  -n "berth save" --prepare "rm -f $big/out.tar" "${BERTH[*]} save -o $big/out.tar big:1" \
  -n "docker save" --prepare "rm -f $big/out.tar" "$DK save -o $big/out.tar big:1"
RSS_AFTER=$(rss_kb "$BERTHD_PID")

node "$REPO/bench/report.js" load-save "$BENCH_BASE/load.json,$BENCH_BASE/save.json" "$RSS_BEFORE" "$RSS_AFTER" "$RUNS" "$REPO/docs/benchmarks.md"
