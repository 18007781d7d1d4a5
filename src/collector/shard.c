/*
 * A shard: the streams carried by one connection at a time, and that connection's life.
 *
 * Per connection (a "link"): SUBSCRIBE batches paced under the exchange's message rate, each
 * id tracked until acknowledged, and every text message routed down the data path:
 * decode -> per-stream state and ring -> callbacks -> sinks.
 *
 * Per shard: reconnect after a loss (exponential backoff with full jitter, within the
 * new-connection budget), liveness (our pings; no frame for dead_after_ms = dead), rotation
 * before the maximum age (make-before-break: the replacement is subscribed and delivering
 * before the old link is retired; never more than two links), and silent-stream reports.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector/shard.h"
#include "core/alloc.h"
#include "core/rng.h"
#include "decode/decode.h"

/* How long a closing update may lag its successor's first update before REST is asked. */
#define KF__CLOSE_GRACE_MS 5000

static void shard_schedule_retry(kf__shard *sh);
static kf_err shard_open_link(kf__shard *sh, int slot);

kf_err kf__shard_init(kf__shard *sh, const kf__shard_env *env, size_t index, size_t first,
                      size_t count, size_t cap)
{
    memset(sh, 0, sizeof *sh);
    sh->env = *env;
    sh->index = index;
    sh->first = first;
    sh->count = count;
    sh->cap = cap > count ? cap : count;
    size_t n = sh->cap ? sh->cap : 1;
    size_t per = env->set.names_per_subscribe;
    sh->max_batches = (n + per - 1) / per;
    sh->req_cap = per * (KF__STREAM_NAME_MAX + 3) + 128;
    sh->req = kf__malloc(sh->req_cap);
    sh->last_seen = kf__calloc(n, sizeof *sh->last_seen);
    sh->last_event = kf__calloc(n, sizeof *sh->last_event);
    sh->stale = kf__calloc(n, 1);
    sh->await_close = kf__calloc(n, sizeof *sh->await_close);
    sh->await_deadline = kf__calloc(n, sizeof *sh->await_deadline);
    bool ok = sh->req && sh->last_seen && sh->last_event && sh->stale && sh->await_close &&
              sh->await_deadline;
    for (int i = 0; i < 2; i++) {
        sh->link[i].sh = sh;
        sh->link[i].slot = i;
        sh->link[i].batch_acked = kf__calloc(sh->max_batches, 1);
        sh->link[i].sub = kf__calloc(n, 1);
        ok = ok && sh->link[i].batch_acked && sh->link[i].sub;
    }
    return ok ? KF_OK : KF_ERR_NOMEM;
}

void kf__shard_free(kf__shard *sh)
{
    for (int i = 0; i < 2; i++) {
        kf__free(sh->link[i].batch_acked);
        sh->link[i].batch_acked = NULL;
        kf__free(sh->link[i].sub);
        sh->link[i].sub = NULL;
    }
    kf__free(sh->req);
    kf__free(sh->last_seen);
    kf__free(sh->last_event);
    sh->last_event = NULL;
    kf__free(sh->stale);
    kf__free(sh->await_close);
    kf__free(sh->await_deadline);
    sh->await_close = NULL;
    sh->await_deadline = NULL;
    sh->req = NULL;
    sh->last_seen = NULL;
    sh->stale = NULL;
}

static uint64_t shard_now(const kf__shard *sh)
{
    return uv_now(sh->env.loop);
}

