/* Sinks without the writer: lookup, sqlite, jsonl, csv on real files in a temp dir. */
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sink/format.h"
#include "sink/sink.h"
#include "sink_fixture.h"

static char g_dir[256];
static char g_err[512];

static int setup(void **st)
{
    (void)st;
    return kft_dir_create(g_dir, sizeof g_dir, "kf-sink-store");
}

static int teardown(void **st)
{
    (void)st;
    return kft_dir_remove(g_dir);
}

static const char *path_in(const char *name)
{
    static char p[4][512];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", g_dir, name);
    return p[i];
}

static kf_dec D(const char *s)
{
    kf_dec d;
    assert_int_equal(kf_dec_parse(s, strlen(s), &d), KF_OK);
    return d;
}

static kf_kline mk(const char *sym, const char *iv, int64_t open_time, int closed,
                   const char *close)
{
    kf_kline k;
    memset(&k, 0, sizeof k);
    snprintf(k.symbol, sizeof k.symbol, "%s", sym);
    snprintf(k.interval, sizeof k.interval, "%s", iv);
    k.interval_index = kf_interval_index(iv, strlen(iv));
    k.closed = closed;
    k.event_time = open_time + 1234;
    k.open_time = open_time;
    k.close_time = open_time + 59999;
    k.first_trade_id = 8153633367;
    k.last_trade_id = 8153634395;
    k.trades = 1027;
    k.open = D("83084.90");
    k.high = D("83091.70");
    k.low = D("83051.20");
    k.close = D(close);
    k.volume = D("13.551");
    k.quote_volume = D("1125714.73960");
    k.taker_buy_base = D("6.426");
    k.taker_buy_quote = D("533856.66860");
    return k;
}

/* Reads the whole file (test sizes only). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static sqlite3 *db_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    return db;
}

static void db_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* ---- lookup ---- */

static void test_lookup(void **st)
{
    (void)st;
    const char *t = NULL;
    assert_ptr_equal(kf__sink_lookup("sqlite:/tmp/x.db", &t), &kf__sink_sqlite);
    assert_string_equal(t, "/tmp/x.db");
    assert_ptr_equal(kf__sink_lookup("jsonl:out.jsonl", &t), &kf__sink_jsonl);
    assert_string_equal(t, "out.jsonl");
    assert_ptr_equal(kf__sink_lookup("jsonl:-", &t), &kf__sink_jsonl);
    assert_string_equal(t, "-");
    assert_ptr_equal(kf__sink_lookup("csv:-", &t), &kf__sink_csv);
    assert_string_equal(t, "-");
    assert_ptr_equal(kf__sink_lookup("csv:a:b.csv", &t), &kf__sink_csv);
    assert_string_equal(t, "a:b.csv");
    assert_null(kf__sink_lookup("sqlite:", &t));
    assert_null(kf__sink_lookup("jsonl:", &t));
    assert_null(kf__sink_lookup("sqlite", &t));
    assert_null(kf__sink_lookup("", &t));
    assert_null(kf__sink_lookup(NULL, &t));
    assert_null(kf__sink_lookup(":x", &t));
    assert_ptr_equal(kf__sink_lookup("postgres:dbname=db host=h", &t), &kf__sink_postgres);
    assert_string_equal(t, "dbname=db host=h");
    assert_ptr_equal(kf__sink_lookup("postgres:postgresql://u@h/db", &t), &kf__sink_postgres);
    assert_string_equal(t, "postgresql://u@h/db");
    assert_null(kf__sink_lookup("postgres:", &t));
    assert_null(kf__sink_lookup("postgresql:db", &t));
    assert_null(kf__sink_lookup("SQLITE:x.db", &t));
    assert_null(kf__sink_lookup("sqlit:x.db", &t));
    assert_null(kf__sink_lookup("sqlite3:x.db", &t));
    const kf__sink_ops *all[] = {&kf__sink_sqlite, &kf__sink_jsonl, &kf__sink_csv,
                                 &kf__sink_postgres};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(all[i]->version, KF__SINK_OPS_VERSION);
        assert_non_null(all[i]->open);
        assert_non_null(all[i]->write);
        assert_non_null(all[i]->flush);
        assert_non_null(all[i]->close);
    }
    assert_non_null(kf__sink_sqlite.last_closed);
}

/* ---- sqlite ---- */

static void *sq_open_ok(const char *path)
{
    void *s = NULL;
    kf_err rc = kf__sink_sqlite.open(path, &s, g_err, sizeof g_err);
    if (rc != KF_OK)
        fail_msg("open %s: %s", path, g_err);
    return s;
}

