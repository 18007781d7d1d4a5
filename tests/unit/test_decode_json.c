/* The JSON cursor (decode/json.h) on REST-shaped bodies and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode/json.h"

static const char EXCHANGE_INFO[] =
    "{\"timezone\":\"UTC\",\"serverTime\":1626992741000,\"futuresType\":\"U_MARGINED\","
    "\"rateLimits\":[{\"rateLimitType\":\"REQUEST_WEIGHT\",\"interval\":\"MINUTE\","
    "\"intervalNum\":1,\"limit\":2400},{\"rateLimitType\":\"ORDERS\",\"interval\":\"MINUTE\","
    "\"intervalNum\":1,\"limit\":1200}],\"exchangeFilters\":[],\"assets\":[{\"asset\":\"USDT\","
    "\"marginAvailable\":true,\"autoAssetExchange\":\"-10000\"}],"
    "\"symbols\":[{\"symbol\":\"BTCUSDT\",\"pair\":\"BTCUSDT\",\"contractType\":\"PERPETUAL\","
    "\"deliveryDate\":4133404800000,\"status\":\"TRADING\",\"pricePrecision\":2,"
    "\"filters\":[{\"filterType\":\"PRICE_FILTER\",\"maxPrice\":\"4529764\",\"tickSize\":"
    "\"0.10\"},{\"filterType\":\"LOT_SIZE\",\"stepSize\":\"0.001\"}],\"orderTypes\":[\"LIMIT\","
    "\"MARKET\"],\"liquidationFee\":\"0.012500\",\"x\":{\"deep\":[[1],[2,[3]]]}},"
    "{\"symbol\":\"BTCUSDT_261225\",\"status\":\"TRADING\",\"contractType\":\"CURRENT_QUARTER\"},"
    "{\"status\":\"SETTLING\",\"symbol\":\"\\u5e01\\u5b89USDT\"},"
    "{\"symbol\":\"OLDUSDT\",\"status\":\"CLOSE\"}]}";

typedef struct sym {
    char name[64];
    char status[32];
} sym;

static size_t parse_exchange_info(const char *body, size_t len, sym *out, size_t cap,
                                  int64_t *weight_limit, const char **err)
{
    kf__json j;
    kf__json_span key, v;
    size_t n = 0;
    *weight_limit = -1;
    kf__json_init(&j, body, len);
    if (kf__json_enter_object(&j))
        while (kf__json_next_key(&j, &key)) {
            if (kf__json_key_eq(&key, "symbols")) {
                if (!kf__json_enter_array(&j))
                    break;
                while (kf__json_next_elem(&j)) {
                    if (!kf__json_enter_object(&j))
                        break;
                    sym s = {"", ""};
                    while (kf__json_next_key(&j, &key)) {
                        if (kf__json_key_eq(&key, "symbol") && kf__json_read_string(&j, &v))
                            kf__json_unescape(v.p, v.len, s.name, sizeof s.name);
                        else if (kf__json_key_eq(&key, "status") && kf__json_read_string(&j, &v))
                            kf__json_unescape(v.p, v.len, s.status, sizeof s.status);
                        else
                            kf__json_skip_value(&j, NULL);
                    }
                    if (n < cap && kf__json_ok(&j))
                        out[n++] = s;
                }
            } else if (kf__json_key_eq(&key, "rateLimits")) {
                if (!kf__json_enter_array(&j))
                    break;
                while (kf__json_next_elem(&j)) {
                    if (!kf__json_enter_object(&j))
                        break;
                    bool weight = false;
                    int64_t limit = -1;
                    while (kf__json_next_key(&j, &key)) {
                        if (kf__json_key_eq(&key, "rateLimitType")) {
                            kf__json_read_string(&j, &v);
                            weight = v.len == 14 && !memcmp(v.p, "REQUEST_WEIGHT", 14);
                        } else if (kf__json_key_eq(&key, "limit")) {
                            kf__json_read_i64(&j, &limit);
                        } else {
                            kf__json_skip_value(&j, NULL);
                        }
                    }
                    if (weight)
                        *weight_limit = limit;
                }
            } else {
                kf__json_skip_value(&j, NULL);
            }
        }
    bool ok = kf__json_finish(&j);
    *err = j.err;
    return ok ? n : (size_t)-1;
}

static void test_exchange_info(void **state)
{
    (void)state;
    sym s[8];
    int64_t lim;
    const char *err;
    size_t n = parse_exchange_info(EXCHANGE_INFO, strlen(EXCHANGE_INFO), s, 8, &lim, &err);
    assert_int_equal(n, 4);
    assert_null(err);
    assert_true(lim == 2400);
    assert_string_equal(s[0].name, "BTCUSDT");
    assert_string_equal(s[0].status, "TRADING");
    assert_string_equal(s[1].name, "BTCUSDT_261225");
    assert_string_equal(s[2].name, "\xe5\xb8\x81\xe5\xae\x89USDT");
    assert_string_equal(s[2].status, "SETTLING");
    assert_string_equal(s[3].status, "CLOSE");
    /* every truncation fails, from an exact-size buffer */
    size_t len = strlen(EXCHANGE_INFO);
    for (size_t cut = 0; cut < len; cut++) {
        char *c = malloc(cut ? cut : 1);
        memcpy(c, EXCHANGE_INFO, cut);
        assert_int_equal(parse_exchange_info(c, cut, s, 8, &lim, &err), (size_t)-1);
        assert_non_null(err);
        free(c);
    }
}

