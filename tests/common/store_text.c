/* store_text.c - candles of the store and of the simulator as comparable text. */
#include "store_text.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decode/json.h"
#include "sim_proc.h"

/* Room for 511 more bytes and a NUL; t->p is then a string even with no row. */
static void text_reserve(kft_text *t)
{
    if (t->cap - t->len < 512) {
        t->cap = t->cap ? t->cap * 2 : 1 << 16;
        t->p = realloc(t->p, t->cap);
        assert_non_null(t->p);
        t->p[t->len] = 0;
    }
}

void kft_text_add(kft_text *t, const char *fmt, ...)
{
    text_reserve(t);
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    /* a row longer than the room (a store holding odd text) grows the buffer and is written
     * again: vsnprintf's result is what it wanted to write, not an offset that fits */
    int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    assert_true(n >= 0);
    if ((size_t)n >= t->cap - t->len) {
        while (t->cap - t->len <= (size_t)n)
            t->cap *= 2;
        t->p = realloc(t->p, t->cap);
        assert_non_null(t->p);
        vsnprintf(t->p + t->len, t->cap - t->len, fmt, again);
    }
    va_end(again);
    va_end(ap);
    t->len += (size_t)n;
    t->rows++;
}

void kft_text_free(kft_text *t)
{
    free(t->p);
    memset(t, 0, sizeof *t);
}

int kft_store_text(sqlite3 *db, const char *symbol, const char *interval, kft_text *out,
                   int64_t *first, int64_t *last)
{
    text_reserve(out);
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT open_time, close_time, open, high, low, close, volume, "
                                "quote_volume, trades, taker_buy_base, taker_buy_quote FROM "
                                "klines WHERE symbol=? AND interval=? AND closed=1 ORDER BY "
                                "open_time",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(st, 1, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, interval, -1, SQLITE_STATIC);
    for (size_t n = 0; sqlite3_step(st) == SQLITE_ROW; n++) {
        int64_t t = sqlite3_column_int64(st, 0);
        if (n == 0)
            *first = t;
        *last = t;
        kft_text_add(
            out, "%" PRId64 "|%lld|%s|%s|%s|%s|%s|%s|%lld|%s|%s\n", t, sqlite3_column_int64(st, 1),
            sqlite3_column_text(st, 2), sqlite3_column_text(st, 3), sqlite3_column_text(st, 4),
            sqlite3_column_text(st, 5), sqlite3_column_text(st, 6), sqlite3_column_text(st, 7),
            sqlite3_column_int64(st, 8), sqlite3_column_text(st, 9), sqlite3_column_text(st, 10));
    }
    sqlite3_finalize(st);
    return SQLITE_OK;
}

/* The next array element, a string shorter than cap, into dst. */
static void str_field(kf__json *j, char *dst, size_t cap)
{
    kf__json_span v;
    assert_true(kf__json_next_elem(j));
    assert_true(kf__json_read_string(j, &v));
    assert_true(v.len < cap);
    memcpy(dst, v.p, v.len);
    dst[v.len] = 0;
}

static int64_t int_field(kf__json *j)
{
    int64_t x = 0;
    assert_true(kf__json_next_elem(j) && kf__json_read_i64(j, &x));
    return x;
}

void kft_exchange_text(int port, const char *path_prefix, const char *symbol, const char *interval,
                       int64_t from, int64_t to, kft_text *out)
{
    text_reserve(out);
    static char body[1 << 22];
    char path[256];
    snprintf(path, sizeof path,
             "%s?symbol=%s&interval=%s&startTime=%" PRId64 "&endTime=%" PRId64 "%s", path_prefix,
             symbol, interval, from, to,
             strcmp(path_prefix, "/fapi/v1/klines") == 0 ? "&limit=1500" : "");
    assert_int_equal(kft_http_get(port, path, body, sizeof body), 200);
    kf__json j;
    kf__json_init(&j, body, strlen(body));
    assert_true(kf__json_enter_array(&j));
    while (kf__json_next_elem(&j)) {
        char o[32], h[32], l[32], c[32], v[40], q[40], tbb[40], tbq[40];
        assert_true(kf__json_enter_array(&j));
        int64_t open_time = int_field(&j);
        str_field(&j, o, sizeof o);
        str_field(&j, h, sizeof h);
        str_field(&j, l, sizeof l);
        str_field(&j, c, sizeof c);
        str_field(&j, v, sizeof v);
        int64_t close_time = int_field(&j);
        str_field(&j, q, sizeof q);
        int64_t trades = int_field(&j);
        str_field(&j, tbb, sizeof tbb);
        str_field(&j, tbq, sizeof tbq);
        assert_true(kf__json_next_elem(&j) && kf__json_skip_value(&j, NULL));
        assert_false(kf__json_next_elem(&j));
        kft_text_add(out, "%" PRId64 "|%" PRId64 "|%s|%s|%s|%s|%s|%s|%" PRId64 "|%s|%s\n",
                     open_time, close_time, o, h, l, c, v, q, trades, tbb, tbq);
    }
    assert_true(kf__json_finish(&j));
}
