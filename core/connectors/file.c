/*
 * The file connector.
 *
 * Source: a regular file is mapped once and handed over as large views of
 * the mapping (no copy; the decoder reads the page cache directly). With
 * `watch` it follows the file like `tail -F`: new data is read with
 * pread(2) (a followed file may be truncated under us, and a mapping would
 * then fault), truncation restarts from the beginning, and a file replaced
 * by rotation is finished and then reopened by name. A FIFO or device is
 * read like stdin.
 *
 * Sink: appends bytes (the engine encodes), rotates by size to path.1,
 * path.2, ... (path.1 the newest), and makes everything durable on flush.
 * For checkpoints its position is the current file (by inode) and its
 * durable length; a resume cuts the file back to that length and undoes
 * rotations made since, so with --state-dir the output is exactly once.
 * That is why a replaced file is emptied at the first write, not when
 * the sink is created: a resume must find what the last run wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "connectors/builtin.h"
#include "connectors/registry.h"
#include "util/fsutil.h"

#define FILE_CHUNK_DEFAULT "8MiB"
#define FILE_SINK_BUFFER (1024 * 1024)
/* With fsync on, writeback of what was written is started every this
 * many bytes so the disk works while we encode; the fsync at a flush
 * then waits for the tail only, not for everything since the last one. */
#define FILE_SINK_WRITEBACK (8 * 1024 * 1024)
#define FILE_POS_BYTES 16
#define FILE_SINK_POS_BYTES 24

struct file_conf {
    char *path;
    int watch;
    int64_t poll_interval_ms;
    int64_t read_chunk;
    int append;
    int64_t rotate_bytes;
    int64_t rotate_keep;
    int fsync;
};

const struct velo_config_map velo_file_config_map[] = {
    {VELO_CONFIG_STR, "path", "", offsetof(struct file_conf, path),
     "the file; file:///abs/path or file://relative/path in FROM/INTO sets "
     "it too"},
    {VELO_CONFIG_BOOL, "watch", "false", offsetof(struct file_conf, watch),
     "source: follow appends like tail -F (unbounded input)"},
    {VELO_CONFIG_DURATION, "poll.interval", "250ms",
     offsetof(struct file_conf, poll_interval_ms),
     "source: how often a watched file is checked for new data"},
    {VELO_CONFIG_SIZE, "read.chunk", FILE_CHUNK_DEFAULT,
     offsetof(struct file_conf, read_chunk),
     "source: bytes handed to the decoder at a time"},
    {VELO_CONFIG_BOOL, "append", "false", offsetof(struct file_conf, append),
     "sink: add to an existing file instead of replacing it"},
    {VELO_CONFIG_SIZE, "rotate.bytes", "0",
     offsetof(struct file_conf, rotate_bytes),
     "sink: start a new file past this size (0: never); the old ones "
     "become path.1, path.2, ..."},
    {VELO_CONFIG_INT, "rotate.keep", "10",
     offsetof(struct file_conf, rotate_keep),
     "sink: rotated files kept (0: all)"},
    {VELO_CONFIG_BOOL, "fsync", "true", offsetof(struct file_conf, fsync),
     "sink: fsync on every flush (checkpoint) and at the end"},
    {0}};
const size_t velo_file_config_size = sizeof(struct file_conf);

static const char *const source_only[] = {"watch", "poll.interval",
                                          "read.chunk", NULL};
static const char *const sink_only[] = {"append", "rotate.bytes", "rotate.keep",
                                        "fsync", NULL};

/* A property meant for the other direction is a mistake worth saying. */
static int wrong_direction(struct velo_instance *ins,
                           const struct velo_connector_ctx *ctx,
                           const char *const *keys, const char *what)
{
    for (size_t i = 0; ctx != NULL && i < ctx->nprops; i++) {
        for (size_t k = 0; keys[k] != NULL; k++) {
            if (ctx->props[i].key != NULL &&
                strcmp(ctx->props[i].key, keys[k]) == 0) {
                velo_conn_log(
                    ins, VELO_LOG_ERROR,
                    "property '%s' applies to file %s only; remove it "
                    "from %s",
                    keys[k], what, ctx->name != NULL ? ctx->name : "");
                return 1;
            }
        }
    }
    return 0;
}

