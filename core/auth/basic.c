/*
 * BasicAuth: users with PBKDF2 password hashes and API keys from the auth
 * store (see basic-internal.h for what it answers).
 *
 * Password checks cost hundreds of milliseconds by design, so they run on
 * a worker thread: the job copies everything it needs (password, stored
 * hash, principal) on the main loop, the worker only computes, and the
 * answer is delivered by the reactor's `done` on the main loop. An unknown
 * user is checked against a dummy hash of the same cost, so response time
 * does not tell which user names exist.
 */
#include "auth/basic-internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "reactor/reactor.h"
#include "store/authstore.h"
#include "util/log.h"

/* Base64 of "user:password" with both at their maximum, and some slack. */
#define BASIC_CRED_MAX                                                         \
    (4 * (VELO_AUTH_NAME_MAX + VELO_AUTH_PASSWORD_MAX) / 3 + 8)

enum job_state {
    JOB_RUNNING = 0,  /* queued or hashing on a worker */
    JOB_FINISHED = 1, /* hashed; `done` is on its way to the main loop */
    JOB_ORPHANED = 2  /* the provider is gone; the worker frees the job */
};

struct basic_job {
    struct basic *b;
    velo_auth_done_fn done;
    void *done_arg;
    char password[VELO_AUTH_PASSWORD_MAX + 1];
    char hash[VELO_AUTH_HASH_TEXT_MAX];
    int user_known;
    int result;
    struct velo_principal who;
    atomic_int state;
    struct basic_job *prev, *next;
};

struct basic {
    struct velo_authstore *store;
    struct velo_reactor *reactor;
    struct basic_job *jobs; /* waiting for a worker's answer */
};

static int basic_create(struct velo_instance *ins, const void *config)
{
    const struct velo_basic_auth_config *cfg = config;
    if (cfg == NULL || cfg->store == NULL) {
        errno = EINVAL;
        return VELO_ERR;
    }
    struct basic *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return VELO_ERR;
    }
    b->store = cfg->store;
    b->reactor = cfg->reactor;
    ins->context = b;
    return VELO_OK;
}

static void job_unlink(struct basic *b, struct basic_job *j)
{
    if (j->prev != NULL) {
        j->prev->next = j->next;
    } else if (b->jobs == j) {
        b->jobs = j->next;
    }
    if (j->next != NULL) {
        j->next->prev = j->prev;
    }
    j->prev = j->next = NULL;
}

static void job_free(struct basic_job *j)
{
    OPENSSL_cleanse(j->password, sizeof(j->password));
    free(j);
}

/* The chain's contract: every request gets exactly one answer, so pending
 * ones are denied here. The main loop has stopped for good when a provider
 * is destroyed, so a `done` still queued in the reactor never runs. */
static void basic_destroy(struct velo_instance *ins)
{
    struct basic *b = ins->context;
    if (b == NULL) {
        return;
    }
    while (b->jobs != NULL) {
        struct basic_job *j = b->jobs;
        job_unlink(b, j);
        j->b = NULL;
        j->done(j->done_arg, VELO_AUTH_DENY, NULL);
        int expected = JOB_RUNNING;
        if (!atomic_compare_exchange_strong(&j->state, &expected,
                                            JOB_ORPHANED)) {
            job_free(j); /* the worker is done with it */
        }
    }
    free(b);
    ins->context = NULL;
}

/* Worker thread: only the job's own memory is touched. */
static void job_hash(void *arg)
{
    struct basic_job *j = arg;
    int ok = velo_auth_verify_password(j->password, j->hash) == 1;
    j->result = ok && j->user_known ? VELO_AUTH_ACCEPT : VELO_AUTH_DENY;
    OPENSSL_cleanse(j->password, sizeof(j->password));
    int expected = JOB_RUNNING;
    if (!atomic_compare_exchange_strong(&j->state, &expected, JOB_FINISHED)) {
        job_free(j); /* orphaned while hashing */
    }
}

/* Main loop. Never runs for an orphaned job: the reactor drops `done`
 * callbacks once the loop has stopped, which is when providers go. */
static void job_done(void *arg)
{
    struct basic_job *j = arg;
    job_unlink(j->b, j);
    j->done(j->done_arg, j->result,
            j->result == VELO_AUTH_ACCEPT ? &j->who : NULL);
    job_free(j);
}

