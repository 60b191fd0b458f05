/*
 * The data generator.
 *
 * Every field draws from its own xoshiro256** stream seeded from (seed,
 * schema name, field name), so adding a field does not change the values
 * of the others, and the same seed gives the same bytes everywhere. A row
 * is built in buffers the generator owns and reuses: nothing is allocated
 * per record.
 *
 * Event time: record i is due at start + i/rate seconds, plus uniform
 * jitter; an out_of_order fraction of records is moved back by more than
 * two inter-arrival gaps (up to max_delay), so each of them arrives after
 * a later-stamped one: the fraction of records older than the newest seen
 * so far is the requested fraction (with no jitter, exactly in
 * expectation).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "formats/format.h"
#include "testkit/testkit-internal.h"

/* ---- Random streams ----------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void velo_tk_rng_seed(struct velo_tk_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        r->s[i] = splitmix64(&seed);
    }
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t velo_tk_rng_next(struct velo_tk_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double velo_tk_rng_unit(struct velo_tk_rng *r)
{
    return (double)(velo_tk_rng_next(r) >> 11) * 0x1.0p-53;
}

double velo_tk_rng_normal(struct velo_tk_rng *r)
{
    /* Box-Muller; one value per call keeps the stream simple. */
    double u1 = velo_tk_rng_unit(r), u2 = velo_tk_rng_unit(r);
    if (u1 < 1e-300) {
        u1 = 1e-300;
    }
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

