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
    assert_null(kf__sink_lookup("postgres:db", &t));
    assert_null(kf__sink_lookup("SQLITE:x.db", &t));
    assert_null(kf__sink_lookup("sqlit:x.db", &t));
    assert_null(kf__sink_lookup("sqlite3:x.db", &t));
    const kf__sink_ops *all[] = {&kf__sink_sqlite, &kf__sink_jsonl, &kf__sink_csv};
    for (int i = 0; i < 3; i++) {
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
    assert_string_equal(kft_db_text(db, "SELECT value FROM meta WHERE key='schema_version'"), "1");
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
    db_exec(db, "UPDATE meta SET value = '2' WHERE key = 'schema_version'");
    sqlite3_close(db);
    expect_open_fails(&kf__sink_sqlite, future, "schema_version", "\"2\"");

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
