/*
 * A small zero-allocation JSON cursor over (buf, len) for REST bodies and
 * frames. buf need not be NUL-terminated and is never read past len. Strict
 * RFC 8259 grammar (no comments, no trailing commas, no leading zeros, no
 * raw control bytes in strings); strings are not checked for valid UTF-8.
 *
 * Errors are sticky: the first failure stores a static message in j->err
 * (and its position in j->err_at); every later call returns false / NONE.
 * Nesting is capped at KF__JSON_MAX_DEPTH containers.
 *
 * Usage (exchangeInfo):
 *
 *     kf__json j;
 *     kf__json_span key, sym;
 *     kf__json_init(&j, body, len);
 *     if (kf__json_enter_object(&j))
 *         while (kf__json_next_key(&j, &key)) {
 *             if (!kf__json_key_eq(&key, "symbols")) {
 *                 kf__json_skip_value(&j, NULL);
 *                 continue;
 *             }
 *             if (kf__json_enter_array(&j))
 *                 while (kf__json_next_elem(&j)) {
 *                     if (!kf__json_enter_object(&j))
 *                         break;
 *                     while (kf__json_next_key(&j, &key)) {
 *                         if (kf__json_key_eq(&key, "symbol"))
 *                             kf__json_read_string(&j, &sym);
 *                         else
 *                             kf__json_skip_value(&j, NULL);
 *                     }
 *                 }
 *         }
 *     if (!kf__json_finish(&j)) fail(j.err);
 *
 * Contract: after next_key() / next_elem() returned true, consume exactly one
 * value (read_*, skip_value, or enter_* and iterate to the end / leave()).
 */
#ifndef KF_DECODE_JSON_H
#define KF_DECODE_JSON_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "klinefeed.h"

#define KF__JSON_MAX_DEPTH 32

typedef enum kf__json_type {
    KF__JSON_NONE = 0, /* error, end of input, or a byte that starts no value */
    KF__JSON_OBJECT,
    KF__JSON_ARRAY,
    KF__JSON_STRING,
    KF__JSON_NUMBER,
    KF__JSON_TRUE,
    KF__JSON_FALSE,
    KF__JSON_NULL,
} kf__json_type;

/* A piece of the input. For strings: the bytes between the quotes, escapes
 * left as sent (escaped tells whether any backslash is present). */
typedef struct kf__json_span {
    const char *p;
    size_t len;
    bool escaped;
} kf__json_span;

typedef struct kf__json {
    const char *buf; /* start of input (for error offsets) */
    const char *p;   /* next byte to read */
    const char *end;
    const char *err;    /* NULL while fine, else a static message ("truncated") */
    const char *err_at; /* where the error was detected */
    int depth;          /* open containers */
    uint64_t obj_bits;  /* bit d-1: container at depth d is an object */
    uint64_t more_bits; /* bit d-1: container at depth d already had a member */
} kf__json;

void kf__json_init(kf__json *j, const char *buf, size_t len);
static inline bool kf__json_ok(const kf__json *j)
{
    return j->err == NULL;
}
/* Sets the error (first one wins) and returns false. */
bool kf__json_fail(kf__json *j, const char *why);

/* Type of the next value (skips whitespace, consumes nothing). */
kf__json_type kf__json_peek(kf__json *j);

/* Objects: enter, then next_key() until it returns false (it consumes the '}'). */
bool kf__json_enter_object(kf__json *j);
bool kf__json_next_key(kf__json *j, kf__json_span *key);
/* key equals the NUL-terminated literal (raw compare: an escaped key never matches). */
bool kf__json_key_eq(const kf__json_span *key, const char *lit);

/* Arrays: enter, then next_elem() until it returns false (it consumes the ']'). */
bool kf__json_enter_array(kf__json *j);
bool kf__json_next_elem(kf__json *j);

/* Skips the rest of the innermost open container, including its closer. */
bool kf__json_leave(kf__json *j);

/* Scalars. A type mismatch is an error ("expected a string"); peek() first
 * for optional types. */
bool kf__json_read_string(kf__json *j, kf__json_span *out);
bool kf__json_read_i64(kf__json *j, int64_t *out); /* integer only; overflow is an error */
bool kf__json_read_u64(kf__json *j, uint64_t *out);
bool kf__json_read_bool(kf__json *j, bool *out);
bool kf__json_read_null(kf__json *j);
/* A JSON string holding a plain decimal ("83084.90") parsed with kf_dec_parse. */
bool kf__json_read_dec(kf__json *j, kf_dec *out);
/* Skips one value of any type (validating it); raw (may be NULL) gets its text. */
bool kf__json_skip_value(kf__json *j, kf__json_span *raw);

/* True when every container is closed and only whitespace remains. */
bool kf__json_finish(kf__json *j);

/*
 * Decodes the escapes of a string span (\" \\ \/ \b \f \n \r \t \uXXXX with
 * surrogate pairs, to UTF-8) into out with a NUL. Returns the length, or -1
 * for a bad escape, a lone surrogate, \u0000, or when cap is too small.
 */
long kf__json_unescape(const char *p, size_t len, char *out, size_t cap);

/* ---- low level, shared with the frame decoder ---- */

/* First byte in [p, end) that is '"', '\\' or a control byte, or end. */
static inline __attribute__((always_inline)) const char *kf__json_scan_str(const char *p,
                                                                           const char *end)
{
#ifdef __SSE2__
    const __m128i q = _mm_set1_epi8('"'), bs = _mm_set1_epi8('\\'), c1f = _mm_set1_epi8(0x1f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, q), _mm_cmpeq_epi8(v, bs)),
                                 _mm_cmpeq_epi8(_mm_min_epu8(v, c1f), v));
        unsigned mask = (unsigned)_mm_movemask_epi8(m);
        if (mask)
            return p + __builtin_ctz(mask);
        p += 16;
    }
#endif
    while (p < end && *p != '"' && *p != '\\' && (unsigned char)*p >= 0x20)
        p++;
    return p;
}

/* First byte in [p, end) that is not an ASCII digit, or end. */
static inline __attribute__((always_inline)) const char *kf__json_scan_digits(const char *p,
                                                                              const char *end)
{
#ifdef __SSE2__
    const __m128i zero = _mm_set1_epi8('0'), nine = _mm_set1_epi8(9);
    while (end - p >= 16) {
        __m128i v = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)(const void *)p), zero);
        unsigned digits = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(v, nine), v));
        if (digits != 0xFFFF)
            return p + __builtin_ctz(~digits);
        p += 16;
    }
#endif
    while (p < end && (unsigned)(*p - '0') <= 9u)
        p++;
    return p;
}

/*
 * Low level: skips one value starting at p (leading whitespace allowed) with
 * `depth` containers already open. Returns the byte after it, or NULL with
 * *why set ("truncated", "nesting too deep", ...).
 */
const char *kf__json_skip(const char *p, const char *end, int depth, const char **why);
/* Low level: p is just past an opening quote; returns the byte after the closing quote or NULL. */
const char *kf__json_skip_string(const char *p, const char *end, bool *escaped, const char **why);

#endif
