/* pg_proc.h - test helpers: a throw-away PostgreSQL server in a temporary directory, on
 * 127.0.0.1 and a free port, run as the user "postgres" through runuser when the test runs as
 * root (the server refuses root). Needs the server binaries (initdb, pg_ctl): found in
 * $KF_PG_BIN, /usr/lib/postgresql/<version>/bin or PATH. */
#ifndef KF_TEST_PG_PROC_H
#define KF_TEST_PG_PROC_H

#include <stdbool.h>
#include <stddef.h>

typedef struct kft_pg {
    char dir[512]; /* the cluster's data directory lives in dir/data, its socket in dir */
    char bin[256]; /* where initdb and pg_ctl are */
    int port;
    char conninfo[640]; /* host=127.0.0.1 port=P user=klinefeed dbname=postgres */
} kft_pg;

/* True when the server binaries are there; otherwise why (for a cmocka skip). */
bool kft_pg_available(char *why, size_t cap);
/* initdb + start in a new directory under /tmp. NULL on failure (printed). */
kft_pg *kft_pg_start(void);
/* pg_ctl start / stop with mode ("immediate": a crash, "fast"); 0 on success. */
int kft_pg_up(kft_pg *pg);
int kft_pg_down(kft_pg *pg, const char *mode);
/* Stops the server (immediate, never waits long), removes the directory, frees. NULL ignored. */
void kft_pg_destroy(kft_pg *pg);

#endif