/* The path from the config, else from the URI. malloc'd or NULL. */
static char *resolve_path(struct velo_instance *ins,
                          const struct file_conf *conf,
                          const struct velo_connector_ctx *ctx)
{
    if (conf->path != NULL && conf->path[0] != '\0') {
        return strdup(conf->path);
    }
    if (ctx != NULL && ctx->uri != NULL) {
        char scheme[32];
        const char *rest = NULL;
        if (velo_uri_split(ctx->uri, scheme, sizeof(scheme), &rest) ==
                VELO_OK &&
            strcmp(scheme, "file") == 0 && rest != NULL && rest[0] != '\0') {
            return strdup(rest);
        }
    }
    const char *name = ctx != NULL && ctx->name != NULL ? ctx->name : "it";
    velo_conn_log(ins, VELO_LOG_ERROR,
                  "no file path: set '%s.path'='data/in.csv' in WITH (...), or "
                  "name the file as file:///abs/path or file://relative/path",
                  name);
    errno = EINVAL;
    return NULL;
}

/* ---- source ------------------------------------------------------------- */

struct file_src {
    struct velo_instance *ins;
    char *path;
    int fd;
    size_t chunk;
    size_t released; /* mapped bytes already given back (page-aligned) */
    int watch;
    int64_t poll_ms;

    /* mapped (not watched, regular file) */
    const char *map;
    size_t map_len;

    /* read: watched files, FIFOs, devices */
    char *buf;
    struct conn_fdread pipe;
    int is_pipe;

    uint64_t offset; /* stream position of the next byte handed over */
    dev_t dev;
    ino_t ino;

    /* watch: the poll timer */
    struct event_base *base;
    struct event *timer;
    void (*wake)(void *);
    void *wake_arg;
    struct timespec last_check;
};

static void file_src_free(struct file_src *s)
{
    if (s == NULL) {
        return;
    }
    if (s->map != NULL) {
        munmap((void *)s->map, s->map_len);
    }
    if (s->timer != NULL) {
        event_free(s->timer);
    }
    if (s->is_pipe) {
        velo_conn_fdread_free(&s->pipe);
    }
    if (s->fd >= 0) {
        close(s->fd);
    }
    free(s->buf);
    free(s->path);
    free(s);
}

static void on_poll_timer(evutil_socket_t fd, short what, void *arg)
{
    struct file_src *s = arg;
    (void)fd;
    (void)what;
    if (s->wake != NULL) {
        s->wake(s->wake_arg);
    }
}

