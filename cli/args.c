/* Command-line parsing: the option tables of run, backfill and decode, the parser of the
 * command line and of the configuration file (--config), and each command's help. */
#include "args.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "klinefeed.h"

/* ---- values ---- */

bool cli_parse_uint(const char *flag, const char *s, uint64_t max, uint64_t *out, char *err,
                    size_t errlen)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p == '\0')
        goto bad;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad;
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10) {
            snprintf(err, errlen, "%s: \"%s\" is too large (at most %llu)", flag, s,
                     (unsigned long long)max);
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
bad:
    snprintf(err, errlen, "%s: \"%s\" is not a non-negative integer", flag, s);
    return false;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Reads exactly n digits at *p into *v. */
static bool take_digits(const char **p, int n, unsigned *v)
{
    unsigned x = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        x = x * 10 + (unsigned)(c - '0');
    }
    *p += n;
    *v = x;
    return true;
}

bool cli_parse_time(const char *flag, const char *s, int64_t *out, char *err, size_t errlen)
{
    const char *p = s;
    bool digits_only = *p != '\0';
    for (const char *q = s; *q; q++)
        if (*q < '0' || *q > '9')
            digits_only = false;
    if (digits_only) {
        uint64_t v;
        if (!cli_parse_uint(flag, s, (uint64_t)INT64_MAX, &v, err, errlen))
            return false;
        /* 1767225600 is 2026 in seconds and January 1970 in milliseconds: refuse the slip */
        if (v >= 1262304000ULL && v < 4102444800ULL) {
            snprintf(err, errlen,
                     "%s: \"%s\" looks like seconds; klinefeed takes unix milliseconds "
                     "(%s000) or a UTC date (2026-01-01)",
                     flag, s, s);
            return false;
        }
        *out = (int64_t)v;
        return true;
    }
    unsigned y, mo, d, h = 0, mi = 0, sec = 0, ms = 0;
    if (!take_digits(&p, 4, &y) || *p++ != '-' || !take_digits(&p, 2, &mo) || *p++ != '-' ||
        !take_digits(&p, 2, &d))
        goto bad;
    if (*p == 'T') {
        p++;
        if (!take_digits(&p, 2, &h) || *p++ != ':' || !take_digits(&p, 2, &mi))
            goto bad;
        if (*p == ':') {
            p++;
            if (!take_digits(&p, 2, &sec))
                goto bad;
            if (*p == '.') {
                p++;
                if (!take_digits(&p, 3, &ms))
                    goto bad;
            }
        }
    }
    if (*p == 'Z')
        p++;
    if (*p != '\0')
        goto bad;
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || sec > 59) {
        snprintf(err, errlen, "%s: \"%s\" is not a valid UTC date/time", flag, s);
        return false;
    }
    *out = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + ms;
    return true;
bad:
    snprintf(err, errlen,
             "%s: \"%s\" is not a time (unix ms, or UTC 2026-01-01, 2026-01-01T12:00, "
             "2026-01-01T12:00:00Z)",
             flag, s);
    return false;
}

/* "90" (seconds), "500ms", "30s", "15m", "1h", "2d" into ms. */
bool cli_parse_duration(const char *flag, const char *s, uint64_t *ms, char *err, size_t errlen)
{
    uint64_t n = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        goto bad;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > UINT64_MAX / 10 - 10)
            goto bad;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    uint64_t unit = strcmp(p, "ms") == 0             ? 1
                    : strcmp(p, "s") == 0 || *p == 0 ? 1000
                    : strcmp(p, "m") == 0            ? 60000
                    : strcmp(p, "h") == 0            ? 3600000
                    : strcmp(p, "d") == 0            ? 86400000
                                                     : 0;
    if (!unit || n > UINT64_MAX / unit)
        goto bad;
    *ms = n * unit;
    return true;
bad:
    snprintf(err, errlen,
             "%s: \"%s\" is not a duration (a number and a unit: 500ms, 30s, 15m, 1h, 2d; no "
             "unit: seconds)",
             flag, s);
    return false;
}

