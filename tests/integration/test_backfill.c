/*
 * `klinefeed backfill` against klinefeed-sim, run as a child process: history lands in
 * SQLite equal row-for-row to the simulator's REST rows without the open candle; a second
 * run fetches nothing; SIGTERM then a resumed run completes the store; a tight weight
 * limit is kept (no 429, the simulator's per-minute weight never above it); an unknown
 * symbol exits 1 naming it; bad flags exit 2. And the fetcher itself (kf__fetch_klines): a
 * request the exchange never answers is given up as soon as the fetch is cancelled.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "backfill/fetch.h"
#include "cli_proc.h"
#include "kftest.h"
#include "sim_proc.h"

/* 2026-01-01T00:00:00Z, the simulator's default start. */
#define SIM_START "1767225600000"
#define DAY_MS 86400000LL

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char paths[8][512];
    static int k;
    char *p = paths[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc((size_t)n + 1, 1);
    assert_non_null(b);
    if (n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n)
        b[0] = 0;
    fclose(f);
    return b;
}

static pid_t cli_spawn(const char *const *args)
{
    return kft_cli_spawn(args, NULL, tmp_path("cli.out"), tmp_path("cli.err"), NULL, NULL);
}

/* Runs the CLI to completion; returns the exit code, *err its stderr (free it). */
static int cli_run(char **err, const char *const *args)
{
    int code = kft_cli_wait(cli_spawn(args), 240000);
    *err = slurp(tmp_path("cli.err"));
    return code;
}

/* The simulated clock, from /sim/state (free: /fapi/v1/time would cost weight). */
static int64_t sim_time(int port)
{
    static kft_sim_state st;
    assert_true(kft_sim_state_get(port, &st));
    return st.now;
}

static long long sql_int(const char *db_path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* FNV-1a over every stored row, in key order: "unchanged" means this is equal. */
static uint64_t store_hash(const char *db_path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT * FROM klines ORDER BY symbol, interval, "
                                        "open_time",
                                        -1, &st, NULL),
                     SQLITE_OK);
    uint64_t h = 1469598103934665603ULL;
    while (sqlite3_step(st) == SQLITE_ROW)
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const unsigned char *t = sqlite3_column_text(st, c);
            for (; t && *t; t++)
                h = (h ^ *t) * 1099511628211ULL;
            h = (h ^ 0xff) * 1099511628211ULL;
        }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return h;
}

/*
 * The stored rows of (symbol, interval) equal, text for text, the simulator's REST rows
 * from `from` up to the newest stored one; the newest stored row was closed when the run
 * ended (close < t_after) and the next one was not yet closed when it began (so nothing
 * closed is missing at the end). Returns the row count.
 */
static long check_stream(int port, const char *db_path, const char *sym, const char *iv,
                         int64_t iv_ms, int64_t from, int64_t t_before, int64_t t_after)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT open_time, open, high, low, close, volume, close_time, "
                           "quote_volume, trades, taker_buy_base, taker_buy_quote, closed "
                           "FROM klines WHERE symbol = ?1 AND interval = ?2 ORDER BY open_time",
                           -1, &st, NULL),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, sym, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, iv, -1, SQLITE_STATIC);
    size_t cap = 1 << 20;
    char *body = malloc(cap);
    assert_non_null(body);
    long n = 0;
    int64_t cursor = from, last_open = -1, last_close = -1;
    char *row = NULL; /* next sim row, inside body */
    for (;;) {
        if (sqlite3_step(st) != SQLITE_ROW)
            break;
        char mine[512];
        snprintf(mine, sizeof mine,
                 "[%lld,\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",%lld,\"%s\",%lld,\"%s\",\"%s\",\"0\"]",
                 (long long)sqlite3_column_int64(st, 0), sqlite3_column_text(st, 1),
                 sqlite3_column_text(st, 2), sqlite3_column_text(st, 3), sqlite3_column_text(st, 4),
                 sqlite3_column_text(st, 5), (long long)sqlite3_column_int64(st, 6),
                 sqlite3_column_text(st, 7), (long long)sqlite3_column_int64(st, 8),
                 sqlite3_column_text(st, 9), sqlite3_column_text(st, 10));
        assert_int_equal(sqlite3_column_int(st, 11), 1); /* stored closed */
        last_open = sqlite3_column_int64(st, 0);
        last_close = sqlite3_column_int64(st, 6);
        if (!row || *row != '[') {
            char path[256];
            snprintf(path, sizeof path,
                     "/fapi/v1/klines?symbol=%s&interval=%s&startTime=%" PRId64 "&limit=1500", sym,
                     iv, cursor);
            assert_int_equal(kft_http_get(port, path, body, cap), 200);
            assert_true(body[0] == '[' && body[1] == '[');
            row = body + 1;
        }
        char *end = strchr(row, ']');
        assert_non_null(end);
        size_t len = (size_t)(end - row) + 1;
        if (strlen(mine) != len || memcmp(mine, row, len) != 0)
            fail_msg("%s %s row %ld differs:\n  stored %s\n  sim    %.*s", sym, iv, n, mine,
                     (int)len, row);
        cursor = last_open + 1;
        row = end[1] == ',' ? end + 2 : end + 1;
        n++;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(body);
    assert_true(n > 0);
    assert_true(last_close < t_after); /* never the open candle */
    if (iv_ms > 0)
        assert_true(last_open + 2 * iv_ms - 1 >= t_before); /* every closed one is there */
    return n;
}

