/*
 * History download (kf_history): closed candles from REST into the configured sinks, within the
 * exchange's weight budget, for `klinefeed backfill` and any program that wants history without
 * running a collector.
 *
 * Symbols are checked against exchangeInfo (the same request that reads the published weight
 * limit). Each stream resumes after the newest closed candle a sink already holds (sinks that
 * can answer: SQLite). Streams are fetched one after another, one request in flight; rows go
 * through the sinks' writer threads (a blocking push: history is not live, it waits for a slow
 * store). kf_history_cancel (any thread, a signal handler included) stops after the page in
 * hand; what was fetched is stored.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backfill/fetch.h"
#include "collector/config.h"
#include "core/alloc.h"
#include "core/log.h"
#include "decode/interval.h"
#include "sink/sink.h"

#define HISTORY_QUEUE_ROWS 16384
#define HISTORY_PROGRESS_MS 200 /* the progress callback at most this often (and at the end) */

typedef struct hist_stream {
    char symbol[KF_SYMBOL_MAX + 1];
    int interval;
    int64_t start;   /* first open time to fetch */
    int64_t end;     /* last open time wanted (for progress): min(to, exchange now) */
    int64_t reached; /* open time after the newest row passed, for progress */
    bool skip;       /* nothing new can be closed yet */
} hist_stream;

struct kf_history {
    kf_config *cfg;
    kf__logger log;
    char rest_base[1100];
    char state[1200];
    hist_stream *streams;
    size_t nstreams, cur, todo, done;
    kf__writer **writers;
    size_t nwriters;
    kf__fetcher *fetcher;
    _Atomic bool cancel;
    bool running;
    int64_t total_span, t0, last_progress;
    uint64_t rows;
    kf_history_fn fn;
    void *ud;
    char errmsg[1024];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static kf_err hist_fail(kf_history *h, kf_err e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static kf_err hist_fail(kf_history *h, kf_err e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->errmsg, sizeof h->errmsg, fmt, ap);
    va_end(ap);
    kf__log(&h->log, KF_LOG_ERROR, "msg=\"history download failed\" err=\"%s\" why=\"%s\"",
            kf_strerror(e), h->errmsg);
    return e;
}

kf_history *kf_history_new(const kf_config *cfg, char *err, size_t errlen)
{
    size_t nint = 0;
    for (int i = 0; cfg && i < KF_INTERVAL_COUNT; i++)
        nint += cfg->intervals[i];
    if (!cfg || !cfg->nsymbols || !nint) {
        if (err && errlen)
            snprintf(err, errlen, "no %s configured: add at least one",
                     !cfg             ? "configuration"
                     : !cfg->nsymbols ? "symbol"
                                      : "interval");
        return NULL;
    }
    kf_history *h = kf__calloc(1, sizeof *h);
    if (h)
        h->cfg = kf__config_dup(cfg);
    if (h && h->cfg && kf__config_apply_shard(h->cfg, err, errlen) != KF_OK) {
        kf_config_free(h->cfg);
        kf__free(h);
        return NULL;
    }
    if (h && h->cfg)
        cfg = h->cfg; /* the shard's symbols from here on */
    if (h && h->cfg)
        h->streams = kf__calloc(cfg->nsymbols * nint, sizeof *h->streams);
    if (!h || !h->cfg || !h->streams) {
        if (h) {
            kf_config_free(h->cfg);
            kf__free(h);
        }
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return NULL;
    }
    kf__logger_init(&h->log, cfg->log_fn, cfg->log_userdata, cfg->log_level);
    snprintf(h->rest_base, sizeof h->rest_base, "%s",
             cfg->rest_url  ? cfg->rest_url
             : cfg->testnet ? KF_REST_TESTNET
                            : KF_REST_MAINNET);
    if (!kf__fetch_state_path(cfg->state_dir, h->rest_base, h->state, sizeof h->state))
        h->state[0] = 0;
    for (size_t s = 0; s < cfg->nsymbols; s++)
        for (int i = 0; i < KF_INTERVAL_COUNT; i++)
            if (cfg->intervals[i]) {
                hist_stream *st = &h->streams[h->nstreams++];
                memcpy(st->symbol, cfg->symbols[s], sizeof st->symbol);
                st->interval = i;
            }
    return h;
}

void kf_history_cancel(kf_history *h)
{
    if (h)
        atomic_store(&h->cancel, true); /* lock-free: safe in a signal handler */
}

const char *kf_history_errmsg(const kf_history *h)
{
    return h ? h->errmsg : "no history object";
}

void kf_history_free(kf_history *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->nwriters; i++)
        kf__writer_free(h->writers[i]);
    kf__free(h->writers);
    kf__fetcher_free(h->fetcher);
    kf__free(h->streams);
    kf__logger_destroy(&h->log);
    kf_config_free(h->cfg);
    kf__free(h);
}

