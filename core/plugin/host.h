/*
 * The host API table handed to plugins (include/velo/host.h), bound to this
 * process's reactor, metrics registry and license.
 */
#ifndef VELO_CORE_HOST_H
#define VELO_CORE_HOST_H

#include <velo/host.h>

struct velo_reactor;
struct velo_metrics;
struct velo_license;

/** Bind the services the table forwards to (any may be NULL: the entries
 *  then fail softly: submit returns VELO_ERR, metrics return NULL). */
void velo_host_bind(struct velo_reactor *r, struct velo_metrics *m,
                    const struct velo_license *lic);

/** The table. Borrowed; static for the process. */
const struct velo_host_api *velo_host_api(void);

#endif /* VELO_CORE_HOST_H */
