/*
 * Writer: one thread per sink, fed by a bounded single-producer/single-consumer ring of
 * kf_kline copies.
 *
 * The ring: head (next slot to store, written by the writer thread only) and tail (next
 * slot to fill, written by the producer only) count rows since open; slot = index % cap.
 * The producer fills a slot, then publishes it by storing tail; the writer passes slots
 * [head, tail) to write() in place (no copy) and frees them by storing head afterwards, so
 * a row leaves the ring only once it is stored.
 *
 * Sleeping: each side sleeps on the mutex + its condvar only after announcing it
 * (consumer_sleeping / producer_waiting) and re-checking the indices; the other side
 * stores its index and then reads the flag, all seq_cst, so at least one of the two sees
 * the other's store (Dekker) and a wake-up is never lost. While nobody sleeps the producer
 * takes no lock.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "sink/sink.h"

#define WR_BATCH 1024
#define WR_BACKOFF_MIN_MS 100
#define WR_BACKOFF_MAX_MS 2000
#define WR_STOP_DEADLINE_MS 10000
#define WR_LOG_EVERY_MS 10000 /* at most one failure line per sink per 10 s */

enum { WR_IDLE, WR_RUNNING, WR_STOPPED };

/* A complete range to record once the rows pushed before it are written: when head >= after. */
typedef struct wr_note {
    kf__cover c;
    size_t after;
} wr_note;

struct kf__writer {
    const kf__sink_ops *ops;
    void *state;
    char *spec;
    kf__logger *lg;

    kf_kline *ring;
    size_t cap;
    _Atomic size_t head, tail;
    _Atomic int consumer_sleeping, producer_waiting;
    _Atomic int stopping;
    _Atomic int64_t deadline_ms; /* monotonic; valid once stopping */
    pthread_mutex_t mu;
    pthread_cond_t cv_data, cv_room;

    pthread_mutex_t life_mu; /* start/stop/free */
    int life;
    pthread_t thread;
    kf_err result; /* of the drain, returned by every stop */

    /* failure log rate limit (writer thread only) */
    int64_t last_log_ms;
    uint64_t unlogged;

    /* complete ranges waiting for their rows (kf__writer_cover): the producer appends under
     * note_mu, the writer takes the ready ones from the front; notes_added tells a sleeping
     * writer there is something (same handshake as tail) */
    pthread_mutex_t note_mu;
    wr_note *notes;
    size_t nnotes, notes_cap;
    kf__cover *note_buf; /* writer side: the ready ones, copied out */
    size_t note_buf_cap;
    _Atomic size_t notes_added, notes_taken;

    _Atomic int failing; /* the last write/flush/put_cover attempt failed */
    _Atomic uint64_t rows, batches, errors, full_waits, unstored, covers, rejected;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

kf__writer *kf__writer_open(const char *spec, size_t queue_cap, kf__logger *lg, char *err,
                            size_t errlen)
{
    const char *target = NULL;
    const kf__sink_ops *ops = kf__sink_lookup(spec, &target);
    char shown[1024]; /* what is logged and named: secrets masked */
    kf__sink_mask(spec, shown, sizeof shown);
    if (!ops) {
        snprintf(err, errlen,
                 "%s: unknown sink (expected sqlite:PATH, jsonl:PATH, jsonl:-, csv:PATH, csv:-, "
                 "postgres:CONNINFO or nats://HOST:PORT[?options])",
                 shown);
        return NULL;
    }
    if (queue_cap == 0) {
        snprintf(err, errlen, "%s: queue capacity must be at least 1", shown);
        return NULL;
    }
    kf__writer *w = kf__calloc(1, sizeof *w);
    if (w) {
        w->spec = kf__strdup(shown);
        w->ring = kf__calloc(queue_cap, sizeof *w->ring);
    }
    if (!w || !w->spec || !w->ring) {
        snprintf(err, errlen, "%s: out of memory for a queue of %zu rows", shown, queue_cap);
        if (w) {
            kf__free(w->spec);
            kf__free(w->ring);
            kf__free(w);
        }
        return NULL;
    }
    w->ops = ops;
    w->lg = lg;
    w->cap = queue_cap;
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->note_mu, NULL);
    pthread_mutex_init(&w->life_mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv_data, &ca);
    pthread_cond_init(&w->cv_room, &ca);
    pthread_condattr_destroy(&ca);
    if (ops->open(target, &w->state, err, errlen) != KF_OK) {
        w->state = NULL;
        kf__writer_free(w);
        return NULL;
    }
    if (ops->version >= 3 && ops->set_log)
        ops->set_log(w->state, lg);
    return w;
}

