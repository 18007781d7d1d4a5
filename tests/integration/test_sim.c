/* test_sim.c - self-test of klinefeed-sim over real loopback sockets: handshake, live requests,
 * limits, kline delivery on routed and unrouted paths, REST/WS agreement, REST limits and
 * weights, /sim/state, thin symbols, flood mode. Uses the minimal WebSocket client of raw_ws.h. */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kftest.h"
#include "raw_ws.h"
#include "sim_proc.h"

/* ---- helpers */
/* The next text message holding needle, those before it skipped; each within 3 s. */
static char *text_with(kft_ws *c, const char *needle)
{
    for (;;) {
        char *m = kft_ws_text(c, 3000);
        assert_non_null(m);
        if (strstr(m, needle))
            return m;
        free(m);
    }
}

/* ---- tests */
static void test_upgrade_and_requests(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run(NULL);
    int port = kft_sim_port(s);
    char *resp = malloc(KFT_HTTP_BUF);

    /* missing key -> 400 */
    int st = kft_http_raw(port,
                          "GET /market/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: "
                          "Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
                          resp, 1 << 21);
    assert_int_equal(st, 400);

    kft_ws *c = kft_ws_open(port, "/market/ws");
    assert_non_null(c);
    assert_int_equal(kft_ws_text_send(c,
                                      "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@kline_1m\","
                                      "\"ethusdt@kline_5m\",\"BTCUSDT@kline_1m\"],\"id\":7}"),
                     0);
    char *m = kft_ws_text(c, 3000);
    /* updates may follow the ack; the ack comes first */
    assert_non_null(m);
    assert_string_equal(m, "{\"result\":null,\"id\":7}");
    free(m);
    kft_ws_text_send(c, "{\"method\":\"LIST_SUBSCRIPTIONS\",\"id\":8}");
    m = text_with(c, "\"id\":8");
    assert_string_equal(m, "{\"result\":[\"btcusdt@kline_1m\",\"ethusdt@kline_5m\","
                           "\"BTCUSDT@kline_1m\"],\"id\":8}");
    free(m);
    kft_ws_text_send(c, "hello");
    m = text_with(c, "\"error\"");
    assert_string_equal(m, "{\"error\":{\"code\":3,\"msg\":\"Invalid JSON: expected value at line "
                           "1 column 1\"}}");
    free(m);
    kft_ws_text_send(c, "{\"method\":\"FOO\",\"params\":[],\"id\":9}");
    m = text_with(c, "\"error\"");
    assert_non_null(strstr(m, "{\"error\":{\"code\":2,\"msg\":\"Invalid request: "));
    assert_non_null(strstr(m, "},\"id\":9}"));
    free(m);
    /* properties, in a fragmented message */
    const char *part1 = "{\"method\":\"GET_PROP",
               *part2 = "ERTY\",\"params\":[\"combined\"],\"id\":10}";
    kft_ws_send(c, 1, false, part1, strlen(part1));
    kft_ws_send(c, 0, true, part2, strlen(part2));
    m = text_with(c, "\"id\":10");
    assert_string_equal(m, "{\"result\":false,\"id\":10}");
    free(m);
    kft_ws_text_send(c, "{\"method\":\"SET_PROPERTY\",\"params\":[\"colour\",true],\"id\":11}");
    m = text_with(c, "\"id\":11");
    assert_string_equal(m, "{\"error\":{\"code\":0,\"msg\":\"Unknown property\"},\"id\":11}");
    free(m);
    /* ping -> pong with the same payload */
    kft_ws_send(c, 9, true, "abc", 3);
    for (;;) {
        int op;
        char *pl;
        size_t n;
        assert_int_equal(kft_ws_frame(c, 3000, &op, &pl, &n), 1);
        if (op == 0xA) {
            assert_string_equal(pl, "abc");
            free(pl);
            break;
        }
        free(pl);
    }
    kft_ws_free(c);

    /* unmasked client frame -> close 1002 */
    c = kft_ws_open(port, "/market/ws");
    assert_non_null(c);
    unsigned char raw[] = {0x81, 0x02, '{', '}'};
    assert_int_equal(send(c->fd, raw, sizeof raw, MSG_NOSIGNAL), 4);
    while ((m = kft_ws_text(c, 3000)))
        free(m);
    assert_int_equal(c->close_code, 1002);
    kft_ws_free(c);
    free(resp);
    kft_sim_teardown(NULL);
}

