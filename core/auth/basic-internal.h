/*
 * The built-in BasicAuth provider: a real struct velo_auth_vtable, first in
 * the auth chain. It answers
 *   Authorization: Basic <user:password>   password checked on a worker
 *                                          (PBKDF2), answer AGAIN, then
 *                                          done() on the main loop;
 *   Authorization: Bearer velo_<id>_<s>    API key, answered at once;
 *   X-API-Key: velo_<id>_<s>               the same;
 * and NEXT for anything else (a Bearer token that is not one of ours is
 * left for an OIDC provider further down the chain).
 */
#ifndef VELO_CORE_AUTH_BASIC_INTERNAL_H
#define VELO_CORE_AUTH_BASIC_INTERNAL_H

#include <velo/auth.h>

struct velo_authstore;
struct velo_reactor;

/* The `config` handed to velo_basic_auth_vtable.create. */
struct velo_basic_auth_config {
    struct velo_authstore *store; /* borrowed */
    struct velo_reactor *reactor; /* borrowed; runs the password hashing */
};

extern const struct velo_auth_vtable velo_basic_auth_vtable;

#define VELO_BASIC_AUTH_NAME "basic"

#endif /* VELO_CORE_AUTH_BASIC_INTERNAL_H */
