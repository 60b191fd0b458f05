/*
 * Decoders: creation, the text-to-column conversion both scanners use,
 * and the two ways in (a byte stream, or one record per payload).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <velo/log.h>

#include "exec/expr.h"
#include "formats/format-internal.h"

/* csv.c and json.c */
size_t fmt_csv_decode(struct velo_decoder *d, const char *buf, size_t len,
                      int eof, struct velo_batch *out, int32_t src,
                      int64_t pos0, int64_t line0,
                      struct velo_decode_report *rep);
int fmt_csv_decode_one(struct velo_decoder *d, const char *s, size_t n,
                       struct velo_batch *out, size_t row);
int fmt_csv_header(struct velo_decoder *d, const char *line, size_t len,
                   char *err, size_t errlen, int lenient);
size_t fmt_json_decode(struct velo_decoder *d, const char *buf, size_t len,
                       int eof, struct velo_batch *out, int32_t src,
                       int64_t pos0, int64_t line0,
                       struct velo_decode_report *rep);
int fmt_json_decode_one(struct velo_decoder *d, const char *s, size_t n,
                        struct velo_batch *out, size_t row);

enum row_status { ROW_OK, ROW_BAD, ROW_PARTIAL, ROW_BLANK };

#define DEFAULT_MAX_RECORD (1024 * 1024)

void velo_format_opts_default(struct velo_format_opts *o, int kind)
{
    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->delimiter = ',';
    o->quote = '"';
    o->header = 1;
    o->null_text = "";
    o->max_record_bytes = DEFAULT_MAX_RECORD;
}

int velo_format_parse(const char *name)
{
    static const struct {
        const char *name;
        int kind;
    } names[] = {{"csv", VELO_FORMAT_CSV},    {"json", VELO_FORMAT_JSON},
                 {"jsonl", VELO_FORMAT_JSON}, {"ndjson", VELO_FORMAT_JSON},
                 {"raw", VELO_FORMAT_RAW},    {"table", VELO_FORMAT_TABLE}};
    for (size_t i = 0; name != NULL && i < sizeof(names) / sizeof(names[0]);
         i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            return names[i].kind;
        }
    }
    return -1;
}

int velo_key_format_parse(const char *name)
{
    static const char *const names[] = {"text", "json", "long", "int",
                                        "double"};
    for (size_t i = 0; name != NULL && i < sizeof(names) / sizeof(*names);
         i++) {
        if (strcasecmp(name, names[i]) == 0) {
            return (int)i; /* the enum's order */
        }
    }
    return -1;
}

/* ---- creation ----------------------------------------------------------- */

static void positional_map(struct velo_decoder *d)
{
    size_t f = 0;
    d->nfields_needed = 0;
    for (size_t c = 0; c < d->ncols; c++) {
        if (d->cols[c].hidden) {
            continue;
        }
        d->fmap[f] = d->cols[c].needed ? (int)c : -1;
        f++;
        if (d->cols[c].needed) {
            d->nfields_needed = f;
        }
    }
    d->nfmap = f;
}

