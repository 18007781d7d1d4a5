/*
 * The gateway's WebSocket side: /market/ws, /market/ws/<stream>/<stream>... (raw events) and
 * /market/stream?streams=a/b (combined {"stream":...,"data":...}), the live kline events of the
 * collected streams in Binance's wire format, fanned out from the library's on_kline callback,
 * with live SUBSCRIBE, UNSUBSCRIBE and LIST_SUBSCRIPTIONS and Binance's replies, pings and
 * limits.
 *
 * The fan-out is one shared log and a few writer threads:
 *
 * - The callback (the collector's I/O thread) formats each event once per format, the raw
 *   frame and the combined frame, both framed (RFC 6455 header included), and appends them to
 *   the log: a preallocated byte ring (WS_LOG_BYTES) indexed by a ring of slots (WS_LOG_SLOTS:
 *   position, stream, lengths), sequence numbers growing forever. It never allocates, never
 *   takes a lock, never waits: it overwrites the oldest events; at most one system call (an
 *   eventfd write) when a writer thread sleeps.
 * - WS_WRITERS writer threads, each an epoll loop over the non-blocking sockets of its clients.
 *   A client is a cursor into the log (the next event's sequence number and the bytes of its
 *   frame already sent), its subscriptions (a bitmap) and a small buffer of control frames
 *   (replies, pongs, pings, close). On each wake-up a writer sends each client every pending
 *   frame of its streams with one writev pointing into the log (up to WS_IOV frames), so one
 *   system call carries many events. The writer also reads the clients' requests.
 * - A client whose cursor falls more than WS_LAG_BYTES (or WS_LAG_SLOTS events) of the log
 *   behind is dropped (closed, logged `msg="gateway client dropped"`): never the collector,
 *   never the other clients.
 *
 * What a writer reads the callback may later overwrite: a writer publishes the oldest sequence
 * it reads (its pin) before reading the log's tail; the callback publishes the tail it is about
 * to make before reading the pins. Either the callback sees the pin (and then leaves the log as
 * it is: the event is not logged, counted in hub.skipped; a writer would have to stall for more
 * than half the log inside one writev) or the writer sees the new tail (and drops the client).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <microhttpd.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"

/* The shared log of formatted frames: bytes and events (powers of two). */
#define WS_LOG_BYTES (32u << 20)
#define WS_LOG_SLOTS (1u << 16)
/* A client further behind than this in the log is dropped. */
#define WS_LAG_BYTES (8u << 20)
#define WS_LAG_SLOTS (WS_LOG_SLOTS / 4)
#define WS_WRITERS 2
#define WS_MAX_CLIENTS 1024
/* Frames (iovecs) and bytes one writev carries at most. */
#define WS_IOV 512
#define WS_WRITEV_BYTES (512u << 10)
/* A client's request frames: 8 KiB each at most; its pending control frames: 256 KiB. */
#define WS_MAX_IN 8192
#define WS_MAX_CTL (256u << 10)
/* Binance's limits (PROTOCOL.md); the times and the stream count can be lowered for tests by
 * environment variables (ws_hub_set_collector, docs/cli.md). */
#define WS_MAX_SUBS 1024
#define WS_MSG_RATE 10 /* incoming messages per second; over it: close 1008 */
#define WS_PING_MS (180 * 1000)
#define WS_PONG_TIMEOUT_MS (600 * 1000)
#define WS_MAX_AGE_MS (24 * 3600 * 1000LL)

typedef struct ws_slot {
    uint64_t pos;    /* log position of the raw frame; the combined frame follows it */
    uint32_t stream; /* kf_stream_name index */
    uint16_t rlen, clen;
} ws_slot;

struct ws_writer;

typedef struct ws_client {
    struct ws_client *prev, *next;
    struct ws_writer *wr;
    int fd;
    struct MHD_UpgradeResponseHandle *urh;
    bool combined;
    /* the log: next event, bytes of its frame sent already */
    uint64_t cursor;
    uint32_t off;
    bool blocked;        /* the socket was full: EPOLLOUT armed */
    bool closing;        /* a close frame is queued: closed once the control frames are out */
    int64_t drain_until; /* the close frame is out: the client's bytes are read until it closes
                          * (closing with unread bytes would reset the connection) or then */
    /* control frames to send before the next event frame */
    unsigned char *ctl;
    size_t ctl_len, ctl_sent, ctl_cap;
    /* subscriptions: a bitmap over the streams and the list in subscription order */
    uint64_t *bits;
    uint32_t *subs;
    size_t nsubs;
    /* requests */
    unsigned char in[WS_MAX_IN];
    size_t inlen;
    int64_t msg_times[WS_MSG_RATE + 1];
    uint64_t msg_count;
    /* liveness (ms, CLOCK_MONOTONIC) */
    int64_t born, next_ping, ping_sent; /* ping_sent: 0 when no ping awaits its pong */
} ws_client;

typedef struct ws_writer {
    pthread_t t;
    bool running;
    int ep, wake;
    atomic_uint_fast64_t pin; /* oldest log sequence being read, UINT64_MAX when none */
    atomic_int sleeping;      /* in (or about to enter) epoll_wait */
    atomic_size_t nclients;
    int64_t next_timer;  /* the writer's own: its clients' next ping or deadline */
    ws_client *incoming; /* handed over by on_upgrade, under hub.mu */
    ws_client *list;     /* the writer's own */
} ws_writer;

