/*
 * The NATS JetStream store loses nothing and doubles nothing. A real nats-server (-js, its store
 * in a temporary directory) started by the test; the `klinefeed` daemon collects 12 streams
 * from klinefeed-sim at 60x with its faults on (resets, server closes, stalls, garbage frames,
 * dropped closing updates, REST 429/500/slow) into --sink nats://...:
 *  1. nats-server killed -9 mid-run and restarted on its port after 4 s: the daemon keeps
 *     running, its writer retries, the unacknowledged batches are published again;
 *  2. the daemon SIGTERMed and restarted, then killed -9 and restarted: each start reads the
 *     stream back (stored()) and resumes after what it holds, asking REST for the rest;
 *  3. then calm: a JetStream pull consumer reads the stream from its start, acknowledging every
 *     message, and must see each closed candle exactly once (no second message for a key), with
 *     the Nats-Msg-Id and subject of its key, equal to the simulator's truth.
 * Skipped (with the reason) only when nats-server is not installed; scripts/setup.sh installs it.
 * The server is stopped at the end whatever happens (teardown; and it dies with the test process).
 */
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
#include <nats/nats.h>

#include "cli_proc.h"
#include "compare.h"
#include "compare_nats.h"
#include "kftest.h"
#include "nats_proc.h"
#include "sim_proc.h"

#define START_MS 1767225600000LL
#define SYMBOLS "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT"
#define NSTREAMS (4 * 3)
#define STREAM "KLTEST"
#define PREFIX "kl"

static pid_t server_pid = -1, daemon_pid = -1;
static kft_sim *sim;

static void server_start(int port, const char *dir)
{
    server_pid = kft_nats_start(port, dir);
}

static void server_kill(void)
{
    kft_nats_kill(&server_pid);
}

static pid_t spawn_collector(int port, int nport, const char *log)
{
    char ws[64], rest[64], sink[256], from[32];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/market", port);
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", port);
    snprintf(sink, sizeof sink,
             "nats://127.0.0.1:%d?stream=" STREAM "&prefix=" PREFIX "&timeout=3s&live=1", nport);
    snprintf(from, sizeof from, "%lld", START_MS);
    return kft_spawn_daemon((const char *const[]){"run",
                                                  "--symbols",
                                                  SYMBOLS,
                                                  "--intervals",
                                                  "1m,3m,5m",
                                                  "--ws-url",
                                                  ws,
                                                  "--rest-url",
                                                  rest,
                                                  "--sink",
                                                  sink,
                                                  "--backfill-from",
                                                  from,
                                                  "--all-updates",
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

/* The live feed (live=1 with --all-updates): core NATS messages on PREFIX.live.SYM.IV for
 * ms, open candles among them; counts open and closed ones. */
static void live_count(int nport, int ms, size_t *open, size_t *closed, size_t *bad)
{
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", nport);
    natsConnection *nc = NULL;
    natsSubscription *sub = NULL;
    assert_int_equal(natsConnection_ConnectTo(&nc, url), NATS_OK);
    assert_int_equal(natsConnection_SubscribeSync(&sub, nc, PREFIX ".live.>"), NATS_OK);
    *open = *closed = *bad = 0;
    int64_t end = kft_now_ms() + ms;
    while (kft_now_ms() < end) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, sub, 200) != NATS_OK)
            continue;
        const char *d = natsMsg_GetData(m);
        const char *subj = natsMsg_GetSubject(m);
        if (!d || strncmp(subj, PREFIX ".live.", strlen(PREFIX ".live.")) != 0 || d[0] != '{')
            (*bad)++;
        else if (strstr(d, "\"closed\":false"))
            (*open)++;
        else if (strstr(d, "\"closed\":true"))
            (*closed)++;
        else
            (*bad)++;
        natsMsg_Destroy(m);
    }
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(nc);
}

/* Reads the whole stream with a fresh pull consumer into dir/read-N.db and compares it with the
 * truth from START_MS to to_ms. */
static void read_compare(int port, int nport, const char *dir, int64_t to_ms, kft_nats_read *rd,
                         kft_cmp *cmp, FILE *verbose)
{
    static int n;
    char url[64], db[512], consumer[32], err[512];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", nport);
    snprintf(db, sizeof db, "%s/read-%d.db", dir, ++n);
    snprintf(consumer, sizeof consumer, "check%d", n);
    unlink(db);
    if (kft_nats_read_stream(url, STREAM, PREFIX, consumer, db, rd, err, sizeof err) != 0) {
        fprintf(stderr, "read: %s\n", err);
        fail();
    }
    if (kft_compare_store(port, db, NULL, NULL, START_MS, to_ms, verbose, 40, cmp, err,
                          sizeof err) != 0) {
        fprintf(stderr, "compare: %s\n", err);
        fail();
    }
}

