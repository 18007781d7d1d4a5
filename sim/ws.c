/* ws.c - the WebSocket side of klinefeed-sim (RFC 6455, server role): upgrade handshake,
 * frame codec, live requests (SUBSCRIBE...), stream limits, pings, and kline delivery. */
#include "sim.h"

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct hist_ent {
    uint64_t id;
    char *path;
    int nstreams;
    bool open;
    int64_t born, ended; /* real ms */
    char *sni;           /* TLS: the server name the client asked for, NULL if none or plain */
} hist_ent;

static hist_ent *hist;
static int nhist, caphist;
static sim_conn **open_ws; /* open websocket connections, for /sim/state */
static int nopen_ws, capopen_ws;

#define MAX_MSG (16u << 20)

void ws_hist_update(const sim_conn *c)
{
    if (c->hist >= 0)
        hist[c->hist].nstreams = c->nsubs;
}

/* ---- subscriptions */
static bool name_valid(const char *name, int *sym, int *iv)
{
    const char *at = strchr(name, '@');
    if (!at || strncmp(at, "@kline_", 7) != 0)
        return false;
    *sym = market_find_lower(name, (size_t)(at - name));
    if (*sym < 0 || !g_syms[*sym].trading)
        return false;
    *iv = interval_parse(at + 7, strlen(at + 7));
    return *iv >= 0;
}

static int sub_find(const sim_conn *c, const char *name)
{
    for (int i = 0; i < c->nsubs; i++)
        if (strcmp(c->subs[i].name, name) == 0)
            return i;
    return -1;
}

static void sub_add(sim_conn *c, const char *name, int64_t now)
{
    if (sub_find(c, name) >= 0)
        return;
    if (c->nsubs == c->capsubs) {
        c->capsubs = c->capsubs ? c->capsubs * 2 : 16;
        c->subs = sim_xrealloc(c->subs, sizeof(sim_sub) * (size_t)c->capsubs);
    }
    sim_sub *s = &c->subs[c->nsubs++];
    memset(s, 0, sizeof *s);
    s->name = sim_xstrdup(name);
    s->valid = name_valid(name, &s->sym, &s->iv);
    if (s->valid) {
        c->nvalid++;
        s->cur_open = interval_open(s->iv, now);
        s->next_update = now;
    }
    ws_hist_update(c);
}

static void sub_remove(sim_conn *c, const char *name)
{
    int i = sub_find(c, name);
    if (i < 0)
        return;
    if (c->subs[i].valid)
        c->nvalid--;
    free(c->subs[i].name);
    memmove(&c->subs[i], &c->subs[i + 1], sizeof(sim_sub) * (size_t)(c->nsubs - i - 1));
    c->nsubs--;
    ws_hist_update(c);
}

/* adds the '/'-separated, percent-encoded names of s[0..n) */
static void add_path_streams(sim_conn *c, const char *s, size_t n, int64_t now)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '/')
            j++;
        if (j > i && c->nsubs < g_opt.max_streams) {
            char *tmp = sim_xmalloc(j - i + 1);
            url_decode(s + i, j - i, tmp);
            sub_add(c, tmp, now);
            free(tmp);
        }
        i = j + 1;
    }
}

/* ---- handshake */
static bool key_ok(const char *k)
{
    if (strlen(k) != 24 || strcmp(k + 22, "==") != 0)
        return false;
    for (int i = 0; i < 22; i++) {
        char ch = k[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '+' || ch == '/'))
            return false;
    }
    return true;
}

static bool has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    for (const char *p = v; *p; p++)
        if (strncasecmp(p, tok, tl) == 0 && (p == v || p[-1] == ' ' || p[-1] == ',') &&
            (p[tl] == 0 || p[tl] == ',' || p[tl] == ' '))
            return true;
    return false;
}

