/* The REST weight budget over a fake clock: weights, minute rollover, the server's header,
 * waits, the published limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backfill/budget.h"

#define MIN_MS 60000LL
/* 2026-01-01T00:00:00Z: a minute boundary */
#define T0 1767225600000LL

static void test_weight_table(void **state)
{
    (void)state;
    assert_int_equal(kf__budget_klines_weight(0), 5); /* no limit parameter */
    assert_int_equal(kf__budget_klines_weight(1), 1);
    assert_int_equal(kf__budget_klines_weight(100), 1);
    assert_int_equal(kf__budget_klines_weight(101), 2);
    assert_int_equal(kf__budget_klines_weight(500), 2);
    assert_int_equal(kf__budget_klines_weight(501), 5);
    assert_int_equal(kf__budget_klines_weight(1000), 5);
    assert_int_equal(kf__budget_klines_weight(1001), 10);
    assert_int_equal(kf__budget_klines_weight(1500), 10);
    assert_int_equal(kf__budget_limit_for_weight(2400), 1500);
    assert_int_equal(kf__budget_limit_for_weight(10), 1500);
    assert_int_equal(kf__budget_limit_for_weight(9), 1000);
    assert_int_equal(kf__budget_limit_for_weight(5), 1000);
    assert_int_equal(kf__budget_limit_for_weight(4), 500);
    assert_int_equal(kf__budget_limit_for_weight(1), 100);
}

static void test_defaults(void **state)
{
    (void)state;
    kf__budget b;
    kf__budget_init(&b, 0);
    assert_int_equal(b.limit, 2400);
    assert_int_equal(kf__budget_used(&b, T0), 0);
    assert_int_equal(kf__budget_wait_ms(&b, T0, 10), 0);
    kf__budget_init(&b, 60);
    assert_int_equal(b.limit, 60);
}

/* 240 requests of weight 10 fit exactly; the 241st waits for the boundary + margin. */
static void test_fill_minute_then_wait(void **state)
{
    (void)state;
    kf__budget b;
    kf__budget_init(&b, 2400);
    int64_t now = T0 + 1000;
    for (int i = 0; i < 240; i++) {
        assert_int_equal(kf__budget_wait_ms(&b, now, 10), 0);
        kf__budget_charge(&b, now, 10);
        now += 100;
    }
    assert_int_equal(kf__budget_used(&b, now), 2400);
    /* now = T0 + 25000: 35 s to the boundary, plus the margin */
    assert_int_equal(kf__budget_wait_ms(&b, now, 10), 35000 + KF__BUDGET_MARGIN_MS);
    /* a weight-1 request does not fit either */
    assert_int_equal(kf__budget_wait_ms(&b, now, 1), 35000 + KF__BUDGET_MARGIN_MS);
    /* at the last millisecond of the minute: 1 ms + margin */
    assert_int_equal(kf__budget_wait_ms(&b, T0 + MIN_MS - 1, 10), 1 + KF__BUDGET_MARGIN_MS);
}

static void test_minute_rollover(void **state)
{
    (void)state;
    kf__budget b;
    kf__budget_init(&b, 100);
    kf__budget_charge(&b, T0 + 59000, 95);
    assert_int_equal(kf__budget_used(&b, T0 + 59999), 95);
    assert_true(kf__budget_wait_ms(&b, T0 + 59999, 10) > 0);
    /* the next minute starts empty */
    assert_int_equal(kf__budget_used(&b, T0 + MIN_MS), 0);
    assert_int_equal(kf__budget_wait_ms(&b, T0 + MIN_MS, 10), 0);
    kf__budget_charge(&b, T0 + MIN_MS + 5, 10);
    assert_int_equal(kf__budget_used(&b, T0 + MIN_MS + 6), 10);
    /* several minutes later, still empty */
    assert_int_equal(kf__budget_used(&b, T0 + 10 * MIN_MS), 0);
    /* exactly at the limit is allowed, one more is not */
    kf__budget_init(&b, 100);
    kf__budget_charge(&b, T0, 90);
    assert_int_equal(kf__budget_wait_ms(&b, T0 + 1, 10), 0);
    assert_int_equal(kf__budget_wait_ms(&b, T0 + 1, 11), MIN_MS - 1 + KF__BUDGET_MARGIN_MS);
}

/* The server's X-MBX-USED-WEIGHT-1M is the truth: other clients of the IP raise it,
 * a lower value (our estimate too high) lowers it; absent changes nothing. */
