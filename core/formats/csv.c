/*
 * The CSV scanner: RFC 4180 quoting with a configurable quote and
 * delimiter, CRLF or LF, straight into batch columns.
 *
 * The common field is unquoted: integers are parsed while scanning for
 * the delimiter, other fields are found with a 16-byte-at-a-time search
 * and converted in place; strings stay views into the input. Only a
 * quoted field with doubled quotes is copied (into the batch's arena).
 * Fields after the last needed one are skipped with one search for the
 * end of the line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "formats/format-internal.h"

/* ---- tokenizing --------------------------------------------------------- */

int fmt_csv_field(const char *p, const char *end, int eof, char delim,
                  char quote, struct csv_field *f, const char **next,
                  const char **msg)
{
    f->quoted = 0;
    f->escaped = 0;
    f->newlines = 0;
    if (quote != '\0' && p < end && *p == quote) {
        const char *q = p + 1;
        for (;;) {
            const char *c = memchr(q, quote, (size_t)(end - q));
            if (c == NULL) {
                if (!eof) {
                    return CSV_PARTIAL;
                }
                *msg = "a quoted field is not closed before the end of the "
                       "input (a missing closing quote?)";
                f->newlines = fmt_count_newlines(p, end);
                *next = end;
                return CSV_BAD;
            }
            if (c + 1 < end && c[1] == quote) {
                f->escaped = 1;
                q = c + 2;
                continue;
            }
            if (c + 1 == end && !eof) {
                return CSV_PARTIAL; /* a doubled quote may follow */
            }
            f->s = p + 1;
            f->n = (size_t)(c - (p + 1));
            f->quoted = 1;
            if (memchr(f->s, '\n', f->n) != NULL) {
                f->newlines = fmt_count_newlines(f->s, c);
            }
            const char *a = c + 1;
            if (a == end) {
                *next = end;
                return CSV_LAST;
            }
            if (*a == delim) {
                *next = a + 1;
                return CSV_FIELD;
            }
            if (*a == '\n') {
                f->newlines++;
                *next = a + 1;
                return CSV_LAST;
            }
            if (*a == '\r') {
                if (a + 1 < end && a[1] == '\n') {
                    f->newlines++;
                    *next = a + 2;
                    return CSV_LAST;
                }
                if (a + 1 == end) {
                    if (!eof) {
                        return CSV_PARTIAL;
                    }
                    *next = end;
                    return CSV_LAST;
                }
            }
            *msg = "unexpected text after a closing quote (quote the whole "
                   "field and double any quote inside it)";
            const char *nl = memchr(a, '\n', (size_t)(end - a));
            if (nl == NULL) {
                if (!eof) {
                    return CSV_PARTIAL;
                }
                *next = end;
            } else {
                f->newlines++;
                *next = nl + 1;
            }
            return CSV_BAD;
        }
    }
    const char *e = fmt_find2(p, end, delim, '\n');
    f->s = p;
    f->n = (size_t)(e - p);
    if (e == end) {
        if (!eof) {
            return CSV_PARTIAL;
        }
        if (f->n > 0 && p[f->n - 1] == '\r') {
            f->n--;
        }
        *next = end;
        return CSV_LAST;
    }
    if (*e == delim) {
        *next = e + 1;
        return CSV_FIELD;
    }
    if (f->n > 0 && p[f->n - 1] == '\r') {
        f->n--;
    }
    f->newlines = 1;
    *next = e + 1;
    return CSV_LAST;
}

size_t fmt_csv_unescape(const struct csv_field *f, char quote, char *dst)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        dst[n++] = f->s[i];
        if (f->s[i] == quote && i + 1 < f->n && f->s[i + 1] == quote) {
            i++;
        }
    }
    return n;
}

/* ---- the header --------------------------------------------------------- */

static int name_eq(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && strncasecmp(a, b, an) == 0;
}

/* Map header fields to columns. lenient: install what matched even when
 * columns are missing (the message still goes to err). */
int fmt_csv_header(struct velo_decoder *d, const char *line, size_t len,
                   char *err, size_t errlen, int lenient);