/* ---- the tables ---- */

#define RUN(f) offsetof(cli_run_opts, f)
#define BF(f) offsetof(cli_backfill_opts, f)
#define NOG CLI_NO_GIVEN

static const cli_option run_opts[] = {
    {"symbols", NULL, CLI_LIST, RUN(symbols), NOG, 0, 0, "LIST",
     "comma-separated symbols, e.g. BTCUSDT,ETHUSDT (required; repeatable); ALL:\n"
     "every TRADING USDT perpetual of exchangeInfo, re-read every --symbols-refresh"},
    {"symbols-refresh", NULL, CLI_DURATION, RUN(symbols_refresh_ms), RUN(has_symbols_refresh), 0,
     7 * 86400000ULL, "DURATION",
     "with --symbols ALL: re-read exchangeInfo this often while running (1h;\n"
     "0: never): a new listing is subscribed and backfilled from its listing,\n"
     "a delisted symbol is dropped and logged; no other connection is touched"},
    {"symbols-reserve", NULL, CLI_UINT, RUN(symbols_reserve), RUN(has_symbols_reserve), 0, 100000,
     "N", "with --symbols ALL: room for N symbols listed while running (256)"},
    {"intervals", NULL, CLI_LIST, RUN(intervals), NOG, 0, 0, "LIST",
     "comma-separated intervals from 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M\n"
     "(required; repeatable)"},
    {"sink", NULL, CLI_SINKS, RUN(sinks), NOG, 0, 0, "SPEC",
     "sqlite:PATH | jsonl:PATH | jsonl:- (stdout) | csv:PATH | csv:- (stdout) |\n"
     "postgres:CONNINFO (libpq key=value pairs or a postgresql:// URI);\n"
     "repeatable; default sqlite:klines.db"},
    {"all-updates", NULL, CLI_FLAG, RUN(all_updates), NOG, 0, 0, NULL,
     "send every update to the sinks (upserted), not only closed candles"},
    {"testnet", NULL, CLI_FLAG, RUN(testnet), NOG, 0, 0, NULL, "use the testnet endpoints"},
    {"ws-url", NULL, CLI_STRING, RUN(ws_url), NOG, 0, 0, "URL",
     "WebSocket base, ws:// or wss:// with the routed path\n"
     "(default wss://fstream.binance.com/market)"},
    {"rest-url", NULL, CLI_STRING, RUN(rest_url), NOG, 0, 0, "URL",
     "REST base, http:// or https:// (default https://fapi.binance.com)"},
    {"shard", NULL, CLI_STRING, RUN(shard), NOG, 0, 0, "K/N",
     "collect only the symbols of shard K of N (1 <= K <= N): FNV-1a 64 of the\n"
     "uppercase symbol mod N, plus 1; N collectors with shards 1/N..N/N and the\n"
     "same symbols cover each stream exactly once"},
    {"validate", NULL, CLI_VALIDATE, RUN(validate), NOG, 0, 0, "MODE",
     "check symbols against exchangeInfo: if-reachable (default) | required | off"},
    {"streams-per-connection", NULL, CLI_UINT, RUN(streams_per_connection),
     RUN(has_streams_per_connection), 1, 1024, "N", "streams per WebSocket connection (1024)"},
    {"connect-timeout-ms", NULL, CLI_UINT, RUN(connect_timeout_ms), RUN(has_connect_timeout_ms), 1,
     600000, "N", "connect / handshake / acknowledgement timeout (10000)"},
    {"ca-file", NULL, CLI_STRING, RUN(ca_file), NOG, 0, 0, "PATH",
     "CA bundle instead of the system store, for WebSocket and REST"},
    {"ring-size", NULL, CLI_UINT, RUN(ring_size), RUN(has_ring_size), 1, 1000000, "N",
     "recent candles kept in memory per stream (1000)"},
    {"ping-interval-ms", NULL, CLI_UINT, RUN(ping_interval_ms), NOG, 1, UINT32_MAX, "N",
     "our WebSocket ping period (20000)"},
    {"liveness-timeout-ms", NULL, CLI_UINT, RUN(liveness_timeout_ms), NOG, 1, UINT32_MAX, "N",
     "no frame for this long: the connection is replaced (30000)"},
    {"reconnect-initial-ms", NULL, CLI_UINT, RUN(reconnect_initial_ms), NOG, 1, UINT32_MAX, "N",
     "first reconnect within N ms (1000)"},
    {"reconnect-max-ms", NULL, CLI_UINT, RUN(reconnect_max_ms), NOG, 1, UINT32_MAX, "N",
     "reconnect backoff cap (30000)"},
    {"max-connection-age-ms", NULL, CLI_UINT, RUN(max_connection_age_ms), NOG, 1000, UINT64_MAX / 2,
     "N", "rotate connections at this age, make-before-break\n(85800000 = 23 h 50 min)"},
    {"backfill-from", NULL, CLI_TIME, RUN(backfill_from), RUN(has_backfill_from), 0, 0, "TIME",
     "also fetch closed candles from TIME on when a store starts later\n"
     "(unix ms or UTC 2026-01-01[T12:00[:00][Z]])"},
    {"no-backfill", NULL, CLI_FLAG, RUN(no_backfill), NOG, 0, 0, NULL,
     "never ask REST for missed candles"},
    {"rest-weight-budget", NULL, CLI_UINT, RUN(rest_weight_budget), NOG, 10, 1000000, "N",
     "REST weight per UTC minute (2400; a lower published limit wins)"},
    {"retry-start", NULL, CLI_FLAG, RUN(retry_start), NOG, 0, 0, NULL,
     "keep retrying a start that fails on the network (default: exit 1)"},
    {"state-dir", NULL, CLI_STRING, RUN(state_dir), NOG, 0, 0, "DIR|none",
     "where REST pauses are kept for the next process (default $STATE_DIRECTORY,\n"
     "else $XDG_STATE_HOME/klinefeed, else ~/.local/state/klinefeed)"},
    {"sink-queue", NULL, CLI_UINT, RUN(sink_queue), RUN(has_sink_queue), 16, 16777216, "N",
     "rows held per sink while it is slow or down (65536, 224 bytes each)"},
    {"status-every", NULL, CLI_UINT, RUN(status_every_s), RUN(has_status_every_s), 0, 86400, "S",
     "a status line every S seconds while running (60; 0: none)"},
    {"http", NULL, CLI_STRING, RUN(http), NOG, 0, 0, "ADDR:PORT",
     "serve /metrics (Prometheus), /healthz and /readyz on ADDR:PORT\n"
     "(127.0.0.1:9100, [::1]:9100; port 0: any free port, logged); off by default"},
    {"log-level", NULL, CLI_LEVEL, RUN(log_level), NOG, 0, 0, "LEVEL",
     "debug | info (default) | warn | error | off"},
    {"config", NULL, CLI_CONFIG, RUN(config), NOG, 0, 0, "FILE",
     "read options from FILE first: \"key = value\" lines, keys as these flags\n"
     "without the dashes; the command line wins"},
    {"help", "h", CLI_HELP, RUN(help), NOG, 0, 0, NULL, "this help"},
};

