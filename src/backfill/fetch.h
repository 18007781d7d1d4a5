/*
 * The REST history fetcher: closed klines from GET /fapi/v1/klines, paged, within
 * Binance's request-weight budget (PROTOCOL.md section 3). Blocking; one thread at a
 * time per fetcher, one request in flight. Used by `klinefeed backfill` and by the
 * collector's gap backfill.
 *
 * Budget: the weight of every request is charged before it is sent against the
 * current minute of the exchange's clock (local UTC wall clock plus the skew measured
 * by GET /fapi/v1/time when that skew is small, see kf__fetcher_server_time); the
 * server's X-MBX-USED-WEIGHT-1M replaces the estimate after every response; a request
 * that would pass the limit waits for the next minute boundary plus 250 ms. Pages are
 * asked with limit=1500 (weight 10) whenever the range needs that many rows.
 */
#ifndef KF_BACKFILL_FETCH_H
#define KF_BACKFILL_FETCH_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "klinefeed.h"

typedef struct kf__fetcher kf__fetcher;

typedef struct kf__fetcher_opts {
    const char *rest_base;  /* "https://fapi.binance.com" */
    bool tls_verify;        /* default true */
    const char *ca_file;    /* NULL: system store */
    unsigned weight_budget; /* per UTC minute; 0 = 2400. The effective limit is min(this, the
                               REQUEST_WEIGHT/MINUTE limit published in exchangeInfo rateLimits,
                               when fetched) */
    unsigned timeout_ms;    /* per request, default 10000 */
    kf__logger *log;        /* may be NULL */
    /* A file that carries the pauses the exchange imposed (429 Retry-After, 418 bans) across
     * processes: read at kf__fetcher_new (a pause still running is honoured), rewritten at each
     * new pause. NULL: none. A restarted collector must not ask during its predecessor's
     * back-off: on Binance that earns a ban of minutes to days. */
    const char *state_path;
} kf__fetcher_opts;

typedef struct kf__fetch_stats {
    uint64_t requests;                     /* HTTP requests sent (answered or not) */
    uint64_t weight_used;                  /* weight of the requests sent, by the published table */
    uint64_t rows;                         /* closed rows passed to on_row */
    uint64_t http_429, http_418, http_5xx; /* 5xx and 408 */
    uint64_t timeouts;                     /* requests that timed out */
    uint64_t retries;  /* requests repeated after 5xx/408/timeout/connection error/bad body */
    uint64_t waits_ms; /* time spent waiting: budget, 429/418 pauses, backoff */
} kf__fetch_stats;

/* Creates a fetcher (nothing is sent). NULL with err set on failure. */
kf__fetcher *kf__fetcher_new(const kf__fetcher_opts *o, char *err, size_t errlen);
void kf__fetcher_free(kf__fetcher *f);

/* Reads rateLimits from GET /fapi/v1/exchangeInfo (weight 1) and lowers the budget to the
 * published limit. */
kf_err kf__fetcher_sync_limits(kf__fetcher *f, char *err, size_t errlen);

/*
 * Same request as kf__fetcher_sync_limits (the budget is lowered the same way), and calls
 * on_symbol (may be NULL) for every listed symbol with its status ("TRADING", "SETTLING",
 * ...), both NUL-terminated and valid during the call. Addition to the agreed API, for
 * callers that validate symbols (klinefeed backfill) without a second request.
 */
kf_err kf__fetcher_exchange_info(kf__fetcher *f,
                                 void (*on_symbol)(void *ud, const char *symbol,
                                                   const char *status),
                                 void *ud, char *err, size_t errlen);

/* One symbol of exchangeInfo, as kf__fetcher_exchange_symbols reads it (strings NUL-terminated,
 * "" when absent). */
typedef struct kf__exchange_symbol {
    char symbol[KF_SYMBOL_MAX + 1];
    char status[32];        /* "TRADING", "SETTLING", ... */
    char contract_type[32]; /* "PERPETUAL", "CURRENT_QUARTER", ... */
    char quote_asset[16];   /* "USDT" */
    int64_t onboard_date;   /* ms, 0 when absent */
} kf__exchange_symbol;

/* As kf__fetcher_exchange_info, with every field above of each listed symbol (on_symbol: the
 * entry is valid during the call). For the collector's re-read of the symbols. */
