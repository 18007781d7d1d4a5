/*
 * GET /metrics: the Prometheus text exposition (format 0.0.4) of a collector, from the public
 * queries only. Every counter of the library's list (kf_stats_count/name/help/kind/value, made
 * from KF_STATS_FIELDS) as klinefeed_<name>_total (a gauge of the list: klinefeed_<name>), then
 * the state no counter holds: connections, streams (one label value per stream: bounded by the
 * configuration), stores, and klinefeed_build_info.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define PREFIX "klinefeed_"

/* A HELP text: backslash and newline escaped. */
static void put_help(http_buf *b, const char *name, const char *help)
{
    http_buf_printf(b, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            http_buf_put(b, "\\\\", 2);
        else if (*p == '\n')
            http_buf_put(b, "\\n", 2);
        else
            http_buf_put(b, p, 1);
    }
    http_buf_put(b, "\n", 1);
}

static void put_family(http_buf *b, const char *name, const char *type, const char *help)
{
    put_help(b, name, help);
    http_buf_printf(b, "# TYPE %s %s\n", name, type);
}

/* A label value: backslash, double quote and newline escaped. */
static void put_label_value(http_buf *b, const char *v)
{
    for (const char *p = v; *p; p++) {
        if (*p == '\\' || *p == '"')
            http_buf_printf(b, "\\%c", *p);
        else if (*p == '\n')
            http_buf_put(b, "\\n", 2);
        else
            http_buf_put(b, p, 1);
    }
}

/* name{label="value"} number */
static void put_sample(http_buf *b, const char *name, const char *label, const char *value,
                       double v)
{
    http_buf_printf(b, "%s", name);
    if (label) {
        http_buf_printf(b, "{%s=\"", label);
        put_label_value(b, value);
        http_buf_put(b, "\"}", 2);
    }
    if (isnan(v))
        http_buf_printf(b, " NaN\n");
    else
        http_buf_printf(b, " %.15g\n", v);
}

