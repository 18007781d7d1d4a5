/*
 * TLS on the path every real user takes: klinefeed-sim serves wss:// and https:// on one port
 * (--tls-cert/--tls-key) with certificates made at run time by a throw-away CA
 * (tls_certs.h), and the client verifies them.
 *
 * - The library over wss://localhost + https://localhost with kf_config_set_ca_file collects
 *   (live stream and REST history) and its SQLite store equals the simulator's truth; so does
 *   the daemon with --ca-file, and `klinefeed backfill` over https with --ca-file.
 * - The same certificate reached as 127.0.0.1 (no such name in it), a CA the client does not
 *   trust, an expired certificate, and no --ca-file at all (the system store does not hold the
 *   throw-away CA) are each refused, naming OpenSSL's reason: by kf_start with KF_ERR_TLS for
 *   the WebSocket and for REST (symbol validation), by `klinefeed backfill` and `klinefeed run`
 *   with exit code 1.
 * - The simulator's faults (resets, stalls, server closes, refusals, garbage frames, dropped
 *   closing updates, REST 500s) through TLS: nothing lost; and its flood through TLS: every
 *   frame decoded. Many small records and then a silent socket: every frame delivered at once.
 */
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "cli_proc.h"
#include "compare.h"
#include "kftest.h"
#include "raw_ws.h"
#include "sim_proc.h"
#include "tls_certs.h"
#include "transport/ws.h"

#define SIM_START ((int64_t)1767225600000) /* the simulator's default clock start */
#define MINUTE ((int64_t)60000)

static char tmpdir[256];
static kft_tls certs;
static int tls_port; /* the running simulator's port, given to kft_http_set_tls */

static const char *const symbols[] = {"BTCUSDT", "ETHUSDT", NULL};
static const char *const intervals[] = {"1m", "5m", NULL};

static const char *tmp_path(const char *name)
{
    static char paths[8][512];
    static int k;
    char *p = paths[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = calloc((size_t)n + 1, 1);
    assert_non_null(b);
    if (n > 0 && fread(b, 1, (size_t)n, f) != (size_t)n)
        b[0] = 0;
    fclose(f);
    return b;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static bool valgrind(void)
{
    return getenv("KF_VALGRIND") != NULL;
}

/* A simulator serving cert (signed by certs.ca) over TLS, with the extra NULL-terminated
 * args; the test helpers reach it over TLS too. Stopped by tls_teardown. */
static int start_tls_sim(const char *cert, const char *const *extra)
{
    const char *a[32] = {"--tls-cert", cert, "--tls-key", certs.key};
    int n = 4;
    for (; extra && *extra && n < 31; extra++)
        a[n++] = *extra;
    a[n] = NULL;
    if (tls_port) /* kft_sim_run stops the previous simulator */
        kft_http_set_tls(tls_port, NULL);
    kft_sim *s =
        kft_sim_run(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12],
                    a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21], a[22], a[23],
                    a[24], a[25], a[26], a[27], a[28], a[29], a[30], NULL);
    tls_port = kft_sim_port(s);
    kft_http_set_tls(tls_port, certs.ca);
    return tls_port;
}

static int tls_teardown(void **state)
{
    if (tls_port)
        kft_http_set_tls(tls_port, NULL);
    tls_port = 0;
    return kft_sim_teardown(state);
}

static int64_t sim_now(int port)
{
    static kft_sim_state st;
    assert_true(kft_sim_state_get(port, &st));
    return st.now;
}

/* The store against the truth for symbols x intervals, open times from..to_ms; asserts that
 * nothing is missing, extra or differing and returns how many candles were checked. */
static size_t assert_store_is_truth(int port, const char *db, int64_t from, int64_t to_ms,
                                    const char *what)
{
    kft_cmp c;
    char err[512];
    if (kft_compare_store(port, db, symbols, intervals, from, to_ms, stderr, 50, &c, err,
                          sizeof err) != 0)
        fail_msg("%s: compare: %s", what, err);
    printf("# tls %s: streams=%zu checked=%zu missing=%zu extra=%zu differing=%zu\n", what,
           c.streams, c.checked, c.missing, c.extra, c.differing);
    assert_int_equal(c.streams, 4);
    assert_int_equal(c.missing + c.extra + c.differing, 0);
    return c.checked;
}

