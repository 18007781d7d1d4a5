/* One WebSocket client connection: resolve -> connect -> TLS -> upgrade -> messages -> close. */
#include "transport/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"

#define CONN_OBUF 65536
#define CONN_READS_PER_EVENT 16
#define CONN_CLOSE_WAIT_MS 1000
/* The most of the URL a failure message quotes, so that its cause still fits in why[]. */
#define WHY_URL_MAX 384
#define CONN_TLS_READ_AHEAD (256 * 1024) /* bytes of TLS records one recv may take */

struct kf__conn {
    uv_loop_t *loop;
    kf__url url;
    char path[1024];
    char full_url[1400];
    SSL_CTX *ssl_ctx;
    SSL *ssl;
    size_t max_message;
    unsigned timeout_ms;
    kf__logger *log;
    _Atomic uint64_t *pings_counter;
    kf__conn_handler h;
    void *ud;

    kf__conn_state state;
    int fd;
    uv_poll_t *poll; /* one per socket, heap: closed asynchronously */
    int poll_events;
    uv_timer_t timer; /* connect deadline, then close-handshake deadline */
    uv_idle_t drain;  /* TLS: records read ahead, taken on the next turn of the loop */
    uv_getaddrinfo_t gai;
    bool gai_active;
    struct addrinfo *ai, *ai_next;
    int handles; /* libuv handles not yet closed */
    bool destroyed, reported;
    bool peer_closed;
    bool ssl_want_write;
    uint8_t *tbuf; /* TLS: records received, not yet taken by OpenSSL (conn_bio_read) */
    size_t toff, tlen;
    bool teof; /* the socket said EOF under tbuf */

    char key[25];
    uint8_t *rbuf;
    size_t rcap, rlen;
    uint8_t *obuf;
    size_t olen, ooff;
    kf__ws_reader reader;
    uint64_t mask_state;
    uint64_t last_rx;
    kf__conn_stats stats;
    char why[768];
};

/* ---- lifetime ---- */

static void conn_maybe_free(kf__conn *c)
{
    if (!c->destroyed || c->handles > 0 || c->gai_active)
        return;
    if (c->ai)
        uv_freeaddrinfo(c->ai);
    kf__free(c->rbuf);
    kf__free(c->reader.frag);
    kf__free(c->obuf);
    kf__free(c->tbuf);
    kf__free(c);
}

static void conn_handle_closed(uv_handle_t *h)
{
    kf__conn *c = h->data;
    if (h != (uv_handle_t *)&c->timer && h != (uv_handle_t *)&c->drain)
        kf__free(h);
    c->handles--;
    conn_maybe_free(c);
}

kf__conn *kf__conn_new(uv_loop_t *loop, const kf__conn_opts *o, const kf__conn_handler *h, void *ud)
{
    kf__conn *c = kf__calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->url = *o->url;
    snprintf(c->path, sizeof c->path, "%s", o->path);
    snprintf(c->full_url, sizeof c->full_url, "%s://%s%s", c->url.tls ? "wss" : "ws",
             c->url.host_header, c->path);
    c->ssl_ctx = o->ssl_ctx;
    c->max_message = o->max_message;
    c->timeout_ms = o->connect_timeout_ms;
    c->log = o->log;
    c->pings_counter = o->pings;
    c->h = *h;
    c->ud = ud;
    c->fd = -1;
    /* The read buffer holds the largest message plus a frame header, and reads are large. */
    c->rcap = o->max_message + 256 * 1024;
    c->rbuf = kf__malloc(c->rcap);
    c->reader.frag = kf__malloc(o->max_message);
    c->reader.max_message = o->max_message;
    c->obuf = kf__malloc(CONN_OBUF);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    uv_idle_init(loop, &c->drain);
    c->drain.data = c;
    c->handles = 2;
    if (!c->rbuf || !c->reader.frag || !c->obuf) {
        kf__conn_destroy(c);
        return NULL;
    }
    return c;
}

