/* kline_same.h - two klines equal in every field, decimals by mantissa and scale: the one
 * comparison of the decoder's tests, the ring's tests and fuzz_decode. Header-only, as those
 * link only their stage (or the library), not the integration tests' helpers. */
#ifndef KF_TEST_KLINE_SAME_H
#define KF_TEST_KLINE_SAME_H

#include <stdbool.h>
#include <string.h>

#include "klinefeed.h"

static inline bool kft_kline_same(const kf_kline *a, const kf_kline *b)
{
    const kf_dec *da[] = {&a->open,           &a->high,           &a->low,
                          &a->close,          &a->volume,         &a->quote_volume,
                          &a->taker_buy_base, &a->taker_buy_quote};
    const kf_dec *db[] = {&b->open,           &b->high,           &b->low,
                          &b->close,          &b->volume,         &b->quote_volume,
                          &b->taker_buy_base, &b->taker_buy_quote};
    for (size_t i = 0; i < 8; i++)
        if (da[i]->mant != db[i]->mant || da[i]->scale != db[i]->scale)
            return false;
    return strcmp(a->symbol, b->symbol) == 0 && strcmp(a->interval, b->interval) == 0 &&
           a->interval_index == b->interval_index && a->closed == b->closed &&
           a->event_time == b->event_time && a->open_time == b->open_time &&
           a->close_time == b->close_time && a->first_trade_id == b->first_trade_id &&
           a->last_trade_id == b->last_trade_id && a->trades == b->trades;
}

#endif
