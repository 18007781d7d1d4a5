/*
 * The decoder's fast paths (decode.h: kf__decode_fast). Binance writes every
 * frame in one compact layout: no whitespace, "e" first, the kline keys in one
 * order. These paths handle exactly that and give up (return false; *f
 * untouched, *k unspecified) on the first deviation: other key order,
 * whitespace, escapes, 16 digits or more, deep nesting, a syntax error. The
 * general parser (kline.c) then decides, so every frame gets the same result
 * on both paths; tests/unit/test_decode_kline.c (test_fast_*) and
 * fuzz/fuzz_decode.c compare them on every input.
 *
 *  - klines: a template, keys and separators compared in order, no dispatch;
 *    digit runs measured by word arithmetic and stepped over by a switch
 *    (run8), one bounds check per number and the key after it (INT_LIT,
 *    DEC_LIT);
 *  - every other event (aggTrade, depthUpdate, bookTicker, ...): a validating
 *    walk over compact JSON (fast_event, compact_skip) that finds string ends
 *    in a 64-byte window of stop bytes (qwin), tracks what the general parser
 *    tracks (the duplicate E and s keys) and gives up on keys the general
 *    parser treats specially (a second e, k, and the reply keys of an
 *    unwrapped frame).
 *
 * docs/benchmarks.md has the measurements behind these choices.
 */
#include <string.h>

#include "decode/decode.h"
#include "decode/json.h"
#include "decode/lex.h"

HOT uint64_t nondigits8(uint64_t v) /* 0x80 in each byte that is no ASCII digit */
{
    /* a carry or borrow only travels to later bytes: the lowest flagged byte is exact */
    return ((v + 0x4646464646464646ULL) | (v - 0x3030303030303030ULL)) & 0x8080808080808080ULL;
}

/* 8 bytes at p are all ASCII digits. */
HOT bool eight_are_digits(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return nondigits8(v) == 0;
}

/* Digits at *pp appended to m, *pp moved past them, with no bounds check: the frame ends with
 * '}', which stops the loop at the latest. */
HOT uint64_t more_digits(const char **pp, uint64_t m)
{
    const char *p = *pp;
    unsigned d;
    while ((d = (unsigned)(*p - '0')) <= 9) {
        m = m * 10 + d;
        p++;
    }
    *pp = p;
    return m;
}

/* JSON integer of 1..18 digits at p; returns the byte after it or NULL. */
static __attribute__((noinline)) const char *fast_int(const char *p, const char *end, int64_t *out)
{
    if (p >= end)
        return NULL;
    bool neg = *p == '-';
    p += neg;
    const char *s = p;
    uint64_t m = 0;
    if (end - p >= 16 && eight_are_digits(p)) {
        m = eight_digits(p);
        p += 8;
    }
    m = more_digits(&p, m);
    size_t n = (size_t)(p - s);
    if (n == 0 || n > 18 || (*s == '0' && n > 1))
        return NULL;
    *out = neg ? -(int64_t)m : (int64_t)m;
    return p;
}

/* Decimal text at p (after the opening quote) with at most 18 digits in all; returns the byte
 * after it (the caller checks the closing quote) or NULL. Same rules as kf_dec_parse. */
static __attribute__((noinline)) const char *fast_dec(const char *p, const char *end, kf_dec *out)
{
    if (p >= end)
        return NULL;
    bool neg = *p == '-';
    p += neg;
    const char *s = p;
    uint64_t m = 0;
    m = more_digits(&p, m);
    size_t nint = (size_t)(p - s), scale = 0;
    if (nint == 0 || (*s == '0' && nint > 1))
        return NULL;
    if (p < end && *p == '.') {
        const char *f0 = ++p;
        m = more_digits(&p, m);
        scale = (size_t)(p - f0);
        if (scale == 0)
            return NULL;
    }
    if (nint + scale > 18 || (neg && m == 0))
        return NULL;
    out->mant = neg ? -(int64_t)m : (int64_t)m;
    out->scale = (int32_t)scale;
    return p;
}

