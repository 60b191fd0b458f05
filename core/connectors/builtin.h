/*
 * Private to core/connectors: the built-in connectors' vtables and config
 * maps (registered by registry.c like any plugin's), and the descriptor
 * I/O helpers they share.
 */
#ifndef VELO_CONNECTORS_BUILTIN_H
#define VELO_CONNECTORS_BUILTIN_H

#include <stddef.h>
#include <stdint.h>

#include <velo/velo.h>

struct event;

extern const struct velo_connector_vtable velo_file_connector;
extern const struct velo_config_map velo_file_config_map[];
extern const size_t velo_file_config_size;

extern const struct velo_connector_vtable velo_stdin_connector;
extern const struct velo_config_map velo_stdin_config_map[];
extern const size_t velo_stdin_config_size;

extern const struct velo_connector_vtable velo_stdout_connector;
extern const struct velo_config_map velo_stdout_config_map[];
extern const size_t velo_stdout_config_size;

extern const struct velo_connector_vtable velo_gen_connector;
extern const struct velo_config_map velo_gen_config_map[];
extern const size_t velo_gen_config_size;

/* Log as the instance ("[file:trades] ..."). */
void velo_conn_log(const struct velo_instance *ins, int level, const char *fmt,
                   ...) VELO_PRINTF(3, 4);

/** write(2) all of it, retrying EINTR and waiting out EAGAIN.
 *  @return VELO_OK, or VELO_ERR with errno. */
int velo_conn_write_all(int fd, const char *p, size_t n);

/*
 * Reading a descriptor that may not be ready (a pipe, a terminal, a
 * FIFO): with an event base, a read that would block registers a one-shot
 * EV_READ event that calls wake and returns VELO_AGAIN; without one, it
 * returns VELO_AGAIN at once and the caller polls.
 */
struct conn_fdread {
    int fd;
    char *buf;
    size_t cap;
    struct event_base *base;
    struct event *ev;
    void (*wake)(void *);
    void *wake_arg;
    uint64_t offset; /* bytes read so far */
    int eof;
};

int velo_conn_fdread_init(struct conn_fdread *r, int fd, size_t cap,
                          const struct velo_connector_ctx *ctx);
/** One chunk as a view of r->buf (valid until the next call).
 *  @return VELO_OK, VELO_AGAIN, VELO_DECLINED (end), VELO_ERR (errno). */
int velo_conn_fdread_next(struct conn_fdread *r, struct velo_str *out);
void velo_conn_fdread_free(struct conn_fdread *r);

#endif /* VELO_CONNECTORS_BUILTIN_H */
