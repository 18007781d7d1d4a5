/*
 * RFC 6455 client framing (src/transport/ws.c): frames built byte by byte in
 * the test, the RFC's own examples, a 1000-frame mixed stream replayed in
 * every split, the masking encoder, and the HTTP upgrade handshake.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transport/ws.h"

/* ---- helpers ------------------------------------------------------------ */

enum { LEN_MIN = 0, LEN_7 = 7, LEN_16 = 16, LEN_64 = 64 };

/*
 * Writes a server frame (unmasked): b0 is FIN|RSV|opcode as sent, form picks
 * the length encoding (LEN_MIN: the minimal one; others force an encoding,
 * possibly a non-minimal one). Returns the frame size.
 */
static size_t mkframe(uint8_t *out, unsigned b0, const void *payload, size_t len, int form)
{
    if (form == LEN_MIN)
        form = len <= 125 ? LEN_7 : len <= 0xFFFF ? LEN_16 : LEN_64;
    size_t h = 2;
    out[0] = (uint8_t)b0;
    if (form == LEN_7) {
        out[1] = (uint8_t)len;
    } else if (form == LEN_16) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        h = 4;
    } else {
        out[1] = 127;
        uint64_t l = len;
        for (int i = 9; i >= 2; i--) {
            out[i] = (uint8_t)l;
            l >>= 8;
        }
        h = 10;
    }
    if (len)
        memcpy(out + h, payload, len);
    return h + len;
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static size_t rnd_below(size_t n)
{
    return (size_t)(rnd() % n);
}

static void rnd_fill(uint8_t *p, size_t n, bool text)
{
    for (size_t i = 0; i < n; i++)
        p[i] = text ? (uint8_t)('a' + rnd_below(26)) : (uint8_t)rnd();
}

/* Expects exactly one error with this close code from the frame parser. */
static void expect_frame_error(const uint8_t *buf, size_t len, uint64_t max, uint16_t want)
{
    kf__ws_frame f;
    size_t c = 0;
    const char *why = NULL;
    uint16_t code = 0;
    assert_int_equal(kf__ws_parse_frame(buf, len, max, &f, &c, &why, &code), KF__WS_ERROR);
    assert_non_null(why);
    assert_int_equal(code, want);
}

static uint8_t *g_frag;
#define FRAG_CAP (1u << 18)

static void reader_init(kf__ws_reader *r, size_t max)
{
    memset(r, 0, sizeof *r);
    r->frag = g_frag;
    r->max_message = max;
}

static int setup(void **state)
{
    (void)state;
    g_frag = malloc(FRAG_CAP);
    return g_frag ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free(g_frag);
    return 0;
}

/* ---- frame parser ------------------------------------------------------- */

