/*
 * The line-file back end shared by the jsonl and csv sinks: rows formatted into a buffer and
 * appended with write(2) (see sink.h), and what a file already holds, read back once at open.
 *
 * The index: a file opened for appending is read line by line (the key fields only: symbol,
 * interval, open time, closed) into, per stream, the sorted open times of its closed rows.
 * stored() answers from it before the writer starts, so a restart finds what the file lacks
 * (a hole behind the newest row, as well as the time after it). At the first write the index
 * shrinks to each stream's first and last open time and the runs missing between them, and
 * write() leaves out a closed row the file already holds: a file is not an upsert, and a candle
 * is written to it once however a restart resumed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "decode/interval.h"
#include "sink/format.h"
#include "sink/sink.h"

#define LF_DRAIN_AT (64u * 1024u) /* write(2) once this much is pending */

/* One stream's rows in the file: while indexing, its sorted open times; after the first write,
 * [first, last] and the runs missing between them (gaps, on the grid). */
typedef struct lf_stream {
    char symbol[KF_SYMBOL_MAX + 1];
    int interval;
    int64_t *times;
    size_t n, cap;
    int64_t first, last;
    int64_t (*gaps)[2];
    size_t ngaps;
} lf_stream;

typedef struct linefile {
    int fd;
    int own_fd; /* 0 for stdout */
    kf__line_fmt fmt;
    char *name; /* "scheme:target", for messages */
    char *buf;  /* pending bytes: [off, len) not yet written */
    size_t off, len, cap;
    char *path;   /* the file (NULL for standard output) */
    bool created; /* it did not exist before open */
    bool wrote;   /* bytes reached it */
    /* what the file held at open */
    bool indexed;   /* false for stdout, pipes: stored() cannot answer */
    bool compacted; /* times turned into first/last/gaps */
    lf_stream *streams;
    size_t nstreams, scap;
    uint32_t *slots; /* open addressing: stream index + 1, 0 empty */
    size_t mask;
} linefile;

static void lf_errno(const linefile *lf, const char *call, int e, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s: %s", lf->name, call, strerror(e));
}

/* Makes room for need more bytes after len; compacts first, grows if still short. */
static kf_err lf_reserve(linefile *lf, size_t need)
{
    if (lf->off) {
        memmove(lf->buf, lf->buf + lf->off, lf->len - lf->off);
        lf->len -= lf->off;
        lf->off = 0;
    }
    if (lf->cap - lf->len >= need)
        return KF_OK;
    size_t cap = lf->cap;
    while (cap - lf->len < need)
        cap *= 2;
    char *p = kf__realloc(lf->buf, cap);
    if (!p)
        return KF_ERR_NOMEM;
    lf->buf = p;
    lf->cap = cap;
    return KF_OK;
}

/* Writes pending bytes; on error keeps what was not written. */
static kf_err lf_drain(linefile *lf, char *err, size_t errlen)
{
    while (lf->off < lf->len) {
        ssize_t w = write(lf->fd, lf->buf + lf->off, lf->len - lf->off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            lf_errno(lf, "write", errno, err, errlen);
            return KF_ERR_IO;
        }
        lf->off += (size_t)w;
        lf->wrote = true;
    }
    lf->off = lf->len = 0;
    return KF_OK;
}

static kf_err lf_append(linefile *lf, const char *s, size_t n)
{
    kf_err rc = lf_reserve(lf, n);
    if (rc)
        return rc;
    memcpy(lf->buf + lf->len, s, n);
    lf->len += n;
    return KF_OK;
}

/* ---- the index of what the file holds ---- */

static uint64_t lf_hash(const char *sym, int interval)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)interval;
    for (; *sym; sym++)
        h = (h ^ (unsigned char)*sym) * 1099511628211ULL;
    return h ^ (h >> 29);
}

