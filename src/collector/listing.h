/*
 * The symbol re-read's decision (kf_config_set_symbol_refresh): from an exchangeInfo answer and
 * the symbols a collector holds, which symbols to add (new, or listed again) and which to
 * delist; and the safety rule that keeps a bad answer from dropping what is collected. Pure:
 * no I/O, any thread; the collector's REST thread calls it and hands the result to the I/O
 * thread, which applies it (each item again checked against what it holds then).
 */
#ifndef KF_COLLECTOR_LISTING_H
#define KF_COLLECTOR_LISTING_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "klinefeed.h"

/* One symbol of the answer. */
typedef struct kf__listed {
    char symbol[KF_SYMBOL_MAX + 1];
    bool trading;        /* status TRADING */
    bool usdt_perpetual; /* contractType PERPETUAL, quoteAsset USDT: what "ALL" collects */
    int64_t onboard;     /* onboardDate, ms; 0 unknown */
} kf__listed;

/* One symbol the collector holds. */
typedef struct kf__held {
    char symbol[KF_SYMBOL_MAX + 1];
    bool delisted;
} kf__held;

typedef struct kf__listing_diff {
    kf__listed *add; /* to collect: TRADING USDT perpetuals of the shard not held, or held and
                        delisted (listed again) */
    size_t nadd;
    kf__held *drop; /* held, not delisted, and not TRADING in the answer (or not in it) */
    size_t ndrop;
    size_t active;      /* held symbols not delisted, before the change */
    bool drops_refused; /* the answer looks wrong: drop holds what it would delist, and none
                           of it is to be applied */
    const char *why;    /* why drops_refused, static text */
} kf__listing_diff;

/*
 * The difference between the answer (ans[0..nans)) and what is held (held[0..nheld)), for the
 * shard k of n (n 0: every symbol). Symbols held that are not USDT perpetuals (given by name
 * with "ALL") stay as long as the answer lists them TRADING. The safety rule: the delistings
 * are refused (drops_refused, why set) when the answer lists no TRADING symbol at all, when
 * they would delist every active symbol, or more than one and more than a quarter of them.
 * *out is owned by the caller (kf__listing_diff_free). KF_ERR_NOMEM when out of memory.
 */
kf_err kf__listing_compare(const kf__listed *ans, size_t nans, const kf__held *held, size_t nheld,
                           unsigned shard_k, unsigned shard_n, kf__listing_diff *out);
void kf__listing_diff_free(kf__listing_diff *d);

#endif
