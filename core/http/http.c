/*
 * The HTTP server: libevent's evhttp on the main loop, optional TLS, the
 * request pipeline (request id, route, authenticate, authorize, handler,
 * response, metrics, audit) and the limits evhttp leaves to its user.
 *
 * Connections. libevent 2.1 has no hook for a new or a closed connection,
 * so http.max_connections is ours to enforce. evhttp_set_bevcb hands us
 * every accepted connection's bufferevent to make (a socket one, or an
 * OpenSSL one for TLS); we count it there. Right after, once evhttp has
 * wrapped it in its evhttp_connection (the bufferevent's callback
 * argument), a zero-delay event attaches our close callback to that
 * connection, which evhttp calls when it frees it: the count goes down
 * there. At the limit the listener is disabled (back-pressure: new
 * clients wait in the kernel's accept queue, nobody is refused) and
 * enabled again when a connection closes.
 *
 * (A pass-through bufferevent_filter with a free-context callback would
 * also count, but evhttp then sees a response as written once it reached
 * the filter, not the socket, and on "Connection: close" shuts the socket
 * down with the response still buffered: clients get an empty reply.)
 *
 * Slow clients. evhttp's timeout is an idle timeout: a client dripping one
 * byte a second never trips it. Each connection therefore has a deadline
 * timer: a request must arrive in full within http.request_timeout of the
 * connection opening (or of the previous response completing); past it
 * the connection gets the same timeout event evhttp's own timer would
 * raise, and evhttp closes it.
 *
 * Pending requests. Authentication may answer later (password hashing on
 * a worker). While it does, the request stays with evhttp; the
 * connection's close callback tells us if it goes away, so the answer
 * never touches a freed request, and a timer answers 503 if the chain
 * takes longer than http.request_timeout.
 */
#include "http/http-internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "auth/chain.h"
#include "config/config.h"
#include "obs/metrics.h"
#include "store/authstore.h"
#include "util/log.h"

#define HTTP_SRC "http"
#define HTTP_ALL_METHODS                                                       \
    (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |     \
     EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |               \
     EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH)

static char *dup_or_null(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static int str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

static void ms_to_tv(int64_t ms, struct timeval *tv)
{
    if (ms < 1) {
        ms = 1;
    }
    tv->tv_sec = (time_t)(ms / 1000);
    tv->tv_usec = (suseconds_t)((ms % 1000) * 1000);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- listen and TLS ------------------------------------------------------ */

/* "127.0.0.1:8080", "[::1]:8080", ":8080" (all IPv4 interfaces). */
static int parse_listen(const char *listen, char *host, size_t hostlen,
                        int *port, char *err, size_t errlen)
{
    const char *hint = "(hint: write host:port, e.g. 127.0.0.1:8080 or "
                       "[::1]:8080)";
    if (listen == NULL || listen[0] == '\0') {
        snprintf(err, errlen, "server.listen is empty %s", hint);
        return VELO_ERR;
    }
    const char *portstr;
    size_t hl;
    const char *hs;
    if (listen[0] == '[') {
        const char *rb = strchr(listen, ']');
        if (rb == NULL || rb[1] != ':') {
            snprintf(err, errlen, "server.listen \"%s\": bad address %s",
                     listen, hint);
            return VELO_ERR;
        }
        hs = listen + 1;
        hl = (size_t)(rb - hs);
        portstr = rb + 2;
    } else {
        const char *colon = strrchr(listen, ':');
        if (colon == NULL) {
            snprintf(err, errlen, "server.listen \"%s\": no port %s", listen,
                     hint);
            return VELO_ERR;
        }
        hs = listen;
        hl = (size_t)(colon - listen);
        portstr = colon + 1;
    }
    if (hl == 0) {
        hs = "0.0.0.0";
        hl = strlen(hs);
    }
    if (hl >= hostlen) {
        snprintf(err, errlen, "server.listen \"%s\": host too long", listen);
        return VELO_ERR;
    }
    memcpy(host, hs, hl);
    host[hl] = '\0';
    char *end;
    errno = 0;
    long p = strtol(portstr, &end, 10);
    if (portstr[0] == '\0' || *end != '\0' || errno != 0 || p < 0 ||
        p > 65535) {
        snprintf(err, errlen,
                 "server.listen \"%s\": port must be 0..65535 "
                 "%s",
                 listen, hint);
        return VELO_ERR;
    }
    *port = (int)p;
    return VELO_OK;
}

static void ssl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0) {
        snprintf(buf, n, "unknown error");
    } else {
        ERR_error_string_n(e, buf, n);
    }
    ERR_clear_error();
}

static int file_readable(const char *key, const char *path, char *err,
                         size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s %s: cannot read: %s", key, path,
                 strerror(errno));
        return 0;
    }
    fclose(f);
    return 1;
}

