/* Text forms of a kline shared by the JSONL and CSV sinks and `klinefeed decode`. */
#ifndef KF_SINK_FORMAT_H
#define KF_SINK_FORMAT_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "klinefeed.h"

/* Column order of both forms. */
#define KF__CSV_HEADER                                                                             \
    "symbol,interval,open_time,close_time,first_trade_id,last_trade_id,open,high,low,close,"       \
    "volume,quote_volume,trades,taker_buy_base,taker_buy_quote,closed,event_time"

/* One CSV row without newline, NUL-terminated; returns length or 0 if cap is too small. */
size_t kf__kline_to_csv(const kf_kline *k, char *buf, size_t cap);

/* What identifies a row of a line file: read back to find what a file holds at start. */
typedef struct kf__line_key {
    char symbol[KF_SYMBOL_MAX + 1];
    int interval; /* kf_interval_index */
    int64_t open_time;
    bool closed;
} kf__line_key;

/* Reads the key fields of one line (no newline) written by kf_kline_to_json / kf__kline_to_csv;
 * false for anything else (the CSV header, a line cut by a crash, garbage). Pure. */
typedef bool (*kf__line_key_fn)(const char *line, size_t len, kf__line_key *out);
bool kf__jsonl_key(const char *line, size_t len, kf__line_key *out);
bool kf__csv_key(const char *line, size_t len, kf__line_key *out);

#endif