int fmt_csv_header(struct velo_decoder *d, const char *line, size_t len,
                   char *err, size_t errlen, int lenient)
{
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
        len--;
    }
    if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3;
        len -= 3;
    }
    const char *p = line, *end = line + len;
    size_t cap = 16, nf = 0;
    int *map = malloc(cap * sizeof(*map));
    uint8_t *found = calloc(d->ncols + 1, 1);
    char *tmp = malloc(len + 1);
    if (map == NULL || found == NULL || tmp == NULL) {
        free(map);
        free(found);
        free(tmp);
        snprintf(err, errlen, "out of memory");
        return VELO_ERR;
    }
    int more = len > 0;
    while (more) {
        struct csv_field f;
        const char *next = end;
        const char *msg = NULL;
        int st = fmt_csv_field(p, end, 1, d->o.delimiter, d->o.quote, &f, &next,
                               &msg);
        if (st == CSV_BAD) {
            snprintf(err, errlen, "the header line is not valid CSV: %s", msg);
            free(map);
            free(found);
            free(tmp);
            return VELO_ERR;
        }
        const char *name = f.s;
        size_t nlen = f.n;
        if (f.escaped) {
            nlen = fmt_csv_unescape(&f, d->o.quote, tmp);
            name = tmp;
        }
        while (nlen > 0 && fmt_is_space(*name)) {
            name++;
            nlen--;
        }
        while (nlen > 0 && fmt_is_space(name[nlen - 1])) {
            nlen--;
        }
        if (nf == cap) {
            cap *= 2;
            int *nm = realloc(map, cap * sizeof(*map));
            if (nm == NULL) {
                free(map);
                free(found);
                free(tmp);
                snprintf(err, errlen, "out of memory");
                return VELO_ERR;
            }
            map = nm;
        }
        int col = -1;
        for (size_t c = 0; c < d->ncols; c++) {
            const struct dec_col *dc = &d->cols[c];
            if (!dc->hidden && !found[c] &&
                name_eq(name, nlen, dc->name, dc->name_len)) {
                col = (int)c;
                found[c] = 1;
                break;
            }
        }
        map[nf++] = col >= 0 && d->cols[col].needed ? col : -1;
        p = next;
        more = st == CSV_FIELD;
    }
    /* Every column of the schema must be in the file. */
    size_t missing = 0;
    size_t off = 0;
    err[0] = '\0';
    for (size_t c = 0; c < d->ncols; c++) {
        if (d->cols[c].hidden || found[c]) {
            continue;
        }
        int n = snprintf(err + off, off < errlen ? errlen - off : 0, "%s'%s'",
                         missing == 0 ? "" : ", ", d->cols[c].name);
        if (n > 0) {
            off += (size_t)n;
        }
        missing++;
    }
    if (missing > 0) {
        char names[256];
        snprintf(names, sizeof(names), "%s", err);
        char hdr[200];
        snprintf(hdr, sizeof(hdr), "%.*s", (int)(len < 150 ? len : 150), line);
        snprintf(err, errlen,
                 "column%s %s %s not in the CSV header \"%s%s\"; add %s to "
                 "the file's first line, fix the column names, or set "
                 "csv.header to false when the file has no header",
                 missing > 1 ? "s" : "", names, missing > 1 ? "are" : "is", hdr,
                 len > 150 ? "..." : "", missing > 1 ? "them" : "it");
        if (!lenient) {
            free(map);
            free(found);
            free(tmp);
            return VELO_ERR;
        }
    }
    free(d->fmap);
    d->fmap = map;
    d->nfmap = nf;
    d->nfields_needed = 0;
    for (size_t i = 0; i < nf; i++) {
        if (map[i] >= 0) {
            d->nfields_needed = i + 1;
        }
    }
    /* Needed columns the header lacks are NULL on every row. */
    for (size_t c = 0; c < d->ncols; c++) {
        if (!d->cols[c].hidden && !found[c]) {
            d->cols[c].needed = 0;
        }
    }
    d->header_done = 1;
    free(found);
    free(tmp);
    return missing > 0 ? VELO_ERR : VELO_OK;
}

/* ---- rows --------------------------------------------------------------- */

enum row_status { ROW_OK, ROW_BAD, ROW_PARTIAL, ROW_BLANK };

/* Integer fields are the most common: parse while scanning. Returns the
 * terminator position or NULL when the field is not a plain integer of
 * at most 18 digits ending at a delimiter or line end. */
