/*
 * klinefeed-bench-fanout: the gateway's WebSocket fan-out rate. Opens N clients (default 100) to
 * a running `klinefeed run --http` gateway, each subscribed to the given streams (all the
 * collected ones, for the figure) in combined (/market/stream?streams=) or raw
 * (/market/ws/<s1>/<s2>...) form, counts the frames they receive for S seconds (after a
 * warm-up) and prints the total messages/s, the bytes/s, the daemon's CPU (from /proc/PID/stat)
 * and the bench's own.
 *
 * One thread per --threads (default 1), each an epoll loop over its clients' non-blocking
 * sockets, reading 256 KiB at a time; frames are counted by walking their headers, never
 * parsing the JSON. One text frame in --check-every (default 10000) per client is checked: it
 * must decode as a kline with kf_kline_decode (the public header only).
 *
 * usage: klinefeed-bench-fanout --port P --streams a/b/c [--clients N] [--seconds S]
 *        [--warmup S] [--mode combined|raw] [--threads T] [--pid DAEMON_PID] [--sim-pid PID]
 *        [--host 127.0.0.1] [--check-every K]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "klinefeed.h"

#define BUF_BYTES (256u * 1024u)
#define MAX_PAYLOAD 4096

typedef struct client {
    int fd;
    bool open;
    /* the frame parser: header bytes gathered, then payload bytes left to skip */
    unsigned char hdr[14];
    size_t hlen;
    uint64_t left;
    bool text, sample;
    char payload[MAX_PAYLOAD];
    size_t plen;
    atomic_uint_fast64_t frames, bytes;
    uint64_t since_check;
} client;

static struct {
    const char *host, *streams, *mode;
    int port, nclients, seconds, warmup, nthreads, pid, sim_pid, check_every;
} opt = {"127.0.0.1", NULL, "combined", 0, 100, 10, 2, 1, 0, 0, 10000};

static client *clients;
static atomic_bool stop;
static atomic_uint_fast64_t checked, check_failed, closed_count;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of a process in seconds (/proc/PID/stat fields 14 and 15), -1 if unknown. */
static double proc_cpu_s(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long ut = 0, st = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
     * stime */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Connects and upgrades one client (blocking); the bytes after the 101's headers are frames. */
static bool ws_connect(client *c, unsigned char *buf, size_t *extra)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1) {
        fprintf(stderr, "bench-fanout: --host %s is not an IPv4 address\n", opt.host);
        return false;
    }
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        fprintf(stderr, "bench-fanout: connect %s:%d: %s\n", opt.host, opt.port, strerror(errno));
        return false;
    }
    bool combined = strcmp(opt.mode, "combined") == 0;
    size_t cap = strlen(opt.streams) + 512;
    char *req = malloc(cap);
    if (!req)
        return false;
    int n = snprintf(req, cap,
                     "GET %s%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     combined ? "/market/stream?streams=" : "/market/ws/", opt.streams, opt.host,
                     opt.port);
    bool ok = n > 0 && send(c->fd, req, (size_t)n, MSG_NOSIGNAL) == n;
    free(req);
    size_t got = 0;
    while (ok) {
        ssize_t r = recv(c->fd, buf + got, BUF_BYTES - got, 0);
        if (r <= 0) {
            ok = false;
            break;
        }
        got += (size_t)r;
        unsigned char *end = memmem(buf, got, "\r\n\r\n", 4);
        if (end) {
            if (got < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
                fprintf(stderr, "bench-fanout: no upgrade: %.*s\n", (int)(got < 200 ? got : 200),
                        buf);
                return false;
            }
            size_t h = (size_t)(end - buf) + 4;
            *extra = got - h;
            memmove(buf, buf + h, *extra);
            break;
        }
    }
    if (!ok) {
        fprintf(stderr, "bench-fanout: handshake failed\n");
        return false;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->open = true;
    return true;
}

static void check_sample(client *c)
{
    kf_kline k;
    atomic_fetch_add(&checked, 1);
    if (kf_kline_decode(c->payload, c->plen, &k) != KF_OK)
        atomic_fetch_add(&check_failed, 1);
}