static void test_klines_rows(void **state)
{
    (void)state;
    const char *body =
        "[[1626992700000,\"1.01000\",\"1.01100\",\"1.01000\",\"1.01100\",\"3917\",1626992759999,"
        "\"3957.89900\",48,\"1729\",\"1748.01900\",\"0\"],\n"
        " [1626992760000,\"1.01100\",\"1.02\",\"1.0\",\"1.01\",\"0\",1626992819999,\"0\",0,\"0\","
        "\"0\",\"0\"]]";
    kf__json j;
    kf__json_init(&j, body, strlen(body));
    int rows = 0;
    assert_true(kf__json_enter_array(&j));
    while (kf__json_next_elem(&j)) {
        int64_t t, T, n;
        kf_dec o, h, l, c, v, q, V, Q;
        assert_true(kf__json_enter_array(&j));
        assert_true(kf__json_next_elem(&j) && kf__json_read_i64(&j, &t));
        assert_true(kf__json_next_elem(&j) && kf__json_read_dec(&j, &o));
        assert_true(kf__json_next_elem(&j) && kf__json_read_dec(&j, &h));
        assert_true(kf__json_next_elem(&j) && kf__json_read_dec(&j, &l));
        assert_true(kf__json_next_elem(&j) && kf__json_read_dec(&j, &c));
        assert_true(kf__json_next_elem(&j) && kf__json_read_dec(&j, &v));
        assert_true(kf__json_next_elem(&j) && kf__json_read_i64(&j, &T));
        assert_true(kf__json_next_elem(&j) && kf__json_read_dec(&j, &q));
        assert_true(kf__json_next_elem(&j) && kf__json_read_i64(&j, &n));
        assert_true(kf__json_next_elem(&j) && kf__json_read_dec(&j, &V));
        assert_true(kf__json_next_elem(&j) && kf__json_read_dec(&j, &Q));
        assert_true(kf__json_leave(&j)); /* ignore the rest ("0") */
        if (rows == 0) {
            assert_true(t == 1626992700000LL && T == 1626992759999LL && n == 48);
            assert_true(o.mant == 101000 && o.scale == 5);
            assert_true(q.mant == 395789900 && q.scale == 5);
            assert_true(Q.mant == 174801900 && V.mant == 1729);
        } else {
            assert_true(h.mant == 102 && h.scale == 2 && l.mant == 10 && l.scale == 1);
            assert_true(n == 0 && v.mant == 0);
        }
        (void)c;
        rows++;
    }
    assert_true(kf__json_finish(&j));
    assert_int_equal(rows, 2);
    /* empty array */
    kf__json_init(&j, " [ ] ", 5);
    assert_true(kf__json_enter_array(&j));
    assert_false(kf__json_next_elem(&j));
    assert_true(kf__json_finish(&j));
}

static void test_server_time(void **state)
{
    (void)state;
    kf__json j;
    kf__json_span key;
    int64_t t = 0;
    const char *body = "{\"serverTime\":1626992741000}";
    kf__json_init(&j, body, strlen(body));
    assert_true(kf__json_enter_object(&j));
    assert_true(kf__json_next_key(&j, &key));
    assert_true(kf__json_key_eq(&key, "serverTime"));
    assert_true(kf__json_read_i64(&j, &t));
    assert_false(kf__json_next_key(&j, &key));
    assert_true(kf__json_finish(&j));
    assert_true(t == 1626992741000LL);
    /* REST error body */
    body = "{\"code\":-1121,\"msg\":\"Invalid symbol.\"}";
    kf__json_init(&j, body, strlen(body));
    int64_t code = 0;
    kf__json_span msg = {0};
    assert_true(kf__json_enter_object(&j));
    while (kf__json_next_key(&j, &key)) {
        if (kf__json_key_eq(&key, "code"))
            kf__json_read_i64(&j, &code);
        else if (kf__json_key_eq(&key, "msg"))
            kf__json_read_string(&j, &msg);
        else
            kf__json_skip_value(&j, NULL);
    }
    assert_true(kf__json_finish(&j));
    assert_true(code == -1121);
    assert_int_equal(msg.len, 15);
}

