/*
 * Velostream plugin SDK: Connector (source and sink).
 *
 * A connector moves bytes; the core decodes and encodes formats. A source
 * hands the engine batches of record payloads (views into buffers the source
 * owns until its next read), a sink receives batches of encoded records.
 * Nothing here is called per record: the hot path is batch at a time.
 *
 * Threading: all callbacks of one instance run on the worker thread that owns
 * the job; `base` in struct velo_connector_ctx is that worker's loop (never
 * NULL since ABI 1.2). Connectors register their fds there (librdkafka's
 * queue event fd, libpq's PQsocket, hiredis' libevent adapter) and never
 * block the thread: a source with nothing now returns VELO_AGAIN and calls
 * `wake` when data arrives; a sink whose replies are outstanding returns
 * VELO_AGAIN from sink_flush and calls `wake` when they are in.
 *
 * The engine runs the loop itself: once per turn without waiting
 * (EVLOOP_NONBLOCK) and, when nothing moved, until an event or a short
 * timeout (EVLOOP_ONCE). It never calls a connector from inside one of the
 * loop's callbacks, so a callback that must answer now (lookup_get) may run
 * event_base_loop(base, EVLOOP_ONCE) itself until its replies are in.
 * Connector event callbacks must not call back into the engine except
 * through `wake`.
 */
#ifndef VELO_CONNECTOR_H
#define VELO_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>

#include <velo/plugin.h>
#include <velo/value.h>

