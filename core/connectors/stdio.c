/*
 * stdin (source) and stdout (sink).
 *
 * stdin is a byte stream. It is bounded when it is a regular file
 * (`velo run q.sql < data.csv`); a pipe or a terminal is unbounded but
 * still ends: at EOF source_read says VELO_DECLINED. Reads never block:
 * with an event base a read that would block waits for EV_READ and calls
 * wake; without one it returns VELO_AGAIN and the caller polls.
 *
 * stdout writes each payload as it comes (the engine already batches), so
 * output to a terminal or a pipe is not held back.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connectors/builtin.h"

#define STDIN_POS_BYTES 8

struct stdin_conf {
    int64_t fd;
    int64_t read_chunk;
};

const struct velo_config_map velo_stdin_config_map[] = {
    {VELO_CONFIG_INT, "fd", "0", offsetof(struct stdin_conf, fd),
     "descriptor to read (0 is stdin)"},
    {VELO_CONFIG_SIZE, "read.chunk", "1MiB",
     offsetof(struct stdin_conf, read_chunk),
     "bytes handed to the decoder at a time"},
    {0}};
const size_t velo_stdin_config_size = sizeof(struct stdin_conf);

struct stdout_conf {
    int64_t fd;
};

const struct velo_config_map velo_stdout_config_map[] = {
    {VELO_CONFIG_INT, "fd", "1", offsetof(struct stdout_conf, fd),
     "descriptor to write (1 is stdout, 2 stderr)"},
    {0}};
const size_t velo_stdout_config_size = sizeof(struct stdout_conf);

/* ---- stdin -------------------------------------------------------------- */

struct stdin_src {
    struct conn_fdread r;
    int regular;
};

static int valid_fd(struct velo_instance *ins, int64_t fd)
{
    if (fd < 0 || fd > INT32_MAX || fcntl((int)fd, F_GETFD) < 0) {
        velo_conn_log(ins, VELO_LOG_ERROR, "descriptor %" PRId64 " is not open",
                      fd);
        return 0;
    }
    return 1;
}

static int stdin_create(struct velo_instance *ins, const void *config,
                        const struct velo_connector_ctx *ctx,
                        struct velo_source_info *info)
{
    const struct stdin_conf *conf = config;
    if (conf == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "no configuration");
        return VELO_ERR;
    }
    if (!valid_fd(ins, conf->fd)) {
        return VELO_ERR;
    }
    if (conf->read_chunk < 4096 || conf->read_chunk > (int64_t)1 << 30) {
        velo_conn_log(ins, VELO_LOG_ERROR,
                      "read.chunk %" PRId64
                      " is out of range: use 4KiB to 1GiB",
                      conf->read_chunk);
        return VELO_ERR;
    }
    struct stdin_src *s = calloc(1, sizeof(*s));
    if (s == NULL ||
        velo_conn_fdread_init(&s->r, (int)conf->fd, (size_t)conf->read_chunk,
                              ctx) != VELO_OK) {
        free(s);
        velo_conn_log(ins, VELO_LOG_ERROR, "out of memory");
        return VELO_ERR;
    }
    struct stat st;
    s->regular = fstat((int)conf->fd, &st) == 0 && S_ISREG(st.st_mode);
    info->byte_stream = 1;
    info->bounded = s->regular;
    info->size_bytes = -1;
    if (s->regular) {
        off_t at = lseek((int)conf->fd, 0, SEEK_CUR);
        info->size_bytes = at >= 0 && st.st_size >= at
                               ? (int64_t)(st.st_size - at)
                               : (int64_t)st.st_size;
    }
    ins->context = s;
    return VELO_OK;
}

static int stdin_read(struct velo_instance *ins, struct velo_source_batch *out)
{
    struct stdin_src *s = ins->context;
    out->count = 0;
    if (out->capacity == 0) {
        return VELO_OK;
    }
    int64_t at = (int64_t)s->r.offset;
    int rc = velo_conn_fdread_next(&s->r, &out->payload[0]);
    if (rc == VELO_ERR) {
        velo_conn_log(ins, VELO_LOG_ERROR, "cannot read stdin: %s",
                      strerror(errno));
        return VELO_ERR;
    }
    if (rc == VELO_OK) {
        out->count = 1;
        if (out->meta != NULL) {
            out->meta[0].timestamp_us = INT64_MIN;
            out->meta[0].partition = -1;
            out->meta[0].offset = at;
            out->meta[0].key.ptr = NULL;
            out->meta[0].key.len = 0;
        }
    }
    return rc;
}