static const cli_option backfill_opts[] = {
    {"symbols", NULL, CLI_LIST, BF(symbols), NOG, 0, 0, "LIST", "as for run (required)"},
    {"intervals", NULL, CLI_LIST, BF(intervals), NOG, 0, 0, "LIST", "as for run (required)"},
    {"from", NULL, CLI_TIME, BF(from), BF(has_from), 0, 0, "TIME",
     "first open time (required): unix ms, or UTC 2026-01-01[T12:00[:00][Z]]"},
    {"to", NULL, CLI_TIME, BF(to), BF(has_to), 0, 0, "TIME", "last open time (default: now)"},
    {"sink", NULL, CLI_SINKS, BF(sinks), NOG, 0, 0, "SPEC",
     "as for run; repeatable; default sqlite:klines.db"},
    {"testnet", NULL, CLI_FLAG, BF(testnet), NOG, 0, 0, NULL, "use the testnet endpoints"},
    {"rest-url", NULL, CLI_STRING, BF(rest_url), NOG, 0, 0, "URL", "as for run"},
    {"shard", NULL, CLI_STRING, BF(shard), NOG, 0, 0, "K/N", "as for run"},
    {"ca-file", NULL, CLI_STRING, BF(ca_file), NOG, 0, 0, "PATH", "as for run"},
    {"rest-weight-budget", "weight-budget", CLI_UINT, BF(rest_weight_budget), NOG, 10, 1000000, "N",
     "REST weight per UTC minute (2400; a lower published limit wins)"},
    {"state-dir", NULL, CLI_STRING, BF(state_dir), NOG, 0, 0, "DIR|none",
     "as for run: a 429 back-off or 418 ban given to run is honoured here"},
    {"log-level", NULL, CLI_LEVEL, BF(log_level), NOG, 0, 0, "LEVEL", "as for run"},
    {"config", NULL, CLI_CONFIG, BF(config), NOG, 0, 0, "FILE", "as for run"},
    {"help", "h", CLI_HELP, BF(help), NOG, 0, 0, NULL, "this help"},
};

