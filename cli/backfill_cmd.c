/*
 * `klinefeed backfill`: downloads closed candles from REST into the sinks, within the
 * exchange's weight budget (src/backfill/fetch.h), then exits.
 *
 * Flags are checked by the kf_config setters (a kf_collector is created, never started,
 * only to read the normalised streams and the REST base back through the public API).
 * Symbols are checked against exchangeInfo (the same request that reads the published
 * weight limit). Each stream resumes after the newest closed candle a sink already holds
 * (sinks that can answer: SQLite). Streams are fetched one after another, one request in
 * flight; rows go through the sinks' writer threads. SIGINT/SIGTERM set a flag: the
 * fetcher finishes the page it has, the rows are flushed, exit 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "backfill/fetch.h"
#include "cli.h"
#include "sink/sink.h"
#include "stream/stream.h"

#define DEFAULT_SINK "sqlite:klines.db"
#define BF_QUEUE_CAP 16384
#define BF_PROGRESS_TTY_MS 200
#define BF_PROGRESS_LOG_MS 5000

typedef struct bf_stream {
    char symbol[KF_SYMBOL_MAX + 1];
    int interval;
    int64_t start;   /* first open time to fetch */
    int64_t end;     /* last open time wanted (for progress): min(--to, exchange now) */
    int64_t reached; /* open time after the newest row passed, for progress */
    uint64_t rows;
    bool skip; /* nothing new can be closed yet */
} bf_stream;

typedef struct bf_ctx {
    bf_stream *streams;
    size_t nstreams, cur;
    kf__writer **writers;
    size_t nwriters;
    kf__fetcher *fetcher;
    int64_t t0, last_progress;
    int64_t total_span; /* sum of (end - start) over streams to fetch */
    bool tty;
    bool progress_shown;
    int64_t minute;          /* UTC minute of the last row seen */
    uint64_t minute_weight0; /* fetcher weight when that minute's first row came */
    uint64_t last_minute;    /* weight used in the previous minute with rows (+- a request) */
} bf_ctx;

static _Atomic bool bf_cancel;

static void bf_on_signal(int sig)
{
    (void)sig;
    atomic_store(&bf_cancel, true);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- progress ---- */

static double bf_fraction(const bf_ctx *c)
{
    if (c->total_span <= 0)
        return 1.0;
    int64_t done = 0;
    for (size_t i = 0; i < c->nstreams; i++) {
        const bf_stream *s = &c->streams[i];
        if (s->skip)
            continue;
        int64_t r = s->reached < s->start ? s->start : s->reached > s->end ? s->end : s->reached;
        done += r - s->start;
    }
    double f = (double)done / (double)c->total_span;
    return f > 1.0 ? 1.0 : f;
}

static void bf_progress(bf_ctx *c, bool force)
{
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    int64_t minute = (int64_t)rt.tv_sec / 60;
    if (minute != c->minute) {
        kf__fetch_stats ms;
        kf__fetcher_get_stats(c->fetcher, &ms);
        c->last_minute = c->minute ? ms.weight_used - c->minute_weight0 : 0;
        c->minute = minute;
        c->minute_weight0 = ms.weight_used;
    }
    int64_t now = mono_ms();
    int every = c->tty ? BF_PROGRESS_TTY_MS : BF_PROGRESS_LOG_MS;
    if (!force && now - c->last_progress < every)
        return;
    c->last_progress = now;
    kf__fetch_stats st;
    kf__fetcher_get_stats(c->fetcher, &st);
    int64_t el = now - c->t0;
    double frac = bf_fraction(c);
    /* the previous minute's weight once there is one, else this minute's so far */
    uint64_t wpm = c->last_minute ? c->last_minute : st.weight_used - c->minute_weight0;
    long eta = frac > 0.001 ? (long)((double)el * (1.0 - frac) / frac / 1000.0) : -1;
    const bf_stream *s = &c->streams[c->cur < c->nstreams ? c->cur : c->nstreams - 1];
    if (c->tty) {
        char line[256];
        int n = snprintf(line, sizeof line,
                         "\r\033[K%5.1f%%  rows %" PRIu64 "  weight/min %" PRIu64
                         "/%u  429s %" PRIu64 "  ETA %lds  %s %s",
                         frac * 100.0, st.rows, wpm, kf__fetcher_weight_limit(c->fetcher),
                         st.http_429, eta < 0 ? 0 : eta, s->symbol, kf_interval_name(s->interval));
        if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
            return;
        c->progress_shown = true;
    } else {
        kf__log(&cli_logger, KF_LOG_INFO,
                "msg=\"progress\" pct=%.1f rows=%" PRIu64 " requests=%" PRIu64 " weight=%" PRIu64
                " weight_last_min=%" PRIu64 " http_429=%" PRIu64 " eta_s=%ld stream=%s/%s",
                frac * 100.0, st.rows, st.requests, st.weight_used, wpm, st.http_429, eta,
                s->symbol, kf_interval_name(s->interval));
    }
}

static void bf_progress_end(bf_ctx *c)
{
    if (c->tty && c->progress_shown) {
        bf_progress(c, true);
        if (write(STDERR_FILENO, "\n", 1) < 0)
            return;
    }
}

static int bf_on_row(void *ud, const kf_kline *k)
{
    bf_ctx *c = ud;
    bf_stream *s = &c->streams[c->cur];
    for (size_t i = 0; i < c->nwriters; i++)
        kf__writer_push(c->writers[i], k);
    s->rows++;
    s->reached = kf__interval_next(s->interval, k->open_time);
    bf_progress(c, false);
    return 0;
}

/* ---- symbols ---- */

typedef struct bf_listed {
    bf_stream *streams;
    size_t n;
    char (*status)[16]; /* per stream, "" while not listed */
} bf_listed;

static void bf_on_symbol(void *ud, const char *symbol, const char *status)
{
    bf_listed *l = ud;
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->streams[i].symbol, symbol) == 0)
            snprintf(l->status[i], sizeof l->status[i], "%s", status);
}