static void test_sqlite_create_reopen(void **st)
{
    (void)st;
    const char *p = path_in("a.db");
    void *s = sq_open_ok(p);
    kf_kline rows[3] = {mk("BTCUSDT", "1m", 60000, 1, "1.5"), mk("BTCUSDT", "1m", 120000, 1, "2"),
                        mk("ETHUSDT", "1h", 3600000, 1, "3")};
    assert_int_equal(kf__sink_sqlite.write(s, rows, 3, g_err, sizeof g_err), KF_OK);
    assert_int_equal(kf__sink_sqlite.flush(s, g_err, sizeof g_err), KF_OK);
    kf__sink_sqlite.close(s);

    s = sq_open_ok(p); /* same schema: accepted, data kept */
    kf__sink_sqlite.close(s);
    sqlite3 *db = db_open(p);
    assert_string_equal(kft_db_text(db, "SELECT count(*) FROM klines"), "3");
    assert_string_equal(kft_db_text(db, "SELECT value FROM meta WHERE key='schema_version'"), "2");
    assert_string_equal(kft_db_text(db, "PRAGMA journal_mode"), "wal");
    assert_string_equal(kft_db_text(db, "SELECT count(*) FROM meta"), "1");
    assert_string_equal(
        kft_db_text(db, "SELECT sql LIKE '%WITHOUT ROWID' FROM sqlite_master WHERE name='klines'"),
        "1");
    assert_string_equal(kft_db_text(db, "SELECT close FROM klines WHERE symbol='ETHUSDT'"), "3");
    sqlite3_close(db);
}

