/* Shared pieces of the klinefeed CLI: commands, usage, error lines, logging. */
#ifndef KF_CLI_CLI_H
#define KF_CLI_CLI_H
#include <stdio.h>

#include "core/log.h"
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

/* kf_log_fn writing the line (secrets redacted) plus "\n" to stderr in one write. */
void cli_log_line(void *userdata, kf_log_level level, const char *line);

/* The CLI's own structured log lines, same format as the library's; level set by --log-level. */
extern kf__logger cli_logger;
void cli_logger_setup(kf_log_level level);

#endif
