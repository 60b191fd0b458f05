/*
 * The open-addressing index and key hashing shared by Aggregate (groups)
 * and Table (latest row per key). Entries live in the caller's dense
 * arrays; the index maps hash -> entry id with linear probing in a
 * power-of-two table kept at most half full, so a probe usually touches
 * one cache line and never chases pointers.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"

int velo_hindex_init(struct velo_hindex *h, size_t min_entries)
{
    size_t size = 16;
    while (size < min_entries * 2) {
        size <<= 1;
    }
    h->slots = calloc(size, sizeof(*h->slots));
    if (h->slots == NULL) {
        errno = ENOMEM;
        return VELO_ERR;
    }
    h->mask = size - 1;
    h->count = 0;
    return VELO_OK;
}

void velo_hindex_free(struct velo_hindex *h)
{
    free(h->slots);
    h->slots = NULL;
    h->mask = 0;
    h->count = 0;
}

void velo_hindex_clear(struct velo_hindex *h)
{
    if (h->count > 0) {
        memset(h->slots, 0, (h->mask + 1) * sizeof(*h->slots));
    }
    h->count = 0;
}

int velo_hindex_reserve(struct velo_hindex *h,
                        uint64_t (*hash_of)(void *arg, uint32_t id),
                        void *arg)
{
    if ((h->count + 1) * 2 <= h->mask + 1) {
        return VELO_OK;
    }
    size_t size = (h->mask + 1) * 2;
    uint64_t *slots = calloc(size, sizeof(*slots));
    if (slots == NULL) {
        errno = ENOMEM;
        return VELO_ERR;
    }
    size_t mask = size - 1;
    for (size_t i = 0; i <= h->mask; i++) {
        uint64_t s = h->slots[i];
        if (s == 0) {
            continue;
        }
        uint32_t id = (uint32_t)(s & 0xffffffffu) - 1;
        size_t pos = hash_of(arg, id) & mask;
        while (slots[pos] != 0) {
            pos = (pos + 1) & mask;
        }
        slots[pos] = s;
    }
    free(h->slots);
    h->slots = slots;
    h->mask = mask;
    return VELO_OK;
}

size_t velo_hindex_bytes(const struct velo_hindex *h)
{
    return h->slots != NULL ? (h->mask + 1) * sizeof(*h->slots) : 0;
}

#define NULL_HASH UINT64_C(0x9e3779b97f4a7c15)

void velo_keys_hash(const struct velo_column *const *cols, size_t ncols,
                    const uint16_t *rows, size_t n, uint64_t *hashes,
                    uint64_t seed)
{
    for (size_t i = 0; i < n; i++) {
        hashes[i] = seed;
    }
    for (size_t k = 0; k < ncols; k++) {
        const struct velo_column *c = cols[k];
        int phys = velo_phys(c->type.id);
        if (phys == VELO_PHYS_I64 && !c->has_nulls) {
            /* The common case (BIGINT keys) in a tight loop. */
            const int64_t *v = c->v.i64;
            for (size_t i = 0; i < n; i++) {
                size_t r = rows != NULL ? rows[i] : i;
                hashes[i] = velo_hash_u64((uint64_t)v[r], hashes[i]);
            }
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            size_t r = rows != NULL ? rows[i] : i;
            if (c->has_nulls && c->nulls[r]) {
                hashes[i] = velo_hash_u64(NULL_HASH, hashes[i]);
            } else {
                hashes[i] = velo_hash_slot(phys, velo_col_get(c, r),
                                           hashes[i]);
            }
        }
    }
}

int velo_keys_store(const struct velo_column *const *cols, size_t ncols,
                    size_t r, uint8_t *nulls, union velo_slot *vals,
                    struct velo_arena *arena)
{
    for (size_t k = 0; k < ncols; k++) {
        const struct velo_column *c = cols[k];
        if (c->has_nulls && c->nulls[r]) {
            nulls[k] = 1;
            memset(&vals[k], 0, sizeof(vals[k]));
            continue;
        }
        nulls[k] = 0;
        union velo_slot v = velo_col_get(c, r);
        if (velo_phys(c->type.id) == VELO_PHYS_STR && v.s.len > 0) {
            char *p = velo_arena_strdup(arena, v.s.ptr, v.s.len);
            if (p == NULL) {
                errno = ENOMEM;
                return VELO_ERR;
            }
            v.s.ptr = p;
        }
        vals[k] = v;
    }
    return VELO_OK;
}