static int file_source_create(struct velo_instance *ins, const void *config,
                              const struct velo_connector_ctx *ctx,
                              struct velo_source_info *info)
{
    const struct file_conf *conf = config;
    if (conf == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "no configuration");
        return VELO_ERR;
    }
    if (wrong_direction(ins, ctx, sink_only, "sinks")) {
        return VELO_ERR;
    }
    if (conf->read_chunk < 4096 || conf->read_chunk > (int64_t)1 << 30) {
        velo_conn_log(ins, VELO_LOG_ERROR,
                      "read.chunk %" PRId64
                      " is out of range: use 4KiB to 1GiB",
                      conf->read_chunk);
        return VELO_ERR;
    }
    if (conf->poll_interval_ms < 1) {
        velo_conn_log(ins, VELO_LOG_ERROR,
                      "poll.interval must be at least 1ms");
        return VELO_ERR;
    }
    struct file_src *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "out of memory");
        return VELO_ERR;
    }
    s->ins = ins;
    s->fd = -1;
    s->chunk = (size_t)conf->read_chunk;
    s->watch = conf->watch;
    s->poll_ms = conf->poll_interval_ms;
    s->path = resolve_path(ins, conf, ctx);
    if (s->path == NULL) {
        file_src_free(s);
        return VELO_ERR;
    }
    s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
        velo_conn_log(ins, VELO_LOG_ERROR, "cannot open %s: %s%s", s->path,
                      strerror(errno),
                      errno == ENOENT ? " (check the path; a relative path is "
                                        "relative to the working directory)"
                                      : "");
        file_src_free(s);
        return VELO_ERR;
    }
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        velo_conn_log(ins, VELO_LOG_ERROR, "cannot stat %s: %s", s->path,
                      strerror(errno));
        file_src_free(s);
        return VELO_ERR;
    }
    if (S_ISDIR(st.st_mode)) {
        velo_conn_log(ins, VELO_LOG_ERROR, "%s is a directory; name a file",
                      s->path);
        file_src_free(s);
        return VELO_ERR;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    info->byte_stream = 1;
    info->bounded = !s->watch;
    info->size_bytes = S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
    if (ctx != NULL) {
        s->base = ctx->base;
        s->wake = ctx->wake;
        s->wake_arg = ctx->wake_arg;
    }
    if (!S_ISREG(st.st_mode)) {
        /* A FIFO or a device: read as it comes, ends at EOF. */
        s->is_pipe = 1;
        info->bounded = 0;
        if (velo_conn_fdread_init(&s->pipe, s->fd, s->chunk, ctx) != VELO_OK) {
            velo_conn_log(ins, VELO_LOG_ERROR, "out of memory");
            file_src_free(s);
            return VELO_ERR;
        }
    } else if (!s->watch && st.st_size > 0) {
        void *m =
            mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, s->fd, 0);
        if (m == MAP_FAILED) {
            velo_conn_log(ins, VELO_LOG_ERROR, "cannot map %s: %s", s->path,
                          strerror(errno));
            file_src_free(s);
            return VELO_ERR;
        }
        madvise(m, (size_t)st.st_size, MADV_SEQUENTIAL);
        s->map = m;
        s->map_len = (size_t)st.st_size;
    } else if (s->watch) {
        s->buf = malloc(s->chunk);
        if (s->buf == NULL) {
            velo_conn_log(ins, VELO_LOG_ERROR, "out of memory");
            file_src_free(s);
            return VELO_ERR;
        }
    }
    ins->context = s;
    return VELO_OK;
}

static int64_t ms_since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)(now.tv_sec - t->tv_sec) * 1000 +
           (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Nothing new in a watched file: come back after the poll interval. */
static int watch_wait(struct file_src *s)
{
    clock_gettime(CLOCK_MONOTONIC, &s->last_check);
    if (s->base != NULL) {
        if (s->timer == NULL) {
            s->timer = evtimer_new(s->base, on_poll_timer, s);
            if (s->timer == NULL) {
                velo_conn_log(s->ins, VELO_LOG_ERROR, "out of memory");
                return VELO_ERR;
            }
        }
        struct timeval tv = {(time_t)(s->poll_ms / 1000),
                             (suseconds_t)(s->poll_ms % 1000) * 1000};
        if (!evtimer_pending(s->timer, NULL)) {
            evtimer_add(s->timer, &tv);
        }
    }
    return VELO_AGAIN;
}

/* Has the name been given to a new file (rotation)? */
static int replaced(const struct file_src *s)
{
    struct stat st;
    if (stat(s->path, &st) != 0) {
        return 0; /* between a rename and the new file: keep waiting */
    }
    return st.st_ino != s->ino || st.st_dev != s->dev;
}

static int watch_read(struct file_src *s, struct velo_str *out)
{
    if (s->last_check.tv_sec != 0 && ms_since(&s->last_check) < s->poll_ms &&
        s->base == NULL) {
        return VELO_AGAIN; /* the caller polls faster than we need to */
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        ssize_t n = pread(s->fd, s->buf, s->chunk, (off_t)s->offset);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            velo_conn_log(s->ins, VELO_LOG_ERROR, "cannot read %s: %s", s->path,
                          strerror(errno));
            return VELO_ERR;
        }
        if (n > 0) {
            s->offset += (uint64_t)n;
            s->last_check.tv_sec = 0;
            out->ptr = s->buf;
            out->len = (size_t)n;
            return VELO_OK;
        }
        struct stat st;
        if (fstat(s->fd, &st) == 0 && (uint64_t)st.st_size < s->offset) {
            velo_conn_log(
                s->ins, VELO_LOG_INFO,
                "%s was truncated (now %lld bytes, we had read %" PRIu64
                "); reading it again from the start",
                s->path, (long long)st.st_size, s->offset);
            s->offset = 0;
            continue;
        }
        if (!replaced(s)) {
            return watch_wait(s);
        }
        /* Rotated: what was appended to the old file before the rename
         * was read above; now follow the name. */
        int fd = open(s->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) != 0) {
            if (fd >= 0) {
                close(fd);
            }
            return watch_wait(s);
        }
        velo_conn_log(s->ins, VELO_LOG_INFO,
                      "%s was replaced (rotated); following the new file",
                      s->path);
        close(s->fd);
        s->fd = fd;
        s->dev = st.st_dev;
        s->ino = st.st_ino;
        s->offset = 0;
    }
    return watch_wait(s);
}

