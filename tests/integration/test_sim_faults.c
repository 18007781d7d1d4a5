/* test_sim_faults.c - self-test of klinefeed-sim's fault injection and ground truth over real
 * loopback sockets: one simulator per fault kind at a high rate, a raw client that sees it, and
 * the /sim/state counters matched against what the client saw; /sim/truth against REST and the
 * WebSocket closing updates. The WebSocket client is the minimal one of raw_ws.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "kftest.h"
#include "raw_ws.h"
#include "sim_proc.h"

/* ---- helpers */
/* "key":<unsigned> in /sim/state (keys are unique there); -1 if absent */
static long long state_num(const char *st, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(st, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

/* /sim/state into buf (retried while connections are refused); returns failed attempts */
static int get_state(int port, char *buf, size_t cap)
{
    int fails = 0;
    long long deadline = kft_now_ms() + 10000;
    while (kft_http_get(port, "/sim/state", buf, cap) != 200) {
        fails++;
        assert_true(kft_now_ms() < deadline);
        usleep(50000);
    }
    return fails;
}

/* One number of /sim/state (fetched as get_state does); -1 if absent. */
static long long state_value(int port, const char *key)
{
    char *r = malloc(KFT_HTTP_BUF);
    get_state(port, r, 1 << 21);
    long long v = state_num(r, key);
    free(r);
    return v;
}

/* next frame of any kind, pings answered; 1 frame, 0 timeout, -1 closed */
static int next_frame(kft_ws *c, int timeout_ms, int *op, char **pl, size_t *n)
{
    long long deadline = kft_now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - kft_now_ms();
        int rc = kft_ws_frame(c, left < 0 ? 0 : (int)left, op, pl, n);
        if (rc == 1 && *op == 9)
            kft_ws_send(c, 0xA, true, *pl, *n);
        return rc;
    }
}

/* reads (answering pings) until the connection ends or timeout_ms; returns -1 when it ended,
 * 0 on timeout; counts text frames and close frames (first close code into *code) */
static int read_until_end(kft_ws *c, int timeout_ms, int *texts, int *closes, int *code)
{
    long long deadline = kft_now_ms() + timeout_ms;
    for (;;) {
        int op;
        char *pl;
        size_t n;
        long long left = deadline - kft_now_ms();
        if (left <= 0)
            return 0;
        int rc = next_frame(c, (int)left, &op, &pl, &n);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return 0;
        if (op == 1)
            (*texts)++;
        if (op == 8) {
            if (!*closes && code)
                *code = n >= 2 ? ((unsigned char)pl[0] << 8 | (unsigned char)pl[1]) : 1005;
            if (!*closes)
                snprintf(c->close_reason, sizeof c->close_reason, "%s", n > 2 ? pl + 2 : "");
            (*closes)++;
        }
        free(pl);
    }
}

/* ---- WebSocket faults */
static void test_reset(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--fault-reset-every", "0.2", "--faults-start-ms", "300", NULL);
    int port = kft_sim_port(s);
    for (int k = 0; k < 2; k++) {
        /* a routed connection, then an unrouted (silent) one: both are targets */
        kft_ws *c = kft_ws_open(port, k ? "/ws/btcusdt@kline_1m" : "/market/ws/btcusdt@kline_1m");
        assert_non_null(c);
        int texts = 0, closes = 0;
        assert_int_equal(read_until_end(c, 8000, &texts, &closes, NULL), -1);
        assert_int_equal(closes, 0); /* no close frame */
        assert_true(c->rx_err == ECONNRESET || c->rx_err == 0);
        if (k == 0)
            assert_true(texts >= 1); /* it delivered before the reset */
        kft_ws_free(c);
    }
    char *r = malloc(KFT_HTTP_BUF);
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "reset"), 2);
    assert_int_equal(state_num(r, "connections_open"), 0);
    assert_int_equal(state_num(r, "connections_max_open"), 1);
    free(r);
    kft_sim_teardown(NULL);
}

