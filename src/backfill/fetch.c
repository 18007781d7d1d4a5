/* REST history fetcher: paged GET /fapi/v1/klines within the weight budget. */
#include "backfill/fetch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backfill/budget.h"
#include "core/alloc.h"
#include "decode/json.h"
#include "transport/conn.h"
#include "transport/rest.h"

/* Local clock differences up to this are skew; larger ones are a simulated exchange clock. */
#define FETCH_MAX_SKEW_MS 30000
#define FETCH_BACKOFF_FIRST_MS 500
#define FETCH_BACKOFF_CAP_MS 30000
#define FETCH_MAX_FAILURES 12
#define FETCH_BAN_MIN_MS 120000
#define FETCH_SLEEP_SLICE_MS 50
#define FETCH_MAX_LIMIT 1500
#define FETCH_TIME_CACHE_MS 500   /* the exchange's clock, when it matters, is asked again after */
#define FETCH_ROUGH_TIME_MS 60000 /* ... and for sizing pages, after this long */
/* A candle that closed less than this long ago and is not in an answer may only be late in the
 * exchange's REST view: it is not taken as missing yet (covered stays before it). */
#define FETCH_PRESENT_MARGIN_MS 60000

struct kf__fetcher {
    kf__rest *rest;
    kf__logger *log;
    char base[1024];
    kf__budget budget;
    int64_t skew_ms;                /* exchange clock - local wall clock, when small */
    int64_t pause_until_mono;       /* 429/418: no request before this monotonic ms */
    bool answered;                  /* the exchange has answered at least once */
    int64_t time_server, time_mono; /* the exchange's clock at its last answer, and ours */
    bool time_known;
    char *state_path;           /* NULL: pauses are not kept across processes */
    const _Atomic bool *cancel; /* for calls given no cancel flag of their own */
    kf__fetch_stats st;
};

/* ---- clocks ---- */

static int64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

/* The clock the exchange counts weight minutes on. */
static int64_t fetch_budget_now(const kf__fetcher *f)
{
    return clock_ms(CLOCK_REALTIME) + f->skew_ms;
}

static bool cancelled(const _Atomic bool *cancel)
{
    return cancel && atomic_load_explicit(cancel, memory_order_relaxed);
}

/* Sleeps ms in short slices; false (nothing more slept) as soon as *cancel is true. */
static bool fetch_sleep(kf__fetcher *f, int64_t ms, const _Atomic bool *cancel)
{
    int64_t end = mono_ms() + ms;
    for (;;) {
        if (cancelled(cancel))
            return false;
        int64_t left = end - mono_ms();
        if (left <= 0)
            break;
        if (left > FETCH_SLEEP_SLICE_MS)
            left = FETCH_SLEEP_SLICE_MS;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !cancelled(cancel))
            ;
    }
    f->st.waits_ms += (uint64_t)ms;
    return true;
}

/* ---- the pause state kept across processes ---- */

void kf__fetch_state_record(const char *path, int64_t until_wall_ms, long status, kf__logger *log)
{
    if (!path)
        return;
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "w");
    int ok = fp != NULL;
    if (fp) {
        ok = fprintf(fp,
                     "# klinefeed: a REST pause the exchange imposed, honoured by the next "
                     "process\npause_until_ms=%" PRId64 "\nstatus=%ld\n",
                     until_wall_ms, status) > 0;
        ok = fflush(fp) == 0 && ok;
        ok = fsync(fileno(fp)) == 0 && ok;
        ok = fclose(fp) == 0 && ok;
    }
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    if (!ok) {
        kf__log(log, KF_LOG_WARN,
                "msg=\"cannot keep the REST pause for the next process\" path=%s error=\"%s\"",
                path, strerror(errno));
        unlink(tmp);
    }
}

bool kf__fetch_state_path(const char *dir, const char *rest_base, char *out, size_t cap)
{
    kf__url u;
    char err[256];
    if (!dir || !*dir || kf__url_parse(rest_base, &u, err, sizeof err) != KF_OK)
        return false;
    char host[sizeof u.host];
    size_t n = 0;
    for (const char *p = u.host; *p; p++) /* a file name: anything else becomes '_' */
        host[n++] = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                            (*p >= '0' && *p <= '9') || *p == '.' || *p == '-'
                        ? *p
                        : '_';
    host[n] = 0;
    int w = snprintf(out, cap, "%s/rest-%s-%d.state", dir, host, u.port);
    return w > 0 && (size_t)w < cap;
}

