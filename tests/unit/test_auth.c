/*
 * The auth and audit chains: BasicAuth (passwords on a worker, API keys at
 * once), AuthProvider plugins (a real .so: NEXT, AGAIN, authorize first),
 * built-in authorization, the audit chain with a real AuditSink .so, and
 * the lifetime rules (every request answered exactly once, also when the
 * chain is destroyed with work pending).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <event2/event.h>
#include <openssl/evp.h>

#include "auth/chain.h"
#include "config/config.h"
#include "obs/metrics.h"
#include "plugin/host.h"
#include "plugin/loader.h"
#include "reactor/reactor.h"
#include "store/authstore.h"
#include "testutil.h"
#include "util/log.h"

#define FAST_ITER 1000

/* ---- a fake request -------------------------------------------------------
 */

struct fake_req {
    struct velo_auth_request req;
    const char *names[4];
    const char *values[4];
    size_t n;
};

static const char *fake_header(const struct velo_auth_request *r,
                               const char *name)
{
    const struct fake_req *f = r->host_data;
    for (size_t i = 0; i < f->n; i++) {
        if (strcasecmp(f->names[i], name) == 0) {
            return f->values[i];
        }
    }
    return NULL;
}

static void fake_init(struct fake_req *f)
{
    memset(f, 0, sizeof(*f));
    f->req.method = "GET";
    f->req.path = "/api/version";
    f->req.client_addr = "127.0.0.1";
    f->req.request_id = "test-1";
    f->req.header = fake_header;
    f->req.host_data = f;
}

static void fake_add(struct fake_req *f, const char *name, const char *value)
{
    f->names[f->n] = name;
    f->values[f->n] = value;
    f->n++;
}

static char *basic_value(const char *user, const char *pw)
{
    char plain[256];
    snprintf(plain, sizeof(plain), "%s:%s", user, pw);
    unsigned char b64[400];
    EVP_EncodeBlock(b64, (const unsigned char *)plain, (int)strlen(plain));
    char *v = malloc(420);
    snprintf(v, 420, "Basic %s", (char *)b64);
    return v;
}

/* ---- the fixture ----------------------------------------------------------
 */

struct env {
    char *dir;
    struct velo_config cfg;
    struct velo_reactor *r;
    struct velo_metrics *m;
    struct velo_plugins *plugins;
    struct velo_authstore *store;
    struct velo_authchain *chain;
    char admin_key[VELO_APIKEY_TEXT_LEN + 1];
    char viewer_key[VELO_APIKEY_TEXT_LEN + 1];
    char viewer_key_id[VELO_APIKEY_ID_LEN + 1];
};

