/*
 * The fault suite: the `klinefeed` daemon runs for several simulated hours against
 * klinefeed-sim with every fault enabled at a high rate (resets, stalls, server closes,
 * refused connections, garbage/truncated/binary/oversized/duplicated frames, dropped closing
 * updates, a short maximum connection age, REST 429/500/503/slow/timeouts), then a calm
 * period; the SQLite store is then compared with the simulator's truth for every stream:
 * 0 missing, 0 duplicated, 0 differing candles.
 */
#include <fcntl.h>
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
#include "sim_proc.h"

#define FAULT_SECONDS 40 /* faults from 2 s to 40 s of real time */
#define CALM_SECONDS 60  /* then no fault: at most this long for the repairs to complete */
#define SPEED "300"      /* 40 s = 200 simulated minutes */

static const char *const symbols[] = {"BTCUSDT", "ETHUSDT", "AVAXUSDT", NULL};
static const char *const intervals[] = {"1m", "5m", "15m", NULL};

static pid_t spawn_collector(int port, const char *db, const char *log)
{
    char ws[64], rest[64], sink[600];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/market", port);
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", port);
    snprintf(sink, sizeof sink, "sqlite:%s", db);
    return kft_spawn_daemon((const char *const[]){"run",
                                                  "--symbols",
                                                  "BTCUSDT,ETHUSDT,AVAXUSDT",
                                                  "--intervals",
                                                  "1m,5m,15m",
                                                  "--ws-url",
                                                  ws,
                                                  "--rest-url",
                                                  rest,
                                                  "--sink",
                                                  sink,
                                                  "--ping-interval-ms",
                                                  "300",
                                                  "--liveness-timeout-ms",
                                                  "1200",
                                                  "--reconnect-initial-ms",
                                                  "100",
                                                  "--reconnect-max-ms",
                                                  "1000",
                                                  "--connect-timeout-ms",
                                                  "3000",
                                                  NULL},
                            log);
}

/* The simulator's clock. */
static int64_t sim_now(int port)
{
    static kft_sim_state st;
    assert_true(kft_sim_state_get(port, &st));
    return st.now;
}

/* Candles missing, extra or differing in the store against the truth, from each stream's first
 * stored candle to 2 simulated minutes (0.4 s here) before upto (the simulator's clock when the
 * collector was last running): a candle whose closing update is on its way is not counted, nor
 * one that closed after the collector stopped. *checked gets the truth's candles. */
static size_t bad_candles(int port, const char *db, int64_t upto, size_t *checked, FILE *verbose)
{
    kft_cmp c;
    char err[256];
    if (kft_compare_store(port, db, symbols, intervals, KFT_CMP_FROM_STORE, upto - 120000, verbose,
                          100, &c, err, sizeof err) != 0) {
        fprintf(stderr, "compare: %s\n", err);
        return SIZE_MAX;
    }
    *checked = c.checked;
    if (verbose)
        fprintf(verbose, "compare: streams=%zu checked=%zu missing=%zu extra=%zu differing=%zu\n",
                c.streams, c.checked, c.missing, c.extra, c.differing);
    return c.missing + c.extra + c.differing;
}

