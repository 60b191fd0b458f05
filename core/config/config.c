/*
 * Server configuration: one table declares every key; the YAML file, the
 * VELO_* environment and --set flags all go through it, so a key has one
 * type, one default, one validation and one spelling everywhere.
 *
 * Loading builds a fresh struct and only swaps it in when no problem was
 * found, so a bad reload (SIGHUP) leaves the running configuration alone.
 * Every problem is reported, not just the first: a user fixing a file
 * should see the whole list at once.
 */
#include "config/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#include "util/log.h"

#ifndef VELO_DEFAULT_PLUGIN_DIR
#define VELO_DEFAULT_PLUGIN_DIR "/usr/local/lib/velo/plugins"
#endif

extern char **environ;

#define CONFIG_MAX_BYTES (1024 * 1024)
#define CONFIG_MAX_DEPTH 32
#define CONFIG_MAX_ERRORS 100
#define CONFIG_MAX_PLUGIN_KV 1024
#define CONFIG_MAX_STRING 4096
#define CONFIG_MAX_PATH 256

#define KIB INT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

enum key_type {
    KT_STRING,
    KT_INT,
    KT_BOOL,
    KT_SIZE,
    KT_DURATION,
    KT_LOG_LEVEL,
    KT_LOG_FORMAT,
    KT_STRING_LIST
};

#define KF_NULLABLE 0x1 /* a string that may be unset (no default) */
#define KF_RESTART 0x2  /* a change only takes effect after a restart */

/* Checks a string value; on failure writes the problem (value, hint). */
typedef int (*check_fn)(const char *value, char *msg, size_t msglen);

struct key_def {
    const char *name;
    int type;
    const char *def; /* default as the user would write it; NULL: unset */
    size_t offset;
    int64_t min, max; /* for numbers; both 0 means no range */
    int flags;
    check_fn check;
    const char *description;
};

static int check_listen(const char *v, char *msg, size_t msglen);
static int check_nonempty(const char *v, char *msg, size_t msglen);
static int check_realm(const char *v, char *msg, size_t msglen);

#define OFF(field) offsetof(struct velo_config, field)

static const struct key_def keys[] = {
    {"server.listen", KT_STRING, "127.0.0.1:8080", OFF(listen), 0, 0,
     KF_RESTART, check_listen,
     "host:port the HTTP API listens on (port 0 picks a free port)"},
    {"server.data_dir", KT_STRING, "./velo-data", OFF(data_dir), 0, 0,
     KF_RESTART, check_nonempty,
     "directory for the server's own state (users, API keys, checkpoints)"},
    {"server.shutdown_timeout", KT_DURATION, "10s", OFF(shutdown_timeout_ms), 0,
     3600 * 1000, 0, NULL,
     "how long a graceful stop waits for requests and jobs to finish"},
    {"server.workers", KT_INT, "2", OFF(workers), 1, 256, KF_RESTART, NULL,
     "worker threads that run jobs and blocking tasks"},
    {"server.task_queue_size", KT_INT, "1024", OFF(task_queue_size), 1,
     1024 * 1024, KF_RESTART, NULL,
     "tasks that may wait for a worker; a full queue is back-pressure"},
    {"log.level", KT_LOG_LEVEL, "info", OFF(log_level), 0, 0, 0, NULL,
     "least severe level logged: error, warn, info or debug"},
    {"log.format", KT_LOG_FORMAT, "text", OFF(log_format), 0, 0, 0, NULL,
     "log line format: text or json"},
    {"http.max_header_size", KT_SIZE, "16KiB", OFF(http_max_header_size), 1,
     16 * MIB, 0, NULL, "largest request header block accepted"},
    {"http.max_body_size", KT_SIZE, "1MiB", OFF(http_max_body_size), 1,
     16 * GIB, 0, NULL, "largest request body accepted"},
    {"http.request_timeout", KT_DURATION, "30s", OFF(http_request_timeout_ms),
     1, 24 * 3600 * 1000, 0, NULL,
     "how long a client may take to send a request or read the answer"},
    {"http.max_connections", KT_INT, "1024", OFF(http_max_connections), 1,
     1000000, 0, NULL, "open client connections; more are refused"},
    {"http.tls.enabled", KT_BOOL, "false", OFF(http_tls_enabled), 0, 0,
     KF_RESTART, NULL, "serve HTTPS instead of HTTP (needs cert and key)"},
    {"http.tls.cert", KT_STRING, NULL, OFF(http_tls_cert), 0, 0,
     KF_NULLABLE | KF_RESTART, NULL, "PEM certificate chain file for TLS"},
    {"http.tls.key", KT_STRING, NULL, OFF(http_tls_key), 0, 0,
     KF_NULLABLE | KF_RESTART, NULL, "PEM private key file for TLS"},
    {"auth.enabled", KT_BOOL, "true", OFF(auth_enabled), 0, 0, 0, NULL,
     "require authentication on the API"},
    {"auth.metrics_require_auth", KT_BOOL, "false",
     OFF(auth_metrics_require_auth), 0, 0, 0, NULL,
     "put /metrics behind authentication too"},
    {"auth.realm", KT_STRING, "velostream", OFF(auth_realm), 0, 0, 0,
     check_realm, "realm named in WWW-Authenticate challenges"},
    {"auth.pbkdf2_iterations", KT_INT, "600000", OFF(auth_pbkdf2_iterations),
     1000, 100000000, 0, NULL, "PBKDF2-SHA256 rounds for new password hashes"},
    {"plugins.dirs", KT_STRING_LIST, VELO_DEFAULT_PLUGIN_DIR, OFF(plugin_dirs),
     0, 0, KF_RESTART, NULL,
     "directories searched for plugin .so files (the only ones loaded)"},
    {"license.file", KT_STRING, NULL, OFF(license_file), 0, 0,
     KF_NULLABLE | KF_RESTART, NULL,
     "signed license file enabling commercial plugins"},
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

/* The environment prefixes that belong to configuration: a variable with
 * one of these that matches no key is a typo, not someone else's. */
static const char *const env_prefixes[] = {"VELO_SERVER_",  "VELO_LOG_",
                                           "VELO_HTTP_",    "VELO_AUTH_",
                                           "VELO_PLUGINS_", "VELO_LICENSE_"};

/* ------------------------------------------------------------------------
 * Value parsers
 * ---------------------------------------------------------------------- */

static const char *skip_space(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return s;
}

/* Digits only; @return chars consumed, 0 when none, -1 on overflow. */
static int parse_digits(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    int n = 0;
    while (isdigit((unsigned char)s[n])) {
        unsigned d = (unsigned)(s[n] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
        n++;
    }
    *out = v;
    return n;
}

int velo_parse_int(const char *s, int64_t *out)
{
    if (s == NULL) {
        return VELO_ERR;
    }
    s = skip_space(s);
    int neg = 0;
    if (*s == '+' || *s == '-') {
        neg = *s == '-';
        s++;
    }
    uint64_t v;
    int n = parse_digits(s, &v);
    if (n <= 0) {
        return VELO_ERR;
    }
    if (*skip_space(s + n) != '\0') {
        return VELO_ERR;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return VELO_ERR;
        }
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX) {
            return VELO_ERR;
        }
        *out = (int64_t)v;
    }
    return VELO_OK;
}

int velo_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    if (s == NULL) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return VELO_OK;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return VELO_OK;
        }
    }
    return VELO_ERR;
}

struct unit {
    const char *name;
    int64_t mult;
};

/* KB/MB/GB/TB are decimal and KiB/MiB/GiB/TiB binary, as IEC and the SI
 * prefixes say; a user who writes 4MB gets 4,000,000 bytes. */
static const struct unit size_units[] = {
    {"", 1},
    {"b", 1},
    {"kb", 1000},
    {"kib", KIB},
    {"mb", 1000 * 1000},
    {"mib", MIB},
    {"gb", 1000 * 1000 * 1000},
    {"gib", GIB},
    {"tb", INT64_C(1000) * 1000 * 1000 * 1000},
    {"tib", GIB * 1024},
};

int velo_parse_size(const char *s, int64_t *out)
{
    if (s == NULL) {
        return VELO_ERR;
    }
    s = skip_space(s);
    uint64_t v;
    int n = parse_digits(s, &v);
    if (n <= 0 || v > (uint64_t)INT64_MAX) {
        return VELO_ERR;
    }
    const char *u = skip_space(s + n);
    size_t ulen = 0;
    while (isalpha((unsigned char)u[ulen])) {
        ulen++;
    }
    if (*skip_space(u + ulen) != '\0') {
        return VELO_ERR;
    }
    for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
        const struct unit *su = &size_units[i];
        if (strlen(su->name) == ulen && strncasecmp(u, su->name, ulen) == 0) {
            if ((int64_t)v > INT64_MAX / su->mult) {
                return VELO_ERR;
            }
            *out = (int64_t)v * su->mult;
            return VELO_OK;
        }
    }
    return VELO_ERR;
}

