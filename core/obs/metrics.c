/*
 * Metrics registry and Prometheus text exposition (format 0.0.4).
 *
 * Families and series are created under one registry lock and never freed
 * until the registry is, so a series handle stays valid for the process and
 * updates need no lock: values are doubles stored as their bit patterns in
 * atomic 64-bit words and changed with compare-and-swap.
 */
#include "obs/metrics.h"

#include <velo/log.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_SERIES_CAP 10000
#define METRICS_MAX_LABELS 16
#define METRICS_MAX_BUCKETS 64

/* Default histogram bounds, in seconds: request and task latencies. */
static const double default_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                         0.025,  0.05,  0.1,    0.25,  0.5,
                                         1,      2.5,   5,      10};

struct velo_metric {
    struct velo_metric_family *family;
    char **label_values;
    uint64_t hash;
    struct velo_metric *hnext; /* hash chain */
    struct velo_metric *next;  /* creation order, for rendering */
    _Atomic uint64_t value;    /* counter/gauge value, histogram sum */
    _Atomic uint64_t *buckets; /* histogram: per-bucket (not cumulative)
                                  counts, the last one is +Inf */
};

struct velo_metric_family {
    struct velo_metrics *registry;
    char *name;
    char *help;
    int type;
    char **label_names;
    size_t n_labels;
    double *bounds; /* histogram upper bounds, without +Inf */
    size_t n_bounds;
    struct velo_metric **table; /* hash table of series */
    size_t table_size;
    size_t n_series;
    struct velo_metric *first, *last;
    struct velo_metric_family *next;
};

struct collector {
    velo_metrics_collect_fn fn;
    void *arg;
};

struct velo_metrics {
    pthread_mutex_t lock;
    struct velo_metric_family *first, *last;
    struct velo_metric_family *dropped; /* velo_metrics_dropped_series_total */
    struct collector *collectors;
    size_t n_collectors;
    size_t series_cap;
};

/* ------------------------------------------------------------------------
 * Atomic doubles
 * ---------------------------------------------------------------------- */

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

static void atomic_add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    for (;;) {
        uint64_t nv = d2u(u2d(old) + v);
        if (atomic_compare_exchange_weak_explicit(
                p, &old, nv, memory_order_relaxed, memory_order_relaxed)) {
            return;
        }
    }
}

/* ------------------------------------------------------------------------
 * Names
 * ---------------------------------------------------------------------- */

