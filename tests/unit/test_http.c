/*
 * The HTTP API server, over real sockets, with a real reactor, auth store,
 * chains and (for audit) a real AuditSink plugin: routes and JSON errors,
 * authentication and RBAC, API keys, metrics, limits (body, headers, slow
 * clients, connection count), TLS, readiness during shutdown, audit
 * records, and requests whose client leaves while authentication runs.
 *
 * Each test starts its own server in-process: the main loop runs on a
 * thread, the test talks to it through sockets only (and through
 * velo_reactor_call_main for server calls such as begin_shutdown).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "auth/chain.h"
#include "config/config.h"
#include "http/http.h"
#include "obs/metrics.h"
#include "plugin/host.h"
#include "plugin/loader.h"
#include "reactor/reactor.h"
#include "store/authstore.h"
#include "testutil.h"
#include "util/log.h"

#define FAST_ITER 1000
#define REALM "velo-test"
/* CUnit string asserts crash on NULL; compare "(null)" instead. */
#define NN(s) ((s) != NULL ? (s) : "(null)")

/* ---- the in-process server ------------------------------------------------
 */

struct srv {
    char *dir;
    char *pdir; /* plugin directory, or NULL */
    struct velo_config cfg;
    struct velo_reactor *r;
    struct velo_metrics *m;
    struct velo_plugins *plugins;
    struct velo_authstore *store;
    struct velo_authchain *auth;
    struct velo_auditchain *audit;
    struct velo_http *http;
    pthread_t th;
    int running;
    int port;
    char err[1024];
    char alice[256]; /* "Authorization: Basic ...\r\n" (admin) */
    char bob[256];   /* viewer */
};

static void set_str(char **field, const char *value)
{
    free(*field);
    *field = value != NULL ? strdup(value) : NULL;
}

static void basic_header(char *out, size_t cap, const char *user,
                         const char *pw)
{
    char plain[256];
    unsigned char b64[400];
    snprintf(plain, sizeof(plain), "%s:%s", user, pw);
    EVP_EncodeBlock(b64, (const unsigned char *)plain, (int)strlen(plain));
    snprintf(out, cap, "Authorization: Basic %.200s\r\n", (char *)b64);
}

static void srv_init(struct srv *s)
{
    memset(s, 0, sizeof(*s));
    s->dir = tu_tmpdir();
    CU_ASSERT_EQUAL_FATAL(velo_config_init(&s->cfg), VELO_OK);
    set_str(&s->cfg.listen, "127.0.0.1:0");
    set_str(&s->cfg.data_dir, s->dir);
    set_str(&s->cfg.auth_realm, REALM);
    s->cfg.auth_pbkdf2_iterations = FAST_ITER;
    s->cfg.http_request_timeout_ms = 5000;
    s->cfg.workers = 2;
    for (size_t i = 0; i < s->cfg.n_plugin_dirs; i++) {
        free(s->cfg.plugin_dirs[i]);
        s->cfg.plugin_dirs[i] = NULL;
    }
    s->cfg.n_plugin_dirs = 0;
    basic_header(s->alice, sizeof(s->alice), "alice", "alice-password");
    basic_header(s->bob, sizeof(s->bob), "bob", "bob-password");
}

static void *srv_thread(void *arg)
{
    struct srv *s = arg;
    velo_reactor_run(s->r);
    return NULL;
}

static void add_user(struct velo_authstore *st, const char *name,
                     const char *pw, const char *roles, int64_t iter)
{
    char h[VELO_AUTH_HASH_TEXT_MAX], err[256];
    CU_ASSERT_EQUAL(velo_auth_hash_password(pw, iter, h, sizeof(h)), VELO_OK);
    CU_ASSERT_EQUAL(
        velo_authstore_user_add(st, name, h, roles, err, sizeof(err)), VELO_OK);
}

/* @return 0, or -1 with s->err set (nothing left running). */
static int srv_start(struct srv *s)
{
    s->m = velo_metrics_create();
    s->r = velo_reactor_create((size_t)s->cfg.workers, 64);
    if (s->m == NULL || s->r == NULL) {
        snprintf(s->err, sizeof(s->err), "reactor/metrics");
        return -1;
    }
    velo_host_bind(s->r, s->m, NULL);
    if (s->pdir != NULL) {
        s->cfg.plugin_dirs[0] = strdup(s->pdir);
        s->cfg.n_plugin_dirs = 1;
        s->plugins = velo_plugins_load(&s->cfg, velo_host_api(), NULL);
    }
    s->store = velo_authstore_open(
        s->cfg.data_dir, s->cfg.auth_pbkdf2_iterations, s->err, sizeof(s->err));
    if (s->store == NULL) {
        return -1;
    }
    if (velo_authstore_user_find(s->store, "alice") == NULL) {
        add_user(s->store, "alice", "alice-password", "admin", FAST_ITER);
        add_user(s->store, "bob", "bob-password", "viewer", FAST_ITER);
    }
    s->auth =
        velo_authchain_create(velo_host_api(), s->store, s->r, s->plugins);
    s->audit = velo_auditchain_create(velo_host_api(), s->plugins);
    struct velo_http_deps deps = {
        .base = velo_reactor_main_base(s->r),
        .reactor = s->r,
        .metrics = s->m,
        .auth = s->auth,
        .audit = s->audit,
        .plugins = s->plugins,
        .license = NULL,
        .version = "9.8.7",
        .commit = "abc123",
    };
    s->http = velo_http_create(&deps, &s->cfg, s->err, sizeof(s->err));
    if (s->http == NULL) {
        return -1;
    }
    s->port = velo_http_port(s->http);
    if (pthread_create(&s->th, NULL, srv_thread, s) != 0) {
        return -1;
    }
    s->running = 1;
    return 0;
}

static void srv_stop(struct srv *s)
{
    if (s->running) {
        velo_reactor_stop(s->r);
        pthread_join(s->th, NULL);
        s->running = 0;
    }
    velo_http_destroy(s->http);
    velo_auditchain_destroy(s->audit);
    velo_authchain_destroy(s->auth);
    velo_authstore_close(s->store);
    velo_plugins_unload(s->plugins);
    velo_host_bind(NULL, NULL, NULL);
    velo_reactor_destroy(s->r);
    velo_metrics_destroy(s->m);
    velo_config_free(&s->cfg);
    tu_rmrf(s->dir);
    free(s->dir);
    if (s->pdir != NULL) {
        tu_rmrf(s->pdir);
        free(s->pdir);
    }
    memset(s, 0, sizeof(*s));
}

