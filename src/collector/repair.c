/* The REST repair worker: per-stream wants, one thread, rows and outcomes back to the I/O
 * thread. */
#include "collector/repair.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"

/* Rows fetched but not yet applied; the worker waits when this many are queued. */
#define REPAIR_MAX_QUEUED 65536
/* Holes asked in one request: the oldest, and the next ones while the span stays one page. */
#define REPAIR_SPAN_CANDLES 1500
#define REPAIR_BACKOFF_FIRST_MS 1000
#define REPAIR_BACKOFF_CAP_MS 300000
/* Failure lines: at most this many per minute, then one line counting the rest. */
#define REPAIR_LOG_PER_MINUTE 10

typedef struct repair_slot {
    int64_t tail_from;  /* KF__NO_TAIL when none */
    int64_t not_before; /* monotonic ms: not asked before */
    unsigned failures;  /* consecutive failed requests */
    bool queued;        /* in the queue */
    bool in_flight;     /* the worker is on it */
    bool applying;      /* fetched; the I/O thread has not seen the outcome yet */
} repair_slot;

/* A fetched row, or (done) the outcome of a request. */
typedef struct repair_row {
    size_t si;
    bool done;
    kf_err err;                /* done: the request's result */
    int64_t from, to, covered; /* done: the range asked, and what the answer established */
    kf_kline k;                /* a row */
} repair_row;

struct kf__repair {
    kf__repair_env env;
    kf__fetcher *fetcher;
    pthread_t thread;
    bool started;
    _Atomic bool cancel;

    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work queued, or stop */
    pthread_cond_t room_cv; /* rows drained */
    repair_slot *slots;
    size_t *queue; /* stream indexes, FIFO ring of n, each stream at most once */
    size_t qhead, qlen, n;
    repair_row *rows; /* fetched, for the I/O thread */
    size_t nrows, rows_cap;
    repair_row *cur; /* the I/O thread's side of the double buffer: the batch being applied */
    size_t cur_cap, cur_n, cur_i;
    size_t busy;    /* streams queued, in flight or being applied */
    size_t current; /* stream in flight */
    kf__fetch_stats stats;
    kf__rng rng;               /* jitter (I/O thread, under mu) */
    int64_t log_window;        /* start of the current failure-log minute */
    unsigned logged, unlogged; /* failure lines in it, and those left out */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

kf__repair *kf__repair_new(const kf__repair_env *env, char *err, size_t errlen)
{
    kf__repair *r = kf__calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->env = *env;
    r->n = env->nstreams;
    r->slots = kf__calloc(r->n, sizeof *r->slots);
    r->queue = kf__calloc(r->n, sizeof *r->queue);
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&r->room_cv, NULL);
    kf__rng_seed(&r->rng, r);
    for (size_t i = 0; r->slots && i < r->n; i++)
        r->slots[i].tail_from = KF__NO_TAIL;
    if (r->slots && r->queue)
        r->fetcher = kf__fetcher_new(&env->fetch, err, errlen);
    else
        snprintf(err, errlen, "out of memory");
    if (!r->fetcher) {
        kf__repair_free(r);
        return NULL;
    }
    kf__fetcher_set_cancel(r->fetcher, &r->cancel); /* the periodic job's requests */
    return r;
}

void kf__repair_free(kf__repair *r)
{
    if (!r)
        return;
    kf__repair_stop(r);
    kf__fetcher_free(r->fetcher);
    kf__free(r->slots);
    kf__free(r->queue);
    kf__free(r->rows);
    kf__free(r->cur);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    pthread_cond_destroy(&r->room_cv);
    kf__free(r);
}

/* Under mu: puts an idle-or-applied stream in the queue. */
static void repair_enqueue(kf__repair *r, size_t si)
{
    repair_slot *s = &r->slots[si];
    s->queued = true;
    r->queue[(r->qhead + r->qlen) % r->n] = si;
    r->qlen++;
    pthread_cond_signal(&r->cv);
}

