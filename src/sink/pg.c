/*
 * postgres:CONNINFO : one row per candle in table klines (decimals NUMERIC, which keeps the text
 * Binance sent: '83084.90' reads back as 83084.90), upserted on (symbol, interval, open_time).
 * Schema and its guarantees: docs/schema.md. CONNINFO is anything libpq's PQconnectdb takes
 * (key=value pairs or a postgresql:// URI); its password never appears in a message (masked).
 *
 * Every write() commits one transaction. The batch is sorted by key and reduced to one row per
 * key on this side (its last closed row, else its last row: what applying the rows in order
 * gives), then:
 *  1. the fast path: COPY straight into klines. It commits when every key is new (the usual
 *     batch of a collector: candles that just closed) and fails whole on a key the table holds
 *     (unique_violation, 23505; also when another collector wrote the key meanwhile);
 *  2. then, in a new transaction, the upsert: COPY into a temporary staging table and one
 *     INSERT ... SELECT ... ON CONFLICT. After a batch that needed it, the next batches go
 *     straight to the upsert (1, 2, 4 ... 64 of them) before the fast path is tried again, so a
 *     collector that rewrites rows (all updates stored, two collectors on one table) wastes at
 *     most one fast-path attempt in 64 batches.
 * A batch the server refuses for its data (SQLSTATE class 22 or 23 from the upsert: a row it
 * cannot take, e.g. a symbol that is not valid UTF-8) is written again row by row, each under a
 * savepoint: the bad rows are logged with a sample, counted and left out, the others stored. A
 * transaction another writer's rolled back (deadlock, serialization failure: pg_transient) is
 * run again at once, after a short pause, a few times. Any other failure (connection lost,
 * server shutting down, disk full) fails the batch whole; the writer retries it, and the next
 * attempt reconnects.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "sink/sink.h"

/* 1: klines, klines_meta, klines_coverage. */
#define PG_SCHEMA_VERSION 1
/* A row of the COPY text: 15 fields, none longer than KF_DEC_MAXLEN or an escaped symbol. */
#define PG_ROW_MAX 1024
/* Rows per write() (the writer's batches): a transaction's fixed cost (BEGIN, COPY, COMMIT and
 * its WAL flush) spread over more rows; 4096 rows write faster than 1024 (docs/benchmarks.md,
 * bench/pg.sh). */
#define PG_BATCH 4096
/* Bad rows logged per batch (all are counted). */
#define PG_LOG_BAD_MAX 5
/* Runs of one transaction that another writer's transaction rolled back (a deadlock, a
 * serialization failure: pg_transient) before the failure goes to the writer, which retries it
 * with its backoff. */
#define PG_TRANSIENT_TRIES 8
/* Upsert-path batches after a fast-path attempt met a stored key: doubling up to this. */
#define PG_DIRECT_SKIP_MAX 64

/* A row of the batch: sorted by key, then by position. */
typedef struct pg_key {
    const kf_kline *k;
    size_t i;
} pg_key;

typedef struct pg {
    PGconn *conn;
    char *conninfo;
    char *name; /* "postgres:" + the conninfo with its password masked */
    bool ready; /* the session is set up (staging table, prepared statements) */
    kf__logger *lg;
    uint64_t rejected; /* rows the server refused (left out) */
    bool transient;    /* the last failure was pg_transient (set by pg_fail) */
    uint64_t reruns;   /* transactions run again after a transient failure */
    kf__rng rng;       /* the pause before a rerun */
    char *buf;         /* the COPY text of one batch */
    size_t cap;
    pg_key *keys;                         /* the batch sorted by key (cap / PG_ROW_MAX of them) */
    unsigned direct_skip, direct_backoff; /* batches left to send to the upsert; the next skip */
} pg;

#define PG_COLS                                                                                    \
    "symbol, interval, open_time, close_time, open, high, low, close, volume, quote_volume, "      \
    "trades, taker_buy_base, taker_buy_quote, closed"

static const char PG_CREATE[] =
    "CREATE TABLE IF NOT EXISTS klines("
    "symbol text NOT NULL, interval text NOT NULL, open_time bigint NOT NULL, "
    "close_time bigint NOT NULL, open numeric NOT NULL, high numeric NOT NULL, "
    "low numeric NOT NULL, close numeric NOT NULL, volume numeric NOT NULL, "
    "quote_volume numeric NOT NULL, trades bigint NOT NULL, taker_buy_base numeric NOT NULL, "
    "taker_buy_quote numeric NOT NULL, closed boolean NOT NULL, "
    "PRIMARY KEY(symbol, interval, open_time));"
    "CREATE TABLE IF NOT EXISTS klines_meta(key text PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE IF NOT EXISTS klines_coverage(symbol text NOT NULL, interval text NOT NULL, "
    "from_time bigint NOT NULL, to_time bigint NOT NULL, PRIMARY KEY(symbol, interval))";

/* An open update never replaces a closed row; a row equal to the stored one (as text, so that
 * 83084.9 does replace 83084.90) is not written again: a repeat changes nothing. */