/* Put a fixture plugin in the server's plugin directory. */
static void srv_plugin(struct srv *s, const char *name)
{
    if (s->pdir == NULL) {
        s->pdir = tu_tmpdir();
    }
    char src[1024], dst[1024];
    snprintf(src, sizeof(src), "%s/%s.so", tu_env("VELO_FIXTURE_DIR"), name);
    snprintf(dst, sizeof(dst), "%s/%s.so", s->pdir, name);
    size_t len;
    char *so = tu_read_file(src, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(so);
    CU_ASSERT_EQUAL(tu_write_file(dst, so, len), 0);
    free(so);
}

static void srv_kv(struct srv *s, const char *plugin, const char *key,
                   const char *value)
{
    struct velo_config *c = &s->cfg;
    c->plugin_kv =
        realloc(c->plugin_kv, (c->n_plugin_kv + 1) * sizeof(*c->plugin_kv));
    struct velo_config_kv *kv = &c->plugin_kv[c->n_plugin_kv++];
    kv->plugin = strdup(plugin);
    kv->key = strdup(key);
    kv->value = strdup(value);
    kv->line = 0;
}

/* Run fn(arg) on the server's loop and wait for it. */
struct on_main {
    void (*fn)(struct srv *s, void *arg);
    struct srv *s;
    void *arg;
    atomic_int done;
};

static void on_main_tramp(void *arg)
{
    struct on_main *o = arg;
    o->fn(o->s, o->arg);
    atomic_store(&o->done, 1);
}

static void run_on_main(struct srv *s, void (*fn)(struct srv *, void *),
                        void *arg)
{
    struct on_main o = {fn, s, arg, 0};
    CU_ASSERT_EQUAL_FATAL(velo_reactor_call_main(s->r, on_main_tramp, &o),
                          VELO_OK);
    for (int i = 0; i < 500 && !atomic_load(&o.done); i++) {
        usleep(10000);
    }
    CU_ASSERT_TRUE_FATAL(atomic_load(&o.done));
}

/* ---- client helpers -------------------------------------------------------
 */

static json_t *jbody(const struct tu_http_resp *r)
{
    json_error_t je;
    return r->body != NULL ? json_loads(r->body, 0, &je) : NULL;
}

static const char *jstr(json_t *o, const char *path1, const char *path2)
{
    json_t *v = json_object_get(o, path1);
    if (path2 != NULL) {
        v = json_object_get(v, path2);
    }
    /* "" rather than NULL: a missing field fails the assertion instead of
     * crashing strcmp inside CUnit. */
    const char *str = json_string_value(v);
    return str != NULL ? str : "";
}

/* status of METHOD path with extra headers and body (may be NULL) */
static int req(struct srv *s, const char *method, const char *path,
               const char *headers, const char *body, struct tu_http_resp *resp)
{
    if (tu_http(s->port, method, path, headers, body, resp) != 0) {
        fprintf(stderr, "%s %s: no HTTP response\n", method, path);
        return 0;
    }
    return resp->status;
}

static int status_of(struct srv *s, const char *method, const char *path,
                     const char *headers, const char *body)
{
    struct tu_http_resp r;
    int st = req(s, method, path, headers, body, &r);
    tu_http_free(&r);
    return st;
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int raw_send(int fd, const char *data)
{
    size_t n = strlen(data);
    return send(fd, data, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

/* Read one response (headers, then Content-Length bytes). @return its
 * status, 0 when nothing complete came within ms, -1 when closed. */
static int raw_response(int fd, char *buf, size_t cap, int ms)
{
    size_t n = 0;
    buf[0] = '\0';
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, ms) <= 0) {
            return 0;
        }
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0) {
            return n > 0 && strstr(buf, "\r\n\r\n") != NULL ? atoi(buf + 9)
                                                            : -1;
        }
        n += (size_t)r;
        buf[n] = '\0';
        char *hend = strstr(buf, "\r\n\r\n");
        if (hend == NULL) {
            continue;
        }
        const char *cl = strcasestr(buf, "\r\nContent-Length:");
        size_t want = cl != NULL && cl < hend ? strtoul(cl + 17, NULL, 10) : 0;
        if (n >= (size_t)(hend - buf) + 4 + want) {
            return atoi(buf + 9);
        }
    }
}

/* Did the peer close within ms? */
static int raw_closed(int fd, int ms)
{
    char b[256];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        if (poll(&p, 1, ms) <= 0) {
            return 0;
        }
        ssize_t r = recv(fd, b, sizeof(b), 0);
        if (r <= 0) {
            return 1;
        }
    }
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- routes and errors -----------------------------------------------------
 */

static void test_health_and_errors(void)
{
    struct srv s;
    srv_init(&s);
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    struct tu_http_resp r;

    CU_ASSERT_EQUAL(req(&s, "GET", "/healthz", NULL, NULL, &r), 200);
    json_t *j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "status", NULL), "ok");
    json_decref(j);
    char *ct = tu_http_header(&r, "Content-Type");
    CU_ASSERT_STRING_EQUAL(NN(ct), "application/json");
    free(ct);
    char *rid = tu_http_header(&r, "X-Request-Id");
    CU_ASSERT_PTR_NOT_NULL(rid);
    CU_ASSERT_EQUAL(rid != NULL ? strlen(rid) : 0, 24);
    char *rid1 = rid;
    tu_http_free(&r);

    /* Request ids are unique, or the client's own when sane. */
    req(&s, "GET", "/healthz", NULL, NULL, &r);
    rid = tu_http_header(&r, "X-Request-Id");
    CU_ASSERT_STRING_NOT_EQUAL(NN(rid), NN(rid1));
    free(rid);
    free(rid1);
    tu_http_free(&r);
    req(&s, "GET", "/healthz", "X-Request-Id: trace-42.a:b_c\r\n", NULL, &r);
    rid = tu_http_header(&r, "X-Request-Id");
    CU_ASSERT_STRING_EQUAL(NN(rid), "trace-42.a:b_c");
    free(rid);
    tu_http_free(&r);
    req(&s, "GET", "/healthz", "X-Request-Id: bad id <script>\r\n", NULL, &r);
    rid = tu_http_header(&r, "X-Request-Id");
    CU_ASSERT_PTR_NOT_NULL(rid);
    CU_ASSERT_PTR_NULL(rid != NULL ? strstr(rid, "script") : NULL);
    free(rid);
    tu_http_free(&r);

    CU_ASSERT_EQUAL(req(&s, "GET", "/readyz", NULL, NULL, &r), 200);
    j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "status", NULL), "ready");
    json_decref(j);
    tu_http_free(&r);

    CU_ASSERT_EQUAL(req(&s, "HEAD", "/healthz", NULL, NULL, &r), 200);
    CU_ASSERT_EQUAL(r.body_len, 0);
    tu_http_free(&r);

    CU_ASSERT_EQUAL(req(&s, "POST", "/healthz", NULL, "{}", &r), 405);
    char *allow = tu_http_header(&r, "Allow");
    CU_ASSERT_STRING_EQUAL(NN(allow), "GET, HEAD");
    free(allow);
    j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "error", "code"), "method_not_allowed");
    json_decref(j);
    tu_http_free(&r);

    CU_ASSERT_EQUAL(req(&s, "GET", "/no/such/thing", NULL, NULL, &r), 404);
    j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "error", "code"), "not_found");
    CU_ASSERT_PTR_NOT_NULL(
        strstr(jstr(j, "error", "message"), "/no/such/thing"));
    json_decref(j);
    tu_http_free(&r);

    /* Garbage on the wire: 400 from evhttp, and the server carries on. */
    static const char garbage[] = "GARBAGE\r\n\r\n";
    CU_ASSERT_EQUAL(tu_http_raw(s.port, garbage, sizeof(garbage) - 1, &r, 3000),
                    0);
    CU_ASSERT_EQUAL(r.status, 400);
    tu_http_free(&r);
    static const char badver[] = "GET / HTTP/9.9\r\nHost: x\r\n\r\n";
    tu_http_raw(s.port, badver, sizeof(badver) - 1, &r, 3000);
    CU_ASSERT_TRUE(r.status == 0 || r.status >= 400);
    tu_http_free(&r);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/healthz", NULL, NULL), 200);
    srv_stop(&s);
}

