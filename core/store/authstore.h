/*
 * The embedded auth store: users (PBKDF2-HMAC-SHA256 password hashes) and
 * API keys (SHA-256 of the secret) in <data_dir>/auth.json.
 *
 * The file is written atomically (temporary file in the same directory,
 * fsync, rename, fsync of the directory) with mode 0600; the directory is
 * made 0700 when missing. Every read-modify-write holds an exclusive
 * flock on <data_dir>/auth.lock and re-reads the file first, so the CLI
 * and a running server never lose each other's changes. A running server
 * calls velo_authstore_refresh(s, 1) before each authentication and picks
 * up changes made by the CLI from the next request on (the file's inode,
 * size or mtime moved).
 *
 * A store is not thread-safe: the server uses it on the main loop only.
 * The hashing helpers are pure and may run on any thread.
 *
 * Password hash text: "pbkdf2-sha256$<iterations>$<b64 salt>$<b64 hash>"
 * (standard base64 with padding, 16-byte salt, 32-byte hash).
 * API key text: "velo_<id>_<secret>", id 12 lowercase hex characters,
 * secret 32 random bytes in unpadded base64url (43 characters).
 */
#ifndef VELO_CORE_AUTHSTORE_H
#define VELO_CORE_AUTHSTORE_H

#include <stddef.h>
#include <stdint.h>

#include <velo/auth.h>

#define VELO_AUTH_FILE "auth.json"
#define VELO_AUTH_LOCK_FILE "auth.lock"

#define VELO_AUTH_PBKDF2_DEFAULT_ITERATIONS 600000
#define VELO_AUTH_PBKDF2_MAX_ITERATIONS 100000000
#define VELO_AUTH_SALT_LEN 16
#define VELO_AUTH_HASH_LEN 32
#define VELO_AUTH_HASH_TEXT_MAX 160

#define VELO_AUTH_NAME_MAX 64 /* user names and key labels */
#define VELO_AUTH_PASSWORD_MIN 8
#define VELO_AUTH_PASSWORD_MAX 1024
#define VELO_AUTH_MAX_ROLES 8

#define VELO_APIKEY_PREFIX "velo_"
#define VELO_APIKEY_ID_LEN 12
#define VELO_APIKEY_SECRET_BYTES 32
#define VELO_APIKEY_SECRET_LEN 43 /* base64url of 32 bytes, unpadded */
/* "velo_" + id + "_" + secret */
#define VELO_APIKEY_TEXT_LEN                                                   \
    (5 + VELO_APIKEY_ID_LEN + 1 + VELO_APIKEY_SECRET_LEN)

#define VELO_AUTH_TIME_MAX 32 /* "2026-11-21T15:21:11Z" */

struct velo_auth_user {
    char name[VELO_AUTH_NAME_MAX + 1];
    char roles[VELO_PRINCIPAL_ROLES_MAX]; /* comma-separated */
    char hash[VELO_AUTH_HASH_TEXT_MAX];
    char created[VELO_AUTH_TIME_MAX]; /* RFC 3339, UTC */
};

struct velo_auth_apikey {
    char id[VELO_APIKEY_ID_LEN + 1];
    char name[VELO_AUTH_NAME_MAX + 1];      /* label */
    char owner[VELO_PRINCIPAL_NAME_MAX];    /* "" when none */
    char roles[VELO_PRINCIPAL_ROLES_MAX];   /* comma-separated */
    unsigned char hash[VELO_AUTH_HASH_LEN]; /* SHA-256 of the secret */
    char created[VELO_AUTH_TIME_MAX];
    int revoked;
    char revoked_at[VELO_AUTH_TIME_MAX]; /* "" unless revoked */
};

/* ---- pure helpers (thread-safe) ---------------------------------------- */

/** Hash `password` with a fresh random salt.
 *  @return VELO_OK, or VELO_ERR (bad iterations, RNG failure, short out). */
int velo_auth_hash_password(const char *password, int64_t iterations, char *out,
                            size_t outlen);

/** Check `password` against a stored hash text in constant time (for a
 *  given hash). @return 1 when it matches, 0 when not, VELO_ERR when the
 *  hash text is malformed. */
int velo_auth_verify_password(const char *password, const char *hash_text);

/** [A-Za-z0-9_.@-]{1,64}. @return 1 or 0. */
int velo_auth_valid_username(const char *name);

/** Is `role` a built-in role ("admin", "viewer")? @return 1 or 0. */
int velo_auth_valid_role(const char *role);
/** "admin, viewer": for error messages. */
const char *velo_auth_role_list(void);

/**
 * Check and join roles into "a,b" (duplicates dropped). On an unknown role
 * writes "unknown role 'x' (valid roles: admin, viewer)" into err.
 * @return VELO_OK or VELO_ERR.
 */