static const struct unit duration_units[] = {
    {"ms", 1},
    {"s", 1000},
    {"m", 60 * 1000},
    {"h", 3600 * 1000},
};

/* "1h30m", "250ms", "5s". A bare number is refused: "30" could mean
 * seconds to one reader and milliseconds to another. */
int velo_parse_duration(const char *s, int64_t *ms)
{
    if (s == NULL) {
        return VELO_ERR;
    }
    s = skip_space(s);
    int64_t total = 0;
    int parts = 0;
    while (*s != '\0') {
        uint64_t v;
        int n = parse_digits(s, &v);
        if (n <= 0 || v > (uint64_t)INT64_MAX) {
            return VELO_ERR;
        }
        s = skip_space(s + n);
        size_t ulen = 0;
        while (isalpha((unsigned char)s[ulen])) {
            ulen++;
        }
        const struct unit *du = NULL;
        for (size_t i = 0;
             i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
            if (strlen(duration_units[i].name) == ulen &&
                strncmp(s, duration_units[i].name, ulen) == 0) {
                du = &duration_units[i];
            }
        }
        if (du == NULL) {
            return VELO_ERR;
        }
        if ((int64_t)v > INT64_MAX / du->mult ||
            total > INT64_MAX - (int64_t)v * du->mult) {
            return VELO_ERR;
        }
        total += (int64_t)v * du->mult;
        parts++;
        s = skip_space(s + ulen);
    }
    if (parts == 0) {
        return VELO_ERR;
    }
    *ms = total;
    return VELO_OK;
}

/* Is s a number without a unit (for a better duration hint)? */
static int is_bare_number(const char *s)
{
    int64_t v;
    return velo_parse_int(s, &v) == VELO_OK;
}

/* ------------------------------------------------------------------------
 * Formatting values (messages, diff)
 * ---------------------------------------------------------------------- */

/* A user value quoted for a message: escaped and cut to a sane length, so
 * a 1 MiB scalar or a control character cannot wreck the terminal. */
static void quote_value(char *out, size_t cap, const char *s)
{
    size_t o = 0;
    size_t shown = 0;
    if (cap < 8) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return;
    }
    out[o++] = '"';
    for (; *s != '\0'; s++, shown++) {
        if (shown == 60 || o + 8 >= cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch == '\n') {
            out[o++] = '\\';
            out[o++] = 'n';
        } else if (ch < 0x20 || ch == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o++] = '"';
    out[o] = '\0';
}

static void format_size(char *out, size_t cap, int64_t v)
{
    static const struct unit bin[] = {
        {"TiB", GIB * 1024}, {"GiB", GIB}, {"MiB", MIB}, {"KiB", KIB}};
    for (size_t i = 0; i < sizeof(bin) / sizeof(bin[0]); i++) {
        if (v != 0 && v % bin[i].mult == 0) {
            snprintf(out, cap, "%lld%s", (long long)(v / bin[i].mult),
                     bin[i].name);
            return;
        }
    }
    snprintf(out, cap, "%lld", (long long)v);
}

/* The form a user would write: 1h30m, 1m30s, 250ms, 0s. */
static void format_duration(char *out, size_t cap, int64_t ms)
{
    static const struct unit du[] = {
        {"h", 3600 * 1000}, {"m", 60 * 1000}, {"s", 1000}, {"ms", 1}};
    if (ms <= 0) {
        snprintf(out, cap, ms == 0 ? "0s" : "%lldms", (long long)ms);
        return;
    }
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof(du) / sizeof(du[0]) && o < cap; i++) {
        int64_t n = ms / du[i].mult;
        if (n > 0) {
            o += (size_t)snprintf(out + o, cap - o, "%lld%s", (long long)n,
                                  du[i].name);
            ms -= n * du[i].mult;
        }
    }
}

static void *field(const struct velo_config *cfg, const struct key_def *k)
{
    return (char *)cfg + k->offset;
}

/* The value of a key as a user would write it. */
static void format_key(const struct velo_config *cfg, const struct key_def *k,
                       char *out, size_t cap)
{
    void *f = field(cfg, k);
    switch (k->type) {
    case KT_STRING: {
        const char *s = *(char **)f;
        snprintf(out, cap, "%s", s != NULL ? s : "(unset)");
        break;
    }
    case KT_INT:
        snprintf(out, cap, "%lld", (long long)*(int64_t *)f);
        break;
    case KT_BOOL:
        snprintf(out, cap, "%s", *(int *)f ? "true" : "false");
        break;
    case KT_SIZE:
        format_size(out, cap, *(int64_t *)f);
        break;
    case KT_DURATION:
        format_duration(out, cap, *(int64_t *)f);
        break;
    case KT_LOG_LEVEL:
        snprintf(out, cap, "%s", velo_log_level_name(*(int *)f));
        break;
    case KT_LOG_FORMAT:
        snprintf(out, cap, "%s", *(int *)f == VELO_LOG_JSON ? "json" : "text");
        break;
    case KT_STRING_LIST: {
        size_t o = (size_t)snprintf(out, cap, "[");
        for (size_t i = 0; i < cfg->n_plugin_dirs && o < cap; i++) {
            o += (size_t)snprintf(out + o, cap - o, "%s%s", i > 0 ? ", " : "",
                                  cfg->plugin_dirs[i]);
        }
        if (o < cap) {
            snprintf(out + o, cap - o, "]");
        }
        break;
    }
    default:
        snprintf(out, cap, "?");
        break;
    }
}

/* ------------------------------------------------------------------------
 * String checks
 * ---------------------------------------------------------------------- */

static int check_nonempty(const char *v, char *msg, size_t msglen)
{
    if (v[0] == '\0') {
        snprintf(msg, msglen,
                 "is empty (hint: give a path, e.g. "
                 "/var/lib/velo)");
        return VELO_ERR;
    }
    return VELO_OK;
}

static int check_listen(const char *v, char *msg, size_t msglen)
{
    char q[96];
    quote_value(q, sizeof(q), v);
    const char *colon = strrchr(v, ':');
    if (colon == NULL || colon == v) {
        snprintf(msg, msglen,
                 "%s is not host:port (hint: write an address and a port, "
                 "e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080)",
                 q);
        return VELO_ERR;
    }
    size_t hlen = (size_t)(colon - v);
    int ok = 1;
    if (v[0] == '[') {
        /* Bracketed IPv6 literal, as in URLs. */
        if (hlen < 3 || v[hlen - 1] != ']') {
            ok = 0;
        }
        for (size_t i = 1; ok && i + 1 < hlen; i++) {
            char ch = v[i];
            if (!isxdigit((unsigned char)ch) && ch != ':' && ch != '.' &&
                ch != '%' && !isalnum((unsigned char)ch)) {
                ok = 0;
            }
        }
    } else {
        for (size_t i = 0; ok && i < hlen; i++) {
            char ch = v[i];
            if (!isalnum((unsigned char)ch) && ch != '.' && ch != '-' &&
                ch != '_') {
                ok = 0;
            }
        }
    }
    if (!ok) {
        snprintf(msg, msglen,
                 "%s has a bad host (hint: use a hostname, an IPv4 address "
                 "or a bracketed IPv6 address such as [::1])",
                 q);
        return VELO_ERR;
    }
    uint64_t port;
    int n = parse_digits(colon + 1, &port);
    if (n <= 0 || colon[1 + n] != '\0' || port > 65535) {
        snprintf(msg, msglen,
                 "%s has a bad port (hint: the port is a number from 0 to "
                 "65535; 0 picks a free one)",
                 q);
        return VELO_ERR;
    }
    return VELO_OK;
}

