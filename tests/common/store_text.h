/* store_text.h - test helpers: one stream's candles as comparable text, from the SQLite store and
 * from the simulator (REST /fapi/v1/klines or /sim/truth), one row a line:
 * "open_time|close_time|open|high|low|close|volume|quote_volume|trades|taker_buy_base|
 * taker_buy_quote\n" (decimals as stored / as sent). */
#ifndef KF_TEST_STORE_TEXT_H
#define KF_TEST_STORE_TEXT_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

/* A growing text of rows; {0} is empty. After kft_store_text or kft_exchange_text, p is a
 * NUL-terminated string (possibly ""). */
typedef struct kft_text {
    char *p;
    size_t len, cap, rows;
} kft_text;

/* Appends one row (of any length: the text grows) and counts it. */
void kft_text_add(kft_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kft_text_free(kft_text *t);

/* Appends the closed rows of (symbol, interval) in the store, by open time; *first and *last get
 * the first and last open times (untouched when there is none). Returns sqlite3_prepare_v2's
 * code: no row is read unless SQLITE_OK. */
int kft_store_text(sqlite3 *db, const char *symbol, const char *interval, kft_text *out,
                   int64_t *first, int64_t *last);

/* GET <path_prefix>?symbol=..&interval=..&startTime=from&endTime=to (open times, inclusive; for
 * "/fapi/v1/klines" also &limit=1500) from the simulator on port, asserting status 200 and the
 * Binance row shape: arrays of 12 values, integers at 0, 6 and 8, strings elsewhere (prices under
 * 32 bytes, volumes under 40), the whole body one array. Appends the rows to out. */
void kft_exchange_text(int port, const char *path_prefix, const char *symbol, const char *interval,
                       int64_t from, int64_t to, kft_text *out);

#endif