static void test_nats_store_server_and_daemon_killed(void **state)
{
    (void)state;
    if (!kft_nats_find()) {
        printf("nats-server not installed (scripts/setup.sh installs it): skipped\n");
        skip();
    }
    sim = kft_sim_start((const char *[]){"--speed",
                                         "60",
                                         "--symbols",
                                         SYMBOLS,
                                         "--faults-start-ms",
                                         "1000",
                                         "--faults-stop-ms",
                                         "30000",
                                         "--fault-seed",
                                         "11",
                                         "--fault-reset-every",
                                         "3",
                                         "--fault-close-every",
                                         "5",
                                         "--fault-stall-every",
                                         "7",
                                         "--fault-garbage-every",
                                         "0.5",
                                         "--drop-close-rate",
                                         "0.15",
                                         "--rest-429-rate",
                                         "0.05",
                                         "--rest-500-rate",
                                         "0.05",
                                         "--rest-slow-rate",
                                         "0.05",
                                         "--rest-slow-ms",
                                         "500",
                                         "--ban-ms",
                                         "3000",
                                         NULL});
    assert_non_null(sim);
    int port = kft_sim_port(sim);
    char *dir = kft_tmpdir();
    char log[512];
    snprintf(log, sizeof log, "%s/collector.log", dir);
    int nport = kft_free_port();
    server_start(nport, dir);

    /* 1. the server killed -9 mid-run, back after 4 s */
    daemon_pid = spawn_collector(port, nport, log);
    sleep(6);
    server_kill();
    sleep(4);
    assert_int_equal(kft_cli_wait(daemon_pid, 0), -1); /* still running */
    server_start(nport, dir);
    sleep(6);

    /* 2. the daemon SIGTERMed and restarted, then killed -9 and restarted */
    kill(daemon_pid, SIGTERM);
    int code1 = kft_cli_wait(daemon_pid, 20000);
    assert_true(code1 == 0 || code1 == 4);
    daemon_pid = spawn_collector(port, nport, log);
    sleep(5);
    kill(daemon_pid, SIGKILL);
    assert_int_equal(kft_cli_wait(daemon_pid, 10000), 128 + SIGKILL);
    daemon_pid = spawn_collector(port, nport, log);

    /* the live feed: open updates too, best effort beside the stream */
    size_t lopen, lclosed, lbad;
    live_count(nport, 3000, &lopen, &lclosed, &lbad);
    printf("live feed in 3 s: open=%zu closed=%zu bad=%zu\n", lopen, lclosed, lbad);
    assert_true(lopen > 0);
    assert_int_equal(lbad, 0);

    /* 3. calm (the faults stop at 30 s): wait until the stream equals the truth */
    kft_nats_read rd;
    kft_cmp cmp;
    int64_t end = kft_now_ms() + 90000;
    sleep(10);
    do {
        sleep(2);
        read_compare(port, nport, dir, INT64_MAX, &rd, &cmp, NULL);
    } while ((cmp.streams != NSTREAMS || cmp.missing + cmp.extra + cmp.differing != 0) &&
             kft_now_ms() < end);
    static kft_sim_state st; /* large: off the stack */
    assert_true(kft_sim_state_get(port, &st));
    int64_t stop_asked = st.now;
    kill(daemon_pid, SIGTERM);
    int code = kft_cli_wait(daemon_pid, 20000);
    daemon_pid = -1;

    /* what every consumer must read: each closed candle once, equal to the truth (up to the
     * stop, less the 2 s = 120 simulated s a closing update may still be in flight) */
    read_compare(port, nport, dir, stop_asked - 120000, &rd, &cmp, stderr);
    printf("nats store: server killed -9 + restarted, daemon SIGTERM (exit %d) + kill -9: "
           "streams=%zu checked=%zu missing=%zu extra=%zu differing=%zu | consumer: "
           "messages=%zu keys=%zu duplicates=%zu bad=%zu redelivered=%zu | exit=%d\n",
           code1, cmp.streams, cmp.checked, cmp.missing, cmp.extra, cmp.differing, rd.messages,
           rd.stored, rd.duplicates, rd.bad, rd.redelivered, code);
    assert_int_equal(code, 0);
    assert_int_equal(cmp.streams, NSTREAMS);
    assert_true(cmp.checked > 0);
    assert_int_equal(cmp.missing + cmp.extra + cmp.differing, 0);
    assert_int_equal(rd.duplicates, 0);
    assert_int_equal(rd.bad, 0);
    assert_int_equal(rd.messages, rd.stored);
    free(dir);
}

/* Whatever happened: the daemon, the server and the simulator stopped. */
static int teardown(void **state)
{
    (void)state;
    if (daemon_pid > 0) {
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, NULL, 0);
        daemon_pid = -1;
    }
    server_kill();
    if (sim) {
        kft_sim_stop(sim);
        sim = NULL;
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_nats_store_server_and_daemon_killed, teardown)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