/* The realm is sent inside a quoted header parameter. */
static int check_realm(const char *v, char *msg, size_t msglen)
{
    char q[96];
    quote_value(q, sizeof(q), v);
    if (v[0] == '\0' || strlen(v) > 128) {
        snprintf(msg, msglen, "%s must be 1 to 128 characters", q);
        return VELO_ERR;
    }
    for (const char *p = v; *p != '\0'; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\' || ch < 0x20 || ch == 0x7f) {
            snprintf(msg, msglen,
                     "%s contains a quote, backslash or control character "
                     "(hint: the realm goes into an HTTP header; use plain "
                     "text)",
                     q);
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

/* ------------------------------------------------------------------------
 * Converting text to a key's value
 * ---------------------------------------------------------------------- */

struct conv {
    int64_t i;     /* numbers, bools, enums */
    const char *s; /* strings: borrowed text; NULL for unset */
};

static void range_hint(const struct key_def *k, char *out, size_t cap)
{
    char lo[32], hi[32];
    if (k->type == KT_SIZE) {
        format_size(lo, sizeof(lo), k->min);
        format_size(hi, sizeof(hi), k->max);
    } else if (k->type == KT_DURATION) {
        format_duration(lo, sizeof(lo), k->min);
        format_duration(hi, sizeof(hi), k->max);
    } else {
        snprintf(lo, sizeof(lo), "%lld", (long long)k->min);
        snprintf(hi, sizeof(hi), "%lld", (long long)k->max);
    }
    snprintf(out, cap, "use a value from %s to %s", lo, hi);
}

/* @return VELO_OK with *c filled, or VELO_ERR with the problem in msg. */
static int convert(const struct key_def *k, const char *text, struct conv *c,
                   char *msg, size_t msglen)
{
    char q[96], hint[96];
    quote_value(q, sizeof(q), text);
    c->s = NULL;
    c->i = 0;
    switch (k->type) {
    case KT_STRING:
    case KT_STRING_LIST:
        if (strlen(text) > CONFIG_MAX_STRING) {
            snprintf(msg, msglen, "value is longer than %d bytes",
                     CONFIG_MAX_STRING);
            return VELO_ERR;
        }
        if (k->check != NULL && k->check(text, msg, msglen) != VELO_OK) {
            return VELO_ERR;
        }
        c->s = text;
        return VELO_OK;
    case KT_INT:
        if (velo_parse_int(text, &c->i) != VELO_OK) {
            snprintf(msg, msglen,
                     "%s is not a whole number (hint: write digits only, "
                     "e.g. %lld)",
                     q, (long long)k->min);
            return VELO_ERR;
        }
        break;
    case KT_BOOL: {
        int b;
        if (velo_parse_bool(text, &b) != VELO_OK) {
            snprintf(msg, msglen,
                     "%s is not a boolean (hint: write true or false)", q);
            return VELO_ERR;
        }
        c->i = b;
        return VELO_OK;
    }
    case KT_SIZE:
        if (velo_parse_size(text, &c->i) != VELO_OK) {
            snprintf(msg, msglen,
                     "%s is not a size (hint: write a number with an "
                     "optional unit: 512, 64KiB, 4MiB; KB/MB/GB are powers "
                     "of 1000, KiB/MiB/GiB powers of 1024)",
                     q);
            return VELO_ERR;
        }
        break;
    case KT_DURATION:
        if (velo_parse_duration(text, &c->i) != VELO_OK) {
            if (is_bare_number(text)) {
                snprintf(msg, msglen,
                         "%s has no unit (hint: durations need one: 500ms, "
                         "30s, 5m, 1h, or combined as 1m30s)",
                         q);
            } else {
                snprintf(msg, msglen,
                         "%s is not a duration (hint: write a number and a "
                         "unit: 500ms, 30s, 5m, 1h, or combined as 1m30s)",
                         q);
            }
            return VELO_ERR;
        }
        break;
    case KT_LOG_LEVEL: {
        int lvl;
        if (velo_log_level_parse(text, &lvl) != VELO_OK) {
            snprintf(msg, msglen,
                     "%s is not a log level (hint: use error, warn, info "
                     "or debug)",
                     q);
            return VELO_ERR;
        }
        c->i = lvl;
        return VELO_OK;
    }
    case KT_LOG_FORMAT:
        if (strcasecmp(text, "text") == 0) {
            c->i = VELO_LOG_TEXT;
        } else if (strcasecmp(text, "json") == 0) {
            c->i = VELO_LOG_JSON;
        } else {
            snprintf(msg, msglen,
                     "%s is not a log format (hint: use text or json)", q);
            return VELO_ERR;
        }
        return VELO_OK;
    default:
        snprintf(msg, msglen, "has an unknown type");
        return VELO_ERR;
    }
    if ((k->min != 0 || k->max != 0) && (c->i < k->min || c->i > k->max)) {
        range_hint(k, hint, sizeof(hint));
        snprintf(msg, msglen, "%s is out of range (hint: %s)", q, hint);
        return VELO_ERR;
    }
    return VELO_OK;
}

/* Store a converted scalar. @return VELO_ERR only on ENOMEM. */
static int store(struct velo_config *cfg, const struct key_def *k,
                 const struct conv *c)
{
    void *f = field(cfg, k);
    switch (k->type) {
    case KT_STRING: {
        char *copy = NULL;
        if (c->s != NULL && (copy = strdup(c->s)) == NULL) {
            return VELO_ERR;
        }
        free(*(char **)f);
        *(char **)f = copy;
        return VELO_OK;
    }
    case KT_INT:
    case KT_SIZE:
    case KT_DURATION:
        *(int64_t *)f = c->i;
        return VELO_OK;
    default:
        *(int *)f = (int)c->i;
        return VELO_OK;
    }
}

static int store_list(struct velo_config *cfg, const char *const *items,
                      size_t n)
{
    char *copies[VELO_CONFIG_MAX_DIRS];
    for (size_t i = 0; i < n; i++) {
        copies[i] = strdup(items[i]);
        if (copies[i] == NULL) {
            while (i > 0) {
                free(copies[--i]);
            }
            return VELO_ERR;
        }
    }
    for (size_t i = 0; i < cfg->n_plugin_dirs; i++) {
        free(cfg->plugin_dirs[i]);
        cfg->plugin_dirs[i] = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        cfg->plugin_dirs[i] = copies[i];
    }
    cfg->n_plugin_dirs = n;
    return VELO_OK;
}

/* ------------------------------------------------------------------------
 * Lifecycle
 * ---------------------------------------------------------------------- */

void velo_config_free(struct velo_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < N_KEYS; i++) {
        if (keys[i].type == KT_STRING) {
            free(*(char **)field(cfg, &keys[i]));
        }
    }
    for (size_t i = 0; i < cfg->n_plugin_dirs && i < VELO_CONFIG_MAX_DIRS;
         i++) {
        free(cfg->plugin_dirs[i]);
    }
    for (size_t i = 0; i < cfg->n_plugin_kv; i++) {
        free(cfg->plugin_kv[i].plugin);
        free(cfg->plugin_kv[i].key);
        free(cfg->plugin_kv[i].value);
    }
    free(cfg->plugin_kv);
    free(cfg->path);
    memset(cfg, 0, sizeof(*cfg));
}

/* Split "a, b,c" into trimmed items in buf. @return count, or -1 when an
 * item is empty or there are too many. */
static int split_list(char *buf, const char **items, size_t max)
{
    size_t n = 0;
    char *p = buf;
    if (*skip_space(p) == '\0') {
        return 0;
    }
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma != NULL) {
            *comma = '\0';
        }
        char *start = (char *)skip_space(p);
        char *end = start + strlen(start);
        while (end > start && (end[-1] == ' ' || end[-1] == '\t')) {
            *--end = '\0';
        }
        if (*start == '\0' || n == max) {
            return -1;
        }
        items[n++] = start;
        if (comma == NULL) {
            return (int)n;
        }
        p = comma + 1;
    }
}

