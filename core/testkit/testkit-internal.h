/*
 * Private to core/testkit: the random streams, the pattern subset and the
 * derived-expression subset the schema parser compiles.
 */
#ifndef VELO_TESTKIT_INTERNAL_H
#define VELO_TESTKIT_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>

#include <velo/log.h>

#include "testkit/testkit.h"
#include "util/textbuf.h"

/* xoshiro256** seeded through splitmix64: fast, good statistically, and
 * the same sequence on every platform (rand() is neither). */
struct velo_tk_rng {
    uint64_t s[4];
};
void velo_tk_rng_seed(struct velo_tk_rng *r, uint64_t seed);
uint64_t velo_tk_rng_next(struct velo_tk_rng *r);
double velo_tk_rng_unit(struct velo_tk_rng *r);   /* [0, 1) */
double velo_tk_rng_normal(struct velo_tk_rng *r); /* mean 0, stddev 1 */
uint64_t velo_tk_hash(const char *s, uint64_t h); /* FNV-1a */

/* Patterns: literals, classes [A-Z0-9_], ., \d \w \s and escaped
 * punctuation, quantifiers {n} {n,m} ? + * (+ and * are bounded at 8). */
struct velo_tk_pattern *velo_tk_pattern_compile(const char *re, char *err,
                                                size_t errlen);
/** Append one match to buf (cap bytes, NUL-terminated). @return length. */
size_t velo_tk_pattern_gen(const struct velo_tk_pattern *p,
                           struct velo_tk_rng *r, char *buf, size_t cap);
void velo_tk_pattern_free(struct velo_tk_pattern *p);

/* Derived fields: numbers, earlier fields by name, + - * / %, unary
 * minus, parentheses, and the functions abs, round(x[, digits]), floor,
 * ceil, min(a, b), max(a, b). Evaluated in double precision; a NULL
 * operand makes the result NULL. */
struct velo_tk_derived *velo_tk_derived_compile(const char *text,
                                                const struct velo_tk_schema *s,
                                                size_t self, char *err,
                                                size_t errlen);
/** vals[i]/nulls[i] are the row's fields so far. @return 0, or -1 for
 *  NULL (a NULL operand, division by zero). */
int velo_tk_derived_eval(const struct velo_tk_derived *d, const double *vals,
                         const uint8_t *nulls, double *out);
void velo_tk_derived_free(struct velo_tk_derived *d);

void velo_tk_field_defaults(struct velo_tk_field *f);

/** dir/file, or file when it is absolute. malloc'd. */
char *velo_tk_path_join(const char *dir, const char *file);

/* Shared by the checks and the analysis. */
/** A JSON cell as text: strings unquoted, NULL as "null". malloc'd. */
char *velo_tk_cell_text(json_t *v);
/** Sorted texts of rows[*][field] without NULLs and retractions. */
char **velo_tk_column_keys(json_t *rows, const char *field, size_t *n);
int velo_tk_key_set_has(char **sorted, size_t n, const char *k);
void velo_tk_keys_free(char **k, size_t n);
/** Sum of the series of `name` in a Prometheus exposition whose labels
 *  include `labels` (a map, or NULL). @return the series matched. */
size_t velo_tk_metric_value(const char *text, const char *name,
                            const struct velo_tk_yaml *labels, double *sum);

#endif /* VELO_TESTKIT_INTERNAL_H */
