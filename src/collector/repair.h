/*
 * The REST repair worker, thread "kf-rest": fetches closed candles the WebSocket did not
 * deliver (gaps, the time a connection was down, closing updates that never came, what the
 * stores were found to lack at start) with GET /fapi/v1/klines under the weight budget, off the
 * socket thread. Fetched rows go back to the I/O thread, which applies them like closed candles
 * from the stream: each (symbol, interval, open time) reaches the sinks once, whichever source
 * delivers it first.
 *
 * What is asked is per stream, never a list that could overflow: the stream's holes (read from
 * the stream itself when the worker gets to it: the oldest first, nearby ones in one request) and
 * a tail (every closed candle from an open time to the present). One request in flight per
 * stream, streams served in turn, so a reconnect storm never becomes a 429 storm. After each
 * request the I/O thread sees its outcome (ops.done): candles the exchange
 * answered it does not have leave the holes; a failed request is asked again after a backoff
 * (1 s doubling to 5 min, with jitter), never dropped; while a store does not take rows the
 * worker waits rather than fetch what could not be stored.
 */
#ifndef KF_COLLECTOR_REPAIR_H
#define KF_COLLECTOR_REPAIR_H
#include <stddef.h>
#include <stdint.h>

#include "backfill/fetch.h"
#include "core/log.h"
#include "klinefeed.h"
#include "stream/stream.h"

typedef struct kf__repair kf__repair;

/* The worker's up-calls to its owner, each with the env's owner pointer. */
typedef struct kf__repair_ops {
    /* Every store takes rows: the worker does not fetch, and kf__repair_drain stops, while this
     * is false. Worker thread and I/O thread. */
    bool (*sinks_ready)(void *owner);
    /* I/O thread, from kf__repair_drain: a fetched closed candle of stream si, in order. */
    void (*deliver)(void *owner, size_t si, const kf_kline *k);
    /* I/O thread, from kf__repair_drain: stream si's request over [from, to] is over (err its
     * result); its answer established every closed candle up to covered (holes in [from,
     * covered] the exchange did not return do not exist). The owner answers with
     * kf__repair_applied. */
    void (*done)(void *owner, size_t si, int64_t from, int64_t to, int64_t covered, kf_err err);
    /* Worker thread: rows or outcomes are waiting: have the I/O thread call kf__repair_drain. */
    void (*wake)(void *owner);
    /* Worker thread, every env.list_every_ms (the first one period after kf__repair_start), when
     * that is not 0: the owner's periodic job (the symbol re-read), given the worker's fetcher
     * (its weight budget, pauses and cancel flag: it returns promptly on kf__repair_stop).
     * May be NULL when list_every_ms is 0. */
    void (*list)(void *owner, kf__fetcher *f);
} kf__repair_ops;

/* What the worker is given: borrowed, must outlive it. */
typedef struct kf__repair_env {
    kf__stream *streams;    /* the owner's; the worker reads their holes (kf__stream_holes) */
    size_t nstreams;        /* the most there will be: a stream appended while running (up to this)
                               may be asked for once initialised */
    unsigned list_every_ms; /* ops.list's period, 0 none */
    kf__logger *log;
    kf__fetcher_opts fetch; /* the REST endpoint, weight budget, timeout, pause file */
    const kf__repair_ops *ops;
    void *owner;
} kf__repair_env;

/* No tail wanted (kf__repair_request). */
#define KF__NO_TAIL INT64_MAX

/* Allocates the worker's state for env's streams (env is copied). NULL with err set on
 * failure. */
kf__repair *kf__repair_new(const kf__repair_env *env, char *err, size_t errlen);
/* Starts the thread. */
kf_err kf__repair_start(kf__repair *r, char *err, size_t errlen);
/* Cancels the request in flight and joins the thread; rows already fetched stay queued for
 * kf__repair_drain(). Idempotent. */
void kf__repair_stop(kf__repair *r);
void kf__repair_free(kf__repair *r);

/* Stream si needs REST: its holes, and every closed candle from tail_from to the present unless
 * tail_from is KF__NO_TAIL. Merged with what is pending for that stream. I/O thread or before
 * start; no allocation. r NULL (repair off) is ignored. */
void kf__repair_request(kf__repair *r, size_t si, int64_t tail_from);
/* I/O thread: hands the fetched rows to ops.deliver and every finished request to ops.done, in
 * order, while every store takes rows (ops.sinks_ready). false when it stopped for a store: call
 * it again later (the rows wait, and the worker waits when too many do). */
bool kf__repair_drain(kf__repair *r);
/* I/O thread, from ops.done: the outcome of stream si's request is applied.
 * failed: asked again after the stream's backoff; otherwise asked again after delay_ms when
 * more is true (holes left), or when a tail was asked meanwhile. */
void kf__repair_applied(kf__repair *r, size_t si, bool failed, int64_t delay_ms, bool more);
/* Streams waiting, in flight or being applied, plus rows not yet applied. Any thread. */
size_t kf__repair_pending(kf__repair *r);
void kf__repair_get_stats(kf__repair *r, kf__fetch_stats *out);

#endif