#define PG_ON_CONFLICT                                                                             \
    " ON CONFLICT(symbol, interval, open_time) DO UPDATE SET "                                     \
    "close_time = excluded.close_time, open = excluded.open, high = excluded.high, "               \
    "low = excluded.low, close = excluded.close, volume = excluded.volume, "                       \
    "quote_volume = excluded.quote_volume, trades = excluded.trades, "                             \
    "taker_buy_base = excluded.taker_buy_base, taker_buy_quote = excluded.taker_buy_quote, "       \
    "closed = excluded.closed "                                                                    \
    "WHERE excluded.closed >= klines.closed AND (klines.*)::text IS DISTINCT FROM "                \
    "(excluded.*)::text"

/* A complete range recorded for a stream that has one already (another collector's, or this
 * one's before): both are true (every candle of each is in klines, which loses no row), so when
 * they overlap their union is recorded, and otherwise the newer (the one that ends later) - the
 * record never shrinks, whichever collector writes last. */
#define PG_COVER_MERGE                                                                             \
    "ON CONFLICT(symbol, interval) DO UPDATE SET from_time = CASE WHEN excluded.from_time <= "     \
    "c.to_time AND c.from_time <= excluded.to_time THEN LEAST(c.from_time, excluded.from_time) "   \
    "WHEN excluded.to_time > c.to_time THEN excluded.from_time ELSE c.from_time END, to_time = "   \
    "GREATEST(c.to_time, excluded.to_time) WHERE (c.from_time, c.to_time) IS DISTINCT FROM "       \
    "(excluded.from_time, excluded.to_time)"

/* The staged batch: one row per key already, in key order (the order rows are locked in, the
 * same in every collector: two of them writing one table do not deadlock each other). */
static const char PG_MERGE[] =
    "INSERT INTO klines(" PG_COLS ") SELECT " PG_COLS " FROM kf_stage" PG_ON_CONFLICT;
static const char PG_UPSERT1[] =
    "INSERT INTO klines(" PG_COLS ") VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
    "$13, $14)" PG_ON_CONFLICT;

static const struct {
    const char *name, *type;
} pg_columns[] = {
    {"symbol", "text"},
    {"interval", "text"},
    {"open_time", "bigint"},
    {"close_time", "bigint"},
    {"open", "numeric"},
    {"high", "numeric"},
    {"low", "numeric"},
    {"close", "numeric"},
    {"volume", "numeric"},
    {"quote_volume", "numeric"},
    {"trades", "bigint"},
    {"taker_buy_base", "numeric"},
    {"taker_buy_quote", "numeric"},
    {"closed", "boolean"},
};
#define PG_NCOLS (sizeof pg_columns / sizeof pg_columns[0])

/* ---- the password never leaves this file ---- */

static void mask_put(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n && *o + 1 < cap; i++)
        out[(*o)++] = s[i];
    out[*o < cap ? *o : cap - 1] = 0;
}

/* A postgresql:// URI: user:PASSWORD@ and a password= query parameter masked. */
static void mask_uri(const char *ci, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = strstr(ci, "://") + 3;
    mask_put(out, cap, &o, ci, (size_t)(p - ci));
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            mask_put(out, cap, &o, p, (size_t)(colon - p) + 1);
            mask_put(out, cap, &o, "***", 3);
            p = at;
        }
    }
    while (*p) {
        bool param = (*p == '?' || *p == '&');
        mask_put(out, cap, &o, p, 1);
        p++;
        if (param && strncmp(p, "password=", 9) == 0) {
            mask_put(out, cap, &o, "password=***", 12);
            p += 9 + strcspn(p + 9, "&#");
        }
    }
}

/* key=value pairs: the value of every password key masked (quoted values understood). */
static void mask_kv(const char *ci, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = ci;
    while (*p) {
        size_t ws = strspn(p, " \t\n\r\f\v");
        mask_put(out, cap, &o, p, ws);
        p += ws;
        if (!*p)
            break;
        size_t klen = strcspn(p, "= \t\n\r\f\v");
        bool secret = klen == 8 && strncmp(p, "password", 8) == 0;
        mask_put(out, cap, &o, p, klen);
        p += klen;
        ws = strspn(p, " \t\n\r\f\v");
        mask_put(out, cap, &o, p, ws);
        p += ws;
        if (*p != '=')
            continue;
        mask_put(out, cap, &o, "=", 1);
        p++;
        ws = strspn(p, " \t\n\r\f\v");
        mask_put(out, cap, &o, p, ws);
        p += ws;
        const char *v = p;
        if (*p == '\'') {
            for (p++; *p && *p != '\''; p++)
                if (*p == '\\' && p[1])
                    p++;
            if (*p)
                p++;
        } else {
            for (; *p && !strchr(" \t\n\r\f\v", *p); p++)
                if (*p == '\\' && p[1])
                    p++;
        }
        if (secret)
            mask_put(out, cap, &o, "***", 3);
        else
            mask_put(out, cap, &o, v, (size_t)(p - v));
    }
}

