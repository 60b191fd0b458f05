/*
 * Lookup tables (core/connectors/lookup.c): the adapter between a
 * connector's lookup_* entries and the join's struct velo_lookup_provider.
 *
 * Always: an in-process connector answers known keys with JSON rows; the
 * adapter decodes them into the right-side schema row by row (escapes,
 * NULLs, a missing key -> an all-NULL row with found 0), splits more keys
 * than one connector call takes into chunks and keeps the earlier chunks'
 * strings valid, names a row that does not fit the schema, refuses a
 * connector without lookups, and passes the connector's failure on.
 *
 * Against real servers, when the plugin test scripts set them:
 *   VELO_LOOKUP_PG_URL     a PostgreSQL database holding table lk_customers
 *                          (tests/plugin/postgres/test-lookup.sh);
 *   VELO_LOOKUP_REDIS_URL  a Redis server holding hashes cust:<id> and JSON
 *                          strings custj:<id> (tests/plugin/redis/
 *                          test-lookup.sh);
 * the real postgres and redis plugins are loaded from
 * VELO_PLUGIN_BUILD_DIR and asked through the same adapter.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/Basic.h>
#include <event2/event.h>

#include "config/config.h"
#include "connectors/lookup.h"
#include "connectors/registry.h"
#include "exec/batch.h"
#include "plugin/host.h"
#include "plugin/license.h"
#include "plugin/loader.h"
#include "testutil.h"

/* The loop real connectors register their sockets with (a job's ctx->base);
 * one for the whole run, freed at exit. */
static struct event_base *test_base;

static void loop_base_free(void)
{
    event_base_free(test_base);
}

static struct event_base *loop_base(void)
{
    if (test_base == NULL) {
        test_base = event_base_new();
        atexit(loop_base_free);
    }
    return test_base;
}

/* ---- an in-process connector with lookups ------------------------------ */

struct fake_conf {
    char *table;
};

static const struct velo_config_map fake_map[] = {
    {VELO_CONFIG_STR, "table", "", offsetof(struct fake_conf, table), "table"},
    {0}};

struct fake {
    char key[32];
    char buf[64]; /* per-call scratch the answers point into */
    char rows[1100][48];
    size_t calls;
    size_t max_n;
};

static int fake_fail_get;

static int fake_create(struct velo_instance *ins, const void *config,
                       const struct velo_connector_ctx *ctx, const char *key)
{
    const struct fake_conf *c = config;
    (void)ctx;
    if (c->table == NULL || strcmp(c->table, "customers") != 0) {
        return VELO_ERR;
    }
    struct fake *f = calloc(1, sizeof(*f));
    snprintf(f->key, sizeof(f->key), "%s", key);
    ins->context = f;
    return VELO_OK;
}

/* Keys "1".."1099" have rows; "1" and "2" are special; "bad" gives a row
 * whose id is not a number; anything else has none. Answers live in
 * per-call memory that the next call overwrites, as a real connector's
 * may. */
static int fake_get(struct velo_instance *ins, const struct velo_str *keys,
                    size_t n, struct velo_source_batch *out)
{
    struct fake *f = ins->context;
    if (fake_fail_get) {
        return VELO_ERR;
    }
    f->calls++;
    f->max_n = n > f->max_n ? n : f->max_n;
    for (size_t i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof(k), "%.*s", (int)keys[i].len, keys[i].ptr);
        long id = strtol(k, NULL, 10);
        char *row = f->rows[i];
        if (strcmp(k, "bad") == 0) {
            snprintf(row, sizeof(f->rows[i]), "{\"id\":\"x\",\"name\":\"b\"}");
        } else if (strcmp(k, "1") == 0) {
            snprintf(row, sizeof(f->rows[i]),
                     "{\"id\":1,\"name\":\"Ann \\\"A\\\"\",\"vip\":true}");
        } else if (strcmp(k, "2") == 0) {
            snprintf(row, sizeof(f->rows[i]),
                     "{\"id\":2,\"name\":null,\"credit\":2.5}");
        } else if (id >= 3 && id < 1100) {
            /* the call's number in the name: stale views would show it */
            snprintf(row, sizeof(f->rows[i]),
                     "{\"id\":%ld,\"name\":\"n%ld-c%zu\"}", id, id, f->calls);
        } else {
            out->payload[i].ptr = NULL;
            out->payload[i].len = 0;
            continue;
        }
        out->payload[i].ptr = row;
        out->payload[i].len = strlen(row);
    }
    out->count = n;
    return VELO_OK;
}

static void fake_destroy(struct velo_instance *ins)
{
    free(ins->context);
    ins->context = NULL;
}

