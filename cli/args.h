/*
 * Command-line parsing for the klinefeed CLI: a small option tokenizer
 * ("--flag value", "--flag=value", "--" ends options) and the option sets of
 * the run and decode commands. Pure: no I/O, no library calls except the
 * interval/log-level helpers; errors come back as one line of text (without
 * the "klinefeed: " prefix) for the caller to print.
 */
#ifndef KF_CLI_ARGS_H
#define KF_CLI_ARGS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Documented exit codes (--help, docs/cli.md). */
#define CLI_EXIT_OK 0      /* success, clean stop after SIGINT/SIGTERM */
#define CLI_EXIT_RUNTIME 1 /* start failed (connection, symbols, sink), write error */
#define CLI_EXIT_USAGE 2   /* unknown command/flag, bad or missing value */
#define CLI_EXIT_INPUT 3   /* decode: input file missing or unreadable */
#define CLI_EXIT_INCOMPLETE                                                                        \
    4 /* run stopped, but closed candles are not stored yet (known                                 \
         missing, or not taken by a store): the next start fetches them */

/* Longest error text produced by the parsers. */
#define CLI_ERR_MAX 512

/* ---- generic tokenizer ---- */

typedef struct cli_opt_spec {
    const char *name; /* "--symbols", "-h" */
    bool has_value;   /* takes a value: "--name V" or "--name=V" */
    int id;
} cli_opt_spec;

typedef struct cli_argiter {
    int argc;
    char **argv;
    int i;              /* next argument */
    bool only_operands; /* after "--" */
} cli_argiter;

typedef enum cli_arg_kind {
    CLI_ARG_END = 0,     /* no more arguments */
    CLI_ARG_OPT = 1,     /* *id set; *value set when the option takes one, else NULL */
    CLI_ARG_OPERAND = 2, /* *value is the positional argument ("-" is an operand) */
    CLI_ARG_ERROR = 3,   /* err holds one line naming the flag */
} cli_arg_kind;

void cli_argiter_init(cli_argiter *it, int argc, char **argv);
cli_arg_kind cli_arg_next(cli_argiter *it, const cli_opt_spec *specs, size_t nspecs, int *id,
                          const char **value, char *err, size_t errlen);

/*
 * Strict unsigned decimal: digits only, no sign, no spaces, no suffix, at most
 * max. Returns false (err names flag and value) otherwise.
 */
bool cli_parse_uint(const char *flag, const char *s, uint64_t max, uint64_t *out, char *err,
                    size_t errlen);

/* ---- run ---- */

typedef enum cli_validate_mode {
    CLI_VALIDATE_DEFAULT = -1, /* not given: library default */
    CLI_VALIDATE_IF_REACHABLE = 0,
    CLI_VALIDATE_REQUIRED = 1,
    CLI_VALIDATE_OFF = 2,
} cli_validate_mode;

typedef struct cli_run_opts {
    /* Each repeated flag adds one entry; values point into argv. */
    const char **symbols;
    size_t n_symbols;
    const char **intervals;
    size_t n_intervals;
    const char **sinks;
    size_t n_sinks;
    const char *ws_url; /* NULL: not given */
    const char *rest_url;
    const char *ca_file;
    bool testnet;
    bool all_updates;
    bool help;
    int log_level; /* kf_log_level; KF_LOG_INFO unless given */
    int validate;  /* cli_validate_mode */
    bool has_streams_per_connection;
    uint64_t streams_per_connection;
    bool has_connect_timeout_ms;
    uint64_t connect_timeout_ms;
    bool has_ring_size;
    uint64_t ring_size;
    /* staying connected and complete (0: not given, the library's default) */
    uint64_t ping_interval_ms, liveness_timeout_ms;
    uint64_t reconnect_initial_ms, reconnect_max_ms;
    uint64_t max_connection_age_ms;
    uint64_t rest_weight_budget;
    bool no_backfill;
    bool has_backfill_from;
    int64_t backfill_from;
    bool retry_start;      /* keep retrying a start that fails on the network */
    const char *state_dir; /* NULL: the default; "none": keep nothing */
    bool has_sink_queue;
    uint64_t sink_queue;
} cli_run_opts;

/*
 * Parses the arguments of `klinefeed run` (argv[0] is the first flag). Checks
 * syntax and the values the CLI owns (numbers, --log-level, --validate, sink
 * scheme, empty lists); symbols, intervals and URLs are checked later by the
 * kf_config setters. Returns false with err set; free with cli_run_opts_free
 * either way.
 */
bool cli_run_opts_parse(cli_run_opts *o, int argc, char **argv, char *err, size_t errlen);
void cli_run_opts_free(cli_run_opts *o);

/* ---- decode ---- */

typedef struct cli_decode_opts {
    const char *path; /* "-" (default) for stdin */
    bool help;
} cli_decode_opts;

bool cli_decode_opts_parse(cli_decode_opts *o, int argc, char **argv, char *err, size_t errlen);

/* ---- backfill ---- */

typedef struct cli_backfill_opts {
    const char **symbols; /* each repeated flag adds one entry; values point into argv */
    size_t n_symbols;
    const char **intervals;
    size_t n_intervals;
    const char **sinks;
    size_t n_sinks;
    const char *rest_url; /* NULL: not given */
    const char *ca_file;
    bool testnet;
    bool help;
    int log_level; /* kf_log_level; KF_LOG_INFO unless given */
    bool has_from, has_to;
    int64_t from, to;       /* unix ms */
    uint64_t weight_budget; /* 0: not given */
    const char *state_dir;  /* NULL: the default; "none": keep nothing */
} cli_backfill_opts;

/*
 * A time: unix milliseconds (digits only) or ISO-8601 UTC "2026-01-01",
 * "2026-01-01T12:00", "2026-01-01T12:00:00", optional ".mmm" and "Z". false with err
 * naming flag and value otherwise.
 */
bool cli_parse_time(const char *flag, const char *s, int64_t *out, char *err, size_t errlen);

/* Parses `klinefeed backfill` (argv[0] is the first flag): syntax, numbers, times, log
 * level, sink schemes, --from required and not after --to. Free with cli_backfill_opts_free
 * either way. */
bool cli_backfill_opts_parse(cli_backfill_opts *o, int argc, char **argv, char *err, size_t errlen);
void cli_backfill_opts_free(cli_backfill_opts *o);

#endif
