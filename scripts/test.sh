#!/usr/bin/env bash
# Sets up, builds and runs the whole suite twice: a normal build and an
# AddressSanitizer + UBSan build. Exits non-zero on any failure.
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
(cd build && ctest --output-on-failure -j "$JOBS")

echo "== build (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKF_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$JOBS"
echo "== tests under ASan + UBSan"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --output-on-failure -j "$JOBS")

echo "== integration tests under valgrind"
(cd build && KF_VALGRIND=1 ctest --output-on-failure -L valgrind)