uint64_t velo_tk_hash(const char *s, uint64_t h)
{
    for (; s != NULL && *s != '\0'; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- Patterns ----------------------------------------------------------- */

#define PAT_MAX_TOKENS 128
#define PAT_UNBOUNDED 8

struct pat_token {
    char set[96]; /* printable ASCII choices */
    uint8_t nset;
    uint16_t min, max;
};

struct velo_tk_pattern {
    struct pat_token t[PAT_MAX_TOKENS];
    size_t n;
};

static void set_add(struct pat_token *t, int c)
{
    if (c < 32 || c > 126) {
        return;
    }
    for (size_t i = 0; i < t->nset; i++) {
        if (t->set[i] == (char)c) {
            return;
        }
    }
    t->set[t->nset++] = (char)c;
}

static void set_range(struct pat_token *t, int a, int b)
{
    for (int c = a; c <= b; c++) {
        set_add(t, c);
    }
}

/* \d \w \s, or an escaped literal. */
static int escape_class(struct pat_token *t, char e)
{
    switch (e) {
    case 'd':
        set_range(t, '0', '9');
        return 0;
    case 'w':
        set_range(t, 'a', 'z');
        set_range(t, 'A', 'Z');
        set_range(t, '0', '9');
        set_add(t, '_');
        return 0;
    case 's':
        set_add(t, ' ');
        return 0;
    default:
        if (isalnum((unsigned char)e)) {
            return -1;
        }
        set_add(t, e);
        return 0;
    }
}

struct velo_tk_pattern *velo_tk_pattern_compile(const char *re, char *err,
                                                size_t errlen)
{
    struct velo_tk_pattern *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    const char *s = re;
    if (*s == '^') {
        s++;
    }
    while (*s != '\0') {
        if (*s == '$' && s[1] == '\0') {
            break;
        }
        if (p->n == PAT_MAX_TOKENS) {
            snprintf(err, errlen, "longer than %d elements", PAT_MAX_TOKENS);
            goto fail;
        }
        struct pat_token *t = &p->t[p->n];
        t->min = t->max = 1;
        size_t at = (size_t)(s - re);
        if (*s == '(' || *s == ')' || *s == '|') {
            snprintf(err, errlen,
                     "groups and alternation ('%c' at %zu) are "
                     "not supported; use an enum for choices",
                     *s, at + 1);
            goto fail;
        } else if (*s == '[') {
            s++;
            if (*s == '^') {
                snprintf(err, errlen,
                         "negated classes [^...] are not "
                         "supported");
                goto fail;
            }
            while (*s != '\0' && *s != ']') {
                int a = (unsigned char)*s;
                if (a == '\\' && s[1] != '\0') {
                    if (escape_class(t, s[1]) != 0) {
                        snprintf(err, errlen, "unknown escape \\%c", s[1]);
                        goto fail;
                    }
                    s += 2;
                    continue;
                }
                if (s[1] == '-' && s[2] != '\0' && s[2] != ']') {
                    if ((unsigned char)s[2] < a) {
                        snprintf(err, errlen, "range %c-%c is backwards", a,
                                 s[2]);
                        goto fail;
                    }
                    set_range(t, a, (unsigned char)s[2]);
                    s += 3;
                } else {
                    set_add(t, a);
                    s++;
                }
            }
            if (*s != ']') {
                snprintf(err, errlen, "'[' at %zu is not closed", at + 1);
                goto fail;
            }
            s++;
        } else if (*s == '\\') {
            if (s[1] == '\0' || escape_class(t, s[1]) != 0) {
                snprintf(err, errlen, "unknown escape at %zu", at + 1);
                goto fail;
            }
            s += 2;
        } else if (*s == '.') {
            set_range(t, 'a', 'z');
            set_range(t, 'A', 'Z');
            set_range(t, '0', '9');
            s++;
        } else if (*s == '{' || *s == '?' || *s == '+' || *s == '*') {
            snprintf(err, errlen,
                     "quantifier '%c' at %zu has nothing to "
                     "repeat",
                     *s, at + 1);
            goto fail;
        } else {
            set_add(t, (unsigned char)*s);
            s++;
        }
        if (t->nset == 0) {
            snprintf(err, errlen, "empty class at %zu", at + 1);
            goto fail;
        }
        /* quantifier */
        if (*s == '?') {
            t->min = 0;
            t->max = 1;
            s++;
        } else if (*s == '+') {
            t->min = 1;
            t->max = PAT_UNBOUNDED;
            s++;
        } else if (*s == '*') {
            t->min = 0;
            t->max = PAT_UNBOUNDED;
            s++;
        } else if (*s == '{') {
            char *end;
            long a = strtol(s + 1, &end, 10), b = a;
            if (end == s + 1) {
                snprintf(err, errlen, "'{' at %zu needs {n} or {n,m}",
                         (size_t)(s - re) + 1);
                goto fail;
            }
            if (*end == ',') {
                char *e2;
                b = strtol(end + 1, &e2, 10);
                if (e2 == end + 1) {
                    b = a + PAT_UNBOUNDED;
                }
                end = e2;
            }
            if (*end != '}' || a < 0 || b < a || b > 1000) {
                snprintf(err, errlen,
                         "bad repeat at %zu: use {n} or {n,m} "
                         "with n <= m <= 1000",
                         (size_t)(s - re) + 1);
                goto fail;
            }
            t->min = (uint16_t)a;
            t->max = (uint16_t)b;
            s = end + 1;
        }
        p->n++;
    }
    return p;
fail:
    free(p);
    return NULL;
}

size_t velo_tk_pattern_gen(const struct velo_tk_pattern *p,
                           struct velo_tk_rng *r, char *buf, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < p->n; i++) {
        const struct pat_token *t = &p->t[i];
        unsigned reps = t->min;
        if (t->max > t->min) {
            reps += (unsigned)(velo_tk_rng_next(r) % (t->max - t->min + 1u));
        }
        for (unsigned k = 0; k < reps && len + 1 < cap; k++) {
            buf[len++] = t->set[velo_tk_rng_next(r) % t->nset];
        }
    }
    buf[len] = '\0';
    return len;
}

void velo_tk_pattern_free(struct velo_tk_pattern *p)
{
    free(p);
}

/* ---- Derived expressions ------------------------------------------------ */

enum dop {
    D_NUM,
    D_FIELD,
    D_ADD,
    D_SUB,
    D_MUL,
    D_DIV,
    D_MOD,
    D_NEG,
    D_ABS,
    D_ROUND1,
    D_ROUND2,
    D_FLOOR,
    D_CEIL,
    D_MIN,
    D_MAX
};

struct dcode {
    int op;
    double num;
    size_t field;
};

#define DERIVED_MAX 256

struct velo_tk_derived {
    struct dcode c[DERIVED_MAX];
    size_t n;
};

struct dparse {
    const char *s;
    const struct velo_tk_schema *schema;
    size_t self;
    struct velo_tk_derived *d;
    char *err;
    size_t errlen;
    int failed;
};

static void demit(struct dparse *p, int op, double num, size_t field)
{
    if (p->d->n == DERIVED_MAX) {
        if (!p->failed) {
            snprintf(p->err, p->errlen, "too long");
        }
        p->failed = 1;
        return;
    }
    p->d->c[p->d->n++] = (struct dcode){op, num, field};
}

static void dskip(struct dparse *p)
{
    while (isspace((unsigned char)*p->s)) {
        p->s++;
    }
}

static void dfail(struct dparse *p, const char *msg)
{
    if (!p->failed) {
        snprintf(p->err, p->errlen, "%s", msg);
    }
    p->failed = 1;
}

static void dexpr(struct dparse *p);

static void dprimary(struct dparse *p)
{
    dskip(p);
    if (p->failed) {
        return;
    }
    if (*p->s == '(') {
        p->s++;
        dexpr(p);
        dskip(p);
        if (*p->s != ')') {
            dfail(p, "missing ')'");
            return;
        }
        p->s++;
    } else if (*p->s == '-') {
        p->s++;
        dprimary(p);
        demit(p, D_NEG, 0, 0);
    } else if (isdigit((unsigned char)*p->s) || *p->s == '.') {
        char *end;
        double v = strtod(p->s, &end);
        p->s = end;
        demit(p, D_NUM, v, 0);
    } else if (isalpha((unsigned char)*p->s) || *p->s == '_') {
        const char *st = p->s;
        while (isalnum((unsigned char)*p->s) || *p->s == '_') {
            p->s++;
        }
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)(p->s - st), st);
        dskip(p);
        if (*p->s == '(') {
            static const struct {
                const char *name;
                int op, args;
            } fns[] = {{"abs", D_ABS, 1},     {"round", D_ROUND1, 1},
                       {"floor", D_FLOOR, 1}, {"ceil", D_CEIL, 1},
                       {"min", D_MIN, 2},     {"max", D_MAX, 2}};
            int fi = -1;
            for (size_t i = 0; i < sizeof(fns) / sizeof(*fns); i++) {
                if (strcasecmp(name, fns[i].name) == 0) {
                    fi = (int)i;
                }
            }
            if (fi < 0) {
                char m[200];
                snprintf(m, sizeof(m),
                         "unknown function '%s' (abs, round, "
                         "floor, ceil, min, max)",
                         name);
                dfail(p, m);
                return;
            }
            p->s++;
            int nargs = 0;
            for (;;) {
                dexpr(p);
                nargs++;
                dskip(p);
                if (*p->s == ',') {
                    p->s++;
                    continue;
                }
                break;
            }
            if (*p->s != ')') {
                dfail(p, "missing ')' after the arguments");
                return;
            }
            p->s++;
            int op = fns[fi].op;
            if (op == D_ROUND1 && nargs == 2) {
                op = D_ROUND2;
            } else if (nargs != fns[fi].args) {
                char m[160];
                snprintf(m, sizeof(m), "%s takes %d argument(s)", name,
                         fns[fi].args);
                dfail(p, m);
                return;
            }
            demit(p, op, 0, 0);
            return;
        }
        int idx = velo_tk_schema_find(p->schema, name);
        if (idx < 0 || (size_t)idx >= p->self) {
            char m[256];
            snprintf(m, sizeof(m),
                     idx < 0 ? "unknown field '%s'"
                             : "field '%s' comes later; a derived field may "
                               "use only the fields listed before it",
                     name);
            dfail(p, m);
            return;
        }
        demit(p, D_FIELD, 0, (size_t)idx);
    } else {
        dfail(p, *p->s == '\0' ? "unexpected end" : "unexpected character");
    }
}

