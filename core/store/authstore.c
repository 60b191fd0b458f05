/*
 * The embedded auth store (see authstore.h for the file format and the
 * locking rules).
 */
#include "store/authstore.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "util/log.h"

#define AUTH_HASH_SCHEME "pbkdf2-sha256"
#define AUTH_FILE_VERSION 1
#define AUTH_REFRESH_INTERVAL_NS 1000000000LL

struct velo_authstore {
    char *dir;
    char *path;      /* dir/auth.json */
    char *lock_path; /* dir/auth.lock */
    int64_t iterations;

    struct velo_auth_user *users;
    size_t n_users;
    struct velo_auth_apikey *keys;
    size_t n_keys;

    /* What the content in memory was read from, to notice changes. */
    int have_stat;
    dev_t st_dev;
    ino_t st_ino;
    off_t st_size;
    struct timespec st_mtim;
    struct timespec last_check; /* CLOCK_MONOTONIC */
    int bad_file_logged;
};

/* ---- encodings --------------------------------------------------------- */

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encode n bytes; pad with '=' when `pad`. @return chars written or -1. */
static int b64_encode(const unsigned char *in, size_t n, const char *alpha,
                      int pad, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        size_t rem = n - i;
        if (rem > 1) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (rem > 2) {
            v |= in[i + 2];
        }
        char q[4] = {alpha[(v >> 18) & 63], alpha[(v >> 12) & 63],
                     alpha[(v >> 6) & 63], alpha[v & 63]};
        size_t emit = rem >= 3 ? 4 : rem + 1;
        for (size_t k = 0; k < 4; k++) {
            if (k >= emit && !pad) {
                break;
            }
            if (o + 1 >= outlen) {
                return -1;
            }
            out[o++] = k < emit ? q[k] : '=';
        }
    }
    if (o >= outlen) {
        return -1;
    }
    out[o] = '\0';
    return (int)o;
}

static int b64_value(char c, const char *alpha)
{
    const char *p = c != '\0' ? strchr(alpha, c) : NULL;
    return p != NULL ? (int)(p - alpha) : -1;
}

/* Decode standard base64 (padding optional). @return bytes or -1. */
static int b64_decode(const char *in, size_t n, const char *alpha,
                      unsigned char *out, size_t outlen)
{
    while (n > 0 && in[n - 1] == '=') {
        n--;
    }
    if (n % 4 == 1) {
        return -1;
    }
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(in[i], alpha);
        if (v < 0) {
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outlen) {
                return -1;
            }
            out[o++] = (unsigned char)((acc >> bits) & 0xff);
        }
    }
    return (int)o;
}

int velo_auth_base64_decode(const char *in, size_t n, unsigned char *out,
                            size_t outlen)
{
    return b64_decode(in, n, b64_std, out, outlen);
}

static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hex_decode(const char *in, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int v = 0;
        for (int k = 0; k < 2; k++) {
            char c = in[2 * i + k];
            int d;
            if (c >= '0' && c <= '9') {
                d = c - '0';
            } else if (c >= 'a' && c <= 'f') {
                d = c - 'a' + 10;
            } else if (c >= 'A' && c <= 'F') {
                d = c - 'A' + 10;
            } else {
                return -1;
            }
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    return in[2 * n] == '\0' ? 0 : -1;
}

static void now_rfc3339(char out[VELO_AUTH_TIME_MAX])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, VELO_AUTH_TIME_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        return -1;
    }
    memcpy(dst, src, n + 1);
    return 0;
}

/* ---- passwords ---------------------------------------------------------- */

int velo_auth_hash_password(const char *password, int64_t iterations, char *out,
                            size_t outlen)
{
    if (password == NULL || iterations < 1 ||
        iterations > VELO_AUTH_PBKDF2_MAX_ITERATIONS) {
        errno = EINVAL;
        return VELO_ERR;
    }
    unsigned char salt[VELO_AUTH_SALT_LEN], dk[VELO_AUTH_HASH_LEN];
    if (RAND_bytes(salt, sizeof(salt)) != 1 ||
        PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt,
                          (int)sizeof(salt), (int)iterations, EVP_sha256(),
                          (int)sizeof(dk), dk) != 1) {
        errno = EIO;
        return VELO_ERR;
    }
    char s64[32], h64[64];
    b64_encode(salt, sizeof(salt), b64_std, 1, s64, sizeof(s64));
    b64_encode(dk, sizeof(dk), b64_std, 1, h64, sizeof(h64));
    OPENSSL_cleanse(dk, sizeof(dk));
    int n = snprintf(out, outlen, AUTH_HASH_SCHEME "$%lld$%s$%s",
                     (long long)iterations, s64, h64);
    if (n < 0 || (size_t)n >= outlen) {
        errno = ENOSPC;
        return VELO_ERR;
    }
    return VELO_OK;
}

