#!/usr/bin/env bash
# bench/cluster_scale.sh - Binance's real scale on one collector: SYMBOLS symbols x all 15
# intervals (700 x 15 = 10,500 streams) from one klinefeed-sim at speed 1 (real time) into one
# `klinefeed run` with --ring-size 100 and a SQLite store. Not a test: it measures and prints.
#
#   1. generates SYMBOLS names (S0000USDT ...), starts klinefeed-sim --symbols LIST --speed 1
#   2. starts klinefeed run with every interval, waits for "all streams subscribed"
#   3. samples the daemon's CPU time (utime+stime of /proc/PID/stat) and VmRSS every SAMPLE
#      seconds for DURATION seconds; prints each sample and the medians (CPU as % of one core)
#   4. stops the daemon (SIGTERM: it flushes) and compares its store with the simulator's truth
#      (klinefeed-compare over every symbol x interval, candles closed after the subscription)
#
# usage: bench/cluster_scale.sh [--symbols N] [--duration S] [--sample S] [--update-ms MS]
#                               [--perf] [--all]
#   --update-ms: the simulator's update period per stream (default 250, Binance's stream
#     speed for a symbol that trades all the time: the worst case).
#   --perf: perf record -g the daemon for 30 s of the measured span; prints the top of the report
#   --all: the daemon is given --symbols ALL (the simulator's exchangeInfo lists exactly these
#     symbols), so it also carries the re-read's reserve (--symbols-reserve, 256 symbols by
#     default) and re-reads exchangeInfo every --symbols-refresh
# Environment: BUILD_DIR (default <repo>/build).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
NSYM=700
DURATION=180
SAMPLE=10
UPDATE_MS=250
PERF=0
ALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --symbols) NSYM=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --sample) SAMPLE=$2; shift 2 ;;
    --update-ms) UPDATE_MS=$2; shift 2 ;;
    --perf) PERF=1; shift ;;
    --all) ALL=1; shift ;;
    *) echo "usage: $0 [--symbols N] [--duration S] [--sample S] [--update-ms MS] [--perf] [--all]" >&2
       exit 2 ;;
  esac
done
SIM=$BUILD_DIR/klinefeed-sim
KF=$BUILD_DIR/klinefeed
CMP=$BUILD_DIR/klinefeed-compare
for b in "$SIM" "$KF" "$CMP"; do
  [ -x "$b" ] || { echo "missing $b: cmake --build $BUILD_DIR first" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/kf-scale-XXXXXX)
