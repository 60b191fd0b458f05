/*
 * The Connector registry, per-instance config filling, and URI helpers.
 *
 * Built-ins are registered exactly as plugins are: a scheme, a vtable and
 * a config map. The engine never names a connector; it resolves
 * '<name>.type' or a URI's scheme here.
 */
#include "connectors/registry.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connectors/builtin.h"
#include "plugin/configmap.h"
#include "plugin/loader.h"
#include "util/log.h"

struct velo_connectors {
    struct velo_connector_ref *refs;
    size_t n;
    char **types; /* "file_source", ... */
    size_t ntypes;
};

static uint32_t ref_flags(const struct velo_connector_ref *r)
{
    uint32_t f = r->vt->flags;
    if (f == 0) {
        /* A vtable that leaves flags 0 says it through its callbacks. */
        f |= r->vt->source_create != NULL ? VELO_CONNECTOR_SOURCE : 0;
        f |= r->vt->sink_create != NULL ? VELO_CONNECTOR_SINK : 0;
    }
    if (r->vt->source_create == NULL || r->vt->source_read == NULL) {
        f &= ~(uint32_t)VELO_CONNECTOR_SOURCE;
    }
    if (r->vt->sink_create == NULL || r->vt->sink_write == NULL) {
        f &= ~(uint32_t)VELO_CONNECTOR_SINK;
    }
    return f;
}

static const struct velo_connector_ref *find(const struct velo_connectors *c,
                                             const char *name, size_t len)
{
    for (size_t i = 0; c != NULL && i < c->n; i++) {
        if (strlen(c->refs[i].name) == len &&
            strncasecmp(c->refs[i].name, name, len) == 0) {
            return &c->refs[i];
        }
    }
    return NULL;
}

static int add_ref(struct velo_connectors *c, size_t *cap, const char *name,
                   const struct velo_connector_vtable *vt,
                   const struct velo_config_map *map, size_t size, int builtin)
{
    if (c->n == *cap) {
        size_t ncap = *cap == 0 ? 8 : *cap * 2;
        struct velo_connector_ref *nr = realloc(c->refs, ncap * sizeof(*nr));
        if (nr == NULL) {
            return VELO_ERR;
        }
        c->refs = nr;
        *cap = ncap;
    }
    struct velo_connector_ref *r = &c->refs[c->n++];
    r->name = name;
    r->vt = vt;
    r->config_map = map;
    r->config_size = size;
    r->builtin = builtin;
    return VELO_OK;
}

static int add_type(struct velo_connectors *c, const char *name,
                    const char *suffix)
{
    size_t len = strlen(name) + strlen(suffix) + 1;
    char *t = malloc(len);
    char **nt = realloc(c->types, (c->ntypes + 1) * sizeof(*nt));
    if (t == NULL || nt == NULL) {
        free(t);
        if (nt != NULL) {
            c->types = nt;
        }
        return VELO_ERR;
    }
    snprintf(t, len, "%s%s", name, suffix);
    c->types = nt;
    c->types[c->ntypes++] = t;
    return VELO_OK;
}

static int valid_scheme(const char *s)
{
    if (s == NULL || !isalpha((unsigned char)s[0])) {
        return 0;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' &&
            *p != '.' && *p != '_') {
            return 0;
        }
    }
    return strlen(s) < 32;
}

struct velo_connectors *
velo_connectors_create(const struct velo_plugins *plugins)
{
    struct velo_connectors *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    size_t cap = 0;
    if (add_ref(c, &cap, "file", &velo_file_connector, velo_file_config_map,
                velo_file_config_size, 1) != VELO_OK ||
        add_ref(c, &cap, "stdin", &velo_stdin_connector, velo_stdin_config_map,
                velo_stdin_config_size, 1) != VELO_OK ||
        add_ref(c, &cap, "stdout", &velo_stdout_connector,
                velo_stdout_config_map, velo_stdout_config_size,
                1) != VELO_OK ||
        add_ref(c, &cap, "gen", &velo_gen_connector, velo_gen_config_map,
                velo_gen_config_size, 1) != VELO_OK) {
        velo_connectors_destroy(c);
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < velo_plugins_count(plugins); i++) {
        const struct velo_plugin_entry *e = velo_plugins_at(plugins, i);
        if (e == NULL || e->state != VELO_PLUGIN_LOADED ||
            e->kind != VELO_PLUGIN_CONNECTOR || e->desc == NULL ||
            e->desc->vtable == NULL) {
            continue;
        }
        const struct velo_connector_vtable *vt = e->desc->vtable;
        const char *scheme = vt->scheme != NULL ? vt->scheme : e->name;
        if (!valid_scheme(scheme)) {
            velo_log_write(VELO_LOG_WARN, "connectors",
                           "plugin %s: scheme \"%.40s\" is not a valid URI "
                           "scheme (letters, digits, '+', '-', '.'); its "
                           "connector is not registered",
                           e->name, scheme);
            continue;
        }
        const struct velo_connector_ref *clash =
            find(c, scheme, strlen(scheme));
        if (clash != NULL) {
            velo_log_write(VELO_LOG_WARN, "connectors",
                           "plugin %s: scheme '%s' is already taken by %s; "
                           "its connector is not registered",
                           e->name, scheme,
                           clash->builtin ? "a built-in connector"
                                          : "another plugin");
            continue;
        }
        if (add_ref(c, &cap, scheme, vt, e->desc->config_map,
                    e->desc->config_size, 0) != VELO_OK) {
            velo_connectors_destroy(c);
            errno = ENOMEM;
            return NULL;
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        uint32_t f = ref_flags(&c->refs[i]);
        if (((f & VELO_CONNECTOR_SOURCE) &&
             add_type(c, c->refs[i].name, "_source") != VELO_OK) ||
            ((f & VELO_CONNECTOR_SINK) &&
             add_type(c, c->refs[i].name, "_sink") != VELO_OK)) {
            velo_connectors_destroy(c);
            errno = ENOMEM;
            return NULL;
        }
    }
    return c;
}

void velo_connectors_destroy(struct velo_connectors *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->ntypes; i++) {
        free(c->types[i]);
    }
    free(c->types);
    free(c->refs);
    free(c);
}

