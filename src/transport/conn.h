/*
 * One WebSocket client connection driven by a libuv loop: resolve, TCP
 * connect, TLS (OpenSSL: SNI, host name verification, system CAs), HTTP
 * upgrade, then RFC 6455 messages over one large read buffer. Text messages
 * are handed to the owner as pointers into that buffer (no copy, no
 * allocation per message). Pings are answered here; the close handshake is
 * done here. Knows nothing about Binance: the owner (the collector's shard)
 * decides what to send and what messages mean.
 *
 * Thread: every function runs on the loop's thread, except kf__url_parse.
 */
#ifndef KF_TRANSPORT_CONN_H
#define KF_TRANSPORT_CONN_H
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/log.h"
#include "klinefeed.h"
#include "transport/ws.h"

typedef struct kf__url {
    bool tls;
    char host[256];
    int port;
    char path[1024];       /* base path without trailing '/', may be "" */
    char host_header[300]; /* host, or host:port when not the default */
} kf__url;

/* Parses ws://, wss://, http://, https:// URLs with optional port and path. Error text in err. */
kf_err kf__url_parse(const char *url, kf__url *out, char *err, size_t errlen);

typedef enum kf__conn_state {
    KF__CONN_IDLE = 0,
    KF__CONN_RESOLVING,
    KF__CONN_CONNECTING,
    KF__CONN_TLS,
    KF__CONN_UPGRADING,
    KF__CONN_OPEN,
    KF__CONN_CLOSING,
    KF__CONN_CLOSED,
} kf__conn_state;

typedef struct kf__conn kf__conn;

typedef struct kf__conn_handler {
    /* The upgrade was accepted: messages may be sent. */
    void (*on_open)(void *ud, kf__conn *c);
    /* One complete text message; data points into the read buffer, valid during the call. */
    void (*on_text)(void *ud, kf__conn *c, const char *data, size_t len);
    /* The connection is over (once per open): err KF_OK after a close we asked for, else the
     * cause (KF_ERR_DNS, _CONNECT, _TLS, _HANDSHAKE, _TIMEOUT, _PROTOCOL) and why names it. */
    void (*on_closed)(void *ud, kf__conn *c, kf_err err, const char *why);
} kf__conn_handler;

typedef struct kf__conn_opts {
    const kf__url *url; /* copied */
    const char *path;   /* request path, e.g. "/market/ws" (copied) */
    SSL_CTX *ssl_ctx;   /* required for wss, borrowed */
    size_t max_message;
    unsigned connect_timeout_ms;
    kf__logger *log;
    _Atomic uint64_t *pings; /* optional: incremented (by this thread only) per server ping */
} kf__conn_opts;

typedef struct kf__conn_stats {
    uint64_t bytes_in, frames_in, pings, pongs;
} kf__conn_stats;

/* Allocates a connection and its buffers. NULL when out of memory. */
kf__conn *kf__conn_new(uv_loop_t *loop, const kf__conn_opts *o, const kf__conn_handler *h,
                       void *ud);
/* Starts connecting (asynchronous). */
kf_err kf__conn_open(kf__conn *c);
/* Queues one text message (masked frame). KF_ERR_NOT_RUNNING when not open, KF_ERR_IO when the
 * output buffer is full. */
kf_err kf__conn_send_text(kf__conn *c, const char *data, size_t len);
/* Sends a ping with payload (our own liveness probe). */
kf_err kf__conn_ping(kf__conn *c, const void *payload, size_t len);
/* Starts the close handshake (or aborts a connection not yet open); on_closed follows. */
void kf__conn_close(kf__conn *c, uint16_t code, const char *reason);
/* Ends the connection at once, without a close handshake (a dead peer), reporting err and why
 * through on_closed. */
void kf__conn_abort(kf__conn *c, kf_err err, const char *why);
/* The server sent a close frame (the connection ended by the server's choice). */
bool kf__conn_peer_closed(const kf__conn *c);
/* Loop time (uv_now, ms) of the last bytes received; of kf__conn_open() before any. */
uint64_t kf__conn_last_rx(const kf__conn *c);
/* Bytes received and not yet read by us: in the socket, or TLS records already taken from it.
 * A liveness check asks this before declaring the peer dead: after a stall of this process
 * (a VM pause, SIGSTOP, a starved host) the loop's timers run before its reads. */
bool kf__conn_rx_pending(const kf__conn *c);
/* Releases the connection; its libuv handles are closed asynchronously, so keep the loop
 * running until they are (uv_run drains them). Callbacks are not called any more. */
void kf__conn_destroy(kf__conn *c);

kf__conn_state kf__conn_get_state(const kf__conn *c);
const kf__conn_stats *kf__conn_get_stats(const kf__conn *c);
/* "ws://127.0.0.1:9000/market/ws", for messages. */
const char *kf__conn_url(const kf__conn *c);

#endif
