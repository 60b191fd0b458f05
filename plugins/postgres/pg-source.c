/*
 * PostgreSQL source, snapshot mode: a table or query read through a
 * server-side cursor (DECLARE ... CURSOR, FETCH n) inside one read-only
 * REPEATABLE READ transaction, so the rows are one consistent snapshot.
 * Each row becomes one payload, a JSON object (the engine decodes it with
 * format json, the default for non-file sources).
 *
 * Setup (connect, BEGIN, DECLARE) is blocking, bounded by connect.timeout
 * and statement.timeout. Reading is not: each FETCH is sent with
 * PQsendQuery on the nonblocking connection, the next one as soon as the
 * rows of the last are handed out (so the server works while the engine
 * does), and an event on PQsocket on the worker's loop collects the result
 * and calls ctx->wake; source_read answers VELO_AGAIN while a FETCH is in
 * flight.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "pg-internal.h"

/* Type OIDs from PostgreSQL's catalog (pg_type.dat); stable across
 * versions, and libpq does not export them. */
#define PG_BOOLOID 16
#define PG_INT8OID 20
#define PG_INT2OID 21
#define PG_INT4OID 23
#define PG_OIDOID 26
#define PG_FLOAT4OID 700
#define PG_FLOAT8OID 701
#define PG_NUMERICOID 1700

#define PG_CURSOR "velo_snapshot"

enum pg_col_kind { PG_COL_TEXT, PG_COL_NUMBER, PG_COL_BOOL };

struct pg_source {
    int cdc; /* 0: tells pg_source_* apart from the CDC source (pg-cdc.c) */
    struct pg_target t;
    PGconn *conn;
    char *fetch_sql;
    PGresult *res; /* the last FETCH */
    int next_row;  /* next row of res to hand out */
    int ncols;
    int *kinds;  /* enum pg_col_kind per column */
    char **keys; /* "name": per column, JSON-escaped */
    size_t *key_len;
    struct pg_buf out; /* this batch's payloads */
    size_t *offs;      /* payload offsets into out */
    size_t offs_cap;
    int64_t rows; /* rows handed out so far */
    int done;
    int in_flight; /* a FETCH was sent; its result is not in yet */
    struct velo_instance *ins;
    struct event_base *base; /* NULL: an engine without a loop */
    struct event *ev;
    void (*wake)(void *);
    void *wake_arg;
};

static void pg_source_free(struct pg_source *s)
{
    if (s == NULL) {
        return;
    }
    if (s->ev != NULL) {
        event_free(s->ev);
    }
    if (s->res != NULL) {
        PQclear(s->res);
    }
    if (s->conn != NULL) {
        PQfinish(s->conn);
    }
    for (int i = 0; s->keys != NULL && i < s->ncols; i++) {
        free(s->keys[i]);
    }
    free(s->keys);
    free(s->key_len);
    free(s->kinds);
    free(s->fetch_sql);
    free(s->offs);
    pg_buf_free(&s->out);
    pg_target_free(&s->t);
    free(s);
}

static int pg_source_send_fetch(struct velo_instance *ins, struct pg_source *s);
static void pg_source_on_read(evutil_socket_t fd, short what, void *arg);

/* Run a command that returns no rows. @return VELO_OK or VELO_ERR with the
 * server's message in err. */
static int pg_command(PGconn *c, const char *sql, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    int ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        pg_result_message(c, r, err, errlen);
    }
    PQclear(r);
    return ok ? VELO_OK : VELO_ERR;
}

/* What is read, for messages: table "t" or the query. */
static void pg_what(const struct pg_target *t, char *buf, size_t len)
{
    if (t->table != NULL) {
        snprintf(buf, len, "table %s", t->table);
    } else {
        snprintf(buf, len, "query '%.120s%s'", t->query,
                 strlen(t->query) > 120 ? "..." : "");
    }
}

