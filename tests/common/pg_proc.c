/* pg_proc.c - a throw-away PostgreSQL server for a test (pg_proc.h). */
#include "pg_proc.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static bool find_bin(char *out, size_t cap)
{
    const char *env = getenv("KF_PG_BIN");
    char p[512];
    if (env && *env) {
        snprintf(p, sizeof p, "%s/pg_ctl", env);
        if (access(p, X_OK) == 0) {
            snprintf(out, cap, "%s", env);
            return true;
        }
    }
    for (int v = 20; v >= 11; v--) {
        snprintf(p, sizeof p, "/usr/lib/postgresql/%d/bin/pg_ctl", v);
        if (access(p, X_OK) == 0) {
            snprintf(out, cap, "/usr/lib/postgresql/%d/bin", v);
            return true;
        }
    }
    const char *path = getenv("PATH");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(p, sizeof p, "%s/pg_ctl", d);
        char q[512];
        snprintf(q, sizeof q, "%s/initdb", d);
        if (access(p, X_OK) == 0 && access(q, X_OK) == 0) {
            snprintf(out, cap, "%s", d);
            return true;
        }
    }
    return false;
}

bool kft_pg_available(char *why, size_t cap)
{
    char bin[256];
    if (!find_bin(bin, sizeof bin)) {
        snprintf(why, cap,
                 "PostgreSQL server binaries (initdb, pg_ctl) not found in $KF_PG_BIN, "
                 "/usr/lib/postgresql/*/bin or PATH: apt-get install postgresql "
                 "(scripts/setup.sh)");
        return false;
    }
    if (geteuid() == 0 && !getpwnam("postgres")) {
        snprintf(why, cap, "running as root and there is no user \"postgres\" to run the server");
        return false;
    }
    return true;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Runs a server command as the cluster's owner; its output into dir/cmd.log. */
static int run_as_owner(const kft_pg *pg, const char *cmd)
{
    char full[2048];
    snprintf(full, sizeof full, "%s%s >>'%s/cmd.log' 2>&1",
             geteuid() == 0 ? "runuser -u postgres -- " : "", cmd, pg->dir);
    return system(full);
}

int kft_pg_up(kft_pg *pg)
{
    char cmd[1536];
    snprintf(cmd, sizeof cmd,
             "'%s/pg_ctl' -D '%s/data' -l '%s/server.log' -w -t 60 -o \"-k '%s' -p %d -c "
             "listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40\" start",
             pg->bin, pg->dir, pg->dir, pg->dir, pg->port);
    return run_as_owner(pg, cmd);
}

int kft_pg_down(kft_pg *pg, const char *mode)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s/pg_ctl' -D '%s/data' -m %s -w -t 30 stop", pg->bin, pg->dir,
             mode);
    return run_as_owner(pg, cmd);
}

kft_pg *kft_pg_start(void)
{
    kft_pg *pg = calloc(1, sizeof *pg);
    char tmpl[] = "/tmp/kft-pg-XXXXXX";
    if (!pg || !find_bin(pg->bin, sizeof pg->bin) || !mkdtemp(tmpl)) {
        fprintf(stderr, "pg_proc: no server binaries or no temporary directory\n");
        free(pg);
        return NULL;
    }
    snprintf(pg->dir, sizeof pg->dir, "%s", tmpl);
    chmod(pg->dir, 0755);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(pg->dir, pw->pw_uid, pw->pw_gid) != 0) {
            fprintf(stderr, "pg_proc: cannot give %s to the user postgres\n", pg->dir);
            free(pg);
            return NULL;
        }
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s/initdb' -D '%s/data' -U klinefeed -A trust -E UTF8 --locale=C.UTF-8 -N", pg->bin,
             pg->dir);
    int tries = 0;
    if (run_as_owner(pg, cmd) != 0) {
        fprintf(stderr, "pg_proc: initdb failed (see %s/cmd.log)\n", pg->dir);
        goto fail;
    }
    do { /* a port taken between the check and the server's bind: another one */
        pg->port = free_port();
    } while (kft_pg_up(pg) != 0 && ++tries < 3);
    if (tries == 3) {
        fprintf(stderr, "pg_proc: the server did not start (see %s/server.log)\n", pg->dir);
        goto fail;
    }
    snprintf(pg->conninfo, sizeof pg->conninfo,
             "host=127.0.0.1 port=%d user=klinefeed dbname=postgres", pg->port);
    return pg;
fail:
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pg->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "pg_proc: could not remove %s\n", pg->dir);
    free(pg);
    return NULL;
}

void kft_pg_destroy(kft_pg *pg)
{
    if (!pg)
        return;
    kft_pg_down(pg, "immediate");
    char cmd[600];
    if (!getenv("KF_PG_KEEP")) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", pg->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "pg_proc: could not remove %s\n", pg->dir);
    }
    free(pg);
}