kf__conn_state kf__conn_get_state(const kf__conn *c)
{
    return c->state;
}
const kf__conn_stats *kf__conn_get_stats(const kf__conn *c)
{
    return &c->stats;
}
const char *kf__conn_url(const kf__conn *c)
{
    return c->full_url;
}

/* ---- socket teardown and the one closed report ---- */

static void conn_drop_socket(kf__conn *c)
{
    uv_idle_stop(&c->drain);
    if (c->poll) {
        uv_poll_stop(c->poll);
        uv_close((uv_handle_t *)c->poll, conn_handle_closed);
        c->poll = NULL;
    }
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->poll_events = 0;
}

static void conn_finish(kf__conn *c, kf_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conn_finish(kf__conn *c, kf_err err, const char *fmt, ...)
{
    if (c->state == KF__CONN_CLOSED)
        return;
    va_list ap;
    va_start(ap, fmt);
    /* The URL may be longer than the whole buffer (a 1000-byte path is accepted): it is cut so
     * that the cause always fits after it, and snprintf's result (what it wanted to write, not
     * what it wrote) is clamped before it becomes an offset. */
    size_t ul = strlen(c->full_url);
    int n = snprintf(c->why, sizeof c->why, "%.*s%s: ", (int)(ul > WHY_URL_MAX ? WHY_URL_MAX : ul),
                     c->full_url, ul > WHY_URL_MAX ? "..." : "");
    size_t o = n < 0 ? 0 : (size_t)n >= sizeof c->why ? sizeof c->why - 1 : (size_t)n;
    vsnprintf(c->why + o, sizeof c->why - o, fmt, ap);
    va_end(ap);
    c->state = KF__CONN_CLOSED;
    uv_timer_stop(&c->timer);
    conn_drop_socket(c);
    if (!c->reported && !c->destroyed) {
        c->reported = true;
        c->h.on_closed(c->ud, c, err, c->why);
    }
}

static const char *ssl_error_text(kf__conn *c, char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    long vr = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
    if (vr != X509_V_OK)
        snprintf(buf, cap, "certificate verification failed: %s",
                 X509_verify_cert_error_string(vr));
    else if (e)
        ERR_error_string_n(e, buf, cap);
    else
        snprintf(buf, cap, "%s", errno ? strerror(errno) : "connection closed during handshake");
    ERR_clear_error();
    return buf;
}

/* ---- socket errors, named with their cause and the stage they hit ---- */

/* The socket's pending error (SO_ERROR, which also clears it), 0 when none. */
static int conn_pending_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        return errno;
    return err;
}

/* What a read would see, without taking anything from the socket (TLS records stay for
 * OpenSSL): the errno of the failure, 0 for the peer's EOF, -1 for data or nothing yet. */
static int conn_peek_error(int fd)
{
    char b;
    ssize_t r = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0)
        return 0;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return errno;
    return -1;
}

static const char *conn_stage(const kf__conn *c)
{
    switch (c->state) {
    case KF__CONN_CONNECTING:
        return "during the TCP connect";
    case KF__CONN_TLS:
        return "during TLS handshake";
    case KF__CONN_UPGRADING:
        return "during the WebSocket upgrade";
    case KF__CONN_OPEN:
        return "while open";
    case KF__CONN_CLOSING:
        return "while closing";
    default:
        return "";
    }
}

/* Ends the connection after socket error err_no, e.g. "connection reset during the WebSocket
 * upgrade: Connection reset by peer": the stage tells the user how far it got, the errno
 * what the network did. EPROTO from a TLS session names OpenSSL's reason instead, as the
 * errno says nothing there. */
static void conn_fail_errno(kf__conn *c, int err_no)
{
    const char *stage = conn_stage(c);
    if (err_no == ECONNRESET) {
        conn_finish(c, KF_ERR_CONNECT, "connection reset %s: %s", stage, strerror(err_no));
    } else if (err_no == EPROTO && c->ssl && ERR_peek_error()) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        ERR_clear_error();
        conn_finish(c, KF_ERR_CONNECT, "TLS error %s: %s", stage, buf);
    } else {
        conn_finish(c, KF_ERR_CONNECT, "connection failed %s: %s", stage, strerror(err_no));
    }
}

