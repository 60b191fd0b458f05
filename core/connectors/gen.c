/*
 * The gen source: synthetic records from a schema file, the same
 * generator `velo generate` and `velo test` use.
 *
 *   FROM 'gen:///data/orders.schema.yaml?records=1000&seed=7'
 *   or '<name>.type'='gen_source', '<name>.schema.file'='orders.schema.yaml'
 *
 * Bounded: it ends after `records` rows. Each payload is one JSON object
 * (the decoder reads JSON Lines). The position is the count of records
 * handed over; resuming regenerates from the start and skips that many,
 * which gives the same rows because generation is deterministic.
 * References to other sources need `velo test`, which generates those
 * first; here they are an error naming the field.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "connectors/builtin.h"
#include "formats/format.h"
#include "testkit/testkit.h"

#define GEN_POS_BYTES 8

struct gen_conf {
    char *schema_file;
    int64_t records;
    int64_t seed;
};

const struct velo_config_map velo_gen_config_map[] = {
    {VELO_CONFIG_STR, "schema.file", "", offsetof(struct gen_conf, schema_file),
     "the schema YAML (fields, types, constraints); gen:///path/x.yaml "
     "sets it too"},
    {VELO_CONFIG_INT, "records", "-1", offsetof(struct gen_conf, records),
     "records to generate (default: the URI's records=, else the schema's "
     "schema.records, else 1000)"},
    {VELO_CONFIG_INT, "seed", "-1", offsetof(struct gen_conf, seed),
     "random seed (default: the URI's seed=, else 0); the same seed gives "
     "the same records"},
    {0}};
const size_t velo_gen_config_size = sizeof(struct gen_conf);

struct gen_src {
    struct velo_tk_schema *schema;
    struct velo_tk_gen *gen;
    uint64_t seed;
    int64_t records, done;
    struct velo_buf buf; /* this batch's rows, back to back */
    size_t *ends;        /* end offset of each row in buf */
    size_t cap;
};

static void gen_free(struct gen_src *s)
{
    if (s == NULL) {
        return;
    }
    velo_tk_gen_destroy(s->gen);
    velo_tk_schema_free(s->schema);
    velo_buf_free(&s->buf);
    free(s->ends);
    free(s);
}

static int gen_create(struct velo_instance *ins, const void *config,
                      const struct velo_connector_ctx *ctx,
                      struct velo_source_info *info)
{
    const struct gen_conf *conf = config;
    if (conf == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "no configuration");
        return VELO_ERR;
    }
    char path[4096] = "";
    int64_t records = 0;
    uint64_t seed = 0;
    if (ctx != NULL && ctx->uri != NULL &&
        velo_tk_gen_uri(ctx->uri, path, sizeof(path), &records, &seed) != 0) {
        velo_conn_log(ins, VELO_LOG_ERROR,
                      "bad gen URI '%s': write "
                      "gen:///path/x.schema.yaml?records=N&seed=S",
                      ctx->uri);
        return VELO_ERR;
    }
    if (conf->schema_file != NULL && conf->schema_file[0] != '\0') {
        snprintf(path, sizeof(path), "%s", conf->schema_file);
    }
    if (path[0] == '\0') {
        velo_conn_log(ins, VELO_LOG_ERROR,
                      "no schema: set '%s.schema.file'='orders.schema.yaml' "
                      "or use FROM 'gen:///path/orders.schema.yaml'",
                      ctx != NULL && ctx->name ? ctx->name : "name");
        return VELO_ERR;
    }
    struct gen_src *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "out of memory");
        return VELO_ERR;
    }
    char err[512];
    s->schema = velo_tk_schema_load(path, err, sizeof(err));
    if (s->schema == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "%s", err);
        gen_free(s);
        return VELO_ERR;
    }
    s->seed = conf->seed >= 0 ? (uint64_t)conf->seed : seed;
    s->records = conf->records >= 0       ? conf->records
                 : records > 0            ? records
                 : s->schema->records > 0 ? s->schema->records
                                          : 1000;
    s->gen = velo_tk_gen_create(s->schema, s->seed, 0, NULL, err, sizeof(err));
    if (s->gen == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "%s: %s", path, err);
        gen_free(s);
        return VELO_ERR;
    }
    info->bounded = 1;
    info->byte_stream = 0;
    info->size_bytes = -1;
    ins->context = s;
    return VELO_OK;
}