static void test_updates_and_combined(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--speed", "10", NULL);
    int port = kft_sim_port(s);
    kft_ws *c = kft_ws_open(port, "/market/ws");
    assert_non_null(c);
    kft_ws_text_send(c, "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@kline_1m\"],\"id\":1}");
    char *m = kft_ws_text(c, 3000);
    assert_string_equal(m, "{\"result\":null,\"id\":1}");
    free(m);
    m = kft_ws_text(c, 3000);
    assert_non_null(m);
    const char *keys[] = {"{\"e\":\"kline\",\"E\":",
                          ",\"s\":\"BTCUSDT\",\"k\":{\"t\":",
                          ",\"T\":",
                          ",\"s\":\"BTCUSDT\",\"i\":\"1m\",\"f\":",
                          ",\"L\":",
                          ",\"o\":\"",
                          "\",\"c\":\"",
                          "\",\"h\":\"",
                          "\",\"l\":\"",
                          "\",\"v\":\"",
                          "\",\"n\":",
                          ",\"x\":false,\"q\":\"",
                          "\",\"V\":\"",
                          "\",\"Q\":\"",
                          "\",\"B\":\"0\"}}"};
    const char *p = m;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *q = strstr(p, keys[i]);
        assert_non_null(q);
        p = q + strlen(keys[i]);
    }
    assert_int_equal(*p, 0);
    free(m);
    kft_ws_free(c);

    c = kft_ws_open(port, "/market/stream?streams=ethusdt@kline_1m/bnbusdt@kline_3m");
    assert_non_null(c);
    m = kft_ws_text(c, 3000);
    assert_non_null(m);
    assert_true(strncmp(m, "{\"stream\":\"ethusdt@kline_1m\",\"data\":{\"e\":\"kline\"", 48) == 0 ||
                strncmp(m, "{\"stream\":\"bnbusdt@kline_3m\",\"data\":{\"e\":\"kline\"", 48) == 0);
    free(m);
    kft_ws_free(c);
    kft_sim_teardown(NULL);
}

static void test_unrouted_silent(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--speed", "600", NULL);
    kft_ws *c = kft_ws_open(kft_sim_port(s), "/ws/btcusdt@kline_1m");
    assert_non_null(c);
    kft_ws_text_send(c, "{\"method\":\"SUBSCRIBE\",\"params\":[\"ethusdt@kline_1m\"],\"id\":3}");
    char *m = kft_ws_text(c, 3000);
    assert_string_equal(m, "{\"result\":null,\"id\":3}");
    free(m);
    m = kft_ws_text(c, 1500); /* 15 simulated minutes */
    assert_null(m);
    assert_int_equal(c->close_code, 0);
    kft_ws_free(c);
    kft_sim_teardown(NULL);
}

static void test_stream_cap(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run(NULL);
    kft_ws *c = kft_ws_open(kft_sim_port(s), "/market/ws");
    assert_non_null(c);
    size_t cap = 64 * 1100;
    char *req = malloc(cap);
    size_t n = (size_t)snprintf(req, cap, "{\"method\":\"SUBSCRIBE\",\"params\":[");
    for (int i = 0; i < 1024; i++)
        n += (size_t)snprintf(req + n, cap - n, "%s\"c%04dusdt@kline_1m\"", i ? "," : "", i);
    snprintf(req + n, cap - n, "],\"id\":1}");
    kft_ws_text_send(c, req);
    char *m = kft_ws_text(c, 3000);
    assert_string_equal(m, "{\"result\":null,\"id\":1}");
    free(m);
    /* resubscribing an existing name does not count */
    kft_ws_text_send(c, "{\"method\":\"SUBSCRIBE\",\"params\":[\"c0000usdt@kline_1m\"],\"id\":2}");
    m = kft_ws_text(c, 3000);
    assert_string_equal(m, "{\"result\":null,\"id\":2}");
    free(m);
    kft_ws_text_send(c, "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@kline_1m\"],\"id\":3}");
    m = kft_ws_text(c, 3000);
    assert_string_equal(m, "{\"error\":{\"code\":4,\"msg\":\"Too many subscriptions\"},\"id\":3}");
    free(m);
    assert_null(kft_ws_text(c, 3000));
    assert_int_equal(c->close_code, 1008);
    free(req);
    kft_ws_free(c);
    kft_sim_teardown(NULL);
}

