/*
 * PostgreSQL lookups (stream-table joins): rows of a table fetched by the
 * values of one key column, a batch of keys per statement.
 *
 * The statement is prepared once:
 *   SELECT k.i, row_to_json(t)::text
 *     FROM unnest($1::text[]) WITH ORDINALITY AS k(v, i)
 *     JOIN <table> t ON t.<key> = k.v::<key type>
 * The keys travel as one text[] parameter (never spliced into the text);
 * the cast to the column's own type lets an index on the key serve the
 * join, and the ordinality says which probe each row answers. The row is
 * PostgreSQL's row_to_json: numbers and booleans as JSON numbers and
 * booleans, timestamps as ISO 8601 text.
 *
 * lookup_get sends the prepared statement with PQsendQueryPrepared on the
 * nonblocking connection and runs the worker's loop (EVLOOP_ONCE, which
 * the engine allows here: it never calls a connector from a loop
 * callback) until the answer is in, bounded by statement.timeout plus
 * connect.timeout; other connectors' events run meanwhile. The join
 * operator caches answers. A connection lost between calls is reopened
 * (a blocking connect, bounded by connect.timeout) once per call.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "pg-internal.h"

#define PG_LOOKUP_STMT "velo_lookup"

struct pg_lookup {
    struct pg_target t;
    const struct pg_conf *conf;
    char *sql;
    PGconn *conn;
    PGresult *res;       /* the last answer: payloads point into it */
    struct pg_buf param; /* the text[] literal of the keys */
    int *row_of;         /* per probe: row of res, or -1 */
    size_t row_cap;
    struct event_base *base; /* NULL: an engine without a loop */
    struct event *ev;        /* the socket, while an answer is awaited */
    short ev_flags;
    struct event *timer; /* bounds one wait of the loop */
    int ready;           /* the socket became readable */
};

static void pg_lookup_free(struct pg_lookup *l)
{
    if (l == NULL) {
        return;
    }
    PQclear(l->res);
    if (l->ev != NULL) {
        event_free(l->ev);
    }
    if (l->timer != NULL) {
        event_free(l->timer);
    }
    if (l->conn != NULL) {
        PQfinish(l->conn);
    }
    free(l->sql);
    free(l->row_of);
    pg_buf_free(&l->param);
    pg_target_free(&l->t);
    free(l);
}

/* Connect and prepare. @return VELO_OK or VELO_ERR with err. */
static int pg_lookup_open(struct pg_lookup *l, char *err, size_t errlen)
{
    l->conn = pg_connect(l->conf, &l->t, err, errlen);
    if (l->conn == NULL) {
        return VELO_ERR;
    }
    PGresult *r = PQprepare(l->conn, PG_LOOKUP_STMT, l->sql, 1, NULL);
    int ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        pg_result_message(l->conn, r, err, errlen);
    }
    PQclear(r);
    if (ok && PQsetnonblocking(l->conn, 1) != 0) {
        pg_message(PQerrorMessage(l->conn), err, errlen);
        ok = 0;
    }
    return ok ? VELO_OK : VELO_ERR;
}

static void pg_lookup_on_io(evutil_socket_t fd, short what, void *arg)
{
    struct pg_lookup *l = arg;
    (void)fd;
    (void)what;
    l->ready = 1;
}

/* Wait until the socket is readable (or writable, while libpq has unsent
 * output) or `ms` passed: on the worker's loop, or with poll() for an
 * engine without one. */
static void pg_lookup_wait(struct pg_lookup *l, int64_t ms, int want_write)
{
    if (l->base == NULL) {
        struct pollfd p = {.fd = PQsocket(l->conn),
                           .events =
                               (short)(POLLIN | (want_write ? POLLOUT : 0))};
        poll(&p, 1, (int)(ms > 1000 ? 1000 : ms));
        return;
    }
    short flags = (short)(EV_READ | EV_PERSIST | (want_write ? EV_WRITE : 0));
    if (l->ev != NULL && l->ev_flags != flags) {
        event_free(l->ev);
        l->ev = NULL;
    }
    if (l->ev == NULL) {
        l->ev_flags = flags;
        l->ev =
            event_new(l->base, PQsocket(l->conn), flags, pg_lookup_on_io, l);
        l->timer =
            l->timer ? l->timer : evtimer_new(l->base, pg_lookup_on_io, l);
        if (l->ev == NULL || l->timer == NULL) {
            poll(NULL, 0, 10); /* no memory for events: wait a little */
            return;
        }
        event_add(l->ev, NULL);
    }
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(l->timer, &tv);
    l->ready = 0;
    while (!l->ready) {
        if (event_base_loop(l->base, EVLOOP_ONCE) != 0) {
            break; /* the loop failed: the caller's deadline decides */
        }
    }
    evtimer_del(l->timer);
}

