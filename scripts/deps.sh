# Shared by scripts/setup.sh and scripts/test.sh: installs only what is missing,
# so a second run costs a few dpkg queries.

# runc+conmon run containers; busybox-static and debootstrap make base images;
# docker.io gives the real docker CLI (interop tests) and dockerd (round trips,
# benchmark); attr/xz-utils/zstd for xattrs and compressed tarballs; tini for
# --init; iproute2/procps for network and process checks; tmux/util-linux for
# TTY tests (script); gcc and libc6-dev compile the native addon (native/).
BERTH_APT_PACKAGES=(gcc libc6-dev runc conmon busybox-static debootstrap docker.io attr xz-utils zstd tini iproute2 procps util-linux tmux nftables)
# Registry tests: distribution 2.8 as the reference server, skopeo/umoci as OCI clients, htpasswd, TLS certs, wrk for the benchmark.
BERTH_APT_PACKAGES+=(docker-registry skopeo umoci apache2-utils openssl curl wrk)
BERTH_APT_PACKAGES+=(git) # build: git remote contexts (berthd runs the system git)
BERTH_APT_PACKAGES+=(docker-compose) # interop: docker-compose 1.29 (docker-py) against berthd

install_system_packages() {
  local missing=() p
  for p in "${BERTH_APT_PACKAGES[@]}" "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "==> system packages present"
    return 0
  fi
  echo "==> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || return 1
  apt-get install -y -qq --no-install-recommends "${missing[@]}" || return 1
}

install_npm_packages() {
  # npm ci wipes node_modules; skip it when node_modules already matches the lock file.
  if [ -f node_modules/.package-lock.json ] && [ node_modules/.package-lock.json -nt package-lock.json ] \
     && [ node_modules/.package-lock.json -nt package.json ]; then
    echo "==> node_modules up to date"
    return 0
  fi
  echo "==> npm ci"
  npm ci --no-audit --no-fund
}
