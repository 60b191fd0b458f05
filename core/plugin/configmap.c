/*
 * Config maps: check a map, fill its struct from settings, free it.
 *
 * Fields are written with memcpy at the map's offsets: the struct is the
 * plugin's, and the map only promises offsets and types (checked by
 * velo_configmap_check), not that we may form typed pointers into it.
 */
#include "plugin/configmap.h"

#include <errno.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "config/config.h"
#include "util/textbuf.h"

/* A growing message; stops quietly on ENOMEM and remembers it. */

static size_t field_size(int type)
{
    switch (type) {
    case VELO_CONFIG_STR:
    case VELO_CONFIG_SECRET:
        return sizeof(char *);
    case VELO_CONFIG_INT:
    case VELO_CONFIG_SIZE:
    case VELO_CONFIG_DURATION:
        return sizeof(int64_t);
    case VELO_CONFIG_BOOL:
        return sizeof(int);
    case VELO_CONFIG_DOUBLE:
        return sizeof(double);
    }
    return 0;
}

static size_t field_align(int type)
{
    switch (type) {
    case VELO_CONFIG_STR:
    case VELO_CONFIG_SECRET:
        return alignof(char *);
    case VELO_CONFIG_INT:
    case VELO_CONFIG_SIZE:
    case VELO_CONFIG_DURATION:
        return alignof(int64_t);
    case VELO_CONFIG_BOOL:
        return alignof(int);
    case VELO_CONFIG_DOUBLE:
        return alignof(double);
    }
    return 1;
}

const char *velo_configmap_type_noun(int type)
{
    switch (type) {
    case VELO_CONFIG_INT:
        return "an integer";
    case VELO_CONFIG_BOOL:
        return "a boolean";
    case VELO_CONFIG_DOUBLE:
        return "a number";
    case VELO_CONFIG_SIZE:
        return "a size";
    case VELO_CONFIG_DURATION:
        return "a duration";
    }
    return "a string";
}

const char *velo_configmap_type_hint(int type)
{
    switch (type) {
    case VELO_CONFIG_INT:
        return "write a whole number such as 42";
    case VELO_CONFIG_BOOL:
        return "write true or false (yes/no, on/off, 1/0)";
    case VELO_CONFIG_DOUBLE:
        return "write a number such as 0.5";
    case VELO_CONFIG_SIZE:
        return "write a number with an optional unit: 512, 64KiB, 4MiB";
    case VELO_CONFIG_DURATION:
        return "write a number with a unit: 250ms, 5s, 2m, 1h";
    }
    return "";
}

static int valid_key(const char *s)
{
    if (s == NULL || s[0] == '\0' || strnlen(s, 128) > 127) {
        return 0;
    }
    for (const char *p = s; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.')) {
            return 0;
        }
    }
    return 1;
}

size_t velo_configmap_count(const struct velo_config_map *map)
{
    size_t n = 0;
    if (map == NULL) {
        return 0;
    }
    while (n <= VELO_CONFIGMAP_MAX_ENTRIES && map[n].type != VELO_CONFIG_END) {
        n++;
    }
    return n;
}

int velo_configmap_check(const struct velo_config_map *map, size_t config_size,
                         char *err, size_t errlen)
{
    size_t n = velo_configmap_count(map);
    if (n > VELO_CONFIGMAP_MAX_ENTRIES) {
        snprintf(err, errlen,
                 "config map has no {0} terminator within %d entries",
                 VELO_CONFIGMAP_MAX_ENTRIES);
        return VELO_ERR;
    }
    if (config_size > VELO_CONFIGMAP_MAX_SIZE) {
        snprintf(err, errlen, "config_size %zu is larger than %d bytes",
                 config_size, VELO_CONFIGMAP_MAX_SIZE);
        return VELO_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        const struct velo_config_map *m = &map[i];
        if (!valid_key(m->name)) {
            snprintf(err, errlen,
                     "config map entry %zu has an invalid key name (use "
                     "a-z, 0-9, '_', '-', '.')",
                     i);
            return VELO_ERR;
        }
        size_t sz = field_size(m->type);
        if (sz == 0) {
            snprintf(err, errlen, "config map entry '%s' has unknown type %d",
                     m->name, m->type);
            return VELO_ERR;
        }
        if (m->offset > config_size || sz > config_size - m->offset ||
            m->offset % field_align(m->type) != 0) {
            snprintf(err, errlen,
                     "config map entry '%s' (offset %zu, %zu bytes) does "
                     "not fit config_size %zu",
                     m->name, m->offset, sz, config_size);
            return VELO_ERR;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(map[k].name, m->name) == 0) {
                snprintf(err, errlen, "config map declares '%s' twice",
                         m->name);
                return VELO_ERR;
            }
        }
    }
    return VELO_OK;
}

