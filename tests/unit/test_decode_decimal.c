/* kf_dec_parse / kf_dec_format: exact round trips and strict rejects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "klinefeed.h"

static void roundtrip(const char *txt, int64_t mant, int32_t scale)
{
    kf_dec d = {0, 0};
    char buf[KF_DEC_MAXLEN];
    assert_int_equal(kf_dec_parse(txt, strlen(txt), &d), KF_OK);
    if (d.mant != mant || d.scale != scale)
        fail_msg("%s parsed as {%lld,%d}", txt, (long long)d.mant, (int)d.scale);
    assert_int_equal(kf_dec_format(d, buf, sizeof buf), strlen(txt));
    assert_string_equal(buf, txt);
}

static void test_values(void **state)
{
    (void)state;
    roundtrip("0", 0, 0);
    roundtrip("0.0", 0, 1);
    roundtrip("0.00000", 0, 5);
    roundtrip("1", 1, 0);
    roundtrip("-1.5", -15, 1);
    roundtrip("83084.90", 8308490, 2);
    roundtrip("0.01731", 1731, 5);
    roundtrip("13.551", 13551, 3);
    roundtrip("1125714.73960", 112571473960LL, 5);
    roundtrip("412345678901.12345", 41234567890112345LL, 5); /* monthly quote volume */
    roundtrip("999999999999999999", 999999999999999999LL, 0);
    roundtrip("-999999999999999999", -999999999999999999LL, 0);
    roundtrip("0.999999999999999999", 999999999999999999LL, 18);
    roundtrip("0.000000000000000001", 1, 18);
    roundtrip("0.000000000000000000", 0, 18);
    roundtrip("123456789.123456789", 123456789123456789LL, 9);
    roundtrip("-0.5", -5, 1);
    roundtrip("10", 10, 0);
    roundtrip("100.000", 100000, 3);
}

static void test_random_roundtrip(void **state)
{
    (void)state;
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int digits = 1 + (int)(x % 18);
        uint64_t lim = 1;
        for (int d = 0; d < digits; d++)
            lim *= 10;
        kf_dec d = {(int64_t)((x >> 8) % lim), (int32_t)((x >> 3) % 19)};
        if (x & 1)
            d.mant = -d.mant;
        if (d.mant == 0 && (x & 1))
            continue;
        char buf[KF_DEC_MAXLEN];
        size_t n = kf_dec_format(d, buf, sizeof buf);
        assert_true(n > 0);
        kf_dec back;
        assert_int_equal(kf_dec_parse(buf, n, &back), KF_OK);
        assert_true(back.mant == d.mant && back.scale == d.scale);
        /* parsing a prefix-stripped / extended text never crashes */
        (void)kf_dec_parse(buf, n - 1, &back);
    }
}

static void test_rejects(void **state)
{
    (void)state;
    static const char *bad[] = {"",
                                "-",
                                "-0",
                                "-0.0",
                                "-0.00000",
                                "01",
                                "00",
                                "00.5",
                                ".5",
                                "5.",
                                "-.5",
                                "+1",
                                "1e5",
                                "1E5",
                                "1.2.3",
                                "--1",
                                " 1",
                                "1 ",
                                "1,5",
                                "0x1",
                                "NaN",
                                "inf",
                                "1.-5",
                                "1-",
                                "1234567890123456789",
                                "-1234567890123456789",
                                "0.0000000000000000001",
                                "12345678901234567.89",
                                "0.1234567890123456789",
                                "9223372036854775808"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kf_dec d;
        if (kf_dec_parse(bad[i], strlen(bad[i]), &d) != KF_ERR_PARSE)
            fail_msg("accepted \"%s\"", bad[i]);
    }
    kf_dec d = {7, 1};
    assert_int_equal(kf_dec_parse(NULL, 1, &d), KF_ERR_PARSE);
    assert_int_equal(kf_dec_parse("1", 1, NULL), KF_ERR_PARSE);
    /* a failed parse leaves *out untouched */
    assert_int_equal(kf_dec_parse("-0", 2, &d), KF_ERR_PARSE);
    assert_true(d.mant == 7 && d.scale == 1);
    /* length is honoured: "12" inside "123" */
    assert_int_equal(kf_dec_parse("123", 2, &d), KF_OK);
    assert_true(d.mant == 12);
    /* a huge run of zeros after the point is refused without overflow */
    size_t n = 1u << 20;
    char *z = malloc(n + 3);
    memcpy(z, "0.", 2);
    memset(z + 2, '0', n);
    z[n + 2] = '1';
    assert_int_equal(kf_dec_parse(z, n + 3, &d), KF_ERR_PARSE);
    free(z);
}

static void test_format(void **state)
{
    (void)state;
    char buf[KF_DEC_MAXLEN];
    kf_dec d = {INT64_MIN, 18};
    assert_true(kf_dec_format(d, buf, sizeof buf) > 0);
    assert_string_equal(buf, "-9.223372036854775808");
    d = (kf_dec){INT64_MAX, 0};
    assert_true(kf_dec_format(d, buf, sizeof buf) > 0);
    assert_string_equal(buf, "9223372036854775807");
    d = (kf_dec){5, 19};
    assert_int_equal(kf_dec_format(d, buf, sizeof buf), 0);
    d = (kf_dec){5, -1};
    assert_int_equal(kf_dec_format(d, buf, sizeof buf), 0);
    d = (kf_dec){12345, 2};
    assert_int_equal(kf_dec_format(d, buf, 6), 0); /* "123.45" needs 7 with the NUL */
    assert_int_equal(kf_dec_format(d, buf, 7), 6);
    assert_string_equal(buf, "123.45");
    assert_true(kf_dec_to_double((kf_dec){-15, 1}) == -1.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_random_roundtrip),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
