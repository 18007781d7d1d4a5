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

/* ---- options: one table gives the parser, the checks and --help ---- */

typedef enum opt_kind {
    OPT_I64,    /* int64_t in [lo, hi] */
    OPT_INT,    /* int in [lo, hi] */
    OPT_U64,    /* uint64_t in [lo, hi] */
    OPT_DBL,    /* double in [lo, hi] (lo_open: lo excluded) */
    OPT_STR,    /* const char *, kept (argv outlives the run) */
    OPT_LISTEN, /* HOST:PORT into g_opt.host and g_opt.port */
} opt_kind;

typedef struct sim_option {
    const char *section; /* a heading printed before this option, or NULL */
    const char *name;    /* "--speed" */
    const char *arg;     /* its value's name in --help */
    opt_kind kind;
    void *dst;
    double lo, hi;
    bool lo_open;
    bool *given;      /* set when the option appears, or NULL */
    const char *help; /* lines separated by \n */
} sim_option;

static const char *g_symbols = "BTCUSDT,ETHUSDT,BNBUSDT,SOLUSDT,XRPUSDT,DOGEUSDT,ADAUSDT,AVAXUSDT";
static const char *g_delisted;

#define I64MAX 9.2e18 /* bounds are doubles: INT64_MAX is not one; no option comes near */
#define DAY_MS 86400000.0

static const sim_option OPTIONS[] = {
    {NULL, "--listen", "HOST:PORT", OPT_LISTEN, NULL, 0, 0, false, NULL,
     "listen address (default 127.0.0.1:0); prints \"port=<N>\""},
    {NULL, "--symbols", "LIST", OPT_STR, &g_symbols, 0, 0, false, NULL,
     "comma list of TRADING symbols"},
    {NULL, "--delisted", "LIST", OPT_STR, &g_delisted, 0, 0, false, NULL,
     "extra listed symbols with status SETTLING"},
    {NULL, "--start", "MS", OPT_I64, &g_opt.start_ms, 0, 4102444800000.0, false, NULL,
     "simulated clock at startup, unix ms (default 1767225600000)"},
    {NULL, "--speed", "X", OPT_DBL, &g_opt.speed, 0, 1e9, true, NULL,
     "simulated ms per real ms (default 1.0)"},
    {NULL, "--update-ms", "N", OPT_I64, &g_opt.update_ms, 1, DAY_MS, false, NULL,
     "simulated ms between stream updates (default 250)"},
    {NULL, "--close-delay-ms", "N", OPT_I64, &g_opt.close_delay_ms, 0, DAY_MS, false, NULL,
     "simulated ms after close time for the x:true update (default 500)"},
    {NULL, "--max-streams", "N", OPT_INT, &g_opt.max_streams, 1, 1000000, false, NULL,
     "streams per connection (default 1024)"},
    {NULL, "--max-msg-rate", "N", OPT_INT, &g_opt.max_msg_rate, 1, 1000000, false, NULL,
     "client messages per second per connection (default 10)"},
    {NULL, "--ping-ms", "N", OPT_I64, &g_opt.ping_ms, 1, DAY_MS, false, NULL,
     "real ms between server pings (default 180000)"},
    {NULL, "--weight-limit", "N", OPT_I64, &g_opt.weight_limit, 1, 1e9, false, NULL,
     "REST weight per UTC minute (default 2400)"},
    {NULL, "--flood", "N", OPT_I64, &g_opt.flood, 0, I64MAX, false, NULL,
     "write N kline frames once a connection has a valid stream"},
    {NULL, "--seed", "N", OPT_U64, &g_opt.seed, 0, I64MAX, false, NULL,
     "price path seed (default 1)"},

    {"TLS (both or neither; default: plain HTTP and WebSocket):", "--tls-cert", "PATH", OPT_STR,
     &g_opt.tls_cert, 0, 0, false, NULL,
     "PEM certificate (chain) of the server: the listening port then\n"
     "speaks TLS only, for WebSocket (wss://HOST:PORT/market/ws,\n"
     "/market/stream), REST (https://HOST:PORT/fapi/v1/...) and /sim/*"},
    {NULL, "--tls-key", "PATH", OPT_STR, &g_opt.tls_key, 0, 0, false, NULL,
     "PEM private key of that certificate\n"
     "e.g. klinefeed run --ws-url wss://localhost:PORT/market\n"
     "--rest-url https://localhost:PORT --ca-file CA.pem, where the\n"
     "certificate names localhost and CA.pem signed it"},

    {"fault injection (all off by default; S = mean real seconds between events, applied to a\n"
     "random open WebSocket connection; P = probability 0..1):",
     "--fault-seed", "N", OPT_U64, &g_opt.fault_seed, 0, I64MAX, false, NULL,
     "seed of every random fault choice (default 1)"},
    {NULL, "--faults-start-ms", "N", OPT_I64, &g_opt.faults_start_ms, 0, I64MAX / 4, false, NULL,
     "no fault before N real ms after startup (default 0)"},
    {NULL, "--faults-stop-ms", "N", OPT_I64, &g_opt.faults_stop_ms, 1, I64MAX / 4, false, NULL,
     "no fault from N real ms after startup on (default: never stop)"},
    {NULL, "--fault-reset-every", "S", OPT_DBL, &g_opt.fault_reset_every, 0, 1e9, false, NULL,
     "TCP reset, no close frame"},
    {NULL, "--fault-stall-every", "S", OPT_DBL, &g_opt.fault_stall_every, 0, 1e9, false, NULL,
     "the connection goes silent (no data, pings, pongs, acks)"},
    {NULL, "--fault-close-every", "S", OPT_DBL, &g_opt.fault_close_every, 0, 1e9, false, NULL,
     "close frame 1001 \"going away\" / 1008 \"Too many requests\""},
    {NULL, "--fault-refuse-every", "S", OPT_DBL, &g_opt.fault_refuse_every, 0, 1e9, false, NULL,
     "for --refuse-ms, new TCP connections are reset on accept"},
    {NULL, "--refuse-ms", "N", OPT_I64, &g_opt.refuse_ms, 1, DAY_MS, false, NULL,
     "length of a refusal period, real ms (default 3000)"},
    {NULL, "--fault-garbage-every", "S", OPT_DBL, &g_opt.fault_garbage_every, 0, 1e9, false, NULL,
     "one hostile frame: non-JSON, truncated kline, binary,\n"
     "2 MiB text, duplicate kline, unknown event, extra key"},
    {NULL, "--drop-close-rate", "P", OPT_DBL, &g_opt.drop_close_rate, 0, 1, false, NULL,
     "per (connection, candle): the x:true update is never sent"},
    {NULL, "--max-conn-age-ms", "N", OPT_I64, &g_opt.max_conn_age_ms, 0, I64MAX / 4, false, NULL,
     "close (1001) a WebSocket connection older than N real ms"},
    {NULL, "--rest-429-rate", "P", OPT_DBL, &g_opt.rest_429_rate, 0, 1, false, NULL,
     "429, Retry-After 1..3 s, -1003 (a request inside an announced\n"
     "Retry-After window earns 418, then every request is 418)"},
    {NULL, "--rest-500-rate", "P", OPT_DBL, &g_opt.rest_500_rate, 0, 1, false, NULL,
     "500 or 503, -1001 Internal error"},
    {NULL, "--rest-slow-rate", "P", OPT_DBL, &g_opt.rest_slow_rate, 0, 1, false, NULL,
     "the response is delayed by --rest-slow-ms"},
    {NULL, "--rest-slow-ms", "N", OPT_I64, &g_opt.rest_slow_ms, 0, DAY_MS, false, NULL,
     "delay of a slow response, real ms (default 3000)"},
    {NULL, "--rest-timeout-rate", "P", OPT_DBL, &g_opt.rest_timeout_rate, 0, 1, false, NULL,
     "the request is never answered; closed after 30 s"},
    {NULL, "--ban-ms", "N", OPT_I64, &g_opt.ban_ms, 1, DAY_MS * 3, false, &g_opt.ban_ms_set,
     "length of a 418 ban, real ms (default 120000)"},
};
#define NOPTIONS (sizeof OPTIONS / sizeof OPTIONS[0])

