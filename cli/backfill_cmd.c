/*
 * `klinefeed backfill`: downloads closed candles from REST into the sinks, within the
 * exchange's weight budget, then exits: the library's history download (kf_history, public
 * API), a progress line on a terminal (a log line every 5 s otherwise), and a summary.
 *
 * Flags are checked by the kf_config setters (a usage error names the flag and the value).
 * SIGINT/SIGTERM call kf_history_cancel (async-signal-safe): the page in hand is finished, the
 * rows are stored, exit 0; the next run resumes after them.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"

#define DEFAULT_SINK "sqlite:klines.db"
#define BF_PROGRESS_TTY_MS 200
#define BF_PROGRESS_LOG_MS 5000

typedef struct bf_ctx {
    bool tty;
    bool shown;                           /* a progress line is on the terminal */
    int64_t last_ms;                      /* monotonic ms of the last line */
    int64_t minute;                       /* UTC minute of the last callback */
    uint64_t minute_weight0, last_minute; /* weight when that minute began; the previous one's */
    kf_history_progress last;
    bool have_last;
} bf_ctx;

static kf_history *bf_running; /* for the signal handler */

static void bf_on_signal(int sig)
{
    (void)sig;
    kf_history_cancel(bf_running);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- progress ---- */

static void bf_progress_line(bf_ctx *c, const kf_history_progress *p)
{
    /* the previous minute's weight once there is one, else this minute's so far */
    uint64_t wpm = c->last_minute ? c->last_minute : p->weight_used - c->minute_weight0;
    double f = p->fraction;
    long eta = f > 0.001 ? (long)((double)p->elapsed_ms * (1.0 - f) / f / 1000.0) : -1;
    if (c->tty) {
        char line[256];
        int n = snprintf(line, sizeof line,
                         "\r\033[K%5.1f%%  rows %" PRIu64 "  weight/min %" PRIu64
                         "/%u  429s %" PRIu64 "  ETA %lds  %s %s",
                         f * 100.0, p->rows, wpm, p->weight_limit, p->http_429, eta < 0 ? 0 : eta,
                         p->symbol, p->interval);
        if (n > 0 && write(STDERR_FILENO, line, (size_t)n) == n)
            c->shown = true;
    } else {
        cli_log(KF_LOG_INFO,
                "msg=\"progress\" pct=%.1f rows=%" PRIu64 " requests=%" PRIu64 " weight=%" PRIu64
                " weight_last_min=%" PRIu64 " http_429=%" PRIu64 " eta_s=%ld stream=%s/%s",
                f * 100.0, p->rows, p->requests, p->weight_used, wpm, p->http_429, eta, p->symbol,
                p->interval);
    }
}

static void bf_on_progress(void *ud, const kf_history_progress *p)
{
    bf_ctx *c = ud;
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    int64_t minute = (int64_t)rt.tv_sec / 60;
    if (minute != c->minute) {
        c->last_minute = c->minute ? p->weight_used - c->minute_weight0 : 0;
        c->minute = minute;
        c->minute_weight0 = p->weight_used;
    }
    c->last = *p;
    c->have_last = true;
    int64_t now = mono_ms();
    if (now - c->last_ms < (c->tty ? BF_PROGRESS_TTY_MS : BF_PROGRESS_LOG_MS))
        return;
    c->last_ms = now;
    bf_progress_line(c, p);
}

/* ---- setup ---- */

static int bf_build_config(kf_config *cfg, const cli_backfill_opts *o)
{
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
    if (o->rest_url)
        CLI_SET(kf_config_set_rest_url(cfg, o->rest_url), "--rest-url", o->rest_url);
    for (size_t i = 0; i < o->sinks.n; i++)
        CLI_SET(kf_config_add_sink(cfg, o->sinks.v[i]), "--sink", o->sinks.v[i]);
    if (o->sinks.n == 0)
        CLI_SET(kf_config_add_sink(cfg, DEFAULT_SINK), "--sink", DEFAULT_SINK);
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
    if (o->rest_weight_budget) {
        char num[32];
        snprintf(num, sizeof num, "%" PRIu64, o->rest_weight_budget);
        CLI_SET(kf_config_set_rest_weight_budget(cfg, (unsigned)o->rest_weight_budget),
                "--rest-weight-budget", num);
    }
    char dir[1024];
    int rc = cli_state_dir(o->state_dir, dir, sizeof dir);
    if (rc != CLI_EXIT_OK)
        return rc;
    if (*dir)
        CLI_SET(kf_config_set_state_dir(cfg, dir), "--state-dir", dir);
    CLI_SET(kf_config_set_log(cfg, cli_log_line, NULL, (kf_log_level)o->log_level), "--log-level",
            "");
    if (all && kf_config_add_exchange_symbols(cfg, NULL) != KF_OK) {
        cli_error("--symbols ALL: %s", kf_config_errmsg(cfg));
        return CLI_EXIT_RUNTIME;
    }
    return CLI_EXIT_OK;
}

/* What the flags alone can tell: the required ones, --to not before --from, --from not in
 * the future (it would only say "up to date"). */
static bool bf_check(const cli_backfill_opts *o, char *err, size_t errlen)
{
    if (o->help)
        return true;
    if (o->symbols.n == 0 || o->intervals.n == 0 || !o->has_from) {
        snprintf(err, errlen,
                 "backfill: %s is required (e.g. --symbols BTCUSDT --intervals 1m --from "
                 "2026-01-01)",
                 o->symbols.n == 0     ? "--symbols"
                 : o->intervals.n == 0 ? "--intervals"
                                       : "--from");
        return false;
    }
    if (o->has_to && o->to < o->from) {
        snprintf(err, errlen, "--to: %" PRId64 " is before --from %" PRId64, o->to, o->from);
        return false;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    if (o->from > (int64_t)now.tv_sec * 1000 + 60000) {
        snprintf(err, errlen, "--from: %" PRId64 " is in the future (now is %lld)", o->from,
                 (long long)now.tv_sec * 1000);
        return false;
    }
    return true;
}

static void bf_summary(const bf_ctx *c, const char *how, int code)
{
    kf_history_progress z;
    memset(&z, 0, sizeof z);
    const kf_history_progress *p = c->have_last ? &c->last : &z;
    cli_log(KF_LOG_INFO,
            "msg=\"backfill %s\" code=%d rows=%" PRIu64 " requests=%" PRIu64 " weight_used=%" PRIu64
            " weight_limit=%u http_429=%" PRIu64 " http_418=%" PRIu64 " http_5xx=%" PRIu64
            " retries=%" PRIu64 " waits_ms=%" PRIu64 " elapsed_ms=%" PRId64 " streams=%zu"
            " streams_done=%zu",
            how, code, p->rows, p->requests, p->weight_used, p->weight_limit, p->http_429,
            p->http_418, p->http_5xx, p->retries, p->waits_ms, p->elapsed_ms, p->streams,
            p->streams_done);
}

static bool bf_signals_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = bf_on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return false;
    sa.sa_handler = SIG_IGN; /* jsonl:- into a closed pipe is a sink error */
    sigaction(SIGPIPE, &sa, NULL);
    return true;
}

int cli_backfill(int argc, char **argv)
{
    cli_backfill_opts o;
    memset(&o, 0, sizeof o);
    o.log_level = KF_LOG_INFO;
    char err[CLI_ERR_MAX], *text = NULL;
    int rc;
    kf_history *h = NULL;
    kf_config *cfg = NULL;
    if (!cli_parse(&cli_cmd_backfill, &o, argc, argv, NULL, &text, err, sizeof err) ||
        !bf_check(&o, err, sizeof err)) {
        cli_error("%s", err);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    if (o.help) {
        cli_command_help(&cli_cmd_backfill, stdout);
        rc = fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
        goto out;
    }
    cli_logger_setup((kf_log_level)o.log_level);

    cfg = kf_config_new();
    if (!cfg) {
        cli_error("out of memory");
        rc = CLI_EXIT_RUNTIME;
        goto out;
    }
    rc = bf_build_config(cfg, &o);
    if (rc != CLI_EXIT_OK)
        goto out;
    char errbuf[512] = "";
    h = kf_history_new(cfg, errbuf, sizeof errbuf);
    if (!h) {
        cli_error("%s", *errbuf ? errbuf : "invalid configuration");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    bf_running = h;
    if (!bf_signals_install()) {
        cli_error("cannot install signal handlers: %s", strerror(errno));
        rc = CLI_EXIT_RUNTIME;
        goto out;
    }
    bf_ctx c;
    memset(&c, 0, sizeof c);
    c.tty = isatty(STDERR_FILENO) == 1 && o.log_level <= KF_LOG_INFO;
    c.last_ms = mono_ms();
    kf_err e = kf_history_run(h, o.from, o.has_to ? o.to : INT64_MAX, bf_on_progress, &c);
    if (c.tty && c.shown) { /* the final state, and the line ended */
        bf_progress_line(&c, &c.last);
        if (write(STDERR_FILENO, "\n", 1) < 0)
            c.shown = false;
    }
    const char *how = "done";
    if (e == KF_ERR_NOT_RUNNING) {
        how = "interrupted";
        cli_log(KF_LOG_INFO, "msg=\"interrupted: rows so far are stored; the next run resumes\"");
    } else if (e) {
        how = "failed";
        cli_error("%s", kf_history_errmsg(h));
        rc = e == KF_ERR_INVALID_ARG ? CLI_EXIT_USAGE : CLI_EXIT_RUNTIME;
    }
    bf_summary(&c, how, rc);

out:
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    bf_running = NULL;
    kf_history_free(h);
    kf_config_free(cfg);
    cli_free_lists(&cli_cmd_backfill, &o);
    free(text);
    return rc;
}
