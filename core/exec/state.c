/*
 * The checkpoint encoding of operator state (see state.h).
 */
#include <stdlib.h>
#include <string.h>

#include <velo/plugin.h>

#include "exec/exec-internal.h"
#include "exec/state.h"

void velo_sw_init(struct velo_state_writer *w)
{
    memset(w, 0, sizeof(*w));
}

void velo_sw_free(struct velo_state_writer *w)
{
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

void velo_sw_reset(struct velo_state_writer *w)
{
    w->len = 0;
    w->oom = 0;
}

void velo_sw_raw(struct velo_state_writer *w, const void *p, size_t n)
{
    if (w->oom || n == 0) {
        return;
    }
    if (n > SIZE_MAX / 2 - w->len) {
        w->oom = 1;
        return;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap != 0 ? w->cap : 4096;
        while (cap < w->len + n) {
            cap *= 2;
        }
        uint8_t *nb = realloc(w->buf, cap);
        if (nb == NULL) {
            w->oom = 1;
            return;
        }
        w->buf = nb;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_le(struct velo_state_writer *w, uint64_t v, size_t n)
{
    uint8_t b[8];
    for (size_t i = 0; i < n; i++) {
        b[i] = (uint8_t)(v >> (8 * i));
    }
    velo_sw_raw(w, b, n);
}

void velo_sw_u8(struct velo_state_writer *w, uint8_t v)
{
    velo_sw_raw(w, &v, 1);
}

void velo_sw_u32(struct velo_state_writer *w, uint32_t v)
{
    put_le(w, v, 4);
}

void velo_sw_u64(struct velo_state_writer *w, uint64_t v)
{
    put_le(w, v, 8);
}

void velo_sw_i64(struct velo_state_writer *w, int64_t v)
{
    put_le(w, (uint64_t)v, 8);
}

void velo_sw_f64(struct velo_state_writer *w, double v)
{
    uint64_t bits;
    memcpy(&bits, &v, 8);
    put_le(w, bits, 8);
}

void velo_sw_bytes(struct velo_state_writer *w, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        w->oom = 1;
        return;
    }
    velo_sw_u32(w, (uint32_t)n);
    velo_sw_raw(w, p, n);
}

void velo_sw_value(struct velo_state_writer *w, int phys, const void *slot)
{
    union velo_slot v;
    memcpy(&v, slot, sizeof(v));
    switch (phys) {
    case VELO_PHYS_U8:
        velo_sw_u8(w, (uint8_t)v.i);
        break;
    case VELO_PHYS_F64:
        velo_sw_f64(w, v.d);
        break;
    case VELO_PHYS_STR:
        velo_sw_bytes(w, v.s.ptr, v.s.len);
        break;
    default:
        velo_sw_i64(w, v.i);
        break;
    }
}

void velo_sw_row(struct velo_state_writer *w,
                 const struct velo_datatype *types, size_t n,
                 const uint8_t *nulls, const void *slots)
{
    const union velo_slot *vals = slots;
    for (size_t i = 0; i < n; i++) {
        velo_sw_u8(w, nulls[i] != 0);
        if (!nulls[i]) {
            velo_sw_value(w, velo_phys(types[i].id), &vals[i]);
        }
    }
}

void velo_sr_init(struct velo_state_reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->off = 0;
    r->bad = 0;
}

void velo_sr_fail(struct velo_state_reader *r)
{
    r->bad = 1;
}

void velo_sr_raw(struct velo_state_reader *r, void *out, size_t n)
{
    if (r->bad || n > r->len - r->off) {
        r->bad = 1;
        memset(out, 0, n);
        return;
    }
    memcpy(out, r->p + r->off, n);
    r->off += n;
}

static uint64_t get_le(struct velo_state_reader *r, size_t n)
{
    uint8_t b[8];
    velo_sr_raw(r, b, n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v |= (uint64_t)b[i] << (8 * i);
    }
    return v;
}

uint8_t velo_sr_u8(struct velo_state_reader *r)
{
    return (uint8_t)get_le(r, 1);
}

uint32_t velo_sr_u32(struct velo_state_reader *r)
{
    return (uint32_t)get_le(r, 4);
}

uint64_t velo_sr_u64(struct velo_state_reader *r)
{
    return get_le(r, 8);
}

int64_t velo_sr_i64(struct velo_state_reader *r)
{
    return (int64_t)get_le(r, 8);
}

double velo_sr_f64(struct velo_state_reader *r)
{
    uint64_t bits = get_le(r, 8);
    double d;
    memcpy(&d, &bits, 8);
    return d;
}

struct velo_str velo_sr_bytes(struct velo_state_reader *r)
{
    struct velo_str s = {NULL, 0};
    uint32_t n = velo_sr_u32(r);
    if (r->bad || n > r->len - r->off) {
        r->bad = 1;
        return s;
    }
    s.ptr = (const char *)(r->p + r->off);
    s.len = n;
    r->off += n;
    return s;
}

void velo_sr_value(struct velo_state_reader *r, int phys, void *slot,
                   struct velo_arena *arena)
{
    union velo_slot v;
    memset(&v, 0, sizeof(v));
    switch (phys) {
    case VELO_PHYS_U8:
        v.i = velo_sr_u8(r);
        break;
    case VELO_PHYS_F64:
        v.d = velo_sr_f64(r);
        break;
    case VELO_PHYS_STR:
        v.s = velo_sr_bytes(r);
        if (arena != NULL && v.s.ptr != NULL) {
            char *c = velo_arena_strdup(arena, v.s.ptr, v.s.len);
            if (c == NULL) {
                r->bad = 1;
            }
            v.s.ptr = c;
        }
        break;
    default:
        v.i = velo_sr_i64(r);
        break;
    }
    memcpy(slot, &v, sizeof(v));
}

void velo_sr_row(struct velo_state_reader *r,
                 const struct velo_datatype *types, size_t n, uint8_t *nulls,
                 void *slots, struct velo_arena *arena)
{
    union velo_slot *vals = slots;
    for (size_t i = 0; i < n; i++) {
        uint8_t isnull = velo_sr_u8(r);
        if (isnull > 1) {
            r->bad = 1;
        }
        nulls[i] = isnull;
        memset(&vals[i], 0, sizeof(vals[i]));
        if (!isnull) {
            velo_sr_value(r, velo_phys(types[i].id), &vals[i], arena);
        }
    }
}

int velo_sr_ok(const struct velo_state_reader *r, int at_end)
{
    return !r->bad && (!at_end || r->off == r->len);
}