/* ---- progress ---- */

static void hist_progress(kf_history *h, bool force)
{
    if (!h->fn)
        return;
    int64_t now = mono_ms();
    if (!force && now - h->last_progress < HISTORY_PROGRESS_MS)
        return;
    h->last_progress = now;
    kf__fetch_stats st;
    kf__fetcher_get_stats(h->fetcher, &st);
    int64_t done = 0;
    for (size_t i = 0; i < h->nstreams; i++) {
        const hist_stream *s = &h->streams[i];
        if (s->skip)
            continue;
        int64_t r = s->reached < s->start ? s->start : s->reached > s->end ? s->end : s->reached;
        done += r - s->start;
    }
    const hist_stream *s = &h->streams[h->cur < h->nstreams ? h->cur : h->nstreams - 1];
    kf_history_progress p = {
        .streams = h->todo,
        .streams_done = h->done,
        .symbol = s->symbol,
        .interval = kf_interval_name(s->interval),
        .fraction = h->total_span > 0 ? (double)done / (double)h->total_span : 1.0,
        .rows = h->rows,
        .requests = st.requests,
        .weight_used = st.weight_used,
        .weight_limit = kf__fetcher_weight_limit(h->fetcher),
        .http_429 = st.http_429,
        .http_418 = st.http_418,
        .http_5xx = st.http_5xx,
        .retries = st.retries,
        .waits_ms = st.waits_ms,
        .elapsed_ms = now - h->t0,
    };
    if (p.fraction > 1.0)
        p.fraction = 1.0;
    h->fn(h->ud, &p);
}

static int hist_on_row(void *ud, const kf_kline *k)
{
    kf_history *h = ud;
    hist_stream *s = &h->streams[h->cur];
    if (s->reached == s->start && k->open_time > s->start) {
        /* the exchange's history starts later (a listing after from): progress counts what
         * exists, not the empty years before it */
        int64_t gap = (k->open_time < s->end ? k->open_time : s->end) - s->start;
        h->total_span -= gap;
        s->start += gap;
    }
    for (size_t i = 0; i < h->nwriters; i++)
        kf__writer_push(h->writers[i], k);
    h->rows++;
    s->reached = kf__interval_next(s->interval, k->open_time);
    hist_progress(h, false);
    return 0;
}

/* ---- setup ---- */

typedef struct hist_listed {
    kf_history *h;
    char (*status)[16]; /* per configured symbol, "" while not listed */
} hist_listed;

static void hist_on_symbol(void *ud, const char *symbol, const char *status)
{
    hist_listed *l = ud;
    for (size_t i = 0; i < l->h->cfg->nsymbols; i++)
        if (strcmp(l->h->cfg->symbols[i], symbol) == 0)
            snprintf(l->status[i], sizeof l->status[i], "%s", status);
}

/* Every configured symbol listed (a non-TRADING one is fetched anyway, with a warning: its
 * history is still served), and the published weight limit adopted: one request. */
