/*
 * Collectors that share the work: kf_shard_of is the documented FNV-1a 64 (pinned values, so a
 * change of hash fails here, not in a deployment whose shards would then overlap), shard
 * settings are checked, a shard left without a symbol is refused naming it, and three
 * collectors with shards 1/3, 2/3, 3/3 against one simulator subscribe every stream exactly
 * once between them (read from the simulator's /sim/state). "ALL" (kf_config_add_exchange_symbols,
 * `klinefeed run --symbols ALL`) is every TRADING USDT perpetual of exchangeInfo, not a
 * quarterly, a USDC pair or a delisted one; with --shard, the shard's part of those.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_proc.h"
#include "kftest.h"
#include "sim_proc.h"

static kft_sim_state state; /* large: keep off the stack */

/* The definition written out once more, independently of the library. */
static unsigned ref_shard(const char *s, unsigned n)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++) {
        unsigned char b = (unsigned char)*s;
        if (b >= 'a' && b <= 'z')
            b = (unsigned char)(b - 'a' + 'A');
        h ^= b;
        h *= 1099511628211ULL;
    }
    return (unsigned)(h % n) + 1;
}

static void test_shard_of_pinned(void **st)
{
    (void)st;
    /* fixed values, computed once from the definition: a change of hash fails here */
    assert_int_equal(kf_shard_of("BTCUSDT", 3), 1);
    assert_int_equal(kf_shard_of("ETHUSDT", 3), 1);
    assert_int_equal(kf_shard_of("SOLUSDT", 3), 3);
    assert_int_equal(kf_shard_of("btcusdt", 3), 1); /* case does not matter */
    assert_int_equal(kf_shard_of("BTCUSDT", 1), 1);
    assert_int_equal(kf_shard_of(NULL, 3), 0);
    assert_int_equal(kf_shard_of("BTCUSDT", 0), 0);
    /* "" hashes to the offset basis: 14695981039346656037 mod 1000 = 37 */
    assert_int_equal(kf_shard_of("", 1000), 38);
    const char *syms[] = {"BNBUSDT", "XRPUSDT", "DOGEUSDT", "ADAUSDT", "AVAXUSDT", "1000PEPEUSDT"};
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++)
        for (unsigned n = 1; n < 40; n++)
            assert_int_equal(kf_shard_of(syms[i], n), ref_shard(syms[i], n));
}

