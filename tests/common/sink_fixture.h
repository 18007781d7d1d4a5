/* sink_fixture.h - helpers shared by the sink unit tests (tests/unit/test_sink_*.c), which link
 * kf_sink and cmocka only, hence header-only: a temporary directory per test and one value read
 * back from SQLite. Include after <cmocka.h> and <sqlite3.h>. */
#ifndef KF_TEST_SINK_FIXTURE_H
#define KF_TEST_SINK_FIXTURE_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

static inline int kft_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

/* Creates /tmp/<prefix>-XXXXXX into dir; 0 or -1 (a cmocka setup's result). */
static inline int kft_dir_create(char *dir, size_t cap, const char *prefix)
{
    snprintf(dir, cap, "/tmp/%s-XXXXXX", prefix);
    return mkdtemp(dir) ? 0 : -1;
}

/* Removes dir and everything below it; 0 or -1 (a cmocka teardown's result). */
static inline int kft_dir_remove(const char *dir)
{
    return nftw(dir, kft_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* First column of the first row as text into a static buffer ("" if no row); asserts the SQL
 * prepares. */
static inline const char *kft_db_text(sqlite3 *db, const char *sql)
{
    static char out[256];
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    out[0] = 0;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, sizeof out, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

#endif
