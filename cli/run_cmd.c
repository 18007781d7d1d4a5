/*
 * `klinefeed run`: builds a kf_config from the parsed flags (every value is
 * checked by its kf_config setter; a rejection is a usage error naming the
 * flag), starts the collector and waits on a self-pipe until SIGINT or
 * SIGTERM. The signal handler only writes one byte to the pipe; the main
 * thread then calls kf_stop (which flushes every closed candle to the sinks),
 * logs the counters and frees the collector.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "http.h"

#define DEFAULT_SINK "sqlite:klines.db"
#define DEFAULT_SYMBOLS_REFRESH_MS 3600000u /* --symbols ALL re-read: 1 h */

/* ---- configuration ---- */

static int read_exchange_symbols(kf_config *cfg, bool retry);

static int build_config(kf_config *cfg, const cli_run_opts *o)
{
    char num[32];
    bool all = false;
    for (size_t i = 0; i < o->symbols.n; i++)
        if (strcasecmp(o->symbols.v[i], "ALL") == 0)
            all = true; /* after the REST settings below */
        else
            CLI_SET(kf_config_add_symbols(cfg, o->symbols.v[i]), "--symbols", o->symbols.v[i]);
    for (size_t i = 0; i < o->intervals.n; i++)
        CLI_SET(kf_config_add_intervals(cfg, o->intervals.v[i]), "--intervals", o->intervals.v[i]);
    if (o->testnet)
        CLI_SET(kf_config_set_testnet(cfg, true), "--testnet", "");
    if (o->ws_url)
        CLI_SET(kf_config_set_ws_url(cfg, o->ws_url), "--ws-url", o->ws_url);
    if (o->rest_url)
        CLI_SET(kf_config_set_rest_url(cfg, o->rest_url), "--rest-url", o->rest_url);
    if (o->http) /* the gateway's WebSocket fan-out (http_ws.c) */
        CLI_SET(kf_config_on_kline(cfg, ws_hub_on_kline, NULL), "--http", o->http);
    if (o->sinks.n == 0)
        CLI_SET(kf_config_add_sink(cfg, DEFAULT_SINK), "--sink", DEFAULT_SINK);
    for (size_t i = 0; i < o->sinks.n; i++)
        CLI_SET(kf_config_add_sink(cfg, o->sinks.v[i]), "--sink", o->sinks.v[i]);
    if (o->all_updates)
        CLI_SET(kf_config_set_sink_all_updates(cfg, true), "--all-updates", "");
    if (o->validate != CLI_VALIDATE_DEFAULT)
        CLI_SET(kf_config_set_validate(
                    cfg, o->validate == CLI_VALIDATE_REQUIRED ? KF_VALIDATE_REQUIRED
                         : o->validate == CLI_VALIDATE_OFF    ? KF_VALIDATE_OFF
                                                              : KF_VALIDATE_IF_REACHABLE),
                "--validate", "");
    if (o->has_streams_per_connection) {
        snprintf(num, sizeof num, "%" PRIu64, o->streams_per_connection);
        CLI_SET(kf_config_set_streams_per_connection(cfg, (size_t)o->streams_per_connection),
                "--streams-per-connection", num);
    }
    if (o->has_connect_timeout_ms) {
        snprintf(num, sizeof num, "%" PRIu64, o->connect_timeout_ms);
        CLI_SET(kf_config_set_connect_timeout_ms(cfg, (unsigned)o->connect_timeout_ms),
                "--connect-timeout-ms", num);
    }
    if (o->has_ring_size) {
        snprintf(num, sizeof num, "%" PRIu64, o->ring_size);
        CLI_SET(kf_config_set_ring_size(cfg, (size_t)o->ring_size), "--ring-size", num);
    }
    if (o->ping_interval_ms || o->liveness_timeout_ms) {
        unsigned ping = o->ping_interval_ms ? (unsigned)o->ping_interval_ms : 20000;
        unsigned dead = o->liveness_timeout_ms ? (unsigned)o->liveness_timeout_ms : 30000;
        snprintf(num, sizeof num, "%u/%u", ping, dead);
        CLI_SET(kf_config_set_liveness(cfg, ping, dead), "--ping-interval-ms/--liveness-timeout-ms",
                num);
    }
    if (o->reconnect_initial_ms || o->reconnect_max_ms) {
        unsigned first = o->reconnect_initial_ms ? (unsigned)o->reconnect_initial_ms : 1000;
        unsigned max = o->reconnect_max_ms ? (unsigned)o->reconnect_max_ms : 30000;
        snprintf(num, sizeof num, "%u/%u", first, max);
        CLI_SET(kf_config_set_reconnect_backoff(cfg, first, max),
                "--reconnect-initial-ms/--reconnect-max-ms", num);
    }
    if (o->max_connection_age_ms) {
        snprintf(num, sizeof num, "%" PRIu64, o->max_connection_age_ms);
        CLI_SET(kf_config_set_max_connection_age_ms(cfg, o->max_connection_age_ms),
                "--max-connection-age-ms", num);
    }
    if (o->rest_weight_budget) {
        snprintf(num, sizeof num, "%" PRIu64, o->rest_weight_budget);
        CLI_SET(kf_config_set_rest_weight_budget(cfg, (unsigned)o->rest_weight_budget),
                "--rest-weight-budget", num);
    }
    if (o->no_backfill)
        CLI_SET(kf_config_set_backfill(cfg, false), "--no-backfill", "");
    if (o->has_backfill_from) {
        snprintf(num, sizeof num, "%" PRId64, o->backfill_from);
        CLI_SET(kf_config_set_backfill_from(cfg, o->backfill_from), "--backfill-from", num);
    }
    if (o->shard) {
        int rc = cli_set_shard(cfg, o->shard);
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    if (o->ca_file) {
        int rc = cli_set_ca_file(cfg, o->ca_file);
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    if (o->has_sink_queue) {
        snprintf(num, sizeof num, "%" PRIu64, o->sink_queue);
        CLI_SET(kf_config_set_sink_queue(cfg, (size_t)o->sink_queue), "--sink-queue", num);
    }
    char dir[1024];
    int drc = cli_state_dir(o->state_dir, dir, sizeof dir);
    if (drc != CLI_EXIT_OK)
        return drc;
    if (*dir)
        CLI_SET(kf_config_set_state_dir(cfg, dir), "--state-dir", dir);
    CLI_SET(kf_config_set_log(cfg, cli_log_line, NULL, (kf_log_level)o->log_level), "--log-level",
            "");
    if (!all && (o->has_symbols_refresh || o->has_symbols_reserve)) {
        cli_error("%s applies to --symbols ALL only",
                  o->has_symbols_refresh ? "--symbols-refresh" : "--symbols-reserve");
        return CLI_EXIT_USAGE;
    }
    if (all) {
        /* re-read while running: every hour unless told */
        uint64_t ms = o->has_symbols_refresh ? o->symbols_refresh_ms : DEFAULT_SYMBOLS_REFRESH_MS;
        snprintf(num, sizeof num, "%" PRIu64 "ms", ms);
        CLI_SET(kf_config_set_symbol_refresh(cfg, (unsigned)ms), "--symbols-refresh", num);
        if (o->has_symbols_reserve) {
            snprintf(num, sizeof num, "%" PRIu64, o->symbols_reserve);
            CLI_SET(kf_config_set_symbol_reserve(cfg, (size_t)o->symbols_reserve),
                    "--symbols-reserve", num);
        }
    }
    if (all) {
        int arc = read_exchange_symbols(cfg, o->retry_start);
        if (arc != CLI_EXIT_OK)
            return arc;
    }

    /* Credentials only from the environment; never echoed, even on failure. */
    const char *key = getenv("BINANCE_API_KEY");
    const char *secret = getenv("BINANCE_API_SECRET");
    cli_secrets_set(key, secret);
    if ((key && *key) || (secret && *secret)) {
        kf_err e = kf_config_set_api_key(cfg, key ? key : "", secret ? secret : "");
        if (e != KF_OK) {
            cli_error("BINANCE_API_KEY/BINANCE_API_SECRET: credentials rejected (%s)",
                      kf_strerror(e));
            return CLI_EXIT_USAGE;
        }
    }
    return CLI_EXIT_OK;
}

/* ---- signals: self-pipe ---- */

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t n = write(sig_pipe[1], &b, 1); /* non-blocking; a full pipe already woke us */
    (void)n;
    errno = saved;
}

static bool signals_install(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return false;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    /* SIGHUP (the terminal or the session went away) stops like SIGTERM: klinefeed has no
     * configuration to reload and logs to stderr, so there is nothing to reopen */
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGHUP, &sa, NULL) != 0)
        return false;
    /* A closed stdout (jsonl:-) must be a write error, not a silent death. */
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    return true;
}