/* A library config for ws (a wss:// base) and rest, with ca_file (NULL: the system store). */
static kf_config *tls_config(const char *ws, const char *rest, const char *ca_file,
                             kf_validate validate, kft_logcap *cap)
{
    kf_config *cfg = kf_config_new();
    assert_non_null(cfg);
    assert_int_equal(kf_config_set_ws_url(cfg, ws), KF_OK);
    assert_int_equal(kf_config_set_rest_url(cfg, rest), KF_OK);
    assert_int_equal(kf_config_add_symbols(cfg, "BTCUSDT,ETHUSDT"), KF_OK);
    assert_int_equal(kf_config_add_intervals(cfg, "1m,5m"), KF_OK);
    assert_int_equal(kf_config_set_validate(cfg, validate), KF_OK);
    assert_int_equal(kf_config_set_connect_timeout_ms(cfg, valgrind() ? 20000 : 5000), KF_OK);
    if (ca_file)
        assert_int_equal(kf_config_set_ca_file(cfg, ca_file), KF_OK);
    if (cap)
        kf_config_set_log(cfg, kft_log_fn, cap, KF_LOG_DEBUG);
    return cfg;
}

static bool is_connected(void *c)
{
    return kf_connected(c);
}

static bool repair_failed(void *c)
{
    kf_stats s;
    kf_stats_get(c, &s, sizeof s);
    return s.repair_failures > 0;
}

/* ---- collecting over TLS */

/* The library: symbol validation (REST), history from 30 simulated minutes before the start
 * (REST klines) and the live stream (wss), verified with kf_config_set_ca_file; the store
 * equals the truth. */
static void test_library_collects_over_tls(void **state)
{
    (void)state;
    int port = start_tls_sim(certs.cert, (const char *const[]){"--speed", "60", NULL});
    char ws[128], rest[128], sink[600];
    snprintf(ws, sizeof ws, "wss://localhost:%d/market", port);
    snprintf(rest, sizeof rest, "https://localhost:%d", port);
    const char *db = tmp_path("library.db");
    snprintf(sink, sizeof sink, "sqlite:%s", db);
    kft_logcap *cap = calloc(1, sizeof *cap);
    assert_non_null(cap);
    kft_logcap_init(cap, false);
    kf_config *cfg = tls_config(ws, rest, certs.ca, KF_VALIDATE_REQUIRED, cap);
    int64_t from = SIM_START - 30 * MINUTE;
    assert_int_equal(kf_config_add_sink(cfg, sink), KF_OK);
    assert_int_equal(kf_config_set_backfill_from(cfg, from), KF_OK);
    kf_collector *c = kf_create(cfg, NULL, 0);
    kf_config_free(cfg);
    assert_non_null(c);
    kf_err e = kf_start(c);
    if (e != KF_OK)
        fail_msg("kf_start: %s: %s", kf_strerror(e), kf_errmsg(c));
    assert_true(kft_wait(is_connected, c, 10000));
    assert_true(kft_logcap_has(cap, "symbols validated", NULL));
    sleep_ms(valgrind() ? 12000 : 7000); /* 7 simulated minutes, more under valgrind */
    int64_t stop_at = sim_now(port);
    assert_int_equal(kf_stop(c), KF_OK);
    kf_stats s;
    kf_stats_get(c, &s, sizeof s);
    printf("# tls library: frames=%" PRIu64 " closed=%" PRIu64 " backfilled=%" PRIu64
           " rest_requests=%" PRIu64 " disconnects=%" PRIu64 " parse_errors=%" PRIu64 "\n",
           s.frames, s.closed, s.backfilled, s.rest_requests, s.disconnects, s.parse_errors);
    assert_true(s.frames > 0);           /* the live stream came through wss:// */
    assert_true(s.backfilled >= 2 * 30); /* the history came through https:// */
    assert_int_equal(s.parse_errors, 0);
    assert_int_equal(s.reconnects, 0);
    kf_free(c);
    free(cap);
    /* every candle from the history's start to a simulated minute before the stop */
    size_t n = assert_store_is_truth(port, db, from, stop_at - MINUTE, "library");
    assert_true(n >= 2 * (30 + 5) + 2 * 6);
}

/* The daemon: `klinefeed run --ws-url wss://… --rest-url https://… --ca-file CA`. */
static void test_daemon_collects_over_tls(void **state)
{
    (void)state;
    int port = start_tls_sim(certs.cert, (const char *const[]){"--speed", "60", NULL});
    char ws[128], rest[128], sink[600], from[32];
    snprintf(ws, sizeof ws, "wss://localhost:%d/market", port);
    snprintf(rest, sizeof rest, "https://localhost:%d", port);
    const char *db = tmp_path("daemon.db");
    snprintf(sink, sizeof sink, "sqlite:%s", db);
    int64_t from_ms = SIM_START - 20 * MINUTE;
    snprintf(from, sizeof from, "%" PRId64, from_ms);
    const char *log = tmp_path("daemon.log");
    pid_t pid = kft_cli_spawn((const char *const[]){"run",
                                                    "--symbols",
                                                    "BTCUSDT,ETHUSDT",
                                                    "--intervals",
                                                    "1m,5m",
                                                    "--ws-url",
                                                    ws,
                                                    "--rest-url",
                                                    rest,
                                                    "--ca-file",
                                                    certs.ca,
                                                    "--sink",
                                                    sink,
                                                    "--backfill-from",
                                                    from,
                                                    "--validate",
                                                    "required",
                                                    "--state-dir",
                                                    "none",
                                                    NULL},
                              NULL, tmp_path("daemon.out"), log, NULL, NULL);
    sleep_ms(valgrind() ? 12000 : 7000);
    int64_t stop_at = sim_now(port);
    kill(pid, SIGTERM);
    int code = kft_cli_wait(pid, 30000);
    char *text = slurp(log);
    if (code != 0)
        fail_msg("klinefeed run exited %d:\n%s", code, text);
    assert_non_null(strstr(text, "msg=\"symbols validated\""));
    assert_non_null(strstr(text, "msg=\"all streams subscribed\""));
    assert_non_null(strstr(text, "reconnects=0"));
    free(text);
    size_t n = assert_store_is_truth(port, db, from_ms, stop_at - MINUTE, "daemon");
    assert_true(n >= 2 * (20 + 4) + 2 * 6);
}

