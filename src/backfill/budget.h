/*
 * The REST weight budget: pure arithmetic over a caller-supplied clock, no I/O,
 * no allocation, no locks (the fetcher owns one and uses it from one thread).
 *
 * Binance counts request weight per UTC clock minute and per IP
 * (PROTOCOL.md section 3). The budget keeps its own estimate of the weight used in
 * the current minute of the exchange's clock (charged before each request),
 * replaces it with the server's X-MBX-USED-WEIGHT-1M after each response (the
 * truth, other clients of the same IP included), and tells the caller how long to
 * wait before a request so that used + weight never exceeds the limit.
 */
#ifndef KF_BACKFILL_BUDGET_H
#define KF_BACKFILL_BUDGET_H
#include <stdint.h>

/* Binance's default REQUEST_WEIGHT per minute. */
#define KF__BUDGET_DEFAULT 2400u
/* Wait past the minute boundary, for clock skew between us and the exchange. */
#define KF__BUDGET_MARGIN_MS 250

typedef struct kf__budget {
    unsigned limit;    /* effective weight per minute: min(configured, published) */
    int64_t minute;    /* exchange-clock minute (ms / 60000) that `used` belongs to */
    unsigned used;     /* weight used in that minute, as far as we know */
    int64_t margin_ms; /* KF__BUDGET_MARGIN_MS */
} kf__budget;

/* limit 0 means KF__BUDGET_DEFAULT. Nothing used yet. */
void kf__budget_init(kf__budget *b, unsigned limit);

/* Weight of GET /fapi/v1/klines with this limit parameter (0: no limit parameter sent):
 * 1-100 -> 1, 101-500 -> 2, 501-1000 -> 5, 1001-1500 -> 10, none -> 5. */
unsigned kf__budget_klines_weight(unsigned limit);

/* Largest klines limit whose weight fits in w (w >= 10: 1500; 5..9: 1000; 2..4: 500; 1: 100). */
unsigned kf__budget_limit_for_weight(unsigned w);

/* Lowers the limit to a published one (a larger or zero one changes nothing). */
void kf__budget_publish(kf__budget *b, unsigned published);

/* Weight used in the exchange minute containing now_ms (0 after a boundary). */
unsigned kf__budget_used(const kf__budget *b, int64_t now_ms);

/*
 * Milliseconds to wait, at exchange time now_ms, before a request of weight w may
 * be sent: 0 when used + w <= limit, else until the next minute boundary plus the
 * margin. A weight above the limit itself waits only for a fresh minute.
 */
int64_t kf__budget_wait_ms(const kf__budget *b, int64_t now_ms, unsigned w);

/* Records a request of weight w sent at now_ms (call right before sending). */
void kf__budget_charge(kf__budget *b, int64_t now_ms, unsigned w);

/*
 * Adopts the server's X-MBX-USED-WEIGHT-1M (header < 0: absent, nothing done) of a
 * request of weight w sent at sent_ms whose response came at recv_ms. When both
 * lie in one minute the header is the truth for it. When a minute boundary passed
 * in flight the server may have counted the request in either minute: a header
 * below what we had for the old minute can only be the new minute's count and is
 * adopted for it; otherwise the new minute keeps its own count.
 */
void kf__budget_observe(kf__budget *b, int64_t sent_ms, int64_t recv_ms, unsigned w, long header);

/* Minute index of an exchange time (floor division, negative times included). */
static inline int64_t kf__budget_minute(int64_t ms)
{
    return ms >= 0 ? ms / 60000 : -((-ms + 59999) / 60000);
}

#endif