static int file_source_read(struct velo_instance *ins,
                            struct velo_source_batch *out)
{
    struct file_src *s = ins->context;
    out->count = 0;
    if (out->capacity == 0) {
        return VELO_OK;
    }
    if (out->meta != NULL) {
        out->meta[0].timestamp_us = INT64_MIN;
        out->meta[0].partition = -1;
        out->meta[0].key.ptr = NULL;
        out->meta[0].key.len = 0;
    }
    int rc;
    if (s->is_pipe) {
        rc = velo_conn_fdread_next(&s->pipe, &out->payload[0]);
        if (rc == VELO_ERR) {
            velo_conn_log(ins, VELO_LOG_ERROR, "cannot read %s: %s", s->path,
                          strerror(errno));
        }
        if (rc == VELO_OK) {
            s->offset = s->pipe.offset;
        }
    } else if (s->watch) {
        rc = watch_read(s, &out->payload[0]);
    } else {
        if (s->offset >= s->map_len) {
            return VELO_DECLINED;
        }
        size_t n = s->map_len - (size_t)s->offset;
        if (n > s->chunk) {
            n = s->chunk;
        }
        /* The chunks before this one are done with (a payload is valid
         * only until the next read): drop their pages so memory follows
         * the chunk being read, not the file. The file stays mapped. */
        {
            size_t pg = (size_t)sysconf(_SC_PAGESIZE);
            size_t upto = (size_t)s->offset & ~(pg - 1);
            if (upto > s->released) {
                madvise((void *)(s->map + s->released), upto - s->released,
                        MADV_DONTNEED);
                s->released = upto;
            }
        }
        out->payload[0].ptr = s->map + s->offset;
        out->payload[0].len = n;
        s->offset += n;
        /* Ask for the next chunk while this one is decoded. */
        if (s->offset < s->map_len) {
            size_t pg = (size_t)sysconf(_SC_PAGESIZE);
            size_t start = (size_t)s->offset & ~(pg - 1);
            size_t ahead =
                s->map_len - start < s->chunk ? s->map_len - start : s->chunk;
            madvise((void *)(s->map + start), ahead, MADV_WILLNEED);
        }
        rc = VELO_OK;
    }
    if (rc == VELO_OK) {
        out->count = 1;
        if (out->meta != NULL) {
            /* Where the chunk starts (after a truncation or a rotation,
             * that is 0 again). */
            out->meta[0].offset = (int64_t)(s->offset - out->payload[0].len);
        }
    }
    return rc;
}

static int file_source_position(struct velo_instance *ins, uint8_t *buf,
                                size_t cap)
{
    struct file_src *s = ins->context;
    if (cap < FILE_POS_BYTES) {
        return VELO_ERR;
    }
    uint64_t v[2] = {s->offset, (uint64_t)s->ino};
    for (int i = 0; i < 2; i++) {
        for (int b = 0; b < 8; b++) {
            buf[i * 8 + b] = (uint8_t)(v[i] >> (8 * b));
        }
    }
    return FILE_POS_BYTES;
}

