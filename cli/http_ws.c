/*
 * The gateway's WebSocket side: /market/ws, /market/ws/<stream>/<stream>... (raw events) and
 * /market/stream?streams=a/b (combined {"stream":...,"data":...}), the live kline events of the
 * collected streams in Binance's wire format, fanned out from the library's on_kline callback,
 * with live SUBSCRIBE, UNSUBSCRIBE and LIST_SUBSCRIPTIONS and Binance's replies.
 *
 * The callback runs on the collector's I/O thread: it formats the event once on its stack and
 * copies it, framed, into the bounded byte queue of every client subscribed to the stream
 * (preallocated when the client connects: no allocation, one short lock, never a wait). A
 * client whose queue is full is dropped (closed), never the collector. Each client has a
 * thread of its own that writes its queue to its socket and reads its requests.
 */
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <openssl/sha.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"

/* Bytes a client may have queued; a client that lets this fill is dropped. */
#define WS_QUEUE_BYTES (1u << 20)
#define WS_MAX_CLIENTS 1024
/* Streams one client may subscribe (Binance: 1024 per connection). */
#define WS_MAX_SUBS 1024
#define WS_MAX_IN 8192

typedef struct ws_client {
    int fd, wake;
    struct MHD_UpgradeResponseHandle *urh;
    bool combined;
    /* guarded by the hub's lock */
    unsigned char *q;
    size_t head, len; /* ring: bytes [head, head+len) mod WS_QUEUE_BYTES */
    bool dropped;
    bool kick; /* the dispatcher is to wake its thread */
    size_t nsubs;
    int subs[WS_MAX_SUBS]; /* stream indexes (kf_stream_name order) */
} ws_client;

/* A client's request between the 101 answer and libmicrohttpd's upgrade callback (which is not
 * called when the client goes away in between: the hub frees what is left at the stop). */
typedef struct ws_req {
    struct ws_req *prev, *next;
    bool combined;
    size_t n;
    int subs[WS_MAX_SUBS];
} ws_req;

static struct {
    pthread_mutex_t mu;
    ws_req *pending;
    pthread_cond_t gone;
    kf_collector *c;
    bool stopping;
    size_t n;
    size_t threads; /* client threads not finished (still using libmicrohttpd's handle) */
    ws_client *v[WS_MAX_CLIENTS];
    atomic_size_t live; /* n, read without the lock by the callback's fast exit */
    /* the dispatcher: the callback writes its eventfd once per batch (one system call on the
     * collector's I/O thread however many clients), it wakes the clients' threads */
    int kick;
    bool kicked, dispatching;
    pthread_t dispatcher;
    atomic_uint_fast64_t dropped;
} hub = {.mu = PTHREAD_MUTEX_INITIALIZER, .gone = PTHREAD_COND_INITIALIZER};

static void wake(ws_client *w);

static void *dispatch_main(void *arg)
{
    (void)arg;
    for (;;) {
        uint64_t x;
        ssize_t r = read(hub.kick, &x, sizeof x);
        (void)r;
        pthread_mutex_lock(&hub.mu);
        hub.kicked = false;
        bool stop = hub.stopping;
        for (size_t i = 0; i < hub.n; i++)
            if (hub.v[i]->kick) {
                hub.v[i]->kick = false;
                wake(hub.v[i]);
            }
        pthread_mutex_unlock(&hub.mu);
        if (stop)
            return NULL;
    }
}

void ws_hub_set_collector(kf_collector *c)
{
    pthread_mutex_lock(&hub.mu);
    hub.c = c;
    if (!hub.dispatching) {
        hub.kick = eventfd(0, EFD_CLOEXEC);
        hub.dispatching =
            hub.kick >= 0 && pthread_create(&hub.dispatcher, NULL, dispatch_main, NULL) == 0;
        if (!hub.dispatching && hub.kick >= 0) {
            close(hub.kick);
            hub.kick = -1;
        }
    }
    pthread_mutex_unlock(&hub.mu);
}

