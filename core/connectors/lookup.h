/*
 * Lookup tables: a connector instance opened for keyed reads (ABI 1.1
 * lookup_create / lookup_get / lookup_destroy) and exposed to the lookup
 * join as a struct velo_lookup_provider. The connector answers each key
 * with one JSON object; this adapter decodes it into the right side's
 * schema with the engine's JSON decoder. Caching is the join's business.
 */
#ifndef VELO_CONNECTORS_LOOKUP_H
#define VELO_CONNECTORS_LOOKUP_H

#include <stddef.h>
#include <stdint.h>

#include <velo/velo.h>

#include "connectors/registry.h"
#include "exec/operator.h"

struct velo_lookup_table;

/* What to open: the connector and the table's properties. */
struct velo_lookup_spec {
    const struct velo_connector_ref *conn; /* must have lookup_* */
    const char *name; /* the table's name in SQL (for '<name>.x' hints) */
    const char *uri;  /* a URI naming it, or NULL */
    const struct velo_property *props; /* prefix removed; borrowed */
    size_t nprops;
    const char *key;                  /* the right side's join column */
    const struct velo_schema *schema; /* rows it returns; borrowed, must
                                         outlive the table */
    const char *label; /* log prefix ("postgres:customers"), or NULL */
    struct event_base *base; /* the job's loop (ctx->base) */
};

/**
 * Fill the connector's config from the properties and call lookup_create.
 * @return the table, or NULL with err (what, which table, how to fix;
 * never a password). A connector without lookups is an error naming it.
 */
struct velo_lookup_table *velo_lookup_open(const struct velo_lookup_spec *s,
                                           char *err, size_t errlen);
void velo_lookup_close(struct velo_lookup_table *t);

/**
 * A provider over `t` for velo_op_lookup_join (p->arg is t; t must outlive
 * the operator). cache_entries / cache_ttl_us are the join's cache bounds.
 */
void velo_lookup_provider_init(struct velo_lookup_table *t,
                               struct velo_lookup_provider *p,
                               size_t cache_entries, int64_t cache_ttl_us);

/** The provider's get (also callable directly): see operator.h. */
int velo_lookup_get(void *table, const struct velo_str *keys, size_t n,
                    struct velo_batch *out, uint8_t *found, char *err,
                    size_t errlen);

#endif /* VELO_CONNECTORS_LOOKUP_H */
