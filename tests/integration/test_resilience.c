/*
 * Staying connected: reconnect with backoff after the exchange goes away (killed, refused,
 * back on the same port), liveness (a connection that sends nothing is declared dead and
 * replaced) and make-before-break rotation (no candle missing or duplicated, never more than
 * two connections per shard). Real sockets against klinefeed-sim and a scripted server.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kftest.h"
#include "raw_ws.h"
#include "sim_proc.h"
#include "transport/ws.h"

static kft_sim_state state;

static bool is_connected(void *c)
{
    return kf_connected(c);
}
static bool is_disconnected(void *c)
{
    return !kf_connected(c);
}

static void test_reconnect_after_exchange_restart(void **st)
{
    (void)st;
    kft_sim *sim = kft_sim_start((const char *[]){"--speed", "60", NULL});
    assert_non_null(sim);
    int port = kft_sim_port(sim);
    kft_logcap *cap = calloc(1, sizeof *cap);
    kft_logcap_init(cap, false);
    kf_config *cfg = kft_sim_config(port, "BTCUSDT,ETHUSDT", "1m,5m", cap);
    kf_config_set_reconnect_backoff(cfg, 200, 1000);
    kf_collector *c = kf_create(cfg, NULL, 0);
    assert_int_equal(kf_start(c), KF_OK);
    assert_true(kft_wait(is_connected, c, 5000));
    kill(kft_sim_pid(sim), SIGKILL); /* the exchange vanishes: no close frame */
    kft_sim_stop(sim);
    assert_true(kft_wait(is_disconnected, c, 5000));
    assert_true(kf_running(c));
    usleep(1500000); /* refused for a while: the collector keeps retrying */
    char listen[64];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    sim = kft_sim_start((const char *[]){"--speed", "60", "--listen", listen, NULL});
    assert_non_null(sim);
    assert_true(kft_wait(is_connected, c, 5000));
    kf_stats s;
    kf_stats_get(c, &s);
    printf("reconnect: lost_reset=%llu connect_failures=%llu reconnects=%llu\n",
           (unsigned long long)s.lost_reset, (unsigned long long)s.connect_failures,
           (unsigned long long)s.reconnects);
    assert_int_equal(s.lost_reset, 1);
    assert_true(s.connect_failures >= 2);
    assert_true(s.reconnects >= 3);
    /* logged by the cause counted, not as "connection refused or unreachable" */
    assert_true(kft_logcap_has(cap, "connection lost", "cause=reset", NULL));
    assert_false(kft_logcap_has(cap, "connection lost", "refused or unreachable", NULL));
    assert_true(kft_logcap_has(cap, "msg=\"reconnecting\"", "attempt=1", NULL));
    assert_true(kft_logcap_has(cap, "msg=\"reconnected\"", NULL));
    assert_true(kft_sim_state_get(port, &state));
    assert_int_equal(state.nstreams, 4); /* resubscribed, each name once */
    assert_int_equal(state.connections_open, 1);
    kf_free(c);
    kf_config_free(cfg);
    kft_sim_stop(sim);
    free(cap);
}

/* A server that upgrades, acknowledges, sends one kline, then goes silent on the first
 * connection; the second connection is served normally. */
typedef struct silent_server {
    int fd, port;
    int connections;
    pthread_t th;
} silent_server;

static int serve_upgrade(int cfd)
{
    char req[4096];
    if (kft_ws_server_upgrade(cfd) != 0)
        return -1;
    if (recv(cfd, req, sizeof req, 0) <= 0) /* the SUBSCRIBE (masked: not parsed) */
        return -1;
    /* acknowledge ids 1..4: the collector's first batch id is among them */
    for (int id = 1; id <= 4; id++) {
        char ack[64];
        snprintf(ack, sizeof ack, "{\"result\":null,\"id\":%d}", id);
        kft_ws_server_send(cfd, 1, ack);
    }
    kft_ws_server_send(cfd, 1,
                       "{\"e\":\"kline\",\"E\":60500,\"s\":\"BTCUSDT\",\"k\":{\"t\":0,\"T\":59999,"
                       "\"s\":\"BTCUSDT\",\"i\":\"1m\",\"f\":1,\"L\":2,\"o\":\"1.0\",\"c\":\"2.0\","
                       "\"h\":\"3.0\",\"l\":\"0.5\",\"v\":\"10\",\"n\":2,\"x\":true,\"q\":\"20.0\","
                       "\"V\":\"5\",\"Q\":\"10.0\",\"B\":\"0\"}}");
    return 0;
}

