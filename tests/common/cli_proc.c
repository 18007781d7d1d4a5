/* cli_proc.c - the CLI as a child process for the integration tests. */
#include "cli_proc.h"

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#ifndef KF_CLI_PATH
#define KF_CLI_PATH "klinefeed"
#endif

/* argv[0] = argv0, then args (at most 62), NULL-terminated. */
static void make_argv(char *argv[64], const char *argv0, const char *const *args)
{
    size_t argc = 0;
    argv[argc++] = (char *)argv0;
    for (; args[argc - 1] && argc < 63; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
}

pid_t kft_cli_spawn(const char *const *args, const char *stdin_path, const char *out_path,
                    const char *err_path, const char *const *unset, const char *const *env)
{
    char *argv[64];
    make_argv(argv, KF_CLI_PATH, args);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int in = open(stdin_path ? stdin_path : "/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0)
            _exit(120);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        for (size_t i = 0; unset && unset[i]; i++)
            unsetenv(unset[i]);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], argv);
        _exit(121);
    }
    return pid;
}

int kft_cli_wait(pid_t pid, int timeout_ms)
{
    int status = 0;
    for (int waited = 0;; waited += 10) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            break;
        assert_true(r == 0);
        if (waited >= timeout_ms) {
            if (timeout_ms == 0)
                return -1;
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fail_msg("klinefeed did not exit within %d ms", timeout_ms);
        }
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

pid_t kft_spawn_daemon(const char *const *args, const char *log)
{
    char *argv[64];
    make_argv(argv, "klinefeed", args);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        execv(KF_CLI_PATH, argv);
        _exit(127);
    }
    return pid;
}
