/*
 * The cluster coordinator in use: a ClusterCoordinator plugin when one is
 * loaded (the first in load order), else the built-in SingleNode, which
 * leads alone and owns every partition of every job.
 */
#ifndef VELO_CORE_COORDINATOR_H
#define VELO_CORE_COORDINATOR_H

#include <stddef.h>

#include <velo/velo.h>

struct velo_plugins;
struct velo_coordinator;

/** @return NULL and errno on failure (the plugin's create failing included;
 *  its name is then in the log). */
struct velo_coordinator *velo_coordinator_create(
    const struct velo_host_api *host, const struct velo_plugins *plugins);
void velo_coordinator_destroy(struct velo_coordinator *c);

/** Which implementation: "singlenode" or the plugin's name. */
const char *velo_coordinator_name(const struct velo_coordinator *c);

/* The vtable calls, with the instance bound. */
int velo_coordinator_join(struct velo_coordinator *c,
                          char node_id[VELO_NODE_ID_MAX]);
int velo_coordinator_leave(struct velo_coordinator *c);
int velo_coordinator_leader(struct velo_coordinator *c,
                            char node_id[VELO_NODE_ID_MAX]);
int velo_coordinator_assignments(struct velo_coordinator *c, const char *job,
                                 struct velo_assignment *out, size_t max);

/* The built-in SingleNode vtable (exposed for tests). */
extern const struct velo_cluster_vtable velo_singlenode_vtable;

#endif /* VELO_CORE_COORDINATOR_H */