/* ---- raw I/O: >0 bytes, 0 EOF, -1 would block, -2 error (c->why set by caller) ---- */

static long conn_read(kf__conn *c, void *buf, size_t n, int *err_no)
{
    *err_no = 0;
    if (!c->ssl) {
        ssize_t r = recv(c->fd, buf, n, 0);
        if (r >= 0)
            return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return -1;
        *err_no = errno;
        return -2;
    }
    /* SSL_get_error needs an empty error queue, and SSL_ERROR_SYSCALL leaves errno alone on
     * EOF: a stale errno (EAGAIN of an earlier read) would be reported as the cause. */
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return -1;
    case SSL_ERROR_WANT_WRITE:
        c->ssl_want_write = true;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        *err_no = errno;
        return errno ? -2 : 0;
    default:
        *err_no = EPROTO;
        return -2;
    }
}

static long conn_write(kf__conn *c, const void *buf, size_t n, int *err_no)
{
    *err_no = 0;
    if (!c->ssl) {
        ssize_t r = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return -1;
        *err_no = errno;
        return -2;
    }
    ERR_clear_error(); /* as in conn_read */
    errno = 0;
    int r = SSL_write(c->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_WRITE:
        return -1;
    case SSL_ERROR_WANT_READ:
        return -1;
    default:
        *err_no = errno ? errno : EPROTO;
        return -2;
    }
}

static void conn_on_poll(uv_poll_t *p, int status, int events);

static void conn_set_events(kf__conn *c)
{
    if (!c->poll)
        return;
    int ev = UV_READABLE;
    if (c->state == KF__CONN_CONNECTING || c->olen > c->ooff || c->ssl_want_write)
        ev |= UV_WRITABLE;
    if (ev != c->poll_events) {
        c->poll_events = ev;
        uv_poll_start(c->poll, ev, conn_on_poll);
    }
}

/* Writes what is queued; false when the connection failed. */
static bool conn_flush(kf__conn *c)
{
    c->ssl_want_write = false;
    while (c->ooff < c->olen) {
        int e;
        long n = conn_write(c, c->obuf + c->ooff, c->olen - c->ooff, &e);
        if (n > 0) {
            c->ooff += (size_t)n;
            continue;
        }
        if (n == -1)
            break;
        conn_fail_errno(c, e);
        return false;
    }
    if (c->ooff == c->olen)
        c->ooff = c->olen = 0;
    conn_set_events(c);
    return true;
}

static bool conn_queue(kf__conn *c, const void *data, size_t len)
{
    if (c->ooff && c->olen + len > CONN_OBUF) {
        memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
        c->olen -= c->ooff;
        c->ooff = 0;
    }
    if (c->olen + len > CONN_OBUF)
        return false;
    memcpy(c->obuf + c->olen, data, len);
    c->olen += len;
    return true;
}

static kf_err conn_send_frame(kf__conn *c, uint8_t opcode, const void *payload, size_t len)
{
    if (c->ooff && c->olen + len + KF__WS_MAX_HEADER > CONN_OBUF) {
        memmove(c->obuf, c->obuf + c->ooff, c->olen - c->ooff);
        c->olen -= c->ooff;
        c->ooff = 0;
    }
    /* xorshift64 stream seeded from RAND_bytes at connect: masking keys for our few frames. */
    uint64_t x = c->mask_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->mask_state = x;
    uint8_t mask[4] = {(uint8_t)x, (uint8_t)(x >> 8), (uint8_t)(x >> 16), (uint8_t)(x >> 24)};
    size_t n = kf__ws_encode(c->obuf + c->olen, CONN_OBUF - c->olen, opcode, payload, len, mask);
    if (!n)
        return KF_ERR_IO;
    c->olen += n;
    return conn_flush(c) ? KF_OK : KF_ERR_CONNECT;
}

