/*
 * License files: the full matrix, each license signed at test time with
 * the build's test key ($VELO_TEST_KEY), through the library, the vendor
 * tools and the real velo binaries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>
#include <velo/log.h>

#include "plugin/license-internal.h"
#include "plugin/license.h"
#include "testutil.h"

#define DAY 86400

static char *tmp;

/* "YYYY-MM-DD" for today (UTC) plus `days`. */
static void date_in(int days, char *out, size_t outlen)
{
    time_t t = time(NULL) + (time_t)days * DAY;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outlen, "%Y-%m-%d", &tm);
}

/* A payload with dates relative to today. */
static char *payload(const char *id, const char *features, int nb_days,
                     int exp_days, int grace)
{
    char nb[16], ex[16], is[16];
    date_in(nb_days, nb, sizeof(nb));
    date_in(exp_days, ex, sizeof(ex));
    date_in(nb_days < 0 ? nb_days : 0, is, sizeof(is));
    char *out = malloc(1024);
    snprintf(out, 1024,
             "{\"license_id\": \"%s\", \"customer\": \"Acme Corp\", "
             "\"issued\": \"%s\", \"not_before\": \"%s\", \"expires\": "
             "\"%s\", \"grace_days\": %d, \"features\": [%s], \"limits\": "
             "{\"nodes\": 3, \"cores\": 16}}",
             id, is, nb, ex, grace, features);
    return out;
}

static char *sign_with(const char *p, const char *key)
{
    char err[512] = "";
    char *lic = velo_license_sign(p, key, err, sizeof(err));
    if (lic == NULL) {
        fprintf(stderr, "sign failed: %s\n", err);
    }
    return lic;
}

/* Sign with the test key, write to tmp/<name>, return the path. */
static char *make_license(const char *name, const char *id,
                          const char *features, int nb, int ex, int grace)
{
    char *p = payload(id, features, nb, ex, grace);
    char *lic = sign_with(p, tu_env("VELO_TEST_KEY"));
    free(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lic);
    char *path = malloc(1024);
    snprintf(path, 1024, "%s/%s", tmp, name);
    CU_ASSERT_EQUAL(tu_write_file(path, lic, strlen(lic)), 0);
    free(lic);
    return path;
}

static int verify_path(const char *path, struct velo_license *out)
{
    return velo_license_verify_file(path, time(NULL), out);
}

static int contains(const char *hay, const char *needle)
{
    int ok = hay != NULL && strstr(hay, needle) != NULL;
    if (!ok) {
        fprintf(stderr, "\n  expected to find: %s\n  in: %s\n", needle,
                hay != NULL ? hay : "(null)");
    }
    return ok;
}

/* The test key's fingerprint: the part of its id after the dash. */
static const char *test_fpr(void)
{
    const char *d = strrchr(velo_license_key_id, '-');
    return d != NULL ? d + 1 : velo_license_key_id;
}

/* ---------------------------------------------------------------- */

static void test_valid(void)
{
    struct velo_license lic;
    char *path = make_license("valid.json", "L-valid", "\"rbac\", \"audit\"",
                              -10, 30, 14);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_OK);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_VALID);
    CU_ASSERT_STRING_EQUAL(lic.license_id, "L-valid");
    CU_ASSERT_STRING_EQUAL(lic.customer, "Acme Corp");
    CU_ASSERT_EQUAL(lic.n_features, 2);
    CU_ASSERT_EQUAL(lic.grace_days, 14);
    CU_ASSERT(lic.days_left == 29 || lic.days_left == 30);
    CU_ASSERT_TRUE(velo_license_has_feature(&lic, "rbac"));
    CU_ASSERT_TRUE(velo_license_has_feature(&lic, "audit"));
    /* Limits come back sorted by name. */
    CU_ASSERT_EQUAL(lic.n_limits, 2);
    CU_ASSERT_STRING_EQUAL(lic.limits[0].name, "cores");
    CU_ASSERT_EQUAL(lic.limits[0].value, 16);
    CU_ASSERT_STRING_EQUAL(lic.limits[1].name, "nodes");
    CU_ASSERT_EQUAL(lic.limits[1].value, 3);

    char desc[4096];
    velo_license_describe(&lic, desc, sizeof(desc));
    CU_ASSERT(contains(desc, "Status:      valid (usable)"));
    CU_ASSERT(contains(desc, "Customer:    Acme Corp"));
    CU_ASSERT(contains(desc, "Features:    rbac, audit"));
    CU_ASSERT(contains(desc, "Limits:      cores=16, nodes=3"));
    CU_ASSERT(contains(desc, "day(s) left"));
    CU_ASSERT(contains(desc, velo_license_key_id));
    free(path);
}

