/*
 * Velostream plugin SDK: ClusterCoordinator.
 *
 * Past one machine Velostream runs on Kafka consumer groups (see
 * ARCHITECTURE.md); a coordinator says which node leads and which source
 * partitions of a job this node owns. The built-in SingleNode coordinator
 * leads alone and owns everything.
 */
#ifndef VELO_CLUSTER_H
#define VELO_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <velo/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VELO_NODE_ID_MAX 64

/* One partition assignment. */
struct velo_assignment {
    const char *job;    /* job name */
    const char *source; /* source name within the job */
    int32_t partition;  /* -1 means "all partitions" */
};

struct velo_cluster_vtable {
    uint32_t size; /* sizeof(struct velo_cluster_vtable) */
    int (*create)(struct velo_instance *ins, const void *config);
    void (*destroy)(struct velo_instance *ins);
    /** Required. Join as this node; writes the node id into node_id.
     *  @return VELO_OK, VELO_AGAIN (joining continues on the loop), VELO_ERR */
    int (*join)(struct velo_instance *ins, char node_id[VELO_NODE_ID_MAX]);
    /** Required. Leave the cluster. @return VELO_OK or VELO_ERR. */
    int (*leave)(struct velo_instance *ins);
    /** Required. Writes the leader's id. @return 1 when this node leads, 0
     *  when another does, VELO_ERR when no leader is known. */
    int (*leader)(struct velo_instance *ins, char node_id[VELO_NODE_ID_MAX]);
    /** Required. Fills up to `max` assignments of `job` owned by this node.
     *  @return the number written, or VELO_ERR. Strings are borrowed until
     *  the next call. */
    int (*assignments)(struct velo_instance *ins, const char *job,
                       struct velo_assignment *out, size_t max);
};

#ifdef __cplusplus
}
#endif

#endif /* VELO_CLUSTER_H */
