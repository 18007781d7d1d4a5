/* kf_config: typed setters that check each value at once and name it when it is bad. */
#include "collector/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "sink/sink.h"
#include "transport/conn.h"

static kf_err cfg_fail(kf_config *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static kf_err cfg_fail(kf_config *cfg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cfg->errmsg, sizeof cfg->errmsg, fmt, ap);
    va_end(ap);
    return KF_ERR_CONFIG;
}

kf_config *kf_config_new(void)
{
    kf_config *cfg = kf__calloc(1, sizeof *cfg);
    if (!cfg)
        return NULL;
    cfg->ring_size = 1000;
    cfg->streams_per_connection = 1024;
    cfg->names_per_subscribe = 200;
    cfg->messages_per_second = 5;
    cfg->connect_timeout_ms = 10000;
    cfg->max_message_size = 1 << 20;
    cfg->validate = KF_VALIDATE_IF_REACHABLE;
    cfg->tls_verify = true;
    cfg->backoff_initial_ms = 1000;
    cfg->backoff_max_ms = 30000;
    cfg->ping_interval_ms = 20000;
    cfg->dead_after_ms = 30000;
    cfg->max_age_ms = (23 * 60 + 50) * 60 * 1000ULL;
    cfg->backfill = true;
    cfg->rest_weight_budget = 2400;
    cfg->conn_budget = 300;
    cfg->conn_budget_window_ms = 300000;
    cfg->log_level = KF_LOG_INFO;
    cfg->sink_queue_rows = 65536;
    cfg->symbol_reserve = 256;
    return cfg;
}

static void cfg_free_strings(kf_config *cfg)
{
    kf__free(cfg->symbols);
    if (cfg->api_secret)
        memset(cfg->api_secret, 0, strlen(cfg->api_secret));
    kf__free(cfg->api_key);
    kf__free(cfg->api_secret);
    kf__free(cfg->ws_url);
    kf__free(cfg->rest_url);
    kf__free(cfg->ca_file);
    kf__free(cfg->state_dir);
    for (size_t i = 0; i < cfg->nsinks; i++)
        kf__free(cfg->sinks[i]);
    kf__free(cfg->sinks);
}

void kf_config_free(kf_config *cfg)
{
    if (!cfg)
        return;
    cfg_free_strings(cfg);
    kf__free(cfg);
}

const char *kf_config_errmsg(const kf_config *cfg)
{
    return cfg ? cfg->errmsg : "no config";
}