static void test_missing_feature(void)
{
    struct velo_license lic;
    char *path = make_license("audit-only.json", "L-audit", "\"audit\"", -1,
                              30, 0);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_OK);
    CU_ASSERT_TRUE(velo_license_has_feature(&lic, "audit"));
    CU_ASSERT_FALSE(velo_license_has_feature(&lic, "rbac"));
    CU_ASSERT_FALSE(velo_license_has_feature(&lic, "aud"));
    CU_ASSERT_FALSE(velo_license_has_feature(NULL, "audit"));
    char why[512];
    velo_license_why_not(&lic, "rbac", why, sizeof(why));
    CU_ASSERT(contains(why, "license L-audit lacks it (grants: audit)"));
    free(path);
}

static void test_tampered_payload(void)
{
    struct velo_license lic;
    char *path = make_license("tamper.json", "L-t", "\"rbac\"", -1, 30, 0);
    char *text = tu_read_file(path, NULL);
    char *at = strstr(text, "Acme Corp");
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    at[2] = 'n'; /* "Acne Corp": still valid JSON, different bytes */
    tu_write_file(path, text, strlen(text));
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_BAD_SIGNATURE);
    CU_ASSERT(contains(lic.reason, "signature does not verify against this "
                                   "server's key (test-"));
    CU_ASSERT(contains(lic.reason, "the file was altered or signed by "
                                   "another vendor key"));
    /* Nothing from an unverified payload is kept or trusted. */
    CU_ASSERT_STRING_EQUAL(lic.customer, "");
    CU_ASSERT_EQUAL(lic.n_features, 0);
    CU_ASSERT_FALSE(velo_license_has_feature(&lic, "rbac"));

    /* A feature added by hand is the classic forgery. */
    free(text);
    free(path);
    path = make_license("tamper2.json", "L-t2", "\"audit\"", -1, 30, 0);
    text = tu_read_file(path, NULL);
    char *f = strstr(text, "\"audit\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    memcpy(f, "\"rbac\" ", 7);
    tu_write_file(path, text, strlen(text));
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_BAD_SIGNATURE);
    free(text);
    free(path);
}

static void replace_signature(const char *path, const char *newsig)
{
    char *text = tu_read_file(path, NULL);
    json_t *root = json_loads(text, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    json_object_set_new(root, "signature", json_string(newsig));
    char *out = json_dumps(root, JSON_INDENT(2));
    tu_write_file(path, out, strlen(out));
    free(out);
    json_decref(root);
    free(text);
}

static void test_tampered_signature(void)
{
    struct velo_license lic;
    char *path = make_license("sig.json", "L-s", "\"rbac\"", -1, 30, 0);
    char *text = tu_read_file(path, NULL);
    json_t *root = json_loads(text, 0, NULL);
    char sig[128];
    snprintf(sig, sizeof(sig), "%s",
             json_string_value(json_object_get(root, "signature")));
    json_decref(root);
    free(text);
    CU_ASSERT_EQUAL(strlen(sig), 88);

    /* One changed character, still base64 of 64 bytes. */
    char bad[sizeof(sig) + 8]; /* room for a prefix byte */
    snprintf(bad, sizeof(bad), "%s", sig);
    bad[10] = bad[10] == 'A' ? 'B' : 'A';
    replace_signature(path, bad);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_BAD_SIGNATURE);
    CU_ASSERT(contains(lic.reason, "signature does not verify"));

    /* Wrong length: a clear message, not a crypto failure. */
    replace_signature(path, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_BAD_SIGNATURE);
    CU_ASSERT(contains(lic.reason, "decodes to 32 bytes, an Ed25519 "
                                   "signature is 64"));

    /* Not base64 at all, or sloppy base64 (whitespace). */
    snprintf(bad, sizeof(bad), "%s", sig);
    bad[5] = '!';
    replace_signature(path, bad);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_MALFORMED);
    CU_ASSERT(contains(lic.reason, "field 'signature' is not strict base64: "
                                   "character 5 ('!')"));
    snprintf(bad, sizeof(bad), " %s", sig);
    replace_signature(path, bad);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_MALFORMED);

    /* The genuine signature still verifies after all that. */
    replace_signature(path, sig);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_OK);
    free(path);
}

