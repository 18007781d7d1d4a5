/* The REST repair worker: per-stream coalesced requests, one thread, rows back to the I/O thread.
 */
#include "collector/repair.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "collector/collector.h"
#include "core/alloc.h"

/* Rows fetched but not yet applied; the worker waits when this many are queued. */
#define REPAIR_MAX_QUEUED 65536

typedef struct repair_slot {
    int64_t from, to; /* pending range, valid when pending */
    bool pending, queued, in_flight;
} repair_slot;

typedef struct repair_row {
    size_t si;
    kf_kline k;
} repair_row;

struct kf__repair {
    struct kf_collector *c;
    kf__fetcher *fetcher;
    pthread_t thread;
    bool started;
    _Atomic bool cancel;

    pthread_mutex_t mu;
    pthread_cond_t cv;      /* work queued or stop */
    pthread_cond_t room_cv; /* rows drained */
    repair_slot *slots;
    size_t *queue; /* stream indexes, FIFO ring of nstreams */
    size_t qhead, qlen, n;
    repair_row *rows; /* fetched, for the I/O thread */
    size_t nrows, rows_cap;
    repair_row *spare; /* the I/O thread's side of the double buffer */
    size_t spare_cap;
    size_t busy;    /* requests pending or in flight */
    size_t current; /* stream in flight */
    kf__fetch_stats stats;
};

kf__repair *kf__repair_new(struct kf_collector *c, char *err, size_t errlen)
{
    kf__repair *r = kf__calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->c = c;
    r->n = c->nstreams;
    r->slots = kf__calloc(r->n, sizeof *r->slots);
    r->queue = kf__calloc(r->n, sizeof *r->queue);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_cond_init(&r->room_cv, NULL);
    kf__fetcher_opts o = {
        .rest_base = c->rest_base,
        .tls_verify = c->cfg->tls_verify,
        .ca_file = c->cfg->ca_file,
        .weight_budget = c->cfg->rest_weight_budget,
        .timeout_ms = c->cfg->connect_timeout_ms,
        .log = &c->log,
    };
    if (r->slots && r->queue)
        r->fetcher = kf__fetcher_new(&o, err, errlen);
    else
        snprintf(err, errlen, "out of memory");
    if (!r->fetcher) {
        kf__repair_free(r);
        return NULL;
    }
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
    kf__free(r->spare);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    pthread_cond_destroy(&r->room_cv);
    kf__free(r);
}

void kf__repair_request(kf__repair *r, size_t si, int64_t from, int64_t to)
{
    if (!r || si >= r->n || from > to)
        return;
    pthread_mutex_lock(&r->mu);
    repair_slot *s = &r->slots[si];
    if (s->pending) {
        if (from < s->from)
            s->from = from;
        if (to > s->to)
            s->to = to;
    } else {
        s->pending = true;
        s->from = from;
        s->to = to;
        if (!s->in_flight)
            r->busy++;
    }
    if (!s->queued && !s->in_flight) {
        s->queued = true;
        r->queue[(r->qhead + r->qlen) % r->n] = si;
        r->qlen++;
        pthread_cond_signal(&r->cv);
    }
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
    pthread_mutex_lock(&r->mu); /* a copy the worker refreshes after each request series */
    *out = r->stats;
    pthread_mutex_unlock(&r->mu);
}

/* Called by the fetcher on the worker thread, in order, for each closed row. */
static int repair_on_row(void *ud, const kf_kline *k)
{
    kf__repair *r = ud;
    pthread_mutex_lock(&r->mu);
    while (r->nrows >= REPAIR_MAX_QUEUED && !atomic_load(&r->cancel))
        pthread_cond_wait(&r->room_cv, &r->mu);
    if (atomic_load(&r->cancel)) {
        pthread_mutex_unlock(&r->mu);
        return 1;
    }
    if (r->nrows == r->rows_cap) {
        size_t cap = r->rows_cap ? r->rows_cap * 2 : 256;
        repair_row *p = kf__realloc(r->rows, cap * sizeof *p);
        if (!p) {
            pthread_mutex_unlock(&r->mu);
            return 1;
        }
        r->rows = p;
        r->rows_cap = cap;
    }
    r->rows[r->nrows].si = r->current;
    r->rows[r->nrows].k = *k;
    r->nrows++;
    pthread_mutex_unlock(&r->mu);
    uv_async_send(&r->c->wake);
    return 0;
}

static void *repair_main(void *arg)
{
    kf__repair *r = arg;
    struct kf_collector *c = r->c;
    pthread_setname_np(pthread_self(), "kf-rest");
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->qlen && !atomic_load(&r->cancel))
            pthread_cond_wait(&r->cv, &r->mu);
        if (atomic_load(&r->cancel))
            break;
        size_t si = r->queue[r->qhead];
        r->qhead = (r->qhead + 1) % r->n;
        r->qlen--;
        repair_slot *s = &r->slots[si];
        s->queued = false;
        s->pending = false;
        s->in_flight = true;
        int64_t from = s->from, to = s->to;
        r->current = si;
        pthread_mutex_unlock(&r->mu);

        const kf__stream *st = &c->streams[si];
        char err[512] = "";
        kf__log(&c->log, KF_LOG_INFO,
                "msg=\"fetching from REST\" stream=%s from=%" PRId64 " to=%" PRId64, st->name, from,
                to);
        kf_err e = kf__fetch_klines(r->fetcher, st->symbol, st->interval, from, to, repair_on_row,
                                    r, &r->cancel, err, sizeof err);
        if (e && e != KF_ERR_NOT_RUNNING)
            kf__log(&c->log, KF_LOG_ERROR,
                    "msg=\"REST repair failed\" stream=%s from=%" PRId64 " to=%" PRId64
                    " err=\"%s\" why=\"%s\"",
                    st->name, from, to, kf_strerror(e), err);

        kf__fetch_stats fs;
        kf__fetcher_get_stats(r->fetcher, &fs); /* the fetcher's own thread: no race */
        pthread_mutex_lock(&r->mu);
        r->stats = fs;
        s->in_flight = false;
        if (s->pending && !s->queued) { /* asked again meanwhile */
            s->queued = true;
            r->queue[(r->qhead + r->qlen) % r->n] = si;
            r->qlen++;
        } else if (!s->pending) {
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

void kf__repair_drain(kf__repair *r)
{
    if (!r)
        return;
    for (;;) {
        /* swap the buffers: the worker appends to an empty one while these are applied */
        pthread_mutex_lock(&r->mu);
        repair_row *rows = r->rows;
        size_t n = r->nrows, cap = r->rows_cap;
        r->rows = r->spare;
        r->rows_cap = r->spare_cap;
        r->nrows = 0;
        pthread_cond_broadcast(&r->room_cv);
        pthread_mutex_unlock(&r->mu);
        for (size_t i = 0; i < n; i++)
            kf__collector_deliver_rest(r->c, rows[i].si, &rows[i].k);
        pthread_mutex_lock(&r->mu);
        r->spare = rows;
        r->spare_cap = cap;
        pthread_mutex_unlock(&r->mu);
        if (!n)
            return;
    }
}
