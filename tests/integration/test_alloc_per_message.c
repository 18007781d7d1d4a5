/*
 * No heap allocation on the per-message path: a counting allocator is installed before
 * anything else, the collector receives a flood from klinefeed-sim over a real socket, and
 * the count taken after the connection settled is the same after hundreds of thousands of
 * messages (decode, per-stream state, ring, callbacks, a sink queue).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kftest.h"
#include "sim_proc.h"

static _Atomic long allocs;
static void *count_malloc(size_t n)
{
    atomic_fetch_add(&allocs, 1);
    return malloc(n);
}
static void *count_realloc(void *p, size_t n)
{
    atomic_fetch_add(&allocs, 1);
    return realloc(p, n);
}

static _Atomic long updates;
static void on_update(void *ud, const kf_kline *k)
{
    (void)ud;
    (void)k;
    atomic_fetch_add(&updates, 1);
}

static long target;
static bool reached(void *arg)
{
    (void)arg;
    return atomic_load(&updates) >= target;
}

static void test_no_allocation_per_message(void **st)
{
    (void)st;
    kf_set_allocator(count_malloc, count_realloc, free);
    const char *args[] = {"--flood", "400000", NULL};
    kft_sim *sim = kft_sim_start(args);
    assert_non_null(sim);
    char *dir = kft_tmpdir();
    char spec[300];
    snprintf(spec, sizeof spec, "jsonl:%s/all.jsonl", dir);
    kf_config *cfg = kft_sim_config(kft_sim_port(sim), "BTCUSDT,ETHUSDT", "1m,5m", NULL);
    kf_config_set_log(cfg, NULL, NULL, KF_LOG_WARN);
    kf_config_on_kline(cfg, on_update, NULL);
    kf_config_add_sink(cfg, spec);
    kf_collector *c = kf_create(cfg, NULL, 0);
    assert_int_equal(kf_start(c), KF_OK);
    target = 20000;
    assert_true(kft_wait(reached, NULL, 30000));
    long before = atomic_load(&allocs);
    long u0 = atomic_load(&updates);
    target = 380000;
    assert_true(kft_wait(reached, NULL, 60000));
    long after = atomic_load(&allocs);
    long u1 = atomic_load(&updates);
    printf("allocations: %ld before, %ld after %ld more messages\n", before, after, u1 - u0);
    assert_int_equal(after, before);
    kf_stats s;
    kf_stats_get(c, &s, sizeof s);
    assert_int_equal(s.parse_errors, 0);
    kf_free(c);
    kf_config_free(cfg);
    kft_sim_stop(sim);
    kf_set_allocator(NULL, NULL, NULL);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_no_allocation_per_message)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