/* A client's request between the 101 answer and libmicrohttpd's upgrade callback (which is not
 * called when the client goes away in between: the hub frees what is left at the stop). */
typedef struct ws_req {
    struct ws_req *prev, *next;
    bool combined;
    size_t n;
    uint32_t subs[WS_MAX_SUBS];
} ws_req;

static struct {
    pthread_mutex_t mu; /* pending, the writers' incoming lists, n, stopping */
    ws_req *pending;
    kf_collector *c;
    bool stopping;
    size_t n;
    atomic_size_t live; /* clients, read without the lock by the callback's fast exit */
    atomic_uint_fast64_t dropped;
    /* limits (Binance's, or the test's) */
    int64_t ping_ms, pong_timeout_ms, max_age_ms;
    size_t max_subs;
    /* stream names -> index: open addressing, index + 1 (0: empty) */
    size_t nstreams;
    uint32_t *names;
    size_t names_mask;
    /* the log */
    unsigned char *log;
    ws_slot *slots;
    uint64_t wpos, wseq, wtail;    /* the callback's own: next position, next sequence, tail */
    atomic_uint_fast64_t head;     /* sequences < head are published */
    atomic_uint_fast64_t head_pos; /* the log position after them */
    atomic_uint_fast64_t tail;     /* sequences < tail may be overwritten */
    atomic_uint_fast64_t skipped;  /* events not logged: a writer held their space */
    ws_writer w[WS_WRITERS];
    int nwriters;
} hub = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t name_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* The index of a stream name ("btcusdt@kline_1m", as Binance, lower case) or -1. */
static int stream_index(const char *name, size_t len)
{
    if (!hub.names)
        return -1;
    for (size_t i = name_hash(name, len) & hub.names_mask;; i = (i + 1) & hub.names_mask) {
        uint32_t v = hub.names[i];
        if (!v)
            return -1;
        const char *s = kf_stream_name(hub.c, v - 1);
        if (s && strlen(s) == len && memcmp(s, name, len) == 0)
            return (int)(v - 1);
    }
}

static int64_t env_ms(const char *name, int64_t dflt)
{
    const char *v = getenv(name);
    char *end;
    long long x = v ? strtoll(v, &end, 10) : 0;
    return v && *v && !*end && x > 0 ? (int64_t)x : dflt;
}

static void *writer_main(void *arg);

void ws_hub_set_collector(kf_collector *c)
{
    pthread_mutex_lock(&hub.mu);
    hub.c = c;
    /* for tests only (docs/cli.md): shorter times, fewer streams per connection */
    hub.ping_ms = env_ms("KLINEFEED_GW_PING_MS", WS_PING_MS);
    hub.pong_timeout_ms = env_ms("KLINEFEED_GW_PONG_TIMEOUT_MS", WS_PONG_TIMEOUT_MS);
    hub.max_age_ms = env_ms("KLINEFEED_GW_MAX_AGE_MS", WS_MAX_AGE_MS);
    hub.max_subs = (size_t)env_ms("KLINEFEED_GW_MAX_STREAMS", WS_MAX_SUBS);
    if (hub.max_subs > WS_MAX_SUBS)
        hub.max_subs = WS_MAX_SUBS;
    if (!hub.log) {
        hub.nstreams = kf_stream_count(c);
        size_t cap = 16;
        while (cap < 2 * hub.nstreams)
            cap *= 2;
        hub.names = calloc(cap, sizeof *hub.names);
        hub.names_mask = cap - 1;
        for (size_t i = 0; hub.names && i < hub.nstreams; i++) {
            const char *s = kf_stream_name(c, i);
            size_t k = name_hash(s, strlen(s)) & hub.names_mask;
            while (hub.names[k])
                k = (k + 1) & hub.names_mask;
            hub.names[k] = (uint32_t)i + 1;
        }
        /* the log's pages are touched only as events are logged (when clients are connected) */
        hub.log = malloc(WS_LOG_BYTES);
        hub.slots = malloc(WS_LOG_SLOTS * sizeof *hub.slots);
        if (!hub.names || !hub.log || !hub.slots) {
            free(hub.names);
            free(hub.log);
            free(hub.slots);
            hub.names = NULL;
            hub.log = NULL;
            hub.slots = NULL;
        }
    }
    for (int i = 0; hub.log && hub.nwriters < WS_WRITERS && i < WS_WRITERS; i++) {
        ws_writer *w = &hub.w[hub.nwriters];
        atomic_init(&w->pin, UINT64_MAX);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (w->ep < 0 || w->wake < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake, &ev) != 0 ||
            pthread_create(&w->t, NULL, writer_main, w) != 0) {
            if (w->ep >= 0)
                close(w->ep);
            if (w->wake >= 0)
                close(w->wake);
            break;
        }
        w->running = true;
        hub.nwriters++;
    }
    pthread_mutex_unlock(&hub.mu);
}

/* ---- the callback: the collector's I/O thread ---- */

static size_t frame_header(unsigned char *h, size_t n)
{
    h[0] = 0x81; /* FIN, text */
    if (n < 126) {
        h[1] = (unsigned char)n;
        return 2;
    }
    h[1] = 126; /* an event is < 64 KiB */
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    return 4;
}

static void wake_writer(ws_writer *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->wake, &one, sizeof one);
    (void)r;
}