static void signals_restore(void)
{
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    for (int i = 0; i < 2; i++)
        if (sig_pipe[i] >= 0)
            close(sig_pipe[i]);
    sig_pipe[0] = sig_pipe[1] = -1;
}

/* Blocks (no polling loop) until a signal byte arrives or timeout_ms passes (-1: forever);
 * returns the signal number, 0 on timeout, -1 when poll fails. */
static int wait_for_signal(int timeout_ms)
{
    struct pollfd pfd = {.fd = sig_pipe[0], .events = POLLIN};
    for (;;) {
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1; /* cannot wait any more: stop */
        if (r == 0)
            return 0;
        unsigned char b;
        if (read(sig_pipe[0], &b, 1) == 1)
            return b;
    }
}

static const char *signal_name(int sig)
{
    return sig == SIGINT    ? "SIGINT"
           : sig == SIGTERM ? "SIGTERM"
           : sig == SIGHUP  ? "SIGHUP"
                            : "none";
}

/* ---- command ---- */

/* The final line: every counter of the library's list (KF_STATS_FIELDS), name=value. */
static void log_final(kf_collector *c, const char *signame, int code)
{
    kf_stats s;
    memset(&s, 0, sizeof s);
    kf_stats_get(c, &s, sizeof s);
    char counters[4096];
    size_t n = 0;
    for (size_t i = 0; i < kf_stats_count() && n < sizeof counters; i++) {
        int w = snprintf(counters + n, sizeof counters - n, " %s=%" PRIu64, kf_stats_name(i),
                         kf_stats_value(&s, sizeof s, i));
        if (w < 0)
            break;
        n += (size_t)w; /* past the end: the loop stops, the line is cut, never overrun */
    }
    cli_log(KF_LOG_INFO, "msg=\"exiting\" signal=%s code=%d%s", signame, code, counters);
}

