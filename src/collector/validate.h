/* Symbol validation against GET /fapi/v1/exchangeInfo, run by kf_start() on its caller's thread. */
#ifndef KF_COLLECTOR_VALIDATE_H
#define KF_COLLECTOR_VALIDATE_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "klinefeed.h"

/* What the check needs: borrowed for the call. */
typedef struct kf__validate_opts {
    kf_validate mode;
    const char (*symbols)[KF_SYMBOL_MAX + 1]; /* uppercase */
    size_t nsymbols;
    const char *rest_base; /* "https://fapi.binance.com" */
    bool tls_verify;
    const char *ca_file; /* NULL: the system store */
    unsigned timeout_ms;
    const char *state_path; /* the file of REST pauses (kf__fetch_state_path), NULL none */
    kf__logger *log;
    _Atomic uint64_t *rest_requests; /* incremented per request sent; may be NULL */
    const _Atomic bool *cancel;      /* true: the request in flight gives up; may be NULL */
} kf__validate_opts;

/*
 * Checks every configured symbol per the validate mode: KF_OK, KF_ERR_SYMBOL naming the first
 * unknown or non-TRADING symbol, or (KF_VALIDATE_REQUIRED only) the REST error when the
 * exchange could not be asked. With KF_VALIDATE_IF_REACHABLE an unreachable exchange is
 * logged as a warning and the symbols are accepted.
 */
kf_err kf__validate_symbols(const kf__validate_opts *o, char *err, size_t errlen);

/*
 * Lists every USDT-M perpetual that is TRADING (contractType PERPETUAL, quoteAsset USDT, status
 * TRADING) in GET /fapi/v1/exchangeInfo (vo's REST base, TLS, timeout, pause file, cancel; its
 * mode and symbols are ignored): add(ud, symbol) for each, *count of those add took (KF_OK).
 * KF_OK, or the REST error with err naming the URL and the cause. Blocking, caller's thread.
 */
kf_err kf__exchange_perpetuals(const kf__validate_opts *vo, kf_err (*add)(void *, const char *),
                               void *ud, size_t *count, char *err, size_t errlen);

#endif
