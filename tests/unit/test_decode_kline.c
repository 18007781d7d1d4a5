/* kf__decode / kf_kline_decode: real capture, truncation, mutations, hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "decode/json.h"
#include "kline_same.h"

#define SAMPLE KF_SAMPLES_DIR "/binance_futures_2021-07-22_mixed_streams.txt"

typedef struct sframe {
    char *p;
    size_t len;
} sframe;

static sframe *frames;
static size_t nframes;

static int load_samples(void **state)
{
    (void)state;
    FILE *f = fopen(SAMPLE, "rb");
    if (!f)
        return -1;
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text, f);
    fclose(f);
    frames = calloc(4096, sizeof *frames);
    const char *p = text, *end = text + len;
    int line = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (++line > 1 && le > p) {
            const char *c = memchr(p, ':', (size_t)(le - p));
            if (!c || c + 2 > le || c[1] != ' ')
                return -1;
            size_t n = (size_t)(le - (c + 2));
            while (n && c[2 + n - 1] == '\r')
                n--;
            /* NUL-terminated for strstr(); decoding always sees exactly len bytes */
            frames[nframes].p = malloc(n + 1);
            memcpy(frames[nframes].p, c + 2, n);
            frames[nframes].p[n] = 0;
            frames[nframes].len = n;
            nframes++;
        }
        p = le + 1;
    }
    return nframes > 0 ? 0 : -1;
}

static int free_samples(void **state)
{
    (void)state;
    for (size_t i = 0; i < nframes; i++)
        free(frames[i].p);
    free(frames);
    return 0;
}

/* Decodes s[0..len) from an exact-size heap copy (so ASan sees over-reads). */
static kf__frame_kind dec(const char *s, size_t len, kf__frame *f, kf_kline *k)
{
    char *copy = malloc(len ? len : 1);
    memcpy(copy, s, len);
    kf__frame_kind kind = kf__decode(copy, len, f, k);
    /* pointers into the frame must not outlive it: re-base them onto s for the caller */
    if (f->event)
        f->event = s + (f->event - copy);
    if (f->stream)
        f->stream = s + (f->stream - copy);
    if (f->err_msg)
        f->err_msg = s + (f->err_msg - copy);
    if (f->result)
        f->result = s + (f->result - copy);
    free(copy);
    return kind;
}

static kf__frame_kind decs(const char *s, kf__frame *f, kf_kline *k)
{
    return dec(s, strlen(s), f, k);
}

/* Both halves of kf__decode agree on s[0..len): kind, reason, event, stream and every kline
 * field. Returns whether the fast path took the frame. Exact-size copies for ASan. */
static bool agree(const char *s, size_t len)
{
    char *a = malloc(len ? len : 1), *b = malloc(len ? len : 1);
    memcpy(a, s, len);
    memcpy(b, s, len);
    kf__frame f1, f2, f3;
    kf_kline k1, k2, k3;
    memset(&f3, 0, sizeof f3);
    kf__frame_kind x = kf__decode(a, len, &f1, &k1);
    kf__frame_kind y = kf__decode_general(b, len, &f2, &k2);
    bool fast = kf__decode_fast(a, len, &f3, &k3);
    assert_int_equal(x, y);
    assert_int_equal(f1.kind, f2.kind);
    if (fast)
        assert_int_equal(f3.kind, x);
    assert_true(f1.why == f2.why || (f1.why && f2.why && strcmp(f1.why, f2.why) == 0));
    assert_true((f1.event == NULL) == (f2.event == NULL));
    if (f1.event) {
        assert_int_equal(f1.event - a, f2.event - b);
        assert_int_equal(f1.event_len, f2.event_len);
    }
    assert_true((f1.stream == NULL) == (f2.stream == NULL));
    if (f1.stream) {
        assert_int_equal(f1.stream - a, f2.stream - b);
        assert_int_equal(f1.stream_len, f2.stream_len);
    }
    assert_true(f1.has_id == f2.has_id && f1.id == f2.id && f1.err_code == f2.err_code);
    if (x == KF__FRAME_KLINE)
        assert_true(kft_kline_same(&k1, &k2));
    free(a);
    free(b);
    return fast;
}

static bool agrees(const char *s)
{
    return agree(s, strlen(s));
}

static const char *why_of(const char *s)
{
    kf__frame f;
    kf_kline k;
    if (decs(s, &f, &k) != KF__FRAME_MALFORMED)
        return "(not malformed)";
    return f.why;
}

#define BASE                                                                                       \
    "{\"stream\":\"ctkusdt@kline_1m\",\"data\":{\"e\":\"kline\",\"E\":1626992741424,\"s\":"        \
    "\"CTKUSDT\",\"k\":{\"t\":1626992700000,\"T\":1626992759999,\"s\":\"CTKUSDT\",\"i\":\"1m\","   \
    "\"f\":23961275,\"L\":23961322,\"o\":\"1.01000\",\"c\":\"1.01100\",\"h\":\"1.01100\",\"l\":"   \
    "\"1.01000\",\"v\":\"3917\",\"n\":48,\"x\":false,\"q\":\"3957.89900\",\"V\":\"1729\",\"Q\":"   \
    "\"1748.01900\",\"B\":\"0\"}}}"

/* BASE with the first occurrence of `from` replaced by `to`; static buffer. */
static const char *rep(const char *from, const char *to)
{
    static char out[4096];
    const char *base = BASE;
    const char *at = strstr(base, from);
    assert_non_null(at);
    size_t pre = (size_t)(at - base);
    snprintf(out, sizeof out, "%.*s%s%s", (int)pre, base, to, at + strlen(from));
    return out;
}

static void check_base(const kf_kline *k)
{
    assert_string_equal(k->symbol, "CTKUSDT");
    assert_string_equal(k->interval, "1m");
    assert_int_equal(k->interval_index, 0);
    assert_false(k->closed);
    assert_true(k->event_time == 1626992741424LL);
    assert_true(k->open_time == 1626992700000LL);
    assert_true(k->close_time == 1626992759999LL);
    assert_true(k->first_trade_id == 23961275);
    assert_true(k->last_trade_id == 23961322);
    assert_true(k->trades == 48);
    assert_true(k->open.mant == 101000 && k->open.scale == 5);
    assert_true(k->close.mant == 101100 && k->close.scale == 5);
    assert_true(k->high.mant == 101100 && k->high.scale == 5);
    assert_true(k->low.mant == 101000 && k->low.scale == 5);
    assert_true(k->volume.mant == 3917 && k->volume.scale == 0);
    assert_true(k->quote_volume.mant == 395789900 && k->quote_volume.scale == 5);
    assert_true(k->taker_buy_base.mant == 1729 && k->taker_buy_base.scale == 0);
    assert_true(k->taker_buy_quote.mant == 174801900 && k->taker_buy_quote.scale == 5);
}