static inline const char *fast_int(const char *p, const char *end, char delim,
                                   int64_t *out)
{
    const char *q = p;
    int neg = 0;
    if (q < end && *q == '-') {
        neg = 1;
        q++;
    }
    const char *ds = q;
    uint64_t v = 0;
    const char *lim = end - q > 18 ? q + 18 : end;
    if (end - q >= 8) {
        /* Eight bytes at once: the digit run's length from where the
         * first non-digit is, with no branch per digit. A borrow or carry
         * only moves toward later bytes, so the first flagged byte is
         * exact. */
        uint64_t w;
        memcpy(&w, q, 8);
        const uint64_t hi = UINT64_C(0x8080808080808080);
        uint64_t bad = ((w - UINT64_C(0x3030303030303030)) |
                        (w + UINT64_C(0x4646464646464646))) &
                       hi;
        unsigned nd = bad != 0 ? (unsigned)__builtin_ctzll(bad) / 8 : 8;
        if (nd > 0) {
            /* Digits to the top bytes (leading zero digits below), then
             * combine pairs, quads and the two halves. */
            uint64_t x = (w - UINT64_C(0x3030303030303030)) << (8 * (8 - nd));
            x = (x * 10) + (x >> 8);
            x = (((x & UINT64_C(0x000000FF000000FF)) *
                  (100 + (UINT64_C(1000000) << 32))) +
                 (((x >> 16) & UINT64_C(0x000000FF000000FF)) *
                  (1 + (UINT64_C(10000) << 32)))) >>
                32;
            v = x;
            q += nd;
            if (nd < 8) {
                lim = q; /* the run ended inside the word */
            }
        }
    }
    while (q < lim && (unsigned)(*q - '0') < 10u) {
        v = v * 10 + (uint64_t)(*q - '0');
        q++;
    }
    if (q == ds || q == end) {
        return NULL;
    }
    if (*q != delim && *q != '\n' &&
        !(*q == '\r' && q + 1 < end && q[1] == '\n')) {
        return NULL;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return q;
}

/* Past the end of the record at p when the rest can be skipped; NULL
 * when it is partial; *nl set when it ended with a newline. Quoted
 * fields need the tokenizer: returns p itself then. */
static inline const char *skip_rest(const char *p, const char *end, int eof,
                                    char quote, int *nl)
{
    const char *e = quote != '\0' ? fmt_find2(p, end, '\n', quote)
                                  : memchr(p, '\n', (size_t)(end - p));
    if (e == NULL || e == end) {
        *nl = 0;
        return eof ? end : NULL;
    }
    if (*e == '\n') {
        *nl = 1;
        return e + 1;
    }
    return p;
}

/*
 * One record at *pp into row `row`. On ROW_OK, ROW_BAD and ROW_BLANK *pp
 * moves past the record and *line counts its newlines; on ROW_PARTIAL
 * neither moves.
 */
static int csv_row(struct velo_decoder *d, const char **pp, const char *end,
                   int eof, struct velo_batch *out, size_t row, int64_t *line)
{
    const char *p = *pp;
    const char delim = d->o.delimiter, quote = d->o.quote;
    int64_t lines = 0;
    if (*p == '\n' || (*p == '\r' && p + 1 < end && p[1] == '\n')) {
        *pp = p + (*p == '\n' ? 1 : 2);
        (*line)++;
        return ROW_BLANK;
    }
    size_t f = 0;
    int bad = 0;
    for (;;) {
        int ci = f < d->nfmap ? d->fmap[f] : -1;
        if (ci < 0 || bad) {
            if (f >= d->nfields_needed || bad) {
                int nl;
                const char *r = skip_rest(p, end, eof, quote, &nl);
                if (r == NULL) {
                    return ROW_PARTIAL;
                }
                if (r != p || p == end) {
                    lines += nl;
                    p = r;
                    break;
                }
            }
            struct csv_field fl;
            const char *next, *msg = NULL;
            int st = fmt_csv_field(p, end, eof, delim, quote, &fl, &next, &msg);
            if (st == CSV_PARTIAL) {
                return ROW_PARTIAL;
            }
            lines += fl.newlines;
            p = next;
            if (st == CSV_BAD) {
                if (!bad) {
                    snprintf(d->msg, sizeof(d->msg), "field %zu: %s", f + 1,
                             msg);
                }
                bad = 1;
                break;
            }
            f++;
            if (st == CSV_LAST) {
                break;
            }
            continue;
        }

        struct velo_column *c = &out->cols[ci];
        uint8_t t = d->cols[ci].type;
        if ((t == VELO_TYPE_BIGINT || t == VELO_TYPE_INTEGER) && p < end &&
            (quote == '\0' || *p != quote)) {
            int64_t v;
            const char *q = fast_int(p, end, delim, &v);
            if (q != NULL &&
                (t == VELO_TYPE_BIGINT || (v >= INT32_MIN && v <= INT32_MAX))) {
                c->v.i64[row] = v;
                c->nulls[row] = 0;
                f++;
                if (*q == delim) {
                    p = q + 1;
                    continue;
                }
                p = q + (*q == '\r' ? 2 : 1);
                lines++;
                break;
            }
        }
        if (p < end && (quote == '\0' || *p != quote)) {
            /* Unquoted, and its end is in the buffer: no copy, no state. */
            const char *e = fmt_find2(p, end, delim, '\n');
            if (e < end) {
                size_t n = (size_t)(e - p);
                int last = *e == '\n';
                if (last && n > 0 && p[n - 1] == '\r') {
                    n--;
                }
                if (t == VELO_TYPE_STRING && n > 0 && d->null_len == 0) {
                    c->v.str[row].ptr = p;
                    c->v.str[row].len = n;
                    c->nulls[row] = 0;
                } else if (fmt_store_text(d, (size_t)ci, c, row, p, n, 0) !=
                           VELO_OK) {
                    bad = 1;
                }
                f++;
                p = e + 1;
                if (last) {
                    lines++;
                    break;
                }
                continue;
            }
        }
        struct csv_field fl;
        const char *next, *msg = NULL;
        int st = fmt_csv_field(p, end, eof, delim, quote, &fl, &next, &msg);
        if (st == CSV_PARTIAL) {
            return ROW_PARTIAL;
        }
        lines += fl.newlines;
        p = next;
        if (st == CSV_BAD) {
            snprintf(d->msg, sizeof(d->msg), "field %zu (column %s): %s", f + 1,
                     d->cols[ci].name, msg);
            bad = 1;
            break;
        }
        const char *s = fl.s;
        size_t n = fl.n;
        if (fl.escaped) {
            char *copy = velo_arena_alloc(out->arena, n > 0 ? n : 1);
            if (copy == NULL) {
                snprintf(d->msg, sizeof(d->msg),
                         "out of memory copying column %s", d->cols[ci].name);
                bad = 1;
            } else {
                n = fmt_csv_unescape(&fl, quote, copy);
                s = copy;
            }
        }
        if (!bad &&
            fmt_store_text(d, (size_t)ci, c, row, s, n, fl.quoted) != VELO_OK) {
            bad = 1;
        }
        f++;
        if (st == CSV_LAST) {
            break;
        }
    }
    *pp = p;
    *line += lines;
    if (bad) {
        return ROW_BAD;
    }
    if (f < d->nfields_needed) {
        /* The record ended before a needed field. */
        for (size_t k = f; k < d->nfields_needed; k++) {
            if (d->fmap[k] >= 0) {
                snprintf(d->msg, sizeof(d->msg),
                         "the record has %zu field%s; column %s is field "
                         "%zu",
                         f, f == 1 ? "" : "s", d->cols[d->fmap[k]].name, k + 1);
                break;
            }
        }
        return ROW_BAD;
    }
    return ROW_OK;
}

/* The extent of the first record (for the header). @return its length
 * including the line end, or 0 when it is not complete yet. */
static size_t first_record(const struct velo_decoder *d, const char *p,
                           const char *end, int eof)
{
    const char *s = p;
    for (;;) {
        struct csv_field f;
        const char *next = end, *msg = NULL;
        int st = fmt_csv_field(p, end, eof, d->o.delimiter, d->o.quote, &f,
                               &next, &msg);
        if (st == CSV_PARTIAL) {
            return 0;
        }
        p = next;
        if (st != CSV_FIELD) {
            return (size_t)(p - s);
        }
    }
}

static void report(struct velo_decode_report *rep, int64_t pos, int64_t line,
                   const char *rec, size_t len, const char *msg)
{
    if (rep == NULL) {
        return;
    }
    rep->bad++;
    while (len > 0 && (rec[len - 1] == '\n' || rec[len - 1] == '\r')) {
        len--;
    }
    if (rep->bad_record != NULL) {
        rep->bad_record(rep->arg, pos, line, rec, len, msg);
    }
}

/* Skip through the end of an over-long line; @return past it, or NULL
 * (and d->skipping) when it goes on past the buffer. */
static const char *skip_line(struct velo_decoder *d, const char *p,
                             const char *end, int eof, int64_t *line)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) {
        d->skipping = !eof;
        return end;
    }
    d->skipping = 0;
    (*line)++;
    return nl + 1;
}

