/*
 * nats://[USER:PASS@|TOKEN@]HOST:PORT[?options] : every closed candle published to the JetStream
 * stream as the JSON object of `klinefeed decode`, on <prefix>.<SYMBOL>.<interval>, with the
 * header Nats-Msg-Id: <SYMBOL>:<interval>:<open_time> (the server drops a repeated id within the
 * stream's duplicate window). Guarantees and options: docs/cli.md ("nats").
 *
 * write() publishes the batch asynchronously and returns KF_OK only when every message of it is
 * acknowledged by the stream (stored, or recognised as a duplicate): the writer's contract is
 * that write() is durable when it returns. Anything else (an error ack, a timeout, the
 * connection down) fails the whole batch; the writer retries it after a backoff, re-publishing
 * every message with the same ids, so what was stored before the failure is dropped by the
 * server as a duplicate. With live=1 every row the sink receives (open updates too when the
 * collector runs with --all-updates) is also published as a plain core NATS message on
 * <prefix>.live.<SYMBOL>.<interval>: best effort, never waited for.
 *
 * The per-message path formats into buffers owned by the sink; libnats itself allocates one
 * message object per publish (freed on its ack), which this sink cannot avoid.
 */
#include <inttypes.h>
#include <nats/nats.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "sink/format.h"
#include "sink/sink.h"

#define NS_JSON_MAX 1024
#define NS_SUBJ_MAX 160

typedef struct ns {
    natsConnection *nc;
    jsCtx *js;
    char url[512];      /* nats://... (may hold credentials: never logged) */
    char shown[512];    /* the URL with credentials masked, for messages */
    char stream[64];    /* stream name */
    char prefix[64];    /* subject prefix */
    char subjects[128]; /* the stream's subjects */
    int64_t dup_ns;     /* duplicate window */
    int64_t max_age_ns; /* 0: no limit */
    jsRetentionPolicy retention;
    int64_t timeout_ms; /* ack wait of one batch */
    bool live;
    atomic_int ack_errors;  /* error acks since the batch began (libnats' thread) */
    char ack_err[256];      /* the first one's text (guarded by ack_errors 0 -> 1) */
    char json[NS_JSON_MAX]; /* the row being published */
    char subj[NS_SUBJ_MAX];
    char msgid[NS_SUBJ_MAX];
} ns;

/* Error text: the failing call, the status text, libnats' last error detail. */
static kf_err ns_fail(char *err, size_t errlen, const ns *s, const char *call, natsStatus st,
                      jsErrCode jerr)
{
    const char *detail = nats_GetLastError(NULL);
    snprintf(err, errlen, "nats %s: %s: %s%s%s (jetstream error %d)", s->shown, call,
             natsStatus_GetText(st), detail && *detail ? ": " : "", detail ? detail : "",
             (int)jerr);
    return KF_ERR_SINK;
}

/* Parses a duration: digits followed by ns, us, ms, s, m, h or d (plain digits: seconds). */
static bool ns_duration(const char *v, int64_t *out)
{
    char *end;
    if (*v < '0' || *v > '9')
        return false;
    unsigned long long n = strtoull(v, &end, 10);
    int64_t mul;
    if (!*end || !strcmp(end, "s"))
        mul = 1000000000LL;
    else if (!strcmp(end, "ms"))
        mul = 1000000LL;
    else if (!strcmp(end, "us"))
        mul = 1000LL;
    else if (!strcmp(end, "ns"))
        mul = 1;
    else if (!strcmp(end, "m"))
        mul = 60LL * 1000000000LL;
    else if (!strcmp(end, "h"))
        mul = 3600LL * 1000000000LL;
    else if (!strcmp(end, "d"))
        mul = 86400LL * 1000000000LL;
    else
        return false;
    if (n > (unsigned long long)(INT64_MAX / mul))
        return false;
    *out = (int64_t)n * mul;
    return true;
}

/* A NATS token: letters, digits, '-', '_' (no '.', '*', '>', spaces). */
static bool ns_token(const char *v, bool dots)
{
    if (!*v)
        return false;
    for (; *v; v++) {
        char c = *v;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || (dots && c == '.')))
            return false;
    }
    return true;
}