static void test_rfc_examples(void **state)
{
    (void)state;
    /* RFC 6455 §5.7 */
    static const uint8_t hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    kf__ws_frame f;
    size_t c;
    const char *why;
    uint16_t code;

    assert_int_equal(kf__ws_parse_frame(hello, sizeof hello, 125, &f, &c, &why, &code), KF__WS_OK);
    assert_int_equal(f.opcode, KF__WS_OP_TEXT);
    assert_true(f.fin);
    assert_int_equal(f.len, 5);
    assert_ptr_equal(f.payload, hello + 2);
    assert_int_equal(c, sizeof hello);

    assert_int_equal(kf__ws_parse_frame(frag, sizeof frag, 125, &f, &c, &why, &code), KF__WS_OK);
    assert_int_equal(f.opcode, KF__WS_OP_TEXT);
    assert_false(f.fin);
    assert_int_equal(c, 5);
    assert_int_equal(kf__ws_parse_frame(frag + 5, 4, 125, &f, &c, &why, &code), KF__WS_OK);
    assert_int_equal(f.opcode, KF__WS_OP_CONT);
    assert_true(f.fin);
    assert_memory_equal(f.payload, "lo", 2);

    assert_int_equal(kf__ws_parse_frame(ping, sizeof ping, 125, &f, &c, &why, &code), KF__WS_OK);
    assert_int_equal(f.opcode, KF__WS_OP_PING);

    /* the same through the reader */
    kf__ws_reader r;
    kf__ws_msg m;
    reader_init(&r, 1024);
    assert_int_equal(kf__ws_reader_next(&r, frag, sizeof frag, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(c, sizeof frag);
    assert_int_equal(m.type, KF__WS_MSG_TEXT);
    assert_int_equal(m.len, 5);
    assert_memory_equal(m.data, "Hello", 5);
}

static void test_every_opcode(void **state)
{
    (void)state;
    static const struct {
        uint8_t op;
        int type;
    } ops[] = {
        {KF__WS_OP_TEXT, KF__WS_MSG_TEXT},   {KF__WS_OP_BINARY, KF__WS_MSG_BINARY},
        {KF__WS_OP_CLOSE, KF__WS_MSG_CLOSE}, {KF__WS_OP_PING, KF__WS_MSG_PING},
        {KF__WS_OP_PONG, KF__WS_MSG_PONG},
    };
    uint8_t buf[64];
    const uint8_t payload[] = {0x03, 0xE8, 'o', 'k'}; /* also a valid close payload */
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        size_t n = mkframe(buf, 0x80u | ops[i].op, payload, sizeof payload, LEN_MIN);
        kf__ws_frame f;
        size_t c;
        const char *why;
        uint16_t code;
        assert_int_equal(kf__ws_parse_frame(buf, n, 125, &f, &c, &why, &code), KF__WS_OK);
        assert_int_equal(f.opcode, ops[i].op);
        assert_int_equal(f.len, sizeof payload);
        assert_int_equal(c, n);

        kf__ws_reader r;
        kf__ws_msg m;
        reader_init(&r, 125);
        assert_int_equal(kf__ws_reader_next(&r, buf, n, &c, &m, &why, &code), KF__WS_OK);
        assert_int_equal(m.type, ops[i].type);
        assert_int_equal(c, n);
        assert_int_equal(m.close_code, ops[i].op == KF__WS_OP_CLOSE ? 1000 : 0);
        assert_int_equal(m.len, sizeof payload);
        assert_ptr_equal(m.data, buf + 2); /* zero copy; CLOSE: code + reason */
    }
    /* continuation: a valid frame for the parser, an error for the reader without a start */
    size_t n = mkframe(buf, 0x80u | KF__WS_OP_CONT, "x", 1, LEN_MIN);
    kf__ws_frame f;
    size_t c;
    const char *why;
    uint16_t code;
    assert_int_equal(kf__ws_parse_frame(buf, n, 125, &f, &c, &why, &code), KF__WS_OK);
    assert_int_equal(f.opcode, KF__WS_OP_CONT);
}

static void test_lengths(void **state)
{
    (void)state;
    static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    uint8_t *buf = malloc(70000 + 10);
    uint8_t *payload = malloc(70000);
    assert_non_null(buf);
    assert_non_null(payload);
    rng_state = 42;
    rnd_fill(payload, 70000, false);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = mkframe(buf, 0x82, payload, lens[i], LEN_MIN);
        size_t hl = n - lens[i];
        assert_int_equal(hl, lens[i] <= 125 ? 2 : lens[i] <= 65535 ? 4 : 10);
        kf__ws_frame f;
        size_t c;
        const char *why;
        uint16_t code;
        assert_int_equal(kf__ws_parse_frame(buf, n, 1 << 20, &f, &c, &why, &code), KF__WS_OK);
        assert_int_equal(f.len, lens[i]);
        assert_int_equal(c, n);
        assert_ptr_equal(f.payload, buf + hl);
        assert_memory_equal(f.payload, payload, lens[i]);
        /* every strict prefix needs more; a trailing byte is left alone */
        for (size_t k = 0; k < n; k += (k < 16 || n - k < 16) ? 1 : 997)
            assert_int_equal(kf__ws_parse_frame(buf, k, 1 << 20, &f, &c, &why, &code),
                             KF__WS_NEED_MORE);
        /* exactly max is accepted, one less is 1009 */
        assert_int_equal(kf__ws_parse_frame(buf, n, lens[i], &f, &c, &why, &code), KF__WS_OK);
        if (lens[i])
            expect_frame_error(buf, n, lens[i] - 1, 1009);
    }
    /* non-minimal encodings are protocol errors */
    size_t n = mkframe(buf, 0x82, payload, 0, LEN_16);
    expect_frame_error(buf, n, 1 << 20, 1002);
    n = mkframe(buf, 0x82, payload, 125, LEN_16);
    expect_frame_error(buf, n, 1 << 20, 1002);
    n = mkframe(buf, 0x82, payload, 0, LEN_64);
    expect_frame_error(buf, n, 1 << 20, 1002);
    n = mkframe(buf, 0x82, payload, 125, LEN_64);
    expect_frame_error(buf, n, 1 << 20, 1002);
    n = mkframe(buf, 0x82, payload, 65535, LEN_64);
    expect_frame_error(buf, n, 1 << 20, 1002);
    /* minimal 16-bit and 64-bit boundaries are fine */
    n = mkframe(buf, 0x82, payload, 126, LEN_16);
    {
        kf__ws_frame f;
        size_t c;
        const char *why;
        uint16_t code;
        assert_int_equal(kf__ws_parse_frame(buf, n, 1 << 20, &f, &c, &why, &code), KF__WS_OK);
        n = mkframe(buf, 0x82, payload, 65536, LEN_64);
        assert_int_equal(kf__ws_parse_frame(buf, n, 1 << 20, &f, &c, &why, &code), KF__WS_OK);
        /* a huge (not yet arrived) 64-bit length: need more if allowed, 1009 if not */
        static const uint8_t huge[] = {0x82, 127, 0x40, 0, 0, 0, 0, 0, 0, 0};
        assert_int_equal(kf__ws_parse_frame(huge, sizeof huge, UINT64_MAX, &f, &c, &why, &code),
                         KF__WS_NEED_MORE);
        expect_frame_error(huge, sizeof huge, 1 << 20, 1009);
        /* the top bit of a 64-bit length must be 0 */
        static const uint8_t top[] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0};
        expect_frame_error(top, sizeof top, UINT64_MAX, 1002);
        static const uint8_t ones[] = {0x82, 127, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
        expect_frame_error(ones, sizeof ones, UINT64_MAX, 1002);
    }
    free(buf);
    free(payload);
}

static void test_rsv_bits(void **state)
{
    (void)state;
    uint8_t buf[16];
    for (unsigned rsv = 0x10; rsv <= 0x70; rsv += 0x10) {
        size_t n = mkframe(buf, 0x80u | rsv | KF__WS_OP_TEXT, "hi", 2, LEN_MIN);
        expect_frame_error(buf, n, 125, 1002);
        expect_frame_error(buf, 2, 125, 1002); /* known from the header alone */
        n = mkframe(buf, 0x80u | rsv | KF__WS_OP_PING, "", 0, LEN_MIN);
        expect_frame_error(buf, n, 125, 1002);
    }
}

static void test_masked_server_frame(void **state)
{
    (void)state;
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
    expect_frame_error(masked, sizeof masked, 125, 1002);
    expect_frame_error(masked, 2, 125, 1002);
    kf__ws_reader r;
    kf__ws_msg m;
    size_t c;
    const char *why = NULL;
    uint16_t code = 0;
    reader_init(&r, 125);
    assert_int_equal(kf__ws_reader_next(&r, masked, sizeof masked, &c, &m, &why, &code),
                     KF__WS_ERROR);
    assert_int_equal(code, 1002);
    assert_non_null(why);
}

