/*
 * Server configuration: a commented YAML file, overridden by VELO_*
 * environment variables, overridden by command-line flags.
 *
 * Every key is declared once in a table (config.c) with its type, default,
 * and description; the same table drives parsing, environment names
 * (server.data_dir -> VELO_SERVER_DATA_DIR), `--set key=value`, error
 * messages and the sample file check. An unknown key, a wrong type or a bad
 * value is an error naming the key and the file line:
 *
 *   velo.yaml:12:3: http.max_body_size: "12 parsecs" is not a size
 *     (hint: write a number with an optional unit: 512, 64KiB, 4MiB)
 */
#ifndef VELO_CORE_CONFIG_H
#define VELO_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define VELO_CONFIG_ERR_MAX 512
#define VELO_CONFIG_MAX_DIRS 16

/* One free-form key under plugins.config.<plugin>.<key>, kept for the
 * plugin's own config map to check at load time. */
struct velo_config_kv {
    char *plugin; /* "kafka" */
    char *key;    /* "bootstrap.servers" (nested maps joined with '.') */
    char *value;  /* scalar as text */
    int line;     /* line in the file, 0 when from env/flags */
};

struct velo_config {
    /* server */
    char *listen;             /* "127.0.0.1:8080" */
    char *data_dir;           /* "./velo-data" */
    int64_t shutdown_timeout_ms;
    int64_t workers;          /* worker threads, >= 1 */
    int64_t task_queue_size;  /* bounded cross-thread queue, >= 1 */

    /* log */
    int log_level;  /* enum velo_log_level */
    int log_format; /* enum velo_log_format */

    /* http */
    int64_t http_max_header_size;   /* bytes */
    int64_t http_max_body_size;     /* bytes */
    int64_t http_request_timeout_ms;
    int64_t http_max_connections;
    int http_tls_enabled;
    char *http_tls_cert; /* PEM path */
    char *http_tls_key;  /* PEM path */

    /* auth */
    int auth_enabled;              /* false only when explicitly set */
    int auth_metrics_require_auth; /* /metrics behind auth? */
    char *auth_realm;
    int64_t auth_pbkdf2_iterations;

    /* plugins */
    char *plugin_dirs[VELO_CONFIG_MAX_DIRS];
    size_t n_plugin_dirs;
    struct velo_config_kv *plugin_kv;
    size_t n_plugin_kv;

    /* license */
    char *license_file; /* NULL: none */

    /* where it came from */
    char *path; /* the file, or NULL when only defaults */
};

/** Fill defaults. @return VELO_OK or VELO_ERR (ENOMEM). */
int velo_config_init(struct velo_config *cfg);
void velo_config_free(struct velo_config *cfg);

/**
 * Load `path` (NULL: defaults only) over defaults, then apply VELO_*
 * variables from `envp` (NULL: environ), then `n_sets` "key=value"
 * overrides from flags. On error writes one line per problem into `err`
 * (all problems found, newline-separated) and returns VELO_ERR leaving
 * `cfg` untouched.
 */
int velo_config_load(struct velo_config *cfg, const char *path,
                     char *const *envp, const char *const *sets,
                     size_t n_sets, char *err, size_t errlen);

/** Parse from memory (fuzzing, tests); `name` is used in messages. */
int velo_config_load_buffer(struct velo_config *cfg, const char *name,
                            const char *buf, size_t len, char *err,
                            size_t errlen);

/**
 * Describe the differences between two configs, one "key: old -> new" per
 * line (secrets shown as "***"). @return number of keys that differ.
 */
int velo_config_diff(const struct velo_config *a, const struct velo_config *b,
                     char *out, size_t outlen);

/** The key's environment variable name: "server.listen" -> VELO_SERVER_LISTEN. */
void velo_config_env_name(const char *key, char *out, size_t outlen);

/* Value parsers shared with plugin config maps. @return VELO_OK/VELO_ERR. */
int velo_parse_size(const char *s, int64_t *out);     /* 64KiB, 4MB, 512 */
int velo_parse_duration(const char *s, int64_t *ms);  /* 250ms, 5s, 2m, 1h */
int velo_parse_bool(const char *s, int *out);         /* true/false/yes/no/on/off/1/0 */
int velo_parse_int(const char *s, int64_t *out);

#endif /* VELO_CORE_CONFIG_H */