static void test_auth_required(void)
{
    struct srv s;
    srv_init(&s);
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    struct tu_http_resp r;

    CU_ASSERT_EQUAL(req(&s, "GET", "/api/version", NULL, NULL, &r), 401);
    char *www = tu_http_header(&r, "WWW-Authenticate");
    CU_ASSERT_STRING_EQUAL(NN(www), "Basic realm=\"" REALM "\"");
    free(www);
    json_t *j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "error", "code"), "unauthorized");
    json_decref(j);
    tu_http_free(&r);

    char hdr[256];
    basic_header(hdr, sizeof(hdr), "alice", "not-her-password");
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/version", hdr, NULL), 401);
    basic_header(hdr, sizeof(hdr), "mallory", "alice-password");
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/version", hdr, NULL), 401);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/version",
                              "Authorization: Basic !!!\r\n", NULL),
                    401);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/version",
                              "Authorization: Digest username=x\r\n", NULL),
                    401);
    /* Unknown /api paths do not reveal themselves before auth. */
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/nope", NULL, NULL), 401);

    CU_ASSERT_EQUAL(req(&s, "GET", "/api/version", s.alice, NULL, &r), 200);
    j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "version", NULL), "9.8.7");
    CU_ASSERT_STRING_EQUAL(jstr(j, "commit", NULL), "abc123");
    CU_ASSERT_STRING_EQUAL(jstr(j, "abi", NULL), "1.2");
    json_decref(j);
    char *cc = tu_http_header(&r, "Cache-Control");
    CU_ASSERT_STRING_EQUAL(NN(cc), "no-store");
    free(cc);
    tu_http_free(&r);

    CU_ASSERT_EQUAL(req(&s, "GET", "/api/whoami", s.bob, NULL, &r), 200);
    j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "name", NULL), "bob");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_array_get(json_object_get(j, "roles"), 0)),
        "viewer");
    CU_ASSERT_STRING_EQUAL(jstr(j, "provider", NULL), "basic");
    json_decref(j);
    tu_http_free(&r);

    CU_ASSERT_EQUAL(req(&s, "GET", "/api/plugins", s.bob, NULL, &r), 200);
    CU_ASSERT_STRING_EQUAL(r.body, "[]");
    tu_http_free(&r);

    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/nope", s.alice, NULL), 404);
    CU_ASSERT_EQUAL(req(&s, "PUT", "/api/apikeys", s.alice, "{}", &r), 405);
    char *allow = tu_http_header(&r, "Allow");
    CU_ASSERT_PTR_NOT_NULL(allow != NULL ? strstr(allow, "GET") : NULL);
    CU_ASSERT_PTR_NOT_NULL(allow != NULL ? strstr(allow, "POST") : NULL);
    free(allow);
    tu_http_free(&r);
    /* /healthz and /readyz never ask for credentials. */
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/readyz", NULL, NULL), 200);
    srv_stop(&s);
}

static void test_apikeys_api(void)
{
    struct srv s;
    srv_init(&s);
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    struct tu_http_resp r;

    CU_ASSERT_EQUAL(req(&s, "POST", "/api/apikeys", s.alice,
                        "{\"name\":\"ci\",\"roles\":[\"viewer\"]}", &r),
                    201);
    json_t *j = jbody(&r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    char key[128], id[32], hdr[256];
    snprintf(key, sizeof(key), "%s", jstr(j, "key", NULL));
    snprintf(id, sizeof(id), "%s", jstr(j, "id", NULL));
    CU_ASSERT_EQUAL(strlen(key), VELO_APIKEY_TEXT_LEN);
    CU_ASSERT_EQUAL(strncmp(key, "velo_", 5), 0);
    CU_ASSERT_STRING_EQUAL(jstr(j, "owner", NULL), "alice");
    CU_ASSERT_STRING_EQUAL(jstr(j, "name", NULL), "ci");
    json_decref(j);
    char *loc = tu_http_header(&r, "Location");
    char want[64];
    snprintf(want, sizeof(want), "/api/apikeys/%s", id);
    CU_ASSERT_STRING_EQUAL(NN(loc), want);
    free(loc);
    tu_http_free(&r);

    /* Bearer and X-API-Key. */
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n", key);
    CU_ASSERT_EQUAL(req(&s, "GET", "/api/whoami", hdr, NULL, &r), 200);
    j = jbody(&r);
    snprintf(want, sizeof(want), "apikey:%s", id);
    CU_ASSERT_STRING_EQUAL(jstr(j, "name", NULL), want);
    CU_ASSERT_STRING_EQUAL(jstr(j, "provider", NULL), "apikey");
    json_decref(j);
    tu_http_free(&r);
    char xkey[256];
    snprintf(xkey, sizeof(xkey), "X-API-Key: %s\r\n", key);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/version", xkey, NULL), 200);

    /* The list shows keys, never secrets; a viewer key may read it. */
    CU_ASSERT_EQUAL(req(&s, "GET", "/api/apikeys", xkey, NULL, &r), 200);
    j = jbody(&r);
    CU_ASSERT_TRUE(json_is_array(j));
    CU_ASSERT_EQUAL(json_array_size(j), 1);
    CU_ASSERT_STRING_EQUAL(jstr(json_array_get(j, 0), "id", NULL), id);
    CU_ASSERT_PTR_NULL(json_object_get(json_array_get(j, 0), "key"));
    CU_ASSERT_PTR_NULL(json_object_get(json_array_get(j, 0), "hash"));
    CU_ASSERT_PTR_NULL(strstr(r.body, key + 18));
    json_decref(j);
    tu_http_free(&r);

    /* Viewers may not create or revoke. */
    CU_ASSERT_EQUAL(
        req(&s, "POST", "/api/apikeys", xkey, "{\"name\":\"x\"}", &r), 403);
    j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "error", "code"), "forbidden");
    json_decref(j);
    tu_http_free(&r);
    CU_ASSERT_EQUAL(
        status_of(&s, "POST", "/api/apikeys", s.bob, "{\"name\":\"x\"}"), 403);
    char path[64];
    snprintf(path, sizeof(path), "/api/apikeys/%s", id);
    CU_ASSERT_EQUAL(status_of(&s, "DELETE", path, s.bob, NULL), 403);

    /* Bad bodies: 400 naming the problem. */
    static const struct {
        const char *body;
        const char *says;
    } bad[] = {
        {"", "empty"},
        {"{\"name\": \"x\",", "invalid JSON"},
        {"[1,2]", "JSON object"},
        {"{\"roles\":[\"viewer\"]}", "\"name\" is required"},
        {"{\"name\":\"x\",\"roles\":[\"root\"]}", "valid roles: admin, viewer"},
        {"{\"name\":\"x\",\"roles\":\"admin\"}", "array"},
        {"{\"name\":\"x\",\"roles\":[1]}", "must be a string"},
        {"{\"name\":\"x\",\"owner\":\"y\"}", "unknown field \"owner\""},
        {"{\"name\":\"\"}", "invalid key name"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CU_ASSERT_EQUAL(
            req(&s, "POST", "/api/apikeys", s.alice, bad[i].body, &r), 400);
        j = jbody(&r);
        const char *msg = jstr(j, "error", "message");
        CU_ASSERT_STRING_EQUAL(jstr(j, "error", "code"), "bad_request");
        CU_ASSERT_PTR_NOT_NULL(msg != NULL ? strstr(msg, bad[i].says) : NULL);
        if (msg == NULL || strstr(msg, bad[i].says) == NULL) {
            fprintf(stderr, "body %s: %s\n", bad[i].body, r.body);
        }
        json_decref(j);
        tu_http_free(&r);
    }

    /* Revoke: 204, then the key is refused and a second revoke is 404. */
    CU_ASSERT_EQUAL(req(&s, "DELETE", path, s.alice, NULL, &r), 204);
    CU_ASSERT_EQUAL(r.body_len, 0);
    tu_http_free(&r);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/whoami", hdr, NULL), 401);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/whoami", xkey, NULL), 401);
    CU_ASSERT_EQUAL(status_of(&s, "DELETE", path, s.alice, NULL), 404);
    CU_ASSERT_EQUAL(status_of(&s, "DELETE", "/api/apikeys/zzz", s.alice, NULL),
                    404);
    CU_ASSERT_EQUAL(
        status_of(&s, "DELETE", "/api/apikeys/000000000000", s.alice, NULL),
        404);
    /* Default role is viewer. */
    CU_ASSERT_EQUAL(
        req(&s, "POST", "/api/apikeys", s.alice, "{\"name\":\"defaults\"}", &r),
        201);
    j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_array_get(json_object_get(j, "roles"), 0)),
        "viewer");
    json_decref(j);
    tu_http_free(&r);
    srv_stop(&s);
}