static void test_base(void **state)
{
    (void)state;
    kf__frame f;
    kf_kline k;
    assert_int_equal(decs(BASE, &f, &k), KF__FRAME_KLINE);
    assert_int_equal(f.kind, KF__FRAME_KLINE);
    check_base(&k);
    assert_int_equal(f.stream_len, strlen("ctkusdt@kline_1m"));
    assert_memory_equal(f.stream, "ctkusdt@kline_1m", f.stream_len);
    assert_int_equal(f.event_len, 5);
    assert_memory_equal(f.event, "kline", 5);
    assert_null(f.why);
    /* public wrapper */
    assert_int_equal(kf_kline_decode(BASE, strlen(BASE), &k), KF_OK);
    check_base(&k);
    assert_int_equal(kf_kline_decode("{\"result\":null,\"id\":1}", 22, &k), KF_ERR_NOT_FOUND);
    assert_int_equal(kf_kline_decode("{\"e\":\"aggTrade\"}", 16, &k), KF_ERR_NOT_FOUND);
    assert_int_equal(kf_kline_decode("{\"e\":", 5, &k), KF_ERR_PARSE);
    assert_int_equal(kf_kline_decode(BASE, strlen(BASE), NULL), KF_ERR_INVALID_ARG);
    assert_int_equal(kf_kline_decode(NULL, 0, &k), KF_ERR_PARSE);
    /* raw (unwrapped) event */
    const char *raw = strstr(BASE, "{\"e\"");
    assert_int_equal(dec(raw, strlen(raw) - 1, &f, &k), KF__FRAME_KLINE);
    assert_null(f.stream);
    check_base(&k);
    /* NULL f and k are tolerated */
    assert_int_equal(kf__decode(BASE, strlen(BASE), NULL, NULL), KF__FRAME_KLINE);
}

/* Independent check of every kline field with the JSON cursor: ints equal, and every decimal
 * formats back to exactly the text of the frame. */
static void cross_check(const sframe *s, const kf_kline *k)
{
    kf__json j;
    kf__json_span key, v;
    kf__json_init(&j, s->p, s->len);
    assert_true(kf__json_enter_object(&j));
    int seen = 0;
    while (kf__json_next_key(&j, &key)) {
        if (!kf__json_key_eq(&key, "data")) {
            kf__json_skip_value(&j, NULL);
            continue;
        }
        assert_true(kf__json_enter_object(&j));
        while (kf__json_next_key(&j, &key)) {
            if (kf__json_key_eq(&key, "E")) {
                int64_t e;
                assert_true(kf__json_read_i64(&j, &e));
                assert_true(e == k->event_time);
                seen++;
            } else if (kf__json_key_eq(&key, "s")) {
                assert_true(kf__json_read_string(&j, &v));
                assert_int_equal(v.len, strlen(k->symbol));
                assert_memory_equal(v.p, k->symbol, v.len);
                seen++;
            } else if (kf__json_key_eq(&key, "k")) {
                assert_true(kf__json_enter_object(&j));
                while (kf__json_next_key(&j, &key)) {
                    assert_int_equal(key.len, 1);
                    char c = key.p[0];
                    const kf_dec *d = NULL;
                    const int64_t *iv = NULL;
                    switch (c) {
                    case 'o':
                        d = &k->open;
                        break;
                    case 'c':
                        d = &k->close;
                        break;
                    case 'h':
                        d = &k->high;
                        break;
                    case 'l':
                        d = &k->low;
                        break;
                    case 'v':
                        d = &k->volume;
                        break;
                    case 'q':
                        d = &k->quote_volume;
                        break;
                    case 'V':
                        d = &k->taker_buy_base;
                        break;
                    case 'Q':
                        d = &k->taker_buy_quote;
                        break;
                    case 't':
                        iv = &k->open_time;
                        break;
                    case 'T':
                        iv = &k->close_time;
                        break;
                    case 'f':
                        iv = &k->first_trade_id;
                        break;
                    case 'L':
                        iv = &k->last_trade_id;
                        break;
                    case 'n':
                        iv = &k->trades;
                        break;
                    default:
                        break;
                    }
                    if (d) {
                        char buf[KF_DEC_MAXLEN];
                        assert_true(kf__json_read_string(&j, &v));
                        size_t n = kf_dec_format(*d, buf, sizeof buf);
                        assert_int_equal(n, v.len);
                        assert_memory_equal(buf, v.p, n);
                        seen++;
                    } else if (iv) {
                        int64_t x;
                        assert_true(kf__json_read_i64(&j, &x));
                        assert_true(x == *iv);
                        seen++;
                    } else if (c == 'x') {
                        bool b;
                        assert_true(kf__json_read_bool(&j, &b));
                        assert_int_equal(b, k->closed);
                        seen++;
                    } else if (c == 'i') {
                        assert_true(kf__json_read_string(&j, &v));
                        assert_int_equal(v.len, strlen(k->interval));
                        assert_memory_equal(v.p, k->interval, v.len);
                        seen++;
                    } else {
                        assert_true(kf__json_skip_value(&j, NULL));
                    }
                }
            } else {
                assert_true(kf__json_skip_value(&j, NULL));
            }
        }
    }
    assert_true(kf__json_finish(&j));
    assert_int_equal(seen, 2 + 8 + 5 + 2);
}

static void test_samples(void **state)
{
    (void)state;
    size_t klines = 0, closes = 0, events = 0;
    for (size_t i = 0; i < nframes; i++) {
        kf__frame f;
        kf_kline k;
        kf__frame_kind kind = dec(frames[i].p, frames[i].len, &f, &k);
        bool is_kline = strstr(frames[i].p, "\"e\":\"kline\"") != NULL;
        assert_non_null(f.stream);
        if (is_kline) {
            assert_int_equal(kind, KF__FRAME_KLINE);
            klines++;
            closes += k.closed;
            cross_check(&frames[i], &k);
            /* the stream name is <symbol lowercase>@kline_<interval> */
            char want[64];
            size_t n = strlen(k.symbol);
            for (size_t c = 0; c < n; c++)
                want[c] = (char)(k.symbol[c] >= 'A' && k.symbol[c] <= 'Z' ? k.symbol[c] + 32
                                                                          : k.symbol[c]);
            snprintf(want + n, sizeof want - n, "@kline_%s", k.interval);
            assert_int_equal(f.stream_len, strlen(want));
            assert_memory_equal(f.stream, want, f.stream_len);
        } else {
            assert_int_equal(kind, KF__FRAME_EVENT);
            assert_true(f.event_len > 0);
            events++;
        }
    }
    assert_int_equal(nframes, 1535);
    assert_int_equal(klines, 67);
    assert_int_equal(closes, 4);
    assert_int_equal(events, 1535 - 67);
}

/* Spot checks with values copied from the capture. */
static const kf_kline *find_kline(const char *needle, kf_kline *k)
{
    for (size_t i = 0; i < nframes; i++) {
        if (frames[i].len < strlen(needle) || !strstr(frames[i].p, needle))
            continue;
        kf__frame f;
        if (dec(frames[i].p, frames[i].len, &f, k) == KF__FRAME_KLINE)
            return k;
    }
    return NULL;
}

static void test_spot(void **state)
{
    (void)state;
    kf_kline k;
    assert_non_null(find_kline("\"E\":1626992741424,", &k));
    check_base(&k);
    /* closes */
    size_t closes = 0;
    for (size_t i = 0; i < nframes; i++) {
        kf__frame f;
        if (dec(frames[i].p, frames[i].len, &f, &k) == KF__FRAME_KLINE && k.closed) {
            closes++;
            assert_true(k.close_time - k.open_time == 59999);
            assert_true(k.open_time % 60000 == 0);
            assert_true(k.event_time > k.close_time);
        }
    }
    assert_int_equal(closes, 4);
}

/* The fast paths and the general parser agree on every frame of the capture, and every one of
 * them (klines, aggTrade, depthUpdate, bookTicker) takes a fast path. */
