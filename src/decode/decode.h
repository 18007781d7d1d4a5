/*
 * Frame decoder: one WebSocket text message in, a classification (and a
 * kline) out. Pure: no I/O, no allocation, no locale, reads only buf[0..len).
 * Keys may come in any order and with any JSON whitespace; unknown keys are
 * skipped (nested values included), so a new field from Binance does not
 * break decoding.
 */
#ifndef KF_DECODE_DECODE_H
#define KF_DECODE_DECODE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "klinefeed.h"

typedef enum kf__frame_kind {
    KF__FRAME_KLINE = 0,     /* a kline event (raw or inside a combined wrapper) */
    KF__FRAME_ACK = 1,       /* {"result":null,"id":N} */
    KF__FRAME_RESULT = 2,    /* {"result":<non-null>,"id":N}: LIST_SUBSCRIPTIONS, GET_PROPERTY */
    KF__FRAME_ERROR = 3,     /* {"error":{"code":C,"msg":"..."},"id":N} (id optional) */
    KF__FRAME_EVENT = 4,     /* any other event ("e" present and not "kline") */
    KF__FRAME_MALFORMED = 5, /* not JSON, truncated, wrong types, missing fields, hostile sizes */
} kf__frame_kind;

typedef struct kf__frame {
    kf__frame_kind kind;
    bool has_id;
    uint64_t id;         /* ACK, RESULT, ERROR */
    int64_t err_code;    /* ERROR */
    const char *err_msg; /* ERROR: points into buf, JSON-escaped as sent */
    size_t err_msg_len;
    const char *result; /* RESULT: raw JSON text of the value, points into buf */
    size_t result_len;
    const char *event; /* EVENT and KLINE: value of "e", points into buf */
    size_t event_len;
    const char *stream; /* combined wrapper's "stream" value, or NULL */
    size_t stream_len;
    const char *why; /* MALFORMED: static text naming what was wrong */
} kf__frame;

/*
 * Decodes buf[0..len). Fills *f always, and *k when the result is
 * KF__FRAME_KLINE (k->interval_index set, symbol NUL-terminated); after any
 * other result *k is unspecified (the kline template writes in place and may
 * stop half way). Never reads past len, never crashes on any input.
 */
kf__frame_kind kf__decode(const char *buf, size_t len, kf__frame *f, kf_kline *k);

/*
 * The two halves of kf__decode, for tests and fuzzing (they check that both agree).
 * kf__decode_fast (fast.c) handles the compact layout Binance sends: on true it has set
 * f->kind (KLINE or EVENT), f->event, f->stream (and *k for a kline) and written nothing else
 * in *f; on false *f is untouched and *k unspecified. kf__decode_general (kline.c) decides
 * every frame.
 */
bool kf__decode_fast(const char *buf, size_t len, kf__frame *f, kf_kline *k);
kf__frame_kind kf__decode_general(const char *buf, size_t len, kf__frame *f, kf_kline *k);

#endif