int64_t kf__fetch_state_pause(const char *path, long *status)
{
    FILE *fp = path ? fopen(path, "r") : NULL;
    if (!fp)
        return 0;
    char line[256];
    int64_t until = 0;
    long st = 0;
    while (fgets(line, sizeof line, fp)) {
        long long v;
        if (sscanf(line, "pause_until_ms=%lld", &v) == 1)
            until = (int64_t)v;
        else if (sscanf(line, "status=%lld", &v) == 1)
            st = (long)v;
    }
    fclose(fp);
    int64_t left = until - clock_ms(CLOCK_REALTIME);
    if (left <= 0)
        return 0;
    if (left > 3LL * 86400000) /* Binance's longest ban; a bigger value is a broken file */
        left = 3LL * 86400000;
    if (status)
        *status = st;
    return left;
}

static void state_load(kf__fetcher *f)
{
    long status = 0;
    int64_t left = kf__fetch_state_pause(f->state_path, &status);
    if (!left)
        return;
    f->pause_until_mono = mono_ms() + left;
    kf__log(f->log, KF_LOG_WARN,
            "msg=\"REST paused: an earlier process was told to back off (%ld)\" pause_ms=%" PRId64
            " path=%s",
            status, left, f->state_path);
}

void kf__fetcher_set_cancel(kf__fetcher *f, const _Atomic bool *cancel)
{
    f->cancel = cancel;
}

int64_t kf__fetcher_paused_ms(const kf__fetcher *f)
{
    int64_t left = f->pause_until_mono - mono_ms();
    return left > 0 ? left : 0;
}

/* ---- lifecycle ---- */

kf__fetcher *kf__fetcher_new(const kf__fetcher_opts *o, char *err, size_t errlen)
{
    if (!o || !o->rest_base || !*o->rest_base) {
        snprintf(err, errlen, "fetcher: no REST base URL");
        return NULL;
    }
    kf__fetcher *f = kf__calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "fetcher: out of memory");
        return NULL;
    }
    snprintf(f->base, sizeof f->base, "%s", o->rest_base);
    size_t bl = strlen(f->base);
    while (bl && f->base[bl - 1] == '/')
        f->base[--bl] = 0;
    kf__rest_opts ro = {
        .base = f->base,
        .tls_verify = o->tls_verify,
        .ca_file = o->ca_file,
        .timeout_ms = o->timeout_ms ? (long)o->timeout_ms : 10000L,
        .max_body = 64u << 20,
        .log = o->log,
    };
    f->rest = kf__rest_new(&ro, err, errlen);
    if (!f->rest) {
        kf__free(f);
        return NULL;
    }
    f->log = o->log;
    kf__budget_init(&f->budget, o->weight_budget);
    if (o->state_path && *o->state_path) {
        f->state_path = kf__strdup(o->state_path);
        if (!f->state_path) {
            snprintf(err, errlen, "fetcher: out of memory");
            kf__fetcher_free(f);
            return NULL;
        }
        state_load(f);
    }
    return f;
}

void kf__fetcher_free(kf__fetcher *f)
{
    if (!f)
        return;
    kf__rest_free(f->rest);
    kf__free(f->state_path);
    kf__free(f);
}

void kf__fetcher_get_stats(const kf__fetcher *f, kf__fetch_stats *out)
{
    *out = f->st;
}

unsigned kf__fetcher_weight_limit(const kf__fetcher *f)
{
    return f->budget.limit;
}

/* ---- one request, with the budget, pauses and retries ---- */