static void test_fast_vs_general(void **state)
{
    (void)state;
    size_t fast = 0;
    for (size_t i = 0; i < nframes; i++)
        fast += agree(frames[i].p, frames[i].len);
    assert_int_equal(fast, nframes);
    /* long numbers leave the fast path's short cuts but decode the same */
    kf__frame f;
    kf_kline k;
    assert_int_equal(decs(rep("\"q\":\"3957.89900\"", "\"q\":\"412345678901.12345\""), &f, &k),
                     KF__FRAME_KLINE);
    assert_true(k.quote_volume.mant == 41234567890112345LL && k.quote_volume.scale == 5);
    assert_int_equal(decs(rep("\"n\":48", "\"n\":1234567890123456789"), &f, &k), KF__FRAME_KLINE);
    assert_true(k.trades == 1234567890123456789LL);
    assert_int_equal(decs(rep("\"v\":\"3917\"", "\"v\":\"0.00000001\""), &f, &k), KF__FRAME_KLINE);
    assert_true(k.volume.mant == 1 && k.volume.scale == 8);
    /* the fast path's short cuts for k.s, k.i and k.B: other values decode the same way */
    assert_int_equal(decs(rep("\"i\":\"1m\"", "\"i\":\"15m\""), &f, &k), KF__FRAME_KLINE);
    assert_string_equal(k.interval, "15m");
    assert_int_equal(decs(rep("\"B\":\"0\"", "\"B\":\"123\""), &f, &k), KF__FRAME_KLINE);
    assert_int_equal(decs(rep("\"B\":\"0\"", "\"B\":\"\""), &f, &k), KF__FRAME_KLINE);
    assert_string_equal(why_of(rep("\"i\":\"1m\"", "\"i\":\"1x\"")), "unknown interval");
    assert_string_equal(why_of(rep("\"i\":\"1m\"", "\"i\":\"1mm\"")), "unknown interval");
    assert_string_equal(why_of(rep("\"i\":\"1m\"", "\"i\":\"\"")), "unknown interval");
    assert_string_equal(why_of(rep("\"i\":\"1m\"", "\"i\":\"1\\u006d\"")), "k.i not a string");
    /* k.s a prefix of s, or s a prefix of k.s */
    assert_string_equal(why_of(rep(",\"s\":\"CTKUSDT\",\"i\"", ",\"s\":\"CTKUSD\",\"i\"")),
                        "k.s differs from s");
    assert_string_equal(why_of(rep(",\"s\":\"CTKUSDT\",\"i\"", ",\"s\":\"CTKUSDTX\",\"i\"")),
                        "k.s differs from s");
}

/* Events the fast path must leave to the general parser (which decides them the same way),
 * and unusual but valid ones it takes. */
static void test_fast_event_edges(void **state)
{
    (void)state;
    static const char *const longway[] = {
        "{\"e\":\"aggTrade\",\"E\":1,\"E\":2}",                 /* duplicate E */
        "{\"e\":\"aggTrade\",\"s\":\"A\",\"s\":\"B\"}",         /* duplicate s */
        "{\"e\":\"aggTrade\",\"e\":\"x\"}",                     /* second e */
        "{\"e\":\"continuous_kline\",\"k\":{\"t\":1,\"t\":2}}", /* k: checked there */
        "{\"e\":\"aggTrade\",\"id\":1}",                        /* reply key, unwrapped */
        "{\"e\":\"aggTrade\",\"result\":null}",
        "{\"e\":\"aggTrade\",\"error\":{}}",
        "{\"e\":\"aggTrade\",\"stream\":\"x\"}",
        "{\"e\":\"aggTrade\",\"data\":{}}",
        "{\"e\":\"aggTrade\", \"E\":1}", /* whitespace */
        "{\"e\":\"aggTrade\",\"E\":1}\n",
        "{\"e\":\"agg\\u0054rade\",\"E\":1}", /* escapes */
        "{\"e\":\"aggTrade\",\"m\":\"a\\\"b\"}",
        "{\"e\":\"aggTrade\",\"m\":[\"a\\nb\"]}",
        "{\"e\":\"aggTrade\",\"m\":[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}", /* deep */
        "{\"e\":\"aggTrade\",\"m\":01}",                                  /* bad JSON */
        "{\"e\":\"aggTrade\",\"m\":[\"a\",]}",
        "{\"e\":\"aggTrade\",\"m\":[[\"a\",\"b\"],]}",
        "{\"e\":\"aggTrade\",\"m\":[[\"a\",\"b\"]}",
        "{\"e\":\"aggTrade\",\"m\":tru}",
        "{\"e\":\"aggTrade\",\"m\":\"a\x01\"}",
        "{\"stream\":\"x\",\"data\":{\"e\":\"aggTrade\",\"E\":1},\"x\":1}",
        "{\"stream\":\"x\",\"data\":{\"e\":\"aggTrade\",\"E\":1}",
        "{\"e\":\"aggTrade\",\"E\":1}}",
        "{\"e\":\"kline\",\"E\":1}", /* a broken kline */
        /* fuzz finding: an 18-digit negative E near the end; the key after it was read past
         * the frame (exact-size copies: ASan) */
        "{\"e\":\"kline\",\"E\":-162699272228596646`36}",
    };
    for (size_t i = 0; i < sizeof longway / sizeof *longway; i++)
        assert_false(agrees(longway[i]));
    static const char *const fast[] = {
        "{\"e\":\"aggTrade\",\"E\":1626992741017,\"s\":\"BTCUSDT\",\"p\":\"1.5\"}",
        "{\"e\":\"x\",\"a\":[],\"b\":{},\"c\":[[]],\"d\":[{}],\"f\":[1,-2.5e+3,true,false,null]}",
        "{\"e\":\"x\",\"nested\":{\"E\":1,\"E\":2,\"e\":3,\"k\":4,\"id\":5}}",
        "{\"e\":\"x\",\"b\":[[\"1\",\"2\",\"3\"],[\"4\"],[\"\",\"\"]],\"a\":[\"x\"]}",
        "{\"e\":\"\xc3\xa9v\xc3\xa9nement\",\"s\":\"\xe5\xb8\x81\xe5\xae\x89USDT\"}",
        "{\"stream\":\"x\",\"data\":{\"e\":\"x\",\"id\":1,\"result\":2}}",
        "{\"e\":\"x\",\"long\":"
        "\"0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567"
        "890123456789\"}",
        "{\"e\":\"\",\"E\":12345}",
    };
    for (size_t i = 0; i < sizeof fast / sizeof *fast; i++)
        assert_true(agrees(fast[i]));
}

/* Every truncation and many one-byte changes of a sample of the capture: both halves agree. */
static void test_fast_mutations(void **state)
{
    (void)state;
    static const char subst[] = "\"\\,:[]{} 0-.eta\x01\x7f";
    size_t tried = 0, fast = 0;
    for (size_t i = 0; i < nframes; i += 7) {
        char *m = malloc(frames[i].len);
        for (size_t pos = 0; pos < frames[i].len; pos++) {
            fast += agree(frames[i].p, pos);
            memcpy(m, frames[i].p, frames[i].len);
            for (size_t s = 0; s < sizeof subst - 1; s++) {
                m[pos] = subst[s];
                fast += agree(m, frames[i].len);
                tried++;
            }
        }
        free(m);
    }
    assert_true(tried > 100000);
    assert_true(fast > 0);
}

/* Numbers of every length, sign and leading zero, followed by every cut of the rest of a kline
 * frame: both halves agree, and (ASan run) nothing is read past the frame. */
