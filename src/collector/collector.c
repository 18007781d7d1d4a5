/* kf_collector: create, start, stop, state, queries. The lifecycle around the shards. */
#include "collector/collector.h"

#include <errno.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "collector/validate.h"
#include "core/alloc.h"

/* Complete ranges are recorded in the stores this often (and at stop), so that a start checks
 * only what came after them. */
#define KF__COVER_EVERY_MS 60000
/* At most one "store queue full" line per this long; the rest are counted in it. */
#define KF__DROP_LOG_EVERY_MS 10000
/* kf_stop waits at most this long for the stores to take what is queued. */
#define KF__STOP_SINK_DEADLINE_MS 10000

static void errbuf_set(char *errbuf, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errbuf_set(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (!errbuf || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}

static void collector_set_error(kf_collector *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void collector_set_error(kf_collector *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&c->err_mu);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    pthread_mutex_unlock(&c->err_mu);
    va_end(ap);
}

/* ---- create / free ---- */

static void collector_shard_env(kf_collector *c, kf__shard_env *env);

static void collector_release(kf_collector *c)
{
    for (size_t i = 0; c->shards && i < c->nshards; i++)
        kf__shard_free(&c->shards[i]);
    kf__free(c->shards);
    for (size_t i = 0; c->streams && i < c->nstreams; i++)
        kf__stream_destroy(&c->streams[i]);
    kf__free(c->streams);
    kf__free((void *)c->last_update);
    kf__free(c->rings);
    kf__conn_budget_free(&c->budget);
    kf__stream_index_free(&c->index);
    kf__free(c->writers);
    kf__free(c->covers);
    kf__listing_diff_free(&c->list_pending);
    kf__free(c->refused);
    pthread_rwlock_destroy(&c->index_lock);
    pthread_mutex_destroy(&c->list_mu);
    kf__logger_destroy(&c->log);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->err_mu);
    pthread_mutex_destroy(&c->stop_mu);
    pthread_cond_destroy(&c->stop_cv);
    kf_config_free(c->cfg);
    kf__free(c);
}

kf_collector *kf_create(const kf_config *cfg, char *errbuf, size_t errlen)
{
    if (!cfg) {
        errbuf_set(errbuf, errlen, "no configuration given");
        return NULL;
    }
    size_t nint = 0;
    for (int i = 0; i < KF_INTERVAL_COUNT; i++)
        nint += cfg->intervals[i];
    if (!cfg->nsymbols || !nint) {
        errbuf_set(errbuf, errlen, "no %s configured: add at least one",
                   !cfg->nsymbols ? "symbol" : "interval");
        return NULL;
    }
    kf_collector *c = kf__calloc(1, sizeof *c);
    if (!c || !(c->cfg = kf__config_dup(cfg))) {
        kf__free(c);
        errbuf_set(errbuf, errlen, "out of memory");
        return NULL;
    }
    if (kf__config_apply_shard(c->cfg, errbuf, errlen) != KF_OK) {
        kf_config_free(c->cfg);
        kf__free(c);
        return NULL;
    }
    kf__logger_init(&c->log, cfg->log_fn, cfg->log_userdata, cfg->log_level);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_mutex_init(&c->err_mu, NULL);
    pthread_mutex_init(&c->stop_mu, NULL);
    pthread_cond_init(&c->stop_cv, NULL);
    pthread_rwlock_init(&c->index_lock, NULL);
    pthread_mutex_init(&c->list_mu, NULL);
    kf__rng_seed(&c->rng, c);
    c->next_id = 1;

    snprintf(c->ws_base, sizeof c->ws_base, "%s",
             cfg->ws_url    ? cfg->ws_url
             : cfg->testnet ? KF_WS_TESTNET
                            : KF_WS_MAINNET);
    snprintf(c->rest_base, sizeof c->rest_base, "%s",
             cfg->rest_url  ? cfg->rest_url
             : cfg->testnet ? KF_REST_TESTNET
                            : KF_REST_MAINNET);
    char err[512];
    if (kf__url_parse(c->ws_base, &c->ws_url, err, sizeof err) ||
        kf__url_parse(c->rest_base, &c->rest_url, err, sizeof err)) {
        errbuf_set(errbuf, errlen, "%s", err);
        collector_release(c);
        return NULL;
    }
    snprintf(c->ws_path, sizeof c->ws_path, "%s/ws", c->ws_url.path);
    if (!kf__fetch_state_path(cfg->state_dir, c->rest_base, c->rest_state, sizeof c->rest_state))
        c->rest_state[0] = 0;

    cfg = c->cfg; /* the shard's symbols from here on */
    if (cfg->shard_n)
        kf__log(&c->log, KF_LOG_INFO, "msg=\"shard\" shard=%u/%u symbols=%zu", cfg->shard_k,
                cfg->shard_n, cfg->nsymbols);
    size_t nstreams = cfg->nsymbols * nint;
    for (int i = 0; i < KF_INTERVAL_COUNT; i++)
        if (cfg->intervals[i])
            c->ivs[c->nint++] = i;
    /* Re-reading the symbols: room for the reserve, allocated now and zeroed (calloc: the pages
     * of what is not used are not touched), so that nothing moves while other threads read. */
    c->refresh = cfg->symbol_refresh_ms && cfg->exchange_symbols;
    c->cap_streams = nstreams + (c->refresh ? cfg->symbol_reserve * nint : 0);
    if (c->refresh)
        kf__log(&c->log, KF_LOG_INFO,
                "msg=\"symbols re-read while running\" refresh_ms=%u reserve_symbols=%zu "
                "reserve_streams=%zu",
                cfg->symbol_refresh_ms, cfg->symbol_reserve, c->cap_streams - nstreams);
    size_t cap = c->cap_streams;
    c->nstreams = nstreams;
    c->streams = kf__calloc(cap, sizeof *c->streams);
    c->last_update = kf__calloc(cap * 3, sizeof *c->last_update);
    if (c->last_update) {
        c->stream_gaps = c->last_update + cap;
        c->stream_repaired = c->last_update + 2 * cap;
    }
    size_t per = cfg->streams_per_connection;
    c->nshards = (nstreams + per - 1) / per;
    c->cap_shards = (cap + per - 1) / per;
    c->shards = kf__calloc(c->cap_shards, sizeof *c->shards);
    c->rings = kf__calloc(cap * cfg->ring_size, sizeof *c->rings);
    c->covers = kf__calloc(cap, sizeof *c->covers);
    bool ok =
        c->streams && c->last_update && c->shards && c->rings && c->covers &&
        kf__conn_budget_init(&c->budget, cfg->conn_budget, cfg->conn_budget_window_ms) == KF_OK;
    size_t k = 0;
    for (size_t s = 0; ok && s < cfg->nsymbols; s++)
        for (int i = 0; ok && i < KF_INTERVAL_COUNT; i++)
            if (cfg->intervals[i]) {
                ok = kf__stream_init(&c->streams[k], cfg->symbols[s], i,
                                     c->rings + k * cfg->ring_size, cfg->ring_size) == KF_OK;
                c->streams[k].shard = k / per;
                k++;
            }
    ok = ok && kf__stream_index_build(&c->index, c->streams, nstreams, cap) == KF_OK;
    kf__shard_env env;
    collector_shard_env(c, &env);
    for (size_t i = 0; ok && i < c->nshards; i++) {
        size_t first = i * per;
        size_t n = nstreams - first < per ? nstreams - first : per;
        ok = kf__shard_init(&c->shards[i], &env, i, first, n, c->refresh ? per : n) == KF_OK;
    }
    if (!ok) {
        errbuf_set(errbuf, errlen, "out of memory for %zu streams", cap);
        collector_release(c);
        return NULL;
    }
    return c;
}

void kf_free(kf_collector *c)
{
    if (!c)
        return;
    kf_stop(c); /* waits for a stop under way on another thread */
    /* ... whose waiters may still be on their way out of kf_stop: they leave before the free */
    pthread_mutex_lock(&c->stop_mu);
    while (c->stop_busy || c->stop_waiters)
        pthread_cond_wait(&c->stop_cv, &c->stop_mu);
    pthread_mutex_unlock(&c->stop_mu);
    collector_release(c);
}

/* ---- the I/O thread ---- */

static void collector_check_all_closed(kf_collector *c)
{
    for (size_t i = 0; i < c->nshards; i++)
        if (!kf__shard_all_closed(&c->shards[i]))
            return;
    for (size_t i = 0; i < c->nshards; i++)
        kf__shard_release(&c->shards[i]);
    if (!c->wake_closed) {
        c->wake_closed = true;
        uv_close((uv_handle_t *)&c->wake, NULL);
        if (c->cover_timer_init) {
            c->cover_timer_init = false;
            uv_close((uv_handle_t *)&c->cover_timer, NULL);
        }
        if (c->drain_timer_init) {
            c->drain_timer_init = false;
            uv_close((uv_handle_t *)&c->drain_timer, NULL);
        }
    }
}

/* Shards: kf_start() is still waiting for the first connections. Any thread. */
static bool collector_starting(void *owner)
{
    kf_collector *c = owner;
    pthread_mutex_lock(&c->mu);
    bool starting = !c->start_done;
    pthread_mutex_unlock(&c->mu);
    return starting;
}

/* ---- delivery: one place where closed candles become stored, from either source ---- */

/* The REST worker, for repairs: NULL when backfill is off (the worker may still run for the
 * symbol re-read). */
static kf__repair *collector_repairer(kf_collector *c)
{
    return c->cfg->backfill ? c->repair : NULL;
}

/* The "store queue full" line, at most once per KF__DROP_LOG_EVERY_MS (I/O thread). */
static void collector_log_drop(kf_collector *c, const kf__stream *s, const kf_kline *k, bool closed)
{
    int64_t now = (int64_t)uv_now(&c->loop);
    if (c->drop_log_ms && now - c->drop_log_ms < KF__DROP_LOG_EVERY_MS) {
        c->drop_unlogged++;
        return;
    }
    kf__log(&c->log, KF_LOG_WARN,
            "msg=\"store queue full: %s\" stream=%s open_time=%lld queue_rows=%zu "
            "dropped_since_last_line=%llu",
            closed ? "the candle is kept as missing and fetched again from REST once the stores "
                     "take rows"
                   : "open update not stored (its closed candle will be)",
            s->name, (long long)k->open_time, c->cfg->sink_queue_rows,
            (unsigned long long)c->drop_unlogged);
    c->drop_log_ms = now ? now : 1;
    c->drop_unlogged = 0;
}

/* Queues k in every store, or in none: a store that is full (down, or slower than the feed)
 * never makes the I/O thread wait. false when it did not fit. */
static bool collector_offer(kf_collector *c, const kf_kline *k)
{
    for (size_t i = 0; i < c->nwriters; i++)
        if (kf__writer_room(c->writers[i]) == 0)
            return false;
    for (size_t i = 0; i < c->nwriters; i++)
        kf__writer_offer(c->writers[i], k); /* room only grows: cannot fail */
    return true;
}

/* A new closed candle of stream si: callbacks (unless they had it already: filled holds
 * KF__HOLE_UNSTORED) and stores. One that no store can take now becomes a hole again. */
static void collector_store(kf_collector *c, size_t si, const kf_kline *k, unsigned filled)
{
    kf__stream *s = &c->streams[si];
    if (!(filled & KF__HOLE_UNSTORED)) {
        KF__STAT_INC(c, closed);
        if (c->cfg->on_closed)
            c->cfg->on_closed(c->cfg->on_closed_ud, k);
    }
    if (collector_offer(c, k))
        return;
    KF__STAT_INC(c, store_dropped);
    collector_log_drop(c, s, k, true);
    if (kf__stream_add_hole(s, k->open_time, k->open_time, KF__HOLE_UNSTORED) != KF_OK)
        kf__log(&c->log, KF_LOG_ERROR,
                "msg=\"out of memory: a candle no store took is not kept as missing; the next "
                "start finds it\" stream=%s open_time=%lld",
                s->name, (long long)k->open_time);
    kf__repair_request(collector_repairer(c), si, KF__NO_TAIL);
}

/* Shards, I/O thread: applies a WebSocket update to stream si: state, ring, callbacks, sinks,
 * and a REST request for any gap it reveals. */
static void collector_deliver_ws(void *owner, size_t si, const kf_kline *k)
{
    kf_collector *c = owner;
    const kf_config *cfg = c->cfg;
    kf__stream *s = &c->streams[si];
    kf__gap gap;
    kf__apply r = kf__stream_apply(s, k, &gap);
    atomic_store_explicit(&c->last_update[si], uv_now(&c->loop), memory_order_relaxed);
    if (!c->first_event_ms)
        c->first_event_ms = k->event_time;
    if (cfg->on_kline)
        cfg->on_kline(cfg->on_kline_ud, k);
    if (r == KF__APPLY_CLOSED) {
        collector_store(c, si, k, gap.filled);
        if (gap.from <= gap.to) {
            uint64_t ng = kf__interval_count(s->interval, gap.from, gap.to);
            KF__STAT_ADD(c, gaps, ng);
            atomic_fetch_add_explicit(&c->stream_gaps[si], ng, memory_order_relaxed);
            kf__log(&c->log, KF_LOG_WARN,
                    "msg=\"gap: closed candles missing\" stream=%s from=%lld to=%lld%s", s->name,
                    (long long)gap.from, (long long)gap.to,
                    gap.nomem ? " error=\"out of memory: not kept; the next start finds them\""
                              : "");
            kf__repair_request(collector_repairer(c), si, KF__NO_TAIL);
        }
    } else if (r == KF__APPLY_DUPLICATE) {
        KF__STAT_INC(c, duplicates);
    } else if (r == KF__APPLY_UPDATE && cfg->sink_all_updates && !collector_offer(c, k)) {
        KF__STAT_INC(c, updates_dropped);
        collector_log_drop(c, s, k, false);
    }
}

/* REST worker, I/O thread: applies a closed candle fetched from REST to stream si (stores it if
 * new). */
static void collector_deliver_rest(void *owner, size_t si, const kf_kline *k)
{
    kf_collector *c = owner;
    kf__stream *s = &c->streams[si];
    kf__gap gap;
    kf__apply r = kf__stream_apply(s, k, &gap);
    if (r == KF__APPLY_CLOSED) {
        KF__STAT_INC(c, backfilled);
        atomic_fetch_add_explicit(&c->stream_repaired[si], 1, memory_order_relaxed);
        kf__shard_close_arrived(&c->shards[s->shard], si, k->open_time);
        collector_store(c, si, k, gap.filled);
    } else if (r == KF__APPLY_DUPLICATE) {
        KF__STAT_INC(c, duplicates);
    }
}

/* Asks REST for stream si's closed candles after the newest one it knows, up to now. */
static void collector_repair_after_last(void *owner, size_t si)
{
    kf_collector *c = owner;
    const kf__stream *s = &c->streams[si];
    if (collector_repairer(c) && s->has_closed)
        kf__repair_request(c->repair, si, kf__interval_next(s->interval, s->last_closed));
}

/* REST worker, I/O thread: the outcome of a REST request for stream si over [from, to] whose
 * answer established every closed candle up to covered: holes in [from, covered] the exchange
 * did not return do not exist (they leave the holes, counted as absent); then the worker is
 * told what comes next (kf__repair_applied). */
static void collector_repair_done(void *owner, size_t si, int64_t from, int64_t to, int64_t covered,
                                  kf_err err)
{
    kf_collector *c = owner;
    kf__stream *s = &c->streams[si];
    int64_t upto = covered < to ? covered : to;
    if (upto >= from) {
        uint64_t n = kf__stream_absent(s, from, upto);
        if (n) {
            KF__STAT_ADD(c, absent, n);
            kf__log(&c->log, KF_LOG_WARN,
                    "msg=\"the exchange has no such candles: no longer asked\" stream=%s "
                    "from=%lld to=%lld candles=%llu",
                    s->name, (long long)from, (long long)upto, (unsigned long long)n);
        }
    }
    if (err)
        KF__STAT_INC(c, repair_failures);
    kf__hole h;
    bool more = kf__stream_holes(s, &h, 1) > 0;
    /* holes left past what the answer established: the exchange's present was reached (its
     * REST view may lag a little): ask again shortly, not at once */
    int64_t delay = more && h.from > upto && h.from <= to ? 1000 : 0;
    kf__repair_applied(c->repair, si, err != KF_OK, delay, more);
}

/* REST worker: every store takes rows (kf__writer_healthy). Any thread while running. */
static bool collector_sinks_ready(void *owner)
{
    kf_collector *c = owner;
    for (size_t i = 0; i < c->nwriters; i++)
        if (!kf__writer_healthy(c->writers[i]))
            return false;
    return true;
}

/* Queues, in every store that records them, each stream's complete range: behind the rows
 * already queued, so a range is never recorded before its rows. I/O thread, or the thread that
 * owns the collector while the I/O thread does not run. */
static void collector_record_covers(kf_collector *c)
{
    size_t n = 0;
    for (size_t si = 0; si < c->nstreams; si++) {
        kf__stream *s = &c->streams[si];
        kf__cover *cv = &c->covers[n];
        if (!kf__stream_cover(s, &cv->from, &cv->to))
            continue;
        memcpy(cv->symbol, s->symbol, sizeof cv->symbol);
        snprintf(cv->interval, sizeof cv->interval, "%s", kf_interval_name(s->interval));
        n++;
    }
    for (size_t i = 0; n && i < c->nwriters; i++)
        if (kf__writer_cover(c->writers[i], c->covers, n) != KF_OK)
            kf__log(&c->log, KF_LOG_WARN,
                    "msg=\"out of memory: complete ranges not recorded; the next start checks "
                    "more\"");
}

static void collector_on_cover_timer(uv_timer_t *t)
{
    kf_collector *c = t->data;
    if (!atomic_load(&c->stopping))
        collector_record_covers(c);
}

/* REST rows wait while a store is full: applied again this often until they are all in. */
#define KF__DRAIN_RETRY_MS 20

static void collector_drain(kf_collector *c);

static void collector_on_drain_timer(uv_timer_t *t)
{
    collector_drain(t->data);
}

static void collector_drain(kf_collector *c)
{
    if (!kf__repair_drain(c->repair) && c->drain_timer_init && !atomic_load(&c->stopping))
        uv_timer_start(&c->drain_timer, collector_on_drain_timer, KF__DRAIN_RETRY_MS, 0);
}

static void collector_apply_listing(kf_collector *c);

static void collector_on_wake(uv_async_t *a)
{
    kf_collector *c = a->data;
    collector_drain(c);
    if (!atomic_load(&c->stopping)) {
        collector_apply_listing(c);
        return;
    }
    for (size_t i = 0; i < c->nshards; i++)
        kf__shard_close(&c->shards[i]);
    collector_check_all_closed(c);
}

static void start_signal(kf_collector *c, kf_err err)
{
    pthread_mutex_lock(&c->mu);
    if (!c->start_done) {
        c->start_done = true;
        c->start_err = err;
        pthread_cond_broadcast(&c->cv);
    }
    pthread_mutex_unlock(&c->mu);
}

/* Shards, I/O thread: the exchange answered one of the SUBSCRIBE requests on url with an error
 * reply (what: the request id, code and message): kf_wait_connected returns KF_ERR_SUBSCRIBE
 * until every shard is subscribed. */
static void collector_subscribe_refused(void *owner, size_t shard, const char *url,
                                        const char *what)
{
    kf_collector *c = owner;
    (void)shard;
    pthread_mutex_lock(&c->mu);
    snprintf(c->sub_error, sizeof c->sub_error, "%.600s: %s", url, what);
    c->sub_refused = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* I/O thread: every shard is subscribed (kf_connected() is true): the refusal is over, and
 * kf_wait_connected returns. */
static void collector_all_subscribed(kf_collector *c)
{
    pthread_mutex_lock(&c->mu);
    c->sub_refused = false;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Shards, I/O thread: a shard's connection opened. */
static void collector_shard_opened(void *owner, size_t shard)
{
    kf_collector *c = owner;
    (void)shard;
    if (++c->shards_opened == c->nshards)
        start_signal(c, KF_OK);
}

/* Shards, I/O thread: a connection closed during kf_start (the start failed) or kf_stop. */
static void collector_shard_closed(void *owner, size_t shard, kf_err err, const char *why)
{
    kf_collector *c = owner;
    if (atomic_load(&c->stopping)) {
        kf__log(&c->log, KF_LOG_DEBUG, "msg=\"connection closed\" shard=%zu why=\"%s\"", shard,
                why);
        collector_check_all_closed(c);
        return;
    }
    /* during kf_start: the first connection failed, kf_start() returns the cause */
    collector_set_error(c, "%s", why);
    kf__log(&c->log, KF_LOG_ERROR, "msg=\"connection failed\" shard=%zu err=\"%s\" why=\"%s\"",
            shard, kf_strerror(err), why);
    start_signal(c, err ? err : KF_ERR_CONNECT);
}

/* Shards, I/O thread: a shard became subscribed (on) or stopped being so: kf_connected() is
 * true while every shard is. */
static void collector_shard_subscribed(void *owner, size_t shard, bool on)
{
    kf_collector *c = owner;
    (void)shard;
    if (!on) {
        atomic_fetch_sub(&c->shards_subscribed, 1);
        return;
    }
    size_t n = atomic_fetch_add(&c->shards_subscribed, 1) + 1;
    if (n == c->nshards) {
        kf__log(&c->log, KF_LOG_INFO, "msg=\"all streams subscribed\" streams=%zu connections=%zu",
                c->nstreams, c->nshards);
        collector_all_subscribed(c);
    }
}

static void collector_shard_error(void *owner, size_t shard, const char *msg)
{
    (void)shard;
    collector_set_error(owner, "%s", msg);
}

/* Shards, I/O thread: a candle's closing update never came. */
static void collector_repair_candle(void *owner, size_t si, int64_t open_time)
{
    kf_collector *c = owner;
    kf__repair_request(collector_repairer(c), si, open_time);
}

static bool collector_stopping(void *owner)
{
    kf_collector *c = owner;
    return atomic_load(&c->stopping);
}

/* REST worker thread: rows or outcomes wait for the I/O thread (collector_on_wake drains). */
static void collector_repair_wake(void *owner)
{
    kf_collector *c = owner;
    uv_async_send(&c->wake);
}

/* ---- the symbol re-read (kf_config_set_symbol_refresh) ---- */

/* The answer being read, on the REST thread. */
typedef struct list_answer {
    kf__listed *v;
    size_t n, cap;
    bool nomem;
} list_answer;

static void list_on_symbol(void *ud, const kf__exchange_symbol *e)
{
    list_answer *a = ud;
    kf__listed *p = kf__grow(a->v, &a->cap, a->n + 1, sizeof *p, 256);
    if (!p) {
        a->nomem = true;
        return;
    }
    a->v = p;
    kf__listed *l = &a->v[a->n++];
    memset(l, 0, sizeof *l);
    snprintf(l->symbol, sizeof l->symbol, "%s", e->symbol);
    l->trading = strcmp(e->status, "TRADING") == 0;
    l->usdt_perpetual =
        strcmp(e->contract_type, "PERPETUAL") == 0 && strcmp(e->quote_asset, "USDT") == 0;
    l->onboard = e->onboard_date;
}

/* What the collector holds now, one entry per symbol (its streams are consecutive). Any thread:
 * the streams published (nstreams) are initialised, their symbols never change. NULL when out
 * of memory. */
static kf__held *collector_held(kf_collector *c, size_t *n)
{
    size_t ns = atomic_load(&c->nstreams);
    kf__held *h = kf__calloc(ns ? ns : 1, sizeof *h);
    *n = 0;
    if (!h)
        return NULL;
    for (size_t i = 0; i < ns; i++) {
        const kf__stream *s = &c->streams[i];
        if (*n && strcmp(h[*n - 1].symbol, s->symbol) == 0)
            continue;
        memcpy(h[*n].symbol, s->symbol, sizeof h[*n].symbol);
        h[*n].delisted = atomic_load(&s->delisted);
        (*n)++;
    }
    return h;
}

/* REST thread, every refresh period: reads exchangeInfo (under the worker's weight budget),
 * decides what changed (kf__listing_compare) and hands it to the I/O thread. A failure changes
 * nothing: logged, counted, asked again at the next period. */
static void collector_list(void *owner, kf__fetcher *f)
{
    kf_collector *c = owner;
    list_answer a = {0};
    char err[1024] = "";
    kf_err e = kf__fetcher_exchange_symbols(f, list_on_symbol, &a, err, sizeof err);
    if (e == KF_ERR_NOT_RUNNING) { /* stopping */
        kf__free(a.v);
        return;
    }
    if (!e && a.nomem) {
        e = KF_ERR_NOMEM;
        snprintf(err, sizeof err, "out of memory for the symbols of exchangeInfo");
    }
    size_t nheld = 0;
    kf__held *held = e ? NULL : collector_held(c, &nheld);
    kf__listing_diff d;
    memset(&d, 0, sizeof d);
    if (!e && (!held || kf__listing_compare(a.v, a.n, held, nheld, c->cfg->shard_k, c->cfg->shard_n,
                                            &d) != KF_OK)) {
        e = KF_ERR_NOMEM;
        snprintf(err, sizeof err, "out of memory comparing the symbols");
    }
    kf__free(held);
    size_t listed = a.n;
    kf__free(a.v);
    if (e) {
        KF__STAT_INC(c, symbol_refresh_failures); /* (this thread is its only writer) */
        kf__log(&c->log, KF_LOG_WARN,
                "msg=\"symbol refresh failed: the symbols are kept, asked again at the next "
                "refresh\" err=\"%s\" why=\"%s\" refresh_ms=%u",
                kf_strerror(e), err, c->cfg->symbol_refresh_ms);
        return;
    }
    kf__log(&c->log, KF_LOG_DEBUG,
            "msg=\"symbols re-read\" listed=%zu collected=%zu to_add=%zu to_delist=%zu", listed,
            d.active, d.nadd, d.ndrop);
    if (d.drops_refused) {
        kf__log(&c->log, KF_LOG_ERROR,
                "msg=\"symbol refresh: delistings not applied: the answer looks wrong\" "
                "why=\"%s\" would_delist=%zu collected=%zu first=%s listed=%zu",
                d.why, d.ndrop, d.active, d.drop[0].symbol, listed);
        d.ndrop = 0;
    }
    if (!d.nadd && !d.ndrop) {
        kf__listing_diff_free(&d);
        return;
    }
    pthread_mutex_lock(&c->list_mu);
    kf__listing_diff_free(&c->list_pending); /* an older one not applied yet: this one has it */
    c->list_pending = d;
    c->list_has = true;
    pthread_mutex_unlock(&c->list_mu);
    uv_async_send(&c->wake);
}

/* I/O thread: where a new symbol's closed candles are fetched from: its listing (onboardDate),
 * but not before this run's first update (the exchange's clock) unless a first-run time is
 * configured (kf_config_set_backfill_from), which then takes its place. */
static int64_t collector_listing_from(const kf_collector *c, int64_t onboard)
{
    int64_t floor = c->cfg->has_backfill_from ? c->cfg->backfill_from
                    : c->first_event_ms       ? c->first_event_ms
                                              : onboard;
    return onboard > floor ? onboard : floor;
}

/* I/O thread: the symbol's streams are delisted: unsubscribed, kept in place. */
static void collector_delist(kf_collector *c, const char *symbol)
{
    long changed[KF_INTERVAL_COUNT];
    size_t n = 0;
    for (size_t k = 0; k < c->nint; k++) {
        long si = kf__stream_index_find(&c->index, c->streams, symbol, strlen(symbol), c->ivs[k]);
        if (si < 0 || atomic_load(&c->streams[si].delisted))
            continue;
        atomic_store(&c->streams[si].delisted, true);
        changed[n++] = si;
    }
    /* (every flag first: one UNSUBSCRIBE names them all) */
    for (size_t i = 0; i < n; i++)
        kf__shard_listing_changed(&c->shards[c->streams[changed[i]].shard], (size_t)changed[i]);
    if (!n)
        return;
    KF__STAT_INC(c, symbols_delisted);
    kf__log(&c->log, KF_LOG_WARN,
            "msg=\"symbol delisted\" symbol=%s streams=%zu hint=\"no longer TRADING in "
            "exchangeInfo: unsubscribed, its candles after this are not expected\"",
            symbol, n);
}

/* I/O thread: a delisted symbol is listed again: its streams, in place, subscribed again;
 * what it lacks since its newest candle is asked of REST. */
static void collector_relist(kf_collector *c, const kf__listed *l)
{
    long changed[KF_INTERVAL_COUNT];
    size_t n = 0;
    for (size_t k = 0; k < c->nint; k++) {
        long si =
            kf__stream_index_find(&c->index, c->streams, l->symbol, strlen(l->symbol), c->ivs[k]);
        if (si < 0 || !atomic_load(&c->streams[si].delisted))
            continue;
        atomic_store(&c->streams[si].delisted, false);
        changed[n++] = si;
    }
    for (size_t i = 0; i < n; i++) { /* (every flag first: one SUBSCRIBE names them all) */
        kf__stream *s = &c->streams[changed[i]];
        kf__shard_listing_changed(&c->shards[s->shard], (size_t)changed[i]);
        if (s->has_closed)
            collector_repair_after_last(c, (size_t)changed[i]);
    }
    if (!n)
        return;
    KF__STAT_INC(c, symbols_listed);
    kf__log(&c->log, KF_LOG_INFO, "msg=\"symbol listed again\" symbol=%s streams=%zu", l->symbol,
            n);
}

static bool collector_was_refused(kf_collector *c, const char *symbol)
{
    for (size_t i = 0; i < c->nrefused; i++)
        if (strcmp(c->refused[i], symbol) == 0)
            return true;
    return false;
}

/* I/O thread: a listing that does not fit (reserve spent, out of memory): logged and counted
 * once per symbol. */
static void collector_refuse(kf_collector *c, const kf__listed *l, const char *why)
{
    if (collector_was_refused(c, l->symbol))
        return;
    char(*p)[KF_SYMBOL_MAX + 1] =
        kf__grow(c->refused, &c->refused_cap, c->nrefused + 1, sizeof *p, 16);
    if (p) {
        c->refused = p;
        memcpy(c->refused[c->nrefused++], l->symbol, sizeof *p);
    }
    KF__STAT_INC(c, symbols_refused);
    kf__log(&c->log, KF_LOG_ERROR,
            "msg=\"new symbol not collected: %s\" symbol=%s streams=%zu capacity=%zu "
            "reserve_symbols=%zu hint=\"a restart collects it; raise the reserve "
            "(kf_config_set_symbol_reserve, --symbols-reserve)\"",
            why, l->symbol, atomic_load(&c->nstreams), c->cap_streams, c->cfg->symbol_reserve);
}

/* I/O thread: a new symbol: its streams appended (the last connection extended while it has
 * room, else new connections), published, subscribed, and its candles since its listing asked
 * of REST. */
static void collector_add_symbol(kf_collector *c, const kf__listed *l)
{
    const kf_config *cfg = c->cfg;
    size_t base = atomic_load(&c->nstreams), nint = c->nint;
    if (base + nint > c->cap_streams) {
        collector_refuse(c, l, "the reserve is spent");
        return;
    }
    size_t per = cfg->streams_per_connection;
    size_t ns = atomic_load(&c->nshards);
    size_t room = ns ? per - c->shards[ns - 1].count : 0;
    size_t to_last = room < nint ? room : nint;
    for (size_t k = 0; k < nint; k++) {
        kf__stream *s = &c->streams[base + k];
        if (kf__stream_init(s, l->symbol, c->ivs[k], c->rings + (base + k) * cfg->ring_size,
                            cfg->ring_size) != KF_OK) {
            for (size_t j = 0; j < k; j++)
                kf__stream_destroy(&c->streams[base + j]);
            memset(&c->streams[base], 0, nint * sizeof *c->streams);
            collector_refuse(c, l, "its name is refused");
            return;
        }
        s->added = true;
        s->shard = k < to_last ? ns - 1 : ns + (k - to_last) / per;
    }
    /* new connections for what the last one cannot take */
    size_t nnew = nint > to_last ? (nint - to_last + per - 1) / per : 0;
    kf__shard_env env;
    collector_shard_env(c, &env);
    bool ok = ns + nnew <= c->cap_shards;
    size_t inited = 0;
    for (size_t j = 0; ok && j < nnew; j++, inited++) {
        size_t first = base + to_last + j * per;
        size_t cnt = base + nint - first < per ? base + nint - first : per;
        ok = kf__shard_init(&c->shards[ns + j], &env, ns + j, first, cnt, per) == KF_OK;
        if (!ok)
            kf__shard_free(&c->shards[ns + j]);
    }
    if (!ok) {
        for (size_t j = 0; j < inited; j++)
            kf__shard_free(&c->shards[ns + j]);
        for (size_t k = 0; k < nint; k++)
            kf__stream_destroy(&c->streams[base + k]);
        memset(&c->streams[base], 0, nint * sizeof *c->streams);
        collector_refuse(c, l, "out of memory for its connection");
        return;
    }
    int64_t from = collector_listing_from(c, l->onboard);
    bool backfill = collector_repairer(c) && from > 0;
    for (size_t k = 0; backfill && k < nint; k++) {
        kf__stream *s = &c->streams[base + k];
        int64_t f = kf__interval_floor(s->interval, from);
        kf__stream_resume(s, kf__interval_prev(s->interval, f)); /* as if the one before were
                                                                     stored: REST asks from f */
        kf__stream_set_cover_from(s, f);
    }
    pthread_rwlock_wrlock(&c->index_lock);
    for (size_t k = 0; k < nint; k++)
        kf__stream_index_add(&c->index, c->streams, base + k);
    pthread_rwlock_unlock(&c->index_lock);
    /* published: the connections first (a stream's connection exists when it is seen) */
    c->nshards = ns + nnew;
    c->nstreams = base + nint;
    if (to_last)
        kf__shard_extend(&c->shards[ns - 1], to_last);
    for (size_t j = 0; j < nnew; j++) {
        kf_err e = kf__shard_start(&c->shards[ns + j], c->ssl_ctx);
        if (e != KF_OK) /* (a later reconnect retries; out of memory for the connection) */
            kf__log(&c->log, KF_LOG_ERROR,
                    "msg=\"connection for a new symbol not opened\" shard=%zu err=\"%s\"", ns + j,
                    kf_strerror(e));
    }
    for (size_t k = 0; backfill && k < nint; k++) {
        kf__stream *s = &c->streams[base + k];
        kf__repair_request(c->repair, base + k, kf__interval_next(s->interval, s->last_closed));
    }
    KF__STAT_INC(c, symbols_listed);
    kf__log(&c->log, KF_LOG_INFO,
            "msg=\"symbol listed\" symbol=%s streams=%zu onboard=%lld backfill_from=%lld "
            "connections=%zu new_connections=%zu",
            l->symbol, nint, (long long)l->onboard, backfill ? (long long)from : -1LL, ns + nnew,
            nnew);
}

/* I/O thread (wake): applies the latest re-read's difference, each item checked against what
 * is held now (the REST thread decided on what was published then). */
static void collector_apply_listing(kf_collector *c)
{
    if (!c->refresh)
        return;
    pthread_mutex_lock(&c->list_mu);
    kf__listing_diff d = c->list_pending;
    bool has = c->list_has;
    memset(&c->list_pending, 0, sizeof c->list_pending);
    c->list_has = false;
    pthread_mutex_unlock(&c->list_mu);
    if (!has)
        return;
    for (size_t i = 0; i < d.ndrop; i++)
        collector_delist(c, d.drop[i].symbol);
    for (size_t i = 0; i < d.nadd; i++) {
        const kf__listed *l = &d.add[i];
        if (kf__stream_index_find(&c->index, c->streams, l->symbol, strlen(l->symbol), c->ivs[0]) >=
            0)
            collector_relist(c, l);
        else
            collector_add_symbol(c, l);
    }
    kf__listing_diff_free(&d);
}

static const kf__shard_ops collector_shard_ops = {
    .deliver = collector_deliver_ws,
    .opened = collector_shard_opened,
    .closed = collector_shard_closed,
    .subscribed = collector_shard_subscribed,
    .subscribe_refused = collector_subscribe_refused,
    .error = collector_shard_error,
    .repair_after_last = collector_repair_after_last,
    .repair_candle = collector_repair_candle,
    .starting = collector_starting,
    .stopping = collector_stopping,
};

static const kf__repair_ops collector_repair_ops = {
    .sinks_ready = collector_sinks_ready,
    .deliver = collector_deliver_rest,
    .done = collector_repair_done,
    .wake = collector_repair_wake,
    .list = collector_list,
};

/* What every shard of c is given (kf_create). */
static void collector_shard_env(kf_collector *c, kf__shard_env *env)
{
    const kf_config *cfg = c->cfg;
    *env = (kf__shard_env){
        .loop = &c->loop,
        .set =
            {
                .names_per_subscribe = cfg->names_per_subscribe,
                .messages_per_second = cfg->messages_per_second,
                .connect_timeout_ms = cfg->connect_timeout_ms,
                .max_message = cfg->max_message_size,
                .backoff_initial_ms = cfg->backoff_initial_ms,
                .backoff_max_ms = cfg->backoff_max_ms,
                .ping_interval_ms = cfg->ping_interval_ms,
                .dead_after_ms = cfg->dead_after_ms,
                .max_age_ms = cfg->max_age_ms,
                .on_raw = cfg->on_raw,
                .on_raw_ud = cfg->on_raw_ud,
            },
        .log = &c->log,
        .st = &c->st,
        .streams = c->streams,
        .index = &c->index,
        .url = &c->ws_url,
        .path = c->ws_path,
        .budget = &c->budget,
        .rng = &c->rng,
        .next_id = &c->next_id,
        .ops = &collector_shard_ops,
        .owner = c,
    };
}

/* The REST worker of c (kf_start, with backfill on). NULL with err set on failure. */
static kf__repair *collector_repair_new(kf_collector *c, char *err, size_t errlen)
{
    kf__repair_env env = {
        .streams = c->streams,
        .nstreams = c->cap_streams,
        .list_every_ms = c->refresh ? c->cfg->symbol_refresh_ms : 0,
        .log = &c->log,
        .fetch =
            {
                .rest_base = c->rest_base,
                .tls_verify = c->cfg->tls_verify,
                .ca_file = c->cfg->ca_file,
                .weight_budget = c->cfg->rest_weight_budget,
                .timeout_ms = c->cfg->connect_timeout_ms,
                .log = &c->log,
                .state_path = c->rest_state[0] ? c->rest_state : NULL,
            },
        .ops = &collector_repair_ops,
        .owner = c,
    };
    return kf__repair_new(&env, err, errlen);
}

/* The collector whose I/O thread the calling thread is, NULL on any other thread: kf_stop from a
 * callback is refused without reading state that another thread's kf_stop is changing. */
static _Thread_local const kf_collector *io_thread_of;

static void *collector_io_main(void *arg)
{
    kf_collector *c = arg;
    io_thread_of = c;
    pthread_setname_np(pthread_self(), "kf-io");
    if (c->repair) {
        uv_timer_init(&c->loop, &c->drain_timer);
        c->drain_timer.data = c;
        c->drain_timer_init = true;
    }
    if (c->nwriters) {
        uv_timer_init(&c->loop, &c->cover_timer);
        c->cover_timer.data = c;
        c->cover_timer_init = true;
        uv_timer_start(&c->cover_timer, collector_on_cover_timer, KF__COVER_EVERY_MS,
                       KF__COVER_EVERY_MS);
    }
    for (size_t i = 0; i < c->nshards; i++) {
        kf_err e = kf__shard_start(&c->shards[i], c->ssl_ctx);
        if (e == KF_ERR_NOMEM) {
            collector_set_error(c, "out of memory for connection %zu", i);
            start_signal(c, e);
        }
    }
    uv_run(&c->loop, UV_RUN_DEFAULT);
    return NULL;
}

static SSL_CTX *collector_ssl_ctx(kf_collector *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (c->cfg->tls_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        int ok = c->cfg->ca_file ? SSL_CTX_load_verify_locations(ctx, c->cfg->ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths(ctx);
        if (!ok) {
            snprintf(err, errlen, "cannot load CA certificates from %s",
                     c->cfg->ca_file ? c->cfg->ca_file : "the system store");
            SSL_CTX_free(ctx);
            return NULL;
        }
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    }
    return ctx;
}

/* Joins the I/O thread (after asking it to stop) and releases the loop. */
static void collector_stop_io(kf_collector *c)
{
    if (!c->io_started)
        return;
    atomic_store(&c->stopping, true);
    pthread_mutex_lock(&c->mu); /* kf_wait_connected returns KF_ERR_NOT_RUNNING */
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    uv_async_send(&c->wake);
    pthread_join(c->io_thread, NULL);
    c->io_started = false;
    uv_loop_close(&c->loop);
    if (c->ssl_ctx)
        SSL_CTX_free(c->ssl_ctx);
    c->ssl_ctx = NULL;
    atomic_store(&c->shards_subscribed, 0);
}

/* Stops every writer (draining and flushing its queue) within one deadline and keeps its
 * counters. KF_ERR_SINK (message set) when a store was left with rows it did not take. */
static kf_err collector_close_writers_how(kf_collector *c, bool discard);

static kf_err collector_close_writers(kf_collector *c)
{
    return collector_close_writers_how(c, false);
}

/* A start that failed: like collector_close_writers, and a store it created is removed when
 * nothing was stored in it (no empty klines.db left behind by a start without network). */
static void collector_discard_writers(kf_collector *c)
{
    collector_close_writers_how(c, true);
}

static void collector_stores_hold_missing(kf_collector *c);

static kf_err collector_close_writers_how(kf_collector *c, bool discard)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t deadline = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + KF__STOP_SINK_DEADLINE_MS;
    kf_err result = KF_OK;
    for (size_t i = 0; i < c->nwriters; i++)
        if (kf__writer_stop_by(c->writers[i], deadline) != KF_OK)
            result = KF_ERR_SINK;
    if (!discard && result == KF_OK && c->shards)
        collector_stores_hold_missing(c);
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nwriters; i++) {
        kf__writer_stats ws;
        kf__writer_get_stats(c->writers[i], &ws);
        c->sink_rows_done += ws.rows;
        c->sink_errors_done += ws.errors;
        c->sink_unstored_done += ws.unstored;
        c->sink_rejected_done += ws.rejected;
        if (ws.unstored)
            collector_set_error(c,
                                "%s: %llu candles not stored before the stop deadline (the "
                                "next start finds them missing and fetches them)",
                                c->cfg->sinks[i], (unsigned long long)ws.unstored);
        if (discard)
            kf__writer_discard(c->writers[i]);
        else
            kf__writer_free(c->writers[i]);
    }
    c->nwriters = 0;
    pthread_mutex_unlock(&c->mu);
    return result;
}

/* ---- start / stop ---- */

/* ---- at start: what the stores hold, and what they lack ---- */

/* What one store holds of one stream, read at start: every run of open times missing between
 * its candles becomes a hole (c->scan_holes), then its first and last. */
typedef struct scan_state {
    kf_collector *c;
    int interval;
    bool have; /* a stored candle (or a range recorded complete) seen */
    int64_t first, last;
    bool nomem;
} scan_state;

static bool scan_hole(kf_collector *c, int64_t from, int64_t to)
{
    kf__hole *p = kf__grow(c->scan_holes, &c->scan_cap, c->nscan + 1, sizeof *p, 64);
    if (!p)
        return false;
    c->scan_holes = p;
    c->scan_holes[c->nscan++] = (kf__hole){from, to, 0};
    return true;
}

static int scan_time(void *ud, int64_t t)
{
    scan_state *sc = ud;
    if (!sc->have) {
        sc->have = true;
        sc->first = t;
    } else {
        int64_t next = kf__interval_next(sc->interval, sc->last);
        if (t > next && !scan_hole(sc->c, next, kf__interval_prev(sc->interval, t))) {
            sc->nomem = true;
            return 1;
        }
    }
    if (t > sc->last || sc->first == t)
        sc->last = t;
    return 0;
}

/*
 * Reads what every store holds of stream si and sets the stream up from it: it resumes after
 * the newest candle that every store holding some has (the tail after it is asked of REST), and
 * every run missing between stored candles, in any store, is a hole (asked of REST) - so a crash
 * at any moment loses nothing that was known to be missing, or written half-way. A store that
 * recorded a complete range is checked only after it. With a first-run time, a store holding
 * nothing before it, or nothing at all, has the difference as a hole too.
 * Returns KF_ERR_SINK with err set when a store cannot be read (corrupt, unreadable).
 */
static kf_err collector_scan_stream(kf_collector *c, size_t si, char *err, size_t errlen)
{
    kf__stream *s = &c->streams[si];
    const char *ivn = kf_interval_name(s->interval);
    bool bf = c->cfg->has_backfill_from;
    int64_t bf_from = bf ? kf__interval_ceil(s->interval, c->cfg->backfill_from) : 0;
    bool any = false, any_empty = false;
    int64_t resume = INT64_MAX, cover_from = INT64_MIN;
    c->nscan = 0;
    for (size_t w = 0; w < c->nwriters; w++) {
        void *state;
        const kf__sink_ops *ops = kf__writer_ops(c->writers[w], &state);
        if (!ops->stored)
            continue;
        scan_state sc = {.c = c, .interval = s->interval};
        int found = 0;
        int64_t cf = 0, ct = 0;
        if (ops->get_cover &&
            ops->get_cover(state, s->symbol, ivn, &cf, &ct, &found, err, errlen) != KF_OK)
            return KF_ERR_SINK;
        if (found) {
            sc.have = true;
            sc.first = cf;
            sc.last = ct;
        }
        kf_err e = ops->stored(state, s->symbol, ivn,
                               found ? kf__interval_next(s->interval, ct) : INT64_MIN, scan_time,
                               &sc, err, errlen);
        if (e == KF_ERR_NOT_FOUND) /* this store cannot tell what it holds (standard output) */
            continue;
        if (e)
            return KF_ERR_SINK;
        if (sc.nomem) {
            snprintf(err, errlen, "out of memory reading what the stores hold of %s", s->name);
            return KF_ERR_NOMEM;
        }
        if (!sc.have) {
            any_empty = true;
            continue;
        }
        any = true;
        if (sc.last < resume)
            resume = sc.last;
        if (sc.first > cover_from)
            cover_from = sc.first;
        if (bf && sc.first > bf_from &&
            !scan_hole(c, bf_from, kf__interval_prev(s->interval, sc.first))) {
            snprintf(err, errlen, "out of memory reading what the stores hold of %s", s->name);
            return KF_ERR_NOMEM;
        }
    }
    if (any && bf && any_empty && !scan_hole(c, bf_from, resume)) {
        snprintf(err, errlen, "out of memory reading what the stores hold of %s", s->name);
        return KF_ERR_NOMEM;
    }
    if (!any && !bf)
        return KF_OK; /* nothing known: start from the live stream */
    if (!any)
        resume = kf__interval_prev(s->interval, bf_from); /* as if the one before were stored */
    if (bf)
        cover_from = bf_from;
    else if (any_empty) /* an empty store holds only what comes after the resume point */
        cover_from = kf__interval_next(s->interval, resume);
    kf__stream_resume(s, resume);
    kf__stream_set_cover_from(s, cover_from);
    for (size_t i = 0; i < c->nscan; i++)
        if (kf__stream_add_hole(s, c->scan_holes[i].from, c->scan_holes[i].to, 0) != KF_OK) {
            snprintf(err, errlen, "out of memory keeping what the stores lack of %s", s->name);
            return KF_ERR_NOMEM;
        }
    return KF_OK;
}

/* Every stream's starting point from the stores (see collector_scan_stream), and a summary. */
static kf_err collector_resume(kf_collector *c, char *err, size_t errlen)
{
    size_t resumed = 0, with_holes = 0;
    uint64_t missing = 0;
    kf_err e = KF_OK;
    for (size_t si = 0; si < c->nstreams && !e; si++) {
        kf__stream *s = &c->streams[si];
        e = collector_scan_stream(c, si, err, errlen);
        if (e || !s->has_closed)
            continue;
        resumed++;
        uint64_t m = kf__stream_missing(s);
        if (!m)
            continue;
        kf__hole h;
        kf__stream_holes(s, &h, 1);
        if (with_holes < 20 || c->log.level <= KF_LOG_DEBUG)
            kf__log(&c->log, KF_LOG_WARN,
                    "msg=\"the stores lack closed candles: asking REST\" stream=%s candles=%llu "
                    "first_from=%lld",
                    s->name, (unsigned long long)m, (long long)h.from);
        with_holes++;
        missing += m;
        atomic_fetch_add_explicit(&c->stream_gaps[si], m, memory_order_relaxed);
    }
    kf__free(c->scan_holes);
    c->scan_holes = NULL;
    c->nscan = c->scan_cap = 0;
    if (e)
        return e;
    KF__STAT_ADD(c, gaps, missing);
    if (resumed)
        kf__log(&c->log, KF_LOG_INFO,
                "msg=\"resuming from the stores\" streams=%zu missing_candles=%llu "
                "streams_with_missing=%zu",
                resumed, (unsigned long long)missing, with_holes);
    return KF_OK;
}

static void collector_request_resume(kf_collector *c)
{
    for (size_t si = 0; si < c->nstreams; si++)
        if (c->streams[si].has_closed)
            collector_repair_after_last(c, si);
}

static void collector_close_repair_thread(kf_collector *c)
{
    if (c->repair)
        kf__repair_stop(c->repair);
}

/* Stops the REST worker and keeps its counters. */
static void collector_close_repair(kf_collector *c)
{
    if (!c->repair)
        return;
    kf__repair_stop(c->repair);
    kf__fetch_stats fs;
    kf__repair_get_stats(c->repair, &fs);
    pthread_mutex_lock(&c->mu);
    c->rest_done.weight_used += fs.weight_used;
    c->rest_done.http_429 += fs.http_429;
    c->rest_done.http_418 += fs.http_418;
    c->rest_done.requests += fs.requests;
    kf__repair *r = c->repair;
    c->repair = NULL;
    pthread_mutex_unlock(&c->mu);
    kf__repair_free(r);
}

/* kf_stop on another thread asked this start to give up: undoes what it did (the caller's
 * cleanup) and says so. */
static bool start_aborted(kf_collector *c)
{
    if (!atomic_load(&c->start_abort))
        return false;
    collector_set_error(c, "kf_stop() during kf_start(): the start was abandoned");
    kf__log(&c->log, KF_LOG_INFO, "msg=\"start abandoned: stop asked\"");
    return true;
}

/* kf_start's work (kf_start marks it under way for kf_stop). */
static kf_err collector_start(kf_collector *c)
{
    if (atomic_load(&c->running) || c->io_started) {
        kf__log(&c->log, KF_LOG_WARN,
                "msg=\"start ignored: the collector is already running\" connections=%zu",
                c->nshards);
        return KF_ERR_ALREADY_RUNNING;
    }
    char err[1024] = "";
    atomic_store(&c->unreceived, 0);
    kf__log(&c->log, KF_LOG_INFO,
            "msg=\"starting\" version=%s streams=%zu connections=%zu ws=%s rest=%s sinks=%zu",
            KF_VERSION_STRING, c->nstreams, c->nshards, c->ws_base, c->rest_base, c->cfg->nsinks);

    /* Binance serves klines on routed paths (/market); an unrouted connection acknowledges every
     * SUBSCRIBE and then delivers nothing (see README, "Why /market"): say so now, not after the
     * silent-stream check fires minutes later. */
    const char *last = strrchr(c->ws_url.path, '/');
    if (!last || strcmp(last, "/market") != 0)
        kf__log(&c->log, KF_LOG_WARN,
                "msg=\"the WebSocket base has no routed /market path: Binance acknowledges "
                "subscriptions there and delivers no klines\" ws=%s hint=\"%s\"",
                c->ws_base, c->cfg->testnet ? KF_WS_TESTNET : KF_WS_MAINNET);

    /* With the symbols re-read, what is checked is what is collected now: the symbols listed
     * while running too, not those delisted (a start after kf_stop would refuse them) */
    const char(*symbols)[KF_SYMBOL_MAX + 1] = (const char(*)[KF_SYMBOL_MAX + 1]) c->cfg->symbols;
    size_t nsymbols = c->cfg->nsymbols, nheld = 0;
    kf__held *held = c->refresh ? collector_held(c, &nheld) : NULL;
    char(*active)[KF_SYMBOL_MAX + 1] = held ? kf__calloc(nheld + 1, sizeof *active) : NULL;
    if (active) {
        nsymbols = 0;
        for (size_t i = 0; i < nheld; i++)
            if (!held[i].delisted)
                memcpy(active[nsymbols++], held[i].symbol, sizeof *active);
        symbols = (const char(*)[KF_SYMBOL_MAX + 1]) active;
    }
    kf__free(held);
    kf__validate_opts vo = {
        .mode = c->cfg->validate,
        .symbols = symbols,
        .nsymbols = nsymbols,
        .rest_base = c->rest_base,
        .tls_verify = c->cfg->tls_verify,
        .ca_file = c->cfg->ca_file,
        .timeout_ms = c->cfg->connect_timeout_ms,
        .state_path = c->rest_state[0] ? c->rest_state : NULL,
        .log = &c->log,
        .rest_requests = &c->st.rest_requests,
        .cancel = &c->start_abort,
    };
    kf_err e = kf__validate_symbols(&vo, err, sizeof err);
    kf__free(active);
    if (start_aborted(c))
        return KF_ERR_NOT_RUNNING;
    if (e) {
        collector_set_error(c, "%s", err);
        kf__log(&c->log, KF_LOG_ERROR, "msg=\"start failed\" err=\"%s\" why=\"%s\"", kf_strerror(e),
                err);
        return e;
    }

    if (c->cfg->nsinks && !c->writers) {
        c->writers = kf__calloc(c->cfg->nsinks, sizeof *c->writers);
        if (!c->writers)
            return KF_ERR_NOMEM;
    }
    for (size_t i = 0; i < c->cfg->nsinks; i++) {
        kf__writer *w =
            kf__writer_open(c->cfg->sinks[i], c->cfg->sink_queue_rows, &c->log, err, sizeof err);
        if (!w) {
            collector_discard_writers(c);
            collector_set_error(c, "%s", err);
            kf__log(&c->log, KF_LOG_ERROR, "msg=\"sink failed\" why=\"%s\"", err);
            return KF_ERR_SINK;
        }
        pthread_mutex_lock(&c->mu);
        c->writers[c->nwriters++] = w;
        pthread_mutex_unlock(&c->mu);
    }
    /* before the writer threads use the stores' connections */
    if ((e = collector_resume(c, err, sizeof err)) != KF_OK) {
        collector_discard_writers(c);
        collector_set_error(c, "%s", err);
        kf__log(&c->log, KF_LOG_ERROR, "msg=\"start failed: a store cannot be read\" why=\"%s\"",
                err);
        return e;
    }
    if (start_aborted(c)) {
        collector_discard_writers(c);
        return KF_ERR_NOT_RUNNING;
    }
    collector_record_covers(c);
    for (size_t i = 0; i < c->nwriters; i++) {
        if (kf__writer_start(c->writers[i], err, sizeof err) != KF_OK) {
            collector_discard_writers(c);
            collector_set_error(c, "%s", err);
            return KF_ERR_SINK;
        }
    }
    if (c->cfg->backfill || c->refresh) { /* the REST thread: repairs, the symbol re-read */
        kf__repair *r = collector_repair_new(c, err, sizeof err);
        pthread_mutex_lock(&c->mu); /* kf_stats_get reads it from any thread */
        c->repair = r;
        pthread_mutex_unlock(&c->mu);
        if (!r) {
            collector_discard_writers(c);
            collector_set_error(c, "%s", err);
            return KF_ERR_REST;
        }
        if (c->cfg->backfill)
            collector_request_resume(c);
    }

    if (c->ws_url.tls && !(c->ssl_ctx = collector_ssl_ctx(c, err, sizeof err))) {
        collector_close_repair(c);
        collector_discard_writers(c);
        collector_set_error(c, "%s", err);
        return KF_ERR_TLS;
    }
    if (uv_loop_init(&c->loop) != 0) {
        collector_close_repair(c);
        collector_discard_writers(c);
        collector_set_error(c, "cannot create the event loop");
        return KF_ERR_THREAD;
    }
    uv_async_init(&c->loop, &c->wake, collector_on_wake);
    c->wake.data = c;
    c->wake_closed = false;
    atomic_store(&c->stopping, false);
    c->shards_opened = 0;
    c->start_done = false;
    c->start_err = KF_OK;
    pthread_mutex_lock(&c->mu);
    c->sub_refused = false;
    pthread_mutex_unlock(&c->mu);
    if (pthread_create(&c->io_thread, NULL, collector_io_main, c) != 0) {
        uv_close((uv_handle_t *)&c->wake, NULL);
        uv_run(&c->loop, UV_RUN_DEFAULT);
        uv_loop_close(&c->loop);
        collector_close_repair(c);
        collector_discard_writers(c);
        collector_set_error(c, "cannot create the I/O thread: %s", strerror(errno));
        return KF_ERR_THREAD;
    }
    c->io_started = true;
    if (c->repair && kf__repair_start(c->repair, err, sizeof err) != KF_OK) {
        collector_stop_io(c);
        collector_close_repair(c);
        collector_discard_writers(c);
        collector_set_error(c, "%s", err);
        return KF_ERR_THREAD;
    }

    /* Each connection has its own deadline; this one only guards against a lost signal. */
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += c->cfg->connect_timeout_ms / 1000 + 5;
    pthread_mutex_lock(&c->mu);
    while (!c->start_done && !atomic_load(&c->start_abort)) /* kf_stop broadcasts under mu */
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT)
            break;
    bool done = c->start_done;
    e = done ? c->start_err : KF_ERR_TIMEOUT;
    pthread_mutex_unlock(&c->mu);
    if (e && start_aborted(c))
        e = KF_ERR_NOT_RUNNING;
    if (e) {
        if (e == KF_ERR_TIMEOUT && !done)
            collector_set_error(c, "%s: no WebSocket connection within %u ms", c->ws_base,
                                c->cfg->connect_timeout_ms);
        /* as kf_stop: the REST thread first, then the I/O thread (which reads c->repair), and
         * only then the worker freed (freed first, the I/O thread could use it: TSan) */
        collector_close_repair_thread(c);
        collector_stop_io(c);
        collector_close_repair(c);
        collector_discard_writers(c);
        return e;
    }
    atomic_store(&c->running, true);
    kf__log(&c->log, KF_LOG_INFO, "msg=\"started\" connections=%zu", c->nshards);
    return KF_OK;
}

kf_err kf_start(kf_collector *c)
{
    if (!c)
        return KF_ERR_INVALID_ARG;
    pthread_mutex_lock(&c->stop_mu);
    c->start_busy = true;
    atomic_store(&c->start_abort, false);
    pthread_mutex_unlock(&c->stop_mu);
    kf_err e = collector_start(c);
    pthread_mutex_lock(&c->stop_mu);
    c->start_busy = false;
    pthread_cond_broadcast(&c->stop_cv); /* a kf_stop waiting for this start to give up */
    pthread_mutex_unlock(&c->stop_mu);
    return e;
}

/* kf_stop's work, on one thread at a time (kf_stop). */
/* A closing update still on its way is not counted missing at a stop: the exchange sends it at
 * the candle's close, and within one connection an update carrying a later time comes after it. */
#define KF__STOP_GRACE_MS 2000

/*
 * At a stop, after the I/O thread ended: the closed candles the exchange had closed before the
 * stop that never arrived here (a connection down, a reconnect whose REST tail is not fetched
 * yet, a closing update lost): each stream expects every candle closed by its connection's
 * newest exchange time (less KF__STOP_GRACE_MS), or, for a connection that was down, by the
 * newest exchange time any connection saw. They are not stored, so they count as missing (the
 * daemon exits 4, not 0); they come after each stream's newest stored candle, so the next start
 * fetches them.
 */
static bool collector_any_missing(kf_collector *c)
{
    for (size_t si = 0; si < c->nstreams; si++)
        if (kf__stream_missing(&c->streams[si]))
            return true;
    return false;
}

static int64_t collector_newest_exchange_time(kf_collector *c)
{
    int64_t newest = 0;
    for (size_t i = 0; i < c->nshards; i++) {
        int64_t t = kf__shard_exchange_time(&c->shards[i]);
        if (t > newest)
            newest = t;
    }
    return newest;
}

/* Stream si's candles that never arrived (see below): [*from, *to]; false when none. */
static bool collector_unreceived_of(kf_collector *c, size_t si, int64_t newest, int64_t *from,
                                    int64_t *to)
{
    kf__stream *s = &c->streams[si];
    const kf__shard *sh = &c->shards[s->shard];
    int64_t now = kf__shard_was_down(sh) ? newest : kf__shard_exchange_time(sh);
    /* a delisted stream expects nothing after its delisting */
    if (!s->has_closed || now <= KF__STOP_GRACE_MS || atomic_load(&s->delisted))
        return false;
    int64_t expected =
        kf__interval_prev(s->interval, kf__interval_floor(s->interval, now - KF__STOP_GRACE_MS));
    if (expected <= s->last_closed)
        return false;
    *from = kf__interval_next(s->interval, s->last_closed);
    *to = expected;
    return true;
}

static void collector_count_unreceived(kf_collector *c)
{
    int64_t newest = collector_newest_exchange_time(c);
    uint64_t n = 0;
    size_t streams = 0;
    const kf__stream *first = NULL;
    int64_t first_from = 0;
    for (size_t si = 0; si < c->nstreams; si++) {
        kf__stream *s = &c->streams[si];
        int64_t from, expected;
        if (!collector_unreceived_of(c, si, newest, &from, &expected))
            continue;
        n += kf__interval_count(s->interval, from, expected);
        if (!streams++) {
            first = s;
            first_from = from;
        }
    }
    atomic_store(&c->unreceived, n);
    if (n)
        kf__log(&c->log, KF_LOG_WARN,
                "msg=\"stopped before closed candles arrived: not stored, the next start fetches "
                "them\" candles=%llu streams=%zu first_stream=%s first_from=%lld",
                (unsigned long long)n, streams, first->name, (long long)first_from);
}

/* ---- at a stop: what another collector stored ---- */

/* Candles checked per stream at a stop (more: the stream is left as it is), and the time the
 * whole check may take (streams after it are left as they are). */
#define KF__STOP_HELD_MAX 100000
#define KF__STOP_HELD_MS 5000

typedef struct held_walk {
    const int64_t *want; /* the stream's missing open times, ascending */
    uint32_t *held;      /* per want: stores that hold it */
    size_t n, i;
} held_walk;

static int held_time(void *ud, int64_t t)
{
    held_walk *h = ud;
    while (h->i < h->n && h->want[h->i] < t)
        h->i++;
    if (h->i < h->n && h->want[h->i] == t)
        h->held[h->i++]++;
    return h->i >= h->n; /* past the last one wanted: done */
}

/* Appends the open times of [from, to] to *v (growing it); false without memory or past
 * KF__STOP_HELD_MAX. */
static bool held_add(int interval, int64_t from, int64_t to, int64_t **v, size_t *n, size_t *cap)
{
    for (int64_t t = from; t <= to; t = kf__interval_next(interval, t)) {
        if (*n >= KF__STOP_HELD_MAX)
            return false;
        int64_t *p = kf__grow(*v, cap, *n + 1, sizeof *p, 64);
        if (!p)
            return false;
        *v = p;
        (*v)[(*n)++] = t;
    }
    return true;
}

/*
 * After the writers stopped (every row of this collector written), before they are closed: the
 * candles counted missing (the holes, asked of REST and not delivered; the tail that never
 * arrived) that every store holds now were stored by someone else - another collector writing
 * the same stores, as two collectors covering for each other do - and are not missing: they
 * leave the holes and the unreceived count, so the stop is clean (exit 0) when the stores are
 * complete. Only when every sink can tell what it holds (stored()); a store that cannot be read
 * leaves everything as it is.
 */
static void collector_stores_hold_missing(kf_collector *c)
{
    if (!c->nwriters || (!atomic_load(&c->unreceived) && !collector_any_missing(c)))
        return;
    for (size_t w = 0; w < c->nwriters; w++) {
        void *state;
        if (!kf__writer_ops(c->writers[w], &state)->stored)
            return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t start = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    int64_t newest = collector_newest_exchange_time(c);
    int64_t *want = NULL;
    uint32_t *held = NULL;
    size_t cap = 0, hcap = 0;
    uint64_t found = 0, tail_found = 0;
    size_t streams = 0;
    for (size_t si = 0; si < c->nstreams; si++) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - start > KF__STOP_HELD_MS)
            break;
        kf__stream *s = &c->streams[si];
        size_t n = 0;
        bool ok = true;
        pthread_mutex_lock(&s->mu); /* (the I/O thread has ended; a stats reader may look) */
        for (size_t i = 0; i < s->nholes && ok; i++)
            ok = held_add(s->interval, s->holes[i].from, s->holes[i].to, &want, &n, &cap);
        pthread_mutex_unlock(&s->mu);
        int64_t tf = 0, tt = -1;
        if (ok && collector_unreceived_of(c, si, newest, &tf, &tt))
            ok = held_add(s->interval, tf, tt, &want, &n, &cap);
        if (!ok || n == 0)
            continue;
        uint32_t *hp = kf__grow(held, &hcap, n, sizeof *hp, 64);
        if (!hp)
            break;
        held = hp;
        memset(held, 0, n * sizeof *held);
        const char *ivn = kf_interval_name(s->interval);
        for (size_t w = 0; w < c->nwriters && ok; w++) {
            void *state;
            const kf__sink_ops *ops = kf__writer_ops(c->writers[w], &state);
            char err[512];
            held_walk hw = {.want = want, .held = held, .n = n};
            ok = ops->stored(state, s->symbol, ivn, want[0], held_time, &hw, err, sizeof err) ==
                 KF_OK;
            if (!ok)
                kf__log(&c->log, KF_LOG_WARN,
                        "msg=\"stopping: could not read what a store holds\" stream=%s "
                        "error=\"%s\"",
                        s->name, err);
        }
        if (!ok)
            continue;
        uint64_t got = 0;
        for (size_t i = 0; i < n; i++) {
            if (held[i] < c->nwriters)
                continue;
            got++;
            if (want[i] >= tf && want[i] <= tt)
                tail_found++;
            else
                kf__stream_absent(s, want[i], want[i]); /* (only leaves the holes) */
        }
        if (got) {
            found += got;
            streams++;
        }
    }
    kf__free(want);
    kf__free(held);
    if (tail_found)
        atomic_fetch_sub(&c->unreceived, tail_found);
    if (found)
        kf__log(&c->log, KF_LOG_INFO,
                "msg=\"stopping: candles counted missing are in every store (another collector "
                "stored them)\" candles=%llu streams=%zu",
                (unsigned long long)found, streams);
}

