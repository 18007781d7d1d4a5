#!/usr/bin/env bash
# A soak anyone can run for hours: the klinefeed daemon against klinefeed-sim with every fault
# on at a moderate rate and `kill -9` at random moments (restarted on the same store), then a
# calm period for the repairs, SIGTERM, and the store compared with the simulator's truth
# (build/klinefeed-compare). Prints one final line and exits non-zero when a candle is missing,
# extra or differing (or none was checked), when the exchange ever answered 418, when the
# daemon's SIGTERM exit was not 0, or when it died by a signal it was not sent.
#
#   bash scripts/soak.sh [--minutes M] [--symbols N] [--intervals LIST] [--speed X]
#                        [--kills K] [--calm-minutes C] [--seed S] [--out DIR]
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$PWD

MINUTES=30
NSYMBOLS=50
INTERVALS=1m,3m,5m,15m,30m,1h,2h,4h,6h,8h,12h,1d,3d,1w,1M
SPEED=60
KILLS=
CALM_MINUTES=5
SEED=$(( $(date +%s) % 100000 ))
OUT=

usage() {
  cat <<EOF
usage: bash scripts/soak.sh [options]
  --minutes M        fault period, real minutes (default 30); a calm period follows
  --symbols N        generated symbols S01USDT.. (default 50)
  --intervals LIST   (default $INTERVALS)
  --speed X          simulated ms per real ms (default 60)
  --kills K          kill -9 of the daemon during the fault period (default: one per 3 minutes)
  --calm-minutes C   at most this long without faults for the repairs; ends early after two
                     consecutive clean comparisons (default 5)
  --seed S           seed of the kill schedule and of the simulator's faults (default: the clock)
  --out DIR          where the run's files go (default: a fresh mktemp directory)
EOF
}

die() { echo "soak: $*" >&2; exit 2; }
is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while [ $# -gt 0 ]; do
  flag=$1
  case $flag in
    --help|-h) usage; exit 0 ;;
    --*=*) val=${flag#*=}; flag=${flag%%=*}; shift ;;
    --*) val=${2-}; if [ $# -ge 2 ]; then shift 2; else shift; fi ;;
    *) die "unknown argument '$flag' (see --help)" ;;
  esac
  case $flag in
    --minutes|--symbols|--intervals|--speed|--kills|--calm-minutes|--seed|--out) ;;
    *) die "unknown flag $flag (see --help)" ;;
  esac
  case $flag in
    --minutes) is_uint "$val" && [ "$val" -gt 0 ] || die "--minutes: expected minutes > 0, got '$val'"; MINUTES=$val ;;
    --symbols) is_uint "$val" && [ "$val" -gt 0 ] && [ "$val" -le 999 ] || die "--symbols: expected 1..999, got '$val'"; NSYMBOLS=$val ;;
    --intervals) [[ $val =~ ^[0-9]+[mhdwM](,[0-9]+[mhdwM])*$ ]] || die "--intervals: expected a list like 1m,5m, got '$val'"; INTERVALS=$val ;;
    --speed) [[ $val =~ ^[0-9]+(\.[0-9]+)?$ ]] && [[ ! $val =~ ^0+(\.0*)?$ ]] || die "--speed: expected a number > 0, got '$val'"; SPEED=$val ;;
    --kills) is_uint "$val" || die "--kills: expected a count >= 0, got '$val'"; KILLS=$val ;;
    --calm-minutes) is_uint "$val" && [ "$val" -gt 0 ] || die "--calm-minutes: expected minutes > 0, got '$val'"; CALM_MINUTES=$val ;;
    --seed) is_uint "$val" || die "--seed: expected an integer >= 0, got '$val'"; SEED=$val ;;
    --out) [ -n "$val" ] || die "--out: expected a directory"; OUT=$val ;;
    *) die "unknown flag $flag (see --help)" ;;
  esac
