/* decode_split.h - INTERNAL to the decoder: the two-halves conversion
 * strategy (decode_split.c).  */
#ifndef LOOPERD_DECODE_SPLIT_H
#define LOOPERD_DECODE_SPLIT_H

#include <stdbool.h>

#include "decode_core.h"

/* Converts the file in two halves on two threads when it qualifies.
 * Returns false, with nothing done, when it does not; else true, with the
 * load's result in *r and d's state as the sequential path would leave it. */
bool decode_split(struct decoder *d, int *r);

#endif
