/*
 * `klinefeed run --http ADDR:PORT` against klinefeed-sim at 60x: one daemon (8 streams, a
 * SQLite store, liveness 3 s so that a stalled exchange is noticed quickly) for every test:
 *  - /metrics: 200, text/plain; version=0.0.4, every counter of kf_stats_name() as a metric
 *    (klinefeed_<name>_total, a gauge without _total), per-stream, per-connection and per-store
 *    samples, klinefeed_build_info; /healthz; 404 and 405;
 *  - `promtool check metrics` finds nothing in it;
 *  - a real Prometheus server scrapes it every second and its HTTP API answers
 *    klinefeed_closed_total > 0;
 *  - 200 concurrent clients hammering /metrics and /readyz do not stall the collector: frames
 *    per second during the burst stay above half of the rate just before, no connection lost;
 *  - /readyz: 200; 503 naming the connection and the streams while the simulator is stopped
 *    (SIGSTOP), 200 again after SIGCONT; 503 naming the store while another process holds the
 *    database locked (BEGIN EXCLUSIVE), 200 again once released.
 * Skips the promtool and Prometheus tests only when those programs are not installed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_proc.h"
#include "kftest.h"
#include "sim_proc.h"

#define SYMBOLS "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT"
#define INTERVALS "1m,5m"
#define NSTREAMS 8
#define BODY_MAX (1 << 20)

static struct {
    kft_sim *sim;
    pid_t daemon;
    int http_port;
    char dir[256], db[512], log[512], spec[600];
} g;

/* ---- a plain HTTP/1.0 client: status, headers and body ---- */

typedef struct reply {
    int status;
    char head[4096];
    char *body; /* BODY_MAX */
} reply;

static int connect_port(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* method path on 127.0.0.1:port; false when the exchange failed. */
static bool http_req(int port, const char *method, const char *path, reply *r)
{
    r->status = -1;
    r->head[0] = 0;
    if (r->body)
        r->body[0] = 0;
    int fd = connect_port(port);
    if (fd < 0)
        return false;
    char req[512];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", method, path);
    if (write(fd, req, (size_t)n) != n) {
        close(fd);
        return false;
    }
    size_t len = 0, cap = 16384;
    char *raw = malloc(cap);
    ssize_t k = 1;
    while (raw && k > 0 && len < BODY_MAX) {
        if (len + 1 == cap) {
            char *bigger = realloc(raw, cap *= 2);
            if (!bigger)
                break;
            raw = bigger;
        }
        k = read(fd, raw + len, cap - 1 - len);
        if (k > 0)
            len += (size_t)k;
    }
    close(fd);
    if (!raw)
        return false;
    raw[len] = 0;
    char *end = strstr(raw, "\r\n\r\n");
    if (!end || sscanf(raw, "HTTP/1.%*d %d", &r->status) != 1) {
        free(raw);
        return false;
    }
    size_t hl = (size_t)(end - raw);
    snprintf(r->head, sizeof r->head, "%.*s", (int)(hl < sizeof r->head - 1 ? hl : 4000), raw);
    if (r->body)
        snprintf(r->body, BODY_MAX, "%s", end + 4);
    free(raw);
    return true;
}

static int get(const char *path, reply *r)
{
    if (!r->body)
        r->body = malloc(BODY_MAX);
    assert_non_null(r->body);
    http_req(g.http_port, "GET", path, r);
    return r->status;
}

/* The value of a sample line "name value" (or "name{...} value" with the labels given), -1
 * when absent. */
static double sample(const char *body, const char *name_and_labels)
{
    size_t nl = strlen(name_and_labels);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name_and_labels, nl) == 0 && p[nl] == ' ')
            return strtod(p + nl + 1, NULL);
    }
    return -1;
}

static double metric_now(const char *name)
{
    reply r = {0};
    get("/metrics", &r);
    double v = r.status == 200 ? sample(r.body, name) : -1;
    free(r.body);
    return v;
}

/* Polls path until its status is want (at most timeout_ms); returns the last status; the last
 * body in r. */
