/*
 * Shared between the files of the Kafka connector.
 */
#ifndef VELO_KAFKA_INTERNAL_H
#define VELO_KAFKA_INTERNAL_H

#include <stdint.h>

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

#endif /* VELO_KAFKA_INTERNAL_H */