static const cli_option decode_opts[] = {
    {"help", "h", CLI_HELP, offsetof(cli_decode_opts, help), NOG, 0, 0, NULL, "this help"},
};

const cli_command cli_cmd_run = {
    "run",
    "klinefeed run --symbols LIST --intervals LIST [options]\n"
    "klinefeed [options]              (run, when the first argument is a flag)",
    "Collects Binance USDT-M Futures klines for every symbol x interval into the sinks until\n"
    "SIGINT, SIGTERM or SIGHUP, then flushes every closed candle and exits: 0 when every\n"
    "closed candle it knew of is stored, 4 when some are not stored yet (the next start\n"
    "fetches them), 1 when it could not start.",
    run_opts,
    sizeof run_opts / sizeof run_opts[0],
    false,
};

const cli_command cli_cmd_backfill = {
    "backfill",
    "klinefeed backfill --symbols LIST --intervals LIST --from TIME [options]",
    "Downloads closed candles from REST into the sinks within the exchange's request-weight\n"
    "budget, then exits 0. Resumes after the newest candle a sink holds (sqlite), so a second\n"
    "run fetches only what is new. SIGINT/SIGTERM: stop after the current request, store\n"
    "what was fetched, exit 0.",
    backfill_opts,
    sizeof backfill_opts / sizeof backfill_opts[0],
    false,
};

const cli_command cli_cmd_decode = {
    "decode",
    "klinefeed decode [FILE|-]        (default -, standard input)",
    "Reads captured frames, one per line (a raw event, a combined {\"stream\":...,\"data\":...}\n"
    "wrapper, or \"<unix time>: <frame>\"), writes one JSON object per kline to stdout, then\n"
    "\"decoded=N skipped=N malformed=N\" to stderr. Lines longer than 16 MiB are counted\n"
    "malformed; an unreadable input exits 3.",
    decode_opts,
    sizeof decode_opts / sizeof decode_opts[0],
    true,
};

/* ---- parsing ---- */

static const cli_option *find_opt(const cli_command *cmd, const char *name, size_t len)
{
    for (size_t i = 0; i < cmd->nopts; i++) {
        const cli_option *o = &cmd->opts[i];
        if ((strlen(o->name) == len && memcmp(o->name, name, len) == 0) ||
            (o->alias && strlen(o->alias) == len && memcmp(o->alias, name, len) == 0))
            return o;
    }
    return NULL;
}

/* The nearest name (one edit away, or a prefix), for "did you mean"; NULL when none. */
static const char *near_opt(const cli_command *cmd, const char *name, size_t len)
{
    for (size_t i = 0; i < cmd->nopts; i++) {
        const char *n = cmd->opts[i].name;
        size_t m = strlen(n);
        if (len >= 3 && len < m && memcmp(n, name, len) == 0)
            return n; /* a prefix */
        size_t a = 0, b = 0, edits = 0;
        while (a < len && b < m && edits < 2) {
            if (name[a] == n[b]) {
                a++, b++;
            } else {
                edits++;
                if (len > m) /* an extra letter */
                    a++;
                else if (len < m) /* a missing letter */
                    b++;
                else
                    a++, b++;
            }
        }
        edits += (len - a) + (m - b);
        if (edits == 1)
            return n;
    }
    return NULL;
}

