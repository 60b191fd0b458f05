/*
 * The AuthProvider and AuditSink chains (see chain.h).
 *
 * A request walks the providers in order. Each answers ACCEPT, DENY, NEXT
 * or AGAIN; for AGAIN the walk pauses in a `step` until the provider calls
 * back on the main loop, then resumes (a late NEXT moves on to the next
 * provider). The step is the only per-request allocation.
 *
 * Lifetime: destroy the chains after the main loop has stopped for good.
 * Pending requests are then answered DENY, so every caller still gets its
 * one answer.
 */
#include "auth/chain.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/basic-internal.h"
#include "plugin/loader.h"
#include "store/authstore.h"
#include "util/log.h"

struct provider {
    const struct velo_auth_vtable *vt;
    struct velo_instance ins;
    char name[64];
    int created;
};

struct step {
    struct velo_authchain *c;
    const struct velo_auth_request *req;
    velo_auth_done_fn done;
    void *done_arg;
    size_t idx;
    int in_call;  /* inside a provider's authenticate */
    int answered; /* the provider called back before returning AGAIN */
    int ans_result;
    int ans_has_who;
    struct velo_principal ans_who;
    struct velo_principal out;
    struct step *prev, *next;
};

struct velo_authchain {
    const struct velo_host_api *host;
    struct velo_basic_auth_config basic_cfg;
    struct provider *prov;
    size_t n_prov;
    struct step *waiting; /* steps paused on AGAIN */
    int destroying;
};

/* Does a vtable of `size` bytes carry the member ending at `end`? */
#define VT_HAS(vt, type, member)                                               \
    ((vt)->size >= offsetof(type, member) + sizeof(((type *)0)->member) &&     \
     (vt)->member != NULL)

static int provider_init(struct provider *p, const char *name,
                         const struct velo_auth_vtable *vt,
                         const struct velo_host_api *host, const void *config)
{
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->vt = vt;
    p->ins.host = host;
    p->ins.name = p->name;
    p->ins.context = NULL;
    if (vt->create != NULL && vt->create(&p->ins, config) != VELO_OK) {
        return VELO_ERR;
    }
    p->created = 1;
    return VELO_OK;
}

