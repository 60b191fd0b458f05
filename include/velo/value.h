/*
 * Velostream plugin SDK: typed values exchanged with plugins (SQL function
 * arguments and results, lookup rows, record metadata).
 *
 * Values are plain structs passed by pointer; strings and bytes are views
 * (pointer + length) into memory the caller owns for the duration of the
 * call. Nothing here allocates.
 */
#ifndef VELO_VALUE_H
#define VELO_VALUE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum velo_type {
    VELO_TYPE_NULL = 0,
    VELO_TYPE_BOOLEAN = 1,
    VELO_TYPE_INTEGER = 2, /* 32-bit, held in i64 */
    VELO_TYPE_BIGINT = 3,
    VELO_TYPE_DOUBLE = 4,
    VELO_TYPE_DECIMAL = 5, /* scaled 64-bit integer: dec.unscaled, dec.scale */
    VELO_TYPE_STRING = 6,
    VELO_TYPE_TIMESTAMP = 7, /* microseconds since the Unix epoch, UTC */
    VELO_TYPE_DATE = 8,      /* days since the Unix epoch */
    VELO_TYPE_INTERVAL = 9,  /* microseconds */
    VELO_TYPE_BYTES = 10,
    VELO_TYPE_JSON = 11 /* nested object/array as JSON text in `str` */
};

struct velo_str {
    const char *ptr; /* not NUL-terminated */
    size_t len;
};

struct velo_value {
    int type; /* enum velo_type */
    union {
        int b;
        int64_t i64;
        double f64;
        struct {
            int64_t unscaled;
            int32_t precision;
            int32_t scale;
        } dec;
        struct velo_str str;
    } v;
};

#ifdef __cplusplus
}
#endif

#endif /* VELO_VALUE_H */