static const struct velo_connector_vtable fake_vt = {
    .size = sizeof(struct velo_connector_vtable),
    .scheme = "fake",
    .lookup_create = fake_create,
    .lookup_get = fake_get,
    .lookup_destroy = fake_destroy,
};
static const struct velo_connector_ref fake_ref = {"fake", &fake_vt, fake_map,
                                                   sizeof(struct fake_conf), 0};

static const struct velo_connector_vtable plain_vt = {
    .size = sizeof(struct velo_connector_vtable), .scheme = "plain"};
static const struct velo_connector_ref plain_ref = {
    "plain", &plain_vt, fake_map, sizeof(struct fake_conf), 0};

/* id BIGINT, name STRING, vip BOOLEAN, credit DOUBLE, hidden _timestamp */
static struct velo_schema *customers_schema(void)
{
    struct velo_schema *s = velo_schema_create(5);
    velo_schema_set(s, 0, "id", velo_type_of(VELO_TYPE_BIGINT), 1, 0);
    velo_schema_set(s, 1, "name", velo_type_of(VELO_TYPE_STRING), 1, 0);
    velo_schema_set(s, 2, "vip", velo_type_of(VELO_TYPE_BOOLEAN), 1, 0);
    velo_schema_set(s, 3, "credit", velo_type_of(VELO_TYPE_DOUBLE), 1, 0);
    velo_schema_set(s, 4, "_timestamp", velo_type_of(VELO_TYPE_TIMESTAMP), 1,
                    1);
    return s;
}

static struct velo_str str(const char *s)
{
    struct velo_str v = {s, strlen(s)};
    return v;
}

static int str_is(const struct velo_column *c, size_t r, const char *want)
{
    return !c->nulls[r] && c->v.str[r].len == strlen(want) &&
           memcmp(c->v.str[r].ptr, want, c->v.str[r].len) == 0;
}