static SSL_CTX *tls_create(const struct velo_config *cfg, char *err,
                           size_t errlen)
{
    const char *cert = cfg->http_tls_cert, *key = cfg->http_tls_key;
    if (cert == NULL || cert[0] == '\0' || key == NULL || key[0] == '\0') {
        snprintf(err, errlen,
                 "http.tls.enabled is true but http.tls.%s is "
                 "not set (hint: give the PEM certificate and key files)",
                 cert == NULL || cert[0] == '\0' ? "cert" : "key");
        return NULL;
    }
    if (!file_readable("http.tls.cert", cert, err, errlen) ||
        !file_readable("http.tls.key", key, err, errlen)) {
        return NULL;
    }
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        ssl_reason(why, sizeof(why));
        snprintf(err, errlen, "TLS: cannot create a context: %s", why);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        ssl_reason(why, sizeof(why));
        snprintf(err, errlen,
                 "http.tls.cert %s: not a usable PEM "
                 "certificate: %s",
                 cert, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    FILE *f = fopen(key, "rb");
    EVP_PKEY *pkey =
        f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f != NULL) {
        fclose(f);
    }
    if (pkey == NULL) {
        ssl_reason(why, sizeof(why));
        snprintf(err, errlen,
                 "http.tls.key %s: not a PEM private key "
                 "(an encrypted key is not supported): %s",
                 key, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    int ok = SSL_CTX_use_PrivateKey(ctx, pkey) == 1 &&
             SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(pkey);
    if (!ok) {
        ssl_reason(why, sizeof(why));
        snprintf(err, errlen,
                 "http.tls.key %s does not match the "
                 "certificate in http.tls.cert %s (%s)",
                 key, cert, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* ---- connections -----------------------------------------------------------
 */

static void accept_update(struct velo_http *h)
{
    struct evconnlistener *l =
        h->bound != NULL ? evhttp_bound_socket_get_listener(h->bound) : NULL;
    if (l == NULL) {
        return;
    }
    int full =
        h->max_connections > 0 && h->n_conns >= (size_t)h->max_connections;
    int pause = h->shutting_down || full;
    if (pause && !h->accept_paused) {
        evconnlistener_disable(l);
        h->accept_paused = 1;
        if (full && !h->shutting_down) {
            velo_log_write(VELO_LOG_DEBUG, HTTP_SRC,
                           "%zu connections open (http.max_connections): "
                           "not accepting until one closes",
                           h->n_conns);
        }
    } else if (!pause && h->accept_paused) {
        evconnlistener_enable(l);
        h->accept_paused = 0;
    }
}

static void conn_gauge(struct velo_http *h)
{
    if (h->m_connections != NULL) {
        velo_metric_set(h->m_connections, (double)h->n_conns);
    }
}

static void conn_arm(struct velo_http_conn *c)
{
    struct timeval tv;
    ms_to_tv(c->h->timeout_ms, &tv);
    evtimer_add(c->deadline, &tv);
}

static void conn_forget(struct velo_http_conn *c)
{
    struct velo_http *h = c->h;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        h->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    h->n_conns--;
    event_free(c->deadline); /* may be the running callback: allowed */
    event_free(c->attach);
    free(c);
    conn_gauge(h);
    accept_update(h);
}

static void client_gone(struct velo_http_exchange *ex);

/* evhttp is freeing the connection. */
static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct velo_http_conn *c = arg;
    (void)evcon;
    if (c->pending != NULL) {
        client_gone(c->pending);
        c->pending = NULL;
    }
    conn_forget(c);
}

/* The request did not arrive in full in time: raise the timeout evhttp's
 * own idle timer would, and let evhttp close the connection its way
 * (which calls conn_closed: c is gone when this returns). */
static void conn_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct velo_http_conn *c = arg;
    (void)fd;
    (void)what;
    velo_log_write(VELO_LOG_DEBUG, HTTP_SRC,
                   "closing a connection: no complete request within "
                   "http.request_timeout");
    bufferevent_trigger_event(c->bev, BEV_EVENT_READING | BEV_EVENT_TIMEOUT, 0);
}

/* Runs on the loop right after the accept, before any I/O on the
 * connection: evhttp has made its evhttp_connection around our
 * bufferevent by now, as the bufferevent's callback argument. */
static void conn_attach(evutil_socket_t fd, short what, void *arg)
{
    struct velo_http_conn *c = arg;
    (void)fd;
    (void)what;
    void *cbarg = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, NULL, &cbarg);
    if (cbarg == NULL) {
        conn_forget(c); /* evhttp failed to take it */
        return;
    }
    c->evcon = cbarg;
    evhttp_connection_set_closecb(c->evcon, conn_closed, c);
    conn_arm(c);
}

static struct bufferevent *conn_new(struct event_base *base, void *arg)
{
    struct velo_http *h = arg;
    struct bufferevent *bev = NULL;
    if (h->ssl != NULL) {
        SSL *ssl = SSL_new(h->ssl);
        if (ssl != NULL) {
            bev = bufferevent_openssl_socket_new(base, -1, ssl,
                                                 BUFFEREVENT_SSL_ACCEPTING,
                                                 BEV_OPT_CLOSE_ON_FREE);
            if (bev == NULL) {
                SSL_free(ssl);
            } else {
                /* Clients often close without close_notify; for a
                 * request/response protocol that is an end of stream. */
                bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
            }
        }
    } else {
        bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    }
    struct velo_http_conn *c = bev != NULL ? calloc(1, sizeof(*c)) : NULL;
    if (c != NULL) {
        c->h = h;
        c->bev = bev;
        c->deadline = evtimer_new(base, conn_deadline, c);
        c->attach = event_new(base, -1, 0, conn_attach, c);
    }
    if (c == NULL || c->deadline == NULL || c->attach == NULL) {
        /* Served, but not counted: better than refusing it. */
        velo_log_write(VELO_LOG_ERROR, HTTP_SRC,
                       "out of memory tracking a connection");
        if (c != NULL) {
            if (c->deadline != NULL) {
                event_free(c->deadline);
            }
            if (c->attach != NULL) {
                event_free(c->attach);
            }
            free(c);
        }
        return bev;
    }
    c->next = h->conns;
    if (h->conns != NULL) {
        h->conns->prev = c;
    }
    h->conns = c;
    h->n_conns++;
    conn_gauge(h);
    event_active(c->attach, EV_TIMEOUT, 0);
    accept_update(h);
    return bev;
}

static struct velo_http_conn *conn_find(struct velo_http *h,
                                        struct evhttp_connection *evcon)
{
    for (struct velo_http_conn *c = h->conns; evcon != NULL && c != NULL;
         c = c->next) {
        if (c->evcon == evcon) {
            return c;
        }
    }
    return NULL;
}

/* The response went out in full: the next request on this connection has
 * http.request_timeout to arrive. */
static void on_request_complete(struct evhttp_request *req, void *arg)
{
    (void)req;
    conn_arm(arg);
}

/* ---- exchanges -------------------------------------------------------------
 */

static int sane_request_id(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n < 1 || n >= VELO_HTTP_REQUEST_ID_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
              c == ':')) {
            return 0;
        }
    }
    return 1;
}

