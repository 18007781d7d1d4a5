#!/bin/sh
# ctest test_gateway: installs the pinned client (package-lock.json) with npm into the build
# tree once (again when the lockfile changes) and runs test_gateway.mjs. Skipped (77) only
# when node is absent. Usage: run.sh SOURCE_DIR BUILD_DIR KLINEFEED KLINEFEED_SIM
set -eu
src=$1 build=$2
command -v node >/dev/null 2>&1 || { echo "test_gateway: node absent: skipped"; exit 77; }
dir=$build/gateway-npm
mkdir -p "$dir"
if ! cmp -s "$src/tests/gateway/package-lock.json" "$dir/package-lock.json" ||
   [ ! -d "$dir/node_modules/ccxt" ]; then
  cp "$src/tests/gateway/package.json" "$src/tests/gateway/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
NODE_PATH=$dir/node_modules exec node "$src/tests/gateway/test_gateway.mjs" "$3" "$4" "$dir"