/* Split a hash text into its parts. @return VELO_OK or VELO_ERR. */
static int parse_hash(const char *text, long long *iter, unsigned char *salt,
                      int *salt_len, unsigned char *hash, int *hash_len)
{
    const size_t scheme_len = strlen(AUTH_HASH_SCHEME);
    if (text == NULL || strncmp(text, AUTH_HASH_SCHEME, scheme_len) != 0 ||
        text[scheme_len] != '$') {
        return VELO_ERR;
    }
    const char *p = text + scheme_len + 1;
    char *end;
    errno = 0;
    long long it = strtoll(p, &end, 10);
    if (errno != 0 || end == p || *end != '$' || it < 1 ||
        it > VELO_AUTH_PBKDF2_MAX_ITERATIONS) {
        return VELO_ERR;
    }
    const char *s = end + 1;
    const char *d = strchr(s, '$');
    if (d == NULL) {
        return VELO_ERR;
    }
    int sl = b64_decode(s, (size_t)(d - s), b64_std, salt, 64);
    int hl = b64_decode(d + 1, strlen(d + 1), b64_std, hash, 64);
    if (sl < 8 || hl < 16) {
        return VELO_ERR;
    }
    *iter = it;
    *salt_len = sl;
    *hash_len = hl;
    return VELO_OK;
}

int velo_auth_verify_password(const char *password, const char *hash_text)
{
    long long iter;
    unsigned char salt[64], want[64], got[64];
    int sl, hl;
    if (password == NULL ||
        parse_hash(hash_text, &iter, salt, &sl, want, &hl) != VELO_OK) {
        return VELO_ERR;
    }
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, sl, (int)iter,
                          EVP_sha256(), hl, got) != 1) {
        return VELO_ERR;
    }
    int ok = CRYPTO_memcmp(got, want, (size_t)hl) == 0;
    OPENSSL_cleanse(got, sizeof(got));
    return ok;
}

/* ---- names and roles ---------------------------------------------------- */

int velo_auth_valid_username(const char *name)
{
    if (name == NULL) {
        return 0;
    }
    size_t n = strlen(name);
    if (n < 1 || n > VELO_AUTH_NAME_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(isascii(c) &&
              (isalnum(c) || c == '_' || c == '.' || c == '@' || c == '-'))) {
            return 0;
        }
    }
    return 1;
}

/* Labels and owners: printable, no control characters, bounded. */
static int valid_label(const char *s, size_t max)
{
    if (s == NULL) {
        return 0;
    }
    size_t n = strlen(s);
    if (n < 1 || n > max) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return 0;
        }
    }
    return 1;
}

static const char *const builtin_roles[] = {"admin", "viewer"};

int velo_auth_valid_role(const char *role)
{
    for (size_t i = 0; i < sizeof(builtin_roles) / sizeof(*builtin_roles);
         i++) {
        if (role != NULL && strcmp(role, builtin_roles[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

const char *velo_auth_role_list(void)
{
    return "admin, viewer";
}

int velo_auth_has_role(const char *roles, const char *role)
{
    if (roles == NULL || role == NULL) {
        return 0;
    }
    size_t rl = strlen(role);
    const char *p = roles;
    while (*p != '\0') {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        if (n == rl && strncmp(p, role, n) == 0) {
            return 1;
        }
        if (e == NULL) {
            break;
        }
        p = e + 1;
    }
    return 0;
}

int velo_auth_join_roles(const char *const *roles, size_t n, char *out,
                         size_t outlen, char *err, size_t errlen)
{
    if (outlen == 0) {
        return VELO_ERR;
    }
    out[0] = '\0';
    if (n == 0) {
        snprintf(err, errlen, "no role given (valid roles: %s)",
                 velo_auth_role_list());
        errno = EINVAL;
        return VELO_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        if (!velo_auth_valid_role(roles[i])) {
            snprintf(err, errlen, "unknown role '%s' (valid roles: %s)",
                     roles[i] != NULL ? roles[i] : "", velo_auth_role_list());
            errno = EINVAL;
            return VELO_ERR;
        }
        if (velo_auth_has_role(out, roles[i])) {
            continue;
        }
        size_t used = strlen(out);
        int w = snprintf(out + used, outlen - used, "%s%s", used > 0 ? "," : "",
                         roles[i]);
        if (w < 0 || (size_t)w >= outlen - used) {
            snprintf(err, errlen, "too many roles");
            errno = EINVAL;
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

/* Check an already joined list read from the file or given by a caller. */
static int valid_role_list(const char *roles, char *err, size_t errlen)
{
    if (roles == NULL || roles[0] == '\0') {
        snprintf(err, errlen, "no role given (valid roles: %s)",
                 velo_auth_role_list());
        return 0;
    }
    char buf[VELO_PRINCIPAL_ROLES_MAX];
    if (copy_str(buf, sizeof(buf), roles) != 0) {
        snprintf(err, errlen, "role list too long");
        return 0;
    }
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (!velo_auth_valid_role(tok)) {
            snprintf(err, errlen, "unknown role '%s' (valid roles: %s)", tok,
                     velo_auth_role_list());
            return 0;
        }
    }
    return 1;
}

int velo_apikey_parse(const char *token, char id[VELO_APIKEY_ID_LEN + 1],
                      char secret[VELO_APIKEY_SECRET_LEN + 1])
{
    if (token == NULL || strlen(token) != VELO_APIKEY_TEXT_LEN ||
        strncmp(token, VELO_APIKEY_PREFIX, 5) != 0 ||
        token[5 + VELO_APIKEY_ID_LEN] != '_') {
        return VELO_DECLINED;
    }
    for (size_t i = 0; i < VELO_APIKEY_ID_LEN; i++) {
        char c = token[5 + i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return VELO_DECLINED;
        }
    }
    const char *sec = token + 5 + VELO_APIKEY_ID_LEN + 1;
    for (size_t i = 0; i < VELO_APIKEY_SECRET_LEN; i++) {
        if (b64_value(sec[i], b64_url) < 0) {
            return VELO_DECLINED;
        }
    }
    memcpy(id, token + 5, VELO_APIKEY_ID_LEN);
    id[VELO_APIKEY_ID_LEN] = '\0';
    memcpy(secret, sec, VELO_APIKEY_SECRET_LEN);
    secret[VELO_APIKEY_SECRET_LEN] = '\0';
    return VELO_OK;
}

/* ---- file I/O ----------------------------------------------------------- */

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p != NULL) {
        snprintf(p, n, "%s/%s", dir, name);
    }
    return p;
}

/* mkdir -p with mode 0700 for the last component. */
static int make_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "data directory %s is not a directory", dir);
            errno = ENOTDIR;
            return VELO_ERR;
        }
        return VELO_OK;
    }
    char *tmp = strdup(dir);
    if (tmp == NULL) {
        snprintf(err, errlen, "out of memory");
        return VELO_ERR;
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                snprintf(err, errlen, "cannot create directory %s: %s", tmp,
                         strerror(e));
                free(tmp);
                errno = e;
                return VELO_ERR;
            }
            *p = '/';
        }
    }
    free(tmp);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        snprintf(err, errlen,
                 "cannot create data directory %s: %s (hint: set "
                 "server.data_dir to a writable directory)",
                 dir, strerror(e));
        errno = e;
        return VELO_ERR;
    }
    return VELO_OK;
}