bool ws_try_upgrade(sim_conn *c, const char *target, const char *upgrade, const char *connection,
                    const char *version, const char *key, int *status)
{
    *status = 400;
    if (strcasecmp(upgrade, "websocket") != 0 || !has_token(connection, "upgrade") ||
        strcmp(version, "13") != 0 || !key_ok(key))
        return false;
    char cat[128];
    snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(cat, strlen(cat), md, &mdlen, EVP_sha1(), NULL))
        return false;
    unsigned char acc[64];
    EVP_EncodeBlock(acc, md, (int)mdlen);
    sb_printf(&c->wb,
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: %s\r\n\r\n",
              (const char *)acc);
    *status = 101;

    int64_t now = sim_now();
    c->ws = true;
    c->path = sim_xstrdup(target);
    c->msg_times = sim_xmalloc(sizeof(int64_t) * (size_t)(g_opt.max_msg_rate + 1));
    c->next_ping = sim_real_ms() + g_opt.ping_ms;
    if (nhist == caphist) {
        caphist = caphist ? caphist * 2 : 64;
        hist = sim_xrealloc(hist, sizeof(hist_ent) * (size_t)caphist);
    }
    c->hist = nhist;
    /* ids in /sim/state number the websocket connections 1, 2, ... */
    c->born_real = sim_real_ms();
    const char *sni = c->ssl ? SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
    hist[nhist] =
        (hist_ent){(uint64_t)nhist + 1,          sim_xstrdup(target), 0, true, c->born_real, -1,
                   sni ? sim_xstrdup(sni) : NULL};
    nhist++;
    if (nopen_ws == capopen_ws) {
        capopen_ws = capopen_ws ? capopen_ws * 2 : 64;
        open_ws = sim_xrealloc(open_ws, sizeof(sim_conn *) * (size_t)capopen_ws);
    }
    open_ws[nopen_ws++] = c;
    g_stats.connections_total++;
    g_stats.connections_open++;
    if (g_stats.connections_open > g_stats.connections_max_open)
        g_stats.connections_max_open = g_stats.connections_open;

    const char *q = strchr(target, '?');
    size_t plen = q ? (size_t)(q - target) : strlen(target);
    if (plen == 10 && strncmp(target, "/market/ws", 10) == 0) {
        c->routed = true;
    } else if (plen > 11 && strncmp(target, "/market/ws/", 11) == 0) {
        c->routed = true;
        add_path_streams(c, target + 11, plen - 11, now);
    } else if (plen == 14 && strncmp(target, "/market/stream", 14) == 0) {
        c->routed = true;
        c->combined = true;
    } else if (plen > 4 && strncmp(target, "/ws/", 4) == 0) {
        add_path_streams(c, target + 4, plen - 4, now); /* unrouted: acknowledged, silent */
    } else if (plen == 7 && strncmp(target, "/stream", 7) == 0) {
        c->combined = true;
    }
    if (q && c->combined) {
        const char *p = q + 1;
        while (*p) {
            const char *e = strchr(p, '&');
            size_t l = e ? (size_t)(e - p) : strlen(p);
            if (l > 8 && strncmp(p, "streams=", 8) == 0)
                add_path_streams(c, p + 8, l - 8, now);
            p += l;
            if (*p)
                p++;
        }
    }
    fprintf(stderr, "klinefeed-sim: ws connection %llu %s (%d streams)\n",
            (unsigned long long)c->id, target, c->nsubs);
    return true;
}

/* ---- frames */
void ws_send_frame(sim_conn *c, int op, const void *p, size_t n)
{
    unsigned char h[10];
    size_t hl;
    h[0] = (unsigned char)(0x80 | op);
    if (n < 126) {
        h[1] = (unsigned char)n;
        hl = 2;
    } else if (n < 65536) {
        h[1] = 126;
        h[2] = (unsigned char)(n >> 8);
        h[3] = (unsigned char)n;
        hl = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
        hl = 10;
    }
    sb_put(&c->wb, h, hl);
    sb_put(&c->wb, p, n);
}

