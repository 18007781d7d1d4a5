/*
 * The new-connection budget: at most n connection attempts in any window of window_ms, shared
 * by every shard of a collector (the exchange limits new connections per IP, not per shard).
 * A ring of the last n attempt times. One thread (the I/O thread); no allocation after init.
 */
#ifndef KF_COLLECTOR_CONN_BUDGET_H
#define KF_COLLECTOR_CONN_BUDGET_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "klinefeed.h"

typedef struct kf__conn_budget {
    uint64_t *attempts; /* loop ms of the last n attempts, 0 unused */
    size_t head;        /* the oldest entry */
    unsigned n, window_ms;
} kf__conn_budget;

/* n attempts (at least 1) per window_ms. KF_ERR_NOMEM when out of memory. */
kf_err kf__conn_budget_init(kf__conn_budget *b, unsigned n, unsigned window_ms);
void kf__conn_budget_free(kf__conn_budget *b);
/* An attempt at now (loop ms): true, and it is counted; false (and *wait_ms set: until the
 * oldest attempt leaves the window) when it would exceed the budget. */
bool kf__conn_budget_take(kf__conn_budget *b, uint64_t now, uint64_t *wait_ms);

#endif
