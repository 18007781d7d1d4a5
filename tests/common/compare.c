/* compare.c - a SQLite store against the simulator's /sim/truth (see compare.h). Plain C,
 * sockets and OpenSSL (a simulator that speaks TLS), no cmocka: the standalone
 * klinefeed-compare links it too. */
#include "compare.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>
#include <sqlite3.h>

#include "decode/json.h"

#define GET_ATTEMPTS 40       /* connection failures retried every 250 ms: 10 s in all */
#define GET_TIMEOUT_MS 120000 /* a whole response (hours of candles are generated on demand) */
#define ROW_MAX 512           /* one row as text */

static void fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a growing buffer */

typedef struct dbuf {
    char *p;
    size_t len, cap;
} dbuf;

/* Room for more bytes and a NUL. */
static bool dbuf_reserve(dbuf *b, size_t more)
{
    if (b->cap - b->len > more)
        return true;
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap - b->len <= more)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p)
        return false;
    b->p = p;
    b->cap = cap;
    return true;
}

/* ---- the simulator's ports that speak TLS (kft_http_set_tls) */

#define TLS_PORTS 8

static struct {
    int port;
    char ca[1024];
} tls_ports[TLS_PORTS];

void kft_http_set_tls(int port, const char *ca_file)
{
    for (int i = 0; i < TLS_PORTS; i++)
        if (tls_ports[i].port == port)
            tls_ports[i].port = 0;
    if (!ca_file)
        return;
    for (int i = 0; i < TLS_PORTS; i++) {
        if (tls_ports[i].port == 0) {
            tls_ports[i].port = port;
            snprintf(tls_ports[i].ca, sizeof tls_ports[i].ca, "%s", ca_file);
            return;
        }
    }
    fprintf(stderr, "kft_http_set_tls: more than %d TLS ports at once\n", TLS_PORTS);
    abort();
}

const char *kft_http_tls_ca(int port)
{
    for (int i = 0; i < TLS_PORTS; i++)
        if (port > 0 && tls_ports[i].port == port)
            return tls_ports[i].ca;
    return NULL;
}

/* One connection to the simulator: plain, or TLS as "localhost" verified with a CA file
 * (blocking calls, each bounded by the socket's timeouts). */
typedef struct hconn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} hconn;

static void hconn_close(hconn *h)
{
    SSL_free(h->ssl);
    SSL_CTX_free(h->ctx);
    if (h->fd >= 0)
        close(h->fd);
    h->ssl = NULL;
    h->ctx = NULL;
    h->fd = -1;
}

/* The TLS handshake on h->fd. 0 ok; -1 retry (the connection broke: the simulator's refusal
 * fault resets new connections); -2 fail (the certificate was refused: no use retrying). */
