/*
 * A small random generator per owner (xorshift64*) for backoff jitter, and the backoff ceiling
 * both jittered backoffs share. Jitter exists so that clients do not retry in lockstep: every
 * owner seeds its own generator from the clock, the process id and its own address, so two
 * processes started together, or two collectors in one process, draw different delays (an
 * unseeded rand() gives every process of a fleet the same sequence, and is one state shared
 * by every collector of a process). Not for anything secret.
 */
#ifndef KF_CORE_RNG_H
#define KF_CORE_RNG_H
#include <stdint.h>

typedef struct kf__rng {
    uint64_t s; /* never 0 */
} kf__rng;

/* Seeds r from the real-time clock, getpid() and owner (an address unique in the process). */
void kf__rng_seed(kf__rng *r, const void *owner);
/* Seeds r from a fixed value (tests): the same value gives the same sequence. */
void kf__rng_seed_value(kf__rng *r, uint64_t v);
uint64_t kf__rng_next(kf__rng *r);
/* Uniform in [0, n] (n < 2^32: the modulo bias is below 2^-32). */
uint64_t kf__rng_upto(kf__rng *r, uint64_t n);
/* The ceiling of the n-th consecutive failure's delay (n >= 1): first_ms, doubled for each
 * failure after the first, at most max_ms. */
uint64_t kf__backoff_cap(unsigned n, uint64_t first_ms, uint64_t max_ms);

#endif
