/*
 * SQL data types and schemas.
 *
 * Type names follow PostgreSQL and Flink where they agree; the parser for
 * type names accepts the usual aliases (INT, VARCHAR(n), NUMERIC(p,s),
 * FLOAT, TEXT, BYTEA, ...) so a declared schema reads naturally.
 */
#include "exec/types.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <velo/log.h>

struct velo_schema *velo_schema_create(size_t n)
{
    struct velo_schema *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->n = n;
    if (n > 0) {
        s->fields = calloc(n, sizeof(*s->fields));
        if (s->fields == NULL) {
            free(s);
            errno = ENOMEM;
            return NULL;
        }
    }
    return s;
}

struct velo_schema *velo_schema_copy(const struct velo_schema *s)
{
    if (s == NULL) {
        errno = EINVAL;
        return NULL;
    }
    struct velo_schema *c = velo_schema_create(s->n);
    if (c == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < s->n; i++) {
        const struct velo_field *f = &s->fields[i];
        if (velo_schema_set(c, i, f->name != NULL ? f->name : "", f->type,
                            f->nullable, f->hidden) != VELO_OK) {
            velo_schema_destroy(c);
            errno = ENOMEM;
            return NULL;
        }
    }
    return c;
}

void velo_schema_destroy(struct velo_schema *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n; i++) {
        free(s->fields[i].name);
    }
    free(s->fields);
    free(s);
}

int velo_schema_set(struct velo_schema *s, size_t i, const char *name,
                    struct velo_datatype type, int nullable, int hidden)
{
    if (s == NULL || i >= s->n || name == NULL) {
        errno = EINVAL;
        return VELO_ERR;
    }
    char *copy = strdup(name);
    if (copy == NULL) {
        return VELO_ERR;
    }
    free(s->fields[i].name);
    s->fields[i].name = copy;
    s->fields[i].type = type;
    s->fields[i].nullable = nullable ? 1 : 0;
    s->fields[i].hidden = hidden ? 1 : 0;
    return VELO_OK;
}