/* {"code":-1121,"msg":"Invalid symbol."} -> "code=-1121 msg=\"Invalid symbol.\"" */
static void fetch_error_body(const char *body, size_t len, char *out, size_t cap)
{
    kf__json j;
    kf__json_span key, msg = {0};
    int64_t code = 0;
    bool has_code = false, has_msg = false;
    kf__json_init(&j, body, len);
    if (kf__json_enter_object(&j))
        while (kf__json_next_key(&j, &key)) {
            if (kf__json_key_eq(&key, "code") && kf__json_peek(&j) == KF__JSON_NUMBER)
                has_code = kf__json_read_i64(&j, &code);
            else if (kf__json_key_eq(&key, "msg") && kf__json_peek(&j) == KF__JSON_STRING)
                has_msg = kf__json_read_string(&j, &msg);
            else
                kf__json_skip_value(&j, NULL);
        }
    if (has_code || has_msg) {
        char m[256] = "";
        if (has_msg && kf__json_unescape(msg.p, msg.len, m, sizeof m) < 0)
            snprintf(m, sizeof m, "%.*s", (int)(msg.len > 200 ? 200 : msg.len), msg.p);
        snprintf(out, cap, "code=%" PRId64 " msg=\"%s\"", code, m);
    } else {
        char sample[272];
        kf__log_sample(body, len, sample, sizeof sample);
        snprintf(out, cap, "body=%s", sample);
    }
}

static int64_t backoff_ms(unsigned failures)
{
    int64_t ms = FETCH_BACKOFF_FIRST_MS;
    for (unsigned i = 1; i < failures && ms < FETCH_BACKOFF_CAP_MS; i++)
        ms *= 2;
    return ms < FETCH_BACKOFF_CAP_MS ? ms : FETCH_BACKOFF_CAP_MS;
}

typedef enum fetch_verdict {
    FETCH_DONE = 0,  /* 200: use resp */
    FETCH_RETRY = 1, /* transient: back off and repeat */
    FETCH_FAIL = 2,  /* return the error */
} fetch_verdict;

/*
 * Sends GET path_query of the given weight once the budget and any pause allow it.
 * Returns KF_OK with a 200 response in *resp; retries transient failures itself.
 * check_body (may be NULL) validates a 200 body (false: treated as a transient failure).
 */
