/*
 * The daemon's HTTP face (`klinefeed run --http ADDR:PORT`): an embedded libmicrohttpd server on
 * threads of its own, serving read-only views of a running collector through the public header
 * only (kf_stats_get, kf_*_info_get, kf_recent). A handler never waits on the collector's I/O
 * thread: every query it makes is a copy under a short lock or a load of atomics.
 *
 * Routes are a table (http.c): a path and a handler that fills an http_reply. To add one (the
 * live page, the Binance-compatible gateway), write a handler in its own file and add a row.
 */
#ifndef KF_CLI_HTTP_H
#define KF_CLI_HTTP_H
#include <stdbool.h>
#include <stddef.h>

#include "klinefeed.h"

typedef struct cli_http cli_http;

/* A growable text buffer for a reply body (the daemon's, not the library's data path). */
typedef struct http_buf {
    char *p;
    size_t len, cap;
    bool oom; /* an append failed: the reply becomes a 500 */
} http_buf;

void http_buf_printf(http_buf *b, const char *fmt, ...) KF_PRINTF_LIKE(2, 3);
void http_buf_put(http_buf *b, const char *s, size_t n);

/* What a handler answers: status, Content-Type and body. */
typedef struct http_reply {
    unsigned status;
    const char *content_type;
    http_buf body;
} http_reply;

/* A route's handler: the collector (never NULL), the query string ("" when none): its
 * arguments as "k=v&k=v", decoded but for '%', '&' and '=', which stay %XX-escaped. */
typedef void (*http_handler)(kf_collector *c, const char *query, http_reply *r);

/* Handlers (http_metrics.c, http_health.c). */
void http_metrics(kf_collector *c, const char *query, http_reply *r);
void http_healthz(kf_collector *c, const char *query, http_reply *r);
void http_readyz(kf_collector *c, const char *query, http_reply *r);
/* The live page (http_page.c): the page, and its JSON (every stream; the candles of one). */
void http_page(kf_collector *c, const char *query, http_reply *r);
void http_api_streams(kf_collector *c, const char *query, http_reply *r);

/* Query parameter name of query ("a=1&b=2", percent-encoded) decoded into out (NUL-terminated):
 * true when present and it fits in cap. */
bool http_query_param(const char *query, const char *name, char *out, size_t cap);

/* The Binance-compatible gateway's REST (http_gateway.c). */
void http_gw_klines(kf_collector *c, const char *query, http_reply *r);
void http_gw_time(kf_collector *c, const char *query, http_reply *r);
void http_gw_ping(kf_collector *c, const char *query, http_reply *r);
void http_gw_exchange_info(kf_collector *c, const char *query, http_reply *r);

/* The gateway's WebSocket side (http_ws.c): the library's on_kline callback (register it with
 * kf_config_on_kline before kf_create; userdata unused), the collector it serves (set by
 * cli_http_start, which starts the writer threads), and the stop of every client and writer
 * (cli_http_stop). */
void ws_hub_on_kline(void *userdata, const kf_kline *k);
void ws_hub_set_collector(kf_collector *c);
void ws_hub_stop(void);
/* After the server and the collector have stopped: frees the requests whose upgrade never came
 * and the shared log. */
void ws_hub_free_pending(void);

/*
 * Parses "ADDR:PORT" ("127.0.0.1:9100", "[::1]:9100", "0.0.0.0:0"; a numeric address, port
 * 0..65535, 0: any free port). false with err naming the value otherwise.
 */
bool cli_http_addr_check(const char *spec, char *err, size_t errlen);

/*
 * Starts serving c on spec (checked by cli_http_addr_check) on libmicrohttpd's threads, which
 * are created with SIGINT/SIGTERM/SIGHUP blocked (the main thread takes them). NULL with err
 * naming the address and the cause (address in use, permission). The bound port (spec's, or
 * the one the kernel chose for port 0) is in *port. c must outlive the server.
 */
cli_http *cli_http_start(const char *spec, kf_collector *c, unsigned *port, char *err,
                         size_t errlen);
/* Stops accepting, finishes the requests under way, joins the threads, frees. NULL ignored. */
void cli_http_stop(cli_http *h);

#endif
