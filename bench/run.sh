#!/usr/bin/env bash
# bench/run.sh - builds klinefeed-bench and klinefeed-sim (RelWithDebInfo) if needed, then runs
#   1. klinefeed-bench decode (ns per frame on the real capture)
#   2. klinefeed-bench e2e RUNS times, each against a fresh `klinefeed-sim --flood COUNT`
#      (with --tls: RUNS plaintext and RUNS TLS runs, alternating, each with its median)
#   3. klinefeed-bench footprint for each of FOOTPRINT_STREAMS streams
# and prints the medians. Every simulator it starts is killed on exit (also on Ctrl-C).
#
# usage: bench/run.sh [--runs R] [--count N] [--warmup W] [--streams LIST] [--footprint "1000 6000"]
#                     [--footprint-seconds S] [--skip-decode] [--skip-e2e] [--skip-footprint]
#                     [--perf] [--tls]
#   --warmup W (default 10000): klines received before the measured span (the simulator sends
#     a few normal updates, 250 ms apart, before its flood starts); the sim floods N + W.
#   --perf: also record one e2e run with `perf record -g` and print the top of `perf report`.
#   --tls: e2e also over TLS: a throw-away CA and localhost certificate made with `openssl` in
#     the temporary directory, the simulator with --tls-cert/--tls-key, the bench connecting to
#     wss://localhost:PORT/market with --ca-file; plaintext and TLS runs alternate. Each run
#     also reports the simulator's CPU seconds (the TLS server's share). With --perf, the
#     profiled run is a TLS one.
# Environment: BUILD_DIR (default <repo>/build).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
RUNS=5
COUNT=5000000
WARMUP=10000
STREAMS=btcusdt@kline_1m
FOOTPRINT="1000 6000"
FP_SECONDS=10
DO_DECODE=1 DO_E2E=1 DO_FP=1 DO_PERF=0 DO_TLS=0

while [ $# -gt 0 ]; do
    case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --count) COUNT=$2; shift 2 ;;
    --warmup) WARMUP=$2; shift 2 ;;
    --streams) STREAMS=$2; shift 2 ;;
    --footprint) FOOTPRINT=$2; shift 2 ;;
    --footprint-seconds) FP_SECONDS=$2; shift 2 ;;
    --skip-decode) DO_DECODE=0; shift ;;
    --skip-e2e) DO_E2E=0; shift ;;
    --skip-footprint) DO_FP=0; shift ;;
    --perf) DO_PERF=1; shift ;;
    --tls) DO_TLS=1; shift ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

BENCH=$BUILD_DIR/klinefeed-bench
SIM=$BUILD_DIR/klinefeed-sim
TMP=$(mktemp -d "${TMPDIR:-/tmp}/kfbench.XXXXXX")
SIM_PID=
CHILD_PID=

# run_child OUT ERR CMD...: runs CMD in the background and waits for it, so that a signal to
# this script is handled at once (bash defers traps while a foreground command runs).
run_child() {
    local out=$1 err=$2
    shift 2
    "$@" >"$out" 2>"$err" &
    CHILD_PID=$!
    local rc=0
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=
    return $rc
}

stop_sim() {
    if [ -n "$SIM_PID" ]; then
        kill "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
        SIM_PID=
    fi
}
cleanup() {
    if [ -n "$CHILD_PID" ]; then
        kill "$CHILD_PID" 2>/dev/null || true
        wait "$CHILD_PID" 2>/dev/null || true
    fi
    stop_sim
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_sim ARGS...: starts the simulator, sets SIM_PID and PORT.
start_sim() {
    stop_sim
    rm -f "$TMP/sim.out" # never read the previous simulator's port
    "$SIM" "$@" >"$TMP/sim.out" 2>"$TMP/sim.err" &
    SIM_PID=$!
    PORT=
    for _ in $(seq 100); do
        PORT=$(sed -n 's/^port=//p' "$TMP/sim.out" 2>/dev/null)
        [ -n "$PORT" ] && return 0
        kill -0 "$SIM_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "run.sh: the simulator did not start:" >&2
    cat "$TMP/sim.err" >&2
    exit 1
}

# sim_cpu: CPU seconds (user + system) the running simulator has used so far
sim_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{sub(/.*\) /, ""); printf "%.3f\n", ($12 + $13) / hz}' \
        "/proc/$SIM_PID/stat"
}