void ws_close(sim_conn *c, int code, const char *reason)
{
    char buf[128];
    size_t rl = strlen(reason);
    if (rl > 120)
        rl = 120;
    buf[0] = (char)(code >> 8);
    buf[1] = (char)(code & 0xff);
    memcpy(buf + 2, reason, rl);
    ws_send_frame(c, 8, buf, rl + 2);
    c->closing = true;
    fprintf(stderr, "klinefeed-sim: ws connection %llu closed by server: %d %s\n",
            (unsigned long long)c->id, code, reason);
}

static void reply(sim_conn *c, sbuf *b)
{
    ws_send_frame(c, 1, b->p, b->len);
    sb_free(b);
}

static void reply_error(sim_conn *c, int code, const char *msg, bool has_id, uint64_t id)
{
    sbuf b = {0};
    sb_printf(&b, "{\"error\":{\"code\":%d,\"msg\":", code);
    sb_json_str(&b, msg, strlen(msg));
    sb_puts(&b, "}");
    if (has_id)
        sb_printf(&b, ",\"id\":%llu", (unsigned long long)id);
    sb_puts(&b, "}");
    reply(c, &b);
}

static void reply_result(sim_conn *c, const char *result, bool has_id, uint64_t id)
{
    sbuf b = {0};
    sb_printf(&b, "{\"result\":%s,\"id\":", result);
    if (has_id)
        sb_printf(&b, "%llu}", (unsigned long long)id);
    else
        sb_puts(&b, "null}");
    reply(c, &b);
}

