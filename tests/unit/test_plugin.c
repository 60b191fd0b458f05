/*
 * The plugin loader against real .so fixtures (tests/plugin/fixtures):
 * every refusal names both sides, a refused plugin's code never runs past
 * velo_plugin_init, config maps are filled and checked, license features
 * gate enterprise plugins; and `velo plugins` shows it all.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>
#include <velo/log.h>

#include "config/config.h"
#include "plugin/host.h"
#include "plugin/license-internal.h"
#include "plugin/license.h"
#include "plugin/loader.h"
#include "testutil.h"
#include "util/log.h"

#define DAY 86400

/* Mirrors tests/plugin/fixtures/good.c. */
struct good_conf {
    char *greeting;
    int64_t buffer;
    int64_t timeout_ms;
    int enabled;
    int64_t retries;
    double ratio;
    char *token;
};

struct fx {
    char *root;
    char plugins[512];
    char markers[512];
    struct velo_config cfg;
    struct velo_plugins *set;
};

static void fx_init(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    f->root = tu_tmpdir();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->root);
    snprintf(f->plugins, sizeof(f->plugins), "%s/plugins", f->root);
    snprintf(f->markers, sizeof(f->markers), "%s/markers", f->root);
    mkdir(f->plugins, 0755);
    mkdir(f->markers, 0755);
    setenv("VELO_FIXTURE_MARKER", f->markers, 1);
}

static void fx_done(struct fx *f)
{
    velo_plugins_unload(f->set);
    velo_config_free(&f->cfg);
    tu_rmrf(f->root);
    free(f->root);
    unsetenv("VELO_FIXTURE_MARKER");
}

static void fx_add_as(struct fx *f, const char *fixture, const char *as)
{
    char src[1024], dst[1024];
    snprintf(src, sizeof(src), "%s/%s.so", tu_env("VELO_FIXTURE_DIR"),
             fixture);
    snprintf(dst, sizeof(dst), "%s/%s.so", f->plugins, as);
    size_t len;
    char *data = tu_read_file(src, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    CU_ASSERT_EQUAL_FATAL(tu_write_file(dst, data, len), 0);
    free(data);
}

static void fx_add(struct fx *f, const char *fixture)
{
    fx_add_as(f, fixture, fixture);
}

static int fx_marker(const struct fx *f, const char *name, const char *what)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s.%s", f->markers, name, what);
    return access(path, F_OK) == 0;
}

static int fx_marker_count(const struct fx *f)
{
    DIR *d = opendir(f->markers);
    int n = 0;
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.') {
            fprintf(stderr, "  marker: %s\n", de->d_name);
            n++;
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

/* Load the fixture dir through a real config file; `extra` is YAML under
 * `plugins:` (indented two spaces), e.g. the plugins.config section. */
static void fx_load(struct fx *f, const char *extra,
                    const struct velo_license *lic)
{
    char yaml[4096], err[2048];
    snprintf(yaml, sizeof(yaml), "plugins:\n  dirs: [%s]\n%s", f->plugins,
             extra != NULL ? extra : "");
    int rc = velo_config_load_buffer(&f->cfg, "velo.yaml", yaml, strlen(yaml),
                                     err, sizeof(err));
    if (rc != VELO_OK) {
        fprintf(stderr, "config: %s\n", err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, VELO_OK);
    f->set = velo_plugins_load(&f->cfg, velo_host_api(), lic);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->set);
}

static const struct velo_plugin_entry *by_file(const struct fx *f,
                                               const char *stem)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s.so", f->plugins, stem);
    for (size_t i = 0; i < velo_plugins_count(f->set); i++) {
        const struct velo_plugin_entry *e = velo_plugins_at(f->set, i);
        if (strcmp(e->path, path) == 0) {
            return e;
        }
    }
    return NULL;
}

static int contains(const char *hay, const char *needle)
{
    int ok = hay != NULL && strstr(hay, needle) != NULL;
    if (!ok) {
        fprintf(stderr, "\n  expected to find: %s\n  in: %s\n", needle,
                hay != NULL ? hay : "(null)");
    }
    return ok;
}

