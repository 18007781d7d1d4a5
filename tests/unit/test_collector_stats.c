/*
 * The counters' one list (KF_STATS_FIELDS): the struct, the names, kinds and help, and
 * kf_stats_value agree field by field; a caller's shorter struct is never read past.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "klinefeed.h"

static void test_list_matches_struct(void **st)
{
    (void)st;
    assert_int_equal(kf_stats_count(), sizeof(kf_stats) / sizeof(uint64_t));
    kf_stats s;
    memset(&s, 0, sizeof s);
    uint64_t v = 1000;
    size_t i = 0;
    /* each field gets its own value through its name, then is read back by index */
#define SET(name, kind, help) s.name = v++;
    KF_STATS_FIELDS(SET)
#undef SET
#define CHECK(name, kind, help)                                                                    \
    assert_string_equal(kf_stats_name(i), #name);                                                  \
    assert_string_equal(kf_stats_help(i), help);                                                   \
    assert_int_equal(kf_stats_kind(i), kind);                                                      \
    assert_int_equal(kf_stats_value(&s, sizeof s, i), s.name);                                     \
    assert_int_equal(offsetof(kf_stats, name), i * sizeof(uint64_t));                              \
    i++;
    KF_STATS_FIELDS(CHECK)
#undef CHECK
    assert_int_equal(i, kf_stats_count());
    assert_null(kf_stats_name(i));
    assert_null(kf_stats_help(i));
    assert_int_equal(kf_stats_value(&s, sizeof s, i), 0);
}

static void test_names_unique_help_one_line(void **st)
{
    (void)st;
    for (size_t i = 0; i < kf_stats_count(); i++) {
        const char *h = kf_stats_help(i);
        assert_non_null(h);
        assert_true(strlen(h) > 0);
        assert_null(strchr(h, '\n')); /* a Prometheus HELP line, a log key: one line */
        for (const char *p = kf_stats_name(i); *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(kf_stats_name(i), kf_stats_name(j));
    }
    assert_int_equal(kf_stats_kind(kf_stats_count()), KF_STAT_COUNTER);
}

/* A program built with an older, shorter kf_stats: no index past its size is read. */
static void test_value_respects_size(void **st)
{
    (void)st;
    uint64_t old[3] = {7, 8, 9};
    const kf_stats *s = (const kf_stats *)(const void *)old;
    assert_int_equal(kf_stats_value(s, sizeof old, 0), 7);
    assert_int_equal(kf_stats_value(s, sizeof old, 2), 9);
    assert_int_equal(kf_stats_value(s, sizeof old, 3), 0);
    assert_int_equal(kf_stats_value(s, 2 * sizeof(uint64_t) + 4, 2), 0); /* a partial field */
    assert_int_equal(kf_stats_value(NULL, sizeof old, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_matches_struct),
        cmocka_unit_test(test_names_unique_help_one_line),
        cmocka_unit_test(test_value_respects_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