static void dterm(struct dparse *p)
{
    dprimary(p);
    for (;;) {
        dskip(p);
        char c = *p->s;
        if (p->failed || (c != '*' && c != '/' && c != '%')) {
            return;
        }
        p->s++;
        dprimary(p);
        demit(p, c == '*' ? D_MUL : c == '/' ? D_DIV : D_MOD, 0, 0);
    }
}

static void dexpr(struct dparse *p)
{
    dterm(p);
    for (;;) {
        dskip(p);
        char c = *p->s;
        if (p->failed || (c != '+' && c != '-')) {
            return;
        }
        p->s++;
        dterm(p);
        demit(p, c == '+' ? D_ADD : D_SUB, 0, 0);
    }
}

struct velo_tk_derived *velo_tk_derived_compile(const char *text,
                                                const struct velo_tk_schema *s,
                                                size_t self, char *err,
                                                size_t errlen)
{
    struct velo_tk_derived *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct dparse p = {text, s, self, d, err, errlen, 0};
    dexpr(&p);
    dskip(&p);
    if (!p.failed && *p.s != '\0') {
        dfail(&p, "unexpected text after the expression (supported: + - * "
                  "/ %, parentheses, fields, abs/round/floor/ceil/min/max)");
    }
    if (p.failed) {
        free(d);
        return NULL;
    }
    return d;
}

int velo_tk_derived_eval(const struct velo_tk_derived *d, const double *vals,
                         const uint8_t *nulls, double *out)
{
    double st[DERIVED_MAX];
    size_t sp = 0;
    for (size_t i = 0; i < d->n; i++) {
        const struct dcode *c = &d->c[i];
        double a, b;
        switch (c->op) {
        case D_NUM:
            st[sp++] = c->num;
            break;
        case D_FIELD:
            if (nulls[c->field]) {
                return -1;
            }
            st[sp++] = vals[c->field];
            break;
        case D_NEG:
            st[sp - 1] = -st[sp - 1];
            break;
        case D_ABS:
            st[sp - 1] = fabs(st[sp - 1]);
            break;
        case D_ROUND1:
            st[sp - 1] = round(st[sp - 1]);
            break;
        case D_FLOOR:
            st[sp - 1] = floor(st[sp - 1]);
            break;
        case D_CEIL:
            st[sp - 1] = ceil(st[sp - 1]);
            break;
        default:
            b = st[--sp];
            a = st[sp - 1];
            switch (c->op) {
            case D_ADD:
                a += b;
                break;
            case D_SUB:
                a -= b;
                break;
            case D_MUL:
                a *= b;
                break;
            case D_DIV:
                if (b == 0) {
                    return -1;
                }
                a /= b;
                break;
            case D_MOD:
                if (b == 0) {
                    return -1;
                }
                a = fmod(a, b);
                break;
            case D_ROUND2: {
                double m = pow(10, round(b));
                a = round(a * m) / m;
                break;
            }
            case D_MIN:
                a = a < b ? a : b;
                break;
            case D_MAX:
                a = a > b ? a : b;
                break;
            }
            st[sp - 1] = a;
        }
    }
    *out = st[0];
    return isfinite(*out) ? 0 : -1;
}

