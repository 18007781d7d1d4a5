/* Symbol validation against GET /fapi/v1/exchangeInfo, run by kf_start() on its caller's thread. */
#ifndef KF_COLLECTOR_VALIDATE_H
#define KF_COLLECTOR_VALIDATE_H
#include <stddef.h>

#include "klinefeed.h"

struct kf_collector;

/*
 * Checks every configured symbol per the validate mode: KF_OK, KF_ERR_SYMBOL naming the first
 * unknown or non-TRADING symbol, or (KF_VALIDATE_REQUIRED only) the REST error when the
 * exchange could not be asked. With KF_VALIDATE_IF_REACHABLE an unreachable exchange is
 * logged as a warning and the symbols are accepted.
 */
kf_err kf__validate_symbols(struct kf_collector *c, char *err, size_t errlen);

#endif
