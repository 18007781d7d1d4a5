/* The postgres sink without the writer, against a real server the test starts itself
 * (pg_proc.h): schema creation, exact NUMERIC text, idempotent upserts (an open update never
 * overwrites a closed row, a repeat changes nothing, duplicates inside one batch), one bad row
 * never loses its batch (and is counted), new keys straight into the table and the upsert after
 * a stored key, stored/get_cover/put_cover (two collectors' ranges merged, never shrinking), a
 * race with another writer on a key, a transaction another writer's deadlocked run again
 * (nothing lost, nothing refused), two writers on the same keys at once, reconnect after a
 * crash of the server, and the password masked in every message. Skipped (with the reason)
 * only when the server binaries are absent. */
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

/* Two collectors record their complete ranges of one stream in one table: overlapping ranges
 * are merged, a disjoint older one never replaces a newer one, a disjoint newer one does; several
 * in one call (in any order) are taken whole. */
static void test_pg_cover_merged(void **st)
{
    (void)st;
    need_pg();
    void *s = open_sink();
    int64_t f = 0, t = 0;
    int found = 0;
#define COVER(sym, a, b)                                                                           \
    do {                                                                                           \
        kf__cover c_ = {.symbol = sym, .interval = "1m", .from = (a), .to = (b)};                  \
        assert_int_equal(kf__sink_postgres.put_cover(s, &c_, 1, g_err, sizeof g_err), KF_OK);      \
    } while (0)
#define GOT(sym, a, b)                                                                             \
    do {                                                                                           \
        assert_int_equal(                                                                          \
            kf__sink_postgres.get_cover(s, sym, "1m", &f, &t, &found, g_err, sizeof g_err),        \
            KF_OK);                                                                                \
        assert_int_equal(found, 1);                                                                \
        assert_int_equal(f, (a));                                                                  \
        assert_int_equal(t, (b));                                                                  \
    } while (0)
    COVER("ETCUSDT", 600000, 1200000);
    COVER("ETCUSDT", 60000, 900000); /* the other collector's, older but overlapping: union */
    GOT("ETCUSDT", 60000, 1200000);
    COVER("ETCUSDT", 600000, 960000); /* inside: nothing changes (it never shrinks) */
    GOT("ETCUSDT", 60000, 1200000);
    COVER("ETCUSDT", 1800000, 2400000); /* disjoint and newer: it */
    GOT("ETCUSDT", 1800000, 2400000);
    COVER("ETCUSDT", 60000, 1200000); /* disjoint and older: not it */
    GOT("ETCUSDT", 1800000, 2400000);
    kf__cover two[2] = {{.symbol = "XLMUSDT", .interval = "1m", .from = 0, .to = 60000},
                        {.symbol = "EOSUSDT", .interval = "1m", .from = 0, .to = 120000}};
    assert_int_equal(kf__sink_postgres.put_cover(s, two, 2, g_err, sizeof g_err), KF_OK);
    GOT("XLMUSDT", 0, 60000);
    GOT("EOSUSDT", 0, 120000);
#undef COVER
#undef GOT
    kf__sink_postgres.close(s);
}

typedef struct pg_write_job {
    void *sink;
    kf_kline rows[2];
    kf_err rc;
    char err[1024];
} pg_write_job;

static void *pg_write_thread(void *arg)
{
    pg_write_job *j = arg;
    j->rc = kf__sink_postgres.write(j->sink, j->rows, 2, j->err, sizeof j->err);
    return NULL;
}

static void xexec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* Another writer's transaction (the test's session, as another collector) and the sink's write
 * of the same two keys in the other order deadlock: the server rolls the sink's back (40P01, the
 * test's session waits longer before it looks for deadlocks). The sink runs it again and stores
 * both rows once; nothing is refused, the write succeeds. */
static void test_pg_deadlock_run_again(void **st)
{
    (void)st;
    need_pg();
    void *s = open_sink();
    long long deadlocks0 =
        atoll(q1("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"));
    PGconn *x = PQconnectdb(g_pg->conninfo);
    assert_int_equal(PQstatus(x), CONNECTION_OK);
    xexec(x, "SET deadlock_timeout = '60s'");
    xexec(x, "BEGIN");
    /* the other writer holds the second key (uncommitted) */
    xexec(x, "INSERT INTO klines VALUES('DLKUSDT', '1m', 120000, 179999, 1, 1, 1, 1, 1, 1, 1, 1, "
             "1, true)");
    pg_write_job j = {.sink = s,
                      .rows = {mk("DLKUSDT", 60000, 1, "2.5"), mk("DLKUSDT", 120000, 1, "2.5")}};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pg_write_thread, &j), 0);
    /* until the sink holds the first key and waits for the second */
    for (int i = 0; i < 6000; i++) {
        if (atoi(q1("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                    "'klinefeed' AND wait_event_type = 'Lock'")) > 0)
            break;
        usleep(10000);
    }
    /* the other writer now wants the first key: a deadlock, the sink's transaction is the one
     * rolled back (its server process looks after 1 s, this one after 60 s) */
    xexec(x, "INSERT INTO klines VALUES('DLKUSDT', '1m', 60000, 119999, 1, 1, 1, 1, 1, 1, 1, 1, 1, "
             "true) ON CONFLICT DO NOTHING");
    xexec(x, "COMMIT");
    PQfinish(x);
    pthread_join(th, NULL);
    if (j.rc)
        fail_msg("write: %s", j.err);
    assert_int_equal(atoll(q1("SELECT deadlocks FROM pg_stat_database WHERE datname = "
                              "current_database()")),
                     deadlocks0 + 1);
    assert_string_equal(q1("SELECT count(*) FROM klines WHERE symbol = 'DLKUSDT'"), "2");
    /* the sink's rows (run again after the other writer's commit) replaced the other's */
    assert_string_equal(q1("SELECT string_agg(close::text, ',' ORDER BY open_time) FROM klines "
                           "WHERE symbol = 'DLKUSDT'"),
                        "2.5,2.5");
    assert_int_equal(kf__sink_postgres.rejected(s), 0);
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
        cmocka_unit_test(test_pg_two_writers),
        cmocka_unit_test(test_pg_stored_and_cover),
        cmocka_unit_test(test_pg_cover_merged),
        cmocka_unit_test(test_pg_deadlock_run_again),
        cmocka_unit_test(test_pg_server_crash),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
