/*
 * klinefeed-bench e2e --url ws[s]://HOST:PORT/market --streams a,b,... --count N
 *                     [--rest-url URL] [--ca-file PATH] [--warmup W] [--timeout S]
 *
 * End to end through the real library path: WebSocket connection, frame
 * decode, per-stream state and ring, on_kline callback. No sinks. Symbol
 * validation is off unless --rest-url is given. A wss:// URL goes through TLS, verified
 * against the system store or --ca-file (klinefeed-sim --tls-cert/--tls-key with a
 * certificate that CA signed). The stream names are split
 * into symbols and intervals; the library subscribes to their product
 * (symbols x intervals), so "btcusdt@kline_1m,ethusdt@kline_5m" subscribes
 * four streams.
 *
 * Counts klines in on_kline (on the I/O thread). The first kline takes the
 * start snapshot (monotonic clock and getrusage); the Nth takes the end
 * snapshot and wakes the main thread, which calls kf_stop. Prints exactly one
 * line on stdout:
 *   messages=N seconds=S cpu=C sum_close=X
 * and a derived line on stderr: msgs_per_s and cpu_s_per_million.
 *
 * --warmup W (default 0): the first W klines are received but not measured; the
 * snapshots are taken at kline W+1 and W+N and sum_close covers those N. The
 * simulator's --flood starts only after it has sent a few normal updates (one
 * per 250 ms), so without a warm-up the span includes ~0.25-1 s of waiting.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"
#include "klinefeed.h"

typedef struct e2e_state {
    uint64_t warmup;    /* klines before the measured span */
    uint64_t target;    /* warmup + N */
    uint64_t count;     /* only touched on the I/O thread until done */
    double sum_close;   /* idem */
    double t_first_ns;  /* monotonic ns at the first kline */
    double cpu_first_s; /* process CPU seconds at the first kline */
    double t_last_ns;   /* at the Nth kline */
    double cpu_last_s;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done; /* under mu */
} e2e_state;

double kfb_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void on_kline(void *ud, const kf_kline *k)
{
    e2e_state *st = ud;
    if (st->count >= st->target)
        return; /* frames still in flight after the Nth */
    if (st->count < st->warmup) {
        st->count++;
        return;
    }
    if (st->count == st->warmup) {
        st->cpu_first_s = kfb_cpu_seconds();
        st->t_first_ns = kfb_now_ns();
    }
    st->sum_close += kf_dec_to_double(k->close);
    if (++st->count == st->target) {
        st->t_last_ns = kfb_now_ns();
        st->cpu_last_s = kfb_cpu_seconds();
        pthread_mutex_lock(&st->mu);
        st->done = 1;
        pthread_cond_signal(&st->cv);
        pthread_mutex_unlock(&st->mu);
    }
}

/* Splits "btcusdt@kline_1m,ethusdt@kline_5m" into symbols and intervals of cfg. */
int kfb_add_streams(kf_config *cfg, const char *list)
{
    char *dup = strdup(list);
    if (!dup)
        return -1;
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *at = strstr(tok, "@kline_");
        if (!at || at == tok) {
            fprintf(stderr, "bad stream name '%s' (want symbol@kline_interval)\n", tok);
            free(dup);
            return -1;
        }
        *at = 0;
        if (kf_config_add_symbol(cfg, tok) != KF_OK ||
            kf_config_add_interval(cfg, at + 7) != KF_OK) {
            fprintf(stderr, "bad stream '%s@kline_%s': %s\n", tok, at + 7, kf_config_errmsg(cfg));
            free(dup);
            return -1;
        }
        n++;
    }
    free(dup);
    if (n == 0)
        fprintf(stderr, "no streams given\n");
    return n ? n : -1;
}

static int usage(void)
{
    fprintf(stderr, "usage: klinefeed-bench e2e --url ws[s]://HOST:PORT/market --streams a,b,... "
                    "--count N [--rest-url URL] [--ca-file PATH] [--warmup W] [--timeout S]\n");
    return 2;
}

