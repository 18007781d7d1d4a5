/*
 * Interval arithmetic on the exchange's grid: kline open times are multiples of the interval
 * since the epoch (UTC), weeks open on Monday 00:00, months on the first day of the month.
 * Pure functions, any thread.
 */
#ifndef KF_DECODE_INTERVAL_H
#define KF_DECODE_INTERVAL_H
#include <stdint.h>

#include "klinefeed.h"

/* Open time of the candle after / before the one opening at t (calendar month for 1M). */
int64_t kf__interval_next(int interval, int64_t t);
int64_t kf__interval_prev(int interval, int64_t t);
/* Open time of the candle holding t, and the first open time not before t. */
int64_t kf__interval_floor(int interval, int64_t t);
int64_t kf__interval_ceil(int interval, int64_t t);
/* Candles with open times from a to b inclusive (both on the grid; 1M counted in calendar
 * months); 0 when a > b. */
uint64_t kf__interval_count(int interval, int64_t a, int64_t b);

#endif
