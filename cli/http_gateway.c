/*
 * A local Binance-compatible gateway (REST): GET /fapi/v1/klines, /fapi/v1/time, /fapi/v1/ping
 * and /fapi/v1/exchangeInfo, answered from the run's store and the library's ring, in Binance's
 * own formats (../shared/PROTOCOL.md section 3), errors included.
 *
 * klines: the rows of the run's first SQLite store (a read-only connection of this request's
 * own, on the HTTP thread, with a busy timeout; the store is in WAL mode, so a reader never
 * blocks its writer) merged with the newest candles of the library's ring (kf_recent): the
 * open candle, which Binance includes when the range reaches it, and closed candles still on
 * their way to the store. Decimals are the stored text, byte for byte.
 *
 * Semantics (Binance's): symbol and interval mandatory (-1102); limit 1..1500, default 500
 * (-1130); startTime and endTime integers (-1100), startTime > endTime is -1023. With startTime:
 * the first `limit` candles with startTime <= openTime (<= endTime); without: the last `limit`
 * candles with openTime <= endTime (or now). A symbol that is not collected is -1121 "Invalid
 * symbol."; an interval that is not one of Binance's 15 is -1120 "Invalid interval.", and so is
 * one of the 15 that this run does not collect (the gateway serves only what it stores).
 */
#include <ctype.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http.h"

#define GW_LIMIT_DEFAULT 500
#define GW_LIMIT_MAX 1500
/* Newest candles of the ring merged into a klines answer: the open candle and the closed ones
 * the store may not have written yet (its queue drains in milliseconds). */
#define GW_RING_TAIL 64
/* A read of the store waits this long for a lock (a checkpoint) before answering 503. */
#define GW_BUSY_TIMEOUT_MS 2000

static void gw_error(http_reply *r, unsigned status, int code, const char *msg)
{
    r->status = status;
    http_buf_printf(&r->body, "{\"code\":%d,\"msg\":\"%s\"}", code, msg);
}

static bool parse_i64(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!*p || strlen(p) > 19)
        return false;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return false;
    char *end;
    long long v = strtoll(s, &end, 10);
    *out = v;
    return *end == 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void http_gw_ping(kf_collector *c, const char *query, http_reply *r)
{
    (void)c;
    (void)query;
    http_buf_printf(&r->body, "{}");
}

void http_gw_time(kf_collector *c, const char *query, http_reply *r)
{
    (void)c;
    (void)query;
    http_buf_printf(&r->body, "{\"serverTime\":%" PRId64 "}", now_ms());
}

/* Is (symbol, interval) collected? sym_known: is the symbol. */
static bool collected(kf_collector *c, const char *sym, const char *iv, bool *sym_known)
{
    *sym_known = false;
    for (size_t i = 0; i < kf_stream_count(c); i++) {
        kf_stream_info si;
        if (kf_stream_info_get(c, i, &si, sizeof si) != KF_OK || strcmp(si.symbol, sym) != 0)
            continue;
        *sym_known = true;
        if (iv && strcmp(si.interval, iv) == 0)
            return true;
    }
    return false;
}

/* The path of the run's first SQLite store into buf; false when it has none. */
static bool store_path(kf_collector *c, char *buf, size_t cap)
{
    for (size_t i = 0; i < kf_sink_count(c); i++) {
        kf_sink_info k;
        if (kf_sink_info_get(c, i, &k, sizeof k) != KF_OK || strncmp(k.spec, "sqlite:", 7) != 0)
            continue;
        snprintf(buf, cap, "%s", k.spec + 7);
        return true;
    }
    return false;
}

/* One candle of the answer: from the store (text row) or from the ring. */
typedef struct gw_row {
    int64_t open_time;
    char *text; /* the row's JSON array, owned */
} gw_row;

static int row_cmp(const void *a, const void *b)
{
    int64_t x = ((const gw_row *)a)->open_time, y = ((const gw_row *)b)->open_time;
    return (x > y) - (x < y);
}