static const char *sym3[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT"};
static const struct {
    const char *name;
    int64_t ms;
} iv3[] = {{"1m", 60000}, {"1h", 3600000}, {"1d", DAY_MS}};

/* (1) + (2): 3 symbols x (1m, 1h, 1d) over 5 simulated days; then the same again. */
static void test_history_and_rerun(void **state)
{
    (void)state;
    kft_sim *sim = kft_sim_start((const char *const[]){"--start", SIM_START, NULL});
    assert_non_null(sim);
    int port = kft_sim_port(sim);
    char url[64], sink[600], from[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    const char *db = tmp_path("hist.db");
    snprintf(sink, sizeof sink, "sqlite:%s", db);
    int64_t from_ms = 1767225600000LL - 5 * DAY_MS + 7 * 60000; /* not on a day boundary */
    snprintf(from, sizeof from, "%" PRId64, from_ms);
    const char *const args[] = {"backfill",    "--symbols",  "BTCUSDT,ETHUSDT,SOLUSDT",
                                "--intervals", "1m,1h,1d",   "--from",
                                from,          "--rest-url", url,
                                "--sink",      sink,         NULL};
    char *err = NULL;
    int64_t t_before = sim_time(port);
    int code = cli_run(&err, args);
    int64_t t_after = sim_time(port);
    if (code != 0)
        fail_msg("exit %d: %s", code, err);
    assert_non_null(strstr(err, "msg=\"backfill done\""));
    assert_non_null(strstr(err, "http_429=0"));
    free(err);

    long total = 0;
    for (size_t s = 0; s < 3; s++)
        for (size_t i = 0; i < 3; i++) {
            /* the first candle at or after --from */
            int64_t first = (from_ms + iv3[i].ms - 1) / iv3[i].ms * iv3[i].ms;
            long n =
                check_stream(port, db, sym3[s], iv3[i].name, iv3[i].ms, from_ms, t_before, t_after);
            char q[256];
            snprintf(q, sizeof q,
                     "SELECT min(open_time) FROM klines WHERE symbol='%s' AND interval='%s'",
                     sym3[s], iv3[i].name);
            assert_int_equal(sql_int(db, q), first);
            total += n;
        }
    assert_int_equal(sql_int(db, "SELECT count(*) FROM klines"), total);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM klines WHERE closed = 0"), 0);
    printf("# history: %ld rows in 9 streams, equal to the simulator's REST rows\n", total);

    /* (2) again: nothing new, store unchanged (unless a 1m candle closed meanwhile: then
     * exactly the new ones are added, never an old one rewritten) */
    uint64_t h = store_hash(db);
    kft_sim_state st0;
    assert_true(kft_sim_state_get(port, &st0));
    code = cli_run(&err, args);
    if (code != 0)
        fail_msg("exit %d: %s", code, err);
    kft_sim_state st1;
    assert_true(kft_sim_state_get(port, &st1));
    if (sql_int(db, "SELECT count(*) FROM klines") == total) {
        assert_non_null(strstr(err, "nothing new"));
        assert_true(store_hash(db) == h);
        /* exchangeInfo + time only: no kline request */
        assert_int_equal(st1.rest_requests - st0.rest_requests, 2);
    }
    assert_non_null(strstr(err, "http_429=0"));
    free(err);
    kft_sim_stop(sim);
}

/* (3): SIGTERM mid-way (a budget of 30 weight/min makes the first run wait after two pages),
 * exit 0 with the fetched rows stored; a resumed run completes the store, no duplicates. */
static void test_interrupt_resume(void **state)
{
    (void)state;
    kft_sim *sim = kft_sim_start((const char *const[]){"--start", SIM_START, NULL});
    assert_non_null(sim);
    int port = kft_sim_port(sim);
    char url[64], sink[600], from[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    const char *db = tmp_path("resume.db");
    snprintf(sink, sizeof sink, "sqlite:%s", db);
    int64_t from_ms = 1767225600000LL - 12 * DAY_MS;
    snprintf(from, sizeof from, "%" PRId64, from_ms);
    int64_t t_before = sim_time(port);
    pid_t pid = cli_spawn((const char *const[]){"backfill", "--symbols", "ETHUSDT", "--intervals",
                                                "1m", "--from", from, "--rest-url", url, "--sink",
                                                sink, "--weight-budget", "30", NULL});
    struct timespec ts = {1, 500 * 1000 * 1000};
    nanosleep(&ts, NULL);
    kill(pid, SIGTERM);
    int code = kft_cli_wait(pid, 5000); /* promptly: the budget wait is cancelled */
    char *err = slurp(tmp_path("cli.err"));
    if (code != 0)
        fail_msg("exit %d: %s", code, err);
    assert_non_null(strstr(err, "interrupted"));
    free(err);
    long long part = sql_int(db, "SELECT count(*) FROM klines");
    long long want = 12 * 1440;
    printf("# interrupted after %lld of about %lld rows\n", part, want);
    assert_true(part > 0 && part < want);

    code = cli_run(&err,
                   (const char *const[]){"backfill", "--symbols", "ETHUSDT", "--intervals", "1m",
                                         "--from", from, "--rest-url", url, "--sink", sink, NULL});
    int64_t t_after = sim_time(port);
    if (code != 0)
        fail_msg("exit %d: %s", code, err);
    assert_non_null(strstr(err, "resumed=1"));
    free(err);
    long n = check_stream(port, db, "ETHUSDT", "1m", 60000, from_ms, t_before, t_after);
    assert_true(n >= want);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM klines"), n);
    assert_int_equal(sql_int(db, "SELECT (max(open_time) - min(open_time)) / 60000 + 1 FROM "
                                 "klines"),
                     n); /* contiguous: nothing lost, nothing twice */
    kft_sim_stop(sim);
}

/* Polls /sim/state while the CLI runs: the highest weight the simulator saw in each real
 * UTC minute. */
typedef struct weight_watch {
    long minutes[16];
    int64_t minute_id[16];
    int n;
} weight_watch;

static bool weight_state(int port, long *weight, long *requests)
{
    char buf[8192];
    if (kft_http_get(port, "/sim/state", buf, sizeof buf) != 200)
        return false;
    const char *w = strstr(buf, "\"weight_used\":"), *r = strstr(buf, "\"rest_requests\":");
    if (!w || !r)
        return false;
    *weight = strtol(w + 14, NULL, 10);
    *requests = strtol(r + 16, NULL, 10);
    return true;
}

/* (4): --weight-limit 60 on the simulator (published in exchangeInfo, so the fetcher lowers
 * its 2400 to it) and about two minutes of weight: completes, no 429, never above 60. */
static void test_tight_budget(void **state)
{
    (void)state;
    kft_sim *sim =
        kft_sim_start((const char *const[]){"--start", SIM_START, "--weight-limit", "60", NULL});
    assert_non_null(sim);
    int port = kft_sim_port(sim);
    char url[64], sink[600], from[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    const char *db = tmp_path("tight.db");
    snprintf(sink, sizeof sink, "sqlite:%s", db);
    /* 11 pages of 1500 1m rows (weight 110) plus exchangeInfo and two /time (3) */
    int64_t from_ms = 1767225600000LL - 11 * 1500 * 60000LL + 30 * 60000;
    snprintf(from, sizeof from, "%" PRId64, from_ms);
    int64_t t_before = sim_time(port);
    int64_t t0 = kft_now_ms();
    pid_t pid =
        cli_spawn((const char *const[]){"backfill", "--symbols", "BNBUSDT", "--intervals", "1m",
                                        "--from", from, "--rest-url", url, "--sink", sink, NULL});
    weight_watch ww = {0};
    int code;
    long requests = 0;
    while ((code = kft_cli_wait(pid, 0)) < 0) {
        long w, r;
        if (weight_state(port, &w, &r)) {
            int64_t m = (int64_t)time(NULL) / 60;
            if (ww.n == 0 || ww.minute_id[ww.n - 1] != m) {
                if (ww.n < 16)
                    ww.n++;
                ww.minute_id[ww.n - 1] = m;
                ww.minutes[ww.n - 1] = 0;
            }
            if (w > ww.minutes[ww.n - 1])
                ww.minutes[ww.n - 1] = w;
            requests = r;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (kft_now_ms() - t0 > 240000) {
            kill(pid, SIGKILL);
            kft_cli_wait(pid, 5000);
            fail_msg("tight-budget backfill did not finish in 4 minutes");
        }
    }
    int64_t t_after = sim_time(port);
    char *err = slurp(tmp_path("cli.err"));
    if (code != 0)
        fail_msg("exit %d: %s", code, err);
    const char *done = strstr(err, "msg=\"backfill done\"");
    assert_non_null(done);
    assert_non_null(strstr(done, "http_429=0"));
    assert_non_null(strstr(done, "weight_limit=60"));
    const char *wu = strstr(done, "weight_used=");
    assert_non_null(wu);
    long weight_used = strtol(wu + 12, NULL, 10);
    printf("# tight budget: %.1f s, %ld requests, fetcher weight %ld, sim max weight per minute:",
           (double)(kft_now_ms() - t0) / 1000.0, requests, weight_used);
    for (int i = 0; i < ww.n; i++) {
        printf(" %ld", ww.minutes[i]);
        assert_true(ww.minutes[i] <= 60);
    }
    printf("\n");
    assert_true(weight_used >= 110);
    free(err);
    /* (no row-for-row check here: the test's own requests would cost weight) */
    int64_t first = (from_ms + 59999) / 60000 * 60000;
    long long n = sql_int(db, "SELECT count(*) FROM klines");
    assert_int_equal(sql_int(db, "SELECT min(open_time) FROM klines"), first);
    assert_int_equal(sql_int(db, "SELECT (max(open_time) - min(open_time)) / 60000 + 1 FROM "
                                 "klines"),
                     n);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM klines WHERE closed = 0"), 0);
    long long last = sql_int(db, "SELECT max(close_time) FROM klines");
    assert_true(last < t_after && last + 60000 >= t_before);
    kft_sim_stop(sim);
}

/* (5): an unknown symbol exits 1 naming it; bad flags exit 2 with one line. */
/* (5) --symbols ALL: every TRADING USDT perpetual of exchangeInfo, no quarterly, USDC pair or
 * SETTLING symbol; a symbol listed after --from from its first candle (its onboardDate); with
 * --shard, one collector's share. */
static void test_all_symbols(void **state)
{
    (void)state;
    kft_sim *sim = kft_sim_start((const char *const[]){
        "--start", SIM_START, "--speed", "60", "--symbols",
        "AAAUSDT,BBBUSDT,CCCUSDT,DDDUSDT_261225,EEEUSDC", "--delisted", "GGGUSDT", NULL});
    assert_non_null(sim);
    int port = kft_sim_port(sim);
    static char body[KFT_HTTP_BUF];
    assert_int_equal(kft_http_get(port, "/sim/list?symbol=NEWUSDT", body, sizeof body), 200);
    const char *ob = strstr(body, "\"onboardDate\":");
    assert_non_null(ob);
    long long onboard = atoll(ob + 14);
    usleep(3500000); /* 3.5 simulated minutes: closed 1m candles of the new listing */
    char url[64], sink[600], from[32];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    const char *db = tmp_path("all.db");
    snprintf(sink, sizeof sink, "sqlite:%s", db);
    snprintf(from, sizeof from, "%lld", 1767225600000LL - DAY_MS);
    char *err = NULL;
    int code = cli_run(&err, (const char *const[]){"backfill", "--symbols", "ALL", "--intervals",
                                                   "1h,1m", "--from", from, "--rest-url", url,
                                                   "--sink", sink, NULL});
    if (code != 0)
        fail_msg("exit %d: %s", code, err);
    free(err);
    assert_int_equal(sql_int(db, "SELECT count(DISTINCT symbol) FROM klines"), 4);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM klines WHERE symbol NOT IN "
                                 "('AAAUSDT','BBBUSDT','CCCUSDT','NEWUSDT')"),
                     0);
    /* 24 hourly candles of the day before the simulator's start, for each old symbol */
    assert_int_equal(
        sql_int(db, "SELECT count(*) FROM klines WHERE symbol='AAAUSDT' AND interval='1h'"), 24);
    /* the new listing: from its first candle (the minute of its onboardDate), none before */
    long long first =
        sql_int(db, "SELECT min(open_time) FROM klines WHERE symbol='NEWUSDT' AND interval='1m'");
    long long newn =
        sql_int(db, "SELECT count(*) FROM klines WHERE symbol='NEWUSDT' AND interval='1m'");
    assert_true(newn >= 2);
    assert_int_equal(first, onboard);
    printf("# backfill ALL: 4 symbols; NEWUSDT listed at %lld: %lld 1m candles from it\n", onboard,
           newn);

    /* --shard 1/2 and 2/2 together: the same 4 symbols, each once */
    long long n2[2];
    char from10[32]; /* 1m candles from 10 minutes before the start: NEWUSDT has some too */
    snprintf(from10, sizeof from10, "%lld", 1767225600000LL - 600000);
    for (int k = 0; k < 2; k++) {
        char shard[8], path[64];
        snprintf(shard, sizeof shard, "%d/2", k + 1);
        snprintf(path, sizeof path, "all-%d.db", k + 1);
        const char *dbk = tmp_path(path);
        snprintf(sink, sizeof sink, "sqlite:%s", dbk);
        code = cli_run(&err, (const char *const[]){"backfill", "--symbols", "all", "--intervals",
                                                   "1m", "--from", from10, "--rest-url", url,
                                                   "--sink", sink, "--shard", shard, NULL});
        if (code != 0 && !(code == 1 && strstr(err, "no symbol")))
            fail_msg("shard %s: exit %d: %s", shard, code, err);
        free(err);
        n2[k] = code == 0 ? sql_int(dbk, "SELECT count(DISTINCT symbol) FROM klines") : 0;
    }
    assert_int_equal(n2[0] + n2[1], 4);
    kft_sim_stop(sim);
}

static void test_errors(void **state)
{
    (void)state;
    kft_sim *sim = kft_sim_start((const char *const[]){"--start", SIM_START, NULL});
    assert_non_null(sim);
    char url[64], sink[600];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", kft_sim_port(sim));
    snprintf(sink, sizeof sink, "sqlite:%s", tmp_path("err.db"));
    char *err = NULL;
    int code = cli_run(&err, (const char *const[]){"backfill", "--symbols", "BTCUSDT,NOPEUSDT",
                                                   "--intervals", "1h", "--from", "2025-12-30",
                                                   "--rest-url", url, "--sink", sink, NULL});
    assert_int_equal(code, 1);
    assert_non_null(strstr(err, "symbol \"NOPEUSDT\" is not listed"));
    free(err);
    kft_sim_stop(sim);

    static const struct {
        const char *flag, *value, *needle;
    } bad[] = {
        {"--from", "2026-13-01", "--from: \"2026-13-01\""},
        {"--from", "yesterday", "--from: \"yesterday\" is not a time"},
        {"--weight-budget", "0", "--weight-budget"},
        {"--intervals", "7m", "--intervals"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool is_from = strcmp(bad[i].flag, "--from") == 0;
        bool is_iv = strcmp(bad[i].flag, "--intervals") == 0;
        code =
            cli_run(&err, (const char *const[]){"backfill", "--symbols", "BTCUSDT", "--intervals",
                                                is_iv ? bad[i].value : "1m", "--from",
                                                is_from ? bad[i].value : "2026-01-01", "--rest-url",
                                                url, is_from || is_iv ? "--log-level" : bad[i].flag,
                                                is_from || is_iv ? "info" : bad[i].value, NULL});
        assert_int_equal(code, 2);
        assert_non_null(strstr(err, bad[i].needle));
        assert_non_null(strchr(err, '\n'));
        assert_int_equal(strchr(err, '\n')[1], 0); /* one line */
        free(err);
    }
    code = cli_run(
        &err, (const char *const[]){"backfill", "--symbols", "BTCUSDT", "--intervals", "1m", NULL});
    assert_int_equal(code, 2);
    assert_non_null(strstr(err, "--from is required"));
    free(err);
    code = cli_run(&err, (const char *const[]){"backfill", "--symbols", "BTCUSDT", "--intervals",
                                               "1m", "--from", "2026-01-02", "--to",
                                               "2026-01-01T12:00:00Z", NULL});
    assert_int_equal(code, 2);
    assert_non_null(strstr(err, "--to"));
    free(err);
}

/* (6): a fetch whose request hangs returns promptly once cancelled (it took the whole
 * request timeout, 10 s), and the cancelled request is neither a timeout nor retried. */
#define CANCEL_AFTER_MS 300

static void *cancel_later(void *flag)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = CANCEL_AFTER_MS * 1000000L};
    nanosleep(&ts, NULL);
    atomic_store((_Atomic bool *)flag, true);
    return NULL;
}

static int count_row(void *ud, const kf_kline *k)
{
    (void)k;
    (*(unsigned *)ud)++;
    return 0;
}

/* Fetches an hour of 1m klines with f while every request hangs; cancels after 300 ms. */
static void fetch_cancelled_in_flight(kf__fetcher *f, const char *what)
{
    static _Atomic bool cancel;
    atomic_store(&cancel, false);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_later, &cancel), 0);
    char err[1024] = "";
    unsigned rows = 0;
    int64_t t0 = kft_now_ms();
    kf_err e = kf__fetch_klines(f, "BTCUSDT", kf_interval_index("1m", 2), 1767225600000LL,
                                1767225600000LL + 3600000, count_row, &rows, &cancel, NULL, err,
                                sizeof err);
    int64_t took = kft_now_ms() - t0;
    pthread_join(th, NULL);
    kf__fetch_stats fs;
    kf__fetcher_get_stats(f, &fs);
    fprintf(stderr,
            "cancel in flight (%s): %s \"%s\" after %" PRId64 " ms (cancelled at %d ms), "
            "timeouts=%" PRIu64 " retries=%" PRIu64 "\n",
            what, kf_strerror(e), err, took, CANCEL_AFTER_MS, fs.timeouts, fs.retries);
    assert_int_equal(e, KF_ERR_NOT_RUNNING);
    assert_string_equal(err, "cancelled");
    assert_int_equal(rows, 0);
    assert_true(took >= CANCEL_AFTER_MS);
    assert_true(took < 2000); /* the cancel + ~50 ms; generous for valgrind/ASan */
    assert_int_equal(fs.timeouts, 0);
    assert_int_equal(fs.retries, 0);
}