done
[ -n "$KILLS" ] || KILLS=$(( MINUTES / 3 ))
command -v curl >/dev/null || die "curl is needed (bash scripts/setup.sh)"
if [ -z "$OUT" ]; then
  OUT=$(mktemp -d /tmp/klinefeed-soak.XXXXXX) || die "mktemp failed"
else
  mkdir -p "$OUT" || die "--out: cannot create '$OUT'"
  OUT=$(cd "$OUT" && pwd)
  rm -f "$OUT"/soak.db "$OUT"/soak.db-wal "$OUT"/soak.db-shm
fi
echo "soak: files in $OUT"

# ---- build if needed
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$OUT/build.log" 2>&1 ||
    { tail -20 "$OUT/build.log" >&2; die "cmake configure failed (see $OUT/build.log)"; }
fi
cmake --build build -j2 --target klinefeed-cli klinefeed-sim klinefeed-compare >>"$OUT/build.log" 2>&1 ||
  { tail -20 "$OUT/build.log" >&2; die "build failed (see $OUT/build.log)"; }
SIM=$ROOT/build/klinefeed-sim
DAEMON=$ROOT/build/klinefeed
COMPARE=$ROOT/build/klinefeed-compare

# ---- processes: everything we start is stopped on exit or interrupt, by pid
SIM_PID=
DAEMON_PID=

stop_pid() { # SIGTERM, then SIGKILL after 10 s
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}
cleanup() {
  stop_pid "$DAEMON_PID"; DAEMON_PID=
  stop_pid "$SIM_PID"; SIM_PID=
}
trap cleanup EXIT
trap 'echo "soak: interrupted" >&2; exit 130' INT
trap 'echo "soak: terminated" >&2; exit 143' TERM

now_ms() { local t=${EPOCHREALTIME/./}; echo $(( t / 1000 )); }
rand() { echo $(( $1 + (RANDOM * 32768 + RANDOM) % ($2 - $1 + 1) )); } # uniform in [$1, $2]
RANDOM=$SEED

sim_state() { # GET /sim/state (retried: the simulator's refusal fault resets new connections)
  curl -s --max-time 10 --retry 10 --retry-all-errors --retry-delay 1 \
    "http://127.0.0.1:$PORT/sim/state"
}
sim_now() { sim_state | sed -n 's/^{"now":\([0-9]*\),.*/\1/p'; }

# ---- the simulator: faults from 5 s to the end of the fault period (real time)
SYMS=$(for i in $(seq 1 "$NSYMBOLS"); do
  if [ "$NSYMBOLS" -le 99 ]; then printf 'S%02dUSDT,' "$i"; else printf 'S%03dUSDT,' "$i"; fi
done)
SYMS=${SYMS%,}
NIV=$(tr ',' '\n' <<<"$INTERVALS" | wc -l)
STREAMS=$(( NSYMBOLS * NIV ))
FAULT_MS=$(( MINUTES * 60000 ))
# Rates (S: mean real seconds between events; P: probability): moderate, so the daemon can keep
# up with 750 streams under its REST budget. --ban-ms stays at its default (2 minutes).
"$SIM" --symbols "$SYMS" --speed "$SPEED" --update-ms 1000 \
  --fault-seed "$SEED" --faults-start-ms 5000 --faults-stop-ms "$FAULT_MS" \
  --fault-reset-every 120 --fault-stall-every 300 --fault-close-every 180 \
  --fault-refuse-every 300 --refuse-ms 3000 --fault-garbage-every 10 \
  --drop-close-rate 0.002 \
  --rest-429-rate 0.01 --rest-500-rate 0.01 --rest-slow-rate 0.01 --rest-slow-ms 3000 \
  --rest-timeout-rate 0.002 \
  >"$OUT/sim.out" 2>"$OUT/sim.log" &
SIM_PID=$!
T0=$(now_ms)
PORT=
for i in $(seq 100); do
  PORT=$(sed -n 's/^port=\([0-9]*\)$/\1/p' "$OUT/sim.out")
  [ -n "$PORT" ] && break
  kill -0 "$SIM_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$PORT" ] || { tail -5 "$OUT/sim.log" >&2; echo "soak: the simulator did not start" >&2; exit 1; }
