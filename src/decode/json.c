/* Zero-allocation JSON cursor; see json.h. */
#include "decode/json.h"

#include <string.h>

static inline const char *ws(const char *p, const char *end)
{
    if (p < end && (unsigned char)*p > ' ')
        return p;
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

static inline int hexval(unsigned char c)
{
    if ((unsigned)(c - '0') <= 9u)
        return c - '0';
    c |= 0x20;
    if ((unsigned)(c - 'a') <= 5u)
        return c - 'a' + 10;
    return -1;
}

const char *kf__json_skip_string(const char *p, const char *end, bool *escaped, const char **why)
{
    for (;;) {
        p = kf__json_scan_str(p, end);
        if (p >= end) {
            *why = "truncated";
            return NULL;
        }
        if (*p == '"')
            return p + 1;
        if (*p != '\\') {
            *why = "control byte in string";
            return NULL;
        }
        if (escaped)
            *escaped = true;
        if (++p >= end) {
            *why = "truncated";
            return NULL;
        }
        switch (*p) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p++;
            break;
        case 'u':
            if (end - p < 5) {
                *why = "truncated";
                return NULL;
            }
            for (int i = 1; i <= 4; i++)
                if (hexval((unsigned char)p[i]) < 0) {
                    *why = "bad \\u escape";
                    return NULL;
                }
            p += 5;
            break;
        default:
            *why = "bad escape in string";
            return NULL;
        }
    }
}

/* JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static const char *skip_number(const char *p, const char *end, const char **why)
{
    if (p < end && *p == '-')
        p++;
    if (p >= end) {
        *why = "truncated";
        return NULL;
    }
    if (*p == '0') {
        p++;
    } else if ((unsigned)(*p - '1') <= 8u) {
        p = kf__json_scan_digits(p + 1, end);
    } else {
        *why = "bad number";
        return NULL;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end) {
            *why = "truncated";
            return NULL;
        }
        if ((unsigned)(*p - '0') > 9u) {
            *why = "bad number";
            return NULL;
        }
        p = kf__json_scan_digits(p, end);
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end) {
            *why = "truncated";
            return NULL;
        }
        if ((unsigned)(*p - '0') > 9u) {
            *why = "bad number";
            return NULL;
        }
        while (p < end && (unsigned)(*p - '0') <= 9u)
            p++;
    }
    return p;
}

static const char *skip_literal(const char *p, const char *end, const char *lit, size_t n,
                                const char **why)
{
    size_t avail = (size_t)(end - p);
    if (memcmp(p, lit, avail < n ? avail : n) != 0) {
        *why = "bad literal";
        return NULL;
    }
    if (avail < n) {
        *why = "truncated";
        return NULL;
    }
    return p + n;
}

const char *kf__json_skip(const char *p, const char *end, int depth, const char **why)
{
    uint64_t objs = 0; /* bit l: relative level l is an object */
    int lvl = 0;
value:
    p = ws(p, end);
    if (p >= end)
        goto truncated;
    switch (*p) {
    case '"': {
        const char *q = kf__json_scan_str(p + 1, end);
        if (q < end && *q == '"') {
            p = q + 1;
            break;
        }
        p = kf__json_skip_string(p + 1, end, NULL, why);
        if (!p)
            return NULL;
        break;
    }
    case '{':
    case '[':
        if (depth + lvl >= KF__JSON_MAX_DEPTH) {
            *why = "nesting too deep";
            return NULL;
        }
        if (*p == '{')
            objs |= (uint64_t)1 << lvl;
        else
            objs &= ~((uint64_t)1 << lvl);
        lvl++;
        p = ws(p + 1, end);
        if (p >= end)
            goto truncated;
        if (*p == ((objs >> (lvl - 1)) & 1 ? '}' : ']')) {
            p++;
            lvl--;
            break;
        }
        if ((objs >> (lvl - 1)) & 1)
            goto key;
        goto value;
    case 't':
        p = skip_literal(p, end, "true", 4, why);
        if (!p)
            return NULL;
        break;
    case 'f':
        p = skip_literal(p, end, "false", 5, why);
        if (!p)
            return NULL;
        break;
    case 'n':
        p = skip_literal(p, end, "null", 4, why);
        if (!p)
            return NULL;
        break;
    default:
        if (*p == '-' || (unsigned)(*p - '0') <= 9u) {
            p = skip_number(p, end, why);
            if (!p)
                return NULL;
            break;
        }
        *why = "unexpected byte";
        return NULL;
    }
