/*
 * Generator schemas: <source>.schema.yaml into fields with constraints,
 * or a schema made from the engine's (declared columns, or inferred from
 * a sample whose min/max and values then bound the generated ones).
 *
 * Every key is checked: a typo ("distrbution") is an error naming the
 * line and the keys that exist, never a silently uniform field.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "exec/types.h"
#include "formats/format.h"
#include "testkit/testkit-internal.h"

#define SCHEMA_MAX_FIELDS 1024
#define SAMPLE_ENUM_MAX 16

static const char *const field_keys[] = {
    "name",        "type",        "precision", "scale",
    "constraints", "null_rate",   "derived",   "references",
    "nullable",    "description", NULL};
static const char *const constraint_keys[] = {
    "min",          "max",        "enum",       "weights",    "pattern",
    "distribution", "mean",       "stddev",     "s",          "exponent",
    "step",         "sequence",   "min_length", "max_length", "range",
    "start",        "end",        "rate",       "jitter",     "out_of_order",
    "max_delay",    "event_time", "null_rate",  "derived",    "references",
    "match_rate",   NULL};

static int known(const char *k, const char *const *keys)
{
    for (size_t i = 0; keys[i] != NULL; i++) {
        if (strcmp(keys[i], k) == 0) {
            return 1;
        }
    }
    return 0;
}

static void list_keys(char *buf, size_t len, const char *const *keys)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; keys[i] != NULL && at + 2 < len; i++) {
        int w = snprintf(buf + at, len - at, "%s%s", i ? ", " : "", keys[i]);
        if (w < 0) {
            break;
        }
        at += (size_t)w;
    }
}

int velo_tk_parse_time(const char *s, int64_t *us, int *relative)
{
    while (isspace((unsigned char)*s)) {
        s++;
    }
    if (strcasecmp(s, "now") == 0) {
        *us = 0;
        *relative = 1;
        return 0;
    }
    if (s[0] == '-' || s[0] == '+') {
        /* -1h, +30m, -90s, -2d, -500ms */
        char *end;
        double v = strtod(s, &end);
        if (end == s) {
            return -1;
        }
        double unit;
        if (strcmp(end, "ms") == 0) {
            unit = 1e3;
        } else if (strcmp(end, "s") == 0) {
            unit = 1e6;
        } else if (strcmp(end, "m") == 0) {
            unit = 60e6;
        } else if (strcmp(end, "h") == 0) {
            unit = 3600e6;
        } else if (strcmp(end, "d") == 0) {
            unit = 86400e6;
        } else {
            return -1;
        }
        *us = (int64_t)(v * unit);
        *relative = 1;
        return 0;
    }
    int64_t v;
    if (velo_parse_timestamp(s, strlen(s), &v) == VELO_OK) {
        *us = v;
        *relative = 0;
        return 0;
    }
    char *end;
    errno = 0;
    long long ms = strtoll(s, &end, 10);
    if (*end == '\0' && end != s && errno == 0) {
        *us = (int64_t)ms * 1000;
        *relative = 0;
        return 0;
    }
    return -1;
}

/* "250ms", "2s", "1m" or a bare number of milliseconds. */
static int parse_span(const char *s, int64_t *us)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) {
        return -1;
    }
    if (*end == '\0' || strcmp(end, "ms") == 0) {
        *us = (int64_t)(v * 1e3);
    } else if (strcmp(end, "us") == 0) {
        *us = (int64_t)v;
    } else if (strcmp(end, "s") == 0) {
        *us = (int64_t)(v * 1e6);
    } else if (strcmp(end, "m") == 0) {
        *us = (int64_t)(v * 60e6);
    } else if (strcmp(end, "h") == 0) {
        *us = (int64_t)(v * 3600e6);
    } else {
        return -1;
    }
    return 0;
}

static int parse_type(const char *t, int *out)
{
    static const struct {
        const char *name;
        int type;
    } types[] = {{"string", VELO_TK_STRING},      {"varchar", VELO_TK_STRING},
                 {"text", VELO_TK_STRING},        {"integer", VELO_TK_INTEGER},
                 {"int", VELO_TK_INTEGER},        {"bigint", VELO_TK_INTEGER},
                 {"long", VELO_TK_INTEGER},       {"float", VELO_TK_FLOAT},
                 {"double", VELO_TK_FLOAT},       {"decimal", VELO_TK_DECIMAL},
                 {"boolean", VELO_TK_BOOLEAN},    {"bool", VELO_TK_BOOLEAN},
                 {"timestamp", VELO_TK_TIMESTAMP}};
    for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++) {
        if (strcasecmp(t, types[i].name) == 0) {
            *out = types[i].type;
            return 0;
        }
    }
    return -1;
}

