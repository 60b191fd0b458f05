/*
 * The Kafka sink's header parser (plugins/kafka/kafka-headers.c): one
 * record's `_headers` JSON object into librdkafka headers. Valid inputs
 * are checked header by header through librdkafka's own accessors;
 * invalid ones are a table of cases with the error each must give.
 * Built with the plugin (velo-kafka-headers-test, ctest
 * plugin-kafka-headers-parse).
 */
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "kafka-internal.h"

/* An expected header: value NULL for a header without one. */
struct want_header {
    const char *name;
    const char *value;
    size_t vlen; /* 0: strlen(value) */
};

static rd_kafka_headers_t *parse_ok(const char *text)
{
    size_t len = strlen(text);
    char *scratch = malloc(len + 1);
    char why[256] = "";
    rd_kafka_headers_t *h = (rd_kafka_headers_t *)1;
    int rc = kafka_headers_parse(text, len, scratch, &h, why, sizeof(why));
    free(scratch);
    if (rc != 0) {
        fprintf(stderr, "\n  %s: %s\n", text, why);
    }
    CU_ASSERT_EQUAL(rc, 0);
    return rc == 0 ? h : NULL;
}

static void expect_headers(const char *text, const struct want_header *want,
                           size_t n)
{
    rd_kafka_headers_t *h = parse_ok(text);
    if (n == 0) {
        CU_ASSERT_PTR_NULL(h);
        return;
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_EQUAL(rd_kafka_header_cnt(h), n);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        const void *val;
        size_t vlen;
        CU_ASSERT_EQUAL_FATAL(rd_kafka_header_get_all(h, i, &name, &val, &vlen),
                              RD_KAFKA_RESP_ERR_NO_ERROR);
        CU_ASSERT_STRING_EQUAL(name, want[i].name);
        if (want[i].value == NULL) {
            CU_ASSERT_PTR_NULL(val);
            continue;
        }
        size_t wl = want[i].vlen ? want[i].vlen : strlen(want[i].value);
        CU_ASSERT_PTR_NOT_NULL_FATAL(val);
        CU_ASSERT_EQUAL(vlen, wl);
        CU_ASSERT(vlen == wl && memcmp(val, want[i].value, wl) == 0);
    }
    rd_kafka_headers_destroy(h);
}

static void test_strings(void)
{
    struct want_header w[] = {{"trace", "abc-1", 0}, {"tenant", "acme", 0}};
    expect_headers("{\"trace\":\"abc-1\",\"tenant\":\"acme\"}", w, 2);
    /* Whitespace anywhere JSON allows it. */
    expect_headers(" \n{ \"trace\" :\t\"abc-1\" ,\r\n \"tenant\": \"acme\" } ",
                   w, 2);
}

static void test_empty_and_null(void)
{
    expect_headers("{}", NULL, 0);
    expect_headers(" { } ", NULL, 0);
    expect_headers("null", NULL, 0);
}

static void test_null_value_is_header_without_value(void)
{
    struct want_header w[] = {{"flag", NULL, 0}, {"x", "1", 0}};
    expect_headers("{\"flag\":null,\"x\":\"1\"}", w, 2);
}

static void test_non_strings_as_json_text(void)
{
    struct want_header w[] = {{"n", "42", 0},
                              {"f", "-1.5e+3", 0},
                              {"t", "true", 0},
                              {"b", "false", 0},
                              {"o", "{\"a\":[1,\"}\"],\"b\":{}}", 0},
                              {"l", "[1, 2]", 0}};
    expect_headers("{\"n\":42,\"f\":-1.5e+3,\"t\":true,\"b\":false,"
                   "\"o\":{\"a\":[1,\"}\"],\"b\":{}},\"l\":[1, 2]}",
                   w, 6);
}

static void test_escapes(void)
{
    /* é (U+00E9, 2 bytes), € (U+20AC, 3), 😀 (U+1F600, a surrogate pair,
     * 4), and a NUL byte inside a value. */
    struct want_header w[] = {{"q\"b\\s/", "line\nnext\ttab", 0},
                              {"u", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 0},
                              {"z", "a\0b", 3}};
    expect_headers("{\"q\\\"b\\\\s\\/\":\"line\\nnext\\ttab\","
                   "\"u\":\"\\u00e9\\u20AC\\ud83d\\ude00\","
                   "\"z\":\"a\\u0000b\"}",
                   w, 3);
}

