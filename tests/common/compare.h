/* compare.h - a SQLite store against the simulator's ground truth (GET /sim/truth), candle by
 * candle. No cmocka: linked into the tests (kftestcommon) and into the standalone
 * klinefeed-compare (tests/tools/compare_main.c), which scripts/soak.sh runs. */
#ifndef KF_TEST_COMPARE_H
#define KF_TEST_COMPARE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Counts over every compared stream. */
typedef struct kft_cmp {
    size_t streams;   /* (symbol, interval) pairs compared */
    size_t checked;   /* truth candles in the window */
    size_t missing;   /* truth candles not in the store */
    size_t extra;     /* stored closed rows in the window that the truth does not have */
    size_t differing; /* candles in both whose stored fields differ from the truth */
} kft_cmp;

/* from_ms: per stream, from the open time of its first stored closed row (a stream with none
 * has an empty window). */
#define KFT_CMP_FROM_STORE INT64_MIN

/*
 * Compares the closed rows (closed=1) of the SQLite store db_path with the simulator's
 * /sim/truth on port, over the candles with open_time >= from_ms and close_time < to_ms, where
 * to_ms is first lowered to the simulator's clock (GET /sim/state "now", read before anything
 * else), so a candle that closes while the comparison runs is never counted; INT64_MAX means
 * "up to the simulator's now".
 *
 * Streams: with both lists given (NULL-terminated), every symbol x interval, whether the store
 * has rows of it or not; otherwise every (symbol, interval) present in the store, restricted to
 * the list that is given (a NULL list matches anything).
 *
 * The fields compared are those of store_text.h, decimals as text, exactly:
 * open_time|close_time|open|high|low|close|volume|quote_volume|trades|taker_buy_base|
 * taker_buy_quote. Rows are matched by open_time (both sides ordered by it).
 *
 * *out is zeroed, then per stream: checked += truth candles in the window; missing += those the
 * store lacks; differing += those stored with other fields; extra += stored rows the truth does
 * not have. verbose (may be NULL) gets one line per bad candle ("missing SYM IV open_time=T
 * truth=ROW", "differing ... store=ROW truth=ROW", "extra ... store=ROW"), at most max_lines in
 * all.
 *
 * db_path "postgres:CONNINFO" compares a postgres store: its closed rows with their decimals
 * as NUMERIC::text (exactly the text the exchange sent), read in one snapshot after the
 * simulator's clock.
 *
 * The store is opened read-only with a busy timeout (a daemon may be writing). Connections
 * the simulator resets (its refusal fault) are retried for a few seconds.
 * Returns 0, or -1 when the store or the simulator could not be read (a message in err; *out
 * then holds what was counted before).
 */
int kft_compare_store(int port, const char *db_path, const char *const *symbols,
                      const char *const *intervals, int64_t from_ms, int64_t to_ms, FILE *verbose,
                      size_t max_lines, kft_cmp *out, char *err, size_t errlen);

/* The simulator on port speaks TLS (klinefeed-sim --tls-cert/--tls-key): every GET of these
 * helpers to that port (kft_http_get_all, kft_compare_store, kft_http_get, kft_sim_state_get)
 * goes over TLS to "localhost", verifying the simulator's certificate with the CA file ca_file
 * (its chain and its name, localhost; not its dates, so that a test can read the state of a
 * simulator serving an expired certificate). ca_file NULL: plain again. At most 8 ports. */
void kft_http_set_tls(int port, const char *ca_file);
/* The CA file kft_http_set_tls gave for port, NULL for a plain port. */
const char *kft_http_tls_ca(int port);

/* GET http://127.0.0.1:port<path> into a growing buffer: *body (malloc'd, NUL-terminated, the
 * caller frees it; NULL on failure) and *len. Returns the HTTP status, or -1 (message in err)
 * when no complete response arrived (connection failures retried for a few seconds). */
int kft_http_get_all(int port, const char *path, char **body, size_t *len, char *err,
                     size_t errlen);

#endif