/* ---- metrics
 * ------------------------------------------------------------------- */

static void reconfigure_metrics_auth(struct srv *s, void *arg)
{
    int *rc = arg;
    s->cfg.auth_metrics_require_auth = 1;
    rc[0] = velo_http_reconfigure(s->http, &s->cfg, s->err, sizeof(s->err));
}

static void reconfigure_listen(struct srv *s, void *arg)
{
    int *rc = arg;
    set_str(&s->cfg.listen, "127.0.0.1:1");
    rc[0] = velo_http_reconfigure(s->http, &s->cfg, s->err, sizeof(s->err));
}

static void test_metrics(void)
{
    struct srv s;
    srv_init(&s);
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    struct tu_http_resp r;
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/healthz", NULL, NULL), 200);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/nowhere/1", NULL, NULL), 404);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/nowhere/2", NULL, NULL), 404);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/version", NULL, NULL), 401);
    CU_ASSERT_EQUAL(
        status_of(&s, "DELETE", "/api/apikeys/0123456789ab", s.alice, NULL),
        404);

    CU_ASSERT_EQUAL(req(&s, "GET", "/metrics", NULL, NULL, &r), 200);
    char *ct = tu_http_header(&r, "Content-Type");
    CU_ASSERT_STRING_EQUAL(NN(ct), "text/plain; version=0.0.4; charset=utf-8");
    free(ct);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "# TYPE velo_http_requests_total "
                                          "counter"));
    CU_ASSERT_PTR_NOT_NULL(strstr(
        r.body, "velo_http_requests_total{route=\"/healthz\",method=\"GET\","
                "status=\"200\"} 1"));
    /* Unknown paths share one series: bounded cardinality. */
    CU_ASSERT_PTR_NOT_NULL(strstr(
        r.body, "velo_http_requests_total{route=\"other\",method=\"GET\","
                "status=\"404\"} 2"));
    CU_ASSERT_PTR_NULL(strstr(r.body, "nowhere"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(r.body, "velo_http_requests_total{route=\"/api/version\","
                       "method=\"GET\",status=\"401\"} 1"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(r.body, "velo_http_requests_total{route=\"/api/apikeys/{id}\","
                       "method=\"DELETE\",status=\"404\"} 1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "# TYPE "
                                          "velo_http_request_duration_seconds "
                                          "histogram"));
    CU_ASSERT_PTR_NOT_NULL(strstr(
        r.body, "velo_http_request_duration_seconds_count{route=\"/healthz\"} "
                "1"));
    CU_ASSERT_PTR_NOT_NULL(strstr(r.body, "velo_http_connections "));
    tu_http_free(&r);

    /* Behind auth when configured (applied by reconfigure, no restart). */
    int rc[1] = {-99};
    run_on_main(&s, reconfigure_metrics_auth, rc);
    CU_ASSERT_EQUAL(rc[0], VELO_OK);
    CU_ASSERT_EQUAL(req(&s, "GET", "/metrics", NULL, NULL, &r), 401);
    char *www = tu_http_header(&r, "WWW-Authenticate");
    CU_ASSERT_PTR_NOT_NULL(www);
    free(www);
    tu_http_free(&r);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/metrics", s.bob, NULL), 200);

    /* The listen address needs a restart: said, not applied. */
    run_on_main(&s, reconfigure_listen, rc);
    CU_ASSERT_EQUAL(rc[0], VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(s.err, "server.listen"));
    CU_ASSERT_PTR_NOT_NULL(strstr(s.err, "restart"));
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/healthz", NULL, NULL), 200);
    srv_stop(&s);
}

/* ---- the CLI while the server runs
 * ------------------------------------------- */

static int sh(const char *cmd, char **out)
{
    struct tu_proc p;
    char *argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    int st = tu_run(&p, argv, NULL, 60000);
    if (out != NULL) {
        *out = tu_proc_stdout(&p);
    }
    char *err = tu_proc_stderr(&p);
    if (st != 0) {
        fprintf(stderr, "command failed (%d): %s\n%s\n", st, cmd,
                err != NULL ? err : "");
    }
    free(err);
    unlink(p.out_path);
    unlink(p.err_path);
    return st;
}

/* Poll until `path` answers `want` with these headers (up to 4 s). */
static int eventually(struct srv *s, const char *path, const char *headers,
                      int want)
{
    int st = 0;
    for (int i = 0; i < 40; i++) {
        st = status_of(s, "GET", path, headers, NULL);
        if (st == want) {
            break;
        }
        usleep(100000);
    }
    return st;
}

static void test_cli_changes_picked_up(void)
{
    struct srv s;
    srv_init(&s);
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    const char *bin = tu_env("VELO_BIN");
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof(cmd),
             "%s apikey create --name from-cli --role admin --owner alice "
             "--data-dir %s --set auth.pbkdf2_iterations=1000",
             bin, s.dir);
    CU_ASSERT_EQUAL_FATAL(sh(cmd, &out), 0);
    char key[128] = "";
    sscanf(out != NULL ? out : "", "%127s", key);
    free(out);
    CU_ASSERT_EQUAL(strlen(key), VELO_APIKEY_TEXT_LEN);
    char hdr[256];
    snprintf(hdr, sizeof(hdr), "X-API-Key: %s\r\n", key);
    CU_ASSERT_EQUAL(eventually(&s, "/api/whoami", hdr, 200), 200);

    snprintf(cmd, sizeof(cmd),
             "printf 'carol-password\\n' | %s user add carol --role viewer "
             "--data-dir %s --set auth.pbkdf2_iterations=1000",
             bin, s.dir);
    CU_ASSERT_EQUAL(sh(cmd, NULL), 0);
    char carol[256];
    basic_header(carol, sizeof(carol), "carol", "carol-password");
    CU_ASSERT_EQUAL(eventually(&s, "/api/version", carol, 200), 200);

    /* Revoked from the CLI: refused by the running server. */
    char id[16];
    snprintf(id, sizeof(id), "%.12s", key + 5);
    snprintf(cmd, sizeof(cmd), "%s apikey revoke %s --data-dir %s", bin, id,
             s.dir);
    CU_ASSERT_EQUAL(sh(cmd, NULL), 0);
    CU_ASSERT_EQUAL(eventually(&s, "/api/whoami", hdr, 401), 401);
    /* Deleted from the CLI: refused too. */
    snprintf(cmd, sizeof(cmd), "%s user delete carol --data-dir %s", bin,
             s.dir);
    CU_ASSERT_EQUAL(sh(cmd, NULL), 0);
    CU_ASSERT_EQUAL(eventually(&s, "/api/version", carol, 401), 401);
    srv_stop(&s);
}