/* Where messages point: "orders.schema.yaml:12: field 'price': ". */
struct fctx {
    const char *where;
    const char *field;
    char *err;
    size_t errlen;
};

static int ferr(struct fctx *c, const struct velo_tk_yaml *at, const char *fmt,
                ...) VELO_PRINTF(3, 4);
static int ferr(struct fctx *c, const struct velo_tk_yaml *at, const char *fmt,
                ...)
{
    int w = snprintf(c->err, c->errlen, "%s:%d: field '%s': ", c->where,
                     at != NULL ? at->line : 0, c->field ? c->field : "?");
    if (w < 0 || (size_t)w >= c->errlen) {
        return -1;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err + w, c->errlen - (size_t)w, fmt, ap);
    va_end(ap);
    return -1;
}

static int num(struct fctx *c, const struct velo_tk_yaml *y, const char *key,
               double *out)
{
    if (velo_tk_yaml_num(y, out) != 0) {
        return ferr(c, y, "'%s' must be a number, not '%s'", key,
                    y->kind == VELO_TK_YSCALAR ? y->str : "a list or map");
    }
    return 0;
}

static int truthy(const struct velo_tk_yaml *y)
{
    return y != NULL && y->kind == VELO_TK_YSCALAR &&
           (strcasecmp(y->str, "true") == 0 || strcmp(y->str, "1") == 0 ||
            strcasecmp(y->str, "yes") == 0);
}

static int parse_references(struct fctx *c, struct velo_tk_field *f,
                            const struct velo_tk_yaml *r)
{
    if (r->kind == VELO_TK_YSCALAR) {
        /* "customers.customer_id" */
        const char *dot = strchr(r->str, '.');
        if (dot == NULL || dot == r->str || dot[1] == '\0') {
            return ferr(c, r,
                        "references '%s': write source.field, e.g. "
                        "customers.customer_id",
                        r->str);
        }
        f->ref_source = strndup(r->str, (size_t)(dot - r->str));
        f->ref_field = strdup(dot + 1);
    } else if (r->kind == VELO_TK_YMAP) {
        const struct velo_tk_yaml *s = velo_tk_yaml_get(r, "source");
        const struct velo_tk_yaml *fl = velo_tk_yaml_get(r, "field");
        const struct velo_tk_yaml *m = velo_tk_yaml_get(r, "match_rate");
        if (s == NULL || fl == NULL || s->kind != VELO_TK_YSCALAR ||
            fl->kind != VELO_TK_YSCALAR) {
            return ferr(c, r,
                        "references needs source and field: "
                        "{ source: customers, field: customer_id, "
                        "match_rate: 0.9 }");
        }
        f->ref_source = strdup(s->str);
        f->ref_field = strdup(fl->str);
        if (m != NULL && num(c, m, "match_rate", &f->match_rate) != 0) {
            return -1;
        }
    } else {
        return ferr(c, r, "references must be source.field or a map");
    }
    if (f->ref_source == NULL || f->ref_field == NULL) {
        return ferr(c, r, "out of memory");
    }
    return 0;
}

static int parse_enum(struct fctx *c, struct velo_tk_field *f,
                      const struct velo_tk_yaml *e,
                      const struct velo_tk_yaml *w)
{
    if (e->kind != VELO_TK_YSEQ || e->n == 0) {
        return ferr(c, e, "enum must be a non-empty list: [A, B, C]");
    }
    f->nenum = e->n;
    f->enums = calloc(e->n, sizeof(*f->enums));
    f->cum_weights = calloc(e->n, sizeof(*f->cum_weights));
    if (f->enums == NULL || f->cum_weights == NULL) {
        return ferr(c, e, "out of memory");
    }
    for (size_t i = 0; i < e->n; i++) {
        if (e->items[i]->kind != VELO_TK_YSCALAR) {
            return ferr(c, e->items[i], "enum values must be scalars");
        }
        f->enums[i] = strdup(e->items[i]->str);
        if (f->enums[i] == NULL) {
            return ferr(c, e, "out of memory");
        }
    }
    double total = 0;
    if (w != NULL) {
        if (w->kind != VELO_TK_YSEQ || w->n != e->n) {
            return ferr(c, w,
                        "weights has %zu entries for %zu enum values; "
                        "give one weight per value",
                        w->kind == VELO_TK_YSEQ ? w->n : 0, e->n);
        }
        for (size_t i = 0; i < w->n; i++) {
            double v;
            if (num(c, w->items[i], "weights", &v) != 0) {
                return -1;
            }
            if (v < 0) {
                return ferr(c, w->items[i], "weights must not be negative");
            }
            total += v;
            f->cum_weights[i] = total;
        }
        if (total <= 0) {
            return ferr(c, w, "weights add up to 0");
        }
    } else {
        for (size_t i = 0; i < e->n; i++) {
            total += 1;
            f->cum_weights[i] = total;
        }
    }
    for (size_t i = 0; i < e->n; i++) {
        f->cum_weights[i] /= total;
    }
    f->cum_weights[e->n - 1] = 1.0;
    return 0;
}

