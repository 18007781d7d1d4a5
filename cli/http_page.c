/*
 * GET / and GET /api/streams: the live page.
 *
 * /: web/index.html with the chart library (the npm package lightweight-charts, pinned by
 * web/package-lock.json, Apache-2.0: its NOTICE is on the page) inlined, embedded in the program
 * at build time (page_assets.c, made by cmake/embed_page.cmake): the page needs nothing but the
 * daemon, no internet. It polls /api/streams every second.
 *
 * /api/streams[?stream=NAME&limit=N]: every stream (kf_stream_info_get) with its last candle
 * (kf_recent, the open one if any), and with stream= the last N candles of that stream (oldest
 * first, the open one last; N 1..1500, default 500, at most what the collector keeps in memory).
 * NAME is a stream's name ("btcusdt@kline_1m") or SYMBOL@INTERVAL ("BTCUSDT@1m"). Decimals are
 * strings, exactly as received. 400 for a bad limit or a malformed stream, 404 for a stream not
 * collected.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"

extern const unsigned char kf_page_html[];
extern const size_t kf_page_html_len;

#define LIMIT_DEFAULT 500
#define LIMIT_MAX 1500

void http_page(kf_collector *c, const char *query, http_reply *r)
{
    (void)c;
    (void)query;
    r->content_type = "text/html; charset=utf-8";
    http_buf_put(&r->body, (const char *)kf_page_html, kf_page_html_len);
}

/* A JSON string of s ('"', '\' and control bytes escaped). */
static void put_str(http_buf *b, const char *s)
{
    http_buf_put(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            http_buf_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            http_buf_printf(b, "\\u%04x", (unsigned)(unsigned char)*s);
        else
            http_buf_put(b, s, 1);
    }
    http_buf_put(b, "\"", 1);
}

static void put_candle(http_buf *b, const kf_kline *k)
{
    char o[KF_DEC_MAXLEN], h[KF_DEC_MAXLEN], l[KF_DEC_MAXLEN], cl[KF_DEC_MAXLEN], v[KF_DEC_MAXLEN];
    kf_dec_format(k->open, o, sizeof o);
    kf_dec_format(k->high, h, sizeof h);
    kf_dec_format(k->low, l, sizeof l);
    kf_dec_format(k->close, cl, sizeof cl);
    kf_dec_format(k->volume, v, sizeof v);
    http_buf_printf(b,
                    "{\"t\":%" PRId64 ",\"o\":\"%s\",\"h\":\"%s\",\"l\":\"%s\",\"c\":\"%s\","
                    "\"v\":\"%s\",\"n\":%" PRId64 ",\"x\":%s}",
                    k->open_time, o, h, l, cl, v, k->trades, k->closed ? "true" : "false");
}

static const char *state_name(kf_stream_state s)
{
    return s == KF_STREAM_LIVE ? "live" : s == KF_STREAM_WAITING ? "waiting" : "down";
}

static void bad(http_reply *r, unsigned status, const char *what, const char *value)
{
    r->status = status;
    http_buf_printf(&r->body, "{\"error\":\"%s\",\"value\":", what);
    put_str(&r->body, value);
    http_buf_printf(&r->body, "}\n");
}

/* Stream name "btcusdt@kline_1m" or "BTCUSDT@1m" into symbol and interval. */
static bool split_stream(const char *name, char *sym, size_t symcap, char *iv, size_t ivcap)
{
    const char *at = strchr(name, '@');
    if (!at || at == name || (size_t)(at - name) >= symcap)
        return false;
    memcpy(sym, name, (size_t)(at - name));
    sym[at - name] = 0;
    const char *i = at + 1;
    if (strncmp(i, "kline_", 6) == 0)
        i += 6;
    if (kf_interval_index(i, strlen(i)) < 0 || strlen(i) >= ivcap)
        return false;
    strcpy(iv, i);
    return true;
}

void http_api_streams(kf_collector *c, const char *query, http_reply *r)
{
    char stream[128], limit_s[32], sym[KF_SYMBOL_MAX + 1], iv[4];
    bool one = http_query_param(query, "stream", stream, sizeof stream);
    long limit = LIMIT_DEFAULT;
    if (http_query_param(query, "limit", limit_s, sizeof limit_s)) {
        char *end;
        limit = strtol(limit_s, &end, 10);
        if (!limit_s[0] || *end || limit < 1 || limit > LIMIT_MAX) {
            bad(r, 400, "limit must be 1..1500", limit_s);
            return;
        }
    }
    if (one && !split_stream(stream, sym, sizeof sym, iv, sizeof iv)) {
        bad(r, 400, "stream must be a stream name (btcusdt@kline_1m) or SYMBOL@INTERVAL", stream);
        return;
    }
    kf_kline *k = calloc((size_t)limit, sizeof *k);
    if (!k) {
        r->body.oom = true;
        return;
    }
    size_t n = (size_t)limit;
    if (one && kf_recent(c, sym, iv, k, &n) != KF_OK) {
        free(k);
        bad(r, 404, "no such stream", stream);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    http_buf *b = &r->body;
    http_buf_printf(b, "{\"now\":%lld,\"streams\":[",
                    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    size_t ns = kf_stream_count(c);
    for (size_t i = 0; i < ns; i++) {
        kf_stream_info si;
        if (kf_stream_info_get(c, i, &si, sizeof si) != KF_OK)
            continue;
        http_buf_printf(b, "%s\n {\"name\":", i ? "," : "");
        put_str(b, kf_stream_name(c, i));
        http_buf_printf(b, ",\"symbol\":");
        put_str(b, si.symbol);
        http_buf_printf(b,
                        ",\"interval\":\"%s\",\"state\":\"%s\",\"age_ms\":%" PRId64
                        ",\"last_closed_open_time\":%" PRId64 ",\"gaps\":%" PRIu64
                        ",\"repaired\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"last\":",
                        si.interval, state_name(si.state), si.last_update_age_ms,
                        si.has_closed ? si.last_closed_open_time : (int64_t)-1, si.gaps,
                        si.repaired, si.missing);
        kf_kline last;
        size_t one_n = 1;
        if (kf_recent(c, si.symbol, si.interval, &last, &one_n) == KF_OK && one_n == 1)
            put_candle(b, &last);
        else
            http_buf_printf(b, "null");
        http_buf_printf(b, "}");
    }
    http_buf_printf(b, "]");
    if (one) {
        http_buf_printf(b, ",\n\"stream\":");
        put_str(b, stream);
        http_buf_printf(b, ",\"klines\":[");
        for (size_t i = 0; i < n; i++) {
            http_buf_printf(b, "%s\n ", i ? "," : "");
            put_candle(b, &k[i]);
        }
        http_buf_printf(b, "]");
    }
    http_buf_printf(b, "}\n");
    free(k);
}
