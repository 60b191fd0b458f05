/*
 * Operator state in checkpoints: a flat, versioned byte encoding that
 * every stateful operator writes in snapshot() and reads in restore().
 *
 * Integers are little-endian fixed width; byte strings are a u32 length
 * then the bytes. A reader never reads past its end: a short or corrupt
 * section sets `bad` and every later read returns zero/empty, so restore
 * code checks velo_sr_ok() once at the end instead of after every field.
 * The job frames each operator's section (operator index, length, CRC)
 * and refuses a checkpoint whose framing or plan fingerprint differs.
 */
#ifndef VELO_EXEC_STATE_H
#define VELO_EXEC_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "exec/batch.h"

struct velo_state_writer {
    uint8_t *buf; /* malloc'd, owned */
    size_t len, cap;
    int oom; /* an append failed: the snapshot is unusable */
};

struct velo_state_reader {
    const uint8_t *p; /* borrowed: valid while the job restores */
    size_t len, off;
    int bad; /* read past the end or an impossible value */
};

void velo_sw_init(struct velo_state_writer *w);
void velo_sw_free(struct velo_state_writer *w);
void velo_sw_reset(struct velo_state_writer *w); /* len 0, keep buffer */
void velo_sw_u8(struct velo_state_writer *w, uint8_t v);
void velo_sw_u32(struct velo_state_writer *w, uint32_t v);
void velo_sw_u64(struct velo_state_writer *w, uint64_t v);
void velo_sw_i64(struct velo_state_writer *w, int64_t v);
void velo_sw_f64(struct velo_state_writer *w, double v);
void velo_sw_raw(struct velo_state_writer *w, const void *p, size_t n);
/** u32 length, then the bytes. */
void velo_sw_bytes(struct velo_state_writer *w, const void *p, size_t n);
/** One value of physical type `phys` (enum velo_phys in exec-internal.h):
 *  u8 as u8, i64 as i64, f64 as f64, strings as bytes. */
void velo_sw_value(struct velo_state_writer *w, int phys, const void *slot);
/** A row of n typed values with its null flags (types[i].id decides the
 *  physical encoding): what Sort, Table, joins and windows buffer. */
void velo_sw_row(struct velo_state_writer *w,
                 const struct velo_datatype *types, size_t n,
                 const uint8_t *nulls, const void *slots /* union velo_slot[n] */);

void velo_sr_init(struct velo_state_reader *r, const void *p, size_t len);
uint8_t velo_sr_u8(struct velo_state_reader *r);
uint32_t velo_sr_u32(struct velo_state_reader *r);
uint64_t velo_sr_u64(struct velo_state_reader *r);
int64_t velo_sr_i64(struct velo_state_reader *r);
double velo_sr_f64(struct velo_state_reader *r);
void velo_sr_raw(struct velo_state_reader *r, void *out, size_t n);
/** A view into the reader's buffer (copy what you keep); len 0 and a
 *  non-NULL pointer for an empty string; ptr NULL when bad. */
struct velo_str velo_sr_bytes(struct velo_state_reader *r);
/** Reads a value written by velo_sw_value; strings are copied into arena
 *  (NULL arena: left as views). */
void velo_sr_value(struct velo_state_reader *r, int phys, void *slot,
                   struct velo_arena *arena);
void velo_sr_row(struct velo_state_reader *r,
                 const struct velo_datatype *types, size_t n, uint8_t *nulls,
                 void *slots, struct velo_arena *arena);
/** Everything read so far was there (and, with at_end, nothing is left). */
int velo_sr_ok(const struct velo_state_reader *r, int at_end);
/** Mark the section corrupt (an impossible count, ...). */
void velo_sr_fail(struct velo_state_reader *r);

#endif /* VELO_EXEC_STATE_H */