void velo_tk_derived_free(struct velo_tk_derived *d)
{
    free(d);
}

/* ---- Pools of referenced values ----------------------------------------- */

struct pool {
    char *key; /* source.field */
    char **vals;
    size_t n;
};

struct velo_tk_pools {
    struct pool *p;
    size_t n;
};

struct velo_tk_pools *velo_tk_pools_create(void)
{
    return calloc(1, sizeof(struct velo_tk_pools));
}

void velo_tk_pools_free(struct velo_tk_pools *ps)
{
    if (ps == NULL) {
        return;
    }
    for (size_t i = 0; i < ps->n; i++) {
        for (size_t k = 0; k < ps->p[i].n; k++) {
            free(ps->p[i].vals[k]);
        }
        free(ps->p[i].vals);
        free(ps->p[i].key);
    }
    free(ps->p);
    free(ps);
}

static struct pool *pool_find(const struct velo_tk_pools *ps,
                              const char *source, const char *field)
{
    char key[300];
    snprintf(key, sizeof(key), "%s.%s", source, field);
    for (size_t i = 0; ps != NULL && i < ps->n; i++) {
        if (strcasecmp(ps->p[i].key, key) == 0) {
            return &ps->p[i];
        }
    }
    return NULL;
}

const char *const *velo_tk_pools_get(const struct velo_tk_pools *ps,
                                     const char *source, const char *field,
                                     size_t *n)
{
    struct pool *p = pool_find(ps, source, field);
    if (p == NULL) {
        return NULL;
    }
    *n = p->n;
    return (const char *const *)p->vals;
}

int velo_tk_pools_put(struct velo_tk_pools *ps, const char *source,
                      const char *field, const char *const *vals, size_t n)
{
    struct pool *np = realloc(ps->p, (ps->n + 1) * sizeof(*np));
    if (np == NULL) {
        return -1;
    }
    ps->p = np;
    struct pool *p = &ps->p[ps->n];
    memset(p, 0, sizeof(*p));
    size_t kl = strlen(source) + strlen(field) + 2;
    p->key = malloc(kl);
    p->vals = calloc(n + 1, sizeof(*p->vals));
    if (p->key == NULL || p->vals == NULL) {
        free(p->key);
        free(p->vals);
        return -1;
    }
    snprintf(p->key, kl, "%s.%s", source, field);
    ps->n++;
    for (size_t i = 0; i < n; i++) {
        p->vals[i] = strdup(vals[i] != NULL ? vals[i] : "");
        if (p->vals[i] == NULL) {
            return -1;
        }
        p->n++;
    }
    return 0;
}

/* ---- The generator ------------------------------------------------------ */

enum vkind { V_NULL, V_INT, V_DBL, V_STR, V_BOOL, V_DEC, V_TS };

struct fstate {
    struct velo_tk_rng rng;
    double walk;      /* random_walk position */
    int64_t seq;      /* sequence next */
    double *zipf_cdf; /* ranks' cumulative probabilities */
    size_t zipf_n;
    const char *const *pool; /* referenced values */
    size_t npool;
    int pool_numeric; /* every referenced value is an integer */
    int64_t pool_max;
    int64_t start_us, end_us; /* timestamps, resolved */
    /* the current row */
    int kind;
    int64_t i;
    double d;
    char *s;
    size_t slen, scap;
    /* kept values (text) for pools */
    char **kept;
    size_t nkept, capkept;
};

struct velo_tk_gen {
    const struct velo_tk_schema *schema;
    struct fstate *f;
    int64_t row;  /* rows generated so far */
    double *vals; /* numeric view for derived fields */
    uint8_t *nulls;
    struct velo_buf line;
};

static void fail_nomem(char *err, size_t errlen)
{
    snprintf(err, errlen, "out of memory");
}

