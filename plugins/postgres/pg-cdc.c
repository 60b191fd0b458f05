/*
 * PostgreSQL source, mode 'cdc': change data capture over logical
 * replication with the built-in pgoutput plugin (protocol version 1).
 *
 * Setup (blocking, bounded by connect.timeout and statement.timeout): an
 * ordinary connection checks or creates the publication and looks the slot
 * up; a replication connection (replication=database) creates the slot when
 * it is missing, exporting its snapshot. With 'snapshot' on, the table is
 * read first through a cursor in a transaction that imported that snapshot
 * (SET TRANSACTION SNAPSHOT), so the rows read are exactly those committed
 * before the slot's consistent point and the stream begins right after it:
 * nothing is lost or doubled between the two. Then START_REPLICATION.
 *
 * Streaming is nonblocking: the socket is nonblocking and watched on the
 * worker's loop (EV_READ: libpq takes in what arrived, and ctx->wake tells
 * the engine); each read drains what libpq already holds (PQconsumeInput,
 * PQgetCopyData async) and returns VELO_AGAIN when there is nothing. The
 * initial snapshot's FETCHes (on the ordinary connection) are sent with
 * PQsendQuery and collected the same way.
 *
 * Wire layout relied on (PostgreSQL "Streaming Replication Protocol" and
 * "Logical Replication Message Formats"; integers big-endian):
 *   CopyData 'w' XLogData: Int64 start LSN, Int64 end of WAL, Int64 send
 *     time, then one pgoutput message;
 *   CopyData 'k' keepalive: Int64 end of WAL, Int64 send time, Byte1 reply
 *     requested; we answer with 'r' standby status: Int64 written, Int64
 *     flushed, Int64 applied, Int64 client time (us since 2000-01-01),
 *     Byte1 reply requested;
 *   pgoutput 'B' begin: Int64 commit LSN, Int64 commit time, Int32 xid;
 *     'C' commit: Int8 flags, Int64 commit LSN, Int64 end LSN, Int64 time;
 *     'R' relation: Int32 oid, String schema, String name, Int8 replica
 *     identity, Int16 ncols, per column Int8 flags (1: key), String name,
 *     Int32 type oid, Int32 typmod;
 *     'I' insert: Int32 oid, 'N', TupleData;
 *     'U' update: Int32 oid, optional ('K' | 'O', TupleData), 'N', TupleData;
 *     'D' delete: Int32 oid, 'K' | 'O', TupleData;
 *     'T' truncate: Int32 nrel, Int8 options, Int32 oid per relation;
 *     'O' origin, 'Y' type, 'M' message: ignored;
 *   TupleData: Int16 ncols, per column Byte1 'n' (null) | 'u' (unchanged
 *     TOASTed value, not sent) | 't' (Int32 length, text).
 *
 * Acknowledgement is per transaction: source_position is the end LSN of
 * the last transaction whose changes were all handed out; source_commit
 * makes that the slot's confirmed flush LSN (never more). A restart starts
 * at the confirmed LSN, and the server resends only transactions that
 * committed after it. After a dropped connection the stream restarts from
 * the confirmed LSN too, and what this run already handed out (whole
 * transactions by commit LSN, and the first n changes of a partly handed
 * out one) is skipped, so nothing repeats within a run.
 *
 * Reconnecting does not block the worker (other sources of the job keep
 * flowing while the database is unreachable): PQconnectStartParams, then
 * PQconnectPoll when the socket's event says it is ready, then
 * START_REPLICATION sent with PQsendQuery and its COPY BOTH answer read
 * the same way; each attempt is bounded by connect.timeout, and the
 * backoff between attempts (100 ms doubling to 5 s) ends on a timer on
 * the loop, which wakes the engine once the stream is back.
 */
#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "pg-internal.h"

#define PG_BOOLOID 16
#define PG_INT8OID 20
#define PG_INT2OID 21
#define PG_INT4OID 23
#define PG_OIDOID 26
#define PG_FLOAT4OID 700
#define PG_FLOAT8OID 701
#define PG_NUMERICOID 1700

#define CDC_CURSOR "velo_cdc_snapshot"
#define CDC_STATUS_MS 10000 /* standby status at least this often */

enum cdc_kind { CDC_TEXT, CDC_NUMBER, CDC_BOOL };

/* A relation as the last 'R' message described it. */
struct cdc_rel {
    uint32_t oid;
    char *table; /* "schema.table", JSON-quoted */
    int ncols;
    char **keys; /* "name": per column, JSON-quoted */
    size_t *key_len;
    int *kinds;      /* enum cdc_kind */
    uint8_t *is_key; /* part of the replica identity ('R' flags bit 1) */
};

struct cdc_source {
    int cdc; /* 1: see struct pg_source */
    struct pg_target t;
    const struct pg_conf *conf;
    char *name; /* source name, for hints */
    char slot[64];
    char publication[64];
    PGconn *sql;  /* ordinary connection (setup, snapshot) */
    PGconn *repl; /* replication connection */
    int streaming;

    /* snapshot phase */
    int snap_active;
    PGresult *snap_res;
    int snap_row;
    struct cdc_rel snap_rel;
    char *snap_fetch;
    int snap_inflight;     /* a FETCH was sent; its answer is not in */
    struct event *snap_ev; /* the snapshot connection's socket */
    uint64_t start_lsn;    /* consistent point or confirmed flush */

    /* stream */
    struct cdc_rel *rels;
    size_t nrels, rels_cap;
    uint64_t acked_lsn;   /* confirmed to the server: never above commit */
    uint64_t read_end;    /* end LSN of the last whole txn handed out */
    uint64_t done_commit; /* its commit LSN: replays up to it are skipped */
    uint64_t txn_commit;  /* current transaction's commit LSN (from 'B') */
    uint64_t txn_end;
    int64_t txn_emitted; /* changes of it handed out so far */
    int64_t txn_skip;    /* after a reconnect: changes of it to skip */
    int in_txn;
    int skip_txn; /* the whole current transaction was handed out */
    uint64_t last_wal;
    int64_t last_status_ms;
    int status_pending; /* a status update is owed (keepalive asked) */

    /* reconnect: nonblocking, driven by the new connection's socket (on
     * s->ev) and a timer (the end of a backoff, an attempt's deadline) */
    int lost;
    int64_t lost_since_ms, retry_at_ms, backoff_ms;
    int connecting; /* 1: PQconnectPoll; 2: START_REPLICATION sent */
    PostgresPollingStatusType connect_poll; /* what it waits for */
    int64_t attempt_deadline, attempts;
    short ev_flags; /* of s->ev while connecting */
    int ev_fd;
    struct event *retry_ev;
    int64_t retry_due; /* when retry_ev fires, 0: not armed */
    int failed;        /* gave up reconnecting (logged) */
    char last_err[512];

    /* a message that did not fit the last batch */
    char *held;
    int held_len;

    /* output */
    struct pg_buf out;
    size_t *offs;
    size_t offs_cap;
    char lsn_text[32];
    int64_t records;

    /* the worker's loop (NULL: an engine without one, which polls) */
    struct event_base *base;
    struct event *ev;
    void (*wake)(void *);
    void *wake_arg;

    /* metrics, when the host has them (labels connector, source) */
    struct velo_instance *ins;
    struct velo_metric *m_in, *m_bytes, *m_errors, *m_reconnects, *m_lag;
};

static void cdc_metric_add(struct cdc_source *s, struct velo_metric *m,
                           double v)
{
    if (m != NULL && VELO_HOST_HAS(s->ins->host, metric_add)) {
        s->ins->host->metric_add(m, v);
    }
}

