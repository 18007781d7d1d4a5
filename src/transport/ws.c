/*
 * RFC 6455 WebSocket client framing and handshake (see ws.h).
 *
 * Everything here works on caller buffers: no socket, no allocation of ours
 * (OpenSSL allocates a digest context during the handshake only). The frame
 * parser is on the hot path of every message, so its common case (a 7-bit or
 * 16-bit length text frame that is complete in the buffer) is a handful of
 * loads, compares and no copy.
 *
 * Text messages are NOT validated as UTF-8 here (RFC 6455 §8.1 would require
 * it): the decoder validates every JSON document it parses, which covers the
 * only text we act on, and doing it twice would cost a pass over every byte.
 * Close reasons are not validated either; they are only logged, escaped.
 */
#include "transport/ws.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MAX_HEAD 16384 /* largest accepted HTTP response head, blank line included */

#if defined(__GNUC__)
#define WS_LIKELY(x) __builtin_expect(!!(x), 1)
#define WS_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define WS_LIKELY(x) (x)
#define WS_UNLIKELY(x) (x)
#endif

/* ---- frames ------------------------------------------------------------- */

static inline kf__ws_result ws_fail(const char **why, uint16_t *close_code, const char *msg,
                                    uint16_t code)
{
    *why = msg;
    *close_code = code;
    return KF__WS_ERROR;
}

/* Opcodes 0-2 and 8-10 are defined; 3-7 and 11-15 are reserved. */
static inline bool ws_opcode_known(unsigned op)
{
    return (0x0707u >> op) & 1u;
}

static inline uint64_t ws_be16(const uint8_t *p)
{
    return ((uint64_t)p[0] << 8) | p[1];
}

static inline uint64_t ws_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * Every check that the bytes present allow is made before asking for more,
 * so a bad header fails as soon as it arrives and a too-big frame is refused
 * before its payload is buffered. A frame rejected on a prefix is therefore
 * rejected identically on any longer input.
 */
static inline kf__ws_result ws_parse(const uint8_t *buf, size_t len, uint64_t max_payload,
                                     kf__ws_frame *f, size_t *consumed, const char **why,
                                     uint16_t *close_code)
{
    if (WS_UNLIKELY(len < 2))
        return KF__WS_NEED_MORE;
    const unsigned b0 = buf[0], b1 = buf[1];
    const unsigned op = b0 & 0x0Fu;
    if (WS_UNLIKELY(b0 & 0x70u))
        return ws_fail(why, close_code, "RSV bits set without a negotiated extension", 1002);
    if (WS_UNLIKELY(!ws_opcode_known(op)))
        return ws_fail(why, close_code, "reserved opcode", 1002);
    if (WS_UNLIKELY(b1 & 0x80u))
        return ws_fail(why, close_code, "masked frame from the server", 1002);

    uint64_t plen = b1 & 0x7Fu;
    size_t hl = 2;
    if (WS_UNLIKELY(op & 0x8u)) { /* control frame */
        if (!(b0 & 0x80u))
            return ws_fail(why, close_code, "fragmented control frame", 1002);
        if (plen > 125)
            return ws_fail(why, close_code, "control frame longer than 125 bytes", 1002);
    } else if (plen == 126) {
        if (len < 4)
            return KF__WS_NEED_MORE;
        plen = ws_be16(buf + 2);
        if (WS_UNLIKELY(plen < 126))
            return ws_fail(why, close_code, "non-minimal 16-bit frame length", 1002);
        hl = 4;
    } else if (plen == 127) {
        if (len < 10)
            return KF__WS_NEED_MORE;
        plen = ws_be64(buf + 2);
        if (plen >> 63)
            return ws_fail(why, close_code, "frame length with the top bit set", 1002);
        if (plen < 65536)
            return ws_fail(why, close_code, "non-minimal 64-bit frame length", 1002);
        hl = 10;
    }
    if (WS_UNLIKELY(plen > max_payload))
        return ws_fail(why, close_code, "frame payload too big", 1009);
    if ((uint64_t)(len - hl) < plen) /* len >= hl here */
        return KF__WS_NEED_MORE;
    f->opcode = (uint8_t)op;
    f->fin = (b0 & 0x80u) != 0;
    f->payload = buf + hl;
    f->len = plen;
    *consumed = hl + (size_t)plen;
    return KF__WS_OK;
}

