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
  libpq-dev postgresql               # the PostgreSQL store (libpq) and a server for its tests
  libnats-dev                        # the nats:// JetStream store (nats.c)
  nats-server                        # a real JetStream server for its tests
  libcmocka-dev                      # test framework
  valgrind                           # leak checks of the integration tests
  curl                               # scripts/soak.sh reads the simulator's /sim/state
  dpkg-dev file                      # the .deb (scripts/deb.sh): dpkg-shlibdeps; CPack runs file
  groff-base man-db                  # the man pages are checked with groff and man (test_man)
  python3-dev python3-setuptools python3-pip    # the Python package (python/): C extension, pip
  python3-pytest python3-pytest-asyncio         # its tests
  chromium                           # test_page: the live page in headless Chromium
)
# test_gateway drives the gateway with a real Binance client (npm ccxt, tests/gateway).
# The live page embeds the npm package lightweight-charts (web/package-lock.json), installed at
# build time by `npm ci`; its test drives Chromium with playwright-core from the same lockfile.
# nodejs and npm from Debian, unless a node and npm are already there (e.g. NodeSource's
# nodejs, which brings its own npm and conflicts with Debian's npm package).
command -v node >/dev/null || PKGS+=(nodejs)
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
