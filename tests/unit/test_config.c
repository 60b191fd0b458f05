/*
 * Configuration: invalid files as a table of cases with the key and line
 * each error must name, precedence file < env < flags, environment names,
 * value parsers, diff, plugin settings, the CLI common options, and the
 * shipped sample file (so it cannot rot).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <velo/log.h>

#include "cli/cli.h"
#include "config/config.h"
#include "testutil.h"
#include "util/log.h"

static char *const empty_env[] = {NULL};

static int load_text(struct velo_config *cfg, const char *yaml, char *err,
                     size_t errlen)
{
    return velo_config_load_buffer(cfg, "velo.yaml", yaml, strlen(yaml), err,
                                   errlen);
}

/* ------------------------------------------------------------------------
 * Invalid configurations: each must fail naming where and what.
 * ---------------------------------------------------------------------- */

struct bad_case {
    const char *name;
    const char *yaml;
    const char *where; /* "velo.yaml:LINE:COL" (or LINE only) in the line */
    const char *what;  /* the key, or the subject of the message */
    const char *why;   /* a phrase of the explanation */
};

static const struct bad_case bad_cases[] = {
    {"unknown key, near spelling", "server:\n  listn: 1.2.3.4:80\n",
     "velo.yaml:2:3:", "unknown key 'server.listn'",
     "(did you mean 'server.listen'?)"},
    {"unknown key, wrong section", "server:\n  level: debug\n",
     "velo.yaml:2:3:", "'server.level'", "did you mean 'log.level'?"},
    {"unknown section", "servr:\n  workers: 2\n", "velo.yaml:1:1:", "'servr'",
     "did you mean 'server'?"},
    {"unknown key, nothing close", "zzzzzzzz: 1\n",
     "velo.yaml:1:1:", "'zzzzzzzz'", "plugins.config.<plugin>"},
    {"int: wrong type", "server:\n  workers: many\n",
     "velo.yaml:2:12:", "server.workers", "is not a whole number"},
    {"int: out of range", "server:\n  workers: 0\n",
     "velo.yaml:2:12:", "server.workers", "from 1 to 256"},
    {"int: below minimum", "auth:\n  pbkdf2_iterations: 999\n",
     "velo.yaml:2:22:", "auth.pbkdf2_iterations", "from 1000 to"},
    {"bool: wrong type", "auth:\n  enabled: maybe\n",
     "velo.yaml:2:12:", "auth.enabled", "true or false"},
    {"size: not a size", "http:\n  max_body_size: 12 parsecs\n",
     "velo.yaml:2:18:", "http.max_body_size", "is not a size"},
    {"size: fraction", "http:\n  max_body_size: 1.5MiB\n",
     "velo.yaml:2:", "http.max_body_size", "is not a size"},
    {"size: zero", "http:\n  max_header_size: 0\n",
     "velo.yaml:2:", "http.max_header_size", "out of range"},
    {"size: too big", "http:\n  max_body_size: 100GiB\n",
     "velo.yaml:2:", "http.max_body_size", "from 1 to 16GiB"},
    {"size: overflow", "http:\n  max_body_size: 99999999999999999999\n",
     "velo.yaml:2:", "http.max_body_size", "is not a size"},
    {"duration: bare number", "http:\n  request_timeout: 30\n",
     "velo.yaml:2:20:", "http.request_timeout", "has no unit"},
    {"duration: bad unit", "server:\n  shutdown_timeout: 5 days\n",
     "velo.yaml:2:", "server.shutdown_timeout", "is not a duration"},
    {"duration: too long", "server:\n  shutdown_timeout: 2h\n",
     "velo.yaml:2:", "server.shutdown_timeout", "from 0s to 1h"},
    {"listen: no port", "server:\n  listen: localhost\n",
     "velo.yaml:2:11:", "server.listen", "is not host:port"},
    {"listen: bad port", "server:\n  listen: 127.0.0.1:70000\n",
     "velo.yaml:2:", "server.listen", "bad port"},
    {"listen: bad host", "server:\n  listen: 'a b:80'\n",
     "velo.yaml:2:", "server.listen", "bad host"},
    {"listen: no host", "server:\n  listen: ':8080'\n",
     "velo.yaml:2:", "server.listen", "0.0.0.0:8080"},
    {"log level", "log:\n  level: loud\n", "velo.yaml:2:10:", "log.level",
     "error, warn, info or debug"},
    {"log format", "log:\n  format: xml\n", "velo.yaml:2:11:", "log.format",
     "text or json"},
    {"duplicate key", "server:\n  workers: 2\n  workers: 3\n",
     "velo.yaml:3:3:", "server.workers", "duplicate key (first at line 2"},
    {"duplicate section", "log:\n  level: info\nlog:\n  format: json\n",
     "velo.yaml:3:1:", "log:", "duplicate key (first at line 1"},
    {"same key, dotted and nested",
     "server:\n  workers: 2\nserver.workers: 3\n",
     "velo.yaml:3:1:", "server.workers", "set twice (first at line 2"},
    {"tls without cert",
     "http:\n  tls:\n    enabled: true\n    key: /etc/velo/key.pem\n",
     "velo.yaml:3:5:", "http.tls.enabled", "http.tls.cert is not set"},
    {"tls without key",
     "http:\n  tls:\n    enabled: yes\n    cert: /etc/velo/cert.pem\n",
     "velo.yaml:3:5:", "http.tls.enabled", "http.tls.key is not set"},
    {"non-map root: list", "- server\n- log\n", "velo.yaml:1:1:", "top level",
     "must be a mapping"},
    {"non-map root: scalar", "hello\n", "velo.yaml:1:1:", "top level",
     "must be a mapping"},
    {"list where a value belongs", "server:\n  listen: [a, b]\n",
     "velo.yaml:2:11:", "server.listen", "not a list"},
    {"mapping where a value belongs", "auth:\n  realm: {a: b}\n",
     "velo.yaml:2:10:", "auth.realm", "not a mapping"},
    {"value where a list belongs", "plugins:\n  dirs: /opt/velo\n",
     "velo.yaml:2:9:", "plugins.dirs", "expects a list"},
    {"value where a section belongs", "server: 8080\n",
     "velo.yaml:1:9:", "server:", "is a section"},
    {"empty required value", "server:\n  listen:\n",
     "velo.yaml:2:", "server.listen", "has no value"},
    {"YAML syntax", "server:\n  listen: [a\n", "velo.yaml:", "YAML syntax",
     "hint"},
    {"tab indentation", "server:\n\tlisten: x\n", "velo.yaml:2:", "YAML syntax",
     "not tabs"},
    {"alias refused", "server:\n  data_dir: &d /x\nlicense:\n  file: *d\n",
     "velo.yaml:4:9:", "alias *d", "not supported"},
    {"two documents", "server: {}\n---\nlog: {}\n",
     "velo.yaml:2:1:", "second YAML document", "one document"},
    {"realm with a quote", "auth:\n  realm: 'a\"b'\n",
     "velo.yaml:2:", "auth.realm", "quote"},
    {"empty plugin dir", "plugins:\n  dirs: ['']\n",
     "velo.yaml:2:10:", "plugins.dirs", "entry 1 is empty"},
    {"too many plugin dirs",
     "plugins:\n  dirs: [a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q]\n",
     "velo.yaml:2:", "plugins.dirs", "at most 16"},
    {"plugin dir not a path", "plugins:\n  dirs: [[a]]\n",
     "velo.yaml:2:10:", "plugins.dirs", "entry 1 must be a path"},
    {"bad plugin name", "plugins:\n  config:\n    Kafka!: {a: 1}\n",
     "velo.yaml:3:5:", "plugins.config", "not a plugin name"},
    {"plugin setting is a list",
     "plugins:\n  config:\n    kafka:\n      brokers: [a, b]\n",
     "velo.yaml:4:16:", "plugins.config.kafka.brokers", "not a list"},
    {"plugin setting twice",
     "plugins:\n  config:\n    kafka:\n      acks: 1\n      acks: all\n",
     "velo.yaml:5:7:", "plugins.config.kafka.acks",
     "duplicate key (first at line 4"},
    {"plugin config not a map", "plugins:\n  config: [kafka]\n",
     "velo.yaml:2:11:", "plugins.config", "expects a mapping"},
    {"NUL in a value", "server:\n  data_dir: \"a\\0b\"\n",
     "velo.yaml:2:", "server.data_dir", "NUL"},
    {"nesting too deep",
     "plugins:\n  config:\n    p:\n      a: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
     "velo.yaml:4:", "nested more than", "levels deep"},
    {"key is not a string", "? [a, b]\n: 1\n", "velo.yaml:1:3:", "a key",
     "plain string"},
};

