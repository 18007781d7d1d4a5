/* server.c - the single-threaded poll loop of klinefeed-sim: one TCP listener for HTTP/1.1
 * (keep-alive) and WebSocket upgrades, plain or TLS (tls.c), per-connection buffers, timers
 * for stream updates and pings. Flooding connections are handed to a thread (flood.c) and
 * skipped meanwhile. */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

sim_stats g_stats;

static sim_conn **conns;
static int nconns, capconns;
static uint64_t next_id = 1;
static int wake_pipe[2] = {-1, -1};

#define MAX_HEADER 65536
#define MAX_WBUF (256u << 20)

static int listen_socket(void)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof port, "%d", g_opt.port);
    int rc = getaddrinfo(g_opt.host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "klinefeed-sim: --listen: %s: %s\n", g_opt.host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 512) == 0)
            break;
        fprintf(stderr, "klinefeed-sim: bind/listen %s:%s: %s\n", g_opt.host, port,
                strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void conn_free(sim_conn *c)
{
    if (c->ws)
        ws_conn_free(c);
    if (c->ssl)
        tls_detach(c);
    if (c->fd >= 0)
        close(c->fd);
    sb_free(&c->rb);
    sb_free(&c->wb);
    sb_free(&c->held);
    free(c);
}

/* A connection that ends on purpose (its reply or close frame is out): with TLS, a
 * close_notify first. Resets and failures just close (conn_free). */
static void conn_end(sim_conn *c)
{
    tls_close_notify(c);
    c->dead = true;
}

static void conn_flush(sim_conn *c)
{
    while (c->wb.len > 0) {
        short want;
        long n = sim_io_write(c->ssl, c->fd, c->wb.p, c->wb.len, &want);
        if (n > 0) {
            sb_consume(&c->wb, (size_t)n);
            continue;
        }
        if (n == SIM_IO_AGAIN) /* POLLOUT while wb has bytes; POLLIN is always polled */
            break;
        c->dead = true;
        return;
    }
    if (c->wb.len > MAX_WBUF) {
        fprintf(stderr, "klinefeed-sim: connection %llu: client too slow, dropped\n",
                (unsigned long long)c->id);
        c->dead = true;
    }
    if (c->wb.len == 0 && c->closing)
        conn_end(c);
}

/* case-insensitive token search in a comma list header value */
static bool header_has_token(const char *v, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = v;
    while (*p) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        const char *st = p;
        while (*p && *p != ',')
            p++;
        const char *en = p;
        while (en > st && (en[-1] == ' ' || en[-1] == '\t'))
            en--;
        if ((size_t)(en - st) == tl && strncasecmp(st, tok, tl) == 0)
            return true;
    }
    return false;
}

static void http_simple(sim_conn *c, int status, const char *reason, const char *body)
{
    sb_printf(&c->wb,
              "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\n"
              "Content-Length: %zu\r\nConnection: %s\r\n\r\n%s",
              status, reason, strlen(body), c->want_close_after_http ? "close" : "keep-alive",
              body);
}

/* one complete request head is at c->rb[0..hlen); returns false to stop processing */
static bool http_request(sim_conn *c, size_t hlen)
{
    char *head = sim_xmalloc(hlen + 1);
    memcpy(head, c->rb.p, hlen);
    head[hlen] = 0;
    sb_consume(&c->rb, hlen);

    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);
    char method[16] = "", version[16] = "";
    char *target = NULL; /* points into head; may be long (/market/stream?streams=...) */
    if (line) {
        char *sp1 = strchr(line, ' ');
        char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
        if (sp1 && sp2 && (size_t)(sp1 - line) < sizeof method &&
            strlen(sp2 + 1) < sizeof version) {
            memcpy(method, line, (size_t)(sp1 - line));
            *sp2 = 0;
            target = sp1 + 1;
            snprintf(version, sizeof version, "%s", sp2 + 1);
        }
    }
    if (!target || !*target || strncmp(version, "HTTP/1.", 7) != 0) {
        c->want_close_after_http = true;
        http_simple(c, 400, "Bad Request", "{\"code\":-1,\"msg\":\"bad request line\"}");
        c->closing = true;
        free(head);
        return false;
    }
    char upgrade[128] = "", connection[256] = "", wsver[32] = "", wskey[128] = "";
    long long clen = 0;
    for (line = strtok_r(NULL, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = 0;
        char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            v[--vl] = 0;
        if (strcasecmp(line, "Upgrade") == 0)
            snprintf(upgrade, sizeof upgrade, "%s", v);
        else if (strcasecmp(line, "Connection") == 0)
            snprintf(connection, sizeof connection, "%s", v);
        else if (strcasecmp(line, "Sec-WebSocket-Version") == 0)
            snprintf(wsver, sizeof wsver, "%s", v);
        else if (strcasecmp(line, "Sec-WebSocket-Key") == 0)
            snprintf(wskey, sizeof wskey, "%s", v);
        else if (strcasecmp(line, "Content-Length") == 0)
            clen = atoll(v);
    }
    if (strcmp(version, "HTTP/1.0") == 0)
        c->want_close_after_http = !header_has_token(connection, "keep-alive");
    if (header_has_token(connection, "close"))
        c->want_close_after_http = true;
    if (clen > 0) { /* GET with a body: skip it (must be buffered already or arriving) */
        if ((size_t)clen > c->rb.len) {
            c->want_close_after_http = true;
            c->closing = true;
        }
        sb_consume(&c->rb, (size_t)clen);
    }

    if (upgrade[0] || strncmp(target, "/market", 7) == 0 || strncmp(target, "/ws", 3) == 0 ||
        strncmp(target, "/stream", 7) == 0 || strncmp(target, "/public", 7) == 0 ||
        strncmp(target, "/private", 8) == 0) {
        int status = 400;
        bool up = strcmp(method, "GET") == 0 &&
                  ws_try_upgrade(c, target, upgrade, connection, wsver, wskey, &status);
        free(head);
        if (up)
            return false; /* now a websocket: remaining bytes are frames */
        c->want_close_after_http = true;
        http_simple(c, 400, "Bad Request", "{\"code\":-1,\"msg\":\"websocket upgrade required\"}");
        c->closing = true;
        return false;
    }
    if (strcmp(method, "GET") != 0) {
        http_simple(c, 405, "Method Not Allowed", "{\"code\":-1,\"msg\":\"method not allowed\"}");
    } else {
        size_t mark = c->wb.len;
        rest_handle(c, target);
        if (c->hold == HOLD_SLOW) { /* the reply waits in held until hold_until */
            sb_put(&c->held, c->wb.p + mark, c->wb.len - mark);
            c->wb.len = mark;
        }
    }
    free(head);
    if (c->hold) /* later requests wait; closing (if asked) comes with the reply */
        return false;
    if (c->want_close_after_http) {
        c->closing = true;
        return false;
    }
    return true;
}