kf_err kf__conn_send_text(kf__conn *c, const char *data, size_t len)
{
    if (c->state != KF__CONN_OPEN)
        return KF_ERR_NOT_RUNNING;
    return conn_send_frame(c, KF__WS_OP_TEXT, data, len);
}

kf_err kf__conn_ping(kf__conn *c, const void *payload, size_t len)
{
    if (c->state != KF__CONN_OPEN || len > 125)
        return KF_ERR_NOT_RUNNING;
    return conn_send_frame(c, KF__WS_OP_PING, payload, len);
}

/* ---- close ---- */

static void conn_on_close_timeout(uv_timer_t *t)
{
    kf__conn *c = t->data;
    conn_finish(c, KF_OK, "closed (no close reply within %d ms)", CONN_CLOSE_WAIT_MS);
}

void kf__conn_close(kf__conn *c, uint16_t code, const char *reason)
{
    if (c->state == KF__CONN_CLOSED || c->state == KF__CONN_CLOSING)
        return;
    if (c->state != KF__CONN_OPEN) {
        conn_finish(c, KF_OK, "closed before the connection was open");
        return;
    }
    uint8_t payload[125];
    size_t rl = reason ? strlen(reason) : 0;
    if (rl > sizeof payload - 2)
        rl = sizeof payload - 2;
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    if (rl)
        memcpy(payload + 2, reason, rl);
    c->state = KF__CONN_CLOSING;
    uv_timer_start(&c->timer, conn_on_close_timeout, CONN_CLOSE_WAIT_MS, 0);
    conn_send_frame(c, KF__WS_OP_CLOSE, payload, rl + 2);
}

void kf__conn_abort(kf__conn *c, kf_err err, const char *why)
{
    conn_finish(c, err, "%s", why);
}

uint64_t kf__conn_last_rx(const kf__conn *c)
{
    return c->last_rx;
}

bool kf__conn_rx_pending(const kf__conn *c)
{
    if (c->toff < c->tlen || (c->ssl && SSL_has_pending(c->ssl)))
        return true;
    int n = 0;
    return c->fd >= 0 && ioctl(c->fd, FIONREAD, &n) == 0 && n > 0;
}
bool kf__conn_peer_closed(const kf__conn *c)
{
    return c->peer_closed;
}

void kf__conn_destroy(kf__conn *c)
{
    if (!c)
        return;
    c->destroyed = true;
    c->state = KF__CONN_CLOSED;
    conn_drop_socket(c);
    if (c->gai_active)
        uv_cancel((uv_req_t *)&c->gai);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    uv_close((uv_handle_t *)&c->drain, conn_handle_closed);
}

/* ---- messages ---- */

