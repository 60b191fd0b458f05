/*
 * Velostream plugin SDK: the descriptor a plugin returns from
 * velo_plugin_init, its config map, and the instance handle.
 *
 * A plugin is a shared object that exports exactly one function:
 *
 *     VELO_EXPORT const struct velo_plugin_descriptor *
 *     velo_plugin_init(const struct velo_host_api *host);
 *
 * It returns a pointer to a `static const` descriptor. The version fields
 * come first because they protect the rest: the loader reads magic, ABI and
 * size before it trusts any other field.
 */
#ifndef VELO_PLUGIN_H
#define VELO_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <velo/log.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "VELOPLG1" read as a little-endian 64-bit integer. */
#define VELO_PLUGIN_MAGIC UINT64_C(0x31474C504F4C4556)

/*
 * ABI version. The major changes when a released structure changes shape or
 * meaning; the minor grows when fields or callbacks are appended. A plugin
 * loads when its major equals the host's and its minor is not newer.
 */
#define VELO_ABI_MAJOR 1
#define VELO_ABI_MINOR 2

/*
 * The data model a plugin was compiled for. The loader refuses a plugin
 * whose signature differs from its own (e.g. a 32-bit build).
 */
#define VELO_STR_(x) #x
#define VELO_STR(x) VELO_STR_(x)
#define VELO_BUILD_SIGNATURE                                                  \
    "velo-abi-" VELO_STR(VELO_ABI_MAJOR) " ptr" VELO_STR(__SIZEOF_POINTER__)  \
        " long" VELO_STR(__SIZEOF_LONG__) " "                                 \
        VELO_STR(__BYTE_ORDER__)

#define VELO_PLUGIN_INIT_SYMBOL "velo_plugin_init"

enum velo_plugin_kind {
    VELO_PLUGIN_CONNECTOR = 1, /* vtable: struct velo_connector_vtable */
    VELO_PLUGIN_AUTH = 2,      /* vtable: struct velo_auth_vtable */
    VELO_PLUGIN_AUDIT = 3,     /* vtable: struct velo_audit_vtable */
    VELO_PLUGIN_CLUSTER = 4,   /* vtable: struct velo_cluster_vtable */
    VELO_PLUGIN_APP = 5        /* vtable: struct velo_app_vtable */
};
#define VELO_PLUGIN_KIND_MAX 5

/* Config map: the declared settings of a plugin (Fluent Bit config_map). */
enum velo_config_type {
    VELO_CONFIG_END = 0, /* terminates a map: {0} */
    VELO_CONFIG_STR = 1, /* char * (host-owned copy, valid until destroy) */
    VELO_CONFIG_INT = 2, /* int64_t */
    VELO_CONFIG_BOOL = 3, /* int, 0 or 1 */
    VELO_CONFIG_DOUBLE = 4, /* double */
    VELO_CONFIG_SIZE = 5, /* int64_t bytes; accepts 10KB, 4MiB, ... */
    VELO_CONFIG_DURATION = 6, /* int64_t milliseconds; accepts 250ms, 5s, 1m */
    VELO_CONFIG_SECRET = 7 /* like STR, never logged or shown */
};

struct velo_config_map {
    int type;                /* enum velo_config_type */
    const char *name;        /* key, e.g. "bootstrap.servers" */
    const char *def_value;   /* default as text, NULL when required */
    size_t offset;           /* offsetof(struct plugin_conf, field) */
    const char *description; /* one line; also the Studio's help text */
};

/* Every instance handle begins with this header, so the logging macros can
 * reach the host without an undefined symbol. Borrowed; owned by the host. */
struct velo_host_api;
struct velo_instance {
    const struct velo_host_api *host;
    const char *name; /* "kafka:orders" style label used as log prefix */
    void *context;    /* the plugin's own, set by create */
};

/* Lifecycle of the plugin type (not of an instance). */
typedef int (*velo_plugin_start_fn)(const struct velo_host_api *host,
                                    void **plugin_data);
typedef void (*velo_plugin_stop_fn)(void *plugin_data);

struct velo_plugin_descriptor {
    /* --- version fields: the loader checks these first --- */
    uint64_t magic;      /* VELO_PLUGIN_MAGIC */
    uint16_t abi_major;  /* VELO_ABI_MAJOR at the plugin's build */
    uint16_t abi_minor;  /* VELO_ABI_MINOR at the plugin's build */
    uint32_t size;       /* sizeof(struct velo_plugin_descriptor) */
    const char *build_signature; /* VELO_BUILD_SIGNATURE */

    /* --- identity --- */
    int kind;                 /* enum velo_plugin_kind */
    const char *name;         /* unique, [a-z0-9_-]+ */
    const char *version;      /* the plugin's own version, free text */
    const char *description;  /* one line */
    const char *license_feature; /* NULL for open source, else a feature */

    /* --- configuration and behaviour --- */
    const struct velo_config_map *config_map; /* may be NULL */
    size_t config_size; /* sizeof the struct the map's offsets point into */
    velo_plugin_start_fn start; /* optional; called after every check */
    velo_plugin_stop_fn stop;   /* optional */
    const void *vtable; /* kind-specific; begins with its own uint32_t size */
};

/* Fills the version fields; use first in a descriptor initialiser. */
#define VELO_PLUGIN_HEADER                                                    \
    .magic = VELO_PLUGIN_MAGIC, .abi_major = VELO_ABI_MAJOR,                  \
    .abi_minor = VELO_ABI_MINOR,                                              \
    .size = (uint32_t)sizeof(struct velo_plugin_descriptor),                  \
    .build_signature = VELO_BUILD_SIGNATURE

typedef const struct velo_plugin_descriptor *(*velo_plugin_init_fn)(
    const struct velo_host_api *host);

/**
 * The one symbol a plugin exports; the plugin defines it. `host` is
 * borrowed and valid until the plugin is unloaded, so a plugin may keep it.
 * Called once at load, before any check: do nothing here but return the
 * descriptor (a refused plugin must have no effect).
 * @return the plugin's static descriptor.
 */
VELO_EXPORT const struct velo_plugin_descriptor *
velo_plugin_init(const struct velo_host_api *host);

#ifdef __cplusplus
}
#endif

#endif /* VELO_PLUGIN_H */