int velo_config_init(struct velo_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    char msg[256];
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct key_def *k = &keys[i];
        if (k->def == NULL) {
            continue;
        }
        if (k->type == KT_STRING_LIST) {
            char buf[1024];
            const char *items[VELO_CONFIG_MAX_DIRS];
            snprintf(buf, sizeof(buf), "%s", k->def);
            int n = split_list(buf, items, VELO_CONFIG_MAX_DIRS);
            if (n < 0 || store_list(cfg, items, (size_t)n) != VELO_OK) {
                velo_config_free(cfg);
                errno = n < 0 ? EINVAL : ENOMEM;
                return VELO_ERR;
            }
            continue;
        }
        struct conv c;
        if (convert(k, k->def, &c, msg, sizeof(msg)) != VELO_OK) {
            /* A default that fails its own check is a bug in the table. */
            velo_config_free(cfg);
            errno = EINVAL;
            return VELO_ERR;
        }
        if (store(cfg, k, &c) != VELO_OK) {
            velo_config_free(cfg);
            errno = ENOMEM;
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

void velo_config_env_name(const char *key, char *out, size_t outlen)
{
    if (outlen == 0) {
        return;
    }
    size_t o = (size_t)snprintf(out, outlen, "VELO_");
    for (; *key != '\0' && o + 1 < outlen; key++) {
        char ch = *key;
        out[o++] =
            (ch == '.' || ch == '-') ? '_' : (char)toupper((unsigned char)ch);
    }
    out[o < outlen ? o : outlen - 1] = '\0';
}

/* ------------------------------------------------------------------------
 * Problems
 * ---------------------------------------------------------------------- */

struct errbuf {
    char *buf;
    size_t len, cap;
    int n;     /* problems found */
    int shown; /* problems written into buf */
    int oom;
};

static void err_vadd(struct errbuf *e, const char *fmt, va_list ap)
{
    e->n++;
    if (e->shown >= CONFIG_MAX_ERRORS || e->oom) {
        return;
    }
    char line[1024];
    int w = vsnprintf(line, sizeof(line), fmt, ap);
    size_t need = w < 0 ? 0 : (size_t)w;
    if (need >= sizeof(line)) {
        need = sizeof(line) - 1;
    }
    if (e->len + need + 2 > e->cap) {
        size_t ncap = e->cap == 0 ? 2048 : e->cap * 2;
        while (ncap < e->len + need + 2) {
            ncap *= 2;
        }
        char *nb = realloc(e->buf, ncap);
        if (nb == NULL) {
            e->oom = 1;
            return;
        }
        e->buf = nb;
        e->cap = ncap;
    }
    memcpy(e->buf + e->len, line, need);
    e->len += need;
    e->buf[e->len++] = '\n';
    e->buf[e->len] = '\0';
    e->shown++;
}

static void err_add(struct errbuf *e, const char *fmt, ...) VELO_PRINTF(2, 3);
static void err_add(struct errbuf *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vadd(e, fmt, ap);
    va_end(ap);
}

/* Copy the problems into the caller's buffer, whole lines only, and say
 * how many did not fit. */
static void err_export(const struct errbuf *e, char *out, size_t outlen)
{
    if (out == NULL || outlen == 0) {
        return;
    }
    out[0] = '\0';
    if (e->oom) {
        snprintf(out, outlen,
                 "out of memory while reading the "
                 "configuration");
        return;
    }
    size_t o = 0;
    int copied = 0;
    const char *p = e->buf;
    while (p != NULL && *p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t l = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (o + l + 1 >= outlen) {
            if (copied == 0) {
                /* Even one line is too long: cut it. */
                snprintf(out, outlen, "%.*s", (int)l, p);
                o = strlen(out);
                copied = 1;
            }
            break;
        }
        if (copied > 0) {
            out[o++] = '\n';
        }
        memcpy(out + o, p, l);
        o += l;
        out[o] = '\0';
        copied++;
        p = nl != NULL ? nl + 1 : NULL;
    }
    if (copied < e->n) {
        char more[80];
        int ml = snprintf(more, sizeof(more), "%s(%d more problems not shown)",
                          o > 0 ? "\n" : "", e->n - copied);
        if (ml > 0 && o + (size_t)ml < outlen) {
            memcpy(out + o, more, (size_t)ml + 1);
        }
    }
}

/* Where a value came from, for messages and the cross-key checks. */
enum { ORIG_DEFAULT = 0, ORIG_FILE, ORIG_ENV, ORIG_FLAG };
struct origin {
    int kind;
    const char *file;
    int line, col;
    const char *env;
};

static void origin_label(const struct origin *o, char *out, size_t cap)
{
    switch (o->kind) {
    case ORIG_FILE:
        snprintf(out, cap, "%s:%d:%d", o->file, o->line, o->col);
        break;
    case ORIG_ENV:
        snprintf(out, cap, "environment variable %s", o->env);
        break;
    case ORIG_FLAG:
        snprintf(out, cap, "--set");
        break;
    default:
        snprintf(out, cap, "default");
        break;
    }
}

struct load_ctx {
    struct velo_config *cfg;
    struct errbuf err;
    struct origin origins[N_KEYS];
    char env_names[N_KEYS][64];
    const char *name; /* file name in messages */
};

static void problem(struct load_ctx *c, const struct origin *o, const char *key,
                    const char *fmt, ...) VELO_PRINTF(4, 5);
static void problem(struct load_ctx *c, const struct origin *o, const char *key,
                    const char *fmt, ...)
{
    char label[512], msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    origin_label(o, label, sizeof(label));
    if (key != NULL) {
        err_add(&c->err, "%s: %s: %s", label, key, msg);
    } else {
        err_add(&c->err, "%s: %s", label, msg);
    }
}

static int too_many_problems(const struct load_ctx *c)
{
    return c->err.n >= CONFIG_MAX_ERRORS;
}

static void oom(struct load_ctx *c)
{
    c->err.n++;
    c->err.oom = 1;
}

/* ------------------------------------------------------------------------
 * Did you mean
 * ---------------------------------------------------------------------- */

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > CONFIG_MAX_PATH || lb > CONFIG_MAX_PATH) {
        return SIZE_MAX;
    }
    size_t row[CONFIG_MAX_PATH + 1];
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = tolower((unsigned char)a[i - 1]) ==
                                  tolower((unsigned char)b[j - 1])
                              ? 0
                              : 1;
            size_t best = diag + cost;
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            if (up + 1 < best) {
                best = up + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

static const char *last_part(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot != NULL ? dot + 1 : path;
}

/* Is path a section (a proper dotted prefix of some key)? */
static int is_section(const char *path)
{
    size_t l = strlen(path);
    if (strcmp(path, "plugins.config") == 0) {
        return 1;
    }
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strncmp(keys[i].name, path, l) == 0 && keys[i].name[l] == '.') {
            return 1;
        }
    }
    return 0;
}

/* Candidate names: every key and every section. */
static size_t candidate(size_t i, char *out, size_t cap)
{
    /* Index i walks keys, then the sections of each key. */
    if (i < N_KEYS) {
        snprintf(out, cap, "%s", keys[i].name);
        return 1;
    }
    i -= N_KEYS;
    if (i < N_KEYS) {
        const char *name = keys[i].name;
        const char *dot = strchr(name, '.');
        if (dot == NULL) {
            return 0;
        }
        snprintf(out, cap, "%.*s", (int)(dot - name), name);
        return 1;
    }
    i -= N_KEYS;
    if (i == 0) {
        snprintf(out, cap, "plugins.config");
        return 1;
    }
    if (i == 1) {
        snprintf(out, cap, "http.tls");
        return 1;
    }
    return 0;
}

/* The closest known key to `path`, or NULL when nothing is close. */
static const char *suggest_key(const char *path, char *out, size_t cap)
{
    /* Right name, wrong section (server.level -> log.level) beats a near
     * spelling: the user knew the name and misplaced it. */
    const char *leaf = last_part(path);
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcasecmp(last_part(keys[i].name), leaf) == 0) {
            snprintf(out, cap, "%s", keys[i].name);
            return out;
        }
    }
    size_t best = SIZE_MAX;
    size_t limit = strlen(path) / 3;
    if (limit < 2) {
        limit = 2;
    }
    char cand[128];
    for (size_t i = 0; i < 2 * N_KEYS + 2; i++) {
        if (!candidate(i, cand, sizeof(cand))) {
            continue;
        }
        size_t d = edit_distance(path, cand);
        if (d < best && d <= limit) {
            best = d;
            snprintf(out, cap, "%s", cand);
        }
    }
    return best != SIZE_MAX ? out : NULL;
}

static const struct key_def *find_key(const char *path)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(keys[i].name, path) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

static size_t key_index(const struct key_def *k)
{
    return (size_t)(k - keys);
}

static void unknown_key(struct load_ctx *c, const struct origin *o,
                        const char *path)
{
    if (too_many_problems(c)) {
        c->err.n++;
        return;
    }
    char q[96], sug[128];
    quote_value(q, sizeof(q), path);
    q[0] = '\'';
    q[strlen(q) - 1] = '\'';
    if (suggest_key(path, sug, sizeof(sug)) != NULL) {
        problem(c, o, NULL, "unknown key %s (did you mean '%s'?)", q, sug);
    } else {
        problem(c, o, NULL,
                "unknown key %s (hint: see docs/configuration.md for the "
                "keys; plugin settings go under plugins.config.<plugin>)",
                q);
    }
}

/* The keys of a section, for "expected a mapping" hints. */
static void section_keys(const char *section, char *out, size_t cap)
{
    size_t l = strlen(section);
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N_KEYS && o < cap; i++) {
        if (strncmp(keys[i].name, section, l) == 0 && keys[i].name[l] == '.') {
            o += (size_t)snprintf(out + o, cap - o, "%s%s", o > 0 ? ", " : "",
                                  keys[i].name + l + 1);
        }
    }
}

/* ------------------------------------------------------------------------
 * Applying values
 * ---------------------------------------------------------------------- */