SIM_START=$(sim_now)
[ -n "$SIM_START" ] || { echo "soak: no \"now\" from GET /sim/state" >&2; exit 1; }
BACKFILL=$(( SIM_START / 60000 * 60000 ))
echo "soak: simulator pid $SIM_PID port $PORT, $STREAMS streams at ${SPEED}x, seed $SEED;" \
  "faults for $MINUTES min, $KILLS kills; backfill from $BACKFILL"

# ---- the daemon, killed and restarted on the same store
KILLS_DONE=0
RESTARTS=0
# Exits nobody asked for (with --retry-start a start inside the simulator's refusal period
# keeps trying instead of exiting): the script restarts the daemon as a supervisor would, and
# counts it. A death by a signal (a crash) fails the run.
DIED=0
CRASHED=0
start_daemon() {
  echo "soak: $(date -u +%H:%M:%S) starting the daemon" >>"$OUT/daemon.log"
  "$DAEMON" run --symbols "$SYMS" --intervals "$INTERVALS" \
    --ws-url "ws://127.0.0.1:$PORT/market" --rest-url "http://127.0.0.1:$PORT" \
    --sink "sqlite:$OUT/soak.db" --backfill-from "$BACKFILL" --retry-start \
    --state-dir "$OUT/state" >>"$OUT/daemon.log" 2>&1 &
  DAEMON_PID=$!
}
# Sleeps until the real time $1 (ms), restarting a daemon that exits by itself.
sleep_until() {
  local left st
  while :; do
    if ! kill -0 "$SIM_PID" 2>/dev/null; then
      wait "$SIM_PID"; st=$?; SIM_PID=
      echo "soak: aborted: the simulator exited by itself with status $st (see $OUT/sim.log)" >&2
      exit 1
    fi
    if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
      wait "$DAEMON_PID"; st=$?
      DIED=$(( DIED + 1 ))
      [ "$st" -lt 128 ] || CRASHED=$(( CRASHED + 1 ))
      echo "soak: the daemon exited by itself with status $st; restarting it" | tee -a "$OUT/daemon.log" >&2
      start_daemon
    fi
    left=$(( $1 - $(now_ms) ))
    [ "$left" -gt 0 ] || return 0
    [ "$left" -gt 1000 ] && left=1000
    sleep "$(( left / 1000 )).$(printf '%03d' $(( left % 1000 )))"
  done
}

start_daemon
FAULT_END=$(( T0 + FAULT_MS ))
PERIOD=$(( FAULT_MS / (KILLS + 1) ))
last_start=$(now_ms)
for k in $(seq 1 "$KILLS"); do
  # the k-th kill, uniform within a third of a period around k periods after the start
  at=$(( T0 + k * PERIOD + $(rand $(( -PERIOD / 3 )) $(( PERIOD / 3 ))) ))
  [ "$at" -ge $(( last_start + 3000 )) ] || at=$(( last_start + 3000 ))
  [ "$at" -lt $(( FAULT_END - 5000 )) ] || break
  sleep_until "$at"
  kill -KILL "$DAEMON_PID" 2>/dev/null
  wait "$DAEMON_PID" 2>/dev/null
  KILLS_DONE=$(( KILLS_DONE + 1 ))
  down=0
  if [ $(( RANDOM % 2 )) -eq 1 ]; then # half the time down for a while (simulated minutes)
    maxdown=$(( PERIOD / 4 )); [ "$maxdown" -le 20000 ] || maxdown=20000
    [ "$maxdown" -ge 500 ] && down=$(rand 500 "$maxdown")
  fi
  echo "soak: $(date -u +%H:%M:%S) kill -9 #$KILLS_DONE, down for $down ms" | tee -a "$OUT/daemon.log"
  [ "$down" -eq 0 ] || sleep "$(( down / 1000 )).$(printf '%03d' $(( down % 1000 )))"
  start_daemon
  RESTARTS=$(( RESTARTS + 1 ))
  last_start=$(now_ms)
