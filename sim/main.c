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
    "TLS (both or neither; default: plain HTTP and WebSocket):\n"
    "  --tls-cert PATH       PEM certificate (chain) of the server: the listening port then\n"
    "                        speaks TLS only, for WebSocket (wss://HOST:PORT/market/ws,\n"
    "                        /market/stream), REST (https://HOST:PORT/fapi/v1/...) and /sim/*\n"
    "  --tls-key PATH        PEM private key of that certificate\n"
    "                        e.g. klinefeed run --ws-url wss://localhost:PORT/market\n"
    "                        --rest-url https://localhost:PORT --ca-file CA.pem, where the\n"
    "                        certificate names localhost and CA.pem signed it\n"
    "fault injection (all off by default; S = mean real seconds between events, applied to a\n"
    "random open WebSocket connection; P = probability 0..1):\n"
    "  --fault-seed N        seed of every random fault choice (default 1)\n"
    "  --faults-start-ms N   no fault before N real ms after startup (default 0)\n"
    "  --faults-stop-ms N    no fault from N real ms after startup on (default: never stop)\n"
    "  --fault-reset-every S      TCP reset, no close frame\n"
    "  --fault-stall-every S      the connection goes silent (no data, pings, pongs, acks)\n"
    "  --fault-close-every S      close frame 1001 \"going away\" / 1008 \"Too many requests\"\n"
    "  --fault-refuse-every S     for --refuse-ms, new TCP connections are reset on accept\n"
    "  --refuse-ms N              length of a refusal period, real ms (default 3000)\n"
    "  --fault-garbage-every S    one hostile frame: non-JSON, truncated kline, binary,\n"
    "                             2 MiB text, duplicate kline, unknown event, extra key\n"
    "  --drop-close-rate P   per (connection, candle): the x:true update is never sent\n"
    "  --max-conn-age-ms N   close (1001) a WebSocket connection older than N real ms\n"
    "  --rest-429-rate P     429, Retry-After 1..3 s, -1003 (a request inside an announced\n"
    "                        Retry-After window earns 418, then every request is 418)\n"
    "  --rest-500-rate P     500 or 503, -1001 Internal error\n"
    "  --rest-slow-rate P    the response is delayed by --rest-slow-ms (default 3000)\n"
    "  --rest-timeout-rate P the request is never answered; closed after 30 s\n"
    "  --ban-ms N            length of a 418 ban, real ms (default 120000)\n"
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

static double parse_dbl(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo) || !(x <= hi))
        bad(opt, "invalid number");
    return x;
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
    g_opt.refuse_ms = 3000;
    g_opt.rest_slow_ms = 3000;
    g_opt.ban_ms = 120000;
    g_opt.fault_seed = 1;
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
        static const char *const known[] = {"--listen",
                                            "--symbols",
                                            "--delisted",
                                            "--start",
                                            "--speed",
                                            "--update-ms",
                                            "--close-delay-ms",
                                            "--max-streams",
                                            "--max-msg-rate",
                                            "--ping-ms",
                                            "--weight-limit",
                                            "--flood",
                                            "--seed",
                                            "--fault-seed",
                                            "--faults-start-ms",
                                            "--faults-stop-ms",
                                            "--fault-reset-every",
                                            "--fault-stall-every",
                                            "--fault-close-every",
                                            "--fault-refuse-every",
                                            "--refuse-ms",
                                            "--fault-garbage-every",
                                            "--drop-close-rate",
                                            "--max-conn-age-ms",
                                            "--rest-429-rate",
                                            "--rest-500-rate",
                                            "--rest-slow-rate",
                                            "--rest-slow-ms",
                                            "--rest-timeout-rate",
                                            "--ban-ms",
                                            "--tls-cert",
                                            "--tls-key"};
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
        } else if (strcmp(name, "--fault-seed") == 0) {
            g_opt.fault_seed = (uint64_t)parse_int(name, val, 0, INT64_MAX);
        } else if (strcmp(name, "--faults-start-ms") == 0) {
            g_opt.faults_start_ms = parse_int(name, val, 0, INT64_MAX / 4);
        } else if (strcmp(name, "--faults-stop-ms") == 0) {
            g_opt.faults_stop_ms = parse_int(name, val, 1, INT64_MAX / 4);
        } else if (strcmp(name, "--fault-reset-every") == 0) {
            g_opt.fault_reset_every = parse_dbl(name, val, 0, 1e9);
        } else if (strcmp(name, "--fault-stall-every") == 0) {
            g_opt.fault_stall_every = parse_dbl(name, val, 0, 1e9);
        } else if (strcmp(name, "--fault-close-every") == 0) {
            g_opt.fault_close_every = parse_dbl(name, val, 0, 1e9);
        } else if (strcmp(name, "--fault-refuse-every") == 0) {
            g_opt.fault_refuse_every = parse_dbl(name, val, 0, 1e9);
        } else if (strcmp(name, "--refuse-ms") == 0) {
            g_opt.refuse_ms = parse_int(name, val, 1, 86400000);
        } else if (strcmp(name, "--fault-garbage-every") == 0) {
            g_opt.fault_garbage_every = parse_dbl(name, val, 0, 1e9);
        } else if (strcmp(name, "--drop-close-rate") == 0) {
            g_opt.drop_close_rate = parse_dbl(name, val, 0, 1);
        } else if (strcmp(name, "--max-conn-age-ms") == 0) {
            g_opt.max_conn_age_ms = parse_int(name, val, 0, INT64_MAX / 4);
        } else if (strcmp(name, "--rest-429-rate") == 0) {
            g_opt.rest_429_rate = parse_dbl(name, val, 0, 1);
        } else if (strcmp(name, "--rest-500-rate") == 0) {
            g_opt.rest_500_rate = parse_dbl(name, val, 0, 1);
        } else if (strcmp(name, "--rest-slow-rate") == 0) {
            g_opt.rest_slow_rate = parse_dbl(name, val, 0, 1);
        } else if (strcmp(name, "--rest-slow-ms") == 0) {
            g_opt.rest_slow_ms = parse_int(name, val, 0, 86400000);
        } else if (strcmp(name, "--rest-timeout-rate") == 0) {
            g_opt.rest_timeout_rate = parse_dbl(name, val, 0, 1);
        } else if (strcmp(name, "--tls-cert") == 0) {
            g_opt.tls_cert = val;
        } else if (strcmp(name, "--tls-key") == 0) {
            g_opt.tls_key = val;
        } else if (strcmp(name, "--ban-ms") == 0) {
            g_opt.ban_ms = parse_int(name, val, 1, 86400000LL * 3);
            g_opt.ban_ms_set = true;
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
    if (g_opt.rest_429_rate + g_opt.rest_500_rate + g_opt.rest_slow_rate + g_opt.rest_timeout_rate >
        1.0 + 1e-9)
        bad("--rest-*-rate", "the REST fault rates add up to more than 1");
    if (!g_opt.tls_cert != !g_opt.tls_key)
        bad(g_opt.tls_cert ? "--tls-cert" : "--tls-key", "--tls-cert and --tls-key go together");
    if (g_opt.tls_cert && !tls_setup(g_opt.tls_cert, g_opt.tls_key))
        return 2;
    sim_clock_init();
    faults_init();
    return server_run();
}