static const char *ex_header(const struct velo_auth_request *r,
                             const char *name)
{
    const struct velo_http_exchange *ex = r->host_data;
    for (size_t i = 0; name != NULL && i < ex->n_hdrs; i++) {
        if (strcasecmp(ex->hdrs[i].name, name) == 0) {
            return ex->hdrs[i].value;
        }
    }
    return NULL;
}

/* Copy the request headers: an auth provider answering later must not
 * read from a request the client may have closed meanwhile. */
static int ex_snapshot_headers(struct velo_http_exchange *ex)
{
    struct evkeyvalq *q = evhttp_request_get_input_headers(ex->req);
    size_t n = 0;
    for (struct evkeyval *kv = q->tqh_first; kv != NULL;
         kv = kv->next.tqe_next) {
        n++;
    }
    ex->hdrs = calloc(n > 0 ? n : 1, sizeof(*ex->hdrs));
    if (ex->hdrs == NULL) {
        return VELO_ERR;
    }
    for (struct evkeyval *kv = q->tqh_first; kv != NULL;
         kv = kv->next.tqe_next) {
        struct velo_http_header *hd = &ex->hdrs[ex->n_hdrs];
        hd->name = strdup(kv->key);
        hd->value = strdup(kv->value);
        if (hd->name == NULL || hd->value == NULL) {
            free(hd->name);
            free(hd->value);
            return VELO_ERR;
        }
        ex->n_hdrs++;
    }
    return VELO_OK;
}

static struct velo_http_exchange *ex_new(struct velo_http *h,
                                         struct evhttp_request *req)
{
    struct velo_http_exchange *ex = calloc(1, sizeof(*ex));
    if (ex == NULL) {
        return NULL;
    }
    ex->h = h;
    ex->req = req;
    ex->evcon = evhttp_request_get_connection(req);
    clock_gettime(CLOCK_MONOTONIC, &ex->start);
    snprintf(ex->method, sizeof(ex->method), "%s",
             method_name(evhttp_request_get_command(req)));
    ex->route_label = "other";

    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    ex->path = strdup(path != NULL ? path : "");
    if (ex->path == NULL) {
        free(ex);
        return NULL;
    }

    const char *rid = evhttp_find_header(evhttp_request_get_input_headers(req),
                                         "X-Request-Id");
    if (sane_request_id(rid)) {
        snprintf(ex->request_id, sizeof(ex->request_id), "%s", rid);
    } else {
        snprintf(ex->request_id, sizeof(ex->request_id), "%08x%016llx",
                 h->id_prefix, (unsigned long long)++h->id_seq);
    }
    char *addr = NULL;
    ev_uint16_t port = 0;
    if (ex->evcon != NULL) {
        evhttp_connection_get_peer(ex->evcon, &addr, &port);
    }
    snprintf(ex->client, sizeof(ex->client), "%s", addr != NULL ? addr : "-");

    ex->areq.method = ex->method;
    ex->areq.path = ex->path;
    ex->areq.client_addr = ex->client;
    ex->areq.request_id = ex->request_id;
    ex->areq.header = ex_header;
    ex->areq.host_data = ex;
    return ex;
}

static void ex_settle(struct velo_http_exchange *ex)
{
    if (!ex->settled) {
        ex->settled = 1;
        if (ex->h != NULL && ex->h->inflight > 0) {
            ex->h->inflight--;
        }
    }
}