static int parse_double(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v)) {
        return VELO_ERR;
    }
    *out = v;
    return VELO_OK;
}

/* Parse `value` as the entry's type into the struct. A string field that
 * already holds a copy (a default overridden by a setting) is freed. */
static int store_value(const struct velo_config_map *m, char *conf,
                       const char *value)
{
    char *dst = conf + m->offset;
    int64_t i64;
    int b;
    double d;
    char *s;
    switch (m->type) {
    case VELO_CONFIG_STR:
    case VELO_CONFIG_SECRET:
        s = strdup(value);
        if (s == NULL) {
            return VELO_ERR;
        }
        char *old;
        memcpy(&old, dst, sizeof(old));
        free(old);
        memcpy(dst, &s, sizeof(s));
        return VELO_OK;
    case VELO_CONFIG_INT:
        if (velo_parse_int(value, &i64) != VELO_OK) {
            return VELO_ERR;
        }
        memcpy(dst, &i64, sizeof(i64));
        return VELO_OK;
    case VELO_CONFIG_SIZE:
        if (velo_parse_size(value, &i64) != VELO_OK) {
            return VELO_ERR;
        }
        memcpy(dst, &i64, sizeof(i64));
        return VELO_OK;
    case VELO_CONFIG_DURATION:
        if (velo_parse_duration(value, &i64) != VELO_OK) {
            return VELO_ERR;
        }
        memcpy(dst, &i64, sizeof(i64));
        return VELO_OK;
    case VELO_CONFIG_BOOL:
        if (velo_parse_bool(value, &b) != VELO_OK) {
            return VELO_ERR;
        }
        memcpy(dst, &b, sizeof(b));
        return VELO_OK;
    case VELO_CONFIG_DOUBLE:
        if (parse_double(value, &d) != VELO_OK) {
            return VELO_ERR;
        }
        memcpy(dst, &d, sizeof(d));
        return VELO_OK;
    }
    return VELO_ERR;
}

void velo_configmap_free(const struct velo_config_map *map, void *conf)
{
    if (conf == NULL) {
        return;
    }
    size_t n = velo_configmap_count(map);
    for (size_t i = 0; i < n && i < VELO_CONFIGMAP_MAX_ENTRIES; i++) {
        if (map[i].type == VELO_CONFIG_STR ||
            map[i].type == VELO_CONFIG_SECRET) {
            char *s;
            memcpy(&s, (char *)conf + map[i].offset, sizeof(s));
            free(s);
        }
    }
    free(conf);
}

static int starts_with(const char *s, const char *prefix)
{
    return prefix != NULL && prefix[0] != '\0' &&
           strncmp(s, prefix, strlen(prefix)) == 0;
}