static void test_cancel_in_flight(void **state)
{
    (void)state;
    char base[64];
    char err[1024];
    kf__fetcher_opts o = {.rest_base = base, .tls_verify = true}; /* 10 s per request */

    /* every request hangs, the first one included */
    kft_sim *sim = kft_sim_run("--start", SIM_START, "--rest-timeout-rate", "1", NULL);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", kft_sim_port(sim));
    kf__fetcher *f = kf__fetcher_new(&o, err, sizeof err);
    assert_non_null(f);
    fetch_cancelled_in_flight(f, "never answered");
    kf__fetcher_free(f);

    /* the exchange answered once, so a hung request would be retried: it must not be */
    const int faults_ms = 3000;
    char faults_arg[16];
    snprintf(faults_arg, sizeof faults_arg, "%d", faults_ms);
    sim = kft_sim_run("--start", SIM_START, "--rest-timeout-rate", "1", "--faults-start-ms",
                      faults_arg, NULL);
    int64_t started = kft_now_ms();
    snprintf(base, sizeof base, "http://127.0.0.1:%d", kft_sim_port(sim));
    f = kf__fetcher_new(&o, err, sizeof err);
    assert_non_null(f);
    int64_t now = 0;
    assert_int_equal(kf__fetcher_server_time(f, &now, err, sizeof err), KF_OK);
    assert_true(kft_now_ms() - started < faults_ms); /* answered before the faults began */
    while (kft_now_ms() - started < faults_ms + 300) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000000L};
        nanosleep(&ts, NULL);
    }
    fetch_cancelled_in_flight(f, "answered before");
    kf__fetcher_free(f);
}

int main(void)
{
    char *d = kft_tmpdir();
    assert_non_null(d);
    snprintf(tmpdir, sizeof tmpdir, "%s", d);
    free(d);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_all_symbols),
        cmocka_unit_test(test_history_and_rerun),
        cmocka_unit_test(test_interrupt_resume),
        cmocka_unit_test(test_tight_budget),
        cmocka_unit_test_teardown(test_cancel_in_flight, kft_sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
