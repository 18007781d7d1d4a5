/* The README's library example: collect BTCUSDT 1m candles, print each closed one, then the
 * five most recent. Build: part of the project build (target klinefeed-example). Usage:
 *   klinefeed-example [WS_BASE REST_BASE]   (default: Binance mainnet) */
#include <klinefeed.h>
#include <stdio.h>
#include <unistd.h>

static void on_closed(void *ud, const kf_kline *k)
{
    char close[KF_DEC_MAXLEN];
    kf_dec_format(k->close, close, sizeof close);
    printf("%s %s %lld close=%s trades=%lld\n", k->symbol, k->interval, (long long)k->open_time,
           close, (long long)k->trades);
    (void)ud;
}

int main(int argc, char **argv)
{
    char err[256];
    kf_config *cfg = kf_config_new();
    kf_config_add_symbols(cfg, "BTCUSDT");
    kf_config_add_intervals(cfg, "1m");
    if (argc == 3) {
        kf_config_set_ws_url(cfg, argv[1]);
        kf_config_set_rest_url(cfg, argv[2]);
    }
    kf_config_on_closed(cfg, on_closed, NULL);
    kf_collector *c = kf_create(cfg, err, sizeof err);
    kf_config_free(cfg); /* the collector keeps its own copy */
    if (!c || kf_start(c) != KF_OK) {
        fprintf(stderr, "start failed: %s\n", c ? kf_errmsg(c) : err);
        kf_free(c);
        return 1;
    }
    sleep(180); /* the I/O thread collects meanwhile */
    kf_kline recent[5];
    size_t n = 5;
    if (kf_recent(c, "BTCUSDT", "1m", recent, &n) == KF_OK)
        printf("%zu recent candles, newest open time %lld\n", n,
               n ? (long long)recent[n - 1].open_time : 0LL);
    kf_stop(c); /* close frames sent, sinks flushed */
    kf_free(c);
    return 0;
}
