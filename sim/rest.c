/* rest.c - the REST side of klinefeed-sim: /fapi/v1/time, /fapi/v1/exchangeInfo,
 * /fapi/v1/klines with Binance's limits and per-UTC-minute request weight, /sim/state. */
#include "sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t weight_minute = -1;
static int64_t weight_used;

int64_t rest_weight_used(void)
{
    int64_t m = sim_wall_ms() / 60000;
    return m == weight_minute ? weight_used : 0;
}

/* value of query parameter key (decoded into out), or NULL */
static const char *qparam(const char *query, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *p = query;
    while (p && *p) {
        const char *e = strchr(p, '&');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l > kl && p[kl] == '=' && strncmp(p, key, kl) == 0) {
            size_t vl = l - kl - 1;
            if (vl >= cap)
                vl = cap - 1;
            url_decode(p + kl + 1, vl, out);
            return out;
        }
        if (l == kl && strncmp(p, key, kl) == 0) {
            out[0] = 0;
            return out;
        }
        p = e ? e + 1 : NULL;
    }
    return NULL;
}

static bool parse_ll(const char *s, long long *v)
{
    if (!*s)
        return false;
    char *end;
    *v = strtoll(s, &end, 10);
    return *end == 0;
}

static void reply(sim_conn *c, int status, const char *reason, const char *body, size_t blen,
                  int64_t used, const char *more)
{
    char hdr[256];
    snprintf(hdr, sizeof hdr, "X-MBX-USED-WEIGHT-1M: %lld\r\n%s", (long long)used,
             more ? more : "");
    server_http_reply(c, status, reason, hdr, body, blen);
}

static void reply_err(sim_conn *c, int64_t used, int code, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof body, "{\"code\":%d,\"msg\":\"%s\"}", code, msg);
    reply(c, 400, "Bad Request", body, (size_t)n, used, NULL);
}

static void klines(sim_conn *c, const char *query, int64_t used)
{
    char sym[256], ivs[64], tmp[64];
    long long limit = 500, st = 0, en = 0;
    bool has_st = false, has_en = false;
    const char *sp = qparam(query, "symbol", sym, sizeof sym);
    if (!sp || !*sp) {
        reply_err(c, used, -1102,
                  "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.");
        return;
    }
    const char *ip = qparam(query, "interval", ivs, sizeof ivs);
    if (!ip || !*ip) {
        reply_err(c, used, -1102,
                  "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.");
        return;
    }
    if (qparam(query, "limit", tmp, sizeof tmp)) {
        if (!parse_ll(tmp, &limit) || limit < 1 || limit > 1500) {
            reply_err(c, used, -1130, "Data sent for parameter 'limit' is not valid.");
            return;
        }
    }
    if (qparam(query, "startTime", tmp, sizeof tmp)) {
        if (!parse_ll(tmp, &st)) {
            reply_err(c, used, -1100,
                      "Illegal characters found in parameter 'startTime'; legal range is "
                      "'^-?[0-9]{1,20}$'.");
            return;
        }
        has_st = true;
    }
    if (qparam(query, "endTime", tmp, sizeof tmp)) {
        if (!parse_ll(tmp, &en)) {
            reply_err(c, used, -1100,
                      "Illegal characters found in parameter 'endTime'; legal range is "
                      "'^-?[0-9]{1,20}$'.");
            return;
        }
        has_en = true;
    }
    int s = market_find(sym, strlen(sym));
    if (s < 0) {
        reply_err(c, used, -1121, "Invalid symbol.");
        return;
    }
    int iv = interval_parse(ivs, strlen(ivs));
    if (iv < 0) {
        reply_err(c, used, -1120, "Invalid interval.");
        return;
    }
    int64_t now = sim_now();
    int64_t listing = market_listing_ms();
    int64_t last_open = interval_open(iv, now);
    int64_t *opens = sim_xmalloc(sizeof(int64_t) * (size_t)limit);
    int n = 0;
    if (has_st) {
        int64_t t = interval_open(iv, st < listing ? listing : st);
        if (t < st || t < listing)
            t = interval_next(iv, t);
        while (n < limit && t <= last_open && (!has_en || t <= en)) {
            opens[n++] = t;
            t = interval_next(iv, t);
        }
    } else {
        int64_t end = has_en && en < now ? en : now;
        int64_t t = interval_open(iv, end);
        /* walk back; months have no fixed length, so step via interval_open(t - 1) */
        while (n < limit && t >= listing) {
            opens[n++] = t;
            t = interval_open(iv, t - 1);
        }
        for (int i = 0; i < n / 2; i++) {
            int64_t x = opens[i];
            opens[i] = opens[n - 1 - i];
            opens[n - 1 - i] = x;
        }
    }
    sbuf b = {0};
    sb_puts(&b, "[");
    for (int i = 0; i < n; i++) {
        sim_agg a;
        market_candle(s, iv, opens[i], now, &a);
        if (i)
            sb_puts(&b, ",");
        market_fmt_row(&b, s, iv, opens[i], &a);
    }
    sb_puts(&b, "]");
    free(opens);
    reply(c, 200, "OK", b.p, b.len, used, NULL);
    sb_free(&b);
}

