/*
 * YAML documents as a tree. Schema and spec files are small, so they are
 * read whole into maps, sequences and scalars that remember their line:
 * every later complaint ("weights has 2 entries for 3 enum values") can
 * then say where.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "testkit/testkit.h"

#define YAML_MAX_DEPTH 64
#define YAML_MAX_FILE (16 * 1024 * 1024)

static struct velo_tk_yaml *ynew(int kind, const yaml_event_t *ev)
{
    struct velo_tk_yaml *y = calloc(1, sizeof(*y));
    if (y != NULL) {
        y->kind = kind;
        y->line = (int)ev->start_mark.line + 1;
        y->col = (int)ev->start_mark.column + 1;
    }
    return y;
}

static int yadd(struct velo_tk_yaml *p, char *key, struct velo_tk_yaml *v)
{
    struct velo_tk_yaml **ni = realloc(p->items, (p->n + 1) * sizeof(*ni));
    if (ni == NULL) {
        return -1;
    }
    p->items = ni;
    if (p->kind == VELO_TK_YMAP) {
        char **nk = realloc(p->keys, (p->n + 1) * sizeof(*nk));
        if (nk == NULL) {
            return -1;
        }
        p->keys = nk;
        p->keys[p->n] = key;
    }
    p->items[p->n++] = v;
    return 0;
}

struct yctx {
    yaml_parser_t *p;
    const char *where;
    char *err;
    size_t errlen;
};

static void yerr_parser(struct yctx *c)
{
    snprintf(c->err, c->errlen, "%s:%d:%d: YAML error: %s%s%s", c->where,
             (int)c->p->problem_mark.line + 1,
             (int)c->p->problem_mark.column + 1,
             c->p->problem != NULL ? c->p->problem : "cannot parse",
             c->p->context != NULL ? " " : "",
             c->p->context != NULL ? c->p->context : "");
}

/* Parse the node that starts with ev (already read). */
static struct velo_tk_yaml *ynode(struct yctx *c, yaml_event_t *ev, int depth)
{
    if (depth > YAML_MAX_DEPTH) {
        snprintf(c->err, c->errlen, "%s:%d: nested deeper than %d levels",
                 c->where, (int)ev->start_mark.line + 1, YAML_MAX_DEPTH);
        return NULL;
    }
    if (ev->type == YAML_SCALAR_EVENT) {
        struct velo_tk_yaml *y = ynew(VELO_TK_YSCALAR, ev);
        if (y == NULL) {
            return NULL;
        }
        y->str = strndup((const char *)ev->data.scalar.value,
                         ev->data.scalar.length);
        y->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        if (y->str == NULL) {
            free(y);
            return NULL;
        }
        return y;
    }
    if (ev->type == YAML_ALIAS_EVENT) {
        snprintf(c->err, c->errlen,
                 "%s:%d:%d: YAML aliases (*name) are not supported here; "
                 "write the value out",
                 c->where, (int)ev->start_mark.line + 1,
                 (int)ev->start_mark.column + 1);
        return NULL;
    }
    int is_map = ev->type == YAML_MAPPING_START_EVENT;
    if (!is_map && ev->type != YAML_SEQUENCE_START_EVENT) {
        snprintf(c->err, c->errlen, "%s:%d: unexpected YAML event", c->where,
                 (int)ev->start_mark.line + 1);
        return NULL;
    }
    struct velo_tk_yaml *y = ynew(is_map ? VELO_TK_YMAP : VELO_TK_YSEQ, ev);
    if (y == NULL) {
        return NULL;
    }
    for (;;) {
        yaml_event_t e;
        if (!yaml_parser_parse(c->p, &e)) {
            yerr_parser(c);
            velo_tk_yaml_free(y);
            return NULL;
        }
        if (e.type == YAML_MAPPING_END_EVENT ||
            e.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&e);
            return y;
        }
        char *key = NULL;
        if (is_map) {
            if (e.type != YAML_SCALAR_EVENT) {
                snprintf(c->err, c->errlen,
                         "%s:%d:%d: a mapping key must be a plain word",
                         c->where, (int)e.start_mark.line + 1,
                         (int)e.start_mark.column + 1);
                yaml_event_delete(&e);
                velo_tk_yaml_free(y);
                return NULL;
            }
            key = strndup((const char *)e.data.scalar.value,
                          e.data.scalar.length);
            yaml_event_delete(&e);
            if (key == NULL || !yaml_parser_parse(c->p, &e)) {
                if (key != NULL) {
                    yerr_parser(c);
                }
                free(key);
                velo_tk_yaml_free(y);
                return NULL;
            }
        }
        struct velo_tk_yaml *v = ynode(c, &e, depth + 1);
        yaml_event_delete(&e);
        if (v == NULL || yadd(y, key, v) != 0) {
            free(key);
            velo_tk_yaml_free(v);
            velo_tk_yaml_free(y);
            return NULL;
        }
    }
}