static void cdc_metrics_init(struct cdc_source *s)
{
    const struct velo_host_api *h = s->ins->host;
    char labels[256];
    snprintf(labels, sizeof(labels), "connector=postgres,source=%s", s->name);
    if (VELO_HOST_HAS(h, metric_counter)) {
        s->m_in = h->metric_counter("velo_connector_records_in_total",
                                    "records read", labels);
        s->m_bytes = h->metric_counter("velo_connector_bytes_in_total",
                                       "payload bytes read", labels);
        s->m_errors =
            h->metric_counter("velo_connector_errors_total",
                              "connection and command errors", labels);
        s->m_reconnects = h->metric_counter("velo_connector_reconnects_total",
                                            "reconnections", labels);
    }
    if (VELO_HOST_HAS(h, metric_gauge)) {
        s->m_lag = h->metric_gauge("velo_connector_lag_bytes",
                                   "CDC: WAL bytes the server has beyond "
                                   "what was acknowledged",
                                   labels);
    }
}

/* ---- small helpers --------------------------------------------------------
 */

static uint64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static void put64(char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (char)(v & 0xff);
        v >>= 8;
    }
}

/* A bounds-checked reader over one message. */
struct rd {
    const unsigned char *p, *end;
    int bad;
};

static uint8_t rd8(struct rd *r)
{
    if (r->end - r->p < 1) {
        r->bad = 1;
        return 0;
    }
    return *r->p++;
}

static uint16_t rd16(struct rd *r)
{
    if (r->end - r->p < 2) {
        r->bad = 1;
        return 0;
    }
    uint16_t v = (uint16_t)(r->p[0] << 8 | r->p[1]);
    r->p += 2;
    return v;
}

static uint32_t rd32(struct rd *r)
{
    if (r->end - r->p < 4) {
        r->bad = 1;
        return 0;
    }
    uint32_t v = be32(r->p);
    r->p += 4;
    return v;
}

static uint64_t rd64(struct rd *r)
{
    if (r->end - r->p < 8) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = be64(r->p);
    r->p += 8;
    return v;
}

static const char *rdstr(struct rd *r)
{
    const unsigned char *z = memchr(r->p, '\0', (size_t)(r->end - r->p));
    if (z == NULL) {
        r->bad = 1;
        return "";
    }
    const char *s = (const char *)r->p;
    r->p = z + 1;
    return s;
}

static int cdc_kind(uint32_t oid)
{
    switch (oid) {
    case PG_INT2OID:
    case PG_INT4OID:
    case PG_INT8OID:
    case PG_OIDOID:
    case PG_FLOAT4OID:
    case PG_FLOAT8OID:
    case PG_NUMERICOID:
        return CDC_NUMBER;
    case PG_BOOLOID:
        return CDC_BOOL;
    default:
        return CDC_TEXT;
    }
}

static void cdc_rel_free(struct cdc_rel *r)
{
    for (int i = 0; r->keys != NULL && i < r->ncols; i++) {
        free(r->keys[i]);
    }
    free(r->keys);
    free(r->key_len);
    free(r->kinds);
    free(r->is_key);
    free(r->table);
    memset(r, 0, sizeof(*r));
}

/* Fill r's column arrays: names[i], type oids[i]. */
static int cdc_rel_init(struct cdc_rel *r, const char *schema,
                        const char *table, int ncols, const char **names,
                        const uint32_t *oids)
{
    int n = ncols > 0 ? ncols : 1;
    r->ncols = ncols;
    r->keys = calloc((size_t)n, sizeof(*r->keys));
    r->key_len = calloc((size_t)n, sizeof(*r->key_len));
    r->kinds = calloc((size_t)n, sizeof(*r->kinds));
    r->is_key = calloc((size_t)n, sizeof(*r->is_key));
    if (r->keys == NULL || r->key_len == NULL || r->kinds == NULL ||
        r->is_key == NULL) {
        return VELO_ERR;
    }
    struct pg_buf b = {0};
    char full[300];
    snprintf(full, sizeof(full), "%s.%s", schema, table);
    /* pg_buf_json_str leaves the text unterminated; pg_buf_add ends it */
    if (pg_buf_json_str(&b, full, strlen(full)) != VELO_OK ||
        pg_buf_add(&b, "", 0) != VELO_OK) {
        pg_buf_free(&b);
        return VELO_ERR;
    }
    r->table = b.data;
    for (int i = 0; i < ncols; i++) {
        struct pg_buf k = {0};
        if (pg_buf_json_str(&k, names[i], strlen(names[i])) != VELO_OK ||
            pg_buf_add(&k, ":", 1) != VELO_OK) {
            pg_buf_free(&k);
            return VELO_ERR;
        }
        r->keys[i] = k.data;
        r->key_len[i] = k.len;
        r->kinds[i] = cdc_kind(oids[i]);
    }
    return VELO_OK;
}

static int cdc_json_number(const char *v)
{
    return v[0] != 'N' && v[0] != 'I' && !(v[0] == '-' && v[1] == 'I');
}

static int cdc_value(struct pg_buf *b, int kind, const char *v, size_t n)
{
    if (kind == CDC_BOOL) {
        return v[0] == 't' ? pg_buf_add(b, "true", 4)
                           : pg_buf_add(b, "false", 5);
    }
    if (kind == CDC_NUMBER && n > 0 && cdc_json_number(v)) {
        return pg_buf_add(b, v, n);
    }
    return pg_buf_json_str(b, v, n);
}

static void cdc_lsn_text(uint64_t lsn, char *buf, size_t len)
{
    snprintf(buf, len, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

static int cdc_parse_lsn(const char *s, uint64_t *out)
{
    unsigned hi, lo;
    char extra;
    if (s == NULL || sscanf(s, "%X/%X%c", &hi, &lo, &extra) != 2) {
        return VELO_ERR;
    }
    *out = (uint64_t)hi << 32 | lo;
    return VELO_OK;
}

/* Slot and publication names: lower-case letters, digits and '_' (what a
 * replication slot allows), so they are safe wherever they go. */
static int cdc_valid_name(const char *s)
{
    if (*s == '\0' || strlen(s) > 63) {
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) ||
              *s == '_')) {
            return 0;
        }
    }
    return 1;
}

static void cdc_default_name(const char *name, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "velo_");
    for (const char *p = name ? name : "cdc"; *p != '\0' && o + 1 < len; p++) {
        unsigned char c = (unsigned char)*p;
        buf[o++] = isalnum(c) ? (char)tolower(c) : '_';
    }
    buf[o] = '\0';
}

/* ---- output buffer ----------------------------------------------------------
 */

static int cdc_begin_record(struct cdc_source *s, size_t count)
{
    if (count + 1 >= s->offs_cap) {
        size_t cap = s->offs_cap ? s->offs_cap * 2 : 256;
        while (cap <= count + 1) {
            cap *= 2;
        }
        size_t *no = realloc(s->offs, cap * sizeof(*no));
        if (no == NULL) {
            return VELO_ERR;
        }
        s->offs = no;
        s->offs_cap = cap;
    }
    s->offs[count] = s->out.len;
    return VELO_OK;
}

/* Columns of a tuple as JSON members (after '{' or ','), from TupleData.
 * key_only: a 'K' tuple, whose columns outside the replica identity are
 * sent as nulls though they were not null: those are left out. b NULL:
 * only step over the tuple. */
