/*
 * A shard: one WebSocket connection and the streams subscribed on it. Sends
 * the SUBSCRIBE batches paced under the exchange's message rate, tracks each
 * id until acknowledged, and routes every text message down the data path:
 * decode -> per-stream state and ring -> callbacks -> sinks.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "collector/collector.h"
#include "core/alloc.h"
#include "decode/decode.h"

kf_err kf__shard_init(kf__shard *sh, struct kf_collector *col, size_t index, size_t first,
                      size_t count)
{
    memset(sh, 0, sizeof *sh);
    sh->col = col;
    sh->index = index;
    sh->first = first;
    sh->count = count;
    size_t per = col->cfg->names_per_subscribe;
    sh->batches = (count + per - 1) / per;
    sh->batch_acked = kf__calloc(sh->batches, 1);
    sh->req_cap = per * (KF__STREAM_NAME_MAX + 3) + 128;
    sh->req = kf__malloc(sh->req_cap);
    return sh->batch_acked && sh->req ? KF_OK : KF_ERR_NOMEM;
}

void kf__shard_free(kf__shard *sh)
{
    kf__free(sh->batch_acked);
    kf__free(sh->req);
    sh->batch_acked = NULL;
    sh->req = NULL;
}

/* ---- subscribing ---- */

static void shard_send_batch(kf__shard *sh)
{
    struct kf_collector *c = sh->col;
    size_t per = c->cfg->names_per_subscribe;
    size_t b = sh->sent;
    size_t n = 0;
    int len = snprintf(sh->req, sh->req_cap, "{\"method\":\"SUBSCRIBE\",\"params\":[");
    for (size_t i = sh->next; i < sh->count && n < per; i++, n++) {
        const kf__stream *s = &c->streams[sh->first + i];
        len +=
            snprintf(sh->req + len, sh->req_cap - (size_t)len, "%s\"%s\"", n ? "," : "", s->name);
    }
    len += snprintf(sh->req + len, sh->req_cap - (size_t)len, "],\"id\":%" PRIu64 "}",
                    sh->id_base + b);
    kf_err e = kf__conn_send_text(sh->conn, sh->req, (size_t)len);
    if (e) {
        kf__log(&c->log, KF_LOG_ERROR, "msg=\"SUBSCRIBE not sent\" shard=%zu err=\"%s\"", sh->index,
                kf_strerror(e));
        return;
    }
    kf__log(&c->log, KF_LOG_DEBUG, "msg=\"SUBSCRIBE sent\" shard=%zu id=%" PRIu64 " streams=%zu",
            sh->index, sh->id_base + b, n);
    sh->next += n;
    sh->sent++;
}

static void shard_on_pace(uv_timer_t *t)
{
    kf__shard *sh = t->data;
    if (!sh->conn || kf__conn_get_state(sh->conn) != KF__CONN_OPEN || sh->sent >= sh->batches) {
        uv_timer_stop(t);
        return;
    }
    shard_send_batch(sh);
    if (sh->sent >= sh->batches)
        uv_timer_stop(t);
}

static void shard_on_open(void *ud, kf__conn *conn)
{
    kf__shard *sh = ud;
    struct kf_collector *c = sh->col;
    (void)conn;
    sh->opened = true;
    sh->last_error[0] = 0;
    sh->next = sh->sent = sh->acked = 0;
    memset(sh->batch_acked, 0, sh->batches);
    sh->id_base = c->next_id;
    c->next_id += sh->batches;
    KF__STAT_INC(c, connects);
    kf__log(&c->log, KF_LOG_INFO, "msg=\"connected\" shard=%zu url=%s streams=%zu batches=%zu",
            sh->index, kf__conn_url(sh->conn), sh->count, sh->batches);
    kf__collector_shard_opened(c, sh);
    /* First batch at once, then one every 1/rate seconds: never over the message rate. */
    unsigned rate = c->cfg->messages_per_second;
    uint64_t period = (1000 + rate - 1) / rate;
    shard_send_batch(sh);
    if (sh->sent < sh->batches)
        uv_timer_start(&sh->pace, shard_on_pace, period, period);
}

static void shard_on_ack(kf__shard *sh, uint64_t id)
{
    struct kf_collector *c = sh->col;
    KF__STAT_INC(c, acks);
    if (id < sh->id_base || id - sh->id_base >= sh->batches) {
        kf__log(&c->log, KF_LOG_DEBUG, "msg=\"acknowledgement for an unknown id\" id=%" PRIu64, id);
        return;
    }
    size_t b = (size_t)(id - sh->id_base);
    if (sh->batch_acked[b])
        return;
    sh->batch_acked[b] = 1;
    if (++sh->acked == sh->batches && !sh->subscribed) {
        sh->subscribed = true;
        size_t n = atomic_fetch_add(&c->shards_subscribed, 1) + 1;
        kf__log(&c->log, KF_LOG_INFO, "msg=\"subscribed\" shard=%zu streams=%zu", sh->index,
                sh->count);
        if (n == c->nshards)
            kf__log(&c->log, KF_LOG_INFO,
                    "msg=\"all streams subscribed\" streams=%zu connections=%zu", c->nstreams,
                    c->nshards);
    }
}

