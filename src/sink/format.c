#include "sink/format.h"

#include "decode/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small bounded writer: every put is checked, an overflow poisons the result. */
typedef struct fmt_buf {
    char *p;
    size_t len, cap;
    int over;
} fmt_buf;

static void fmt_raw(fmt_buf *b, const char *s, size_t n)
{
    if (b->over || b->len + n >= b->cap) {
        b->over = 1;
        return;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void fmt_str(fmt_buf *b, const char *s)
{
    fmt_raw(b, s, strlen(s));
}

static void fmt_i64(fmt_buf *b, int64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRId64, v);
    fmt_raw(b, t, (size_t)n);
}

static void fmt_dec(fmt_buf *b, kf_dec d)
{
    char t[KF_DEC_MAXLEN];
    size_t n = kf_dec_format(d, t, sizeof t);
    if (!n)
        b->over = 1;
    fmt_raw(b, t, n);
}

/* JSON string body: escapes quote, backslash and control bytes; UTF-8 passes through. */
static void fmt_json_str(fmt_buf *b, const char *s)
{
    fmt_raw(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            fmt_raw(b, e, 2);
        } else if (c < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            fmt_raw(b, e, 6);
        } else {
            fmt_raw(b, (const char *)&c, 1);
        }
    }
    fmt_raw(b, "\"", 1);
}

static size_t fmt_finish(fmt_buf *b)
{
    if (b->over || b->len >= b->cap) {
        if (b->cap)
            b->p[0] = 0;
        return 0;
    }
    b->p[b->len] = 0;
    return b->len;
}

size_t kf_kline_to_json(const kf_kline *k, char *buf, size_t cap)
{
    fmt_buf b = {buf, 0, cap, 0};
    if (!k || !buf)
        return 0;
#define JDEC(name, field)                                                                          \
    fmt_str(&b, ",\"" name "\":\"");                                                               \
    fmt_dec(&b, k->field);                                                                         \
    fmt_raw(&b, "\"", 1)
#define JINT(name, field)                                                                          \
    fmt_str(&b, ",\"" name "\":");                                                                 \
    fmt_i64(&b, k->field)
    fmt_str(&b, "{\"symbol\":");
    fmt_json_str(&b, k->symbol);
    fmt_str(&b, ",\"interval\":");
    fmt_json_str(&b, k->interval);
    JINT("open_time", open_time);
    JINT("close_time", close_time);
    JINT("first_trade_id", first_trade_id);
    JINT("last_trade_id", last_trade_id);
    JDEC("open", open);
    JDEC("high", high);
    JDEC("low", low);
    JDEC("close", close);
    JDEC("volume", volume);
    JDEC("quote_volume", quote_volume);
    JINT("trades", trades);
    JDEC("taker_buy_base", taker_buy_base);
    JDEC("taker_buy_quote", taker_buy_quote);
    fmt_str(&b, k->closed ? ",\"closed\":true" : ",\"closed\":false");
    JINT("event_time", event_time);
    fmt_raw(&b, "}", 1);
#undef JDEC
#undef JINT
    return fmt_finish(&b);
}

/* CSV field: symbols may hold UTF-8 but never ',' '"' or newlines (rejected at config);
 * quote defensively anyway when one is present. */
static void fmt_csv_str(fmt_buf *b, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fmt_str(b, s);
        return;
    }
    fmt_raw(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"')
            fmt_raw(b, "\"", 1);
        fmt_raw(b, s, 1);
    }
    fmt_raw(b, "\"", 1);
}

size_t kf__kline_to_csv(const kf_kline *k, char *buf, size_t cap)
{
    fmt_buf b = {buf, 0, cap, 0};
    if (!k || !buf)
        return 0;
    fmt_csv_str(&b, k->symbol);
    fmt_raw(&b, ",", 1);
    fmt_csv_str(&b, k->interval);
    const int64_t ints1[] = {k->open_time, k->close_time, k->first_trade_id, k->last_trade_id};
    for (size_t i = 0; i < 4; i++) {
        fmt_raw(&b, ",", 1);
        fmt_i64(&b, ints1[i]);
    }
    const kf_dec d1[] = {k->open, k->high, k->low, k->close, k->volume, k->quote_volume};
    for (size_t i = 0; i < 6; i++) {
        fmt_raw(&b, ",", 1);
        fmt_dec(&b, d1[i]);
    }
    fmt_raw(&b, ",", 1);
    fmt_i64(&b, k->trades);
    fmt_raw(&b, ",", 1);
    fmt_dec(&b, k->taker_buy_base);
    fmt_raw(&b, ",", 1);
    fmt_dec(&b, k->taker_buy_quote);
    fmt_str(&b, k->closed ? ",true," : ",false,");
    fmt_i64(&b, k->event_time);
    return fmt_finish(&b);
}

