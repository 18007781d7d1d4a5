/*
 * Frame decoder (decode.h): one pass over the frame with a specialised fast
 * path for the keys we know, and the validating skipper of json.c for every
 * other value.
 *
 * Policy
 *  - Duplicate keys: a repeated known key (e, E, s, k, every k.* field,
 *    stream, data, result, id, error, error.code, error.msg) makes the frame
 *    MALFORMED ("duplicate key"). Repeated unknown keys are skipped.
 *  - Keys written with escapes (`"\u0065"`) are never recognised (skipped).
 *  - Kline-specific checks (types of E, s, k.* ...) are deferred until "e" is
 *    known: the same bad k.o is MALFORMED in a kline but ignored in an
 *    aggTrade or continuous_kline event. JSON syntax errors are always fatal.
 *  - Required in a kline: e, E, k and k.t T i f L o c h l v n x q V Q; s or
 *    k.s (at least one; both must be equal when both are present); B ignored.
 *  - A combined wrapper is an object with "data" (an object, the event) and
 *    optionally "stream" (a string); e/E/s/k next to "data" are MALFORMED.
 *  - ACK / RESULT need "id" (unsigned 64-bit integer or null); ERROR needs
 *    error.code (int64) and error.msg (string), "id" optional.
 */
#include <string.h>

#include "decode/decode.h"
#include "decode/json.h"
#include "decode/lex.h"

#define MAX_DEPTH KF__JSON_MAX_DEPTH

/* k.* fields */
enum {
    KF_T = 0, /* t */
    KF_TT,    /* T */
    KF_S,     /* s */
    KF_I,     /* i */
    KF_F,     /* f */
    KF_L,     /* L */
    KF_O,     /* o */
    KF_C,     /* c */
    KF_H,     /* h */
    KF_LO,    /* l */
    KF_V,     /* v */
    KF_N,     /* n */
    KF_X,     /* x */
    KF_Q,     /* q */
    KF_VV,    /* V */
    KF_QQ,    /* Q */
    KF_B,     /* B */
    KF_COUNT
};
#define K_REQUIRED (((1u << KF_COUNT) - 1) & ~(1u << KF_S) & ~(1u << KF_B))

static const char *const k_missing[KF_COUNT] = {
    "missing k.t", "missing k.T", "missing k.s", "missing k.i", "missing k.f", "missing k.L",
    "missing k.o", "missing k.c", "missing k.h", "missing k.l", "missing k.v", "missing k.n",
    "missing k.x", "missing k.q", "missing k.V", "missing k.Q", "missing k.B"};
static const char *const k_badtype[KF_COUNT] = {"k.t not an integer",
                                                "k.T not an integer",
                                                "k.s not a string",
                                                "k.i not a string",
                                                "k.f not an integer",
                                                "k.L not an integer",
                                                "k.o not a decimal string",
                                                "k.c not a decimal string",
                                                "k.h not a decimal string",
                                                "k.l not a decimal string",
                                                "k.v not a decimal string",
                                                "k.n not an integer",
                                                "k.x not true or false",
                                                "k.q not a decimal string",
                                                "k.V not a decimal string",
                                                "k.Q not a decimal string",
                                                "k.B ignored"};

/* Byte -> k field + 1 (0: unknown key). */
static const unsigned char k_field[256] = {
    ['t'] = KF_T + 1,  ['T'] = KF_TT + 1, ['s'] = KF_S + 1, ['i'] = KF_I + 1, ['f'] = KF_F + 1,
    ['L'] = KF_L + 1,  ['o'] = KF_O + 1,  ['c'] = KF_C + 1, ['h'] = KF_H + 1, ['l'] = KF_LO + 1,
    ['v'] = KF_V + 1,  ['n'] = KF_N + 1,  ['x'] = KF_X + 1, ['q'] = KF_Q + 1, ['V'] = KF_VV + 1,
    ['Q'] = KF_QQ + 1, ['B'] = KF_B + 1,
};

/* Top-level / event keys */
enum {
    TK_E = 1u << 0,      /* e */
    TK_EE = 1u << 1,     /* E */
    TK_S = 1u << 2,      /* s */
    TK_K = 1u << 3,      /* k */
    TK_STREAM = 1u << 4, /* stream */
    TK_DATA = 1u << 5,   /* data */
    TK_RESULT = 1u << 6, /* result */
    TK_ID = 1u << 7,     /* id */
    TK_ERROR = 1u << 8,  /* error */
};