static kf_err collector_stop(kf_collector *c)
{
    if (!c->io_started && !atomic_load(&c->running))
        return KF_OK;
    collector_close_repair_thread(c);
    collector_stop_io(c); /* applies the rows the REST worker fetched, then closes */
    collector_count_unreceived(c);
    collector_record_covers(c); /* behind the last rows: the next start checks only after */
    kf_err e = collector_close_writers(c); /* one deadline for all of them; then the stores are
                                              asked about what is still missing */
    collector_close_repair(c);
    atomic_store(&c->running, false);
    kf_stats s;
    kf_stats_get(c, &s, sizeof s);
    kf__log(&c->log, e ? KF_LOG_ERROR : KF_LOG_INFO,
            "msg=\"stopped\" frames=%llu updates=%llu closed=%llu duplicates=%llu "
            "parse_errors=%llu missing=%llu unstored=%llu",
            (unsigned long long)s.frames, (unsigned long long)s.updates,
            (unsigned long long)s.closed, (unsigned long long)s.duplicates,
            (unsigned long long)s.parse_errors, (unsigned long long)s.missing,
            (unsigned long long)s.unstored);
    return e;
}

kf_err kf_stop(kf_collector *c)
{
    if (!c)
        return KF_ERR_INVALID_ARG;
    if (io_thread_of == c) {
        collector_set_error(c, "kf_stop() called from a callback on the I/O thread");
        return KF_ERR_INVALID_ARG;
    }
    /* Two threads stopping at once would join the same threads and free the same writers
     * twice: the second waits for the first's stop and returns its result. */
    pthread_mutex_lock(&c->stop_mu);
    if (c->start_busy) {
        /* a start under way on another thread (a network that hangs can hold it for the
         * connect timeout, twice): it gives up at its next step, undoing what it did */
        atomic_store(&c->start_abort, true);
        pthread_mutex_lock(&c->mu);
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        while (c->start_busy)
            pthread_cond_wait(&c->stop_cv, &c->stop_mu);
    }
    if (c->stop_busy) {
        uint64_t gen = c->stop_gen;
        c->stop_waiters++;
        while (c->stop_gen == gen)
            pthread_cond_wait(&c->stop_cv, &c->stop_mu);
        kf_err e = c->stop_result;
        if (--c->stop_waiters == 0)
            pthread_cond_broadcast(&c->stop_cv); /* kf_free may be waiting for this */
        pthread_mutex_unlock(&c->stop_mu);
        return e;
    }
    c->stop_busy = true;
    pthread_mutex_unlock(&c->stop_mu);
    kf_err e = collector_stop(c);
    pthread_mutex_lock(&c->stop_mu);
    c->stop_busy = false;
    c->stop_result = e;
    c->stop_gen++;
    pthread_cond_broadcast(&c->stop_cv);
    pthread_mutex_unlock(&c->stop_mu);
    return e;
}

