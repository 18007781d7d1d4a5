/* The postgres sink without the writer, against a real server the test starts itself
 * (pg_proc.h): schema creation, exact NUMERIC text, idempotent upserts (an open update never
 * overwrites a closed row, a repeat changes nothing, duplicates inside one batch), one bad row
 * never loses its batch, stored/get_cover/put_cover (two collectors' ranges merged, never
 * shrinking), a transaction another writer's deadlocked run again (nothing lost, nothing
 * refused), reconnect after a crash of the server, and the password masked in every message.
 * Skipped (with the reason) only when the server binaries are absent. */
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
    assert_int_equal(kf__pg_rejected(s), 1);
    kf__sink_postgres.close(s);
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
    assert_int_equal(kf__pg_rejected(s), 0);
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
        cmocka_unit_test(test_pg_stored_and_cover),
        cmocka_unit_test(test_pg_cover_merged),
        cmocka_unit_test(test_pg_deadlock_run_again),
        cmocka_unit_test(test_pg_server_crash),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