static void test_stall(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--fault-stall-every", "0.1", "--faults-start-ms", "800", "--ping-ms",
                             "150", NULL);
    int port = kft_sim_port(s);
    kft_ws *c = kft_ws_open(port, "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    char *r = malloc(KFT_HTTP_BUF);
    int pings = 0, texts = 0;
    long long deadline = kft_now_ms() + 8000;
    for (;;) { /* live until the simulator reports the stall */
        int op;
        char *pl;
        size_t n;
        int rc = next_frame(c, 100, &op, &pl, &n);
        assert_true(rc >= 0);
        if (rc == 1) {
            pings += op == 9;
            texts += op == 1;
            free(pl);
            continue;
        }
        get_state(port, r, 1 << 21);
        if (state_num(r, "stall") == 1)
            break;
        assert_true(kft_now_ms() < deadline);
    }
    assert_true(pings >= 2);
    assert_true(texts >= 1);
    /* what was already on the wire arrives; then nothing at all, the socket stays open */
    int op;
    char *pl;
    size_t n;
    while (kft_ws_frame(c, 300, &op, &pl, &n) == 1)
        free(pl);
    assert_int_equal(kft_ws_send(c, 9, true, "are you there", 13), 0);
    assert_int_equal(kft_ws_text_send(c, "{\"method\":\"LIST_SUBSCRIPTIONS\",\"id\":1}"), 0);
    assert_int_equal(kft_ws_frame(c, 2000, &op, &pl, &n), 0); /* no pong, no reply, no data */
    kft_ws_free(c);
    usleep(200000);
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "stall"), 1);
    assert_int_equal(state_num(r, "connections_open"), 0); /* closed once we closed */
    free(r);
    kft_sim_teardown(NULL);
}

static void test_close(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--fault-close-every", "0.1", "--faults-start-ms", "300", NULL);
    int port = kft_sim_port(s);
    const int want[2] = {1001, 1008};
    const char *reason[2] = {"going away", "Too many requests"};
    for (int k = 0; k < 2; k++) {
        kft_ws *c = kft_ws_open(port, "/market/stream?streams=btcusdt@kline_1m");
        assert_non_null(c);
        int texts = 0, closes = 0, code = 0;
        assert_int_equal(read_until_end(c, 8000, &texts, &closes, &code), -1);
        assert_int_equal(closes, 1);
        assert_int_equal(code, want[k]);
        assert_string_equal(c->close_reason, reason[k]);
        kft_ws_free(c);
    }
    assert_int_equal(state_value(port, "close"), 2);
    kft_sim_teardown(NULL);
}

static void test_refuse(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--fault-refuse-every", "0.3", "--refuse-ms", "800",
                             "--faults-start-ms", "300", NULL);
    int port = kft_sim_port(s);
    char *r = malloc(KFT_HTTP_BUF);
    int fails = 0, ok_after = 0;
    bool ws_refused = false;
    long long deadline = kft_now_ms() + 8000;
    while (kft_now_ms() < deadline && (!fails || !ok_after)) {
        int st = kft_http_get_full(port, "/fapi/v1/ping", r, 1 << 21);
        if (st < 0) {
            fails++;
            if (!ws_refused) { /* a WebSocket handshake fails the same way */
                kft_ws *c = kft_ws_open(port, "/market/ws");
                if (!c) {
                    ws_refused = true;
                    fails++;
                } else {
                    kft_ws_free(c); /* the period just ended */
                }
            }
        } else {
            assert_int_equal(st, 200);
            ok_after += fails > 0;
        }
        usleep(50000);
    }
    assert_true(fails >= 1);
    assert_true(ok_after >= 1);
    assert_true(ws_refused);
    fails += get_state(port, r, 1 << 21);
    assert_true(state_num(r, "refused") >= 1);
    assert_int_equal(state_num(r, "refused_connections"), fails);
    free(r);
    kft_sim_teardown(NULL);
}