kf__ws_result kf__ws_parse_frame(const uint8_t *buf, size_t len, uint64_t max_payload,
                                 kf__ws_frame *f, size_t *consumed, const char **why,
                                 uint16_t *close_code)
{
    return ws_parse(buf, len, max_payload, f, consumed, why, close_code);
}

/* RFC 6455 §7.4.1/§7.4.2: codes a peer may put in a Close frame. 1004-1006 and
 * 1015 are reserved or must not be sent; 1012-1014 were registered later with
 * IANA and are not part of RFC 6455 itself, so they are refused like the
 * Autobahn test suite does; 0-999, 1016-2999 and 5000+ are not assignable. */
static bool ws_close_code_valid(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) ||
           (code >= 3000 && code <= 4999);
}

kf__ws_result kf__ws_reader_next(kf__ws_reader *r, const uint8_t *buf, size_t len, size_t *consumed,
                                 kf__ws_msg *m, const char **why, uint16_t *close_code)
{
    size_t off = 0;
    for (;;) {
        kf__ws_frame f;
        size_t c;
        if (len - off < 2) { /* also keeps buf + off defined when buf is NULL */
            *consumed = off;
            return KF__WS_NEED_MORE;
        }
        kf__ws_result res = ws_parse(buf + off, len - off, r->max_message, &f, &c, why, close_code);
        if (WS_UNLIKELY(res != KF__WS_OK)) {
            *consumed = off;
            return res;
        }
        off += c;
        const size_t plen = (size_t)f.len; /* <= max_message, so fits */
        switch (f.opcode) {
        case KF__WS_OP_TEXT:
        case KF__WS_OP_BINARY:
            if (WS_UNLIKELY(r->in_frag)) {
                *consumed = off - c;
                return ws_fail(why, close_code, "new data frame inside a fragmented message", 1002);
            }
            if (WS_LIKELY(f.fin)) { /* the common case: hand out a pointer, copy nothing */
                m->type = (kf__ws_msg_type)f.opcode;
                m->data = f.payload;
                m->len = plen;
                m->close_code = 0;
                *consumed = off;
                return KF__WS_OK;
            }
            if (!r->frag) {
                *consumed = off - c;
                return ws_fail(why, close_code, "fragmented message without a buffer", 1009);
            }
            if (plen)
                memcpy(r->frag, f.payload, plen);
            r->frag_len = plen;
            r->frag_opcode = f.opcode;
            r->in_frag = true;
            continue;
        case KF__WS_OP_CONT:
            if (WS_UNLIKELY(!r->in_frag)) {
                *consumed = off - c;
                return ws_fail(why, close_code, "continuation frame without a started message",
                               1002);
            }
            if (WS_UNLIKELY(plen > r->max_message - r->frag_len)) {
                *consumed = off - c;
                return ws_fail(why, close_code, "fragmented message too big", 1009);
            }
            if (plen)
                memcpy(r->frag + r->frag_len, f.payload, plen);
            r->frag_len += plen;
            if (!f.fin)
                continue;
            r->in_frag = false;
            m->type = (kf__ws_msg_type)r->frag_opcode;
            m->data = r->frag;
            m->len = r->frag_len;
            m->close_code = 0;
            *consumed = off;
            return KF__WS_OK;
        case KF__WS_OP_CLOSE:
            if (plen == 0) {
                m->close_code = 1005; /* "no status code was present" */
                m->data = f.payload;
                m->len = 0;
            } else if (plen == 1) {
                *consumed = off - c;
                return ws_fail(why, close_code, "close frame with a 1-byte payload", 1002);
            } else {
                unsigned code = (unsigned)ws_be16(f.payload);
                if (!ws_close_code_valid(code)) {
                    *consumed = off - c;
                    return ws_fail(why, close_code, "invalid close code", 1002);
                }
                m->close_code = (uint16_t)code;
                m->data = f.payload; /* code + reason (not validated as UTF-8) */
                m->len = plen;
            }
            m->type = KF__WS_MSG_CLOSE;
            *consumed = off;
            return KF__WS_OK;
        default: /* PING, PONG: passed through, even between fragments */
            m->type = (kf__ws_msg_type)f.opcode;
            m->data = f.payload;
            m->len = plen;
            m->close_code = 0;
            *consumed = off;
            return KF__WS_OK;
        }
    }
}

