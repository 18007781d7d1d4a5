#!/usr/bin/env bash
# The README's test command: sets up, builds and runs the whole suite three ways:
# a normal build, an AddressSanitizer + UBSan build, and the integration tests under valgrind;
# and builds and checks the Debian package (scripts/deb.sh).
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
grep -hE '^(fault suite|rotation|crash test|crash at scale|store down|simulated hour|restart|reconnect|allocations|# history|# interrupted|# tight budget|# tls|sqlite writer|locked for)' \
  build/Testing/Temporary/LastTest.log || true

echo "== Debian package (build-deb/, checked with dpkg-deb and dpkg --root)"
bash scripts/deb.sh

echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKF_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$JOBS"
echo "== tests under ASan + UBSan"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j "$JOBS" -LE valgrind)

echo "== integration tests under valgrind"
(cd build && ctest --output-on-failure -j "$JOBS" -L valgrind)