static void test_every_fault_nothing_lost(void **state)
{
    (void)state;
    char stop_ms[32];
    snprintf(stop_ms, sizeof stop_ms, "%d", FAULT_SECONDS * 1000);
    const char *args[] = {"--speed",
                          SPEED,
                          "--faults-start-ms",
                          "2000",
                          "--faults-stop-ms",
                          stop_ms,
                          "--fault-seed",
                          "7",
                          "--fault-reset-every",
                          "1.5",
                          "--fault-close-every",
                          "2.5",
                          "--fault-stall-every",
                          "4",
                          "--fault-garbage-every",
                          "0.2",
                          "--fault-refuse-every",
                          "9",
                          "--refuse-ms",
                          "1500",
                          "--drop-close-rate",
                          "0.15",
                          "--max-conn-age-ms",
                          "6000",
                          "--rest-429-rate",
                          "0.05",
                          "--rest-500-rate",
                          "0.05",
                          "--rest-slow-rate",
                          "0.05",
                          "--rest-slow-ms",
                          "700",
                          "--rest-timeout-rate",
                          "0.01",
                          "--ban-ms",
                          "3000",
                          NULL};
    kft_sim *sim = kft_sim_start(args);
    assert_non_null(sim);
    int port = kft_sim_port(sim);
    char *dir = kft_tmpdir();
    char db[512], log[512];
    snprintf(db, sizeof db, "%s/faults.db", dir);
    snprintf(log, sizeof log, "%s/collector.log", dir);
    pid_t pid = spawn_collector(port, db, log);
    sleep(FAULT_SECONDS + 5);
    /* calm: wait until the store has caught up with the exchange (checked once a second) */
    int calm = 5;
    size_t n;
    while (bad_candles(port, db, sim_now(port), &n, NULL) != 0 && calm < CALM_SECONDS) {
        sleep(1);
        calm++;
    }
    /* what must be stored: the candles closed before the stop was asked (one closing during
     * the stop is the next start's; counting it failed under ASan on a loaded host) */
    int64_t stop_asked = sim_now(port);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st));
    /* The exchange still closes connections at their age (6 s): a stop that comes while one is
     * reconnecting finds candles not stored yet and must say so (exit 4, never 0); the next
     * start fetches them. Exit 0 must mean complete: checked below on the run that said it. */
    long long first_reconnects = kft_log_final_counter(log, "reconnects");
    long long first_backfilled = kft_log_final_counter(log, "backfilled");
    for (int again = 0; WEXITSTATUS(st) == 4 && again < 3; again++) {
        printf("fault suite: the stop found candles not stored yet (exit 4): started again\n");
        pid = spawn_collector(port, db, log);
        for (int i = 0; i < CALM_SECONDS && bad_candles(port, db, sim_now(port), &n, NULL); i++)
            sleep(1);
        stop_asked = sim_now(port);
        kill(pid, SIGTERM);
        waitpid(pid, &st, 0);
        assert_true(WIFEXITED(st));
    }
    assert_int_equal(WEXITSTATUS(st), 0);

    static char sim_state[1 << 16];
    assert_int_equal(kft_http_get(port, "/sim/state", sim_state, sizeof sim_state), 200);
    const char *faults = strstr(sim_state, "\"faults\":");
    assert_non_null(faults);

    size_t total = 0;
    assert_int_equal(bad_candles(port, db, stop_asked, &total, stderr), 0);
    printf("fault suite: %d s of faults at %sx, caught up %d s later; sim %.*s\n", FAULT_SECONDS,
           SPEED, calm, (int)(strchr(faults, '}') - faults + 1), faults);
    printf("fault suite: collector reconnects=%lld lost_reset=%lld lost_server_close=%lld "
           "lost_liveness=%lld lost_protocol=%lld rotations=%lld gaps=%lld missing_closes=%lld "
           "backfilled=%lld parse_errors=%lld rest_429=%lld\n",
           first_reconnects, kft_log_final_counter(log, "lost_reset"),
           kft_log_final_counter(log, "lost_server_close"),
           kft_log_final_counter(log, "lost_liveness"), kft_log_final_counter(log, "lost_protocol"),
           kft_log_final_counter(log, "rotations"), kft_log_final_counter(log, "gaps"),
           kft_log_final_counter(log, "missing_closes"), first_backfilled,
           kft_log_final_counter(log, "parse_errors"), kft_log_final_counter(log, "rest_429"));
    printf("fault suite: candles compared=%zu missing=0 extra=0 differing=0\n", total);
    /* the run saw the faults: the collector lost and regained connections, repaired from REST */
    assert_true(first_reconnects >= 10);
    assert_true(first_backfilled >= 10);
    assert_true(total >= 3 * (180 + 36 + 12));
    kft_sim_stop(sim);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_every_fault_nothing_lost)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