void kf__pg_mask(const char *conninfo, char *out, size_t cap)
{
    if (!cap)
        return;
    out[0] = 0;
    if (strncmp(conninfo, "postgresql://", 13) == 0 || strncmp(conninfo, "postgres://", 11) == 0)
        mask_uri(conninfo, out, cap);
    else
        mask_kv(conninfo, out, cap);
}

/* ---- errors ---- */

/* The server's or libpq's message, one line (libpq ends it with a newline). */
static const char *pg_msg(const PGresult *res, PGconn *conn, char *buf, size_t cap)
{
    const char *m = res ? PQresultErrorMessage(res) : "";
    if (!m || !*m)
        m = conn ? PQerrorMessage(conn) : "no connection";
    snprintf(buf, cap, "%s", m && *m ? m : "unknown error");
    for (char *c = buf; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t' || *c == '"')
            *c = *c == '"' ? '\'' : ' ';
    size_t n = strlen(buf);
    while (n && buf[n - 1] == ' ')
        buf[--n] = 0;
    return buf;
}

/* A failure the server rolled the transaction back for, that the same transaction run again
 * normally gets past: another writer's transaction held what this one needed (SQLSTATE class 40:
 * 40P01 deadlock detected, 40001 serialization failure), or a lock not available (55P03). Two
 * collectors writing the same keys meet this; the batch is run again at once, never left out. */
static bool pg_transient(const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return st && (strncmp(st, "40", 2) == 0 || strcmp(st, "55P03") == 0);
}

static kf_err pg_fail(pg *s, const char *what, const PGresult *res, char *err, size_t errlen)
{
    char m[512];
    s->transient = pg_transient(res);
    snprintf(err, errlen, "%s: %s: %s", s->name, what, pg_msg(res, s->conn, m, sizeof m));
    return KF_ERR_SINK;
}

/* A failure caused by the data of a row (data exception, integrity constraint). */
static bool pg_data_error(const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return st && (strncmp(st, "22", 2) == 0 || strncmp(st, "23", 2) == 0);
}

/* Runs sql (no parameters); KF_OK when it returns want. */
static kf_err pg_exec(pg *s, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    kf_err rc = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
                    ? KF_OK
                    : pg_fail(s, what, r, err, errlen);
    PQclear(r);
    return rc;
}

/* Ends a failed transaction. A connection left in any other state (broken, or stuck in a COPY
 * the server never answered) is dropped: the next call reconnects. */
static void pg_rollback(pg *s)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK &&
        PQtransactionStatus(s->conn) != PQTRANS_IDLE)
        PQclear(PQexec(s->conn, "ROLLBACK"));
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK ||
        PQtransactionStatus(s->conn) != PQTRANS_IDLE)
        s->ready = false;
}

static void pg_quiet(void *arg, const char *message)
{
    (void)arg, (void)message; /* notices ("relation already exists, skipping") are not errors */
}

/* ---- schema and session ---- */

/* Checks the existing klines table column by column. */
static kf_err pg_check_klines(pg *s, char *err, size_t errlen)
{
    PGresult *r = PQexec(s->conn, "SELECT column_name, data_type, is_nullable FROM "
                                  "information_schema.columns WHERE table_schema = "
                                  "current_schema() AND table_name = 'klines' ORDER BY "
                                  "ordinal_position");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        kf_err rc = pg_fail(s, "reading the columns of klines", r, err, errlen);
        PQclear(r);
        return rc;
    }
    kf_err rc = KF_OK;
    size_t n = (size_t)PQntuples(r);
    for (size_t i = 0; i < n && i < PG_NCOLS && !rc; i++) {
        const char *name = PQgetvalue(r, (int)i, 0), *type = PQgetvalue(r, (int)i, 1);
        if (strcmp(name, pg_columns[i].name) != 0 || strcmp(type, pg_columns[i].type) != 0 ||
            strcmp(PQgetvalue(r, (int)i, 2), "NO") != 0) {
            snprintf(err, errlen,
                     "%s: incompatible existing klines table: column %zu is \"%s %s\", expected "
                     "\"%s %s NOT NULL\" (docs/schema.md)",
                     s->name, i + 1, name, type, pg_columns[i].name, pg_columns[i].type);
            rc = KF_ERR_SINK;
        }
    }
    if (!rc && n != PG_NCOLS) {
        snprintf(err, errlen,
                 "%s: incompatible existing klines table: %zu columns, expected %zu "
                 "(docs/schema.md)",
                 s->name, n, PG_NCOLS);
        rc = KF_ERR_SINK;
    }
    PQclear(r);
    return rc;
}

/* Creates the schema when absent (under an advisory lock: two collectors starting on one
 * database at once), checks it when present, records its version. */
