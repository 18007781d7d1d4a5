/* market.c - the deterministic market of klinefeed-sim: every trade tick, candle and decimal
 * is a pure function of (seed, symbol, time), so REST rows and WebSocket events agree byte for
 * byte. Ticks are 250 ms; minutes, hours and days are cached aggregates of them. */
#include "sim.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_MS 60000LL
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define TICK_MS 250LL
#define TICKS_PER_MIN 240

sim_symbol *g_syms;
int g_nsyms;

static const struct {
    const char *name;
    int64_t ms; /* 0: calendar month */
} IVS[SIM_NIV] = {
    {"1m", MIN_MS},       {"3m", 3 * MIN_MS},    {"5m", 5 * MIN_MS},
    {"15m", 15 * MIN_MS}, {"30m", 30 * MIN_MS},  {"1h", HOUR_MS},
    {"2h", 2 * HOUR_MS},  {"4h", 4 * HOUR_MS},   {"6h", 6 * HOUR_MS},
    {"8h", 8 * HOUR_MS},  {"12h", 12 * HOUR_MS}, {"1d", DAY_MS},
    {"3d", 3 * DAY_MS},   {"1w", 7 * DAY_MS},    {"1M", 0},
};
enum { IV_1W = 13, IV_1MO = 14 };

static const struct {
    const char *name;
    int pp, qp;
    double base;
    int64_t qmax;
    int act;
    bool thin;
} KNOWN[] = {
    {"BTCUSDT", 2, 3, 83000.0, 300, 240, false}, {"ETHUSDT", 2, 3, 3000.0, 3000, 230, false},
    {"BNBUSDT", 2, 2, 600.0, 500, 180, false},   {"SOLUSDT", 4, 0, 140.0, 50, 200, false},
    {"XRPUSDT", 4, 1, 2.0, 5000, 200, false},    {"DOGEUSDT", 5, 0, 0.2, 20000, 190, false},
    {"ADAUSDT", 4, 0, 0.7, 5000, 150, false},    {"AVAXUSDT", 3, 1, 25.0, 100, 8, true},
};

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int64_t pow10i(int e)
{
    int64_t r = 1;
    while (e-- > 0)
        r *= 10;
    return r;
}

void market_add_symbol(const char *name, bool trading)
{
    size_t len = strlen(name);
    int idx = market_find(name, len);
    if (idx >= 0) {
        g_syms[idx].trading = trading;
        return;
    }
    g_syms = sim_xrealloc(g_syms, sizeof(sim_symbol) * (size_t)(g_nsyms + 1));
    sim_symbol *s = &g_syms[g_nsyms++];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    for (size_t i = 0; s->name[i]; i++) {
        char ch = s->name[i];
        s->lower[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    s->trading = trading;
    double base = 10.0;
    s->pp = 4;
    s->qp = 1;
    s->qmax = 1000;
    s->act = 128;
    for (size_t k = 0; k < sizeof KNOWN / sizeof KNOWN[0]; k++) {
        if (strcmp(KNOWN[k].name, name) == 0) {
            s->pp = KNOWN[k].pp;
            s->qp = KNOWN[k].qp;
            base = KNOWN[k].base;
            s->qmax = KNOWN[k].qmax;
            s->act = KNOWN[k].act;
            s->thin = KNOWN[k].thin;
        }
    }
    uint64_t h = 1469598103934665603ULL; /* FNV-1a of the name, then mixed with the seed */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)name[i]) * 1099511628211ULL;
    s->h = mix64(h ^ mix64(g_opt.seed));
    s->base_ticks = (int64_t)llround(base * (double)pow10i(s->pp));
    s->spread = s->base_ticks / 2500;
    if (s->spread < 2)
        s->spread = 2;
}

int market_find(const char *name, size_t len)
{
    for (int i = 0; i < g_nsyms; i++)
        if (strlen(g_syms[i].name) == len && memcmp(g_syms[i].name, name, len) == 0)
            return i;
    return -1;
}

