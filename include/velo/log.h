/*
 * Velostream plugin SDK: log levels and result codes shared by the host and
 * every plugin.
 */
#ifndef VELO_LOG_H
#define VELO_LOG_H

#ifdef __cplusplus
extern "C" {
#endif

/* Result codes: success is zero, failures are negative (CONVENTIONS.md). */
#define VELO_OK 0
#define VELO_ERR (-1)
#define VELO_AGAIN (-2)    /* the answer comes later, on the loop */
#define VELO_DECLINED (-3) /* not handled here: ask the next one */

/* Symbol visibility: the core builds with -fvisibility=hidden. */
#if defined(__GNUC__)
#define VELO_EXPORT __attribute__((visibility("default")))
#define VELO_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define VELO_EXPORT
#define VELO_PRINTF(fmt, args)
#endif

enum velo_log_level {
    VELO_LOG_ERROR = 0,
    VELO_LOG_WARN = 1,
    VELO_LOG_INFO = 2,
    VELO_LOG_DEBUG = 3
};

#ifdef __cplusplus
}
#endif

#endif /* VELO_LOG_H */