static kf_err pg_schema(pg *s, char *err, size_t errlen)
{
    kf_err rc = pg_exec(s, "BEGIN", "BEGIN", err, errlen);
    if (!rc)
        rc = pg_exec(s, "SELECT pg_advisory_xact_lock(7146524351836275042)", "advisory lock", err,
                     errlen);
    if (!rc)
        rc = pg_exec(s, PG_CREATE, "CREATE TABLE klines", err, errlen);
    if (!rc)
        rc = pg_check_klines(s, err, errlen);
    if (!rc) {
        PGresult *r = PQexec(s->conn, "SELECT value FROM klines_meta WHERE key = "
                                      "'schema_version'");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = pg_fail(s, "reading klines_meta", r, err, errlen);
        } else if (PQntuples(r) == 1 && atoi(PQgetvalue(r, 0, 0)) != PG_SCHEMA_VERSION) {
            snprintf(err, errlen,
                     "%s: incompatible schema: klines_meta.schema_version is \"%s\", this "
                     "klinefeed reads version %d",
                     s->name, PQgetvalue(r, 0, 0), PG_SCHEMA_VERSION);
            rc = KF_ERR_SINK;
        } else if (PQntuples(r) == 0) {
            char sql[128];
            snprintf(sql, sizeof sql,
                     "INSERT INTO klines_meta(key, value) VALUES('schema_version', '%d')",
                     PG_SCHEMA_VERSION);
            rc = pg_exec(s, sql, "INSERT INTO klines_meta", err, errlen);
        }
        PQclear(r);
    }
    if (!rc)
        rc = pg_exec(s, "COMMIT", "COMMIT", err, errlen);
    if (rc)
        pg_rollback(s);
    return rc;
}

static kf_err pg_prepare(pg *s, const char *name, const char *sql, int nparams, char *err,
                         size_t errlen)
{
    PGresult *r = PQprepare(s->conn, name, sql, nparams, NULL);
    kf_err rc = PQresultStatus(r) == PGRES_COMMAND_OK ? KF_OK : pg_fail(s, name, r, err, errlen);
    PQclear(r);
    return rc;
}

/* (Re)connects when needed and sets the session up: schema, staging table, statements. */
static kf_err pg_session(pg *s, char *err, size_t errlen)
{
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK && s->ready)
        return KF_OK;
    s->ready = false;
    if (s->conn)
        PQfinish(s->conn);
    /* Ours first, so that the conninfo's own settings win: a dead server is noticed in
     * seconds, not after the kernel's TCP timeouts (minutes). */
    static const char *const keys[] = {"connect_timeout",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "tcp_user_timeout",
                                       "application_name",
                                       "dbname",
                                       NULL};
    const char *vals[] = {"10", "10", "5", "3", "20000", "klinefeed", s->conninfo, NULL};
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (!s->conn) {
        snprintf(err, errlen, "%s: out of memory", s->name);
        return KF_ERR_NOMEM;
    }
    if (PQstatus(s->conn) != CONNECTION_OK)
        return pg_fail(s, "connect", NULL, err, errlen);
    PQsetNoticeProcessor(s->conn, pg_quiet, NULL);
    kf_err rc = pg_schema(s, err, errlen);
    if (!rc)
        rc = pg_exec(s,
                     "CREATE TEMP TABLE IF NOT EXISTS kf_stage(symbol text, interval text, "
                     "open_time bigint, close_time bigint, open numeric, high numeric, low "
                     "numeric, close numeric, volume numeric, quote_volume numeric, trades bigint, "
                     "taker_buy_base numeric, taker_buy_quote numeric, closed boolean) ON COMMIT "
                     "DELETE ROWS",
                     "CREATE TEMP TABLE kf_stage", err, errlen);
    if (!rc)
        rc = pg_prepare(s, "kf_merge", PG_MERGE, 0, err, errlen);
    if (!rc)
        rc = pg_prepare(s, "kf_upsert1", PG_UPSERT1, 14, err, errlen);
    if (!rc)
        rc = pg_prepare(s, "kf_last",
                        "SELECT open_time FROM klines WHERE symbol = $1 AND interval = $2 AND "
                        "closed ORDER BY open_time DESC LIMIT 1",
                        2, err, errlen);
    if (!rc)
        rc = pg_prepare(s, "kf_stored",
                        "SELECT open_time FROM klines WHERE symbol = $1 AND interval = $2 AND "
                        "open_time >= $3 AND closed ORDER BY open_time",
                        3, err, errlen);
    if (!rc)
        rc = pg_prepare(s, "kf_get_cover",
                        "SELECT from_time, to_time FROM klines_coverage WHERE symbol = $1 AND "
                        "interval = $2",
                        2, err, errlen);
    if (!rc)
        rc = pg_prepare(s, "kf_put_cover",
                        "INSERT INTO klines_coverage AS c(symbol, interval, from_time, "
                        "to_time) VALUES($1, $2, $3, $4) " PG_COVER_MERGE,
                        4, err, errlen);
    s->ready = rc == KF_OK;
    return rc;
}

static void pg_close(void *state)
{
    pg *s = state;
    if (!s)
        return;
    if (s->conn)
        PQfinish(s->conn);
    kf__free(s->conninfo);
    kf__free(s->name);
    kf__free(s->buf);
    kf__free(s->keys);
    kf__free(s);
}

