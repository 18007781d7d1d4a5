/*
 * REST client over libcurl: one easy handle per kf__rest, reused (keep-alive),
 * GET with a bounded response buffer, the status, and the rate-limit headers
 * Binance sends (X-MBX-USED-WEIGHT-1M, Retry-After). Blocking: call it from a
 * thread that may wait (kf_start's caller, the REST worker), never from the
 * socket thread.
 */
#ifndef KF_TRANSPORT_REST_H
#define KF_TRANSPORT_REST_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/log.h"
#include "klinefeed.h"

typedef struct kf__rest kf__rest;

typedef struct kf__rest_opts {
    const char *base;    /* "https://fapi.binance.com" (no trailing slash) */
    bool tls_verify;     /* default true */
    const char *ca_file; /* NULL: system store */
    long timeout_ms;     /* whole request */
    size_t max_body;     /* responses larger than this fail */
    kf__logger *log;
} kf__rest_opts;

typedef struct kf__rest_resp {
    long status; /* HTTP status, 0 when no response */
    char *body;  /* NUL-terminated, owned by the kf__rest, valid until the next call */
    size_t len;
    long used_weight; /* X-MBX-USED-WEIGHT-1M, -1 when absent */
    long retry_after; /* Retry-After seconds, -1 when absent */
} kf__rest_resp;

kf__rest *kf__rest_new(const kf__rest_opts *o, char *err, size_t errlen);
void kf__rest_free(kf__rest *r);
/*
 * Lets the requests of r be cancelled while in flight: kf__rest_get watches *cancel (NULL: not
 * cancellable, the default) and gives up within ~50 ms once it is true, sending nothing when it
 * already is. The flag stays the caller's: it must outlive every kf__rest_get made while it is
 * set (set NULL again before it goes). Thread: the thread that calls kf__rest_get, between
 * calls; any thread may store true into the flag at any time.
 */
void kf__rest_set_cancel(kf__rest *r, const _Atomic bool *cancel);
/*
 * GET base + path_query. KF_OK when an HTTP response arrived (any status: check resp->status);
 * KF_ERR_DNS / KF_ERR_CONNECT / KF_ERR_TLS / KF_ERR_TIMEOUT / KF_ERR_REST when not, with err
 * naming the URL and the cause; KF_ERR_NOT_RUNNING with err "cancelled" when the flag of
 * kf__rest_set_cancel was true before the response was complete.
 */
kf_err kf__rest_get(kf__rest *r, const char *path_query, kf__rest_resp *resp, char *err,
                    size_t errlen);

#endif
