/*
 * The store-vs-truth comparison (tests/common/compare.h and the klinefeed-compare program) can
 * fail: a SQLite store is built by hand from the simulator's truth for two streams and compares
 * clean; then one row is deleted, one decimal's text altered (same number, other text) and one
 * row the truth does not have is inserted, and the comparison counts exactly one missing, one
 * differing and one extra candle, and the program says so and exits 1.
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "compare.h"
#include "kftest.h"
#include "sim_proc.h"
#include "store_text.h"

#define START 1767225600000LL      /* the simulator's clock at startup (its default) */
#define FROM (START - 3 * 3600000) /* a window in the past: the truth is fixed */
#define TO (START - 3600000)

static const char *const symbols[] = {"BTCUSDT", "ETHUSDT", NULL};
static const char *const intervals[] = {"1m", "5m", NULL};
/* the two streams of the store: BTCUSDT 1m (120 candles in the window), ETHUSDT 5m (24) */
static const char *const stream_sym[] = {"BTCUSDT", "ETHUSDT"};
static const char *const stream_iv[] = {"1m", "5m"};

static void exec_sql(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, msg);
    sqlite3_free(msg);
    assert_int_equal(rc, SQLITE_OK);
}

/* The truth rows of (sym, iv) with open times in [FROM, TO) into the store, closed. */
static void insert_truth(int port, sqlite3 *db, const char *sym, const char *iv)
{
    kft_text t = {0};
    kft_exchange_text(port, "/sim/truth", sym, iv, FROM, TO - 1, &t);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO klines VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,1)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (char *line = t.p, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = 0;
        char *f[11];
        int n = 0;
        for (char *p = line, *bar; n < 11; p = bar + 1) {
            f[n++] = p;
            if (!(bar = strchr(p, '|')))
                break;
            *bar = 0;
        }
        assert_int_equal(n, 11);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, sym, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, iv, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, strtoll(f[0], NULL, 10));
        sqlite3_bind_int64(st, 4, strtoll(f[1], NULL, 10));
        for (int i = 2; i < 8; i++)
            sqlite3_bind_text(st, i + 3, f[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 11, strtoll(f[8], NULL, 10));
        sqlite3_bind_text(st, 12, f[9], -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 13, f[10], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    }
    sqlite3_finalize(st);
    kft_text_free(&t);
}

/* Runs klinefeed-compare with args appended; returns its exit code, its stdout in out. */
static int run_tool(const char *args, char *out, size_t cap)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", KF_COMPARE_PATH, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void expect(const kft_cmp *c, size_t missing, size_t extra, size_t differing)
{
    assert_int_equal(c->streams, 2);
    assert_int_equal(c->checked, 120 + 24);
    assert_int_equal(c->missing, missing);
    assert_int_equal(c->extra, extra);
    assert_int_equal(c->differing, differing);
}