static int setup_zipf(struct fstate *st, size_t n, double s)
{
    st->zipf_cdf = malloc(n * sizeof(double));
    if (st->zipf_cdf == NULL) {
        return -1;
    }
    double total = 0;
    for (size_t k = 0; k < n; k++) {
        total += 1.0 / pow((double)(k + 1), s);
        st->zipf_cdf[k] = total;
    }
    for (size_t k = 0; k < n; k++) {
        st->zipf_cdf[k] /= total;
    }
    st->zipf_cdf[n - 1] = 1.0;
    st->zipf_n = n;
    return 0;
}

static size_t pick_cdf(const double *cdf, size_t n, double u)
{
    size_t lo = 0, hi = n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cdf[mid] > u) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

static int64_t clock_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct velo_tk_gen *velo_tk_gen_create(const struct velo_tk_schema *s,
                                       uint64_t seed, int64_t now_us,
                                       const struct velo_tk_pools *pools,
                                       char *err, size_t errlen)
{
    struct velo_tk_gen *g = calloc(1, sizeof(*g));
    if (g == NULL) {
        fail_nomem(err, errlen);
        return NULL;
    }
    g->schema = s;
    g->f = calloc(s->n + 1, sizeof(*g->f));
    g->vals = calloc(s->n + 1, sizeof(*g->vals));
    g->nulls = calloc(s->n + 1, sizeof(*g->nulls));
    if (g->f == NULL || g->vals == NULL || g->nulls == NULL) {
        fail_nomem(err, errlen);
        velo_tk_gen_destroy(g);
        return NULL;
    }
    if (now_us == 0) {
        now_us = clock_now();
    }
    uint64_t base = velo_tk_hash(s->name, 0xcbf29ce484222325ULL);
    for (size_t i = 0; i < s->n; i++) {
        const struct velo_tk_field *f = &s->fields[i];
        struct fstate *st = &g->f[i];
        velo_tk_rng_seed(&st->rng,
                         seed ^ velo_tk_hash(f->name, base) ^
                             (0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1)));
        st->walk = f->has_min && f->has_max ? (f->min + f->max) / 2 : f->mean;
        st->seq = f->has_min ? (int64_t)f->min : 1;
        if (f->type == VELO_TK_TIMESTAMP) {
            st->start_us =
                f->ts_relative ? now_us + f->ts_start_rel : f->ts_start_rel;
            st->end_us =
                f->ts_relative ? now_us + f->ts_end_rel : f->ts_end_rel;
            if (st->end_us < st->start_us) {
                snprintf(err, errlen, "field '%s': end is before start",
                         f->name);
                velo_tk_gen_destroy(g);
                return NULL;
            }
        }
        if (f->dist == VELO_TK_ZIPF) {
            size_t n = f->nenum > 0 ? f->nenum : (size_t)(f->max - f->min) + 1;
            if (setup_zipf(st, n, f->zipf_s) != 0) {
                fail_nomem(err, errlen);
                velo_tk_gen_destroy(g);
                return NULL;
            }
        }
        if (f->ref_source != NULL) {
            st->pool = velo_tk_pools_get(pools, f->ref_source, f->ref_field,
                                         &st->npool);
            if (st->pool == NULL) {
                snprintf(err, errlen,
                         "field '%s' references %s.%s, which was not "
                         "generated: give a schema for source '%s' (%s."
                         "schema.yaml beside this one, or in the spec's "
                         "inputs)",
                         f->name, f->ref_source, f->ref_field, f->ref_source,
                         f->ref_source);
                velo_tk_gen_destroy(g);
                return NULL;
            }
            st->pool_numeric = st->npool > 0;
            for (size_t k = 0; k < st->npool; k++) {
                char *end;
                long long v = strtoll(st->pool[k], &end, 10);
                if (*end != '\0' || end == st->pool[k]) {
                    st->pool_numeric = 0;
                    break;
                }
                if (k == 0 || v > st->pool_max) {
                    st->pool_max = v;
                }
            }
        }
    }
    return g;
}

void velo_tk_gen_destroy(struct velo_tk_gen *g)
{
    if (g == NULL) {
        return;
    }
    for (size_t i = 0; g->f != NULL && i < g->schema->n; i++) {
        free(g->f[i].zipf_cdf);
        free(g->f[i].s);
        for (size_t k = 0; k < g->f[i].nkept; k++) {
            free(g->f[i].kept[k]);
        }
        free(g->f[i].kept);
    }
    free(g->f);
    free(g->vals);
    free(g->nulls);
    velo_buf_free(&g->line);
    free(g);
}

static int str_reserve(struct fstate *st, size_t n)
{
    if (n + 1 > st->scap) {
        size_t cap = st->scap ? st->scap : 64;
        while (cap < n + 1) {
            cap *= 2;
        }
        char *ns = realloc(st->s, cap);
        if (ns == NULL) {
            return -1;
        }
        st->s = ns;
        st->scap = cap;
    }
    return 0;
}

