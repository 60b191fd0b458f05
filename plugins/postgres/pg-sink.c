/*
 * PostgreSQL sink: rows (JSON objects, one per payload line) inserted with
 * multi-row INSERT statements, or upserted with INSERT ... ON CONFLICT (key)
 * DO UPDATE, every value a parameter ($1..$n), never spliced into the SQL.
 *
 * Transactions: BEGIN before the first statement after a flush, COMMIT in
 * sink_flush (the engine's checkpoint barrier), so what one checkpoint
 * covers lands in one transaction. Past max.transaction.rows the sink
 * commits on its own, which bounds the rows it keeps for a replay.
 *
 * A lost connection: the server rolled the open transaction back, so the
 * sink reconnects (with backoff, answering VELO_AGAIN meanwhile) and writes
 * the transaction's rows again from its own copy. A COMMIT whose answer was
 * lost is resolved with txid_status() on the new connection: committed
 * rows are not written twice.
 *
 * The calls are blocking libpq calls, bounded by connect.timeout and
 * statement.timeout: the engine has no event loop for plugins yet.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "pg-internal.h"

/* PostgreSQL accepts at most 65535 parameters in one statement. */
#define PG_MAX_PARAMS 65535
#define PG_BACKOFF_FIRST_MS 100
#define PG_BACKOFF_MAX_MS 5000
/* Lost connections while writing one transaction before giving up. */
#define PG_MAX_LOSSES 20

struct pg_sink {
    struct velo_instance *ins;
    struct pg_conf conf; /* strings owned by the host until destroy */
    struct pg_target t;
    const char *name;
    PGconn *conn;
    char *qtable;
    int upsert;
    char **keys; /* key columns (upsert, create.table's primary key) */
    size_t nkeys;
    int table_checked; /* exists, or created */

    /* The open transaction's rows (JSON text), kept to write them again
     * when the connection is lost before COMMIT. */
    struct pg_buf log;
    size_t *row_off, *row_len;
    size_t nrows, rows_cap;
    size_t sent; /* rows already executed in the server's transaction */
    int in_tx;
    char xid[32]; /* txid_current() of the open transaction */
    int commit_in_doubt;

    /* Reconnection. */
    int broken;
    int64_t lost_at_ms, next_try_ms, backoff_ms, attempts;
    int64_t reconnects, rows_committed;
    int64_t losses; /* connections lost since the last COMMIT */

    /* One statement's scratch, reused. */
    json_t **parsed;
    size_t parsed_cap;
    const char **vals;
    char (*num)[40];
    size_t vals_cap;
    char **dumps;
    size_t ndumps, dumps_cap;
    const char **cols;
    size_t ncols, cols_cap;
    uint64_t *kh;   /* key hash set (upsert) */
    uint32_t *kidx; /* row of each slot, +1; 0 is empty */
    size_t kcap;
    struct pg_buf sql;
};

/* ---- small helpers ------------------------------------------------------ */

static void pg_sink_clear_stmt(struct pg_sink *k, size_t nparsed)
{
    for (size_t i = 0; i < nparsed; i++) {
        json_decref(k->parsed[i]);
        k->parsed[i] = NULL;
    }
    for (size_t i = 0; i < k->ndumps; i++) {
        free(k->dumps[i]);
    }
    k->ndumps = 0;
}

static int pg_sink_log_row(struct pg_sink *k, const char *p, size_t n)
{
    if (k->nrows == k->rows_cap) {
        size_t cap = k->rows_cap ? k->rows_cap * 2 : 1024;
        size_t *no = realloc(k->row_off, cap * sizeof(*no));
        if (no == NULL) {
            return VELO_ERR;
        }
        k->row_off = no;
        size_t *nl = realloc(k->row_len, cap * sizeof(*nl));
        if (nl == NULL) {
            return VELO_ERR;
        }
        k->row_len = nl;
        k->rows_cap = cap;
    }
    k->row_off[k->nrows] = k->log.len;
    k->row_len[k->nrows] = n;
    if (pg_buf_add(&k->log, p, n) != VELO_OK) {
        return VELO_ERR;
    }
    k->nrows++;
    return VELO_OK;
}

static void pg_sink_log_clear(struct pg_sink *k)
{
    k->losses = 0;
    k->rows_committed += (int64_t)k->nrows;
    k->nrows = 0;
    k->sent = 0;
    k->log.len = 0;
    /* A big transaction's copy is not kept around between them. */
    if (k->log.cap > (64u << 20)) {
        pg_buf_free(&k->log);
    }
}

