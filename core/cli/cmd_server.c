/*
 * velo server: the long-running process. Wires configuration, the reactor,
 * metrics, the license, plugins, the auth store and chains, and the HTTP
 * API together; SIGINT/SIGTERM drain and exit 0, SIGHUP reloads the
 * configuration (or keeps the old one and says why).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "auth/chain.h"
#include "cli/cli.h"
#include "cluster/coordinator.h"
#include "config/config.h"
#include "http/http.h"
#include "obs/metrics.h"
#include "plugin/host.h"
#include "plugin/license.h"
#include "plugin/loader.h"
#include "reactor/reactor.h"
#include "store/authstore.h"
#include "util/log.h"

#define SERVER_ERR_MAX 4096
#define SERVER_DRAIN_POLL_MS 50
#define SERVER_MAX_RETIRED 64

struct server {
    struct velo_cli_common opts;
    struct velo_config cfg;
    /* Configurations replaced by SIGHUP stay alive until exit: modules
     * may hold pointers into the one they were created with, and reloads
     * are rare enough that keeping them costs nothing worth saving. */
    struct velo_config retired[SERVER_MAX_RETIRED];
    size_t n_retired;

    struct velo_reactor *reactor;
    struct velo_metrics *metrics;
    struct velo_license license;
    struct velo_plugins *plugins;
    struct velo_authstore *store;
    struct velo_authchain *auth;
    struct velo_auditchain *audit;
    struct velo_http *http;
    struct velo_coordinator *cluster;
    int cluster_joined;

    struct event *drain_timer;
    struct timespec drain_start;
    int stopping;
    struct velo_metric *reloads_ok;
    struct velo_metric *reloads_failed;
};

static const char server_usage[] =
    "Usage: velo server [options]\n"
    "\n"
    "Run the Velostream server: the HTTP API (/healthz, /readyz, /metrics,\n"
    "/api/*), the plugins found in plugins.dirs, and the worker pool.\n"
    "SIGINT/SIGTERM stop accepting, let in-flight requests finish within\n"
    "server.shutdown_timeout, then exit 0. SIGHUP reloads the configuration\n"
    "and logs what changed, or why the new file was rejected (the running\n"
    "configuration is kept).\n"
    "\n"
    "Options:\n";

/* Metrics are best effort: a series that could not be made is skipped. */
static void metric_inc(struct velo_metric *m, double v)
{
    if (m != NULL) {
        velo_metric_inc(m, v);
    }
}

static void metric_set(struct velo_metric *m, double v)
{
    if (m != NULL) {
        velo_metric_set(m, v);
    }
}

static int64_t elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - since->tv_sec) * 1000 +
           (now.tv_nsec - since->tv_nsec) / 1000000;
}

static void drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;
    size_t inflight = velo_http_inflight(s->http);
    int64_t waited = elapsed_ms(&s->drain_start);
    if (inflight == 0) {
        velo_log_info("shutdown: no request in flight after %lld ms",
                      (long long)waited);
        velo_reactor_stop(s->reactor);
        return;
    }
    if (waited >= s->cfg.shutdown_timeout_ms) {
        velo_log_warn("shutdown: %zu request(s) still in flight after "
                      "server.shutdown_timeout (%lld ms); closing them",
                      inflight, (long long)s->cfg.shutdown_timeout_ms);
        velo_reactor_stop(s->reactor);
        return;
    }
    struct timeval tv = {0, SERVER_DRAIN_POLL_MS * 1000};
    evtimer_add(s->drain_timer, &tv);
}

static void on_stop(void *arg)
{
    struct server *s = arg;
    if (s->stopping) {
        return;
    }
    s->stopping = 1;
    velo_log_info("shutdown: signal received; no longer accepting "
                  "connections, %zu request(s) in flight",
                  velo_http_inflight(s->http));
    velo_http_begin_shutdown(s->http);
    clock_gettime(CLOCK_MONOTONIC, &s->drain_start);
    s->drain_timer = evtimer_new(velo_reactor_main_base(s->reactor),
                                 drain_check, s);
    drain_check(-1, 0, s);
}