static const char *json_str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* roles: ["a","b"] -> "a,b", checked. */
static int roles_from_json(json_t *arr, char *out, size_t outlen, char *err,
                           size_t errlen)
{
    if (!json_is_array(arr)) {
        snprintf(err, errlen, "\"roles\" must be an array of strings");
        return VELO_ERR;
    }
    const char *names[VELO_AUTH_MAX_ROLES];
    size_t n = json_array_size(arr);
    if (n > VELO_AUTH_MAX_ROLES) {
        snprintf(err, errlen, "too many roles (at most %d)",
                 VELO_AUTH_MAX_ROLES);
        return VELO_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        names[i] = json_string_value(json_array_get(arr, i));
        if (names[i] == NULL) {
            snprintf(err, errlen, "\"roles\" must be an array of strings");
            return VELO_ERR;
        }
    }
    return velo_auth_join_roles(names, n, out, outlen, err, errlen);
}

static json_t *roles_to_json(const char *roles)
{
    json_t *arr = json_array();
    char buf[VELO_PRINCIPAL_ROLES_MAX];
    if (arr == NULL || copy_str(buf, sizeof(buf), roles) != 0) {
        return arr;
    }
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        json_array_append_new(arr, json_string(tok));
    }
    return arr;
}

struct content {
    struct velo_auth_user *users;
    size_t n_users;
    struct velo_auth_apikey *keys;
    size_t n_keys;
};

static void content_free(struct content *c)
{
    free(c->users);
    free(c->keys);
    memset(c, 0, sizeof(*c));
}

static int parse_user(json_t *u, size_t idx, struct velo_auth_user *out,
                      char *err, size_t errlen)
{
    char why[256] = "";
    const char *name = json_str(u, "name");
    const char *hash = json_str(u, "hash");
    const char *created = json_str(u, "created");
    long long it;
    unsigned char salt[64], h[64];
    int sl, hl;
    memset(out, 0, sizeof(*out));
    if (!json_is_object(u)) {
        snprintf(why, sizeof(why), "not an object");
    } else if (!velo_auth_valid_username(name)) {
        snprintf(why, sizeof(why), "missing or invalid \"name\"");
    } else if (hash == NULL || strlen(hash) >= sizeof(out->hash) ||
               parse_hash(hash, &it, salt, &sl, h, &hl) != VELO_OK) {
        snprintf(why, sizeof(why),
                 "user %s: \"hash\" is not a pbkdf2-sha256 hash", name);
    } else if (roles_from_json(json_object_get(u, "roles"), out->roles,
                               sizeof(out->roles), why,
                               sizeof(why)) != VELO_OK) {
        char tmp[256];
        snprintf(tmp, sizeof(tmp), "user %.64s: %.180s", name, why);
        memcpy(why, tmp, sizeof(why));
    }
    if (why[0] != '\0') {
        snprintf(err, errlen, "users[%zu]: %s", idx, why);
        return VELO_ERR;
    }
    copy_str(out->name, sizeof(out->name), name);
    copy_str(out->hash, sizeof(out->hash), hash);
    if (created != NULL) {
        snprintf(out->created, sizeof(out->created), "%s", created);
    }
    return VELO_OK;
}