static void conn_process(kf__conn *c)
{
    size_t off = 0;
    while (c->state == KF__CONN_OPEN || c->state == KF__CONN_CLOSING) {
        size_t consumed = 0;
        kf__ws_msg m;
        const char *why = NULL;
        uint16_t code = 1002;
        kf__ws_result r = kf__ws_reader_next(&c->reader, c->rbuf + off, c->rlen - off, &consumed,
                                             &m, &why, &code);
        off += consumed;
        if (r == KF__WS_NEED_MORE)
            break;
        if (r == KF__WS_ERROR) {
            uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
            if (c->state == KF__CONN_OPEN)
                conn_send_frame(c, KF__WS_OP_CLOSE, p, 2);
            conn_finish(c, KF_ERR_PROTOCOL, "WebSocket protocol error (%u): %s", code,
                        why ? why : "?");
            return;
        }
        c->stats.frames_in++;
        switch (m.type) {
        case KF__WS_MSG_TEXT:
            if (c->state == KF__CONN_OPEN)
                c->h.on_text(c->ud, c, (const char *)m.data, m.len);
            break;
        case KF__WS_MSG_BINARY:
            kf__log(c->log, KF_LOG_DEBUG, "msg=\"binary message ignored\" url=%s bytes=%zu",
                    c->full_url, m.len);
            break;
        case KF__WS_MSG_PING:
            c->stats.pings++;
            if (c->pings_counter)
                atomic_store_explicit(c->pings_counter,
                                      atomic_load_explicit(c->pings_counter, memory_order_relaxed) +
                                          1,
                                      memory_order_relaxed);
            if (c->state == KF__CONN_OPEN)
                conn_send_frame(c, KF__WS_OP_PONG, m.data, m.len);
            break;
        case KF__WS_MSG_PONG:
            c->stats.pongs++;
            break;
        case KF__WS_MSG_CLOSE:
            if (c->state == KF__CONN_CLOSING) {
                conn_finish(c, KF_OK, "closed");
                return;
            } else {
                c->peer_closed = true;
                uint8_t p[2] = {(uint8_t)(m.close_code >> 8), (uint8_t)m.close_code};
                size_t rl = m.len > 2 ? m.len - 2 : 0;
                char reason[128];
                snprintf(reason, sizeof reason, "%.*s", (int)(rl > 120 ? 120 : rl),
                         rl ? (const char *)m.data + 2 : "");
                conn_send_frame(c, KF__WS_OP_CLOSE, p, m.close_code == 1005 ? 0 : 2);
                conn_finish(c, KF_ERR_CONNECT, "server closed the connection: code %u%s%s",
                            m.close_code, rl ? " " : "", reason);
                return;
            }
        }
    }
    if (off >= c->rlen) {
        c->rlen = 0;
    } else if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
}

static void conn_on_drain(uv_idle_t *h);

static void conn_read_messages(kf__conn *c)
{
    int i;
    for (i = 0; i < CONN_READS_PER_EVENT; i++) {
        if (c->state != KF__CONN_OPEN && c->state != KF__CONN_CLOSING)
            return;
        if (c->rlen == c->rcap) {
            conn_finish(c, KF_ERR_PROTOCOL, "read buffer full (message over the limit)");
            return;
        }
        int e;
        long n = conn_read(c, c->rbuf + c->rlen, c->rcap - c->rlen, &e);
        if (n == -1)
            break;
        if (n == 0) {
            if (c->state == KF__CONN_CLOSING)
                conn_finish(c, KF_OK, "closed");
            else
                conn_finish(c, KF_ERR_CONNECT,
                            "connection closed by the server without a close frame");
            return;
        }
        if (n < 0) {
            conn_fail_errno(c, e);
            return;
        }
        c->rlen += (size_t)n;
        c->stats.bytes_in += (uint64_t)n;
        c->last_rx = uv_now(c->loop);
        conn_process(c);
    }
    if (c->ssl_want_write)
        conn_set_events(c);
    /* Stopped by the cap, not by an empty socket: records already received (tbuf, or inside
     * OpenSSL) are invisible to poll. The next turn of the loop goes on with them (other
     * connections first); a partial record there makes SSL_read wait for the socket, which
     * wakes us. */
    if (i == CONN_READS_PER_EVENT && c->ssl && (c->toff < c->tlen || SSL_has_pending(c->ssl)))
        uv_idle_start(&c->drain, conn_on_drain);
}

static void conn_on_drain(uv_idle_t *h)
{
    kf__conn *c = h->data;
    uv_idle_stop(h);
    if (c->state == KF__CONN_OPEN || c->state == KF__CONN_CLOSING)
        conn_read_messages(c);
}

/* ---- connect, TLS, upgrade ---- */

static void conn_send_upgrade(kf__conn *c)
{
    char req[2048];
    kf__ws_make_key(c->key);
    size_t n = kf__ws_request(req, sizeof req, c->url.host_header, c->path, c->key);
    c->state = KF__CONN_UPGRADING;
    if (!n || !conn_queue(c, req, n)) {
        conn_finish(c, KF_ERR_CONFIG, "upgrade request too long");
        return;
    }
    conn_flush(c);
}

