/*
 * The Connector registry: the built-in connectors (file, stdin, stdout,
 * through the same SDK vtable plugins use) plus every loaded Connector
 * plugin. The engine resolves a source or sink by its '<name>.type'
 * property ("file_source", "kafka_sink") or by the scheme of a URI in
 * FROM/INTO ("file:///data/t.csv", "kafka://host:9092/topic"), never by
 * hard-coded names.
 */
#ifndef VELO_CONNECTORS_REGISTRY_H
#define VELO_CONNECTORS_REGISTRY_H

#include <stddef.h>

#include <velo/velo.h>

struct velo_plugins;

struct velo_connector_ref {
    const char *name; /* "file", "stdin", "kafka": the scheme */
    const struct velo_connector_vtable *vt;
    /* Per-instance settings, filled from the WITH properties of one
     * source or sink (prefix removed) by velo_connector_config_fill. */
    const struct velo_config_map *config_map;
    size_t config_size;
    int builtin;
};

struct velo_connectors;

/** Built-ins plus the loaded Connector plugins of `plugins` (may be
 *  NULL). A plugin whose scheme clashes with a built-in is skipped with a
 *  warning. @return NULL and errno. */
struct velo_connectors *velo_connectors_create(
    const struct velo_plugins *plugins);
void velo_connectors_destroy(struct velo_connectors *c);

/** By type: "<scheme>_source" or "<scheme>_sink"; sets *is_source.
 *  @return NULL when unknown. */
const struct velo_connector_ref *
velo_connectors_by_type(const struct velo_connectors *c, const char *type,
                        int *is_source);
/** By URI scheme ("file", "kafka"; "stdin"/"stdout" as bare words). */
const struct velo_connector_ref *
velo_connectors_by_scheme(const struct velo_connectors *c,
                          const char *scheme);
/** Every valid type name ("file_source", ...) for did-you-mean hints.
 *  @return count written; strings borrowed. */
size_t velo_connectors_type_names(const struct velo_connectors *c,
                                  const char **out, size_t max);

/**
 * Fill a config struct for one instance from its properties using the
 * connector's config map (defaults first). Properties the map does not
 * declare are errors unless `passthrough_prefix` matches them (NULL: the
 * connector's own "<scheme>." prefix, e.g. "kafka." for librdkafka
 * settings, which the connector reads from ctx->props). On error *bad_key names the
 * property (borrowed from props) so the binder can point at its line.
 * @return VELO_OK with *config_out (free with velo_connector_config_free),
 * or VELO_ERR with err.
 */
int velo_connector_config_fill(const struct velo_connector_ref *ref,
                               const struct velo_property *props,
                               size_t nprops, const char *passthrough_prefix,
                               void **config_out, const char **bad_key,
                               char *err, size_t errlen);
void velo_connector_config_free(const struct velo_connector_ref *ref,
                                void *config);

/** "file:///a/b.csv" -> scheme "file", rest "/a/b.csv". Bare "stdin" and
 *  "stdout" are schemes with an empty rest. @return VELO_OK/VELO_ERR. */
int velo_uri_split(const char *uri, char *scheme, size_t scheme_len,
                   const char **rest);

/** Copy of uri with any password replaced by "***" (for messages). */
void velo_uri_redact(const char *uri, char *out, size_t outlen);

#endif /* VELO_CONNECTORS_REGISTRY_H */