static int parse_key(json_t *k, size_t idx, struct velo_auth_apikey *out,
                     char *err, size_t errlen)
{
    char why[256] = "";
    const char *id = json_str(k, "id");
    const char *name = json_str(k, "name");
    const char *owner = json_str(k, "owner");
    const char *hash = json_str(k, "hash");
    const char *created = json_str(k, "created");
    const char *revoked_at = json_str(k, "revoked_at");
    memset(out, 0, sizeof(*out));
    int id_ok = id != NULL && strlen(id) == VELO_APIKEY_ID_LEN;
    for (size_t i = 0; id_ok && i < VELO_APIKEY_ID_LEN; i++) {
        id_ok =
            isxdigit((unsigned char)id[i]) && !isupper((unsigned char)id[i]);
    }
    if (!json_is_object(k)) {
        snprintf(why, sizeof(why), "not an object");
    } else if (!id_ok) {
        snprintf(why, sizeof(why), "missing or invalid \"id\"");
    } else if (!valid_label(name, VELO_AUTH_NAME_MAX)) {
        snprintf(why, sizeof(why), "key %s: missing or invalid \"name\"", id);
    } else if (owner != NULL && owner[0] != '\0' &&
               !valid_label(owner, sizeof(out->owner) - 1)) {
        snprintf(why, sizeof(why), "key %s: invalid \"owner\"", id);
    } else if (hash == NULL || strlen(hash) != 2 * VELO_AUTH_HASH_LEN ||
               hex_decode(hash, out->hash, VELO_AUTH_HASH_LEN) != 0) {
        snprintf(why, sizeof(why), "key %s: \"hash\" must be 64 hex characters",
                 id);
    } else if (roles_from_json(json_object_get(k, "roles"), out->roles,
                               sizeof(out->roles), why,
                               sizeof(why)) != VELO_OK) {
        char tmp[256];
        snprintf(tmp, sizeof(tmp), "key %.32s: %.200s", id, why);
        memcpy(why, tmp, sizeof(why));
    }
    if (why[0] != '\0') {
        snprintf(err, errlen, "api_keys[%zu]: %s", idx, why);
        return VELO_ERR;
    }
    copy_str(out->id, sizeof(out->id), id);
    copy_str(out->name, sizeof(out->name), name);
    if (owner != NULL) {
        copy_str(out->owner, sizeof(out->owner), owner);
    }
    if (created != NULL) {
        snprintf(out->created, sizeof(out->created), "%s", created);
    }
    out->revoked = json_is_true(json_object_get(k, "revoked"));
    if (revoked_at != NULL) {
        snprintf(out->revoked_at, sizeof(out->revoked_at), "%s", revoked_at);
    }
    return VELO_OK;
}

/* Read path into *c. A missing file is empty content. */
static int read_content(const char *path, struct content *c, struct stat *st,
                        int *exists, char *err, size_t errlen)
{
    memset(c, 0, sizeof(*c));
    *exists = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT) {
            return VELO_OK;
        }
        int e = errno;
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(e));
        errno = e;
        return VELO_ERR;
    }
    *exists = 1;
    if (fstat(fileno(f), st) != 0) {
        int e = errno;
        fclose(f);
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        errno = e;
        return VELO_ERR;
    }
    json_error_t je;
    json_t *root = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (root == NULL) {
        snprintf(err, errlen,
                 "%s:%d:%d: %s (hint: restore the file from a "
                 "backup or remove it to start with no users)",
                 path, je.line, je.column, je.text);
        errno = EINVAL;
        return VELO_ERR;
    }
    char why[512] = "";
    json_t *users = json_object_get(root, "users");
    json_t *keys = json_object_get(root, "api_keys");
    if (!json_is_object(root)) {
        snprintf(why, sizeof(why), "the top level must be an object");
    } else if (users != NULL && !json_is_array(users)) {
        snprintf(why, sizeof(why), "\"users\" must be an array");
    } else if (keys != NULL && !json_is_array(keys)) {
        snprintf(why, sizeof(why), "\"api_keys\" must be an array");
    }
    size_t nu = json_array_size(users), nk = json_array_size(keys);
    if (why[0] == '\0') {
        c->users = calloc(nu > 0 ? nu : 1, sizeof(*c->users));
        c->keys = calloc(nk > 0 ? nk : 1, sizeof(*c->keys));
        if (c->users == NULL || c->keys == NULL) {
            snprintf(why, sizeof(why), "out of memory");
        }
    }
    for (size_t i = 0; why[0] == '\0' && i < nu; i++) {
        if (parse_user(json_array_get(users, i), i, &c->users[i], why,
                       sizeof(why)) == VELO_OK) {
            for (size_t j = 0; j < i; j++) {
                if (strcmp(c->users[j].name, c->users[i].name) == 0) {
                    snprintf(why, sizeof(why),
                             "users[%zu]: user %s appears "
                             "twice",
                             i, c->users[i].name);
                }
            }
            c->n_users = i + 1;
        }
    }
    for (size_t i = 0; why[0] == '\0' && i < nk; i++) {
        if (parse_key(json_array_get(keys, i), i, &c->keys[i], why,
                      sizeof(why)) == VELO_OK) {
            for (size_t j = 0; j < i; j++) {
                if (strcmp(c->keys[j].id, c->keys[i].id) == 0) {
                    snprintf(why, sizeof(why),
                             "api_keys[%zu]: key %s "
                             "appears twice",
                             i, c->keys[i].id);
                }
            }
            c->n_keys = i + 1;
        }
    }
    json_decref(root);
    if (why[0] != '\0') {
        snprintf(err, errlen, "%s: %s", path, why);
        content_free(c);
        errno = EINVAL;
        return VELO_ERR;
    }
    return VELO_OK;
}