/* Length of the valid UTF-8 sequence starting at s (n bytes left), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        len = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        len = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        len = 4;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

static kf_err add_symbol_n(kf_config *cfg, const char *sym, size_t n)
{
    char up[KF_SYMBOL_MAX + 1];
    if (n == 0)
        return cfg_fail(cfg, "symbol \"\" is empty");
    if (n > KF_SYMBOL_MAX)
        return cfg_fail(cfg, "symbol \"%.*s\" is over %d bytes", (int)(n > 64 ? 64 : n), sym,
                        KF_SYMBOL_MAX);
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)sym[i];
        if (c < 0x20 || c == 0x7f || c == ' ' || strchr("/@?&\"\\,", c))
            return cfg_fail(cfg, "symbol \"%.*s\" contains a forbidden character (0x%02x)", (int)n,
                            sym, c);
        size_t l = utf8_len((const unsigned char *)sym + i, n - i);
        if (!l)
            return cfg_fail(cfg, "symbol \"%.*s\" is not valid UTF-8", (int)n, sym);
        for (size_t j = 0; j < l; j++) {
            char b = sym[i + j];
            up[i + j] = (b >= 'a' && b <= 'z') ? (char)(b - 'a' + 'A') : b;
        }
        i += l;
    }
    up[n] = 0;
    for (size_t i = 0; i < cfg->nsymbols; i++)
        if (strcmp(cfg->symbols[i], up) == 0)
            return KF_OK;
    if (cfg->nsymbols == cfg->symbols_cap) {
        size_t cap = cfg->symbols_cap ? cfg->symbols_cap * 2 : 8;
        void *p = kf__realloc(cfg->symbols, cap * sizeof *cfg->symbols);
        if (!p)
            return KF_ERR_NOMEM;
        cfg->symbols = p;
        cfg->symbols_cap = cap;
    }
    memcpy(cfg->symbols[cfg->nsymbols++], up, n + 1);
    return KF_OK;
}

kf_err kf_config_add_symbol(kf_config *cfg, const char *sym)
{
    if (!cfg || !sym)
        return KF_ERR_INVALID_ARG;
    return add_symbol_n(cfg, sym, strlen(sym));
}

static kf_err add_interval_n(kf_config *cfg, const char *s, size_t n)
{
    int i = kf_interval_index(s, n);
    if (i < 0)
        return cfg_fail(cfg,
                        "interval \"%.*s\" is not a Binance interval (1m 3m 5m 15m 30m 1h 2h 4h "
                        "6h 8h 12h 1d 3d 1w 1M)",
                        (int)(n > 32 ? 32 : n), s);
    cfg->intervals[i] = true;
    return KF_OK;
}

kf_err kf_config_add_interval(kf_config *cfg, const char *interval)
{
    if (!cfg || !interval)
        return KF_ERR_INVALID_ARG;
    return add_interval_n(cfg, interval, strlen(interval));
}

static kf_err add_csv(kf_config *cfg, const char *csv,
                      kf_err (*add)(kf_config *, const char *, size_t))
{
    if (!cfg || !csv)
        return KF_ERR_INVALID_ARG;
    const char *p = csv;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        kf_err e = add(cfg, p, n);
        if (e)
            return e;
        if (!comma)
            return KF_OK;
        p = comma + 1;
    }
}

kf_err kf_config_add_symbols(kf_config *cfg, const char *csv)
{
    return add_csv(cfg, csv, add_symbol_n);
}
kf_err kf_config_add_intervals(kf_config *cfg, const char *csv)
{
    return add_csv(cfg, csv, add_interval_n);
}

kf_err kf_config_set_testnet(kf_config *cfg, bool testnet)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    cfg->testnet = testnet;
    return KF_OK;
}

static kf_err set_str(char **dst, const char *src)
{
    char *d = NULL;
    if (src && !(d = kf__strdup(src)))
        return KF_ERR_NOMEM;
    kf__free(*dst);
    *dst = d;
    return KF_OK;
}

kf_err kf_config_set_api_key(kf_config *cfg, const char *key, const char *secret)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (cfg->api_secret)
        memset(cfg->api_secret, 0, strlen(cfg->api_secret));
    kf_err e = set_str(&cfg->api_key, key);
    return e ? e : set_str(&cfg->api_secret, secret);
}

static kf_err set_url(kf_config *cfg, char **dst, const char *url, const char *a, const char *b,
                      const char *what)
{
    if (!cfg || !url)
        return KF_ERR_INVALID_ARG;
    size_t la = strlen(a), lb = strlen(b), n = strlen(url);
    const char *host = NULL;
    if (strncmp(url, a, la) == 0)
        host = url + la;
    else if (strncmp(url, b, lb) == 0)
        host = url + lb;
    if (!host)
        return cfg_fail(cfg, "%s \"%.200s\" must start with %s or %s", what, url, a, b);
    if (!*host || *host == '/' || *host == ':')
        return cfg_fail(cfg, "%s \"%.200s\" has no host", what, url);
    if (n > 1000)
        return cfg_fail(cfg, "%s is over 1000 bytes", what);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return cfg_fail(cfg, "%s \"%.200s\" contains whitespace or control bytes", what, url);
    kf__url u; /* the port, the host's length...: refused here, naming the value, not at start */
    char err[300];
    if (kf__url_parse(url, &u, err, sizeof err) != KF_OK) {
        const char *why = strstr(err, "\": "); /* the parser's message names the URL too */
        return cfg_fail(cfg, "%s \"%.200s\": %s", what, url, why ? why + 3 : err);
    }
    return set_str(dst, url);
}

kf_err kf_config_set_ws_url(kf_config *cfg, const char *url)
{
    return set_url(cfg, cfg ? &cfg->ws_url : NULL, url, "ws://", "wss://", "WebSocket URL");
}

kf_err kf_config_set_rest_url(kf_config *cfg, const char *url)
{
    return set_url(cfg, cfg ? &cfg->rest_url : NULL, url, "http://", "https://", "REST URL");
}

