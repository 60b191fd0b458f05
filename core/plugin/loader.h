/*
 * The plugin loader.
 *
 * Scans only the configured directories for "*.so", dlopen()s each with
 * RTLD_NOW|RTLD_LOCAL, resolves velo_plugin_init, calls it, and checks the
 * descriptor in this order:
 *   magic, ABI major equal, ABI minor not newer, descriptor size, build
 *   signature, kind known, vtable present with its size, required
 *   callbacks, name syntax, duplicate name, config (the plugin's config map
 *   against plugins.config.<name>), license feature.
 * Only a plugin that passes every check has `start` called. A refusal
 * names both sides: "plugin kafka: ABI 2.1, server provides 1.0". A refused
 * plugin is dlclose()d; none of its code beyond velo_plugin_init ran.
 */
#ifndef VELO_CORE_LOADER_H
#define VELO_CORE_LOADER_H

#include <stddef.h>

#include <velo/velo.h>

struct velo_config;
struct velo_license;

enum velo_plugin_state {
    VELO_PLUGIN_LOADED = 0,
    VELO_PLUGIN_REFUSED = 1,
    VELO_PLUGIN_FAILED = 2 /* passed the checks, but start failed */
};

struct velo_plugin_entry {
    char *path;   /* file it came from */
    char *name;   /* descriptor name, or the file stem when unreadable */
    char *version;
    char *description;
    int kind;     /* 0 when unknown */
    char *license_feature; /* NULL for open source */
    int state;    /* enum velo_plugin_state */
    char *reason; /* why refused/failed, NULL when loaded */
    int license_grace; /* loaded on a license within its grace period */
    const struct velo_plugin_descriptor *desc; /* NULL unless loaded */
    void *config; /* filled config struct (desc->config_size), or NULL */
    void *plugin_data; /* from start */
    void *dl;     /* dlopen handle, NULL unless loaded */
};

struct velo_plugins;

/**
 * Load every plugin in cfg->plugin_dirs against `host` and `lic` (lic may
 * be NULL: no license). Refusals are recorded, logged at warn, never fatal.
 * @return the set (NULL only on ENOMEM).
 */
struct velo_plugins *velo_plugins_load(const struct velo_config *cfg,
                                       const struct velo_host_api *host,
                                       const struct velo_license *lic);
/** stop() each loaded plugin (reverse order), dlclose, free. */
void velo_plugins_unload(struct velo_plugins *p);

size_t velo_plugins_count(const struct velo_plugins *p);
const struct velo_plugin_entry *velo_plugins_at(const struct velo_plugins *p,
                                                size_t i);
/** A loaded plugin by name, NULL if none. */
const struct velo_plugin_entry *
velo_plugins_find(const struct velo_plugins *p, const char *name);

const char *velo_plugin_kind_name(int kind); /* "connector", ... */
const char *velo_plugin_state_name(int state);

/** JSON array text for /api/plugins and `velo plugins --format json`.
 *  @return malloc'd, caller frees. */
char *velo_plugins_to_json(const struct velo_plugins *p);

#endif /* VELO_CORE_LOADER_H */