struct velo_tk_yaml *velo_tk_yaml_parse(const char *text, size_t len,
                                        const char *where, char *err,
                                        size_t errlen)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    struct yctx c = {&p, where, err, errlen};
    struct velo_tk_yaml *root = NULL;
    err[0] = '\0';
    for (;;) {
        yaml_event_t e;
        if (!yaml_parser_parse(&p, &e)) {
            yerr_parser(&c);
            break;
        }
        int t = e.type;
        if (t == YAML_STREAM_END_EVENT) {
            yaml_event_delete(&e);
            break;
        }
        if (t == YAML_SCALAR_EVENT || t == YAML_MAPPING_START_EVENT ||
            t == YAML_SEQUENCE_START_EVENT || t == YAML_ALIAS_EVENT) {
            if (root == NULL) {
                root = ynode(&c, &e, 0);
                yaml_event_delete(&e);
                if (root == NULL) {
                    break;
                }
                continue;
            }
        }
        yaml_event_delete(&e);
    }
    yaml_parser_delete(&p);
    if (err[0] != '\0') {
        velo_tk_yaml_free(root);
        return NULL;
    }
    if (root == NULL) {
        snprintf(err, errlen, "%s: the file is empty", where);
    }
    return root;
}

struct velo_tk_yaml *velo_tk_yaml_load(const char *path, char *err,
                                       size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (nb == NULL || cap > YAML_MAX_FILE) {
                free(nb != NULL ? nb : buf);
                fclose(f);
                snprintf(err, errlen, "%s is too large (limit 16 MiB)", path);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            break;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "cannot read %s", path);
        return NULL;
    }
    struct velo_tk_yaml *y =
        velo_tk_yaml_parse(buf != NULL ? buf : "", len, path, err, errlen);
    free(buf);
    return y;
}

void velo_tk_yaml_free(struct velo_tk_yaml *y)
{
    if (y == NULL) {
        return;
    }
    for (size_t i = 0; i < y->n; i++) {
        velo_tk_yaml_free(y->items[i]);
        if (y->keys != NULL) {
            free(y->keys[i]);
        }
    }
    free(y->items);
    free(y->keys);
    free(y->str);
    free(y);
}

const struct velo_tk_yaml *velo_tk_yaml_get(const struct velo_tk_yaml *y,
                                            const char *key)
{
    if (y == NULL || y->kind != VELO_TK_YMAP) {
        return NULL;
    }
    for (size_t i = 0; i < y->n; i++) {
        if (strcmp(y->keys[i], key) == 0) {
            return y->items[i];
        }
    }
    return NULL;
}

int velo_tk_yaml_num(const struct velo_tk_yaml *y, double *out)
{
    if (y == NULL || y->kind != VELO_TK_YSCALAR || y->str[0] == '\0') {
        return -1;
    }
    char *end;
    errno = 0;
    double v = strtod(y->str, &end);
    if (*end != '\0' || errno == ERANGE) {
        return -1;
    }
    *out = v;
    return 0;
}