/* Wakes one sleeping writer with clients (it wakes the others: one system call here at most). */
static void wake_one(void)
{
    for (int i = 0; i < hub.nwriters; i++) {
        ws_writer *w = &hub.w[i];
        if (atomic_load(&w->nclients) && atomic_load(&w->sleeping) &&
            atomic_exchange(&w->sleeping, 0)) {
            wake_writer(w);
            return;
        }
    }
}

void ws_hub_on_kline(void *userdata, const kf_kline *k)
{
    (void)userdata;
    if (atomic_load_explicit(&hub.live, memory_order_relaxed) == 0 || !hub.log)
        return;
    char d[8][KF_DEC_MAXLEN];
    kf_dec_format(k->open, d[0], sizeof d[0]);
    kf_dec_format(k->close, d[1], sizeof d[1]);
    kf_dec_format(k->high, d[2], sizeof d[2]);
    kf_dec_format(k->low, d[3], sizeof d[3]);
    kf_dec_format(k->volume, d[4], sizeof d[4]);
    kf_dec_format(k->quote_volume, d[5], sizeof d[5]);
    kf_dec_format(k->taker_buy_base, d[6], sizeof d[6]);
    kf_dec_format(k->taker_buy_quote, d[7], sizeof d[7]);
    char ev[1024], name[64], wrap[128];
    int n = snprintf(ev, sizeof ev,
                     "{\"e\":\"kline\",\"E\":%" PRId64 ",\"s\":\"%s\",\"k\":{\"t\":%" PRId64
                     ",\"T\":%" PRId64 ",\"s\":\"%s\",\"i\":\"%s\",\"f\":%" PRId64 ",\"L\":%" PRId64
                     ",\"o\":\"%s\",\"c\":\"%s\",\"h\":\"%s\",\"l\":\"%s\","
                     "\"v\":\"%s\",\"n\":%" PRId64 ",\"x\":%s,\"q\":\"%s\",\"V\":\"%s\",\"Q\":"
                     "\"%s\",\"B\":\"0\"}}",
                     k->event_time, k->symbol, k->open_time, k->close_time, k->symbol, k->interval,
                     k->first_trade_id, k->last_trade_id, d[0], d[1], d[2], d[3], d[4], k->trades,
                     k->closed ? "true" : "false", d[5], d[6], d[7]);
    if (n <= 0 || (size_t)n >= sizeof ev)
        return;
    int nl = snprintf(name, sizeof name, "%s@kline_%s", k->symbol, k->interval);
    if (nl <= 0 || (size_t)nl >= sizeof name)
        return;
    for (int i = 0; name[i] && name[i] != '@'; i++)
        if (name[i] >= 'A' && name[i] <= 'Z')
            name[i] = (char)(name[i] - 'A' + 'a');
    int idx = stream_index(name, (size_t)nl);
    if (idx < 0)
        return;
    int wl = snprintf(wrap, sizeof wrap, "{\"stream\":\"%s\",\"data\":", name);
    if (wl <= 0 || (size_t)wl >= sizeof wrap)
        return;
    unsigned char rh[4], chd[4];
    size_t rhl = frame_header(rh, (size_t)n), chl = frame_header(chd, (size_t)(wl + n + 1));
    size_t rlen = rhl + (size_t)n, clen = chl + (size_t)wl + (size_t)n + 1, len = rlen + clen;

    /* room: frames never wrap around the end of the log */
    uint64_t p = hub.wpos, s = hub.wseq;
    if (p % WS_LOG_BYTES + len > WS_LOG_BYTES)
        p += WS_LOG_BYTES - p % WS_LOG_BYTES;
    /* the events whose bytes or slot this one takes are gone: the new tail */
    uint64_t t = hub.wtail, lim = p + len > WS_LOG_BYTES ? p + len - WS_LOG_BYTES : 0;
    while (t < s && (s - t >= WS_LOG_SLOTS || hub.slots[t % WS_LOG_SLOTS].pos < lim))
        t++;
    if (t != hub.wtail) {
        hub.wtail = t;
        atomic_store(&hub.tail, t);
    }
    for (int i = 0; i < hub.nwriters; i++)
        if (atomic_load(&hub.w[i].pin) < t) { /* a writer still reads them: leave them */
            atomic_fetch_add_explicit(&hub.skipped, 1, memory_order_relaxed);
            return;
        }
    unsigned char *o = hub.log + p % WS_LOG_BYTES;
    memcpy(o, rh, rhl);
    memcpy(o + rhl, ev, (size_t)n);
    o += rlen;
    memcpy(o, chd, chl);
    memcpy(o + chl, wrap, (size_t)wl);
    memcpy(o + chl + (size_t)wl, ev, (size_t)n);
    o[clen - 1] = '}';
    hub.slots[s % WS_LOG_SLOTS] = (ws_slot){
        .pos = p, .stream = (uint32_t)idx, .rlen = (uint16_t)rlen, .clen = (uint16_t)clen};
    hub.wpos = p + len;
    hub.wseq = s + 1;
    atomic_store_explicit(&hub.head_pos, p + len, memory_order_relaxed);
    atomic_store(&hub.head, s + 1);
    wake_one();
}

/* ---- a writer's clients ---- */

static bool ctl_append(ws_client *w, const void *p, size_t n)
{
    if (w->ctl_len + n > WS_MAX_CTL)
        return false;
    if (w->ctl_len + n > w->ctl_cap) {
        size_t cap = w->ctl_cap ? w->ctl_cap : 1024;
        while (cap < w->ctl_len + n)
            cap *= 2;
        unsigned char *q = realloc(w->ctl, cap);
        if (!q)
            return false;
        w->ctl = q;
        w->ctl_cap = cap;
    }
    memcpy(w->ctl + w->ctl_len, p, n);
    w->ctl_len += n;
    return true;
}

