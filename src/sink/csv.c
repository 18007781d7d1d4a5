/* csv:PATH and csv:- : KF__CSV_HEADER when the file is new or empty, then one
 * kf__kline_to_csv row per line, appended. */
#include "sink/format.h"
#include "sink/sink.h"

static kf_err csv_open(const char *target, void **state, char *err, size_t errlen)
{
    return kf__linefile_open("csv", target, KF__CSV_HEADER, kf__kline_to_csv, kf__csv_key, state,
                             err, errlen);
}

const kf__sink_ops kf__sink_csv = {
    .version = KF__SINK_OPS_VERSION,
    .scheme = "csv",
    .open = csv_open,
    .write = kf__linefile_write,
    .flush = kf__linefile_flush,
    .close = kf__linefile_close,
    .last_closed = NULL,
    .stored = kf__linefile_stored,
    .discard = kf__linefile_discard,
};
