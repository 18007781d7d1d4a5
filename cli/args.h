/*
 * Command-line parsing for the klinefeed CLI, table driven: each command has one table of
 * options (name, kind of value, where the value goes, limits, help), which parses the command
 * line ("--flag value", "--flag=value", "--" ends options), parses a configuration file with the
 * same keys (`--config FILE`: "key = value" lines; the command line wins), and prints the
 * command's help. Pure but for reading the configuration file: no library calls except the
 * public value checks; errors come back as one line of text (without the "klinefeed: " prefix)
 * naming the flag (or the file, line and key) and the value.
 */
#ifndef KF_CLI_ARGS_H
#define KF_CLI_ARGS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Documented exit codes (--help, docs/cli.md). */
#define CLI_EXIT_OK 0      /* success, clean stop after SIGINT/SIGTERM/SIGHUP */
#define CLI_EXIT_RUNTIME 1 /* start failed (connection, symbols, sink), write error */
#define CLI_EXIT_USAGE 2   /* unknown command/flag, bad or missing value */
#define CLI_EXIT_INPUT 3   /* decode: input file missing or unreadable */
#define CLI_EXIT_INCOMPLETE                                                                        \
    4 /* run stopped, but closed candles are not stored yet (known                                 \
         missing, or not taken by a store): the next start fetches them */

/* Longest error text produced by the parsers. */
#define CLI_ERR_MAX 768

/* A repeatable value (--symbols, --intervals, --sink): each occurrence adds one entry. */
typedef struct cli_list {
    const char **v;
    size_t n, cap;
    bool from_file; /* the entries came from the configuration file: the command line replaces
                       them */
} cli_list;

typedef enum cli_kind {
    CLI_FLAG,     /* no value (in a file: true/false/yes/no/on/off/1/0): bool */
    CLI_STRING,   /* const char * */
    CLI_LIST,     /* cli_list; a comma list must hold an item */
    CLI_SINKS,    /* cli_list of sink specs, each checked by kf_sink_spec_check */
    CLI_UINT,     /* uint64_t within [min, max] */
    CLI_TIME,     /* int64_t unix ms: digits (ms, not seconds) or ISO-8601 UTC */
    CLI_DURATION, /* uint64_t ms within [min, max]: digits and a unit ms s m h d (none: s) */
    CLI_LEVEL,    /* int: kf_log_level */
    CLI_VALIDATE, /* int: cli_validate_mode */
    CLI_CONFIG,   /* the configuration file itself (read before the command line) */
    CLI_HELP,     /* --help / -h */
} cli_kind;

typedef struct cli_option {
    const char *name;  /* "symbols": --symbols on the command line, "symbols =" in a file */
    const char *alias; /* another accepted name (NULL: none) */
    cli_kind kind;
    size_t off;          /* offset of the value in the command's options struct */
    size_t given;        /* offset of a bool set when given, or CLI_NO_GIVEN */
    uint64_t min, max;   /* CLI_UINT */
    const char *metavar; /* "LIST", "N" (help) */
    const char *help;    /* help text; '\n' starts another line */
} cli_option;

#define CLI_NO_GIVEN ((size_t)-1)

typedef struct cli_command {
    const char *name;     /* "run" */
    const char *synopsis; /* "klinefeed run --symbols LIST --intervals LIST [options]" */
    const char *summary;  /* paragraph after the synopsis */
    const cli_option *opts;
    size_t nopts;
    bool takes_operand; /* decode [FILE] */
} cli_command;

/*
 * Parses argv (argv[0] is the first argument after the command name) into opts (zeroed
 * by the caller, defaults set) using cmd's table. A --config FILE among the arguments is read
 * first, whatever its position; the command line then wins (a repeatable value given on the
 * command line replaces the file's). *operand gets the positional argument when the command
 * takes one (NULL otherwise). *text gets the configuration file's contents (the values point
 * into it: free it after opts). Returns false with err set.
 */
bool cli_parse(const cli_command *cmd, void *opts, int argc, char **argv, const char **operand,
               char **text, char *err, size_t errlen);

/* The command's help: synopsis, summary, every option with its help. */
void cli_command_help(const cli_command *cmd, FILE *out);

/* Frees the arrays of every CLI_LIST/CLI_SINKS value of opts. */
void cli_free_lists(const cli_command *cmd, void *opts);

/*
 * Strict unsigned decimal: digits only, no sign, no spaces, no suffix, at most max. Returns
 * false (err names flag and value) otherwise.
 */
bool cli_parse_uint(const char *flag, const char *s, uint64_t max, uint64_t *out, char *err,
                    size_t errlen);

/*
 * A time: unix milliseconds (digits only) or ISO-8601 UTC "2026-01-01", "2026-01-01T12:00",
 * "2026-01-01T12:00:00", optional ".mmm" and "Z". A count of digits that reads as a time
 * before 2010 in milliseconds but after 2010 in seconds is refused as seconds (a common slip:
 * 1767225600 is 1970 in ms). false with err naming flag and value otherwise.
 */
bool cli_parse_time(const char *flag, const char *s, int64_t *out, char *err, size_t errlen);
bool cli_parse_duration(const char *flag, const char *s, uint64_t *ms, char *err, size_t errlen);

/* ---- the commands ---- */

typedef enum cli_validate_mode {
    CLI_VALIDATE_DEFAULT = 0, /* not given: library default */
    CLI_VALIDATE_IF_REACHABLE = 1,
    CLI_VALIDATE_REQUIRED = 2,
    CLI_VALIDATE_OFF = 3,
} cli_validate_mode;

typedef struct cli_run_opts {
    bool help;
    cli_list symbols, intervals, sinks;
    const char *ws_url, *rest_url, *ca_file, *state_dir, *config, *shard;
    const char *http; /* --http ADDR:PORT, NULL: no HTTP server */
    bool testnet, all_updates, no_backfill, retry_start;
    int log_level; /* kf_log_level; KF_LOG_INFO unless given */
    int validate;  /* cli_validate_mode */
    bool has_streams_per_connection, has_connect_timeout_ms, has_ring_size, has_sink_queue;
    uint64_t streams_per_connection, connect_timeout_ms, ring_size, sink_queue;
    /* staying connected and complete (0: not given, the library's default) */
    uint64_t ping_interval_ms, liveness_timeout_ms;
    uint64_t reconnect_initial_ms, reconnect_max_ms;
    uint64_t max_connection_age_ms;
    uint64_t rest_weight_budget;
    bool has_backfill_from;
    int64_t backfill_from;
    uint64_t status_every_s; /* the periodic status line; 0: not given (60) */
    bool has_status_every_s;
    uint64_t symbols_refresh_ms; /* --symbols ALL re-read period; 0 off */
    bool has_symbols_refresh;
    uint64_t symbols_reserve; /* symbols that can be added while running */
    bool has_symbols_reserve;
} cli_run_opts;

typedef struct cli_backfill_opts {
    bool help;
    cli_list symbols, intervals, sinks;
    const char *rest_url, *ca_file, *state_dir, *config, *shard;
    bool testnet;
    int log_level;
    bool has_from, has_to;
    int64_t from, to;            /* unix ms */
    uint64_t rest_weight_budget; /* 0: not given */
} cli_backfill_opts;

typedef struct cli_decode_opts {
    bool help;
} cli_decode_opts;

extern const cli_command cli_cmd_run, cli_cmd_backfill, cli_cmd_decode;

#endif
