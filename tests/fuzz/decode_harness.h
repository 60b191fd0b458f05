/*
 * The decode harness shared by the CSV and JSON Lines fuzzers: any bytes,
 * any options, split anywhere, must give rows or reported bad records,
 * never a crash, a leak or a read outside the input. The decoded rows are
 * re-encoded (CSV and JSON) to exercise the encoders on whatever the
 * scanner let through. The including file defines fuzz_format_opts().
 */
#ifndef VELO_FUZZ_DECODE_HARNESS_H
#define VELO_FUZZ_DECODE_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/batch.h"
#include "formats/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct velo_schema *schema;

static void setup(void)
{
    static const struct {
        const char *name;
        int type;
        int p, s;
    } cols[] = {
        {"a", VELO_TYPE_BIGINT, 0, 0},   {"b", VELO_TYPE_STRING, 0, 0},
        {"c", VELO_TYPE_DECIMAL, 10, 2}, {"d", VELO_TYPE_TIMESTAMP, 0, 0},
        {"e", VELO_TYPE_DOUBLE, 0, 0},   {"f", VELO_TYPE_JSON, 0, 0},
        {"g", VELO_TYPE_BOOLEAN, 0, 0},  {"h", VELO_TYPE_INTEGER, 0, 0},
        {"i", VELO_TYPE_INTERVAL, 0, 0}, {"j", VELO_TYPE_DATE, 0, 0}};
    size_t n = sizeof(cols) / sizeof(cols[0]);
    schema = velo_schema_create(n + 1);
    for (size_t i = 0; i < n; i++) {
        struct velo_datatype t = {(uint8_t)cols[i].type, (uint8_t)cols[i].p,
                                  (int8_t)cols[i].s};
        velo_schema_set(schema, i, cols[i].name, t, 1, 0);
    }
    struct velo_datatype ts = {VELO_TYPE_TIMESTAMP, 0, 0};
    velo_schema_set(schema, n, "_timestamp", ts, 1, 1);
}

static volatile size_t bad_sum;

/* Touch every byte a report hands over: a length past the record would
 * be caught here. */
static void on_bad(void *arg, int64_t position, int64_t line,
                   const char *record, size_t len, const char *msg)
{
    (void)arg;
    (void)position;
    (void)line;
    for (size_t i = 0; i < len; i++) {
        bad_sum += (unsigned char)record[i];
    }
    bad_sum += strlen(msg);
}

static void drain(struct velo_batch *b, struct velo_encoder *csv,
                  struct velo_encoder *json, struct velo_buf *out)
{
    out->len = 0;
    velo_encode(csv, b, out);
    out->len = 0;
    velo_encode(json, b, out);
    velo_batch_reset(b);
}

/* The fuzzer's options from its flags byte: the one thing that differs
 * between the CSV and the JSON Lines fuzzers. */
static void fuzz_format_opts(uint8_t flags, struct velo_format_opts *o);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (schema == NULL) {
        setup();
    }
    if (size < 2) {
        return 0;
    }
    uint8_t flags = data[0];
    size_t cut = data[1];
    data += 2;
    size -= 2;
    cut = size > 0 ? cut % (size + 1) : 0;

    struct velo_format_opts o;
    fuzz_format_opts(flags, &o);
    o.max_record_bytes = (flags & 16) ? 64 : 1024 * 1024;
    uint8_t needed[11];
    for (size_t i = 0; i < 11; i++) {
        needed[i] = (flags & 32) ? (uint8_t)((i + (flags >> 6)) % 2) : 1;
    }

    char err[512];
    struct velo_schema *inferred =
        velo_infer_schema(&o, (const char *)data, size, err, sizeof(err));
    velo_schema_destroy(inferred);

    struct velo_decoder *d =
        velo_decoder_create(&o, schema, needed, err, sizeof(err));
    struct velo_batch *b = velo_batch_create(schema, 16);
    struct velo_format_opts oc, oj;
    velo_format_opts_default(&oc, VELO_FORMAT_CSV);
    velo_format_opts_default(&oj, VELO_FORMAT_JSON);
    struct velo_encoder *csv = velo_encoder_create(&oc, schema, 1);
    struct velo_encoder *json = velo_encoder_create(&oj, schema, 0);
    struct velo_buf out = {0};
    if (d == NULL || b == NULL || csv == NULL || json == NULL) {
        __builtin_trap();
    }
    struct velo_decode_report rep = {on_bad, NULL, 0};

    /* Two buffers, as a reader with a carry would have them; rows are
     * views, so both live until the end. */
    char *first = malloc(cut + 1);
    memcpy(first, data, cut);
    size_t pos = 0;
    while (pos < cut) {
        size_t u = velo_decode_stream(d, first + pos, cut - pos, 0, b, 0,
                                      (int64_t)pos, 1, &rep);
        if (u > cut - pos) {
            __builtin_trap();
        }
        pos += u;
        if (b->nrows == b->cap) {
            drain(b, csv, json, &out);
            continue;
        }
        if (u == 0) {
            break;
        }
    }
    size_t rest = size - pos;
    char *second = malloc(rest + 1);
    memcpy(second, data + pos, rest);
    size_t p2 = 0;
    while (p2 < rest) {
        size_t u = velo_decode_stream(d, second + p2, rest - p2, 1, b, 0,
                                      (int64_t)(pos + p2), 1, &rep);
        if (u > rest - p2) {
            __builtin_trap();
        }
        p2 += u;
        if (b->nrows == b->cap) {
            drain(b, csv, json, &out);
            continue;
        }
        /* At the end of input every byte is taken. */
        if (p2 != rest) {
            __builtin_trap();
        }
    }
    drain(b, csv, json, &out);

    /* The same bytes as one record per payload. */
    struct velo_str pl[4];
    size_t np = 0, start = 0;
    for (size_t i = 0; i <= size && np < 4; i++) {
        if (i == size || data[i] == '\n') {
            pl[np].ptr = (const char *)data + start;
            pl[np].len = i - start;
            np++;
            start = i + 1;
        }
    }
    size_t done = 0;
    while (done < np) {
        done += velo_decode_records(d, pl + done, NULL, np - done, b, 0, &rep);
        drain(b, csv, json, &out);
    }

    velo_buf_free(&out);
    velo_encoder_destroy(csv);
    velo_encoder_destroy(json);
    velo_batch_destroy(b);
    velo_decoder_destroy(d);
    free(first);
    free(second);
    return 0;
}

#endif /* VELO_FUZZ_DECODE_HARNESS_H */