static int contains_line_with(const char *err, const char *a, const char *b,
                              const char *c)
{
    const char *p = err;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t l = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char line[2048];
        snprintf(line, sizeof(line), "%.*s", (int)l, p);
        if (strncmp(line, a, strlen(a)) == 0 && strstr(line, b) != NULL &&
            strstr(line, c) != NULL) {
            return 1;
        }
        if (nl == NULL) {
            break;
        }
        p = nl + 1;
    }
    return 0;
}

static void test_bad_configs(void)
{
    CU_ASSERT_TRUE(sizeof(bad_cases) / sizeof(bad_cases[0]) >= 15);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *bc = &bad_cases[i];
        struct velo_config cfg;
        CU_ASSERT_EQUAL_FATAL(velo_config_init(&cfg), VELO_OK);
        char err[4096] = "";
        int rc = load_text(&cfg, bc->yaml, err, sizeof(err));
        int ok = rc == VELO_ERR &&
                 contains_line_with(err, bc->where, bc->what, bc->why);
        if (!ok) {
            fprintf(stderr,
                    "\ncase '%s': rc=%d, want a line starting '%s' with '%s' "
                    "and '%s'; got:\n%s\n",
                    bc->name, rc, bc->where, bc->what, bc->why, err);
        }
        CU_ASSERT_TRUE(ok);
        /* the defaults are untouched by the failed load */
        CU_ASSERT_STRING_EQUAL(cfg.listen, "127.0.0.1:8080");
        CU_ASSERT_EQUAL(cfg.workers, 2);
        velo_config_free(&cfg);
    }
}

static int count_lines(const char *s)
{
    if (*s == '\0') {
        return 0;
    }
    int n = 0;
    for (; *s != '\0'; s++) {
        n += *s == '\n';
    }
    return n + (s[-1] != '\n');
}

static void test_reports_all_problems(void)
{
    struct velo_config cfg;
    velo_config_init(&cfg);
    char err[4096];
    const char *yaml = "server:\n"
                       "  workers: 0\n"
                       "  listn: x\n"
                       "log:\n"
                       "  level: loud\n"
                       "http:\n"
                       "  max_body_size: lots\n";
    CU_ASSERT_EQUAL(load_text(&cfg, yaml, err, sizeof(err)), VELO_ERR);
    CU_ASSERT_EQUAL(count_lines(err), 4);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "velo.yaml:2:12: server.workers"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "velo.yaml:3:3: unknown key"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "velo.yaml:5:10: log.level"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "velo.yaml:7:18: http.max_body_size"));

    /* A small error buffer gets whole lines and a count of the rest. */
    char small[120];
    CU_ASSERT_EQUAL(load_text(&cfg, yaml, small, sizeof(small)), VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(small, "more problems not shown"));
    CU_ASSERT_TRUE(strlen(small) < sizeof(small));

    /* A flood of problems is capped, not unbounded. */
    size_t cap = 200 * 16 + 1;
    char *flood = malloc(cap);
    size_t o = 0;
    for (int i = 0; i < 200; i++) {
        o += (size_t)snprintf(flood + o, cap - o, "bogus%03d: 1\n", i);
    }
    char *big = malloc(1 << 20);
    CU_ASSERT_EQUAL(load_text(&cfg, flood, big, 1 << 20), VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(big, "(100 more problems not shown)"));
    free(big);
    free(flood);
    velo_config_free(&cfg);
}

