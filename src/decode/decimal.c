/* Exact decimals: text <-> (int64 mantissa, scale). No double on the way. */
#include <string.h>

#include "klinefeed.h"

#define DEC_MAX_DIGITS 18

kf_err kf_dec_parse(const char *s, size_t len, kf_dec *out)
{
    const char *p = s, *end = s + len;
    int neg = 0;
    if (!s || !out || len == 0)
        return KF_ERR_PARSE;
    if (*p == '-') {
        neg = 1;
        p++;
    }
    if (p == end || *p < '0' || *p > '9')
        return KF_ERR_PARSE;
    /* "0" or "0.xxx" may start with 0; "01" may not (it would not round-trip). */
    if (*p == '0' && p + 1 < end && p[1] != '.')
        return KF_ERR_PARSE;
    uint64_t m = 0;
    int digits = 0, scale = 0, seen_dot = 0;
    for (; p < end; p++) {
        unsigned c = (unsigned char)*p;
        if (c - '0' <= 9) {
            if (m || c != '0')
                digits++;
            if (digits > DEC_MAX_DIGITS)
                return KF_ERR_PARSE;
            m = m * 10 + (c - '0');
            scale += seen_dot;
            if (scale > DEC_MAX_DIGITS) /* early: a huge run of zeros must not overflow */
                return KF_ERR_PARSE;
        } else if (c == '.' && !seen_dot) {
            seen_dot = 1;
            if (p + 1 == end)
                return KF_ERR_PARSE; /* "1." */
        } else {
            return KF_ERR_PARSE;
        }
    }
    /* "-0" would format as "0": refuse it rather than change the text. */
    if (neg && m == 0)
        return KF_ERR_PARSE;
    /* *out is written only on success */
    out->mant = neg ? -(int64_t)m : (int64_t)m;
    out->scale = scale;
    return KF_OK;
}

size_t kf_dec_format(kf_dec d, char *buf, size_t cap)
{
    char tmp[KF_DEC_MAXLEN];
    size_t n = 0;
    if (d.scale < 0 || d.scale > DEC_MAX_DIGITS) {
        if (cap)
            buf[0] = 0;
        return 0;
    }
    uint64_t m = d.mant < 0 ? (uint64_t)0 - (uint64_t)d.mant : (uint64_t)d.mant;
    int i = 0;
    /* digits backwards, at least scale + 1 of them */
    do {
        tmp[n++] = (char)('0' + m % 10);
        m /= 10;
        i++;
        if (i == d.scale)
            tmp[n++] = '.';
    } while (m || i <= d.scale);
    if (d.scale && tmp[n - 1] == '.') /* "0.xx" needs the leading 0 */
        tmp[n++] = '0';
    if (d.mant < 0)
        tmp[n++] = '-';
    if (n + 1 > cap) {
        if (cap)
            buf[0] = 0;
        return 0;
    }
    for (size_t j = 0; j < n; j++)
        buf[j] = tmp[n - 1 - j];
    buf[n] = 0;
    return n;
}

double kf_dec_to_double(kf_dec d)
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8, 1e9,
                                 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18};
    if (d.scale < 0 || d.scale > DEC_MAX_DIGITS)
        return 0;
    return (double)d.mant / p10[d.scale];
}