/* A start that failed on the network (or on REST while validating) may succeed later. */
static bool start_retryable(kf_err e)
{
    return e == KF_ERR_DNS || e == KF_ERR_CONNECT || e == KF_ERR_HANDSHAKE || e == KF_ERR_TIMEOUT ||
           e == KF_ERR_REST;
}

/* The wait before retry number attempt (1, 2, ...) of --retry-start: a ceiling of 1 s doubling
 * to 60 s, jittered over its upper half. */
static int retry_delay_ms(unsigned attempt, unsigned *seed)
{
    int cap = 1000;
    for (unsigned i = 1; i < attempt && cap < 60000; i++)
        cap *= 2;
    if (cap > 60000)
        cap = 60000;
    return cap / 2 + (int)(rand_r(seed) % (unsigned)(cap / 2 + 1));
}

/* --symbols ALL: exchangeInfo's symbols into cfg (after the REST settings); with
 * --retry-start a network failure is retried like a failed start (backoff 1 s doubling to 60 s,
 * jittered) until it succeeds or a signal stops it (exit 1: nothing was started). */
static int read_exchange_symbols(kf_config *cfg, bool retry)
{
    kf_err e = kf_config_add_exchange_symbols(cfg, NULL);
    if (e == KF_OK)
        return CLI_EXIT_OK;
    if (!retry || !start_retryable(e)) {
        cli_error("--symbols ALL: %s", kf_config_errmsg(cfg));
        return CLI_EXIT_RUNTIME;
    }
    if (!signals_install()) {
        cli_error("cannot install signal handlers: %s", strerror(errno));
        return CLI_EXIT_RUNTIME;
    }
    unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    int rc = CLI_EXIT_RUNTIME;
    for (unsigned attempt = 1;; attempt++) {
        int delay = retry_delay_ms(attempt, &seed);
        cli_log(KF_LOG_WARN,
                "msg=\"--symbols ALL: exchangeInfo failed: retrying (--retry-start)\" attempt=%u "
                "retry_ms=%d err=\"%s\" why=\"%s\"",
                attempt, delay, kf_strerror(e), kf_config_errmsg(cfg));
        int sig = wait_for_signal(delay);
        if (sig) {
            cli_log(KF_LOG_INFO,
                    "msg=\"stopping before the collector could start\" signal=%s attempts=%u",
                    signal_name(sig), attempt);
            break;
        }
        e = kf_config_add_exchange_symbols(cfg, NULL);
        if (e == KF_OK) {
            rc = CLI_EXIT_OK;
            break;
        }
        if (!start_retryable(e)) {
            cli_error("--symbols ALL: %s", kf_config_errmsg(cfg));
            break;
        }
    }
    signals_restore(); /* run_collector installs them again */
    return rc;
}