after:
    if (lvl == 0)
        return p;
    p = ws(p, end);
    if (p >= end)
        goto truncated;
    if (*p == ',') {
        p++;
        if ((objs >> (lvl - 1)) & 1)
            goto key;
        if (p < end && *p == '"') { /* array of strings: no detour through the switch */
            const char *q = kf__json_scan_str(p + 1, end);
            if (q < end && *q == '"') {
                p = q + 1;
                goto after;
            }
        }
        goto value;
    }
    if (*p == ((objs >> (lvl - 1)) & 1 ? '}' : ']')) {
        p++;
        lvl--;
        goto after;
    }
    *why = "expected ',' or a closing bracket";
    return NULL;
key:
    p = ws(p, end);
    if (p >= end)
        goto truncated;
    if (*p == '"') { /* plain key directly followed by ':' */
        const char *q = kf__json_scan_str(p + 1, end);
        if (q + 1 < end && *q == '"' && q[1] == ':') {
            p = q + 2;
            goto value;
        }
    }
    if (*p != '"') {
        *why = "expected a key string";
        return NULL;
    }
    p = kf__json_skip_string(p + 1, end, NULL, why);
    if (!p)
        return NULL;
    p = ws(p, end);
    if (p >= end)
        goto truncated;
    if (*p != ':') {
        *why = "expected ':'";
        return NULL;
    }
    p++;
    goto value;
truncated:
    *why = "truncated";
    return NULL;
}

/* ---- cursor ---- */

void kf__json_init(kf__json *j, const char *buf, size_t len)
{
    memset(j, 0, sizeof *j);
    j->buf = buf;
    j->p = buf;
    j->end = buf ? buf + len : buf;
    if (!buf && len)
        kf__json_fail(j, "null buffer");
}

bool kf__json_fail(kf__json *j, const char *why)
{
    if (!j->err) {
        j->err = why;
        j->err_at = j->p;
    }
    return false;
}

kf__json_type kf__json_peek(kf__json *j)
{
    if (j->err)
        return KF__JSON_NONE;
    j->p = ws(j->p, j->end);
    if (j->p >= j->end)
        return KF__JSON_NONE;
    switch (*j->p) {
    case '{':
        return KF__JSON_OBJECT;
    case '[':
        return KF__JSON_ARRAY;
    case '"':
        return KF__JSON_STRING;
    case 't':
        return KF__JSON_TRUE;
    case 'f':
        return KF__JSON_FALSE;
    case 'n':
        return KF__JSON_NULL;
    default:
        return *j->p == '-' || (unsigned)(*j->p - '0') <= 9u ? KF__JSON_NUMBER : KF__JSON_NONE;
    }
}

/* Skips whitespace and checks there is a byte; on failure sets "truncated". */
static bool more(kf__json *j)
{
    if (j->err)
        return false;
    j->p = ws(j->p, j->end);
    if (j->p >= j->end)
        return kf__json_fail(j, "truncated");
    return true;
}

static bool enter(kf__json *j, char open, bool obj)
{
    if (!more(j))
        return false;
    if (*j->p != open)
        return kf__json_fail(j, obj ? "expected an object" : "expected an array");
    if (j->depth >= KF__JSON_MAX_DEPTH)
        return kf__json_fail(j, "nesting too deep");
    uint64_t bit = (uint64_t)1 << j->depth;
    j->depth++;
    j->p++;
    if (obj)
        j->obj_bits |= bit;
    else
        j->obj_bits &= ~bit;
    j->more_bits &= ~bit;
    return true;
}

bool kf__json_enter_object(kf__json *j)
{
    return enter(j, '{', true);
}

bool kf__json_enter_array(kf__json *j)
{
    return enter(j, '[', false);
}