static json_t *content_to_json(const struct content *c)
{
    json_t *root = json_object();
    json_t *users = json_array();
    json_t *keys = json_array();
    if (root == NULL || users == NULL || keys == NULL) {
        json_decref(root);
        json_decref(users);
        json_decref(keys);
        return NULL;
    }
    json_object_set_new(root, "version", json_integer(AUTH_FILE_VERSION));
    for (size_t i = 0; i < c->n_users; i++) {
        const struct velo_auth_user *u = &c->users[i];
        json_t *o = json_pack("{s:s, s:o, s:s, s:s}", "name", u->name, "roles",
                              roles_to_json(u->roles), "hash", u->hash,
                              "created", u->created);
        if (json_array_append_new(users, o) != 0) {
            goto fail;
        }
    }
    for (size_t i = 0; i < c->n_keys; i++) {
        const struct velo_auth_apikey *k = &c->keys[i];
        char hx[2 * VELO_AUTH_HASH_LEN + 1];
        hex_encode(k->hash, VELO_AUTH_HASH_LEN, hx);
        json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:b}", "id",
                              k->id, "name", k->name, "owner", k->owner,
                              "roles", roles_to_json(k->roles), "hash", hx,
                              "created", k->created, "revoked", k->revoked);
        if (o != NULL && k->revoked_at[0] != '\0' &&
            json_object_set_new(o, "revoked_at", json_string(k->revoked_at)) !=
                0) {
            json_decref(o);
            o = NULL;
        }
        if (json_array_append_new(keys, o) != 0) {
            goto fail;
        }
    }
    json_object_set_new(root, "users", users);
    json_object_set_new(root, "api_keys", keys);
    return root;
fail:
    json_decref(root);
    json_decref(users);
    json_decref(keys);
    return NULL;
}

/* Write atomically: temp file in the same directory, fsync, rename, fsync
 * of the directory, so a crash leaves the old or the new file, never half
 * of one. */
static int write_content(struct velo_authstore *s, const struct content *c,
                         char *err, size_t errlen)
{
    json_t *root = content_to_json(c);
    char *text = root != NULL ? json_dumps(root, JSON_INDENT(2)) : NULL;
    json_decref(root);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        errno = ENOMEM;
        return VELO_ERR;
    }
    size_t len = strlen(text);
    size_t tl = strlen(s->path) + 16;
    char *tmp = malloc(tl);
    if (tmp == NULL) {
        free(text);
        snprintf(err, errlen, "out of memory");
        errno = ENOMEM;
        return VELO_ERR;
    }
    snprintf(tmp, tl, "%s.tmp.XXXXXX", s->path);
    int e = 0;
    const char *what = "create";
    int fd = mkstemp(tmp);
    if (fd < 0) {
        e = errno;
    } else {
        size_t off = 0;
        while (e == 0 && off < len) {
            ssize_t w = write(fd, text + off, len - off);
            if (w < 0 && errno != EINTR) {
                e = errno;
                what = "write";
            } else if (w > 0) {
                off += (size_t)w;
            }
        }
        if (e == 0 && (write(fd, "\n", 1) != 1 || fchmod(fd, 0600) != 0 ||
                       fsync(fd) != 0)) {
            e = errno != 0 ? errno : EIO;
            what = "sync";
        }
        if (close(fd) != 0 && e == 0) {
            e = errno;
            what = "close";
        }
        if (e == 0 && rename(tmp, s->path) != 0) {
            e = errno;
            what = "rename";
        }
        if (e != 0) {
            unlink(tmp);
        }
    }
    free(text);
    if (e != 0) {
        snprintf(err, errlen, "%s: cannot %s %s: %s", s->path, what, tmp,
                 strerror(e));
        free(tmp);
        errno = e;
        return VELO_ERR;
    }
    free(tmp);
    int dfd = open(s->dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        if (fsync(dfd) != 0) {
            velo_log_warn("auth store: fsync of %s failed: %s", s->dir,
                          strerror(errno));
        }
        close(dfd);
    }
    return VELO_OK;
}

static void remember_stat(struct velo_authstore *s, const struct stat *st,
                          int exists)
{
    s->have_stat = exists;
    if (exists) {
        s->st_dev = st->st_dev;
        s->st_ino = st->st_ino;
        s->st_size = st->st_size;
        s->st_mtim = st->st_mtim;
    }
}

static void install(struct velo_authstore *s, struct content *c)
{
    free(s->users);
    free(s->keys);
    s->users = c->users;
    s->n_users = c->n_users;
    s->keys = c->keys;
    s->n_keys = c->n_keys;
    memset(c, 0, sizeof(*c));
}

/* ---- the store ---------------------------------------------------------- */

struct velo_authstore *velo_authstore_open(const char *data_dir,
                                           int64_t iterations, char *err,
                                           size_t errlen)
{
    if (data_dir == NULL || data_dir[0] == '\0') {
        snprintf(err, errlen,
                 "server.data_dir is empty (hint: set it to a "
                 "writable directory)");
        errno = EINVAL;
        return NULL;
    }
    if (iterations < 1 || iterations > VELO_AUTH_PBKDF2_MAX_ITERATIONS) {
        snprintf(err, errlen,
                 "auth.pbkdf2_iterations: %lld is out of range "
                 "(1..%d; default %d)",
                 (long long)iterations, VELO_AUTH_PBKDF2_MAX_ITERATIONS,
                 VELO_AUTH_PBKDF2_DEFAULT_ITERATIONS);
        errno = EINVAL;
        return NULL;
    }
    struct stat dst;
    if (stat(data_dir, &dst) == 0 && !S_ISDIR(dst.st_mode)) {
        snprintf(err, errlen,
                 "data directory %s is not a directory (hint: "
                 "set server.data_dir to a directory)",
                 data_dir);
        errno = ENOTDIR;
        return NULL;
    }
    struct velo_authstore *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->dir = strdup(data_dir);
    s->path = path_join(data_dir, VELO_AUTH_FILE);
    s->lock_path = path_join(data_dir, VELO_AUTH_LOCK_FILE);
    s->iterations = iterations;
    if (s->dir == NULL || s->path == NULL || s->lock_path == NULL) {
        snprintf(err, errlen, "out of memory");
        velo_authstore_close(s);
        errno = ENOMEM;
        return NULL;
    }
    struct content c;
    struct stat st;
    int exists;
    if (read_content(s->path, &c, &st, &exists, err, errlen) != VELO_OK) {
        int e = errno;
        velo_authstore_close(s);
        errno = e;
        return NULL;
    }
    install(s, &c);
    remember_stat(s, &st, exists);
    clock_gettime(CLOCK_MONOTONIC, &s->last_check);
    return s;
}

