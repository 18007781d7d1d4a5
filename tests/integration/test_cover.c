/*
 * Collectors that cover for each other (issue 11). Two `klinefeed run` daemons, A and B, with the
 * same 16 streams of klinefeed-sim at 60x (faults on: resets, server closes, stalls, garbage
 * frames, dropped closing updates, REST 500/slow), each with both stores: the same table of
 * one throw-away PostgreSQL server (pg_proc.h) and the same stream of one nats-server with
 * JetStream (nats_proc.h); each with its own --state-dir. Six rounds kill -9 one of them (A four
 * times, B twice) at varied moments - once 0.7 s after its restart, in the middle of its start -
 * and start it again; the other keeps running. Then calm, and both are stopped with SIGTERM:
 *  1. the table equals the simulator's truth (every closed candle once: the key forbids a second
 *     row; none missing, none differing), and the complete ranges of klines_coverage, checked at
 *     every poll, never claim a candle the table lacks;
 *  2. a JetStream pull consumer reads each closed candle exactly once (no second message for a
 *     key), with its Nats-Msg-Id and subject, equal to the truth;
 *  3. both exit 0 at the end (the other's rows are never an error: what one counts missing at
 *     its stop and the other stored is not missing), a restart resumes from what the stores hold
 *     (it does not fetch the whole history again), no row refused, no password in a log;
 *  4. it really was two writers on the same keys at once: a plain NATS subscriber on the stream's
 *     subjects counts the keys published twice, and twice within 100 ms (both collectors), and
 *     PostgreSQL logs its lock waits (log_lock_waits, deadlock_timeout 1 ms): the two sessions'
 *     waits on each other's uncommitted rows of the same keys (printed, not asserted: how many
 *     depends on the host's timing).
 * No REST 429 fault: the simulator sees both collectors as one address, where a 429 answered to
 * one and a request of the other inside its Retry-After earns both a 418 ban, honoured for at
 * least 2 minutes (the collectors are on two machines).
 * Skipped, with the reason, when the PostgreSQL server binaries or nats-server are absent.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <nats/nats.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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
#include "compare_nats.h"
#include "kftest.h"
#include "nats_proc.h"
#include "pg_proc.h"
#include "sim_proc.h"

#define START_MS 1767225600000LL
#define SYMBOLS "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT,DOGEUSDT,ADAUSDT,AVAXUSDT"
#define INTERVALS "1m,5m"
#define NSTREAMS (8 * 2)
#define STREAM "KLCOVER"
#define PREFIX "kc"
#define SECRET "c0ver-pw"

static kft_pg *g_pg;
static kft_sim *g_sim;
static pid_t g_nats = -1;
static pid_t g_pid[2] = {-1, -1}; /* A, B */
static int g_runs[2];             /* runs started of each */
static char g_store[800];         /* "postgres:CONNINFO" */
static char g_natsink[256];       /* "nats://..." */
static char g_dir[512];

/* ---- the daemons ---- */

static void log_path(int who, int run, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%c%d.log", g_dir, "AB"[who], run);
}

static void spawn(int who, int port)
{
    char ws[64], rest[64], from[32], state[600], log[600];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/market", port);
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", port);
    snprintf(from, sizeof from, "%lld", START_MS);
    snprintf(state, sizeof state, "%s/state-%c", g_dir, "AB"[who]);
    log_path(who, ++g_runs[who], log, sizeof log);
    g_pid[who] = kft_spawn_daemon((const char *const[]){"run",     "--symbols",
                                                        SYMBOLS,   "--intervals",
                                                        INTERVALS, "--ws-url",
                                                        ws,        "--rest-url",
                                                        rest,      "--sink",
                                                        g_store,   "--sink",
                                                        g_natsink, "--backfill-from",
                                                        from,      "--state-dir",
                                                        state,     "--ping-interval-ms",
                                                        "300",     "--liveness-timeout-ms",
                                                        "1200",    "--reconnect-initial-ms",
                                                        "100",     "--reconnect-max-ms",
                                                        "1000",    "--connect-timeout-ms",
                                                        "3000",    "--status-every",
                                                        "0",       NULL},
                                  log);
    assert_true(g_pid[who] > 0);
}