static void test_size_limit_and_missing_file(void)
{
    struct velo_config cfg;
    velo_config_init(&cfg);
    char err[1024];
    size_t n = 1024 * 1024 + 1;
    char *buf = malloc(n);
    memset(buf, '#', n);
    CU_ASSERT_EQUAL(
        velo_config_load_buffer(&cfg, "big.yaml", buf, n, err, sizeof(err)),
        VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "big.yaml:1:1:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than"));
    /* exactly 1 MiB of comments is fine */
    buf[n - 2] = '\n';
    CU_ASSERT_EQUAL(
        velo_config_load_buffer(&cfg, "big.yaml", buf, n - 1, err, sizeof(err)),
        VELO_OK);
    free(buf);

    CU_ASSERT_EQUAL(velo_config_load(&cfg, "/nonexistent/velo.yaml", empty_env,
                                     NULL, 0, err, sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/velo.yaml: cannot read"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
    velo_config_free(&cfg);
}

/* ------------------------------------------------------------------------
 * Good configurations
 * ---------------------------------------------------------------------- */

static void test_defaults(void)
{
    struct velo_config cfg;
    CU_ASSERT_EQUAL_FATAL(velo_config_init(&cfg), VELO_OK);
    CU_ASSERT_STRING_EQUAL(cfg.listen, "127.0.0.1:8080");
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "./velo-data");
    CU_ASSERT_EQUAL(cfg.shutdown_timeout_ms, 10000);
    CU_ASSERT_EQUAL(cfg.workers, 2);
    CU_ASSERT_EQUAL(cfg.task_queue_size, 1024);
    CU_ASSERT_EQUAL(cfg.log_level, VELO_LOG_INFO);
    CU_ASSERT_EQUAL(cfg.log_format, VELO_LOG_TEXT);
    CU_ASSERT_EQUAL(cfg.http_max_header_size, 16 * 1024);
    CU_ASSERT_EQUAL(cfg.http_max_body_size, 1024 * 1024);
    CU_ASSERT_EQUAL(cfg.http_request_timeout_ms, 30000);
    CU_ASSERT_EQUAL(cfg.http_max_connections, 1024);
    CU_ASSERT_EQUAL(cfg.http_tls_enabled, 0);
    CU_ASSERT_PTR_NULL(cfg.http_tls_cert);
    CU_ASSERT_PTR_NULL(cfg.http_tls_key);
    CU_ASSERT_EQUAL(cfg.auth_enabled, 1);
    CU_ASSERT_EQUAL(cfg.auth_metrics_require_auth, 0);
    CU_ASSERT_STRING_EQUAL(cfg.auth_realm, "velostream");
    CU_ASSERT_EQUAL(cfg.auth_pbkdf2_iterations, 600000);
    CU_ASSERT_EQUAL_FATAL(cfg.n_plugin_dirs, 1);
    CU_ASSERT_STRING_EQUAL(cfg.plugin_dirs[0], VELO_DEFAULT_PLUGIN_DIR);
    CU_ASSERT_EQUAL(cfg.n_plugin_kv, 0);
    CU_ASSERT_PTR_NULL(cfg.license_file);
    CU_ASSERT_PTR_NULL(cfg.path);
    velo_config_free(&cfg);
    velo_config_free(&cfg); /* freeing twice is harmless: it zeroes */
}

