/*
 * PostgreSQL sink: rows (JSON objects, one per payload) written with COPY
 * in text format, one transaction per batch, over a nonblocking libpq
 * connection driven by the worker's event loop.
 *
 * Mode insert: COPY straight into the table. Mode upsert: COPY into a
 * TEMP staging table, then one INSERT ... SELECT DISTINCT ON (key) ...
 * ON CONFLICT (key) DO UPDATE, so the last row of a key inside one batch
 * wins (ON CONFLICT cannot touch one row twice in one statement); a row
 * whose "_op" is "delete" deletes its key instead, by the same rule.
 * Values travel as COPY data, never as SQL text; identifiers are quoted
 * with PQescapeIdentifier. The rows are read with a small JSON scanner
 * that writes COPY text directly (no tree per row, nothing allocated per
 * record: the batch buffers grow geometrically and are reused).
 *
 * One batch is one simple-query string
 *   BEGIN; SELECT txid_current(); [CREATE TABLE ...;]
 *   { COPY t (cols) FROM STDIN; | CREATE TEMP TABLE stage ...;
 *     COPY stage FROM STDIN; [DELETE ...;] INSERT ... ON CONFLICT ...; }
 *   COMMIT
 * answered in one round trip: libpq hands back each statement's result in
 * turn and PGRES_COPY_IN where the server wants the data. One segment per
 * column set: rows of one query have the same columns, so there is
 * normally one.
 *
 * Flow: sink_write appends to the filling batch; when no batch is in
 * flight and the filling one holds insert.rows rows (or at sink_flush) it
 * is sent. An event on PQsocket (EV_READ, plus EV_WRITE while libpq has
 * unsent output) advances the state machine and calls ctx->wake when the
 * batch has committed. sink_write answers VELO_AGAIN only when a batch is
 * in flight and the next is full (max.transaction.rows); sink_flush
 * answers VELO_AGAIN until everything taken has committed.
 *
 * A lost connection: the server rolled the open transaction back, so the
 * sink reconnects (with backoff, answering VELO_AGAIN meanwhile) and sends
 * the batch again from its own copy. When the connection went after the
 * last COPY's end was sent (the server may have run the COMMIT), the
 * transaction's fate is asked with txid_status() on the new connection:
 * committed rows are not written twice. Reconnecting does not block
 * either (PQconnectStartParams, PQconnectPoll when the socket is ready,
 * bounded by connect.timeout); the txid_status() question is one short
 * blocking query, bounded like a batch's answer.
 *
 * A server that keeps the connection and stops answering (stopped, a
 * frozen network: TCP keepalive would take hours) is bounded on the
 * client: a batch in flight whose socket shows no sign of life (neither
 * readable nor taking the output it waits to send) for statement.timeout
 * plus connect.timeout (the server cancels any statement before that;
 * 5 minutes when statement.timeout is 0) is treated as a lost connection:
 * counted, dropped, and replayed as above. A timer on the loop notices it
 * (and ends backoffs and connect attempts) when the engine is not calling.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "pg-internal.h"

#define PG_BACKOFF_FIRST_MS 100
#define PG_BACKOFF_MAX_MS 5000
/* Lost connections while writing one batch before giving up. */
#define PG_MAX_LOSSES 20
/* COPY data is handed to libpq in pieces of this size, so its output
 * buffer stays small while the socket drains. */
#define PG_COPY_CHUNK (256u << 10)
/* At most this much COPY data waits in libpq's buffer for the socket. A
 * small window (4 MiB) measured 20% slower inserts than handing libpq the
 * whole batch: the engine's turns, not the socket, then set the pace. So
 * the window is as big as a batch may be: libpq's copy is bounded by the
 * batch, and a socket that stops draining stops the sink at the next
 * batch (back-pressure) rather than growing memory. */
#define PG_COPY_WINDOW PG_FILL_MAX_BYTES
/* The filling batch stops taking rows past this while another is in
 * flight (besides max.transaction.rows). */
#define PG_FILL_MAX_BYTES (64u << 20)

/* What the first row's values look like, for create.table. */
enum pg_kind { PG_K_TEXT, PG_K_NUMBER, PG_K_BOOL, PG_K_JSON, PG_K_NULL };

/* Rows with one column set: one COPY. */
struct pg_seg {
    size_t col_first; /* index of its first column in batch->col_off */
    size_t ncols;
    size_t data_off, data_len; /* its COPY text in batch->copy */
    size_t rows;
    int has_delete;
};

/* One transaction's rows. */
struct pg_batch {
    struct pg_buf copy;  /* COPY text of every segment, in order */
    struct pg_buf names; /* column names, each NUL-terminated */
    size_t *col_off;     /* per column of every segment: offset in names */
    size_t ncol, col_cap;
    struct pg_seg *segs;
    size_t nsegs, segs_cap;
    struct pg_buf kinds; /* enum pg_kind of the first row's columns */
    size_t rows;
};

/* One key/value of the row being read. */
struct pg_kv {
    size_t ko, kl; /* key in row_keys */
    size_t vo, vl; /* COPY-escaped value in row_vals */
    int null;
    int kind;
};

enum pg_state {
    PG_IDLE,    /* nothing sent */
    PG_RESULTS, /* reading results until COPY_IN or the end */
    PG_COPYING  /* sending segment seg_at's data */
};

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

    /* The loop (NULL for an engine before ABI 1.2: then sink_flush waits
     * on the socket itself). */
    struct event_base *base;
    void (*wake)(void *);
    void *wake_arg;
    struct event *ev;
    short ev_flags;
    int ev_fd;
    int want_write;

    /* b[fill] takes rows; b[!fill] is in flight while `flying`. */
    struct pg_batch b[2];
    int fill;
    int flying;
    int flush_wanted;
    enum pg_state state;
    size_t seg_at;    /* segment whose COPY comes next or is being sent */
    size_t put_off;   /* bytes of it handed to libpq */
    size_t unflushed; /* handed to libpq since its buffer was last empty */
    int end_sent;     /* the last COPY ended: COMMIT may run any moment */
    int committed;    /* the COMMIT's result came */
    char xid[32];     /* txid_current() of the batch in flight */
    int commit_in_doubt;
    int failed;

    /* Reconnection. */
    int broken;
    int connecting; /* a nonblocking connection attempt is under way */
    PostgresPollingStatusType connect_poll; /* what it waits for */
    int64_t connect_started, connect_deadline;
    char last_err[512]; /* the last connect failure logged */
    int64_t lost_at_ms, next_try_ms, backoff_ms, attempts;
    int64_t reconnects, rows_committed;
    int64_t losses; /* connections lost since the last COMMIT */

    /* A server that accepts and then never answers (stopped, a frozen
     * network) would hold the batch in flight for good: io_at is the last
     * sign of life of its socket (readable, or writable while output
     * waited), and tmo fires when none came for the answer limit. */
    int64_t io_at;
    struct event *tmo; /* also ends a backoff and a connect attempt */
    int64_t tmo_due;   /* when tmo fires, 0: not armed */

    /* The row being read, reused. */
    struct pg_buf row_keys, row_vals;
    struct pg_kv *kv;
    size_t nkv, kv_cap;
    long *col_kv; /* per column of the current segment: its kv, or -1 */
    size_t col_kv_cap;
    struct pg_buf sql;

    /* Metrics (labels connector, sink), when the host has them. */
    struct velo_metric *m_out, *m_bytes_out, *m_errors, *m_reconnects,
        *m_pending;
};

/* ---- small helpers ------------------------------------------------------ */

static void pg_sink_metric_add(struct pg_sink *k, struct velo_metric *m,
                               double v)
{
    if (m != NULL && VELO_HOST_HAS(k->ins->host, metric_add)) {
        k->ins->host->metric_add(m, v);
    }
}

static size_t pg_sink_pending_rows(const struct pg_sink *k)
{
    return k->b[k->fill].rows + (k->flying ? k->b[!k->fill].rows : 0);
}