static void on_text(sim_conn *c, const char *msg, size_t len)
{
    int64_t rnow = sim_real_ms();
    int ring = g_opt.max_msg_rate + 1;
    c->msg_times[c->msg_count % ring] = rnow;
    c->msg_count++;
    if (c->msg_count >= ring && rnow - c->msg_times[c->msg_count % ring] < 1000) {
        ws_close(c, 1008, "Too many requests");
        return;
    }

    jdoc d;
    int root = json_parse(&d, msg, len);
    if (root < 0) {
        char m[200];
        snprintf(m, sizeof m, "Invalid JSON: %s", d.err);
        reply_error(c, 3, m, false, 0);
        json_free(&d);
        return;
    }
    bool has_id = false;
    uint64_t id = 0;
    int idn = json_member(&d, root, "id");
    int mn = json_member(&d, root, "method");
    int pn = json_member(&d, root, "params");
    const jnode *N = d.nodes;
    if (N[root].type != JN_OBJ) {
        reply_error(c, 2, "Invalid request: expected an object", false, 0);
        goto out;
    }
    if (idn >= 0 && N[idn].type != JN_NULL) {
        if (N[idn].type != JN_NUM || !N[idn].is_uint) {
            reply_error(c, 2, "Invalid request: request ID must be an unsigned integer", false, 0);
            goto out;
        }
        has_id = true;
        id = N[idn].u;
    }
    if (mn < 0 || N[mn].type != JN_STR) {
        reply_error(c, 2, "Invalid request: missing field `method`", has_id, id);
        goto out;
    }
    const char *method = json_str(&d, mn);
    int np = 0;
    if (pn >= 0 && N[pn].type == JN_ARR)
        for (int k = N[pn].first; k >= 0; k = N[k].next)
            np++;
    bool params_arr = pn >= 0 && N[pn].type == JN_ARR;

    if (strcmp(method, "SUBSCRIBE") == 0 || strcmp(method, "UNSUBSCRIBE") == 0) {
        bool sub = method[0] == 'S';
        if (sub)
            g_stats.subscribe_requests++;
        if (!params_arr) {
            reply_error(c, 2, "Invalid request: missing field `params`", has_id, id);
            goto out;
        }
        for (int k = N[pn].first; k >= 0; k = N[k].next) {
            if (N[k].type != JN_STR) {
                reply_error(c, 2, "Invalid request: invalid type: expected a string", has_id, id);
                goto out;
            }
        }
        if (sub) {
            int fresh = 0;
            for (int k = N[pn].first; k >= 0; k = N[k].next) {
                const char *nm = json_str(&d, k);
                bool dup = sub_find(c, nm) >= 0;
                for (int j = N[pn].first; j != k && !dup; j = N[j].next)
                    dup = strcmp(json_str(&d, j), nm) == 0;
                fresh += !dup;
            }
            if (c->nsubs + fresh > g_opt.max_streams) {
                reply_error(c, 4, "Too many subscriptions", has_id, id);
                ws_close(c, 1008, "Too many subscriptions");
                goto out;
            }
            int64_t now = sim_now();
            for (int k = N[pn].first; k >= 0; k = N[k].next)
                sub_add(c, json_str(&d, k), now);
        } else {
            for (int k = N[pn].first; k >= 0; k = N[k].next)
                sub_remove(c, json_str(&d, k));
        }
        reply_result(c, "null", has_id, id);
    } else if (strcmp(method, "LIST_SUBSCRIPTIONS") == 0) {
        sbuf b = {0};
        sb_puts(&b, "{\"result\":[");
        for (int i = 0; i < c->nsubs; i++) {
            if (i)
                sb_puts(&b, ",");
            sb_json_str(&b, c->subs[i].name, strlen(c->subs[i].name));
        }
        if (has_id)
            sb_printf(&b, "],\"id\":%llu}", (unsigned long long)id);
        else
            sb_puts(&b, "],\"id\":null}");
        reply(c, &b);
    } else if (strcmp(method, "SET_PROPERTY") == 0) {
        if (!params_arr || np != 2) {
            reply_error(c, 2, "Invalid request: expected 2 params", has_id, id);
            goto out;
        }
        int p0 = N[pn].first, p1 = N[p0].next;
        if (N[p0].type != JN_STR || strcmp(json_str(&d, p0), "combined") != 0) {
            reply_error(c, 0, "Unknown property", has_id, id);
            goto out;
        }
        if (N[p1].type != JN_BOOL) {
            reply_error(c, 1, "Invalid value type: expected Boolean", has_id, id);
            goto out;
        }
        c->combined = N[p1].b;
        reply_result(c, "null", has_id, id);
    } else if (strcmp(method, "GET_PROPERTY") == 0) {
        if (!params_arr || np != 1) {
            reply_error(c, 2, "Invalid request: expected 1 param", has_id, id);
            goto out;
        }
        int p0 = N[pn].first;
        if (N[p0].type != JN_STR || strcmp(json_str(&d, p0), "combined") != 0) {
            reply_error(c, 0, "Unknown property", has_id, id);
            goto out;
        }
        reply_result(c, c->combined ? "true" : "false", has_id, id);
    } else {
        char m[200];
        snprintf(m, sizeof m,
                 "Invalid request: unknown variant `%.60s`, expected one of `SUBSCRIBE`, "
                 "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
                 method);
        reply_error(c, 2, m, has_id, id);
    }
out:
    json_free(&d);
}