/* ---- state and queries ---- */

bool kf_running(const kf_collector *c)
{
    return c && atomic_load(&c->running);
}

bool kf_connected(const kf_collector *c)
{
    return c && atomic_load(&c->running) &&
           atomic_load(&((kf_collector *)c)->shards_subscribed) == c->nshards;
}

/* kf_errmsg's answer on this thread. The I/O thread rewrites c->errmsg under err_mu at any
 * time: the caller gets a copy taken under the lock, in a buffer of its own thread (valid until
 * its next kf_errmsg call). kf_wait_connected leaves its own message here for the next
 * kf_errmsg of its collector (errmsg_pending), so that what a failed wait says cannot be
 * replaced by the I/O thread in between. */
static _Thread_local char errmsg_copy[sizeof((kf_collector *)0)->errmsg];
static _Thread_local const kf_collector *errmsg_pending;

const char *kf_errmsg(const kf_collector *c)
{
    bool pending = c && errmsg_pending == c;
    errmsg_pending = NULL;
    if (!c)
        return "no collector";
    if (pending)
        return errmsg_copy;
    kf_collector *m = (kf_collector *)c;
    pthread_mutex_lock(&m->err_mu);
    memcpy(errmsg_copy, c->errmsg, sizeof errmsg_copy);
    pthread_mutex_unlock(&m->err_mu);
    return errmsg_copy;
}