static int file_source_seek(struct velo_instance *ins, const uint8_t *pos,
                            size_t len)
{
    struct file_src *s = ins->context;
    if (len != FILE_POS_BYTES) {
        velo_conn_log(ins, VELO_LOG_ERROR,
                      "a file position is %d bytes, got %zu", FILE_POS_BYTES,
                      len);
        return VELO_ERR;
    }
    uint64_t v[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        for (int b = 0; b < 8; b++) {
            v[i] |= (uint64_t)pos[i * 8 + b] << (8 * b);
        }
    }
    if (s->is_pipe) {
        velo_conn_log(ins, VELO_LOG_ERROR,
                      "%s is not a regular file; it cannot resume from a "
                      "position",
                      s->path);
        return VELO_ERR;
    }
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        return VELO_ERR;
    }
    if (v[1] != (uint64_t)s->ino || v[0] > (uint64_t)st.st_size) {
        velo_conn_log(
            ins, VELO_LOG_WARN,
            "%s changed since the checkpoint (replaced or truncated); "
            "reading it from the start",
            s->path);
        s->offset = 0;
        return VELO_OK;
    }
    if (!s->watch && v[0] > s->map_len) {
        s->offset = s->map_len;
        return VELO_OK;
    }
    s->offset = v[0];
    return VELO_OK;
}

static int file_source_commit(struct velo_instance *ins, const uint8_t *pos,
                              size_t len)
{
    (void)ins;
    (void)pos;
    (void)len;
    return VELO_OK; /* nothing upstream to acknowledge */
}

static void file_source_destroy(struct velo_instance *ins)
{
    file_src_free(ins->context);
    ins->context = NULL;
}

/* ---- sink --------------------------------------------------------------- */

struct file_snk {
    struct velo_instance *ins;
    char *path;
    int fd;
    int do_fsync;
    int64_t rotate_bytes;
    int64_t rotate_keep;
    uint64_t size; /* of the current file, buffered bytes included */
    char *buf;
    size_t buf_len;
    int dir_dirty; /* a file was created or renamed: fsync the directory */
    int pending_trunc; /* replace the file's content at the first write */
    int failed;
    size_t unsynced; /* written since writeback was last started */
};

/* Count bytes written to the file; start writeback of its dirty pages
 * now and then (only asked for, never waited on: durability still comes
 * from fsync). */
