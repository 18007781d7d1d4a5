/*
 * Sinks: where closed candles are stored. Every sink type is one const table
 * of operations (versioned, grows only at the end); every configured sink runs
 * on its own writer thread fed by a bounded queue, so a slow store never
 * stalls the socket thread.
 */
#ifndef KF_SINK_SINK_H
#define KF_SINK_SINK_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "klinefeed.h"
#include "sink/format.h"

#define KF__SINK_OPS_VERSION 4

/* A range of one stream a store holds complete: every candle the exchange has with an open time
 * in [from, to] is stored (klinefeed checked, and asked the exchange about what it lacked). */
typedef struct kf__cover {
    char symbol[KF_SYMBOL_MAX + 1];
    char interval[4];
    int64_t from, to;
} kf__cover;

/* stored() callback: one stored open time; non-zero stops the walk. */
typedef int (*kf__stored_fn)(void *ud, int64_t open_time);

typedef struct kf__sink_ops {
    int version;        /* KF__SINK_OPS_VERSION */
    const char *scheme; /* "sqlite", "jsonl", "csv", "postgres" */
    /* Opens target (the spec after "scheme:"); *state owned by the sink. Error text in err. */
    kf_err (*open)(const char *target, void **state, char *err, size_t errlen);
    /* Stores n rows atomically (one transaction where the store has them). Upsert on
     * (symbol, interval, open_time). Called only from the sink's writer thread. */
    kf_err (*write)(void *state, const kf_kline *rows, size_t n, char *err, size_t errlen);
    /* Makes everything written durable / visible (fsync-free flush for files). */
    kf_err (*flush)(void *state, char *err, size_t errlen);
    void (*close)(void *state);
    /* Optional (NULL if the store cannot answer): open time of the newest closed candle
     * stored for the stream, *found 0 when none. For resuming after a restart. */
    kf_err (*last_closed)(void *state, const char *symbol, const char *interval, int64_t *open_time,
                          int *found, char *err, size_t errlen);
    /* ---- version 2 ---- */
    /* Optional: calls fn for the open time of every closed candle stored for the stream with
     * an open time >= from, in ascending order, until fn returns non-zero. KF_ERR_NOT_FOUND
     * when this sink cannot tell what it holds (standard output). For finding, at start, what
     * a store lacks: a crash never loses what was known to be missing. Before the writer
     * thread starts. */
    kf_err (*stored)(void *state, const char *symbol, const char *interval, int64_t from,
                     kf__stored_fn fn, void *ud, char *err, size_t errlen);
    /* Optional, with put_cover: the range last recorded complete for the stream (*found 0 when
     * none), so that a start checks only what came after it. Before the writer thread starts. */
    kf_err (*get_cover)(void *state, const char *symbol, const char *interval, int64_t *from,
                        int64_t *to, int *found, char *err, size_t errlen);
    /* Optional: records complete ranges (each replaces the stream's previous one; a store shared
     * by several collectors may merge it with theirs instead, never shrinking), atomically.
     * Only for stores whose write() is durable when it returns (a committed transaction). The
     * writer thread calls it only once every row pushed before the record is written. */
    kf_err (*put_cover)(void *state, const kf__cover *c, size_t n, char *err, size_t errlen);
    /* Optional: closes like close(), and removes what open() created when nothing was stored in
     * it (a start that failed must not leave an empty store behind). Never removes a store that
     * existed before open(). */
    void (*discard)(void *state);
    /* ---- version 3 ---- */
    /* Optional: the logger the sink may write to from its writer thread (rows a server
     * refused, left out of their batch). Called once after open(). */
    void (*set_log)(void *state, kf__logger *lg);
    /* Optional (0: the writer's default, 1024): the most rows the writer passes to one write().
     * A server store amortises its per-transaction cost over larger batches. */
    size_t max_batch;
    /* ---- version 4 ---- */
    /* Optional: rows the store refused for their data and left out so far (a batch stored
     * without them), counted once their batch is stored. Called on the writer thread only,
     * after each write() that succeeded. */
    uint64_t (*rejected)(void *state);
} kf__sink_ops;

extern const kf__sink_ops kf__sink_sqlite;
extern const kf__sink_ops kf__sink_jsonl;
extern const kf__sink_ops kf__sink_csv;
extern const kf__sink_ops kf__sink_postgres;
extern const kf__sink_ops kf__sink_nats;

/* spec as it may be logged, its secrets masked: a postgres conninfo's password (key=value
 * pairs and postgresql:// URIs), a nats URL's USER:PASS@ or TOKEN@ and any user=, pass=,
 * password= or token= option, each shown as "***"; other specs unchanged. Cut to fit cap. */
void kf__sink_mask(const char *spec, char *out, size_t cap);
/* The conninfo part of the above (pg.c). */
void kf__pg_mask(const char *conninfo, char *out, size_t cap);
/* A whole nats:// spec, masked (nats.c). */
void kf__nats_mask(const char *spec, char *out, size_t cap);

/* Finds the ops for "scheme:target"; *target points into spec. NULL when unknown scheme or
 * empty target. */
const kf__sink_ops *kf__sink_lookup(const char *spec, const char **target);

/* ---- line files: the shared back end of the jsonl and csv sinks (sink.c) ----
 * Rows are formatted into a buffer owned by the sink (write() only appends to it, so a batch
 * is either taken whole or not at all) and written with write(2) when the buffer passes
 * 64 KiB and in flush(). A failed or short write keeps the unwritten bytes and resumes
 * from them on the next call, so a retry after ENOSPC loses and repeats nothing. Target
 * "-" is standard output (never closed). The file is opened O_APPEND and created 0644. */
