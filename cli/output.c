/* Error lines and log lines of the CLI: one line each, on stderr, secrets redacted. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"

#define LINE_MAX_BYTES 4096

static const char *secrets[2];

kf_log_level cli_log_level = KF_LOG_INFO;

void cli_secrets_set(const char *key, const char *secret)
{
    secrets[0] = key && *key ? key : NULL;
    secrets[1] = secret && *secret ? secret : NULL;
}

/* Copies src into dst (cap bytes with the NUL), replacing each registered secret. */
static void redact(const char *src, char *dst, size_t cap)
{
    static const char mark[] = "[redacted]";
    size_t o = 0;
    while (*src && o + 1 < cap) {
        size_t hit = 0;
        for (size_t s = 0; s < 2 && !hit; s++)
            if (secrets[s] && strncmp(src, secrets[s], strlen(secrets[s])) == 0)
                hit = strlen(secrets[s]);
        if (hit) {
            size_t n = sizeof mark - 1;
            if (o + n >= cap)
                break;
            memcpy(dst + o, mark, n);
            o += n;
            src += hit;
        } else {
            dst[o++] = *src++;
        }
    }
    dst[o] = '\0';
}

/* Writes all of buf to stderr (fd 2), retrying short writes. */
static void write_stderr(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

void cli_error(const char *fmt, ...)
{
    char raw[LINE_MAX_BYTES], clean[LINE_MAX_BYTES], line[LINE_MAX_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    redact(raw, clean, sizeof clean);

    static const char hex[] = "0123456789abcdef";
    static const char prefix[] = "klinefeed: ";
    size_t o = sizeof prefix - 1;
    memcpy(line, prefix, o);
    for (const char *p = clean; *p && o + 6 < sizeof line; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f) {
            line[o++] = '\\';
            line[o++] = 'x';
            line[o++] = hex[c >> 4];
            line[o++] = hex[c & 15];
        } else {
            line[o++] = (char)c;
        }
    }
    line[o++] = '\n';
    write_stderr(line, o);
}

void cli_log_line(void *userdata, kf_log_level level, const char *line)
{
    (void)userdata;
    (void)level;
    char buf[LINE_MAX_BYTES];
    redact(line, buf, sizeof buf - 1);
    size_t n = strlen(buf);
    buf[n++] = '\n';
    write_stderr(buf, n);
}

void cli_logger_setup(kf_log_level level)
{
    cli_log_level = level;
}

int cli_setter_failed(const kf_config *cfg, const char *flag, const char *value, kf_err e)
{
    if (e == KF_ERR_NOMEM) {
        cli_error("%s: out of memory", flag);
        return CLI_EXIT_RUNTIME;
    }
    const char *msg = kf_config_errmsg(cfg);
    if (msg && *msg)
        cli_error("%s: %s", flag, msg);
    else
        cli_error("%s: \"%s\" rejected (%s)", flag, value ? value : "", kf_strerror(e));
    return CLI_EXIT_USAGE;
}

int cli_set_ca_file(kf_config *cfg, const char *path)
{
    if (access(path, R_OK) != 0) {
        cli_error("--ca-file: \"%s\": %s", path, strerror(errno));
        return CLI_EXIT_USAGE;
    }
    CLI_SET(kf_config_set_ca_file(cfg, path), "--ca-file", path);
    return CLI_EXIT_OK;
}

int cli_set_shard(kf_config *cfg, const char *spec)
{
    unsigned long k = 0, n = 0;
    char *end = NULL;
    const char *p = spec;
    if (*p >= '0' && *p <= '9')
        k = strtoul(p, &end, 10);
    if (end && *end == '/' && end[1] >= '0' && end[1] <= '9')
        n = strtoul(end + 1, &end, 10);
    else
        end = NULL;
    if (!end || *end || k == 0 || n == 0 || k > n || n > 1000000) {
        cli_error("--shard: \"%s\" is not K/N with 1 <= K <= N <= 1000000 (e.g. 2/3)", spec);
        return CLI_EXIT_USAGE;
    }
    CLI_SET(kf_config_set_shard(cfg, (unsigned)k, (unsigned)n), "--shard", spec);
    return CLI_EXIT_OK;
}

/* mkdir -p with mode 0700 for the directories it creates; 0 or -1 (errno set). */
static int mkdir_p(const char *path)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "%s", path);
    if (n <= 0 || (size_t)n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    struct stat st;
    if (stat(buf, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

int cli_state_dir(const char *flag_value, char *dir, size_t cap)
{
    dir[0] = 0;
    if (flag_value && strcmp(flag_value, "none") == 0)
        return CLI_EXIT_OK;
    if (flag_value) {
        if (mkdir_p(flag_value) != 0 || access(flag_value, W_OK) != 0) {
            cli_error("--state-dir: \"%s\": %s", flag_value, strerror(errno));
            return CLI_EXIT_USAGE;
        }
        snprintf(dir, cap, "%s", flag_value);
        return CLI_EXIT_OK;
    }
    /* systemd's StateDirectory= (the first of a list), else the XDG state home */
    const char *sd = getenv("STATE_DIRECTORY"), *xdg = getenv("XDG_STATE_HOME"),
               *home = getenv("HOME");
    if (sd && *sd)
        snprintf(dir, cap, "%.*s", (int)strcspn(sd, ":"), sd);
    else if (xdg && *xdg)
        snprintf(dir, cap, "%s/klinefeed", xdg);
    else if (home && *home)
        snprintf(dir, cap, "%s/.local/state/klinefeed", home);
    if (*dir && mkdir_p(dir) != 0) {
        cli_log(KF_LOG_WARN,
                "msg=\"no state directory: REST pauses are not kept for the next process\" "
                "dir=%s error=\"%s\" hint=\"--state-dir DIR\"",
                dir, strerror(errno));
        dir[0] = 0;
    }
    return CLI_EXIT_OK;
}