static void test_garbage(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--fault-garbage-every", "0.08", "--faults-start-ms", "700", NULL);
    int port = kft_sim_port(s);
    kft_ws *c = kft_ws_open(port, "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    enum { NONJSON, TRUNC, BINARY, HUGE, DUP, UNKNOWN, EXTRA, NK };
    int seen[NK] = {0};
    int garbage = 0;
    char *last = NULL;
    char *r = malloc(KFT_HTTP_BUF);
    long long limit = -1;
    long long deadline = kft_now_ms() + 15000;
    for (;;) {
        bool all = true;
        for (int k = 0; k < NK; k++)
            all &= seen[k] > 0;
        if (all && limit < 0) { /* every injection counted so far must reach us */
            get_state(port, r, 1 << 21);
            limit = state_num(r, "garbage");
            assert_true(limit >= garbage);
        }
        if (limit >= 0 && garbage >= limit)
            break;
        assert_true(kft_now_ms() < deadline);
        int op;
        char *pl;
        size_t n;
        int rc = next_frame(c, 2000, &op, &pl, &n);
        assert_int_equal(rc, 1);
        int kind = -1;
        bool kline = n > 12 && strncmp(pl, "{\"e\":\"kline\"", 12) == 0;
        bool whole = n >= 2 && strcmp(pl + n - 2, "}}") == 0;
        if (op == 2)
            kind = BINARY;
        else if (op != 1)
            kind = -2;
        else if (n > (1u << 20))
            kind = HUGE;
        else if (pl[0] != '{')
            kind = NONJSON;
        else if (strstr(pl, "\"e\":\"somethingNew\""))
            kind = UNKNOWN;
        else if (kline && strstr(pl, "\"newKey\":\"1\""))
            kind = whole ? EXTRA : -3;
        else if (kline && !whole)
            kind = TRUNC;
        else if (last && strcmp(pl, last) == 0)
            kind = DUP;
        if (kind >= 0) {
            seen[kind]++;
            garbage++;
            free(pl);
        } else if (kind == -1) {
            assert_true(kline); /* a regular update */
            free(last);
            last = pl;
        } else {
            assert_true(kind == -2); /* pings are answered by next_frame */
            assert_int_equal(op, 9);
            free(pl);
        }
    }
    assert_int_equal(garbage, limit);
    free(last);
    free(r);
    kft_ws_free(c);
    kft_sim_teardown(NULL);
}

static void test_drop_close(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--drop-close-rate", "1", "--speed", "600", NULL);
    int port = kft_sim_port(s);
    kft_ws *c = kft_ws_open(port, "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    int updates = 0, distinct = 0;
    char prev[32] = "";
    long long deadline = kft_now_ms() + 1500;
    while (kft_now_ms() < deadline) {
        char *m = kft_ws_text(c, 500);
        assert_non_null(m);
        assert_null(strstr(m, "\"x\":true"));
        assert_non_null(strstr(m, "\"x\":false"));
        char t[32];
        assert_true(kft_json_field(m, "t", t, sizeof t));
        if (strcmp(t, prev) != 0)
            distinct++;
        snprintf(prev, sizeof prev, "%s", t);
        updates++;
        free(m);
    }
    kft_ws_free(c);
    assert_true(updates >= 20);
    assert_true(distinct >= 8);
    usleep(100000);
    long long dropped = state_value(port, "dropped_closes");
    assert_true(dropped >= distinct - 1 && dropped <= distinct + 2);
    kft_sim_teardown(NULL);
}

/* --drop-close-rate 0.5: some closes arrive, some not, the same ones for the same seed */
static void drop_run(const char *seed, long long *ts, bool *closed, int *n)
{
    kft_sim *s =
        kft_sim_run("--drop-close-rate", "0.5", "--fault-seed", seed, "--speed", "600", NULL);
    kft_ws *c = kft_ws_open(kft_sim_port(s), "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    *n = 0;
    long long deadline = kft_now_ms() + 1500;
    while (kft_now_ms() < deadline && *n < 64) {
        char *m = kft_ws_text(c, 500);
        assert_non_null(m);
        char t[32];
        assert_true(kft_json_field(m, "t", t, sizeof t));
        if (*n == 0 || ts[*n - 1] != atoll(t)) {
            assert_true(*n == 0 || atoll(t) > ts[*n - 1]);
            ts[*n] = atoll(t);
            closed[(*n)++] = false;
        }
        if (strstr(m, "\"x\":true"))
            closed[*n - 1] = true;
        free(m);
    }
    kft_ws_free(c);
    kft_sim_teardown(NULL);
}

static void test_drop_close_seeded(void **state)
{
    (void)state;
    long long ts[3][64];
    bool closed[3][64];
    int n[3];
    drop_run("7", ts[0], closed[0], &n[0]);
    drop_run("7", ts[1], closed[1], &n[1]);
    drop_run("8", ts[2], closed[2], &n[2]);
    /* compare the candles all three runs saw closed or not (the last one may be open) */
    int m = 0, got = 0, same = 0;
    for (int i = 0; i + 1 < n[0]; i++) {
        int j = 0, k = 0;
        while (j + 1 < n[1] && ts[1][j] != ts[0][i])
            j++;
        while (k + 1 < n[2] && ts[2][k] != ts[0][i])
            k++;
        if (j + 1 >= n[1] || k + 1 >= n[2])
            continue;
        assert_true(closed[0][i] == closed[1][j]); /* reproducible */
        m++;
        got += closed[0][i];
        same += closed[0][i] == closed[2][k];
    }
    assert_true(m >= 8);
    assert_true(got >= 1 && got < m); /* a mix */
    assert_true(same < m);            /* another seed, other drops */
}

static void test_max_age(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--max-conn-age-ms", "700", NULL);
    int port = kft_sim_port(s);
    long long t0 = kft_now_ms();
    kft_ws *c = kft_ws_open(port, "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    int texts = 0, closes = 0, code = 0;
    assert_int_equal(read_until_end(c, 5000, &texts, &closes, &code), -1);
    long long el = kft_now_ms() - t0;
    assert_int_equal(closes, 1);
    assert_int_equal(code, 1001);
    assert_true(el >= 650 && el <= 1500);
    kft_ws_free(c);
    char *r = malloc(KFT_HTTP_BUF);
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "aged_out"), 1);
    long long age = state_num(r, "age_ms");
    assert_true(age >= 700 && age <= 1200);
    free(r);
    kft_sim_teardown(NULL);
}

/* ---- REST faults */
static void test_rest_429_ban(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--rest-429-rate", "1", "--ban-ms", "1500", NULL);
    int port = kft_sim_port(s);
    char *r = malloc(KFT_HTTP_BUF);
    assert_int_equal(kft_http_get_full(port, "/fapi/v1/time", r, 1 << 21), 429);
    long ra = kft_http_header_long(r, "Retry-After");
    assert_true(ra >= 1 && ra <= 3);
    assert_non_null(strstr(r, "{\"code\":-1003,\"msg\":\"Too many requests;"));
    assert_true(kft_http_header_long(r, "X-MBX-USED-WEIGHT-1M") >= 1);
    /* inside the announced window: banned */
    long long tb = kft_now_ms();
    assert_int_equal(
        kft_http_get_full(port, "/fapi/v1/klines?symbol=BTCUSDT&interval=1m", r, 1 << 21), 418);
    assert_int_equal(kft_http_header_long(r, "Retry-After"), 2);
    assert_non_null(strstr(r, "{\"code\":-1003,\"msg\":\"Way too many requests; IP(127.0.0.1) "
                              "banned until "));
    int n418 = 1;
    for (int i = 0; i < 3; i++) { /* every request during the ban */
        usleep(200000);
        assert_int_equal(kft_http_get_full(port, "/fapi/v1/ping", r, 1 << 21), 418);
        n418++;
    }
    get_state(port, r, 1 << 21); /* introspection is not subject to bans */
    assert_true(kft_now_ms() - tb < 1500);
    /* after the ban: 429 again (rate 1), and waiting out its Retry-After is not punished */
    usleep((useconds_t)(1500 - (kft_now_ms() - tb) + 150) * 1000);
    assert_int_equal(kft_http_get_full(port, "/fapi/v1/time", r, 1 << 21), 429);
    ra = kft_http_header_long(r, "Retry-After");
    assert_true(ra >= 1 && ra <= 3);
    usleep((useconds_t)(ra * 1000 + 150) * 1000);
    assert_int_equal(kft_http_get_full(port, "/fapi/v1/time", r, 1 << 21), 429);
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "rest_429"), 3);
    assert_int_equal(state_num(r, "rest_418"), n418);
    free(r);
    kft_sim_teardown(NULL);
}

