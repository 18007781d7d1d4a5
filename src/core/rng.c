#include "core/rng.h"

#include <time.h>
#include <unistd.h>

/* splitmix64's finaliser: seeds that differ in a few bits (two addresses, two pids) give
 * unrelated states. */
static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void kf__rng_seed_value(kf__rng *r, uint64_t v)
{
    r->s = mix(v + 0x9e3779b97f4a7c15ULL);
    if (!r->s) /* xorshift stays at 0 forever */
        r->s = 0x9e3779b97f4a7c15ULL;
}

void kf__rng_seed(kf__rng *r, const void *owner)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    /* the pid matters most: forked processes share the clock's second and every address */
    uint64_t v = mix((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
    v ^= mix((uint64_t)getpid() << 1 | 1);
    v ^= (uint64_t)(uintptr_t)owner;
    kf__rng_seed_value(r, v);
}

uint64_t kf__rng_next(kf__rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dULL; /* xorshift64*: the low bits, which a modulo keeps, too */
}

uint64_t kf__rng_upto(kf__rng *r, uint64_t n)
{
    return n == UINT64_MAX ? kf__rng_next(r) : kf__rng_next(r) % (n + 1);
}

uint64_t kf__backoff_cap(unsigned n, uint64_t first_ms, uint64_t max_ms)
{
    uint64_t cap = first_ms;
    for (unsigned i = 1; i < n && cap < max_ms; i++)
        cap *= 2;
    return cap > max_ms ? max_ms : cap;
}
