/* A JetStream stream read by a pull consumer into SQLite (see compare_nats.h). */
#include "compare_nats.h"

#include <inttypes.h>
#include <nats/nats.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The text of "name": in a flat JSON object written by kf_kline_to_json: a string's body or a
 * number / literal. False when absent or too long. */
static bool jfield(const char *js, size_t len, const char *name, char *out, size_t cap)
{
    char pat[64];
    int pl = snprintf(pat, sizeof pat, "\"%s\":", name);
    const char *end = js + len;
    for (const char *p = js; p + pl <= end; p++) {
        if (memcmp(p, pat, (size_t)pl) != 0)
            continue;
        p += pl;
        const char *q;
        if (p < end && *p == '"') {
            p++;
            q = memchr(p, '"', (size_t)(end - p));
        } else {
            q = p;
            while (q < end && *q != ',' && *q != '}')
                q++;
        }
        if (!q || (size_t)(q - p) >= cap)
            return false;
        memcpy(out, p, (size_t)(q - p));
        out[q - p] = 0;
        return true;
    }
    return false;
}

static const char *const COLS[] = {
    "symbol", "interval", "open_time",    "close_time", "open",           "high",           "low",
    "close",  "volume",   "quote_volume", "trades",     "taker_buy_base", "taker_buy_quote"};
#define NCOLS (sizeof COLS / sizeof COLS[0])

int kft_nats_read_stream(const char *url, const char *stream, const char *prefix,
                         const char *consumer, const char *db_path, kft_nats_read *out, char *err,
                         size_t errlen)
{
    memset(out, 0, sizeof *out);
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    sqlite3 *db = NULL;
    sqlite3_stmt *ins = NULL;
    int rc = -1;
    natsStatus st = natsConnection_ConnectTo(&nc, url);
    if (st != NATS_OK) {
        snprintf(err, errlen, "connect %s: %s", url, natsStatus_GetText(st));
        goto done;
    }
    if ((st = natsConnection_JetStream(&js, nc, NULL)) != NATS_OK) {
        snprintf(err, errlen, "JetStream: %s", natsStatus_GetText(st));
        goto done;
    }
    char filter[128];
    snprintf(filter, sizeof filter, "%s.*.*", prefix);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Config.AckPolicy = js_AckExplicit;
    so.Config.DeliverPolicy = js_DeliverAll;
    so.Config.AckWait = 30LL * 1000000000LL;
    jsErrCode jerr = 0;
    if ((st = js_PullSubscribe(&sub, js, filter, consumer, NULL, &so, &jerr)) != NATS_OK) {
        snprintf(err, errlen, "js_PullSubscribe %s: %s (%d) %s", filter, natsStatus_GetText(st),
                 (int)jerr, nats_GetLastError(NULL));
        goto done;
    }
    if (sqlite3_open(db_path, &db) != SQLITE_OK ||
        sqlite3_exec(db,
                     "CREATE TABLE klines(symbol TEXT NOT NULL, interval TEXT NOT NULL, "
                     "open_time INTEGER NOT NULL, close_time INTEGER NOT NULL, open TEXT NOT "
                     "NULL, high TEXT NOT NULL, low TEXT NOT NULL, close TEXT NOT NULL, volume "
                     "TEXT NOT NULL, quote_volume TEXT NOT NULL, trades INTEGER NOT NULL, "
                     "taker_buy_base TEXT NOT NULL, taker_buy_quote TEXT NOT NULL, closed "
                     "INTEGER NOT NULL, PRIMARY KEY(symbol, interval, open_time)); BEGIN",
                     NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "INSERT OR IGNORE INTO klines VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
                           "?9, ?10, ?11, ?12, ?13, 1)",
                           -1, &ins, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "%s: %s", db_path, db ? sqlite3_errmsg(db) : "cannot open");
        goto done;
    }
    /* the stream is read up to its last message now (a daemon may still be publishing) */
    jsStreamInfo *si = NULL;
    if ((st = js_GetStreamInfo(&si, js, stream, NULL, &jerr)) != NATS_OK) {
        snprintf(err, errlen, "js_GetStreamInfo %s: %s (%d)", stream, natsStatus_GetText(st),
                 (int)jerr);
        goto done;
    }
    uint64_t last = si->State.LastSeq, seen = 0;
    jsStreamInfo_Destroy(si);
    int64_t deadline = nats_Now() + 120000; /* a reader that never ends fails instead */
    while (seen < last) {
        if (nats_Now() > deadline) {
            snprintf(err, errlen, "the stream was not read within 120 s (%zu messages)",
                     out->messages);
            goto done;
        }
        natsMsgList list = {0};
        st = natsSubscription_Fetch(&list, sub, 256, 2000, &jerr);
        if (st == NATS_TIMEOUT || st == NATS_NOT_FOUND || (st == NATS_OK && list.Count == 0)) {
            natsMsgList_Destroy(&list);
            continue; /* (until the deadline) */
        }
        if (st != NATS_OK) {
            natsMsgList_Destroy(&list);
            snprintf(err, errlen, "natsSubscription_Fetch: %s (%d)", natsStatus_GetText(st),
                     (int)jerr);
            goto done;
        }
        for (int i = 0; i < list.Count; i++) {
            natsMsg *m = list.Msgs[i];
            out->messages++;
            jsMsgMetaData *meta = NULL;
            if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
                if (meta->NumDelivered > 1)
                    out->redelivered++;
                if (meta->Sequence.Stream > seen)
                    seen = meta->Sequence.Stream;
                jsMsgMetaData_Destroy(meta);
            }
            const char *d = natsMsg_GetData(m);
            size_t len = (size_t)natsMsg_GetDataLength(m);
            char v[NCOLS][64], closed[8] = "", want[160], subj[160];
            bool ok =
                d && jfield(d, len, "closed", closed, sizeof closed) && !strcmp(closed, "true");
            for (size_t c = 0; ok && c < NCOLS; c++)
                ok = jfield(d, len, COLS[c], v[c], sizeof v[c]);
            const char *id = NULL;
            if (ok) {
                snprintf(want, sizeof want, "%s:%s:%s", v[0], v[1], v[2]);
                snprintf(subj, sizeof subj, "%s.%s.%s", prefix, v[0], v[1]);
                ok = natsMsgHeader_Get(m, "Nats-Msg-Id", &id) == NATS_OK && id &&
                     !strcmp(id, want) && !strcmp(natsMsg_GetSubject(m), subj);
            }
            if (!ok) {
                out->bad++;
            } else {
                sqlite3_reset(ins);
                for (size_t c = 0; c < NCOLS; c++)
                    sqlite3_bind_text(ins, (int)c + 1, v[c], -1, SQLITE_TRANSIENT);
                if (sqlite3_step(ins) != SQLITE_DONE) {
                    snprintf(err, errlen, "insert: %s", sqlite3_errmsg(db));
                    natsMsgList_Destroy(&list);
                    goto done;
                }
                if (sqlite3_changes(db))
                    out->stored++;
                else
                    out->duplicates++;
            }
            if ((st = natsMsg_Ack(m, NULL)) != NATS_OK) {
                snprintf(err, errlen, "natsMsg_Ack: %s", natsStatus_GetText(st));
                natsMsgList_Destroy(&list);
                goto done;
            }
        }
        natsMsgList_Destroy(&list);
    }
    if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "commit: %s", sqlite3_errmsg(db));
        goto done;
    }
    rc = 0;
done:
    sqlite3_finalize(ins);
    if (db)
        sqlite3_close(db);
    if (sub) {
        natsSubscription_Unsubscribe(sub);
        natsSubscription_Destroy(sub);
    }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return rc;
}