static void conn_read_upgrade(kf__conn *c)
{
    for (;;) {
        int e;
        if (c->rlen == c->rcap) {
            conn_finish(c, KF_ERR_HANDSHAKE, "upgrade response too long");
            return;
        }
        long n = conn_read(c, c->rbuf + c->rlen, c->rcap - c->rlen, &e);
        if (n == -1)
            return;
        if (n == 0) {
            conn_finish(c, KF_ERR_HANDSHAKE, "connection closed during the WebSocket upgrade");
            return;
        }
        if (n < 0) {
            conn_fail_errno(c, e);
            return;
        }
        c->rlen += (size_t)n;
        int status = 0;
        size_t hdr = 0;
        char why[256];
        kf__ws_result r = kf__ws_response_check((const char *)c->rbuf, c->rlen, c->key, &status,
                                                &hdr, why, sizeof why);
        if (r == KF__WS_NEED_MORE)
            continue;
        if (r == KF__WS_ERROR) {
            conn_finish(c, KF_ERR_HANDSHAKE, "WebSocket upgrade refused: %s", why);
            return;
        }
        memmove(c->rbuf, c->rbuf + hdr, c->rlen - hdr);
        c->rlen -= hdr;
        c->state = KF__CONN_OPEN;
        uv_timer_stop(&c->timer);
        c->h.on_open(c->ud, c);
        if (c->rlen)
            conn_process(c);
        conn_read_messages(c);
        return;
    }
}

static void conn_tls_step(kf__conn *c)
{
    ERR_clear_error();
    errno = 0; /* ssl_error_text reads it: not a stale EINPROGRESS of connect() */
    int r = SSL_connect(c->ssl);
    if (r == 1) {
        conn_send_upgrade(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        c->ssl_want_write = false;
        conn_set_events(c);
        return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        c->ssl_want_write = true;
        conn_set_events(c);
        return;
    }
    char buf[256];
    conn_finish(c, KF_ERR_TLS, "TLS handshake with %s failed: %s", c->url.host,
                ssl_error_text(c, buf, sizeof buf));
}

/* An IPv4 or IPv6 literal (the URL's host, brackets removed), not a name. */
static bool conn_host_is_ip(const char *host)
{
    unsigned char a[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, a) == 1 || inet_pton(AF_INET6, host, a) == 1;
}

/*
 * The read side of a TLS session: OpenSSL asks for each record in two small reads (its 5-byte
 * header, then its body), two recv() calls per record of at most 16 KiB if it read from the
 * socket. This BIO serves them from tbuf, which one recv() fills with up to
 * CONN_TLS_READ_AHEAD bytes: on a busy stream, half the kernel time per message (and the TCP
 * window updates it sends). OpenSSL's own read-ahead (SSL_set_read_ahead) does the same but
 * moves what is left of its buffer to the front for every record: with a buffer this large
 * that memmove cost more than the recv() calls saved. Writes go to the socket through
 * OpenSSL's socket BIO.
 */
static int conn_bio_read(BIO *b, char *out, int outl)
{
    kf__conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (outl <= 0)
        return 0;
    if (c->toff == c->tlen) {
        c->toff = c->tlen = 0;
        ssize_t r = recv(c->fd, c->tbuf, CONN_TLS_READ_AHEAD, 0);
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                BIO_set_retry_read(b);
            return -1; /* errno says why, as from OpenSSL's socket BIO */
        }
        if (r == 0) {
            c->teof = true;
            return 0;
        }
        c->tlen = (size_t)r;
    }
    size_t n = c->tlen - c->toff < (size_t)outl ? c->tlen - c->toff : (size_t)outl;
    memcpy(out, c->tbuf + c->toff, n);
    c->toff += n;
    return (int)n;
}

static long conn_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    kf__conn *c = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_EOF: /* as the socket BIO: OpenSSL tells an EOF from an error by it */
        return c && c->teof && c->toff == c->tlen;
    case BIO_CTRL_FLUSH:
        return 1;
    default:
        return 0;
    }
}

