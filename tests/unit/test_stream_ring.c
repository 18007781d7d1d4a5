/* Per-stream state and ring: in-place open candle, one append per closed candle, duplicates,
 * wrap-around, query order, gap counting, calendar months. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kline_same.h"
#include "stream/stream.h"

static kf__candle ring[64];

static kf_kline mk(int64_t t, int64_t close_mant, bool closed)
{
    kf_kline k;
    memset(&k, 0, sizeof k);
    strcpy(k.symbol, "BTCUSDT");
    strcpy(k.interval, "1m");
    k.interval_index = 0;
    k.open_time = t;
    k.close_time = t + 59999;
    k.close = (kf_dec){close_mant, 2};
    k.closed = closed;
    return k;
}

static void test_open_updated_in_place(void **st)
{
    (void)st;
    kf__stream s;
    assert_int_equal(kf__stream_init(&s, "BTCUSDT", 0, ring, 10), KF_OK);
    assert_string_equal(s.name, "btcusdt@kline_1m");
    kf_kline out[4];
    for (int i = 0; i < 5; i++) {
        kf_kline k = mk(60000, 100 + i, false);
        assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_UPDATE);
    }
    size_t n = kf__stream_recent(&s, out, 4);
    assert_int_equal(n, 1);
    assert_int_equal(out[0].close.mant, 104);
    assert_false(out[0].closed);
    kf__stream_destroy(&s);
}

static void test_closed_appended_once(void **st)
{
    (void)st;
    kf__stream s;
    assert_int_equal(kf__stream_init(&s, "BTCUSDT", 0, ring, 10), KF_OK);
    kf_kline k = mk(60000, 100, false);
    kf__stream_apply(&s, &k, NULL);
    k = mk(60000, 101, true);
    assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_CLOSED);
    /* Binance repeats the closing update: a duplicate, never a second row. */
    assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_DUPLICATE);
    k = mk(60000, 100, false);
    assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_STALE);
    kf_kline out[4];
    size_t n = kf__stream_recent(&s, out, 4);
    assert_int_equal(n, 1);
    assert_true(out[0].closed);
    assert_int_equal(out[0].close.mant, 101);
    /* next candle opens: closed ones first, the open one last */
    k = mk(120000, 200, false);
    assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_UPDATE);
    n = kf__stream_recent(&s, out, 4);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].open_time, 60000);
    assert_int_equal(out[1].open_time, 120000);
    assert_false(out[1].closed);
    kf__stream_destroy(&s);
}

static void test_ring_wraps_and_query_caps(void **st)
{
    (void)st;
    kf__stream s;
    assert_int_equal(kf__stream_init(&s, "ETHUSDT", 0, ring, 5), KF_OK);
    for (int i = 1; i <= 12; i++) {
        kf_kline k = mk(i * 60000LL, i, true);
        assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_CLOSED);
    }
    kf_kline out[8];
    size_t n = kf__stream_recent(&s, out, 8);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(out[i].open_time, (int64_t)(8 + i) * 60000);
    n = kf__stream_recent(&s, out, 2);
    assert_int_equal(n, 2);
    assert_int_equal(out[0].open_time, 11 * 60000);
    assert_int_equal(out[1].open_time, 12 * 60000);
    n = kf__stream_recent(&s, out, 0);
    assert_int_equal(n, 0);
    kf__stream_destroy(&s);
}