static char *ring_row(const kf_kline *k)
{
    char d[8][KF_DEC_MAXLEN];
    kf_dec_format(k->open, d[0], sizeof d[0]);
    kf_dec_format(k->high, d[1], sizeof d[1]);
    kf_dec_format(k->low, d[2], sizeof d[2]);
    kf_dec_format(k->close, d[3], sizeof d[3]);
    kf_dec_format(k->volume, d[4], sizeof d[4]);
    kf_dec_format(k->quote_volume, d[5], sizeof d[5]);
    kf_dec_format(k->taker_buy_base, d[6], sizeof d[6]);
    kf_dec_format(k->taker_buy_quote, d[7], sizeof d[7]);
    http_buf b = {0};
    http_buf_printf(&b,
                    "[%" PRId64 ",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",%" PRId64 ",\"%s\",%" PRId64
                    ",\"%s\",\"%s\",\"0\"]",
                    k->open_time, d[0], d[1], d[2], d[3], d[4], k->close_time, d[5], k->trades,
                    d[6], d[7]);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* A stored decimal column: its text, which must be a plain decimal (it is, as klinefeed wrote
 * it); anything else is replaced by "0" rather than break the JSON. */
static const char *col_dec(sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    if (!s || !*s)
        return "0";
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.' && *p != '-')
            return "0";
    return s;
}

static const char SQ_ASC[] =
    "SELECT open_time, open, high, low, close, volume, close_time, quote_volume, trades, "
    "taker_buy_base, taker_buy_quote FROM klines WHERE symbol = ?1 AND interval = ?2 AND "
    "open_time >= ?3 AND open_time <= ?4 ORDER BY open_time ASC LIMIT ?5";
static const char SQ_DESC[] =
    "SELECT open_time, open, high, low, close, volume, close_time, quote_volume, trades, "
    "taker_buy_base, taker_buy_quote FROM klines WHERE symbol = ?1 AND interval = ?2 AND "
    "open_time >= ?3 AND open_time <= ?4 ORDER BY open_time DESC LIMIT ?5";

typedef struct gw_rows {
    gw_row *v;
    size_t n, cap;
    bool oom;
} gw_rows;

static void rows_add(gw_rows *rs, int64_t t, char *text)
{
    if (!text) {
        rs->oom = true;
        return;
    }
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 256;
        gw_row *v = realloc(rs->v, cap * sizeof *v);
        if (!v) {
            free(text);
            rs->oom = true;
            return;
        }
        rs->v = v;
        rs->cap = cap;
    }
    rs->v[rs->n++] = (gw_row){t, text};
}