static void ex_unwait(struct velo_http_exchange *ex)
{
    struct velo_http *h = ex->h;
    if (!ex->waiting_auth) {
        return;
    }
    ex->waiting_auth = 0;
    if (h != NULL) {
        if (ex->prev != NULL) {
            ex->prev->next = ex->next;
        } else if (h->waiting == ex) {
            h->waiting = ex->next;
        }
        if (ex->next != NULL) {
            ex->next->prev = ex->prev;
        }
    }
    ex->prev = ex->next = NULL;
    if (ex->auth_timer != NULL) {
        event_free(ex->auth_timer);
        ex->auth_timer = NULL;
    }
}

/* Stop listening for the connection's close on this exchange's behalf. */
static void ex_detach_conn(struct velo_http_exchange *ex)
{
    if (ex->conn != NULL && ex->conn->pending == ex) {
        ex->conn->pending = NULL;
    }
    ex->conn = NULL;
}

static void ex_free(struct velo_http_exchange *ex)
{
    ex_detach_conn(ex);
    ex_settle(ex);
    ex_unwait(ex);
    if (ex->req != NULL && ex->req_detached) {
        evhttp_request_free(ex->req); /* libevent let go of it */
    }
    for (size_t i = 0; i < ex->n_hdrs; i++) {
        free(ex->hdrs[i].name);
        free(ex->hdrs[i].value);
    }
    free(ex->hdrs);
    free(ex->path);
    free(ex);
}

/* ---- responses -------------------------------------------------------------
 */

static void audit_event(struct velo_http_exchange *ex, const char *who,
                        const char *action, const char *outcome,
                        const char *detail)
{
    if (ex->h == NULL) {
        return;
    }
    struct velo_audit_event ev = {
        .time_ms = now_ms(),
        .who = who != NULL && who[0] != '\0' ? who : "-",
        .action = action,
        .resource = ex->path,
        .outcome = outcome,
        .request_id = ex->request_id,
        .client_addr = ex->client,
        .detail = detail,
    };
    velo_auditchain_log(ex->h->audit, &ev);
}

static void record_metrics(struct velo_http_exchange *ex, int status)
{
    struct velo_http *h = ex->h;
    char st[8];
    snprintf(st, sizeof(st), "%d", status);
    const char *labels[3] = {ex->route_label, ex->method, st};
    if (h->f_requests != NULL) {
        struct velo_metric *m = velo_metric_series(h->f_requests, labels, 3);
        if (m != NULL) {
            velo_metric_inc(m, 1);
        }
    }
    if (h->f_duration != NULL) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double secs = (double)(now.tv_sec - ex->start.tv_sec) +
                      (double)(now.tv_nsec - ex->start.tv_nsec) / 1e9;
        struct velo_metric *m = velo_metric_series(h->f_duration, labels, 1);
        if (m != NULL) {
            velo_metric_observe(m, secs);
        }
    }
}

void velo_http_add_header(struct velo_http_exchange *ex, const char *name,
                          const char *value)
{
    if (ex->req != NULL && !ex->req_detached) {
        evhttp_add_header(evhttp_request_get_output_headers(ex->req), name,
                          value);
    }
}

void velo_http_respond(struct velo_http_exchange *ex, int status,
                       const char *content_type, const char *body, size_t len)
{
    if (ex->req == NULL || ex->req_detached) {
        return; /* answered already, or the client is gone */
    }
    struct velo_http *h = ex->h;
    ex_detach_conn(ex);
    struct evkeyvalq *out = evhttp_request_get_output_headers(ex->req);
    evhttp_remove_header(out, "Content-Type");
    if (status != 204) {
        evhttp_add_header(out, "Content-Type",
                          content_type != NULL ? content_type
                                               : "application/json");
    }
    evhttp_add_header(out, "X-Request-Id", ex->request_id);
    evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
    if (ex->is_api) {
        evhttp_add_header(out, "Cache-Control", "no-store");
    }
    if (h != NULL && h->shutting_down) {
        evhttp_remove_header(out, "Connection");
        evhttp_add_header(out, "Connection", "close");
    }
    /* evhttp 2.1 would send a HEAD response's body: send the length the
     * GET would have, and no body. */
    int head = strcmp(ex->method, "HEAD") == 0;
    if (head && status != 204) {
        char cl[24];
        snprintf(cl, sizeof(cl), "%zu", body != NULL ? len : 0);
        evhttp_add_header(out, "Content-Length", cl);
    }
    struct evbuffer *b = evbuffer_new();
    if (b != NULL && body != NULL && len > 0 && status != 204 && !head) {
        evbuffer_add(b, body, len);
    }
    evhttp_send_reply(ex->req, status, reason_phrase(status), b);
    if (b != NULL) {
        evbuffer_free(b);
    }
    ex->req = NULL; /* evhttp owns and frees it from here */

    if (h != NULL) {
        record_metrics(ex, status);
        if (ex->mutating && ex->authenticated) {
            char action[32], detail[200];
            if (ex->route != NULL && ex->route->audit_action != NULL) {
                snprintf(action, sizeof(action), "%s", ex->route->audit_action);
            } else {
                snprintf(action, sizeof(action), "http.%s", ex->method);
            }
            snprintf(detail, sizeof(detail), "status=%d%s%s", status,
                     ex->audit_detail[0] != '\0' ? " " : "", ex->audit_detail);
            audit_event(ex, ex->who.name, action,
                        status < 400    ? "success"
                        : status == 403 ? "deny"
                                        : "failure",
                        detail);
        }
    }
    ex_settle(ex);
}