static void copy_fixture(const char *name, const char *dir)
{
    char src[1024], dst[1024];
    snprintf(src, sizeof(src), "%s/%s.so", tu_env("VELO_FIXTURE_DIR"), name);
    snprintf(dst, sizeof(dst), "%s/%s.so", dir, name);
    size_t len;
    char *data = tu_read_file(src, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    CU_ASSERT_EQUAL(tu_write_file(dst, data, len), 0);
    free(data);
}

static void cfg_kv(struct velo_config *cfg, const char *plugin, const char *key,
                   const char *value)
{
    cfg->plugin_kv = realloc(cfg->plugin_kv,
                             (cfg->n_plugin_kv + 1) * sizeof(*cfg->plugin_kv));
    struct velo_config_kv *kv = &cfg->plugin_kv[cfg->n_plugin_kv++];
    kv->plugin = strdup(plugin);
    kv->key = strdup(key);
    kv->value = strdup(value);
    kv->line = 0;
}

/* plugin_dir: NULL for no plugins. */
static void env_up(struct env *e, const char *plugin_dir, size_t workers,
                   size_t queue)
{
    memset(e, 0, sizeof(*e));
    e->dir = tu_tmpdir();
    CU_ASSERT_EQUAL_FATAL(velo_config_init(&e->cfg), VELO_OK);
    for (size_t i = 0; i < e->cfg.n_plugin_dirs; i++) {
        free(e->cfg.plugin_dirs[i]);
        e->cfg.plugin_dirs[i] = NULL;
    }
    e->cfg.n_plugin_dirs = 0;
    if (plugin_dir != NULL) {
        e->cfg.plugin_dirs[0] = strdup(plugin_dir);
        e->cfg.n_plugin_dirs = 1;
    }
    e->m = velo_metrics_create();
    e->r = velo_reactor_create(workers, queue);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e->r);
    velo_host_bind(e->r, e->m, NULL);
    char err[512];
    e->store = velo_authstore_open(e->dir, FAST_ITER, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(e->store);
    char h[VELO_AUTH_HASH_TEXT_MAX];
    velo_auth_hash_password("alice-password", FAST_ITER, h, sizeof(h));
    CU_ASSERT_EQUAL(velo_authstore_user_add(e->store, "alice", h, "admin", err,
                                            sizeof(err)),
                    VELO_OK);
    velo_auth_hash_password("bob-password", FAST_ITER, h, sizeof(h));
    CU_ASSERT_EQUAL(
        velo_authstore_user_add(e->store, "bob", h, "viewer", err, sizeof(err)),
        VELO_OK);
    struct velo_auth_apikey k;
    CU_ASSERT_EQUAL(velo_authstore_apikey_create(
                        e->store, "admin key", "alice", "admin", e->admin_key,
                        sizeof(e->admin_key), &k, err, sizeof(err)),
                    VELO_OK);
    CU_ASSERT_EQUAL(velo_authstore_apikey_create(
                        e->store, "viewer key", "bob", "viewer", e->viewer_key,
                        sizeof(e->viewer_key), &k, err, sizeof(err)),
                    VELO_OK);
    strcpy(e->viewer_key_id, k.id);
}

static void env_chain(struct env *e)
{
    if (e->cfg.n_plugin_dirs > 0) {
        e->plugins = velo_plugins_load(&e->cfg, velo_host_api(), NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e->plugins);
    }
    e->chain =
        velo_authchain_create(velo_host_api(), e->store, e->r, e->plugins);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e->chain);
}

static void env_down(struct env *e)
{
    velo_authchain_destroy(e->chain);
    velo_authstore_close(e->store);
    velo_plugins_unload(e->plugins);
    velo_host_bind(NULL, NULL, NULL);
    velo_reactor_destroy(e->r);
    velo_metrics_destroy(e->m);
    velo_config_free(&e->cfg);
    tu_rmrf(e->dir);
    free(e->dir);
}

/* ---- waiting for an answer ---------------------------------------------- */

struct answer {
    int calls;
    int result;
    int has_who;
    struct velo_principal who;
    int waiting;
    struct velo_reactor *r;
};

static void on_answer(void *arg, int result, const struct velo_principal *who)
{
    struct answer *a = arg;
    a->calls++;
    a->result = result;
    a->has_who = who != NULL;
    if (who != NULL) {
        a->who = *who;
    }
    if (a->waiting) {
        velo_reactor_stop(a->r);
    }
}

static void give_up(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    velo_reactor_stop(arg);
}

/* Authenticate and run the main loop until the answer (at most 10 s).
 * @return 1 when the answer came synchronously. */
static int authenticate(struct env *e, struct fake_req *f, struct answer *a)
{
    memset(a, 0, sizeof(*a));
    a->r = e->r;
    velo_authchain_authenticate(e->chain, &f->req, on_answer, a);
    if (a->calls > 0) {
        return 1;
    }
    a->waiting = 1;
    struct event *t = evtimer_new(velo_reactor_main_base(e->r), give_up, e->r);
    struct timeval tv = {10, 0};
    evtimer_add(t, &tv);
    velo_reactor_run(e->r);
    event_free(t);
    a->waiting = 0;
    return 0;
}

/* ---- BasicAuth ------------------------------------------------------------
 */