static void snk_written(struct file_snk *k, size_t n)
{
    k->unsynced += n;
    if (!k->do_fsync || k->unsynced < FILE_SINK_WRITEBACK) {
        return;
    }
    k->unsynced = 0;
#if defined(__linux__) && defined(SYNC_FILE_RANGE_WRITE)
    (void)sync_file_range(k->fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#endif
}

/* lazy: keep what the file holds until snk_settle (a resume may want
 * it); otherwise a non-append open empties it at once. */
static int snk_open(struct file_snk *k, int append, int lazy)
{
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC |
                (append ? O_APPEND : lazy ? 0 : O_TRUNC);
    k->fd = open(k->path, flags, 0644);
    if (k->fd < 0) {
        velo_conn_log(k->ins, VELO_LOG_ERROR,
                      "cannot open %s for writing: %s%s", k->path,
                      strerror(errno),
                      errno == ENOENT ? " (does its directory exist?)" : "");
        return VELO_ERR;
    }
    struct stat st;
    k->size = append && fstat(k->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    k->pending_trunc = !append && lazy;
    k->dir_dirty = 1;
    return VELO_OK;
}

/* Nothing was restored: the first write replaces the old content. */
static int snk_settle(struct file_snk *k)
{
    if (!k->pending_trunc) {
        return VELO_OK;
    }
    k->pending_trunc = 0;
    if (ftruncate(k->fd, 0) != 0 || lseek(k->fd, 0, SEEK_SET) < 0) {
        velo_conn_log(k->ins, VELO_LOG_ERROR, "cannot truncate %s: %s",
                      k->path, strerror(errno));
        k->failed = 1;
        return VELO_ERR;
    }
    k->size = 0;
    return VELO_OK;
}

static int snk_drain(struct file_snk *k)
{
    if (k->buf_len == 0) {
        return VELO_OK;
    }
    if (velo_conn_write_all(k->fd, k->buf, k->buf_len) != VELO_OK) {
        velo_conn_log(k->ins, VELO_LOG_ERROR, "cannot write %s: %s", k->path,
                      strerror(errno));
        k->failed = 1;
        return VELO_ERR;
    }
    snk_written(k, k->buf_len);
    k->buf_len = 0;
    return VELO_OK;
}

static int fsync_dir(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == path) {
        snprintf(dir, sizeof(dir), "/");
    } else {
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    }
    return velo_fsync_dir(dir);
}

static void rotated_name(const char *path, int64_t i, char *out, size_t len)
{
    snprintf(out, len, "%s.%" PRId64, path, i);
}

/* path -> path.1, path.1 -> path.2, ...; the oldest past rotate.keep is
 * removed. */
static int snk_rotate(struct file_snk *k)
{
    if (snk_drain(k) != VELO_OK) {
        return VELO_ERR;
    }
    if (k->do_fsync && fsync(k->fd) != 0) {
        velo_conn_log(k->ins, VELO_LOG_ERROR, "cannot fsync %s: %s", k->path,
                      strerror(errno));
        return VELO_ERR;
    }
    close(k->fd);
    k->fd = -1;
    size_t plen = strlen(k->path) + 32;
    char *from = malloc(plen), *to = malloc(plen);
    if (from == NULL || to == NULL) {
        free(from);
        free(to);
        return VELO_ERR;
    }
    int64_t top = 0;
    struct stat st;
    for (;;) {
        rotated_name(k->path, top + 1, from, plen);
        if (stat(from, &st) != 0) {
            break;
        }
        top++;
    }
    int64_t keep = k->rotate_keep;
    for (int64_t i = top; i >= 1; i--) {
        rotated_name(k->path, i, from, plen);
        if (keep > 0 && i >= keep) {
            unlink(from);
            continue;
        }
        rotated_name(k->path, i + 1, to, plen);
        if (rename(from, to) != 0) {
            velo_conn_log(k->ins, VELO_LOG_ERROR, "cannot rename %s to %s: %s",
                          from, to, strerror(errno));
            free(from);
            free(to);
            return VELO_ERR;
        }
    }
    rotated_name(k->path, 1, to, plen);
    int rc = VELO_OK;
    if (rename(k->path, to) != 0) {
        velo_conn_log(k->ins, VELO_LOG_ERROR, "cannot rename %s to %s: %s",
                      k->path, to, strerror(errno));
        rc = VELO_ERR;
    }
    free(from);
    free(to);
    if (rc == VELO_OK) {
        rc = snk_open(k, 0, 0);
    }
    return rc;
}

static int file_sink_create(struct velo_instance *ins, const void *config,
                            const struct velo_connector_ctx *ctx)
{
    const struct file_conf *conf = config;
    if (conf == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "no configuration");
        return VELO_ERR;
    }
    if (wrong_direction(ins, ctx, source_only, "sources")) {
        return VELO_ERR;
    }
    if (conf->rotate_bytes < 0 || conf->rotate_keep < 0) {
        velo_conn_log(ins, VELO_LOG_ERROR,
                      "rotate.bytes and rotate.keep cannot be negative");
        return VELO_ERR;
    }
    struct file_snk *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "out of memory");
        return VELO_ERR;
    }
    k->ins = ins;
    k->fd = -1;
    k->do_fsync = conf->fsync;
    k->rotate_bytes = conf->rotate_bytes;
    k->rotate_keep = conf->rotate_keep;
    k->path = resolve_path(ins, conf, ctx);
    k->buf = malloc(FILE_SINK_BUFFER);
    if (k->path == NULL || k->buf == NULL ||
        snk_open(k, conf->append, 1) != VELO_OK) {
        if (k->buf == NULL && k->path != NULL) {
            velo_conn_log(ins, VELO_LOG_ERROR, "out of memory");
        }
        free(k->path);
        free(k->buf);
        free(k);
        return VELO_ERR;
    }
    ins->context = k;
    return VELO_OK;
}

static int file_sink_write(struct velo_instance *ins,
                           const struct velo_str *recs,
                           const struct velo_record_meta *meta, size_t n)
{
    struct file_snk *k = ins->context;
    (void)meta;
    if (k->failed || snk_settle(k) != VELO_OK) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        const char *p = recs[i].ptr;
        size_t len = recs[i].len;
        if (len == 0) {
            continue;
        }
        /* Rotation falls between the payloads we are given, so a record
         * is never split across two files. */
        if (k->rotate_bytes > 0 && k->size > 0 &&
            k->size + len > (uint64_t)k->rotate_bytes &&
            snk_rotate(k) != VELO_OK) {
            k->failed = 1;
            return VELO_ERR;
        }
        if (k->buf_len + len > FILE_SINK_BUFFER && snk_drain(k) != VELO_OK) {
            return VELO_ERR;
        }
        if (len >= FILE_SINK_BUFFER / 4) {
            /* Large: straight out, after what is buffered. */
            if (snk_drain(k) != VELO_OK) {
                return VELO_ERR;
            }
            if (velo_conn_write_all(k->fd, p, len) != VELO_OK) {
                velo_conn_log(ins, VELO_LOG_ERROR, "cannot write %s: %s",
                              k->path, strerror(errno));
                k->failed = 1;
                return VELO_ERR;
            }
            snk_written(k, len);
        } else {
            memcpy(k->buf + k->buf_len, p, len);
            k->buf_len += len;
        }
        k->size += len;
    }
    return VELO_OK;
}

