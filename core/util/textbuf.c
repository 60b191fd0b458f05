#include "util/textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void velo_textbuf_add(struct velo_textbuf *tb, const char *fmt, ...)
{
    if (tb->oom) {
        return;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(tb->p != NULL ? tb->p + tb->len : NULL,
                          tb->p != NULL ? tb->cap - tb->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            return;
        }
        if (tb->p != NULL && tb->len + (size_t)n < tb->cap) {
            tb->len += (size_t)n;
            return;
        }
        size_t cap = tb->cap == 0 ? 256 : tb->cap;
        while (cap <= tb->len + (size_t)n) {
            cap *= 2;
        }
        char *np = realloc(tb->p, cap);
        if (np == NULL) {
            tb->oom = 1;
            return;
        }
        tb->p = np;
        tb->cap = cap;
    }
}

void velo_textbuf_free(struct velo_textbuf *tb)
{
    free(tb->p);
    tb->p = NULL;
    tb->len = tb->cap = 0;
    tb->oom = 0;
}

char *velo_vstrfmt(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0) {
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (s != NULL) {
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    }
    return s;
}
