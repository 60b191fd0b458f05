/*
 * The cluster coordinator: SingleNode semantics, and the choice of a
 * ClusterCoordinator plugin over it when one loads.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/coordinator.h"
#include "config/config.h"
#include "plugin/host.h"
#include "plugin/loader.h"
#include "testutil.h"

static void test_singlenode_before_join(void)
{
    struct velo_coordinator *c = velo_coordinator_create(velo_host_api(),
                                                         NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(velo_coordinator_name(c), "singlenode");
    char leader[VELO_NODE_ID_MAX];
    CU_ASSERT_EQUAL(velo_coordinator_leader(c, leader), VELO_ERR);
    struct velo_assignment a[2];
    CU_ASSERT_EQUAL(velo_coordinator_assignments(c, "job", a, 2), VELO_ERR);
    velo_coordinator_destroy(c);
}

static void test_singlenode_leads_and_owns_everything(void)
{
    struct velo_coordinator *c = velo_coordinator_create(velo_host_api(),
                                                         NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    char node[VELO_NODE_ID_MAX], leader[VELO_NODE_ID_MAX];
    CU_ASSERT_EQUAL(velo_coordinator_join(c, node), VELO_OK);
    CU_ASSERT_EQUAL(velo_coordinator_leader(c, leader), 1);
    CU_ASSERT_STRING_EQUAL(node, leader);
    char pid[32];
    snprintf(pid, sizeof(pid), "-%ld", (long)getpid());
    CU_ASSERT_PTR_NOT_NULL(strstr(node, pid));

    struct velo_assignment a[4];
    CU_ASSERT_EQUAL(velo_coordinator_assignments(c, "orders", a, 4), 1);
    CU_ASSERT_STRING_EQUAL(a[0].job, "orders");
    CU_ASSERT_EQUAL(a[0].partition, -1);
    CU_ASSERT_EQUAL(velo_coordinator_assignments(c, "orders", a, 0), 0);

    CU_ASSERT_EQUAL(velo_coordinator_leave(c), VELO_OK);
    CU_ASSERT_EQUAL(velo_coordinator_leader(c, leader), VELO_ERR);
    velo_coordinator_destroy(c);
}

/* A ClusterCoordinator plugin, when loaded, replaces SingleNode. */
static void test_plugin_coordinator_is_chosen(void)
{
    char *dir = tu_tmpdir();
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char src[512], dst[512];
    snprintf(src, sizeof(src), "%s/cluster_static.so",
             tu_env("VELO_FIXTURE_DIR"));
    snprintf(dst, sizeof(dst), "%s/cluster_static.so", dir);
    size_t len = 0;
    char *so = tu_read_file(src, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(so);
    CU_ASSERT_EQUAL_FATAL(tu_write_file(dst, so, len), 0);
    free(so);

    struct velo_config cfg;
    CU_ASSERT_EQUAL_FATAL(velo_config_init(&cfg), VELO_OK);
    char set[600];
    snprintf(set, sizeof(set), "plugins.dirs=%s", dir);
    const char *sets[] = {set, "plugins.config.cluster_static.node=n7"};
    char err[1024];
    int rc = velo_config_load(&cfg, NULL, (char *const[]){NULL}, sets, 2, err,
                              sizeof(err));
    CU_ASSERT_EQUAL_FATAL(rc, VELO_OK);

    struct velo_plugins *p = velo_plugins_load(&cfg, velo_host_api(), NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    const struct velo_plugin_entry *e = velo_plugins_find(p, "cluster_static");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->state, VELO_PLUGIN_LOADED);

    struct velo_coordinator *c = velo_coordinator_create(velo_host_api(), p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(velo_coordinator_name(c), "cluster_static");
    char node[VELO_NODE_ID_MAX], leader[VELO_NODE_ID_MAX];
    CU_ASSERT_EQUAL(velo_coordinator_join(c, node), VELO_OK);
    CU_ASSERT_STRING_EQUAL(node, "n7");
    /* The fixture says node "n1" leads, so this node follows. */
    CU_ASSERT_EQUAL(velo_coordinator_leader(c, leader), 0);
    CU_ASSERT_STRING_EQUAL(leader, "n1");
    struct velo_assignment a[8];
    CU_ASSERT_EQUAL(velo_coordinator_assignments(c, "j", a, 8), 2);
    CU_ASSERT_EQUAL(a[0].partition, 0);
    CU_ASSERT_EQUAL(a[1].partition, 2);
    CU_ASSERT_EQUAL(velo_coordinator_leave(c), VELO_OK);
    velo_coordinator_destroy(c);
    velo_plugins_unload(p);
    velo_config_free(&cfg);
    tu_rmrf(dir);
    free(dir);
}

int main(void)
{
    CU_initialize_registry();
    CU_pSuite s = CU_add_suite("cluster", NULL, NULL);
    CU_add_test(s, "singlenode before join", test_singlenode_before_join);
    CU_add_test(s, "singlenode leads and owns everything",
                test_singlenode_leads_and_owns_everything);
    CU_add_test(s, "a coordinator plugin is chosen",
                test_plugin_coordinator_is_chosen);
    return tu_run_all();
}