int market_find_lower(const char *lower, size_t len)
{
    for (int i = 0; i < g_nsyms; i++)
        if (strlen(g_syms[i].lower) == len && memcmp(g_syms[i].lower, lower, len) == 0)
            return i;
    return -1;
}

int interval_parse(const char *s, size_t len)
{
    for (int i = 0; i < SIM_NIV; i++)
        if (strlen(IVS[i].name) == len && memcmp(IVS[i].name, s, len) == 0)
            return i;
    return -1;
}

const char *interval_name(int iv)
{
    return IVS[iv].name;
}

/* days since 1970-01-01 <-> proleptic Gregorian date */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floordiv(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m)
{
    z += 719468;
    int64_t era = floordiv(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int64_t interval_open(int iv, int64_t t)
{
    if (iv == IV_1MO) {
        int64_t y;
        int m;
        civil_from_days(floordiv(t, DAY_MS), &y, &m);
        return days_from_civil(y, m, 1) * DAY_MS;
    }
    if (iv == IV_1W) /* weeks start on Monday; 1970-01-01 was a Thursday */
        return floordiv(t + 3 * DAY_MS, 7 * DAY_MS) * 7 * DAY_MS - 3 * DAY_MS;
    return floordiv(t, IVS[iv].ms) * IVS[iv].ms;
}

int64_t interval_next(int iv, int64_t open)
{
    if (iv == IV_1MO) {
        int64_t y;
        int m;
        civil_from_days(floordiv(open, DAY_MS), &y, &m);
        if (++m > 12) {
            m = 1;
            y++;
        }
        return days_from_civil(y, m, 1) * DAY_MS;
    }
    return open + IVS[iv].ms;
}

int64_t market_listing_ms(void)
{
    const int64_t l = 1704067200000LL; /* 2024-01-01T00:00:00Z, a Monday */
    int64_t alt = floordiv(g_opt.start_ms - 365 * DAY_MS, DAY_MS) * DAY_MS;
    return alt < l ? alt : l;
}

int64_t market_symbol_listing(int sym)
{
    int64_t l = market_listing_ms();
    return g_syms[sym].listed_ms > l ? g_syms[sym].listed_ms : l;
}

/* ---- aggregate cache: open addressing, keyed by level/symbol/index, wiped when full */
typedef struct mc_ent {
    sim_agg a;
    uint64_t key; /* 0 = empty */
} mc_ent;

static mc_ent *mc;
static size_t mc_cap, mc_n;
#define MC_MAX_ENTRIES (1u << 18)

static uint64_t mc_key(int level, int sym, int64_t idx)
{
    return ((uint64_t)level << 60) | ((uint64_t)sym << 44) | ((uint64_t)idx & 0xFFFFFFFFFFFULL);
}

static bool mc_get(uint64_t key, sim_agg *out)
{
    if (!mc_cap)
        return false;
    size_t i = (size_t)mix64(key) & (mc_cap - 1);
    while (mc[i].key) {
        if (mc[i].key == key) {
            *out = mc[i].a;
            return true;
        }
        i = (i + 1) & (mc_cap - 1);
    }
    return false;
}

static void mc_put(uint64_t key, const sim_agg *a)
{
    if (mc_n + 1 > MC_MAX_ENTRIES) {
        memset(mc, 0, sizeof(mc_ent) * mc_cap);
        mc_n = 0;
    }
    if ((mc_n + 1) * 2 > mc_cap) {
        size_t ncap = mc_cap ? mc_cap * 2 : 4096;
        mc_ent *nt = sim_xmalloc(sizeof(mc_ent) * ncap);
        memset(nt, 0, sizeof(mc_ent) * ncap);
        for (size_t k = 0; k < mc_cap; k++) {
            if (!mc[k].key)
                continue;
            size_t i = (size_t)mix64(mc[k].key) & (ncap - 1);
            while (nt[i].key)
                i = (i + 1) & (ncap - 1);
            nt[i] = mc[k];
        }
        free(mc);
        mc = nt;
        mc_cap = ncap;
    }
    size_t i = (size_t)mix64(key) & (mc_cap - 1);
    while (mc[i].key && mc[i].key != key)
        i = (i + 1) & (mc_cap - 1);
    if (!mc[i].key)
        mc_n++;
    mc[i].key = key;
    mc[i].a = *a;
}

/* ---- ticks and minutes */
static bool minute_active(const sim_symbol *s, int64_t m)
{
    if (!s->thin)
        return true;
    return (mix64(s->h ^ ((uint64_t)m * 0xD6E8FEB86659FD93ULL)) & 0xff) < 64;
}

static int64_t anchor(const sim_symbol *s, int64_t m)
{
    const double two_pi = 6.283185307179586;
    double x = (double)m;
    double ph = (double)(s->h % 1000) / 1000.0 * two_pi;
    double f = 1.0 + 0.04 * sin(x * two_pi / 10080.0 + ph) +
               0.012 * sin(x * two_pi / 1440.0 + 2.0 * ph) + 0.003 * sin(x * two_pi / 97.0 + ph);
    int64_t a = (int64_t)llround((double)s->base_ticks * f);
    uint64_t r = mix64(s->h ^ ((uint64_t)m * 0xA0761D6478BD642FULL));
    a += (int64_t)(r % (uint64_t)(s->spread + 1)) - s->spread / 2;
    if (a < 2 * s->spread + 1)
        a = 2 * s->spread + 1;
    return a;
}

/* trades of ticks [m*240, m*240+k) only; n == 0 means no trade */
static void minute_raw(const sim_symbol *s, int64_t m, int k0, int k1, sim_agg *a)
{
    if (!minute_active(s, m))
        return;
    int64_t anc = anchor(s, m);
    uint64_t width = (uint64_t)(2 * s->spread + 1);
    for (int k = k0; k < k1; k++) {
        int64_t i = m * TICKS_PER_MIN + k;
        uint64_t r = mix64(s->h + (uint64_t)i * 0x9E3779B97F4A7C15ULL);
        if ((int)(r & 0xff) >= s->act)
            continue;
        int64_t nt = 1 + (int64_t)((r >> 8) % 20);
        int64_t price = anc + (int64_t)(((r >> 16) & 0xffff) % width) - s->spread;
        int64_t qty = nt * (1 + (int64_t)(((r >> 32) & 0xffff) % (uint64_t)s->qmax));
        int64_t buy = qty * (int64_t)((r >> 48) & 0xff) / 255;
        if (a->n == 0) {
            a->o = a->h = a->l = price;
            a->f = i * 32;
        }
        a->c = price;
        if (price > a->h)
            a->h = price;
        if (price < a->l)
            a->l = price;
        a->v += qty;
        a->V += buy;
        a->q += (__int128)price * qty;
        a->Q += (__int128)price * buy;
        a->n += nt;
        a->L = i * 32 + nt - 1;
    }
}

static void agg_zero(sim_agg *a)
{
    memset(a, 0, sizeof *a);
    a->f = a->L = -1;
}

static int64_t prev_close(int sym, int64_t m)
{
    const sim_symbol *s = &g_syms[sym];
    for (int64_t k = 1; k <= 1440; k++) {
        int64_t mm = m - k;
        sim_agg a;
        if (mc_get(mc_key(1, sym, mm), &a)) {
            if (a.n > 0)
                return a.c;
            continue;
        }
        agg_zero(&a);
        minute_raw(s, mm, 0, TICKS_PER_MIN, &a);
        if (a.n > 0)
            return a.c;
    }
    return anchor(s, m);
}

static void fill_empty(int sym, int64_t m, sim_agg *a)
{
    if (a->n == 0) {
        int64_t p = prev_close(sym, m);
        a->o = a->h = a->l = a->c = p;
        a->f = a->L = -1;
    }
}

static void minute_full(int sym, int64_t m, bool cache, sim_agg *out)
{
    uint64_t key = mc_key(1, sym, m);
    if (mc_get(key, out))
        return;
    agg_zero(out);
    minute_raw(&g_syms[sym], m, 0, TICKS_PER_MIN, out);
    fill_empty(sym, m, out);
    if (cache)
        mc_put(key, out);
}

static void combine(sim_agg *acc, bool *first, const sim_agg *p)
{
    if (*first) {
        *acc = *p;
        *first = false;
        return;
    }
    acc->c = p->c;
    if (p->h > acc->h)
        acc->h = p->h;
    if (p->l < acc->l)
        acc->l = p->l;
    acc->v += p->v;
    acc->V += p->V;
    acc->q += p->q;
    acc->Q += p->Q;
    acc->n += p->n;
    if (acc->f == -1)
        acc->f = p->f;
    if (p->L != -1)
        acc->L = p->L;
}

static void hour_agg(int sym, int64_t hr, sim_agg *out)
{
    uint64_t key = mc_key(2, sym, hr);
    if (mc_get(key, out))
        return;
    bool first = true;
    for (int64_t k = 0; k < 60; k++) {
        sim_agg a;
        minute_full(sym, hr * 60 + k, false, &a);
        combine(out, &first, &a);
    }
    mc_put(key, out);
}

static void day_agg(int sym, int64_t d, sim_agg *out)
{
    uint64_t key = mc_key(3, sym, d);
    if (mc_get(key, out))
        return;
    bool first = true;
    for (int64_t k = 0; k < 24; k++) {
        sim_agg a;
        hour_agg(sym, d * 24 + k, &a);
        combine(out, &first, &a);
    }
    mc_put(key, out);
}

/* partial current minute, extended incrementally while the clock moves forward */
typedef struct partial_memo {
    int64_t m;
    int k;
    sim_agg raw;
} partial_memo;
static partial_memo *pmemo;
static int pmemo_n;

static void minute_partial(int sym, int64_t m, int k, sim_agg *out)
{
    if (pmemo_n != g_nsyms) {
        pmemo = sim_xrealloc(pmemo, sizeof(partial_memo) * (size_t)g_nsyms);
        for (int i = 0; i < g_nsyms; i++)
            pmemo[i].m = INT64_MIN;
        pmemo_n = g_nsyms;
    }
    partial_memo *pm = &pmemo[sym];
    if (pm->m != m || pm->k > k) {
        pm->m = m;
        pm->k = 0;
        agg_zero(&pm->raw);
    }
    minute_raw(&g_syms[sym], m, pm->k, k, &pm->raw);
    pm->k = k;
    *out = pm->raw;
    fill_empty(sym, m, out);
}

void market_candle(int sym, int iv, int64_t open, int64_t now, sim_agg *out)
{
    int64_t end = interval_next(iv, open);
    bool first = true;
    int64_t t = open;
    agg_zero(out);
    while (t < end && t <= now) {
        sim_agg p;
        if (t % DAY_MS == 0 && t + DAY_MS <= end && t + DAY_MS - TICK_MS <= now) {
            day_agg(sym, t / DAY_MS, &p);
            t += DAY_MS;
        } else if (t % HOUR_MS == 0 && t + HOUR_MS <= end && t + HOUR_MS - TICK_MS <= now) {
            hour_agg(sym, t / HOUR_MS, &p);
            t += HOUR_MS;
        } else if (t + MIN_MS - TICK_MS <= now) {
            minute_full(sym, floordiv(t, MIN_MS), true, &p);
            t += MIN_MS;
        } else {
            int k = (int)((now - t) / TICK_MS) + 1;
            minute_partial(sym, floordiv(t, MIN_MS), k, &p);
            t = end;
        }
        combine(out, &first, &p);
    }
    if (first) {
        int64_t pc = prev_close(sym, floordiv(open, MIN_MS));
        out->o = out->h = out->l = out->c = pc;
    }
}

bool agg_eq(const sim_agg *a, const sim_agg *b)
{
    return a->q == b->q && a->Q == b->Q && a->o == b->o && a->h == b->h && a->l == b->l &&
           a->c == b->c && a->v == b->v && a->V == b->V && a->n == b->n && a->f == b->f &&
           a->L == b->L;
}

void market_fmt_event(sbuf *b, int sym, int iv, int64_t open, const sim_agg *a, int64_t E,
                      bool closed, const char *stream)
{
    const sim_symbol *s = &g_syms[sym];
    size_t nlen = strlen(s->name);
    if (stream) {
        sb_puts(b, "{\"stream\":");
        sb_json_str(b, stream, strlen(stream));
        sb_puts(b, ",\"data\":");
    }
    sb_printf(b, "{\"e\":\"kline\",\"E\":%lld,\"s\":", (long long)E);
    sb_json_str(b, s->name, nlen);
    sb_printf(b, ",\"k\":{\"t\":%lld,\"T\":%lld,\"s\":", (long long)open,
              (long long)(interval_next(iv, open) - 1));
    sb_json_str(b, s->name, nlen);
    sb_printf(b, ",\"i\":\"%s\",\"f\":%lld,\"L\":%lld,\"o\":\"", IVS[iv].name, (long long)a->f,
              (long long)a->L);
    sb_dec(b, a->o, s->pp);
    sb_puts(b, "\",\"c\":\"");
    sb_dec(b, a->c, s->pp);
    sb_puts(b, "\",\"h\":\"");
    sb_dec(b, a->h, s->pp);
    sb_puts(b, "\",\"l\":\"");
    sb_dec(b, a->l, s->pp);
    sb_puts(b, "\",\"v\":\"");
    sb_dec(b, a->v, s->qp);
    sb_printf(b, "\",\"n\":%lld,\"x\":%s,\"q\":\"", (long long)a->n, closed ? "true" : "false");
    sb_dec(b, a->q, s->pp + s->qp);
    sb_puts(b, "\",\"V\":\"");
    sb_dec(b, a->V, s->qp);
    sb_puts(b, "\",\"Q\":\"");
    sb_dec(b, a->Q, s->pp + s->qp);
    sb_puts(b, "\",\"B\":\"0\"}}");
    if (stream)
        sb_puts(b, "}");
}

void market_fmt_row(sbuf *b, int sym, int iv, int64_t open, const sim_agg *a)
{
    const sim_symbol *s = &g_syms[sym];
    sb_printf(b, "[%lld,\"", (long long)open);
    sb_dec(b, a->o, s->pp);
    sb_puts(b, "\",\"");
    sb_dec(b, a->h, s->pp);
    sb_puts(b, "\",\"");
    sb_dec(b, a->l, s->pp);
    sb_puts(b, "\",\"");
    sb_dec(b, a->c, s->pp);
    sb_puts(b, "\",\"");
    sb_dec(b, a->v, s->qp);
    sb_printf(b, "\",%lld,\"", (long long)(interval_next(iv, open) - 1));
    sb_dec(b, a->q, s->pp + s->qp);
    sb_printf(b, "\",%lld,\"", (long long)a->n);
    sb_dec(b, a->V, s->qp);
    sb_puts(b, "\",\"");
    sb_dec(b, a->Q, s->pp + s->qp);
    sb_puts(b, "\",\"0\"]");
}

void market_cleanup(void)
{
    free(mc);
    free(pmemo);
    free(g_syms);
    mc = NULL;
    pmemo = NULL;
    g_syms = NULL;
    mc_cap = mc_n = 0;
    pmemo_n = g_nsyms = 0;
}
