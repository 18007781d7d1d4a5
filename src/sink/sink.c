/* Sink lookup by spec. */
#include "sink/sink.h"

#include <string.h>

const kf__sink_ops *kf__sink_lookup(const char *spec, const char **target)
{
    static const kf__sink_ops *const all[] = {&kf__sink_sqlite, &kf__sink_jsonl, &kf__sink_csv};
    if (!spec)
        return NULL;
    const char *colon = strchr(spec, ':');
    if (!colon || colon[1] == 0)
        return NULL;
    size_t n = (size_t)(colon - spec);
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (strlen(all[i]->scheme) == n && memcmp(all[i]->scheme, spec, n) == 0) {
            if (target)
                *target = colon + 1;
            return all[i];
        }
    }
    return NULL;
}
