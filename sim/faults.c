/* faults.c - fault injection of klinefeed-sim: abrupt resets, stalls, server close frames,
 * refusal periods, hostile frames, dropped closing updates and the connection age limit on
 * the WebSocket side (the REST faults live in rest.c). Every random choice comes from one
 * PRNG seeded by --fault-seed, so a run is reproducible given the same client behaviour. */
#include "sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

sim_fstats g_fstats;

static uint64_t rng_s[4];

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t fault_rand_u64(void) /* xoshiro256** */
{
    uint64_t r = rotl(rng_s[1] * 5, 7) * 9;
    uint64_t t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return r;
}

double fault_rand(void)
{
    return (double)(fault_rand_u64() >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- periodic WebSocket faults */
enum { FK_RESET, FK_STALL, FK_CLOSE, FK_REFUSE, FK_GARBAGE, FK_N };

static int64_t next_due[FK_N]; /* real ms; INT64_MAX = off */
static int64_t refuse_until = -1;
static int close_kind, garbage_kind;

static double every(int k)
{
    switch (k) {
    case FK_RESET:
        return g_opt.fault_reset_every;
    case FK_STALL:
        return g_opt.fault_stall_every;
    case FK_CLOSE:
        return g_opt.fault_close_every;
    case FK_REFUSE:
        return g_opt.fault_refuse_every;
    default:
        return g_opt.fault_garbage_every;
    }
}

/* exponentially distributed gap with the given mean (seconds), at least 1 ms */
static int64_t gap_ms(double mean_s)
{
    double u = fault_rand();
    double ms = -log(1.0 - u) * mean_s * 1000.0;
    if (ms > 1e12)
        ms = 1e12;
    return ms < 1 ? 1 : (int64_t)ms;
}

void faults_init(void)
{
    uint64_t x = g_opt.fault_seed;
    for (int i = 0; i < 4; i++)
        rng_s[i] = splitmix(&x);
    for (int k = 0; k < FK_N; k++)
        next_due[k] = every(k) > 0 ? g_opt.faults_start_ms + gap_ms(every(k)) : INT64_MAX;
}

bool faults_active(int64_t rnow)
{
    return rnow >= g_opt.faults_start_ms && (!g_opt.faults_stop_ms || rnow < g_opt.faults_stop_ms);
}

bool faults_refusing(int64_t rnow)
{
    return rnow < refuse_until;
}

void faults_reset_fd(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

static bool eligible(const sim_conn *c)
{
    return c->ws && !c->closing && !c->dead && !c->stalled && !c->flood;
}

static sim_conn *pick(sim_conn **conns, int n)
{
    int ne = 0;
    for (int i = 0; i < n; i++)
        ne += eligible(conns[i]);
    if (!ne)
        return NULL;
    int k = (int)(fault_rand_u64() % (uint64_t)ne);
    for (int i = 0; i < n; i++)
        if (eligible(conns[i]) && k-- == 0)
            return conns[i];
    return NULL;
}

/* a kline event of this connection's data: its last kline frame, else the current state of
 * its first valid stream (or of the first symbol's 1m candle) */
static void sample_kline(const sim_conn *c, sbuf *b, bool fresh)
{
    if (!fresh && c->last_kline.len) {
        sb_put(b, c->last_kline.p, c->last_kline.len);
        return;
    }
    int sym = 0, iv = 0;
    const char *stream = NULL;
    for (int i = 0; i < c->nsubs; i++) {
        if (c->subs[i].valid) {
            sym = c->subs[i].sym;
            iv = c->subs[i].iv;
            stream = c->subs[i].name;
            break;
        }
    }
    int64_t now = sim_now();
    int64_t open = interval_open(iv, now);
    sim_agg a;
    market_candle(sym, iv, open, now, &a);
    market_fmt_event(b, sym, iv, open, &a, now, false, c->combined && stream ? stream : NULL);
}

static const char *const GARBAGE_NAMES[] = {
    "non-JSON text",   "truncated kline",    "binary frame",        "oversized text (2 MiB)",
    "duplicate kline", "unknown event type", "kline with extra key"};

static void send_garbage(sim_conn *c)
{
    int kind = garbage_kind;
    garbage_kind = (garbage_kind + 1) % 7;
    sbuf b = {0};
    int op = 1;
    switch (kind) {
    case 0:
        sb_puts(&b, "<html><body>502 Bad Gateway</body></html>");
        break;
    case 1:
        sample_kline(c, &b, false);
        b.len /= 2;
        break;
    case 2:
        op = 2;
        for (int i = 0; i < 64; i++) {
            unsigned char x = (unsigned char)(fault_rand_u64() & 0xff);
            sb_put(&b, &x, 1);
        }
        break;
    case 3: {
        sb_puts(&b, "{\"e\":\"kline\",\"pad\":\"");
        size_t n = (2u << 20) - b.len - 2;
        sb_reserve(&b, n + 2);
        memset(b.p + b.len, 'x', n);
        b.len += n;
        sb_puts(&b, "\"}");
        break;
    }
    case 4:
        sample_kline(c, &b, false);
        break;
    case 5: {
        const char *stream = NULL;
        for (int i = 0; i < c->nsubs && !stream; i++)
            if (c->subs[i].valid)
                stream = c->subs[i].name;
        if (c->combined && stream) {
            sb_puts(&b, "{\"stream\":");
            sb_json_str(&b, stream, strlen(stream));
            sb_puts(&b, ",\"data\":");
        }
        sb_printf(&b, "{\"e\":\"somethingNew\",\"E\":%lld,\"s\":\"%s\",\"z\":[1,2,{\"a\":null}]}",
                  (long long)sim_now(), g_nsyms ? g_syms[0].name : "BTCUSDT");
        if (c->combined && stream)
            sb_puts(&b, "}");
        break;
    }
    default: {
        /* the current (true) state, with an unknown key added inside k */
        sample_kline(c, &b, true);
        char *k = strstr(b.p, "\"B\":\"0\"");
        if (k) {
            size_t at = (size_t)(k - b.p) + 7;
            sbuf t = {0};
            sb_put(&t, b.p, at);
            sb_puts(&t, ",\"newKey\":\"1\"");
            sb_put(&t, b.p + at, b.len - at);
            sb_free(&b);
            b = t;
        }
        break;
    }
    }
    ws_send_frame(c, op, b.p, b.len);
    sb_free(&b);
    g_fstats.garbage++;
    fprintf(stderr, "klinefeed-sim: fault: garbage (%s) on ws connection %llu\n",
            GARBAGE_NAMES[kind], (unsigned long long)c->id);
}

static void inject(int k, sim_conn *c, int64_t rnow)
{
    switch (k) {
    case FK_RESET:
        faults_reset_fd(c->fd);
        c->wb.len = 0;
        c->dead = true;
        g_fstats.reset++;
        fprintf(stderr, "klinefeed-sim: fault: reset ws connection %llu\n",
                (unsigned long long)c->id);
        break;
    case FK_STALL:
        c->stalled = true;
        g_fstats.stall++;
        fprintf(stderr, "klinefeed-sim: fault: stall ws connection %llu\n",
                (unsigned long long)c->id);
        break;
    case FK_CLOSE:
        g_fstats.close++;
        fprintf(stderr, "klinefeed-sim: fault: close ws connection %llu\n",
                (unsigned long long)c->id);
        if (close_kind++ % 2 == 0)
            ws_close(c, 1001, "going away");
        else
            ws_close(c, 1008, "Too many requests");
        break;
    case FK_GARBAGE:
        send_garbage(c);
        break;
    default:
        (void)rnow;
        break;
    }
}

void faults_tick(sim_conn **conns, int n, int64_t rnow)
{
    if (g_opt.max_conn_age_ms > 0) {
        for (int i = 0; i < n; i++) {
            sim_conn *c = conns[i];
            if (eligible(c) && rnow - c->born_real >= g_opt.max_conn_age_ms) {
                g_fstats.aged_out++;
                fprintf(stderr, "klinefeed-sim: fault: ws connection %llu aged out (%lld ms)\n",
                        (unsigned long long)c->id, (long long)(rnow - c->born_real));
                ws_close(c, 1001, "going away");
            }
        }
    }
    for (int k = 0; k < FK_N; k++) {
        if (rnow < next_due[k])
            continue;
        if (!faults_active(rnow)) { /* past --faults-stop-ms: calm from now on */
            next_due[k] = INT64_MAX;
            continue;
        }
        if (k == FK_REFUSE) {
            refuse_until = rnow + g_opt.refuse_ms;
            g_fstats.refused++;
            fprintf(stderr, "klinefeed-sim: fault: refusing new connections for %lld ms\n",
                    (long long)g_opt.refuse_ms);
            next_due[k] = refuse_until + gap_ms(every(k));
            continue;
        }
        sim_conn *c = pick(conns, n);
        if (c)
            inject(k, c, rnow);
        next_due[k] = rnow + gap_ms(every(k));
    }
}

int64_t faults_next_due(sim_conn *const *conns, int n, int64_t rnow)
{
    int64_t due = INT64_MAX;
    for (int k = 0; k < FK_N; k++)
        if (next_due[k] < due)
            due = next_due[k];
    if (g_opt.max_conn_age_ms > 0)
        for (int i = 0; i < n; i++)
            if (eligible(conns[i]) && conns[i]->born_real + g_opt.max_conn_age_ms < due)
                due = conns[i]->born_real + g_opt.max_conn_age_ms;
    return due == INT64_MAX ? INT64_MAX : due - rnow;
}

/* per (connection, candle), independent of the order of events */
bool faults_drop_close(const sim_conn *c, const sim_sub *s, int64_t open)
{
    if (g_opt.drop_close_rate <= 0 || !faults_active(sim_real_ms()))
        return false;
    bool drop = g_opt.drop_close_rate >= 1;
    if (!drop) {
        uint64_t x = g_opt.fault_seed ^ (c->id * 0xD1B54A32D192ED03ULL) ^ ((uint64_t)s->sym << 40) ^
                     ((uint64_t)s->iv << 56) ^ (uint64_t)open;
        splitmix(&x);
        double u = (double)(splitmix(&x) >> 11) * (1.0 / 9007199254740992.0);
        drop = u < g_opt.drop_close_rate;
    }
    if (drop) {
        g_fstats.dropped_closes++;
        fprintf(stderr, "klinefeed-sim: fault: ws connection %llu: x:true of %s t=%lld dropped\n",
                (unsigned long long)c->id, s->name, (long long)open);
    }
    return drop;
}

void faults_state_json(sbuf *b)
{
    const sim_fstats *f = &g_fstats;
    sb_printf(b,
              "\"faults\":{\"reset\":%llu,\"stall\":%llu,\"close\":%llu,\"refused\":%llu,"
              "\"refused_connections\":%llu,\"garbage\":%llu,\"dropped_closes\":%llu,"
              "\"aged_out\":%llu,\"rest_429\":%llu,\"rest_418\":%llu,\"rest_500\":%llu,"
              "\"rest_slow\":%llu,\"rest_timeout\":%llu}",
              (unsigned long long)f->reset, (unsigned long long)f->stall,
              (unsigned long long)f->close, (unsigned long long)f->refused,
              (unsigned long long)f->refused_connections, (unsigned long long)f->garbage,
              (unsigned long long)f->dropped_closes, (unsigned long long)f->aged_out,
              (unsigned long long)f->rest_429, (unsigned long long)f->rest_418,
              (unsigned long long)f->rest_500, (unsigned long long)f->rest_slow,
              (unsigned long long)f->rest_timeout);
}