/* Queues a server frame (unmasked) of opcode op. */
static bool ctl_frame(ws_client *w, unsigned op, const void *p, size_t n)
{
    unsigned char h[4];
    size_t hl;
    if (op == 1) {
        hl = frame_header(h, n);
        if (n > 65535)
            return false;
    } else {
        if (n > 125)
            n = 125;
        h[0] = (unsigned char)(0x80 | op);
        h[1] = (unsigned char)n;
        hl = 2;
    }
    return ctl_append(w, h, hl) && ctl_append(w, p, n);
}

/* Queues a close frame (code, reason): the client is closed once it is sent. */
static void ctl_close(ws_client *w, unsigned code, const char *reason)
{
    if (w->closing)
        return;
    unsigned char b[125];
    size_t rl = strlen(reason);
    if (rl > sizeof b - 2)
        rl = sizeof b - 2;
    b[0] = (unsigned char)(code >> 8);
    b[1] = (unsigned char)code;
    memcpy(b + 2, reason, rl);
    ctl_frame(w, 8, b, rl + 2);
    w->closing = true;
}

static bool has_sub(const ws_client *w, uint32_t idx)
{
    return (w->bits[idx / 64] >> (idx % 64)) & 1;
}

static void add_sub(ws_client *w, uint32_t idx)
{
    w->bits[idx / 64] |= 1ull << (idx % 64);
    w->subs[w->nsubs++] = idx;
}

static void del_sub(ws_client *w, uint32_t idx)
{
    w->bits[idx / 64] &= ~(1ull << (idx % 64));
    for (size_t i = 0; i < w->nsubs; i++)
        if (w->subs[i] == idx) {
            memmove(w->subs + i, w->subs + i + 1, (w->nsubs - i - 1) * sizeof w->subs[0]);
            w->nsubs--;
            break;
        }
}

static void client_free(ws_client *w)
{
    free(w->ctl);
    free(w->bits);
    free(w->subs);
    free(w);
}

/* Closes w (through libmicrohttpd, which owns the socket) and forgets it. */
static void client_close(ws_writer *wr, ws_client *w)
{
    epoll_ctl(wr->ep, EPOLL_CTL_DEL, w->fd, NULL);
    if (w->prev)
        w->prev->next = w->next;
    else
        wr->list = w->next;
    if (w->next)
        w->next->prev = w->prev;
    MHD_upgrade_action(w->urh, MHD_UPGRADE_ACTION_CLOSE);
    client_free(w);
    atomic_fetch_sub(&wr->nclients, 1);
    pthread_mutex_lock(&hub.mu);
    hub.n--;
    atomic_store(&hub.live, hub.n);
    pthread_mutex_unlock(&hub.mu);
}

static void client_drop(ws_writer *wr, ws_client *w, const char *why, uint64_t behind)
{
    uint64_t total = atomic_fetch_add(&hub.dropped, 1) + 1;
    cli_log(KF_LOG_WARN,
            "msg=\"gateway client dropped\" why=\"%s\" behind_bytes=%" PRIu64
            " bound_bytes=%u streams=%zu dropped_total=%" PRIu64,
            why, behind, WS_LAG_BYTES, w->nsubs, total);
    client_close(wr, w);
}

/* Pins w's cursor (the writer may read the log from it on) and checks how far behind it is:
 * false (pin released, w dropped) beyond the bound; *head: the log's head. */
static bool client_pin(ws_writer *wr, ws_client *w, uint64_t *head)
{
    uint64_t c = w->cursor;
    atomic_store(&wr->pin, c); /* first the pin, then the tail (the callback: the reverse) */
    uint64_t tail = atomic_load(&hub.tail);
    uint64_t h = atomic_load(&hub.head);
    *head = h;
    uint64_t hp = atomic_load_explicit(&hub.head_pos, memory_order_relaxed);
    if (c >= tail &&
        (h <= c || (h - c <= WS_LAG_SLOTS && hp - hub.slots[c % WS_LOG_SLOTS].pos <= WS_LAG_BYTES)))
        return true;
    uint64_t behind = c < tail ? WS_LOG_BYTES : hp - hub.slots[c % WS_LOG_SLOTS].pos;
    atomic_store(&wr->pin, UINT64_MAX);
    client_drop(wr, w, "it did not read: its events are too far behind", behind);
    return false;
}

/* Writes w's pending frames: control frames, then its events from the log, one writev per
 * round (WS_IOV frames at most), a few rounds. false when w is gone (dropped, closed). */