/*
 * Digit runs of the kline template. A loop over the digits moves the cursor by one predicted
 * branch per digit (about 6 instructions each); finding a run's end with word arithmetic
 * instead made the next field's address wait for that arithmetic (fewer instructions, yet
 * slower). run8() takes the best of both: word arithmetic finds the length, a switch on it
 * moves the cursor by a constant per case, so the branch predictor supplies the length and
 * the value (SWAR) is computed off the critical path. Kline frames: 137 -> 115 ns.
 */

/* Value of 8 digit values (0..9 each, the first in the lowest byte). */
HOT uint64_t reduce8(uint64_t d)
{
    d = (d * 10) + (d >> 8);
    return (((d & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
            (((d >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >>
           32;
}

/* Value of 4 digit values (0..9 each, the first in the lowest byte). */
HOT uint64_t reduce4(uint32_t d)
{
    d = (d * 10) + (d >> 8);
    return (((d & 0x00FF00FFu) * (1u + (100u << 16))) >> 16) & 0xFFFFu;
}

/* The digit run at *pp (8 bytes readable), at most 8 digits: advances *pp over it, stores its
 * value and returns its length (8: 8 or more). The digits are moved to the top of the word;
 * the zeros shifted in below act as leading '0's. */
HOT unsigned run8(const char **pp, uint64_t *m)
{
    uint64_t v;
    memcpy(&v, *pp, 8);
    uint64_t nd = nondigits8(v), d = v - 0x3030303030303030ULL;
    switch (nd ? (unsigned)__builtin_ctzll(nd) >> 3 : 8u) {
    case 0:
        *m = 0;
        return 0;
    case 1:
        *m = d & 0xFF;
        *pp += 1;
        return 1;
    case 2:
        *m = (d & 0xFF) * 10 + ((d >> 8) & 0xFF);
        *pp += 2;
        return 2;
    case 3:
        *m = reduce4((uint32_t)d << 8);
        *pp += 3;
        return 3;
    case 4:
        *m = reduce4((uint32_t)d);
        *pp += 4;
        return 4;
    case 5:
        *m = reduce8(d << 24);
        *pp += 5;
        return 5;
    case 6:
        *m = reduce8(d << 16);
        *pp += 6;
        return 6;
    case 7:
        *m = reduce8(d << 8);
        *pp += 7;
        return 7;
    default:
        *m = reduce8(d);
        *pp += 8;
        return 8;
    }
}

/* The digit run at *pp (16 bytes readable), at most 15 digits (returns 16 for more). */
HOT unsigned run16(const char **pp, uint64_t *m)
{
    unsigned n = run8(pp, m);
    if (n == 8) {
        uint64_t lo;
        unsigned n2 = run8(pp, &lo);
        *m = *m * pow10_u64[n2] + lo;
        n += n2;
    }
    return n;
}

/* JSON integer of 1..15 digits at p (17 bytes readable from p), or NULL; a sign and a leading
 * zero go to fast_int, which decides them the same way. */
HOT const char *run_int(const char *p, const char *end, int64_t *out)
{
    if (*p == '-' || *p == '0')
        return fast_int(p, end, out);
    uint64_t m;
    unsigned n = run16(&p, &m);
    if (n == 0 || n > 15)
        return NULL; /* not a number, or 16+ digits: the general parser */
    *out = (int64_t)m;
    return p;
}

/*
 * Decimal text at p (after the opening quote), the rules of fast_dec, which takes a sign and,
 * near_end, what lies too close to the end for the digit runs; runs of 16+ digits go to the
 * general parser. Without near_end the caller checked that 33 bytes are readable from p.
 */
HOT const char *dec_runs(const char *p, const char *end, kf_dec *out, bool near_end)
{
    if ((near_end && end - p < 17) || *p == '-')
        return fast_dec(p, end, out);
    const char *s = p;
    uint64_t m, frac;
    unsigned ni = run16(&p, &m), scale = 0;
    if (ni == 0 || ni > 15 || (*s == '0' && ni > 1))
        return NULL;
    if (*p == '.') {
        if (near_end && end - (p + 1) < 16)
            return fast_dec(s, end, out);
        p++;
        scale = run16(&p, &frac);
        if (scale == 0 || ni + scale > 18)
            return NULL;
        m = m * pow10_u64[scale] + frac;
    }
    out->mant = (int64_t)m;
    out->scale = (int32_t)scale;
    return p;
}

HOT const char *run_dec(const char *p, const char *end, kf_dec *out)
{
    return dec_runs(p, end, out, false);
}

/* run_int and run_dec near the end of the frame: the digit runs while 16 bytes are left,
 * else the scalar loops. Not inlined: the template has one copy, not one per number. */
static __attribute__((noinline)) const char *int_near_end(const char *p, const char *end,
                                                          int64_t *out)
{
    return end - p >= 17 ? run_int(p, end, out) : fast_int(p, end, out);
}

static __attribute__((noinline)) const char *dec_near_end(const char *p, const char *end,
                                                          kf_dec *out)
{
    return dec_runs(p, end, out, true);
}

/* p[0..n) == s[0..n) for a small constant n: a few overlapping word loads, no memcmp call. */
HOT bool lit_eq(const char *p, const char *s, size_t n)
{
    uint64_t a8, b8, c8, d8;
    uint32_t a4, b4, c4, d4;
    if (n >= 8) {
        uint64_t diff = 0;
        size_t i = 0;
        for (; i + 8 < n; i += 8) {
            memcpy(&a8, p + i, 8);
            memcpy(&b8, s + i, 8);
            diff |= a8 ^ b8;
        }
        memcpy(&c8, p + n - 8, 8);
        memcpy(&d8, s + n - 8, 8);
        return (diff | (c8 ^ d8)) == 0;
    }
    if (n >= 4) {
        memcpy(&a4, p, 4);
        memcpy(&b4, s, 4);
        memcpy(&c4, p + n - 4, 4);
        memcpy(&d4, s + n - 4, 4);
        return ((a4 ^ b4) | (c4 ^ d4)) == 0;
    }
    for (size_t i = 0; i < n; i++)
        if (p[i] != s[i])
            return false;
    return true;
}

#define LIT(s)                                                                                     \
    do {                                                                                           \
        if (end - p < (ptrdiff_t)sizeof(s) - 1 || !lit_eq(p, s, sizeof(s) - 1))                    \
            return false;                                                                          \
        p += sizeof(s) - 1;                                                                        \
    } while (0)
/*
 * A number and the literal after it, with one bounds check while the frame goes on far enough:
 * an integer's runs read 16 bytes and it spans at most 19 (fast_int takes a sign or a leading
 * zero and up to 18 digits), a decimal's runs read up to 33 bytes and it spans at most 20.
 * Closer to the end, checked step by step.
 */
#define NUM_LIT(field, s, room, run, near)                                                         \
    do {                                                                                           \
        if (end - p >= (room)) {                                                                   \
            if (!(p = run(p, end, &w.field)) || !lit_eq(p, s, sizeof(s) - 1))                      \
                return false;                                                                      \
            p += sizeof(s) - 1;                                                                    \
        } else {                                                                                   \
            if (!(p = near(p, end, &w.field)))                                                     \
                return false;                                                                      \
            LIT(s);                                                                                \
        }                                                                                          \
    } while (0)
#define INT_LIT(field, s) NUM_LIT(field, s, 19 + (ptrdiff_t)sizeof(s), run_int, int_near_end)
#define DEC_LIT(field, s)                                                                          \
    do {                                                                                           \
        _Static_assert(sizeof(s) - 1 <= 13, "covered by the 33-byte check");                       \
        NUM_LIT(field, s, 33, run_dec, dec_near_end);                                              \
    } while (0)
/* A string without escapes or control bytes up to its closing quote (p stays on it). */
#define STR(s, n)                                                                                  \
    do {                                                                                           \
        const char *q_ = kf__json_scan_str(p, end);                                                \
        if (q_ >= end || *q_ != '"')                                                               \
            return false;                                                                          \
        s = p;                                                                                     \
        n = (size_t)(q_ - p);                                                                      \
        p = q_;                                                                                    \
    } while (0)

/* After the event object's '}' at p: the wrapper's '}' when wrapped, then the end of the frame
 * (trailing whitespace is left to the general parser). */
HOT bool frame_end(const char *p, const char *end, bool wrapped)
{
    if (wrapped) {
        if (p >= end || *p != '}')
            return false;
        p++;
    }
    return p == end;
}

/* a[0..n) == b[0..n) (a > b, both inside the frame, a + n < end): one 16-byte compare for
 * the usual symbol, memcmp (a call) otherwise. */
HOT bool same_bytes(const char *a, const char *b, size_t n, const char *end)
{
#ifdef __SSE2__
    if (n <= 16 && end - a >= 16) {
        unsigned eq = (unsigned)_mm_movemask_epi8(
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(const void *)a),
                           _mm_loadu_si128((const __m128i *)(const void *)b)));
        return (~eq & ((1u << n) - 1)) == 0;
    }
#endif
    (void)end;
    return memcmp(a, b, n) == 0;
}

/* The kline template: p just after `{"e":"kline",` (event points at "kline"). *out is written
 * in place as the fields go by: complete on true, unspecified on false. */
static bool fast_kline(const char *p, const char *end, const char *event, bool wrapped,
                       kf__frame *f, kf_kline *out)
{
    const char *sym, *ival, *b;
    size_t sym_len, ival_len, b_len;
#define w (*out) /* written in place: *out is unspecified unless the frame is a kline */
    LIT("\"E\":");
    INT_LIT(event_time, ",\"s\":\"");
    STR(sym, sym_len);
    LIT("\",\"k\":{\"t\":");
    INT_LIT(open_time, ",\"T\":");
    INT_LIT(close_time, ",\"s\":\"");
    /* k.s: the same bytes as s and a quote (s has no quote, backslash or control byte, so a
     * scan of k.s would stop at the same place): one compare instead of a scan */
    if (end - p <= (ptrdiff_t)sym_len || !same_bytes(p, sym, sym_len, end) || p[sym_len] != '"')
        return false;
    p += sym_len;
    LIT("\",\"i\":\"");
    /* k.i: 2 or 3 bytes, checked by interval_index() below (no quote, backslash or control
     * byte can pass it), then the quote */
    ival = p;
    if (end - p >= 4 && p[2] == '"')
        ival_len = 2;
    else if (end - p >= 4 && p[3] == '"')
        ival_len = 3;
    else
        return false;
    p += ival_len;
    LIT("\",\"f\":");
    INT_LIT(first_trade_id, ",\"L\":");
    INT_LIT(last_trade_id, ",\"o\":\"");
    DEC_LIT(open, "\",\"c\":\"");
    DEC_LIT(close, "\",\"h\":\"");
    DEC_LIT(high, "\",\"l\":\"");
    DEC_LIT(low, "\",\"v\":\"");
    DEC_LIT(volume, "\",\"n\":");
    INT_LIT(trades, ",\"x\":");
    if (end - p >= 4 && lit_eq(p, "true", 4)) {
        w.closed = true;
        p += 4;
    } else if (end - p >= 5 && lit_eq(p, "false", 5)) {
        w.closed = false;
        p += 5;
    } else {
        return false;
    }
    LIT(",\"q\":\"");
    DEC_LIT(quote_volume, "\",\"V\":\"");
    DEC_LIT(taker_buy_base, "\",\"Q\":\"");
    DEC_LIT(taker_buy_quote, "\",\"B\":\"");
    if (end - p >= 3 && lit_eq(p, "0\"}", 3)) { /* k.B is always "0" */
        p += 3;
    } else {
        STR(b, b_len);
        (void)b;
        (void)b_len;
        LIT("\"}");
    }
    LIT("}");
    if (!frame_end(p, end, wrapped))
        return false;
    /* the checks of finish_kline() */
    if (sym_len == 0 || sym_len > KF_SYMBOL_MAX)
        return false;
    int iv = interval_index(ival, ival_len);
    if (iv < 0 || !copy_symbol(w.symbol, sym, sym_len, end))
        return false;
    memset(w.interval, 0, sizeof w.interval);
    memcpy(w.interval, ival, ival_len);
    w.interval_index = iv;
    f->kind = KF__FRAME_KLINE;
    f->event = event;
    f->event_len = 5;
    return true;
#undef w
}

#define COMPACT_MAX_DEPTH 16 /* well inside KF__JSON_MAX_DEPTH: deeper values go the long way */

/* Skips the JSON number at p ('-' or a digit); NULL on a syntax error. */
HOT const char *compact_number(const char *p, const char *end)
{
    p += *p == '-';
    if (p >= end)
        return NULL;
    if (*p == '0') {
        p++;
    } else if ((unsigned)(*p - '1') <= 8u) {
        /* digit by digit, 8 at a time while they last: the next position then comes from
         * predicted branches, not from a scan's result (Binance's ids and times have 12 or 13) */
        p++;
        while (end - p >= 8 && eight_are_digits(p))
            p += 8;
        while (p < end && is_digit(*p))
            p++;
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        p = kf__json_scan_digits(p + 1, end);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        p = kf__json_scan_digits(p + 1, end);
    }
    return p;
}

/*
 * String ends from a 64-byte window of "stop" bytes (quote, backslash, control byte): the
 * strings of an array (depth levels, price/quantity pairs) and of the frame's first bytes are
 * found by clearing bits, not by one scan per string, whose result would be the next scan's
 * address (that wait, more than the instructions, was the cost).
 */
typedef struct qwin {
    const char *base; /* the window covers [base, base + 64) clipped to the frame's end */
    uint64_t stops;   /* bit i: base[i] is '"', '\\' or a control byte */
} qwin;

#ifdef __SSE2__
HOT unsigned stop_mask(__m128i v)
{
    const __m128i quote = _mm_set1_epi8('"'), bsl = _mm_set1_epi8('\\'), c1f = _mm_set1_epi8(0x1f);
    return (unsigned)_mm_movemask_epi8(
        _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bsl)),
                     _mm_cmpeq_epi8(_mm_min_epu8(v, c1f), v)));
}
#endif

/* Loads the window at x < end. The tail reads the frame's last 16 bytes: kf__decode_fast takes
 * only frames of 16 bytes or more. */
HOT void qwin_load(qwin *w, const char *x, const char *end)
{
    uint64_t s = 0;
#ifdef __SSE2__
    if (end - x >= 64) { /* the usual case: four loads, no branch */
        for (unsigned i = 0; i < 64; i += 16)
            s |= (uint64_t)stop_mask(_mm_loadu_si128((const __m128i *)(const void *)(x + i))) << i;
    } else {
        for (unsigned i = 0; x + i < end; i += 16) {
            if (end - (x + i) >= 16) {
                s |= (uint64_t)stop_mask(_mm_loadu_si128((const __m128i *)(const void *)(x + i)))
                     << i;
            } else { /* the 16 bytes that end the frame, shifted into place */
                unsigned sh = (unsigned)(16 - (end - (x + i)));
                s |= (uint64_t)(stop_mask(
                                    _mm_loadu_si128((const __m128i *)(const void *)(end - 16))) >>
                                sh)
                     << i;
            }
        }
    }
#else
    for (unsigned i = 0; i < 64 && x + i < end; i++)
        if (x[i] == '"' || x[i] == '\\' || (unsigned char)x[i] < 0x20)
            s |= 1ULL << i;
#endif
    w->base = x;
    w->stops = s;
}

/* The closing quote of the string whose content starts at x (x < end), or NULL (an escape or
 * a control byte first, or unterminated). */
HOT const char *qwin_close(qwin *w, const char *x, const char *end)
{
    size_t off = (size_t)(x - w->base);
    uint64_t m = off < 64 ? w->stops >> off : 0;
    if (!m) {
        qwin_load(w, x, end);
        if (!(m = w->stops)) /* longer than the window: a scan */
            return (x = kf__json_scan_str(x, end)) < end && *x == '"' ? x : NULL;
    }
    x += __builtin_ctzll(m);
    return *x == '"' ? x : NULL;
}

/* A plain key at p (its opening quote) directly followed by ':'; returns the byte after the
 * ':' or NULL. One-letter keys, most of Binance's, need no window (and no wait for one). */
HOT const char *compact_key(const char *p, const char *end, qwin *w, const char **k, size_t *n)
{
    if (end - p >= 4 && p[0] == '"' && p[2] == '"' && p[3] == ':' &&
        (unsigned)((p[1] | 0x20) - 'a') < 26u) {
        *k = p + 1;
        *n = 1;
        return p + 4;
    }
    const char *q;
    if (p >= end || *p != '"' || !(q = qwin_close(w, p + 1, end)) || end - q < 2 || q[1] != ':')
        return NULL;
    *k = p + 1;
    *n = (size_t)(q - (p + 1));
    return q + 2;
}

/*
 * Skips one value at p in compact JSON (no whitespace, strings without escapes, at most
 * COMPACT_MAX_DEPTH containers) and validates it; returns the byte after it or NULL.
 */
static inline const char *compact_skip(const char *p, const char *end, qwin *w)
{
    uint32_t objs = 0; /* bit 0: the innermost open container is an object; bit 1: the next... */
    unsigned lvl = 0;
    const char *q, *k;
    size_t n;
value:
    if (p >= end)
        return NULL;
    if (*p == '"') {
        if (!(q = qwin_close(w, p + 1, end)))
            return NULL;
        p = q + 1;
    } else if (*p == '[' && end - p >= 3 && (p[1] == '"' || (p[1] == '[' && p[2] == '"'))) {
        /* an array of strings (a price level), or of such arrays (a side of the book): string
         * after string without the dispatch */
        bool nested = p[1] == '[';
        p += nested;
        for (;;) {
            p++; /* at a string's opening quote */
            if (!(q = qwin_close(w, p + 1, end)) || end - q < 3)
                return NULL;
            if (q[1] == ',' && q[2] == '"') {
                p = q + 1;
                continue;
            }
            if (q[1] != ']')
                return NULL;
            p = q + 2;
            if (!nested)
                break;
            if (end - p >= 3 && p[0] == ',' && p[1] == '[' && p[2] == '"') { /* the next level */
                p += 1;
                continue;
            }
            if (p >= end || p[0] != ']')
                return NULL;
            p++;
            break;
        }
    } else if (*p == '[' || *p == '{') {
        if (lvl == COMPACT_MAX_DEPTH)
            return NULL;
        objs = (objs << 1) | (*p == '{');
        lvl++;
        if (++p >= end)
            return NULL;
        if (*p == (objs & 1 ? '}' : ']')) { /* empty */
            p++;
            objs >>= 1;
            lvl--;
        } else if (objs & 1) {
            goto key;
        } else {
            goto value;
        }
    } else if (*p == '-' || is_digit(*p)) {
        if (!(p = compact_number(p, end)))
            return NULL;
    } else if (*p == 't' && end - p >= 4 && memcmp(p, "true", 4) == 0) {
        p += 4;
    } else if (*p == 'f' && end - p >= 5 && memcmp(p, "false", 5) == 0) {
        p += 5;
    } else if (*p == 'n' && end - p >= 4 && memcmp(p, "null", 4) == 0) {
        p += 4;
    } else {
        return NULL;
    }
after:
    if (lvl == 0)
        return p;
    if (p >= end)
        return NULL;
    if (*p == ',') {
        p++;
        if (objs & 1)
            goto key;
        goto value;
    }
    if (*p != (objs & 1 ? '}' : ']'))
        return NULL;
    p++;
    objs >>= 1;
    lvl--;
    goto after;
key:
    if (!(p = compact_key(p, end, w, &k, &n)))
        return NULL;
    goto value;
}

/* A key the general parser treats specially at the top level of an unwrapped frame. */
HOT bool reply_key(const char *k, size_t n)
{
    switch (n) {
    case 2:
        return memcmp(k, "id", 2) == 0;
    case 4:
        return memcmp(k, "data", 4) == 0;
    case 5:
        return memcmp(k, "error", 5) == 0;
    case 6:
        return memcmp(k, "stream", 6) == 0 || memcmp(k, "result", 6) == 0;
    }
    return false;
}

/*
 * Any other event: p just past the closing quote of its "e" value. The general parser
 * classifies such a frame as EVENT when the JSON is valid and "E" and "s" are not repeated;
 * a second "e", a "k" (parsed and checked there) or, unwrapped, a reply key at the event's
 * level send the frame the long way.
 */
static bool fast_event(const char *p, const char *end, bool wrapped, qwin *w)
{
    bool seen_E = false, seen_s = false;
    for (;;) {
        if (p >= end)
            return false;
        if (*p == '}')
            return frame_end(p + 1, end, wrapped);
        if (*p != ',')
            return false;
        const char *k;
        size_t n;
        if (!(p = compact_key(p + 1, end, w, &k, &n)))
            return false;
        if (n == 1) {
            if (*k == 'E') {
                if (seen_E)
                    return false;
                seen_E = true;
            } else if (*k == 's') {
                if (seen_s)
                    return false;
                seen_s = true;
            } else if (*k == 'e' || *k == 'k') {
                return false;
            }
        } else if (!wrapped && reply_key(k, n)) {
            return false;
        }
        if (p < end && is_digit(*p)) /* the usual values inline: ids, times, names */
            p = compact_number(p, end);
        else if (p < end && *p == '"')
            p = (p = qwin_close(w, p + 1, end)) ? p + 1 : NULL;
        else
            p = compact_skip(p, end, w);
        if (!p)
            return false;
    }
}

bool kf__decode_fast(const char *buf, size_t len, kf__frame *f, kf_kline *k)
{
    const char *p = buf, *end = buf + len, *stream = NULL, *q;
    size_t stream_len = 0;
    bool wrapped = false;
    qwin w;
    /* Binance's frames end with '}', a non-digit: the kline template's digit loops need no
     * bounds check (anything else, trailing whitespace included, goes the long way) */
    if (len < 16 || buf[len - 1] != '}')
        return false;
    if (lit_eq(p, "{\"stream\":\"", 11)) {
        p += 11;
        STR(stream, stream_len);
        LIT("\",\"data\":");
        wrapped = true;
    }
    LIT("{\"e\":\"");
    const char *event = p;
    if (end - p >= 7 && lit_eq(p, "kline\",", 7)) {
        if (!fast_kline(p + 7, end, event, wrapped, f, k))
            return false;
    } else {
        qwin_load(&w, p, end);
        if (!(q = qwin_close(&w, p, end)) || (q - p == 5 && memcmp(p, "kline", 5) == 0) ||
            !fast_event(q + 1, end, wrapped, &w))
            return false;
        f->kind = KF__FRAME_EVENT;
        f->event = event;
        f->event_len = (size_t)(q - p);
    }
    f->stream = stream;
    f->stream_len = stream_len;
    return true;
}
#undef LIT
#undef NUM_LIT
#undef INT_LIT
#undef DEC_LIT
#undef STR