void kf__repair_request(kf__repair *r, size_t si, int64_t tail_from)
{
    if (!r || si >= r->n)
        return;
    pthread_mutex_lock(&r->mu);
    repair_slot *s = &r->slots[si];
    if (tail_from < s->tail_from)
        s->tail_from = tail_from;
    if (!s->queued && !s->in_flight && !s->applying) {
        r->busy++;
        repair_enqueue(r, si);
    } /* else: kf__repair_applied or the worker sees it */
    pthread_mutex_unlock(&r->mu);
}

/* A delay in [cap/2, cap] for the n-th failure (1 s doubling, 5 min at most). Under mu. */
static int64_t repair_backoff(kf__repair *r, unsigned n)
{
    uint64_t cap = kf__backoff_cap(n, REPAIR_BACKOFF_FIRST_MS, REPAIR_BACKOFF_CAP_MS);
    return (int64_t)(cap / 2 + kf__rng_upto(&r->rng, cap / 2));
}

void kf__repair_applied(kf__repair *r, size_t si, bool failed, int64_t delay_ms, bool more)
{
    if (!r || si >= r->n)
        return;
    pthread_mutex_lock(&r->mu);
    repair_slot *s = &r->slots[si];
    s->applying = false;
    int64_t now = mono_ms();
    if (failed) {
        s->failures++;
        s->not_before = now + repair_backoff(r, s->failures);
    } else {
        s->failures = 0;
        s->not_before = now + (delay_ms > 0 ? delay_ms : 0);
    }
    if (failed || more || s->tail_from != KF__NO_TAIL)
        repair_enqueue(r, si);
    else
        r->busy--;
    pthread_mutex_unlock(&r->mu);
}

size_t kf__repair_pending(kf__repair *r)
{
    if (!r)
        return 0;
    pthread_mutex_lock(&r->mu);
    size_t n = r->busy + r->nrows;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void kf__repair_get_stats(kf__repair *r, kf__fetch_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!r)
        return;
    pthread_mutex_lock(&r->mu); /* a copy the worker refreshes after each request */
    *out = r->stats;
    pthread_mutex_unlock(&r->mu);
}

/* Under mu: appends to the rows for the I/O thread, waiting for room; false when cancelled or
 * out of memory. */
static bool repair_post(kf__repair *r, const repair_row *row)
{
    while (r->nrows >= REPAIR_MAX_QUEUED && !atomic_load(&r->cancel))
        pthread_cond_wait(&r->room_cv, &r->mu);
    if (atomic_load(&r->cancel))
        return false;
    repair_row *p = kf__grow(r->rows, &r->rows_cap, r->nrows + 1, sizeof *p, 256);
    if (!p)
        return false;
    r->rows = p;
    r->rows[r->nrows++] = *row;
    return true;
}

/* Called by the fetcher on the worker thread, in order, for each closed row. */
static int repair_on_row(void *ud, const kf_kline *k)
{
    kf__repair *r = ud;
    repair_row row = {.si = r->current, .k = *k};
    pthread_mutex_lock(&r->mu);
    bool ok = repair_post(r, &row);
    pthread_mutex_unlock(&r->mu);
    r->env.ops->wake(r->env.owner);
    return ok ? 0 : 1;
}

/* Under mu: the first queued stream whose backoff is over, taken out of the queue; -1 when none
 * (*wait_ms: until the earliest, -1 when the queue is empty). */
static long repair_pick(kf__repair *r, int64_t now, int64_t *wait_ms)
{
    *wait_ms = -1;
    for (size_t i = 0; i < r->qlen; i++) {
        size_t si = r->queue[(r->qhead + i) % r->n];
        int64_t left = r->slots[si].not_before - now;
        if (left > 0) {
            if (*wait_ms < 0 || left < *wait_ms)
                *wait_ms = left;
            continue;
        }
        for (size_t j = i; j > 0; j--) /* close the gap, keeping the order of the others */
            r->queue[(r->qhead + j) % r->n] = r->queue[(r->qhead + j - 1) % r->n];
        r->qhead = (r->qhead + 1) % r->n;
        r->qlen--;
        r->slots[si].queued = false;
        return (long)si;
    }
    return -1;
}