static int is_null_text(const char *s)
{
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

/* Apply one scalar to a non-list key. `is_null` is true for a YAML null or
 * an empty env/flag value. */
static void apply_scalar(struct load_ctx *c, const struct key_def *k,
                         const char *text, int is_null, const struct origin *o)
{
    struct conv cv;
    char msg[512];
    if (is_null) {
        if (!(k->flags & KF_NULLABLE)) {
            char def[128] = "";
            if (k->def != NULL) {
                snprintf(def, sizeof(def), " %s", k->def);
            }
            problem(c, o, k->name,
                    "has no value (hint: give a value, or remove the line "
                    "to use the default%s)",
                    def);
            return;
        }
        cv.s = NULL;
        cv.i = 0;
    } else if (convert(k, text, &cv, msg, sizeof(msg)) != VELO_OK) {
        problem(c, o, k->name, "%s", msg);
        return;
    }
    if (store(c->cfg, k, &cv) != VELO_OK) {
        oom(c);
        return;
    }
    c->origins[key_index(k)] = *o;
}

/* Apply a list, each item with its own origin (file) or all sharing one. */
static void apply_list(struct load_ctx *c, const struct key_def *k,
                       const char *const *items, const struct origin *io,
                       size_t n, const struct origin *o)
{
    if (n > VELO_CONFIG_MAX_DIRS) {
        problem(c, o, k->name, "has %zu entries (hint: at most %d)", n,
                VELO_CONFIG_MAX_DIRS);
        return;
    }
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i][0] == '\0') {
            problem(c, io != NULL ? &io[i] : o, k->name,
                    "entry %zu is empty (hint: give a directory path)", i + 1);
            bad = 1;
            continue;
        }
        struct conv cv;
        char msg[512];
        if (convert(k, items[i], &cv, msg, sizeof(msg)) != VELO_OK) {
            problem(c, io != NULL ? &io[i] : o, k->name, "%s", msg);
            bad = 1;
        }
    }
    if (bad) {
        return;
    }
    if (store_list(c->cfg, items, n) != VELO_OK) {
        oom(c);
        return;
    }
    c->origins[key_index(k)] = *o;
}

/* Apply text from the environment or a flag (lists comma-separated). */
static void apply_text(struct load_ctx *c, const struct key_def *k,
                       const char *text, const struct origin *o)
{
    if (k->type != KT_STRING_LIST) {
        apply_scalar(c, k, text, text[0] == '\0', o);
        return;
    }
    size_t tl = strlen(text);
    if (tl > CONFIG_MAX_STRING * 4) {
        problem(c, o, k->name, "value is too long");
        return;
    }
    char *buf = strdup(text);
    if (buf == NULL) {
        oom(c);
        return;
    }
    const char *items[VELO_CONFIG_MAX_DIRS];
    int n = split_list(buf, items, VELO_CONFIG_MAX_DIRS);
    if (n < 0) {
        problem(c, o, k->name,
                "has an empty entry or more than %d entries (hint: write "
                "directories separated by commas: /a,/b)",
                VELO_CONFIG_MAX_DIRS);
    } else {
        apply_list(c, k, items, NULL, (size_t)n, o);
    }
    free(buf);
}

static int valid_plugin_name(const char *s)
{
    if (*s == '\0' || strlen(s) > 64) {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) &&
            *s != '_' && *s != '-') {
            return 0;
        }
    }
    return 1;
}

/* Set plugins.config.<plugin>.<key>; a file value set twice is an error,
 * env/flags replace. */
static void set_plugin_kv(struct load_ctx *c, const char *plugin,
                          const char *key, const char *value, int line,
                          const struct origin *o)
{
    struct velo_config *cfg = c->cfg;
    for (size_t i = 0; i < cfg->n_plugin_kv; i++) {
        struct velo_config_kv *kv = &cfg->plugin_kv[i];
        if (strcmp(kv->plugin, plugin) != 0 || strcmp(kv->key, key) != 0) {
            continue;
        }
        if (o->kind == ORIG_FILE) {
            problem(c, o, NULL,
                    "plugins.config.%s.%s: set twice (first at line %d; "
                    "hint: keep one)",
                    plugin, key, kv->line);
            return;
        }
        char *nv = strdup(value);
        if (nv == NULL) {
            oom(c);
            return;
        }
        free(kv->value);
        kv->value = nv;
        kv->line = line;
        return;
    }
    if (cfg->n_plugin_kv >= CONFIG_MAX_PLUGIN_KV) {
        problem(c, o, NULL,
                "plugins.config.%s.%s: too many plugin settings (at most %d)",
                plugin, key, CONFIG_MAX_PLUGIN_KV);
        return;
    }
    size_t n = cfg->n_plugin_kv;
    if (n == 0 || (n & (n - 1)) == 0) {
        size_t ncap = n < 4 ? 4 : n * 2;
        struct velo_config_kv *nk = realloc(cfg->plugin_kv, ncap * sizeof(*nk));
        if (nk == NULL) {
            oom(c);
            return;
        }
        cfg->plugin_kv = nk;
    }
    struct velo_config_kv *kv = &cfg->plugin_kv[n];
    kv->plugin = strdup(plugin);
    kv->key = strdup(key);
    kv->value = strdup(value);
    kv->line = line;
    if (kv->plugin == NULL || kv->key == NULL || kv->value == NULL) {
        free(kv->plugin);
        free(kv->key);
        free(kv->value);
        oom(c);
        return;
    }
    cfg->n_plugin_kv = n + 1;
}

/* ------------------------------------------------------------------------
 * YAML: events to a small tree (so aliases are seen and refused, and depth
 * is bounded), then a walk over the key table.
 * ---------------------------------------------------------------------- */

enum { YN_SCALAR, YN_MAP, YN_SEQ };

struct ynode {
    int kind;
    int line, col; /* 1-based */
    char *text;    /* scalars */
    size_t text_len;
    int plain;
    struct ynode **kids; /* maps: key, value, key, value... */
    size_t n, cap;
};

static void ynode_free(struct ynode *n)
{
    if (n == NULL) {
        return;
    }
    /* Iterative over siblings would need a stack too; depth is bounded by
     * CONFIG_MAX_DEPTH so recursion is safe. */
    for (size_t i = 0; i < n->n; i++) {
        ynode_free(n->kids[i]);
    }
    free(n->kids);
    free(n->text);
    free(n);
}

static int ynode_add(struct ynode *parent, struct ynode *kid)
{
    if (parent->n == parent->cap) {
        size_t ncap = parent->cap == 0 ? 8 : parent->cap * 2;
        struct ynode **nk = realloc(parent->kids, ncap * sizeof(*nk));
        if (nk == NULL) {
            return VELO_ERR;
        }
        parent->kids = nk;
        parent->cap = ncap;
    }
    parent->kids[parent->n++] = kid;
    return VELO_OK;
}

static int ynode_is_null(const struct ynode *n)
{
    return n->kind == YN_SCALAR && n->plain && is_null_text(n->text);
}

static const char *kind_name(int kind)
{
    return kind == YN_MAP ? "a mapping" : kind == YN_SEQ ? "a list" : "a value";
}

/* Does the given line of buf start with a tab in its indentation? */
static int line_has_tab_indent(const char *buf, size_t len, size_t line)
{
    size_t i = 0;
    for (size_t l = 0; l < line && i < len; i++) {
        if (buf[i] == '\n') {
            l++;
        }
    }
    for (; i < len && (buf[i] == ' ' || buf[i] == '\t'); i++) {
        if (buf[i] == '\t') {
            return 1;
        }
    }
    return 0;
}

