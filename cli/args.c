/* Command-line parsing: tokenizer plus the run and decode option sets. */
#include "args.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "klinefeed.h"

void cli_argiter_init(cli_argiter *it, int argc, char **argv)
{
    it->argc = argc;
    it->argv = argv;
    it->i = 0;
    it->only_operands = false;
}

static const cli_opt_spec *find_spec(const cli_opt_spec *specs, size_t nspecs, const char *name,
                                     size_t len)
{
    for (size_t i = 0; i < nspecs; i++)
        if (strlen(specs[i].name) == len && memcmp(specs[i].name, name, len) == 0)
            return &specs[i];
    return NULL;
}

cli_arg_kind cli_arg_next(cli_argiter *it, const cli_opt_spec *specs, size_t nspecs, int *id,
                          const char **value, char *err, size_t errlen)
{
    *value = NULL;
    if (it->i >= it->argc)
        return CLI_ARG_END;
    const char *arg = it->argv[it->i++];
    if (!it->only_operands && strcmp(arg, "--") == 0) {
        it->only_operands = true;
        if (it->i >= it->argc)
            return CLI_ARG_END;
        arg = it->argv[it->i++];
    }
    if (it->only_operands || arg[0] != '-' || arg[1] == '\0') {
        *value = arg;
        return CLI_ARG_OPERAND;
    }

    const char *eq = arg[1] == '-' ? strchr(arg, '=') : NULL;
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    const cli_opt_spec *spec = find_spec(specs, nspecs, arg, name_len);
    if (!spec) {
        snprintf(err, errlen, "%.*s: unknown option", (int)(name_len > 64 ? 64 : name_len), arg);
        return CLI_ARG_ERROR;
    }
    *id = spec->id;
    if (!spec->has_value) {
        if (eq) {
            snprintf(err, errlen, "%s: takes no value (got \"%s\")", spec->name, eq + 1);
            return CLI_ARG_ERROR;
        }
        return CLI_ARG_OPT;
    }
    if (eq) {
        *value = eq + 1;
        return CLI_ARG_OPT;
    }
    /* "--flag" last, or followed by another option: the value is missing. */
    const char *next = it->i < it->argc ? it->argv[it->i] : NULL;
    if (!next || (next[0] == '-' && next[1] == '-')) {
        snprintf(err, errlen, "%s: missing value", spec->name);
        return CLI_ARG_ERROR;
    }
    it->i++;
    *value = next;
    return CLI_ARG_OPT;
}

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

/* ---- run ---- */

enum {
    OPT_HELP,
    OPT_SYMBOLS,
    OPT_INTERVALS,
    OPT_TESTNET,
    OPT_WS_URL,
    OPT_REST_URL,
    OPT_SINK,
    OPT_ALL_UPDATES,
    OPT_LOG_LEVEL,
    OPT_VALIDATE,
    OPT_STREAMS_PER_CONNECTION,
    OPT_CONNECT_TIMEOUT_MS,
    OPT_CA_FILE,
    OPT_RING_SIZE,
    OPT_PING_INTERVAL_MS,
    OPT_LIVENESS_TIMEOUT_MS,
    OPT_RECONNECT_INITIAL_MS,
    OPT_RECONNECT_MAX_MS,
    OPT_MAX_CONNECTION_AGE_MS,
    OPT_NO_BACKFILL,
    OPT_BACKFILL_FROM,
    OPT_REST_WEIGHT_BUDGET,
    OPT_RETRY_START,
    OPT_STATE_DIR,
    OPT_SINK_QUEUE,
};

static const cli_opt_spec run_specs[] = {
    {"--help", false, OPT_HELP},
    {"-h", false, OPT_HELP},
    {"--symbols", true, OPT_SYMBOLS},
    {"--intervals", true, OPT_INTERVALS},
    {"--testnet", false, OPT_TESTNET},
    {"--ws-url", true, OPT_WS_URL},
    {"--rest-url", true, OPT_REST_URL},
    {"--sink", true, OPT_SINK},
    {"--all-updates", false, OPT_ALL_UPDATES},
    {"--log-level", true, OPT_LOG_LEVEL},
    {"--validate", true, OPT_VALIDATE},
    {"--streams-per-connection", true, OPT_STREAMS_PER_CONNECTION},
    {"--connect-timeout-ms", true, OPT_CONNECT_TIMEOUT_MS},
    {"--ca-file", true, OPT_CA_FILE},
    {"--ring-size", true, OPT_RING_SIZE},
    {"--ping-interval-ms", true, OPT_PING_INTERVAL_MS},
    {"--liveness-timeout-ms", true, OPT_LIVENESS_TIMEOUT_MS},
    {"--reconnect-initial-ms", true, OPT_RECONNECT_INITIAL_MS},
    {"--reconnect-max-ms", true, OPT_RECONNECT_MAX_MS},
    {"--max-connection-age-ms", true, OPT_MAX_CONNECTION_AGE_MS},
    {"--no-backfill", false, OPT_NO_BACKFILL},
    {"--backfill-from", true, OPT_BACKFILL_FROM},
    {"--rest-weight-budget", true, OPT_REST_WEIGHT_BUDGET},
    {"--retry-start", false, OPT_RETRY_START},
    {"--state-dir", true, OPT_STATE_DIR},
    {"--sink-queue", true, OPT_SINK_QUEUE},
};

