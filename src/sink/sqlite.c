/*
 * sqlite:PATH : one row per candle in table klines, upserted on (symbol, interval, open_time),
 * decimals as their exact text. Schema and its guarantees: docs/schema.md.
 * Every write() is one BEGIN IMMEDIATE ... COMMIT; a failure rolls back the whole batch.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "sink/sink.h"

/* 1: klines and meta. 2: + coverage (complete ranges), added to a version 1 store when opened. */
#define SQ_SCHEMA_VERSION 2
/* Short on purpose: a locked database fails the attempt quickly and the writer retries
 * with backoff (and counts and logs it) instead of hiding a stuck lock in one call. */
#define SQ_BUSY_MS 250

typedef struct sq {
    sqlite3 *db;
    char *name;   /* "sqlite:PATH" */
    bool created; /* the file did not exist before open */
    bool written; /* a write committed */
    sqlite3_stmt *begin, *commit, *rollback, *upsert, *last, *stored, *get_cover, *put_cover;
    char dec[8][KF_DEC_MAXLEN]; /* text of the row being bound (bound SQLITE_STATIC) */
} sq;

static const char SQ_CREATE[] =
    "CREATE TABLE klines("
    "symbol TEXT NOT NULL, interval TEXT NOT NULL, open_time INTEGER NOT NULL, "
    "close_time INTEGER NOT NULL, open TEXT NOT NULL, high TEXT NOT NULL, low TEXT NOT NULL, "
    "close TEXT NOT NULL, volume TEXT NOT NULL, quote_volume TEXT NOT NULL, "
    "trades INTEGER NOT NULL, taker_buy_base TEXT NOT NULL, taker_buy_quote TEXT NOT NULL, "
    "closed INTEGER NOT NULL, PRIMARY KEY(symbol, interval, open_time)) WITHOUT ROWID";
static const char SQ_CREATE_META[] =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)";
/* Per stream, the range klinefeed has checked complete: every candle the exchange has with an
 * open time in [from_time, to_time] is in klines. A start checks only what came after it. */
static const char SQ_CREATE_COVERAGE[] =
    "CREATE TABLE IF NOT EXISTS coverage(symbol TEXT NOT NULL, interval TEXT NOT NULL, "
    "from_time INTEGER NOT NULL, to_time INTEGER NOT NULL, PRIMARY KEY(symbol, interval)) "
    "WITHOUT ROWID";

/* An open update (closed=0) never replaces a row already stored closed. */
static const char SQ_UPSERT[] =
    "INSERT INTO klines(symbol, interval, open_time, close_time, open, high, low, close, "
    "volume, quote_volume, trades, taker_buy_base, taker_buy_quote, closed) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) "
    "ON CONFLICT(symbol, interval, open_time) DO UPDATE SET "
    "close_time = excluded.close_time, open = excluded.open, high = excluded.high, "
    "low = excluded.low, close = excluded.close, volume = excluded.volume, "
    "quote_volume = excluded.quote_volume, trades = excluded.trades, "
    "taker_buy_base = excluded.taker_buy_base, taker_buy_quote = excluded.taker_buy_quote, "
    "closed = excluded.closed "
    "WHERE excluded.closed >= klines.closed";

static const char SQ_LAST[] = "SELECT open_time FROM klines WHERE symbol = ?1 AND interval = ?2 "
                              "AND closed = 1 ORDER BY open_time DESC LIMIT 1";
static const char SQ_STORED[] = "SELECT open_time FROM klines WHERE symbol = ?1 AND interval = ?2 "
                                "AND open_time >= ?3 AND closed = 1 ORDER BY open_time";
static const char SQ_GET_COVER[] =
    "SELECT from_time, to_time FROM coverage WHERE symbol = ?1 AND interval = ?2";
static const char SQ_PUT_COVER[] =
    "INSERT INTO coverage(symbol, interval, from_time, to_time) VALUES(?1, ?2, ?3, ?4) "
    "ON CONFLICT(symbol, interval) DO UPDATE SET from_time = excluded.from_time, "
    "to_time = excluded.to_time";

