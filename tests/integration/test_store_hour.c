/*
 * A simulated hour end to end: klinefeed-sim at 600x, the collector with a SQLite store, then
 * every stored candle compared with the simulator's REST /fapi/v1/klines for the same range,
 * row for row and byte for byte (decimals as text). Also checks that every stream's rows are
 * contiguous (no candle missing) and that the thin symbol's empty candles are stored too.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "decode/json.h"
#include "kftest.h"
#include "sim_proc.h"

#define START_MS 1767225600000LL /* the simulator's default clock start */

typedef struct row {
    int64_t open_time, close_time, trades;
    char open[32], high[32], low[32], close[32], volume[40], quote_volume[40], tbb[40], tbq[40];
} row;

static size_t db_rows(sqlite3 *db, const char *sym, const char *iv, row *out, size_t cap)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT open_time, close_time, open, high, low, close, "
                                        "volume, quote_volume, trades, taker_buy_base, "
                                        "taker_buy_quote FROM klines WHERE symbol=? AND "
                                        "interval=? AND closed=1 ORDER BY open_time",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, sym, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, iv, -1, SQLITE_STATIC);
    size_t n = 0;
    while (sqlite3_step(st) == SQLITE_ROW && n < cap) {
        row *r = &out[n++];
        memset(r, 0, sizeof *r);
        r->open_time = sqlite3_column_int64(st, 0);
        r->close_time = sqlite3_column_int64(st, 1);
        snprintf(r->open, sizeof r->open, "%s", sqlite3_column_text(st, 2));
        snprintf(r->high, sizeof r->high, "%s", sqlite3_column_text(st, 3));
        snprintf(r->low, sizeof r->low, "%s", sqlite3_column_text(st, 4));
        snprintf(r->close, sizeof r->close, "%s", sqlite3_column_text(st, 5));
        snprintf(r->volume, sizeof r->volume, "%s", sqlite3_column_text(st, 6));
        snprintf(r->quote_volume, sizeof r->quote_volume, "%s", sqlite3_column_text(st, 7));
        r->trades = sqlite3_column_int64(st, 8);
        snprintf(r->tbb, sizeof r->tbb, "%s", sqlite3_column_text(st, 9));
        snprintf(r->tbq, sizeof r->tbq, "%s", sqlite3_column_text(st, 10));
    }
    sqlite3_finalize(st);
    return n;
}

static void str_field(kf__json *j, char *dst, size_t cap)
{
    kf__json_span v;
    assert_true(kf__json_read_string(j, &v));
    assert_true(v.len < cap);
    memcpy(dst, v.p, v.len);
    dst[v.len] = 0;
}

/* GET /fapi/v1/klines rows [from, to] (open times) into out. */
static size_t rest_rows(int port, const char *sym, const char *iv, int64_t from, int64_t to,
                        row *out, size_t cap)
{
    static char body[1 << 21];
    char path[256];
    snprintf(path, sizeof path,
             "/fapi/v1/klines?symbol=%s&interval=%s&startTime=%" PRId64 "&endTime=%" PRId64
             "&limit=1500",
             sym, iv, from, to);
    assert_int_equal(kft_http_get(port, path, body, sizeof body), 200);
    kf__json j;
    kf__json_init(&j, body, strlen(body));
    size_t n = 0;
    assert_true(kf__json_enter_array(&j));
    while (kf__json_next_elem(&j)) {
        assert_true(n < cap);
        row *r = &out[n++];
        memset(r, 0, sizeof *r);
        assert_true(kf__json_enter_array(&j));
        assert_true(kf__json_next_elem(&j) && kf__json_read_i64(&j, &r->open_time));
        assert_true(kf__json_next_elem(&j));
        str_field(&j, r->open, sizeof r->open);
        assert_true(kf__json_next_elem(&j));
        str_field(&j, r->high, sizeof r->high);
        assert_true(kf__json_next_elem(&j));
        str_field(&j, r->low, sizeof r->low);
        assert_true(kf__json_next_elem(&j));
        str_field(&j, r->close, sizeof r->close);
        assert_true(kf__json_next_elem(&j));
        str_field(&j, r->volume, sizeof r->volume);
        assert_true(kf__json_next_elem(&j) && kf__json_read_i64(&j, &r->close_time));
        assert_true(kf__json_next_elem(&j));
        str_field(&j, r->quote_volume, sizeof r->quote_volume);
        assert_true(kf__json_next_elem(&j) && kf__json_read_i64(&j, &r->trades));
        assert_true(kf__json_next_elem(&j));
        str_field(&j, r->tbb, sizeof r->tbb);
        assert_true(kf__json_next_elem(&j));
        str_field(&j, r->tbq, sizeof r->tbq);
        assert_true(kf__json_next_elem(&j) && kf__json_skip_value(&j, NULL));
        assert_false(kf__json_next_elem(&j));
    }
    assert_true(kf__json_finish(&j));
    return n;
}

