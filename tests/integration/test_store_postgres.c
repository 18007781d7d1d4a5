/*
 * The postgres store under faults of its server. A real PostgreSQL server started by the test in
 * a temporary directory on loopback (pg_proc.h); the `klinefeed` daemon collects 32 streams from
 * klinefeed-sim at 60x into it with a small queue (64 rows):
 *  1. the server killed (pg_ctl stop -m immediate: connections break mid-batch) and started
 *     again 12 s (12 simulated minutes) later: the daemon keeps collecting (its connection to
 *     the exchange never starves), what overflowed its queue is fetched again from REST, and the
 *     table equals the simulator's truth;
 *  2. the daemon SIGTERMed (exit 0) and restarted 5 s later: it finds what the store lacks and
 *     the table equals the truth again;
 *  3. no log line carries the conninfo's password.
 * Skipped, with the reason, only when the PostgreSQL server binaries are absent. The server is
 * stopped and its directory removed at the end, failed or not.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_proc.h"
#include "compare.h"
#include "kftest.h"
#include "pg_proc.h"
#include "sim_proc.h"

#define START_MS 1767225600000LL
#define SYMBOLS "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT,DOGEUSDT,ADAUSDT,AVAXUSDT"
#define NSTREAMS (8 * 4)
#define SECRET "s3cr3t-pw"

static kft_pg *g_pg;
static kft_sim *g_sim;
static pid_t g_daemon = -1;
static char g_store[800]; /* "postgres:CONNINFO" */

static pid_t spawn_collector(int port, const char *log)
{
    char ws[64], rest[64], from[32];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/market", port);
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", port);
    snprintf(from, sizeof from, "%lld", START_MS);
    g_daemon = kft_spawn_daemon((const char *const[]){"run", "--symbols", SYMBOLS, "--intervals",
                                                      "1m,3m,5m,15m", "--ws-url", ws, "--rest-url",
                                                      rest, "--sink", g_store, "--backfill-from",
                                                      from, "--sink-queue", "64", NULL},
                                log);
    return g_daemon;
}

static int stop_collector(int timeout_ms)
{
    kill(g_daemon, SIGTERM);
    int code = kft_cli_wait(g_daemon, timeout_ms);
    g_daemon = -1;
    return code;
}

static size_t log_count(const char *log, const char *needle)
{
    FILE *f = fopen(log, "r");
    char line[8192];
    size_t n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

/* Polls until the table equals the truth (every stream, from the first-run time), at most
 * timeout_s; returns the last comparison. */
static kft_cmp wait_clean(int port, int timeout_s)
{
    kft_cmp cmp;
    char err[512];
    memset(&cmp, 0, sizeof cmp);
    int64_t end = kft_now_ms() + timeout_s * 1000LL;
    do {
        sleep(1);
        if (kft_compare_store(port, g_store, NULL, NULL, START_MS, INT64_MAX, NULL, 0, &cmp, err,
                              sizeof err) == 0 &&
            cmp.streams == NSTREAMS && cmp.missing + cmp.extra + cmp.differing == 0)
            break;
    } while (kft_now_ms() < end);
    return cmp;
}

static int teardown(void **state)
{
    (void)state;
    if (g_daemon > 0) {
        kill(g_daemon, SIGKILL);
        waitpid(g_daemon, NULL, 0);
    }
    kft_sim_stop(g_sim);
    kft_pg_destroy(g_pg); /* stops the server even when an assertion failed */
    g_sim = NULL;
    g_pg = NULL;
    return 0;
}

static void test_store_postgres_faults(void **state)
{
    (void)state;
    char why[256];
    if (!kft_pg_available(why, sizeof why)) {
        print_message("skipped: %s\n", why);
        skip();
    }
    g_pg = kft_pg_start();
    assert_non_null(g_pg);
    /* trust authentication: the password is carried, never needed, and must never be shown */
    snprintf(g_store, sizeof g_store, "postgres:%s password=" SECRET, g_pg->conninfo);
    g_sim = kft_sim_start(
        (const char *[]){"--speed", "60", "--update-ms", "1000", "--symbols", SYMBOLS, NULL});
    assert_non_null(g_sim);
    int port = kft_sim_port(g_sim);
    char *dir = kft_tmpdir();
    char log[512];
    snprintf(log, sizeof log, "%s/collector.log", dir);

    /* 1. the server crashes and comes back 12 s later */
    spawn_collector(port, log);
    kft_cmp cmp = wait_clean(port, 40);
    assert_int_equal(cmp.missing + cmp.extra + cmp.differing, 0);
    assert_int_equal(kft_pg_down(g_pg, "immediate"), 0);
    sleep(12);
    assert_int_equal(kft_cli_wait(g_daemon, 0), -1); /* still running */
    assert_int_equal(kft_pg_up(g_pg), 0);
    cmp = wait_clean(port, 90);
    printf("postgres killed 12 s: streams=%zu checked=%zu missing=%zu extra=%zu differing=%zu\n",
           cmp.streams, cmp.checked, cmp.missing, cmp.extra, cmp.differing);
    assert_int_equal(cmp.streams, NSTREAMS);
    assert_int_equal(cmp.missing + cmp.extra + cmp.differing, 0);
    assert_int_equal(stop_collector(20000), 0);
    long long dropped = kft_log_final_counter(log, "store_dropped");
    long long reconnects = kft_log_final_counter(log, "reconnects");
    size_t failed = log_count(log, "failed, retrying");
    printf("postgres killed 12 s: store_dropped=%lld (fetched again) reconnects=%lld "
           "logged_failures=%zu exit=0\n",
           dropped, reconnects, failed);
    assert_true(failed > 0);         /* the writer did see the server go */
    assert_true(dropped > 0);        /* the queue did overflow: REST fetched them again */
    assert_int_equal(reconnects, 0); /* the exchange's connection never starved */
    /* the server refused no row (the counter is on the final line, and 0) */
    assert_int_equal(kft_log_final_counter(log, "store_rejected"), 0);

    /* 2. the daemon stopped for 5 s and restarted: it finds what the table lacks */
    sleep(5);
    spawn_collector(port, log);
    cmp = wait_clean(port, 60);
    static kft_sim_state st; /* large: off the stack */
    assert_true(kft_sim_state_get(port, &st));
    int64_t stop_asked = st.now;
    assert_int_equal(stop_collector(20000), 0);
    char err[512];
    assert_int_equal(kft_compare_store(port, g_store, NULL, NULL, START_MS, stop_asked - 120000,
                                       stderr, 40, &cmp, err, sizeof err),
                     0);
    printf("postgres after the restart: streams=%zu checked=%zu missing=%zu extra=%zu "
           "differing=%zu\n",
           cmp.streams, cmp.checked, cmp.missing, cmp.extra, cmp.differing);
    assert_int_equal(cmp.streams, NSTREAMS);
    assert_true(cmp.checked > 0);
    assert_int_equal(cmp.missing + cmp.extra + cmp.differing, 0);

    /* 3. the password appears nowhere in the daemon's output */
    assert_true(log_count(log, "postgres:") > 0);
    assert_int_equal(log_count(log, SECRET), 0);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_store_postgres_faults, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