static void test_basic_password(void)
{
    struct env e;
    env_up(&e, NULL, 2, 16);
    env_chain(&e);
    struct fake_req f;
    struct answer a;

    fake_init(&f);
    char *good = basic_value("alice", "alice-password");
    fake_add(&f, "Authorization", good);
    CU_ASSERT_EQUAL(authenticate(&e, &f, &a), 0); /* hashed on a worker */
    CU_ASSERT_EQUAL(a.calls, 1);
    CU_ASSERT_EQUAL(a.result, VELO_AUTH_ACCEPT);
    CU_ASSERT_TRUE_FATAL(a.has_who);
    CU_ASSERT_STRING_EQUAL(a.who.name, "alice");
    CU_ASSERT_STRING_EQUAL(a.who.roles, "admin");
    CU_ASSERT_STRING_EQUAL(a.who.provider, "basic");
    free(good);

    /* The scheme name is case-insensitive. */
    fake_init(&f);
    char *lower = basic_value("bob", "bob-password");
    memcpy(lower, "basic", 5);
    fake_add(&f, "authorization", lower);
    authenticate(&e, &f, &a);
    CU_ASSERT_EQUAL(a.result, VELO_AUTH_ACCEPT);
    CU_ASSERT_STRING_EQUAL(a.who.roles, "viewer");
    free(lower);

    fake_init(&f);
    char *wrong = basic_value("alice", "alice-passworD");
    fake_add(&f, "Authorization", wrong);
    CU_ASSERT_EQUAL(authenticate(&e, &f, &a), 0);
    CU_ASSERT_EQUAL(a.calls, 1);
    CU_ASSERT_EQUAL(a.result, VELO_AUTH_DENY);
    CU_ASSERT_FALSE(a.has_who);
    free(wrong);

    /* An unknown user costs a hash too (no timing oracle), then DENY. */
    fake_init(&f);
    char *nobody = basic_value("mallory", "alice-password");
    fake_add(&f, "Authorization", nobody);
    CU_ASSERT_EQUAL(authenticate(&e, &f, &a), 0);
    CU_ASSERT_EQUAL(a.result, VELO_AUTH_DENY);
    free(nobody);

    /* Malformed credentials are refused at once. */
    static const char *const bad[] = {"Basic", "Basic !!!!", "Basic Zm9v",
                                      "Basic OmFiYw==" /* ":abc" */,
                                      "Basic YSBiOmM=" /* "a b:c" */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fake_init(&f);
        fake_add(&f, "Authorization", bad[i]);
        CU_ASSERT_EQUAL(authenticate(&e, &f, &a), 1);
        CU_ASSERT_EQUAL(a.result, VELO_AUTH_DENY);
    }

    /* No credentials: every provider says NEXT, the chain says DENY. */
    fake_init(&f);
    CU_ASSERT_EQUAL(authenticate(&e, &f, &a), 1);
    CU_ASSERT_EQUAL(a.calls, 1);
    CU_ASSERT_EQUAL(a.result, VELO_AUTH_DENY);
    CU_ASSERT_FALSE(a.has_who);
    env_down(&e);
}