static int cdc_tuple(struct pg_buf *b, const struct cdc_rel *rel, struct rd *r,
                     int *first, int key_only)
{
    int n = rd16(r);
    for (int i = 0; i < n && !r->bad; i++) {
        uint8_t kind = rd8(r);
        if (kind == 'u') {
            continue; /* unchanged TOASTed value: not sent */
        }
        int emit =
            b != NULL && i < rel->ncols && !(key_only && !rel->is_key[i]);
        const char *v = NULL;
        uint32_t len = 0;
        if (kind == 't' || kind == 'b') {
            len = rd32(r);
            if (r->bad || (size_t)(r->end - r->p) < len) {
                r->bad = 1;
                return VELO_OK;
            }
            v = (const char *)r->p;
            r->p += len;
        } else if (kind != 'n') {
            r->bad = 1;
            return VELO_OK;
        }
        if (!emit) {
            continue;
        }
        if ((!*first && pg_buf_add(b, ",", 1) != VELO_OK) ||
            pg_buf_add(b, rel->keys[i], rel->key_len[i]) != VELO_OK) {
            return VELO_ERR;
        }
        *first = 0;
        int rc =
            v == NULL
                ? pg_buf_add(b, "null", 4)
                : cdc_value(b, kind == 'b' ? CDC_TEXT : rel->kinds[i], v, len);
        if (rc != VELO_OK) {
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

/* The record's trailing members: _op, _before (already written or null),
 * _table, _lsn. */
static int cdc_tail(struct cdc_source *s, const char *op,
                    const struct cdc_rel *rel, uint64_t lsn, int first)
{
    struct pg_buf *b = &s->out;
    char tmp[96];
    cdc_lsn_text(lsn, s->lsn_text, sizeof(s->lsn_text));
    snprintf(tmp, sizeof(tmp), "%s\"_op\":\"%s\",\"_table\":", first ? "" : ",",
             op);
    if (pg_buf_adds(b, tmp) != VELO_OK ||
        pg_buf_adds(b, rel->table) != VELO_OK) {
        return VELO_ERR;
    }
    snprintf(tmp, sizeof(tmp), ",\"_lsn\":\"%s\"}", s->lsn_text);
    return pg_buf_adds(b, tmp);
}

/* ---- setup -------------------------------------------------------------- */

static int cdc_exec(PGconn *c, const char *sql, ExecStatusType want,
                    PGresult **keep, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    int ok = r != NULL && PQresultStatus(r) == want;
    if (!ok) {
        pg_result_message(c, r, err, errlen);
    }
    if (ok && keep != NULL) {
        *keep = r;
    } else {
        PQclear(r);
    }
    return ok ? VELO_OK : VELO_ERR;
}

/* Make sure the publication exists (creating it when asked). */
static int cdc_publication(struct velo_instance *ins, struct cdc_source *s,
                           int create)
{
    char err[512];
    const char *pv[1] = {s->publication};
    PGresult *r = PQexecParams(s->sql,
                               "SELECT 1 FROM pg_publication WHERE pubname = "
                               "$1",
                               1, NULL, pv, NULL, NULL, 0);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_result_message(s->sql, r, err, sizeof(err));
        PQclear(r);
        velo_plg_error(ins, "%s: looking up publication %s: %s", s->t.redacted,
                       s->publication, err);
        return VELO_ERR;
    }
    int exists = PQntuples(r) > 0;
    PQclear(r);
    if (exists) {
        return VELO_OK;
    }
    if (!create || s->t.table == NULL) {
        velo_plg_error(ins,
                       "%s: publication %s does not exist; create it "
                       "(CREATE PUBLICATION %s FOR TABLE ...) or set "
                       "'%s.table' and leave '%s.create.publication' on",
                       s->t.redacted, s->publication, s->publication, s->name,
                       s->name);
        return VELO_ERR;
    }
    char *qt = pg_quote_qualified(s->sql, s->t.table);
    if (qt == NULL) {
        velo_plg_error(ins, "%s: bad table name %s", s->t.redacted, s->t.table);
        return VELO_ERR;
    }
    struct pg_buf sql = {0};
    pg_buf_adds(&sql, "CREATE PUBLICATION ");
    pg_buf_adds(&sql, s->publication); /* validated: [a-z0-9_] */
    pg_buf_adds(&sql, " FOR TABLE ");
    pg_buf_adds(&sql, qt);
    free(qt);
    if (sql.data == NULL) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    int rc =
        cdc_exec(s->sql, sql.data, PGRES_COMMAND_OK, NULL, err, sizeof(err));
    pg_buf_free(&sql);
    if (rc != VELO_OK) {
        velo_plg_error(ins, "%s: creating publication %s for table %s: %s",
                       s->t.redacted, s->publication, s->t.table, err);
        return VELO_ERR;
    }
    velo_plg_info(ins, "created publication %s for table %s", s->publication,
                  s->t.table);
    return VELO_OK;
}

/* The slot's confirmed flush LSN. @return 1 found, 0 missing, -1 error. */
static int cdc_slot_lookup(struct velo_instance *ins, struct cdc_source *s,
                           uint64_t *lsn)
{
    char err[512];
    const char *pv[1] = {s->slot};
    PGresult *r = PQexecParams(
        s->sql,
        "SELECT coalesce(confirmed_flush_lsn, restart_lsn)::text, plugin, "
        "database = current_database() FROM pg_replication_slots WHERE "
        "slot_name = $1",
        1, NULL, pv, NULL, NULL, 0);
    if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
        pg_result_message(s->sql, r, err, sizeof(err));
        PQclear(r);
        velo_plg_error(ins, "%s: looking up replication slot %s: %s",
                       s->t.redacted, s->slot, err);
        return -1;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return 0;
    }
    int rc = 1;
    if (PQgetisnull(r, 0, 1) || strcmp(PQgetvalue(r, 0, 1), "pgoutput") != 0 ||
        strcmp(PQgetvalue(r, 0, 2), "t") != 0) {
        velo_plg_error(ins,
                       "%s: replication slot %s exists but is not a "
                       "pgoutput slot of this database; name another with "
                       "'%s.slot'",
                       s->t.redacted, s->slot, s->name);
        rc = -1;
    } else if (cdc_parse_lsn(PQgetvalue(r, 0, 0), lsn) != VELO_OK) {
        velo_plg_error(ins, "%s: slot %s has no usable LSN (%s)", s->t.redacted,
                       s->slot, PQgetvalue(r, 0, 0));
        rc = -1;
    }
    PQclear(r);
    return rc;
}

static PGconn *cdc_connect_repl(struct cdc_source *s, char *err, size_t errlen)
{
    return pg_connect_replication(s->conf, &s->t, err, errlen);
}

/* Create the slot; with a snapshot, import it into a transaction on the
 * ordinary connection and open the cursor over the table. */
static int cdc_create_slot(struct velo_instance *ins, struct cdc_source *s,
                           int snapshot)
{
    char err[512];
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "CREATE_REPLICATION_SLOT %s LOGICAL pgoutput %s",
             s->slot, snapshot ? "EXPORT_SNAPSHOT" : "NOEXPORT_SNAPSHOT");
    PGresult *r = NULL;
    if (cdc_exec(s->repl, cmd, PGRES_TUPLES_OK, &r, err, sizeof(err)) !=
        VELO_OK) {
        velo_plg_error(ins,
                       "%s: creating replication slot %s: %s (the role "
                       "needs the REPLICATION attribute and the server "
                       "wal_level=logical)",
                       s->t.redacted, s->slot, err);
        return VELO_ERR;
    }
    int ok = PQntuples(r) == 1 &&
             cdc_parse_lsn(PQgetvalue(r, 0, 1), &s->start_lsn) == VELO_OK;
    char *snap = ok && snapshot && !PQgetisnull(r, 0, 2)
                     ? strdup(PQgetvalue(r, 0, 2))
                     : NULL;
    PQclear(r);
    if (!ok || (snapshot && snap == NULL)) {
        free(snap);
        velo_plg_error(ins, "%s: unexpected answer creating slot %s",
                       s->t.redacted, s->slot);
        return VELO_ERR;
    }
    velo_plg_info(ins, "created replication slot %s at %X/%X", s->slot,
                  (unsigned)(s->start_lsn >> 32), (unsigned)s->start_lsn);
    if (!snapshot) {
        return VELO_OK;
    }
    char *lit = PQescapeLiteral(s->sql, snap, strlen(snap));
    free(snap);
    char *qt = pg_quote_qualified(s->sql, s->t.table);
    struct pg_buf set = {0}, decl = {0};
    pg_buf_adds(&set, "SET TRANSACTION SNAPSHOT ");
    if (lit != NULL) {
        pg_buf_adds(&set, lit);
    }
    pg_buf_adds(&decl, "DECLARE " CDC_CURSOR " NO SCROLL CURSOR FOR SELECT * "
                       "FROM ");
    if (qt != NULL) {
        pg_buf_adds(&decl, qt);
    }
    int rc = VELO_ERR;
    if (lit == NULL || qt == NULL || set.data == NULL || decl.data == NULL) {
        velo_plg_error(ins, "out of memory");
    } else if (cdc_exec(s->sql,
                        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                        PGRES_COMMAND_OK, NULL, err, sizeof(err)) != VELO_OK ||
               cdc_exec(s->sql, set.data, PGRES_COMMAND_OK, NULL, err,
                        sizeof(err)) != VELO_OK ||
               cdc_exec(s->sql, decl.data, PGRES_COMMAND_OK, NULL, err,
                        sizeof(err)) != VELO_OK) {
        velo_plg_error(ins, "%s: reading the initial snapshot of %s: %s",
                       s->t.redacted, s->t.table, err);
    } else {
        char fetch[80];
        snprintf(fetch, sizeof(fetch), "FETCH FORWARD %lld FROM " CDC_CURSOR,
                 (long long)s->t.batch_size);
        s->snap_fetch = strdup(fetch);
        s->snap_active = s->snap_fetch != NULL;
        rc = s->snap_active ? VELO_OK : VELO_ERR;
    }
    PQfreemem(lit);
    free(qt);
    pg_buf_free(&set);
    pg_buf_free(&decl);
    return rc;
}