/* The stream's entry, or NULL (create: added when absent; NULL then means out of memory). */
static lf_stream *lf_find(linefile *lf, const char *sym, int interval, bool create)
{
    if (lf->slots) {
        for (size_t h = (size_t)lf_hash(sym, interval) & lf->mask; lf->slots[h];
             h = (h + 1) & lf->mask) {
            lf_stream *s = &lf->streams[lf->slots[h] - 1];
            if (s->interval == interval && strcmp(s->symbol, sym) == 0)
                return s;
        }
    }
    if (!create)
        return NULL;
    if ((lf->nstreams + 1) * 2 > lf->mask + 1 || !lf->slots) { /* grow the table */
        size_t size = lf->slots ? (lf->mask + 1) * 2 : 64;
        uint32_t *slots = kf__calloc(size, sizeof *slots);
        if (!slots)
            return NULL;
        for (size_t i = 0; i < lf->nstreams; i++) {
            size_t h = (size_t)lf_hash(lf->streams[i].symbol, lf->streams[i].interval) &
                       (size_t)(size - 1);
            while (slots[h])
                h = (h + 1) & (size - 1);
            slots[h] = (uint32_t)(i + 1);
        }
        kf__free(lf->slots);
        lf->slots = slots;
        lf->mask = size - 1;
    }
    lf_stream *p = kf__grow(lf->streams, &lf->scap, lf->nstreams + 1, sizeof *p, 16);
    if (!p)
        return NULL;
    lf->streams = p;
    lf_stream *s = &lf->streams[lf->nstreams];
    memset(s, 0, sizeof *s);
    snprintf(s->symbol, sizeof s->symbol, "%s", sym);
    s->interval = interval;
    size_t h = (size_t)lf_hash(sym, interval) & lf->mask;
    while (lf->slots[h])
        h = (h + 1) & lf->mask;
    lf->slots[h] = (uint32_t)(++lf->nstreams);
    return s;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Reads the whole file (fd at offset 0 for reading) into the index. */
static kf_err lf_index(linefile *lf, int rfd, kf__line_key_fn key, char *err, size_t errlen)
{
    enum { CHUNK = 1 << 20, LINE_MAX_ = 1 << 16 };
    char *buf = kf__malloc(CHUNK + LINE_MAX_);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory reading the file", lf->name);
        return KF_ERR_NOMEM;
    }
    size_t have = 0;       /* bytes of an unfinished line at the start of buf */
    bool skipping = false; /* inside a line longer than LINE_MAX_: not ours */
    for (;;) {
        ssize_t r = read(rfd, buf + have, CHUNK);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            lf_errno(lf, "read", errno, err, errlen);
            kf__free(buf);
            return KF_ERR_SINK;
        }
        size_t end = have + (size_t)r, start = 0;
        for (;;) {
            char *nl = r == 0 && start < end ? buf + end : memchr(buf + start, '\n', end - start);
            if (!nl)
                break;
            size_t len = (size_t)(nl - (buf + start));
            kf__line_key k;
            if (!skipping && key(buf + start, len, &k) && k.closed) {
                lf_stream *s = lf_find(lf, k.symbol, k.interval, true);
                int64_t *t = s ? kf__grow(s->times, &s->cap, s->n + 1, sizeof *t, 64) : NULL;
                if (!t) {
                    snprintf(err, errlen, "%s: out of memory reading the file", lf->name);
                    kf__free(buf);
                    return KF_ERR_NOMEM;
                }
                s->times = t;
                s->times[s->n++] = k.open_time;
            }
            skipping = false;
            start = (size_t)(nl - buf) + 1;
            if (start >= end)
                break;
        }
        if (r == 0)
            break;
        have = end - start;
        if (have > LINE_MAX_) { /* keep scanning for its end, without its bytes */
            have = 0;
            skipping = true;
        }
        memmove(buf, buf + start, have);
    }
    kf__free(buf);
    for (size_t i = 0; i < lf->nstreams; i++) { /* sorted, each once */
        lf_stream *s = &lf->streams[i];
        qsort(s->times, s->n, sizeof *s->times, cmp_i64);
        size_t o = 0;
        for (size_t j = 0; j < s->n; j++)
            if (o == 0 || s->times[j] != s->times[o - 1])
                s->times[o++] = s->times[j];
        s->n = o;
    }
    lf->indexed = true;
    return KF_OK;
}

