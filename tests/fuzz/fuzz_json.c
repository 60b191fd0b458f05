/*
 * Fuzz the JSON Lines scanner (escapes, nesting, numbers, deep recursion)
 * through the shared decode harness.
 */
#include "decode_harness.h"

static void fuzz_format_opts(uint8_t flags, struct velo_format_opts *o)
{
    (void)flags;
    velo_format_opts_default(o, VELO_FORMAT_JSON);
}