static void pg_sink_metric_pending(struct pg_sink *k)
{
    if (k->m_pending != NULL && VELO_HOST_HAS(k->ins->host, metric_set)) {
        k->ins->host->metric_set(k->m_pending, (double)pg_sink_pending_rows(k));
    }
}

static void pg_sink_metrics_init(struct pg_sink *k)
{
    const struct velo_host_api *h = k->ins->host;
    char labels[256];
    snprintf(labels, sizeof(labels), "connector=postgres,sink=%s", k->name);
    if (VELO_HOST_HAS(h, metric_counter)) {
        k->m_out = h->metric_counter("velo_connector_records_out_total",
                                     "records written (committed)", labels);
        k->m_bytes_out =
            h->metric_counter("velo_connector_bytes_out_total",
                              "COPY bytes written (committed)", labels);
        k->m_errors =
            h->metric_counter("velo_connector_errors_total",
                              "connection and command errors", labels);
        k->m_reconnects = h->metric_counter("velo_connector_reconnects_total",
                                            "reconnections", labels);
    }
    if (VELO_HOST_HAS(h, metric_gauge)) {
        k->m_pending =
            h->metric_gauge("velo_connector_pending_rows",
                            "rows taken and not yet committed", labels);
    }
}

static void pg_batch_clear(struct pg_batch *b)
{
    b->copy.len = 0;
    b->names.len = 0;
    b->ncol = 0;
    b->nsegs = 0;
    b->kinds.len = 0;
    b->rows = 0;
    /* A big batch's buffer is not kept around between them. */
    if (b->copy.cap > (PG_FILL_MAX_BYTES * 2)) {
        pg_buf_free(&b->copy);
    }
}

static void pg_batch_free(struct pg_batch *b)
{
    pg_buf_free(&b->copy);
    pg_buf_free(&b->names);
    pg_buf_free(&b->kinds);
    free(b->col_off);
    free(b->segs);
    memset(b, 0, sizeof(*b));
}

