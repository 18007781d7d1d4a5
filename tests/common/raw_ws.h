/* raw_ws.h - test helpers: raw loopback TCP, HTTP/1.1 and a minimal WebSocket client (masking,
 * fragmentation, pings answered by kft_ws_text), used to talk to klinefeed-sim byte by byte. */
#ifndef KF_TEST_RAW_WS_H
#define KF_TEST_RAW_WS_H

#include <stdbool.h>
#include <stddef.h>

/* A connected 127.0.0.1:port TCP socket, or -1. */
int kft_tcp_connect(int port);
/* A TCP socket bound to 127.0.0.1 on a port the kernel picks (into *port), listening when
 * backlog > 0; with backlog 0 it only reserves the port, so connections to it are refused.
 * -1 on failure. */
int kft_tcp_listen(int backlog, int *port);
/* Sends req on a fresh connection and reads the full response (head + body) into out until the
 * peer closes or 10 s pass; returns the HTTP status, -1 on failure. */
int kft_http_raw(int port, const char *req, char *out, size_t cap);
/* GET path with the response headers kept in out; returns the status. */
int kft_http_get_full(int port, const char *path, char *out, size_t cap);
/* The numeric value of header name in a response (case-insensitive), -1 if absent. */
long kft_http_header_long(const char *resp, const char *name);

/* A client connection; buf holds the received bytes not yet parsed. close_code/close_reason
 * are set by kft_ws_text on a close frame, rx_err by a failed recv (0 for EOF). */
typedef struct kft_ws {
    int fd;
    unsigned char *buf;
    size_t len, cap;
    int close_code;
    char close_reason[128];
    unsigned seq;
    int rx_err; /* errno of the failed recv, 0 for EOF */
} kft_ws;

/* Connects and upgrades (fixed key, checks the 101 and its Accept); NULL on failure. */
kft_ws *kft_ws_open(int port, const char *path);
/* Closes and frees; NULL ignored. */
void kft_ws_free(kft_ws *c);
/* Sends one masked frame with opcode op; 0 ok, -1 on a short send. */
int kft_ws_send(kft_ws *c, int op, bool fin, const void *p, size_t n);
/* Sends s as one text frame. */
int kft_ws_text_send(kft_ws *c, const char *s);
/* next frame: 1 ok (payload malloc'd, NUL-terminated), 0 timeout, -1 closed */
int kft_ws_frame(kft_ws *c, int timeout_ms, int *op, char **pl, size_t *pn);
/* next text message (answers pings, records close); NULL on timeout or close */
char *kft_ws_text(kft_ws *c, int timeout_ms);

/* raw value of "key": in a JSON text (string contents without quotes) */
bool kft_json_field(const char *js, const char *key, char *out, size_t cap);
/* the REST row the closing event stands for (cmocka-asserts every field is present) */
void kft_ws_event_to_row(const char *ev, char *row, size_t cap);

/* ---- the server side, for scripted WebSocket servers in tests ---- */
/* Reads the client's upgrade request on cfd and answers 101 with the right accept key.
 * 0, or -1 when the request could not be read. */
int kft_ws_server_upgrade(int cfd);
/* Sends one unmasked server frame (FIN set) with text as payload (< 64 KiB). */
void kft_ws_server_send(int fd, int opcode, const char *text);

#endif