static void test_gap_opens_hole_and_backfill_fills_it(void **st)
{
    (void)st;
    kf__stream s;
    assert_int_equal(kf__stream_init(&s, "BTCUSDT", 0, ring, 10), KF_OK);
    kf__gap gap;
    kf_kline k = mk(60000, 1, true);
    kf__stream_apply(&s, &k, &gap);
    assert_true(gap.from > gap.to); /* first candle: nothing known before it */
    k = mk(120000, 2, true);
    kf__stream_apply(&s, &k, &gap);
    assert_true(gap.from > gap.to);
    k = mk(120000 + 4 * 60000, 6, true); /* 180000, 240000, 300000 missing */
    assert_int_equal(kf__stream_apply(&s, &k, &gap), KF__APPLY_CLOSED);
    assert_int_equal(gap.from, 180000);
    assert_int_equal(gap.to, 300000);
    assert_int_equal(kf__stream_missing(&s), 3);
    assert_int_equal(kf__interval_count(0, gap.from, gap.to), 3);
    /* a REST row inside the hole is new, once; the middle one splits the hole */
    k = mk(240000, 4, true);
    assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_CLOSED);
    assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_DUPLICATE);
    assert_int_equal(kf__stream_missing(&s), 2);
    k = mk(180000, 3, true);
    assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_CLOSED);
    k = mk(300000, 5, true);
    assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_CLOSED);
    assert_int_equal(kf__stream_missing(&s), 0);
    /* outside any hole and not newer: a duplicate */
    k = mk(60000, 1, true);
    assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_DUPLICATE);
    /* the ring is in open-time order although the candles arrived out of order */
    kf_kline out[10];
    size_t n = kf__stream_recent(&s, out, 10);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].open_time, (int64_t)(i + 1) * 60000);
        assert_int_equal(out[i].close.mant, (int64_t)i + 1);
    }
    kf__stream_destroy(&s);
}

static void test_late_candle_in_full_ring(void **st)
{
    (void)st;
    kf__stream s;
    assert_int_equal(kf__stream_init(&s, "BTCUSDT", 0, ring, 3), KF_OK);
    kf_kline k = mk(60000, 1, true);
    kf__stream_apply(&s, &k, NULL);
    k = mk(5 * 60000, 5, true); /* hole 2..4 */
    kf__stream_apply(&s, &k, NULL);
    k = mk(6 * 60000, 6, true);
    kf__stream_apply(&s, &k, NULL); /* ring full: 1, 5, 6 */
    k = mk(3 * 60000, 3, true);
    assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_CLOSED); /* 3, 5, 6 */
    kf_kline out[3];
    assert_int_equal(kf__stream_recent(&s, out, 3), 3);
    assert_int_equal(out[0].open_time, 3 * 60000);
    assert_int_equal(out[1].open_time, 5 * 60000);
    assert_int_equal(out[2].open_time, 6 * 60000);
    k = mk(2 * 60000, 2, true); /* older than all kept: stored, not kept */
    assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_CLOSED);
    assert_int_equal(kf__stream_recent(&s, out, 3), 3);
    assert_int_equal(out[0].open_time, 3 * 60000);
    assert_int_equal(kf__stream_missing(&s), 1);
    kf__stream_destroy(&s);
}

static void test_resume_point(void **st)
{
    (void)st;
    kf__stream s;
    assert_int_equal(kf__stream_init(&s, "BTCUSDT", 0, ring, 4), KF_OK);
    kf__stream_resume(&s, 600000); /* the store's newest closed candle */
    kf__gap gap;
    kf_kline k = mk(600000, 1, true);
    assert_int_equal(kf__stream_apply(&s, &k, &gap), KF__APPLY_DUPLICATE);
    k = mk(780000, 1, true);
    assert_int_equal(kf__stream_apply(&s, &k, &gap), KF__APPLY_CLOSED);
    assert_int_equal(gap.from, 660000);
    assert_int_equal(gap.to, 720000);
    kf__stream_destroy(&s);
}