static bool list_add(cli_list *l, const char *v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        const char **p = realloc(l->v, cap * sizeof *p);
        if (!p)
            return false;
        l->v = p;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return true;
}

/* A list value must hold at least one non-empty item. */
static bool list_has_item(const char *csv)
{
    for (const char *p = csv; *p; p++)
        if (*p != ',' && *p != ' ')
            return true;
    return false;
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no",
                                                                                "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(v, yes[i]) == 0)
            return *out = true, true;
        if (strcmp(v, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

/* Stores value v of option o (named `flag` in messages) into opts. value NULL: a flag without
 * one. from_file: the configuration file gave it. */
static bool set_value(const cli_option *o, void *opts, const char *flag, const char *v,
                      bool from_file, char *err, size_t errlen)
{
    char *base = opts;
    void *field = base + o->off;
    switch (o->kind) {
    case CLI_HELP:
    case CLI_FLAG:
        if (!v) {
            *(bool *)field = true;
        } else if (!from_file) {
            snprintf(err, errlen, "%s: takes no value (got \"%s\")", flag, v);
            return false;
        } else if (!parse_bool(v, (bool *)field)) {
            snprintf(err, errlen, "%s: \"%s\" is not true or false", flag, v);
            return false;
        }
        break;
    case CLI_STRING:
    case CLI_CONFIG:
        *(const char **)field = v;
        break;
    case CLI_LIST:
    case CLI_SINKS: {
        cli_list *l = field;
        if (o->kind == CLI_LIST && !list_has_item(v)) {
            snprintf(err, errlen, "%s: \"%s\" is an empty list", flag, v);
            return false;
        }
        if (o->kind == CLI_SINKS) {
            char why[300];
            if (kf_sink_spec_check(v, why, sizeof why) != KF_OK) {
                snprintf(err, errlen, "%s: %s", flag, why);
                return false;
            }
        }
        if (l->from_file && !from_file) { /* the command line replaces the file's entries */
            l->n = 0;
            l->from_file = false;
        } else if (from_file) {
            l->from_file = true;
        }
        if (!list_add(l, v)) {
            snprintf(err, errlen, "%s: out of memory", flag);
            return false;
        }
        break;
    }
    case CLI_UINT: {
        uint64_t x;
        if (!cli_parse_uint(flag, v, o->max, &x, err, errlen))
            return false;
        if (x < o->min) {
            snprintf(err, errlen, "%s: \"%s\" is too small (at least %" PRIu64 ")", flag, v,
                     o->min);
            return false;
        }
        *(uint64_t *)field = x;
        break;
    }
    case CLI_TIME:
        if (!cli_parse_time(flag, v, (int64_t *)field, err, errlen))
            return false;
        break;
    case CLI_DURATION: {
        uint64_t x;
        if (!cli_parse_duration(flag, v, &x, err, errlen))
            return false;
        if (x < o->min || x > o->max) {
            snprintf(err, errlen,
                     "%s: \"%s\" is out of range (%" PRIu64 " ms .. %" PRIu64 " ms, or 0: off)",
                     flag, v, o->min, o->max);
            return false;
        }
        *(uint64_t *)field = x;
        break;
    }
    case CLI_LEVEL: {
        int lv = kf_log_level_parse(v);
        if (lv < 0) {
            snprintf(err, errlen, "%s: \"%s\" is not a log level (debug info warn error off)", flag,
                     v);
            return false;
        }
        *(int *)field = lv;
        break;
    }
    case CLI_VALIDATE: {
        int m = strcmp(v, "if-reachable") == 0 ? CLI_VALIDATE_IF_REACHABLE
                : strcmp(v, "required") == 0   ? CLI_VALIDATE_REQUIRED
                : strcmp(v, "off") == 0        ? CLI_VALIDATE_OFF
                                               : CLI_VALIDATE_DEFAULT;
        if (m == CLI_VALIDATE_DEFAULT) {
            snprintf(err, errlen, "%s: \"%s\" is not a validation mode (if-reachable required off)",
                     flag, v);
            return false;
        }
        *(int *)field = m;
        break;
    }
    }
    if (o->given != CLI_NO_GIVEN)
        *(bool *)(base + o->given) = true;
    return true;
}

static bool takes_value(const cli_option *o)
{
    return o->kind != CLI_FLAG && o->kind != CLI_HELP;
}

/* Reads the whole file into a NUL-terminated buffer; NULL with err set. */
static char *read_text(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "--config: \"%s\": %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *p = cap < (1u << 24) ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                free(buf);
                buf = NULL;
                snprintf(err, errlen, "--config: \"%s\": larger than 16 MiB", path);
                break;
            }
            buf = p;
            cap *= 2;
        }
        size_t r = fread(buf + n, 1, cap - n - 1, f);
        if (r == 0)
            break;
        n += r;
    }
    if (buf && ferror(f)) {
        snprintf(err, errlen, "--config: \"%s\": %s", path, strerror(errno));
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[n] = 0;
    else if (!*err)
        snprintf(err, errlen, "--config: out of memory");
    return buf;
}

/* "key = value" (or "key value", or "key" alone for a flag) per line; '#' starts a comment
 * line; values are taken as written (no quotes, no escapes), spaces around them trimmed. */
static bool parse_file(const cli_command *cmd, void *opts, const char *path, char *text, char *err,
                       size_t errlen)
{
    unsigned line = 0;
    for (char *p = text; *p;) {
        char *eol = strchr(p, '\n');
        char *next = eol ? eol + 1 : p + strlen(p);
        if (eol)
            *eol = 0;
        line++;
        char *e = p + strlen(p);
        while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            *--e = 0;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p && *p != '#') {
            size_t klen = strcspn(p, " \t=");
            char *v = p + klen;
            while (*v == ' ' || *v == '\t')
                v++;
            if (*v == '=') {
                v++;
                while (*v == ' ' || *v == '\t')
                    v++;
            }
            const cli_option *o = find_opt(cmd, p, klen);
            char key[72];
            snprintf(key, sizeof key, "%.*s", (int)(klen > 64 ? 64 : klen), p);
            if (!o || o->kind == CLI_HELP || o->kind == CLI_CONFIG) {
                const char *near = o ? NULL : near_opt(cmd, p, klen);
                snprintf(err, errlen, "%s:%u: %s \"%s\"%s%s%s", path, line,
                         o ? "not allowed in a configuration file:" : "unknown key", key,
                         near ? " (did you mean \"" : "", near ? near : "", near ? "\"?)" : "");
                return false;
            }
            if (takes_value(o) && !*v) {
                snprintf(err, errlen, "%s:%u: %s: missing value", path, line, key);
                return false;
            }
            char where[600];
            snprintf(where, sizeof where, "%s:%u: %s", path, line, key);
            if (!set_value(o, opts, where, *v ? v : NULL, true, err, errlen))
                return false;
        }
        p = next;
    }
    return true;
}