static void set_str(struct fstate *st, const char *s, size_t n)
{
    if (str_reserve(st, n) != 0) {
        st->kind = V_NULL;
        return;
    }
    memcpy(st->s, s, n);
    st->s[n] = '\0';
    st->slen = n;
    st->kind = V_STR;
}

/* A number from the field's distribution, inside [min, max]. */
static double draw_number(const struct velo_tk_field *f, struct fstate *st)
{
    double lo = f->has_min ? f->min : 0, hi = f->has_max ? f->max : 1000;
    double v;
    switch (f->dist) {
    case VELO_TK_NORMAL:
        v = f->mean + f->stddev * velo_tk_rng_normal(&st->rng);
        break;
    case VELO_TK_LOG_NORMAL:
        v = exp(f->mean + f->stddev * velo_tk_rng_normal(&st->rng));
        break;
    case VELO_TK_ZIPF:
        return lo + (double)pick_cdf(st->zipf_cdf, st->zipf_n,
                                     velo_tk_rng_unit(&st->rng));
    case VELO_TK_RANDOM_WALK:
        v = st->walk + f->step * velo_tk_rng_normal(&st->rng);
        /* reflect at the bounds so the walk stays inside */
        if (v > hi) {
            v = hi - (v - hi);
        }
        if (v < lo) {
            v = lo + (lo - v);
        }
        if (v > hi || v < lo) {
            v = (lo + hi) / 2;
        }
        st->walk = v;
        return v;
    default:
        if (f->type == VELO_TK_INTEGER) {
            uint64_t span = (uint64_t)(hi - lo) + 1;
            return lo + (double)(velo_tk_rng_next(&st->rng) % span);
        }
        return lo + (hi - lo) * velo_tk_rng_unit(&st->rng);
    }
    /* Only bounds that were given clamp; a plain normal stays normal. */
    if (f->has_min && v < f->min) {
        v = f->min;
    }
    if (f->has_max && v > f->max) {
        v = f->max;
    }
    return v;
}

static void set_number(const struct velo_tk_field *f, struct fstate *st,
                       double v)
{
    switch (f->type) {
    case VELO_TK_INTEGER:
        st->kind = V_INT;
        st->i = (int64_t)llround(v);
        break;
    case VELO_TK_DECIMAL:
        st->kind = V_DEC;
        st->i = (int64_t)llround(v * pow(10, f->scale));
        break;
    case VELO_TK_TIMESTAMP:
        st->kind = V_TS;
        st->i = (int64_t)v;
        break;
    case VELO_TK_BOOLEAN:
        st->kind = V_BOOL;
        st->i = v != 0;
        break;
    case VELO_TK_STRING: {
        char buf[64];
        int n = snprintf(buf, sizeof(buf), "%.15g", v);
        set_str(st, buf, (size_t)n);
        break;
    }
    default:
        st->kind = V_DBL;
        st->d = v;
    }
}

static void gen_reference(const struct velo_tk_field *f, struct fstate *st,
                          int64_t row)
{
    int match = st->npool > 0 && velo_tk_rng_unit(&st->rng) < f->match_rate;
    if (match) {
        const char *v = st->pool[velo_tk_rng_next(&st->rng) % st->npool];
        if (f->type == VELO_TK_INTEGER || f->type == VELO_TK_DECIMAL ||
            f->type == VELO_TK_FLOAT) {
            set_number(f, st, strtod(v, NULL));
        } else {
            set_str(st, v, strlen(v));
        }
        return;
    }
    /* A key the other side does not have. */
    if (f->type == VELO_TK_INTEGER) {
        st->kind = V_INT;
        st->i = (st->pool_numeric ? st->pool_max : 0) + 1000000 + row;
        return;
    }
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "unmatched-%" PRId64, row);
    set_str(st, buf, (size_t)n);
}

static void gen_timestamp(const struct velo_tk_field *f, struct fstate *st,
                          int64_t row)
{
    st->kind = V_TS;
    if (!f->event_time) {
        uint64_t span = (uint64_t)(st->end_us - st->start_us) + 1;
        st->i = st->start_us + (int64_t)(velo_tk_rng_next(&st->rng) % span);
        return;
    }
    double gap = 1e6 / (f->rate > 0 ? f->rate : 1);
    double t = (double)st->start_us + (double)row * gap;
    if (f->jitter_us > 0) {
        t += ((velo_tk_rng_unit(&st->rng) * 2) - 1) * (double)f->jitter_us;
    }
    if (f->out_of_order > 0 && velo_tk_rng_unit(&st->rng) < f->out_of_order) {
        double lo = 2 * gap + 2 * (double)f->jitter_us + 1;
        double hi = (double)f->max_delay_us;
        if (hi < lo) {
            hi = lo;
        }
        t -= lo + (hi - lo) * velo_tk_rng_unit(&st->rng);
    }
    st->i = (int64_t)t;
}

