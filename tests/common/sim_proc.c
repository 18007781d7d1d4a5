/* sim_proc.c - starts/stops klinefeed-sim for integration tests and fetches URLs from it over
 * plain loopback sockets. */
#include "sim_proc.h"

#include "compare.h"
#include "raw_ws.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef KF_SIM_PATH
#define KF_SIM_PATH "klinefeed-sim"
#endif

struct kft_sim {
    pid_t pid;
    int port;
};

int kft_tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

kft_sim *kft_sim_start(const char *const *args)
{
    int n = 0;
    while (args && args[n])
        n++;
    char **argv = calloc((size_t)n + 2, sizeof(char *));
    if (!argv)
        return NULL;
    argv[0] = (char *)KF_SIM_PATH;
    for (int i = 0; i < n; i++)
        argv[i + 1] = (char *)args[i];
    int pfd[2];
    if (pipe(pfd) != 0) {
        fprintf(stderr, "kft_sim_start: pipe: %s\n", strerror(errno));
        free(argv);
        return NULL;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "kft_sim_start: fork: %s\n", strerror(errno));
        close(pfd[0]);
        close(pfd[1]);
        free(argv);
        return NULL;
    }
    if (pid == 0) {
        /* A test that fails (cmocka longjmps out) must not leave its simulator behind: an
         * orphan would keep ctest's output pipe open. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(KF_SIM_PATH, argv);
        fprintf(stderr, "kft_sim_start: exec %s: %s\n", KF_SIM_PATH, strerror(errno));
        _exit(127);
    }
    free(argv);
    close(pfd[1]);
    char line[64];
    size_t len = 0;
    long long deadline = mono_ms() + 10000;
    int port = -1;
    while (port < 0) {
        long long left = deadline - mono_ms();
        if (left <= 0) {
            fprintf(stderr, "kft_sim_start: no port line within 10 s\n");
            break;
        }
        struct pollfd pf = {pfd[0], POLLIN, 0};
        int rc = poll(&pf, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            continue;
        ssize_t r = read(pfd[0], line + len, sizeof line - 1 - len);
        if (r <= 0) {
            fprintf(stderr, "kft_sim_start: simulator exited before printing its port\n");
            break;
        }
        len += (size_t)r;
        line[len] = 0;
        char *nl = strchr(line, '\n');
        if (nl) {
            if (sscanf(line, "port=%d", &port) != 1 || port <= 0) {
                fprintf(stderr, "kft_sim_start: unexpected first line: %s\n", line);
                break;
            }
        } else if (len == sizeof line - 1) {
            fprintf(stderr, "kft_sim_start: first line too long\n");
            break;
        }
    }
    close(pfd[0]);
    kft_sim *s = calloc(1, sizeof *s);
    if (port < 0 || !s) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        free(s);
        return NULL;
    }
    s->pid = pid;
    s->port = port;
    return s;
}

int kft_sim_port(const kft_sim *s)
{
    return s ? s->port : -1;
}

int kft_sim_pid(const kft_sim *s)
{
    return s ? (int)s->pid : -1;
}

int kft_http_get(int port, const char *path, char *buf, size_t cap)
{
    if (cap)
        buf[0] = 0;
    if (kft_http_tls_ca(port)) { /* a simulator that speaks TLS: compare.c's client */
        char *body = NULL, err[256];
        size_t len = 0;
        int status = kft_http_get_all(port, path, &body, &len, err, sizeof err);
        if (status < 0)
            fprintf(stderr, "kft_http_get: %s\n", err);
        if (body && cap) {
            len = len < cap - 1 ? len : cap - 1;
            memcpy(buf, body, len);
            buf[len] = 0;
        }
        free(body);
        return status;
    }
    int fd = kft_tcp_connect(port);
    if (fd < 0)
        return -1;
    char req[4096];
    int rl =
        snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path, port);
    if (rl < 0 || (size_t)rl >= sizeof req || send(fd, req, (size_t)rl, MSG_NOSIGNAL) != rl) {
        close(fd);
        return -1;
    }
    size_t rcap = 1 << 16, rlen = 0;
    char *resp = malloc(rcap);
    long long deadline = mono_ms() + 30000;
    while (resp) {
        long long left = deadline - mono_ms();
        struct pollfd pf = {fd, POLLIN, 0};
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        if (rlen + 4096 > rcap) {
            char *nr = realloc(resp, rcap * 2);
            if (!nr)
                break;
            resp = nr;
            rcap *= 2;
        }
        ssize_t r = recv(fd, resp + rlen, rcap - rlen - 1, 0);
        if (r <= 0)
            break;
        rlen += (size_t)r;
    }
    close(fd);
    if (!resp)
        return -1;
    resp[rlen] = 0;
    int status = -1;
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    char *body = strstr(resp, "\r\n\r\n");
    if (body && cap) {
        body += 4;
        size_t bl = strlen(body);
        if (bl > cap - 1)
            bl = cap - 1;
        memcpy(buf, body, bl);
        buf[bl] = 0;
    }
    free(resp);
    return status;
}

void kft_sim_stop(kft_sim *s)
{
    if (!s)
        return;
    kill(s->pid, SIGTERM);
    long long deadline = mono_ms() + 5000;
    for (;;) {
        pid_t r = waitpid(s->pid, NULL, WNOHANG);
        if (r == s->pid || (r < 0 && errno != EINTR))
            break;
        if (mono_ms() > deadline) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            break;
        }
        usleep(10000);
    }
    free(s);
}

/* ---- one simulator at a time, for cmocka tests */

static kft_sim *g_current; /* stopped by kft_sim_teardown even when an assertion fails */

kft_sim *kft_sim_run(const char *a0, ...)
{
    const char *args[32];
    int n = 0;
    va_list ap;
    va_start(ap, a0);
    for (const char *a = a0; a && n < 31; a = va_arg(ap, const char *))
        args[n++] = a;
    va_end(ap);
    args[n] = NULL;
    kft_sim_stop(g_current);
    g_current = kft_sim_start(args);
    assert_non_null(g_current);
    return g_current;
}

int kft_sim_teardown(void **state)
{
    (void)state;
    kft_sim_stop(g_current);
    g_current = NULL;
    return 0;
}