size_t fmt_csv_decode(struct velo_decoder *d, const char *buf, size_t len,
                      int eof, struct velo_batch *out, int32_t src,
                      int64_t pos0, int64_t line0,
                      struct velo_decode_report *rep);
size_t fmt_csv_decode(struct velo_decoder *d, const char *buf, size_t len,
                      int eof, struct velo_batch *out, int32_t src,
                      int64_t pos0, int64_t line0,
                      struct velo_decode_report *rep)
{
    const char *p = buf, *end = buf + len;
    int64_t line = line0;
    if (d->skipping) {
        p = skip_line(d, p, end, eof, &line);
        if (d->skipping) {
            return len;
        }
    }
    if (pos0 == 0 && p == buf && len >= 3 &&
        memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
        p += 3; /* a UTF-8 byte order mark */
    }
    if (d->o.header && !d->header_done) {
        size_t hl = first_record(d, p, end, eof);
        if (hl == 0) {
            if ((size_t)(end - p) > d->o.max_record_bytes) {
                report(rep, pos0 + (p - buf), line, p, 0,
                       "the header line is longer than record.max_bytes");
                d->header_done = 1;
                p = skip_line(d, p, end, eof, &line);
            }
            return (size_t)(p - buf);
        }
        char err[768];
        if (fmt_csv_header(d, p, hl, err, sizeof(err), 1) != VELO_OK) {
            report(rep, pos0 + (p - buf), line, p, hl, err);
        }
        line += fmt_count_newlines(p, p + hl);
        p += hl;
    }
    size_t row = out->nrows;
    const size_t max = d->o.max_record_bytes;
    while (p < end && row < out->cap) {
        const char *rec = p;
        int64_t rec_line = line;
        int st = csv_row(d, &p, end, eof, out, row, &line);
        if (st == ROW_PARTIAL) {
            if ((size_t)(end - rec) > max) {
                report(rep, pos0 + (rec - buf), rec_line, rec,
                       max < 200 ? max : 200,
                       "the record is longer than record.max_bytes (a "
                       "missing closing quote, or raise record.max_bytes)");
                p = skip_line(d, rec, end, eof, &line);
                continue;
            }
            p = rec;
            line = rec_line;
            break;
        }
        if (st == ROW_BLANK) {
            continue;
        }
        size_t rlen = (size_t)(p - rec);
        if (st == ROW_OK && rlen > max) {
            snprintf(d->msg, sizeof(d->msg),
                     "the record is %zu bytes, longer than record.max_bytes "
                     "(%zu)",
                     rlen, max);
            st = ROW_BAD;
        }
        if (st == ROW_BAD) {
            report(rep, pos0 + (rec - buf), rec_line, rec, rlen, d->msg);
            continue;
        }
        if (out->origin != NULL) {
            out->origin[row].source = src;
            out->origin[row].position = pos0 + (rec - buf);
            out->origin[row].line = rec_line;
        }
        row++;
    }
    out->nrows = row;
    return (size_t)(p - buf);
}

/* One payload as one record (Kafka and friends). */
int fmt_csv_decode_one(struct velo_decoder *d, const char *s, size_t n,
                       struct velo_batch *out, size_t row);
int fmt_csv_decode_one(struct velo_decoder *d, const char *s, size_t n,
                       struct velo_batch *out, size_t row)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) {
        n--;
    }
    if (n == 0) {
        return ROW_BLANK;
    }
    const char *p = s;
    int64_t line = 0;
    int st = csv_row(d, &p, s + n, 1, out, row, &line);
    if (st == ROW_OK && p != s + n) {
        snprintf(d->msg, sizeof(d->msg),
                 "the message holds more than one CSV record");
        return ROW_BAD;
    }
    return st;
}