/* Run the prepared lookup with the keys' parameter, waiting on the loop.
 * @return the result (the caller checks it), or NULL (libpq's message in
 * the connection; err set when it timed out). */
static PGresult *pg_lookup_run(struct pg_lookup *l, char *err, size_t errlen)
{
    const char *pv[1] = {l->param.data};
    err[0] = '\0';
    if (!PQsendQueryPrepared(l->conn, PG_LOOKUP_STMT, 1, pv, NULL, NULL, 0)) {
        return NULL;
    }
    int64_t limit = l->conf->statement_timeout > 0
                        ? l->conf->statement_timeout + l->conf->connect_timeout
                        : 300000;
    int64_t deadline = pg_now_ms() + limit;
    PGresult *res = NULL;
    for (;;) {
        int f = PQflush(l->conn);
        if (f < 0 || PQconsumeInput(l->conn) == 0) {
            break;
        }
        if (!PQisBusy(l->conn)) {
            PGresult *r = PQgetResult(l->conn);
            if (r == NULL) {
                break; /* the statement's results are all in */
            }
            if (res == NULL) {
                res = r;
            } else {
                PQclear(r);
            }
            continue;
        }
        int64_t left = deadline - pg_now_ms();
        if (left <= 0) {
            snprintf(err, errlen, "no answer within %lld ms", (long long)limit);
            /* The connection is in an unknown state: start over. */
            PQclear(res);
            res = NULL;
            PQfinish(l->conn);
            l->conn = NULL;
            break;
        }
        pg_lookup_wait(l, left, f == 1);
    }
    if (l->ev != NULL) {
        /* Only watched while waiting: an idle closed socket would stay
         * readable and spin the loop. */
        event_free(l->ev);
        l->ev = NULL;
    }
    return res;
}

int pg_lookup_create(struct velo_instance *ins, const void *config,
                     const struct velo_connector_ctx *ctx, const char *key)
{
    const struct pg_conf *conf = config;
    struct pg_lookup *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    l->conf = conf;
    l->base = ctx->base;
    if (pg_target_init(ins, conf, ctx, &l->t) != VELO_OK) {
        free(l);
        return VELO_ERR;
    }
    const char *name = ctx->name ? ctx->name : "x";
    if (l->t.table == NULL) {
        velo_plg_error(ins,
                       "%s: a lookup reads a table: set '%s.table' (or "
                       "?table= in the URI)",
                       l->t.redacted, name);
        goto fail;
    }
    if (key == NULL || *key == '\0') {
        velo_plg_error(ins, "%s: a lookup needs the key column", l->t.redacted);
        goto fail;
    }
    char err[512];
    PGconn *c = pg_connect(conf, &l->t, err, sizeof(err));
    if (c == NULL) {
        velo_plg_error(ins, "cannot connect to %s: %s", l->t.redacted, err);
        goto fail;
    }
    /* The key column's type, from the catalog (and whether the table and
     * column exist at all: a clear error now rather than at the first
     * probe). */
    char *qt = pg_quote_qualified(c, l->t.table);
    const char *pv[2] = {qt, key};
    PGresult *r = qt == NULL
                      ? NULL
                      : PQexecParams(c,
                                     "SELECT format_type(a.atttypid, "
                                     "a.atttypmod) FROM pg_attribute a WHERE "
                                     "a.attrelid = $1::regclass AND a.attname "
                                     "= $2 AND a.attnum > 0 AND NOT "
                                     "a.attisdropped",
                                     2, NULL, pv, NULL, NULL, 0);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK ||
        PQntuples(r) != 1) {
        if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK) {
            velo_plg_error(ins, "%s: table %s has no column %s", l->t.redacted,
                           l->t.table, key);
        } else {
            pg_result_message(c, r, err, sizeof(err));
            velo_plg_error(ins, "%s: cannot look up table %s: %s",
                           l->t.redacted, l->t.table, err);
        }
        PQclear(r);
        free(qt);
        PQfinish(c);
        goto fail;
    }
    char *qk = PQescapeIdentifier(c, key, strlen(key));
    struct pg_buf sql = {0};
    pg_buf_adds(&sql, "SELECT k.i, row_to_json(t)::text FROM "
                      "unnest($1::text[]) WITH ORDINALITY AS k(v, i) JOIN ");
    pg_buf_adds(&sql, qt);
    pg_buf_adds(&sql, " t ON t.");
    pg_buf_adds(&sql, qk != NULL ? qk : "");
    pg_buf_adds(&sql, " = k.v::");
    /* format_type's answer: a type name from the catalog, not user text */
    pg_buf_adds(&sql, PQgetvalue(r, 0, 0));
    pg_buf_adds(&sql, " ORDER BY k.i");
    PQclear(r);
    PQfreemem(qk);
    free(qt);
    PQfinish(c);
    if (qk == NULL || sql.data == NULL) {
        pg_buf_free(&sql);
        velo_plg_error(ins, "out of memory");
        goto fail;
    }
    l->sql = sql.data;
    if (pg_lookup_open(l, err, sizeof(err)) != VELO_OK) {
        velo_plg_error(ins, "%s: preparing the lookup of %s by %s: %s",
                       l->t.redacted, l->t.table, key, err);
        goto fail;
    }
    velo_plg_debug(ins, "lookups in %s by %s on %s", l->t.table, key,
                   l->t.redacted);
    ins->context = l;
    return VELO_OK;
