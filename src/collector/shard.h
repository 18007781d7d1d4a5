/*
 * A shard: the streams carried by one connection at a time (a contiguous range of the
 * collector's streams) and that connection's life: paced SUBSCRIBE, acknowledgements, routing
 * of updates, reconnect with backoff within the shared new-connection budget, liveness,
 * make-before-break rotation, silent streams, closing updates that never came.
 *
 * A shard knows its owner only through kf__shard_env, given at init: a loop, the settings it
 * needs, a logger, counters, the streams (read only: the owner applies updates to them), the
 * connection options, the shared budget, random generator and request ids, and a table of
 * up-calls. It never sees struct kf_collector. Every function runs on the loop's thread.
 */
#ifndef KF_COLLECTOR_SHARD_H
#define KF_COLLECTOR_SHARD_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "collector/conn_budget.h"
#include "collector/counters.h"
#include "core/log.h"
#include "core/rng.h"
#include "klinefeed.h"
#include "stream/stream.h"
#include "transport/conn.h"

struct kf__shard;

/* What a shard reads of the configuration (copied at init). */
typedef struct kf__shard_settings {
    size_t names_per_subscribe;   /* stream names per SUBSCRIBE request */
    unsigned messages_per_second; /* the exchange's limit of messages we send, per connection */
    unsigned connect_timeout_ms;  /* per connection attempt */
    size_t max_message;           /* the largest message accepted */
    unsigned backoff_initial_ms;  /* reconnect backoff: first ceiling */
    unsigned backoff_max_ms;      /* ... and the largest */
    unsigned ping_interval_ms;    /* our pings */
    unsigned dead_after_ms;       /* no frame this long: the connection is dead */
    uint64_t max_age_ms;          /* a connection is rotated at this age */
    kf_raw_fn on_raw;             /* every text message, before decoding; NULL none */
    void *on_raw_ud;
} kf__shard_settings;

/*
 * The up-calls of a shard to its owner, each with the env's owner pointer and the shard's
 * index. All on the loop's thread. None may free the shard.
 */
typedef struct kf__shard_ops {
    /* An update of stream si (an index into env.streams) arrived; the shard has done its
     * bookkeeping. The data path: no allocation expected. */
    void (*deliver)(void *owner, size_t si, const kf_kline *k);
    /* The active connection opened (the upgrade was accepted). */
    void (*opened)(void *owner, size_t shard);
    /* A connection closed while starting() or stopping() is true: the owner decides (a failed
     * start, or one step of a stop). err/why as kf__conn_handler.on_closed. */
    void (*closed)(void *owner, size_t shard, kf_err err, const char *why);
    /* The shard's active connection became subscribed (on) or stopped being so (off); called
     * only on a change. */
    void (*subscribed)(void *owner, size_t shard, bool on);
    /* The exchange refused one of our SUBSCRIBE requests on url (what: id, code, message). */
    void (*subscribe_refused)(void *owner, size_t shard, const char *url, const char *what);
    /* The shard's latest error, for the owner's error message (kf_errmsg). */
    void (*error)(void *owner, size_t shard, const char *msg);
    /* Stream si needs its closed candles after the newest it knows (after a reconnect). */
    void (*repair_after_last)(void *owner, size_t si);
    /* Stream si's candle open_time never got its closing update: ask REST. */
    void (*repair_candle)(void *owner, size_t si, int64_t open_time);
    /* The owner is still waiting for its first connections / is stopping. */
    bool (*starting)(void *owner);
    bool (*stopping)(void *owner);
} kf__shard_ops;

/* Everything a shard uses that is not its own: borrowed, must outlive the shard. */
typedef struct kf__shard_env {
    uv_loop_t *loop;
    kf__shard_settings set;
    kf__logger *log;
    kf__counters *st;              /* written by the shard (and its owner) */
    const kf__stream *streams;     /* every stream of the owner; the shard's are a range */
    const kf__stream_index *index; /* finds an update's stream in streams */
    const kf__url *url;            /* the WebSocket endpoint */
    const char *path;              /* its request path ("/market/ws") */
    kf__conn_budget *budget;       /* shared by the owner's shards */
    kf__rng *rng;                  /* reconnect jitter, shared */
    uint64_t *next_id;             /* request ids, shared: each connection takes a block, and
                                      one per request sent while running */
    const kf__shard_ops *ops;
    void *owner;
} kf__shard_env;

