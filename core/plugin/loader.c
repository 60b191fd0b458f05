/*
 * The plugin loader: find, dlopen, check, configure, license, start.
 *
 * The checks run in the order loader.h lists, cheapest and most basic
 * first, so the message names the first thing that is wrong: a plugin
 * built for another ABI is reported as such, not as a bad vtable. Until
 * the descriptor's version fields and size check out, nothing past them
 * is read, and the plugin is named by its file.
 */
#include "plugin/loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "config/config.h"
#include "util/textbuf.h"
#include "plugin/configmap.h"
#include "plugin/host.h"
#include "plugin/license-internal.h"
#include "plugin/license.h"
#include "util/log.h"

#define LOG_SRC "plugins"
#define NAME_MAX_LEN 63
#define TEXT_MAX 512 /* longest version/description copied */

struct slot {
    struct velo_plugin_entry e;
    int claimed; /* passed the name check: later files may not reuse it */
};

struct velo_plugins {
    struct slot *v;
    size_t n, cap;
};

static const char *const kind_names[] = {NULL,    "connector", "auth",
                                         "audit", "cluster",   "app"};
static const char *const state_names[] = {"loaded", "refused", "failed"};

const char *velo_plugin_kind_name(int kind)
{
    if (kind < 1 || kind > VELO_PLUGIN_KIND_MAX) {
        return "unknown";
    }
    return kind_names[kind];
}

const char *velo_plugin_state_name(int state)
{
    if (state < 0 ||
        (size_t)state >= sizeof(state_names) / sizeof(state_names[0])) {
        return "unknown";
    }
    return state_names[state];
}

/* ------------------------------------------------------------------ */
/* Small text helpers                                                 */
/* ------------------------------------------------------------------ */


static char *dup_bounded(const char *s)
{
    return s != NULL ? strndup(s, TEXT_MAX) : NULL;
}

