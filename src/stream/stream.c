/* Per-stream state: in-place open candle, exactly-once closed candles, ring, gap count. */
#include "stream/stream.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"

kf_err kf__stream_init(kf__stream *s, const char *symbol, int interval, kf__candle *ring,
                       size_t cap)
{
    memset(s, 0, sizeof *s);
    size_t n = strlen(symbol);
    if (n == 0 || n > KF_SYMBOL_MAX || !kf_interval_name(interval) || !ring || cap == 0)
        return KF_ERR_INVALID_ARG;
    memcpy(s->symbol, symbol, n + 1);
    s->interval = interval;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = symbol[i];
        s->name[o++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    o += (size_t)snprintf(s->name + o, sizeof s->name - o, "@kline_%s", kf_interval_name(interval));
    s->ring = ring;
    s->cap = cap;
    pthread_mutex_init(&s->mu, NULL);
    return KF_OK;
}

void kf__stream_destroy(kf__stream *s)
{
    if (!s->ring)
        return;
    pthread_mutex_destroy(&s->mu);
    s->ring = NULL;
}

int64_t kf__interval_next(int interval, int64_t t)
{
    int64_t ms = kf_interval_ms(interval);
    if (ms)
        return t + ms;
    /* 1M: the first day of the next UTC month */
    time_t sec = (time_t)(t / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    tm.tm_mon += 1;
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t)timegm(&tm) * 1000;
}

uint64_t kf__interval_count(int interval, int64_t a, int64_t b)
{
    if (a > b)
        return 0;
    int64_t ms = kf_interval_ms(interval);
    if (ms)
        return (uint64_t)((b - a) / ms + 1);
    uint64_t n = 0;
    for (int64_t x = a; x <= b && n < 1000000; x = kf__interval_next(interval, x))
        n++;
    return n;
}

static int64_t stream_prev(int interval, int64_t t)
{
    int64_t ms = kf_interval_ms(interval);
    if (ms)
        return t - ms;
    /* 1M: the first day of the previous UTC month */
    time_t sec = (time_t)(t / 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    tm.tm_mon -= 1;
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t)timegm(&tm) * 1000;
}

static void stream_add_hole(kf__stream *s, int64_t from, int64_t to)
{
    if (s->nholes == KF__STREAM_HOLES) { /* forget the oldest: it can no longer be told apart */
        memmove(&s->holes[0], &s->holes[1], (KF__STREAM_HOLES - 1) * sizeof s->holes[0]);
        s->nholes--;
        s->holes_dropped++;
    }
    s->holes[s->nholes].from = from;
    s->holes[s->nholes].to = to;
    s->nholes++;
}

/* Removes t from the hole holding it; false when t is in no hole. */
static bool stream_fill_hole(kf__stream *s, int64_t t)
{
    for (size_t i = 0; i < s->nholes; i++) {
        int64_t from = s->holes[i].from, to = s->holes[i].to;
        if (t < from || t > to)
            continue;
        if (from == to) {
            memmove(&s->holes[i], &s->holes[i + 1], (s->nholes - i - 1) * sizeof s->holes[0]);
            s->nholes--;
        } else if (t == from) {
            s->holes[i].from = kf__interval_next(s->interval, t);
        } else if (t == to) {
            s->holes[i].to = stream_prev(s->interval, t);
        } else { /* split */
            s->holes[i].to = stream_prev(s->interval, t);
            stream_add_hole(s, kf__interval_next(s->interval, t), to);
        }
        /* a hole whose bounds are off the interval grid (a resume time) may now be empty */
        for (size_t j = 0; j < s->nholes;)
            if (s->holes[j].from > s->holes[j].to) {
                memmove(&s->holes[j], &s->holes[j + 1], (s->nholes - j - 1) * sizeof s->holes[0]);
                s->nholes--;
            } else {
                j++;
            }
        return true;
    }
    return false;
}

/* The decimals of a kline, in kf__candle's order. */
#define CANDLE_DECS(k)                                                                             \
    {                                                                                              \
        &(k)->open, &(k)->high, &(k)->low, &(k)->close, &(k)->volume, &(k)->quote_volume,          \
            &(k)->taker_buy_base, &(k)->taker_buy_quote                                            \
    }

static void candle_pack(kf__candle *c, const kf_kline *k)
{
    const kf_dec *d[8] = CANDLE_DECS(k);
    c->event_time = k->event_time;
    c->open_time = k->open_time;
    c->close_time = k->close_time;
    c->first_trade_id = k->first_trade_id;
    c->last_trade_id = k->last_trade_id;
    c->trades = k->trades;
    for (int i = 0; i < 8; i++) {
        c->mant[i] = d[i]->mant;
        c->scale[i] = (uint8_t)d[i]->scale; /* 0..18: kf_dec_parse and the decoder's limit */
    }
}

static void candle_unpack(const kf__stream *s, const kf__candle *c, kf_kline *k)
{
    kf_dec *d[8] = CANDLE_DECS(k);
    memcpy(k->symbol, s->symbol, sizeof k->symbol);
    memset(k->interval, 0, sizeof k->interval);
    memcpy(k->interval, kf_interval_name(s->interval), strlen(kf_interval_name(s->interval)));
    k->interval_index = s->interval;
    k->closed = true;
    k->event_time = c->event_time;
    k->open_time = c->open_time;
    k->close_time = c->close_time;
    k->first_trade_id = c->first_trade_id;
    k->last_trade_id = c->last_trade_id;
    k->trades = c->trades;
    for (int i = 0; i < 8; i++) {
        d[i]->mant = c->mant[i];
        d[i]->scale = c->scale[i];
    }
}

/* Puts a candle older than the newest into the ring in open-time order. */
static void stream_ring_insert(kf__stream *s, const kf_kline *k)
{
    size_t n = s->count, i = n;
    while (i > 0 && s->ring[(s->head + i - 1) % s->cap].open_time > k->open_time)
        i--;
    if (n == s->cap) {
        if (i == 0)
            return; /* older than everything kept: stored, not kept in memory */
        s->head = (s->head + 1) % s->cap; /* drop the oldest */
        i--;
        n--;
        s->count--;
    }
    for (size_t j = n; j > i; j--)
        s->ring[(s->head + j) % s->cap] = s->ring[(s->head + j - 1) % s->cap];
    candle_pack(&s->ring[(s->head + i) % s->cap], k);
    s->count++;
}

kf__apply kf__stream_apply(kf__stream *s, const kf_kline *k, kf__gap *gap)
{
    kf__apply r;
    if (gap)
        gap->from = 1, gap->to = 0;
    pthread_mutex_lock(&s->mu);
    if (s->has_closed && k->open_time <= s->last_closed) {
        if (!k->closed)
            r = KF__APPLY_STALE;
        else if (s->nholes && stream_fill_hole(s, k->open_time)) {
            stream_ring_insert(s, k);
            r = KF__APPLY_CLOSED;
        } else {
            r = KF__APPLY_DUPLICATE;
        }
    } else if (!k->closed) {
        if (!s->has_open || k->open_time >= s->open.open_time) {
            s->open = *k;
            s->has_open = true;
        }
        r = KF__APPLY_UPDATE;
    } else {
        if (s->has_closed) {
            int64_t next = kf__interval_next(s->interval, s->last_closed);
            if (k->open_time > next) {
                int64_t to = stream_prev(s->interval, k->open_time);
                stream_add_hole(s, next, to);
                if (gap)
                    gap->from = next, gap->to = to;
            }
        }
        size_t tail = (s->head + s->count) % s->cap;
        candle_pack(&s->ring[tail], k);
        if (s->count < s->cap)
            s->count++;
        else
            s->head = (s->head + 1) % s->cap;
        s->last_closed = k->open_time;
        s->has_closed = true;
        if (s->has_open && s->open.open_time <= k->open_time)
            s->has_open = false;
        r = KF__APPLY_CLOSED;
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

void kf__stream_resume(kf__stream *s, int64_t last_closed)
{
    pthread_mutex_lock(&s->mu);
    if (!s->has_closed || last_closed > s->last_closed) {
        s->last_closed = last_closed;
        s->has_closed = true;
    }
    pthread_mutex_unlock(&s->mu);
}

uint64_t kf__stream_missing(kf__stream *s)
{
    uint64_t n = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nholes; i++)
        n += kf__interval_count(s->interval, s->holes[i].from, s->holes[i].to);
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t kf__stream_recent(kf__stream *s, kf_kline *out, size_t n)
{
    size_t got = 0;
    pthread_mutex_lock(&s->mu);
    size_t want_open =
        s->has_open && n > 0 && (!s->has_closed || s->open.open_time > s->last_closed) ? 1 : 0;
    size_t closed = s->count < n - want_open ? s->count : n - want_open;
    for (size_t i = s->count - closed; i < s->count; i++)
        candle_unpack(s, &s->ring[(s->head + i) % s->cap], &out[got++]);
    if (want_open)
        out[got++] = s->open;
    pthread_mutex_unlock(&s->mu);
    return got;
}

/* ---- index ---- */

static uint64_t index_hash(const char *sym, size_t n, int interval)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)interval;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)sym[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

kf_err kf__stream_index_build(kf__stream_index *ix, const kf__stream *streams, size_t n)
{
    size_t size = 16;
    while (size < n * 2)
        size <<= 1;
    ix->slots = kf__calloc(size, sizeof *ix->slots);
    if (!ix->slots)
        return KF_ERR_NOMEM;
    ix->mask = size - 1;
    for (size_t i = 0; i < n; i++) {
        size_t h =
            (size_t)index_hash(streams[i].symbol, strlen(streams[i].symbol), streams[i].interval) &
            ix->mask;
        while (ix->slots[h])
            h = (h + 1) & ix->mask;
        ix->slots[h] = (uint32_t)(i + 1);
    }
    return KF_OK;
}

void kf__stream_index_free(kf__stream_index *ix)
{
    kf__free(ix->slots);
    ix->slots = NULL;
}

long kf__stream_index_find(const kf__stream_index *ix, const kf__stream *streams,
                           const char *symbol, size_t symlen, int interval)
{
    if (!ix->slots)
        return -1;
    size_t h = (size_t)index_hash(symbol, symlen, interval) & ix->mask;
    for (uint32_t v; (v = ix->slots[h]) != 0; h = (h + 1) & ix->mask) {
        const kf__stream *s = &streams[v - 1];
        if (s->interval == interval && s->symbol[symlen] == 0 &&
            memcmp(s->symbol, symbol, symlen) == 0)
            return (long)(v - 1);
    }
    return -1;
}