struct velo_authchain *velo_authchain_create(const struct velo_host_api *host,
                                             struct velo_authstore *store,
                                             struct velo_reactor *reactor,
                                             const struct velo_plugins *plugins)
{
    if (store == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct velo_authchain *c = calloc(1, sizeof(*c));
    size_t n_plugins = plugins != NULL ? velo_plugins_count(plugins) : 0;
    if (c == NULL) {
        return NULL;
    }
    c->prov = calloc(1 + n_plugins, sizeof(*c->prov));
    if (c->prov == NULL) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->host = host;
    c->basic_cfg.store = store;
    c->basic_cfg.reactor = reactor;
    if (provider_init(&c->prov[0], VELO_BASIC_AUTH_NAME,
                      &velo_basic_auth_vtable, host,
                      &c->basic_cfg) != VELO_OK) {
        int e = errno;
        free(c->prov);
        free(c);
        errno = e != 0 ? e : ENOMEM;
        return NULL;
    }
    c->n_prov = 1;
    for (size_t i = 0; i < n_plugins; i++) {
        const struct velo_plugin_entry *e = velo_plugins_at(plugins, i);
        if (e == NULL || e->state != VELO_PLUGIN_LOADED ||
            e->kind != VELO_PLUGIN_AUTH || e->desc == NULL ||
            e->desc->vtable == NULL) {
            continue;
        }
        const struct velo_auth_vtable *vt = e->desc->vtable;
        if (!VT_HAS(vt, struct velo_auth_vtable, authenticate)) {
            velo_log_error("auth: plugin %s has no authenticate callback; "
                           "left out of the auth chain",
                           e->name);
            continue;
        }
        struct provider *p = &c->prov[c->n_prov];
        if (provider_init(p, e->name, vt, host, e->config) != VELO_OK) {
            velo_log_error("auth: plugin %s failed to create its instance; "
                           "left out of the auth chain",
                           e->name);
            memset(p, 0, sizeof(*p));
            continue;
        }
        velo_log_info("auth: provider %s added to the chain", e->name);
        c->n_prov++;
    }
    return c;
}

static void step_unlink(struct velo_authchain *c, struct step *s)
{
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else if (c->waiting == s) {
        c->waiting = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    s->prev = s->next = NULL;
}

static void step_finish(struct step *s, int result,
                        const struct velo_principal *who, const char *prov)
{
    struct velo_principal p;
    memset(&p, 0, sizeof(p));
    if (result == VELO_AUTH_ACCEPT) {
        if (who == NULL || who->name[0] == '\0') {
            velo_log_error("auth: provider %s accepted a request without a "
                           "principal name; denied",
                           prov);
            result = VELO_AUTH_DENY;
        } else {
            p = *who;
            p.name[sizeof(p.name) - 1] = '\0';
            p.roles[sizeof(p.roles) - 1] = '\0';
            p.provider[sizeof(p.provider) - 1] = '\0';
            if (p.provider[0] == '\0') {
                snprintf(p.provider, sizeof(p.provider), "%s", prov);
            }
        }
    } else {
        result = VELO_AUTH_DENY;
    }
    velo_auth_done_fn done = s->done;
    void *arg = s->done_arg;
    free(s);
    done(arg, result, result == VELO_AUTH_ACCEPT ? &p : NULL);
}

static void step_run(struct step *s);

/* A provider's answer to AGAIN. */
static void step_answer(void *arg, int result, const struct velo_principal *who)
{
    struct step *s = arg;
    if (s->in_call) {
        s->answered = 1;
        s->ans_result = result;
        s->ans_has_who = who != NULL;
        if (who != NULL) {
            s->ans_who = *who;
        }
        return;
    }
    struct velo_authchain *c = s->c;
    step_unlink(c, s);
    const char *prov = c->prov[s->idx].name;
    if (result == VELO_AUTH_NEXT && !c->destroying) {
        s->idx++;
        step_run(s);
        return;
    }
    step_finish(s,
                result == VELO_AUTH_ACCEPT ? VELO_AUTH_ACCEPT : VELO_AUTH_DENY,
                who, prov);
}

static void step_run(struct step *s)
{
    struct velo_authchain *c = s->c;
    for (; s->idx < c->n_prov; s->idx++) {
        struct provider *p = &c->prov[s->idx];
        memset(&s->out, 0, sizeof(s->out));
        s->in_call = 1;
        s->answered = 0;
        int r = p->vt->authenticate(&p->ins, s->req, &s->out, step_answer, s);
        s->in_call = 0;
        const struct velo_principal *who = &s->out;
        if (r == VELO_AUTH_AGAIN) {
            if (!s->answered) {
                s->next = c->waiting;
                if (c->waiting != NULL) {
                    c->waiting->prev = s;
                }
                c->waiting = s;
                return;
            }
            r = s->ans_result;
            who = s->ans_has_who ? &s->ans_who : NULL;
        }
        if (r == VELO_AUTH_ACCEPT) {
            step_finish(s, VELO_AUTH_ACCEPT, who, p->name);
            return;
        }
        if (r != VELO_AUTH_NEXT) {
            step_finish(s, VELO_AUTH_DENY, NULL, p->name);
            return;
        }
    }
    step_finish(s, VELO_AUTH_DENY, NULL, "none");
}

void velo_authchain_authenticate(struct velo_authchain *c,
                                 const struct velo_auth_request *req,
                                 velo_auth_done_fn done, void *done_arg)
{
    struct step *s = calloc(1, sizeof(*s));
    if (s == NULL || c->destroying) {
        free(s);
        velo_log_error("auth: %s; request denied",
                       c->destroying ? "the chain is shutting down"
                                     : "out of memory");
        done(done_arg, VELO_AUTH_DENY, NULL);
        return;
    }
    s->c = c;
    s->req = req;
    s->done = done;
    s->done_arg = done_arg;
    step_run(s);
}

struct velo_authstore *velo_authchain_store(const struct velo_authchain *c)
{
    return c->basic_cfg.store;
}

int velo_authchain_authorize(struct velo_authchain *c,
                             const struct velo_principal *who,
                             const char *resource, const char *action)
{
    if (who == NULL || action == NULL) {
        return VELO_AUTH_DENY;
    }
    for (size_t i = 1; i < c->n_prov; i++) {
        struct provider *p = &c->prov[i];
        if (!VT_HAS(p->vt, struct velo_auth_vtable, authorize)) {
            continue;
        }
        int r = p->vt->authorize(&p->ins, who, resource, action);
        if (r == VELO_AUTH_ACCEPT || r == VELO_AUTH_DENY) {
            return r;
        }
    }
    if (velo_auth_has_role(who->roles, "admin")) {
        return VELO_AUTH_ACCEPT;
    }
    if (velo_auth_has_role(who->roles, "viewer") &&
        strcmp(action, "read") == 0) {
        return VELO_AUTH_ACCEPT;
    }
    return VELO_AUTH_DENY;
}

void velo_authchain_destroy(struct velo_authchain *c)
{
    if (c == NULL) {
        return;
    }
    c->destroying = 1;
    /* Providers first: each answers what it still owes (BasicAuth denies
     * its pending password checks). */
    for (size_t i = c->n_prov; i-- > 0;) {
        struct provider *p = &c->prov[i];
        if (p->created && p->vt->destroy != NULL) {
            p->vt->destroy(&p->ins);
        }
        p->created = 0;
    }
    /* Whatever a provider left unanswered is denied now. */
    while (c->waiting != NULL) {
        struct step *s = c->waiting;
        step_unlink(c, s);
        step_finish(s, VELO_AUTH_DENY, NULL, "none");
    }
    free(c->prov);
    free(c);
}

/* ---- audit ------------------------------------------------------------- */

struct sink {
    const struct velo_audit_vtable *vt;
    struct velo_instance ins;
    char name[64];
    int created;
    struct velo_metric *failures;
    unsigned long long n_failures;
};

struct velo_auditchain {
    const struct velo_host_api *host;
    struct sink *sinks;
    size_t n_sinks;
};

/* NoOpAudit: always present, so the chain is never empty; it drops the
 * event (a deployment that needs a trail loads an AuditSink plugin). */
static int noop_log(struct velo_instance *ins,
                    const struct velo_audit_event *ev)
{
    (void)ins;
    (void)ev;
    return VELO_OK;
}

static const struct velo_audit_vtable noop_audit_vtable = {
    .size = (uint32_t)sizeof(struct velo_audit_vtable),
    .create = NULL,
    .destroy = NULL,
    .log = noop_log,
};

static int sink_init(struct sink *k, const char *name,
                     const struct velo_audit_vtable *vt,
                     const struct velo_host_api *host, const void *config)
{
    snprintf(k->name, sizeof(k->name), "%s", name);
    k->vt = vt;
    k->ins.host = host;
    k->ins.name = k->name;
    if (VT_HAS(vt, struct velo_audit_vtable, create) &&
        vt->create(&k->ins, config) != VELO_OK) {
        return VELO_ERR;
    }
    k->created = 1;
    if (VELO_HOST_HAS(host, metric_counter)) {
        char labels[96];
        snprintf(labels, sizeof(labels), "sink=%s", name);
        k->failures = host->metric_counter(
            "velo_audit_failures_total",
            "Audit events an AuditSink failed to record", labels);
    }
    return VELO_OK;
}

struct velo_auditchain *
velo_auditchain_create(const struct velo_host_api *host,
                       const struct velo_plugins *plugins)
{
    struct velo_auditchain *c = calloc(1, sizeof(*c));
    size_t n_plugins = plugins != NULL ? velo_plugins_count(plugins) : 0;
    if (c == NULL) {
        return NULL;
    }
    c->sinks = calloc(1 + n_plugins, sizeof(*c->sinks));
    if (c->sinks == NULL) {
        free(c);
        errno = ENOMEM;
        return NULL;
    }
    c->host = host;
    sink_init(&c->sinks[0], "noop", &noop_audit_vtable, host, NULL);
    c->n_sinks = 1;
    for (size_t i = 0; i < n_plugins; i++) {
        const struct velo_plugin_entry *e = velo_plugins_at(plugins, i);
        if (e == NULL || e->state != VELO_PLUGIN_LOADED ||
            e->kind != VELO_PLUGIN_AUDIT || e->desc == NULL ||
            e->desc->vtable == NULL) {
            continue;
        }
        const struct velo_audit_vtable *vt = e->desc->vtable;
        if (!VT_HAS(vt, struct velo_audit_vtable, log)) {
            velo_log_error("audit: plugin %s has no log callback; left out "
                           "of the audit chain",
                           e->name);
            continue;
        }
        struct sink *k = &c->sinks[c->n_sinks];
        if (sink_init(k, e->name, vt, host, e->config) != VELO_OK) {
            velo_log_error("audit: plugin %s failed to create its instance; "
                           "left out of the audit chain",
                           e->name);
            memset(k, 0, sizeof(*k));
            continue;
        }
        velo_log_info("audit: sink %s added to the chain", e->name);
        c->n_sinks++;
    }
    return c;
}

void velo_auditchain_log(struct velo_auditchain *c,
                         const struct velo_audit_event *ev)
{
    if (c == NULL || ev == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n_sinks; i++) {
        struct sink *k = &c->sinks[i];
        if (k->vt->log(&k->ins, ev) != VELO_OK) {
            k->n_failures++;
            if (k->failures != NULL && VELO_HOST_HAS(c->host, metric_add)) {
                c->host->metric_add(k->failures, 1);
            }
            /* Say it once, then every thousandth time: a broken sink must
             * not flood the log. */
            if (k->n_failures == 1 || k->n_failures % 1000 == 0) {
                velo_log_error("audit: sink %s failed to record an event "
                               "(%llu failure(s) so far)",
                               k->name, k->n_failures);
            }
        }
    }
}

void velo_auditchain_destroy(struct velo_auditchain *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = c->n_sinks; i-- > 0;) {
        struct sink *k = &c->sinks[i];
        if (k->created && VT_HAS(k->vt, struct velo_audit_vtable, destroy)) {
            k->vt->destroy(&k->ins);
        }
    }
    free(c->sinks);
    free(c);
}