static void start_failed(kf_collector *c, kf_err e)
{
    const char *msg = kf_errmsg(c);
    if (msg && *msg)
        cli_error("start failed: %s", msg);
    else
        cli_error("start failed: %s (ws-url %s, rest-url %s)", kf_strerror(e), kf_ws_url(c),
                  kf_rest_url(c));
}

/* kf_start on a thread of its own: a stop signal during a start that hangs on the network is
 * acted on at once (kf_stop from the main thread abandons the start) instead of after the
 * connect timeouts. */
typedef struct starter {
    kf_collector *c;
    kf_err e;
    int done_fd;
} starter;

static void *starter_main(void *arg)
{
    starter *s = arg;
    s->e = kf_start(s->c);
    ssize_t n = write(s->done_fd, "x", 1);
    (void)n;
    return NULL;
}

/* One kf_start. Returns 0 when started, the signal that abandoned it (> 0; the collector is
 * stopped), or -1 when it failed (*e says how). */
static int start_once(kf_collector *c, kf_err *e)
{
    int done[2];
    if (pipe2(done, O_CLOEXEC) != 0) {
        *e = KF_ERR_THREAD;
        return -1;
    }
    /* The library's threads inherit the starter's mask, which blocks the stop signals: only the
     * main thread takes them. */
    sigset_t stop_set, old_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGHUP);
    starter s = {.c = c, .e = KF_OK, .done_fd = done[1]};
    pthread_t th;
    pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);
    int rc = pthread_create(&th, NULL, starter_main, &s);
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    if (rc != 0) { /* no thread: start here, signals held until it returns */
        pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);
        s.e = kf_start(c);
        pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    } else {
        int sig = 0;
        struct pollfd p[2] = {{.fd = done[0], .events = POLLIN},
                              {.fd = sig_pipe[0], .events = POLLIN}};
        for (;;) {
            int r = poll(p, 2, -1);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 || (p[0].revents & (POLLIN | POLLHUP)))
                break; /* started or failed (a pending signal is read by the run loop) */
            unsigned char b;
            if ((p[1].revents & POLLIN) && read(sig_pipe[0], &b, 1) == 1) {
                sig = b;
                cli_log(KF_LOG_INFO, "msg=\"stopping during the start\" signal=%s",
                        signal_name(sig));
                kf_stop(c); /* abandons the start, or stops what it started meanwhile */
                break;
            }
        }
        pthread_join(th, NULL);
        if (sig) {
            close(done[0]);
            close(done[1]);
            return sig;
        }
    }
    close(done[0]);
    close(done[1]);
    *e = s.e;
    return s.e == KF_OK ? 0 : -1;
}

