/* Per-stream state: in-place open candle, exactly-once closed candles, ring, gap count. */
#include "stream/stream.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"

kf_err kf__stream_init(kf__stream *s, const char *symbol, int interval, kf_kline *ring, size_t cap)
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

static int64_t stream_missing(int interval, int64_t prev, int64_t t)
{
    int64_t ms = kf_interval_ms(interval);
    if (ms)
        return t > prev + ms ? (t - prev) / ms - 1 : 0;
    int64_t n = 0;
    for (int64_t x = kf__interval_next(interval, prev); x < t && n < 1000000;
         x = kf__interval_next(interval, x))
        n++;
    return n;
}

kf__apply kf__stream_apply(kf__stream *s, const kf_kline *k, int64_t *gap)
{
    kf__apply r;
    if (gap)
        *gap = 0;
    pthread_mutex_lock(&s->mu);
    if (s->has_closed && k->open_time <= s->last_closed) {
        r = k->closed ? KF__APPLY_DUPLICATE : KF__APPLY_STALE;
    } else if (!k->closed) {
        if (!s->has_open || k->open_time >= s->open.open_time) {
            s->open = *k;
            s->has_open = true;
        }
        r = KF__APPLY_UPDATE;
    } else {
        if (gap && s->has_closed)
            *gap = stream_missing(s->interval, s->last_closed, k->open_time);
        size_t tail = (s->head + s->count) % s->cap;
        s->ring[tail] = *k;
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

size_t kf__stream_recent(kf__stream *s, kf_kline *out, size_t n)
{
    size_t got = 0;
    pthread_mutex_lock(&s->mu);
    size_t want_open = s->has_open && n > 0 ? 1 : 0;
    size_t closed = s->count < n - want_open ? s->count : n - want_open;
    for (size_t i = s->count - closed; i < s->count; i++)
        out[got++] = s->ring[(s->head + i) % s->cap];
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
