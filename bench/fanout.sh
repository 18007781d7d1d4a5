#!/usr/bin/env bash
# bench/fanout.sh - the gateway's WebSocket fan-out: messages/s delivered to N local clients
# subscribed to every collected stream, and the CPU it costs.
#
# Starts klinefeed-sim (8 symbols, fast updates), `klinefeed run` collecting every symbol x the
# 15 intervals (120 streams) from it with --http on a free port, then runs klinefeed-bench-fanout
# RUNS times against the daemon (each run: fresh clients, a warm-up, S seconds measured) and
# prints each run and the median messages/s and daemon CPU. Everything it starts is stopped on
# exit (also on Ctrl-C), by the process ids it recorded.
#
# usage: bench/fanout.sh [--clients N] [--seconds S] [--runs R] [--mode combined|raw]
#                        [--speed X] [--update-ms N] [--symbols LIST] [--intervals LIST]
#                        [--threads T] [--klinefeed PATH]
#   defaults: 100 clients, 10 s, 3 runs, combined, --speed 50 --update-ms 250 (each stream
#   updates up to 200 times a second: ~16,000 events/s upstream for 120 streams), the simulator's
#   8 symbols, all 15 intervals, 1 bench thread, BUILD_DIR/klinefeed.
#   --klinefeed PATH: another daemon binary (a build of another commit, for a before/after).
# Environment: BUILD_DIR (default <repo>/build).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
CLIENTS=100 SECONDS_=10 RUNS=3 MODE=combined SPEED=50 UPDATE_MS=250 THREADS=1
SYMBOLS=BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT,DOGEUSDT,ADAUSDT,AVAXUSDT
INTERVALS=1m,3m,5m,15m,30m,1h,2h,4h,6h,8h,12h,1d,3d,1w,1M
KLINEFEED=$BUILD_DIR/klinefeed
while [ $# -gt 0 ]; do
    case $1 in
    --clients) CLIENTS=$2 ;;
    --seconds) SECONDS_=$2 ;;
    --runs) RUNS=$2 ;;
    --mode) MODE=$2 ;;
    --speed) SPEED=$2 ;;
    --update-ms) UPDATE_MS=$2 ;;
    --symbols) SYMBOLS=$2 ;;
    --intervals) INTERVALS=$2 ;;
    --threads) THREADS=$2 ;;
    --klinefeed) KLINEFEED=$2 ;;
    *) sed -n '2,19p' "$0" >&2; exit 2 ;;
    esac
    shift 2
done
[ -x "$BUILD_DIR/klinefeed" ] && [ -x "$BUILD_DIR/klinefeed-sim" ] &&
    [ -x "$BUILD_DIR/klinefeed-bench-fanout" ] ||
    cmake --build "$BUILD_DIR" --target klinefeed-cli klinefeed-sim klinefeed-bench-fanout

DIR=$(mktemp -d /tmp/kf-bench-fanout-XXXXXX)
SIM_PID= KF_PID=
cleanup() {
    [ -n "$KF_PID" ] && kill "$KF_PID" 2>/dev/null && wait "$KF_PID" 2>/dev/null || true
    [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null && wait "$SIM_PID" 2>/dev/null || true
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

wait_for() { # FILE REGEX: the first match's group 1, within 20 s
    for _ in $(seq 200); do
        m=$(sed -n -E "s/.*$2.*/\1/p" "$1" | head -1)
        [ -n "$m" ] && { echo "$m"; return 0; }
        sleep 0.1
    done
    echo "fanout.sh: no $2 in $1:" >&2; cat "$1" >&2; return 1
}

"$BUILD_DIR/klinefeed-sim" --speed "$SPEED" --update-ms "$UPDATE_MS" --symbols "$SYMBOLS" \
    >"$DIR/sim.log" 2>&1 &
SIM_PID=$!
SIM_PORT=$(wait_for "$DIR/sim.log" 'port=([0-9]+)')
"$KLINEFEED" run --symbols "$SYMBOLS" --intervals "$INTERVALS" \
    --ws-url "ws://127.0.0.1:$SIM_PORT/market" --rest-url "http://127.0.0.1:$SIM_PORT" \
    --sink "sqlite:$DIR/klines.db" --state-dir none --no-backfill --status-every 0 \
    --http 127.0.0.1:0 >"$DIR/daemon.log" 2>&1 &
KF_PID=$!
PORT=$(wait_for "$DIR/daemon.log" 'http listening.* port=([0-9]+)')
wait_for "$DIR/daemon.log" 'msg="(started)' >/dev/null
STREAMS=
for s in ${SYMBOLS//,/ }; do
    for i in ${INTERVALS//,/ }; do
        STREAMS+="${STREAMS:+/}$(echo "$s" | tr 'A-Z' 'a-z')@kline_$i"
    done
done
NSTREAMS=$(echo "$STREAMS" | tr '/' '\n' | wc -l)
echo "fanout: $KLINEFEED, $NSTREAMS streams, sim --speed $SPEED --update-ms $UPDATE_MS," \
    "$CLIENTS $MODE clients, $SECONDS_ s x $RUNS runs, $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
sleep 2
rates=() cpus=()
for r in $(seq "$RUNS"); do
    line=$("$BUILD_DIR/klinefeed-bench-fanout" --port "$PORT" --streams "$STREAMS" \
        --clients "$CLIENTS" --seconds "$SECONDS_" --mode "$MODE" --threads "$THREADS" \
        --pid "$KF_PID" --sim-pid "$SIM_PID") || { echo "run $r: $line (failed)"; exit 1; }
    echo "run $r: $line load=$(cut -d' ' -f1 /proc/loadavg)"
    rates+=("$(echo "$line" | sed -E 's/.* msgs\/s=([0-9]+).*/\1/')")
    cpus+=("$(echo "$line" | sed -E 's/.* daemon_cpu=([0-9]+)%.*/\1/')")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median: msgs/s=$(median "${rates[@]}") daemon_cpu=$(median "${cpus[@]}")%" \
    "dropped_logged=$(grep -c 'gateway client dropped' "$DIR/daemon.log" || true)"