void ws_on_data(sim_conn *c)
{
    while (!c->closing && c->rb.len >= 2) {
        unsigned char *p = (unsigned char *)c->rb.p;
        bool fin = p[0] & 0x80;
        int rsv = p[0] & 0x70;
        int op = p[0] & 0x0f;
        bool masked = p[1] & 0x80;
        uint64_t len = p[1] & 0x7f;
        size_t hl = 2;
        if (len == 126) {
            if (c->rb.len < 4)
                return;
            len = ((uint64_t)p[2] << 8) | p[3];
            hl = 4;
        } else if (len == 127) {
            if (c->rb.len < 10)
                return;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | p[2 + i];
            hl = 10;
        }
        if (!masked) {
            ws_close(c, 1002, "client frames must be masked");
            return;
        }
        if (rsv) {
            ws_close(c, 1002, "reserved bits set");
            return;
        }
        if (len > MAX_MSG || c->frag.len + len > MAX_MSG) {
            ws_close(c, 1009, "message too big");
            return;
        }
        if (c->rb.len < hl + 4 + len)
            return;
        unsigned char *mask = p + hl;
        unsigned char *pl = p + hl + 4;
        for (uint64_t i = 0; i < len; i++)
            pl[i] ^= mask[i & 3];
        size_t total = hl + 4 + (size_t)len;
        bool control = op & 0x8;
        if (control && (!fin || len > 125)) {
            ws_close(c, 1002, "bad control frame");
            return;
        }
        /* copy payload out: handlers may append to c->rb's neighbours */
        sbuf pay = {0};
        sb_put(&pay, pl, (size_t)len);
        sb_consume(&c->rb, total);
        switch (op) {
        case 0x0:
            if (!c->in_frag) {
                ws_close(c, 1002, "unexpected continuation");
                break;
            }
            sb_put(&c->frag, pay.p, pay.len);
            if (fin) {
                c->in_frag = false;
                if (c->frag_op == 1)
                    on_text(c, c->frag.p, c->frag.len);
                c->frag.len = 0;
            }
            break;
        case 0x1:
        case 0x2:
            if (c->in_frag) {
                ws_close(c, 1002, "expected continuation");
                break;
            }
            if (fin) {
                if (op == 1)
                    on_text(c, pay.p ? pay.p : "", pay.len);
            } else {
                c->in_frag = true;
                c->frag_op = op;
                c->frag.len = 0;
                sb_put(&c->frag, pay.p, pay.len);
            }
            break;
        case 0x8:
            ws_send_frame(c, 8, pay.p, pay.len >= 2 ? 2 : 0);
            c->closing = true;
            break;
        case 0x9:
            ws_send_frame(c, 0xA, pay.p, pay.len);
            break;
        case 0xA:
            if (c->last_ping[0] && pay.len == strlen(c->last_ping) &&
                memcmp(pay.p, c->last_ping, pay.len) == 0)
                g_stats.pongs++;
            break;
        default:
            ws_close(c, 1002, "unknown opcode");
            break;
        }
        sb_free(&pay);
    }
}

/* ---- delivery */
typedef struct cur_memo {
    int64_t now, open;
    sim_agg a;
} cur_memo;
static cur_memo *memo;
static int memo_n;

static void current_state(int sym, int iv, int64_t open, int64_t now, sim_agg *out)
{
    if (memo_n != g_nsyms * SIM_NIV) {
        memo_n = g_nsyms * SIM_NIV;
        memo = sim_xrealloc(memo, sizeof(cur_memo) * (size_t)memo_n);
        for (int i = 0; i < memo_n; i++)
            memo[i].now = INT64_MIN;
    }
    cur_memo *m = &memo[sym * SIM_NIV + iv];
    if (m->now != now || m->open != open) {
        market_candle(sym, iv, open, now, &m->a);
        m->now = now;
        m->open = open;
    }
    *out = m->a;
}

static void send_event(sim_conn *c, const sim_sub *s, int64_t open, const sim_agg *a, int64_t E,
                       bool closed)
{
    sbuf b = {0};
    market_fmt_event(&b, s->sym, s->iv, open, a, E, closed, c->combined ? s->name : NULL);
    ws_send_frame(c, 1, b.p, b.len);
    if (g_opt.fault_garbage_every > 0) { /* for the duplicate-frame fault */
        c->last_kline.len = 0;
        sb_put(&c->last_kline, b.p, b.len);
    }
    sb_free(&b);
    g_stats.frames_sent++;
}