static void exchange_info(sim_conn *c, int64_t used)
{
    sbuf b = {0};
    sb_printf(&b,
              "{\"timezone\":\"UTC\",\"serverTime\":%lld,\"futuresType\":\"U_MARGINED\","
              "\"rateLimits\":[{\"rateLimitType\":\"REQUEST_WEIGHT\",\"interval\":\"MINUTE\","
              "\"intervalNum\":1,\"limit\":%lld},{\"rateLimitType\":\"ORDERS\",\"interval\":"
              "\"MINUTE\",\"intervalNum\":1,\"limit\":1200}],\"exchangeFilters\":[],\"assets\":[],"
              "\"symbols\":[",
              (long long)sim_now(), (long long)g_opt.weight_limit);
    for (int i = 0; i < g_nsyms; i++) {
        const sim_symbol *s = &g_syms[i];
        size_t nl = strlen(s->name);
        const char *base_end =
            nl > 4 && strcmp(s->name + nl - 4, "USDT") == 0 ? s->name + nl - 4 : s->name + nl;
        if (i)
            sb_puts(&b, ",");
        sb_puts(&b, "{\"symbol\":");
        sb_json_str(&b, s->name, nl);
        sb_puts(&b, ",\"pair\":");
        sb_json_str(&b, s->name, nl);
        sb_printf(&b,
                  ",\"contractType\":\"PERPETUAL\",\"deliveryDate\":4133404800000,"
                  "\"onboardDate\":%lld,\"status\":\"%s\",\"baseAsset\":",
                  (long long)market_listing_ms(), s->trading ? "TRADING" : "SETTLING");
        sb_json_str(&b, s->name, (size_t)(base_end - s->name));
        sb_printf(&b,
                  ",\"quoteAsset\":\"USDT\",\"marginAsset\":\"USDT\",\"pricePrecision\":%d,"
                  "\"quantityPrecision\":%d,\"baseAssetPrecision\":8,\"quotePrecision\":8,"
                  "\"underlyingType\":\"COIN\",\"filters\":[{\"filterType\":\"PRICE_FILTER\","
                  "\"tickSize\":\"",
                  s->pp, s->qp);
        sb_dec(&b, 1, s->pp);
        sb_puts(&b, "\",\"minPrice\":\"");
        sb_dec(&b, 1, s->pp);
        sb_puts(&b, "\",\"maxPrice\":\"");
        sb_dec(&b, (__int128)10000000 * 1000 * 1000, s->pp);
        sb_puts(&b, "\"},{\"filterType\":\"LOT_SIZE\",\"stepSize\":\"");
        sb_dec(&b, 1, s->qp);
        sb_puts(&b, "\",\"minQty\":\"");
        sb_dec(&b, 1, s->qp);
        sb_puts(&b, "\",\"maxQty\":\"");
        sb_dec(&b, (__int128)1000000000, s->qp);
        sb_puts(&b, "\"}],\"orderTypes\":[\"LIMIT\",\"MARKET\"],\"timeInForce\":[\"GTC\"]}");
    }
    sb_puts(&b, "]}");
    reply(c, 200, "OK", b.p, b.len, used, NULL);
    sb_free(&b);
}

