/* The REST weight budget: per-UTC-minute accounting over a caller-supplied clock. */
#include "backfill/budget.h"

void kf__budget_init(kf__budget *b, unsigned limit)
{
    b->limit = limit ? limit : KF__BUDGET_DEFAULT;
    b->minute = INT64_MIN;
    b->used = 0;
    b->margin_ms = KF__BUDGET_MARGIN_MS;
}

unsigned kf__budget_klines_weight(unsigned limit)
{
    if (limit == 0)
        return 5;
    if (limit <= 100)
        return 1;
    if (limit <= 500)
        return 2;
    if (limit <= 1000)
        return 5;
    return 10;
}

unsigned kf__budget_limit_for_weight(unsigned w)
{
    if (w >= 10)
        return 1500;
    if (w >= 5)
        return 1000;
    if (w >= 2)
        return 500;
    return 100;
}

void kf__budget_publish(kf__budget *b, unsigned published)
{
    if (published && published < b->limit)
        b->limit = published;
}

unsigned kf__budget_used(const kf__budget *b, int64_t now_ms)
{
    return kf__budget_minute(now_ms) == b->minute ? b->used : 0;
}

int64_t kf__budget_wait_ms(const kf__budget *b, int64_t now_ms, unsigned w)
{
    unsigned used = kf__budget_used(b, now_ms);
    if (used == 0 || (uint64_t)used + w <= b->limit)
        return 0;
    int64_t next = (kf__budget_minute(now_ms) + 1) * 60000;
    return next - now_ms + b->margin_ms;
}

void kf__budget_charge(kf__budget *b, int64_t now_ms, unsigned w)
{
    int64_t m = kf__budget_minute(now_ms);
    if (m != b->minute) {
        b->minute = m;
        b->used = 0;
    }
    b->used += w;
}

void kf__budget_observe(kf__budget *b, int64_t sent_ms, int64_t recv_ms, unsigned w, long header)
{
    (void)w;
    if (header < 0)
        return;
    unsigned h = header > (long)UINT32_MAX ? UINT32_MAX : (unsigned)header;
    int64_t ms = kf__budget_minute(sent_ms), mr = kf__budget_minute(recv_ms);
    if (ms == mr) {
        b->minute = mr;
        b->used = h;
        return;
    }
    /* A boundary passed in flight. */
    unsigned old_used = b->minute == ms ? b->used : 0;
    if (b->minute != mr) {
        b->minute = mr;
        b->used = 0;
    }
    if (h < old_used && h > b->used)
        b->used = h;
}
