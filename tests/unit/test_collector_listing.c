/*
 * The symbol re-read's decision (kf__listing_compare): what a collector with --symbols ALL adds
 * and delists from an exchangeInfo answer, the ALL filters (TRADING, PERPETUAL, USDT, the
 * shard), a delisted symbol listed again, and the safety rule that keeps a bad answer (no
 * TRADING symbol, most symbols gone) from delisting what is collected.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "collector/listing.h"

static kf__listed L(const char *sym, bool trading, bool perp, int64_t onboard)
{
    kf__listed l;
    memset(&l, 0, sizeof l);
    strcpy(l.symbol, sym);
    l.trading = trading;
    l.usdt_perpetual = perp;
    l.onboard = onboard;
    return l;
}

static kf__held H(const char *sym, bool delisted)
{
    kf__held h;
    memset(&h, 0, sizeof h);
    strcpy(h.symbol, sym);
    h.delisted = delisted;
    return h;
}

static void test_adds_and_filters(void **st)
{
    (void)st;
    kf__listed ans[] = {
        L("AAAUSDT", true, true, 1),         L("NEWUSDT", true, true, 7),
        L("QQQUSDT_261225", true, false, 1), /* a quarterly: not ALL */
        L("PENDUSDT", false, true, 9),       /* not TRADING yet */
        L("NEWUSDT", true, true, 7),         /* listed twice: added once */
    };
    kf__held held[] = {H("AAAUSDT", false)};
    kf__listing_diff d;
    assert_int_equal(kf__listing_compare(ans, 5, held, 1, 0, 0, &d), KF_OK);
    assert_int_equal(d.nadd, 1);
    assert_string_equal(d.add[0].symbol, "NEWUSDT");
    assert_int_equal(d.add[0].onboard, 7);
    assert_int_equal(d.ndrop, 0);
    assert_int_equal(d.active, 1);
    assert_false(d.drops_refused);
    kf__listing_diff_free(&d);
}

static void test_shard_filter(void **st)
{
    (void)st;
    /* kf_shard_of pinned in test_collector_cluster: BTCUSDT 1/3, SOLUSDT 3/3 */
    kf__listed ans[] = {L("BTCUSDT", true, true, 0), L("SOLUSDT", true, true, 0),
                        L("AAAUSDT", true, true, 0)};
    kf__held held[] = {H("AAAUSDT", false)};
    kf__listing_diff d;
    assert_int_equal(kf__listing_compare(ans, 3, held, 1, 3, 3, &d), KF_OK);
    assert_int_equal(d.nadd, 1);
    assert_string_equal(d.add[0].symbol, "SOLUSDT");
    kf__listing_diff_free(&d);
    assert_int_equal(kf__listing_compare(ans, 3, held, 1, 1, 3, &d), KF_OK);
    assert_int_equal(d.nadd, 1);
    assert_string_equal(d.add[0].symbol, "BTCUSDT");
    kf__listing_diff_free(&d);
}

