/*
 * Sinks: where closed candles are stored. Every sink type is one const table
 * of operations (versioned, grows only at the end); every configured sink runs
 * on its own writer thread fed by a bounded queue, so a slow store never
 * stalls the socket thread.
 */
#ifndef KF_SINK_SINK_H
#define KF_SINK_SINK_H
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "klinefeed.h"

#define KF__SINK_OPS_VERSION 1

typedef struct kf__sink_ops {
    int version;        /* KF__SINK_OPS_VERSION */
    const char *scheme; /* "sqlite", "jsonl", "csv" */
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
} kf__sink_ops;

extern const kf__sink_ops kf__sink_sqlite;
extern const kf__sink_ops kf__sink_jsonl;
extern const kf__sink_ops kf__sink_csv;

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
 * file); NULL for none. */
kf_err kf__linefile_open(const char *scheme, const char *target, const char *header,
                         kf__line_fmt fmt, void **state, char *err, size_t errlen);
kf_err kf__linefile_write(void *state, const kf_kline *rows, size_t n, char *err, size_t errlen);
kf_err kf__linefile_flush(void *state, char *err, size_t errlen);
void kf__linefile_close(void *state);

/* ---- writer: one thread per sink ---- */
typedef struct kf__writer kf__writer;

typedef struct kf__writer_stats {
    uint64_t rows;       /* rows stored */
    uint64_t batches;    /* write() calls that succeeded */
    uint64_t errors;     /* failed write()/flush() attempts (retried), refused pushes,
                            rows lost at the stop deadline */
    uint64_t full_waits; /* pushes that had to wait for room */
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
/* Drains the queue, writes, flushes and joins the thread (drains on the calling thread when
 * never started). Idempotent: later calls return the first call's result. A write or flush
 * that keeps failing is retried with backoff until it succeeds or the stop deadline (10 s)
 * passes; rows still unstored then (queued, or written but not flushed) are counted as
 * errors and logged, and KF_ERR_SINK is returned; KF_OK when everything was stored. Call
 * after the producer has made its last push. */
kf_err kf__writer_stop(kf__writer *w);
/* Closes the sink and frees everything (stops first if needed). NULL ignored. */
void kf__writer_free(kf__writer *w);
void kf__writer_get_stats(kf__writer *w, kf__writer_stats *out);
/* The open sink's ops and state, for last_closed() queries before start. */
const kf__sink_ops *kf__writer_ops(kf__writer *w, void **state);

#endif