struct velo_decoder *velo_decoder_create(const struct velo_format_opts *o,
                                         const struct velo_schema *schema,
                                         const uint8_t *needed, char *err,
                                         size_t errlen)
{
    if (o == NULL || schema == NULL) {
        snprintf(err, errlen, "no format or schema");
        errno = EINVAL;
        return NULL;
    }
    if (o->kind == VELO_FORMAT_TABLE) {
        snprintf(err, errlen,
                 "format 'table' is for output only; read csv, "
                 "json or raw");
        errno = EINVAL;
        return NULL;
    }
    if (o->kind != VELO_FORMAT_CSV && o->kind != VELO_FORMAT_JSON &&
        o->kind != VELO_FORMAT_RAW) {
        snprintf(err, errlen, "unknown format %d (use csv, json or raw)",
                 o->kind);
        errno = EINVAL;
        return NULL;
    }
    if (o->kind == VELO_FORMAT_CSV) {
        if (o->delimiter == '\n' || o->delimiter == '\r' ||
            o->delimiter == '\0') {
            snprintf(err, errlen,
                     "csv.delimiter cannot be a line end or "
                     "empty; use one character such as ',', "
                     "';' or '\\t'");
            errno = EINVAL;
            return NULL;
        }
        if (o->quote == o->delimiter || o->quote == '\n' || o->quote == '\r') {
            snprintf(err, errlen,
                     "csv.quote must differ from csv.delimiter "
                     "and from line ends");
            errno = EINVAL;
            return NULL;
        }
    }
    size_t visible = 0;
    for (size_t i = 0; i < schema->n; i++) {
        visible += !schema->fields[i].hidden;
    }
    if (visible == 0) {
        snprintf(err, errlen, "the schema has no columns to decode");
        errno = EINVAL;
        return NULL;
    }
    struct velo_decoder *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->o = *o;
    if (d->o.max_record_bytes == 0) {
        d->o.max_record_bytes = DEFAULT_MAX_RECORD;
    }
    /* csv.null is CSV's: JSON has its own null. */
    const char *nt =
        o->null_text != NULL && o->kind == VELO_FORMAT_CSV ? o->null_text : "";
    d->null_text = strdup(nt);
    d->null_len = strlen(nt);
    d->o.null_text = d->null_text;
    d->schema = schema;
    d->ncols = schema->n;
    d->cols = calloc(schema->n, sizeof(*d->cols));
    d->fmap = calloc(schema->n + 1, sizeof(*d->fmap));
    d->seen = calloc(schema->n + 1, sizeof(*d->seen));
    if (d->null_text == NULL || d->cols == NULL || d->fmap == NULL ||
        d->seen == NULL) {
        velo_decoder_destroy(d);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    int raw_col = -1;
    for (size_t i = 0; i < schema->n; i++) {
        const struct velo_field *f = &schema->fields[i];
        struct dec_col *c = &d->cols[i];
        c->type = f->type.id;
        c->precision = f->type.precision;
        c->scale = f->type.scale;
        c->hidden = f->hidden;
        c->needed = !f->hidden && (needed == NULL || needed[i]);
        c->name = f->name != NULL ? f->name : "";
        c->name_len = strlen(c->name);
        if (c->type == VELO_TYPE_DECIMAL &&
            (c->precision < 1 || c->precision > VELO_DECIMAL_MAX_PRECISION ||
             c->scale < 0 || c->scale > (int)c->precision)) {
            snprintf(err, errlen,
                     "column %s: DECIMAL(%d,%d) is not "
                     "supported (precision 1-18, scale 0 to "
                     "precision)",
                     c->name, c->precision, c->scale);
            velo_decoder_destroy(d);
            errno = EINVAL;
            return NULL;
        }
        if (!c->hidden && raw_col < 0) {
            raw_col = (int)i;
        }
    }
    if (o->kind == VELO_FORMAT_RAW &&
        d->cols[raw_col].type != VELO_TYPE_STRING) {
        snprintf(err, errlen,
                 "format 'raw' reads each line into one STRING "
                 "column; column %s is not a STRING",
                 d->cols[raw_col].name);
        velo_decoder_destroy(d);
        errno = EINVAL;
        return NULL;
    }
    positional_map(d);
    /* The message columns, when the schema has them and they are read. */
    d->meta_key = d->meta_part = d->meta_off = d->meta_hdr = -1;
    d->meta_ts = -1;
    for (size_t i = 0; i < schema->n; i++) {
        const struct velo_field *f = &schema->fields[i];
        if (f->hidden && strcmp(f->name, VELO_COL_TIMESTAMP) == 0 &&
            f->type.id == VELO_TYPE_TIMESTAMP) {
            d->meta_ts = (int)i;
            continue;
        }
        if (!f->hidden || (needed != NULL && !needed[i])) {
            continue;
        }
        if (strcmp(f->name, VELO_COL_KEY) == 0) {
            d->meta_key = (int)i;
        } else if (strcmp(f->name, VELO_COL_PARTITION) == 0) {
            d->meta_part = (int)i;
        } else if (strcmp(f->name, VELO_COL_OFFSET) == 0) {
            d->meta_off = (int)i;
        } else if (strcmp(f->name, VELO_COL_HEADERS) == 0) {
            d->meta_hdr = (int)i;
        }
    }
    return d;
}

void velo_decoder_destroy(struct velo_decoder *d)
{
    if (d == NULL) {
        return;
    }
    free(d->null_text);
    free(d->cols);
    free(d->fmap);
    free(d->seen);
    free(d->row_payload);
    free(d);
}

int velo_decoder_set_header(struct velo_decoder *d, const char *line,
                            size_t len, char *err, size_t errlen)
{
    if (d->o.kind != VELO_FORMAT_CSV) {
        snprintf(err, errlen, "only CSV has a header line");
        return VELO_ERR;
    }
    return fmt_csv_header(d, line, len, err, errlen, 0);
}

/* ---- conversions -------------------------------------------------------- */

static const char *type_text(const struct dec_col *c, char *buf, size_t len)
{
    switch (c->type) {
    case VELO_TYPE_BOOLEAN:
        return "BOOLEAN";
    case VELO_TYPE_INTEGER:
        return "INTEGER";
    case VELO_TYPE_BIGINT:
        return "BIGINT";
    case VELO_TYPE_DOUBLE:
        return "DOUBLE";
    case VELO_TYPE_DECIMAL:
        snprintf(buf, len, "DECIMAL(%d,%d)", c->precision, c->scale);
        return buf;
    case VELO_TYPE_TIMESTAMP:
        return "TIMESTAMP";
    case VELO_TYPE_DATE:
        return "DATE";
    case VELO_TYPE_INTERVAL:
        return "INTERVAL";
    case VELO_TYPE_JSON:
        return "JSON";
    case VELO_TYPE_BYTES:
        return "BYTES";
    }
    return "STRING";
}

static const char *type_hint(uint8_t t)
{
    switch (t) {
    case VELO_TYPE_BOOLEAN:
        return "write true or false";
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT:
        return "write a whole number";
    case VELO_TYPE_DOUBLE:
        return "write a number such as 1.5";
    case VELO_TYPE_DECIMAL:
        return "write a number such as 12.30";
    case VELO_TYPE_TIMESTAMP:
        return "write ISO 8601 such as 2026-11-21T15:04:05Z, or epoch "
               "milliseconds";
    case VELO_TYPE_DATE:
        return "write YYYY-MM-DD";
    case VELO_TYPE_INTERVAL:
        return "write a duration such as 90s, 5m or 1h30m";
    case VELO_TYPE_JSON:
        return "write a JSON object or array";
    }
    return "";
}

/* The value as shown in a message: bounded, control bytes as '?'. */
static void shown(const char *s, size_t n, char *buf, size_t len)
{
    size_t k = n < DEC_VALUE_SHOWN ? n : DEC_VALUE_SHOWN;
    size_t o = 0;
    for (size_t i = 0; i < k && o + 4 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c < 0x20 || c == 0x7F ? '?' : (char)c;
    }
    if (k < n && o + 4 < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

void fmt_bad_value(struct velo_decoder *d, size_t ci, const char *s, size_t n,
                   const char *what)
{
    const struct dec_col *c = &d->cols[ci];
    char tb[32], val[DEC_VALUE_SHOWN + 8];
    shown(s, n, val, sizeof(val));
    const char *tn = type_text(c, tb, sizeof(tb));
    if (what != NULL) {
        snprintf(d->msg, sizeof(d->msg), "column %s: %s is not %s", c->name,
                 val, what);
        return;
    }
    const char *art = tn[0] == 'I' ? "an" : "a";
    snprintf(d->msg, sizeof(d->msg), "column %s: \"%s\" is not %s %s (%s)",
             c->name, val, art, tn, type_hint(c->type));
}

static void out_of_range(struct velo_decoder *d, size_t ci, const char *s,
                         size_t n)
{
    const struct dec_col *c = &d->cols[ci];
    char tb[32], val[DEC_VALUE_SHOWN + 8];
    shown(s, n, val, sizeof(val));
    snprintf(d->msg, sizeof(d->msg), "column %s: %s is out of range for %s",
             c->name, val, type_text(c, tb, sizeof(tb)));
}

static int all_digits(const char *s, size_t n)
{
    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned)(s[i] - '0') >= 10u) {
            return 0;
        }
    }
    return 1;
}

