/*
 * `klinefeed decode [FILE|-]`: captured frames in, one JSON object per kline
 * out. A line is a raw event, a combined {"stream":...,"data":...} wrapper, or
 * the capture form "<unix time>: <frame>"; a capture's header line (the
 * connection URL) and frames that are not klines are skipped. Lines may have
 * any length up to DECODE_LINE_CAP; longer ones are counted malformed.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"

#define DECODE_LINE_CAP ((size_t)16 << 20)
#define DECODE_READ_CHUNK ((size_t)64 << 10)

/* ---- line reader: bounded, no trailing newline needed ---- */

typedef struct line_reader {
    FILE *f;
    char *chunk; /* read buffer */
    size_t pos, len;
    bool eof;
    char *line; /* current line, grown up to max + 1 */
    size_t line_len, line_alloc;
    size_t max;
} line_reader;

typedef enum line_status {
    LINE_OK,       /* line and len set, without the newline */
    LINE_TOO_LONG, /* a line over max bytes was consumed and dropped */
    LINE_EOF,
    LINE_ERROR, /* read error (errno) or out of memory */
} line_status;

static bool line_append(line_reader *r, const char *p, size_t n)
{
    if (r->line_len + n > r->line_alloc) {
        size_t want = r->line_alloc ? r->line_alloc : 4096;
        while (want < r->line_len + n)
            want *= 2;
        if (want > r->max + 1)
            want = r->max + 1;
        char *grown = realloc(r->line, want);
        if (!grown)
            return false;
        r->line = grown;
        r->line_alloc = want;
    }
    memcpy(r->line + r->line_len, p, n);
    r->line_len += n;
    return true;
}

static line_status line_next(line_reader *r, const char **line, size_t *len)
{
    bool too_long = false;
    bool any = false; /* consumed something of this line */
    r->line_len = 0;
    for (;;) {
        if (r->pos == r->len) {
            if (r->eof)
                break;
            r->len = fread(r->chunk, 1, DECODE_READ_CHUNK, r->f);
            r->pos = 0;
            if (r->len == 0) {
                if (ferror(r->f))
                    return LINE_ERROR;
                r->eof = true;
                break;
            }
        }
        const char *start = r->chunk + r->pos;
        size_t avail = r->len - r->pos;
        const char *nl = memchr(start, '\n', avail);
        size_t take = nl ? (size_t)(nl - start) : avail;
        r->pos += take + (nl ? 1 : 0);
        any = true;
        if (!too_long) {
            if (r->line_len + take > r->max) {
                too_long = true; /* keep consuming up to the newline, store nothing */
                r->line_len = 0;
            } else if (!line_append(r, start, take)) {
                return LINE_ERROR;
            }
        }
        if (nl)
            goto done;
    }
    if (!any)
        return LINE_EOF;
done:
    if (too_long)
        return LINE_TOO_LONG;
    *line = r->line_len ? r->line : "";
    *len = r->line_len;
    return LINE_OK;
}

/* ---- one line ---- */

typedef enum line_kind { KIND_EMPTY, KIND_KLINE, KIND_SKIPPED, KIND_MALFORMED } line_kind;

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* "<digits>[.<digits>]:" prefix of the capture form; returns the frame after it or NULL. */
static const char *capture_frame(const char *p, const char *end)
{
    const char *q = p;
    while (q < end && *q >= '0' && *q <= '9')
        q++;
    if (q == p)
        return NULL;
    if (q < end && *q == '.') {
        q++;
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q == end || *q != ':')
        return NULL;
    return q + 1;
}

static line_kind decode_line(const char *p, size_t len, kf_kline *k)
{
    const char *end = p + len;
    while (p < end && is_space(*p))
        p++;
    while (end > p && is_space(end[-1]))
        end--;
    if (p == end)
        return KIND_EMPTY;
    /* A capture's first line: "wss://host/stream?streams=... <-> 1626992740.179554". */
    if ((end - p >= 5 && memcmp(p, "ws://", 5) == 0) ||
        (end - p >= 6 && memcmp(p, "wss://", 6) == 0))
        return KIND_SKIPPED;
    const char *frame = capture_frame(p, end);
    if (frame) {
        while (frame < end && is_space(*frame))
            frame++;
        p = frame;
    }
    kf_err e = kf_kline_decode(p, (size_t)(end - p), k);
    if (e == KF_OK)
        return KIND_KLINE;
    return e == KF_ERR_NOT_FOUND ? KIND_SKIPPED : KIND_MALFORMED;
}

/* ---- command ---- */

int cli_decode(int argc, char **argv)
{
    cli_decode_opts o = {0};
    char err[CLI_ERR_MAX], *text = NULL;
    const char *path = NULL;
    bool ok = cli_parse(&cli_cmd_decode, &o, argc, argv, &path, &text, err, sizeof err);
    free(text); /* decode has no --config */
    if (!ok) {
        cli_error("%s", err);
        return CLI_EXIT_USAGE;
    }
    if (o.help) {
        cli_command_help(&cli_cmd_decode, stdout);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_RUNTIME;
    }
    if (!path)
        path = "-";

    bool use_stdin = strcmp(path, "-") == 0;
    FILE *f = use_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        cli_error("decode: cannot open \"%s\": %s", path, strerror(errno));
        return CLI_EXIT_INPUT;
    }
    line_reader r = {.f = f, .max = DECODE_LINE_CAP};
    r.chunk = malloc(DECODE_READ_CHUNK);
    if (!r.chunk) {
        cli_error("decode: out of memory");
        if (!use_stdin)
            fclose(f);
        return CLI_EXIT_RUNTIME;
    }

    unsigned long long decoded = 0, skipped = 0, malformed = 0;
    int rc = CLI_EXIT_OK;
    char json[KF_KLINE_JSON_MAX + 1];
    for (;;) {
        const char *line = NULL;
        size_t len = 0;
        line_status st = line_next(&r, &line, &len);
        if (st == LINE_EOF)
            break;
        if (st == LINE_ERROR) {
            cli_error("decode: cannot read \"%s\": %s", use_stdin ? "stdin" : path,
                      errno ? strerror(errno) : "out of memory");
            rc = CLI_EXIT_INPUT;
            break;
        }
        if (st == LINE_TOO_LONG) {
            malformed++;
            continue;
        }
        kf_kline k;
        switch (decode_line(line, len, &k)) {
        case KIND_EMPTY:
            break;
        case KIND_SKIPPED:
            skipped++;
            break;
        case KIND_MALFORMED:
            malformed++;
            break;
        case KIND_KLINE: {
            size_t n = kf_kline_to_json(&k, json, sizeof json - 1);
            if (n == 0) {
                malformed++;
                break;
            }
            json[n++] = '\n';
            if (fwrite(json, 1, n, stdout) != n)
                rc = CLI_EXIT_RUNTIME;
            decoded++;
            break;
        }
        }
        if (rc != CLI_EXIT_OK)
            break;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_error("decode: cannot write to stdout: %s", strerror(errno));
        rc = CLI_EXIT_RUNTIME;
    }
    fprintf(stderr, "decoded=%llu skipped=%llu malformed=%llu\n", decoded, skipped, malformed);
    free(r.chunk);
    free(r.line);
    if (!use_stdin)
        fclose(f);
    return rc;
}