static void gen_field(struct velo_tk_gen *g, size_t i)
{
    const struct velo_tk_field *f = &g->schema->fields[i];
    struct fstate *st = &g->f[i];
    /* The null draw is made for every row so the value stream does not
     * shift when null_rate changes. */
    double nu = velo_tk_rng_unit(&st->rng);
    if (f->derived != NULL) {
        double v;
        if (velo_tk_derived_eval(f->derived, g->vals, g->nulls, &v) != 0) {
            st->kind = V_NULL;
        } else {
            set_number(f, st, v);
        }
    } else if (f->ref_source != NULL) {
        gen_reference(f, st, g->row);
    } else if (f->nenum > 0) {
        size_t k;
        if (f->dist == VELO_TK_ZIPF) {
            k = pick_cdf(st->zipf_cdf, st->zipf_n, velo_tk_rng_unit(&st->rng));
        } else {
            k = pick_cdf(f->cum_weights, f->nenum, velo_tk_rng_unit(&st->rng));
        }
        const char *e = f->enums[k];
        if (f->type == VELO_TK_STRING) {
            set_str(st, e, strlen(e));
        } else if (f->type == VELO_TK_BOOLEAN) {
            st->kind = V_BOOL;
            st->i = strcasecmp(e, "true") == 0 || strcmp(e, "1") == 0;
        } else {
            set_number(f, st, strtod(e, NULL));
        }
    } else if (f->pattern != NULL) {
        char buf[2048];
        size_t n = velo_tk_pattern_gen(f->pattern, &st->rng, buf, sizeof(buf));
        set_str(st, buf, n);
    } else if (f->sequence) {
        st->kind = V_INT;
        st->i = st->seq++;
    } else {
        switch (f->type) {
        case VELO_TK_STRING: {
            static const char alnum[] = "abcdefghijklmnopqrstuvwxyz"
                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789";
            unsigned len = (unsigned)f->min_length;
            if (f->max_length > f->min_length) {
                len +=
                    (unsigned)(velo_tk_rng_next(&st->rng) %
                               (unsigned)(f->max_length - f->min_length + 1));
            }
            if (str_reserve(st, len) != 0) {
                st->kind = V_NULL;
                break;
            }
            for (unsigned k = 0; k < len; k++) {
                st->s[k] = alnum[velo_tk_rng_next(&st->rng) % 62];
            }
            st->s[len] = '\0';
            st->slen = len;
            st->kind = V_STR;
            break;
        }
        case VELO_TK_BOOLEAN:
            st->kind = V_BOOL;
            st->i = (int64_t)(velo_tk_rng_next(&st->rng) >> 63);
            break;
        case VELO_TK_TIMESTAMP:
            gen_timestamp(f, st, g->row);
            break;
        default:
            set_number(f, st, draw_number(f, st));
            break;
        }
    }
    if (f->null_rate > 0 && nu < f->null_rate) {
        st->kind = V_NULL;
    }
    g->nulls[i] = st->kind == V_NULL;
    switch (st->kind) {
    case V_INT:
    case V_TS:
    case V_BOOL:
        g->vals[i] = (double)st->i;
        break;
    case V_DEC:
        g->vals[i] = (double)st->i / pow(10, f->scale);
        break;
    case V_DBL:
        g->vals[i] = st->d;
        break;
    case V_STR:
        g->vals[i] = strtod(st->s, NULL);
        break;
    default:
        g->vals[i] = 0;
    }
}