static void test_month_boundaries(void **st)
{
    (void)st;
    int m = kf_interval_index("1M", 2);
    assert_int_equal(m, 14);
    /* 2026-01-01 -> 2026-02-01 -> 2026-03-01 (28 days) -> 2026-04-01 */
    assert_int_equal(kf__interval_next(m, 1767225600000LL), 1769904000000LL);
    assert_int_equal(kf__interval_next(m, 1769904000000LL), 1772323200000LL);
    assert_int_equal(kf__interval_next(m, 1772323200000LL), 1775001600000LL);
    assert_int_equal(kf__interval_next(0, 60000), 120000);
    kf__stream s;
    assert_int_equal(kf__stream_init(&s, "BTCUSDT", m, ring, 4), KF_OK);
    assert_string_equal(s.name, "btcusdt@kline_1M");
    kf__gap gap;
    kf_kline k = mk(1767225600000LL, 1, true);
    kf__stream_apply(&s, &k, &gap);
    k = mk(1775001600000LL, 1, true); /* Feb and Mar missing */
    kf__stream_apply(&s, &k, &gap);
    assert_int_equal(gap.from, 1769904000000LL);
    assert_int_equal(gap.to, 1772323200000LL);
    assert_int_equal(kf__stream_missing(&s), 2);
    assert_int_equal(kf__interval_count(m, gap.from, gap.to), 2);
    assert_int_equal(kf__interval_count(m, gap.to, gap.from), 0);
    kf__stream_destroy(&s);
}

static void test_index_lookup(void **st)
{
    (void)st;
    kf__stream ss[6];
    const char *syms[] = {"BTCUSDT", "ETHUSDT", "币安人生USDT"};
    for (int i = 0; i < 6; i++)
        assert_int_equal(kf__stream_init(&ss[i], syms[i / 2], i % 2 ? 14 : 0, ring + 2 * i, 2),
                         KF_OK);
    kf__stream_index ix;
    assert_int_equal(kf__stream_index_build(&ix, ss, 6, 6), KF_OK);
    for (int i = 0; i < 6; i++)
        assert_int_equal(
            kf__stream_index_find(&ix, ss, syms[i / 2], strlen(syms[i / 2]), i % 2 ? 14 : 0), i);
    assert_int_equal(kf__stream_index_find(&ix, ss, "BTCUSD", 6, 0), -1);
    assert_int_equal(kf__stream_index_find(&ix, ss, "BTCUSDT", 7, 1), -1);
    assert_int_equal(kf__stream_index_find(&ix, ss, "BTCUSDTX", 7, 0), 0); /* length-bounded */
    assert_string_equal(ss[4].name, "币安人生usdt@kline_1m");
    kf__stream_index_free(&ix);
    for (int i = 0; i < 6; i++)
        kf__stream_destroy(&ss[i]);
}

/* The ring keeps a compact candle (kf__candle); what comes back out is the kline as applied,
 * every field, for extreme values and every decimal scale. */
static void test_ring_round_trip(void **st)
{
    (void)st;
    kf__stream s;
    assert_int_equal(kf__stream_init(&s, "1000SHIBUSDT", 14, ring, 20), KF_OK);
    kf_kline in[19];
    for (int i = 0; i < 19; i++) {
        kf_kline *k = &in[i];
        memset(k, 0, sizeof *k);
        strcpy(k->symbol, "1000SHIBUSDT");
        strcpy(k->interval, "1M");
        k->interval_index = 14;
        k->closed = true;
        k->open_time = 1000000 + i; /* any grid: the ring only orders by open time */
        k->close_time = INT64_MAX - i;
        k->event_time = i ? INT64_MAX / (i + 1) : 0; /* 0: the row came from REST */
        k->first_trade_id = i % 2 ? -1 : INT64_MAX;  /* -1: an empty candle */
        k->last_trade_id = i % 2 ? -1 : 1;
        k->trades = i * 1000003LL;
        kf_dec *d[8] = {&k->open,           &k->high,           &k->low,
                        &k->close,          &k->volume,         &k->quote_volume,
                        &k->taker_buy_base, &k->taker_buy_quote};
        for (int j = 0; j < 8; j++) {
            d[j]->scale = (i + j) % 19; /* every scale 0..18 */
            d[j]->mant = j % 2 ? 999999999999999999LL : -(int64_t)(i * 7 + j); /* 18 digits */
        }
        assert_int_equal(kf__stream_apply(&s, k, NULL), KF__APPLY_CLOSED);
    }
    kf_kline out[19];
    assert_int_equal(kf__stream_recent(&s, out, 19), 19);
    for (int i = 0; i < 19; i++)
        assert_true(kft_kline_same(&out[i], &in[i]));
    assert_true(sizeof(kf__candle) <= 120);
    kf__stream_destroy(&s);
}