/* The connection is gone: the server rolled the transaction back. */
static int pg_sink_lost(struct pg_sink *k, const char *doing,
                        const PGresult *res)
{
    char err[512];
    pg_result_message(k->conn, res, err, sizeof(err));
    velo_plg_warn(k->ins,
                  "connection to %s lost while %s (%s); reconnecting, "
                  "then writing the %zu uncommitted rows again",
                  k->t.redacted, doing, err, k->nrows);
    PQfinish(k->conn);
    k->conn = NULL;
    k->broken = 1;
    k->in_tx = 0;
    k->sent = 0;
    k->losses++;
    k->lost_at_ms = pg_now_ms();
    k->next_try_ms = k->lost_at_ms;
    k->backoff_ms = PG_BACKOFF_FIRST_MS;
    k->attempts = 0;
    return VELO_AGAIN;
}

/* A failed statement: reconnect when the connection went, else fail. */
static int pg_sink_failed(struct pg_sink *k, const char *doing, PGresult *res)
{
    int rc;
    if (pg_conn_lost(k->conn, res)) {
        rc = pg_sink_lost(k, doing, res);
    } else {
        char err[512];
        pg_result_message(k->conn, res, err, sizeof(err));
        velo_plg_error(k->ins, "%s into table %s at %s failed: %s", doing,
                       k->t.table, k->t.redacted, err);
        rc = VELO_ERR;
    }
    PQclear(res);
    return rc;
}

/* Does table exist? @return 1, 0, or -1 (failed; res handled). */
static int pg_sink_table_exists(struct pg_sink *k, int *rc)
{
    const char *params[1] = {k->qtable};
    PGresult *r = PQexecParams(k->conn, "SELECT to_regclass($1) IS NOT NULL", 1,
                               NULL, params, NULL, NULL, 0);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        *rc = pg_sink_failed(k, "checking the table", r);
        return -1;
    }
    int exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return exists;
}

/* (Re)connect when the connection was lost; resolve a COMMIT in doubt.
 * @return VELO_OK (connected), VELO_AGAIN (not yet), VELO_ERR. */
static int pg_sink_ready(struct pg_sink *k)
{
    if (!k->broken) {
        return VELO_OK;
    }
    int64_t now = pg_now_ms();
    if (now < k->next_try_ms) {
        return VELO_AGAIN;
    }
    char err[512];
    if (k->losses >= PG_MAX_LOSSES) {
        /* The same rows keep failing: not a flaky network but something
         * about them (or the server) that a reconnect does not fix. */
        velo_plg_error(k->ins,
                       "%s: the connection was lost %lld times "
                       "writing the same %zu rows; giving up",
                       k->t.redacted, (long long)k->losses, k->nrows);
        return VELO_ERR;
    }
    k->attempts++;
    k->conn = pg_connect(&k->conf, &k->t, err, sizeof(err));
    if (k->conn == NULL) {
        if (k->conf.reconnect_timeout > 0 &&
            now - k->lost_at_ms >= k->conf.reconnect_timeout) {
            velo_plg_error(k->ins,
                           "cannot reconnect to %s (%s); gave up "
                           "after %lld ms (reconnect.timeout); %zu "
                           "rows were not written",
                           k->t.redacted, err, (long long)(now - k->lost_at_ms),
                           k->nrows);
            return VELO_ERR;
        }
        if (k->attempts == 1 || k->attempts % 10 == 0) {
            velo_plg_warn(k->ins,
                          "cannot reconnect to %s (attempt %lld): %s; "
                          "retrying",
                          k->t.redacted, (long long)k->attempts, err);
        }
        k->next_try_ms = now + k->backoff_ms;
        k->backoff_ms = k->backoff_ms * 2 > PG_BACKOFF_MAX_MS
                            ? PG_BACKOFF_MAX_MS
                            : k->backoff_ms * 2;
        return VELO_AGAIN;
    }
    k->broken = 0;
    k->in_tx = 0;
    k->sent = 0;
    if (k->commit_in_doubt) {
        const char *params[1] = {k->xid};
        PGresult *r = PQexecParams(k->conn, "SELECT txid_status($1::bigint)", 1,
                                   NULL, params, NULL, NULL, 0);
        const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        const char *st = "";
        if (code != NULL && strcmp(code, "22023") == 0) {
            /* "transaction ID is in the future": the server restarted
             * without even the transaction's start in its WAL, so its
             * COMMIT never became durable. */
            st = "aborted";
        } else if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
            return pg_sink_failed(k,
                                  "asking whether the last COMMIT "
                                  "happened",
                                  r);
        } else if (!PQgetisnull(r, 0, 0)) {
            st = PQgetvalue(r, 0, 0);
        }
        int committed = strcmp(st, "committed") == 0;
        int running = strcmp(st, "in progress") == 0;
        PQclear(r);
        if (running) {
            /* The old backend has not finished dying: ask again soon. */
            PQfinish(k->conn);
            k->conn = NULL;
            k->broken = 1;
            k->next_try_ms = now + PG_BACKOFF_FIRST_MS;
            return VELO_AGAIN;
        }
        k->commit_in_doubt = 0;
        if (committed) {
            velo_plg_info(k->ins,
                          "reconnected to %s; the COMMIT of %zu rows "
                          "had succeeded",
                          k->t.redacted, k->nrows);
            pg_sink_log_clear(k);
        }
    }
    k->reconnects++;
    velo_plg_info(k->ins,
                  "reconnected to %s (reconnect %lld); writing %zu "
                  "uncommitted rows again",
                  k->t.redacted, (long long)k->reconnects, k->nrows);
    return VELO_OK;
}