static bool row_eq(const row *a, const row *b)
{
    return a->open_time == b->open_time && a->close_time == b->close_time &&
           a->trades == b->trades && !strcmp(a->open, b->open) && !strcmp(a->high, b->high) &&
           !strcmp(a->low, b->low) && !strcmp(a->close, b->close) &&
           !strcmp(a->volume, b->volume) && !strcmp(a->quote_volume, b->quote_volume) &&
           !strcmp(a->tbb, b->tbb) && !strcmp(a->tbq, b->tbq);
}

/* The collector has closed BTCUSDT's 1m candle that opens at *arg. */
static kf_collector *collector;
static bool collected_hour_1m(void *arg)
{
    kf_kline k[2];
    size_t n = 2;
    if (kf_recent(collector, "BTCUSDT", "1m", k, &n) != KF_OK || n == 0)
        return false;
    const kf_kline *last = k[n - 1].closed ? &k[n - 1] : n > 1 ? &k[n - 2] : NULL;
    return last && last->closed && last->open_time >= *(int64_t *)arg;
}

/* The collector itself has closed the candle that opens at *arg (1m) and the hour candle. */
static bool collected_hour(void *arg)
{
    kf_kline k[2];
    size_t n = 2;
    if (kf_recent(collector, "BTCUSDT", "1m", k, &n) != KF_OK || n == 0)
        return false;
    const kf_kline *last = k[n - 1].closed ? &k[n - 1] : n > 1 ? &k[n - 2] : NULL;
    if (!last || !last->closed || last->open_time < *(int64_t *)arg)
        return false;
    n = 2;
    return kf_recent(collector, "ETHUSDT", "1h", k, &n) == KF_OK && n > 0 && k[0].closed;
}

static void test_simulated_hour_equals_rest(void **state)
{
    (void)state;
    /* 1 simulated hour in 6 s; slower under valgrind, which slows the collector 20-50x */
    const char *args[] = {"--speed", getenv("KF_VALGRIND") ? "120" : "600", NULL};
    kft_sim *sim = kft_sim_start(args);
    assert_non_null(sim);
    int sim_port = kft_sim_port(sim);
    char *dir = kft_tmpdir();
    char spec[512], path[512];
    snprintf(path, sizeof path, "%s/hour.db", dir);
    snprintf(spec, sizeof spec, "sqlite:%s", path);
    const char *symbols[] = {"BTCUSDT", "ETHUSDT", "AVAXUSDT"};
    const char *intervals[] = {"1m", "5m", "15m", "1h"};
    kf_config *cfg = kft_sim_config(sim_port, "BTCUSDT,ETHUSDT,AVAXUSDT", "1m,5m,15m,1h", NULL);
    kf_config_set_log(cfg, NULL, NULL, KF_LOG_WARN);
    assert_int_equal(kf_config_add_sink(cfg, spec), KF_OK);
    kf_collector *c = kf_create(cfg, NULL, 0);
    collector = c;
    assert_int_equal(kf_start(c), KF_OK);
    /* an hour from the first candle the collector closed, however late it subscribed */
    int64_t until = START_MS;
    assert_true(kft_wait(collected_hour_1m, &until, 60000));
    kf_kline early[4];
    size_t nearly = 4;
    assert_int_equal(kf_recent(c, "BTCUSDT", "1m", early, &nearly), KF_OK);
    assert_true(nearly >= 1 && early[0].closed);
    until = early[0].open_time + 3600000;
    assert_true(kft_wait(collected_hour, &until, 120000));
    assert_int_equal(kf_stop(c), KF_OK);
    kf_stats s;
    kf_stats_get(c, &s);
    assert_int_equal(s.parse_errors, 0);
    assert_int_equal(s.sink_errors, 0);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    static row got[2000], want[2000];
    size_t total = 0, empty = 0;
    for (int si = 0; si < 3; si++)
        for (int ii = 0; ii < 4; ii++) {
            size_t n = db_rows(db, symbols[si], intervals[ii], got, 2000);
            assert_true(n >= 1);
            size_t m = rest_rows(sim_port, symbols[si], intervals[ii], got[0].open_time,
                                 got[n - 1].open_time, want, 2000);
            if (n != m)
                fprintf(stderr, "%s %s: %zu stored, %zu from REST\n", symbols[si], intervals[ii], n,
                        m);
            assert_int_equal(n, m); /* contiguous: nothing missing, nothing extra */
            for (size_t i = 0; i < n; i++) {
                if (!row_eq(&got[i], &want[i]))
                    fprintf(stderr, "%s %s row %zu differs: open_time %" PRId64 " close %s/%s\n",
                            symbols[si], intervals[ii], i, got[i].open_time, got[i].close,
                            want[i].close);
                assert_true(row_eq(&got[i], &want[i]));
                empty += got[i].trades == 0;
            }
            total += n;
        }
    size_t minutes = db_rows(db, "BTCUSDT", "1m", got, 2000);
    sqlite3_close(db);
    printf("simulated hour: streams=12 rows_compared=%zu empty_candles=%zu btc_1m_rows=%zu "
           "mismatches=0 missing=0\n",
           total, empty, minutes);
    assert_true(minutes >= 60);
    kf_free(c);
    kf_config_free(cfg);
    kft_sim_stop(sim);
    free(dir);
}