/* The number after " key=" on the first line of log holding msg; -1 when none. */
static long long log_value(const char *log, const char *msg, const char *key)
{
    FILE *f = fopen(log, "r");
    char line[8192], pat[64];
    long long v = -1;
    snprintf(pat, sizeof pat, " %s=", key);
    while (f && v < 0 && fgets(line, sizeof line, f)) {
        const char *p;
        if (strstr(line, msg) && (p = strstr(line, pat)) != NULL)
            v = strtoll(p + strlen(pat), NULL, 10);
    }
    if (f)
        fclose(f);
    return v;
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

/* ---- who published what: a plain NATS subscriber on the stream's subjects ---- */

#define WATCH_SLOTS (1 << 16)
typedef struct watch_key {
    char id[48]; /* Nats-Msg-Id; "" = free slot */
    int count;
    int64_t first_ms;
    bool at_once; /* a second publish within 100 ms of the first */
} watch_key;

static struct {
    pthread_t thread;
    atomic_bool stop;
    natsConnection *nc;
    natsSubscription *sub;
    watch_key keys[WATCH_SLOTS];
    size_t published, nkeys, twice, at_once, full;
} g_watch;

static void watch_add(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = id; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    for (size_t i = 0; i < WATCH_SLOTS; i++) {
        watch_key *k = &g_watch.keys[(h + i) % WATCH_SLOTS];
        if (!k->id[0]) {
            snprintf(k->id, sizeof k->id, "%s", id);
            k->count = 1;
            k->first_ms = kft_now_ms();
            g_watch.nkeys++;
            return;
        }
        if (strcmp(k->id, id) == 0) {
            if (++k->count == 2) {
                g_watch.twice++;
                if (kft_now_ms() - k->first_ms <= 100) {
                    k->at_once = true;
                    g_watch.at_once++;
                }
            }
            return;
        }
    }
    g_watch.full++;
}

static void *watch_run(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_watch.stop)) {
        natsMsg *m = NULL;
        if (natsSubscription_NextMsg(&m, g_watch.sub, 200) != NATS_OK)
            continue;
        const char *id = NULL;
        g_watch.published++;
        if (natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id)
            watch_add(id);
        natsMsg_Destroy(m);
    }
    return NULL;
}

static void watch_start(int nport)
{
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", nport);
    assert_int_equal(natsConnection_ConnectTo(&g_watch.nc, url), NATS_OK);
    assert_int_equal(natsConnection_SubscribeSync(&g_watch.sub, g_watch.nc, PREFIX ".*.*"),
                     NATS_OK);
    assert_int_equal(natsSubscription_SetPendingLimits(g_watch.sub, -1, -1), NATS_OK);
    assert_int_equal(natsConnection_Flush(g_watch.nc), NATS_OK);
    atomic_store(&g_watch.stop, false);
    assert_int_equal(pthread_create(&g_watch.thread, NULL, watch_run, NULL), 0);
}

static void watch_stop(void)
{
    if (!g_watch.nc)
        return;
    atomic_store(&g_watch.stop, true);
    pthread_join(g_watch.thread, NULL);
    int64_t dropped = 0;
    natsSubscription_GetDropped(g_watch.sub, &dropped);
    natsSubscription_Destroy(g_watch.sub);
    natsConnection_Destroy(g_watch.nc);
    g_watch.nc = NULL;
    g_watch.sub = NULL;
    assert_int_equal(dropped, 0);
}

/* ---- PostgreSQL: lock waits logged, the complete ranges checked ---- */

