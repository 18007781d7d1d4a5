/* test_sim_faults.c - self-test of klinefeed-sim's fault injection and ground truth over real
 * loopback sockets: one simulator per fault kind at a high rate, a raw client that sees it, and
 * the /sim/state counters matched against what the client saw; /sim/truth against REST and the
 * WebSocket closing updates. The WebSocket client is the minimal one of test_sim.c. */
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

#include "sim_proc.h"

/* ---- helpers */
static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* raw HTTP exchange on a fresh connection: full response (head + body) into out */
static int http_raw(int port, const char *req, char *out, size_t cap)
{
    int fd = tcp_connect(port);
    if (fd < 0)
        return -1;
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    long long deadline = now_ms() + 10000;
    while (len + 1 < cap) {
        struct pollfd pf = {fd, POLLIN, 0};
        long long left = deadline - now_ms();
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t r = recv(fd, out + len, cap - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    out[len] = 0;
    close(fd);
    int status = -1;
    if (sscanf(out, "HTTP/1.1 %d", &status) != 1)
        return -1;
    return status;
}

/* GET with headers kept; returns status */
static int http_get_full(int port, const char *path, char *out, size_t cap)
{
    char req[1024];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    return http_raw(port, req, out, cap);
}

static long header_long(const char *resp, const char *name)
{
    const char *p = strcasestr(resp, name);
    if (!p)
        return -1;
    p += strlen(name);
    while (*p == ':' || *p == ' ')
        p++;
    return atol(p);
}

/* ---- minimal websocket client */
typedef struct wsc {
    int fd;
    unsigned char *buf;
    size_t len, cap;
    int close_code;
    char close_reason[128];
    unsigned seq;
    int rx_err; /* errno of the failed recv, 0 for EOF */
} wsc;

static wsc *wsc_open(int port, const char *path)
{
    int fd = tcp_connect(port);
    if (fd < 0)
        return NULL;
    char req[2048];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
             "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n",
             path);
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
        close(fd);
        return NULL;
    }
    wsc *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->cap = 1 << 20;
    c->buf = malloc(c->cap);
    long long deadline = now_ms() + 5000;
    char *end = NULL;
    while (!end) {
        struct pollfd pf = {fd, POLLIN, 0};
        long long left = deadline - now_ms();
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t r = recv(fd, c->buf + c->len, c->cap - 1 - c->len, 0);
        if (r <= 0)
            break;
        c->len += (size_t)r;
        c->buf[c->len] = 0;
        end = strstr((char *)c->buf, "\r\n\r\n");
    }
    if (!end || strncmp((char *)c->buf, "HTTP/1.1 101", 12) != 0 ||
        !strstr((char *)c->buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) {
        fprintf(stderr, "handshake failed: %s\n", c->buf);
        close(fd);
        free(c->buf);
        free(c);
        return NULL;
    }
    size_t hl = (size_t)(end - (char *)c->buf) + 4;
    memmove(c->buf, c->buf + hl, c->len - hl);
    c->len -= hl;
    return c;
}

static void wsc_free(wsc *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c->buf);
    free(c);
}

