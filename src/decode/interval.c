/* Binance's 15 kline intervals. */
#include "decode/interval.h"

#include <string.h>
#include <time.h>

static const char *const interval_names[KF_INTERVAL_COUNT] = {
    "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w", "1M"};

static const int64_t interval_ms[KF_INTERVAL_COUNT] = {
    60000LL,    180000LL,   300000LL,   900000LL,   1800000LL,   3600000LL,   7200000LL, 14400000LL,
    21600000LL, 28800000LL, 43200000LL, 86400000LL, 259200000LL, 604800000LL, 0};

const char *kf_interval_name(int i)
{
    return i >= 0 && i < KF_INTERVAL_COUNT ? interval_names[i] : NULL;
}

int kf_interval_index(const char *name, size_t len)
{
    if (!name || len == 0 || len > 3)
        return -1;
    for (int i = 0; i < KF_INTERVAL_COUNT; i++)
        if (strlen(interval_names[i]) == len && memcmp(interval_names[i], name, len) == 0)
            return i;
    return -1;
}

int64_t kf_interval_ms(int i)
{
    return i >= 0 && i < KF_INTERVAL_COUNT ? interval_ms[i] : 0;
}

/* ---- the grid ---- */

#define DAY_MS 86400000LL

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The first day of the UTC month holding t, plus months (may be negative). */
static int64_t month_start(int64_t t, int months)
{
    time_t sec = (time_t)floordiv(t, 1000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    tm.tm_mon += months;
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (int64_t)timegm(&tm) * 1000;
}

int64_t kf__interval_next(int interval, int64_t t)
{
    int64_t ms = kf_interval_ms(interval);
    return ms ? t + ms : month_start(t, 1);
}

int64_t kf__interval_prev(int interval, int64_t t)
{
    int64_t ms = kf_interval_ms(interval);
    return ms ? t - ms : month_start(t, -1);
}

int64_t kf__interval_floor(int interval, int64_t t)
{
    int64_t ms = kf_interval_ms(interval);
    if (!ms)
        return month_start(t, 0);
    if (ms == 7 * DAY_MS) /* weeks open on Monday; 1970-01-01 was a Thursday */
        return floordiv(t + 3 * DAY_MS, ms) * ms - 3 * DAY_MS;
    return floordiv(t, ms) * ms;
}

int64_t kf__interval_ceil(int interval, int64_t t)
{
    int64_t f = kf__interval_floor(interval, t);
    return f == t ? t : kf__interval_next(interval, f);
}

uint64_t kf__interval_count(int interval, int64_t a, int64_t b)
{
    if (a > b)
        return 0;
    int64_t ms = kf_interval_ms(interval);
    if (ms)
        return (uint64_t)((b - a) / ms + 1);
    uint64_t n = 0;
    for (int64_t x = a; x <= b && n < 1000000; x = kf__interval_next(interval, x))
        n++;
    return n;
}