/* ---- statements -----------------------------------------------------------
 */

static int pg_sink_reserve(struct pg_sink *k, size_t rows, size_t params)
{
    if (rows > k->parsed_cap) {
        json_t **np = realloc(k->parsed, rows * sizeof(*np));
        if (np == NULL) {
            return VELO_ERR;
        }
        memset(np + k->parsed_cap, 0, (rows - k->parsed_cap) * sizeof(*np));
        k->parsed = np;
        k->parsed_cap = rows;
    }
    if (params > k->vals_cap) {
        const char **nv = realloc(k->vals, params * sizeof(*nv));
        if (nv == NULL) {
            return VELO_ERR;
        }
        k->vals = nv;
        char(*nn)[40] = realloc(k->num, params * sizeof(*nn));
        if (nn == NULL) {
            return VELO_ERR;
        }
        k->num = nn;
        k->vals_cap = params;
    }
    size_t kcap = 16;
    while (kcap < rows * 2) {
        kcap *= 2;
    }
    if (kcap > k->kcap) {
        uint64_t *nh = realloc(k->kh, kcap * sizeof(*nh));
        if (nh == NULL) {
            return VELO_ERR;
        }
        k->kh = nh;
        uint32_t *ni = realloc(k->kidx, kcap * sizeof(*ni));
        if (ni == NULL) {
            return VELO_ERR;
        }
        k->kidx = ni;
        k->kcap = kcap;
    }
    return VELO_OK;
}

/* Parse one logged row. @return the object, or NULL (logged). */
static json_t *pg_sink_parse(struct pg_sink *k, size_t row)
{
    json_error_t je;
    const char *p = k->log.data + k->row_off[row];
    json_t *o = json_loadb(p, k->row_len[row], JSON_ALLOW_NUL, &je);
    if (o == NULL || !json_is_object(o)) {
        velo_plg_error(k->ins,
                       "%s: a row is not a JSON object (%s): '%.80s'; "
                       "the PostgreSQL sink needs '%s.format' = "
                       "'json'",
                       k->t.redacted, o == NULL ? je.text : "not an object", p,
                       k->name);
        json_decref(o);
        return NULL;
    }
    return o;
}

static int pg_sink_is_delete(const struct pg_sink *k, json_t *row)
{
    json_t *op = json_object_get(row, "_op");
    return k->upsert && json_is_string(op) &&
           strcmp(json_string_value(op), "delete") == 0;
}

/* A JSON value as the text of a parameter; NULL for null. */
static int pg_sink_param(struct pg_sink *k, json_t *v, size_t at)
{
    if (v == NULL) {
        k->vals[at] = NULL; /* a column the row lacks */
        return VELO_OK;
    }
    switch (json_typeof(v)) {
    case JSON_STRING:
        k->vals[at] = json_string_value(v);
        return VELO_OK;
    case JSON_INTEGER:
        snprintf(k->num[at], sizeof(k->num[at]), "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        k->vals[at] = k->num[at];
        return VELO_OK;
    case JSON_REAL: {
        /* The shortest text that reads back as the same double. */
        double d = json_real_value(v);
        snprintf(k->num[at], sizeof(k->num[at]), "%.15g", d);
        if (strtod(k->num[at], NULL) != d) {
            snprintf(k->num[at], sizeof(k->num[at]), "%.17g", d);
        }
        k->vals[at] = k->num[at];
        return VELO_OK;
    }
    case JSON_TRUE:
        k->vals[at] = "true";
        return VELO_OK;
    case JSON_FALSE:
        k->vals[at] = "false";
        return VELO_OK;
    case JSON_OBJECT:
    case JSON_ARRAY: {
        if (k->ndumps == k->dumps_cap) {
            size_t cap = k->dumps_cap ? k->dumps_cap * 2 : 64;
            char **nd = realloc(k->dumps, cap * sizeof(*nd));
            if (nd == NULL) {
                return VELO_ERR;
            }
            k->dumps = nd;
            k->dumps_cap = cap;
        }
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s == NULL) {
            return VELO_ERR;
        }
        k->dumps[k->ndumps++] = s;
        k->vals[at] = s;
        return VELO_OK;
    }
    default:
        k->vals[at] = NULL;
        return VELO_OK;
    }
}

