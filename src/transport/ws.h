/*
 * RFC 6455 WebSocket client framing and handshake: pure functions over caller
 * buffers (no socket, no allocation). The connection layer (conn.c) reads into
 * one large buffer and asks this module for complete messages; payloads are
 * handed out as pointers into that buffer, so the common case copies nothing.
 */
#ifndef KF_TRANSPORT_WS_H
#define KF_TRANSPORT_WS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    KF__WS_OP_CONT = 0x0,
    KF__WS_OP_TEXT = 0x1,
    KF__WS_OP_BINARY = 0x2,
    KF__WS_OP_CLOSE = 0x8,
    KF__WS_OP_PING = 0x9,
    KF__WS_OP_PONG = 0xA,
};

typedef enum kf__ws_result {
    KF__WS_OK = 0,        /* a frame / message / response is complete */
    KF__WS_NEED_MORE = 1, /* not enough bytes yet */
    KF__WS_ERROR = -1,    /* protocol violation: close with *close_code */
} kf__ws_result;

typedef struct kf__ws_frame {
    uint8_t opcode;
    bool fin;
    const uint8_t *payload; /* points into the parsed buffer */
    uint64_t len;
} kf__ws_frame;

/*
 * Parses one server-to-client frame at buf[0..len). On KF__WS_OK fills *f and
 * *consumed (header + payload). Rejects (KF__WS_ERROR, *why static text,
 * *close_code 1002 or 1009): RSV bits set, a masked frame, an unknown opcode,
 * a control frame longer than 125 bytes or not FIN, a non-minimal or 2^63+
 * length, a payload over max_payload (1009).
 */
kf__ws_result kf__ws_parse_frame(const uint8_t *buf, size_t len, uint64_t max_payload,
                                 kf__ws_frame *f, size_t *consumed, const char **why,
                                 uint16_t *close_code);

typedef enum kf__ws_msg_type {
    KF__WS_MSG_TEXT = 1,
    KF__WS_MSG_BINARY = 2,
    KF__WS_MSG_CLOSE = 8,
    KF__WS_MSG_PING = 9,
    KF__WS_MSG_PONG = 10,
} kf__ws_msg_type;

typedef struct kf__ws_msg {
    kf__ws_msg_type type;
    const uint8_t *data; /* into the caller's buffer or r->frag; valid until the next call */
    size_t len;
    uint16_t close_code; /* CLOSE: code sent by the server, 1005 when none */
} kf__ws_msg;

/*
 * Message layer: reassembles fragmented data messages into frag (capacity
 * max_message, allocated once by the owner) and passes control frames that
 * arrive between fragments straight through.
 */
typedef struct kf__ws_reader {
    uint8_t *frag;      /* owner-provided, max_message bytes */
    size_t frag_len;
    size_t max_message; /* largest accepted message (and frame payload) */
    uint8_t frag_opcode;
    bool in_frag;
} kf__ws_reader;

/*
 * Consumes frames from buf[0..len) until one complete message (or control
 * frame) is available: KF__WS_OK with *m filled; KF__WS_NEED_MORE when buf
 * holds no complete message (*consumed may be > 0: absorbed fragments must be
 * dropped from the buffer by the caller); KF__WS_ERROR with *why and
 * *close_code (1002 protocol error: continuation without start, data frame
 * inside a fragmented message, bad close payload; 1009 too big).
 */
kf__ws_result kf__ws_reader_next(kf__ws_reader *r, const uint8_t *buf, size_t len,
                                 size_t *consumed, kf__ws_msg *m, const char **why,
                                 uint16_t *close_code);

/* Largest header kf__ws_encode() writes. */
#define KF__WS_MAX_HEADER 14

/*
 * Writes one masked client frame with FIN set. Returns bytes written or 0 if
 * cap is too small. mask is the 4-byte masking key.
 */
size_t kf__ws_encode(uint8_t *out, size_t cap, uint8_t opcode, const void *payload, size_t len,
                     const uint8_t mask[4]);

/* Fills out with a fresh random Sec-WebSocket-Key (24 base64 chars + NUL). */
void kf__ws_make_key(char out[25]);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), 28 chars + NUL. */
void kf__ws_accept_for(const char *key, char out[29]);

/*
 * Writes the HTTP/1.1 upgrade request for GET path on host_header (host or
 * host:port as it should appear in Host:). Returns length or 0 if cap is too
 * small.
 */
size_t kf__ws_request(char *out, size_t cap, const char *host_header, const char *path,
                      const char *key);

/*
 * Checks the server's upgrade response in buf[0..len): KF__WS_NEED_MORE until
 * the blank line; KF__WS_OK when it is "HTTP/1.1 101" with Upgrade: websocket,
 * Connection: upgrade and the right Sec-WebSocket-Accept (header names and
 * tokens case-insensitive), with *hdr_len the length of the head (bytes after
 * it are already frames); KF__WS_ERROR otherwise, with *status (0 if not
 * HTTP) and a message naming the problem in why ("HTTP 404 Not Found",
 * "missing Sec-WebSocket-Accept"). A head over 16 KiB is an error.
 */
kf__ws_result kf__ws_response_check(const char *buf, size_t len, const char *key, int *status,
                                    size_t *hdr_len, char *why, size_t whylen);

#endif
