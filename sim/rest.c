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

/* The symbol and interval of a klines-style request; false after answering 400 as Binance does. */
static bool find_stream(sim_conn *c, int64_t used, const char *sym, const char *ivs, int *s,
                        int *iv)
{
    if ((*s = market_find(sym, strlen(sym))) < 0) {
        reply_err(c, used, -1121, "Invalid symbol.");
        return false;
    }
    if ((*iv = interval_parse(ivs, strlen(ivs))) < 0) {
        reply_err(c, used, -1120, "Invalid interval.");
        return false;
    }
    return true;
}

/* A mandatory query parameter into buf, or NULL after Binance's -1102 reply. */
static const char *need_param(sim_conn *c, int64_t used, const char *query, const char *name,
                              char *buf, size_t cap)
{
    const char *v = qparam(query, name, buf, cap);
    if (!v || !*v) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "Mandatory parameter '%s' was not sent, was empty/null, or malformed.", name);
        reply_err(c, used, -1102, msg);
        return NULL;
    }
    return v;
}

/* An optional integer parameter (startTime, endTime): *has tells whether it was sent; false
 * after Binance's -1100 reply when it is not an integer. */
static bool opt_time(sim_conn *c, int64_t used, const char *query, const char *name, bool *has,
                     long long *out)
{
    char tmp[64];
    *has = qparam(query, name, tmp, sizeof tmp) != NULL;
    if (*has && !parse_ll(tmp, out)) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "Illegal characters found in parameter '%s'; legal range is '^-?[0-9]{1,20}$'.",
                 name);
        reply_err(c, used, -1100, msg);
        return false;
    }
    return true;
}