const struct velo_connector_ref *
velo_connectors_by_type(const struct velo_connectors *c, const char *type,
                        int *is_source)
{
    if (c == NULL || type == NULL) {
        return NULL;
    }
    size_t len = strlen(type);
    static const struct {
        const char *suffix;
        uint32_t flag;
    } kinds[] = {{"_source", VELO_CONNECTOR_SOURCE},
                 {"_sink", VELO_CONNECTOR_SINK}};
    for (size_t k = 0; k < 2; k++) {
        size_t sl = strlen(kinds[k].suffix);
        if (len <= sl || strcasecmp(type + len - sl, kinds[k].suffix) != 0) {
            continue;
        }
        const struct velo_connector_ref *r = find(c, type, len - sl);
        if (r == NULL || !(ref_flags(r) & kinds[k].flag)) {
            return NULL;
        }
        if (is_source != NULL) {
            *is_source = kinds[k].flag == VELO_CONNECTOR_SOURCE;
        }
        return r;
    }
    return NULL;
}

const struct velo_connector_ref *
velo_connectors_by_scheme(const struct velo_connectors *c, const char *scheme)
{
    if (scheme == NULL) {
        return NULL;
    }
    return find(c, scheme, strlen(scheme));
}

size_t velo_connectors_type_names(const struct velo_connectors *c,
                                  const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; c != NULL && i < c->ntypes && n < max; i++) {
        out[n++] = c->types[i];
    }
    return n;
}

/* ---- config ------------------------------------------------------------- */

/*
 * Properties the engine itself reads (the type and the format options)
 * arrive with the connector's; they are not the connector's to refuse,
 * unless its own map declares them.
 */
static int engine_key(const char *key)
{
    static const char *const exact[] = {"type", "format", "schema", NULL};
    static const char *const prefixes[] = {"csv.", "json.", "record.", NULL};
    for (size_t i = 0; exact[i] != NULL; i++) {
        if (strcmp(key, exact[i]) == 0) {
            return 1;
        }
    }
    for (size_t i = 0; prefixes[i] != NULL; i++) {
        if (strncmp(key, prefixes[i], strlen(prefixes[i])) == 0) {
            return 1;
        }
    }
    return 0;
}

static int map_declares(const struct velo_config_map *map, const char *key)
{
    size_t n = velo_configmap_count(map);
    for (size_t i = 0; i < n && i < VELO_CONFIGMAP_MAX_ENTRIES; i++) {
        if (strcmp(map[i].name, key) == 0) {
            return 1;
        }
    }
    return 0;
}

int velo_connector_config_fill(const struct velo_connector_ref *ref,
                               const struct velo_property *props, size_t nprops,
                               const char *passthrough_prefix,
                               void **config_out, const char **bad_key,
                               char *err, size_t errlen)
{
    *config_out = NULL;
    if (bad_key != NULL) {
        *bad_key = NULL;
    }
    struct velo_configmap_item *items = calloc(nprops + 1, sizeof(*items));
    size_t *from = calloc(nprops + 1, sizeof(*from));
    if (items == NULL || from == NULL) {
        free(items);
        free(from);
        snprintf(err, errlen, "out of memory");
        return VELO_ERR;
    }
    size_t n = 0;
    for (size_t i = 0; i < nprops; i++) {
        if (props[i].key == NULL ||
            (engine_key(props[i].key) &&
             !map_declares(ref->config_map, props[i].key))) {
            continue;
        }
        items[n].key = props[i].key;
        items[n].value = props[i].value;
        items[n].where = NULL;
        from[n++] = i;
    }
    /* By default a connector's own scheme is its passthrough prefix:
     * 'x.kafka.sasl.mechanism' reaches the kafka connector as is, for it
     * to hand to its client library (it reads them from ctx->props). */
    char own_prefix[64];
    if (passthrough_prefix == NULL && ref->name != NULL) {
        snprintf(own_prefix, sizeof(own_prefix), "%.60s.", ref->name);
        passthrough_prefix = own_prefix;
    }
    char owner[96];
    snprintf(owner, sizeof(owner), "the %.40s connector", ref->name);
    const struct velo_configmap_words words = {"property", "", owner};
    char *why = NULL;
    size_t bad = (size_t)-1;
    int rc =
        velo_configmap_fill(ref->config_map, ref->config_size, &words, items, n,
                            passthrough_prefix, config_out, &why, &bad);
    if (rc != VELO_OK) {
        snprintf(err, errlen, "%s", why != NULL ? why : "out of memory");
        if (bad_key != NULL && bad != (size_t)-1) {
            *bad_key = props[from[bad]].key;
        }
    } else if (*config_out == NULL && ref->config_size == 0) {
        /* A connector without settings still gets a non-NULL config so
         * callers can tell "filled" from "failed". */
        *config_out = calloc(1, 1);
        if (*config_out == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = VELO_ERR;
        }
    }
    free(why);
    free(items);
    free(from);
    return rc;
}

