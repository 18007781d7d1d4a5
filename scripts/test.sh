#!/usr/bin/env bash
# The README's test command: sets up, builds and runs the whole suite four ways: a normal
# build, an AddressSanitizer + UBSan build, a ThreadSanitizer build (unit and integration
# tests), and the integration tests under valgrind; and builds and checks the Debian package
# (scripts/deb.sh).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc)

bash scripts/setup.sh

echo "== format check"
bash scripts/format.sh --check

echo "== build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS"
echo "== tests"
(cd build && ctest --output-on-failure -j "$JOBS" -LE valgrind)
# What the tests injected and compared (ctest keeps passing tests' output in its log).
echo "== figures printed by the tests"
grep -hE '^(fault suite|rotation|crash test|crash at scale|store down|simulated hour|restart|reconnect|allocations|# history|# backfill ALL|# interrupted|# tight budget|# tls|sqlite writer|locked for)' \
  build/Testing/Temporary/LastTest.log || true

echo "== Debian package (build-deb/, checked with dpkg-deb and dpkg --root)"
bash scripts/deb.sh

echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKF_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$JOBS"
echo "== tests under ASan + UBSan"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j "$JOBS" -LE valgrind)

echo "== build (ThreadSanitizer)"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKF_TSAN=ON >/dev/null
cmake --build build-tsan -j "$JOBS"
echo "== tests under ThreadSanitizer"
# Every process the tests start writes its reports to build-tsan/tsan-reports (CMakeLists.txt):
# a report from the daemon or the simulator fails the run even when the test passed. Not run
# here (label notsan): the simulator's self-tests and the single-threaded decoder test.
rm -f build-tsan/tsan-reports/*
tsan_rc=0
(cd build-tsan && ctest --output-on-failure -j "$JOBS" -LE 'valgrind|notsan|fuzz') || tsan_rc=$?
if compgen -G "build-tsan/tsan-reports/*" >/dev/null; then
  echo "ThreadSanitizer reports:"
  cat build-tsan/tsan-reports/*
  tsan_rc=1
fi
[ "$tsan_rc" -eq 0 ] || exit "$tsan_rc"

echo "== integration tests under valgrind"
(cd build && ctest --output-on-failure -j "$JOBS" -L valgrind)