void velo_http_respond_json(struct velo_http_exchange *ex, int status,
                            json_t *body)
{
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        static const char oom[] =
            "{\"error\":{\"code\":\"internal\",\"message\":\"out of "
            "memory\"}}";
        velo_http_respond(ex, 500, NULL, oom, sizeof(oom) - 1);
        return;
    }
    velo_http_respond(ex, status, NULL, text, strlen(text));
    free(text);
}

void velo_http_respond_error(struct velo_http_exchange *ex, int status,
                             const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    velo_http_respond_json(
        ex, status,
        json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg));
}

const char *velo_http_body(struct velo_http_exchange *ex, size_t *len)
{
    *len = 0;
    if (ex->req == NULL || ex->req_detached) {
        return NULL;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(ex->req);
    size_t n = evbuffer_get_length(in);
    *len = n;
    return n > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
}

const char *velo_http_query(struct velo_http_exchange *ex)
{
    if (ex->req == NULL || ex->req_detached) {
        return NULL;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ex->req);
    return uri != NULL ? evhttp_uri_get_query(uri) : NULL;
}

/* ---- routing and the pipeline ---------------------------------------------
 */

static int route_path_matches(const struct velo_http_route *r, const char *path)
{
    size_t n = strlen(r->path);
    switch (r->param) {
    case 0:
        return strcmp(path, r->path) == 0;
    case 1:
        return strncmp(path, r->path, n) == 0 && path[n] != '\0' &&
               strchr(path + n, '/') == NULL;
    default:
        return strncmp(path, r->path, n) == 0;
    }
}

/* The route for method+path; when only the path matches, *allow gets the
 * methods that would (for 405). */
static const struct velo_http_route *route_find(struct velo_http *h,
                                                const char *method,
                                                const char *path, char *allow,
                                                size_t allowlen)
{
    allow[0] = '\0';
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    for (size_t i = 0; i < h->n_routes; i++) {
        const struct velo_http_route *r = &h->routes[i];
        if (route_path_matches(r, path) && strcmp(r->method, want) == 0) {
            return r;
        }
    }
    for (size_t i = 0; i < h->n_routes; i++) {
        const struct velo_http_route *r = &h->routes[i];
        if (!route_path_matches(r, path) || strstr(allow, r->method) != NULL) {
            continue;
        }
        size_t used = strlen(allow);
        snprintf(allow + used, allowlen - used, "%s%s%s", used > 0 ? ", " : "",
                 r->method, strcmp(r->method, "GET") == 0 ? ", HEAD" : "");
    }
    return NULL;
}

static void dispatch(struct velo_http_exchange *ex, const char *allow)
{
    struct velo_http *h = ex->h;
    const struct velo_http_route *r = ex->route;
    if (r == NULL && allow[0] != '\0') {
        velo_http_add_header(ex, "Allow", allow);
        velo_http_respond_error(ex, 405, "method_not_allowed",
                                "%s is not allowed on %s (allowed: %s)",
                                ex->method, ex->path, allow);
        return;
    }
    if (r == NULL) {
        velo_http_respond_error(ex, 404, "not_found", "no route for %s %s",
                                ex->method, ex->path);
        return;
    }
    if (ex->authenticated && r->resource != NULL) {
        int ok =
            velo_authchain_authorize(h->auth, &ex->who, r->resource, r->action);
        if (h->auth_enabled) {
            char detail[128];
            snprintf(detail, sizeof(detail), "resource=%s action=%s",
                     r->resource, r->action);
            audit_event(ex, ex->who.name, "auth.authorize",
                        ok == VELO_AUTH_ACCEPT ? "allow" : "deny", detail);
        }
        if (ok != VELO_AUTH_ACCEPT) {
            velo_http_respond_error(
                ex, 403, "forbidden", "%s may not %s %s (roles: %s)",
                ex->who.name, r->action, r->resource,
                ex->who.roles[0] != '\0' ? ex->who.roles : "none");
            return;
        }
    }
    r->handle(ex);
    if (ex->req != NULL && !ex->req_detached) {
        velo_http_respond_error(ex, 500, "internal",
                                "the handler for %s gave no answer", r->label);
    }
}

/* Who a rejected request claimed to be, for the audit record. */
static void claimed_identity(const struct velo_http_exchange *ex, char *out,
                             size_t outlen)
{
    snprintf(out, outlen, "-");
    const char *a = ex_header(&ex->areq, "Authorization");
    const char *k = ex_header(&ex->areq, "X-API-Key");
    char id[VELO_APIKEY_ID_LEN + 1], secret[VELO_APIKEY_SECRET_LEN + 1];
    if (a != NULL && strncasecmp(a, "Basic ", 6) == 0) {
        const char *c = a + 6;
        while (*c == ' ') {
            c++;
        }
        unsigned char dec[256];
        size_t n = strcspn(c, " \t");
        int dl =
            n < 320 ? velo_auth_base64_decode(c, n, dec, sizeof(dec) - 1) : -1;
        if (dl > 0) {
            dec[dl] = '\0';
            char *colon = strchr((char *)dec, ':');
            if (colon != NULL) {
                *colon = '\0';
                if (velo_auth_valid_username((char *)dec)) {
                    snprintf(out, outlen, "%.64s", (char *)dec);
                }
            }
            memset(dec, 0, sizeof(dec));
        }
        return;
    }
    const char *tok = NULL;
    if (a != NULL && strncasecmp(a, "Bearer ", 7) == 0) {
        tok = a + 7;
        while (*tok == ' ') {
            tok++;
        }
    } else if (k != NULL) {
        tok = k;
    }
    if (tok != NULL && velo_apikey_parse(tok, id, secret) == VELO_OK) {
        snprintf(out, outlen, "apikey:%s", id);
    }
    memset(secret, 0, sizeof(secret));
}

static void on_authenticated(void *arg, int result,
                             const struct velo_principal *who)
{
    struct velo_http_exchange *ex = arg;
    ex_unwait(ex);
    if (ex->h == NULL || ex->req == NULL || ex->req_detached) {
        ex_free(ex); /* server gone, answered by the timer, or client gone */
        return;
    }
    struct velo_http *h = ex->h;
    ex_detach_conn(ex);
    if (result != VELO_AUTH_ACCEPT || who == NULL) {
        char claimed[VELO_PRINCIPAL_NAME_MAX];
        claimed_identity(ex, claimed, sizeof(claimed));
        audit_event(ex, claimed, "auth.authenticate", "deny",
                    ex_header(&ex->areq, "Authorization") != NULL ||
                            ex_header(&ex->areq, "X-API-Key") != NULL
                        ? "invalid credentials"
                        : "no credentials");
        char challenge[300];
        snprintf(challenge, sizeof(challenge), "Basic realm=\"%s\"", h->realm);
        velo_http_add_header(ex, "WWW-Authenticate", challenge);
        velo_http_respond_error(
            ex, 401, "unauthorized",
            "authentication required: send Authorization: Basic "
            "(user:password), Authorization: Bearer <API key> or "
            "X-API-Key: <API key>");
        ex_free(ex);
        return;
    }
    ex->who = *who;
    ex->authenticated = 1;
    char detail[64];
    snprintf(detail, sizeof(detail), "provider=%s", who->provider);
    audit_event(ex, who->name, "auth.authenticate", "allow", detail);
    char allow[128];
    ex->route = route_find(h, ex->method, ex->path, allow, sizeof(allow));
    if (ex->route != NULL) {
        ex->route_label = ex->route->label;
    }
    dispatch(ex, allow);
    ex_free(ex);
}

/* The connection of an exchange waiting for auth is being freed. */
static void client_gone(struct velo_http_exchange *ex)
{
    ex->conn = NULL;
    if (ex->req != NULL) {
        if (evhttp_request_get_connection(ex->req) == NULL) {
            ex->req_detached = 1; /* not freed by libevent: ours now */
        } else {
            ex->req = NULL; /* libevent frees it with the connection */
        }
    }
    ex_settle(ex);
}

static void on_auth_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct velo_http_exchange *ex = arg;
    (void)fd;
    (void)what;
    velo_log_write(VELO_LOG_WARN, HTTP_SRC,
                   "request %s: authentication gave no answer within "
                   "http.request_timeout; answering 503",
                   ex->request_id);
    velo_http_respond_error(ex, 503, "auth_timeout",
                            "authentication did not answer in time; retry "
                            "later");
    /* The exchange stays until the chain answers; it owes one answer. */
}

