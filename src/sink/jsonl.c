/* jsonl:PATH and jsonl:- : one kf_kline_to_json object per line, appended. */
#include "sink/format.h"
#include "sink/sink.h"

static kf_err jsonl_open(const char *target, void **state, char *err, size_t errlen)
{
    return kf__linefile_open("jsonl", target, NULL, kf_kline_to_json, kf__jsonl_key, state, err,
                             errlen);
}

const kf__sink_ops kf__sink_jsonl = {
    .version = KF__SINK_OPS_VERSION,
    .scheme = "jsonl",
    .open = jsonl_open,
    .write = kf__linefile_write,
    .flush = kf__linefile_flush,
    .close = kf__linefile_close,
    .last_closed = NULL,
    .stored = kf__linefile_stored,
    .discard = kf__linefile_discard,
};