static int hconn_tls(hconn *h, int port, const char *ca, char *err, size_t errlen)
{
    struct timeval tv = {GET_TIMEOUT_MS / 1000, 0};
    setsockopt(h->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(h->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ERR_clear_error();
    h->ctx = SSL_CTX_new(TLS_client_method());
    if (!h->ctx || SSL_CTX_load_verify_locations(h->ctx, ca, NULL) != 1) {
        fail(err, errlen, "TLS: cannot load the CA file %s", ca);
        return -2;
    }
    SSL_CTX_set_verify(h->ctx, SSL_VERIFY_PEER, NULL);
    /* the chain and the name are checked, not the dates: a test reads the state of a
     * simulator that serves an expired certificate to its client too */
    X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(h->ctx), X509_V_FLAG_NO_CHECK_TIME);
    h->ssl = SSL_new(h->ctx);
    if (!h->ssl || SSL_set_fd(h->ssl, h->fd) != 1 ||
        SSL_set_tlsext_host_name(h->ssl, "localhost") != 1 ||
        SSL_set1_host(h->ssl, "localhost") != 1) {
        fail(err, errlen, "TLS: cannot set up a session");
        return -2;
    }
    if (SSL_connect(h->ssl) == 1)
        return 0;
    long vr = SSL_get_verify_result(h->ssl);
    char why[256] = "connection closed";
    unsigned long e = ERR_get_error();
    if (vr != X509_V_OK)
        snprintf(why, sizeof why, "%s", X509_verify_cert_error_string(vr));
    else if (e)
        ERR_error_string_n(e, why, sizeof why);
    ERR_clear_error();
    fail(err, errlen, "TLS handshake with localhost:%d failed: %s", port, why);
    return vr != X509_V_OK ? -2 : -1;
}

static ssize_t hconn_send(hconn *h, const void *p, size_t n)
{
    if (!h->ssl)
        return send(h->fd, p, n, MSG_NOSIGNAL);
    int r = SSL_write(h->ssl, p, (int)n);
    ERR_clear_error();
    return r > 0 ? r : -1;
}

/* Like recv: bytes, 0 at the end of the stream (a TLS close_notify, or EOF), -1 on error. */
static ssize_t hconn_recv(hconn *h, void *p, size_t n)
{
    if (!h->ssl)
        return recv(h->fd, p, n, 0);
    ERR_clear_error();
    errno = 0;
    int r = SSL_read(h->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    int e = SSL_get_error(h->ssl, r);
    ERR_clear_error();
    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
        return 0;
    if (!errno)
        errno = EPROTO;
    return -1;
}

/* Something to read: TLS may hold decrypted bytes the socket no longer shows. */
static int hconn_wait(hconn *h, int timeout_ms)
{
    if (h->ssl && SSL_pending(h->ssl) > 0)
        return 1;
    struct pollfd pf = {h->fd, POLLIN, 0};
    return poll(&pf, 1, timeout_ms);
}

/* ---- HTTP GET over loopback, whole body */

typedef enum { GOT_OK, GOT_RETRY, GOT_FAIL } got;

/* One attempt into resp (head + body). GOT_RETRY: the connection failed or was cut before the
 * response was complete (the simulator's refusal fault resets new connections). */
static got get_once(int port, const char *path, dbuf *resp, size_t *head_len, char *err,
                    size_t errlen)
{
    resp->len = 0;
    hconn h = {.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (h.fd < 0) {
        fail(err, errlen, "socket: %s", strerror(errno));
        return GOT_FAIL;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(h.fd, (struct sockaddr *)&a, sizeof a) != 0) {
        fail(err, errlen, "connect to 127.0.0.1:%d: %s", port, strerror(errno));
        hconn_close(&h);
        return GOT_RETRY;
    }
    const char *ca = kft_http_tls_ca(port);
    int t = ca ? hconn_tls(&h, port, ca, err, errlen) : 0;
    if (t < 0) {
        hconn_close(&h);
        return t == -1 ? GOT_RETRY : GOT_FAIL;
    }
    char req[1024];
    int rl =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
                 path, ca ? "localhost" : "127.0.0.1", port);
    if (rl < 0 || (size_t)rl >= sizeof req) {
        fail(err, errlen, "request path too long: %.80s", path);
        hconn_close(&h);
        return GOT_FAIL;
    }
    if (hconn_send(&h, req, (size_t)rl) != rl) {
        fail(err, errlen, "send to 127.0.0.1:%d: %s", port, strerror(errno));
        hconn_close(&h);
        return GOT_RETRY;
    }
    int64_t deadline = mono_ms() + GET_TIMEOUT_MS;
    size_t head = 0;
    long long clen = -1;
    got g = GOT_RETRY;
    for (;;) {
        if (head && clen >= 0 && resp->len - head >= (size_t)clen) {
            g = GOT_OK;
            break;
        }
        int64_t left = deadline - mono_ms();
        int pr = left > 0 ? hconn_wait(&h, (int)left) : 0;
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            fail(err, errlen, "GET %.80s: no complete response within %d s", path,
                 GET_TIMEOUT_MS / 1000);
            g = GOT_FAIL;
            break;
        }
        if (!dbuf_reserve(resp, 1 << 16)) {
            fail(err, errlen, "out of memory reading GET %.80s", path);
            g = GOT_FAIL;
            break;
        }
        ssize_t r = hconn_recv(&h, resp->p + resp->len, resp->cap - resp->len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fail(err, errlen, "GET %.80s: recv: %s", path, strerror(errno));
            break;
        }
        if (r == 0) { /* closed: complete when the length was not announced */
            if (head && clen < 0)
                g = GOT_OK;
            else
                fail(err, errlen, "GET %.80s: connection closed before the response ended", path);
            break;
        }
        resp->len += (size_t)r;
        resp->p[resp->len] = 0;
        if (!head) {
            char *e = strstr(resp->p, "\r\n\r\n");
            if (!e)
                continue;
            head = (size_t)(e - resp->p) + 4;
            for (char *l = strstr(resp->p, "\r\n"); l && l < e; l = strstr(l + 2, "\r\n"))
                if (strncasecmp(l + 2, "Content-Length:", 15) == 0)
                    clen = strtoll(l + 17, NULL, 10);
        }
    }
    hconn_close(&h);
    *head_len = head;
    return g;
}

int kft_http_get_all(int port, const char *path, char **body, size_t *len, char *err, size_t errlen)
{
    *body = NULL;
    *len = 0;
    dbuf resp = {0};
    size_t head = 0;
    got g = GOT_RETRY;
    for (int i = 0; i < GET_ATTEMPTS && g == GOT_RETRY; i++) {
        if (i)
            usleep(250000);
        g = get_once(port, path, &resp, &head, err, errlen);
    }
    int status = -1;
    if (g == GOT_OK && sscanf(resp.p, "HTTP/1.%*d %d", &status) != 1) {
        fail(err, errlen, "GET %.80s: not an HTTP response", path);
        status = -1;
    }
    if (status < 0) {
        free(resp.p);
        return -1;
    }
    *len = resp.len - head;
    memmove(resp.p, resp.p + head, *len);
    resp.p[*len] = 0;
    *body = resp.p;
    return status;
}

/* ---- the simulator's side */

/* GET /sim/state "now". */
static bool sim_now(int port, int64_t *now, char *err, size_t errlen)
{
    char *body;
    size_t len;
    int status = kft_http_get_all(port, "/sim/state", &body, &len, err, errlen);
    if (status < 0)
        return false;
    bool found = false;
    if (status == 200) {
        kf__json j;
        kf__json_span key;
        kf__json_init(&j, body, len);
        if (kf__json_enter_object(&j))
            while (kf__json_next_key(&j, &key)) {
                if (kf__json_key_eq(&key, "now"))
                    found = kf__json_read_i64(&j, now);
                else
                    kf__json_skip_value(&j, NULL);
            }
        found = found && kf__json_finish(&j);
    }
    if (!found)
        fail(err, errlen, "GET /sim/state: HTTP %d, no \"now\": %.120s", status, body);
    free(body);
    return found;
}

typedef struct trow {
    int64_t open, close;
    size_t off; /* of its text in the text buffer */
} trow;

typedef struct truth {
    trow *rows;
    size_t n, cap;
    dbuf text;
} truth;

static bool str_field(kf__json *j, kf__json_span *v)
{
    return kf__json_next_elem(j) && kf__json_read_string(j, v);
}

static bool int_field(kf__json *j, int64_t *x)
{
    return kf__json_next_elem(j) && kf__json_read_i64(j, x);
}

/* The body's rows with close_time < to, as text, into t (emptied first). */
static bool parse_truth(const char *body, size_t len, int64_t to, truth *t, char *err,
                        size_t errlen)
{
    t->n = 0;
    t->text.len = 0;
    kf__json j;
    kf__json_init(&j, body, len);
    bool ok = kf__json_enter_array(&j);
    while (ok && kf__json_next_elem(&j)) {
        int64_t open, close, trades;
        kf__json_span o, h, l, c, v, q, tbb, tbq;
        ok = kf__json_enter_array(&j) && int_field(&j, &open) && str_field(&j, &o) &&
             str_field(&j, &h) && str_field(&j, &l) && str_field(&j, &c) && str_field(&j, &v) &&
             int_field(&j, &close) && str_field(&j, &q) && int_field(&j, &trades) &&
             str_field(&j, &tbb) && str_field(&j, &tbq) && kf__json_next_elem(&j) &&
             kf__json_skip_value(&j, NULL) && !kf__json_next_elem(&j) && kf__json_ok(&j);
        if (!ok)
            break;
        if (close >= to)
            continue;
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 1024;
            trow *rows = realloc(t->rows, cap * sizeof *rows);
            if (!rows) {
                fail(err, errlen, "out of memory");
                return false;
            }
            t->rows = rows;
            t->cap = cap;
        }
        if (!dbuf_reserve(&t->text, ROW_MAX)) {
            fail(err, errlen, "out of memory");
            return false;
        }
        int n = snprintf(
            t->text.p + t->text.len, ROW_MAX,
            "%" PRId64 "|%" PRId64 "|%.*s|%.*s|%.*s|%.*s|%.*s|%.*s|%" PRId64 "|%.*s|%.*s", open,
            close, (int)o.len, o.p, (int)h.len, h.p, (int)l.len, l.p, (int)c.len, c.p, (int)v.len,
            v.p, (int)q.len, q.p, trades, (int)tbb.len, tbb.p, (int)tbq.len, tbq.p);
        if (n < 0 || n >= ROW_MAX) {
            fail(err, errlen, "a /sim/truth row of more than %d bytes", ROW_MAX - 1);
            return false;
        }
        t->rows[t->n++] = (trow){open, close, t->text.len};
        t->text.len += (size_t)n + 1;
    }
    if (!ok || !kf__json_finish(&j)) {
        fail(err, errlen, "/sim/truth: not an array of kline rows (%s at byte %zu)",
             j.err ? j.err : "unexpected shape", j.err_at ? (size_t)(j.err_at - body) : 0);
        return false;
    }
    return true;
}

