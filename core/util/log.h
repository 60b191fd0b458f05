/*
 * Core logging: levels, text or JSON lines, to stderr. Thread-safe (one
 * write(2) per line). Plugins reach this through the host API table.
 */
#ifndef VELO_CORE_LOG_H
#define VELO_CORE_LOG_H

#include <stdarg.h>

#include <velo/log.h>

enum velo_log_format {
    VELO_LOG_TEXT = 0, /* 2026-11-21T15:21:11.123Z info  [http] message */
    VELO_LOG_JSON = 1  /* {"ts":"...","level":"info","src":"http","msg":"..."} */
};

void velo_log_set_level(int level);
int velo_log_get_level(void);
void velo_log_set_format(int format);
/** @return VELO_OK, or VELO_ERR for an unknown name. */
int velo_log_level_parse(const char *name, int *level);
const char *velo_log_level_name(int level);

/** src: the subsystem or "[plugin:instance]" label, may be NULL. */
void velo_log_write(int level, const char *src, const char *fmt, ...)
    VELO_PRINTF(3, 4);
void velo_log_vwrite(int level, const char *src, const char *fmt,
                     va_list ap);

/* Redirect output (tests). fd -1 restores stderr. */
void velo_log_set_fd(int fd);

#define velo_log_error(...) velo_log_write(VELO_LOG_ERROR, NULL, __VA_ARGS__)
#define velo_log_warn(...) velo_log_write(VELO_LOG_WARN, NULL, __VA_ARGS__)
#define velo_log_info(...) velo_log_write(VELO_LOG_INFO, NULL, __VA_ARGS__)
#define velo_log_debug(...)                                                   \
    do {                                                                      \
        if (velo_log_get_level() >= VELO_LOG_DEBUG) {                         \
            velo_log_write(VELO_LOG_DEBUG, NULL, __VA_ARGS__);                \
        }                                                                     \
    } while (0)

#endif /* VELO_CORE_LOG_H */