/* `klinefeed backfill --rest-url https://localhost:PORT --ca-file CA`: rows equal the truth. */
static void test_backfill_over_tls(void **state)
{
    (void)state;
    int port = start_tls_sim(certs.cert, NULL);
    char rest[128], sink[600], from[32];
    snprintf(rest, sizeof rest, "https://localhost:%d", port);
    const char *db = tmp_path("backfill.db");
    snprintf(sink, sizeof sink, "sqlite:%s", db);
    int64_t from_ms = SIM_START - 2 * 86400000LL;
    snprintf(from, sizeof from, "%" PRId64, from_ms);
    int64_t before = sim_now(port);
    pid_t pid = kft_cli_spawn((const char *const[]){"backfill", "--symbols", "BTCUSDT,ETHUSDT",
                                                    "--intervals", "1m,5m", "--from", from,
                                                    "--rest-url", rest, "--ca-file", certs.ca,
                                                    "--sink", sink, "--state-dir", "none", NULL},
                              NULL, tmp_path("backfill.out"), tmp_path("backfill.err"), NULL, NULL);
    int code = kft_cli_wait(pid, 240000);
    char *text = slurp(tmp_path("backfill.err"));
    if (code != 0)
        fail_msg("klinefeed backfill exited %d:\n%s", code, text);
    assert_non_null(strstr(text, "msg=\"backfill done\""));
    free(text);
    /* every candle closed before the run began: 2 days of 1m and 5m for both symbols */
    size_t n = assert_store_is_truth(port, db, from_ms, before, "backfill");
    assert_true(n >= 2 * (2 * 1440 + 2 * 288));
}

/* ---- refusals */

typedef struct refusal {
    const char *name;
    bool expired;     /* the simulator serves certs.expired instead of certs.cert */
    bool by_ip;       /* the client asks for 127.0.0.1, a name the certificate lacks */
    const char *ca;   /* the client's CA file; NULL: the system store */
    const char *ws;   /* OpenSSL's reason as the library's WebSocket names it */
    const char *curl; /* libcurl's words for it (REST) */
} refusal;

static refusal refusals[4];

static void refusals_init(void)
{
    /* SSL_set1_host sees an IP address and checks the certificate's IP entries: it has none */
    refusals[0] = (refusal){"name mismatch (127.0.0.1)",
                            false,
                            true,
                            certs.ca,
                            "certificate verification failed: IP address mismatch",
                            "no alternative certificate subject name matches target host name "
                            "'127.0.0.1'"};
    refusals[1] = (refusal){"unknown CA",
                            false,
                            false,
                            certs.other_ca,
                            "certificate verification failed: unable to get local issuer "
                            "certificate",
                            "SSL certificate problem: unable to get local issuer certificate"};
    refusals[2] = (refusal){"expired",
                            true,
                            false,
                            certs.ca,
                            "certificate verification failed: certificate has expired",
                            "SSL certificate problem: certificate has expired"};
    /* without a CA file: the system store, which does not hold the throw-away CA */
    refusals[3] = (refusal){"system store",
                            false,
                            false,
                            NULL,
                            "certificate verification failed: unable to get local issuer "
                            "certificate",
                            "SSL certificate problem: unable to get local issuer certificate"};
}

static void urls(const refusal *r, int port, char *ws, char *rest)
{
    const char *host = r->by_ip ? "127.0.0.1" : "localhost";
    snprintf(ws, 128, "wss://%s:%d/market", host, port);
    snprintf(rest, 128, "https://%s:%d", host, port);
}

