#!/usr/bin/env bash
# Memory per running container, side by side in one run: the engine's own processes
# (berthd + one conmon per container; dockerd + containerd + one shim per container;
# podman's conmon per container) measured with no container and with N idle ones.
# The containers' own processes (`sleep`) are the same in every engine and not counted.
# Figures are PSS (shared pages split between the processes that map them) and RSS.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
N=${N:-20}
start_engines_with_busybox

# Processes that belong to one engine: the daemon by PID, and every process whose
# command line names the engine's roots (conmon, containerd, shims).
engine_pids() { # subdir [daemon-pid]
  { [ -n "${2:-}" ] && echo "$2"
    # the pattern comes from stdin, so grep's own command line does not match it
    echo "$BENCH_BASE/$1/" | grep -l -a -F -f - /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3 | grep -vx "$$" || true
  } | sort -u
}
sum_field() { # field pid...
  local f=$1 total=0 v pid; shift
  for pid in "$@"; do
    v=$(awk -v f="$f:" '$1 == f { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || true)
    total=$((total + ${v:-0}))
  done
  echo "$total"
}
measure() { # name subdir [daemon-pid] -> "count pss rss"
  sleep 2 # let start-up garbage settle
  local pids
  mapfile -t pids < <(engine_pids "$2" "${3:-}")
  echo "${#pids[@]} $(sum_field Pss "${pids[@]}") $(sum_field Rss "${pids[@]}")"
}

# One engine at a time (the others idle with no container), so that shared pages are
# split only among the processes of the engine being measured.
declare -A BEFORE AFTER
phase() { # engine subdir daemon-pid run-command...
  local e=$1 sub=$2 pid=$3; shift 3
  # warm-up: a daemon's first requests grow its heap once, whatever the container count
  local w; for _ in 1 2 3; do w=$("$@" sleep 0); done
  sleep 1
  BEFORE[$e]=$(measure "$e" "$sub" "$pid")
  echo "==> $e: $N idle containers"
  for _ in $(seq 1 "$N"); do "$@" sleep 3600 >/dev/null; done
  AFTER[$e]=$(measure "$e" "$sub" "$pid")
  echo "$e: before ${BEFORE[$e]} after ${AFTER[$e]} (processes, PSS kB, RSS kB); engine processes:"
  ps -o pid=,rss=,args= -p "$(engine_pids "$sub" "$pid" | paste -sd,)" | cut -c1-150 | sort -k3 | uniq -c -f2 | head -5
}
phase berth berth "$BERTHD_PID" env DOCKER_HOST="unix://$BERTH_SOCK" "$DOCKER_CLI" run -d --network none busybox
env DOCKER_HOST="unix://$BERTH_SOCK" "$DOCKER_CLI" rm -f $(env DOCKER_HOST="unix://$BERTH_SOCK" "$DOCKER_CLI" ps -aq) >/dev/null
phase docker dockerd "$DOCKERD_PID" env DOCKER_HOST="unix://$DOCKERD_SOCK" "$DOCKER_CLI" run -d --network none busybox
env DOCKER_HOST="unix://$DOCKERD_SOCK" "$DOCKER_CLI" rm -f $(env DOCKER_HOST="unix://$DOCKERD_SOCK" "$DOCKER_CLI" ps -aq) >/dev/null
phase podman podman "" "${PODMAN[@]}" run -d --network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 localhost/busybox
"${PODMAN[@]}" rm -f -t 0 -a >/dev/null

REPO="$REPO" node - "$N" "${BEFORE[berth]}" "${AFTER[berth]}" "${BEFORE[docker]}" "${AFTER[docker]}" \
  "${BEFORE[podman]}" "${AFTER[podman]}" "$REPO/docs/benchmarks.md" <<'JS'
const os = require('node:os');
const { writeSection } = require(process.env.REPO + '/bench/md-section');
const [n, bb, ba, db, da, pb, pa, md] = process.argv.slice(2);
const N = Number(n);
const parse = (s) => { const [procs, pss, rss] = s.split(' ').map(Number); return { procs, pss, rss }; };
const rows = [['berthd (+ conmon)', bb, ba], ['dockerd (+ containerd, shims)', db, da], ['podman (conmon)', pb, pa]]
  .map(([name, b, a]) => ({ name, b: parse(b), a: parse(a) }));
const mb = (kb) => `${(kb / 1024).toFixed(1)} MB`;
const per = (r, f) => (r.a[f] - r.b[f]) / N;
const lines = [
  `Measured ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} on ${os.cpus().length} cores, ${N} idle \`sleep\` containers per engine (\`--network none\`).`,
  '',
  '| engine | processes (0 → N) | PSS, 0 containers | PSS, N containers | PSS per container | RSS per container |',
  '|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.name} | ${r.b.procs} → ${r.a.procs} | ${mb(r.b.pss)} | ${mb(r.a.pss)} | ${(per(r, 'pss')).toFixed(0)} kB | ${(per(r, 'rss')).toFixed(0)} kB |`),
  '',
  `Per container (PSS): berth / docker = ${(per(rows[0], 'pss') / per(rows[1], 'pss')).toFixed(2)}×, berth / podman = ${(per(rows[0], 'pss') / per(rows[2], 'pss')).toFixed(2)}×. ` +
    `Whole engine with N containers (PSS): berth / docker = ${(rows[0].a.pss / rows[1].a.pss).toFixed(2)}×.`,
];
writeSection(md, 'memory', lines);
JS
