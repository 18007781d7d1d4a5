/*
 * klinefeed.h - the one public header of libklinefeed.
 *
 * libklinefeed collects Binance USDT-M Futures kline (candlestick) data: it
 * opens WebSocket connections, subscribes to <symbol>@kline_<interval> for
 * every configured symbol x interval, decodes every update into an exact typed
 * candle (kf_kline), keeps the recent candles of each stream in memory and
 * hands every closed candle, exactly once, to the configured sinks.
 *
 * Conventions
 *  - Every public name starts with kf_ (types, functions) or KF_ (macros,
 *    enum values). Handles (kf_config, kf_collector) are opaque.
 *  - Functions that can fail return a kf_err. KF_OK is 0. A handle keeps the
 *    message of its last failure, which names the cause (the bad value, the
 *    failing call, the URL): kf_config_errmsg(), kf_errmsg().
 *  - Each function states who owns what and from which thread it may be
 *    called. Unless stated otherwise a function is not thread-safe.
 *  - Prices and quantities are exact decimals (kf_dec): an integer mantissa
 *    and a decimal scale, parsed from and formatted back to exactly the text
 *    Binance sent. Never store them as double.
 */
#ifndef KLINEFEED_H
#define KLINEFEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * 0.2.0 changed the ABI: kf_stats_get() takes the size of the caller's kf_stats, and
 * kf_wait_connected() is new. A program built against 0.1.0 must be rebuilt.
 */
#define KF_VERSION_MAJOR 0
#define KF_VERSION_MINOR 2
#define KF_VERSION_PATCH 0
#define KF_VERSION_STRING "0.2.0"

#if defined(__GNUC__) || defined(__clang__)
#define KF_PRINTF_LIKE(fmt_arg, first_arg) __attribute__((format(printf, fmt_arg, first_arg)))
#else
#define KF_PRINTF_LIKE(fmt_arg, first_arg)
#endif

/* Returns KF_VERSION_STRING of the library actually linked. */
const char *kf_version(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

/* Append-only: values are never renumbered or removed. */
typedef enum kf_err {
    KF_OK = 0,
    KF_ERR_INVALID_ARG = 1,     /* NULL handle or argument out of range */
    KF_ERR_NOMEM = 2,           /* an allocation failed */
    KF_ERR_CONFIG = 3,          /* a configuration value is bad; message names it */
    KF_ERR_ALREADY_RUNNING = 4, /* kf_start() on a running collector: nothing done */
    KF_ERR_NOT_RUNNING = 5,     /* operation needs a started collector */
    KF_ERR_DNS = 6,             /* host name could not be resolved */
    KF_ERR_CONNECT = 7,         /* TCP connect refused, unreachable, reset */
    KF_ERR_TLS = 8,             /* TLS handshake or certificate verification failed */
    KF_ERR_HANDSHAKE = 9,       /* WebSocket upgrade refused (non-101) or invalid */
    KF_ERR_TIMEOUT = 10,        /* connect, handshake or acknowledgement timed out */
    KF_ERR_SUBSCRIBE = 11,      /* the exchange answered a SUBSCRIBE with an error
                                   (kf_wait_connected) */
    KF_ERR_SYMBOL = 12,         /* symbol unknown to or not TRADING on the exchange */
    KF_ERR_REST = 13,           /* a REST request failed */
    KF_ERR_SINK = 14,           /* a sink could not be opened or written */
    KF_ERR_NOT_FOUND = 15,      /* no such stream */
    KF_ERR_IO = 16,             /* a file or socket operation failed */
    KF_ERR_PROTOCOL = 17,       /* the peer broke the WebSocket or HTTP protocol */
    KF_ERR_THREAD = 18,         /* a thread or event loop could not be created */
    KF_ERR_PARSE = 19,          /* malformed input (decimal, frame, line) */
} kf_err;

/* Static, never NULL text for a code ("connection refused or unreachable"). */
const char *kf_strerror(kf_err err);

/* ------------------------------------------------------------------------ */
/* Exact decimals                                                           */
/* ------------------------------------------------------------------------ */

/*
 * value = mant / 10^scale. Parsed from the exchange's text and formatted back
 * to the very same text: "83084.90" is {8308490, 2}, "0.01731" is {1731, 5},
 * "0" is {0, 0}. 18 significant digits are always representable (a monthly
 * quote volume of 4e11 with 5 decimals needs 17).
 */
typedef struct kf_dec {
    int64_t mant;
    int32_t scale; /* 0..18 */
} kf_dec;

/* Longest text kf_dec_format() can produce, with its NUL. */
#define KF_DEC_MAXLEN 32

/*
 * Parses a plain decimal: optional '-', digits, optional '.' and digits. No
 * exponent, no '+', no spaces, no redundant leading zero ("01"). Returns
 * KF_ERR_PARSE for anything else or for more than 18 significant digits.
 */
kf_err kf_dec_parse(const char *s, size_t len, kf_dec *out);

/*
 * Writes the decimal's text and a NUL into buf (cap >= KF_DEC_MAXLEN always
 * suffices). Returns the text length, or 0 when cap is too small.
 */
size_t kf_dec_format(kf_dec d, char *buf, size_t cap);

/* Approximation for display and analytics only; never store it. */
double kf_dec_to_double(kf_dec d);

/* ------------------------------------------------------------------------ */
/* Candles                                                                  */
/* ------------------------------------------------------------------------ */

/* Longest symbol in bytes (UTF-8 allowed), without the NUL. */
#define KF_SYMBOL_MAX 32

/* Binance's 15 USDT-M kline intervals, in this order. "1m" and "1M" differ. */
#define KF_INTERVAL_COUNT 15
/* The text of interval i (0 <= i < KF_INTERVAL_COUNT), e.g. "1m"; NULL if out of range. */
const char *kf_interval_name(int i);
/* Index of an interval text, or -1 when it is not one of the 15. */
int kf_interval_index(const char *name, size_t len);
/* Length of an interval in milliseconds; 1M (calendar month) returns 0. */
int64_t kf_interval_ms(int i);

/* One kline update as Binance sent it (PROTOCOL.md section 2). Plain value type. */
typedef struct kf_kline {
    char symbol[KF_SYMBOL_MAX + 1]; /* "BTCUSDT", NUL-terminated */
    char interval[4];               /* "1m", NUL-terminated */
    int32_t interval_index;         /* kf_interval_index(interval) */
    bool closed;                    /* k.x: the candle is final */
    int64_t event_time;             /* E, ms (0 when the row came from REST) */
    int64_t open_time;              /* k.t, ms */
    int64_t close_time;             /* k.T, ms */
    int64_t first_trade_id;         /* k.f, -1 on empty candles */
    int64_t last_trade_id;          /* k.L, -1 on empty candles */
    int64_t trades;                 /* k.n */
    kf_dec open, high, low, close;  /* k.o k.h k.l k.c */
    kf_dec volume;                  /* k.v base asset volume */
    kf_dec quote_volume;            /* k.q */
    kf_dec taker_buy_base;          /* k.V */
    kf_dec taker_buy_quote;         /* k.Q */
} kf_kline;

/*
 * Decodes one WebSocket text frame (a raw kline event or a combined
 * {"stream":...,"data":...} wrapper) into out. Returns KF_OK for a kline,
 * KF_ERR_NOT_FOUND for a well-formed frame that is not a kline (ack, other
 * event), KF_ERR_PARSE for a malformed one; *out is written in place and its
 * content is unspecified unless KF_OK (since 0.2; 0.1 left it untouched).
 * Pure: no I/O, no allocation, any thread. About 100 ns for a kline frame.
 */
kf_err kf_kline_decode(const char *frame, size_t len, kf_kline *out);

/*
 * Writes the kline as one JSON object with the fields symbol, interval,
 * open_time, close_time, first_trade_id, last_trade_id, open, high, low,
 * close, volume, quote_volume, trades, taker_buy_base, taker_buy_quote,
 * closed, event_time (decimals as strings), no newline, plus a NUL. Returns
 * the length, or 0 if cap is too small (KF_KLINE_JSON_MAX always suffices).
 */
#define KF_KLINE_JSON_MAX 1024
size_t kf_kline_to_json(const kf_kline *k, char *buf, size_t cap);

/* ------------------------------------------------------------------------ */
/* Allocation                                                               */
/* ------------------------------------------------------------------------ */

/*
 * Replaces the allocator used for every allocation the library makes. Call
 * before any other kf_ function, from one thread; any argument NULL restores
 * libc's. The functions must be thread-safe.
 */
void kf_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                      void (*free_fn)(void *));