static void test_fast_number_tails(void **state)
{
    (void)state;
    static const char *const heads[] = {
        "{\"e\":\"kline\",\"E\":",
        "{\"stream\":\"x\",\"data\":{\"e\":\"kline\",\"E\":1626992741424,\"s\":\"CTKUSDT\","
        "\"k\":{\"t\":1626992700000,\"T\":1626992759999,\"s\":\"CTKUSDT\",\"i\":\"1m\",\"f\":",
        "{\"e\":\"kline\",\"E\":1626992741424,\"s\":\"CTKUSDT\",\"k\":{\"t\":1626992700000,"
        "\"T\":1626992759999,\"s\":\"CTKUSDT\",\"i\":\"1m\",\"f\":23961275,\"L\":23961322,\"o\":"
        "\"1.01000\","
        "\"c\":\"1.01100\",\"h\":\"1.01100\",\"l\":\"1.01000\",\"v\":\"3917\",\"n\":48,\"x\":false,"
        "\"q\":\"3957.89900\",\"V\":\"1729\",\"Q\":\""};
    static const char *const tails[] = {
        ",\"s\":\"CTKUSDT\",\"k\":{\"t\":1626992700000,\"T\":1626992759999}}",
        ",\"L\":23961322,\"o\":\"1.01000\",\"c\":\"1.01100\",\"h\":\"1.01100\",\"l\":\"1.01000\","
        "\"v\":\"3917\",\"n\":48,\"x\":false,\"q\":\"3957.89900\",\"V\":\"1729\",\"Q\":\"1748."
        "01900\","
        "\"B\":\"0\"}}}",
        "\",\"B\":\"0\"}}"};
    static const char digits[] = "0123456789-."; /* '.' only in the decimal (head 2) */
    uint32_t seed = 7;
    size_t tried = 0;
    for (size_t h = 0; h < 3; h++) {
        for (int iter = 0; iter < 6000; iter++) {
            char num[32], buf[600];
            seed = seed * 1103515245u + 12345u;
            size_t n = 1 + (seed >> 16) % 22;
            for (size_t i = 0; i < n; i++) {
                seed = seed * 1103515245u + 12345u;
                unsigned r = (seed >> 16) % 40;
                num[i] = r < (h == 2 ? 12u : 11u) ? digits[r] : (char)('1' + r % 9);
            }
            /* a sign or a leading zero often: they take the scalar paths */
            seed = seed * 1103515245u + 12345u;
            if ((seed >> 16) % 4 == 0)
                num[0] = '-';
            else if ((seed >> 16) % 8 == 1)
                num[0] = '0';
            num[n] = 0;
            /* every cut of the tail, closed with a '}' (the fast path wants a frame that ends
             * with one), and the whole frame */
            size_t tl = strlen(tails[h]);
            for (size_t k = 0; k <= tl; k += 1 + (k > 24) * 7) {
                int len = snprintf(buf, sizeof buf, "%s%s%.*s}", heads[h], num, (int)k, tails[h]);
                (void)agree(buf, (size_t)len);
                tried++;
            }
            int len = snprintf(buf, sizeof buf, "%s%s%s", heads[h], num, tails[h]);
            (void)agree(buf, (size_t)len);
        }
    }
    assert_true(tried > 50000);
}

static void test_truncation(void **state)
{
    (void)state;
    size_t checked = 0;
    for (size_t i = 0; i < nframes; i++) {
        bool is_kline = strstr(frames[i].p, "\"e\":\"kline\"") != NULL;
        if (!is_kline && i % 16)
            continue;
        for (size_t n = 0; n < frames[i].len; n++) {
            kf__frame f;
            kf_kline k;
            assert_int_equal(dec(frames[i].p, n, &f, &k), KF__FRAME_MALFORMED);
            assert_non_null(f.why);
            checked++;
        }
    }
    /* replies and hand-made shapes too */
    static const char *more[] = {
        "{\"result\":null,\"id\":1}",
        "{\"result\":[\"btcusdt@kline_1m\"],\"id\":3}",
        "{\"error\":{\"code\":2,\"msg\":\"Invalid request: \\\"x\\\"\",\"x\":[1,{}]},\"id\":7}",
        "{\"id\":null,\"error\":{\"zz\":\"q\",\"msg\":\"m\",\"code\":-4}}",
        "{\"e\":\"aggTrade\",\"x\":{\"a\":[true,false,null,-1.5e-3,\"\\u00e9\"]}}",
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        kf__frame f;
        kf_kline k;
        size_t len = strlen(more[i]);
        assert_int_not_equal(dec(more[i], len, &f, &k), KF__FRAME_MALFORMED);
        for (size_t n = 0; n < len; n++)
            assert_int_equal(dec(more[i], n, &f, &k), KF__FRAME_MALFORMED);
    }
    assert_true(checked > 20000);
    assert_string_equal(why_of("{\"e\":\"kline\""), "truncated");
}

static void test_mutations(void **state)
{
    (void)state;
    static const unsigned char hostile[] = {'"', '\\', '{',  '}', '[', ']', ',', ':',
                                            0,   0x1f, 0xff, ' ', '9', '-', 'e', '.'};
    const char *base = BASE;
    size_t len = strlen(base);
    char *m = malloc(len);
    size_t kl = 0;
    for (size_t pos = 0; pos < len; pos++)
        for (size_t h = 0; h < sizeof hostile; h++) {
            memcpy(m, base, len);
            if ((unsigned char)m[pos] == hostile[h])
                continue;
            m[pos] = (char)hostile[h];
            kf__frame f;
            kf_kline k;
            kf__frame_kind kind = dec(m, len, &f, &k);
            if (kind == KF__FRAME_KLINE) {
                kl++;
                assert_true(k.interval_index >= 0 && k.interval_index < KF_INTERVAL_COUNT);
                assert_true(strlen(k.symbol) >= 1 && strlen(k.symbol) <= KF_SYMBOL_MAX);
            } else if (kind == KF__FRAME_MALFORMED) {
                assert_non_null(f.why);
            }
        }
    free(m);
    /* also every kline sample frame with a few values at every byte */
    for (size_t i = 0; i < nframes; i++) {
        if (!strstr(frames[i].p, "\"e\":\"kline\"") || i % 4)
            continue;
        char *c = malloc(frames[i].len);
        for (size_t pos = 0; pos < frames[i].len; pos++)
            for (size_t h = 0; h < 4; h++) {
                memcpy(c, frames[i].p, frames[i].len);
                c[pos] = (char)hostile[h * 3];
                kf__frame f;
                kf_kline k;
                (void)dec(c, frames[i].len, &f, &k);
            }
        free(c);
    }
    assert_true(kl > 0); /* e.g. a digit changed inside a number still decodes */
}