static void test_other_key(void)
{
    char priv[512], pub[512];
    snprintf(priv, sizeof(priv), "%s/other.key", tmp);
    snprintf(pub, sizeof(pub), "%s/other.pub", tmp);
    char *argv[] = {(char *)tu_env("VELO_KEYGEN_BIN"), priv, pub, NULL};
    struct tu_proc p;
    CU_ASSERT_EQUAL_FATAL(tu_run(&p, argv, NULL, 30000), 0);

    char *pl = payload("L-other", "\"rbac\"", -1, 30, 0);
    char *lic_text = sign_with(pl, priv);
    free(pl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lic_text);
    struct velo_license lic;
    CU_ASSERT_EQUAL(velo_license_verify_buffer(lic_text, strlen(lic_text),
                                               time(NULL), &lic),
                    VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_BAD_SIGNATURE);
    /* The license names its key; it is not ours, and we say so. */
    CU_ASSERT(contains(lic.reason, "the license was signed for another key "
                                   "(key_id "));
    CU_ASSERT(contains(lic.reason, "this server trusts test-"));
    CU_ASSERT_FALSE(velo_license_has_feature(&lic, "rbac"));

    /* Without the optional key_id the two cases cannot be told apart. */
    json_t *root = json_loads(lic_text, 0, NULL);
    json_object_del(root, "key_id");
    char *stripped = json_dumps(root, 0);
    CU_ASSERT_EQUAL(velo_license_verify_buffer(stripped, strlen(stripped),
                                               time(NULL), &lic),
                    VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_BAD_SIGNATURE);
    CU_ASSERT(contains(lic.reason, "signed by another vendor key"));
    free(stripped);

    /* A key_id naming our key does not make a foreign signature pass. */
    char kid[64];
    snprintf(kid, sizeof(kid), "%s", test_fpr());
    json_object_set_new(root, "key_id", json_string(kid));
    char *relabelled = json_dumps(root, 0);
    CU_ASSERT_EQUAL(velo_license_verify_buffer(relabelled, strlen(relabelled),
                                               time(NULL), &lic),
                    VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_BAD_SIGNATURE);
    free(relabelled);
    json_decref(root);
    free(lic_text);
}

static void test_not_yet_valid(void)
{
    struct velo_license lic;
    char nb[16];
    date_in(10, nb, sizeof(nb));
    char *path = make_license("future.json", "L-future", "\"rbac\"", 10, 40,
                              14);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_NOT_YET_VALID);
    char want[128];
    snprintf(want, sizeof(want), "license L-future is not valid before %s",
             nb);
    CU_ASSERT(contains(lic.reason, want));
    CU_ASSERT_FALSE(velo_license_has_feature(&lic, "rbac"));
    free(path);
}

static void test_in_grace(void)
{
    struct velo_license lic;
    char ex[16];
    date_in(-3, ex, sizeof(ex));
    char *path = make_license("grace.json", "L-grace", "\"rbac\"", -60, -3,
                              14);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_OK);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_IN_GRACE);
    CU_ASSERT_TRUE(velo_license_has_feature(&lic, "rbac"));
    char want[128];
    snprintf(want, sizeof(want), "license L-grace expired on %s (3 day(s) "
                                 "ago); within its 14-day grace period",
             ex);
    CU_ASSERT(contains(lic.reason, want));
    CU_ASSERT(lic.days_left == -3 || lic.days_left == -4);
    char desc[4096];
    velo_license_describe(&lic, desc, sizeof(desc));
    CU_ASSERT(contains(desc, "Status:      in-grace (usable)"));
    CU_ASSERT(contains(desc, "expired 3 day(s) ago"));
    free(path);
}