/* One WebSocket connection of a shard and its subscription progress. */
typedef struct kf__link {
    struct kf__shard *sh;
    int slot;        /* index in sh->link */
    kf__conn *conn;  /* NULL when unused */
    uv_timer_t pace; /* request pacing: never over the exchange's message rate */
    size_t batches;  /* SUBSCRIBE requests of the first subscription (at open) */
    size_t sent, acked;
    uint64_t id_base;     /* batch b was sent with id id_base + b */
    uint8_t *batch_acked; /* per batch */
    uint8_t *sub;         /* per stream of the shard (relative): named in a SUBSCRIBE on this
                             link and not unsubscribed since */
    uint64_t last_send;   /* loop ms of the last request sent, 0 none */
    bool dirty;           /* a stream may need a SUBSCRIBE or UNSUBSCRIBE on this link */
    bool opened, subscribed, delivered, closed, dead;
    uint64_t opened_at, subscribed_at, last_ping; /* loop ms */
    int64_t first_event, last_event; /* exchange ms: first event since subscribed, newest */
    char last_error[256];            /* the exchange's last error reply on this connection */
} kf__link;

/*
 * One connection's worth of streams (at most streams_per_connection) and the connections
 * that carry them: the active link, plus a replacement while a rotation is under way (never
 * more than two). Its fields are the shard's own: the owner uses the functions below.
 */
typedef struct kf__shard {
    kf__shard_env env;
    size_t index;
    size_t first, count; /* streams [first, first + count) of env.streams */
    size_t cap;          /* count may grow to this (kf__shard_extend): the per-stream arrays */
    size_t max_batches;  /* SUBSCRIBE requests of a first subscription of cap streams */
    kf__link link[2];
    int cur;   /* the active link */
    char *req; /* SUBSCRIBE request buffer */
    size_t req_cap;
    SSL_CTX *ssl_ctx; /* this run's TLS context (kf__shard_start), borrowed */
    uv_timer_t tick;  /* liveness, pings, rotation, stale streams */
    uv_timer_t retry; /* reconnect after backoff */
    bool timers_init;
    bool counted_subscribed; /* reported subscribed to the owner */
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
    /* Published for readers on any thread (kf__shard_status): the active link's state. */
    _Atomic bool pub_up, pub_subscribed;
    _Atomic uint64_t pub_opened_at; /* loop ms the active link opened, 0 when down */
} kf__shard;

/* Sets the shard up for streams [first, first + count) of env->streams, with room to grow to
 * cap streams (kf__shard_extend; cap >= count) (env is copied; what it points to is borrowed).
 * A stream whose delisted flag is set is not subscribed. KF_ERR_NOMEM when out of memory
 * (kf__shard_free still applies). */
kf_err kf__shard_init(kf__shard *sh, const kf__shard_env *env, size_t index, size_t first,
                      size_t count, size_t cap);
/* The next n streams of env.streams (initialised) join the shard (count + n <= cap): each open
 * connection subscribes them (SUBSCRIBE requests paced under the message rate), a connection
 * opened later subscribes them with the others. No reconnect. */
void kf__shard_extend(kf__shard *sh, size_t n);
/* Stream si (one of the shard's) had its delisted flag set or cleared by the owner: each open
 * connection sends UNSUBSCRIBE (set) or SUBSCRIBE (cleared) for it, paced; a connection opened
 * later subscribes it only when not delisted. A delisted stream is not watched for silence
 * nor for closing updates. */
void kf__shard_listing_changed(kf__shard *sh, size_t si);
void kf__shard_free(kf__shard *sh);
/* Starts the shard on the loop: its timers and the first connection. ssl_ctx: required for
 * wss://, borrowed until kf__shard_release. */
kf_err kf__shard_start(kf__shard *sh, SSL_CTX *ssl_ctx);
/* Starts closing every connection of the shard (a stop). */
void kf__shard_close(kf__shard *sh);
/* True when no connection of the shard is still open or closing. */
bool kf__shard_all_closed(const kf__shard *sh);
/* Destroys the connections and closes the timers (after kf__shard_all_closed). */
void kf__shard_release(kf__shard *sh);
/* Stream si's closed candle open_time arrived by another way (REST): its closing update is no
 * longer awaited. si must be one of the shard's streams. */
void kf__shard_close_arrived(kf__shard *sh, size_t si, int64_t open_time);
/* The delay before the shard's next reconnect attempt (sh->attempt failures so far): full
 * jitter in [0, min(max, initial * 2^(attempt-1))] ms, drawn from env.rng. */
uint64_t kf__shard_retry_delay(kf__shard *sh);

/* For a stop (after the I/O thread ended): the newest exchange time (E, ms) an update of the
 * shard's streams carried (0 none), and whether the shard was without a subscribed connection
 * when the stop came (lost and not subscribed again). */
int64_t kf__shard_exchange_time(const kf__shard *sh);
bool kf__shard_was_down(const kf__shard *sh);

/* The active connection's state, for a reader on any thread: upgraded, subscribed, and the
 * loop time (ms, uv_now's clock: CLOCK_MONOTONIC) it opened at (0 when down). Atomics only. */
void kf__shard_status(const kf__shard *sh, bool *up, bool *subscribed, uint64_t *opened_at);

#endif