static void test_bad_types(void **state)
{
    (void)state;
    assert_string_equal(why_of(rep("\"o\":\"1.01000\"", "\"o\":1.01")), "k.o not a decimal string");
    assert_string_equal(why_of(rep("\"c\":\"1.01100\"", "\"c\":null")), "k.c not a decimal string");
    assert_string_equal(why_of(rep("\"h\":\"1.01100\"", "\"h\":\"1.0x\"")),
                        "k.h not a decimal string");
    assert_string_equal(why_of(rep("\"l\":\"1.01000\"", "\"l\":[\"1\"]")),
                        "k.l not a decimal string");
    assert_string_equal(why_of(rep("\"v\":\"3917\"", "\"v\":{}")), "k.v not a decimal string");
    assert_string_equal(why_of(rep("\"q\":\"3957.89900\"", "\"q\":true")),
                        "k.q not a decimal string");
    assert_string_equal(why_of(rep("\"V\":\"1729\"", "\"V\":\"17\\u00329\"")),
                        "k.V not a decimal string");
    assert_string_equal(why_of(rep("\"Q\":\"1748.01900\"", "\"Q\":\"\"")),
                        "k.Q not a decimal string");
    assert_string_equal(why_of(rep("\"t\":1626992700000", "\"t\":\"1626992700000\"")),
                        "k.t not an integer");
    assert_string_equal(why_of(rep("\"T\":1626992759999", "\"T\":1.5")), "k.T not an integer");
    assert_string_equal(why_of(rep("\"f\":23961275", "\"f\":1e5")), "k.f not an integer");
    assert_string_equal(why_of(rep("\"L\":23961322", "\"L\":null")), "k.L not an integer");
    assert_string_equal(why_of(rep("\"n\":48", "\"n\":true")), "k.n not an integer");
    assert_string_equal(why_of(rep("\"x\":false", "\"x\":0")), "k.x not true or false");
    assert_string_equal(why_of(rep("\"x\":false", "\"x\":\"false\"")), "k.x not true or false");
    assert_string_equal(why_of(rep("\"i\":\"1m\"", "\"i\":1")), "k.i not a string");
    assert_string_equal(why_of(rep("\"s\":\"CTKUSDT\",\"i\"", "\"s\":7,\"i\"")),
                        "k.s not a string");
    assert_string_equal(why_of(rep("\"E\":1626992741424", "\"E\":\"1\"")), "E not an integer");
    assert_string_equal(why_of(rep("\"s\":\"CTKUSDT\",\"k\"", "\"s\":null,\"k\"")),
                        "s not a string");
    assert_string_equal(why_of(rep("\"k\":{\"t\"", "\"k\":[],\"z\":{\"t\"")), "k not an object");
    assert_string_equal(why_of(rep("\"e\":\"kline\"", "\"e\":5")), "e not a string");
    assert_string_equal(why_of(rep("\"data\":{", "\"data\":[{")), "data not an object");
    assert_string_equal(why_of(rep("\"stream\":\"ctkusdt@kline_1m\"", "\"stream\":1")),
                        "stream not a string");
    /* B is ignored whatever it holds */
    kf__frame f;
    kf_kline k;
    assert_int_equal(decs(rep("\"B\":\"0\"", "\"B\":[1,{\"a\":null}]"), &f, &k), KF__FRAME_KLINE);
    /* a bad k field in a non-kline event is not the decoder's business */
    assert_int_equal(decs(rep("\"e\":\"kline\"", "\"e\":\"continuous_kline\""), &f, &k),
                     KF__FRAME_EVENT);
    assert_int_equal(
        decs(rep("\"e\":\"kline\",\"E\":1626992741424", "\"e\":\"x\",\"E\":\"str\""), &f, &k),
        KF__FRAME_EVENT);
}

static void test_numbers(void **state)
{
    (void)state;
    kf__frame f;
    kf_kline k;
    assert_string_equal(why_of(rep("\"t\":1626992700000", "\"t\":9223372036854775808")),
                        "number overflows int64");
    assert_string_equal(why_of(rep("\"t\":1626992700000", "\"t\":-9223372036854775809")),
                        "number overflows int64");
    assert_string_equal(why_of(rep("\"n\":48", "\"n\":123456789012345678901234567890")),
                        "number overflows int64");
    assert_int_equal(decs(rep("\"t\":1626992700000", "\"t\":9223372036854775807"), &f, &k),
                     KF__FRAME_KLINE);
    assert_true(k.open_time == INT64_MAX);
    assert_int_equal(decs(rep("\"t\":1626992700000", "\"t\":-9223372036854775808"), &f, &k),
                     KF__FRAME_KLINE);
    assert_true(k.open_time == INT64_MIN);
    assert_int_equal(decs(rep("\"f\":23961275,\"L\":23961322", "\"f\":-1,\"L\":-1"), &f, &k),
                     KF__FRAME_KLINE);
    assert_true(k.first_trade_id == -1 && k.last_trade_id == -1);
    assert_int_equal(decs(rep("\"n\":48", "\"n\":0"), &f, &k), KF__FRAME_KLINE);
    assert_true(k.trades == 0);
    assert_int_equal(decs(rep("\"n\":48", "\"n\":-0"), &f, &k), KF__FRAME_KLINE);
    assert_int_equal(decs(rep("\"n\":48", "\"n\":123456789"), &f, &k), KF__FRAME_KLINE);
    assert_true(k.trades == 123456789);
    /* invalid JSON numbers are syntax errors */
    assert_int_equal(decs(rep("\"n\":48", "\"n\":048"), &f, &k), KF__FRAME_MALFORMED);
    assert_int_equal(decs(rep("\"n\":48", "\"n\":-"), &f, &k), KF__FRAME_MALFORMED);
    assert_int_equal(decs(rep("\"n\":48", "\"n\":+48"), &f, &k), KF__FRAME_MALFORMED);
    assert_int_equal(decs(rep("\"n\":48", "\"n\":4.8e"), &f, &k), KF__FRAME_MALFORMED);
    /* decimals: kf_dec_parse rules */
    static const char *bad[] = {"1e5",
                                "-0",
                                "-0.000",
                                "01",
                                ".5",
                                "5.",
                                "+1",
                                "1.2.3",
                                "--1",
                                "1234567890123456789",
                                "0.0000000000000000001",
                                " 1",
                                "1 ",
                                "",
                                "-",
                                "0x10",
                                "1,5",
                                "NaN",
                                "Infinity"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char to[64];
        snprintf(to, sizeof to, "\"o\":\"%s\"", bad[i]);
        assert_string_equal(why_of(rep("\"o\":\"1.01000\"", to)), "k.o not a decimal string");
    }
    static const struct {
        const char *txt;
        int64_t mant;
        int32_t scale;
    } good[] = {
        {"0", 0, 0},
        {"0.00000", 0, 5},
        {"-1.5", -15, 1},
        {"123456789012345678", 123456789012345678LL, 0},
        {"-123456789012345678", -123456789012345678LL, 0},
        {"999999999999999999", 999999999999999999LL, 0},
        {"0.000000000000000001", 1, 18},
        {"0.000000000012345678", 12345678, 18},
        {"412345678901.12345", 41234567890112345LL, 5},
        {"0.01731", 1731, 5},
        {"83084.90", 8308490, 2},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char to[64], back[KF_DEC_MAXLEN];
        snprintf(to, sizeof to, "\"q\":\"%s\"", good[i].txt);
        assert_int_equal(decs(rep("\"q\":\"3957.89900\"", to), &f, &k), KF__FRAME_KLINE);
        assert_true(k.quote_volume.mant == good[i].mant);
        assert_int_equal(k.quote_volume.scale, good[i].scale);
        kf_dec_format(k.quote_volume, back, sizeof back);
        assert_string_equal(back, good[i].txt);
        /* same verdict as the reference parser */
        kf_dec ref;
        assert_int_equal(kf_dec_parse(good[i].txt, strlen(good[i].txt), &ref), KF_OK);
        assert_true(ref.mant == good[i].mant && ref.scale == good[i].scale);
    }
}

static void test_differential_dec(void **state)
{
    (void)state;
    /* the decoder's inline decimal parser agrees with kf_dec_parse on many texts */
    static const char alphabet[] = "0123456789.-";
    char txt[32], to[64];
    uint32_t seed = 12345;
    for (int iter = 0; iter < 20000; iter++) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 22;
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned r = (seed >> 16) % 40;
            txt[i] = r < 12 ? alphabet[r] : (char)('0' + r % 10);
        }
        txt[n] = 0;
        snprintf(to, sizeof to, "\"v\":\"%s\"", txt);
        kf__frame f;
        kf_kline k;
        kf_dec ref;
        kf_err e = kf_dec_parse(txt, n, &ref);
        kf__frame_kind kind = decs(rep("\"v\":\"3917\"", to), &f, &k);
        if (e == KF_OK) {
            assert_int_equal(kind, KF__FRAME_KLINE);
            assert_true(k.volume.mant == ref.mant && k.volume.scale == ref.scale);
        } else {
            assert_int_equal(kind, KF__FRAME_MALFORMED);
        }
    }
}

