/*
 * klinefeed-bench: one binary, one subcommand per benchmark. To add one,
 * write `int kfb_<name>(int argc, char **argv)` in bench/bench_<name>.c,
 * declare it here and add one line to the table in main.c.
 */
#ifndef KF_BENCH_H
#define KF_BENCH_H
#include <stddef.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
    const char *help;
} kfb_cmd;

/* Commands */
int kfb_decode(int argc, char **argv);
int kfb_e2e(int argc, char **argv);
int kfb_footprint(int argc, char **argv);

/* Helpers shared by commands */
double kfb_now_ns(void);    /* CLOCK_MONOTONIC */
double kfb_thread_ns(void); /* CPU time of the calling thread: robust on a loaded machine */
/* Median of n values (sorts v in place); 0 when n == 0. */
double kfb_median(double *v, size_t n);
/* Process CPU seconds so far (getrusage RUSAGE_SELF, user + sys). */
double kfb_cpu_seconds(void);
/* VmRSS of this process in kB (/proc/self/status), or -1. */
long kfb_rss_kb(void);
/* Adds "sym@kline_iv,..." to cfg as symbols and intervals (the library subscribes
 * their product). Returns the number of names, or -1 (message on stderr). */
struct kf_config;
int kfb_add_streams(struct kf_config *cfg, const char *list);

#endif
