/* decode_direct.h - INTERNAL to the decoder: the same-rate strategy
 * (decode_direct.c).  */
#ifndef LOOPERD_DECODE_DIRECT_H
#define LOOPERD_DECODE_DIRECT_H

#include <stdbool.h>

#include "decode_core.h"

/* Same rate: copies the file into d->buf unchanged (SAMPLE_S16 for 16-bit
 * PCM).  Returns 0 or a negative errno with the reason in d->err. */
int decode_direct(struct decoder *d);

#endif
