/* sim_proc.h - test helpers: run klinefeed-sim as a child process and talk plain HTTP to it. */
#ifndef KF_TEST_SIM_PROC_H
#define KF_TEST_SIM_PROC_H

#include <stddef.h>
#include <sys/types.h>

typedef struct kft_sim kft_sim;

/* Starts KF_SIM_PATH with the NULL-terminated extra args (e.g. {"--speed","60",NULL}), reads
 * "port=N" from its stdout (timeout 10 s). NULL on failure (prints why). */
kft_sim *kft_sim_start(const char *const *args);
int kft_sim_port(const kft_sim *s);
int kft_sim_pid(const kft_sim *s);
/* GET http://127.0.0.1:port<path>; returns the HTTP status (or -1), body NUL-terminated in buf
 * (cut to cap-1). Plain sockets, no libcurl; TLS for a port given to kft_http_set_tls
 * (compare.h). */
int kft_http_get(int port, const char *path, char *buf, size_t cap);
/* SIGTERM, waitpid (SIGKILL after 5 s); frees. NULL ignored. */
void kft_sim_stop(kft_sim *s);

/* For cmocka tests that run one simulator at a time: stops the previous one, starts one with
 * the NULL-terminated args (asserting that it started) and keeps it for kft_sim_teardown, a
 * cmocka teardown that stops it even when an assertion failed. */
kft_sim *kft_sim_run(const char *a0, ...);
int kft_sim_teardown(void **state);

/* A buffer size for whole HTTP bodies of the simulator (klines, /sim/truth). */
#define KFT_HTTP_BUF (1 << 21)

#endif