static void start_auth(struct velo_http_exchange *ex)
{
    struct velo_http *h = ex->h;
    if (ex_snapshot_headers(ex) != VELO_OK) {
        velo_http_respond_error(ex, 500, "internal", "out of memory");
        ex_free(ex);
        return;
    }
    ex->waiting_auth = 1;
    ex->next = h->waiting;
    if (h->waiting != NULL) {
        h->waiting->prev = ex;
    }
    h->waiting = ex;
    ex->conn = conn_find(h, ex->evcon);
    if (ex->conn != NULL) {
        ex->conn->pending = ex;
    }
    ex->auth_timer = evtimer_new(h->base, on_auth_timeout, ex);
    if (ex->auth_timer != NULL) {
        struct timeval tv;
        ms_to_tv(h->timeout_ms, &tv);
        evtimer_add(ex->auth_timer, &tv);
    }
    /* May answer before returning; ex is not touched after this. */
    velo_authchain_authenticate(h->auth, &ex->areq, on_authenticated, ex);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct velo_http *h = arg;
    struct velo_http_conn *c = conn_find(h, evhttp_request_get_connection(req));
    if (c != NULL) {
        evtimer_del(c->deadline);
        evhttp_request_set_on_complete_cb(req, on_request_complete, c);
    }
    struct velo_http_exchange *ex = ex_new(h, req);
    if (ex == NULL) {
        velo_log_write(VELO_LOG_ERROR, HTTP_SRC,
                       "out of memory answering a request");
        evhttp_send_error(req, 500, NULL);
        return;
    }
    h->inflight++;
    const char *m = ex->method;
    ex->mutating = strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 ||
                   strcmp(m, "PATCH") == 0 || strcmp(m, "DELETE") == 0;
    ex->is_api =
        strncmp(ex->path, "/api/", 5) == 0 || strcmp(ex->path, "/api") == 0;
    if (ex->path[0] != '/') {
        velo_http_respond_error(ex, 400, "bad_request",
                                "the request target must be a path "
                                "starting with '/'");
        ex_free(ex);
        return;
    }
    char allow[128];
    ex->route = route_find(h, ex->method, ex->path, allow, sizeof(allow));
    if (ex->route != NULL) {
        ex->route_label = ex->route->label;
    }
    int need = ex->is_api ? VELO_HTTP_AUTH_ALWAYS : VELO_HTTP_AUTH_NONE;
    if (ex->route != NULL && ex->route->auth == VELO_HTTP_AUTH_ALWAYS) {
        need = VELO_HTTP_AUTH_ALWAYS;
    } else if (ex->route != NULL && ex->route->auth == VELO_HTTP_AUTH_METRICS &&
               h->metrics_auth) {
        need = VELO_HTTP_AUTH_ALWAYS;
    }
    if (need == VELO_HTTP_AUTH_NONE) {
        dispatch(ex, allow);
        ex_free(ex);
        return;
    }
    if (!h->auth_enabled) {
        snprintf(ex->who.name, sizeof(ex->who.name), "anonymous");
        snprintf(ex->who.roles, sizeof(ex->who.roles), "admin");
        snprintf(ex->who.provider, sizeof(ex->who.provider), "none");
        ex->authenticated = 1;
        dispatch(ex, allow);
        ex_free(ex);
        return;
    }
    start_auth(ex);
}