static void test_msg_rate(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run(NULL);
    kft_ws *c = kft_ws_open(kft_sim_port(s), "/market/ws");
    assert_non_null(c);
    for (int i = 0; i < 15; i++) {
        char req[128];
        snprintf(req, sizeof req, "{\"method\":\"LIST_SUBSCRIPTIONS\",\"id\":%d}", i);
        kft_ws_text_send(c, req);
    }
    int replies = 0;
    char *m;
    while ((m = kft_ws_text(c, 3000))) {
        replies++;
        free(m);
    }
    assert_int_equal(replies, 10);
    assert_int_equal(c->close_code, 1008);
    assert_string_equal(c->close_reason, "Too many requests");
    kft_ws_free(c);
    kft_sim_teardown(NULL);
}

static void get_row(int port, const char *sym, const char *iv, const char *t, char *body,
                    size_t cap)
{
    char path[256];
    snprintf(path, sizeof path, "/fapi/v1/klines?symbol=%s&interval=%s&startTime=%s&limit=1", sym,
             iv, t);
    assert_int_equal(kft_http_get(port, path, body, cap), 200);
}

/* fixed-point text to integer mantissa */
static long long mant(const char *s)
{
    long long v = 0;
    for (; *s; s++)
        if (*s != '.')
            v = v * 10 + (*s - '0');
    return v;
}