static void usage(FILE *f)
{
    fputs("usage: klinefeed-sim [options]   (--name VALUE or --name=VALUE)\n", f);
    for (size_t i = 0; i < NOPTIONS; i++) {
        const sim_option *o = &OPTIONS[i];
        if (o->section)
            fprintf(f, "%s\n", o->section);
        char head[64];
        snprintf(head, sizeof head, "%s %s", o->name, o->arg);
        const char *line = o->help;
        bool first = true;
        while (*line) {
            const char *nl = strchr(line, '\n');
            int len = nl ? (int)(nl - line) : (int)strlen(line);
            fprintf(f, "  %-24s %.*s\n", first ? head : "", len, line);
            first = false;
            line += len + (nl ? 1 : 0);
        }
    }
    fputs("  --help                   this text\n", f);
}

static const sim_option *option_find(const char *name)
{
    for (size_t i = 0; i < NOPTIONS; i++)
        if (strcmp(OPTIONS[i].name, name) == 0)
            return &OPTIONS[i];
    return NULL;
}

static void option_listen(const char *name, const char *val)
{
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
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || port < 0 || port > 65535)
        bad(name, "invalid port");
    g_opt.port = (int)port;
}

/* Sets the option from its text, or exits 2 naming it and what is wrong. */
static void option_set(const sim_option *o, const char *val)
{
    if (o->given)
        *o->given = true;
    if (o->kind == OPT_STR) {
        *(const char **)o->dst = val;
        return;
    }
    if (o->kind == OPT_LISTEN) {
        option_listen(o->name, val);
        return;
    }
    char *end;
    errno = 0;
    char why[128];
    if (o->kind == OPT_DBL) {
        double x = strtod(val, &end);
        bool in = (o->lo_open ? x > o->lo : x >= o->lo) && x <= o->hi; /* false for NaN */
        if (errno || end == val || *end || !in) {
            snprintf(why, sizeof why, "invalid number \"%s\" (expected %s%g..%g)", val,
                     o->lo_open ? "more than " : "", o->lo, o->hi);
            bad(o->name, why);
        }
        *(double *)o->dst = x;
        return;
    }
    long long x = strtoll(val, &end, 10);
    if (errno || end == val || *end || (double)x < o->lo || (double)x > o->hi) {
        snprintf(why, sizeof why, "invalid number \"%s\" (expected an integer %.0f..%.0f)", val,
                 o->lo, o->hi);
        bad(o->name, why);
    }
    if (o->kind == OPT_INT)
        *(int *)o->dst = (int)x;
    else if (o->kind == OPT_U64)
        *(uint64_t *)o->dst = (uint64_t)x;
    else
        *(int64_t *)o->dst = (int64_t)x;
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
        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        const sim_option *o = option_find(name);
        if (!o)
            bad(name, "unknown option (klinefeed-sim --help lists them)");
        if (!val) {
            if (i + 1 >= argc)
                bad(name, "missing value");
            val = argv[++i];
        }
        option_set(o, val);
    }
    /* symbols are hashed with the seed, so list them after all options are known */
    add_list("--symbols", g_symbols, true);
    if (g_delisted)
        add_list("--delisted", g_delisted, false);

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
