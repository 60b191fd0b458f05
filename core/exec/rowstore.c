/*
 * Rows kept across batches by Sort and Table: fixed-size slots in one
 * growing array (doubling, so no allocation per record), strings in an
 * arena. Table replaces rows in place; the strings the old version
 * pointed to become garbage, and the arena is rebuilt once garbage
 * outweighs the live strings, keeping memory proportional to the rows
 * held.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"

#define ALIGN8(n) (((n) + 7) & ~(size_t)7)
#define ROWSTORE_CHUNK (64 * 1024)
#define COMPACT_MIN_GARBAGE (1024 * 1024)

static size_t vals_off(size_t ncols)
{
    return sizeof(struct velo_rowhdr) + ALIGN8(ncols);
}

int velo_rowstore_init(struct velo_rowstore *rs,
                       const struct velo_datatype *types, size_t ncols)
{
    memset(rs, 0, sizeof(*rs));
    rs->ncols = ncols;
    rs->types = calloc(ncols > 0 ? ncols : 1, sizeof(*rs->types));
    rs->arena = velo_arena_create(ROWSTORE_CHUNK);
    if (rs->types == NULL || rs->arena == NULL) {
        velo_rowstore_free(rs);
        errno = ENOMEM;
        return VELO_ERR;
    }
    if (ncols > 0) {
        memcpy(rs->types, types, ncols * sizeof(*types));
    }
    rs->stride = vals_off(ncols) + ncols * sizeof(union velo_slot);
    return VELO_OK;
}

void velo_rowstore_free(struct velo_rowstore *rs)
{
    free(rs->types);
    free(rs->rows);
    velo_arena_destroy(rs->arena);
    memset(rs, 0, sizeof(*rs));
}

union velo_slot *velo_rowstore_vals(struct velo_rowstore *rs, size_t i)
{
    return (union velo_slot *)(rs->rows + i * rs->stride +
                               vals_off(rs->ncols));
}

long velo_rowstore_add(struct velo_rowstore *rs)
{
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 64;
        char *p = realloc(rs->rows, cap * rs->stride);
        if (p == NULL) {
            errno = ENOMEM;
            return -1;
        }
        rs->rows = p;
        rs->cap = cap;
    }
    size_t i = rs->n++;
    memset(rs->rows + i * rs->stride, 0, rs->stride);
    return (long)i;
}

int velo_rowstore_set(struct velo_rowstore *rs, size_t i, size_t c,
                      const struct velo_column *col, size_t r)
{
    uint8_t *nulls = velo_rowstore_nulls(rs, i);
    union velo_slot *vals = velo_rowstore_vals(rs, i);
    int str = velo_phys(rs->types[c].id) == VELO_PHYS_STR;
    if (str && !nulls[c]) {
        rs->garbage += vals[c].s.len;
        rs->live_bytes -= vals[c].s.len;
    }
    if (col->has_nulls && col->nulls[r]) {
        nulls[c] = 1;
        memset(&vals[c], 0, sizeof(vals[c]));
        return VELO_OK;
    }
    nulls[c] = 0;
    union velo_slot v = velo_col_get(col, r);
    if (str) {
        if (v.s.len > 0) {
            char *p = velo_arena_strdup(rs->arena, v.s.ptr, v.s.len);
            if (p == NULL) {
                nulls[c] = 1;
                errno = ENOMEM;
                return VELO_ERR;
            }
            v.s.ptr = p;
        } else {
            v.s.ptr = "";
        }
        rs->live_bytes += v.s.len;
    }
    vals[c] = v;
    return VELO_OK;
}

int velo_rowstore_maybe_compact(struct velo_rowstore *rs)
{
    if (rs->garbage < COMPACT_MIN_GARBAGE || rs->garbage < rs->live_bytes) {
        return VELO_OK;
    }
    struct velo_arena *fresh = velo_arena_create(ROWSTORE_CHUNK);
    if (fresh == NULL) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < rs->n; i++) {
        uint8_t *nulls = velo_rowstore_nulls(rs, i);
        union velo_slot *vals = velo_rowstore_vals(rs, i);
        for (size_t c = 0; c < rs->ncols; c++) {
            if (velo_phys(rs->types[c].id) != VELO_PHYS_STR || nulls[c] ||
                vals[c].s.len == 0) {
                continue;
            }
            char *p = velo_arena_strdup(fresh, vals[c].s.ptr, vals[c].s.len);
            if (p == NULL) {
                velo_arena_destroy(fresh);
                return VELO_ERR;
            }
            vals[c].s.ptr = p;
        }
    }
    velo_arena_destroy(rs->arena);
    rs->arena = fresh;
    rs->garbage = 0;
    return VELO_OK;
}

size_t velo_rowstore_bytes(const struct velo_rowstore *rs)
{
    return rs->cap * rs->stride + velo_arena_bytes(rs->arena);
}

void velo_rowstore_clear(struct velo_rowstore *rs)
{
    rs->n = 0;
    rs->garbage = 0;
    rs->live_bytes = 0;
    velo_arena_reset(rs->arena);
}