/* The replication socket is readable: take the bytes into libpq (so the
 * socket is quiet until more come, rather than readable on every turn
 * while the engine is busy downstream) and wake the engine. */
static void cdc_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct cdc_source *s = arg;
    (void)fd;
    (void)what;
    if (PQconsumeInput(s->repl) == 0 || PQstatus(s->repl) == CONNECTION_BAD) {
        /* Closed: stop watching (it would stay readable); the next read
         * notices and reconnects. */
        event_del(s->ev);
    }
    if (s->wake != NULL) {
        s->wake(s->wake_arg);
    }
}

static void cdc_unwatch(struct cdc_source *s)
{
    if (s->ev != NULL) {
        event_free(s->ev);
        s->ev = NULL;
    }
    s->ev_flags = 0;
    s->ev_fd = -1;
}

static void cdc_start_cmd(const struct cdc_source *s, uint64_t lsn, char *cmd,
                          size_t len)
{
    snprintf(cmd, len,
             "START_REPLICATION SLOT %s LOGICAL %X/%X (proto_version '1', "
             "publication_names '%s')",
             s->slot, (unsigned)(lsn >> 32), (unsigned)lsn, s->publication);
}

static int cdc_stream_begin(struct cdc_source *s, char *err, size_t errlen);

/* START_REPLICATION from `lsn` and switch the socket to nonblocking. */
static int cdc_start(struct cdc_source *s, uint64_t lsn, char *err,
                     size_t errlen)
{
    char cmd[256];
    cdc_start_cmd(s, lsn, cmd, sizeof(cmd));
    if (cdc_exec(s->repl, cmd, PGRES_COPY_BOTH, NULL, err, errlen) != VELO_OK) {
        return VELO_ERR;
    }
    return cdc_stream_begin(s, err, errlen);
}

/* The stream is on (COPY BOTH): read it nonblocking, watched on the loop. */
static int cdc_stream_begin(struct cdc_source *s, char *err, size_t errlen)
{
    if (PQsetnonblocking(s->repl, 1) != 0) {
        pg_message(PQerrorMessage(s->repl), err, errlen);
        return VELO_ERR;
    }
    s->streaming = 1;
    s->in_txn = 0;
    s->last_status_ms = pg_now_ms();
    if (s->base != NULL) {
        cdc_unwatch(s);
        s->ev = event_new(s->base, PQsocket(s->repl), EV_READ | EV_PERSIST,
                          cdc_on_read, s);
        if (s->ev == NULL || event_add(s->ev, NULL) != 0) {
            snprintf(err, errlen, "cannot watch the replication socket");
            cdc_unwatch(s);
            return VELO_ERR;
        }
    }
    return VELO_OK;
}

static void cdc_on_reconnect(evutil_socket_t fd, short what, void *arg);

static void cdc_free(struct cdc_source *s)
{
    if (s == NULL) {
        return;
    }
    cdc_unwatch(s);
    if (s->retry_ev != NULL) {
        event_free(s->retry_ev);
    }
    if (s->snap_ev != NULL) {
        event_free(s->snap_ev);
    }
    if (s->snap_res != NULL) {
        PQclear(s->snap_res);
    }
    if (s->repl != NULL) {
        PQfinish(s->repl);
    }
    if (s->sql != NULL) {
        PQfinish(s->sql);
    }
    for (size_t i = 0; i < s->nrels; i++) {
        cdc_rel_free(&s->rels[i]);
    }
    free(s->rels);
    cdc_rel_free(&s->snap_rel);
    free(s->snap_fetch);
    PQfreemem(s->held);
    free(s->offs);
    free(s->name);
    pg_buf_free(&s->out);
    pg_target_free(&s->t);
    free(s);
}

int pg_cdc_create(struct velo_instance *ins, const struct pg_conf *conf,
                  const struct velo_connector_ctx *ctx,
                  struct velo_source_info *info)
{
    struct cdc_source *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    s->cdc = 1;
    s->ev_fd = -1;
    s->ins = ins;
    s->conf = conf;
    s->base = ctx->base;
    s->wake = ctx->wake;
    s->wake_arg = ctx->wake_arg;
    s->name = strdup(ctx->name ? ctx->name : "cdc");
    if (s->name == NULL || pg_target_init(ins, conf, ctx, &s->t) != VELO_OK) {
        free(s->name);
        free(s);
        return VELO_ERR;
    }
    struct pg_target *t = &s->t;
    if (t->query != NULL) {
        velo_plg_error(ins,
                       "%s: mode 'cdc' captures a table's changes; name it "
                       "with '%s.table' rather than '%s.query'",
                       t->redacted, s->name, s->name);
        goto fail;
    }
    if (t->batch_size <= 0 || t->batch_size > 100000000) {
        velo_plg_error(ins, "batch.size must be 1 to 100000000 rows");
        goto fail;
    }
    if (conf->slot != NULL && *conf->slot != '\0') {
        snprintf(s->slot, sizeof(s->slot), "%s", conf->slot);
    } else {
        cdc_default_name(s->name, s->slot, sizeof(s->slot));
    }
    if (conf->publication != NULL && *conf->publication != '\0') {
        snprintf(s->publication, sizeof(s->publication), "%s",
                 conf->publication);
    } else {
        cdc_default_name(s->name, s->publication, sizeof(s->publication));
    }
    if (!cdc_valid_name(s->slot) || !cdc_valid_name(s->publication)) {
        velo_plg_error(ins,
                       "%s: slot '%s' / publication '%s': use lower-case "
                       "letters, digits and '_' (at most 63)",
                       t->redacted, s->slot, s->publication);
        goto fail;
    }
    if (t->table == NULL && (conf->snapshot || conf->create_publication)) {
        velo_plg_error(ins,
                       "%s: mode 'cdc' needs '%s.table' (for the initial "
                       "snapshot and the publication); or set "
                       "'%s.snapshot'='false' and name an existing "
                       "'%s.publication'",
                       t->redacted, s->name, s->name, s->name);
        goto fail;
    }
    char err[512];
    s->sql = pg_connect(conf, t, err, sizeof(err));
    if (s->sql == NULL) {
        velo_plg_error(ins, "cannot connect to %s: %s", t->redacted, err);
        goto fail;
    }
    if (cdc_publication(ins, s, conf->create_publication) != VELO_OK) {
        goto fail;
    }
    uint64_t lsn = 0;
    int found = cdc_slot_lookup(ins, s, &lsn);
    if (found < 0) {
        goto fail;
    }
    if (found == 0 && !conf->create_slot) {
        velo_plg_error(ins,
                       "%s: replication slot %s does not exist and "
                       "'%s.create.slot' is off",
                       t->redacted, s->slot, s->name);
        goto fail;
    }
    s->repl = cdc_connect_repl(s, err, sizeof(err));
    if (s->repl == NULL) {
        velo_plg_error(ins, "cannot open a replication connection to %s: %s",
                       t->redacted, err);
        goto fail;
    }
    if (found) {
        /* Resume: the server sends what committed after this point. */
        s->start_lsn = lsn;
        velo_plg_info(ins, "resuming slot %s at %X/%X", s->slot,
                      (unsigned)(lsn >> 32), (unsigned)lsn);
    } else if (cdc_create_slot(ins, s, conf->snapshot) != VELO_OK) {
        goto fail;
    }
    s->acked_lsn = s->start_lsn;
    s->read_end = s->start_lsn;
    if (!s->snap_active) {
        PQfinish(s->sql);
        s->sql = NULL;
        if (cdc_start(s, s->start_lsn, err, sizeof(err)) != VELO_OK) {
            velo_plg_error(ins, "%s: starting replication on slot %s: %s",
                           t->redacted, s->slot, err);
            goto fail;
        }
    }
    if (s->base != NULL) {
        s->retry_ev = evtimer_new(s->base, cdc_on_reconnect, s);
        if (s->retry_ev == NULL) {
            velo_plg_error(ins, "out of memory");
            goto fail;
        }
    }
    cdc_metrics_init(s);
    ins->context = s;
    info->bounded = 0;
    info->byte_stream = 0;
    info->size_bytes = -1;
    return VELO_OK;
fail:
    cdc_free(s);
    return VELO_ERR;
}