static kf_err pg_open(const char *target, void **state, char *err, size_t errlen)
{
    *state = NULL;
    pg *s = kf__calloc(1, sizeof *s);
    size_t n = strlen(target);
    if (s) {
        s->conninfo = kf__strdup(target);
        s->name = kf__malloc(n + 16);
    }
    if (!s || !s->conninfo || !s->name) {
        snprintf(err, errlen, "postgres: out of memory");
        pg_close(s);
        return KF_ERR_NOMEM;
    }
    kf__rng_seed(&s->rng, s);
    memcpy(s->name, "postgres:", 9);
    kf__pg_mask(target, s->name + 9, n + 7);
    kf_err rc = pg_session(s, err, errlen);
    if (rc) {
        pg_close(s);
        return rc;
    }
    *state = s;
    return KF_OK;
}

/* ---- write ---- */

/* Appends s escaped for COPY's text format; returns the new length. */
static size_t copy_text(char *b, size_t o, const char *s)
{
    for (; *s; s++) {
        char c = *s;
        if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
            b[o++] = '\\';
            c = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\';
        }
        b[o++] = c;
    }
    return o;
}

/* The 8 decimals of k as text; false when one cannot be formatted. */
static bool row_decs(const kf_kline *k, char d[8][KF_DEC_MAXLEN])
{
    const kf_dec v[8] = {k->open,           k->high,           k->low,
                         k->close,          k->volume,         k->quote_volume,
                         k->taker_buy_base, k->taker_buy_quote};
    for (int i = 0; i < 8; i++)
        if (!kf_dec_format(v[i], d[i], KF_DEC_MAXLEN))
            return false;
    return true;
}

static bool row_ok(const kf_kline *k)
{
    return memchr(k->symbol, 0, sizeof k->symbol) && memchr(k->interval, 0, sizeof k->interval);
}

/* One row of COPY text into b (PG_ROW_MAX); 0 when the row cannot be written. */
static size_t copy_row(const kf_kline *k, char *b)
{
    char d[8][KF_DEC_MAXLEN];
    if (!row_decs(k, d))
        return 0;
    size_t o = copy_text(b, 0, k->symbol);
    b[o++] = '\t';
    o = copy_text(b, o, k->interval);
    o += (size_t)snprintf(b + o, PG_ROW_MAX - o,
                          "\t%" PRId64 "\t%" PRId64 "\t%s\t%s\t%s\t%s\t%s\t%s\t%" PRId64
                          "\t%s\t%s\t%c\n",
                          k->open_time, k->close_time, d[0], d[1], d[2], d[3], d[4], d[5],
                          (int64_t)k->trades, d[6], d[7], k->closed ? 't' : 'f');
    return o;
}

static void pg_log_bad(pg *s, const kf_kline *k, const char *why, size_t *logged)
{
    if ((*logged)++ >= PG_LOG_BAD_MAX)
        return;
    char sample[272];
    kf__log_sample(k->symbol, strnlen(k->symbol, sizeof k->symbol), sample, sizeof sample);
    kf__log(s->lg, KF_LOG_ERROR,
            "msg=\"postgres refused a row, left out\" spec=%s symbol=%s interval=%.3s "
            "open_time=%" PRId64 " error=\"%s\" rejected_total=%llu",
            s->name, sample, memchr(k->interval, 0, sizeof k->interval) ? k->interval : "?",
            k->open_time, why, (unsigned long long)s->rejected);
}

/* The batch row by row, each under a savepoint, in one transaction: rows the server refuses
 * for their data are logged, counted and left out. */
static kf_err pg_write_rows(pg *s, const kf_kline *rows, size_t n, char *err, size_t errlen)
{
    uint64_t rejected = s->rejected; /* a failed transaction leaves nothing out: run again */
    kf_err rc = pg_exec(s, "BEGIN", "BEGIN", err, errlen);
    size_t logged = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const kf_kline *k = &rows[i];
        char d[8][KF_DEC_MAXLEN], ot[24], ct[24], tr[24];
        if (!row_ok(k) || !row_decs(k, d)) {
            s->rejected++;
            pg_log_bad(s, k, "bad decimal or unterminated text", &logged);
            continue;
        }
        snprintf(ot, sizeof ot, "%" PRId64, k->open_time);
        snprintf(ct, sizeof ct, "%" PRId64, k->close_time);
        snprintf(tr, sizeof tr, "%" PRId64, (int64_t)k->trades);
        const char *v[14] = {k->symbol, k->interval, ot,   ct, d[0], d[1], d[2],
                             d[3],      d[4],        d[5], tr, d[6], d[7], k->closed ? "t" : "f"};
        rc = pg_exec(s, "SAVEPOINT kf_row", "SAVEPOINT", err, errlen);
        if (rc)
            break;
        PGresult *r = PQexecPrepared(s->conn, "kf_upsert1", 14, v, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            rc = pg_exec(s, "RELEASE SAVEPOINT kf_row", "RELEASE SAVEPOINT", err, errlen);
        } else if (pg_data_error(r)) {
            char m[300];
            s->rejected++;
            pg_log_bad(s, k, pg_msg(r, s->conn, m, sizeof m), &logged);
            rc = pg_exec(s, "ROLLBACK TO SAVEPOINT kf_row", "ROLLBACK TO SAVEPOINT", err, errlen);
        } else {
            rc = pg_fail(s, "INSERT INTO klines", r, err, errlen);
        }
        PQclear(r);
    }
    if (!rc)
        rc = pg_exec(s, "COMMIT", "COMMIT", err, errlen);
    if (rc) {
        pg_rollback(s);
        s->rejected = rejected;
    }
    if (!rc && logged > PG_LOG_BAD_MAX)
        kf__log(s->lg, KF_LOG_ERROR,
                "msg=\"postgres refused rows, left out\" spec=%s rows=%zu rejected_total=%llu",
                s->name, logged, (unsigned long long)s->rejected);
    return rc;
}