int fmt_store_text(struct velo_decoder *d, size_t ci, struct velo_column *c,
                   size_t row, const char *s, size_t n, int quoted)
{
    const uint8_t t = d->cols[ci].type;
    if (!quoted) {
        if (n == 0 && (d->null_len == 0 ||
                       (t != VELO_TYPE_STRING && t != VELO_TYPE_BYTES))) {
            fmt_set_null(c, row);
            return VELO_OK;
        }
        if (d->null_len > 0 && n == d->null_len &&
            memcmp(s, d->null_text, n) == 0) {
            fmt_set_null(c, row);
            return VELO_OK;
        }
    }
    if (t == VELO_TYPE_STRING || t == VELO_TYPE_BYTES) {
        c->v.str[row].ptr = s;
        c->v.str[row].len = n;
        c->nulls[row] = 0;
        return VELO_OK;
    }
    /* Other types ignore surrounding blanks ("1, 2, 3"). */
    const char *orig = s;
    size_t on = n;
    while (n > 0 && fmt_is_space(*s)) {
        s++;
        n--;
    }
    while (n > 0 && fmt_is_space(s[n - 1])) {
        n--;
    }
    if (n == 0) {
        fmt_set_null(c, row);
        return VELO_OK;
    }
    int rc = VELO_ERR;
    switch (t) {
    case VELO_TYPE_BOOLEAN: {
        int b;
        rc = fmt_parse_bool(s, n, &b);
        if (rc == VELO_OK) {
            c->v.u8[row] = (uint8_t)b;
        }
        break;
    }
    case VELO_TYPE_INTEGER:
    case VELO_TYPE_BIGINT: {
        int64_t v;
        rc = fmt_parse_i64(s, n, &v);
        if (rc == VELO_OK && t == VELO_TYPE_INTEGER &&
            (v < INT32_MIN || v > INT32_MAX)) {
            rc = VELO_AGAIN;
        }
        if (rc == VELO_OK) {
            c->v.i64[row] = v;
        }
        break;
    }
    case VELO_TYPE_DOUBLE:
        rc = fmt_parse_double(s, n, &c->v.f64[row]);
        break;
    case VELO_TYPE_DECIMAL:
        rc = fmt_parse_decimal(s, n, d->cols[ci].precision, d->cols[ci].scale,
                               &c->v.i64[row]);
        if (rc == VELO_AGAIN) {
            char tb[32], val[DEC_VALUE_SHOWN + 8];
            shown(s, n, val, sizeof(val));
            snprintf(d->msg, sizeof(d->msg),
                     "column %s: %s does not fit %s (widen the column's "
                     "precision)",
                     d->cols[ci].name, val,
                     type_text(&d->cols[ci], tb, sizeof(tb)));
            return VELO_ERR;
        }
        break;
    case VELO_TYPE_TIMESTAMP:
        if (all_digits(s, n)) {
            /* Epoch milliseconds. */
            int64_t ms;
            rc = fmt_parse_i64(s, n, &ms);
            if (rc == VELO_OK && ms > INT64_MAX / 1000) {
                rc = VELO_AGAIN;
            }
            if (rc == VELO_OK) {
                c->v.i64[row] = ms * 1000;
            }
        } else {
            rc = fmt_parse_ts_cached(&d->day, s, n, &c->v.i64[row]);
        }
        break;
    case VELO_TYPE_DATE:
        rc = velo_parse_date(s, n, &c->v.i64[row]);
        break;
    case VELO_TYPE_INTERVAL:
        rc = fmt_parse_interval(s, n, &c->v.i64[row]);
        break;
    case VELO_TYPE_JSON: {
        const char *msg = NULL;
        const char *e = fmt_json_skip(s, s + n, 0, &msg);
        if (e != NULL && fmt_json_ws(e, s + n) == s + n &&
            (*s == '{' || *s == '[')) {
            c->v.str[row].ptr = s;
            c->v.str[row].len = n;
            rc = VELO_OK;
        } else {
            rc = VELO_ERR;
        }
        break;
    }
    default:
        snprintf(d->msg, sizeof(d->msg),
                 "column %s: type %d cannot be "
                 "decoded",
                 d->cols[ci].name, t);
        return VELO_ERR;
    }
    if (rc == VELO_OK) {
        c->nulls[row] = 0;
        return VELO_OK;
    }
    if (rc == VELO_AGAIN) {
        out_of_range(d, ci, s, n);
    } else {
        fmt_bad_value(d, ci, orig, on, NULL);
    }
    return VELO_ERR;
}