int pg_source_create(struct velo_instance *ins, const void *config,
                     const struct velo_connector_ctx *ctx,
                     struct velo_source_info *info)
{
    const struct pg_conf *conf = config;
    struct pg_source *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    if (pg_target_init(ins, conf, ctx, &s->t) != VELO_OK) {
        free(s);
        return VELO_ERR;
    }
    struct pg_target *t = &s->t;
    if (t->mode != NULL && strcmp(t->mode, "cdc") == 0) {
        pg_source_free(s);
        return pg_cdc_create(ins, conf, ctx, info);
    }
    if (t->mode != NULL && strcmp(t->mode, "snapshot") != 0) {
        velo_plg_error(ins,
                       "%s: unknown source mode '%s'; a PostgreSQL "
                       "source reads with mode 'snapshot' or 'cdc'",
                       t->redacted, t->mode);
        goto fail;
    }
    if ((t->table == NULL) == (t->query == NULL)) {
        velo_plg_error(ins,
                       "%s: name what to read with exactly one of "
                       "'%s.table' (or ?table= in the URI) and "
                       "'%s.query'",
                       t->redacted, ctx->name, ctx->name);
        goto fail;
    }
    if (t->batch_size <= 0 || t->batch_size > 100000000) {
        velo_plg_error(ins, "batch.size must be 1 to 100000000 rows");
        goto fail;
    }
    char err[512];
    s->conn = pg_connect(conf, t, err, sizeof(err));
    if (s->conn == NULL) {
        velo_plg_error(ins, "cannot connect to %s: %s", t->redacted, err);
        goto fail;
    }
    char what[160];
    pg_what(t, what, sizeof(what));
    struct pg_buf sql = {0};
    pg_buf_adds(&sql, "DECLARE " PG_CURSOR " NO SCROLL CURSOR FOR ");
    if (t->table != NULL) {
        char *qt = pg_quote_qualified(s->conn, t->table);
        if (qt == NULL) {
            pg_message(PQerrorMessage(s->conn), err, sizeof(err));
            velo_plg_error(ins, "%s: bad table name %s: %s", t->redacted,
                           t->table, err);
            pg_buf_free(&sql);
            goto fail;
        }
        pg_buf_adds(&sql, "SELECT * FROM ");
        pg_buf_adds(&sql, qt);
        free(qt);
    } else {
        pg_buf_adds(&sql, t->query);
    }
    if (sql.data == NULL) {
        velo_plg_error(ins, "out of memory");
        goto fail;
    }
    /* One snapshot for the whole read; nothing is written. */
    if (pg_command(s->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                   err, sizeof(err)) != VELO_OK ||
        pg_command(s->conn, sql.data, err, sizeof(err)) != VELO_OK) {
        velo_plg_error(ins, "cannot read %s from %s: %s", what, t->redacted,
                       err);
        pg_buf_free(&sql);
        goto fail;
    }
    pg_buf_free(&sql);
    char fetch[64];
    snprintf(fetch, sizeof(fetch), "FETCH FORWARD %lld FROM " PG_CURSOR,
             (long long)t->batch_size);
    s->fetch_sql = strdup(fetch);
    if (s->fetch_sql == NULL) {
        velo_plg_error(ins, "out of memory");
        goto fail;
    }
    if (PQsetnonblocking(s->conn, 1) != 0) {
        pg_message(PQerrorMessage(s->conn), err, sizeof(err));
        velo_plg_error(ins, "%s: cannot make the connection nonblocking: %s",
                       t->redacted, err);
        goto fail;
    }
    s->ins = ins;
    s->base = ctx->base;
    s->wake = ctx->wake;
    s->wake_arg = ctx->wake_arg;
    if (s->base != NULL) {
        s->ev = event_new(s->base, PQsocket(s->conn), EV_READ | EV_PERSIST,
                          pg_source_on_read, s);
        if (s->ev == NULL || event_add(s->ev, NULL) != 0) {
            velo_plg_error(ins, "%s: cannot watch the connection's socket",
                           t->redacted);
            goto fail;
        }
    }
    /* The first FETCH runs while the engine sets the rest up. */
    if (pg_source_send_fetch(ins, s) != VELO_OK) {
        goto fail;
    }
    velo_plg_debug(ins, "reading %s from %s", what, t->redacted);
    ins->context = s;
    info->bounded = 1;
    info->byte_stream = 0;
    info->size_bytes = -1;
    return VELO_OK;
fail:
    pg_source_free(s);
    return VELO_ERR;
}

/* Column names and kinds, from the first FETCH's result. */
static int pg_source_columns(struct pg_source *s)
{
    s->ncols = PQnfields(s->res);
    int n = s->ncols > 0 ? s->ncols : 1;
    s->kinds = calloc((size_t)n, sizeof(*s->kinds));
    s->keys = calloc((size_t)n, sizeof(*s->keys));
    s->key_len = calloc((size_t)n, sizeof(*s->key_len));
    if (s->kinds == NULL || s->keys == NULL || s->key_len == NULL) {
        return VELO_ERR;
    }
    for (int i = 0; i < s->ncols; i++) {
        switch (PQftype(s->res, i)) {
        case PG_INT2OID:
        case PG_INT4OID:
        case PG_INT8OID:
        case PG_OIDOID:
        case PG_FLOAT4OID:
        case PG_FLOAT8OID:
        case PG_NUMERICOID:
            s->kinds[i] = PG_COL_NUMBER;
            break;
        case PG_BOOLOID:
            s->kinds[i] = PG_COL_BOOL;
            break;
        default:
            s->kinds[i] = PG_COL_TEXT;
        }
        const char *name = PQfname(s->res, i);
        struct pg_buf k = {0};
        if (i > 0 && pg_buf_add(&k, ",", 1) != VELO_OK) {
            return VELO_ERR;
        }
        if (pg_buf_json_str(&k, name, strlen(name)) != VELO_OK ||
            pg_buf_add(&k, ":", 1) != VELO_OK) {
            pg_buf_free(&k);
            return VELO_ERR;
        }
        s->keys[i] = k.data;
        s->key_len[i] = k.len;
    }
    return VELO_OK;
}