#define RANGE_SETTER(fn, field, type, lo, hi, what)                                                \
    kf_err fn(kf_config *cfg, type v)                                                              \
    {                                                                                              \
        if (!cfg)                                                                                  \
            return KF_ERR_INVALID_ARG;                                                             \
        if (v < (lo) || v > (hi))                                                                  \
            return cfg_fail(cfg, what " %llu is out of range %llu..%llu", (unsigned long long)v,   \
                            (unsigned long long)(lo), (unsigned long long)(hi));                   \
        cfg->field = v;                                                                            \
        return KF_OK;                                                                              \
    }

RANGE_SETTER(kf_config_set_ring_size, ring_size, size_t, 1, 1000000, "ring size")
RANGE_SETTER(kf_config_set_streams_per_connection, streams_per_connection, size_t, 1, 1024,
             "streams per connection")
RANGE_SETTER(kf_config_set_names_per_subscribe, names_per_subscribe, size_t, 1, 1024,
             "names per SUBSCRIBE")
RANGE_SETTER(kf_config_set_messages_per_second, messages_per_second, unsigned, 1, 10,
             "messages per second")
RANGE_SETTER(kf_config_set_connect_timeout_ms, connect_timeout_ms, unsigned, 100, 600000,
             "connect timeout (ms)")
RANGE_SETTER(kf_config_set_max_message_size, max_message_size, size_t, 4096, 64u << 20,
             "max message size")

/* FNV-1a 64 (offset basis 14695981039346656037, prime 1099511628211) over the symbol's bytes
 * as given: fixed by its definition, the same on every machine and in every version. */
static uint64_t fnv1a64(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    return h;
}

unsigned kf_shard_of(const char *symbol, unsigned n)
{
    if (!symbol || !n)
        return 0;
    char up[KF_SYMBOL_MAX + 1];
    size_t i = 0;
    for (; symbol[i] && i < KF_SYMBOL_MAX; i++)
        up[i] = symbol[i] >= 'a' && symbol[i] <= 'z' ? (char)(symbol[i] - 'a' + 'A') : symbol[i];
    up[i] = 0;
    return (unsigned)(fnv1a64(up) % n) + 1;
}

kf_err kf_config_set_shard(kf_config *cfg, unsigned k, unsigned n)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (n == 0 && k == 0) {
        cfg->shard_k = cfg->shard_n = 0;
        return KF_OK;
    }
    if (n < 1 || n > 1000000)
        return cfg_fail(cfg, "shard count %u is out of range 1..1000000", n);
    if (k < 1 || k > n)
        return cfg_fail(cfg, "shard %u/%u: K is out of range 1..%u", k, n, n);
    cfg->shard_k = k;
    cfg->shard_n = n;
    return KF_OK;
}

kf_err kf__config_apply_shard(kf_config *cfg, char *err, size_t errlen)
{
    if (!cfg->shard_n)
        return KF_OK;
    size_t kept = 0, total = cfg->nsymbols;
    for (size_t i = 0; i < total; i++)
        if (kf_shard_of(cfg->symbols[i], cfg->shard_n) == cfg->shard_k) {
            if (kept != i)
                memcpy(cfg->symbols[kept], cfg->symbols[i], sizeof cfg->symbols[kept]);
            kept++;
        }
    cfg->nsymbols = kept;
    if (kept)
        return KF_OK;
    if (err && errlen)
        snprintf(err, errlen,
                 "shard %u/%u holds none of the %zu configured symbols (kf_shard_of: FNV-1a 64 "
                 "of the uppercase symbol mod %u, plus 1)",
                 cfg->shard_k, cfg->shard_n, total, cfg->shard_n);
    return KF_ERR_CONFIG;
}

kf_err kf_config_set_symbol_refresh(kf_config *cfg, unsigned ms)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (ms != 0 && (ms < 1000 || ms > 7u * 86400000u))
        return cfg_fail(
            cfg, "symbol refresh period %u ms is out of range (0 off, or 1000..604800000)", ms);
    cfg->symbol_refresh_ms = ms;
    return KF_OK;
}

kf_err kf_config_set_symbol_reserve(kf_config *cfg, size_t symbols)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (symbols > 100000)
        return cfg_fail(cfg, "symbol reserve %zu is out of range 0..100000", symbols);
    cfg->symbol_reserve = symbols;
    return KF_OK;
}

