/*
 * Cluster coordination: the built-in SingleNode and the choice between it
 * and a ClusterCoordinator plugin.
 */
#include "cluster/coordinator.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plugin/loader.h"
#include "util/log.h"

/* --- SingleNode ---------------------------------------------------------- */

struct singlenode {
    char node_id[VELO_NODE_ID_MAX];
    int joined;
};

static int singlenode_create(struct velo_instance *ins, const void *config)
{
    struct singlenode *sn = calloc(1, sizeof(*sn));
    if (sn == NULL) {
        return VELO_ERR;
    }
    char host[VELO_NODE_ID_MAX - 16];
    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "localhost");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(sn->node_id, sizeof(sn->node_id), "%s-%ld", host,
             (long)getpid());
    ins->context = sn;
    return VELO_OK;
}

static void singlenode_destroy(struct velo_instance *ins)
{
    free(ins->context);
    ins->context = NULL;
}

static int singlenode_join(struct velo_instance *ins,
                           char node_id[VELO_NODE_ID_MAX])
{
    struct singlenode *sn = ins->context;
    sn->joined = 1;
    memcpy(node_id, sn->node_id, VELO_NODE_ID_MAX);
    return VELO_OK;
}

static int singlenode_leave(struct velo_instance *ins)
{
    struct singlenode *sn = ins->context;
    sn->joined = 0;
    return VELO_OK;
}

static int singlenode_leader(struct velo_instance *ins,
                             char node_id[VELO_NODE_ID_MAX])
{
    struct singlenode *sn = ins->context;
    if (!sn->joined) {
        return VELO_ERR; /* no cluster, no leader */
    }
    memcpy(node_id, sn->node_id, VELO_NODE_ID_MAX);
    return 1;
}

static int singlenode_assignments(struct velo_instance *ins, const char *job,
                                  struct velo_assignment *out, size_t max)
{
    struct singlenode *sn = ins->context;
    if (!sn->joined || job == NULL) {
        return VELO_ERR;
    }
    if (max == 0) {
        return 0;
    }
    /* One node owns all partitions of every source of the job. */
    out[0].job = job;
    out[0].source = "*";
    out[0].partition = -1;
    return 1;
}

const struct velo_cluster_vtable velo_singlenode_vtable = {
    .size = sizeof(struct velo_cluster_vtable),
    .create = singlenode_create,
    .destroy = singlenode_destroy,
    .join = singlenode_join,
    .leave = singlenode_leave,
    .leader = singlenode_leader,
    .assignments = singlenode_assignments,
};

/* --- Choice -------------------------------------------------------------- */

struct velo_coordinator {
    struct velo_instance ins;
    const struct velo_cluster_vtable *vt;
    char name[64];
    char label[80];
};

struct velo_coordinator *velo_coordinator_create(
    const struct velo_host_api *host, const struct velo_plugins *plugins)
{
    struct velo_coordinator *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    const struct velo_plugin_entry *chosen = NULL;
    size_t n = plugins != NULL ? velo_plugins_count(plugins) : 0;
    for (size_t i = 0; i < n; i++) {
        const struct velo_plugin_entry *e = velo_plugins_at(plugins, i);
        if (e->state == VELO_PLUGIN_LOADED &&
            e->kind == VELO_PLUGIN_CLUSTER) {
            if (chosen == NULL) {
                chosen = e;
            } else {
                velo_log_warn("cluster: plugin %s ignored: %s is already "
                              "the coordinator", e->name, chosen->name);
            }
        }
    }
    const void *config = NULL;
    if (chosen != NULL) {
        c->vt = chosen->desc->vtable;
        snprintf(c->name, sizeof(c->name), "%s", chosen->name);
        config = chosen->config;
    } else {
        c->vt = &velo_singlenode_vtable;
        snprintf(c->name, sizeof(c->name), "singlenode");
    }
    snprintf(c->label, sizeof(c->label), "cluster:%s", c->name);
    c->ins.host = host;
    c->ins.name = c->label;
    if (c->vt->create != NULL && c->vt->create(&c->ins, config) != VELO_OK) {
        velo_log_error("cluster: coordinator %s failed to start", c->name);
        free(c);
        errno = EINVAL;
        return NULL;
    }
    return c;
}

void velo_coordinator_destroy(struct velo_coordinator *c)
{
    if (c == NULL) {
        return;
    }
    if (c->vt->destroy != NULL) {
        c->vt->destroy(&c->ins);
    }
    free(c);
}

const char *velo_coordinator_name(const struct velo_coordinator *c)
{
    return c->name;
}

int velo_coordinator_join(struct velo_coordinator *c,
                          char node_id[VELO_NODE_ID_MAX])
{
    return c->vt->join(&c->ins, node_id);
}

int velo_coordinator_leave(struct velo_coordinator *c)
{
    return c->vt->leave(&c->ins);
}

int velo_coordinator_leader(struct velo_coordinator *c,
                            char node_id[VELO_NODE_ID_MAX])
{
    return c->vt->leader(&c->ins, node_id);
}

int velo_coordinator_assignments(struct velo_coordinator *c, const char *job,
                                 struct velo_assignment *out, size_t max)
{
    return c->vt->assignments(&c->ins, job, out, max);
}
