/*
 * GET /healthz and GET /readyz.
 *
 * /healthz: the process answers (200 {"status":"ok"}): for a supervisor's liveness probe.
 *
 * /readyz: 200 when the collector is collecting, else 503, both with a JSON body that lists
 * every problem, naming the connection, stream or store:
 *  - the collector is running (started, not stopping);
 *  - every connection is open and every SUBSCRIBE of it acknowledged;
 *  - every stream is fresh: a WebSocket update of it came within its interval plus 30 s. Binance
 *    sends a closing update at every interval boundary (within ~2 s) and the next candle's first
 *    update right after, even for a symbol with no trade, so a stream that is silent for longer
 *    than one interval has lost its feed; 30 s (the default liveness timeout) covers the closing
 *    update's lag and a boundary that falls just after the last update. A stream that has had
 *    no update yet is not stale before the same bound has passed since its connection opened.
 *    (1M, a calendar month: 31 days.)
 *  - every store is open and its last write did not fail (a locked or unreachable store keeps
 *    its rows queued and retries; it is named until a write succeeds).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define FRESH_SLACK_MS 30000
/* Problems named in a body; the rest are counted. */
#define MAX_NAMED 100

void http_healthz(kf_collector *c, const char *query, http_reply *r)
{
    (void)c;
    (void)query;
    http_buf_printf(&r->body, "{\"status\":\"ok\"}\n");
}

/* The bound of freshness of interval i, ms. */
static int64_t fresh_bound_ms(int interval_index)
{
    int64_t iv = kf_interval_ms(interval_index);
    if (iv <= 0)
        iv = 31LL * 86400000;
    return iv + FRESH_SLACK_MS;
}

typedef struct problems {
    http_buf *b;
    size_t n;
} problems;

/* Appends one {"kind":...,"name":...,"why":...} entry (name and why are plain ASCII but for a
 * store's spec, whose '"' and '\' are escaped). */
static void problem(problems *p, const char *kind, const char *name, const char *why)
{
    p->n++;
    if (p->n > MAX_NAMED)
        return;
    http_buf_printf(p->b, "%s\n  {\"kind\":\"%s\",\"name\":\"", p->n > 1 ? "," : "", kind);
    for (const char *s = name; *s; s++) {
        if (*s == '"' || *s == '\\')
            http_buf_printf(p->b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            http_buf_printf(p->b, "\\u%04x", (unsigned)(unsigned char)*s);
        else
            http_buf_put(p->b, s, 1);
    }
    http_buf_printf(p->b, "\",\"why\":\"%s\"}", why);
}

void http_readyz(kf_collector *c, const char *query, http_reply *r)
{
    (void)query;
    http_buf body = {0};
    problems p = {.b = &body};
    char name[64], why[256];
    if (!kf_running(c))
        problem(&p, "collector", "collector", "not running (starting, retrying or stopping)");

    size_t nconn = kf_connection_count(c);
    int64_t *conn_age = calloc(nconn ? nconn : 1, sizeof *conn_age);
    if (!conn_age) {
        r->body.oom = true;
        return;
    }
    for (size_t i = 0; i < nconn; i++) {
        kf_connection_info ci;
        kf_connection_info_get(c, i, &ci, sizeof ci);
        conn_age[i] = ci.age_ms;
        if (ci.connected && ci.subscribed)
            continue;
        snprintf(name, sizeof name, "%zu", i);
        snprintf(why, sizeof why, "%s (streams %zu..%zu)",
                 ci.connected ? "open, SUBSCRIBE not acknowledged yet" : "not connected",
                 ci.first_stream, ci.first_stream + ci.streams - 1);
        problem(&p, "connection", name, why);
    }

    for (size_t i = 0; i < kf_stream_count(c); i++) {
        kf_stream_info si;
        if (kf_stream_info_get(c, i, &si, sizeof si) != KF_OK)
            continue;
        int64_t bound = fresh_bound_ms(kf_interval_index(si.interval, strlen(si.interval)));
        if (si.state == KF_STREAM_DELISTED) /* its symbol is no longer traded: not expected */
            continue;
        if (si.state == KF_STREAM_DOWN) {
            snprintf(why, sizeof why, "its connection %zu is not subscribed", si.connection);
        } else if (si.last_update_age_ms > bound) {
            snprintf(why, sizeof why,
                     "no update for %" PRId64 " s (bound %" PRId64 " s: its interval + %d s)",
                     si.last_update_age_ms / 1000, bound / 1000, FRESH_SLACK_MS / 1000);
        } else if (si.last_update_age_ms < 0 && si.connection < nconn &&
                   conn_age[si.connection] > bound) {
            snprintf(why, sizeof why,
                     "no update since its connection opened %" PRId64 " s ago (bound %" PRId64
                     " s)",
                     conn_age[si.connection] / 1000, bound / 1000);
        } else {
            continue;
        }
        problem(&p, "stream", kf_stream_name(c, i), why);
    }
    free(conn_age);

    for (size_t i = 0; i < kf_sink_count(c); i++) {
        kf_sink_info k;
        if (kf_sink_info_get(c, i, &k, sizeof k) != KF_OK || k.healthy)
            continue;
        if (!k.open)
            snprintf(why, sizeof why, "not open");
        else
            snprintf(why, sizeof why,
                     "its last write failed (retrying; %zu rows queued of %zu, %" PRIu64 " errors)",
                     k.queue_rows, k.queue_cap, k.errors);
        problem(&p, "store", k.spec, why);
    }

    r->status = p.n ? 503 : 200;
    http_buf_printf(&r->body, "{\"status\":\"%s\",\"problems\":%zu,\"details\":[",
                    p.n ? "unready" : "ready", p.n);
    if (body.p)
        http_buf_put(&r->body, body.p, body.len);
    if (p.n > MAX_NAMED)
        http_buf_printf(&r->body, ",\n  {\"kind\":\"more\",\"name\":\"\",\"why\":\"%zu more\"}",
                        p.n - MAX_NAMED);
    http_buf_printf(&r->body, "%s]}\n", p.n ? "\n" : "");
    r->body.oom |= body.oom;
    free(body.p);
}