kf_err kf_config_set_reconnect_backoff(kf_config *cfg, unsigned initial_ms, unsigned max_ms)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (initial_ms < 10 || initial_ms > 600000)
        return cfg_fail(cfg, "reconnect initial delay %u ms is out of range 10..600000",
                        initial_ms);
    if (max_ms < initial_ms || max_ms > 3600000)
        return cfg_fail(cfg, "reconnect maximum delay %u ms is out of range %u..3600000", max_ms,
                        initial_ms);
    cfg->backoff_initial_ms = initial_ms;
    cfg->backoff_max_ms = max_ms;
    return KF_OK;
}

kf_err kf_config_set_liveness(kf_config *cfg, unsigned ping_interval_ms, unsigned dead_after_ms)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (ping_interval_ms < 100 || ping_interval_ms > 600000)
        return cfg_fail(cfg, "ping interval %u ms is out of range 100..600000", ping_interval_ms);
    if (dead_after_ms < 200 || dead_after_ms > 3600000)
        return cfg_fail(cfg, "liveness timeout %u ms is out of range 200..3600000", dead_after_ms);
    cfg->ping_interval_ms = ping_interval_ms;
    cfg->dead_after_ms = dead_after_ms;
    return KF_OK;
}

kf_err kf_config_set_max_connection_age_ms(kf_config *cfg, uint64_t max_age_ms)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (max_age_ms < 1000 || max_age_ms > 24 * 3600 * 1000ULL)
        return cfg_fail(cfg, "maximum connection age %llu ms is out of range 1000..86400000",
                        (unsigned long long)max_age_ms);
    cfg->max_age_ms = max_age_ms;
    return KF_OK;
}

kf_err kf_config_set_connection_budget(kf_config *cfg, unsigned n, unsigned window_ms)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (n < 1 || n > 100000 || window_ms < 1000 || window_ms > 86400000)
        return cfg_fail(
            cfg, "connection budget %u per %u ms is out of range (1..100000 per 1000..86400000 ms)",
            n, window_ms);
    cfg->conn_budget = n;
    cfg->conn_budget_window_ms = window_ms;
    return KF_OK;
}

kf_err kf_config_set_backfill(kf_config *cfg, bool on)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    cfg->backfill = on;
    return KF_OK;
}

kf_err kf_config_set_backfill_from(kf_config *cfg, int64_t from_ms)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (from_ms < 1262304000000LL || from_ms > 4102444800000LL) /* 2010 .. 2100 */
        return cfg_fail(cfg, "backfill start %lld ms is not a time between 2010 and 2100",
                        (long long)from_ms);
    cfg->has_backfill_from = true;
    cfg->backfill_from = from_ms;
    return KF_OK;
}

kf_err kf_config_set_rest_weight_budget(kf_config *cfg, unsigned per_minute)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (per_minute < 10 || per_minute > 1000000)
        return cfg_fail(cfg, "REST weight budget %u per minute is out of range 10..1000000",
                        per_minute);
    cfg->rest_weight_budget = per_minute;
    return KF_OK;
}

kf_err kf_config_set_validate(kf_config *cfg, kf_validate mode)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (mode != KF_VALIDATE_IF_REACHABLE && mode != KF_VALIDATE_REQUIRED && mode != KF_VALIDATE_OFF)
        return cfg_fail(cfg, "validate mode %d is not one of 0, 1, 2", (int)mode);
    cfg->validate = mode;
    return KF_OK;
}

kf_err kf_config_set_tls_verify(kf_config *cfg, bool verify)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    cfg->tls_verify = verify;
    return KF_OK;
}

kf_err kf_config_set_ca_file(kf_config *cfg, const char *path)
{
    return cfg ? set_str(&cfg->ca_file, path) : KF_ERR_INVALID_ARG;
}

kf_err kf_config_set_log(kf_config *cfg, kf_log_fn fn, void *userdata, kf_log_level level)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if ((int)level < KF_LOG_DEBUG || level > KF_LOG_OFF)
        return cfg_fail(cfg, "log level %d is not one of 0..4", (int)level);
    cfg->log_fn = fn;
    cfg->log_userdata = userdata;
    cfg->log_level = level;
    return KF_OK;
}

