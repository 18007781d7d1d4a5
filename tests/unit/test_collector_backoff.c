/*
 * Reconnect jitter. The delays a shard waits before reconnecting must differ between processes
 * started together (a fleet restarted at once must not reconnect in lockstep) and between the
 * collectors of one process; within the ceiling of the attempt; and the generator both the
 * reconnects and the REST repair draw from (src/core/rng.c) reproducible from a fixed seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector/collector.h"
#include "core/rng.h"

#define ATTEMPTS 12

static kf_collector *new_collector(void)
{
    kf_config *cfg = kf_config_new();
    assert_non_null(cfg);
    assert_int_equal(kf_config_add_symbols(cfg, "BTCUSDT"), KF_OK);
    assert_int_equal(kf_config_add_intervals(cfg, "1m"), KF_OK);
    assert_int_equal(kf_config_set_reconnect_backoff(cfg, 1000, 30000), KF_OK);
    kf_collector *c = kf_create(cfg, NULL, 0);
    assert_non_null(c);
    kf_config_free(cfg);
    return c;
}

/* The delays of ATTEMPTS consecutive failures of c's first shard. */
static void delays(kf_collector *c, uint64_t out[ATTEMPTS])
{
    kf__shard *sh = &c->shards[0];
    for (unsigned a = 1; a <= ATTEMPTS; a++) {
        sh->attempt = a;
        out[a - 1] = kf__shard_retry_delay(sh);
    }
    sh->attempt = 0;
}

static void assert_within_ceilings(const uint64_t d[ATTEMPTS])
{
    for (unsigned a = 1; a <= ATTEMPTS; a++)
        assert_true(d[a - 1] <= kf__backoff_cap(a, 1000, 30000));
}

static void print_delays(const char *who, const uint64_t d[ATTEMPTS])
{
    printf("%s:", who);
    for (int i = 0; i < ATTEMPTS; i++)
        printf(" %llu", (unsigned long long)d[i]);
    printf("\n");
}

/* Two processes forked at the same moment, each with its collector (same addresses, same
 * clock second): different sequences. */
static void test_delays_differ_between_processes(void **state)
{
    (void)state;
    uint64_t d[2][ATTEMPTS];
    for (int p = 0; p < 2; p++) {
        int fd[2];
        assert_int_equal(pipe(fd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(fd[0]);
            kf_collector *c = new_collector();
            uint64_t mine[ATTEMPTS];
            delays(c, mine);
            kf_free(c);
            _exit(write(fd[1], mine, sizeof mine) == (ssize_t)sizeof mine ? 0 : 1);
        }
        close(fd[1]);
        assert_int_equal(read(fd[0], d[p], sizeof d[p]), (ssize_t)sizeof d[p]);
        close(fd[0]);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    print_delays("process 1", d[0]);
    print_delays("process 2", d[1]);
    assert_within_ceilings(d[0]);
    assert_within_ceilings(d[1]);
    assert_memory_not_equal(d[0], d[1], sizeof d[0]);
}

/* Two collectors of one process: each its own sequence, drawn from its own generator (so one
 * collector's reconnects do not move the other's). */
static void test_delays_differ_between_collectors(void **state)
{
    (void)state;
    kf_collector *a = new_collector(), *b = new_collector();
    uint64_t da[ATTEMPTS], db[ATTEMPTS];
    delays(a, da);
    delays(b, db);
    assert_within_ceilings(da);
    assert_within_ceilings(db);
    assert_memory_not_equal(da, db, sizeof da);
    kf_free(a);
    kf_free(b);
}

static void test_backoff_cap(void **state)
{
    (void)state;
    const uint64_t want[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    for (unsigned n = 1; n <= 8; n++)
        assert_int_equal(kf__backoff_cap(n, 1000, 30000), want[n - 1]);
    assert_int_equal(kf__backoff_cap(1000, 1000, 30000), 30000); /* no overflow */
    assert_int_equal(kf__backoff_cap(3, 10, 10), 10);
}

/* A fixed seed gives a fixed sequence; draws cover [0, n] evenly; 0 is never a state. */
static void test_rng_reproducible_and_even(void **state)
{
    (void)state;
    kf__rng r1, r2;
    kf__rng_seed_value(&r1, 42);
    kf__rng_seed_value(&r2, 42);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(kf__rng_next(&r1), kf__rng_next(&r2));
    kf__rng_seed_value(&r2, 43);
    assert_true(kf__rng_next(&r1) != kf__rng_next(&r2));
    /* 100,000 draws in [0, 9]: each value 10,000 +- 5% */
    long count[10] = {0};
    for (int i = 0; i < 100000; i++) {
        uint64_t v = kf__rng_upto(&r1, 9);
        assert_true(v <= 9);
        count[v]++;
    }
    for (int v = 0; v < 10; v++)
        assert_true(count[v] > 9500 && count[v] < 10500);
    /* the mean of a full-jitter delay is half its ceiling */
    double sum = 0;
    for (int i = 0; i < 100000; i++)
        sum += (double)kf__rng_upto(&r1, 16000);
    assert_true(sum / 100000 > 7800 && sum / 100000 < 8200);
    kf__rng z;
    kf__rng_seed_value(&z, (uint64_t)0 - 0x9e3779b97f4a7c15ULL); /* mixes to 0 */
    assert_true(z.s != 0);
    assert_true(kf__rng_next(&z) != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delays_differ_between_processes),
        cmocka_unit_test(test_delays_differ_between_collectors),
        cmocka_unit_test(test_backoff_cap),
        cmocka_unit_test(test_rng_reproducible_and_even),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
