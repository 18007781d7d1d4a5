/*
 * The REST repair worker on its own: one stream built here, a fake owner whose up-calls record
 * what arrives (no kf_collector), and a real klinefeed-sim answering /fapi/v1/klines. While the
 * owner's stores do not take rows the worker asks nothing; once they do, the stream's tail
 * arrives in order through kf__repair_drain, which stops at once when the stores are full
 * again, and the request's outcome comes last.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector/repair.h"
#include "sim_proc.h"

#define SIM_START_MS 1767225600000LL /* the simulator's default start, 2026-01-01 */
#define MINUTE 60000LL

typedef struct owner {
    kf__stream stream;
    kf__candle ring[64];
    kf__logger log;
    kf__repair *r;
    _Atomic bool ready; /* the stores take rows */
    _Atomic unsigned wakes;
    unsigned rows, out_of_order, not_closed, wrong_stream, dones;
    int64_t first_open, last_open;
    size_t done_si;
    int64_t done_from, done_to, done_covered;
    kf_err done_err;
    unsigned rows_at_done;
} owner;

static bool up_sinks_ready(void *ud)
{
    return atomic_load(&((owner *)ud)->ready);
}

static void up_deliver(void *ud, size_t si, const kf_kline *k)
{
    owner *o = ud;
    if (si != 0 || strcmp(k->symbol, "BTCUSDT") != 0)
        o->wrong_stream++;
    if (!k->closed)
        o->not_closed++;
    if (o->rows && k->open_time != o->last_open + MINUTE)
        o->out_of_order++;
    if (!o->rows)
        o->first_open = k->open_time;
    o->last_open = k->open_time;
    o->rows++;
    kf__gap gap;
    kf__stream_apply(&o->stream, k, &gap);
}

static void up_done(void *ud, size_t si, int64_t from, int64_t to, int64_t covered, kf_err err)
{
    owner *o = ud;
    o->dones++;
    o->done_si = si;
    o->done_from = from;
    o->done_to = to;
    o->done_covered = covered;
    o->done_err = err;
    o->rows_at_done = o->rows;
    kf__repair_applied(o->r, si, err != KF_OK, 0, false); /* as an owner must */
}

static void up_wake(void *ud)
{
    atomic_fetch_add(&((owner *)ud)->wakes, 1);
}

static const kf__repair_ops OPS = {
    .sinks_ready = up_sinks_ready,
    .deliver = up_deliver,
    .done = up_done,
    .wake = up_wake,
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long state_num(const char *st, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(st, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

static long long sim_rest_requests(int port)
{
    char *body = malloc(KFT_HTTP_BUF);
    assert_non_null(body);
    assert_int_equal(kft_http_get(port, "/sim/state", body, KFT_HTTP_BUF), 200);
    long long n = state_num(body, "rest_requests");
    free(body);
    return n;
}

static void test_repair_waits_for_the_stores_then_fetches(void **state)
{
    (void)state;
    kft_sim *sim = kft_sim_run("--speed", "60", NULL);
    int port = kft_sim_port(sim);
    owner *o = calloc(1, sizeof *o);
    assert_non_null(o);
    assert_int_equal(
        kf__stream_init(&o->stream, "BTCUSDT", kf_interval_index("1m", 2), o->ring, 64), KF_OK);
    /* the stores hold everything up to 30 minutes before the simulator's start */
    int64_t last = SIM_START_MS - 30 * MINUTE;
    kf__stream_resume(&o->stream, last);
    kf__logger_init(&o->log, NULL, NULL, KF_LOG_ERROR);
    char base[64], err[512] = "";
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    kf__repair_env env = {
        .streams = &o->stream,
        .nstreams = 1,
        .log = &o->log,
        .fetch = {.rest_base = base, .timeout_ms = 5000, .log = &o->log},
        .ops = &OPS,
        .owner = o,
    };
    o->r = kf__repair_new(&env, err, sizeof err);
    assert_non_null(o->r);
    kf__repair_request(o->r, 0, last + MINUTE);
    assert_int_equal(kf__repair_pending(o->r), 1);
    assert_int_equal(kf__repair_start(o->r, err, sizeof err), KF_OK);

    /* the stores do not take rows: nothing is asked, nothing comes */
    usleep(800000);
    assert_int_equal(sim_rest_requests(port), 0);
    assert_int_equal(atomic_load(&o->wakes), 0);
    assert_true(kf__repair_drain(o->r)); /* nothing waiting */
    assert_int_equal(o->rows, 0);
    assert_int_equal(kf__repair_pending(o->r), 1);

    /* they do: the worker fetches, and wakes the owner once rows wait */
    atomic_store(&o->ready, true);
    int64_t end = mono_ms() + 10000;
    while (!atomic_load(&o->wakes) && mono_ms() < end)
        usleep(5000);
    assert_true(atomic_load(&o->wakes) >= 1);
    /* full again: the drain stops before the first row */
    atomic_store(&o->ready, false);
    assert_false(kf__repair_drain(o->r));
    assert_int_equal(o->rows, 0);
    assert_int_equal(o->dones, 0);

    /* room again: every row, then the outcome */
    atomic_store(&o->ready, true);
    end = mono_ms() + 10000;
    while (!o->dones && mono_ms() < end) {
        kf__repair_drain(o->r);
        usleep(5000);
    }
    printf("rows=%u first=%lld last=%lld covered=%lld wakes=%u\n", o->rows,
           (long long)o->first_open, (long long)o->last_open, (long long)o->done_covered,
           atomic_load(&o->wakes));
    assert_int_equal(o->dones, 1);
    assert_int_equal(o->done_err, KF_OK);
    assert_int_equal(o->done_si, 0);
    assert_int_equal(o->done_from, last + MINUTE);
    assert_int_equal(o->done_to, INT64_MAX); /* a tail: up to the present */
    /* the tail in order, from the minute after the last stored, closed, at least up to the
     * simulator's start (29 candles), all before the outcome */
    assert_true(o->rows >= 29);
    assert_true(o->last_open >= SIM_START_MS - MINUTE);
    assert_int_equal(o->rows_at_done, o->rows);
    assert_int_equal(o->first_open, last + MINUTE);
    assert_int_equal(o->out_of_order, 0);
    assert_int_equal(o->not_closed, 0);
    assert_int_equal(o->wrong_stream, 0);
    assert_true(o->done_covered >= o->last_open);
    assert_true(sim_rest_requests(port) >= 1);
    /* applied: nothing is left for the stream */
    assert_int_equal(kf__repair_pending(o->r), 0);
    assert_int_equal(kf__stream_missing(&o->stream), 0);

    kf__fetch_stats fs;
    kf__repair_get_stats(o->r, &fs);
    assert_true(fs.requests >= 1);
    assert_true(fs.rows >= o->rows);

    kf__repair_free(o->r);
    kf__stream_destroy(&o->stream);
    kf__logger_destroy(&o->log);
    free(o);
    kft_sim_teardown(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_repair_waits_for_the_stores_then_fetches, kft_sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