typedef struct dstate {
    const char *end;
    const char *why;  /* fatal: the frame is MALFORMED whatever it is */
    const char *kwhy; /* deferred: MALFORMED only if it turns out to be a kline */
    unsigned seen;    /* TK_* at any level */
    unsigned kseen;   /* k fields */
    bool top_event;   /* e/E/s/k seen at the top level */
    bool is_kline;
    bool result_null;
    bool has_code, has_msg;
    const char *sym, *ksym;
    size_t sym_len, ksym_len;
    const char *ival;
    size_t ival_len;
    kf__frame *f;
    kf_kline *k;
} dstate;

/* Fails the frame; returns NULL so callers can `return fail(...)`. */
static const char *fail(dstate *st, const char *why)
{
    if (!st->why)
        st->why = why;
    return NULL;
}

static inline void defer(dstate *st, const char *why)
{
    if (!st->kwhy)
        st->kwhy = why;
}

/* Skips one value at p (validating it); fatal on error. Plain strings and integers inline. */
HOT const char *skip(dstate *st, const char *p, int depth)
{
    const char *end = st->end;
    if (p >= end)
        return fail(st, "truncated");
    if (*p == '"') {
        const char *q = kf__json_scan_str(p + 1, end);
        if (q < end && *q == '"')
            return q + 1;
    } else if ((unsigned)(*p - '1') <= 8u) {
        const char *q = kf__json_scan_digits(p + 1, end);
        if (q < end && *q != '.' && *q != 'e' && *q != 'E')
            return q;
    }
    const char *why = "truncated";
    const char *q = kf__json_skip(p, st->end, depth, &why);
    return q ? q : fail(st, why);
}