void kf__nats_mask(const char *spec, char *out, size_t cap)
{
    /* nats://USER:PASS@HOST or nats://TOKEN@HOST: everything before '@' hidden; any option
     * value of user=, pass=, password= or token= hidden. */
    snprintf(out, cap, "%s", spec ? spec : "(null)");
    if (!spec || strncmp(spec, "nats:", 5) != 0)
        return;
    const char *host = spec + 5;
    while (*host == '/')
        host++;
    const char *q = strchr(host, '?');
    const char *at = strchr(host, '@');
    size_t n = (size_t)snprintf(out, cap, "%.*s", (int)(host - spec), spec);
    if (at && (!q || at < q)) {
        n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, "***@");
        host = at + 1;
    }
    if (n >= cap)
        return;
    size_t hl = q ? (size_t)(q - host) : strlen(host);
    n += (size_t)snprintf(out + n, cap - n, "%.*s", (int)hl, host);
    if (!q || n >= cap)
        return;
    for (const char *p = q; *p && n < cap;) {
        const char *e = strchr(p + 1, '&');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        const char *kv = p + 1;
        bool secret = !strncmp(kv, "user=", 5) || !strncmp(kv, "pass=", 5) ||
                      !strncmp(kv, "password=", 9) || !strncmp(kv, "token=", 6);
        if (secret) {
            const char *eq = strchr(kv, '=');
            n += (size_t)snprintf(out + n, cap - n, "%c%.*s***", *p, (int)(eq + 1 - kv), kv);
        } else {
            n += (size_t)snprintf(out + n, cap - n, "%.*s", (int)len, p);
        }
        p += len;
    }
}

/* Options after '?': key=value pairs separated by '&'. */
static kf_err ns_options(ns *s, const char *q, char *err, size_t errlen)
{
    char buf[512];
    if (strlen(q) >= sizeof buf) {
        snprintf(err, errlen, "nats %s: options too long", s->shown);
        return KF_ERR_CONFIG;
    }
    snprintf(buf, sizeof buf, "%s", q);
    char *save = NULL;
    bool subjects_set = false;
    for (char *kv = strtok_r(buf, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
        char *v = strchr(kv, '=');
        if (!v) {
            snprintf(err, errlen, "nats %s: option \"%.40s\" has no value (KEY=VALUE)", s->shown,
                     kv);
            return KF_ERR_CONFIG;
        }
        *v++ = 0;
        bool ok = true;
        if (!strcmp(kv, "stream")) {
            ok = ns_token(v, false) && strlen(v) < sizeof s->stream;
            if (ok)
                snprintf(s->stream, sizeof s->stream, "%s", v);
        } else if (!strcmp(kv, "prefix")) {
            ok = ns_token(v, true) && v[0] != '.' && v[strlen(v) - 1] != '.' && !strstr(v, "..") &&
                 strlen(v) < sizeof s->prefix;
            if (ok)
                snprintf(s->prefix, sizeof s->prefix, "%s", v);
        } else if (!strcmp(kv, "subjects")) {
            ok = *v && strlen(v) < sizeof s->subjects && !strchr(v, ' ');
            if (ok) {
                snprintf(s->subjects, sizeof s->subjects, "%s", v);
                subjects_set = true;
            }
        } else if (!strcmp(kv, "duplicates")) {
            ok = ns_duration(v, &s->dup_ns) && s->dup_ns > 0;
        } else if (!strcmp(kv, "max_age")) {
            ok = ns_duration(v, &s->max_age_ns);
        } else if (!strcmp(kv, "retention")) {
            if (!strcmp(v, "limits"))
                s->retention = js_LimitsPolicy;
            else if (!strcmp(v, "interest"))
                s->retention = js_InterestPolicy;
            else if (!strcmp(v, "workqueue"))
                s->retention = js_WorkQueuePolicy;
            else
                ok = false;
        } else if (!strcmp(kv, "timeout")) {
            int64_t ns_ = 0;
            ok = ns_duration(v, &ns_) && ns_ >= 1000000LL;
            s->timeout_ms = ns_ / 1000000LL;
        } else if (!strcmp(kv, "live")) {
            ok = !strcmp(v, "0") || !strcmp(v, "1");
            s->live = v[0] == '1';
        } else {
            snprintf(err, errlen,
                     "nats %s: unknown option \"%.40s\" (stream, prefix, subjects, duplicates, "
                     "max_age, retention, timeout, live)",
                     s->shown, kv);
            return KF_ERR_CONFIG;
        }
        if (!ok) {
            bool secret = false; /* (no option carries a secret: the value is shown) */
            snprintf(err, errlen, "nats %s: bad value for option %s: \"%.60s\"", s->shown, kv,
                     secret ? "***" : v);
            return KF_ERR_CONFIG;
        }
    }
    if (!subjects_set)
        snprintf(s->subjects, sizeof s->subjects, "%s.*.*", s->prefix);
    if (s->max_age_ns && s->dup_ns > s->max_age_ns) {
        snprintf(err, errlen, "nats %s: option duplicates is longer than max_age", s->shown);
        return KF_ERR_CONFIG;
    }
    return KF_OK;
}

static void ns_ack_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    ns *s = closure;
    int expect = 0;
    if (atomic_compare_exchange_strong(&s->ack_errors, &expect, 1))
        snprintf(s->ack_err, sizeof s->ack_err, "%s (jetstream error %d)",
                 pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err), (int)pae->ErrCode);
    else
        atomic_fetch_add(&s->ack_errors, 1);
}

