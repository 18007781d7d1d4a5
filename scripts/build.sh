#!/usr/bin/env bash
# Sets up (Debian packages) and builds klinefeed, klinefeed-sim, klinefeed-bench and
# klinefeed-example (examples/minimal.c, the README's library example) in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target klinefeed-cli klinefeed-sim klinefeed-bench klinefeed-example >&2