static void test_basic_apikeys(void)
{
    struct env e;
    env_up(&e, NULL, 1, 16);
    env_chain(&e);
    struct fake_req f;
    struct answer a;
    char bearer[200];

    fake_init(&f);
    snprintf(bearer, sizeof(bearer), "Bearer %s", e.viewer_key);
    fake_add(&f, "Authorization", bearer);
    CU_ASSERT_EQUAL(authenticate(&e, &f, &a), 1); /* fast path */
    CU_ASSERT_EQUAL(a.result, VELO_AUTH_ACCEPT);
    char want[64];
    snprintf(want, sizeof(want), "apikey:%s", e.viewer_key_id);
    CU_ASSERT_STRING_EQUAL(a.who.name, want);
    CU_ASSERT_STRING_EQUAL(a.who.roles, "viewer");
    CU_ASSERT_STRING_EQUAL(a.who.provider, "apikey");

    fake_init(&f);
    fake_add(&f, "X-API-Key", e.admin_key);
    CU_ASSERT_EQUAL(authenticate(&e, &f, &a), 1);
    CU_ASSERT_EQUAL(a.result, VELO_AUTH_ACCEPT);
    CU_ASSERT_STRING_EQUAL(a.who.roles, "admin");

    /* Not one of ours: NEXT, and with nobody else in the chain, DENY. */
    fake_init(&f);
    fake_add(&f, "Authorization", "Bearer eyJhbGciOi.eyJzdWIi.c2ln");
    CU_ASSERT_EQUAL(authenticate(&e, &f, &a), 1);
    CU_ASSERT_EQUAL(a.result, VELO_AUTH_DENY);

    /* Ours but wrong. */
    char tampered[VELO_APIKEY_TEXT_LEN + 1];
    strcpy(tampered, e.viewer_key);
    tampered[20] = tampered[20] == 'x' ? 'y' : 'x';
    fake_init(&f);
    fake_add(&f, "X-API-Key", tampered);
    authenticate(&e, &f, &a);
    CU_ASSERT_EQUAL(a.result, VELO_AUTH_DENY);

    /* Revoked by another process (the CLI): noticed within a second. */
    char err[256];
    struct velo_authstore *cli =
        velo_authstore_open(e.dir, FAST_ITER, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(cli);
    CU_ASSERT_EQUAL(
        velo_authstore_apikey_revoke(cli, e.viewer_key_id, err, sizeof(err)),
        VELO_OK);
    char fresh[VELO_APIKEY_TEXT_LEN + 1];
    CU_ASSERT_EQUAL(velo_authstore_apikey_create(cli, "fresh", NULL, "admin",
                                                 fresh, sizeof(fresh), NULL,
                                                 err, sizeof(err)),
                    VELO_OK);
    velo_authstore_close(cli);
    usleep(1100 * 1000);
    fake_init(&f);
    fake_add(&f, "Authorization", bearer);
    authenticate(&e, &f, &a);
    CU_ASSERT_EQUAL(a.result, VELO_AUTH_DENY);
    fake_init(&f);
    fake_add(&f, "X-API-Key", fresh);
    authenticate(&e, &f, &a);
    CU_ASSERT_EQUAL(a.result, VELO_AUTH_ACCEPT);
    env_down(&e);
}

static void test_authorize_builtin(void)
{
    struct env e;
    env_up(&e, NULL, 1, 4);
    env_chain(&e);
    struct velo_principal admin = {"alice", "admin", "basic"};
    struct velo_principal viewer = {"bob", "viewer", "basic"};
    struct velo_principal none = {"carol", "", "basic"};
    struct velo_principal both = {"dave", "viewer,admin", "basic"};
    CU_ASSERT_EQUAL(
        velo_authchain_authorize(e.chain, &admin, "apikeys", "create"),
        VELO_AUTH_ACCEPT);
    CU_ASSERT_EQUAL(
        velo_authchain_authorize(e.chain, &admin, "anything", "delete"),
        VELO_AUTH_ACCEPT);
    CU_ASSERT_EQUAL(
        velo_authchain_authorize(e.chain, &viewer, "plugins", "read"),
        VELO_AUTH_ACCEPT);
    CU_ASSERT_EQUAL(
        velo_authchain_authorize(e.chain, &viewer, "apikeys", "create"),
        VELO_AUTH_DENY);
    CU_ASSERT_EQUAL(
        velo_authchain_authorize(e.chain, &viewer, "apikeys", "delete"),
        VELO_AUTH_DENY);
    CU_ASSERT_EQUAL(velo_authchain_authorize(e.chain, &none, "plugins", "read"),
                    VELO_AUTH_DENY);
    CU_ASSERT_EQUAL(
        velo_authchain_authorize(e.chain, &both, "apikeys", "delete"),
        VELO_AUTH_ACCEPT);
    CU_ASSERT_EQUAL(velo_authchain_authorize(e.chain, NULL, "plugins", "read"),
                    VELO_AUTH_DENY);
    CU_ASSERT_PTR_EQUAL(velo_authchain_store(e.chain), e.store);
    env_down(&e);
}

/* ---- plugin providers ---------------------------------------------------- */

static void plugin_env(struct env *e, char **pdir, int async)
{
    *pdir = tu_tmpdir();
    copy_fixture("auth_token", *pdir);
    env_up(e, *pdir, 1, 16);
    cfg_kv(&e->cfg, "auth_token", "token", "fixture-token-123");
    cfg_kv(&e->cfg, "auth_token", "async", async ? "true" : "false");
    env_chain(e);
    const struct velo_plugin_entry *pe =
        velo_plugins_find(e->plugins, "auth_token");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pe);
    CU_ASSERT_EQUAL(pe->state, VELO_PLUGIN_LOADED);
}

