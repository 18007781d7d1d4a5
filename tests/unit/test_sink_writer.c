/* The writer: queue, thread, retry, stop; real sqlite and files in a temp dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sink/format.h"
#include "sink/sink.h"
#include "sink_fixture.h"

static char g_dir[256];
static char g_err[512];
static kf__logger g_lg;

static int setup(void **st)
{
    (void)st;
    return kft_dir_create(g_dir, sizeof g_dir, "kf-sink-writer");
}

static int teardown(void **st)
{
    (void)st;
    return kft_dir_remove(g_dir);
}

static const char *spec_in(const char *scheme, const char *name)
{
    static char p[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s:%s/%s", scheme, g_dir, name);
    return p[i];
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Row i of a synthetic stream: 4 symbols round-robin, one candle per minute each. */
static kf_kline row(uint64_t i)
{
    static const char *const syms[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT", "1000PEPEUSDT"};
    kf_kline k;
    memset(&k, 0, sizeof k);
    snprintf(k.symbol, sizeof k.symbol, "%s", syms[i % 4]);
    snprintf(k.interval, sizeof k.interval, "1m");
    k.interval_index = 0;
    k.closed = true;
    k.open_time = 1790000000000 + (int64_t)(i / 4) * 60000;
    k.close_time = k.open_time + 59999;
    k.event_time = k.close_time + 500;
    k.first_trade_id = (int64_t)i * 1000;
    k.last_trade_id = (int64_t)i * 1000 + 999;
    k.trades = 1000;
    k.open = (kf_dec){8308490 + (int64_t)i, 2};
    k.high = (kf_dec){8309170, 2};
    k.low = (kf_dec){8305120, 2};
    k.close = (kf_dec){8309160, 2};
    k.volume = (kf_dec){13551, 3};
    k.quote_volume = (kf_dec){112571473960, 5};
    k.taker_buy_base = (kf_dec){6426, 3};
    k.taker_buy_quote = (kf_dec){53385666860, 5};
    return k;
}

static kf__writer *open_ok(const char *spec, size_t cap)
{
    kf__writer *w = kf__writer_open(spec, cap, &g_lg, g_err, sizeof g_err);
    if (!w)
        fail_msg("open %s: %s", spec, g_err);
    return w;
}

/* Pushes n rows from row(0), returns the seconds from the first push to stop's return. */
static double push_and_stop(kf__writer *w, uint64_t n)
{
    double t0 = now_s();
    for (uint64_t i = 0; i < n; i++) {
        kf_kline k = row(i);
        kf__writer_push(w, &k);
    }
    assert_int_equal(kf__writer_stop(w), KF_OK);
    return now_s() - t0;
}

static void check_sqlite_rows(const char *spec, uint64_t n)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(spec + strlen("sqlite:"), &db), SQLITE_OK);
    char want[32];
    snprintf(want, sizeof want, "%llu", (unsigned long long)n);
    assert_string_equal(kft_db_text(db, "SELECT count(*) FROM klines"), want);
    /* each row exactly once and the right one: open encodes its index */
    snprintf(want, sizeof want, "%llu", (unsigned long long)n);
    assert_string_equal(kft_db_text(db, "SELECT count(DISTINCT open) FROM klines"), want);
    assert_string_equal(
        kft_db_text(db,
                    "SELECT count(*) FROM klines WHERE CAST(replace(open, '.', '') AS INTEGER) "
                    "- 8308490 != ((open_time - 1790000000000) / 60000) * 4 + "
                    "CASE symbol WHEN 'BTCUSDT' THEN 0 WHEN 'ETHUSDT' THEN 1 WHEN 'SOLUSDT' THEN "
                    "2 ELSE 3 END"),
        "0");
    sqlite3_close(db);
}

static void test_sqlite_200k_tiny_queue(void **st)
{
    (void)st;
    const uint64_t n = 200000;
    const char *spec = spec_in("sqlite", "tiny.db");
    kf__writer *w = open_ok(spec, 64);
    assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_OK);
    double secs = push_and_stop(w, n);
    kf__writer_stats s;
    kf__writer_get_stats(w, &s);
    assert_int_equal(s.rows, n);
    assert_int_equal(s.errors, 0);
    assert_true(s.full_waits > 0);
    assert_true(s.batches >= n / 64);
    printf("sqlite writer, queue 64:    %llu rows in %.3f s = %.0f rows/s (%llu batches, %llu "
           "full waits)\n",
           (unsigned long long)n, secs, (double)n / secs, (unsigned long long)s.batches,
           (unsigned long long)s.full_waits);
    kf__writer_free(w);
    check_sqlite_rows(spec, n);
}