kf_err kf__fetcher_exchange_symbols(kf__fetcher *f,
                                    void (*on_symbol)(void *ud, const kf__exchange_symbol *s),
                                    void *ud, char *err, size_t errlen);

/* GET /fapi/v1/time: the exchange's clock. Also measures the skew of the local clock
 * (adopted for the budget's minute boundaries when under 30 s; a larger difference is a
 * simulated clock, not skew, and the local UTC minute is used). */
kf_err kf__fetcher_server_time(kf__fetcher *f, int64_t *ms, char *err, size_t errlen);

/*
 * Calls on_row, in order, for every CLOSED candle of (symbol, interval index) whose open
 * time is in [from, to] (to = INT64_MAX: up to now), paging with limit up to 1500 from the
 * last row's open time + 1; only rows whose close time is before the exchange's time (GET
 * /fapi/v1/time, fetched once per call and advanced by local monotonic elapsed time) are
 * passed: never the open candle. Rows become kf_kline with closed=true, event_time=0,
 * first_trade_id = last_trade_id = -1 (REST does not give them), decimals exact via the
 * cursor. on_row returning non-zero stops the call (KF_OK). Blocks: waits as needed to
 * stay within the budget, retries 5xx/408/timeouts/connection errors with exponential
 * backoff (cap 30 s) without losing or repeating rows, honours 429 Retry-After (all
 * requests of this fetcher pause), and on 418 pauses ALL requests for max(Retry-After,
 * 120 s). A 4xx other than 408/418/429 (e.g. -1121 Invalid symbol) returns KF_ERR_REST
 * with the code and msg in err. *cancel (may be NULL), when it becomes true, makes any
 * wait, and the request in flight, return KF_ERR_NOT_RUNNING promptly (within ~100 ms);
 * the rows of a page already answered are all passed.
 * Thread: one thread at a time per fetcher.
 *
 * Retries: while the exchange has never answered this fetcher, a connection error or
 * timeout fails at once (a wrong URL is not retried for minutes); afterwards transient
 * failures are retried, giving up after 12 consecutive failures (about 5 minutes of
 * backoff) with the last error. TLS and out-of-memory errors are never retried.
 *
 * *covered (may be NULL) gets, whatever the result, the largest open time c such that every
 * closed candle the exchange has with an open time in [from, c] was passed (from - 1 when
 * nothing is known): a candle in that range that was not passed does not exist. A row followed
 * by another is closed; the last one of a page only if it closed before the request was sent, on
 * the exchange's clock (GET /fapi/v1/time, asked before a page whose range reaches what the last
 * measurement cannot vouch for, when that is over 500 ms old).
 */
kf_err kf__fetch_klines(kf__fetcher *f, const char *symbol, int interval, int64_t from, int64_t to,
                        int (*on_row)(void *ud, const kf_kline *k), void *ud,
                        const _Atomic bool *cancel, int64_t *covered, char *err, size_t errlen);

/* A cancel flag for every call that is given none (exchange info, server time): when it becomes
 * true they return KF_ERR_NOT_RUNNING promptly. NULL: none. The flag outlives the fetcher's
 * use of it. */
void kf__fetcher_set_cancel(kf__fetcher *f, const _Atomic bool *cancel);

/* A pause imposed by the exchange (or read from the state file) is running: ms left, else 0. */
int64_t kf__fetcher_paused_ms(const kf__fetcher *f);

/* The state file (kf__fetcher_opts.state_path) for other REST users (symbol validation): the ms
 * left of a pause it records (0: none; *status gets 429 or 418), and recording a new pause
 * (written to a temporary file, synced, renamed). path NULL: nothing. */
int64_t kf__fetch_state_pause(const char *path, long *status);
/* The state file for a REST base in dir: dir/rest-<host>-<port>.state (one per exchange host:
 * a ban is per IP and exchange). false when dir is NULL or empty, or the URL does not parse. */
bool kf__fetch_state_path(const char *dir, const char *rest_base, char *out, size_t cap);
void kf__fetch_state_record(const char *path, int64_t until_wall_ms, long status, kf__logger *log);

/* Copies the counters since kf__fetcher_new. Same thread as the fetcher's calls. */
void kf__fetcher_get_stats(const kf__fetcher *f, kf__fetch_stats *out);

/* Effective weight limit per minute now (configured, lowered by a published limit). */
unsigned kf__fetcher_weight_limit(const kf__fetcher *f);

#endif