static void test_types_and_errors(void **state)
{
    (void)state;
    kf__json j;
    kf__json_span s;
    int64_t i;
    uint64_t u;
    bool b;
    const char *doc = "[true,false,null,-0,18446744073709551615,\"a\\n\",1.5e3,{}]";
    kf__json_init(&j, doc, strlen(doc));
    assert_true(kf__json_enter_array(&j));
    assert_true(kf__json_next_elem(&j));
    assert_int_equal(kf__json_peek(&j), KF__JSON_TRUE);
    assert_true(kf__json_read_bool(&j, &b) && b);
    assert_true(kf__json_next_elem(&j) && kf__json_read_bool(&j, &b) && !b);
    assert_true(kf__json_next_elem(&j));
    assert_int_equal(kf__json_peek(&j), KF__JSON_NULL);
    assert_true(kf__json_read_null(&j));
    assert_true(kf__json_next_elem(&j) && kf__json_read_i64(&j, &i) && i == 0);
    assert_true(kf__json_next_elem(&j) && kf__json_read_u64(&j, &u) && u == UINT64_MAX);
    assert_true(kf__json_next_elem(&j) && kf__json_read_string(&j, &s) && s.escaped);
    char out[8];
    assert_int_equal(kf__json_unescape(s.p, s.len, out, sizeof out), 2);
    assert_string_equal(out, "a\n");
    assert_true(kf__json_next_elem(&j));
    assert_int_equal(kf__json_peek(&j), KF__JSON_NUMBER);
    assert_true(kf__json_skip_value(&j, &s));
    assert_int_equal(s.len, 5);
    assert_true(kf__json_next_elem(&j));
    assert_int_equal(kf__json_peek(&j), KF__JSON_OBJECT);
    assert_true(kf__json_skip_value(&j, &s) && s.len == 2);
    assert_false(kf__json_next_elem(&j));
    assert_true(kf__json_finish(&j));

    /* sticky errors with names */
    static const struct {
        const char *doc;
        const char *why;
        int ints; /* 1: read the elements as int64, 0: skip the whole value */
    } bad[] = {
        {"[1,]", "unexpected byte", 0},
        {"[1 2]", "expected ',' or a closing bracket", 0},
        {"{\"a\" 1}", "expected ':'", 0},
        {"{1:1}", "expected a key string", 0},
        {"[\"a]", "truncated", 0},
        {"[1] x", "trailing bytes after the value", 0},
        {"{\"a\":[}", "unexpected byte", 0},
        {"[tru]", "bad literal", 0},
        {"[\"\\q\"]", "bad escape in string", 0},
        {"[01]", "bad number", 1},
        {"[9223372036854775808]", "number overflows int64", 1},
        {"[-9223372036854775809]", "number overflows int64", 1},
        {"[1.5]", "expected an integer", 1},
        {"[\"1\"]", "expected an integer", 1},
        {"[1,]", "trailing comma", 1},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        kf__json_init(&j, bad[k].doc, strlen(bad[k].doc));
        if (!bad[k].ints) {
            kf__json_skip_value(&j, NULL);
        } else if (kf__json_enter_array(&j)) {
            while (kf__json_next_elem(&j))
                kf__json_read_i64(&j, &i);
        }
        assert_false(kf__json_finish(&j));
        if (strcmp(j.err, bad[k].why) != 0)
            fail_msg("%s: got \"%s\", want \"%s\"", bad[k].doc, j.err, bad[k].why);
        /* sticky */
        assert_false(kf__json_read_null(&j));
        assert_int_equal(kf__json_peek(&j), KF__JSON_NONE);
    }
    kf__json_init(&j, "[-1]", 4);
    assert_true(kf__json_enter_array(&j) && kf__json_next_elem(&j));
    assert_false(kf__json_read_u64(&j, &u));
    assert_string_equal(j.err, "expected an unsigned integer");
    kf__json_init(&j, "[\"1.5x\"]", 8);
    assert_true(kf__json_enter_array(&j) && kf__json_next_elem(&j));
    kf_dec d;
    assert_false(kf__json_read_dec(&j, &d));
    assert_string_equal(j.err, "not a decimal string");
    kf__json_init(&j, NULL, 3);
    assert_false(kf__json_ok(&j));
    kf__json_init(&j, "", 0);
    assert_false(kf__json_enter_object(&j));
    assert_string_equal(j.err, "truncated");
}