/* ---- snapshot phase ---------------------------------------------------------
 */

/* The snapshot connection is readable: a FETCH's answer. */
static void cdc_snapshot_on_read(evutil_socket_t fd, short what, void *arg)
{
    struct cdc_source *s = arg;
    (void)fd;
    (void)what;
    int ok = PQconsumeInput(s->sql);
    if (!ok || PQstatus(s->sql) == CONNECTION_BAD) {
        event_del(s->snap_ev); /* closed: the next read reports it */
    }
    if (s->snap_inflight && (!ok || !PQisBusy(s->sql)) && s->wake != NULL) {
        s->wake(s->wake_arg);
    }
}

/* The snapshot's next FETCH, sent without waiting for its answer: the
 * socket's event wakes the engine when it is in. @return VELO_OK (the
 * answer, maybe a failure, is in snap_res), VELO_AGAIN (not yet),
 * VELO_ERR (libpq failed; snap_res NULL). */
static int cdc_snapshot_fetch(struct cdc_source *s)
{
    if (!s->snap_inflight) {
        PQclear(s->snap_res);
        s->snap_res = NULL;
        s->snap_row = 0;
        if (!PQsendQuery(s->sql, s->snap_fetch)) {
            return VELO_ERR;
        }
        s->snap_inflight = 1;
        if (s->base != NULL && s->snap_ev == NULL) {
            s->snap_ev =
                event_new(s->base, PQsocket(s->sql), EV_READ | EV_PERSIST,
                          cdc_snapshot_on_read, s);
            if (s->snap_ev != NULL && event_add(s->snap_ev, NULL) != 0) {
                event_free(s->snap_ev);
                s->snap_ev = NULL;
            }
        }
    }
    for (;;) {
        if (PQconsumeInput(s->sql) == 0) {
            s->snap_inflight = 0;
            return VELO_ERR;
        }
        while (s->snap_inflight && !PQisBusy(s->sql)) {
            PGresult *r = PQgetResult(s->sql);
            if (r == NULL) {
                s->snap_inflight = 0;
            } else if (s->snap_res == NULL) {
                s->snap_res = r;
            } else {
                PQclear(r);
            }
        }
        if (!s->snap_inflight) {
            return VELO_OK;
        }
        if (s->base != NULL && s->snap_ev != NULL) {
            return VELO_AGAIN;
        }
        /* No loop (or no event): wait on the socket here. */
        struct pollfd p = {.fd = PQsocket(s->sql), .events = POLLIN};
        poll(&p, 1, 100);
    }
}

static int cdc_snapshot_read(struct velo_instance *ins, struct cdc_source *s,
                             struct velo_source_batch *out)
{
    char err[512];
    if (s->snap_res == NULL || s->snap_row >= PQntuples(s->snap_res)) {
        int fetched = cdc_snapshot_fetch(s);
        if (fetched == VELO_AGAIN) {
            return VELO_AGAIN;
        }
        if (fetched != VELO_OK || s->snap_res == NULL ||
            PQresultStatus(s->snap_res) != PGRES_TUPLES_OK) {
            pg_result_message(s->sql, s->snap_res, err, sizeof(err));
            velo_plg_error(ins,
                           "%s: reading the initial snapshot of %s failed "
                           "after %lld rows: %s (drop slot %s to take the "
                           "snapshot again)",
                           s->t.redacted, s->t.table, (long long)s->records,
                           err, s->slot);
            return VELO_ERR;
        }
        if (s->snap_rel.keys == NULL) {
            int nf = PQnfields(s->snap_res);
            const char **names = calloc((size_t)nf + 1, sizeof(*names));
            uint32_t *oids = calloc((size_t)nf + 1, sizeof(*oids));
            char *dot = strchr(s->t.table, '.');
            char schema[128];
            snprintf(schema, sizeof(schema), "%.*s",
                     dot ? (int)(dot - s->t.table) : 6,
                     dot ? s->t.table : "public");
            int rc = names != NULL && oids != NULL ? VELO_OK : VELO_ERR;
            for (int i = 0; rc == VELO_OK && i < nf; i++) {
                names[i] = PQfname(s->snap_res, i);
                oids[i] = (uint32_t)PQftype(s->snap_res, i);
            }
            if (rc == VELO_OK) {
                rc = cdc_rel_init(&s->snap_rel, schema,
                                  dot ? dot + 1 : s->t.table, nf, names, oids);
            }
            free(names);
            free(oids);
            if (rc != VELO_OK) {
                velo_plg_error(ins, "out of memory");
                return VELO_ERR;
            }
        }
        if (PQntuples(s->snap_res) == 0) {
            /* Done: close the snapshot and start streaming from the
             * slot's consistent point. */
            s->snap_active = 0;
            if (s->snap_ev != NULL) {
                event_free(s->snap_ev);
                s->snap_ev = NULL;
            }
            if (cdc_exec(s->sql, "COMMIT", PGRES_COMMAND_OK, NULL, err,
                         sizeof(err)) != VELO_OK) {
                velo_plg_warn(ins, "%s: closing the snapshot: %s",
                              s->t.redacted, err);
            }
            PQfinish(s->sql);
            s->sql = NULL;
            velo_plg_info(ins, "initial snapshot of %s: %lld rows", s->t.table,
                          (long long)s->records);
            if (cdc_start(s, s->start_lsn, err, sizeof(err)) != VELO_OK) {
                velo_plg_error(ins, "%s: starting replication on slot %s: %s",
                               s->t.redacted, s->slot, err);
                return VELO_ERR;
            }
            return VELO_AGAIN;
        }
    }
    const struct cdc_rel *rel = &s->snap_rel;
    size_t n = 0;
    s->out.len = 0;
    while (n < out->capacity && s->snap_row < PQntuples(s->snap_res)) {
        int row = s->snap_row++;
        if (cdc_begin_record(s, n) != VELO_OK ||
            pg_buf_add(&s->out, "{", 1) != VELO_OK) {
            goto oom;
        }
        for (int i = 0; i < rel->ncols; i++) {
            if ((i > 0 && pg_buf_add(&s->out, ",", 1) != VELO_OK) ||
                pg_buf_add(&s->out, rel->keys[i], rel->key_len[i]) != VELO_OK) {
                goto oom;
            }
            int rc = PQgetisnull(s->snap_res, row, i)
                         ? pg_buf_add(&s->out, "null", 4)
                         : cdc_value(&s->out, rel->kinds[i],
                                     PQgetvalue(s->snap_res, row, i),
                                     (size_t)PQgetlength(s->snap_res, row, i));
            if (rc != VELO_OK) {
                goto oom;
            }
        }
        if (pg_buf_adds(&s->out, rel->ncols > 0
                                     ? ",\"_before\":null"
                                     : "\"_before\":null") != VELO_OK ||
            cdc_tail(s, "insert", rel, s->start_lsn, 0) != VELO_OK) {
            goto oom;
        }
        n++;
    }
    if (cdc_begin_record(s, n) != VELO_OK) {
        goto oom;
    }
    for (size_t i = 0; i < n; i++) {
        out->payload[i].ptr = s->out.data + s->offs[i];
        out->payload[i].len = s->offs[i + 1] - s->offs[i];
    }
    out->count = n;
    s->records += (int64_t)n;
    cdc_metric_add(s, s->m_in, (double)n);
    cdc_metric_add(s, s->m_bytes, (double)s->out.len);
    return VELO_OK;
oom:
    velo_plg_error(ins, "out of memory");
    return VELO_ERR;
}