kf_err kf_wait_connected(kf_collector *c, unsigned timeout_ms)
{
    if (!c)
        return KF_ERR_INVALID_ARG;
    if (io_thread_of == c) { /* only this thread could make it connected */
        errmsg_pending = c;
        snprintf(errmsg_copy, sizeof errmsg_copy,
                 "kf_wait_connected() called from a callback on the I/O thread");
        return KF_ERR_INVALID_ARG;
    }
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl); /* c->cv's clock (kf_start waits on it too) */
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    kf_err e;
    bool timed_out = false;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        if (kf_connected(c)) {
            e = KF_OK;
            break;
        }
        if (!atomic_load(&c->running) || atomic_load(&c->stopping)) {
            e = KF_ERR_NOT_RUNNING;
            snprintf(errmsg_copy, sizeof errmsg_copy, "the collector is not running");
            break;
        }
        if (c->sub_refused) {
            e = KF_ERR_SUBSCRIBE;
            snprintf(errmsg_copy, sizeof errmsg_copy, "%s", c->sub_error);
            break;
        }
        if (timed_out) {
            e = KF_ERR_TIMEOUT;
            snprintf(errmsg_copy, sizeof errmsg_copy,
                     "not connected within %u ms: %zu of %zu connections subscribed", timeout_ms,
                     atomic_load(&c->shards_subscribed), c->nshards);
            break;
        }
        timed_out = pthread_cond_timedwait(&c->cv, &c->mu, &dl) == ETIMEDOUT;
    }
    pthread_mutex_unlock(&c->mu);
    errmsg_pending = e ? c : NULL;
    return e;
}
const char *kf_ws_url(const kf_collector *c)
{
    return c ? c->ws_base : NULL;
}
const char *kf_rest_url(const kf_collector *c)
{
    return c ? c->rest_base : NULL;
}
size_t kf_stream_count(const kf_collector *c)
{
    return c ? c->nstreams : 0;
}
size_t kf_connection_count(const kf_collector *c)
{
    return c ? c->nshards : 0;
}