static void test_sqlite_throughput_big_queue(void **st)
{
    (void)st;
    const uint64_t n = 200000;
    const char *spec = spec_in("sqlite", "big.db");
    kf__writer *w = open_ok(spec, 65536);
    assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_OK);
    double secs = push_and_stop(w, n);
    kf__writer_stats s;
    kf__writer_get_stats(w, &s);
    assert_int_equal(s.rows, n);
    printf("sqlite writer, queue 65536: %llu rows in %.3f s = %.0f rows/s (%llu batches, %llu "
           "full waits)\n",
           (unsigned long long)n, secs, (double)n / secs, (unsigned long long)s.batches,
           (unsigned long long)s.full_waits);
    kf__writer_free(w);
    check_sqlite_rows(spec, n);
}

static void test_jsonl_200k_in_order(void **st)
{
    (void)st;
    const uint64_t n = 200000;
    const char *spec = spec_in("jsonl", "order.jsonl");
    kf__writer *w = open_ok(spec, 64);
    assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_OK);
    push_and_stop(w, n);
    kf__writer_stats s;
    kf__writer_get_stats(w, &s);
    assert_int_equal(s.rows, n);
    assert_true(s.full_waits > 0);
    kf__writer_free(w);
    FILE *f = fopen(spec + strlen("jsonl:"), "r");
    assert_non_null(f);
    char line[KF_KLINE_JSON_MAX + 2], want[KF_KLINE_JSON_MAX];
    uint64_t i = 0;
    while (fgets(line, sizeof line, f)) {
        assert_true(i < n);
        kf_kline k = row(i);
        size_t len = kf_kline_to_json(&k, want, sizeof want);
        assert_true(len > 0);
        assert_int_equal(strlen(line), len + 1);
        assert_int_equal(line[len], '\n');
        line[len] = 0;
        if (strcmp(line, want) != 0)
            fail_msg("line %llu: %s\nwant %s", (unsigned long long)i, line, want);
        i++;
    }
    fclose(f);
    assert_int_equal(i, n);
}

static void test_sqlite_locked_then_released(void **st)
{
    (void)st;
    const uint64_t n = 500;
    const char *spec = spec_in("sqlite", "locked.db");
    kf__writer *w = open_ok(spec, 1024);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(spec + strlen("sqlite:"), &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_OK);
    for (uint64_t i = 0; i < n; i++) {
        kf_kline k = row(i);
        kf__writer_push(w, &k);
    }
    usleep(1100 * 1000);
    kf__writer_stats s;
    kf__writer_get_stats(w, &s);
    assert_int_equal(s.rows, 0); /* nothing got through the lock */
    assert_true(s.errors > 0);
    assert_int_equal(sqlite3_exec(other, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(kf__writer_stop(w), KF_OK);
    kf__writer_get_stats(w, &s);
    assert_int_equal(s.rows, n);
    assert_true(s.errors > 0);
    printf("locked for 1.1 s: %llu failed attempts, then %llu rows stored in %llu batches\n",
           (unsigned long long)s.errors, (unsigned long long)s.rows, (unsigned long long)s.batches);
    kf__writer_free(w);
    check_sqlite_rows(spec, n);
}

static void test_stop_idempotent_and_unstarted(void **st)
{
    (void)st;
    const char *spec = spec_in("sqlite", "idem.db");
    kf__writer *w = open_ok(spec, 16);
    assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_OK);
    assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_ERR_ALREADY_RUNNING);
    push_and_stop(w, 100);
    assert_int_equal(kf__writer_stop(w), KF_OK);
    assert_int_equal(kf__writer_stop(w), KF_OK);
    kf__writer_stats s;
    kf__writer_get_stats(w, &s);
    assert_int_equal(s.rows, 100);
    /* a push after stop is refused and counted, not queued forever */
    kf_kline k = row(100);
    kf__writer_push(w, &k);
    kf__writer_get_stats(w, &s);
    assert_int_equal(s.rows, 100);
    assert_int_equal(s.errors, 1);
    kf__writer_free(w);
    check_sqlite_rows(spec, 100);

    /* never started: stop drains on the caller's thread */
    w = open_ok(spec_in("jsonl", "unstarted.jsonl"), 16);
    for (uint64_t i = 0; i < 10; i++) {
        kf_kline r = row(i);
        kf__writer_push(w, &r);
    }
    assert_int_equal(kf__writer_stop(w), KF_OK);
    kf__writer_get_stats(w, &s);
    assert_int_equal(s.rows, 10);
    kf__writer_free(w);

    /* free without stop stops; free(NULL) is fine */
    w = open_ok(spec_in("csv", "free.csv"), 16);
    assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_OK);
    kf_kline r = row(0);
    kf__writer_push(w, &r);
    kf__writer_free(w);
    kf__writer_free(NULL);
}