static void test_compare_counts_every_kind(void **state)
{
    (void)state;
    kft_sim *sim = kft_sim_run(NULL);
    int port = kft_sim_port(sim);
    char *dir = kft_tmpdir();
    assert_non_null(dir);
    char db_path[512], verbose_path[512], err[512];
    snprintf(db_path, sizeof db_path, "%s/compare.db", dir);
    snprintf(verbose_path, sizeof verbose_path, "%s/verbose.txt", dir);

    /* the sink's schema (docs/schema.md) */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    exec_sql(db, "PRAGMA journal_mode=WAL");
    exec_sql(db, "CREATE TABLE klines(symbol TEXT NOT NULL, interval TEXT NOT NULL, open_time "
                 "INTEGER NOT NULL, close_time INTEGER NOT NULL, open TEXT NOT NULL, high TEXT NOT "
                 "NULL, low TEXT NOT NULL, close TEXT NOT NULL, volume TEXT NOT NULL, "
                 "quote_volume TEXT NOT NULL, trades INTEGER NOT NULL, taker_buy_base TEXT NOT "
                 "NULL, taker_buy_quote TEXT NOT NULL, closed INTEGER NOT NULL, PRIMARY "
                 "KEY(symbol, interval, open_time)) WITHOUT ROWID");
    exec_sql(db, "CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)");
    exec_sql(db, "INSERT INTO meta VALUES('schema_version','1')");
    for (int i = 0; i < 2; i++)
        insert_truth(port, db, stream_sym[i], stream_iv[i]);
    /* outside the comparison: an open row (in the window), a closed row before the window */
    exec_sql(db, "INSERT INTO klines VALUES('BTCUSDT','1m',1767214845000,1767214904999,'1','1',"
                 "'1','1','1','1',1,'1','1',0)");
    exec_sql(db, "INSERT INTO klines VALUES('ETHUSDT','5m',1767214500000,1767214799999,'1','1',"
                 "'1','1','1','1',1,'1','1',1)");

    kft_cmp c;
    assert_int_equal(kft_compare_store(port, db_path, symbols, intervals, FROM, TO, NULL, 20, &c,
                                       err, sizeof err),
                     0);
    /* two symbols x {1m, 5m} are four streams; two of them were never stored */
    assert_int_equal(c.streams, 4);
    assert_int_equal(c.checked, 2 * (120 + 24));
    assert_int_equal(c.missing, 120 + 24); /* BTCUSDT 5m, ETHUSDT 1m: nothing stored */
    /* the store's own streams: clean */
    assert_int_equal(
        kft_compare_store(port, db_path, NULL, NULL, FROM, TO, stderr, 20, &c, err, sizeof err), 0);
    expect(&c, 0, 0, 0);

    char args[1024], line[256];
    snprintf(args, sizeof args, "--port %d --db %s --from %lld --to %lld", port, db_path,
             (long long)FROM, (long long)TO);
    assert_int_equal(run_tool(args, line, sizeof line), 0);
    assert_string_equal(line, "compare: streams=2 checked=144 missing=0 extra=0 differing=0\n");

    /* one row gone, one decimal's text altered (the same number), one row the truth lacks */
    exec_sql(db, "DELETE FROM klines WHERE symbol='BTCUSDT' AND interval='1m' AND "
                 "open_time=1767218400000");
    exec_sql(db, "UPDATE klines SET close=close||'0' WHERE symbol='ETHUSDT' AND interval='5m' "
                 "AND open_time=1767219000000");
    exec_sql(db, "INSERT INTO klines SELECT symbol, interval, open_time+30000, close_time+30000, "
                 "open, high, low, close, volume, quote_volume, trades, taker_buy_base, "
                 "taker_buy_quote, closed FROM klines WHERE symbol='BTCUSDT' AND interval='1m' "
                 "AND open_time=1767220200000");
    sqlite3_close(db);

    FILE *v = fopen(verbose_path, "w+");
    assert_non_null(v);
    assert_int_equal(
        kft_compare_store(port, db_path, NULL, NULL, FROM, TO, v, 20, &c, err, sizeof err), 0);
    expect(&c, 1, 1, 1);
    char text[4096];
    rewind(v);
    size_t n = fread(text, 1, sizeof text - 1, v);
    text[n] = 0;
    fclose(v);
    printf("%s", text);
    assert_non_null(strstr(text, "missing BTCUSDT 1m open_time=1767218400000 truth="));
    assert_non_null(strstr(text, "extra BTCUSDT 1m open_time=1767220230000 store="));
    assert_non_null(strstr(text, "differing ETHUSDT 5m open_time=1767219000000 store="));
    /* by symbol: the verbose lines are capped */
    v = fopen(verbose_path, "w+");
    assert_non_null(v);
    const char *btc[] = {"BTCUSDT", NULL};
    assert_int_equal(
        kft_compare_store(port, db_path, btc, NULL, FROM, TO, v, 1, &c, err, sizeof err), 0);
    assert_int_equal(c.streams, 1);
    assert_int_equal(c.checked, 120);
    assert_int_equal(c.missing + c.extra, 2);
    rewind(v);
    n = fread(text, 1, sizeof text - 1, v);
    text[n] = 0;
    fclose(v);
    assert_non_null(strchr(text, '\n'));
    assert_null(strchr(strchr(text, '\n') + 1, '\n'));

    assert_int_equal(run_tool(args, line, sizeof line), 1);
    assert_string_equal(line, "compare: streams=2 checked=144 missing=1 extra=1 differing=1\n");
    printf("compare test: %s", line);

    /* errors: a store that is not there, a flag that is wrong, nothing to check */
    assert_int_equal(kft_compare_store(port, "/nonexistent/x.db", NULL, NULL, FROM, TO, NULL, 0, &c,
                                       err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "/nonexistent/x.db"));
    snprintf(args, sizeof args, "--port %d --db %s --from soon", port, db_path);
    assert_int_equal(run_tool(args, line, sizeof line), 2);
    snprintf(args, sizeof args, "--port %d --db %s --from %lld --to %lld", port, db_path,
             (long long)TO, (long long)TO);
    assert_int_equal(run_tool(args, line, sizeof line), 1);
    assert_string_equal(line, "compare: streams=2 checked=0 missing=0 extra=0 differing=0\n");

    unlink(verbose_path);
    unlink(db_path);
    rmdir(dir);
    free(dir);
}

/* The store's text of a stream (kft_store_text) with rows longer than the room the helper keeps
 * ahead (odd text in a store): every row read back whole, nothing written past the buffer. */
static void test_store_text_long_rows(void **state)
{
    (void)state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    exec_sql(db, "CREATE TABLE klines(symbol TEXT NOT NULL, interval TEXT NOT NULL, open_time "
                 "INTEGER NOT NULL, close_time INTEGER NOT NULL, open TEXT NOT NULL, high TEXT NOT "
                 "NULL, low TEXT NOT NULL, close TEXT NOT NULL, volume TEXT NOT NULL, "
                 "quote_volume TEXT NOT NULL, trades INTEGER NOT NULL, taker_buy_base TEXT NOT "
                 "NULL, taker_buy_quote TEXT NOT NULL, closed INTEGER NOT NULL, PRIMARY "
                 "KEY(symbol, interval, open_time)) WITHOUT ROWID");
    /* 40 rows of about 4 KB: the 17th finds 1.5 KB of room left in the first 64 KiB */
    exec_sql(db, "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM n WHERE i<39) "
                 "INSERT INTO klines SELECT 'BTCUSDT','1m',i*60000,i*60000+59999,"
                 "'1.'||printf('%.4000c','7'),'2','3','4','5','6',7,'8','9',1 FROM n");
    kft_text t = {0};
    int64_t first = -1, last = -1;
    assert_int_equal(kft_store_text(db, "BTCUSDT", "1m", &t, &first, &last), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(t.rows, 40);
    assert_int_equal(first, 0);
    assert_int_equal(last, 39 * 60000);
    size_t lines = 0;
    for (char *p = t.p; (p = strchr(p, '\n')); p++)
        lines++;
    assert_int_equal(lines, 40);
    assert_int_equal(strlen(t.p), t.len);
    assert_non_null(strstr(t.p, "2340000|2399999|1.777"));
    kft_text_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_compare_counts_every_kind, kft_sim_teardown),
        cmocka_unit_test(test_store_text_long_rows)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
