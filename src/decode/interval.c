/* Binance's 15 kline intervals. */
#include <string.h>

#include "klinefeed.h"

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