/* Rows carrying a decimal no sink can format or unterminated text would fail every retry;
 * they are refused at the door instead. */
static int row_valid(const kf_kline *k)
{
    const kf_dec d[8] = {k->open,           k->high,           k->low,
                         k->close,          k->volume,         k->quote_volume,
                         k->taker_buy_base, k->taker_buy_quote};
    for (int i = 0; i < 8; i++)
        if (d[i].scale < 0 || d[i].scale > 18)
            return 0;
    return memchr(k->symbol, 0, sizeof k->symbol) && memchr(k->interval, 0, sizeof k->interval);
}

/* Refuses (counts, logs) a push after stop began or a row no sink can store; true if refused. */
static bool wr_refuse(kf__writer *w, const kf_kline *k)
{
    if (!atomic_load(&w->stopping) && row_valid(k))
        return false;
    atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
    kf__log(w->lg, KF_LOG_ERROR, "msg=\"sink row refused\" spec=%s reason=%s open_time=%lld",
            w->spec, atomic_load(&w->stopping) ? "stopped" : "invalid", (long long)k->open_time);
    return true;
}

/* Wakes the writer if it sleeps (after the producer published something, seq_cst). */
static void wr_wake(kf__writer *w)
{
    if (atomic_load(&w->consumer_sleeping)) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_signal(&w->cv_data);
        pthread_mutex_unlock(&w->mu);
    }
}

/* Fills slot t and publishes it. */
static void wr_put(kf__writer *w, size_t t, const kf_kline *k)
{
    w->ring[t % w->cap] = *k;
    atomic_store(&w->tail, t + 1); /* seq_cst: ordered before the sleeping check */
    wr_wake(w);
}

void kf__writer_push(kf__writer *w, const kf_kline *k)
{
    if (wr_refuse(w, k))
        return;
    size_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
    if (t - atomic_load_explicit(&w->head, memory_order_acquire) == w->cap) {
        atomic_fetch_add_explicit(&w->full_waits, 1, memory_order_relaxed);
        pthread_mutex_lock(&w->mu);
        atomic_store(&w->producer_waiting, 1);
        while (t - atomic_load(&w->head) == w->cap)
            pthread_cond_wait(&w->cv_room, &w->mu);
        atomic_store(&w->producer_waiting, 0);
        pthread_mutex_unlock(&w->mu);
    }
    wr_put(w, t, k);
}

bool kf__writer_offer(kf__writer *w, const kf_kline *k)
{
    size_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
    if (t - atomic_load_explicit(&w->head, memory_order_acquire) == w->cap)
        return false;
    if (!wr_refuse(w, k))
        wr_put(w, t, k);
    return true;
}

size_t kf__writer_room(kf__writer *w)
{
    size_t t = atomic_load_explicit(&w->tail, memory_order_relaxed);
    return w->cap - (t - atomic_load_explicit(&w->head, memory_order_acquire));
}

bool kf__writer_healthy(kf__writer *w)
{
    size_t queued = atomic_load_explicit(&w->tail, memory_order_acquire) -
                    atomic_load_explicit(&w->head, memory_order_acquire);
    return !atomic_load_explicit(&w->failing, memory_order_relaxed) && queued <= w->cap / 2;
}

bool kf__writer_covers(kf__writer *w)
{
    return w->ops->put_cover != NULL;
}

kf_err kf__writer_cover(kf__writer *w, const kf__cover *c, size_t n)
{
    if (!w->ops->put_cover || n == 0)
        return KF_OK;
    size_t after = atomic_load_explicit(&w->tail, memory_order_relaxed);
    pthread_mutex_lock(&w->note_mu);
    wr_note *p = kf__grow(w->notes, &w->notes_cap, w->nnotes + n, sizeof *p, 64);
    if (!p) {
        pthread_mutex_unlock(&w->note_mu);
        return KF_ERR_NOMEM;
    }
    w->notes = p;
    for (size_t i = 0; i < n; i++)
        w->notes[w->nnotes++] = (wr_note){c[i], after};
    pthread_mutex_unlock(&w->note_mu);
    atomic_fetch_add(&w->notes_added, 1); /* seq_cst: ordered before the sleeping check */
    wr_wake(w);
    return KF_OK;
}