static size_t pg_sink_col(const struct pg_sink *k, const char *name)
{
    for (size_t i = 0; i < k->ncols; i++) {
        if (strcmp(k->cols[i], name) == 0) {
            return i;
        }
    }
    return (size_t)-1;
}

/* Does row fit the statement's columns (no column it lacks)? */
static int pg_sink_row_fits(const struct pg_sink *k, json_t *row)
{
    const char *key;
    json_t *v;
    size_t i = 0;
    json_object_foreach(row, key, v)
    {
        if (strcmp(key, "_op") == 0) {
            continue;
        }
        /* Rows of one query have the same keys in the same order. */
        if (!(i < k->ncols && strcmp(k->cols[i], key) == 0) &&
            pg_sink_col(k, key) == (size_t)-1) {
            return 0;
        }
        i++;
    }
    return 1;
}

static uint64_t pg_fnv(uint64_t h, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= UINT64_C(1099511628211);
    }
    return h;
}

/* The key of a row's parameters (from vals at base). */
static uint64_t pg_sink_key_hash(const struct pg_sink *k, const size_t *kcol,
                                 size_t base)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (size_t i = 0; i < k->nkeys; i++) {
        const char *v = k->vals[base + kcol[i]];
        h = v ? pg_fnv(h, v, strlen(v) + 1) : pg_fnv(h, "\x01N", 2);
    }
    return h;
}

static int pg_sink_key_equal(const struct pg_sink *k, const size_t *kcol,
                             size_t a, size_t b)
{
    for (size_t i = 0; i < k->nkeys; i++) {
        const char *x = k->vals[a + kcol[i]];
        const char *y = k->vals[b + kcol[i]];
        if ((x == NULL) != (y == NULL) || (x && strcmp(x, y) != 0)) {
            return 0;
        }
    }
    return 1;
}

/* Add row r (its params at r * ncols) to the key set; 0 when its key is
 * already there: one statement may not upsert a key twice. */
static int pg_sink_key_add(struct pg_sink *k, const size_t *kcol, size_t r)
{
    size_t base = r * k->ncols;
    uint64_t h = pg_sink_key_hash(k, kcol, base);
    size_t mask = k->kcap - 1;
    for (size_t s = (size_t)h & mask;; s = (s + 1) & mask) {
        if (k->kidx[s] == 0) {
            k->kidx[s] = (uint32_t)r + 1;
            k->kh[s] = h;
            return 1;
        }
        if (k->kh[s] == h &&
            pg_sink_key_equal(k, kcol, (k->kidx[s] - 1) * k->ncols, base)) {
            return 0;
        }
    }
}

static int pg_sink_quote(struct pg_sink *k, struct pg_buf *b, const char *id)
{
    char *q = PQescapeIdentifier(k->conn, id, strlen(id));
    if (q == NULL) {
        return VELO_ERR;
    }
    int rc = pg_buf_adds(b, q);
    PQfreemem(q);
    return rc;
}

/* DELETE by key for an upsert sink's "delete" row. */
static int pg_sink_delete(struct pg_sink *k, json_t *row)
{
    struct pg_buf *b = &k->sql;
    b->len = 0;
    pg_buf_adds(b, "DELETE FROM ");
    pg_buf_adds(b, k->qtable);
    pg_buf_adds(b, " WHERE ");
    for (size_t i = 0; i < k->nkeys; i++) {
        char ph[32];
        snprintf(ph, sizeof(ph), " = $%zu", i + 1);
        if ((i > 0 && pg_buf_adds(b, " AND ") != VELO_OK) ||
            pg_sink_quote(k, b, k->keys[i]) != VELO_OK ||
            pg_buf_adds(b, ph) != VELO_OK ||
            pg_sink_param(k, json_object_get(row, k->keys[i]), i) != VELO_OK) {
            velo_plg_error(k->ins, "out of memory");
            return VELO_ERR;
        }
    }
    PGresult *r = PQexecParams(k->conn, b->data, (int)k->nkeys, NULL, k->vals,
                               NULL, NULL, 0);
    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
        return pg_sink_failed(k, "deleting a row", r);
    }
    PQclear(r);
    return VELO_OK;
}

