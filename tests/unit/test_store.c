/*
 * The auth store: password hashing, name and role rules, the auth.json
 * file (atomic writes, permissions, reload on change, locking between
 * processes) and API keys.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>

#include "config/config.h"
#include "store/authstore.h"
#include "testutil.h"
#include "util/log.h"

#define FAST_ITER 1000

static int matches(const char *re, const char *s)
{
    regex_t r;
    if (regcomp(&r, re, REG_EXTENDED | REG_NOSUB) != 0) {
        return 0;
    }
    int ok = regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

static char *path_in(const char *dir, const char *name)
{
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- hashing ------------------------------------------------------------- */

static void test_hash_format(void)
{
    char a[VELO_AUTH_HASH_TEXT_MAX], b[VELO_AUTH_HASH_TEXT_MAX];
    CU_ASSERT_EQUAL(
        velo_auth_hash_password("correct horse", FAST_ITER, a, sizeof(a)),
        VELO_OK);
    CU_ASSERT_EQUAL(
        velo_auth_hash_password("correct horse", FAST_ITER, b, sizeof(b)),
        VELO_OK);
    /* 16-byte salt -> 24 base64 chars, 32-byte hash -> 44. */
    CU_ASSERT_TRUE(matches("^pbkdf2-sha256\\$1000\\$[A-Za-z0-9+/]{22}==\\$"
                           "[A-Za-z0-9+/]{43}=$",
                           a));
    CU_ASSERT_STRING_NOT_EQUAL(a, b); /* a fresh salt each time */
    CU_ASSERT_PTR_NULL(strstr(a, "correct"));
    /* Out of range iterations and a short buffer are refused. */
    CU_ASSERT_EQUAL(velo_auth_hash_password("x", 0, a, sizeof(a)), VELO_ERR);
    CU_ASSERT_EQUAL(velo_auth_hash_password("x", FAST_ITER, a, 20), VELO_ERR);
}

static void test_hash_verify(void)
{
    char h[VELO_AUTH_HASH_TEXT_MAX];
    CU_ASSERT_EQUAL(
        velo_auth_hash_password("s3cret-pass", FAST_ITER, h, sizeof(h)),
        VELO_OK);
    CU_ASSERT_EQUAL(velo_auth_verify_password("s3cret-pass", h), 1);
    CU_ASSERT_EQUAL(velo_auth_verify_password("s3cret-pasS", h), 0);
    CU_ASSERT_EQUAL(velo_auth_verify_password("", h), 0);
    CU_ASSERT_EQUAL(velo_auth_verify_password("s3cret-pass ", h), 0);
}

/* A published PBKDF2-HMAC-SHA256 vector (RFC 7914 style, c=4096): the
 * first 32 bytes of the 40-byte output are the 32-byte output. */
static void test_hash_known_answer(void)
{
    const char *text =
        "pbkdf2-sha256$4096$c2FsdFNBTFRzYWx0U0FMVHNhbHRTQUxUc2FsdFNBTFRzYWx0"
        "$NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+E=";
    CU_ASSERT_EQUAL(velo_auth_verify_password("passwordPASSWORDpassword", text),
                    1);
    CU_ASSERT_EQUAL(velo_auth_verify_password("passwordPASSWORDpasswor", text),
                    0);
}

static void test_hash_malformed(void)
{
    static const char *const bad[] = {
        "",
        "plain",
        "md5$1000$c2FsdHNhbHRzYWx0$aGFzaA==",
        "pbkdf2-sha256$$c2FsdHNhbHRzYWx0c2FsdA==$"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "pbkdf2-sha256$-5$c2FsdHNhbHRzYWx0c2FsdA==$"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "pbkdf2-sha256$1000x$c2FsdHNhbHRzYWx0c2FsdA==$"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==",
        "pbkdf2-sha256$1000$!!!notbase64!!!$"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==$short",
        "pbkdf2-sha256$999999999999$c2FsdHNhbHRzYWx0c2FsdA==$"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(velo_auth_verify_password("x", bad[i]), VELO_ERR);
    }
    CU_ASSERT_EQUAL(velo_auth_verify_password("x", NULL), VELO_ERR);
}

static void test_default_iterations(void)
{
    CU_ASSERT_TRUE(VELO_AUTH_PBKDF2_DEFAULT_ITERATIONS >= 600000);
    struct velo_config cfg;
    CU_ASSERT_EQUAL_FATAL(velo_config_init(&cfg), VELO_OK);
    CU_ASSERT_TRUE(cfg.auth_pbkdf2_iterations >= 600000);
    velo_config_free(&cfg);
}

/* ---- names, roles, keys ------------------------------------------------ */

