#!/usr/bin/env bash
# The README's run command: sets up, builds, then runs the collector with its default store
# (sqlite:klines.db in the current directory). Arguments go to `klinefeed run`; without any,
# BTCUSDT and ETHUSDT at 1m and 5m on Binance mainnet.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/build.sh"
if [ $# -eq 0 ]; then
  set -- --symbols BTCUSDT,ETHUSDT --intervals 1m,5m
fi
exec "$here/build/klinefeed" run "$@"