static void http_process(sim_conn *c);

static void conn_on_read(sim_conn *c)
{
    if (c->ssl && !tls_handshake(c))
        return; /* not finished yet, or failed (dead) */
    char buf[65536];
    for (;;) {
        short want;
        long n = sim_io_read(c->ssl, c->fd, buf, sizeof buf, &want);
        if (n > 0) {
            sb_put(&c->rb, buf, (size_t)n);
            if (c->rb.len > (64u << 20)) {
                c->dead = true;
                return;
            }
            continue;
        }
        if (n == SIM_IO_AGAIN) {
            c->tls_want_out = want == POLLOUT; /* TLS only: a read that must write first */
            break;
        }
        if (n == SIM_IO_ERR && c->ssl)
            tls_log_error(c);
        c->dead = true; /* EOF or error */
        break;
    }
    if (c->stalled) { /* ignores what it receives */
        c->rb.len = 0;
        return;
    }
    http_process(c);
}

static void http_process(sim_conn *c)
{
    while (!c->ws && !c->closing && !c->hold && c->rb.len > 0) {
        char *end = memmem(c->rb.p, c->rb.len, "\r\n\r\n", 4);
        if (!end) {
            if (c->rb.len > MAX_HEADER) {
                c->want_close_after_http = true;
                http_simple(c, 431, "Request Header Fields Too Large",
                            "{\"code\":-1,\"msg\":\"header too large\"}");
                c->closing = true;
            }
            break;
        }
        if (!http_request(c, (size_t)(end - c->rb.p) + 4))
            break;
    }
    if (c->ws && !c->closing && !c->stalled)
        ws_on_data(c);
}

/* end of a REST hold: the delayed reply goes out, or the unanswered request's connection
 * closes */
static void hold_release(sim_conn *c)
{
    if (c->hold == HOLD_TIMEOUT) {
        c->hold = HOLD_NONE;
        c->dead = true;
        return;
    }
    c->hold = HOLD_NONE;
    sb_put(&c->wb, c->held.p, c->held.len);
    c->held.len = 0;
    if (c->want_close_after_http)
        c->closing = true;
    else
        http_process(c);
}

static void accept_all(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (faults_refusing(sim_real_ms())) {
            faults_reset_fd(fd);
            close(fd);
            g_fstats.refused_connections++;
            fprintf(stderr, "klinefeed-sim: fault: connection refused (reset)\n");
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sim_conn *c = sim_xmalloc(sizeof *c);
        memset(c, 0, sizeof *c);
        c->fd = fd;
        c->id = next_id++;
        c->hist = -1;
        if (tls_enabled() && !tls_attach(c)) {
            close(fd);
            free(c);
            continue;
        }
        if (nconns == capconns) {
            capconns = capconns ? capconns * 2 : 64;
            conns = sim_xrealloc(conns, sizeof(sim_conn *) * (size_t)capconns);
        }
        conns[nconns++] = c;
    }
}

