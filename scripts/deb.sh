#!/usr/bin/env bash
# Builds the Debian package of the whole (klinefeed_VERSION-1_ARCH.deb: the daemon and its
# systemd unit, klinefeed-sim, libklinefeed.so/.a, header, pkg-config and CMake files, man
# pages) and checks it:
#   - a build configured for /usr (build-deb/, tests off), then cpack -G DEB (dpkg-shlibdeps
#     computes Depends);
#   - dpkg-deb: the control fields (Depends names libuv1, libssl3, libcurl4, libsqlite3-0,
#     libpq5, libnats3.4, libmicrohttpd12: the daemon's --http) and
#     the file list (paths, modes, the soname links, the conffile);
#   - as root: dpkg --root into an empty directory (maintainer scripts run without chroot),
#     the installed `klinefeed --version` and a program linked against the installed
#     libklinefeed.so run, then dpkg --purge leaves nothing behind. The real system is not
#     touched.
# usage: scripts/deb.sh [OUT_DIR]   (default build-deb/); prints the .deb's path last.
set -eu
cd "$(dirname "$0")/.."
src=$PWD
out=${1:-$src/build-deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

echo "== configure and build for /usr in $out"
cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
  -DKF_BUILD_TESTS=OFF >/dev/null
cmake --build "$out" -j "$(nproc)" >/dev/null

echo "== cpack -G DEB"
(cd "$out" && cpack -G DEB >cpack.log 2>&1) || { cat "$out/cpack.log"; exit 1; }
deb=$(ls -t "$out"/klinefeed_*.deb | head -1)
echo "$deb: $(du -k "$deb" | cut -f1) KiB"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}
version=$(dpkg-deb -f "$deb" Version)
depends=$(dpkg-deb -f "$deb" Depends)
echo "Package: $(dpkg-deb -f "$deb" Package) $version $(dpkg-deb -f "$deb" Architecture)"
echo "Depends: $depends"
for d in libuv1 libssl3 libcurl4 libsqlite3-0 libpq5 libnats3.4 libmicrohttpd12 libc6; do
  echo "$depends" | grep -Eq "(^|, )$d( |,|$)" || fail "Depends lacks $d"
done
dpkg-deb -c "$deb" >"$out/deb-contents.txt"
dpkg-deb -I "$deb" >"$out/deb-info.txt"
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
soversion=$(dpkg-deb -c "$deb" | sed -n 's/.*libklinefeed\.so\.\([0-9.]*\) -> .*/\1/p' | head -1)
for f in "-rwxr-xr-x root/root .* ./usr/bin/klinefeed$" \
  "-rwxr-xr-x root/root .* ./usr/bin/klinefeed-sim$" \
  "-rw-r--r-- root/root .* ./usr/lib/$ma/libklinefeed.so.${version%-*}$" \
  "./usr/lib/$ma/libklinefeed.so.$soversion -> libklinefeed.so.${version%-*}$" \
  "./usr/lib/$ma/libklinefeed.so -> libklinefeed.so.$soversion$" \
  "-rw-r--r-- root/root .* ./usr/lib/$ma/libklinefeed.a$" \
  "./usr/include/klinefeed.h$" "./usr/lib/$ma/pkgconfig/klinefeed.pc$" \
  "./usr/lib/$ma/cmake/klinefeed/klinefeedConfig.cmake$" \
  "./usr/share/man/man1/klinefeed.1$" "./usr/share/man/man1/klinefeed-sim.1$" \
  "./usr/share/man/man3/libklinefeed.3$" \
  "-rw-r--r-- root/root .* ./usr/lib/systemd/system/klinefeed.service$" \
  "-rw------- root/root .* ./etc/default/klinefeed$"; do
  grep -Eq -- "$f" "$out/deb-contents.txt" || fail "not in the .deb: $f"
done
grep -q '/etc/default/klinefeed' <(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles) ||
  fail "/etc/default/klinefeed is not a conffile"
echo "contents: ok ($(wc -l <"$out/deb-contents.txt") entries; /etc/default/klinefeed 0600 conffile)"

if [ "$(id -u)" = 0 ]; then
  root=$(mktemp -d "${TMPDIR:-/tmp}/kf-deb-root.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/var/lib/dpkg/updates" "$root/var/lib/dpkg/info"
  touch "$root/var/lib/dpkg/status"
  echo "== dpkg --root $root -i (dependencies are the host's, checked above)"
  dpkg --root="$root" --force-script-chrootless --force-depends --log=/dev/null \
    -i "$deb" >"$out/dpkg.log" 2>&1 || { cat "$out/dpkg.log"; fail "dpkg -i"; }
  dpkg --root="$root" -s klinefeed | grep -q '^Status: install ok installed' ||
    fail "not installed"
  v=$("$root/usr/bin/klinefeed" --version)
  echo "installed: $v"
  [ "$v" = "klinefeed ${version%-*}" ] || fail "klinefeed --version says '$v'"
  "$root/usr/bin/klinefeed-sim" --help >/dev/null || fail "klinefeed-sim --help"
  cat >"$root/v.c" <<'C'
#include <klinefeed.h>
#include <stdio.h>
int main(void) { puts(kf_version()); return 0; }
C
  cc -o "$root/v" "$root/v.c" -I"$root/usr/include" -L"$root/usr/lib/$ma" -lklinefeed
  v=$(LD_LIBRARY_PATH=$root/usr/lib/$ma "$root/v")
  [ "$v" = "${version%-*}" ] || fail "kf_version() from the packaged libklinefeed.so says '$v'"
  echo "a program linked with the packaged libklinefeed.so runs: kf_version() = $v"
  rm -f "$root/v" "$root/v.c"
  dpkg --root="$root" --force-script-chrootless --log=/dev/null --purge klinefeed \
    >>"$out/dpkg.log" 2>&1 || { cat "$out/dpkg.log"; fail "dpkg --purge"; }
  left=$(cd "$root" && find . -type f ! -path './var/lib/dpkg/*' | head)
  [ -z "$left" ] || fail "left after dpkg --purge: $left"
  echo "dpkg --purge: nothing left"
else
  echo "(not root: dpkg --root install skipped)"
fi
echo "$deb"