static void test_invalid_row_refused(void **st)
{
    (void)st;
    const char *spec = spec_in("sqlite", "invalid.db");
    kf__writer *w = open_ok(spec, 16);
    assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_OK);
    kf_kline k = row(0);
    k.quote_volume.scale = 19;
    kf__writer_push(w, &k);
    k = row(1);
    memset(k.symbol, 'X', sizeof k.symbol); /* unterminated */
    kf__writer_push(w, &k);
    k = row(2);
    kf__writer_push(w, &k);
    assert_int_equal(kf__writer_stop(w), KF_OK);
    kf__writer_stats s;
    kf__writer_get_stats(w, &s);
    assert_int_equal(s.rows, 1);
    assert_int_equal(s.errors, 2);
    kf__writer_free(w);
}

static void test_open_errors(void **st)
{
    (void)st;
    assert_null(kf__writer_open("mysql:x", 16, &g_lg, g_err, sizeof g_err));
    assert_non_null(strstr(g_err, "mysql:x: unknown sink"));
    assert_null(kf__writer_open("sqlite:", 16, &g_lg, g_err, sizeof g_err));
    assert_non_null(strstr(g_err, "sqlite:: unknown sink"));
    assert_null(kf__writer_open("sqlite:/nonexistent/dir/x.db", 16, &g_lg, g_err, sizeof g_err));
    assert_string_equal(g_err, "sqlite:/nonexistent/dir/x.db: unable to open database file");
    assert_null(kf__writer_open("jsonl:/nonexistent/dir/x.jsonl", 16, NULL, g_err, sizeof g_err));
    assert_string_equal(g_err, "jsonl:/nonexistent/dir/x.jsonl: open: No such file or directory");
    assert_null(kf__writer_open(spec_in("csv", "zero.csv"), 0, NULL, g_err, sizeof g_err));
    assert_non_null(strstr(g_err, "capacity"));
}

/* A sink that never accepts a flush: stop gives up at its 10 s deadline and says so. */
static void test_stop_deadline(void **st)
{
    (void)st;
    kf__writer *w = open_ok("jsonl:/dev/full", 16);
    void *state = NULL;
    assert_ptr_equal(kf__writer_ops(w, &state), &kf__sink_jsonl);
    assert_non_null(state);
    assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_OK);
    for (uint64_t i = 0; i < 10; i++) {
        kf_kline k = row(i);
        kf__writer_push(w, &k);
    }
    double t0 = now_s();
    assert_int_equal(kf__writer_stop(w), KF_ERR_SINK);
    double secs = now_s() - t0;
    assert_true(secs >= 9.0 && secs < 20.0); /* the deadline is 10 s */
    kf__writer_stats s;
    kf__writer_get_stats(w, &s);
    /* each failed flush, and the 10 rows: unflushed in the sink's buffer or still queued
     * (how many of each depends on timing) */
    assert_true(s.rows <= 10);
    assert_true(s.errors >= 5 + 10);
    assert_int_equal(kf__writer_stop(w), KF_ERR_SINK); /* idempotent: same answer */
    kf__writer_free(w);
}

/* A database locked for longer than the deadline: every queued row is counted lost. */
static void test_stop_deadline_locked_db(void **st)
{
    (void)st;
    const char *spec = spec_in("sqlite", "locked-forever.db");
    kf__writer *w = open_ok(spec, 1024);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(spec + strlen("sqlite:"), &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_OK);
    for (uint64_t i = 0; i < 100; i++) {
        kf_kline k = row(i);
        kf__writer_push(w, &k);
    }
    assert_int_equal(kf__writer_stop(w), KF_ERR_SINK);
    kf__writer_stats s;
    kf__writer_get_stats(w, &s);
    assert_int_equal(s.rows, 0);
    assert_true(s.errors >= 100 + 1);
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    kf__writer_free(w);
}

/* The collector's side never waits: with the database locked, offers beyond the queue are
 * refused at once and the sink says it is not healthy; released, the queue drains and it is. */
