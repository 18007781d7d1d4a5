/*
 * The collector's counters (kf_stats' sources): written by one thread (the I/O thread, or
 * kf_start's caller before it runs) and read by any, as relaxed atomics. The shards and the
 * symbol check are given a pointer to them; only the collector reads them.
 */
#ifndef KF_COLLECTOR_COUNTERS_H
#define KF_COLLECTOR_COUNTERS_H
#include <stdatomic.h>
#include <stdint.h>

typedef struct kf__counters {
    _Atomic uint64_t frames, bytes, updates, closed, duplicates, other_events, parse_errors,
        unknown_streams, acks, exchange_errors, connects, disconnects, pings, rest_requests,
        reconnects, lost_server_close, lost_reset, lost_protocol, lost_liveness, connect_failures,
        rotations, stale_streams, gaps, missing_closes, backfilled, absent, repair_failures,
        store_dropped, updates_dropped, symbols_listed, symbols_delisted, symbols_refused,
        symbol_refresh_failures;
} kf__counters;

/* One writer per counter: a load and a store, no read-modify-write. */
#define KF__COUNT_ADD(ctr, field, n)                                                               \
    atomic_store_explicit(&(ctr)->field,                                                           \
                          atomic_load_explicit(&(ctr)->field, memory_order_relaxed) + (n),         \
                          memory_order_relaxed)
#define KF__COUNT_INC(ctr, field) KF__COUNT_ADD(ctr, field, 1)

#endif
