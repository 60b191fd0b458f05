/*
 * Velostream plugin SDK: AuthProvider.
 *
 * Providers form a chain. For each request the host asks each provider in
 * order; a provider answers
 *   VELO_AUTH_ACCEPT   handled: this is the principal,
 *   VELO_AUTH_DENY     handled: credentials presented and wrong,
 *   VELO_AUTH_NEXT     not handled: no credentials this provider knows,
 *   VELO_AUTH_AGAIN    the answer comes later: the provider calls
 *                      `done(done_arg, result, principal)` exactly once, on
 *                      the main loop, and the request waits.
 */
#ifndef VELO_AUTH_H
#define VELO_AUTH_H

#include <stdint.h>

#include <velo/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

enum velo_auth_result {
    VELO_AUTH_ACCEPT = 0,
    VELO_AUTH_DENY = 1,
    VELO_AUTH_NEXT = 2,
    VELO_AUTH_AGAIN = 3
};

#define VELO_PRINCIPAL_NAME_MAX 128
#define VELO_PRINCIPAL_ROLES_MAX 256

struct velo_principal {
    char name[VELO_PRINCIPAL_NAME_MAX];   /* user name or "apikey:<id>" */
    char roles[VELO_PRINCIPAL_ROLES_MAX]; /* comma-separated */
    char provider[32];                    /* which provider accepted */
};

/* What a provider sees of a request. Borrowed for the call (and, for
 * AGAIN, until done is called). */
struct velo_auth_request {
    const char *method;      /* "GET", ... */
    const char *path;        /* decoded path without the query */
    const char *client_addr; /* "127.0.0.1" */
    const char *request_id;
    /** @return the header value or NULL. */
    const char *(*header)(const struct velo_auth_request *req,
                          const char *name);
    void *host_data; /* the host's, for `header` */
};

typedef void (*velo_auth_done_fn)(void *done_arg, int result,
                                  const struct velo_principal *who);

struct velo_auth_vtable {
    uint32_t size; /* sizeof(struct velo_auth_vtable) */
    /** Create an instance; config is the filled config struct (borrowed).
     *  @return VELO_OK and sets ins->context, or VELO_ERR. */
    int (*create)(struct velo_instance *ins, const void *config);
    void (*destroy)(struct velo_instance *ins);
    /** Required. @return enum velo_auth_result. */
    int (*authenticate)(struct velo_instance *ins,
                        const struct velo_auth_request *req,
                        struct velo_principal *out, velo_auth_done_fn done,
                        void *done_arg);
    /** Optional. May `who` do `action` on `resource`?
     *  @return VELO_AUTH_ACCEPT, VELO_AUTH_DENY or VELO_AUTH_NEXT. */
    int (*authorize)(struct velo_instance *ins,
                     const struct velo_principal *who, const char *resource,
                     const char *action);
};

#ifdef __cplusplus
}
#endif

#endif /* VELO_AUTH_H */