/* Build and run one statement from the unsent rows: as many as fit (same
 * columns, no key twice, up to insert.rows). @return rows written (> 0),
 * VELO_AGAIN (connection lost), VELO_ERR. */
static long pg_sink_statement(struct pg_sink *k)
{
    size_t from = k->sent;
    size_t avail = k->nrows - from;
    json_t *first = pg_sink_parse(k, from);
    if (first == NULL) {
        return VELO_ERR;
    }
    if (pg_sink_is_delete(k, first)) {
        int rc = pg_sink_delete(k, first);
        json_decref(first);
        return rc == VELO_OK ? 1 : rc;
    }
    /* The statement's columns: the first row's keys. */
    k->ncols = 0;
    const char *key;
    json_t *v;
    json_object_foreach(first, key, v)
    {
        if (strcmp(key, "_op") == 0) {
            continue;
        }
        if (k->ncols == k->cols_cap) {
            size_t cap = k->cols_cap ? k->cols_cap * 2 : 32;
            const char **nc = realloc(k->cols, cap * sizeof(*nc));
            if (nc == NULL) {
                json_decref(first);
                velo_plg_error(k->ins, "out of memory");
                return VELO_ERR;
            }
            k->cols = nc;
            k->cols_cap = cap;
        }
        k->cols[k->ncols++] = key;
    }
    if (k->ncols == 0) {
        velo_plg_error(k->ins, "%s: a row has no columns", k->t.redacted);
        json_decref(first);
        return VELO_ERR;
    }
    size_t kcol[64];
    if (k->upsert) {
        for (size_t i = 0; i < k->nkeys; i++) {
            kcol[i] = pg_sink_col(k, k->keys[i]);
            if (kcol[i] == (size_t)-1) {
                velo_plg_error(k->ins,
                               "%s: key column '%s' is not in the "
                               "rows written to table %s",
                               k->t.redacted, k->keys[i], k->t.table);
                json_decref(first);
                return VELO_ERR;
            }
        }
    }
    size_t limit = (size_t)k->conf.insert_rows;
    if (limit > PG_MAX_PARAMS / k->ncols) {
        limit = PG_MAX_PARAMS / k->ncols;
    }
    if (limit > avail) {
        limit = avail;
    }
    if (pg_sink_reserve(k, limit, limit * k->ncols) != VELO_OK) {
        json_decref(first);
        velo_plg_error(k->ins, "out of memory");
        return VELO_ERR;
    }
    if (k->upsert) {
        memset(k->kidx, 0, k->kcap * sizeof(*k->kidx));
    }
    k->parsed[0] = first;
    size_t n = 0; /* rows in the statement */
    long rc = VELO_OK;
    for (; n < limit; n++) {
        json_t *row = k->parsed[n];
        if (row == NULL) {
            row = pg_sink_parse(k, from + n);
            if (row == NULL) {
                rc = VELO_ERR;
                break;
            }
            k->parsed[n] = row;
            if (pg_sink_is_delete(k, row) || !pg_sink_row_fits(k, row)) {
                break;
            }
        }
        for (size_t c = 0; c < k->ncols; c++) {
            if (pg_sink_param(k, json_object_get(row, k->cols[c]),
                              n * k->ncols + c) != VELO_OK) {
                velo_plg_error(k->ins, "out of memory");
                rc = VELO_ERR;
                break;
            }
        }
        if (rc != VELO_OK) {
            break;
        }
        if (k->upsert && !pg_sink_key_add(k, kcol, n)) {
            break; /* written by the next statement, after this one */
        }
    }
    size_t nparsed = n < limit ? n + 1 : n;
    if (rc != VELO_OK) {
        pg_sink_clear_stmt(k, nparsed);
        return rc;
    }
    /* INSERT INTO t (c1, c2) VALUES ($1, $2), ($3, $4) ... */
    struct pg_buf *b = &k->sql;
    b->len = 0;
    int ok = pg_buf_adds(b, "INSERT INTO ") == VELO_OK &&
             pg_buf_adds(b, k->qtable) == VELO_OK &&
             pg_buf_adds(b, " (") == VELO_OK;
    for (size_t c = 0; ok && c < k->ncols; c++) {
        ok = (c == 0 || pg_buf_adds(b, ", ") == VELO_OK) &&
             pg_sink_quote(k, b, k->cols[c]) == VELO_OK;
    }
    ok = ok && pg_buf_adds(b, ") VALUES ") == VELO_OK;
    size_t p = 1;
    for (size_t r = 0; ok && r < n; r++) {
        ok = pg_buf_adds(b, r == 0 ? "(" : ", (") == VELO_OK;
        for (size_t c = 0; ok && c < k->ncols; c++) {
            char ph[24];
            int len = snprintf(ph, sizeof(ph), "%s$%zu", c ? ", " : "", p++);
            ok = pg_buf_add(b, ph, (size_t)len) == VELO_OK;
        }
        ok = ok && pg_buf_adds(b, ")") == VELO_OK;
    }
    if (ok && k->upsert) {
        ok = pg_buf_adds(b, " ON CONFLICT (") == VELO_OK;
        for (size_t i = 0; ok && i < k->nkeys; i++) {
            ok = (i == 0 || pg_buf_adds(b, ", ") == VELO_OK) &&
                 pg_sink_quote(k, b, k->keys[i]) == VELO_OK;
        }
        size_t nset = 0;
        for (size_t c = 0; ok && c < k->ncols; c++) {
            int is_key = 0;
            for (size_t i = 0; i < k->nkeys; i++) {
                is_key |= kcol[i] == c;
            }
            if (is_key) {
                continue;
            }
            ok =
                pg_buf_adds(b, nset++ ? ", " : ") DO UPDATE SET ") == VELO_OK &&
                pg_sink_quote(k, b, k->cols[c]) == VELO_OK &&
                pg_buf_adds(b, " = EXCLUDED.") == VELO_OK &&
                pg_sink_quote(k, b, k->cols[c]) == VELO_OK;
        }
        if (ok && nset == 0) {
            ok = pg_buf_adds(b, ") DO NOTHING") == VELO_OK;
        }
    }
    if (!ok) {
        pg_sink_clear_stmt(k, nparsed);
        velo_plg_error(k->ins, "out of memory");
        return VELO_ERR;
    }
    PGresult *res = PQexecParams(k->conn, b->data, (int)(n * k->ncols), NULL,
                                 k->vals, NULL, NULL, 0);
    pg_sink_clear_stmt(k, nparsed);
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        return pg_sink_failed(
            k, k->upsert ? "upserting rows" : "inserting rows", res);
    }
    PQclear(res);
    return (long)n;
}