static void test_depth(void **state)
{
    (void)state;
    char doc[256];
    for (int levels = 1; levels <= 40; levels++) {
        size_t n = 0;
        for (int d = 0; d < levels; d++)
            doc[n++] = '[';
        for (int d = 0; d < levels; d++)
            doc[n++] = ']';
        kf__json j;
        kf__json_init(&j, doc, n);
        bool ok = kf__json_skip_value(&j, NULL) && kf__json_finish(&j);
        assert_int_equal(ok, levels <= KF__JSON_MAX_DEPTH);
        if (!ok)
            assert_string_equal(j.err, "nesting too deep");
        /* entering by hand hits the same cap */
        kf__json_init(&j, doc, n);
        int entered = 0;
        while (kf__json_enter_array(&j))
            entered++;
        assert_int_equal(entered, levels < KF__JSON_MAX_DEPTH ? levels : KF__JSON_MAX_DEPTH);
        /* skipping inside counts the open containers */
        kf__json_init(&j, doc, n);
        if (levels > 1) {
            assert_true(kf__json_enter_array(&j) && kf__json_next_elem(&j));
            ok = kf__json_skip_value(&j, NULL);
            assert_int_equal(ok, levels <= KF__JSON_MAX_DEPTH);
        }
    }
}

static void test_unescape(void **state)
{
    (void)state;
    char out[64];
    const char *s = "a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20ac\\ud83d\\ude00";
    long n = kf__json_unescape(s, strlen(s), out, sizeof out);
    assert_true(n > 0);
    assert_string_equal(out, "a\"b\\c/d\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    static const char *bad[] = {"\\",      "\\x",     "\\u12",          "\\u12g4", "\\ud83d",
                                "\\ude00", "\\u0000", "\\ud83d\\u0041", "a\"b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(kf__json_unescape(bad[i], strlen(bad[i]), out, sizeof out), -1);
    assert_int_equal(kf__json_unescape("abcd", 4, out, 4), -1); /* no room for the NUL */
    assert_int_equal(kf__json_unescape("abcd", 4, out, 5), 4);
    assert_int_equal(kf__json_unescape("", 0, out, 1), 0);
}

static void test_leave_and_big(void **state)
{
    (void)state;
    kf__json j;
    kf__json_span key, v;
    const char *doc = "{\"a\":{\"x\":[1,{\"y\":\"}\"}],\"z\":2},\"b\":\"ok\"}";
    kf__json_init(&j, doc, strlen(doc));
    assert_true(kf__json_enter_object(&j));
    assert_true(kf__json_next_key(&j, &key) && kf__json_key_eq(&key, "a"));
    assert_true(kf__json_enter_object(&j));
    assert_true(kf__json_next_key(&j, &key) && kf__json_key_eq(&key, "x"));
    assert_true(kf__json_enter_array(&j));
    assert_true(kf__json_leave(&j)); /* the array */
    assert_true(kf__json_leave(&j)); /* the object a */
    assert_true(kf__json_next_key(&j, &key) && kf__json_key_eq(&key, "b"));
    assert_true(kf__json_read_string(&j, &v) && v.len == 2);
    assert_false(kf__json_next_key(&j, &key));
    assert_true(kf__json_finish(&j));
    /* misuse is an error, not a crash */
    kf__json_init(&j, "[1]", 3);
    assert_false(kf__json_next_key(&j, &key));
    assert_non_null(j.err);
    /* a 10 MB string */
    size_t big = 10u << 20;
    char *b = malloc(big + 4);
    b[0] = '[';
    b[1] = '"';
    memset(b + 2, 'x', big);
    b[big + 2] = '"';
    b[big + 3] = ']';
    kf__json_init(&j, b, big + 4);
    assert_true(kf__json_enter_array(&j) && kf__json_next_elem(&j));
    assert_true(kf__json_read_string(&j, &v));
    assert_int_equal(v.len, big);
    assert_false(kf__json_next_elem(&j));
    assert_true(kf__json_finish(&j));
    kf__json_init(&j, b, big + 3);
    assert_false(kf__json_skip_value(&j, NULL) && kf__json_finish(&j));
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exchange_info), cmocka_unit_test(test_klines_rows),
        cmocka_unit_test(test_server_time),   cmocka_unit_test(test_types_and_errors),
        cmocka_unit_test(test_depth),         cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_leave_and_big),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