bool cli_parse(const cli_command *cmd, void *opts, int argc, char **argv, const char **operand,
               char **text, char *err, size_t errlen)
{
    *text = NULL;
    if (operand)
        *operand = NULL;
    err[0] = 0;
    /* the configuration file first, wherever --config stands */
    const char *config = NULL;
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            config = argv[i] + 9;
    }
    if (config && find_opt(cmd, "config", 6)) {
        if (!(*text = read_text(config, err, errlen)))
            return false;
        if (!parse_file(cmd, opts, config, *text, err, errlen))
            return false;
    }
    bool only_operands = false;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_operands && strcmp(arg, "--") == 0) {
            only_operands = true;
            continue;
        }
        if (only_operands || arg[0] != '-' || arg[1] == '\0') {
            if (!cmd->takes_operand) {
                snprintf(err, errlen, "%s: unexpected argument \"%.200s\"", cmd->name, arg);
                return false;
            }
            if (*operand) {
                snprintf(err, errlen, "%s: unexpected argument \"%.200s\" (one FILE at most)",
                         cmd->name, arg);
                return false;
            }
            *operand = arg;
            continue;
        }
        const char *name = arg + (arg[1] == '-' ? 2 : 1);
        const char *eq = arg[1] == '-' ? strchr(name, '=') : NULL;
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_option *o = find_opt(cmd, name, len);
        if (!o || (arg[1] != '-' && !(o->alias && strlen(o->alias) == 1))) {
            const char *near = near_opt(cmd, name, len);
            snprintf(err, errlen, "%.*s: unknown option%s%s%s",
                     (int)(len > 64 ? 64 : len) + (int)(name - arg), arg,
                     near ? " (did you mean --" : "", near ? near : "", near ? "?)" : "");
            return false;
        }
        char flag[72]; /* named as typed (an alias stays an alias) */
        snprintf(flag, sizeof flag, "%.*s", (int)(name - arg + (len > 64 ? 64 : len)), arg);
        const char *v = NULL;
        if (takes_value(o)) {
            if (eq) {
                v = eq + 1;
            } else { /* "--flag" last, or followed by another option: the value is missing */
                const char *next = i + 1 < argc ? argv[i + 1] : NULL;
                if (!next || (next[0] == '-' && next[1] == '-')) {
                    snprintf(err, errlen, "%s: missing value", flag);
                    return false;
                }
                v = next;
                i++;
            }
            if (o->kind == CLI_CONFIG)
                continue; /* read above */
        } else if (eq) {
            snprintf(err, errlen, "%s: takes no value (got \"%.200s\")", flag, eq + 1);
            return false;
        }
        if (!set_value(o, opts, flag, v, false, err, errlen))
            return false;
    }
    return true;
}