/* ------------------------------------------------------------------------ */
/* Logging                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum kf_log_level {
    KF_LOG_DEBUG = 0,
    KF_LOG_INFO = 1,
    KF_LOG_WARN = 2,
    KF_LOG_ERROR = 3,
    KF_LOG_OFF = 4,
} kf_log_level;

/*
 * Receives one formatted log line (no newline): "2026-11-25T06:32:26.123Z
 * level=warn msg=... key=value ...". Called from whichever thread logs,
 * serialised by the library. API secrets never appear in a line.
 */
typedef void (*kf_log_fn)(void *userdata, kf_log_level level, const char *line);

/* Parses "debug", "info", "warn", "error", "off"; -1 otherwise. */
int kf_log_level_parse(const char *name);

/*
 * Writes one line in the library's format, "<UTC time> level=<level> " followed by fmt's text
 * (by convention msg="..." key=value ...), to fn (NULL: stderr, with a newline) when level is
 * at least threshold: for programs that log beside the library in the same format. Lines are
 * cut at 2 KiB. Any thread; the lines are not serialised with the library's own, so fn should
 * write each line in one call (one write(2)).
 */
void kf_log(kf_log_fn fn, void *userdata, kf_log_level threshold, kf_log_level level,
            const char *fmt, ...) KF_PRINTF_LIKE(5, 6);

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

typedef struct kf_config kf_config;

/* Callback types. The kline pointer is valid only during the call. */
typedef void (*kf_kline_fn)(void *userdata, const kf_kline *k);
typedef void (*kf_raw_fn)(void *userdata, const char *frame, size_t len);

/* Endpoints (PROTOCOL.md section 1). */
#define KF_WS_MAINNET "wss://fstream.binance.com/market"
#define KF_WS_TESTNET "wss://demo-fstream.binance.com/market"
#define KF_REST_MAINNET "https://fapi.binance.com"
#define KF_REST_TESTNET "https://demo-fapi.binance.com"

/* How kf_start() checks symbols against GET /fapi/v1/exchangeInfo. */
typedef enum kf_validate {
    KF_VALIDATE_IF_REACHABLE = 0, /* default: check when reachable, warn otherwise */
    KF_VALIDATE_REQUIRED = 1,     /* fail kf_start() when it is not reachable */
    KF_VALIDATE_OFF = 2,          /* never ask */
} kf_validate;

/* Creates an empty configuration (mainnet, no streams). NULL when out of memory. */
kf_config *kf_config_new(void);
/* Frees a configuration; NULL is ignored. Collectors created from it keep their own copy. */
void kf_config_free(kf_config *cfg);
/* Message of the last failed setter on cfg ("" if none). Owned by cfg. */
const char *kf_config_errmsg(const kf_config *cfg);