static int wait_status(const char *path, int want, int timeout_ms, reply *r)
{
    int64_t end = kft_now_ms() + timeout_ms;
    for (;;) {
        int st = get(path, r);
        if (st == want || kft_now_ms() > end)
            return st;
        usleep(200 * 1000);
    }
}

/* ---- the daemon ---- */

static int find_http_port(const char *log, int timeout_ms)
{
    int64_t end = kft_now_ms() + timeout_ms;
    while (kft_now_ms() < end) {
        FILE *f = fopen(log, "r");
        char line[4096];
        while (f && fgets(line, sizeof line, f)) {
            const char *p = strstr(line, "msg=\"http listening\"");
            const char *q = p ? strstr(p, " port=") : NULL;
            if (q) {
                fclose(f);
                return atoi(q + 6);
            }
        }
        if (f)
            fclose(f);
        usleep(50 * 1000);
    }
    return -1;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    char *dir = kft_tmpdir();
    if (!dir)
        return -1;
    snprintf(g.dir, sizeof g.dir, "%s", dir);
    free(dir);
    snprintf(g.db, sizeof g.db, "%s/klines.db", g.dir);
    snprintf(g.log, sizeof g.log, "%s/daemon.log", g.dir);
    snprintf(g.spec, sizeof g.spec, "sqlite:%s", g.db);
    g.sim = kft_sim_start((const char *const[]){"--speed", "60", NULL});
    if (!g.sim)
        return -1;
    char ws[64], rest[64];
    snprintf(ws, sizeof ws, "ws://127.0.0.1:%d/market", kft_sim_port(g.sim));
    snprintf(rest, sizeof rest, "http://127.0.0.1:%d", kft_sim_port(g.sim));
    g.daemon = kft_spawn_daemon((const char *const[]){"run",
                                                      "--symbols",
                                                      SYMBOLS,
                                                      "--intervals",
                                                      INTERVALS,
                                                      "--ws-url",
                                                      ws,
                                                      "--rest-url",
                                                      rest,
                                                      "--sink",
                                                      g.spec,
                                                      "--state-dir",
                                                      "none",
                                                      "--http",
                                                      "127.0.0.1:0",
                                                      "--ping-interval-ms",
                                                      "1000",
                                                      "--liveness-timeout-ms",
                                                      "3000",
                                                      "--reconnect-max-ms",
                                                      "1000",
                                                      "--connect-timeout-ms",
                                                      "2000",
                                                      NULL},
                                g.log);
    if (g.daemon <= 0)
        return -1;
    g.http_port = find_http_port(g.log, 20000);
    if (g.http_port <= 0) {
        fprintf(stderr, "no \"http listening\" line in %s\n", g.log);
        return -1;
    }
    reply r = {0};
    int st = wait_status("/readyz", 200, 30000, &r);
    if (st != 200)
        fprintf(stderr, "/readyz never 200: %d %s\n", st, r.body ? r.body : "");
    free(r.body);
    return st == 200 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    int rc = 0;
    if (g.daemon > 0) {
        kill(g.daemon, SIGTERM);
        int status = 0;
        for (int i = 0; i < 300 && waitpid(g.daemon, &status, WNOHANG) == 0; i++)
            usleep(100 * 1000);
        if (waitpid(g.daemon, &status, WNOHANG) == 0) {
            kill(g.daemon, SIGKILL);
            waitpid(g.daemon, &status, 0);
            rc = -1;
        }
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        fprintf(stderr, "daemon exit status %d\n", code);
        if (code != 0) { /* every candle stored; under ASan also: no error, no leak */
            fprintf(stderr, "the daemon did not exit 0: its log is %s\n", g.log);
            setenv("KF_KEEP_TMP", "1", 1);
            rc = -1;
        }
    }
    kft_sim_stop(g.sim);
    if (strncmp(g.dir, "/tmp/", 5) == 0 && !getenv("KF_KEEP_TMP")) { /* the test's own */
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g.dir);
        if (system(cmd) != 0)
            rc = -1;
    }
    return rc;
}

/* ---- tests ---- */