static void test_header_adoption(void **state)
{
    (void)state;
    kf__budget b;
    kf__budget_init(&b, 2400);
    kf__budget_charge(&b, T0 + 1000, 10);
    kf__budget_observe(&b, T0 + 1000, T0 + 1020, 10, 2000); /* someone else used 1990 */
    assert_int_equal(kf__budget_used(&b, T0 + 1030), 2000);
    kf__budget_charge(&b, T0 + 1100, 10);
    assert_int_equal(kf__budget_used(&b, T0 + 1100), 2010);
    kf__budget_observe(&b, T0 + 1100, T0 + 1120, 10, 50);
    assert_int_equal(kf__budget_used(&b, T0 + 1130), 50);
    kf__budget_observe(&b, T0 + 1100, T0 + 1120, 10, -1);
    assert_int_equal(kf__budget_used(&b, T0 + 1130), 50);
    /* the header near the limit makes the next request wait */
    kf__budget_observe(&b, T0 + 1200, T0 + 1220, 10, 2395);
    assert_int_equal(kf__budget_wait_ms(&b, T0 + 2000, 10), 58000 + KF__BUDGET_MARGIN_MS);
    assert_int_equal(kf__budget_wait_ms(&b, T0 + 2000, 5), 0);
}

/* A boundary passed while the request was in flight. */
static void test_header_across_boundary(void **state)
{
    (void)state;
    kf__budget b;
    kf__budget_init(&b, 2400);
    kf__budget_charge(&b, T0 + 59990, 10); /* 10 in the old minute (first request) */
    kf__budget_observe(&b, T0 + 59990, T0 + MIN_MS + 15, 10, 10);
    /* header 10 is not below the old minute's 10: it may be the old minute's count; the new
     * minute keeps its own (empty) count rather than being blocked by the old one */
    assert_int_equal(kf__budget_used(&b, T0 + MIN_MS + 20), 0);

    kf__budget_init(&b, 2400);
    kf__budget_charge(&b, T0 + 1000, 2300);
    kf__budget_charge(&b, T0 + 59990, 10);
    kf__budget_observe(&b, T0 + 59990, T0 + MIN_MS + 15, 10, 2310); /* old minute's count */
    assert_int_equal(kf__budget_used(&b, T0 + MIN_MS + 20), 0);
    assert_int_equal(kf__budget_wait_ms(&b, T0 + MIN_MS + 20, 10), 0);

    kf__budget_init(&b, 2400);
    kf__budget_charge(&b, T0 + 1000, 2300);
    kf__budget_charge(&b, T0 + 59990, 10);
    kf__budget_observe(&b, T0 + 59990, T0 + MIN_MS + 15, 10, 30); /* counted in the new one */
    assert_int_equal(kf__budget_used(&b, T0 + MIN_MS + 20), 30);
}

static void test_published_limit(void **state)
{
    (void)state;
    kf__budget b;
    kf__budget_init(&b, 0);
    kf__budget_publish(&b, 1200); /* lower: adopted */
    assert_int_equal(b.limit, 1200);
    kf__budget_publish(&b, 6000); /* higher (testnet): the configured budget stays */
    assert_int_equal(b.limit, 1200);
    kf__budget_publish(&b, 0); /* not published */
    assert_int_equal(b.limit, 1200);
    kf__budget_charge(&b, T0, 1195);
    assert_int_equal(kf__budget_wait_ms(&b, T0 + 10, 10), MIN_MS - 10 + KF__BUDGET_MARGIN_MS);
    kf__budget_init(&b, 500);
    kf__budget_publish(&b, 2400);
    assert_int_equal(b.limit, 500);
}

/* A weight above the whole limit waits only for a fresh minute (then goes). */
static void test_oversized_weight(void **state)
{
    (void)state;
    kf__budget b;
    kf__budget_init(&b, 5);
    assert_int_equal(kf__budget_wait_ms(&b, T0 + 10, 10), 0);
    kf__budget_charge(&b, T0 + 10, 10);
    assert_int_equal(kf__budget_wait_ms(&b, T0 + 20, 10), MIN_MS - 20 + KF__BUDGET_MARGIN_MS);
}

static void test_negative_times(void **state)
{
    (void)state;
    assert_int_equal(kf__budget_minute(0), 0);
    assert_int_equal(kf__budget_minute(59999), 0);
    assert_int_equal(kf__budget_minute(60000), 1);
    assert_int_equal(kf__budget_minute(-1), -1);
    assert_int_equal(kf__budget_minute(-60000), -1);
    assert_int_equal(kf__budget_minute(-60001), -2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_table),          cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_fill_minute_then_wait), cmocka_unit_test(test_minute_rollover),
        cmocka_unit_test(test_header_adoption),       cmocka_unit_test(test_header_across_boundary),
        cmocka_unit_test(test_published_limit),       cmocka_unit_test(test_oversized_weight),
        cmocka_unit_test(test_negative_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