static void test_symbol_interval(void **state)
{
    (void)state;
    kf__frame f;
    kf_kline k;
    assert_string_equal(why_of(rep("\"s\":\"CTKUSDT\",\"i\"", "\"s\":\"ETHUSDT\",\"i\"")),
                        "k.s differs from s");
    /* only one of s / k.s present */
    assert_int_equal(decs(rep("\"s\":\"CTKUSDT\",\"i\"", "\"i\""), &f, &k), KF__FRAME_KLINE);
    assert_string_equal(k.symbol, "CTKUSDT");
    assert_int_equal(decs(rep("\"s\":\"CTKUSDT\",\"k\"", "\"k\""), &f, &k), KF__FRAME_KLINE);
    assert_string_equal(k.symbol, "CTKUSDT");
    char *nos = strdup(rep("\"s\":\"CTKUSDT\",\"k\"", "\"k\""));
    const char *at = strstr(nos, "\"s\":\"CTKUSDT\",");
    memmove((char *)at, at + 14, strlen(at + 14) + 1);
    assert_string_equal(why_of(nos), "missing s");
    free(nos);
    /* sizes and bytes */
    const char *s32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    char a[128], b[128];
    snprintf(a, sizeof a, "\"s\":\"%s\",\"k\"", s32);
    snprintf(b, sizeof b, "\"s\":\"%s\",\"i\"", s32);
    char *t = strdup(rep("\"s\":\"CTKUSDT\",\"k\"", a));
    char *at2 = strstr(t, "\"s\":\"CTKUSDT\",\"i\"");
    char *t2 = malloc(strlen(t) + 64);
    sprintf(t2, "%.*s%s%s", (int)(at2 - t), t, b, at2 + strlen("\"s\":\"CTKUSDT\",\"i\""));
    assert_int_equal(decs(t2, &f, &k), KF__FRAME_KLINE);
    assert_string_equal(k.symbol, s32);
    free(t);
    free(t2);
    assert_string_equal(why_of(rep("\"s\":\"CTKUSDT\",\"i\"", "\"i\"")), "(not malformed)");
    const char *frame33 = rep("\"s\":\"CTKUSDT\",\"i\"", "\"i\"");
    char *u = strdup(frame33);
    char *s1 = strstr(u, "\"CTKUSDT\"");
    char *v = malloc(strlen(u) + 64);
    sprintf(v, "%.*s\"%sX\"%s", (int)(s1 - u), u, s32, s1 + 9);
    assert_string_equal(why_of(v), "symbol over 32 bytes");
    free(u);
    free(v);
    assert_string_equal(why_of(rep("\"s\":\"CTKUSDT\",\"k\"", "\"s\":\"\",\"k\"")),
                        "k.s differs from s");
    static const char *badsym[] = {"BTC USDT", "BTC/USDT", "BTC@USDT", "BTC?",
                                   "A&B",      "A\\u0041", "A\\\"B"};
    for (size_t i = 0; i < sizeof badsym / sizeof badsym[0]; i++) {
        char to[64];
        snprintf(to, sizeof to, "\"i\"");
        char *x = strdup(rep("\"s\":\"CTKUSDT\",\"i\"", to));
        char *p = strstr(x, "\"CTKUSDT\"");
        char *y = malloc(strlen(x) + 64);
        sprintf(y, "%.*s\"%s\"%s", (int)(p - x), x, badsym[i], p + 9);
        assert_int_equal(decs(y, &f, &k), KF__FRAME_MALFORMED);
        free(x);
        free(y);
    }
    /* non-ASCII UTF-8 symbol, underscore */
    {
        char *x = strdup(rep("\"s\":\"CTKUSDT\",\"i\"", "\"i\""));
        char *p = strstr(x, "\"CTKUSDT\"");
        char *y = malloc(strlen(x) + 64);
        sprintf(y, "%.*s\"\xe5\xb8\x81\xe5\xae\x89USDT_261225\"%s", (int)(p - x), x, p + 9);
        assert_int_equal(decs(y, &f, &k), KF__FRAME_KLINE);
        assert_string_equal(k.symbol, "\xe5\xb8\x81\xe5\xae\x89USDT_261225");
        free(x);
        free(y);
    }
    /* intervals */
    for (int i = 0; i < KF_INTERVAL_COUNT; i++) {
        char to[32];
        snprintf(to, sizeof to, "\"i\":\"%s\"", kf_interval_name(i));
        assert_int_equal(decs(rep("\"i\":\"1m\"", to), &f, &k), KF__FRAME_KLINE);
        assert_int_equal(k.interval_index, i);
        assert_string_equal(k.interval, kf_interval_name(i));
        assert_int_equal(kf_interval_index(k.interval, strlen(k.interval)), i);
    }
    assert_int_equal(decs(rep("\"i\":\"1m\"", "\"i\":\"1M\""), &f, &k), KF__FRAME_KLINE);
    assert_int_equal(k.interval_index, 14);
    static const char *badiv[] = {"1s",  "1H", "1D",  "2m",  "",         "1",         "15M",
                                  "1mm", "m1", "60m", "1w ", "\\u0031m", "12h\\u0000"};
    for (size_t i = 0; i < sizeof badiv / sizeof badiv[0]; i++) {
        char to[64];
        snprintf(to, sizeof to, "\"i\":\"%s\"", badiv[i]);
        const char *w = why_of(rep("\"i\":\"1m\"", to));
        assert_true(!strcmp(w, "unknown interval") || !strcmp(w, "k.i not a string"));
    }
    assert_string_equal(why_of(rep("\"i\":\"1m\"", "\"i\":\"1s\"")), "unknown interval");
}

static void test_missing(void **state)
{
    (void)state;
    static const char *keys[] = {
        "\"t\":1626992700000,",  "\"T\":1626992759999,", "\"i\":\"1m\",",      "\"f\":23961275,",
        "\"L\":23961322,",       "\"o\":\"1.01000\",",   "\"c\":\"1.01100\",", "\"h\":\"1.01100\",",
        "\"l\":\"1.01000\",",    "\"v\":\"3917\",",      "\"n\":48,",          "\"x\":false,",
        "\"q\":\"3957.89900\",", "\"V\":\"1729\","};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *w = why_of(rep(keys[i], ""));
        char want[32];
        snprintf(want, sizeof want, "missing k.%c", keys[i][1]);
        assert_string_equal(w, want);
    }
    assert_string_equal(why_of(rep(",\"Q\":\"1748.01900\"", "")), "missing k.Q");
    assert_string_equal(why_of(rep("\"E\":1626992741424,", "")), "missing E");
    kf__frame f;
    kf_kline k;
    assert_int_equal(decs(rep(",\"B\":\"0\"", ""), &f, &k), KF__FRAME_KLINE);
    assert_string_equal(why_of("{\"e\":\"kline\",\"E\":1,\"s\":\"A\"}"), "missing k");
    assert_string_equal(why_of("{\"e\":\"kline\",\"E\":1,\"s\":\"A\",\"k\":{}}"), "missing k.t");
}