/* ---- encoding ----------------------------------------------------------- */

/* dst[i] = src[i] ^ mask[i % 4], 8 bytes at a time. dst and src must not overlap
 * unless equal. The word loads go through memcpy: any alignment, no aliasing UB. */
static void ws_mask_copy(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t mask[4])
{
    uint8_t m8[8];
    memcpy(m8, mask, 4);
    memcpy(m8 + 4, mask, 4);
    uint64_t mw;
    memcpy(&mw, m8, 8); /* byte order does not matter: XOR is per byte in memory order */
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= mw;
        memcpy(dst + i, &w, 8);
    }
    for (; i < len; i++)
        dst[i] = src[i] ^ mask[i & 3];
}

size_t kf__ws_encode(uint8_t *out, size_t cap, uint8_t opcode, const void *payload, size_t len,
                     const uint8_t mask[4])
{
    if (opcode > 0xF || !ws_opcode_known(opcode) || ((opcode & 0x8) && len > 125))
        return 0;
    size_t hl;
    if (len <= 125)
        hl = 2;
    else if (len <= 0xFFFF)
        hl = 4;
    else
        hl = 10;
    hl += 4;
    if (cap < hl || len > cap - hl)
        return 0;
    out[0] = (uint8_t)(0x80u | opcode);
    uint8_t *p = out + 2;
    if (len <= 125) {
        out[1] = (uint8_t)(0x80u | len);
    } else if (len <= 0xFFFF) {
        out[1] = 0x80u | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        p = out + 4;
    } else {
        out[1] = 0x80u | 127;
        uint64_t l = len;
        for (int i = 7; i >= 0; i--) {
            out[2 + i] = (uint8_t)l;
            l >>= 8;
        }
        p = out + 10;
    }
    memcpy(p, mask, 4);
    if (len)
        ws_mask_copy(p + 4, payload, len, mask);
    return hl + len;
}

/* ---- handshake ---------------------------------------------------------- */

static void ws_base64(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];
        *out++ = tab[v >> 18];
        *out++ = tab[(v >> 12) & 63];
        *out++ = tab[(v >> 6) & 63];
        *out++ = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *out++ = tab[v >> 18];
        *out++ = tab[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);
        *out++ = tab[v >> 18];
        *out++ = tab[(v >> 12) & 63];
        *out++ = tab[(v >> 6) & 63];
        *out++ = '=';
    }
    *out = '\0';
}

void kf__ws_make_key(char out[25])
{
    uint8_t nonce[16];
    if (RAND_bytes(nonce, sizeof nonce) != 1 &&
        getrandom(nonce, sizeof nonce, GRND_NONBLOCK) != (ssize_t)sizeof nonce) {
        /* The key is a nonce, not a secret (RFC 6455 §4.1 only needs it to be
         * fresh per connection): mix the clock and a counter as a last resort. */
        static _Atomic uint64_t counter;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) ^
                     (++counter * 0x9E3779B97F4A7C15u);
        for (size_t i = 0; i < sizeof nonce; i++) {
            x += 0x9E3779B97F4A7C15u; /* splitmix64 */
            uint64_t z = x;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
            nonce[i] = (uint8_t)(z ^ (z >> 31));
        }
    }
    ws_base64(nonce, sizeof nonce, out);
}

void kf__ws_accept_for(const char *key, char out[29])
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, key, strlen(key)) == 1 &&
              EVP_DigestUpdate(ctx, WS_GUID, sizeof WS_GUID - 1) == 1 &&
              EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok) { /* out of memory in OpenSSL: no accept value can match "" */
        out[0] = '\0';
        return;
    }
    ws_base64(md, 20, out);
}