/* Is a numeric column's text a JSON number? NaN and the infinities of
 * float and numeric are not: they go out as strings. */
static int pg_json_number(const char *v)
{
    return v[0] != 'N' && v[0] != 'I' && !(v[0] == '-' && v[1] == 'I');
}

static int pg_source_row(struct pg_source *s, int r)
{
    struct pg_buf *b = &s->out;
    if (pg_buf_add(b, "{", 1) != VELO_OK) {
        return VELO_ERR;
    }
    for (int i = 0; i < s->ncols; i++) {
        if (pg_buf_add(b, s->keys[i], s->key_len[i]) != VELO_OK) {
            return VELO_ERR;
        }
        int rc;
        if (PQgetisnull(s->res, r, i)) {
            rc = pg_buf_add(b, "null", 4);
        } else {
            const char *v = PQgetvalue(s->res, r, i);
            size_t n = (size_t)PQgetlength(s->res, r, i);
            if (s->kinds[i] == PG_COL_BOOL) {
                rc = v[0] == 't' ? pg_buf_add(b, "true", 4)
                                 : pg_buf_add(b, "false", 5);
            } else if (s->kinds[i] == PG_COL_NUMBER && pg_json_number(v)) {
                rc = pg_buf_add(b, v, n);
            } else {
                rc = pg_buf_json_str(b, v, n);
            }
        }
        if (rc != VELO_OK) {
            return VELO_ERR;
        }
    }
    return pg_buf_add(b, "}", 1);
}

/* The cursor's end: the transaction only read, so closing the connection
 * (which rolls it back) loses nothing and saves a round trip. */
static int pg_source_end(struct velo_instance *ins, struct pg_source *s)
{
    s->done = 1;
    velo_plg_debug(ins, "snapshot done: %lld rows", (long long)s->rows);
    if (s->ev != NULL) {
        event_free(s->ev);
        s->ev = NULL;
    }
    PQfinish(s->conn);
    s->conn = NULL;
    return VELO_DECLINED;
}

static void pg_source_fetch_failed(struct velo_instance *ins,
                                   struct pg_source *s, const PGresult *r)
{
    char err[512];
    pg_result_message(s->conn, r, err, sizeof(err));
    char what[160];
    pg_what(&s->t, what, sizeof(what));
    velo_plg_error(ins, "reading %s from %s failed after %lld rows: %s%s", what,
                   s->t.redacted, (long long)s->rows, err,
                   pg_conn_lost(s->conn, r)
                       ? " (a snapshot cannot resume on a new "
                         "connection; run the query again)"
                       : "");
}

/* Send the next FETCH. @return VELO_OK or VELO_ERR (logged). */
static int pg_source_send_fetch(struct velo_instance *ins, struct pg_source *s)
{
    if (!PQsendQuery(s->conn, s->fetch_sql) || PQflush(s->conn) < 0) {
        pg_source_fetch_failed(ins, s, NULL);
        return VELO_ERR;
    }
    s->in_flight = 1;
    return VELO_OK;
}

/* Collect the FETCH in flight without waiting. @return VELO_OK (rows in
 * res), VELO_AGAIN (not in yet), VELO_DECLINED (the cursor is exhausted),
 * VELO_ERR (logged). */
static int pg_source_collect(struct velo_instance *ins, struct pg_source *s)
{
    if (PQflush(s->conn) < 0 || PQconsumeInput(s->conn) == 0) {
        pg_source_fetch_failed(ins, s, NULL);
        return VELO_ERR;
    }
    /* One result, then NULL once the server is ready again. */
    while (s->in_flight && !PQisBusy(s->conn)) {
        PGresult *r = PQgetResult(s->conn);
        if (r == NULL) {
            s->in_flight = 0;
        } else if (s->res == NULL) {
            s->res = r;
        } else {
            PQclear(r);
        }
    }
    if (s->in_flight) {
        return VELO_AGAIN;
    }
    s->next_row = 0;
    if (s->res == NULL || PQresultStatus(s->res) != PGRES_TUPLES_OK) {
        pg_source_fetch_failed(ins, s, s->res);
        return VELO_ERR;
    }
    if (s->keys == NULL && pg_source_columns(s) != VELO_OK) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    if (PQntuples(s->res) > 0) {
        return VELO_OK;
    }
    return pg_source_end(ins, s);
}