typedef size_t (*kf__line_fmt)(const kf_kline *k, char *buf, size_t cap);
/* header: first line written when the file is new or empty (or stdout is not a regular
 * file); NULL for none. key reads a line's key fields back: an existing file is read once at
 * open so that stored() can tell what it holds, and write() then leaves out a closed row the
 * file held already (NULL: no index). */
kf_err kf__linefile_open(const char *scheme, const char *target, const char *header,
                         kf__line_fmt fmt, kf__line_key_fn key, void **state, char *err,
                         size_t errlen);
kf_err kf__linefile_stored(void *state, const char *symbol, const char *interval, int64_t from,
                           kf__stored_fn fn, void *ud, char *err, size_t errlen);
kf_err kf__linefile_write(void *state, const kf_kline *rows, size_t n, char *err, size_t errlen);
kf_err kf__linefile_flush(void *state, char *err, size_t errlen);
void kf__linefile_close(void *state);
void kf__linefile_discard(void *state);

/* ---- writer: one thread per sink ---- */
typedef struct kf__writer kf__writer;

typedef struct kf__writer_stats {
    uint64_t rows;       /* rows stored (the rows refused are not) */
    uint64_t batches;    /* write() calls that succeeded */
    uint64_t errors;     /* failed write()/flush() attempts (retried), refused pushes,
                            rows lost at the stop deadline */
    uint64_t full_waits; /* pushes that had to wait for room */
    uint64_t unstored;   /* rows queued (or written, not flushed) but not stored at the stop
                            deadline; also counted in errors */
    uint64_t covers;     /* complete ranges recorded (put_cover) */
    uint64_t rejected;   /* rows the store refused for their data, left out (ops->rejected) */
    size_t queued, cap;  /* rows in the queue now, and its capacity */
    bool failing;        /* the last write/flush/put_cover attempt failed */
} kf__writer_stats;

/*
 * Opens the sink named by spec on the calling thread (so a bad path fails
 * kf_start() synchronously) and prepares a queue of queue_cap rows. NULL on
 * failure with err naming the spec and the cause. lg may be NULL.
 */
kf__writer *kf__writer_open(const char *spec, size_t queue_cap, kf__logger *lg, char *err,
                            size_t errlen);
/* Starts the writer thread (named "kf-sink-N", N counting writers in the process). */
kf_err kf__writer_start(kf__writer *w, char *err, size_t errlen);
/*
 * Queues a copy of k. Called from one producer thread (the I/O thread). Never
 * drops: when the queue is full it waits for room (counted in full_waits).
 * No allocation; takes no lock unless the queue is full or the writer sleeps.
 * Push at most queue_cap rows before kf__writer_start (nothing drains them yet).
 * Refused (counted in errors and logged, not queued): a push after
 * kf__writer_stop began, and a row no sink can store (a decimal scale outside
 * 0..18, symbol or interval without its NUL), which would otherwise fail every retry.
 */
void kf__writer_push(kf__writer *w, const kf_kline *k);
/*
 * Like kf__writer_push but never waits: false (nothing queued, nothing counted) when the queue
 * is full. For the collector's I/O thread, which must never wait on a store: what does not fit
 * is fetched again from REST once the store takes rows again.
 */
bool kf__writer_offer(kf__writer *w, const kf_kline *k);
/* Free slots in the queue now (the producer's view: only grows until its next push). */
size_t kf__writer_room(kf__writer *w);
/* The sink takes rows: its last write succeeded and its queue is at most half full. Any
 * thread; a hint for the REST repair, which waits rather than fetch rows that cannot be
 * stored. */
bool kf__writer_healthy(kf__writer *w);
/* True when the sink records complete ranges (put_cover). */
bool kf__writer_covers(kf__writer *w);
/*
 * Queues complete ranges to record once every row pushed before this call is written (never
 * earlier: a crash between the two must not leave a range claimed complete whose rows are
 * lost). Producer thread. Nothing is done for sinks without put_cover. KF_ERR_NOMEM when the
 * records cannot be queued (nothing is lost: the next start checks more).
 */
kf_err kf__writer_cover(kf__writer *w, const kf__cover *c, size_t n);
/* Drains the queue, writes, flushes and joins the thread (drains on the calling thread when
 * never started). Idempotent: later calls return the first call's result. A write or flush
 * that keeps failing is retried with backoff until it succeeds or the stop deadline (10 s)
 * passes; rows still unstored then (queued, or written but not flushed) are counted as
 * errors and logged, and KF_ERR_SINK is returned; KF_OK when everything was stored. Call
 * after the producer has made its last push. */
kf_err kf__writer_stop(kf__writer *w);
/* kf__writer_stop with the deadline given: monotonic ms (CLOCK_MONOTONIC), shared by every
 * writer of a collector so that kf_stop returns within one deadline. */
kf_err kf__writer_stop_by(kf__writer *w, int64_t deadline_mono_ms);
/* Closes the sink and frees everything (stops first if needed). NULL ignored. */
void kf__writer_free(kf__writer *w);
/* Like kf__writer_free, but a store that open() created and that holds nothing is removed
 * (sinks with a discard op). For a start that failed. NULL ignored. */
void kf__writer_discard(kf__writer *w);
void kf__writer_get_stats(kf__writer *w, kf__writer_stats *out);
/* The open sink's ops and state, for last_closed() queries before start. */
const kf__sink_ops *kf__writer_ops(kf__writer *w, void **state);
/* The spec the writer was opened with. Owned by w. Any thread. */
const char *kf__writer_spec(const kf__writer *w);

#endif