/* kf_start with cfg fails with KF_ERR_TLS, its message holding every NULL-terminated needle. */
static void expect_start_tls_error(kf_config *cfg, const char *case_name, const char *needle, ...)
{
    kf_collector *c = kf_create(cfg, NULL, 0);
    assert_non_null(c);
    kf_err e = kf_start(c);
    const char *msg = kf_errmsg(c);
    printf("# tls refused (%s): %s\n", case_name, msg);
    if (e != KF_ERR_TLS)
        fail_msg("%s: kf_start returned %s (%s), not KF_ERR_TLS", case_name, kf_strerror(e), msg);
    va_list ap;
    va_start(ap, needle);
    for (const char *n = needle; n; n = va_arg(ap, const char *))
        if (!strstr(msg, n))
            fail_msg("%s: \"%s\" not in \"%s\"", case_name, n, msg);
    va_end(ap);
    assert_false(kf_running(c));
    kf_free(c);
}

/* The WebSocket: kf_start fails with KF_ERR_TLS naming OpenSSL's reason (no REST asked). */
static void test_websocket_refuses(void **state)
{
    (void)state;
    refusals_init();
    for (int k = 0; k < 4; k++) {
        const refusal *r = &refusals[k];
        int port = start_tls_sim(r->expired ? certs.expired : certs.cert, NULL);
        char ws[128], rest[128];
        urls(r, port, ws, rest);
        kf_config *cfg = tls_config(ws, rest, r->ca, KF_VALIDATE_OFF, NULL);
        kf_config_set_backfill(cfg, false);
        char want_url[160];
        snprintf(want_url, sizeof want_url, "%s/ws", ws);
        expect_start_tls_error(cfg, r->name, want_url, r->ws, NULL);
        kf_config_free(cfg);
    }
}

/* REST: symbol validation (required) fails with KF_ERR_TLS naming the reason, before any
 * WebSocket is opened. */
static void test_rest_validation_refuses(void **state)
{
    (void)state;
    refusals_init();
    for (int k = 0; k < 4; k++) {
        const refusal *r = &refusals[k];
        int port = start_tls_sim(r->expired ? certs.expired : certs.cert, NULL);
        char ws[128], rest[128];
        urls(r, port, ws, rest);
        kf_config *cfg = tls_config(ws, rest, r->ca, KF_VALIDATE_REQUIRED, NULL);
        char want_url[160];
        snprintf(want_url, sizeof want_url, "GET %s/fapi/v1/exchangeInfo", rest);
        static kft_sim_state st;
        assert_true(kft_sim_state_get(port, &st));
        long ws_before = st.connections_total;
        expect_start_tls_error(cfg, r->name, "symbols could not be validated", want_url, r->curl,
                               NULL);
        assert_true(kft_sim_state_get(port, &st));
        assert_int_equal(st.connections_total, ws_before); /* no WebSocket was upgraded */
        kf_config_free(cfg);
    }
}

/* The same CA file serves both: the WebSocket verified with it while REST is refused (REST by
 * its IP address), and REST verified with it while the WebSocket is refused. */
static void test_ca_file_applies_to_both(void **state)
{
    (void)state;
    int port = start_tls_sim(certs.cert, NULL);
    char good_ws[128], good_rest[128], ip_ws[128], ip_rest[128];
    snprintf(good_ws, sizeof good_ws, "wss://localhost:%d/market", port);
    snprintf(good_rest, sizeof good_rest, "https://localhost:%d", port);
    snprintf(ip_ws, sizeof ip_ws, "wss://127.0.0.1:%d/market", port);
    snprintf(ip_rest, sizeof ip_rest, "https://127.0.0.1:%d", port);

    /* REST by name with the CA file: validated; the WebSocket by IP: refused */
    kft_logcap *cap = calloc(1, sizeof *cap);
    assert_non_null(cap);
    kft_logcap_init(cap, false);
    kf_config *cfg = tls_config(ip_ws, good_rest, certs.ca, KF_VALIDATE_REQUIRED, cap);
    kf_config_set_backfill(cfg, false);
    expect_start_tls_error(cfg, "ws by IP, rest by name", "IP address mismatch", NULL);
    assert_true(kft_logcap_has(cap, "symbols validated", NULL));
    kf_config_free(cfg);
    free(cap);

    /* the WebSocket by name with the CA file: connected; REST (validation off, the repair
     * worker) by IP: refused, named in the log, and no candle from it */
    cap = calloc(1, sizeof *cap);
    assert_non_null(cap);
    kft_logcap_init(cap, false);
    cfg = tls_config(good_ws, ip_rest, certs.ca, KF_VALIDATE_OFF, cap);
    kf_config_set_backfill_from(cfg, SIM_START - 10 * MINUTE);
    kf_collector *c = kf_create(cfg, NULL, 0);
    kf_config_free(cfg);
    assert_non_null(c);
    kf_err e = kf_start(c);
    if (e != KF_OK)
        fail_msg("kf_start: %s: %s", kf_strerror(e), kf_errmsg(c));
    assert_true(kft_wait(is_connected, c, 10000));
    /* counted on the I/O thread once the REST thread's answer is applied */
    assert_true(kft_wait(repair_failed, c, valgrind() ? 30000 : 10000));
    assert_true(kft_logcap_has(cap, "REST repair failed", "no alternative certificate subject name",
                               "127.0.0.1", NULL));
    kf_stats s;
    kf_stats_get(c, &s, sizeof s);
    assert_int_equal(s.backfilled, 0);
    kf_stop(c);
    kf_free(c);
    free(cap);
}