static void test_duplicate_names_kept(void)
{
    /* Kafka headers are a list: a name may repeat. */
    struct want_header w[] = {{"h", "1", 0}, {"h", "2", 0}};
    expect_headers("{\"h\":\"1\",\"h\":\"2\"}", w, 2);
}

static void test_invalid(void)
{
    static const struct {
        const char *text;
        const char *error;
    } cases[] = {
        {"", "expected '{' (the headers must be one JSON object), found "
             "the end (byte 0)"},
        {"[1]", "expected '{' (the headers must be one JSON object) at "
                "byte 0"},
        {"\"text\"", "expected '{'"},
        {"42", "expected '{'"},
        {"{", "expected a string in double quotes, found the end (byte 1)"},
        {"{a:1}", "expected a string in double quotes at byte 1"},
        {"{\"a\" 1}", "expected ':' after a header name at byte 5"},
        {"{\"a\":}", "expected a value (a string, number, true, false, "
                     "null, object or array) at byte 5"},
        {"{\"a\":tru}", "expected a value"},
        {"{\"a\":\"x\" \"b\":1}", "expected ',' or '}' after a header's "
                                  "value at byte 9"},
        {"{\"a\":1,}", "expected a string in double quotes at byte 7"},
        {"{\"a\":1} x", "expected nothing after the object's '}' at byte 8"},
        {"{\"a\":\"x}", "expected the closing quote of a string, found the "
                        "end"},
        {"{\"a\":\"\\q\"}", "expected an escape"},
        {"{\"a\":\"\\u12g4\"}", "expected four hex digits after \\u"},
        {"{\"a\":\"\\ud83d\"}", "expected the low surrogate"},
        {"{\"a\":\"\\ude00\"}", "expected a high surrogate before a low one"},
        {"{\"a\":\"x\ty\"}", "expected a control character written as an "
                             "escape"},
        {"{\"a\":{\"b\":[1}}", "expected ']' at byte 12"},
        {"{\"a\":[1,2}", "expected ']' at byte 9"},
        {"{\"a\":1.}", "expected digits after the decimal point"},
        {"{\"a\":1e}", "expected digits in the exponent"},
        {"null x", "expected nothing after null"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *t = cases[i].text;
        size_t len = strlen(t);
        char *scratch = malloc(len + 1);
        char why[256] = "";
        rd_kafka_headers_t *h = (rd_kafka_headers_t *)1;
        int rc = kafka_headers_parse(t, len, scratch, &h, why, sizeof(why));
        free(scratch);
        if (rc != -1 || strstr(why, cases[i].error) == NULL) {
            fprintf(stderr, "\n  case %zu %s: rc %d, why \"%s\"\n", i, t, rc,
                    why);
        }
        CU_ASSERT_EQUAL(rc, -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, cases[i].error));
        CU_ASSERT_PTR_NULL(h);
    }
}

static void test_error_never_shows_the_text(void)
{
    const char *t = "{\"authorization\":\"Bearer s3cr3t\" oops}";
    size_t len = strlen(t);
    char scratch[64];
    char why[256];
    rd_kafka_headers_t *h;
    CU_ASSERT_EQUAL(kafka_headers_parse(t, len, scratch, &h, why, sizeof(why)),
                    -1);
    CU_ASSERT_PTR_NULL(strstr(why, "s3cr3t"));
    CU_ASSERT_PTR_NULL(strstr(why, "authorization"));
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("kafka_headers", NULL, NULL);
    CU_add_test(s, "string values", test_strings);
    CU_add_test(s, "{} and null are no headers", test_empty_and_null);
    CU_add_test(s, "null is a header without value",
                test_null_value_is_header_without_value);
    CU_add_test(s, "other values as their JSON text",
                test_non_strings_as_json_text);
    CU_add_test(s, "escapes and UTF-16 surrogates", test_escapes);
    CU_add_test(s, "a repeated name is kept", test_duplicate_names_kept);
    CU_add_test(s, "invalid inputs and their errors", test_invalid);
    CU_add_test(s, "errors never show the text",
                test_error_never_shows_the_text);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    return failed == 0 ? 0 : 1;
}
