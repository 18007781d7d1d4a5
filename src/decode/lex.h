/*
 * Lexing helpers shared by the frame decoder's two paths (kline.c: the general
 * parser; fast.c: the compact-layout fast paths). Header-only and inline: they
 * sit on the per-message path.
 */
#ifndef KF_DECODE_LEX_H
#define KF_DECODE_LEX_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "klinefeed.h"

#define HOT static inline __attribute__((always_inline))

/* Bytes a symbol may not contain: controls, space, DEL, / @ ? & and the JSON specials. */
static const unsigned char sym_bad[256] = {
    1, 1, 1, 1,         1,         1,         1,         1,         1,          1,
    1, 1, 1, 1,         1,         1,         1,         1,         1,          1,
    1, 1, 1, 1,         1,         1,         1,         1,         1,          1,
    1, 1, 1, ['"'] = 1, ['&'] = 1, ['/'] = 1, ['?'] = 1, ['@'] = 1, ['\\'] = 1, [0x7f] = 1,
};

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

/* Copies the symbol sym[0..n) (1..32 bytes, no quote, backslash or control byte: both parsers
 * take it from a plain string) into dst[33] NUL-padded, unless it holds a byte sym_bad forbids
 * (false). */
HOT bool copy_symbol(char *dst, const char *sym, size_t n, const char *end)
{
#ifdef __SSE2__
    if (end - sym >= 32) { /* the frame goes on long after the symbol: 32-byte loads */
        static const unsigned char keep[64] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                               0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                               0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                               0xFF, 0xFF, 0xFF, 0xFF, 0xFF}; /* then 32 zeros */
        const __m128i *kp = (const __m128i *)(const void *)(keep + 32 - n);
        __m128i k0 = _mm_loadu_si128(kp), k1 = _mm_loadu_si128(kp + 1);
        __m128i a = _mm_and_si128(_mm_loadu_si128((const __m128i *)(const void *)sym), k0);
        __m128i b = _mm_and_si128(_mm_loadu_si128((const __m128i *)(const void *)(sym + 16)), k1);
        /* forbidden here: space / ? @ & DEL (the scan already excluded the rest of sym_bad) */
        const __m128i sp = _mm_set1_epi8(' '), sl = _mm_set1_epi8('/'), qm = _mm_set1_epi8('?'),
                      at = _mm_set1_epi8('@'), am = _mm_set1_epi8('&'), del = _mm_set1_epi8(0x7f);
        __m128i bad = _mm_setzero_si128();
        __m128i v[2] = {a, b};
        for (int i = 0; i < 2; i++)
            bad = _mm_or_si128(
                bad,
                _mm_or_si128(
                    _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v[i], sp), _mm_cmpeq_epi8(v[i], sl)),
                                 _mm_or_si128(_mm_cmpeq_epi8(v[i], qm), _mm_cmpeq_epi8(v[i], at))),
                    _mm_or_si128(_mm_cmpeq_epi8(v[i], am), _mm_cmpeq_epi8(v[i], del))));
        if (_mm_movemask_epi8(bad))
            return false;
        _mm_storeu_si128((__m128i *)(void *)dst, a);
        _mm_storeu_si128((__m128i *)(void *)(dst + 16), b);
        dst[32] = 0;
        return true;
    }
#endif
    (void)end;
    for (size_t i = 0; i < n; i++)
        if (sym_bad[(unsigned char)sym[i]])
            return false;
    memset(dst, 0, KF_SYMBOL_MAX + 1);
    memcpy(dst, sym, n);
    return true;
}

#endif