static int file_sink_flush(struct velo_instance *ins)
{
    struct file_snk *k = ins->context;
    if (k->failed || snk_settle(k) != VELO_OK || snk_drain(k) != VELO_OK) {
        return VELO_ERR;
    }
    if (!k->do_fsync) {
        return VELO_OK;
    }
    if (fsync(k->fd) != 0) {
        velo_conn_log(ins, VELO_LOG_ERROR, "cannot fsync %s: %s", k->path,
                      strerror(errno));
        k->failed = 1;
        return VELO_ERR;
    }
    if (k->dir_dirty) {
        /* A new or renamed file is durable only once its directory
         * entry is. */
        if (fsync_dir(k->path) != VELO_OK) {
            velo_conn_log(ins, VELO_LOG_WARN,
                          "cannot fsync the directory of %s: "
                          "%s",
                          k->path, strerror(errno));
        }
        k->dir_dirty = 0;
    }
    return VELO_OK;
}

static void file_sink_destroy(struct velo_instance *ins)
{
    struct file_snk *k = ins->context;
    if (k == NULL) {
        return;
    }
    /* Never written nor flushed (a prepare that failed): the old content
     * stays, as the run that would have replaced it never happened. */
    if (!k->failed && k->fd >= 0 && !k->pending_trunc &&
        snk_drain(k) == VELO_OK && k->do_fsync) {
        fsync(k->fd);
    }
    if (k->fd >= 0) {
        close(k->fd);
    }
    free(k->buf);
    free(k->path);
    free(k);
    ins->context = NULL;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int b = 0; b < 8; b++) {
        p[b] = (uint8_t)(v >> (8 * b));
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int b = 0; b < 8; b++) {
        v |= (uint64_t)p[b] << (8 * b);
    }
    return v;
}

/* What is durable: the current file (dev, inode) and its length. */
static int file_sink_position(struct velo_instance *ins, uint8_t *buf,
                              size_t cap)
{
    struct file_snk *k = ins->context;
    struct stat st;
    if (cap < FILE_SINK_POS_BYTES || k->fd < 0 || fstat(k->fd, &st) != 0) {
        return VELO_ERR;
    }
    put_u64(buf, k->size - k->buf_len);
    put_u64(buf + 8, (uint64_t)st.st_ino);
    put_u64(buf + 16, (uint64_t)st.st_dev);
    return FILE_SINK_POS_BYTES;
}

/* The file the checkpoint wrote into was rotated to path.<at> since:
 * the files written after it (path, path.1 .. path.<at-1>) go, and the
 * older ones move back down the numbering. */
static int snk_unrotate(struct file_snk *k, int64_t at)
{
    size_t plen = strlen(k->path) + 32;
    char *from = malloc(plen), *to = malloc(plen);
    int rc = VELO_OK;
    if (from == NULL || to == NULL) {
        free(from);
        free(to);
        return VELO_ERR;
    }
    close(k->fd);
    k->fd = -1;
    if (unlink(k->path) != 0 && errno != ENOENT) {
        rc = VELO_ERR;
    }
    for (int64_t i = 1; rc == VELO_OK && i < at; i++) {
        rotated_name(k->path, i, from, plen);
        unlink(from);
    }
    struct stat st;
    for (int64_t i = at; rc == VELO_OK; i++) {
        rotated_name(k->path, i, from, plen);
        if (stat(from, &st) != 0) {
            break;
        }
        if (i == at) {
            snprintf(to, plen, "%s", k->path);
        } else {
            rotated_name(k->path, i - at, to, plen);
        }
        if (rename(from, to) != 0) {
            velo_conn_log(k->ins, VELO_LOG_ERROR,
                          "cannot rename %s to %s: %s", from, to,
                          strerror(errno));
            rc = VELO_ERR;
        }
    }
    free(from);
    free(to);
    if (rc == VELO_OK) {
        k->fd = open(k->path, O_WRONLY | O_CLOEXEC);
        if (k->fd < 0) {
            velo_conn_log(k->ins, VELO_LOG_ERROR, "cannot open %s: %s",
                          k->path, strerror(errno));
            rc = VELO_ERR;
        }
    }
    k->dir_dirty = 1;
    return rc;
}

