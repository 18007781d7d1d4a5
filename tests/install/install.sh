#!/usr/bin/env bash
# cmake --install, then build against the installed copy from outside the tree (ctest
# test_install, label install):
#   1. install the build to a temporary prefix; check the files, the soname links, the
#      settings file's mode, the paths written into klinefeed.pc and klinefeed.service,
#      `klinefeed --version`, the man pages, and systemd-analyze verify when there is one;
#   2. build examples/minimal.c with pkg-config: shared (klinefeed), static (klinefeed-static,
#      and klinefeed --static with the archive picked by name), and with CMake
#      (find_package(klinefeed CONFIG): klinefeed::klinefeed, klinefeed::klinefeed_static);
#      compile the README's library snippet as pasted;
#   3. run each program against the installed klinefeed-sim until it prints 2 closed candles;
#   4. DESTDIR: an install staged under DESTDIR names the final prefix, writes nothing there;
#      a second install keeps an edited settings file.
# usage: install.sh BUILD_DIR SOURCE_DIR CC VERSION SOVERSION
set -eu  # (no pipefail: `readelf | grep -q` must not fail when grep stops reading early)
build=$(cd "$1" && pwd) src=$(cd "$2" && pwd) cc=$3 version=$4 soversion=$5

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kf-install.XXXXXX")
sim_pid=
cleanup() {
  [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
step() { echo "== $*"; }

prefix=$tmp/prefix
step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log"; fail "cmake --install"; }

export PKG_CONFIG_PATH=
for d in "$prefix"/lib*/pkgconfig "$prefix"/lib/*/pkgconfig; do
  [ -f "$d/klinefeed.pc" ] && PKG_CONFIG_PATH=$d
done
[ -n "$PKG_CONFIG_PATH" ] || fail "no klinefeed.pc under $prefix"
[ "$(pkg-config --modversion klinefeed)" = "$version" ] || fail "pkg-config --modversion klinefeed"
libdir=$(pkg-config --variable=libdir klinefeed)
includedir=$(pkg-config --variable=includedir klinefeed)
[ "$(pkg-config --variable=prefix klinefeed)" = "$prefix" ] || fail "klinefeed.pc: prefix"
case $libdir in "$prefix"/*) ;; *) fail "klinefeed.pc: libdir $libdir not under $prefix" ;; esac

step "installed files"
for f in "$includedir/klinefeed.h" "$libdir/libklinefeed.a" "$libdir/libklinefeed.so.$version" \
  "$libdir/pkgconfig/klinefeed-static.pc" "$libdir/cmake/klinefeed/klinefeedConfig.cmake" \
  "$libdir/cmake/klinefeed/klinefeedConfigVersion.cmake" \
  "$prefix/bin/klinefeed" "$prefix/bin/klinefeed-sim" \
  "$prefix/share/man/man1/klinefeed.1" "$prefix/share/man/man1/klinefeed-sim.1" \
  "$prefix/share/man/man3/libklinefeed.3" "$prefix/lib/systemd/system/klinefeed.service" \
  "$prefix/etc/default/klinefeed"; do
  [ -f "$f" ] || fail "not installed: $f"
done
[ "$(readlink "$libdir/libklinefeed.so.$soversion")" = "libklinefeed.so.$version" ] ||
  fail "libklinefeed.so.$soversion is not a link to libklinefeed.so.$version"
[ "$(readlink "$libdir/libklinefeed.so")" = "libklinefeed.so.$soversion" ] ||
  fail "libklinefeed.so is not a link to libklinefeed.so.$soversion"
readelf -d "$libdir/libklinefeed.so.$version" | grep -q "SONAME.*\[libklinefeed.so.$soversion\]" ||
  fail "soname of the installed library"
[ "$(stat -c %a "$prefix/etc/default/klinefeed")" = 600 ] || fail "etc/default/klinefeed is not 0600"
out=$("$prefix/bin/klinefeed" --version)
[ "$out" = "klinefeed $version" ] || fail "klinefeed --version says '$out'"
readelf -d "$prefix/bin/klinefeed" | grep -q 'NEEDED.*libklinefeed' &&
  fail "the installed klinefeed needs libklinefeed.so (it is linked statically)"

unit=$prefix/lib/systemd/system/klinefeed.service
grep -qE '@[A-Za-z_]+@' "$unit" && fail "klinefeed.service: an unsubstituted @VAR@"
grep -qx "ExecStart=$prefix/bin/klinefeed run --retry-start .*" "$unit" || fail "klinefeed.service: ExecStart"
grep -qx "EnvironmentFile=-$prefix/etc/default/klinefeed" "$unit" || fail "klinefeed.service: EnvironmentFile"
if command -v systemd-analyze >/dev/null; then
  # Documentation=man:klinefeed(1) is looked up with man: point it at the installed pages
  MANPATH=$prefix/share/man: systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
  echo "systemd-analyze verify: ok"
else
  echo "systemd-analyze not installed: unit not verified"
fi
bash "$src/tests/install/man.sh" "$prefix"/share/man/man*/* || fail "man pages"

step "build examples/minimal.c against the installed copy (pkg-config)"
cflags="-std=c17 -Wall -Wextra -Werror -O1"
ex=$src/examples/minimal.c
# shellcheck disable=SC2046
"$cc" $cflags -o "$tmp/minimal_shared" "$ex" $(pkg-config --cflags --libs klinefeed) ||
  fail "shared build: pkg-config --cflags --libs klinefeed"
readelf -d "$tmp/minimal_shared" | grep -q "NEEDED.*\[libklinefeed.so.$soversion\]" ||
  fail "minimal_shared does not need libklinefeed.so.$soversion"
LD_LIBRARY_PATH=$libdir ldd "$tmp/minimal_shared" | grep -q "=> $libdir/libklinefeed.so.$soversion" ||
  fail "minimal_shared does not load the installed library"
# shellcheck disable=SC2046
"$cc" $cflags -o "$tmp/minimal_static" "$ex" $(pkg-config --cflags --libs klinefeed-static) ||
  fail "static build: pkg-config --cflags --libs klinefeed-static"
# klinefeed.pc alone, for a static link: its private fields name every dependency
libs=$(pkg-config --static --libs klinefeed)
"$cc" $cflags -o "$tmp/minimal_static2" "$ex" $(pkg-config --cflags klinefeed) \
  ${libs/-lklinefeed/-l:libklinefeed.a} || fail "static build: pkg-config --static --libs klinefeed ($libs)"
for p in minimal_static minimal_static2; do
  readelf -d "$tmp/$p" | grep -q 'NEEDED.*libklinefeed' && fail "$p needs libklinefeed.so"
done

# the README's library example compiles as pasted (the first C block after "## The library")
awk '/^## The library/ {lib = 1} lib && /^```c$/ {code = 1; next} code && /^```$/ {exit} code' \
  "$src/README.md" >"$tmp/readme.c"
[ -s "$tmp/readme.c" ] || fail "no C block in the README's library section"
# shellcheck disable=SC2046
"$cc" -std=gnu17 -Wall -Wextra -Werror -o "$tmp/readme" "$tmp/readme.c" \
  $(pkg-config --cflags --libs klinefeed) || fail "the README's library snippet does not compile"
echo "README snippet: compiles"

step "build with CMake: find_package(klinefeed CONFIG)"
cmake -S "$src/tests/install/consumer" -B "$tmp/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
  -DCMAKE_C_COMPILER="$cc" -DKF_EXAMPLE="$ex" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" >"$tmp/consumer.log" 2>&1 ||
  { cat "$tmp/consumer.log"; fail "CMake consumer: configure"; }
cmake --build "$tmp/consumer" >>"$tmp/consumer.log" 2>&1 ||
  { cat "$tmp/consumer.log"; fail "CMake consumer: build"; }
grep -E "klinefeed $version from $libdir/cmake/klinefeed" "$tmp/consumer.log" >/dev/null ||
  { cat "$tmp/consumer.log"; fail "CMake consumer: found another klinefeed"; }
readelf -d "$tmp/consumer/minimal_cmake_shared" | grep -q "NEEDED.*\[libklinefeed.so.$soversion\]" ||
  fail "minimal_cmake_shared does not need libklinefeed.so.$soversion"
readelf -d "$tmp/consumer/minimal_cmake_static" | grep -q 'NEEDED.*libklinefeed' &&
  fail "minimal_cmake_static needs libklinefeed.so"

step "run them against the installed klinefeed-sim"
"$prefix/bin/klinefeed-sim" --speed 60 >"$tmp/sim.out" 2>"$tmp/sim.err" &
sim_pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's/^port=\([0-9]*\)$/\1/p' "$tmp/sim.out")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$tmp/sim.err"; fail "klinefeed-sim printed no port"; }
# all at once (each stops after 2 closed candles: about 2 s at --speed 60)
progs=("$tmp/minimal_shared" "$tmp/minimal_static" "$tmp/minimal_static2"
  "$tmp/consumer/minimal_cmake_shared" "$tmp/consumer/minimal_cmake_static")
pids=()
for p in "${progs[@]}"; do
  LD_LIBRARY_PATH=$libdir KLINEFEED_WS_URL="ws://127.0.0.1:$port/market" \
    KLINEFEED_REST_URL="http://127.0.0.1:$port" timeout 60 "$p" "" "" 20 2 \
    >"$p.out" 2>"$p.err" &
  pids+=($!)
done
for i in "${!progs[@]}"; do
  p=${progs[$i]}
  rc=0
  wait "${pids[$i]}" || rc=$?
  [ "$rc" = 0 ] || { cat "$p.err"; fail "$(basename "$p") exited $rc"; }
  n=$(grep -cE '^BTCUSDT 1m [0-9]+ close=[0-9.]+ trades=[0-9]+$' "$p.out" || true)
  [ "$n" -ge 2 ] || { cat "$p.out" "$p.err"; fail "$(basename "$p"): $n closed candles printed"; }
  echo "$(basename "$p"): $n closed candles from the simulator"
done

step "DESTDIR"
stage=$tmp/stage
final=/opt/klinefeed-install-test-$$
DESTDIR=$stage cmake --install "$build" --prefix "$final" >"$tmp/destdir.log" ||
  { cat "$tmp/destdir.log"; fail "DESTDIR install"; }
[ -e "$final" ] && fail "a DESTDIR install wrote to $final"
[ -x "$stage$final/bin/klinefeed" ] || fail "DESTDIR: no $stage$final/bin/klinefeed"
grep -qx "ExecStart=$final/bin/klinefeed run --retry-start .*" "$stage$final/lib/systemd/system/klinefeed.service" ||
  fail "DESTDIR: the unit does not name $final/bin/klinefeed"
grep -qx "prefix=$final" "$stage$final"/lib*/pkgconfig/klinefeed.pc || fail "DESTDIR: klinefeed.pc prefix"
grep -Fq "$stage" -r "$stage$final/lib/systemd" "$stage$final"/lib*/pkgconfig "$stage$final"/lib*/cmake &&
  fail "DESTDIR: the staging directory is named in an installed file"
echo "KLINEFEED_SYMBOLS=EDITED" >>"$stage$final/etc/default/klinefeed"
DESTDIR=$stage cmake --install "$build" --prefix "$final" >"$tmp/destdir.log"
grep -qx "KLINEFEED_SYMBOLS=EDITED" "$stage$final/etc/default/klinefeed" ||
  fail "a second install overwrote the edited settings file"
echo "ok: DESTDIR honoured; an edited settings file is kept"
echo "install test: passed"