static void test_full_file(void)
{
    const char *yaml = "# comments are fine\n"
                       "server:\n"
                       "  listen: \"[::1]:0\"\n"
                       "  data_dir: /var/lib/velo\n"
                       "  shutdown_timeout: 1m30s\n"
                       "  workers: 8\n"
                       "  task_queue_size: 4096\n"
                       "log: {level: debug, format: json}\n"
                       "http:\n"
                       "  max_header_size: 32KB\n"
                       "  max_body_size: 4 MiB\n"
                       "  request_timeout: 250ms\n"
                       "  max_connections: 10\n"
                       "  tls:\n"
                       "    enabled: on\n"
                       "    cert: /etc/velo/cert.pem\n"
                       "    key: /etc/velo/key.pem\n"
                       "auth:\n"
                       "  enabled: false\n"
                       "  metrics_require_auth: true\n"
                       "  realm: Velo Prod\n"
                       "  pbkdf2_iterations: 1000\n"
                       "plugins:\n"
                       "  dirs:\n"
                       "    - /opt/velo/plugins\n"
                       "    - ./plugins\n"
                       "  config:\n"
                       "    kafka:\n"
                       "      bootstrap:\n"
                       "        servers: localhost:9092\n"
                       "      acks: all\n"
                       "      empty:\n"
                       "    redis: {url: 'redis://localhost:6379/0'}\n"
                       "license.file: /etc/velo/license.json\n";
    struct velo_config cfg;
    velo_config_init(&cfg);
    char err[2048] = "";
    int rc = load_text(&cfg, yaml, err, sizeof(err));
    if (rc != VELO_OK) {
        fprintf(stderr, "%s\n", err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, VELO_OK);
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT_STRING_EQUAL(cfg.listen, "[::1]:0");
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/var/lib/velo");
    CU_ASSERT_EQUAL(cfg.shutdown_timeout_ms, 90000);
    CU_ASSERT_EQUAL(cfg.workers, 8);
    CU_ASSERT_EQUAL(cfg.task_queue_size, 4096);
    CU_ASSERT_EQUAL(cfg.log_level, VELO_LOG_DEBUG);
    CU_ASSERT_EQUAL(cfg.log_format, VELO_LOG_JSON);
    CU_ASSERT_EQUAL(cfg.http_max_header_size, 32000);
    CU_ASSERT_EQUAL(cfg.http_max_body_size, 4 * 1024 * 1024);
    CU_ASSERT_EQUAL(cfg.http_request_timeout_ms, 250);
    CU_ASSERT_EQUAL(cfg.http_max_connections, 10);
    CU_ASSERT_EQUAL(cfg.http_tls_enabled, 1);
    CU_ASSERT_STRING_EQUAL(cfg.http_tls_cert, "/etc/velo/cert.pem");
    CU_ASSERT_STRING_EQUAL(cfg.http_tls_key, "/etc/velo/key.pem");
    CU_ASSERT_EQUAL(cfg.auth_enabled, 0);
    CU_ASSERT_EQUAL(cfg.auth_metrics_require_auth, 1);
    CU_ASSERT_STRING_EQUAL(cfg.auth_realm, "Velo Prod");
    CU_ASSERT_EQUAL(cfg.auth_pbkdf2_iterations, 1000);
    CU_ASSERT_EQUAL_FATAL(cfg.n_plugin_dirs, 2);
    CU_ASSERT_STRING_EQUAL(cfg.plugin_dirs[0], "/opt/velo/plugins");
    CU_ASSERT_STRING_EQUAL(cfg.plugin_dirs[1], "./plugins");
    CU_ASSERT_STRING_EQUAL(cfg.license_file, "/etc/velo/license.json");
    CU_ASSERT_STRING_EQUAL(cfg.path, "velo.yaml");

    /* plugin settings: nested keys joined with '.', with their lines */
    struct {
        const char *plugin, *key, *value;
        int line;
    } want[] = {
        {"kafka", "bootstrap.servers", "localhost:9092", 30},
        {"kafka", "acks", "all", 31},
        {"kafka", "empty", "", 32},
        {"redis", "url", "redis://localhost:6379/0", 33},
    };
    CU_ASSERT_EQUAL_FATAL(cfg.n_plugin_kv, 4);
    for (size_t i = 0; i < 4; i++) {
        CU_ASSERT_STRING_EQUAL(cfg.plugin_kv[i].plugin, want[i].plugin);
        CU_ASSERT_STRING_EQUAL(cfg.plugin_kv[i].key, want[i].key);
        CU_ASSERT_STRING_EQUAL(cfg.plugin_kv[i].value, want[i].value);
        CU_ASSERT_EQUAL(cfg.plugin_kv[i].line, want[i].line);
    }
    velo_config_free(&cfg);
}

static void test_empty_and_null_sections(void)
{
    const char *texts[] = {"",
                           "# only comments\n",
                           "---\n",
                           "server:\n",
                           "server: {}\nplugins:\n  config:\n",
                           "license:\n  file: ~\n"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct velo_config cfg;
        velo_config_init(&cfg);
        char err[512] = "";
        CU_ASSERT_EQUAL(load_text(&cfg, texts[i], err, sizeof(err)), VELO_OK);
        CU_ASSERT_STRING_EQUAL(cfg.listen, "127.0.0.1:8080");
        CU_ASSERT_PTR_NULL(cfg.license_file);
        velo_config_free(&cfg);
    }
}

/* ------------------------------------------------------------------------
 * Environment and flags
 * ---------------------------------------------------------------------- */

static void test_env_names(void)
{
    const char *pairs[][2] = {
        {"server.listen", "VELO_SERVER_LISTEN"},
        {"server.data_dir", "VELO_SERVER_DATA_DIR"},
        {"http.tls.enabled", "VELO_HTTP_TLS_ENABLED"},
        {"auth.pbkdf2_iterations", "VELO_AUTH_PBKDF2_ITERATIONS"},
        {"plugins.dirs", "VELO_PLUGINS_DIRS"},
        {"license.file", "VELO_LICENSE_FILE"},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        char name[64];
        velo_config_env_name(pairs[i][0], name, sizeof(name));
        CU_ASSERT_STRING_EQUAL(name, pairs[i][1]);
    }
    char tiny[8];
    velo_config_env_name("server.listen", tiny, sizeof(tiny));
    CU_ASSERT_STRING_EQUAL(tiny, "VELO_SE");
}

static void test_env_applies(void)
{
    char *env[] = {"PATH=/usr/bin", "VELO_SERVER_LISTEN=0.0.0.0:9000",
                   "VELO_SERVER_DATA_DIR=/srv/velo",
                   "VELO_SERVER_SHUTDOWN_TIMEOUT=3s", "VELO_SERVER_WORKERS=6",
                   "VELO_LOG_LEVEL=debug", "VELO_LOG_FORMAT=json",
                   "VELO_HTTP_MAX_BODY_SIZE=2MB", "VELO_HTTP_TLS_ENABLED=false",
                   "VELO_AUTH_ENABLED=no", "VELO_AUTH_REALM=corp",
                   "VELO_PLUGINS_DIRS=/a, /b ,/c", "VELO_LICENSE_FILE=/l.json",
                   /* not configuration: ignored */
                   "VELO_CONFIG=/elsewhere.yaml", "VELO_BIN=/usr/bin/velo",
                   "VELO_PLUGIN_BUILD_DIR=/x", NULL};
    struct velo_config cfg;
    velo_config_init(&cfg);
    char err[2048] = "";
    int rc = velo_config_load(&cfg, NULL, env, NULL, 0, err, sizeof(err));
    if (rc != VELO_OK) {
        fprintf(stderr, "%s\n", err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, VELO_OK);
    CU_ASSERT_STRING_EQUAL(cfg.listen, "0.0.0.0:9000");
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/srv/velo");
    CU_ASSERT_EQUAL(cfg.shutdown_timeout_ms, 3000);
    CU_ASSERT_EQUAL(cfg.workers, 6);
    CU_ASSERT_EQUAL(cfg.log_level, VELO_LOG_DEBUG);
    CU_ASSERT_EQUAL(cfg.log_format, VELO_LOG_JSON);
    CU_ASSERT_EQUAL(cfg.http_max_body_size, 2000000);
    CU_ASSERT_EQUAL(cfg.auth_enabled, 0);
    CU_ASSERT_STRING_EQUAL(cfg.auth_realm, "corp");
    CU_ASSERT_EQUAL_FATAL(cfg.n_plugin_dirs, 3);
    CU_ASSERT_STRING_EQUAL(cfg.plugin_dirs[0], "/a");
    CU_ASSERT_STRING_EQUAL(cfg.plugin_dirs[1], "/b");
    CU_ASSERT_STRING_EQUAL(cfg.plugin_dirs[2], "/c");
    CU_ASSERT_STRING_EQUAL(cfg.license_file, "/l.json");
    CU_ASSERT_PTR_NULL(cfg.path);

    /* empty list and an unset string */
    char *env2[] = {"VELO_PLUGINS_DIRS=", "VELO_LICENSE_FILE=", NULL};
    CU_ASSERT_EQUAL(
        velo_config_load(&cfg, NULL, env2, NULL, 0, err, sizeof(err)), VELO_OK);
    CU_ASSERT_EQUAL(cfg.n_plugin_dirs, 0);
    CU_ASSERT_PTR_NULL(cfg.license_file);
    velo_config_free(&cfg);
}

static void test_env_errors(void)
{
    char *env[] = {"VELO_SERVER_WORKERS=abc",
                   "VELO_SERVER_LISTN=1.2.3.4:80",
                   "VELO_HTTP_MAX_BODY=1MiB",
                   "VELO_PLUGINS_CONFIG_KAFKA_ACKS=all",
                   "VELO_AUTH_XYZZYPLUGH=1",
                   "VELO_PLUGINS_DIRS=/a,,/b",
                   NULL};
    struct velo_config cfg;
    velo_config_init(&cfg);
    char err[4096] = "";
    CU_ASSERT_EQUAL(
        velo_config_load(&cfg, NULL, env, NULL, 0, err, sizeof(err)), VELO_ERR);
    CU_ASSERT_EQUAL(count_lines(err), 6);
    CU_ASSERT_TRUE(contains_line_with(
        err, "environment variable VELO_SERVER_WORKERS: server.workers:",
        "\"abc\"", "whole number"));
    CU_ASSERT_TRUE(contains_line_with(
        err, "environment variable VELO_SERVER_LISTN:", "unknown",
        "did you mean VELO_SERVER_LISTEN, for server.listen?"));
    CU_ASSERT_TRUE(contains_line_with(
        err, "environment variable VELO_HTTP_MAX_BODY:", "unknown",
        "VELO_HTTP_MAX_BODY_SIZE"));
    CU_ASSERT_TRUE(contains_line_with(
        err, "environment variable VELO_PLUGINS_CONFIG_KAFKA_ACKS:",
        "plugin settings", "--set plugins.config"));
    CU_ASSERT_TRUE(contains_line_with(
        err, "environment variable VELO_AUTH_XYZZYPLUGH:", "unknown",
        "docs/configuration.md"));
    CU_ASSERT_TRUE(contains_line_with(
        err, "environment variable VELO_PLUGINS_DIRS: plugins.dirs:",
        "empty entry", "/a,/b"));
    CU_ASSERT_EQUAL(cfg.workers, 2);
    velo_config_free(&cfg);
}

static void test_flags(void)
{
    const char *sets[] = {"server.workers=12", "plugins.dirs=/p1,/p2",
                          "plugins.config.kafka.sasl.password=s3cret",
                          "http.tls.cert=/c.pem", "license.file="};
    struct velo_config cfg;
    velo_config_init(&cfg);
    char err[2048] = "";
    CU_ASSERT_EQUAL_FATAL(
        velo_config_load(&cfg, NULL, empty_env, sets, 5, err, sizeof(err)),
        VELO_OK);
    CU_ASSERT_EQUAL(cfg.workers, 12);
    CU_ASSERT_EQUAL_FATAL(cfg.n_plugin_dirs, 2);
    CU_ASSERT_STRING_EQUAL(cfg.plugin_dirs[1], "/p2");
    CU_ASSERT_STRING_EQUAL(cfg.http_tls_cert, "/c.pem");
    CU_ASSERT_EQUAL_FATAL(cfg.n_plugin_kv, 1);
    CU_ASSERT_STRING_EQUAL(cfg.plugin_kv[0].plugin, "kafka");
    CU_ASSERT_STRING_EQUAL(cfg.plugin_kv[0].key, "sasl.password");
    CU_ASSERT_STRING_EQUAL(cfg.plugin_kv[0].value, "s3cret");
    CU_ASSERT_EQUAL(cfg.plugin_kv[0].line, 0);

    const char *bad[] = {"server.workers",
                         "server.wokers=3",
                         "server=1",
                         "http.max_header_size=-1",
                         "plugins.config.kafka=1",
                         "plugins.config.BAD.x=1",
                         "http.tls.enabled=true"};
    CU_ASSERT_EQUAL(
        velo_config_load(&cfg, NULL, empty_env, bad, 7, err, sizeof(err)),
        VELO_ERR);
    CU_ASSERT_EQUAL(count_lines(err), 8);
    CU_ASSERT_TRUE(contains_line_with(err, "--set:", "\"server.workers\"",
                                      "is not key=value"));
    CU_ASSERT_TRUE(contains_line_with(err, "--set:", "'server.wokers'",
                                      "did you mean 'server.workers'?"));
    CU_ASSERT_TRUE(contains_line_with(err, "--set: server:", "is a section",
                                      "listen, data_dir"));
    CU_ASSERT_TRUE(contains_line_with(
        err, "--set: http.max_header_size:", "\"-1\"", "not a size"));
    CU_ASSERT_TRUE(contains_line_with(err, "--set:", "plugins.config.kafka=1",
                                      "plugins.config.<plugin>.<key>"));
    CU_ASSERT_TRUE(contains_line_with(err, "--set:", "BAD", "plugin name"));
    CU_ASSERT_TRUE(contains_line_with(
        err, "--set: http.tls.enabled:", "cert is not set", "hint"));
    CU_ASSERT_TRUE(contains_line_with(
        err, "--set: http.tls.enabled:", "key is not set", "hint"));
    /* the earlier good load survives */
    CU_ASSERT_EQUAL(cfg.workers, 12);
    velo_config_free(&cfg);
}

/* file < env < flags, key by key */
static void test_precedence(void)
{
    char *dir = tu_tmpdir();
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char path[512];
    snprintf(path, sizeof(path), "%s/velo.yaml", dir);
    const char *yaml = "server:\n"
                       "  listen: 127.0.0.1:1111\n"
                       "  data_dir: /from/file\n"
                       "  workers: 3\n"
                       "log:\n"
                       "  level: warn\n"
                       "plugins:\n"
                       "  config:\n"
                       "    kafka: {acks: '1', linger: 5ms}\n";
    CU_ASSERT_EQUAL_FATAL(tu_write_file(path, yaml, strlen(yaml)), 0);
    char *env[] = {"VELO_SERVER_DATA_DIR=/from/env", "VELO_SERVER_WORKERS=5",
                   NULL};
    const char *sets[] = {"server.workers=7", "plugins.config.kafka.acks=all"};
    struct velo_config cfg;
    velo_config_init(&cfg);
    char err[2048] = "";
    int rc = velo_config_load(&cfg, path, env, sets, 2, err, sizeof(err));
    if (rc != VELO_OK) {
        fprintf(stderr, "%s\n", err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, VELO_OK);
    CU_ASSERT_STRING_EQUAL(cfg.listen, "127.0.0.1:1111"); /* file */
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/from/env");    /* env > file */
    CU_ASSERT_EQUAL(cfg.workers, 7);                      /* flag > env */
    CU_ASSERT_EQUAL(cfg.log_level, VELO_LOG_WARN);        /* file */
    CU_ASSERT_EQUAL(cfg.http_max_connections, 1024);      /* default */
    CU_ASSERT_STRING_EQUAL(cfg.path, path);
    CU_ASSERT_EQUAL_FATAL(cfg.n_plugin_kv, 2);
    CU_ASSERT_STRING_EQUAL(cfg.plugin_kv[0].key, "acks");
    CU_ASSERT_STRING_EQUAL(cfg.plugin_kv[0].value, "all"); /* flag > file */
    CU_ASSERT_EQUAL(cfg.plugin_kv[0].line, 0);
    CU_ASSERT_STRING_EQUAL(cfg.plugin_kv[1].value, "5ms");
    CU_ASSERT_EQUAL(cfg.plugin_kv[1].line, 9);

    /* env errors name the variable even when the file is fine */
    char *bad_env[] = {"VELO_SERVER_WORKERS=0", NULL};
    CU_ASSERT_EQUAL(
        velo_config_load(&cfg, path, bad_env, NULL, 0, err, sizeof(err)),
        VELO_ERR);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "environment variable "
                                       "VELO_SERVER_WORKERS: server.workers: "
                                       "\"0\" is out of range"));
    tu_rmrf(dir);
    free(dir);
    velo_config_free(&cfg);
}

/* A failed load (a bad SIGHUP reload) leaves the running config as is. */
static void test_failed_load_keeps_config(void)
{
    struct velo_config cfg;
    velo_config_init(&cfg);
    char err[1024];
    CU_ASSERT_EQUAL_FATAL(load_text(&cfg,
                                    "server: {workers: 3, data_dir: /keep}\n"
                                    "plugins: {config: {p: {k: v}}}\n",
                                    err, sizeof(err)),
                          VELO_OK);
    char *data_dir = cfg.data_dir;
    struct velo_config_kv *kv = cfg.plugin_kv;
    CU_ASSERT_EQUAL(load_text(&cfg,
                              "server: {workers: 4, data_dir: /new}\n"
                              "log: {level: nope}\n",
                              err, sizeof(err)),
                    VELO_ERR);
    CU_ASSERT_EQUAL(cfg.workers, 3);
    CU_ASSERT_PTR_EQUAL(cfg.data_dir, data_dir);
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/keep");
    CU_ASSERT_PTR_EQUAL(cfg.plugin_kv, kv);
    CU_ASSERT_EQUAL(cfg.n_plugin_kv, 1);
    CU_ASSERT_STRING_EQUAL(cfg.path, "velo.yaml");
    /* a good load replaces it whole: nothing carries over */
    CU_ASSERT_EQUAL(load_text(&cfg, "server: {workers: 5}\n", err, sizeof(err)),
                    VELO_OK);
    CU_ASSERT_EQUAL(cfg.workers, 5);
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "./velo-data");
    CU_ASSERT_EQUAL(cfg.n_plugin_kv, 0);
    velo_config_free(&cfg);
}

