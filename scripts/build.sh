#!/usr/bin/env bash
# Sets up (Debian packages) and builds klinefeed, klinefeed-sim and klinefeed-bench in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)" --target klinefeed-cli klinefeed-sim klinefeed-bench >&2