int velo_configmap_fill(const struct velo_config_map *map, size_t config_size,
                        const struct velo_configmap_words *words,
                        const struct velo_configmap_item *items, size_t n,
                        const char *passthrough, void **out, char **why,
                        size_t *first_bad)
{
    static const struct velo_configmap_words plain = {"config key", "", "it"};
    const struct velo_configmap_words *w = words != NULL ? words : &plain;
    struct velo_textbuf t = {0};
    size_t bad = (size_t)-1;
    *out = NULL;
    *why = NULL;
    if (first_bad != NULL) {
        *first_bad = (size_t)-1;
    }

    char check[256];
    if (velo_configmap_check(map, config_size, check, sizeof(check)) !=
        VELO_OK) {
        velo_textbuf_add(&t, "%s", check);
        *why = t.p;
        return VELO_ERR;
    }
    size_t nmap = velo_configmap_count(map);
    int errors = 0;

    /* Keys the user set that the map does not know. */
    for (size_t i = 0; i < n; i++) {
        const struct velo_configmap_item *it = &items[i];
        if (it->key == NULL) {
            continue;
        }
        size_t k = 0;
        while (k < nmap && strcmp(map[k].name, it->key) != 0) {
            k++;
        }
        if (k < nmap || starts_with(it->key, passthrough)) {
            continue;
        }
        if (bad == (size_t)-1) {
            bad = i;
        }
        velo_textbuf_add(&t, "%sunknown %s %s%s", errors++ > 0 ? "; " : "", w->noun,
                w->prefix, it->key);
        if (it->where != NULL) {
            velo_textbuf_add(&t, " (%s)", it->where);
        }
        if (nmap == 0) {
            velo_textbuf_add(&t, "; %s takes no settings", w->owner);
        } else {
            velo_textbuf_add(&t, "; known keys: ");
            for (size_t j = 0; j < nmap; j++) {
                velo_textbuf_add(&t, "%s%s", j > 0 ? ", " : "", map[j].name);
            }
        }
    }

    char *conf = NULL;
    if (config_size > 0) {
        conf = calloc(1, config_size);
        if (conf == NULL) {
            free(t.p);
            return VELO_ERR;
        }
    }
    for (size_t i = 0; i < nmap; i++) {
        const struct velo_config_map *m = &map[i];
        const struct velo_configmap_item *it = NULL;
        size_t at = 0;
        for (size_t k = 0; k < n; k++) {
            if (items[k].key != NULL && items[k].value != NULL &&
                strcmp(items[k].key, m->name) == 0) {
                it = &items[k]; /* the last one set wins, as for any key */
                at = k;
            }
        }
        const char *value = it != NULL ? it->value : m->def_value;
        if (value == NULL) {
            velo_textbuf_add(&t, "%smissing required %s %s%s", errors++ > 0 ? "; " : "",
                    w->noun, w->prefix, m->name);
            if (m->description != NULL) {
                velo_textbuf_add(&t, " (%s)", m->description);
            }
            continue;
        }
        if (store_value(m, conf, value) == VELO_OK) {
            continue;
        }
        if (m->type == VELO_CONFIG_STR || m->type == VELO_CONFIG_SECRET) {
            velo_textbuf_add(&t, "%sout of memory", errors++ > 0 ? "; " : "");
        } else if (it != NULL) {
            if (bad == (size_t)-1 || at < bad) {
                bad = at;
            }
            velo_textbuf_add(&t, "%s%s%s: \"%.100s\" is not %s (",
                    errors++ > 0 ? "; " : "", w->prefix, m->name, value,
                    velo_configmap_type_noun(m->type));
            if (it->where != NULL) {
                velo_textbuf_add(&t, "%s; ", it->where);
            }
            velo_textbuf_add(&t, "%s)", velo_configmap_type_hint(m->type));
        } else {
            velo_textbuf_add(&t,
                    "%sthe default for '%s', \"%.100s\", is not %s (a "
                    "bug in the config map)",
                    errors++ > 0 ? "; " : "", m->name, value,
                    velo_configmap_type_noun(m->type));
        }
    }
    if (errors > 0 || t.oom) {
        velo_configmap_free(map, conf);
        if (t.oom) {
            free(t.p);
            t.p = NULL;
        }
        *why = t.p;
        if (first_bad != NULL) {
            *first_bad = bad;
        }
        return VELO_ERR;
    }
    free(t.p);
    *out = conf;
    return VELO_OK;
}