static int parse_dist(struct fctx *c, struct velo_tk_field *f,
                      const struct velo_tk_yaml *d)
{
    static const struct {
        const char *name;
        int dist;
    } dists[] = {
        {"uniform", VELO_TK_UNIFORM},        {"normal", VELO_TK_NORMAL},
        {"gaussian", VELO_TK_NORMAL},        {"log_normal", VELO_TK_LOG_NORMAL},
        {"lognormal", VELO_TK_LOG_NORMAL},   {"zipf", VELO_TK_ZIPF},
        {"random_walk", VELO_TK_RANDOM_WALK}};
    if (d->kind == VELO_TK_YSCALAR) {
        for (size_t i = 0; i < sizeof(dists) / sizeof(*dists); i++) {
            if (strcasecmp(d->str, dists[i].name) == 0) {
                f->dist = dists[i].dist;
                return 0;
            }
        }
    }
    return ferr(c, d,
                "unknown distribution '%s': use uniform, normal, "
                "log_normal, zipf or random_walk",
                d->kind == VELO_TK_YSCALAR ? d->str : "?");
}

static int parse_constraints(struct fctx *c, struct velo_tk_field *f,
                             const struct velo_tk_yaml *cs)
{
    if (cs->kind != VELO_TK_YMAP) {
        return ferr(c, cs, "constraints must be a map: { min: 0, max: 10 }");
    }
    char keys[600];
    for (size_t i = 0; i < cs->n; i++) {
        if (!known(cs->keys[i], constraint_keys)) {
            list_keys(keys, sizeof(keys), constraint_keys);
            return ferr(c, cs->items[i],
                        "unknown constraint '%s'; constraints are: %s",
                        cs->keys[i], keys);
        }
    }
    const struct velo_tk_yaml *y;
    int is_ts = f->type == VELO_TK_TIMESTAMP;
    if ((y = velo_tk_yaml_get(cs, "min")) != NULL && !is_ts) {
        if (num(c, y, "min", &f->min) != 0) {
            return -1;
        }
        f->has_min = 1;
    }
    if ((y = velo_tk_yaml_get(cs, "max")) != NULL && !is_ts) {
        if (num(c, y, "max", &f->max) != 0) {
            return -1;
        }
        f->has_max = 1;
    }
    if (f->has_min && f->has_max && f->min > f->max) {
        return ferr(c, cs, "min %g is greater than max %g", f->min, f->max);
    }
    if ((y = velo_tk_yaml_get(cs, "enum")) != NULL &&
        parse_enum(c, f, y, velo_tk_yaml_get(cs, "weights")) != 0) {
        return -1;
    }
    if (velo_tk_yaml_get(cs, "weights") != NULL && f->nenum == 0) {
        return ferr(c, cs, "weights need an enum to weigh");
    }
    if ((y = velo_tk_yaml_get(cs, "pattern")) != NULL) {
        if (y->kind != VELO_TK_YSCALAR) {
            return ferr(c, y, "pattern must be a string");
        }
        char perr[256];
        f->pattern = velo_tk_pattern_compile(y->str, perr, sizeof(perr));
        if (f->pattern == NULL) {
            return ferr(c, y, "pattern '%s': %s", y->str, perr);
        }
    }
    if ((y = velo_tk_yaml_get(cs, "distribution")) != NULL &&
        parse_dist(c, f, y) != 0) {
        return -1;
    }
    double lo = f->has_min ? f->min : 0, hi = f->has_max ? f->max : 1000;
    f->mean = (lo + hi) / 2;
    f->stddev = (hi - lo) / 6;
    if (f->dist == VELO_TK_LOG_NORMAL) {
        f->mean = 0; /* of the logarithm */
        f->stddev = 1;
    }
    f->zipf_s = 1.2;
    f->step = (hi - lo) / 100;
    if ((y = velo_tk_yaml_get(cs, "mean")) != NULL &&
        num(c, y, "mean", &f->mean) != 0) {
        return -1;
    }
    if ((y = velo_tk_yaml_get(cs, "stddev")) != NULL &&
        num(c, y, "stddev", &f->stddev) != 0) {
        return -1;
    }
    if (f->stddev < 0) {
        return ferr(c, cs, "stddev must not be negative");
    }
    if (((y = velo_tk_yaml_get(cs, "s")) != NULL ||
         (y = velo_tk_yaml_get(cs, "exponent")) != NULL) &&
        num(c, y, "s", &f->zipf_s) != 0) {
        return -1;
    }
    if (f->zipf_s <= 0) {
        return ferr(c, cs, "the zipf exponent s must be greater than 0");
    }
    if ((y = velo_tk_yaml_get(cs, "step")) != NULL &&
        num(c, y, "step", &f->step) != 0) {
        return -1;
    }
    f->sequence = truthy(velo_tk_yaml_get(cs, "sequence"));
    double v;
    if ((y = velo_tk_yaml_get(cs, "min_length")) != NULL) {
        if (num(c, y, "min_length", &v) != 0) {
            return -1;
        }
        f->min_length = (int)v;
    }
    if ((y = velo_tk_yaml_get(cs, "max_length")) != NULL) {
        if (num(c, y, "max_length", &v) != 0) {
            return -1;
        }
        f->max_length = (int)v;
    }
    if (f->min_length < 0 || f->max_length > 4096 ||
        f->min_length > f->max_length) {
        return ferr(c, cs,
                    "lengths must satisfy 0 <= min_length <= "
                    "max_length <= 4096");
    }
    if ((y = velo_tk_yaml_get(cs, "null_rate")) != NULL &&
        num(c, y, "null_rate", &f->null_rate) != 0) {
        return -1;
    }
    if ((y = velo_tk_yaml_get(cs, "derived")) != NULL) {
        f->derived_text = strdup(y->kind == VELO_TK_YSCALAR ? y->str : "");
    }
    if ((y = velo_tk_yaml_get(cs, "references")) != NULL &&
        parse_references(c, f, y) != 0) {
        return -1;
    }
    if ((y = velo_tk_yaml_get(cs, "match_rate")) != NULL &&
        num(c, y, "match_rate", &f->match_rate) != 0) {
        return -1;
    }
    /* Timestamps. */
    const struct velo_tk_yaml *st = velo_tk_yaml_get(cs, "start");
    const struct velo_tk_yaml *en = velo_tk_yaml_get(cs, "end");
    const struct velo_tk_yaml *rg = velo_tk_yaml_get(cs, "range");
    if ((st != NULL || en != NULL || rg != NULL) && !is_ts) {
        return ferr(c, cs, "start/end/range apply to timestamps only");
    }
    if (rg != NULL &&
        (rg->kind != VELO_TK_YSCALAR || (strcmp(rg->str, "relative") != 0 &&
                                         strcmp(rg->str, "absolute") != 0))) {
        return ferr(c, rg, "range must be relative or absolute");
    }
    if (st != NULL) {
        int rel;
        if (st->kind != VELO_TK_YSCALAR ||
            velo_tk_parse_time(st->str, &f->ts_start_rel, &rel) != 0) {
            return ferr(c, st,
                        "start: use \"-1h\", \"now\", an ISO-8601 "
                        "time or epoch milliseconds");
        }
        f->ts_relative = rel;
    }
    if (en != NULL) {
        int rel;
        if (en->kind != VELO_TK_YSCALAR ||
            velo_tk_parse_time(en->str, &f->ts_end_rel, &rel) != 0) {
            return ferr(c, en,
                        "end: use \"now\", \"-5m\", an ISO-8601 time "
                        "or epoch milliseconds");
        }
        if (st != NULL && rel != f->ts_relative) {
            return ferr(c, en,
                        "start and end must both be relative "
                        "(\"-1h\", \"now\") or both absolute");
        }
        f->ts_relative = rel;
    }
    /* One end given: the span is an hour on the other side of it. */
    if (st != NULL && en == NULL) {
        f->ts_end_rel = f->ts_start_rel + 3600LL * 1000000;
    } else if (en != NULL && st == NULL) {
        f->ts_start_rel = f->ts_end_rel - 3600LL * 1000000;
    }
    if ((y = velo_tk_yaml_get(cs, "rate")) != NULL) {
        if (num(c, y, "rate", &f->rate) != 0) {
            return -1;
        }
        if (f->rate <= 0) {
            return ferr(c, y, "rate is events per second and must be > 0");
        }
        f->event_time = 1;
    }
    if (truthy(velo_tk_yaml_get(cs, "event_time"))) {
        f->event_time = 1;
    }
    if ((y = velo_tk_yaml_get(cs, "jitter")) != NULL &&
        (y->kind != VELO_TK_YSCALAR || parse_span(y->str, &f->jitter_us))) {
        return ferr(c, y, "jitter: a duration such as 50ms or 2s");
    }
    if ((y = velo_tk_yaml_get(cs, "max_delay")) != NULL &&
        (y->kind != VELO_TK_YSCALAR || parse_span(y->str, &f->max_delay_us))) {
        return ferr(c, y, "max_delay: a duration such as 5s");
    }
    if ((y = velo_tk_yaml_get(cs, "out_of_order")) != NULL &&
        num(c, y, "out_of_order", &f->out_of_order) != 0) {
        return -1;
    }
    if ((velo_tk_yaml_get(cs, "jitter") != NULL ||
         velo_tk_yaml_get(cs, "out_of_order") != NULL ||
         velo_tk_yaml_get(cs, "max_delay") != NULL) &&
        !is_ts) {
        return ferr(c, cs,
                    "jitter/out_of_order/max_delay apply to "
                    "timestamps only");
    }
    return 0;
}