/* ---- the server ------------------------------------------------------------
 */

static void apply_limits(struct velo_http *h, const struct velo_config *cfg)
{
    h->max_header_size = cfg->http_max_header_size;
    h->max_body_size = cfg->http_max_body_size;
    h->timeout_ms =
        cfg->http_request_timeout_ms > 0 ? cfg->http_request_timeout_ms : 30000;
    h->max_connections = cfg->http_max_connections;
    h->auth_enabled = cfg->auth_enabled;
    h->metrics_auth = cfg->auth_metrics_require_auth;
    evhttp_set_max_headers_size(h->evh, (ev_ssize_t)h->max_header_size);
    evhttp_set_max_body_size(h->evh, (ev_ssize_t)h->max_body_size);
    struct timeval tv;
    ms_to_tv(h->timeout_ms, &tv);
    evhttp_set_timeout_tv(h->evh, &tv);
}

static void make_metrics(struct velo_http *h)
{
    if (h->metrics == NULL) {
        return;
    }
    h->f_requests = velo_metrics_family(
        h->metrics, "velo_http_requests_total",
        "HTTP requests answered, by route template, method and status",
        VELO_METRIC_COUNTER, "route,method,status", NULL, 0);
    h->f_duration = velo_metrics_family(
        h->metrics, "velo_http_request_duration_seconds",
        "Time from a request's arrival to its answer, by route template",
        VELO_METRIC_HISTOGRAM, "route", NULL, 0);
    struct velo_metric_family *f = velo_metrics_family(
        h->metrics, "velo_http_connections", "Open HTTP connections",
        VELO_METRIC_GAUGE, NULL, NULL, 0);
    h->m_connections = f != NULL ? velo_metric_series(f, NULL, 0) : NULL;
    if (h->f_requests == NULL || h->f_duration == NULL) {
        velo_log_write(VELO_LOG_WARN, HTTP_SRC,
                       "cannot register the HTTP metrics (name taken with "
                       "another type?)");
    }
}

