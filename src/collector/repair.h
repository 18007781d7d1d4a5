/*
 * The REST repair worker, thread "kf-rest": fetches closed candles the WebSocket did not
 * deliver (gaps, the time a connection was down, closing updates that never came, the time
 * since the store's last candle at start) with GET /fapi/v1/klines under the weight budget,
 * off the socket thread. Requests are coalesced per stream, one in flight per stream, so a
 * reconnect storm never becomes a 429 storm. Fetched rows go back to the I/O thread, which
 * applies them like closed candles from the stream: each (symbol, interval, open time) reaches
 * the sinks once, whichever source delivers it first.
 */
#ifndef KF_COLLECTOR_REPAIR_H
#define KF_COLLECTOR_REPAIR_H
#include <stddef.h>
#include <stdint.h>

#include "backfill/fetch.h"
#include "klinefeed.h"

struct kf_collector;
typedef struct kf__repair kf__repair;

/* Allocates the worker's state for c's streams. NULL with err set on failure. */
kf__repair *kf__repair_new(struct kf_collector *c, char *err, size_t errlen);
/* Starts the thread. */
kf_err kf__repair_start(kf__repair *r, char *err, size_t errlen);
/* Cancels the request in flight and joins the thread; rows already fetched stay queued for
 * kf__repair_drain(). Idempotent. */
void kf__repair_stop(kf__repair *r);
void kf__repair_free(kf__repair *r);

/* Asks for the closed candles of stream si with open times in [from, to] (to = INT64_MAX: up
 * to the exchange's now). Merged with what is pending for that stream. I/O thread or before
 * start; no allocation. */
void kf__repair_request(kf__repair *r, size_t si, int64_t from, int64_t to);
/* I/O thread: hands every fetched row to the collector (kf__collector_deliver_rest). */
void kf__repair_drain(kf__repair *r);
/* Requests waiting or in flight. Any thread. */
size_t kf__repair_pending(kf__repair *r);
void kf__repair_get_stats(kf__repair *r, kf__fetch_stats *out);

#endif