/* A list value must hold at least one non-empty item. */
static bool list_has_item(const char *csv)
{
    for (const char *p = csv; *p; p++)
        if (*p != ',' && *p != ' ')
            return true;
    return false;
}

/* The library decides (its table of sink schemes, a non-empty target); err as "--sink: ...". */
static bool sink_spec_ok(const char *spec, char *err, size_t errlen)
{
    char why[300];
    if (kf_sink_spec_check(spec, why, sizeof why) == KF_OK)
        return true;
    snprintf(err, errlen, "--sink: %s", why);
    return false;
}

static int parse_validate(const char *s)
{
    if (strcmp(s, "if-reachable") == 0)
        return CLI_VALIDATE_IF_REACHABLE;
    if (strcmp(s, "required") == 0)
        return CLI_VALIDATE_REQUIRED;
    if (strcmp(s, "off") == 0)
        return CLI_VALIDATE_OFF;
    return CLI_VALIDATE_DEFAULT;
}

bool cli_run_opts_parse(cli_run_opts *o, int argc, char **argv, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->log_level = KF_LOG_INFO;
    o->validate = CLI_VALIDATE_DEFAULT;
    size_t cap = argc > 0 ? (size_t)argc : 1;
    o->symbols = calloc(cap, sizeof *o->symbols);
    o->intervals = calloc(cap, sizeof *o->intervals);
    o->sinks = calloc(cap, sizeof *o->sinks);
    if (!o->symbols || !o->intervals || !o->sinks) {
        snprintf(err, errlen, "out of memory");
        return false;
    }

    cli_argiter it;
    cli_argiter_init(&it, argc, argv);
    for (;;) {
        int id = -1;
        const char *v = NULL;
        cli_arg_kind kind = cli_arg_next(&it, run_specs, sizeof run_specs / sizeof run_specs[0],
                                         &id, &v, err, errlen);
        if (kind == CLI_ARG_END)
            return true;
        if (kind == CLI_ARG_ERROR)
            return false;
        if (kind == CLI_ARG_OPERAND) {
            snprintf(err, errlen, "run: unexpected argument \"%s\"", v);
            return false;
        }
        switch (id) {
        case OPT_HELP:
            o->help = true;
            break;
        case OPT_SYMBOLS:
        case OPT_INTERVALS:
            if (!list_has_item(v)) {
                snprintf(err, errlen, "%s: \"%s\" is an empty list",
                         id == OPT_SYMBOLS ? "--symbols" : "--intervals", v);
                return false;
            }
            if (id == OPT_SYMBOLS)
                o->symbols[o->n_symbols++] = v;
            else
                o->intervals[o->n_intervals++] = v;
            break;
        case OPT_TESTNET:
            o->testnet = true;
            break;
        case OPT_WS_URL:
            o->ws_url = v;
            break;
        case OPT_REST_URL:
            o->rest_url = v;
            break;
        case OPT_SINK:
            if (!sink_spec_ok(v, err, errlen))
                return false;
            o->sinks[o->n_sinks++] = v;
            break;
        case OPT_ALL_UPDATES:
            o->all_updates = true;
            break;
        case OPT_LOG_LEVEL:
            o->log_level = kf_log_level_parse(v);
            if (o->log_level < 0) {
                snprintf(err, errlen,
                         "--log-level: \"%s\" is not a log level (debug info warn error off)", v);
                return false;
            }
            break;
        case OPT_VALIDATE:
            o->validate = parse_validate(v);
            if (o->validate == CLI_VALIDATE_DEFAULT) {
                snprintf(err, errlen,
                         "--validate: \"%s\" is not a validation mode (if-reachable required "
                         "off)",
                         v);
                return false;
            }
            break;
        case OPT_STREAMS_PER_CONNECTION:
            if (!cli_parse_uint("--streams-per-connection", v, SIZE_MAX, &o->streams_per_connection,
                                err, errlen))
                return false;
            o->has_streams_per_connection = true;
            break;
        case OPT_CONNECT_TIMEOUT_MS:
            if (!cli_parse_uint("--connect-timeout-ms", v, UINT32_MAX, &o->connect_timeout_ms, err,
                                errlen))
                return false;
            o->has_connect_timeout_ms = true;
            break;
        case OPT_CA_FILE:
            o->ca_file = v;
            break;
        case OPT_RING_SIZE:
            if (!cli_parse_uint("--ring-size", v, SIZE_MAX, &o->ring_size, err, errlen))
                return false;
            o->has_ring_size = true;
            break;
        case OPT_PING_INTERVAL_MS:
            if (!cli_parse_uint("--ping-interval-ms", v, UINT32_MAX, &o->ping_interval_ms, err,
                                errlen))
                return false;
            break;
        case OPT_LIVENESS_TIMEOUT_MS:
            if (!cli_parse_uint("--liveness-timeout-ms", v, UINT32_MAX, &o->liveness_timeout_ms,
                                err, errlen))
                return false;
            break;
        case OPT_RECONNECT_INITIAL_MS:
            if (!cli_parse_uint("--reconnect-initial-ms", v, UINT32_MAX, &o->reconnect_initial_ms,
                                err, errlen))
                return false;
            break;
        case OPT_RECONNECT_MAX_MS:
            if (!cli_parse_uint("--reconnect-max-ms", v, UINT32_MAX, &o->reconnect_max_ms, err,
                                errlen))
                return false;
            break;
        case OPT_MAX_CONNECTION_AGE_MS:
            if (!cli_parse_uint("--max-connection-age-ms", v, UINT64_MAX / 2,
                                &o->max_connection_age_ms, err, errlen))
                return false;
            break;
        case OPT_NO_BACKFILL:
            o->no_backfill = true;
            break;
        case OPT_BACKFILL_FROM:
            if (!cli_parse_time("--backfill-from", v, &o->backfill_from, err, errlen))
                return false;
            o->has_backfill_from = true;
            break;
        case OPT_REST_WEIGHT_BUDGET:
            if (!cli_parse_uint("--rest-weight-budget", v, UINT32_MAX, &o->rest_weight_budget, err,
                                errlen))
                return false;
            break;
        case OPT_RETRY_START:
            o->retry_start = true;
            break;
        case OPT_STATE_DIR:
            if (!*v) {
                snprintf(err, errlen, "--state-dir: empty (give a directory, or none)");
                return false;
            }
            o->state_dir = v;
            break;
        case OPT_SINK_QUEUE:
            if (!cli_parse_uint("--sink-queue", v, SIZE_MAX, &o->sink_queue, err, errlen))
                return false;
            o->has_sink_queue = true;
            break;
        }
    }
}