static int key_cmp(const void *a, const void *b)
{
    const pg_key *x = a, *y = b;
    int c = strncmp(x->k->symbol, y->k->symbol, sizeof x->k->symbol);
    if (!c)
        c = strncmp(x->k->interval, y->k->interval, sizeof x->k->interval);
    if (!c)
        c = (x->k->open_time > y->k->open_time) - (x->k->open_time < y->k->open_time);
    return c ? c : (x->i > y->i) - (x->i < y->i);
}

static bool key_eq(const kf_kline *a, const kf_kline *b)
{
    return a->open_time == b->open_time && strcmp(a->symbol, b->symbol) == 0 &&
           strcmp(a->interval, b->interval) == 0;
}

/* s->keys: the batch in key order (strcmp's, the same in every collector), one row per key: its
 * last closed row, else its last row (what applying the rows in order gives). Returns how many;
 * the rows must be row_ok(). */
static size_t pg_sort(pg *s, const kf_kline *rows, size_t n)
{
    pg_key *v = s->keys;
    bool sorted = true;
    for (size_t i = 0; i < n; i++) {
        v[i] = (pg_key){&rows[i], i};
        sorted = sorted && (i == 0 || key_cmp(&v[i - 1], &v[i]) < 0);
    }
    if (!sorted)
        qsort(v, n, sizeof *v, key_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i, win = i;
        for (; j < n && key_eq(v[j].k, v[i].k); j++)
            if (v[j].k->closed || !v[win].k->closed)
                win = j; /* the last closed row, or the last one while none is closed */
        v[m++] = v[win];
        i = j;
    }
    return m;
}

/* COPY of len bytes of s->buf (sql: "COPY ... FROM STDIN", what: its name in messages), in the
 * open transaction. *data: the server refused it for its data. */
static kf_err pg_copy(pg *s, const char *sql, const char *what, size_t len, bool *data, char *err,
                      size_t errlen)
{
    PGresult *r = PQexec(s->conn, sql);
    kf_err rc = KF_OK;
    if (PQresultStatus(r) != PGRES_COPY_IN)
        rc = pg_fail(s, what, r, err, errlen);
    PQclear(r);
    if (rc)
        return rc;
    if (PQputCopyData(s->conn, s->buf, (int)len) != 1 || PQputCopyEnd(s->conn, NULL) != 1)
        return pg_fail(s, what, NULL, err, errlen);
    r = PQgetResult(s->conn);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        *data = pg_data_error(r);
        rc = pg_fail(s, what, r, err, errlen);
    }
    PQclear(r);
    while ((r = PQgetResult(s->conn)) != NULL)
        PQclear(r);
    return rc;
}

/* One transaction: the COPY text of the batch (len bytes) straight into klines (direct), or
 * through the staging table and the upsert. *data: the server refused it for its data (for the
 * fast path, unique_violation: a key it holds). */
static kf_err pg_txn(pg *s, size_t len, bool direct, bool *data, char *err, size_t errlen)
{
    *data = false;
    kf_err rc = pg_exec(s, "BEGIN", "BEGIN", err, errlen);
    if (!rc)
        rc = direct
                 ? pg_copy(s, "COPY klines(" PG_COLS ") FROM STDIN", "COPY klines", len, data, err,
                           errlen)
                 : pg_copy(s, "COPY kf_stage FROM STDIN", "COPY kf_stage", len, data, err, errlen);
    if (!rc && !direct) {
        PGresult *r = PQexecPrepared(s->conn, "kf_merge", 0, NULL, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            *data = pg_data_error(r);
            rc = pg_fail(s, "INSERT INTO klines", r, err, errlen);
        }
        PQclear(r);
    }
    if (!rc)
        rc = pg_exec(s, "COMMIT", "COMMIT", err, errlen);
    if (rc)
        pg_rollback(s);
    return rc;
}