static void test_plugin_provider(void)
{
    for (int async = 0; async <= 1; async++) {
        struct env e;
        char *pdir;
        plugin_env(&e, &pdir, async);
        struct fake_req f;
        struct answer a;

        /* BasicAuth says NEXT to a foreign bearer token; the plugin takes
         * it (at once, or later through a worker). */
        fake_init(&f);
        fake_add(&f, "Authorization", "Bearer fixture-token-123");
        CU_ASSERT_EQUAL(authenticate(&e, &f, &a), async ? 0 : 1);
        CU_ASSERT_EQUAL(a.calls, 1);
        CU_ASSERT_EQUAL(a.result, VELO_AUTH_ACCEPT);
        CU_ASSERT_STRING_EQUAL(a.who.name, "token-user");
        CU_ASSERT_STRING_EQUAL(a.who.provider, "auth_token");

        /* Our own keys are still ours. */
        char bearer[200];
        snprintf(bearer, sizeof(bearer), "Bearer %s", e.admin_key);
        fake_init(&f);
        fake_add(&f, "Authorization", bearer);
        CU_ASSERT_EQUAL(authenticate(&e, &f, &a), 1);
        CU_ASSERT_EQUAL(a.result, VELO_AUTH_ACCEPT);
        CU_ASSERT_STRING_EQUAL(a.who.provider, "apikey");

        /* A token neither knows. */
        fake_init(&f);
        fake_add(&f, "Authorization", "Bearer something-else");
        authenticate(&e, &f, &a);
        CU_ASSERT_EQUAL(a.result, VELO_AUTH_DENY);

        /* The plugin's authorize is asked first; NEXT falls back to the
         * roles. */
        struct velo_principal tu = {"token-user", "viewer", "auth_token"};
        CU_ASSERT_EQUAL(
            velo_authchain_authorize(e.chain, &tu, "secret", "read"),
            VELO_AUTH_DENY);
        CU_ASSERT_EQUAL(
            velo_authchain_authorize(e.chain, &tu, "special", "write"),
            VELO_AUTH_ACCEPT);
        CU_ASSERT_EQUAL(
            velo_authchain_authorize(e.chain, &tu, "plugins", "read"),
            VELO_AUTH_ACCEPT);
        CU_ASSERT_EQUAL(
            velo_authchain_authorize(e.chain, &tu, "plugins", "create"),
            VELO_AUTH_DENY);
        env_down(&e);
        tu_rmrf(pdir);
        free(pdir);
    }
}

/* ---- lifetime -------------------------------------------------------------
 */

/* Destroyed with password checks pending (the loop never ran them): each
 * request still gets exactly one answer, DENY, and nothing leaks. */
static void test_destroy_pending(void)
{
    struct env e;
    env_up(&e, NULL, 1, 16);
    velo_authstore_set_iterations(e.store, 200000);
    char h[VELO_AUTH_HASH_TEXT_MAX], err[256];
    velo_auth_hash_password("slow-password", 200000, h, sizeof(h));
    velo_authstore_user_add(e.store, "slow", h, "admin", err, sizeof(err));
    env_chain(&e);
    enum { N = 4 };
    struct fake_req f[N];
    struct answer a[N];
    char *cred = basic_value("slow", "slow-password");
    for (int i = 0; i < N; i++) {
        fake_init(&f[i]);
        fake_add(&f[i], "Authorization", cred);
        memset(&a[i], 0, sizeof(a[i]));
        velo_authchain_authenticate(e.chain, &f[i].req, on_answer, &a[i]);
        CU_ASSERT_EQUAL(a[i].calls, 0);
    }
    velo_authchain_destroy(e.chain);
    e.chain = NULL;
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(a[i].calls, 1);
        CU_ASSERT_EQUAL(a[i].result, VELO_AUTH_DENY);
    }
    free(cred);
    env_down(&e); /* joins the workers; orphaned jobs free themselves */
}

/* A full worker queue is back-pressure: the request is denied at once,
 * never queued without bound, and every request is answered once. */
static void test_queue_full(void)
{
    struct env e;
    env_up(&e, NULL, 1, 1);
    env_chain(&e);
    enum { N = 6 };
    struct fake_req f[N];
    struct answer a[N];
    char *cred = basic_value("alice", "alice-password");
    int sync = 0;
    for (int i = 0; i < N; i++) {
        fake_init(&f[i]);
        fake_add(&f[i], "Authorization", cred);
        memset(&a[i], 0, sizeof(a[i]));
        velo_authchain_authenticate(e.chain, &f[i].req, on_answer, &a[i]);
        sync += a[i].calls;
    }
    CU_ASSERT_TRUE(sync >= 1);
    /* Let the accepted ones finish. */
    for (int round = 0; round < 200; round++) {
        int done = 0;
        for (int i = 0; i < N; i++) {
            done += a[i].calls;
        }
        if (done == N) {
            break;
        }
        event_base_loop(velo_reactor_main_base(e.r), EVLOOP_NONBLOCK);
        usleep(10000);
    }
    int accepted = 0;
    for (int i = 0; i < N; i++) {
        CU_ASSERT_EQUAL(a[i].calls, 1);
        accepted += a[i].result == VELO_AUTH_ACCEPT;
    }
    CU_ASSERT_TRUE(accepted >= 1);
    CU_ASSERT_EQUAL(accepted + sync, N);
    free(cred);
    env_down(&e);
}

