/* kf_start()'s symbol check: every configured symbol must be listed and TRADING. */
#include "collector/validate.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backfill/fetch.h"
#include "collector/config.h"
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

/* GET /fapi/v1/exchangeInfo into *resp (the body owned by *rest_out, which the caller frees):
 * KF_OK, or an error with why set (the pause the exchange imposed is honoured and recorded). */
static kf_err exinfo_get(const kf__validate_opts *vo, kf__rest **rest_out, kf__rest_resp *resp,
                         char *why, size_t whylen)
{
    kf__rest_opts o = {
        .base = vo->rest_base,
        .tls_verify = vo->tls_verify,
        .ca_file = vo->ca_file,
        .timeout_ms = (long)vo->timeout_ms,
        .max_body = 64u << 20,
        .log = vo->log,
    };
    kf__rest *rest = *rest_out = kf__rest_new(&o, why, whylen);
    if (!rest)
        return KF_ERR_NOMEM;
    if (vo->cancel)
        kf__rest_set_cancel(rest, vo->cancel); /* kf_stop during kf_start */
    const char *state = vo->state_path && vo->state_path[0] ? vo->state_path : NULL;
    long paused_by = 0;
    int64_t pause = kf__fetch_state_pause(state, &paused_by);
    if (pause) { /* asking now would earn a ban (or a longer one) */
        snprintf(why, whylen,
                 "REST is paused for %lld s more: the exchange answered %ld to an earlier process "
                 "(%s)",
                 (long long)((pause + 999) / 1000), paused_by, state);
        return KF_ERR_REST;
    }
    kf_err e = kf__rest_get(rest, "/fapi/v1/exchangeInfo", resp, why, whylen);
    if (vo->rest_requests) /* one writer: kf_start's caller, before the I/O thread runs */
        atomic_store_explicit(vo->rest_requests,
                              atomic_load_explicit(vo->rest_requests, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    if (!e && (resp->status == 429 || resp->status == 418)) {
        int64_t ms = resp->retry_after >= 0 ? resp->retry_after * 1000 + 250 : 60000;
        if (resp->status == 418 && ms < 120000)
            ms = 120000;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        kf__fetch_state_record(state, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + ms,
                               resp->status, vo->log);
    }
    if (!e && resp->status != 200) {
        snprintf(why, whylen, "GET %s/fapi/v1/exchangeInfo: HTTP %ld", vo->rest_base, resp->status);
        e = KF_ERR_REST;
    }
    return e;
}

kf_err kf__validate_symbols(const kf__validate_opts *vo, char *err, size_t errlen)
{
    if (vo->mode == KF_VALIDATE_OFF)
        return KF_OK;
    validate_status *st = kf__calloc(vo->nsymbols, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return KF_ERR_NOMEM;
    }
    kf__rest *rest = NULL;
    kf__rest_resp resp;
    char why[768] = "";
    const char *perr = NULL;
    kf_err e = exinfo_get(vo, &rest, &resp, why, sizeof why);
    if (e == KF_ERR_NOMEM) {
        kf__free(st);
        snprintf(err, errlen, "%s", why);
        return e;
    }
    if (!e && !validate_parse(vo, resp.body, resp.len, st, &perr)) {
        snprintf(why, sizeof why, "GET %s/fapi/v1/exchangeInfo: malformed body (%s)", vo->rest_base,
                 perr);
        e = KF_ERR_REST;
    }
    if (rest)
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

/* ---- every TRADING USDT-M perpetual: what "ALL" means ---- */

/* Calls add(ud, symbol) for each USDT perpetual that is TRADING; false (why) when malformed. */
static bool perpetuals_parse(const char *body, size_t len, kf_err (*add)(void *, const char *),
                             void *ud, size_t *count, const char **why)
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
            char sym[KF_SYMBOL_MAX + 1] = "", status[16] = "", type[32] = "", quote[16] = "";
            if (!kf__json_enter_object(&j))
                goto bad;
            while (kf__json_next_key(&j, &key)) {
                char *dst = kf__json_key_eq(&key, "symbol")         ? sym
                            : kf__json_key_eq(&key, "status")       ? status
                            : kf__json_key_eq(&key, "contractType") ? type
                            : kf__json_key_eq(&key, "quoteAsset")   ? quote
                                                                    : NULL;
                size_t cap = dst == sym ? sizeof sym : dst == type ? sizeof type : sizeof status;
                if (dst && kf__json_peek(&j) == KF__JSON_STRING) {
                    kf__json_read_string(&j, &v);
                    if (kf__json_unescape(v.p, v.len, dst, cap) < 0)
                        dst[0] = 0;
                } else {
                    kf__json_skip_value(&j, NULL);
                }
            }
            if (sym[0] && strcmp(status, "TRADING") == 0 && strcmp(type, "PERPETUAL") == 0 &&
                strcmp(quote, "USDT") == 0) {
                kf_err e = add(ud, sym);
                if (e == KF_ERR_NOMEM) {
                    *why = "out of memory";
                    return false;
                }
                *count += e == KF_OK; /* a name the configuration refuses is skipped */
            }
        }
    }
    if (kf__json_finish(&j))
        return true;
bad:
    *why = j.err ? j.err : "not the expected object";
    return false;
}

