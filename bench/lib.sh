# Shared by the benchmarks: start berthd / dockerd with their own roots,
# stop only what we started (by PID), undo mounts, remove roots.
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DOCKER_CLI=${DOCKER_CLI:-/usr/bin/docker}
BENCH_BASE=$(mktemp -d /tmp/bb-XXXXXX)
BENCH_PIDS=()
export DOCKER_CONFIG=$BENCH_BASE/docker-config
mkdir -p "$DOCKER_CONFIG"
echo '{}' > "$DOCKER_CONFIG/config.json" # podman reads it (auth) and fails when it is missing

BERTH_SOCK=$BENCH_BASE/berth/x/berth.sock
DOCKERD_SOCK=$BENCH_BASE/dockerd/docker.sock
PODMAN=(podman --root "$BENCH_BASE/podman/root" --runroot "$BENCH_BASE/podman/run" --cgroup-manager cgroupfs
        --runtime runc --events-backend none)

wait_socket() { # path what
  for _ in $(seq 1 300); do
    [ -S "$1" ] && node -e '
      require("node:http").request({ socketPath: process.argv[1], path: "/_ping", timeout: 1000 },
        (r) => process.exit(r.statusCode === 200 ? 0 : 1)).on("error", () => process.exit(1)).end();' "$1" && return 0
    sleep 0.1
  done
  echo "bench: $2 did not start" >&2; return 1
}

# The benchmark's own cgroup parent, removed at the end (never the host's /berth).
BERTH_CGROUP_PARENT=/berth-bench-$$
# Extra berthd flags, and the bridge dockerd uses (none: no networking) — set by a benchmark before starting them.
BERTHD_ARGS=(${BERTHD_ARGS[@]+"${BERTHD_ARGS[@]}"})

start_berthd() {
  mkdir -p "$BENCH_BASE/berth/d" "$BENCH_BASE/berth/x"
  echo '{}' > "$BENCH_BASE/berth/daemon.json"
  node "$REPO/bin/berthd" --data-root "$BENCH_BASE/berth/d" --exec-root "$BENCH_BASE/berth/x" \
    -H "unix://$BERTH_SOCK" --config-file "$BENCH_BASE/berth/daemon.json" \
    --cgroup-parent "$BERTH_CGROUP_PARENT" "${BERTHD_ARGS[@]}" >"$BENCH_BASE/berthd.log" 2>&1 &
  BERTHD_PID=$!; BENCH_PIDS+=("$BERTHD_PID")
  wait_socket "$BERTH_SOCK" berthd
}

start_dockerd() {
  mkdir -p "$BENCH_BASE/dockerd"
  echo '{}' > "$BENCH_BASE/dockerd/daemon.json"
  /usr/sbin/dockerd --data-root "$BENCH_BASE/dockerd/d" --exec-root "$BENCH_BASE/dockerd/x" -H "unix://$DOCKERD_SOCK" \
    --pidfile "$BENCH_BASE/dockerd/docker.pid" --config-file "$BENCH_BASE/dockerd/daemon.json" \
    --bridge "${DOCKERD_BRIDGE:-none}" --iptables=false --ip-masq=false --ip6tables=false --ip-forward=false --storage-driver overlay2 \
    >"$BENCH_BASE/dockerd.log" 2>&1 &
  DOCKERD_PID=$!; BENCH_PIDS+=("$DOCKERD_PID")
  wait_socket "$DOCKERD_SOCK" dockerd
}

# A busybox root filesystem tar (every applet) from the host's static busybox.
busybox_rootfs_tar() { # out.tar
  local r=$BENCH_BASE/rootfs
  rm -rf "$r"; mkdir -p "$r"/{bin,etc,tmp,root,proc,sys,dev}
  cp /bin/busybox "$r/bin/busybox"
  for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "$r/bin/$a"; done
  printf 'root:x:0:0:root:/root:/bin/sh\n' > "$r/etc/passwd"
  printf 'root:x:0:\n' > "$r/etc/group"
  tar -C "$r" --numeric-owner -cf "$1" .
  rm -rf "$r"
}

# berthd and dockerd started, and busybox (the host's) in berthd, dockerd and podman.
start_engines_with_busybox() {
  [ -x "$REPO/bin/berth" ] || { echo "bench: run npm run build first" >&2; exit 1; }
  echo "==> starting berthd, dockerd; preparing busybox in each engine"
  start_berthd
  start_dockerd
  node "$REPO/bin/berth" -H "unix://$BERTH_SOCK" bootstrap busybox >/dev/null
  busybox_rootfs_tar "$BENCH_BASE/busybox.tar"
  DOCKER_HOST=unix://$DOCKERD_SOCK "$DOCKER_CLI" import -c 'CMD ["sh"]' "$BENCH_BASE/busybox.tar" busybox:latest >/dev/null
  "${PODMAN[@]}" import -q -c 'CMD ["sh"]' "$BENCH_BASE/busybox.tar" localhost/busybox:latest >/dev/null
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo '?'; }

bench_cleanup() {
  set +e
  local pid
  for pid in "${BENCH_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${BENCH_PIDS[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
  done
  # conmon/containerd/shims started for our roots (they name them on their command lines)
  for pid in $(grep -l -a "$BENCH_BASE" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    [ "$pid" = $$ ] || kill -KILL "$pid" 2>/dev/null
  done
  [ -d "$BENCH_BASE/podman" ] && "${PODMAN[@]}" system reset -f >/dev/null 2>&1
  for m in $(awk -v p="$BENCH_BASE" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  # berthd's bridges, veths and nftables table (named after its data root's tag)
  local tag l
  tag=$(node -e 'console.log(require("node:crypto").createHash("sha256").update(process.argv[1]).digest("hex").slice(0, 5))' "$BENCH_BASE/berth/d")
  for l in $(ls /sys/class/net | grep -E "^v$tag") $(ls /sys/class/net | grep -E "^b$tag"); do ip link del "$l" 2>/dev/null; done
  nft delete table ip "berth-$tag" 2>/dev/null
  rm -rf --one-file-system "$BENCH_BASE"
  # A cgroup can be removed only once its last process is gone: retry briefly (killed containers exit late).
  local cg _
  for _ in $(seq 1 30); do
    cg=$(find /sys/fs/cgroup -mindepth 2 -maxdepth 2 -type d -name "${BERTH_CGROUP_PARENT#/}" 2>/dev/null)
    [ -z "$cg" ] && break
    # container processes under the benchmark's own cgroup parent are ours (conmon was killed above)
    for c in $cg; do
      find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u | xargs -r kill -KILL 2>/dev/null
      find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    sleep 0.1
  done
}
trap bench_cleanup EXIT