/* The index of a stream name ("btcusdt@kline_1m", as Binance, lower case) or -1. */
static int stream_index(const char *name, size_t len)
{
    kf_collector *c = hub.c;
    if (!c)
        return -1;
    for (size_t i = 0; i < kf_stream_count(c); i++) {
        const char *s = kf_stream_name(c, i);
        if (s && strlen(s) == len && memcmp(s, name, len) == 0)
            return (int)i;
    }
    return -1;
}

static bool has_sub(const ws_client *w, int idx)
{
    for (size_t i = 0; i < w->nsubs; i++)
        if (w->subs[i] == idx)
            return true;
    return false;
}

/* Appends one server frame (text, unmasked) to w's queue; false when it does not fit. Under
 * the hub's lock. */
static bool enqueue(ws_client *w, const char *a, size_t alen, const char *b, size_t blen,
                    const char *z, size_t zlen)
{
    size_t n = alen + blen + zlen;
    unsigned char hdr[10];
    size_t hl;
    hdr[0] = 0x81;
    if (n < 126) {
        hdr[1] = (unsigned char)n;
        hl = 2;
    } else if (n < 65536) {
        hdr[1] = 126;
        hdr[2] = (unsigned char)(n >> 8);
        hdr[3] = (unsigned char)n;
        hl = 4;
    } else {
        hdr[1] = 127;
        for (int i = 0; i < 8; i++)
            hdr[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    if (w->len + hl + n > WS_QUEUE_BYTES)
        return false;
    const unsigned char *parts[4] = {hdr, (const unsigned char *)a, (const unsigned char *)b,
                                     (const unsigned char *)z};
    size_t lens[4] = {hl, alen, blen, zlen};
    for (int p = 0; p < 4; p++) {
        size_t at = (w->head + w->len) % WS_QUEUE_BYTES, n1 = lens[p];
        if (n1 > WS_QUEUE_BYTES - at)
            n1 = WS_QUEUE_BYTES - at;
        if (n1)
            memcpy(w->q + at, parts[p], n1);
        if (lens[p] > n1)
            memcpy(w->q, parts[p] + n1, lens[p] - n1);
        w->len += lens[p];
    }
    return true;
}

static void wake(ws_client *w)
{
    uint64_t one = 1;
    ssize_t r = write(w->wake, &one, sizeof one);
    (void)r;
}

/* The library's on_kline callback (the collector's I/O thread). */
void ws_hub_on_kline(void *userdata, const kf_kline *k)
{
    (void)userdata;
    if (atomic_load_explicit(&hub.live, memory_order_relaxed) == 0)
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
    int wl = snprintf(wrap, sizeof wrap, "{\"stream\":\"%s\",\"data\":", name);
    pthread_mutex_lock(&hub.mu);
    int idx = stream_index(name, (size_t)nl);
    bool any = false;
    for (size_t i = 0; idx >= 0 && i < hub.n; i++) {
        ws_client *w = hub.v[i];
        if (w->dropped || !has_sub(w, idx))
            continue;
        /* its thread drains the queue to empty after a wake: wake it only when it was empty */
        bool was_empty = w->len == 0;
        bool ok = w->combined ? enqueue(w, wrap, (size_t)wl, ev, (size_t)n, "}", 1)
                              : enqueue(w, ev, (size_t)n, NULL, 0, NULL, 0);
        if (!ok) {
            w->dropped = true;
            atomic_fetch_add(&hub.dropped, 1);
        }
        if (was_empty || !ok) {
            w->kick = true;
            any = true;
        }
    }
    if (any && !hub.kicked) {
        hub.kicked = true;
        if (hub.dispatching) {
            uint64_t one = 1;
            ssize_t r = write(hub.kick, &one, sizeof one);
            (void)r;
        } else { /* no dispatcher thread (it could not be made): wake them from here */
            for (size_t i = 0; i < hub.n; i++)
                if (hub.v[i]->kick) {
                    hub.v[i]->kick = false;
                    wake(hub.v[i]);
                }
            hub.kicked = false;
        }
    }
    pthread_mutex_unlock(&hub.mu);
}

/* ---- a client's thread ---- */

static bool write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            if (poll(&pf, 1, 10000) <= 0)
                return false; /* 10 s without progress: a stuck client */
            continue;
        }
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* Writes w's queue out (the lock is not held while writing). */
static bool flush(ws_client *w, unsigned char *tmp, size_t cap)
{
    for (;;) {
        pthread_mutex_lock(&hub.mu);
        size_t n = w->len < cap ? w->len : cap;
        size_t n1 = n < WS_QUEUE_BYTES - w->head ? n : WS_QUEUE_BYTES - w->head;
        memcpy(tmp, w->q + w->head, n1);
        memcpy(tmp + n1, w->q, n - n1);
        w->head = (w->head + n) % WS_QUEUE_BYTES;
        w->len -= n;
        bool dropped = w->dropped;
        pthread_mutex_unlock(&hub.mu);
        if (dropped)
            return false;
        if (!n)
            return true;
        if (!write_all(w->fd, tmp, n))
            return false;
    }
}

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

/* Answers one request frame of w (under no lock); reply in out. */
static void handle_request(ws_client *w, char *msg, http_buf *out)
{
    const char *m = json_key(msg, "method");
    const char *id = json_key(msg, "id");
    char idtxt[32] = "null";
    if (id) {
        size_t n = strspn(id, "-0123456789");
        if (n && n < sizeof idtxt) {
            memcpy(idtxt, id, n);
            idtxt[n] = 0;
        }
    }
    bool sub = m && strncmp(m, "\"SUBSCRIBE\"", 11) == 0;
    bool unsub = m && strncmp(m, "\"UNSUBSCRIBE\"", 13) == 0;
    bool list = m && strncmp(m, "\"LIST_SUBSCRIPTIONS\"", 20) == 0;
    if (!sub && !unsub && !list) {
        http_buf_printf(out,
                        "{\"code\":2,\"msg\":\"Invalid request: unknown variant, expected one "
                        "of `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`\",\"id\":%s}",
                        idtxt);
        return;
    }
    if (list) {
        pthread_mutex_lock(&hub.mu);
        http_buf_printf(out, "{\"result\":[");
        for (size_t i = 0; i < w->nsubs; i++)
            http_buf_printf(out, "%s\"%s\"", i ? "," : "",
                            kf_stream_name(hub.c, (size_t)w->subs[i]));
        pthread_mutex_unlock(&hub.mu);
        http_buf_printf(out, "],\"id\":%s}", idtxt);
        return;
    }
    const char *p = json_key(msg, "params");
    if (!p || *p != '[') {
        http_buf_printf(out,
                        "{\"code\":2,\"msg\":\"Invalid request: missing field `params`\","
                        "\"id\":%s}",
                        idtxt);
        return;
    }
    p++;
    pthread_mutex_lock(&hub.mu);
    while (*p && *p != ']') {
        const char *q = strchr(p, '"');
        if (!q)
            break;
        const char *e = strchr(q + 1, '"');
        if (!e)
            break;
        int idx = stream_index(q + 1, (size_t)(e - q - 1));
        if (idx >= 0) {
            bool have = has_sub(w, idx);
            if (sub && !have && w->nsubs < WS_MAX_SUBS)
                w->subs[w->nsubs++] = idx;
            if (unsub && have) {
                for (size_t i = 0; i < w->nsubs; i++)
                    if (w->subs[i] == idx) {
                        w->subs[i] = w->subs[--w->nsubs];
                        break;
                    }
            }
        }
        p = e + 1;
    }
    pthread_mutex_unlock(&hub.mu);
    http_buf_printf(out, "{\"result\":null,\"id\":%s}", idtxt);
}

static void send_control(ws_client *w, unsigned char op, const unsigned char *p, size_t n)
{
    unsigned char f[2 + 125];
    if (n > 125)
        n = 125;
    f[0] = (unsigned char)(0x80 | op);
    f[1] = (unsigned char)n;
    memcpy(f + 2, p, n);
    write_all(w->fd, f, n + 2);
}

/* Reads what came from the client: false when it is gone or closed. */
static bool read_client(ws_client *w, unsigned char *in, size_t *inlen)
{
    ssize_t r = recv(w->fd, in + *inlen, WS_MAX_IN - *inlen, MSG_DONTWAIT);
    if (r == 0)
        return false;
    if (r < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    *inlen += (size_t)r;
    for (;;) {
        if (*inlen < 2)
            return true;
        unsigned op = in[0] & 0x0f;
        bool masked = in[1] & 0x80;
        uint64_t n = in[1] & 0x7f;
        size_t hl = 2;
        if (n == 126) {
            if (*inlen < 4)
                return true;
            n = ((uint64_t)in[2] << 8) | in[3];
            hl = 4;
        } else if (n == 127) {
            return false; /* no request is that long */
        }
        if (!masked || !(in[0] & 0x80))
            return false; /* a client's frames are masked; no fragmented requests */
        if (hl + 4 + n > WS_MAX_IN)
            return false;
        if (*inlen < hl + 4 + n)
            return true;
        unsigned char *mask = in + hl, *pl = in + hl + 4;
        for (uint64_t i = 0; i < n; i++)
            pl[i] ^= mask[i % 4];
        if (op == 0x8) {
            send_control(w, 0x8, pl, n >= 2 ? 2 : 0);
            return false;
        } else if (op == 0x9) {
            send_control(w, 0xA, pl, (size_t)n);
        } else if (op == 0x1) {
            char msg[WS_MAX_IN + 1];
            memcpy(msg, pl, (size_t)n);
            msg[n] = 0;
            http_buf out = {0};
            handle_request(w, msg, &out);
            if (out.oom) {
                free(out.p);
                return false;
            }
            pthread_mutex_lock(&hub.mu);
            bool ok = enqueue(w, out.p, out.len, NULL, 0, NULL, 0);
            pthread_mutex_unlock(&hub.mu);
            free(out.p);
            if (!ok)
                return false;
            wake(w);
        }
        size_t used = hl + 4 + (size_t)n;
        memmove(in, in + used, *inlen - used);
        *inlen -= used;
    }
}

static void *client_main(void *arg)
{
    ws_client *w = arg;
    unsigned char *tmp = malloc(65536);
    unsigned char *in = malloc(WS_MAX_IN);
    size_t inlen = 0;
    while (tmp && in) {
        pthread_mutex_lock(&hub.mu);
        bool stop = hub.stopping || w->dropped;
        pthread_mutex_unlock(&hub.mu);
        if (stop)
            break;
        struct pollfd pf[2] = {{.fd = w->fd, .events = POLLIN}, {.fd = w->wake, .events = POLLIN}};
        if (poll(pf, 2, 1000) < 0 && errno != EINTR)
            break;
        if (pf[1].revents & POLLIN) {
            uint64_t x;
            ssize_t r = read(w->wake, &x, sizeof x);
            (void)r;
        }
        if ((pf[0].revents & (POLLIN | POLLHUP | POLLERR)) && !read_client(w, in, &inlen))
            break;
        if (!flush(w, tmp, 65536))
            break;
    }
    pthread_mutex_lock(&hub.mu);
    bool going_away = hub.stopping, dropped = w->dropped;
    size_t nsubs = w->nsubs;
    pthread_mutex_unlock(&hub.mu);
    if (dropped)
        cli_log(KF_LOG_WARN,
                "msg=\"gateway client dropped\" why=\"it did not read: its queue (%u bytes) is "
                "full\" streams=%zu dropped_total=%" PRIu64,
                WS_QUEUE_BYTES, nsubs, (uint64_t)atomic_load(&hub.dropped));
    if (going_away) /* 1001: going away */
        send_control(w, 0x8, (const unsigned char *)"\x03\xe9", 2);
    free(tmp);
    free(in);
    pthread_mutex_lock(&hub.mu); /* out of the hub first: the callback no longer sees it */
    for (size_t i = 0; i < hub.n; i++)
        if (hub.v[i] == w) {
            hub.v[i] = hub.v[--hub.n];
            atomic_store(&hub.live, hub.n);
            break;
        }
    pthread_mutex_unlock(&hub.mu);
    MHD_upgrade_action(w->urh, MHD_UPGRADE_ACTION_CLOSE);
    close(w->wake);
    free(w->q);
    free(w);
    pthread_mutex_lock(&hub.mu); /* then done with the server: its stop may go on */
    hub.threads--;
    pthread_cond_broadcast(&hub.gone);
    pthread_mutex_unlock(&hub.mu);
    return NULL;
}

/* ---- the upgrade ---- */

static void on_upgrade(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra,
                       size_t extra_in, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)conn;
    (void)con_cls;
    (void)extra;
    (void)extra_in;
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
    unsigned char *q = malloc(WS_QUEUE_BYTES);
    int wk = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    bool room = false;
    if (w && q && wk >= 0) {
        w->fd = sock;
        w->wake = wk;
        w->urh = urh;
        w->q = q;
        w->combined = rq->combined;
        w->nsubs = rq->n;
        memcpy(w->subs, rq->subs, rq->n * sizeof rq->subs[0]);
        pthread_mutex_lock(&hub.mu); /* checked and added at once: two server threads upgrade */
        room = hub.n < WS_MAX_CLIENTS && !hub.stopping;
        if (room) {
            hub.v[hub.n++] = w;
            hub.threads++;
            atomic_store(&hub.live, hub.n);
        }
        pthread_mutex_unlock(&hub.mu);
    }
    if (!room) {
        free(w);
        free(q);
        if (wk >= 0)
            close(wk);
        free(rq);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        return;
    }
    free(rq);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, client_main, w) != 0) {
        pthread_mutex_lock(&hub.mu);
        for (size_t i = 0; i < hub.n; i++)
            if (hub.v[i] == w) {
                hub.v[i] = hub.v[--hub.n];
                break;
            }
        hub.threads--;
        atomic_store(&hub.live, hub.n);
        pthread_cond_broadcast(&hub.gone);
        pthread_mutex_unlock(&hub.mu);
        MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        close(wk);
        free(q);
        free(w);
    }
    pthread_attr_destroy(&at);
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

/* Adds the streams of "a/b/c" to rq (unknown ones ignored, as Binance ignores them). */
static void add_streams(ws_req *rq, const char *s)
{
    pthread_mutex_lock(&hub.mu);
    while (*s) {
        size_t n = strcspn(s, "/");
        int idx = stream_index(s, n);
        bool have = false;
        for (size_t i = 0; i < rq->n; i++)
            have |= rq->subs[i] == idx;
        if (idx >= 0 && !have && rq->n < WS_MAX_SUBS)
            rq->subs[rq->n++] = idx;
        s += n;
        if (*s == '/')
            s++;
    }
    pthread_mutex_unlock(&hub.mu);
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
    for (size_t i = 0; i < hub.n; i++)
        wake(hub.v[i]);
    while (hub.threads)
        pthread_cond_wait(&hub.gone, &hub.mu);
    bool dispatching = hub.dispatching;
    hub.dispatching = false;
    pthread_mutex_unlock(&hub.mu);
    if (dispatching) {
        uint64_t one = 1;
        ssize_t r = write(hub.kick, &one, sizeof one);
        (void)r;
        pthread_join(hub.dispatcher, NULL);
        close(hub.kick);
        hub.kick = -1;
    }
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
}
