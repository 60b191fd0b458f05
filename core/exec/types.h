/*
 * SQL data types and schemas, shared by the binder, the planner, the
 * operators and the formats.
 *
 * Physical representation of each type inside a batch column:
 *   BOOLEAN            uint8_t (0/1)             column.v.u8
 *   INTEGER, BIGINT    int64_t                   column.v.i64
 *   DOUBLE             double                    column.v.f64
 *   DECIMAL(p,s)       int64_t unscaled value     column.v.i64 (scale in type)
 *   TIMESTAMP          int64_t microseconds since 1970-01-01T00:00:00Z
 *   DATE               int64_t days since 1970-01-01
 *   INTERVAL           int64_t microseconds
 *   STRING, BYTES      struct velo_str view      column.v.str
 *   JSON               struct velo_str view of the JSON text (object/array)
 * INTEGER is checked to fit 32 bits where it is produced (cast, decode).
 */
#ifndef VELO_EXEC_TYPES_H
#define VELO_EXEC_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include <velo/value.h> /* enum velo_type, struct velo_str */

#define VELO_DECIMAL_MAX_PRECISION 18 /* fits int64 unscaled */
#define VELO_NAME_MAX 128

struct velo_datatype {
    uint8_t id;        /* enum velo_type */
    uint8_t precision; /* DECIMAL only: 1..18 */
    int8_t scale;      /* DECIMAL only: 0..precision */
};

struct velo_field {
    char *name;               /* owned by the schema */
    struct velo_datatype type;
    uint8_t nullable;
    uint8_t hidden; /* system column: not in SELECT * (_timestamp, ...) */
};

struct velo_schema {
    size_t n;
    struct velo_field *fields; /* owned */
};

/* Create/destroy pairs; NULL and errno on failure. */
struct velo_schema *velo_schema_create(size_t n);
struct velo_schema *velo_schema_copy(const struct velo_schema *s);
void velo_schema_destroy(struct velo_schema *s);
/** Sets fields[i].name (copied). @return VELO_OK/VELO_ERR. */
int velo_schema_set(struct velo_schema *s, size_t i, const char *name,
                    struct velo_datatype type, int nullable, int hidden);
/** Case-insensitive lookup. @return index or -1. */
int velo_schema_find(const struct velo_schema *s, const char *name);

/* Type helpers. */
struct velo_datatype velo_type_of(int id); /* non-decimal types */
struct velo_datatype velo_type_decimal(int precision, int scale);
int velo_type_equal(struct velo_datatype a, struct velo_datatype b);
int velo_type_is_numeric(struct velo_datatype t);
/** "DECIMAL(12,2)", "BIGINT", ... into buf. @return buf. */
const char *velo_type_name(struct velo_datatype t, char *buf, size_t len);
/** Microseconds in one time unit named by name[0..len): us, ms, s, m, h,
 *  d, w and their words (milli, millis, second, mins, hrs, days, ...),
 *  case-insensitive. One table for INTERVAL literals and casts.
 *  @return the length, or 0 when the name is not a unit. */
int64_t velo_interval_unit_us(const char *name, size_t len);
/** Parse "decimal(12, 2)", "varchar", "int", ... @return VELO_OK/ERR. */
int velo_type_parse(const char *text, struct velo_datatype *out);

#endif /* VELO_EXEC_TYPES_H */
