/*
 * The AuthProvider and AuditSink chains.
 *
 * Built-ins always present: BasicAuth (users with PBKDF2-HMAC-SHA256
 * password hashes and API keys from the auth store, see store/authstore.h)
 * first in the auth chain, then AuthProvider plugins in load order;
 * NoOpAudit first in the audit chain, then AuditSink plugins.
 *
 * Built-in authorization (until the RBAC plugin): role "admin" may do
 * anything, role "viewer" may only "read"; an AuthProvider plugin's
 * authorize, when present, is asked first and may answer NEXT.
 */
#ifndef VELO_CORE_AUTH_CHAIN_H
#define VELO_CORE_AUTH_CHAIN_H

#include <stddef.h>

#include <velo/velo.h>

struct velo_plugins;
struct velo_reactor;
struct velo_authstore;

struct velo_authchain;
struct velo_auditchain;

/** store: borrowed, used by BasicAuth. plugins may be NULL.
 *  host: the host API table handed to instances. */
struct velo_authchain *velo_authchain_create(
    const struct velo_host_api *host, struct velo_authstore *store,
    struct velo_reactor *reactor, const struct velo_plugins *plugins);
void velo_authchain_destroy(struct velo_authchain *c);

/**
 * Authenticate. Calls done(done_arg, result, principal) exactly once: now
 * (before returning) or later on the main loop (password hashing runs on a
 * worker). result is VELO_AUTH_ACCEPT or VELO_AUTH_DENY; when every
 * provider says NEXT the result is DENY with principal NULL.
 */
void velo_authchain_authenticate(struct velo_authchain *c,
                                 const struct velo_auth_request *req,
                                 velo_auth_done_fn done, void *done_arg);

/** The auth store BasicAuth reads (borrowed): the HTTP API manages API keys
 *  through it. */
struct velo_authstore *velo_authchain_store(const struct velo_authchain *c);

/** @return VELO_AUTH_ACCEPT or VELO_AUTH_DENY. */
int velo_authchain_authorize(struct velo_authchain *c,
                             const struct velo_principal *who,
                             const char *resource, const char *action);

struct velo_auditchain *velo_auditchain_create(
    const struct velo_host_api *host, const struct velo_plugins *plugins);
void velo_auditchain_destroy(struct velo_auditchain *c);
/** Hand the event to every sink; a failing sink is counted, not fatal. */
void velo_auditchain_log(struct velo_auditchain *c,
                         const struct velo_audit_event *ev);

#endif /* VELO_CORE_AUTH_CHAIN_H */