static void sim_state(sim_conn *c, int64_t used)
{
    sbuf b = {0};
    sb_printf(&b,
              "{\"now\":%lld,\"connections_total\":%llu,\"connections_open\":%llu,"
              "\"subscribe_requests\":%llu,",
              (long long)sim_now(), (unsigned long long)g_stats.connections_total,
              (unsigned long long)g_stats.connections_open,
              (unsigned long long)g_stats.subscribe_requests);
    ws_state_json(&b);
    sb_printf(&b,
              ",\"pongs\":%llu,\"rest_requests\":%llu,\"weight_used\":%lld,\"frames_sent\":%llu}",
              (unsigned long long)g_stats.pongs, (unsigned long long)g_stats.rest_requests,
              (long long)rest_weight_used(), (unsigned long long)g_stats.frames_sent);
    reply(c, 200, "OK", b.p, b.len, used, NULL);
    sb_free(&b);
}

void rest_handle(sim_conn *c, const char *target)
{
    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    const char *query = q ? q + 1 : "";
    char path[256];
    if (plen >= sizeof path)
        plen = sizeof path - 1;
    memcpy(path, target, plen);
    path[plen] = 0;

    if (strcmp(path, "/sim/state") == 0) { /* introspection: free, not counted */
        sim_state(c, rest_weight_used());
        return;
    }
    g_stats.rest_requests++;
    int64_t weight = 1;
    bool is_klines = strcmp(path, "/fapi/v1/klines") == 0;
    if (is_klines) {
        char tmp[64];
        long long limit;
        if (!qparam(query, "limit", tmp, sizeof tmp)) {
            weight = 5;
        } else if (parse_ll(tmp, &limit)) {
            weight = limit <= 100 ? 1 : limit <= 500 ? 2 : limit <= 1000 ? 5 : 10;
        }
    }
    int64_t wall = sim_wall_ms();
    int64_t minute = wall / 60000;
    if (minute != weight_minute) {
        weight_minute = minute;
        weight_used = 0;
    }
    weight_used += weight;
    if (weight_used > g_opt.weight_limit) {
        char body[160], more[64];
        int n = snprintf(body, sizeof body,
                         "{\"code\":-1003,\"msg\":\"Too many requests; current limit is %lld "
                         "requests per minute.\"}",
                         (long long)g_opt.weight_limit);
        long long retry = 60 - (wall / 1000) % 60;
        snprintf(more, sizeof more, "Retry-After: %lld\r\n", retry);
        reply(c, 429, "Too Many Requests", body, (size_t)n, weight_used, more);
        return;
    }
    if (strcmp(path, "/fapi/v1/time") == 0) {
        char body[64];
        int n = snprintf(body, sizeof body, "{\"serverTime\":%lld}", (long long)sim_now());
        reply(c, 200, "OK", body, (size_t)n, weight_used, NULL);
    } else if (strcmp(path, "/fapi/v1/exchangeInfo") == 0) {
        exchange_info(c, weight_used);
    } else if (is_klines) {
        klines(c, query, weight_used);
    } else if (strcmp(path, "/fapi/v1/ping") == 0) {
        reply(c, 200, "OK", "{}", 2, weight_used, NULL);
    } else {
        const char *body = "{\"code\":-5,\"msg\":\"not found\"}";
        reply(c, 404, "Not Found", body, strlen(body), weight_used, NULL);
    }
}