/* ------------------------------------------------------------------------
 * Diff
 * ---------------------------------------------------------------------- */

static void test_diff(void)
{
    struct velo_config a, b;
    velo_config_init(&a);
    velo_config_init(&b);
    char out[2048];
    CU_ASSERT_EQUAL(velo_config_diff(&a, &b, out, sizeof(out)), 0);
    CU_ASSERT_STRING_EQUAL(out, "");
    char err[1024];
    CU_ASSERT_EQUAL_FATAL(
        load_text(&a, "plugins: {config: {pg: {password: old, host: h}}}\n",
                  err, sizeof(err)),
        VELO_OK);
    CU_ASSERT_EQUAL_FATAL(
        load_text(&b,
                  "server: {listen: '0.0.0.0:9000'}\n"
                  "log: {level: debug}\n"
                  "http: {max_body_size: 8MiB, request_timeout: 90s}\n"
                  "plugins: {config: {pg: {password: new, host: h},\n"
                  "                   kafka: {token: t0ps3cret}}}\n",
                  err, sizeof(err)),
        VELO_OK);
    int n = velo_config_diff(&a, &b, out, sizeof(out));
    CU_ASSERT_EQUAL(n, 6);
    CU_ASSERT_STRING_EQUAL(
        out, "server.listen: 127.0.0.1:8080 -> 0.0.0.0:9000 (restart "
             "needed)\n"
             "log.level: info -> debug\n"
             "http.max_body_size: 1MiB -> 8MiB\n"
             "http.request_timeout: 30s -> 1m30s\n"
             "plugins.config.pg.password: *** -> *** (restart needed)\n"
             "plugins.config.kafka.token: (unset) -> *** (restart needed)\n");
    CU_ASSERT_PTR_NULL(strstr(out, "t0ps3cret"));
    CU_ASSERT_PTR_NULL(strstr(out, "new"));
    /* removed keys, and the count without a buffer */
    CU_ASSERT_EQUAL(velo_config_diff(&b, &a, NULL, 0), 6);
    char tiny[16];
    CU_ASSERT_EQUAL(velo_config_diff(&a, &b, tiny, sizeof(tiny)), 6);
    CU_ASSERT_EQUAL(strlen(tiny), sizeof(tiny) - 1);
    velo_config_free(&a);
    velo_config_free(&b);
}