static bool rest_idle(void *c)
{
    kf_stats s;
    kf_stats_get(c, &s);
    return s.rest_pending == 0 && s.backfilled > 0;
}

/*
 * Restart: a collector stores 10 simulated minutes, stops, the exchange runs on for 20 more,
 * a new collector on the same store resumes: the candles of the downtime come from REST, so
 * the store is contiguous from the first candle to the last and equals the exchange's rows.
 */
static void test_restart_resumes_from_store(void **state)
{
    (void)state;
    kft_sim *sim = kft_sim_start((const char *[]){"--speed", "120", NULL});
    assert_non_null(sim);
    int port = kft_sim_port(sim);
    char *dir = kft_tmpdir();
    char spec[512], path[512];
    snprintf(path, sizeof path, "%s/restart.db", dir);
    snprintf(spec, sizeof spec, "sqlite:%s", path);
    kf_config *cfg = kft_sim_config(port, "BTCUSDT,AVAXUSDT", "1m,3m", NULL);
    kf_config_set_log(cfg, NULL, NULL, KF_LOG_WARN);
    kf_config_add_sink(cfg, spec);
    kf_collector *c = kf_create(cfg, NULL, 0);
    collector = c;
    assert_int_equal(kf_start(c), KF_OK);
    int64_t until = START_MS + 10 * 60000;
    assert_true(kft_wait(collected_hour_1m, &until, 60000));
    kf_free(c);
    usleep(10000000); /* 20 simulated minutes without a collector */
    c = kf_create(cfg, NULL, 0);
    collector = c;
    assert_int_equal(kf_start(c), KF_OK);
    assert_true(kft_wait(rest_idle, c, 60000));
    until = START_MS + 35 * 60000;
    assert_true(kft_wait(collected_hour_1m, &until, 60000));
    kf_stats s;
    kf_stats_get(c, &s);
    kf_stop(c);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    static row got[2000], want[2000];
    const char *syms[] = {"BTCUSDT", "AVAXUSDT"}, *ivs[] = {"1m", "3m"};
    size_t total = 0;
    for (int si = 0; si < 2; si++)
        for (int ii = 0; ii < 2; ii++) {
            size_t n = db_rows(db, syms[si], ivs[ii], got, 2000);
            size_t m = rest_rows(port, syms[si], ivs[ii], got[0].open_time, got[n - 1].open_time,
                                 want, 2000);
            assert_int_equal(n, m);
            for (size_t i = 0; i < n; i++)
                assert_true(row_eq(&got[i], &want[i]));
            total += n;
        }
    sqlite3_close(db);
    printf("restart: rows_compared=%zu backfilled=%llu rest_requests=%llu rest_weight=%llu "
           "missing=0\n",
           total, (unsigned long long)s.backfilled, (unsigned long long)s.rest_requests,
           (unsigned long long)s.rest_weight);
    assert_true(s.backfilled >= 2 * 18); /* >= 18 minutes of 1m candles per symbol */
    kf_free(c);
    kf_config_free(cfg);
    kft_sim_stop(sim);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_simulated_hour_equals_rest),
                                       cmocka_unit_test(test_restart_resumes_from_store)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