void cli_free_lists(const cli_command *cmd, void *opts)
{
    for (size_t i = 0; i < cmd->nopts; i++)
        if (cmd->opts[i].kind == CLI_LIST || cmd->opts[i].kind == CLI_SINKS) {
            cli_list *l = (cli_list *)((char *)opts + cmd->opts[i].off);
            free(l->v);
            memset(l, 0, sizeof *l);
        }
}

void cli_command_help(const cli_command *cmd, FILE *out)
{
    fprintf(out, "Usage:\n");
    for (const char *p = cmd->synopsis; *p;) {
        size_t n = strcspn(p, "\n");
        fprintf(out, "  %.*s\n", (int)n, p);
        p += n + (p[n] == '\n');
    }
    fprintf(out, "\n%s\n\nOptions:\n", cmd->summary);
    for (size_t i = 0; i < cmd->nopts; i++) {
        const cli_option *o = &cmd->opts[i];
        char head[64];
        snprintf(head, sizeof head, "--%s%s%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "", o->alias ? ", -" : "",
                 o->alias ? (strlen(o->alias) == 1 ? o->alias : "") : "");
        if (o->alias && strlen(o->alias) > 1)
            snprintf(head, sizeof head, "--%s%s%s", o->name, o->metavar ? " " : "",
                     o->metavar ? o->metavar : "");
        const char *h = o->help;
        size_t n = strcspn(h, "\n");
        if (strlen(head) > 26)
            fprintf(out, "  %s\n  %-26s  %.*s\n", head, "", (int)n, h);
        else
            fprintf(out, "  %-26s  %.*s\n", head, (int)n, h);
        for (h += n; *h == '\n';) {
            h++;
            n = strcspn(h, "\n");
            fprintf(out, "  %-26s  %.*s\n", "", (int)n, h);
            h += n;
        }
        if (o->alias && strlen(o->alias) > 1)
            fprintf(out, "  %-26s  (also --%s)\n", "", o->alias);
    }
    if (cmd->nopts > 1)
        fprintf(out, "\nFlags take their value as \"--flag value\" or \"--flag=value\".\n");
}