static struct ynode *yaml_build(struct load_ctx *c, const char *buf, size_t len)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        oom(c);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);

    struct ynode *root = NULL;
    struct ynode *stack[CONFIG_MAX_DEPTH];
    size_t depth = 0;
    int docs = 0;
    int failed = 0;
    int done = 0;
    struct origin o = {ORIG_FILE, c->name, 0, 0, NULL};

    while (!done && !failed) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            if (parser.error == YAML_MEMORY_ERROR) {
                oom(c);
            } else {
                o.line = (int)parser.problem_mark.line + 1;
                o.col = (int)parser.problem_mark.column + 1;
                const char *hint =
                    line_has_tab_indent(buf, len, parser.problem_mark.line)
                        ? "YAML indents with spaces, not tabs"
                        : "check the indentation and quoting near here";
                problem(c, &o, NULL, "YAML syntax error: %s%s%s (hint: %s)",
                        parser.problem != NULL ? parser.problem : "invalid",
                        parser.context != NULL ? " " : "",
                        parser.context != NULL ? parser.context : "", hint);
            }
            failed = 1;
            break;
        }
        o.line = (int)ev.start_mark.line + 1;
        o.col = (int)ev.start_mark.column + 1;
        struct ynode *node = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                problem(c, &o, NULL,
                        "a second YAML document (hint: one configuration "
                        "file holds one document; remove the '---')");
                failed = 1;
            }
            break;
        case YAML_ALIAS_EVENT:
            problem(c, &o, NULL,
                    "alias *%s (hint: aliases and merge keys are not "
                    "supported; repeat the value)",
                    (const char *)ev.data.alias.anchor);
            failed = 1;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            node = calloc(1, sizeof(*node));
            if (node == NULL) {
                oom(c);
                failed = 1;
                break;
            }
            node->line = o.line;
            node->col = o.col;
            if (ev.type == YAML_SCALAR_EVENT) {
                node->kind = YN_SCALAR;
                node->text_len = ev.data.scalar.length;
                node->text = malloc(node->text_len + 1);
                if (node->text == NULL) {
                    free(node);
                    oom(c);
                    failed = 1;
                    break;
                }
                memcpy(node->text, ev.data.scalar.value, node->text_len);
                node->text[node->text_len] = '\0';
                node->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            } else {
                node->kind =
                    ev.type == YAML_MAPPING_START_EVENT ? YN_MAP : YN_SEQ;
            }
            if (depth == 0) {
                if (root != NULL) {
                    ynode_free(node);
                    failed = 1;
                    break;
                }
                root = node;
            } else if (ynode_add(stack[depth - 1], node) != VELO_OK) {
                ynode_free(node);
                oom(c);
                failed = 1;
                break;
            }
            if (node->kind != YN_SCALAR) {
                if (depth == CONFIG_MAX_DEPTH) {
                    problem(c, &o, NULL,
                            "nested more than %d levels deep (hint: the "
                            "configuration is at most a few levels deep)",
                            CONFIG_MAX_DEPTH);
                    failed = 1;
                    break;
                }
                stack[depth++] = node;
            }
            break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            if (depth > 0) {
                depth--;
            }
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    if (failed) {
        ynode_free(root);
        return NULL;
    }
    return root;
}

struct keyref {
    const char *text;
    size_t idx;
};

static int keyref_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    int r = strcmp(x->text, y->text);
    if (r != 0) {
        return r;
    }
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* For each pair of a mapping, the line of an earlier pair with the same
 * key, or 0. Sorting keeps a hostile file with 100k keys from costing
 * n^2. @return malloc'd array, NULL on ENOMEM. */
static int *find_duplicates(const struct ynode *map)
{
    size_t pairs = map->n / 2;
    int *dup = calloc(pairs + 1, sizeof(*dup));
    struct keyref *refs = calloc(pairs + 1, sizeof(*refs));
    if (dup == NULL || refs == NULL) {
        free(dup);
        free(refs);
        return NULL;
    }
    size_t nrefs = 0;
    for (size_t i = 0; i < pairs; i++) {
        const struct ynode *k = map->kids[2 * i];
        if (k->kind == YN_SCALAR) {
            refs[nrefs].text = k->text;
            refs[nrefs].idx = i;
            nrefs++;
        }
    }
    qsort(refs, nrefs, sizeof(*refs), keyref_cmp);
    for (size_t i = 1; i < nrefs; i++) {
        size_t first = i - 1;
        while (first > 0 && strcmp(refs[first - 1].text, refs[i].text) == 0) {
            first--;
        }
        if (strcmp(refs[first].text, refs[i].text) == 0) {
            dup[refs[i].idx] = map->kids[2 * refs[first].idx]->line;
        }
    }
    free(refs);
    return dup;
}

static struct origin node_origin(const struct load_ctx *c,
                                 const struct ynode *n)
{
    struct origin o = {ORIG_FILE, c->name, n->line, n->col, NULL};
    return o;
}

static void walk_plugin_map(struct load_ctx *c, const char *plugin,
                            const struct ynode *map, const char *prefix);

static void walk_plugin_value(struct load_ctx *c, const char *plugin,
                              const char *key, const struct ynode *kn,
                              const struct ynode *vn)
{
    struct origin o = node_origin(c, kn);
    if (vn->kind == YN_MAP) {
        walk_plugin_map(c, plugin, vn, key);
    } else if (vn->kind == YN_SEQ) {
        struct origin vo = node_origin(c, vn);
        problem(c, &vo, NULL,
                "plugins.config.%s.%s: expects a value or a mapping, not a "
                "list (hint: write a list as one comma-separated string)",
                plugin, key);
    } else {
        set_plugin_kv(c, plugin, key, ynode_is_null(vn) ? "" : vn->text,
                      kn->line, &o);
    }
}

static void walk_plugin_map(struct load_ctx *c, const char *plugin,
                            const struct ynode *map, const char *prefix)
{
    int *dup = find_duplicates(map);
    if (dup == NULL) {
        oom(c);
        return;
    }
    for (size_t i = 0; i + 1 < map->n && !c->err.oom; i += 2) {
        const struct ynode *kn = map->kids[i];
        const struct ynode *vn = map->kids[i + 1];
        struct origin o = node_origin(c, kn);
        if (kn->kind != YN_SCALAR || kn->text[0] == '\0' ||
            strlen(kn->text) != kn->text_len) {
            problem(c, &o, NULL,
                    "plugins.config.%s: a key must be a non-empty plain "
                    "string",
                    plugin);
            continue;
        }
        char key[CONFIG_MAX_PATH];
        int kl = snprintf(key, sizeof(key), "%s%s%s", prefix,
                          prefix[0] != '\0' ? "." : "", kn->text);
        if (kl < 0 || (size_t)kl >= sizeof(key)) {
            problem(c, &o, NULL,
                    "plugins.config.%s: key is longer than %d characters",
                    plugin, CONFIG_MAX_PATH - 1);
            continue;
        }
        if (dup[i / 2] != 0) {
            problem(c, &o, NULL,
                    "plugins.config.%s.%s: duplicate key (first at line %d; "
                    "hint: keep one)",
                    plugin, key, dup[i / 2]);
            continue;
        }
        if (vn->kind == YN_SCALAR && strlen(vn->text) != vn->text_len) {
            struct origin vo = node_origin(c, vn);
            problem(c, &vo, NULL, "plugins.config.%s.%s: contains a NUL byte",
                    plugin, key);
            continue;
        }
        walk_plugin_value(c, plugin, key, kn, vn);
    }
    free(dup);
}

static void walk_plugins_config(struct load_ctx *c, const struct ynode *node)
{
    struct origin o = node_origin(c, node);
    if (ynode_is_null(node)) {
        return;
    }
    if (node->kind != YN_MAP) {
        problem(c, &o, "plugins.config",
                "expects a mapping of plugin names to their settings, not "
                "%s (hint: plugins.config: {kafka: {brokers: ...}})",
                kind_name(node->kind));
        return;
    }
    int *dup = find_duplicates(node);
    if (dup == NULL) {
        oom(c);
        return;
    }
    for (size_t i = 0; i + 1 < node->n && !c->err.oom; i += 2) {
        const struct ynode *kn = node->kids[i];
        const struct ynode *vn = node->kids[i + 1];
        struct origin ko = node_origin(c, kn);
        if (kn->kind != YN_SCALAR || !valid_plugin_name(kn->text) ||
            strlen(kn->text) != kn->text_len) {
            char q[96];
            quote_value(q, sizeof(q), kn->kind == YN_SCALAR ? kn->text : "");
            problem(c, &ko, "plugins.config",
                    "%s is not a plugin name (hint: plugin names use a-z, "
                    "0-9, '_' and '-')",
                    q);
            continue;
        }
        if (dup[i / 2] != 0) {
            problem(c, &ko, NULL,
                    "plugins.config.%s: duplicate key (first at line %d; "
                    "hint: merge the two)",
                    kn->text, dup[i / 2]);
            continue;
        }
        if (ynode_is_null(vn)) {
            continue;
        }
        if (vn->kind != YN_MAP) {
            struct origin vo = node_origin(c, vn);
            problem(c, &vo, NULL,
                    "plugins.config.%s: expects a mapping of settings, not "
                    "%s",
                    kn->text, kind_name(vn->kind));
            continue;
        }
        walk_plugin_map(c, kn->text, vn, "");
    }
    free(dup);
}