#ifdef __cplusplus
extern "C" {
#endif

struct event_base;

/* One WITH property, prefix removed: 'orders.topic'='x' -> {"topic","x"}. */
struct velo_property {
    const char *key;
    const char *value;
};

/* What the engine tells a connector instance at creation. Borrowed. */
struct velo_connector_ctx {
    const char *job;  /* job name */
    const char *name; /* the source or sink name in SQL */
    const char *uri;  /* the URI from FROM/INTO, or NULL */
    const struct velo_property *props; /* every property, for passthrough */
    size_t nprops;
    struct event_base *base; /* the worker's loop */
    /** Wake the engine: data is ready (source) or space is free (sink). */
    void (*wake)(void *wake_arg);
    void *wake_arg;
};

struct velo_record_meta {
    int64_t timestamp_us; /* source timestamp, INT64_MIN when none */
    int32_t partition;    /* -1 when the source has none */
    int64_t offset;       /* -1 when the source has none */
    struct velo_str key;  /* ptr NULL when none */
};

struct velo_source_batch {
    size_t count;    /* filled by the source */
    size_t capacity; /* set by the engine */
    struct velo_str *payload;      /* capacity entries */
    struct velo_record_meta *meta; /* capacity entries, or NULL */
    /* ABI 1.1 (NULL for a source the engine does not ask): capacity
     * entries, each the record's headers as one JSON object text
     * ({"name": "value", ...}; a header without value is null), or ptr
     * NULL when the record has none. Views valid until the next read. */
    struct velo_str *headers;
};

/* What a source says about itself once created. */
struct velo_source_info {
    int bounded;        /* 1: the input ends (a file without watch) */
    int byte_stream;    /* 1: payloads are consecutive byte ranges of one
                           stream and a record may span two of them (files,
                           stdin); 0: one record per payload (Kafka) */
    int64_t size_bytes; /* total when known (progress), else -1 */
};

enum velo_connector_flags {
    VELO_CONNECTOR_SOURCE = 1,
    VELO_CONNECTOR_SINK = 2,
    /* sink_write receives one encoded row per record (no trailing newline):
     * message systems (Kafka, Redis, PostgreSQL). Without it a sink is a
     * byte stream and receives chunks of many rows (files, stdout). */
    VELO_CONNECTOR_RECORD_SINK = 4,
    /* ABI 1.1: source_read returns one record per payload with meta (key,
     * partition, offset, timestamp) and, when out->headers is non-NULL,
     * headers: SQL then offers the hidden columns _key, _partition,
     * _offset and _headers (HEADER('name')). */
    VELO_CONNECTOR_RECORD_SOURCE = 8
};

struct velo_connector_vtable {
    uint32_t size;      /* sizeof(struct velo_connector_vtable) */
    const char *scheme; /* URI scheme this connector answers ("kafka"), or
                           NULL; also the "<scheme>_source/_sink" type */
    uint32_t flags;     /* enum velo_connector_flags */

    /* --- source (all NULL when the connector has none) --- */
    /** Fills `info`. @return VELO_OK and sets ins->context, or VELO_ERR
     *  (logged, naming the URI with credentials redacted). */
    int (*source_create)(struct velo_instance *ins, const void *config,
                         const struct velo_connector_ctx *ctx,
                         struct velo_source_info *info);
    /** Fill `out` with up to out->capacity records.
     *  @return VELO_OK (count may be 0), VELO_AGAIN (nothing now; `wake`
     *  will be called), VELO_DECLINED (end of a bounded input), VELO_ERR. */
    int (*source_read)(struct velo_instance *ins,
                       struct velo_source_batch *out);
    /** Serialize the position after the last read batch for a checkpoint.
     *  @return bytes written, or VELO_ERR when `cap` is too small. */
    int (*source_position)(struct velo_instance *ins, uint8_t *buf,
                           size_t cap);
    /** Resume from a checkpointed position. @return VELO_OK or VELO_ERR. */
    int (*source_seek)(struct velo_instance *ins, const uint8_t *pos,
                       size_t len);
    /** Everything read up to `pos` is durable downstream: acknowledge it
     *  upstream (commit offsets, XACK). Called only after every sink has
     *  flushed: with a state dir after each checkpoint is on disk; without
     *  one, now and then for stateless plans and at a clean stop for
     *  stateful ones. */
    int (*source_commit)(struct velo_instance *ins, const uint8_t *pos,
                         size_t len);
    void (*source_destroy)(struct velo_instance *ins);

    /* --- sink (all NULL when the connector has none) --- */
    int (*sink_create)(struct velo_instance *ins, const void *config,
                       const struct velo_connector_ctx *ctx);
    /** Accept `n` encoded records (the pointers are valid for the call
     *  only: copy what you keep). meta may be NULL.
     *  @return VELO_OK (all taken), VELO_AGAIN (full: NONE was taken; the
     *  engine repeats the same call later), VELO_ERR. */
    int (*sink_write)(struct velo_instance *ins, const struct velo_str *recs,
                      const struct velo_record_meta *meta, size_t n);
    /** Make everything written so far durable (checkpoint barrier).
     *  @return VELO_OK, VELO_AGAIN (call again after `wake`), VELO_ERR. */
    int (*sink_flush)(struct velo_instance *ins);
    void (*sink_destroy)(struct velo_instance *ins);

    /* ---- Appended in ABI 1.1: the engine reads these only when `size`
     * covers them (a 1.0 plugin's vtable is shorter). ---- */

    /* --- lookup: keyed reads for stream-table joins (NULL when none) --- */
    /** Open the table the properties name for reads by the column `key`
     *  (PostgreSQL: a table; Redis: hashes or JSON strings under
     *  '<name>.key.prefix' + key). @return VELO_OK, or VELO_ERR (logged,
     *  credentials redacted). */
    int (*lookup_create)(struct velo_instance *ins, const void *config,
                         const struct velo_connector_ctx *ctx,
                         const char *key);
    /** For keys[0..n) (the key values as text), set out->payload[i] to the
     *  matching row as one JSON object ({"col": value, ...}), or ptr NULL
     *  when there is none; out->count = n (n <= out->capacity). Views stay
     *  valid until the next call. All values are sent as parameters, never
     *  spliced into query text. @return VELO_OK or VELO_ERR (logged). */
    int (*lookup_get)(struct velo_instance *ins, const struct velo_str *keys,
                      size_t n, struct velo_source_batch *out);
    void (*lookup_destroy)(struct velo_instance *ins);

    /* --- introspection for tools and the Studio (NULL when none) --- */
    /** Describe what the connector reaches with these settings, as a JSON
     *  document in *out (malloc'd; the caller frees). what:
     *    "list"     tables (PostgreSQL: [{"schema","table","columns":
     *               [{"name","type","nullable"}]}]), topics (Kafka:
     *               [{"topic","partitions","messages"}]), streams/keys
     *               (Redis);
     *    "describe" one of them (arg: its name): columns and types, or for
     *               schemaless ones a schema inferred from sampled records
     *               [{"field","type","example"}];
     *    "groups"   consumer groups and their lag where it applies.
     *  @return VELO_OK, VELO_DECLINED (what is not supported), VELO_ERR
     *  with err (credentials redacted). */
    int (*introspect)(const void *config,
                      const struct velo_connector_ctx *ctx, const char *what,
                      const char *arg, char **out, char *err, size_t errlen);

    /* --- sink checkpoints (ABI 1.1; NULL when none) --- */
    /** After a successful sink_flush: serialize what is durable (a file:
     *  which file and its length) for a checkpoint.
     *  @return bytes written, or VELO_ERR when `cap` is too small. */
    int (*sink_position)(struct velo_instance *ins, uint8_t *buf,
                         size_t cap);
    /** On resume, before any write: go back to a position sink_position
     *  wrote (a file: truncate to the recorded length, so nothing written
     *  after the checkpoint is there twice). @return VELO_OK or VELO_ERR
     *  (logged). */
    int (*sink_restore)(struct velo_instance *ins, const uint8_t *pos,
                        size_t len);

    /* ---- Appended in ABI 1.2 ---- */

    /* --- sink with message headers (NULL when none) --- */
    /** sink_write, plus headers[i]: record i's headers as one JSON object
     *  text ({"name": "value", ...}; a value that is not a string is sent
     *  as its JSON text, null as a header without value), or ptr NULL for
     *  none. The engine calls this instead of sink_write when the query's
     *  output has a `_headers` column (which then is not in the payload).
     *  Same return contract as sink_write. */
    int (*sink_write_headers)(struct velo_instance *ins,
                              const struct velo_str *recs,
                              const struct velo_record_meta *meta,
                              const struct velo_str *headers, size_t n);
};

/* Does this vtable (of `size` bytes) carry member m? */
#define VELO_VTABLE_HAS(vt, m)                                               \
    ((vt)->size >= offsetof(struct velo_connector_vtable, m) +              \
                       sizeof((vt)->m) &&                                     \
     (vt)->m != NULL)

#ifdef __cplusplus
}
#endif

#endif /* VELO_CONNECTOR_H */
