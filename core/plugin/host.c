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