static void test_expired(void)
{
    struct velo_license lic;
    char ex[16], ge[16];
    date_in(-30, ex, sizeof(ex));
    date_in(-16, ge, sizeof(ge));
    char *path = make_license("expired.json", "L-old", "\"rbac\"", -400, -30,
                              14);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_EXPIRED);
    CU_ASSERT_FALSE(velo_license_has_feature(&lic, "rbac"));
    char want[160];
    snprintf(want, sizeof(want), "license L-old expired on %s (30 day(s) "
                                 "ago); its 14-day grace period ended on %s",
             ex, ge);
    CU_ASSERT(contains(lic.reason, want));
    char why[512];
    velo_license_why_not(&lic, "rbac", why, sizeof(why));
    snprintf(want, sizeof(want), "license expired on %s", ex);
    CU_ASSERT(contains(why, want));
    free(path);
}

static void test_malformed(void)
{
    static const struct {
        const char *text;
        const char *phrase;
    } cases[] = {
        {"{\"payload\": {,}}", "invalid JSON at line 1, column 14"},
        {"{\"payload\": {}, \"signature\": \"x\"}\ngarbage",
         "invalid JSON at line 2"},
        {"[1, 2]", "the top level must be an object"},
        {"{\"signature\": \"AAAA\"}", "missing field 'payload'"},
        {"{\"payload\": {}}", "missing field 'signature'"},
        {"{\"payload\": {}, \"signature\": 5}",
         "ill-typed field 'signature'"},
        {"{\"payload\": 1, \"signature\": \"AAAA\"}",
         "field 'payload' must be an object, not an integer"},
        {"{\"payload\": {\"customer\": \"x\"}, \"signature\": \"AAAA\"}",
         "missing field 'license_id'"},
        {"{\"payload\": {\"license_id\": \"L\", \"customer\": \"x\", "
         "\"issued\": \"2026-01-01\", \"features\": []}, "
         "\"signature\": \"AAAA\"}",
         "missing field 'expires'"},
        {"{\"payload\": {\"license_id\": \"L\", \"customer\": \"x\", "
         "\"issued\": \"2026-01-01\", \"expires\": \"2027-02-30\", "
         "\"features\": []}, \"signature\": \"AAAA\"}",
         "field 'expires': \"2027-02-30\" is not a date"},
        {"{\"payload\": {\"license_id\": \"L\", \"customer\": \"x\", "
         "\"issued\": \"2026-01-01\", \"expires\": \"2027-01-01\", "
         "\"grace_days\": \"14\", \"features\": []}, \"signature\": \"A\"}",
         "field 'grace_days' must be an integer from 0 to 3650, not a "
         "string"},
        {"{\"payload\": {\"license_id\": \"L\", \"customer\": \"x\", "
         "\"issued\": \"2026-01-01\", \"expires\": \"2027-01-01\", "
         "\"features\": \"rbac\"}, \"signature\": \"A\"}",
         "field 'features' must be an array of strings, not a string"},
        {"{\"payload\": {\"license_id\": \"L\", \"customer\": \"x\", "
         "\"issued\": \"2026-01-01\", \"expires\": \"2027-01-01\", "
         "\"features\": [\"RBAC\"]}, \"signature\": \"A\"}",
         "features[0] \"RBAC\" may only use a-z"},
        {"{\"payload\": {\"license_id\": \"L\", \"customer\": \"x\", "
         "\"issued\": \"2026-01-01\", \"expires\": \"2027-01-01\", "
         "\"features\": [], \"limits\": {\"nodes\": \"3\"}}, "
         "\"signature\": \"A\"}",
         "limits.nodes must be a non-negative integer, not a string"},
        {"{\"payload\": {\"license_id\": \"L\", \"customer\": \"x\", "
         "\"issued\": \"2026-01-01\", \"expires\": \"2025-01-01\", "
         "\"features\": []}, \"signature\": \"A\"}",
         "'expires' (2025-01-01) is not after 'not_before' (2026-01-01)"},
        {"{\"payload\": {}, \"payload\": {}, \"signature\": \"A\"}",
         "duplicate object key"},
        {"   \n", "the file is empty"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct velo_license lic;
        int rc = velo_license_verify_buffer(
            cases[i].text, strlen(cases[i].text), time(NULL), &lic);
        CU_ASSERT_EQUAL(rc, VELO_ERR);
        CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_MALFORMED);
        if (!contains(lic.reason, cases[i].phrase)) {
            fprintf(stderr, "  (case %zu)\n", i);
            CU_FAIL("malformed case");
        }
    }
}