static bool client_flush(ws_writer *wr, ws_client *w)
{
    if (w->drain_until)
        return true;
    for (int round = 0; round < 4; round++) {
        struct iovec iov[WS_IOV];
        uint64_t seqs[WS_IOV]; /* the event of each iovec, UINT64_MAX for the control frames */
        int n = 0;
        size_t bytes = 0;
        uint64_t c = w->cursor, h;
        if (!client_pin(wr, w, &h))
            return false;
        uint64_t s = c;
        if (w->off && s < h) { /* the rest of a frame begun */
            const ws_slot *sl = &hub.slots[s % WS_LOG_SLOTS];
            size_t at = sl->pos % WS_LOG_BYTES + (w->combined ? sl->rlen : 0);
            size_t len = w->combined ? sl->clen : sl->rlen;
            iov[n] = (struct iovec){hub.log + at + w->off, len - w->off};
            seqs[n++] = s++;
            bytes += len - w->off;
        }
        if (w->ctl_sent < w->ctl_len) {
            iov[n] = (struct iovec){w->ctl + w->ctl_sent, w->ctl_len - w->ctl_sent};
            seqs[n++] = UINT64_MAX;
            bytes += w->ctl_len - w->ctl_sent;
        }
        for (; s < h && n < WS_IOV && bytes < WS_WRITEV_BYTES && !w->closing; s++) {
            const ws_slot *sl = &hub.slots[s % WS_LOG_SLOTS];
            if (!has_sub(w, sl->stream))
                continue;
            size_t at = sl->pos % WS_LOG_BYTES + (w->combined ? sl->rlen : 0);
            size_t len = w->combined ? sl->clen : sl->rlen;
            iov[n] = (struct iovec){hub.log + at, len};
            seqs[n++] = s;
            bytes += len;
        }
        ssize_t r = n ? writev(w->fd, iov, n) : 0;
        atomic_store(&wr->pin, UINT64_MAX);
        if (r < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                client_close(wr, w);
                return false;
            }
            r = 0;
        }
        /* what was written: the cursor moves past it (and past the events of other streams) */
        size_t left = (size_t)r;
        bool all = true;
        for (int i = 0; i < n; i++) {
            size_t len = iov[i].iov_len;
            if (seqs[i] == UINT64_MAX) {
                size_t k = left < len ? left : len;
                w->ctl_sent += k;
                left -= k;
                if (k < len) {
                    all = false;
                    break;
                }
                continue;
            }
            if (left >= len) {
                left -= len;
                w->cursor = seqs[i] + 1;
                w->off = 0;
                continue;
            }
            w->cursor = seqs[i];
            w->off = (uint32_t)(seqs[i] == c ? w->off + left : left);
            all = false;
            break;
        }
        if (all && !w->closing)
            w->cursor = s;
        if (w->ctl_sent == w->ctl_len)
            w->ctl_sent = w->ctl_len = 0;
        if (!all || (size_t)r < bytes) {
            if (!w->blocked) { /* the socket is full: go on when it has room */
                w->blocked = true;
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = w};
                epoll_ctl(wr->ep, EPOLL_CTL_MOD, w->fd, &ev);
            }
            return true;
        }
        if (w->closing && !w->ctl_len) { /* the close frame is out: then the client's close */
            shutdown(w->fd, SHUT_WR);
            w->drain_until = now_ms() + 2000;
            if (w->drain_until < wr->next_timer)
                wr->next_timer = w->drain_until;
            return true;
        }
        if (s >= h || w->closing)
            break;
    }
    return true;
}

/* ---- requests ---- */

