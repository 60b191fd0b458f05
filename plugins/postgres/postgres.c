/*
 * PostgreSQL connector plugin (libpq, nonblocking on the worker's event
 * loop): a snapshot source read with a server-side cursor, and a sink that
 * inserts or upserts rows with COPY, one transaction per batch. Used from
 * SQL as postgres://... or with '<name>.type' = 'postgres_source' |
 * 'postgres_sink'. Mode 'cdc' reads a table's changes over logical
 * replication (pg-cdc.c); lookups serve stream-table joins (pg-lookup.c);
 * introspection lists and describes tables (pg-introspect.c).
 * docs/connectors/postgres.md describes every property.
 */
#include <stddef.h>

#include "pg-internal.h"

static const struct velo_config_map pg_config[] = {
    {VELO_CONFIG_SECRET, "url", "", offsetof(struct pg_conf, url),
     "postgres://user:password@host:5432/db (a URI in FROM/INTO wins)"},
    {VELO_CONFIG_SECRET, "password", "", offsetof(struct pg_conf, password),
     "password; overrides the URL's"},
    {VELO_CONFIG_STR, "table", "", offsetof(struct pg_conf, table),
     "table to read or write, optionally schema.table"},
    {VELO_CONFIG_STR, "query", "", offsetof(struct pg_conf, query),
     "source: a SELECT to read instead of a table"},
    {VELO_CONFIG_STR, "mode", "", offsetof(struct pg_conf, mode),
     "source: snapshot (default); sink: insert (default) or upsert"},
    {VELO_CONFIG_STR, "key", "", offsetof(struct pg_conf, key),
     "sink: key columns for upsert and create.table, comma-separated"},
    {VELO_CONFIG_BOOL, "create.table", "false",
     offsetof(struct pg_conf, create_table),
     "sink: create the table from the first row when it is missing"},
    {VELO_CONFIG_INT, "batch.size", "10000",
     offsetof(struct pg_conf, batch_size), "source: rows per FETCH"},
    {VELO_CONFIG_INT, "insert.rows", "500",
     offsetof(struct pg_conf, insert_rows),
     "sink: rows that make a batch (one COPY transaction) sent without "
     "waiting for a flush (1 to 10000000)"},
    {VELO_CONFIG_INT, "max.transaction.rows", "100000",
     offsetof(struct pg_conf, max_tx_rows),
     "sink: rows the next batch takes while one is in flight (0: no "
     "limit but 64 MiB)"},
    {VELO_CONFIG_DURATION, "connect.timeout", "10s",
     offsetof(struct pg_conf, connect_timeout),
     "how long a connection attempt may take"},
    {VELO_CONFIG_DURATION, "statement.timeout", "5m",
     offsetof(struct pg_conf, statement_timeout),
     "server-side limit per statement (0: none); plus connect.timeout, "
     "how long a sink's batch may go unanswered before the connection "
     "counts as lost (5m when 0)"},
    {VELO_CONFIG_DURATION, "reconnect.timeout", "5m",
     offsetof(struct pg_conf, reconnect_timeout),
     "sink: give up reconnecting after this long (0: never)"},
    {VELO_CONFIG_STR, "application.name", "velostream",
     offsetof(struct pg_conf, application_name),
     "application_name the server shows in pg_stat_activity"},
    {VELO_CONFIG_STR, "slot", "", offsetof(struct pg_conf, slot),
     "cdc: replication slot (default velo_<name>)"},
    {VELO_CONFIG_STR, "publication", "", offsetof(struct pg_conf, publication),
     "cdc: publication (default velo_<name>)"},
    {VELO_CONFIG_BOOL, "create.slot", "true",
     offsetof(struct pg_conf, create_slot),
     "cdc: create the slot when it is missing"},
    {VELO_CONFIG_BOOL, "create.publication", "true",
     offsetof(struct pg_conf, create_publication),
     "cdc: create the publication (FOR TABLE) when it is missing"},
    {VELO_CONFIG_BOOL, "snapshot", "true", offsetof(struct pg_conf, snapshot),
     "cdc: read the table's rows first when the slot is created"},
    {0}};

static const struct velo_connector_vtable pg_vtable = {
    .size = sizeof(struct velo_connector_vtable),
    .scheme = "postgres",
    .flags = VELO_CONNECTOR_SOURCE | VELO_CONNECTOR_SINK |
             VELO_CONNECTOR_RECORD_SINK,
    .source_create = pg_source_create,
    .source_read = pg_source_read,
    .source_position = pg_source_position,
    .source_seek = pg_source_seek,
    .source_commit = pg_source_commit,
    .source_destroy = pg_source_destroy,
    .sink_create = pg_sink_create,
    .sink_write = pg_sink_write,
    .sink_flush = pg_sink_flush,
    .sink_destroy = pg_sink_destroy,
    .lookup_create = pg_lookup_create,
    .lookup_get = pg_lookup_get,
    .lookup_destroy = pg_lookup_destroy,
    .introspect = pg_introspect,
};

static const struct velo_plugin_descriptor pg_descriptor = {
    VELO_PLUGIN_HEADER,
    .kind = VELO_PLUGIN_CONNECTOR,
    .name = "postgres",
    .version = "0.1.0",
    .description =
        "PostgreSQL source (snapshot, cdc) and sink (insert, upsert)",
    .license_feature = NULL,
    .config_map = pg_config,
    .config_size = sizeof(struct pg_conf),
    .vtable = &pg_vtable,
};

VELO_EXPORT const struct velo_plugin_descriptor *
velo_plugin_init(const struct velo_host_api *host)
{
    pg_introspect_host(host);
    return &pg_descriptor;
}