static kf_err fetch_get(kf__fetcher *f, const char *path_query, unsigned weight,
                        kf__rest_resp *resp, bool (*check_body)(const kf__rest_resp *r),
                        const _Atomic bool *cancel, char *err, size_t errlen)
{
    if (!cancel)
        cancel = f->cancel;
    unsigned failures = 0;
    char why[1024] = "";
    for (;;) {
        /* 429/418 pause, shared by every request of this fetcher. */
        int64_t pause = f->pause_until_mono - mono_ms();
        if (pause > 0 && !fetch_sleep(f, pause, cancel))
            goto cancel_out;
        /* The budget of the current exchange minute. */
        int64_t wait = kf__budget_wait_ms(&f->budget, fetch_budget_now(f), weight);
        if (wait > 0) {
            /* a wait a person would notice is said at info: a silent 30 s looks like a hang */
            kf__log(f->log, wait >= 3000 ? KF_LOG_INFO : KF_LOG_DEBUG,
                    "msg=\"REST weight budget reached: waiting for the next minute\" used=%u "
                    "limit=%u wait_ms=%" PRId64,
                    kf__budget_used(&f->budget, fetch_budget_now(f)), f->budget.limit, wait);
            if (!fetch_sleep(f, wait, cancel))
                goto cancel_out;
            continue;
        }
        if (cancelled(cancel))
            goto cancel_out;

        int64_t sent = fetch_budget_now(f);
        kf__budget_charge(&f->budget, sent, weight);
        f->st.requests++;
        f->st.weight_used += weight;
        /* The flag also stops the request in flight: an exchange that hangs a request must
         * not hold a stop for the whole timeout. */
        kf__rest_set_cancel(f->rest, cancel);
        kf_err e = kf__rest_get(f->rest, path_query, resp, why, sizeof why);
        kf__rest_set_cancel(f->rest, NULL);
        if (e == KF_ERR_NOT_RUNNING) /* neither a timeout nor a failure to retry */
            goto cancel_out;
        int64_t recv = fetch_budget_now(f);

        fetch_verdict v;
        if (e != KF_OK) {
            if (e == KF_ERR_TIMEOUT)
                f->st.timeouts++;
            /* Never answered yet: a wrong URL or a dead host, not a blip. */
            v = (e == KF_ERR_TLS || e == KF_ERR_NOMEM || !f->answered) ? FETCH_FAIL : FETCH_RETRY;
        } else {
            f->answered = true;
            kf__budget_observe(&f->budget, sent, recv, weight, resp->used_weight);
            long s = resp->status;
            if (s == 200) {
                if (!check_body || check_body(resp))
                    return KF_OK;
                snprintf(why, sizeof why, "GET %s%s: HTTP 200 with a malformed body", f->base,
                         path_query);
                v = FETCH_RETRY;
            } else if (s == 429 || s == 418) {
                bool ban = s == 418;
                /* Retry-After is whole seconds: wait a margin past it, never right at the edge
                 * (a request inside the window earns a 418 ban). */
                int64_t ms =
                    resp->retry_after >= 0 ? resp->retry_after * 1000 + f->budget.margin_ms : 0;
                if (ban) {
                    f->st.http_418++;
                    if (ms < FETCH_BAN_MIN_MS)
                        ms = FETCH_BAN_MIN_MS;
                } else {
                    f->st.http_429++;
                    if (ms <= 0) /* no Retry-After: the rest of this minute */
                        ms = 60000 - (recv % 60000 + 60000) % 60000 + f->budget.margin_ms;
                }
                /* Without Retry-After the minute is spent, whatever our estimate said; with
                 * it, the exchange said when (and its weight header was adopted above). */
                if (ban || resp->retry_after < 0)
                    kf__budget_charge(&f->budget, recv, f->budget.limit);
                f->pause_until_mono = mono_ms() + ms;
                kf__fetch_state_record(f->state_path, clock_ms(CLOCK_REALTIME) + ms, s, f->log);
                char detail[384];
                fetch_error_body(resp->body, resp->len, detail, sizeof detail);
                kf__log(f->log, ban ? KF_LOG_ERROR : KF_LOG_WARN,
                        "msg=\"%s: pausing every REST request\" status=%ld pause_ms=%" PRId64
                        " used_weight=%ld limit=%u %s",
                        ban ? "IP banned by the exchange (418)" : "REST rate limit hit (429)", s,
                        ms, resp->used_weight, f->budget.limit, detail);
                continue; /* not a failure: the same request once the pause is over */
            } else if (s >= 500 || s == 408) {
                f->st.http_5xx++;
                char detail[384];
                fetch_error_body(resp->body, resp->len, detail, sizeof detail);
                snprintf(why, sizeof why, "GET %s%s: HTTP %ld %s", f->base, path_query, s, detail);
                v = FETCH_RETRY;
            } else {
                char detail[384];
                fetch_error_body(resp->body, resp->len, detail, sizeof detail);
                snprintf(err, errlen, "GET %s%s: HTTP %ld %s", f->base, path_query, s, detail);
                return KF_ERR_REST;
            }
            if (v == FETCH_RETRY)
                e = KF_ERR_REST;
        }
        if (v == FETCH_FAIL || ++failures >= FETCH_MAX_FAILURES) {
            snprintf(err, errlen, "%s%s", why,
                     v == FETCH_FAIL ? "" : " (giving up after repeated failures)");
            return e;
        }
        int64_t ms = backoff_ms(failures);
        f->st.retries++;
        kf__log(f->log, KF_LOG_WARN,
                "msg=\"REST request failed, retrying\" attempt=%u backoff_ms=%" PRId64
                " why=\"%s\"",
                failures, ms, why);
        if (!fetch_sleep(f, ms, cancel))
            goto cancel_out;
    }
cancel_out:
    snprintf(err, errlen, "cancelled");
    return KF_ERR_NOT_RUNNING;
}

/* ---- exchangeInfo and time ---- */

static bool body_is_json(const kf__rest_resp *r)
{
    kf__json j;
    kf__json_init(&j, r->body, r->len);
    kf__json_skip_value(&j, NULL);
    return kf__json_finish(&j);
}