static void ns_free(ns *s)
{
    if (!s)
        return;
    jsCtx_Destroy(s->js);
    if (s->nc) {
        natsConnection_Close(s->nc);
        natsConnection_Destroy(s->nc);
    }
    kf__free(s);
}

/* The stream: found, or created with the configuration of the options. */
static kf_err ns_stream(ns *s, char *err, size_t errlen)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_GetStreamInfo(&si, s->js, s->stream, NULL, &jerr);
    if (st == NATS_OK) {
        jsStreamInfo_Destroy(si);
        return KF_OK;
    }
    if (st != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr)
        return ns_fail(err, errlen, s, "js_GetStreamInfo", st, jerr);
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char *subjects[1] = {s->subjects};
    cfg.Name = s->stream;
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = s->retention;
    cfg.Duplicates = s->dup_ns;
    cfg.MaxAge = s->max_age_ns;
    cfg.AllowDirect = true; /* stored(): direct gets by subject */
    jerr = 0;
    st = js_AddStream(&si, s->js, &cfg, NULL, &jerr);
    if (st != NATS_OK)
        return ns_fail(err, errlen, s, "js_AddStream", st, jerr);
    jsStreamInfo_Destroy(si);
    return KF_OK;
}

static kf_err ns_open(const char *target, void **state, char *err, size_t errlen)
{
    ns *s = kf__calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "nats: out of memory");
        return KF_ERR_NOMEM;
    }
    char spec[600];
    snprintf(spec, sizeof spec, "nats:%s", target);
    kf__sink_mask(spec, s->shown, sizeof s->shown);
    snprintf(s->stream, sizeof s->stream, "KLINES");
    snprintf(s->prefix, sizeof s->prefix, "klines");
    s->dup_ns = 2 * 60 * 1000000000LL;
    s->retention = js_LimitsPolicy;
    s->timeout_ms = 10000;
    const char *host = target;
    while (*host == '/')
        host++;
    const char *q = strchr(host, '?');
    size_t hl = q ? (size_t)(q - host) : strlen(host);
    if (!hl || hl + 8 >= sizeof s->url) {
        snprintf(err, errlen, "nats %s: no HOST:PORT (nats://HOST:PORT[?options])", s->shown);
        kf__free(s);
        return KF_ERR_CONFIG;
    }
    snprintf(s->url, sizeof s->url, "nats://%.*s", (int)hl, host);
    kf_err e = q ? ns_options(s, q + 1, err, errlen) : KF_OK;
    if (e) {
        kf__free(s);
        return e;
    }
    natsOptions *o = NULL;
    natsStatus st = natsOptions_Create(&o);
    if (st == NATS_OK)
        st = natsOptions_SetURL(o, s->url);
    if (st == NATS_OK)
        st = natsOptions_SetName(o, "klinefeed");
    if (st == NATS_OK)
        st = natsOptions_SetTimeout(o, 5000);
    if (st == NATS_OK)
        st = natsOptions_SetMaxReconnect(o, -1); /* forever: the writer retries meanwhile */
    if (st == NATS_OK)
        st = natsOptions_SetReconnectWait(o, 250);
    if (st == NATS_OK)
        st = natsConnection_Connect(&s->nc, o);
    natsOptions_Destroy(o);
    if (st != NATS_OK) {
        e = ns_fail(err, errlen, s, "connect", st, 0);
        ns_free(s);
        return e;
    }
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = s->timeout_ms;
    jo.PublishAsync.ErrHandler = ns_ack_error;
    jo.PublishAsync.ErrHandlerClosure = s;
    jo.PublishAsync.MaxPending = 65536;
    st = natsConnection_JetStream(&s->js, s->nc, &jo);
    if (st != NATS_OK) {
        e = ns_fail(err, errlen, s, "natsConnection_JetStream", st, 0);
        ns_free(s);
        return e;
    }
    if ((e = ns_stream(s, err, errlen)) != KF_OK) {
        ns_free(s);
        return e;
    }
    *state = s;
    return KF_OK;
}

