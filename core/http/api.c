/*
 * The route table and the built-in handlers: health, readiness, metrics,
 * version, plugins, whoami, API keys; then the routes App plugins declare.
 * Each route names its RBAC resource and action; the pipeline in http.c
 * authenticates and authorizes before a handler runs.
 */
#include "http/http-internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/chain.h"
#include "obs/metrics.h"
#include "plugin/host.h"
#include "plugin/loader.h"
#include "store/authstore.h"
#include "util/log.h"

#define API_SRC "http"
#define APIKEYS_PATH "/api/apikeys"

static void handle_healthz(struct velo_http_exchange *ex)
{
    velo_http_respond_json(ex, 200, json_pack("{s:s}", "status", "ok"));
}

static void handle_readyz(struct velo_http_exchange *ex)
{
    if (ex->h->shutting_down) {
        velo_http_respond_json(ex, 503,
                               json_pack("{s:s}", "status", "shutting_down"));
        return;
    }
    velo_http_respond_json(ex, 200, json_pack("{s:s}", "status", "ready"));
}

static void handle_metrics(struct velo_http_exchange *ex)
{
    static const char ctype[] = "text/plain; version=0.0.4; charset=utf-8";
    if (ex->h->metrics == NULL) {
        velo_http_respond(ex, 200, ctype, "", 0);
        return;
    }
    size_t len = 0;
    char *text = velo_metrics_render(ex->h->metrics, &len);
    if (text == NULL) {
        velo_http_respond_error(ex, 500, "internal",
                                "cannot render the metrics: out of memory");
        return;
    }
    velo_http_respond(ex, 200, ctype, text, len);
    free(text);
}

static void handle_version(struct velo_http_exchange *ex)
{
    char abi[16];
    snprintf(abi, sizeof(abi), "%d.%d", VELO_ABI_MAJOR, VELO_ABI_MINOR);
    velo_http_respond_json(ex, 200,
                           json_pack("{s:s, s:s, s:s}", "version",
                                     ex->h->version, "commit", ex->h->commit,
                                     "abi", abi));
}

static void handle_plugins(struct velo_http_exchange *ex)
{
    char *text = ex->h->plugins != NULL ? velo_plugins_to_json(ex->h->plugins)
                                        : strdup("[]");
    if (text == NULL) {
        velo_http_respond_error(ex, 500, "internal",
                                "cannot list the plugins: out of memory");
        return;
    }
    velo_http_respond(ex, 200, NULL, text, strlen(text));
    free(text);
}

static json_t *roles_json(const char *roles)
{
    json_t *arr = json_array();
    const char *p = roles;
    while (arr != NULL && p != NULL && *p != '\0') {
        const char *e = strchr(p, ',');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        if (n > 0) {
            json_array_append_new(arr, json_stringn(p, n));
        }
        p = e != NULL ? e + 1 : NULL;
    }
    return arr;
}

static void handle_whoami(struct velo_http_exchange *ex)
{
    velo_http_respond_json(ex, 200,
                           json_pack("{s:s, s:o, s:s}", "name", ex->who.name,
                                     "roles", roles_json(ex->who.roles),
                                     "provider", ex->who.provider));
}

static json_t *apikey_json(const struct velo_auth_apikey *k)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:o, s:s, s:b}", "id", k->id, "name",
                  k->name, "owner", k->owner, "roles", roles_json(k->roles),
                  "created", k->created, "revoked", k->revoked);
    if (o != NULL && k->revoked) {
        json_object_set_new(o, "revoked_at", json_string(k->revoked_at));
    }
    return o;
}