static void test_rest_500(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--rest-500-rate", "1", NULL);
    int port = kft_sim_port(s);
    char *r = malloc(KFT_HTTP_BUF);
    int n500 = 0, n503 = 0;
    for (int i = 0; i < 4; i++) {
        int st = kft_http_get_full(port, "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=5", r,
                                   1 << 21);
        assert_true(st == 500 || st == 503);
        n500 += st == 500;
        n503 += st == 503;
        assert_non_null(strstr(r, "\r\n\r\n{\"code\":-1001,\"msg\":\"Internal error; unable to "
                                  "process your request. Please try your request again.\"}"));
    }
    assert_true(n500 >= 1 && n503 >= 1);
    /* the ground truth is never faulted */
    assert_int_equal(kft_http_get(port,
                                  "/sim/truth?symbol=BTCUSDT&interval=1m&startTime=0&"
                                  "endTime=1704067320000",
                                  r, 1 << 21),
                     200);
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "rest_500"), 4);
    assert_int_equal(state_num(r, "rest_requests"), 4);
    free(r);
    kft_sim_teardown(NULL);
}

static void test_rest_slow(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--rest-slow-rate", "1", "--rest-slow-ms", "800", NULL);
    int port = kft_sim_port(s);
    int fd = kft_tcp_connect(port);
    assert_true(fd >= 0);
    const char *req = "GET /fapi/v1/time HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /fapi/v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    long long t0 = kft_now_ms();
    assert_true(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
    /* other clients are served meanwhile */
    char *r = malloc(KFT_HTTP_BUF);
    get_state(port, r, 1 << 21);
    assert_true(kft_now_ms() - t0 < 500);
    size_t len = 0;
    long long first = -1;
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        assert_true(poll(&pf, 1, 5000) == 1);
        ssize_t k = recv(fd, r + len, (1 << 21) - 1 - len, 0);
        if (k <= 0)
            break;
        if (first < 0)
            first = kft_now_ms() - t0;
        len += (size_t)k;
    }
    r[len] = 0;
    long long total = kft_now_ms() - t0;
    close(fd);
    assert_true(first >= 800);  /* the first reply was held back */
    assert_true(total >= 1600); /* and so was the pipelined second one */
    assert_true(strncmp(r, "HTTP/1.1 200 OK", 15) == 0);
    assert_non_null(strstr(r, "{\"serverTime\":"));
    assert_non_null(strstr(r, "\r\n\r\n{}"));
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "rest_slow"), 2);
    free(r);
    kft_sim_teardown(NULL);
}

