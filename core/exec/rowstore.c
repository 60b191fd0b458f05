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
#include "exec/state.h"

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

void velo_rowstore_release(struct velo_rowstore *rs, size_t i)
{
    uint8_t *nulls = velo_rowstore_nulls(rs, i);
    union velo_slot *vals = velo_rowstore_vals(rs, i);
    for (size_t c = 0; c < rs->ncols; c++) {
        if (velo_phys(rs->types[c].id) == VELO_PHYS_STR && !nulls[c]) {
            rs->garbage += vals[c].s.len;
            rs->live_bytes -= vals[c].s.len;
        }
        nulls[c] = 1;
    }
}

int velo_ids_push(uint32_t **ids, size_t *n, size_t *cap, size_t first_cap,
                  uint32_t id)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : first_cap;
        uint32_t *p = realloc(*ids, ncap * sizeof(*p));
        if (p == NULL) {
            errno = ENOMEM;
            return VELO_ERR;
        }
        *ids = p;
        *cap = ncap;
    }
    (*ids)[(*n)++] = id;
    return VELO_OK;
}

int velo_rowstore_maybe_compact(struct velo_rowstore *rs)
{
    return velo_rowstore_maybe_compact_live(rs, NULL);
}

int velo_rowstore_maybe_compact_live(struct velo_rowstore *rs,
                                     const uint8_t *live)
{
    if (rs->garbage < COMPACT_MIN_GARBAGE || rs->garbage < rs->live_bytes) {
        return VELO_OK;
    }
    struct velo_arena *fresh = velo_arena_create(ROWSTORE_CHUNK);
    if (fresh == NULL) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < rs->n; i++) {
        if (live != NULL && !live[i]) {
            continue; /* a freed row: its strings are garbage already */
        }
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

void velo_rowstore_snapshot(const struct velo_rowstore *rs,
                            struct velo_state_writer *w)
{
    struct velo_rowstore *m = (struct velo_rowstore *)rs; /* accessors */
    velo_sw_u64(w, rs->n);
    for (size_t i = 0; i < rs->n; i++) {
        const struct velo_rowhdr *h = velo_rowstore_hdr(m, i);
        velo_sw_u32(w, (uint32_t)h->origin.source);
        velo_sw_i64(w, h->origin.position);
        velo_sw_i64(w, h->origin.line);
        velo_sw_u64(w, h->seq);
        velo_sw_u64(w, h->hash);
        velo_sw_u8(w, h->op);
        velo_sw_u8(w, h->deleted);
        velo_sw_row(w, rs->types, rs->ncols, velo_rowstore_nulls(m, i),
                    velo_rowstore_vals(m, i));
    }
}

int velo_rowstore_restore(struct velo_rowstore *rs,
                          struct velo_state_reader *r)
{
    uint64_t n = velo_sr_u64(r);
    /* Each row takes at least a header's bytes: a count past what is
     * left is corruption, not a reason to allocate. */
    if (n > (r->len - r->off) / 30) {
        velo_sr_fail(r);
        return VELO_ERR;
    }
    for (uint64_t k = 0; k < n && velo_sr_ok(r, 0); k++) {
        long i = velo_rowstore_add(rs);
        if (i < 0) {
            return VELO_ERR;
        }
        struct velo_rowhdr *h = velo_rowstore_hdr(rs, (size_t)i);
        h->origin.source = (int32_t)velo_sr_u32(r);
        h->origin.position = velo_sr_i64(r);
        h->origin.line = velo_sr_i64(r);
        h->seq = velo_sr_u64(r);
        h->hash = velo_sr_u64(r);
        h->op = velo_sr_u8(r);
        h->deleted = velo_sr_u8(r);
        uint8_t *nulls = velo_rowstore_nulls(rs, (size_t)i);
        union velo_slot *vals = velo_rowstore_vals(rs, (size_t)i);
        velo_sr_row(r, rs->types, rs->ncols, nulls, vals, NULL);
        for (size_t c = 0; c < rs->ncols && velo_sr_ok(r, 0); c++) {
            if (velo_phys(rs->types[c].id) != VELO_PHYS_STR || nulls[c]) {
                continue;
            }
            if (vals[c].s.len == 0) {
                vals[c].s.ptr = "";
                continue;
            }
            char *p = velo_arena_strdup(rs->arena, vals[c].s.ptr,
                                        vals[c].s.len);
            if (p == NULL) {
                return VELO_ERR;
            }
            vals[c].s.ptr = p;
            rs->live_bytes += vals[c].s.len;
        }
    }
    if (!velo_sr_ok(r, 0)) {
        rs->n = 0; /* nothing half-read stays */
        return VELO_ERR;
    }
    return VELO_OK;
}