static void klines(sim_conn *c, const char *query, int64_t used)
{
    char sym[256], ivs[64], tmp[64];
    long long limit = 500, st = 0, en = 0;
    bool has_st = false, has_en = false;
    if (!need_param(c, used, query, "symbol", sym, sizeof sym) ||
        !need_param(c, used, query, "interval", ivs, sizeof ivs))
        return;
    if (qparam(query, "limit", tmp, sizeof tmp)) {
        if (!parse_ll(tmp, &limit) || limit < 1 || limit > 1500) {
            reply_err(c, used, -1130, "Data sent for parameter 'limit' is not valid.");
            return;
        }
    }
    if (!opt_time(c, used, query, "startTime", &has_st, &st) ||
        !opt_time(c, used, query, "endTime", &has_en, &en))
        return;
    int s, iv;
    if (!find_stream(c, used, sym, ivs, &s, &iv))
        return;
    int64_t now = sim_now();
    int64_t listing = market_symbol_listing(s);
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

/* GET /sim/truth: every closed candle with openTime in [startTime, endTime], oldest first,
 * values as in the x:true update (state at close time). Free, no limit. */
static void truth(sim_conn *c, const char *query)
{
    char sym[256], ivs[64];
    long long st = 0, en = 0;
    int64_t used = rest_weight_used();
    if (!need_param(c, used, query, "symbol", sym, sizeof sym) ||
        !need_param(c, used, query, "interval", ivs, sizeof ivs))
        return;
    bool has_st, has_en;
    if (!opt_time(c, used, query, "startTime", &has_st, &st) ||
        !opt_time(c, used, query, "endTime", &has_en, &en))
        return;
    int s, iv;
    if (!find_stream(c, used, sym, ivs, &s, &iv))
        return;
    int64_t now = sim_now();
    int64_t listing = market_symbol_listing(s);
    int64_t from = has_st && st > listing ? st : listing;
    int64_t t = interval_open(iv, from);
    if (t < from)
        t = interval_next(iv, t);
    sbuf b = {0};
    sb_puts(&b, "[");
    bool first = true;
    for (; !has_en || t <= en; t = interval_next(iv, t)) {
        int64_t next = interval_next(iv, t);
        if (next - 1 >= now) /* close time not before now: still open */
            break;
        sim_agg a;
        market_candle(s, iv, t, next - 1, &a);
        if (!first)
            sb_puts(&b, ",");
        first = false;
        market_fmt_row(&b, s, iv, t, &a);
    }
    sb_puts(&b, "]");
    reply(c, 200, "OK", b.p, b.len, used, NULL);
    sb_free(&b);
}

/* ---- REST faults. The client IP is always 127.0.0.1, so windows and bans are per server. */
static int64_t retry_until = -1; /* end of the last announced Retry-After window, real ms */
static int64_t ban_until = -1;
static int n500;

/* a ban follows an ignored 429 once REST faults are on (plain runs keep the old rules) */
static bool ban_enabled(void)
{
    return g_opt.rest_429_rate > 0 || g_opt.ban_ms_set;
}

static void reply_418(sim_conn *c, int64_t rnow)
{
    char body[256], more[64];
    int64_t left = ban_until - rnow;
    int n = snprintf(body, sizeof body,
                     "{\"code\":-1003,\"msg\":\"Way too many requests; IP(127.0.0.1) banned "
                     "until %lld. Please use the websocket for live updates to avoid bans.\"}",
                     (long long)(sim_wall_ms() + left));
    snprintf(more, sizeof more, "Retry-After: %lld\r\n", (long long)((left + 999) / 1000));
    reply(c, 418, "I'm a teapot", body, (size_t)n, weight_used, more);
    g_fstats.rest_418++;
}

/* true when answered with 418 */
static bool rest_ban(sim_conn *c, int64_t rnow)
{
    if (rnow < ban_until) {
        reply_418(c, rnow);
        return true;
    }
    if (rnow < retry_until) {
        ban_until = rnow + g_opt.ban_ms;
        retry_until = -1;
        fprintf(stderr, "klinefeed-sim: fault: request inside Retry-After: banned for %lld ms\n",
                (long long)g_opt.ban_ms);
        reply_418(c, rnow);
        return true;
    }
    return false;
}

/* true when the request is answered (or swallowed) by a fault */
static bool rest_fault(sim_conn *c, int64_t rnow)
{
    double p1 = g_opt.rest_429_rate, p2 = p1 + g_opt.rest_500_rate, p3 = p2 + g_opt.rest_slow_rate,
           p4 = p3 + g_opt.rest_timeout_rate;
    if (p4 <= 0 || !faults_active(rnow))
        return false;
    double u = fault_rand();
    if (u < p1) {
        char body[160], more[64];
        long long ra = 1 + (long long)(fault_rand_u64() % 3);
        int n = snprintf(body, sizeof body,
                         "{\"code\":-1003,\"msg\":\"Too many requests; current limit is %lld "
                         "requests per minute.\"}",
                         (long long)g_opt.weight_limit);
        snprintf(more, sizeof more, "Retry-After: %lld\r\n", ra);
        reply(c, 429, "Too Many Requests", body, (size_t)n, weight_used, more);
        retry_until = rnow + ra * 1000;
        g_fstats.rest_429++;
        fprintf(stderr, "klinefeed-sim: fault: REST 429, Retry-After %lld\n", ra);
        return true;
    }
    if (u < p2) {
        const char *body = "{\"code\":-1001,\"msg\":\"Internal error; unable to process your "
                           "request. Please try your request again.\"}";
        bool is503 = n500++ % 2 == 1;
        reply(c, is503 ? 503 : 500, is503 ? "Service Unavailable" : "Internal Server Error", body,
              strlen(body), weight_used, NULL);
        g_fstats.rest_500++;
        fprintf(stderr, "klinefeed-sim: fault: REST %d\n", is503 ? 503 : 500);
        return true;
    }
    if (u < p3) {
        c->hold = HOLD_SLOW;
        c->hold_until = rnow + g_opt.rest_slow_ms;
        g_fstats.rest_slow++;
        fprintf(stderr, "klinefeed-sim: fault: REST response delayed %lld ms\n",
                (long long)g_opt.rest_slow_ms);
        return false; /* answered normally, the server holds the bytes back */
    }
    if (u < p4) {
        c->hold = HOLD_TIMEOUT;
        c->hold_until = rnow + 30000;
        g_fstats.rest_timeout++;
        fprintf(stderr, "klinefeed-sim: fault: REST request left unanswered\n");
        return true;
    }
    return false;
}

/* GET /sim/list?symbol=X: X is listed now (TRADING; a new symbol's first candle opens at the
 * current minute: no kline of it opens before, onboardDate says so). GET /sim/delist?symbol=X:
 * X is SETTLING, its streams go silent (subscriptions stay until the client drops them). */
static void list_delist(sim_conn *c, const char *query, bool list)
{
    char sym[64];
    const char *bad = NULL;
    if (!qparam(query, "symbol", sym, sizeof sym) || !sym[0] || strlen(sym) > 32)
        bad = "symbol=X (1..32 of A-Z 0-9 _) is required";
    for (const char *p = sym; !bad && *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            bad = "symbol=X (1..32 of A-Z 0-9 _) is required";
    int idx = bad ? -1 : market_find(sym, strlen(sym));
    if (!bad && !list && idx < 0)
        bad = "no such symbol";
    if (bad) {
        sbuf e = {0};
        sb_puts(&e, "{\"error\":");
        sb_json_str(&e, bad, strlen(bad));
        sb_puts(&e, "}");
        server_http_reply(c, 400, "Bad Request", NULL, e.p, e.len);
        sb_free(&e);
        return;
    }
    if (list && idx < 0) {
        market_add_symbol(sym, true);
        idx = market_find(sym, strlen(sym));
        g_syms[idx].listed_ms = sim_now() / 60000 * 60000;
    } else {
        g_syms[idx].trading = list;
    }
    sbuf b = {0};
    sb_puts(&b, "{\"symbol\":");
    sb_json_str(&b, sym, strlen(sym));
    sb_printf(&b, ",\"status\":\"%s\",\"onboardDate\":%lld}", list ? "TRADING" : "SETTLING",
              (long long)market_symbol_listing(idx));
    server_http_reply(c, 200, "OK", NULL, b.p, b.len);
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
        /* PROTOCOL.md: quarterlies are BTCUSDT_261225; USDC-margined pairs end in USDC */
        const char *us = strchr(s->name, '_');
        size_t pl = us ? (size_t)(us - s->name) : nl; /* the pair */
        const char *quote = pl > 4 && strncmp(s->name + pl - 4, "USDC", 4) == 0 ? "USDC" : "USDT";
        const char *base_end =
            pl > 4 && strncmp(s->name + pl - 4, quote, 4) == 0 ? s->name + pl - 4 : s->name + pl;
        if (i)
            sb_puts(&b, ",");
        sb_puts(&b, "{\"symbol\":");
        sb_json_str(&b, s->name, nl);
        sb_puts(&b, ",\"pair\":");
        sb_json_str(&b, s->name, pl);
        sb_printf(&b,
                  ",\"contractType\":\"%s\",\"deliveryDate\":4133404800000,"
                  "\"onboardDate\":%lld,\"status\":\"%s\",\"baseAsset\":",
                  us ? "CURRENT_QUARTER" : "PERPETUAL", (long long)market_symbol_listing(i),
                  s->trading ? "TRADING" : "SETTLING");
        sb_json_str(&b, s->name, (size_t)(base_end - s->name));
        sb_printf(&b,
                  ",\"quoteAsset\":\"%s\",\"marginAsset\":\"%s\",\"pricePrecision\":%d,"
                  "\"quantityPrecision\":%d,\"baseAssetPrecision\":8,\"quotePrecision\":8,"
                  "\"underlyingType\":\"COIN\",\"filters\":[{\"filterType\":\"PRICE_FILTER\","
                  "\"tickSize\":\"",
                  quote, quote, s->pp, s->qp);
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
    b.len--; /* reopen the object */
    sb_printf(&b, ",\"connections_max_open\":%llu,",
              (unsigned long long)g_stats.connections_max_open);
    faults_state_json(&b);
    sb_puts(&b, "}");
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
    if (strcmp(path, "/sim/truth") == 0) { /* ground truth: free, not counted, no faults */
        truth(c, query);
        return;
    }
    if (strcmp(path, "/sim/list") == 0 || strcmp(path, "/sim/delist") == 0) { /* admin: free */
        list_delist(c, query, strcmp(path, "/sim/list") == 0);
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
    int64_t rnow = sim_real_ms();
    if (ban_enabled() && rest_ban(c, rnow))
        return;
    if (weight_used > g_opt.weight_limit) {
        char body[160], more[64];
        int n = snprintf(body, sizeof body,
                         "{\"code\":-1003,\"msg\":\"Too many requests; current limit is %lld "
                         "requests per minute.\"}",
                         (long long)g_opt.weight_limit);
        long long retry = 60 - (wall / 1000) % 60;
        snprintf(more, sizeof more, "Retry-After: %lld\r\n", retry);
        reply(c, 429, "Too Many Requests", body, (size_t)n, weight_used, more);
        if (ban_enabled())
            retry_until = rnow + retry * 1000;
        return;
    }
    if (rest_fault(c, rnow))
        return;
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