/* ---- the store's side */

typedef struct stream {
    char sym[64], iv[8];
} stream;

typedef struct streams {
    stream *v;
    size_t n, cap;
} streams;

static bool in_list(const char *const *list, const char *s)
{
    if (!list)
        return true;
    for (; *list; list++)
        if (strcmp(*list, s) == 0)
            return true;
    return false;
}

static bool add_stream(streams *ss, const char *sym, const char *iv, char *err, size_t errlen)
{
    if (strlen(sym) >= sizeof ss->v[0].sym || strlen(iv) >= sizeof ss->v[0].iv) {
        fail(err, errlen, "symbol or interval too long: %.64s %.16s", sym, iv);
        return false;
    }
    if (ss->n == ss->cap) {
        size_t cap = ss->cap ? ss->cap * 2 : 64;
        stream *v = realloc(ss->v, cap * sizeof *v);
        if (!v) {
            fail(err, errlen, "out of memory");
            return false;
        }
        ss->v = v;
        ss->cap = cap;
    }
    snprintf(ss->v[ss->n].sym, sizeof ss->v[0].sym, "%s", sym);
    snprintf(ss->v[ss->n].iv, sizeof ss->v[0].iv, "%s", iv);
    ss->n++;
    return true;
}

static bool list_streams(sqlite3 *db, const char *const *symbols, const char *const *intervals,
                         streams *ss, char *err, size_t errlen)
{
    if (symbols && intervals) {
        for (const char *const *s = symbols; *s; s++)
            for (const char *const *i = intervals; *i; i++)
                if (!add_stream(ss, *s, *i, err, errlen))
                    return false;
        return true;
    }
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT DISTINCT symbol, interval FROM klines WHERE closed=1 ORDER BY "
                           "symbol, interval",
                           -1, &st, NULL) != SQLITE_OK) {
        fail(err, errlen, "listing the streams: %s", sqlite3_errmsg(db));
        return false;
    }
    int rc;
    bool ok = true;
    while (ok && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *sym = (const char *)sqlite3_column_text(st, 0);
        const char *iv = (const char *)sqlite3_column_text(st, 1);
        if (sym && iv && in_list(symbols, sym) && in_list(intervals, iv))
            ok = add_stream(ss, sym, iv, err, errlen);
    }
    if (ok && rc != SQLITE_DONE) {
        fail(err, errlen, "listing the streams: %s", sqlite3_errmsg(db));
        ok = false;
    }
    sqlite3_finalize(st);
    return ok;
}