static PGconn *pg_connect(void)
{
    PGconn *c = PQconnectdb(g_pg->conninfo);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("postgres: %s", PQerrorMessage(c));
    return c;
}

static void pg_run(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("postgres: %s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
}

/* The end of each stream's recorded range when last read (symbol + interval), to tell whether
 * it ever moves back: a record that shrinks makes the next start read again what was known. */
static struct {
    char key[32];
    long long to;
} g_cover_seen[NSTREAMS];
static size_t g_cover_back;

static void cover_track(const char *sym, const char *iv, long long to)
{
    char key[32];
    snprintf(key, sizeof key, "%s %s", sym, iv);
    for (size_t i = 0; i < NSTREAMS; i++) {
        if (!g_cover_seen[i].key[0])
            snprintf(g_cover_seen[i].key, sizeof g_cover_seen[i].key, "%s", key);
        else if (strcmp(g_cover_seen[i].key, key) != 0)
            continue;
        if (to < g_cover_seen[i].to) {
            g_cover_back++;
            fprintf(stderr, "coverage of %s moved back: to_time %lld after %lld\n", key, to,
                    g_cover_seen[i].to);
        }
        g_cover_seen[i].to = to;
        return;
    }
}

/* Every complete range recorded (klines_coverage) against the table, in one snapshot: a range
 * must hold every candle of its span (1m and 5m have a fixed length). Returns the ranges that do
 * not (printed); *ranges counts them all. Each range's end is also tracked (cover_track). */
static size_t cover_bad(PGconn *c, size_t *ranges)
{
    PGresult *r = PQexec(c, "SELECT c.symbol, c.interval, c.from_time, c.to_time, (SELECT "
                            "count(*) FROM klines k WHERE k.symbol = c.symbol AND k.interval = "
                            "c.interval AND k.closed AND k.open_time BETWEEN c.from_time AND "
                            "c.to_time) FROM klines_coverage c");
    *ranges = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        /* (before the first collector created its tables: nothing recorded yet) */
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool none = st && strcmp(st, "42P01") == 0;
        if (!none)
            fprintf(stderr, "postgres: klines_coverage: %s", PQerrorMessage(c));
        PQclear(r);
        return none ? 0 : 1;
    }
    size_t bad = 0;
    *ranges = (size_t)PQntuples(r);
    for (int i = 0; i < PQntuples(r); i++) {
        const char *iv = PQgetvalue(r, i, 1);
        long long from = strtoll(PQgetvalue(r, i, 2), NULL, 10);
        long long to = strtoll(PQgetvalue(r, i, 3), NULL, 10);
        long long have = strtoll(PQgetvalue(r, i, 4), NULL, 10);
        long long len = strcmp(iv, "1m") == 0 ? 60000 : 300000;
        long long want = to >= from ? (to - from) / len + 1 : 0;
        cover_track(PQgetvalue(r, i, 0), iv, to);
        if (have != want || from < START_MS) {
            bad++;
            fprintf(stderr,
                    "coverage claims %s %s [%lld, %lld] complete (%lld candles), the table "
                    "holds %lld of them\n",
                    PQgetvalue(r, i, 0), iv, from, to, want, have);
        }
    }
    PQclear(r);
    return bad;
}

/* klines_coverage read every 200 ms while the collectors run, on a connection of its own. */
static struct {
    pthread_t thread;
    bool running;
    atomic_bool stop;
    PGconn *conn;
    size_t polls, bad, ranges;
} g_cw;

static void *cover_watch_run(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_cw.stop)) {
        g_cw.bad += cover_bad(g_cw.conn, &g_cw.ranges);
        g_cw.polls++;
        usleep(200000);
    }
    return NULL;
}

static void cover_watch_stop(void)
{
    if (!g_cw.running)
        return;
    atomic_store(&g_cw.stop, true);
    pthread_join(g_cw.thread, NULL);
    g_cw.running = false;
    PQfinish(g_cw.conn);
    g_cw.conn = NULL;
}

