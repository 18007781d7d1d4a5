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

#define MAX_DEPTH KF__JSON_MAX_DEPTH
#define HOT static inline __attribute__((always_inline))

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

/* Bytes a symbol may not contain: controls, space, DEL, / @ ? & and the JSON specials. */
static const unsigned char sym_bad[256] = {
    1, 1, 1, 1,         1,         1,         1,         1,         1,          1,
    1, 1, 1, 1,         1,         1,         1,         1,         1,          1,
    1, 1, 1, 1,         1,         1,         1,         1,         1,          1,
    1, 1, 1, ['"'] = 1, ['&'] = 1, ['/'] = 1, ['?'] = 1, ['@'] = 1, ['\\'] = 1, [0x7f] = 1,
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

HOT const char *ws(const char *p, const char *end)
{
    if (p < end && (unsigned char)*p > ' ')
        return p;
    while (p < end && (unsigned char)*p <= ' ' &&
           (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static inline bool is_digit(char c)
{
    return (unsigned)(c - '0') <= 9u;
}

/* Value of 8 ASCII digits at p (the caller checked they are digits). */
HOT uint64_t eight_digits(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    v -= 0x3030303030303030ULL;
    v = (v * 10) + (v >> 8);
    v = (((v & 0x000000FF000000FFULL) * (100 + (1000000ULL << 32))) +
         (((v >> 16) & 0x000000FF000000FFULL) * (1 + (10000ULL << 32)))) >>
        32;
    return v;
}

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

static const uint64_t pow10_u64[20] = {1ULL,
                                       10ULL,
                                       100ULL,
                                       1000ULL,
                                       10000ULL,
                                       100000ULL,
                                       1000000ULL,
                                       10000000ULL,
                                       100000000ULL,
                                       1000000000ULL,
                                       10000000000ULL,
                                       100000000000ULL,
                                       1000000000000ULL,
                                       10000000000000ULL,
                                       100000000000000ULL,
                                       1000000000000000ULL,
                                       10000000000000000ULL,
                                       100000000000000000ULL,
                                       1000000000000000000ULL,
                                       10000000000000000000ULL};

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

HOT int interval_index(const char *s, size_t n)
{
    if (n == 2) {
        switch (s[0]) {
        case '1':
            switch (s[1]) {
            case 'm':
                return 0;
            case 'h':
                return 5;
            case 'd':
                return 11;
            case 'w':
                return 13;
            case 'M':
                return 14;
            }
            return -1;
        case '3':
            return s[1] == 'm' ? 1 : s[1] == 'd' ? 12 : -1;
        case '5':
            return s[1] == 'm' ? 2 : -1;
        case '2':
            return s[1] == 'h' ? 6 : -1;
        case '4':
            return s[1] == 'h' ? 7 : -1;
        case '6':
            return s[1] == 'h' ? 8 : -1;
        case '8':
            return s[1] == 'h' ? 9 : -1;
        }
        return -1;
    }
    if (n == 3) {
        if (s[0] == '1' && s[1] == '5' && s[2] == 'm')
            return 3;
        if (s[0] == '3' && s[1] == '0' && s[2] == 'm')
            return 4;
        if (s[0] == '1' && s[1] == '2' && s[2] == 'h')
            return 10;
    }
    return -1;
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
    for (size_t i = 0; i < n; i++)
        if (sym_bad[(unsigned char)sym[i]])
            return malformed(st->f, "bad byte in symbol");
    int iv = interval_index(st->ival, st->ival_len);
    if (iv < 0)
        return malformed(st->f, "unknown interval");
    memset(k->symbol, 0, sizeof k->symbol);
    memcpy(k->symbol, sym, n);
    memset(k->interval, 0, sizeof k->interval);
    memcpy(k->interval, st->ival, st->ival_len);
    k->interval_index = iv;
    *out = *k;
    st->f->kind = KF__FRAME_KLINE;
    return KF__FRAME_KLINE;
}

/*
 * Fast path for the exact layout Binance sends (PROTOCOL.md section 2, optionally in the
 * combined wrapper): keys and separators compared in order, no dispatch, scalar digit loops
 * (fewest instructions for the short numbers of a kline). Returns false on the first deviation
 * (other key order, whitespace, escapes, more than 18 digits, anything unusual) and the general
 * parser then decides, so both paths accept exactly the same frames with the same result.
 */

/* 8 bytes at p are all ASCII digits. */
HOT bool eight_are_digits(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return (((v + 0x4646464646464646ULL) | (v - 0x3030303030303030ULL)) & 0x8080808080808080ULL) ==
           0;
}

/* JSON integer of 1..18 digits at p; returns the byte after it or NULL. */
HOT const char *fast_int(const char *p, const char *end, int64_t *out)
{
    if (p >= end)
        return NULL;
    bool neg = *p == '-';
    p += neg;
    const char *s = p;
    uint64_t m = 0;
    unsigned d;
    if (end - p >= 16 && eight_are_digits(p)) {
        m = eight_digits(p);
        p += 8;
    }
    while ((d = (unsigned)(*p - '0')) <= 9) { /* stops at the final '}' at the latest */
        m = m * 10 + d;
        p++;
    }
    size_t n = (size_t)(p - s);
    if (n == 0 || n > 18 || (*s == '0' && n > 1))
        return NULL;
    *out = neg ? -(int64_t)m : (int64_t)m;
    return p;
}

/* Decimal text at p (after the opening quote) with at most 18 digits in all; returns the byte
 * after it (the caller checks the closing quote) or NULL. Same rules as kf_dec_parse. */
HOT const char *fast_dec(const char *p, const char *end, kf_dec *out)
{
    if (p >= end)
        return NULL;
    bool neg = *p == '-';
    p += neg;
    const char *s = p;
    uint64_t m = 0;
    unsigned d;
    while ((d = (unsigned)(*p - '0')) <= 9) { /* stops at the final '}' at the latest */
        m = m * 10 + d;
        p++;
    }
    size_t nint = (size_t)(p - s), scale = 0;
    if (nint == 0 || (*s == '0' && nint > 1))
        return NULL;
    if (p < end && *p == '.') {
        const char *f0 = ++p;
        while ((d = (unsigned)(*p - '0')) <= 9) { /* stops at the final '}' at the latest */
            m = m * 10 + d;
            p++;
        }
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
#define INT(field)                                                                                 \
    do {                                                                                           \
        if (!(p = fast_int(p, end, &w.field)))                                                     \
            return false;                                                                          \
    } while (0)
#define DEC(field)                                                                                 \
    do {                                                                                           \
        if (!(p = fast_dec(p, end, &w.field)))                                                     \
            return false;                                                                          \
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

static bool fast_kline(const char *buf, size_t len, kf__frame *f, kf_kline *out)
{
    const char *p = buf, *end = buf + len;
    const char *stream = NULL, *sym, *ival, *b;
    size_t stream_len = 0, sym_len, ival_len, b_len;
    kf_kline w;
    bool wrapped = false;
    /* Binance's frames end with '}', a non-digit: the digit loops below need no bounds check
     * (anything else, trailing whitespace included, goes to the general parser) */
    if (len < 2 || buf[len - 1] != '}')
        return false;
    if (len >= 11 && lit_eq(p, "{\"stream\":\"", 11)) {
        p += 11;
        STR(stream, stream_len);
        LIT("\",\"data\":");
        wrapped = true;
    }
    LIT("{\"e\":\"kline\",\"E\":");
    const char *event = p - 11;
    INT(event_time);
    LIT(",\"s\":\"");
    STR(sym, sym_len);
    LIT("\",\"k\":{\"t\":");
    INT(open_time);
    LIT(",\"T\":");
    INT(close_time);
    LIT(",\"s\":\"");
    /* k.s: the same bytes as s and a quote (s has no quote, backslash or control byte, so a
     * scan of k.s would stop at the same place): one compare instead of a scan */
    if (end - p <= (ptrdiff_t)sym_len || memcmp(p, sym, sym_len) != 0 || p[sym_len] != '"')
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
    INT(first_trade_id);
    LIT(",\"L\":");
    INT(last_trade_id);
    LIT(",\"o\":\"");
    DEC(open);
    LIT("\",\"c\":\"");
    DEC(close);
    LIT("\",\"h\":\"");
    DEC(high);
    LIT("\",\"l\":\"");
    DEC(low);
    LIT("\",\"v\":\"");
    DEC(volume);
    LIT("\",\"n\":");
    INT(trades);
    LIT(",\"x\":");
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
    DEC(quote_volume);
    LIT("\",\"V\":\"");
    DEC(taker_buy_base);
    LIT("\",\"Q\":\"");
    DEC(taker_buy_quote);
    LIT("\",\"B\":\"");
    if (end - p >= 3 && lit_eq(p, "0\"}", 3)) { /* k.B is always "0" */
        p += 3;
    } else {
        STR(b, b_len);
        (void)b;
        (void)b_len;
        LIT("\"}");
    }
    LIT("}");
    if (wrapped)
        LIT("}");
    if (p != end && ws(p, end) != end)
        return false;
    /* the checks of finish_kline() */
    if (sym_len == 0 || sym_len > KF_SYMBOL_MAX)
        return false;
    for (size_t i = 0; i < sym_len; i++)
        if (sym_bad[(unsigned char)sym[i]])
            return false;
    int iv = interval_index(ival, ival_len);
    if (iv < 0)
        return false;
    memset(w.symbol, 0, sizeof w.symbol);
    memcpy(w.symbol, sym, sym_len);
    memset(w.interval, 0, sizeof w.interval);
    memcpy(w.interval, ival, ival_len);
    w.interval_index = iv;
    *out = w;
    f->kind = KF__FRAME_KLINE;
    f->event = event;
    f->event_len = 5;
    f->stream = stream;
    f->stream_len = stream_len;
    return true;
}
#undef LIT
#undef INT
#undef DEC
#undef STR

kf__frame_kind kf__decode(const char *buf, size_t len, kf__frame *f, kf_kline *k)
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
    if (fast_kline(buf, len, f, k))
        return KF__FRAME_KLINE;
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
    switch (kf__decode(frame, len, &f, out)) {
    case KF__FRAME_KLINE:
        return KF_OK;
    case KF__FRAME_MALFORMED:
        return KF_ERR_PARSE;
    default:
        return KF_ERR_NOT_FOUND;
    }
}