const char *kf_stream_name(const kf_collector *c, size_t i)
{
    return c && i < c->nstreams ? c->streams[i].name : NULL;
}

kf_err kf_recent(kf_collector *c, const char *symbol, const char *interval, kf_kline *out,
                 size_t *n)
{
    if (!c || !symbol || !interval || !n || (*n && !out))
        return KF_ERR_INVALID_ARG;
    char up[KF_SYMBOL_MAX + 1];
    size_t len = strlen(symbol);
    int iv = kf_interval_index(interval, strlen(interval));
    if (len == 0 || len > KF_SYMBOL_MAX || iv < 0)
        return KF_ERR_NOT_FOUND;
    for (size_t i = 0; i <= len; i++)
        up[i] = (symbol[i] >= 'a' && symbol[i] <= 'z') ? (char)(symbol[i] - 'a' + 'A') : symbol[i];
    pthread_rwlock_rdlock(&c->index_lock); /* the I/O thread adds listings to the index */
    long si = kf__stream_index_find(&c->index, c->streams, up, len, iv);
    pthread_rwlock_unlock(&c->index_lock);
    if (si < 0) {
        *n = 0;
        return KF_ERR_NOT_FOUND;
    }
    *n = kf__stream_recent(&c->streams[si], out, *n);
    return KF_OK;
}