static int wsc_send(wsc *c, int op, bool fin, const void *p, size_t n)
{
    unsigned char *f = malloc(n + 14);
    size_t hl;
    f[0] = (unsigned char)((fin ? 0x80 : 0) | op);
    if (n < 126) {
        f[1] = (unsigned char)(0x80 | n);
        hl = 2;
    } else if (n < 65536) {
        f[1] = 0x80 | 126;
        f[2] = (unsigned char)(n >> 8);
        f[3] = (unsigned char)n;
        hl = 4;
    } else {
        f[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            f[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    unsigned m = 0x9a3b7c11u * ++c->seq;
    unsigned char mask[4] = {(unsigned char)m, (unsigned char)(m >> 8), (unsigned char)(m >> 16),
                             (unsigned char)(m >> 24)};
    memcpy(f + hl, mask, 4);
    for (size_t i = 0; i < n; i++)
        f[hl + 4 + i] = ((const unsigned char *)p)[i] ^ mask[i & 3];
    ssize_t w = send(c->fd, f, hl + 4 + n, MSG_NOSIGNAL);
    free(f);
    return w == (ssize_t)(hl + 4 + n) ? 0 : -1;
}

static int wsc_text_send(wsc *c, const char *s)
{
    return wsc_send(c, 1, true, s, strlen(s));
}

/* next frame: 1 ok (payload malloc'd, NUL-terminated), 0 timeout, -1 closed */
static int wsc_frame(wsc *c, int timeout_ms, int *op, char **pl, size_t *pn)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        if (c->len >= 2) {
            size_t hl = 2;
            uint64_t n = c->buf[1] & 0x7f;
            if (n == 126 && c->len >= 4) {
                n = ((uint64_t)c->buf[2] << 8) | c->buf[3];
                hl = 4;
            } else if (n == 127 && c->len >= 10) {
                n = 0;
                for (int i = 0; i < 8; i++)
                    n = (n << 8) | c->buf[2 + i];
                hl = 10;
            } else if (n >= 126) {
                hl = 100000000; /* need more header */
            }
            if (hl < 100000000 && c->len >= hl + n) {
                *op = c->buf[0] & 0x0f;
                *pl = malloc(n + 1);
                memcpy(*pl, c->buf + hl, n);
                (*pl)[n] = 0;
                *pn = n;
                memmove(c->buf, c->buf + hl + n, c->len - hl - n);
                c->len -= hl + n;
                return 1;
            }
            if (hl < 100000000 && hl + n > c->cap) {
                c->cap = hl + n + 1;
                c->buf = realloc(c->buf, c->cap);
            }
        }
        long long left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pf = {c->fd, POLLIN, 0};
        if (poll(&pf, 1, (int)left) <= 0)
            return 0;
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r <= 0) {
            c->rx_err = r == 0 ? 0 : errno;
            return -1;
        }
        c->len += (size_t)r;
    }
}

/* next text message (answers pings, records close); NULL on timeout or close */
static char *wsc_text(wsc *c, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        int op;
        char *pl;
        size_t n;
        long long left = deadline - now_ms();
        int rc = wsc_frame(c, left < 0 ? 0 : (int)left, &op, &pl, &n);
        if (rc <= 0)
            return NULL;
        if (op == 1)
            return pl;
        if (op == 9)
            wsc_send(c, 0xA, true, pl, n);
        if (op == 8) {
            c->close_code = n >= 2 ? ((unsigned char)pl[0] << 8 | (unsigned char)pl[1]) : 1005;
            snprintf(c->close_reason, sizeof c->close_reason, "%s", n > 2 ? pl + 2 : "");
            free(pl);
            return NULL;
        }
        free(pl);
    }
}

/* raw value of "key": in a JSON text (string contents without quotes) */
static bool jfield(const char *js, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(js, pat);
    if (!p)
        return false;
    p += strlen(pat);
    size_t n = 0;
    if (*p == '"') {
        p++;
        while (p[n] && p[n] != '"')
            n++;
    } else {
        while (p[n] && p[n] != ',' && p[n] != '}')
            n++;
    }
    if (n >= cap)
        return false;
    memcpy(out, p, n);
    out[n] = 0;
    return true;
}

/* the REST row the closing event stands for */
static void event_to_row(const char *ev, char *row, size_t cap)
{
    char t[32], T[32], o[64], h[64], l[64], c[64], v[64], q[64], n[32], V[64], Q[64];
    assert_true(jfield(ev, "t", t, sizeof t) && jfield(ev, "T", T, sizeof T));
    assert_true(jfield(ev, "o", o, sizeof o) && jfield(ev, "h", h, sizeof h));
    assert_true(jfield(ev, "l", l, sizeof l) && jfield(ev, "c", c, sizeof c));
    assert_true(jfield(ev, "v", v, sizeof v) && jfield(ev, "q", q, sizeof q));
    assert_true(jfield(ev, "n", n, sizeof n) && jfield(ev, "V", V, sizeof V));
    assert_true(jfield(ev, "Q", Q, sizeof Q));
    snprintf(row, cap, "[%s,\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",%s,\"%s\",%s,\"%s\",\"%s\",\"0\"]",
             t, o, h, l, c, v, T, q, n, V, Q);
}

static kft_sim *g_sim; /* stopped by the teardown even when an assertion fails */

