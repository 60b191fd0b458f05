/*
 * Helpers of the SQL front end: a memory pool (a program's AST and a
 * plan's strings live and die together, so error paths never free piece by
 * piece), growable text, line tables and did-you-mean.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sql/ast.h"

/* ---- Pool --------------------------------------------------------------- */

#define POOL_CHUNK 16384

struct pool_chunk {
    struct pool_chunk *next;
    size_t used, cap;
    /* Data follows, 16-byte aligned by max_align_t. */
    _Alignas(16) unsigned char data[];
};

struct sql_pool {
    struct pool_chunk *head;
};

struct sql_pool *sql_pool_create(void)
{
    return calloc(1, sizeof(struct sql_pool));
}

void sql_pool_destroy(struct sql_pool *p)
{
    if (p == NULL) {
        return;
    }
    struct pool_chunk *c = p->head;
    while (c != NULL) {
        struct pool_chunk *next = c->next;
        free(c);
        c = next;
    }
    free(p);
}

void *sql_pool_alloc(struct sql_pool *p, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    if (n == 0) {
        n = 8;
    }
    struct pool_chunk *c = p->head;
    if (c == NULL || c->cap - c->used < n) {
        /* Big requests get a chunk of their own behind the head, so the
         * head's free space is not wasted. */
        size_t cap = n > POOL_CHUNK / 4 ? n : POOL_CHUNK;
        struct pool_chunk *nc = malloc(sizeof(*nc) + cap);
        if (nc == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        nc->used = 0;
        nc->cap = cap;
        if (cap == n && c != NULL) {
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            p->head = nc;
        }
        c = nc;
    }
    void *r = c->data + c->used;
    c->used += n;
    memset(r, 0, n);
    return r;
}

char *sql_pool_strndup(struct sql_pool *p, const char *s, size_t n)
{
    char *r = sql_pool_alloc(p, n + 1);
    if (r == NULL) {
        return NULL;
    }
    if (n > 0) {
        memcpy(r, s, n);
    }
    r[n] = '\0';
    return r;
}

char *sql_pool_strdup(struct sql_pool *p, const char *s)
{
    return sql_pool_strndup(p, s, strlen(s));
}

int sql_pool_grow(struct sql_pool *p, void **arr, size_t *cap, size_t n,
                  size_t elem)
{
    if (n < *cap) {
        return VELO_OK;
    }
    size_t ncap = *cap ? *cap * 2 : 4;
    while (ncap <= n) {
        ncap *= 2;
    }
    void *na = sql_pool_alloc(p, ncap * elem);
    if (na == NULL) {
        return VELO_ERR;
    }
    if (*arr != NULL && *cap > 0) {
        memcpy(na, *arr, *cap * elem);
    }
    *arr = na;
    *cap = ncap;
    return VELO_OK;
}

/* ---- Growable text ------------------------------------------------------ */

static int buf_reserve(struct sql_buf *b, size_t extra)
{
    if (b->oom) {
        return VELO_ERR;
    }
    if (b->len + extra + 1 <= b->cap) {
        return VELO_OK;
    }
    size_t cap = b->cap ? b->cap : 128;
    while (cap < b->len + extra + 1) {
        cap *= 2;
    }
    char *n = realloc(b->data, cap);
    if (n == NULL) {
        b->oom = 1;
        return VELO_ERR;
    }
    b->data = n;
    b->cap = cap;
    return VELO_OK;
}

void sql_buf_add(struct sql_buf *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) != VELO_OK) {
        return;
    }
    if (n > 0) {
        memcpy(b->data + b->len, s, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
}

void sql_buf_puts(struct sql_buf *b, const char *s)
{
    sql_buf_add(b, s, strlen(s));
}

void sql_buf_printf(struct sql_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n < sizeof(small)) {
        sql_buf_add(b, small, (size_t)n);
        return;
    }
    if (buf_reserve(b, (size_t)n) != VELO_OK) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void sql_buf_free(struct sql_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

char *sql_buf_take(struct sql_buf *b)
{
    if (b->oom) {
        sql_buf_free(b);
        return NULL;
    }
    if (b->data == NULL) {
        return strdup("");
    }
    char *r = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return r;
}

/* ---- Did you mean ------------------------------------------------------- */

size_t sql_edit_distance(const char *a, const char *b, size_t cap)
{
    /* Optimal string alignment: Levenshtein plus the transposition of two
     * neighbours as one edit ("FORM" is one slip away from "FROM"). */
    size_t la = strlen(a), lb = strlen(b);
    if (la > SQL_MAX_IDENT || lb > SQL_MAX_IDENT) {
        return cap + 1;
    }
    if ((la > lb ? la - lb : lb - la) > cap) {
        return cap + 1;
    }
    size_t rows[3][SQL_MAX_IDENT + 1];
    size_t *pp = rows[0], *prev = rows[1], *row = rows[2];
    for (size_t j = 0; j <= lb; j++) {
        prev[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        row[0] = i;
        int ai = tolower((unsigned char)a[i - 1]);
        for (size_t j = 1; j <= lb; j++) {
            int bj = tolower((unsigned char)b[j - 1]);
            size_t best = prev[j - 1] + (ai == bj ? 0 : 1);
            if (prev[j] + 1 < best) {
                best = prev[j] + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            if (i > 1 && j > 1 &&
                ai == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == bj &&
                pp[j - 2] + 1 < best) {
                best = pp[j - 2] + 1;
            }
            row[j] = best;
        }
        size_t *t = pp;
        pp = prev;
        prev = row;
        row = t;
    }
    return prev[lb] > cap ? cap + 1 : prev[lb];
}

const char *sql_suggest(const char *name, const char *const *cands, size_t n)
{
    /* One typo per three characters, at least one and at most three:
     * "pirce" -> "price", but "id" never suggests "ts". */
    size_t len = strlen(name);
    size_t limit = len / 3;
    if (limit < 1) {
        limit = 1;
    }
    if (limit > 3) {
        limit = 3;
    }
    const char *best = NULL;
    size_t best_d = limit + 1;
    for (size_t i = 0; i < n; i++) {
        if (cands[i] == NULL) {
            continue;
        }
        size_t d = sql_edit_distance(name, cands[i], limit);
        /* Never "suggest" a name that shares nothing with the typo. */
        if (d < best_d && d < strlen(cands[i]) && d < len) {
            best_d = d;
            best = cands[i];
        }
    }
    return best;
}

/* ---- Source text -------------------------------------------------------- */

int sql_text_init(struct sql_text *t, const char *text, size_t len)
{
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            lines++;
        }
    }
    t->line_starts = malloc(lines * sizeof(uint32_t));
    if (t->line_starts == NULL) {
        return VELO_ERR;
    }
    t->text = text;
    t->len = len;
    t->nlines = 0;
    t->line_starts[t->nlines++] = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') {
            t->line_starts[t->nlines++] = (uint32_t)(i + 1);
        }
    }
    return VELO_OK;
}

void sql_text_free(struct sql_text *t)
{
    free(t->line_starts);
    t->line_starts = NULL;
    t->nlines = 0;
}

void sql_text_linecol(const struct sql_text *t, uint32_t off, int *line,
                      int *col)
{
    if (off > t->len) {
        off = (uint32_t)t->len;
    }
    size_t lo = 0, hi = t->nlines;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (t->line_starts[mid] <= off) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    *line = (int)lo + 1;
    int c = 1;
    for (uint32_t i = t->line_starts[lo]; i < off; i++) {
        if (((unsigned char)t->text[i] & 0xC0) != 0x80) {
            c++;
        }
    }
    *col = c;
}