static void test_closes_match_rest(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--speed", "600", NULL);
    int port = kft_sim_port(s);
    kft_ws *c = kft_ws_open(port, "/market/ws/btcusdt@kline_1m/ethusdt@kline_5m/avaxusdt@kline_1m");
    assert_non_null(c);
    int closes_1m = 0, closes_5m = 0, empty_thin = 0;
    char *body = malloc(KFT_HTTP_BUF);
    long long deadline = kft_now_ms() + 8000;
    while ((closes_1m < 6 || closes_5m < 1 || empty_thin < 1) && kft_now_ms() < deadline) {
        char *m = kft_ws_text(c, 2000);
        assert_non_null(m);
        if (!strstr(m, "\"x\":true")) {
            free(m);
            continue;
        }
        char sym[32], iv[8], t[32], row[1024], n[32];
        assert_true(kft_json_field(m, "s", sym, sizeof sym) &&
                    kft_json_field(m, "i", iv, sizeof iv));
        assert_true(kft_json_field(m, "t", t, sizeof t) && kft_json_field(m, "n", n, sizeof n));
        kft_ws_event_to_row(m, row, sizeof row);
        get_row(port, sym, iv, t, body, 1 << 21);
        char expect[1100];
        snprintf(expect, sizeof expect, "[%s]", row);
        assert_string_equal(body, expect);
        if (strcmp(iv, "1m") == 0)
            closes_1m++;
        if (strcmp(sym, "AVAXUSDT") == 0 && strcmp(n, "0") == 0) {
            char f[32], L[32], v[32], q[32];
            assert_true(kft_json_field(m, "f", f, sizeof f) && kft_json_field(m, "L", L, sizeof L));
            assert_true(kft_json_field(m, "v", v, sizeof v) && kft_json_field(m, "q", q, sizeof q));
            assert_string_equal(f, "-1");
            assert_string_equal(L, "-1");
            assert_string_equal(v, "0.0");
            assert_string_equal(q, "0.0000");
            empty_thin++;
        }
        if (strcmp(iv, "5m") == 0) {
            closes_5m++;
            /* the 5m candle is the aggregate of its five 1m rows */
            char path[256];
            snprintf(path, sizeof path,
                     "/fapi/v1/klines?symbol=ETHUSDT&interval=1m&startTime=%s&limit=5", t);
            assert_int_equal(kft_http_get(port, path, body, 1 << 21), 200);
            long long hi = 0, lo = -1, v = 0, q = 0, cnt = 0, V = 0, Q = 0;
            char o[64] = "", cl[64] = "";
            int rows = 0;
            for (const char *p = strchr(body + 1, '['); p; p = strchr(p + 1, '[')) {
                char f[12][64];
                const char *x = p + 1;
                for (int k = 0; k < 12; k++) {
                    if (*x == '"')
                        x++;
                    size_t len = strcspn(x, "\",]");
                    memcpy(f[k], x, len);
                    f[k][len] = 0;
                    x += len;
                    if (*x == '"')
                        x++;
                    if (*x == ',')
                        x++;
                }
                if (!rows)
                    snprintf(o, sizeof o, "%s", f[1]);
                snprintf(cl, sizeof cl, "%s", f[4]);
                if (mant(f[2]) > hi)
                    hi = mant(f[2]);
                if (lo < 0 || mant(f[3]) < lo)
                    lo = mant(f[3]);
                v += mant(f[5]);
                q += mant(f[7]);
                cnt += atoll(f[8]);
                V += mant(f[9]);
                Q += mant(f[10]);
                rows++;
            }
            assert_int_equal(rows, 5);
            char ev[64];
            assert_true(kft_json_field(m, "o", ev, sizeof ev));
            assert_string_equal(ev, o);
            assert_true(kft_json_field(m, "c", ev, sizeof ev));
            assert_string_equal(ev, cl);
            assert_true(kft_json_field(m, "h", ev, sizeof ev));
            assert_int_equal(mant(ev), hi);
            assert_true(kft_json_field(m, "l", ev, sizeof ev));
            assert_int_equal(mant(ev), lo);
            assert_true(kft_json_field(m, "v", ev, sizeof ev));
            assert_int_equal(mant(ev), v);
            assert_true(kft_json_field(m, "q", ev, sizeof ev));
            assert_int_equal(mant(ev), q);
            assert_true(kft_json_field(m, "V", ev, sizeof ev));
            assert_int_equal(mant(ev), V);
            assert_true(kft_json_field(m, "Q", ev, sizeof ev));
            assert_int_equal(mant(ev), Q);
            assert_int_equal(atoll(n), cnt);
        }
        free(m);
    }
    assert_true(closes_1m >= 6);
    assert_true(closes_5m >= 1);
    assert_true(empty_thin >= 1);
    free(body);
    kft_ws_free(c);
    kft_sim_teardown(NULL);
}

static void test_no_skipped_closes(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--speed", "60000", NULL); /* a simulated minute per real ms */
    kft_ws *c = kft_ws_open(kft_sim_port(s), "/market/ws/btcusdt@kline_1m");
    assert_non_null(c);
    long long prev = -1;
    int closes = 0;
    while (closes < 500) {
        char *m = kft_ws_text(c, 2000);
        assert_non_null(m);
        if (strstr(m, "\"x\":true")) {
            char t[32];
            assert_true(kft_json_field(m, "t", t, sizeof t));
            if (prev >= 0)
                assert_int_equal(atoll(t), prev + 60000);
            prev = atoll(t);
            closes++;
        }
        free(m);
    }
    kft_ws_free(c);
    kft_sim_teardown(NULL);
}

