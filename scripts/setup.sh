#!/usr/bin/env bash
# THE main job of Berth (README): on a fresh Debian 12 machine (root, Node 20)
# install what is needed, build, start berthd, make the busybox base image and
# run a first container.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if [ "$(id -u)" != 0 ]; then
  echo "scripts/setup.sh: must run as root (berthd runs containers)" >&2
  exit 2
fi

# shellcheck source=scripts/deps.sh
source "$ROOT/scripts/deps.sh"
install_system_packages
install_npm_packages

echo "==> npm run build"
npm run build

# The berth group: its members use /run/berth/berth.sock without sudo (root:berth 0660), as Docker's docker group.
if ! getent group berth >/dev/null; then
  echo "==> groupadd --system berth"
  groupadd --system berth
fi
mkdir -p /etc/berth   # daemon.json lives here (read by default when present)

# The service and socket units (as docker.service and docker.socket); used when systemd runs,
# berthd is started directly otherwise (containers, CI).
mkdir -p /etc/systemd/system
for unit in berth.service berth.socket; do
  sed "s|@ROOT@|$ROOT|g" "$ROOT/scripts/$unit.in" > "/etc/systemd/system/$unit.tmp"
  mv "/etc/systemd/system/$unit.tmp" "/etc/systemd/system/$unit"
done
SYSTEMD_RUNNING=0
[ -d /run/systemd/system ] && SYSTEMD_RUNNING=1

SOCK=/run/berth/berth.sock
ping_daemon() {
  node -e '
    const http = require("node:http");
    const req = http.request({ socketPath: process.argv[1], path: "/_ping", timeout: 2000 },
      (res) => process.exit(res.statusCode === 200 ? 0 : 1));
    req.on("error", () => process.exit(1));
    req.on("timeout", () => process.exit(1));
    req.end();' "$SOCK"
}

# Up to 10 s for the socket to answer.
wait_for_daemon() {
  for _ in $(seq 1 100); do
    ping_daemon && return 0
    sleep 0.1
  done
  ping_daemon
}

if ping_daemon; then
  echo "==> berthd already running on $SOCK"
elif [ "$SYSTEMD_RUNNING" = 1 ]; then
  echo "==> systemctl enable --now berth.socket berth.service"
  systemctl daemon-reload
  systemctl enable --now berth.socket berth.service
  if ! wait_for_daemon; then
    echo "scripts/setup.sh: berth.service did not start; journalctl -u berth:" >&2
    journalctl -u berth.service -n 20 --no-pager >&2 || true
    exit 1
  fi
else
  echo "==> starting berthd (log: /var/log/berthd.log)"
  mkdir -p /run/berth
  # setsid: berthd keeps running after this script ends.
  setsid nohup "$ROOT/bin/berthd" >>/var/log/berthd.log 2>&1 < /dev/null &
  if ! wait_for_daemon; then
    echo "scripts/setup.sh: berthd did not start; last lines of /var/log/berthd.log:" >&2
    tail -n 20 /var/log/berthd.log >&2
    exit 1
  fi
fi

echo "==> bin/berth bootstrap busybox"
"$ROOT/bin/berth" bootstrap busybox

echo "==> bin/berth run --rm busybox echo hello from berth"
"$ROOT/bin/berth" run --rm busybox echo hello from berth