static void test_truncated(void)
{
    struct velo_license lic;
    char *path = make_license("cut.json", "L-cut", "\"rbac\"", -1, 30, 0);
    size_t len;
    char *text = tu_read_file(path, &len);
    /* Every cut point: the reason always says the file ended early. */
    for (size_t cut = 1; cut < len - 2; cut += 7) {
        int rc = velo_license_verify_buffer(text, cut, time(NULL), &lic);
        CU_ASSERT_EQUAL(rc, VELO_ERR);
        CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_MALFORMED);
        if (strstr(lic.reason, "truncated") == NULL) {
            fprintf(stderr, "cut at %zu: %s\n", cut, lic.reason);
            CU_FAIL("truncation not named");
        }
    }
    tu_write_file(path, text, len / 2);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_ERR);
    CU_ASSERT(contains(lic.reason, "truncated: the JSON "
                                   "ends early at line"));
    free(text);
    free(path);
}

static void test_oversized(void)
{
    struct velo_license lic;
    size_t n = VELO_LICENSE_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    big[0] = '{';
    char path[512];
    snprintf(path, sizeof(path), "%s/big.json", tmp);
    tu_write_file(path, big, n);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_OVERSIZED);
    char want[128];
    snprintf(want, sizeof(want), "is %zu bytes, larger than the %d-byte "
                                 "limit",
             n, VELO_LICENSE_MAX_BYTES);
    CU_ASSERT(contains(lic.reason, want));
    CU_ASSERT_EQUAL(velo_license_verify_buffer(big, n, time(NULL), &lic),
                    VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_OVERSIZED);
    free(big);
}