static void test_metrics_content(void **state)
{
    (void)state;
    reply r = {0};
    /* until every stream has a closed candle (5m: every 5 s at 60x); NaN before */
    int64_t end = kft_now_ms() + 30000;
    while (get("/metrics", &r) == 200 && kft_now_ms() < end) {
        size_t have = 0;
        for (const char *p = r.body;
             (p = strstr(p, "klinefeed_stream_last_closed_open_time_seconds{")); p++)
            have += strtod(strchr(p, '}') + 2, NULL) > 0;
        if (have == NSTREAMS)
            break;
        usleep(200 * 1000);
    }
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "\nContent-Type: text/plain; version=0.0.4"));
    const char *b = r.body;
    /* every counter of the library's list, with HELP and TYPE */
    for (size_t i = 0; i < kf_stats_count(); i++) {
        char name[128], line[192];
        bool counter = kf_stats_kind(i) == KF_STAT_COUNTER;
        snprintf(name, sizeof name, "klinefeed_%s%s", kf_stats_name(i), counter ? "_total" : "");
        snprintf(line, sizeof line, "# TYPE %s %s\n", name, counter ? "counter" : "gauge");
        if (!strstr(b, line))
            fail_msg("no \"%s\" in /metrics", line);
        if (sample(b, name) < 0)
            fail_msg("no sample of %s in /metrics", name);
    }
    /* the state no counter holds */
    assert_true(sample(b, "klinefeed_closed_total") > 0);
    assert_true(sample(b, "klinefeed_frames_total") > 0);
    assert_true(sample(b, "klinefeed_connections_up") == 1);
    assert_true(sample(b, "klinefeed_connection_up{connection=\"0\"}") == 1);
    assert_true(sample(b, "klinefeed_connection_age_seconds{connection=\"0\"}") > 0);
    assert_true(sample(b, "klinefeed_running") == 1);
    char name[256];
    for (const char *sym = "btcusdt\0ethusdt\0bnbusdt\0solusdt\0"; *sym; sym += strlen(sym) + 1)
        for (const char *iv = "1m\0005m\0"; *iv; iv += strlen(iv) + 1) {
            snprintf(name, sizeof name,
                     "klinefeed_stream_last_closed_open_time_seconds{stream=\"%s@kline_%s\"}", sym,
                     iv);
            /* the simulator starts at 2026-01-01 */
            if (!(sample(b, name) >= 1767225600))
                fail_msg("%s: %g", name, sample(b, name));
            snprintf(name, sizeof name,
                     "klinefeed_stream_last_update_age_seconds{stream=\"%s@kline_%s\"}", sym, iv);
            double age = sample(b, name);
            if (!(age >= 0 && age < 5))
                fail_msg("%s: %g", name, age);
            snprintf(name, sizeof name, "klinefeed_stream_live{stream=\"%s@kline_%s\"}", sym, iv);
            assert_true(sample(b, name) == 1);
        }
    snprintf(name, sizeof name, "klinefeed_store_rows_total{store=\"%s\"}", g.spec);
    assert_true(sample(b, name) > 0);
    snprintf(name, sizeof name, "klinefeed_store_healthy{store=\"%s\"}", g.spec);
    assert_true(sample(b, name) == 1);
    snprintf(name, sizeof name, "klinefeed_store_queue_capacity_rows{store=\"%s\"}", g.spec);
    assert_true(sample(b, name) == 65536);
    snprintf(name, sizeof name, "klinefeed_build_info{version=\"%s\",library=\"%s\"}",
             KF_VERSION_STRING, kf_version());
    assert_true(sample(b, name) == 1);

    assert_int_equal(get("/healthz", &r), 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}\n");
    assert_int_equal(get("/nope", &r), 404);
    assert_true(http_req(g.http_port, "POST", "/metrics", &r));
    assert_int_equal(r.status, 405);
    free(r.body);
}

