/*
 * GET / and GET /api/streams: the live page.
 *
 * /: web/index.html with the chart library (the npm package lightweight-charts, pinned by
 * web/package-lock.json, Apache-2.0: its NOTICE is on the page) inlined, embedded in the program
 * at build time (page_assets.c, made by cmake/embed_page.cmake): the page needs nothing but the
 * daemon, no internet. It polls /api/streams every second.
 *
 * /api/streams[?filter=SUB&problems=1&offset=O&count=N&stream=NAME&limit=L]: a page of the
 * streams (kf_stream_info_get), each with its last candle (kf_recent, the open one if any): the
 * ones whose name contains SUB (any case) and, with problems=1, only those not live or with
 * candles missing; from the O-th match (0), at most N (1..20000, default 200). "total",
 * "matched" and a "summary" of every stream (by state; gaps, repaired, missing) come with each
 * answer, so a page of 10,000 streams moves a screenful per poll. With stream= the last L candles
 * of that stream (oldest first, the open one last; 1..1500, default 500, at most what the
 * collector keeps in memory). NAME is a stream's name ("btcusdt@kline_1m") or SYMBOL@INTERVAL
 * ("BTCUSDT@1m"). Decimals are strings, exactly as received. 400 names a bad parameter, 404 a
 * stream not collected.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"

extern const unsigned char kf_page_html[];
extern const size_t kf_page_html_len;

#define LIMIT_DEFAULT 500
#define LIMIT_MAX 1500
/* Streams listed per answer (a page of the table); the summary counts every stream. */
#define COUNT_DEFAULT 200
#define COUNT_MAX 20000

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
    return s == KF_STREAM_LIVE       ? "live"
           : s == KF_STREAM_WAITING  ? "waiting"
           : s == KF_STREAM_DELISTED ? "delisted"
                                     : "down";
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

/* The streams a page lists: a case-insensitive substring of the name, and only the ones that
 * need an operator (not live, or with candles missing). */
typedef struct page_filter {
    char sub[64];
    bool problems;
} page_filter;

static bool matches(const page_filter *f, const char *name, const kf_stream_info *si)
{
    /* (a delisted stream is not expected to deliver: no operator needed) */
    if (f->problems && (si->state == KF_STREAM_LIVE || si->state == KF_STREAM_DELISTED) &&
        si->missing == 0)
        return false;
    if (!f->sub[0])
        return true;
    size_t n = strlen(f->sub);
    for (const char *p = name; *p; p++)
        if (strncasecmp(p, f->sub, n) == 0)
            return true;
    return false;
}

/* "name" of query as an integer in lo..hi into out (def when absent); false (and a 400) when
 * malformed or out of range. */
static bool int_param(const char *query, const char *name, long lo, long hi, long def, long *out,
                      http_reply *r)
{
    char v[32];
    *out = def;
    if (!http_query_param(query, name, v, sizeof v))
        return true;
    char *end;
    long x = strtol(v, &end, 10);
    if (!v[0] || *end || x < lo || x > hi) {
        char what[80];
        snprintf(what, sizeof what, "%s must be %ld..%ld", name, lo, hi);
        bad(r, 400, what, v);
        return false;
    }
    *out = x;
    return true;
}

void http_api_streams(kf_collector *c, const char *query, http_reply *r)
{
    char stream[128], sym[KF_SYMBOL_MAX + 1], iv[4], flag[8];
    bool one = http_query_param(query, "stream", stream, sizeof stream);
    long limit, offset, count;
    if (!int_param(query, "limit", 1, LIMIT_MAX, LIMIT_DEFAULT, &limit, r) ||
        !int_param(query, "offset", 0, LONG_MAX, 0, &offset, r) ||
        !int_param(query, "count", 1, COUNT_MAX, COUNT_DEFAULT, &count, r))
        return;
    page_filter f = {0};
    if (!http_query_param(query, "filter", f.sub, sizeof f.sub) &&
        (strncmp(query, "filter=", 7) == 0 || strstr(query, "&filter="))) {
        bad(r, 400, "filter is too long (at most 63 bytes)", "");
        return;
    }
    f.problems = http_query_param(query, "problems", flag, sizeof flag) && strcmp(flag, "0") != 0;
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
    /* one pass: the summary of every stream, the page of the matching ones */
    size_t ns = kf_stream_count(c), matched = 0, listed = 0;
    uint64_t by_state[4] = {0}, gaps = 0, repaired = 0, missing = 0;
    for (size_t i = 0; i < ns; i++) {
        kf_stream_info si;
        if (kf_stream_info_get(c, i, &si, sizeof si) != KF_OK)
            continue;
        by_state[si.state == KF_STREAM_LIVE       ? 0
                 : si.state == KF_STREAM_WAITING  ? 1
                 : si.state == KF_STREAM_DELISTED ? 3
                                                  : 2]++;
        gaps += si.gaps;
        repaired += si.repaired;
        missing += si.missing;
        const char *name = kf_stream_name(c, i);
        if (!matches(&f, name, &si) || matched++ < (size_t)offset || listed >= (size_t)count)
            continue;
        http_buf_printf(b, "%s\n {\"name\":", listed++ ? "," : "");
        put_str(b, name);
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
    http_buf_printf(b,
                    "],\n\"total\":%zu,\"matched\":%zu,\"offset\":%ld,\"count\":%ld,"
                    "\"summary\":{\"live\":%" PRIu64 ",\"waiting\":%" PRIu64 ",\"down\":%" PRIu64
                    ",\"delisted\":%" PRIu64 ",\"gaps\":%" PRIu64 ",\"repaired\":%" PRIu64
                    ",\"missing\":%" PRIu64 "}",
                    ns, matched, offset, count, by_state[0], by_state[1], by_state[2], by_state[3],
                    gaps, repaired, missing);
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
