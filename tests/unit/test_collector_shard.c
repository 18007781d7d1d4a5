/*
 * One shard on its own: a test-owned libuv loop, streams and index built here, and a fake
 * owner whose up-calls record what arrives (no kf_collector anywhere). Against a real
 * klinefeed-sim: the shard connects, subscribes its range of streams (and only it) in paced
 * batches, delivers their updates, reconnects after the simulator resets the connection (and
 * asks for a repair of each of its streams once resubscribed), and closes on request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "collector/shard.h"
#include "sim_proc.h"

/* Streams 0-1 belong to another shard (never started); this shard carries [FIRST, NSTREAMS). */
#define NSTREAMS 6
#define FIRST 2
#define COUNT (NSTREAMS - FIRST)
#define SHARD_INDEX 1

static const char *const SYMBOLS[NSTREAMS] = {"BNBUSDT", "BNBUSDT", "BTCUSDT",
                                              "BTCUSDT", "ETHUSDT", "ETHUSDT"};
static const char *const INTERVALS[NSTREAMS] = {"1m", "5m", "1m", "5m", "1m", "5m"};

/* What the fake owner saw. */
typedef struct owner {
    kf__stream streams[NSTREAMS];
    kf__candle rings[NSTREAMS][16];
    kf__stream_index index;
    kf__counters st;
    kf__conn_budget budget;
    kf__rng rng;
    uint64_t next_id;
    kf__logger log;
    kf__url url;
    char path[1100];
    uv_loop_t loop;
    kf__shard sh;

    bool starting, stopping;
    unsigned opened, closed, refused, errors, subs_on, subs_off, wrong_shard, mismatched;
    bool subscribed; /* as last reported */
    unsigned updates[NSTREAMS], closes[NSTREAMS], repairs[NSTREAMS], candle_repairs[NSTREAMS];
    unsigned updates_at_resubscribe; /* total updates when subscribed was last reported on */
    unsigned updates_total;
    char last_error[1024];
    int64_t until; /* time_up */
} owner;

static void up_deliver(void *ud, size_t si, const kf_kline *k)
{
    owner *o = ud;
    assert_true(si < NSTREAMS);
    /* the update routed to the stream it names */
    if (strcmp(k->symbol, o->streams[si].symbol) != 0 ||
        k->interval_index != o->streams[si].interval)
        o->mismatched++;
    kf__gap gap;
    if (kf__stream_apply(&o->streams[si], k, &gap) == KF__APPLY_CLOSED)
        o->closes[si]++;
    o->updates[si]++;
    o->updates_total++;
}

static void up_opened(void *ud, size_t shard)
{
    owner *o = ud;
    o->wrong_shard += shard != SHARD_INDEX;
    o->opened++;
    o->starting = false; /* like kf_start: the first connection is up */
}

static void up_closed(void *ud, size_t shard, kf_err err, const char *why)
{
    owner *o = ud;
    (void)err;
    (void)why;
    o->wrong_shard += shard != SHARD_INDEX;
    o->closed++;
}

static void up_subscribed(void *ud, size_t shard, bool on)
{
    owner *o = ud;
    o->wrong_shard += shard != SHARD_INDEX;
    if (on) {
        o->subs_on++;
        o->updates_at_resubscribe = o->updates_total;
    } else {
        o->subs_off++;
    }
    o->subscribed = on;
}

static void up_refused(void *ud, size_t shard, const char *url, const char *what)
{
    owner *o = ud;
    (void)url;
    (void)what;
    o->wrong_shard += shard != SHARD_INDEX;
    o->refused++;
}

static void up_error(void *ud, size_t shard, const char *msg)
{
    owner *o = ud;
    o->wrong_shard += shard != SHARD_INDEX;
    o->errors++;
    snprintf(o->last_error, sizeof o->last_error, "%s", msg);
}

static void up_repair_after_last(void *ud, size_t si)
{
    owner *o = ud;
    assert_true(si < NSTREAMS);
    o->repairs[si]++;
}

static void up_repair_candle(void *ud, size_t si, int64_t open_time)
{
    owner *o = ud;
    (void)open_time;
    assert_true(si < NSTREAMS);
    o->candle_repairs[si]++;
}

static bool up_starting(void *ud)
{
    return ((owner *)ud)->starting;
}

static bool up_stopping(void *ud)
{
    return ((owner *)ud)->stopping;
}

