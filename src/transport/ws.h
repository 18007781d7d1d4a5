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
 * length, a payload over max_payload (1009). Every check the bytes present
 * allow is made before KF__WS_NEED_MORE, so a bad header fails on its first
 * bytes and a too-big frame is refused before its payload is buffered.
 * Costs a few ns; reads nothing past buf[len).
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
    /* Into the caller's buffer or r->frag; valid until the next call (and, when
     * into buf, until the caller drops those bytes). CLOSE: the whole payload,
     * 2-byte code then reason (0 bytes when close_code is 1005). Text and close reasons are not
     * UTF-8-validated here: the decoder validates the JSON it parses. */
    const uint8_t *data;
    size_t len;
    uint16_t close_code; /* CLOSE: code sent by the server, 1005 when none */
} kf__ws_msg;

/*
 * Message layer: reassembles fragmented data messages into frag (capacity
 * max_message, allocated once by the owner) and passes control frames that
 * arrive between fragments straight through.
 */
typedef struct kf__ws_reader {
    uint8_t *frag; /* owner-provided, max_message bytes */
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
 * On KF__WS_OK *consumed covers the frame that completed the message and any
 * fragments absorbed before it; on KF__WS_ERROR it stops before the offending
 * frame. An unfragmented text/binary message and every control frame is handed
 * out in place (no copy); only fragments are copied into frag. A close payload
 * of 1 byte or with a code outside RFC 6455 §7.4 (1000-1003, 1007-1011,
 * 3000-4999) is a 1002 error; an empty one gives close_code 1005. With frag
 * NULL a fragmented message is refused (1009). max_message also bounds control
 * payloads, so keep it >= 125. buf may be NULL when len is 0.
 */
kf__ws_result kf__ws_reader_next(kf__ws_reader *r, const uint8_t *buf, size_t len, size_t *consumed,
                                 kf__ws_msg *m, const char **why, uint16_t *close_code);

/* Largest header kf__ws_encode() writes. */
#define KF__WS_MAX_HEADER 14

/*
 * Writes one masked client frame with FIN set. Returns bytes written or 0 if
 * cap is too small, the opcode is reserved or a control payload is over 125
 * bytes. mask is the 4-byte masking key (callers draw it at random per frame,
 * RFC 6455 §5.3). payload must not overlap out.
 */
size_t kf__ws_encode(uint8_t *out, size_t cap, uint8_t opcode, const void *payload, size_t len,
                     const uint8_t mask[4]);

/* Fills out with a fresh random Sec-WebSocket-Key (24 base64 chars + NUL). */
void kf__ws_make_key(char out[25]);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)), 28 chars + NUL. */
void kf__ws_accept_for(const char *key, char out[29]);

/*
 * Writes the HTTP/1.1 upgrade request for GET path on host_header (host or
 * host:port as it should appear in Host:). Returns length (out is
 * NUL-terminated) or 0 if cap is too small or host, path or key is empty or
 * holds a space or control character (no header injection).
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
 * "missing Sec-WebSocket-Accept"). A head over 16 KiB (blank line included)
 * is an error, and so is a response that does not start with "HTTP/" (found on
 * its first bytes), a non-empty Sec-WebSocket-Extensions or -Protocol (none was
 * requested) and a duplicate Sec-WebSocket-Accept. Lines may end in CRLF or
 * LF. *status is the HTTP status once the status line parsed. why may be
 * NULL/whylen 0; the message is cut to whylen.
 */
kf__ws_result kf__ws_response_check(const char *buf, size_t len, const char *key, int *status,
                                    size_t *hdr_len, char *why, size_t whylen);

#endif