/* ---- stream -----------------------------------------------------------------
 */

static struct cdc_rel *cdc_find_rel(struct cdc_source *s, uint32_t oid)
{
    for (size_t i = 0; i < s->nrels; i++) {
        if (s->rels[i].oid == oid) {
            return &s->rels[i];
        }
    }
    return NULL;
}

static int cdc_relation(struct cdc_source *s, struct rd *r)
{
    uint32_t oid = rd32(r);
    const char *schema = rdstr(r);
    const char *table = rdstr(r);
    rd8(r); /* replica identity */
    int ncols = rd16(r);
    if (r->bad) {
        return VELO_OK;
    }
    const char **names = calloc((size_t)ncols + 1, sizeof(*names));
    uint32_t *oids = calloc((size_t)ncols + 1, sizeof(*oids));
    if (names == NULL || oids == NULL) {
        free(names);
        free(oids);
        return VELO_ERR;
    }
    uint8_t *keyf = calloc((size_t)ncols + 1, 1);
    if (keyf == NULL) {
        free(names);
        free(oids);
        return VELO_ERR;
    }
    for (int i = 0; i < ncols && !r->bad; i++) {
        keyf[i] = rd8(r) & 1; /* flags: 1 = part of the key */
        names[i] = rdstr(r);
        oids[i] = rd32(r);
        rd32(r); /* typmod */
    }
    int rc = VELO_OK;
    if (!r->bad) {
        struct cdc_rel *rel = cdc_find_rel(s, oid);
        if (rel == NULL) {
            if (s->nrels == s->rels_cap) {
                size_t cap = s->rels_cap ? s->rels_cap * 2 : 8;
                struct cdc_rel *nr = realloc(s->rels, cap * sizeof(*nr));
                if (nr == NULL) {
                    rc = VELO_ERR;
                    goto out;
                }
                s->rels = nr;
                s->rels_cap = cap;
            }
            rel = &s->rels[s->nrels++];
            memset(rel, 0, sizeof(*rel));
        } else {
            cdc_rel_free(rel);
        }
        rel->oid = oid;
        rc = cdc_rel_init(rel, schema, table, ncols, names, oids);
        for (int i = 0; rc == VELO_OK && i < ncols; i++) {
            rel->is_key[i] = keyf[i];
        }
    }
out:
    free(keyf);
    free(names);
    free(oids);
    return rc;
}

/* Is this change to be handed out? Skips what this run already handed out
 * before a reconnect. */
static int cdc_take_change(struct cdc_source *s)
{
    if (s->skip_txn) {
        return 0;
    }
    if (s->txn_skip > 0) {
        s->txn_skip--;
        return 0;
    }
    return 1;
}

/* One change message ('I', 'U', 'D') into a record. @return 1 a record
 * was added, 0 none, -1 no memory. */
static int cdc_change(struct cdc_source *s, uint8_t tag, struct rd *r,
                      uint64_t lsn, size_t n)
{
    struct cdc_rel *rel = cdc_find_rel(s, rd32(r));
    if (rel == NULL || r->bad || !cdc_take_change(s)) {
        return 0;
    }
    struct pg_buf *b = &s->out;
    size_t mark = b->len;
    if (cdc_begin_record(s, n) != VELO_OK || pg_buf_add(b, "{", 1) != VELO_OK) {
        return -1;
    }
    int first = 1;
    const char *op = tag == 'I' ? "insert" : tag == 'U' ? "update" : "delete";
    uint8_t k = rd8(r);
    if (tag == 'D') {
        /* The before-image is the record's columns and its _before. */
        if (k != 'K' && k != 'O') {
            r->bad = 1;
            return 0;
        }
        const unsigned char *at = r->p;
        if (cdc_tuple(b, rel, r, &first, k == 'K') != VELO_OK) {
            return -1;
        }
        if (pg_buf_adds(b, first ? "\"_before\":{" : ",\"_before\":{") !=
            VELO_OK) {
            return -1;
        }
        struct rd again = {at, r->end, 0};
        int f2 = 1;
        if (cdc_tuple(b, rel, &again, &f2, k == 'K') != VELO_OK ||
            pg_buf_add(b, "}", 1) != VELO_OK) {
            return -1;
        }
        first = 0;
    } else {
        const unsigned char *old = NULL;
        int old_key = k == 'K';
        if (tag == 'U' && (k == 'K' || k == 'O')) {
            old = r->p;
            int f = 1;
            /* Step over the old tuple to reach the new one. */
            cdc_tuple(NULL, rel, r, &f, 0);
            k = rd8(r);
        }
        if (k != 'N') {
            r->bad = 1;
            b->len = mark;
            return 0;
        }
        if (cdc_tuple(b, rel, r, &first, 0) != VELO_OK) {
            return -1;
        }
        if (old != NULL) {
            if (pg_buf_adds(b, first ? "\"_before\":{" : ",\"_before\":{") !=
                VELO_OK) {
                return -1;
            }
            struct rd again = {old, r->end, 0};
            int f2 = 1;
            if (cdc_tuple(b, rel, &again, &f2, old_key) != VELO_OK ||
                pg_buf_add(b, "}", 1) != VELO_OK) {
                return -1;
            }
        } else if (pg_buf_adds(b, first ? "\"_before\":null"
                                        : ",\"_before\":null") != VELO_OK) {
            return -1;
        }
        first = 0;
    }
    if (r->bad) {
        b->len = mark;
        return 0;
    }
    if (cdc_tail(s, op, rel, lsn, first) != VELO_OK) {
        return -1;
    }
    s->txn_emitted++;
    return 1;
}

/* Send a standby status update: written = flushed = applied = acked. */
static int cdc_status(struct cdc_source *s, int reply)
{
    char msg[34];
    msg[0] = 'r';
    put64(msg + 1, s->acked_lsn);
    put64(msg + 9, s->acked_lsn);
    put64(msg + 17, s->acked_lsn);
    /* microseconds since 2000-01-01 00:00 UTC */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t us = ((int64_t)ts.tv_sec - 946684800) * 1000000 + ts.tv_nsec / 1000;
    put64(msg + 25, (uint64_t)us);
    msg[33] = (char)(reply != 0);
    if (PQputCopyData(s->repl, msg, sizeof(msg)) != 1) {
        return VELO_ERR;
    }
    s->last_status_ms = pg_now_ms();
    s->status_pending = 0;
    return PQflush(s->repl) < 0 ? VELO_ERR : VELO_OK;
}

/* Decode one CopyData message. @return records added (>= 0), -1 no
 * memory, -2 it does not fit this batch (hold it). */