static int valid_name(const char *s, size_t maxlen)
{
    if (s == NULL) {
        return 0;
    }
    size_t n = strnlen(s, maxlen + 1);
    if (n == 0 || n > maxlen) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* Entries                                                            */
/* ------------------------------------------------------------------ */

static struct slot *slot_add(struct velo_plugins *set, const char *path,
                             const char *stem)
{
    if (set->n == set->cap) {
        size_t cap = set->cap == 0 ? 8 : set->cap * 2;
        struct slot *nv = realloc(set->v, cap * sizeof(*nv));
        if (nv == NULL) {
            return NULL;
        }
        set->v = nv;
        set->cap = cap;
    }
    struct slot *s = &set->v[set->n];
    memset(s, 0, sizeof(*s));
    s->e.path = strdup(path);
    s->e.name = strdup(stem);
    if (s->e.path == NULL || s->e.name == NULL) {
        free(s->e.path);
        free(s->e.name);
        return NULL;
    }
    s->e.state = VELO_PLUGIN_REFUSED;
    set->n++;
    return s;
}

static void refuse(struct velo_plugin_entry *e, const char *fmt, ...)
    VELO_PRINTF(2, 3);
static void refuse(struct velo_plugin_entry *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *why = velo_vstrfmt(fmt, ap);
    va_end(ap);
    free(e->reason);
    e->reason = why;
    e->state = VELO_PLUGIN_REFUSED;
    velo_log_write(VELO_LOG_WARN, LOG_SRC, "%s (%s)",
                   e->reason != NULL ? e->reason : "plugin refused", e->path);
}

/* ------------------------------------------------------------------ */
/* Vtables                                                            */
/* ------------------------------------------------------------------ */

#define END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* The vtable size at ABI 1.0 for each kind: every field a 1.0 plugin has.
 * Fields appended in later minors are read only when the size covers
 * them. */
static size_t vtable_min_size(int kind)
{
    switch (kind) {
    case VELO_PLUGIN_CONNECTOR:
        return END_OF(struct velo_connector_vtable, sink_destroy);
    case VELO_PLUGIN_AUTH:
        return END_OF(struct velo_auth_vtable, authorize);
    case VELO_PLUGIN_AUDIT:
        return END_OF(struct velo_audit_vtable, log);
    case VELO_PLUGIN_CLUSTER:
        return END_OF(struct velo_cluster_vtable, assignments);
    case VELO_PLUGIN_APP:
        return END_OF(struct velo_app_vtable, functions);
    }
    return 0;
}

/* The first required callback missing, or NULL when all are there. */
static const char *vtable_missing(int kind, const void *vt, char *buf,
                                  size_t buflen)
{
    switch (kind) {
    case VELO_PLUGIN_AUTH: {
        const struct velo_auth_vtable *a = vt;
        return a->authenticate == NULL ? "authenticate" : NULL;
    }
    case VELO_PLUGIN_AUDIT: {
        const struct velo_audit_vtable *a = vt;
        return a->log == NULL ? "log" : NULL;
    }
    case VELO_PLUGIN_CLUSTER: {
        const struct velo_cluster_vtable *c = vt;
        return c->join == NULL      ? "join"
               : c->leave == NULL   ? "leave"
               : c->leader == NULL  ? "leader"
               : c->assignments == NULL ? "assignments"
                                        : NULL;
    }
    case VELO_PLUGIN_CONNECTOR: {
        const struct velo_connector_vtable *c = vt;
        int src = c->source_create != NULL && c->source_read != NULL;
        int snk = c->sink_create != NULL && c->sink_write != NULL;
        if ((c->source_create != NULL) != (c->source_read != NULL)) {
            snprintf(buf, buflen, "%s (a source needs both source_create "
                                  "and source_read)",
                     c->source_create == NULL ? "source_create"
                                              : "source_read");
            return buf;
        }
        if ((c->sink_create != NULL) != (c->sink_write != NULL)) {
            snprintf(buf, buflen, "%s (a sink needs both sink_create and "
                                  "sink_write)",
                     c->sink_create == NULL ? "sink_create" : "sink_write");
            return buf;
        }
        if (!src && !snk) {
            return "source_create+source_read or sink_create+sink_write (a "
                   "connector needs a source, a sink, or both)";
        }
        return NULL;
    }
    case VELO_PLUGIN_APP: {
        const struct velo_app_vtable *a = vt;
        if (a->routes == NULL && a->verbs == NULL && a->functions == NULL) {
            return "routes, verbs or functions (an app needs at least one)";
        }
        return NULL;
    }
    }
    return "everything";
}

/* ------------------------------------------------------------------ */
/* Config maps                                                        */
/* ------------------------------------------------------------------ */

/* Where a plugins.config value came from, for messages. */
static void kv_where(const struct velo_config *cfg,
                     const struct velo_config_kv *kv, char *buf,
                     size_t buflen)
{
    if (kv->line > 0) {
        snprintf(buf, buflen, "%s line %d",
                 cfg->path != NULL ? cfg->path : "config", kv->line);
    } else {
        snprintf(buf, buflen, "from the environment or --set");
    }
}

/*
 * Fill the plugin's config struct from its map: defaults, then the
 * plugins.config.<name>.* values. The filling and its messages are
 * configmap.c's, shared with the connectors' WITH properties.
 */
static int config_fill(const struct velo_plugin_descriptor *d,
                       const char *name, const struct velo_config *cfg,
                       void **out, struct velo_textbuf *why)
{
    enum { WHERE_MAX = 600 };
    size_t nkv = cfg != NULL ? cfg->n_plugin_kv : 0;
    struct velo_configmap_item *items = calloc(nkv + 1, sizeof(*items));
    char *where = calloc(nkv + 1, WHERE_MAX);
    *out = NULL;
    if (items == NULL || where == NULL) {
        free(items);
        free(where);
        velo_textbuf_add(why, "out of memory for its config");
        return VELO_ERR;
    }
    size_t n = 0;
    for (size_t i = 0; i < nkv; i++) {
        const struct velo_config_kv *kv = &cfg->plugin_kv[i];
        if (kv->plugin == NULL || kv->key == NULL ||
            strcmp(kv->plugin, name) != 0) {
            continue;
        }
        kv_where(cfg, kv, where + n * WHERE_MAX, WHERE_MAX);
        items[n].key = kv->key;
        items[n].value = kv->value;
        items[n].where = where + n * WHERE_MAX;
        n++;
    }
    char prefix[NAME_MAX_LEN + 32];
    snprintf(prefix, sizeof(prefix), "plugins.config.%.*s.", NAME_MAX_LEN,
             name);
    const struct velo_configmap_words words = {"config key", prefix,
                                               "this plugin"};
    char *msg = NULL;
    int rc = velo_configmap_fill(d->config_map, d->config_size, &words,
                                 items, n, NULL, out, &msg, NULL);
    if (rc != VELO_OK) {
        velo_textbuf_add(why, "%s", msg != NULL ? msg : "out of memory");
    }
    free(msg);
    free(items);
    free(where);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Loading one file                                                   */
/* ------------------------------------------------------------------ */

struct load_ctx {
    struct velo_plugins *set;
    const struct velo_config *cfg;
    const struct velo_host_api *host;
    const struct velo_license *lic;
};

static const struct slot *find_claimed(const struct velo_plugins *set,
                                       const char *name, size_t before)
{
    for (size_t i = 0; i < before; i++) {
        if (set->v[i].claimed && strcmp(set->v[i].e.name, name) == 0) {
            return &set->v[i];
        }
    }
    return NULL;
}

/* Every check from the build signature to the config; the descriptor's
 * version fields and size have been checked. @return VELO_OK or refused. */
static int check_descriptor(struct load_ctx *ctx, size_t idx,
                            const struct velo_plugin_descriptor *d,
                            void **conf)
{
    struct velo_plugin_entry *e = &ctx->set->v[idx].e;
    const char *sig = d->build_signature;
    if (sig == NULL || strcmp(sig, VELO_BUILD_SIGNATURE) != 0) {
        refuse(e, "plugin %s: build signature \"%.100s\", server is \"%s\" "
                  "(built for another data model or ABI; rebuild it with "
                  "this server's SDK)",
               e->name, sig != NULL ? sig : "(none)", VELO_BUILD_SIGNATURE);
        return VELO_ERR;
    }
    if (d->kind < 1 || d->kind > VELO_PLUGIN_KIND_MAX) {
        refuse(e, "plugin %s: unknown kind %d; server knows 1-%d (connector, "
                  "auth, audit, cluster, app)",
               e->name, d->kind, VELO_PLUGIN_KIND_MAX);
        return VELO_ERR;
    }
    const char *kname = velo_plugin_kind_name(d->kind);
    if (d->vtable == NULL) {
        refuse(e, "plugin %s: no vtable for a %s plugin", e->name, kname);
        return VELO_ERR;
    }
    uint32_t vsize;
    memcpy(&vsize, d->vtable, sizeof(vsize));
    size_t vmin = vtable_min_size(d->kind);
    if (vsize < vmin) {
        refuse(e, "plugin %s: %s vtable is %" PRIu32 " bytes, server "
                  "expects at least %zu",
               e->name, kname, vsize, vmin);
        return VELO_ERR;
    }
    char buf[160];
    const char *missing = vtable_missing(d->kind, d->vtable, buf, sizeof(buf));
    if (missing != NULL) {
        refuse(e, "plugin %s: %s vtable is missing required callback %s",
               e->name, kname, missing);
        return VELO_ERR;
    }
    if (!valid_name(d->name, NAME_MAX_LEN)) {
        refuse(e, "plugin %s: invalid name \"%.80s\" (use 1 to %d of a-z, "
                  "0-9, '_' and '-')",
               e->name, d->name != NULL ? d->name : "(none)", NAME_MAX_LEN);
        return VELO_ERR;
    }
    if (d->license_feature != NULL && !valid_name(d->license_feature, 31)) {
        refuse(e, "plugin %s: invalid license feature \"%.80s\" (use 1 to 31 "
                  "of a-z, 0-9, '_' and '-')",
               e->name, d->license_feature);
        return VELO_ERR;
    }
    const struct slot *first = find_claimed(ctx->set, d->name, idx);
    if (first != NULL) {
        refuse(e, "plugin %s: duplicate name: %s already provides it; "
                  "refusing %s",
               e->name, first->e.path, e->path);
        return VELO_ERR;
    }
    ctx->set->v[idx].claimed = 1;

    struct velo_textbuf why = {0};
    if (config_fill(d, d->name, ctx->cfg, conf, &why) != VELO_OK) {
        refuse(e, "plugin %s: config: %s", e->name,
               why.p != NULL ? why.p : "out of memory");
        free(why.p);
        return VELO_ERR;
    }
    free(why.p);
    return VELO_OK;
}

static void load_one(struct load_ctx *ctx, struct slot *s)
{
    struct velo_plugin_entry *e = &s->e;
    size_t idx = (size_t)(s - ctx->set->v);

    dlerror();
    void *dl = dlopen(e->path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *de = dlerror();
        refuse(e, "plugin %s: cannot load: %s", e->name,
               de != NULL ? de : "dlopen failed");
        return;
    }
    dlerror();
    void *sym = dlsym(dl, VELO_PLUGIN_INIT_SYMBOL);
    if (sym == NULL) {
        refuse(e, "plugin %s: no %s symbol (is it a Velostream plugin?)",
               e->name, VELO_PLUGIN_INIT_SYMBOL);
        dlclose(dl);
        return;
    }
    velo_plugin_init_fn init;
    memcpy(&init, &sym, sizeof(init));
    const struct velo_plugin_descriptor *d = init(ctx->host);
    if (d == NULL) {
        refuse(e, "plugin %s: %s returned no descriptor", e->name,
               VELO_PLUGIN_INIT_SYMBOL);
        dlclose(dl);
        return;
    }

    /* The version fields protect the rest: nothing else is read until
     * they and the size say the layout is this server's. */
    if (d->magic != VELO_PLUGIN_MAGIC) {
        refuse(e, "plugin %s: bad magic 0x%016" PRIx64 ", expected 0x%016"
                  PRIx64 " (not a Velostream plugin, or built for another "
                  "product)",
               e->name, d->magic, VELO_PLUGIN_MAGIC);
        dlclose(dl);
        return;
    }
    if (d->abi_major != VELO_ABI_MAJOR || d->abi_minor > VELO_ABI_MINOR) {
        const char *hint =
            d->abi_major > VELO_ABI_MAJOR ? "it needs a newer server"
            : d->abi_major < VELO_ABI_MAJOR
                ? "it was built for an older, incompatible ABI; rebuild it"
                : "it uses features this server does not have; upgrade the "
                  "server or use an older build of the plugin";
        refuse(e, "plugin %s: ABI %u.%u, server provides %d.%d (%s)",
               e->name, (unsigned)d->abi_major, (unsigned)d->abi_minor,
               VELO_ABI_MAJOR, VELO_ABI_MINOR, hint);
        dlclose(dl);
        return;
    }
    if (d->size < sizeof(struct velo_plugin_descriptor)) {
        refuse(e, "plugin %s: descriptor is %" PRIu32 " bytes, server "
                  "expects at least %zu (a corrupt or hand-made descriptor; "
                  "use VELO_PLUGIN_HEADER)",
               e->name, d->size, sizeof(struct velo_plugin_descriptor));
        dlclose(dl);
        return;
    }

    /* From here the descriptor is readable: show what it says it is. */
    if (valid_name(d->name, NAME_MAX_LEN)) {
        char *nm = strdup(d->name);
        if (nm != NULL) {
            free(e->name);
            e->name = nm;
        }
    }
    e->kind = d->kind >= 1 && d->kind <= VELO_PLUGIN_KIND_MAX ? d->kind : 0;
    e->version = dup_bounded(d->version);
    e->description = dup_bounded(d->description);
    e->license_feature = dup_bounded(d->license_feature);

    void *conf = NULL;
    if (check_descriptor(ctx, idx, d, &conf) != VELO_OK) {
        dlclose(dl);
        return;
    }

    if (d->license_feature != NULL) {
        if (!velo_license_has_feature(ctx->lic, d->license_feature)) {
            char why[768];
            velo_license_why_not(ctx->lic, d->license_feature, why,
                                 sizeof(why));
            refuse(e, "plugin %s: needs license feature '%s'; %s", e->name,
                   d->license_feature, why);
            velo_configmap_free(d->config_map, conf);
            dlclose(dl);
            return;
        }
        if (ctx->lic->status == VELO_LICENSE_IN_GRACE) {
            e->license_grace = 1;
            velo_log_write(VELO_LOG_WARN, LOG_SRC,
                           "plugin %s: loading on an expired license: %s",
                           e->name, ctx->lic->reason);
        }
    }

    void *pdata = NULL;
    if (d->start != NULL) {
        int rc = d->start(ctx->host, &pdata);
        if (rc != VELO_OK) {
            struct velo_textbuf t = {0};
            velo_textbuf_add(&t, "plugin %s: start failed (returned %d; see its log "
                         "lines above)",
                     e->name, rc);
            free(e->reason);
            e->reason = t.p;
            e->state = VELO_PLUGIN_FAILED;
            velo_log_write(VELO_LOG_ERROR, LOG_SRC, "%s",
                           t.p != NULL ? t.p : "plugin start failed");
            velo_configmap_free(d->config_map, conf);
            dlclose(dl);
            return;
        }
    }
    e->state = VELO_PLUGIN_LOADED;
    e->desc = d;
    e->dl = dl;
    e->config = conf;
    e->plugin_data = pdata;
    velo_log_write(VELO_LOG_INFO, LOG_SRC, "plugin %s %s (%s) loaded from %s",
                   e->name, e->version != NULL ? e->version : "",
                   velo_plugin_kind_name(d->kind), e->path);
}

/* ------------------------------------------------------------------ */
/* Directories                                                        */
/* ------------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "*.so" regular files directly in `dir`, sorted by name.
 * @return VELO_OK (possibly none) or VELO_ERR on ENOMEM. */
static int list_dir(const char *dir, char ***out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    DIR *dh = opendir(dir);
    if (dh == NULL) {
        if (errno == ENOENT) {
            velo_log_debug("plugin directory %s does not exist; skipped",
                           dir);
        } else {
            velo_log_write(VELO_LOG_WARN, LOG_SRC,
                           "cannot read plugin directory %s: %s", dir,
                           strerror(errno));
        }
        return VELO_OK;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = VELO_OK;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len <= 3 ||
            strcmp(de->d_name + len - 3, ".so") != 0) {
            continue;
        }
        size_t plen = strlen(dir) + 1 + len + 1;
        char *path = malloc(plen);
        if (path == NULL) {
            rc = VELO_ERR;
            break;
        }
        size_t dirlen = strlen(dir);
        snprintf(path, plen, "%s%s%s", dir,
                 dirlen > 0 && dir[dirlen - 1] == '/' ? "" : "/", de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            char **nn = realloc(names, ncap * sizeof(*nn));
            if (nn == NULL) {
                free(path);
                rc = VELO_ERR;
                break;
            }
            names = nn;
            cap = ncap;
        }
        names[n++] = path;
    }
    closedir(dh);
    if (rc != VELO_OK) {
        for (size_t i = 0; i < n; i++) {
            free(names[i]);
        }
        free(names);
        return rc;
    }
    if (n > 1) {
        qsort(names, n, sizeof(*names), cmp_str);
    }
    *out = names;
    *nout = n;
    return VELO_OK;
}

/* "dir/kafka.so" -> "kafka" */
static char *file_stem(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base != NULL ? base + 1 : path;
    size_t len = strlen(base);
    if (len > 3 && strcmp(base + len - 3, ".so") == 0) {
        len -= 3;
    }
    return strndup(base, len);
}

/* Settings for a plugin that is not there are most likely a typo in the
 * plugin's name: say so instead of ignoring them. */
static void warn_orphan_config(const struct velo_plugins *set,
                               const struct velo_config *cfg)
{
    for (size_t i = 0; cfg != NULL && i < cfg->n_plugin_kv; i++) {
        const char *name = cfg->plugin_kv[i].plugin;
        int seen = 0;
        for (size_t k = 0; k < i && !seen; k++) {
            seen = strcmp(cfg->plugin_kv[k].plugin, name) == 0;
        }
        for (size_t k = 0; k < set->n && !seen; k++) {
            seen = strcmp(set->v[k].e.name, name) == 0;
        }
        if (!seen) {
            char where[600];
            kv_where(cfg, &cfg->plugin_kv[i], where, sizeof(where));
            velo_log_write(VELO_LOG_WARN, LOG_SRC,
                           "plugins.config.%s (%s): no plugin named '%s' was "
                           "found in plugins.dirs; these settings are unused",
                           name, where, name);
        }
    }
}

struct velo_plugins *velo_plugins_load(const struct velo_config *cfg,
                                       const struct velo_host_api *host,
                                       const struct velo_license *lic)
{
    struct velo_plugins *set = calloc(1, sizeof(*set));
    if (set == NULL) {
        return NULL;
    }
    struct load_ctx ctx = {set, cfg, host != NULL ? host : velo_host_api(),
                           lic};
    size_t ndirs = cfg != NULL ? cfg->n_plugin_dirs : 0;
    for (size_t d = 0; d < ndirs && d < VELO_CONFIG_MAX_DIRS; d++) {
        if (cfg->plugin_dirs[d] == NULL || cfg->plugin_dirs[d][0] == '\0') {
            continue;
        }
        char **files;
        size_t nfiles;
        if (list_dir(cfg->plugin_dirs[d], &files, &nfiles) != VELO_OK) {
            goto oom;
        }
        int failed = 0;
        for (size_t i = 0; i < nfiles; i++) {
            char *stem = failed ? NULL : file_stem(files[i]);
            struct slot *s = stem != NULL ? slot_add(set, files[i], stem)
                                          : NULL;
            free(stem);
            if (s == NULL) {
                failed = 1;
            } else {
                load_one(&ctx, s);
            }
            free(files[i]);
        }
        free(files);
        if (failed) {
            goto oom;
        }
    }
    warn_orphan_config(set, cfg);
    return set;
oom:
    velo_plugins_unload(set);
    errno = ENOMEM;
    return NULL;
}

void velo_plugins_unload(struct velo_plugins *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = p->n; i-- > 0;) {
        struct velo_plugin_entry *e = &p->v[i].e;
        if (e->state == VELO_PLUGIN_LOADED && e->desc != NULL) {
            if (e->desc->stop != NULL) {
                e->desc->stop(e->plugin_data);
            }
            velo_configmap_free(e->desc->config_map, e->config);
            e->config = NULL;
            e->desc = NULL;
            dlclose(e->dl);
            e->dl = NULL;
        }
        free(e->path);
        free(e->name);
        free(e->version);
        free(e->description);
        free(e->license_feature);
        free(e->reason);
    }
    free(p->v);
    free(p);
}