/* ------------------------------------------------------------------------
 * Value parsers
 * ---------------------------------------------------------------------- */

static void test_parsers(void)
{
    struct {
        const char *s;
        int64_t v;
    } sizes[] = {{"0", 0},
                 {"512", 512},
                 {"512B", 512},
                 {"64KB", 64000},
                 {"64KiB", 65536},
                 {"64kib", 65536},
                 {"4 MiB", 4194304},
                 {"4MB", 4000000},
                 {"1GiB", 1073741824},
                 {"2GB", 2000000000},
                 {"1TiB", INT64_C(1099511627776)},
                 {" 7 ", 7}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        int64_t v = -1;
        CU_ASSERT_EQUAL(velo_parse_size(sizes[i].s, &v), VELO_OK);
        CU_ASSERT_EQUAL(v, sizes[i].v);
    }
    const char *bad_sizes[] = {"",
                               "KiB",
                               "-1",
                               "1.5MiB",
                               "12 parsecs",
                               "4M",
                               "4 Mi B",
                               "0x10",
                               "9223372036854775807KiB",
                               "99999999999999999999",
                               NULL};
    for (size_t i = 0; bad_sizes[i] != NULL; i++) {
        int64_t v;
        CU_ASSERT_EQUAL(velo_parse_size(bad_sizes[i], &v), VELO_ERR);
    }
    CU_ASSERT_EQUAL(velo_parse_size(NULL, NULL), VELO_ERR);

    struct {
        const char *s;
        int64_t ms;
    } durs[] = {{"250ms", 250},  {"5s", 5000},       {"2m", 120000},
                {"1h", 3600000}, {"1h30m", 5400000}, {"1m30s", 90000},
                {"0s", 0},       {"10 s", 10000},    {"1h 30m", 5400000}};
    for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
        int64_t v = -1;
        CU_ASSERT_EQUAL(velo_parse_duration(durs[i].s, &v), VELO_OK);
        CU_ASSERT_EQUAL(v, durs[i].ms);
    }
    const char *bad_durs[] = {
        "",  "30", "s", "5x", "1.5s", "-1s", "5S", "1h x", "9999999999999999h",
        NULL};
    for (size_t i = 0; bad_durs[i] != NULL; i++) {
        int64_t v;
        CU_ASSERT_EQUAL(velo_parse_duration(bad_durs[i], &v), VELO_ERR);
    }

    const char *yes[] = {"true", "TRUE", "yes", "on", "1"};
    const char *no[] = {"false", "No", "off", "0"};
    for (size_t i = 0; i < 5; i++) {
        int b = 0;
        CU_ASSERT_EQUAL(velo_parse_bool(yes[i], &b), VELO_OK);
        CU_ASSERT_EQUAL(b, 1);
    }
    for (size_t i = 0; i < 4; i++) {
        int b = 1;
        CU_ASSERT_EQUAL(velo_parse_bool(no[i], &b), VELO_OK);
        CU_ASSERT_EQUAL(b, 0);
    }
    int b;
    CU_ASSERT_EQUAL(velo_parse_bool("y", &b), VELO_ERR);
    CU_ASSERT_EQUAL(velo_parse_bool("", &b), VELO_ERR);

    int64_t v;
    CU_ASSERT_EQUAL(velo_parse_int("-42", &v), VELO_OK);
    CU_ASSERT_EQUAL(v, -42);
    CU_ASSERT_EQUAL(velo_parse_int("9223372036854775807", &v), VELO_OK);
    CU_ASSERT_EQUAL(v, INT64_MAX);
    CU_ASSERT_EQUAL(velo_parse_int("-9223372036854775808", &v), VELO_OK);
    CU_ASSERT_EQUAL(v, INT64_MIN);
    CU_ASSERT_EQUAL(velo_parse_int("9223372036854775808", &v), VELO_ERR);
    CU_ASSERT_EQUAL(velo_parse_int("12abc", &v), VELO_ERR);
    CU_ASSERT_EQUAL(velo_parse_int("", &v), VELO_ERR);
    CU_ASSERT_EQUAL(velo_parse_int("+", &v), VELO_ERR);
}