/* Keys that only take effect at the next start. */
static void warn_restart_only(const struct velo_config *old,
                              const struct velo_config *cur)
{
    struct {
        const char *key;
        int changed;
    } keys[] = {
        {"server.listen", strcmp(old->listen, cur->listen) != 0},
        {"server.data_dir", strcmp(old->data_dir, cur->data_dir) != 0},
        {"server.workers", old->workers != cur->workers},
        {"server.task_queue_size",
         old->task_queue_size != cur->task_queue_size},
        {"http.tls", old->http_tls_enabled != cur->http_tls_enabled ||
                         (old->http_tls_cert && cur->http_tls_cert &&
                          strcmp(old->http_tls_cert, cur->http_tls_cert)) ||
                         (old->http_tls_key && cur->http_tls_key &&
                          strcmp(old->http_tls_key, cur->http_tls_key))},
        {"plugins", old->n_plugin_dirs != cur->n_plugin_dirs ||
                        old->n_plugin_kv != cur->n_plugin_kv},
        {"license.file",
         (old->license_file == NULL) != (cur->license_file == NULL) ||
             (old->license_file && cur->license_file &&
              strcmp(old->license_file, cur->license_file) != 0)},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (keys[i].changed) {
            velo_log_warn("config reload: %s changed; it takes effect at "
                          "the next start", keys[i].key);
        }
    }
}

static void on_reload(void *arg)
{
    struct server *s = arg;
    char *err = calloc(1, SERVER_ERR_MAX);
    if (err == NULL) {
        velo_log_error("config reload: out of memory; keeping the current "
                       "configuration");
        return;
    }
    const char *path = s->cfg.path;
    velo_log_info("config reload: SIGHUP received, reading %s",
                  path != NULL ? path : "(defaults, environment and flags)");
    struct velo_config next;
    if (velo_config_init(&next) != VELO_OK ||
        velo_config_load(&next, path, NULL, s->opts.sets, s->opts.n_sets, err,
                         SERVER_ERR_MAX) != VELO_OK) {
        velo_log_error("config reload rejected; keeping the current "
                       "configuration:\n%s", err);
        velo_config_free(&next);
        metric_inc(s->reloads_failed, 1);
        free(err);
        return;
    }
    if (s->n_retired == SERVER_MAX_RETIRED) {
        velo_log_error("config reload rejected: more than %d reloads in one "
                       "run; restart the server to reload again",
                       SERVER_MAX_RETIRED);
        velo_config_free(&next);
        metric_inc(s->reloads_failed, 1);
        free(err);
        return;
    }
    char *diff = calloc(1, SERVER_ERR_MAX);
    int changes = diff != NULL ? velo_config_diff(&s->cfg, &next, diff,
                                                  SERVER_ERR_MAX)
                               : 0;
    if (velo_http_reconfigure(s->http, &next, err, SERVER_ERR_MAX) !=
        VELO_OK) {
        velo_log_warn("config reload: %s", err);
    }
    velo_log_set_level(next.log_level);
    velo_log_set_format(next.log_format);
    if (changes == 0) {
        velo_log_info("config reload: no change");
    } else {
        velo_log_info("config reload: %d key(s) changed:\n%s", changes,
                      diff);
        warn_restart_only(&s->cfg, &next);
    }
    s->retired[s->n_retired++] = s->cfg;
    s->cfg = next;
    metric_inc(s->reloads_ok, 1);
    free(diff);
    free(err);
}

static void collect_reactor(struct velo_metrics *m, void *arg)
{
    struct server *s = arg;
    struct velo_metric_family *f = velo_metrics_family(
        m, "velo_task_queue_depth", "Tasks waiting for a worker thread",
        VELO_METRIC_GAUGE, NULL, NULL, 0);
    struct velo_metric *series = f != NULL ? velo_metric_series(f, NULL, 0)
                                           : NULL;
    metric_set(series, (double)velo_reactor_queue_depth(s->reactor));
}