kf_err kf_config_on_kline(kf_config *cfg, kf_kline_fn fn, void *userdata)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    cfg->on_kline = fn;
    cfg->on_kline_ud = userdata;
    return KF_OK;
}

kf_err kf_config_on_closed(kf_config *cfg, kf_kline_fn fn, void *userdata)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    cfg->on_closed = fn;
    cfg->on_closed_ud = userdata;
    return KF_OK;
}

kf_err kf_config_on_raw(kf_config *cfg, kf_raw_fn fn, void *userdata)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    cfg->on_raw = fn;
    cfg->on_raw_ud = userdata;
    return KF_OK;
}

kf_err kf_config_add_sink(kf_config *cfg, const char *spec)
{
    if (!cfg || !spec)
        return KF_ERR_INVALID_ARG;
    if (kf_sink_spec_check(spec, cfg->errmsg, sizeof cfg->errmsg) != KF_OK)
        return KF_ERR_CONFIG;
    for (size_t i = 0; i < cfg->nsinks; i++) { /* twice would store every row twice */
        if (strcmp(cfg->sinks[i], spec) == 0) {
            char shown[256]; /* a conninfo's password masked */
            kf__sink_mask(spec, shown, sizeof shown);
            return cfg_fail(cfg, "sink \"%.200s\" is given twice", shown);
        }
    }
    char **p = kf__realloc(cfg->sinks, (cfg->nsinks + 1) * sizeof *p);
    if (!p)
        return KF_ERR_NOMEM;
    cfg->sinks = p;
    if (!(p[cfg->nsinks] = kf__strdup(spec)))
        return KF_ERR_NOMEM;
    cfg->nsinks++;
    return KF_OK;
}

kf_err kf_config_set_sink_all_updates(kf_config *cfg, bool all)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    cfg->sink_all_updates = all;
    return KF_OK;
}

kf_err kf_config_set_sink_queue(kf_config *cfg, size_t rows)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (rows < 16 || rows > 16u * 1024 * 1024)
        return cfg_fail(cfg, "sink queue of %zu rows is out of range 16..16777216", rows);
    cfg->sink_queue_rows = rows;
    return KF_OK;
}

kf_err kf_config_set_state_dir(kf_config *cfg, const char *dir)
{
    if (!cfg)
        return KF_ERR_INVALID_ARG;
    if (dir && (!*dir || strlen(dir) > 900))
        return cfg_fail(cfg, "state directory \"%.64s\" is empty or longer than 900 bytes", dir);
    return set_str(&cfg->state_dir, dir);
}

kf_config *kf__config_dup(const kf_config *src)
{
    kf_config *d = kf__calloc(1, sizeof *d);
    if (!d)
        return NULL;
    *d = *src;
    d->symbols = NULL;
    d->api_key = d->api_secret = d->ws_url = d->rest_url = d->ca_file = d->state_dir = NULL;
    d->sinks = NULL;
    d->nsinks = 0;
    int bad = 0;
    if (src->nsymbols) {
        d->symbols = kf__calloc(src->nsymbols, sizeof *d->symbols);
        if (d->symbols)
            memcpy(d->symbols, src->symbols, src->nsymbols * sizeof *d->symbols);
        else
            bad = 1;
        d->symbols_cap = src->nsymbols;
    }
    bad |= set_str(&d->api_key, src->api_key) != KF_OK;
    bad |= set_str(&d->api_secret, src->api_secret) != KF_OK;
    bad |= set_str(&d->ws_url, src->ws_url) != KF_OK;
    bad |= set_str(&d->rest_url, src->rest_url) != KF_OK;
    bad |= set_str(&d->ca_file, src->ca_file) != KF_OK;
    bad |= set_str(&d->state_dir, src->state_dir) != KF_OK;
    if (src->nsinks) {
        d->sinks = kf__calloc(src->nsinks, sizeof *d->sinks);
        for (size_t i = 0; d->sinks && i < src->nsinks; i++, d->nsinks++)
            if (!(d->sinks[i] = kf__strdup(src->sinks[i])))
                bad = 1;
        bad |= !d->sinks;
    }
    if (bad) {
        kf_config_free(d);
        return NULL;
    }
    return d;
}