/* rateLimits[]: the REQUEST_WEIGHT per 1 MINUTE limit, 0 when not published. */
static unsigned parse_rate_limit(kf__json *j)
{
    unsigned found = 0;
    kf__json_span key, v;
    if (!kf__json_enter_array(j))
        return 0;
    while (kf__json_next_elem(j)) {
        if (kf__json_peek(j) != KF__JSON_OBJECT) {
            kf__json_skip_value(j, NULL);
            continue;
        }
        kf__json_enter_object(j);
        bool weight = false, minute = false;
        int64_t num = 0, limit = 0;
        while (kf__json_next_key(j, &key)) {
            if (kf__json_key_eq(&key, "rateLimitType") && kf__json_peek(j) == KF__JSON_STRING) {
                kf__json_read_string(j, &v);
                weight = v.len == 14 && memcmp(v.p, "REQUEST_WEIGHT", 14) == 0;
            } else if (kf__json_key_eq(&key, "interval") && kf__json_peek(j) == KF__JSON_STRING) {
                kf__json_read_string(j, &v);
                minute = v.len == 6 && memcmp(v.p, "MINUTE", 6) == 0;
            } else if (kf__json_key_eq(&key, "intervalNum") &&
                       kf__json_peek(j) == KF__JSON_NUMBER) {
                kf__json_read_i64(j, &num);
            } else if (kf__json_key_eq(&key, "limit") && kf__json_peek(j) == KF__JSON_NUMBER) {
                kf__json_read_i64(j, &limit);
            } else {
                kf__json_skip_value(j, NULL);
            }
        }
        if (weight && minute && num == 1 && limit > 0 && limit <= UINT32_MAX &&
            (!found || (unsigned)limit < found))
            found = (unsigned)limit;
    }
    return found;
}

/* Each element of symbols[]: on_full (when given) gets every field, else on_symbol the symbol
 * and its status. */
static void parse_symbols(kf__json *j, void (*on_symbol)(void *, const char *, const char *),
                          void (*on_full)(void *, const kf__exchange_symbol *), void *ud)
{
    kf__json_span key, v;
    if (!kf__json_enter_array(j))
        return;
    while (kf__json_next_elem(j)) {
        if (kf__json_peek(j) != KF__JSON_OBJECT) {
            kf__json_skip_value(j, NULL);
            continue;
        }
        kf__json_enter_object(j);
        kf__exchange_symbol e;
        memset(&e, 0, sizeof e);
        while (kf__json_next_key(j, &key)) {
            char *dst = kf__json_key_eq(&key, "symbol")         ? e.symbol
                        : kf__json_key_eq(&key, "status")       ? e.status
                        : kf__json_key_eq(&key, "contractType") ? e.contract_type
                        : kf__json_key_eq(&key, "quoteAsset")   ? e.quote_asset
                                                                : NULL;
            size_t cap = dst == e.symbol          ? sizeof e.symbol
                         : dst == e.quote_asset   ? sizeof e.quote_asset
                         : dst == e.contract_type ? sizeof e.contract_type
                                                  : sizeof e.status;
            if (dst && kf__json_peek(j) == KF__JSON_STRING) {
                kf__json_read_string(j, &v);
                if (kf__json_unescape(v.p, v.len, dst, cap) < 0)
                    dst[0] = 0;
            } else if (kf__json_key_eq(&key, "onboardDate") &&
                       kf__json_peek(j) == KF__JSON_NUMBER) {
                if (!kf__json_read_i64(j, &e.onboard_date))
                    e.onboard_date = 0;
            } else {
                kf__json_skip_value(j, NULL);
            }
        }
        if (!e.symbol[0])
            continue;
        if (on_full)
            on_full(ud, &e);
        else if (on_symbol)
            on_symbol(ud, e.symbol, e.status[0] ? e.status : "?");
    }
}