void velo_authstore_close(struct velo_authstore *s)
{
    if (s == NULL) {
        return;
    }
    free(s->users);
    free(s->keys);
    free(s->dir);
    free(s->path);
    free(s->lock_path);
    free(s);
}

const char *velo_authstore_path(const struct velo_authstore *s)
{
    return s->path;
}

int64_t velo_authstore_iterations(const struct velo_authstore *s)
{
    return s->iterations;
}

void velo_authstore_set_iterations(struct velo_authstore *s, int64_t iterations)
{
    if (iterations >= 1 && iterations <= VELO_AUTH_PBKDF2_MAX_ITERATIONS) {
        s->iterations = iterations;
    }
}

static int stat_changed(const struct velo_authstore *s, const struct stat *st,
                        int exists)
{
    if (exists != s->have_stat) {
        return 1;
    }
    if (!exists) {
        return 0;
    }
    return st->st_dev != s->st_dev || st->st_ino != s->st_ino ||
           st->st_size != s->st_size ||
           st->st_mtim.tv_sec != s->st_mtim.tv_sec ||
           st->st_mtim.tv_nsec != s->st_mtim.tv_nsec;
}

int velo_authstore_refresh(struct velo_authstore *s, int force)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    long long since =
        (long long)(now.tv_sec - s->last_check.tv_sec) * 1000000000LL +
        (now.tv_nsec - s->last_check.tv_nsec);
    if (!force && since < AUTH_REFRESH_INTERVAL_NS) {
        return 0;
    }
    s->last_check = now;
    struct stat st;
    int exists = stat(s->path, &st) == 0;
    if (!stat_changed(s, &st, exists)) {
        return 0;
    }
    struct content c;
    char err[512];
    if (read_content(s->path, &c, &st, &exists, err, sizeof(err)) != VELO_OK) {
        if (!s->bad_file_logged) {
            velo_log_error("auth store: keeping the users and keys loaded "
                           "before: %s",
                           err);
            s->bad_file_logged = 1;
        }
        return VELO_ERR;
    }
    s->bad_file_logged = 0;
    install(s, &c);
    remember_stat(s, &st, exists);
    velo_log_info("auth store: reloaded %s (%zu user(s), %zu API key(s))",
                  s->path, s->n_users, s->n_keys);
    return 1;
}

size_t velo_authstore_user_count(const struct velo_authstore *s)
{
    return s->n_users;
}

const struct velo_auth_user *
velo_authstore_user_at(const struct velo_authstore *s, size_t i)
{
    return i < s->n_users ? &s->users[i] : NULL;
}

const struct velo_auth_user *
velo_authstore_user_find(const struct velo_authstore *s, const char *name)
{
    for (size_t i = 0; name != NULL && i < s->n_users; i++) {
        if (strcmp(s->users[i].name, name) == 0) {
            return &s->users[i];
        }
    }
    return NULL;
}

size_t velo_authstore_apikey_count(const struct velo_authstore *s)
{
    return s->n_keys;
}

const struct velo_auth_apikey *
velo_authstore_apikey_at(const struct velo_authstore *s, size_t i)
{
    return i < s->n_keys ? &s->keys[i] : NULL;
}

const struct velo_auth_apikey *
velo_authstore_apikey_find(const struct velo_authstore *s, const char *id)
{
    for (size_t i = 0; id != NULL && i < s->n_keys; i++) {
        if (strcmp(s->keys[i].id, id) == 0) {
            return &s->keys[i];
        }
    }
    return NULL;
}

int velo_authstore_apikey_check(const struct velo_authstore *s,
                                const char *token,
                                const struct velo_auth_apikey **key, char *err,
                                size_t errlen)
{
    char id[VELO_APIKEY_ID_LEN + 1], secret[VELO_APIKEY_SECRET_LEN + 1];
    *key = NULL;
    if (velo_apikey_parse(token, id, secret) != VELO_OK) {
        return VELO_DECLINED;
    }
    const struct velo_auth_apikey *k = velo_authstore_apikey_find(s, id);
    unsigned char got[VELO_AUTH_HASH_LEN];
    SHA256((const unsigned char *)secret, VELO_APIKEY_SECRET_LEN, got);
    OPENSSL_cleanse(secret, sizeof(secret));
    if (k == NULL) {
        snprintf(err, errlen, "unknown API key %s", id);
        return VELO_ERR;
    }
    if (CRYPTO_memcmp(got, k->hash, VELO_AUTH_HASH_LEN) != 0) {
        snprintf(err, errlen, "wrong secret for API key %s", id);
        return VELO_ERR;
    }
    if (k->revoked) {
        snprintf(err, errlen, "API key %s was revoked", id);
        return VELO_ERR;
    }
    *key = k;
    return VELO_OK;
}