/*
 * kf_start, once, or with --retry-start until it succeeds (backoff 1 s doubling to 60 s, with
 * jitter) or a signal asks to stop. Returns 0 when started, else the signal that stopped the
 * start or its retries (> 0) or -1 after a failure that is final.
 */
static int start_collector(kf_collector *c, bool retry)
{
    unsigned seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    for (unsigned attempt = 1;; attempt++) {
        kf_err e = KF_OK;
        int r = start_once(c, &e);
        if (r == 0)
            return 0;
        if (r > 0) {
            cli_log(KF_LOG_INFO,
                    "msg=\"stopping before the collector could start\" signal=%s attempts=%u",
                    signal_name(r), attempt);
            return r;
        }
        if (!retry || !start_retryable(e)) {
            start_failed(c, e);
            return -1;
        }
        int delay = retry_delay_ms(attempt, &seed);
        const char *msg = kf_errmsg(c);
        cli_log(KF_LOG_WARN,
                "msg=\"start failed: retrying (--retry-start)\" attempt=%u retry_ms=%d err=\"%s\" "
                "why=\"%s\"",
                attempt, delay, kf_strerror(e), msg ? msg : "");
        int sig = wait_for_signal(delay);
        if (sig) {
            cli_log(KF_LOG_INFO,
                    "msg=\"stopping before the collector could start\" signal=%s attempts=%u",
                    signal_name(sig), attempt);
            return sig;
        }
    }
}

/* The periodic status line: where the run stands between events. */
static void log_status(kf_collector *c, kf_stats *prev, int64_t *prev_ms)
{
    kf_stats s;
    memset(&s, 0, sizeof s);
    kf_stats_get(c, &s, sizeof s);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    double secs = *prev_ms ? (double)(now - *prev_ms) / 1000.0 : 0;
    cli_log(KF_LOG_INFO,
            "msg=\"status\" streams=%zu connected=%s frames_per_s=%.0f closed=%" PRIu64
            " stored=%" PRIu64 " missing=%" PRIu64 " rest_pending=%" PRIu64 " reconnects=%" PRIu64
            " sink_errors=%" PRIu64 " parse_errors=%" PRIu64,
            kf_stream_count(c), kf_connected(c) ? "yes" : "no",
            secs > 0 ? (double)(s.frames - prev->frames) / secs : 0.0, s.closed, s.sink_rows,
            s.missing, s.rest_pending, s.reconnects, s.sink_errors, s.parse_errors);
    *prev = s;
    *prev_ms = now;
}