/* ------------------------------------------------------------------------
 * The CLI common options
 * ---------------------------------------------------------------------- */

static void test_cli_common_opt(void)
{
    char *argv[] = {"server",
                    "-c",
                    "/etc/x.yaml",
                    "--set",
                    "server.workers=9",
                    "--data-dir",
                    "/d",
                    "--log-level=debug",
                    "--listen",
                    "0.0.0.0:1",
                    "--set=log.format=json",
                    "--data-dir",
                    "/d2",
                    "--port",
                    "--config=/y.yaml"};
    int argc = (int)(sizeof(argv) / sizeof(argv[0]));
    struct velo_cli_common c;
    memset(&c, 0, sizeof(c));
    int consumed = 0, other = 0;
    for (int i = 1; i < argc; i++) {
        int r = velo_cli_common_opt(&c, argc, argv, &i);
        CU_ASSERT_TRUE(r >= 0);
        if (r == 1) {
            consumed++;
        } else {
            other++;
            CU_ASSERT_STRING_EQUAL(argv[i], "--port");
        }
    }
    CU_ASSERT_EQUAL(consumed, 8);
    CU_ASSERT_EQUAL(other, 1);
    CU_ASSERT_STRING_EQUAL(c.config_path, "/y.yaml");
    CU_ASSERT_EQUAL_FATAL(c.n_sets, 6);
    CU_ASSERT_STRING_EQUAL(c.sets[0], "server.workers=9");
    CU_ASSERT_STRING_EQUAL(c.sets[2], "log.level=debug");
    CU_ASSERT_STRING_EQUAL(c.sets[3], "server.listen=0.0.0.0:1");
    CU_ASSERT_STRING_EQUAL(c.sets[4], "log.format=json");
    CU_ASSERT_STRING_EQUAL(c.sets[5], "server.data_dir=/d2");

    /* the value is missing, or is not key=value */
    int saved = dup(2);
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 2);
    char *miss[] = {"server", "--config"};
    int i = 1;
    int r1 = velo_cli_common_opt(&c, 2, miss, &i);
    char *noeq[] = {"server", "--set", "workers"};
    i = 1;
    int r2 = velo_cli_common_opt(&c, 3, noeq, &i);
    /* too many --set */
    struct velo_cli_common many;
    memset(&many, 0, sizeof(many));
    char *one[] = {"server", "--set", "server.workers=1"};
    int r3 = 1;
    for (int k = 0; k < VELO_CLI_MAX_SETS + 3 && r3 == 1; k++) {
        i = 1;
        r3 = velo_cli_common_opt(&many, 3, one, &i);
    }
    dup2(saved, 2);
    close(saved);
    close(devnull);
    CU_ASSERT_EQUAL(r1, -1);
    CU_ASSERT_EQUAL(r2, -1);
    CU_ASSERT_EQUAL(r3, -1);
    CU_ASSERT_EQUAL(many.n_sets, VELO_CLI_MAX_SETS);
    CU_ASSERT_PTR_NOT_NULL(strstr(velo_cli_common_help, "--config FILE"));
    CU_ASSERT_PTR_NOT_NULL(strstr(velo_cli_common_help, "--set KEY=VALUE"));
    CU_ASSERT_PTR_NOT_NULL(strstr(velo_cli_common_help, "--listen ADDR"));
}

static void test_cli_load_config(void)
{
    char *dir = tu_tmpdir();
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char path[512], errpath[512];
    snprintf(path, sizeof(path), "%s/v.yaml", dir);
    snprintf(errpath, sizeof(errpath), "%s/stderr.txt", dir);
    const char *yaml = "server:\n  workers: 4\nlog:\n  level: warn\n";
    tu_write_file(path, yaml, strlen(yaml));

    struct velo_cli_common c;
    memset(&c, 0, sizeof(c));
    char *argv[] = {"x", "--log-level", "debug", "--data-dir", "/dd"};
    for (int i = 1; i < 5; i++) {
        CU_ASSERT_EQUAL(velo_cli_common_opt(&c, 5, argv, &i), 1);
    }
    /* the file from $VELO_CONFIG when no -c */
    setenv("VELO_CONFIG", path, 1);
    int level = velo_log_get_level();
    struct velo_config cfg;
    CU_ASSERT_EQUAL_FATAL(velo_cli_load_config(&c, &cfg), VELO_OK);
    unsetenv("VELO_CONFIG");
    CU_ASSERT_EQUAL(cfg.workers, 4);
    CU_ASSERT_EQUAL(cfg.log_level, VELO_LOG_DEBUG);
    CU_ASSERT_STRING_EQUAL(cfg.data_dir, "/dd");
    CU_ASSERT_STRING_EQUAL(cfg.path, path);
    CU_ASSERT_EQUAL(velo_log_get_level(), VELO_LOG_DEBUG);
    velo_log_set_level(level);
    velo_config_free(&cfg);

    /* errors go to stderr, one per line, naming the key */
    const char *bad = "server:\n  workers: 0\n  lissen: x\n";
    tu_write_file(path, bad, strlen(bad));
    memset(&c, 0, sizeof(c));
    c.config_path = path;
    fflush(stderr);
    int saved = dup(2);
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(fd, 2);
    int rc = velo_cli_load_config(&c, &cfg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    CU_ASSERT_EQUAL(rc, VELO_ERR);
    char *out = tu_read_file(errpath, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "v.yaml:2:12: server.workers"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "did you mean 'server.listen'"));
    free(out);
    velo_config_free(&cfg); /* zeroed on failure: safe */
    tu_rmrf(dir);
    free(dir);
}

