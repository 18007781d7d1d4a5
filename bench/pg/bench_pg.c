/*
 * klinefeed-bench-pg CONNINFO [--rows N] [--batches 64,256,1024,4096] [--runs R]: rows per
 * second written by the postgres store (src/sink/pg.c, the code the daemon's writer thread
 * runs: one transaction per batch, COPY straight into klines when every key is new, else COPY
 * into a staging table and one INSERT ... SELECT ... ON CONFLICT), for each batch size: N new
 * candles (distinct keys) per run, the table emptied between runs, the median of R runs; then
 * the same N rows written again (every key present, nothing changes: the cost of a repeat).
 * Each pass opens the store afresh (outside the timing), as a collector starts: the store
 * remembers that its last batches met stored keys, and a repeat must not slow the next run's
 * new rows. A separate program from klinefeed-bench, which sees the public header only: the
 * sinks are internal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "sink/sink.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static kf_dec D(const char *s)
{
    kf_dec d;
    kf_dec_parse(s, strlen(s), &d);
    return d;
}

/* rows: 20 symbols x N/20 one-minute candles, prices varying in their last digits. */
static kf_kline *make_rows(size_t n)
{
    kf_kline *v = calloc(n, sizeof *v);
    static const char *const syms[] = {"BTCUSDT",  "ETHUSDT", "BNBUSDT",  "SOLUSDT",  "XRPUSDT",
                                       "DOGEUSDT", "ADAUSDT", "AVAXUSDT", "LINKUSDT", "DOTUSDT",
                                       "TRXUSDT",  "LTCUSDT", "BCHUSDT",  "NEARUSDT", "UNIUSDT",
                                       "APTUSDT",  "ARBUSDT", "OPUSDT",   "FILUSDT",  "ATOMUSDT"};
    for (size_t i = 0; v && i < n; i++) {
        kf_kline *k = &v[i];
        char p[32];
        snprintf(k->symbol, sizeof k->symbol, "%s", syms[i % 20]);
        snprintf(k->interval, sizeof k->interval, "1m");
        k->open_time = 1767225600000LL + (int64_t)(i / 20) * 60000;
        k->close_time = k->open_time + 59999;
        k->closed = 1;
        k->trades = 1000 + (int64_t)(i % 977);
        snprintf(p, sizeof p, "83%03zu.%02zu", i % 1000, i % 100);
        k->open = k->close = D(p);
        k->high = D("83991.70");
        k->low = D("83051.20");
        k->volume = D("13.551");
        k->quote_volume = D("1125714.73960");
        k->taker_buy_base = D("6.426");
        k->taker_buy_quote = D("533856.66860");
    }
    return v;
}

static int run_sql(const char *conninfo, const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "bench-pg: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return ok ? 0 : -1;
}

/* Seconds to write rows[0..n) in batches of b through a store opened for the pass; -1 on a
 * failure. */
static double write_all(const char *conninfo, const kf_kline *rows, size_t n, size_t b)
{
    char err[512];
    void *s = NULL;
    if (kf__sink_postgres.open(conninfo, &s, err, sizeof err) != KF_OK) {
        fprintf(stderr, "bench-pg: %s\n", err);
        return -1;
    }
    double t0 = now_s();
    for (size_t i = 0; i < n; i += b) {
        size_t m = n - i < b ? n - i : b;
        if (kf__sink_postgres.write(s, rows + i, m, err, sizeof err) != KF_OK) {
            fprintf(stderr, "bench-pg: %s\n", err);
            kf__sink_postgres.close(s);
            return -1;
        }
    }
    double t = now_s() - t0;
    kf__sink_postgres.close(s);
    return t;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: klinefeed-bench-pg CONNINFO [--rows N] [--batches 64,256,...] "
                        "[--runs R]\n");
        return 2;
    }
    const char *conninfo = argv[1];
    size_t n = 200000, runs = 5;
    char batches[256] = "64,256,1024,4096";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rows"))
            n = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--runs"))
            runs = strtoul(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--batches"))
            snprintf(batches, sizeof batches, "%s", argv[i + 1]);
    }
    if (runs == 0 || runs > 50 || n == 0)
        return 2;
    kf_kline *rows = make_rows(n);
    void *s = NULL;
    char err[512];
    if (!rows || kf__sink_postgres.open(conninfo, &s, err, sizeof err) != KF_OK) {
        fprintf(stderr, "bench-pg: %s\n", rows ? err : "out of memory");
        return 1;
    }
    kf__sink_postgres.close(s); /* the schema is there */
    printf("%-8s %10s %14s %14s %14s\n", "batch", "rows", "insert rows/s", "min..max",
           "repeat rows/s");
    for (char *save, *tok = strtok_r(batches, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t b = strtoul(tok, NULL, 10);
        double ins[50], rep[50];
        for (size_t r = 0; r < runs; r++) {
            if (run_sql(conninfo, "TRUNCATE klines") != 0)
                return 1;
            double t = write_all(conninfo, rows, n, b);
            double u = write_all(conninfo, rows, n, b); /* every key present: changes nothing */
            if (t < 0 || u < 0)
                return 1;
            ins[r] = (double)n / t;
            rep[r] = (double)n / u;
        }
        qsort(ins, runs, sizeof *ins, cmp_d);
        qsort(rep, runs, sizeof *rep, cmp_d);
        printf("%-8zu %10zu %14.0f %6.0f..%-7.0f %14.0f\n", b, n, ins[runs / 2], ins[0],
               ins[runs - 1], rep[runs / 2]);
        fflush(stdout);
    }
    free(rows);
    return 0;
}
