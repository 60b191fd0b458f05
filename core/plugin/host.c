/*
 * The host API table: the only way a plugin reaches the server.
 */
#include "plugin/host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/metrics.h"
#include "plugin/license.h"
#include "reactor/reactor.h"
#include "util/log.h"

static struct velo_reactor *host_reactor;
static struct velo_metrics *host_metrics;
static const struct velo_license *host_license;

void velo_host_bind(struct velo_reactor *r, struct velo_metrics *m,
                    const struct velo_license *lic)
{
    host_reactor = r;
    host_metrics = m;
    host_license = lic;
}

static void host_vlog(const struct velo_instance *ins, int level,
                      const char *fmt, va_list ap)
{
    velo_log_vwrite(level, ins != NULL ? ins->name : "plugin", fmt, ap);
}

static void host_log(const struct velo_instance *ins, int level,
                     const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    host_vlog(ins, level, fmt, ap);
    va_end(ap);
}

static int host_log_enabled(int level)
{
    return level <= velo_log_get_level();
}

static struct event_base *host_main_base(void)
{
    return host_reactor != NULL ? velo_reactor_main_base(host_reactor) : NULL;
}

static int host_submit(velo_task_fn task, velo_task_fn done, void *arg)
{
    if (host_reactor == NULL) {
        return VELO_ERR;
    }
    return velo_reactor_submit(host_reactor, task, done, arg);
}

/* "k=v,k2=v2" -> names "k,k2" and values; returns the count or -1. */
#define HOST_MAX_LABELS 8
static int split_labels(const char *labels, char *names, size_t names_cap,
                        char *store, size_t store_cap,
                        const char *values[HOST_MAX_LABELS])
{
    if (labels == NULL || labels[0] == '\0') {
        names[0] = '\0';
        return 0;
    }
    if (strlen(labels) >= store_cap) {
        return -1;
    }
    strcpy(store, labels);
    names[0] = '\0';
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(store, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        if (eq == NULL || n == HOST_MAX_LABELS) {
            return -1;
        }
        *eq = '\0';
        if (n > 0) {
            strncat(names, ",", names_cap - strlen(names) - 1);
        }
        strncat(names, tok, names_cap - strlen(names) - 1);
        values[n++] = eq + 1;
    }
    return n;
}

/* The connector families (velo_connector_*) are shared by sources, sinks
 * and lookups of every connector, each naming itself with a different
 * label ("source=", "sink=", "lookup="), while a family has one label set:
 * they all get the same set, the labels a series does not have empty
 * (which Prometheus reads as absent, and the exposition leaves out). */
static const char *const connector_labels[] = {"connector", "source",
                                               "sink", "lookup"};
#define N_CONNECTOR_LABELS                                                    \
    (sizeof(connector_labels) / sizeof(*connector_labels))

/* Reorder values[n] (named by "a,b,..." in names) into the canonical
 * connector set. @return its size, or -1 when a name is not in it. */
static int connector_canonical(const char *names, const char **values, int n,
                               char *out_names, size_t cap)
{
    const char *canon[N_CONNECTOR_LABELS] = {"", "", "", ""};
    const char *p = names;
    for (int i = 0; i < n; i++) {
        size_t len = strcspn(p, ",");
        size_t k = 0;
        while (k < N_CONNECTOR_LABELS &&
               (strlen(connector_labels[k]) != len ||
                strncmp(connector_labels[k], p, len) != 0)) {
            k++;
        }
        if (k == N_CONNECTOR_LABELS) {
            return -1;
        }
        canon[k] = values[i];
        p += len + (p[len] == ',');
    }
    out_names[0] = '\0';
    for (size_t k = 0; k < N_CONNECTOR_LABELS; k++) {
        values[k] = canon[k];
        if (k > 0) {
            strncat(out_names, ",", cap - strlen(out_names) - 1);
        }
        strncat(out_names, connector_labels[k], cap - strlen(out_names) - 1);
    }
    return (int)N_CONNECTOR_LABELS;
}

static struct velo_metric *host_metric(const char *name, const char *help,
                                       const char *labels, int type)
{
    if (host_metrics == NULL || name == NULL) {
        return NULL;
    }
    char names[512], store[512];
    const char *values[HOST_MAX_LABELS];
    int n = split_labels(labels, names, sizeof(names), store, sizeof(store),
                         values);
    if (n < 0) {
        return NULL;
    }
    if (strncmp(name, "velo_connector_", 15) == 0) {
        char canon[128];
        int c = connector_canonical(names, values, n, canon, sizeof(canon));
        if (c > 0) {
            snprintf(names, sizeof(names), "%s", canon);
            n = c;
        }
    }
    struct velo_metric_family *f = velo_metrics_family(
        host_metrics, name, help != NULL ? help : name, type,
        n > 0 ? names : NULL, NULL, 0);
    if (f == NULL) {
        return NULL;
    }
    return velo_metric_series(f, values, (size_t)n);
}

static struct velo_metric *host_metric_counter(const char *name,
                                               const char *help,
                                               const char *labels)
{
    return host_metric(name, help, labels, VELO_METRIC_COUNTER);
}

static struct velo_metric *host_metric_gauge(const char *name,
                                             const char *help,
                                             const char *labels)
{
    return host_metric(name, help, labels, VELO_METRIC_GAUGE);
}

static void host_metric_add(struct velo_metric *m, double v)
{
    if (m != NULL) {
        velo_metric_inc(m, v);
    }
}

static void host_metric_set(struct velo_metric *m, double v)
{
    if (m != NULL) {
        velo_metric_set(m, v);
    }
}

static int host_license_has(const char *feature)
{
    return host_license != NULL &&
           velo_license_has_feature(host_license, feature);
}

static const struct velo_host_api host_table = {
    .size = (uint32_t)sizeof(struct velo_host_api),
    .abi_major = VELO_ABI_MAJOR,
    .abi_minor = VELO_ABI_MINOR,
    .server_version = VELO_VERSION,
    .log = host_log,
    .vlog = host_vlog,
    .log_enabled = host_log_enabled,
    .main_base = host_main_base,
    .submit = host_submit,
    .metric_counter = host_metric_counter,
    .metric_gauge = host_metric_gauge,
    .metric_add = host_metric_add,
    .metric_set = host_metric_set,
    .license_has = host_license_has,
};

const struct velo_host_api *velo_host_api(void)
{
    return &host_table;
}