/* After the start: each stream's first, last and missing runs; the open times are freed. */
static void lf_compact(linefile *lf)
{
    lf->compacted = true;
    for (size_t i = 0; i < lf->nstreams; i++) {
        lf_stream *s = &lf->streams[i];
        if (!s->n)
            continue;
        s->first = s->times[0];
        s->last = s->times[s->n - 1];
        size_t ng = 0;
        for (size_t j = 1; j < s->n; j++)
            ng += kf__interval_next(s->interval, s->times[j - 1]) < s->times[j];
        s->gaps = ng ? kf__malloc(ng * sizeof *s->gaps) : NULL;
        if (ng && !s->gaps) { /* keep nothing: a row then may be written twice, never lost */
            s->n = 0;
        } else {
            size_t g = 0;
            for (size_t j = 1; j < s->n; j++) {
                int64_t next = kf__interval_next(s->interval, s->times[j - 1]);
                if (next < s->times[j]) {
                    s->gaps[g][0] = next;
                    s->gaps[g][1] = kf__interval_prev(s->interval, s->times[j]);
                    g++;
                }
            }
            s->ngaps = ng;
        }
        kf__free(s->times);
        s->times = NULL;
        s->cap = 0;
    }
}

/* True when the file held this closed candle at open. */
static bool lf_holds(linefile *lf, const kf_kline *k)
{
    lf_stream *s = lf_find(lf, k->symbol, k->interval_index, false);
    if (!s || !s->n || k->open_time < s->first || k->open_time > s->last)
        return false;
    size_t lo = 0, hi = s->ngaps; /* the first gap ending at or after the open time */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->gaps[mid][1] < k->open_time)
            lo = mid + 1;
        else
            hi = mid;
    }
    return !(lo < s->ngaps && s->gaps[lo][0] <= k->open_time);
}

kf_err kf__linefile_stored(void *state, const char *symbol, const char *interval, int64_t from,
                           kf__stored_fn fn, void *ud, char *err, size_t errlen)
{
    linefile *lf = state;
    if (!lf->indexed || lf->compacted) {
        snprintf(err, errlen, "%s: what it holds cannot be read back", lf->name);
        return KF_ERR_NOT_FOUND;
    }
    int iv = kf_interval_index(interval, strlen(interval));
    lf_stream *s = iv < 0 ? NULL : lf_find(lf, symbol, iv, false);
    if (!s)
        return KF_OK;
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->times[mid] < from)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < s->n; i++)
        if (fn(ud, s->times[i]) != 0)
            break;
    return KF_OK;
}