static void test_sqlite_exact_text(void **st)
{
    (void)st;
    const char *p = path_in("exact.db");
    void *s = sq_open_ok(p);
    kf_kline k = mk("BTCUSDT", "1M", 1790000000000, 1, "0.01731");
    k.open = D("0.00000");
    k.high = D("83084.90");
    k.low = D("0.10");
    k.volume = D("123456789012.34567");         /* 17 digits */
    k.quote_volume = D("412345678901.12345");   /* 17 digits, > 4e11 */
    k.taker_buy_base = D("999999999999999999"); /* 18 digits */
    k.taker_buy_quote = D("0.000000000000000001");
    k.trades = 123456789;
    assert_int_equal(kf__sink_sqlite.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    kf__sink_sqlite.close(s);
    sqlite3 *db = db_open(p);
    const char *sql = "SELECT open || '|' || high || '|' || low || '|' || close || '|' || volume "
                      "|| '|' || quote_volume || '|' || taker_buy_base || '|' || taker_buy_quote "
                      "|| '|' || trades || '|' || closed || '|' || close_time FROM klines";
    assert_string_equal(kft_db_text(db, sql),
                        "0.00000|83084.90|0.10|0.01731|123456789012.34567|412345678901.12345|"
                        "999999999999999999|0.000000000000000001|123456789|1|1790000059999");
    assert_string_equal(kft_db_text(db, "SELECT typeof(open) || typeof(quote_volume) || "
                                        "typeof(open_time) || typeof(closed) FROM klines"),
                        "texttextintegerinteger");
    sqlite3_close(db);
}

static const char *row_state(sqlite3 *db, int64_t t)
{
    char sql[160];
    snprintf(sql, sizeof sql,
             "SELECT close || '/' || closed FROM klines WHERE symbol='BTCUSDT' AND "
             "interval='1m' AND open_time=%lld",
             (long long)t);
    return kft_db_text(db, sql);
}

static void test_sqlite_upsert_rules(void **st)
{
    (void)st;
    const char *p = path_in("upsert.db");
    void *s = sq_open_ok(p);
    sqlite3 *db = db_open(p);
    kf_kline k;

    k = mk("BTCUSDT", "1m", 60000, 0, "10.0");
    assert_int_equal(kf__sink_sqlite.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    assert_string_equal(row_state(db, 60000), "10.0/0");
    k = mk("BTCUSDT", "1m", 60000, 0, "11.0"); /* open replaces open */
    assert_int_equal(kf__sink_sqlite.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    assert_string_equal(row_state(db, 60000), "11.0/0");
    k = mk("BTCUSDT", "1m", 60000, 1, "12.0"); /* closed replaces open */
    assert_int_equal(kf__sink_sqlite.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    assert_string_equal(row_state(db, 60000), "12.0/1");
    k = mk("BTCUSDT", "1m", 60000, 0, "13.0"); /* open never overwrites closed */
    assert_int_equal(kf__sink_sqlite.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    assert_string_equal(row_state(db, 60000), "12.0/1");
    k = mk("BTCUSDT", "1m", 60000, 1, "12.5"); /* a closed correction (REST) does */
    assert_int_equal(kf__sink_sqlite.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    assert_string_equal(row_state(db, 60000), "12.5/1");
    /* in one batch: open, closed, late open of the same candle */
    kf_kline b[3] = {mk("BTCUSDT", "1m", 120000, 0, "1"), mk("BTCUSDT", "1m", 120000, 1, "2"),
                     mk("BTCUSDT", "1m", 120000, 0, "3")};
    assert_int_equal(kf__sink_sqlite.write(s, b, 3, g_err, sizeof g_err), KF_OK);
    assert_string_equal(row_state(db, 120000), "2/1");
    assert_string_equal(kft_db_text(db, "SELECT count(*) FROM klines"), "2");
    sqlite3_close(db);
    kf__sink_sqlite.close(s);
}

static void test_sqlite_batch_is_atomic(void **st)
{
    (void)st;
    const char *p = path_in("atomic.db");
    void *s = sq_open_ok(p);
    sqlite3 *db = db_open(p);
    db_exec(db, "CREATE TRIGGER boom BEFORE INSERT ON klines WHEN NEW.symbol = 'BAD' "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
    kf_kline b[3] = {mk("BTCUSDT", "1m", 60000, 1, "1"), mk("BAD", "1m", 60000, 1, "1"),
                     mk("BTCUSDT", "1m", 120000, 1, "1")};
    assert_int_equal(kf__sink_sqlite.write(s, b, 3, g_err, sizeof g_err), KF_ERR_SINK);
    assert_non_null(strstr(g_err, p));
    assert_non_null(strstr(g_err, "injected failure"));
    assert_string_equal(kft_db_text(db, "SELECT count(*) FROM klines"), "0");
    /* the connection is usable again afterwards */
    assert_int_equal(kf__sink_sqlite.write(s, b, 1, g_err, sizeof g_err), KF_OK);
    assert_string_equal(kft_db_text(db, "SELECT count(*) FROM klines"), "1");
    sqlite3_close(db);
    kf__sink_sqlite.close(s);
}

static void test_sqlite_last_closed(void **st)
{
    (void)st;
    void *s = sq_open_ok(path_in("last.db"));
    int64_t t = -1;
    int found = -1;
    assert_int_equal(
        kf__sink_sqlite.last_closed(s, "BTCUSDT", "1m", &t, &found, g_err, sizeof g_err), KF_OK);
    assert_int_equal(found, 0);
    kf_kline b[5] = {mk("BTCUSDT", "1m", 60000, 1, "1"), mk("BTCUSDT", "1m", 180000, 1, "1"),
                     mk("BTCUSDT", "1m", 240000, 0, "1"), mk("BTCUSDT", "1M", 999960000, 1, "1"),
                     mk("ETHUSDT", "1m", 300000, 1, "1")};
    assert_int_equal(kf__sink_sqlite.write(s, b, 5, g_err, sizeof g_err), KF_OK);
    assert_int_equal(
        kf__sink_sqlite.last_closed(s, "BTCUSDT", "1m", &t, &found, g_err, sizeof g_err), KF_OK);
    assert_int_equal(found, 1);
    assert_int_equal(t, 180000);
    assert_int_equal(
        kf__sink_sqlite.last_closed(s, "BTCUSDT", "1M", &t, &found, g_err, sizeof g_err), KF_OK);
    assert_int_equal(found, 1);
    assert_int_equal(t, 999960000);
    assert_int_equal(
        kf__sink_sqlite.last_closed(s, "XRPUSDT", "1m", &t, &found, g_err, sizeof g_err), KF_OK);
    assert_int_equal(found, 0);
    kf__sink_sqlite.close(s);
}

static void expect_open_fails(const kf__sink_ops *ops, const char *target, const char *want1,
                              const char *want2)
{
    void *s = (void *)1;
    g_err[0] = 0;
    kf_err rc = ops->open(target, &s, g_err, sizeof g_err);
    if (rc == KF_OK)
        fail_msg("open %s:%s succeeded", ops->scheme, target);
    assert_null(s);
    if (!strstr(g_err, target) || !strstr(g_err, ops->scheme) || !strstr(g_err, want1) ||
        (want2 && !strstr(g_err, want2)))
        fail_msg("message \"%s\" lacks path or \"%s\"/\"%s\"", g_err, want1, want2 ? want2 : "");
}

static void test_sqlite_rejects(void **st)
{
    (void)st;
    /* missing directory */
    void *s = NULL;
    assert_int_equal(kf__sink_sqlite.open("/nonexistent/dir/x.db", &s, g_err, sizeof g_err),
                     KF_ERR_SINK);
    assert_string_equal(g_err, "sqlite:/nonexistent/dir/x.db: unable to open database file");

    /* a text file */
    const char *junk = path_in("junk.db");
    FILE *f = fopen(junk, "w");
    for (int i = 0; i < 200; i++)
        fputs("this is not a database, just some text that is long enough\n", f);
    fclose(f);
    expect_open_fails(&kf__sink_sqlite, junk, "not a database", NULL);

    /* someone else's klines table */
    const char *other = path_in("other.db");
    sqlite3 *db = db_open(other);
    db_exec(db, "CREATE TABLE klines(symbol TEXT, open_time INTEGER, price REAL)");
    sqlite3_close(db);
    expect_open_fails(&kf__sink_sqlite, other, "incompatible", "klines");

    /* same names, a decimal stored as REAL */
    const char *real = path_in("real.db");
    db = db_open(real);
    db_exec(db, "CREATE TABLE klines(symbol TEXT NOT NULL, interval TEXT NOT NULL, open_time "
                "INTEGER NOT NULL, close_time INTEGER NOT NULL, open REAL NOT NULL, high TEXT "
                "NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL, volume TEXT NOT NULL, "
                "quote_volume TEXT NOT NULL, trades INTEGER NOT NULL, taker_buy_base TEXT NOT "
                "NULL, taker_buy_quote TEXT NOT NULL, closed INTEGER NOT NULL, PRIMARY "
                "KEY(symbol, interval, open_time))");
    sqlite3_close(db);
    expect_open_fails(&kf__sink_sqlite, real, "column 5", "open REAL");

    /* a future schema version */
    const char *future = path_in("future.db");
    s = sq_open_ok(future);
    kf__sink_sqlite.close(s);
    db = db_open(future);
    db_exec(db, "UPDATE meta SET value = '3' WHERE key = 'schema_version'");
    sqlite3_close(db);
    expect_open_fails(&kf__sink_sqlite, future, "schema_version", "\"3\"");

    /* a directory */
    expect_open_fails(&kf__sink_sqlite, g_dir, "unable to open", NULL);
}

/* ---- jsonl / csv ---- */

static void *lf_open_ok(const kf__sink_ops *ops, const char *target)
{
    void *s = NULL;
    if (ops->open(target, &s, g_err, sizeof g_err) != KF_OK)
        fail_msg("open %s:%s: %s", ops->scheme, target, g_err);
    return s;
}

/* Expected file text for rows via fmt, each + "\n". */
static void append_rows(char *out, size_t cap, kf__line_fmt fmt, const kf_kline *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char line[KF_KLINE_JSON_MAX];
        assert_true(fmt(&rows[i], line, sizeof line) > 0);
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s\n", line);
    }
}

static void test_jsonl_lines(void **st)
{
    (void)st;
    const char *p = path_in("out.jsonl");
    kf_kline rows[4] = {mk("BTCUSDT", "1m", 60000, 1, "1.10"), mk("BTCUSDT", "1m", 120000, 0, "2"),
                        mk("ETHUSDT", "1m", 60000, 1, "0.00000"),
                        mk("BTCUSDT", "1m", 120000, 1, "3")};
    void *s = lf_open_ok(&kf__sink_jsonl, p);
    assert_int_equal(kf__sink_jsonl.write(s, rows, 2, g_err, sizeof g_err), KF_OK);
    assert_int_equal(kf__sink_jsonl.flush(s, g_err, sizeof g_err), KF_OK);
    static char want[8192];
    want[0] = 0;
    append_rows(want, sizeof want, kf_kline_to_json, rows, 2);
    char *got = slurp(p);
    assert_string_equal(got, want);
    free(got);
    kf__sink_jsonl.close(s);

    /* appending, and a line cut by a crash is ended first */
    FILE *f = fopen(p, "a");
    fputs("{\"symbol\":\"BTCU", f);
    fclose(f);
    strcat(want, "{\"symbol\":\"BTCU\n");
    s = lf_open_ok(&kf__sink_jsonl, p);
    assert_int_equal(kf__sink_jsonl.write(s, rows + 2, 2, g_err, sizeof g_err), KF_OK);
    kf__sink_jsonl.close(s); /* close without flush: nothing promised */
    s = lf_open_ok(&kf__sink_jsonl, p);
    assert_int_equal(kf__sink_jsonl.write(s, rows + 2, 2, g_err, sizeof g_err), KF_OK);
    assert_int_equal(kf__sink_jsonl.flush(s, g_err, sizeof g_err), KF_OK);
    kf__sink_jsonl.close(s);
    append_rows(want, sizeof want, kf_kline_to_json, rows + 2, 2);
    got = slurp(p);
    assert_string_equal(got, want);
    /* 2 rows, the ended partial line, 2 rows */
    char *save = NULL;
    int n = 0;
    for (char *line = strtok_r(got, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        n++;
    assert_int_equal(n, 5);
    free(got);
}

static void test_csv_header_once(void **st)
{
    (void)st;
    const char *p = path_in("out.csv");
    kf_kline rows[3] = {mk("BTCUSDT", "1m", 60000, 1, "83091.60"),
                        mk("BTCUSDT", "5m", 300000, 0, "0.01731"), mk("a,b", "1m", 0, 1, "1")};
    void *s = lf_open_ok(&kf__sink_csv, p);
    assert_int_equal(kf__sink_csv.write(s, rows, 2, g_err, sizeof g_err), KF_OK);
    assert_int_equal(kf__sink_csv.flush(s, g_err, sizeof g_err), KF_OK);
    kf__sink_csv.close(s);
    s = lf_open_ok(&kf__sink_csv, p);
    assert_int_equal(kf__sink_csv.write(s, rows + 2, 1, g_err, sizeof g_err), KF_OK);
    assert_int_equal(kf__sink_csv.flush(s, g_err, sizeof g_err), KF_OK);
    kf__sink_csv.close(s);
    char *got = slurp(p);
    char *save = NULL;
    const char *want[] = {
        KF__CSV_HEADER,
        "BTCUSDT,1m,60000,119999,8153633367,8153634395,83084.90,83091.70,83051.20,83091.60,"
        "13.551,1125714.73960,1027,6.426,533856.66860,true,61234",
        "BTCUSDT,5m,300000,359999,8153633367,8153634395,83084.90,83091.70,83051.20,0.01731,"
        "13.551,1125714.73960,1027,6.426,533856.66860,false,301234",
        "\"a,b\",1m,0,59999,8153633367,8153634395,83084.90,83091.70,83051.20,1,13.551,"
        "1125714.73960,1027,6.426,533856.66860,true,1234",
    };
    int i = 0;
    for (char *line = strtok_r(got, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        assert_true(i < 4);
        assert_string_equal(line, want[i]);
        i++;
    }
    assert_int_equal(i, 4);
    free(got);
}

static void test_linefile_write_errors(void **st)
{
    (void)st;
    /* /dev/full takes the open; the flush reports ENOSPC and keeps the bytes for a retry */
    kf_kline k = mk("BTCUSDT", "1m", 60000, 1, "1");
    void *s = lf_open_ok(&kf__sink_jsonl, "/dev/full");
    assert_int_equal(kf__sink_jsonl.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    assert_int_equal(kf__sink_jsonl.flush(s, g_err, sizeof g_err), KF_ERR_IO);
    assert_string_equal(g_err, "jsonl:/dev/full: write: No space left on device");
    assert_int_equal(kf__sink_jsonl.flush(s, g_err, sizeof g_err), KF_ERR_IO);
    /* past 64 KiB pending, write() itself drains and refuses the whole batch */
    kf_err rc = KF_OK;
    for (int i = 0; i < 1000 && rc == KF_OK; i++)
        rc = kf__sink_jsonl.write(s, &k, 1, g_err, sizeof g_err);
    assert_int_equal(rc, KF_ERR_IO);
    kf__sink_jsonl.close(s);

    s = lf_open_ok(&kf__sink_csv, "/dev/full"); /* header pending: a device is "empty" */
    assert_int_equal(kf__sink_csv.flush(s, g_err, sizeof g_err), KF_ERR_IO);
    assert_string_equal(g_err, "csv:/dev/full: write: No space left on device");
    kf__sink_csv.close(s);

    expect_open_fails(&kf__sink_jsonl, "/nonexistent/dir/x.jsonl", "open: No such file", NULL);
    expect_open_fails(&kf__sink_csv, "/nonexistent/dir/x.csv", "open: No such file", NULL);
    expect_open_fails(&kf__sink_jsonl, g_dir, "Is a directory", NULL);
    if (geteuid() != 0) { /* root ignores modes */
        const char *ro = path_in("ro.jsonl");
        FILE *f = fopen(ro, "w");
        fclose(f);
        chmod(ro, 0444);
        expect_open_fails(&kf__sink_jsonl, ro, "open: Permission denied", NULL);
    }

    /* bad decimal: refused whole, nothing half-appended */
    const char *p = path_in("bad.jsonl");
    s = lf_open_ok(&kf__sink_jsonl, p);
    kf_kline b[2] = {k, k};
    b[1].volume.scale = 40;
    assert_int_equal(kf__sink_jsonl.write(s, b, 2, g_err, sizeof g_err), KF_ERR_INVALID_ARG);
    assert_int_equal(kf__sink_jsonl.flush(s, g_err, sizeof g_err), KF_OK);
    kf__sink_jsonl.close(s);
    char *got = slurp(p);
    assert_string_equal(got, "");
    free(got);

    /* stdout: opens and closes without touching fd 1 */
    s = lf_open_ok(&kf__sink_jsonl, "-");
    assert_int_equal(kf__sink_jsonl.flush(s, g_err, sizeof g_err), KF_OK);
    kf__sink_jsonl.close(s);
    assert_true(write(STDOUT_FILENO, "", 0) == 0);
}

/* ---- what a store holds, read back at start ---- */

typedef struct times_seen {
    int64_t t[64];
    size_t n;
    size_t stop_after; /* 0: never stop */
} times_seen;

static int collect(void *ud, int64_t t)
{
    times_seen *ts = ud;
    assert_true(ts->n < 64);
    ts->t[ts->n++] = t;
    return ts->stop_after && ts->n == ts->stop_after;
}

/* The open times of the stream's closed rows from `from`, via the sink's stored(). */
static size_t stored_of(const kf__sink_ops *ops, void *s, const char *sym, const char *iv,
                        int64_t from, times_seen *ts)
{
    memset(ts, 0, sizeof *ts);
    assert_int_equal(ops->stored(s, sym, iv, from, collect, ts, g_err, sizeof g_err), KF_OK);
    return ts->n;
}

static void test_sqlite_stored_and_cover(void **st)
{
    (void)st;
    const char *p = path_in("cover.db");
    void *s = sq_open_ok(p);
    kf_kline rows[5] = {mk("BTCUSDT", "1m", 300000, 1, "1"), mk("BTCUSDT", "1m", 60000, 1, "1"),
                        mk("BTCUSDT", "1m", 120000, 0, "1"), /* open: not held */
                        mk("BTCUSDT", "1m", 240000, 1, "1"), mk("BTCUSDT", "5m", 60000, 1, "1")};
    assert_int_equal(kf__sink_sqlite.write(s, rows, 5, g_err, sizeof g_err), KF_OK);
    times_seen ts;
    assert_int_equal(stored_of(&kf__sink_sqlite, s, "BTCUSDT", "1m", INT64_MIN, &ts), 3);
    assert_true(ts.t[0] == 60000 && ts.t[1] == 240000 && ts.t[2] == 300000); /* ascending */
    assert_int_equal(stored_of(&kf__sink_sqlite, s, "BTCUSDT", "1m", 240000, &ts), 2);
    assert_int_equal(stored_of(&kf__sink_sqlite, s, "ETHUSDT", "1m", INT64_MIN, &ts), 0);
    memset(&ts, 0, sizeof ts);
    ts.stop_after = 1; /* the walk stops when asked */
    assert_int_equal(
        kf__sink_sqlite.stored(s, "BTCUSDT", "1m", INT64_MIN, collect, &ts, g_err, sizeof g_err),
        KF_OK);
    assert_int_equal(ts.n, 1);

    int64_t from = 0, to = 0;
    int found = 1;
    assert_int_equal(
        kf__sink_sqlite.get_cover(s, "BTCUSDT", "1m", &from, &to, &found, g_err, sizeof g_err),
        KF_OK);
    assert_int_equal(found, 0);
    kf__cover c[2] = {{"BTCUSDT", "1m", 60000, 60000}, {"BTCUSDT", "5m", 0, 300000}};
    assert_int_equal(kf__sink_sqlite.put_cover(s, c, 2, g_err, sizeof g_err), KF_OK);
    c[0].to = 300000; /* replaces the stream's range */
    assert_int_equal(kf__sink_sqlite.put_cover(s, c, 1, g_err, sizeof g_err), KF_OK);
    kf__sink_sqlite.close(s);
    s = sq_open_ok(p);
    assert_int_equal(
        kf__sink_sqlite.get_cover(s, "BTCUSDT", "1m", &from, &to, &found, g_err, sizeof g_err),
        KF_OK);
    assert_true(found && from == 60000 && to == 300000);
    kf__sink_sqlite.close(s);
}

/* A version 1 store (before coverage) is brought to version 2 in place, its rows kept. */
static void test_sqlite_migrates_version_1(void **st)
{
    (void)st;
    const char *p = path_in("v1.db");
    void *s = sq_open_ok(p);
    kf_kline k = mk("BTCUSDT", "1m", 60000, 1, "7");
    assert_int_equal(kf__sink_sqlite.write(s, &k, 1, g_err, sizeof g_err), KF_OK);
    kf__sink_sqlite.close(s);
    sqlite3 *db = db_open(p);
    db_exec(db, "DROP TABLE coverage");
    db_exec(db, "UPDATE meta SET value = '1' WHERE key = 'schema_version'");
    sqlite3_close(db);
    s = sq_open_ok(p);
    kf__cover c = {"BTCUSDT", "1m", 60000, 60000};
    assert_int_equal(kf__sink_sqlite.put_cover(s, &c, 1, g_err, sizeof g_err), KF_OK);
    kf__sink_sqlite.close(s);
    db = db_open(p);
    assert_string_equal(kft_db_text(db, "SELECT value FROM meta WHERE key='schema_version'"), "2");
    assert_string_equal(kft_db_text(db, "SELECT close FROM klines"), "7");
    assert_string_equal(kft_db_text(db, "SELECT to_time FROM coverage"), "60000");
    sqlite3_close(db);
}

/* A store that can only be opened read-only is refused at open, with the reason. As root the
 * file's mode does not stop writes, so the check runs as an unprivileged user there. */
static void test_sqlite_read_only_refused(void **st)
{
    (void)st;
    const char *p = path_in("ro.db");
    void *s = sq_open_ok(p);
    kf__sink_sqlite.close(s);
    assert_int_equal(chmod(p, 0444), 0);
    assert_int_equal(chmod(g_dir, 0755), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(3);
        void *r = NULL;
        kf_err e = kf__sink_sqlite.open(p, &r, g_err, sizeof g_err);
        fprintf(stderr, "read-only store: %s\n", g_err);
        _exit(e == KF_ERR_SINK && strstr(g_err, "read-only") && strstr(g_err, p) ? 0 : 1);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A store whose pages are corrupt: reading what it holds fails with SQLite's reason instead of
 * answering "nothing there" (which would resume from the wrong place). */
static void test_sqlite_corrupt_pages_fail_reads(void **st)
{
    (void)st;
    const char *p = path_in("corrupt.db");
    void *s = sq_open_ok(p);
    for (int64_t b = 0; b < 40; b++) { /* enough rows for several pages */
        kf_kline rows[100];
        for (int i = 0; i < 100; i++)
            rows[i] = mk("BTCUSDT", "1m", (b * 100 + i) * 60000, 1, "1");
        assert_int_equal(kf__sink_sqlite.write(s, rows, 100, g_err, sizeof g_err), KF_OK);
    }
    kf__sink_sqlite.close(s);
    sqlite3 *db = db_open(p);
    db_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    sqlite3_close(db);
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    assert_true(size > 16 * 4096);
    char junk[4096];
    memset(junk, 0xA5, sizeof junk);
    for (long off = 4 * 4096; off + 4096 < size; off += 2 * 4096) { /* every other page */
        fseek(f, off, SEEK_SET);
        fwrite(junk, 1, sizeof junk, f);
    }
    fclose(f);
    s = NULL;
    if (kf__sink_sqlite.open(p, &s, g_err, sizeof g_err) != KF_OK) {
        assert_non_null(strstr(g_err, "malformed")); /* refused at open: fine too */
        return;
    }
    times_seen ts;
    memset(&ts, 0, sizeof ts);
    kf_err e =
        kf__sink_sqlite.stored(s, "BTCUSDT", "1m", INT64_MIN, collect, &ts, g_err, sizeof g_err);
    assert_int_equal(e, KF_ERR_SINK);
    assert_non_null(strstr(g_err, "malformed"));
    kf__sink_sqlite.close(s);
}

/* A line file is read back at open: stored() answers from it (holes included), and after the
 * start a closed row the file already holds is not written again. */
static void check_linefile_index(const kf__sink_ops *ops, const char *name)
{
    char target[512];
    snprintf(target, sizeof target, "%s", path_in(name));
    void *s = lf_open_ok(ops, target);
    kf_kline rows[6] = {mk("BTCUSDT", "1m", 60000, 1, "1"),  mk("BTCUSDT", "1m", 120000, 1, "2"),
                        mk("BTCUSDT", "1m", 300000, 1, "5"), mk("BTCUSDT", "1m", 360000, 0, "6"),
                        mk("ETHUSDT", "5m", 0, 1, "9"),      mk("BTCUSDT", "1m", 120000, 1, "2")};
    times_seen ts;
    assert_int_equal(stored_of(ops, s, "BTCUSDT", "1m", INT64_MIN, &ts), 0); /* new: nothing */
    assert_int_equal(ops->write(s, rows, 6, g_err, sizeof g_err), KF_OK);
    assert_int_equal(ops->flush(s, g_err, sizeof g_err), KF_OK);
    ops->close(s);
    FILE *f = fopen(target, "a"); /* a line cut by a crash, and garbage */
    fputs("garbage line\n{\"symbol\":\"BTCUSDT\",\"interval\":\"1m\",\"open_t", f);
    fclose(f);

    s = lf_open_ok(ops, target);
    assert_int_equal(stored_of(ops, s, "BTCUSDT", "1m", INT64_MIN, &ts), 3);
    assert_true(ts.t[0] == 60000 && ts.t[1] == 120000 && ts.t[2] == 300000);
    assert_int_equal(stored_of(ops, s, "BTCUSDT", "1m", 100000, &ts), 2);
    assert_int_equal(stored_of(ops, s, "ETHUSDT", "5m", INT64_MIN, &ts), 1);
    /* after the start: 180000 and 240000 fill the hole, 120000 and 300000 are held already,
     * 420000 is new, the open update is always written */
    kf_kline more[5] = {mk("BTCUSDT", "1m", 120000, 1, "2"), mk("BTCUSDT", "1m", 180000, 1, "3"),
                        mk("BTCUSDT", "1m", 240000, 1, "4"), mk("BTCUSDT", "1m", 300000, 1, "5"),
                        mk("BTCUSDT", "1m", 420000, 1, "7")};
    assert_int_equal(ops->write(s, more, 5, g_err, sizeof g_err), KF_OK);
    assert_int_equal(ops->flush(s, g_err, sizeof g_err), KF_OK);
    ops->close(s);
    s = lf_open_ok(ops, target);
    assert_int_equal(stored_of(ops, s, "BTCUSDT", "1m", INT64_MIN, &ts), 6);
    ops->close(s);
    char *text = slurp(target);
    size_t lines = 0;
    for (char *c = text; *c; c++)
        lines += *c == '\n';
    /* header (csv) + 6 + garbage + cut line + 3 new */
    assert_int_equal(lines, (ops == &kf__sink_csv ? 1u : 0u) + 6 + 2 + 3);
    free(text);
}

static void test_linefile_index(void **st)
{
    (void)st;
    check_linefile_index(&kf__sink_jsonl, "idx.jsonl");
    check_linefile_index(&kf__sink_csv, "idx.csv");
    void *s = lf_open_ok(&kf__sink_jsonl, "-"); /* standard output: cannot tell */
    times_seen ts;
    assert_int_equal(
        kf__sink_jsonl.stored(s, "BTCUSDT", "1m", INT64_MIN, collect, &ts, g_err, sizeof g_err),
        KF_ERR_NOT_FOUND);
    kf__sink_jsonl.close(s);
}

static void test_line_keys(void **st)
{
    (void)st;
    kf__line_key k;
    char line[KF_KLINE_JSON_MAX];
    kf_kline r = mk("币安人生USDT", "1M", 1769904000000LL, 1, "1");
    size_t n = kf_kline_to_json(&r, line, sizeof line);
    assert_true(kf__jsonl_key(line, n, &k));
    assert_string_equal(k.symbol, "币安人生USDT");
    assert_int_equal(k.interval, 14);
    assert_int_equal(k.open_time, 1769904000000LL);
    assert_true(k.closed);
    n = kf__kline_to_csv(&r, line, sizeof line);
    assert_true(kf__csv_key(line, n, &k));
    assert_string_equal(k.symbol, "币安人生USDT");
    r.closed = false;
    n = kf__kline_to_csv(&r, line, sizeof line);
    assert_true(kf__csv_key(line, n, &k));
    assert_false(k.closed);
    /* a line cut before its last field is refused (a cut inside event_time, the last field,
     * leaves every key field whole) */
    for (size_t cut = 0; cut <= (size_t)(strrchr(line, ',') - line); cut++)
        assert_false(kf__csv_key(line, cut, &k));
    n = kf_kline_to_json(&r, line, sizeof line);
    for (size_t cut = 0; cut < n; cut++)
        assert_false(kf__jsonl_key(line, cut, &k));
    assert_false(kf__csv_key(KF__CSV_HEADER, strlen(KF__CSV_HEADER), &k));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test_setup_teardown(test_sqlite_create_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_exact_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_upsert_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_batch_is_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_last_closed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jsonl_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_header_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linefile_write_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_stored_and_cover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_migrates_version_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_read_only_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sqlite_corrupt_pages_fail_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linefile_index, setup, teardown),
        cmocka_unit_test(test_line_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
