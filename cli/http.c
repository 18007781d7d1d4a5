/*
 * The HTTP server: libmicrohttpd (an "internal polling thread" per pool slot, epoll when
 * available), a route table, and the replies. See http.h.
 */
#include "http.h"

#include "cli.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Threads serving requests: two keep one slow client from holding the others (the machine this
 * runs on may have two cores; the collector's I/O thread must keep one). */
#define HTTP_THREADS 2
/* Connections at once, over all threads; more wait in the listen backlog. */
#define HTTP_MAX_CONNECTIONS 512
#define HTTP_BACKLOG 1024
/* An idle keep-alive connection is closed after this many seconds. */
#define HTTP_IDLE_TIMEOUT_S 30

static const struct {
    const char *path;
    http_handler fn;
} routes[] = {
    {"/metrics", http_metrics},
    {"/healthz", http_healthz},
    {"/readyz", http_readyz},
    {"/", http_page},
    {"/api/streams", http_api_streams},
    {"/fapi/v1/klines", http_gw_klines},
    {"/fapi/v1/time", http_gw_time},
    {"/fapi/v1/ping", http_gw_ping},
    {"/fapi/v1/exchangeInfo", http_gw_exchange_info},
};

/* http_ws.c */
bool ws_is_path(const char *url);
enum MHD_Result ws_upgrade(struct MHD_Connection *conn, const char *url);

struct cli_http {
    struct MHD_Daemon *d;
    kf_collector *c;
};

/* ---- buffers ---- */

static bool buf_reserve(http_buf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

void http_buf_put(http_buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void http_buf_printf(http_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[512];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        http_buf_put(b, small, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* ---- requests ---- */

/* The query string again ("a=1&b=x%26y"): libmicrohttpd hands the arguments decoded; each is
 * appended with '%', '&', '=', '+', '#' and bytes outside printable ASCII percent-encoded. */
static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    http_buf *q = cls;
    const char *parts[2] = {key, value ? value : ""};
    if (q->len)
        http_buf_put(q, "&", 1);
    for (int k = 0; k < 2; k++) {
        if (k)
            http_buf_put(q, "=", 1);
        for (const unsigned char *p = (const unsigned char *)parts[k]; *p; p++) {
            if (*p <= 0x20 || *p >= 0x7f || strchr("%&=+#", *p))
                http_buf_printf(q, "%%%02X", *p);
            else
                http_buf_put(q, (const char *)p, 1);
        }
    }
    return MHD_YES;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

bool http_query_param(const char *query, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = query; p && *p;) {
        const char *end = strchr(p, '&');
        if (!end)
            end = p + strlen(p);
        if ((size_t)(end - p) >= nl && strncmp(p, name, nl) == 0 &&
            (p[nl] == '=' || p + nl == end)) {
            const char *v = p + nl + (p + nl < end);
            size_t n = 0;
            while (v < end) {
                int ch = (unsigned char)*v++;
                if (ch == '+') {
                    ch = ' ';
                } else if (ch == '%' && end - v >= 2 && hexval(v[0]) >= 0 && hexval(v[1]) >= 0) {
                    ch = hexval(v[0]) * 16 + hexval(v[1]);
                    v += 2;
                }
                if (n + 1 >= cap)
                    return false;
                out[n++] = (char)ch;
            }
            out[n] = 0;
            return true;
        }
        p = *end ? end + 1 : end;
    }
    return false;
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, http_reply *r)
{
    if (r->body.oom) {
        free(r->body.p);
        memset(&r->body, 0, sizeof r->body);
        r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        r->content_type = "application/json";
        http_buf_printf(&r->body, "{\"error\":\"out of memory\"}\n");
    }
    struct MHD_Response *resp =
        r->body.p ? MHD_create_response_from_buffer_with_free_callback(r->body.len, r->body.p, free)
                  : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(r->body.p);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    cli_http *h = cls;
    (void)version;
    (void)upload_data;
    if (*con_cls == NULL) { /* the headers: answer once the (empty) body has been read */
        *con_cls = h;
        return MHD_YES;
    }
    http_reply r = {.status = 200, .content_type = "application/json"};
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    if (*upload_data_size) { /* no route takes a body */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (get && ws_is_path(url))
        return ws_upgrade(conn, url);
    size_t i = 0;
    for (; i < sizeof routes / sizeof routes[0]; i++)
        if (strcmp(url, routes[i].path) == 0)
            break;
    if (i == sizeof routes / sizeof routes[0]) {
        r.status = MHD_HTTP_NOT_FOUND;
        http_buf_printf(&r.body, "{\"error\":\"no such path\",\"paths\":[");
        for (size_t k = 0; k < sizeof routes / sizeof routes[0]; k++)
            http_buf_printf(&r.body, "%s\"%s\"", k ? "," : "", routes[k].path);
        http_buf_printf(&r.body, "]}\n");
    } else if (!get && !head) {
        r.status = MHD_HTTP_METHOD_NOT_ALLOWED;
        http_buf_printf(&r.body, "{\"error\":\"method %s not allowed: GET or HEAD\"}\n",
                        strlen(method) < 16 ? method : "?");
    } else {
        http_buf q = {0};
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_arg, &q);
        if (q.oom)
            r.body.oom = true; /* a 500 */
        else
            routes[i].fn(h->c, q.p ? q.p : "", &r);
        free(q.p);
    }
    enum MHD_Result ret = send_reply(conn, &r);
    return ret;
}

/* ---- addresses ---- */

typedef union http_sa {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
} http_sa;

static bool parse_addr(const char *spec, http_sa *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const char *colon = strrchr(spec, ':');
    char host[64];
    if (!colon || colon == spec || !colon[1])
        goto bad;
    size_t hl = (size_t)(colon - spec);
    const char *hs = spec;
    bool v6 = false;
    if (spec[0] == '[') {
        if (hl < 3 || spec[hl - 1] != ']')
            goto bad;
        hs = spec + 1;
        hl -= 2;
        v6 = true;
    }
    if (hl >= sizeof host)
        goto bad;
    memcpy(host, hs, hl);
    host[hl] = 0;
    unsigned long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9' || port > 65535)
            goto bad;
        port = port * 10 + (unsigned long)(*p - '0');
    }
    if (port > 65535)
        goto bad;
    if (v6) {
        out->in6.sin6_family = AF_INET6;
        out->in6.sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &out->in6.sin6_addr) != 1)
            goto bad;
    } else {
        out->in4.sin_family = AF_INET;
        out->in4.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &out->in4.sin_addr) != 1)
            goto bad;
    }
    return true;
