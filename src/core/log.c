#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int kf_log_level_parse(const char *name)
{
    for (int i = 0; name && i <= KF_LOG_OFF; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void kf__logger_init(kf__logger *lg, kf_log_fn fn, void *userdata, kf_log_level level)
{
    lg->fn = fn;
    lg->userdata = userdata;
    lg->level = level;
    pthread_mutex_init(&lg->mu, NULL);
}

void kf__logger_destroy(kf__logger *lg)
{
    pthread_mutex_destroy(&lg->mu);
}

static pthread_mutex_t default_mu = PTHREAD_MUTEX_INITIALIZER;

/* "<UTC time> level=<level> " and the rest of the line, cut to the buffer. */
static void log_format(char *line, size_t cap, kf_log_level level, const char *fmt, va_list ap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level]);
    if (n > 0 && (size_t)n < cap)
        vsnprintf(line + n, cap - (size_t)n, fmt, ap);
}

void kf_log(kf_log_fn fn, void *userdata, kf_log_level threshold, kf_log_level level,
            const char *fmt, ...)
{
    if (level < threshold || level < KF_LOG_DEBUG || level >= KF_LOG_OFF || !fmt)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    log_format(line, sizeof line, level, fmt, ap);
    va_end(ap);
    if (fn)
        fn(userdata, level, line);
    else
        fprintf(stderr, "%s\n", line);
}

void kf__log(kf__logger *lg, kf_log_level level, const char *fmt, ...)
{
    kf_log_level min = lg ? lg->level : KF_LOG_INFO;
    if (level < min || level >= KF_LOG_OFF)
        return;
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    log_format(line, sizeof line, level, fmt, ap);
    va_end(ap);
    pthread_mutex_t *mu = lg ? &lg->mu : &default_mu;
    pthread_mutex_lock(mu);
    if (lg && lg->fn)
        lg->fn(lg->userdata, level, line);
    else
        fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(mu);
}

void kf__log_sample(const char *data, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, take = len < 64 ? len : 64;
    if (cap < 16) {
        if (cap)
            out[0] = 0;
        return;
    }
    out[o++] = '"';
    for (size_t i = 0; i < take && o + 5 < cap; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[o++] = (char)c;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
        if (o + 8 >= cap)
            break;
    }
    if (len > take && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = 0;
}