/* Logs a failure at most once per WR_LOG_EVERY_MS, with how many went unlogged. */
static void wr_log_failure(kf__writer *w, const char *what, const char *msg, int64_t backoff)
{
    int64_t now = now_ms();
    if (w->last_log_ms && now - w->last_log_ms < WR_LOG_EVERY_MS) {
        w->unlogged++;
        return;
    }
    kf__log(w->lg, KF_LOG_WARN,
            "msg=\"sink %s failed, retrying\" spec=%s error=\"%s\" retry_ms=%lld "
            "failures_since_last_line=%llu",
            what, w->spec, msg, (long long)backoff, (unsigned long long)w->unlogged);
    w->last_log_ms = now;
    w->unlogged = 0;
}

enum { WR_WRITE, WR_FLUSH, WR_COVER };
static const char *const wr_what[] = {"write", "flush", "cover"};

/*
 * Calls write(rows, n), flush() or put_cover(covers, n) until it succeeds, backing off 100 ms
 * doubling to 2 s. Returns 0 on success, -1 when stopping and the deadline passed.
 */
static int wr_until_ok(kf__writer *w, int op, const void *items, size_t n)
{
    char err[512];
    int64_t backoff = WR_BACKOFF_MIN_MS;
    int failed = 0;
    for (;;) {
        err[0] = 0;
        kf_err rc = op == WR_WRITE   ? w->ops->write(w->state, items, n, err, sizeof err)
                    : op == WR_FLUSH ? w->ops->flush(w->state, err, sizeof err)
                                     : w->ops->put_cover(w->state, items, n, err, sizeof err);
        if (rc == KF_OK) {
            atomic_store_explicit(&w->failing, 0, memory_order_relaxed);
            if (failed)
                kf__log(w->lg, KF_LOG_INFO, "msg=\"sink recovered\" spec=%s failed_attempts=%d",
                        w->spec, failed);
            return 0;
        }
        atomic_store_explicit(&w->failing, 1, memory_order_relaxed);
        failed++;
        atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
        int64_t wait = backoff;
        if (atomic_load(&w->stopping)) {
            int64_t left = atomic_load(&w->deadline_ms) - now_ms();
            if (left <= 0) {
                kf__log(w->lg, KF_LOG_ERROR,
                        "msg=\"sink %s failed at stop deadline\" spec=%s error=\"%s\"", wr_what[op],
                        w->spec, err);
                return -1;
            }
            if (wait > left)
                wait = left;
        }
        wr_log_failure(w, wr_what[op], err, wait);
        sleep_ms(wait);
        backoff = backoff * 2 > WR_BACKOFF_MAX_MS ? WR_BACKOFF_MAX_MS : backoff * 2;
    }
}

/*
 * Records the complete ranges whose rows are all written (after <= h). Returns -1 when the
 * stop deadline passed with put_cover still failing (the ranges are dropped: a start then checks
 * a little more, nothing is lost).
 */
static int wr_notes(kf__writer *w, size_t h)
{
    if (atomic_load(&w->notes_taken) == atomic_load(&w->notes_added))
        return 0;
    pthread_mutex_lock(&w->note_mu);
    size_t k = 0;
    while (k < w->nnotes && w->notes[k].after <= h)
        k++;
    if (k && k > w->note_buf_cap) {
        kf__cover *p = kf__realloc(w->note_buf, k * sizeof *p);
        if (p) {
            w->note_buf = p;
            w->note_buf_cap = k;
        } else {
            k = w->note_buf_cap; /* the rest next time */
        }
    }
    for (size_t i = 0; i < k; i++)
        w->note_buf[i] = w->notes[i].c;
    if (k) {
        memmove(w->notes, w->notes + k, (w->nnotes - k) * sizeof *w->notes);
        w->nnotes -= k;
    }
    if (!w->nnotes)
        atomic_store(&w->notes_taken, atomic_load(&w->notes_added));
    pthread_mutex_unlock(&w->note_mu);
    if (!k)
        return 0;
    if (wr_until_ok(w, WR_COVER, w->note_buf, k) != 0)
        return -1;
    atomic_fetch_add_explicit(&w->covers, k, memory_order_relaxed);
    return 0;
}

