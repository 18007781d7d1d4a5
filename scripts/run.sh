#!/usr/bin/env bash
# The README's run command: sets up, builds, then runs the collector with its default store
# (sqlite:klines.db in the current directory). Arguments go to `klinefeed run`; what they leave
# out takes the defaults: BTCUSDT and ETHUSDT (--symbols) at 1m and 5m (--intervals), on
# Binance mainnet. With --config FILE the file supplies them instead.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/build.sh"
has() { local want=$1; shift; for a in "$@"; do [[ $a == "$want" || $a == "$want="* ]] && return 0; done; return 1; }
if ! has --config "$@"; then
  has --symbols "$@" || set -- --symbols BTCUSDT,ETHUSDT "$@"
  has --intervals "$@" || set -- --intervals 1m,5m "$@"
fi
exec "$here/build/klinefeed" run "$@"
