/*
 * Columnar batches: how records move between operators inside one worker
 * thread. No queue, no lock, no allocation per record.
 *
 * A batch holds up to `cap` rows (VELO_BATCH_ROWS by default) in columns.
 * Column buffers are allocated once when the batch is created and reused
 * for every batch that flows through; strings are views (struct velo_str)
 * into the input buffer the source handed over, or into the batch's arena
 * (for strings an expression builds: UPPER, ||, ...). The arena is reset,
 * not freed, when the batch is reused.
 *
 * Filtering does not move data: a selection vector `sel` lists the live row
 * indexes in ascending order (NULL = all rows 0..nrows-1 are live).
 * Operators that need dense input call velo_batch_compact.
 */
#ifndef VELO_EXEC_BATCH_H
#define VELO_EXEC_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "exec/types.h"

#define VELO_BATCH_ROWS 1024

/* Bump allocator with chunk reuse (nginx pools, PostgreSQL contexts). */
struct velo_arena;
struct velo_arena *velo_arena_create(size_t chunk_size);
void velo_arena_destroy(struct velo_arena *a);
/** 8-byte aligned. @return NULL when out of memory (never logs). */
void *velo_arena_alloc(struct velo_arena *a, size_t n);
/** Copy n bytes into the arena. @return the copy or NULL. */
char *velo_arena_strdup(struct velo_arena *a, const char *s, size_t n);
/** Forget every allocation; keep the first chunk for reuse. */
void velo_arena_reset(struct velo_arena *a);
size_t velo_arena_bytes(const struct velo_arena *a); /* held now */

struct velo_column {
    struct velo_datatype type;
    /* One byte per row, 1 = NULL. Always allocated (cap bytes);
     * `has_nulls` 0 promises every byte is 0, so kernels can skip it. */
    uint8_t *nulls;
    uint8_t has_nulls;
    union {
        uint8_t *u8;   /* BOOLEAN */
        int64_t *i64;  /* INTEGER BIGINT DECIMAL TIMESTAMP DATE INTERVAL */
        double *f64;   /* DOUBLE */
        struct velo_str *str; /* STRING BYTES JSON */
    } v;
};

/* Where a row came from, for error messages and dead letters. */
struct velo_row_origin {
    int32_t source;   /* index of the source in the job, -1 if derived */
    int64_t position; /* byte offset in a file, Kafka offset, ... */
    int64_t line;     /* 1-based line in a text file, 0 when not known */
};

struct velo_batch {
    size_t nrows; /* rows filled, <= cap */
    size_t cap;
    size_t ncols;
    struct velo_column *cols;   /* ncols, allocated with the batch */
    const struct velo_schema *schema; /* borrowed: the producer's */

    uint16_t *sel; /* live rows, or NULL for all */
    size_t nsel;   /* live count when sel != NULL */

    /* origin: per row, where it came from; NULL after aggregation. The
     * event time is the hidden "_timestamp" column of source schemas. */
    struct velo_row_origin *origin;

    /* Changelog marks for EMIT CHANGES output (NULL: all inserts). */
    uint8_t *op; /* enum velo_row_op per row */

    struct velo_arena *arena; /* strings made while producing this batch */
};

enum velo_row_op {
    VELO_ROW_INSERT = 0,
    VELO_ROW_UPDATE = 1, /* the new value for an existing key */
    VELO_ROW_DELETE = 2
};

/** Allocate a batch for `schema` with `cap` rows. */
struct velo_batch *velo_batch_create(const struct velo_schema *schema,
                                     size_t cap);
void velo_batch_destroy(struct velo_batch *b);
/** Ready for reuse: nrows 0, sel NULL, has_nulls 0, arena reset. */
void velo_batch_reset(struct velo_batch *b);
/** Live rows (nsel or nrows). */
size_t velo_batch_live(const struct velo_batch *b);
/** Move live rows to the front and drop sel. */
void velo_batch_compact(struct velo_batch *b);

/** Copy row `src_row` of `src` to row `dst_row` of `dst` (same column
 *  types); strings are copied into dst's arena when `deep`. */
int velo_batch_copy_row(struct velo_batch *dst, size_t dst_row,
                        const struct velo_batch *src, size_t src_row,
                        int deep);

#endif /* VELO_EXEC_BATCH_H */
