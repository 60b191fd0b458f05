/*
 * PostgreSQL connector: what the source, the sink and the shared
 * connection code see of each other. Plugin-internal (symbols pg_*).
 */
#ifndef VELO_PG_INTERNAL_H
#define VELO_PG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include <velo/velo.h>

/* The engine's record-sink flag (one encoded row per payload). It is being
 * added to connector.h; until then the value is defined here. */
#ifndef VELO_CONNECTOR_RECORD_SINK
#define VELO_CONNECTOR_RECORD_SINK 4
#endif

/* Properties of one source or sink ('<name>.<key>'), from the config map. */
struct pg_conf {
    char *url;      /* postgres://user:pass@host:port/db?... (secret) */
    char *password; /* overrides the URL's (secret) */
    char *table;
    char *query;
    char *mode; /* source: snapshot | cdc; sink: insert | upsert */
    char *key;  /* sink: key columns, comma-separated */
    int create_table;
    int64_t batch_size;        /* source: rows per FETCH */
    int64_t insert_rows;       /* sink: rows that make a batch to send */
    int64_t max_tx_rows;       /* sink: next batch's limit while one flies */
    int64_t connect_timeout;   /* ms */
    int64_t statement_timeout; /* ms, 0: none */
    int64_t reconnect_timeout; /* ms: sink gives up after this */
    char *application_name;
    /* CDC (mode 'cdc') */
    char *slot;
    char *publication;
    int create_slot;
    int create_publication;
    int snapshot;
};

/* Where and what, resolved from the URI (FROM/INTO or 'url') and the
 * properties: properties win over the URI's velo parameters. */
struct pg_target {
    char *conninfo; /* the URI without velo's own parameters, for libpq */
    char *redacted; /* the URI with the password masked, for messages */
    char *table;    /* NULL when none */
    char *query;    /* NULL when none */
    char *mode;     /* NULL when none */
    char *key;      /* NULL when none */
    int create_table;
    int64_t batch_size;
};

/** Resolve the URI and properties. @return VELO_OK, or VELO_ERR (logged). */
int pg_target_init(struct velo_instance *ins, const struct pg_conf *conf,
                   const struct velo_connector_ctx *ctx, struct pg_target *t);
void pg_target_free(struct pg_target *t);

/** Connect (blocking, bounded by connect.timeout); sets UTC, ISO dates,
 *  UTF-8. @return the connection, or NULL with the reason in err. */
PGconn *pg_connect(const struct pg_conf *conf, const struct pg_target *t,
                   char *err, size_t errlen);

/** Start connecting without waiting (PQconnectStartParams): the caller
 *  drives PQconnectPoll on PQsocket and bounds it by connect.timeout
 *  itself. @return the connection, or NULL with the reason in err. */
PGconn *pg_connect_start(const struct pg_conf *conf, const struct pg_target *t,
                         char *err, size_t errlen);

/** The same as a replication connection (replication=database), for
 *  logical replication commands. */
PGconn *pg_connect_replication(const struct pg_conf *conf,
                               const struct pg_target *t, char *err,
                               size_t errlen);

/** pg_connect_replication without waiting, as pg_connect_start. */
PGconn *pg_connect_replication_start(const struct pg_conf *conf,
                                     const struct pg_target *t, char *err,
                                     size_t errlen);

/** Copy libpq's message (one line, trimmed) into err. */
void pg_message(const char *msg, char *err, size_t errlen);

/** A failed result's message: the server's primary text with its detail
 *  and hint, or libpq's own message; one line. */
void pg_result_message(PGconn *conn, const PGresult *res, char *err,
                       size_t errlen);

/** 1 when a failed call lost the connection (server gone, backend
 *  terminated, network): the caller reconnects rather than fails. */
int pg_conn_lost(PGconn *conn, const PGresult *res);

/** A possibly schema-qualified name ("s.t") quoted for SQL, each part with
 *  PQescapeIdentifier. @return malloc'd text, or NULL. */
char *pg_quote_qualified(PGconn *conn, const char *name);

/** Milliseconds on a monotonic clock. */
int64_t pg_now_ms(void);

struct event;
/** Arm the timer `ev` to fire at `due` (pg_now_ms time; at least 1 ms
 *  from now). @return 0, or -1 when libevent refused. */
int pg_timer_at(struct event *ev, int64_t due);

/* A growable byte buffer. */
struct pg_buf {
    char *data;
    size_t len, cap;
};
int pg_buf_reserve(struct pg_buf *b, size_t more);
int pg_buf_add(struct pg_buf *b, const char *s, size_t n);
int pg_buf_adds(struct pg_buf *b, const char *s);
/** Append s as a JSON string (quoted, escaped). */
int pg_buf_json_str(struct pg_buf *b, const char *s, size_t n);
void pg_buf_free(struct pg_buf *b);

/* Source and sink entry points (pg-source.c, pg-sink.c). */
int pg_source_create(struct velo_instance *ins, const void *config,
                     const struct velo_connector_ctx *ctx,
                     struct velo_source_info *info);
int pg_source_read(struct velo_instance *ins, struct velo_source_batch *out);
int pg_source_position(struct velo_instance *ins, uint8_t *buf, size_t cap);
int pg_source_seek(struct velo_instance *ins, const uint8_t *pos, size_t len);
int pg_source_commit(struct velo_instance *ins, const uint8_t *pos, size_t len);
void pg_source_destroy(struct velo_instance *ins);

/* Mode 'cdc' (pg-cdc.c); pg_source_* hand over to these. */
int pg_cdc_create(struct velo_instance *ins, const struct pg_conf *conf,
                  const struct velo_connector_ctx *ctx,
                  struct velo_source_info *info);
int pg_cdc_read(struct velo_instance *ins, struct velo_source_batch *out);
int pg_cdc_position(struct velo_instance *ins, uint8_t *buf, size_t cap);
int pg_cdc_seek(struct velo_instance *ins, const uint8_t *pos, size_t len);
int pg_cdc_commit(struct velo_instance *ins, const uint8_t *pos, size_t len);
void pg_cdc_destroy(struct velo_instance *ins);

/* Lookups (pg-lookup.c) and introspection (pg-introspect.c): the
 * connector.h ABI 1.1 entries. */
int pg_lookup_create(struct velo_instance *ins, const void *config,
                     const struct velo_connector_ctx *ctx, const char *key);
int pg_lookup_get(struct velo_instance *ins, const struct velo_str *keys,
                  size_t n, struct velo_source_batch *out);
void pg_lookup_destroy(struct velo_instance *ins);
int pg_introspect(const void *config, const struct velo_connector_ctx *ctx,
                  const char *what, const char *arg, char **out, char *err,
                  size_t errlen);
/** The host table, for introspection (which has no instance). */
void pg_introspect_host(const struct velo_host_api *host);

int pg_sink_create(struct velo_instance *ins, const void *config,
                   const struct velo_connector_ctx *ctx);
int pg_sink_write(struct velo_instance *ins, const struct velo_str *recs,
                  const struct velo_record_meta *meta, size_t n);
int pg_sink_flush(struct velo_instance *ins);
void pg_sink_destroy(struct velo_instance *ins);

#endif /* VELO_PG_INTERNAL_H */
