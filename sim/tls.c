/* tls.c - the transport of klinefeed-sim's connections: plain TCP, or TLS on the same port when
 * --tls-cert and --tls-key are given (then every connection, WebSocket, REST and /sim/...,
 * speaks TLS; nothing plain is accepted on that port).
 *
 * Why OpenSSL on the socket itself (SSL_set_fd) and not memory BIOs: the simulator's loop
 * already owns non-blocking sockets and works in "read everything / write everything until
 * the kernel says wait" passes. SSL_read and SSL_write on a non-blocking fd are exactly that,
 * with SSL_ERROR_WANT_READ / SSL_ERROR_WANT_WRITE in place of EAGAIN: sim_io_read and
 * sim_io_write below return the same four outcomes for both transports, and say which
 * readiness (POLLIN or POLLOUT) to wait for. The flood thread writes its frames through the
 * same call on the SSL of its connection, which the poll loop leaves alone meanwhile, so one
 * thread at a time uses each SSL. Memory BIOs would add a copy of every byte and a second
 * buffer per direction, for nothing this loop needs.
 *
 * The faults keep their meaning under TLS: a reset is still SO_LINGER {1,0} + close() (an RST
 * with no close_notify, no close frame), a stall still sends nothing, and garbage frames are
 * WebSocket frames, encrypted like every other frame as a real exchange would send them. A
 * graceful close (a close frame flushed, an HTTP reply with "Connection: close") ends with a
 * close_notify. TLS 1.2 and 1.3, no renegotiation.
 */
#include "sim.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static SSL_CTX *g_ctx;

/* the first queued OpenSSL error as text ("" when none); clears the queue */
static const char *tls_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    buf[0] = 0;
    if (e)
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}

bool tls_setup(const char *cert, const char *key)
{
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        fprintf(stderr, "klinefeed-sim: cannot create a TLS context: %s\n",
                tls_reason(why, sizeof why));
        return false;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* A peer that closes without a close_notify (klinefeed does, after the WebSocket close
     * handshake; so do resets) is at its end of stream, as over plain TCP: not an error */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* SSL_write returns after each record it could send and may be called again with the
     * rest from another address (the write buffer moves as it grows) */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        fprintf(stderr, "klinefeed-sim: --tls-cert %s: %s\n", cert, tls_reason(why, sizeof why));
        SSL_CTX_free(ctx);
        return false;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        fprintf(stderr, "klinefeed-sim: --tls-key %s: %s\n", key, tls_reason(why, sizeof why));
        SSL_CTX_free(ctx);
        return false;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        fprintf(stderr, "klinefeed-sim: --tls-key %s does not match --tls-cert %s: %s\n", key, cert,
                tls_reason(why, sizeof why));
        SSL_CTX_free(ctx);
        return false;
    }
    g_ctx = ctx;
    return true;
}

bool tls_enabled(void)
{
    return g_ctx != NULL;
}

void tls_cleanup(void)
{
    SSL_CTX_free(g_ctx);
    g_ctx = NULL;
}

bool tls_attach(sim_conn *c)
{
    SSL *ssl = SSL_new(g_ctx);
    if (!ssl || SSL_set_fd(ssl, c->fd) != 1) {
        char why[256];
        fprintf(stderr, "klinefeed-sim: connection %llu: cannot create a TLS session: %s\n",
                (unsigned long long)c->id, tls_reason(why, sizeof why));
        SSL_free(ssl);
        return false;
    }
    SSL_set_accept_state(ssl);
    c->ssl = ssl;
    return true;
}

void tls_detach(sim_conn *c)
{
    SSL_free(c->ssl); /* sends nothing: see tls_close_notify */
    c->ssl = NULL;
}

/* What SSL_get_error says about r, as a sim_io result. */
static long tls_outcome(SSL *ssl, int r, short *want, bool reading)
{
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        *want = POLLIN;
        return SIM_IO_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = POLLOUT;
        return SIM_IO_AGAIN;
    case SSL_ERROR_ZERO_RETURN: /* close_notify */
        return reading ? 0 : SIM_IO_ERR;
    case SSL_ERROR_SYSCALL: /* errno 0: EOF without close_notify */
        if (errno == EINTR)
            return SIM_IO_AGAIN;
        ERR_clear_error();
        return reading && errno == 0 ? 0 : SIM_IO_ERR;
    default: /* SSL_ERROR_SSL: a protocol error (its reason stays queued for the caller) */
        return SIM_IO_ERR;
    }
}

long sim_io_read(struct ssl_st *ssl, int fd, void *buf, size_t n, short *want)
{
    *want = POLLIN;
    if (!ssl) {
        for (;;) {
            ssize_t r = recv(fd, buf, n, 0);
            if (r >= 0)
                return (long)r;
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? SIM_IO_AGAIN : SIM_IO_ERR;
        }
    }
    /* SSL_get_error needs an empty error queue, and errno tells EOF from an error */
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    return tls_outcome(ssl, r, want, true);
}

long sim_io_write(struct ssl_st *ssl, int fd, const void *buf, size_t n, short *want)
{
    *want = POLLOUT;
    if (!ssl) {
        for (;;) {
            ssize_t r = send(fd, buf, n, MSG_NOSIGNAL);
            if (r >= 0)
                return (long)r;
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? SIM_IO_AGAIN : SIM_IO_ERR;
        }
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_write(ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    long o = tls_outcome(ssl, r, want, false);
    ERR_clear_error();
    return o;
}

bool tls_handshake(sim_conn *c)
{
    c->tls_want_out = false;
    if (SSL_is_init_finished(c->ssl))
        return true;
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1)
        return true;
    short want = 0;
    if (tls_outcome(c->ssl, r, &want, true) == SIM_IO_AGAIN) {
        c->tls_want_out = want == POLLOUT;
        return false;
    }
    /* a client that refuses our certificate says so with an alert: logged with its reason */
    char why[256];
    tls_reason(why, sizeof why);
    fprintf(stderr, "klinefeed-sim: connection %llu: TLS handshake failed: %s\n",
            (unsigned long long)c->id,
            why[0] ? why : (errno ? strerror(errno) : "connection closed"));
    c->dead = true;
    return false;
}

void tls_log_error(const sim_conn *c)
{
    char why[256];
    if (tls_reason(why, sizeof why)[0])
        fprintf(stderr, "klinefeed-sim: connection %llu: TLS error: %s\n",
                (unsigned long long)c->id, why);
}

void tls_close_notify(sim_conn *c)
{
    if (!c->ssl || !SSL_is_init_finished(c->ssl))
        return;
    /* one non-blocking attempt: the socket is closed next whatever it says */
    ERR_clear_error();
    SSL_shutdown(c->ssl);
    ERR_clear_error();
}
