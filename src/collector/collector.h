/*
 * The collector: owns the configuration copy, the streams (state + ring), the
 * connection shards on the I/O thread "kf-io", the sink writers and the
 * counters. Data path per text message, all on the I/O thread:
 *   conn (transport) -> kf__decode (decode) -> kf__stream_apply (stream)
 *   -> callbacks -> kf__writer_push (sink).
 *
 * Boundaries: only collector.c sees struct kf_collector. A shard (shard.h) is given a
 * kf__shard_env at init (loop, settings, logger, counters, read-only streams and index, the
 * shared conn_budget/rng/request ids) and reports through kf__shard_ops up-calls; the REST
 * worker (repair.h) gets a kf__repair_env with kf__repair_ops; the symbol check (validate.h)
 * takes a kf__validate_opts. collector.c changes a shard only through its functions.
 */
#ifndef KF_COLLECTOR_COLLECTOR_H
#define KF_COLLECTOR_COLLECTOR_H
#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

#include "collector/config.h"
#include "collector/conn_budget.h"
#include "collector/counters.h"
#include "collector/listing.h"
#include "collector/repair.h"
#include "collector/shard.h"
#include "core/log.h"
#include "core/rng.h"
#include "sink/sink.h"
#include "stream/stream.h"
#include "transport/conn.h"

struct kf_collector {
    kf_config *cfg;
    kf__logger log;
    kf__url ws_url, rest_url;
    char ws_base[1100], rest_base[1100];
    char ws_path[1100]; /* ws_url.path + "/ws" */

    kf__stream *streams;
    /* Streams and connections: allocated for cap_streams / cap_shards at kf_create (the reserve
     * of kf_config_set_symbol_reserve when the symbols are re-read), appended to by the I/O
     * thread only; the counts are published (seq_cst stores) after what they cover is
     * initialised, so any thread may read streams [0, nstreams) and shards [0, nshards). */
    _Atomic size_t nstreams;
    size_t cap_streams;
    _Atomic uint64_t *last_update;     /* per stream: loop ms of its last WebSocket update, 0 none
                                          (written by the I/O thread, read by kf_stream_info_get) */
    _Atomic uint64_t *stream_gaps;     /* per stream: closed candles found missing (in the
                                          allocation of last_update, I/O thread writes) */
    _Atomic uint64_t *stream_repaired; /* per stream: closed candles stored from REST (same) */
    kf__candle *rings; /* every stream's ring, one zeroed arena touched only as candles arrive */
    kf__stream_index index;
    pthread_rwlock_t index_lock; /* the I/O thread adds to the index under it (write); readers
                                    on other threads (kf_recent) hold it (read). The I/O thread
                                    reads without it: it is the only writer */
    kf__shard *shards;
    _Atomic size_t nshards;
    size_t cap_shards;

    /* The symbol re-read (kf_config_set_symbol_refresh) */
    bool refresh; /* on: the symbols came from exchangeInfo, a period is set */
    size_t nint;  /* intervals per symbol, in kf_interval order: ivs[] */
    int ivs[KF_INTERVAL_COUNT];
    int64_t first_event_ms;        /* exchange time (E) of this run's first update, 0 none yet
                                      (I/O thread): the backfill floor of a listing */
    pthread_mutex_t list_mu;       /* guards list_pending between the REST thread and I/O */
    kf__listing_diff list_pending; /* the latest re-read's difference, not applied yet */
    bool list_has;
    char (*refused)[KF_SYMBOL_MAX + 1]; /* listings refused for want of reserve, logged once */
    size_t nrefused, refused_cap;

    kf__repair *repair;        /* NULL when REST repair is off; guarded by mu for stats */
    kf__fetch_stats rest_done; /* counters of REST workers already closed */
    kf__writer **writers;      /* guarded by mu (stats readers) */
    size_t nwriters;
    uint64_t sink_rows_done, sink_errors_done, sink_unstored_done; /* of writers already closed */
    uint64_t sink_rejected_done;                                   /* same */
    _Atomic uint64_t unreceived; /* at the last stop: closed candles that never arrived (missing) */
    char rest_state[1200];       /* file keeping REST pauses across processes, "" none */
    kf__cover *covers;           /* complete ranges being recorded (one per stream), I/O thread */
    uv_timer_t cover_timer;      /* records the complete ranges every KF__COVER_EVERY_MS */
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
    kf__conn_budget budget; /* new connections, shared by the shards (I/O thread) */
    kf__rng rng;            /* reconnect jitter, seeded per collector (I/O thread) */
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

/* collector.c's counters (kf__counters, written by one thread). */
#define KF__STAT_ADD(c, field, n) KF__COUNT_ADD(&(c)->st, field, n)
#define KF__STAT_INC(c, field) KF__COUNT_INC(&(c)->st, field)

#endif