/* CREATE TABLE from the first unsent row, when create.table and the table
 * is missing: NUMERIC for numbers, BOOLEAN, JSONB for objects and arrays,
 * TEXT for the rest (strings, and nulls whose type is unknown). */
static int pg_sink_create_table(struct pg_sink *k)
{
    json_t *row = pg_sink_parse(k, k->sent);
    if (row == NULL) {
        return VELO_ERR;
    }
    struct pg_buf *b = &k->sql;
    b->len = 0;
    int ok = pg_buf_adds(b, "CREATE TABLE IF NOT EXISTS ") == VELO_OK &&
             pg_buf_adds(b, k->qtable) == VELO_OK &&
             pg_buf_adds(b, " (") == VELO_OK;
    const char *key;
    json_t *v;
    size_t n = 0;
    json_object_foreach(row, key, v)
    {
        if (!ok || strcmp(key, "_op") == 0) {
            continue;
        }
        const char *type = json_is_number(v)    ? " NUMERIC"
                           : json_is_boolean(v) ? " BOOLEAN"
                           : (json_is_object(v) || json_is_array(v)) ? " JSONB"
                                                                     : " TEXT";
        ok = (n++ == 0 || pg_buf_adds(b, ", ") == VELO_OK) &&
             pg_sink_quote(k, b, key) == VELO_OK &&
             pg_buf_adds(b, type) == VELO_OK;
    }
    for (size_t i = 0; ok && i < k->nkeys; i++) {
        ok = pg_buf_adds(b, i == 0 ? ", PRIMARY KEY (" : ", ") == VELO_OK &&
             pg_sink_quote(k, b, k->keys[i]) == VELO_OK &&
             (i + 1 < k->nkeys || pg_buf_adds(b, ")") == VELO_OK);
    }
    ok = ok && pg_buf_adds(b, ")") == VELO_OK;
    json_decref(row);
    if (!ok) {
        velo_plg_error(k->ins, "out of memory");
        return VELO_ERR;
    }
    PGresult *r = PQexec(k->conn, b->data);
    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
        return pg_sink_failed(k, "creating the table", r);
    }
    PQclear(r);
    velo_plg_info(k->ins, "created table %s at %s", k->t.table, k->t.redacted);
    return VELO_OK;
}

static int pg_sink_begin(struct pg_sink *k)
{
    /* The txid tells, after a lost COMMIT answer, whether it happened. */
    PGresult *r = PQexec(k->conn, "BEGIN; SELECT txid_current()");
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        return pg_sink_failed(k, "starting a transaction", r);
    }
    snprintf(k->xid, sizeof(k->xid), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    k->in_tx = 1;
    return VELO_OK;
}