/* Resume: cut the recorded file back to its recorded length, so what
 * was written after the checkpoint (and will be written again) goes. */
static int file_sink_restore(struct velo_instance *ins, const uint8_t *pos,
                             size_t len)
{
    struct file_snk *k = ins->context;
    if (len != FILE_SINK_POS_BYTES) {
        velo_conn_log(ins, VELO_LOG_ERROR,
                      "a file sink position is %d bytes, got %zu",
                      FILE_SINK_POS_BYTES, len);
        return VELO_ERR;
    }
    uint64_t size = get_u64(pos), ino = get_u64(pos + 8),
             dev = get_u64(pos + 16);
    struct stat st;
    if (fstat(k->fd, &st) != 0) {
        return VELO_ERR;
    }
    if ((uint64_t)st.st_ino != ino || (uint64_t)st.st_dev != dev) {
        /* Rotated since the checkpoint? Look for the file by inode. */
        size_t plen = strlen(k->path) + 32;
        char *name = malloc(plen);
        int64_t at = 0;
        for (int64_t i = 1; name != NULL; i++) {
            rotated_name(k->path, i, name, plen);
            if (stat(name, &st) != 0) {
                break;
            }
            if ((uint64_t)st.st_ino == ino && (uint64_t)st.st_dev == dev) {
                at = i;
                break;
            }
        }
        free(name);
        if (at == 0) {
            velo_conn_log(ins, VELO_LOG_ERROR,
                          "%s is not the file the checkpoint wrote to (it "
                          "was replaced or removed since); move the state "
                          "away or run with --reset-state",
                          k->path);
            return VELO_ERR;
        }
        velo_conn_log(ins, VELO_LOG_INFO,
                      "undoing the rotations of %s made after the "
                      "checkpoint",
                      k->path);
        if (snk_unrotate(k, at) != VELO_OK || fstat(k->fd, &st) != 0) {
            k->failed = 1;
            return VELO_ERR;
        }
    }
    if ((uint64_t)st.st_size < size) {
        velo_conn_log(ins, VELO_LOG_ERROR,
                      "%s has %lld bytes but the checkpoint recorded %" PRIu64
                      " durable ones: it was changed since; run with "
                      "--reset-state",
                      k->path, (long long)st.st_size, size);
        return VELO_ERR;
    }
    if (ftruncate(k->fd, (off_t)size) != 0 ||
        lseek(k->fd, (off_t)size, SEEK_SET) < 0) {
        velo_conn_log(ins, VELO_LOG_ERROR, "cannot truncate %s: %s", k->path,
                      strerror(errno));
        return VELO_ERR;
    }
    k->pending_trunc = 0;
    k->size = size;
    k->buf_len = 0;
    return VELO_OK;
}

const struct velo_connector_vtable velo_file_connector = {
    .size = (uint32_t)sizeof(struct velo_connector_vtable),
    .scheme = "file",
    .flags = VELO_CONNECTOR_SOURCE | VELO_CONNECTOR_SINK,
    .source_create = file_source_create,
    .source_read = file_source_read,
    .source_position = file_source_position,
    .source_seek = file_source_seek,
    .source_commit = file_source_commit,
    .source_destroy = file_source_destroy,
    .sink_create = file_sink_create,
    .sink_write = file_sink_write,
    .sink_flush = file_sink_flush,
    .sink_destroy = file_sink_destroy,
    .sink_position = file_sink_position,
    .sink_restore = file_sink_restore,
};
