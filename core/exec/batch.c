/*
 * Arenas and columnar batches.
 *
 * A batch is allocated once (every column buffer, the selection and
 * changelog buffers, the origins) and then reused for every batch that
 * flows through its producer; nothing here is called per record except
 * velo_arena_alloc, which is a pointer bump.
 */
#include "exec/batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "exec/exec-internal.h"

/* ---- Arena -------------------------------------------------------------- */

struct arena_chunk {
    struct arena_chunk *next;
    size_t size; /* usable bytes in data */
    size_t used;
    /* 8-aligned: the header is three size_t/pointers on every target we
     * build for, and malloc aligns to 16. */
    char data[];
};

struct velo_arena {
    struct arena_chunk *cur;   /* bump allocations come from here */
    struct arena_chunk *first; /* kept by reset */
    size_t chunk_size;
    size_t held; /* bytes of every chunk, for stats */
};

#define ARENA_MIN_CHUNK 256
#define ALIGN8(n) (((n) + 7) & ~(size_t)7)

static struct arena_chunk *chunk_new(size_t size)
{
    struct arena_chunk *c = malloc(sizeof(*c) + size);
    if (c == NULL) {
        return NULL;
    }
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

struct velo_arena *velo_arena_create(size_t chunk_size)
{
    if (chunk_size < ARENA_MIN_CHUNK) {
        chunk_size = ARENA_MIN_CHUNK;
    }
    struct velo_arena *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    a->chunk_size = ALIGN8(chunk_size);
    a->first = chunk_new(a->chunk_size);
    if (a->first == NULL) {
        free(a);
        errno = ENOMEM;
        return NULL;
    }
    a->cur = a->first;
    a->held = a->chunk_size;
    return a;
}

void velo_arena_destroy(struct velo_arena *a)
{
    if (a == NULL) {
        return;
    }
    struct arena_chunk *c = a->cur;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(a);
}

void *velo_arena_alloc(struct velo_arena *a, size_t n)
{
    n = ALIGN8(n);
    struct arena_chunk *c = a->cur;
    if (c->size - c->used >= n) {
        void *p = c->data + c->used;
        c->used += n;
        return p;
    }
    /* A big request gets a chunk of its own, linked behind the current
     * one so the current chunk's free space is not wasted. */
    if (n > a->chunk_size / 4) {
        struct arena_chunk *big = chunk_new(n);
        if (big == NULL) {
            return NULL;
        }
        big->used = n;
        big->next = c->next;
        c->next = big;
        a->held += n;
        return big->data;
    }
    struct arena_chunk *fresh = chunk_new(a->chunk_size);
    if (fresh == NULL) {
        return NULL;
    }
    fresh->next = c;
    a->cur = fresh;
    a->held += a->chunk_size;
    fresh->used = n;
    return fresh->data;
}

char *velo_arena_strdup(struct velo_arena *a, const char *s, size_t n)
{
    char *p = velo_arena_alloc(a, n + 1);
    if (p == NULL) {
        return NULL;
    }
    if (n > 0) {
        memcpy(p, s, n);
    }
    p[n] = '\0';
    return p;
}

void velo_arena_reset(struct velo_arena *a)
{
    struct arena_chunk *c = a->cur;
    while (c != NULL) {
        struct arena_chunk *next = c->next;
        if (c != a->first) {
            free(c);
        }
        c = next;
    }
    a->first->next = NULL;
    a->first->used = 0;
    a->cur = a->first;
    a->held = a->first->size;
}

size_t velo_arena_bytes(const struct velo_arena *a)
{
    return a != NULL ? a->held : 0;
}

/* ---- Batch -------------------------------------------------------------- */

struct batch_impl {
    struct velo_batch b;
    int shell; /* column buffers belong to someone else */
    void *block; /* every column buffer in one allocation */
    struct velo_row_origin *origin_buf;
    uint8_t *op_buf;
    uint16_t *sel_buf;
};

#define BATCH_ARENA_CHUNK (64 * 1024)

static struct batch_impl *impl_of(struct velo_batch *b)
{
    return (struct batch_impl *)b;
}

static struct batch_impl *batch_alloc(const struct velo_schema *schema,
                                      size_t cap)
{
    if (schema == NULL || cap == 0 || cap > UINT16_MAX + 1u) {
        errno = EINVAL;
        return NULL;
    }
    struct batch_impl *bi = calloc(1, sizeof(*bi));
    if (bi == NULL) {
        return NULL;
    }
    struct velo_batch *b = &bi->b;
    b->cap = cap;
    b->ncols = schema->n;
    b->schema = schema;
    if (b->ncols > 0) {
        b->cols = calloc(b->ncols, sizeof(*b->cols));
    }
    bi->origin_buf = calloc(cap, sizeof(*bi->origin_buf));
    bi->op_buf = calloc(cap, 1);
    bi->sel_buf = calloc(cap, sizeof(uint16_t));
    b->arena = velo_arena_create(BATCH_ARENA_CHUNK);
    if ((b->ncols > 0 && b->cols == NULL) || bi->origin_buf == NULL ||
        bi->op_buf == NULL || bi->sel_buf == NULL || b->arena == NULL) {
        velo_batch_destroy(b);
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < b->ncols; i++) {
        b->cols[i].type = schema->fields[i].type;
    }
    b->origin = bi->origin_buf;
    return bi;
}

struct velo_batch *velo_batch_create(const struct velo_schema *schema,
                                     size_t cap)
{
    struct batch_impl *bi = batch_alloc(schema, cap);
    if (bi == NULL) {
        return NULL;
    }
    struct velo_batch *b = &bi->b;
    /* One block: every column's null bytes, then its values, 8-aligned. */
    size_t total = 0;
    for (size_t i = 0; i < b->ncols; i++) {
        size_t w = velo_phys_width(b->cols[i].type.id);
        total += ALIGN8(cap) + ALIGN8(w * cap);
    }
    if (total > 0) {
        bi->block = calloc(1, total);
        if (bi->block == NULL) {
            velo_batch_destroy(b);
            errno = ENOMEM;
            return NULL;
        }
    }
    char *p = bi->block;
    for (size_t i = 0; i < b->ncols; i++) {
        struct velo_column *c = &b->cols[i];
        size_t w = velo_phys_width(c->type.id);
        c->nulls = (uint8_t *)p;
        p += ALIGN8(cap);
        c->v.u8 = (uint8_t *)p;
        p += ALIGN8(w * cap);
    }
    return b;
}

struct velo_batch *velo_batch_create_shell(const struct velo_schema *schema,
                                           size_t cap)
{
    struct batch_impl *bi = batch_alloc(schema, cap);
    if (bi == NULL) {
        return NULL;
    }
    bi->shell = 1;
    return &bi->b;
}

void velo_batch_destroy(struct velo_batch *b)
{
    if (b == NULL) {
        return;
    }
    struct batch_impl *bi = impl_of(b);
    free(bi->block);
    free(b->cols);
    free(bi->origin_buf);
    free(bi->op_buf);
    free(bi->sel_buf);
    velo_arena_destroy(b->arena);
    free(bi);
}

uint16_t *velo_batch_sel_buf(struct velo_batch *b)
{
    return impl_of(b)->sel_buf;
}

uint8_t *velo_batch_op_buf(struct velo_batch *b)
{
    return impl_of(b)->op_buf;
}

struct velo_row_origin *velo_batch_origin_buf(struct velo_batch *b)
{
    return impl_of(b)->origin_buf;
}

void velo_batch_reset(struct velo_batch *b)
{
    if (!impl_of(b)->shell) {
        for (size_t i = 0; i < b->ncols; i++) {
            struct velo_column *c = &b->cols[i];
            /* Keep the promise of has_nulls == 0: every byte is 0. */
            if (c->has_nulls) {
                memset(c->nulls, 0, b->cap);
                c->has_nulls = 0;
            }
        }
    }
    b->nrows = 0;
    b->sel = NULL;
    b->nsel = 0;
    velo_arena_reset(b->arena);
}

size_t velo_batch_live(const struct velo_batch *b)
{
    return b->sel != NULL ? b->nsel : b->nrows;
}

void velo_batch_compact(struct velo_batch *b)
{
    if (b->sel == NULL) {
        return;
    }
    size_t n = b->nsel;
    const uint16_t *sel = b->sel;
    for (size_t c = 0; c < b->ncols; c++) {
        struct velo_column *col = &b->cols[c];
        size_t w = velo_phys_width(col->type.id);
        for (size_t i = 0; i < n; i++) {
            size_t r = sel[i];
            if (r == i) {
                continue;
            }
            col->nulls[i] = col->nulls[r];
            switch (w) {
            case 1:
                col->v.u8[i] = col->v.u8[r];
                break;
            case 8:
                col->v.i64[i] = col->v.i64[r];
                break;
            case sizeof(struct velo_str):
                col->v.str[i] = col->v.str[r];
                break;
            default:
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        size_t r = sel[i];
        if (b->origin != NULL) {
            b->origin[i] = b->origin[r];
        }
        if (b->op != NULL) {
            b->op[i] = b->op[r];
        }
    }
    b->nrows = n;
    b->sel = NULL;
    b->nsel = 0;
}

int velo_batch_copy_row(struct velo_batch *dst, size_t dst_row,
                        const struct velo_batch *src, size_t src_row,
                        int deep)
{
    if (dst->ncols != src->ncols || dst_row >= dst->cap ||
        src_row >= src->cap) {
        errno = EINVAL;
        return VELO_ERR;
    }
    for (size_t c = 0; c < dst->ncols; c++) {
        struct velo_column *d = &dst->cols[c];
        const struct velo_column *s = &src->cols[c];
        int wd = velo_phys(d->type.id), ws = velo_phys(s->type.id);
        if (wd != ws) {
            errno = EINVAL;
            return VELO_ERR;
        }
        uint8_t isnull = s->has_nulls ? s->nulls[src_row] : 0;
        d->nulls[dst_row] = isnull;
        if (isnull) {
            d->has_nulls = 1;
            continue;
        }
        switch (wd) {
        case VELO_PHYS_U8:
            d->v.u8[dst_row] = s->v.u8[src_row];
            break;
        case VELO_PHYS_I64:
            d->v.i64[dst_row] = s->v.i64[src_row];
            break;
        case VELO_PHYS_F64:
            d->v.f64[dst_row] = s->v.f64[src_row];
            break;
        case VELO_PHYS_STR: {
            struct velo_str v = s->v.str[src_row];
            if (deep && v.len > 0) {
                char *p = velo_arena_strdup(dst->arena, v.ptr, v.len);
                if (p == NULL) {
                    errno = ENOMEM;
                    return VELO_ERR;
                }
                v.ptr = p;
            }
            d->v.str[dst_row] = v;
            break;
        }
        default:
            break;
        }
    }
    if (dst->origin != NULL) {
        if (src->origin != NULL) {
            dst->origin[dst_row] = src->origin[src_row];
        } else {
            dst->origin[dst_row].source = -1;
            dst->origin[dst_row].position = 0;
            dst->origin[dst_row].line = 0;
        }
    }
    if (dst->op != NULL) {
        dst->op[dst_row] = src->op != NULL ? src->op[src_row] : VELO_ROW_INSERT;
    }
    if (dst_row >= dst->nrows) {
        dst->nrows = dst_row + 1;
    }
    return VELO_OK;
}