/* The socket is readable: a FETCH's answer (or the connection's end). */
static void pg_source_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct pg_source *s = arg;
    (void)fd;
    (void)what;
    int ok = PQconsumeInput(s->conn);
    if (!s->in_flight && ok && PQstatus(s->conn) != CONNECTION_BAD) {
        return;
    }
    if (!ok || PQstatus(s->conn) == CONNECTION_BAD) {
        /* Closed: stop watching (it would stay readable); the next read
         * reports it. */
        event_del(s->ev);
    }
    if ((!ok || !PQisBusy(s->conn)) && s->wake != NULL) {
        s->wake(s->wake_arg);
    }
}

int pg_source_read(struct velo_instance *ins, struct velo_source_batch *out)
{
    struct pg_source *s = ins->context;
    if (s->cdc) {
        return pg_cdc_read(ins, out);
    }
    out->count = 0;
    if (s->done) {
        return VELO_DECLINED;
    }
    if (s->res == NULL) {
        if (!s->in_flight && pg_source_send_fetch(ins, s) != VELO_OK) {
            return VELO_ERR;
        }
        for (;;) {
            int rc = pg_source_collect(ins, s);
            if (rc != VELO_AGAIN) {
                if (rc != VELO_OK) {
                    return rc;
                }
                break;
            }
            if (s->base != NULL) {
                return VELO_AGAIN; /* the socket's event wakes the engine */
            }
            struct pollfd p = {.fd = PQsocket(s->conn), .events = POLLIN};
            poll(&p, 1, 100);
        }
    }
    size_t avail = (size_t)(PQntuples(s->res) - s->next_row);
    size_t n = avail < out->capacity ? avail : out->capacity;
    if (n > s->offs_cap) {
        size_t *no = realloc(s->offs, (n + 1) * sizeof(*no));
        if (no == NULL) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
        s->offs = no;
        s->offs_cap = n;
    }
    /* Build every row first: the buffer may move while it grows, so the
     * payload pointers are set once it is complete. */
    s->out.len = 0;
    for (size_t i = 0; i < n; i++) {
        s->offs[i] = s->out.len;
        if (pg_source_row(s, s->next_row + (int)i) != VELO_OK) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
    }
    s->offs[n] = s->out.len;
    for (size_t i = 0; i < n; i++) {
        out->payload[i].ptr = s->out.data + s->offs[i];
        out->payload[i].len = s->offs[i + 1] - s->offs[i];
        if (out->meta != NULL) {
            out->meta[i].offset = s->rows + (int64_t)i;
        }
    }
    out->count = n;
    s->next_row += (int)n;
    s->rows += (int64_t)n;
    if (s->next_row >= PQntuples(s->res)) {
        /* The payloads live in s->out: the result can go, and the next
         * FETCH is sent now, to be read while the engine works. A short
         * FETCH was the cursor's last. */
        int last = PQntuples(s->res) < s->t.batch_size;
        PQclear(s->res);
        s->res = NULL;
        if (last) {
            pg_source_end(ins, s);
        } else if (pg_source_send_fetch(ins, s) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

int pg_source_position(struct velo_instance *ins, uint8_t *buf, size_t cap)
{
    const struct pg_source *s = ins->context;
    if (s->cdc) {
        return pg_cdc_position(ins, buf, cap);
    }
    /* A snapshot cannot resume (a new one is another snapshot): its
     * position is empty, "from the start", and acknowledges nothing. */
    (void)buf;
    (void)cap;
    return 0;
}

int pg_source_seek(struct velo_instance *ins, const uint8_t *pos, size_t len)
{
    const struct pg_source *s = ins->context;
    if (s->cdc) {
        return pg_cdc_seek(ins, pos, len);
    }
    (void)pos;
    if (len != 0) {
        velo_plg_error(ins,
                       "%s: a snapshot source cannot resume from a "
                       "position; it reads its table or query again",
                       s->t.redacted);
        return VELO_ERR;
    }
    return VELO_OK;
}

int pg_source_commit(struct velo_instance *ins, const uint8_t *pos, size_t len)
{
    const struct pg_source *s = ins->context;
    if (s->cdc) {
        return pg_cdc_commit(ins, pos, len);
    }
    (void)pos;
    (void)len;
    return VELO_OK;
}

void pg_source_destroy(struct velo_instance *ins)
{
    const struct pg_source *s = ins->context;
    if (s != NULL && s->cdc) {
        pg_cdc_destroy(ins);
        return;
    }
    pg_source_free(ins->context);
    ins->context = NULL;
}