static const struct {
    const char *name, *type;
    int pk;
} sq_columns[] = {
    {"symbol", "TEXT", 1},
    {"interval", "TEXT", 2},
    {"open_time", "INTEGER", 3},
    {"close_time", "INTEGER", 0},
    {"open", "TEXT", 0},
    {"high", "TEXT", 0},
    {"low", "TEXT", 0},
    {"close", "TEXT", 0},
    {"volume", "TEXT", 0},
    {"quote_volume", "TEXT", 0},
    {"trades", "INTEGER", 0},
    {"taker_buy_base", "TEXT", 0},
    {"taker_buy_quote", "TEXT", 0},
    {"closed", "INTEGER", 0},
};
#define SQ_NCOLS (sizeof sq_columns / sizeof sq_columns[0])

static kf_err sq_fail(sq *s, const char *what, char *err, size_t errlen)
{
    snprintf(err, errlen, "%s: %s: %s", s->name, what, s->db ? sqlite3_errmsg(s->db) : "?");
    return KF_ERR_SINK;
}

static void sq_close(void *state)
{
    sq *s = state;
    if (!s)
        return;
    sqlite3_finalize(s->begin);
    sqlite3_finalize(s->commit);
    sqlite3_finalize(s->rollback);
    sqlite3_finalize(s->upsert);
    sqlite3_finalize(s->last);
    sqlite3_finalize(s->stored);
    sqlite3_finalize(s->get_cover);
    sqlite3_finalize(s->put_cover);
    sqlite3_close(s->db);
    kf__free(s->name);
    kf__free(s);
}

/* Runs one statement that may return rows (a PRAGMA); the first column of the first row
 * is copied to out when out is not NULL. */