/* ---- the ways in -------------------------------------------------------- */

/* Columns nobody parses are NULL in every new row. */
static void fill_unparsed(const struct velo_decoder *d, struct velo_batch *b,
                          size_t from)
{
    if (b->nrows <= from) {
        return;
    }
    for (size_t c = 0; c < d->ncols && c < b->ncols; c++) {
        if (!d->cols[c].needed && !d->cols[c].hidden) {
            memset(b->cols[c].nulls + from, 1, b->nrows - from);
            b->cols[c].has_nulls = 1;
        }
    }
}

static int raw_col(const struct velo_decoder *d)
{
    for (size_t c = 0; c < d->ncols; c++) {
        if (!d->cols[c].hidden) {
            return (int)c;
        }
    }
    return 0;
}

static size_t raw_decode(struct velo_decoder *d, const char *buf, size_t len,
                         int eof, struct velo_batch *out, int32_t src,
                         int64_t pos0, int64_t line0,
                         struct velo_decode_report *rep)
{
    const char *p = buf, *end = buf + len;
    int64_t line = line0;
    struct velo_column *c = &out->cols[raw_col(d)];
    int keep = d->cols[raw_col(d)].needed;
    if (d->skipping) {
        const char *nl = memchr(p, '\n', len);
        if (nl == NULL) {
            d->skipping = !eof;
            return len;
        }
        d->skipping = 0;
        p = nl + 1;
        line++;
    }
    size_t row = out->nrows;
    while (p < end && row < out->cap) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL && !eof) {
            if ((size_t)(end - p) > d->o.max_record_bytes) {
                if (rep != NULL) {
                    rep->bad++;
                    if (rep->bad_record != NULL) {
                        size_t shown =
                            (size_t)(end - p) < 200 ? (size_t)(end - p) : 200;
                        rep->bad_record(rep->arg, pos0 + (p - buf), line, p,
                                        shown,
                                        "the line is longer than "
                                        "record.max_bytes");
                    }
                }
                d->skipping = 1;
                p = end;
            }
            break;
        }
        const char *le = nl != NULL ? nl : end;
        size_t n = (size_t)(le - p);
        if (n > 0 && p[n - 1] == '\r') {
            n--;
        }
        if (n > d->o.max_record_bytes) {
            if (rep != NULL) {
                rep->bad++;
                if (rep->bad_record != NULL) {
                    rep->bad_record(rep->arg, pos0 + (p - buf), line, p, n,
                                    "the line is longer than "
                                    "record.max_bytes");
                }
            }
        } else if (n > 0) {
            if (keep) {
                c->v.str[row].ptr = p;
                c->v.str[row].len = n;
                c->nulls[row] = 0;
            }
            if (out->origin != NULL) {
                out->origin[row].source = src;
                out->origin[row].position = pos0 + (p - buf);
                out->origin[row].line = line;
            }
            row++;
        }
        p = nl != NULL ? nl + 1 : end;
        line += nl != NULL;
    }
    out->nrows = row;
    return (size_t)(p - buf);
}