/* `klinefeed backfill` over https: exit 1 naming the reason, for each refusal. */
static void test_backfill_refuses(void **state)
{
    (void)state;
    refusals_init();
    for (int k = 0; k < 4; k++) {
        const refusal *r = &refusals[k];
        int port = start_tls_sim(r->expired ? certs.expired : certs.cert, NULL);
        char ws[128], rest[128], sink[600], from[32];
        urls(r, port, ws, rest);
        snprintf(sink, sizeof sink, "sqlite:%s", tmp_path("refused.db"));
        snprintf(from, sizeof from, "%" PRId64, (int64_t)(SIM_START - 86400000LL));
        const char *args[] = {"backfill", "--symbols",
                              "BTCUSDT",  "--intervals",
                              "1m",       "--from",
                              from,       "--rest-url",
                              rest,       "--sink",
                              sink,       "--state-dir",
                              "none",     r->ca ? "--ca-file" : NULL,
                              r->ca,      NULL};
        pid_t pid =
            kft_cli_spawn(args, NULL, tmp_path("refused.out"), tmp_path("refused.err"), NULL, NULL);
        int code = kft_cli_wait(pid, 60000);
        char *text = slurp(tmp_path("refused.err"));
        printf("# tls backfill refused (%s): exit %d\n", r->name, code);
        if (code != 1 || !strstr(text, r->curl))
            fail_msg("%s: exit %d, \"%s\" expected in:\n%s", r->name, code, r->curl, text);
        free(text);
    }
}

/* `klinefeed run`: exit 1 naming the reason, WebSocket (validation off) and REST (required). */
static void test_daemon_refuses(void **state)
{
    (void)state;
    refusals_init();
    for (int k = 0; k < 4; k++) {
        const refusal *r = &refusals[k];
        int port = start_tls_sim(r->expired ? certs.expired : certs.cert, NULL);
        char ws[128], rest[128], sink[600];
        urls(r, port, ws, rest);
        snprintf(sink, sizeof sink, "sqlite:%s", tmp_path("refused-run.db"));
        for (int rest_side = 0; rest_side < 2; rest_side++) {
            const char *args[] = {"run",
                                  "--symbols",
                                  "BTCUSDT",
                                  "--intervals",
                                  "1m",
                                  "--ws-url",
                                  ws,
                                  "--rest-url",
                                  rest,
                                  "--sink",
                                  sink,
                                  "--state-dir",
                                  "none",
                                  "--validate",
                                  rest_side ? "required" : "off",
                                  r->ca ? "--ca-file" : NULL,
                                  r->ca,
                                  NULL};
            pid_t pid = kft_cli_spawn(args, NULL, tmp_path("refused-run.out"),
                                      tmp_path("refused-run.err"), NULL, NULL);
            int code = kft_cli_wait(pid, 60000);
            char *text = slurp(tmp_path("refused-run.err"));
            const char *want = rest_side ? r->curl : r->ws;
            if (code != 1 || !strstr(text, "start failed") || !strstr(text, want))
                fail_msg("%s (%s): exit %d, \"%s\" expected in:\n%s", r->name,
                         rest_side ? "REST" : "WebSocket", code, want, text);
            free(text);
        }
    }
}

/* The server name (SNI) the simulator saw on WebSocket connection id (1, 2, ...): into out,
 * "null" when the client sent none. */
static void sim_sni(int port, int id, char *out, size_t cap)
{
    static char st[1 << 16];
    assert_int_equal(kft_http_get(port, "/sim/state", st, sizeof st), 200);
    char key[32];
    snprintf(key, sizeof key, "{\"id\":%d,", id);
    const char *p = strstr(st, key);
    assert_non_null(p);
    p = strstr(p, "\"sni\":");
    assert_non_null(p);
    p += 6;
    size_t n = strcspn(p, ",}");
    snprintf(out, cap, "%.*s", (int)n, p);
}

/* SNI carries the host name, never an address literal (RFC 6066): by name "localhost" is sent;
 * by 127.0.0.1 (verification off: the only way through with this certificate) nothing is. */