static kf_err exchange_info(kf__fetcher *f, void (*on_symbol)(void *, const char *, const char *),
                            void (*on_full)(void *, const kf__exchange_symbol *), void *ud,
                            char *err, size_t errlen)
{
    kf__rest_resp resp;
    kf_err e = fetch_get(f, "/fapi/v1/exchangeInfo", 1, &resp, body_is_json, NULL, err, errlen);
    if (e)
        return e;
    kf__json j;
    kf__json_span key;
    unsigned published = 0;
    kf__json_init(&j, resp.body, resp.len);
    if (kf__json_enter_object(&j))
        while (kf__json_next_key(&j, &key)) {
            if (kf__json_key_eq(&key, "rateLimits"))
                published = parse_rate_limit(&j);
            else if (kf__json_key_eq(&key, "symbols") && (on_symbol || on_full))
                parse_symbols(&j, on_symbol, on_full, ud);
            else
                kf__json_skip_value(&j, NULL);
        }
    if (!kf__json_finish(&j)) {
        snprintf(err, errlen, "GET %s/fapi/v1/exchangeInfo: malformed body (%s)", f->base,
                 j.err ? j.err : "not the expected object");
        return KF_ERR_REST;
    }
    unsigned before = f->budget.limit;
    kf__budget_publish(&f->budget, published);
    kf__log(f->log, KF_LOG_DEBUG,
            "msg=\"REST weight limit\" published=%u configured=%u effective=%u", published, before,
            f->budget.limit);
    return KF_OK;
}

kf_err kf__fetcher_exchange_info(kf__fetcher *f,
                                 void (*on_symbol)(void *ud, const char *symbol,
                                                   const char *status),
                                 void *ud, char *err, size_t errlen)
{
    return exchange_info(f, on_symbol, NULL, ud, err, errlen);
}

kf_err kf__fetcher_exchange_symbols(kf__fetcher *f,
                                    void (*on_symbol)(void *ud, const kf__exchange_symbol *s),
                                    void *ud, char *err, size_t errlen)
{
    return exchange_info(f, NULL, on_symbol, ud, err, errlen);
}

kf_err kf__fetcher_sync_limits(kf__fetcher *f, char *err, size_t errlen)
{
    return kf__fetcher_exchange_info(f, NULL, NULL, err, errlen);
}

static bool parse_server_time(const char *body, size_t len, int64_t *ms)
{
    kf__json j;
    kf__json_span key;
    bool got = false;
    kf__json_init(&j, body, len);
    if (kf__json_enter_object(&j))
        while (kf__json_next_key(&j, &key)) {
            if (kf__json_key_eq(&key, "serverTime") && kf__json_peek(&j) == KF__JSON_NUMBER)
                got = kf__json_read_i64(&j, ms);
            else
                kf__json_skip_value(&j, NULL);
        }
    return kf__json_finish(&j) && got;
}

static bool body_is_time(const kf__rest_resp *r)
{
    int64_t ms;
    return parse_server_time(r->body, r->len, &ms);
}

/* The exchange's time now as last measured, advanced by our clock: never ahead of it (it may be
 * behind: an accelerated clock, or a slow request). INT64_MIN when never measured. */
static int64_t fetch_now(const kf__fetcher *f)
{
    return f->time_known ? f->time_server + (mono_ms() - f->time_mono) : INT64_MIN;
}

/* GET /fapi/v1/time (weight 1) unless measured less than max_age_ms ago; *ms = fetch_now. */
static kf_err fetch_server_time_within(kf__fetcher *f, int64_t max_age_ms, int64_t *ms,
                                       const _Atomic bool *cancel, char *err, size_t errlen)
{
    if (f->time_known && mono_ms() - f->time_mono < max_age_ms) {
        *ms = fetch_now(f);
        return KF_OK;
    }
    kf__rest_resp resp;
    int64_t t0 = clock_ms(CLOCK_REALTIME);
    kf_err e = fetch_get(f, "/fapi/v1/time", 1, &resp, body_is_time, cancel, err, errlen);
    if (e)
        return e;
    int64_t t1 = clock_ms(CLOCK_REALTIME);
    parse_server_time(resp.body, resp.len, ms);
    int64_t skew = *ms - (t0 + (t1 - t0) / 2);
    int64_t abs_skew = skew < 0 ? -skew : skew;
    int64_t adopted = abs_skew <= FETCH_MAX_SKEW_MS ? skew : 0;
    if (adopted != f->skew_ms)
        kf__log(f->log, KF_LOG_DEBUG, "msg=\"exchange clock skew\" skew_ms=%" PRId64, adopted);
    f->skew_ms = adopted;
    /* anchored at the answer's arrival: later estimates are never ahead of the exchange */
    f->time_server = *ms;
    f->time_mono = mono_ms();
    f->time_known = true;
    return KF_OK;
}