static kf_err hist_symbols(kf_history *h)
{
    char err[1024];
    char(*status)[16] = kf__calloc(h->cfg->nsymbols, sizeof *status);
    if (!status)
        return hist_fail(h, KF_ERR_NOMEM, "out of memory");
    hist_listed listed = {h, status};
    kf_err e = kf__fetcher_exchange_info(h->fetcher, hist_on_symbol, &listed, err, sizeof err);
    if (e == KF_ERR_NOT_RUNNING)
        e = hist_fail(h, e, "cancelled");
    else if (e)
        e = hist_fail(h, e == KF_ERR_NOMEM ? e : KF_ERR_REST, "exchangeInfo: %s", err);
    size_t unlisted = 0;
    char names[512] = "";
    for (size_t i = 0; !e && i < h->cfg->nsymbols; i++) {
        if (!status[i][0]) {
            size_t o = strlen(names);
            if (o + KF_SYMBOL_MAX + 4 < sizeof names)
                snprintf(names + o, sizeof names - o, "%s\"%s\"", unlisted ? ", " : "",
                         h->cfg->symbols[i]);
            unlisted++;
        } else if (strcmp(status[i], "TRADING") != 0) {
            kf__log(&h->log, KF_LOG_WARN,
                    "msg=\"symbol is not trading; fetching its history anyway\" symbol=%s "
                    "status=%s",
                    h->cfg->symbols[i], status[i]);
        }
    }
    if (!e && unlisted)
        e = hist_fail(h, KF_ERR_SYMBOL, "%s %s %s not listed by %s/fapi/v1/exchangeInfo",
                      unlisted == 1 ? "symbol" : "symbols", names, unlisted == 1 ? "is" : "are",
                      h->rest_base);
    kf__free(status);
    return e;
}

/* Newest closed open time over the sinks that can answer; *found false when none holds one
 * (or none can answer). The oldest answer wins, so every answering sink gets every row. */
static kf_err hist_resume_point(kf_history *h, const hist_stream *s, int64_t *t, bool *found)
{
    char err[512];
    *found = false;
    bool any_empty = false;
    for (size_t i = 0; i < h->nwriters; i++) {
        void *state = NULL;
        const kf__sink_ops *ops = kf__writer_ops(h->writers[i], &state);
        if (!ops->last_closed)
            continue;
        int64_t ot = 0;
        int f = 0;
        if (ops->last_closed(state, s->symbol, kf_interval_name(s->interval), &ot, &f, err,
                             sizeof err))
            return hist_fail(h, KF_ERR_SINK, "%s", err);
        if (!f)
            any_empty = true;
        else if (!*found || ot < *t) {
            *t = ot;
            *found = true;
        }
    }
    if (any_empty)
        *found = false;
    return KF_OK;
}

/* Sinks opened (a bad path fails before any download), each stream's start and end. */
static kf_err hist_plan(kf_history *h, int64_t from, int64_t to)
{
    char err[1024];
    h->writers = kf__calloc(h->cfg->nsinks ? h->cfg->nsinks : 1, sizeof *h->writers);
    if (!h->writers)
        return hist_fail(h, KF_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < h->cfg->nsinks; i++) {
        h->writers[i] =
            kf__writer_open(h->cfg->sinks[i], HISTORY_QUEUE_ROWS, &h->log, err, sizeof err);
        if (!h->writers[i])
            return hist_fail(h, KF_ERR_SINK, "%s", err);
        h->nwriters++;
    }
    int64_t now = 0;
    kf_err e = kf__fetcher_server_time(h->fetcher, &now, err, sizeof err);
    if (e)
        return hist_fail(h, e == KF_ERR_NOT_RUNNING ? e : KF_ERR_REST, "server time: %s", err);
    size_t resumed = 0;
    for (size_t i = 0; i < h->nstreams; i++) {
        hist_stream *s = &h->streams[i];
        int64_t last = 0;
        bool found = false;
        if ((e = hist_resume_point(h, s, &last, &found)) != KF_OK)
            return e;
        s->start = from;
        if (found && last >= from) {
            s->start = last + 1;
            resumed++;
        }
        s->end = to < now ? to : now;
        /* Nothing to ask for when the next candle cannot be closed yet or is past to. */
        int64_t next = found && last >= from ? kf__interval_next(s->interval, last) : s->start;
        s->skip =
            s->start > s->end || next > s->end || kf__interval_next(s->interval, next) - 1 >= now;
        s->reached = s->start;
        if (!s->skip) {
            h->todo++;
            h->total_span += s->end - s->start;
        }
    }
    kf__log(&h->log, KF_LOG_INFO,
            "msg=\"history download\" streams=%zu to_fetch=%zu resumed=%zu from=%" PRId64
            " to=%" PRId64 " rest=%s weight_limit=%u",
            h->nstreams, h->todo, resumed, from, to < now ? to : now, h->rest_base,
            kf__fetcher_weight_limit(h->fetcher));
    if (!h->todo)
        kf__log(&h->log, KF_LOG_INFO, "msg=\"nothing new: every stream is up to date\" streams=%zu",
                h->nstreams);
    return KF_OK;
}