/* Common part of next_key/next_elem: false at the closer (consumed) or on error. */
static bool next_member(kf__json *j, bool obj)
{
    if (!more(j))
        return false;
    if (j->depth == 0 || (((j->obj_bits >> (j->depth - 1)) & 1) != obj))
        return kf__json_fail(j, "cursor misuse: not in that container");
    uint64_t bit = (uint64_t)1 << (j->depth - 1);
    if (*j->p == (obj ? '}' : ']')) {
        j->p++;
        j->depth--;
        return false;
    }
    if (j->more_bits & bit) {
        if (*j->p != ',')
            return kf__json_fail(j, "expected ',' or a closing bracket");
        j->p++;
        if (!more(j))
            return false;
        if (*j->p == (obj ? '}' : ']'))
            return kf__json_fail(j, "trailing comma");
    }
    j->more_bits |= bit;
    return true;
}

bool kf__json_next_key(kf__json *j, kf__json_span *key)
{
    if (!next_member(j, true))
        return false;
    if (*j->p != '"')
        return kf__json_fail(j, "expected a key string");
    kf__json_span k = {j->p + 1, 0, false};
    const char *why = NULL;
    const char *q = kf__json_skip_string(j->p + 1, j->end, &k.escaped, &why);
    if (!q)
        return kf__json_fail(j, why);
    k.len = (size_t)(q - 1 - k.p);
    j->p = q;
    if (!more(j))
        return false;
    if (*j->p != ':')
        return kf__json_fail(j, "expected ':'");
    j->p++;
    if (key)
        *key = k;
    return true;
}

bool kf__json_key_eq(const kf__json_span *key, const char *lit)
{
    size_t n = strlen(lit);
    return key && key->len == n && !key->escaped && memcmp(key->p, lit, n) == 0;
}

bool kf__json_next_elem(kf__json *j)
{
    return next_member(j, false);
}

bool kf__json_leave(kf__json *j)
{
    if (j->err)
        return false;
    if (j->depth == 0)
        return kf__json_fail(j, "cursor misuse: no open container");
    bool obj = (j->obj_bits >> (j->depth - 1)) & 1;
    int depth = j->depth;
    while (j->depth == depth) {
        if (obj ? kf__json_next_key(j, NULL) : kf__json_next_elem(j)) {
            if (!kf__json_skip_value(j, NULL))
                return false;
        } else if (j->err) {
            return false;
        }
    }
    return true;
}

bool kf__json_read_string(kf__json *j, kf__json_span *out)
{
    if (!more(j))
        return false;
    if (*j->p != '"')
        return kf__json_fail(j, "expected a string");
    kf__json_span s = {j->p + 1, 0, false};
    const char *why = NULL;
    const char *q = kf__json_skip_string(j->p + 1, j->end, &s.escaped, &why);
    if (!q)
        return kf__json_fail(j, why);
    s.len = (size_t)(q - 1 - s.p);
    j->p = q;
    if (out)
        *out = s;
    return true;
}

/* Parses an integer number at j->p: magnitude into *mag, sign into *neg. */
static bool read_int(kf__json *j, uint64_t *mag, bool *neg, uint64_t limit_pos, uint64_t limit_neg)
{
    if (!more(j))
        return false;
    const char *p = j->p, *end = j->end;
    *neg = false;
    if (*p == '-') {
        *neg = true;
        p++;
    }
    if (p >= end)
        return kf__json_fail(j, "truncated");
    if ((unsigned)(*p - '0') > 9u)
        return kf__json_fail(j, "expected an integer");
    uint64_t m = 0;
    uint64_t limit = *neg ? limit_neg : limit_pos;
    const char *start = p;
    if (*p == '0') {
        p++;
    } else {
        while (p < end && (unsigned)(*p - '0') <= 9u) {
            unsigned d = (unsigned)(*p - '0');
            if (m > (limit - d) / 10)
                return kf__json_fail(j, "number overflows int64");
            m = m * 10 + d;
            p++;
        }
    }
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E' || (unsigned)(*p - '0') <= 9u))
        return kf__json_fail(j, p > start && *start == '0' && (unsigned)(*p - '0') <= 9u
                                    ? "bad number"
                                    : "expected an integer");
    j->p = p;
    *mag = m;
    return true;
}