static const kf__shard_ops OPS = {
    .deliver = up_deliver,
    .opened = up_opened,
    .closed = up_closed,
    .subscribed = up_subscribed,
    .subscribe_refused = up_refused,
    .error = up_error,
    .repair_after_last = up_repair_after_last,
    .repair_candle = up_repair_candle,
    .starting = up_starting,
    .stopping = up_stopping,
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_poll(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until pred(o) or timeout_ms; returns pred's last value. */
static bool run_until(owner *o, bool (*pred)(owner *), int timeout_ms)
{
    uv_timer_t t;
    uv_timer_init(&o->loop, &t);
    uv_timer_start(&t, on_poll, 10, 10); /* the loop wakes at least this often */
    int64_t end = mono_ms() + timeout_ms;
    bool ok;
    while (!(ok = pred(o)) && mono_ms() < end)
        uv_run(&o->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&o->loop, UV_RUN_NOWAIT);
    return ok;
}

static bool time_up(owner *o)
{
    return mono_ms() >= o->until;
}

static owner *owner_new_n(int port, size_t count);

static owner *owner_new(int port)
{
    return owner_new_n(port, COUNT);
}

/* The shard starts with the first count of its streams and has room for all COUNT. */
static owner *owner_new_n(int port, size_t count)
{
    owner *o = calloc(1, sizeof *o);
    assert_non_null(o);
    for (size_t i = 0; i < NSTREAMS; i++) {
        int iv = kf_interval_index(INTERVALS[i], strlen(INTERVALS[i]));
        assert_int_equal(kf__stream_init(&o->streams[i], SYMBOLS[i], iv, o->rings[i], 16), KF_OK);
        o->streams[i].shard = i < FIRST ? 0 : SHARD_INDEX;
    }
    assert_int_equal(kf__stream_index_build(&o->index, o->streams, NSTREAMS, NSTREAMS), KF_OK);
    assert_int_equal(kf__conn_budget_init(&o->budget, 10, 10000), KF_OK);
    kf__rng_seed(&o->rng, o);
    o->next_id = 1;
    kf__logger_init(&o->log, NULL, NULL, KF_LOG_ERROR);
    char url[64], err[256];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/market", port);
    assert_int_equal(kf__url_parse(url, &o->url, err, sizeof err), KF_OK);
    snprintf(o->path, sizeof o->path, "%s/ws", o->url.path);
    assert_int_equal(uv_loop_init(&o->loop), 0);
    o->starting = true;
    kf__shard_env env = {
        .loop = &o->loop,
        .set =
            {
                .names_per_subscribe = 3, /* 4 streams: two SUBSCRIBE requests, paced */
                .messages_per_second = 5,
                .connect_timeout_ms = 3000,
                .max_message = 1 << 20,
                .backoff_initial_ms = 100,
                .backoff_max_ms = 400,
                .ping_interval_ms = 5000,
                .dead_after_ms = 10000,
                .max_age_ms = 3600000,
            },
        .log = &o->log,
        .st = &o->st,
        .streams = o->streams,
        .index = &o->index,
        .url = &o->url,
        .path = o->path,
        .budget = &o->budget,
        .rng = &o->rng,
        .next_id = &o->next_id,
        .ops = &OPS,
        .owner = o,
    };
    assert_int_equal(kf__shard_init(&o->sh, &env, SHARD_INDEX, FIRST, count, COUNT), KF_OK);
    return o;
}

static bool all_closed(owner *o)
{
    return kf__shard_all_closed(&o->sh);
}

/* Closes the shard as an owner stops it: the closed up-call, then every handle released. */
static void owner_stop(owner *o)
{
    unsigned closed_before = o->closed;
    o->stopping = true;
    kf__shard_close(&o->sh);
    assert_true(run_until(o, all_closed, 5000));
    assert_int_equal(o->closed, closed_before + 1); /* the one open connection */
    kf__shard_release(&o->sh);
    uv_run(&o->loop, UV_RUN_DEFAULT);             /* the timers' close callbacks */
    assert_int_equal(uv_loop_close(&o->loop), 0); /* nothing of the shard is left on it */
    kf__shard_free(&o->sh);
    for (size_t i = 0; i < NSTREAMS; i++)
        kf__stream_destroy(&o->streams[i]);
    kf__stream_index_free(&o->index);
    kf__conn_budget_free(&o->budget);
    kf__logger_destroy(&o->log);
    free(o);
}

static bool every_stream_closed_twice(owner *o)
{
    for (size_t i = FIRST; i < NSTREAMS; i++)
        if (o->updates[i] < 3)
            return false;
    /* the 1m streams (speed 60: one a second) closed at least twice */
    return o->subscribed && o->closes[2] >= 2 && o->closes[4] >= 2;
}

static long long state_num(const char *st, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(st, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

static void test_shard_subscribes_and_delivers(void **state)
{
    (void)state;
    kft_sim *sim = kft_sim_run("--speed", "60", NULL);
    owner *o = owner_new(kft_sim_port(sim));
    assert_int_equal(kf__shard_start(&o->sh, NULL), KF_OK);
    assert_true(run_until(o, every_stream_closed_twice, 15000));

    assert_int_equal(o->opened, 1);
    assert_int_equal(o->subs_on, 1);
    assert_int_equal(o->subs_off, 0);
    assert_int_equal(o->closed, 0);
    assert_int_equal(o->refused, 0);
    assert_int_equal(o->errors, 0);
    assert_int_equal(o->wrong_shard, 0);
    assert_int_equal(o->mismatched, 0);
    for (size_t i = 0; i < FIRST; i++) /* the other shard's streams: never asked, never seen */
        assert_int_equal(o->updates[i], 0);
    for (size_t i = 0; i < NSTREAMS; i++) { /* no repair without a loss */
        assert_int_equal(o->repairs[i], 0);
        assert_int_equal(o->candle_repairs[i], 0);
    }
    /* the counters the shard was given */
    assert_int_equal(atomic_load(&o->st.connects), 1);
    assert_int_equal(atomic_load(&o->st.acks), 2); /* two batches */
    assert_int_equal(atomic_load(&o->st.updates), o->updates_total);
    assert_true(atomic_load(&o->st.frames) >= o->updates_total + 2);
    assert_int_equal(atomic_load(&o->st.disconnects), 0);
    assert_int_equal(o->next_id, 1 + 2); /* one id per batch, from the shared source */

    /* what the exchange saw: one connection, exactly this shard's four names, two requests */
    char *body = malloc(KFT_HTTP_BUF);
    assert_non_null(body);
    assert_int_equal(kft_http_get(kft_sim_port(sim), "/sim/state", body, KFT_HTTP_BUF), 200);
    assert_int_equal(state_num(body, "connections_total"), 1);
    assert_int_equal(state_num(body, "connections_open"), 1);
    assert_int_equal(state_num(body, "subscribe_requests"), 2);
    const char *names[] = {"btcusdt@kline_1m", "btcusdt@kline_5m", "ethusdt@kline_1m",
                           "ethusdt@kline_5m"};
    for (size_t i = 0; i < 4; i++)
        assert_non_null(strstr(body, names[i]));
    assert_null(strstr(body, "bnbusdt@kline"));
    free(body);

    owner_stop(o);
    kft_sim_teardown(NULL);
}

static bool reconnected_and_delivering(owner *o)
{
    /* subscribed again after a loss, and delivering on the new connection */
    return o->subs_off >= 1 && o->subscribed && o->updates_total >= o->updates_at_resubscribe + 8;
}

static void test_shard_reconnects_after_reset(void **state)
{
    (void)state;
    /* resets from 1.5 s (once subscribed) to 3 s after the simulator starts, then none */
    kft_sim *sim = kft_sim_run("--speed", "60", "--fault-reset-every", "0.5", "--faults-start-ms",
                               "1500", "--faults-stop-ms", "3000", NULL);
    int port = kft_sim_port(sim);
    owner *o = owner_new(port);
    assert_int_equal(kf__shard_start(&o->sh, NULL), KF_OK);
    assert_true(run_until(o, reconnected_and_delivering, 20000));
    /* past the faults (the first resubscription may come before they end): one connection stays */
    o->until = mono_ms() + 1500;
    run_until(o, time_up, 3000);
    assert_true(run_until(o, reconnected_and_delivering, 5000));

    char *body = malloc(KFT_HTTP_BUF);
    assert_non_null(body);
    assert_int_equal(kft_http_get(port, "/sim/state", body, KFT_HTTP_BUF), 200);
    long long resets = state_num(body, "reset");
    printf("resets=%lld opened=%u subscribed on/off=%u/%u lost_reset=%llu reconnects=%llu\n",
           resets, o->opened, o->subs_on, o->subs_off,
           (unsigned long long)atomic_load(&o->st.lost_reset),
           (unsigned long long)atomic_load(&o->st.reconnects));
    assert_true(resets >= 1);
    assert_int_equal(state_num(body, "connections_open"), 1); /* the lost ones are gone */
    assert_true(state_num(body, "connections_total") >= o->opened);
    free(body);

    assert_true(o->opened >= 2);
    assert_int_equal(o->closed, 0); /* losses are the shard's business, not the owner's */
    assert_int_equal(o->subs_off, o->subs_on - 1);
    /* each reset counted once, by its cause: a lost connection (or, reset during the upgrade, a
     * failed attempt) */
    assert_int_equal(atomic_load(&o->st.lost_reset) + atomic_load(&o->st.connect_failures),
                     (uint64_t)resets);
    assert_int_equal(atomic_load(&o->st.disconnects), atomic_load(&o->st.lost_reset));
    assert_true(atomic_load(&o->st.lost_reset) >= 1);
    assert_int_equal(atomic_load(&o->st.connects), o->opened);
    assert_true(atomic_load(&o->st.reconnects) >= (uint64_t)resets);
    assert_true(o->errors >= 1); /* the loss was reported to the owner */
    assert_true(o->last_error[0] != 0);
    assert_int_equal(o->wrong_shard, 0);
    assert_int_equal(o->mismatched, 0);
    /* once resubscribed after a loss, each of its streams (and no other) is sent to repair */
    for (size_t i = 0; i < NSTREAMS; i++)
        if (i < FIRST)
            assert_int_equal(o->repairs[i], 0);
        else
            assert_int_equal(o->repairs[i], o->subs_on - 1);

    owner_stop(o);
    kft_sim_teardown(NULL);
}

/* ---- streams joining a live connection, leaving it, and coming back: no reconnect ---- */

static int g_port;
static char *g_body;

/* The simulator subscribes name exactly `want` times (0 or 1), on one connection ever. */
static bool sim_subscribed(const char *name, int want)
{
    if (kft_http_get(g_port, "/sim/state", g_body, KFT_HTTP_BUF) != 200)
        return false;
    char quoted[64];
    snprintf(quoted, sizeof quoted, "\"%s\"", name);
    return (strstr(g_body, quoted) != NULL) == (want != 0);
}

static bool eth_joined(owner *o)
{
    return o->updates[4] > 0 && o->updates[5] > 0 && sim_subscribed("ethusdt@kline_1m", 1) &&
           sim_subscribed("ethusdt@kline_5m", 1);
}

static bool btc1m_left(owner *o)
{
    (void)o;
    return sim_subscribed("btcusdt@kline_1m", 0) && sim_subscribed("btcusdt@kline_5m", 1);
}

static bool btc1m_back(owner *o)
{
    return sim_subscribed("btcusdt@kline_1m", 1) && atomic_load(&o->st.acks) >= 4;
}

static bool first_two_live(owner *o)
{
    return o->subscribed && o->updates[2] > 0 && o->updates[3] > 0;
}

static void test_shard_extend_and_listing(void **state)
{
    (void)state;
    kft_sim *sim = kft_sim_run("--speed", "60", NULL);
    g_port = kft_sim_port(sim);
    g_body = malloc(KFT_HTTP_BUF);
    assert_non_null(g_body);
    owner *o = owner_new_n(g_port, 2); /* btcusdt 1m, 5m; room for ethusdt's two */
    assert_int_equal(kf__shard_start(&o->sh, NULL), KF_OK);
    assert_true(run_until(o, first_two_live, 15000));
    assert_int_equal(o->updates[4] + o->updates[5], 0);

    /* two streams join: one SUBSCRIBE on the live connection */
    kf__shard_extend(&o->sh, 2);
    assert_int_equal(o->sh.count, 4);
    assert_true(run_until(o, eth_joined, 15000));

    /* one is delisted: UNSUBSCRIBE, the others go on */
    atomic_store(&o->streams[2].delisted, true);
    kf__shard_listing_changed(&o->sh, 2);
    assert_true(run_until(o, btc1m_left, 15000));

    /* listed again: SUBSCRIBE, same connection */
    atomic_store(&o->streams[2].delisted, false);
    kf__shard_listing_changed(&o->sh, 2);
    assert_true(run_until(o, btc1m_back, 15000));

    assert_int_equal(state_num(g_body, "connections_total"), 1);
    assert_int_equal(o->opened, 1);
    assert_int_equal(o->subs_on, 1);
    assert_int_equal(o->subs_off, 0);
    assert_int_equal(o->next_id, 1 + 4); /* the first batch, then one id per request */
    assert_int_equal(o->refused + o->errors + o->wrong_shard + o->mismatched, 0);
    free(g_body);
    owner_stop(o);
    kft_sim_teardown(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_shard_subscribes_and_delivers, kft_sim_teardown),
        cmocka_unit_test_teardown(test_shard_reconnects_after_reset, kft_sim_teardown),
        cmocka_unit_test_teardown(test_shard_extend_and_listing, kft_sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