static void test_structure(void **state)
{
    (void)state;
    kf__frame f;
    kf_kline k;
    /* duplicates are rejected */
    assert_string_equal(why_of(rep("\"o\":\"1.01000\"", "\"o\":\"1\",\"o\":\"2\"")),
                        "duplicate key");
    assert_string_equal(why_of(rep("\"e\":\"kline\"", "\"e\":\"kline\",\"e\":\"kline\"")),
                        "duplicate key");
    /* unknown keys with nested values and escapes are skipped */
    assert_int_equal(
        decs(rep("\"B\":\"0\"",
                 "\"zz\":[1,-2.5e-3,[[],{}],{\"a\":[null,true,false,\"x\\\"}]\\\\\\u00e9\\n\"]}],"
                 "\"\\u0065\":{\"k\":{\"t\":1}},\"B\":\"0\",\"B2\":\"\\/\""),
             &f, &k),
        KF__FRAME_KLINE);
    check_base(&k);
    assert_int_equal(
        decs(rep("\"stream\"", "\"x\":{\"data\":{\"e\":1}},\"id\":[],\"stream\""), &f, &k),
        KF__FRAME_MALFORMED); /* id in an event frame must be a uint */
    assert_int_equal(
        decs(rep("\"stream\"", "\"x\":{\"data\":{\"e\":1}},\"y\":[],\"stream\""), &f, &k),
        KF__FRAME_KLINE);
    /* data before stream, keys in reverse order */
    const char *shuffled =
        "{\"data\":{\"k\":{\"B\":\"0\",\"Q\":\"1748.01900\",\"V\":\"1729\",\"q\":\"3957.89900\","
        "\"x\":false,\"n\":48,\"v\":\"3917\",\"l\":\"1.01000\",\"h\":\"1.01100\",\"c\":"
        "\"1.01100\",\"o\":\"1.01000\",\"L\":23961322,\"f\":23961275,\"i\":\"1m\",\"s\":"
        "\"CTKUSDT\",\"T\":1626992759999,\"t\":1626992700000},\"s\":\"CTKUSDT\",\"E\":"
        "1626992741424,\"e\":\"kline\"},\"stream\":\"ctkusdt@kline_1m\"}";
    assert_int_equal(decs(shuffled, &f, &k), KF__FRAME_KLINE);
    check_base(&k);
    assert_int_equal(f.stream_len, 16);
    assert_memory_equal(f.stream, "ctkusdt@kline_1m", 16);
    /* whitespace everywhere */
    const char *b = BASE;
    char *w = malloc(strlen(b) * 6 + 16);
    size_t n = 0;
    bool in_str = false;
    w[n++] = ' ';
    w[n++] = '\n';
    for (const char *p = b; *p; p++) {
        if (in_str) {
            w[n++] = *p;
            if (*p == '\\')
                w[n++] = *++p;
            else if (*p == '"')
                in_str = false;
            continue;
        }
        if (*p == '"') {
            in_str = true;
            w[n++] = *p;
            continue;
        }
        if (strchr("{}[],:", *p)) {
            memcpy(w + n, " \t", 2);
            n += 2;
            w[n++] = *p;
            memcpy(w + n, "\r\n ", 3);
            n += 3;
        } else {
            w[n++] = *p;
        }
    }
    w[n++] = '\n';
    assert_int_equal(dec(w, n, &f, &k), KF__FRAME_KLINE);
    check_base(&k);
    free(w);
    /* hostile shapes */
    assert_string_equal(why_of(""), "empty frame");
    assert_string_equal(why_of("   "), "truncated");
    assert_string_equal(why_of("[]"), "not a JSON object");
    assert_string_equal(why_of("{}"), "unknown message");
    assert_string_equal(why_of("{\"a\":1}"), "unknown message");
    assert_string_equal(why_of("{\"e\":\"x\"} x"), "trailing bytes after the object");
    assert_string_equal(why_of("{\"e\":\"x\"}{}"), "trailing bytes after the object");
    assert_string_equal(why_of("{\"e\":\"x\",}"), "expected a key string");
    assert_string_equal(why_of("{\"e\":\"x\" \"a\":1}"), "expected ',' or '}'");
    assert_string_equal(why_of("{\"e\" \"x\"}"), "expected ':'");
    assert_string_equal(why_of("{\"e\":\"x\",\"a\":[1,]}"), "unexpected byte");
    assert_string_equal(why_of("{\"e\":\"x\",\"a\":tru}"), "bad literal");
    assert_string_equal(why_of("{\"e\":\"x\",\"a\":\"\x01\"}"), "control byte in string");
    assert_string_equal(why_of("{\"e\":\"x\",\"a\":\"\\x\"}"), "bad escape in string");
    assert_string_equal(why_of("{\"e\":\"x\",\"a\":\"\\u12g4\"}"), "bad \\u escape");
    assert_string_equal(why_of("{\"stream\":\"a\",\"e\":\"x\"}"), "stream without data");
    assert_string_equal(why_of("{\"stream\":\"a\",\"data\":{\"a\":1}}"), "data without e");
    assert_string_equal(why_of("{\"data\":{\"e\":\"x\"},\"e\":\"y\"}"), "duplicate key");
    assert_string_equal(why_of("{\"data\":{\"e\":\"x\"},\"E\":1}"), "event keys next to data");
    assert_string_equal(why_of("{\"e\":\"x\",\"id\":1}"), "event with result, id or error");
    /* deep nesting */
    char deep[256];
    int d;
    for (int levels = 1; levels <= 40; levels++) {
        n = (size_t)snprintf(deep, sizeof deep, "{\"e\":\"x\",\"a\":");
        for (d = 0; d < levels; d++)
            deep[n++] = '[';
        for (d = 0; d < levels; d++)
            deep[n++] = ']';
        deep[n++] = '}';
        kf__frame_kind kind = dec(deep, n, &f, &k);
        if (levels <= KF__JSON_MAX_DEPTH - 1)
            assert_int_equal(kind, KF__FRAME_EVENT);
        else {
            assert_int_equal(kind, KF__FRAME_MALFORMED);
            assert_string_equal(f.why, "nesting too deep");
        }
    }
    /* nested objects: {"a":{"a":...}} inside k (k is at depth 3) */
    {
        char kd[1024];
        for (int levels = 1; levels <= 32; levels++) {
            char val[512];
            size_t vn = 0;
            for (d = 0; d < levels; d++)
                vn += (size_t)sprintf(val + vn, "{\"a\":");
            vn += (size_t)sprintf(val + vn, "1");
            for (d = 0; d < levels; d++)
                val[vn++] = '}';
            val[vn] = 0;
            snprintf(kd, sizeof kd, "\"B\":%s", val);
            kf__frame_kind kind = decs(rep("\"B\":\"0\"", kd), &f, &k);
            assert_int_equal(kind, levels <= KF__JSON_MAX_DEPTH - 3 ? KF__FRAME_KLINE
                                                                    : KF__FRAME_MALFORMED);
        }
    }
    /* 10 MB strings */
    size_t big = 10u << 20;
    char *s = malloc(big + 512);
    const char *pre = "{\"e\":\"aggTrade\",\"junk\":\"";
    size_t pl = strlen(pre);
    memcpy(s, pre, pl);
    memset(s + pl, 'a', big);
    memcpy(s + pl + big, "\"}", 2);
    assert_int_equal(dec(s, pl + big + 2, &f, &k), KF__FRAME_EVENT);
    assert_int_equal(dec(s, pl + big + 1, &f, &k), KF__FRAME_MALFORMED);
    pre = "{\"e\":\"kline\",\"s\":\"";
    pl = strlen(pre);
    memcpy(s, pre, pl);
    memset(s + pl, 'A', big);
    /* BASE without k.s, from ,"k": on, without the wrapper's closing brace */
    const char *nok = rep("\"s\":\"CTKUSDT\",\"i\"", "\"i\"");
    const char *rest = strstr(nok, ",\"k\":");
    size_t rl = strlen(rest) - 1;
    memcpy(s + pl + big, "\",\"E\":1", 7);
    memcpy(s + pl + big + 7, rest, rl);
    assert_int_equal(dec(s, pl + big + 7 + rl, &f, &k), KF__FRAME_MALFORMED);
    assert_string_equal(f.why, "symbol over 32 bytes");
    memset(s + pl, 'A', 32);
    memmove(s + pl + 32, s + pl + big, 7 + rl);
    assert_int_equal(dec(s, pl + 32 + 7 + rl, &f, &k), KF__FRAME_KLINE);
    assert_int_equal(strlen(k.symbol), 32);
    free(s);
}