int velo_auth_join_roles(const char *const *roles, size_t n, char *out,
                         size_t outlen, char *err, size_t errlen);

/** Does the comma-separated `roles` contain `role`? @return 1 or 0. */
int velo_auth_has_role(const char *roles, const char *role);

/**
 * Split an API key text into id and secret. @return VELO_OK when `token`
 * has our shape ("velo_" + 12 hex + "_" + 43 base64url), VELO_DECLINED
 * otherwise (not one of ours).
 */
int velo_apikey_parse(const char *token, char id[VELO_APIKEY_ID_LEN + 1],
                      char secret[VELO_APIKEY_SECRET_LEN + 1]);

/** Decode standard base64 (padding optional, no whitespace).
 *  @return the number of bytes written, or -1 on a bad character or a
 *  short buffer. */
int velo_auth_base64_decode(const char *in, size_t n, unsigned char *out,
                            size_t outlen);

/* ---- the store --------------------------------------------------------- */

struct velo_authstore;

/**
 * Open the store under data_dir and read auth.json when it exists (a
 * missing file or directory is an empty store; the directory is made on
 * the first write). iterations: PBKDF2 iterations for new hashes.
 * @return NULL with the reason in err (unreadable or malformed file, with
 * its path and line).
 */
struct velo_authstore *velo_authstore_open(const char *data_dir,
                                           int64_t iterations, char *err,
                                           size_t errlen);
void velo_authstore_close(struct velo_authstore *s);

/** Path of auth.json (borrowed). */
const char *velo_authstore_path(const struct velo_authstore *s);
int64_t velo_authstore_iterations(const struct velo_authstore *s);
void velo_authstore_set_iterations(struct velo_authstore *s,
                                   int64_t iterations);

/**
 * Re-read auth.json when it changed on disk (inode, size or mtime), at
 * most once a second unless `force`. A file that became unreadable or
 * malformed keeps the last good content and is logged once per change.
 * @return 1 when reloaded, 0 when unchanged, VELO_ERR on a bad file.
 */
int velo_authstore_refresh(struct velo_authstore *s, int force);

/* Lookups. Pointers stay valid until the next refresh or modification. */
size_t velo_authstore_user_count(const struct velo_authstore *s);
const struct velo_auth_user *
velo_authstore_user_at(const struct velo_authstore *s, size_t i);
const struct velo_auth_user *
velo_authstore_user_find(const struct velo_authstore *s, const char *name);

size_t velo_authstore_apikey_count(const struct velo_authstore *s);
const struct velo_auth_apikey *
velo_authstore_apikey_at(const struct velo_authstore *s, size_t i);
const struct velo_auth_apikey *
velo_authstore_apikey_find(const struct velo_authstore *s, const char *id);

/**
 * Check an API key text (fast: one SHA-256). @return VELO_OK with *key set
 * when valid, VELO_DECLINED when the text is not one of ours, VELO_ERR when
 * it is ours but unknown, wrong or revoked (reason in err).
 */
int velo_authstore_apikey_check(const struct velo_authstore *s,
                                const char *token,
                                const struct velo_auth_apikey **key, char *err,
                                size_t errlen);

/*
 * Modifications: each locks, re-reads, changes, writes atomically. On
 * failure err says why and errno is EEXIST (user exists), ENOENT (no such
 * user/key), EINVAL (bad name/role/password), EALREADY (key already
 * revoked) or the I/O error.
 */

/** password_hash: from velo_auth_hash_password (hash before calling, so
 *  the lock is not held during hashing). */
int velo_authstore_user_add(struct velo_authstore *s, const char *name,
                            const char *password_hash, const char *roles,
                            char *err, size_t errlen);
int velo_authstore_user_set_hash(struct velo_authstore *s, const char *name,
                                 const char *password_hash, char *err,
                                 size_t errlen);
/** Deletes the user and revokes the API keys it owns (*n_revoked). */
int velo_authstore_user_delete(struct velo_authstore *s, const char *name,
                               size_t *n_revoked, char *err, size_t errlen);

/**
 * Create an API key. owner may be NULL or "". Writes the full key text
 * (shown once, never stored) into key_out (>= VELO_APIKEY_TEXT_LEN + 1)
 * and the new record into *created when non-NULL.
 */
int velo_authstore_apikey_create(struct velo_authstore *s, const char *name,
                                 const char *owner, const char *roles,
                                 char *key_out, size_t key_outlen,
                                 struct velo_auth_apikey *created, char *err,
                                 size_t errlen);
int velo_authstore_apikey_revoke(struct velo_authstore *s, const char *id,
                                 char *err, size_t errlen);

#endif /* VELO_CORE_AUTHSTORE_H */