kf_err kf__fetcher_server_time(kf__fetcher *f, int64_t *ms, char *err, size_t errlen)
{
    return fetch_server_time_within(f, 0, ms, NULL, err, errlen);
}

/* ---- klines ---- */

/* Percent-encodes a symbol for the query (UTF-8 symbols exist). */
static bool url_encode(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.';
        if (o + (plain ? 1 : 3) >= cap)
            return false;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = 0;
    return true;
}

/* One 12-field row (extra trailing fields skipped) into k's numeric fields. */
static bool parse_row(kf__json *j, kf_kline *k)
{
    if (!kf__json_enter_array(j))
        return false;
    bool ok = kf__json_next_elem(j) && kf__json_read_i64(j, &k->open_time) &&
              kf__json_next_elem(j) && kf__json_read_dec(j, &k->open) && kf__json_next_elem(j) &&
              kf__json_read_dec(j, &k->high) && kf__json_next_elem(j) &&
              kf__json_read_dec(j, &k->low) && kf__json_next_elem(j) &&
              kf__json_read_dec(j, &k->close) && kf__json_next_elem(j) &&
              kf__json_read_dec(j, &k->volume) && kf__json_next_elem(j) &&
              kf__json_read_i64(j, &k->close_time) && kf__json_next_elem(j) &&
              kf__json_read_dec(j, &k->quote_volume) && kf__json_next_elem(j) &&
              kf__json_read_i64(j, &k->trades) && kf__json_next_elem(j) &&
              kf__json_read_dec(j, &k->taker_buy_base) && kf__json_next_elem(j) &&
              kf__json_read_dec(j, &k->taker_buy_quote);
    if (!ok)
        return kf__json_fail(j, "kline row: missing or mistyped field");
    while (kf__json_next_elem(j)) /* "0" (ignore) and anything added later */
        kf__json_skip_value(j, NULL);
    return kf__json_ok(j);
}

/* A klines body must be an array of well-formed rows before any row is passed on, so a
 * truncated page is retried whole rather than passed in part. */
static bool body_is_klines(const kf__rest_resp *r)
{
    kf__json j;
    kf_kline k;
    kf__json_init(&j, r->body, r->len);
    if (!kf__json_enter_array(&j))
        return false;
    while (kf__json_next_elem(&j))
        if (!parse_row(&j, &k))
            return false;
    return kf__json_finish(&j);
}

/* Smallest limit of the cheapest weight bracket holding n rows, at most what the budget
 * allows in one request. */
static unsigned page_limit(const kf__fetcher *f, int64_t n)
{
    unsigned cap = kf__budget_limit_for_weight(f->budget.limit);
    unsigned lim = n <= 100 ? 100 : n <= 500 ? 500 : n <= 1000 ? 1000 : FETCH_MAX_LIMIT;
    return lim < cap ? lim : cap;
}

/* What a fetch has established: the newest open time up to which every closed candle was
 * passed (see kf__fetch_klines). */
static void cover_to(int64_t *cov, int64_t t)
{
    if (t > *cov)
        *cov = t;
}