static int cdc_message(struct velo_instance *ins, struct cdc_source *s,
                       const char *buf, int len, size_t n, size_t cap)
{
    struct rd r = {(const unsigned char *)buf, (const unsigned char *)buf + len,
                   0};
    uint8_t kind = rd8(&r);
    if (kind == 'k') {
        s->last_wal = rd64(&r);
        rd64(&r);
        if (rd8(&r) && !r.bad) {
            s->status_pending = 1;
        }
        return 0;
    }
    if (kind != 'w') {
        return 0;
    }
    uint64_t start = rd64(&r);
    s->last_wal = rd64(&r);
    rd64(&r);
    uint8_t tag = rd8(&r);
    if (r.bad) {
        velo_plg_warn(ins, "%s: short replication message ignored",
                      s->t.redacted);
        return 0;
    }
    switch (tag) {
    case 'B': {
        s->txn_commit = rd64(&r);
        s->in_txn = 1;
        s->txn_emitted = 0;
        /* Replayed after a reconnect: skip what was handed out. */
        s->skip_txn = s->txn_commit <= s->done_commit;
        return 0;
    }
    case 'C': {
        rd8(&r);
        uint64_t commit = rd64(&r);
        s->txn_end = rd64(&r);
        s->in_txn = 0;
        if (!s->skip_txn && !r.bad) {
            /* The transaction cut short by a reconnect is the first one
             * replayed that was not skipped whole: its skip count is used
             * up here (not by the whole transactions skipped before it). */
            s->txn_skip = 0;
            s->done_commit = commit;
            s->read_end = s->txn_end;
        }
        s->skip_txn = 0;
        return 0;
    }
    case 'R':
        return cdc_relation(s, &r) == VELO_OK ? 0 : -1;
    case 'I':
    case 'U':
    case 'D':
        if (n >= cap) {
            return -2;
        }
        return cdc_change(s, tag, &r, start, n);
    case 'T': {
        uint32_t nrel = rd32(&r);
        rd8(&r);
        if (r.bad || (size_t)(r.end - r.p) / 4 < nrel) {
            return 0;
        }
        if (n + nrel > cap && n > 0) {
            return -2;
        }
        int added = 0;
        for (uint32_t i = 0; i < nrel && n < cap; i++) {
            struct cdc_rel *rel = cdc_find_rel(s, rd32(&r));
            if (rel == NULL || !cdc_take_change(s)) {
                continue;
            }
            if (cdc_begin_record(s, n) != VELO_OK ||
                pg_buf_adds(&s->out, "{\"_before\":null") != VELO_OK ||
                cdc_tail(s, "truncate", rel, start, 0) != VELO_OK) {
                return -1;
            }
            s->txn_emitted++;
            n++;
            added++;
        }
        return added;
    }
    default:
        return 0; /* origin, type, logical message */
    }
}

/* The connection broke: close it and plan a reconnect. */
static void cdc_lost(struct velo_instance *ins, struct cdc_source *s,
                     const char *why)
{
    char err[512];
    pg_message(why, err, sizeof(err));
    velo_plg_warn(ins, "%s: replication stream lost (%s); reconnecting",
                  s->t.redacted, err);
    cdc_metric_add(s, s->m_errors, 1);
    cdc_unwatch(s);
    PQfinish(s->repl);
    s->repl = NULL;
    s->streaming = 0;
    s->lost = 1;
    s->lost_since_ms = pg_now_ms();
    s->backoff_ms = 100;
    s->retry_at_ms = s->lost_since_ms;
    s->attempts = 0;
    PQfreemem(s->held);
    s->held = NULL;
    /* A transaction cut short is replayed from its start: skip the changes
     * of it this run already handed out. */
    s->txn_skip = s->in_txn && !s->skip_txn ? s->txn_emitted : 0;
    s->in_txn = 0;
}

/* Keep the retry timer at `due` (the earliest thing to look at). */
static void cdc_arm(struct cdc_source *s, int64_t due)
{
    if (s->retry_ev == NULL || (s->retry_due != 0 && s->retry_due <= due)) {
        return;
    }
    if (pg_timer_at(s->retry_ev, due) == 0) {
        s->retry_due = due;
    }
}

/* Watch the connection being made for what libpq waits for. */
static void cdc_watch_connect(struct cdc_source *s, short what)
{
    if (s->base == NULL) {
        return;
    }
    int fd = PQsocket(s->repl);
    short want = (short)(what | EV_PERSIST);
    /* While connecting, libpq may move to another socket (the next
     * address of a host). */
    if (fd < 0 || (s->ev != NULL && s->ev_flags == want && s->ev_fd == fd)) {
        return;
    }
    cdc_unwatch(s);
    s->ev = event_new(s->base, fd, want, cdc_on_reconnect, s);
    if (s->ev == NULL || event_add(s->ev, NULL) != 0) {
        /* The timer and the engine's reads still drive the attempt. */
        cdc_unwatch(s);
        return;
    }
    s->ev_flags = want;
    s->ev_fd = fd;
}

/* An attempt failed: give up past reconnect.timeout, else back off.
 * @return VELO_AGAIN or VELO_ERR. */
static int cdc_attempt_failed(struct velo_instance *ins, struct cdc_source *s,
                              const char *err, int64_t now)
{
    cdc_unwatch(s);
    if (s->repl != NULL) {
        PQfinish(s->repl);
        s->repl = NULL;
    }
    s->connecting = 0;
    cdc_metric_add(s, s->m_errors, 1);
    int64_t limit = s->conf->reconnect_timeout;
    if (limit > 0 && now - s->lost_since_ms >= limit) {
        velo_plg_error(ins,
                       "%s: cannot resume replication on slot %s after "
                       "%lld ms (reconnect.timeout): %s",
                       s->t.redacted, s->slot,
                       (long long)(now - s->lost_since_ms), err);
        return VELO_ERR;
    }
    /* The first failure, every tenth, and whenever the reason changes:
     * enough to follow without flooding. */
    if (s->attempts == 1 || s->attempts % 10 == 0 ||
        strcmp(err, s->last_err) != 0) {
        velo_plg_warn(ins,
                      "%s: cannot resume replication (attempt %lld): %s; "
                      "retrying",
                      s->t.redacted, (long long)s->attempts, err);
        snprintf(s->last_err, sizeof(s->last_err), "%s", err);
    }
    s->retry_at_ms = now + s->backoff_ms;
    s->backoff_ms = s->backoff_ms * 2 > 5000 ? 5000 : s->backoff_ms * 2;
    cdc_arm(s, s->retry_at_ms);
    return VELO_AGAIN;
}

/* One attempt's bound: connecting, then the START_REPLICATION answer. */
static int64_t cdc_attempt_limit(const struct cdc_source *s)
{
    return s->conf->connect_timeout > 1000 ? s->conf->connect_timeout : 1000;
}

/* Move the reconnection on without waiting: a connection started with
 * PQconnectStartParams and polled when its socket is ready, then
 * START_REPLICATION sent and its answer read when it comes. Runs from
 * pg_cdc_read and from the socket's and the timer's events. @return
 * VELO_OK (streaming again), VELO_AGAIN (not yet), VELO_ERR (gave up). */