static int check_field(struct fctx *c, struct velo_tk_field *f,
                       const struct velo_tk_yaml *at)
{
    if (f->null_rate < 0 || f->null_rate > 1) {
        return ferr(c, at, "null_rate %g must be between 0 and 1",
                    f->null_rate);
    }
    if (f->match_rate < 0 || f->match_rate > 1) {
        return ferr(c, at, "match_rate %g must be between 0 and 1",
                    f->match_rate);
    }
    if (f->out_of_order < 0 || f->out_of_order > 1) {
        return ferr(c, at, "out_of_order %g must be between 0 and 1",
                    f->out_of_order);
    }
    if (f->type == VELO_TK_DECIMAL &&
        (f->precision < 1 || f->precision > 18 || f->scale < 0 ||
         f->scale > f->precision)) {
        return ferr(c, at,
                    "decimal needs 1 <= precision <= 18 and 0 <= "
                    "scale <= precision (got %d, %d)",
                    f->precision, f->scale);
    }
    if (f->type == VELO_TK_DECIMAL) {
        double lim = pow(10, f->precision - f->scale);
        if ((f->has_max && f->max >= lim) || (f->has_min && f->min <= -lim)) {
            return ferr(c, at, "min/max do not fit DECIMAL(%d,%d)",
                        f->precision, f->scale);
        }
    }
    if (f->dist == VELO_TK_ZIPF && f->nenum == 0 &&
        f->type != VELO_TK_INTEGER) {
        return ferr(c, at,
                    "zipf draws ranks: use it on an integer with "
                    "min/max or on an enum");
    }
    if (f->dist == VELO_TK_ZIPF && f->nenum == 0 &&
        (!f->has_min || !f->has_max || f->max - f->min > 1e6)) {
        return ferr(c, at,
                    "zipf on an integer needs min and max at most "
                    "1,000,000 apart");
    }
    if (f->sequence && f->type != VELO_TK_INTEGER) {
        return ferr(c, at, "sequence applies to integers");
    }
    if (f->event_time && f->type != VELO_TK_TIMESTAMP) {
        return ferr(c, at, "rate/event_time apply to timestamps");
    }
    return 0;
}

