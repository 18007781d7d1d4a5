/*
 * The symbol check on its own: kf__validate_symbols with only its options (no kf_collector)
 * against klinefeed-sim's exchangeInfo. Every refused symbol is named; one request is counted;
 * an unreachable exchange fails the check only when it is required.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "collector/validate.h"
#include "sim_proc.h"

static char symbols[3][KF_SYMBOL_MAX + 1] = {"BTCUSDT", "NOPEUSDT", "OLDUSDT"};

static kf__validate_opts opts(const char *base, kf_validate mode, size_t n, kf__logger *log,
                              _Atomic uint64_t *requests)
{
    return (kf__validate_opts){
        .mode = mode,
        .symbols = (const char(*)[KF_SYMBOL_MAX + 1]) symbols,
        .nsymbols = n,
        .rest_base = base,
        .timeout_ms = 3000,
        .log = log,
        .rest_requests = requests,
    };
}

static void test_validate_names_every_refused_symbol(void **state)
{
    (void)state;
    kft_sim *sim = kft_sim_run("--symbols", "BTCUSDT,ETHUSDT", "--delisted", "OLDUSDT", NULL);
    char base[64], err[1024] = "";
    snprintf(base, sizeof base, "http://127.0.0.1:%d", kft_sim_port(sim));
    kf__logger log;
    kf__logger_init(&log, NULL, NULL, KF_LOG_ERROR);
    _Atomic uint64_t requests = 0;

    kf__validate_opts o = opts(base, KF_VALIDATE_REQUIRED, 1, &log, &requests);
    assert_int_equal(kf__validate_symbols(&o, err, sizeof err), KF_OK);
    assert_int_equal(atomic_load(&requests), 1);

    o = opts(base, KF_VALIDATE_REQUIRED, 3, &log, &requests);
    err[0] = 0;
    assert_int_equal(kf__validate_symbols(&o, err, sizeof err), KF_ERR_SYMBOL);
    printf("%s\n", err);
    assert_non_null(strstr(err, "\"NOPEUSDT\""));
    assert_non_null(strstr(err, "not listed"));
    assert_non_null(strstr(err, "\"OLDUSDT\" (SETTLING)"));
    assert_null(strstr(err, "BTCUSDT"));
    assert_int_equal(atomic_load(&requests), 2);

    o = opts(base, KF_VALIDATE_OFF, 3, &log, &requests); /* not asked at all */
    assert_int_equal(kf__validate_symbols(&o, err, sizeof err), KF_OK);
    assert_int_equal(atomic_load(&requests), 2);
    kft_sim_teardown(NULL);

    /* the exchange gone: required fails naming why, if-reachable accepts */
    o = opts(base, KF_VALIDATE_REQUIRED, 3, &log, &requests);
    err[0] = 0;
    assert_int_equal(kf__validate_symbols(&o, err, sizeof err), KF_ERR_CONNECT); /* refused */
    assert_non_null(strstr(err, "symbols could not be validated"));
    o = opts(base, KF_VALIDATE_IF_REACHABLE, 3, &log, &requests);
    assert_int_equal(kf__validate_symbols(&o, err, sizeof err), KF_OK);
    kf__logger_destroy(&log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_validate_names_every_refused_symbol, kft_sim_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