static long long pg_deadlocks(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT deadlocks FROM pg_stat_database WHERE datname = "
                            "current_database()");
    long long n = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
                      ? strtoll(PQgetvalue(r, 0, 0), NULL, 10)
                      : -1;
    PQclear(r);
    return n;
}

/* ---- the stores against the truth ---- */

static void read_nats(int port, int nport, int64_t to_ms, kft_nats_read *rd, kft_cmp *cmp,
                      FILE *verbose)
{
    static int n;
    char url[64], db[600], consumer[32], err[512];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", nport);
    snprintf(db, sizeof db, "%s/read-%d.db", g_dir, ++n);
    snprintf(consumer, sizeof consumer, "check%d", n);
    if (kft_nats_read_stream(url, STREAM, PREFIX, consumer, db, rd, err, sizeof err) != 0)
        fail_msg("nats read: %s", err);
    if (kft_compare_store(port, db, NULL, NULL, START_MS, to_ms, verbose, 40, cmp, err,
                          sizeof err) != 0)
        fail_msg("compare nats: %s", err);
    unlink(db);
}

static void read_pg(int port, int64_t to_ms, kft_cmp *cmp, FILE *verbose)
{
    char err[512];
    if (kft_compare_store(port, g_store, NULL, NULL, START_MS, to_ms, verbose, 40, cmp, err,
                          sizeof err) != 0)
        fail_msg("compare postgres: %s", err);
}

static bool clean(const kft_cmp *c)
{
    return c->streams == NSTREAMS && c->missing + c->extra + c->differing == 0;
}

/* ---- the test ---- */