void cli_run_opts_free(cli_run_opts *o)
{
    free(o->symbols);
    free(o->intervals);
    free(o->sinks);
    o->symbols = o->intervals = o->sinks = NULL;
}

/* ---- decode ---- */

bool cli_decode_opts_parse(cli_decode_opts *o, int argc, char **argv, char *err, size_t errlen)
{
    static const cli_opt_spec specs[] = {{"--help", false, 0}, {"-h", false, 0}};
    o->path = NULL;
    o->help = false;
    cli_argiter it;
    cli_argiter_init(&it, argc, argv);
    for (;;) {
        int id = -1;
        const char *v = NULL;
        cli_arg_kind kind =
            cli_arg_next(&it, specs, sizeof specs / sizeof specs[0], &id, &v, err, errlen);
        if (kind == CLI_ARG_END)
            break;
        if (kind == CLI_ARG_ERROR)
            return false;
        if (kind == CLI_ARG_OPT) {
            o->help = true;
            continue;
        }
        if (o->path) {
            snprintf(err, errlen, "decode: unexpected argument \"%s\" (one FILE at most)", v);
            return false;
        }
        o->path = v;
    }
    if (!o->path)
        o->path = "-";
    return true;
}

/* ---- backfill ---- */

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

enum {
    BF_HELP,
    BF_SYMBOLS,
    BF_INTERVALS,
    BF_FROM,
    BF_TO,
    BF_SINK,
    BF_REST_URL,
    BF_TESTNET,
    BF_WEIGHT_BUDGET,
    BF_LOG_LEVEL,
    BF_CA_FILE,
    BF_STATE_DIR,
};

