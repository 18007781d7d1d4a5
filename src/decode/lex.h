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

#endif