size_t velo_decode_stream(struct velo_decoder *d, const char *buf, size_t len,
                          int eof, struct velo_batch *out, int32_t source_index,
                          int64_t base_position, int64_t base_line,
                          struct velo_decode_report *rep)
{
    if (out->nrows >= out->cap || len == 0) {
        return 0;
    }
    size_t from = out->nrows;
    size_t used;
    switch (d->o.kind) {
    case VELO_FORMAT_CSV:
        used = fmt_csv_decode(d, buf, len, eof, out, source_index,
                              base_position, base_line, rep);
        break;
    case VELO_FORMAT_JSON:
        used = fmt_json_decode(d, buf, len, eof, out, source_index,
                               base_position, base_line, rep);
        break;
    default:
        used = raw_decode(d, buf, len, eof, out, source_index, base_position,
                          base_line, rep);
        break;
    }
    fill_unparsed(d, out, from);
    return used;
}

static void str_or_null(struct velo_column *c, size_t r, struct velo_str v)
{
    if (v.ptr == NULL) {
        c->nulls[r] = 1;
        c->has_nulls = 1;
    } else {
        c->v.str[r] = v;
        c->nulls[r] = 0;
    }
}

/* _key, _partition, _offset, _headers of rows [from, to) from the meta
 * and headers of the payloads they came from. */