static void test_sni_names_only(void **state)
{
    (void)state;
    int port = start_tls_sim(certs.cert, NULL);
    const char *hosts[] = {"localhost", "127.0.0.1"};
    const char *want[] = {"\"localhost\"", "null"};
    for (int k = 0; k < 2; k++) {
        char ws[128], rest[128], sni[128];
        snprintf(ws, sizeof ws, "wss://%s:%d/market", hosts[k], port);
        snprintf(rest, sizeof rest, "https://%s:%d", hosts[k], port);
        kf_config *cfg = tls_config(ws, rest, k ? NULL : certs.ca, KF_VALIDATE_OFF, NULL);
        kf_config_set_backfill(cfg, false);
        kf_config_set_log(cfg, NULL, NULL, KF_LOG_ERROR);
        if (k)
            assert_int_equal(kf_config_set_tls_verify(cfg, false), KF_OK);
        kf_collector *c = kf_create(cfg, NULL, 0);
        kf_config_free(cfg);
        assert_non_null(c);
        kf_err e = kf_start(c);
        if (e != KF_OK)
            fail_msg("%s: kf_start: %s: %s", hosts[k], kf_strerror(e), kf_errmsg(c));
        sim_sni(port, k + 1, sni, sizeof sni);
        printf("# tls sni: by %s the simulator saw %s\n", hosts[k], sni);
        assert_string_equal(sni, want[k]);
        kf_stop(c);
        kf_free(c);
    }
}

/* ---- the simulator's faults and flood through TLS */

/* Resets, stalls, server closes, refusal periods, garbage frames, dropped closing updates and
 * REST 500s for a while, then calm: the store catches up with the truth. */
static void test_faults_over_tls(void **state)
{
    (void)state;
    const int faults_s = valgrind() ? 20 : 15;
    char stop_ms[32];
    snprintf(stop_ms, sizeof stop_ms, "%d", faults_s * 1000);
    int port = start_tls_sim(certs.cert, (const char *const[]){"--speed",
                                                               "120",
                                                               "--faults-start-ms",
                                                               "1500",
                                                               "--faults-stop-ms",
                                                               stop_ms,
                                                               "--fault-seed",
                                                               "11",
                                                               "--fault-reset-every",
                                                               "2",
                                                               "--fault-stall-every",
                                                               "5",
                                                               "--fault-close-every",
                                                               "4",
                                                               "--fault-garbage-every",
                                                               "0.3",
                                                               "--fault-refuse-every",
                                                               "7",
                                                               "--refuse-ms",
                                                               "800",
                                                               "--drop-close-rate",
                                                               "0.1",
                                                               "--rest-500-rate",
                                                               "0.2",
                                                               NULL});
    char ws[128], rest[128], sink[600];
    snprintf(ws, sizeof ws, "wss://localhost:%d/market", port);
    snprintf(rest, sizeof rest, "https://localhost:%d", port);
    const char *db = tmp_path("faults.db");
    snprintf(sink, sizeof sink, "sqlite:%s", db);
    kf_config *cfg = tls_config(ws, rest, certs.ca, KF_VALIDATE_REQUIRED, NULL);
    kf_config_set_log(cfg, NULL, NULL, KF_LOG_WARN);
    assert_int_equal(kf_config_add_sink(cfg, sink), KF_OK);
    kf_config_set_liveness(cfg, 300, 1500);
    kf_config_set_reconnect_backoff(cfg, 100, 1000);
    kf_collector *c = kf_create(cfg, NULL, 0);
    kf_config_free(cfg);
    assert_non_null(c);
    kf_err e = kf_start(c);
    if (e != KF_OK)
        fail_msg("kf_start: %s: %s", kf_strerror(e), kf_errmsg(c));
    int64_t started = kft_now_ms();
    sleep_ms(faults_s * 1000 + 1000);
    /* calm: until the store holds every candle closed 2 simulated minutes ago */
    kft_cmp cmp;
    char err[256];
    int calm_s = 0;
    for (; calm_s < 40; calm_s++) {
        int64_t now = sim_now(port);
        if (kft_compare_store(port, db, symbols, intervals, KFT_CMP_FROM_STORE, now - 2 * MINUTE,
                              NULL, 0, &cmp, err, sizeof err) == 0 &&
            cmp.missing + cmp.extra + cmp.differing == 0)
            break;
        sleep_ms(1000);
    }
    int64_t stop_at = sim_now(port);
    assert_int_equal(kf_stop(c), KF_OK);
    kf_stats s;
    kf_stats_get(c, &s, sizeof s);
    static char sim_state[1 << 16];
    assert_int_equal(kft_http_get(port, "/sim/state", sim_state, sizeof sim_state), 200);
    const char *faults = strstr(sim_state, "\"faults\":");
    assert_non_null(faults);
    printf("# tls faults: %d s of faults, caught up %d s later (%.1f s in all); sim %.*s\n",
           faults_s, calm_s, (double)(kft_now_ms() - started) / 1000,
           (int)(strchr(faults, '}') - faults + 1), faults);
    printf("# tls faults: reconnects=%" PRIu64 " lost_reset=%" PRIu64 " lost_server_close=%" PRIu64
           " lost_liveness=%" PRIu64 " parse_errors=%" PRIu64 " backfilled=%" PRIu64
           " repair_failures=%" PRIu64 "\n",
           s.reconnects, s.lost_reset, s.lost_server_close, s.lost_liveness, s.parse_errors,
           s.backfilled, s.repair_failures);
    assert_true(s.reconnects >= 3);   /* connections were lost and made again over TLS */
    assert_true(s.parse_errors >= 1); /* garbage frames came through TLS and were skipped */
    kf_free(c);
    size_t n = assert_store_is_truth(port, db, KFT_CMP_FROM_STORE, stop_at - 2 * MINUTE, "faults");
    assert_true(n >= 2 * 20);
}