kf_err kf__fetch_klines(kf__fetcher *f, const char *symbol, int interval, int64_t from, int64_t to,
                        int (*on_row)(void *ud, const kf_kline *k), void *ud,
                        const _Atomic bool *cancel, int64_t *covered, char *err, size_t errlen)
{
    int64_t cov_local;
    int64_t *cov = covered ? covered : &cov_local;
    *cov = from - 1;
    const char *ivname = kf_interval_name(interval);
    size_t symlen = symbol ? strlen(symbol) : 0;
    if (!f || !ivname || symlen == 0 || symlen > KF_SYMBOL_MAX || !on_row || from > to) {
        snprintf(err, errlen,
                 "fetch klines: invalid argument (symbol \"%s\", interval %d, "
                 "from %" PRId64 ", to %" PRId64 ")",
                 symbol ? symbol : "(null)", interval, from, to);
        return KF_ERR_INVALID_ARG;
    }
    char esym[3 * KF_SYMBOL_MAX + 1];
    url_encode(symbol, esym, sizeof esym);

    /* A rough present for sizing pages (a minute old is fine); the exact one is asked only when
     * a row's being closed, or a candle's absence, depends on it. */
    int64_t now = 0;
    kf_err e = fetch_server_time_within(f, FETCH_ROUGH_TIME_MS, &now, cancel, err, errlen);
    if (e)
        return e;

    kf_kline k;
    memset(&k, 0, sizeof k);
    memcpy(k.symbol, symbol, symlen + 1);
    snprintf(k.interval, sizeof k.interval, "%s", ivname);
    k.interval_index = interval;
    k.closed = true;
    k.event_time = 0;
    k.first_trade_id = k.last_trade_id = -1;

    int64_t ivms = kf_interval_ms(interval);
    int64_t step = ivms > 0 ? ivms : 28LL * 86400000; /* 1M: the shortest month */
    /* open times up to now - settled are candles closed for a while */
    int64_t settled = (ivms > 0 ? ivms : 31LL * 86400000) + FETCH_PRESENT_MARGIN_MS;
    int64_t cursor = from < 0 ? 0 : from;
    for (;;) {
        /* The exchange's time when this page is answered is at least `sent` (measured before
         * the request: a time measured after the answer could pass a candle that closed after
         * it, with values that were not final yet). Measured afresh when the range reaches
         * what the estimate cannot vouch for. */
        if (to > fetch_now(f) - settled) {
            e = fetch_server_time_within(f, FETCH_TIME_CACHE_MS, &now, cancel, err, errlen);
            if (e)
                return e;
        }
        int64_t sent = fetch_now(f);
        /* Rows that can still come: open times cursor..end, rounded to the bracket. */
        int64_t end = to < sent ? to : sent;
        int64_t span = end >= cursor ? (end - cursor) / step + 1 : 1;
        unsigned limit = page_limit(f, span);
        char pq[512];
        if (to != INT64_MAX)
            snprintf(pq, sizeof pq,
                     "/fapi/v1/klines?symbol=%s&interval=%s&startTime=%" PRId64 "&endTime=%" PRId64
                     "&limit=%u",
                     esym, ivname, cursor, to, limit);
        else
            snprintf(pq, sizeof pq,
                     "/fapi/v1/klines?symbol=%s&interval=%s&startTime=%" PRId64 "&limit=%u", esym,
                     ivname, cursor, limit);
        kf__rest_resp resp;
        e = fetch_get(f, pq, kf__budget_klines_weight(limit), &resp, body_is_klines, cancel, err,
                      errlen);
        if (e)
            return e;
        kf__json j;
        unsigned n = 0;
        kf__json_init(&j, resp.body, resp.len);
        kf__json_enter_array(&j);
        while (kf__json_next_elem(&j) && kf__json_skip_value(&j, NULL))
            n++;
        kf__json_init(&j, resp.body, resp.len);
        kf__json_enter_array(&j);
        unsigned i = 0;
        while (kf__json_next_elem(&j)) {
            parse_row(&j, &k); /* validated by body_is_klines */
            i++;
            if (k.open_time < cursor) /* never repeat a row */
                continue;
            if (k.open_time > to) { /* past the range: all of it was answered */
                cover_to(cov, to);
                return KF_OK;
            }
            /* A row followed by another is closed (its successor opened); the last one is
             * closed only if it closed before the request was sent. */
            if (i == n && k.close_time >= sent) { /* maybe still open: all before it answered */
                cover_to(cov, k.open_time - 1);
                return KF_OK;
            }
            f->st.rows++;
            cursor = k.open_time + 1;
            cover_to(cov, k.open_time);
            if (on_row(ud, &k) != 0)
                return KF_OK;
        }
        if (n < limit || cursor > to) {
            /* The exchange has nothing more up to the range's end or its present when it
             * answered: what it did not return there, and had settled by then, does not exist. */
            cover_to(cov, to < sent - settled ? to : sent - settled);
            return KF_OK;
        }
    }
}
