/* The configuration object behind kf_config: plain data, copied by kf_create(). */
#ifndef KF_COLLECTOR_CONFIG_H
#define KF_COLLECTOR_CONFIG_H
#include <stdbool.h>
#include <stddef.h>

#include "klinefeed.h"

struct kf_config {
    char (*symbols)[KF_SYMBOL_MAX + 1]; /* uppercase, in the order added */
    size_t nsymbols, symbols_cap;
    bool intervals[KF_INTERVAL_COUNT];
    bool testnet;
    char *api_key, *api_secret; /* never logged */
    char *ws_url, *rest_url;    /* overrides, NULL when unset */
    char *ca_file;
    size_t ring_size;
    size_t streams_per_connection;
    size_t names_per_subscribe;
    unsigned messages_per_second;
    unsigned connect_timeout_ms;
    size_t max_message_size;
    unsigned backoff_initial_ms, backoff_max_ms;
    unsigned ping_interval_ms, dead_after_ms;
    uint64_t max_age_ms;
    unsigned conn_budget, conn_budget_window_ms;
    bool backfill;
    bool has_backfill_from;
    int64_t backfill_from;
    unsigned rest_weight_budget;
    kf_validate validate;
    bool tls_verify;
    kf_log_fn log_fn;
    void *log_userdata;
    kf_log_level log_level;
    kf_kline_fn on_kline, on_closed;
    void *on_kline_ud, *on_closed_ud;
    kf_raw_fn on_raw;
    void *on_raw_ud;
    char **sinks;
    size_t nsinks;
    bool sink_all_updates;
    size_t sink_queue_rows;
    char *state_dir;            /* NULL: nothing kept across processes */
    unsigned shard_k, shard_n;  /* this collector's share: kf_shard_of(sym, n) == k; 0/0 all */
    bool exchange_symbols;      /* kf_config_add_exchange_symbols succeeded ("ALL") */
    unsigned symbol_refresh_ms; /* exchangeInfo re-read while running (ALL only), 0 off */
    size_t symbol_reserve;      /* symbols a running collector can add (refresh on) */
    char errmsg[256];
};

/* Deep copy (NULL on out of memory). */
kf_config *kf__config_dup(const kf_config *src);

/* Keeps only the symbols of cfg's shard (kf_config_set_shard), in order; nothing without one.
 * KF_ERR_CONFIG with a message in err naming the shard when none of the symbols is its. */
kf_err kf__config_apply_shard(kf_config *cfg, char *err, size_t errlen);

#endif