/* More holes than any fixed table: 200 separate gaps in one stream (every other candle missing),
 * all remembered, each filled exactly once, in any order. */
static void test_many_holes_never_forgotten(void **st)
{
    (void)st;
    kf__stream s;
    assert_int_equal(kf__stream_init(&s, "BTCUSDT", 0, ring, 64), KF_OK);
    kf_kline k;
    for (int64_t i = 0; i <= 400; i += 2) {
        k = mk(i * 60000, i, true);
        assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_CLOSED);
    }
    assert_int_equal(kf__stream_missing(&s), 200);
    /* from the newest hole down, as REST answers of several requests may come */
    for (int64_t i = 399; i >= 1; i -= 2) {
        k = mk(i * 60000, i, true);
        kf__gap gap;
        assert_int_equal(kf__stream_apply(&s, &k, &gap), KF__APPLY_CLOSED);
        assert_int_equal(gap.filled, 0);
        assert_int_equal(kf__stream_apply(&s, &k, NULL), KF__APPLY_DUPLICATE);
    }
    assert_int_equal(kf__stream_missing(&s), 0);
    kf__stream_destroy(&s);
}

/* Holes added from a store's check at start: parts already in a hole are not added twice, bounds
 * are put on the grid, nothing newer than the resume point is a hole; the exchange's "no such
 * candle" removes candles from holes, splitting them; the flags come back with each fill. */
static void test_add_hole_absent_and_flags(void **st)
{
    (void)st;
    kf__stream s;
    assert_int_equal(kf__stream_init(&s, "BTCUSDT", 0, ring, 64), KF_OK);
    kf__hole h[8];
    assert_int_equal(kf__stream_add_hole(&s, 60000, 120000, 0), KF_OK); /* nothing known yet */
    assert_int_equal(kf__stream_missing(&s), 0);
    kf__stream_resume(&s, 100 * 60000);
    assert_int_equal(kf__stream_add_hole(&s, 10 * 60000, 20 * 60000, 0), KF_OK);
    assert_int_equal(kf__stream_add_hole(&s, 15 * 60000 - 1, 25 * 60000 + 59999, 0), KF_OK);
    assert_int_equal(kf__stream_add_hole(&s, 90 * 60000, 200 * 60000, KF__HOLE_UNSTORED), KF_OK);
    /* 10..20, then 21..25 (only the part not in a hole yet), 90..100 (not past the resume point) */
    assert_int_equal(kf__stream_holes(&s, h, 8), 3);
    assert_int_equal(h[0].from, 10 * 60000);
    assert_int_equal(h[0].to, 20 * 60000);
    assert_int_equal(h[1].from, 21 * 60000);
    assert_int_equal(h[1].to, 25 * 60000);
    assert_int_equal(h[2].from, 90 * 60000);
    assert_int_equal(h[2].to, 100 * 60000);
    assert_int_equal(kf__stream_missing(&s), 11 + 5 + 11);
    int64_t from, to;
    kf__stream_set_cover_from(&s, 5 * 60000 + 1);
    assert_true(kf__stream_cover(&s, &from, &to));
    assert_int_equal(from, 6 * 60000);
    assert_int_equal(to, 9 * 60000);
    /* the exchange has nothing from 12 to 22 (bounds off the grid: rounded inwards) */
    assert_int_equal(kf__stream_absent(&s, 12 * 60000 - 5, 22 * 60000 + 5), 9 + 2);
    assert_int_equal(kf__stream_holes(&s, h, 8), 3);
    assert_int_equal(h[0].from, 10 * 60000);
    assert_int_equal(h[0].to, 11 * 60000);
    assert_int_equal(h[1].from, 23 * 60000);
    assert_int_equal(h[1].to, 25 * 60000);
    assert_int_equal(h[2].flags, KF__HOLE_UNSTORED);
    /* a cut in the middle of a hole splits it */
    assert_int_equal(kf__stream_absent(&s, 24 * 60000, 24 * 60000), 1);
    assert_int_equal(kf__stream_holes(&s, h, 8), 4);
    assert_int_equal(h[1].to, 23 * 60000);
    assert_int_equal(h[2].from, 25 * 60000);
    kf__gap gap;
    kf_kline k = mk(95 * 60000, 95, true);
    assert_int_equal(kf__stream_apply(&s, &k, &gap), KF__APPLY_CLOSED);
    assert_int_equal(gap.filled, KF__HOLE_UNSTORED);
    k = mk(10 * 60000, 10, true);
    assert_int_equal(kf__stream_apply(&s, &k, &gap), KF__APPLY_CLOSED);
    assert_int_equal(gap.filled, 0);
    assert_int_equal(kf__stream_missing(&s), 1 + 1 + 1 + 5 + 5);
    kf__stream_destroy(&s);
}

