/*
 * `--symbols ALL` re-read while running (kf_config_set_symbol_refresh), against klinefeed-sim's
 * run-time listing (/sim/list, /sim/delist) on real sockets:
 *  1. the daemon, 5 symbols x 2 intervals on connections of 4 streams, re-read every 3 s (3
 *     simulated minutes: the first candles of a listing have closed before it is subscribed,
 *     only REST has them): a new listing joins the last connection (SUBSCRIBE on it: no new
 *     connection), the next one needs a new connection (one more, none re-opened), a delisting
 *     is unsubscribed and logged once, the store holds every closed candle of the new symbols
 *     from their listing (the simulator's truth), and
 *     SIGTERM exits 0 (the delisted streams are not missing candles);
 *  2. the daemon with a reserve of one symbol: the second listing is refused, logged once and
 *     counted, the run goes on and exits 0;
 *  3. the library with its REST base unreachable while running: every re-read fails, is logged
 *     and counted, and no symbol is dropped;
 *  4. the library: an answer that would delist half the symbols is not applied; one delisting
 *     is; a delisted symbol listed again is collected in its place without a reconnect; a
 *     listing while another thread reads kf_recent / kf_stream_info_get (ThreadSanitizer).
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_proc.h"
#include "compare.h"
#include "kftest.h"
#include "sim_proc.h"

static kft_sim_state state; /* large: keep off the stack */
static char body[KFT_HTTP_BUF];

/* Waits are on conditions; under valgrind everything is many times slower. */
static int slow(int ms)
{
    return getenv("KF_VALGRIND") ? ms * 6 : getenv("KF_TSAN") ? ms * 3 : ms;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return calloc(1, 1);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc(1, (size_t)n + 1);
    if (b && n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n)
        b[0] = 0;
    fclose(f);
    return b;
}