/* Capture the server log into a file while a test runs. */
static char log_path[600];

static void log_capture(const struct fx *f)
{
    snprintf(log_path, sizeof(log_path), "%s/server.log", f->root);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CU_ASSERT_FATAL(fd >= 0);
    velo_log_set_fd(fd);
}

/* Stop capturing; @return the log text (malloc'd). */
static char *log_release(void)
{
    velo_log_set_fd(-1);
    return tu_read_file(log_path, NULL);
}

/* ---------------------------------------------------------------- */

static void test_good_loads(void)
{
    struct fx f;
    fx_init(&f);
    fx_add(&f, "good");
    fx_load(&f, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(velo_plugins_count(f.set), 1);
    const struct velo_plugin_entry *e = velo_plugins_at(f.set, 0);
    CU_ASSERT_EQUAL(e->state, VELO_PLUGIN_LOADED);
    CU_ASSERT_PTR_NULL(e->reason);
    CU_ASSERT_STRING_EQUAL(e->name, "good");
    CU_ASSERT_STRING_EQUAL(e->version, "1.2.3");
    CU_ASSERT_EQUAL(e->kind, VELO_PLUGIN_AUTH);
    CU_ASSERT_PTR_NULL(e->license_feature);
    CU_ASSERT_PTR_NOT_NULL(e->dl);
    CU_ASSERT_PTR_NOT_NULL(e->plugin_data);
    CU_ASSERT_PTR_EQUAL(velo_plugins_find(f.set, "good"), e);
    CU_ASSERT_PTR_NULL(velo_plugins_find(f.set, "bad_magic"));

    /* Defaults from the map, parsed per type. */
    const struct good_conf *c = e->config;
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_STRING_EQUAL(c->greeting, "hello");
    CU_ASSERT_EQUAL(c->buffer, 64 * 1024);
    CU_ASSERT_EQUAL(c->timeout_ms, 5000);
    CU_ASSERT_EQUAL(c->enabled, 1);
    CU_ASSERT_EQUAL(c->retries, 3);
    CU_ASSERT_DOUBLE_EQUAL(c->ratio, 0.5, 1e-12);
    CU_ASSERT_STRING_EQUAL(c->token, "none");

    /* Its vtable is callable; start ran, stop has not yet. */
    const struct velo_auth_vtable *vt = e->desc->vtable;
    struct velo_principal who;
    CU_ASSERT_EQUAL(vt->authenticate(NULL, NULL, &who, NULL, NULL),
                    VELO_AUTH_NEXT);
    CU_ASSERT_TRUE(fx_marker(&f, "good", "start"));
    CU_ASSERT_FALSE(fx_marker(&f, "good", "stop"));
    velo_plugins_unload(f.set);
    f.set = NULL;
    CU_ASSERT_TRUE(fx_marker(&f, "good", "stop"));
    fx_done(&f);
}

static void test_config_values(void)
{
    struct fx f;
    fx_init(&f);
    fx_add(&f, "good");
    fx_load(&f,
            "  config:\n"
            "    good:\n"
            "      greeting: hi there\n"
            "      buffer: 4MiB\n"
            "      timeout: 250ms\n"
            "      enabled: off\n"
            "      retries: 7\n"
            "      ratio: 0.25\n"
            "      token: s3cret\n",
            NULL);
    const struct velo_plugin_entry *e = velo_plugins_find(f.set, "good");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    const struct good_conf *c = e->config;
    CU_ASSERT_STRING_EQUAL(c->greeting, "hi there");
    CU_ASSERT_EQUAL(c->buffer, 4 * 1024 * 1024);
    CU_ASSERT_EQUAL(c->timeout_ms, 250);
    CU_ASSERT_EQUAL(c->enabled, 0);
    CU_ASSERT_EQUAL(c->retries, 7);
    CU_ASSERT_DOUBLE_EQUAL(c->ratio, 0.25, 1e-12);
    CU_ASSERT_STRING_EQUAL(c->token, "s3cret");
    fx_done(&f);
}

static void test_config_errors(void)
{
    struct fx f;
    fx_init(&f);
    fx_add(&f, "good");
    /* Line 5 has the unknown key, line 6 the bad size. */
    fx_load(&f,
            "  config:\n"
            "    good:\n"
            "      colour: red\n"
            "      buffer: 12 parsecs\n"
            "      retries: many\n",
            NULL);
    const struct velo_plugin_entry *e = by_file(&f, "good");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->state, VELO_PLUGIN_REFUSED);
    CU_ASSERT(contains(e->reason, "plugin good: config: unknown config key "
                                  "plugins.config.good.colour (velo.yaml "
                                  "line 5); known keys: greeting, buffer, "
                                  "timeout, enabled, retries, ratio, "
                                  "token"));
    CU_ASSERT(contains(e->reason, "plugins.config.good.buffer: \"12 "
                                  "parsecs\" is not a size (velo.yaml line "
                                  "6; write a number with an optional unit"));
    CU_ASSERT(contains(e->reason, "plugins.config.good.retries: \"many\" is "
                                  "not an integer (velo.yaml line 7"));
    CU_ASSERT_PTR_NULL(e->config);
    CU_ASSERT_PTR_NULL(e->dl);
    CU_ASSERT_FALSE(fx_marker(&f, "good", "start"));
    fx_done(&f);

    /* A required key (no default) that is not set. */
    fx_init(&f);
    fx_add(&f, "required_config");
    fx_load(&f, NULL, NULL);
    e = by_file(&f, "required_config");
    CU_ASSERT_EQUAL(e->state, VELO_PLUGIN_REFUSED);
    CU_ASSERT(contains(e->reason, "plugin required_config: config: missing "
                                  "required config key "
                                  "plugins.config.required_config.endpoint "
                                  "(where events go)"));
    CU_ASSERT_FALSE(fx_marker(&f, "required_config", "start"));
    fx_done(&f);

    /* Set, it loads. */
    fx_init(&f);
    fx_add(&f, "required_config");
    fx_load(&f,
            "  config:\n"
            "    required_config:\n"
            "      endpoint: https://audit.example/\n",
            NULL);
    e = by_file(&f, "required_config");
    CU_ASSERT_EQUAL(e->state, VELO_PLUGIN_LOADED);
    CU_ASSERT_STRING_EQUAL(*(char *const *)e->config,
                           "https://audit.example/");
    fx_done(&f);
}