/* ---- reading the key fields back ---- */

static bool key_symbol(const char *p, size_t n, kf__line_key *out)
{
    if (n == 0 || n > KF_SYMBOL_MAX || memchr(p, 0, n))
        return false;
    memcpy(out->symbol, p, n);
    out->symbol[n] = 0;
    return true;
}

bool kf__jsonl_key(const char *line, size_t len, kf__line_key *out)
{
    kf__json j;
    kf__json_span key, v;
    bool sym = false, iv = false, ot = false, cl = false;
    kf__json_init(&j, line, len);
    if (!kf__json_enter_object(&j))
        return false;
    while (kf__json_next_key(&j, &key)) {
        if (kf__json_key_eq(&key, "symbol") && kf__json_peek(&j) == KF__JSON_STRING) {
            char buf[KF_SYMBOL_MAX + 1];
            long n =
                kf__json_read_string(&j, &v) ? kf__json_unescape(v.p, v.len, buf, sizeof buf) : -1;
            sym = n > 0 && key_symbol(buf, (size_t)n, out);
        } else if (kf__json_key_eq(&key, "interval") && kf__json_peek(&j) == KF__JSON_STRING) {
            kf__json_read_string(&j, &v);
            out->interval = kf_interval_index(v.p, v.len);
            iv = out->interval >= 0;
        } else if (kf__json_key_eq(&key, "open_time") && kf__json_peek(&j) == KF__JSON_NUMBER) {
            ot = kf__json_read_i64(&j, &out->open_time);
        } else if (kf__json_key_eq(&key, "closed")) {
            cl = kf__json_read_bool(&j, &out->closed);
        } else {
            kf__json_skip_value(&j, NULL);
        }
    }
    return kf__json_finish(&j) && sym && iv && ot && cl;
}

/* The next CSV field of [*p, end) (quoted or not) into a span; false past the end. */
static bool csv_field(const char **p, const char *end, const char **f, size_t *n, bool *quoted)
{
    if (*p > end)
        return false;
    const char *s = *p;
    *quoted = s < end && *s == '"';
    if (*quoted) {
        const char *q = s + 1;
        while (q < end && !(*q == '"' && (q + 1 == end || q[1] != '"')))
            q += *q == '"' ? 2 : 1;
        if (q >= end)
            return false;
        *f = s + 1;
        *n = (size_t)(q - s - 1);
        s = q + 1;
        if (s < end && *s != ',')
            return false;
    } else {
        const char *c = memchr(s, ',', (size_t)(end - s));
        *f = s;
        *n = (size_t)((c ? c : end) - s);
        s += *n;
    }
    *p = s + 1; /* past the comma (or one past the end: no more fields) */
    return true;
}

bool kf__csv_key(const char *line, size_t len, kf__line_key *out)
{
    const char *p = line, *end = line + len, *f;
    size_t n;
    bool q;
    char num[24];
    for (int i = 0; i < 17; i++) {
        if (!csv_field(&p, end, &f, &n, &q))
            return false;
        if (i == 0) {
            /* a quoted symbol has its quotes doubled; symbols never hold quotes (config) */
            if (!key_symbol(f, n, out) || (q && memchr(f, '"', n)))
                return false;
        } else if (i == 1) {
            out->interval = kf_interval_index(f, n);
            if (out->interval < 0)
                return false;
        } else if (i == 2) {
            if (n == 0 || n >= sizeof num)
                return false;
            memcpy(num, f, n);
            num[n] = 0;
            char *e;
            out->open_time = strtoll(num, &e, 10);
            if (*e)
                return false;
        } else if (i == 15) {
            if (n == 4 && memcmp(f, "true", 4) == 0)
                out->closed = true;
            else if (n == 5 && memcmp(f, "false", 5) == 0)
                out->closed = false;
            else
                return false;
        }
    }
    return p == end + 1; /* exactly 17 fields */
}