#define LOAD(f) atomic_load_explicit(&c->st.f, memory_order_relaxed)

/* The counters, in this library's kf_stats (kf_stats_get copies what the caller has room for). */
static void collector_stats(kf_collector *c, kf_stats *out)
{
    memset(out, 0, sizeof *out);
    out->frames = LOAD(frames);
    out->bytes = LOAD(bytes);
    out->updates = LOAD(updates);
    out->closed = LOAD(closed);
    out->duplicates = LOAD(duplicates);
    out->other_events = LOAD(other_events);
    out->parse_errors = LOAD(parse_errors);
    out->unknown_streams = LOAD(unknown_streams);
    out->acks = LOAD(acks);
    out->exchange_errors = LOAD(exchange_errors);
    out->connects = LOAD(connects);
    out->disconnects = LOAD(disconnects);
    out->pings = LOAD(pings);
    out->rest_requests = LOAD(rest_requests);
    out->reconnects = LOAD(reconnects);
    out->lost_server_close = LOAD(lost_server_close);
    out->lost_reset = LOAD(lost_reset);
    out->lost_protocol = LOAD(lost_protocol);
    out->lost_liveness = LOAD(lost_liveness);
    out->connect_failures = LOAD(connect_failures);
    out->rotations = LOAD(rotations);
    out->stale_streams = LOAD(stale_streams);
    out->gaps = LOAD(gaps);
    out->missing_closes = LOAD(missing_closes);
    out->backfilled = LOAD(backfilled);
    out->absent = LOAD(absent);
    out->repair_failures = LOAD(repair_failures);
    out->store_dropped = LOAD(store_dropped);
    out->updates_dropped = LOAD(updates_dropped);
    out->symbols_listed = LOAD(symbols_listed);
    out->symbols_delisted = LOAD(symbols_delisted);
    out->symbols_refused = LOAD(symbols_refused);
    out->symbol_refresh_failures = LOAD(symbol_refresh_failures);
    for (size_t i = 0; i < c->nstreams; i++)
        out->missing += kf__stream_missing(&c->streams[i]);
    out->missing += atomic_load_explicit(&c->unreceived, memory_order_relaxed);
    pthread_mutex_lock(&c->mu);
    kf__fetch_stats fs;
    kf__repair_get_stats(c->repair, &fs);
    out->rest_requests += c->rest_done.requests + fs.requests;
    out->rest_weight = c->rest_done.weight_used + fs.weight_used;
    out->rest_429 = c->rest_done.http_429 + fs.http_429;
    out->rest_418 = c->rest_done.http_418 + fs.http_418;
    out->rest_pending = kf__repair_pending(c->repair);
    out->sink_rows = c->sink_rows_done;
    out->sink_errors = c->sink_errors_done;
    out->unstored = c->sink_unstored_done;
    out->store_rejected = c->sink_rejected_done;
    for (size_t i = 0; i < c->nwriters; i++) {
        kf__writer_stats ws;
        kf__writer_get_stats(c->writers[i], &ws);
        out->sink_rows += ws.rows;
        out->sink_errors += ws.errors;
        out->unstored += ws.unstored;
        out->store_rejected += ws.rejected;
    }
    pthread_mutex_unlock(&c->mu);
}