/*
 * Adds a symbol, normalised to uppercase (ASCII letters only; UTF-8 bytes are
 * kept). Rejected with KF_ERR_CONFIG and a message naming it when empty, over
 * KF_SYMBOL_MAX bytes, or containing '/', '@', '?', '&', whitespace or control
 * bytes. A repeated symbol is ignored. sym is copied.
 */
kf_err kf_config_add_symbol(kf_config *cfg, const char *sym);
/*
 * Adds every USDT-M perpetual the exchange trades now: each symbol of GET
 * /fapi/v1/exchangeInfo (cfg's REST base, CA file, TLS verification, connect timeout, state
 * directory's REST pauses; logged to cfg's log) with contractType PERPETUAL, quoteAsset USDT and
 * status TRADING, in the exchange's order, after those already added; what `--symbols ALL`
 * does. *added (may be NULL) is how many were new. Blocking (at most the connect timeout), on
 * the caller's thread; cfg as for its setters. KF_OK; KF_ERR_REST, KF_ERR_TLS, ... when the
 * exchange could not be asked or its answer is malformed, with kf_config_errmsg() naming the URL
 * and the cause (cfg keeps what it had). Without kf_config_set_symbol_refresh the set is read
 * once: a listing after the call is not collected, a delisting makes kf_start() refuse the
 * symbol (validation) until it is removed.
 */
kf_err kf_config_add_exchange_symbols(kf_config *cfg, size_t *added);
/*
 * Re-reads exchangeInfo every ms while the collector runs (0, the default: never; else
 * 1000..604800000), when the symbols came from kf_config_add_exchange_symbols (otherwise it has
 * no effect). Each re-read runs on the REST thread ("kf-rest"), under the REST weight budget
 * (weight 1), and hands the difference to the I/O thread; nothing else is reconnected:
 *  - a new TRADING USDT perpetual (of this collector's shard, kf_config_set_shard) is
 *    subscribed: its streams are appended (to the last connection while it has room under
 *    the streams-per-connection limit, else on a new connection, within the new-connection
 *    budget) and, with backfill on, its closed candles are fetched from REST from its listing
 *    (exchangeInfo onboardDate), or from the start of this run if it was listed before
 *    (kf_config_set_backfill_from, when set, instead of the start of the run), on;
 *  - a collected symbol that is no longer TRADING (or no longer listed) is delisted: its
 *    streams keep their place (kf_stream_info_get: state KF_STREAM_DELISTED), are unsubscribed
 *    and never subscribed again by a reconnect, logged once (level=warn msg="symbol delisted"),
 *    and their candles after it are not counted missing; listed again, it is collected again
 *    in the same place;
 *  - a re-read that fails is logged and tried again at the next period; one that would delist
 *    more than a quarter of the collected symbols (and more than one) is taken for a bad
 *    answer: its delistings are not applied (logged as an error), its listings are.
 * Counted in kf_stats: symbols_listed, symbols_delisted, symbols_refused, symbol_refresh_failures.
 * cfg as for its setters; KF_ERR_CONFIG naming the value when out of range.
 */
kf_err kf_config_set_symbol_refresh(kf_config *cfg, unsigned ms);
/*
 * Room for symbols added while running (kf_config_set_symbol_refresh): kf_create reserves
 * streams, per-stream state, connections and ring space for this many more symbols (times the
 * intervals). Default 256, 0..100000. The ring space is address space only: its pages are
 * touched as candles arrive (measured: about 70 bytes of memory per reserved symbol x
 * interval until used, for 0.5 KB of address space plus its ring). A listing past the reserve
 * is refused: logged as an error naming the symbol (once per symbol) and counted
 * (symbols_refused); a restart collects it.
 */
kf_err kf_config_set_symbol_reserve(kf_config *cfg, size_t symbols);
/* Adds one of the 15 intervals ("1m" ... "1M"); anything else is KF_ERR_CONFIG. */
kf_err kf_config_add_interval(kf_config *cfg, const char *interval);
/* Adds a comma-separated list ("BTCUSDT,ETHUSDT"; "1m,5m"); stops at the first bad item. */
kf_err kf_config_add_symbols(kf_config *cfg, const char *csv);
kf_err kf_config_add_intervals(kf_config *cfg, const char *csv);

/*
 * Work shared by N collectors: this one keeps only the symbols whose shard is k,
 * kf_shard_of(symbol, n) == k, so N collectors given the same symbols and shards 1/N .. N/N
 * cover every stream exactly once. 1 <= k <= n <= 1000000; (0, 0) removes the sharding.
 * Applied by kf_create() and kf_history_new() to the configured symbols; a shard left without
 * a symbol is KF_ERR_CONFIG there, naming the shard. A bad k or n is KF_ERR_CONFIG here.
 */
kf_err kf_config_set_shard(kf_config *cfg, unsigned k, unsigned n);
/*
 * The shard (1..n) of a symbol among n: FNV-1a 64 (offset basis 14695981039346656037, prime
 * 1099511628211) over the bytes of the symbol with ASCII letters in uppercase, mod n, plus 1.
 * Fixed by this definition: the same on every machine, in every process and every version
 * (no per-process seed). 0 when symbol is NULL or n is 0. Pure; any thread.
 */
unsigned kf_shard_of(const char *symbol, unsigned n);

/* Testnet endpoints instead of mainnet. An explicit URL override still wins. */
kf_err kf_config_set_testnet(kf_config *cfg, bool testnet);
/* Optional credentials, copied; never logged. Market streams do not need them. */
kf_err kf_config_set_api_key(kf_config *cfg, const char *key, const char *secret);
/*
 * Overrides the WebSocket base ("ws://127.0.0.1:9000" or
 * "wss://proxy.example/market"). The library appends "/ws" or "/stream" to it,
 * so give the routed base (with /market for Binance). ws:// or wss:// only.
 */
