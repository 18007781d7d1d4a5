/*
 * Per-stream state and the recent-candle ring: what the collector knows about
 * one <symbol>@kline_<interval> stream. Pure logic over memory allocated once
 * at start: no I/O, no allocation per update.
 *
 * Threads: kf__stream_apply() is called by the one I/O thread that owns the
 * stream; kf__stream_recent() may be called from any thread. A per-stream
 * mutex (uncontended on the hot path) makes the copy consistent.
 */
#ifndef KF_STREAM_STREAM_H
#define KF_STREAM_STREAM_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "klinefeed.h"

/* "币安人生usdt@kline_12h": symbol bytes + "@kline_" + interval + NUL. */
#define KF__STREAM_NAME_MAX (KF_SYMBOL_MAX + 12)

/* Separate gaps tracked per stream at once (each may span any number of candles). */
#define KF__STREAM_HOLES 16

/* A closed candle as the ring keeps it: 120 bytes where a kf_kline takes 224. What the
 * stream knows already (symbol, interval, closed) is left out and the decimal scales (0..18,
 * kf_dec) are bytes; kf__stream_recent() gives whole kf_klines back, exactly as applied. */
typedef struct kf__candle {
    int64_t event_time, open_time, close_time, first_trade_id, last_trade_id, trades;
    int64_t mant[8]; /* open, high, low, close, volume, quote_volume, taker_buy_base, ..._quote */
    uint8_t scale[8];
} kf__candle;

typedef struct kf__stream {
    char symbol[KF_SYMBOL_MAX + 1]; /* uppercase, as in payloads */
    int interval;                   /* kf_interval_index() */
    char name[KF__STREAM_NAME_MAX]; /* lowercase stream name */
    size_t shard;                   /* connection it is subscribed on */

    pthread_mutex_t mu; /* guards everything below */
    kf__candle *ring;   /* closed candles, capacity cap, oldest at head */
    size_t cap, head, count;
    kf_kline open; /* the candle in progress, valid when has_open */
    bool has_open;
    bool has_closed;
    int64_t last_closed; /* open time of the newest closed candle, valid when has_closed */
    /* Missing closed candles older than last_closed, as open-time ranges [from, to]: a
     * closed candle inside a hole is new (stored), anything else not newer is a duplicate. */
    struct {
        int64_t from, to;
    } holes[KF__STREAM_HOLES];
    size_t nholes;
    uint64_t holes_dropped; /* holes forgotten because more than KF__STREAM_HOLES were open */
} kf__stream;

typedef enum kf__apply {
    KF__APPLY_UPDATE = 0,    /* open candle updated in place (or started) */
    KF__APPLY_CLOSED = 1,    /* a new closed candle (newest, or filling a hole): store it */
    KF__APPLY_DUPLICATE = 2, /* a closing update for a candle already closed */
    KF__APPLY_STALE = 3,     /* an open update for a candle older than the newest closed one */
} kf__apply;

/* Initialises s for symbol (uppercase) and interval index with a ring of cap zeroed candles
 * owned by the caller (one arena for all streams: its pages are touched only as candles
 * arrive). KF_ERR_INVALID_ARG for a bad symbol, interval or cap. */
kf_err kf__stream_init(kf__stream *s, const char *symbol, int interval, kf__candle *ring,
                       size_t cap);
void kf__stream_destroy(kf__stream *s);

/*
 * Applies one update of this stream, from the WebSocket or from REST (closed rows). Closed
 * candles are identified by open time: the first closing update of a candle is stored, repeats
 * are duplicates. A closed candle that skips ahead of the newest one opens a hole; a closed
 * candle inside a hole fills it (it is placed in the ring in open-time order). With gap !=
 * NULL, a newly opened hole is reported as [gap->from, gap->to] (open times; from > to when
 * none).
 */
typedef struct kf__gap {
    int64_t from, to;
} kf__gap;
kf__apply kf__stream_apply(kf__stream *s, const kf_kline *k, kf__gap *gap);

/* Sets the newest closed open time known from a store (resume after a restart), when newer
 * than what the stream knows. Any thread before the I/O thread runs. */
void kf__stream_resume(kf__stream *s, int64_t last_closed);

/* Candles with open times from a to b inclusive (on the interval's grid; 1M counted in
 * calendar months); 0 when a > b. */
uint64_t kf__interval_count(int interval, int64_t a, int64_t b);

/* Number of candles in the open holes (1M counted in calendar months). */
uint64_t kf__stream_missing(kf__stream *s);

/* Copies up to n newest candles, oldest first, the open candle last. Returns the count. */
size_t kf__stream_recent(kf__stream *s, kf_kline *out, size_t n);

/* Open time of the candle after the one opening at t (calendar month for 1M). */
int64_t kf__interval_next(int interval, int64_t t);

/* ---- lookup: (symbol, interval) -> stream index, built once, read-only afterwards ---- */
typedef struct kf__stream_index {
    uint32_t *slots; /* stream index + 1, 0 empty */
    size_t mask;
} kf__stream_index;

kf_err kf__stream_index_build(kf__stream_index *ix, const kf__stream *streams, size_t n);
void kf__stream_index_free(kf__stream_index *ix);
/* Index of the stream or -1. symbol need not be NUL-terminated. */
long kf__stream_index_find(const kf__stream_index *ix, const kf__stream *streams,
                           const char *symbol, size_t symlen, int interval);

#endif
