/*
 * Velostream plugin SDK: the host API table.
 *
 * Plugins call the server only through this table (they have no undefined
 * symbols into the binary). The table only grows at the end; a plugin that
 * uses an entry added after ABI 1.0 checks `size` first:
 *
 *     if (VELO_HOST_HAS(host, some_new_entry)) host->some_new_entry(...);
 */
#ifndef VELO_HOST_H
#define VELO_HOST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <velo/log.h>
#include <velo/plugin.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;
struct velo_metric; /* opaque; owned by the host's registry */

/* Task run on a worker thread; `done` then runs on the main loop. */
typedef void (*velo_task_fn)(void *arg);

struct velo_host_api {
    uint32_t size; /* sizeof(struct velo_host_api) as the host built it */
    uint16_t abi_major;
    uint16_t abi_minor;
    const char *server_version;

    /** Log a line prefixed with the instance name. ins may be NULL: the
     *  prefix is then "plugin"; a plugin that logs from start() or other
     *  type-level code and wants its name shown passes a static
     *  struct velo_instance of its own ({host, "kafka", NULL}). */
    void (*log)(const struct velo_instance *ins, int level, const char *fmt,
                ...) VELO_PRINTF(3, 4);
    void (*vlog)(const struct velo_instance *ins, int level, const char *fmt,
                 va_list ap);
    /** @return nonzero when `level` would be written. */
    int (*log_enabled)(int level);

    /** The main thread's event loop. Borrowed; valid until stop. */
    struct event_base *(*main_base)(void);

    /**
     * Run `task(arg)` on a worker thread, then `done(arg)` on the main loop.
     * @return VELO_OK, or VELO_AGAIN when the queue is full (back-pressure).
     */
    int (*submit)(velo_task_fn task, velo_task_fn done, void *arg);

    /** Counter/gauge by name with constant labels ("k=v,k2=v2" or NULL).
     *  @return a handle owned by the host, or NULL on a bad name. */
    struct velo_metric *(*metric_counter)(const char *name, const char *help,
                                          const char *labels);
    struct velo_metric *(*metric_gauge)(const char *name, const char *help,
                                        const char *labels);
    void (*metric_add)(struct velo_metric *m, double v);
    void (*metric_set)(struct velo_metric *m, double v);

    /** Does the current license grant `feature`? @return 1 or 0. */
    int (*license_has)(const char *feature);
};

#define VELO_HOST_HAS(host, field)                                            \
    ((host) != NULL &&                                                        \
     (host)->size >= offsetof(struct velo_host_api, field) +                  \
                         sizeof((host)->field) &&                             \
     (host)->field != NULL)

/* Logging from a plugin instance: prefixed "[kafka:orders]". */
#define velo_plg_log(ins, lvl, ...)                                           \
    do {                                                                      \
        const struct velo_instance *velo_i_ = (ins);                          \
        if (velo_i_->host->log_enabled(lvl)) {                                \
            velo_i_->host->log(velo_i_, (lvl), __VA_ARGS__);                  \
        }                                                                     \
    } while (0)
#define velo_plg_error(ins, ...) velo_plg_log(ins, VELO_LOG_ERROR, __VA_ARGS__)
#define velo_plg_warn(ins, ...) velo_plg_log(ins, VELO_LOG_WARN, __VA_ARGS__)
#define velo_plg_info(ins, ...) velo_plg_log(ins, VELO_LOG_INFO, __VA_ARGS__)
#define velo_plg_debug(ins, ...) velo_plg_log(ins, VELO_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif /* VELO_HOST_H */