/* ---- audit -----------------------------------------------------------------
 */

static void test_audit_chain(void)
{
    /* NoOpAudit alone. */
    struct velo_auditchain *noop =
        velo_auditchain_create(velo_host_api(), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(noop);
    struct velo_audit_event ev = {
        .time_ms = 1700000000123LL,
        .who = "alice",
        .action = "apikey.create",
        .resource = "/api/apikeys",
        .outcome = "success",
        .request_id = "req-\"42\"",
        .client_addr = "127.0.0.1",
        .detail = NULL,
    };
    velo_auditchain_log(noop, &ev);
    velo_auditchain_destroy(noop);

    /* A real AuditSink plugin, and one that cannot write. */
    char *pdir = tu_tmpdir();
    copy_fixture("audit_recorder", pdir);
    struct env e;
    env_up(&e, pdir, 1, 4);
    char *log = malloc(strlen(pdir) + 16);
    sprintf(log, "%s/audit.jsonl", pdir);
    cfg_kv(&e.cfg, "audit_recorder", "path", log);
    e.plugins = velo_plugins_load(&e.cfg, velo_host_api(), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e.plugins);
    struct velo_auditchain *c =
        velo_auditchain_create(velo_host_api(), e.plugins);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    velo_auditchain_log(c, &ev);
    ev.who = "bob";
    ev.outcome = "deny";
    ev.detail = "resource=apikeys action=create";
    velo_auditchain_log(c, &ev);
    velo_auditchain_destroy(c);
    char *text = tu_read_file(log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    CU_ASSERT_PTR_NOT_NULL(strstr(
        text, "{\"time_ms\":1700000000123,\"who\":\"alice\",\"action\":"
              "\"apikey.create\",\"resource\":\"/api/apikeys\",\"outcome\":"
              "\"success\",\"request_id\":\"req-\\\"42\\\"\",\"client_addr\":"
              "\"127.0.0.1\",\"detail\":null}\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"who\":\"bob\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\"detail\":\"resource=apikeys "
                                        "action=create\""));
    free(text);
    velo_plugins_unload(e.plugins);
    e.plugins = NULL;

    /* /dev/full: every write fails; counted, never fatal. */
    for (size_t i = 0; i < e.cfg.n_plugin_kv; i++) {
        if (strcmp(e.cfg.plugin_kv[i].key, "path") == 0) {
            free(e.cfg.plugin_kv[i].value);
            e.cfg.plugin_kv[i].value = strdup("/dev/full");
        }
    }
    e.plugins = velo_plugins_load(&e.cfg, velo_host_api(), NULL);
    c = velo_auditchain_create(velo_host_api(), e.plugins);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    velo_auditchain_log(c, &ev);
    velo_auditchain_log(c, &ev);
    velo_auditchain_destroy(c);
    size_t len;
    char *metrics = velo_metrics_render(e.m, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(metrics);
    CU_ASSERT_PTR_NOT_NULL(strstr(
        metrics, "velo_audit_failures_total{sink=\"audit_recorder\"} 2"));
    free(metrics);

    e.chain = NULL;
    env_down(&e);
    free(log);
    tu_rmrf(pdir);
    free(pdir);
}

int main(void)
{
    velo_log_set_level(VELO_LOG_ERROR);
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("auth", NULL, NULL);
    CU_add_test(s, "basic: passwords on a worker", test_basic_password);
    CU_add_test(s, "basic: API keys", test_basic_apikeys);
    CU_add_test(s, "built-in authorization", test_authorize_builtin);
    CU_add_test(s, "plugin provider: NEXT, AGAIN, authorize",
                test_plugin_provider);
    CU_add_test(s, "destroy with checks pending", test_destroy_pending);
    CU_add_test(s, "worker queue full", test_queue_full);
    CU_add_test(s, "audit chain", test_audit_chain);
    return tu_run_all();
}