static void test_rest_rules(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run(NULL);
    int port = kft_sim_port(s);
    char *r = malloc(KFT_HTTP_BUF);
    /* keep the weight sequence inside one UTC minute */
    if (time(NULL) % 60 >= 57)
        sleep((unsigned)(61 - time(NULL) % 60));
    assert_int_equal(kft_http_get_full(
                         port, "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1501", r, 1 << 21),
                     400);
    assert_non_null(
        strstr(r, "{\"code\":-1130,\"msg\":\"Data sent for parameter 'limit' is not valid.\"}"));
    long w0 = kft_http_header_long(r, "X-MBX-USED-WEIGHT-1M");
    assert_true(w0 >= 1);
    struct {
        const char *q;
        long w;
    } steps[] = {{"limit=100", 1},
                 {"limit=101", 2},
                 {"limit=1000", 5},
                 {"limit=1500", 10},
                 {"startTime=1767225600000", 5}};
    long used = w0;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "/fapi/v1/klines?symbol=ETHUSDT&interval=1m&%s", steps[i].q);
        assert_int_equal(kft_http_get_full(port, path, r, 1 << 21), 200);
        used += steps[i].w;
        assert_int_equal(kft_http_header_long(r, "X-MBX-USED-WEIGHT-1M"), used);
    }
    assert_int_equal(kft_http_get(port, "/fapi/v1/klines?symbol=FOOUSDT&interval=1m", r, 4096),
                     400);
    assert_string_equal(r, "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}");
    assert_int_equal(kft_http_get(port, "/fapi/v1/klines?symbol=BTCUSDT&interval=1s", r, 4096),
                     400);
    assert_string_equal(r, "{\"code\":-1120,\"msg\":\"Invalid interval.\"}");
    assert_int_equal(kft_http_get(port, "/fapi/v1/klines?interval=1m", r, 4096), 400);
    assert_non_null(strstr(r, "\"code\":-1102"));
    assert_int_equal(kft_http_get(port, "/nope", r, 4096), 404);
    assert_string_equal(r, "{\"code\":-5,\"msg\":\"not found\"}");
    /* row selection: the last 3 rows up to now end with the open candle */
    assert_int_equal(kft_http_get(port, "/fapi/v1/time", r, 4096), 200);
    long long t0 = atoll(r + strlen("{\"serverTime\":"));
    assert_int_equal(
        kft_http_get(port, "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=3", r, 1 << 20), 200);
    long long last_open = 0;
    int rows = 0;
    for (const char *p = strstr(r, "[1"); p; p = strstr(p + 1, "[1")) {
        last_open = atoll(p + 1);
        rows++;
    }
    assert_int_equal(rows, 3);
    assert_true(last_open <= t0 + 60000 && last_open + 60000 > t0);
    assert_int_equal(kft_http_get(port,
                                  "/fapi/v1/klines?symbol=BTCUSDT&interval=1h&startTime="
                                  "1767200000000&endTime=1767210000000",
                                  r, 1 << 20),
                     200);
    assert_true(strncmp(r, "[[1767200400000,", 16) == 0);
    assert_non_null(strstr(r, "[1767207600000,"));
    assert_null(strstr(r, "[1767211200000,"));
    assert_true(strstr(r, "\"exchangeInfo\"") == NULL);
    assert_int_equal(kft_http_get(port, "/fapi/v1/exchangeInfo", r, 1 << 20), 200);
    assert_non_null(strstr(r, "\"rateLimitType\":\"REQUEST_WEIGHT\",\"interval\":\"MINUTE\","
                              "\"intervalNum\":1,\"limit\":2400}"));
    assert_non_null(strstr(r, "{\"symbol\":\"BTCUSDT\",\"pair\":\"BTCUSDT\",\"contractType\":"
                              "\"PERPETUAL\""));
    assert_non_null(strstr(r, "\"pricePrecision\":2,\"quantityPrecision\":3"));
    assert_non_null(strstr(r, "\"tickSize\":\"0.01\""));
    free(r);
    kft_sim_teardown(NULL);

    /* 429 under a tiny weight limit */
    s = kft_sim_run("--weight-limit", "5", NULL);
    port = kft_sim_port(s);
    r = malloc(KFT_HTTP_BUF);
    if (time(NULL) % 60 >= 58)
        sleep((unsigned)(61 - time(NULL) % 60));
    for (int i = 0; i < 5; i++)
        assert_int_equal(kft_http_get_full(port, "/fapi/v1/time", r, 1 << 20), 200);
    assert_int_equal(kft_http_get_full(port, "/fapi/v1/time", r, 1 << 20), 429);
    long ra = kft_http_header_long(r, "Retry-After");
    assert_true(ra >= 1 && ra <= 60);
    assert_int_equal(kft_http_header_long(r, "X-MBX-USED-WEIGHT-1M"), 6);
    assert_non_null(strstr(r, "{\"code\":-1003,\"msg\":\"Too many requests; current limit is 5 "
                              "requests per minute.\"}"));
    free(r);
    kft_sim_teardown(NULL);
}