/* Execute the unsent rows: whole statements only, or all (flush). */
static int pg_sink_pump(struct pg_sink *k, int all)
{
    while (k->sent < k->nrows) {
        if (!all && k->nrows - k->sent < (size_t)k->conf.insert_rows) {
            break;
        }
        if (!k->table_checked) {
            int rc = VELO_OK;
            int exists = pg_sink_table_exists(k, &rc);
            if (exists < 0) {
                return rc;
            }
            if (!exists && pg_sink_create_table(k) != VELO_OK) {
                return k->broken ? VELO_AGAIN : VELO_ERR;
            }
            k->table_checked = 1;
        }
        if (!k->in_tx) {
            int rc = pg_sink_begin(k);
            if (rc != VELO_OK) {
                return rc;
            }
        }
        long n = pg_sink_statement(k);
        if (n < 0) {
            return (int)n;
        }
        k->sent += (size_t)n;
    }
    return VELO_OK;
}

static int pg_sink_commit(struct pg_sink *k)
{
    if (!k->in_tx) {
        if (k->sent == k->nrows) {
            pg_sink_log_clear(k);
        }
        return VELO_OK;
    }
    PGresult *r = PQexec(k->conn, "COMMIT");
    if (r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK &&
        strcmp(PQcmdStatus(r), "COMMIT") == 0) {
        PQclear(r);
        k->in_tx = 0;
        pg_sink_log_clear(k);
        return VELO_OK;
    }
    if (pg_conn_lost(k->conn, r)) {
        k->commit_in_doubt = 1;
        return pg_sink_failed(k, "committing", r);
    }
    if (r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK) {
        /* "ROLLBACK": the transaction had failed. */
        velo_plg_error(k->ins,
                       "committing into table %s at %s: the server "
                       "rolled the transaction back",
                       k->t.table, k->t.redacted);
        PQclear(r);
        return VELO_ERR;
    }
    return pg_sink_failed(k, "committing", r);
}

/* ---- vtable ------------------------------------------------------------- */

static void pg_sink_free(struct pg_sink *k)
{
    if (k == NULL) {
        return;
    }
    if (k->conn != NULL) {
        /* An open transaction is rolled back: only flushed rows count. */
        PQfinish(k->conn);
    }
    for (size_t i = 0; i < k->nkeys; i++) {
        free(k->keys[i]);
    }
    free(k->keys);
    free(k->qtable);
    pg_buf_free(&k->log);
    pg_buf_free(&k->sql);
    free(k->row_off);
    free(k->row_len);
    pg_sink_clear_stmt(k, 0);
    for (size_t i = 0; i < k->parsed_cap; i++) {
        json_decref(k->parsed[i]);
    }
    free(k->parsed);
    free(k->vals);
    free(k->num);
    free(k->dumps);
    free(k->cols);
    free(k->kh);
    free(k->kidx);
    pg_target_free(&k->t);
    free(k);
}

static int pg_sink_parse_keys(struct pg_sink *k)
{
    if (k->t.key == NULL) {
        return VELO_OK;
    }
    const char *p = k->t.key;
    while (*p != '\0') {
        while (*p == ' ' || *p == ',') {
            p++;
        }
        size_t n = strcspn(p, ",");
        size_t m = n;
        while (m > 0 && p[m - 1] == ' ') {
            m--;
        }
        if (m > 0) {
            if (k->nkeys == 64) {
                velo_plg_error(k->ins, "at most 64 key columns");
                return VELO_ERR;
            }
            char **nk = realloc(k->keys, (k->nkeys + 1) * sizeof(*nk));
            if (nk == NULL) {
                return VELO_ERR;
            }
            k->keys = nk;
            k->keys[k->nkeys] = strndup(p, m);
            if (k->keys[k->nkeys] == NULL) {
                return VELO_ERR;
            }
            k->nkeys++;
        }
        p += n;
    }
    return VELO_OK;
}

