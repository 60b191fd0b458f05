/*
 * Fuzz the CSV scanner (quotes, delimiters, header, NULL text, record
 * limits) through the shared decode harness.
 */
#include "decode_harness.h"

static void fuzz_format_opts(uint8_t flags, struct velo_format_opts *o)
{
    velo_format_opts_default(o, VELO_FORMAT_CSV);
    o->delimiter = (flags & 1) ? ';' : ',';
    o->header = (flags & 2) != 0;
    o->quote = (flags & 4) ? '\'' : '"';
    o->null_text = (flags & 8) ? "NA" : "";
}