struct refusal {
    const char *file;  /* fixture stem */
    const char *name;  /* entry name the loader reports */
    const char *phrases[3];
};

static void test_refusals(void)
{
    char abi_newer[128], abi_older[128], abi_minor[128], short_desc[128];
    char short_vt[128], sig[256];
    snprintf(abi_newer, sizeof(abi_newer),
             "plugin newer_major: ABI %d.1, server provides %d.%d",
             VELO_ABI_MAJOR + 1, VELO_ABI_MAJOR, VELO_ABI_MINOR);
    snprintf(abi_older, sizeof(abi_older),
             "plugin older_major: ABI 0.9, server provides %d.%d",
             VELO_ABI_MAJOR, VELO_ABI_MINOR);
    snprintf(abi_minor, sizeof(abi_minor),
             "plugin newer_minor: ABI %d.%d, server provides %d.%d",
             VELO_ABI_MAJOR, VELO_ABI_MINOR + 1, VELO_ABI_MAJOR,
             VELO_ABI_MINOR);
    snprintf(short_desc, sizeof(short_desc),
             "plugin short_descriptor: descriptor is %zu bytes, server "
             "expects at least %zu",
             offsetof(struct velo_plugin_descriptor, kind),
             sizeof(struct velo_plugin_descriptor));
    snprintf(short_vt, sizeof(short_vt),
             "plugin short_vtable: auth vtable is 8 bytes, server expects "
             "at least %zu",
             sizeof(struct velo_auth_vtable));
    snprintf(sig, sizeof(sig),
             "plugin bad_signature: build signature \"velo-abi-1 ptr4 long4 "
             "4321\", server is \"%s\"",
             VELO_BUILD_SIGNATURE);
    const struct refusal cases[] = {
        {"bad_magic", "bad_magic",
         {"plugin bad_magic: bad magic 0x0123456789abcdef, expected "
          "0x31474c504f4c4556",
          "(not a Velostream plugin, or built for another product)", NULL}},
        {"newer_major", "newer_major", {abi_newer, "needs a newer server",
                                        NULL}},
        {"older_major", "older_major", {abi_older, NULL, NULL}},
        {"newer_minor", "newer_minor", {abi_minor, NULL, NULL}},
        {"short_descriptor", "short_descriptor", {short_desc, NULL, NULL}},
        {"missing_symbol", "missing_symbol",
         {"plugin missing_symbol: no velo_plugin_init symbol (is it a "
          "Velostream plugin?)",
          NULL, NULL}},
        {"undefined_symbol", "undefined_symbol",
         {"plugin undefined_symbol: cannot load: ",
          "undefined symbol: velo_fixture_no_such_function", NULL}},
        {"bad_signature", "bad_signature", {sig, NULL, NULL}},
        {"unknown_kind", "unknown_kind",
         {"plugin unknown_kind: unknown kind 42; server knows 1-5", NULL,
          NULL}},
        {"short_vtable", "short_vtable", {short_vt, NULL, NULL}},
        {"missing_callback", "missing_callback",
         {"plugin missing_callback: audit vtable is missing required "
          "callback log",
          NULL, NULL}},
        {"connector_half", "connector_half",
         {"plugin connector_half: connector vtable is missing required "
          "callback source_read (a source needs both source_create and "
          "source_read)",
          NULL, NULL}},
        {"bad_name", "bad_name",
         {"plugin bad_name: invalid name \"Bad Name\" (use 1 to 63 of a-z",
          NULL, NULL}},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    struct fx f;
    fx_init(&f);
    for (size_t i = 0; i < n; i++) {
        fx_add(&f, cases[i].file);
    }
    fx_load(&f, NULL, NULL);
    CU_ASSERT_EQUAL(velo_plugins_count(f.set), n);
    for (size_t i = 0; i < n; i++) {
        const struct velo_plugin_entry *e = by_file(&f, cases[i].file);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_EQUAL(e->state, VELO_PLUGIN_REFUSED);
        CU_ASSERT_STRING_EQUAL(e->name, cases[i].name);
        CU_ASSERT_PTR_NULL(e->desc);
        CU_ASSERT_PTR_NULL(e->dl);
        CU_ASSERT_PTR_NULL(e->config);
        for (int k = 0; k < 3 && cases[i].phrases[k] != NULL; k++) {
            CU_ASSERT(contains(e->reason, cases[i].phrases[k]));
        }
    }
    /* None of the refused plugins' code ran past velo_plugin_init. */
    CU_ASSERT_EQUAL(fx_marker_count(&f), 0);
    /* Sorted by file name, for the same answer on every machine. */
    for (size_t i = 1; i < velo_plugins_count(f.set); i++) {
        CU_ASSERT(strcmp(velo_plugins_at(f.set, i - 1)->path,
                         velo_plugins_at(f.set, i)->path) < 0);
    }
    fx_done(&f);
}

static void test_duplicate_and_failed_start(void)
{
    struct fx f;
    fx_init(&f);
    fx_add(&f, "dup_first");
    fx_add(&f, "dup_second");
    fx_add(&f, "start_fails");
    fx_load(&f, NULL, NULL);
    const struct velo_plugin_entry *a = by_file(&f, "dup_first");
    const struct velo_plugin_entry *b = by_file(&f, "dup_second");
    CU_ASSERT_EQUAL(a->state, VELO_PLUGIN_LOADED);
    CU_ASSERT_EQUAL(b->state, VELO_PLUGIN_REFUSED);
    CU_ASSERT_STRING_EQUAL(b->name, "dup");
    char want[1200];
    snprintf(want, sizeof(want),
             "plugin dup: duplicate name: %s/dup_first.so already provides "
             "it; refusing %s/dup_second.so",
             f.plugins, f.plugins);
    CU_ASSERT(contains(b->reason, want));
    CU_ASSERT_TRUE(fx_marker(&f, "dup_first", "start"));
    CU_ASSERT_FALSE(fx_marker(&f, "dup_second", "start"));
    CU_ASSERT_PTR_EQUAL(velo_plugins_find(f.set, "dup"), a);

    const struct velo_plugin_entry *s = by_file(&f, "start_fails");
    CU_ASSERT_EQUAL(s->state, VELO_PLUGIN_FAILED);
    CU_ASSERT(contains(s->reason, "plugin start_fails: start failed "
                                  "(returned -1"));
    CU_ASSERT_TRUE(fx_marker(&f, "start_fails", "start"));
    CU_ASSERT_PTR_NULL(s->dl);
    CU_ASSERT_PTR_NULL(velo_plugins_find(f.set, "start_fails"));
    fx_done(&f);
}

static void test_dirs(void)
{
    /* A directory that does not exist is not an error; several dirs load
     * in order; files that are not "*.so" are ignored. */
    struct fx f;
    fx_init(&f);
    char other[600], yaml[2048], err[1024];
    snprintf(other, sizeof(other), "%s/other", f.root);
    mkdir(other, 0755);
    fx_add(&f, "good");
    char src[1024], dst[1024];
    snprintf(src, sizeof(src), "%s/required_config.so",
             tu_env("VELO_FIXTURE_DIR"));
    snprintf(dst, sizeof(dst), "%s/required_config.so", other);
    size_t len;
    char *data = tu_read_file(src, &len);
    tu_write_file(dst, data, len);
    free(data);
    snprintf(dst, sizeof(dst), "%s/README.txt", f.plugins);
    tu_write_file(dst, "x", 1);
    snprintf(dst, sizeof(dst), "%s/dir.so", f.plugins);
    mkdir(dst, 0755);
    snprintf(yaml, sizeof(yaml),
             "plugins:\n  dirs: [%s/missing, %s, %s/]\n  config:\n"
             "    goood:\n      greeting: typo\n",
             f.root, other, f.plugins);
    CU_ASSERT_EQUAL_FATAL(velo_config_load_buffer(&f.cfg, "velo.yaml", yaml,
                                                  strlen(yaml), err,
                                                  sizeof(err)),
                          VELO_OK);
    log_capture(&f);
    f.set = velo_plugins_load(&f.cfg, velo_host_api(), NULL);
    char *log = log_release();
    CU_ASSERT_EQUAL_FATAL(velo_plugins_count(f.set), 2);
    CU_ASSERT_STRING_EQUAL(velo_plugins_at(f.set, 0)->name,
                           "required_config");
    CU_ASSERT_STRING_EQUAL(velo_plugins_at(f.set, 1)->name, "good");
    /* A trailing slash on a directory does not double it in paths. */
    snprintf(dst, sizeof(dst), "%s/good.so", f.plugins);
    CU_ASSERT_STRING_EQUAL(velo_plugins_at(f.set, 1)->path, dst);
    /* Settings for a plugin nobody provides are most likely a typo. */
    CU_ASSERT(contains(log, "plugins.config.goood (velo.yaml line 5): no "
                            "plugin named 'goood' was found in "
                            "plugins.dirs"));
    /* A missing directory is not worth a warning. */
    CU_ASSERT_PTR_NULL(strstr(log, "/missing"));
    free(log);
    fx_done(&f);
}

/* A license signed now with the test key, written to dir/name. */
static void write_license(const char *dir, const char *name,
                          const char *features, int exp_days, char *path,
                          size_t pathlen)
{
    char is[16], ex[16], p[512], err[512];
    time_t now = time(NULL);
    struct tm tm;
    time_t t0 = now - 100 * DAY, t1 = now + (time_t)exp_days * DAY;
    gmtime_r(&t0, &tm);
    strftime(is, sizeof(is), "%Y-%m-%d", &tm);
    gmtime_r(&t1, &tm);
    strftime(ex, sizeof(ex), "%Y-%m-%d", &tm);
    snprintf(p, sizeof(p),
             "{\"license_id\": \"L-%s\", \"customer\": \"Test\", \"issued\": "
             "\"%s\", \"expires\": \"%s\", \"grace_days\": 10, "
             "\"features\": [%s]}",
             name, is, ex, features);
    char *text = velo_license_sign(p, tu_env("VELO_TEST_KEY"), err,
                                   sizeof(err));
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    snprintf(path, pathlen, "%s/%s.json", dir, name);
    tu_write_file(path, text, strlen(text));
    free(text);
}

static void load_licensed(const char *license_path, int expect_state,
                          const char *phrase, int expect_grace)
{
    struct fx f;
    fx_init(&f);
    fx_add(&f, "unlicensed");
    struct velo_license lic;
    velo_license_verify_file(license_path, time(NULL), &lic);
    log_capture(&f);
    fx_load(&f, NULL, &lic);
    char *log = log_release();
    const struct velo_plugin_entry *e = by_file(&f, "unlicensed");
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(e->state, expect_state);
    CU_ASSERT_STRING_EQUAL(e->license_feature, "rbac");
    CU_ASSERT_EQUAL(e->license_grace, expect_grace);
    if (phrase != NULL) {
        CU_ASSERT(contains(e->reason, phrase));
    }
    CU_ASSERT_EQUAL(fx_marker(&f, "unlicensed", "start"),
                    expect_state == VELO_PLUGIN_LOADED);
    if (expect_grace) {
        /* Every start on an expired license says so, with the dates. */
        CU_ASSERT(contains(log, "plugin unlicensed: loading on an expired "
                                "license: license L-grace expired on "));
        CU_ASSERT(contains(log, "day(s) ago); within its 10-day grace "
                                "period until "));
    } else {
        CU_ASSERT_PTR_NULL(strstr(log, "loading on an expired license"));
    }
    free(log);
    fx_done(&f);
}

static void test_license_gate(void)
{
    char *dir = tu_tmpdir();
    char ok[600], lacks[600], grace[600], expired[600], forged[600];
    write_license(dir, "ok", "\"rbac\"", 30, ok, sizeof(ok));
    write_license(dir, "lacks", "\"audit\", \"cluster\"", 30, lacks,
                  sizeof(lacks));
    write_license(dir, "grace", "\"rbac\"", -2, grace, sizeof(grace));
    write_license(dir, "expired", "\"rbac\"", -40, expired, sizeof(expired));
    write_license(dir, "forged", "\"audit\"", 30, forged, sizeof(forged));
    char *text = tu_read_file(forged, NULL);
    char *at = strstr(text, "\"audit\"");
    memcpy(at, "\"rbac\" ", 7);
    tu_write_file(forged, text, strlen(text));
    free(text);

    /* No license at all: lic NULL, and a configured-but-absent file. */
    struct fx f;
    fx_init(&f);
    fx_add(&f, "unlicensed");
    fx_load(&f, NULL, NULL);
    CU_ASSERT(contains(by_file(&f, "unlicensed")->reason,
                       "plugin unlicensed: needs license feature 'rbac'; no "
                       "license configured"));
    CU_ASSERT_FALSE(fx_marker(&f, "unlicensed", "start"));
    fx_done(&f);
    load_licensed(NULL, VELO_PLUGIN_REFUSED,
                  "needs license feature 'rbac'; no license configured", 0);

    load_licensed(ok, VELO_PLUGIN_LOADED, NULL, 0);
    load_licensed(lacks, VELO_PLUGIN_REFUSED,
                  "plugin unlicensed: needs license feature 'rbac'; license "
                  "L-lacks lacks it (grants: audit, cluster)",
                  0);
    load_licensed(grace, VELO_PLUGIN_LOADED, NULL, 1);
    load_licensed(expired, VELO_PLUGIN_REFUSED,
                  "plugin unlicensed: needs license feature 'rbac'; license "
                  "expired on ",
                  0);
    load_licensed(forged, VELO_PLUGIN_REFUSED,
                  "plugin unlicensed: needs license feature 'rbac'; license "
                  "signature invalid (",
                  0);
    tu_rmrf(dir);
    free(dir);
}

static void test_to_json(void)
{
    struct fx f;
    fx_init(&f);
    fx_add(&f, "good");
    fx_add(&f, "bad_magic");
    fx_add(&f, "unlicensed");
    fx_load(&f, NULL, NULL);
    char *text = velo_plugins_to_json(f.set);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    json_t *arr = json_loads(text, 0, NULL);
    CU_ASSERT_TRUE_FATAL(json_is_array(arr));
    CU_ASSERT_EQUAL_FATAL(json_array_size(arr), 3);
    json_t *bm = json_array_get(arr, 0), *g = json_array_get(arr, 1);
    json_t *u = json_array_get(arr, 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(bm, "name")),
                           "bad_magic");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(bm, "state")),
                           "refused");
    CU_ASSERT_TRUE(json_is_null(json_object_get(bm, "kind")));
    CU_ASSERT(contains(json_string_value(json_object_get(bm, "reason")),
                       "bad magic"));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(g, "state")),
                           "loaded");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(g, "kind")),
                           "auth");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(g, "version")),
                           "1.2.3");
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(g, "description")),
        "a well-formed fixture");
    CU_ASSERT_TRUE(json_is_null(json_object_get(g, "reason")));
    CU_ASSERT_TRUE(json_is_null(json_object_get(g, "license_feature")));
    CU_ASSERT_TRUE(json_is_false(json_object_get(g, "grace")));
    CU_ASSERT(contains(json_string_value(json_object_get(g, "path")),
                       "/plugins/good.so"));
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_object_get(u, "license_feature")), "rbac");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(u, "kind")),
                           "audit");
    json_decref(arr);
    free(text);
    CU_ASSERT_STRING_EQUAL(velo_plugin_kind_name(VELO_PLUGIN_CLUSTER),
                           "cluster");
    CU_ASSERT_STRING_EQUAL(velo_plugin_kind_name(99), "unknown");
    CU_ASSERT_STRING_EQUAL(velo_plugin_state_name(VELO_PLUGIN_FAILED),
                           "failed");
    fx_done(&f);
}

