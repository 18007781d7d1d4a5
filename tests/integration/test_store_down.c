/*
 * A store that does not take rows loses nothing and blocks nothing. The `klinefeed` daemon
 * collects 32 streams from klinefeed-sim at 60x into SQLite with a small queue (64 rows), while
 * the test holds the database locked (BEGIN EXCLUSIVE from another connection), so every write
 * fails and the queue overflows:
 *  1. locked for 15 s, then released: the daemon keeps its connection (the I/O thread never
 *     waits on the store), stores what it held, fetches again from REST what did not fit, and
 *     stops cleanly (exit 0) with the store equal to the simulator's truth;
 *  2. locked again, SIGTERM during the outage: the daemon exits within its stop deadline, with
 *     exit code 4 (candles not stored) and a line saying so; released, a restart finds what the
 *     store lacks and the store equals the truth again, its REST repairs applied at the pace
 *     the small queue takes them (none overflows it).
 */
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
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

#define START_MS 1767225600000LL
#define SYMBOLS "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT,DOGEUSDT,ADAUSDT,AVAXUSDT"
#define NSTREAMS (8 * 4)

static pid_t spawn_collector(int port, const char *db, const char *log)
{
    char ws[64], rest[64], sink[600], from[32];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/market", port);
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", port);
    snprintf(sink, sizeof sink, "sqlite:%s", db);
    snprintf(from, sizeof from, "%lld", START_MS);
    return kft_spawn_daemon((const char *const[]){"run", "--symbols", SYMBOLS, "--intervals",
                                                  "1m,3m,5m,15m", "--ws-url", ws, "--rest-url",
                                                  rest, "--sink", sink, "--backfill-from", from,
                                                  "--sink-queue", "64", NULL},
                            log);
}

/* Polls until the store equals the truth (every stream, from the first-run time), at most
 * timeout_s; returns the last comparison. */
static kft_cmp wait_clean(int port, const char *db, int timeout_s)
{
    kft_cmp cmp;
    char err[512];
    memset(&cmp, 0, sizeof cmp);
    int64_t end = kft_now_ms() + timeout_s * 1000LL;
    do {
        sleep(1);
        if (kft_compare_store(port, db, NULL, NULL, START_MS, INT64_MAX, NULL, 0, &cmp, err,
                              sizeof err) == 0 &&
            cmp.streams == NSTREAMS && cmp.missing + cmp.extra + cmp.differing == 0)
            break;
    } while (kft_now_ms() < end);
    return cmp;
}

static sqlite3 *lock_store(const char *db)
{
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    assert_int_equal(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    return h;
}

static void unlock_store(sqlite3 *h)
{
    assert_int_equal(sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

static void test_store_down_loses_nothing(void **state)
{
    (void)state;
    kft_sim *sim = kft_sim_start(
        (const char *[]){"--speed", "60", "--update-ms", "1000", "--symbols", SYMBOLS, NULL});
    assert_non_null(sim);
    int port = kft_sim_port(sim);
    char *dir = kft_tmpdir();
    char db[512], log[512];
    snprintf(db, sizeof db, "%s/down.db", dir);
    snprintf(log, sizeof log, "%s/collector.log", dir);

    /* 1. down for 15 s, then back */
    pid_t pid = spawn_collector(port, db, log);
    kft_cmp cmp = wait_clean(port, db, 30);
    assert_int_equal(cmp.missing + cmp.extra + cmp.differing, 0);
    sqlite3 *h = lock_store(db);
    sleep(15);
    assert_int_equal(kft_cli_wait(pid, 0), -1); /* still running */
    unlock_store(h);
    cmp = wait_clean(port, db, 60);
    assert_int_equal(cmp.missing + cmp.extra + cmp.differing, 0);
    kill(pid, SIGTERM);
    assert_int_equal(kft_cli_wait(pid, 20000), 0);
    long long dropped = kft_log_final_counter(log, "store_dropped");
    long long reconnects = kft_log_final_counter(log, "reconnects");
    printf("store down 15 s: store_dropped=%lld (fetched again) reconnects=%lld checked=%zu "
           "missing=0 extra=0 differing=0 exit=0\n",
           dropped, reconnects, cmp.checked);
    assert_true(dropped > 0);        /* the queue did overflow */
    assert_int_equal(reconnects, 0); /* the connection was never starved */

    /* 2. SIGTERM during an outage */
    pid = spawn_collector(port, db, log);
    cmp = wait_clean(port, db, 30);
    h = lock_store(db);
    sleep(8);
    int64_t t0 = kft_now_ms();
    kill(pid, SIGTERM);
    int code = kft_cli_wait(pid, 30000);
    int64_t took = kft_now_ms() - t0;
    unlock_store(h);
    long long missing = kft_log_final_counter(log, "missing"),
              unstored = kft_log_final_counter(log, "unstored");
    printf("store down at SIGTERM: exit=%d after %lld ms (deadline 10000) missing=%lld "
           "unstored=%lld\n",
           code, (long long)took, missing, unstored);
    assert_int_equal(code, 4);
    assert_true(took < 14000);
    assert_true(missing + unstored > 0);
    pid = spawn_collector(port, db, log);
    cmp = wait_clean(port, db, 60);
    /* what must be stored: the candles closed before the stop was asked, less the 2 s (120 s
     * simulated) a closing update may still be in flight; one closing after it is the next
     * start's (with INT64_MAX this failed whenever a 1m candle closed during the stop) */
    static kft_sim_state st; /* large: off the stack */
    assert_true(kft_sim_state_get(port, &st));
    int64_t stop_asked = st.now;
    kill(pid, SIGTERM);
    assert_int_equal(kft_cli_wait(pid, 20000), 0);
    char err[512];
    assert_int_equal(kft_compare_store(port, db, NULL, NULL, START_MS, stop_asked - 120000, stderr,
                                       40, &cmp, err, sizeof err),
                     0);
    /* the restart's repairs came at the pace of a 64-row queue: none overflowed it */
    long long dropped_after = kft_log_final_counter(log, "store_dropped");
    printf("store down, after the restart: streams=%zu checked=%zu missing=%zu extra=%zu "
           "differing=%zu store_dropped=%lld\n",
           cmp.streams, cmp.checked, cmp.missing, cmp.extra, cmp.differing, dropped_after);
    /* (a figure of speed: under ThreadSanitizer the daemon's writer is several times slower and
     * a burst can find the queue full; what it drops is fetched again, as asserted below) */
    if (!getenv("KF_TSAN"))
        assert_int_equal(dropped_after, 0);
    assert_int_equal(cmp.streams, NSTREAMS);
    assert_int_equal(cmp.missing + cmp.extra + cmp.differing, 0);
    kft_sim_stop(sim);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_store_down_loses_nothing)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