static void register_server_metrics(struct server *s)
{
    struct velo_metrics *m = s->metrics;
    velo_metrics_register_process(m, VELO_VERSION, VELO_GIT_COMMIT);
    velo_metrics_add_collector(m, collect_reactor, s);

    struct velo_metric_family *f = velo_metrics_family(
        m, "velo_config_reloads_total", "Configuration reloads by result",
        VELO_METRIC_COUNTER, "result", NULL, 0);
    const char *ok = "success", *bad = "failure";
    s->reloads_ok = f ? velo_metric_series(f, &ok, 1) : NULL;
    s->reloads_failed = f ? velo_metric_series(f, &bad, 1) : NULL;

    f = velo_metrics_family(m, "velo_license_days_left",
                            "Days until the license expires (absent without "
                            "a usable license)",
                            VELO_METRIC_GAUGE, NULL, NULL, 0);
    if (f != NULL && (s->license.status == VELO_LICENSE_VALID ||
                      s->license.status == VELO_LICENSE_IN_GRACE)) {
        metric_set(velo_metric_series(f, NULL, 0),
                        (double)s->license.days_left);
    }

    f = velo_metrics_family(m, "velo_plugins", "Plugins found, by state",
                            VELO_METRIC_GAUGE, "state", NULL, 0);
    if (f != NULL) {
        size_t counts[3] = {0, 0, 0};
        for (size_t i = 0; i < velo_plugins_count(s->plugins); i++) {
            int st = velo_plugins_at(s->plugins, i)->state;
            if (st >= 0 && st < 3) {
                counts[st]++;
            }
        }
        for (int st = 0; st < 3; st++) {
            const char *name = velo_plugin_state_name(st);
            metric_set(velo_metric_series(f, &name, 1),
                            (double)counts[st]);
        }
    }
}

static void load_license(struct server *s)
{
    memset(&s->license, 0, sizeof(s->license));
    if (s->cfg.license_file == NULL) {
        s->license.status = VELO_LICENSE_MISSING;
        snprintf(s->license.reason, sizeof(s->license.reason),
                 "no license.file configured");
        velo_log_info("license: none configured; open-source features "
                      "only");
        return;
    }
    velo_license_verify_file(s->cfg.license_file, time(NULL), &s->license);
    switch (s->license.status) {
    case VELO_LICENSE_VALID:
        velo_log_info("license: %s for %s, %lld day(s) left",
                      s->license.license_id, s->license.customer,
                      (long long)s->license.days_left);
        break;
    case VELO_LICENSE_IN_GRACE:
        velo_log_warn("license: %s", s->license.reason);
        break;
    default:
        velo_log_warn("license: %s: %s; licensed plugins stay unloaded",
                      s->cfg.license_file, s->license.reason);
        break;
    }
}

static int join_cluster(struct server *s)
{
    s->cluster = velo_coordinator_create(velo_host_api(), s->plugins);
    if (s->cluster == NULL) {
        velo_log_error("cluster: no coordinator could start");
        return VELO_ERR;
    }
    char node[VELO_NODE_ID_MAX] = {0}, leader[VELO_NODE_ID_MAX] = {0};
    int r = velo_coordinator_join(s->cluster, node);
    if (r != VELO_OK && r != VELO_AGAIN) {
        velo_log_error("cluster: %s could not join",
                       velo_coordinator_name(s->cluster));
        return VELO_ERR;
    }
    s->cluster_joined = 1;
    node[VELO_NODE_ID_MAX - 1] = '\0';
    int leads = velo_coordinator_leader(s->cluster, leader);
    leader[VELO_NODE_ID_MAX - 1] = '\0';
    velo_log_info("cluster: %s, node %s, %s",
                  velo_coordinator_name(s->cluster), node,
                  leads == 1   ? "leader"
                  : leads == 0 ? "follower"
                               : "leader unknown yet");
    return VELO_OK;
}

static void server_teardown(struct server *s)
{
    if (s->drain_timer != NULL) {
        event_free(s->drain_timer);
    }
    if (s->http != NULL) {
        velo_http_destroy(s->http);
    }
    if (s->audit != NULL) {
        velo_auditchain_destroy(s->audit);
    }
    if (s->auth != NULL) {
        velo_authchain_destroy(s->auth);
    }
    if (s->store != NULL) {
        velo_authstore_close(s->store);
    }
    if (s->cluster != NULL) {
        if (s->cluster_joined &&
            velo_coordinator_leave(s->cluster) != VELO_OK) {
            velo_log_warn("cluster: leaving failed");
        }
        velo_coordinator_destroy(s->cluster);
    }
    if (s->plugins != NULL) {
        velo_plugins_unload(s->plugins);
    }
    velo_host_bind(NULL, NULL, NULL);
    if (s->reactor != NULL) {
        velo_reactor_destroy(s->reactor);
    }
    if (s->metrics != NULL) {
        velo_metrics_destroy(s->metrics);
    }
    for (size_t i = 0; i < s->n_retired; i++) {
        velo_config_free(&s->retired[i]);
    }
    velo_config_free(&s->cfg);
}