static const char *col(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? (const char *)s : "";
}

/* One bad-candle line, while lines are left. */
static void say(FILE *verbose, size_t max_lines, size_t *lines, const stream *s, const char *what,
                int64_t open, const char *store, const char *want)
{
    if (!verbose || *lines >= max_lines)
        return;
    ++*lines;
    fprintf(verbose, "%s %s %s open_time=%" PRId64 "%s%s%s%s\n", what, s->sym, s->iv, open,
            store ? " store=" : "", store ? store : "", want ? " truth=" : "", want ? want : "");
}

/* One stream: the window [from, to) of the store walked against the truth t. */
static bool compare_stream(sqlite3 *db, sqlite3_stmt *rows, const stream *s, int64_t from,
                           int64_t to, const truth *t, FILE *verbose, size_t max_lines,
                           size_t *lines, kft_cmp *out, char *err, size_t errlen)
{
    sqlite3_reset(rows);
    sqlite3_bind_text(rows, 1, s->sym, -1, SQLITE_STATIC);
    sqlite3_bind_text(rows, 2, s->iv, -1, SQLITE_STATIC);
    sqlite3_bind_int64(rows, 3, from);
    sqlite3_bind_int64(rows, 4, to);
    out->checked += t->n;
    size_t ti = 0;
    int rc;
    while ((rc = sqlite3_step(rows)) == SQLITE_ROW) {
        char row[ROW_MAX];
        int64_t open = sqlite3_column_int64(rows, 0);
        snprintf(row, sizeof row, "%" PRId64 "|%lld|%s|%s|%s|%s|%s|%s|%lld|%s|%s", open,
                 sqlite3_column_int64(rows, 1), col(rows, 2), col(rows, 3), col(rows, 4),
                 col(rows, 5), col(rows, 6), col(rows, 7), sqlite3_column_int64(rows, 8),
                 col(rows, 9), col(rows, 10));
        for (; ti < t->n && t->rows[ti].open < open; ti++) {
            out->missing++;
            say(verbose, max_lines, lines, s, "missing", t->rows[ti].open, NULL,
                t->text.p + t->rows[ti].off);
        }
        if (ti < t->n && t->rows[ti].open == open) {
            const char *want = t->text.p + t->rows[ti].off;
            if (strcmp(row, want) != 0) {
                out->differing++;
                say(verbose, max_lines, lines, s, "differing", open, row, want);
            }
            ti++;
        } else {
            out->extra++;
            say(verbose, max_lines, lines, s, "extra", open, row, NULL);
        }
    }
    if (rc != SQLITE_DONE) {
        fail(err, errlen, "reading %s %s: %s", s->sym, s->iv, sqlite3_errmsg(db));
        return false;
    }
    for (; ti < t->n; ti++) {
        out->missing++;
        say(verbose, max_lines, lines, s, "missing", t->rows[ti].open, NULL,
            t->text.p + t->rows[ti].off);
    }
    return true;
}