/* Drops whatever is still waiting for an ack (a failed batch is published again whole). */
static void ns_drop_pending(ns *s)
{
    natsMsgList pending = {0};
    if (js_PublishAsyncGetPendingList(&pending, s->js) == NATS_OK)
        natsMsgList_Destroy(&pending);
}

static kf_err ns_write(void *state, const kf_kline *rows, size_t n, char *err, size_t errlen)
{
    ns *s = state;
    /* Not while libnats reconnects: what it would publish now waits in its reconnect buffer and
     * goes out on reconnect, one copy per retry of the batch (the server drops all but one, within
     * the duplicate window, but the copies cost). The writer retries after a backoff. */
    if (natsConnection_Status(s->nc) != NATS_CONN_STATUS_CONNECTED) {
        snprintf(err, errlen, "nats %s: not connected (reconnecting)", s->shown);
        return KF_ERR_SINK;
    }
    atomic_store(&s->ack_errors, 0);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    size_t published = 0;
    for (size_t i = 0; i < n; i++) {
        const kf_kline *k = &rows[i];
        const char *iv = k->interval;
        size_t len = kf_kline_to_json(k, s->json, sizeof s->json);
        if (!len) {
            snprintf(err, errlen, "nats %s: row %s %lld cannot be formatted", s->shown, k->symbol,
                     (long long)k->open_time);
            return KF_ERR_SINK;
        }
        if (s->live) {
            snprintf(s->subj, sizeof s->subj, "%s.live.%s.%s", s->prefix, k->symbol, iv);
            (void)natsConnection_Publish(s->nc, s->subj, s->json, (int)len); /* best effort */
        }
        if (!k->closed)
            continue;
        snprintf(s->subj, sizeof s->subj, "%s.%s.%s", s->prefix, k->symbol, iv);
        snprintf(s->msgid, sizeof s->msgid, "%s:%s:%" PRId64, k->symbol, iv, k->open_time);
        po.MsgId = s->msgid;
        natsStatus st = js_PublishAsync(s->js, s->subj, s->json, (int)len, &po);
        if (st != NATS_OK) {
            ns_drop_pending(s);
            return ns_fail(err, errlen, s, "js_PublishAsync", st, 0);
        }
        published++;
    }
    if (!published)
        return KF_OK;
    jsPubOptions_Init(&po);
    po.MaxWait = s->timeout_ms;
    natsStatus st = js_PublishAsyncComplete(s->js, &po);
    if (st != NATS_OK) {
        ns_drop_pending(s);
        snprintf(err, errlen, "nats %s: %zu publishes not acknowledged within %lld ms: %s",
                 s->shown, published, (long long)s->timeout_ms, natsStatus_GetText(st));
        return KF_ERR_SINK;
    }
    int bad = atomic_load(&s->ack_errors);
    if (bad) {
        snprintf(err, errlen, "nats %s: %d of %zu publishes refused: %s", s->shown, bad, published,
                 s->ack_err);
        return KF_ERR_SINK;
    }
    return KF_OK;
}

