/* raw_ws.c - raw loopback TCP/HTTP and the minimal WebSocket client of the simulator tests. */
#include "raw_ws.h"
#include "transport/ws.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kftest.h"

/* kft_tcp_connect: in sim_proc.c (unit tests that start the simulator link it alone) */

int kft_tcp_listen(int backlog, int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        (backlog > 0 && listen(fd, backlog) != 0) ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* raw HTTP exchange on a fresh connection: full response (head + body) into out */
int kft_http_raw(int port, const char *req, char *out, size_t cap)
{
    int fd = kft_tcp_connect(port);
    if (fd < 0)
        return -1;
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
        close(fd);
        return -1;
    }
    size_t len = 0;
    long long deadline = kft_now_ms() + 10000;
    while (len + 1 < cap) {
        struct pollfd pf = {fd, POLLIN, 0};
        long long left = deadline - kft_now_ms();
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t r = recv(fd, out + len, cap - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    out[len] = 0;
    close(fd);
    int status = -1;
    if (sscanf(out, "HTTP/1.1 %d", &status) != 1)
        return -1;
    return status;
}

/* GET with headers kept; returns status */
int kft_http_get_full(int port, const char *path, char *out, size_t cap)
{
    char req[1024];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    return kft_http_raw(port, req, out, cap);
}

long kft_http_header_long(const char *resp, const char *name)
{
    const char *p = strcasestr(resp, name);
    if (!p)
        return -1;
    p += strlen(name);
    while (*p == ':' || *p == ' ')
        p++;
    return atol(p);
}

kft_ws *kft_ws_open(int port, const char *path)
{
    int fd = kft_tcp_connect(port);
    if (fd < 0)
        return NULL;
    char req[2048];
    snprintf(req, sizeof req,
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
             "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n\r\n",
             path);
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
        close(fd);
        return NULL;
    }
    kft_ws *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->cap = 1 << 20;
    c->buf = malloc(c->cap);
    long long deadline = kft_now_ms() + 5000;
    char *end = NULL;
    while (!end) {
        struct pollfd pf = {fd, POLLIN, 0};
        long long left = deadline - kft_now_ms();
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0)
            break;
        ssize_t r = recv(fd, c->buf + c->len, c->cap - 1 - c->len, 0);
        if (r <= 0)
            break;
        c->len += (size_t)r;
        c->buf[c->len] = 0;
        end = strstr((char *)c->buf, "\r\n\r\n");
    }
    if (!end || strncmp((char *)c->buf, "HTTP/1.1 101", 12) != 0 ||
        !strstr((char *)c->buf, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) {
        fprintf(stderr, "handshake failed: %s\n", c->buf);
        close(fd);
        free(c->buf);
        free(c);
        return NULL;
    }
    size_t hl = (size_t)(end - (char *)c->buf) + 4;
    memmove(c->buf, c->buf + hl, c->len - hl);
    c->len -= hl;
    return c;
}

void kft_ws_free(kft_ws *c)
{
    if (!c)
        return;
    close(c->fd);
    free(c->buf);
    free(c);
}

int kft_ws_send(kft_ws *c, int op, bool fin, const void *p, size_t n)
{
    unsigned char *f = malloc(n + 14);
    size_t hl;
    f[0] = (unsigned char)((fin ? 0x80 : 0) | op);
    if (n < 126) {
        f[1] = (unsigned char)(0x80 | n);
        hl = 2;
    } else if (n < 65536) {
        f[1] = 0x80 | 126;
        f[2] = (unsigned char)(n >> 8);
        f[3] = (unsigned char)n;
        hl = 4;
    } else {
        f[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            f[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    unsigned m = 0x9a3b7c11u * ++c->seq;
    unsigned char mask[4] = {(unsigned char)m, (unsigned char)(m >> 8), (unsigned char)(m >> 16),
                             (unsigned char)(m >> 24)};
    memcpy(f + hl, mask, 4);
    for (size_t i = 0; i < n; i++)
        f[hl + 4 + i] = ((const unsigned char *)p)[i] ^ mask[i & 3];
    ssize_t w = send(c->fd, f, hl + 4 + n, MSG_NOSIGNAL);
    free(f);
    return w == (ssize_t)(hl + 4 + n) ? 0 : -1;
}

int kft_ws_text_send(kft_ws *c, const char *s)
{
    return kft_ws_send(c, 1, true, s, strlen(s));
}

/* next frame: 1 ok (payload malloc'd, NUL-terminated), 0 timeout, -1 closed */
int kft_ws_frame(kft_ws *c, int timeout_ms, int *op, char **pl, size_t *pn)
{
    long long deadline = kft_now_ms() + timeout_ms;
    for (;;) {
        if (c->len >= 2) {
            size_t hl = 2;
            uint64_t n = c->buf[1] & 0x7f;
            if (n == 126 && c->len >= 4) {
                n = ((uint64_t)c->buf[2] << 8) | c->buf[3];
                hl = 4;
            } else if (n == 127 && c->len >= 10) {
                n = 0;
                for (int i = 0; i < 8; i++)
                    n = (n << 8) | c->buf[2 + i];
                hl = 10;
            } else if (n >= 126) {
                hl = 100000000; /* need more header */
            }
            if (hl < 100000000 && c->len >= hl + n) {
                *op = c->buf[0] & 0x0f;
                *pl = malloc(n + 1);
                memcpy(*pl, c->buf + hl, n);
                (*pl)[n] = 0;
                *pn = n;
                memmove(c->buf, c->buf + hl + n, c->len - hl - n);
                c->len -= hl + n;
                return 1;
            }
            if (hl < 100000000 && hl + n > c->cap) {
                c->cap = hl + n + 1;
                c->buf = realloc(c->buf, c->cap);
            }
        }
        long long left = deadline - kft_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pf = {c->fd, POLLIN, 0};
        if (poll(&pf, 1, (int)left) <= 0)
            return 0;
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r <= 0) {
            c->rx_err = r == 0 ? 0 : errno;
            return -1;
        }
        c->len += (size_t)r;
    }
}

/* next text message (answers pings, records close); NULL on timeout or close */
char *kft_ws_text(kft_ws *c, int timeout_ms)
{
    long long deadline = kft_now_ms() + timeout_ms;
    for (;;) {
        int op;
        char *pl;
        size_t n;
        long long left = deadline - kft_now_ms();
        int rc = kft_ws_frame(c, left < 0 ? 0 : (int)left, &op, &pl, &n);
        if (rc <= 0)
            return NULL;
        if (op == 1)
            return pl;
        if (op == 9)
            kft_ws_send(c, 0xA, true, pl, n);
        if (op == 8) {
            c->close_code = n >= 2 ? ((unsigned char)pl[0] << 8 | (unsigned char)pl[1]) : 1005;
            snprintf(c->close_reason, sizeof c->close_reason, "%s", n > 2 ? pl + 2 : "");
            free(pl);
            return NULL;
        }
        free(pl);
    }
}

/* raw value of "key": in a JSON text (string contents without quotes) */
bool kft_json_field(const char *js, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(js, pat);
    if (!p)
        return false;
    p += strlen(pat);
    size_t n = 0;
    if (*p == '"') {
        p++;
        while (p[n] && p[n] != '"')
            n++;
    } else {
        while (p[n] && p[n] != ',' && p[n] != '}')
            n++;
    }
    if (n >= cap)
        return false;
    memcpy(out, p, n);
    out[n] = 0;
    return true;
}

/* the REST row the closing event stands for */
void kft_ws_event_to_row(const char *ev, char *row, size_t cap)
{
    char t[32], T[32], o[64], h[64], l[64], c[64], v[64], q[64], n[32], V[64], Q[64];
    assert_true(kft_json_field(ev, "t", t, sizeof t) && kft_json_field(ev, "T", T, sizeof T));
    assert_true(kft_json_field(ev, "o", o, sizeof o) && kft_json_field(ev, "h", h, sizeof h));
    assert_true(kft_json_field(ev, "l", l, sizeof l) && kft_json_field(ev, "c", c, sizeof c));
    assert_true(kft_json_field(ev, "v", v, sizeof v) && kft_json_field(ev, "q", q, sizeof q));
    assert_true(kft_json_field(ev, "n", n, sizeof n) && kft_json_field(ev, "V", V, sizeof V));
    assert_true(kft_json_field(ev, "Q", Q, sizeof Q));
    snprintf(row, cap, "[%s,\"%s\",\"%s\",\"%s\",\"%s\",\"%s\",%s,\"%s\",%s,\"%s\",\"%s\",\"0\"]",
             t, o, h, l, c, v, T, q, n, V, Q);
}

int kft_ws_server_upgrade(int cfd)
{
    char req[4096], key[64] = "", resp[512], accept_key[29];
    ssize_t n = recv(cfd, req, sizeof req - 1, 0);
    if (n <= 0)
        return -1;
    req[n] = 0;
    const char *k = strstr(req, "Sec-WebSocket-Key: ");
    if (k)
        sscanf(k + 19, "%63[^\r]", key);
    kf__ws_accept_for(key, accept_key);
    snprintf(resp, sizeof resp,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n",
             accept_key);
    send(cfd, resp, strlen(resp), MSG_NOSIGNAL);
    return 0;
}

void kft_ws_server_send(int fd, int opcode, const char *text)
{
    uint8_t hdr[4];
    size_t n = strlen(text), h = 0;
    hdr[h++] = (uint8_t)(0x80 | opcode);
    if (n < 126) {
        hdr[h++] = (uint8_t)n;
    } else {
        hdr[h++] = 126;
        hdr[h++] = (uint8_t)(n >> 8);
        hdr[h++] = (uint8_t)n;
    }
    send(fd, hdr, h, MSG_NOSIGNAL);
    send(fd, text, n, MSG_NOSIGNAL);
}