static BIO_METHOD *conn_bio_method;
static pthread_once_t conn_bio_once = PTHREAD_ONCE_INIT;

static void conn_bio_init(void) /* once per process, kept to its end */
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "klinefeed tls read");
    if (m && BIO_meth_set_read(m, conn_bio_read) && BIO_meth_set_ctrl(m, conn_bio_ctrl))
        conn_bio_method = m;
    else
        BIO_meth_free(m);
}

/* The session's BIOs: reads from tbuf (conn_bio_read), writes to the socket. */
static bool conn_tls_bios(kf__conn *c)
{
    pthread_once(&conn_bio_once, conn_bio_init);
    if (!c->tbuf && !(c->tbuf = kf__malloc(CONN_TLS_READ_AHEAD)))
        return false;
    c->toff = c->tlen = 0;
    c->teof = false;
    BIO *rb = conn_bio_method ? BIO_new(conn_bio_method) : NULL;
    BIO *wb = BIO_new_socket(c->fd, BIO_NOCLOSE);
    if (!rb || !wb) {
        BIO_free(rb);
        BIO_free(wb);
        return false;
    }
    BIO_set_data(rb, c);
    BIO_set_init(rb, 1);
    SSL_set_bio(c->ssl, rb, wb); /* the session owns both */
    return true;
}

static void conn_start_tls(kf__conn *c)
{
    c->state = KF__CONN_TLS;
    c->ssl = c->ssl_ctx ? SSL_new(c->ssl_ctx) : NULL;
    if (!c->ssl) {
        conn_finish(c, KF_ERR_TLS, "cannot create a TLS session");
        return;
    }
    if (!conn_tls_bios(c)) {
        conn_finish(c, KF_ERR_TLS, "cannot create a TLS session (out of memory)");
        return;
    }
    SSL_set_mode(c->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* SNI names a host; "Literal IPv4 and IPv6 addresses are not permitted" (RFC 6066, 3),
     * and libcurl (REST) sends none for them either. The certificate is checked against the
     * address all the same (SSL_set1_host takes both). */
    if (!conn_host_is_ip(c->url.host))
        SSL_set_tlsext_host_name(c->ssl, c->url.host);
    if (SSL_CTX_get_verify_mode(c->ssl_ctx) & SSL_VERIFY_PEER) {
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (!SSL_set1_host(c->ssl, c->url.host)) {
            conn_finish(c, KF_ERR_TLS, "cannot set the host name to verify");
            return;
        }
    }
    conn_tls_step(c);
}

static void conn_try_connect(kf__conn *c);

static void conn_connected(kf__conn *c)
{
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->url.tls)
        conn_start_tls(c);
    else
        conn_send_upgrade(c);
}

/* The TCP connect failed with err: the next address, or the report. */
static void conn_connect_failed(kf__conn *c, int err)
{
    if (c->ai_next) {
        conn_drop_socket(c);
        conn_try_connect(c);
        return;
    }
    conn_finish(c, KF_ERR_CONNECT, "connect to %s port %d failed: %s", c->url.host, c->url.port,
                strerror(err));
}

/*
 * libuv reports POLLERR on the socket as status UV_EBADF whatever happened (a reset, a
 * refused or timed-out connect), and stops the handle: "bad file descriptor" names nothing,
 * so the cause is asked of the socket itself. The connection cannot go on either way.
 */
static void conn_poll_failed(kf__conn *c, int status)
{
    int err = conn_pending_error(c->fd);
    if (!err)
        err = conn_peek_error(c->fd);
    if (c->state == KF__CONN_CONNECTING) {
        /* a connect that reports an error without naming one: refused, as before */
        conn_connect_failed(c, err > 0 ? err : ECONNREFUSED);
    } else if (err > 0) {
        conn_fail_errno(c, err);
    } else if (err == 0) {
        conn_finish(c, KF_ERR_CONNECT, "connection closed by the server %s", conn_stage(c));
    } else {
        conn_finish(c, KF_ERR_CONNECT, "socket error %s (poll: %s, no error on the socket)",
                    conn_stage(c), uv_strerror(status));
    }
}

