/* Shared helpers of the integration tests: log capture, waiting, reading the simulator's state. */
#ifndef KFTEST_H
#define KFTEST_H
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "klinefeed.h"

/* Log lines captured from a collector (kf_config_set_log(cfg, kft_log_fn, &cap, level)). */
typedef struct kft_logcap {
    pthread_mutex_t mu;
    char buf[1 << 16];
    size_t len;
    bool echo; /* also print to stderr */
} kft_logcap;

void kft_logcap_init(kft_logcap *cap, bool echo);
void kft_log_fn(void *ud, kf_log_level level, const char *line);
/* True when some captured line contains every one of the NULL-terminated needles. */
bool kft_logcap_has(kft_logcap *cap, const char *needle, ...);

/* Monotonic milliseconds. */
int64_t kft_now_ms(void);
/* Polls pred(arg) every 10 ms until true or timeout_ms passes; returns the last value. */
bool kft_wait(bool (*pred)(void *), void *arg, int timeout_ms);

/* What GET /sim/state says (see sim/). names: every stream subscribed on an open connection. */
typedef struct kft_sim_state {
    int64_t now;
    long connections_total, connections_open, subscribe_requests, rest_requests, pongs;
    size_t nstreams;
    char streams[4096][48];
    long conn_streams[64]; /* streams per open connection, in order */
    size_t nconns;
} kft_sim_state;

/* Fetches and parses /sim/state; false (and prints why) on failure. */
bool kft_sim_state_get(int port, kft_sim_state *st);
/* How many times name appears in st->streams. */
size_t kft_sim_state_count(const kft_sim_state *st, const char *name);

/* A config for the simulator on port with symbols/intervals (CSV), logging into cap (may be NULL).
 */
kf_config *kft_sim_config(int port, const char *symbols, const char *intervals, kft_logcap *cap);

/* mkdtemp under /tmp; returns a static-lifetime copy of the path. */
char *kft_tmpdir(void);
/* The value of " key=" on the daemon's last final line (msg="exiting") in the log file, -1 when
 * there is none or it lacks the key. */
long long kft_log_final_counter(const char *log, const char *key);

#endif
