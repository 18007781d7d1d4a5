/* flood.c - flood mode of klinefeed-sim: once a connection has a valid stream, a dedicated
 * thread writes --flood N prebuilt kline frames (deterministic bytes, connection form raw or
 * combined) in large writes, through TLS when the port speaks it, while the poll loop leaves
 * that connection (and its TLS session) alone. */
#include "sim.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define FLOOD_FRAMES 4096
#define FLOOD_BASE_MS 1767225600000LL

struct sim_flood {
    pthread_t th;
    atomic_bool done;
    int fd;
    struct ssl_st *ssl; /* the connection's TLS session, NULL for plain TCP */
    int wake_fd;
    char *buf;
    char *pre; /* bytes already queued on the connection (101, acks), written first */
    size_t npre;
    size_t *offs; /* offs[i] = start of frame i, offs[nframes] = end */
    int nframes;
    int64_t total;
    bool error;
};

static atomic_bool flood_abort;

static uint64_t fmix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static void build(sim_flood *f, const sim_conn *c)
{
    int ns = 0;
    const sim_sub **subs = sim_xmalloc(sizeof(sim_sub *) * (size_t)c->nsubs);
    for (int i = 0; i < c->nsubs; i++)
        if (c->subs[i].valid)
            subs[ns++] = &c->subs[i];
    int64_t *open = sim_xmalloc(sizeof(int64_t) * (size_t)ns);
    for (int i = 0; i < ns; i++)
        open[i] = interval_open(subs[i]->iv, FLOOD_BASE_MS);
    sbuf out = {0}, ev = {0};
    f->nframes = FLOOD_FRAMES;
    f->offs = sim_xmalloc(sizeof(size_t) * (FLOOD_FRAMES + 1));
    for (int k = 0; k < FLOOD_FRAMES; k++) {
        const sim_sub *s = subs[k % ns];
        const sim_symbol *sy = &g_syms[s->sym];
        int u = k / ns; /* update number on this stream */
        int64_t cand = u / 4;
        uint64_t r = fmix((uint64_t)k * 0x9E3779B97F4A7C15ULL + 12345);
        sim_agg a;
        memset(&a, 0, sizeof a);
        int64_t p = sy->base_ticks;
        a.o = p + (int64_t)(fmix((uint64_t)cand) % (uint64_t)sy->spread);
        a.h = a.o + sy->spread;
        a.l = a.o - sy->spread;
        a.c = a.l + (int64_t)(r % (uint64_t)(2 * sy->spread + 1));
        a.n = 5 + (u % 4) * 7;
        a.f = (FLOOD_BASE_MS / 250 + cand * 240) * 32;
        a.L = a.f + a.n - 1;
        a.v = (int64_t)(r >> 40) % 1000 + a.n;
        a.V = a.v / 2;
        a.q = (__int128)a.v * a.c;
        a.Q = (__int128)a.V * a.c;
        ev.len = 0;
        market_fmt_event(&ev, s->sym, s->iv, open[k % ns], &a, FLOOD_BASE_MS + k, u % 4 == 3,
                         c->combined ? s->name : NULL);
        f->offs[k] = out.len;
        unsigned char h[4] = {0x81, 126, (unsigned char)(ev.len >> 8), (unsigned char)ev.len};
        if (ev.len < 126)
            h[1] = (unsigned char)ev.len;
        sb_put(&out, h, ev.len < 126 ? 2 : 4);
        sb_put(&out, ev.p, ev.len);
        if (u % 4 == 3)
            open[k % ns] = interval_next(s->iv, open[k % ns]);
    }
    f->offs[FLOOD_FRAMES] = out.len;
    f->buf = out.p;
    sb_free(&ev);
    free(open);
    free(subs);
}

static bool write_all(sim_flood *f, const char *p, size_t n)
{
    while (n > 0) {
        short want;
        long w = sim_io_write(f->ssl, f->fd, p, n, &want);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w == SIM_IO_AGAIN) { /* the same bytes again once the socket allows */
            struct pollfd pf = {f->fd, want, 0};
            if (atomic_load(&flood_abort))
                return false;
            poll(&pf, 1, 200);
            continue;
        }
        return false;
    }
    return true;
}

static void *flood_main(void *arg)
{
    sim_flood *f = arg;
    int64_t left = f->total;
    size_t whole = f->offs[f->nframes];
    if (f->npre)
        f->error = !write_all(f, f->pre, f->npre);
    while (left > 0 && !f->error) {
        if (atomic_load(&flood_abort)) {
            f->error = true;
            break;
        }
        if (left >= f->nframes) {
            f->error = !write_all(f, f->buf, whole);
            left -= f->nframes;
        } else {
            f->error = !write_all(f, f->buf, f->offs[left]);
            left = 0;
        }
    }
    atomic_store(&f->done, true);
    char one = 1;
    if (write(f->wake_fd, &one, 1) < 0) {
        /* the loop also wakes on its own timer */
    }
    return NULL;
}

bool flood_maybe_start(sim_conn *c, int wake_fd)
{
    if (g_opt.flood <= 0 || c->flood_done || c->flood || !c->routed || c->nvalid <= 0 ||
        c->closing || c->dead)
        return false;
    c->flood_done = true;
    sim_flood *f = sim_xmalloc(sizeof *f);
    memset(f, 0, sizeof *f);
    atomic_init(&f->done, false);
    f->fd = c->fd;
    f->ssl = c->ssl;
    f->wake_fd = wake_fd;
    f->total = g_opt.flood;
    build(f, c);
    if (c->wb.len) {
        f->pre = sim_xmalloc(c->wb.len);
        memcpy(f->pre, c->wb.p, c->wb.len);
        f->npre = c->wb.len;
        c->wb.len = 0;
    }
    int sz = 4 << 20;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    fprintf(stderr, "klinefeed-sim: ws connection %llu: flooding %lld frames (%zu bytes/%d)\n",
            (unsigned long long)c->id, (long long)f->total, f->offs[f->nframes], f->nframes);
    /* signals belong to the poll loop: block them in the flood thread */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = pthread_create(&f->th, NULL, flood_main, f);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        fprintf(stderr, "klinefeed-sim: pthread_create failed\n");
        sb_put(&c->wb, f->pre, f->npre);
        free(f->pre);
        free(f->buf);
        free(f->offs);
        free(f);
        return false;
    }
    c->flood = f;
    return true;
}

bool flood_running(const sim_conn *c)
{
    return c->flood && !atomic_load(&c->flood->done);
}

bool flood_reap(sim_conn *c)
{
    sim_flood *f = c->flood;
    if (!f || !atomic_load(&f->done))
        return false;
    pthread_join(f->th, NULL);
    if (f->error)
        c->dead = true;
    else
        g_stats.frames_sent += (uint64_t)f->total;
    fprintf(stderr, "klinefeed-sim: ws connection %llu: flood %s\n", (unsigned long long)c->id,
            f->error ? "aborted" : "done");
    free(f->pre);
    free(f->buf);
    free(f->offs);
    free(f);
    c->flood = NULL;
    return true;
}

void flood_abort_all(void)
{
    atomic_store(&flood_abort, true);
}
