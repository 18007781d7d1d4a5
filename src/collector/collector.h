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
#include "collector/repair.h"
#include "core/log.h"
#include "core/rng.h"
#include "sink/sink.h"
#include "stream/stream.h"
#include "transport/conn.h"

struct kf__shard;

/* One WebSocket connection of a shard and its subscription progress. */
typedef struct kf__link {
    struct kf__shard *sh;
    int slot;        /* index in sh->link */
    kf__conn *conn;  /* NULL when unused */
    uv_timer_t pace; /* SUBSCRIBE pacing */
    size_t next;     /* next stream to subscribe, relative to the shard's first */
    size_t sent, acked;
    uint64_t id_base;     /* batch b was sent with id id_base + b */
    uint8_t *batch_acked; /* per batch */
    bool opened, subscribed, delivered, closed, dead;
    uint64_t opened_at, subscribed_at, last_ping; /* loop ms */
    int64_t first_event, last_event; /* exchange ms: first event since subscribed, newest */
    char last_error[256];            /* the exchange's last error reply on this connection */
} kf__link;

/*
 * One connection's worth of streams (at most streams_per_connection) and the connections
 * that carry them: the active link, plus a replacement while a rotation is under way (never
 * more than two). Reconnects with backoff, liveness, pings, rotation and stale-stream checks
 * live here. Runs on the I/O thread.
 */
typedef struct kf__shard {
    struct kf_collector *col;
    size_t index;
    size_t first, count; /* streams [first, first + count) */
    size_t batches;      /* SUBSCRIBE requests per connection */
    kf__link link[2];
    int cur;   /* the active link */
    char *req; /* SUBSCRIBE request buffer */
    size_t req_cap;
    uv_timer_t tick;  /* liveness, pings, rotation, stale streams */
    uv_timer_t retry; /* reconnect after backoff */
    bool timers_init;
    bool counted_subscribed; /* counted in col->shards_subscribed */
    bool rotating;           /* link[!cur] is the replacement */
    bool retry_pending;
    unsigned attempt;           /* consecutive failed attempts */
    uint64_t down_since;        /* loop ms when the active link was lost, 0 when up */
    uint64_t last_retry_log;    /* loop ms of the last "still reconnecting" line */
    uint64_t rotate_not_before; /* loop ms: no rotation attempt before */
    uint64_t retire_at;         /* loop ms: the old link retires (replacement delivering) */
    uint64_t *last_seen;        /* per stream: loop ms of the last update, 0 never */
    int64_t *last_event;        /* per stream: exchange ms (E) of the last update, 0 never */
    int64_t *await_close;       /* per stream: open time of a candle whose closing update is
                                   awaited (its successor started), 0 none */
    uint64_t *await_deadline;   /* per stream: loop ms after which REST is asked */
    bool lost;                  /* the active link was lost: repair once resubscribed */
    uint8_t *stale;             /* per stream: reported stale */
} kf__shard;

/* Counters written by one thread (the I/O thread) and read by any: relaxed atomics. */
typedef struct kf__counters {
    _Atomic uint64_t frames, bytes, updates, closed, duplicates, other_events, parse_errors,
        unknown_streams, acks, exchange_errors, connects, disconnects, pings, rest_requests,
        reconnects, lost_server_close, lost_reset, lost_protocol, lost_liveness, connect_failures,
        rotations, stale_streams, gaps, missing_closes, backfilled, absent, repair_failures,
        store_dropped, updates_dropped;
} kf__counters;

struct kf_collector {
    kf_config *cfg;
    kf__logger log;
    kf__url ws_url, rest_url;
    char ws_base[1100], rest_base[1100];
    char ws_path[1100]; /* ws_url.path + "/ws" */

    kf__stream *streams;
    size_t nstreams;
    kf__candle *rings; /* every stream's ring, one zeroed arena touched only as candles arrive */
    kf__stream_index index;
    kf__shard *shards;
    size_t nshards;

    kf__repair *repair;        /* NULL when REST repair is off; guarded by mu for stats */
    kf__fetch_stats rest_done; /* counters of REST workers already closed */
    kf__writer **writers;      /* guarded by mu (stats readers) */
    size_t nwriters;
    uint64_t sink_rows_done, sink_errors_done, sink_unstored_done; /* of writers already closed */
    char rest_state[1200];  /* file keeping REST pauses across processes, "" none */
    kf__cover *covers;      /* complete ranges being recorded (one per stream), I/O thread */
    uv_timer_t cover_timer; /* records the complete ranges every KF__COVER_EVERY_MS */
    bool cover_timer_init;
    uv_timer_t drain_timer; /* applies waiting REST rows again once the stores have room */
    bool drain_timer_init;
    kf__hole *scan_holes; /* at start: what one stream lacks in the stores */
    size_t nscan, scan_cap;
    int64_t drop_log_ms; /* rate limit of the "store queue full" line (I/O thread) */
    uint64_t drop_unlogged;

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
    /* kf_wait_connected, under mu too: the exchange refused a SUBSCRIBE since kf_start or since
     * every shard was last subscribed, and the refusal's text (the cv is broadcast on changes) */
    bool sub_refused;
    char sub_error[1024];