/* Under mu: waits at most ms (or until signalled). */
static void repair_wait(kf__repair *r, int64_t ms)
{
    if (ms < 0) {
        pthread_cond_wait(&r->cv, &r->mu);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
}

/* The range to ask for stream si: its oldest holes (those within one page of the first), else
 * the tail. false when there is nothing to ask. *tail set when the tail is used. */
static bool repair_range(kf__repair *r, size_t si, int64_t tail, int64_t *from, int64_t *to)
{
    kf__stream *st = &r->env.streams[si];
    kf__hole h[64];
    size_t nh = kf__stream_holes(st, h, 64);
    if (nh) {
        *from = h[0].from;
        *to = h[0].to;
        for (size_t i = 1; i < nh; i++) {
            if (kf__interval_count(st->interval, *from, h[i].to) > REPAIR_SPAN_CANDLES)
                break;
            *to = h[i].to;
        }
        return true;
    }
    if (tail == KF__NO_TAIL)
        return false;
    *from = tail;
    *to = INT64_MAX;
    return true;
}

/* A failed request's line, at most REPAIR_LOG_PER_MINUTE a minute (the rest counted). */
static void repair_log_failure(kf__repair *r, const kf__stream *st, int64_t from, int64_t to,
                               kf_err e, const char *why, unsigned failures)
{
    int64_t now = mono_ms();
    if (now - r->log_window >= 60000) {
        if (r->unlogged)
            kf__log(r->env.log, KF_LOG_WARN,
                    "msg=\"REST repair failures not logged in the last minute\" count=%u",
                    r->unlogged);
        r->log_window = now;
        r->logged = r->unlogged = 0;
    }
    if (r->logged >= REPAIR_LOG_PER_MINUTE) {
        r->unlogged++;
        return;
    }
    r->logged++;
    kf__log(r->env.log, KF_LOG_WARN,
            "msg=\"REST repair failed: will ask again\" stream=%s from=%" PRId64 " to=%" PRId64
            " attempt=%u err=\"%s\" why=\"%s\"",
            st->name, from, to, failures, kf_strerror(e), why);
}

static void *repair_main(void *arg)
{
    kf__repair *r = arg;
    const kf__repair_env *env = &r->env;
    pthread_setname_np(pthread_self(), "kf-rest");
    unsigned every = env->ops->list ? env->list_every_ms : 0;
    int64_t next_list = mono_ms() + every;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (atomic_load(&r->cancel))
            break;
        if (every && mono_ms() >= next_list) { /* the owner's periodic job, in turn */
            pthread_mutex_unlock(&r->mu);
            env->ops->list(env->owner, r->fetcher);
            kf__fetch_stats fs;
            kf__fetcher_get_stats(r->fetcher, &fs);
            next_list = mono_ms() + every;
            pthread_mutex_lock(&r->mu);
            r->stats = fs;
            continue;
        }
        if (r->qlen && !env->ops->sinks_ready(env->owner)) {
            repair_wait(r, 200); /* rows now could not be stored: wait for the stores */
            continue;
        }
        int64_t wait_ms;
        long picked = repair_pick(r, mono_ms(), &wait_ms);
        if (every) {
            int64_t left = next_list - mono_ms();
            if (left < 0)
                left = 0;
            if (picked < 0 && (wait_ms < 0 || left < wait_ms))
                wait_ms = left;
        }
        if (picked < 0) {
            repair_wait(r, wait_ms);
            continue;
        }
        size_t si = (size_t)picked;
        repair_slot *s = &r->slots[si];
        s->in_flight = true;
        int64_t tail = s->tail_from;
        r->current = si;
        unsigned failures = s->failures;
        pthread_mutex_unlock(&r->mu);

        const kf__stream *st = &env->streams[si];
        int64_t from = 0, to = 0;
        bool ask = repair_range(r, si, tail, &from, &to);
        bool used_tail = ask && to == INT64_MAX;
        kf_err e = KF_OK;
        int64_t covered = from - 1;
        if (ask) {
            if (used_tail) {
                pthread_mutex_lock(&r->mu);
                s->tail_from = KF__NO_TAIL; /* taken; given back below if the request fails */
                pthread_mutex_unlock(&r->mu);
            }
            char err[512] = "";
            kf__log(env->log, KF_LOG_INFO,
                    "msg=\"fetching from REST\" stream=%s from=%" PRId64 " to=%" PRId64, st->name,
                    from, to);
            e = kf__fetch_klines(r->fetcher, st->symbol, st->interval, from, to, repair_on_row, r,
                                 &r->cancel, &covered, err, sizeof err);
            if (e == KF_ERR_NOT_RUNNING) /* cancelled: kf_stop; the next start finds the rest */
                e = KF_OK;
            else if (e)
                repair_log_failure(r, st, from, to, e, err, failures + 1);
        }

        kf__fetch_stats fs;
        kf__fetcher_get_stats(r->fetcher, &fs); /* the fetcher's own thread: no race */
        pthread_mutex_lock(&r->mu);
        r->stats = fs;
        s->in_flight = false;
        if (used_tail && e && tail < s->tail_from)
            s->tail_from = tail;
        repair_row done = {
            .si = si, .done = true, .err = e, .from = from, .to = to, .covered = covered};
        if (ask && repair_post(r, &done)) {
            s->applying = true; /* kf__repair_applied decides what comes next */
            env->ops->wake(env->owner);
        } else if (!ask && !atomic_load(&r->cancel) &&
                   (s->tail_from != KF__NO_TAIL || kf__stream_missing(&env->streams[si]))) {
            /* nothing was there to ask, but a tail or a hole came meanwhile (its request saw the
             * stream in flight and left it to us; the hole is in the stream before the request,
             * and both sides decide under mu, so this sees it) */
            repair_enqueue(r, si);
        } else {
            r->busy--;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

kf_err kf__repair_start(kf__repair *r, char *err, size_t errlen)
{
    atomic_store(&r->cancel, false);
    if (pthread_create(&r->thread, NULL, repair_main, r) != 0) {
        snprintf(err, errlen, "cannot create the REST thread");
        return KF_ERR_THREAD;
    }
    r->started = true;
    return KF_OK;
}

void kf__repair_stop(kf__repair *r)
{
    if (!r || !r->started)
        return;
    pthread_mutex_lock(&r->mu);
    atomic_store(&r->cancel, true);
    pthread_cond_broadcast(&r->cv);
    pthread_cond_broadcast(&r->room_cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    r->started = false;
}

bool kf__repair_drain(kf__repair *r)
{
    if (!r)
        return true;
    for (;;) {
        if (r->cur_i == r->cur_n) {
            /* swap the buffers: the worker appends to an empty one while these are applied */
            pthread_mutex_lock(&r->mu);
            repair_row *rows = r->rows;
            size_t n = r->nrows, cap = r->rows_cap;
            r->rows = r->cur;
            r->rows_cap = r->cur_cap;
            r->nrows = 0;
            pthread_cond_broadcast(&r->room_cv);
            pthread_mutex_unlock(&r->mu);
            r->cur = rows;
            r->cur_cap = cap;
            r->cur_n = n;
            r->cur_i = 0;
            if (!n)
                return true;
        }
        for (; r->cur_i < r->cur_n; r->cur_i++) {
            const repair_row *w = &r->cur[r->cur_i];
            if (w->done) {
                r->env.ops->done(r->env.owner, w->si, w->from, w->to, w->covered, w->err);
            } else {
                /* at the pace the stores take them, half of each queue left to the live
                 * stream: a page of 1500 rows would otherwise overflow a small queue, and
                 * what overflows is fetched again, and overflows again */
                if (!r->env.ops->sinks_ready(r->env.owner))
                    return false;
                r->env.ops->deliver(r->env.owner, w->si, &w->k);
            }
        }
    }
}
