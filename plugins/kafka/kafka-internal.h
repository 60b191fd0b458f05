/*
 * Shared between the files of the Kafka connector.
 */
#ifndef VELO_KAFKA_INTERNAL_H
#define VELO_KAFKA_INTERNAL_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include <velo/velo.h>

struct kafka_conf {
    char *bootstrap_servers;
    char *topic;
    char *group_id;
    char *auto_offset_reset;
    char *compression;
    int64_t linger_ms;
    char *acks;
    int enable_idempotence;
    int64_t connect_timeout_ms;
    int64_t delivery_timeout_ms;
    int64_t session_timeout_ms;
    int exactly_once;       /* source: read_committed; sink: transactions */
    char *transactional_id; /* sink: set means transactional too */
};

/** The connector's `introspect` (kafka-inspect.c). */
int kafka_introspect(const void *config, const struct velo_connector_ctx *ctx,
                     const char *what, const char *arg, char **out, char *err,
                     size_t errlen);

/**
 * One record's headers, `text` (len bytes: a flat JSON object, or null),
 * as librdkafka headers in *out (NULL for {} and null; the caller owns
 * the list until librdkafka takes it with a message). `scratch` must hold
 * len bytes (kafka-headers.c).
 * @return 0, or -1 with why = what was expected and at which byte.
 */
int kafka_headers_parse(const char *text, size_t len, char *scratch,
                        rd_kafka_headers_t **out, char *why, size_t whylen);

#endif /* VELO_KAFKA_INTERNAL_H */