static size_t count_in(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static size_t log_count(const char *log, const char *needle)
{
    char *t = slurp(log);
    size_t n = count_in(t, needle);
    free(t);
    return n;
}

/* GET /sim/list (or /sim/delist) of sym: the onboardDate it answers. */
static int64_t sim_listing(int port, const char *what, const char *sym)
{
    char path[128];
    snprintf(path, sizeof path, "/sim/%s?symbol=%s", what, sym);
    assert_int_equal(kft_http_get(port, path, body, sizeof body), 200);
    const char *ob = strstr(body, "\"onboardDate\":");
    assert_non_null(ob);
    return atoll(ob + 14);
}

typedef struct sim_wait {
    int port;
    const char *stream; /* subscribed exactly `times` times on the simulator */
    size_t times;
} sim_wait;

static bool sim_has(void *arg)
{
    sim_wait *w = arg;
    return kft_sim_state_get(w->port, &state) && kft_sim_state_count(&state, w->stream) == w->times;
}

static void wait_sim_stream(int port, const char *stream, size_t times, pid_t daemon)
{
    sim_wait w = {port, stream, times};
    if (!kft_wait(sim_has, &w, slow(30000))) {
        if (daemon > 0) {
            kill(daemon, SIGKILL);
            kft_cli_wait(daemon, 5000);
        }
        fail_msg("%s subscribed %zu times on the simulator, not %zu", stream,
                 kft_sim_state_count(&state, stream), times);
    }
}

typedef struct log_wait {
    const char *log, *needle;
    size_t times;
} log_wait;

static bool log_has(void *arg)
{
    log_wait *w = arg;
    return log_count(w->log, w->needle) >= w->times;
}

static void wait_log(const char *log, const char *needle, size_t times, pid_t daemon)
{
    log_wait w = {log, needle, times};
    if (!kft_wait(log_has, &w, slow(30000))) {
        if (daemon > 0) {
            kill(daemon, SIGKILL);
            kft_cli_wait(daemon, 5000);
        }
        fail_msg("the log has %zu of \"%s\", not %zu", log_count(log, needle), needle, times);
    }
}

/* ---- 1. the daemon: listings, a delisting, the store, no reconnect ---- */

static bool http_ready(void *arg)
{
    return kft_http_get(*(int *)arg, "/readyz", body, sizeof body) == 200;
}

typedef struct cmp_wait {
    int port;
    const char *db;
    const char *const *symbols;
    int64_t from, to;
    kft_cmp cmp;
} cmp_wait;

static bool store_complete(void *arg)
{
    cmp_wait *w = arg;
    char err[256];
    if (!kft_sim_state_get(w->port, &state))
        return false;
    w->to = state.now - 120000; /* what closed two simulated minutes ago is stored by now */
    static const char *const iv[] = {"1m", NULL};
    return kft_compare_store(w->port, w->db, w->symbols, iv, w->from, w->to, NULL, 0, &w->cmp, err,
                             sizeof err) == 0 &&
           w->cmp.checked >= 2 * 8 && !w->cmp.missing && !w->cmp.differing && !w->cmp.extra;
}

static void test_daemon_listing(void **st)
{
    (void)st;
    kft_sim *sim =
        kft_sim_run("--speed", "60", "--symbols", "AAAUSDT,BBBUSDT,CCCUSDT,DDDUSDT,EEEUSDT", NULL);
    int port = kft_sim_port(sim);
    char *dir = kft_tmpdir();
    char ws[64], rest[64], sink[300], db[300], log[300];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/market", port);
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", port);
    snprintf(db, sizeof db, "%s/k.db", dir);
    snprintf(sink, sizeof sink, "sqlite:%s", db);
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    const char *args[] = {"run",
                          "--symbols",
                          "ALL",
                          "--intervals",
                          "1m,5m",
                          "--symbols-refresh",
                          "3s",
                          "--streams-per-connection",
                          "4",
                          "--ws-url",
                          ws,
                          "--rest-url",
                          rest,
                          "--sink",
                          sink,
                          "--state-dir",
                          "none",
                          "--validate",
                          "required",
                          "--status-every",
                          "0",
                          "--http",
                          "127.0.0.1:0",
                          NULL};
    pid_t pid = kft_spawn_daemon(args, log);
    assert_true(pid > 0);
    wait_sim_stream(port, "eeeusdt@kline_5m", 1, pid);
    wait_log(log, "msg=\"http listening\"", 1, pid);
    char *text = slurp(log);
    const char *hp = strstr(strstr(text, "msg=\"http listening\""), " port=");
    assert_non_null(hp);
    int http_port = atoi(hp + 6);
    free(text);
    wait_log(log, "msg=\"all streams subscribed\" streams=10 connections=3", 1, pid);
    assert_true(kft_sim_state_get(port, &state));
    long total0 = state.connections_total;
    assert_int_equal(state.connections_open, 3);

    /* a listing: its 2 streams fit the last connection (2 of 4): SUBSCRIBE there */
    int64_t onboard1 = sim_listing(port, "list", "NEWUSDT");
    wait_sim_stream(port, "newusdt@kline_1m", 1, pid);
    wait_sim_stream(port, "newusdt@kline_5m", 1, pid);
    assert_true(kft_sim_state_get(port, &state));
    assert_int_equal(state.connections_total, total0); /* nothing opened, nothing re-opened */
    assert_int_equal(state.connections_open, 3);

    /* the next: the last connection is full: one new connection, no other */
    int64_t onboard2 = sim_listing(port, "list", "NXTUSDT");
    wait_sim_stream(port, "nxtusdt@kline_1m", 1, pid);
    wait_sim_stream(port, "nxtusdt@kline_5m", 1, pid);
    assert_true(kft_sim_state_get(port, &state));
    assert_int_equal(state.connections_total, total0 + 1);
    assert_int_equal(state.connections_open, 4);

    /* a delisting: unsubscribed, logged once, nothing re-opened */
    sim_listing(port, "delist", "BBBUSDT");
    wait_sim_stream(port, "bbbusdt@kline_1m", 0, pid);
    wait_sim_stream(port, "bbbusdt@kline_5m", 0, pid);
    wait_log(log, "msg=\"symbol delisted\" symbol=BBBUSDT", 1, pid);
    assert_true(kft_sim_state_get(port, &state));
    assert_int_equal(state.connections_total, total0 + 1);
    assert_int_equal(state.nstreams, 14 - 2);

    /* /metrics: the counters and the delisted streams; /readyz: ready (the delisted streams
     * are not expected to deliver) */
    assert_int_equal(kft_http_get(http_port, "/metrics", body, sizeof body), 200);
    assert_non_null(strstr(body, "klinefeed_symbols_listed_total 2"));
    assert_non_null(strstr(body, "klinefeed_symbols_delisted_total 1"));
    assert_non_null(strstr(body, "klinefeed_stream_delisted{stream=\"bbbusdt@kline_1m\"} 1"));
    assert_non_null(strstr(body, "klinefeed_stream_delisted{stream=\"newusdt@kline_1m\"} 0"));
    assert_non_null(strstr(body, "klinefeed_connections 4"));
    assert_true(kft_wait(http_ready, &http_port, slow(30000)));

    /* the new symbols' closed candles from their listing, as the exchange has them */
    static const char *const fresh[] = {"NEWUSDT", "NXTUSDT", NULL};
    cmp_wait w = {.port = port,
                  .db = db,
                  .symbols = fresh,
                  .from = onboard1 < onboard2 ? onboard1 : onboard2};
    if (!kft_wait(store_complete, &w, slow(60000))) {
        kill(pid, SIGKILL);
        kft_cli_wait(pid, 5000);
        fail_msg("new symbols in the store: checked=%zu missing=%zu differing=%zu extra=%zu",
                 w.cmp.checked, w.cmp.missing, w.cmp.differing, w.cmp.extra);
    }
    assert_true(kft_sim_state_get(port, &state));
    int64_t stop_now = state.now;
    kill(pid, SIGTERM);
    assert_int_equal(kft_cli_wait(pid, slow(30000)), 0); /* the delisted: not missing candles */

    /* after the stop: every closed candle of the new symbols from their listing, both intervals,
     * and of a symbol collected from the start, up to two simulated minutes before the stop */
    char err[256];
    kft_cmp cmp;
    static const char *const ivs[] = {"1m", "5m", NULL};
    const char *one[] = {"NEWUSDT", NULL};
    assert_int_equal(kft_compare_store(port, db, one, ivs, onboard1, stop_now - 120000, stderr, 20,
                                       &cmp, err, sizeof err),
                     0);
    fprintf(stderr, "NEWUSDT from its listing: checked=%zu missing=%zu differing=%zu extra=%zu\n",
            cmp.checked, cmp.missing, cmp.differing, cmp.extra);
    assert_true(cmp.checked > 0);
    assert_int_equal(cmp.missing + cmp.differing + cmp.extra, 0);
    one[0] = "NXTUSDT";
    assert_int_equal(kft_compare_store(port, db, one, ivs, onboard2, stop_now - 120000, stderr, 20,
                                       &cmp, err, sizeof err),
                     0);
    assert_true(cmp.checked > 0);
    assert_int_equal(cmp.missing + cmp.differing + cmp.extra, 0);
    one[0] = "AAAUSDT";
    assert_int_equal(kft_compare_store(port, db, one, ivs, KFT_CMP_FROM_STORE, stop_now - 120000,
                                       stderr, 20, &cmp, err, sizeof err),
                     0);
    assert_int_equal(cmp.missing + cmp.differing + cmp.extra, 0);

    assert_int_equal(log_count(log, "msg=\"symbol delisted\""), 1);
    assert_int_equal(kft_log_final_counter(log, "symbols_listed"), 2);
    assert_int_equal(kft_log_final_counter(log, "symbols_delisted"), 1);
    assert_int_equal(kft_log_final_counter(log, "symbols_refused"), 0);
    assert_int_equal(kft_log_final_counter(log, "missing"), 0);
    assert_true(kft_log_final_counter(log, "backfilled") > 0); /* from REST: before subscribed */
    free(dir);
}

/* ---- 2. the reserve spent ---- */

static void test_daemon_reserve_spent(void **st)
{
    (void)st;
    kft_sim *sim = kft_sim_run("--speed", "60", "--symbols", "AAAUSDT,BBBUSDT", NULL);
    int port = kft_sim_port(sim);
    char *dir = kft_tmpdir();
    char ws[64], rest[64], sink[300], log[300];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/market", port);
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", port);
    snprintf(sink, sizeof sink, "sqlite:%s/k.db", dir);
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    const char *args[] = {"run",   "--symbols",
                          "ALL",   "--intervals",
                          "1m",    "--symbols-refresh",
                          "1s",    "--symbols-reserve",
                          "1",     "--ws-url",
                          ws,      "--rest-url",
                          rest,    "--sink",
                          sink,    "--state-dir",
                          "none",  "--status-every",
                          "0",     "--log-level",
                          "debug", NULL};
    pid_t pid = kft_spawn_daemon(args, log);
    assert_true(pid > 0);
    wait_sim_stream(port, "bbbusdt@kline_1m", 1, pid);
    sim_listing(port, "list", "NEWUSDT");
    sim_listing(port, "list", "NXTUSDT");
    wait_sim_stream(port, "newusdt@kline_1m", 1, pid);
    wait_log(log, "msg=\"new symbol not collected: the reserve is spent\" symbol=NXTUSDT", 1, pid);
    /* three more re-reads: it is not logged again */
    size_t reads = log_count(log, "msg=\"symbols re-read\"");
    wait_log(log, "msg=\"symbols re-read\"", reads + 3, pid);
    assert_int_equal(log_count(log, "msg=\"new symbol not collected"), 1);
    assert_true(kft_sim_state_get(port, &state));
    assert_int_equal(kft_sim_state_count(&state, "nxtusdt@kline_1m"), 0);
    assert_int_equal(state.connections_total, 1);
    kill(pid, SIGTERM);
    assert_int_equal(kft_cli_wait(pid, slow(30000)), 0);
    assert_int_equal(kft_log_final_counter(log, "symbols_listed"), 1);
    assert_int_equal(kft_log_final_counter(log, "symbols_refused"), 1);
    free(dir);
}

/* ---- 3. the library: exchangeInfo unreachable while running ---- */

static kf_collector *start_all(int port, kft_logcap *cap, const char *rest_override)
{
    kf_config *cfg = kft_sim_config(port, "AAAUSDT", "1m", cap);
    assert_non_null(cfg);
    kf_config_set_log(cfg, kft_log_fn, cap, KF_LOG_INFO); /* (the capture holds 64 KiB) */
    assert_int_equal(kf_config_add_exchange_symbols(cfg, NULL), KF_OK);
    assert_int_equal(kf_config_set_symbol_refresh(cfg, 999), KF_ERR_CONFIG); /* named */
    assert_non_null(strstr(kf_config_errmsg(cfg), "999"));
    assert_int_equal(kf_config_set_symbol_refresh(cfg, 1000), KF_OK);
    assert_int_equal(kf_config_set_symbol_reserve(cfg, 100001), KF_ERR_CONFIG);
    kf_config_set_backfill(cfg, false);
    kf_config_set_connect_timeout_ms(cfg, 1000);
    if (rest_override) {
        assert_int_equal(kf_config_set_rest_url(cfg, rest_override), KF_OK);
        kf_config_set_validate(cfg, KF_VALIDATE_OFF);
    }
    char err[256] = "";
    kf_collector *c = kf_create(cfg, err, sizeof err);
    kf_config_free(cfg);
    assert_non_null(c);
    assert_int_equal(kf_start(c), KF_OK);
    assert_int_equal(kf_wait_connected(c, slow(10000)), KF_OK);
    return c;
}

static bool refresh_failed_twice(void *c)
{
    kf_stats s;
    kf_stats_get(c, &s, sizeof s);
    return s.symbol_refresh_failures >= 2;
}

static kft_logcap logcap;

static void test_refresh_fails(void **st)
{
    (void)st;
    kft_sim *sim = kft_sim_run("--speed", "60", "--symbols", "AAAUSDT,BBBUSDT,CCCUSDT", NULL);
    int port = kft_sim_port(sim);
    kft_logcap_init(&logcap, false);
    /* the symbols read from the simulator; while running, its REST base does not answer */
    kf_collector *c = start_all(port, &logcap, "http://127.0.0.1:1");
    assert_int_equal(kf_stream_count(c), 3);
    sim_listing(port, "delist", "BBBUSDT"); /* (unseen: nothing can be read) */
    assert_true(kft_wait(refresh_failed_twice, c, slow(30000)));
    assert_true(kft_logcap_has(&logcap, "msg=\"symbol refresh failed: the symbols are kept",
                               "127.0.0.1:1", NULL));
    kf_stats s;
    kf_stats_get(c, &s, sizeof s);
    assert_int_equal(s.symbols_delisted, 0);
    assert_int_equal(s.symbols_listed, 0);
    for (size_t i = 0; i < kf_stream_count(c); i++) {
        kf_stream_info si;
        assert_int_equal(kf_stream_info_get(c, i, &si, sizeof si), KF_OK);
        assert_false(si.delisted);
        assert_int_not_equal(si.state, KF_STREAM_DELISTED);
    }
    assert_true(kf_connected(c));
    assert_int_equal(kf_stop(c), KF_OK);
    kf_free(c);
}

/* ---- 4. the library: the safety rule, a delisting, a relisting, a listing under readers ---- */

typedef struct stats_wait {
    kf_collector *c;
    uint64_t listed, delisted;
} stats_wait;

static bool stats_reach(void *arg)
{
    stats_wait *w = arg;
    kf_stats s;
    kf_stats_get(w->c, &s, sizeof s);
    return s.symbols_listed >= w->listed && s.symbols_delisted >= w->delisted;
}

static bool logged_refused(void *arg)
{
    (void)arg;
    return kft_logcap_has(&logcap, "msg=\"symbol refresh: delistings not applied", NULL);
}

typedef struct poller {
    kf_collector *c;
    atomic_bool stop;
    atomic_size_t seen; /* reads that found NEWUSDT */
} poller;

static void *poll_main(void *arg)
{
    poller *p = arg;
    kf_kline k[4];
    while (!atomic_load(&p->stop)) {
        size_t n = 4;
        if (kf_recent(p->c, "newusdt", "1m", k, &n) == KF_OK)
            atomic_fetch_add(&p->seen, 1);
        size_t count = kf_stream_count(p->c);
        for (size_t i = 0; i < count; i++) {
            kf_stream_info si;
            if (kf_stream_info_get(p->c, i, &si, sizeof si) != KF_OK || !si.symbol[0])
                abort(); /* a published stream is always whole */
        }
        kf_stats s;
        kf_stats_get(p->c, &s, sizeof s);
        usleep(1000);
    }
    return NULL;
}

static void test_safety_delist_relist(void **st)
{
    (void)st;
    kft_sim *sim =
        kft_sim_run("--speed", "60", "--symbols", "AAAUSDT,BBBUSDT,CCCUSDT,DDDUSDT", NULL);
    int port = kft_sim_port(sim);
    kft_logcap_init(&logcap, false);
    kf_collector *c = start_all(port, &logcap, NULL);
    assert_int_equal(kf_stream_count(c), 4);
    assert_true(kft_sim_state_get(port, &state));
    long total0 = state.connections_total;

    /* half the symbols gone at once: taken for a bad answer, nothing delisted */
    sim_listing(port, "delist", "BBBUSDT");
    sim_listing(port, "delist", "CCCUSDT");
    assert_true(kft_wait(logged_refused, NULL, slow(30000)));
    kf_stats s;
    kf_stats_get(c, &s, sizeof s);
    assert_int_equal(s.symbols_delisted, 0);

    /* one of four: delisted */
    sim_listing(port, "list", "CCCUSDT");
    stats_wait w = {c, 0, 1};
    assert_true(kft_wait(stats_reach, &w, slow(30000)));
    kf_stream_info si;
    assert_int_equal(kf_stream_info_get(c, 1, &si, sizeof si), KF_OK);
    assert_string_equal(si.symbol, "BBBUSDT");
    assert_true(si.delisted);
    assert_int_equal(si.state, KF_STREAM_DELISTED);
    assert_true(kft_logcap_has(&logcap, "level=warn msg=\"symbol delisted\" symbol=BBBUSDT", NULL));
    wait_sim_stream(port, "bbbusdt@kline_1m", 0, -1);
    kf_kline k[2];
    size_t n = 2;
    assert_int_equal(kf_recent(c, "BBBUSDT", "1m", k, &n), KF_OK); /* kept in place */

    /* a stop and a start (symbols validated, required): the delisted symbol is not refused, and
     * stays delisted: not subscribed by the new connection */
    assert_int_equal(kf_stop(c), KF_OK);
    assert_int_equal(kf_start(c), KF_OK);
    assert_int_equal(kf_wait_connected(c, slow(10000)), KF_OK);
    wait_sim_stream(port, "aaausdt@kline_1m", 1, -1); /* (the old connection gone) */
    assert_int_equal(kft_sim_state_count(&state, "bbbusdt@kline_1m"), 0);
    total0 = state.connections_total;

    /* listed again: the same stream, subscribed again on the same connection */
    sim_listing(port, "list", "BBBUSDT");
    w.listed = 1;
    assert_true(kft_wait(stats_reach, &w, slow(30000)));
    wait_sim_stream(port, "bbbusdt@kline_1m", 1, -1);
    assert_int_equal(kf_stream_count(c), 4);
    assert_int_equal(kf_stream_info_get(c, 1, &si, sizeof si), KF_OK);
    assert_false(si.delisted);
    assert_int_not_equal(si.state, KF_STREAM_DELISTED);
    assert_false(si.added);

    /* a new listing while another thread reads */
    poller p = {.c = c};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, poll_main, &p), 0);
    sim_listing(port, "list", "NEWUSDT");
    w.listed = 2;
    bool listed = kft_wait(stats_reach, &w, slow(30000));
    wait_sim_stream(port, "newusdt@kline_1m", 1, -1);
    usleep(200000);
    atomic_store(&p.stop, true);
    pthread_join(th, NULL);
    assert_true(listed);
    assert_int_equal(kf_stream_count(c), 5);
    assert_int_equal(kf_stream_info_get(c, 4, &si, sizeof si), KF_OK);
    assert_string_equal(si.symbol, "NEWUSDT");
    assert_true(si.added);
    assert_true(atomic_load(&p.seen) > 0);
    assert_true(kft_sim_state_get(port, &state));
    assert_int_equal(state.connections_total, total0); /* never re-opened */
    assert_int_equal(kf_connection_count(c), 1);

    assert_int_equal(kf_stop(c), KF_OK);
    kf_stats_get(c, &s, sizeof s);
    assert_int_equal(s.missing, 0);
    kf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_daemon_listing, kft_sim_teardown),
        cmocka_unit_test_teardown(test_daemon_reserve_spent, kft_sim_teardown),
        cmocka_unit_test_teardown(test_refresh_fails, kft_sim_teardown),
        cmocka_unit_test_teardown(test_safety_delist_relist, kft_sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