int velo_cmd_server(int argc, char **argv)
{
    struct server *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        fprintf(stderr, "velo server: out of memory\n");
        return VELO_EXIT_FAILURE;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("%s%s", server_usage, velo_cli_common_help);
            free(s);
            return VELO_EXIT_OK;
        }
        int r = velo_cli_common_opt(&s->opts, argc, argv, &i);
        if (r < 0) {
            free(s);
            return VELO_EXIT_USAGE;
        }
        if (r == 0) {
            fprintf(stderr,
                    "velo server: unknown option '%s' (see velo server "
                    "--help)\n",
                    argv[i]);
            free(s);
            return VELO_EXIT_USAGE;
        }
    }
    /* velo_cli_load_config fills cfg (defaults first) on its own. */
    if (velo_cli_load_config(&s->opts, &s->cfg) != VELO_OK) {
        velo_config_free(&s->cfg);
        free(s);
        return VELO_EXIT_FAILURE;
    }

    char err[SERVER_ERR_MAX];
    int rc = VELO_EXIT_FAILURE;
    velo_log_info("velo %s (commit %s) starting", VELO_VERSION,
                  VELO_GIT_COMMIT);

    s->metrics = velo_metrics_create();
    s->reactor = velo_reactor_create((size_t)s->cfg.workers,
                                     (size_t)s->cfg.task_queue_size);
    if (s->metrics == NULL || s->reactor == NULL) {
        velo_log_error("cannot start the reactor: %s", strerror(errno));
        goto out;
    }
    load_license(s);
    velo_host_bind(s->reactor, s->metrics, &s->license);

    s->plugins = velo_plugins_load(&s->cfg, velo_host_api(), &s->license);
    if (s->plugins == NULL) {
        velo_log_error("cannot load plugins: %s", strerror(errno));
        goto out;
    }
    if (join_cluster(s) != VELO_OK) {
        goto out;
    }
    s->store = velo_authstore_open(s->cfg.data_dir,
                                   s->cfg.auth_pbkdf2_iterations, err,
                                   sizeof(err));
    if (s->store == NULL) {
        velo_log_error("auth store: %s", err);
        goto out;
    }
    s->auth = velo_authchain_create(velo_host_api(), s->store, s->reactor,
                                    s->plugins);
    s->audit = velo_auditchain_create(velo_host_api(), s->plugins);
    if (s->auth == NULL || s->audit == NULL) {
        velo_log_error("cannot create the auth chains: %s", strerror(errno));
        goto out;
    }
    register_server_metrics(s);

    struct velo_http_deps deps = {
        .base = velo_reactor_main_base(s->reactor),
        .reactor = s->reactor,
        .metrics = s->metrics,
        .auth = s->auth,
        .audit = s->audit,
        .plugins = s->plugins,
        .license = &s->license,
        .version = VELO_VERSION,
        .commit = VELO_GIT_COMMIT,
    };
    s->http = velo_http_create(&deps, &s->cfg, err, sizeof(err));
    if (s->http == NULL) {
        velo_log_error("http: %s", err);
        goto out;
    }
    if (velo_reactor_signals(s->reactor, on_stop, on_reload, s) != VELO_OK) {
        velo_log_error("cannot install signal handlers");
        goto out;
    }
    /* The host part of server.listen, with the port actually bound (it
     * differs when the configuration asks for port 0). */
    const char *colon = strrchr(s->cfg.listen, ':');
    int hostlen = colon != NULL ? (int)(colon - s->cfg.listen)
                                : (int)strlen(s->cfg.listen);
    velo_log_info("listening on %s://%.*s:%d", s->cfg.http_tls_enabled
                                                   ? "https"
                                                   : "http",
                  hostlen, s->cfg.listen, velo_http_port(s->http));

    if (velo_reactor_run(s->reactor) != VELO_OK) {
        velo_log_error("the main loop failed");
        goto out;
    }
    velo_log_info("stopped");
    rc = VELO_EXIT_OK;
out:
    server_teardown(s);
    free(s);
    return rc;
}