static const cli_opt_spec backfill_specs[] = {
    {"--help", false, BF_HELP},          {"-h", false, BF_HELP},
    {"--symbols", true, BF_SYMBOLS},     {"--intervals", true, BF_INTERVALS},
    {"--from", true, BF_FROM},           {"--to", true, BF_TO},
    {"--sink", true, BF_SINK},           {"--rest-url", true, BF_REST_URL},
    {"--testnet", false, BF_TESTNET},    {"--weight-budget", true, BF_WEIGHT_BUDGET},
    {"--log-level", true, BF_LOG_LEVEL}, {"--ca-file", true, BF_CA_FILE},
    {"--state-dir", true, BF_STATE_DIR},
};

bool cli_backfill_opts_parse(cli_backfill_opts *o, int argc, char **argv, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->log_level = KF_LOG_INFO;
    size_t cap = argc > 0 ? (size_t)argc : 1;
    o->symbols = calloc(cap, sizeof *o->symbols);
    o->intervals = calloc(cap, sizeof *o->intervals);
    o->sinks = calloc(cap, sizeof *o->sinks);
    if (!o->symbols || !o->intervals || !o->sinks) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    cli_argiter it;
    cli_argiter_init(&it, argc, argv);
    for (;;) {
        int id = -1;
        const char *v = NULL;
        cli_arg_kind kind =
            cli_arg_next(&it, backfill_specs, sizeof backfill_specs / sizeof backfill_specs[0], &id,
                         &v, err, errlen);
        if (kind == CLI_ARG_END)
            break;
        if (kind == CLI_ARG_ERROR)
            return false;
        if (kind == CLI_ARG_OPERAND) {
            snprintf(err, errlen, "backfill: unexpected argument \"%s\"", v);
            return false;
        }
        switch (id) {
        case BF_HELP:
            o->help = true;
            break;
        case BF_SYMBOLS:
        case BF_INTERVALS:
            if (!list_has_item(v)) {
                snprintf(err, errlen, "%s: \"%s\" is an empty list",
                         id == BF_SYMBOLS ? "--symbols" : "--intervals", v);
                return false;
            }
            if (id == BF_SYMBOLS)
                o->symbols[o->n_symbols++] = v;
            else
                o->intervals[o->n_intervals++] = v;
            break;
        case BF_FROM:
            if (!cli_parse_time("--from", v, &o->from, err, errlen))
                return false;
            o->has_from = true;
            break;
        case BF_TO:
            if (!cli_parse_time("--to", v, &o->to, err, errlen))
                return false;
            o->has_to = true;
            break;
        case BF_SINK:
            if (!sink_spec_ok(v, err, errlen))
                return false;
            o->sinks[o->n_sinks++] = v;
            break;
        case BF_REST_URL:
            o->rest_url = v;
            break;
        case BF_TESTNET:
            o->testnet = true;
            break;
        case BF_WEIGHT_BUDGET:
            if (!cli_parse_uint("--weight-budget", v, 1000000, &o->weight_budget, err, errlen))
                return false;
            if (o->weight_budget == 0) {
                snprintf(err, errlen, "--weight-budget: \"%s\" must be at least 1", v);
                return false;
            }
            break;
        case BF_LOG_LEVEL:
            o->log_level = kf_log_level_parse(v);
            if (o->log_level < 0) {
                snprintf(err, errlen,
                         "--log-level: \"%s\" is not a log level (debug info warn error off)", v);
                return false;
            }
            break;
        case BF_CA_FILE:
            o->ca_file = v;
            break;
        case BF_STATE_DIR:
            if (!*v) {
                snprintf(err, errlen, "--state-dir: empty (give a directory, or none)");
                return false;
            }
            o->state_dir = v;
            break;
        }
    }
    if (o->help)
        return true;
    if (o->n_symbols == 0 || o->n_intervals == 0 || !o->has_from) {
        snprintf(err, errlen,
                 "backfill: %s is required (e.g. --symbols BTCUSDT --intervals 1m --from "
                 "2026-01-01)",
                 o->n_symbols == 0     ? "--symbols"
                 : o->n_intervals == 0 ? "--intervals"
                                       : "--from");
        return false;
    }
    if (o->has_to && o->to < o->from) {
        snprintf(err, errlen, "--to: %" PRId64 " is before --from %" PRId64, o->to, o->from);
        return false;
    }
    return true;
}

void cli_backfill_opts_free(cli_backfill_opts *o)
{
    free(o->symbols);
    free(o->intervals);
    free(o->sinks);
    o->symbols = o->intervals = o->sinks = NULL;
}