void velo_connector_config_free(const struct velo_connector_ref *ref,
                                void *config)
{
    if (config == NULL) {
        return;
    }
    if (ref->config_size == 0) {
        free(config);
        return;
    }
    velo_configmap_free(ref->config_map, config);
}

/* ---- URIs --------------------------------------------------------------- */

int velo_uri_split(const char *uri, char *scheme, size_t scheme_len,
                   const char **rest)
{
    if (uri == NULL || scheme == NULL || scheme_len == 0) {
        return VELO_ERR;
    }
    const char *sep = strstr(uri, "://");
    size_t len;
    if (sep != NULL) {
        len = (size_t)(sep - uri);
        *rest = sep + 3;
    } else {
        len = strlen(uri);
        if (!((len == 5 && strncasecmp(uri, "stdin", 5) == 0) ||
              (len == 6 && strncasecmp(uri, "stdout", 6) == 0))) {
            return VELO_ERR;
        }
        *rest = uri + len;
    }
    if (len == 0 || len >= scheme_len || !isalpha((unsigned char)uri[0])) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < len; i++) {
        char ch = uri[i];
        if (!isalnum((unsigned char)ch) && ch != '+' && ch != '-' &&
            ch != '.' && ch != '_') {
            return VELO_ERR;
        }
        scheme[i] = (char)tolower((unsigned char)ch);
    }
    scheme[len] = '\0';
    return VELO_OK;
}

/* Query parameters whose values are secrets. */
static int secret_param(const char *k, size_t n)
{
    static const char *const names[] = {"password", "passwd", "pass",
                                        "secret",   "token",  "sasl.password",
                                        "api_key",  "apikey", NULL};
    for (size_t i = 0; names[i] != NULL; i++) {
        if (strlen(names[i]) == n && strncasecmp(k, names[i], n) == 0) {
            return 1;
        }
    }
    return 0;
}

void velo_uri_redact(const char *uri, char *out, size_t outlen)
{
    if (outlen == 0) {
        return;
    }
    out[0] = '\0';
    if (uri == NULL) {
        return;
    }
    size_t o = 0;
#define PUT(c)                                                                 \
    do {                                                                       \
        if (o + 1 < outlen) {                                                  \
            out[o++] = (c);                                                    \
        }                                                                      \
    } while (0)
    const char *p = uri;
    const char *sep = strstr(uri, "://");
    if (sep != NULL) {
        const char *auth = sep + 3;
        size_t alen = strcspn(auth, "/?#");
        const char *at = NULL;
        for (size_t i = 0; i < alen; i++) {
            if (auth[i] == '@') {
                at = auth + i;
            }
        }
        const char *colon = NULL;
        if (at != NULL) {
            colon = memchr(auth, ':', (size_t)(at - auth));
        }
        for (; p < auth; p++) {
            PUT(*p);
        }
        if (colon != NULL) {
            for (; p <= colon; p++) {
                PUT(*p);
            }
            PUT('*');
            PUT('*');
            PUT('*');
            p = at;
        }
    }
    /* The rest, with secret query values hidden. */
    int in_query = 0;
    while (*p != '\0') {
        if (*p == '?' || (*p == '&' && in_query)) {
            in_query = 1;
            PUT(*p);
            p++;
            size_t klen = strcspn(p, "=&#");
            int secret = p[klen] == '=' && secret_param(p, klen);
            for (size_t i = 0; i < klen; i++) {
                PUT(p[i]);
            }
            p += klen;
            if (secret) {
                PUT('=');
                PUT('*');
                PUT('*');
                PUT('*');
                p += 1 + strcspn(p + 1, "&#");
            }
            continue;
        }
        if (*p == '#') {
            in_query = 0;
        }
        PUT(*p);
        p++;
    }
#undef PUT
    out[o] = '\0';
}