/* The value as text (JSON when json, else CSV cell) appended to b. */
static void put_value(struct velo_buf *b, const struct velo_tk_field *f,
                      const struct fstate *st, int json)
{
    char tmp[96];
    int n = 0;
    switch (st->kind) {
    case V_NULL:
        if (json) {
            velo_buf_append(b, "null", 4);
        }
        return;
    case V_INT:
        n = snprintf(tmp, sizeof(tmp), "%" PRId64, st->i);
        break;
    case V_BOOL:
        n = snprintf(tmp, sizeof(tmp), "%s", st->i ? "true" : "false");
        break;
    case V_DBL:
        n = snprintf(tmp, sizeof(tmp), "%.6f", st->d);
        /* trim trailing zeros, keep one decimal so it stays a float */
        while (n > 2 && tmp[n - 1] == '0' && tmp[n - 2] != '.') {
            tmp[--n] = '\0';
        }
        break;
    case V_DEC: {
        int64_t u = st->i;
        const char *sign = u < 0 ? "-" : "";
        uint64_t a = u < 0 ? (uint64_t)(-(u + 1)) + 1 : (uint64_t)u;
        uint64_t p = 1;
        for (int k = 0; k < f->scale; k++) {
            p *= 10;
        }
        if (f->scale > 0) {
            n = snprintf(tmp, sizeof(tmp), "%s%" PRIu64 ".%0*" PRIu64, sign,
                         a / p, f->scale, a % p);
        } else {
            n = snprintf(tmp, sizeof(tmp), "%s%" PRIu64, sign, a);
        }
        break;
    }
    case V_TS: {
        char ts[64];
        velo_format_timestamp(st->i, ts, sizeof(ts));
        n = snprintf(tmp, sizeof(tmp), json ? "\"%s\"" : "%s", ts);
        break;
    }
    case V_STR: {
        int needq = 0;
        if (!json) {
            for (size_t k = 0; k < st->slen; k++) {
                char c = st->s[k];
                if (c == ',' || c == '"' || c == '\n' || c == '\r') {
                    needq = 1;
                }
            }
        }
        if (json || needq) {
            velo_buf_append(b, "\"", 1);
        }
        for (size_t k = 0; k < st->slen; k++) {
            char c = st->s[k];
            if (json && (c == '"' || c == '\\')) {
                velo_buf_append(b, "\\", 1);
                velo_buf_append(b, &c, 1);
            } else if (json && (unsigned char)c < 0x20) {
                char e[8];
                snprintf(e, sizeof(e), "\\u%04x", (unsigned char)c);
                velo_buf_append(b, e, 6);
            } else if (!json && c == '"') {
                velo_buf_append(b, "\"\"", 2);
            } else {
                velo_buf_append(b, &c, 1);
            }
        }
        if (json || needq) {
            velo_buf_append(b, "\"", 1);
        }
        return;
    }
    }
    velo_buf_append(b, tmp, (size_t)n);
}

static int keep_value(struct fstate *st, const struct velo_tk_field *f)
{
    if (st->nkept == st->capkept) {
        size_t cap = st->capkept ? st->capkept * 2 : 256;
        char **nk = realloc(st->kept, cap * sizeof(*nk));
        if (nk == NULL) {
            return -1;
        }
        st->kept = nk;
        st->capkept = cap;
    }
    if (st->kind == V_NULL) {
        return 0; /* a NULL key never matches */
    }
    struct velo_buf b = {0};
    const struct fstate tmp = *st;
    if (tmp.kind == V_STR) {
        velo_buf_append(&b, tmp.s, tmp.slen);
    } else {
        put_value(&b, f, &tmp, 0);
    }
    velo_buf_append(&b, "", 1);
    if (b.data == NULL) {
        return -1;
    }
    st->kept[st->nkept++] = b.data;
    return 0;
}

static void build_row(struct velo_tk_gen *g, int json)
{
    const struct velo_tk_schema *s = g->schema;
    for (size_t i = 0; i < s->n; i++) {
        gen_field(g, i);
    }
    g->line.len = 0;
    if (json) {
        velo_buf_append(&g->line, "{", 1);
    }
    for (size_t i = 0; i < s->n; i++) {
        if (i > 0) {
            velo_buf_append(&g->line, ",", 1);
        }
        if (json) {
            velo_buf_append(&g->line, "\"", 1);
            velo_buf_append(&g->line, s->fields[i].name,
                            strlen(s->fields[i].name));
            velo_buf_append(&g->line, "\":", 2);
        }
        put_value(&g->line, &s->fields[i], &g->f[i], json);
    }
    if (json) {
        velo_buf_append(&g->line, "}", 1);
    }
    g->row++;
}

const char *velo_tk_gen_row_json(struct velo_tk_gen *g, size_t *len)
{
    build_row(g, 1);
    *len = g->line.len;
    return g->line.data;
}

int velo_tk_gen_write(struct velo_tk_gen *g, int64_t records, int format,
                      FILE *out, struct velo_tk_pools *keep)
{
    const struct velo_tk_schema *s = g->schema;
    int json = format == VELO_TK_JSONL;
    if (!json) {
        for (size_t i = 0; i < s->n; i++) {
            fprintf(out, "%s%s", i ? "," : "", s->fields[i].name);
        }
        fputc('\n', out);
    }
    for (int64_t r = 0; r < records; r++) {
        build_row(g, json);
        if (g->line.data != NULL) {
            fwrite(g->line.data, 1, g->line.len, out);
        }
        fputc('\n', out);
        if (keep != NULL) {
            for (size_t i = 0; i < s->n; i++) {
                if (keep_value(&g->f[i], &s->fields[i]) != 0) {
                    errno = ENOMEM;
                    return -1;
                }
            }
        }
    }
    if (keep != NULL) {
        for (size_t i = 0; i < s->n; i++) {
            struct fstate *st = &g->f[i];
            if (velo_tk_pools_put(keep, s->name, s->fields[i].name,
                                  (const char *const *)st->kept,
                                  st->nkept) != 0) {
                errno = ENOMEM;
                return -1;
            }
            for (size_t k = 0; k < st->nkept; k++) {
                free(st->kept[k]);
            }
            st->nkept = 0;
        }
    }
    return ferror(out) ? -1 : 0;
}