static void apply_node(struct load_ctx *c, const struct key_def *k,
                       const struct ynode *kn, const struct ynode *vn)
{
    struct origin ko = node_origin(c, kn);
    struct origin vo = node_origin(c, vn);
    const struct origin *prev = &c->origins[key_index(k)];
    if (prev->kind == ORIG_FILE) {
        problem(c, &ko, k->name, "set twice (first at line %d; hint: keep one)",
                prev->line);
        return;
    }
    if (k->type == KT_STRING_LIST) {
        if (vn->kind != YN_SEQ) {
            problem(c, &vo, k->name,
                    "expects a list, not %s (hint: write [/path/one, "
                    "/path/two] or one '- /path' per line)",
                    ynode_is_null(vn) ? "nothing" : kind_name(vn->kind));
            return;
        }
        if (vn->n > VELO_CONFIG_MAX_DIRS) {
            problem(c, &vo, k->name, "has %zu entries (hint: at most %d)",
                    vn->n, VELO_CONFIG_MAX_DIRS);
            return;
        }
        const char *items[VELO_CONFIG_MAX_DIRS];
        struct origin io[VELO_CONFIG_MAX_DIRS];
        for (size_t i = 0; i < vn->n; i++) {
            const struct ynode *it = vn->kids[i];
            io[i] = node_origin(c, it);
            if (it->kind != YN_SCALAR || strlen(it->text) != it->text_len) {
                problem(c, &io[i], k->name, "entry %zu must be a path, not %s",
                        i + 1, kind_name(it->kind));
                return;
            }
            items[i] = it->text;
        }
        apply_list(c, k, items, io, vn->n, &ko);
        return;
    }
    if (vn->kind != YN_SCALAR) {
        problem(c, &vo, k->name,
                "expects a single value, not %s (hint: write %s: <value>)",
                kind_name(vn->kind), last_part(k->name));
        return;
    }
    if (strlen(vn->text) != vn->text_len) {
        problem(c, &vo, k->name, "contains a NUL byte");
        return;
    }
    apply_scalar(c, k, vn->text, ynode_is_null(vn), &vo);
    if (c->origins[key_index(k)].kind == ORIG_FILE) {
        /* Duplicates are reported at the key; values at the value. */
        c->origins[key_index(k)] = ko;
    }
}

static void walk_map(struct load_ctx *c, const struct ynode *map,
                     const char *prefix)
{
    int *dup = find_duplicates(map);
    if (dup == NULL) {
        oom(c);
        return;
    }
    for (size_t i = 0; i + 1 < map->n && !c->err.oom; i += 2) {
        const struct ynode *kn = map->kids[i];
        const struct ynode *vn = map->kids[i + 1];
        struct origin o = node_origin(c, kn);
        if (kn->kind != YN_SCALAR || kn->text[0] == '\0' ||
            strlen(kn->text) != kn->text_len) {
            problem(c, &o, NULL,
                    "a key must be a non-empty plain string, not %s",
                    kind_name(kn->kind));
            continue;
        }
        char path[CONFIG_MAX_PATH];
        int pl = snprintf(path, sizeof(path), "%s%s%s", prefix,
                          prefix[0] != '\0' ? "." : "", kn->text);
        if (pl < 0 || (size_t)pl >= sizeof(path)) {
            unknown_key(c, &o, kn->text);
            continue;
        }
        if (dup[i / 2] != 0) {
            problem(c, &o, path,
                    "duplicate key (first at line %d; hint: "
                    "keep one)",
                    dup[i / 2]);
            continue;
        }
        if (strcmp(path, "plugins.config") == 0) {
            walk_plugins_config(c, vn);
            continue;
        }
        const struct key_def *k = find_key(path);
        if (k != NULL) {
            apply_node(c, k, kn, vn);
            continue;
        }
        if (is_section(path)) {
            if (ynode_is_null(vn)) {
                continue; /* "server:" with everything commented out */
            }
            if (vn->kind != YN_MAP) {
                char ks[512];
                section_keys(path, ks, sizeof(ks));
                struct origin vo = node_origin(c, vn);
                problem(c, &vo, path,
                        "is a section and expects a mapping, not %s (hint: "
                        "its keys are %s)",
                        kind_name(vn->kind), ks);
                continue;
            }
            walk_map(c, vn, path);
            continue;
        }
        unknown_key(c, &o, path);
    }
    free(dup);
}

static void parse_buffer(struct load_ctx *c, const char *buf, size_t len)
{
    struct origin o = {ORIG_FILE, c->name, 1, 1, NULL};
    if (len > CONFIG_MAX_BYTES) {
        problem(c, &o, NULL,
                "the file is %zu bytes, more than the %d allowed (hint: a "
                "configuration file is a few KiB; is this the right file?)",
                len, CONFIG_MAX_BYTES);
        return;
    }
    struct ynode *root = yaml_build(c, buf, len);
    if (root == NULL) {
        return; /* empty stream (comments only), or an error reported */
    }
    if (root->kind == YN_MAP) {
        walk_map(c, root, "");
    } else if (!ynode_is_null(root)) {
        o.line = root->line;
        o.col = root->col;
        problem(c, &o, NULL,
                "the top level must be a mapping of sections (server:, "
                "log:, http:, auth:, plugins:, license:), not %s",
                kind_name(root->kind));
    }
    ynode_free(root);
}

/* ------------------------------------------------------------------------
 * Environment and flags
 * ---------------------------------------------------------------------- */

static int has_config_prefix(const char *name)
{
    for (size_t i = 0; i < sizeof(env_prefixes) / sizeof(env_prefixes[0]);
         i++) {
        if (strncmp(name, env_prefixes[i], strlen(env_prefixes[i])) == 0) {
            return 1;
        }
    }
    return 0;
}

static void apply_env(struct load_ctx *c, char *const *envp)
{
    const char *values[N_KEYS] = {0};
    char(*env_names)[64] = c->env_names;
    for (size_t i = 0; i < N_KEYS; i++) {
        velo_config_env_name(keys[i].name, env_names[i], sizeof(env_names[i]));
    }
    for (size_t e = 0; envp != NULL && envp[e] != NULL; e++) {
        const char *entry = envp[e];
        if (strncmp(entry, "VELO_", 5) != 0) {
            continue;
        }
        const char *eq = strchr(entry, '=');
        if (eq == NULL) {
            continue;
        }
        size_t nl = (size_t)(eq - entry);
        char name[128];
        if (nl >= sizeof(name)) {
            nl = sizeof(name) - 1;
        }
        memcpy(name, entry, nl);
        name[nl] = '\0';
        int found = 0;
        for (size_t i = 0; i < N_KEYS; i++) {
            if (strcmp(name, env_names[i]) == 0) {
                values[i] = eq + 1;
                found = 1;
            }
        }
        if (found || strcmp(name, "VELO_CONFIG") == 0 ||
            !has_config_prefix(name)) {
            continue;
        }
        struct origin o = {ORIG_ENV, NULL, 0, 0, name};
        if (strncmp(name, "VELO_PLUGINS_CONFIG_", 20) == 0) {
            problem(c, &o, NULL,
                    "plugin settings cannot come from the environment (hint: "
                    "put them under plugins.config in the file, or use "
                    "--set plugins.config.<plugin>.<key>=value)");
            continue;
        }
        size_t best = SIZE_MAX, bi = 0;
        for (size_t i = 0; i < N_KEYS; i++) {
            size_t d = edit_distance(name, env_names[i]);
            if (d < best) {
                best = d;
                bi = i;
            }
        }
        size_t limit = strlen(name) / 3;
        if (best <= (limit < 2 ? 2 : limit)) {
            problem(c, &o, NULL,
                    "unknown configuration variable (did you mean %s, for "
                    "%s?)",
                    env_names[bi], keys[bi].name);
        } else {
            problem(c, &o, NULL,
                    "unknown configuration variable (hint: VELO_SERVER_*, "
                    "VELO_LOG_*, VELO_HTTP_*, VELO_AUTH_*, VELO_PLUGINS_* and "
                    "VELO_LICENSE_* name configuration keys; see "
                    "docs/configuration.md)");
        }
    }
    for (size_t i = 0; i < N_KEYS; i++) {
        if (values[i] == NULL) {
            continue;
        }
        /* env_names lives in the context, so the origin stays valid for
         * the cross-key checks. */
        struct origin o = {ORIG_ENV, NULL, 0, 0, env_names[i]};
        apply_text(c, &keys[i], values[i], &o);
    }
}

