/* nats_proc.c - a nats-server with JetStream for a test (nats_proc.h). */
#include "nats_proc.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "kftest.h"

static char server_bin[512];

bool kft_nats_find(void)
{
    const char *env = getenv("PATH");
    char path[4096];
    snprintf(path, sizeof path, "%s:/usr/sbin:/usr/local/sbin:/usr/bin", env ? env : "");
    char *save = NULL;
    for (char *d = strtok_r(path, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(server_bin, sizeof server_bin, "%s/nats-server", d);
        if (access(server_bin, X_OK) == 0)
            return true;
    }
    return false;
}

int kft_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

pid_t kft_nats_start(int port, const char *dir)
{
    char p[16], sd[512], log[512];
    snprintf(p, sizeof p, "%d", port);
    snprintf(sd, sizeof sd, "%s/js", dir);
    snprintf(log, sizeof log, "%s/nats-server.log", dir);
    if (!server_bin[0])
        assert_true(kft_nats_find());
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test killed (ctest's timeout) takes it along */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(server_bin, server_bin, "-js", "-sd", sd, "-a", "127.0.0.1", "-p", p, (char *)NULL);
        _exit(127);
    }
    int64_t end = kft_now_ms() + 15000;
    while (!port_open(port) && kft_now_ms() < end)
        usleep(50000);
    if (!port_open(port)) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("nats-server did not listen on port %d within 15 s (see %s)", port, log);
    }
    return pid;
}

void kft_nats_kill(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGKILL);
        waitpid(*pid, NULL, 0);
        *pid = -1;
    }
}
