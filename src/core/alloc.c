#include "core/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "klinefeed.h"

static void *(*alloc_malloc)(size_t) = malloc;
static void *(*alloc_realloc)(void *, size_t) = realloc;
static void (*alloc_free)(void *) = free;

void kf_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                      void (*free_fn)(void *))
{
    if (!malloc_fn || !realloc_fn || !free_fn) {
        alloc_malloc = malloc;
        alloc_realloc = realloc;
        alloc_free = free;
        return;
    }
    alloc_malloc = malloc_fn;
    alloc_realloc = realloc_fn;
    alloc_free = free_fn;
}

void *kf__malloc(size_t n)
{
    return alloc_malloc(n ? n : 1);
}

void *kf__realloc(void *p, size_t n)
{
    return alloc_realloc(p, n ? n : 1);
}

void *kf__calloc(size_t nmemb, size_t size)
{
    if (size && nmemb > (size_t)-1 / size)
        return NULL;
    size_t total = nmemb * size;
    /* libc's calloc maps large blocks as untouched zero pages: memory that is never written
     * (ring slots of candles that have not arrived yet) costs no RSS. */
    if (alloc_malloc == malloc)
        return calloc(total ? total : 1, 1);
    void *p = alloc_malloc(total ? total : 1);
    if (p)
        memset(p, 0, total);
    return p;
}

void kf__free(void *p)
{
    if (p)
        alloc_free(p);
}

char *kf__strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = kf__malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void *kf__grow(void *p, size_t *cap, size_t need, size_t size, size_t first)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap : first;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return NULL;
        n *= 2;
    }
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *q = kf__realloc(p, n * size);
    if (q)
        *cap = n;
    return q;
}