static int valid_metric_name(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 ch == '_' || ch == ':' || (i > 0 && ch >= '0' && ch <= '9');
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static int valid_label_name(const char *s, size_t len)
{
    if (len == 0 || (len >= 2 && s[0] == '_' && s[1] == '_')) {
        return 0; /* "__" is reserved for Prometheus itself */
    }
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 ch == '_' || (i > 0 && ch >= '0' && ch <= '9');
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

static void free_strv(char **v, size_t n)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/* "a, b,c" -> ["a","b","c"]. @return VELO_OK, or VELO_ERR (errno EINVAL
 * for a bad or repeated name, ENOMEM). */
static int split_label_names(const char *spec, int type, char ***out,
                             size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (spec == NULL || spec[strspn(spec, " ")] == '\0') {
        return VELO_OK;
    }
    char **names = calloc(METRICS_MAX_LABELS, sizeof(*names));
    if (names == NULL) {
        errno = ENOMEM;
        return VELO_ERR;
    }
    size_t n = 0;
    const char *p = spec;
    for (;;) {
        p += strspn(p, " ");
        size_t len = strcspn(p, ", ");
        const char *after = p + len + strspn(p + len, " ");
        if (!valid_label_name(p, len) || n == METRICS_MAX_LABELS ||
            (*after != ',' && *after != '\0') ||
            (type == VELO_METRIC_HISTOGRAM && len == 2 &&
             strncmp(p, "le", 2) == 0)) {
            free_strv(names, n);
            errno = EINVAL;
            return VELO_ERR;
        }
        for (size_t i = 0; i < n; i++) {
            if (strlen(names[i]) == len && strncmp(names[i], p, len) == 0) {
                free_strv(names, n);
                errno = EINVAL;
                return VELO_ERR;
            }
        }
        names[n] = strndup(p, len);
        if (names[n] == NULL) {
            free_strv(names, n);
            errno = ENOMEM;
            return VELO_ERR;
        }
        n++;
        if (*after == '\0') {
            break;
        }
        p = after + 1;
    }
    *out = names;
    *n_out = n;
    return VELO_OK;
}

/* ------------------------------------------------------------------------
 * Registry
 * ---------------------------------------------------------------------- */

static struct velo_metric *series_locked(struct velo_metric_family *f,
                                         const char *const *values, size_t n);
static struct velo_metric_family *
family_locked(struct velo_metrics *m, const char *name, const char *help,
              int type, const char *label_names, const double *buckets,
              size_t n_buckets);

struct velo_metrics *velo_metrics_create(void)
{
    struct velo_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        errno = ENOMEM;
        return NULL;
    }
    m->series_cap = METRICS_SERIES_CAP;
    m->dropped = family_locked(
        m, "velo_metrics_dropped_series_total",
        "Updates dropped because a metric family reached its series limit.",
        VELO_METRIC_COUNTER, "family", NULL, 0);
    if (m->dropped == NULL) {
        velo_metrics_destroy(m);
        errno = ENOMEM;
        return NULL;
    }
    return m;
}

static void series_free(struct velo_metric *s, size_t n_labels)
{
    free_strv(s->label_values, n_labels);
    free(s->buckets);
    free(s);
}

static void family_free(struct velo_metric_family *f)
{
    struct velo_metric *s = f->first;
    while (s != NULL) {
        struct velo_metric *next = s->next;
        series_free(s, f->n_labels);
        s = next;
    }
    free(f->table);
    free(f->bounds);
    free_strv(f->label_names, f->n_labels);
    free(f->name);
    free(f->help);
    free(f);
}

void velo_metrics_destroy(struct velo_metrics *m)
{
    if (m == NULL) {
        return;
    }
    struct velo_metric_family *f = m->first;
    while (f != NULL) {
        struct velo_metric_family *next = f->next;
        family_free(f);
        f = next;
    }
    free(m->collectors);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static int same_labels(const struct velo_metric_family *f, char **names,
                       size_t n)
{
    if (f->n_labels != n) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(f->label_names[i], names[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

static struct velo_metric_family *
family_locked(struct velo_metrics *m, const char *name, const char *help,
              int type, const char *label_names, const double *buckets,
              size_t n_buckets)
{
    if (!valid_metric_name(name) ||
        (type != VELO_METRIC_COUNTER && type != VELO_METRIC_GAUGE &&
         type != VELO_METRIC_HISTOGRAM)) {
        errno = EINVAL;
        return NULL;
    }
    char **names;
    size_t n_names;
    if (split_label_names(label_names, type, &names, &n_names) != VELO_OK) {
        return NULL;
    }
    for (struct velo_metric_family *f = m->first; f != NULL; f = f->next) {
        if (strcmp(f->name, name) == 0) {
            int same = f->type == type && same_labels(f, names, n_names);
            free_strv(names, n_names);
            if (!same) {
                errno = EEXIST;
                return NULL;
            }
            return f;
        }
    }
    if (type == VELO_METRIC_HISTOGRAM) {
        if (buckets == NULL || n_buckets == 0) {
            buckets = default_buckets;
            n_buckets = sizeof(default_buckets) / sizeof(default_buckets[0]);
        }
        int ok = n_buckets <= METRICS_MAX_BUCKETS;
        for (size_t i = 0; ok && i < n_buckets; i++) {
            ok =
                isfinite(buckets[i]) && (i == 0 || buckets[i] > buckets[i - 1]);
        }
        if (!ok) {
            free_strv(names, n_names);
            errno = EINVAL;
            return NULL;
        }
    }
    struct velo_metric_family *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        free_strv(names, n_names);
        errno = ENOMEM;
        return NULL;
    }
    f->registry = m;
    f->type = type;
    f->label_names = names;
    f->n_labels = n_names;
    f->name = strdup(name);
    f->help = strdup(help != NULL ? help : "");
    f->table_size = 16;
    f->table = calloc(f->table_size, sizeof(*f->table));
    if (type == VELO_METRIC_HISTOGRAM) {
        f->n_bounds = n_buckets;
        f->bounds = malloc(n_buckets * sizeof(*f->bounds));
        if (f->bounds != NULL) {
            memcpy(f->bounds, buckets, n_buckets * sizeof(*f->bounds));
        }
    }
    if (f->name == NULL || f->help == NULL || f->table == NULL ||
        (type == VELO_METRIC_HISTOGRAM && f->bounds == NULL)) {
        family_free(f);
        errno = ENOMEM;
        return NULL;
    }
    /* An unlabelled family has exactly one series; make it now so it is
     * exposed (as 0) before its first update, as client libraries do. */
    if (n_names == 0 && series_locked(f, NULL, 0) == NULL) {
        family_free(f);
        errno = ENOMEM;
        return NULL;
    }
    if (m->last != NULL) {
        m->last->next = f;
    } else {
        m->first = f;
    }
    m->last = f;
    return f;
}

struct velo_metric_family *
velo_metrics_family(struct velo_metrics *m, const char *name, const char *help,
                    int type, const char *label_names, const double *buckets,
                    size_t n_buckets)
{
    if (m == NULL) {
        errno = EINVAL;
        return NULL;
    }
    pthread_mutex_lock(&m->lock);
    struct velo_metric_family *f =
        family_locked(m, name, help, type, label_names, buckets, n_buckets);
    pthread_mutex_unlock(&m->lock);
    return f;
}

static uint64_t hash_values(const char *const *values, size_t n)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)values[i];
             *p != '\0'; p++) {
            h = (h ^ *p) * UINT64_C(1099511628211);
        }
        h = (h ^ 0xff) * UINT64_C(1099511628211); /* separator */
    }
    return h;
}

