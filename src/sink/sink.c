/* Sink lookup by spec, and the line-file back end shared by the jsonl and csv sinks. */
#include "sink/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"

const kf__sink_ops *kf__sink_lookup(const char *spec, const char **target)
{
    static const kf__sink_ops *const all[] = {&kf__sink_sqlite, &kf__sink_jsonl, &kf__sink_csv};
    if (!spec)
        return NULL;
    const char *colon = strchr(spec, ':');
    if (!colon || colon[1] == 0)
        return NULL;
    size_t n = (size_t)(colon - spec);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strlen(all[i]->scheme) == n && memcmp(all[i]->scheme, spec, n) == 0) {
            if (target)
                *target = colon + 1;
            return all[i];
        }
    }
    return NULL;
}

/* ---- line files ---- */

#define LF_DRAIN_AT (64u * 1024u) /* write(2) once this much is pending */

typedef struct linefile {
    int fd;
    int own_fd; /* 0 for stdout */
    kf__line_fmt fmt;
    char *name; /* "scheme:target", for messages */
    char *buf;  /* pending bytes: [off, len) not yet written */
    size_t off, len, cap;
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

kf_err kf__linefile_open(const char *scheme, const char *target, const char *header,
                         kf__line_fmt fmt, void **state, char *err, size_t errlen)
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
    if (S_ISREG(st.st_mode) && st.st_size > 0) {
        empty = 0;
        /* A file cut mid-line (crash, full disk) gets its line ended before we append. */
        char last = '\n';
        int rfd = open(target, O_RDONLY | O_CLOEXEC); /* lf->fd is write-only */
        if (rfd >= 0 && pread(rfd, &last, 1, st.st_size - 1) == 1 && last != '\n')
            lf_append(lf, "\n", 1); /* fits: buf was just allocated */
        if (rfd >= 0)
            close(rfd);
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
    size_t keep = lf->len - lf->off; /* pending before this batch; restored on failure */
    char line[KF_KLINE_JSON_MAX + 1];
    for (size_t i = 0; i < n; i++) {
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
    kf__free(lf->buf);
    kf__free(lf->name);
    kf__free(lf);
}
