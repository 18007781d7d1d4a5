/* Text forms of a kline shared by the JSONL and CSV sinks and `klinefeed decode`. */
#ifndef KF_SINK_FORMAT_H
#define KF_SINK_FORMAT_H
#include <stddef.h>

#include "klinefeed.h"

/* Column order of both forms. */
#define KF__CSV_HEADER                                                                             \
    "symbol,interval,open_time,close_time,first_trade_id,last_trade_id,open,high,low,close,"       \
    "volume,quote_volume,trades,taker_buy_base,taker_buy_quote,closed,event_time"

/* One CSV row without newline, NUL-terminated; returns length or 0 if cap is too small. */
size_t kf__kline_to_csv(const kf_kline *k, char *buf, size_t cap);

#endif