static const char *pg_batch_col(const struct pg_batch *b,
                                const struct pg_seg *s, size_t c)
{
    return b->names.data + b->col_off[s->col_first + c];
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

/* ---- the event ---------------------------------------------------------- */

static void pg_sink_on_io(evutil_socket_t fd, short what, void *arg);

static void pg_sink_unwatch(struct pg_sink *k)
{
    if (k->ev != NULL) {
        event_free(k->ev);
        k->ev = NULL;
        k->ev_flags = 0;
    }
}

/* Keep the socket's event in line with what libpq waits for. */
static void pg_sink_watch(struct pg_sink *k)
{
    if (k->base == NULL || k->conn == NULL) {
        return;
    }
    short want = EV_READ | EV_PERSIST | (k->want_write ? EV_WRITE : 0);
    int fd = PQsocket(k->conn);
    if (fd < 0) {
        return;
    }
    /* While connecting, libpq may move to another socket (the next
     * address of a host). */
    if (k->ev != NULL && k->ev_flags == want && k->ev_fd == fd) {
        return;
    }
    pg_sink_unwatch(k);
    k->ev_fd = fd;
    k->ev = event_new(k->base, fd, want, pg_sink_on_io, k);
    if (k->ev == NULL || event_add(k->ev, NULL) != 0) {
        /* Without the event the engine's own turns still drive us. */
        velo_plg_warn(k->ins, "cannot watch the connection's socket");
        pg_sink_unwatch(k);
        return;
    }
    k->ev_flags = want;
}

/* When the state needs a look without any socket event: the end of a
 * backoff, a connect attempt's deadline, the silence limit of a batch in
 * flight. @return 0 when nothing is due. */
static int64_t pg_sink_due(const struct pg_sink *k);

/* Keep the timer at the earliest thing due. It is not moved later for
 * each sign of life (that would be an event_add per event): firing early
 * just re-arms it. */
static void pg_sink_arm(struct pg_sink *k)
{
    if (k->tmo == NULL) {
        return;
    }
    int64_t due = pg_sink_due(k);
    if (due == 0) {
        if (k->tmo_due != 0) {
            evtimer_del(k->tmo);
            k->tmo_due = 0;
        }
        return;
    }
    if (k->tmo_due != 0 && k->tmo_due <= due) {
        return;
    }
    if (pg_timer_at(k->tmo, due) == 0) {
        k->tmo_due = due;
    }
}

/* ---- connection loss and errors ----------------------------------------- */

static void pg_sink_drop_conn(struct pg_sink *k)
{
    pg_sink_unwatch(k);
    if (k->conn != NULL) {
        PQfinish(k->conn);
        k->conn = NULL;
    }
    k->want_write = 0;
    k->state = PG_IDLE;
}

/* The connection is gone: the server rolled the transaction back (or,
 * after the last COPY's end, maybe committed it: asked on reconnect). */
static void pg_sink_lost_why(struct pg_sink *k, const char *doing,
                             const char *err)
{
    size_t rows = k->flying ? k->b[!k->fill].rows : 0;
    velo_plg_warn(k->ins,
                  "connection to %s lost while %s (%s); reconnecting, "
                  "then writing the %zu uncommitted rows again",
                  k->t.redacted, doing, err, rows);
    pg_sink_metric_add(k, k->m_errors, 1);
    if (k->flying && k->end_sent && !k->committed && k->xid[0] != '\0') {
        k->commit_in_doubt = 1;
    }
    pg_sink_drop_conn(k);
    k->broken = 1;
    k->losses++;
    k->lost_at_ms = pg_now_ms();
    k->next_try_ms = k->lost_at_ms;
    k->backoff_ms = PG_BACKOFF_FIRST_MS;
    k->attempts = 0;
}

static void pg_sink_lost(struct pg_sink *k, const char *doing,
                         const PGresult *res)
{
    char err[512];
    pg_result_message(k->conn, res, err, sizeof(err));
    pg_sink_lost_why(k, doing, err);
}

/* How long a batch in flight may go without a sign of life from the
 * socket: the server cancels any statement after statement.timeout, so
 * past that plus connect.timeout (the lookups' rule) it is not working on
 * our batch but gone; 5 minutes when statement.timeout is 0. */
static int64_t pg_sink_answer_limit(const struct pg_sink *k)
{
    return k->conf.statement_timeout > 0
               ? k->conf.statement_timeout + k->conf.connect_timeout
               : 300000;
}

/* The batch in flight had no sign of life for the answer limit: treat
 * the connection as lost (the replay and commit-in-doubt logic take it
 * from there). @return 1 when it was dropped. */
static int pg_sink_check_silence(struct pg_sink *k, int64_t now)
{
    if (!k->flying || k->broken || k->conn == NULL || k->state == PG_IDLE) {
        return 0;
    }
    int64_t limit = pg_sink_answer_limit(k);
    if (now - k->io_at < limit) {
        return 0;
    }
    char err[160];
    snprintf(err, sizeof(err),
             "no answer from the server for %lld ms (statement.timeout "
             "+ connect.timeout)",
             (long long)(now - k->io_at));
    pg_sink_lost_why(k, k->upsert ? "upserting rows" : "inserting rows", err);
    return 1;
}

/* A failed result: reconnect when the connection went, else fail for
 * good with the server's reason (and where in the COPY data it was). */
static int pg_sink_result_failed(struct pg_sink *k, PGresult *res)
{
    const char *doing = k->upsert ? "upserting rows" : "inserting rows";
    if (pg_conn_lost(k->conn, res)) {
        pg_sink_lost(k, doing, res);
        PQclear(res);
        return VELO_AGAIN;
    }
    char err[512];
    pg_result_message(k->conn, res, err, sizeof(err));
    const char *where = res ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;
    char ctxt[256] = "";
    if (where != NULL) {
        pg_message(where, ctxt, sizeof(ctxt));
    }
    velo_plg_error(k->ins,
                   "sink %s: %s into table %s at %s failed: %s%s%s%s; "
                   "the batch of %zu rows was rolled back",
                   k->name, doing, k->t.table, k->t.redacted, err,
                   where ? " (at " : "", ctxt, where ? ")" : "",
                   k->b[!k->fill].rows);
    pg_sink_metric_add(k, k->m_errors, 1);
    PQclear(res);
    k->failed = 1;
    return VELO_ERR;
}

/* A connection attempt failed: give up past reconnect.timeout, else back
 * off. @return VELO_AGAIN or VELO_ERR. */
static int pg_sink_connect_failed(struct pg_sink *k, const char *err,
                                  int64_t now)
{
    if (k->conf.reconnect_timeout > 0 &&
        now - k->lost_at_ms >= k->conf.reconnect_timeout) {
        velo_plg_error(k->ins,
                       "cannot reconnect to %s (%s); gave up "
                       "after %lld ms (reconnect.timeout); %zu "
                       "rows were not written",
                       k->t.redacted, err, (long long)(now - k->lost_at_ms),
                       pg_sink_pending_rows(k));
        return VELO_ERR;
    }
    /* The first failure, every tenth, and whenever the reason changes
     * (refused, then silent, ...): enough to follow without flooding. */
    if (k->attempts == 1 || k->attempts % 10 == 0 ||
        strcmp(err, k->last_err) != 0) {
        velo_plg_warn(k->ins,
                      "cannot reconnect to %s (attempt %lld): %s; "
                      "retrying",
                      k->t.redacted, (long long)k->attempts, err);
        snprintf(k->last_err, sizeof(k->last_err), "%s", err);
    }
    pg_sink_metric_add(k, k->m_errors, 1);
    k->next_try_ms = now + k->backoff_ms;
    k->backoff_ms = k->backoff_ms * 2 > PG_BACKOFF_MAX_MS ? PG_BACKOFF_MAX_MS
                                                          : k->backoff_ms * 2;
    return VELO_AGAIN;
}

/* Drive a connection attempt without waiting: PQconnectPoll only once the
 * socket is ready for what it last asked (calling it earlier could take
 * a connect still in progress for a finished one). @return VELO_OK
 * (connected), VELO_AGAIN, VELO_ERR. */
static int pg_sink_connecting(struct pg_sink *k, int64_t now)
{
    char err[512];
    struct pollfd p = {
        .fd = PQsocket(k->conn),
        .events = k->connect_poll == PGRES_POLLING_READING ? POLLIN : POLLOUT};
    PostgresPollingStatusType st = k->connect_poll;
    if (p.fd < 0 || poll(&p, 1, 0) != 0) {
        st = PQconnectPoll(k->conn);
    }
    if (st == PGRES_POLLING_OK) {
        k->connecting = 0;
        return VELO_OK;
    }
    if (st == PGRES_POLLING_FAILED || now >= k->connect_deadline) {
        if (st == PGRES_POLLING_FAILED) {
            pg_message(PQerrorMessage(k->conn), err, sizeof(err));
        } else {
            snprintf(err, sizeof(err),
                     "no answer within %lld ms (connect.timeout)",
                     (long long)(k->connect_deadline - k->connect_started));
        }
        pg_sink_drop_conn(k);
        k->connecting = 0;
        return pg_sink_connect_failed(k, err, now);
    }
    k->connect_poll = st;
    k->want_write = st == PGRES_POLLING_WRITING;
    pg_sink_watch(k);
    return VELO_AGAIN;
}

/* One query with one parameter on the fresh (blocking) connection,
 * waiting at most the answer limit. @return its last result (NULL: lost,
 * or *timed_out set). */
static PGresult *pg_sink_ask(struct pg_sink *k, const char *sql,
                             const char *const *params, int *timed_out)
{
    *timed_out = 0;
    if (!PQsendQueryParams(k->conn, sql, 1, NULL, params, NULL, NULL, 0)) {
        return NULL;
    }
    int64_t deadline = pg_now_ms() + pg_sink_answer_limit(k);
    PGresult *last = NULL;
    for (;;) {
        while (!PQisBusy(k->conn)) {
            PGresult *r = PQgetResult(k->conn);
            if (r == NULL) {
                return last;
            }
            PQclear(last);
            last = r;
        }
        int64_t left = deadline - pg_now_ms();
        if (left <= 0) {
            PQclear(last);
            *timed_out = 1;
            return NULL;
        }
        struct pollfd p = {.fd = PQsocket(k->conn), .events = POLLIN};
        if (poll(&p, 1, (int)(left > 1000 ? 1000 : left)) > 0 &&
            PQconsumeInput(k->conn) == 0) {
            PQclear(last);
            return NULL;
        }
    }
}

/* (Re)connect when the connection was lost, without blocking the worker
 * (the socket's event drives the attempt); resolve a COMMIT in doubt.
 * @return VELO_OK (connected), VELO_AGAIN (not yet), VELO_ERR. */
static int pg_sink_ready(struct pg_sink *k)
{
    if (!k->broken) {
        return VELO_OK;
    }
    int64_t now = pg_now_ms();
    char err[512];
    if (!k->connecting) {
        if (now < k->next_try_ms) {
            return VELO_AGAIN;
        }
        size_t rows = k->flying ? k->b[!k->fill].rows : 0;
        if (k->losses >= PG_MAX_LOSSES) {
            /* The same rows keep failing: not a flaky network but
             * something about them (or the server) that a reconnect does
             * not fix. */
            velo_plg_error(k->ins,
                           "%s: the connection was lost %lld times "
                           "writing the same %zu rows; giving up",
                           k->t.redacted, (long long)k->losses, rows);
            return VELO_ERR;
        }
        k->attempts++;
        k->conn = pg_connect_start(&k->conf, &k->t, err, sizeof(err));
        if (k->conn == NULL) {
            return pg_sink_connect_failed(k, err, now);
        }
        k->connecting = 1;
        /* As if PQconnectPoll had asked to write (libpq's contract). */
        k->connect_poll = PGRES_POLLING_WRITING;
        k->connect_started = now;
        k->connect_deadline =
            now +
            (k->conf.connect_timeout > 1000 ? k->conf.connect_timeout : 1000);
    }
    int rc = pg_sink_connecting(k, now);
    if (rc != VELO_OK) {
        return rc;
    }
    pg_sink_unwatch(k); /* watched again, for queries, below */
    k->broken = 0;
    k->state = PG_IDLE;
    if (k->commit_in_doubt) {
        /* One short blocking question, on reconnect only, bounded like
         * a batch's answer (a server that froze again must not hold the
         * worker). */
        const char *params[1] = {k->xid};
        int timed_out = 0;
        PGresult *r = pg_sink_ask(k, "SELECT txid_status($1::bigint)", params,
                                  &timed_out);
        if (timed_out) {
            snprintf(err, sizeof(err),
                     "no answer from the server for %lld ms "
                     "(statement.timeout + connect.timeout)",
                     (long long)pg_sink_answer_limit(k));
            pg_sink_lost_why(k, "asking whether the last COMMIT happened", err);
            return VELO_AGAIN;
        }
        const char *code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        const char *st = "";
        if (code != NULL && strcmp(code, "22023") == 0) {
            /* "transaction ID is in the future": the server restarted
             * without even the transaction's start in its WAL, so its
             * COMMIT never became durable. */
            st = "aborted";
        } else if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
            if (pg_conn_lost(k->conn, r)) {
                pg_sink_lost(k, "asking whether the last COMMIT happened", r);
                PQclear(r);
                return VELO_AGAIN;
            }
            pg_result_message(k->conn, r, err, sizeof(err));
            velo_plg_error(k->ins,
                           "%s: asking whether the last COMMIT happened: %s",
                           k->t.redacted, err);
            PQclear(r);
            return VELO_ERR;
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
        if (committed && k->flying) {
            velo_plg_info(k->ins,
                          "reconnected to %s; the COMMIT of %zu rows "
                          "had succeeded",
                          k->t.redacted, k->b[!k->fill].rows);
            struct pg_batch *fly = &k->b[!k->fill];
            k->rows_committed += (int64_t)fly->rows;
            pg_sink_metric_add(k, k->m_out, (double)fly->rows);
            pg_sink_metric_add(k, k->m_bytes_out, (double)fly->copy.len);
            pg_batch_clear(fly);
            k->flying = 0;
            k->losses = 0;
        }
    }
    if (PQsetnonblocking(k->conn, 1) != 0) {
        pg_message(PQerrorMessage(k->conn), err, sizeof(err));
        velo_plg_error(k->ins, "%s: cannot make the connection nonblocking: %s",
                       k->t.redacted, err);
        return VELO_ERR;
    }
    k->reconnects++;
    pg_sink_metric_add(k, k->m_reconnects, 1);
    velo_plg_info(k->ins,
                  "reconnected to %s (reconnect %lld); writing %zu "
                  "uncommitted rows again",
                  k->t.redacted, (long long)k->reconnects,
                  k->flying ? k->b[!k->fill].rows : 0);
    pg_sink_watch(k);
    return VELO_OK;
}

/* ---- reading rows ------------------------------------------------------- */

static int pg_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int pg_hex4(const char *p, const char *end, unsigned *out)
{
    if (end - p < 4) {
        return -1;
    }
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') {
            v |= (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            v |= (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            v |= (unsigned)(c - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

/* One byte of a value, escaped for COPY text: backslash, and the
 * delimiter and row separators (tab, newline, carriage return). */
static void pg_copy_byte(struct pg_buf *o, unsigned char c)
{
    char *w = o->data + o->len;
    char e = c == '\\'  ? '\\'
             : c == '\t' ? 't'
             : c == '\n' ? 'n'
             : c == '\r' ? 'r'
                         : 0;
    if (e != 0) {
        w[0] = '\\';
        w[1] = e;
        o->len += 2;
    } else {
        w[0] = (char)c;
        o->len += 1;
    }
}

/* A JSON string at *pp (after its opening quote), decoded. With copy,
 * escaped for COPY into o; else the raw bytes. A NUL (\u0000), which
 * PostgreSQL text cannot hold, ends the value (what the server would keep
 * of a C string). @return 0, or -1 on a malformed string. */
static int pg_json_string(const char **pp, const char *end, struct pg_buf *o,
                          int copy)
{
    const char *p = *pp;
    /* At most 2 bytes out per byte in (escapes shrink), 3 per \uXXXX. */
    if (pg_buf_reserve(o, (size_t)(end - p) * 2 + 8) != VELO_OK) {
        return -2;
    }
    int cut = 0;
    while (p < end && *p != '"') {
        unsigned char c = (unsigned char)*p++;
        if (c == '\\') {
            if (p >= end) {
                return -1;
            }
            char e = *p++;
            unsigned u = 0;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                u = (unsigned char)e;
                break;
            case 'b':
                u = '\b';
                break;
            case 'f':
                u = '\f';
                break;
            case 'n':
                u = '\n';
                break;
            case 'r':
                u = '\r';
                break;
            case 't':
                u = '\t';
                break;
            case 'u': {
                if (pg_hex4(p, end, &u) != 0) {
                    return -1;
                }
                p += 4;
                if (u >= 0xD800 && u <= 0xDBFF) {
                    unsigned lo;
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' ||
                        pg_hex4(p + 2, end, &lo) != 0 || lo < 0xDC00 ||
                        lo > 0xDFFF) {
                        return -1;
                    }
                    p += 6;
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                }
                break;
            }
            default:
                return -1;
            }
            if (u == 0) {
                cut = 1;
            }
            if (cut) {
                continue;
            }
            unsigned char utf[4];
            int n;
            if (u < 0x80) {
                utf[0] = (unsigned char)u;
                n = 1;
            } else if (u < 0x800) {
                utf[0] = (unsigned char)(0xC0 | (u >> 6));
                utf[1] = (unsigned char)(0x80 | (u & 0x3F));
                n = 2;
            } else if (u < 0x10000) {
                utf[0] = (unsigned char)(0xE0 | (u >> 12));
                utf[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
                utf[2] = (unsigned char)(0x80 | (u & 0x3F));
                n = 3;
            } else {
                utf[0] = (unsigned char)(0xF0 | (u >> 18));
                utf[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
                utf[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
                utf[3] = (unsigned char)(0x80 | (u & 0x3F));
                n = 4;
            }
            for (int i = 0; i < n; i++) {
                if (copy) {
                    pg_copy_byte(o, utf[i]);
                } else {
                    o->data[o->len++] = (char)utf[i];
                }
            }
            continue;
        }
        if (cut) {
            continue;
        }
        if (copy) {
            pg_copy_byte(o, c);
        } else {
            o->data[o->len++] = (char)c;
        }
    }
    if (p >= end) {
        return -1;
    }
    *pp = p + 1;
    return 0;
}

/* A nested object or array at *pp: its JSON text, COPY-escaped (for a
 * json/jsonb column). @return 0, -1 malformed, -2 no memory. */
static int pg_json_nested(const char **pp, const char *end, struct pg_buf *o)
{
    const char *p = *pp;
    int depth = 0;
    int in_str = 0;
    const char *start = p;
    for (; p < end; p++) {
        char c = *p;
        if (in_str) {
            if (c == '\\') {
                p++;
            } else if (c == '"') {
                in_str = 0;
            }
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) {
                p++;
                break;
            }
        }
    }
    if (depth != 0 || p > end) {
        return -1;
    }
    size_t n = (size_t)(p - start);
    if (pg_buf_reserve(o, n * 2 + 1) != VELO_OK) {
        return -2;
    }
    for (size_t i = 0; i < n; i++) {
        pg_copy_byte(o, (unsigned char)start[i]);
    }
    *pp = p;
    return 0;
}

/* A number's text: integers as written; others as the shortest text that
 * reads back as the same double (as the INSERT sink sent them, so a whole
 * 2.0 still fits an integer column). */
static int pg_json_number(const char **pp, const char *end, struct pg_buf *o)
{
    const char *p = *pp;
    const char *start = p;
    int real = 0;
    while (p < end && *p != '\0' && strchr("0123456789+-.eE", *p) != NULL) {
        real |= *p == '.' || *p == 'e' || *p == 'E';
        p++;
    }
    size_t n = (size_t)(p - start);
    if (n == 0) {
        return -1;
    }
    char tmp[64], num[40];
    if (real && n < sizeof(tmp)) {
        memcpy(tmp, start, n);
        tmp[n] = '\0';
        char *e;
        double d = strtod(tmp, &e);
        if (*e != '\0') {
            return -1;
        }
        snprintf(num, sizeof(num), "%.15g", d);
        if (strtod(num, NULL) != d) {
            snprintf(num, sizeof(num), "%.17g", d);
        }
        start = num;
        n = strlen(num);
    }
    if (pg_buf_add(o, start, n) != VELO_OK) {
        return -2;
    }
    *pp = p;
    return 0;
}

static int pg_literal(const char **pp, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *pp) < n || memcmp(*pp, lit, n) != 0) {
        return -1;
    }
    *pp += n;
    return 0;
}

/* Read one row into k->kv. *del: its "_op" is "delete". @return 0, -1
 * (not a flat JSON object), -2 (no memory). */
static int pg_sink_scan(struct pg_sink *k, const char *p, size_t len, int *del)
{
    const char *end = p + len;
    k->nkv = 0;
    k->row_keys.len = 0;
    k->row_vals.len = 0;
    *del = 0;
    while (p < end && pg_is_ws(*p)) {
        p++;
    }
    if (p >= end || *p++ != '{') {
        return -1;
    }
    for (;;) {
        while (p < end && pg_is_ws(*p)) {
            p++;
        }
        if (p < end && *p == '}' && k->nkv == 0) {
            p++;
            break;
        }
        if (p >= end || *p++ != '"') {
            return -1;
        }
        if (k->nkv == k->kv_cap) {
            size_t cap = k->kv_cap ? k->kv_cap * 2 : 32;
            struct pg_kv *n = realloc(k->kv, cap * sizeof(*n));
            if (n == NULL) {
                return -2;
            }
            k->kv = n;
            k->kv_cap = cap;
        }
        struct pg_kv *kv = &k->kv[k->nkv];
        kv->ko = k->row_keys.len;
        int rc = pg_json_string(&p, end, &k->row_keys, 0);
        if (rc != 0) {
            return rc;
        }
        kv->kl = k->row_keys.len - kv->ko;
        if (pg_buf_add(&k->row_keys, "", 1) != VELO_OK) {
            return -2;
        }
        while (p < end && pg_is_ws(*p)) {
            p++;
        }
        if (p >= end || *p++ != ':') {
            return -1;
        }
        while (p < end && pg_is_ws(*p)) {
            p++;
        }
        if (p >= end) {
            return -1;
        }
        kv->vo = k->row_vals.len;
        kv->null = 0;
        char c = *p;
        if (c == '"') {
            p++;
            kv->kind = PG_K_TEXT;
            rc = pg_json_string(&p, end, &k->row_vals, 1);
        } else if (c == '{' || c == '[') {
            kv->kind = PG_K_JSON;
            rc = pg_json_nested(&p, end, &k->row_vals);
        } else if (c == 't') {
            kv->kind = PG_K_BOOL;
            rc = pg_literal(&p, end, "true");
            rc = rc ? rc : pg_buf_adds(&k->row_vals, "true") ? -2 : 0;
        } else if (c == 'f') {
            kv->kind = PG_K_BOOL;
            rc = pg_literal(&p, end, "false");
            rc = rc ? rc : pg_buf_adds(&k->row_vals, "false") ? -2 : 0;
        } else if (c == 'n') {
            kv->kind = PG_K_NULL;
            kv->null = 1;
            rc = pg_literal(&p, end, "null");
        } else {
            kv->kind = PG_K_NUMBER;
            rc = pg_json_number(&p, end, &k->row_vals);
        }
        if (rc != 0) {
            return rc;
        }
        kv->vl = k->row_vals.len - kv->vo;
        const char *key = k->row_keys.data + kv->ko;
        if (kv->kl == 3 && memcmp(key, "_op", 3) == 0) {
            /* The changelog's operation: not a column. */
            *del = kv->kind == PG_K_TEXT && kv->vl == 6 &&
                   memcmp(k->row_vals.data + kv->vo, "delete", 6) == 0;
        } else {
            k->nkv++;
        }
        while (p < end && pg_is_ws(*p)) {
            p++;
        }
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        if (p < end && *p == '}') {
            p++;
            break;
        }
        return -1;
    }
    while (p < end && pg_is_ws(*p)) {
        p++;
    }
    return p == end ? 0 : -1;
}

/* Map the row's keys onto segment s's columns (k->col_kv). @return 1 when
 * every key is one of them, 0 when the row needs another segment. */
static int pg_sink_fits(struct pg_sink *k, const struct pg_batch *b,
                        const struct pg_seg *s)
{
    for (size_t c = 0; c < s->ncols; c++) {
        k->col_kv[c] = -1;
    }
    for (size_t i = 0; i < k->nkv; i++) {
        const char *key = k->row_keys.data + k->kv[i].ko;
        /* Rows of one query have their keys in the same order. */
        size_t c = i;
        if (!(c < s->ncols && strcmp(pg_batch_col(b, s, c), key) == 0)) {
            for (c = 0; c < s->ncols; c++) {
                if (strcmp(pg_batch_col(b, s, c), key) == 0) {
                    break;
                }
            }
            if (c == s->ncols) {
                return 0;
            }
        }
        k->col_kv[c] = (long)i;
    }
    return 1;
}

static int pg_sink_col_kv_reserve(struct pg_sink *k, size_t n)
{
    if (n <= k->col_kv_cap) {
        return VELO_OK;
    }
    size_t cap = k->col_kv_cap ? k->col_kv_cap : 32;
    while (cap < n) {
        cap *= 2;
    }
    long *nc = realloc(k->col_kv, cap * sizeof(*nc));
    if (nc == NULL) {
        return VELO_ERR;
    }
    k->col_kv = nc;
    k->col_kv_cap = cap;
    return VELO_OK;
}

/* Start a segment whose columns are the row's keys. @return VELO_OK,
 * VELO_ERR (logged). */
static int pg_sink_new_seg(struct pg_sink *k, struct pg_batch *b)
{
    if (k->nkv == 0) {
        velo_plg_error(k->ins, "sink %s: a row has no columns (%s)", k->name,
                       k->t.redacted);
        return VELO_ERR;
    }
    for (size_t i = 0; i < k->nkeys; i++) {
        size_t j = 0;
        while (j < k->nkv &&
               strcmp(k->row_keys.data + k->kv[j].ko, k->keys[i]) != 0) {
            j++;
        }
        if (k->upsert && j == k->nkv) {
            velo_plg_error(k->ins,
                           "sink %s: key column '%s' is not in the rows "
                           "written to table %s (%s)",
                           k->name, k->keys[i], k->t.table, k->t.redacted);
            return VELO_ERR;
        }
    }
    if (b->nsegs == b->segs_cap) {
        size_t cap = b->segs_cap ? b->segs_cap * 2 : 4;
        struct pg_seg *ns = realloc(b->segs, cap * sizeof(*ns));
        if (ns == NULL) {
            goto oom;
        }
        b->segs = ns;
        b->segs_cap = cap;
    }
    if (b->ncol + k->nkv > b->col_cap) {
        size_t cap = b->col_cap ? b->col_cap : 32;
        while (cap < b->ncol + k->nkv) {
            cap *= 2;
        }
        size_t *nc = realloc(b->col_off, cap * sizeof(*nc));
        if (nc == NULL) {
            goto oom;
        }
        b->col_off = nc;
        b->col_cap = cap;
    }
    if (pg_sink_col_kv_reserve(k, k->nkv) != VELO_OK) {
        goto oom;
    }
    struct pg_seg *s = &b->segs[b->nsegs];
    memset(s, 0, sizeof(*s));
    s->col_first = b->ncol;
    s->data_off = b->copy.len;
    for (size_t i = 0; i < k->nkv; i++) {
        b->col_off[b->ncol++] = b->names.len;
        if (pg_buf_add(&b->names, k->row_keys.data + k->kv[i].ko,
                       k->kv[i].kl + 1) != VELO_OK) {
            goto oom;
        }
        s->ncols++;
    }
    b->nsegs++;
    return VELO_OK;
oom:
    velo_plg_error(k->ins, "out of memory");
    return VELO_ERR;
}

/* Take one row into the filling batch. @return VELO_OK or VELO_ERR. */
static int pg_sink_take(struct pg_sink *k, const char *p, size_t len)
{
    struct pg_batch *b = &k->b[k->fill];
    int del;
    int rc = pg_sink_scan(k, p, len, &del);
    if (rc == -2) {
        velo_plg_error(k->ins, "out of memory");
        return VELO_ERR;
    }
    if (rc != 0) {
        /* The payload is a view, not a C string: bound what is shown. */
        velo_plg_error(k->ins,
                       "sink %s: a row is not a JSON object: '%.*s'; the "
                       "PostgreSQL sink needs '%s.format' = 'json'",
                       k->name, (int)(len < 80 ? len : 80), p, k->name);
        return VELO_ERR;
    }
    struct pg_seg *s = b->nsegs ? &b->segs[b->nsegs - 1] : NULL;
    if (s == NULL || !pg_sink_fits(k, b, s)) {
        if (pg_sink_new_seg(k, b) != VELO_OK) {
            return VELO_ERR;
        }
        s = &b->segs[b->nsegs - 1];
        if (!pg_sink_fits(k, b, s)) {
            /* The same key twice in one object. */
            velo_plg_error(k->ins, "sink %s: a row names a column twice",
                           k->name);
            return VELO_ERR;
        }
    }
    if (b->rows == 0) {
        /* create.table takes its column types from the first row. */
        b->kinds.len = 0;
        for (size_t c = 0; c < s->ncols; c++) {
            char kind =
                (char)(k->col_kv[c] < 0 ? PG_K_NULL : k->kv[k->col_kv[c]].kind);
            if (pg_buf_add(&b->kinds, &kind, 1) != VELO_OK) {
                velo_plg_error(k->ins, "out of memory");
                return VELO_ERR;
            }
        }
    }
    /* The COPY line: values tab-separated, \N for NULL; upsert adds the
     * row's number in the segment and whether it deletes. */
    if (pg_buf_reserve(&b->copy, k->row_vals.len + s->ncols * 3 + 32) !=
        VELO_OK) {
        velo_plg_error(k->ins, "out of memory");
        return VELO_ERR;
    }
    struct pg_buf *o = &b->copy;
    for (size_t c = 0; c < s->ncols; c++) {
        if (c > 0) {
            o->data[o->len++] = '\t';
        }
        long i = k->col_kv[c];
        if (i < 0 || k->kv[i].null) {
            o->data[o->len++] = '\\';
            o->data[o->len++] = 'N';
        } else {
            memcpy(o->data + o->len, k->row_vals.data + k->kv[i].vo,
                   k->kv[i].vl);
            o->len += k->kv[i].vl;
        }
    }
    if (k->upsert) {
        o->len += (size_t)snprintf(o->data + o->len, 26, "\t%zu\t%c", s->rows,
                                   del ? 't' : 'f');
        s->has_delete |= del;
    }
    o->data[o->len++] = '\n';
    s->data_len = o->len - s->data_off;
    s->rows++;
    b->rows++;
    return VELO_OK;
}

/* ---- the batch's statement ---------------------------------------------- */

/* "k1, k2" quoted, with a prefix before each ("s." or ""). */
static int pg_sink_key_list(struct pg_sink *k, struct pg_buf *b,
                            const char *prefix)
{
    for (size_t i = 0; i < k->nkeys; i++) {
        if ((i > 0 && pg_buf_adds(b, ", ") != VELO_OK) ||
            pg_buf_adds(b, prefix) != VELO_OK ||
            pg_sink_quote(k, b, k->keys[i]) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

static int pg_sink_col_list(struct pg_sink *k, struct pg_buf *o,
                            const struct pg_batch *b, const struct pg_seg *s)
{
    for (size_t c = 0; c < s->ncols; c++) {
        if ((c > 0 && pg_buf_adds(o, ", ") != VELO_OK) ||
            pg_sink_quote(k, o, pg_batch_col(b, s, c)) != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

/* CREATE TABLE from the first row, when create.table and the table is
 * missing: NUMERIC for numbers, BOOLEAN, JSONB for objects and arrays,
 * TEXT for the rest (strings, and nulls whose type is unknown). */
static int pg_sink_sql_create(struct pg_sink *k, struct pg_buf *o,
                              const struct pg_batch *b)
{
    const struct pg_seg *s = &b->segs[0];
    int ok = pg_buf_adds(o, "CREATE TABLE IF NOT EXISTS ") == VELO_OK &&
             pg_buf_adds(o, k->qtable) == VELO_OK &&
             pg_buf_adds(o, " (") == VELO_OK;
    for (size_t c = 0; ok && c < s->ncols; c++) {
        int kind = c < b->kinds.len ? b->kinds.data[c] : PG_K_TEXT;
        const char *type = kind == PG_K_NUMBER ? " NUMERIC"
                           : kind == PG_K_BOOL ? " BOOLEAN"
                           : kind == PG_K_JSON ? " JSONB"
                                               : " TEXT";
        ok = (c == 0 || pg_buf_adds(o, ", ") == VELO_OK) &&
             pg_sink_quote(k, o, pg_batch_col(b, s, c)) == VELO_OK &&
             pg_buf_adds(o, type) == VELO_OK;
    }
    if (ok && k->nkeys > 0) {
        ok = pg_buf_adds(o, ", PRIMARY KEY (") == VELO_OK &&
             pg_sink_key_list(k, o, "") == VELO_OK &&
             pg_buf_adds(o, ")") == VELO_OK;
    }
    return ok && pg_buf_adds(o, "); ") == VELO_OK ? VELO_OK : VELO_ERR;
}

/* One upsert segment: staging table, COPY, merge. */
static int pg_sink_sql_upsert(struct pg_sink *k, struct pg_buf *o,
                              const struct pg_batch *b, size_t si)
{
    const struct pg_seg *s = &b->segs[si];
    char stage[48];
    snprintf(stage, sizeof(stage), "pg_temp.velo_stage_%zu", si);
    /* The staging table has the target's column types (selected by name:
     * a column the table lacks is the server's clear error), no
     * constraints, and lives until COMMIT. */
    int ok = pg_buf_adds(o, "CREATE TEMP TABLE ") == VELO_OK &&
             pg_buf_adds(o, stage + 8) == VELO_OK &&
             pg_buf_adds(o, " ON COMMIT DROP AS SELECT ") == VELO_OK &&
             pg_sink_col_list(k, o, b, s) == VELO_OK &&
             pg_buf_adds(o, ", NULL::bigint AS velo_rn, NULL::boolean AS "
                            "velo_del FROM ") == VELO_OK &&
             pg_buf_adds(o, k->qtable) == VELO_OK &&
             pg_buf_adds(o, " WITH NO DATA; COPY ") == VELO_OK &&
             pg_buf_adds(o, stage) == VELO_OK &&
             pg_buf_adds(o, " FROM STDIN; ") == VELO_OK;
    /* The last row of each key, by row number. */
    struct pg_buf last = {0};
    ok = ok && pg_buf_adds(&last, "(SELECT DISTINCT ON (") == VELO_OK &&
         pg_sink_key_list(k, &last, "") == VELO_OK &&
         pg_buf_adds(&last, ") * FROM ") == VELO_OK &&
         pg_buf_adds(&last, stage) == VELO_OK &&
         pg_buf_adds(&last, " ORDER BY ") == VELO_OK &&
         pg_sink_key_list(k, &last, "") == VELO_OK &&
         pg_buf_adds(&last, ", velo_rn DESC) s") == VELO_OK;
    if (ok && s->has_delete) {
        ok = pg_buf_adds(o, "DELETE FROM ") == VELO_OK &&
             pg_buf_adds(o, k->qtable) == VELO_OK &&
             pg_buf_adds(o, " t USING ") == VELO_OK &&
             pg_buf_adds(o, last.data) == VELO_OK &&
             pg_buf_adds(o, " WHERE s.velo_del") == VELO_OK;
        for (size_t i = 0; ok && i < k->nkeys; i++) {
            ok = pg_buf_adds(o, " AND t.") == VELO_OK &&
                 pg_sink_quote(k, o, k->keys[i]) == VELO_OK &&
                 pg_buf_adds(o, " = s.") == VELO_OK &&
                 pg_sink_quote(k, o, k->keys[i]) == VELO_OK;
        }
        ok = ok && pg_buf_adds(o, "; ") == VELO_OK;
    }
    ok = ok && pg_buf_adds(o, "INSERT INTO ") == VELO_OK &&
         pg_buf_adds(o, k->qtable) == VELO_OK &&
         pg_buf_adds(o, " (") == VELO_OK &&
         pg_sink_col_list(k, o, b, s) == VELO_OK &&
         pg_buf_adds(o, ") SELECT ") == VELO_OK;
    for (size_t c = 0; ok && c < s->ncols; c++) {
        ok = pg_buf_adds(o, c ? ", s." : "s.") == VELO_OK &&
             pg_sink_quote(k, o, pg_batch_col(b, s, c)) == VELO_OK;
    }
    ok = ok && pg_buf_adds(o, " FROM ") == VELO_OK &&
         pg_buf_adds(o, last.data) == VELO_OK &&
         pg_buf_adds(o, " WHERE NOT s.velo_del ON CONFLICT (") == VELO_OK &&
         pg_sink_key_list(k, o, "") == VELO_OK;
    pg_buf_free(&last);
    size_t nset = 0;
    for (size_t c = 0; ok && c < s->ncols; c++) {
        const char *col = pg_batch_col(b, s, c);
        int is_key = 0;
        for (size_t i = 0; i < k->nkeys; i++) {
            is_key |= strcmp(k->keys[i], col) == 0;
        }
        if (is_key) {
            continue;
        }
        ok = pg_buf_adds(o, nset++ ? ", " : ") DO UPDATE SET ") == VELO_OK &&
             pg_sink_quote(k, o, col) == VELO_OK &&
             pg_buf_adds(o, " = EXCLUDED.") == VELO_OK &&
             pg_sink_quote(k, o, col) == VELO_OK;
    }
    if (ok && nset == 0) {
        ok = pg_buf_adds(o, ") DO NOTHING") == VELO_OK;
    }
    return ok && pg_buf_adds(o, "; ") == VELO_OK ? VELO_OK : VELO_ERR;
}

static int pg_sink_build_sql(struct pg_sink *k, const struct pg_batch *b)
{
    struct pg_buf *o = &k->sql;
    o->len = 0;
    /* The txid tells, after a lost COMMIT answer, whether it happened. */
    int ok = pg_buf_adds(o, "BEGIN; SELECT txid_current(); ") == VELO_OK;
    if (ok && !k->table_checked && k->t.create_table) {
        ok = pg_sink_sql_create(k, o, b) == VELO_OK;
    }
    for (size_t si = 0; ok && si < b->nsegs; si++) {
        if (k->upsert) {
            ok = pg_sink_sql_upsert(k, o, b, si) == VELO_OK;
            continue;
        }
        ok = pg_buf_adds(o, "COPY ") == VELO_OK &&
             pg_buf_adds(o, k->qtable) == VELO_OK &&
             pg_buf_adds(o, " (") == VELO_OK &&
             pg_sink_col_list(k, o, b, &b->segs[si]) == VELO_OK &&
             pg_buf_adds(o, ") FROM STDIN; ") == VELO_OK;
    }
    ok = ok && pg_buf_adds(o, "COMMIT") == VELO_OK;
    return ok ? VELO_OK : VELO_ERR;
}

/* ---- the state machine -------------------------------------------------- */

/* The batch in flight committed. */
static void pg_sink_done(struct pg_sink *k)
{
    struct pg_batch *fly = &k->b[!k->fill];
    k->rows_committed += (int64_t)fly->rows;
    pg_sink_metric_add(k, k->m_out, (double)fly->rows);
    pg_sink_metric_add(k, k->m_bytes_out, (double)fly->copy.len);
    pg_batch_clear(fly);
    k->flying = 0;
    k->state = PG_IDLE;
    k->losses = 0;
    k->table_checked = 1;
}

/* Send the batch in flight. @return VELO_OK, VELO_AGAIN (lost), VELO_ERR. */
static int pg_sink_send(struct pg_sink *k)
{
    struct pg_batch *fly = &k->b[!k->fill];
    if (pg_sink_build_sql(k, fly) != VELO_OK) {
        velo_plg_error(k->ins, "out of memory");
        k->failed = 1;
        return VELO_ERR;
    }
    if (!PQsendQuery(k->conn, k->sql.data)) {
        pg_sink_lost(k, "sending a batch", NULL);
        return VELO_AGAIN;
    }
    k->state = PG_RESULTS;
    k->io_at = pg_now_ms();
    k->seg_at = 0;
    k->put_off = 0;
    k->unflushed = 0;
    k->end_sent = 0;
    k->committed = 0;
    k->xid[0] = '\0';
    return VELO_OK;
}

/* Read the results libpq has. @return VELO_OK (moved or waits for more),
 * VELO_AGAIN (lost), VELO_ERR. */
static int pg_sink_results(struct pg_sink *k)
{
    while (k->state == PG_RESULTS && !PQisBusy(k->conn)) {
        PGresult *r = PQgetResult(k->conn);
        if (r == NULL) {
            if (k->committed) {
                pg_sink_done(k);
                return VELO_OK;
            }
            /* Every failure comes as an error result first; an end
             * without COMMIT is a broken connection. */
            pg_sink_lost(k, "waiting for COMMIT", NULL);
            return VELO_AGAIN;
        }
        switch (PQresultStatus(r)) {
        case PGRES_COPY_IN:
            PQclear(r);
            if (k->seg_at >= k->b[!k->fill].nsegs) {
                velo_plg_error(k->ins,
                               "sink %s: the server asked for more "
                               "COPY data than the batch has",
                               k->name);
                k->failed = 1;
                return VELO_ERR;
            }
            k->state = PG_COPYING;
            k->put_off = 0;
            return VELO_OK;
        case PGRES_TUPLES_OK:
            if (PQntuples(r) == 1 && PQnfields(r) == 1) {
                snprintf(k->xid, sizeof(k->xid), "%s", PQgetvalue(r, 0, 0));
            }
            PQclear(r);
            break;
        case PGRES_COMMAND_OK: {
            const char *tag = PQcmdStatus(r);
            if (strcmp(tag, "COMMIT") == 0) {
                k->committed = 1;
            } else if (strcmp(tag, "ROLLBACK") == 0) {
                velo_plg_error(k->ins,
                               "sink %s: committing into table %s at %s: "
                               "the server rolled the transaction back",
                               k->name, k->t.table, k->t.redacted);
                PQclear(r);
                k->failed = 1;
                return VELO_ERR;
            }
            PQclear(r);
            break;
        }
        default:
            return pg_sink_result_failed(k, r);
        }
    }
    return VELO_OK;
}

/* Hand the current segment's data to libpq, then end the COPY.
 * @return VELO_OK (moved, or waits for the socket), VELO_AGAIN, VELO_ERR. */
static int pg_sink_copy(struct pg_sink *k)
{
    struct pg_batch *fly = &k->b[!k->fill];
    const struct pg_seg *s = &fly->segs[k->seg_at];
    while (k->put_off < s->data_len) {
        /* libpq grows its buffer rather than refuse data: once a window
         * of it is still waiting for the socket, wait for the socket
         * (EV_WRITE), so libpq's copy stays bounded. A window of several
         * pieces keeps the socket busy between the engine's turns. */
        int f = PQflush(k->conn);
        if (f < 0) {
            k->state = PG_RESULTS; /* the connection's error follows */
            return VELO_OK;
        }
        if (f == 0) {
            k->unflushed = 0;
        } else if (k->unflushed >= PG_COPY_WINDOW) {
            k->want_write = 1;
            return VELO_OK;
        }
        size_t n = s->data_len - k->put_off;
        if (n > PG_COPY_CHUNK) {
            n = PG_COPY_CHUNK;
        }
        int rc = PQputCopyData(
            k->conn, fly->copy.data + s->data_off + k->put_off, (int)n);
        if (rc == 0) {
            k->want_write = 1; /* libpq's buffer is full: wait to write */
            return VELO_OK;
        }
        if (rc < 0) {
            /* The server ended the COPY (an error): its result says why. */
            k->state = PG_RESULTS;
            return VELO_OK;
        }
        k->put_off += n;
        k->unflushed += n;
    }
    int rc = PQputCopyEnd(k->conn, NULL);
    if (rc == 0) {
        k->want_write = 1;
        return VELO_OK;
    }
    if (rc > 0) {
        k->seg_at++;
        k->end_sent = k->seg_at == fly->nsegs;
    }
    k->state = PG_RESULTS;
    return VELO_OK;
}

/* Move as far as possible without waiting. @return VELO_OK (check
 * k->flying and the fill batch for where things are), VELO_ERR. */
static int pg_sink_advance(struct pg_sink *k)
{
    for (int guard = 0; guard < 1000; guard++) {
        if (k->failed) {
            return VELO_ERR;
        }
        if (k->broken) {
            int rc = pg_sink_ready(k);
            if (rc == VELO_ERR) {
                k->failed = 1;
                return VELO_ERR;
            }
            if (rc == VELO_AGAIN) {
                pg_sink_metric_pending(k);
                pg_sink_arm(k);
                return VELO_OK;
            }
        }
        if (pg_sink_check_silence(k, pg_now_ms())) {
            continue;
        }
        /* Idle too: a server that closed the connection makes the
         * socket readable for good, and must be noticed, not spun on. */
        if (PQconsumeInput(k->conn) == 0 ||
            PQstatus(k->conn) == CONNECTION_BAD) {
            pg_sink_lost(k, k->upsert ? "upserting rows" : "inserting rows",
                         NULL);
            continue;
        }
        int rc = VELO_OK;
        enum pg_state before = k->state;
        int flying_before = k->flying;
        size_t seg_before = k->seg_at, off_before = k->put_off;
        switch (k->state) {
        case PG_IDLE:
            if (!k->flying) {
                struct pg_batch *f = &k->b[k->fill];
                if (f->rows == 0 || (!k->flush_wanted &&
                                     f->rows < (size_t)k->conf.insert_rows)) {
                    break;
                }
                k->fill = !k->fill;
                k->flying = 1;
            }
            rc = pg_sink_send(k);
            break;
        case PG_RESULTS:
            rc = pg_sink_results(k);
            break;
        case PG_COPYING:
            rc = pg_sink_copy(k);
            break;
        }
        if (rc == VELO_ERR) {
            return VELO_ERR;
        }
        if (k->conn != NULL) {
            int f = PQflush(k->conn);
            if (f < 0) {
                pg_sink_lost(k, "sending", NULL);
                continue;
            }
            k->want_write = f == 1;
            pg_sink_watch(k);
        }
        if (rc == VELO_AGAIN) {
            continue; /* lost: reconnect now if the backoff allows */
        }
        if (k->state == before && k->flying == flying_before &&
            k->seg_at == seg_before && k->put_off == off_before) {
            break; /* waits for the socket */
        }
    }
    pg_sink_metric_pending(k);
    pg_sink_arm(k);
    return VELO_OK;
}

static int64_t pg_sink_due(const struct pg_sink *k)
{
    if (k->failed) {
        return 0;
    }
    if (k->broken) {
        return k->connecting ? k->connect_deadline : k->next_try_ms;
    }
    if (k->flying && k->conn != NULL && k->state != PG_IDLE) {
        return k->io_at + pg_sink_answer_limit(k);
    }
    return 0;
}

static void pg_sink_on_io(evutil_socket_t fd, short what, void *arg)
{
    struct pg_sink *k = arg;
    (void)fd;
    (void)what;
    k->io_at = pg_now_ms(); /* the server read or sent something */
    int flying = k->flying;
    int rc = pg_sink_advance(k);
    /* A batch committed (room, or a flush can finish), or it failed, or
     * the connection went (the engine's next call reconnects). */
    if (k->wake != NULL &&
        (rc != VELO_OK || k->flying != flying || k->broken)) {
        k->wake(k->wake_arg);
    }
}

/* An engine without a loop: wait on the socket here. */
static void pg_sink_on_tmo(evutil_socket_t fd, short what, void *arg)
{
    struct pg_sink *k = arg;
    (void)fd;
    (void)what;
    k->tmo_due = 0;
    int flying = k->flying, broken = k->broken;
    int rc = pg_sink_advance(k);
    if (k->wake != NULL &&
        (rc != VELO_OK || k->flying != flying || k->broken != broken)) {
        k->wake(k->wake_arg);
    }
}

static void pg_sink_wait_socket(struct pg_sink *k)
{
    if (k->conn == NULL) {
        poll(NULL, 0, 20);
        return;
    }
    struct pollfd p = {.fd = PQsocket(k->conn),
                       .events =
                           (short)(POLLIN | (k->want_write ? POLLOUT : 0))};
    if (poll(&p, 1, 100) > 0) {
        k->io_at = pg_now_ms();
    }
}

/* ---- vtable ------------------------------------------------------------- */

static void pg_sink_free(struct pg_sink *k)
{
    if (k == NULL) {
        return;
    }
    /* An open transaction is rolled back: only flushed rows count. */
    pg_sink_drop_conn(k);
    if (k->tmo != NULL) {
        event_free(k->tmo);
    }
    for (size_t i = 0; i < k->nkeys; i++) {
        free(k->keys[i]);
    }
    free(k->keys);
    free(k->qtable);
    pg_batch_free(&k->b[0]);
    pg_batch_free(&k->b[1]);
    pg_buf_free(&k->row_keys);
    pg_buf_free(&k->row_vals);
    pg_buf_free(&k->sql);
    free(k->kv);
    free(k->col_kv);
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

/* Does the table exist? @return 1, 0, or -1 (err set). */
static int pg_sink_table_exists(struct pg_sink *k, char *err, size_t errlen)
{
    const char *params[1] = {k->qtable};
    PGresult *r = PQexecParams(k->conn, "SELECT to_regclass($1) IS NOT NULL", 1,
                               NULL, params, NULL, NULL, 0);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_result_message(k->conn, r, err, errlen);
        PQclear(r);
        return -1;
    }
    int exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    return exists;
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
    k->base = ctx->base;
    k->wake = ctx->wake;
    k->wake_arg = ctx->wake_arg;
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
    if (k->conf.insert_rows <= 0 || k->conf.insert_rows > 10000000) {
        velo_plg_error(ins, "%s.insert.rows must be 1 to 10000000", k->name);
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
    int exists = pg_sink_table_exists(k, err, sizeof(err));
    if (exists < 0) {
        velo_plg_error(ins, "%s: checking table %s: %s", t->redacted, t->table,
                       err);
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
    if (PQsetnonblocking(k->conn, 1) != 0) {
        pg_message(PQerrorMessage(k->conn), err, sizeof(err));
        velo_plg_error(ins, "%s: cannot make the connection nonblocking: %s",
                       t->redacted, err);
        goto fail;
    }
    if (k->base != NULL) {
        k->tmo = evtimer_new(k->base, pg_sink_on_tmo, k);
        if (k->tmo == NULL) {
            velo_plg_error(ins, "out of memory");
            goto fail;
        }
    }
    pg_sink_metrics_init(k);
    pg_sink_watch(k);
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
    if (pg_sink_advance(k) != VELO_OK) {
        return VELO_ERR;
    }
    /* Back-pressure: a batch in flight (or no connection to send one on)
     * and the next one full. */
    const struct pg_batch *f = &k->b[k->fill];
    if ((k->flying || k->broken) &&
        ((k->conf.max_tx_rows > 0 && f->rows >= (size_t)k->conf.max_tx_rows) ||
         f->copy.len >= PG_FILL_MAX_BYTES)) {
        return VELO_AGAIN; /* none taken: the engine repeats the call */
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
            if (len > 0 && pg_sink_take(k, p, len) != VELO_OK) {
                k->failed = 1;
                return VELO_ERR;
            }
            p = nl ? nl + 1 : end;
        }
    }
    /* The rows are ours now: a lost connection from here on is repaired
     * by a later call, so this one still answers OK. */
    return pg_sink_advance(k) == VELO_OK ? VELO_OK : VELO_ERR;
}

int pg_sink_flush(struct velo_instance *ins)
{
    struct pg_sink *k = ins->context;
    k->flush_wanted = 1;
    for (;;) {
        if (pg_sink_advance(k) != VELO_OK) {
            return VELO_ERR;
        }
        if (!k->flying && k->b[k->fill].rows == 0) {
            k->flush_wanted = 0;
            return VELO_OK;
        }
        if (k->base != NULL) {
            return VELO_AGAIN; /* the socket's event moves it on */
        }
        pg_sink_wait_socket(k);
    }
}

void pg_sink_destroy(struct velo_instance *ins)
{
    struct pg_sink *k = ins->context;
    if (k == NULL) {
        return;
    }
    size_t pending = pg_sink_pending_rows(k);
    if (pending > 0) {
        velo_plg_warn(ins,
                      "%zu rows written to table %s since the last "
                      "flush were not committed",
                      pending, k->t.table);
    }
    velo_plg_debug(ins, "%lld rows committed, %lld reconnects",
                   (long long)k->rows_committed, (long long)k->reconnects);
    pg_sink_free(k);
    ins->context = NULL;
}