static void test_state_and_pings(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--ping-ms", "100", "--delisted", "OLDUSDT", NULL);
    int port = kft_sim_port(s);
    kft_ws *a = kft_ws_open(port, "/market/ws/btcusdt@kline_1m");
    kft_ws *b = kft_ws_open(port, "/market/stream");
    assert_non_null(a);
    assert_non_null(b);
    kft_ws_text_send(b,
                     "{\"method\":\"SUBSCRIBE\",\"params\":[\"btcusdt@kline_1m\",\"oldusdt@kline_"
                     "1m\"],\"id\":1}");
    char *m;
    bool pinged = false;
    long long deadline = kft_now_ms() + 3000;
    while (kft_now_ms() < deadline && !pinged) { /* kft_ws_text answers pings */
        int op;
        char *pl;
        size_t n;
        if (kft_ws_frame(a, 100, &op, &pl, &n) == 1) {
            if (op == 9) {
                kft_ws_send(a, 0xA, true, pl, n);
                pinged = true;
            }
            free(pl);
        }
    }
    assert_true(pinged);
    while ((m = kft_ws_text(b, 300))) /* drains ack and data; the delisted stream never delivers */
    {
        assert_null(strstr(m, "OLDUSDT"));
        free(m);
    }
    kft_ws_free(a);
    usleep(200000);
    char *r = malloc(KFT_HTTP_BUF);
    assert_int_equal(kft_http_get(port, "/sim/state", r, 1 << 20), 200);
    assert_non_null(strstr(r, "\"connections_total\":2,\"connections_open\":1,"
                              "\"subscribe_requests\":1,\"streams\":[\"btcusdt@kline_1m\","
                              "\"oldusdt@kline_1m\"],\"connections\":[{\"id\":"));
    assert_non_null(strstr(r, "\"path\":\"/market/ws/btcusdt@kline_1m\",\"streams\":1,\"open\":"
                              "false}"));
    assert_non_null(strstr(r, "\"path\":\"/market/stream\",\"streams\":2,\"open\":true}"));
    char *p = strstr(r, "\"pongs\":");
    assert_non_null(p);
    assert_true(atoi(p + 8) >= 1);
    assert_non_null(strstr(r, "\"frames_sent\":"));
    assert_true(strncmp(r, "{\"now\":", 7) == 0);
    free(r);
    kft_ws_free(b);
    kft_sim_teardown(NULL);
}

static void test_flood(void **state)
{
    (void)state;
    kft_sim *s = kft_sim_run("--flood", "100000", NULL);
    int port = kft_sim_port(s);
    unsigned long long sum[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        kft_ws *c = kft_ws_open(port, "/market/ws/btcusdt@kline_1m/ethusdt@kline_1h");
        assert_non_null(c);
        unsigned long long h = 1469598103934665603ULL;
        for (int i = 0; i < 100000; i++) {
            char *m = kft_ws_text(c, 5000);
            assert_non_null(m);
            assert_true(strncmp(m, "{\"e\":\"kline\"", 12) == 0);
            for (const char *p = m; *p; p++)
                h = (h ^ (unsigned char)*p) * 1099511628211ULL;
            free(m);
        }
        sum[k] = h;
        /* normal behaviour resumes */
        char *m = kft_ws_text(c, 3000);
        assert_non_null(m);
        free(m);
        kft_ws_free(c);
    }
    assert_true(sum[0] == sum[1]);
    kft_sim_teardown(NULL);
}

/* The command line: one table makes the parser and --help. Bad values are refused (exit 2)
 * naming the option and the value; every option --help lists is in klinefeed-sim(1), and every
 * option the man page documents is accepted. */
