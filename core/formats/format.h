/*
 * Record formats: purpose-built CSV and JSON Lines scanners that decode
 * straight into batch columns, and encoders (CSV, JSON Lines, aligned
 * table) from batches to bytes.
 *
 * jansson is about 50 times too slow for records; these scanners never
 * build a DOM and never allocate per record: strings are views into the
 * input (or, when unescaping is needed, copies into the batch's arena).
 * Only the columns the query needs (`needed`) are parsed; the others are
 * skipped.
 *
 * Two ways in:
 *  - a byte stream (files, stdin): velo_decode_stream over a buffer that
 *    may end in a partial record; it returns how much it consumed (whole
 *    records only, unless eof) so the caller can carry the rest over;
 *  - one record per payload (Kafka, Redis): velo_decode_records.
 * A record that cannot be decoded (a bad number for a BIGINT column, a
 * broken quote, malformed JSON, too long) is skipped and reported through
 * `report` with its position and a message; decoding goes on.
 */
#ifndef VELO_FORMATS_FORMAT_H
#define VELO_FORMATS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include <velo/connector.h>

#include "exec/batch.h"
#include "exec/types.h"

enum velo_format_kind {
    VELO_FORMAT_CSV = 1,
    VELO_FORMAT_JSON = 2, /* JSON Lines: one object per line */
    VELO_FORMAT_RAW = 3,  /* each record is one STRING column "data" */
    VELO_FORMAT_TABLE = 4 /* output only: aligned, for terminals */
};

/* Options from '<source>.<key>' properties, validated with line numbers by
 * the binder: format, csv.delimiter (one byte, or \t), csv.quote,
 * csv.header (true/false), csv.null (text that means NULL, default
 * empty), record.max_bytes (default 1MiB). */
struct velo_format_opts {
    int kind;
    char delimiter;
    char quote;
    int header;
    const char *null_text; /* borrowed */
    size_t max_record_bytes;
    /* JSON: a field whose value is an object or array is kept as JSON
     * text; nested access (a.b.c) is evaluated by VELO_EXPR_FIELD. */
    /* '<name>.key.format': how a message source's key bytes read as
     * `_key`, and how a message sink writes the output key. */
    int key_format; /* enum velo_key_format */
};

enum velo_key_format {
    VELO_KEY_TEXT = 0, /* the bytes as text; a sink: one column's text, or
                          a JSON object of several */
    VELO_KEY_JSON,     /* a sink: always a JSON object of the key columns;
                          a source: as text (read it with JSON_VALUE) */
    VELO_KEY_LONG,     /* 8-byte big-endian integer (Kafka LongSerializer) */
    VELO_KEY_INT,      /* 4-byte big-endian integer (IntegerSerializer) */
    VELO_KEY_DOUBLE    /* 8-byte big-endian IEEE 754 (DoubleSerializer) */
};

/** "text", "json", "long", "int", "double" (any case). @return the enum
 *  velo_key_format, or -1. */
int velo_key_format_parse(const char *name);

void velo_format_opts_default(struct velo_format_opts *o, int kind);
/** "csv", "json", "jsonl", "raw", "table". @return kind or -1. */
int velo_format_parse(const char *name);

/* What went wrong with skipped records. */
struct velo_decode_report {
    /* Called once per bad record. line 0 when unknown. */
    void (*bad_record)(void *arg, int64_t position, int64_t line,
                       const char *record, size_t record_len,
                       const char *msg);
    void *arg;
    uint64_t bad; /* count, also when bad_record is NULL */
};

struct velo_decoder;

/**
 * schema: the source's columns (hidden "_timestamp" included; the decoder
 * leaves it to the caller). needed: one flag per schema field, NULL = all.
 * For CSV with a header, column order comes from the header
 * (velo_decoder_set_header) and is matched to schema names.
 * @return NULL with a message in err.
 */
struct velo_decoder *velo_decoder_create(const struct velo_format_opts *o,
                                         const struct velo_schema *schema,
                                         const uint8_t *needed, char *err,
                                         size_t errlen);
void velo_decoder_destroy(struct velo_decoder *d);

/** CSV: the header line's names, to map fields to schema columns.
 *  @return VELO_OK, or VELO_ERR when a schema column is missing. */