int velo_schema_find(const struct velo_schema *s, const char *name)
{
    if (s == NULL || name == NULL) {
        return -1;
    }
    for (size_t i = 0; i < s->n; i++) {
        if (s->fields[i].name != NULL &&
            strcasecmp(s->fields[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

struct velo_datatype velo_type_of(int id)
{
    struct velo_datatype t = {(uint8_t)id, 0, 0};
    if (id == VELO_TYPE_DECIMAL) {
        t.precision = VELO_DECIMAL_MAX_PRECISION;
    }
    return t;
}

struct velo_datatype velo_type_decimal(int precision, int scale)
{
    if (precision < 1) {
        precision = 1;
    }
    if (precision > VELO_DECIMAL_MAX_PRECISION) {
        precision = VELO_DECIMAL_MAX_PRECISION;
    }
    if (scale < 0) {
        scale = 0;
    }
    if (scale > precision) {
        scale = precision;
    }
    struct velo_datatype t = {VELO_TYPE_DECIMAL, (uint8_t)precision,
                              (int8_t)scale};
    return t;
}

int velo_type_equal(struct velo_datatype a, struct velo_datatype b)
{
    if (a.id != b.id) {
        return 0;
    }
    if (a.id == VELO_TYPE_DECIMAL) {
        return a.precision == b.precision && a.scale == b.scale;
    }
    return 1;
}

int velo_type_is_numeric(struct velo_datatype t)
{
    return t.id == VELO_TYPE_INTEGER || t.id == VELO_TYPE_BIGINT ||
           t.id == VELO_TYPE_DOUBLE || t.id == VELO_TYPE_DECIMAL;
}

static const char *const type_names[] = {
    [VELO_TYPE_NULL] = "NULL",         [VELO_TYPE_BOOLEAN] = "BOOLEAN",
    [VELO_TYPE_INTEGER] = "INTEGER",   [VELO_TYPE_BIGINT] = "BIGINT",
    [VELO_TYPE_DOUBLE] = "DOUBLE",     [VELO_TYPE_DECIMAL] = "DECIMAL",
    [VELO_TYPE_STRING] = "STRING",     [VELO_TYPE_TIMESTAMP] = "TIMESTAMP",
    [VELO_TYPE_DATE] = "DATE",         [VELO_TYPE_INTERVAL] = "INTERVAL",
    [VELO_TYPE_BYTES] = "BYTES",       [VELO_TYPE_JSON] = "JSON",
};

const char *velo_type_name(struct velo_datatype t, char *buf, size_t len)
{
    if (buf == NULL || len == 0) {
        return "";
    }
    if (t.id == VELO_TYPE_DECIMAL) {
        snprintf(buf, len, "DECIMAL(%d,%d)", (int)t.precision, (int)t.scale);
    } else if (t.id < sizeof(type_names) / sizeof(type_names[0])) {
        snprintf(buf, len, "%s", type_names[t.id]);
    } else {
        snprintf(buf, len, "TYPE(%d)", (int)t.id);
    }
    return buf;
}

/* Aliases accepted in declared schemas and CAST targets. */
static const struct {
    const char *name;
    int id;
} type_aliases[] = {
    {"BOOLEAN", VELO_TYPE_BOOLEAN},
    {"BOOL", VELO_TYPE_BOOLEAN},
    {"INTEGER", VELO_TYPE_INTEGER},
    {"INT", VELO_TYPE_INTEGER},
    {"INT4", VELO_TYPE_INTEGER},
    {"SMALLINT", VELO_TYPE_INTEGER},
    {"TINYINT", VELO_TYPE_INTEGER},
    {"BIGINT", VELO_TYPE_BIGINT},
    {"INT8", VELO_TYPE_BIGINT},
    {"LONG", VELO_TYPE_BIGINT},
    {"DOUBLE", VELO_TYPE_DOUBLE},
    {"DOUBLE PRECISION", VELO_TYPE_DOUBLE},
    {"FLOAT", VELO_TYPE_DOUBLE},
    {"FLOAT8", VELO_TYPE_DOUBLE},
    {"REAL", VELO_TYPE_DOUBLE},
    {"DECIMAL", VELO_TYPE_DECIMAL},
    {"NUMERIC", VELO_TYPE_DECIMAL},
    {"DEC", VELO_TYPE_DECIMAL},
    {"STRING", VELO_TYPE_STRING},
    {"VARCHAR", VELO_TYPE_STRING},
    {"CHARACTER VARYING", VELO_TYPE_STRING},
    {"TEXT", VELO_TYPE_STRING},
    {"CHAR", VELO_TYPE_STRING},
    {"TIMESTAMP", VELO_TYPE_TIMESTAMP},
    {"TIMESTAMPTZ", VELO_TYPE_TIMESTAMP},
    {"TIMESTAMP WITH TIME ZONE", VELO_TYPE_TIMESTAMP},
    {"TIMESTAMP WITHOUT TIME ZONE", VELO_TYPE_TIMESTAMP},
    {"DATE", VELO_TYPE_DATE},
    {"INTERVAL", VELO_TYPE_INTERVAL},
    {"BYTES", VELO_TYPE_BYTES},
    {"BYTEA", VELO_TYPE_BYTES},
    {"VARBINARY", VELO_TYPE_BYTES},
    {"BINARY", VELO_TYPE_BYTES},
    {"JSON", VELO_TYPE_JSON},
    {"JSONB", VELO_TYPE_JSON},
};

/* Parses "(a)" or "(a, b)" after a type name; returns count or -1. */
static int parse_type_params(const char *p, long *a, long *b)
{
    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (*p == '\0') {
        return 0;
    }
    if (*p != '(') {
        return -1;
    }
    p++;
    char *end;
    errno = 0;
    *a = strtol(p, &end, 10);
    if (end == p || errno != 0) {
        return -1;
    }
    p = end;
    while (isspace((unsigned char)*p)) {
        p++;
    }
    int n = 1;
    if (*p == ',') {
        p++;
        *b = strtol(p, &end, 10);
        if (end == p || errno != 0) {
            return -1;
        }
        p = end;
        n = 2;
        while (isspace((unsigned char)*p)) {
            p++;
        }
    }
    if (*p != ')') {
        return -1;
    }
    p++;
    while (isspace((unsigned char)*p)) {
        p++;
    }
    return *p == '\0' ? n : -1;
}

int velo_type_parse(const char *text, struct velo_datatype *out)
{
    if (text == NULL || out == NULL) {
        errno = EINVAL;
        return VELO_ERR;
    }
    /* Normalize: trim, collapse runs of spaces, upper case. */
    char norm[64];
    size_t n = 0;
    const char *p = text;
    while (isspace((unsigned char)*p)) {
        p++;
    }
    int space = 0;
    for (; *p != '\0'; p++) {
        if (isspace((unsigned char)*p)) {
            space = 1;
            continue;
        }
        if (n + 2 >= sizeof(norm)) {
            errno = EINVAL;
            return VELO_ERR;
        }
        if (space && n > 0 && *p != '(' && *p != ')' && *p != ',' &&
            norm[n - 1] != '(' && norm[n - 1] != ',') {
            norm[n++] = ' ';
        }
        space = 0;
        norm[n++] = (char)toupper((unsigned char)*p);
    }
    norm[n] = '\0';
    size_t namelen = strcspn(norm, "(");
    /* "VARCHAR (10)" normalized to "VARCHAR(10)"; strip a trailing space
     * before the parenthesis just in case. */
    size_t cmplen = namelen;
    while (cmplen > 0 && norm[cmplen - 1] == ' ') {
        cmplen--;
    }
    for (size_t i = 0; i < sizeof(type_aliases) / sizeof(type_aliases[0]);
         i++) {
        const char *name = type_aliases[i].name;
        if (strlen(name) != cmplen || strncmp(norm, name, cmplen) != 0) {
            continue;
        }
        long a = 0, b = 0;
        int np = parse_type_params(norm + namelen, &a, &b);
        if (np < 0) {
            errno = EINVAL;
            return VELO_ERR;
        }
        int id = type_aliases[i].id;
        if (id == VELO_TYPE_DECIMAL) {
            if (np == 0) {
                a = VELO_DECIMAL_MAX_PRECISION;
                b = 0;
            } else if (np == 1) {
                b = 0;
            }
            if (a < 1 || a > VELO_DECIMAL_MAX_PRECISION || b < 0 || b > a) {
                errno = ERANGE;
                return VELO_ERR;
            }
            *out = velo_type_decimal((int)a, (int)b);
            return VELO_OK;
        }
        /* Lengths (VARCHAR(10)) and fractional-second precisions
         * (TIMESTAMP(3)) are accepted and not enforced: strings are
         * views and timestamps are always microseconds. */
        if (np == 2 || (np == 1 && id != VELO_TYPE_STRING &&
                        id != VELO_TYPE_TIMESTAMP && id != VELO_TYPE_BYTES)) {
            errno = EINVAL;
            return VELO_ERR;
        }
        if (np == 1 && a < 0) {
            errno = EINVAL;
            return VELO_ERR;
        }
        *out = velo_type_of(id);
        return VELO_OK;
    }
    errno = EINVAL;
    return VELO_ERR;
}

int64_t velo_interval_unit_us(const char *name, size_t len)
{
    static const struct {
        const char *name;
        int64_t us;
    } units[] = {
        {"us", 1},
        {"microsecond", 1},
        {"microseconds", 1},
        {"ms", 1000},
        {"milli", 1000},
        {"millis", 1000},
        {"millisecond", 1000},
        {"milliseconds", 1000},
        {"s", 1000000},
        {"sec", 1000000},
        {"secs", 1000000},
        {"second", 1000000},
        {"seconds", 1000000},
        {"m", 60000000},
        {"min", 60000000},
        {"mins", 60000000},
        {"minute", 60000000},
        {"minutes", 60000000},
        {"h", INT64_C(3600000000)},
        {"hr", INT64_C(3600000000)},
        {"hrs", INT64_C(3600000000)},
        {"hour", INT64_C(3600000000)},
        {"hours", INT64_C(3600000000)},
        {"d", INT64_C(86400000000)},
        {"day", INT64_C(86400000000)},
        {"days", INT64_C(86400000000)},
        {"w", INT64_C(604800000000)},
        {"week", INT64_C(604800000000)},
        {"weeks", INT64_C(604800000000)},
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strlen(units[i].name) == len &&
            strncasecmp(units[i].name, name, len) == 0) {
            return units[i].us;
        }
    }
    return 0;
}
