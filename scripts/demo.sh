#!/usr/bin/env bash
# Offline demo: klinefeed-sim plays a Binance exchange at 60x speed on loopback, the collector
# stores closed candles in demo.db for SECONDS (default 20), then the stored candles are shown.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-20}
bash "$here/scripts/build.sh"
out=$(mktemp)
"$here/build/klinefeed-sim" --speed 60 >"$out" 2>/dev/null &
sim=$!
trap 'kill $sim 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q '^port=' "$out" && break; sleep 0.05; done
port=$(sed -n 's/^port=//p' "$out")
rm -f demo.db demo.db-wal demo.db-shm
echo "simulator on port $port; collecting for ${seconds}s (1 real second = 1 simulated minute)"
timeout -s TERM "$seconds" "$here/build/klinefeed" run --symbols BTCUSDT,ETHUSDT,AVAXUSDT \
  --intervals 1m,5m --ws-url "ws://127.0.0.1:$port/market" --rest-url "http://127.0.0.1:$port" \
  --sink sqlite:demo.db || true
echo
echo "stored candles (demo.db):"
sqlite3 -header -column demo.db \
  "SELECT symbol, interval, datetime(open_time/1000,'unixepoch') AS open, open AS o, high AS h,
          low AS l, close AS c, volume, trades
   FROM klines ORDER BY interval, symbol, open_time DESC LIMIT 12;"
sqlite3 demo.db "SELECT 'rows: ' || count(*) FROM klines;"