static void put_u64(http_buf *b, const char *name, uint64_t v)
{
    http_buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

static void metrics_counters(kf_collector *c, http_buf *b)
{
    kf_stats s;
    memset(&s, 0, sizeof s);
    kf_stats_get(c, &s, sizeof s);
    for (size_t i = 0; i < kf_stats_count(); i++) {
        char name[128];
        bool counter = kf_stats_kind(i) == KF_STAT_COUNTER;
        snprintf(name, sizeof name, PREFIX "%s%s", kf_stats_name(i), counter ? "_total" : "");
        put_family(b, name, counter ? "counter" : "gauge", kf_stats_help(i));
        put_u64(b, name, kf_stats_value(&s, sizeof s, i));
    }
}

static void metrics_connections(kf_collector *c, http_buf *b)
{
    size_t n = kf_connection_count(c);
    kf_connection_info *ci = calloc(n ? n : 1, sizeof *ci);
    if (!ci) {
        b->oom = true;
        return;
    }
    size_t up = 0, subscribed = 0;
    for (size_t i = 0; i < n; i++) {
        kf_connection_info_get(c, i, &ci[i], sizeof ci[i]);
        up += ci[i].connected;
        subscribed += ci[i].subscribed;
    }
    put_family(b, PREFIX "running", "gauge", "1 from a successful start to the stop");
    put_u64(b, PREFIX "running", kf_running(c));
    put_family(b, PREFIX "connections", "gauge", "WebSocket connections configured (shards)");
    put_u64(b, PREFIX "connections", n);
    put_family(b, PREFIX "connections_up", "gauge", "WebSocket connections open now");
    put_u64(b, PREFIX "connections_up", up);
    put_family(b, PREFIX "connections_subscribed", "gauge",
               "WebSocket connections with every SUBSCRIBE acknowledged");
    put_u64(b, PREFIX "connections_subscribed", subscribed);
    put_family(b, PREFIX "connection_up", "gauge", "1 when the connection is open and subscribed");
    char idx[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(idx, sizeof idx, "%zu", i);
        put_sample(b, PREFIX "connection_up", "connection", idx,
                   ci[i].connected && ci[i].subscribed);
    }
    put_family(b, PREFIX "connection_age_seconds", "gauge",
               "seconds since the connection opened (NaN while it is down)");
    for (size_t i = 0; i < n; i++) {
        snprintf(idx, sizeof idx, "%zu", i);
        put_sample(b, PREFIX "connection_age_seconds", "connection", idx,
                   ci[i].age_ms >= 0 ? (double)ci[i].age_ms / 1000.0 : NAN);
    }
    free(ci);
}

static void metrics_streams(kf_collector *c, http_buf *b)
{
    size_t n = kf_stream_count(c);
    kf_stream_info *si = calloc(n ? n : 1, sizeof *si);
    if (!si) {
        b->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        kf_stream_info_get(c, i, &si[i], sizeof si[i]);
    put_family(b, PREFIX "stream_last_closed_open_time_seconds", "gauge",
               "open time (unix seconds) of the newest closed candle of the stream (NaN: none)");
    for (size_t i = 0; i < n; i++)
        put_sample(b, PREFIX "stream_last_closed_open_time_seconds", "stream", kf_stream_name(c, i),
                   si[i].has_closed ? (double)si[i].last_closed_open_time / 1000.0 : NAN);
    put_family(b, PREFIX "stream_last_update_age_seconds", "gauge",
               "seconds since the stream's last WebSocket update (NaN: none yet)");
    for (size_t i = 0; i < n; i++)
        put_sample(b, PREFIX "stream_last_update_age_seconds", "stream", kf_stream_name(c, i),
                   si[i].last_update_age_ms >= 0 ? (double)si[i].last_update_age_ms / 1000.0 : NAN);
    put_family(b, PREFIX "stream_live", "gauge",
               "1 when the stream's connection is subscribed and has delivered it");
    for (size_t i = 0; i < n; i++)
        put_sample(b, PREFIX "stream_live", "stream", kf_stream_name(c, i),
                   si[i].state == KF_STREAM_LIVE);
    put_family(b, PREFIX "stream_delisted", "gauge",
               "1 when the stream's symbol was delisted while running (--symbols ALL re-read)");
    for (size_t i = 0; i < n; i++)
        put_sample(b, PREFIX "stream_delisted", "stream", kf_stream_name(c, i),
                   si[i].state == KF_STREAM_DELISTED);
    put_family(b, PREFIX "stream_missing", "gauge",
               "closed candles of the stream known missing now (asked of REST)");
    for (size_t i = 0; i < n; i++)
        put_sample(b, PREFIX "stream_missing", "stream", kf_stream_name(c, i),
                   (double)si[i].missing);
    free(si);
}

static void metrics_stores(kf_collector *c, http_buf *b)
{
    size_t n = kf_sink_count(c);
    kf_sink_info *k = calloc(n ? n : 1, sizeof *k);
    if (!k) {
        b->oom = true;
        return;
    }
    for (size_t i = 0; i < n; i++)
        kf_sink_info_get(c, i, &k[i], sizeof k[i]);
    put_family(b, PREFIX "store_queue_rows", "gauge", "rows waiting in the store's queue");
    for (size_t i = 0; i < n; i++)
        put_sample(b, PREFIX "store_queue_rows", "store", k[i].spec, (double)k[i].queue_rows);
    put_family(b, PREFIX "store_queue_capacity_rows", "gauge", "capacity of the store's queue");
    for (size_t i = 0; i < n; i++)
        put_sample(b, PREFIX "store_queue_capacity_rows", "store", k[i].spec,
                   (double)k[i].queue_cap);
    put_family(b, PREFIX "store_rows_total", "counter", "rows the store took since the start");
    for (size_t i = 0; i < n; i++)
        put_sample(b, PREFIX "store_rows_total", "store", k[i].spec, (double)k[i].rows);
    put_family(b, PREFIX "store_errors_total", "counter",
               "failed writes and refused rows of the store since the start");
    for (size_t i = 0; i < n; i++)
        put_sample(b, PREFIX "store_errors_total", "store", k[i].spec, (double)k[i].errors);
    put_family(b, PREFIX "store_healthy", "gauge",
               "1 when the store is open and its last write did not fail");
    for (size_t i = 0; i < n; i++)
        put_sample(b, PREFIX "store_healthy", "store", k[i].spec, k[i].healthy);
    free(k);
}

void http_metrics(kf_collector *c, const char *query, http_reply *r)
{
    (void)query;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
    http_buf *b = &r->body;
    metrics_counters(c, b);
    metrics_connections(c, b);
    metrics_streams(c, b);
    metrics_stores(c, b);
    put_family(b, PREFIX "build_info", "gauge",
               "1; the labels name the daemon's and the linked library's versions");
    http_buf_printf(b, PREFIX "build_info{version=\"%s\",library=\"%s\"} 1\n", KF_VERSION_STRING,
                    kf_version());
}