static void *silent_main(void *arg)
{
    silent_server *s = arg;
    int first = accept(s->fd, NULL, NULL);
    if (first < 0)
        return NULL;
    serve_upgrade(first);
    s->connections = 1;
    /* silence: read nothing, answer nothing, keep the socket open */
    int second = accept(s->fd, NULL, NULL);
    if (second >= 0) {
        s->connections = 2;
        serve_upgrade(second);
        char buf[4096];
        while (recv(second, buf, sizeof buf, 0) > 0)
            if ((buf[0] & 0x0f) == 8)
                break;
        close(second);
    }
    close(first);
    return NULL;
}

static bool lost_liveness(void *c)
{
    kf_stats s;
    kf_stats_get(c, &s);
    return s.lost_liveness >= 1 && kf_connected(c);
}

/* The second connection's copy of the candle has been applied (the acks that make the
 * collector connected come first, so under valgrind the candle can still be on its way). */
static bool saw_duplicate(void *c)
{
    kf_stats s;
    kf_stats_get(c, &s);
    return s.duplicates >= 1;
}

static void test_silent_connection_declared_dead(void **st)
{
    (void)st;
    silent_server s = {0};
    s.fd = kft_tcp_listen(4, &s.port);
    assert_true(s.fd >= 0);
    pthread_create(&s.th, NULL, silent_main, &s);
    kft_logcap *cap = calloc(1, sizeof *cap);
    kft_logcap_init(cap, false);
    kf_config *cfg = kf_config_new();
    char url[128];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/market", s.port);
    kf_config_set_ws_url(cfg, url);
    kf_config_add_symbols(cfg, "BTCUSDT");
    kf_config_add_intervals(cfg, "1m");
    kf_config_set_validate(cfg, KF_VALIDATE_OFF);
    kf_config_set_liveness(cfg, 200, 800);
    kf_config_set_reconnect_backoff(cfg, 100, 500);
    kf_config_set_log(cfg, kft_log_fn, cap, KF_LOG_INFO);
    kf_collector *c = kf_create(cfg, NULL, 0);
    assert_int_equal(kf_start(c), KF_OK);
    assert_true(kft_wait(lost_liveness, c, 5000));
    assert_int_equal(s.connections, 2);
    assert_true(kft_logcap_has(cap, "connection lost", "cause=liveness", "declared dead", NULL));
    assert_true(kft_wait(saw_duplicate, c, 5000));
    kf_stats st2;
    kf_stats_get(c, &st2);
    assert_int_equal(st2.closed, 1); /* the same candle on both connections: stored once */
    assert_true(st2.duplicates >= 1);
    kf_free(c);
    kf_config_free(cfg);
    pthread_join(s.th, NULL);
    close(s.fd);
    free(cap);
}

/*
 * Rotation at a maximum age of one second on twelve connections (one stream each) for 30 s of
 * 60x simulated time: hundreds of make-before-break rotations, every closed candle exactly
 * once and contiguous, never more than two connections per shard.
 */
#define ROT_STREAMS 12
typedef struct seen {
    pthread_mutex_t mu;
    int64_t open_times[ROT_STREAMS][1024];
    size_t n[ROT_STREAMS];
    long dups;
} seen;

static const char *const rot_symbols[] = {"BTCUSDT", "ETHUSDT", "SOLUSDT"};
static const char *const rot_intervals[] = {"1m", "3m", "5m", "15m"};

static void on_closed(void *ud, const kf_kline *k)
{
    seen *s = ud;
    int slot = -1;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
            if (!strcmp(k->symbol, rot_symbols[i]) && !strcmp(k->interval, rot_intervals[j]))
                slot = i * 4 + j;
    assert_true(slot >= 0);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n[slot]; i++)
        if (s->open_times[slot][i] == k->open_time)
            s->dups++;
    if (s->n[slot] < 1024)
        s->open_times[slot][s->n[slot]++] = k->open_time;
    pthread_mutex_unlock(&s->mu);
}