static int teardown(void **state)
{
    (void)state;
    kft_sim_stop(g_sim);
    g_sim = NULL;
    return 0;
}

static kft_sim *start_sim(const char *a0, ...)
{
    const char *args[32];
    int n = 0;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && n < 31; a = va_arg(ap, const char *))
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    kft_sim_stop(g_sim);
    kft_sim *s = kft_sim_start(args);
    g_sim = s;
    assert_non_null(s);
    return s;
}

static char *big_buf(void)
{
    return malloc(1 << 21);
}

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
    long long deadline = now_ms() + 10000;
    while (kft_http_get(port, "/sim/state", buf, cap) != 200) {
        fails++;
        assert_true(now_ms() < deadline);
        usleep(50000);
    }
    return fails;
}

/* next frame of any kind, pings answered; 1 frame, 0 timeout, -1 closed */
static int next_frame(wsc *c, int timeout_ms, int *op, char **pl, size_t *n)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - now_ms();
        int rc = wsc_frame(c, left < 0 ? 0 : (int)left, op, pl, n);
        if (rc == 1 && *op == 9)
            wsc_send(c, 0xA, true, *pl, *n);
        return rc;
    }
}

/* reads (answering pings) until the connection ends or timeout_ms; returns -1 when it ended,
 * 0 on timeout; counts text frames and close frames (first close code into *code) */
static int read_until_end(wsc *c, int timeout_ms, int *texts, int *closes, int *code)
{
    long long deadline = now_ms() + timeout_ms;
    for (;;) {
        int op;
        char *pl;
        size_t n;
        long long left = deadline - now_ms();
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
    kft_sim *s = start_sim("--fault-reset-every", "0.2", "--faults-start-ms", "300", NULL);
    int port = kft_sim_port(s);
    for (int k = 0; k < 2; k++) {
        /* a routed connection, then an unrouted (silent) one: both are targets */
        wsc *c = wsc_open(port, k ? "/ws/btcusdt@kline_1m" : "/market/ws/btcusdt@kline_1m");
        assert_non_null(c);
        int texts = 0, closes = 0;
        assert_int_equal(read_until_end(c, 8000, &texts, &closes, NULL), -1);
        assert_int_equal(closes, 0); /* no close frame */
        assert_true(c->rx_err == ECONNRESET || c->rx_err == 0);
        if (k == 0)
            assert_true(texts >= 1); /* it delivered before the reset */
        wsc_free(c);
    }
    char *r = big_buf();
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "reset"), 2);
    assert_int_equal(state_num(r, "connections_open"), 0);
    assert_int_equal(state_num(r, "connections_max_open"), 1);
    free(r);
    teardown(NULL);
}

static void test_stall(void **state)
{
    (void)state;
    kft_sim *s = start_sim("--fault-stall-every", "0.1", "--faults-start-ms", "800", "--ping-ms",
                           "150", NULL);
    int port = kft_sim_port(s);
    wsc *c = wsc_open(port, "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    char *r = big_buf();
    int pings = 0, texts = 0;
    long long deadline = now_ms() + 8000;
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
        assert_true(now_ms() < deadline);
    }
    assert_true(pings >= 2);
    assert_true(texts >= 1);
    /* what was already on the wire arrives; then nothing at all, the socket stays open */
    int op;
    char *pl;
    size_t n;
    while (wsc_frame(c, 300, &op, &pl, &n) == 1)
        free(pl);
    assert_int_equal(wsc_send(c, 9, true, "are you there", 13), 0);
    assert_int_equal(wsc_text_send(c, "{\"method\":\"LIST_SUBSCRIPTIONS\",\"id\":1}"), 0);
    assert_int_equal(wsc_frame(c, 2000, &op, &pl, &n), 0); /* no pong, no reply, no data */
    wsc_free(c);
    usleep(200000);
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "stall"), 1);
    assert_int_equal(state_num(r, "connections_open"), 0); /* closed once we closed */
    free(r);
    teardown(NULL);
}