SIM_PID= KF_PID=
cleanup() {
  [ -n "$KF_PID" ] && kill "$KF_PID" 2>/dev/null && wait "$KF_PID" 2>/dev/null || true
  [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

SYMS=$(seq -f 'S%04gUSDT' 0 $((NSYM - 1)) | paste -sd, -)
INTERVALS=1m,3m,5m,15m,30m,1h,2h,4h,6h,8h,12h,1d,3d,1w,1M

"$SIM" --speed 1 --update-ms "$UPDATE_MS" --symbols "$SYMS" >"$TMP/sim.out" 2>"$TMP/sim.err" &
SIM_PID=$!
for _ in $(seq 100); do grep -q '^port=' "$TMP/sim.out" 2>/dev/null && break; sleep 0.1; done
PORT=$(sed -n 's/^port=//p' "$TMP/sim.out")
[ -n "$PORT" ] || { echo "simulator did not start" >&2; cat "$TMP/sim.err" >&2; exit 1; }

RUN_SYMS=$SYMS
[ "$ALL" = 1 ] && RUN_SYMS=ALL
"$KF" run --symbols "$RUN_SYMS" --intervals "$INTERVALS" --ring-size 100 \
  --ws-url "ws://127.0.0.1:$PORT/market" --rest-url "http://127.0.0.1:$PORT" \
  --sink "sqlite:$TMP/klines.db" --state-dir none --status-every 0 2>"$TMP/kf.log" &
KF_PID=$!
T0=$(date +%s)
until grep -q 'all streams subscribed' "$TMP/kf.log"; do
  kill -0 "$KF_PID" 2>/dev/null || { echo "klinefeed exited" >&2; cat "$TMP/kf.log" >&2; exit 1; }
  [ $(($(date +%s) - T0)) -lt 120 ] || { echo "not subscribed after 120 s" >&2; exit 1; }
  sleep 0.5
done
SUB_S=$(($(date +%s) - T0))
# the simulator's clock (it starts at 2026-01-01 unless told otherwise), not the wall clock
sim_now() { curl -s "http://127.0.0.1:$PORT/fapi/v1/time" | sed 's/[^0-9]//g'; }
NOW_MS=$(sim_now)
STREAMS=$((NSYM * 15))
echo "streams=$STREAMS connections=$(( (STREAMS + 1023) / 1024 )) subscribed_after_s=$SUB_S update_ms=$UPDATE_MS"

HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/${1:-$KF_PID}/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$KF_PID/status"; }
sleep "$SAMPLE" # settle after the subscription burst
if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
  perf record -g -o "$TMP/perf.data" -p "$KF_PID" -- sleep 30 >/dev/null 2>&1 || true
fi
prev=$(cpu_ticks); prev_t=$(date +%s%N)
sim0=$(cpu_ticks "$SIM_PID"); t_start=$prev_t
: >"$TMP/samples"
end=$(($(date +%s) + DURATION))
while [ "$(date +%s)" -lt "$end" ]; do
  sleep "$SAMPLE"
  cur=$(cpu_ticks); cur_t=$(date +%s%N)
  pct=$(awk -v d=$((cur - prev)) -v hz="$HZ" -v ns=$((cur_t - prev_t)) \
    'BEGIN {printf "%.2f", 100 * d / hz / (ns / 1e9)}')
  rss=$(rss_kb)
  echo "sample cpu_pct_of_core=$pct rss_mb=$((rss / 1024))"
  echo "$pct $rss" >>"$TMP/samples"
  prev=$cur; prev_t=$cur_t
done
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
SIM_PCT=$(awk -v d=$(($(cpu_ticks "$SIM_PID") - sim0)) -v hz="$HZ" \
  -v ns=$(($(date +%s%N) - t_start)) 'BEGIN {printf "%.0f", 100 * d / hz / (ns / 1e9)}')
MED_CPU=$(awk '{print $1}' "$TMP/samples" | median)
MED_RSS=$(awk '{print $2}' "$TMP/samples" | median)
MAX_RSS=$(awk '{print $2}' "$TMP/samples" | sort -n | tail -1)

SUB_MS=$(($(date +%s%N) / 1000000 - (SAMPLE + DURATION) * 1000))
kill -TERM "$KF_PID"; wait "$KF_PID" || true; KF_PID=
STOP_MS=$(($(date +%s%N) / 1000000))
grep 'msg="stopped"' "$TMP/kf.log" | tail -1 || true
FRAMES=$(sed -n 's/.*msg="stopped" frames=\([0-9]*\).*/\1/p' "$TMP/kf.log" | tail -1)
# candles that closed after the subscription and before the stop: every one must be stored
TO_MS=$(($(sim_now) - 5000))
set +e
"$CMP" --port "$PORT" --db "$TMP/klines.db" --symbols "$SYMS" --intervals 1m,3m,5m \
  --from "$(((NOW_MS + 59999) / 60000 * 60000))" --to "$TO_MS" --verbose 5
CMP_RC=$?
set -e
echo "frames_per_s=$(( ${FRAMES:-0} * 1000 / (STOP_MS - SUB_MS + SUB_S * 1000) )) (from the start)" \
  "simulator_cpu_pct=$SIM_PCT"
echo "median cpu_pct_of_core=$MED_CPU rss_mb=$((MED_RSS / 1024)) max_rss_mb=$((MAX_RSS / 1024))" \
  "(goals: < 2 %, < 64 MB) compare_rc=$CMP_RC"
if [ "$PERF" = 1 ] && [ -f "$TMP/perf.data" ]; then
  perf report -i "$TMP/perf.data" --no-children --stdio 2>/dev/null | grep -v '^#' | grep '%' |
    head -25
fi
