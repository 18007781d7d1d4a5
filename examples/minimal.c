/* The README's library example: collect BTCUSDT 1m candles, print each closed one, then the
 * five most recent. Build: part of the project build (target klinefeed-example), or against an
 * installed copy: cc -o minimal minimal.c $(pkg-config --cflags --libs klinefeed). Usage:
 *   klinefeed-example [WS_BASE REST_BASE [SECONDS [CANDLES]]]
 * Without URLs (or with ""): $KLINEFEED_WS_URL and $KLINEFEED_REST_URL when set, else Binance
 * mainnet.
 * Runs SECONDS (default 180), or until CANDLES closed candles have arrived. */
#define _POSIX_C_SOURCE 200809L /* nanosleep, also under a strict -std=c17 */
#include <klinefeed.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static atomic_int closed_count;

static void on_closed(void *ud, const kf_kline *k)
{
    char close[KF_DEC_MAXLEN];
    kf_dec_format(k->close, close, sizeof close);
    printf("%s %s %lld close=%s trades=%lld\n", k->symbol, k->interval, (long long)k->open_time,
           close, (long long)k->trades);
    fflush(stdout);
    atomic_fetch_add(&closed_count, 1);
    (void)ud;
}

int main(int argc, char **argv)
{
    const char *ws = argc >= 3 && *argv[1] ? argv[1] : getenv("KLINEFEED_WS_URL");
    const char *rest = argc >= 3 && *argv[2] ? argv[2] : getenv("KLINEFEED_REST_URL");
    int seconds = argc >= 4 ? atoi(argv[3]) : 180;
    int candles = argc >= 5 ? atoi(argv[4]) : 0;
    char err[256];
    kf_config *cfg = kf_config_new();
    kf_config_add_symbols(cfg, "BTCUSDT");
    kf_config_add_intervals(cfg, "1m");
    if ((ws && *ws && kf_config_set_ws_url(cfg, ws) != KF_OK) ||
        (rest && *rest && kf_config_set_rest_url(cfg, rest) != KF_OK)) {
        fprintf(stderr, "%s\n", kf_config_errmsg(cfg));
        kf_config_free(cfg);
        return 2;
    }
    kf_config_on_closed(cfg, on_closed, NULL);
    kf_collector *c = kf_create(cfg, err, sizeof err);
    kf_config_free(cfg); /* the collector keeps its own copy */
    if (!c || kf_start(c) != KF_OK) {
        fprintf(stderr, "start failed: %s\n", c ? kf_errmsg(c) : err);
        kf_free(c);
        return 1;
    }
    /* the I/O thread collects meanwhile */
    for (int i = 0; i < seconds * 10 && (candles <= 0 || atomic_load(&closed_count) < candles); i++)
        nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
    kf_kline recent[5];
    size_t n = 5;
    if (kf_recent(c, "BTCUSDT", "1m", recent, &n) == KF_OK)
        printf("%zu recent candles, newest open time %lld\n", n,
               n ? (long long)recent[n - 1].open_time : 0LL);
    kf_stop(c); /* close frames sent, sinks flushed */
    kf_free(c);
    return 0;
}
