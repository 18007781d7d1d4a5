/*
 * Fuzz target for the WebSocket client framing (src/transport/ws.c).
 *
 * The input is treated as bytes from the server:
 *  1. fed to kf__ws_reader_next() as one buffer, the way conn.c does (64 KiB
 *     message limit, a reassembly buffer), dropping consumed bytes;
 *  2. fed again in small chunks (size from the first byte), each call seeing
 *     an exact-size heap copy of the unconsumed bytes so ASan catches a read
 *     past them; both runs must produce the same messages and end the same way;
 *  3. checked as an HTTP upgrade response; when that succeeds, the bytes after
 *     the head are fed to the reader too;
 *  4. used as a payload for kf__ws_encode(), which must round-trip.
 * Any broken invariant aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transport/ws.h"

#define MAX_MESSAGE (64u << 10)
#define CHUNKED_MAX_INPUT (64u << 10) /* the chunked run is quadratic: bound it */

static const char KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";

typedef struct outcome {
    uint64_t hash; /* FNV-1a over every message */
    size_t nmsgs, pos;
    kf__ws_result end; /* NEED_MORE when the input ran out, or ERROR */
    const char *why;
    uint16_t code;
} outcome;

static void hash_bytes(uint64_t *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        *h ^= b[i];
        *h *= 0x100000001b3u;
    }
}

static void check_msg(const kf__ws_msg *m, const uint8_t *buf, size_t len, const uint8_t *frag,
                      outcome *o)
{
    if (m->len > MAX_MESSAGE)
        abort();
    if (m->len) {
        bool in_buf = m->data >= buf && m->data + m->len <= buf + len;
        bool in_frag = m->data >= frag && m->data + m->len <= frag + MAX_MESSAGE;
        if (!in_buf && !in_frag)
            abort();
    }
    switch (m->type) {
    case KF__WS_MSG_TEXT:
    case KF__WS_MSG_BINARY:
    case KF__WS_MSG_PING:
    case KF__WS_MSG_PONG:
        if (m->close_code != 0 || (m->type >= KF__WS_MSG_PING && m->len > 125))
            abort();
        break;
    case KF__WS_MSG_CLOSE:
        if (m->close_code < 1000 || m->close_code > 4999 || m->len > 125 ||
            (m->close_code == 1005) != (m->len == 0))
            abort();
        break;
    default:
        abort();
    }
    uint8_t t = (uint8_t)m->type;
    hash_bytes(&o->hash, &t, 1);
    hash_bytes(&o->hash, &m->close_code, sizeof m->close_code);
    hash_bytes(&o->hash, &m->len, sizeof m->len);
    hash_bytes(&o->hash, m->data, m->len); /* reads every byte handed out */
    o->nmsgs++;
}

/* chunk 0: the whole input at once, in place; otherwise chunk bytes at a time. */
static void run_reader(const uint8_t *data, size_t size, size_t chunk, outcome *o)
{
    static uint8_t frag[MAX_MESSAGE];
    kf__ws_reader r = {.frag = frag, .max_message = MAX_MESSAGE};
    memset(o, 0, sizeof *o);
    o->hash = 0xcbf29ce484222325u;
    size_t avail = chunk && chunk < size ? chunk : size;
    for (;;) {
        size_t wl = avail - o->pos;
        const uint8_t *p = data + o->pos;
        uint8_t *copy = NULL;
        if (chunk) {
            copy = malloc(wl ? wl : 1);
            if (!copy)
                abort();
            if (wl)
                memcpy(copy, p, wl);
            p = copy;
        }
        kf__ws_msg m;
        size_t consumed = (size_t)-1;
        const char *why = NULL;
        uint16_t code = 0;
        kf__ws_result res = kf__ws_reader_next(&r, p, wl, &consumed, &m, &why, &code);
        if (consumed > wl || r.frag_len > MAX_MESSAGE)
            abort();
        if (res == KF__WS_OK)
            check_msg(&m, p, wl, frag, o);
        free(copy);
        o->pos += consumed;
        if (res == KF__WS_ERROR) {
            if (!why || (code != 1002 && code != 1009))
                abort();
            o->end = res;
            o->why = why;
            o->code = code;
            return;
        }
        if (res == KF__WS_NEED_MORE) {
            if (avail == size) {
                o->end = res;
                return;
            }
            avail = size - avail > chunk ? avail + chunk : size;
        } else if (res != KF__WS_OK) {
            abort();
        }
    }
}