/* The grid: minutes to days from the epoch, 3d from the epoch, weeks from Monday, months. */
static void test_interval_grid(void **st)
{
    (void)st;
    int m1 = 0, d3 = kf_interval_index("3d", 2), w1 = kf_interval_index("1w", 2),
        mo = kf_interval_index("1M", 2);
    assert_int_equal(kf__interval_floor(m1, 120001), 120000);
    assert_int_equal(kf__interval_ceil(m1, 120001), 180000);
    assert_int_equal(kf__interval_ceil(m1, 120000), 120000);
    assert_int_equal(kf__interval_floor(m1, -1), -60000);
    /* 2026-01-05 is a Monday: 1767571200000 */
    assert_int_equal(kf__interval_floor(w1, 1767571200000LL + 3 * 86400000LL), 1767571200000LL);
    assert_int_equal(kf__interval_ceil(w1, 1767571200000LL + 1), 1767571200000LL + 7 * 86400000LL);
    /* 2026-01-01 is day 20454 of the epoch, a multiple of 3 */
    assert_int_equal(kf__interval_floor(d3, 1767225600000LL + 86400000LL), 1767225600000LL);
    assert_int_equal(kf__interval_ceil(d3, 1767225600000LL + 1), 1767225600000LL + 3 * 86400000LL);
    /* 2026-02-15 -> 2026-02-01; ceil -> 2026-03-01; prev of 2026-03-01 -> 2026-02-01 */
    assert_int_equal(kf__interval_floor(mo, 1771113600000LL), 1769904000000LL);
    assert_int_equal(kf__interval_ceil(mo, 1771113600000LL), 1772323200000LL);
    assert_int_equal(kf__interval_prev(mo, 1772323200000LL), 1769904000000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_updated_in_place),
        cmocka_unit_test(test_closed_appended_once),
        cmocka_unit_test(test_ring_wraps_and_query_caps),
        cmocka_unit_test(test_gap_opens_hole_and_backfill_fills_it),
        cmocka_unit_test(test_late_candle_in_full_ring),
        cmocka_unit_test(test_ring_round_trip),
        cmocka_unit_test(test_resume_point),
        cmocka_unit_test(test_month_boundaries),
        cmocka_unit_test(test_index_lookup),
        cmocka_unit_test(test_many_holes_never_forgotten),
        cmocka_unit_test(test_add_hole_absent_and_flags),
        cmocka_unit_test(test_interval_grid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