static void test_unknown_opcodes(void **state)
{
    (void)state;
    uint8_t buf[8];
    for (unsigned op = 0; op < 16; op++) {
        bool known = op <= 2 || (op >= 8 && op <= 10);
        size_t n = mkframe(buf, 0x80u | op, "ab", 2, LEN_MIN);
        kf__ws_frame f;
        size_t c;
        const char *why;
        uint16_t code;
        kf__ws_result res = kf__ws_parse_frame(buf, n, 125, &f, &c, &why, &code);
        if (known) {
            assert_int_equal(res, KF__WS_OK);
        } else {
            assert_int_equal(res, KF__WS_ERROR);
            assert_int_equal(code, 1002);
        }
    }
}

static void test_control_frame_rules(void **state)
{
    (void)state;
    uint8_t buf[300], payload[200];
    memset(payload, 'p', sizeof payload);
    static const unsigned ctl[] = {KF__WS_OP_CLOSE, KF__WS_OP_PING, KF__WS_OP_PONG};
    for (size_t i = 0; i < 3; i++) {
        kf__ws_frame f;
        size_t c;
        const char *why;
        uint16_t code;
        /* 125 is the largest control payload */
        size_t n = mkframe(buf, 0x80u | ctl[i], payload, 125, LEN_MIN);
        if (ctl[i] == KF__WS_OP_CLOSE) {
            buf[2] = 0x03; /* code 1000 */
            buf[3] = 0xE8;
        }
        assert_int_equal(kf__ws_parse_frame(buf, n, 1 << 16, &f, &c, &why, &code), KF__WS_OK);
        /* 126 (16-bit form) is too long, detected from the first two bytes */
        n = mkframe(buf, 0x80u | ctl[i], payload, 126, LEN_MIN);
        expect_frame_error(buf, n, 1 << 16, 1002);
        expect_frame_error(buf, 2, 1 << 16, 1002);
        /* a non-minimal long form of a short control payload too */
        n = mkframe(buf, 0x80u | ctl[i], payload, 5, LEN_16);
        expect_frame_error(buf, n, 1 << 16, 1002);
        /* fragmented (FIN clear) */
        n = mkframe(buf, ctl[i], payload, 5, LEN_MIN);
        expect_frame_error(buf, n, 1 << 16, 1002);
        expect_frame_error(buf, 2, 1 << 16, 1002);
    }
}