bad:
    snprintf(err, errlen,
             "--http: \"%s\" is not ADDR:PORT (a numeric address and a port 0..65535: "
             "127.0.0.1:9100, [::1]:9100)",
             spec);
    return false;
}

bool cli_http_addr_check(const char *spec, char *err, size_t errlen)
{
    http_sa sa;
    return parse_addr(spec, &sa, err, errlen);
}

/* libmicrohttpd's own errors go to the daemon's log as one line each. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    for (char *p = line; *p; p++)
        if (*p == '"')
            *p = '\'';
    cli_log(KF_LOG_WARN, "msg=\"http server\" why=\"%s\"", line);
}

cli_http *cli_http_start(const char *spec, kf_collector *c, unsigned *port, char *err,
                         size_t errlen)
{
    http_sa sa;
    if (!parse_addr(spec, &sa, err, errlen))
        return NULL;
    cli_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "--http %s: out of memory", spec);
        return NULL;
    }
    h->c = c;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_UPGRADE;
    if (sa.sa.sa_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the server's threads must not take the stop signals: block them while they are made */
    sigset_t stop_set, old_set;
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_set, &old_set);
    ws_hub_set_collector(c); /* its writer threads, too, leave the signals to the main one */
    errno = 0;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, &sa.sa,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNECTIONS,
                            MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)HTTP_BACKLOG,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    int saved = errno;
    pthread_sigmask(SIG_SETMASK, &old_set, NULL);
    if (!h->d) {
        snprintf(err, errlen, "--http %s: cannot listen: %s", spec,
                 saved ? strerror(saved) : "libmicrohttpd could not start");
        free(h);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? info->port : 0;
    return h;
}

void cli_http_stop(cli_http *h)
{
    if (!h)
        return;
    ws_hub_stop(); /* its writer threads close their clients' sockets through the daemon */
    MHD_stop_daemon(h->d);
    ws_hub_free_pending();
    free(h);
}