static bool have_program(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static void test_promtool(void **state)
{
    (void)state;
    if (!have_program("promtool"))
        skip();
    reply r = {0};
    assert_int_equal(get("/metrics", &r), 200);
    char path[600], out[600], cmd[1400];
    snprintf(path, sizeof path, "%s/metrics.txt", g.dir);
    snprintf(out, sizeof out, "%s/promtool.out", g.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(r.body, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "promtool check metrics < '%s' > '%s' 2>&1", path, out);
    int st = system(cmd);
    f = fopen(out, "r");
    char text[4096] = "";
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    text[n] = 0;
    if (f)
        fclose(f);
    if (st != 0 || n != 0)
        fail_msg("promtool check metrics: status %d: %s", st, text);
    free(r.body);
}

/* A port free now on 127.0.0.1 (bound to 0, read, closed). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_prometheus_scrape(void **state)
{
    (void)state;
    if (!have_program("prometheus"))
        skip();
    char conf[600], data[600], plog[600];
    snprintf(conf, sizeof conf, "%s/prometheus.yml", g.dir);
    snprintf(data, sizeof data, "%s/prometheus-data", g.dir);
    snprintf(plog, sizeof plog, "%s/prometheus.log", g.dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: klinefeed\n    static_configs:\n"
            "      - targets: ['127.0.0.1:%d']\n",
            g.http_port);
    fclose(f);
    int pport = free_port();
    char listen[64], cfgarg[700], dataarg[700];
    snprintf(listen, sizeof listen, "--web.listen-address=127.0.0.1:%d", pport);
    snprintf(cfgarg, sizeof cfgarg, "--config.file=%s", conf);
    snprintf(dataarg, sizeof dataarg, "--storage.tsdb.path=%s", data);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *lf = freopen(plog, "w", stderr);
        (void)lf;
        dup2(2, 1);
        execlp("prometheus", "prometheus", cfgarg, dataarg, listen, "--log.level=warn",
               (char *)NULL);
        _exit(127);
    }
    /* klinefeed_closed_total as Prometheus stored it: scraped, parsed, queryable */
    double v = -1;
    char body[8192] = "";
    int64_t end = kft_now_ms() + 60000;
    while (kft_now_ms() < end && v <= 0) {
        usleep(500 * 1000);
        reply r = {.body = malloc(BODY_MAX)};
        if (http_req(pport, "GET", "/api/v1/query?query=klinefeed_closed_total", &r) &&
            r.status == 200) {
            snprintf(body, sizeof body, "%s", r.body);
            /* {"status":"success","data":{"resultType":"vector","result":[{"metric":{...},
             * "value":[1767225600.123,"42"]}]}} */
            const char *p = strstr(r.body, "\"value\":[");
            p = p ? strchr(p, ',') : NULL;
            if (p && p[1] == '"')
                v = strtod(p + 2, NULL);
        }
        free(r.body);
    }
    /* and the target is up, from Prometheus' own view */
    reply up = {.body = malloc(BODY_MAX)};
    bool up_ok = http_req(pport, "GET", "/api/v1/query?query=up%7Bjob%3D%22klinefeed%22%7D", &up) &&
                 strstr(up.body, "\"value\":[") && strstr(up.body, ",\"1\"]");
    char upbody[2048];
    snprintf(upbody, sizeof upbody, "%s", up.body);
    free(up.body);
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    fprintf(stderr, "prometheus: klinefeed_closed_total = %g\n", v);
    if (!(v > 0))
        fail_msg("Prometheus never had klinefeed_closed_total > 0 (last answer: %s; its log: %s)",
                 body, plog);
    if (!up_ok)
        fail_msg("up{job=\"klinefeed\"} is not 1: %s", upbody);
}

/* ---- a burst of concurrent clients ---- */

#define BURST_CLIENTS 200
#define BURST_MS 3000

typedef struct burst_arg {
    int64_t until;
    long ok, failed;
} burst_arg;

static void *burst_client(void *arg)
{
    burst_arg *a = arg;
    reply r = {.body = malloc(BODY_MAX)};
    int i = 0;
    do { /* at least once, however late the thread started */
        const char *path = i++ % 2 ? "/readyz" : "/metrics";
        if (http_req(g.http_port, "GET", path, &r) && (r.status == 200 || r.status == 503))
            a->ok++;
        else
            a->failed++;
    } while (kft_now_ms() < a->until);
    free(r.body);
    return NULL;
}

static void test_burst_does_not_stall(void **state)
{
    (void)state;
    /* quiet: the frame rate with one scrape at each end */
    double f0 = metric_now("klinefeed_frames_total");
    int64_t t0 = kft_now_ms();
    usleep(BURST_MS * 1000);
    double f1 = metric_now("klinefeed_frames_total");
    int64_t t1 = kft_now_ms();
    double lost0 = metric_now("klinefeed_disconnects_total");
    /* loud: BURST_CLIENTS clients at once, each asking again as soon as answered */
    static burst_arg args[BURST_CLIENTS];
    pthread_t th[BURST_CLIENTS];
    int64_t until = kft_now_ms() + BURST_MS;
    double f2 = metric_now("klinefeed_frames_total");
    int64_t t2 = kft_now_ms();
    size_t started = 0;
    for (size_t i = 0; i < BURST_CLIENTS; i++) {
        args[i] = (burst_arg){.until = until};
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setstacksize(&at, 256 * 1024);
        if (pthread_create(&th[i], &at, burst_client, &args[i]) == 0)
            started++;
        pthread_attr_destroy(&at);
    }
    assert_int_equal(started, BURST_CLIENTS);
    usleep((useconds_t)(until - kft_now_ms() > 0 ? until - kft_now_ms() : 0) * 1000);
    double f3 = metric_now("klinefeed_frames_total");
    int64_t t3 = kft_now_ms();
    long ok = 0, failed = 0;
    for (size_t i = 0; i < BURST_CLIENTS; i++) {
        pthread_join(th[i], NULL);
        ok += args[i].ok;
        failed += args[i].failed;
    }
    double lost1 = metric_now("klinefeed_disconnects_total");
    double quiet = (f1 - f0) * 1000.0 / (double)(t1 - t0);
    double loud = (f3 - f2) * 1000.0 / (double)(t3 - t2);
    fprintf(stderr,
            "burst: %d clients, %ld requests answered (%.0f/s), %ld failed; frames/s quiet "
            "%.0f, during the burst %.0f\n",
            BURST_CLIENTS, ok, (double)ok * 1000.0 / BURST_MS, failed, quiet, loud);
    assert_true(f0 >= 0 && f1 > f0 && f3 >= 0);
    assert_true(ok >= BURST_CLIENTS); /* every client was answered at least once */
    assert_true(failed <= ok / 100);  /* and (nearly) never refused */
    assert_true(loud >= quiet * 0.5); /* frames kept flowing */
    assert_true(lost1 == lost0);      /* and no connection was lost meanwhile */
}

/* ---- readiness ---- */

static void test_readyz_stalled_exchange(void **state)
{
    (void)state;
    reply r = {0};
    assert_int_equal(wait_status("/readyz", 200, 20000, &r), 200);
    assert_non_null(strstr(r.body, "\"status\":\"ready\""));
    pid_t sim = kft_sim_pid(g.sim);
    assert_int_equal(kill(sim, SIGSTOP), 0);
    int st = wait_status("/readyz", 503, 20000, &r);
    char body[8192];
    snprintf(body, sizeof body, "%s", r.body);
    kill(sim, SIGCONT);
    fprintf(stderr, "/readyz while the exchange is stopped: %d %s", st, body);
    assert_int_equal(st, 503);
    assert_non_null(strstr(body, "\"status\":\"unready\""));
    assert_non_null(strstr(body, "\"kind\":\"connection\",\"name\":\"0\""));
    assert_non_null(strstr(body, "\"kind\":\"stream\",\"name\":\"btcusdt@kline_1m\""));
    assert_non_null(strstr(body, "\"kind\":\"stream\",\"name\":\"solusdt@kline_5m\""));
    assert_null(strstr(body, "\"kind\":\"store\""));
    st = wait_status("/readyz", 200, 30000, &r);
    if (st != 200)
        fail_msg("/readyz after SIGCONT: %d %s", st, r.body);
    free(r.body);
}

static void test_readyz_locked_store(void **state)
{
    (void)state;
    reply r = {0};
    assert_int_equal(wait_status("/readyz", 200, 20000, &r), 200);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(g.db, &h), SQLITE_OK);
    sqlite3_busy_timeout(h, 10000);
    assert_int_equal(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    int st = wait_status("/readyz", 503, 20000, &r);
    char body[8192];
    snprintf(body, sizeof body, "%s", r.body);
    char healthy[700];
    snprintf(healthy, sizeof healthy, "klinefeed_store_healthy{store=\"%s\"}", g.spec);
    double h_locked = metric_now(healthy);
    sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(h);
    fprintf(stderr, "/readyz while the store is locked: %d %s", st, body);
    assert_int_equal(st, 503);
    char want[800];
    snprintf(want, sizeof want, "\"kind\":\"store\",\"name\":\"%s\"", g.spec);
    assert_non_null(strstr(body, want));
    assert_null(strstr(body, "\"kind\":\"connection\""));
    assert_true(h_locked == 0);
    st = wait_status("/readyz", 200, 30000, &r);
    if (st != 200)
        fail_msg("/readyz after the store was released: %d %s", st, r.body);
    assert_true(metric_now(healthy) == 1);
    free(r.body);
}

/* Reads a whole small file into buf. */
static void slurp(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = 0;
    if (f)
        fclose(f);
}

/* A malformed --http is a usage error (exit 2) naming it, from the command line or a --config
 * file; an address that cannot be bound (in use) is exit 1 naming the address and the cause. */
static void test_bad_address(void **state)
{
    (void)state;
    char out[600], err[600], conf[600], text[4096];
    snprintf(out, sizeof out, "%s/bad.out", g.dir);
    snprintf(err, sizeof err, "%s/bad.err", g.dir);
    snprintf(conf, sizeof conf, "%s/bad.conf", g.dir);
    const char *const common[] = {"run",
                                  "--symbols",
                                  "BTCUSDT",
                                  "--intervals",
                                  "1m",
                                  "--ws-url",
                                  "ws://127.0.0.1:1/market",
                                  "--state-dir",
                                  "none"};
    const char *args[16];
    size_t n = sizeof common / sizeof common[0];
    memcpy(args, common, sizeof common);
    args[n] = "--http";
    args[n + 1] = "localhost:http";
    args[n + 2] = NULL;
    assert_int_equal(kft_cli_wait(kft_cli_spawn(args, NULL, out, err, NULL, NULL), 10000), 2);
    slurp(err, text, sizeof text);
    assert_non_null(strstr(text, "--http: \"localhost:http\" is not ADDR:PORT"));

    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fputs("http = 127.0.0.1:65536\n", f);
    fclose(f);
    args[n] = "--config";
    args[n + 1] = conf;
    assert_int_equal(kft_cli_wait(kft_cli_spawn(args, NULL, out, err, NULL, NULL), 10000), 2);
    slurp(err, text, sizeof text);
    assert_non_null(strstr(text, "\"127.0.0.1:65536\" is not ADDR:PORT"));

    /* the daemon's own port is taken */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", g.http_port);
    args[n] = "--http";
    args[n + 1] = addr;
    assert_int_equal(kft_cli_wait(kft_cli_spawn(args, NULL, out, err, NULL, NULL), 10000), 1);
    slurp(err, text, sizeof text);
    char want[128];
    snprintf(want, sizeof want, "--http %s: cannot listen: Address already in use", addr);
    if (!strstr(text, want))
        fail_msg("no \"%s\" in: %s", want, text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_content),
        cmocka_unit_test(test_promtool),
        cmocka_unit_test(test_prometheus_scrape),
        cmocka_unit_test(test_burst_does_not_stall),
        cmocka_unit_test(test_readyz_stalled_exchange),
        cmocka_unit_test(test_readyz_locked_store),
        cmocka_unit_test(test_bad_address),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