static int sq_exec1(sq *s, const char *sql, char *out, size_t outlen)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        if (out && outlen) {
            snprintf(out, outlen, "%s", v ? (const char *)v : "");
            out = NULL;
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Checks an existing klines table column by column; 0 when it is ours. */
static kf_err sq_check_klines(sq *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA table_info(klines)", -1, &st, NULL) != SQLITE_OK)
        return sq_fail(s, "PRAGMA table_info(klines)", err, errlen);
    size_t i = 0;
    int rc;
    kf_err out = KF_OK;
    while (!out && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        const char *type = (const char *)sqlite3_column_text(st, 2);
        int notnull = sqlite3_column_int(st, 3), pk = sqlite3_column_int(st, 5);
        if (i >= SQ_NCOLS) {
            snprintf(err, errlen,
                     "%s: incompatible existing klines table: extra column \"%s\" (klinefeed "
                     "expects the %zu columns of docs/schema.md)",
                     s->name, name ? name : "", SQ_NCOLS);
            out = KF_ERR_SINK;
        } else if (!name || strcmp(name, sq_columns[i].name) != 0 || !type ||
                   strcasecmp(type, sq_columns[i].type) != 0 || !notnull ||
                   pk != sq_columns[i].pk) {
            snprintf(err, errlen,
                     "%s: incompatible existing klines table: column %zu is \"%s %s%s%s\", "
                     "expected \"%s %s NOT NULL%s\"",
                     s->name, i + 1, name ? name : "", type ? type : "", notnull ? " NOT NULL" : "",
                     pk ? " (key)" : "", sq_columns[i].name, sq_columns[i].type,
                     sq_columns[i].pk ? " (key)" : "");
            out = KF_ERR_SINK;
        }
        i++;
    }
    if (!out && rc != SQLITE_DONE)
        out = sq_fail(s, "PRAGMA table_info(klines)", err, errlen);
    sqlite3_finalize(st);
    if (!out && i < SQ_NCOLS) {
        snprintf(err, errlen,
                 "%s: incompatible existing klines table: %zu columns, expected %zu (missing "
                 "\"%s\")",
                 s->name, i, SQ_NCOLS, sq_columns[i].name);
        out = KF_ERR_SINK;
    }
    return out;
}

/* Creates the schema when absent, checks it when present. Inside BEGIN IMMEDIATE so two
 * processes opening a new file at once do not both create it. */
static kf_err sq_schema(sq *s, char *err, size_t errlen)
{
    char buf[64] = "", want[16];
    snprintf(want, sizeof want, "%d", SQ_SCHEMA_VERSION);
    if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return sq_fail(s, "BEGIN IMMEDIATE", err, errlen);
    kf_err rc = KF_OK;
    if (sq_exec1(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'klines'",
                 buf, sizeof buf) != SQLITE_OK) {
        rc = sq_fail(s, "reading sqlite_master", err, errlen);
    } else if (strcmp(buf, "0") == 0) {
        if (sqlite3_exec(s->db, SQ_CREATE, NULL, NULL, NULL) != SQLITE_OK)
            rc = sq_fail(s, "CREATE TABLE klines", err, errlen);
    } else {
        rc = sq_check_klines(s, err, errlen);
    }
    if (!rc && sqlite3_exec(s->db, SQ_CREATE_META, NULL, NULL, NULL) != SQLITE_OK)
        rc = sq_fail(s, "CREATE TABLE meta", err, errlen);
    if (!rc) {
        buf[0] = 0;
        if (sq_exec1(s, "SELECT value FROM meta WHERE key = 'schema_version'", buf, sizeof buf) !=
            SQLITE_OK) {
            rc = sq_fail(s, "reading meta", err, errlen);
        } else if (buf[0] != 0 && strcmp(buf, "1") != 0 && strcmp(buf, want) != 0) {
            snprintf(err, errlen,
                     "%s: incompatible schema: meta.schema_version is \"%s\", this klinefeed "
                     "reads versions 1 to %d",
                     s->name, buf, SQ_SCHEMA_VERSION);
            rc = KF_ERR_SINK;
        } else if (strcmp(buf, want) != 0) { /* new, or version 1: add what 2 has */
            char sql[160];
            snprintf(sql, sizeof sql,
                     "INSERT INTO meta(key, value) VALUES('schema_version', '%s') "
                     "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     want);
            if (sqlite3_exec(s->db, SQ_CREATE_COVERAGE, NULL, NULL, NULL) != SQLITE_OK)
                rc = sq_fail(s, "CREATE TABLE coverage", err, errlen);
            else if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
                rc = sq_fail(s, "UPDATE meta", err, errlen);
        }
    }
    if (!rc && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = sq_fail(s, "COMMIT", err, errlen);
    if (rc && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static kf_err sq_open(const char *target, void **state, char *err, size_t errlen)
{
    *state = NULL;
    sq *s = kf__calloc(1, sizeof *s);
    size_t nlen = strlen("sqlite:") + strlen(target) + 1;
    if (!s || !(s->name = kf__malloc(nlen))) {
        snprintf(err, errlen, "sqlite:%s: out of memory", target);
        kf__free(s);
        return KF_ERR_NOMEM;
    }
    snprintf(s->name, nlen, "sqlite:%s", target);
    struct stat st;
    s->created = stat(target, &st) != 0 && errno == ENOENT;
    /* FULLMUTEX: opened on the caller's thread, written on the writer thread. */
    int rc = sqlite3_open_v2(
        target, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    kf_err out = KF_OK;
    if (rc != SQLITE_OK) {
        if (!s->db)
            snprintf(err, errlen, "%s: out of memory", s->name);
        else
            snprintf(err, errlen, "%s: %s", s->name, sqlite3_errmsg(s->db));
        out = KF_ERR_SINK;
    } else if (sqlite3_db_readonly(s->db, "main") == 1) {
        /* SQLite opens a file it may not write read-only, and every write would then fail as
         * if the database were busy: refuse at start instead. */
        snprintf(err, errlen,
                 "%s: the database can only be opened read-only (file or directory permissions, "
                 "or a read-only file system): klinefeed must write to it",
                 s->name);
        out = KF_ERR_SINK;
    } else if (sqlite3_busy_timeout(s->db, SQ_BUSY_MS) != SQLITE_OK) {
        out = sq_fail(s, "busy_timeout", err, errlen);
    } else if (sq_exec1(s, "PRAGMA journal_mode=WAL", NULL, 0) != SQLITE_OK) {
        out = sq_fail(s, "PRAGMA journal_mode=WAL", err, errlen);
    } else if (sq_exec1(s, "PRAGMA synchronous=NORMAL", NULL, 0) != SQLITE_OK) {
        out = sq_fail(s, "PRAGMA synchronous=NORMAL", err, errlen);
    } else if ((out = sq_schema(s, err, errlen)) != KF_OK) {
        /* err set */
    } else if (sqlite3_prepare_v2(s->db, "BEGIN IMMEDIATE", -1, &s->begin, NULL) ||
               sqlite3_prepare_v2(s->db, "COMMIT", -1, &s->commit, NULL) ||
               sqlite3_prepare_v2(s->db, "ROLLBACK", -1, &s->rollback, NULL) ||
               sqlite3_prepare_v2(s->db, SQ_UPSERT, -1, &s->upsert, NULL) ||
               sqlite3_prepare_v2(s->db, SQ_LAST, -1, &s->last, NULL) ||
               sqlite3_prepare_v2(s->db, SQ_STORED, -1, &s->stored, NULL) ||
               sqlite3_prepare_v2(s->db, SQ_GET_COVER, -1, &s->get_cover, NULL) ||
               sqlite3_prepare_v2(s->db, SQ_PUT_COVER, -1, &s->put_cover, NULL)) {
        out = sq_fail(s, "prepare", err, errlen);
    }
    if (out) {
        sq_close(s);
        return out;
    }
    *state = s;
    return KF_OK;
}

static int sq_step_reset(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc;
}

static kf_err sq_bind_row(sq *s, const kf_kline *k)
{
    sqlite3_stmt *st = s->upsert;
    const kf_dec d[8] = {k->open,           k->high,           k->low,
                         k->close,          k->volume,         k->quote_volume,
                         k->taker_buy_base, k->taker_buy_quote};
    static const int col[8] = {5, 6, 7, 8, 9, 10, 12, 13};
    if (!memchr(k->symbol, 0, sizeof k->symbol) || !memchr(k->interval, 0, sizeof k->interval))
        return KF_ERR_INVALID_ARG;
    int rc = sqlite3_bind_text(st, 1, k->symbol, -1, SQLITE_STATIC);
    rc |= sqlite3_bind_text(st, 2, k->interval, -1, SQLITE_STATIC);
    rc |= sqlite3_bind_int64(st, 3, k->open_time);
    rc |= sqlite3_bind_int64(st, 4, k->close_time);
    for (int i = 0; i < 8; i++) {
        size_t n = kf_dec_format(d[i], s->dec[i], sizeof s->dec[i]);
        if (!n)
            return KF_ERR_INVALID_ARG;
        rc |= sqlite3_bind_text(st, col[i], s->dec[i], (int)n, SQLITE_STATIC);
    }
    rc |= sqlite3_bind_int64(st, 11, k->trades);
    rc |= sqlite3_bind_int(st, 14, k->closed ? 1 : 0);
    return rc == SQLITE_OK ? KF_OK : KF_ERR_SINK;
}

static kf_err sq_write(void *state, const kf_kline *rows, size_t n, char *err, size_t errlen)
{
    sq *s = state;
    if (n == 0)
        return KF_OK;
    if (sq_step_reset(s->begin) != SQLITE_DONE)
        return sq_fail(s, "BEGIN IMMEDIATE", err, errlen);
    kf_err rc = KF_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        rc = sq_bind_row(s, &rows[i]);
        if (rc == KF_ERR_INVALID_ARG) {
            snprintf(err, errlen, "%s: row %zu (%.32s %.3s %lld): bad decimal or unterminated text",
                     s->name, i, rows[i].symbol, rows[i].interval, (long long)rows[i].open_time);
        } else if (rc) {
            sq_fail(s, "bind", err, errlen);
        } else if (sqlite3_step(s->upsert) != SQLITE_DONE) {
            /* errmsg must be read before reset clears it */
            rc = sq_fail(s, "INSERT INTO klines", err, errlen);
        }
        sqlite3_reset(s->upsert);
    }
    sqlite3_clear_bindings(s->upsert);
    if (!rc && sq_step_reset(s->commit) != SQLITE_DONE)
        rc = sq_fail(s, "COMMIT", err, errlen);
    if (rc && !sqlite3_get_autocommit(s->db))
        sq_step_reset(s->rollback);
    if (!rc)
        s->written = true;
    return rc;
}

static kf_err sq_flush(void *state, char *err, size_t errlen)
{
    (void)state, (void)err, (void)errlen;
    return KF_OK; /* every write() committed already */
}

static kf_err sq_last_closed(void *state, const char *symbol, const char *interval,
                             int64_t *open_time, int *found, char *err, size_t errlen)
{
    sq *s = state;
    *found = 0;
    sqlite3_bind_text(s->last, 1, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->last, 2, interval, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s->last);
    if (rc == SQLITE_ROW) {
        *open_time = sqlite3_column_int64(s->last, 0);
        *found = 1;
    }
    kf_err out = KF_OK;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        out = sq_fail(s, "SELECT last closed", err, errlen);
    sqlite3_reset(s->last);
    sqlite3_clear_bindings(s->last);
    return out;
}

static kf_err sq_stored(void *state, const char *symbol, const char *interval, int64_t from,
                        kf__stored_fn fn, void *ud, char *err, size_t errlen)
{
    sq *s = state;
    sqlite3_bind_text(s->stored, 1, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->stored, 2, interval, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->stored, 3, from);
    int rc;
    while ((rc = sqlite3_step(s->stored)) == SQLITE_ROW)
        if (fn(ud, sqlite3_column_int64(s->stored, 0)) != 0) {
            rc = SQLITE_DONE;
            break;
        }
    kf_err out = KF_OK;
    if (rc != SQLITE_DONE) /* a corrupt or unreadable store is an error, never "nothing there" */
        out = sq_fail(s, "reading the stored candles", err, errlen);
    sqlite3_reset(s->stored);
    sqlite3_clear_bindings(s->stored);
    return out;
}

static kf_err sq_get_cover(void *state, const char *symbol, const char *interval, int64_t *from,
                           int64_t *to, int *found, char *err, size_t errlen)
{
    sq *s = state;
    *found = 0;
    sqlite3_bind_text(s->get_cover, 1, symbol, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->get_cover, 2, interval, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s->get_cover);
    if (rc == SQLITE_ROW) {
        *from = sqlite3_column_int64(s->get_cover, 0);
        *to = sqlite3_column_int64(s->get_cover, 1);
        *found = 1;
    }
    kf_err out = KF_OK;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        out = sq_fail(s, "SELECT coverage", err, errlen);
    sqlite3_reset(s->get_cover);
    sqlite3_clear_bindings(s->get_cover);
    return out;
}

static kf_err sq_put_cover(void *state, const kf__cover *c, size_t n, char *err, size_t errlen)
{
    sq *s = state;
    if (n == 0)
        return KF_OK;
    if (sq_step_reset(s->begin) != SQLITE_DONE)
        return sq_fail(s, "BEGIN IMMEDIATE", err, errlen);
    kf_err rc = KF_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!memchr(c[i].symbol, 0, sizeof c[i].symbol) ||
            !memchr(c[i].interval, 0, sizeof c[i].interval)) {
            snprintf(err, errlen, "%s: coverage %zu: unterminated symbol or interval", s->name, i);
            rc = KF_ERR_INVALID_ARG;
            break;
        }
        sqlite3_bind_text(s->put_cover, 1, c[i].symbol, -1, SQLITE_STATIC);
        sqlite3_bind_text(s->put_cover, 2, c[i].interval, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s->put_cover, 3, c[i].from);
        sqlite3_bind_int64(s->put_cover, 4, c[i].to);
        if (sqlite3_step(s->put_cover) != SQLITE_DONE)
            rc = sq_fail(s, "INSERT INTO coverage", err, errlen);
        sqlite3_reset(s->put_cover);
    }
    sqlite3_clear_bindings(s->put_cover);
    if (!rc && sq_step_reset(s->commit) != SQLITE_DONE)
        rc = sq_fail(s, "COMMIT", err, errlen);
    if (rc && !sqlite3_get_autocommit(s->db))
        sq_step_reset(s->rollback);
    return rc;
}

static void sq_discard(void *state)
{
    sq *s = state;
    if (!s)
        return;
    bool remove_it = s->created && !s->written;
    char path[1100];
    snprintf(path, sizeof path, "%s", s->name + strlen("sqlite:"));
    sq_close(s);
    if (!remove_it)
        return;
    static const char *const tails[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s%s", path, tails[i]);
        unlink(p);
    }
}

const kf__sink_ops kf__sink_sqlite = {
    .version = KF__SINK_OPS_VERSION,
    .scheme = "sqlite",
    .open = sq_open,
    .write = sq_write,
    .flush = sq_flush,
    .close = sq_close,
    .last_closed = sq_last_closed,
    .stored = sq_stored,
    .get_cover = sq_get_cover,
    .put_cover = sq_put_cover,
    .discard = sq_discard,
};