/* ---------------------------------------------------------------- */
/* velo plugins, the real binary                                    */
/* ---------------------------------------------------------------- */

static int run(char *const argv[], char *const env[], char **out, char **err)
{
    struct tu_proc p;
    int rc = tu_run(&p, argv, env, 60000);
    *out = tu_proc_stdout(&p);
    *err = tu_proc_stderr(&p);
    unlink(p.out_path);
    unlink(p.err_path);
    return rc;
}

static void test_cli_plugins(void)
{
    struct fx f;
    fx_init(&f);
    fx_add(&f, "good");
    fx_add(&f, "bad_magic");
    fx_add(&f, "newer_major");
    fx_add(&f, "unlicensed");
    char *bin = (char *)tu_env("VELO_BIN");
    char set[700], marker_env[700];
    snprintf(set, sizeof(set), "plugins.dirs=%s", f.plugins);
    snprintf(marker_env, sizeof(marker_env), "VELO_FIXTURE_MARKER=%s",
             f.markers);
    char *env[] = {marker_env, NULL};
    char *out, *err;

    char *a1[] = {bin, "plugins", "--set", set, NULL};
    CU_ASSERT_EQUAL(run(a1, env, &out, &err), 0);
    CU_ASSERT(contains(out, "License: missing: no license configured"));
    CU_ASSERT(contains(out, "NAME"));
    CU_ASSERT(contains(out, "STATE"));
    CU_ASSERT(contains(out, "good "));
    CU_ASSERT(contains(out, "1.2.3"));
    CU_ASSERT(contains(out, "loaded"));
    CU_ASSERT(contains(out, "plugin bad_magic: bad magic 0x0123456789abcdef"));
    CU_ASSERT(contains(out, "plugin newer_major: ABI 2.1, server provides "
                            "1.2"));
    CU_ASSERT(contains(out, "plugin unlicensed: needs license feature "
                            "'rbac'; no license configured"));
    CU_ASSERT(contains(out, "4 plugin(s): 1 loaded, 3 refused, 0 failed"));
    /* The server's start and stop ran in the child for good only. */
    CU_ASSERT_TRUE(fx_marker(&f, "good", "start"));
    CU_ASSERT_TRUE(fx_marker(&f, "good", "stop"));
    CU_ASSERT_FALSE(fx_marker(&f, "unlicensed", "start"));
    free(out);
    free(err);

    /* JSON, with a license granting rbac through a config file. */
    char lic[600], conf[700];
    write_license(f.root, "cli", "\"rbac\"", 30, lic, sizeof(lic));
    snprintf(conf, sizeof(conf), "%s/velo.yaml", f.root);
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "plugins:\n"
             "  dirs: [%s]\n"
             "  config:\n"
             "    good:\n"
             "      buffer: 1MiB\n"
             "license:\n"
             "  file: %s\n",
             f.plugins, lic);
    tu_write_file(conf, yaml, strlen(yaml));
    char *a2[] = {bin, "plugins", "-c", conf, "--format", "json", NULL};
    CU_ASSERT_EQUAL(run(a2, env, &out, &err), 0);
    json_t *arr = json_loads(out, 0, NULL);
    CU_ASSERT_TRUE_FATAL(json_is_array(arr));
    CU_ASSERT_EQUAL(json_array_size(arr), 4);
    size_t i;
    json_t *o;
    int seen = 0;
    json_array_foreach(arr, i, o)
    {
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *state = json_string_value(json_object_get(o, "state"));
        if (strcmp(name, "unlicensed") == 0 || strcmp(name, "good") == 0) {
            CU_ASSERT_STRING_EQUAL(state, "loaded");
            seen++;
        } else {
            CU_ASSERT_STRING_EQUAL(state, "refused");
        }
    }
    CU_ASSERT_EQUAL(seen, 2);
    json_decref(arr);
    free(out);
    free(err);

    /* A bad plugin setting in the file: named with its line. */
    snprintf(yaml, sizeof(yaml),
             "plugins:\n"
             "  dirs: [%s]\n"
             "  config:\n"
             "    good:\n"
             "      colour: red\n",
             f.plugins);
    tu_write_file(conf, yaml, strlen(yaml));
    char *a3[] = {bin, "plugins", "--config", conf, NULL};
    CU_ASSERT_EQUAL(run(a3, env, &out, &err), 0);
    char want[1024];
    snprintf(want, sizeof(want), "unknown config key plugins.config.good."
                                 "colour (%s line 5)",
             conf);
    CU_ASSERT(contains(out, want));
    free(out);
    free(err);

    /* Usage errors and help. */
    char *a4[] = {bin, "plugins", "--format", "xml", NULL};
    CU_ASSERT_EQUAL(run(a4, env, &out, &err), 2);
    CU_ASSERT(contains(err, "unknown format 'xml'"));
    free(out);
    free(err);
    char *a5[] = {bin, "plugins", "--bogus", NULL};
    CU_ASSERT_EQUAL(run(a5, env, &out, &err), 2);
    free(out);
    free(err);
    char *a6[] = {bin, "plugins", "--help", NULL};
    CU_ASSERT_EQUAL(run(a6, env, &out, &err), 0);
    CU_ASSERT(contains(out, "Usage: velo plugins"));
    free(out);
    free(err);
    fx_done(&f);
}

int main(void)
{
    /* The children must see only the configuration the tests give. */
    unsetenv("VELO_CONFIG");
    unsetenv("VELO_LICENSE_FILE");
    unsetenv("VELO_PLUGINS_DIRS");
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("plugin", NULL, NULL);
    CU_add_test(s, "good plugin loads, starts, stops", test_good_loads);
    CU_add_test(s, "config map values", test_config_values);
    CU_add_test(s, "config map errors", test_config_errors);
    CU_add_test(s, "refusals name both sides", test_refusals);
    CU_add_test(s, "duplicate name, failing start",
                test_duplicate_and_failed_start);
    CU_add_test(s, "directories", test_dirs);
    CU_add_test(s, "license gate", test_license_gate);
    CU_add_test(s, "json", test_to_json);
    CU_add_test(s, "velo plugins", test_cli_plugins);
    return tu_run_all();
}