static void test_delist_and_relist(void **st)
{
    (void)st;
    kf__listed ans[] = {L("AAAUSDT", true, true, 0), L("BBBUSDT", false, true, 0),
                        L("CCCUSDT", true, true, 0), L("DDDUSDT", true, true, 0),
                        L("EEEUSDT", true, true, 0), L("XYZUSDC", true, false, 0)};
    /* BBBUSDT SETTLING: delisted; EEEUSDT delisted before and TRADING again: listed again;
     * XYZUSDC (given by name, not a USDT perpetual) stays while TRADING */
    kf__held held[] = {H("AAAUSDT", false), H("BBBUSDT", false), H("CCCUSDT", false),
                       H("DDDUSDT", false), H("EEEUSDT", true),  H("XYZUSDC", false)};
    kf__listing_diff d;
    assert_int_equal(kf__listing_compare(ans, 6, held, 6, 0, 0, &d), KF_OK);
    assert_int_equal(d.active, 5);
    assert_int_equal(d.ndrop, 1);
    assert_string_equal(d.drop[0].symbol, "BBBUSDT");
    assert_false(d.drops_refused);
    assert_int_equal(d.nadd, 1);
    assert_string_equal(d.add[0].symbol, "EEEUSDT");
    kf__listing_diff_free(&d);

    /* a symbol no longer in the answer at all is delisted too */
    assert_int_equal(kf__listing_compare(ans + 2, 4, held + 2, 4, 0, 0, &d), KF_OK);
    assert_int_equal(d.ndrop, 0);
    kf__listing_diff_free(&d);
    kf__listed some[] = {L("AAAUSDT", true, true, 0), L("CCCUSDT", true, true, 0),
                         L("DDDUSDT", true, true, 0), L("XYZUSDC", true, false, 0)};
    kf__held four[] = {H("AAAUSDT", false), H("BBBUSDT", false), H("CCCUSDT", false),
                       H("DDDUSDT", false), H("XYZUSDC", false)};
    assert_int_equal(kf__listing_compare(some, 4, four, 5, 0, 0, &d), KF_OK);
    assert_int_equal(d.ndrop, 1);
    assert_string_equal(d.drop[0].symbol, "BBBUSDT");
    assert_false(d.drops_refused);
    kf__listing_diff_free(&d);
}

static void test_safety_rule(void **st)
{
    (void)st;
    kf__held held[8];
    const char *names[] = {"A1USDT", "A2USDT", "A3USDT", "A4USDT",
                           "A5USDT", "A6USDT", "A7USDT", "A8USDT"};
    for (int i = 0; i < 8; i++)
        held[i] = H(names[i], false);
    kf__listing_diff d;

    /* an empty answer: nothing delisted */
    assert_int_equal(kf__listing_compare(NULL, 0, held, 8, 0, 0, &d), KF_OK);
    assert_int_equal(d.ndrop, 8);
    assert_true(d.drops_refused);
    assert_non_null(strstr(d.why, "no TRADING"));
    kf__listing_diff_free(&d);

    /* an answer where every symbol is halted: still nothing */
    kf__listed halted[8];
    for (int i = 0; i < 8; i++)
        halted[i] = L(names[i], false, true, 0);
    assert_int_equal(kf__listing_compare(halted, 8, held, 8, 0, 0, &d), KF_OK);
    assert_true(d.drops_refused);
    kf__listing_diff_free(&d);

    /* 2 of 8 gone: a quarter, applied; 3 of 8: more than a quarter, refused */
    kf__listed ans[8];
    for (int i = 0; i < 8; i++)
        ans[i] = L(names[i], true, true, 0);
    assert_int_equal(kf__listing_compare(ans + 2, 6, held, 8, 0, 0, &d), KF_OK);
    assert_int_equal(d.ndrop, 2);
    assert_false(d.drops_refused);
    kf__listing_diff_free(&d);
    assert_int_equal(kf__listing_compare(ans + 3, 5, held, 8, 0, 0, &d), KF_OK);
    assert_int_equal(d.ndrop, 3);
    assert_true(d.drops_refused);
    assert_non_null(strstr(d.why, "quarter"));
    kf__listing_diff_free(&d);

    /* one symbol collected, the answer lacks it (but lists others): never every symbol */
    assert_int_equal(kf__listing_compare(ans + 1, 7, held, 1, 0, 0, &d), KF_OK);
    assert_int_equal(d.ndrop, 1);
    assert_true(d.drops_refused);
    kf__listing_diff_free(&d);

    /* a delisted symbol does not count as collected */
    held[0].delisted = held[1].delisted = true;
    assert_int_equal(kf__listing_compare(ans + 2, 6, held, 8, 0, 0, &d), KF_OK);
    assert_int_equal(d.active, 6);
    assert_int_equal(d.ndrop, 0);
    kf__listing_diff_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adds_and_filters),
        cmocka_unit_test(test_shard_filter),
        cmocka_unit_test(test_delist_and_relist),
        cmocka_unit_test(test_safety_rule),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
