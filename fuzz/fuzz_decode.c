/*
 * Fuzz target: kf__decode on arbitrary bytes (exact-size copy so ASan sees
 * over-reads), invariants on every KLINE, and the JSON cursor skipping /
 * walking the same input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode/decode.h"
#include "decode/json.h"
#include "kline_same.h"

/* Walks any value with the cursor, reading scalars with the typed readers. */
static void walk(kf__json *j, int budget)
{
    kf__json_span s;
    char buf[64];
    switch (kf__json_peek(j)) {
    case KF__JSON_OBJECT:
        if (kf__json_enter_object(j))
            while (kf__json_next_key(j, &s)) {
                if (budget > 0)
                    walk(j, budget - 1);
                else
                    kf__json_skip_value(j, NULL);
            }
        break;
    case KF__JSON_ARRAY:
        if (kf__json_enter_array(j)) {
            int n = 0;
            while (kf__json_next_elem(j)) {
                if (++n == 3 && budget > 0) { /* leave early sometimes */
                    kf__json_skip_value(j, NULL);
                    kf__json_leave(j);
                    break;
                }
                if (budget > 0)
                    walk(j, budget - 1);
                else
                    kf__json_skip_value(j, NULL);
            }
        }
        break;
    case KF__JSON_STRING: {
        kf_dec d;
        kf__json tmp = *j;
        if (!kf__json_read_dec(&tmp, &d)) {
            if (kf__json_read_string(j, &s))
                (void)kf__json_unescape(s.p, s.len, buf, sizeof buf);
        } else {
            *j = tmp;
        }
        break;
    }
    case KF__JSON_NUMBER: {
        int64_t v;
        kf__json tmp = *j;
        if (!kf__json_read_i64(&tmp, &v))
            kf__json_skip_value(j, NULL);
        else
            *j = tmp;
        break;
    }
    case KF__JSON_TRUE:
    case KF__JSON_FALSE: {
        bool b;
        kf__json_read_bool(j, &b);
        break;
    }
    case KF__JSON_NULL:
        kf__json_read_null(j);
        break;
    default:
        kf__json_skip_value(j, NULL);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);

    kf__frame f;
    kf_kline k;
    memset(&k, 0xA5, sizeof k);
    kf__frame_kind kind = kf__decode(buf, size, &f, &k);
    /* the public kf_kline_decode says the same: a kline, another well-formed frame, malformed */
    kf_kline pub;
    kf_err pe = kf_kline_decode(buf, size, &pub);
    if (pe != (kind == KF__FRAME_KLINE       ? KF_OK
               : kind == KF__FRAME_MALFORMED ? KF_ERR_PARSE
                                             : KF_ERR_NOT_FOUND))
        abort();
    if (kind != f.kind || kind > KF__FRAME_MALFORMED)
        abort();
    if (kind == KF__FRAME_MALFORMED && !f.why)
        abort();
    if (kind == KF__FRAME_KLINE) {
        if (k.interval_index < 0 || k.interval_index >= KF_INTERVAL_COUNT)
            abort();
        if (strcmp(k.interval, kf_interval_name(k.interval_index)) != 0)
            abort();
        size_t n = strnlen(k.symbol, sizeof k.symbol);
        if (n == 0 || n > KF_SYMBOL_MAX)
            abort();
        char js[KF_KLINE_JSON_MAX];
        if (kf_kline_to_json(&k, js, sizeof js) == 0)
            abort();
        const kf_dec *decs[] = {&k.open,           &k.high,           &k.low,
                                &k.close,          &k.volume,         &k.quote_volume,
                                &k.taker_buy_base, &k.taker_buy_quote};
        for (size_t i = 0; i < 8; i++) {
            char t[KF_DEC_MAXLEN];
            kf_dec back;
            size_t tl = kf_dec_format(*decs[i], t, sizeof t);
            if (tl == 0 || kf_dec_parse(t, tl, &back) != KF_OK || back.mant != decs[i]->mant ||
                back.scale != decs[i]->scale)
                abort();
        }
        if (pe != KF_OK || !kft_kline_same(&pub, &k)) /* the same kline, field by field */
            abort();
    }
    /* the general parser alone decides the same way: kind, reason, event, stream, every field
     * (the fast paths handle Binance's compact layout and must never change a result) */
    {
        kf__frame f2;
        kf_kline k2;
        kf__frame_kind kind2 = kf__decode_general(buf, size, &f2, &k2);
        if (kind2 != kind || f2.why != f.why || f2.event != f.event ||
            f2.event_len != f.event_len || f2.stream != f.stream || f2.stream_len != f.stream_len ||
            f2.has_id != f.has_id || f2.id != f.id || f2.err_code != f.err_code ||
            f2.err_msg != f.err_msg || f2.result != f.result || f2.result_len != f.result_len)
            abort();
        if (kind == KF__FRAME_KLINE && !kft_kline_same(&k, &k2))
            abort();
        kf__frame f3;
        kf_kline k3;
        memset(&f3, 0, sizeof f3);
        if (kf__decode_fast(buf, size, &f3, &k3) && f3.kind != kind)
            abort();
    }

    /* pointers handed out stay inside the buffer */
    if ((f.event && (f.event < buf || f.event + f.event_len > buf + size)) ||
        (f.stream && (f.stream < buf || f.stream + f.stream_len > buf + size)) ||
        (f.err_msg && (f.err_msg < buf || f.err_msg + f.err_msg_len > buf + size)) ||
        (f.result && (f.result < buf || f.result + f.result_len > buf + size)))
        abort();

    /* the cursor: a validating skip must agree with a full walk on validity */
    kf__json j1, j2;
    kf__json_init(&j1, buf, size);
    bool ok1 = kf__json_skip_value(&j1, NULL) && kf__json_finish(&j1);
    kf__json_init(&j2, buf, size);
    walk(&j2, 8);
    (void)kf__json_finish(&j2);
    /* any frame the decoder accepted is valid JSON */
    if (kind != KF__FRAME_MALFORMED && !ok1)
        abort();
    free(buf);
    return 0;
}
