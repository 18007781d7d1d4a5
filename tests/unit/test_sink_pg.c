/* The postgres sink without the writer, against a real server the test starts itself
 * (pg_proc.h): schema creation, exact NUMERIC text, idempotent upserts (an open update never
 * overwrites a closed row, a repeat changes nothing, duplicates inside one batch), one bad row
 * never loses its batch, stored/get_cover/put_cover, reconnect after a crash of the server,
 * and the password masked in every message. Skipped (with the reason) only when the server
 * binaries are absent. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pg_proc.h"
#include "sink/sink.h"

static kft_pg *g_pg;
static char g_err[1024];
static char g_ci[800];

static int setup(void **st)
{
    (void)st;
    char why[256];
    if (!kft_pg_available(why, sizeof why))
        return 0; /* each test skips */
    g_pg = kft_pg_start();
    if (!g_pg)
        return -1;
    /* trust auth: the password is not needed, only carried, and must never be shown */
    snprintf(g_ci, sizeof g_ci, "%s password=s3cr3t-pw", g_pg->conninfo);
    return 0;
}

static int teardown(void **st)
{
    (void)st;
    kft_pg_destroy(g_pg);
    return 0;
}

static void need_pg(void)
{
    char why[256];
    if (!kft_pg_available(why, sizeof why)) {
        print_message("skipped: %s\n", why);
        skip();
    }
    assert_non_null(g_pg);
}

static kf_dec D(const char *s)
{
    kf_dec d;
    assert_int_equal(kf_dec_parse(s, strlen(s), &d), KF_OK);
    return d;
}

static kf_kline mk(const char *sym, int64_t open_time, int closed, const char *close)
{
    kf_kline k;
    memset(&k, 0, sizeof k);
    snprintf(k.symbol, sizeof k.symbol, "%s", sym);
    snprintf(k.interval, sizeof k.interval, "1m");
    k.closed = closed;
    k.open_time = open_time;
    k.close_time = open_time + 59999;
    k.trades = 1027;
    k.open = D("83084.90");
    k.high = D("83091.70");
    k.low = D("83051.20");
    k.close = D(close);
    k.volume = D("0.000");
    k.quote_volume = D("412345678901.12345");
    k.taker_buy_base = D("6.426");
    k.taker_buy_quote = D("533856.66860");
    return k;
}