struct velo_http *velo_http_create(const struct velo_http_deps *deps,
                                   const struct velo_config *cfg, char *err,
                                   size_t errlen)
{
    if (deps == NULL || cfg == NULL || deps->base == NULL ||
        deps->auth == NULL || deps->audit == NULL) {
        snprintf(err, errlen,
                 "http: missing event base, auth chain or "
                 "audit chain");
        errno = EINVAL;
        return NULL;
    }
    char host[256];
    int port;
    if (parse_listen(cfg->listen, host, sizeof(host), &port, err, errlen) !=
        VELO_OK) {
        errno = EINVAL;
        return NULL;
    }
    struct velo_http *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->base = deps->base;
    h->reactor = deps->reactor;
    h->metrics = deps->metrics;
    h->auth = deps->auth;
    h->audit = deps->audit;
    h->plugins = deps->plugins;
    h->license = deps->license;
    h->version = strdup(deps->version != NULL ? deps->version : "unknown");
    h->commit = strdup(deps->commit != NULL ? deps->commit : "unknown");
    h->realm = strdup(cfg->auth_realm != NULL ? cfg->auth_realm : "velostream");
    h->listen = strdup(cfg->listen);
    h->tls_enabled = cfg->http_tls_enabled;
    h->tls_cert = dup_or_null(cfg->http_tls_cert);
    h->tls_key = dup_or_null(cfg->http_tls_key);
    if (RAND_bytes((unsigned char *)&h->id_prefix, sizeof(h->id_prefix)) != 1) {
        h->id_prefix = (uint32_t)now_ms();
    }
    if (h->version == NULL || h->commit == NULL || h->realm == NULL ||
        h->listen == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->http_tls_enabled) {
        h->ssl = tls_create(cfg, err, errlen);
        if (h->ssl == NULL) {
            goto fail;
        }
    }
    h->evh = evhttp_new(h->base);
    if (h->evh == NULL) {
        snprintf(err, errlen, "cannot create the HTTP server");
        goto fail;
    }
    evhttp_set_allowed_methods(h->evh, HTTP_ALL_METHODS);
    evhttp_set_gencb(h->evh, on_request, h);
    evhttp_set_bevcb(h->evh, conn_new, h);
    apply_limits(h, cfg);
    if (velo_http_routes_build(h, err, errlen) != VELO_OK) {
        goto fail;
    }
    make_metrics(h);
    errno = 0;
    h->bound = evhttp_bind_socket_with_handle(h->evh, host, (ev_uint16_t)port);
    if (h->bound == NULL) {
        snprintf(err, errlen,
                 "listen %s: %s (hint: change server.listen "
                 "or stop what uses the port)",
                 cfg->listen, errno != 0 ? strerror(errno) : "cannot bind");
        goto fail;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    evutil_socket_t fd = evhttp_bound_socket_get_fd(h->bound);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        h->port = ss.ss_family == AF_INET6
                      ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                      : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    if (!h->auth_enabled) {
        velo_log_write(VELO_LOG_WARN, HTTP_SRC,
                       "auth.enabled is false: every /api/ request runs as "
                       "'anonymous' with role admin");
    }
    return h;
fail:
    velo_http_destroy(h);
    errno = EINVAL;
    return NULL;
}

int velo_http_reconfigure(struct velo_http *h, const struct velo_config *cfg,
                          char *err, size_t errlen)
{
    err[0] = '\0';
    int was_enabled = h->auth_enabled;
    apply_limits(h, cfg);
    char *realm =
        strdup(cfg->auth_realm != NULL ? cfg->auth_realm : "velostream");
    if (realm != NULL) {
        free(h->realm);
        h->realm = realm;
    }
    accept_update(h); /* http.max_connections may have moved */
    if (was_enabled && !h->auth_enabled) {
        velo_log_write(VELO_LOG_WARN, HTTP_SRC,
                       "auth.enabled is now false: every /api/ request runs "
                       "as 'anonymous' with role admin");
    }
    size_t used = 0;
    if (!str_eq(cfg->listen, h->listen)) {
        used +=
            (size_t)snprintf(err + used, errlen - used,
                             "server.listen changed (%s -> %s): restart "
                             "to apply",
                             h->listen, cfg->listen != NULL ? cfg->listen : "");
    }
    if (used < errlen &&
        (cfg->http_tls_enabled != h->tls_enabled ||
         (cfg->http_tls_enabled && (!str_eq(cfg->http_tls_cert, h->tls_cert) ||
                                    !str_eq(cfg->http_tls_key, h->tls_key))))) {
        snprintf(err + used, errlen - used,
                 "%shttp.tls changed: restart to apply", used > 0 ? "; " : "");
        used = strlen(err);
    }
    return used > 0 ? VELO_ERR : VELO_OK;
}

int velo_http_port(const struct velo_http *h)
{
    return h != NULL ? h->port : 0;
}

void velo_http_begin_shutdown(struct velo_http *h)
{
    if (h == NULL || h->shutting_down) {
        return;
    }
    h->shutting_down = 1;
    accept_update(h);
}

size_t velo_http_inflight(const struct velo_http *h)
{
    return h != NULL ? h->inflight : 0;
}

void velo_http_destroy(struct velo_http *h)
{
    if (h == NULL) {
        return;
    }
    /* Frees every connection (their close callbacks let waiting exchanges
     * know their requests are gone). */
    h->bound = NULL; /* evhttp_free frees it before the connections */
    if (h->evh != NULL) {
        evhttp_free(h->evh);
    }
    /* Exchanges still waiting for the auth chain live on until it answers
     * (it answers every request it took, at the latest when destroyed). */
    while (h->waiting != NULL) {
        struct velo_http_exchange *ex = h->waiting;
        ex_unwait(ex);
        ex->h = NULL;
    }
    /* Records of connections evhttp never got to own (none normally:
     * evhttp_free closed the others, through conn_closed). */
    while (h->conns != NULL) {
        conn_forget(h->conns);
    }
    velo_http_routes_free(h);
    if (h->ssl != NULL) {
        SSL_CTX_free(h->ssl);
    }
    free(h->version);
    free(h->commit);
    free(h->realm);
    free(h->listen);
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
}
