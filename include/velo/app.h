/*
 * Velostream plugin SDK: App (turnkey apps and extensions): HTTP routes,
 * CLI verbs and SQL functions.
 */
#ifndef VELO_APP_H
#define VELO_APP_H

#include <stddef.h>
#include <stdint.h>

#include <velo/plugin.h>
#include <velo/value.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A response the host sends for an app route. The handler fills it; body is
 * copied by the host before the handler's next call. */
struct velo_http_response {
    int status;               /* 200, 404, ... */
    const char *content_type; /* NULL means application/json */
    const char *body;
    size_t body_len;
};

struct velo_http_request {
    const char *method;
    const char *path;  /* decoded, without the query */
    const char *query; /* raw query string or NULL */
    const char *body;
    size_t body_len;
    const char *principal; /* who, after authentication */
};

struct velo_app_route {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* exact, or a prefix ending in "/" plus "*" */
    const char *resource; /* RBAC resource, e.g. "blackbox" */
    const char *action;   /* RBAC action, e.g. "read" */
    /** @return VELO_OK (response filled) or VELO_ERR (500). */
    int (*handle)(struct velo_instance *ins,
                  const struct velo_http_request *req,
                  struct velo_http_response *resp);
};

struct velo_app_cli_verb {
    const char *name;  /* "velo <name> ..." */
    const char *usage; /* one line */
    /** @return process exit code: 0, 1 runtime failure, 2 usage error. */
    int (*run)(struct velo_instance *ins, int argc, char **argv);
};

struct velo_app_sql_function {
    const char *name; /* upper case */
    int return_type;  /* enum velo_type */
    int min_args;
    int max_args;
    /** Pure function of its arguments. @return VELO_OK or VELO_ERR. */
    int (*call)(const struct velo_value *args, size_t nargs,
                struct velo_value *out);
};

struct velo_app_vtable {
    uint32_t size; /* sizeof(struct velo_app_vtable) */
    int (*create)(struct velo_instance *ins, const void *config);
    void (*destroy)(struct velo_instance *ins);
    const struct velo_app_route *routes; /* ends with {0}; may be NULL */
    const struct velo_app_cli_verb *verbs; /* ends with {0}; may be NULL */
    const struct velo_app_sql_function *functions; /* ends with {0} */
};

#ifdef __cplusplus
}
#endif

#endif /* VELO_APP_H */