void velo_tk_field_defaults(struct velo_tk_field *f)
{
    f->min_length = 4;
    f->max_length = 12;
    f->precision = 18;
    f->scale = 2;
    f->zipf_s = 1.2;
    f->match_rate = 1.0;
    f->ts_relative = 1;
    f->ts_start_rel = -3600LL * 1000000;
    f->ts_end_rel = 0;
    f->max_delay_us = 5 * 1000000;
}

static int parse_field(struct fctx *c, struct velo_tk_field *f,
                       const struct velo_tk_yaml *fy)
{
    char keys[400];
    for (size_t i = 0; i < fy->n; i++) {
        if (!known(fy->keys[i], field_keys)) {
            list_keys(keys, sizeof(keys), field_keys);
            return ferr(c, fy->items[i], "unknown key '%s'; a field has: %s",
                        fy->keys[i], keys);
        }
    }
    const struct velo_tk_yaml *t = velo_tk_yaml_get(fy, "type");
    if (t == NULL || t->kind != VELO_TK_YSCALAR) {
        return ferr(c, fy,
                    "no type: use string, integer, float, decimal, "
                    "boolean or timestamp");
    }
    if (parse_type(t->str, &f->type) != 0) {
        return ferr(c, t,
                    "unknown type '%s': use string, integer, float, "
                    "decimal, boolean or timestamp",
                    t->str);
    }
    const struct velo_tk_yaml *y;
    double v;
    if ((y = velo_tk_yaml_get(fy, "precision")) != NULL) {
        if (num(c, y, "precision", &v) != 0) {
            return -1;
        }
        f->precision = (int)v;
    }
    if ((y = velo_tk_yaml_get(fy, "scale")) != NULL) {
        if (num(c, y, "scale", &v) != 0) {
            return -1;
        }
        f->scale = (int)v;
    }
    if ((y = velo_tk_yaml_get(fy, "constraints")) != NULL &&
        parse_constraints(c, f, y) != 0) {
        return -1;
    }
    if ((y = velo_tk_yaml_get(fy, "null_rate")) != NULL &&
        num(c, y, "null_rate", &f->null_rate) != 0) {
        return -1;
    }
    if ((y = velo_tk_yaml_get(fy, "derived")) != NULL) {
        free(f->derived_text);
        f->derived_text = strdup(y->kind == VELO_TK_YSCALAR ? y->str : "");
    }
    if ((y = velo_tk_yaml_get(fy, "references")) != NULL) {
        free(f->ref_source);
        free(f->ref_field);
        f->ref_source = f->ref_field = NULL;
        if (parse_references(c, f, y) != 0) {
            return -1;
        }
    }
    return check_field(c, f, fy);
}

