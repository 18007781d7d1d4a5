/*
 * The collector: owns the configuration copy, the streams (state + ring), the
 * connection shards on the I/O thread "kf-io", the sink writers and the
 * counters. Data path per text message, all on the I/O thread:
 *   conn (transport) -> kf__decode (decode) -> kf__stream_apply (stream)
 *   -> callbacks -> kf__writer_push (sink).
 */
#ifndef KF_COLLECTOR_COLLECTOR_H
#define KF_COLLECTOR_COLLECTOR_H
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "collector/config.h"
#include "core/log.h"
#include "sink/sink.h"
#include "stream/stream.h"
#include "transport/conn.h"

/*
 * One connection's worth of streams (at most streams_per_connection): its
 * connection state machine, the SUBSCRIBE batches it sends (paced) and the
 * acknowledgements it waits for. Lives on the I/O thread.
 */
typedef struct kf__shard {
    struct kf_collector *col;
    size_t index;
    size_t first, count; /* streams [first, first + count) */
    kf__conn *conn;
    uv_timer_t pace; /* SUBSCRIBE pacing */
    bool pace_init;
    size_t next;      /* next stream to subscribe, relative to first */
    uint64_t id_base; /* batch b was sent with id id_base + b */
    size_t batches, sent, acked;
    uint8_t *batch_acked; /* per batch */
    char *req;            /* SUBSCRIBE request buffer */
    size_t req_cap;
    bool opened, subscribed, closed;
    char last_error[256]; /* the exchange's last error reply on this connection */
} kf__shard;

/* Counters written by one thread (the I/O thread) and read by any: relaxed atomics. */
typedef struct kf__counters {
    _Atomic uint64_t frames, bytes, updates, closed, duplicates, other_events, parse_errors,
        unknown_streams, acks, exchange_errors, connects, disconnects, pings, rest_requests;
} kf__counters;

struct kf_collector {
    kf_config *cfg;
    kf__logger log;
    kf__url ws_url, rest_url;
    char ws_base[1100], rest_base[1100];
    char ws_path[1100]; /* ws_url.path + "/ws" */

    kf__stream *streams;
    size_t nstreams;
    kf__stream_index index;
    kf__shard *shards;
    size_t nshards;

    kf__writer **writers; /* guarded by mu (stats readers) */
    size_t nwriters;
    uint64_t sink_rows_done, sink_errors_done; /* counters of writers already closed */

    /* I/O thread */
    pthread_t io_thread;
    bool io_started;
    uv_loop_t loop;
    uv_async_t wake;
    void *ssl_ctx; /* SSL_CTX *, NULL for ws:// */
    uint64_t next_id;
    _Atomic bool stopping;
    bool wake_closed;
    size_t shards_closed;

    /* start handshake between kf_start and the I/O thread */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t shards_opened;
    kf_err start_err;
    bool start_done;

    _Atomic bool running;
    _Atomic size_t shards_subscribed;
    kf__counters st;
    uint64_t parse_logged;

    pthread_mutex_t err_mu;
    char errmsg[1024];
};

/* shard.c: runs on the I/O thread */
kf_err kf__shard_init(kf__shard *sh, struct kf_collector *col, size_t index, size_t first,
                      size_t count);
void kf__shard_free(kf__shard *sh);
kf_err kf__shard_connect(kf__shard *sh);
void kf__shard_close(kf__shard *sh);

/* collector.c */
void kf__collector_set_error(struct kf_collector *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kf__collector_shard_opened(struct kf_collector *c, kf__shard *sh);
void kf__collector_shard_closed(struct kf_collector *c, kf__shard *sh, kf_err err, const char *why);

#define KF__STAT_ADD(c, field, n)                                                                  \
    atomic_store_explicit(&(c)->st.field,                                                          \
                          atomic_load_explicit(&(c)->st.field, memory_order_relaxed) + (n),        \
                          memory_order_relaxed)
#define KF__STAT_INC(c, field) KF__STAT_ADD(c, field, 1)

#endif
