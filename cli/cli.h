/* Shared pieces of the klinefeed CLI: commands, usage, error lines, logging. */
#ifndef KF_CLI_CLI_H
#define KF_CLI_CLI_H
#include <stdio.h>

#include "klinefeed.h"

/* Commands: argv[0] is the first argument after the command name. Return the exit code. */
int cli_run(int argc, char **argv);
int cli_decode(int argc, char **argv);
int cli_backfill(int argc, char **argv);

/* Full usage text (commands, flags, exit codes). */
void cli_usage(FILE *out);

/*
 * Registers strings that must never be printed (the API key and secret):
 * every error line and log line written through the functions below has each
 * occurrence replaced by "[redacted]". The strings are not copied.
 */
void cli_secrets_set(const char *key, const char *secret);

/*
 * Prints "klinefeed: <message>\n" to stderr as one line: control bytes are
 * escaped as \xNN (so a value cannot break the line) and secrets redacted.
 */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reports a kf_config setter's rejection as one usage line naming the flag and the value
 * (returns CLI_EXIT_USAGE); running out of memory is a runtime failure (CLI_EXIT_RUNTIME). */
int cli_setter_failed(const kf_config *cfg, const char *flag, const char *value, kf_err e);
/* --ca-file: the file must be readable, then kf_config_set_ca_file. A CLI_EXIT_* code. */
int cli_set_ca_file(kf_config *cfg, const char *path);
/* --shard K/N: parsed and given to kf_config_set_shard; CLI_EXIT_USAGE naming the value. */
int cli_set_shard(kf_config *cfg, const char *spec);
/* --state-dir: where REST pauses are kept across processes. flag_value NULL: the default,
 * $STATE_DIRECTORY (systemd), else $XDG_STATE_HOME/klinefeed, else ~/.local/state/klinefeed
 * (created; when it cannot be, a warning and none); "none": none. A given directory is created
 * if missing and must be writable (else a usage error naming it). dir gets the directory, ""
 * for none. A CLI_EXIT_* code. */
int cli_state_dir(const char *flag_value, char *dir, size_t cap);

/* Applies one kf_config setter inside a function that returns a CLI_EXIT_* code and has
 * `cfg` in scope: on failure, reports it naming the flag and the value, and returns. */
#define CLI_SET(call, flag, value)                                                                 \
    do {                                                                                           \
        kf_err e_ = (call);                                                                        \
        if (e_ != KF_OK)                                                                           \
            return cli_setter_failed(cfg, flag, value, e_);                                        \
    } while (0)

/* kf_log_fn writing the line (secrets redacted) plus "\n" to stderr in one write. */
void cli_log_line(void *userdata, kf_log_level level, const char *line);

/* The CLI's own structured log lines, in the library's format (kf_log), at --log-level. */
extern kf_log_level cli_log_level;
void cli_logger_setup(kf_log_level level);
#define cli_log(level, ...) kf_log(cli_log_line, NULL, cli_log_level, (level), __VA_ARGS__)

#endif