/* Walks the frames in buf[0..n): counts text frames, copies the sampled ones to be checked. */
static void feed(client *c, const unsigned char *p, size_t n)
{
    uint64_t frames = 0;
    while (n) {
        if (c->left == 0 && c->hlen < 2) {
            c->hdr[c->hlen++] = *p++;
            n--;
            continue;
        }
        if (c->left == 0) {
            size_t need = 2;
            unsigned l7 = c->hdr[1] & 0x7f;
            if (l7 == 126)
                need = 4;
            else if (l7 == 127)
                need = 10;
            if (c->hdr[1] & 0x80)
                need += 4;
            if (c->hlen < need) {
                c->hdr[c->hlen++] = *p++;
                n--;
                if (c->hlen < need)
                    continue;
            }
            uint64_t len = l7;
            if (l7 == 126)
                len = ((uint64_t)c->hdr[2] << 8) | c->hdr[3];
            else if (l7 == 127)
                for (int i = 0; i < 8; i++)
                    len = (len << 8) | c->hdr[2 + i];
            c->text = (c->hdr[0] & 0x0f) == 1;
            c->hlen = 0;
            if (c->text) {
                frames++;
                c->sample = ++c->since_check >= (uint64_t)opt.check_every && len <= MAX_PAYLOAD;
                if (c->sample)
                    c->since_check = 0;
                c->plen = 0;
            }
            c->left = len;
            if (len == 0)
                continue;
        }
        size_t take = n < c->left ? n : (size_t)c->left;
        if (c->text && c->sample) {
            memcpy(c->payload + c->plen, p, take);
            c->plen += take;
        }
        p += take;
        n -= take;
        c->left -= take;
        if (c->left == 0 && c->text && c->sample)
            check_sample(c);
    }
    atomic_fetch_add_explicit(&c->frames, frames, memory_order_relaxed);
}

/* A thread reading its share of the clients: main adds each to its epoll once upgraded (the
 * first ones are read while the others connect: a client not read for long is dropped). */
typedef struct worker {
    int ep;
    pthread_t t;
} worker;

static void *worker_main(void *arg)
{
    worker *wk = arg;
    unsigned char *buf = malloc(BUF_BYTES);
    int ep = wk->ep;
    if (!buf)
        return NULL;
    struct epoll_event evs[256];
    while (!atomic_load(&stop)) {
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            client *c = evs[i].data.ptr;
            ssize_t r = recv(c->fd, buf, BUF_BYTES, MSG_DONTWAIT);
            if (r > 0) {
                atomic_fetch_add_explicit(&c->bytes, (uint64_t)r, memory_order_relaxed);
                feed(c, buf, (size_t)r);
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                c->open = false;
                atomic_fetch_add(&closed_count, 1);
            }
        }
    }
    free(buf);
    return NULL;
}

static void usage(void)
{
    fputs("usage: klinefeed-bench-fanout --port P --streams a/b/c [--clients N] [--seconds S]\n"
          "       [--warmup S] [--mode combined|raw] [--threads T] [--pid DAEMON_PID]\n"
          "       [--sim-pid PID] [--host 127.0.0.1] [--check-every K]\n",
          stderr);
    exit(2);
}

