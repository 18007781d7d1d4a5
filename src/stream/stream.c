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
    kf__free(s->holes);
    s->holes = NULL;
    s->nholes = s->holes_cap = 0;
    s->ring = NULL;
}

/* ---- holes: sorted by from, disjoint, bounds on the grid ---- */

/* Index of the first hole whose to is >= t (nholes when none). */
static size_t hole_search(const kf__stream *s, int64_t t)
{
    size_t lo = 0, hi = s->nholes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->holes[mid].to < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Inserts [from, to] at index i (the caller keeps the order). */
static kf_err hole_insert(kf__stream *s, size_t i, int64_t from, int64_t to, unsigned flags)
{
    kf__hole *h = kf__grow(s->holes, &s->holes_cap, s->nholes + 1, sizeof *h, 4);
    if (!h)
        return KF_ERR_NOMEM;
    s->holes = h;
    memmove(&s->holes[i + 1], &s->holes[i], (s->nholes - i) * sizeof *s->holes);
    s->holes[i] = (kf__hole){from, to, flags};
    s->nholes++;
    return KF_OK;
}

static void hole_remove(kf__stream *s, size_t i)
{
    memmove(&s->holes[i], &s->holes[i + 1], (s->nholes - i - 1) * sizeof *s->holes);
    s->nholes--;
}

/* Adds the parts of [from, to] (on the grid) that no hole holds yet. */
static kf_err holes_add(kf__stream *s, int64_t from, int64_t to, unsigned flags)
{
    size_t i = hole_search(s, from);
    while (from <= to) {
        if (i == s->nholes || s->holes[i].from > to) /* the rest is free */
            return hole_insert(s, i, from, to, flags);
        if (s->holes[i].from > from) { /* free up to that hole */
            kf_err e =
                hole_insert(s, i, from, kf__interval_prev(s->interval, s->holes[i].from), flags);
            if (e)
                return e;
            i++;
        }
        from = kf__interval_next(s->interval, s->holes[i].to); /* past that hole */
        i++;
    }
    return KF_OK;
}

/* Removes [from, to] (on the grid) from the holes; returns the candles removed. A hole cut in
 * the middle keeps its left part and gets a new right part (which may fail: then the right
 * part stays, and nothing is lost). */
static uint64_t holes_cut(kf__stream *s, int64_t from, int64_t to)
{
    uint64_t n = 0;
    size_t i = hole_search(s, from);
    while (i < s->nholes && s->holes[i].from <= to) {
        kf__hole *h = &s->holes[i];
        int64_t a = h->from > from ? h->from : from, b = h->to < to ? h->to : to;
        if (h->from < a && h->to > b) { /* split */
            kf__hole right = {kf__interval_next(s->interval, b), h->to, h->flags};
            if (hole_insert(s, i + 1, right.from, right.to, right.flags) != KF_OK)
                return n; /* keep the whole hole: asked again rather than forgotten */
            s->holes[i].to = kf__interval_prev(s->interval, a);
            return n + kf__interval_count(s->interval, a, b);
        }
        n += kf__interval_count(s->interval, a, b);
        if (h->from == a && h->to == b) {
            hole_remove(s, i);
            continue;
        }
        if (h->from == a)
            h->from = kf__interval_next(s->interval, b);
        else
            h->to = kf__interval_prev(s->interval, a);
        i++;
    }
    return n;
}

/* Removes t from the hole holding it; false when t is in no hole. *flags gets the hole's. */
static bool stream_fill_hole(kf__stream *s, int64_t t, unsigned *flags)
{
    size_t i = hole_search(s, t);
    if (i == s->nholes || s->holes[i].from > t)
        return false;
    *flags = s->holes[i].flags;
    holes_cut(s, t, t);
    return true;
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
    unsigned filled = 0;
    if (gap)
        gap->from = 1, gap->to = 0, gap->filled = 0, gap->nomem = false;
    pthread_mutex_lock(&s->mu);
    if (s->has_closed && k->open_time <= s->last_closed) {
        if (!k->closed)
            r = KF__APPLY_STALE;
        else if (s->nholes && stream_fill_hole(s, k->open_time, &filled)) {
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
                int64_t to = kf__interval_prev(s->interval, k->open_time);
                /* newer than every hole: always appended at the end */
                kf_err e = hole_insert(s, s->nholes, next, to, 0);
                if (gap) {
                    gap->from = next, gap->to = to;
                    gap->nomem = e != KF_OK;
                }
            }
        } else if (!s->has_cover_from) {
            s->cover_from = k->open_time; /* the first candle this stream has seen */
            s->has_cover_from = true;
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
    if (gap)
        gap->filled = filled;
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

kf_err kf__stream_add_hole(kf__stream *s, int64_t from, int64_t to, unsigned flags)
{
    kf_err e = KF_OK;
    pthread_mutex_lock(&s->mu);
    from = kf__interval_ceil(s->interval, from);
    to = kf__interval_floor(s->interval, to);
    if (s->has_closed && to > s->last_closed)
        to = s->last_closed;
    if (s->has_closed && from <= to)
        e = holes_add(s, from, to, flags);
    pthread_mutex_unlock(&s->mu);
    return e;
}

uint64_t kf__stream_absent(kf__stream *s, int64_t from, int64_t to)
{
    pthread_mutex_lock(&s->mu);
    from = kf__interval_ceil(s->interval, from);
    to = kf__interval_floor(s->interval, to);
    uint64_t n = from <= to ? holes_cut(s, from, to) : 0;
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t kf__stream_holes(kf__stream *s, kf__hole *out, size_t max)
{
    pthread_mutex_lock(&s->mu);
    size_t n = s->nholes < max ? s->nholes : max;
    if (n)
        memcpy(out, s->holes, n * sizeof *out);
    pthread_mutex_unlock(&s->mu);
    return n;
}

bool kf__stream_cover(kf__stream *s, int64_t *from, int64_t *to)
{
    pthread_mutex_lock(&s->mu);
    bool ok = s->has_cover_from && s->has_closed;
    if (ok) {
        *from = s->cover_from;
        *to = s->nholes ? kf__interval_prev(s->interval, s->holes[0].from) : s->last_closed;
        ok = *to >= *from;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

void kf__stream_set_cover_from(kf__stream *s, int64_t from)
{
    pthread_mutex_lock(&s->mu);
    s->cover_from = kf__interval_ceil(s->interval, from);
    s->has_cover_from = true;
    pthread_mutex_unlock(&s->mu);
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

void kf__stream_index_add(kf__stream_index *ix, const kf__stream *streams, size_t i)
{
    size_t h =
        (size_t)index_hash(streams[i].symbol, strlen(streams[i].symbol), streams[i].interval) &
        ix->mask;
    while (ix->slots[h])
        h = (h + 1) & ix->mask;
    ix->slots[h] = (uint32_t)(i + 1);
}

kf_err kf__stream_index_build(kf__stream_index *ix, const kf__stream *streams, size_t n, size_t cap)
{
    size_t size = 16;
    if (cap < n)
        cap = n;
    while (size < cap * 2)
        size <<= 1;
    ix->slots = kf__calloc(size, sizeof *ix->slots);
    if (!ix->slots)
        return KF_ERR_NOMEM;
    ix->mask = size - 1;
    for (size_t i = 0; i < n; i++)
        kf__stream_index_add(ix, streams, i);
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
