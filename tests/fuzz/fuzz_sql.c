/*
 * Fuzz the SQL front end: any bytes must parse to a program (possibly
 * empty) with diagnostics, never a crash, a leak or a stack overflow.
 * Programs without syntax errors are also bound and planned against fixed
 * source schemas, and their diagnostics and plans formatted, so the binder
 * and explain see the same hostile input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <velo/log.h>

#include "connectors/registry.h"
#include "exec/expr.h"
#include "exec/operator.h"
#include "sql/sql.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct velo_funcs *funcs;
static struct velo_connectors *conns;
static struct velo_exec_env exec_env;

/* Every source has the same columns, bounded unless named "stream". */
static int fixed_schema(void *arg, const struct velo_plan_source *src,
                        struct velo_schema **out, int *bounded, char *err,
                        size_t errlen)
{
    (void)arg;
    (void)err;
    (void)errlen;
    static const struct {
        const char *name;
        int type;
    } cols[] = {{"ts", VELO_TYPE_TIMESTAMP}, {"symbol", VELO_TYPE_STRING},
                {"qty", VELO_TYPE_BIGINT},   {"amount", VELO_TYPE_DOUBLE},
                {"flag", VELO_TYPE_BOOLEAN}, {"meta", VELO_TYPE_JSON},
                {"d", VELO_TYPE_DATE}};
    size_t n = sizeof(cols) / sizeof(*cols);
    struct velo_schema *s = velo_schema_create(n + 1);
    if (s == NULL) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        velo_schema_set(s, i, cols[i].name, velo_type_of(cols[i].type), 1, 0);
    }
    velo_schema_set(s, n, "price", velo_type_decimal(10, 2), 1, 0);
    *out = s;
    *bounded = strstr(src->name, "stream") == NULL;
    return VELO_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (funcs == NULL) {
        funcs = velo_funcs_create();
        conns = velo_connectors_create(NULL);
        exec_env.funcs = funcs;
        exec_env.batch_cap = 64;
        if (funcs == NULL || conns == NULL) {
            abort();
        }
    }
    struct velo_sql_diags d = {0};
    struct velo_sql_program *p =
        velo_sql_parse((const char *)data, size, &d);
    if (p == NULL) {
        velo_sql_diags_free(&d);
        return 0; /* out of memory */
    }
    const struct velo_sql_annotation *ann;
    size_t nann = velo_sql_annotations(p, &ann);
    for (size_t i = 0; i < nann; i++) {
        if (ann[i].statement >= velo_sql_program_statements(p)) {
            __builtin_trap();
        }
    }
    if (d.errors == 0) {
        struct velo_plan_env env = {
            .funcs = funcs,
            .connectors = conns,
            .exec = &exec_env,
            .source_schema = fixed_schema,
            .stdout_format = 2,
        };
        struct velo_plan *plan = velo_sql_plan(p, &env, &d);
        /* A plan exactly when there is no error. */
        if ((plan == NULL) != (d.errors > 0)) {
            __builtin_trap();
        }
        if (plan != NULL) {
            free(velo_plan_explain(plan, 0));
            free(velo_plan_explain(plan, 1));
            velo_plan_destroy(plan);
        }
    }
    /* Every error has a code and a message. */
    for (size_t i = 0; i < d.n; i++) {
        if (d.d[i].code[0] != 'V' || d.d[i].message == NULL) {
            __builtin_trap();
        }
    }
    free(velo_sql_diags_format(&d, "fuzz.sql"));
    free(velo_sql_diags_json(&d, "fuzz.sql"));
    velo_sql_diags_free(&d);
    velo_sql_program_free(p);
    return 0;
}