# make_certs: a throw-away CA and a certificate for localhost it signed, in $TMP (P-256 keys)
make_certs() {
    local ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    printf '[req]\ndistinguished_name=dn\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n[leaf]\nsubjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$TMP/openssl.cnf"
    openssl req -config "$TMP/openssl.cnf" -x509 -new "${ec[@]}" -keyout "$TMP/ca.key" \
        -out "$TMP/ca.pem" -days 1 -subj "/CN=klinefeed bench CA" -extensions ca >>"$TMP/openssl.log" 2>&1 &&
        openssl req -config "$TMP/openssl.cnf" -new "${ec[@]}" -keyout "$TMP/localhost.key" \
            -out "$TMP/localhost.csr" -subj "/CN=localhost" >>"$TMP/openssl.log" 2>&1 &&
        openssl x509 -req -in "$TMP/localhost.csr" -CA "$TMP/ca.pem" -CAkey "$TMP/ca.key" \
            -set_serial 2 -days 1 -extfile "$TMP/openssl.cnf" -extensions leaf \
            -out "$TMP/localhost.pem" >>"$TMP/openssl.log" 2>&1 || {
        echo "run.sh: openssl could not make the certificates:" >&2
        cat "$TMP/openssl.log" >&2
        exit 1
    }
}

# median FORMAT < values: median of one number per line, printed with the printf FORMAT
median() { sort -g | awk -v f="$1\n" '{v[NR]=$1} END {if (NR==0) print "nan"; else printf f, NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

# ---- build
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
    cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
if ! grep -q '^CMAKE_BUILD_TYPE:STRING=RelWithDebInfo$' "$BUILD_DIR/CMakeCache.txt"; then
    echo "run.sh: warning: $BUILD_DIR is not a RelWithDebInfo build" >&2
fi
cmake --build "$BUILD_DIR" -j2 --target klinefeed-bench klinefeed-sim >"$TMP/build.log" 2>&1 || {
    cat "$TMP/build.log" >&2
    exit 1
}

echo "# klinefeed benchmarks $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n), $(nproc) cores"
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- decode
if [ "$DO_DECODE" = 1 ]; then
    echo "== decode"
    "$BENCH" decode --rounds 5 | tail -n 1
fi

# ---- e2e
E2E_ARGS=(--streams "$STREAMS" --count "$COUNT" --warmup "$WARMUP")
FLOOD=$((COUNT + WARMUP))
MODES=plain
if [ "$DO_TLS" = 1 ]; then
    make_certs
    MODES="plain tls"
fi
# start_mode MODE: a flooding simulator for MODE (plain or tls); sets URL and TLS_ARGS (bench)
start_mode() {
    if [ "$1" = tls ]; then
        start_sim --flood "$FLOOD" --tls-cert "$TMP/localhost.pem" --tls-key "$TMP/localhost.key"
        URL="wss://localhost:$PORT/market"
        TLS_ARGS=(--ca-file "$TMP/ca.pem")
    else
        start_sim --flood "$FLOOD"
        URL="ws://127.0.0.1:$PORT/market"
        TLS_ARGS=()
    fi
}
if [ "$DO_E2E" = 1 ]; then
    how=""
    [ "$DO_TLS" = 1 ] && how=" each, plaintext and TLS alternating"
    echo "== e2e: $RUNS runs$how of $COUNT klines after $WARMUP, streams $STREAMS"
    : >"$TMP/sum"
    for m in $MODES; do : >"$TMP/rate.$m" && : >"$TMP/cpu.$m" && : >"$TMP/simcpu.$m"; done
    for r in $(seq "$RUNS"); do
        for m in $MODES; do
            start_mode "$m"
            run_child "$TMP/e2e.out" "$TMP/e2e.err" \
                "$BENCH" e2e --url "$URL" "${TLS_ARGS[@]}" "${E2E_ARGS[@]}" || {
                cat "$TMP/e2e.err" >&2
                exit 1
            }
            line=$(cat "$TMP/e2e.out")
            scpu=$(sim_cpu)
            stop_sim
            set -- $line
            n=${1#messages=} s=${2#seconds=} c=${3#cpu=} x=${4#sum_close=}
            if [ "$DO_TLS" = 1 ]; then
                echo "run $r $m: $line sim_cpu=$scpu"
            else
                echo "run $r: $line"
            fi
            awk -v n="$n" -v s="$s" 'BEGIN {printf "%.0f\n", n / s}' >>"$TMP/rate.$m"
            awk -v n="$n" -v c="$c" 'BEGIN {printf "%.4f\n", c / n * 1e6}' >>"$TMP/cpu.$m"
            # the simulator's whole life (startup, warm-up, flood) per million frames it sent
            awk -v n="$FLOOD" -v c="$scpu" 'BEGIN {printf "%.4f\n", c / n * 1e6}' >>"$TMP/simcpu.$m"
            echo "$x" >>"$TMP/sum"
        done
    done
    if [ "$DO_TLS" = 1 ]; then
        for m in $MODES; do
            echo "e2e $m median msgs_per_s=$(median %.0f <"$TMP/rate.$m") cpu_s_per_million=$(median %.4f <"$TMP/cpu.$m") sim_cpu_s_per_million=$(median %.4f <"$TMP/simcpu.$m") runs=$RUNS count=$COUNT"
        done
    else
        echo "e2e median msgs_per_s=$(median %.0f <"$TMP/rate.plain") cpu_s_per_million=$(median %.4f <"$TMP/cpu.plain") runs=$RUNS count=$COUNT"
    fi
    if [ "$(sort -u "$TMP/sum" | wc -l)" != 1 ]; then
        # expected: the flood starts after a varying number (0-4) of normal updates, which
        # shifts the measured window within the flood's frame sequence
        echo "e2e: note: sum_close differs between runs (window offset in the flood varies)"
    fi
fi

if [ "$DO_PERF" = 1 ]; then
    m=plain
    [ "$DO_TLS" = 1 ] && m=tls
    echo "== perf (one e2e run, $m)"
    start_mode "$m"
    run_child /dev/null "$TMP/perf.err" perf record -g -o "$TMP/perf.data" -- \
        "$BENCH" e2e --url "$URL" "${TLS_ARGS[@]}" "${E2E_ARGS[@]}" || cat "$TMP/perf.err" >&2
    stop_sim
    perf report -i "$TMP/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -n 25 || true # head closes the pipe early: not a failure
fi

# ---- footprint
if [ "$DO_FP" = 1 ]; then
    for n in $FOOTPRINT; do
        # same symbol x interval split as the bench: the largest interval count <= 15 dividing n
        k=15
        while [ $((n % k)) != 0 ]; do k=$((k - 1)); done
        syms=$(awk -v m=$((n / k)) 'BEGIN {for (i = 0; i < m; i++) printf "%sS%04dUSDT", i ? "," : "", i}')
        echo "== footprint $n streams ($((n / k)) symbols x $k intervals), ${FP_SECONDS}s idle"
        start_sim --symbols "$syms"
        run_child "$TMP/fp.out" "$TMP/fp.err" "$BENCH" footprint --url "ws://127.0.0.1:$PORT/market" \
            --rest-url "http://127.0.0.1:$PORT" --streams-count "$n" --seconds "$FP_SECONDS" || {
            cat "$TMP/fp.err" >&2
            exit 1
        }
        cat "$TMP/fp.out"
        stop_sim
        grep '^footprint:' "$TMP/fp.err" | sed 's/^/  /'
    done
fi