size_t velo_plugins_count(const struct velo_plugins *p)
{
    return p != NULL ? p->n : 0;
}

const struct velo_plugin_entry *velo_plugins_at(const struct velo_plugins *p,
                                                size_t i)
{
    return p != NULL && i < p->n ? &p->v[i].e : NULL;
}

const struct velo_plugin_entry *
velo_plugins_find(const struct velo_plugins *p, const char *name)
{
    for (size_t i = 0; p != NULL && name != NULL && i < p->n; i++) {
        const struct velo_plugin_entry *e = &p->v[i].e;
        if (e->state == VELO_PLUGIN_LOADED && strcmp(e->name, name) == 0) {
            return e;
        }
    }
    return NULL;
}

static json_t *str_or_null(const char *s)
{
    json_t *v = s != NULL ? json_string(s) : NULL;
    /* A plugin's text that is not UTF-8 is shown as null, not dropped. */
    return v != NULL ? v : json_null();
}

char *velo_plugins_to_json(const struct velo_plugins *p)
{
    json_t *arr = json_array();
    if (arr == NULL) {
        return NULL;
    }
    for (size_t i = 0; p != NULL && i < p->n; i++) {
        const struct velo_plugin_entry *e = &p->v[i].e;
        json_t *o = json_object();
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return NULL;
        }
        json_object_set_new(o, "name", str_or_null(e->name));
        json_object_set_new(o, "version", str_or_null(e->version));
        json_object_set_new(o, "kind",
                            e->kind != 0
                                ? json_string(velo_plugin_kind_name(e->kind))
                                : json_null());
        json_object_set_new(o, "path", str_or_null(e->path));
        json_object_set_new(o, "state",
                            json_string(velo_plugin_state_name(e->state)));
        json_object_set_new(o, "reason", str_or_null(e->reason));
        json_object_set_new(o, "license_feature",
                            str_or_null(e->license_feature));
        json_object_set_new(o, "description", str_or_null(e->description));
        json_object_set_new(o, "grace", json_boolean(e->license_grace));
    }
    char *s = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(arr);
    return s;
}