int server_run(void)
{
    int lfd = listen_socket();
    if (lfd < 0)
        return 1;
    if (pipe2(wake_pipe, O_NONBLOCK | O_CLOEXEC) != 0) {
        perror("klinefeed-sim: pipe2");
        return 1;
    }
    printf("port=%d\n", bound_port(lfd));
    fflush(stdout);
    fprintf(stderr, "klinefeed-sim: listening on %s:%d (%s), %d symbols, start=%lld speed=%g\n",
            g_opt.host, bound_port(lfd), tls_enabled() ? "TLS" : "plain", g_nsyms,
            (long long)g_opt.start_ms, g_opt.speed);

    struct pollfd *pfds = NULL;
    int *pidx = NULL;
    int cap = 0;
    while (!g_stop) {
        if (cap < nconns + 2) {
            cap = nconns + 64;
            pfds = sim_xrealloc(pfds, sizeof *pfds * (size_t)cap);
            pidx = sim_xrealloc(pidx, sizeof *pidx * (size_t)cap);
        }
        int np = 0;
        pfds[np].fd = wake_pipe[0];
        pfds[np].events = POLLIN;
        pidx[np++] = -1;
        pfds[np].fd = lfd;
        pfds[np].events = POLLIN;
        pidx[np++] = -1;
        int64_t now = sim_now();
        int64_t rnow = sim_real_ms();
        int64_t timeout = 1000;
        int64_t fdue = faults_next_due(conns, nconns, rnow);
        if (fdue < timeout)
            timeout = fdue < 0 ? 0 : fdue;
        for (int i = 0; i < nconns; i++) {
            sim_conn *c = conns[i];
            if (flood_running(c))
                continue;
            pfds[np].fd = c->fd;
            pfds[np].events =
                (short)((c->closing ? 0 : POLLIN) |
                        ((c->wb.len && !c->stalled) || c->tls_want_out ? POLLOUT : 0));
            pidx[np++] = i;
            if (c->hold && c->hold_until - rnow < timeout)
                timeout = c->hold_until - rnow < 0 ? 0 : c->hold_until - rnow;
            if (c->ws && !c->closing && !c->stalled) {
                int64_t due = ws_next_due(c, now);
                int64_t t = due <= now ? 0 : (int64_t)((double)(due - now) / g_opt.speed) + 1;
                if (c->next_ping - rnow < t)
                    t = c->next_ping - rnow;
                if (t < timeout)
                    timeout = t < 0 ? 0 : t;
            }
        }
        int rc = poll(pfds, (nfds_t)np, (int)timeout);
        if (rc < 0 && errno != EINTR) {
            perror("klinefeed-sim: poll");
            break;
        }
        if (g_stop)
            break;
        if (rc > 0 && (pfds[0].revents & POLLIN)) {
            char tmp[256];
            while (read(wake_pipe[0], tmp, sizeof tmp) > 0) {
            }
        }
        for (int i = 0; i < nconns; i++)
            if (conns[i]->flood)
                flood_reap(conns[i]);
        if (rc > 0 && (pfds[1].revents & POLLIN))
            accept_all(lfd);
        for (int k = 2; rc > 0 && k < np; k++) {
            sim_conn *c = conns[pidx[k]];
            if ((pfds[k].revents & (POLLIN | POLLHUP | POLLERR)) ||
                (c->tls_want_out && (pfds[k].revents & POLLOUT)))
                conn_on_read(c);
        }
        now = sim_now();
        rnow = sim_real_ms();
        faults_tick(conns, nconns, rnow);
        for (int i = 0; i < nconns; i++) {
            sim_conn *c = conns[i];
            if (flood_running(c) || c->dead || c->stalled)
                continue;
            if (c->hold && rnow >= c->hold_until)
                hold_release(c);
            if (c->dead)
                continue;
            if (c->ws && !c->closing && !flood_maybe_start(c, wake_pipe[1]))
                ws_tick(c, now);
            if (!flood_running(c) && c->wb.len)
                conn_flush(c);
            else if (!flood_running(c) && c->closing)
                conn_end(c);
        }
        int w = 0;
        for (int i = 0; i < nconns; i++) {
            sim_conn *c = conns[i];
            if (c->dead && !flood_running(c)) {
                if (c->flood)
                    flood_reap(c);
                conn_free(c);
            } else {
                conns[w++] = c;
            }
        }
        nconns = w;
    }
    fprintf(stderr, "klinefeed-sim: shutting down\n");
    close(lfd);
    flood_abort_all();
    for (int i = 0; i < nconns; i++) {
        while (flood_running(conns[i]))
            usleep(10000);
        if (conns[i]->flood)
            flood_reap(conns[i]);
        conn_free(conns[i]);
    }
    free(conns);
    ws_cleanup();
    market_cleanup();
    tls_cleanup();
    free(pfds);
    free(pidx);
    close(wake_pipe[0]);
    close(wake_pipe[1]);
    return 0;
}

/* helpers used by rest.c */
void server_http_reply(sim_conn *c, int status, const char *reason, const char *extra_headers,
                       const char *body, size_t blen)
{
    sb_printf(&c->wb,
              "HTTP/1.1 %d %s\r\nContent-Type: application/json;charset=UTF-8\r\n"
              "Content-Length: %zu\r\n%sConnection: %s\r\n\r\n",
              status, reason, blen, extra_headers ? extra_headers : "",
              c->want_close_after_http ? "close" : "keep-alive");
    sb_put(&c->wb, body, blen);
}