static void apply_sets(struct load_ctx *c, const char *const *sets,
                       size_t n_sets)
{
    struct origin o = {ORIG_FLAG, NULL, 0, 0, NULL};
    for (size_t s = 0; s < n_sets; s++) {
        const char *set = sets[s];
        if (set == NULL) {
            continue;
        }
        const char *eq = strchr(set, '=');
        char q[96];
        quote_value(q, sizeof(q), set);
        if (eq == NULL || eq == set) {
            problem(c, &o, NULL,
                    "%s is not key=value (hint: e.g. --set server.workers=4)",
                    q);
            continue;
        }
        size_t kl = (size_t)(eq - set);
        char key[CONFIG_MAX_PATH];
        if (kl >= sizeof(key)) {
            problem(c, &o, NULL, "%s: the key is too long", q);
            continue;
        }
        memcpy(key, set, kl);
        key[kl] = '\0';
        const char *value = eq + 1;
        if (strncmp(key, "plugins.config.", 15) == 0) {
            const char *plugin = key + 15;
            char *dot = strchr(plugin, '.');
            if (dot == NULL || dot[1] == '\0') {
                problem(c, &o, NULL,
                        "%s: expected plugins.config.<plugin>.<key>=value", q);
                continue;
            }
            *dot = '\0';
            if (!valid_plugin_name(plugin)) {
                problem(c, &o, NULL,
                        "%s: the plugin name uses a-z, 0-9, '_' and '-'", q);
                continue;
            }
            set_plugin_kv(c, plugin, dot + 1, value, 0, &o);
            continue;
        }
        const struct key_def *k = find_key(key);
        if (k != NULL) {
            apply_text(c, k, value, &o);
        } else if (is_section(key)) {
            char ks[512];
            section_keys(key, ks, sizeof(ks));
            problem(c, &o, key,
                    "is a section, not a key (hint: set one of "
                    "%s)",
                    ks);
        } else {
            unknown_key(c, &o, key);
        }
    }
}

/* Rules that span keys. */
static void cross_check(struct load_ctx *c)
{
    const struct velo_config *cfg = c->cfg;
    const struct key_def *en = find_key("http.tls.enabled");
    const struct origin *o = &c->origins[key_index(en)];
    if (cfg->http_tls_enabled) {
        if (cfg->http_tls_cert == NULL) {
            problem(c, o, "http.tls.enabled",
                    "TLS is on but http.tls.cert is not set (hint: set "
                    "http.tls.cert and http.tls.key to PEM files, or turn "
                    "TLS off)");
        }
        if (cfg->http_tls_key == NULL) {
            problem(c, o, "http.tls.enabled",
                    "TLS is on but http.tls.key is not set (hint: set "
                    "http.tls.cert and http.tls.key to PEM files, or turn "
                    "TLS off)");
        }
    }
}

/* ------------------------------------------------------------------------
 * Entry points
 * ---------------------------------------------------------------------- */

static int read_file(const char *path, char **out, size_t *len,
                     struct load_ctx *c)
{
    struct origin o = {ORIG_FILE, path, 1, 1, NULL};
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        err_add(&c->err,
                "%s: cannot read the configuration file: %s (hint: check the "
                "path given with -c/--config or $VELO_CONFIG)",
                path, strerror(errno));
        return VELO_ERR;
    }
    size_t cap = CONFIG_MAX_BYTES + 2;
    char *buf = malloc(cap);
    if (buf == NULL) {
        fclose(f);
        oom(c);
        return VELO_ERR;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    int rerr = ferror(f);
    int e = errno;
    fclose(f);
    if (rerr) {
        problem(c, &o, NULL, "cannot read the configuration file: %s",
                strerror(e));
        free(buf);
        return VELO_ERR;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return VELO_OK;
}

static int load_ctx_init(struct load_ctx *c, struct velo_config *tmp,
                         const char *name)
{
    memset(c, 0, sizeof(*c));
    c->cfg = tmp;
    c->name = name;
    if (velo_config_init(tmp) != VELO_OK) {
        return VELO_ERR;
    }
    return VELO_OK;
}

static int finish(struct load_ctx *c, struct velo_config *cfg, const char *path,
                  char *err, size_t errlen)
{
    if (c->err.n == 0 && !c->err.oom && path != NULL) {
        c->cfg->path = strdup(path);
        if (c->cfg->path == NULL) {
            oom(c);
        }
    }
    if (c->err.n > 0 || c->err.oom) {
        err_export(&c->err, err, errlen);
        free(c->err.buf);
        velo_config_free(c->cfg);
        return VELO_ERR;
    }
    free(c->err.buf);
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    velo_config_free(cfg);
    *cfg = *c->cfg;
    return VELO_OK;
}

int velo_config_load(struct velo_config *cfg, const char *path,
                     char *const *envp, const char *const *sets, size_t n_sets,
                     char *err, size_t errlen)
{
    struct velo_config tmp;
    struct load_ctx c;
    if (load_ctx_init(&c, &tmp, path) != VELO_OK) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen,
                     "out of memory while reading the "
                     "configuration");
        }
        return VELO_ERR;
    }
    if (path != NULL) {
        char *buf = NULL;
        size_t len = 0;
        if (read_file(path, &buf, &len, &c) == VELO_OK) {
            if (len > CONFIG_MAX_BYTES) {
                struct origin o = {ORIG_FILE, path, 1, 1, NULL};
                problem(&c, &o, NULL,
                        "the file is larger than %d bytes (hint: a "
                        "configuration file is a few KiB; is this the right "
                        "file?)",
                        CONFIG_MAX_BYTES);
            } else {
                parse_buffer(&c, buf, len);
            }
            free(buf);
        }
    }
    apply_env(&c, envp != NULL ? envp : environ);
    apply_sets(&c, sets, sets != NULL ? n_sets : 0);
    cross_check(&c);
    return finish(&c, cfg, path, err, errlen);
}

int velo_config_load_buffer(struct velo_config *cfg, const char *name,
                            const char *buf, size_t len, char *err,
                            size_t errlen)
{
    struct velo_config tmp;
    struct load_ctx c;
    if (name == NULL) {
        name = "<buffer>";
    }
    if (load_ctx_init(&c, &tmp, name) != VELO_OK) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen,
                     "out of memory while reading the "
                     "configuration");
        }
        return VELO_ERR;
    }
    parse_buffer(&c, buf != NULL ? buf : "", buf != NULL ? len : 0);
    cross_check(&c);
    return finish(&c, cfg, name, err, errlen);
}

/* ------------------------------------------------------------------------
 * Diff
 * ---------------------------------------------------------------------- */

struct outbuf {
    char *buf;
    size_t cap, len;
};

static void out_line(struct outbuf *o, const char *fmt, ...) VELO_PRINTF(2, 3);
static void out_line(struct outbuf *o, const char *fmt, ...)
{
    if (o->buf == NULL || o->cap == 0 || o->len + 1 >= o->cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (w < 0) {
        return;
    }
    if ((size_t)w >= o->cap - o->len) {
        o->len = o->cap - 1; /* truncated */
    } else {
        o->len += (size_t)w;
    }
}

static const struct velo_config_kv *find_kv(const struct velo_config *cfg,
                                            const struct velo_config_kv *kv)
{
    for (size_t i = 0; i < cfg->n_plugin_kv; i++) {
        if (strcmp(cfg->plugin_kv[i].plugin, kv->plugin) == 0 &&
            strcmp(cfg->plugin_kv[i].key, kv->key) == 0) {
            return &cfg->plugin_kv[i];
        }
    }
    return NULL;
}

int velo_config_diff(const struct velo_config *a, const struct velo_config *b,
                     char *out, size_t outlen)
{
    struct outbuf o = {out, outlen, 0};
    if (out != NULL && outlen > 0) {
        out[0] = '\0';
    }
    int n = 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        char va[1024], vb[1024];
        format_key(a, &keys[i], va, sizeof(va));
        format_key(b, &keys[i], vb, sizeof(vb));
        if (strcmp(va, vb) != 0) {
            out_line(&o, "%s: %s -> %s%s\n", keys[i].name, va, vb,
                     (keys[i].flags & KF_RESTART) ? " (restart needed)" : "");
            n++;
        }
    }
    /* Plugin settings may hold passwords: name the key, never the value.
     * Plugins are loaded once, so a change needs a restart. */
    for (size_t i = 0; i < a->n_plugin_kv; i++) {
        const struct velo_config_kv *kv = &a->plugin_kv[i];
        const struct velo_config_kv *other = find_kv(b, kv);
        if (other == NULL) {
            out_line(&o,
                     "plugins.config.%s.%s: *** -> (unset) (restart "
                     "needed)\n",
                     kv->plugin, kv->key);
            n++;
        } else if (strcmp(other->value, kv->value) != 0) {
            out_line(&o,
                     "plugins.config.%s.%s: *** -> *** (restart "
                     "needed)\n",
                     kv->plugin, kv->key);
            n++;
        }
    }
    for (size_t i = 0; i < b->n_plugin_kv; i++) {
        const struct velo_config_kv *kv = &b->plugin_kv[i];
        if (find_kv(a, kv) == NULL) {
            out_line(&o,
                     "plugins.config.%s.%s: (unset) -> *** (restart "
                     "needed)\n",
                     kv->plugin, kv->key);
            n++;
        }
    }
    return n;
}