done
sleep_until "$FAULT_END"

# ---- calm: no fault any more; compare every 15 s, done after two clean ones in a row
echo "soak: $(date -u +%H:%M:%S) faults over; calm for at most $CALM_MINUTES min"
CALM_END=$(( $(now_ms) + CALM_MINUTES * 60000 ))
clean=0
while [ "$(now_ms)" -lt "$CALM_END" ] && [ "$clean" -lt 2 ]; do
  sleep_until $(( $(now_ms) + 15000 ))
  now=$(sim_now)
  [ -n "$now" ] || continue
  if line=$("$COMPARE" --port "$PORT" --db "$OUT/soak.db" --symbols "$SYMS" --intervals "$INTERVALS" \
    --from "$BACKFILL" --to $(( now - 120000 )) 2>>"$OUT/compare.log"); then
    clean=$(( clean + 1 ))
  else
    clean=0
  fi
  echo "soak: $(date -u +%H:%M:%S) calm: $line"
done

# ---- stop, then the final comparison up to 2 simulated minutes before the stop
kill -TERM "$DAEMON_PID" 2>/dev/null
DAEMON_EXIT=timeout
for i in $(seq 600); do kill -0 "$DAEMON_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$DAEMON_PID" 2>/dev/null; then
  kill -KILL "$DAEMON_PID" 2>/dev/null
  wait "$DAEMON_PID" 2>/dev/null
else
  wait "$DAEMON_PID"; DAEMON_EXIT=$?
fi
DAEMON_PID=
STATE=$(sim_state)
printf '%s\n' "$STATE" >"$OUT/sim_state.json"
STOP_NOW=$(sed -n 's/^{"now":\([0-9]*\),.*/\1/p' <<<"$STATE")
FAULTS_JSON=$(grep -o '"faults":{[^}]*}' <<<"$STATE")
# every injected event; refused_connections (resets during a refusal period) and rest_418 (the
# exchange's answer to a client that ignored a 429) are not faults we injected
FAULTS=$(sed 's/"faults"://; s/[{}"]//g' <<<"$FAULTS_JSON" | tr ',' '\n' |
  awk -F: '$1 != "refused_connections" && $1 != "rest_418" { s += $2 } END { print s + 0 }')
REST_418=$(sed -n 's/.*"rest_418":\([0-9]*\).*/\1/p' <<<"$FAULTS_JSON")
echo "soak: simulator $FAULTS_JSON"
CMP=$("$COMPARE" --port "$PORT" --db "$OUT/soak.db" --symbols "$SYMS" --intervals "$INTERVALS" \
  --from "$BACKFILL" --to $(( STOP_NOW - 120000 )) --verbose 50 2>"$OUT/compare.txt")
CMP_RC=$?
echo "soak: final comparison from $BACKFILL to $(( STOP_NOW - 120000 )): ${CMP:-error}" \
  "(first bad candles in $OUT/compare.txt)"
stop_pid "$SIM_PID"; SIM_PID=

field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<" $CMP"; }
CHECKED=$(field checked); MISSING=$(field missing); EXTRA=$(field extra); DIFFERING=$(field differing)
echo "soak: files in $OUT"
echo "soak: minutes=$MINUTES streams=$STREAMS kills=$KILLS_DONE restarts=$RESTARTS" \
  "faults=${FAULTS:-?} rest_418=${REST_418:-?} checked=${CHECKED:-?} missing=${MISSING:-?}" \
  "extra=${EXTRA:-?} differing=${DIFFERING:-?} daemon_exit=$DAEMON_EXIT died=$DIED"
[ "$CMP_RC" -eq 0 ] && [ "${REST_418:-1}" -eq 0 ] && [ "$DAEMON_EXIT" = 0 ] && [ "$CRASHED" -eq 0 ]
