/*
 * Core logging. One formatted line per write(2) so lines from worker
 * threads never interleave.
 */
#include "util/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 4096

static atomic_int log_level = VELO_LOG_INFO;
static atomic_int log_format = VELO_LOG_TEXT;
static atomic_int log_fd = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void velo_log_set_level(int level)
{
    if (level < VELO_LOG_ERROR) {
        level = VELO_LOG_ERROR;
    }
    if (level > VELO_LOG_DEBUG) {
        level = VELO_LOG_DEBUG;
    }
    atomic_store(&log_level, level);
}

int velo_log_get_level(void)
{
    return atomic_load(&log_level);
}

void velo_log_set_format(int format)
{
    atomic_store(&log_format, format == VELO_LOG_JSON ? VELO_LOG_JSON
                                                      : VELO_LOG_TEXT);
}

void velo_log_set_fd(int fd)
{
    atomic_store(&log_fd, fd);
}

int velo_log_level_parse(const char *name, int *level)
{
    for (int i = 0; i <= VELO_LOG_DEBUG; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *level = i;
            return VELO_OK;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *level = VELO_LOG_WARN;
        return VELO_OK;
    }
    return VELO_ERR;
}

const char *velo_log_level_name(int level)
{
    if (level < VELO_LOG_ERROR || level > VELO_LOG_DEBUG) {
        return "unknown";
    }
    return level_names[level];
}

/* Append `s` to buf as the inside of a JSON string. */
static size_t json_escape(char *buf, size_t pos, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s != '\0' && pos + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
        } else if (c == '\n') {
            buf[pos++] = '\\';
            buf[pos++] = 'n';
        } else if (c == '\t') {
            buf[pos++] = '\\';
            buf[pos++] = 't';
        } else if (c < 0x20) {
            buf[pos++] = '\\';
            buf[pos++] = 'u';
            buf[pos++] = '0';
            buf[pos++] = '0';
            buf[pos++] = hex[c >> 4];
            buf[pos++] = hex[c & 15];
        } else {
            buf[pos++] = (char)c;
        }
    }
    return pos;
}

void velo_log_vwrite(int level, const char *src, const char *fmt, va_list ap)
{
    if (level > atomic_load(&log_level)) {
        return;
    }
    int saved_errno = errno;
    char msg[LOG_LINE_MAX];
    vsnprintf(msg, sizeof(msg), fmt, ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    /* Sized for any int fields the compiler can imagine, so the format
     * can never truncate. */
    char ts[96];
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));

    char line[LOG_LINE_MAX + 256];
    size_t n;
    if (atomic_load(&log_format) == VELO_LOG_JSON) {
        n = (size_t)snprintf(line, sizeof(line),
                             "{\"ts\":\"%s\",\"level\":\"%s\"", ts,
                             velo_log_level_name(level));
        if (src != NULL) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"src\":\"");
            n = json_escape(line, n, sizeof(line) - 8, src);
            line[n++] = '"';
        }
        n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"msg\":\"");
        n = json_escape(line, n, sizeof(line) - 8, msg);
        line[n++] = '"';
        line[n++] = '}';
        line[n++] = '\n';
    } else {
        int w = snprintf(line, sizeof(line), "%s %-5s %s%s%s%s\n", ts,
                         velo_log_level_name(level), src ? "[" : "",
                         src ? src : "", src ? "] " : "", msg);
        n = w < 0 ? 0 : (size_t)w;
        if (n >= sizeof(line)) {
            n = sizeof(line) - 1;
            line[n - 1] = '\n';
        }
    }
    int fd = atomic_load(&log_fd);
    if (fd < 0) {
        fd = STDERR_FILENO;
    }
    /* Best effort: a log line that cannot be written is dropped. */
    ssize_t off = 0;
    while ((size_t)off < n) {
        ssize_t w = write(fd, line + off, n - (size_t)off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            break;
        }
        off += w;
    }
    errno = saved_errno;
}

void velo_log_write(int level, const char *src, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    velo_log_vwrite(level, src, fmt, ap);
    va_end(ap);
}