kf_err kf_config_set_ws_url(kf_config *cfg, const char *url);
/* Overrides the REST base ("http://127.0.0.1:9000"); http:// or https:// only. */
kf_err kf_config_set_rest_url(kf_config *cfg, const char *url);

/* Candles kept per stream for kf_recent(); default 1000, 1..1000000. */
kf_err kf_config_set_ring_size(kf_config *cfg, size_t n);
/* Streams per connection; default 1024 (Binance's cap), 1..1024. */
kf_err kf_config_set_streams_per_connection(kf_config *cfg, size_t n);
/* Stream names per SUBSCRIBE request; default 200, 1..1024. */
kf_err kf_config_set_names_per_subscribe(kf_config *cfg, size_t n);
/* Client messages per second per connection; default 5, 1..10. */
kf_err kf_config_set_messages_per_second(kf_config *cfg, unsigned n);
/* Timeout for TCP+TLS+upgrade and for each acknowledgement; default 10000 ms. */
kf_err kf_config_set_connect_timeout_ms(kf_config *cfg, unsigned ms);
/* Largest accepted WebSocket message; default 1 MiB, 4 KiB..64 MiB. */
kf_err kf_config_set_max_message_size(kf_config *cfg, size_t bytes);
/* Symbol validation mode; default KF_VALIDATE_IF_REACHABLE. */
kf_err kf_config_set_validate(kf_config *cfg, kf_validate mode);
/* TLS certificate verification; default on. Off is for test proxies only. */
kf_err kf_config_set_tls_verify(kf_config *cfg, bool verify);
/* CA bundle file instead of the system store (NULL: system store). */
kf_err kf_config_set_ca_file(kf_config *cfg, const char *path);

/*
 * Reconnect backoff after a lost connection: exponential with full jitter, the first retry
 * within initial_ms (default 1000), the delay capped at max_ms (default 30000). A connection
 * refused for minutes keeps retrying and says so in the log at a bounded rate.
 */
kf_err kf_config_set_reconnect_backoff(kf_config *cfg, unsigned initial_ms, unsigned max_ms);
/*
 * Liveness: a ping of ours every ping_interval_ms (default 20000) and a connection that
 * delivers no frame at all for dead_after_ms (default 30000) is declared dead and replaced.
 */
kf_err kf_config_set_liveness(kf_config *cfg, unsigned ping_interval_ms, unsigned dead_after_ms);
/*
 * Rotation: before a connection reaches max_age_ms (default 23 h 50 min; Binance closes at
 * 24 h), a replacement is opened and subscribed, and the old one is retired only after the
 * new one delivers (make-before-break). 1000 ms minimum, for tests.
 */
kf_err kf_config_set_max_connection_age_ms(kf_config *cfg, uint64_t max_age_ms);
/* New-connection budget per IP: at most n connection attempts per window_ms (default 300 per
 * 300000, spot's documented budget); attempts over it wait. */
kf_err kf_config_set_connection_budget(kf_config *cfg, unsigned n, unsigned window_ms);

/*
 * REST repair (default on): closed candles the WebSocket did not deliver (a gap, the time a
 * connection was down, a closing update that never came, the time since a store's newest
 * candle at start) are fetched with GET /fapi/v1/klines on the thread "kf-rest" and stored
 * exactly once. Off: only what the WebSocket delivers.
 */
kf_err kf_config_set_backfill(kf_config *cfg, bool on);
/* First run: also fetch every closed candle from this open time (ms) on, when a store has
 * none newer. Default: none (start from the live stream). */
kf_err kf_config_set_backfill_from(kf_config *cfg, int64_t from_ms);
/* REST weight per UTC minute the library may use (default 2400; the limit the exchange
 * publishes in exchangeInfo lowers it). */
kf_err kf_config_set_rest_weight_budget(kf_config *cfg, unsigned per_minute);

/* Log sink and threshold; default: stderr at KF_LOG_INFO. fn NULL: stderr. */
kf_err kf_config_set_log(kf_config *cfg, kf_log_fn fn, void *userdata, kf_log_level level);

/*
 * Callbacks, all called on the collector's I/O thread "kf-io", in arrival
 * order per connection. Inside them you may call kf_running(), kf_connected(),
 * kf_recent(), kf_stats_get(), kf_stream_*() and kf_errmsg(); never kf_stop(),
 * kf_free() or kf_wait_connected() (they would wait for the calling thread;
 * they return KF_ERR_INVALID_ARG). Keep them short: the
 * socket is not read while they run.
 *  on_kline:  every kline update (open and closed), duplicates included.
 *  on_closed: each closed candle once per (symbol, interval, open time), from the
 *             WebSocket or from the REST repair (then event_time is 0 and the trade ids -1).
 *  on_raw:    every text frame as received, before decoding (not NUL-terminated).
 */
kf_err kf_config_on_kline(kf_config *cfg, kf_kline_fn fn, void *userdata);
kf_err kf_config_on_closed(kf_config *cfg, kf_kline_fn fn, void *userdata);
kf_err kf_config_on_raw(kf_config *cfg, kf_raw_fn fn, void *userdata);

/*
 * Adds a store by spec: "sqlite:PATH", "jsonl:PATH", "jsonl:-" (stdout),
 * "csv:PATH", "csv:-" (stdout), "postgres:CONNINFO" (a PostgreSQL database: anything libpq's
 * PQconnectdb accepts, key=value pairs or a postgresql:// URI; its password is masked in every
 * log line and error). The sink is opened by kf_start() and written on its own writer
 * thread "kf-sink-N", so a slow disk never stalls the socket. A spec given twice is
 * KF_ERR_CONFIG (it would store every row twice). A start that fails removes a store it
 * created and stored nothing in.
 */