static void handle_apikeys_list(struct velo_http_exchange *ex)
{
    struct velo_authstore *s = velo_authchain_store(ex->h->auth);
    velo_authstore_refresh(s, 0);
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < velo_authstore_apikey_count(s); i++) {
        if (json_array_append_new(
                arr, apikey_json(velo_authstore_apikey_at(s, i))) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    velo_http_respond_json(ex, 200, arr);
}

static void handle_apikeys_create(struct velo_http_exchange *ex)
{
    size_t len;
    const char *body = velo_http_body(ex, &len);
    static const char example[] =
        "(example: {\"name\":\"ci\",\"roles\":[\"viewer\"]})";
    if (body == NULL || len == 0) {
        velo_http_respond_error(ex, 400, "bad_request",
                                "the request body is empty; send a JSON "
                                "object %s",
                                example);
        return;
    }
    json_error_t je;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (doc == NULL) {
        velo_http_respond_error(ex, 400, "bad_request",
                                "invalid JSON body at line %d, column %d: %s",
                                je.line, je.column, je.text);
        return;
    }
    char err[256] = "";
    const char *key;
    json_t *val;
    if (!json_is_object(doc)) {
        snprintf(err, sizeof(err), "the body must be a JSON object %s",
                 example);
    }
    json_object_foreach(doc, key, val)
    {
        if (err[0] == '\0' && strcmp(key, "name") != 0 &&
            strcmp(key, "roles") != 0) {
            snprintf(err, sizeof(err),
                     "unknown field \"%s\" (fields: name, roles)", key);
        }
    }
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (err[0] == '\0' && name == NULL) {
        snprintf(err, sizeof(err),
                 "\"name\" is required and must be a "
                 "string %s",
                 example);
    }
    char roles[VELO_PRINCIPAL_ROLES_MAX] = "viewer";
    json_t *jr = json_object_get(doc, "roles");
    if (err[0] == '\0' && jr != NULL) {
        const char *list[VELO_AUTH_MAX_ROLES];
        size_t n = json_is_array(jr) ? json_array_size(jr) : 0;
        if (!json_is_array(jr) || n > VELO_AUTH_MAX_ROLES) {
            snprintf(err, sizeof(err),
                     "\"roles\" must be an array of up to "
                     "%d role names (valid roles: %s)",
                     VELO_AUTH_MAX_ROLES, velo_auth_role_list());
        }
        for (size_t i = 0; err[0] == '\0' && i < n; i++) {
            list[i] = json_string_value(json_array_get(jr, i));
            if (list[i] == NULL) {
                snprintf(err, sizeof(err), "\"roles\"[%zu] must be a string",
                         i);
            }
        }
        if (err[0] == '\0') {
            velo_auth_join_roles(list, n, roles, sizeof(roles), err,
                                 sizeof(err));
        }
    }
    if (err[0] != '\0') {
        json_decref(doc);
        velo_http_respond_error(ex, 400, "bad_request", "%s", err);
        return;
    }
    struct velo_authstore *s = velo_authchain_store(ex->h->auth);
    char keytext[VELO_APIKEY_TEXT_LEN + 1];
    struct velo_auth_apikey k;
    if (velo_authstore_apikey_create(s, name, ex->who.name, roles, keytext,
                                     sizeof(keytext), &k, err,
                                     sizeof(err)) != VELO_OK) {
        int e = errno;
        json_decref(doc);
        if (e == EINVAL) {
            velo_http_respond_error(ex, 400, "bad_request", "%s", err);
        } else {
            velo_log_write(VELO_LOG_ERROR, API_SRC, "API key create: %s", err);
            velo_http_respond_error(ex, 500, "internal",
                                    "cannot store the API key: %s", err);
        }
        return;
    }
    json_decref(doc);
    snprintf(ex->audit_detail, sizeof(ex->audit_detail),
             "apikey=%s roles=%.100s", k.id, k.roles);
    char location[64];
    snprintf(location, sizeof(location), APIKEYS_PATH "/%s", k.id);
    velo_http_add_header(ex, "Location", location);
    json_t *o = apikey_json(&k);
    if (o != NULL) {
        json_object_set_new(o, "key", json_string(keytext));
    }
    memset(keytext, 0, sizeof(keytext));
    velo_http_respond_json(ex, 201, o);
}

static void handle_apikey_revoke(struct velo_http_exchange *ex)
{
    const char *id = ex->path + strlen(APIKEYS_PATH "/");
    struct velo_authstore *s = velo_authchain_store(ex->h->auth);
    char err[256];
    snprintf(ex->audit_detail, sizeof(ex->audit_detail), "apikey=%.*s",
             VELO_APIKEY_ID_LEN + 4, id);
    if (strlen(id) != VELO_APIKEY_ID_LEN ||
        strspn(id, "0123456789abcdef") != VELO_APIKEY_ID_LEN) {
        velo_http_respond_error(ex, 404, "not_found",
                                "no API key '%.*s' (an id is %d lowercase "
                                "hex characters)",
                                32, id, VELO_APIKEY_ID_LEN);
        return;
    }
    if (velo_authstore_apikey_revoke(s, id, err, sizeof(err)) != VELO_OK) {
        int e = errno;
        if (e == ENOENT || e == EALREADY) {
            velo_http_respond_error(ex, 404, "not_found", "%s", err);
        } else {
            velo_log_write(VELO_LOG_ERROR, API_SRC, "API key revoke: %s", err);
            velo_http_respond_error(ex, 500, "internal",
                                    "cannot revoke the API key: %s", err);
        }
        return;
    }
    velo_http_respond(ex, 204, NULL, NULL, 0);
}

/* ---- App plugin routes ------------------------------------------------------
 */

static void handle_app(struct velo_http_exchange *ex)
{
    const struct velo_http_route *r = ex->route;
    size_t len;
    const char *body = velo_http_body(ex, &len);
    struct velo_http_request req = {
        .method = ex->method,
        .path = ex->path,
        .query = velo_http_query(ex),
        .body = body,
        .body_len = len,
        .principal = ex->who.name,
    };
    struct velo_http_response resp = {0};
    int rc = r->app_route->handle(&r->app->ins, &req, &resp);
    if (rc != VELO_OK || resp.status < 100 || resp.status > 599) {
        velo_log_write(VELO_LOG_ERROR, API_SRC,
                       "app %s: %s %s failed (status %d)", r->app->name,
                       ex->method, r->label, resp.status);
        velo_http_respond_error(ex, 500, "internal", "app %s failed",
                                r->app->name);
        return;
    }
    velo_http_respond(ex, resp.status, resp.content_type,
                      resp.body != NULL ? resp.body : "",
                      resp.body != NULL ? resp.body_len : 0);
}

static const struct velo_http_route builtin_routes[] = {
    {"GET", "/healthz", 0, "/healthz", NULL, NULL, NULL, VELO_HTTP_AUTH_NONE,
     handle_healthz, NULL, NULL, NULL},
    {"GET", "/readyz", 0, "/readyz", NULL, NULL, NULL, VELO_HTTP_AUTH_NONE,
     handle_readyz, NULL, NULL, NULL},
    {"GET", "/metrics", 0, "/metrics", "metrics", "read", NULL,
     VELO_HTTP_AUTH_METRICS, handle_metrics, NULL, NULL, NULL},
    {"GET", "/api/version", 0, "/api/version", "version", "read", NULL,
     VELO_HTTP_AUTH_ALWAYS, handle_version, NULL, NULL, NULL},
    {"GET", "/api/plugins", 0, "/api/plugins", "plugins", "read", NULL,
     VELO_HTTP_AUTH_ALWAYS, handle_plugins, NULL, NULL, NULL},
    {"GET", "/api/whoami", 0, "/api/whoami", "whoami", "read", NULL,
     VELO_HTTP_AUTH_ALWAYS, handle_whoami, NULL, NULL, NULL},
    {"GET", APIKEYS_PATH, 0, APIKEYS_PATH, "apikeys", "read", NULL,
     VELO_HTTP_AUTH_ALWAYS, handle_apikeys_list, NULL, NULL, NULL},
    {"POST", APIKEYS_PATH, 0, APIKEYS_PATH, "apikeys", "create",
     "apikey.create", VELO_HTTP_AUTH_ALWAYS, handle_apikeys_create, NULL, NULL,
     NULL},
    {"DELETE", APIKEYS_PATH "/", 1, APIKEYS_PATH "/{id}", "apikeys", "delete",
     "apikey.revoke", VELO_HTTP_AUTH_ALWAYS, handle_apikey_revoke, NULL, NULL,
     NULL},
};
#define N_BUILTIN (sizeof(builtin_routes) / sizeof(builtin_routes[0]))

static int valid_method(const char *m)
{
    static const char *const ok[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; m != NULL && i < sizeof(ok) / sizeof(ok[0]); i++) {
        if (strcmp(m, ok[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Does an app route's path overlap a built-in one? */
static int clashes(const struct velo_http *h, const char *method,
                   const char *path)
{
    for (size_t i = 0; i < h->n_routes; i++) {
        const struct velo_http_route *r = &h->routes[i];
        if (strcmp(r->method, method) == 0 && strcmp(r->path, path) == 0) {
            return 1;
        }
    }
    return strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
           strcmp(path, "/metrics") == 0;
}

static void add_app_routes(struct velo_http *h, struct velo_http_app *app,
                           size_t cap)
{
    const struct velo_app_route *rt = app->vt->routes;
    for (; rt != NULL && rt->method != NULL && h->n_routes < cap; rt++) {
        const char *p = rt->path;
        size_t pl = p != NULL ? strlen(p) : 0;
        if (!valid_method(rt->method) || p == NULL || p[0] != '/' ||
            rt->handle == NULL || rt->resource == NULL || rt->action == NULL) {
            velo_log_write(VELO_LOG_ERROR, API_SRC,
                           "app %s: route %s %s is incomplete (method, path "
                           "starting with '/', resource, action and handle "
                           "are required); skipped",
                           app->name, rt->method != NULL ? rt->method : "?",
                           p != NULL ? p : "?");
            continue;
        }
        int prefix = pl >= 2 && strcmp(p + pl - 2, "/*") == 0;
        char *path = prefix ? strndup(p, pl - 1) : strdup(p);
        if (path == NULL) {
            continue;
        }
        if (clashes(h, rt->method, path)) {
            velo_log_write(VELO_LOG_ERROR, API_SRC,
                           "app %s: route %s %s is already taken; skipped",
                           app->name, rt->method, p);
            free(path);
            continue;
        }
        struct velo_http_route *r = &h->routes[h->n_routes++];
        memset(r, 0, sizeof(*r));
        r->method = rt->method;
        r->path = path;
        r->owned_path = path;
        r->param = prefix ? 2 : 0;
        r->label = rt->path;
        r->resource = rt->resource;
        r->action = rt->action;
        r->auth = VELO_HTTP_AUTH_ALWAYS;
        r->handle = handle_app;
        r->app_route = rt;
        r->app = app;
        velo_log_write(VELO_LOG_INFO, API_SRC, "app %s: serving %s %s",
                       app->name, rt->method, rt->path);
    }
}

int velo_http_routes_build(struct velo_http *h, char *err, size_t errlen)
{
    size_t n_plugins = h->plugins != NULL ? velo_plugins_count(h->plugins) : 0;
    size_t cap = N_BUILTIN;
    h->apps = calloc(n_plugins > 0 ? n_plugins : 1, sizeof(*h->apps));
    if (h->apps == NULL) {
        snprintf(err, errlen, "out of memory");
        return VELO_ERR;
    }
    /* Instances first: their route tables size the array. */
    for (size_t i = 0; i < n_plugins; i++) {
        const struct velo_plugin_entry *e = velo_plugins_at(h->plugins, i);
        if (e == NULL || e->state != VELO_PLUGIN_LOADED ||
            e->kind != VELO_PLUGIN_APP || e->desc == NULL ||
            e->desc->vtable == NULL) {
            continue;
        }
        const struct velo_app_vtable *vt = e->desc->vtable;
        if (vt->size <
                offsetof(struct velo_app_vtable, routes) + sizeof(vt->routes) ||
            vt->routes == NULL) {
            continue;
        }
        struct velo_http_app *a = &h->apps[h->n_apps];
        a->entry = e;
        a->vt = vt;
        snprintf(a->name, sizeof(a->name), "%s", e->name);
        a->ins.host = velo_host_api();
        a->ins.name = a->name;
        if (vt->create != NULL && vt->create(&a->ins, e->config) != VELO_OK) {
            velo_log_write(VELO_LOG_ERROR, API_SRC,
                           "app %s: create failed; its routes are not "
                           "served",
                           e->name);
            memset(a, 0, sizeof(*a));
            continue;
        }
        a->created = 1;
        h->n_apps++;
        for (const struct velo_app_route *rt = vt->routes; rt->method != NULL;
             rt++) {
            cap++;
        }
    }
    h->routes = calloc(cap, sizeof(*h->routes));
    if (h->routes == NULL) {
        snprintf(err, errlen, "out of memory");
        return VELO_ERR;
    }
    memcpy(h->routes, builtin_routes, sizeof(builtin_routes));
    h->n_routes = N_BUILTIN;
    for (size_t i = 0; i < h->n_apps; i++) {
        add_app_routes(h, &h->apps[i], cap);
    }
    return VELO_OK;
}

void velo_http_routes_free(struct velo_http *h)
{
    for (size_t i = 0; h->routes != NULL && i < h->n_routes; i++) {
        free(h->routes[i].owned_path);
    }
    free(h->routes);
    h->routes = NULL;
    h->n_routes = 0;
    for (size_t i = h->n_apps; h->apps != NULL && i-- > 0;) {
        struct velo_http_app *a = &h->apps[i];
        if (a->created && a->vt->destroy != NULL) {
            a->vt->destroy(&a->ins);
        }
    }
    free(h->apps);
    h->apps = NULL;
    h->n_apps = 0;
}