static void test_missing_and_unreadable(void)
{
    struct velo_license lic;
    char path[512];
    snprintf(path, sizeof(path), "%s/nope.json", tmp);
    CU_ASSERT_EQUAL(verify_path(path, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_MISSING);
    CU_ASSERT(contains(lic.reason, "does not exist"));
    CU_ASSERT(contains(lic.reason, path));
    CU_ASSERT_EQUAL(verify_path(NULL, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_MISSING);
    CU_ASSERT(contains(lic.reason, "no license configured"));
    CU_ASSERT_EQUAL(verify_path(tmp, &lic), VELO_ERR);
    CU_ASSERT_EQUAL(lic.status, VELO_LICENSE_UNREADABLE);
    CU_ASSERT(contains(lic.reason, "it is a directory"));
    char why[512];
    velo_license_why_not(NULL, "rbac", why, sizeof(why));
    CU_ASSERT_STRING_EQUAL(why, "no license configured");
}

static void test_canonical_and_dates(void)
{
    /* Same payload, other key order and spacing: same canonical bytes,
     * so the same (deterministic) signature, and both verify. */
    const char *a =
        "{\"license_id\":\"L-c\",\"customer\":\"Z\\u00fcrich AG\","
        "\"issued\":\"2026-01-01\",\"expires\":\"2126-01-01T12:00:00+02:00\","
        "\"features\":[\"rbac\"]}";
    const char *b =
        "{ \"features\" : [ \"rbac\" ],\n \"expires\": "
        "\"2126-01-01T12:00:00+02:00\", \"issued\": \"2026-01-01\",\n"
        "  \"customer\": \"Z\xc3\xbcrich AG\", \"license_id\": \"L-c\" }";
    char *la = sign_with(a, tu_env("VELO_TEST_KEY"));
    char *lb = sign_with(b, tu_env("VELO_TEST_KEY"));
    CU_ASSERT_PTR_NOT_NULL_FATAL(la);
    CU_ASSERT_PTR_NOT_NULL_FATAL(lb);
    CU_ASSERT_STRING_EQUAL(la, lb);
    struct velo_license lic;
    CU_ASSERT_EQUAL(
        velo_license_verify_buffer(la, strlen(la), time(NULL), &lic),
        VELO_OK);
    CU_ASSERT_STRING_EQUAL(lic.customer, "Z\xc3\xbcrich AG");
    CU_ASSERT_EQUAL(lic.grace_days, 0);
    CU_ASSERT_EQUAL(lic.not_before, lic.issued); /* defaulted */
    char d[32];
    velo_license_format_time(lic.expires, d, sizeof(d));
    CU_ASSERT_STRING_EQUAL(d, "2126-01-01T10:00:00Z");
    free(la);
    free(lb);

    time_t t;
    CU_ASSERT_EQUAL(velo_license_parse_time("1970-01-02", &t), VELO_OK);
    CU_ASSERT_EQUAL(t, DAY);
    CU_ASSERT_EQUAL(velo_license_parse_time("2024-02-29T00:00:00.5Z", &t),
                    VELO_OK);
    CU_ASSERT_EQUAL(velo_license_parse_time("2023-02-29", &t), VELO_ERR);
    CU_ASSERT_EQUAL(velo_license_parse_time("2023-1-01", &t), VELO_ERR);
    CU_ASSERT_EQUAL(velo_license_parse_time("2023-01-01T10:00:00", &t),
                    VELO_ERR);
    CU_ASSERT_EQUAL(velo_license_parse_time("2023-01-01 ", &t), VELO_ERR);

    /* The signer refuses what the verifier would refuse. */
    char err[512];
    CU_ASSERT_PTR_NULL(velo_license_sign(
        "{\"license_id\":\"L\",\"customer\":\"x\",\"issued\":\"2026-01-01\","
        "\"features\":[]}",
        tu_env("VELO_TEST_KEY"), err, sizeof(err)));
    CU_ASSERT(contains(err, "payload: missing field 'expires'"));
    CU_ASSERT_PTR_NULL(velo_license_sign(a, tu_env("VELO_TEST_PUB"), err,
                                         sizeof(err)));
    CU_ASSERT(contains(err, "is not an unencrypted PEM private key"));
}

/* ---------------------------------------------------------------- */
/* The real binaries and tools                                      */
/* ---------------------------------------------------------------- */

static int run(char *const argv[], char **out, char **err)
{
    struct tu_proc p;
    int rc = tu_run(&p, argv, NULL, 30000);
    *out = tu_proc_stdout(&p);
    *err = tu_proc_stderr(&p);
    unlink(p.out_path);
    unlink(p.err_path);
    return rc;
}

static void test_cli_verify(void)
{
    char *bin = (char *)tu_env("VELO_BIN");
    char *good = make_license("cli-good.json", "L-cli", "\"rbac\"", -1, 30,
                              14);
    char *out, *err;
    char *a1[] = {bin, "license", "verify", good, NULL};
    CU_ASSERT_EQUAL(run(a1, &out, &err), 0);
    CU_ASSERT(contains(out, "Status:      valid (usable)"));
    CU_ASSERT(contains(out, "License:     L-cli"));
    CU_ASSERT(contains(out, "Customer:    Acme Corp"));
    free(out);
    free(err);

    char *a2[] = {bin, "license", "verify", "--format", "json", good, NULL};
    CU_ASSERT_EQUAL(run(a2, &out, &err), 0);
    json_t *j = json_loads(out, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "status")),
                           "valid");
    CU_ASSERT_TRUE(json_is_true(json_object_get(j, "usable")));
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(
                        json_object_get(j, "limits"), "nodes")),
                    3);
    json_decref(j);
    free(out);
    free(err);

    /* Tampered: exit 1, the reason on stderr. */
    char *text = tu_read_file(good, NULL);
    char *at = strstr(text, "\"nodes\": 3");
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    at[9] = '9';
    char bad[512];
    snprintf(bad, sizeof(bad), "%s/cli-bad.json", tmp);
    tu_write_file(bad, text, strlen(text));
    free(text);
    char *a3[] = {bin, "license", "verify", bad, NULL};
    CU_ASSERT_EQUAL(run(a3, &out, &err), 1);
    CU_ASSERT(contains(out, "Status:      bad-signature (not usable)"));
    CU_ASSERT(contains(err, "signature does not verify against this "
                            "server's key (test-"));
    free(out);
    free(err);

    /* Expired within grace: usable, exit 0, a warning. */
    char *grace = make_license("cli-grace.json", "L-g", "\"rbac\"", -30, -2,
                               14);
    char *a4[] = {bin, "license", "verify", grace, NULL};
    CU_ASSERT_EQUAL(run(a4, &out, &err), 0);
    CU_ASSERT(contains(out, "in-grace (usable)"));
    CU_ASSERT(contains(err, "warning: license L-g expired on"));
    free(out);
    free(err);

    /* show: the configured file, or a FILE; none configured is exit 1. */
    char set[600];
    snprintf(set, sizeof(set), "license.file=%s", good);
    char *a5[] = {bin, "license", "show", "--set", set, NULL};
    CU_ASSERT_EQUAL(run(a5, &out, &err), 0);
    CU_ASSERT(contains(out, "License:     L-cli"));
    free(out);
    free(err);
    char *a6[] = {bin, "license", "show", NULL};
    CU_ASSERT_EQUAL(run(a6, &out, &err), 1);
    CU_ASSERT(contains(err, "no license configured"));
    free(out);
    free(err);
    char *a7[] = {bin, "license", "show", "--format", "json", good, NULL};
    CU_ASSERT_EQUAL(run(a7, &out, &err), 0);
    CU_ASSERT(contains(out, "\"customer\": \"Acme Corp\""));
    free(out);
    free(err);

    /* Usage errors. */
    char *u1[] = {bin, "license", "verify", NULL};
    CU_ASSERT_EQUAL(run(u1, &out, &err), 2);
    CU_ASSERT(contains(err, "which file?"));
    free(out);
    free(err);
    char *u2[] = {bin, "license", "frobnicate", NULL};
    CU_ASSERT_EQUAL(run(u2, &out, &err), 2);
    free(out);
    free(err);
    char *u3[] = {bin, "license", "verify", good, "--format", "xml", NULL};
    CU_ASSERT_EQUAL(run(u3, &out, &err), 2);
    free(out);
    free(err);
    char *u4[] = {bin, "license", "--help", NULL};
    CU_ASSERT_EQUAL(run(u4, &out, &err), 0);
    CU_ASSERT(contains(out, "Usage: velo license verify FILE"));
    free(out);
    free(err);

    /* The production binary trusts only the production key: a license
     * signed with the test key is refused, naming both keys. */
    char *prod = (char *)tu_env("VELO_PROD_BIN");
    char *a8[] = {prod, "license", "verify", good, NULL};
    CU_ASSERT_EQUAL(run(a8, &out, &err), 1);
    CU_ASSERT(contains(err, "bad-signature"));
    CU_ASSERT(contains(err, "signed for another key (key_id "));
    CU_ASSERT(contains(err, "this server trusts prod-"));
    CU_ASSERT(contains(out, "Trusted key: prod-"));
    free(out);
    free(err);
    free(good);
    free(grace);
}