static int password_auth(struct basic *b, const char *cred,
                         struct velo_principal *out, velo_auth_done_fn done,
                         void *done_arg)
{
    while (*cred == ' ') {
        cred++;
    }
    size_t n = strlen(cred);
    while (n > 0 && (cred[n - 1] == ' ' || cred[n - 1] == '\t')) {
        n--;
    }
    if (n == 0 || n > BASIC_CRED_MAX) {
        return VELO_AUTH_DENY;
    }
    unsigned char *dec = malloc(n + 1);
    if (dec == NULL) {
        return VELO_AUTH_DENY;
    }
    int dl = velo_auth_base64_decode(cred, n, dec, n);
    size_t len = dl > 0 ? (size_t)dl : 0;
    int bad = dl <= 0;
    dec[len] = '\0';
    char *colon = bad ? NULL : memchr(dec, ':', len);
    if (colon == NULL || memchr(dec, '\0', len) != NULL) {
        OPENSSL_cleanse(dec, n + 1);
        free(dec);
        return VELO_AUTH_DENY;
    }
    *colon = '\0';
    const char *user = (const char *)dec;
    const char *password = colon + 1;
    if (!velo_auth_valid_username(user) ||
        strlen(password) > VELO_AUTH_PASSWORD_MAX) {
        OPENSSL_cleanse(dec, n + 1);
        free(dec);
        return VELO_AUTH_DENY;
    }
    struct basic_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        OPENSSL_cleanse(dec, n + 1);
        free(dec);
        return VELO_AUTH_DENY;
    }
    const struct velo_auth_user *u = velo_authstore_user_find(b->store, user);
    if (u != NULL) {
        j->user_known = 1;
        snprintf(j->hash, sizeof(j->hash), "%s", u->hash);
        snprintf(j->who.roles, sizeof(j->who.roles), "%s", u->roles);
    } else {
        /* Same cost as a real check; cannot match (an all-zero hash). */
        snprintf(j->hash, sizeof(j->hash),
                 "pbkdf2-sha256$%lld$AAAAAAAAAAAAAAAAAAAAAA==$"
                 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                 (long long)velo_authstore_iterations(b->store));
    }
    snprintf(j->who.name, sizeof(j->who.name), "%s", user);
    snprintf(j->who.provider, sizeof(j->who.provider), "%s",
             VELO_BASIC_AUTH_NAME);
    snprintf(j->password, sizeof(j->password), "%s", password);
    OPENSSL_cleanse(dec, n + 1);
    free(dec);
    j->b = b;
    j->done = done;
    j->done_arg = done_arg;
    atomic_init(&j->state, JOB_RUNNING);
    (void)out;

    int rc = b->reactor != NULL
                 ? velo_reactor_submit(b->reactor, job_hash, job_done, j)
                 : VELO_ERR;
    if (rc != VELO_OK) {
        velo_log_warn("auth: cannot check the password of %s: the worker "
                      "queue is %s; request denied (hint: raise "
                      "server.task_queue_size or server.workers)",
                      j->who.name, rc == VELO_AGAIN ? "full" : "stopping");
        job_free(j);
        return VELO_AUTH_DENY;
    }
    j->next = b->jobs;
    if (b->jobs != NULL) {
        b->jobs->prev = j;
    }
    b->jobs = j;
    return VELO_AUTH_AGAIN;
}

static int key_auth(struct basic *b, const char *token,
                    struct velo_principal *out)
{
    const struct velo_auth_apikey *k;
    char why[128];
    int rc = velo_authstore_apikey_check(b->store, token, &k, why, sizeof(why));
    if (rc == VELO_DECLINED) {
        return VELO_AUTH_NEXT;
    }
    if (rc != VELO_OK) {
        velo_log_debug("auth: %s", why);
        return VELO_AUTH_DENY;
    }
    snprintf(out->name, sizeof(out->name), "apikey:%s", k->id);
    snprintf(out->roles, sizeof(out->roles), "%s", k->roles);
    snprintf(out->provider, sizeof(out->provider), "apikey");
    return VELO_AUTH_ACCEPT;
}

static const char *skip_spaces(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return s;
}

/* "Scheme rest": does `value` use `scheme`? Sets *rest. */
static int has_scheme(const char *value, const char *scheme, const char **rest)
{
    size_t n = strlen(scheme);
    value = skip_spaces(value);
    if (strncasecmp(value, scheme, n) == 0 &&
        (value[n] == ' ' || value[n] == '\t')) {
        *rest = skip_spaces(value + n);
        return 1;
    }
    return 0;
}

static int basic_authenticate(struct velo_instance *ins,
                              const struct velo_auth_request *req,
                              struct velo_principal *out,
                              velo_auth_done_fn done, void *done_arg)
{
    struct basic *b = ins->context;
    /* Check the file on every authentication (one stat(2)): a key made or
     * revoked by the CLI counts from the very next request. */
    velo_authstore_refresh(b->store, 1);

    const char *authz = req->header(req, "Authorization");
    const char *rest;
    if (authz != NULL && has_scheme(authz, "Basic", &rest)) {
        return password_auth(b, rest, out, done, done_arg);
    }
    if (authz != NULL && has_scheme(authz, "Bearer", &rest)) {
        int r = key_auth(b, rest, out);
        if (r != VELO_AUTH_NEXT) {
            return r;
        }
    }
    const char *xkey = req->header(req, "X-API-Key");
    if (xkey != NULL) {
        return key_auth(b, skip_spaces(xkey), out);
    }
    return VELO_AUTH_NEXT;
}

const struct velo_auth_vtable velo_basic_auth_vtable = {
    .size = (uint32_t)sizeof(struct velo_auth_vtable),
    .create = basic_create,
    .destroy = basic_destroy,
    .authenticate = basic_authenticate,
    .authorize = NULL,
};