static void fuzz_frames(const uint8_t *data, size_t size, size_t chunk)
{
    outcome whole, parts;
    run_reader(data, size, 0, &whole);
    if (size > CHUNKED_MAX_INPUT)
        return;
    run_reader(data, size, chunk, &parts);
    /* How the bytes were split must not change what comes out. */
    if (whole.hash != parts.hash || whole.nmsgs != parts.nmsgs || whole.pos != parts.pos ||
        whole.end != parts.end || whole.why != parts.why || whole.code != parts.code)
        abort();
}

static void fuzz_parse_frame(const uint8_t *data, size_t size)
{
    kf__ws_frame f;
    size_t consumed = 0;
    const char *why = NULL;
    uint16_t code = 0;
    kf__ws_result res = kf__ws_parse_frame(data, size, UINT64_MAX, &f, &consumed, &why, &code);
    if (res == KF__WS_OK) {
        if (consumed > size || f.payload < data || f.payload + f.len != data + consumed)
            abort();
        uint64_t h = 0;
        hash_bytes(&h, f.payload, (size_t)f.len);
    } else if (res == KF__WS_ERROR && !why) {
        abort();
    }
}

static size_t fuzz_response(const uint8_t *data, size_t size)
{
    char why[96];
    int status = -1;
    size_t hdr = 0;
    const char *buf = (const char *)data;
    kf__ws_result res = kf__ws_response_check(buf, size, KEY, &status, &hdr, why, sizeof why);
    if (strnlen(why, sizeof why) >= sizeof why)
        abort();
    if (res == KF__WS_OK) {
        if (status != 101 || hdr == 0 || hdr > size || hdr > 16384)
            abort();
        /* the head alone is enough, and a short why buffer is respected */
        char small[5];
        memset(small, 'x', sizeof small);
        if (kf__ws_response_check(buf, hdr, KEY, &status, &hdr, small, 1) != KF__WS_OK)
            abort();
        return hdr;
    }
    if (res == KF__WS_ERROR) {
        if (!why[0] || status < 0 || status > 999)
            abort();
        char small[4];
        if (kf__ws_response_check(buf, size, KEY, &status, &hdr, small, sizeof small) !=
                KF__WS_ERROR ||
            strnlen(small, sizeof small) >= sizeof small)
            abort();
    } else if (res != KF__WS_NEED_MORE || size >= 16384) {
        abort();
    }
    return 0;
}

static void fuzz_encode(const uint8_t *data, size_t size)
{
    if (size < 4)
        return;
    const uint8_t *mask = data;
    const uint8_t *payload = data + 4;
    size_t len = size - 4;
    uint8_t op = (data[0] & 1) ? KF__WS_OP_TEXT : KF__WS_OP_BINARY;
    size_t cap = len + KF__WS_MAX_HEADER;
    uint8_t *out = malloc(cap);
    if (!out)
        abort();
    size_t n = kf__ws_encode(out, cap, op, payload, len, mask);
    size_t hl = len <= 125 ? 6 : len <= 65535 ? 8 : 14;
    if (n != hl + len || out[0] != (0x80u | op) || !(out[1] & 0x80u) ||
        memcmp(out + hl - 4, mask, 4) != 0)
        abort();
    for (size_t i = 0; i < len; i++)
        if ((uint8_t)(out[hl + i] ^ mask[i & 3]) != payload[i])
            abort();
    if (kf__ws_encode(out, n - 1, op, payload, len, mask) != 0)
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t chunk = size ? 1 + data[0] % 17 : 1;
    fuzz_frames(data, size, chunk);
    fuzz_parse_frame(data, size);
    size_t hdr = fuzz_response(data, size);
    if (hdr)
        fuzz_frames(data + hdr, size - hdr, chunk);
    if (size <= (1u << 20))
        fuzz_encode(data, size);
    return 0;
}