/* Finds the value after "key": in a small JSON object (Binance's requests are flat). */
static const char *json_key(const char *s, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(s, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* Answers one request of w: its reply is queued (false: w is to be closed, out of memory). */
static bool handle_request(ws_client *w, char *msg)
{
    const char *m = json_key(msg, "method");
    const char *id = json_key(msg, "id");
    char idtxt[32] = "null";
    if (id) {
        size_t n = strspn(id, "0123456789");
        if (n && n < sizeof idtxt) {
            memcpy(idtxt, id, n);
            idtxt[n] = 0;
        }
    }
    http_buf out = {0};
    bool sub = m && strncmp(m, "\"SUBSCRIBE\"", 11) == 0;
    bool unsub = m && strncmp(m, "\"UNSUBSCRIBE\"", 13) == 0;
    bool list = m && strncmp(m, "\"LIST_SUBSCRIPTIONS\"", 20) == 0;
    const char *p = json_key(msg, "params");
    if (!sub && !unsub && !list) {
        http_buf_printf(&out,
                        "{\"error\":{\"code\":2,\"msg\":\"Invalid request: unknown variant, "
                        "expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`\"},"
                        "\"id\":%s}",
                        idtxt);
    } else if (list) {
        http_buf_printf(&out, "{\"result\":[");
        for (size_t i = 0; i < w->nsubs; i++)
            http_buf_printf(&out, "%s\"%s\"", i ? "," : "", kf_stream_name(hub.c, w->subs[i]));
        http_buf_printf(&out, "],\"id\":%s}", idtxt);
    } else if (!p || *p != '[') {
        http_buf_printf(&out,
                        "{\"error\":{\"code\":2,\"msg\":\"Invalid request: missing field "
                        "`params`\"},\"id\":%s}",
                        idtxt);
    } else {
        /* the names this run collects (others are acknowledged and never deliver) */
        uint32_t fresh[WS_MAX_SUBS];
        size_t nfresh = 0;
        bool too_many = false;
        for (p++; *p && *p != ']';) {
            const char *q = strchr(p, '"');
            const char *e = q ? strchr(q + 1, '"') : NULL;
            if (!e)
                break;
            int idx = stream_index(q + 1, (size_t)(e - q - 1));
            if (idx >= 0 && unsub && has_sub(w, (uint32_t)idx))
                del_sub(w, (uint32_t)idx);
            if (idx >= 0 && sub && !has_sub(w, (uint32_t)idx)) {
                bool dup = false;
                for (size_t i = 0; i < nfresh; i++)
                    dup |= fresh[i] == (uint32_t)idx;
                if (!dup && w->nsubs + nfresh < hub.max_subs)
                    fresh[nfresh++] = (uint32_t)idx;
                else if (!dup)
                    too_many = true;
            }
            p = e + 1;
        }
        if (too_many) { /* Binance: an error, and the whole connection is closed */
            http_buf_printf(&out,
                            "{\"error\":{\"code\":4,\"msg\":\"Too many subscriptions\"},"
                            "\"id\":%s}",
                            idtxt);
        } else {
            for (size_t i = 0; i < nfresh; i++)
                add_sub(w, fresh[i]);
            http_buf_printf(&out, "{\"result\":null,\"id\":%s}", idtxt);
        }
        if (too_many && !out.oom) {
            bool ok = ctl_frame(w, 1, out.p, out.len);
            free(out.p);
            ctl_close(w, 1008, "Too many subscriptions");
            return ok;
        }
    }
    bool ok = !out.oom && ctl_frame(w, 1, out.p, out.len);
    free(out.p);
    return ok;
}

/* Counts one incoming message: false (and the close queued) over Binance's rate. */
static bool rate_ok(ws_client *w, int64_t now)
{
    w->msg_times[w->msg_count % (WS_MSG_RATE + 1)] = now;
    w->msg_count++;
    if (w->msg_count > WS_MSG_RATE && now - w->msg_times[w->msg_count % (WS_MSG_RATE + 1)] < 1000) {
        ctl_close(w, 1008, "Too many requests");
        return false;
    }
    return true;
}

/* Reads what came from the client and answers it: false when it is gone. */
static bool client_read(ws_writer *wr, ws_client *w)
{
    if (w->drain_until) { /* after the close: what comes is read and ignored */
        ssize_t r = recv(w->fd, w->in, WS_MAX_IN, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            client_close(wr, w);
            return false;
        }
        return true;
    }
    if (w->inlen < WS_MAX_IN) {
        ssize_t r = recv(w->fd, w->in + w->inlen, WS_MAX_IN - w->inlen, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            client_close(wr, w);
            return false;
        }
        if (r > 0)
            w->inlen += (size_t)r;
    }
    int64_t now = now_ms();
    while (w->inlen >= 2 && !w->closing) {
        unsigned char *in = w->in;
        unsigned op = in[0] & 0x0f;
        bool masked = in[1] & 0x80;
        uint64_t n = in[1] & 0x7f;
        size_t hl = 2;
        if (n == 126) {
            if (w->inlen < 4)
                break;
            n = ((uint64_t)in[2] << 8) | in[3];
            hl = 4;
        }
        if (n == 127 || !masked || !(in[0] & 0x80) || hl + 4 + n > WS_MAX_IN) {
            /* no request is that long; a client's frames are masked; none is fragmented */
            ctl_close(w, 1009, "Message too big or not a single masked frame");
            break;
        }
        if (w->inlen < hl + 4 + n)
            break;
        unsigned char *mask = in + hl, *pl = in + hl + 4;
        for (uint64_t i = 0; i < n; i++)
            pl[i] ^= mask[i % 4];
        if (op == 0x8) {
            unsigned code = n >= 2 ? ((unsigned)pl[0] << 8 | pl[1]) : 1000;
            ctl_close(w, code, "");
        } else if ((op == 0x1 || op == 0x9 || op == 0xA) && rate_ok(w, now)) {
            if (op == 0x9) {
                ctl_frame(w, 0xA, pl, (size_t)n);
            } else if (op == 0xA) {
                w->ping_sent = 0; /* unsolicited pongs are fine too */
            } else {
                char msg[WS_MAX_IN + 1];
                memcpy(msg, pl, (size_t)n);
                msg[n] = 0;
                if (!handle_request(w, msg)) {
                    client_close(wr, w);
                    return false;
                }
            }
        }
        size_t used = hl + 4 + (size_t)n;
        memmove(in, in + used, w->inlen - used);
        w->inlen -= used;
    }
    return client_flush(wr, w);
}

/* Pings, the pong deadline and the connection's lifetime: false when w is gone. */
static bool client_timers(ws_writer *wr, ws_client *w, int64_t now, int64_t *next)
{
    if (w->drain_until && now >= w->drain_until) {
        client_close(wr, w);
        return false;
    }
    if (w->drain_until && w->drain_until < *next)
        *next = w->drain_until;
    if (w->closing)
        return true;
    if (now - w->born >= hub.max_age_ms) {
        ctl_close(w, 1001, "Connection lifetime exceeded");
    } else if (w->ping_sent && now - w->ping_sent >= hub.pong_timeout_ms) {
        ctl_close(w, 1008, "Pong timeout");
    } else if (now >= w->next_ping) {
        char ts[32];
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        int n =
            snprintf(ts, sizeof ts, "%" PRId64, (int64_t)rt.tv_sec * 1000 + rt.tv_nsec / 1000000);
        ctl_frame(w, 0x9, ts, (size_t)n);
        if (!w->ping_sent)
            w->ping_sent = now;
        w->next_ping = now + hub.ping_ms;
    }
    if (w->closing)
        return client_flush(wr, w);
    int64_t due = w->next_ping < w->born + hub.max_age_ms ? w->next_ping : w->born + hub.max_age_ms;
    if (w->ping_sent && w->ping_sent + hub.pong_timeout_ms < due)
        due = w->ping_sent + hub.pong_timeout_ms;
    if (due < *next)
        *next = due;
    return w->ctl_len ? client_flush(wr, w) : true;
}

static void *writer_main(void *arg)
{
    ws_writer *wr = arg;
    char name[16];
    snprintf(name, sizeof name, "kf-gw-%d", (int)(wr - hub.w));
    pthread_setname_np(pthread_self(), name);
    struct epoll_event evs[64];
    wr->next_timer = INT64_MAX;
    uint64_t seen_skipped = 0;
    for (;;) {
        /* sleep unless there is news: the callback wakes a writer that says it sleeps */
        atomic_store(&wr->sleeping, 1);
        int64_t now = now_ms();
        int timeout = wr->next_timer == INT64_MAX ? 1000
                      : wr->next_timer <= now
                          ? 0
                          : (int)(wr->next_timer - now < 1000 ? wr->next_timer - now : 1000);
        bool news = false;
        for (ws_client *w = wr->list; w && !news; w = w->next)
            news = !w->blocked && !w->closing && w->cursor != atomic_load(&hub.head);
        int ne = epoll_wait(wr->ep, evs, 64, news ? 0 : timeout);
        atomic_store(&wr->sleeping, 0);
        for (int i = 0; i < ne; i++) {
            if (!evs[i].data.ptr) {
                uint64_t x;
                ssize_t r = read(wr->wake, &x, sizeof x);
                (void)r;
                /* woken by the callback: wake the other writers that sleep */
                for (int k = 0; k < hub.nwriters; k++)
                    if (&hub.w[k] != wr && atomic_load(&hub.w[k].nclients) &&
                        atomic_load(&hub.w[k].sleeping) && atomic_exchange(&hub.w[k].sleeping, 0))
                        wake_writer(&hub.w[k]);
            }
        }
        /* clients handed over, or the stop */
        pthread_mutex_lock(&hub.mu);
        bool stop = hub.stopping;
        ws_client *in = wr->incoming;
        wr->incoming = NULL;
        pthread_mutex_unlock(&hub.mu);
        now = now_ms();
        while (in) {
            ws_client *w = in;
            in = in->next;
            w->prev = NULL;
            w->next = wr->list;
            if (wr->list)
                wr->list->prev = w;
            wr->list = w;
            w->cursor = atomic_load(&hub.head);
            w->born = now;
            w->next_ping = now + hub.ping_ms;
            struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
            if (epoll_ctl(wr->ep, EPOLL_CTL_ADD, w->fd, &ev) != 0) {
                client_close(wr, w);
                continue;
            }
            if (w->next_ping < wr->next_timer)
                wr->next_timer = w->next_ping;
            if (w->born + hub.max_age_ms < wr->next_timer)
                wr->next_timer = w->born + hub.max_age_ms;
            if (w->inlen)
                client_read(wr, w); /* the bytes after its upgrade request */
        }
        if (stop)
            break;
        /* requests and room: EPOLLIN reads (and flushes), EPOLLOUT clears blocked */
        for (int i = 0; i < ne; i++) {
            ws_client *w = evs[i].data.ptr;
            if (!w)
                continue;
            /* a client closed by an earlier event of this batch has left the list */
            bool live = false;
            for (ws_client *x = wr->list; x && !live; x = x->next)
                live = x == w;
            if (!live)
                continue;
            if (evs[i].events & EPOLLOUT) {
                w->blocked = false;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
                epoll_ctl(wr->ep, EPOLL_CTL_MOD, w->fd, &ev);
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                client_read(wr, w);
        }
        now = now_ms();
        if (now >= wr->next_timer) {
            wr->next_timer = INT64_MAX;
            for (ws_client *w = wr->list, *nx; w; w = nx) {
                nx = w->next;
                client_timers(wr, w, now, &wr->next_timer);
            }
        }
        /* the events: every client that is not blocked */
        for (ws_client *w = wr->list, *nx; w; w = nx) {
            nx = w->next;
            uint64_t h;
            if (!w->blocked)
                client_flush(wr, w);
            else if (client_pin(wr, w, &h)) /* a client that does not read: how far behind */
                atomic_store(&wr->pin, UINT64_MAX);
        }
        uint64_t sk = atomic_load_explicit(&hub.skipped, memory_order_relaxed);
        if (sk != seen_skipped && wr == &hub.w[0]) {
            cli_log(KF_LOG_WARN,
                    "msg=\"gateway events skipped\" why=\"a writer thread stalled on the "
                    "log's oldest events\" skipped_total=%" PRIu64,
                    sk);
            seen_skipped = sk;
        }
    }
    /* the stop: every client gets a close 1001 (going away) after the frame it is in, as far
     * as its socket takes them */
    for (ws_client *w = wr->list, *nx; w; w = nx) {
        nx = w->next;
        if (!w->closing) {
            ctl_close(w, 1001, "");
            if (!client_flush(wr, w))
                continue; /* closed: all was sent */
        }
        client_close(wr, w);
    }
    return NULL;
}

/* ---- the upgrade ---- */

static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra,
                       size_t extra_in, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)conn;
    (void)con_cls;
    ws_req *rq = cls;
    pthread_mutex_lock(&hub.mu);
    if (rq->prev)
        rq->prev->next = rq->next;
    else
        hub.pending = rq->next;
    if (rq->next)
        rq->next->prev = rq->prev;
    pthread_mutex_unlock(&hub.mu);
    ws_client *w = calloc(1, sizeof *w);
    bool room = false;
    if (w) {
        w->bits = calloc(hub.nstreams / 64 + 1, sizeof *w->bits);
        w->subs = malloc(WS_MAX_SUBS * sizeof *w->subs);
    }
    int fl = fcntl(sock, F_GETFL);
    if (w && w->bits && w->subs && fl >= 0 && fcntl(sock, F_SETFL, fl | O_NONBLOCK) == 0) {
        w->fd = sock;
        w->urh = urh;
        w->combined = rq->combined;
        for (size_t i = 0; i < rq->n; i++)
            add_sub(w, rq->subs[i]);
        if (extra_in > WS_MAX_IN)
            extra_in = WS_MAX_IN;
        memcpy(w->in, extra, extra_in);
        w->inlen = extra_in;
        pthread_mutex_lock(&hub.mu); /* checked and added at once: two server threads upgrade */
        room = hub.n < WS_MAX_CLIENTS && !hub.stopping && hub.nwriters > 0;
        if (room) {
            ws_writer *wr = &hub.w[0];
            for (int i = 1; i < hub.nwriters; i++)
                if (atomic_load(&hub.w[i].nclients) < atomic_load(&wr->nclients))
                    wr = &hub.w[i];
            w->wr = wr;
            w->next = wr->incoming;
            wr->incoming = w;
            atomic_fetch_add(&wr->nclients, 1);
            hub.n++;
            atomic_store(&hub.live, hub.n);
            wake_writer(wr);
        }
        pthread_mutex_unlock(&hub.mu);
    }
    free(rq);
    if (!room) {
        if (w)
            client_free(w);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    }
}

static void b64(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < n ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = 0;
}

/* Adds the streams of "a/b/c" to rq (unknown ones ignored, as Binance ignores them; beyond the
 * limit of streams per connection, ignored). */
static void add_streams(ws_req *rq, const char *s)
{
    while (*s) {
        size_t n = strcspn(s, "/");
        int idx = stream_index(s, n);
        bool have = false;
        for (size_t i = 0; i < rq->n; i++)
            have |= rq->subs[i] == (uint32_t)idx;
        if (idx >= 0 && !have && rq->n < hub.max_subs)
            rq->subs[rq->n++] = (uint32_t)idx;
        s += n;
        if (*s == '/')
            s++;
    }
}

bool ws_is_path(const char *url)
{
    return strcmp(url, "/market/ws") == 0 || strncmp(url, "/market/ws/", 11) == 0 ||
           strcmp(url, "/market/stream") == 0;
}

enum MHD_Result ws_upgrade(struct MHD_Connection *conn, const char *url)
{
    const char *up = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Upgrade");
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    if (!up || strcasecmp(up, "websocket") != 0 || !key || strlen(key) > 64) {
        static const char body[] = "{\"error\":\"a WebSocket upgrade is expected here\"}\n";
        struct MHD_Response *r =
            MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_BAD_REQUEST, r);
        MHD_destroy_response(r);
        return ret;
    }
    ws_req *rq = calloc(1, sizeof *rq);
    if (!rq)
        return MHD_NO;
    if (strncmp(url, "/market/ws/", 11) == 0) {
        add_streams(rq, url + 11);
    } else if (strcmp(url, "/market/stream") == 0) {
        rq->combined = true;
        const char *s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "streams");
        if (s)
            add_streams(rq, s);
    }
    char cat[128], acc[32];
    unsigned char dig[SHA_DIGEST_LENGTH];
    snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    SHA1((const unsigned char *)cat, strlen(cat), dig);
    b64(dig, sizeof dig, acc);
    struct MHD_Response *r = MHD_create_response_for_upgrade(on_upgrade, rq);
    if (!r) {
        free(rq);
        return MHD_NO;
    }
    pthread_mutex_lock(&hub.mu);
    rq->next = hub.pending;
    if (rq->next)
        rq->next->prev = rq;
    hub.pending = rq;
    pthread_mutex_unlock(&hub.mu);
    MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(r, "Sec-WebSocket-Accept", acc);
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    return ret;
}

