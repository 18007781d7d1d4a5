/* Structured one-line logging: "<UTC time> level=<l> msg=<m> key=value ...". */
#ifndef KF_CORE_LOG_H
#define KF_CORE_LOG_H
#include <pthread.h>

#include "klinefeed.h"

typedef struct kf__logger {
    kf_log_fn fn; /* NULL: stderr */
    void *userdata;
    kf_log_level level;
    pthread_mutex_t mu; /* serialises lines */
} kf__logger;

void kf__logger_init(kf__logger *lg, kf_log_fn fn, void *userdata, kf_log_level level);
void kf__logger_destroy(kf__logger *lg);

/* fmt continues the line after "level=..": e.g. "msg=connected url=%s". A NULL logger
 * logs to stderr at info. Lines are cut at 2 KiB. Thread-safe. */
void kf__log(kf__logger *lg, kf_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies at most 64 bytes of untrusted data into out as a quoted sample with non-printable
 * bytes escaped as \xNN, for "sample=" fields; cut to fit cap (>= 16; 272 holds all 64). */
void kf__log_sample(const char *data, size_t len, char *out, size_t cap);

#endif