kf_err kf_stats_get(const kf_collector *c, kf_stats *out, size_t size)
{
    if (!c || !out || !size)
        return KF_ERR_INVALID_ARG;
    /* size is the kf_stats the caller was compiled with: an older program's is a prefix of
     * ours (fields are only appended) and gets just that; a newer program's has fields this
     * library does not know, which read 0. */
    kf_stats all;
    collector_stats((kf_collector *)c, &all);
    memcpy(out, &all, size < sizeof all ? size : sizeof all);
    if (size > sizeof all)
        memset((char *)out + sizeof all, 0, size - sizeof all);
    return KF_OK;
}

/* ---- read-only state queries (any thread) ---- */

/* The I/O loop's clock (uv_now: CLOCK_MONOTONIC in ms) read from another thread. */
static uint64_t loop_clock_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static int64_t age_since(uint64_t now, uint64_t then)
{
    return now > then ? (int64_t)(now - then) : 0;
}

/* Copies what both the library's struct (len bytes in full) and the caller's (size) hold. */
static void copy_sized(void *out, size_t size, const void *full, size_t len)
{
    memcpy(out, full, size < len ? size : len);
    if (size > len)
        memset((char *)out + len, 0, size - len);
}

kf_err kf_stream_info_get(const kf_collector *c, size_t i, kf_stream_info *out, size_t size)
{
    if (!c || !out || !size)
        return KF_ERR_INVALID_ARG;
    if (i >= c->nstreams)
        return KF_ERR_NOT_FOUND;
    kf__stream *s = &c->streams[i];
    kf_stream_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.symbol, sizeof info.symbol, "%s", s->symbol);
    snprintf(info.interval, sizeof info.interval, "%s", kf_interval_name(s->interval));
    info.connection = s->shard;
    pthread_mutex_lock(&s->mu);
    info.has_closed = s->has_closed;
    info.last_closed_open_time = s->has_closed ? s->last_closed : 0;
    pthread_mutex_unlock(&s->mu);
    info.missing = kf__stream_missing(s);
    uint64_t last = atomic_load_explicit(&c->last_update[i], memory_order_relaxed);
    info.last_update_age_ms = last ? age_since(loop_clock_ms(), last) : -1;
    info.gaps = atomic_load_explicit(&c->stream_gaps[i], memory_order_relaxed);
    info.repaired = atomic_load_explicit(&c->stream_repaired[i], memory_order_relaxed);
    bool up = false, subscribed = false;
    uint64_t opened_at = 0;
    if (atomic_load(&c->running))
        kf__shard_status(&c->shards[s->shard], &up, &subscribed, &opened_at);
    info.state = !subscribed ? KF_STREAM_DOWN : last ? KF_STREAM_LIVE : KF_STREAM_WAITING;
    info.delisted = atomic_load(&s->delisted);
    info.added = s->added;
    if (info.delisted)
        info.state = KF_STREAM_DELISTED;
    copy_sized(out, size, &info, sizeof info);
    return KF_OK;
}

