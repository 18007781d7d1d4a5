/* util.c - clocks (real, simulated, wall) and the growable byte buffer of klinefeed-sim. */
#include "sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct timespec clock_t0;

void sim_clock_init(void)
{
    clock_gettime(CLOCK_MONOTONIC, &clock_t0);
}

int64_t sim_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)(ts.tv_sec - clock_t0.tv_sec) * 1000 +
           (ts.tv_nsec - clock_t0.tv_nsec) / 1000000;
}

int64_t sim_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double real = (double)(ts.tv_sec - clock_t0.tv_sec) * 1000.0 +
                  (double)(ts.tv_nsec - clock_t0.tv_nsec) / 1e6;
    return g_opt.start_ms + (int64_t)(real * g_opt.speed);
}

int64_t sim_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void *sim_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "klinefeed-sim: out of memory\n");
        abort();
    }
    return p;
}

void *sim_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "klinefeed-sim: out of memory\n");
        abort();
    }
    return q;
}

char *sim_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = sim_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

void sb_reserve(sbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    b->p = sim_xrealloc(b->p, cap);
    b->cap = cap;
}

void sb_put(sbuf *b, const void *d, size_t n)
{
    sb_reserve(b, n);
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = 0;
}

void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_put(b, tmp, (size_t)n);
        return;
    }
    sb_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sb_json_str(sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n + 2);
    b->p[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            sb_put(b, e, 2);
        } else if (ch < 0x20) {
            sb_printf(b, "\\u%04x", ch);
        } else {
            sb_put(b, &s[i], 1);
        }
    }
    sb_put(b, "\"", 1);
}

void sb_consume(sbuf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->p, b->p + n, b->len - n);
        b->len -= n;
    }
    if (b->p)
        b->p[b->len] = 0;
}

void sb_free(sbuf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void sb_dec(sbuf *b, __int128 v, int scale)
{
    char tmp[64];
    int n = 0;
    if (v < 0)
        v = 0;
    do {
        tmp[n++] = (char)('0' + (int)(v % 10));
        v /= 10;
    } while (v > 0);
    while (n < scale + 1)
        tmp[n++] = '0';
    char out[72];
    int k = 0;
    for (int i = n - 1; i >= 0; i--) {
        out[k++] = tmp[i];
        if (i == scale && scale > 0)
            out[k++] = '.';
    }
    sb_put(b, out, (size_t)k);
}

static int hexdig(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t url_decode(const char *s, size_t n, char *out)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexdig(s[i + 1]) >= 0 && hexdig(s[i + 2]) >= 0) {
            out[k++] = (char)(hexdig(s[i + 1]) * 16 + hexdig(s[i + 2]));
            i += 2;
        } else if (s[i] == '+') {
            out[k++] = ' ';
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = 0;
    return k;
}
