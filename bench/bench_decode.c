/*
 * klinefeed-bench decode [FILE] [--rounds N] [--seconds S]
 * Loads a capture (first line: URL; then "<unix time>: <frame>" lines), then
 * per round decodes all frames repeatedly for ~S seconds and the kline frames
 * alone for ~S/2 seconds. Prints one line per round and the medians.
 * Times are thread CPU time (CLOCK_THREAD_CPUTIME_ID), so other processes on
 * a shared machine do not inflate them; wall-clock medians are printed too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "klinefeed.h"

#ifndef KF_SAMPLES_DIR
#define KF_SAMPLES_DIR "."
#endif

typedef struct frame {
    char *p;
    size_t len;
} frame;

static volatile uint64_t sink;

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        if (r == 0)
            break;
        n += r;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* Decodes frames[0..n) `reps` times; returns elapsed CPU ns (*wall: wall ns). */
static double run(frame *const *frames, size_t n, size_t reps, double *wall)
{
    kf_kline k;
    uint64_t acc = 0;
    double w0 = kfb_now_ns(), t0 = kfb_thread_ns();
    for (size_t r = 0; r < reps; r++)
        for (size_t i = 0; i < n; i++) {
            kf_err e = kf_kline_decode(frames[i]->p, frames[i]->len, &k);
            acc += (uint64_t)e + (e == KF_OK ? (uint64_t)k.close.mant : 0);
        }
    double t1 = kfb_thread_ns(), w1 = kfb_now_ns();
    sink += acc;
    if (wall)
        *wall = w1 - w0;
    return t1 - t0;
}

/* CPU ns per frame over ~seconds of work; *wall gets wall ns per frame. */
static double measure(frame *const *frames, size_t n, double seconds, double *wall)
{
    size_t reps = 1;
    for (;;) { /* calibrate */
        double t = run(frames, n, reps, NULL);
        if (t > 2e7 || reps > ((size_t)1 << 30))
            break;
        reps *= 2;
    }
    double per = run(frames, n, 1, NULL) / (double)n;
    size_t want = (size_t)(seconds * 1e9 / (per > 1 ? per : 1) / (double)n);
    if (want < 1)
        want = 1;
    double w = 0, t = run(frames, n, want, &w);
    *wall = w / (double)(want * n);
    return t / (double)(want * n);
}

int kfb_decode(int argc, char **argv)
{
    const char *path = KF_SAMPLES_DIR "/binance_futures_2021-07-22_mixed_streams.txt";
    int rounds = 5;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (argv[i][0] != '-')
            path = argv[i];
        else {
            fprintf(stderr, "usage: klinefeed-bench decode [FILE] [--rounds N] [--seconds S]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > 1000 || !(seconds > 0)) {
        fprintf(stderr, "decode: bad --rounds or --seconds\n");
        return 2;
    }
    size_t len;
    char *text = read_file(path, &len);
    if (!text) {
        fprintf(stderr, "decode: cannot read %s\n", path);
        return 1;
    }
    size_t cap = 1024, n = 0, nk = 0;
    frame *all = malloc(cap * sizeof *all);
    size_t bytes = 0;
    const char *p = text, *end = text + len;
    int lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        const char *c = lineno == 1 ? NULL : memchr(p, ':', (size_t)(le - p));
        if (c && c + 1 < le) {
            const char *s = c + 1;
            while (s < le && *s == ' ')
                s++;
            size_t fl = (size_t)(le - s);
            while (fl && (s[fl - 1] == '\r' || s[fl - 1] == ' '))
                fl--;
            if (fl) {
                if (n == cap) {
                    cap *= 2;
                    all = realloc(all, cap * sizeof *all);
                }
                all[n].p = malloc(fl);
                memcpy(all[n].p, s, fl);
                all[n].len = fl;
                bytes += fl;
                n++;
            }
        }
        p = le + 1;
    }
    free(text);
    frame **pall = malloc((n ? n : 1) * sizeof *pall);
    frame **pk = malloc((n ? n : 1) * sizeof *pk);
    size_t klines = 0, others = 0, malformed = 0;
    for (size_t i = 0; i < n; i++) {
        kf_kline k;
        kf_err e = kf_kline_decode(all[i].p, all[i].len, &k);
        klines += e == KF_OK;
        others += e == KF_ERR_NOT_FOUND;
        malformed += e == KF_ERR_PARSE;
        pall[i] = &all[i];
        if (e == KF_OK)
            pk[nk++] = &all[i];
    }
    if (n == 0) {
        fprintf(stderr, "decode: no frames in %s\n", path);
        return 1;
    }
    printf("decode file=%s frames=%zu bytes=%zu klines=%zu other=%zu malformed=%zu\n", path, n,
           bytes, klines, others, malformed);
    double *va = calloc((size_t)rounds, sizeof *va), *vk = calloc((size_t)rounds, sizeof *vk);
    double *wa = calloc((size_t)rounds, sizeof *wa), *wk = calloc((size_t)rounds, sizeof *wk);
    for (int r = 0; r < rounds; r++) {
        va[r] = measure(pall, n, seconds, &wa[r]);
        vk[r] = nk ? measure(pk, nk, seconds / 2, &wk[r]) : 0;
        printf("round %d ns_per_frame=%.1f kline_ns=%.1f MB_per_s=%.0f wall_ns_per_frame=%.1f "
               "wall_kline_ns=%.1f\n",
               r + 1, va[r], vk[r], (double)bytes / ((double)n * va[r]) * 1e3, wa[r], wk[r]);
        fflush(stdout);
    }
    printf("wall ns_per_frame_median=%.1f kline_ns_median=%.1f\n", kfb_median(wa, (size_t)rounds),
           kfb_median(wk, (size_t)rounds));
    printf("decode ns_per_frame_median=%.1f kline_ns_median=%.1f frames=%zu rounds=%d\n",
           kfb_median(va, (size_t)rounds), kfb_median(vk, (size_t)rounds), n, rounds);
    for (size_t i = 0; i < n; i++)
        free(all[i].p);
    free(all);
    free(pall);
    free(pk);
    free(va);
    free(vk);
    free(wa);
    free(wk);
    return 0;
}