/* ---- limits ----------------------------------------------------------------
 */

static void test_size_limits(void)
{
    struct srv s;
    srv_init(&s);
    s.cfg.http_max_body_size = 1024;
    s.cfg.http_max_header_size = 2048;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    struct tu_http_resp r;

    char *big = malloc(64 * 1024 + 1);
    memset(big, 'x', 64 * 1024);
    big[64 * 1024] = '\0';
    int st = req(&s, "POST", "/api/apikeys", s.alice, big, &r);
    CU_ASSERT_EQUAL(st, 413);
    tu_http_free(&r);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/healthz", NULL, NULL), 200);

    /* One huge header. */
    char *hdr = malloc(16 * 1024);
    snprintf(hdr, 16 * 1024, "X-Big: %.*s\r\n", 8000, big);
    st = req(&s, "GET", "/healthz", hdr, NULL, &r);
    CU_ASSERT_TRUE(st >= 400 && st < 500);
    tu_http_free(&r);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/healthz", NULL, NULL), 200);

    /* A flood of small ones. */
    size_t off = 0;
    for (int i = 0; i < 500 && off < 16 * 1024 - 32; i++) {
        off += (size_t)snprintf(hdr + off, 16 * 1024 - off, "X-H%d: v\r\n", i);
    }
    st = req(&s, "GET", "/healthz", hdr, NULL, &r);
    CU_ASSERT_TRUE(st >= 400 && st < 500);
    tu_http_free(&r);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/healthz", NULL, NULL), 200);

    /* Under the limits all is well. */
    CU_ASSERT_EQUAL(
        status_of(&s, "POST", "/api/apikeys", s.alice, "{\"name\":\"small\"}"),
        201);
    free(hdr);
    free(big);
    srv_stop(&s);
}

static void test_slow_client(void)
{
    struct srv s;
    srv_init(&s);
    s.cfg.http_request_timeout_ms = 1000;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);

    /* Drips a byte every 100 ms: never idle long enough for an idle
     * timeout, so only the request deadline can stop it. */
    static const char drip[] =
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int fd = raw_connect(s.port);
    CU_ASSERT_FATAL(fd >= 0);
    double t0 = mono_now(), closed_at = 0;
    int served_meanwhile = 0;
    for (size_t i = 0; i < sizeof(drip) - 1; i++) {
        if (send(fd, drip + i, 1, MSG_NOSIGNAL) != 1 || raw_closed(fd, 100)) {
            closed_at = mono_now() - t0;
            break;
        }
        if (i == 3) {
            served_meanwhile = status_of(&s, "GET", "/healthz", NULL, NULL);
        }
    }
    close(fd);
    CU_ASSERT_EQUAL(served_meanwhile, 200);
    CU_ASSERT_TRUE(closed_at > 0.8 && closed_at < 2.5);
    if (!(closed_at > 0.8 && closed_at < 2.5)) {
        fprintf(stderr, "slow client closed after %.2f s\n", closed_at);
    }

    /* A partial request, then silence. */
    fd = raw_connect(s.port);
    raw_send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n");
    t0 = mono_now();
    CU_ASSERT_TRUE(raw_closed(fd, 3000));
    CU_ASSERT_TRUE(mono_now() - t0 < 2.0);
    close(fd);

    /* Keep-alive: the deadline restarts after each response. */
    fd = raw_connect(s.port);
    char buf[8192];
    for (int i = 0; i < 3; i++) {
        raw_send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        CU_ASSERT_EQUAL(raw_response(fd, buf, sizeof(buf), 2000), 200);
        usleep(600 * 1000); /* 3 x 0.6 s > the 1 s deadline in total */
    }
    /* ...and an idle connection is closed after it. */
    CU_ASSERT_TRUE(raw_closed(fd, 2000));
    close(fd);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/healthz", NULL, NULL), 200);
    srv_stop(&s);
}