/* The open time of the stream's first stored closed row; false when there is none. */
static bool store_first(sqlite3_stmt *first, const stream *s, int64_t *open)
{
    sqlite3_reset(first);
    sqlite3_bind_text(first, 1, s->sym, -1, SQLITE_STATIC);
    sqlite3_bind_text(first, 2, s->iv, -1, SQLITE_STATIC);
    bool has = sqlite3_step(first) == SQLITE_ROW && sqlite3_column_type(first, 0) != SQLITE_NULL;
    if (has)
        *open = sqlite3_column_int64(first, 0);
    return has;
}

static int compare_sqlite(int port, const char *db_path, const char *const *symbols,
                          const char *const *intervals, int64_t from_ms, int64_t to_ms,
                          FILE *verbose, size_t max_lines, kft_cmp *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = 0;
    int64_t now;
    if (!sim_now(port, &now, err, errlen))
        return -1;
    int64_t to = to_ms < now ? to_ms : now; /* every candle closed before `to` is in the truth */

    sqlite3 *db = NULL;
    sqlite3_stmt *rows = NULL, *first = NULL;
    streams ss = {0};
    truth t = {0};
    size_t lines = 0;
    int ret = -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fail(err, errlen, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "cannot open");
        goto done;
    }
    sqlite3_busy_timeout(db, 10000);
    if (sqlite3_prepare_v2(db,
                           "SELECT open_time, close_time, open, high, low, close, volume, "
                           "quote_volume, trades, taker_buy_base, taker_buy_quote FROM klines "
                           "WHERE symbol=? AND interval=? AND closed=1 AND open_time>=? AND "
                           "close_time<? ORDER BY open_time",
                           -1, &rows, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT MIN(open_time) FROM klines WHERE symbol=? AND interval=? AND "
                           "closed=1",
                           -1, &first, NULL) != SQLITE_OK) {
        fail(err, errlen, "%s: %s", db_path, sqlite3_errmsg(db));
        goto done;
    }
    if (!list_streams(db, symbols, intervals, &ss, err, errlen))
        goto done;
    for (size_t i = 0; i < ss.n; i++) {
        const stream *s = &ss.v[i];
        out->streams++;
        int64_t from = from_ms;
        if (from == KFT_CMP_FROM_STORE && !store_first(first, s, &from))
            continue; /* nothing stored: an empty window */
        t.n = 0;
        if (from < to) {
            char path[256], start[40] = "";
            if (from > 0)
                snprintf(start, sizeof start, "&startTime=%" PRId64, from);
            snprintf(path, sizeof path, "/sim/truth?symbol=%s&interval=%s%s&endTime=%" PRId64,
                     s->sym, s->iv, start, to - 1);
            char *body;
            size_t len;
            int status = kft_http_get_all(port, path, &body, &len, err, errlen);
            if (status < 0)
                goto done;
            if (status != 200) {
                fail(err, errlen, "GET %s: HTTP %d: %.160s", path, status, body);
                free(body);
                goto done;
            }
            bool ok = parse_truth(body, len, to, &t, err, errlen);
            free(body);
            if (!ok)
                goto done;
        }
        if (!compare_stream(db, rows, s, from, to, &t, verbose, max_lines, &lines, out, err,
                            errlen))
            goto done;
    }
    ret = 0;