/* The shard's latest error, formatted for the owner (kf_errmsg). */
static void shard_error(kf__shard *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void shard_error(kf__shard *sh, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sh->env.ops->error(sh->env.owner, sh->index, msg);
}

/* ---- subscribing ---- */

static bool shard_stream_delisted(const kf__shard *sh, size_t rel)
{
    return atomic_load_explicit(&sh->env.streams[sh->first + rel].delisted, memory_order_relaxed);
}

static void link_check_subscribed(kf__link *l);

/* Sends one request naming up to names_per_subscribe streams: SUBSCRIBE (subscribe true) for
 * streams that are wanted and not yet named on this link, or UNSUBSCRIBE for delisted ones that
 * were. A SUBSCRIBE of the first subscription takes its id from the link's block, any other
 * request one id of its own. false when there was nothing to send. */
static bool link_send_request(kf__link *l, bool subscribe)
{
    kf__shard *sh = l->sh;
    kf__shard_env *env = &sh->env;
    size_t per = env->set.names_per_subscribe;
    size_t n = 0;
    int len = snprintf(sh->req, sh->req_cap, "{\"method\":\"%s\",\"params\":[",
                       subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
    for (size_t i = 0; i < sh->count && n < per; i++) {
        if (shard_stream_delisted(sh, i) != !subscribe || (l->sub[i] != 0) != !subscribe)
            continue;
        const kf__stream *s = &env->streams[sh->first + i];
        len +=
            snprintf(sh->req + len, sh->req_cap - (size_t)len, "%s\"%s\"", n ? "," : "", s->name);
        l->sub[i] = subscribe;
        n++;
    }
    bool first = subscribe && l->sent < l->batches;
    if (!n) {
        if (first) { /* planned at open, its streams delisted since: nothing to acknowledge */
            for (size_t b = l->sent; b < l->batches; b++)
                if (!l->batch_acked[b]) {
                    l->batch_acked[b] = 1;
                    l->acked++;
                }
            l->sent = l->batches;
            link_check_subscribed(l);
        }
        return false;
    }
    uint64_t id = first ? l->id_base + l->sent : (*env->next_id)++;
    len += snprintf(sh->req + len, sh->req_cap - (size_t)len, "],\"id\":%" PRIu64 "}", id);
    kf_err e = kf__conn_send_text(l->conn, sh->req, (size_t)len);
    if (e) {
        kf__log(env->log, KF_LOG_ERROR, "msg=\"%s not sent\" shard=%zu err=\"%s\"",
                subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE", sh->index, kf_strerror(e));
        return true; /* the connection is failing: its close resubscribes everything */
    }
    kf__log(env->log, first ? KF_LOG_DEBUG : KF_LOG_INFO,
            "msg=\"%s sent\" shard=%zu id=%" PRIu64 " streams=%zu%s",
            subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE", sh->index, id, n,
            first ? "" : " while_running=1");
    if (first)
        l->sent++;
    return true;
}

static void link_on_pace(uv_timer_t *t);

/* Sends the link's next request if the message rate allows it now, else arms the pacer: the
 * first at once, then at most one every 1/rate seconds. SUBSCRIBE before UNSUBSCRIBE. */
static void link_pump(kf__link *l)
{
    kf__shard *sh = l->sh;
    if (!l->conn || !l->opened || l->closed || kf__conn_get_state(l->conn) != KF__CONN_OPEN ||
        !l->dirty)
        return;
    unsigned rate = sh->env.set.messages_per_second;
    uint64_t period = (1000 + rate - 1) / rate;
    uint64_t now = shard_now(sh);
    if (l->last_send && now - l->last_send < period) {
        if (!uv_is_active((uv_handle_t *)&l->pace))
            uv_timer_start(&l->pace, link_on_pace, period - (now - l->last_send), 0);
        return;
    }
    if (!link_send_request(l, true) && !link_send_request(l, false)) {
        l->dirty = false;
        return;
    }
    l->last_send = now ? now : 1;
    if (!uv_is_active((uv_handle_t *)&l->pace))
        uv_timer_start(&l->pace, link_on_pace, period, 0);
}

static void link_on_pace(uv_timer_t *t)
{
    link_pump(t->data);
}

/* Every link of the shard has work to look at. */
static void shard_pump(kf__shard *sh)
{
    for (int i = 0; i < 2; i++) {
        kf__link *l = &sh->link[i];
        l->dirty = true;
        link_pump(l);
    }
}

void kf__shard_extend(kf__shard *sh, size_t n)
{
    if (sh->count + n > sh->cap)
        n = sh->cap - sh->count;
    sh->count += n;
    kf__log(sh->env.log, KF_LOG_INFO,
            "msg=\"streams added to a connection\" shard=%zu streams=%zu "
            "added=%zu",
            sh->index, sh->count, n);
    shard_pump(sh);
}

void kf__shard_listing_changed(kf__shard *sh, size_t si)
{
    if (si < sh->first || si - sh->first >= sh->count)
        return;
    size_t rel = si - sh->first;
    sh->await_close[rel] = 0;
    sh->stale[rel] = 0;
    sh->last_seen[rel] = shard_now(sh); /* silence is counted from now when listed again */
    shard_pump(sh);
}

/* Publishes the active link's state for kf__shard_status (readers on other threads). */
static void shard_publish(kf__shard *sh)
{
    const kf__link *l = &sh->link[sh->cur];
    bool up = l->conn && l->opened && !l->closed;
    atomic_store_explicit(&sh->pub_opened_at, up ? l->opened_at : 0, memory_order_relaxed);
    atomic_store_explicit(&sh->pub_up, up, memory_order_relaxed);
    atomic_store_explicit(&sh->pub_subscribed, up && l->subscribed, memory_order_relaxed);
}

int64_t kf__shard_exchange_time(const kf__shard *sh)
{
    int64_t t = 0;
    for (size_t i = 0; i < sh->count; i++)
        if (sh->last_event[i] > t)
            t = sh->last_event[i];
    return t;
}

bool kf__shard_was_down(const kf__shard *sh)
{
    return sh->lost || sh->down_since != 0;
}

void kf__shard_status(const kf__shard *sh, bool *up, bool *subscribed, uint64_t *opened_at)
{
    *up = atomic_load_explicit(&sh->pub_up, memory_order_relaxed);
    *subscribed = atomic_load_explicit(&sh->pub_subscribed, memory_order_relaxed);
    *opened_at = atomic_load_explicit(&sh->pub_opened_at, memory_order_relaxed);
}

static void shard_set_subscribed(kf__shard *sh, bool on)
{
    kf__shard_env *env = &sh->env;
    shard_publish(sh);
    if (on == sh->counted_subscribed)
        return;
    sh->counted_subscribed = on;
    env->ops->subscribed(env->owner, sh->index, on);
}

static void link_on_open(void *ud, kf__conn *conn)
{
    kf__link *l = ud;
    kf__shard *sh = l->sh;
    kf__shard_env *env = &sh->env;
    (void)conn;
    l->opened = true;
    l->opened_at = l->last_ping = shard_now(sh);
    l->last_error[0] = 0;
    l->sent = l->acked = 0;
    l->last_send = 0;
    memset(l->sub, 0, sh->cap ? sh->cap : 1);
    size_t wanted = 0; /* a delisted stream is not subscribed again */
    for (size_t i = 0; i < sh->count; i++)
        wanted += !shard_stream_delisted(sh, i);
    size_t per = env->set.names_per_subscribe;
    l->batches = (wanted + per - 1) / per;
    memset(l->batch_acked, 0, sh->max_batches);
    l->id_base = *env->next_id;
    *env->next_id += l->batches;
    KF__COUNT_INC(env->st, connects);
    kf__log(env->log, KF_LOG_INFO, "msg=\"connected\" shard=%zu url=%s streams=%zu batches=%zu%s",
            sh->index, kf__conn_url(l->conn), wanted, l->batches,
            l->slot != sh->cur ? " role=replacement" : "");
    if (l->slot == sh->cur) {
        shard_publish(sh);
        env->ops->opened(env->owner, sh->index);
    }
    /* First batch at once, then one every 1/rate seconds: never over the message rate. */
    l->dirty = true;
    if (!l->batches)
        link_check_subscribed(l); /* every stream of the shard is delisted */
    link_pump(l);
}

static void link_on_ack(kf__link *l, uint64_t id)
{
    kf__shard *sh = l->sh;
    kf__shard_env *env = &sh->env;
    KF__COUNT_INC(env->st, acks);
    if (id < l->id_base || id - l->id_base >= l->batches) {
        /* (a request sent while running: SUBSCRIBE of a listing, UNSUBSCRIBE of a delisting) */
        kf__log(env->log, KF_LOG_DEBUG,
                "msg=\"acknowledgement outside the first subscription\" "
                "id=%" PRIu64,
                id);
        return;
    }
    size_t b = (size_t)(id - l->id_base);
    if (l->batch_acked[b])
        return;
    l->batch_acked[b] = 1;
    l->acked++;
    link_check_subscribed(l);
}

/* Every batch of the first subscription is acknowledged: the link is subscribed. */
static void link_check_subscribed(kf__link *l)
{
    kf__shard *sh = l->sh;
    kf__shard_env *env = &sh->env;
    if (l->acked < l->batches || l->subscribed)
        return;
    l->subscribed = true;
    l->subscribed_at = shard_now(sh);
    kf__log(env->log, KF_LOG_INFO, "msg=\"subscribed\" shard=%zu streams=%zu%s", sh->index,
            sh->count, l->slot != sh->cur ? " role=replacement" : "");
    if (l->slot == sh->cur) {
        if (sh->down_since)
            kf__log(env->log, KF_LOG_INFO,
                    "msg=\"reconnected\" shard=%zu down_ms=%" PRIu64 " attempts=%u", sh->index,
                    shard_now(sh) - sh->down_since, sh->attempt);
        sh->down_since = 0;
        shard_set_subscribed(sh, true);
        if (sh->lost) { /* what closed while the connection was down comes from REST */
            sh->lost = false;
            for (size_t i = 0; i < sh->count; i++)
                env->ops->repair_after_last(env->owner, sh->first + i);
        }
    }
}

static void link_on_error(kf__link *l, const kf__frame *f)
{
    kf__shard *sh = l->sh;
    kf__shard_env *env = &sh->env;
    KF__COUNT_INC(env->st, exchange_errors);
    int ml = (int)(f->err_msg_len > 200 ? 200 : f->err_msg_len);
    const char *msg = f->err_msg ? f->err_msg : "";
    if (f->has_id) {
        kf__log(env->log, KF_LOG_ERROR,
                "msg=\"exchange error reply\" shard=%zu id=%" PRIu64 " code=%" PRId64
                " error=\"%.*s\"",
                sh->index, f->id, f->err_code, ml, msg);
        snprintf(l->last_error, sizeof l->last_error,
                 "request %" PRIu64 " refused with code %" PRId64 ": %.*s", f->id, f->err_code, ml,
                 msg);
        shard_error(sh, "%s: %s", kf__conn_url(l->conn), l->last_error);
        if (f->id >= l->id_base && f->id - l->id_base < l->batches) /* one of our SUBSCRIBEs */
            env->ops->subscribe_refused(env->owner, sh->index, kf__conn_url(l->conn),
                                        l->last_error);
    } else {
        kf__log(env->log, KF_LOG_ERROR,
                "msg=\"exchange error reply\" shard=%zu code=%" PRId64 " error=\"%.*s\"", sh->index,
                f->err_code, ml, msg);
    }
}

/* ---- the data path ---- */

static void link_on_malformed(kf__link *l, const kf__frame *f, const char *data, size_t len)
{
    kf__shard_env *env = &l->sh->env;
    KF__COUNT_INC(env->st, parse_errors);
    uint64_t n = atomic_load_explicit(&env->st->parse_errors, memory_order_relaxed);
    if (n <= 10 || n % 10000 == 0) {
        char sample[300];
        kf__log_sample(data, len, sample, sizeof sample);
        kf__log(env->log, KF_LOG_WARN,
                "msg=\"malformed frame skipped\" shard=%zu why=\"%s\" bytes=%zu count=%" PRIu64
                " sample=%s",
                l->sh->index, f->why ? f->why : "?", len, n, sample);
    }
}

/*
 * How long both links run side by side once the replacement delivers. A closing update comes
 * 0.2-2 s after the close time and a connection subscribed after a boundary may never get the
 * previous candle's: the old link stays long enough to deliver it (duplicates are dropped by
 * the per-stream state).
 */
static uint64_t shard_overlap_ms(const kf__shard *sh)
{
    uint64_t half = sh->env.set.max_age_ms / 2;
    return half < 5000 ? half : 5000;
}

static void shard_finish_rotation(kf__shard *sh)
{
    kf__shard_env *env = &sh->env;
    kf__link *old = &sh->link[sh->cur];
    sh->cur = !sh->cur;
    sh->rotating = false;
    KF__COUNT_INC(env->st, rotations);
    kf__log(env->log, KF_LOG_INFO, "msg=\"rotated\" shard=%zu old_age_ms=%" PRIu64, sh->index,
            shard_now(sh) - old->opened_at);
    if (old->conn)
        kf__conn_close(old->conn, 1000, "rotated");
    shard_set_subscribed(sh, sh->link[sh->cur].subscribed);
}

static void link_on_kline(kf__link *l, const kf_kline *k)
{
    kf__shard *sh = l->sh;
    kf__shard_env *env = &sh->env;
    KF__COUNT_INC(env->st, updates);
    if (k->event_time > l->last_event) {
        l->last_event = k->event_time;
        if (!l->first_event && l->subscribed)
            l->first_event = k->event_time;
    }
    if (!l->delivered) {
        l->delivered = true;
        if (l->slot == sh->cur)
            sh->attempt = 0; /* healthy again: the next loss starts the backoff afresh */
        else if (sh->rotating)
            sh->retire_at = shard_now(sh) + shard_overlap_ms(sh);
    }
    long si = kf__stream_index_find(env->index, env->streams, k->symbol, strlen(k->symbol),
                                    k->interval_index);
    if (si < 0) {
        KF__COUNT_INC(env->st, unknown_streams);
        return;
    }
    const kf__stream *s = &env->streams[si];
    if (s->shard == sh->index) {
        size_t rel = (size_t)si - sh->first;
        uint64_t now = shard_now(sh);
        sh->last_seen[rel] = now;
        if (k->event_time > sh->last_event[rel])
            sh->last_event[rel] = k->event_time;
        if (sh->stale[rel]) {
            sh->stale[rel] = 0;
            kf__log(env->log, KF_LOG_INFO, "msg=\"stream delivering again\" stream=%s", s->name);
        }
        /* The successor of an open candle started: its closing update should follow within
         * seconds; if it never does (the connection dropped around the boundary), REST. */
        if (k->closed) {
            if (sh->await_close[rel] == k->open_time)
                sh->await_close[rel] = 0;
        } else if (s->has_open && s->open.open_time < k->open_time &&
                   (!s->has_closed || s->open.open_time > s->last_closed)) {
            sh->await_close[rel] = s->open.open_time;
            sh->await_deadline[rel] = now + KF__CLOSE_GRACE_MS;
        }
    }
    env->ops->deliver(env->owner, (size_t)si, k);
}

static void link_on_text(void *ud, kf__conn *conn, const char *data, size_t len)
{
    kf__link *l = ud;
    kf__shard_env *env = &l->sh->env;
    (void)conn;
    KF__COUNT_INC(env->st, frames);
    KF__COUNT_ADD(env->st, bytes, len);
    if (env->set.on_raw)
        env->set.on_raw(env->set.on_raw_ud, data, len);
    kf__frame f;
    kf_kline k;
    switch (kf__decode(data, len, &f, &k)) {
    case KF__FRAME_KLINE:
        link_on_kline(l, &k);
        break;
    case KF__FRAME_ACK:
        link_on_ack(l, f.id);
        break;
    case KF__FRAME_RESULT:
        kf__log(env->log, KF_LOG_DEBUG, "msg=\"result reply\" shard=%zu id=%" PRIu64, l->sh->index,
                f.id);
        break;
    case KF__FRAME_ERROR:
        link_on_error(l, &f);
        break;
    case KF__FRAME_EVENT:
        KF__COUNT_INC(env->st, other_events);
        break;
    case KF__FRAME_MALFORMED:
        link_on_malformed(l, &f, data, len);
        break;
    }
}

/* ---- losses and reconnects ---- */

static void link_reset(kf__link *l)
{
    uv_timer_stop(&l->pace);
    if (l->conn)
        kf__conn_destroy(l->conn);
    l->conn = NULL;
    l->opened = l->subscribed = l->delivered = l->closed = l->dead = l->dirty = false;
    l->first_event = l->last_event = 0;
    l->last_send = 0;
}

/* Counts a lost link by cause; returns the cause as the logs and counters name it. */
static const char *shard_count_loss(kf__shard *sh, kf__link *l, kf_err err)
{
    kf__shard_env *env = &sh->env;
    if (!l->opened) {
        KF__COUNT_INC(env->st, connect_failures);
        return "connect_failure";
    }
    KF__COUNT_INC(env->st, disconnects);
    if (l->dead) {
        KF__COUNT_INC(env->st, lost_liveness);
        return "liveness";
    }
    if (kf__conn_peer_closed(l->conn)) {
        KF__COUNT_INC(env->st, lost_server_close);
        return "server_close";
    }
    if (err == KF_ERR_PROTOCOL) {
        KF__COUNT_INC(env->st, lost_protocol);
        return "protocol";
    }
    KF__COUNT_INC(env->st, lost_reset);
    return "reset";
}

static void link_on_closed(void *ud, kf__conn *conn, kf_err err, const char *why)
{
    kf__link *l = ud;
    kf__shard *sh = l->sh;
    kf__shard_env *env = &sh->env;
    (void)conn;
    uv_timer_stop(&l->pace);
    l->closed = true;
    if (env->ops->stopping(env->owner) || env->ops->starting(env->owner)) {
        if (l->opened)
            KF__COUNT_INC(env->st, disconnects);
        if (l->subscribed && l->slot == sh->cur)
            shard_set_subscribed(sh, false);
        shard_publish(sh);
        env->ops->closed(env->owner, sh->index, err, why);
        return;
    }
    bool active = l->slot == sh->cur;
    if (!active && !sh->rotating) { /* the retired link of a finished rotation */
        kf__log(env->log, KF_LOG_DEBUG, "msg=\"retired connection closed\" shard=%zu", sh->index);
        link_reset(l);
        return;
    }
    const char *cause = shard_count_loss(sh, l, err);
    if (!active) { /* the replacement of a rotation failed: keep the old, retry later */
        kf__log(env->log, KF_LOG_WARN, "msg=\"rotation failed\" shard=%zu why=\"%s\"", sh->index,
                why);
        sh->rotating = false;
        sh->rotate_not_before = shard_now(sh) + env->set.backoff_max_ms;
        link_reset(l);
        return;
    }
    if (l->opened) {
        if (l->last_error[0])
            shard_error(sh, "%s (after the exchange's error reply: %s)", why, l->last_error);
        else
            shard_error(sh, "%s", why);
        /* the cause as counted (a reset is not "connection refused or unreachable") */
        kf__log(env->log, KF_LOG_WARN, "msg=\"connection lost\" shard=%zu cause=%s why=\"%s\"",
                sh->index, cause, why);
        if (!sh->down_since)
            sh->down_since = shard_now(sh);
        sh->lost = true;
    } else {
        shard_error(sh, "%s", why);
    }
    shard_set_subscribed(sh, false);
    link_reset(l);
    if (sh->rotating) {
        /* the replacement is already on its way: it becomes the active link */
        sh->cur = !sh->cur;
        sh->rotating = false;
        if (sh->link[sh->cur].subscribed) {
            sh->down_since = 0;
            shard_set_subscribed(sh, true);
        }
        shard_publish(sh);
        kf__log(env->log, KF_LOG_INFO, "msg=\"replacement takes over\" shard=%zu", sh->index);
        return;
    }
    uint64_t now = shard_now(sh);
    sh->attempt++;
    if (sh->attempt <= 3 || now - sh->last_retry_log >= 60000) {
        sh->last_retry_log = now;
        kf__log(env->log, sh->attempt <= 3 ? KF_LOG_INFO : KF_LOG_WARN,
                "msg=\"reconnecting\" shard=%zu attempt=%u down_ms=%" PRIu64 " last=\"%s\"",
                sh->index, sh->attempt, sh->down_since ? now - sh->down_since : 0, why);
    }
    shard_schedule_retry(sh);
}

static void shard_on_retry(uv_timer_t *t)
{
    kf__shard *sh = t->data;
    sh->retry_pending = false;
    if (sh->env.ops->stopping(sh->env.owner) || sh->link[sh->cur].conn)
        return;
    KF__COUNT_INC(sh->env.st, reconnects);
    if (shard_open_link(sh, sh->cur) != KF_OK)
        shard_schedule_retry(sh);
}

/* Full jitter: a random delay in [0, min(max, initial * 2^(attempt-1))]. */
uint64_t kf__shard_retry_delay(kf__shard *sh)
{
    const kf__shard_settings *cfg = &sh->env.set;
    uint64_t cap = kf__backoff_cap(sh->attempt, cfg->backoff_initial_ms, cfg->backoff_max_ms);
    return kf__rng_upto(sh->env.rng, cap);
}

static void shard_schedule_retry(kf__shard *sh)
{
    uint64_t delay = kf__shard_retry_delay(sh);
    sh->retry_pending = true;
    uv_timer_start(&sh->retry, shard_on_retry, delay, 0);
}

static const kf__conn_handler link_handler = {
    .on_open = link_on_open,
    .on_text = link_on_text,
    .on_closed = link_on_closed,
};

static kf_err shard_open_link(kf__shard *sh, int slot)
{
    kf__shard_env *env = &sh->env;
    kf__link *l = &sh->link[slot];
    uint64_t wait_ms;
    if (!kf__conn_budget_take(env->budget, shard_now(sh), &wait_ms)) {
        kf__log(env->log, KF_LOG_WARN,
                "msg=\"new-connection budget spent\" shard=%zu budget=%u window_ms=%u "
                "wait_ms=%" PRIu64,
                sh->index, env->budget->n, env->budget->window_ms, wait_ms);
        if (slot == sh->cur) {
            sh->retry_pending = true;
            uv_timer_start(&sh->retry, shard_on_retry, wait_ms, 0);
        }
        return KF_ERR_ALREADY_RUNNING; /* scheduled, not failed */
    }
    kf__conn_opts o = {
        .url = env->url,
        .path = env->path,
        .ssl_ctx = sh->ssl_ctx,
        .max_message = env->set.max_message,
        .connect_timeout_ms = env->set.connect_timeout_ms,
        .log = env->log,
        .pings = &env->st->pings,
    };
    link_reset(l);
    l->conn = kf__conn_new(env->loop, &o, &link_handler, l);
    if (!l->conn)
        return KF_ERR_NOMEM;
    return kf__conn_open(l->conn);
}

/* ---- housekeeping: liveness, pings, rotation, silent streams ---- */

/*
 * A stream is silent when, for more than twice its interval plus 30 s, nothing came for it
 * while its connection was subscribed: measured on the exchange's clock (event times of the
 * other streams of the connection, so an accelerated or skewed clock does not matter) and, for
 * a connection that delivers nothing at all, on the monotonic clock.
 */
static void shard_check_stale(kf__shard *sh, uint64_t now)
{
    kf__shard_env *env = &sh->env;
    const kf__link *l = &sh->link[sh->cur];
    if (!l->subscribed)
        return;
    int64_t exch_from = l->first_event; /* exchange time of the first event since subscribed */
    for (size_t i = 0; i < sh->count; i++) {
        if (sh->stale[i] || shard_stream_delisted(sh, i))
            continue;
        const kf__stream *s = &env->streams[sh->first + i];
        int64_t iv = kf_interval_ms(s->interval);
        int64_t limit = (iv ? iv : 31LL * 86400000) * 2 + 30000;
        uint64_t mono_since =
            sh->last_seen[i] > l->subscribed_at ? sh->last_seen[i] : l->subscribed_at;
        int64_t exch_silent = 0;
        if (exch_from)
            exch_silent =
                l->last_event - (sh->last_event[i] > exch_from ? sh->last_event[i] : exch_from);
        uint64_t mono_silent = now - mono_since;
        if (exch_silent <= limit && mono_silent <= (uint64_t)limit)
            continue;
        sh->stale[i] = 1;
        KF__COUNT_INC(env->st, stale_streams);
        kf__log(env->log, KF_LOG_WARN,
                "msg=\"stream silent while its connection is subscribed\" stream=%s "
                "silent_exchange_ms=%" PRId64 " silent_local_ms=%" PRIu64
                " hint=\"acknowledged names that never deliver: wrong path, unknown or delisted "
                "symbol\"",
                s->name, exch_silent, mono_silent);
    }
}

static void shard_on_tick(uv_timer_t *t)
{
    kf__shard *sh = t->data;
    kf__shard_env *env = &sh->env;
    const kf__shard_settings *cfg = &env->set;
    if (env->ops->stopping(env->owner))
        return;
    uint64_t now = shard_now(sh);
    for (int i = 0; i < 2; i++) {
        kf__link *l = &sh->link[i];
        if (!l->conn || kf__conn_get_state(l->conn) != KF__CONN_OPEN)
            continue;
        uint64_t rx = kf__conn_last_rx(l->conn);
        if (now > rx && now - rx > cfg->dead_after_ms && !kf__conn_rx_pending(l->conn)) {
            /* (with bytes waiting it is this process that was late, not the peer: libuv runs
             * the timers of a turn before its reads, which take them right after) */
            char why[128];
            snprintf(why, sizeof why, "no frame for %" PRIu64 " ms: connection declared dead",
                     now - rx);
            l->dead = true;
            kf__conn_abort(l->conn, KF_ERR_TIMEOUT, why);
            continue; /* the link may be reset by the callback */
        }
        if (now - l->last_ping >= cfg->ping_interval_ms) {
            char payload[24];
            int n = snprintf(payload, sizeof payload, "%" PRIu64, now);
            kf__conn_ping(l->conn, payload, (size_t)n);
            l->last_ping = now;
        }
    }
    kf__link *a = &sh->link[sh->cur];
    if (!sh->rotating && a->conn && a->subscribed && now >= sh->rotate_not_before &&
        now - a->opened_at >= cfg->max_age_ms) {
        kf__log(env->log, KF_LOG_INFO, "msg=\"rotating\" shard=%zu age_ms=%" PRIu64, sh->index,
                now - a->opened_at);
        sh->rotating = true;
        kf_err e = shard_open_link(sh, !sh->cur);
        if (e) {
            sh->rotating = false;
            sh->rotate_not_before = now + cfg->backoff_max_ms;
        }
    } else if (sh->rotating) {
        kf__link *r = &sh->link[!sh->cur];
        if (r->subscribed && r->delivered && now >= sh->retire_at) {
            shard_finish_rotation(sh);
            return;
        }
        /* a replacement that does not deliver is no replacement: give up, retry later */
        if (r->conn && now - r->opened_at > cfg->dead_after_ms + cfg->connect_timeout_ms &&
            !r->delivered && !kf__conn_rx_pending(r->conn)) { /* (bytes waiting: we were late) */
            r->dead = true;
            kf__conn_abort(r->conn, KF_ERR_TIMEOUT, "replacement connection did not deliver");
        }
    }
    shard_check_stale(sh, now);
    for (size_t i = 0; i < sh->count; i++) {
        if (!sh->await_close[i] || now < sh->await_deadline[i])
            continue;
        int64_t open_time = sh->await_close[i];
        sh->await_close[i] = 0;
        if (shard_stream_delisted(sh, i))
            continue;
        const kf__stream *s = &env->streams[sh->first + i];
        KF__COUNT_INC(env->st, missing_closes);
        kf__log(env->log, KF_LOG_INFO,
                "msg=\"closing update never came: asking REST\" stream=%s open_time=%" PRId64,
                s->name, open_time);
        env->ops->repair_candle(env->owner, sh->first + i, open_time);
    }
}

/* ---- lifecycle ---- */

kf_err kf__shard_start(kf__shard *sh, SSL_CTX *ssl_ctx)
{
    kf__shard_env *env = &sh->env;
    sh->ssl_ctx = ssl_ctx;
    if (!sh->timers_init) {
        uv_timer_init(env->loop, &sh->tick);
        uv_timer_init(env->loop, &sh->retry);
        sh->tick.data = sh->retry.data = sh;
        for (int i = 0; i < 2; i++) {
            uv_timer_init(env->loop, &sh->link[i].pace);
            sh->link[i].pace.data = &sh->link[i];
        }
        sh->timers_init = true;
    }
    sh->cur = 0;
    sh->rotating = sh->retry_pending = sh->counted_subscribed = false;
    sh->attempt = 0;
    sh->down_since = 0;
    sh->rotate_not_before = 0;
    memset(sh->last_seen, 0, sh->count * sizeof *sh->last_seen);
    memset(sh->last_event, 0, sh->count * sizeof *sh->last_event);
    memset(sh->stale, 0, sh->count);
    memset(sh->await_close, 0, sh->count * sizeof *sh->await_close);
    sh->lost = false;
    uint64_t tick = env->set.dead_after_ms / 4;
    if (tick > 1000)
        tick = 1000;
    if (tick < 50)
        tick = 50;
    uv_timer_start(&sh->tick, shard_on_tick, tick, tick);
    kf_err e = shard_open_link(sh, 0);
    return e == KF_ERR_ALREADY_RUNNING ? KF_OK : e;
}

void kf__shard_close(kf__shard *sh)
{
    if (sh->timers_init) {
        uv_timer_stop(&sh->tick);
        uv_timer_stop(&sh->retry);
    }
    for (int i = 0; i < 2; i++) {
        kf__link *l = &sh->link[i];
        if (sh->timers_init)
            uv_timer_stop(&l->pace);
        if (l->conn && !l->closed)
            kf__conn_close(l->conn, 1000, "client stopping");
    }
}

bool kf__shard_all_closed(const kf__shard *sh)
{
    for (int i = 0; i < 2; i++)
        if (sh->link[i].conn && !sh->link[i].closed)
            return false;
    return true;
}

void kf__shard_release(kf__shard *sh)
{
    for (int i = 0; i < 2; i++) {
        kf__link *l = &sh->link[i];
        if (l->conn)
            kf__conn_destroy(l->conn);
        l->conn = NULL;
        l->closed = false;
        if (sh->timers_init)
            uv_close((uv_handle_t *)&l->pace, NULL);
    }
    if (sh->timers_init) {
        uv_close((uv_handle_t *)&sh->tick, NULL);
        uv_close((uv_handle_t *)&sh->retry, NULL);
        sh->timers_init = false;
    }
    sh->ssl_ctx = NULL;
}

void kf__shard_close_arrived(kf__shard *sh, size_t si, int64_t open_time)
{
    if (si < sh->first || si - sh->first >= sh->count)
        return;
    if (sh->await_close[si - sh->first] == open_time)
        sh->await_close[si - sh->first] = 0;
}
