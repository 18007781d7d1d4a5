/* URL parsing for the WebSocket and REST bases: scheme, host, port, path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "transport/conn.h"

kf_err kf__url_parse(const char *url, kf__url *out, char *err, size_t errlen)
{
    static const struct {
        const char *scheme;
        bool tls;
        int port;
    } schemes[] = {{"ws://", false, 80},
                   {"wss://", true, 443},
                   {"http://", false, 80},
                   {"https://", true, 443}};
    memset(out, 0, sizeof *out);
    const char *p = NULL;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t n = strlen(schemes[i].scheme);
        if (strncmp(url, schemes[i].scheme, n) == 0) {
            p = url + n;
            out->tls = schemes[i].tls;
            out->port = schemes[i].port;
            break;
        }
    }
    if (!p) {
        snprintf(err, errlen, "URL \"%.200s\": unknown scheme", url);
        return KF_ERR_CONFIG;
    }
    const char *slash = strchr(p, '/');
    const char *hend = slash ? slash : p + strlen(p);
    const char *colon = NULL;
    const char *hs = p, *he;
    if (*p == '[') { /* [v6]:port */
        const char *rb = memchr(p, ']', (size_t)(hend - p));
        if (!rb) {
            snprintf(err, errlen, "URL \"%.200s\": unterminated IPv6 address", url);
            return KF_ERR_CONFIG;
        }
        hs = p + 1;
        he = rb;
        if (rb + 1 < hend && rb[1] == ':')
            colon = rb + 1;
    } else {
        colon = memchr(p, ':', (size_t)(hend - p));
        he = colon ? colon : hend;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof out->host) {
        snprintf(err, errlen, "URL \"%.200s\": bad host", url);
        return KF_ERR_CONFIG;
    }
    memcpy(out->host, hs, (size_t)(he - hs));
    bool default_port = true;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != hend || port < 1 || port > 65535) {
            snprintf(err, errlen, "URL \"%.200s\": bad port", url);
            return KF_ERR_CONFIG;
        }
        default_port = port == out->port;
        out->port = (int)port;
    }
    size_t plen = slash ? strlen(slash) : 0;
    while (plen && slash[plen - 1] == '/')
        plen--;
    if (plen >= sizeof out->path) {
        snprintf(err, errlen, "URL \"%.200s\": path too long", url);
        return KF_ERR_CONFIG;
    }
    if (plen)
        memcpy(out->path, slash, plen);
    bool v6 = strchr(out->host, ':') != NULL;
    if (default_port)
        snprintf(out->host_header, sizeof out->host_header, v6 ? "[%s]" : "%s", out->host);
    else
        snprintf(out->host_header, sizeof out->host_header, v6 ? "[%s]:%d" : "%s:%d", out->host,
                 out->port);
    return KF_OK;
}