static int sim_cli(const char *args, char *out, size_t cap)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", KF_SIM_PATH, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_options(void **state)
{
    (void)state;
    static char out[16384];
    struct {
        const char *args, *says;
    } bad[] = {
        {"--nope 1", "--nope: unknown option"},
        {"--speed 0", "--speed: invalid number \"0\""},
        {"--speed=nan", "--speed: invalid number \"nan\""},
        {"--max-streams=abc", "--max-streams: invalid number \"abc\""},
        {"--drop-close-rate 1.5", "--drop-close-rate: invalid number \"1.5\""},
        {"--listen 127.0.0.1", "--listen: expected HOST:PORT"},
        {"--listen 127.0.0.1:70000", "--listen: invalid port"},
        {"--update-ms", "--update-ms: missing value"},
        {"--tls-cert x.pem", "--tls-cert and --tls-key go together"},
        {"--rest-429-rate 0.6 --rest-500-rate 0.6", "add up to more than 1"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = sim_cli(bad[i].args, out, sizeof out);
        if (code != 2 || !strstr(out, bad[i].says))
            fail_msg("klinefeed-sim %s: exit %d, said: %s", bad[i].args, code, out);
    }
    assert_int_equal(sim_cli("--help", out, sizeof out), 0);
    FILE *f = fopen(KF_SOURCE_DIR "/docs/man/klinefeed-sim.1", "r");
    assert_non_null(f);
    static char man[65536];
    size_t mlen = fread(man, 1, sizeof man - 1, f);
    man[mlen] = 0;
    fclose(f);
    /* every "  --name" of --help is documented as "\-\-name" in the man page */
    size_t listed = 0;
    for (const char *p = strstr(out, "\n  --"); p; p = strstr(p + 1, "\n  --")) {
        char name[64], roff[128];
        if (sscanf(p + 3, "--%63[a-z0-9-]", name) != 1)
            continue;
        size_t o = 0;
        o += (size_t)snprintf(roff + o, sizeof roff - o, "\\-\\-");
        for (const char *c = name; *c && o + 3 < sizeof roff; c++)
            o += (size_t)snprintf(roff + o, sizeof roff - o, *c == '-' ? "\\-" : "%c", *c);
        if (!strstr(man, roff))
            fail_msg("--%s is in --help but not in klinefeed-sim(1)", name);
        listed++;
    }
    assert_true(listed >= 30);
    /* every option the man page gives a paragraph (.TP then .B/.BI \-\-name) is accepted */
    size_t documented = 0;
    for (const char *p = strstr(man, ".TP\n.B"); p; p = strstr(p + 1, ".TP\n.B")) {
        const char *q = strstr(p, "\\-\\-");
        if (!q || q - p > 12)
            continue;
        char name[64];
        size_t n = 0;
        for (q += 4; n + 1 < sizeof name && (*q == '\\' || *q == '-' || (*q >= 'a' && *q <= 'z') ||
                                             (*q >= '0' && *q <= '9'));
             q++)
            if (*q != '\\')
                name[n++] = *q;
        name[n] = 0;
        char needle[80];
        snprintf(needle, sizeof needle, "\n  --%s ", name);
        if (!strstr(out, needle))
            fail_msg("klinefeed-sim(1) documents --%s, which --help does not list", name);
        documented++;
    }
    assert_true(documented >= 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_upgrade_and_requests, kft_sim_teardown),
        cmocka_unit_test_teardown(test_updates_and_combined, kft_sim_teardown),
        cmocka_unit_test_teardown(test_unrouted_silent, kft_sim_teardown),
        cmocka_unit_test_teardown(test_stream_cap, kft_sim_teardown),
        cmocka_unit_test_teardown(test_msg_rate, kft_sim_teardown),
        cmocka_unit_test_teardown(test_closes_match_rest, kft_sim_teardown),
        cmocka_unit_test_teardown(test_no_skipped_closes, kft_sim_teardown),
        cmocka_unit_test_teardown(test_rest_rules, kft_sim_teardown),
        cmocka_unit_test_teardown(test_state_and_pings, kft_sim_teardown),
        cmocka_unit_test_teardown(test_flood, kft_sim_teardown),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