struct velo_tk_schema *velo_tk_schema_parse(const struct velo_tk_yaml *doc,
                                            const char *where, char *err,
                                            size_t errlen)
{
    struct fctx c = {where, NULL, err, errlen};
    if (doc == NULL || doc->kind != VELO_TK_YMAP) {
        snprintf(err, errlen,
                 "%s: a schema is a map with 'schema: {name: "
                 "...}' and 'fields: [...]'",
                 where);
        return NULL;
    }
    const struct velo_tk_yaml *fields = velo_tk_yaml_get(doc, "fields");
    if (fields == NULL || fields->kind != VELO_TK_YSEQ || fields->n == 0) {
        snprintf(err, errlen,
                 "%s:%d: no fields: list them under 'fields:' "
                 "(- name: id, type: integer)",
                 where, doc->line);
        return NULL;
    }
    if (fields->n > SCHEMA_MAX_FIELDS) {
        snprintf(err, errlen, "%s: more than %d fields", where,
                 SCHEMA_MAX_FIELDS);
        return NULL;
    }
    struct velo_tk_schema *s = calloc(1, sizeof(*s));
    if (s == NULL ||
        (s->fields = calloc(fields->n, sizeof(*s->fields))) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const struct velo_tk_yaml *meta = velo_tk_yaml_get(doc, "schema");
    const struct velo_tk_yaml *nm = velo_tk_yaml_get(meta, "name");
    s->name = strdup(nm != NULL && nm->kind == VELO_TK_YSCALAR ? nm->str : "");
    const struct velo_tk_yaml *rc = velo_tk_yaml_get(meta, "records");
    double v;
    if (rc != NULL && velo_tk_yaml_num(rc, &v) == 0 && v >= 0) {
        s->records = (int64_t)v;
    }
    for (size_t i = 0; i < fields->n; i++) {
        const struct velo_tk_yaml *fy = fields->items[i];
        struct velo_tk_field *f = &s->fields[s->n++];
        velo_tk_field_defaults(f);
        f->line = fy->line;
        const struct velo_tk_yaml *fn = velo_tk_yaml_get(fy, "name");
        if (fy->kind != VELO_TK_YMAP || fn == NULL ||
            fn->kind != VELO_TK_YSCALAR || fn->str[0] == '\0') {
            snprintf(err, errlen,
                     "%s:%d: field %zu has no name (- name: "
                     "price, type: decimal)",
                     where, fy->line, i + 1);
            velo_tk_schema_free(s);
            return NULL;
        }
        f->name = strdup(fn->str);
        c.field = f->name;
        if (velo_tk_schema_find(s, f->name) != (int)i) {
            ferr(&c, fy, "defined twice");
            velo_tk_schema_free(s);
            return NULL;
        }
        if (parse_field(&c, f, fy) != 0) {
            velo_tk_schema_free(s);
            return NULL;
        }
    }
    /* Derived expressions see the fields before them. */
    for (size_t i = 0; i < s->n; i++) {
        struct velo_tk_field *f = &s->fields[i];
        if (f->derived_text == NULL) {
            continue;
        }
        char derr[256];
        f->derived =
            velo_tk_derived_compile(f->derived_text, s, i, derr, sizeof(derr));
        if (f->derived == NULL) {
            c.field = f->name;
            ferr(&c, NULL, "derived '%s': %s", f->derived_text, derr);
            velo_tk_schema_free(s);
            return NULL;
        }
    }
    return s;
}

struct velo_tk_schema *velo_tk_schema_load(const char *path, char *err,
                                           size_t errlen)
{
    struct velo_tk_yaml *doc = velo_tk_yaml_load(path, err, errlen);
    if (doc == NULL) {
        return NULL;
    }
    struct velo_tk_schema *s = velo_tk_schema_parse(doc, path, err, errlen);
    velo_tk_yaml_free(doc);
    if (s != NULL) {
        s->path = strdup(path);
        if (s->name[0] == '\0') {
            /* orders.schema.yaml -> orders */
            const char *b = strrchr(path, '/');
            b = b != NULL ? b + 1 : path;
            size_t n = strcspn(b, ".");
            free(s->name);
            s->name = strndup(b, n);
        }
    }
    return s;
}

/* ---- From the engine's schema -------------------------------------------- */

struct sample_stats {
    double min, max;
    int seen;
    char *vals[SAMPLE_ENUM_MAX];
    size_t nvals;
    int many;
};

static void sample_note(struct sample_stats *st, const char *text, int number)
{
    if (number) {
        double v = strtod(text, NULL);
        if (!st->seen || v < st->min) {
            st->min = v;
        }
        if (!st->seen || v > st->max) {
            st->max = v;
        }
    }
    st->seen = 1;
    if (st->many) {
        return;
    }
    for (size_t i = 0; i < st->nvals; i++) {
        if (strcmp(st->vals[i], text) == 0) {
            return;
        }
    }
    if (st->nvals == SAMPLE_ENUM_MAX) {
        st->many = 1;
        return;
    }
    st->vals[st->nvals] = strdup(text);
    if (st->vals[st->nvals] != NULL) {
        st->nvals++;
    }
}

/* Split one CSV line on delim (quotes removed, no embedded newlines). */
static size_t csv_split(char *line, char **cells, size_t max)
{
    size_t n = 0;
    char *p = line;
    while (n < max) {
        char *out = p, *start = p;
        int q = 0;
        if (*p == '"') {
            q = 1;
            p++;
        }
        while (*p != '\0') {
            if (q && *p == '"' && p[1] == '"') {
                *out++ = '"';
                p += 2;
            } else if (q && *p == '"') {
                q = 0;
                p++;
            } else if (!q && *p == ',') {
                break;
            } else {
                *out++ = *p++;
            }
        }
        int more = *p == ',';
        *out = '\0';
        cells[n++] = start;
        if (!more) {
            break;
        }
        p++;
    }
    return n;
}

static void sample_scan(const struct velo_schema *s, struct sample_stats *st,
                        const char *sample, size_t len, int csv)
{
    char *copy = strndup(sample, len);
    if (copy == NULL) {
        return;
    }
    char *save = NULL;
    char *hdr[256];
    size_t nh = 0;
    int first = 1;
    for (char *line = strtok_r(copy, "\r\n", &save); line != NULL;
         line = strtok_r(NULL, "\r\n", &save)) {
        if (csv) {
            char *cells[256];
            if (first) {
                nh = csv_split(line, hdr, 256);
                first = 0;
                continue;
            }
            size_t nc = csv_split(line, cells, 256);
            for (size_t k = 0; k < nc && k < nh; k++) {
                int i = velo_schema_find(s, hdr[k]);
                if (i >= 0 && cells[k][0] != '\0') {
                    sample_note(&st[i], cells[k],
                                velo_type_is_numeric(s->fields[i].type));
                }
            }
            continue;
        }
        json_t *o = json_loads(line, JSON_DECODE_ANY, NULL);
        if (!json_is_object(o)) {
            json_decref(o);
            continue;
        }
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v)
        {
            int i = velo_schema_find(s, k);
            if (i < 0 || json_is_null(v)) {
                continue;
            }
            char buf[64];
            const char *text = buf;
            if (json_is_string(v)) {
                text = json_string_value(v);
            } else if (json_is_integer(v)) {
                snprintf(buf, sizeof(buf), "%lld",
                         (long long)json_integer_value(v));
            } else if (json_is_real(v)) {
                snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
            } else {
                snprintf(buf, sizeof(buf), "%s",
                         json_is_true(v) ? "true" : "false");
            }
            sample_note(&st[i], text, velo_type_is_numeric(s->fields[i].type));
        }
        json_decref(o);
    }
    free(copy);
}

