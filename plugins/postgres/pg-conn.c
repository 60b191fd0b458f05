/*
 * PostgreSQL connector: URI and property resolution, password redaction,
 * connecting, and small helpers shared by the source and the sink.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>

#include "pg-internal.h"

/* ---- buffers ------------------------------------------------------------ */

int pg_buf_reserve(struct pg_buf *b, size_t more)
{
    if (b->len + more <= b->cap) {
        return VELO_OK;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more) {
        cap *= 2;
    }
    char *nd = realloc(b->data, cap);
    if (nd == NULL) {
        return VELO_ERR;
    }
    b->data = nd;
    b->cap = cap;
    return VELO_OK;
}

int pg_buf_add(struct pg_buf *b, const char *s, size_t n)
{
    if (n >= SIZE_MAX / 2 - b->len || pg_buf_reserve(b, n + 1) != VELO_OK) {
        return VELO_ERR;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return VELO_OK;
}

int pg_buf_adds(struct pg_buf *b, const char *s)
{
    return pg_buf_add(b, s, strlen(s));
}

int pg_buf_json_str(struct pg_buf *b, const char *s, size_t n)
{
    /* Worst case every byte becomes \u00XX. */
    if (pg_buf_reserve(b, n * 6 + 3) != VELO_OK) {
        return VELO_ERR;
    }
    static const char hex[] = "0123456789abcdef";
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (c == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (c == '\r') {
            *o++ = '\\';
            *o++ = 'r';
        } else if (c < 0x20) {
            memcpy(o, "\\u00", 4);
            o += 4;
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    return VELO_OK;
}

void pg_buf_free(struct pg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int64_t pg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pg_timer_at(struct event *ev, int64_t due)
{
    int64_t left = due - pg_now_ms();
    if (left < 1) {
        left = 1;
    }
    struct timeval tv = {(time_t)(left / 1000),
                         (suseconds_t)(left % 1000) * 1000};
    return evtimer_add(ev, &tv) == 0 ? 0 : -1;
}

/* ---- URI ---------------------------------------------------------------- */

/* Velostream's own parameters in a postgres:// query string; libpq would
 * refuse them, so they are taken out before it sees the URI. */
static const char *const pg_velo_params[] = {
    "table", "query", "mode", "key", "create.table", "batch.size", NULL};

static int pg_is_velo_param(const char *k, size_t n)
{
    for (size_t i = 0; pg_velo_params[i] != NULL; i++) {
        if (strlen(pg_velo_params[i]) == n &&
            strncmp(pg_velo_params[i], k, n) == 0) {
            return 1;
        }
    }
    return 0;
}

static int pg_hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Percent-decoded copy of s[0..n) ('+' stays '+', as libpq reads it). */
static char *pg_pct_decode(const char *s, size_t n)
{
    char *o = malloc(n + 1);
    if (o == NULL) {
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && pg_hexval(s[i + 1]) >= 0 &&
            pg_hexval(s[i + 2]) >= 0) {
            o[k++] = (char)(pg_hexval(s[i + 1]) * 16 + pg_hexval(s[i + 2]));
            i += 2;
        } else {
            o[k++] = s[i];
        }
    }
    o[k] = '\0';
    return o;
}

/* The URI with the password masked: in user:pass@ and in password=...
 * (query parameter or key/value conninfo). Never fails: on no memory it
 * says so instead of showing anything. */
static char *pg_redact(const char *uri)
{
    struct pg_buf b = {0};
    const char *p = uri;
    const char *sep = strstr(uri, "://");
    if (sep != NULL) {
        const char *auth = sep + 3;
        size_t alen = strcspn(auth, "/?#");
        const char *at = NULL;
        for (size_t i = 0; i < alen; i++) {
            if (auth[i] == '@') {
                at = auth + i;
            }
        }
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon != NULL) {
            pg_buf_add(&b, uri, (size_t)(colon + 1 - uri));
            pg_buf_adds(&b, "***");
            p = at;
        }
    }
    /* password=value anywhere after that point */
    while (*p != '\0') {
        const char *hit = strstr(p, "password");
        if (hit == NULL) {
            pg_buf_adds(&b, p);
            break;
        }
        const char *q = hit + 8;
        while (*q == ' ') {
            q++;
        }
        int is_kv = *q == '=' && (hit == uri || hit[-1] == '?' ||
                                  hit[-1] == '&' || hit[-1] == ' ');
        if (!is_kv) {
            pg_buf_add(&b, p, (size_t)(q - p));
            p = q;
            continue;
        }
        q++;
        pg_buf_add(&b, p, (size_t)(q - p));
        pg_buf_adds(&b, "***");
        while (*q == ' ') {
            q++;
        }
        if (*q == '\'') {
            q++;
            while (*q != '\0' && *q != '\'') {
                q += (*q == '\\' && q[1] != '\0') ? 2 : 1;
            }
            if (*q == '\'') {
                q++;
            }
        } else {
            q += strcspn(q, " &#");
        }
        p = q;
    }
    if (b.data == NULL) {
        return strdup("(the connection URI)");
    }
    return b.data;
}

static int pg_prop_given(const struct velo_connector_ctx *ctx, const char *key)
{
    for (size_t i = 0; i < ctx->nprops; i++) {
        if (ctx->props[i].key != NULL && strcmp(ctx->props[i].key, key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* An empty value (the config map's default for "none") stores NULL. */
static int pg_set(char **dst, const char *v)
{
    free(*dst);
    if (v != NULL && *v == '\0') {
        v = NULL;
    }
    *dst = v != NULL ? strdup(v) : NULL;
    return v == NULL || *dst != NULL ? VELO_OK : VELO_ERR;
}

static int pg_parse_bool(const char *v, int *out)
{
    if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 ||
        strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0) {
        *out = 1;
        return VELO_OK;
    }
    if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 ||
        strcasecmp(v, "no") == 0 || strcasecmp(v, "off") == 0) {
        *out = 0;
        return VELO_OK;
    }
    return VELO_ERR;
}

/* One velo parameter from the URI's query string, unless the same
 * property was given (properties win). */
static int pg_uri_param(struct velo_instance *ins,
                        const struct velo_connector_ctx *ctx,
                        struct pg_target *t, const char *k, size_t kn, char *v)
{
    char key[32];
    snprintf(key, sizeof(key), "%.*s", (int)kn, k);
    if (pg_prop_given(ctx, key)) {
        return VELO_OK;
    }
    if (strcmp(key, "table") == 0) {
        return pg_set(&t->table, v);
    }
    if (strcmp(key, "query") == 0) {
        return pg_set(&t->query, v);
    }
    if (strcmp(key, "mode") == 0) {
        return pg_set(&t->mode, v);
    }
    if (strcmp(key, "key") == 0) {
        return pg_set(&t->key, v);
    }
    if (strcmp(key, "create.table") == 0) {
        if (pg_parse_bool(v, &t->create_table) != VELO_OK) {
            velo_plg_error(ins,
                           "URI parameter create.table=%s: write true "
                           "or false",
                           v);
            return VELO_ERR;
        }
        return VELO_OK;
    }
    /* batch.size */
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || n <= 0 || n > 100000000) {
        velo_plg_error(ins,
                       "URI parameter batch.size=%s: write a positive "
                       "number of rows",
                       v);
        return VELO_ERR;
    }
    t->batch_size = n;
    return VELO_OK;
}

int pg_target_init(struct velo_instance *ins, const struct pg_conf *conf,
                   const struct velo_connector_ctx *ctx, struct pg_target *t)
{
    memset(t, 0, sizeof(*t));
    const char *uri = ctx->uri != NULL ? ctx->uri : conf->url;
    if (uri == NULL || *uri == '\0') {
        velo_plg_error(ins,
                       "no connection: give a postgres:// URI in FROM "
                       "or INTO, or '%s.url' = 'postgres://user@host:"
                       "5432/db'",
                       ctx->name ? ctx->name : "x");
        return VELO_ERR;
    }
    t->create_table = conf->create_table;
    t->batch_size = conf->batch_size;
    if (pg_set(&t->table, conf->table) != VELO_OK ||
        pg_set(&t->query, conf->query) != VELO_OK ||
        pg_set(&t->mode, conf->mode) != VELO_OK ||
        pg_set(&t->key, conf->key) != VELO_OK) {
        goto oom;
    }
    t->redacted = pg_redact(uri);
    if (t->redacted == NULL) {
        goto oom;
    }
    const char *q = strstr(uri, "://") != NULL ? strchr(uri, '?') : NULL;
    if (q == NULL) {
        /* No query string, or a key=value conninfo: libpq takes it as is. */
        t->conninfo = strdup(uri);
        if (t->conninfo == NULL) {
            goto oom;
        }
        return VELO_OK;
    }
    struct pg_buf ci = {0};
    if (pg_buf_add(&ci, uri, (size_t)(q - uri)) != VELO_OK) {
        goto oom;
    }
    char sepc = '?';
    const char *p = q + 1;
    while (*p != '\0') {
        size_t n = strcspn(p, "&#");
        const char *eq = memchr(p, '=', n);
        size_t kn = eq ? (size_t)(eq - p) : n;
        if (n > 0 && pg_is_velo_param(p, kn)) {
            char *v = eq ? pg_pct_decode(eq + 1, n - kn - 1) : strdup("");
            int rc = v != NULL ? pg_uri_param(ins, ctx, t, p, kn, v) : VELO_ERR;
            free(v);
            if (rc != VELO_OK) {
                pg_buf_free(&ci);
                pg_target_free(t);
                return VELO_ERR;
            }
        } else if (n > 0) {
            if (pg_buf_add(&ci, &sepc, 1) != VELO_OK ||
                pg_buf_add(&ci, p, n) != VELO_OK) {
                pg_buf_free(&ci);
                goto oom;
            }
            sepc = '&';
        }
        p += n;
        if (*p == '#') {
            break;
        }
        if (*p == '&') {
            p++;
        }
    }
    t->conninfo = ci.data;
    return VELO_OK;
oom:
    velo_plg_error(ins, "out of memory");
    pg_target_free(t);
    return VELO_ERR;
}

void pg_target_free(struct pg_target *t)
{
    free(t->conninfo);
    free(t->redacted);
    free(t->table);
    free(t->query);
    free(t->mode);
    free(t->key);
    memset(t, 0, sizeof(*t));
}

/* ---- connections -------------------------------------------------------- */

void pg_message(const char *msg, char *err, size_t errlen)
{
    if (msg == NULL || *msg == '\0') {
        msg = "unknown error";
    }
    /* libpq's messages end in newlines and may span lines (DETAIL, HINT):
     * keep them on one line for the log. */
    size_t o = 0;
    int space = 0;
    for (const char *p = msg; *p != '\0' && o + 1 < errlen; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t') {
            space = 1;
            continue;
        }
        if (space && o > 0) {
            err[o++] = ' ';
            if (o + 1 >= errlen) {
                break;
            }
        }
        space = 0;
        err[o++] = *p;
    }
    err[o] = '\0';
}

void pg_result_message(PGconn *conn, const PGresult *res, char *err,
                       size_t errlen)
{
    const char *primary =
        res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (primary == NULL) {
        /* libpq's own failure: its message, on one line. */
        pg_message(res && *PQresultErrorMessage(res) ? PQresultErrorMessage(res)
                                                     : PQerrorMessage(conn),
                   err, errlen);
        return;
    }
    /* The server's message without the caret excerpt of the statement. */
    const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
    const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s%s%s%s", primary, detail ? " (" : "",
             detail ? detail : "", detail ? ")" : "");
    if (hint != NULL) {
        size_t n = strlen(tmp);
        snprintf(tmp + n, sizeof(tmp) - n, "; hint: %s", hint);
    }
    pg_message(tmp, err, errlen);
}

static PGconn *pg_connect_kw(const struct pg_conf *conf,
                             const struct pg_target *t, int replication,
                             int start, char *err, size_t errlen)
{
    char timeout[32], options[96];
    /* libpq counts whole seconds; at least 2 (it treats 1 as 2). */
    long secs = (long)((conf->connect_timeout + 999) / 1000);
    snprintf(timeout, sizeof(timeout), "%ld", secs < 2 ? 2L : secs);
    /* Fixed session settings make the text the source emits and the
     * sink's reading of timestamps the same on every server. */
    snprintf(options, sizeof(options),
             "-c TimeZone=UTC -c DateStyle=ISO,YMD -c statement_timeout=%lld",
             (long long)conf->statement_timeout);
    /* Settings before dbname are defaults the URI may override; the
     * password property comes after, so it wins over the URI's. */
    const char *kw[10];
    const char *val[10];
    int i = 0;
    kw[i] = "connect_timeout";
    val[i++] = timeout;
    kw[i] = "application_name";
    val[i++] = conf->application_name ? conf->application_name : "velostream";
    kw[i] = "options";
    val[i++] = options;
    kw[i] = "dbname";
    val[i++] = t->conninfo;
    kw[i] = "client_encoding";
    val[i++] = "UTF8";
    if (conf->password != NULL && *conf->password != '\0') {
        kw[i] = "password";
        val[i++] = conf->password;
    }
    if (replication) {
        kw[i] = "replication";
        val[i++] = "database";
    }
    kw[i] = NULL;
    val[i] = NULL;
    PGconn *c = start ? PQconnectStartParams(kw, val, 1)
                      : PQconnectdbParams(kw, val, 1);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (PQstatus(c) == CONNECTION_BAD ||
        (!start && PQstatus(c) != CONNECTION_OK)) {
        pg_message(PQerrorMessage(c), err, errlen);
        PQfinish(c);
        return NULL;
    }
    return c;
}

PGconn *pg_connect(const struct pg_conf *conf, const struct pg_target *t,
                   char *err, size_t errlen)
{
    return pg_connect_kw(conf, t, 0, 0, err, errlen);
}

PGconn *pg_connect_start(const struct pg_conf *conf, const struct pg_target *t,
                         char *err, size_t errlen)
{
    return pg_connect_kw(conf, t, 0, 1, err, errlen);
}

PGconn *pg_connect_replication(const struct pg_conf *conf,
                               const struct pg_target *t, char *err,
                               size_t errlen)
{
    return pg_connect_kw(conf, t, 1, 0, err, errlen);
}

PGconn *pg_connect_replication_start(const struct pg_conf *conf,
                                     const struct pg_target *t, char *err,
                                     size_t errlen)
{
    return pg_connect_kw(conf, t, 1, 1, err, errlen);
}

int pg_conn_lost(PGconn *conn, const PGresult *res)
{
    if (res == NULL || PQstatus(conn) == CONNECTION_BAD) {
        return 1;
    }
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (st == NULL) {
        /* libpq's own failure ("server closed the connection
         * unexpectedly"): libpq may not have marked the connection bad
         * yet when a write failed first. Reconnecting is harmless; the
         * sink bounds how often it replays. */
        return PQresultStatus(res) == PGRES_FATAL_ERROR;
    }
    /* 08: connection exception; 57P0x: the server is shutting down or an
     * administrator ended the backend. */
    return strncmp(st, "08", 2) == 0 || strncmp(st, "57P0", 4) == 0;
}

char *pg_quote_qualified(PGconn *conn, const char *name)
{
    struct pg_buf b = {0};
    const char *p = name;
    for (;;) {
        size_t n = strcspn(p, ".");
        char *q = PQescapeIdentifier(conn, p, n);
        if (q == NULL) {
            pg_buf_free(&b);
            return NULL;
        }
        int rc = pg_buf_adds(&b, q);
        PQfreemem(q);
        if (rc != VELO_OK) {
            pg_buf_free(&b);
            return NULL;
        }
        if (p[n] != '.') {
            break;
        }
        if (pg_buf_add(&b, ".", 1) != VELO_OK) {
            pg_buf_free(&b);
            return NULL;
        }
        p += n + 1;
    }
    return b.data;
}