bool kf__json_read_i64(kf__json *j, int64_t *out)
{
    uint64_t m;
    bool neg;
    if (!read_int(j, &m, &neg, (uint64_t)INT64_MAX, (uint64_t)INT64_MAX + 1))
        return false;
    if (out)
        *out = neg ? (int64_t)(0 - m) : (int64_t)m;
    return true;
}

bool kf__json_read_u64(kf__json *j, uint64_t *out)
{
    uint64_t m;
    bool neg;
    const char *at = j->p;
    if (!read_int(j, &m, &neg, UINT64_MAX, 0))
        return false;
    if (neg && m) {
        j->p = at;
        return kf__json_fail(j, "expected an unsigned integer");
    }
    if (out)
        *out = m;
    return true;
}

bool kf__json_read_bool(kf__json *j, bool *out)
{
    if (!more(j))
        return false;
    size_t avail = (size_t)(j->end - j->p);
    if (avail >= 4 && memcmp(j->p, "true", 4) == 0) {
        j->p += 4;
        if (out)
            *out = true;
        return true;
    }
    if (avail >= 5 && memcmp(j->p, "false", 5) == 0) {
        j->p += 5;
        if (out)
            *out = false;
        return true;
    }
    return kf__json_fail(j, "expected true or false");
}

bool kf__json_read_null(kf__json *j)
{
    if (!more(j))
        return false;
    if ((size_t)(j->end - j->p) >= 4 && memcmp(j->p, "null", 4) == 0) {
        j->p += 4;
        return true;
    }
    return kf__json_fail(j, "expected null");
}

bool kf__json_read_dec(kf__json *j, kf_dec *out)
{
    kf__json_span s;
    const char *at = j->p;
    if (!kf__json_read_string(j, &s))
        return false;
    kf_dec d;
    if (s.escaped || kf_dec_parse(s.p, s.len, &d) != KF_OK) {
        j->p = at;
        return kf__json_fail(j, "not a decimal string");
    }
    if (out)
        *out = d;
    return true;
}

bool kf__json_skip_value(kf__json *j, kf__json_span *raw)
{
    if (!more(j))
        return false;
    const char *why = "truncated";
    const char *start = j->p;
    const char *q = kf__json_skip(j->p, j->end, j->depth, &why);
    if (!q)
        return kf__json_fail(j, why);
    j->p = q;
    if (raw) {
        raw->p = start;
        raw->len = (size_t)(q - start);
        raw->escaped = false;
    }
    return true;
}

bool kf__json_finish(kf__json *j)
{
    if (j->err)
        return false;
    if (j->depth)
        return kf__json_fail(j, "truncated");
    j->p = ws(j->p, j->end);
    if (j->p != j->end)
        return kf__json_fail(j, "trailing bytes after the value");
    return true;
}

static size_t put_utf8(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static long hex4(const char *p, const char *end)
{
    if (end - p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

long kf__json_unescape(const char *p, size_t len, char *out, size_t cap)
{
    const char *end = p + len;
    size_t n = 0;
    if (!out || cap == 0)
        return -1;
    while (p < end) {
        char tmp[4];
        size_t tn;
        unsigned char c = (unsigned char)*p;
        if (c != '\\') {
            if (c < 0x20 || c == '"')
                return -1;
            tmp[0] = (char)c;
            tn = 1;
            p++;
        } else {
            if (++p >= end)
                return -1;
            char e = *p++;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                tmp[0] = e;
                break;
            case 'b':
                tmp[0] = '\b';
                break;
            case 'f':
                tmp[0] = '\f';
                break;
            case 'n':
                tmp[0] = '\n';
                break;
            case 'r':
                tmp[0] = '\r';
                break;
            case 't':
                tmp[0] = '\t';
                break;
            case 'u': {
                long cp = hex4(p, end);
                if (cp <= 0)
                    return -1;
                p += 4;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return -1;
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                        return -1;
                    long lo = hex4(p + 2, end);
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return -1;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                tn = put_utf8(tmp, (uint32_t)cp);
                goto put;
            }
            default:
                return -1;
            }
            tn = 1;
        }
    put:
        if (n + tn + 1 > cap)
            return -1;
        memcpy(out + n, tmp, tn);
        n += tn;
    }
    out[n] = 0;
    return (long)n;
}