static void test_connection_limit(void)
{
    struct srv s;
    srv_init(&s);
    s.cfg.http_max_connections = 2;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    char buf[8192];
    int a = raw_connect(s.port), b = raw_connect(s.port);
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    /* Both accepted and served (keep-alive). */
    raw_send(a, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CU_ASSERT_EQUAL(raw_response(a, buf, sizeof(buf), 2000), 200);
    raw_send(b, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    CU_ASSERT_EQUAL(raw_response(b, buf, sizeof(buf), 2000), 200);

    /* The third waits in the accept queue: no answer, no refusal. */
    int c = raw_connect(s.port);
    CU_ASSERT_FATAL(c >= 0);
    raw_send(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: "
                "close\r\n\r\n");
    CU_ASSERT_EQUAL(raw_response(c, buf, sizeof(buf), 700), 0);

    /* One leaves: the third is served. */
    close(a);
    CU_ASSERT_EQUAL(raw_response(c, buf, sizeof(buf), 3000), 200);
    close(c);
    close(b);
    /* Back to normal once they are gone. */
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(status_of(&s, "GET", "/healthz", NULL, NULL), 200);
    }
    srv_stop(&s);
}

/* ---- TLS -------------------------------------------------------------------
 */

static int make_cert(const char *dir, const char *name)
{
    char cmd[2048];
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt "
             "ec_paramgen_curve:prime256v1 -nodes -keyout %s/%s.key -out "
             "%s/%s.crt -days 2 -subj /CN=127.0.0.1 -addext "
             "subjectAltName=IP:127.0.0.1 2>/dev/null",
             dir, name, dir, name);
    return sh(cmd, NULL);
}

/* One request over TLS, verifying the server against ca. @return the
 * response text (malloc'd) or NULL. */
static char *tls_request(int port, const char *ca, const char *request,
                         long *verify)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx, ca, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL *ssl = SSL_new(ctx);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
    int fd = raw_connect(port);
    char *out = NULL;
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) == 1) {
        *verify = SSL_get_verify_result(ssl);
        SSL_write(ssl, request, (int)strlen(request));
        size_t cap = 65536, n = 0;
        out = malloc(cap);
        int r;
        while ((r = SSL_read(ssl, out + n, (int)(cap - n - 1))) > 0) {
            n += (size_t)r;
        }
        out[n] = '\0';
        SSL_shutdown(ssl);
    } else {
        *verify = SSL_get_verify_result(ssl);
        ERR_clear_error();
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return out;
}