/* Value of the n (0..19) ASCII digits at p (checked by the caller); end bounds the reads. */
HOT uint64_t digits_u64(const char *p, size_t n, const char *end)
{
    uint64_t m = 0;
    while (n >= 8) {
        m = m * 100000000 + eight_digits(p);
        p += 8;
        n -= 8;
    }
    if (n == 0)
        return m;
    if (end - p >= 8) { /* n < 8 digits, padded in front with '0's: one SWAR step */
        uint64_t v;
        memcpy(&v, p, 8);
        v = (v << (8 * (8 - n))) | (0x3030303030303030ULL >> (8 * n));
        v -= 0x3030303030303030ULL;
        v = (v * 10) + (v >> 8);
        v = (((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
             (((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >>
            32;
        return m * pow10_u64[n] + v;
    }
    while (n--)
        m = m * 10 + (uint64_t)(*p++ - '0');
    return m;
}

/*
 * Integer at p (a JSON number without fraction/exponent). Returns the byte
 * after it, or NULL when it is not such a number (bad == NULL: type error)
 * or overflows (bad == the overflow message). Nothing consumed on NULL.
 */
HOT const char *parse_i64(const char *p, const char *end, int64_t *out, const char **bad)
{
    bool neg = false;
    *bad = NULL;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    if (p >= end || !is_digit(*p))
        return NULL;
    const char *de = kf__json_scan_digits(p, end);
    size_t n = (size_t)(de - p);
    if (n > 1 && *p == '0')
        return NULL; /* "01" is not JSON */
    if (de < end && (*de == '.' || *de == 'e' || *de == 'E'))
        return NULL;
    uint64_t m;
    if (n <= 18) {
        m = digits_u64(p, n, end);
    } else {
        uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        if (n > 19 || (m = digits_u64(p, 19, end)) > limit || m < pow10_u64[18]) {
            *bad = "number overflows int64";
            return NULL;
        }
    }
    *out = neg ? (int64_t)(0 - m) : (int64_t)m;
    return de;
}

/*
 * Decimal string at p (p at the opening quote). Same grammar and limits as
 * kf_dec_parse (which it calls for the rare > 18 digit texts). Returns the
 * byte after the closing quote or NULL (nothing consumed).
 */
HOT const char *parse_dec(const char *p, const char *end, kf_dec *out)
{
    const char *s = ++p; /* after the quote */
    bool neg = false;
    if (p < end && *p == '-') {
        neg = true;
        p++;
    }
    const char *d0 = p;
    p = kf__json_scan_digits(p, end);
    size_t nint = (size_t)(p - d0);
    if (nint == 0 || (*d0 == '0' && nint > 1))
        return NULL;
    size_t scale = 0;
    const char *f0 = p;
    if (p < end && *p == '.') {
        f0 = ++p;
        p = kf__json_scan_digits(p, end);
        scale = (size_t)(p - f0);
        if (scale == 0)
            return NULL;
    }
    if (p >= end || *p != '"')
        return NULL;
    if (nint + scale > 18) { /* leading zeros may still fit: the reference parser decides */
        if (kf_dec_parse(s, (size_t)(p - s), out) != KF_OK)
            return NULL;
        return p + 1;
    }
    uint64_t m = digits_u64(d0, nint, end);
    if (scale)
        m = m * pow10_u64[scale] + digits_u64(f0, scale, end);
    if (neg && m == 0)
        return NULL;
    out->mant = neg ? -(int64_t)m : (int64_t)m;
    out->scale = (int32_t)scale;
    return p + 1;
}

/* Plain string at p (opening quote): span without escapes; NULL if escaped or bad. */
HOT const char *parse_plain_str(const char *p, const char *end, const char **s, size_t *n)
{
    const char *q = kf__json_scan_str(++p, end);
    if (q >= end || *q != '"')
        return NULL;
    *s = p;
    *n = (size_t)(q - p);
    return q + 1;
}

/* Reads a key at p (just past ws, must be '"'): sets *key and *klen (klen = SIZE_MAX when the
 * key has escapes) and returns the byte after ':' (and ws). */
HOT const char *read_key(dstate *st, const char *p, const char **key, size_t *klen)
{
    const char *end = st->end;
    if (p >= end)
        return fail(st, "truncated");
    if (*p != '"')
        return fail(st, "expected a key string");
    /* fast path: a one-byte key directly followed by ':' ("t":) */
    if (end - p >= 5 && p[2] == '"' && p[3] == ':' && p[1] != '\\' && p[1] != '"' &&
        (unsigned char)p[1] >= 0x20) {
        *key = p + 1;
        *klen = 1;
        return ws(p + 4, end);
    }
    const char *q = kf__json_scan_str(++p, end);
    if (q < end && *q == '"') {
        *key = p;
        *klen = (size_t)(q - p);
        q++;
    } else {
        const char *why = "truncated";
        q = kf__json_skip_string(p, end, NULL, &why);
        if (!q)
            return fail(st, why);
        *key = p;
        *klen = (size_t)-1;
    }
    q = ws(q, end);
    if (q >= end)
        return fail(st, "truncated");
    if (*q != ':')
        return fail(st, "expected ':'");
    return ws(q + 1, end);
}

/* After a member's value: ',' -> next key (returns it, ws skipped), '}' -> *done. */
HOT const char *after_member(dstate *st, const char *p, bool *done)
{
    if (p < st->end && *p == ',') { /* no whitespace: the usual case */
        p++;
        if (p < st->end && *p == '"')
            return p;
        return ws(p, st->end);
    }
    p = ws(p, st->end);
    if (p >= st->end)
        return fail(st, "truncated");
    if (*p == ',')
        return ws(p + 1, st->end);
    if (*p == '}') {
        *done = true;
        return p + 1;
    }
    return fail(st, "expected ',' or '}'");
}

HOT bool mark(dstate *st, unsigned *seen, unsigned bit)
{
    if (*seen & bit) {
        fail(st, "duplicate key");
        return false;
    }
    *seen |= bit;
    return true;
}

/* The k object: p at its opening brace; depth = containers open around it. */
static const char *parse_k(dstate *st, const char *p, int depth)
{
    const char *end = st->end;
    kf_kline *k = st->k;
    if (depth + 1 > MAX_DEPTH)
        return fail(st, "nesting too deep");
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        const char *key;
        size_t klen;
        p = read_key(st, p, &key, &klen);
        if (!p)
            return NULL;
        if (p >= end)
            return fail(st, "truncated");
        int fld = klen == 1 ? (int)k_field[(unsigned char)key[0]] - 1 : -1;
        const char *q = NULL;
        if (fld >= 0) {
            if (!mark(st, &st->kseen, 1u << fld))
                return NULL;
            const char *bad = NULL;
            switch (fld) {
            case KF_T:
                q = parse_i64(p, end, &k->open_time, &bad);
                break;
            case KF_TT:
                q = parse_i64(p, end, &k->close_time, &bad);
                break;
            case KF_F:
                q = parse_i64(p, end, &k->first_trade_id, &bad);
                break;
            case KF_L:
                q = parse_i64(p, end, &k->last_trade_id, &bad);
                break;
            case KF_N:
                q = parse_i64(p, end, &k->trades, &bad);
                break;
            case KF_O:
                q = *p == '"' ? parse_dec(p, end, &k->open) : NULL;
                break;
            case KF_C:
                q = *p == '"' ? parse_dec(p, end, &k->close) : NULL;
                break;
            case KF_H:
                q = *p == '"' ? parse_dec(p, end, &k->high) : NULL;
                break;
            case KF_LO:
                q = *p == '"' ? parse_dec(p, end, &k->low) : NULL;
                break;
            case KF_V:
                q = *p == '"' ? parse_dec(p, end, &k->volume) : NULL;
                break;
            case KF_Q:
                q = *p == '"' ? parse_dec(p, end, &k->quote_volume) : NULL;
                break;
            case KF_VV:
                q = *p == '"' ? parse_dec(p, end, &k->taker_buy_base) : NULL;
                break;
            case KF_QQ:
                q = *p == '"' ? parse_dec(p, end, &k->taker_buy_quote) : NULL;
                break;
            case KF_X:
                if (end - p >= 4 && memcmp(p, "true", 4) == 0) {
                    k->closed = true;
                    q = p + 4;
                } else if (end - p >= 5 && memcmp(p, "false", 5) == 0) {
                    k->closed = false;
                    q = p + 5;
                }
                break;
            case KF_S:
                q = *p == '"' ? parse_plain_str(p, end, &st->ksym, &st->ksym_len) : NULL;
                break;
            case KF_I:
                q = *p == '"' ? parse_plain_str(p, end, &st->ival, &st->ival_len) : NULL;
                break;
            default: /* B: ignored, any value */
                break;
            }
            if (!q && fld != KF_B)
                defer(st, bad ? bad : k_badtype[fld]);
        }
        if (!q) {
            q = skip(st, p, depth + 1);
            if (!q)
                return NULL;
        }
        bool done = false;
        p = after_member(st, q, &done);
        if (!p || done)
            return p;
    }
}

/* error: {"code":C,"msg":"..."}; p at '{'. */
static const char *parse_error(dstate *st, const char *p)
{
    const char *end = st->end;
    kf__frame *f = st->f;
    unsigned seen = 0;
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        const char *key;
        size_t klen;
        p = read_key(st, p, &key, &klen);
        if (!p)
            return NULL;
        const char *q = NULL;
        if (klen == 4 && memcmp(key, "code", 4) == 0) {
            if (!mark(st, &seen, 1))
                return NULL;
            const char *bad = NULL;
            q = parse_i64(p, end, &f->err_code, &bad);
            if (!q)
                return fail(st, bad ? bad : "error.code not an integer");
            st->has_code = true;
        } else if (klen == 3 && memcmp(key, "msg", 3) == 0) {
            if (!mark(st, &seen, 2))
                return NULL;
            if (p >= end)
                return fail(st, "truncated");
            if (*p != '"')
                return fail(st, "error.msg not a string");
            const char *why = "truncated";
            q = kf__json_skip_string(p + 1, end, NULL, &why);
            if (!q)
                return fail(st, why);
            f->err_msg = p + 1;
            f->err_msg_len = (size_t)(q - 1 - (p + 1));
            st->has_msg = true;
        } else {
            q = skip(st, p, 2);
            if (!q)
                return NULL;
        }
        bool done = false;
        p = after_member(st, q, &done);
        if (!p || done)
            return p;
    }
}

/* An object at p ('{'): level 0 is the frame, level 1 the wrapper's data. */
static const char *parse_obj(dstate *st, const char *p, int level)
{
    const char *end = st->end;
    kf__frame *f = st->f;
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        const char *key;
        size_t klen;
        p = read_key(st, p, &key, &klen);
        if (!p)
            return NULL;
        if (p >= end)
            return fail(st, "truncated");
        const char *q = NULL;
        if (klen == 1) {
            char c = key[0];
            if (c == 'e' || c == 'E' || c == 's' || c == 'k') {
                if (level == 0)
                    st->top_event = true;
            }
            switch (c) {
            case 'e':
                if (!mark(st, &st->seen, TK_E))
                    return NULL;
                if (*p != '"')
                    return fail(st, "e not a string");
                {
                    bool esc = false;
                    const char *why = "truncated";
                    q = kf__json_skip_string(p + 1, end, &esc, &why);
                    if (!q)
                        return fail(st, why);
                    f->event = p + 1;
                    f->event_len = (size_t)(q - 1 - (p + 1));
                    st->is_kline = f->event_len == 5 && memcmp(f->event, "kline", 5) == 0;
                }
                break;
            case 'E': {
                if (!mark(st, &st->seen, TK_EE))
                    return NULL;
                const char *bad = NULL;
                q = parse_i64(p, end, &st->k->event_time, &bad);
                if (!q)
                    defer(st, bad ? bad : "E not an integer");
                break;
            }
            case 's':
                if (!mark(st, &st->seen, TK_S))
                    return NULL;
                q = *p == '"' ? parse_plain_str(p, end, &st->sym, &st->sym_len) : NULL;
                if (!q)
                    defer(st, "s not a string");
                break;
            case 'k':
                if (!mark(st, &st->seen, TK_K))
                    return NULL;
                if (*p == '{') {
                    q = parse_k(st, p, level + 1);
                    if (!q)
                        return NULL;
                } else {
                    defer(st, "k not an object");
                }
                break;
            }
        } else if (level == 0) {
            if (klen == 6 && memcmp(key, "stream", 6) == 0) {
                if (!mark(st, &st->seen, TK_STREAM))
                    return NULL;
                if (*p != '"')
                    return fail(st, "stream not a string");
                const char *why = "truncated";
                q = kf__json_skip_string(p + 1, end, NULL, &why);
                if (!q)
                    return fail(st, why);
                f->stream = p + 1;
                f->stream_len = (size_t)(q - 1 - (p + 1));
            } else if (klen == 4 && memcmp(key, "data", 4) == 0) {
                if (!mark(st, &st->seen, TK_DATA))
                    return NULL;
                if (*p != '{')
                    return fail(st, "data not an object");
                q = parse_obj(st, p, 1);
                if (!q)
                    return NULL;
            } else if (klen == 6 && memcmp(key, "result", 6) == 0) {
                if (!mark(st, &st->seen, TK_RESULT))
                    return NULL;
                q = skip(st, p, 1);
                if (!q)
                    return NULL;
                f->result = p;
                f->result_len = (size_t)(q - p);
                st->result_null = f->result_len == 4 && memcmp(p, "null", 4) == 0;
            } else if (klen == 2 && key[0] == 'i' && key[1] == 'd') {
                if (!mark(st, &st->seen, TK_ID))
                    return NULL;
                if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
                    q = p + 4;
                } else {
                    uint64_t m = 0;
                    q = p;
                    if (q >= end || !is_digit(*q))
                        return fail(st, "id not an unsigned integer");
                    if (*q == '0') {
                        q++;
                    } else {
                        while (q < end && is_digit(*q)) {
                            unsigned d = (unsigned)(*q - '0');
                            if (m > (UINT64_MAX - d) / 10)
                                return fail(st, "id overflows uint64");
                            m = m * 10 + d;
                            q++;
                        }
                    }
                    if (q < end && (*q == '.' || *q == 'e' || *q == 'E' || is_digit(*q)))
                        return fail(st, "id not an unsigned integer");
                    f->has_id = true;
                    f->id = m;
                }
            } else if (klen == 5 && memcmp(key, "error", 5) == 0) {
                if (!mark(st, &st->seen, TK_ERROR))
                    return NULL;
                if (*p != '{')
                    return fail(st, "error not an object");
                q = parse_error(st, p);
                if (!q)
                    return NULL;
            }
        }
        if (!q) {
            q = skip(st, p, level + 1);
            if (!q)
                return NULL;
        }
        bool done = false;
        p = after_member(st, q, &done);
        if (!p || done)
            return p;
    }
}

static kf__frame_kind malformed(kf__frame *f, const char *why)
{
    f->kind = KF__FRAME_MALFORMED;
    f->why = why;
    return KF__FRAME_MALFORMED;
}

static kf__frame_kind finish_kline(dstate *st, kf_kline *out)
{
    kf_kline *k = st->k;
    if (st->kwhy)
        return malformed(st->f, st->kwhy);
    if (!(st->seen & TK_EE))
        return malformed(st->f, "missing E");
    if (!(st->seen & TK_K))
        return malformed(st->f, "missing k");
    unsigned miss = K_REQUIRED & ~st->kseen;
    if (miss)
        return malformed(st->f, k_missing[__builtin_ctz(miss)]);
    const char *sym = st->sym;
    size_t n = st->sym_len;
    if (!(st->seen & TK_S)) {
        if (!(st->kseen & (1u << KF_S)))
            return malformed(st->f, "missing s");
        sym = st->ksym;
        n = st->ksym_len;
    } else if ((st->kseen & (1u << KF_S)) && (st->ksym_len != n || memcmp(st->ksym, sym, n) != 0)) {
        return malformed(st->f, "k.s differs from s");
    }
    if (n == 0)
        return malformed(st->f, "empty symbol");
    if (n > KF_SYMBOL_MAX)
        return malformed(st->f, "symbol over 32 bytes");
    if (!copy_symbol(k->symbol, sym, n, st->end))
        return malformed(st->f, "bad byte in symbol");
    int iv = interval_index(st->ival, st->ival_len);
    if (iv < 0)
        return malformed(st->f, "unknown interval");
    memset(k->interval, 0, sizeof k->interval);
    memcpy(k->interval, st->ival, st->ival_len);
    k->interval_index = iv;
    *out = *k;
    st->f->kind = KF__FRAME_KLINE;
    return KF__FRAME_KLINE;
}

kf__frame_kind kf__decode(const char *buf, size_t len, kf__frame *f, kf_kline *k)
{
    kf__frame fdummy;
    kf_kline kdummy;
    if (!f)
        f = &fdummy;
    if (!k)
        k = &kdummy;
    memset(f, 0, sizeof *f);
    if (buf && kf__decode_fast(buf, len, f, k))
        return f->kind;
    return kf__decode_general(buf, len, f, k);
}

kf__frame_kind kf__decode_general(const char *buf, size_t len, kf__frame *f, kf_kline *k)
{
    kf__frame fdummy;
    kf_kline kdummy, work;
    if (!f)
        f = &fdummy;
    if (!k)
        k = &kdummy;
    memset(f, 0, sizeof *f);
    if (!buf)
        return malformed(f, len ? "null buffer" : "empty frame");
    dstate st;
    memset(&st, 0, sizeof st);
    st.end = buf + len;
    st.f = f;
    st.k = &work;
    const char *p = ws(buf, st.end);
    if (p >= st.end)
        return malformed(f, len ? "truncated" : "empty frame");
    if (*p != '{')
        return malformed(f, "not a JSON object");
    p = parse_obj(&st, p, 0);
    if (!p)
        return malformed(f, st.why ? st.why : "malformed");
    p = ws(p, st.end);
    if (p != st.end)
        return malformed(f, "trailing bytes after the object");

    unsigned seen = st.seen;
    bool has_data = seen & TK_DATA;
    bool event = seen & TK_E;
    bool reply = seen & (TK_RESULT | TK_ID | TK_ERROR);
    if (has_data && st.top_event)
        return malformed(f, "event keys next to data");
    if (!has_data && (seen & TK_STREAM))
        return malformed(f, "stream without data");
    if (event && reply)
        return malformed(f, "event with result, id or error");
    if (has_data && !event)
        return malformed(f, "data without e");
    if (event) {
        if (st.is_kline)
            return finish_kline(&st, k);
        f->kind = KF__FRAME_EVENT;
        return KF__FRAME_EVENT;
    }
    if ((seen & TK_RESULT) && (seen & TK_ERROR))
        return malformed(f, "both result and error");
    if (seen & TK_RESULT) {
        if (!(seen & TK_ID))
            return malformed(f, "result without id");
        if (!f->has_id)
            return malformed(f, "result with null id");
        if (st.result_null) {
            f->result = NULL;
            f->result_len = 0;
            f->kind = KF__FRAME_ACK;
            return KF__FRAME_ACK;
        }
        f->kind = KF__FRAME_RESULT;
        return KF__FRAME_RESULT;
    }
    if (seen & TK_ERROR) {
        if (!st.has_code)
            return malformed(f, "missing error.code");
        if (!st.has_msg)
            return malformed(f, "missing error.msg");
        f->kind = KF__FRAME_ERROR;
        return KF__FRAME_ERROR;
    }
    return malformed(f, "unknown message");
}

kf_err kf_kline_decode(const char *frame, size_t len, kf_kline *out)
{
    kf__frame f;
    if (!out)
        return KF_ERR_INVALID_ARG;
    switch (kf__decode(frame, len, &f, out)) { /* written in place: no copy per frame */
    case KF__FRAME_KLINE:
        return KF_OK;
    case KF__FRAME_MALFORMED:
        return KF_ERR_PARSE;
    default:
        return KF_ERR_NOT_FOUND;
    }
}