kf_err kf_connection_info_get(const kf_collector *c, size_t i, kf_connection_info *out, size_t size)
{
    if (!c || !out || !size)
        return KF_ERR_INVALID_ARG;
    if (i >= c->nshards)
        return KF_ERR_NOT_FOUND;
    kf_connection_info info;
    memset(&info, 0, sizeof info);
    size_t per = c->cfg->streams_per_connection;
    size_t ns = c->nstreams; /* (read once: it grows while running, after nshards) */
    info.first_stream = i * per;
    info.streams = ns < info.first_stream         ? 0 /* its streams not published yet */
                   : ns - info.first_stream < per ? ns - info.first_stream
                                                  : per;
    uint64_t opened_at = 0;
    if (atomic_load(&c->running))
        kf__shard_status(&c->shards[i], &info.connected, &info.subscribed, &opened_at);
    info.age_ms = info.connected && opened_at ? age_since(loop_clock_ms(), opened_at) : -1;
    copy_sized(out, size, &info, sizeof info);
    return KF_OK;
}

size_t kf_sink_count(const kf_collector *c)
{
    return c ? c->cfg->nsinks : 0;
}

kf_err kf_sink_info_get(const kf_collector *c, size_t i, kf_sink_info *out, size_t size)
{
    if (!c || !out || !size)
        return KF_ERR_INVALID_ARG;
    if (i >= c->cfg->nsinks)
        return KF_ERR_NOT_FOUND;
    kf_sink_info info;
    memset(&info, 0, sizeof info);
    snprintf(info.spec, sizeof info.spec, "%s", c->cfg->sinks[i]);
    kf_collector *m = (kf_collector *)c; /* the lock, not the state */
    pthread_mutex_lock(&m->mu);
    if (i < c->nwriters && c->writers[i]) {
        kf__writer_stats ws;
        kf__writer_get_stats(c->writers[i], &ws);
        info.open = true;
        info.healthy = !ws.failing;
        info.queue_rows = ws.queued;
        info.queue_cap = ws.cap;
        info.rows = ws.rows;
        info.errors = ws.errors;
    }
    pthread_mutex_unlock(&m->mu);
    copy_sized(out, size, &info, sizeof info);
    return KF_OK;
}