static void test_rest_timeout(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--rest-timeout-rate", "1", NULL);
    int port = kft_sim_port(s);
    int fd = kft_tcp_connect(port);
    assert_true(fd >= 0);
    const char *req = "GET /fapi/v1/time HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_true(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
    struct pollfd pf = {fd, POLLIN, 0};
    assert_int_equal(poll(&pf, 1, 2000), 0); /* no answer, not closed */
    close(fd);
    assert_int_equal(state_value(port, "rest_timeout"), 1);
    kft_sim_teardown(NULL);
}

/* ---- ground truth */
static void test_truth(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--speed", "60", NULL);
    int port = kft_sim_port(s);
    char *truth = malloc(KFT_HTTP_BUF), *rest = malloc(KFT_HTTP_BUF), *st = malloc(KFT_HTTP_BUF);
    kft_ws *c = kft_ws_open(port, "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    char rows[3][1024];
    int nrows = 0;
    long long deadline = kft_now_ms() + 6000;
    while (nrows < 3) {
        assert_true(kft_now_ms() < deadline);
        char *m = kft_ws_text(c, 2000);
        assert_non_null(m);
        if (strstr(m, "\"x\":true"))
            kft_ws_event_to_row(m, rows[nrows++], sizeof rows[0]);
        free(m);
    }
    kft_ws_free(c);
    /* stay clear of a candle boundary (1 s real per candle) */
    assert_int_equal(kft_http_get(port, "/fapi/v1/time", st, 4096), 200);
    long long t = atoll(st + strlen("{\"serverTime\":"));
    if (t % 60000 > 45000)
        usleep(400000);
    get_state(port, st, 1 << 21);
    long long req0 = state_num(st, "rest_requests");
    const long long from = 1767225600000LL - 30 * 60000;
    char path[256];
    snprintf(path, sizeof path,
             "/sim/truth?symbol=BTCUSDT&interval=1m&startTime=%lld&endTime=9999999999999", from);
    assert_int_equal(kft_http_get(port, path, truth, 1 << 21), 200);
    snprintf(path, sizeof path,
             "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&startTime=%lld&limit=1500", from);
    assert_int_equal(kft_http_get(port, path, rest, 1 << 21), 200);
    get_state(port, st, 1 << 21);
    assert_int_equal(state_num(st, "rest_requests"), req0 + 1); /* truth is not REST traffic */
    long long now = state_num(st, "now");
    /* truth = the klines rows minus the open candle */
    size_t tl = strlen(truth);
    assert_true(tl > 2 && truth[0] == '[' && truth[tl - 1] == ']');
    assert_true(strncmp(truth, "[[", 2) == 0);
    assert_int_equal(atoll(truth + 2), from);
    assert_true(strncmp(rest, truth, tl - 1) == 0);
    assert_true(rest[tl - 1] == ','); /* exactly one more row... */
    const char *open_row = rest + tl;
    assert_null(strchr(open_row, '[') == open_row ? strstr(open_row + 1, "],[") : "x");
    long long open_t = atoll(open_row + 1);
    assert_true(open_t <= now && open_t + 60000 > now); /* ...the open candle */
    int ntruth = 0;
    for (const char *p = strstr(truth, "[1"); p; p = strstr(p + 1, "[1"))
        ntruth++;
    assert_int_equal(ntruth, (int)((open_t - from) / 60000));
    /* byte-identical to the closing updates */
    for (int i = 0; i < nrows; i++)
        assert_non_null(strstr(truth, rows[i]));
    /* range and the open candle */
    snprintf(path, sizeof path, "/sim/truth?symbol=BTCUSDT&interval=1m&startTime=%lld&endTime=%lld",
             from + 1, from + 120000);
    assert_int_equal(kft_http_get(port, path, truth, 1 << 21), 200);
    int n = 0;
    for (const char *p = strstr(truth, "[1"); p; p = strstr(p + 1, "[1"))
        n++;
    assert_int_equal(n, 2);
    assert_int_equal(atoll(truth + 2), from + 60000);
    snprintf(path, sizeof path, "/sim/truth?symbol=BTCUSDT&interval=1m&startTime=%lld", open_t);
    assert_int_equal(kft_http_get(port, path, truth, 1 << 21), 200);
    assert_string_equal(truth, "[]");
    assert_int_equal(kft_http_get(port, "/sim/truth?symbol=FOOUSDT&interval=1m", truth, 4096), 400);
    assert_string_equal(truth, "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}");
    assert_int_equal(kft_http_get(port, "/sim/truth?symbol=BTCUSDT&interval=1s", truth, 4096), 400);
    assert_string_equal(truth, "{\"code\":-1120,\"msg\":\"Invalid interval.\"}");
    free(truth);
    free(rest);
    free(st);
    kft_sim_teardown(NULL);
}

static void test_state_defaults(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run(NULL);
    int port = kft_sim_port(s);
    kft_ws *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = kft_ws_open(port, "/market/ws/btcusdt@kline_1m");
        assert_non_null(c[i]);
    }
    for (int i = 0; i < 3; i++)
        kft_ws_free(c[i]);
    usleep(200000);
    char *r = malloc(KFT_HTTP_BUF);
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "connections_open"), 0);
    assert_int_equal(state_num(r, "connections_max_open"), 3);
    assert_non_null(strstr(r, "\"connections\":[{\"id\":1,\"age_ms\":"));
    assert_non_null(strstr(r, "\"faults\":{\"reset\":0,\"stall\":0,\"close\":0,\"refused\":0,"
                              "\"refused_connections\":0,\"garbage\":0,\"dropped_closes\":0,"
                              "\"aged_out\":0,\"rest_429\":0,\"rest_418\":0,\"rest_500\":0,"
                              "\"rest_slow\":0,\"rest_timeout\":0}}"));
    free(r);
    kft_sim_teardown(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_reset, kft_sim_teardown),
        cmocka_unit_test_teardown(test_stall, kft_sim_teardown),
        cmocka_unit_test_teardown(test_close, kft_sim_teardown),
        cmocka_unit_test_teardown(test_refuse, kft_sim_teardown),
        cmocka_unit_test_teardown(test_garbage, kft_sim_teardown),
        cmocka_unit_test_teardown(test_drop_close, kft_sim_teardown),
        cmocka_unit_test_teardown(test_drop_close_seeded, kft_sim_teardown),
        cmocka_unit_test_teardown(test_max_age, kft_sim_teardown),
        cmocka_unit_test_teardown(test_rest_429_ban, kft_sim_teardown),
        cmocka_unit_test_teardown(test_rest_500, kft_sim_teardown),
        cmocka_unit_test_teardown(test_rest_slow, kft_sim_teardown),
        cmocka_unit_test_teardown(test_rest_timeout, kft_sim_teardown),
        cmocka_unit_test_teardown(test_truth, kft_sim_teardown),
        cmocka_unit_test_teardown(test_state_defaults, kft_sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