/* Frees n slots and wakes a producer waiting for room. */
static void wr_release(kf__writer *w, size_t h, size_t n)
{
    atomic_store(&w->head, h + n); /* seq_cst: ordered before the waiting check */
    if (atomic_load(&w->producer_waiting)) {
        pthread_mutex_lock(&w->mu);
        pthread_cond_signal(&w->cv_room);
        pthread_mutex_unlock(&w->mu);
    }
}

/*
 * The stop deadline passed with the sink still failing: counts as errors every row not
 * stored - those still queued, and those written but not flushed (dirty) unless one last
 * flush takes them (try_flush: the failure was a write, not the flush) - logs, and empties
 * the queue.
 */
static kf_err wr_give_up(kf__writer *w, size_t h, size_t dirty, int try_flush)
{
    char err[512];
    size_t queued = atomic_load(&w->tail) - h;
    if (dirty && try_flush && w->ops->flush(w->state, err, sizeof err) == KF_OK)
        dirty = 0;
    atomic_fetch_add_explicit(&w->errors, queued + dirty, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->unstored, queued + dirty, memory_order_relaxed);
    kf__log(w->lg, KF_LOG_ERROR,
            "msg=\"sink rows not stored at stop deadline\" spec=%s rows=%zu queued=%zu "
            "unflushed=%zu",
            w->spec, queued + dirty, queued, dirty);
    wr_release(w, h, queued);
    return KF_ERR_SINK;
}

/* The writer loop; also run inline by kf__writer_stop when never started. */
static kf_err wr_run(kf__writer *w)
{
    size_t dirty = 0; /* rows written since the last flush */
    for (;;) {
        size_t h = atomic_load_explicit(&w->head, memory_order_relaxed);
        size_t t = atomic_load_explicit(&w->tail, memory_order_acquire);
        if (h == t) {
            if (dirty) {
                if (wr_until_ok(w, WR_FLUSH, NULL, 0) != 0)
                    return wr_give_up(w, h, dirty, 0);
                dirty = 0;
                continue;
            }
            if (wr_notes(w, h) != 0)
                return wr_give_up(w, h, 0, 0);
            if (atomic_load(&w->stopping)) {
                if (atomic_load(&w->tail) == h &&
                    atomic_load(&w->notes_taken) == atomic_load(&w->notes_added))
                    return KF_OK;
                continue;
            }
            pthread_mutex_lock(&w->mu);
            atomic_store(&w->consumer_sleeping, 1);
            while (atomic_load(&w->tail) == h && !atomic_load(&w->stopping) &&
                   atomic_load(&w->notes_taken) == atomic_load(&w->notes_added))
                pthread_cond_wait(&w->cv_data, &w->mu);
            atomic_store(&w->consumer_sleeping, 0);
            pthread_mutex_unlock(&w->mu);
            continue;
        }
        size_t slot = h % w->cap, n = t - h;
        if (n > w->cap - slot)
            n = w->cap - slot; /* contiguous part; the rest is the next batch */
        size_t most = w->ops->version >= 3 && w->ops->max_batch ? w->ops->max_batch : WR_BATCH;
        if (n > most)
            n = most;
        if (wr_until_ok(w, WR_WRITE, &w->ring[slot], n) != 0)
            return wr_give_up(w, h, dirty, 1);
        size_t stored = n;
        if (w->ops->version >= 4 && w->ops->rejected) {
            uint64_t was = atomic_load_explicit(&w->rejected, memory_order_relaxed);
            uint64_t now = w->ops->rejected(w->state);
            if (now > was) {
                stored -= now - was < n ? (size_t)(now - was) : n;
                atomic_store_explicit(&w->rejected, now, memory_order_relaxed);
            }
        }
        atomic_fetch_add_explicit(&w->rows, stored, memory_order_relaxed);
        atomic_fetch_add_explicit(&w->batches, 1, memory_order_relaxed);
        dirty += n;
        wr_release(w, h, n);
    }
}

static void *wr_thread(void *arg)
{
    static _Atomic unsigned seq;
    kf__writer *w = arg;
    char name[16];
    snprintf(name, sizeof name, "kf-sink-%u", atomic_fetch_add(&seq, 1) % 1000000u);
    pthread_setname_np(pthread_self(), name);
    w->result = wr_run(w);
    return NULL;
}