kf_err kf_config_add_sink(kf_config *cfg, const char *spec);
/*
 * Checks a sink spec without opening anything: KF_OK for "sqlite:PATH", "jsonl:PATH",
 * "jsonl:-", "csv:PATH", "csv:-", "postgres:CONNINFO" (a scheme klinefeed knows and a non-empty
 * target), else KF_ERR_CONFIG with a message naming the spec and the forms accepted in err (when
 * not NULL). Pure; any thread. kf_config_add_sink() checks the same way.
 */
kf_err kf_sink_spec_check(const char *spec, char *err, size_t errlen);
/* Send every update to the sinks, not only closed candles (upserted). Default false. */
kf_err kf_config_set_sink_all_updates(kf_config *cfg, bool all);
/*
 * Rows held in memory for each sink while it is slow or down: default 65536 (224 bytes a row,
 * 14 MiB a sink at most; pages are touched only as the queue fills), 16..16777216. The I/O
 * thread never waits on a store: a closed candle that does not fit is kept as missing and
 * fetched again from REST once every store takes rows (kf_stats.store_dropped).
 */
kf_err kf_config_set_sink_queue(kf_config *cfg, size_t rows);
/*
 * A directory where the library keeps what must survive a restart (default NULL: nothing):
 * the REST pauses the exchange imposed (429 Retry-After, 418 bans), one file per REST host,
 * rest-<host>-<port>.state, honoured by the next process so that it never asks during its
 * predecessor's back-off (which earns an IP ban of minutes to days). The directory must exist.
 */
kf_err kf_config_set_state_dir(kf_config *cfg, const char *dir);

/* ------------------------------------------------------------------------ */
/* Collector                                                                */
/* ------------------------------------------------------------------------ */

typedef struct kf_collector kf_collector;

/*
 * Creates a collector from a copy of cfg (cfg may be freed right after).
 * Checks that at least one symbol and one interval are configured and that
 * sink specs parse. On failure returns NULL and, when errbuf is not NULL,
 * writes a message naming the cause (at most errlen bytes with the NUL).
 * Any thread. Nothing is opened until kf_start().
 */
kf_collector *kf_create(const kf_config *cfg, char *errbuf, size_t errlen);

/*
 * Starts collecting. Validates symbols against exchangeInfo (per the
 * validate mode), opens the sinks, starts the I/O thread and waits until
 * every connection has completed its TCP, TLS and WebSocket upgrade (at most
 * the connect timeout), then returns: it does not wait for the subscription
 * acknowledgements (see kf_connected()) and never runs the network on the
 * caller's thread.
 * Returns KF_OK; KF_ERR_ALREADY_RUNNING (a warning is logged, nothing is
 * opened) when already started; KF_ERR_DNS, KF_ERR_CONNECT, KF_ERR_TLS,
 * KF_ERR_HANDSHAKE or KF_ERR_TIMEOUT when a connection could not be made, with
 * kf_errmsg() naming the cause and the URL (also logged); KF_ERR_SYMBOL,
 * KF_ERR_SINK, KF_ERR_THREAD otherwise; KF_ERR_NOT_RUNNING when kf_stop() on
 * another thread abandoned the start (an exchange that does not answer can
 * hold kf_start for the connect timeout, twice: validation, then the upgrade;
 * a program that must stop promptly calls kf_start on a thread of its own and
 * kf_stop from the thread that decides). After a failure the collector is
 * stopped and may be started again. Call from the thread that owns c.
 */
kf_err kf_start(kf_collector *c);

/*
 * Stops: sends a close frame on every connection, joins the I/O thread,
 * drains and flushes every sink and joins their threads. Every closed candle
 * received before the call is stored when it returns. Idempotent (a stopped
 * collector returns KF_OK). Safe from any thread except the library's own
 * (not from a callback, which gets KF_ERR_INVALID_ARG), also from several
 * at once: one stops, the others wait for that stop and return its result.
 * During a kf_start() on another thread: that start gives up at its next
 * step (a request in flight is cancelled within ~50 ms; opening a store or
 * reading what it holds is finished first) and returns KF_ERR_NOT_RUNNING;
 * kf_stop returns once it has. A signal handler should set a flag instead.
 */
kf_err kf_stop(kf_collector *c);

/*
 * Stops if needed and releases everything. NULL is ignored. Not from a
 * callback. Once, when no other thread will use c again; a kf_stop() under
 * way on another thread is waited for.
 */
void kf_free(kf_collector *c);

/* Started and not stopped. Any thread, lock-free. */
bool kf_running(const kf_collector *c);
/*
 * Every connection has completed its upgrade and every SUBSCRIBE batch has
 * been acknowledged. Any thread, lock-free.
 */
bool kf_connected(const kf_collector *c);

/*
 * Waits at most timeout_ms for kf_connected() (since 0.2.0). Any thread but
 * the library's own (from a callback: KF_ERR_INVALID_ARG). Returns:
 *  KF_OK              kf_connected() is true (at once when it already is);
 *  KF_ERR_SUBSCRIBE   the exchange answered one of the collector's SUBSCRIBE
 *                     requests with an error reply ({"error":{"code":..,
 *                     "msg":..},"id":N}) since kf_start() or since the
 *                     collector was last connected, and it is not connected
 *                     now. Returned as soon as the reply arrives, not at the
 *                     timeout. The collector keeps running: a connection the
 *                     exchange closes is reopened and subscribed again, so a
 *                     later call may return KF_OK; a refusal the exchange
 *                     repeats on every attempt (over its stream limit, an
 *                     invalid name) never connects: stop and fix the
 *                     configuration;
 *  KF_ERR_TIMEOUT     neither within timeout_ms;
 *  KF_ERR_NOT_RUNNING not started, or stopping (kf_stop() on another thread).
 * After an error, the next kf_errmsg(c) on the same thread returns its message:
 * for KF_ERR_SUBSCRIBE the connection's URL, the request id and Binance's code
 * and message ("ws://host/market/ws: request 3 refused with code 4: Too many
 * subscriptions"); for KF_ERR_TIMEOUT how many connections are subscribed.
 */