struct velo_tk_schema *velo_tk_schema_from_engine(const char *name,
                                                  const struct velo_schema *s,
                                                  const char *sample,
                                                  size_t len, int csv)
{
    struct velo_tk_schema *g = calloc(1, sizeof(*g));
    struct sample_stats *st = calloc(s->n + 1, sizeof(*st));
    if (g == NULL || st == NULL ||
        (g->fields = calloc(s->n + 1, sizeof(*g->fields))) == NULL ||
        (g->name = strdup(name)) == NULL) {
        free(st);
        velo_tk_schema_free(g);
        return NULL;
    }
    if (sample != NULL && len > 0) {
        sample_scan(s, st, sample, len, csv);
    }
    for (size_t i = 0; i < s->n; i++) {
        const struct velo_field *src = &s->fields[i];
        if (src->hidden) {
            continue;
        }
        struct velo_tk_field *f = &g->fields[g->n++];
        velo_tk_field_defaults(f);
        f->name = strdup(src->name);
        switch (src->type.id) {
        case VELO_TYPE_BOOLEAN:
            f->type = VELO_TK_BOOLEAN;
            break;
        case VELO_TYPE_INTEGER:
        case VELO_TYPE_BIGINT:
            f->type = VELO_TK_INTEGER;
            break;
        case VELO_TYPE_DOUBLE:
            f->type = VELO_TK_FLOAT;
            break;
        case VELO_TYPE_DECIMAL:
            f->type = VELO_TK_DECIMAL;
            f->precision = src->type.precision;
            f->scale = src->type.scale;
            break;
        case VELO_TYPE_TIMESTAMP:
        case VELO_TYPE_DATE:
            f->type = VELO_TK_TIMESTAMP;
            break;
        default:
            f->type = VELO_TK_STRING;
            break;
        }
        if (f->type == VELO_TK_DECIMAL) {
            double lim = pow(10, f->precision - f->scale) - 1;
            f->has_min = f->has_max = 1;
            f->min = 0;
            f->max = lim < 1000 ? lim : 1000;
        } else if (f->type == VELO_TK_INTEGER || f->type == VELO_TK_FLOAT) {
            f->has_min = f->has_max = 1;
            f->min = 0;
            f->max = 1000;
        }
        if (st[i].seen &&
            (f->type == VELO_TK_INTEGER || f->type == VELO_TK_FLOAT ||
             f->type == VELO_TK_DECIMAL)) {
            f->min = st[i].min;
            f->max = st[i].max;
        }
        if (f->type == VELO_TK_STRING && st[i].seen && !st[i].many &&
            st[i].nvals > 0) {
            f->nenum = st[i].nvals;
            f->enums = calloc(f->nenum, sizeof(*f->enums));
            f->cum_weights = calloc(f->nenum, sizeof(*f->cum_weights));
            for (size_t k = 0;
                 f->enums != NULL && f->cum_weights != NULL && k < f->nenum;
                 k++) {
                f->enums[k] = st[i].vals[k];
                st[i].vals[k] = NULL;
                f->cum_weights[k] = (double)(k + 1) / (double)f->nenum;
            }
        }
        f->mean = (f->min + f->max) / 2;
        f->stddev = (f->max - f->min) / 6;
        f->step = (f->max - f->min) / 100;
    }
    for (size_t i = 0; i < s->n; i++) {
        for (size_t k = 0; k < st[i].nvals; k++) {
            free(st[i].vals[k]);
        }
    }
    free(st);
    return g;
}

void velo_tk_schema_free(struct velo_tk_schema *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        struct velo_tk_field *f = &s->fields[i];
        free(f->name);
        for (size_t k = 0; f->enums != NULL && k < f->nenum; k++) {
            free(f->enums[k]);
        }
        free(f->enums);
        free(f->cum_weights);
        velo_tk_pattern_free(f->pattern);
        velo_tk_derived_free(f->derived);
        free(f->derived_text);
        free(f->ref_source);
        free(f->ref_field);
    }
    free(s->fields);
    free(s->name);
    free(s->path);
    free(s);
}

int velo_tk_schema_find(const struct velo_tk_schema *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->fields[i].name != NULL &&
            strcasecmp(s->fields[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}