static void test_close(void **state)
{
    (void)state;
    kft_sim *s = start_sim("--fault-close-every", "0.1", "--faults-start-ms", "300", NULL);
    int port = kft_sim_port(s);
    const int want[2] = {1001, 1008};
    const char *reason[2] = {"going away", "Too many requests"};
    for (int k = 0; k < 2; k++) {
        wsc *c = wsc_open(port, "/market/stream?streams=btcusdt@kline_1m");
        assert_non_null(c);
        int texts = 0, closes = 0, code = 0;
        assert_int_equal(read_until_end(c, 8000, &texts, &closes, &code), -1);
        assert_int_equal(closes, 1);
        assert_int_equal(code, want[k]);
        assert_string_equal(c->close_reason, reason[k]);
        wsc_free(c);
    }
    char *r = big_buf();
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "close"), 2);
    free(r);
    teardown(NULL);
}

static void test_refuse(void **state)
{
    (void)state;
    kft_sim *s = start_sim("--fault-refuse-every", "0.3", "--refuse-ms", "800", "--faults-start-ms",
                           "300", NULL);
    int port = kft_sim_port(s);
    char *r = big_buf();
    int fails = 0, ok_after = 0;
    bool ws_refused = false;
    long long deadline = now_ms() + 8000;
    while (now_ms() < deadline && (!fails || !ok_after)) {
        int st = http_get_full(port, "/fapi/v1/ping", r, 1 << 21);
        if (st < 0) {
            fails++;
            if (!ws_refused) { /* a WebSocket handshake fails the same way */
                wsc *c = wsc_open(port, "/market/ws");
                if (!c) {
                    ws_refused = true;
                    fails++;
                } else {
                    wsc_free(c); /* the period just ended */
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
    teardown(NULL);
}

static void test_garbage(void **state)
{
    (void)state;
    kft_sim *s = start_sim("--fault-garbage-every", "0.08", "--faults-start-ms", "700", NULL);
    int port = kft_sim_port(s);
    wsc *c = wsc_open(port, "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    enum { NONJSON, TRUNC, BINARY, HUGE, DUP, UNKNOWN, EXTRA, NK };
    int seen[NK] = {0};
    int garbage = 0;
    char *last = NULL;
    char *r = big_buf();
    long long limit = -1;
    long long deadline = now_ms() + 15000;
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
        assert_true(now_ms() < deadline);
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
    wsc_free(c);
    teardown(NULL);
}

static void test_drop_close(void **state)
{
    (void)state;
    kft_sim *s = start_sim("--drop-close-rate", "1", "--speed", "600", NULL);
    int port = kft_sim_port(s);
    wsc *c = wsc_open(port, "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    int updates = 0, distinct = 0;
    char prev[32] = "";
    long long deadline = now_ms() + 1500;
    while (now_ms() < deadline) {
        char *m = wsc_text(c, 500);
        assert_non_null(m);
        assert_null(strstr(m, "\"x\":true"));
        assert_non_null(strstr(m, "\"x\":false"));
        char t[32];
        assert_true(jfield(m, "t", t, sizeof t));
        if (strcmp(t, prev) != 0)
            distinct++;
        snprintf(prev, sizeof prev, "%s", t);
        updates++;
        free(m);
    }
    wsc_free(c);
    assert_true(updates >= 20);
    assert_true(distinct >= 8);
    usleep(100000);
    char *r = big_buf();
    get_state(port, r, 1 << 21);
    long long dropped = state_num(r, "dropped_closes");
    assert_true(dropped >= distinct - 1 && dropped <= distinct + 2);
    free(r);
    teardown(NULL);
}

/* --drop-close-rate 0.5: some closes arrive, some not, the same ones for the same seed */
static void drop_run(const char *seed, long long *ts, bool *closed, int *n)
{
    kft_sim *s =
        start_sim("--drop-close-rate", "0.5", "--fault-seed", seed, "--speed", "600", NULL);
    wsc *c = wsc_open(kft_sim_port(s), "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    *n = 0;
    long long deadline = now_ms() + 1500;
    while (now_ms() < deadline && *n < 64) {
        char *m = wsc_text(c, 500);
        assert_non_null(m);
        char t[32];
        assert_true(jfield(m, "t", t, sizeof t));
        if (*n == 0 || ts[*n - 1] != atoll(t)) {
            assert_true(*n == 0 || atoll(t) > ts[*n - 1]);
            ts[*n] = atoll(t);
            closed[(*n)++] = false;
        }
        if (strstr(m, "\"x\":true"))
            closed[*n - 1] = true;
        free(m);
    }
    wsc_free(c);
    teardown(NULL);
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
    kft_sim *s = start_sim("--max-conn-age-ms", "700", NULL);
    int port = kft_sim_port(s);
    long long t0 = now_ms();
    wsc *c = wsc_open(port, "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    int texts = 0, closes = 0, code = 0;
    assert_int_equal(read_until_end(c, 5000, &texts, &closes, &code), -1);
    long long el = now_ms() - t0;
    assert_int_equal(closes, 1);
    assert_int_equal(code, 1001);
    assert_true(el >= 650 && el <= 1500);
    wsc_free(c);
    char *r = big_buf();
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "aged_out"), 1);
    long long age = state_num(r, "age_ms");
    assert_true(age >= 700 && age <= 1200);
    free(r);
    teardown(NULL);
}

/* ---- REST faults */
static void test_rest_429_ban(void **state)
{
    (void)state;
    kft_sim *s = start_sim("--rest-429-rate", "1", "--ban-ms", "1500", NULL);
    int port = kft_sim_port(s);
    char *r = big_buf();
    assert_int_equal(http_get_full(port, "/fapi/v1/time", r, 1 << 21), 429);
    long ra = header_long(r, "Retry-After");
    assert_true(ra >= 1 && ra <= 3);
    assert_non_null(strstr(r, "{\"code\":-1003,\"msg\":\"Too many requests;"));
    assert_true(header_long(r, "X-MBX-USED-WEIGHT-1M") >= 1);
    /* inside the announced window: banned */
    long long tb = now_ms();
    assert_int_equal(http_get_full(port, "/fapi/v1/klines?symbol=BTCUSDT&interval=1m", r, 1 << 21),
                     418);
    assert_int_equal(header_long(r, "Retry-After"), 2);
    assert_non_null(strstr(r, "{\"code\":-1003,\"msg\":\"Way too many requests; IP(127.0.0.1) "
                              "banned until "));
    int n418 = 1;
    for (int i = 0; i < 3; i++) { /* every request during the ban */
        usleep(200000);
        assert_int_equal(http_get_full(port, "/fapi/v1/ping", r, 1 << 21), 418);
        n418++;
    }
    get_state(port, r, 1 << 21); /* introspection is not subject to bans */
    assert_true(now_ms() - tb < 1500);
    /* after the ban: 429 again (rate 1), and waiting out its Retry-After is not punished */
    usleep((useconds_t)(1500 - (now_ms() - tb) + 150) * 1000);
    assert_int_equal(http_get_full(port, "/fapi/v1/time", r, 1 << 21), 429);
    ra = header_long(r, "Retry-After");
    assert_true(ra >= 1 && ra <= 3);
    usleep((useconds_t)(ra * 1000 + 150) * 1000);
    assert_int_equal(http_get_full(port, "/fapi/v1/time", r, 1 << 21), 429);
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "rest_429"), 3);
    assert_int_equal(state_num(r, "rest_418"), n418);
    free(r);
    teardown(NULL);
}

static void test_rest_500(void **state)
{
    (void)state;
    kft_sim *s = start_sim("--rest-500-rate", "1", NULL);
    int port = kft_sim_port(s);
    char *r = big_buf();
    int n500 = 0, n503 = 0;
    for (int i = 0; i < 4; i++) {
        int st =
            http_get_full(port, "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=5", r, 1 << 21);
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
    teardown(NULL);
}

static void test_rest_slow(void **state)
{
    (void)state;
    kft_sim *s = start_sim("--rest-slow-rate", "1", "--rest-slow-ms", "800", NULL);
    int port = kft_sim_port(s);
    int fd = tcp_connect(port);
    assert_true(fd >= 0);
    const char *req = "GET /fapi/v1/time HTTP/1.1\r\nHost: x\r\n\r\n"
                      "GET /fapi/v1/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    long long t0 = now_ms();
    assert_true(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
    /* other clients are served meanwhile */
    char *r = big_buf();
    get_state(port, r, 1 << 21);
    assert_true(now_ms() - t0 < 500);
    size_t len = 0;
    long long first = -1;
    for (;;) {
        struct pollfd pf = {fd, POLLIN, 0};
        assert_true(poll(&pf, 1, 5000) == 1);
        ssize_t k = recv(fd, r + len, (1 << 21) - 1 - len, 0);
        if (k <= 0)
            break;
        if (first < 0)
            first = now_ms() - t0;
        len += (size_t)k;
    }
    r[len] = 0;
    long long total = now_ms() - t0;
    close(fd);
    assert_true(first >= 800);  /* the first reply was held back */
    assert_true(total >= 1600); /* and so was the pipelined second one */
    assert_true(strncmp(r, "HTTP/1.1 200 OK", 15) == 0);
    assert_non_null(strstr(r, "{\"serverTime\":"));
    assert_non_null(strstr(r, "\r\n\r\n{}"));
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "rest_slow"), 2);
    free(r);
    teardown(NULL);
}

static void test_rest_timeout(void **state)
{
    (void)state;
    kft_sim *s = start_sim("--rest-timeout-rate", "1", NULL);
    int port = kft_sim_port(s);
    int fd = tcp_connect(port);
    assert_true(fd >= 0);
    const char *req = "GET /fapi/v1/time HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_true(send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req));
    struct pollfd pf = {fd, POLLIN, 0};
    assert_int_equal(poll(&pf, 1, 2000), 0); /* no answer, not closed */
    close(fd);
    char *r = big_buf();
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "rest_timeout"), 1);
    free(r);
    teardown(NULL);
}

/* ---- ground truth */
static void test_truth(void **state)
{
    (void)state;
    kft_sim *s = start_sim("--speed", "60", NULL);
    int port = kft_sim_port(s);
    char *truth = big_buf(), *rest = big_buf(), *st = big_buf();
    wsc *c = wsc_open(port, "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    char rows[3][1024];
    int nrows = 0;
    long long deadline = now_ms() + 6000;
    while (nrows < 3) {
        assert_true(now_ms() < deadline);
        char *m = wsc_text(c, 2000);
        assert_non_null(m);
        if (strstr(m, "\"x\":true"))
            event_to_row(m, rows[nrows++], sizeof rows[0]);
        free(m);
    }
    wsc_free(c);
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
    teardown(NULL);
}

static void test_state_defaults(void **state)
{
    (void)state;
    kft_sim *s = start_sim(NULL);
    int port = kft_sim_port(s);
    wsc *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = wsc_open(port, "/market/ws/btcusdt@kline_1m");
        assert_non_null(c[i]);
    }
    for (int i = 0; i < 3; i++)
        wsc_free(c[i]);
    usleep(200000);
    char *r = big_buf();
    get_state(port, r, 1 << 21);
    assert_int_equal(state_num(r, "connections_open"), 0);
    assert_int_equal(state_num(r, "connections_max_open"), 3);
    assert_non_null(strstr(r, "\"connections\":[{\"id\":1,\"age_ms\":"));
    assert_non_null(strstr(r, "\"faults\":{\"reset\":0,\"stall\":0,\"close\":0,\"refused\":0,"
                              "\"refused_connections\":0,\"garbage\":0,\"dropped_closes\":0,"
                              "\"aged_out\":0,\"rest_429\":0,\"rest_418\":0,\"rest_500\":0,"
                              "\"rest_slow\":0,\"rest_timeout\":0}}"));
    free(r);
    teardown(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_reset, teardown),
        cmocka_unit_test_teardown(test_stall, teardown),
        cmocka_unit_test_teardown(test_close, teardown),
        cmocka_unit_test_teardown(test_refuse, teardown),
        cmocka_unit_test_teardown(test_garbage, teardown),
        cmocka_unit_test_teardown(test_drop_close, teardown),
        cmocka_unit_test_teardown(test_drop_close_seeded, teardown),
        cmocka_unit_test_teardown(test_max_age, teardown),
        cmocka_unit_test_teardown(test_rest_429_ban, teardown),
        cmocka_unit_test_teardown(test_rest_500, teardown),
        cmocka_unit_test_teardown(test_rest_slow, teardown),
        cmocka_unit_test_teardown(test_rest_timeout, teardown),
        cmocka_unit_test_teardown(test_truth, teardown),
        cmocka_unit_test_teardown(test_state_defaults, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