static void shard_on_error(kf__shard *sh, const kf__frame *f)
{
    struct kf_collector *c = sh->col;
    KF__STAT_INC(c, exchange_errors);
    int ml = (int)(f->err_msg_len > 300 ? 300 : f->err_msg_len);
    if (f->has_id) {
        kf__log(&c->log, KF_LOG_ERROR,
                "msg=\"exchange error reply\" shard=%zu id=%" PRIu64 " code=%" PRId64
                " error=\"%.*s\"",
                sh->index, f->id, f->err_code, ml, f->err_msg ? f->err_msg : "");
        snprintf(sh->last_error, sizeof sh->last_error,
                 "request %" PRIu64 " refused with code %" PRId64 ": %.*s", f->id, f->err_code, ml,
                 f->err_msg ? f->err_msg : "");
        kf__collector_set_error(c, "%s: %s", kf__conn_url(sh->conn), sh->last_error);
    } else {
        kf__log(&c->log, KF_LOG_ERROR,
                "msg=\"exchange error reply\" shard=%zu code=%" PRId64 " error=\"%.*s\"", sh->index,
                f->err_code, ml, f->err_msg ? f->err_msg : "");
    }
}

/* ---- the data path ---- */

static void shard_on_malformed(kf__shard *sh, const kf__frame *f, const char *data, size_t len)
{
    struct kf_collector *c = sh->col;
    KF__STAT_INC(c, parse_errors);
    uint64_t n = atomic_load_explicit(&c->st.parse_errors, memory_order_relaxed);
    if (n <= 10 || n % 10000 == 0) {
        char sample[300];
        kf__log_sample(data, len, sample, sizeof sample);
        kf__log(&c->log, KF_LOG_WARN,
                "msg=\"malformed frame skipped\" shard=%zu why=\"%s\" bytes=%zu count=%" PRIu64
                " sample=%s",
                sh->index, f->why ? f->why : "?", len, n, sample);
    }
}

static void shard_on_kline(kf__shard *sh, const kf_kline *k)
{
    struct kf_collector *c = sh->col;
    const kf_config *cfg = c->cfg;
    KF__STAT_INC(c, updates);
    long si = kf__stream_index_find(&c->index, c->streams, k->symbol, strlen(k->symbol),
                                    k->interval_index);
    if (si < 0) {
        KF__STAT_INC(c, unknown_streams);
        return;
    }
    kf__stream *s = &c->streams[si];
    kf__apply r = kf__stream_apply(s, k, NULL);
    if (cfg->on_kline)
        cfg->on_kline(cfg->on_kline_ud, k);
    if (r == KF__APPLY_CLOSED) {
        KF__STAT_INC(c, closed);
        if (cfg->on_closed)
            cfg->on_closed(cfg->on_closed_ud, k);
        for (size_t i = 0; i < c->nwriters; i++)
            kf__writer_push(c->writers[i], k);
    } else if (r == KF__APPLY_DUPLICATE) {
        KF__STAT_INC(c, duplicates);
    } else if (r == KF__APPLY_UPDATE && cfg->sink_all_updates) {
        for (size_t i = 0; i < c->nwriters; i++)
            kf__writer_push(c->writers[i], k);
    }
}

static void shard_on_text(void *ud, kf__conn *conn, const char *data, size_t len)
{
    kf__shard *sh = ud;
    struct kf_collector *c = sh->col;
    (void)conn;
    KF__STAT_INC(c, frames);
    KF__STAT_ADD(c, bytes, len);
    if (c->cfg->on_raw)
        c->cfg->on_raw(c->cfg->on_raw_ud, data, len);
    kf__frame f;
    kf_kline k;
    switch (kf__decode(data, len, &f, &k)) {
    case KF__FRAME_KLINE:
        shard_on_kline(sh, &k);
        break;
    case KF__FRAME_ACK:
        shard_on_ack(sh, f.id);
        break;
    case KF__FRAME_RESULT:
        kf__log(&c->log, KF_LOG_DEBUG, "msg=\"result reply\" shard=%zu id=%" PRIu64, sh->index,
                f.id);
        break;
    case KF__FRAME_ERROR:
        shard_on_error(sh, &f);
        break;
    case KF__FRAME_EVENT:
        KF__STAT_INC(c, other_events);
        break;
    case KF__FRAME_MALFORMED:
        shard_on_malformed(sh, &f, data, len);
        break;
    }
}

static void shard_on_closed(void *ud, kf__conn *conn, kf_err err, const char *why)
{
    kf__shard *sh = ud;
    struct kf_collector *c = sh->col;
    (void)conn;
    if (sh->pace_init)
        uv_timer_stop(&sh->pace);
    if (sh->subscribed) {
        sh->subscribed = false;
        atomic_fetch_sub(&c->shards_subscribed, 1);
    }
    if (sh->opened)
        KF__STAT_INC(c, disconnects);
    sh->opened = false;
    sh->closed = true;
    kf__collector_shard_closed(c, sh, err, why);
}

static const kf__conn_handler shard_handler = {
    .on_open = shard_on_open,
    .on_text = shard_on_text,
    .on_closed = shard_on_closed,
};

kf_err kf__shard_connect(kf__shard *sh)
{
    struct kf_collector *c = sh->col;
    if (!sh->pace_init) {
        uv_timer_init(&c->loop, &sh->pace);
        sh->pace.data = sh;
        sh->pace_init = true;
    }
    kf__conn_opts o = {
        .url = &c->ws_url,
        .path = c->ws_path,
        .ssl_ctx = c->ssl_ctx,
        .max_message = c->cfg->max_message_size,
        .connect_timeout_ms = c->cfg->connect_timeout_ms,
        .log = &c->log,
        .pings = &c->st.pings,
    };
    sh->closed = false;
    sh->conn = kf__conn_new(&c->loop, &o, &shard_handler, sh);
    if (!sh->conn)
        return KF_ERR_NOMEM;
    return kf__conn_open(sh->conn);
}

void kf__shard_close(kf__shard *sh)
{
    if (sh->pace_init) {
        uv_timer_stop(&sh->pace);
        uv_close((uv_handle_t *)&sh->pace, NULL);
        sh->pace_init = false;
    }
    if (sh->conn)
        kf__conn_close(sh->conn, 1000, "client stopping");
}