/* ---- setup ---- */

static int bf_build_config(kf_config *cfg, const cli_backfill_opts *o)
{
    for (size_t i = 0; i < o->n_symbols; i++)
        CLI_SET(kf_config_add_symbols(cfg, o->symbols[i]), "--symbols", o->symbols[i]);
    for (size_t i = 0; i < o->n_intervals; i++)
        CLI_SET(kf_config_add_intervals(cfg, o->intervals[i]), "--intervals", o->intervals[i]);
    if (o->testnet)
        CLI_SET(kf_config_set_testnet(cfg, true), "--testnet", "");
    if (o->rest_url)
        CLI_SET(kf_config_set_rest_url(cfg, o->rest_url), "--rest-url", o->rest_url);
    for (size_t i = 0; i < o->n_sinks; i++)
        CLI_SET(kf_config_add_sink(cfg, o->sinks[i]), "--sink", o->sinks[i]);
    if (o->ca_file) {
        int rc = cli_set_ca_file(cfg, o->ca_file);
        if (rc != CLI_EXIT_OK)
            return rc;
    }
    return CLI_EXIT_OK;
}

/* "btcusdt@kline_1h" -> BTCUSDT, 1h (the config upper-cased ASCII letters only). */
static bool bf_stream_from_name(const char *name, bf_stream *s)
{
    const char *at = strstr(name, "@kline_");
    size_t n = at ? (size_t)(at - name) : 0;
    if (!at || n == 0 || n > KF_SYMBOL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        s->symbol[i] = (ch >= 'a' && ch <= 'z') ? (char)(ch - 'a' + 'A') : ch;
    }
    s->symbol[n] = 0;
    const char *iv = at + 7;
    s->interval = kf_interval_index(iv, strlen(iv));
    return s->interval >= 0;
}

/* Newest closed open time over the sinks that can answer; *found false when none holds one
 * (or none can answer). The oldest answer wins, so every answering sink gets every row. */