kf_err kf_wait_connected(kf_collector *c, unsigned timeout_ms);

/*
 * Message of the last failure on c ("" if none). Any thread: the library may be writing a new
 * message on its I/O thread meanwhile, so what is returned is a copy taken under the
 * collector's lock into a buffer of the calling thread, valid until that thread's next
 * kf_errmsg() call (on any collector). Copy it to keep it longer.
 */
const char *kf_errmsg(const kf_collector *c);

/* The WebSocket base and REST base in use (after testnet/override). Owned by c. */
const char *kf_ws_url(const kf_collector *c);
const char *kf_rest_url(const kf_collector *c);

/* Number of streams (symbols x intervals) and their names, "btcusdt@kline_1m". Any thread. With
 * kf_config_set_symbol_refresh the count grows while running (streams are only appended; a
 * stream once counted keeps its index and name); a name is owned by c until kf_free. */
size_t kf_stream_count(const kf_collector *c);
const char *kf_stream_name(const kf_collector *c, size_t i);
/* Number of WebSocket connections (shards) the streams are spread over (grows like
 * kf_stream_count). Any thread. */
size_t kf_connection_count(const kf_collector *c);

/*
 * Copies the most recent candles of one stream into out, oldest first, the
 * open candle (if any) last. *n is the capacity of out on entry and the number
 * copied on return. The symbol is matched case-insensitively. Returns
 * KF_ERR_NOT_FOUND for a stream that is not configured. Any thread.
 */
kf_err kf_recent(kf_collector *c, const char *symbol, const char *interval, kf_kline *out,
                 size_t *n);

/*
 * Counters since kf_create(). Read from any thread; each value is atomic.
 * Fields are only ever appended, each new one marked with the version it
 * comes in. Every field below is in 0.2.0 up to unstored; store_rejected was
 * appended after 0.2.0. 0.1.0 (never released) grew this
 * struct under one version number (the first 16 counters, then the
 * reconnect/repair counters from reconnects on, then missing..unstored) with
 * a kf_stats_get() that had no size: hence the size argument since 0.2.0.
 *
 * The counters, in one list: the struct below, kf_stats_name()/kf_stats_help()/
 * kf_stats_kind()/kf_stats_value(), the daemon's final line and any exporter
 * are made from it, so none can forget one. X(name, kind, help): kind is
 * KF_STAT_COUNTER (only grows) or KF_STAT_GAUGE (a level now). A program may
 * expand it too, e.g. to print every counter:
 *   #define PRINT(name, kind, help) printf(#name "=%llu\n", (unsigned long long)s.name);
 *   KF_STATS_FIELDS(PRINT)
 */
#define KF_STATS_FIELDS(X)                                                                         \
    X(frames, KF_STAT_COUNTER, "WebSocket text frames received")                                   \
    X(bytes, KF_STAT_COUNTER, "WebSocket payload bytes received")                                  \
    X(updates, KF_STAT_COUNTER, "kline updates decoded")                                           \
    X(closed, KF_STAT_COUNTER, "distinct closed candles")                                          \
    X(duplicates, KF_STAT_COUNTER, "repeated closing updates ignored")                             \
    X(other_events, KF_STAT_COUNTER, "non-kline events skipped")                                   \
    X(parse_errors, KF_STAT_COUNTER, "malformed frames skipped")                                   \
    X(unknown_streams, KF_STAT_COUNTER, "klines of streams not subscribed")                        \
    X(acks, KF_STAT_COUNTER, "SUBSCRIBE acknowledgements")                                         \
    X(exchange_errors, KF_STAT_COUNTER, "error replies from the exchange")                         \
    X(connects, KF_STAT_COUNTER, "successful WebSocket upgrades")                                  \
    X(disconnects, KF_STAT_COUNTER, "connections lost or closed")                                  \
    X(pings, KF_STAT_COUNTER, "server pings answered")                                             \
    X(sink_rows, KF_STAT_COUNTER, "rows the stores took")                                          \
    X(sink_errors, KF_STAT_COUNTER, "failed store writes")                                         \
    X(rest_requests, KF_STAT_COUNTER, "REST requests made")                                        \
    X(reconnects, KF_STAT_COUNTER, "connections re-opened after a loss")                           \
    X(lost_server_close, KF_STAT_COUNTER, "connections lost: close frame from the server")         \
    X(lost_reset, KF_STAT_COUNTER, "connections lost: reset, EOF without close, I/O error")        \
    X(lost_protocol, KF_STAT_COUNTER, "connections lost: protocol violation")                      \
    X(lost_liveness, KF_STAT_COUNTER, "connections lost: no frame within the liveness timeout")    \
    X(connect_failures, KF_STAT_COUNTER, "connection attempts failed before the upgrade")          \
    X(rotations, KF_STAT_COUNTER, "make-before-break connection replacements completed")           \
    X(stale_streams, KF_STAT_COUNTER, "streams silent while their connection delivered")           \
    X(gaps, KF_STAT_COUNTER, "missing closed candles detected (skips, reconnects, start)")         \
    X(missing_closes, KF_STAT_COUNTER, "candles whose closing update never came (asked of REST)")  \
    X(backfilled, KF_STAT_COUNTER, "closed candles stored from REST")                              \
    X(rest_weight, KF_STAT_COUNTER, "REST request weight used by the repair worker")               \
    X(rest_429, KF_STAT_COUNTER, "REST 429 answers (the worker backed off)")                       \
    X(rest_418, KF_STAT_COUNTER, "REST 418 answers (all REST paused)")                             \
    X(rest_pending, KF_STAT_GAUGE, "repair requests waiting or in flight, rows not applied")       \
    X(missing, KF_STAT_GAUGE,                                                                      \
      "closed candles known missing now, asked of REST until stored or the exchange has none "     \
      "(the stores keep them findable: a restart asks again)")                                     \
    X(absent, KF_STAT_COUNTER, "candles the exchange answered it does not have: not asked again")  \
    X(repair_failures, KF_STAT_COUNTER, "REST repair requests that failed (each asked again)")     \
    X(store_dropped, KF_STAT_COUNTER,                                                              \
      "closed candles a full store queue could not take (kept missing, fetched again)")            \
    X(updates_dropped, KF_STAT_COUNTER, "open updates (sink_all_updates) a full queue refused")    \
    X(unstored, KF_STAT_COUNTER,                                                                   \
      "closed candles a store had not taken when kf_stop's deadline passed (the next start asks "  \
      "REST)")                                                                                     \
    X(store_rejected, KF_STAT_COUNTER,                                                             \
      "rows a store's server refused for their data (left out of their batch, logged)")            \
    X(symbols_listed, KF_STAT_COUNTER,                                                             \
      "symbols added while running (kf_config_set_symbol_refresh: a new or relisted symbol)")      \
    X(symbols_delisted, KF_STAT_COUNTER, "symbols dropped while running: no longer TRADING")       \
    X(symbols_refused, KF_STAT_COUNTER, "new symbols not collected: the reserve was spent")        \
    X(symbol_refresh_failures, KF_STAT_COUNTER,                                                    \
      "exchangeInfo re-reads that failed (tried again at the next period)")