static void test_offer_never_waits(void **st)
{
    (void)st;
    const char *spec = spec_in("sqlite", "offer.db");
    kf__writer *w = open_ok(spec, 64);
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(spec + strlen("sqlite:"), &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_OK);
    assert_true(kf__writer_healthy(w));
    double t0 = now_s();
    uint64_t taken = 0, refused = 0;
    for (uint64_t i = 0; i < 1000; i++) {
        kf_kline k = row(i);
        if (kf__writer_offer(w, &k))
            taken++;
        else
            refused++;
    }
    double secs = now_s() - t0;
    assert_int_equal(taken, 64);
    assert_int_equal(refused, 1000 - 64);
    assert_int_equal(kf__writer_room(w), 0);
    assert_true(secs < 0.5); /* no wait: the 250 ms busy timeout would show */
    for (int i = 0; i < 100 && kf__writer_healthy(w); i++)
        usleep(10000);
    assert_false(kf__writer_healthy(w));
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    for (int i = 0; i < 500 && !kf__writer_healthy(w); i++)
        usleep(10000);
    assert_true(kf__writer_healthy(w));
    assert_int_equal(kf__writer_stop(w), KF_OK);
    kf__writer_stats ws;
    kf__writer_get_stats(w, &ws);
    assert_int_equal(ws.rows, 64);
    assert_int_equal(ws.full_waits, 0);
    kf__writer_free(w);
}

/* A complete range is recorded only once the rows pushed before it are stored: with the rows
 * stuck behind a lock until the stop deadline, the range is never written; without the lock it
 * is, in the same store as the rows. */
static void test_cover_waits_for_its_rows(void **st)
{
    (void)st;
    kf__cover c = {"BTCUSDT", "1m", 1790000000000, 1790000000000 + 9 * 60000};
    for (int locked = 1; locked >= 0; locked--) {
        const char *spec = spec_in("sqlite", locked ? "cover-locked.db" : "cover-free.db");
        kf__writer *w = open_ok(spec, 64);
        assert_true(kf__writer_covers(w));
        sqlite3 *other = NULL;
        assert_int_equal(sqlite3_open(spec + strlen("sqlite:"), &other), SQLITE_OK);
        sqlite3_busy_timeout(other, 5000);
        if (locked)
            assert_int_equal(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(kf__writer_start(w, g_err, sizeof g_err), KF_OK);
        for (uint64_t i = 0; i < 40; i++) {
            kf_kline k = row(i);
            assert_true(kf__writer_offer(w, &k));
        }
        assert_int_equal(kf__writer_cover(w, &c, 1), KF_OK);
        if (locked) { /* the rows and the range wait; the deadline passes */
            double t0 = now_s();
            assert_int_equal(kf__writer_stop_by(w, (int64_t)(t0 * 1000) + 1500), KF_ERR_SINK);
            assert_true(now_s() - t0 < 3.0);
            sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
            assert_string_equal(kft_db_text(other, "SELECT count(*) FROM coverage"), "0");
            assert_string_equal(kft_db_text(other, "SELECT count(*) FROM klines"), "0");
            kf__writer_stats ws;
            kf__writer_get_stats(w, &ws);
            assert_int_equal(ws.unstored, 40);
            assert_int_equal(ws.covers, 0);
        } else {
            assert_int_equal(kf__writer_stop(w), KF_OK);
            assert_string_equal(kft_db_text(other, "SELECT to_time FROM coverage"),
                                "1790000540000");
            assert_string_equal(kft_db_text(other, "SELECT count(*) FROM klines"), "40");
        }
        sqlite3_close(other);
        kf__writer_free(w);
    }
}

/* Two writers failing at once stop within one shared deadline, not one each. */
static void test_stop_by_shared_deadline(void **st)
{
    (void)st;
    kf__writer *w[2];
    sqlite3 *other[2];
    for (int i = 0; i < 2; i++) {
        const char *spec = spec_in("sqlite", i ? "dl1.db" : "dl0.db");
        w[i] = open_ok(spec, 64);
        assert_int_equal(sqlite3_open(spec + strlen("sqlite:"), &other[i]), SQLITE_OK);
        assert_int_equal(sqlite3_exec(other[i], "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
        assert_int_equal(kf__writer_start(w[i], g_err, sizeof g_err), KF_OK);
        kf_kline k = row(0);
        assert_true(kf__writer_offer(w[i], &k));
    }
    double t0 = now_s();
    int64_t deadline = (int64_t)(t0 * 1000) + 2000;
    for (int i = 0; i < 2; i++)
        assert_int_equal(kf__writer_stop_by(w[i], deadline), KF_ERR_SINK);
    double secs = now_s() - t0;
    assert_true(secs >= 1.9 && secs < 3.5);
    for (int i = 0; i < 2; i++) {
        sqlite3_exec(other[i], "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(other[i]);
        kf__writer_free(w[i]);
    }
}

int main(void)
{
    kf__logger_init(&g_lg, NULL, NULL, KF_LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sqlite_200k_tiny_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_throughput_big_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jsonl_200k_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_locked_then_released, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_idempotent_and_unstarted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_row_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_deadline_locked_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offer_never_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cover_waits_for_its_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_by_shared_deadline, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    kf__logger_destroy(&g_lg);
    return rc;
}