static kf_err ns_flush(void *state, char *err, size_t errlen)
{
    ns *s = state;
    natsStatus st = natsConnection_FlushTimeout(s->nc, s->timeout_ms);
    if (st != NATS_OK)
        return ns_fail(err, errlen, s, "flush", st, 0);
    return KF_OK;
}

static void ns_close(void *state)
{
    ns_free(state);
}

/* Reads the open time of a stored message (the JSON key fields); false for anything else. */
static bool ns_msg_time(natsMsg *m, int64_t *t)
{
    kf__line_key key;
    const char *d = natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);
    if (!d || len <= 0 || !kf__jsonl_key(d, (size_t)len, &key) || !key.closed)
        return false;
    *t = key.open_time;
    return true;
}

static kf_err ns_last_closed(void *state, const char *symbol, const char *interval,
                             int64_t *open_time, int *found, char *err, size_t errlen)
{
    ns *s = state;
    *found = 0;
    snprintf(s->subj, sizeof s->subj, "%s.%s.%s", s->prefix, symbol, interval);
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    natsStatus st = js_GetLastMsg(&m, s->js, s->stream, s->subj, NULL, &jerr);
    if (st == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr)
        return KF_OK;
    if (st != NATS_OK)
        return ns_fail(err, errlen, s, "js_GetLastMsg", st, jerr);
    if (ns_msg_time(m, open_time))
        *found = 1;
    natsMsg_Destroy(m);
    return KF_OK;
}

static int ns_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Every closed candle of the subject: a walk of direct gets by subject (one request per
 * message), sorted (a repair publishes an older candle after newer ones), deduplicated (a
 * re-publish after the duplicate window stored a second copy). */
static kf_err ns_stored(void *state, const char *symbol, const char *interval, int64_t from,
                        kf__stored_fn fn, void *ud, char *err, size_t errlen)
{
    ns *s = state;
    snprintf(s->subj, sizeof s->subj, "%s.%s.%s", s->prefix, symbol, interval);
    size_t n = 0, cap = 0;
    int64_t *t = NULL;
    uint64_t seq = 1;
    kf_err e = KF_OK;
    for (;;) {
        jsDirectGetMsgOptions dg;
        jsDirectGetMsgOptions_Init(&dg);
        dg.Sequence = seq;
        dg.NextBySubject = s->subj;
        natsMsg *m = NULL;
        natsStatus st = js_DirectGetMsg(&m, s->js, s->stream, NULL, &dg);
        if (st == NATS_NOT_FOUND)
            break;
        if (st != NATS_OK) {
            e = ns_fail(err, errlen, s, "js_DirectGetMsg", st, 0);
            break;
        }
        const char *sq = NULL;
        uint64_t got = 0;
        if (natsMsgHeader_Get(m, "Nats-Sequence", &sq) == NATS_OK && sq)
            got = strtoull(sq, NULL, 10);
        int64_t ot;
        if (ns_msg_time(m, &ot) && ot >= from) {
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 1024;
                int64_t *nt = kf__realloc(t, nc * sizeof *t);
                if (!nt) {
                    natsMsg_Destroy(m);
                    snprintf(err, errlen, "nats %s: out of memory reading %s", s->shown, s->subj);
                    e = KF_ERR_NOMEM;
                    break;
                }
                t = nt;
                cap = nc;
            }
            t[n++] = ot;
        }
        natsMsg_Destroy(m);
        if (!got) {
            snprintf(err, errlen, "nats %s: direct get of %s without Nats-Sequence", s->shown,
                     s->subj);
            e = KF_ERR_SINK;
            break;
        }
        seq = got + 1;
    }
    if (!e && n) {
        qsort(t, n, sizeof *t, ns_cmp);
        for (size_t i = 0; i < n; i++)
            if ((i == 0 || t[i] != t[i - 1]) && fn(ud, t[i]))
                break;
    }
    kf__free(t);
    return e;
}

const kf__sink_ops kf__sink_nats = {
    .version = KF__SINK_OPS_VERSION,
    .scheme = "nats",
    .open = ns_open,
    .write = ns_write,
    .flush = ns_flush,
    .close = ns_close,
    .last_closed = ns_last_closed,
    .stored = ns_stored,
};
