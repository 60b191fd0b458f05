/*
 * A growing text buffer for messages and JSON built piece by piece. It
 * stops quietly on ENOMEM and remembers it (the caller checks `oom` once
 * at the end), so building a message never needs an error path per line.
 */
#ifndef VELO_CORE_TEXTBUF_H
#define VELO_CORE_TEXTBUF_H

#include <stdarg.h>
#include <stddef.h>

#include <velo/log.h>

struct velo_textbuf {
    char *p; /* NUL-terminated once anything was added; owned */
    size_t len, cap;
    int oom;
};

/** Append printf-style. On ENOMEM sets tb->oom and adds nothing more. */
void velo_textbuf_add(struct velo_textbuf *tb, const char *fmt, ...)
    VELO_PRINTF(2, 3);
void velo_textbuf_free(struct velo_textbuf *tb);

/** A new string formatted printf-style (malloc'd), or NULL on ENOMEM or a
 *  bad format. */
char *velo_vstrfmt(const char *fmt, va_list ap);

#endif /* VELO_CORE_TEXTBUF_H */
