/* REST GET over libcurl with a capped body and Binance's rate-limit headers. */
#include "transport/rest.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"

struct kf__rest {
    CURL *curl;
    char base[1024];
    size_t max_body;
    char *body;
    size_t len, cap;
    bool too_big;
    long used_weight, retry_after;
    char curl_err[CURL_ERROR_SIZE];
    kf__logger *log;
    CURLM *multi;               /* runs the transfers of curl (and keeps its connections) */
    const _Atomic bool *cancel; /* kf__rest_set_cancel, may be NULL */
};

/* Longest wait for the socket before the cancel flag is looked at again. */
#define REST_CANCEL_POLL_MS 50

static pthread_once_t rest_once = PTHREAD_ONCE_INIT;
static void rest_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t rest_on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    kf__rest *r = ud;
    size_t n = size * nmemb;
    if (r->len + n + 1 > r->max_body) {
        r->too_big = true;
        return 0;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 65536;
        while (cap < r->len + n + 1)
            cap *= 2;
        char *b = kf__realloc(r->body, cap);
        if (!b)
            return 0;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, ptr, n);
    r->len += n;
    return n;
}

static long rest_header_value(const char *line, size_t n, const char *name)
{
    size_t nl = strlen(name);
    if (n <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return -1;
    char tmp[32];
    size_t i = nl + 1, o = 0;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    while (i < n && o + 1 < sizeof tmp && line[i] >= '0' && line[i] <= '9')
        tmp[o++] = line[i++];
    tmp[o] = 0;
    return o ? strtol(tmp, NULL, 10) : -1;
}

static size_t rest_on_header(char *line, size_t size, size_t nmemb, void *ud)
{
    kf__rest *r = ud;
    size_t n = size * nmemb;
    long v;
    if ((v = rest_header_value(line, n, "X-MBX-USED-WEIGHT-1M")) >= 0)
        r->used_weight = v;
    else if ((v = rest_header_value(line, n, "Retry-After")) >= 0)
        r->retry_after = v;
    return n;
}

kf__rest *kf__rest_new(const kf__rest_opts *o, char *err, size_t errlen)
{
    pthread_once(&rest_once, rest_global_init);
    kf__rest *r = kf__calloc(1, sizeof *r);
    if (!r || !(r->curl = curl_easy_init()) || !(r->multi = curl_multi_init())) {
        snprintf(err, errlen, "cannot create a REST client (out of memory)");
        if (r)
            curl_easy_cleanup(r->curl);
        kf__free(r);
        return NULL;
    }
    snprintf(r->base, sizeof r->base, "%s", o->base);
    size_t bl = strlen(r->base);
    while (bl && r->base[bl - 1] == '/')
        r->base[--bl] = 0;
    r->max_body = o->max_body ? o->max_body : (64u << 20);
    r->log = o->log;
    CURL *c = r->curl;
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, rest_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, rest_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->curl_err);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "klinefeed/" KF_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, o->tls_verify ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, o->tls_verify ? 2L : 0L);
    if (o->ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
    return r;
}

void kf__rest_free(kf__rest *r)
{
    if (!r)
        return;
    curl_easy_cleanup(r->curl); /* never left in the multi: kf__rest_get removes it */
    curl_multi_cleanup(r->multi);
    kf__free(r->body);
    kf__free(r);
}

void kf__rest_set_cancel(kf__rest *r, const _Atomic bool *cancel)
{
    r->cancel = cancel;
}

static bool rest_cancelled(const kf__rest *r)
{
    return r->cancel && atomic_load_explicit(r->cancel, memory_order_relaxed);
}

/*
 * curl_easy_perform, but cancellable: it waits up to a second at a time while the exchange
 * sends nothing (and its progress callback runs no more often), so a stop would wait that
 * long, or the whole timeout for a request the exchange hangs. Here the wait is at most
 * REST_CANCEL_POLL_MS and the flag is looked at after each. *cancelled: given up for it.
 */
static CURLcode rest_perform(kf__rest *r, bool *cancelled)
{
    *cancelled = false;
    if (curl_multi_add_handle(r->multi, r->curl) != CURLM_OK)
        return CURLE_OUT_OF_MEMORY;
    CURLMcode mc = CURLM_OK;
    int running = 1;
    while (mc == CURLM_OK && running) {
        if (rest_cancelled(r)) {
            *cancelled = true;
            break;
        }
        mc = curl_multi_perform(r->multi, &running);
        if (mc == CURLM_OK && running)
            mc = curl_multi_poll(r->multi, NULL, 0, REST_CANCEL_POLL_MS, NULL);
    }
    CURLcode cc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
    if (mc != CURLM_OK && !r->curl_err[0]) /* unless the transfer says more below */
        snprintf(r->curl_err, sizeof r->curl_err, "%s", curl_multi_strerror(mc));
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(r->multi, &left)))
        if (m->msg == CURLMSG_DONE && m->easy_handle == r->curl)
            cc = m->data.result;
    /* also ends a transfer still running (cancelled): its connection is closed, not reused */
    curl_multi_remove_handle(r->multi, r->curl);
    return cc;
}

kf_err kf__rest_get(kf__rest *r, const char *path_query, kf__rest_resp *resp, char *err,
                    size_t errlen)
{
    char url[2048];
    snprintf(url, sizeof url, "%s%s", r->base, path_query);
    r->len = 0;
    r->too_big = false;
    r->used_weight = r->retry_after = -1;
    r->curl_err[0] = 0;
    memset(resp, 0, sizeof *resp);
    curl_easy_setopt(r->curl, CURLOPT_URL, url);
    bool cancelled;
    CURLcode cc = rest_perform(r, &cancelled);
    if (cancelled) {
        /* the caller's choice, not a failure of the exchange: not a timeout, not to retry */
        snprintf(err, errlen, "cancelled");
        return KF_ERR_NOT_RUNNING;
    }
    if (cc != CURLE_OK) {
        kf_err e = KF_ERR_REST;
        switch (cc) {
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY:
            e = KF_ERR_DNS;
            break;
        case CURLE_COULDNT_CONNECT:
            e = KF_ERR_CONNECT;
            break;
        case CURLE_OPERATION_TIMEDOUT:
            e = KF_ERR_TIMEOUT;
            break;
        case CURLE_SSL_CONNECT_ERROR:
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
            e = KF_ERR_TLS;
            break;
        default:
            break;
        }
        if (r->too_big)
            snprintf(err, errlen, "GET %s: response over %zu bytes", url, r->max_body);
        else
            snprintf(err, errlen, "GET %s: %s", url,
                     r->curl_err[0] ? r->curl_err : curl_easy_strerror(cc));
        return e;
    }
    if (!r->body && !(r->body = kf__malloc(1))) {
        snprintf(err, errlen, "GET %s: out of memory", url);
        return KF_ERR_NOMEM;
    }
    r->body[r->len] = 0;
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &resp->status);
    resp->body = r->body;
    resp->len = r->len;
    resp->used_weight = r->used_weight;
    resp->retry_after = r->retry_after;
    return KF_OK;
}