done:
    free(t.rows);
    free(t.text.p);
    free(ss.v);
    sqlite3_finalize(rows);
    sqlite3_finalize(first);
    sqlite3_close(db);
    return ret;
}

/* A postgres store ("postgres:CONNINFO"): its closed rows copied, decimals as NUMERIC::text (the
 * text Binance sent, as the store keeps it), into a new SQLite file at path with the SQLite
 * store's klines table, so that the one comparison below reads both stores alike. */
static bool pg_snapshot(const char *conninfo, char *path, size_t cap, char *err, size_t errlen)
{
    snprintf(path, cap, "/tmp/kft-pgsnap-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        fail(err, errlen, "mkstemp: %s", strerror(errno));
        return false;
    }
    close(fd);
    PGconn *c = PQconnectdb(conninfo);
    PGresult *r = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    bool ok = false;
    if (PQstatus(c) != CONNECTION_OK) {
        fail(err, errlen, "postgres: connect: %s", PQerrorMessage(c));
        goto out;
    }
    r = PQexec(c, "SELECT symbol, interval, open_time, close_time, open::text, high::text, "
                  "low::text, close::text, volume::text, quote_volume::text, trades, "
                  "taker_buy_base::text, taker_buy_quote::text FROM klines WHERE closed");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fail(err, errlen, "postgres: reading klines: %s", PQerrorMessage(c));
        goto out;
    }
    if (sqlite3_open(path, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "CREATE TABLE klines(symbol TEXT, interval TEXT, open_time INTEGER, "
                     "close_time INTEGER, open TEXT, high TEXT, low TEXT, close TEXT, volume "
                     "TEXT, quote_volume TEXT, trades INTEGER, taker_buy_base TEXT, "
                     "taker_buy_quote TEXT, closed INTEGER, PRIMARY KEY(symbol, interval, "
                     "open_time)); BEGIN",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT INTO klines VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
                           "?11, ?12, ?13, 1)",
                           -1, &ins, NULL) != SQLITE_OK) {
        fail(err, errlen, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
        goto out;
    }
    for (int i = 0, n = PQntuples(r); i < n; i++) {
        for (int j = 0; j < 13; j++) {
            if (j == 2 || j == 3 || j == 10)
                sqlite3_bind_int64(ins, j + 1, strtoll(PQgetvalue(r, i, j), NULL, 10));
            else
                sqlite3_bind_text(ins, j + 1, PQgetvalue(r, i, j), -1, SQLITE_STATIC);
        }
        if (sqlite3_step(ins) != SQLITE_DONE) {
            fail(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
            goto out;
        }
        sqlite3_reset(ins);
    }
    ok = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
    if (!ok)
        fail(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
out:
    sqlite3_finalize(ins);
    sqlite3_close(db);
    PQclear(r);
    PQfinish(c);
    if (!ok)
        unlink(path);
    return ok;
}

int kft_compare_store(int port, const char *db_path, const char *const *symbols,
                      const char *const *intervals, int64_t from_ms, int64_t to_ms, FILE *verbose,
                      size_t max_lines, kft_cmp *out, char *err, size_t errlen)
{
    if (strncmp(db_path, "postgres:", 9) != 0)
        return compare_sqlite(port, db_path, symbols, intervals, from_ms, to_ms, verbose, max_lines,
                              out, err, errlen);
    memset(out, 0, sizeof *out);
    /* the simulator's clock first: every row the snapshot holds is then compared up to it */
    int64_t now;
    if (!sim_now(port, &now, err, errlen))
        return -1;
    char path[64];
    if (!pg_snapshot(db_path + 9, path, sizeof path, err, errlen))
        return -1;
    int rc = compare_sqlite(port, path, symbols, intervals, from_ms, to_ms < now ? to_ms : now,
                            verbose, max_lines, out, err, errlen);
    unlink(path);
    return rc;
}