static void test_shard_config(void **st)
{
    (void)st;
    kf_config *cfg = kf_config_new();
    assert_int_equal(kf_config_set_shard(cfg, 0, 3), KF_ERR_CONFIG);
    assert_non_null(strstr(kf_config_errmsg(cfg), "0/3"));
    assert_int_equal(kf_config_set_shard(cfg, 4, 3), KF_ERR_CONFIG);
    assert_non_null(strstr(kf_config_errmsg(cfg), "4/3"));
    assert_int_equal(kf_config_set_shard(cfg, 1, 0), KF_ERR_CONFIG);
    assert_int_equal(kf_config_set_shard(NULL, 1, 1), KF_ERR_INVALID_ARG);
    assert_int_equal(kf_config_add_symbols(cfg, "BTCUSDT,ETHUSDT,SOLUSDT"), KF_OK);
    assert_int_equal(kf_config_add_intervals(cfg, "1m,5m"), KF_OK);
    kf_config_set_log(cfg, NULL, NULL, KF_LOG_OFF);

    /* shard 2/3 holds none of the three: refused, naming the shard */
    assert_int_equal(kf_config_set_shard(cfg, 2, 3), KF_OK);
    char err[256] = "";
    assert_null(kf_create(cfg, err, sizeof err));
    assert_non_null(strstr(err, "shard 2/3"));
    kf_history *h = kf_history_new(cfg, err, sizeof err);
    assert_null(h);

    /* 1/3: BTCUSDT and ETHUSDT, in their order; 3/3: SOLUSDT */
    assert_int_equal(kf_config_set_shard(cfg, 1, 3), KF_OK);
    kf_collector *c = kf_create(cfg, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(kf_stream_count(c), 4);
    assert_string_equal(kf_stream_name(c, 0), "btcusdt@kline_1m");
    assert_string_equal(kf_stream_name(c, 2), "ethusdt@kline_1m");
    kf_free(c);
    assert_int_equal(kf_config_set_shard(cfg, 3, 3), KF_OK);
    c = kf_create(cfg, err, sizeof err);
    assert_non_null(c);
    assert_int_equal(kf_stream_count(c), 2);
    assert_string_equal(kf_stream_name(c, 1), "solusdt@kline_5m");
    kf_free(c);
    /* (0, 0): every symbol again */
    assert_int_equal(kf_config_set_shard(cfg, 0, 0), KF_OK);
    c = kf_create(cfg, err, sizeof err);
    assert_int_equal(kf_stream_count(c), 6);
    kf_free(c);
    kf_config_free(cfg);
}

#define NSYM 40

static void test_three_shards_cover_once(void **st)
{
    (void)st;
    char syms[NSYM * 16] = "";
    for (int i = 0; i < NSYM; i++) {
        char one[16];
        snprintf(one, sizeof one, "%sS%02dUSDT", i ? "," : "", i);
        strcat(syms, one);
    }
    kft_sim *sim = kft_sim_run("--speed", "1", "--symbols", syms, NULL);
    int port = kft_sim_port(sim);
    const char *intervals = "1m,5m,1h";
    kf_collector *c[3];
    size_t total = 0;
    for (unsigned k = 1; k <= 3; k++) {
        kf_config *cfg = kft_sim_config(port, syms, intervals, NULL);
        assert_non_null(cfg);
        kf_config_set_log(cfg, NULL, NULL, KF_LOG_WARN);
        kf_config_set_backfill(cfg, false);
        assert_int_equal(kf_config_set_shard(cfg, k, 3), KF_OK);
        char err[256] = "";
        c[k - 1] = kf_create(cfg, err, sizeof err);
        assert_non_null(c[k - 1]);
        kf_config_free(cfg);
        size_t n = kf_stream_count(c[k - 1]);
        assert_true(n > 0 && n < NSYM * 3); /* each takes a part, none all */
        total += n;
        assert_int_equal(kf_start(c[k - 1]), KF_OK);
    }
    assert_int_equal(total, NSYM * 3);
    for (int k = 0; k < 3; k++)
        assert_int_equal(kf_wait_connected(c[k], 20000), KF_OK);

    assert_true(kft_sim_state_get(port, &state));
    assert_int_equal(state.nstreams, NSYM * 3);
    for (int i = 0; i < NSYM; i++)
        for (const char *iv = intervals; *iv;) {
            size_t len = strcspn(iv, ",");
            char name[48];
            snprintf(name, sizeof name, "s%02dusdt@kline_%.*s", i, (int)len, iv);
            if (kft_sim_state_count(&state, name) != 1)
                fail_msg("%s subscribed %zu times", name, kft_sim_state_count(&state, name));
            iv += len + (iv[len] == ',');
        }
    for (int k = 0; k < 3; k++)
        kf_free(c[k]);
}

/* The simulator lists perpetuals, a quarterly, a USDC pair and a delisted (SETTLING) symbol. */
#define ALL_SIM_SYMBOLS "AAAUSDT,BBBUSDT,CCCUSDT,DDDUSDT_261225,EEEUSDC,FFFUSDT"
#define ALL_SIM_DELISTED "GGGUSDT"

static void test_exchange_symbols(void **st)
{
    (void)st;
    kft_sim *sim = kft_sim_run("--speed", "1", "--symbols", ALL_SIM_SYMBOLS, "--delisted",
                               ALL_SIM_DELISTED, NULL);
    int port = kft_sim_port(sim);
    kf_config *cfg = kft_sim_config(port, "BBBUSDT", "1m", NULL);
    kf_config_set_log(cfg, NULL, NULL, KF_LOG_OFF);
    size_t added = 99;
    assert_int_equal(kf_config_add_exchange_symbols(cfg, &added), KF_OK);
    assert_int_equal(added, 3); /* AAAUSDT, CCCUSDT, FFFUSDT; BBBUSDT was there */
    kf_collector *c = kf_create(cfg, NULL, 0);
    assert_non_null(c);
    assert_int_equal(kf_stream_count(c), 4);
    const char *want[] = {"bbbusdt@kline_1m", "aaausdt@kline_1m", "cccusdt@kline_1m",
                          "fffusdt@kline_1m"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(kf_stream_name(c, i), want[i]);
    kf_free(c);
    kf_config_free(cfg);

    /* unreachable: an error naming the URL, the configuration unchanged */
    cfg = kft_sim_config(1, "BBBUSDT", "1m", NULL);
    kf_config_set_log(cfg, NULL, NULL, KF_LOG_OFF);
    kf_config_set_connect_timeout_ms(cfg, 1000);
    assert_int_not_equal(kf_config_add_exchange_symbols(cfg, &added), KF_OK);
    assert_int_equal(added, 0);
    assert_non_null(strstr(kf_config_errmsg(cfg), "127.0.0.1:1"));
    c = kf_create(cfg, NULL, 0);
    assert_int_equal(kf_stream_count(c), 1);
    kf_free(c);
    kf_config_free(cfg);
    assert_int_equal(kf_config_add_exchange_symbols(NULL, NULL), KF_ERR_INVALID_ARG);
}

static bool sim_streams_are(int port, size_t n)
{
    return kft_sim_state_get(port, &state) && state.nstreams == n;
}

/* The daemon: --symbols ALL with --shard 1/1 subscribes exactly the TRADING USDT perpetuals. */
static void test_daemon_all(void **st)
{
    (void)st;
    kft_sim *sim = kft_sim_run("--speed", "1", "--symbols", ALL_SIM_SYMBOLS, "--delisted",
                               ALL_SIM_DELISTED, NULL);
    int port = kft_sim_port(sim);
    char *dir = kft_tmpdir();
    char ws[64], rest[64], sink[300], log[300];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/market", port);
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", port);
    snprintf(sink, sizeof sink, "jsonl:%s/out.jsonl", dir);
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    const char *args[] = {"run", "--symbols",   "all",  "--intervals", "1m,5m",    "--shard",
                          "1/1", "--ws-url",    ws,     "--rest-url",  rest,       "--sink",
                          sink,  "--state-dir", "none", "--validate",  "required", NULL};
    pid_t pid = kft_spawn_daemon(args, log);
    assert_true(pid > 0);
    bool ok = false;
    for (int i = 0; i < 500 && !ok; i++) {
        ok = sim_streams_are(port, 8);
        if (!ok)
            usleep(20000);
    }
    if (!ok) {
        kill(pid, SIGKILL);
        kft_cli_wait(pid, 5000);
        fail_msg("daemon did not subscribe 8 streams (has %zu)", state.nstreams);
    }
    const char *want[] = {"aaausdt@kline_1m", "aaausdt@kline_5m", "cccusdt@kline_1m",
                          "cccusdt@kline_5m", "fffusdt@kline_1m", "fffusdt@kline_5m",
                          "bbbusdt@kline_1m", "bbbusdt@kline_5m"};
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(kft_sim_state_count(&state, want[i]), 1);
    kill(pid, SIGTERM);
    assert_int_equal(kft_cli_wait(pid, 20000), 0);
    free(dir);
}

static bool has_updates(void *c)
{
    kf_kline k[2];
    size_t n = 2;
    return kf_recent(c, "NEWUSDT", "1m", k, &n) == KF_OK && n > 0;
}

/* The simulator's run-time listing: /sim/list makes a TRADING perpetual whose candles start at
 * the current minute (REST and truth agree, onboardDate says so) and whose streams deliver;
 * /sim/delist makes it SETTLING and silent. */
static void test_sim_list_delist(void **st)
{
    (void)st;
    kft_sim *sim = kft_sim_run("--speed", "60", "--symbols", "AAAUSDT", NULL);
    int port = kft_sim_port(sim);
    static char body[KFT_HTTP_BUF];
    assert_int_equal(kft_http_get(port, "/sim/delist?symbol=NEWUSDT", body, sizeof body), 400);
    assert_int_equal(kft_http_get(port, "/sim/list?symbol=new", body, sizeof body), 400);
    assert_int_equal(kft_http_get(port, "/sim/list?symbol=NEWUSDT", body, sizeof body), 200);
    const char *ob = strstr(body, "\"onboardDate\":");
    assert_non_null(ob);
    long long onboard = atoll(ob + 14);
    assert_true(onboard > 0 && onboard % 60000 == 0);

    kf_config *cfg = kft_sim_config(port, "AAAUSDT", "1m", NULL);
    kf_config_set_log(cfg, NULL, NULL, KF_LOG_OFF);
    size_t added = 0;
    assert_int_equal(kf_config_add_exchange_symbols(cfg, &added), KF_OK);
    assert_int_equal(added, 1);
    kf_config_set_backfill(cfg, false);
    kf_collector *c = kf_create(cfg, NULL, 0);
    kf_config_free(cfg);
    assert_int_equal(kf_start(c), KF_OK);
    assert_int_equal(kf_wait_connected(c, 10000), KF_OK);
    assert_true(kft_wait(has_updates, c, 10000));
    kf_kline k[4];
    size_t n = 4;
    assert_int_equal(kf_recent(c, "NEWUSDT", "1m", k, &n), KF_OK);
    assert_true(k[0].open_time >= onboard);
    /* REST: the first candle opens at the listing */
    char path[160];
    snprintf(path, sizeof path, "/fapi/v1/klines?symbol=NEWUSDT&interval=1m&startTime=0&limit=1");
    assert_int_equal(kft_http_get(port, path, body, sizeof body), 200);
    assert_int_equal(atoll(body + 2), onboard);

    assert_int_equal(kft_http_get(port, "/sim/delist?symbol=NEWUSDT", body, sizeof body), 200);
    assert_non_null(strstr(body, "SETTLING"));
    usleep(300000); /* what was in flight */
    kf_stats a, b;
    n = 4;
    kf_recent(c, "NEWUSDT", "1m", k, &n);
    int64_t last = n ? k[n - 1].event_time : 0;
    kf_stats_get(c, &a, sizeof a);
    usleep(1500000); /* 90 simulated seconds */
    kf_stats_get(c, &b, sizeof b);
    assert_true(b.updates > a.updates); /* AAAUSDT goes on */
    n = 4;
    kf_recent(c, "NEWUSDT", "1m", k, &n);
    assert_int_equal(n ? k[n - 1].event_time : 0, last); /* NEWUSDT is silent */
    kf_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_of_pinned),
        cmocka_unit_test(test_shard_config),
        cmocka_unit_test_teardown(test_three_shards_cover_once, kft_sim_teardown),
        cmocka_unit_test_teardown(test_exchange_symbols, kft_sim_teardown),
        cmocka_unit_test_teardown(test_daemon_all, kft_sim_teardown),
        cmocka_unit_test_teardown(test_sim_list_delist, kft_sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