static void test_fake_rows(void)
{
    struct velo_schema *sc = customers_schema();
    struct velo_property props[] = {{"table", "customers"}};
    struct velo_lookup_spec spec = {&fake_ref, "c",  NULL, props,
                                    1,         "id", sc,   NULL, NULL};
    char err[512];
    struct velo_lookup_table *t = velo_lookup_open(&spec, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    struct velo_lookup_provider p;
    velo_lookup_provider_init(t, &p, 100, 5000000);
    CU_ASSERT_PTR_EQUAL(p.schema, sc);
    CU_ASSERT_EQUAL(p.cache_entries, 100);
    CU_ASSERT_EQUAL(p.cache_ttl_us, 5000000);

    struct velo_batch *b = velo_batch_create(sc, 16);
    struct velo_str keys[] = {str("2"), str("4040"), str("1")};
    uint8_t found[3] = {9, 9, 9};
    CU_ASSERT_EQUAL_FATAL(p.get(p.arg, keys, 3, b, found, err, sizeof(err)),
                          VELO_OK);
    CU_ASSERT_EQUAL(b->nrows, 3);
    CU_ASSERT_EQUAL(found[0], 1);
    CU_ASSERT_EQUAL(found[1], 0);
    CU_ASSERT_EQUAL(found[2], 1);
    /* row 0: key 2, name NULL, credit 2.5, vip absent -> NULL */
    CU_ASSERT_EQUAL(b->cols[0].v.i64[0], 2);
    CU_ASSERT_TRUE(b->cols[1].nulls[0]);
    CU_ASSERT_TRUE(b->cols[2].nulls[0]);
    CU_ASSERT_DOUBLE_EQUAL(b->cols[3].v.f64[0], 2.5, 1e-12);
    /* row 1: no match, every column NULL */
    for (size_t c = 0; c < 4; c++) {
        CU_ASSERT_TRUE(b->cols[c].nulls[1]);
    }
    /* row 2: key 1, escaped quotes decoded, boolean */
    CU_ASSERT_EQUAL(b->cols[0].v.i64[2], 1);
    CU_ASSERT_TRUE(str_is(&b->cols[1], 2, "Ann \"A\""));
    CU_ASSERT_EQUAL(b->cols[2].v.u8[2], 1);
    CU_ASSERT_TRUE(b->cols[3].nulls[2]);
    /* the table's event time is unknown: NULL */
    CU_ASSERT_TRUE(b->cols[4].nulls[0] && b->cols[4].nulls[2]);

    velo_batch_destroy(b);
    velo_lookup_close(t);
    velo_schema_destroy(sc);
}

/* 2500 keys: three connector calls (1024, 1024, 452); the rows of the
 * first two must not point at memory the later calls overwrote. */
static void test_fake_chunks(void)
{
    struct velo_schema *sc = customers_schema();
    struct velo_property props[] = {{"table", "customers"}};
    struct velo_lookup_spec spec = {&fake_ref, "c",  NULL, props,
                                    1,         "id", sc,   NULL, NULL};
    char err[512];
    struct velo_lookup_table *t = velo_lookup_open(&spec, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    enum { N = 2500 };
    static char kbuf[N][16];
    static struct velo_str keys[N];
    static uint8_t found[N];
    for (size_t i = 0; i < N; i++) {
        snprintf(kbuf[i], sizeof(kbuf[i]), "%zu", 3 + i % 1097);
        keys[i] = str(kbuf[i]);
    }
    struct velo_batch *b = velo_batch_create(sc, N);
    CU_ASSERT_EQUAL_FATAL(
        velo_lookup_get(t, keys, N, b, found, err, sizeof(err)), VELO_OK);
    CU_ASSERT_EQUAL(b->nrows, N);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++) {
        long id = (long)(3 + i % 1097);
        char want[48];
        snprintf(want, sizeof(want), "n%ld-c%zu", id, i / 1024 + 1);
        if (!found[i] || b->cols[0].v.i64[i] != id ||
            !str_is(&b->cols[1], i, want)) {
            bad++;
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    velo_batch_destroy(b);
    velo_lookup_close(t);
    velo_schema_destroy(sc);
}

static void test_errors(void)
{
    struct velo_schema *sc = customers_schema();
    struct velo_property props[] = {{"table", "customers"}};
    char err[512] = "";
    /* a connector without lookups */
    struct velo_lookup_spec spec = {&plain_ref, "c",  NULL, props,
                                    1,          "id", sc,   NULL, NULL};
    CU_ASSERT_PTR_NULL(velo_lookup_open(&spec, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot serve lookups"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "plain"));
    /* an unknown property is named */
    struct velo_property badp[] = {{"tabel", "customers"}};
    spec.conn = &fake_ref;
    spec.props = badp;
    err[0] = '\0';
    CU_ASSERT_PTR_NULL(velo_lookup_open(&spec, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "tabel"));
    /* lookup_create refuses (wrong table) */
    struct velo_property other[] = {{"table", "nope"}};
    spec.props = other;
    err[0] = '\0';
    CU_ASSERT_PTR_NULL(velo_lookup_open(&spec, err, sizeof(err)));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open lookup table 'c'"));

    spec.props = props;
    struct velo_lookup_table *t = velo_lookup_open(&spec, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    struct velo_batch *b = velo_batch_create(sc, 4);
    uint8_t found[4];
    /* a row that does not fit: named with its key */
    struct velo_str keys[] = {str("1"), str("bad")};
    err[0] = '\0';
    CU_ASSERT_EQUAL(velo_lookup_get(t, keys, 2, b, found, err, sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "key 'bad'"));
    /* more keys than the batch holds */
    velo_batch_reset(b);
    struct velo_str many[5] = {str("1"), str("1"), str("1"), str("1"),
                               str("1")};
    CU_ASSERT_EQUAL(velo_lookup_get(t, many, 5, b, found, err, sizeof(err)),
                    VELO_ERR);
    /* the connector fails */
    velo_batch_reset(b);
    fake_fail_get = 1;
    err[0] = '\0';
    CU_ASSERT_EQUAL(velo_lookup_get(t, keys, 1, b, found, err, sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "lookup table 'c'"));
    fake_fail_get = 0;
    velo_batch_destroy(b);
    velo_lookup_close(t);
    velo_schema_destroy(sc);
}

/* ---- real servers through the real plugins ------------------------------ */

static struct velo_config cfg;
static struct velo_license lic;
static struct velo_plugins *plugins;
static struct velo_connectors *conns;

static int load_plugins(void)
{
    if (conns != NULL) {
        return 0;
    }
    char set[1024];
    snprintf(set, sizeof(set), "plugins.dirs=%s",
             tu_env("VELO_PLUGIN_BUILD_DIR"));
    const char *sets[1] = {set};
    char err[1024];
    if (velo_config_init(&cfg) != VELO_OK ||
        velo_config_load(&cfg, NULL, NULL, sets, 1, err, sizeof(err)) !=
            VELO_OK) {
        fprintf(stderr, "config: %s\n", err);
        return -1;
    }
    velo_host_bind(NULL, NULL, &lic);
    plugins = velo_plugins_load(&cfg, velo_host_api(), &lic);
    conns = plugins != NULL ? velo_connectors_create(plugins) : NULL;
    return conns != NULL ? 0 : -1;
}

/* lk_customers: (1,'Ann',true,10.5,'2024-01-02 03:04:05'),
 * (2,'Bob "B"',false,NULL,NULL), (3,'Cy',NULL,-1,NULL), id PRIMARY KEY */
static void test_postgres(void)
{
    const char *url = getenv("VELO_LOOKUP_PG_URL");
    if (url == NULL) {
        return; /* run by tests/plugin/postgres/test-lookup.sh */
    }
    CU_ASSERT_EQUAL_FATAL(load_plugins(), 0);
    const struct velo_connector_ref *pg =
        velo_connectors_by_scheme(conns, "postgres");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pg);
    struct velo_schema *sc = velo_schema_create(5);
    velo_schema_set(sc, 0, "id", velo_type_of(VELO_TYPE_BIGINT), 1, 0);
    velo_schema_set(sc, 1, "name", velo_type_of(VELO_TYPE_STRING), 1, 0);
    velo_schema_set(sc, 2, "vip", velo_type_of(VELO_TYPE_BOOLEAN), 1, 0);
    velo_schema_set(sc, 3, "credit", velo_type_of(VELO_TYPE_DOUBLE), 1, 0);
    velo_schema_set(sc, 4, "since", velo_type_of(VELO_TYPE_TIMESTAMP), 1, 0);
    struct velo_property props[] = {{"url", url}, {"table", "lk_customers"}};
    struct velo_lookup_spec spec = {
        pg, "customers", NULL, props, 2, "id", sc, "postgres:customers",
        loop_base()};
    char err[1024];
    struct velo_lookup_table *t = velo_lookup_open(&spec, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    struct velo_batch *b = velo_batch_create(sc, 8);
    /* a quote and a comma in a key travel as a parameter, harmlessly */
    struct velo_str keys[] = {str("3"), str("99"), str("1"),
                              str("2"), str("1"),  str("7\",\"1")};
    uint8_t found[6];
    int rc = velo_lookup_get(t, keys, 5, b, found, err, sizeof(err));
    CU_ASSERT_EQUAL_FATAL(rc, VELO_OK);
    CU_ASSERT_EQUAL(b->nrows, 5);
    CU_ASSERT(found[0] && !found[1] && found[2] && found[3] && found[4]);
    CU_ASSERT_EQUAL(b->cols[0].v.i64[0], 3);
    CU_ASSERT_TRUE(str_is(&b->cols[1], 0, "Cy"));
    CU_ASSERT_TRUE(b->cols[2].nulls[0]);
    CU_ASSERT_DOUBLE_EQUAL(b->cols[3].v.f64[0], -1.0, 1e-12);
    CU_ASSERT_TRUE(b->cols[0].nulls[1]);
    CU_ASSERT_TRUE(str_is(&b->cols[1], 2, "Ann"));
    CU_ASSERT_EQUAL(b->cols[2].v.u8[2], 1);
    CU_ASSERT_DOUBLE_EQUAL(b->cols[3].v.f64[2], 10.5, 1e-12);
    /* 2024-01-02T03:04:05Z in microseconds */
    CU_ASSERT_EQUAL(b->cols[4].v.i64[2], INT64_C(1704164645000000));
    CU_ASSERT_TRUE(str_is(&b->cols[1], 3, "Bob \"B\""));
    CU_ASSERT_EQUAL(b->cols[2].v.u8[3], 0);
    CU_ASSERT_TRUE(b->cols[3].nulls[3]);
    CU_ASSERT_TRUE(str_is(&b->cols[1], 4, "Ann"));
    /* a key that is not an integer for an integer column: an error that
     * names the table */
    velo_batch_reset(b);
    err[0] = '\0';
    CU_ASSERT_EQUAL(velo_lookup_get(t, keys + 5, 1, b, found, err, sizeof(err)),
                    VELO_ERR);
    velo_batch_destroy(b);
    velo_lookup_close(t);

    /* a missing table: refused at open */
    struct velo_property nop[] = {{"url", url}, {"table", "lk_nope"}};
    spec.props = nop;
    CU_ASSERT_PTR_NULL(velo_lookup_open(&spec, err, sizeof(err)));
    velo_schema_destroy(sc);
    printf("\n[postgres lookups checked against %s]\n", "the server");
}

/* Hashes cust:1 {name Ann, vip true, credit 10.5}, cust:2 {name "Bob"},
 * and JSON strings custj:1 {"id":1,"name":"Jo"}. */
static void test_redis(void)
{
    const char *url = getenv("VELO_LOOKUP_REDIS_URL");
    if (url == NULL) {
        return; /* run by tests/plugin/redis/test-lookup.sh */
    }
    CU_ASSERT_EQUAL_FATAL(load_plugins(), 0);
    const struct velo_connector_ref *rd =
        velo_connectors_by_scheme(conns, "redis");
    CU_ASSERT_PTR_NOT_NULL_FATAL(rd);
    struct velo_schema *sc = velo_schema_create(4);
    velo_schema_set(sc, 0, "id", velo_type_of(VELO_TYPE_BIGINT), 1, 0);
    velo_schema_set(sc, 1, "name", velo_type_of(VELO_TYPE_STRING), 1, 0);
    velo_schema_set(sc, 2, "vip", velo_type_of(VELO_TYPE_BOOLEAN), 1, 0);
    velo_schema_set(sc, 3, "credit", velo_type_of(VELO_TYPE_DOUBLE), 1, 0);
    struct velo_property props[] = {{"url", url}, {"key.prefix", "cust:"}};
    struct velo_lookup_spec spec = {rd, "customers", NULL, props,
                                    2,  "id",        sc,   "redis:customers",
                                    loop_base()};
    char err[1024];
    struct velo_lookup_table *t = velo_lookup_open(&spec, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    struct velo_batch *b = velo_batch_create(sc, 8);
    struct velo_str keys[] = {str("2"), str("5"), str("1")};
    uint8_t found[3];
    CU_ASSERT_EQUAL_FATAL(
        velo_lookup_get(t, keys, 3, b, found, err, sizeof(err)), VELO_OK);
    CU_ASSERT(found[0] && !found[1] && found[2]);
    /* the key column comes from the key (a hash sink does not store it) */
    CU_ASSERT_EQUAL(b->cols[0].v.i64[0], 2);
    CU_ASSERT_TRUE(str_is(&b->cols[1], 0, "Bob"));
    CU_ASSERT_TRUE(b->cols[2].nulls[0]);
    CU_ASSERT_TRUE(b->cols[0].nulls[1] && b->cols[1].nulls[1]);
    CU_ASSERT_EQUAL(b->cols[0].v.i64[2], 1);
    CU_ASSERT_TRUE(str_is(&b->cols[1], 2, "Ann"));
    CU_ASSERT_EQUAL(b->cols[2].v.u8[2], 1);
    CU_ASSERT_DOUBLE_EQUAL(b->cols[3].v.f64[2], 10.5, 1e-12);
    velo_batch_destroy(b);
    velo_lookup_close(t);

    /* JSON strings with MGET */
    struct velo_property sprops[] = {
        {"url", url}, {"key.prefix", "custj:"}, {"mode", "string"}};
    spec.props = sprops;
    spec.nprops = 3;
    t = velo_lookup_open(&spec, err, sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    b = velo_batch_create(sc, 8);
    struct velo_str k2[] = {str("1"), str("2")};
    CU_ASSERT_EQUAL_FATAL(velo_lookup_get(t, k2, 2, b, found, err, sizeof(err)),
                          VELO_OK);
    CU_ASSERT(found[0] && !found[1]);
    CU_ASSERT_TRUE(str_is(&b->cols[1], 0, "Jo"));
    CU_ASSERT_TRUE(b->cols[1].nulls[1]);
    velo_batch_destroy(b);
    velo_lookup_close(t);

    /* a mode that cannot be read by key */
    struct velo_property bad[] = {{"url", url}, {"mode", "pubsub"}};
    spec.props = bad;
    spec.nprops = 2;
    CU_ASSERT_PTR_NULL(velo_lookup_open(&spec, err, sizeof(err)));
    velo_schema_destroy(sc);
    printf("\n[redis lookups checked against %s]\n", "the server");
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("lookup", NULL, NULL);
    CU_add_test(s, "fake connector: rows, misses, NULLs", test_fake_rows);
    CU_add_test(s, "fake connector: chunks keep strings", test_fake_chunks);
    CU_add_test(s, "errors are named", test_errors);
    CU_add_test(s, "postgres plugin (VELO_LOOKUP_PG_URL)", test_postgres);
    CU_add_test(s, "redis plugin (VELO_LOOKUP_REDIS_URL)", test_redis);
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned fails = CU_get_number_of_failures();
    if (conns != NULL) {
        velo_connectors_destroy(conns);
    }
    velo_plugins_unload(plugins);
    velo_host_bind(NULL, NULL, NULL);
    velo_config_free(&cfg);
    CU_cleanup_registry();
    return fails == 0 ? 0 : 1;
}
