/*
 * Lookup tables over connectors: see lookup.h.
 *
 * One get asks the connector for the keys in chunks of at most
 * LOOKUP_CHUNK (the payload array is allocated once), decodes each
 * answer's JSON object into row i of the caller's batch, and marks keys
 * without a row: their row is all NULL (the JSON decoder given "{}").
 * Strings decoded from a chunk point into the connector's buffers, valid
 * until its next lookup_get: when a get needs more than one chunk, the
 * earlier chunks' strings are copied into the batch's arena first.
 */
#include "connectors/lookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/batch.h"
#include "exec/expr.h"
#include "formats/format.h"
#include "plugin/host.h"

#define LOOKUP_CHUNK 1024

struct velo_lookup_table {
    const struct velo_connector_ref *conn;
    void *config;
    struct velo_instance ins;
    int opened;
    char label[128];
    char *name;
    const struct velo_schema *schema;
    struct velo_decoder *dec;
    int ts_col;               /* hidden "_timestamp" of the schema, or -1 */
    struct velo_str *payload; /* LOOKUP_CHUNK entries */
    char bad[256];            /* the decoder's complaint, for get's err */
};

static const struct velo_str lookup_empty = {"{}", 2};

struct velo_lookup_table *velo_lookup_open(const struct velo_lookup_spec *s,
                                           char *err, size_t errlen)
{
    const struct velo_connector_vtable *vt = s->conn->vt;
    if (!VELO_VTABLE_HAS(vt, lookup_create) ||
        !VELO_VTABLE_HAS(vt, lookup_get) ||
        !VELO_VTABLE_HAS(vt, lookup_destroy)) {
        snprintf(err, errlen,
                 "table '%s': connector '%s' cannot serve lookups (it has "
                 "no lookup support); join a table the job loads instead, "
                 "or use a connector with lookups (postgres, redis)",
                 s->name, s->conn->name);
        return NULL;
    }
    struct velo_lookup_table *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->conn = s->conn;
    t->schema = s->schema;
    t->ts_col = velo_schema_find(s->schema, VELO_COL_TIMESTAMP);
    t->name = strdup(s->name != NULL ? s->name : "lookup");
    t->payload = calloc(LOOKUP_CHUNK, sizeof(*t->payload));
    if (t->name == NULL || t->payload == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    struct velo_format_opts fo;
    velo_format_opts_default(&fo, VELO_FORMAT_JSON);
    char why[256];
    t->dec = velo_decoder_create(&fo, s->schema, NULL, why, sizeof(why));
    if (t->dec == NULL) {
        snprintf(err, errlen, "table '%s': %s", t->name, why);
        goto fail;
    }
    const char *bad_key = NULL;
    if (velo_connector_config_fill(s->conn, s->props, s->nprops, NULL,
                                   &t->config, &bad_key, err,
                                   errlen) != VELO_OK) {
        goto fail;
    }
    snprintf(t->label, sizeof(t->label), "%s",
             s->label != NULL ? s->label : t->name);
    struct velo_connector_ctx ctx = {
        .job = NULL,
        .name = t->name,
        .uri = s->uri,
        .props = s->props,
        .nprops = s->nprops,
        .base = s->base,
        .wake = NULL,
        .wake_arg = NULL,
    };
    t->ins.host = velo_host_api();
    t->ins.name = t->label;
    t->ins.context = NULL;
    if (vt->lookup_create(&t->ins, t->config, &ctx, s->key) != VELO_OK) {
        char redacted[256];
        if (s->uri != NULL) {
            velo_uri_redact(s->uri, redacted, sizeof(redacted));
        } else {
            snprintf(redacted, sizeof(redacted), "%s_source", s->conn->name);
        }
        snprintf(err, errlen,
                 "cannot open lookup table '%s' (%s) by '%s'; the reason is "
                 "logged above",
                 t->name, redacted, s->key);
        goto fail;
    }
    t->opened = 1;
    return t;
fail:
    velo_lookup_close(t);
    return NULL;
}

void velo_lookup_close(struct velo_lookup_table *t)
{
    if (t == NULL) {
        return;
    }
    if (t->opened) {
        t->conn->vt->lookup_destroy(&t->ins);
    }
    if (t->config != NULL) {
        velo_connector_config_free(t->conn, t->config);
    }
    if (t->dec != NULL) {
        velo_decoder_destroy(t->dec);
    }
    free(t->payload);
    free(t->name);
    free(t);
}

void velo_lookup_provider_init(struct velo_lookup_table *t,
                               struct velo_lookup_provider *p,
                               size_t cache_entries, int64_t cache_ttl_us)
{
    memset(p, 0, sizeof(*p));
    p->schema = t->schema;
    p->get = velo_lookup_get;
    p->arg = t;
    p->cache_entries = cache_entries;
    p->cache_ttl_us = cache_ttl_us;
}

static void lookup_bad(void *arg, int64_t position, int64_t line,
                       const char *record, size_t record_len, const char *msg)
{
    struct velo_lookup_table *t = arg;
    (void)position;
    (void)line;
    (void)record;
    (void)record_len;
    if (t->bad[0] == '\0') {
        snprintf(t->bad, sizeof(t->bad), "%s", msg);
    }
}

/* Copy the strings of rows [from, to) into the batch's arena: the views
 * the decoder made point into the connector's buffers. */
static int lookup_own_strings(struct velo_batch *out, size_t from, size_t to)
{
    for (size_t c = 0; c < out->ncols; c++) {
        struct velo_column *col = &out->cols[c];
        if (col->type.id != VELO_TYPE_STRING &&
            col->type.id != VELO_TYPE_BYTES && col->type.id != VELO_TYPE_JSON) {
            continue;
        }
        for (size_t r = from; r < to; r++) {
            struct velo_str *v = &col->v.str[r];
            if (col->nulls[r] || v->len == 0) {
                continue;
            }
            char *copy = velo_arena_strdup(out->arena, v->ptr, v->len);
            if (copy == NULL) {
                return VELO_ERR;
            }
            v->ptr = copy;
        }
    }
    return VELO_OK;
}

int velo_lookup_get(void *table, const struct velo_str *keys, size_t n,
                    struct velo_batch *out, uint8_t *found, char *err,
                    size_t errlen)
{
    struct velo_lookup_table *t = table;
    if (n > out->cap) {
        snprintf(err, errlen, "lookup table '%s': %zu keys for a batch of %zu",
                 t->name, n, out->cap);
        return VELO_ERR;
    }
    struct velo_decode_report rep = {.bad_record = lookup_bad, .arg = t};
    for (size_t base = 0; base < n; base += LOOKUP_CHUNK) {
        size_t m = n - base < LOOKUP_CHUNK ? n - base : LOOKUP_CHUNK;
        if (base > 0 && lookup_own_strings(out, 0, base) != VELO_OK) {
            snprintf(err, errlen, "out of memory");
            return VELO_ERR;
        }
        struct velo_source_batch sb = {
            .count = 0, .capacity = m, .payload = t->payload, .meta = NULL};
        if (t->conn->vt->lookup_get(&t->ins, keys + base, m, &sb) != VELO_OK) {
            snprintf(err, errlen,
                     "lookup table '%s': reading %zu keys failed; the "
                     "reason is logged above",
                     t->name, m);
            return VELO_ERR;
        }
        if (sb.count != m) {
            snprintf(err, errlen,
                     "lookup table '%s': the connector answered %zu of %zu "
                     "keys",
                     t->name, sb.count, m);
            return VELO_ERR;
        }
        for (size_t i = 0; i < m; i++) {
            size_t row = base + i;
            int hit = t->payload[i].ptr != NULL;
            const struct velo_str *p = hit ? &t->payload[i] : &lookup_empty;
            t->bad[0] = '\0';
            out->nrows = row;
            if (velo_decode_records(t->dec, p, NULL, 1, out, -1, &rep) != 1 ||
                out->nrows != row + 1) {
                snprintf(err, errlen,
                         "lookup table '%s': the row for key '%.*s' does not "
                         "fit the table's columns: %s",
                         t->name,
                         (int)(keys[row].len > 64 ? 64 : keys[row].len),
                         keys[row].ptr, t->bad[0] ? t->bad : "bad JSON");
                return VELO_ERR;
            }
            found[row] = (uint8_t)hit;
            if (t->ts_col >= 0) {
                /* Event time is the stream row's; the table's is unknown. */
                out->cols[t->ts_col].nulls[row] = 1;
                out->cols[t->ts_col].has_nulls = 1;
            }
        }
    }
    out->nrows = n;
    return VELO_OK;
}