static void test_username_rules(void)
{
    static const char *const good[] = {
        "alice", "a", "Bob_2", "x.y", "ops@example.com", "team-a"};
    static const char *const bad[] = {"",    "al ice",     "al:ice",   "é",
                                      "a/b", "semi;colon", "tab\tname"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CU_ASSERT_TRUE(velo_auth_valid_username(good[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_FALSE(velo_auth_valid_username(bad[i]));
    }
    char n64[65], n65[66];
    memset(n64, 'a', 64);
    n64[64] = '\0';
    memset(n65, 'a', 65);
    n65[65] = '\0';
    CU_ASSERT_TRUE(velo_auth_valid_username(n64));
    CU_ASSERT_FALSE(velo_auth_valid_username(n65));
    CU_ASSERT_FALSE(velo_auth_valid_username(NULL));
}

static void test_role_rules(void)
{
    char out[VELO_PRINCIPAL_ROLES_MAX], err[256];
    const char *ok[] = {"viewer", "admin", "viewer"};
    CU_ASSERT_EQUAL(
        velo_auth_join_roles(ok, 3, out, sizeof(out), err, sizeof(err)),
        VELO_OK);
    CU_ASSERT_STRING_EQUAL(out, "viewer,admin"); /* duplicates dropped */
    CU_ASSERT_TRUE(velo_auth_has_role(out, "admin"));
    CU_ASSERT_FALSE(velo_auth_has_role(out, "admi"));
    CU_ASSERT_FALSE(velo_auth_has_role("administrator", "admin"));

    const char *bad[] = {"viewer", "superuser"};
    CU_ASSERT_EQUAL(
        velo_auth_join_roles(bad, 2, out, sizeof(out), err, sizeof(err)),
        VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "superuser"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "valid roles: admin, viewer"));
    CU_ASSERT_EQUAL(
        velo_auth_join_roles(bad, 0, out, sizeof(out), err, sizeof(err)),
        VELO_ERR);
}

static void test_apikey_parse(void)
{
    char id[VELO_APIKEY_ID_LEN + 1], sec[VELO_APIKEY_SECRET_LEN + 1];
    const char *good =
        "velo_0123456789ab_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234";
    CU_ASSERT_EQUAL(velo_apikey_parse(good, id, sec), VELO_OK);
    CU_ASSERT_STRING_EQUAL(id, "0123456789ab");
    CU_ASSERT_STRING_EQUAL(sec, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234");
    static const char *const bad[] = {
        "",
        "eyJhbGciOiJIUzI1NiJ9.payload.sig", /* a JWT: not ours */
        "velo_0123456789AB_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234",
        "velo_0123456789ab-abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234",
        "velo_0123456789ab_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_0123",
        "velo_0123456789ab_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_012345",
        "velo_0123456789ab_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_0123+",
        "VELO_0123456789ab_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ-_01234",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(velo_apikey_parse(bad[i], id, sec), VELO_DECLINED);
    }
}

/* ---- the file ------------------------------------------------------------ */

static struct velo_authstore *open_store(const char *dir)
{
    char err[512] = "";
    struct velo_authstore *s =
        velo_authstore_open(dir, FAST_ITER, err, sizeof(err));
    if (s == NULL) {
        fprintf(stderr, "open %s: %s\n", dir, err);
    }
    return s;
}

static int add_user(struct velo_authstore *s, const char *name, const char *pw,
                    const char *roles)
{
    char h[VELO_AUTH_HASH_TEXT_MAX], err[512];
    if (velo_auth_hash_password(pw, FAST_ITER, h, sizeof(h)) != VELO_OK) {
        return VELO_ERR;
    }
    int rc = velo_authstore_user_add(s, name, h, roles, err, sizeof(err));
    if (rc != VELO_OK) {
        fprintf(stderr, "user_add %s: %s\n", name, err);
    }
    return rc;
}

/* Names in dir other than . and .. */
static int count_entries(const char *dir, char *names, size_t cap)
{
    DIR *d = opendir(dir);
    int n = 0;
    names[0] = '\0';
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        n++;
        strncat(names, e->d_name, cap - strlen(names) - 2);
        strcat(names, " ");
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

static void test_store_file(void)
{
    char *tmp = tu_tmpdir();
    char *dir = path_in(tmp, "data/nested"); /* made on the first write */
    struct velo_authstore *s = open_store(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(velo_authstore_user_count(s), 0);
    struct stat st;
    CU_ASSERT_NOT_EQUAL(stat(dir, &st), 0); /* opening wrote nothing */

    CU_ASSERT_EQUAL(add_user(s, "alice", "password-a", "admin"), VELO_OK);
    CU_ASSERT_EQUAL(add_user(s, "bob", "password-b", "viewer"), VELO_OK);
    CU_ASSERT_EQUAL(stat(dir, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0700);
    char *file = path_in(dir, VELO_AUTH_FILE);
    CU_ASSERT_EQUAL_FATAL(stat(file, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);

    /* Only the file and the lock: no temporary left behind. */
    char names[1024];
    CU_ASSERT_EQUAL(count_entries(dir, names, sizeof(names)), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(names, "auth.json"));
    CU_ASSERT_PTR_NOT_NULL(strstr(names, "auth.lock"));

    json_error_t je;
    json_t *root = json_load_file(file, 0, &je);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    json_t *users = json_object_get(root, "users");
    CU_ASSERT_EQUAL(json_array_size(users), 2);
    json_t *u0 = json_array_get(users, 0);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(u0, "name")),
                           "alice");
    CU_ASSERT_TRUE(matches("^pbkdf2-sha256\\$1000\\$",
                           json_string_value(json_object_get(u0, "hash"))));
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_array_get(json_object_get(u0, "roles"), 0)),
        "admin");
    CU_ASSERT_TRUE(matches("^[0-9]{4}-[0-9]{2}-[0-9]{2}T",
                           json_string_value(json_object_get(u0, "created"))));
    json_decref(root);
    char *text = tu_read_file(file, NULL);
    CU_ASSERT_PTR_NULL(strstr(text, "password-a"));
    free(text);

    /* A second handle (another process would do the same) sees it all. */
    struct velo_authstore *s2 = open_store(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s2);
    const struct velo_auth_user *a = velo_authstore_user_find(s2, "alice");
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_STRING_EQUAL(a->roles, "admin");
    CU_ASSERT_EQUAL(velo_auth_verify_password("password-a", a->hash), 1);
    velo_authstore_close(s2);

    /* Rules enforced at the store. */
    char h[VELO_AUTH_HASH_TEXT_MAX], err[512];
    velo_auth_hash_password("whatever-pw", FAST_ITER, h, sizeof(h));
    CU_ASSERT_EQUAL(
        velo_authstore_user_add(s, "alice", h, "admin", err, sizeof(err)),
        VELO_ERR);
    CU_ASSERT_EQUAL(errno, EEXIST);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "already exists"));
    CU_ASSERT_EQUAL(
        velo_authstore_user_add(s, "bad name", h, "admin", err, sizeof(err)),
        VELO_ERR);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(
        velo_authstore_user_add(s, "carol", h, "root", err, sizeof(err)),
        VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "valid roles: admin, viewer"));
    CU_ASSERT_EQUAL(velo_authstore_user_add(s, "carol", "plaintext", "admin",
                                            err, sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_EQUAL(velo_authstore_user_count(s), 2);

    /* Password change and delete. */
    char h2[VELO_AUTH_HASH_TEXT_MAX];
    velo_auth_hash_password("new-password", FAST_ITER, h2, sizeof(h2));
    CU_ASSERT_EQUAL(
        velo_authstore_user_set_hash(s, "bob", h2, err, sizeof(err)), VELO_OK);
    CU_ASSERT_EQUAL(
        velo_auth_verify_password("new-password",
                                  velo_authstore_user_find(s, "bob")->hash),
        1);
    CU_ASSERT_EQUAL(
        velo_authstore_user_set_hash(s, "nobody", h2, err, sizeof(err)),
        VELO_ERR);
    CU_ASSERT_EQUAL(errno, ENOENT);
    size_t revoked = 99;
    CU_ASSERT_EQUAL(
        velo_authstore_user_delete(s, "bob", &revoked, err, sizeof(err)),
        VELO_OK);
    CU_ASSERT_EQUAL(revoked, 0);
    CU_ASSERT_PTR_NULL(velo_authstore_user_find(s, "bob"));
    CU_ASSERT_EQUAL(
        velo_authstore_user_delete(s, "bob", NULL, err, sizeof(err)), VELO_ERR);
    CU_ASSERT_EQUAL(errno, ENOENT);
    CU_ASSERT_EQUAL(count_entries(dir, names, sizeof(names)), 2);

    velo_authstore_close(s);
    free(file);
    free(dir);
    tu_rmrf(tmp);
    free(tmp);
}

static void test_store_apikeys(void)
{
    char *dir = tu_tmpdir();
    struct velo_authstore *s = open_store(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(add_user(s, "alice", "password-a", "admin"), VELO_OK);
    char key[VELO_APIKEY_TEXT_LEN + 1], err[512];
    struct velo_auth_apikey k;
    CU_ASSERT_EQUAL_FATAL(
        velo_authstore_apikey_create(s, "ci pipeline", "alice", "viewer", key,
                                     sizeof(key), &k, err, sizeof(err)),
        VELO_OK);
    CU_ASSERT_TRUE(matches("^velo_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$", key));
    CU_ASSERT_EQUAL(strncmp(key + 5, k.id, 12), 0);
    CU_ASSERT_STRING_EQUAL(k.owner, "alice");
    CU_ASSERT_STRING_EQUAL(k.roles, "viewer");
    CU_ASSERT_FALSE(k.revoked);

    /* Only the SHA-256 of the secret is stored. */
    char *file = path_in(dir, VELO_AUTH_FILE);
    char *text = tu_read_file(file, NULL);
    CU_ASSERT_PTR_NULL(strstr(text, key + 18));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, k.id));
    free(text);

    const struct velo_auth_apikey *got = NULL;
    CU_ASSERT_EQUAL(velo_authstore_apikey_check(s, key, &got, err, sizeof(err)),
                    VELO_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(got);
    CU_ASSERT_STRING_EQUAL(got->id, k.id);

    char wrong[VELO_APIKEY_TEXT_LEN + 1];
    strcpy(wrong, key);
    wrong[VELO_APIKEY_TEXT_LEN - 1] =
        wrong[VELO_APIKEY_TEXT_LEN - 1] == 'A' ? 'B' : 'A';
    CU_ASSERT_EQUAL(
        velo_authstore_apikey_check(s, wrong, &got, err, sizeof(err)),
        VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "wrong secret"));
    memcpy(wrong, key, sizeof(wrong));
    memcpy(wrong + 5, "ffffffffffff", 12);
    if (strcmp(k.id, "ffffffffffff") != 0) {
        CU_ASSERT_EQUAL(
            velo_authstore_apikey_check(s, wrong, &got, err, sizeof(err)),
            VELO_ERR);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown API key"));
    }
    CU_ASSERT_EQUAL(velo_authstore_apikey_check(s, "some-jwt.token.x", &got,
                                                err, sizeof(err)),
                    VELO_DECLINED);

    /* Revoke: the key stops working, a second revoke says so. */
    CU_ASSERT_EQUAL(velo_authstore_apikey_revoke(s, k.id, err, sizeof(err)),
                    VELO_OK);
    CU_ASSERT_EQUAL(velo_authstore_apikey_check(s, key, &got, err, sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "revoked"));
    CU_ASSERT_EQUAL(velo_authstore_apikey_revoke(s, k.id, err, sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_EQUAL(errno, EALREADY);
    CU_ASSERT_EQUAL(
        velo_authstore_apikey_revoke(s, "000000000000", err, sizeof(err)),
        VELO_ERR);
    CU_ASSERT_EQUAL(errno, ENOENT);
    CU_ASSERT_TRUE(velo_authstore_apikey_find(s, k.id)->revoked);
    CU_ASSERT_NOT_EQUAL(velo_authstore_apikey_find(s, k.id)->revoked_at[0],
                        '\0');

    /* Deleting a user revokes the keys it owns. */
    char key2[VELO_APIKEY_TEXT_LEN + 1];
    struct velo_auth_apikey k2;
    CU_ASSERT_EQUAL(velo_authstore_apikey_create(s, "deploy", "alice", "admin",
                                                 key2, sizeof(key2), &k2, err,
                                                 sizeof(err)),
                    VELO_OK);
    size_t revoked = 0;
    CU_ASSERT_EQUAL(
        velo_authstore_user_delete(s, "alice", &revoked, err, sizeof(err)),
        VELO_OK);
    CU_ASSERT_EQUAL(revoked, 1);
    CU_ASSERT_EQUAL(
        velo_authstore_apikey_check(s, key2, &got, err, sizeof(err)), VELO_ERR);

    /* Bad input. */
    CU_ASSERT_EQUAL(velo_authstore_apikey_create(s, "", NULL, "viewer", key,
                                                 sizeof(key), NULL, err,
                                                 sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_EQUAL(velo_authstore_apikey_create(s, "x", NULL, "owner", key,
                                                 sizeof(key), NULL, err,
                                                 sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "valid roles"));
    CU_ASSERT_EQUAL(velo_authstore_apikey_count(s), 2);

    velo_authstore_close(s);
    free(file);
    tu_rmrf(dir);
    free(dir);
}

static void test_store_reload(void)
{
    char *dir = tu_tmpdir();
    struct velo_authstore *server = open_store(dir);
    struct velo_authstore *cli = open_store(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(server);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cli);
    CU_ASSERT_EQUAL(add_user(cli, "alice", "password-a", "admin"), VELO_OK);

    /* Checked at most once a second unless forced. */
    CU_ASSERT_EQUAL(velo_authstore_refresh(server, 0), 0);
    CU_ASSERT_PTR_NULL(velo_authstore_user_find(server, "alice"));
    usleep(1100 * 1000);
    CU_ASSERT_EQUAL(velo_authstore_refresh(server, 0), 1);
    CU_ASSERT_PTR_NOT_NULL(velo_authstore_user_find(server, "alice"));
    /* Unchanged file: nothing to do even when forced. */
    CU_ASSERT_EQUAL(velo_authstore_refresh(server, 1), 0);

    CU_ASSERT_EQUAL(add_user(cli, "bob", "password-b", "viewer"), VELO_OK);
    CU_ASSERT_EQUAL(velo_authstore_refresh(server, 1), 1);
    CU_ASSERT_EQUAL(velo_authstore_user_count(server), 2);

    /* A modification through the stale handle keeps the other's change:
     * each write re-reads the file under the lock first. */
    CU_ASSERT_EQUAL(add_user(cli, "carol", "password-c", "viewer"), VELO_OK);
    CU_ASSERT_EQUAL(add_user(server, "dave", "password-d", "viewer"), VELO_OK);
    CU_ASSERT_EQUAL(velo_authstore_user_count(server), 4);
    CU_ASSERT_PTR_NOT_NULL(velo_authstore_user_find(server, "carol"));

    /* A broken file keeps the last good content and says so. */
    char *file = path_in(dir, VELO_AUTH_FILE);
    CU_ASSERT_EQUAL(tu_write_file(file, "{\"users\": [", 11), 0);
    CU_ASSERT_EQUAL(velo_authstore_refresh(server, 1), VELO_ERR);
    CU_ASSERT_EQUAL(velo_authstore_user_count(server), 4);

    /* And opening it fails with the file and line. */
    char err[512] = "";
    CU_ASSERT_PTR_NULL(velo_authstore_open(dir, FAST_ITER, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, file));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, ":1:"));

    static const char bad_role[] =
        "{\"users\":[{\"name\":\"eve\",\"roles\":[\"root\"],\"hash\":"
        "\"pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0c2FsdA==$"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"}]}";
    CU_ASSERT_EQUAL(tu_write_file(file, bad_role, sizeof(bad_role) - 1), 0);
    CU_ASSERT_PTR_NULL(velo_authstore_open(dir, FAST_ITER, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown role 'root'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "users[0]"));

    velo_authstore_close(server);
    velo_authstore_close(cli);
    free(file);
    tu_rmrf(dir);
    free(dir);
}

/* Another process holds the lock: a write waits for it, then keeps both
 * processes' changes. */
static void test_store_lock(void)
{
    char *dir = tu_tmpdir();
    char *lock = path_in(dir, VELO_AUTH_LOCK_FILE);
    int pipefd[2];
    CU_ASSERT_EQUAL_FATAL(pipe(pipefd), 0);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0) {
        int fd = open(lock, O_RDWR | O_CREAT, 0600);
        flock(fd, LOCK_EX);
        if (write(pipefd[1], "L", 1) != 1) {
            _exit(2);
        }
        usleep(800 * 1000);
        _exit(0); /* exit releases the lock */
    }
    char c;
    CU_ASSERT_EQUAL(read(pipefd[0], &c, 1), 1);
    struct velo_authstore *s = open_store(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    double t0 = mono_now();
    CU_ASSERT_EQUAL(add_user(s, "alice", "password-a", "admin"), VELO_OK);
    double waited = mono_now() - t0;
    CU_ASSERT_TRUE(waited >= 0.5);
    int st;
    waitpid(pid, &st, 0);
    close(pipefd[0]);
    close(pipefd[1]);

    /* Several writers at once: no change is lost. */
    enum { WRITERS = 6 };
    pid_t pids[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            struct velo_authstore *w =
                velo_authstore_open(dir, FAST_ITER, NULL, 0);
            char name[16];
            snprintf(name, sizeof(name), "writer%d", i);
            int rc = w != NULL ? add_user(w, name, "password-w", "viewer")
                               : VELO_ERR;
            _exit(rc == VELO_OK ? 0 : 1);
        }
    }
    for (int i = 0; i < WRITERS; i++) {
        waitpid(pids[i], &st, 0);
        CU_ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    CU_ASSERT_EQUAL(velo_authstore_refresh(s, 1), 1);
    CU_ASSERT_EQUAL(velo_authstore_user_count(s), 1 + WRITERS);
    char names[1024];
    CU_ASSERT_EQUAL(count_entries(dir, names, sizeof(names)), 2);
    velo_authstore_close(s);
    free(lock);
    tu_rmrf(dir);
    free(dir);
}

static void test_store_open_errors(void)
{
    char err[512] = "";
    CU_ASSERT_PTR_NULL(velo_authstore_open("", FAST_ITER, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "server.data_dir"));
    CU_ASSERT_PTR_NULL(velo_authstore_open("/tmp", 0, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "auth.pbkdf2_iterations"));

    /* data_dir is a file. */
    char *dir = tu_tmpdir();
    char *file = path_in(dir, "plainfile");
    tu_write_file(file, "x", 1);
    CU_ASSERT_PTR_NULL(velo_authstore_open(file, FAST_ITER, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a directory"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, file));

    /* Below a file: the path cannot exist, and the error names it. */
    char *below = path_in(file, "data");
    CU_ASSERT_PTR_NULL(velo_authstore_open(below, FAST_ITER, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, below));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Not a directory"));
    free(below);
    free(file);
    tu_rmrf(dir);
    free(dir);
}

/* ---- the CLI verbs ------------------------------------------------------- */

/* Run a shell command line; stdout and stderr into out and err (either
 * may be NULL). @return the exit status. */
static int sh(const char *cmd, char **out, char **err)
{
    struct tu_proc p;
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    int st = tu_run(&p, argv, NULL, 60000);
    char *o = tu_proc_stdout(&p), *e = tu_proc_stderr(&p);
    if (out != NULL) {
        *out = o;
    } else {
        free(o);
    }
    if (err != NULL) {
        *err = e;
    } else {
        free(e);
    }
    unlink(p.out_path);
    unlink(p.err_path);
    return st;
}

static int contains(const char *hay, const char *needle)
{
    return hay != NULL && strstr(hay, needle) != NULL;
}

static void test_cli_user(void)
{
    const char *bin = tu_env("VELO_BIN");
    char *tmp = tu_tmpdir();
    char dir[600], common[800], cmd[2048];
    snprintf(dir, sizeof(dir), "%s/data", tmp);
    snprintf(common, sizeof(common),
             "--data-dir %s --set auth.pbkdf2_iterations=1000", dir);
    char *out, *err;

    snprintf(cmd, sizeof(cmd), "%s user --help", bin);
    CU_ASSERT_EQUAL(sh(cmd, &out, NULL), 0);
    CU_ASSERT_TRUE(contains(out, "Usage: velo user"));
    free(out);

    /* A password from stdin (not a terminal), with --password-stdin. */
    snprintf(cmd, sizeof(cmd),
             "printf 'first-password\\n' | %s user add alice --role admin "
             "--password-stdin %s",
             bin, common);
    CU_ASSERT_EQUAL(sh(cmd, &out, &err), 0);
    CU_ASSERT_TRUE(contains(out, "Created user alice (roles: admin)"));
    free(out);
    free(err);
    struct stat st;
    CU_ASSERT_EQUAL(stat(dir, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0700);

    /* Without the flag, stdin that is not a terminal is read the same. */
    snprintf(cmd, sizeof(cmd), "printf 'bobs-password\\n' | %s user add bob %s",
             bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, NULL), 0);

    struct velo_authstore *s = open_store(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const struct velo_auth_user *u = velo_authstore_user_find(s, "alice");
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    CU_ASSERT_EQUAL(velo_auth_verify_password("first-password", u->hash), 1);
    CU_ASSERT_TRUE(matches("^pbkdf2-sha256\\$1000\\$", u->hash));
    u = velo_authstore_user_find(s, "bob");
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    CU_ASSERT_STRING_EQUAL(u->roles, "viewer"); /* the default */
    velo_authstore_close(s);

    /* Runtime failures: exit 1 with the reason. */
    snprintf(cmd, sizeof(cmd),
             "printf 'other-password\\n' | %s user add alice %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 1);
    CU_ASSERT_TRUE(contains(err, "already exists"));
    free(err);
    snprintf(cmd, sizeof(cmd),
             "printf 'other-password\\n' | %s user add carol --role root %s",
             bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 1);
    CU_ASSERT_TRUE(contains(err, "valid roles: admin, viewer"));
    free(err);
    snprintf(cmd, sizeof(cmd), "printf 'short\\n' | %s user add carol %s", bin,
             common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 1);
    CU_ASSERT_TRUE(contains(err, "8 to 1024 characters"));
    free(err);
    snprintf(cmd, sizeof(cmd), "%s user add carol %s < /dev/null", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 1);
    CU_ASSERT_TRUE(contains(err, "no password on stdin"));
    free(err);
    snprintf(cmd, sizeof(cmd),
             "printf 'other-password\\n' | %s user add 'bad name' %s", bin,
             common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 1);
    CU_ASSERT_TRUE(contains(err, "invalid user name"));
    free(err);

    /* Usage errors: exit 2. */
    snprintf(cmd, sizeof(cmd), "%s user add %s < /dev/null", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 2);
    CU_ASSERT_TRUE(contains(err, "NAME is required"));
    free(err);
    snprintf(cmd, sizeof(cmd), "%s user frobnicate %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, NULL), 2);
    snprintf(cmd, sizeof(cmd), "%s user add x --bogus %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, NULL), 2);
    snprintf(cmd, sizeof(cmd), "%s user list --format yaml %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, NULL), 2);
    snprintf(cmd, sizeof(cmd), "%s user", bin);
    CU_ASSERT_EQUAL(sh(cmd, NULL, NULL), 2);

    /* passwd, list, delete. */
    snprintf(cmd, sizeof(cmd),
             "printf 'second-password\\n' | %s user passwd alice %s", bin,
             common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof(cmd),
             "printf 'second-password\\n' | %s user passwd nobody %s", bin,
             common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 1);
    CU_ASSERT_TRUE(contains(err, "no user nobody"));
    free(err);
    s = open_store(dir);
    CU_ASSERT_EQUAL(
        velo_auth_verify_password("second-password",
                                  velo_authstore_user_find(s, "alice")->hash),
        1);
    velo_authstore_close(s);

    snprintf(cmd, sizeof(cmd), "%s user list %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, &out, NULL), 0);
    CU_ASSERT_TRUE(contains(out, "NAME"));
    CU_ASSERT_TRUE(contains(out, "alice"));
    CU_ASSERT_TRUE(contains(out, "viewer"));
    CU_ASSERT_FALSE(contains(out, "pbkdf2"));
    free(out);
    snprintf(cmd, sizeof(cmd), "%s user list --format json %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, &out, NULL), 0);
    json_error_t je;
    json_t *arr = json_loads(out != NULL ? out : "", 0, &je);
    CU_ASSERT_EQUAL(json_array_size(arr), 2);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(json_array_get(arr, 0), "name")),
        "alice");
    CU_ASSERT_PTR_NULL(json_object_get(json_array_get(arr, 0), "hash"));
    json_decref(arr);
    free(out);

    snprintf(cmd, sizeof(cmd), "%s user delete bob %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, &out, NULL), 0);
    CU_ASSERT_TRUE(contains(out, "Deleted user bob"));
    free(out);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 1);
    CU_ASSERT_TRUE(contains(err, "no user bob"));
    free(err);
    tu_rmrf(tmp);
    free(tmp);
}

static void test_cli_apikey(void)
{
    const char *bin = tu_env("VELO_BIN");
    char *dir = tu_tmpdir();
    char common[800], cmd[2048];
    snprintf(common, sizeof(common),
             "--data-dir %s --set auth.pbkdf2_iterations=1000", dir);
    char *out, *err;
    snprintf(cmd, sizeof(cmd),
             "printf 'first-password\\n' | %s user add alice %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, NULL), 0);

    /* The key alone on stdout; the rest on stderr. */
    snprintf(cmd, sizeof(cmd),
             "%s apikey create --name ci --owner alice --role viewer %s", bin,
             common);
    CU_ASSERT_EQUAL(sh(cmd, &out, &err), 0);
    char key[128] = "";
    sscanf(out != NULL ? out : "", "%127s", key);
    CU_ASSERT_TRUE(matches("^velo_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$", key));
    CU_ASSERT_TRUE(contains(err, "shown only this once"));
    free(out);
    free(err);
    char id[16];
    snprintf(id, sizeof(id), "%.12s", key + 5);

    snprintf(cmd, sizeof(cmd),
             "%s apikey create --name deploy --role admin --format json %s",
             bin, common);
    CU_ASSERT_EQUAL(sh(cmd, &out, NULL), 0);
    json_error_t je;
    json_t *j = json_loads(out != NULL ? out : "", 0, &je);
    CU_ASSERT_PTR_NOT_NULL(j);
    CU_ASSERT_TRUE(
        matches("^velo_", json_string_value(json_object_get(j, "key"))
                              ? json_string_value(json_object_get(j, "key"))
                              : ""));
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_array_get(json_object_get(j, "roles"), 0)),
        "admin");
    json_decref(j);
    free(out);

    struct velo_authstore *s = open_store(dir);
    const struct velo_auth_apikey *k;
    char why[256];
    CU_ASSERT_EQUAL(velo_authstore_apikey_check(s, key, &k, why, sizeof(why)),
                    VELO_OK);
    velo_authstore_close(s);

    /* list: no secrets, in text and JSON. */
    snprintf(cmd, sizeof(cmd), "%s apikey list %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, &out, NULL), 0);
    CU_ASSERT_TRUE(contains(out, id));
    CU_ASSERT_TRUE(contains(out, "active"));
    CU_ASSERT_FALSE(contains(out, key + 18));
    free(out);
    snprintf(cmd, sizeof(cmd), "%s apikey list --format json %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, &out, NULL), 0);
    j = json_loads(out != NULL ? out : "", 0, &je);
    CU_ASSERT_EQUAL(json_array_size(j), 2);
    CU_ASSERT_PTR_NULL(json_object_get(json_array_get(j, 0), "key"));
    CU_ASSERT_PTR_NULL(json_object_get(json_array_get(j, 0), "hash"));
    json_decref(j);
    free(out);

    /* revoke, twice. */
    snprintf(cmd, sizeof(cmd), "%s apikey revoke %s %s", bin, id, common);
    CU_ASSERT_EQUAL(sh(cmd, &out, NULL), 0);
    CU_ASSERT_TRUE(contains(out, "Revoked API key"));
    free(out);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 1);
    CU_ASSERT_TRUE(contains(err, "already revoked"));
    free(err);
    snprintf(cmd, sizeof(cmd), "%s apikey list %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, &out, NULL), 0);
    CU_ASSERT_TRUE(contains(out, "revoked"));
    free(out);

    /* Failures and usage errors. */
    snprintf(cmd, sizeof(cmd), "%s apikey revoke 000000000000 %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 1);
    CU_ASSERT_TRUE(contains(err, "no API key"));
    free(err);
    snprintf(cmd, sizeof(cmd), "%s apikey create --name x --owner ghost %s",
             bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 1);
    CU_ASSERT_TRUE(contains(err, "no user ghost"));
    free(err);
    snprintf(cmd, sizeof(cmd), "%s apikey create --name x --role god %s", bin,
             common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 1);
    CU_ASSERT_TRUE(contains(err, "valid roles"));
    free(err);
    snprintf(cmd, sizeof(cmd), "%s apikey create %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, &err), 2);
    CU_ASSERT_TRUE(contains(err, "--name"));
    free(err);
    snprintf(cmd, sizeof(cmd), "%s apikey revoke %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, NULL), 2);
    snprintf(cmd, sizeof(cmd), "%s apikey rotate %s", bin, common);
    CU_ASSERT_EQUAL(sh(cmd, NULL, NULL), 2);
    snprintf(cmd, sizeof(cmd), "%s apikey --help", bin);
    CU_ASSERT_EQUAL(sh(cmd, &out, NULL), 0);
    CU_ASSERT_TRUE(contains(out, "Usage: velo apikey"));
    free(out);
    tu_rmrf(dir);
    free(dir);
}

/* Read from a pty until `want` shows up (or 5 s). @return 1 when seen. */
static int pty_expect(int fd, const char *want, char *seen, size_t cap)
{
    size_t n = strlen(seen);
    for (int i = 0; i < 500; i++) {
        if (strstr(seen, want) != NULL) {
            return 1;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) > 0) {
            ssize_t r = read(fd, seen + n, cap - n - 1);
            if (r <= 0) {
                break;
            }
            n += (size_t)r;
            seen[n] = '\0';
        }
    }
    return strstr(seen, want) != NULL;
}

/* On a terminal the password is asked twice, without echo. */
static void test_cli_tty_prompt(void)
{
    const char *bin = tu_env("VELO_BIN");
    char *dir = tu_tmpdir();
    /* Mismatch first: it must leave no user behind. */
    for (int mismatch = 1; mismatch >= 0; mismatch--) {
        int master;
        pid_t pid = forkpty(&master, NULL, NULL, NULL);
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
            execl(bin, bin, "user", "add", "dave", "--role", "admin",
                  "--data-dir", dir, "--set", "auth.pbkdf2_iterations=1000",
                  (char *)NULL);
            _exit(127);
        }
        char seen[4096] = "";
        CU_ASSERT_TRUE(
            pty_expect(master, "Password for dave: ", seen, sizeof(seen)));
        CU_ASSERT_EQUAL(write(master, "tty-secret-1\n", 13), 13);
        CU_ASSERT_TRUE(
            pty_expect(master, "Repeat the password: ", seen, sizeof(seen)));
        const char *again = mismatch ? "tty-secret-2\n" : "tty-secret-1\n";
        CU_ASSERT_EQUAL(write(master, again, 13), 13);
        pty_expect(master, mismatch ? "do not match" : "Created user", seen,
                   sizeof(seen));
        int st;
        waitpid(pid, &st, 0);
        close(master);
        CU_ASSERT_TRUE(WIFEXITED(st));
        CU_ASSERT_EQUAL(WEXITSTATUS(st), mismatch ? 1 : 0);
        CU_ASSERT_PTR_NULL(strstr(seen, "tty-secret")); /* no echo */
        CU_ASSERT_PTR_NOT_NULL(
            strstr(seen, mismatch ? "do not match" : "Created user dave"));
    }
    struct velo_authstore *s = open_store(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    const struct velo_auth_user *u = velo_authstore_user_find(s, "dave");
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    CU_ASSERT_EQUAL(velo_auth_verify_password("tty-secret-1", u->hash), 1);
    velo_authstore_close(s);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    velo_log_set_level(VELO_LOG_ERROR);
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("store", NULL, NULL);
    CU_add_test(s, "hash format", test_hash_format);
    CU_add_test(s, "hash verify", test_hash_verify);
    CU_add_test(s, "hash known answer", test_hash_known_answer);
    CU_add_test(s, "hash malformed", test_hash_malformed);
    CU_add_test(s, "default iterations", test_default_iterations);
    CU_add_test(s, "user name rules", test_username_rules);
    CU_add_test(s, "role rules", test_role_rules);
    CU_add_test(s, "api key parse", test_apikey_parse);
    CU_add_test(s, "file, modes, no temp files", test_store_file);
    CU_add_test(s, "api keys", test_store_apikeys);
    CU_add_test(s, "reload on change", test_store_reload);
    CU_add_test(s, "lock between processes", test_store_lock);
    CU_add_test(s, "open errors", test_store_open_errors);
    CU_add_test(s, "velo user", test_cli_user);
    CU_add_test(s, "velo apikey", test_cli_apikey);
    CU_add_test(s, "velo user on a terminal", test_cli_tty_prompt);
    return tu_run_all();
}
