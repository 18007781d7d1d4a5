/* kf_start()'s symbol check: every configured symbol must be listed and TRADING. */
#include "collector/validate.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backfill/fetch.h"
#include "core/alloc.h"
#include "decode/json.h"
#include "transport/rest.h"

/* Status text per configured symbol, "" while not seen. */
typedef char validate_status[16];

static bool validate_parse(const kf__validate_opts *vo, const char *body, size_t len,
                           validate_status *st, const char **why)
{
    kf__json j;
    kf__json_span key, v;
    kf__json_init(&j, body, len);
    if (!kf__json_enter_object(&j))
        goto bad;
    while (kf__json_next_key(&j, &key)) {
        if (!kf__json_key_eq(&key, "symbols")) {
            kf__json_skip_value(&j, NULL);
            continue;
        }
        if (!kf__json_enter_array(&j))
            goto bad;
        while (kf__json_next_elem(&j)) {
            char sym[KF_SYMBOL_MAX + 1] = "", status[16] = "";
            if (!kf__json_enter_object(&j))
                goto bad;
            while (kf__json_next_key(&j, &key)) {
                bool is_sym = kf__json_key_eq(&key, "symbol");
                bool is_status = kf__json_key_eq(&key, "status");
                if ((is_sym || is_status) && kf__json_peek(&j) == KF__JSON_STRING) {
                    kf__json_read_string(&j, &v);
                    char *dst = is_sym ? sym : status;
                    size_t cap = is_sym ? sizeof sym : sizeof status;
                    if (kf__json_unescape(v.p, v.len, dst, cap) < 0)
                        dst[0] = 0;
                } else {
                    kf__json_skip_value(&j, NULL);
                }
            }
            for (size_t i = 0; sym[0] && i < vo->nsymbols; i++)
                if (strcmp(vo->symbols[i], sym) == 0)
                    snprintf(st[i], sizeof st[i], "%s", status[0] ? status : "?");
        }
    }
    if (kf__json_finish(&j))
        return true;
bad:
    *why = j.err ? j.err : "not the expected object";
    return false;
}

kf_err kf__validate_symbols(const kf__validate_opts *vo, char *err, size_t errlen)
{
    if (vo->mode == KF_VALIDATE_OFF)
        return KF_OK;
    kf__rest_opts o = {
        .base = vo->rest_base,
        .tls_verify = vo->tls_verify,
        .ca_file = vo->ca_file,
        .timeout_ms = (long)vo->timeout_ms,
        .max_body = 64u << 20,
        .log = vo->log,
    };
    kf__rest *rest = kf__rest_new(&o, err, errlen);
    if (!rest)
        return KF_ERR_NOMEM;
    if (vo->cancel)
        kf__rest_set_cancel(rest, vo->cancel); /* kf_stop during kf_start */
    validate_status *st = kf__calloc(vo->nsymbols, sizeof *st);
    if (!st) {
        kf__rest_free(rest);
        snprintf(err, errlen, "out of memory");
        return KF_ERR_NOMEM;
    }
    kf__rest_resp resp;
    char why[768] = "";
    const char *perr = NULL;
    const char *state = vo->state_path && vo->state_path[0] ? vo->state_path : NULL;
    long paused_by = 0;
    int64_t pause = kf__fetch_state_pause(state, &paused_by);
    kf_err e = KF_OK;
    if (pause) { /* asking now would earn a ban (or a longer one) */
        snprintf(why, sizeof why,
                 "REST is paused for %lld s more: the exchange answered %ld to an earlier process "
                 "(%s)",
                 (long long)((pause + 999) / 1000), paused_by, state);
        e = KF_ERR_REST;
    } else {
        e = kf__rest_get(rest, "/fapi/v1/exchangeInfo", &resp, why, sizeof why);
        if (vo->rest_requests) /* one writer: kf_start's caller, before the I/O thread runs */
            atomic_store_explicit(vo->rest_requests,
                                  atomic_load_explicit(vo->rest_requests, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
    }
    if (!e && (resp.status == 429 || resp.status == 418)) {
        int64_t ms = resp.retry_after >= 0 ? resp.retry_after * 1000 + 250 : 60000;
        if (resp.status == 418 && ms < 120000)
            ms = 120000;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        kf__fetch_state_record(state, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + ms,
                               resp.status, vo->log);
    }
    if (!e && resp.status != 200) {
        snprintf(why, sizeof why, "GET %s/fapi/v1/exchangeInfo: HTTP %ld", vo->rest_base,
                 resp.status);
        e = KF_ERR_REST;
    } else if (!e && !validate_parse(vo, resp.body, resp.len, st, &perr)) {
        snprintf(why, sizeof why, "GET %s/fapi/v1/exchangeInfo: malformed body (%s)", vo->rest_base,
                 perr);
        e = KF_ERR_REST;
    }
    kf__rest_free(rest);
    if (e) {
        kf__free(st);
        if (vo->mode == KF_VALIDATE_REQUIRED) {
            snprintf(err, errlen, "symbols could not be validated: %s", why);
            return e;
        }
        kf__log(vo->log, KF_LOG_WARN,
                "msg=\"symbols not validated: exchangeInfo unreachable\" why=\"%s\"", why);
        return KF_OK;
    }
    /* every refused symbol named, not only the first: one start to learn them all */
    kf_err result = KF_OK;
    char unlisted[512] = "", halted[512] = "";
    size_t nu = 0, nh = 0;
    for (size_t i = 0; i < vo->nsymbols; i++) {
        bool listed = st[i][0] != 0;
        if (listed && strcmp(st[i], "TRADING") == 0)
            continue;
        char *list = listed ? halted : unlisted;
        size_t used = strlen(list);
        if (used + KF_SYMBOL_MAX + 32 < sizeof halted)
            snprintf(list + used, sizeof halted - used, "%s\"%s\"%s%s%s",
                     (listed ? nh : nu) ? ", " : "", vo->symbols[i], listed ? " (" : "",
                     listed ? st[i] : "", listed ? ")" : "");
        listed ? nh++ : nu++;
        result = KF_ERR_SYMBOL;
    }
    if (nu && nh)
        snprintf(err, errlen, "%s %s not listed by %s/fapi/v1/exchangeInfo; %s %s not trading",
                 nu == 1 ? "symbol" : "symbols", unlisted, vo->rest_base, halted,
                 nh == 1 ? "is" : "are");
    else if (nu)
        snprintf(err, errlen, "%s %s %s not listed by %s/fapi/v1/exchangeInfo",
                 nu == 1 ? "symbol" : "symbols", unlisted, nu == 1 ? "is" : "are", vo->rest_base);
    else if (nh)
        snprintf(err, errlen, "%s %s %s not trading on %s", nh == 1 ? "symbol" : "symbols", halted,
                 nh == 1 ? "is" : "are", vo->rest_base);
    kf__free(st);
    if (!result)
        kf__log(vo->log, KF_LOG_INFO, "msg=\"symbols validated\" symbols=%zu", vo->nsymbols);
    return result;
}