int kfb_e2e(int argc, char **argv)
{
    const char *url = NULL, *streams = NULL, *rest = NULL, *ca_file = NULL;
    long long count = 0, warmup = 0;
    double timeout_s = 120;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--url") && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(argv[i], "--streams") && i + 1 < argc)
            streams = argv[++i];
        else if (!strcmp(argv[i], "--count") && i + 1 < argc)
            count = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc)
            warmup = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--rest-url") && i + 1 < argc)
            rest = argv[++i];
        else if (!strcmp(argv[i], "--ca-file") && i + 1 < argc)
            ca_file = argv[++i];
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout_s = atof(argv[++i]);
        else
            return usage();
    }
    if (!url || !streams || count < 1 || warmup < 0 || !(timeout_s > 0))
        return usage();

    kf_config *cfg = kf_config_new();
    if (!cfg) {
        fprintf(stderr, "e2e: out of memory\n");
        return 1;
    }
    e2e_state st;
    memset(&st, 0, sizeof st);
    st.warmup = (uint64_t)warmup;
    st.target = (uint64_t)warmup + (uint64_t)count;
    pthread_mutex_init(&st.mu, NULL);
    pthread_cond_init(&st.cv, NULL);

    int rc = 1;
    kf_collector *c = NULL;
    if (kfb_add_streams(cfg, streams) < 0)
        goto out;
    if (kf_config_set_ws_url(cfg, url) != KF_OK ||
        (rest ? kf_config_set_rest_url(cfg, rest) : kf_config_set_validate(cfg, KF_VALIDATE_OFF)) !=
            KF_OK ||
        (ca_file && kf_config_set_ca_file(cfg, ca_file) != KF_OK) ||
        kf_config_on_kline(cfg, on_kline, &st) != KF_OK ||
        kf_config_set_log(cfg, NULL, NULL, KF_LOG_WARN) != KF_OK) {
        fprintf(stderr, "e2e: config: %s\n", kf_config_errmsg(cfg));
        goto out;
    }
    char err[256];
    c = kf_create(cfg, err, sizeof err);
    if (!c) {
        fprintf(stderr, "e2e: kf_create: %s\n", err);
        goto out;
    }
    kf_err e = kf_start(c);
    if (e != KF_OK) {
        fprintf(stderr, "e2e: kf_start: %s: %s\n", kf_strerror(e), kf_errmsg(c));
        goto out;
    }

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)timeout_s;
    pthread_mutex_lock(&st.mu);
    int w = 0;
    while (!st.done && w != ETIMEDOUT)
        w = pthread_cond_timedwait(&st.cv, &st.mu, &deadline);
    int done = st.done;
    pthread_mutex_unlock(&st.mu);
    kf_stop(c);

    if (!done) {
        kf_stats s;
        kf_stats_get(c, &s, sizeof s);
        fprintf(stderr,
                "e2e: timeout after %.0f s: %llu of %lld klines (frames=%llu updates=%llu "
                "unknown_streams=%llu acks=%llu disconnects=%llu)\n",
                timeout_s, (unsigned long long)st.count, (long long)st.target,
                (unsigned long long)s.frames, (unsigned long long)s.updates,
                (unsigned long long)s.unknown_streams, (unsigned long long)s.acks,
                (unsigned long long)s.disconnects);
        goto out;
    }
    /* the span covers klines 1..N: N-1 intervals between first and last */
    double secs = (st.t_last_ns - st.t_first_ns) / 1e9;
    double cpu = st.cpu_last_s - st.cpu_first_s;
    printf("messages=%lld seconds=%.6f cpu=%.6f sum_close=%.17g\n", count, secs, cpu, st.sum_close);
    fflush(stdout);
    /* msgs_per_cpu_s: the rate if this process had had a core to itself (useful on a
     * shared, loaded machine, where wall time includes time spent waiting for a core) */
    fprintf(stderr, "e2e: msgs_per_s=%.0f cpu_s_per_million=%.4f msgs_per_cpu_s=%.0f\n",
            secs > 0 ? (double)count / secs : 0, cpu / (double)count * 1e6,
            cpu > 0 ? (double)count / cpu : 0);
    kf_stats s;
    kf_stats_get(c, &s, sizeof s);
    fprintf(stderr,
            "e2e: library stats: frames=%llu updates=%llu parse_errors=%llu unknown_streams=%llu "
            "other_events=%llu disconnects=%llu\n",
            (unsigned long long)s.frames, (unsigned long long)s.updates,
            (unsigned long long)s.parse_errors, (unsigned long long)s.unknown_streams,
            (unsigned long long)s.other_events, (unsigned long long)s.disconnects);
    rc = 0;
out:
    kf_free(c);
    kf_config_free(cfg);
    pthread_cond_destroy(&st.cv);
    pthread_mutex_destroy(&st.mu);
    return rc;
}