int pg_sink_create(struct velo_instance *ins, const void *config,
                   const struct velo_connector_ctx *ctx)
{
    struct pg_sink *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    k->ins = ins;
    k->conf = *(const struct pg_conf *)config;
    k->name = ctx->name ? ctx->name : "x";
    if (pg_target_init(ins, &k->conf, ctx, &k->t) != VELO_OK) {
        free(k);
        return VELO_ERR;
    }
    struct pg_target *t = &k->t;
    if (t->mode == NULL || strcmp(t->mode, "insert") == 0) {
        k->upsert = 0;
    } else if (strcmp(t->mode, "upsert") == 0) {
        k->upsert = 1;
    } else {
        velo_plg_error(ins,
                       "%s: unknown sink mode '%s'; write 'insert' or "
                       "'upsert'",
                       t->redacted, t->mode);
        goto fail;
    }
    if (t->table == NULL) {
        velo_plg_error(ins,
                       "%s: name the table to write with '%s.table' "
                       "(or ?table= in the URI)",
                       t->redacted, k->name);
        goto fail;
    }
    if (t->query != NULL) {
        velo_plg_error(ins,
                       "%s: 'query' applies to sources; a sink writes "
                       "'%s.table'",
                       t->redacted, k->name);
        goto fail;
    }
    if (pg_sink_parse_keys(k) != VELO_OK) {
        velo_plg_error(ins, "out of memory");
        goto fail;
    }
    if (k->upsert && k->nkeys == 0) {
        velo_plg_error(ins,
                       "%s: mode 'upsert' needs the key columns: "
                       "'%s.key' = 'id' (comma-separated for several)",
                       t->redacted, k->name);
        goto fail;
    }
    if (k->conf.insert_rows <= 0 || k->conf.insert_rows > 10000) {
        velo_plg_error(ins, "insert.rows must be 1 to 10000");
        goto fail;
    }
    char err[512];
    k->conn = pg_connect(&k->conf, t, err, sizeof(err));
    if (k->conn == NULL) {
        velo_plg_error(ins, "cannot connect to %s: %s", t->redacted, err);
        goto fail;
    }
    k->qtable = pg_quote_qualified(k->conn, t->table);
    if (k->qtable == NULL) {
        velo_plg_error(ins, "%s: bad table name '%s'", t->redacted, t->table);
        goto fail;
    }
    /* A missing table is an error now, unless create.table makes it from
     * the first row. */
    int rc = VELO_OK;
    int exists = pg_sink_table_exists(k, &rc);
    if (exists < 0) {
        goto fail;
    }
    if (!exists && !t->create_table) {
        velo_plg_error(ins,
                       "table %s does not exist at %s; create it, or "
                       "set '%s.create.table' = 'true'",
                       t->table, t->redacted, k->name);
        goto fail;
    }
    k->table_checked = exists;
    ins->context = k;
    return VELO_OK;
fail:
    pg_sink_free(k);
    return VELO_ERR;
}

int pg_sink_write(struct velo_instance *ins, const struct velo_str *recs,
                  const struct velo_record_meta *meta, size_t n)
{
    struct pg_sink *k = ins->context;
    (void)meta;
    int rc = pg_sink_ready(k);
    if (rc != VELO_OK) {
        return rc; /* not accepted: the engine writes them again */
    }
    /* One row per payload (record sink); a payload of several JSON lines
     * is split, so the sink also works with a byte-stream engine. */
    for (size_t i = 0; i < n; i++) {
        const char *p = recs[i].ptr;
        const char *end = p + recs[i].len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *e = nl ? nl : end;
            size_t len = (size_t)(e - p);
            if (len > 0 && e[-1] == '\r') {
                len--;
            }
            if (len > 0 && pg_sink_log_row(k, p, len) != VELO_OK) {
                velo_plg_error(ins, "out of memory");
                return VELO_ERR;
            }
            p = nl ? nl + 1 : end;
        }
    }
    /* The rows are ours now: a lost connection from here on is repaired
     * by the next call, so it still answers OK. */
    rc = pg_sink_pump(k, 0);
    if (rc == VELO_OK && k->conf.max_tx_rows > 0 &&
        k->nrows >= (size_t)k->conf.max_tx_rows) {
        rc = pg_sink_pump(k, 1);
        if (rc == VELO_OK) {
            rc = pg_sink_commit(k);
        }
    }
    return rc == VELO_ERR ? VELO_ERR : VELO_OK;
}

int pg_sink_flush(struct velo_instance *ins)
{
    struct pg_sink *k = ins->context;
    int rc = pg_sink_ready(k);
    if (rc == VELO_OK) {
        rc = pg_sink_pump(k, 1);
    }
    if (rc == VELO_OK) {
        rc = pg_sink_commit(k);
    }
    return rc;
}

void pg_sink_destroy(struct velo_instance *ins)
{
    struct pg_sink *k = ins->context;
    if (k != NULL && k->nrows > 0) {
        velo_plg_warn(ins,
                      "%zu rows written to table %s since the last "
                      "flush were not committed",
                      k->nrows, k->t.table);
    }
    if (k != NULL) {
        velo_plg_debug(ins, "%lld rows committed, %lld reconnects",
                       (long long)k->rows_committed, (long long)k->reconnects);
    }
    pg_sink_free(k);
    ins->context = NULL;
}