/* First column of the first row as text ("" when none). */
static const char *q1(const char *sql)
{
    static char out[512];
    PGconn *c = PQconnectdb(g_pg->conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    snprintf(out, sizeof out, "%s", PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    PQfinish(c);
    return out;
}

static void *open_sink(void)
{
    void *s = NULL;
    kf_err rc = kf__sink_postgres.open(g_ci, &s, g_err, sizeof g_err);
    if (rc)
        fail_msg("open: %s", g_err);
    return s;
}

static int collect(void *ud, int64_t t)
{
    int64_t *v = ud;
    v[++v[0]] = t;
    return 0;
}

static void test_pg_mask(void **st)
{
    (void)st;
    char out[256];
    kf__sink_mask("postgres:host=h password=abc user=u", out, sizeof out);
    assert_string_equal(out, "postgres:host=h password=*** user=u");
    kf__sink_mask("postgres:password = 'a b\\' c' dbname=x", out, sizeof out);
    assert_string_equal(out, "postgres:password = *** dbname=x");
    kf__sink_mask("postgres:postgresql://u:pw@h:5432/db?sslmode=require&password=p2", out,
                  sizeof out);
    assert_string_equal(out, "postgres:postgresql://u:***@h:5432/db?sslmode=require&password=***");
    kf__sink_mask("postgres:postgres://u@h/db", out, sizeof out);
    assert_string_equal(out, "postgres:postgres://u@h/db");
    kf__sink_mask("sqlite:/x/password=1", out, sizeof out);
    assert_string_equal(out, "sqlite:/x/password=1");
}

static void test_pg_schema_and_exact_text(void **st)
{
    (void)st;
    need_pg();
    void *s = open_sink();
    assert_string_equal(q1("SELECT value FROM klines_meta WHERE key='schema_version'"), "1");
    kf_kline k[2] = {mk("BTCUSDT", 60000, 1, "83084.90"), mk("BTCUSDT", 120000, 1, "0.00000")};
    assert_int_equal(kf__sink_postgres.write(s, k, 2, g_err, sizeof g_err), KF_OK);
    assert_string_equal(q1("SELECT close::text FROM klines WHERE open_time=60000"), "83084.90");
    assert_string_equal(q1("SELECT close::text FROM klines WHERE open_time=120000"), "0.00000");
    assert_string_equal(q1("SELECT quote_volume::text FROM klines WHERE open_time=60000"),
                        "412345678901.12345");
    assert_string_equal(q1("SELECT volume::text FROM klines WHERE open_time=60000"), "0.000");
    /* still computes */
    assert_string_equal(q1("SELECT (close * 2)::text FROM klines WHERE open_time=60000"),
                        "166169.80");
    kf__sink_postgres.close(s);
    s = open_sink(); /* an existing schema is accepted */
    kf__sink_postgres.close(s);
}

static void test_pg_idempotent(void **st)
{
    (void)st;
    need_pg();
    void *s = open_sink();
    kf_kline c = mk("ETHUSDT", 60000, 1, "2000.10");
    assert_int_equal(kf__sink_postgres.write(s, &c, 1, g_err, sizeof g_err), KF_OK);
    char xmin[64];
    snprintf(xmin, sizeof xmin, "%s", q1("SELECT xmin::text FROM klines WHERE symbol='ETHUSDT'"));
    /* a repeat changes nothing: not even a new row version */
    assert_int_equal(kf__sink_postgres.write(s, &c, 1, g_err, sizeof g_err), KF_OK);
    assert_string_equal(q1("SELECT xmin::text FROM klines WHERE symbol='ETHUSDT'"), xmin);
    /* an open update never overwrites a closed row */
    kf_kline o = mk("ETHUSDT", 60000, 0, "1999.99");
    assert_int_equal(kf__sink_postgres.write(s, &o, 1, g_err, sizeof g_err), KF_OK);
    assert_string_equal(q1("SELECT close::text || closed::text FROM klines WHERE "
                           "symbol='ETHUSDT'"),
                        "2000.10true");
    /* a closed correction replaces, exact scale included (2000.1 != 2000.10 as text) */
    kf_kline c2 = mk("ETHUSDT", 60000, 1, "2000.1");
    assert_int_equal(kf__sink_postgres.write(s, &c2, 1, g_err, sizeof g_err), KF_OK);
    assert_string_equal(q1("SELECT close::text FROM klines WHERE symbol='ETHUSDT'"), "2000.1");
    /* one batch holding the same key several times: open, closed, open again, closed again */
    kf_kline b[5] = {mk("SOLUSDT", 60000, 0, "1.1"), mk("SOLUSDT", 60000, 1, "1.2"),
                     mk("SOLUSDT", 60000, 0, "1.3"), mk("SOLUSDT", 60000, 1, "1.40"),
                     mk("SOLUSDT", 120000, 0, "1.5")};
    assert_int_equal(kf__sink_postgres.write(s, b, 5, g_err, sizeof g_err), KF_OK);
    assert_string_equal(q1("SELECT string_agg(close::text || ':' || closed::text, ',' ORDER BY "
                           "open_time) FROM klines WHERE symbol='SOLUSDT'"),
                        "1.40:true,1.5:false");
    kf__sink_postgres.close(s);
}

static void test_pg_bad_row_keeps_batch(void **st)
{
    (void)st;
    need_pg();
    void *s = open_sink();
    kf_kline b[4] = {mk("XRPUSDT", 60000, 1, "0.5"), mk("XRPUSDT", 120000, 1, "0.6"),
                     mk("BAD\xff", 60000, 1, "1"), mk("XRPUSDT", 180000, 1, "0.7")};
    assert_int_equal(kf__sink_postgres.write(s, b, 4, g_err, sizeof g_err), KF_OK);
    assert_string_equal(q1("SELECT count(*) FROM klines WHERE symbol='XRPUSDT'"), "3");
    assert_int_equal(kf__sink_postgres.rejected(s), 1);
    kf__sink_postgres.close(s);
}

/* The rows refused reach the writer's counters (kf_stats.store_rejected sums them): counted
 * once, and not as stored. */
static void test_pg_writer_counts_rejected(void **st)
{
    (void)st;
    need_pg();
    char spec[900];
    snprintf(spec, sizeof spec, "postgres:%s", g_ci);
    kf__writer *w = kf__writer_open(spec, 64, NULL, g_err, sizeof g_err);
    if (!w)
        fail_msg("writer: %s", g_err);
    kf_kline b[5] = {mk("TRXUSDT", 60000, 1, "0.1"), mk("BAD\xfe", 60000, 1, "1"),
                     mk("TRXUSDT", 120000, 1, "0.2"), mk("BAD\xfd", 60000, 1, "1"),
                     mk("TRXUSDT", 180000, 1, "0.3")};
    for (int i = 0; i < 5; i++)
        kf__writer_push(w, &b[i]);
    assert_int_equal(kf__writer_stop(w), KF_OK);
    kf__writer_stats ws;
    kf__writer_get_stats(w, &ws);
    assert_int_equal(ws.rejected, 2);
    assert_int_equal(ws.rows, 3);
    assert_int_equal(ws.errors, 0);
    kf__writer_free(w);
    assert_string_equal(q1("SELECT count(*) FROM klines WHERE symbol='TRXUSDT'"), "3");
}

/* Rows of keys the table holds mixed with new ones: the fast path (COPY into klines) fails on
 * the first, the upsert takes the batch, and the next batches (upsert first, then the fast path
 * again) keep every rule. */
static void test_pg_fast_path_fallback(void **st)
{
    (void)st;
    need_pg();
    void *s = open_sink();
    /* new keys, duplicates inside the batch: one row per key, its last closed row */
    kf_kline a[6] = {mk("LTCUSDT", 120000, 0, "70.1"),  mk("LTCUSDT", 60000, 1, "70.2"),
                     mk("LTCUSDT", 120000, 1, "70.30"), mk("LTCUSDT", 120000, 0, "70.4"),
                     mk("LTCUSDT", 180000, 0, "70.5"),  mk("LTCUSDT", 180000, 0, "70.6")};
    assert_int_equal(kf__sink_postgres.write(s, a, 6, g_err, sizeof g_err), KF_OK);
    assert_string_equal(q1("SELECT string_agg(close::text || ':' || closed::text, ',' ORDER BY "
                           "open_time) FROM klines WHERE symbol='LTCUSDT'"),
                        "70.2:true,70.30:true,70.6:false");
    /* stored keys among new ones: open never overwrites closed, closed replaces open */
    for (int round = 0; round < 4; round++) {
        int64_t t = 240000 + round * 60000;
        kf_kline b[4] = {mk("LTCUSDT", t, 1, "71"), mk("LTCUSDT", 60000, 0, "1"),
                         mk("LTCUSDT", 180000, 1, "70.7"), mk("LTCUSDT", 120000, 1, "70.30")};
        assert_int_equal(kf__sink_postgres.write(s, b, 4, g_err, sizeof g_err), KF_OK);
    }
    kf_kline c = mk("LTCUSDT", 600000, 1, "72");
    for (int round = 0; round < 8; round++, c.open_time += 60000) /* new keys again */
        assert_int_equal(kf__sink_postgres.write(s, &c, 1, g_err, sizeof g_err), KF_OK);
    assert_string_equal(q1("SELECT string_agg(close::text || ':' || closed::text, ',' ORDER BY "
                           "open_time) FROM klines WHERE symbol='LTCUSDT' AND open_time < 480000"),
                        "70.2:true,70.30:true,70.7:true,71:true,71:true,71:true,71:true");
    assert_string_equal(q1("SELECT count(*) FROM klines WHERE symbol='LTCUSDT'"), "15");
    kf__sink_postgres.close(s);
}

typedef struct racer {
    void *sink;
    const kf_kline *rows;
    size_t n, rounds;
    kf_err rc;
    char err[512];
} racer;

static void *race_write(void *arg)
{
    racer *r = arg;
    r->rc = KF_OK;
    for (size_t i = 0; i < r->rounds && r->rc == KF_OK; i++)
        r->rc = kf__sink_postgres.write(r->sink, r->rows, r->n, r->err, sizeof r->err);
    return NULL;
}

/* Another writer inserts a key of the batch and commits while the fast path waits on it: the
 * fast path fails (unique_violation) and the upsert stores the batch, by the rules. */
static void test_pg_race_with_another_writer(void **st)
{
    (void)st;
    need_pg();
    void *s = open_sink();
    PGconn *o = PQconnectdb(g_pg->conninfo);
    assert_int_equal(PQstatus(o), CONNECTION_OK);
    PQclear(PQexec(o, "BEGIN"));
    PGresult *res = PQexec(o, "INSERT INTO klines VALUES('BCHUSDT', '1m', 60000, 119999, 1, 1, "
                              "1, 400.5, 1, 1, 1, 1, 1, true), ('BCHUSDT', '1m', 120000, 179999, "
                              "1, 1, 1, 400.6, 1, 1, 1, 1, 1, false)");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    kf_kline b[3] = {mk("BCHUSDT", 60000, 0, "399"), mk("BCHUSDT", 120000, 1, "401"),
                     mk("BCHUSDT", 180000, 1, "402")};
    racer r = {.sink = s, .rows = b, .n = 3, .rounds = 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race_write, &r), 0);
    usleep(300000); /* the sink's COPY waits for this transaction */
    PQclear(PQexec(o, "COMMIT"));
    pthread_join(th, NULL);
    if (r.rc)
        fail_msg("write: %s", r.err);
    assert_string_equal(q1("SELECT string_agg(close::text || ':' || closed::text, ',' ORDER BY "
                           "open_time) FROM klines WHERE symbol='BCHUSDT'"),
                        "400.5:true,401:true,402:true");
    PQfinish(o);
    kf__sink_postgres.close(s);
}

/* A deadlock with another writer (it holds the batch's second key and then asks for its first):
 * the server aborts the sink's transaction (40P01), which the sink retries at once; the batch is
 * stored, the write never fails. */
static void test_pg_deadlock_retried(void **st)
{
    (void)st;
    need_pg();
    void *s = open_sink();
    PGconn *o = PQconnectdb(g_pg->conninfo);
    assert_int_equal(PQstatus(o), CONNECTION_OK);
    long long before = atoll(q1("SELECT deadlocks FROM pg_stat_database WHERE datname = "
                                "current_database()"));
    PQclear(PQexec(o, "BEGIN"));
    PGresult *res = PQexec(o, "INSERT INTO klines VALUES('APTUSDT', '1m', 120000, 179999, "
                              "83084.90, 83091.70, 83051.20, 9.5, 0.000, 412345678901.12345, "
                              "1027, 6.426, 533856.66860, true)");
    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    kf_kline b[2] = {mk("APTUSDT", 60000, 1, "9.4"), mk("APTUSDT", 120000, 1, "9.5")};
    racer r = {.sink = s, .rows = b, .n = 2, .rounds = 1};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race_write, &r), 0);
    usleep(300000); /* the sink holds 60000 and waits for 120000 */
    res = PQexec(o, "INSERT INTO klines VALUES('APTUSDT', '1m', 60000, 119999, 83084.90, "
                    "83091.70, 83051.20, 9.4, 0.000, 412345678901.12345, 1027, 6.426, "
                    "533856.66860, true)");
    bool other_ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    PQclear(PQexec(o, other_ok ? "COMMIT" : "ROLLBACK"));
    pthread_join(th, NULL);
    if (r.rc)
        fail_msg("write: %s", r.err);
    assert_string_equal(q1("SELECT string_agg(close::text || ':' || closed::text, ',' ORDER BY "
                           "open_time) FROM klines WHERE symbol='APTUSDT'"),
                        "9.4:true,9.5:true");
    long long after = atoll(q1("SELECT deadlocks FROM pg_stat_database WHERE datname = "
                               "current_database()"));
    print_message("deadlocks: %lld, the other writer %s\n", after - before,
                  other_ok ? "committed" : "was the victim");
    PQfinish(o);
    kf__sink_postgres.close(s);
}