/* Starts the writer threads with every signal blocked: signals go to the program's threads. */
static kf_err hist_start_writers(kf_history *h)
{
    char err[512];
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    kf_err e = KF_OK;
    for (size_t i = 0; i < h->nwriters && !e; i++)
        e = kf__writer_start(h->writers[i], err, sizeof err);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return e ? hist_fail(h, e, "%s", err) : KF_OK;
}

kf_err kf_history_run(kf_history *h, int64_t from_ms, int64_t to_ms, kf_history_fn fn, void *ud)
{
    if (!h || from_ms > to_ms)
        return KF_ERR_INVALID_ARG;
    if (h->running || h->fetcher) {
        snprintf(h->errmsg, sizeof h->errmsg, "a history object runs once");
        return KF_ERR_ALREADY_RUNNING;
    }
    h->running = true;
    h->fn = fn;
    h->ud = ud;
    h->t0 = h->last_progress = mono_ms();
    char err[1024];
    kf__fetcher_opts fo = {
        .rest_base = h->rest_base,
        .tls_verify = h->cfg->tls_verify,
        .ca_file = h->cfg->ca_file,
        .weight_budget = h->cfg->rest_weight_budget,
        .timeout_ms = h->cfg->connect_timeout_ms,
        .log = &h->log,
        .state_path = h->state[0] ? h->state : NULL,
    };
    h->fetcher = kf__fetcher_new(&fo, err, sizeof err);
    if (!h->fetcher)
        return hist_fail(h, KF_ERR_REST, "%s", err);
    kf__fetcher_set_cancel(h->fetcher, &h->cancel);
    kf_err e = hist_symbols(h);
    if (!e)
        e = hist_plan(h, from_ms, to_ms);
    if (!e)
        e = hist_start_writers(h);
    for (h->cur = 0; !e && h->cur < h->nstreams; h->cur++) {
        hist_stream *s = &h->streams[h->cur];
        if (s->skip)
            continue;
        if (atomic_load(&h->cancel)) {
            e = KF_ERR_NOT_RUNNING;
            break;
        }
        uint64_t before = h->rows;
        e = kf__fetch_klines(h->fetcher, s->symbol, s->interval, s->start, to_ms, hist_on_row, h,
                             &h->cancel, NULL, err, sizeof err);
        kf__log(&h->log, KF_LOG_DEBUG, "msg=\"stream fetched\" symbol=%s interval=%s rows=%" PRIu64,
                s->symbol, kf_interval_name(s->interval), h->rows - before);
        if (e == KF_ERR_NOT_RUNNING)
            break;
        if (e)
            e = hist_fail(h, e, "%s %s: %s", s->symbol, kf_interval_name(s->interval), err);
        else
            h->done++;
    }
    if (e == KF_ERR_NOT_RUNNING) {
        snprintf(h->errmsg, sizeof h->errmsg, "cancelled: rows so far are stored");
        kf__log(&h->log, KF_LOG_INFO,
                "msg=\"history download cancelled: rows so far are stored; the next run "
                "resumes\"");
    }
    hist_progress(h, true);
    /* Every pushed row is stored before returning. */
    for (size_t i = 0; i < h->nwriters; i++)
        if (kf__writer_stop(h->writers[i]) != KF_OK && (!e || e == KF_ERR_NOT_RUNNING))
            e = hist_fail(h, KF_ERR_SINK, "%s: not every row could be stored", h->cfg->sinks[i]);
    return e;
}