typedef enum kf_stat_kind {
    KF_STAT_COUNTER = 0, /* only grows (since kf_create()) */
    KF_STAT_GAUGE = 1,   /* a level now: may go down */
} kf_stat_kind;

typedef struct kf_stats {
#define KF_STATS_FIELD_DECL(name, kind, help) uint64_t name;
    KF_STATS_FIELDS(KF_STATS_FIELD_DECL)
#undef KF_STATS_FIELD_DECL
} kf_stats;

/* Number of counters in kf_stats (of this library: maybe more than a program was built with).
 * Any thread. */
size_t kf_stats_count(void);
/* Counter i's name ("frames"), kind and one-line help, in KF_STATS_FIELDS order; NULL (kind
 * KF_STAT_COUNTER) past kf_stats_count(). Static strings. Any thread. */
const char *kf_stats_name(size_t i);
const char *kf_stats_help(size_t i);
kf_stat_kind kf_stats_kind(size_t i);
/* Counter i's value in *s, a kf_stats of size bytes (pass sizeof *s, as to kf_stats_get): 0
 * for an i past what either the library or the caller's struct has. Any thread. */
uint64_t kf_stats_value(const kf_stats *s, size_t size, size_t i);

/*
 * Fills *out with the counters. size is sizeof *out as the caller was compiled
 * (pass sizeof s): the library writes min(size, its own sizeof(kf_stats))
 * bytes, so a program built against an older header (a shorter kf_stats: a
 * prefix of this one) gets only the fields it knows and nothing past its
 * struct; bytes past the library's own kf_stats (a program newer than the
 * library) are set to 0. KF_ERR_INVALID_ARG for NULL or size 0. Any thread.
 * (0.1.0 had no size argument.)
 */
kf_err kf_stats_get(const kf_collector *c, kf_stats *out, size_t size);

/* ------------------------------------------------------------------------ */
/* Read-only state queries (added after 0.2.0)                             */
/* ------------------------------------------------------------------------ */

/*
 * What an exporter or a health check needs beyond the counters: one stream, one connection,
 * one store, now. Each fills a struct the caller owns, passing its size (pass sizeof info, as
 * to kf_stats_get: fields are only appended; the library writes what both it and the caller
 * know and zeroes the rest). Any thread, also while the collector starts or stops; they only
 * read (atomics, or a per-stream / the collector's lock held for a copy), so a caller polling
 * them in a loop cannot delay the I/O thread by more than a copy. KF_ERR_INVALID_ARG for a
 * NULL handle or struct or size 0, KF_ERR_NOT_FOUND for an index past the count.
 */

/* Where a stream stands. */
typedef enum kf_stream_state {
    KF_STREAM_WAITING = 0, /* its connection is subscribed, no update has come yet */
    KF_STREAM_LIVE = 1,    /* its connection is subscribed and has delivered an update of it */
    KF_STREAM_DOWN = 2,    /* its connection is not subscribed (not started, lost, reconnecting) */
    /* appended after 0.2.0: */
    KF_STREAM_DELISTED = 3, /* its symbol was delisted while running (kf_config_set_symbol_refresh):
                               unsubscribed, not expected to deliver */
} kf_stream_state;

typedef struct kf_stream_info {
    char symbol[KF_SYMBOL_MAX + 1]; /* "BTCUSDT" */
    char interval[4];               /* "1m" */
    size_t connection;              /* its connection, for kf_connection_info_get */
    kf_stream_state state;
    bool has_closed;               /* a closed candle is known (received, or read from a store) */
    int64_t last_closed_open_time; /* open time (ms) of the newest closed candle, if has_closed */
    int64_t last_update_age_ms;    /* ms since the last WebSocket update of the stream was
                                      received (local monotonic clock), -1 none yet */
    uint64_t missing;              /* closed candles known missing now (asked of REST) */
    /* appended after 0.2.0: */
    uint64_t gaps;     /* closed candles found missing since kf_create (gaps, the stores' holes) */
    uint64_t repaired; /* closed candles stored from REST since kf_create (the gaps repaired) */
    /* appended after 0.2.0 (kf_config_set_symbol_refresh): */
    bool delisted; /* its symbol is delisted now (state KF_STREAM_DELISTED) */
    bool added;    /* its symbol was added while running (a listing after kf_start) */
} kf_stream_info;