/* Host and path go into the request line and a header: refuse CTLs (CR/LF
 * would inject headers), spaces in the path and empty values. */
static bool ws_field_ok(const char *s, bool allow_space)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7F || (!allow_space && ch == ' '))
            return false;
    }
    return true;
}

size_t kf__ws_request(char *out, size_t cap, const char *host_header, const char *path,
                      const char *key)
{
    if (!ws_field_ok(host_header, false) || !ws_field_ok(path, false) || !ws_field_ok(key, false))
        return 0;
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "User-Agent: klinefeed/0.1\r\n"
                     "\r\n",
                     path, host_header, key);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}

static void ws_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void ws_why(char *why, size_t whylen, const char *fmt, ...)
{
    if (!why || !whylen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static inline char ws_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

/* Case-insensitive equality of s[0..n) and the lower-case literal lit. */
static bool ws_ieq(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if (ws_lower(s[i]) != lit[i])
            return false;
    return true;
}

/* Trims optional whitespace (SP, HTAB) on both sides of s[0..*n). */
static const char *ws_trim(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t')) {
        s++;
        (*n)--;
    }
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t'))
        (*n)--;
    return s;
}

/* Does the comma-separated token list s[0..n) contain tok (lower case)? */
static bool ws_list_has(const char *s, size_t n, const char *tok)
{
    while (n) {
        const char *comma = memchr(s, ',', n);
        size_t el = comma ? (size_t)(comma - s) : n;
        size_t tl = el;
        const char *t = ws_trim(s, &tl);
        if (ws_ieq(t, tl, tok))
            return true;
        if (!comma)
            break;
        s += el + 1;
        n -= el + 1;
    }
    return false;
}

/* Copies at most 64 printable ASCII bytes of s[0..n) into out[65] ('?' for others). */
static void ws_printable(const char *s, size_t n, char out[65])
{
    if (n > 64)
        n = 64;
    for (size_t i = 0; i < n; i++)
        out[i] = (s[i] >= 0x20 && s[i] < 0x7F) ? s[i] : '?';
    out[n] = '\0';
}

/*
 * Finds the end of the head: the first empty line. Lines end in LF with an
 * optional CR before it (bare LF is tolerated, as most clients do). Returns
 * the head length including the blank line, or 0 if it is not complete.
 */
static size_t ws_head_end(const char *buf, size_t len)
{
    size_t line = 0; /* start of the current line */
    for (;;) {
        const char *nl = memchr(buf + line, '\n', len - line);
        if (!nl)
            return 0;
        size_t e = (size_t)(nl - buf);
        if (e == line || (e == line + 1 && buf[line] == '\r'))
            return e + 1;
        line = e + 1;
        if (line >= len)
            return 0;
    }
}

kf__ws_result kf__ws_response_check(const char *buf, size_t len, const char *key, int *status,
                                    size_t *hdr_len, char *why, size_t whylen)
{
    static const char proto[] = "HTTP/";
    *status = 0;
    *hdr_len = 0;
    if (why && whylen)
        why[0] = '\0';

    /* Fail early on something that is not HTTP at all, without waiting for 16 KiB. */
    size_t pre = len < 5 ? len : 5;
    if (pre && memcmp(buf, proto, pre) != 0) {
        ws_why(why, whylen, "not an HTTP response");
        return KF__WS_ERROR;
    }
    size_t scan = len < WS_MAX_HEAD ? len : WS_MAX_HEAD;
    size_t head = scan ? ws_head_end(buf, scan) : 0;
    if (!head) {
        if (len >= WS_MAX_HEAD) {
            ws_why(why, whylen, "HTTP response head over 16 KiB");
            return KF__WS_ERROR;
        }
        return KF__WS_NEED_MORE;
    }

    /* Status line: HTTP/1.1 SP 3DIGIT [SP reason] */
    const char *p = buf;
    const char *eol = memchr(p, '\n', head);
    size_t ll = (size_t)(eol - p);
    if (ll && p[ll - 1] == '\r')
        ll--;
    if (ll < 12 || p[8] != ' ' || p[5] < '0' || p[5] > '9' || p[6] != '.' || p[7] < '0' ||
        p[7] > '9' || p[9] < '0' || p[9] > '9' || p[10] < '0' || p[10] > '9' || p[11] < '0' ||
        p[11] > '9' || (ll > 12 && p[12] != ' ')) {
        ws_why(why, whylen, "malformed HTTP status line");
        return KF__WS_ERROR;
    }
    int code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    *status = code;
    if (code != 101) {
        char reason[65];
        size_t rl = ll > 13 ? ll - 13 : 0;
        ws_printable(p + 13, rl, reason);
        ws_why(why, whylen, "HTTP %d%s%s", code, rl ? " " : "", reason);
        return KF__WS_ERROR;
    }
    if (p[5] != '1' || p[7] != '1') {
        ws_why(why, whylen, "HTTP 101 from an HTTP/%c.%c server", p[5], p[7]);
        return KF__WS_ERROR;
    }

    /* Header fields. */
    bool upgrade = false, connection = false;
    const char *accept = NULL;
    size_t accept_len = 0;
    size_t pos = (size_t)(eol - buf) + 1;
    for (;;) {
        const char *l = buf + pos;
        const char *nl = memchr(l, '\n', head - pos);
        size_t n = (size_t)(nl - l);
        pos += n + 1;
        if (n && l[n - 1] == '\r')
            n--;
        if (n == 0)
            break; /* the blank line */
        if (l[0] == ' ' || l[0] == '\t') {
            ws_why(why, whylen, "folded HTTP header line");
            return KF__WS_ERROR;
        }
        const char *colon = memchr(l, ':', n);
        if (!colon || colon == l) {
            ws_why(why, whylen, "malformed HTTP header line");
            return KF__WS_ERROR;
        }
        size_t nlen = (size_t)(colon - l);
        size_t vlen = n - nlen - 1;
        const char *v = ws_trim(colon + 1, &vlen);
        if (ws_ieq(l, nlen, "upgrade")) {
            if (!ws_ieq(v, vlen, "websocket")) {
                char shown[65];
                ws_printable(v, vlen, shown);
                ws_why(why, whylen, "Upgrade is \"%s\", not websocket", shown);
                return KF__WS_ERROR;
            }
            upgrade = true;
        } else if (ws_ieq(l, nlen, "connection")) {
            connection = connection || ws_list_has(v, vlen, "upgrade");
        } else if (ws_ieq(l, nlen, "sec-websocket-accept")) {
            if (accept) {
                ws_why(why, whylen, "duplicate Sec-WebSocket-Accept");
                return KF__WS_ERROR;
            }
            accept = v;
            accept_len = vlen;
        } else if (ws_ieq(l, nlen, "sec-websocket-extensions") && vlen) {
            ws_why(why, whylen, "unrequested Sec-WebSocket-Extensions");
            return KF__WS_ERROR;
        } else if (ws_ieq(l, nlen, "sec-websocket-protocol") && vlen) {
            ws_why(why, whylen, "unrequested Sec-WebSocket-Protocol");
            return KF__WS_ERROR;
        }
    }
    if (!upgrade) {
        ws_why(why, whylen, "missing Upgrade: websocket");
        return KF__WS_ERROR;
    }
    if (!connection) {
        ws_why(why, whylen, "missing Connection: upgrade");
        return KF__WS_ERROR;
    }
    if (!accept) {
        ws_why(why, whylen, "missing Sec-WebSocket-Accept");
        return KF__WS_ERROR;
    }
    char want[29];
    kf__ws_accept_for(key, want);
    if (!want[0] || accept_len != 28 || memcmp(accept, want, 28) != 0) {
        ws_why(why, whylen, "wrong Sec-WebSocket-Accept");
        return KF__WS_ERROR;
    }
    *hdr_len = head;
    return KF__WS_OK;
}
