#include "kftest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "decode/json.h"
#include "sim_proc.h"

void kft_logcap_init(kft_logcap *cap, bool echo)
{
    memset(cap, 0, sizeof *cap);
    pthread_mutex_init(&cap->mu, NULL);
    cap->echo = echo;
}

void kft_log_fn(void *ud, kf_log_level level, const char *line)
{
    kft_logcap *cap = ud;
    (void)level;
    pthread_mutex_lock(&cap->mu);
    size_t n = strlen(line);
    if (cap->len + n + 2 < sizeof cap->buf) {
        memcpy(cap->buf + cap->len, line, n);
        cap->len += n;
        cap->buf[cap->len++] = '\n';
        cap->buf[cap->len] = 0;
    }
    if (cap->echo)
        fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&cap->mu);
}

bool kft_logcap_has(kft_logcap *cap, const char *needle, ...)
{
    const char *needles[16];
    size_t nn = 0;
    va_list ap;
    va_start(ap, needle);
    for (const char *s = needle; s && nn < 16; s = va_arg(ap, const char *))
        needles[nn++] = s;
    va_end(ap);
    bool found = false;
    pthread_mutex_lock(&cap->mu);
    for (char *line = cap->buf; !found && line < cap->buf + cap->len;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break;
        *nl = 0;
        bool all = true;
        for (size_t i = 0; i < nn && all; i++)
            all = strstr(line, needles[i]) != NULL;
        *nl = '\n';
        found = all;
        line = nl + 1;
    }
    pthread_mutex_unlock(&cap->mu);
    return found;
}

int64_t kft_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool kft_wait(bool (*pred)(void *), void *arg, int timeout_ms)
{
    int64_t end = kft_now_ms() + timeout_ms;
    for (;;) {
        if (pred(arg))
            return true;
        if (kft_now_ms() > end)
            return pred(arg);
        usleep(10000);
    }
}

static bool state_read_long(kf__json *j, long *out)
{
    int64_t v;
    if (!kf__json_read_i64(j, &v))
        return false;
    *out = (long)v;
    return true;
}

bool kft_sim_state_get(int port, kft_sim_state *st)
{
    static char body[1 << 20];
    memset(st, 0, sizeof *st);
    int status = kft_http_get(port, "/sim/state", body, sizeof body);
    if (status != 200) {
        fprintf(stderr, "kft_sim_state_get: HTTP %d\n", status);
        return false;
    }
    kf__json j;
    kf__json_span key, v;
    kf__json_init(&j, body, strlen(body));
    if (!kf__json_enter_object(&j))
        return false;
    while (kf__json_next_key(&j, &key)) {
        if (kf__json_key_eq(&key, "now")) {
            kf__json_read_i64(&j, &st->now);
        } else if (kf__json_key_eq(&key, "connections_total")) {
            state_read_long(&j, &st->connections_total);
        } else if (kf__json_key_eq(&key, "connections_open")) {
            state_read_long(&j, &st->connections_open);
        } else if (kf__json_key_eq(&key, "subscribe_requests")) {
            state_read_long(&j, &st->subscribe_requests);
        } else if (kf__json_key_eq(&key, "pongs")) {
            state_read_long(&j, &st->pongs);
        } else if (kf__json_key_eq(&key, "rest_requests")) {
            state_read_long(&j, &st->rest_requests);
        } else if (kf__json_key_eq(&key, "streams") && kf__json_enter_array(&j)) {
            while (kf__json_next_elem(&j) && kf__json_read_string(&j, &v))
                if (st->nstreams < sizeof st->streams / sizeof st->streams[0])
                    snprintf(st->streams[st->nstreams++], sizeof st->streams[0], "%.*s", (int)v.len,
                             v.p);
        } else if (kf__json_key_eq(&key, "connections") && kf__json_enter_array(&j)) {
            while (kf__json_next_elem(&j) && kf__json_enter_object(&j)) {
                long streams = 0;
                bool open = true;
                while (kf__json_next_key(&j, &key)) {
                    if (kf__json_key_eq(&key, "streams"))
                        state_read_long(&j, &streams);
                    else if (kf__json_key_eq(&key, "open"))
                        kf__json_read_bool(&j, &open);
                    else
                        kf__json_skip_value(&j, NULL);
                }
                if (open && st->nconns < 64)
                    st->conn_streams[st->nconns++] = streams;
            }
        } else {
            kf__json_skip_value(&j, NULL);
        }
    }
    if (!kf__json_finish(&j)) {
        fprintf(stderr, "kft_sim_state_get: bad JSON (%s): %.200s\n", j.err, body);
        return false;
    }
    return true;
}

size_t kft_sim_state_count(const kft_sim_state *st, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < st->nstreams; i++)
        n += strcmp(st->streams[i], name) == 0;
    return n;
}

kf_config *kft_sim_config(int port, const char *symbols, const char *intervals, kft_logcap *cap)
{
    char url[128];
    kf_config *cfg = kf_config_new();
    if (!cfg)
        return NULL;
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/market", port);
    if (kf_config_set_ws_url(cfg, url))
        goto bad;
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    if (kf_config_set_rest_url(cfg, url) || kf_config_add_symbols(cfg, symbols) ||
        kf_config_add_intervals(cfg, intervals))
        goto bad;
    kf_config_set_validate(cfg, KF_VALIDATE_REQUIRED);
    /* generous: a loaded CI host under a sanitizer or valgrind took over 5 s for a loopback
     * upgrade; a test of timeouts sets its own */
    kf_config_set_connect_timeout_ms(cfg, 20000);
    if (cap)
        kf_config_set_log(cfg, kft_log_fn, cap, KF_LOG_DEBUG);
    return cfg;
bad:
    fprintf(stderr, "kft_sim_config: %s\n", kf_config_errmsg(cfg));
    kf_config_free(cfg);
    return NULL;
}

char *kft_tmpdir(void)
{
    char tmpl[] = "/tmp/kftest-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

long long kft_log_final_counter(const char *log, const char *key)
{
    FILE *f = fopen(log, "r");
    char line[8192], last[8192] = "";
    while (f && fgets(line, sizeof line, f))
        if (strstr(line, "msg=\"exiting\""))
            snprintf(last, sizeof last, "%s", line);
    if (f)
        fclose(f);
    char pat[64];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(last, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}