static void test_sign_tool(void)
{
    char *sign = (char *)tu_env("VELO_SIGN_BIN");
    char *key = (char *)tu_env("VELO_TEST_KEY");
    char outp[512], ex[16];
    snprintf(outp, sizeof(outp), "%s/tool.json", tmp);
    date_in(100, ex, sizeof(ex));
    char *argv[] = {sign,         "--key",      key,
                    "--customer", "Tool Co",    "--features",
                    "rbac, audit,cluster",      "--expires",
                    ex,           "--grace-days", "7",
                    "--limit",    "nodes=5",    "--license-id",
                    "L-tool-1",   "--out",      outp,
                    NULL};
    char *out, *err;
    CU_ASSERT_EQUAL(run(argv, &out, &err), 0);
    CU_ASSERT(contains(err, "signed license L-tool-1 for Tool Co"));
    /* It warns that the test key is not the production key. */
    CU_ASSERT(contains(err, "is not the production key"));
    free(out);
    free(err);
    struct velo_license lic;
    CU_ASSERT_EQUAL(verify_path(outp, &lic), VELO_OK);
    CU_ASSERT_STRING_EQUAL(lic.license_id, "L-tool-1");
    CU_ASSERT_STRING_EQUAL(lic.customer, "Tool Co");
    CU_ASSERT_EQUAL(lic.n_features, 3);
    CU_ASSERT_TRUE(velo_license_has_feature(&lic, "cluster"));
    CU_ASSERT_EQUAL(lic.grace_days, 7);
    CU_ASSERT_EQUAL(lic.n_limits, 1);
    CU_ASSERT_EQUAL(lic.limits[0].value, 5);

    /* --payload signs a file as is. */
    char pfile[512];
    snprintf(pfile, sizeof(pfile), "%s/payload.json", tmp);
    char *pl = payload("L-file", "\"audit\"", -1, 10, 0);
    tu_write_file(pfile, pl, strlen(pl));
    free(pl);
    char *argv2[] = {sign, "--key", key, "--payload", pfile, NULL};
    CU_ASSERT_EQUAL(run(argv2, &out, &err), 0);
    CU_ASSERT_EQUAL(velo_license_verify_buffer(out, strlen(out), time(NULL),
                                               &lic),
                    VELO_OK);
    CU_ASSERT_STRING_EQUAL(lic.license_id, "L-file");
    free(out);
    free(err);

    /* Usage and input errors. */
    char *argv3[] = {sign, "--customer", "x", NULL};
    CU_ASSERT_EQUAL(run(argv3, &out, &err), 2);
    CU_ASSERT(contains(err, "--key PRIVATE.pem is required"));
    free(out);
    free(err);
    char *argv4[] = {sign,      "--key",      key,       "--customer",
                     "x",       "--features", "rbac",    "--expires",
                     "2027-13-01", NULL};
    CU_ASSERT_EQUAL(run(argv4, &out, &err), 2);
    CU_ASSERT(contains(err, "--expires: \"2027-13-01\" is not a date"));
    free(out);
    free(err);
    char *argv5[] = {sign, "--key", key, "--payload", pfile, "--customer",
                     "y",  NULL};
    CU_ASSERT_EQUAL(run(argv5, &out, &err), 2);
    free(out);
    free(err);
}

