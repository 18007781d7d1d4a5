#!/usr/bin/env bash
# What libklinefeed exports (ctest test_symbols, label install):
#   - libklinefeed.so exports only public names: every dynamic symbol it defines starts with
#     kf_ (and not kf__, the private prefix), and they are exactly the functions declared in
#     include/klinefeed.h: nothing internal leaks, nothing declared is missing;
#   - its soname is the expected one (libklinefeed.so.SOVERSION, from project(VERSION));
#   - libklinefeed.a is complete (defines every declared function) and defines no global
#     symbol outside the kf_ namespace (a static archive cannot hide its internals, but they
#     must not collide with a program's names).
# usage: symbols.sh LIBKLINEFEED.so LIBKLINEFEED.a INCLUDE/klinefeed.h CC SOVERSION
set -euo pipefail
so=$1 ar=$2 header=$3 cc=$4 soversion=$5
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# functions declared by the header (comments and macros gone: the preprocessor reads it)
"$cc" -E -P -x c "$header" | grep -oE '\bkf_[a-z0-9_]+[[:space:]]*\(' | tr -d '( \t' | sort -u \
  >"$tmp/declared"
[ -s "$tmp/declared" ] || { echo "no function found in $header"; exit 1; }

nm -D --defined-only "$so" | awk 'NF >= 3 {print $3}' | sed 's/@.*//' | sort -u >"$tmp/exported"
bad=$(grep -vE '^kf_[a-z0-9]' "$tmp/exported" || true)
if [ -n "$bad" ]; then
  echo "FAIL: $so exports symbols outside the public kf_ API:"
  echo "$bad" | sed 's/^/  /'
  fail=1
fi
extra=$(comm -23 "$tmp/exported" "$tmp/declared")
if [ -n "$extra" ]; then
  echo "FAIL: $so exports kf_ symbols that include/klinefeed.h does not declare:"
  echo "$extra" | sed 's/^/  /'
  fail=1
fi
missing=$(comm -13 "$tmp/exported" "$tmp/declared")
if [ -n "$missing" ]; then
  echo "FAIL: include/klinefeed.h declares functions $so does not export:"
  echo "$missing" | sed 's/^/  /'
  fail=1
fi

soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
if [ "$soname" != "libklinefeed.so.$soversion" ]; then
  echo "FAIL: soname of $so is '$soname', expected libklinefeed.so.$soversion"
  fail=1
fi

nm -g --defined-only "$ar" 2>/dev/null | awk 'NF >= 3 {print $3}' | sort -u >"$tmp/archive"
# (an AddressSanitizer build adds an ODR indicator, __odr_asan.<name>, for each global variable)
bad=$(grep -vE '^(__odr_asan\.)?kf_' "$tmp/archive" || true)
if [ -n "$bad" ]; then
  echo "FAIL: $ar defines global symbols outside the kf_ namespace:"
  echo "$bad" | sed 's/^/  /'
  fail=1
fi
missing=$(comm -13 "$tmp/archive" "$tmp/declared")
if [ -n "$missing" ]; then
  echo "FAIL: $ar lacks functions the header declares:"
  echo "$missing" | sed 's/^/  /'
  fail=1
fi

[ "$fail" = 0 ] || exit 1
echo "symbols: $so ($soname) exports exactly the $(wc -l <"$tmp/declared") functions of" \
  "$(basename "$header"), all kf_; $(basename "$ar"): $(wc -l <"$tmp/archive") global" \
  "symbols, all kf_ (private kf__ included)"
