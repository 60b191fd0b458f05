/*
 * Descriptor I/O shared by the built-in connectors.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "connectors/builtin.h"
#include "util/log.h"

void velo_conn_log(const struct velo_instance *ins, int level, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    velo_log_vwrite(level, ins != NULL ? ins->name : NULL, fmt, ap);
    va_end(ap);
}

int velo_conn_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* Someone made the descriptor non-blocking: wait until it
                 * drains rather than lose output. */
                struct pollfd pfd = {.fd = fd, .events = POLLOUT};
                if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
                    return VELO_ERR;
                }
                continue;
            }
            return VELO_ERR;
        }
        p += w;
        n -= (size_t)w;
    }
    return VELO_OK;
}

int velo_conn_fdread_init(struct conn_fdread *r, int fd, size_t cap,
                          const struct velo_connector_ctx *ctx)
{
    memset(r, 0, sizeof(*r));
    r->fd = fd;
    r->cap = cap;
    r->buf = malloc(cap);
    if (r->buf == NULL) {
        return VELO_ERR;
    }
    if (ctx != NULL) {
        r->base = ctx->base;
        r->wake = ctx->wake;
        r->wake_arg = ctx->wake_arg;
    }
    return VELO_OK;
}

static void on_readable(evutil_socket_t fd, short what, void *arg)
{
    struct conn_fdread *r = arg;
    (void)fd;
    (void)what;
    if (r->wake != NULL) {
        r->wake(r->wake_arg);
    }
}

int velo_conn_fdread_next(struct conn_fdread *r, struct velo_str *out)
{
    if (r->eof) {
        return VELO_DECLINED;
    }
    struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
    int ready = poll(&pfd, 1, 0);
    if (ready < 0 && errno != EINTR) {
        return VELO_ERR;
    }
    if (ready <= 0) {
        if (r->base != NULL) {
            if (r->ev == NULL) {
                r->ev = event_new(r->base, r->fd, EV_READ, on_readable, r);
                if (r->ev == NULL) {
                    errno = ENOMEM;
                    return VELO_ERR;
                }
            }
            if (!event_pending(r->ev, EV_READ, NULL) &&
                event_add(r->ev, NULL) != 0) {
                return VELO_ERR;
            }
        }
        return VELO_AGAIN;
    }
    ssize_t n = read(r->fd, r->buf, r->cap);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) {
            return VELO_AGAIN;
        }
        return VELO_ERR;
    }
    if (n == 0) {
        r->eof = 1;
        return VELO_DECLINED;
    }
    r->offset += (uint64_t)n;
    out->ptr = r->buf;
    out->len = (size_t)n;
    return VELO_OK;
}

void velo_conn_fdread_free(struct conn_fdread *r)
{
    if (r->ev != NULL) {
        event_free(r->ev);
        r->ev = NULL;
    }
    free(r->buf);
    r->buf = NULL;
}