static void test_keygen_tool(void)
{
    char priv[512], pub[512];
    snprintf(priv, sizeof(priv), "%s/kg.key", tmp);
    snprintf(pub, sizeof(pub), "%s/kg.pub", tmp);
    char *kg = (char *)tu_env("VELO_KEYGEN_BIN");
    char *argv[] = {kg, priv, pub, NULL};
    char *out, *err;
    CU_ASSERT_EQUAL(run(argv, &out, &err), 0);
    free(out);
    free(err);
    struct stat st;
    CU_ASSERT_EQUAL_FATAL(stat(priv, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    char *before = tu_read_file(priv, NULL);
    CU_ASSERT(contains(before, "-----BEGIN PRIVATE KEY-----"));
    char *pubtext = tu_read_file(pub, NULL);
    CU_ASSERT(contains(pubtext, "-----BEGIN PUBLIC KEY-----"));
    free(pubtext);

    /* A second run must not replace the private key... */
    CU_ASSERT_EQUAL(run(argv, &out, &err), 1);
    CU_ASSERT(contains(err, "already exists; refusing to replace a private "
                            "key"));
    free(out);
    free(err);
    char *after = tu_read_file(priv, NULL);
    CU_ASSERT_STRING_EQUAL(before, after);
    free(after);
    /* ...unless told to. */
    char *argv2[] = {kg, "--force", priv, pub, NULL};
    CU_ASSERT_EQUAL(run(argv2, &out, &err), 0);
    free(out);
    free(err);
    after = tu_read_file(priv, NULL);
    CU_ASSERT_STRING_NOT_EQUAL(before, after);
    CU_ASSERT_EQUAL(stat(priv, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
    free(after);
    free(before);
}

static int suite_init(void)
{
    tmp = tu_tmpdir();
    return tmp == NULL ? -1 : 0;
}

static int suite_clean(void)
{
    tu_rmrf(tmp);
    free(tmp);
    return 0;
}

int main(void)
{
    /* The children must see only the configuration the tests give. */
    unsetenv("VELO_CONFIG");
    unsetenv("VELO_LICENSE_FILE");
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("license", suite_init, suite_clean);
    CU_add_test(s, "valid", test_valid);
    CU_add_test(s, "missing feature", test_missing_feature);
    CU_add_test(s, "tampered payload", test_tampered_payload);
    CU_add_test(s, "tampered signature", test_tampered_signature);
    CU_add_test(s, "signed by another key", test_other_key);
    CU_add_test(s, "not yet valid", test_not_yet_valid);
    CU_add_test(s, "expired within grace", test_in_grace);
    CU_add_test(s, "expired past grace", test_expired);
    CU_add_test(s, "malformed", test_malformed);
    CU_add_test(s, "truncated", test_truncated);
    CU_add_test(s, "oversized", test_oversized);
    CU_add_test(s, "missing and unreadable", test_missing_and_unreadable);
    CU_add_test(s, "canonical bytes and dates", test_canonical_and_dates);
    CU_add_test(s, "velo license verify/show", test_cli_verify);
    CU_add_test(s, "velo-license-sign", test_sign_tool);
    CU_add_test(s, "velo-license-keygen", test_keygen_tool);
    return tu_run_all();
}