static int cdc_reconnect(struct velo_instance *ins, struct cdc_source *s)
{
    if (s->failed) {
        return VELO_ERR;
    }
    int64_t now = pg_now_ms();
    char err[512];
    if (!s->connecting) {
        if (now < s->retry_at_ms) {
            cdc_arm(s, s->retry_at_ms);
            return VELO_AGAIN;
        }
        s->attempts++;
        s->repl =
            pg_connect_replication_start(s->conf, &s->t, err, sizeof(err));
        if (s->repl == NULL) {
            return cdc_attempt_failed(ins, s, err, now);
        }
        s->connecting = 1;
        /* As if PQconnectPoll had asked to write (libpq's contract). */
        s->connect_poll = PGRES_POLLING_WRITING;
        s->attempt_deadline = now + cdc_attempt_limit(s);
    }
    if (s->connecting == 1) {
        /* PQconnectPoll only once the socket is ready for what it last
         * asked (earlier, it could take a connect in progress for a
         * finished one). */
        struct pollfd p = {.fd = PQsocket(s->repl),
                           .events = s->connect_poll == PGRES_POLLING_READING
                                         ? POLLIN
                                         : POLLOUT};
        PostgresPollingStatusType st = s->connect_poll;
        if (p.fd < 0 || poll(&p, 1, 0) != 0) {
            st = PQconnectPoll(s->repl);
        }
        if (st == PGRES_POLLING_FAILED) {
            pg_message(PQerrorMessage(s->repl), err, sizeof(err));
            return cdc_attempt_failed(ins, s, err, now);
        }
        if (st != PGRES_POLLING_OK) {
            if (now >= s->attempt_deadline) {
                snprintf(err, sizeof(err),
                         "no answer within %lld ms (connect.timeout)",
                         (long long)cdc_attempt_limit(s));
                return cdc_attempt_failed(ins, s, err, now);
            }
            s->connect_poll = st;
            cdc_watch_connect(s,
                              st == PGRES_POLLING_READING ? EV_READ : EV_WRITE);
            cdc_arm(s, s->attempt_deadline);
            return VELO_AGAIN;
        }
        char cmd[256];
        cdc_start_cmd(s, s->acked_lsn, cmd, sizeof(cmd));
        if (PQsetnonblocking(s->repl, 1) != 0 || !PQsendQuery(s->repl, cmd)) {
            pg_message(PQerrorMessage(s->repl), err, sizeof(err));
            return cdc_attempt_failed(ins, s, err, now);
        }
        s->connecting = 2;
        s->attempt_deadline = now + cdc_attempt_limit(s);
    }
    /* START_REPLICATION sent: its answer is COPY BOTH, or an error (the
     * old walsender still holds the slot, ...). */
    int f = PQflush(s->repl);
    if (f < 0 || PQconsumeInput(s->repl) == 0) {
        pg_message(PQerrorMessage(s->repl), err, sizeof(err));
        return cdc_attempt_failed(ins, s, err, now);
    }
    if (PQisBusy(s->repl)) {
        if (now >= s->attempt_deadline) {
            snprintf(err, sizeof(err),
                     "no answer to START_REPLICATION within %lld ms "
                     "(connect.timeout)",
                     (long long)cdc_attempt_limit(s));
            return cdc_attempt_failed(ins, s, err, now);
        }
        cdc_watch_connect(s, (short)(EV_READ | (f == 1 ? EV_WRITE : 0)));
        cdc_arm(s, s->attempt_deadline);
        return VELO_AGAIN;
    }
    PGresult *r = PQgetResult(s->repl);
    if (r == NULL || PQresultStatus(r) != PGRES_COPY_BOTH) {
        pg_result_message(s->repl, r, err, sizeof(err));
        PQclear(r);
        return cdc_attempt_failed(ins, s, err, now);
    }
    PQclear(r);
    s->connecting = 0;
    cdc_unwatch(s);
    if (cdc_stream_begin(s, err, sizeof(err)) != VELO_OK) {
        s->streaming = 0;
        return cdc_attempt_failed(ins, s, err, now);
    }
    velo_plg_info(ins, "%s: replication stream resumed at %X/%X", s->t.redacted,
                  (unsigned)(s->acked_lsn >> 32), (unsigned)s->acked_lsn);
    s->lost = 0;
    s->last_err[0] = '\0';
    cdc_metric_add(s, s->m_reconnects, 1);
    return VELO_OK;
}

/* The new connection's socket, or the retry timer: move the reconnection
 * on, and wake the engine when it is done (or gave up). */
static void cdc_on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    struct cdc_source *s = arg;
    (void)fd;
    if (what & EV_TIMEOUT) {
        s->retry_due = 0;
    }
    if (!s->lost) {
        return;
    }
    int rc = cdc_reconnect(s->ins, s);
    if (rc == VELO_ERR) {
        s->failed = 1;
    }
    if (rc != VELO_AGAIN && s->wake != NULL) {
        s->wake(s->wake_arg);
    }
}

int pg_cdc_read(struct velo_instance *ins, struct velo_source_batch *out)
{
    struct cdc_source *s = ins->context;
    out->count = 0;
    if (s->snap_active) {
        return cdc_snapshot_read(ins, s, out);
    }
    if (s->failed) {
        return VELO_ERR;
    }
    if (s->lost) {
        int rc = cdc_reconnect(ins, s);
        if (rc == VELO_ERR) {
            s->failed = 1;
        }
        if (rc != VELO_OK) {
            return rc;
        }
    }
    if (PQconsumeInput(s->repl) == 0) {
        cdc_lost(ins, s, PQerrorMessage(s->repl));
        return VELO_AGAIN;
    }
    size_t n = 0;
    s->out.len = 0;
    for (;;) {
        char *buf = s->held;
        int len = s->held_len;
        s->held = NULL;
        if (buf == NULL) {
            len = PQgetCopyData(s->repl, &buf, 1);
            if (len == 0) {
                break;
            }
            if (len < 0) {
                /* -1: the server ended the stream; -2: an error. */
                PGresult *res;
                while ((res = PQgetResult(s->repl)) != NULL) {
                    PQclear(res);
                }
                cdc_lost(ins, s,
                         len == -1 ? "the server ended the stream"
                                   : PQerrorMessage(s->repl));
                break;
            }
        }
        int rc = cdc_message(ins, s, buf, len, n, out->capacity);
        if (rc == -2) {
            s->held = buf;
            s->held_len = len;
            break;
        }
        PQfreemem(buf);
        if (rc < 0) {
            velo_plg_error(ins, "out of memory");
            return VELO_ERR;
        }
        n += (size_t)rc;
    }
    if (s->repl != NULL &&
        (s->status_pending ||
         pg_now_ms() - s->last_status_ms >= CDC_STATUS_MS) &&
        cdc_status(s, 0) != VELO_OK) {
        cdc_lost(ins, s, PQerrorMessage(s->repl));
    }
    if (s->m_lag != NULL && VELO_HOST_HAS(ins->host, metric_set)) {
        ins->host->metric_set(s->m_lag,
                              s->last_wal > s->acked_lsn
                                  ? (double)(s->last_wal - s->acked_lsn)
                                  : 0.0);
    }
    if (n == 0) {
        return VELO_AGAIN;
    }
    if (cdc_begin_record(s, n) != VELO_OK) {
        velo_plg_error(ins, "out of memory");
        return VELO_ERR;
    }
    for (size_t i = 0; i < n; i++) {
        out->payload[i].ptr = s->out.data + s->offs[i];
        out->payload[i].len = s->offs[i + 1] - s->offs[i];
        if (out->meta != NULL) {
            out->meta[i].offset = s->records + (int64_t)i;
        }
    }
    out->count = n;
    s->records += (int64_t)n;
    cdc_metric_add(s, s->m_in, (double)n);
    cdc_metric_add(s, s->m_bytes, (double)s->out.len);
    return VELO_OK;
}

int pg_cdc_position(struct velo_instance *ins, uint8_t *buf, size_t cap)
{
    struct cdc_source *s = ins->context;
    if (cap < 8) {
        return VELO_ERR;
    }
    put64((char *)buf, s->read_end);
    return 8;
}

int pg_cdc_seek(struct velo_instance *ins, const uint8_t *pos, size_t len)
{
    struct cdc_source *s = ins->context;
    if (len != 8) {
        velo_plg_error(ins, "%s: a CDC position is 8 bytes (an LSN), not %zu",
                       s->t.redacted, len);
        return VELO_ERR;
    }
    uint64_t lsn = be64(pos);
    /* Transactions that ended at or before it were delivered: skip them
     * when the server sends them (it may, from an older confirmed LSN). */
    if (lsn > s->read_end) {
        s->read_end = lsn;
        s->done_commit = lsn - 1;
    }
    return VELO_OK;
}

int pg_cdc_commit(struct velo_instance *ins, const uint8_t *pos, size_t len)
{
    struct cdc_source *s = ins->context;
    if (len != 8) {
        return VELO_ERR;
    }
    uint64_t lsn = be64(pos);
    if (lsn <= s->acked_lsn) {
        return VELO_OK;
    }
    s->acked_lsn = lsn;
    if (s->streaming && s->repl != NULL && cdc_status(s, 0) != VELO_OK) {
        /* Sent again on the next status after the reconnect. */
        velo_plg_warn(ins, "%s: acknowledging %X/%X: %s", s->t.redacted,
                      (unsigned)(lsn >> 32), (unsigned)lsn,
                      PQerrorMessage(s->repl));
    }
    return VELO_OK;
}

void pg_cdc_destroy(struct velo_instance *ins)
{
    struct cdc_source *s = ins->context;
    if (s != NULL && s->streaming && s->repl != NULL) {
        /* Last word on what is confirmed, then close the stream. */
        PQsetnonblocking(s->repl, 0);
        cdc_status(s, 0);
        PQputCopyEnd(s->repl, NULL);
        PQflush(s->repl);
    }
    cdc_free(s);
    ins->context = NULL;
}