/* Stream i (0 <= i < kf_stream_count(c), kf_stream_name's order) into *out. */
kf_err kf_stream_info_get(const kf_collector *c, size_t i, kf_stream_info *out, size_t size);

typedef struct kf_connection_info {
    size_t first_stream, streams; /* the streams it carries: [first, first + streams) */
    bool connected;               /* the active connection is upgraded (WebSocket open) */
    bool subscribed;              /* ... and every SUBSCRIBE of it acknowledged */
    int64_t age_ms;               /* ms since the active connection opened, -1 when none */
} kf_connection_info;

/* Connection (shard) i (0 <= i < kf_connection_count(c)) into *out. */
kf_err kf_connection_info_get(const kf_collector *c, size_t i, kf_connection_info *out,
                              size_t size);

/* Number of stores (sinks) configured, in kf_config_add_sink order. Any thread. */
size_t kf_sink_count(const kf_collector *c);

typedef struct kf_sink_info {
    char spec[256];    /* the spec as configured ("sqlite:klines.db"), cut to fit */
    bool open;         /* opened by kf_start and not yet closed by kf_stop */
    bool healthy;      /* open, and its last write attempt did not fail (a failing store is
                          retried with backoff; its rows wait in the queue) */
    size_t queue_rows; /* rows waiting in its queue now */
    size_t queue_cap;  /* the queue's capacity (kf_config_set_sink_queue) */
    uint64_t rows;     /* rows it took since kf_start (earlier runs of c not included) */
    uint64_t errors;   /* failed write attempts and refused rows since kf_start */
} kf_sink_info;

/* Sink i (0 <= i < kf_sink_count(c)) into *out. A sink that is not open reports open false,
 * healthy false, zeros. */
kf_err kf_sink_info_get(const kf_collector *c, size_t i, kf_sink_info *out, size_t size);

/* ------------------------------------------------------------------------ */
/* History download                                                         */
/* ------------------------------------------------------------------------ */

/*
 * Closed candles from REST (GET /fapi/v1/klines) into the sinks of a configuration, within the
 * exchange's request-weight budget, without running a collector: what `klinefeed backfill`
 * does. Symbols are checked against exchangeInfo (an unlisted one is KF_ERR_SYMBOL naming every
 * unlisted symbol; one that is not TRADING is fetched anyway, with a warning). Each stream
 * resumes after the newest closed candle a sink already holds (SQLite can tell), so running the
 * same download twice fetches only what is new. The configuration's symbols, intervals, sinks,
 * REST base (testnet, override), CA file, TLS verification, weight budget, state directory
 * (REST pauses honoured and kept) and log apply; everything WebSocket-related is ignored.
 */
typedef struct kf_history kf_history;

/* Where a download stands, for a progress display. Strings valid during the callback only. */
typedef struct kf_history_progress {
    size_t streams;        /* streams to fetch (the others were up to date) */
    size_t streams_done;   /* of those, finished */
    const char *symbol;    /* the stream being fetched ("BTCUSDT") */
    const char *interval;  /* its interval ("1m") */
    double fraction;       /* of the time span to fetch, over every stream, 0..1 */
    uint64_t rows;         /* closed candles fetched (and handed to the sinks) */
    uint64_t requests;     /* REST requests sent */
    uint64_t weight_used;  /* their weight */
    unsigned weight_limit; /* REST weight per UTC minute in force */
    uint64_t http_429, http_418, http_5xx, retries;
    uint64_t waits_ms;  /* time spent waiting: budget, 429/418 pauses, backoff */
    int64_t elapsed_ms; /* since kf_history_run began */
} kf_history_progress;

typedef void (*kf_history_fn)(void *userdata, const kf_history_progress *p);

/* Creates a download from a copy of cfg (cfg may be freed right after). NULL with a message in
 * errbuf (when not NULL) when no symbol or interval is configured or out of memory. Any thread.
 * Nothing is opened until kf_history_run(). */
kf_history *kf_history_new(const kf_config *cfg, char *errbuf, size_t errlen);

/*
 * Runs the download of every closed candle with an open time in [from_ms, to_ms] (to_ms
 * INT64_MAX: up to the exchange's now) on the calling thread, blocking; fn (may be NULL) is
 * called on that thread at most every 200 ms and once at the end. Every row fetched is stored
 * when it returns. Returns KF_OK when every stream is done; KF_ERR_NOT_RUNNING after
 * kf_history_cancel (what was fetched is stored: the next run resumes); KF_ERR_SYMBOL, KF_ERR_REST
 * (a request failed for good), KF_ERR_SINK, KF_ERR_TLS, KF_ERR_NOMEM otherwise, with
 * kf_history_errmsg() naming the cause. Runs once per object.
 */
kf_err kf_history_run(kf_history *h, int64_t from_ms, int64_t to_ms, kf_history_fn fn,
                      void *userdata);

/* Asks a running download to stop after the page in hand (a wait or a request in flight ends
 * within ~100 ms). Any thread, and async-signal-safe: call it from a signal handler. */
void kf_history_cancel(kf_history *h);

/* Message of the last failure ("" if none). Owned by h, valid until kf_history_free. */
const char *kf_history_errmsg(const kf_history *h);

/* Frees everything. NULL is ignored. Not while kf_history_run runs. */
void kf_history_free(kf_history *h);

#ifdef __cplusplus
}
#endif
#endif /* KLINEFEED_H */