/* ------------------------------------------------------------------------
 * The shipped sample and the docs cannot rot.
 * ---------------------------------------------------------------------- */

static const char *const all_keys[] = {
    "server.listen",
    "server.data_dir",
    "server.shutdown_timeout",
    "server.workers",
    "server.task_queue_size",
    "log.level",
    "log.format",
    "http.max_header_size",
    "http.max_body_size",
    "http.request_timeout",
    "http.max_connections",
    "http.tls.enabled",
    "http.tls.cert",
    "http.tls.key",
    "auth.enabled",
    "auth.metrics_require_auth",
    "auth.realm",
    "auth.pbkdf2_iterations",
    "plugins.dirs",
    "license.file",
};
#define N_ALL_KEYS (sizeof(all_keys) / sizeof(all_keys[0]))

/* A non-default, non-zero value for each key, in all_keys order. */
static const char *const odd_values[N_ALL_KEYS] = {
    "10.0.0.1:1",   "/odd",    "7s",    "3",    "5",   "debug",
    "json",         "1KiB",    "3MiB",  "9s",   "77",  "true",
    "/c.pem",       "/k.pem",  "false", "true", "odd", "2000",
    "/odd/plugins", "/odd.lic"};

/* The test's key list is the table: every listed key can be set, and a
 * config with all of them changed differs from an all-zero one in exactly
 * that many keys but auth.enabled (whose non-default, false, is zero). A
 * table key missing from the list keeps its default, which differs from
 * zero for all but booleans defaulting false and unset strings, and adds a
 * line. */
static void test_key_list_is_complete(void)
{
    const char *sets[N_ALL_KEYS];
    char buf[N_ALL_KEYS][128];
    for (size_t i = 0; i < N_ALL_KEYS; i++) {
        snprintf(buf[i], sizeof(buf[i]), "%s=%s", all_keys[i], odd_values[i]);
        sets[i] = buf[i];
    }
    struct velo_config cfg, zero, defaults;
    velo_config_init(&cfg);
    velo_config_init(&defaults);
    memset(&zero, 0, sizeof(zero));
    char err[4096] = "";
    int rc = velo_config_load(&cfg, NULL, empty_env, sets, N_ALL_KEYS, err,
                              sizeof(err));
    if (rc != VELO_OK) {
        fprintf(stderr, "%s\n", err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, VELO_OK);
    CU_ASSERT_EQUAL(velo_config_diff(&zero, &cfg, NULL, 0),
                    (int)N_ALL_KEYS - 1);
    CU_ASSERT_EQUAL(velo_config_diff(&defaults, &cfg, NULL, 0),
                    (int)N_ALL_KEYS);
    velo_config_free(&cfg);
    velo_config_free(&defaults);
}

static void test_sample_config(void)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/packaging/velo.yaml",
             tu_env("VELO_SOURCE_DIR"));
    struct velo_config cfg, defaults;
    velo_config_init(&cfg);
    velo_config_init(&defaults);
    char err[4096] = "";
    int rc = velo_config_load(&cfg, path, empty_env, NULL, 0, err, sizeof(err));
    if (rc != VELO_OK) {
        fprintf(stderr, "%s\n", err);
    }
    CU_ASSERT_EQUAL_FATAL(rc, VELO_OK);
    /* Equal to the built-in defaults except the one deliberate change: a
     * packaged server keeps its state under /var/lib. */
    char diff[2048];
    int n = velo_config_diff(&defaults, &cfg, diff, sizeof(diff));
    if (n != 1) {
        fprintf(stderr, "sample differs from the defaults:\n%s", diff);
    }
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_STRING_EQUAL(diff, "server.data_dir: ./velo-data -> "
                                 "/var/lib/velo (restart needed)\n");
    velo_config_free(&cfg);
    velo_config_free(&defaults);

    /* Every key is documented in the sample (its name and variable) and
     * in docs/configuration.md. */
    char *sample = tu_read_file(path, NULL);
    char docpath[1024];
    snprintf(docpath, sizeof(docpath), "%s/docs/configuration.md",
             tu_env("VELO_SOURCE_DIR"));
    char *doc = tu_read_file(docpath, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sample);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    for (size_t i = 0; i < N_ALL_KEYS; i++) {
        char env[64], leaf[80];
        velo_config_env_name(all_keys[i], env, sizeof(env));
        const char *dot = strrchr(all_keys[i], '.');
        snprintf(leaf, sizeof(leaf), "%s:", dot + 1);
        if (strstr(sample, env) == NULL || strstr(sample, leaf) == NULL) {
            fprintf(stderr, "sample lacks %s / %s\n", env, leaf);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(sample, env));
        CU_ASSERT_PTR_NOT_NULL(strstr(sample, leaf));
        char code[96];
        snprintf(code, sizeof(code), "`%s`", all_keys[i]);
        if (strstr(doc, code) == NULL || strstr(doc, env) == NULL) {
            fprintf(stderr, "docs lack %s / %s\n", code, env);
        }
        CU_ASSERT_PTR_NOT_NULL(strstr(doc, code));
        CU_ASSERT_PTR_NOT_NULL(strstr(doc, env));
    }
    free(sample);
    free(doc);
}

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        return 1;
    }
    CU_pSuite s = CU_add_suite("config", NULL, NULL);
    CU_add_test(s, "invalid configurations", test_bad_configs);
    CU_add_test(s, "all problems reported", test_reports_all_problems);
    CU_add_test(s, "size limit and missing file",
                test_size_limit_and_missing_file);
    CU_add_test(s, "defaults", test_defaults);
    CU_add_test(s, "a full file", test_full_file);
    CU_add_test(s, "empty and null sections", test_empty_and_null_sections);
    CU_add_test(s, "environment names", test_env_names);
    CU_add_test(s, "environment applies", test_env_applies);
    CU_add_test(s, "environment errors", test_env_errors);
    CU_add_test(s, "flags", test_flags);
    CU_add_test(s, "precedence file < env < flags", test_precedence);
    CU_add_test(s, "failed load keeps config", test_failed_load_keeps_config);
    CU_add_test(s, "diff", test_diff);
    CU_add_test(s, "value parsers", test_parsers);
    CU_add_test(s, "cli common options", test_cli_common_opt);
    CU_add_test(s, "cli load config", test_cli_load_config);
    CU_add_test(s, "key list is complete", test_key_list_is_complete);
    CU_add_test(s, "shipped sample and docs", test_sample_config);
    return tu_run_all();
}