/* ---- modifications ------------------------------------------------------ */

/* Lock, re-read the file (another process may have changed it), and hand
 * the fresh content to the caller. */
static int begin_change(struct velo_authstore *s, int *lock_fd,
                        struct content *c, char *err, size_t errlen)
{
    if (make_dir(s->dir, err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    int fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open lock file %s: %s", s->lock_path,
                 strerror(e));
        errno = e;
        return VELO_ERR;
    }
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            snprintf(err, errlen, "cannot lock %s: %s", s->lock_path,
                     strerror(e));
            close(fd);
            errno = e;
            return VELO_ERR;
        }
    }
    struct stat st;
    int exists;
    if (read_content(s->path, c, &st, &exists, err, errlen) != VELO_OK) {
        int e = errno;
        close(fd);
        errno = e;
        return VELO_ERR;
    }
    *lock_fd = fd;
    return VELO_OK;
}

/* Write (when ok), install in memory, unlock. */
static int end_change(struct velo_authstore *s, int lock_fd, struct content *c,
                      int ok, char *err, size_t errlen)
{
    int rc = VELO_ERR;
    int e = errno;
    if (ok && write_content(s, c, err, errlen) == VELO_OK) {
        struct stat st;
        int exists = stat(s->path, &st) == 0;
        install(s, c);
        remember_stat(s, &st, exists);
        rc = VELO_OK;
    } else if (ok) {
        e = errno;
    }
    content_free(c);
    close(lock_fd); /* releases the flock */
    errno = rc == VELO_OK ? 0 : e;
    return rc;
}

static int check_hash_text(const char *hash, char *err, size_t errlen)
{
    long long it;
    unsigned char salt[64], h[64];
    int sl, hl;
    if (hash == NULL || strlen(hash) >= VELO_AUTH_HASH_TEXT_MAX ||
        parse_hash(hash, &it, salt, &sl, h, &hl) != VELO_OK) {
        snprintf(err, errlen, "not a pbkdf2-sha256 password hash");
        errno = EINVAL;
        return VELO_ERR;
    }
    return VELO_OK;
}