static void test_cover(void **state)
{
    (void)state;
    char why[256];
    if (!kft_pg_available(why, sizeof why)) {
        print_message("skipped: %s\n", why);
        skip();
    }
    if (!kft_nats_find()) {
        print_message("skipped: nats-server not installed (scripts/setup.sh installs it)\n");
        skip();
    }
    char *dir = kft_tmpdir();
    assert_non_null(dir);
    snprintf(g_dir, sizeof g_dir, "%s", dir);
    free(dir);
    g_pg = kft_pg_start();
    assert_non_null(g_pg);
    /* trust authentication: the password is carried, never needed, and must never be shown */
    snprintf(g_store, sizeof g_store, "postgres:%s password=" SECRET, g_pg->conninfo);
    PGconn *pc = pg_connect();
    pg_run(pc, "ALTER SYSTEM SET log_lock_waits = on");
    pg_run(pc, "ALTER SYSTEM SET deadlock_timeout = '1ms'");
    pg_run(pc, "SELECT pg_reload_conf()");
    g_cw.conn = pg_connect();
    int nport = kft_free_port();
    g_nats = kft_nats_start(nport, g_dir);
    snprintf(g_natsink, sizeof g_natsink,
             "nats://127.0.0.1:%d?stream=" STREAM "&prefix=" PREFIX "&timeout=3s", nport);
    watch_start(nport);
    g_sim = kft_sim_start((const char *[]){"--speed",
                                           "60",
                                           "--symbols",
                                           SYMBOLS,
                                           "--faults-start-ms",
                                           "1000",
                                           "--faults-stop-ms",
                                           "35000",
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
                                           "--rest-500-rate",
                                           "0.05",
                                           "--rest-slow-rate",
                                           "0.05",
                                           "--rest-slow-ms",
                                           "500",
                                           NULL});
    assert_non_null(g_sim);
    int port = kft_sim_port(g_sim);

    int64_t t0 = kft_now_ms();
    spawn(0, port);
    spawn(1, port);
    assert_int_equal(pthread_create(&g_cw.thread, NULL, cover_watch_run, NULL), 0);
    g_cw.running = true;

    /* kill -9 one of them at varied moments (ms after the previous round), start it again
     * after down_ms; the other keeps collecting */
    static const struct {
        int who, after_ms, down_ms;
    } rounds[] = {{0, 4000, 0},    {0, 700, 1500}, {1, 5000, 500},
                  {0, 3300, 3000}, {1, 2200, 0},   {0, 6100, 800}};
    size_t kills = 0;
    for (size_t i = 0; i < sizeof rounds / sizeof rounds[0]; i++) {
        usleep((useconds_t)rounds[i].after_ms * 1000);
        int w = rounds[i].who;
        assert_int_equal(kft_cli_wait(g_pid[1 - w], 0), -1); /* the other one still runs */
        kill(g_pid[w], SIGKILL);
        assert_int_equal(kft_cli_wait(g_pid[w], 10000), 128 + SIGKILL);
        g_pid[w] = -1;
        kills++;
        usleep((useconds_t)rounds[i].down_ms * 1000);
        spawn(w, port);
    }

    /* calm (the faults stop at 35 s): wait until both stores equal the truth */
    kft_cmp pcmp, ncmp;
    kft_nats_read rd;
    int64_t end = kft_now_ms() + 150000;
    do {
        sleep(2);
        assert_int_equal(kft_cli_wait(g_pid[0], 0), -1);
        assert_int_equal(kft_cli_wait(g_pid[1], 0), -1);
        read_pg(port, INT64_MAX, &pcmp, NULL);
        fprintf(stderr, "poll t=%lld pg missing=%zu extra=%zu differing=%zu\n",
                (long long)(kft_now_ms() - t0), pcmp.missing, pcmp.extra, pcmp.differing);
        if (!clean(&pcmp))
            continue;
        read_nats(port, nport, INT64_MAX, &rd, &ncmp, NULL);
        fprintf(stderr, "poll t=%lld pg missing=%zu nats missing=%zu extra=%zu dup=%zu\n",
                (long long)(kft_now_ms() - t0), pcmp.missing, ncmp.missing, ncmp.extra,
                rd.duplicates);
    } while ((!clean(&pcmp) || !clean(&ncmp) || rd.duplicates) && kft_now_ms() < end);

    static kft_sim_state st; /* large: off the stack */
    assert_true(kft_sim_state_get(port, &st));
    int64_t stop_asked = st.now;
    int code[2];
    for (int w = 0; w < 2; w++)
        kill(g_pid[w], SIGTERM);
    for (int w = 0; w < 2; w++) {
        code[w] = kft_cli_wait(g_pid[w], 30000);
        g_pid[w] = -1;
    }
    watch_stop();
    cover_watch_stop();

    /* what every reader must find: each closed candle once, equal to the truth (up to the stop,
     * less the 2 s = 120 simulated s a closing update may still be in flight) */
    read_pg(port, stop_asked - 120000, &pcmp, stderr);
    read_nats(port, nport, stop_asked - 120000, &rd, &ncmp, stderr);
    size_t cover_ranges = 0, cover_bad_total = g_cw.bad + cover_bad(pc, &cover_ranges);
    long long deadlocks = pg_deadlocks(pc);
    PQfinish(pc);
    char slog[600];
    snprintf(slog, sizeof slog, "%s/server.log", g_pg->dir);
    size_t lock_waits = log_count(slog, "still waiting for");

    /* what each start found in the stores */
    long long resumed_missing = 0, max_missing = 0;
    size_t starts = 0, leaked = 0, retried = 0, held = 0;
    for (int w = 0; w < 2; w++)
        for (int r = 1; r <= g_runs[w]; r++) {
            char log[600];
            log_path(w, r, log, sizeof log);
            long long m = log_value(log, "msg=\"resuming from the stores\"", "missing_candles");
            if (r > 1 && m >= 0) {
                starts++;
                resumed_missing += m;
                if (m > max_missing)
                    max_missing = m;
            }
            leaked += log_count(log, SECRET);
            held += log_count(log, "another collector stored them");
            retried += log_count(log, "failed, retrying\" spec=");
        }
    char loga[600], logb[600];
    log_path(0, g_runs[0], loga, sizeof loga);
    log_path(1, g_runs[1], logb, sizeof logb);
    long long rejected = log_count(loga, "refused a row") + log_count(logb, "refused a row");

    printf("cover: kills=%zu streams=%zu checked=%zu missing=%zu extra=%zu differing=%zu "
           "nats_dupes=%zu | nats: messages=%zu keys=%zu missing=%zu extra=%zu differing=%zu "
           "bad=%zu | exit A=%d B=%d\n",
           kills, pcmp.streams, pcmp.checked, pcmp.missing, pcmp.extra, pcmp.differing,
           rd.duplicates, rd.messages, rd.stored, ncmp.missing, ncmp.extra, ncmp.differing, rd.bad,
           code[0], code[1]);
    printf("cover: both at once: nats publishes=%zu keys=%zu published_twice=%zu "
           "within_100ms=%zu | postgres lock_waits=%zu deadlocks=%lld | coverage ranges=%zu "
           "polls=%zu bad=%zu moved_back=%zu | restarts resumed=%zu missing_candles=%lld (max %lld "
           "of %zu) | "
           "stops_finding_the_others_rows=%zu sink_retries_logged=%zu rows_refused=%lld\n",
           g_watch.published, g_watch.nkeys, g_watch.twice, g_watch.at_once, lock_waits, deadlocks,
           cover_ranges, g_cw.polls, cover_bad_total, g_cover_back, starts, resumed_missing,
           max_missing, pcmp.checked, held, retried, rejected);

    assert_int_equal(code[0], 0);
    assert_int_equal(code[1], 0);
    assert_int_equal(pcmp.streams, NSTREAMS);
    assert_true(pcmp.checked > 0);
    assert_int_equal(pcmp.missing + pcmp.extra + pcmp.differing, 0);
    assert_int_equal(ncmp.streams, NSTREAMS);
    assert_int_equal(ncmp.missing + ncmp.extra + ncmp.differing, 0);
    assert_int_equal(rd.duplicates, 0);
    assert_int_equal(rd.bad, 0);
    assert_int_equal(rd.messages, rd.stored);
    assert_int_equal(cover_bad_total, 0);
    assert_int_equal(cover_ranges, NSTREAMS);
    assert_int_equal(g_cover_back, 0);
    assert_int_equal(rejected, 0);
    assert_int_equal(leaked, 0);
    assert_int_equal(g_watch.full, 0);
    /* both collectors published the same keys, some at the same moment (what each finds in the
     * stores when it starts it never publishes again: how many depends on the host's speed) */
    assert_true(g_watch.twice * 10 > g_watch.nkeys);
    assert_true(g_watch.at_once > 0);
    /* a restart resumes from the stores: it never asks for the whole history again */
    assert_true(starts > 0);
    assert_true((size_t)max_missing * 4 < pcmp.checked);
}

/* Whatever happened: the daemons, the servers and the simulator stopped. */
static int teardown(void **state)
{
    (void)state;
    for (int w = 0; w < 2; w++)
        if (g_pid[w] > 0) {
            kill(g_pid[w], SIGKILL);
            waitpid(g_pid[w], NULL, 0);
            g_pid[w] = -1;
        }
    if (g_watch.nc) {
        atomic_store(&g_watch.stop, true);
        pthread_join(g_watch.thread, NULL);
        natsSubscription_Destroy(g_watch.sub);
        natsConnection_Destroy(g_watch.nc);
        g_watch.nc = NULL;
    }
    cover_watch_stop();
    kft_nats_kill(&g_nats);
    kft_sim_stop(g_sim);
    kft_pg_destroy(g_pg);
    g_sim = NULL;
    g_pg = NULL;
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test_teardown(test_cover, teardown)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