void ws_hub_stop(void)
{
    pthread_mutex_lock(&hub.mu);
    hub.stopping = true;
    int nw = hub.nwriters;
    pthread_mutex_unlock(&hub.mu);
    for (int i = 0; i < nw; i++)
        wake_writer(&hub.w[i]);
    for (int i = 0; i < nw; i++) {
        ws_writer *wr = &hub.w[i];
        pthread_join(wr->t, NULL);
        pthread_mutex_lock(&hub.mu); /* handed over after its last look */
        ws_client *in = wr->incoming;
        wr->incoming = NULL;
        pthread_mutex_unlock(&hub.mu);
        while (in) {
            ws_client *w = in;
            in = in->next;
            MHD_upgrade_action(w->urh, MHD_UPGRADE_ACTION_CLOSE);
            client_free(w);
        }
        close(wr->ep);
        close(wr->wake);
        wr->running = false;
    }
    pthread_mutex_lock(&hub.mu);
    hub.nwriters = 0;
    hub.n = 0;
    atomic_store(&hub.live, 0);
    pthread_mutex_unlock(&hub.mu);
}

void ws_hub_free_pending(void)
{
    pthread_mutex_lock(&hub.mu);
    while (hub.pending) {
        ws_req *rq = hub.pending;
        hub.pending = rq->next;
        free(rq);
    }
    pthread_mutex_unlock(&hub.mu);
    /* the collector has stopped (run_cmd stops it first): no callback reads these any more */
    free(hub.log);
    free(hub.slots);
    free(hub.names);
    hub.log = NULL;
    hub.slots = NULL;
    hub.names = NULL;
}