/* The store's rows of the range into rs; false with a message in why when it cannot be read. */
static bool store_rows(kf_collector *c, const char *sym, const char *iv, int64_t lo, int64_t hi,
                       bool asc, int64_t limit, gw_rows *rs, char *why, size_t whylen)
{
    char path[300];
    if (!store_path(c, path, sizeof path))
        return true; /* no SQLite store: the ring alone */
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(why, whylen, "the store cannot be opened: %s",
                 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        sqlite3_close(db);
        return false;
    }
    sqlite3_busy_timeout(db, GW_BUSY_TIMEOUT_MS);
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(db, asc ? SQ_ASC : SQ_DESC, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, sym, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, iv, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, lo);
        sqlite3_bind_int64(st, 4, hi);
        sqlite3_bind_int64(st, 5, limit);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            http_buf b = {0};
            http_buf_printf(&b,
                            "[%" PRId64 ",\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",%" PRId64
                            ",\"%s\",%" PRId64 ",\"%s\",\"%s\",\"0\"]",
                            (int64_t)sqlite3_column_int64(st, 0), col_dec(st, 1), col_dec(st, 2),
                            col_dec(st, 3), col_dec(st, 4), col_dec(st, 5),
                            (int64_t)sqlite3_column_int64(st, 6), col_dec(st, 7),
                            (int64_t)sqlite3_column_int64(st, 8), col_dec(st, 9), col_dec(st, 10));
            if (b.oom) {
                free(b.p);
                b.p = NULL;
            }
            rows_add(rs, sqlite3_column_int64(st, 0), b.p);
        }
    }
    bool ok = rc == SQLITE_DONE;
    if (!ok)
        snprintf(why, whylen, "the store cannot be read: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

void http_gw_klines(kf_collector *c, const char *query, http_reply *r)
{
    char sym[KF_SYMBOL_MAX + 8], ivs[16], tmp[64];
    if (!http_query_param(query, "symbol", sym, sizeof sym) || !*sym) {
        gw_error(r, 400, -1102,
                 "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.");
        return;
    }
    if (!http_query_param(query, "interval", ivs, sizeof ivs) || !*ivs) {
        gw_error(r, 400, -1102,
                 "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.");
        return;
    }
    int64_t limit = GW_LIMIT_DEFAULT, st = 0, en = 0;
    if (http_query_param(query, "limit", tmp, sizeof tmp) &&
        (!parse_i64(tmp, &limit) || limit < 1 || limit > GW_LIMIT_MAX)) {
        gw_error(r, 400, -1130, "Data sent for parameter 'limit' is not valid.");
        return;
    }
    bool has_st = http_query_param(query, "startTime", tmp, sizeof tmp);
    if (has_st && !parse_i64(tmp, &st)) {
        gw_error(r, 400, -1100,
                 "Illegal characters found in parameter 'startTime'; legal range is "
                 "'^-?[0-9]{1,20}$'.");
        return;
    }
    bool has_en = http_query_param(query, "endTime", tmp, sizeof tmp);
    if (has_en && !parse_i64(tmp, &en)) {
        gw_error(r, 400, -1100,
                 "Illegal characters found in parameter 'endTime'; legal range is "
                 "'^-?[0-9]{1,20}$'.");
        return;
    }
    bool sym_known;
    bool ok = collected(c, sym, ivs, &sym_known);
    if (!sym_known) {
        gw_error(r, 400, -1121, "Invalid symbol.");
        return;
    }
    if (!ok) {
        gw_error(r, 400, -1120, "Invalid interval.");
        return;
    }
    if (has_st && has_en && st > en) {
        gw_error(r, 400, -1023, "Start time is greater than end time.");
        return;
    }
    int64_t lo = has_st ? st : INT64_MIN, hi = has_en ? en : INT64_MAX;

    gw_rows rs = {0};
    char why[256];
    if (!store_rows(c, sym, ivs, lo, hi, has_st, limit, &rs, why, sizeof why)) {
        for (size_t i = 0; i < rs.n; i++)
            free(rs.v[i].text);
        free(rs.v);
        r->status = 503;
        http_buf_printf(&r->body, "{\"code\":-1001,\"msg\":\"Internal error; %s\"}", why);
        return;
    }
    /* the ring's newest candles in the range; each replaces the store's row of the same open
     * time when it is newer (the open candle; an --all-updates store may hold an older state) */
    kf_kline *ring = malloc(GW_RING_TAIL * sizeof *ring);
    size_t nring = GW_RING_TAIL;
    if (!ring || kf_recent(c, sym, ivs, ring, &nring) != KF_OK)
        nring = 0;
    size_t nstore = rs.n;
    for (size_t i = 0; i < nring; i++) {
        const kf_kline *k = &ring[i];
        if (k->open_time < lo || k->open_time > hi)
            continue;
        size_t j = 0;
        while (j < nstore && rs.v[j].open_time != k->open_time)
            j++;
        if (j < nstore) {
            if (k->closed)
                continue; /* stored closed: the stored text is the answer */
            free(rs.v[j].text);
            rs.v[j].text = ring_row(k);
            if (!rs.v[j].text)
                rs.oom = true;
            continue;
        }
        rows_add(&rs, k->open_time, ring_row(k));
    }
    free(ring);
    qsort(rs.v, rs.n, sizeof *rs.v, row_cmp);
    /* with startTime the first `limit`, without it the last `limit` */
    size_t from = 0, to = rs.n;
    if (rs.n > (size_t)limit) {
        if (has_st)
            to = (size_t)limit;
        else
            from = rs.n - (size_t)limit;
    }
    http_buf_put(&r->body, "[", 1);
    for (size_t i = from; i < to; i++) {
        if (i > from)
            http_buf_put(&r->body, ",", 1);
        http_buf_put(&r->body, rs.v[i].text, strlen(rs.v[i].text));
    }
    http_buf_put(&r->body, "]", 1);
    for (size_t i = 0; i < rs.n; i++)
        free(rs.v[i].text);
    free(rs.v);
    r->body.oom |= rs.oom;
}

/* "0.01" for 2 decimals, "1" for 0. */
static void put_step(http_buf *b, int decimals)
{
    if (decimals <= 0) {
        http_buf_put(b, "1", 1);
        return;
    }
    http_buf_put(b, "0.", 2);
    for (int i = 1; i < decimals; i++)
        http_buf_put(b, "0", 1);
    http_buf_put(b, "1", 1);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n > m && strcmp(s + n - m, suffix) == 0;
}

void http_gw_exchange_info(kf_collector *c, const char *query, http_reply *r)
{
    (void)query;
    http_buf_printf(&r->body,
                    "{\"timezone\":\"UTC\",\"serverTime\":%" PRId64
                    ",\"futuresType\":\"U_MARGINED\",\"rateLimits\":[{\"rateLimitType\":"
                    "\"REQUEST_WEIGHT\",\"interval\":\"MINUTE\",\"intervalNum\":1,\"limit\":2400}],"
                    "\"exchangeFilters\":[],\"assets\":[],\"symbols\":[",
                    now_ms());
    size_t n = kf_stream_count(c), shown = 0;
    for (size_t i = 0; i < n; i++) {
        kf_stream_info si;
        if (kf_stream_info_get(c, i, &si, sizeof si) != KF_OK)
            continue;
        bool dup = false; /* one entry per symbol: its first stream */
        for (size_t j = 0; j < i && !dup; j++) {
            kf_stream_info sj;
            dup = kf_stream_info_get(c, j, &sj, sizeof sj) == KF_OK &&
                  strcmp(sj.symbol, si.symbol) == 0;
        }
        if (dup)
            continue;
        /* precisions: the decimals Binance sends for the symbol's price and quantity (its
         * newest candle's close and volume; 2 and 3 before any candle) */
        int pp = 2, qp = 3;
        kf_kline k;
        size_t one = 1;
        if (kf_recent(c, si.symbol, si.interval, &k, &one) == KF_OK && one == 1) {
            pp = k.close.scale;
            qp = k.volume.scale;
        }
        const char *quote = ends_with(si.symbol, "USDT")   ? "USDT"
                            : ends_with(si.symbol, "USDC") ? "USDC"
                                                           : "USDT";
        size_t base_len = strlen(si.symbol) - (ends_with(si.symbol, quote) ? strlen(quote) : 0);
        http_buf_printf(&r->body,
                        "%s{\"symbol\":\"%s\",\"pair\":\"%s\",\"contractType\":\"PERPETUAL\","
                        "\"deliveryDate\":4133404800000,\"onboardDate\":1569398400000,"
                        "\"status\":\"TRADING\",\"baseAsset\":\"%.*s\",\"quoteAsset\":\"%s\","
                        "\"marginAsset\":\"%s\",\"pricePrecision\":%d,\"quantityPrecision\":%d,"
                        "\"baseAssetPrecision\":8,\"quotePrecision\":8,\"underlyingType\":"
                        "\"COIN\",\"filters\":[{\"filterType\":\"PRICE_FILTER\",\"tickSize\":\"",
                        shown ? "," : "", si.symbol, si.symbol, (int)base_len, si.symbol, quote,
                        quote, pp, qp);
        put_step(&r->body, pp);
        http_buf_printf(&r->body, "\"},{\"filterType\":\"LOT_SIZE\",\"stepSize\":\"");
        put_step(&r->body, qp);
        http_buf_printf(&r->body, "\",\"minQty\":\"");
        put_step(&r->body, qp);
        http_buf_printf(&r->body, "\"}],\"orderTypes\":[\"LIMIT\",\"MARKET\"],"
                                  "\"timeInForce\":[\"GTC\"]}");
        shown++;
    }
    http_buf_printf(&r->body, "]}");
}