static void test_replies(void **state)
{
    (void)state;
    kf__frame f;
    kf_kline k;
    assert_int_equal(decs("{\"result\":null,\"id\":1}", &f, &k), KF__FRAME_ACK);
    assert_true(f.has_id && f.id == 1);
    assert_null(f.result);
    assert_int_equal(decs(" {\"id\":18446744073709551615 , \"result\" : null}\n", &f, &k),
                     KF__FRAME_ACK);
    assert_true(f.has_id && f.id == UINT64_MAX);
    assert_string_equal(why_of("{\"result\":null,\"id\":18446744073709551616}"),
                        "id overflows uint64");
    assert_string_equal(why_of("{\"result\":null,\"id\":-1}"), "id not an unsigned integer");
    assert_string_equal(why_of("{\"result\":null,\"id\":1.0}"), "id not an unsigned integer");
    assert_string_equal(why_of("{\"result\":null,\"id\":\"1\"}"), "id not an unsigned integer");
    assert_string_equal(why_of("{\"result\":null}"), "result without id");
    assert_string_equal(why_of("{\"result\":null,\"id\":null}"), "result with null id");
    assert_string_equal(why_of("{\"result\":null,\"id\":1,\"id\":2}"), "duplicate key");
    assert_int_equal(decs("{\"result\":[\"btcusdt@kline_1m\",\"a\\\"b\"],\"id\":3}", &f, &k),
                     KF__FRAME_RESULT);
    assert_true(f.id == 3);
    assert_int_equal(f.result_len, strlen("[\"btcusdt@kline_1m\",\"a\\\"b\"]"));
    assert_memory_equal(f.result, "[\"btcusdt@kline_1m\",\"a\\\"b\"]", f.result_len);
    assert_int_equal(decs("{\"result\":true,\"id\":5}", &f, &k), KF__FRAME_RESULT);
    assert_int_equal(f.result_len, 4);
    assert_int_equal(decs("{\"result\":{\"a\":[1]},\"id\":0}", &f, &k), KF__FRAME_RESULT);
    assert_true(f.has_id && f.id == 0);
    assert_string_equal(why_of("{\"result\":[1,,2],\"id\":3}"), "unexpected byte");
    /* errors */
    assert_int_equal(decs("{\"error\":{\"code\":2,\"msg\":\"Invalid request: bad \\\"x\\\"\"},"
                          "\"id\":7}",
                          &f, &k),
                     KF__FRAME_ERROR);
    assert_true(f.has_id && f.id == 7 && f.err_code == 2);
    assert_int_equal(f.err_msg_len, strlen("Invalid request: bad \\\"x\\\""));
    assert_memory_equal(f.err_msg, "Invalid request: bad \\\"x\\\"", f.err_msg_len);
    const char *e3 = "{\"error\":{\"code\":3,\"msg\":\"Invalid JSON: expected value at line 1 "
                     "column 1\"}}";
    assert_int_equal(decs(e3, &f, &k), KF__FRAME_ERROR);
    assert_false(f.has_id);
    assert_true(f.err_code == 3);
    assert_int_equal(f.err_msg_len, strlen("Invalid JSON: expected value at line 1 column 1"));
    assert_int_equal(
        decs("{\"id\":null,\"error\":{\"msg\":\"m\",\"extra\":[1],\"code\":-4}}", &f, &k),
        KF__FRAME_ERROR);
    assert_false(f.has_id);
    assert_true(f.err_code == -4);
    assert_string_equal(why_of("{\"error\":{\"code\":4}}"), "missing error.msg");
    assert_string_equal(why_of("{\"error\":{\"msg\":\"x\"}}"), "missing error.code");
    assert_string_equal(why_of("{\"error\":{\"code\":\"4\",\"msg\":\"x\"}}"),
                        "error.code not an integer");
    assert_string_equal(why_of("{\"error\":{\"code\":4,\"msg\":5}}"), "error.msg not a string");
    assert_string_equal(why_of("{\"error\":\"x\"}"), "error not an object");
    /* fuzz finding: an unknown key of error truncated right after its ':' */
    assert_string_equal(why_of("{\"error\":{\"sode\":"), "truncated");
    assert_string_equal(why_of("{\"error\":{\"code\":"), "error.code not an integer");
    assert_string_equal(why_of("{\"error\":{\"msg\":"), "truncated");
    assert_string_equal(why_of("{\"error\":{\"code\":4,\"msg\":\"x\"},\"result\":null,\"id\":1}"),
                        "both result and error");
    assert_string_equal(why_of("{\"id\":1}"), "unknown message");
    /* events */
    assert_int_equal(decs("{\"e\":\"aggTrade\",\"E\":1,\"s\":\"X\",\"p\":\"1\"}", &f, &k),
                     KF__FRAME_EVENT);
    assert_int_equal(f.event_len, 8);
    assert_memory_equal(f.event, "aggTrade", 8);
    assert_int_equal(decs("{\"stream\":\"btcusdt_perpetual@continuousKline_1m\",\"data\":{\"e\":"
                          "\"continuous_kline\",\"E\":1,\"ps\":\"BTCUSDT\",\"ct\":\"PERPETUAL\","
                          "\"k\":{\"t\":1,\"i\":\"1m\",\"o\":\"1\"}}}",
                          &f, &k),
                     KF__FRAME_EVENT);
    assert_int_equal(f.event_len, 16);
    assert_int_equal(decs("{\"e\":\"Kline\"}", &f, &k), KF__FRAME_EVENT);
    assert_int_equal(decs("{\"e\":\"kline \"}", &f, &k), KF__FRAME_EVENT);
}

/* Counting allocator */
static size_t allocs;
static void *count_malloc(size_t n)
{
    allocs++;
    return malloc(n);
}
static void *count_realloc(void *p, size_t n)
{
    allocs++;
    return realloc(p, n);
}

static void test_no_alloc(void **state)
{
    (void)state;
    kf_set_allocator(count_malloc, count_realloc, free);
    size_t kl = 0;
    for (int r = 0; r < 100; r++)
        for (size_t i = 0; i < nframes; i++) {
            kf__frame f;
            kf_kline k;
            kl += kf__decode(frames[i].p, frames[i].len, &f, &k) == KF__FRAME_KLINE;
            kl += kf_kline_decode(frames[i].p, frames[i].len, &k) == KF_OK;
        }
    kf_set_allocator(NULL, NULL, NULL);
    assert_int_equal(kl, 2 * 100 * 67);
    assert_int_equal(allocs, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base),
        cmocka_unit_test(test_samples),
        cmocka_unit_test(test_spot),
        cmocka_unit_test(test_fast_vs_general),
        cmocka_unit_test(test_fast_event_edges),
        cmocka_unit_test(test_fast_mutations),
        cmocka_unit_test(test_fast_number_tails),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_bad_types),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_differential_dec),
        cmocka_unit_test(test_symbol_interval),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_no_alloc),
    };
    return cmocka_run_group_tests(tests, load_samples, free_samples);
}
