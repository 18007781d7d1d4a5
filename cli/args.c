/* Command-line parsing: tokenizer plus the run and decode option sets. */
#include "args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "klinefeed.h"
#include "sink/sink.h"

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
};

/* A list value must hold at least one non-empty item. */
static bool list_has_item(const char *csv)
{
    for (const char *p = csv; *p; p++)
        if (*p != ',' && *p != ' ')
            return true;
    return false;
}

/* The library's own table of sink schemes decides (sqlite, jsonl, csv; non-empty target). */
static bool sink_spec_ok(const char *spec)
{
    return kf__sink_lookup(spec, NULL) != NULL;
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
            if (!sink_spec_ok(v)) {
                snprintf(err, errlen,
                         "--sink: \"%s\" is not a sink (sqlite:PATH, jsonl:PATH, jsonl:-, "
                         "csv:PATH)",
                         v);
                return false;
            }
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
