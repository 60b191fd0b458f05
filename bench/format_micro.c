/*
 * The record scanners (and encoders) alone, without the engine:
 *
 *   format_micro bids.csv csv     |  format_micro bids.jsonl jsonl
 *
 * Decodes every Nexmark column of the whole file into reused batches,
 * then decodes and re-encodes (same format) into a reused buffer, and
 * prints rows per second for both. The file is read once first so the
 * page cache is warm and the figures are the scanner's, not the disk's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "exec/batch.h"
#include "formats/format.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void on_bad(void *arg, int64_t pos, int64_t line, const char *rec,
                   size_t len, const char *msg)
{
    (void)arg;
    fprintf(stderr, "bad record at %lld (line %lld): %s: %.*s\n",
            (long long)pos, (long long)line, msg, (int)(len < 120 ? len : 120),
            rec);
}

struct run {
    double seconds;
    unsigned long long rows;
    unsigned long long bytes_out;
};

static int decode_all(const struct velo_format_opts *o,
                      const struct velo_schema *schema, const char *map,
                      size_t len, int encode, struct run *res)
{
    char err[512];
    struct velo_decoder *d =
        velo_decoder_create(o, schema, NULL, err, sizeof(err));
    struct velo_batch *b = velo_batch_create(schema, VELO_BATCH_ROWS);
    struct velo_encoder *e = encode ? velo_encoder_create(o, schema, 0) : NULL;
    if (d == NULL || b == NULL || (encode && e == NULL)) {
        fprintf(stderr, "format_micro: setup failed: %s\n",
                d == NULL ? err : "out of memory");
        return -1;
    }
    const char *p = map;
    size_t left = len;
    int64_t line = 1;
    if (o->kind == VELO_FORMAT_CSV) {
        const char *nl = memchr(p, '\n', left);
        size_t hl = nl != NULL ? (size_t)(nl - p) : left;
        if (velo_decoder_set_header(d, p, hl, err, sizeof(err)) != 0) {
            fprintf(stderr, "format_micro: %s\n", err);
            return -1;
        }
        p += hl + 1;
        left -= hl + 1;
        line++;
    }
    struct velo_decode_report rep = {on_bad, NULL, 0};
    struct velo_buf out = {0};
    double t0 = now_s();
    unsigned long long rows = 0, bytes = 0;
    while (left > 0) {
        size_t used = velo_decode_stream(d, p, left, 1, b, 0,
                                         (int64_t)(p - map), line, &rep);
        rows += b->nrows;
        if (e != NULL) {
            out.len = 0;
            if (velo_encode(e, b, &out) != 0) {
                fprintf(stderr, "format_micro: encode failed\n");
                return -1;
            }
            bytes += out.len;
        }
        velo_batch_reset(b);
        if (used == 0) {
            break;
        }
        p += used;
        left -= used;
    }
    res->seconds = now_s() - t0;
    res->rows = rows;
    res->bytes_out = bytes;
    if (rep.bad > 0) {
        fprintf(stderr, "format_micro: %llu bad records\n",
                (unsigned long long)rep.bad);
    }
    velo_buf_free(&out);
    velo_encoder_destroy(e);
    velo_batch_destroy(b);
    velo_decoder_destroy(d);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: format_micro FILE csv|jsonl\n");
        return 2;
    }
    int kind = velo_format_parse(argv[2]);
    if (kind != VELO_FORMAT_CSV && kind != VELO_FORMAT_JSON) {
        fprintf(stderr, "format_micro: format must be csv or jsonl\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
        fprintf(stderr, "format_micro: cannot read %s: %s\n", argv[1],
                fd < 0 ? strerror(errno) : "empty");
        return 1;
    }
    size_t len = (size_t)st.st_size;
    const char *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        fprintf(stderr, "format_micro: cannot map: %s\n", strerror(errno));
        return 1;
    }
    /* Warm the page cache and the mapping. */
    volatile unsigned char sink = 0;
    for (size_t i = 0; i < len; i += 4096) {
        sink ^= (unsigned char)map[i];
    }
    (void)sink;

    static const struct {
        const char *name;
        int type;
    } cols[] = {{"auction", VELO_TYPE_BIGINT}, {"bidder", VELO_TYPE_BIGINT},
                {"price", VELO_TYPE_BIGINT},   {"channel", VELO_TYPE_STRING},
                {"url", VELO_TYPE_STRING},     {"ts", VELO_TYPE_TIMESTAMP}};
    struct velo_schema *schema = velo_schema_create(7);
    if (schema == NULL) {
        return 1;
    }
    for (size_t i = 0; i < 6; i++) {
        struct velo_datatype t = {(uint8_t)cols[i].type, 0, 0};
        velo_schema_set(schema, i, cols[i].name, t, 1, 0);
    }
    struct velo_datatype ts = {VELO_TYPE_TIMESTAMP, 0, 0};
    velo_schema_set(schema, 6, "_timestamp", ts, 1, 1);

    struct velo_format_opts o;
    velo_format_opts_default(&o, kind);
    struct run dec, enc;
    if (decode_all(&o, schema, map, len, 0, &dec) != 0 ||
        decode_all(&o, schema, map, len, 1, &enc) != 0) {
        return 1;
    }
    printf("%s decode: %llu rows in %.3f s = %.2f M rows/s (%.0f MB/s)\n",
           argv[2], dec.rows, dec.seconds, (double)dec.rows / dec.seconds / 1e6,
           (double)len / dec.seconds / 1e6);
    printf("%s decode+encode: %llu rows in %.3f s = %.2f M rows/s "
           "(%llu bytes out)\n",
           argv[2], enc.rows, enc.seconds, (double)enc.rows / enc.seconds / 1e6,
           enc.bytes_out);
    velo_schema_destroy(schema);
    munmap((void *)map, len);
    close(fd);
    return 0;
}
