#!/usr/bin/env bash
# Installs every Debian package klinefeed needs to build, run and test.
# Safe to run again: packages already present are not reinstalled.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config clang clang-format
  libssl-dev ca-certificates         # TLS (OpenSSL) and the system CA store
  openssl                            # the TLS tests make a throw-away CA and certificates
  libuv1-dev                         # event loop, timers, signals, wake-ups
  libcurl4-openssl-dev               # REST
  libsqlite3-dev sqlite3             # the embedded default store (+ CLI for inspection)
  libmicrohttpd-dev                  # the daemon's HTTP server (--http: /metrics, /healthz, /readyz)
  prometheus                         # test_http: promtool check metrics, and a real scrape
  libcmocka-dev                      # test framework
  valgrind                           # leak checks of the integration tests
  curl                               # scripts/soak.sh reads the simulator's /sim/state
  dpkg-dev file                      # the .deb (scripts/deb.sh): dpkg-shlibdeps; CPack runs file
  groff-base man-db                  # the man pages are checked with groff and man (test_man)
  python3-dev python3-setuptools python3-pip    # the Python package (python/): C extension, pip
  python3-pytest python3-pytest-asyncio         # its tests
  nodejs                             # test_gateway: a real Binance client (npm ccxt) on the gateway
)
# npm: Debian's package, unless npm is there already (NodeSource's nodejs bundles its own, and
# Debian's npm would not install beside it)
command -v npm >/dev/null || PKGS+=(npm)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
