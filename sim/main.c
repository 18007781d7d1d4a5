/* main.c - command line of klinefeed-sim, the offline Binance USDT-M Futures simulator:
 * parses the options, lists the symbols and runs the server until SIGINT/SIGTERM. */
#include "sim.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

sim_opts g_opt;
volatile sig_atomic_t g_stop;

static const char *USAGE =
    "usage: klinefeed-sim [options]\n"
    "  --listen HOST:PORT    listen address (default 127.0.0.1:0); prints \"port=<N>\"\n"
    "  --symbols LIST        comma list of TRADING symbols\n"
    "  --delisted LIST       extra listed symbols with status SETTLING\n"
    "  --start MS            simulated clock at startup, unix ms (default 1767225600000)\n"
    "  --speed X             simulated ms per real ms (default 1.0)\n"
    "  --update-ms N         simulated ms between stream updates (default 250)\n"
    "  --close-delay-ms N    simulated ms after close time for the x:true update (default 500)\n"
    "  --max-streams N       streams per connection (default 1024)\n"
    "  --max-msg-rate N      client messages per second per connection (default 10)\n"
    "  --ping-ms N           real ms between server pings (default 180000)\n"
    "  --weight-limit N      REST weight per UTC minute (default 2400)\n"
    "  --flood N             write N kline frames once a connection has a valid stream\n"
    "  --seed N              price path seed (default 1)\n"
    "  --help\n";

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void bad(const char *opt, const char *why)
{
    fprintf(stderr, "klinefeed-sim: %s: %s\n", opt, why);
    exit(2);
}

static int64_t parse_int(const char *opt, const char *v, int64_t lo, int64_t hi)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        bad(opt, "invalid number");
    return (int64_t)x;
}

static void add_list(const char *opt, const char *list, bool trading)
{
    char *dup = sim_xstrdup(list);
    char *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (strlen(tok) >= 60)
            bad(opt, "symbol too long");
        for (const char *c = tok; *c; c++)
            if ((*c >= 'a' && *c <= 'z') || *c == '/' || *c == '@' || *c == ' ')
                bad(opt, "symbols must be uppercase");
        market_add_symbol(tok, trading);
        n++;
    }
    free(dup);
    if (!n && trading)
        bad(opt, "empty list");
}

int main(int argc, char **argv)
{
    g_opt.port = 0;
    snprintf(g_opt.host, sizeof g_opt.host, "127.0.0.1");
    g_opt.start_ms = 1767225600000LL;
    g_opt.speed = 1.0;
    g_opt.update_ms = 250;
    g_opt.close_delay_ms = 500;
    g_opt.max_streams = 1024;
    g_opt.max_msg_rate = 10;
    g_opt.ping_ms = 180000;
    g_opt.weight_limit = 2400;
    g_opt.flood = 0;
    g_opt.seed = 1;
    const char *symbols = "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT,DOGEUSDT,ADAUSDT,AVAXUSDT";
    const char *delisted = NULL;

    for (int i = 1; i < argc; i++) {
        char name[64];
        const char *arg = argv[i];
        const char *val = NULL;
        const char *eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) == 0 && eq && (size_t)(eq - arg) < sizeof name) {
            memcpy(name, arg, (size_t)(eq - arg));
            name[eq - arg] = 0;
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", arg);
        }
        if (strcmp(name, "--help") == 0) {
            fputs(USAGE, stdout);
            return 0;
        }
        static const char *const known[] = {
            "--listen",       "--symbols",        "--delisted",    "--start",        "--speed",
            "--update-ms",    "--close-delay-ms", "--max-streams", "--max-msg-rate", "--ping-ms",
            "--weight-limit", "--flood",          "--seed"};
        bool ok = false;
        for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
            ok |= strcmp(name, known[k]) == 0;
        if (!ok)
            bad(name, "unknown option");
        if (!val) {
            if (i + 1 >= argc)
                bad(name, "missing value");
            val = argv[++i];
        }
        if (strcmp(name, "--listen") == 0) {
            const char *colon = strrchr(val, ':');
            if (!colon || (size_t)(colon - val) >= sizeof g_opt.host)
                bad(name, "expected HOST:PORT");
            const char *h = val;
            size_t hl = (size_t)(colon - val);
            if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [::1]:0 */
                h++;
                hl -= 2;
            }
            memcpy(g_opt.host, h, hl);
            g_opt.host[hl] = 0;
            if (!g_opt.host[0])
                snprintf(g_opt.host, sizeof g_opt.host, "0.0.0.0");
            g_opt.port = (int)parse_int(name, colon + 1, 0, 65535);
        } else if (strcmp(name, "--symbols") == 0) {
            symbols = val;
        } else if (strcmp(name, "--delisted") == 0) {
            delisted = val;
        } else if (strcmp(name, "--start") == 0) {
            g_opt.start_ms = parse_int(name, val, 0, 4102444800000LL);
        } else if (strcmp(name, "--speed") == 0) {
            char *end;
            errno = 0;
            double x = strtod(val, &end);
            if (errno || end == val || *end || !(x > 0) || x > 1e9)
                bad(name, "invalid number");
            g_opt.speed = x;
        } else if (strcmp(name, "--update-ms") == 0) {
            g_opt.update_ms = parse_int(name, val, 1, 86400000);
        } else if (strcmp(name, "--close-delay-ms") == 0) {
            g_opt.close_delay_ms = parse_int(name, val, 0, 86400000);
        } else if (strcmp(name, "--max-streams") == 0) {
            g_opt.max_streams = (int)parse_int(name, val, 1, 1000000);
        } else if (strcmp(name, "--max-msg-rate") == 0) {
            g_opt.max_msg_rate = (int)parse_int(name, val, 1, 1000000);
        } else if (strcmp(name, "--ping-ms") == 0) {
            g_opt.ping_ms = parse_int(name, val, 1, 86400000);
        } else if (strcmp(name, "--weight-limit") == 0) {
            g_opt.weight_limit = parse_int(name, val, 1, 1000000000);
        } else if (strcmp(name, "--flood") == 0) {
            g_opt.flood = parse_int(name, val, 0, INT64_MAX);
        } else if (strcmp(name, "--seed") == 0) {
            g_opt.seed = (uint64_t)parse_int(name, val, 0, INT64_MAX);
        }
    }
    /* symbols are hashed with the seed, so list them after all options are known */
    add_list("--symbols", symbols, true);
    if (delisted)
        add_list("--delisted", delisted, false);

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    sim_clock_init();
    return server_run();
}
