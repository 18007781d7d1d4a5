/* Sink lookup by spec. */
#include "sink/sink.h"

#include <stdio.h>
#include <string.h>

kf_err kf_sink_spec_check(const char *spec, char *err, size_t errlen)
{
    if (kf__sink_lookup(spec, NULL))
        return KF_OK;
    char shown[512];
    kf__sink_mask(spec, shown, sizeof shown);
    if (err && errlen)
        snprintf(err, errlen,
                 "\"%.200s\" is not a sink (sqlite:PATH, jsonl:PATH, jsonl:-, csv:PATH, csv:-, "
                 "postgres:CONNINFO, nats://HOST:PORT[?options])",
                 shown);
    return KF_ERR_CONFIG;
}

const kf__sink_ops *kf__sink_lookup(const char *spec, const char **target)
{
    static const kf__sink_ops *const all[] = {&kf__sink_sqlite, &kf__sink_jsonl, &kf__sink_csv,
                                              &kf__sink_postgres, &kf__sink_nats};
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

void kf__sink_mask(const char *spec, char *out, size_t cap)
{
    if (!cap)
        return;
    if (spec && strncmp(spec, "postgres:", 9) == 0 && cap > 9) {
        memcpy(out, spec, 9);
        kf__pg_mask(spec + 9, out + 9, cap - 9);
    } else if (spec && strncmp(spec, "nats:", 5) == 0) {
        kf__nats_mask(spec, out, cap);
    } else {
        snprintf(out, cap, "%s", spec ? spec : "(null)");
    }
}