static int gen_read(struct velo_instance *ins, struct velo_source_batch *out)
{
    struct gen_src *s = ins->context;
    out->count = 0;
    if (s->done >= s->records) {
        return VELO_DECLINED;
    }
    size_t n = out->capacity;
    if ((int64_t)n > s->records - s->done) {
        n = (size_t)(s->records - s->done);
    }
    if (n > s->cap) {
        size_t *ne = realloc(s->ends, n * sizeof(*ne));
        if (ne == NULL) {
            velo_conn_log(ins, VELO_LOG_ERROR, "out of memory");
            return VELO_ERR;
        }
        s->ends = ne;
        s->cap = n;
    }
    /* Rows go into one buffer first (it may move while growing); the
     * views are taken after. */
    s->buf.len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *row = velo_tk_gen_row_json(s->gen, &len);
        if (velo_buf_append(&s->buf, row, len) != VELO_OK) {
            velo_conn_log(ins, VELO_LOG_ERROR, "out of memory");
            return VELO_ERR;
        }
        s->ends[i] = s->buf.len;
    }
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        out->payload[i].ptr = s->buf.data + start;
        out->payload[i].len = s->ends[i] - start;
        if (out->meta != NULL) {
            out->meta[i].timestamp_us = INT64_MIN;
            out->meta[i].partition = -1;
            out->meta[i].offset = s->done + (int64_t)i;
            out->meta[i].key.ptr = NULL;
            out->meta[i].key.len = 0;
        }
        if (out->headers != NULL) {
            out->headers[i].ptr = NULL; /* generated records have none */
            out->headers[i].len = 0;
        }
        start = s->ends[i];
    }
    out->count = n;
    s->done += (int64_t)n;
    return VELO_OK;
}

static int gen_position(struct velo_instance *ins, uint8_t *buf, size_t cap)
{
    struct gen_src *s = ins->context;
    if (cap < GEN_POS_BYTES) {
        return VELO_ERR;
    }
    for (int b = 0; b < 8; b++) {
        buf[b] = (uint8_t)((uint64_t)s->done >> (8 * b));
    }
    return GEN_POS_BYTES;
}

static int gen_seek(struct velo_instance *ins, const uint8_t *pos, size_t len)
{
    struct gen_src *s = ins->context;
    if (len != GEN_POS_BYTES) {
        velo_conn_log(ins, VELO_LOG_ERROR, "bad checkpoint position");
        return VELO_ERR;
    }
    uint64_t at = 0;
    for (int b = 0; b < 8; b++) {
        at |= (uint64_t)pos[b] << (8 * b);
    }
    char err[256];
    struct velo_tk_gen *g =
        velo_tk_gen_create(s->schema, s->seed, 0, NULL, err, sizeof(err));
    if (g == NULL) {
        velo_conn_log(ins, VELO_LOG_ERROR, "%s", err);
        return VELO_ERR;
    }
    velo_tk_gen_destroy(s->gen);
    s->gen = g;
    for (uint64_t i = 0; i < at; i++) {
        size_t l;
        velo_tk_gen_row_json(g, &l);
    }
    s->done = (int64_t)at;
    return VELO_OK;
}

static int gen_commit(struct velo_instance *ins, const uint8_t *pos, size_t len)
{
    (void)ins;
    (void)pos;
    (void)len;
    return VELO_OK;
}

static void gen_destroy(struct velo_instance *ins)
{
    gen_free(ins->context);
    ins->context = NULL;
}

const struct velo_connector_vtable velo_gen_connector = {
    .size = (uint32_t)sizeof(struct velo_connector_vtable),
    .scheme = "gen",
    .flags = VELO_CONNECTOR_SOURCE,
    .source_create = gen_create,
    .source_read = gen_read,
    .source_position = gen_position,
    .source_seek = gen_seek,
    .source_commit = gen_commit,
    .source_destroy = gen_destroy,
};
