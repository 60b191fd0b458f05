/*
 * Inside the HTTP server: shared by http.c (connections, the request
 * pipeline, responses) and api.c (the route handlers).
 */
#ifndef VELO_CORE_HTTP_INTERNAL_H
#define VELO_CORE_HTTP_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <velo/velo.h>

#include "http/http.h"

struct evhttp;
struct evhttp_request;
struct evhttp_connection;
struct evhttp_bound_socket;
struct bufferevent;
struct event;
struct ssl_ctx_st;

#define VELO_HTTP_REQUEST_ID_MAX 65
#define VELO_HTTP_CLIENT_MAX 64

struct velo_http_exchange;
struct velo_http_conn;
typedef void (*velo_http_handler_fn)(struct velo_http_exchange *ex);

enum velo_http_auth_need {
    VELO_HTTP_AUTH_NONE = 0,   /* /healthz, /readyz */
    VELO_HTTP_AUTH_ALWAYS = 1, /* everything under /api/, app routes */
    VELO_HTTP_AUTH_METRICS = 2 /* /metrics: per auth.metrics_require_auth */
};

struct velo_http_app;

struct velo_http_route {
    const char *method;   /* "GET", ... (HEAD is served by GET routes) */
    const char *path;     /* exact path, or the prefix of a parameter */
    int param;            /* 1: path + one segment ("/api/apikeys/{id}");
                             2: path + anything (app "prefix/" + star) */
    const char *label;    /* metrics label: the template, not the path */
    const char *resource; /* RBAC */
    const char *action;
    const char *audit_action; /* for mutating calls; NULL: "http.<METHOD>" */
    int auth;                 /* enum velo_http_auth_need */
    velo_http_handler_fn handle;
    /* app routes */
    const struct velo_app_route *app_route;
    struct velo_http_app *app;
    char *owned_path; /* path storage for app prefix routes */
};

struct velo_http_header {
    char *name;
    char *value;
};

/* One request from arrival to answer (and, when the client leaves while
 * authentication is pending, until the chain answers). */
struct velo_http_exchange {
    struct velo_http *h;        /* NULL once the server is destroyed */
    struct evhttp_request *req; /* NULL once answered or freed */
    struct evhttp_connection *evcon;
    int req_detached; /* libevent let go of req: ours to free */
    int settled;      /* counted out of inflight */
    int waiting_auth;
    struct velo_http_conn *conn; /* while waiting: to hear of a close */
    struct event *auth_timer;    /* answer 503 if the chain is too slow */

    char method[12];
    char *path;
    const char *route_label;
    const struct velo_http_route *route;
    char request_id[VELO_HTTP_REQUEST_ID_MAX];
    char client[VELO_HTTP_CLIENT_MAX];
    struct timespec start;
    int is_api; /* adds Cache-Control: no-store */
    int mutating;

    struct velo_http_header *hdrs; /* snapshot for auth providers */
    size_t n_hdrs;
    struct velo_auth_request areq;

    struct velo_principal who;
    int authenticated;
    char audit_detail[160];

    struct velo_http_exchange *prev, *next; /* h->waiting */
};

struct velo_http_conn {
    struct velo_http *h;
    struct bufferevent *bev;         /* made by our bevcb */
    struct evhttp_connection *evcon; /* known once attached */
    struct event *attach;            /* runs once evhttp owns bev */
    struct event *deadline;          /* a request must arrive in full by then */
    struct velo_http_exchange *pending; /* waiting for auth, or NULL */
    struct velo_http_conn *prev, *next;
};

struct velo_http_app {
    const struct velo_plugin_entry *entry;
    const struct velo_app_vtable *vt;
    struct velo_instance ins;
    char name[64];
    int created;
};

struct velo_http {
    struct event_base *base;
    struct velo_reactor *reactor;
    struct velo_metrics *metrics;
    struct velo_authchain *auth;
    struct velo_auditchain *audit;
    const struct velo_plugins *plugins;
    const struct velo_license *license;
    char *version;
    char *commit;

    struct evhttp *evh;
    struct evhttp_bound_socket *bound;
    int port;
    struct ssl_ctx_st *ssl;

    /* Applied again by velo_http_reconfigure. */
    int auth_enabled;
    int metrics_auth;
    char *realm;
    int64_t max_header_size;
    int64_t max_body_size;
    int64_t timeout_ms;
    int64_t max_connections;

    /* Need a restart to change. */
    char *listen;
    int tls_enabled;
    char *tls_cert;
    char *tls_key;

    struct velo_http_route *routes;
    size_t n_routes;
    struct velo_http_app *apps;
    size_t n_apps;

    struct velo_http_conn *conns;
    size_t n_conns;
    int accept_paused;
    int shutting_down;
    struct velo_http_exchange *waiting;
    size_t inflight;

    uint32_t id_prefix;
    uint64_t id_seq;

    struct velo_metric_family *f_requests;
    struct velo_metric_family *f_duration;
    struct velo_metric *m_connections;
};

/* ---- http.c: responses --------------------------------------------------- */

/** Send `body` (may be NULL) with `content_type` (NULL: JSON). */
void velo_http_respond(struct velo_http_exchange *ex, int status,
                       const char *content_type, const char *body, size_t len);
/** Send a JSON value (stolen: decref'd here). */
void velo_http_respond_json(struct velo_http_exchange *ex, int status,
                            json_t *body);
/** {"error":{"code":code,"message":message}} */
void velo_http_respond_error(struct velo_http_exchange *ex, int status,
                             const char *code, const char *fmt, ...)
    VELO_PRINTF(4, 5);
/** Add a response header before responding. */
void velo_http_add_header(struct velo_http_exchange *ex, const char *name,
                          const char *value);
/** The request body (NUL-terminated copy is not made; may contain NULs). */
const char *velo_http_body(struct velo_http_exchange *ex, size_t *len);
/** The raw query string or NULL. */
const char *velo_http_query(struct velo_http_exchange *ex);

/* ---- api.c: handlers and the route table -------------------------------- */

/** The built-in routes followed by App plugins' routes. @return VELO_OK. */
int velo_http_routes_build(struct velo_http *h, char *err, size_t errlen);
void velo_http_routes_free(struct velo_http *h);

#endif /* VELO_CORE_HTTP_INTERNAL_H */