typedef struct flood_count {
    _Atomic uint64_t klines;
} flood_count;

static void on_flood_kline(void *ud, const kf_kline *k)
{
    (void)k;
    flood_count *f = ud;
    atomic_fetch_add_explicit(&f->klines, 1, memory_order_relaxed);
}

static bool flood_done(void *arg)
{
    void **a = arg;
    return atomic_load(&((flood_count *)a[0])->klines) >= *(uint64_t *)a[1];
}

/* --flood N through TLS: every frame arrives and decodes, on one connection. No update
 * follows the flood (--update-ms of a day): its last frames must not wait for more bytes
 * on the socket (records OpenSSL read ahead are invisible to poll). */
static void test_flood_over_tls(void **state)
{
    (void)state;
    uint64_t n = valgrind() ? 20000 : 300000;
    char flood[32];
    snprintf(flood, sizeof flood, "%" PRIu64, n);
    int port = start_tls_sim(
        certs.cert, (const char *const[]){"--flood", flood, "--update-ms", "86400000", NULL});
    char ws[128];
    snprintf(ws, sizeof ws, "wss://localhost:%d/market", port);
    kf_config *cfg = kf_config_new();
    kf_config_set_ws_url(cfg, ws);
    kf_config_set_ca_file(cfg, certs.ca);
    kf_config_add_symbols(cfg, "BTCUSDT");
    kf_config_add_intervals(cfg, "1m");
    kf_config_set_validate(cfg, KF_VALIDATE_OFF);
    kf_config_set_backfill(cfg, false);
    kf_config_set_log(cfg, NULL, NULL, KF_LOG_WARN);
    flood_count fc;
    atomic_init(&fc.klines, 0);
    kf_config_on_kline(cfg, on_flood_kline, &fc);
    kf_collector *c = kf_create(cfg, NULL, 0);
    kf_config_free(cfg);
    assert_non_null(c);
    int64_t t0 = kft_now_ms();
    assert_int_equal(kf_start(c), KF_OK);
    void *arg[2] = {&fc, &n};
    bool all = kft_wait(flood_done, arg, valgrind() ? 120000 : 30000);
    int64_t ms = kft_now_ms() - t0;
    kf_stats s;
    kf_stats_get(c, &s, sizeof s);
    kf_stop(c);
    kf_free(c);
    printf("# tls flood: %" PRIu64 " klines of %" PRIu64 " in %" PRId64 " ms, parse_errors=%" PRIu64
           " disconnects=%" PRIu64 "\n",
           (uint64_t)atomic_load(&fc.klines), n, ms, s.parse_errors, s.disconnects);
    assert_true(all);
    assert_int_equal(s.parse_errors, 0);
    assert_int_equal(s.reconnects, 0);
}

/* ---- many small records, then silence */

#define BURST 200

typedef struct burst_server {
    int lfd, port;
    pthread_t th;
    atomic_bool stop;
    bool sent; /* every record written */
} burst_server;

/* One TLS WebSocket client: the upgrade answered, then BURST kline frames each in its own TLS
 * record, sent at once (TCP_CORK), then nothing until told to stop. */