static int run_collector(kf_collector *c, const cli_run_opts *o)
{
    bool retry_start = o->retry_start;
    int status_ms = (int)((o->has_status_every_s ? o->status_every_s : 60) * 1000);
    if (!signals_install()) {
        cli_error("cannot install signal handlers: %s", strerror(errno));
        return CLI_EXIT_RUNTIME;
    }
    /* The HTTP server first: /healthz answers and /readyz says why not ready while the start
     * is under way (or retried). It only reads the collector. */
    cli_http *http = NULL;
    if (o->http) {
        char err[CLI_ERR_MAX];
        unsigned port = 0;
        http = cli_http_start(o->http, c, &port, err, sizeof err);
        if (!http) {
            cli_error("%s", err);
            signals_restore();
            return CLI_EXIT_RUNTIME;
        }
        cli_log(KF_LOG_INFO,
                "msg=\"http listening\" addr=%s port=%u "
                "paths=/,/api/streams,/metrics,/healthz,/readyz,/fapi/v1/*,/market/ws*",
                o->http, port);
    }
    int started = start_collector(c, retry_start);
    if (started != 0) {
        cli_http_stop(http);
        signals_restore();
        return CLI_EXIT_RUNTIME;
    }
    cli_log(KF_LOG_INFO, "msg=\"running\" streams=%zu connections=%zu ws=%s rest=%s pid=%ld",
            kf_stream_count(c), kf_connection_count(c), kf_ws_url(c), kf_rest_url(c),
            (long)getpid());

    kf_stats prev;
    memset(&prev, 0, sizeof prev);
    int64_t prev_ms = 0;
    log_status(c, &prev, &prev_ms);
    int sig;
    while ((sig = wait_for_signal(status_ms > 0 ? status_ms : -1)) == 0)
        log_status(c, &prev, &prev_ms);
    cli_log(KF_LOG_INFO, "msg=\"stopping\" signal=%s", signal_name(sig));
    int rc = CLI_EXIT_OK;
    kf_err e = kf_stop(c);
    kf_stats s;
    memset(&s, 0, sizeof s);
    kf_stats_get(c, &s, sizeof s);
    if (e != KF_OK && e != KF_ERR_SINK) {
        const char *msg = kf_errmsg(c);
        cli_error("stop failed: %s", msg && *msg ? msg : kf_strerror(e));
        rc = CLI_EXIT_RUNTIME;
    } else if (s.missing || s.unstored) {
        /* nothing is lost (the stores keep it findable), but the run did not store it all */
        cli_error("stopped with closed candles not stored: %" PRIu64
                  " known missing (REST had not delivered them yet), %" PRIu64
                  " not taken by a store before the stop deadline%s%s; the next start finds "
                  "them and fetches them",
                  s.missing, s.unstored, e ? ": " : "", e ? kf_errmsg(c) : "");
        rc = CLI_EXIT_INCOMPLETE;
    }
    log_final(c, signal_name(sig), rc);
    cli_http_stop(http);
    signals_restore();
    return rc;
}

int cli_run(int argc, char **argv)
{
    cli_run_opts o;
    memset(&o, 0, sizeof o);
    o.log_level = KF_LOG_INFO;
    char err[CLI_ERR_MAX], *text = NULL;
    int rc;
    kf_collector *c = NULL;
    kf_config *cfg = NULL;
    if (!cli_parse(&cli_cmd_run, &o, argc, argv, NULL, &text, err, sizeof err)) {
        cli_error("%s", err);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (o.help) {
        cli_command_help(&cli_cmd_run, stdout);
        rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
        goto out;
    }
    if (o.symbols.n == 0 || o.intervals.n == 0) {
        cli_error("run: %s is required (e.g. --symbols BTCUSDT,ETHUSDT --intervals 1m,5m)",
                  o.symbols.n == 0 ? "--symbols" : "--intervals");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (o.http && !cli_http_addr_check(o.http, err, sizeof err)) {
        cli_error("%s", err);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    cli_logger_setup((kf_log_level)o.log_level);

    cfg = kf_config_new();
    if (!cfg) {
        cli_error("out of memory");
        rc = CLI_EXIT_RUNTIME;
        goto out;
    }
    rc = build_config(cfg, &o);
    if (rc != CLI_EXIT_OK)
        goto out;
    char errbuf[512] = "";
    c = kf_create(cfg, errbuf, sizeof errbuf);
    if (!c) {
        /* kf_create only rejects configuration (or runs out of memory). */
        cli_error("%s", *errbuf ? errbuf : "invalid configuration");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    kf_config_free(cfg);
    cfg = NULL;
    rc = run_collector(c, &o);

out:
    kf_free(c);
    kf_config_free(cfg);
    cli_free_lists(&cli_cmd_run, &o);
    free(text);
    return rc;
}