fail:
    pg_lookup_free(l);
    return VELO_ERR;
}

/* keys as a text[] literal: {"k1","k2"} with " and \ escaped. */
static int pg_lookup_param(struct pg_lookup *l, const struct velo_str *keys,
                           size_t n)
{
    struct pg_buf *b = &l->param;
    b->len = 0;
    if (pg_buf_add(b, "{", 1) != VELO_OK) {
        return VELO_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        if (pg_buf_reserve(b, keys[i].len * 2 + 4) != VELO_OK) {
            return VELO_ERR;
        }
        char *o = b->data + b->len;
        if (i > 0) {
            *o++ = ',';
        }
        *o++ = '"';
        for (size_t k = 0; k < keys[i].len; k++) {
            char c = keys[i].ptr[k];
            if (c == '"' || c == '\\') {
                *o++ = '\\';
            }
            *o++ = c;
        }
        *o++ = '"';
        b->len = (size_t)(o - b->data);
    }
    return pg_buf_add(b, "}", 1);
}

int pg_lookup_get(struct velo_instance *ins, const struct velo_str *keys,
                  size_t n, struct velo_source_batch *out)
{
    struct pg_lookup *l = ins->context;
    out->count = 0;
    if (n > out->capacity) {
        velo_plg_error(ins, "lookup of %zu keys into a batch of %zu", n,
                       out->capacity);
        return VELO_ERR;
    }
    if (n == 0) {
        return VELO_OK;
    }
    if (n > l->row_cap) {
        int *nr = realloc(l->row_of, n * sizeof(*nr));
        if (nr == NULL) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
        l->row_of = nr;
        l->row_cap = n;
    }
    if (pg_lookup_param(l, keys, n) != VELO_OK) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    PQclear(l->res);
    l->res = NULL;
    char err[512];
    for (int attempt = 0; attempt < 2; attempt++) {
        if (l->conn == NULL && pg_lookup_open(l, err, sizeof(err)) != VELO_OK) {
            velo_plg_error(ins, "%s: lookup in %s: reconnecting: %s",
                           l->t.redacted, l->t.table, err);
            if (l->conn != NULL) {
                PQfinish(l->conn);
                l->conn = NULL;
            }
            return VELO_ERR;
        }
        char terr[128];
        l->res = pg_lookup_run(l, terr, sizeof(terr));
        if (l->res != NULL && PQresultStatus(l->res) == PGRES_TUPLES_OK) {
            break;
        }
        if (l->conn == NULL) {
            velo_plg_error(ins, "%s: lookup of %zu keys in %s: %s",
                           l->t.redacted, n, l->t.table, terr);
            return VELO_ERR;
        }
        pg_result_message(l->conn, l->res, err, sizeof(err));
        int lost = pg_conn_lost(l->conn, l->res);
        PQclear(l->res);
        l->res = NULL;
        if (!lost || attempt == 1) {
            velo_plg_error(ins, "%s: lookup of %zu keys in %s failed: %s",
                           l->t.redacted, n, l->t.table, err);
            return VELO_ERR;
        }
        velo_plg_warn(ins, "%s: lookup connection lost (%s); reconnecting",
                      l->t.redacted, err);
        PQfinish(l->conn);
        l->conn = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        l->row_of[i] = -1;
    }
    int rows = PQntuples(l->res);
    for (int r = 0; r < rows; r++) {
        long i = strtol(PQgetvalue(l->res, r, 0), NULL, 10) - 1;
        /* The first row of a key that is not unique answers it. */
        if (i >= 0 && (size_t)i < n && l->row_of[i] < 0) {
            l->row_of[i] = r;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int r = l->row_of[i];
        out->payload[i].ptr = r >= 0 ? PQgetvalue(l->res, r, 1) : NULL;
        out->payload[i].len = r >= 0 ? (size_t)PQgetlength(l->res, r, 1) : 0;
    }
    out->count = n;
    return VELO_OK;
}

void pg_lookup_destroy(struct velo_instance *ins)
{
    pg_lookup_free(ins->context);
    ins->context = NULL;
}
