/*
 * Config maps (include/velo/plugin.h): checking a map and filling the
 * struct it describes from key/value settings. One implementation serves
 * the plugin loader (plugins.config.<name>.* from velo.yaml, once per
 * plugin) and the connectors (the WITH properties of one source or sink,
 * once per instance), so both accept the same value syntax and word their
 * errors the same way.
 */
#ifndef VELO_CORE_CONFIGMAP_H
#define VELO_CORE_CONFIGMAP_H

#include <stddef.h>

#include <velo/plugin.h>

#define VELO_CONFIGMAP_MAX_ENTRIES 256
#define VELO_CONFIGMAP_MAX_SIZE (1024 * 1024)

/** Entries before the {0} terminator; VELO_CONFIGMAP_MAX_ENTRIES + 1
 *  when there is none within the limit. NULL map: 0. */
size_t velo_configmap_count(const struct velo_config_map *map);

/**
 * Check a map against the struct size it writes into: a terminator, valid
 * key names, known types, every field inside config_size and aligned, no
 * key declared twice. A bad map is its author's bug; the filler must not
 * write outside the struct because of it.
 * @return VELO_OK, or VELO_ERR with a message in err.
 */
int velo_configmap_check(const struct velo_config_map *map, size_t config_size,
                         char *err, size_t errlen);

/* One setting given by the user. Borrowed. */
struct velo_configmap_item {
    const char *key;
    const char *value;
    const char *where; /* "velo.yaml line 5", or NULL when not known */
};

/* How messages name things. */
struct velo_configmap_words {
    const char *noun;   /* "config key", "property" */
    const char *prefix; /* before each key: "plugins.config.kafka.", "" */
    const char *owner;  /* "this plugin", "the file connector" */
};

/**
 * Fill a new struct of config_size bytes: the map's defaults first, then
 * the items (for a key given twice the last one wins). An item the map
 * does not declare is an error unless its key starts with `passthrough`
 * (may be NULL), in which case it is left to the caller. Every problem is
 * described, not only the first, so one edit fixes them all.
 * @return VELO_OK with *out (NULL when config_size is 0), or VELO_ERR
 * with *why (malloc'd, "; "-separated; NULL only when out of memory) and
 * *first_bad the index of the first offending item, or (size_t)-1 when
 * the problem is a missing key or the map itself.
 */
int velo_configmap_fill(const struct velo_config_map *map, size_t config_size,
                        const struct velo_configmap_words *words,
                        const struct velo_configmap_item *items, size_t n,
                        const char *passthrough, void **out, char **why,
                        size_t *first_bad);

/** Free a struct filled by velo_configmap_fill (its strings too). */
void velo_configmap_free(const struct velo_config_map *map, void *conf);

/** "a size", "a duration", ... and how to write one, for messages. */
const char *velo_configmap_type_noun(int type);
const char *velo_configmap_type_hint(int type);

#endif /* VELO_CORE_CONFIGMAP_H */
