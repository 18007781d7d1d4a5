/* cli_proc.h - test helpers: run the klinefeed CLI (KF_CLI_PATH) as a child process with its
 * output captured in files, and wait for it with a deadline. */
#ifndef KF_TEST_CLI_PROC_H
#define KF_TEST_CLI_PROC_H

#include <sys/types.h>

/* Forks and execs KF_CLI_PATH with args (NULL-terminated), stdin from stdin_path (NULL:
 * /dev/null), stdout into out_path and stderr into err_path (created, truncated). In the child,
 * the variables named in unset (NULL-terminated, may be NULL) are removed from the environment
 * and then the "NAME=value" entries of env (NULL-terminated, may be NULL) added. Fails the test
 * (cmocka) when fork fails. */
pid_t kft_cli_spawn(const char *const *args, const char *stdin_path, const char *out_path,
                    const char *err_path, const char *const *unset, const char *const *env);

/* Waits for pid at most timeout_ms and returns its exit code (128 + signal when killed by one).
 * With timeout_ms 0 it does not wait: -1 while the child still runs. Otherwise, past the deadline
 * it kills the child and fails the test. */
int kft_cli_wait(pid_t pid, int timeout_ms);

/* Forks and execs KF_CLI_PATH as "klinefeed" with args (NULL-terminated, e.g. {"run", ...}),
 * stdout and stderr appended to log. Returns the child's pid (-1 when fork fails). */
pid_t kft_spawn_daemon(const char *const *args, const char *log);

#endif
