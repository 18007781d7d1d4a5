#!/usr/bin/env bash
# bench/pg.sh - rows/s into a local PostgreSQL server by the postgres store, batch sizes compared.
# Starts a throw-away server (initdb + pg_ctl in a temporary directory, 127.0.0.1, a free port;
# as the user postgres through runuser when run as root), runs klinefeed-bench-pg against it and
# stops it on exit (also on Ctrl-C). The server runs with its default durability settings
# (fsync on, synchronous_commit on): every batch is a committed, flushed transaction.
#
# usage: bench/pg.sh [--rows N] [--batches 64,256,1024,4096] [--runs R]
# Environment: BUILD_DIR (default <repo>/build), KF_PG_BIN (the server's bin directory).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
BIN=${KF_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}
[ -x "$BIN/pg_ctl" ] || { echo "pg.sh: no PostgreSQL server (apt-get install postgresql)" >&2; exit 1; }
[ -x "$BUILD_DIR/klinefeed-bench-pg" ] || cmake --build "$BUILD_DIR" --target klinefeed-bench-pg

DIR=$(mktemp -d /tmp/kf-bench-pg-XXXXXX)
chmod 755 "$DIR"
AS=()
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$DIR"; AS=(runuser -u postgres --); fi
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() {
    "${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT INT TERM
"${AS[@]}" "$BIN/initdb" -D "$DIR/data" -U klinefeed -A trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log"
"${AS[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
    -o "-k $DIR -p $PORT -c listen_addresses=127.0.0.1" start >/dev/null
echo "server: $("$BIN/postgres" --version), port $PORT, fsync on, $(nproc) cores"
"$BUILD_DIR/klinefeed-bench-pg" "host=127.0.0.1 port=$PORT user=klinefeed dbname=postgres" "$@"