static kf_err bf_resume_point(kf__writer **w, size_t nw, const bf_stream *s, int64_t *t,
                              bool *found, char *err, size_t errlen)
{
    *found = false;
    bool any_empty = false;
    for (size_t i = 0; i < nw; i++) {
        void *state = NULL;
        const kf__sink_ops *ops = kf__writer_ops(w[i], &state);
        if (!ops || !ops->last_closed)
            continue;
        int64_t ot = 0;
        int f = 0;
        kf_err e =
            ops->last_closed(state, s->symbol, kf_interval_name(s->interval), &ot, &f, err, errlen);
        if (e)
            return e;
        if (!f)
            any_empty = true;
        else if (!*found || ot < *t) {
            *t = ot;
            *found = true;
        }
    }
    if (any_empty)
        *found = false;
    return KF_OK;
}

static void bf_summary(bf_ctx *c, const char *how, int code)
{
    kf__fetch_stats st;
    kf__fetcher_get_stats(c->fetcher, &st);
    char per[1536];
    size_t o = 0;
    per[0] = 0;
    for (size_t i = 0; i < c->nstreams && o + 64 < sizeof per; i++)
        o += (size_t)snprintf(per + o, sizeof per - o, "%s%s/%s:%" PRIu64, i ? "," : "",
                              c->streams[i].symbol, kf_interval_name(c->streams[i].interval),
                              c->streams[i].rows);
    if (c->nstreams && o + 64 >= sizeof per)
        snprintf(per + o, sizeof per - o, ",...");
    int64_t el = mono_ms() - c->t0;
    kf__log(&cli_logger, KF_LOG_INFO,
            "msg=\"backfill %s\" code=%d rows=%" PRIu64 " requests=%" PRIu64 " weight_used=%" PRIu64
            " weight_limit=%u http_429=%" PRIu64 " http_418=%" PRIu64 " http_5xx=%" PRIu64
            " retries=%" PRIu64 " waits_ms=%" PRIu64 " elapsed_ms=%" PRId64 " per_stream=\"%s\"",
            how, code, st.rows, st.requests, st.weight_used, kf__fetcher_weight_limit(c->fetcher),
            st.http_429, st.http_418, st.http_5xx, st.retries, st.waits_ms, el, per);
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

/* Everything after the flags are checked; returns the exit code. */
static int bf_execute(const cli_backfill_opts *o, const char *rest_base, const char *const *sinks,
                      size_t nsinks, bf_stream *streams, size_t nstreams)
{
    char err[1024] = "";
    int rc = CLI_EXIT_OK;
    bf_ctx c;
    memset(&c, 0, sizeof c);
    c.streams = streams;
    c.nstreams = nstreams;
    c.tty = isatty(STDERR_FILENO) == 1 && o->log_level <= KF_LOG_INFO;
    c.t0 = mono_ms();
    c.last_progress = c.t0;

    char dir[1024], state[1200];
    rc = cli_state_dir(o->state_dir, dir, sizeof dir);
    if (rc != CLI_EXIT_OK)
        return rc;
    kf__fetcher_opts fo = {
        .rest_base = rest_base,
        .tls_verify = true,
        .ca_file = o->ca_file,
        .weight_budget = (unsigned)o->weight_budget,
        .timeout_ms = 10000,
        .log = &cli_logger,
        .state_path = kf__fetch_state_path(dir, rest_base, state, sizeof state) ? state : NULL,
    };
    c.fetcher = kf__fetcher_new(&fo, err, sizeof err);
    if (!c.fetcher) {
        cli_error("%s", err);
        return CLI_EXIT_RUNTIME;
    }
    c.writers = calloc(nsinks, sizeof *c.writers);
    char(*status)[16] = calloc(nstreams, sizeof *status);
    if (!c.writers || !status) {
        cli_error("out of memory");
        rc = CLI_EXIT_RUNTIME;
        goto out;
    }
    if (!bf_signals_install()) {
        cli_error("cannot install signal handlers: %s", strerror(errno));
        rc = CLI_EXIT_RUNTIME;
        goto out;
    }

    /* Symbols and the published weight limit: one request. */
    bf_listed listed = {streams, nstreams, status};
    kf_err e = kf__fetcher_exchange_info(c.fetcher, bf_on_symbol, &listed, err, sizeof err);
    if (e) {
        cli_error("exchangeInfo: %s", err);
        rc = CLI_EXIT_RUNTIME;
        goto out;
    }
    for (size_t i = 0; i < nstreams; i++) {
        if (!status[i][0]) {
            cli_error("symbol \"%s\" is not listed by %s/fapi/v1/exchangeInfo", streams[i].symbol,
                      rest_base);
            rc = CLI_EXIT_RUNTIME;
            goto out;
        }
        if (strcmp(status[i], "TRADING") != 0 &&
            (i == 0 || strcmp(streams[i - 1].symbol, streams[i].symbol) != 0))
            kf__log(&cli_logger, KF_LOG_WARN,
                    "msg=\"symbol is not trading; fetching its history anyway\" symbol=%s "
                    "status=%s",
                    streams[i].symbol, status[i]);
    }

    /* Sinks, opened here so a bad path fails before any download. */
    for (size_t i = 0; i < nsinks; i++) {
        c.writers[i] = kf__writer_open(sinks[i], BF_QUEUE_CAP, &cli_logger, err, sizeof err);
        if (!c.writers[i]) {
            cli_error("%s", err);
            rc = CLI_EXIT_RUNTIME;
            goto out;
        }
        c.nwriters++;
    }

    int64_t now = 0;
    e = kf__fetcher_server_time(c.fetcher, &now, err, sizeof err);
    if (e) {
        cli_error("server time: %s", err);
        rc = CLI_EXIT_RUNTIME;
        goto out;
    }
    size_t todo = 0, resumed = 0;
    for (size_t i = 0; i < nstreams; i++) {
        bf_stream *s = &streams[i];
        int64_t last = 0;
        bool found = false;
        e = bf_resume_point(c.writers, c.nwriters, s, &last, &found, err, sizeof err);
        if (e) {
            cli_error("%s", err);
            rc = CLI_EXIT_RUNTIME;
            goto out;
        }
        s->start = o->from;
        if (found && last >= o->from) {
            s->start = last + 1;
            resumed++;
        }
        s->end = o->has_to && o->to < now ? o->to : now;
        /* Nothing to ask for when the next candle cannot be closed yet or is past --to. */
        int64_t next = found && last >= o->from ? kf__interval_next(s->interval, last) : s->start;
        s->skip =
            s->start > s->end || next > s->end || kf__interval_next(s->interval, next) - 1 >= now;
        s->reached = s->start;
        if (!s->skip) {
            todo++;
            c.total_span += s->end - s->start;
        }
    }
    kf__log(&cli_logger, KF_LOG_INFO,
            "msg=\"backfill\" streams=%zu to_fetch=%zu resumed=%zu from=%" PRId64 " to=%" PRId64
            " rest=%s weight_limit=%u",
            nstreams, todo, resumed, o->from, o->has_to ? o->to : now, rest_base,
            kf__fetcher_weight_limit(c.fetcher));

    /* Writer threads start with SIGINT/SIGTERM blocked: only this thread takes them. */
    sigset_t stop_set, old_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);
    for (size_t i = 0; i < c.nwriters && !e; i++)
        e = kf__writer_start(c.writers[i], err, sizeof err);
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    if (e) {
        cli_error("%s", err);
        rc = CLI_EXIT_RUNTIME;
        goto out;
    }

    const char *how = "done";
    if (todo == 0) {
        kf__log(&cli_logger, KF_LOG_INFO,
                "msg=\"nothing new: every stream is up to date\" streams=%zu", nstreams);
    }
    for (c.cur = 0; c.cur < nstreams && todo; c.cur++) {
        bf_stream *s = &streams[c.cur];
        if (s->skip)
            continue;
        if (atomic_load(&bf_cancel)) {
            how = "interrupted";
            break;
        }
        e = kf__fetch_klines(c.fetcher, s->symbol, s->interval, s->start,
                             o->has_to ? o->to : INT64_MAX, bf_on_row, &c, &bf_cancel, NULL, err,
                             sizeof err);
        kf__log(&cli_logger, KF_LOG_DEBUG,
                "msg=\"stream fetched\" symbol=%s interval=%s rows=%" PRIu64, s->symbol,
                kf_interval_name(s->interval), s->rows);
        if (e == KF_ERR_NOT_RUNNING && atomic_load(&bf_cancel)) {
            how = "interrupted";
            break;
        }
        if (e) {
            bf_progress_end(&c);
            c.progress_shown = false;
            cli_error("%s %s: %s", s->symbol, kf_interval_name(s->interval), err);
            how = "failed";
            rc = CLI_EXIT_RUNTIME;
            break;
        }
    }
    if (atomic_load(&bf_cancel) && strcmp(how, "done") == 0)
        how = "interrupted";
    bf_progress_end(&c);

    /* Every pushed row is stored before exit. */
    for (size_t i = 0; i < c.nwriters; i++) {
        if (kf__writer_stop(c.writers[i]) != KF_OK) {
            cli_error("sink %s: not every row could be stored", sinks[i]);
            rc = CLI_EXIT_RUNTIME;
        }
    }
    if (strcmp(how, "interrupted") == 0)
        kf__log(&cli_logger, KF_LOG_INFO,
                "msg=\"interrupted: rows so far are stored; the next run resumes\"");
    bf_summary(&c, how, rc);

out:
    for (size_t i = 0; i < c.nwriters; i++)
        kf__writer_free(c.writers[i]);
    free(c.writers);
    free(status);
    kf__fetcher_free(c.fetcher);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    return rc;
}