kf_err kf__linefile_open(const char *scheme, const char *target, const char *header,
                         kf__line_fmt fmt, kf__line_key_fn key, void **state, char *err,
                         size_t errlen)
{
    *state = NULL;
    linefile *lf = kf__calloc(1, sizeof *lf);
    size_t nlen = strlen(scheme) + 1 + strlen(target) + 1;
    if (lf)
        lf->name = kf__malloc(nlen);
    if (lf && lf->name) {
        lf->cap = LF_DRAIN_AT * 2;
        lf->buf = kf__malloc(lf->cap);
    }
    if (!lf || !lf->name || !lf->buf) {
        snprintf(err, errlen, "%s:%s: out of memory", scheme, target);
        if (lf) {
            kf__free(lf->name);
            kf__free(lf);
        }
        return KF_ERR_NOMEM;
    }
    snprintf(lf->name, nlen, "%s:%s", scheme, target);
    lf->fmt = fmt;
    if (strcmp(target, "-") == 0) {
        lf->fd = STDOUT_FILENO;
    } else {
        struct stat before;
        lf->created = stat(target, &before) != 0 && errno == ENOENT;
        lf->path = kf__strdup(target);
        lf->fd = open(target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (lf->fd < 0) {
            lf_errno(lf, "open", errno, err, errlen);
            kf__linefile_close(lf);
            return KF_ERR_SINK;
        }
        lf->own_fd = 1;
    }
    struct stat st;
    if (fstat(lf->fd, &st) != 0) {
        lf_errno(lf, "fstat", errno, err, errlen);
        kf__linefile_close(lf);
        return KF_ERR_SINK;
    }
    if (S_ISDIR(st.st_mode)) {
        lf_errno(lf, "open", EISDIR, err, errlen);
        kf__linefile_close(lf);
        return KF_ERR_SINK;
    }
    int empty = 1; /* a device, fifo, pipe or tty has nothing to append to */
    if (S_ISREG(st.st_mode))
        lf->indexed = true; /* a new or empty file holds nothing: known */
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        empty = 0;
        int rfd = open(target, O_RDONLY | O_CLOEXEC); /* lf->fd is write-only */
        if (rfd < 0) {
            lf_errno(lf, "open for reading", errno, err, errlen);
            kf__linefile_close(lf);
            return KF_ERR_SINK;
        }
        /* A file cut mid-line (crash, full disk) gets its line ended before we append. */
        char last = '\n';
        if (pread(rfd, &last, 1, st.st_size - 1) == 1 && last != '\n')
            lf_append(lf, "\n", 1); /* fits: buf was just allocated */
        kf_err e = key ? lf_index(lf, rfd, key, err, errlen) : KF_OK;
        if (!key)
            lf->indexed = false;
        close(rfd);
        if (e) {
            kf__linefile_close(lf);
            return e;
        }
    }
    if (header && empty) {
        lf_append(lf, header, strlen(header));
        lf_append(lf, "\n", 1);
    }
    *state = lf;
    return KF_OK;
}

kf_err kf__linefile_write(void *state, const kf_kline *rows, size_t n, char *err, size_t errlen)
{
    linefile *lf = state;
    if (lf->len - lf->off >= LF_DRAIN_AT) {
        kf_err rc = lf_drain(lf, err, errlen);
        if (rc)
            return rc; /* nothing of this batch taken */
    }
    if (lf->indexed && !lf->compacted)
        lf_compact(lf);
    size_t keep = lf->len - lf->off; /* pending before this batch; restored on failure */
    char line[KF_KLINE_JSON_MAX + 1];
    for (size_t i = 0; i < n; i++) {
        if (rows[i].closed && lf->nstreams && lf_holds(lf, &rows[i]))
            continue; /* in the file already: a restart resumed before it */
        size_t m = lf->fmt(&rows[i], line, sizeof line - 1);
        kf_err rc = KF_ERR_INVALID_ARG;
        if (m) {
            line[m++] = '\n';
            rc = lf_append(lf, line, m);
        }
        if (rc) {
            lf->len = lf->off + keep; /* lf_append may have compacted, moving off */
            snprintf(err, errlen, "%s: row %zu (%s %s %lld): %s", lf->name, i, rows[i].symbol,
                     rows[i].interval, (long long)rows[i].open_time,
                     rc == KF_ERR_NOMEM ? "out of memory" : "cannot be formatted");
            return rc;
        }
    }
    return KF_OK;
}

kf_err kf__linefile_flush(void *state, char *err, size_t errlen)
{
    return lf_drain(state, err, errlen);
}

void kf__linefile_close(void *state)
{
    linefile *lf = state;
    if (!lf)
        return;
    if (lf->own_fd)
        close(lf->fd);
    for (size_t i = 0; i < lf->nstreams; i++) {
        kf__free(lf->streams[i].times);
        kf__free(lf->streams[i].gaps);
    }
    kf__free(lf->streams);
    kf__free(lf->slots);
    kf__free(lf->path);
    kf__free(lf->buf);
    kf__free(lf->name);
    kf__free(lf);
}

void kf__linefile_discard(void *state)
{
    linefile *lf = state;
    if (!lf)
        return;
    char *path = lf->created && !lf->wrote && lf->path ? kf__strdup(lf->path) : NULL;
    kf__linefile_close(lf);
    if (path)
        unlink(path);
    kf__free(path);
}