kf_err kf__writer_start(kf__writer *w, char *err, size_t errlen)
{
    kf_err rc = KF_OK;
    pthread_mutex_lock(&w->life_mu);
    if (w->life != WR_IDLE) {
        snprintf(err, errlen, "%s: writer already started", w->spec);
        rc = KF_ERR_ALREADY_RUNNING;
    } else {
        /* The thread inherits a full signal mask: signals go to the application's threads. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int e = pthread_create(&w->thread, NULL, wr_thread, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e) {
            snprintf(err, errlen, "%s: pthread_create: %s", w->spec, strerror(e));
            rc = KF_ERR_THREAD;
        } else {
            w->life = WR_RUNNING;
        }
    }
    pthread_mutex_unlock(&w->life_mu);
    return rc;
}

kf_err kf__writer_stop_by(kf__writer *w, int64_t deadline_mono_ms)
{
    if (!w)
        return KF_ERR_INVALID_ARG;
    pthread_mutex_lock(&w->life_mu);
    if (w->life != WR_STOPPED) {
        atomic_store(&w->deadline_ms, deadline_mono_ms);
        pthread_mutex_lock(&w->mu);
        atomic_store(&w->stopping, 1);
        pthread_cond_signal(&w->cv_data);
        pthread_mutex_unlock(&w->mu);
        if (w->life == WR_RUNNING)
            pthread_join(w->thread, NULL);
        else
            w->result = wr_run(w); /* never started: drain on this thread */
        w->life = WR_STOPPED;
        kf__log(w->lg, KF_LOG_INFO,
                "msg=\"sink stopped\" spec=%s rows=%llu batches=%llu errors=%llu "
                "unstored=%llu rejected=%llu full_waits=%llu",
                w->spec, (unsigned long long)atomic_load(&w->rows),
                (unsigned long long)atomic_load(&w->batches),
                (unsigned long long)atomic_load(&w->errors),
                (unsigned long long)atomic_load(&w->unstored),
                (unsigned long long)atomic_load(&w->rejected),
                (unsigned long long)atomic_load(&w->full_waits));
    }
    kf_err rc = w->result;
    pthread_mutex_unlock(&w->life_mu);
    return rc;
}

kf_err kf__writer_stop(kf__writer *w)
{
    return kf__writer_stop_by(w, now_ms() + WR_STOP_DEADLINE_MS);
}

void kf__writer_discard(kf__writer *w)
{
    if (!w)
        return;
    if (w->state && w->ops->discard) {
        kf__writer_stop(w);
        w->ops->discard(w->state);
        w->state = NULL;
    }
    kf__writer_free(w);
}

void kf__writer_free(kf__writer *w)
{
    if (!w)
        return;
    if (w->state) {
        kf__writer_stop(w);
        w->ops->close(w->state);
    }
    pthread_cond_destroy(&w->cv_data);
    pthread_cond_destroy(&w->cv_room);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->life_mu);
    pthread_mutex_destroy(&w->note_mu);
    kf__free(w->notes);
    kf__free(w->note_buf);
    kf__free(w->ring);
    kf__free(w->spec);
    kf__free(w);
}

void kf__writer_get_stats(kf__writer *w, kf__writer_stats *out)
{
    out->rows = atomic_load_explicit(&w->rows, memory_order_relaxed);
    out->batches = atomic_load_explicit(&w->batches, memory_order_relaxed);
    out->errors = atomic_load_explicit(&w->errors, memory_order_relaxed);
    out->full_waits = atomic_load_explicit(&w->full_waits, memory_order_relaxed);
    out->unstored = atomic_load_explicit(&w->unstored, memory_order_relaxed);
    out->covers = atomic_load_explicit(&w->covers, memory_order_relaxed);
    out->rejected = atomic_load_explicit(&w->rejected, memory_order_relaxed);
    size_t head = atomic_load_explicit(&w->head, memory_order_acquire);
    out->queued = atomic_load_explicit(&w->tail, memory_order_acquire) - head;
    out->cap = w->cap;
    out->failing = atomic_load_explicit(&w->failing, memory_order_relaxed) != 0;
}

const char *kf__writer_spec(const kf__writer *w)
{
    return w->spec;
}

const kf__sink_ops *kf__writer_ops(kf__writer *w, void **state)
{
    if (state)
        *state = w->state;
    return w->ops;
}
