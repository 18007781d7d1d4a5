/*
 * klinefeed-bench footprint --url ws://HOST:PORT/market [--rest-url http://HOST:PORT]
 *                           --streams-count N [--seconds S] [--intervals LIST] [--ring R]
 *
 * Configures N streams as symbols S0000USDT, S0001USDT, ... x intervals (the
 * library subscribes the product, so N must be symbols x intervals: by default
 * the largest interval count <= 15 that divides N is taken, first of the 15
 * intervals in Binance's order), starts the collector, waits until every
 * SUBSCRIBE batch is acknowledged (kf_connected), then measures the process
 * RSS (VmRSS) and the CPU seconds (user + sys) used over S seconds (default
 * 10) in which the collector only receives the simulator's normal updates.
 * Prints one line on stdout:
 *   streams=N connections=C rss_kb=R idle_cpu_s=X over_s=S
 * and details on stderr (RSS before create, after start, at connect; frames
 * and updates received in the window).
 *
 * Validation is off unless --rest-url is given. The simulator only delivers
 * data for the symbols it lists (--symbols S0000USDT,...), but an acknowledged
 * stream is what the footprint needs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "klinefeed.h"

/* VmRSS of this process in kB, or -1. */
long kfb_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: klinefeed-bench footprint --url ws://HOST:PORT/market [--rest-url URL] "
            "--streams-count N [--seconds S] [--intervals LIST] [--ring R] [--timeout S]\n");
    return 2;
}

int kfb_footprint(int argc, char **argv)
{
    const char *url = NULL, *rest = NULL, *ivlist = NULL;
    long n = 0, ring = 0;
    double seconds = 10, timeout_s = 120;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--url") && i + 1 < argc)
            url = argv[++i];
        else if (!strcmp(argv[i], "--rest-url") && i + 1 < argc)
            rest = argv[++i];
        else if (!strcmp(argv[i], "--streams-count") && i + 1 < argc)
            n = atol(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--intervals") && i + 1 < argc)
            ivlist = argv[++i];
        else if (!strcmp(argv[i], "--ring") && i + 1 < argc)
            ring = atol(argv[++i]);
        else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
            timeout_s = atof(argv[++i]);
        else
            return usage();
    }
    if (!url || n < 1 || n > 1000000 || !(seconds > 0) || !(timeout_s > 0) || ring < 0)
        return usage();

    long rss0 = kfb_rss_kb();
    kf_config *cfg = kf_config_new();
    if (!cfg) {
        fprintf(stderr, "footprint: out of memory\n");
        return 1;
    }
    int rc = 1;
    kf_collector *c = NULL;
    long niv = 0;
    if (ivlist) {
        if (kf_config_add_intervals(cfg, ivlist) != KF_OK) {
            fprintf(stderr, "footprint: %s\n", kf_config_errmsg(cfg));
            goto out;
        }
        niv = 1;
        for (const char *p = ivlist; *p; p++)
            niv += *p == ',';
    } else {
        for (niv = KF_INTERVAL_COUNT; n % niv; niv--)
            ;
        for (long i = 0; i < niv; i++)
            kf_config_add_interval(cfg, kf_interval_name((int)i));
    }
    if (n % niv) {
        fprintf(stderr, "footprint: %ld streams is not a multiple of %ld intervals\n", n, niv);
        goto out;
    }
    long nsym = n / niv;
    if (nsym > 10000) {
        fprintf(stderr, "footprint: %ld symbols: at most 10000 (S0000USDT..S9999USDT)\n", nsym);
        goto out;
    }
    for (long i = 0; i < nsym; i++) {
        char sym[16];
        snprintf(sym, sizeof sym, "S%04ldUSDT", i);
        if (kf_config_add_symbol(cfg, sym) != KF_OK) {
            fprintf(stderr, "footprint: %s\n", kf_config_errmsg(cfg));
            goto out;
        }
    }
    if (kf_config_set_ws_url(cfg, url) != KF_OK ||
        (rest ? kf_config_set_rest_url(cfg, rest) : kf_config_set_validate(cfg, KF_VALIDATE_OFF)) !=
            KF_OK ||
        (ring && kf_config_set_ring_size(cfg, (size_t)ring) != KF_OK) ||
        kf_config_set_log(cfg, NULL, NULL, KF_LOG_WARN) != KF_OK) {
        fprintf(stderr, "footprint: config: %s\n", kf_config_errmsg(cfg));
        goto out;
    }
    char err[256];
    c = kf_create(cfg, err, sizeof err);
    if (!c) {
        fprintf(stderr, "footprint: kf_create: %s\n", err);
        goto out;
    }
    long rss_created = kfb_rss_kb();
    double t0 = kfb_now_ns();
    kf_err e = kf_start(c);
    if (e != KF_OK) {
        fprintf(stderr, "footprint: kf_start: %s: %s\n", kf_strerror(e), kf_errmsg(c));
        goto out;
    }
    long rss_started = kfb_rss_kb();
    while (!kf_connected(c)) {
        if (kfb_now_ns() - t0 > timeout_s * 1e9) {
            fprintf(stderr, "footprint: not connected after %.0f s: %s\n", timeout_s, kf_errmsg(c));
            goto out;
        }
        sleep_ms(20);
    }
    double t_conn = kfb_now_ns();
    long rss_conn = kfb_rss_kb();
    kf_stats s0, s1;
    kf_stats_get(c, &s0, sizeof s0);
    double cpu0 = kfb_cpu_seconds(), w0 = kfb_now_ns();
    sleep_ms((long)(seconds * 1000));
    double cpu1 = kfb_cpu_seconds(), w1 = kfb_now_ns();
    long rss = kfb_rss_kb();
    kf_stats_get(c, &s1, sizeof s1);
    if (!kf_connected(c))
        fprintf(stderr, "footprint: warning: a connection was lost during the window\n");
    size_t conns = kf_connection_count(c);
    printf("streams=%zu connections=%zu rss_kb=%ld idle_cpu_s=%.3f over_s=%.1f\n",
           kf_stream_count(c), conns, rss, cpu1 - cpu0, (w1 - w0) / 1e9);
    fflush(stdout);
    fprintf(stderr,
            "footprint: symbols=%ld intervals=%ld ring=%ld rss_kb: start=%ld created=%ld "
            "started=%ld connected=%ld end=%ld; connect+subscribe %.2f s; window: frames=%llu "
            "updates=%llu closed=%llu (%.0f updates/s)\n",
            nsym, niv, ring ? ring : 1000, rss0, rss_created, rss_started, rss_conn, rss,
            (t_conn - t0) / 1e9, (unsigned long long)(s1.frames - s0.frames),
            (unsigned long long)(s1.updates - s0.updates),
            (unsigned long long)(s1.closed - s0.closed),
            (double)(s1.updates - s0.updates) / ((w1 - w0) / 1e9));
    rc = 0;
out:
    kf_free(c);
    kf_config_free(cfg);
    return rc;
}