/* The batch: one transaction committed, or a failure (see the top of the file). */
static kf_err pg_write_batch(pg *s, const kf_kline *rows, size_t n, char *err, size_t errlen)
{
    kf_err rc = pg_session(s, err, errlen);
    if (rc)
        return rc;
    if (s->cap < n * PG_ROW_MAX) { /* per batch, on the writer thread */
        char *b = kf__malloc(n * PG_ROW_MAX);
        pg_key *v = kf__malloc(n * sizeof *v);
        if (!b || !v) {
            kf__free(b);
            kf__free(v);
            snprintf(err, errlen, "%s: out of memory for a batch of %zu rows", s->name, n);
            return KF_ERR_NOMEM;
        }
        kf__free(s->buf);
        kf__free(s->keys);
        s->buf = b;
        s->keys = v;
        s->cap = n * PG_ROW_MAX;
    }
    for (size_t i = 0; i < n; i++)
        if (!row_ok(&rows[i])) /* a row no statement can hold: the row-by-row path leaves it out */
            return pg_write_rows(s, rows, n, err, errlen);
    size_t m = pg_sort(s, rows, n), len = 0;
    for (size_t i = 0; i < m; i++) {
        size_t w = copy_row(s->keys[i].k, s->buf + len);
        if (!w)
            return pg_write_rows(s, rows, n, err, errlen);
        len += w;
    }
    bool data = false, direct = s->direct_skip == 0;
    rc = pg_txn(s, len, direct, &data, err, errlen);
    if (direct && rc && data && PQstatus(s->conn) == CONNECTION_OK) {
        /* a key the table holds: this batch and the next few through the upsert */
        s->direct_backoff = s->direct_backoff ? s->direct_backoff * 2 : 1;
        if (s->direct_backoff > PG_DIRECT_SKIP_MAX)
            s->direct_backoff = PG_DIRECT_SKIP_MAX;
        s->direct_skip = s->direct_backoff + 1;
        rc = pg_txn(s, len, false, &data, err, errlen);
    } else if (direct && !rc) {
        s->direct_backoff = 0;
    }
    if (rc && data && PQstatus(s->conn) == CONNECTION_OK)
        rc = pg_write_rows(s, rows, n, err, errlen);
    if (!rc && s->direct_skip)
        s->direct_skip--;
    return rc;
}

/* Before transaction run `attempt` (1, 2, ...) again after a transient failure: a pause of up
 * to 2^attempt ms (jittered), so that the writer it met finishes first; logged at debug. */
static void pg_rerun_pause(pg *s, int attempt, const char *what, const char *err)
{
    s->reruns++;
    kf__log(s->lg, KF_LOG_DEBUG,
            "msg=\"postgres transaction rolled back by another writer's, run again\" spec=%s "
            "what=%s attempt=%d error=\"%s\" reruns_total=%llu",
            s->name, what, attempt, err, (unsigned long long)s->reruns);
    uint64_t us = kf__rng_upto(&s->rng, 1000u << (attempt < 8 ? attempt : 8));
    struct timespec ts = {0, (long)(us * 1000)};
    nanosleep(&ts, NULL);
}

/* A transaction another writer's rolled back (deadlock, serialization failure: two collectors
 * writing the same keys) is run again at once, up to PG_TRANSIENT_TRIES times: nothing is left
 * out, nothing counted as refused; the table's key keeps every candle once. */
static kf_err pg_write(void *state, const kf_kline *rows, size_t n, char *err, size_t errlen)
{
    pg *s = state;
    if (n == 0)
        return KF_OK;
    kf_err rc = KF_OK;
    for (int attempt = 1;; attempt++) {
        s->transient = false;
        rc = pg_write_batch(s, rows, n, err, errlen);
        if (!rc || !s->transient || attempt >= PG_TRANSIENT_TRIES || !s->conn ||
            PQstatus(s->conn) != CONNECTION_OK)
            break;
        pg_rerun_pause(s, attempt, "write", err);
    }
    return rc;
}

static kf_err pg_flush(void *state, char *err, size_t errlen)
{
    (void)state, (void)err, (void)errlen;
    return KF_OK; /* every write() committed already */
}

/* ---- what the store holds ---- */

static kf_err pg_query(pg *s, const char *stmt, int np, const char *const *v, PGresult **out,
                       char *err, size_t errlen)
{
    kf_err rc = pg_session(s, err, errlen);
    if (rc)
        return rc;
    *out = PQexecPrepared(s->conn, stmt, np, v, NULL, NULL, 0);
    if (PQresultStatus(*out) != PGRES_TUPLES_OK) {
        rc = pg_fail(s, stmt, *out, err, errlen);
        PQclear(*out);
        *out = NULL;
    }
    return rc;
}

static kf_err pg_last_closed(void *state, const char *symbol, const char *interval,
                             int64_t *open_time, int *found, char *err, size_t errlen)
{
    pg *s = state;
    PGresult *r;
    *found = 0;
    kf_err rc = pg_query(s, "kf_last", 2, (const char *[]){symbol, interval}, &r, err, errlen);
    if (rc)
        return rc;
    if (PQntuples(r) == 1) {
        *open_time = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *found = 1;
    }
    PQclear(r);
    return KF_OK;
}