void ws_tick(sim_conn *c, int64_t now)
{
    int64_t rnow = sim_real_ms();
    if (rnow >= c->next_ping) {
        snprintf(c->last_ping, sizeof c->last_ping, "%lld", (long long)now);
        ws_send_frame(c, 9, c->last_ping, strlen(c->last_ping));
        c->next_ping = rnow + g_opt.ping_ms;
    }
    if (!c->routed)
        return;
    for (int i = 0; i < c->nsubs; i++) {
        sim_sub *s = &c->subs[i];
        if (!s->valid || !g_syms[s->sym].trading) /* delisted: silent */
            continue;
        for (;;) {
            int64_t next = interval_next(s->iv, s->cur_open);
            if (next - 1 + g_opt.close_delay_ms > now)
                break;
            sim_agg a;
            market_candle(s->sym, s->iv, s->cur_open, next - 1, &a);
            if (!faults_drop_close(c, s, s->cur_open))
                send_event(c, s, s->cur_open, &a, now, true);
            s->cur_open = next;
            s->have_last = false;
        }
        if (now >= s->next_update) {
            s->next_update = (now / g_opt.update_ms + 1) * g_opt.update_ms;
            if (interval_open(s->iv, now) == s->cur_open) {
                sim_agg a;
                current_state(s->sym, s->iv, s->cur_open, now, &a);
                if (!s->have_last || !agg_eq(&a, &s->last)) {
                    send_event(c, s, s->cur_open, &a, now, false);
                    s->last = a;
                    s->have_last = true;
                }
            }
        }
    }
}

int64_t ws_next_due(const sim_conn *c, int64_t now)
{
    (void)now;
    int64_t due = INT64_MAX;
    if (!c->routed)
        return due;
    for (int i = 0; i < c->nsubs; i++) {
        const sim_sub *s = &c->subs[i];
        if (!s->valid)
            continue;
        int64_t close_due = interval_next(s->iv, s->cur_open) - 1 + g_opt.close_delay_ms;
        if (close_due < due)
            due = close_due;
        if (s->next_update < due)
            due = s->next_update;
    }
    return due;
}

void ws_conn_free(sim_conn *c)
{
    for (int i = 0; i < c->nsubs; i++)
        free(c->subs[i].name);
    free(c->subs);
    free(c->path);
    free(c->msg_times);
    sb_free(&c->frag);
    sb_free(&c->last_kline);
    if (c->hist >= 0) {
        hist[c->hist].open = false;
        hist[c->hist].ended = sim_real_ms();
    }
    for (int i = 0; i < nopen_ws; i++) {
        if (open_ws[i] == c) {
            open_ws[i] = open_ws[--nopen_ws];
            break;
        }
    }
    g_stats.connections_open--;
}

void ws_state_json(sbuf *b)
{
    sb_puts(b, "\"streams\":[");
    bool first = true;
    for (int k = 0; k < nhist; k++) { /* in connection order */
        if (!hist[k].open)
            continue;
        for (int i = 0; i < nopen_ws; i++) {
            const sim_conn *c = open_ws[i];
            if (c->hist != k)
                continue;
            for (int j = 0; j < c->nsubs; j++) {
                if (!first)
                    sb_puts(b, ",");
                first = false;
                sb_json_str(b, c->subs[j].name, strlen(c->subs[j].name));
            }
        }
    }
    sb_puts(b, "],\"connections\":[");
    for (int k = 0; k < nhist; k++) {
        if (k)
            sb_puts(b, ",");
        int64_t end = hist[k].open ? sim_real_ms() : hist[k].ended;
        sb_printf(b, "{\"id\":%llu,\"age_ms\":%lld,\"sni\":", (unsigned long long)hist[k].id,
                  (long long)(end - hist[k].born));
        if (hist[k].sni)
            sb_json_str(b, hist[k].sni, strlen(hist[k].sni));
        else
            sb_puts(b, "null");
        sb_puts(b, ",\"path\":");
        sb_json_str(b, hist[k].path, strlen(hist[k].path));
        sb_printf(b, ",\"streams\":%d,\"open\":%s}", hist[k].nstreams,
                  hist[k].open ? "true" : "false");
    }
    sb_puts(b, "]");
}

void ws_cleanup(void)
{
    for (int k = 0; k < nhist; k++) {
        free(hist[k].path);
        free(hist[k].sni);
    }
    free(hist);
    free(open_ws);
    free(memo);
    hist = NULL;
    open_ws = NULL;
    memo = NULL;
    nhist = caphist = nopen_ws = capopen_ws = memo_n = 0;
}