int velo_authstore_user_add(struct velo_authstore *s, const char *name,
                            const char *password_hash, const char *roles,
                            char *err, size_t errlen)
{
    if (!velo_auth_valid_username(name)) {
        snprintf(err, errlen,
                 "invalid user name '%s' (use 1 to %d of "
                 "A-Z a-z 0-9 _ . @ -)",
                 name != NULL ? name : "", VELO_AUTH_NAME_MAX);
        errno = EINVAL;
        return VELO_ERR;
    }
    if (!valid_role_list(roles, err, errlen)) {
        errno = EINVAL;
        return VELO_ERR;
    }
    if (check_hash_text(password_hash, err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    int fd;
    struct content c;
    if (begin_change(s, &fd, &c, err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    int ok = 1;
    for (size_t i = 0; i < c.n_users; i++) {
        if (strcmp(c.users[i].name, name) == 0) {
            snprintf(err, errlen,
                     "user %s already exists (hint: velo user "
                     "passwd %s changes the password)",
                     name, name);
            errno = EEXIST;
            ok = 0;
        }
    }
    if (ok) {
        struct velo_auth_user *nu =
            realloc(c.users, (c.n_users + 1) * sizeof(*nu));
        if (nu == NULL) {
            snprintf(err, errlen, "out of memory");
            errno = ENOMEM;
            ok = 0;
        } else {
            c.users = nu;
            struct velo_auth_user *u = &c.users[c.n_users++];
            memset(u, 0, sizeof(*u));
            copy_str(u->name, sizeof(u->name), name);
            copy_str(u->roles, sizeof(u->roles), roles);
            copy_str(u->hash, sizeof(u->hash), password_hash);
            now_rfc3339(u->created);
        }
    }
    return end_change(s, fd, &c, ok, err, errlen);
}

int velo_authstore_user_set_hash(struct velo_authstore *s, const char *name,
                                 const char *password_hash, char *err,
                                 size_t errlen)
{
    if (check_hash_text(password_hash, err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    int fd;
    struct content c;
    if (begin_change(s, &fd, &c, err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    int ok = 0;
    for (size_t i = 0; name != NULL && i < c.n_users; i++) {
        if (strcmp(c.users[i].name, name) == 0) {
            copy_str(c.users[i].hash, sizeof(c.users[i].hash), password_hash);
            ok = 1;
        }
    }
    if (!ok) {
        snprintf(err, errlen, "no user %s (hint: velo user list)",
                 name != NULL ? name : "");
        errno = ENOENT;
    }
    return end_change(s, fd, &c, ok, err, errlen);
}

int velo_authstore_user_delete(struct velo_authstore *s, const char *name,
                               size_t *n_revoked, char *err, size_t errlen)
{
    int fd;
    struct content c;
    size_t revoked = 0;
    if (begin_change(s, &fd, &c, err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    int ok = 0;
    for (size_t i = 0; name != NULL && i < c.n_users; i++) {
        if (strcmp(c.users[i].name, name) == 0) {
            memmove(&c.users[i], &c.users[i + 1],
                    (c.n_users - i - 1) * sizeof(c.users[0]));
            c.n_users--;
            ok = 1;
            break;
        }
    }
    if (!ok) {
        snprintf(err, errlen, "no user %s (hint: velo user list)",
                 name != NULL ? name : "");
        errno = ENOENT;
    } else {
        /* A deleted user's keys must not outlive it. */
        for (size_t i = 0; i < c.n_keys; i++) {
            if (!c.keys[i].revoked && strcmp(c.keys[i].owner, name) == 0) {
                c.keys[i].revoked = 1;
                now_rfc3339(c.keys[i].revoked_at);
                revoked++;
            }
        }
    }
    int rc = end_change(s, fd, &c, ok, err, errlen);
    if (n_revoked != NULL) {
        *n_revoked = rc == VELO_OK ? revoked : 0;
    }
    return rc;
}

int velo_authstore_apikey_create(struct velo_authstore *s, const char *name,
                                 const char *owner, const char *roles,
                                 char *key_out, size_t key_outlen,
                                 struct velo_auth_apikey *created, char *err,
                                 size_t errlen)
{
    if (!valid_label(name, VELO_AUTH_NAME_MAX)) {
        snprintf(err, errlen,
                 "invalid key name (use 1 to %d printable "
                 "characters)",
                 VELO_AUTH_NAME_MAX);
        errno = EINVAL;
        return VELO_ERR;
    }
    if (owner != NULL && owner[0] != '\0' &&
        !valid_label(owner, VELO_PRINCIPAL_NAME_MAX - 1)) {
        snprintf(err, errlen, "invalid owner name");
        errno = EINVAL;
        return VELO_ERR;
    }
    if (!valid_role_list(roles, err, errlen)) {
        errno = EINVAL;
        return VELO_ERR;
    }
    if (key_outlen < VELO_APIKEY_TEXT_LEN + 1) {
        snprintf(err, errlen, "key buffer too small");
        errno = EINVAL;
        return VELO_ERR;
    }
    int fd;
    struct content c;
    if (begin_change(s, &fd, &c, err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    unsigned char idb[VELO_APIKEY_ID_LEN / 2];
    unsigned char sec[VELO_APIKEY_SECRET_BYTES];
    char id[VELO_APIKEY_ID_LEN + 1], sec64[VELO_APIKEY_SECRET_LEN + 2];
    int ok = 0;
    /* A 48-bit id collides rarely; retry rather than fail. */
    for (int attempt = 0; attempt < 8 && !ok; attempt++) {
        if (RAND_bytes(idb, sizeof(idb)) != 1) {
            break;
        }
        hex_encode(idb, sizeof(idb), id);
        ok = 1;
        for (size_t i = 0; i < c.n_keys; i++) {
            if (strcmp(c.keys[i].id, id) == 0) {
                ok = 0;
            }
        }
    }
    if (ok && RAND_bytes(sec, sizeof(sec)) != 1) {
        ok = 0;
    }
    struct velo_auth_apikey *nk = NULL;
    if (!ok) {
        snprintf(err, errlen, "cannot make a random key (RNG failure)");
        errno = EIO;
    } else if ((nk = realloc(c.keys, (c.n_keys + 1) * sizeof(*nk))) == NULL) {
        snprintf(err, errlen, "out of memory");
        errno = ENOMEM;
        ok = 0;
    } else {
        c.keys = nk;
        struct velo_auth_apikey *k = &c.keys[c.n_keys++];
        memset(k, 0, sizeof(*k));
        b64_encode(sec, sizeof(sec), b64_url, 0, sec64, sizeof(sec64));
        copy_str(k->id, sizeof(k->id), id);
        copy_str(k->name, sizeof(k->name), name);
        if (owner != NULL) {
            copy_str(k->owner, sizeof(k->owner), owner);
        }
        copy_str(k->roles, sizeof(k->roles), roles);
        SHA256((const unsigned char *)sec64, VELO_APIKEY_SECRET_LEN, k->hash);
        now_rfc3339(k->created);
        snprintf(key_out, key_outlen, VELO_APIKEY_PREFIX "%s_%s", id, sec64);
        if (created != NULL) {
            *created = *k;
        }
    }
    OPENSSL_cleanse(sec, sizeof(sec));
    OPENSSL_cleanse(sec64, sizeof(sec64));
    int rc = end_change(s, fd, &c, ok, err, errlen);
    if (rc != VELO_OK) {
        OPENSSL_cleanse(key_out, key_outlen);
        key_out[0] = '\0';
    }
    return rc;
}

int velo_authstore_apikey_revoke(struct velo_authstore *s, const char *id,
                                 char *err, size_t errlen)
{
    int fd;
    struct content c;
    if (begin_change(s, &fd, &c, err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    int ok = 0, found = 0;
    for (size_t i = 0; id != NULL && i < c.n_keys; i++) {
        if (strcmp(c.keys[i].id, id) == 0) {
            found = 1;
            if (!c.keys[i].revoked) {
                c.keys[i].revoked = 1;
                now_rfc3339(c.keys[i].revoked_at);
                ok = 1;
            }
        }
    }
    if (!found) {
        snprintf(err, errlen, "no API key %s (hint: velo apikey list)",
                 id != NULL ? id : "");
        errno = ENOENT;
    } else if (!ok) {
        snprintf(err, errlen, "API key %s is already revoked", id);
        errno = EALREADY;
    }
    return end_change(s, fd, &c, ok, err, errlen);
}