static kf_err pg_stored(void *state, const char *symbol, const char *interval, int64_t from,
                        kf__stored_fn fn, void *ud, char *err, size_t errlen)
{
    pg *s = state;
    PGresult *r;
    char f[24];
    snprintf(f, sizeof f, "%" PRId64, from);
    kf_err rc = pg_query(s, "kf_stored", 3, (const char *[]){symbol, interval, f}, &r, err, errlen);
    if (rc)
        return rc;
    for (int i = 0, n = PQntuples(r); i < n; i++)
        if (fn(ud, strtoll(PQgetvalue(r, i, 0), NULL, 10)) != 0)
            break;
    PQclear(r);
    return KF_OK;
}

static kf_err pg_get_cover(void *state, const char *symbol, const char *interval, int64_t *from,
                           int64_t *to, int *found, char *err, size_t errlen)
{
    pg *s = state;
    PGresult *r;
    *found = 0;
    kf_err rc = pg_query(s, "kf_get_cover", 2, (const char *[]){symbol, interval}, &r, err, errlen);
    if (rc)
        return rc;
    if (PQntuples(r) == 1) {
        *from = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        *to = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        *found = 1;
    }
    PQclear(r);
    return KF_OK;
}

static int cover_cmp(const void *a, const void *b)
{
    const kf__cover *x = a, *y = b;
    int c = strncmp(x->symbol, y->symbol, sizeof x->symbol);
    return c ? c : strncmp(x->interval, y->interval, sizeof x->interval);
}

static kf_err pg_put_cover_once(pg *s, const kf__cover *c, size_t n, char *err, size_t errlen)
{
    kf_err rc = pg_session(s, err, errlen);
    if (!rc)
        rc = pg_exec(s, "BEGIN", "BEGIN", err, errlen);
    for (size_t i = 0; i < n && !rc; i++) {
        char f[24], t[24];
        snprintf(f, sizeof f, "%" PRId64, c[i].from);
        snprintf(t, sizeof t, "%" PRId64, c[i].to);
        const char *v[4] = {c[i].symbol, c[i].interval, f, t};
        PGresult *r = PQexecPrepared(s->conn, "kf_put_cover", 4, v, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = pg_fail(s, "INSERT INTO klines_coverage", r, err, errlen);
        PQclear(r);
    }
    if (!rc)
        rc = pg_exec(s, "COMMIT", "COMMIT", err, errlen);
    if (rc)
        pg_rollback(s);
    return rc;
}

/* The ranges merged into the stream's recorded one (kf_put_cover: two collectors record theirs
 * in one table), in key order (two transactions updating the same rows in the same order wait
 * for each other, never deadlock), run again like a write when another writer's rolled it
 * back. */
static kf_err pg_put_cover(void *state, const kf__cover *c, size_t n, char *err, size_t errlen)
{
    pg *s = state;
    if (n == 0)
        return KF_OK;
    for (size_t i = 0; i < n; i++)
        if (!memchr(c[i].symbol, 0, sizeof c[i].symbol) ||
            !memchr(c[i].interval, 0, sizeof c[i].interval)) {
            snprintf(err, errlen, "%s: coverage %zu: unterminated symbol or interval", s->name, i);
            return KF_ERR_INVALID_ARG;
        }
    kf__cover *sorted = n > 1 ? kf__malloc(n * sizeof *sorted) : NULL;
    if (sorted) { /* (without memory: as given; a deadlock is then run again) */
        memcpy(sorted, c, n * sizeof *sorted);
        qsort(sorted, n, sizeof *sorted, cover_cmp);
        c = sorted;
    }
    kf_err rc = KF_OK;
    for (int attempt = 1;; attempt++) {
        s->transient = false;
        rc = pg_put_cover_once(s, c, n, err, errlen);
        if (!rc || !s->transient || attempt >= PG_TRANSIENT_TRIES || !s->conn ||
            PQstatus(s->conn) != CONNECTION_OK)
            break;
        pg_rerun_pause(s, attempt, "cover", err);
    }
    kf__free(sorted);
    return rc;
}

static void pg_set_log(void *state, kf__logger *lg)
{
    ((pg *)state)->lg = lg;
}

static uint64_t pg_rejected(void *state)
{
    return ((pg *)state)->rejected;
}

const kf__sink_ops kf__sink_postgres = {
    .version = KF__SINK_OPS_VERSION,
    .scheme = "postgres",
    .open = pg_open,
    .write = pg_write,
    .flush = pg_flush,
    .close = pg_close,
    .last_closed = pg_last_closed,
    .stored = pg_stored,
    .get_cover = pg_get_cover,
    .put_cover = pg_put_cover,
    .discard = NULL, /* a database is never removed: open() creates tables, not the store */
    .set_log = pg_set_log,
    .max_batch = PG_BATCH,
    .rejected = pg_rejected,
};
