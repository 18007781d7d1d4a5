#!/usr/bin/env bash
# The man pages render without a warning (ctest test_man, label install):
#   groff -man -Tutf8 -ww -z PAGE   prints nothing; man --warnings -l PAGE prints no warning
#   (when man-db is installed); lexgrog finds each page's NAME line (whatis/apropos).
# usage: man.sh PAGE...
set -uo pipefail
fail=0
for page in "$@"; do
  before=$fail
  out=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
  if [ -n "$out" ]; then
    echo "FAIL: groff -ww: $page:"
    echo "$out" | sed 's/^/  /'
    fail=1
  fi
  if command -v man >/dev/null; then
    out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
    if [ -n "$out" ]; then
      echo "FAIL: man --warnings -l $page:"
      echo "$out" | sed 's/^/  /'
      fail=1
    fi
  fi
  if command -v lexgrog >/dev/null && ! lexgrog "$page" >/dev/null 2>&1; then
    echo "FAIL: lexgrog cannot parse the NAME section of $page"
    fail=1
  fi
  [ "$fail" = "$before" ] && echo "ok: $page"
done
exit $fail