    _Atomic bool running;
    _Atomic size_t shards_subscribed;
    kf__counters st;
    /* new-connection budget: attempt times, a ring of conn_budget entries (I/O thread) */
    uint64_t *attempts;
    size_t attempts_head;
    kf__rng rng; /* reconnect jitter, seeded per collector (I/O thread) */
    uint64_t parse_logged;

    pthread_mutex_t err_mu;
    char errmsg[1024];

    /* kf_stop from several threads at once: one stops (stop_busy), the others wait for that
     * stop (stop_gen moves on) and return its result; kf_free waits until they have left. */
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool stop_busy;
    /* kf_stop during kf_start: start_busy (under stop_mu) while kf_start runs; start_abort asks
     * it to give up (checked between its steps, in its wait, and by the exchangeInfo request) */
    bool start_busy;
    _Atomic bool start_abort;
    unsigned stop_waiters;
    uint64_t stop_gen;
    kf_err stop_result;
};

/* shard.c: runs on the I/O thread */
kf_err kf__shard_init(kf__shard *sh, struct kf_collector *col, size_t index, size_t first,
                      size_t count);
void kf__shard_free(kf__shard *sh);
/* Starts the shard on the loop: its timers and the first connection. */
kf_err kf__shard_start(kf__shard *sh);
/* Starts closing every connection of the shard (kf_stop). */
void kf__shard_close(kf__shard *sh);
/* True when no connection of the shard is still open or closing. */
bool kf__shard_all_closed(const kf__shard *sh);
/* Destroys the connections and closes the timers (after kf__shard_all_closed). */
void kf__shard_release(kf__shard *sh);
/* The delay before the shard's next reconnect attempt (sh->attempt failures so far): full
 * jitter in [0, min(max, initial * 2^(attempt-1))] ms. Draws from the collector's generator:
 * I/O thread (tests: before kf_start). */
uint64_t kf__shard_retry_delay(kf__shard *sh);

/* collector.c */
/* I/O thread: applies a closed candle fetched from REST to stream si (stores it if new). */
void kf__collector_deliver_rest(struct kf_collector *c, size_t si, const kf_kline *k);
/* I/O thread: applies a WebSocket update to stream si: state, ring, callbacks, sinks, and a
 * REST request for any gap it reveals. */
void kf__collector_deliver_ws(struct kf_collector *c, size_t si, const kf_kline *k);
/* Asks REST for stream si's closed candles after the newest one it knows, up to now. */
void kf__collector_repair_after_last(struct kf_collector *c, size_t si);
/* I/O thread: the outcome of a REST request for stream si over [from, to] whose answer
 * established every closed candle up to covered: holes in [from, covered] the exchange did not
 * return do not exist (they leave the holes, counted as absent); then the worker is told what
 * comes next (kf__repair_applied). */
void kf__collector_repair_done(struct kf_collector *c, size_t si, int64_t from, int64_t to,
                               int64_t covered, kf_err err);
/* Every store takes rows (kf__writer_healthy). Any thread while running. */
bool kf__collector_sinks_ready(struct kf_collector *c);
void kf__collector_set_error(struct kf_collector *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void kf__collector_shard_opened(struct kf_collector *c, kf__shard *sh);
/* I/O thread: the exchange answered one of the SUBSCRIBE requests on url with an error reply
 * (what: the request id, code and message): kf_wait_connected returns KF_ERR_SUBSCRIBE until
 * every shard is subscribed. */
void kf__collector_subscribe_refused(struct kf_collector *c, const char *url, const char *what);
/* I/O thread: every shard is subscribed (kf_connected() is true): the refusal is over, and
 * kf_wait_connected returns. */
void kf__collector_all_subscribed(struct kf_collector *c);
/* Shuts the loop down once every shard's connections are closed (kf_stop). */
void kf__collector_check_all_closed(struct kf_collector *c);
/* kf_start() is still waiting for the first connections. Any thread. */
bool kf__collector_starting(struct kf_collector *c);
void kf__collector_shard_closed(struct kf_collector *c, kf__shard *sh, kf_err err, const char *why);

#define KF__STAT_ADD(c, field, n)                                                                  \
    atomic_store_explicit(&(c)->st.field,                                                          \
                          atomic_load_explicit(&(c)->st.field, memory_order_relaxed) + (n),        \
                          memory_order_relaxed)
#define KF__STAT_INC(c, field) KF__STAT_ADD(c, field, 1)

#endif
