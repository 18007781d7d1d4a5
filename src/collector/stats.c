/* The counters' names, kinds and help, made from the one list (KF_STATS_FIELDS). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "klinefeed.h"

#define STATS_NAME(name, kind, help) #name,
#define STATS_KIND(name, kind, help) kind,
#define STATS_HELP(name, kind, help) help,
#define STATS_ONE(name, kind, help) +1

static const char *const stats_names[] = {KF_STATS_FIELDS(STATS_NAME)};
static const kf_stat_kind stats_kinds[] = {KF_STATS_FIELDS(STATS_KIND)};
static const char *const stats_help[] = {KF_STATS_FIELDS(STATS_HELP)};
enum { STATS_N = 0 KF_STATS_FIELDS(STATS_ONE) };

/* kf_stats_value reads the struct as an array: it must be one, every field a uint64_t. */
_Static_assert(sizeof(kf_stats) == STATS_N * sizeof(uint64_t), "kf_stats: only uint64_t fields");

size_t kf_stats_count(void)
{
    return STATS_N;
}

const char *kf_stats_name(size_t i)
{
    return i < STATS_N ? stats_names[i] : NULL;
}

const char *kf_stats_help(size_t i)
{
    return i < STATS_N ? stats_help[i] : NULL;
}

kf_stat_kind kf_stats_kind(size_t i)
{
    return i < STATS_N ? stats_kinds[i] : KF_STAT_COUNTER;
}

uint64_t kf_stats_value(const kf_stats *s, size_t size, size_t i)
{
    if (!s || i >= STATS_N || (i + 1) * sizeof(uint64_t) > size)
        return 0;
    uint64_t v;
    memcpy(&v, (const char *)s + i * sizeof v, sizeof v);
    return v;
}