kf_err kf__exchange_perpetuals(const kf__validate_opts *vo, kf_err (*add)(void *, const char *),
                               void *ud, size_t *count, char *err, size_t errlen)
{
    kf__rest *rest = NULL;
    kf__rest_resp resp;
    char why[768] = "";
    const char *perr = NULL;
    *count = 0;
    kf_err e = exinfo_get(vo, &rest, &resp, why, sizeof why);
    if (!e && !perpetuals_parse(resp.body, resp.len, add, ud, count, &perr)) {
        snprintf(why, sizeof why, "GET %s/fapi/v1/exchangeInfo: %s (%s)", vo->rest_base,
                 strcmp(perr, "out of memory") == 0 ? "no room for the symbols" : "malformed body",
                 perr);
        e = strcmp(perr, "out of memory") == 0 ? KF_ERR_NOMEM : KF_ERR_REST;
    }
    if (rest)
        kf__rest_free(rest);
    if (e)
        snprintf(err, errlen, "%s", why);
    return e;
}

static kf_err add_to_config(void *ud, const char *sym)
{
    return kf_config_add_symbol(ud, sym);
}

kf_err kf_config_add_exchange_symbols(kf_config *cfg, size_t *added)
{
    if (added)
        *added = 0;
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    char base[1100], state[1200];
    snprintf(base, sizeof base, "%s",
             cfg->rest_url  ? cfg->rest_url
             : cfg->testnet ? KF_REST_TESTNET
                            : KF_REST_MAINNET);
    if (!kf__fetch_state_path(cfg->state_dir, base, state, sizeof state))
        state[0] = 0;
    kf__logger log;
    kf__logger_init(&log, cfg->log_fn, cfg->log_userdata, cfg->log_level);
    kf__validate_opts vo = {
        .rest_base = base,
        .tls_verify = cfg->tls_verify,
        .ca_file = cfg->ca_file,
        .timeout_ms = cfg->connect_timeout_ms,
        .state_path = state,
        .log = &log,
    };
    size_t before = cfg->nsymbols, count = 0;
    char err[900];
    kf_err e = kf__exchange_perpetuals(&vo, add_to_config, cfg, &count, err, sizeof err);
    if (e) {
        cfg->nsymbols = before; /* a body cut short adds nothing */
        snprintf(cfg->errmsg, sizeof cfg->errmsg, "%s", err);
    } else {
        cfg->exchange_symbols = true; /* what kf_config_set_symbol_refresh re-reads */
        kf__log(&log, KF_LOG_INFO,
                "msg=\"symbols from exchangeInfo: every TRADING USDT perpetual\" listed=%zu "
                "added=%zu",
                count, cfg->nsymbols - before);
    }
    kf__logger_destroy(&log);
    if (added)
        *added = cfg->nsymbols - before;
    return e;
}