static void test_payload_over_max(void **state)
{
    (void)state;
    uint8_t buf[400], payload[300] = {0};
    kf__ws_reader r;
    kf__ws_msg m;
    size_t c;
    const char *why;
    uint16_t code;

    /* single frame: refused from its header, before the payload arrives */
    size_t n = mkframe(buf, 0x81, payload, 200, LEN_MIN);
    reader_init(&r, 199);
    assert_int_equal(kf__ws_reader_next(&r, buf, 4, &c, &m, &why, &code), KF__WS_ERROR);
    assert_int_equal(code, 1009);
    reader_init(&r, 200);
    assert_int_equal(kf__ws_reader_next(&r, buf, n, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(m.len, 200);

    /* fragmented: each fragment fits, the sum does not */
    size_t o = mkframe(buf, 0x02, payload, 100, LEN_MIN);
    o += mkframe(buf + o, 0x00, payload, 100, LEN_MIN);
    size_t last = o;
    o += mkframe(buf + o, 0x80, payload, 1, LEN_MIN);
    reader_init(&r, 200);
    assert_int_equal(kf__ws_reader_next(&r, buf, o, &c, &m, &why, &code), KF__WS_ERROR);
    assert_int_equal(code, 1009);
    assert_int_equal(c, last);
    /* exactly max reassembles */
    reader_init(&r, 201);
    assert_int_equal(kf__ws_reader_next(&r, buf, o, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(m.type, KF__WS_MSG_BINARY);
    assert_int_equal(m.len, 201);
    assert_ptr_equal(m.data, g_frag);

    /* a fragmented message and no reassembly buffer */
    reader_init(&r, 201);
    r.frag = NULL;
    assert_int_equal(kf__ws_reader_next(&r, buf, o, &c, &m, &why, &code), KF__WS_ERROR);
    assert_int_equal(code, 1009);
}

static void test_fragments_with_control_between(void **state)
{
    (void)state;
    uint8_t buf[256];
    size_t o = 0, ends[6];
    o += mkframe(buf + o, 0x01, "{\"e\":", 5, LEN_MIN); /* text, FIN clear */
    ends[0] = o;
    o += mkframe(buf + o, 0x89, "ping!", 5, LEN_MIN);
    ends[1] = o;
    o += mkframe(buf + o, 0x00, "\"kline\"", 7, LEN_MIN);
    ends[2] = o;
    o += mkframe(buf + o, 0x8A, "", 0, LEN_MIN);
    ends[3] = o;
    o += mkframe(buf + o, 0x80, "}", 1, LEN_MIN);
    ends[4] = o;
    o += mkframe(buf + o, 0x81, "next", 4, LEN_MIN);
    ends[5] = o;

    kf__ws_reader r;
    kf__ws_msg m;
    size_t c, pos = 0;
    const char *why;
    uint16_t code;
    reader_init(&r, 1024);

    assert_int_equal(kf__ws_reader_next(&r, buf, o, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(m.type, KF__WS_MSG_PING);
    assert_int_equal(m.len, 5);
    assert_memory_equal(m.data, "ping!", 5);
    assert_ptr_equal(m.data, buf + ends[0] + 2); /* into the caller's buffer */
    assert_int_equal(c, ends[1]);
    pos += c;

    assert_int_equal(kf__ws_reader_next(&r, buf + pos, o - pos, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(m.type, KF__WS_MSG_PONG);
    assert_int_equal(m.len, 0);
    pos += c;
    assert_int_equal(pos, ends[3]);

    assert_int_equal(kf__ws_reader_next(&r, buf + pos, o - pos, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(m.type, KF__WS_MSG_TEXT);
    assert_int_equal(m.len, 13);
    assert_memory_equal(m.data, "{\"e\":\"kline\"}", 13);
    assert_ptr_equal(m.data, g_frag);
    pos += c;
    assert_int_equal(pos, ends[4]);

    assert_int_equal(kf__ws_reader_next(&r, buf + pos, o - pos, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(m.type, KF__WS_MSG_TEXT);
    assert_ptr_equal(m.data, buf + ends[4] + 2);
    pos += c;
    assert_int_equal(pos, o);
    assert_int_equal(kf__ws_reader_next(&r, buf + pos, 0, &c, &m, &why, &code), KF__WS_NEED_MORE);
    assert_int_equal(c, 0);
    assert_int_equal(kf__ws_reader_next(&r, NULL, 0, &c, &m, &why, &code), KF__WS_NEED_MORE);

    /* absorbed fragments are reported as consumed with NEED_MORE */
    reader_init(&r, 1024);
    assert_int_equal(kf__ws_reader_next(&r, buf, ends[0] + 3, &c, &m, &why, &code),
                     KF__WS_NEED_MORE);
    assert_int_equal(c, ends[0]);
    assert_true(r.in_frag);
}

static void test_sequence_errors(void **state)
{
    (void)state;
    uint8_t buf[64];
    kf__ws_reader r;
    kf__ws_msg m;
    size_t c;
    const char *why;
    uint16_t code;

    /* continuation without a start, FIN set or not */
    for (unsigned fin = 0; fin <= 0x80; fin += 0x80) {
        size_t n = mkframe(buf, fin, "abc", 3, LEN_MIN);
        reader_init(&r, 1024);
        code = 0;
        assert_int_equal(kf__ws_reader_next(&r, buf, n, &c, &m, &why, &code), KF__WS_ERROR);
        assert_int_equal(code, 1002);
    }
    /* a finished fragmented message does not allow another continuation */
    size_t o = mkframe(buf, 0x01, "a", 1, LEN_MIN);
    o += mkframe(buf + o, 0x80, "b", 1, LEN_MIN);
    size_t done = o;
    o += mkframe(buf + o, 0x80, "c", 1, LEN_MIN);
    reader_init(&r, 1024);
    assert_int_equal(kf__ws_reader_next(&r, buf, o, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(c, done);
    assert_int_equal(kf__ws_reader_next(&r, buf + c, o - c, &c, &m, &why, &code), KF__WS_ERROR);
    assert_int_equal(code, 1002);

    /* a new text or binary frame (FIN or not) inside a fragmented message */
    static const unsigned b0s[] = {0x81, 0x01, 0x82, 0x02};
    for (size_t i = 0; i < 4; i++) {
        o = mkframe(buf, 0x01, "a", 1, LEN_MIN);
        size_t start = o;
        o += mkframe(buf + o, b0s[i], "b", 1, LEN_MIN);
        reader_init(&r, 1024);
        code = 0;
        assert_int_equal(kf__ws_reader_next(&r, buf, o, &c, &m, &why, &code), KF__WS_ERROR);
        assert_int_equal(code, 1002);
        assert_int_equal(c, start);
        assert_non_null(why);
    }
}

static void test_close_frames(void **state)
{
    (void)state;
    uint8_t buf[160], payload[130];
    kf__ws_reader r;
    kf__ws_msg m;
    size_t c;
    const char *why;
    uint16_t code;
    reader_init(&r, 1024);

    /* no payload: 1005 */
    size_t n = mkframe(buf, 0x88, "", 0, LEN_MIN);
    assert_int_equal(kf__ws_reader_next(&r, buf, n, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(m.type, KF__WS_MSG_CLOSE);
    assert_int_equal(m.close_code, 1005);
    assert_int_equal(m.len, 0);

    /* code only */
    n = mkframe(buf, 0x88, "\x03\xE9", 2, LEN_MIN);
    assert_int_equal(kf__ws_reader_next(&r, buf, n, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(m.close_code, 1001);
    assert_int_equal(m.len, 2);

    /* code and reason, the longest allowed */
    payload[0] = 0x0F; /* 4000 */
    payload[1] = 0xA0;
    memset(payload + 2, 'r', 123);
    n = mkframe(buf, 0x88, payload, 125, LEN_MIN);
    assert_int_equal(kf__ws_reader_next(&r, buf, n, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(m.close_code, 4000);
    assert_int_equal(m.len, 125);
    assert_ptr_equal(m.data, buf + 2);

    n = mkframe(buf, 0x88, "\x03\xE8going away", 12, LEN_MIN);
    assert_int_equal(kf__ws_reader_next(&r, buf, n, &c, &m, &why, &code), KF__WS_OK);
    assert_int_equal(m.close_code, 1000);
    assert_int_equal(m.len, 12);
    assert_memory_equal(m.data + 2, "going away", 10);

    /* one byte: protocol error */
    n = mkframe(buf, 0x88, "\x03", 1, LEN_MIN);
    code = 0;
    assert_int_equal(kf__ws_reader_next(&r, buf, n, &c, &m, &why, &code), KF__WS_ERROR);
    assert_int_equal(code, 1002);

    /* every code from 0 to 65535 against RFC 6455 §7.4 */
    for (unsigned cc = 0; cc <= 0xFFFF; cc++) {
        bool valid =
            (cc >= 1000 && cc <= 1003) || (cc >= 1007 && cc <= 1011) || (cc >= 3000 && cc <= 4999);
        uint8_t p[3] = {(uint8_t)(cc >> 8), (uint8_t)cc, 'x'};
        n = mkframe(buf, 0x88, p, 3, LEN_MIN);
        code = 0;
        kf__ws_result res = kf__ws_reader_next(&r, buf, n, &c, &m, &why, &code);
        if (valid) {
            assert_int_equal(res, KF__WS_OK);
            assert_int_equal(m.close_code, cc);
            assert_int_equal(m.len, 3);
        } else {
            assert_int_equal(res, KF__WS_ERROR);
            assert_int_equal(code, 1002);
        }
    }
}

/* ---- a long mixed stream, fed in every split ------------------------------ */

typedef struct exp_msg {
    int type;
    size_t off, len; /* into the expected data pool */
    uint16_t close_code;
} exp_msg;

typedef struct stream {
    uint8_t *bytes;
    size_t len;
    exp_msg *msgs;
    size_t nmsgs;
    uint8_t *pool;
    size_t pool_len;
    size_t nframes;
} stream;

#define STREAM_CAP (4u << 20)

static size_t gen_len(bool allow_big)
{
    size_t r = rnd_below(1000);
    if (r < 850)
        return rnd_below(126); /* 7-bit */
    if (r < 995 || !allow_big)
        return 126 + rnd_below(3000); /* 16-bit */
    return 65536 + rnd_below(2000);   /* 64-bit */
}

static void gen_expect(stream *s, int type, const uint8_t *data, size_t len, uint16_t cc)
{
    exp_msg *e = &s->msgs[s->nmsgs++];
    e->type = type;
    e->off = s->pool_len;
    e->len = len;
    e->close_code = cc;
    if (len)
        memcpy(s->pool + s->pool_len, data, len);
    s->pool_len += len;
}

static void gen_frame(stream *s, unsigned b0, const uint8_t *p, size_t len)
{
    assert_true(s->len + len + 10 <= STREAM_CAP);
    s->len += mkframe(s->bytes + s->len, b0, p, len, LEN_MIN);
    s->nframes++;
}

static void gen_control(stream *s, uint8_t *tmp)
{
    unsigned op = rnd_below(2) ? KF__WS_OP_PING : KF__WS_OP_PONG;
    size_t len = rnd_below(126);
    rnd_fill(tmp, len, false);
    gen_frame(s, 0x80u | op, tmp, len);
    gen_expect(s, (int)op, tmp, len, 0);
}

/* A deterministic stream of at least nframes frames: single text/binary
 * messages, fragmented ones (with pings/pongs between fragments), control
 * frames and close frames with and without a code. */
static void gen_stream(stream *s, uint64_t seed, size_t nframes, bool allow_big)
{
    static const uint16_t codes[] = {1000, 1001, 1002, 1003, 1007, 1008,
                                     1009, 1010, 1011, 3000, 4000, 4999};
    memset(s, 0, sizeof *s);
    s->bytes = malloc(STREAM_CAP);
    s->pool = malloc(STREAM_CAP);
    s->msgs = malloc(sizeof(exp_msg) * (nframes + 16));
    uint8_t *tmp = malloc(1 << 20);
    assert_non_null(s->bytes);
    assert_non_null(s->pool);
    assert_non_null(s->msgs);
    assert_non_null(tmp);
    rng_state = seed;
    while (s->nframes < nframes) {
        size_t kind = rnd_below(100);
        if (kind < 50) {
            bool text = rnd_below(2);
            size_t len = gen_len(allow_big);
            rnd_fill(tmp, len, text);
            gen_frame(s, 0x80u | (text ? 1u : 2u), tmp, len);
            gen_expect(s, text ? KF__WS_MSG_TEXT : KF__WS_MSG_BINARY, tmp, len, 0);
        } else if (kind < 75) {
            bool text = rnd_below(2);
            size_t nfrag = 1 + rnd_below(5), total = 0;
            uint8_t *whole = tmp + (1 << 19);
            for (size_t i = 0; i < nfrag; i++) {
                size_t len = gen_len(allow_big && i == 0);
                rnd_fill(whole + total, len, text);
                unsigned b0 = (i == 0 ? (text ? 1u : 2u) : 0u) | (i + 1 == nfrag ? 0x80u : 0u);
                gen_frame(s, b0, whole + total, len);
                total += len;
                if (i + 1 < nfrag && rnd_below(3) == 0)
                    gen_control(s, tmp);
            }
            gen_expect(s, text ? KF__WS_MSG_TEXT : KF__WS_MSG_BINARY, whole, total, 0);
        } else if (kind < 95) {
            gen_control(s, tmp);
        } else if (kind < 97) {
            gen_frame(s, 0x88, tmp, 0);
            gen_expect(s, KF__WS_MSG_CLOSE, tmp, 0, 1005);
        } else {
            uint16_t cc = codes[rnd_below(sizeof codes / sizeof codes[0])];
            size_t rl = rnd_below(124);
            tmp[0] = (uint8_t)(cc >> 8);
            tmp[1] = (uint8_t)cc;
            rnd_fill(tmp + 2, rl, true);
            gen_frame(s, 0x88, tmp, rl + 2);
            gen_expect(s, KF__WS_MSG_CLOSE, tmp, rl + 2, cc);
        }
    }
    free(tmp);
}

static void free_stream(stream *s)
{
    free(s->bytes);
    free(s->pool);
    free(s->msgs);
}

/* Returns the size of the next chunk to append (mode 0: 1 byte; 1: random;
 * 2: two pieces split at *split; 3: everything at once). */
typedef struct chunker {
    int mode;
    size_t split, fed, max;
} chunker;

static size_t next_chunk(chunker *ch, size_t left)
{
    size_t n;
    switch (ch->mode) {
    case 0:
        n = 1;
        break;
    case 1:
        n = 1 + rnd_below(rnd_below(8) == 0 ? ch->max * 32 : ch->max);
        break;
    case 2:
        n = ch->fed < ch->split ? ch->split - ch->fed : left;
        break;
    default:
        n = left;
    }
    if (n > left)
        n = left;
    ch->fed += n;
    return n;
}

/*
 * Plays the connection layer: appends chunks into one buffer, asks the reader
 * for messages, drops consumed bytes and compacts only when the next chunk
 * does not fit. Every message must match the expected sequence in order.
 */
static void feed_stream(const stream *s, chunker *ch, size_t max_message)
{
    const size_t cap = s->len < (256u << 10) ? s->len : (256u << 10);
    uint8_t *buf = malloc(cap ? cap : 1);
    assert_non_null(buf);
    size_t head = 0, tail = 0, fed = 0, next = 0;
    kf__ws_reader r;
    reader_init(&r, max_message);
    while (fed < s->len) {
        size_t room = cap - (tail - head), left = s->len - fed;
        assert_true(room > 0);
        size_t n = next_chunk(ch, left < room ? left : room);
        if (tail + n > cap) {
            memmove(buf, buf + head, tail - head);
            tail -= head;
            head = 0;
        }
        memcpy(buf + tail, s->bytes + fed, n);
        tail += n;
        fed += n;
        for (;;) {
            kf__ws_msg m;
            size_t c = 0;
            const char *why = NULL;
            uint16_t code = 0;
            kf__ws_result res =
                kf__ws_reader_next(&r, buf + head, tail - head, &c, &m, &why, &code);
            if (res == KF__WS_ERROR)
                fail_msg("reader error at message %zu: %s (%u)", next, why, code);
            assert_true(c <= tail - head);
            head += c;
            if (res == KF__WS_NEED_MORE)
                break;
            assert_true(next < s->nmsgs);
            const exp_msg *e = &s->msgs[next++];
            assert_int_equal(m.type, e->type);
            assert_int_equal(m.len, e->len);
            assert_int_equal(m.close_code, e->close_code);
            if (e->len)
                assert_memory_equal(m.data, s->pool + e->off, e->len);
        }
    }
    assert_int_equal(next, s->nmsgs);
    assert_int_equal(head, tail);
    assert_false(r.in_frag);
    free(buf);
}

static void test_stream_1000_frames_every_split(void **state)
{
    (void)state;
    stream s;
    gen_stream(&s, 0x9E3779B97F4A7C15u, 1000, true);
    assert_true(s.nframes >= 1000);
    assert_true(s.nmsgs > 500);

    chunker ch = {.mode = 3};
    feed_stream(&s, &ch, FRAG_CAP); /* at once */
    ch = (chunker){.mode = 0};
    feed_stream(&s, &ch, FRAG_CAP); /* one byte at a time: a split at every boundary */
    for (uint64_t seed = 1; seed <= 40; seed++) {
        ch = (chunker){.mode = 1, .max = seed < 20 ? 16 : 1500};
        uint64_t saved = rng_state;
        rng_state = seed * 0x2545F4914F6CDD1Du;
        feed_stream(&s, &ch, FRAG_CAP);
        rng_state = saved;
    }
    free_stream(&s);

    /* a shorter stream cut in two at every byte boundary */
    gen_stream(&s, 7, 120, false);
    for (size_t k = 0; k <= s.len; k++) {
        ch = (chunker){.mode = 2, .split = k};
        feed_stream(&s, &ch, FRAG_CAP);
    }
    free_stream(&s);
}

/* ---- encoder ------------------------------------------------------------ */

static void test_encode_rfc_example(void **state)
{
    (void)state;
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    static const uint8_t want[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    uint8_t out[32];
    assert_int_equal(kf__ws_encode(out, sizeof out, KF__WS_OP_TEXT, "Hello", 5, mask), sizeof want);
    assert_memory_equal(out, want, sizeof want);
    /* too small, by one */
    assert_int_equal(kf__ws_encode(out, sizeof want - 1, KF__WS_OP_TEXT, "Hello", 5, mask), 0);
    assert_int_equal(kf__ws_encode(out, 0, KF__WS_OP_TEXT, "", 0, mask), 0);
    /* control frames cannot carry more than 125 bytes; reserved opcodes are refused */
    uint8_t big[200] = {0};
    assert_int_equal(kf__ws_encode(out, sizeof out, KF__WS_OP_PING, big, 126, mask), 0);
    assert_int_equal(kf__ws_encode(out, sizeof out, 0x3, "x", 1, mask), 0);
    assert_int_equal(kf__ws_encode(out, sizeof out, 0xB, "x", 1, mask), 0);
    assert_int_equal(kf__ws_encode(out, sizeof out, KF__WS_OP_CLOSE, "\x03\xE8", 2, mask), 8);
    assert_int_equal(out[0], 0x88);
}

static void test_encode_round_trip(void **state)
{
    (void)state;
    static const size_t lens[] = {0,   1,   7,   8,    9,     15,    16,    17,
                                  125, 126, 127, 1000, 65535, 65536, 100003};
    static const uint8_t mask[4] = {0xA5, 0x01, 0xFF, 0x5A};
    const size_t maxlen = 100003;
    uint8_t *payload = malloc(maxlen + 8), *out = malloc(maxlen + 32), *srv = malloc(maxlen + 16);
    assert_non_null(payload);
    assert_non_null(out);
    assert_non_null(srv);
    rng_state = 99;
    rnd_fill(payload, maxlen + 8, false);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t len = lens[i];
        for (size_t mis = 0; mis < 4; mis++) { /* unaligned source and destination */
            const uint8_t *src = payload + mis;
            uint8_t *dst = out + 3 * mis;
            size_t hl = len <= 125 ? 2 : len <= 65535 ? 4 : 10;
            size_t n = kf__ws_encode(dst, hl + 4 + len, KF__WS_OP_BINARY, src, len, mask);
            assert_int_equal(n, hl + 4 + len);
            assert_true(n - len <= KF__WS_MAX_HEADER);
            assert_int_equal(kf__ws_encode(dst, hl + 3 + len, KF__WS_OP_BINARY, src, len, mask), 0);
            assert_int_equal(dst[0], 0x82);
            assert_true(dst[1] & 0x80);
            uint64_t wire_len = dst[1] & 0x7F;
            if (hl == 4) {
                assert_int_equal(wire_len, 126);
                wire_len = ((uint64_t)dst[2] << 8) | dst[3];
            } else if (hl == 10) {
                assert_int_equal(wire_len, 127);
                wire_len = 0;
                for (int b = 2; b < 10; b++)
                    wire_len = (wire_len << 8) | dst[b];
            }
            assert_int_equal(wire_len, len);
            assert_memory_equal(dst + hl, mask, 4);
            /* unmask as a server would, and read it back as a server frame */
            srv[0] = dst[0];
            memcpy(srv + 1, dst + 1, hl - 1);
            srv[1] &= 0x7F;
            for (size_t b = 0; b < len; b++)
                srv[hl + b] = dst[hl + 4 + b] ^ mask[b & 3];
            if (len)
                assert_memory_equal(srv + hl, src, len);
            kf__ws_frame f;
            size_t c;
            const char *why;
            uint16_t code;
            assert_int_equal(kf__ws_parse_frame(srv, hl + len, UINT64_MAX, &f, &c, &why, &code),
                             KF__WS_OK);
            assert_int_equal(f.len, len);
            assert_int_equal(c, hl + len);
            assert_int_equal(f.opcode, KF__WS_OP_BINARY);
            assert_true(f.fin);
        }
    }
    free(payload);
    free(out);
    free(srv);
}

/* ---- handshake ---------------------------------------------------------- */

static const char RFC_KEY[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char RFC_ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static void test_accept_rfc_vector(void **state)
{
    (void)state;
    char out[29];
    memset(out, 'x', sizeof out);
    kf__ws_accept_for(RFC_KEY, out);
    assert_string_equal(out, RFC_ACCEPT);
}

static void test_make_key(void **state)
{
    (void)state;
    char a[25], b[25];
    memset(a, 'x', sizeof a);
    kf__ws_make_key(a);
    kf__ws_make_key(b);
    assert_int_equal(strlen(a), 24);
    assert_int_equal(strlen(b), 24);
    assert_string_not_equal(a, b);
    for (size_t i = 0; i < 22; i++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", a[i]));
    /* 16 bytes: the last sextet carries 4 zero bits, then "==" */
    assert_non_null(strchr("AQgw", a[21]));
    assert_memory_equal(a + 22, "==", 2);
    char acc[29];
    kf__ws_accept_for(a, acc);
    assert_int_equal(strlen(acc), 28);
}

static void test_request_text(void **state)
{
    (void)state;
    static const char want[] = "GET /stream?streams=btcusdt@kline_1m HTTP/1.1\r\n"
                               "Host: fstream.binance.com:443\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "User-Agent: klinefeed/0.1\r\n"
                               "\r\n";
    char out[512];
    size_t n = kf__ws_request(out, sizeof out, "fstream.binance.com:443",
                              "/stream?streams=btcusdt@kline_1m", RFC_KEY);
    assert_int_equal(n, sizeof want - 1);
    assert_string_equal(out, want);
    /* exactly fitting (with the NUL) works, one less does not */
    assert_int_equal(kf__ws_request(out, sizeof want, "fstream.binance.com:443",
                                    "/stream?streams=btcusdt@kline_1m", RFC_KEY),
                     sizeof want - 1);
    assert_int_equal(kf__ws_request(out, sizeof want - 1, "fstream.binance.com:443",
                                    "/stream?streams=btcusdt@kline_1m", RFC_KEY),
                     0);
    /* no header injection */
    assert_int_equal(kf__ws_request(out, sizeof out, "a\r\nX: y", "/", RFC_KEY), 0);
    assert_int_equal(kf__ws_request(out, sizeof out, "a", "/x y", RFC_KEY), 0);
    assert_int_equal(kf__ws_request(out, sizeof out, "a", "/\n", RFC_KEY), 0);
    assert_int_equal(kf__ws_request(out, sizeof out, "", "/", RFC_KEY), 0);
}

static kf__ws_result check(const char *resp, size_t len, int *status, size_t *hdr, char *why)
{
    /* an exact-size copy so ASan sees any read past len */
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, resp, len);
    kf__ws_result res = kf__ws_response_check(copy, len, RFC_KEY, status, hdr, why, 128);
    free(copy);
    return res;
}

static void test_response_ok(void **state)
{
    (void)state;
    static const char *oks[] = {
        "HTTP/1.1 101 Switching Protocols\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
        "\r\n",
        "HTTP/1.1 101 Switching Protocols\r\n"
        "date: Thu, 22 Jul 2021 00:00:00 GMT\r\n"
        "UPGRADE: WebSocket\r\n"
        "connection: keep-alive,  upgrade \r\n"
        "sec-websocket-accept:s3pPLMBiTxaQ9kYGzzhZRbK+xOo=   \r\n"
        "Sec-WebSocket-Extensions:\r\n"
        "\r\n",
        "HTTP/1.1 101\r\n" /* no reason phrase, bare LF line ends */
        "Connection: close\n"
        "Connection: Upgrade\n"
        "Upgrade:\twebsocket\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\n"
        "\n",
    };
    static const uint8_t frame[] = {0x81, 0x02, 'h', 'i'};
    for (size_t i = 0; i < sizeof oks / sizeof oks[0]; i++) {
        char buf[512], why[128];
        size_t hl = strlen(oks[i]);
        memcpy(buf, oks[i], hl);
        memcpy(buf + hl, frame, sizeof frame); /* the first frame came in the same read */
        int status = -1;
        size_t hdr = 0;
        assert_int_equal(check(buf, hl + sizeof frame, &status, &hdr, why), KF__WS_OK);
        assert_int_equal(status, 101);
        assert_int_equal(hdr, hl);
        assert_int_equal(check(buf, hl, &status, &hdr, why), KF__WS_OK);
        assert_int_equal(hdr, hl);
        /* every strict prefix of the head needs more */
        for (size_t k = 0; k < hl; k++)
            assert_int_equal(check(buf, k, &status, &hdr, why), KF__WS_NEED_MORE);
    }
}

static void expect_response_error(const char *resp, int want_status, const char *want_why)
{
    int status = -1;
    size_t hdr = 99;
    char why[128];
    assert_int_equal(check(resp, strlen(resp), &status, &hdr, why), KF__WS_ERROR);
    assert_int_equal(status, want_status);
    assert_string_equal(why, want_why);
}

static void test_response_errors(void **state)
{
    (void)state;
    expect_response_error("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", 404,
                          "HTTP 404 Not Found");
    expect_response_error("HTTP/1.1 200 OK\r\n\r\n", 200, "HTTP 200 OK");
    expect_response_error("HTTP/1.1 451\r\n\r\n", 451, "HTTP 451");
    expect_response_error("HTTP/1.1 403 \x01\xff\r\n\r\n", 403, "HTTP 403 ??");
    expect_response_error("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                          101, "missing Sec-WebSocket-Accept");
    expect_response_error("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOO=\r\n\r\n",
                          101, "wrong Sec-WebSocket-Accept");
    expect_response_error("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=x\r\n\r\n",
                          101, "wrong Sec-WebSocket-Accept");
    expect_response_error("HTTP/1.1 101 Switching Protocols\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                          101, "missing Upgrade: websocket");
    expect_response_error("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: h2c\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                          101, "Upgrade is \"h2c\", not websocket");
    expect_response_error("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\nConnection: keep-alive\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                          101, "missing Connection: upgrade");
    expect_response_error("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\nConnection: upgraded\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                          101, "missing Connection: upgrade");
    expect_response_error("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                          "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
                          101, "unrequested Sec-WebSocket-Extensions");
    expect_response_error("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                          101, "duplicate Sec-WebSocket-Accept");
    expect_response_error("HTTP/1.0 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
                          101, "HTTP 101 from an HTTP/1.0 server");
    expect_response_error("HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade websocket\r\n\r\n",
                          101, "malformed HTTP header line");
    expect_response_error("HTTP/1.1 101 Switching Protocols\r\n"
                          " folded\r\n\r\n",
                          101, "folded HTTP header line");
    expect_response_error("HTTP/1.1 1x1 Hm\r\n\r\n", 0, "malformed HTTP status line");
    expect_response_error("HTTP/1.1  101\r\n\r\n", 0, "malformed HTTP status line");
    /* not HTTP at all: known from the first bytes, without waiting for the blank line */
    expect_response_error("SSH-2.0-OpenSSH", 0, "not an HTTP response");
    expect_response_error("\x16\x03\x01", 0, "not an HTTP response");
    expect_response_error("HTTQ", 0, "not an HTTP response");

    /* why is cut to whylen */
    char small[8];
    int status;
    size_t hdr;
    static const char nf[] = "HTTP/1.1 404 Not Found\r\n\r\n";
    assert_int_equal(
        kf__ws_response_check(nf, sizeof nf - 1, RFC_KEY, &status, &hdr, small, sizeof small),
        KF__WS_ERROR);
    assert_string_equal(small, "HTTP 40");
    assert_int_equal(kf__ws_response_check(nf, sizeof nf - 1, RFC_KEY, &status, &hdr, NULL, 0),
                     KF__WS_ERROR);
    assert_int_equal(status, 404);
}

static void test_response_head_limit(void **state)
{
    (void)state;
    const size_t cap = 40000;
    char *buf = malloc(cap);
    assert_non_null(buf);
    static const char start[] = "HTTP/1.1 101 Switching Protocols\r\nX-Pad: ";
    static const char end[] = "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    int status;
    size_t hdr;
    char why[128];
    /* a head of exactly 16384 bytes is accepted; 16385 is not */
    for (size_t total = 16380; total <= 16390; total++) {
        size_t pad = total - (sizeof start - 1) - (sizeof end - 1);
        memcpy(buf, start, sizeof start - 1);
        memset(buf + sizeof start - 1, 'p', pad);
        memcpy(buf + sizeof start - 1 + pad, end, sizeof end - 1);
        kf__ws_result res = check(buf, total, &status, &hdr, why);
        if (total <= 16384) {
            assert_int_equal(res, KF__WS_OK);
            assert_int_equal(hdr, total);
        } else {
            assert_int_equal(res, KF__WS_ERROR);
            assert_string_equal(why, "HTTP response head over 16 KiB");
        }
    }
    /* an endless head: more is needed below 16 KiB, an error from then on */
    memcpy(buf, start, sizeof start - 1);
    memset(buf + sizeof start - 1, 'p', cap - (sizeof start - 1));
    assert_int_equal(check(buf, 16383, &status, &hdr, why), KF__WS_NEED_MORE);
    assert_int_equal(check(buf, 16384, &status, &hdr, why), KF__WS_ERROR);
    assert_int_equal(check(buf, cap, &status, &hdr, why), KF__WS_ERROR);
    assert_string_equal(why, "HTTP response head over 16 KiB");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_every_opcode),
        cmocka_unit_test(test_lengths),
        cmocka_unit_test(test_rsv_bits),
        cmocka_unit_test(test_masked_server_frame),
        cmocka_unit_test(test_unknown_opcodes),
        cmocka_unit_test(test_control_frame_rules),
        cmocka_unit_test(test_payload_over_max),
        cmocka_unit_test(test_fragments_with_control_between),
        cmocka_unit_test(test_sequence_errors),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_stream_1000_frames_every_split),
        cmocka_unit_test(test_encode_rfc_example),
        cmocka_unit_test(test_encode_round_trip),
        cmocka_unit_test(test_accept_rfc_vector),
        cmocka_unit_test(test_make_key),
        cmocka_unit_test(test_request_text),
        cmocka_unit_test(test_response_ok),
        cmocka_unit_test(test_response_errors),
        cmocka_unit_test(test_response_head_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