static int values_equal(const struct velo_metric *s, const char *const *values,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s->label_values[i], values[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

static void table_grow(struct velo_metric_family *f)
{
    size_t nsize = f->table_size * 2;
    struct velo_metric **nt = calloc(nsize, sizeof(*nt));
    if (nt == NULL) {
        return; /* keep the old table: longer chains, still correct */
    }
    for (struct velo_metric *s = f->first; s != NULL; s = s->next) {
        size_t b = (size_t)(s->hash & (nsize - 1));
        s->hnext = nt[b];
        nt[b] = s;
    }
    free(f->table);
    f->table = nt;
    f->table_size = nsize;
}

static void count_dropped(struct velo_metric_family *f)
{
    struct velo_metrics *m = f->registry;
    if (f == m->dropped) {
        return; /* one series per family: cannot overflow in practice */
    }
    const char *v[1] = {f->name};
    struct velo_metric *d = series_locked(m->dropped, v, 1);
    if (d != NULL) {
        atomic_add_double(&d->value, 1.0);
    }
}

static struct velo_metric *series_locked(struct velo_metric_family *f,
                                         const char *const *values, size_t n)
{
    if (n != f->n_labels) {
        errno = EINVAL;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (values[i] == NULL) {
            errno = EINVAL;
            return NULL;
        }
    }
    uint64_t h = hash_values(values, n);
    for (struct velo_metric *s = f->table[h & (f->table_size - 1)]; s != NULL;
         s = s->hnext) {
        if (s->hash == h && values_equal(s, values, n)) {
            return s;
        }
    }
    if (f->n_series >= f->registry->series_cap) {
        count_dropped(f);
        errno = ENOSPC;
        return NULL;
    }
    struct velo_metric *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    s->family = f;
    s->hash = h;
    if (n > 0) {
        s->label_values = calloc(n, sizeof(*s->label_values));
        if (s->label_values == NULL) {
            free(s);
            errno = ENOMEM;
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            s->label_values[i] = strdup(values[i]);
            if (s->label_values[i] == NULL) {
                series_free(s, n);
                errno = ENOMEM;
                return NULL;
            }
        }
    }
    if (f->type == VELO_METRIC_HISTOGRAM) {
        s->buckets = calloc(f->n_bounds + 1, sizeof(*s->buckets));
        if (s->buckets == NULL) {
            series_free(s, n);
            errno = ENOMEM;
            return NULL;
        }
    }
    atomic_init(&s->value, d2u(0.0));
    if (f->n_series + 1 > f->table_size * 3 / 4) {
        table_grow(f);
    }
    size_t b = (size_t)(h & (f->table_size - 1));
    s->hnext = f->table[b];
    f->table[b] = s;
    if (f->last != NULL) {
        f->last->next = s;
    } else {
        f->first = s;
    }
    f->last = s;
    f->n_series++;
    return s;
}

struct velo_metric *velo_metric_series(struct velo_metric_family *f,
                                       const char *const *label_values,
                                       size_t n)
{
    if (f == NULL) {
        errno = EINVAL;
        return NULL;
    }
    pthread_mutex_lock(&f->registry->lock);
    struct velo_metric *s = series_locked(f, label_values, n);
    pthread_mutex_unlock(&f->registry->lock);
    return s;
}

/* ------------------------------------------------------------------------
 * Updates (lock-free)
 * ---------------------------------------------------------------------- */

void velo_metric_inc(struct velo_metric *s, double v)
{
    if (s == NULL) {
        return;
    }
    int type = s->family->type;
    if (type == VELO_METRIC_HISTOGRAM) {
        return;
    }
    /* A counter only goes up; a negative or NaN step would break rate(). */
    if (type == VELO_METRIC_COUNTER && !(v >= 0)) {
        return;
    }
    atomic_add_double(&s->value, v);
}

void velo_metric_set(struct velo_metric *s, double v)
{
    /* Counters may be set too: collectors mirror counts kept elsewhere
     * (CPU seconds from /proc). */
    if (s == NULL || s->family->type == VELO_METRIC_HISTOGRAM) {
        return;
    }
    atomic_store_explicit(&s->value, d2u(v), memory_order_relaxed);
}

void velo_metric_observe(struct velo_metric *s, double v)
{
    if (s == NULL || s->family->type != VELO_METRIC_HISTOGRAM || isnan(v)) {
        return;
    }
    const struct velo_metric_family *f = s->family;
    size_t i = 0;
    while (i < f->n_bounds && v > f->bounds[i]) {
        i++;
    }
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    atomic_add_double(&s->value, v);
}

int velo_metric_histogram_set(struct velo_metric *s, const uint64_t *le_cum,
                              size_t n, uint64_t count, double sum)
{
    if (s == NULL || s->family->type != VELO_METRIC_HISTOGRAM ||
        n != s->family->n_bounds) {
        return VELO_ERR;
    }
    /* Stored per bucket, not cumulative; clamp so a count read while the
     * source moves on can never make a bucket negative. */
    uint64_t prev = 0;
    for (size_t i = 0; i <= n; i++) {
        uint64_t c = i < n ? le_cum[i] : count;
        if (c < prev) {
            c = prev;
        }
        atomic_store_explicit(&s->buckets[i], c - prev, memory_order_relaxed);
        prev = c;
    }
    atomic_store_explicit(&s->value, d2u(sum), memory_order_relaxed);
    return VELO_OK;
}

void velo_metrics_family_visit(struct velo_metric_family *f,
                               velo_metric_visit_fn fn, void *arg)
{
    if (f == NULL || fn == NULL) {
        return;
    }
    pthread_mutex_lock(&f->registry->lock);
    for (const struct velo_metric *s = f->first; s != NULL; s = s->next) {
        uint64_t count = 0;
        if (f->type == VELO_METRIC_HISTOGRAM) {
            for (size_t i = 0; i <= f->n_bounds; i++) {
                count +=
                    atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
            }
        }
        fn(arg, (const char *const *)s->label_values, f->n_labels,
           velo_metric_value(s), count);
    }
    pthread_mutex_unlock(&f->registry->lock);
}

double velo_metric_value(const struct velo_metric *s)
{
    if (s == NULL) {
        return 0.0;
    }
    return u2d(atomic_load_explicit((_Atomic uint64_t *)&s->value,
                                    memory_order_relaxed));
}

int velo_metrics_add_collector(struct velo_metrics *m,
                               velo_metrics_collect_fn fn, void *arg)
{
    if (m == NULL || fn == NULL) {
        return VELO_ERR;
    }
    pthread_mutex_lock(&m->lock);
    struct collector *nc =
        realloc(m->collectors, (m->n_collectors + 1) * sizeof(*nc));
    if (nc == NULL) {
        pthread_mutex_unlock(&m->lock);
        return VELO_ERR;
    }
    m->collectors = nc;
    nc[m->n_collectors].fn = fn;
    nc[m->n_collectors].arg = arg;
    m->n_collectors++;
    pthread_mutex_unlock(&m->lock);
    return VELO_OK;
}

/* ------------------------------------------------------------------------
 * Exposition
 * ---------------------------------------------------------------------- */

struct sbuf {
    char *buf;
    size_t len, cap;
    int oom;
};

static void sb_reserve(struct sbuf *b, size_t more)
{
    if (b->oom || b->len + more + 1 <= b->cap) {
        return;
    }
    size_t ncap = b->cap == 0 ? 4096 : b->cap;
    while (ncap < b->len + more + 1) {
        ncap *= 2;
    }
    char *nb = realloc(b->buf, ncap);
    if (nb == NULL) {
        b->oom = 1;
        return;
    }
    b->buf = nb;
    b->cap = ncap;
}

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    if (b->oom) {
        return;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

/* HELP text escapes backslash and newline; label values also '"'. */
static void sb_escaped(struct sbuf *b, const char *s, int quote)
{
    for (const char *p = s; *p != '\0'; p++) {
        size_t run = strcspn(p, quote ? "\\\n\"" : "\\\n");
        if (run > 0) {
            sb_putn(b, p, run);
            p += run;
            if (*p == '\0') {
                break;
            }
        }
        if (*p == '\\') {
            sb_puts(b, "\\\\");
        } else if (*p == '\n') {
            sb_puts(b, "\\n");
        } else {
            sb_puts(b, "\\\"");
        }
    }
}

/* Shortest text that reads back as the same double; integers without an
 * exponent; the special values as Prometheus spells them. */
static void format_value(char *out, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
    } else if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
    } else if (v == 0) {
        snprintf(out, cap, "0");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(out, cap, "%.0f", v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(out, cap, "%.*g", prec, v);
            if (strtod(out, NULL) == v) {
                break;
            }
        }
    }
}

static void sb_value(struct sbuf *b, double v)
{
    char num[40];
    format_value(num, sizeof(num), v);
    sb_puts(b, num);
}

/* name{l1="v1",...[,le="x"]} */
static void sb_series_name(struct sbuf *b, const struct velo_metric_family *f,
                           const struct velo_metric *s, const char *suffix,
                           const char *le)
{
    sb_puts(b, f->name);
    sb_puts(b, suffix);
    /* An empty label value is the same as no label (Prometheus): left
     * out, so series of one family may name different labels. */
    size_t shown = 0;
    for (size_t i = 0; i < f->n_labels; i++) {
        if (s->label_values[i][0] == '\0') {
            continue;
        }
        sb_puts(b, shown++ > 0 ? "," : "{");
        sb_puts(b, f->label_names[i]);
        sb_puts(b, "=\"");
        sb_escaped(b, s->label_values[i], 1);
        sb_puts(b, "\"");
    }
    if (le != NULL) {
        sb_puts(b, shown++ > 0 ? ",le=\"" : "{le=\"");
        sb_puts(b, le);
        sb_puts(b, "\"");
    }
    if (shown > 0) {
        sb_puts(b, "}");
    }
}

static void render_family(struct sbuf *b, const struct velo_metric_family *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    sb_puts(b, "# HELP ");
    sb_puts(b, f->name);
    sb_puts(b, " ");
    sb_escaped(b, f->help, 0);
    sb_puts(b, "\n# TYPE ");
    sb_puts(b, f->name);
    sb_puts(b, " ");
    sb_puts(b, type_names[f->type]);
    sb_puts(b, "\n");
    for (const struct velo_metric *s = f->first; s != NULL; s = s->next) {
        double v = velo_metric_value(s);
        if (f->type != VELO_METRIC_HISTOGRAM) {
            sb_series_name(b, f, s, "", NULL);
            sb_puts(b, " ");
            sb_value(b, v);
            sb_puts(b, "\n");
            continue;
        }
        /* _count is the +Inf bucket by construction, so the two always
         * agree even while workers observe concurrently. */
        uint64_t cum = 0;
        char le[40];
        for (size_t i = 0; i <= f->n_bounds; i++) {
            cum += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
            if (i < f->n_bounds) {
                format_value(le, sizeof(le), f->bounds[i]);
            } else {
                snprintf(le, sizeof(le), "+Inf");
            }
            sb_series_name(b, f, s, "_bucket", le);
            sb_puts(b, " ");
            sb_value(b, (double)cum);
            sb_puts(b, "\n");
        }
        sb_series_name(b, f, s, "_sum", NULL);
        sb_puts(b, " ");
        sb_value(b, v);
        sb_puts(b, "\n");
        sb_series_name(b, f, s, "_count", NULL);
        sb_puts(b, " ");
        sb_value(b, (double)cum);
        sb_puts(b, "\n");
    }
}

char *velo_metrics_render(struct velo_metrics *m, size_t *len)
{
    if (m == NULL) {
        errno = EINVAL;
        return NULL;
    }
    /* Collectors take the lock themselves (they create series), so run
     * them from a snapshot of the list, unlocked. */
    pthread_mutex_lock(&m->lock);
    size_t nc = m->n_collectors;
    struct collector *cs = NULL;
    if (nc > 0) {
        cs = malloc(nc * sizeof(*cs));
        if (cs == NULL) {
            pthread_mutex_unlock(&m->lock);
            errno = ENOMEM;
            return NULL;
        }
        memcpy(cs, m->collectors, nc * sizeof(*cs));
    }
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < nc; i++) {
        cs[i].fn(m, cs[i].arg);
    }
    free(cs);

    struct sbuf b = {0};
    sb_reserve(&b, 4096);
    pthread_mutex_lock(&m->lock);
    for (const struct velo_metric_family *f = m->first; f != NULL;
         f = f->next) {
        render_family(&b, f);
    }
    pthread_mutex_unlock(&m->lock);
    if (b.oom) {
        free(b.buf);
        errno = ENOMEM;
        return NULL;
    }
    if (len != NULL) {
        *len = b.len;
    }
    return b.buf;
}
