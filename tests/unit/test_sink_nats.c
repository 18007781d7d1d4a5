/*
 * The nats:// sink without a server: the spec is found, its options are checked before any
 * connection (a bad one named), an unreachable server fails the open naming the cause, and a
 * secret in the spec (USER:PASS@, TOKEN@, user=/pass=/token= values) never reaches a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "sink/sink.h"

static void test_lookup(void **state)
{
    (void)state;
    const char *t = NULL;
    assert_ptr_equal(kf__sink_lookup("nats://127.0.0.1:4222", &t), &kf__sink_nats);
    assert_string_equal(t, "//127.0.0.1:4222");
    char err[256];
    assert_int_equal(kf_sink_spec_check("nats://h:1?stream=X", err, sizeof err), KF_OK);
}

static void test_mask(void **state)
{
    (void)state;
    char out[256];
    kf__sink_mask("nats://alice:s3cret@127.0.0.1:4222?stream=K", out, sizeof out);
    assert_string_equal(out, "nats://***@127.0.0.1:4222?stream=K");
    kf__sink_mask("nats://tok3n@h:1", out, sizeof out);
    assert_string_equal(out, "nats://***@h:1");
    kf__sink_mask("nats://h:1?stream=K&token=abc&live=1", out, sizeof out);
    assert_string_equal(out, "nats://h:1?stream=K&token=***&live=1");
    kf__sink_mask("nats://h:1", out, sizeof out);
    assert_string_equal(out, "nats://h:1");
    kf__sink_mask("sqlite:/tmp/a@b.db", out, sizeof out); /* other sinks: unchanged */
    assert_string_equal(out, "sqlite:/tmp/a@b.db");
}

/* open() refuses before connecting: nothing listens on 127.0.0.1:1. */
static void expect_refused(const char *target, const char *needle)
{
    void *st = NULL;
    char err[512] = "";
    assert_int_not_equal(kf__sink_nats.open(target, &st, err, sizeof err), KF_OK);
    assert_null(st);
    if (!strstr(err, needle)) {
        fprintf(stderr, "open(%s): \"%s\" lacks \"%s\"\n", target, err, needle);
        fail();
    }
    assert_null(strstr(err, "s3cret"));
}

static void test_bad_options_named(void **state)
{
    (void)state;
    expect_refused("//127.0.0.1:1?bogus=1", "unknown option \"bogus\"");
    expect_refused("//127.0.0.1:1?duplicates=xx", "option duplicates");
    expect_refused("//127.0.0.1:1?duplicates=0", "option duplicates");
    expect_refused("//127.0.0.1:1?retention=forever", "option retention");
    expect_refused("//127.0.0.1:1?stream=a.b", "option stream");
    expect_refused("//127.0.0.1:1?prefix=a..b", "option prefix");
    expect_refused("//127.0.0.1:1?live=2", "option live");
    expect_refused("//127.0.0.1:1?timeout=0", "option timeout");
    expect_refused("//127.0.0.1:1?stream", "has no value");
    expect_refused("//127.0.0.1:1?duplicates=10m&max_age=1m", "duplicates is longer than max_age");
    expect_refused("//", "no HOST:PORT");
}

static void test_unreachable_named_without_secret(void **state)
{
    (void)state;
    expect_refused("//alice:s3cret@127.0.0.1:1?stream=K", "connect");
    expect_refused("//alice:s3cret@127.0.0.1:1?stream=K", "nats://***@127.0.0.1:1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_bad_options_named),
        cmocka_unit_test(test_unreachable_named_without_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
