/* klinefeed-compare: a SQLite store against klinefeed-sim's ground truth (/sim/truth), for
 * scripts/soak.sh and for anyone who ran the daemon against the simulator by hand.
 *
 *   klinefeed-compare --port N --db PATH [--symbols A,B] [--intervals 1m,5m] [--from MS]
 *                     [--to MS] [--verbose N] [--ca-file PATH]
 *
 * Prints one line, "compare: streams=S checked=C missing=M extra=E differing=D", and exits 0
 * when nothing is missing, extra or differing and something was checked; 1 otherwise or when
 * the store or the simulator could not be read; 2 on a usage error (one line naming the flag).
 * With --verbose N, up to N lines about bad candles go to stderr. */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compare.h"

static const char usage[] =
    "usage: klinefeed-compare --port N --db PATH [--symbols A,B] [--intervals 1m,5m]\n"
    "                         [--from MS] [--to MS] [--verbose N] [--ca-file PATH]\n"
    "Compares the closed candles of the SQLite store PATH with GET /sim/truth of the\n"
    "klinefeed-sim on 127.0.0.1:N, over open_time >= --from and close_time < --to.\n"
    "  --port N        the simulator's port (required)\n"
    "  --db PATH       the SQLite store (required; opened read-only)\n"
    "  --symbols LIST  comma-separated; with --intervals: every symbol x interval, stored or\n"
    "                  not; otherwise the store's streams, restricted to the list given\n"
    "  --intervals LIST\n"
    "  --from MS       first open time, unix ms (default: each stream's first stored candle)\n"
    "  --to MS         close times before MS, unix ms (default: the simulator's now)\n"
    "  --verbose N     up to N lines about missing/extra/differing candles on stderr\n"
    "  --ca-file PATH  the simulator speaks TLS (--tls-cert): reach it as localhost and\n"
    "                  verify its certificate with this CA file\n"
    "Prints \"compare: streams=S checked=C missing=M extra=E differing=D\"; exit 0 when\n"
    "missing+extra+differing is 0 and checked > 0, 1 otherwise or on a read error, 2 on a\n"
    "usage error.\n";

static int bad(const char *flag, const char *why, const char *val)
{
    fprintf(stderr, "klinefeed-compare: %s: %s%s%s%s\n", flag, why, val ? " '" : "", val ? val : "",
            val ? "'" : "");
    return 2;
}

static bool parse_i64(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

/* "A,B" into a NULL-terminated list (in place); false when an element is empty. */
static bool split(char *csv, const char ***out)
{
    size_t n = 1;
    for (const char *p = csv; *p; p++)
        n += *p == ',';
    const char **v = calloc(n + 1, sizeof *v);
    if (!v)
        return false;
    size_t i = 0;
    for (char *tok = csv;; i++) {
        char *comma = strchr(tok, ',');
        if (comma)
            *comma = 0;
        if (!*tok) {
            free(v);
            return false;
        }
        v[i] = tok;
        if (!comma)
            break;
        tok = comma + 1;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    int64_t port = 0, from = KFT_CMP_FROM_STORE, to = INT64_MAX, verbose = 0;
    const char *db = NULL, *ca_file = NULL;
    const char **symbols = NULL, **intervals = NULL;
    int rc = 2;
    for (int i = 1; i < argc; i++) {
        char name[32];
        const char *arg = argv[i], *val = NULL, *eq = strchr(arg, '=');
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            fputs(usage, stdout);
            rc = 0;
            goto out;
        }
        if (strncmp(arg, "--", 2) == 0 && eq && (size_t)(eq - arg) < sizeof name) {
            memcpy(name, arg, (size_t)(eq - arg));
            name[eq - arg] = 0;
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", arg);
            if (strlen(arg) >= sizeof name || strncmp(arg, "--", 2) != 0) {
                bad(arg, "unknown argument (see --help)", NULL);
                goto out;
            }
            if (i + 1 < argc)
                val = argv[++i];
        }
        bool known = strcmp(name, "--port") == 0 || strcmp(name, "--db") == 0 ||
                     strcmp(name, "--symbols") == 0 || strcmp(name, "--intervals") == 0 ||
                     strcmp(name, "--from") == 0 || strcmp(name, "--to") == 0 ||
                     strcmp(name, "--verbose") == 0 || strcmp(name, "--ca-file") == 0;
        if (!known) {
            bad(name, "unknown flag (see --help)", NULL);
            goto out;
        }
        if (!val) {
            bad(name, "needs a value", NULL);
            goto out;
        }
        if (strcmp(name, "--port") == 0) {
            if (!parse_i64(val, &port) || port < 1 || port > 65535) {
                bad(name, "expected a port 1..65535, got", val);
                goto out;
            }
        } else if (strcmp(name, "--db") == 0) {
            if (!*val) {
                bad(name, "expected a path, got", val);
                goto out;
            }
            db = val;
        } else if (strcmp(name, "--symbols") == 0 || strcmp(name, "--intervals") == 0) {
            const char ***list = name[2] == 's' ? &symbols : &intervals;
            free(*list);
            *list = NULL;
            if (!split((char *)val, list)) {
                bad(name, "expected a comma-separated list, got", val);
                goto out;
            }
        } else if (strcmp(name, "--ca-file") == 0) {
            if (!*val) {
                bad(name, "expected a path, got", val);
                goto out;
            }
            ca_file = val;
        } else if (strcmp(name, "--verbose") == 0) {
            if (!parse_i64(val, &verbose) || verbose < 0) {
                bad(name, "expected a line count >= 0, got", val);
                goto out;
            }
        } else if (!parse_i64(val, name[2] == 'f' ? &from : &to)) {
            bad(name, "expected unix milliseconds, got", val);
            goto out;
        }
    }
    if (!port) {
        fputs("klinefeed-compare: --port N is required (see --help)\n", stderr);
        goto out;
    }
    if (!db) {
        fputs("klinefeed-compare: --db PATH is required (see --help)\n", stderr);
        goto out;
    }
    if (ca_file)
        kft_http_set_tls((int)port, ca_file);
    kft_cmp c;
    char err[512];
    if (kft_compare_store((int)port, db, symbols, intervals, from, to, verbose ? stderr : NULL,
                          (size_t)verbose, &c, err, sizeof err) != 0) {
        fprintf(stderr, "klinefeed-compare: %s\n", err);
        rc = 1;
        goto out;
    }
    printf("compare: streams=%zu checked=%zu missing=%zu extra=%zu differing=%zu\n", c.streams,
           c.checked, c.missing, c.extra, c.differing);
    rc = c.checked > 0 && c.missing + c.extra + c.differing == 0 ? 0 : 1;
out:
    free(symbols);
    free(intervals);
    return rc;
}
