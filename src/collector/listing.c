/* The symbol re-read's decision: what to add, what to delist, and when not to trust an answer. */
#include "collector/listing.h"

#include <string.h>

#include "core/alloc.h"

static const kf__listed *find_listed(const kf__listed *ans, size_t n, const char *sym)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ans[i].symbol, sym) == 0)
            return &ans[i];
    return NULL;
}

static const kf__held *find_held(const kf__held *held, size_t n, const char *sym)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(held[i].symbol, sym) == 0)
            return &held[i];
    return NULL;
}

kf_err kf__listing_compare(const kf__listed *ans, size_t nans, const kf__held *held, size_t nheld,
                           unsigned shard_k, unsigned shard_n, kf__listing_diff *out)
{
    memset(out, 0, sizeof *out);
    size_t trading = 0;
    for (size_t i = 0; i < nans; i++)
        trading += ans[i].trading;
    for (size_t i = 0; i < nheld; i++)
        out->active += !held[i].delisted;
    out->add = kf__calloc(nans ? nans : 1, sizeof *out->add);
    out->drop = kf__calloc(nheld ? nheld : 1, sizeof *out->drop);
    if (!out->add || !out->drop) {
        kf__listing_diff_free(out);
        return KF_ERR_NOMEM;
    }
    for (size_t i = 0; i < nans; i++) {
        const kf__listed *a = &ans[i];
        if (!a->trading || !a->usdt_perpetual || !a->symbol[0])
            continue;
        if (shard_n && kf_shard_of(a->symbol, shard_n) != shard_k)
            continue;
        const kf__held *h = find_held(held, nheld, a->symbol);
        if (h && !h->delisted)
            continue;
        if (find_listed(out->add, out->nadd, a->symbol)) /* listed twice in the answer */
            continue;
        out->add[out->nadd++] = *a;
    }
    for (size_t i = 0; i < nheld; i++) {
        const kf__held *h = &held[i];
        if (h->delisted)
            continue;
        const kf__listed *a = find_listed(ans, nans, h->symbol);
        if (a && a->trading)
            continue;
        out->drop[out->ndrop++] = *h;
    }
    if (!out->ndrop)
        return KF_OK;
    if (!trading)
        out->why = "the answer lists no TRADING symbol";
    else if (out->ndrop >= out->active)
        out->why = "it would delist every collected symbol";
    else if (out->ndrop > 1 && out->ndrop * 4 > out->active)
        out->why = "it would delist more than a quarter of the collected symbols";
    out->drops_refused = out->why != NULL;
    return KF_OK;
}

void kf__listing_diff_free(kf__listing_diff *d)
{
    if (!d)
        return;
    kf__free(d->add);
    kf__free(d->drop);
    d->add = NULL;
    d->drop = NULL;
    d->nadd = d->ndrop = 0;
}