static void totals(uint64_t *frames, uint64_t *bytes)
{
    *frames = *bytes = 0;
    for (int i = 0; i < opt.nclients; i++) {
        *frames += atomic_load(&clients[i].frames);
        *bytes += atomic_load(&clients[i].bytes);
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--port") == 0)
            opt.port = atoi(v);
        else if (strcmp(a, "--streams") == 0)
            opt.streams = v;
        else if (strcmp(a, "--clients") == 0)
            opt.nclients = atoi(v);
        else if (strcmp(a, "--seconds") == 0)
            opt.seconds = atoi(v);
        else if (strcmp(a, "--warmup") == 0)
            opt.warmup = atoi(v);
        else if (strcmp(a, "--mode") == 0)
            opt.mode = v;
        else if (strcmp(a, "--threads") == 0)
            opt.nthreads = atoi(v);
        else if (strcmp(a, "--pid") == 0)
            opt.pid = atoi(v);
        else if (strcmp(a, "--sim-pid") == 0)
            opt.sim_pid = atoi(v);
        else if (strcmp(a, "--host") == 0)
            opt.host = v;
        else if (strcmp(a, "--check-every") == 0)
            opt.check_every = atoi(v);
        else
            usage();
    }
    if (opt.port <= 0 || !opt.streams || opt.nclients <= 0 || opt.seconds <= 0 ||
        opt.nthreads <= 0 || opt.check_every <= 0 ||
        (strcmp(opt.mode, "combined") != 0 && strcmp(opt.mode, "raw") != 0))
        usage();
    if (opt.nthreads > opt.nclients)
        opt.nthreads = opt.nclients;
    clients = calloc((size_t)opt.nclients, sizeof *clients);
    unsigned char *buf = malloc(BUF_BYTES);
    if (!clients || !buf)
        return 1;
    worker *wk = calloc((size_t)opt.nthreads, sizeof *wk);
    if (!wk)
        return 1;
    for (int t = 0; t < opt.nthreads; t++) {
        wk[t].ep = epoll_create1(EPOLL_CLOEXEC);
        if (wk[t].ep < 0 || pthread_create(&wk[t].t, NULL, worker_main, &wk[t]) != 0)
            return 1;
    }
    int nopen = 0;
    double c0 = now_s();
    for (int i = 0; i < opt.nclients; i++) {
        size_t extra = 0;
        if (!ws_connect(&clients[i], buf, &extra))
            break;
        feed(&clients[i], buf, extra);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &clients[i]};
        epoll_ctl(wk[i % opt.nthreads].ep, EPOLL_CTL_ADD, clients[i].fd, &ev);
        nopen++;
    }
    free(buf);
    if (nopen < opt.nclients) {
        fprintf(stderr, "bench-fanout: %d of %d clients connected\n", nopen, opt.nclients);
        return 1;
    }
    double connect_s = now_s() - c0;
    struct timespec ws = {.tv_sec = opt.warmup};
    nanosleep(&ws, NULL);
    uint64_t f0, b0, f1, b1;
    totals(&f0, &b0);
    double t0 = now_s(), d0 = opt.pid ? proc_cpu_s(opt.pid) : -1,
           s0 = opt.sim_pid ? proc_cpu_s(opt.sim_pid) : -1, me0 = self_cpu_s();
    uint64_t *per0 = calloc((size_t)opt.nclients, sizeof *per0);
    for (int i = 0; per0 && i < opt.nclients; i++)
        per0[i] = atomic_load(&clients[i].frames);
    struct timespec ms = {.tv_sec = opt.seconds};
    nanosleep(&ms, NULL);
    totals(&f1, &b1);
    double dt = now_s() - t0, d1 = opt.pid ? proc_cpu_s(opt.pid) : -1,
           s1 = opt.sim_pid ? proc_cpu_s(opt.sim_pid) : -1, me1 = self_cpu_s();
    uint64_t pmin = UINT64_MAX, pmax = 0;
    for (int i = 0; per0 && i < opt.nclients; i++) {
        uint64_t d = atomic_load(&clients[i].frames) - per0[i];
        pmin = d < pmin ? d : pmin;
        pmax = d > pmax ? d : pmax;
    }
    atomic_store(&stop, true);
    for (int t = 0; t < opt.nthreads; t++) {
        pthread_join(wk[t].t, NULL);
        close(wk[t].ep);
    }
    double rate = (double)(f1 - f0) / dt;
    printf("mode=%s clients=%d closed=%" PRIu64 " seconds=%.1f msgs/s=%.0f MB/s=%.1f "
           "per_client_msgs/s=%.0f..%.0f",
           opt.mode, opt.nclients, (uint64_t)atomic_load(&closed_count), dt, rate,
           (double)(b1 - b0) / dt / 1e6, (double)pmin / dt, (double)pmax / dt);
    if (d0 >= 0 && d1 >= 0)
        printf(" daemon_cpu=%.0f%% daemon_cpu_s_per_M_msgs=%.2f", (d1 - d0) / dt * 100,
               f1 > f0 ? (d1 - d0) / ((double)(f1 - f0) / 1e6) : 0.0);
    if (s0 >= 0 && s1 >= 0)
        printf(" sim_cpu=%.0f%%", (s1 - s0) / dt * 100);
    printf(" bench_cpu=%.0f%% connect_s=%.2f checked=%" PRIu64 " check_failed=%" PRIu64 "\n",
           (me1 - me0) / dt * 100, connect_s, (uint64_t)atomic_load(&checked),
           (uint64_t)atomic_load(&check_failed));
    free(per0);
    free(wk);
    for (int i = 0; i < opt.nclients; i++)
        close(clients[i].fd);
    free(clients);
    return atomic_load(&check_failed) || atomic_load(&closed_count) ? 3 : 0;
}