static void test_tls(void)
{
    struct srv s;
    srv_init(&s);
    CU_ASSERT_EQUAL_FATAL(make_cert(s.dir, "server"), 0);
    CU_ASSERT_EQUAL_FATAL(make_cert(s.dir, "other"), 0);
    char cert[512], key[512], other_key[512];
    snprintf(cert, sizeof(cert), "%s/server.crt", s.dir);
    snprintf(key, sizeof(key), "%s/server.key", s.dir);
    snprintf(other_key, sizeof(other_key), "%s/other.key", s.dir);
    s.cfg.http_tls_enabled = 1;
    set_str(&s.cfg.http_tls_cert, cert);
    set_str(&s.cfg.http_tls_key, key);
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);

    long verify = -1;
    char *resp = tls_request(s.port, cert,
                             "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Connection: close\r\n\r\n",
                             &verify);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(verify, X509_V_OK);
    CU_ASSERT_EQUAL(strncmp(resp, "HTTP/1.1 200", 12), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(resp, "{\"status\":\"ok\"}"));
    free(resp);

    char request[512];
    snprintf(request, sizeof(request),
             "GET /api/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\n%sConnection: "
             "close\r\n\r\n",
             s.alice);
    resp = tls_request(s.port, cert, request, &verify);
    CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
    CU_ASSERT_EQUAL(strncmp(resp, "HTTP/1.1 200", 12), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(resp, "\"name\":\"alice\""));
    free(resp);

    /* Plain HTTP on the TLS port gets no HTTP answer; TLS still works. */
    struct tu_http_resp r;
    tu_http(s.port, "GET", "/healthz", NULL, NULL, &r);
    CU_ASSERT_NOT_EQUAL(r.status, 200);
    tu_http_free(&r);
    resp = tls_request(s.port, cert,
                       "GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                       "Connection: close\r\n\r\n",
                       &verify);
    CU_ASSERT_PTR_NOT_NULL(resp);
    CU_ASSERT_EQUAL(resp != NULL ? strncmp(resp, "HTTP/1.1 200", 12) : -1, 0);
    free(resp);

    /* Bad TLS settings: refused with the file named. */
    struct velo_http_deps deps = {
        .base = NULL, .auth = s.auth, .audit = s.audit};
    struct event_base *base = event_base_new();
    deps.base = base;
    struct velo_config c2;
    velo_config_init(&c2);
    set_str(&c2.listen, "127.0.0.1:0");
    c2.http_tls_enabled = 1;
    set_str(&c2.http_tls_cert, cert);
    set_str(&c2.http_tls_key, other_key);
    char err[1024] = "";
    CU_ASSERT_PTR_NULL(velo_http_create(&deps, &c2, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not match"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, other_key));

    char missing[600];
    snprintf(missing, sizeof(missing), "%s/nope.crt", s.dir);
    set_str(&c2.http_tls_cert, missing);
    CU_ASSERT_PTR_NULL(velo_http_create(&deps, &c2, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, missing));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot read"));

    set_str(&c2.http_tls_cert, key); /* a key is not a certificate */
    set_str(&c2.http_tls_key, key);
    CU_ASSERT_PTR_NULL(velo_http_create(&deps, &c2, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "http.tls.cert"));

    set_str(&c2.http_tls_cert, NULL);
    CU_ASSERT_PTR_NULL(velo_http_create(&deps, &c2, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "http.tls.cert is not set"));

    /* And the listen address: taken, or not an address. */
    c2.http_tls_enabled = 0;
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", s.port);
    set_str(&c2.listen, listen);
    CU_ASSERT_PTR_NULL(velo_http_create(&deps, &c2, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Address already in use"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, listen));
    set_str(&c2.listen, "no-port-here");
    CU_ASSERT_PTR_NULL(velo_http_create(&deps, &c2, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "server.listen"));
    velo_config_free(&c2);
    event_base_free(base);
    srv_stop(&s);
}

/* ---- shutdown
 * ------------------------------------------------------------------ */

static void begin_shutdown(struct srv *s, void *arg)
{
    (void)arg;
    velo_http_begin_shutdown(s->http);
}

static void read_inflight(struct srv *s, void *arg)
{
    *(size_t *)arg = velo_http_inflight(s->http);
}

static void test_readyz_shutdown(void)
{
    struct srv s;
    srv_init(&s);
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    char buf[8192];
    int fd = raw_connect(s.port);
    raw_send(fd, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    CU_ASSERT_EQUAL(raw_response(fd, buf, sizeof(buf), 2000), 200);

    run_on_main(&s, begin_shutdown, NULL);

    raw_send(fd, "GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    CU_ASSERT_EQUAL(raw_response(fd, buf, sizeof(buf), 2000), 503);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "{\"status\":\"shutting_down\"}"));
    CU_ASSERT_PTR_NOT_NULL(strcasestr(buf, "Connection: close"));
    CU_ASSERT_TRUE(raw_closed(fd, 2000));
    close(fd);

    /* No new connection is taken in. */
    fd = raw_connect(s.port);
    if (fd >= 0) {
        raw_send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        CU_ASSERT_EQUAL(raw_response(fd, buf, sizeof(buf), 500), 0);
        close(fd);
    }
    size_t inflight = 99;
    run_on_main(&s, read_inflight, &inflight);
    CU_ASSERT_EQUAL(inflight, 0);
    srv_stop(&s);
}

/* ---- audit ------------------------------------------------------------------
 */

static json_t *find_event(json_t *events, const char *action,
                          const char *request_id)
{
    size_t i;
    json_t *e;
    json_array_foreach(events, i, e)
    {
        if (strcmp(jstr(e, "action", NULL), action) == 0 &&
            strcmp(jstr(e, "request_id", NULL), request_id) == 0) {
            return e;
        }
    }
    return NULL;
}

static void test_audit_records(void)
{
    struct srv s;
    srv_init(&s);
    srv_plugin(&s, "audit_recorder");
    char log[1024];
    snprintf(log, sizeof(log), "%s/audit.jsonl", s.pdir);
    srv_kv(&s, "audit_recorder", "path", log);
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(
        velo_plugins_find(s.plugins, "audit_recorder"));

    char hdr[512], wrong[256];
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/version",
                              "X-Request-Id: rid-noauth\r\n", NULL),
                    401);
    basic_header(wrong, sizeof(wrong), "alice", "guess-1234");
    snprintf(hdr, sizeof(hdr), "%sX-Request-Id: rid-wrong\r\n", wrong);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/version", hdr, NULL), 401);

    struct tu_http_resp r;
    snprintf(hdr, sizeof(hdr), "%sX-Request-Id: rid-create\r\n", s.alice);
    CU_ASSERT_EQUAL(
        req(&s, "POST", "/api/apikeys", hdr, "{\"name\":\"audited\"}", &r),
        201);
    json_t *j = jbody(&r);
    char id[32], path[64];
    snprintf(id, sizeof(id), "%s", jstr(j, "id", NULL));
    json_decref(j);
    tu_http_free(&r);
    snprintf(path, sizeof(path), "/api/apikeys/%s", id);
    snprintf(hdr, sizeof(hdr), "%sX-Request-Id: rid-delete\r\n", s.alice);
    CU_ASSERT_EQUAL(status_of(&s, "DELETE", path, hdr, NULL), 204);
    snprintf(hdr, sizeof(hdr), "%sX-Request-Id: rid-forbidden\r\n", s.bob);
    CU_ASSERT_EQUAL(
        status_of(&s, "POST", "/api/apikeys", hdr, "{\"name\":\"nope\"}"), 403);
    /* A request with no generated id still has one in the record. */
    CU_ASSERT_EQUAL(req(&s, "GET", "/api/whoami", s.bob, NULL, &r), 200);
    char *gen_id = tu_http_header(&r, "X-Request-Id");
    tu_http_free(&r);

    /* The recorder writes as events happen; read them all. */
    char *text = tu_read_file(log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    json_t *events = json_array();
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *e = json_loads(line, 0, &je);
        CU_ASSERT_PTR_NOT_NULL(e);
        if (e != NULL) {
            json_array_append_new(events, e);
        }
    }
    free(text);
    int64_t now = (int64_t)time(NULL) * 1000;

    json_t *e = find_event(events, "auth.authenticate", "rid-noauth");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(jstr(e, "outcome", NULL), "deny");
    CU_ASSERT_STRING_EQUAL(jstr(e, "who", NULL), "-");
    CU_ASSERT_STRING_EQUAL(jstr(e, "resource", NULL), "/api/version");
    CU_ASSERT_STRING_EQUAL(jstr(e, "client_addr", NULL), "127.0.0.1");
    int64_t t = json_integer_value(json_object_get(e, "time_ms"));
    CU_ASSERT_TRUE(t > now - 60000 && t < now + 60000);

    e = find_event(events, "auth.authenticate", "rid-wrong");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(jstr(e, "outcome", NULL), "deny");
    CU_ASSERT_STRING_EQUAL(jstr(e, "who", NULL), "alice"); /* claimed */

    e = find_event(events, "auth.authenticate", "rid-create");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(jstr(e, "outcome", NULL), "allow");
    CU_ASSERT_STRING_EQUAL(jstr(e, "who", NULL), "alice");
    e = find_event(events, "auth.authorize", "rid-create");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(jstr(e, "outcome", NULL), "allow");
    CU_ASSERT_PTR_NOT_NULL(
        strstr(jstr(e, "detail", NULL), "resource=apikeys action=create"));
    e = find_event(events, "apikey.create", "rid-create");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(jstr(e, "outcome", NULL), "success");
    CU_ASSERT_STRING_EQUAL(jstr(e, "who", NULL), "alice");
    CU_ASSERT_STRING_EQUAL(jstr(e, "resource", NULL), "/api/apikeys");
    CU_ASSERT_STRING_EQUAL(jstr(e, "client_addr", NULL), "127.0.0.1");
    CU_ASSERT_PTR_NOT_NULL(strstr(jstr(e, "detail", NULL), id));
    CU_ASSERT_PTR_NOT_NULL(strstr(jstr(e, "detail", NULL), "status=201"));

    e = find_event(events, "apikey.revoke", "rid-delete");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(jstr(e, "outcome", NULL), "success");
    CU_ASSERT_STRING_EQUAL(jstr(e, "resource", NULL), path);

    e = find_event(events, "auth.authorize", "rid-forbidden");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(jstr(e, "outcome", NULL), "deny");
    CU_ASSERT_STRING_EQUAL(jstr(e, "who", NULL), "bob");
    e = find_event(events, "apikey.create", "rid-forbidden");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_STRING_EQUAL(jstr(e, "outcome", NULL), "deny");

    /* Reads are not mutations: only their auth decisions are recorded. */
    CU_ASSERT_PTR_NOT_NULL(find_event(events, "auth.authenticate", gen_id));
    CU_ASSERT_PTR_NULL(find_event(events, "http.GET", gen_id));
    free(gen_id);
    json_decref(events);
    srv_stop(&s);
}

/* ---- auth off, and clients that leave ---------------------------------------
 */

static void test_auth_disabled(void)
{
    struct srv s;
    srv_init(&s);
    s.cfg.auth_enabled = 0;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    struct tu_http_resp r;
    CU_ASSERT_EQUAL(req(&s, "GET", "/api/whoami", NULL, NULL, &r), 200);
    json_t *j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "name", NULL), "anonymous");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_array_get(json_object_get(j, "roles"), 0)),
        "admin");
    json_decref(j);
    tu_http_free(&r);
    CU_ASSERT_EQUAL(
        status_of(&s, "POST", "/api/apikeys", NULL, "{\"name\":\"open\"}"),
        201);
    srv_stop(&s);
}