/* Two collectors writing the same keys at once, in batches of opposite orders and overlapping
 * ranges: no batch fails, none is lost, nothing is written twice. */
static void test_pg_two_writers(void **st)
{
    (void)st;
    need_pg();
    enum { N = 600 };
    static kf_kline x[N], y[N];
    for (size_t i = 0; i < N; i++) {
        x[i] = mk(i % 2 ? "NEARUSDT" : "UNIUSDT", (int64_t)(i / 2) * 60000, 1, "5.5");
        y[N - 1 - i] = mk(i % 2 ? "NEARUSDT" : "UNIUSDT", (int64_t)(i / 2 + 100) * 60000, 1, "5.5");
    }
    racer r[2] = {{.sink = open_sink(), .rows = x, .n = N, .rounds = 6},
                  {.sink = open_sink(), .rows = y, .n = N, .rounds = 6}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race_write, &r[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(th[i], NULL);
        if (r[i].rc)
            fail_msg("writer %d: %s", i, r[i].err);
        kf__sink_postgres.close(r[i].sink);
    }
    assert_string_equal(q1("SELECT count(*) FROM klines WHERE symbol IN ('NEARUSDT', "
                           "'UNIUSDT')"),
                        "800");
}

static void test_pg_stored_and_cover(void **st)
{
    (void)st;
    need_pg();
    void *s = open_sink();
    kf_kline b[4] = {mk("ADAUSDT", 60000, 1, "1"), mk("ADAUSDT", 180000, 1, "1"),
                     mk("ADAUSDT", 240000, 0, "1"), mk("ADAUSDT", 300000, 1, "1")};
    assert_int_equal(kf__sink_postgres.write(s, b, 4, g_err, sizeof g_err), KF_OK);
    int64_t v[8] = {0};
    assert_int_equal(
        kf__sink_postgres.stored(s, "ADAUSDT", "1m", 100000, collect, v, g_err, sizeof g_err),
        KF_OK);
    assert_int_equal(v[0], 2); /* closed only, from 100000 on: the hole at 120000 shows */
    assert_int_equal(v[1], 180000);
    assert_int_equal(v[2], 300000);
    int64_t t = 0, f = 0;
    int found = -1;
    assert_int_equal(
        kf__sink_postgres.last_closed(s, "ADAUSDT", "1m", &t, &found, g_err, sizeof g_err), KF_OK);
    assert_int_equal(found, 1);
    assert_int_equal(t, 300000);
    assert_int_equal(
        kf__sink_postgres.get_cover(s, "ADAUSDT", "1m", &f, &t, &found, g_err, sizeof g_err),
        KF_OK);
    assert_int_equal(found, 0);
    kf__cover c = {.symbol = "ADAUSDT", .interval = "1m", .from = 60000, .to = 60000};
    assert_int_equal(kf__sink_postgres.put_cover(s, &c, 1, g_err, sizeof g_err), KF_OK);
    c.to = 300000;
    assert_int_equal(kf__sink_postgres.put_cover(s, &c, 1, g_err, sizeof g_err), KF_OK);
    assert_int_equal(
        kf__sink_postgres.get_cover(s, "ADAUSDT", "1m", &f, &t, &found, g_err, sizeof g_err),
        KF_OK);
    assert_int_equal(found, 1);
    assert_int_equal(f, 60000);
    assert_int_equal(t, 300000);
    kf__sink_postgres.close(s);
}

static void test_pg_server_crash(void **st)
{
    (void)st;
    need_pg();
    void *s = open_sink();
    kf_kline k = mk("DOGEUSDT", 60000, 1, "0.1");
    assert_int_equal(kf__sink_postgres.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    assert_int_equal(kft_pg_down(g_pg, "immediate"), 0);
    k.open_time = 120000;
    assert_int_not_equal(kf__sink_postgres.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    assert_null(strstr(g_err, "s3cr3t")); /* the message names the store, never the password */
    assert_non_null(strstr(g_err, "password=***"));
    assert_int_not_equal(kf__sink_postgres.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    assert_null(strstr(g_err, "s3cr3t"));
    assert_int_equal(kft_pg_up(g_pg), 0);
    assert_int_equal(kf__sink_postgres.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    assert_string_equal(q1("SELECT count(*) FROM klines WHERE symbol='DOGEUSDT'"), "2");
    kf__sink_postgres.close(s);
    /* a server that is not there fails the open, naming it without the password */
    void *t = NULL;
    char ci[300];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=1 user=x password=s3cr3t-pw connect_timeout=2");
    assert_int_not_equal(kf__sink_postgres.open(ci, &t, g_err, sizeof g_err), KF_OK);
    assert_null(strstr(g_err, "s3cr3t"));
    assert_non_null(strstr(g_err, "port=1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg_mask),
        cmocka_unit_test(test_pg_schema_and_exact_text),
        cmocka_unit_test(test_pg_idempotent),
        cmocka_unit_test(test_pg_bad_row_keeps_batch),
        cmocka_unit_test(test_pg_writer_counts_rejected),
        cmocka_unit_test(test_pg_fast_path_fallback),
        cmocka_unit_test(test_pg_race_with_another_writer),
        cmocka_unit_test(test_pg_deadlock_retried),
        cmocka_unit_test(test_pg_two_writers),
        cmocka_unit_test(test_pg_stored_and_cover),
        cmocka_unit_test(test_pg_server_crash),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