int cli_backfill(int argc, char **argv)
{
    cli_backfill_opts o;
    char err[CLI_ERR_MAX];
    if (!cli_backfill_opts_parse(&o, argc, argv, err, sizeof err)) {
        cli_error("%s", err);
        cli_backfill_opts_free(&o);
        return CLI_EXIT_USAGE;
    }
    if (o.help) {
        cli_backfill_opts_free(&o);
        cli_usage(stdout);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
    }
    cli_logger_setup((kf_log_level)o.log_level);

    int rc;
    kf_collector *col = NULL;
    bf_stream *streams = NULL;
    const char **sinks = NULL;
    kf_config *cfg = kf_config_new();
    if (!cfg) {
        cli_error("out of memory");
        rc = CLI_EXIT_RUNTIME;
        goto out;
    }
    rc = bf_build_config(cfg, &o);
    if (rc != CLI_EXIT_OK)
        goto out;
    if (o.n_sinks == 0) {
        kf_err e = kf_config_add_sink(cfg, DEFAULT_SINK);
        if (e) {
            rc = cli_setter_failed(cfg, "--sink", DEFAULT_SINK, e);
            goto out;
        }
    }
    char errbuf[512] = "";
    col = kf_create(cfg, errbuf, sizeof errbuf);
    if (!col) {
        cli_error("%s", *errbuf ? errbuf : "invalid configuration");
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    size_t n = kf_stream_count(col);
    streams = calloc(n ? n : 1, sizeof *streams);
    size_t nsinks = o.n_sinks ? o.n_sinks : 1;
    sinks = calloc(nsinks, sizeof *sinks);
    if (!streams || !sinks) {
        cli_error("out of memory");
        rc = CLI_EXIT_RUNTIME;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (!bf_stream_from_name(kf_stream_name(col, i), &streams[i])) {
            cli_error("internal: unexpected stream name \"%s\"", kf_stream_name(col, i));
            rc = CLI_EXIT_RUNTIME;
            goto out;
        }
    for (size_t i = 0; i < nsinks; i++)
        sinks[i] = o.n_sinks ? o.sinks[i] : DEFAULT_SINK;
    rc = bf_execute(&o, kf_rest_url(col), sinks, nsinks, streams, n);

out:
    free(streams);
    free(sinks);
    kf_free(col);
    kf_config_free(cfg);
    cli_backfill_opts_free(&o);
    kf__logger_destroy(&cli_logger);
    return rc;
}
