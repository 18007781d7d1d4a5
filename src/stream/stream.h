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
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode/interval.h"
#include "klinefeed.h"

/* "币安人生usdt@kline_12h": symbol bytes + "@kline_" + interval + NUL. */
#define KF__STREAM_NAME_MAX (KF_SYMBOL_MAX + 12)

/* A closed candle as the ring keeps it: 120 bytes where a kf_kline takes 224. What the
 * stream knows already (symbol, interval, closed) is left out and the decimal scales (0..18,
 * kf_dec) are bytes; kf__stream_recent() gives whole kf_klines back, exactly as applied. */
typedef struct kf__candle {
    int64_t event_time, open_time, close_time, first_trade_id, last_trade_id, trades;
    int64_t mant[8]; /* open, high, low, close, volume, quote_volume, taker_buy_base, ..._quote */
    uint8_t scale[8];
} kf__candle;

/* A run of missing closed candles, open times from..to on the interval's grid. */
typedef struct kf__hole {
    int64_t from, to;
    unsigned flags; /* KF__HOLE_* */
} kf__hole;

/* The candles were delivered (callbacks, ring) but a store could not take them: when they come
 * back from REST they are stored, not delivered again. */
#define KF__HOLE_UNSTORED 1u

typedef struct kf__stream {
    char symbol[KF_SYMBOL_MAX + 1]; /* uppercase, as in payloads */
    int interval;                   /* kf_interval_index() */
    char name[KF__STREAM_NAME_MAX]; /* lowercase stream name */
    size_t shard;                   /* connection it is subscribed on */
    bool added;                     /* appended while running (a listing), set before it is
                                       published, read only afterwards */
    _Atomic bool delisted; /* its symbol is delisted: not subscribed, not expected to deliver
                              (written by the I/O thread, read by any) */

    pthread_mutex_t mu; /* guards everything below */
    kf__candle *ring;   /* closed candles, capacity cap, oldest at head */
    size_t cap, head, count;
    kf_kline open; /* the candle in progress, valid when has_open */
    bool has_open;
    bool has_closed;
    int64_t last_closed; /* open time of the newest closed candle, valid when has_closed */
    /* Missing closed candles older than last_closed: a closed candle inside a hole is new
     * (stored), anything else not newer is a duplicate. Sorted by from, disjoint, never
     * forgotten: the array grows (only when a gap opens, never per update). */
    kf__hole *holes;
    size_t nholes, holes_cap;
    /* Open time from which everything up to the first hole (or last_closed) is held by the
     * stores or on its way to them: what a store may record as complete (kf__stream_cover). */
    int64_t cover_from;
    bool has_cover_from;
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
 * none), filled gets the flags of the hole a KF__APPLY_CLOSED candle filled (0 for a new newest
 * candle), and nomem is set when a hole could not be recorded (out of memory: the candles are
 * then found again by the next start's check of the stores).
 */
typedef struct kf__gap {
    int64_t from, to;
    unsigned filled;
    bool nomem;
} kf__gap;
kf__apply kf__stream_apply(kf__stream *s, const kf_kline *k, kf__gap *gap);

/* Sets the newest closed open time known from a store (resume after a restart), when newer
 * than what the stream knows. Any thread before the I/O thread runs. */
void kf__stream_resume(kf__stream *s, int64_t last_closed);

/*
 * Records candles [from, to] as missing (flags KF__HOLE_*): from is rounded up and to down to
 * the interval's grid, and only what is not newer than last_closed and not in a hole already is
 * added. For what a store was found to lack at start, and for candles a store could not take.
 * KF_ERR_NOMEM when the holes cannot grow. Same thread as kf__stream_apply.
 */
kf_err kf__stream_add_hole(kf__stream *s, int64_t from, int64_t to, unsigned flags);

/* Removes [from, to] (rounded inwards to the grid) from the holes: candles the exchange says do
 * not exist. Returns how many candles were removed. Same thread as kf__stream_apply. */
uint64_t kf__stream_absent(kf__stream *s, int64_t from, int64_t to);

/* Copies the oldest holes (at most max) into out; returns the number copied. Any thread. */
size_t kf__stream_holes(kf__stream *s, kf__hole *out, size_t max);

/* Number of candles in the open holes (1M counted in calendar months). Any thread. */
uint64_t kf__stream_missing(kf__stream *s);

/* The range a store may record as complete: [cover_from, the candle before the first hole, or
 * last_closed]. false when there is none yet. Any thread. */
bool kf__stream_cover(kf__stream *s, int64_t *from, int64_t *to);

/* Sets cover_from (at start, from what the stores hold and the first-run time). */
void kf__stream_set_cover_from(kf__stream *s, int64_t from);

/* Copies up to n newest candles, oldest first, the open candle last. Returns the count. */
size_t kf__stream_recent(kf__stream *s, kf_kline *out, size_t n);

/* ---- lookup: (symbol, interval) -> stream index, built once for up to cap streams; streams
 *      added later (kf__stream_index_add) by one thread, which must keep readers on other
 *      threads out meanwhile (the collector's index lock) ---- */
typedef struct kf__stream_index {
    uint32_t *slots; /* stream index + 1, 0 empty */
    size_t mask;
} kf__stream_index;

/* Indexes streams [0, n), with room for cap >= n streams in all. */
kf_err kf__stream_index_build(kf__stream_index *ix, const kf__stream *streams, size_t n,
                              size_t cap);
/* Adds stream i (initialised; at most cap streams in all). No allocation. */
void kf__stream_index_add(kf__stream_index *ix, const kf__stream *streams, size_t i);
void kf__stream_index_free(kf__stream_index *ix);
/* Index of the stream or -1. symbol need not be NUL-terminated. */
long kf__stream_index_find(const kf__stream_index *ix, const kf__stream *streams,
                           const char *symbol, size_t symlen, int interval);

#endif
