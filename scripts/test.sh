#!/usr/bin/env bash
# THE test command of Berth (README, .ci/run): installs what is missing,
# builds, runs every test file once, checks that nothing leaked.
#
# Env:
#   BERTH_TEST_DEBIAN=1   also run the tests that debootstrap Debian (slow)
#   BERTH_TEST_ONLY=glob  only run test files whose path matches (e.g. 'e2e/*')
#   BERTH_SKIP_INSTALL=1  skip apt/npm steps (developer loop)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

log() { printf '\n==> %s\n' "$*"; }

# Prefix of every temp root the test harness creates (test/helpers/daemon.ts).
LEAK_PREFIX=/tmp/bt-

if [ "$(id -u)" != 0 ]; then
  echo "scripts/test.sh: must run as root (tests start containers)" >&2
  exit 2
fi

# shellcheck source=scripts/deps.sh
source "$ROOT/scripts/deps.sh"

if [ "${BERTH_SKIP_INSTALL:-}" != 1 ]; then
  install_system_packages || exit 1
  install_npm_packages || exit 1
fi

log "npm run build"
npm run build || { echo "scripts/test.sh: build failed" >&2; exit 1; }

# Test files: compiled from the sources that exist now (stale files in dist/
# from deleted sources are not run).
files=()
for dir in unit integration e2e interop; do
  for src in test/$dir/*.test.ts; do
    [ -e "$src" ] || continue
    if [ -n "${BERTH_TEST_ONLY:-}" ]; then
      # shellcheck disable=SC2053
      [[ "${src#test/}" == ${BERTH_TEST_ONLY} ]] || continue
    fi
    js="dist/${src%.ts}.js"
    if [ ! -e "$js" ]; then echo "scripts/test.sh: $js missing after build" >&2; exit 1; fi
    files+=("$js")
  done
done
if [ ${#files[@]} -eq 0 ]; then
  echo "scripts/test.sh: no test files found" >&2
  exit 1
fi

# --- leak check: mounts, processes, cgroups that mention our temp roots -----
leaks() {
  echo "# mounts"
  awk -v p="$LEAK_PREFIX" 'index($5, p) == 1 { print $5 }' /proc/self/mountinfo | sort
  echo "# processes"
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$pid" = "$$" ] && continue
    cmd=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null) || continue
    case "$cmd" in *"$LEAK_PREFIX"*) echo "$pid $cmd" ;; esac
  done | grep -v -e 'scripts/test.sh' -e 'node --test' | sort -k2
  echo "# cgroups"
  find /sys/fs/cgroup -mindepth 2 -maxdepth 4 -type d -name '*berth*' 2>/dev/null | sort
  echo "# network links and nftables tables of the test daemons"
  while read -r tag; do
    [ -n "$tag" ] || continue
    ls /sys/class/net | grep -E "^[bv]$tag" || true
    nft list tables 2>/dev/null | grep -E "^table ip6? berth-$tag\$" || true
  done < "$BERTH_NET_TAGS" | sort
}
export BERTH_NET_TAGS
BERTH_NET_TAGS=$(mktemp)
leaks_before=$(mktemp)
leaks_after=$(mktemp)
trap 'rm -f "$leaks_before" "$leaks_after" "${tap_out:-}" "$BERTH_NET_TAGS"' EXIT
leaks > "$leaks_before"

log "running ${#files[@]} test files"
tap_out=$(mktemp)
export BERTH_REPO_ROOT=$ROOT
# spec for humans on stdout, TAP to a file for the closing "# pass N / # fail N" lines.
timeout --kill-after=60s 85m node --test --test-concurrency=1 --test-timeout=600000 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap_out" \
  "${files[@]}"
rc=$?
if [ $rc = 124 ] || [ $rc = 137 ]; then echo "scripts/test.sh: test run timed out after 85 minutes" >&2; fi

leaks > "$leaks_after"
leaked=$(diff "$leaks_before" "$leaks_after" | grep '^>' | sed 's/^> //' | grep -v '^#')
if [ -n "$leaked" ]; then
  echo
  echo "WARNING: the tests left these behind (mounts / processes / cgroups / network objects):"
  echo "$leaked" | sed 's/^/  /'
fi

echo
echo "Summary:"
if grep -qE '^# (tests|pass|fail) ' "$tap_out"; then
  grep -E '^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ' "$tap_out" | tail -n 8
else
  echo "# pass 0"
  echo "# fail 1"
  echo "(the test runner printed no summary; exit code $rc)"
  [ $rc = 0 ] && rc=1
fi
exit $rc
