/* The new-connection budget shared by a collector's shards. */
#include "collector/conn_budget.h"

#include <string.h>

#include "core/alloc.h"

kf_err kf__conn_budget_init(kf__conn_budget *b, unsigned n, unsigned window_ms)
{
    memset(b, 0, sizeof *b);
    b->n = n ? n : 1;
    b->window_ms = window_ms;
    b->attempts = kf__calloc(b->n, sizeof *b->attempts);
    return b->attempts ? KF_OK : KF_ERR_NOMEM;
}

void kf__conn_budget_free(kf__conn_budget *b)
{
    kf__free(b->attempts);
    b->attempts = NULL;
}

bool kf__conn_budget_take(kf__conn_budget *b, uint64_t now, uint64_t *wait_ms)
{
    uint64_t oldest = b->attempts[b->head];
    if (oldest && now - oldest < b->window_ms) {
        *wait_ms = b->window_ms - (now - oldest);
        return false;
    }
    b->attempts[b->head] = now ? now : 1;
    b->head = (b->head + 1) % b->n;
    return true;
}