static void test_rotation_make_before_break(void **st)
{
    (void)st;
    kft_sim *sim = kft_sim_start((const char *[]){"--speed", "60", NULL});
    assert_non_null(sim);
    int port = kft_sim_port(sim);
    kf_config *cfg = kft_sim_config(port, "BTCUSDT,ETHUSDT,SOLUSDT", "1m,3m,5m,15m", NULL);
    kf_config_set_log(cfg, NULL, NULL, KF_LOG_WARN);
    kf_config_set_streams_per_connection(cfg, 1);
    kf_config_set_max_connection_age_ms(cfg, 1000);
    kf_config_set_liveness(cfg, 300, 1200);
    kf_config_set_connection_budget(cfg, 5000, 300000); /* hundreds of rotations on purpose */
    static seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    kf_config_on_closed(cfg, on_closed, &s);
    kf_collector *c = kf_create(cfg, NULL, 0);
    assert_int_equal(kf_connection_count(c), ROT_STREAMS);
    assert_int_equal(kf_start(c), KF_OK);
    int64_t end = kft_now_ms() + (getenv("KF_VALGRIND") ? 15000 : 30000);
    while (kft_now_ms() < end)
        usleep(100000);
    kf_stats stats;
    kf_stats_get(c, &stats);
    kf_stop(c);
    assert_true(kft_sim_state_get(port, &state));
    static char body[1 << 16];
    kft_http_get(port, "/sim/state", body, sizeof body);
    const char *mx = strstr(body, "\"connections_max_open\":");
    long max_open = mx ? atol(mx + 23) : -1;
    printf("rotation: rotations=%llu connections=%d max_open_at_once=%ld (limit %d) closed=%llu "
           "duplicates_dropped=%llu missing=0 duplicated=%ld\n",
           (unsigned long long)stats.rotations, ROT_STREAMS, max_open, 2 * ROT_STREAMS,
           (unsigned long long)stats.closed, (unsigned long long)stats.duplicates, s.dups);
    assert_true(stats.rotations >= (getenv("KF_VALGRIND") ? 20 : 100));
    assert_true(max_open >= 0 && max_open <= 2 * ROT_STREAMS);
    assert_int_equal(s.dups, 0);
    for (int slot = 0; slot < ROT_STREAMS; slot++) {
        static const int64_t step[] = {60000, 180000, 300000, 900000};
        assert_true(s.n[slot] >= 1);
        for (size_t i = 1; i < s.n[slot]; i++)
            assert_int_equal(s.open_times[slot][i] - s.open_times[slot][i - 1], step[slot % 4]);
    }
    assert_int_equal(stats.lost_reset + stats.lost_server_close + stats.lost_liveness, 0);
    assert_int_equal(stats.gaps, 0);
    kf_free(c);
    kf_config_free(cfg);
    kft_sim_stop(sim);
}

/* An acknowledged stream that never delivers (a delisted symbol) is reported, measured on the
 * exchange's clock (600x here), while the live streams of the same connection are not. */
static bool one_stale(void *c)
{
    kf_stats s;
    kf_stats_get(c, &s);
    return s.stale_streams >= 1;
}

static void test_silent_stream_reported(void **st)
{
    (void)st;
    kft_sim *sim = kft_sim_start((const char *[]){"--speed", "600", "--delisted", "OLDUSDT", NULL});
    assert_non_null(sim);
    kft_logcap *cap = calloc(1, sizeof *cap);
    kft_logcap_init(cap, false);
    kf_config *cfg = kft_sim_config(kft_sim_port(sim), "BTCUSDT,OLDUSDT,AVAXUSDT", "1m", cap);
    kf_config_set_validate(cfg, KF_VALIDATE_OFF); /* let the silent name through */
    kf_collector *c = kf_create(cfg, NULL, 0);
    assert_int_equal(kf_start(c), KF_OK);
    assert_true(kft_wait(one_stale, c, 10000));
    usleep(1000000); /* ~10 more simulated minutes: the live streams stay unreported */
    kf_stats s;
    kf_stats_get(c, &s);
    assert_int_equal(s.stale_streams, 1);
    assert_true(
        kft_logcap_has(cap, "level=warn", "stream silent", "stream=oldusdt@kline_1m", NULL));
    assert_false(kft_logcap_has(cap, "stream silent", "stream=btcusdt@kline_1m", NULL));
    assert_true(kf_connected(c));
    kf_free(c);
    kf_config_free(cfg);
    kft_sim_stop(sim);
    free(cap);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reconnect_after_exchange_restart),
        cmocka_unit_test(test_silent_connection_declared_dead),
        cmocka_unit_test(test_rotation_make_before_break),
        cmocka_unit_test(test_silent_stream_reported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