static void fill_meta(struct velo_decoder *d, struct velo_batch *out,
                      size_t from, size_t to,
                      const struct velo_record_meta *meta,
                      const struct velo_str *headers)
{
    for (size_t r = from; r < to; r++) {
        size_t i = d->row_payload[r];
        if (d->meta_ts >= 0) {
            struct velo_column *c = &out->cols[d->meta_ts];
            if (meta == NULL || meta[i].timestamp_us == INT64_MIN) {
                c->nulls[r] = 1;
                c->has_nulls = 1;
            } else {
                c->v.i64[r] = meta[i].timestamp_us;
                c->nulls[r] = 0;
            }
        }
        if (d->meta_key >= 0) {
            struct velo_str k = {NULL, 0};
            if (meta != NULL) {
                k = meta[i].key;
            }
            str_or_null(&out->cols[d->meta_key], r, k);
        }
        if (d->meta_part >= 0) {
            struct velo_column *c = &out->cols[d->meta_part];
            if (meta == NULL || meta[i].partition < 0) {
                c->nulls[r] = 1;
                c->has_nulls = 1;
            } else {
                c->v.i64[r] = meta[i].partition;
                c->nulls[r] = 0;
            }
        }
        if (d->meta_off >= 0) {
            struct velo_column *c = &out->cols[d->meta_off];
            if (meta == NULL || meta[i].offset < 0) {
                c->nulls[r] = 1;
                c->has_nulls = 1;
            } else {
                c->v.i64[r] = meta[i].offset;
                c->nulls[r] = 0;
            }
        }
        if (d->meta_hdr >= 0) {
            struct velo_str h = {NULL, 0};
            if (headers != NULL) {
                h = headers[i];
            }
            str_or_null(&out->cols[d->meta_hdr], r, h);
        }
    }
}

size_t velo_decode_records(struct velo_decoder *d,
                           const struct velo_str *payloads,
                           const struct velo_record_meta *meta, size_t n,
                           struct velo_batch *out, int32_t source_index,
                           struct velo_decode_report *rep)
{
    return velo_decode_messages(d, payloads, meta, NULL, n, out,
                                source_index, rep);
}

size_t velo_decode_messages(struct velo_decoder *d,
                            const struct velo_str *payloads,
                            const struct velo_record_meta *meta,
                            const struct velo_str *headers, size_t n,
                            struct velo_batch *out, int32_t source_index,
                            struct velo_decode_report *rep)
{
    size_t from = out->nrows;
    size_t row = out->nrows;
    size_t i = 0;
    int with_meta = d->meta_key >= 0 || d->meta_part >= 0 ||
                    d->meta_off >= 0 || d->meta_hdr >= 0 || d->meta_ts >= 0;
    if (with_meta && d->row_payload_cap < out->cap) {
        uint32_t *rp = realloc(d->row_payload, out->cap * sizeof(*rp));
        if (rp == NULL) {
            with_meta = 0; /* the columns stay NULL; decoding goes on */
        } else {
            d->row_payload = rp;
            d->row_payload_cap = out->cap;
        }
    }
    for (; i < n && row < out->cap; i++) {
        const char *s = payloads[i].ptr != NULL ? payloads[i].ptr : "";
        size_t len = payloads[i].len;
        int st;
        if (d->o.kind == VELO_FORMAT_CSV) {
            st = fmt_csv_decode_one(d, s, len, out, row);
        } else if (d->o.kind == VELO_FORMAT_JSON) {
            st = fmt_json_decode_one(d, s, len, out, row);
        } else {
            int rc = raw_col(d);
            if (d->cols[rc].needed) {
                out->cols[rc].v.str[row].ptr = s;
                out->cols[rc].v.str[row].len = len;
                out->cols[rc].nulls[row] = 0;
            }
            st = ROW_OK;
        }
        int64_t pos = meta != NULL ? meta[i].offset : (int64_t)i;
        if (st == ROW_OK) {
            if (out->origin != NULL) {
                out->origin[row].source = source_index;
                out->origin[row].position = pos;
                out->origin[row].line = 0;
            }
            if (with_meta) {
                d->row_payload[row] = (uint32_t)i;
            }
            row++;
        } else if (st == ROW_BAD && rep != NULL) {
            rep->bad++;
            if (rep->bad_record != NULL) {
                rep->bad_record(rep->arg, pos, 0, s, len, d->msg);
            }
        }
    }
    out->nrows = row;
    fill_unparsed(d, out, from);
    if (with_meta) {
        fill_meta(d, out, from, row, meta, headers);
    }
    return i;
}
