/* compare_nats.h - reads a klinefeed JetStream stream the way a consumer would (a pull consumer,
 * each message acknowledged) into a SQLite store of the same schema as sqlite:PATH, so that
 * kft_compare_store can compare it with the simulator's truth. No cmocka. */
#ifndef KF_TEST_COMPARE_NATS_H
#define KF_TEST_COMPARE_NATS_H

#include <stddef.h>

typedef struct kft_nats_read {
    size_t messages;    /* messages delivered and acknowledged */
    size_t stored;      /* rows written into db_path (one per key) */
    size_t duplicates;  /* messages whose key (symbol, interval, open_time) came before */
    size_t bad;         /* messages that are not a closed candle, or whose Nats-Msg-Id or
                           subject disagree with their JSON */
    size_t redelivered; /* messages the server delivered more than once */
} kft_nats_read;

/*
 * Connects to url (nats://HOST:PORT), creates a durable pull consumer `consumer` on the stream
 * (filter prefix.>, deliver all, explicit ack), fetches batches until the stream has nothing
 * pending for it, acknowledging every message, and writes each closed candle into table klines of
 * the SQLite file db_path (created; the key's first message wins). Returns 0, or -1 with a
 * message in err.
 */
int kft_nats_read_stream(const char *url, const char *stream, const char *prefix,
                         const char *consumer, const char *db_path, kft_nats_read *out, char *err,
                         size_t errlen);

#endif