int velo_decoder_set_header(struct velo_decoder *d, const char *line,
                            size_t len, char *err, size_t errlen);

/**
 * Decode whole records from buf[0..len) into `out` (appending from
 * out->nrows up to out->cap). base_position/base_line: the position and
 * line number of buf[0] in the stream, for origins and reports.
 * @return bytes consumed (the caller keeps buf[consumed..len) for the next
 * call when more input follows).
 */
size_t velo_decode_stream(struct velo_decoder *d, const char *buf,
                          size_t len, int eof, struct velo_batch *out,
                          int32_t source_index, int64_t base_position,
                          int64_t base_line, struct velo_decode_report *rep);

/** Decode one record per payload; meta (may be NULL) fills origins.
 *  @return payloads consumed (stops when out is full). */
size_t velo_decode_records(struct velo_decoder *d,
                           const struct velo_str *payloads,
                           const struct velo_record_meta *meta, size_t n,
                           struct velo_batch *out, int32_t source_index,
                           struct velo_decode_report *rep);
/** The same for message sources: also fills the hidden _key, _partition,
 *  _offset (from meta) and _headers (headers[i], may be NULL) columns
 *  when the schema has them and they are needed, and the hidden
 *  _timestamp from the record's time (NULL when it has none: the caller
 *  stamps those). Rows line up with their payloads even when bad ones
 *  are skipped. */
size_t velo_decode_messages(struct velo_decoder *d,
                            const struct velo_str *payloads,
                            const struct velo_record_meta *meta,
                            const struct velo_str *headers, size_t n,
                            struct velo_batch *out, int32_t source_index,
                            struct velo_decode_report *rep);

/**
 * Infer a schema from a sample (the first bytes of a stream): CSV header
 * names (or c1, c2, ...) or the union of JSON keys in first-seen order;
 * types from the values: BOOLEAN, BIGINT, DOUBLE, TIMESTAMP (ISO 8601),
 * DATE (YYYY-MM-DD), JSON (objects/arrays), else STRING; a column that is
 * sometimes BIGINT and sometimes DOUBLE is DOUBLE. A hidden "_timestamp"
 * column is appended. @return schema or NULL with err.
 */
struct velo_schema *velo_infer_schema(const struct velo_format_opts *o,
                                      const char *sample, size_t len,
                                      char *err, size_t errlen);

/* ---- Output ------------------------------------------------------------- */

struct velo_buf {
    char *data;
    size_t len, cap;
};
int velo_buf_reserve(struct velo_buf *b, size_t extra); /* VELO_OK/ERR */
int velo_buf_append(struct velo_buf *b, const char *s, size_t n);
void velo_buf_free(struct velo_buf *b);

struct velo_encoder;

/** Hidden schema fields are not written. DECIMAL is a JSON string ("12.30")
 *  and a CSV number; TIMESTAMP is ISO 8601 UTC with milliseconds
 *  ("2026-11-21T15:04:05.123Z"); NULL is empty in CSV, null in JSON, NULL
 *  in the table format. with_op adds an "_op" column (insert, update,
 *  delete) for changelog output. */
struct velo_encoder *velo_encoder_create(const struct velo_format_opts *o,
                                         const struct velo_schema *schema,
                                         int with_op);
void velo_encoder_destroy(struct velo_encoder *e);
/** Header line (CSV with header, table). @return VELO_OK/ERR. */
int velo_encode_header(struct velo_encoder *e, struct velo_buf *out);
/** Append the live rows of b. @return VELO_OK/ERR (ENOMEM). */
int velo_encode(struct velo_encoder *e, const struct velo_batch *b,
                struct velo_buf *out);

/* Scalar text conversions shared with casts and the golden tests. */
int velo_parse_timestamp(const char *s, size_t len, int64_t *us);
int velo_parse_date(const char *s, size_t len, int64_t *days);
size_t velo_format_timestamp(int64_t us, char *buf, size_t len);
size_t velo_format_date(int64_t days, char *buf, size_t len);
/** Shortest text that reads back to the same double ("0.1", "1e+20"). */
size_t velo_format_double(double d, char *buf, size_t len);
/** A DECIMAL's digits with its scale ("12.30"); buf holds 24 bytes. */
size_t velo_format_decimal(int64_t v, int scale, char *buf);

#endif /* VELO_FORMATS_FORMAT_H */
