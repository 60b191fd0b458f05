/*
 * PostgreSQL introspection for tools and the Studio (velo inspect):
 *   "list"     every table, view and foreign table outside the system
 *              schemas: [{"schema","table","kind","columns":[{"name",
 *              "type","nullable"}]}], ordered by schema and name;
 *   "describe" one of them (arg: "table" or "schema.table", as SQL reads
 *              it): the same object plus "primary_key" (column names) and
 *              "rows_estimate" (the planner's, -1 when never analyzed).
 * The server builds the JSON (json_build_object), so names and types come
 * out exactly as the catalog has them; the table name goes in as a
 * parameter (to_regclass), never spliced into the statement.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg-internal.h"

/* Columns of relation c as a JSON array (c is the pg_class alias). */
#define PG_COLUMNS_JSON                                                        \
    "coalesce((SELECT json_agg(json_build_object('name', a.attname, "          \
    "'type', format_type(a.atttypid, a.atttypmod), 'nullable', NOT "           \
    "a.attnotnull) ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid "   \
    "= c.oid AND a.attnum > 0 AND NOT a.attisdropped), '[]'::json)"

#define PG_KIND_JSON                                                           \
    "CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' "   \
    "WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' ELSE "    \
    "'table' END"

static const char pg_list_sql[] =
    "SELECT coalesce(json_agg(json_build_object('schema', n.nspname, "
    "'table', c.relname, 'kind', " PG_KIND_JSON ", 'columns', " PG_COLUMNS_JSON
    ") ORDER BY n.nspname, c.relname), '[]'::json)::text "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
    "c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN "
    "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' "
    "AND NOT c.relispartition";

static const char pg_describe_sql[] =
    "SELECT json_build_object('schema', n.nspname, 'table', c.relname, "
    "'kind', " PG_KIND_JSON ", 'columns', " PG_COLUMNS_JSON ", "
    "'primary_key', coalesce((SELECT json_agg(a.attname ORDER BY k.ord) "
    "FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY "
    "AS k(attnum, ord) JOIN pg_attribute a ON a.attrelid = i.indrelid AND "
    "a.attnum = k.attnum WHERE i.indrelid = c.oid AND i.indisprimary), "
    "'[]'::json), 'rows_estimate', c.reltuples::bigint)::text FROM pg_class "
    "c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = "
    "to_regclass($1)";

/* pg_target_init reports through the host's log; for introspection the
 * first error is captured into the caller's buffer instead. */
static const struct velo_host_api *pg_host;
static _Thread_local char *pg_cap;
static _Thread_local size_t pg_cap_len;

static void pg_cap_vlog(const struct velo_instance *ins, int level,
                        const char *fmt, va_list ap)
{
    (void)ins;
    if (level == VELO_LOG_ERROR && pg_cap != NULL && pg_cap[0] == '\0') {
        vsnprintf(pg_cap, pg_cap_len, fmt, ap);
    }
}

static void pg_cap_log(const struct velo_instance *ins, int level,
                       const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pg_cap_vlog(ins, level, fmt, ap);
    va_end(ap);
}

static int pg_cap_enabled(int level)
{
    return level == VELO_LOG_ERROR;
}

void pg_introspect_host(const struct velo_host_api *host)
{
    pg_host = host;
}

int pg_introspect(const void *config, const struct velo_connector_ctx *ctx,
                  const char *what, const char *arg, char **out, char *err,
                  size_t errlen)
{
    const struct pg_conf *conf = config;
    *out = NULL;
    err[0] = '\0';
    int describe = strcmp(what, "describe") == 0;
    if (!describe && strcmp(what, "list") != 0) {
        snprintf(err, errlen,
                 "PostgreSQL answers 'list' and 'describe TABLE', not '%s'",
                 what);
        return VELO_DECLINED;
    }
    if (describe && (arg == NULL || *arg == '\0')) {
        snprintf(err, errlen,
                 "describe needs a table: describe "
                 "[schema.]table");
        return VELO_ERR;
    }
    struct velo_host_api host;
    memset(&host, 0, sizeof(host));
    if (pg_host != NULL) {
        memcpy(&host, pg_host,
               pg_host->size < sizeof(host) ? pg_host->size : sizeof(host));
    }
    host.size = sizeof(host);
    host.log = pg_cap_log;
    host.vlog = pg_cap_vlog;
    host.log_enabled = pg_cap_enabled;
    struct velo_instance ins = {&host, "postgres:inspect", NULL};
    struct pg_target t;
    pg_cap = err;
    pg_cap_len = errlen;
    int rc = pg_target_init(&ins, conf, ctx, &t);
    pg_cap = NULL;
    if (rc != VELO_OK) {
        return VELO_ERR;
    }
    char msg[512];
    PGconn *c = pg_connect(conf, &t, msg, sizeof(msg));
    if (c == NULL) {
        snprintf(err, errlen, "cannot connect to %s: %s", t.redacted, msg);
        pg_target_free(&t);
        return VELO_ERR;
    }
    const char *pv[1] = {arg};
    PGresult *r =
        describe ? PQexecParams(c, pg_describe_sql, 1, NULL, pv, NULL, NULL, 0)
                 : PQexec(c, pg_list_sql);
    rc = VELO_ERR;
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_result_message(c, r, msg, sizeof(msg));
        snprintf(err, errlen, "%s: %s: %s", t.redacted,
                 describe ? "describing the table" : "listing tables", msg);
    } else if (PQntuples(r) == 0) {
        snprintf(err, errlen,
                 "%s: no table, view or foreign table named %s (names are "
                 "read as SQL does: quote \"MixedCase\")",
                 t.redacted, arg);
    } else {
        *out = strdup(PQgetvalue(r, 0, 0));
        if (*out == NULL) {
            snprintf(err, errlen, "out of memory");
        } else {
            rc = VELO_OK;
        }
    }
    PQclear(r);
    PQfinish(c);
    pg_target_free(&t);
    return rc;
}
