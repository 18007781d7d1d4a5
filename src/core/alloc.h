/* Internal allocation: every allocation of the library goes through these, so
 * kf_set_allocator() can count or fail them (tests) and nothing is hidden. */
#ifndef KF_CORE_ALLOC_H
#define KF_CORE_ALLOC_H
#include <stddef.h>

void *kf__malloc(size_t n);
void *kf__realloc(void *p, size_t n);
/* Overflow-checked: returns NULL when nmemb * size overflows. Zeroed. */
void *kf__calloc(size_t nmemb, size_t size);
void kf__free(void *p);
/* Copies a NUL-terminated string; NULL in, NULL out. */
char *kf__strdup(const char *s);
/*
 * Room for at least need elements of size bytes in the array p of *cap elements: p itself when
 * it has room, else p moved to a larger block (the capacity doubling from first) and *cap
 * updated. NULL when out of memory: p is then untouched and still owned by the caller.
 */
void *kf__grow(void *p, size_t *cap, size_t need, size_t size, size_t first);

#endif