static void conn_on_poll(uv_poll_t *p, int status, int events)
{
    kf__conn *c = p->data;
    if (c->state == KF__CONN_CLOSED)
        return;
    if (status < 0) {
        conn_poll_failed(c, status);
        return;
    }
    switch (c->state) {
    case KF__CONN_CONNECTING: {
        int err = conn_pending_error(c->fd);
        if (err) {
            conn_connect_failed(c, err);
            return;
        }
        conn_connected(c);
        return;
    }
    case KF__CONN_TLS:
        conn_tls_step(c);
        return;
    case KF__CONN_UPGRADING:
        if ((events & UV_WRITABLE) && !conn_flush(c))
            return;
        if (events & UV_READABLE)
            conn_read_upgrade(c);
        return;
    case KF__CONN_OPEN:
    case KF__CONN_CLOSING:
        if ((events & UV_WRITABLE) && !conn_flush(c))
            return;
        if (events & UV_READABLE)
            conn_read_messages(c);
        return;
    default:
        return;
    }
}

static void conn_try_connect(kf__conn *c)
{
    int last_err = 0;
    while (c->ai_next) {
        struct addrinfo *a = c->ai_next;
        c->ai_next = a->ai_next;
        int fd =
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            last_err = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            last_err = errno;
            close(fd);
            continue;
        }
        c->fd = fd;
        c->poll = kf__malloc(sizeof *c->poll);
        if (!c->poll || uv_poll_init_socket(c->loop, c->poll, fd) != 0) {
            kf__free(c->poll);
            c->poll = NULL;
            conn_finish(c, KF_ERR_CONNECT, "cannot poll the socket");
            return;
        }
        c->poll->data = c;
        c->handles++;
        c->state = KF__CONN_CONNECTING;
        conn_set_events(c);
        return;
    }
    conn_finish(c, KF_ERR_CONNECT, "connect to %s port %d failed: %s", c->url.host, c->url.port,
                strerror(last_err ? last_err : ECONNREFUSED));
}

static void conn_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    kf__conn *c = req->data;
    c->gai_active = false;
    if (c->destroyed) {
        if (res)
            uv_freeaddrinfo(res);
        conn_maybe_free(c);
        return;
    }
    if (status < 0) {
        conn_finish(c, KF_ERR_DNS, "cannot resolve host \"%s\": %s", c->url.host,
                    uv_strerror(status));
        return;
    }
    c->ai = res;
    c->ai_next = res;
    conn_try_connect(c);
}

static void conn_on_connect_timeout(uv_timer_t *t)
{
    kf__conn *c = t->data;
    static const char *const phase[] = {"idle",    "DNS resolution", "TCP connect", "TLS handshake",
                                        "upgrade", "open",           "closing",     "closed"};
    conn_finish(c, KF_ERR_TIMEOUT, "no WebSocket connection within %u ms (stuck in %s)",
                c->timeout_ms, phase[c->state]);
}

kf_err kf__conn_open(kf__conn *c)
{
    if (c->state != KF__CONN_IDLE)
        return KF_ERR_ALREADY_RUNNING;
    if (RAND_bytes((unsigned char *)&c->mask_state, sizeof c->mask_state) != 1 || !c->mask_state)
        c->mask_state = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)c;
    c->state = KF__CONN_RESOLVING;
    c->last_rx = uv_now(c->loop);
    uv_timer_start(&c->timer, conn_on_connect_timeout, c->timeout_ms, 0);
    char port[8];
    snprintf(port, sizeof port, "%d", c->url.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    c->gai.data = c;
    int r = uv_getaddrinfo(c->loop, &c->gai, conn_on_resolved, c->url.host, port, &hints);
    if (r < 0) {
        conn_finish(c, KF_ERR_DNS, "cannot resolve host \"%s\": %s", c->url.host, uv_strerror(r));
        return KF_ERR_DNS;
    }
    c->gai_active = true;
    return KF_OK;
}