static int stdin_position(struct velo_instance *ins, uint8_t *buf, size_t cap)
{
    struct stdin_src *s = ins->context;
    if (cap < STDIN_POS_BYTES) {
        return VELO_ERR;
    }
    for (int b = 0; b < 8; b++) {
        buf[b] = (uint8_t)(s->r.offset >> (8 * b));
    }
    return STDIN_POS_BYTES;
}

static int stdin_seek(struct velo_instance *ins, const uint8_t *pos, size_t len)
{
    struct stdin_src *s = ins->context;
    if (!s->regular || len != STDIN_POS_BYTES) {
        velo_conn_log(ins, VELO_LOG_ERROR,
                      "stdin is not a regular file; it cannot resume from a "
                      "position");
        return VELO_ERR;
    }
    uint64_t off = 0;
    for (int b = 0; b < 8; b++) {
        off |= (uint64_t)pos[b] << (8 * b);
    }
    off_t base = lseek(s->r.fd, 0, SEEK_CUR);
    if (base < 0 ||
        lseek(s->r.fd, base - (off_t)s->r.offset + (off_t)off, SEEK_SET) < 0) {
        velo_conn_log(ins, VELO_LOG_ERROR, "cannot seek stdin: %s",
                      strerror(errno));
        return VELO_ERR;
    }
    s->r.offset = off;
    s->r.eof = 0;
    return VELO_OK;
}

static int stdin_commit(struct velo_instance *ins, const uint8_t *pos,
                        size_t len)
{
    (void)ins;
    (void)pos;
    (void)len;
    return VELO_OK;
}

static void stdin_destroy(struct velo_instance *ins)
{
    struct stdin_src *s = ins->context;
    if (s != NULL) {
        velo_conn_fdread_free(&s->r); /* the descriptor is not ours to close */
        free(s);
    }
    ins->context = NULL;
}

const struct velo_connector_vtable velo_stdin_connector = {
    .size = (uint32_t)sizeof(struct velo_connector_vtable),
    .scheme = "stdin",
    .flags = VELO_CONNECTOR_SOURCE,
    .source_create = stdin_create,
    .source_read = stdin_read,
    .source_position = stdin_position,
    .source_seek = stdin_seek,
    .source_commit = stdin_commit,
    .source_destroy = stdin_destroy,
};

/* ---- stdout ------------------------------------------------------------- */

struct stdout_snk {
    int fd;
    int failed;
};

static int stdout_create(struct velo_instance *ins, const void *config,
                         const struct velo_connector_ctx *ctx)
{
    const struct stdout_conf *conf = config;
    (void)ctx;
    if (conf == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "no configuration");
        return VELO_ERR;
    }
    if (!valid_fd(ins, conf->fd)) {
        return VELO_ERR;
    }
    struct stdout_snk *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "out of memory");
        return VELO_ERR;
    }
    k->fd = (int)conf->fd;
    ins->context = k;
    return VELO_OK;
}

static int stdout_write(struct velo_instance *ins, const struct velo_str *recs,
                        const struct velo_record_meta *meta, size_t n)
{
    struct stdout_snk *k = ins->context;
    (void)meta;
    if (k->failed) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        if (recs[i].len > 0 &&
            velo_conn_write_all(k->fd, recs[i].ptr, recs[i].len) != VELO_OK) {
            velo_conn_log(ins, VELO_LOG_ERROR, "cannot write to stdout: %s%s",
                          strerror(errno),
                          errno == EPIPE ? " (the reading end of the pipe went "
                                           "away)"
                                         : "");
            k->failed = 1;
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

static int stdout_flush(struct velo_instance *ins)
{
    struct stdout_snk *k = ins->context;
    if (k->failed) {
        return VELO_ERR;
    }
    /* Writes go straight out, so there is nothing to push. Standard
     * output is not fsynced: like any shell redirect, durability is the
     * file system's (the file sink has fsync). */
    return VELO_OK;
}

static void stdout_destroy(struct velo_instance *ins)
{
    free(ins->context); /* the descriptor is not ours to close */
    ins->context = NULL;
}

const struct velo_connector_vtable velo_stdout_connector = {
    .size = (uint32_t)sizeof(struct velo_connector_vtable),
    .scheme = "stdout",
    .flags = VELO_CONNECTOR_SINK,
    .source_create = NULL,
    .sink_create = stdout_create,
    .sink_write = stdout_write,
    .sink_flush = stdout_flush,
    .sink_destroy = stdout_destroy,
};
