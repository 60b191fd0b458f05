/*
 * The HTTP API server (libevent evhttp, optional TLS through
 * bufferevent_openssl) on the main loop.
 *
 * Routes: /healthz, /readyz, /metrics, /api/version, /api/plugins,
 * /api/whoami, /api/apikeys (GET, POST), /api/apikeys/<id> (DELETE), plus
 * routes added by App plugins. Every /api/ route passes the AuthProvider
 * chain (unless auth is off) and authorize(resource, action); every auth
 * decision and mutating call goes to the AuditSink chain. Errors are JSON:
 * {"error":{"code":"...","message":"..."}}.
 */
#ifndef VELO_CORE_HTTP_H
#define VELO_CORE_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct velo_config;
struct velo_metrics;
struct velo_reactor;
struct velo_plugins;
struct velo_license;
struct velo_authchain;
struct velo_auditchain;
struct velo_http;

struct velo_http_deps {
    struct event_base *base;
    struct velo_reactor *reactor;
    struct velo_metrics *metrics;
    struct velo_authchain *auth;   /* may not be NULL */
    struct velo_auditchain *audit; /* may not be NULL */
    const struct velo_plugins *plugins; /* may be NULL */
    const struct velo_license *license; /* may be NULL */
    const char *version;
    const char *commit;
};

/** Bind and start serving per cfg (listen, limits, TLS, auth flags).
 *  @return NULL with a message in err (e.g. "listen 127.0.0.1:8080:
 *  Address already in use"). */
struct velo_http *velo_http_create(const struct velo_http_deps *deps,
                                   const struct velo_config *cfg, char *err,
                                   size_t errlen);

/** Apply new limits/auth flags after SIGHUP (listen address and TLS need a
 *  restart; a change there is reported in err and ignored).
 *  @return VELO_OK, or VELO_ERR with err set. */
int velo_http_reconfigure(struct velo_http *h, const struct velo_config *cfg,
                          char *err, size_t errlen);

/** The port actually bound (useful with listen "127.0.0.1:0"). */
int velo_http_port(const struct velo_http *h);

/** Stop accepting new connections; /readyz answers 503 from now on. */
void velo_http_begin_shutdown(struct velo_http *h);
/** Requests still being answered. */
size_t velo_http_inflight(const struct velo_http *h);

void velo_http_destroy(struct velo_http *h);

#endif /* VELO_CORE_HTTP_H */