static void test_client_leaves_during_auth(void)
{
    struct srv s;
    srv_init(&s);
    s.cfg.workers = 1;
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    /* A user whose check takes a while (a few hundred ms). */
    char err[256];
    struct velo_authstore *cli =
        velo_authstore_open(s.dir, FAST_ITER, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(cli);
    add_user(cli, "slow", "slow-password", "admin", 400000);
    velo_authstore_close(cli);
    char slow[256];
    basic_header(slow, sizeof(slow), "slow", "slow-password");
    CU_ASSERT_EQUAL(eventually(&s, "/api/version", slow, 200), 200);

    char request[512];
    snprintf(request, sizeof(request),
             "GET /api/version HTTP/1.1\r\nHost: x\r\n%s\r\n", slow);
    for (int i = 0; i < 3; i++) {
        int fd = raw_connect(s.port);
        raw_send(fd, request);
        usleep(20000);
        close(fd); /* gone while the worker hashes */
    }
    /* The server is fine, and answers the next one. */
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/healthz", NULL, NULL), 200);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/version", slow, NULL), 200);

    /* Stopped with checks in flight: destroyed cleanly (ASan/LSan). */
    int fds[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = raw_connect(s.port);
        raw_send(fds[i], request);
    }
    usleep(50000);
    srv_stop(&s);
    close(fds[0]);
    close(fds[1]);
}

/* ---- App plugin routes
 * --------------------------------------------------------- */

static void test_app_routes(void)
{
    struct srv s;
    srv_init(&s);
    srv_plugin(&s, "app_echo");
    srv_kv(&s, "app_echo", "greeting", "hi there");
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    const struct velo_plugin_entry *pe =
        velo_plugins_find(s.plugins, "app_echo");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pe);
    CU_ASSERT_EQUAL(pe->state, VELO_PLUGIN_LOADED);
    struct tu_http_resp r;

    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/apps/echo", NULL, NULL), 401);
    CU_ASSERT_EQUAL(req(&s, "GET", "/api/apps/echo?x=1", s.bob, NULL, &r), 200);
    json_t *j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "greeting", NULL), "hi there");
    CU_ASSERT_STRING_EQUAL(jstr(j, "principal", NULL), "bob");
    CU_ASSERT_STRING_EQUAL(jstr(j, "query", NULL), "x=1");
    json_decref(j);
    char *rid = tu_http_header(&r, "X-Request-Id");
    CU_ASSERT_PTR_NOT_NULL(rid);
    free(rid);
    tu_http_free(&r);

    /* The route's own RBAC action: write is not for viewers. */
    CU_ASSERT_EQUAL(
        status_of(&s, "POST", "/api/apps/echo/note", s.bob, "payload"), 403);
    CU_ASSERT_EQUAL(
        req(&s, "POST", "/api/apps/echo/note", s.alice, "payload 123", &r),
        201);
    CU_ASSERT_STRING_EQUAL(r.body, "payload 123");
    char *ct = tu_http_header(&r, "Content-Type");
    CU_ASSERT_STRING_EQUAL(NN(ct), "text/plain");
    free(ct);
    tu_http_free(&r);
    CU_ASSERT_EQUAL(req(&s, "GET", "/api/apps/echo/other", s.alice, NULL, &r),
                    405);
    char *allow = tu_http_header(&r, "Allow");
    CU_ASSERT_STRING_EQUAL(NN(allow), "POST");
    free(allow);
    tu_http_free(&r);

    /* A failing handler is a 500 in our error format. */
    CU_ASSERT_EQUAL(req(&s, "GET", "/api/apps/echo/fail", s.alice, NULL, &r),
                    500);
    j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "error", "code"), "internal");
    json_decref(j);
    tu_http_free(&r);

    /* Built-ins cannot be taken over; incomplete routes are not served. */
    CU_ASSERT_EQUAL(req(&s, "GET", "/api/version", s.alice, NULL, &r), 200);
    j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "version", NULL), "9.8.7");
    json_decref(j);
    tu_http_free(&r);
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/apps/incomplete", s.alice, NULL),
                    404);

    /* Metrics label app routes by their template. */
    CU_ASSERT_EQUAL(req(&s, "GET", "/metrics", NULL, NULL, &r), 200);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(r.body, "velo_http_requests_total{route=\"/api/apps/echo/*\","
                       "method=\"POST\",status=\"201\"} 1"));
    tu_http_free(&r);
    srv_stop(&s);
}

/* An AuthProvider that never answers: the request gets 503 after
 * http.request_timeout, the server goes on, and stopping it answers the
 * pending request (LeakSanitizer checks nothing is left). */
static void test_auth_timeout(void)
{
    struct srv s;
    srv_init(&s);
    s.cfg.http_request_timeout_ms = 600;
    srv_plugin(&s, "auth_token");
    srv_kv(&s, "auth_token", "token", "never-answers");
    srv_kv(&s, "auth_token", "hang", "true");
    CU_ASSERT_EQUAL_FATAL(srv_start(&s), 0);
    struct tu_http_resp r;
    double t0 = mono_now();
    CU_ASSERT_EQUAL(req(&s, "GET", "/api/whoami",
                        "Authorization: Bearer never-answers\r\n", NULL, &r),
                    503);
    double took = mono_now() - t0;
    CU_ASSERT_TRUE(took > 0.5 && took < 3.0);
    json_t *j = jbody(&r);
    CU_ASSERT_STRING_EQUAL(jstr(j, "error", "code"), "auth_timeout");
    json_decref(j);
    tu_http_free(&r);
    /* Others are served meanwhile and after. */
    CU_ASSERT_EQUAL(status_of(&s, "GET", "/api/whoami", s.alice, NULL), 200);
    size_t inflight = 99;
    run_on_main(&s, read_inflight, &inflight);
    CU_ASSERT_EQUAL(inflight, 0);
    /* One more left hanging when the server stops. */
    int fd = raw_connect(s.port);
    raw_send(fd, "GET /api/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: "
                 "Bearer never-answers\r\n\r\n");
    usleep(100000);
    srv_stop(&s);
    close(fd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    velo_log_set_level(VELO_LOG_ERROR);
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("http", NULL, NULL);
    CU_add_test(s, "health, readiness, request ids, JSON errors",
                test_health_and_errors);
    CU_add_test(s, "authentication required on /api", test_auth_required);
    CU_add_test(s, "API keys over the API", test_apikeys_api);
    CU_add_test(s, "metrics", test_metrics);
    CU_add_test(s, "CLI changes reach the running server",
                test_cli_changes_picked_up);
    CU_add_test(s, "body and header limits", test_size_limits);
    CU_add_test(s, "slow clients", test_slow_client);
    CU_add_test(s, "connection limit", test_connection_limit);
    CU_add_test(s, "TLS", test_tls);
    CU_add_test(s, "readyz during shutdown", test_readyz_shutdown);
    CU_add_test(s, "audit records", test_audit_records);
    CU_add_test(s, "auth disabled", test_auth_disabled);
    CU_add_test(s, "App plugin routes", test_app_routes);
    CU_add_test(s, "authentication that never answers", test_auth_timeout);
    CU_add_test(s, "client leaves during authentication",
                test_client_leaves_during_auth);
    return tu_run_all();
}