static void *burst_main(void *arg)
{
    burst_server *b = arg;
    int fd = accept(b->lfd, NULL, NULL);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    SSL *ssl = NULL;
    if (fd < 0 || !ctx || SSL_CTX_use_certificate_chain_file(ctx, certs.cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, certs.key, SSL_FILETYPE_PEM) != 1)
        goto out;
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1)
        goto out;
    char req[4096] = "", key[64] = "", resp[512], accept_key[29];
    size_t n = 0;
    while (n + 1 < sizeof req && !strstr(req, "\r\n\r\n")) {
        int r = SSL_read(ssl, req + n, (int)(sizeof req - 1 - n));
        if (r <= 0)
            goto out;
        n += (size_t)r;
        req[n] = 0;
    }
    const char *k = strstr(req, "Sec-WebSocket-Key: ");
    if (k)
        sscanf(k + 19, "%63[^\r]", key);
    kf__ws_accept_for(key, accept_key);
    snprintf(resp, sizeof resp,
             "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Accept: %s\r\n\r\n",
             accept_key);
    SSL_write(ssl, resp, (int)strlen(resp));
    sleep_ms(300); /* the client is open and idle: the burst comes on a quiet socket */
    int one = 1, zero = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one);
    for (int i = 0; i < BURST; i++) {
        char ev[512];
        uint8_t frame[520];
        int len =
            snprintf(ev, sizeof ev,
                     "{\"e\":\"kline\",\"E\":%lld,\"s\":\"BTCUSDT\",\"k\":{\"t\":%lld,\"T\":%lld,"
                     "\"s\":\"BTCUSDT\",\"i\":\"1m\",\"f\":%d,\"L\":%d,\"o\":\"100.0\","
                     "\"c\":\"100.%d\",\"h\":\"101.0\",\"l\":\"99.0\",\"v\":\"1.5\",\"n\":2,"
                     "\"x\":false,\"q\":\"150.0\",\"V\":\"0.5\",\"Q\":\"50.0\",\"B\":\"0\"}}",
                     (long long)SIM_START + i, (long long)SIM_START,
                     (long long)(SIM_START + MINUTE - 1), 2 * i + 1, 2 * i + 2, i);
        frame[0] = 0x81;
        frame[1] = 126;
        frame[2] = (uint8_t)(len >> 8);
        frame[3] = (uint8_t)len;
        memcpy(frame + 4, ev, (size_t)len);
        if (SSL_write(ssl, frame, len + 4) != len + 4) /* one record each */
            goto out;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
    b->sent = true;
    while (!atomic_load(&b->stop))
        sleep_ms(10);
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (fd >= 0)
        close(fd);
    return NULL;
}

static bool burst_all(void *arg)
{
    return atomic_load(&((flood_count *)arg)->klines) >= BURST;
}

/* A burst of small records that the client reads ahead in one go, then a silent socket: every
 * frame is delivered at once, not when more bytes happen to arrive. */
static void test_burst_then_silence(void **state)
{
    (void)state;
    burst_server b = {.lfd = -1};
    atomic_init(&b.stop, false);
    b.lfd = kft_tcp_listen(1, &b.port);
    assert_true(b.lfd >= 0);
    assert_int_equal(pthread_create(&b.th, NULL, burst_main, &b), 0);
    char ws[128];
    snprintf(ws, sizeof ws, "wss://localhost:%d/market", b.port);
    kf_config *cfg = kf_config_new();
    kf_config_set_ws_url(cfg, ws);
    kf_config_set_ca_file(cfg, certs.ca);
    kf_config_add_symbols(cfg, "BTCUSDT");
    kf_config_add_intervals(cfg, "1m");
    kf_config_set_validate(cfg, KF_VALIDATE_OFF);
    kf_config_set_backfill(cfg, false);
    kf_config_set_log(cfg, NULL, NULL, KF_LOG_ERROR);
    flood_count fc;
    atomic_init(&fc.klines, 0);
    kf_config_on_kline(cfg, on_flood_kline, &fc);
    kf_collector *c = kf_create(cfg, NULL, 0);
    kf_config_free(cfg);
    assert_non_null(c);
    kf_err e = kf_start(c);
    bool all = e == KF_OK && kft_wait(burst_all, &fc, valgrind() ? 10000 : 3000);
    uint64_t got = atomic_load(&fc.klines);
    kf_stop(c);
    kf_free(c);
    atomic_store(&b.stop, true);
    pthread_join(b.th, NULL);
    close(b.lfd);
    printf("# tls burst: %" PRIu64 " of %d klines sent in as many records, then silence\n", got,
           BURST);
    assert_int_equal(e, KF_OK);
    assert_true(b.sent);
    assert_true(all);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/kf_test_tls.XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    return kft_tls_make(tmpdir, &certs) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_library_collects_over_tls, tls_teardown),
        cmocka_unit_test_teardown(test_daemon_collects_over_tls, tls_teardown),
        cmocka_unit_test_teardown(test_backfill_over_tls, tls_teardown),
        cmocka_unit_test_teardown(test_websocket_refuses, tls_teardown),
        cmocka_unit_test_teardown(test_rest_validation_refuses, tls_teardown),
        cmocka_unit_test_teardown(test_ca_file_applies_to_both, tls_teardown),
        cmocka_unit_test_teardown(test_sni_names_only, tls_teardown),
        cmocka_unit_test_teardown(test_backfill_refuses, tls_teardown),
        cmocka_unit_test_teardown(test_daemon_refuses, tls_teardown),
        cmocka_unit_test_teardown(test_faults_over_tls, tls_teardown),
        cmocka_unit_test_teardown(test_flood_over_tls, tls_teardown),
        cmocka_unit_test(test_burst_then_silence),
    };
    return cmocka_run_group_tests_name("tls", tests, group_setup, group_teardown);
}
