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

#include "kftest.h"
#include "sim_proc.h"
#include "store_text.h"

#define START_MS 1767225600000LL /* the simulator's default clock start */

/* Field k (0-based) of the row line at line ("a|b|...\n"), into out. */
static void line_field(const char *line, int k, char *out, size_t cap)
{
    for (; k > 0; k--)
        line += strcspn(line, "|\n") + 1;
    snprintf(out, cap, "%.*s", (int)strcspn(line, "|\n"), line);
}

/* got and want hold as many rows: asserts them equal row for row (naming the first that differs);
 * returns how many are empty candles (0 trades). */
static size_t assert_rows_equal(const char *sym, const char *iv, const kft_text *got,
                                const kft_text *want)
{
    size_t empty = 0;
    const char *g = got->p, *w = want->p;
    for (size_t i = 0; i < got->rows; i++) {
        size_t gl = strcspn(g, "\n"), wl = strcspn(w, "\n");
        bool eq = gl == wl && memcmp(g, w, gl) == 0;
        if (!eq) {
            char gc[64], wc[64];
            line_field(g, 5, gc, sizeof gc);
            line_field(w, 5, wc, sizeof wc);
            fprintf(stderr, "%s %s row %zu differs: open_time %lld close %s/%s\n", sym, iv, i,
                    atoll(g), gc, wc);
        }
        assert_true(eq);
        char trades[32];
        line_field(g, 8, trades, sizeof trades);
        empty += strcmp(trades, "0") == 0;
        g += gl + 1;
        w += wl + 1;
    }
    return empty;
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
    kf_stats_get(c, &s, sizeof s);
    assert_int_equal(s.parse_errors, 0);
    assert_int_equal(s.sink_errors, 0);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    size_t total = 0, empty = 0;
    for (int si = 0; si < 3; si++)
        for (int ii = 0; ii < 4; ii++) {
            kft_text got = {0}, want = {0};
            int64_t first = 0, last = 0;
            assert_int_equal(kft_store_text(db, symbols[si], intervals[ii], &got, &first, &last),
                             SQLITE_OK);
            size_t n = got.rows;
            assert_true(n >= 1);
            kft_exchange_text(sim_port, "/fapi/v1/klines", symbols[si], intervals[ii], first, last,
                              &want);
            size_t m = want.rows;
            if (n != m)
                fprintf(stderr, "%s %s: %zu stored, %zu from REST\n", symbols[si], intervals[ii], n,
                        m);
            assert_int_equal(n, m); /* contiguous: nothing missing, nothing extra */
            empty += assert_rows_equal(symbols[si], intervals[ii], &got, &want);
            total += n;
            kft_text_free(&got);
            kft_text_free(&want);
        }
    kft_text btc = {0};
    int64_t first = 0, last = 0;
    assert_int_equal(kft_store_text(db, "BTCUSDT", "1m", &btc, &first, &last), SQLITE_OK);
    size_t minutes = btc.rows;
    kft_text_free(&btc);
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
    kf_stats_get(c, &s, sizeof s);
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
    kf_stats_get(c, &s, sizeof s);
    kf_stop(c);
    /* per stream (kf_stream_info): the gaps found and the candles repaired add up to the
     * counters, and every stream had the downtime's candles repaired */
    kf_stats after;
    kf_stats_get(c, &after, sizeof after);
    uint64_t gaps = 0, repaired = 0;
    for (size_t i = 0; i < kf_stream_count(c); i++) {
        kf_stream_info si;
        assert_int_equal(kf_stream_info_get(c, i, &si, sizeof si), KF_OK);
        assert_true(si.repaired >= (strcmp(si.interval, "1m") == 0 ? 18u : 6u));
        printf("stream %s@%s: gaps=%llu repaired=%llu\n", si.symbol, si.interval,
               (unsigned long long)si.gaps, (unsigned long long)si.repaired);
        gaps += si.gaps;
        repaired += si.repaired;
    }
    assert_int_equal(gaps, after.gaps);
    assert_int_equal(repaired, after.backfilled);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    const char *syms[] = {"BTCUSDT", "AVAXUSDT"}, *ivs[] = {"1m", "3m"};
    size_t total = 0;
    for (int si = 0; si < 2; si++)
        for (int ii = 0; ii < 2; ii++) {
            kft_text got = {0}, want = {0};
            int64_t first = 0, last = 0;
            assert_int_equal(kft_store_text(db, syms[si], ivs[ii], &got, &first, &last), SQLITE_OK);
            size_t n = got.rows;
            kft_exchange_text(port, "/fapi/v1/klines", syms[si], ivs[ii], first, last, &want);
            size_t m = want.rows;
            assert_int_equal(n, m);
            assert_rows_equal(syms[si], ivs[ii], &got, &want);
            total += n;
            kft_text_free(&got);
            kft_text_free(&want);
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
